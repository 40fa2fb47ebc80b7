{{/* Names, labels and the members' URLs. */}}

{{- define "cairn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cairn.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "cairn.headless" -}}
{{- printf "%s-headless" (include "cairn.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cairn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cairn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cairn.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cairn.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cairn
{{- end -}}

{{- define "cairn.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "cairn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cairn.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The stable DNS domain of the members: <headless>.<ns>.svc.<domain> */}}
{{- define "cairn.peerDomain" -}}
{{- printf "%s.%s.svc.%s" (include "cairn.headless" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{- define "cairn.clientScheme" -}}
{{- if .Values.tls.client.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{- define "cairn.peerScheme" -}}
{{- if .Values.tls.peer.enabled }}https{{ else }}http{{ end -}}
{{- end -}}

{{/* --initial-cluster: every member by its stable DNS name. */}}
{{- define "cairn.initialCluster" -}}
{{- $full := include "cairn.fullname" . -}}
{{- $domain := include "cairn.peerDomain" . -}}
{{- $scheme := include "cairn.peerScheme" . -}}
{{- $members := list -}}
{{- range $i := until (int .Values.replicaCount) -}}
{{- $members = append $members (printf "%s-%d=%s://%s-%d.%s:%d" $full $i $scheme $full $i $domain (int $.Values.ports.peer)) -}}
{{- end -}}
{{- join "," $members -}}
{{- end -}}

{{/* A quorum of replicaCount members. */}}
{{- define "cairn.quorum" -}}
{{- add (div (int .Values.replicaCount) 2) 1 -}}
{{- end -}}

{{/* Where probes and scrapes go: the plain metrics listener when on,
     else the client port. */}}
{{- define "cairn.probePort" -}}
{{- if .Values.metrics.listener.enabled }}metrics{{ else }}client{{ end -}}
{{- end -}}

{{- define "cairn.probeScheme" -}}
{{- if and .Values.tls.client.enabled (not .Values.metrics.listener.enabled) }}HTTPS{{ else }}HTTP{{ end -}}
{{- end -}}

{{- define "cairn.clientTLSSecret" -}}
{{- if .Values.tls.client.certManager.enabled -}}
{{- printf "%s-client-tls" (include "cairn.fullname" .) -}}
{{- else -}}
{{- .Values.tls.client.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "cairn.peerTLSSecret" -}}
{{- if .Values.tls.peer.certManager.enabled -}}
{{- printf "%s-peer-tls" (include "cairn.fullname" .) -}}
{{- else -}}
{{- .Values.tls.peer.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* Settings that cannot work together fail the render with a reason. */}}
{{- define "cairn.validate" -}}
{{- if and .Values.tls.client.enabled (not .Values.tls.client.existingSecret) (not .Values.tls.client.certManager.enabled) -}}
{{- fail "tls.client.enabled needs tls.client.existingSecret or tls.client.certManager.enabled" -}}
{{- end -}}
{{- if and .Values.tls.peer.enabled (not .Values.tls.peer.existingSecret) (not .Values.tls.peer.certManager.enabled) -}}
{{- fail "tls.peer.enabled needs tls.peer.existingSecret or tls.peer.certManager.enabled" -}}
{{- end -}}
{{- if and .Values.tls.client.certManager.enabled (not .Values.tls.client.certManager.issuerRef.name) -}}
{{- fail "tls.client.certManager.enabled needs tls.client.certManager.issuerRef.name" -}}
{{- end -}}
{{- if and .Values.tls.peer.certManager.enabled (not .Values.tls.peer.certManager.issuerRef.name) -}}
{{- fail "tls.peer.certManager.enabled needs tls.peer.certManager.issuerRef.name" -}}
{{- end -}}
{{- if and .Values.tls.client.enabled .Values.tls.client.clientCertAuth (not .Values.metrics.listener.enabled) -}}
{{- fail "tls.client.clientCertAuth needs metrics.listener.enabled: kubelet probes carry no client certificate" -}}
{{- end -}}
{{- if and .Values.auth.enabled (not .Values.auth.rootPassword.existingSecret) -}}
{{- fail "auth.enabled needs auth.rootPassword.existingSecret" -}}
{{- end -}}
{{- end -}}

{{/* cairnctl's flags for the hook Jobs: endpoint and TLS. */}}
{{- define "cairn.ctlArgs" -}}
- --endpoints={{ include "cairn.clientScheme" . }}://{{ include "cairn.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}:{{ .Values.service.port }}
- --dial-timeout=5s
- --command-timeout=10s
{{- if .Values.tls.client.enabled }}
- --cacert=/etc/cairn/tls/client/ca.crt
{{- if .Values.tls.client.clientCertAuth }}
- --cert=/etc/cairn/tls/client/tls.crt
- --key=/etc/cairn/tls/client/tls.key
{{- end }}
{{- end }}
{{- end -}}

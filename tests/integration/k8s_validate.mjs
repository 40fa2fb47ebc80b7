// k8s_validate.mjs - validate rendered Kubernetes manifests offline.
//
//   NODE_PATH=<dir with node_modules> node k8s_validate.mjs FILE...
//
// Each FILE is a YAML stream (`helm template` output). Every document gets
// two checks:
//  1. kubernetes-models 4.5.1's validator (the OpenAPI schema of Kubernetes
//     1.x: types, enums, required fields). It does not reject unknown
//     fields (there is no additionalProperties in its schemas).
//  2. An unknown-field and type check of our own: the document is written
//     into a TypeScript file as an object literal typed with the model's
//     interface from the same package's .d.ts files
//     (`const d: IStatefulSet = {...}`), and the TypeScript compiler's
//     excess-property check rejects any field the API does not have, at any
//     depth ("'replica' does not exist in type 'IStatefulSetSpec'").
// Custom resources (cert-manager Certificate, Prometheus Operator
// ServiceMonitor) have no model: they are checked against the small
// allow-lists below (the fields this chart uses, from their CRDs).
// Prints one line per document, "ok", "INVALID" or "UNKNOWN", and the
// errors; exits 1 when any document failed. The summary line is not in
// "N passed, N failed" form on purpose (tests/run.sh counts TAP only).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const nodePath = process.env.NODE_PATH || '';
const require = createRequire(path.join(nodePath, 'x.js'));
const YAML = require('yaml');
const ts = require('typescript');
const modelsDir = path.dirname(require.resolve('kubernetes-models/package.json'));

// Custom resources: path -> allowed keys ("*" = any map).
const CRDS = {
  'cert-manager.io/v1/Certificate': {
    required: [['spec', 'secretName'], ['spec', 'issuerRef', 'name']],
    keys: {
      '': ['apiVersion', 'kind', 'metadata', 'spec'],
      'spec': ['secretName', 'duration', 'renewBefore', 'commonName', 'dnsNames',
        'ipAddresses', 'uris', 'usages', 'issuerRef', 'privateKey', 'subject',
        'isCA', 'secretTemplate', 'keystores', 'emailAddresses'],
      'spec.issuerRef': ['name', 'kind', 'group'],
    },
  },
  'monitoring.coreos.com/v1/ServiceMonitor': {
    required: [['spec', 'selector'], ['spec', 'endpoints']],
    keys: {
      '': ['apiVersion', 'kind', 'metadata', 'spec'],
      'spec': ['selector', 'namespaceSelector', 'endpoints', 'jobLabel',
        'targetLabels', 'podTargetLabels', 'sampleLimit'],
      'spec.namespaceSelector': ['any', 'matchNames'],
      'spec.endpoints[]': ['port', 'targetPort', 'path', 'scheme', 'interval',
        'scrapeTimeout', 'tlsConfig', 'bearerTokenSecret', 'honorLabels',
        'relabelings', 'metricRelabelings', 'params', 'basicAuth'],
      'spec.endpoints[].tlsConfig': ['ca', 'cert', 'keySecret', 'serverName',
        'insecureSkipVerify'],
    },
  },
};
const META_KEYS = ['name', 'namespace', 'labels', 'annotations'];

function checkCrd(spec, obj) {
  const errs = [];
  for (const req of spec.required) {
    let v = obj;
    for (const k of req) v = v?.[k];
    if (v === undefined) errs.push(`missing ${req.join('.')}`);
  }
  const walk = (v, p) => {
    if (Array.isArray(v)) { v.forEach((x) => walk(x, p + '[]')); return; }
    if (!v || typeof v !== 'object') return;
    const allowed = p === 'metadata' ? META_KEYS : spec.keys[p];
    if (!allowed) return;
    for (const k of Object.keys(v)) {
      if (!allowed.includes(k)) errs.push(`unknown field ${p ? p + '.' : ''}${k}`);
      else walk(v[k], p ? `${p}.${k}` : k);
    }
  };
  walk(obj, '');
  return errs;
}

async function modelFor(apiVersion, kind) {
  try {
    return (await import(path.join(modelsDir, apiVersion, kind + '.mjs')))[kind];
  } catch {
    return undefined;
  }
}

const docs = [];
for (const file of process.argv.slice(2)) {
  const src = fs.readFileSync(file, 'utf8');
  for (const d of YAML.parseAllDocuments(src)) {
    if (d.errors.length) {
      docs.push({ file, id: '?', errs: d.errors.map((e) => e.message) });
      continue;
    }
    const obj = d.toJS();
    if (!obj) continue;
    docs.push({ file, obj, id: `${obj.kind}/${obj.metadata?.name}`, errs: [] });
  }
}

// 1. kubernetes-models, or the CRD allow-lists.
const typed = [];
for (const d of docs) {
  if (!d.obj) continue;
  const crd = CRDS[`${d.obj.apiVersion}/${d.obj.kind}`];
  if (crd) { d.errs.push(...checkCrd(crd, d.obj)); continue; }
  const cls = await modelFor(d.obj.apiVersion, d.obj.kind);
  if (!cls) { d.unknown = true; continue; }
  try { new cls(d.obj).validate(); } catch (e) { d.errs.push(e.message); }
  typed.push(d);
}

// 2. TypeScript's excess-property check against the models' interfaces.
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'k8s-validate-'));
const lines = [];
const where = []; // line ranges -> doc
typed.forEach((d, i) => {
  const mod = `kubernetes-models/${d.obj.apiVersion}/${d.obj.kind}`;
  lines.push(`import type { I${d.obj.kind} as T${i} } from ${JSON.stringify(mod)};`);
});
typed.forEach((d, i) => {
  const first = lines.length;
  const body = JSON.stringify(d.obj, null, 1).split('\n');
  lines.push(`export const d${i}: T${i} = ${body[0]}`, ...body.slice(1));
  where.push([first, lines.length - 1, d]);
});
const tsFile = path.join(tmp, 'manifests.ts');
fs.writeFileSync(tsFile, lines.join('\n') + '\n');
const program = ts.createProgram([tsFile], {
  noEmit: true, strict: true, skipLibCheck: true, types: [],
  moduleResolution: ts.ModuleResolutionKind.Node10,
  module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020,
  baseUrl: tmp, paths: { '*': [path.join(nodePath, 'node_modules', '*')] },
});
for (const diag of ts.getPreEmitDiagnostics(program)) {
  const msg = ts.flattenDiagnosticMessageText(diag.messageText, ' ');
  if (!diag.file || diag.file.fileName !== tsFile) {
    console.log(`tsc: ${msg}`);
    process.exitCode = 1;
    continue;
  }
  const { line } = diag.file.getLineAndCharacterOfPosition(diag.start);
  const hit = where.find(([a, b]) => line >= a && line <= b);
  const text = `${lines[line].trim()} -> ${msg}`;
  if (hit) hit[2].errs.push(text);
  else { console.log(`tsc: ${text}`); process.exitCode = 1; }
}
fs.rmSync(tmp, { recursive: true, force: true });

let bad = 0;
for (const d of docs) {
  const tag = d.unknown ? 'UNKNOWN' : d.errs.length ? 'INVALID' : 'ok     ';
  if (d.unknown || d.errs.length) bad++;
  console.log(`${tag} ${path.basename(d.file)} ${d.id}`);
  for (const e of d.errs) console.log(`        ${e}`);
}
console.log(`k8s objects: ${docs.length - bad} valid, ${bad} invalid`);
if (bad) process.exitCode = 1;

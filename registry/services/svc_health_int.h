/*
 * svc_health_int.h - private to registry/services: one active probe (TCP
 * connect, HTTP GET, HTTP GET over TLS, or the gRPC health service's Check
 * over HTTP/2, cleartext or TLS) on the libuv loop, for svc_health.c.
 *
 * Does:     runs one probe of a check's target within a deadline and
 *           reports pass or fail once, with a short human-readable reason.
 * Owns:     each struct hc_probe, from hc_probe_start until its handles
 *           closed (after done ran or hc_probe_cancel); its TLS session.
 *           struct hc_tls (one OpenSSL client context) from hc_tls_new to
 *           hc_tls_free; probes hold their own reference to it.
 * Threads:  the loop thread only (a host name is resolved by
 *           uv_getaddrinfo on libuv's pool; the loop never blocks).
 * Borrowed: target is copied by hc_probe_start; the output string handed
 *           to done lives until done returns.
 * Errors:   a target that does not parse is ERR_INVALID from
 *           hc_probe_start (done does not run); everything after is a
 *           failed probe with a reason ("connect: connection refused",
 *           "timeout after 2000 ms", "HTTP 503").
 * Limits:   HC_URL_MAX bytes of URL, HC_STATUS_LINE_MAX bytes read for the
 *           status line (the rest of the answer is never read).
 * Not here: scheduling, damping and writes (svc_health.c).
 *
 * Also here: the instances gauge (svc_gauge.c), which svc_health.c starts,
 * feeds with the observer's events and prints; loop thread only.
 */
#ifndef CAIRN_REGISTRY_SVC_HEALTH_INT_H
#define CAIRN_REGISTRY_SVC_HEALTH_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "registry/services/services.h"

#define HC_URL_MAX         1024
#define HC_STATUS_LINE_MAX 256
#define HC_OUTPUT_MAX      128

enum hc_type {
    HC_TCP = 0,
    HC_HTTP = 1,
    HC_HTTPS = 2,
    HC_GRPC = 3,
    HC_GRPCS = 4, /* the same over TLS (ALPN h2) */
};

/* The longest gRPC health service name a check may name
 * ("grpc.health.v1.Health/Check"'s request field; "" asks for the
 * server's overall health). */
#define HC_GRPC_SERVICE_MAX SVC_GRPC_SERVICE_MAX

/* A parsed target: host (a name or an IP literal, no brackets), port, and
 * for HTTP the request path (with its query, never empty). For HTTPS,
 * tls_skip_verify (Consul's name) accepts any certificate; otherwise the
 * chain must verify against the system's CAs (OpenSSL's default paths,
 * so SSL_CERT_FILE / SSL_CERT_DIR apply) and name host. */
struct hc_target {
    enum hc_type type;
    bool tls_skip_verify;
    char host[SVC_HOST_MAX + 1];
    int port;
    char path[HC_URL_MAX]; /* HC_GRPC(S): the health service's name */
};

/* "http://host[:port][/path]" (port 80 by default; "[v6]" hosts), or the
 * same with "https://" (port 443). A fragment is dropped; userinfo
 * ("user@") is ERR_INVALID. */
int hc_url_parse(const char *url, struct hc_target *out);

/* One TLS client context for every https probe (a handshake runs on the
 * loop: a few hundred microseconds of CPU, bounded by the probes bound).
 * 0 and *out, or -ENOMEM / ERR_INVALID (OpenSSL refused). */
struct hc_tls;
int hc_tls_new(struct hc_tls **out);
void hc_tls_free(struct hc_tls *tls);

/* The status code of an HTTP status line "HTTP/1.x NNN ..." (line is n
 * bytes, not terminated). ERR_INVALID when it is not one. */
int hc_status_parse(const char *line, size_t n, int *code);

/* The gRPC health check (grpc/grpc doc/health-checking.md) spoken as a
 * client with prior knowledge of HTTP/2 (RFC 9113 section 3.3): the
 * request is one write (hc_grpc_request), and the server's bytes go to
 * hc_grpc_feed as they come, in pieces of any size. The reader keeps 9
 * bytes of frame header and the first HC_GRPC_MSG_MAX bytes of stream 1's
 * DATA, so any answer costs bounded memory; it decides on the first gRPC
 * message: SERVING passes, any other status fails, and so does a stream
 * or connection that ends first (RST_STREAM, GOAWAY, trailers without a
 * message), a frame longer than the default maximum (16,384 bytes: we
 * send no SETTINGS that raise it) or a compressed message (we offer no
 * encoding). */
#define HC_GRPC_MSG_MAX 64
struct hc_grpc {
    uint8_t hdr[9];
    size_t hdr_len;
    uint32_t left; /* payload bytes of the current frame still to come */
    uint8_t type;
    uint8_t flags;
    uint32_t stream;
    bool pad_next; /* the next payload byte is a DATA frame's pad length */
    uint32_t pad;  /* trailing pad bytes of the current DATA frame */
    uint8_t msg[HC_GRPC_MSG_MAX];
    size_t msg_len;
    bool ack_due; /* a SETTINGS frame came: acknowledge it */
};

/* The request bytes (preface, SETTINGS, HEADERS, DATA with END_STREAM)
 * for t into out (cap at least HC_GRPC_REQ_MAX); their length. */
#define HC_GRPC_REQ_MAX (SVC_HOST_MAX + HC_GRPC_SERVICE_MAX + 192)
size_t hc_grpc_request(const struct hc_target *t, uint8_t *out, size_t cap);

/* Feed n bytes. 0: no verdict yet; 1: SERVING; -1: failed. On a verdict,
 * out (out_len bytes, terminated) says what was seen. */
int hc_grpc_feed(struct hc_grpc *g, const uint8_t *p, size_t n, char *out,
                 size_t out_len);

/* One probe's outcome: ok, and a reason of < HC_OUTPUT_MAX bytes. */
typedef void (*hc_probe_done_fn)(void *ctx, bool ok, const char *output);

struct hc_probe;

/* Probe t (copied) on loop within timeout_ms; tls (borrowed for the call)
 * is needed for HC_HTTPS and HC_GRPCS, else ERR_INVALID. done runs exactly
 * once, never before this returns, unless hc_probe_cancel comes first. 0 and
 * *out, or -ENOMEM / a uv error (done does not run). */
int hc_probe_start(uv_loop_t *loop, const struct hc_target *t,
                   uint32_t timeout_ms, struct hc_tls *tls,
                   hc_probe_done_fn done, void *ctx, struct hc_probe **out);

/* done will not run; the probe frees itself once its handles closed. Safe
 * until done has run. */
void hc_probe_cancel(struct hc_probe *p);

/* ------------------------------------------- the instances gauge */

struct kv_event;
struct server;
struct svc_gauge;

/* Start counting (a paged read of the registry, then events), with at
 * most services_max (namespace, service) pairs in their own series. 0 and
 * *out, or -ENOMEM. */
int svc__gauge_start(struct server *s, size_t services_max,
                     struct svc_gauge **out);
/* Stop; the memory goes once the scan timer closed. NULL is a no-op. */
void svc__gauge_stop(struct svc_gauge *g);
/* Applied events (with prev), in revision order. NULL is a no-op. */
void svc__gauge_events(struct svc_gauge *g, const struct kv_event *evs,
                       size_t n);
/* val[0..vn) is an instance document with that "health" which this
 * member is about to write at key: when its put's event brings the same
 * bytes back, it is counted without reading them again. A hint is only
 * a memo of what the gauge would read from those bytes: a write that
 * never happens, or other bytes at the key, leave it unused (a later
 * hint for a key of the same slot replaces it). NULL g is a no-op. */
void svc__gauge_hint(struct svc_gauge *g, const char *key, size_t kn,
                     const char *val, size_t vn, const char *health);
/* A snapshot replaced the store: count it again. */
void svc__gauge_restored(struct svc_gauge *g);
/* Append cairn_registry_instances{..} in Prometheus text. */
int svc__gauge_metrics(struct svc_gauge *g, struct buf *out);

#endif

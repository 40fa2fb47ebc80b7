/*
 * server.h - cairnd: one member's process, its client port and the etcd API.
 *
 * Does:     owns the loop, the member (consensus/node), the client
 *           listeners (one port for gRPC and HTTP/1.1, told apart by the
 *           HTTP/2 preface), the gRPC server and the etcd services, and the
 *           process lifecycle (signals, graceful stop).
 * Owns:     everything it starts; server_run returns when it has stopped.
 * Threads:  the loop thread (the node adds its WAL and apply threads).
 * Borrowed: struct options for the server's life.
 * Errors:   server_start: ERR_INVALID (settings), ERR_LOCKED, -errno;
 *           the message buffer names the problem.
 * Limits:   connections in total (LIMIT_CONNECTIONS); the rest in grpc and
 *           node.
 * Not here: etcd semantics (consensus/apply, kv), HTTP/2 (registry/grpc).
 *
 * The API layer (api_*) is shared by the gRPC front end and the JSON
 * gateway: a method takes a decoded request and answers once, with an
 * encoded etcd response or an error code; the front end frames it.
 */
#ifndef CAIRN_REGISTRY_SERVER_H
#define CAIRN_REGISTRY_SERVER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/limits.h"
#include "consensus/node/node.h"
#include "registry/grpc/grpc.h"
#include "registry/server/options.h"
#include "registry/server/stall.h"

#define SERVER_LISTENERS_MAX    8
/* The largest request head the sniff looks at (--max-header-bytes stops
 * at 65535: libwebsockets keeps header table sizes in 16 bits). */
#define SERVER_SNIFF_PEEK_BYTES 65536
#define SERVER_VERSION          "3.5.17"
#define SERVER_CLUSTER_VER      "3.5.0"
#define SERVER_LATENCY_BUCKETS  16 /* 0.5 ms doubling to 8.192 s, then +Inf */

struct server;
struct api_op;

/* The answer to one API call: err 0 and resp[0..len) (an encoded etcd
 * response message), or an error code and no bytes. */
typedef void (*api_done_fn)(void *ctx, int err, const uint8_t *resp,
                            size_t len);

struct api_method {
    const char *path; /* gRPC path, "/etcdserverpb.KV/Range" */
    const char *gw;   /* JSON gateway path, "/v3/kv/range", or NULL */
    const ProtobufCMessageDescriptor *req_desc;
    const ProtobufCMessageDescriptor *resp_desc;
    /* Decode the request ourselves from the raw bytes (Txn: the nesting
     * depth is checked before protobuf-c's recursive decoder runs). */
    bool raw;
    int (*fn)(struct api_op *op, const ProtobufCMessage *req);
};

extern const struct api_method api_methods[];
extern const size_t api_methods_count;

/* One call in progress. Allocated by api_call, freed when it finished and
 * no asynchronous work refers to it any more. */
struct api_op {
    struct server *s;
    const struct api_method *m;
    api_done_fn done;
    void *ctx;
    bool canceled;           /* the caller went away: do not call done */
    bool finished;           /* api_finish ran */
    int async_refs;          /* node callbacks still to come */
    ProtobufCMessage *owned; /* a request we decoded ourselves */
    uint32_t timeout_ms;
    uint64_t start_ns; /* clock_mono_ns at api_call, for the latency */
    const char *token; /* auth token metadata, or NULL */
    /* with no token: the CN of the client's verified TLS certificate
     * under --client-cert-auth (api_call_cert), or NULL */
    const char *cert_user;
    uint64_t aux; /* per-method scratch (MemberAdd: the new id) */
    /* what answers a linearizable read at its read point */
    int (*serve)(struct api_op *op);
    /* Cairn-only envelope fields proposed after the write's request (its
     * audit record, a lease_first), empty for most calls */
    struct buf extra;
    /* The request's own bytes when they are exactly what protobuf-c packs
     * for the decoded request (a Put read in place): proposed as they are.
     * Both borrowed from the caller while the method's fn runs, NULL
     * after. */
    const ProtobufCMessage *packed_msg;
    const uint8_t *packed;
    size_t packed_len;
};

/* Start method m on request bytes (decoded with m->req_desc unless m->raw).
 * done runs exactly once unless api_cancel is called first. Returns the op
 * (for api_cancel) or NULL when it finished synchronously. */
struct api_op *api_call(struct server *s, const struct api_method *m,
                        const uint8_t *req, size_t len, uint32_t timeout_ms,
                        api_done_fn done, void *ctx);

/* The same, for a client that sent an auth token (gRPC "token" metadata,
 * or the gateway's Authorization header); token is borrowed until done
 * runs or the op is canceled. With auth enabled, the call is checked
 * against the token's user before the method runs (api_auth.h). */
struct api_op *api_call_auth(struct server *s, const struct api_method *m,
                             const uint8_t *req, size_t len,
                             uint32_t timeout_ms, const char *token,
                             api_done_fn done, void *ctx);

/* Pass this (by address: its bytes mean nothing) as api_call_auth's token
 * for the server's own checks (the health probes): auth is not checked.
 * No client can send it: a client's token is always its own copy. */
extern const char api_token_internal[];

/* What a registry or config write records in the audit log (docs/audit.md;
 * consensus/apply writes it, chained, with the write). Strings borrowed for
 * the call; NULL is "". */
struct api_audit {
    const char *action;    /* "config.publish", "registry.register", ... */
    const char *ns;        /* the namespace, or NULL */
    const char *target;    /* what was written: "<app>/<name>", ... */
    const char *principal; /* the token's user, or "anonymous" */
    const char *source;    /* the client's address */
    int64_t version;       /* a config version, or 0 */
    const char *message;   /* a commit message, or NULL */
};

/* api_call_auth for a write that records audit in the same Raft request:
 * the record is attached to the proposal (written only if the write takes
 * effect). A method that proposes nothing ignores it. A record that does
 * not fit the bounds of consensus/apply/apply.h answers ERR_BAD_REQUEST. */
struct api_op *api_call_audit(struct server *s, const struct api_method *m,
                              const uint8_t *req, size_t len,
                              uint32_t timeout_ms, const char *token,
                              const struct api_audit *audit, api_done_fn done,
                              void *ctx);

/* api_call_auth for a client that sent no token and whose verified TLS
 * client certificate names cert_user (its CN), under --client-cert-auth:
 * with auth on, the call runs as that user, as etcd's AuthInfoFromTLS
 * does. cert_user is borrowed like token. */
struct api_op *api_call_cert(struct server *s, const struct api_method *m,
                             const uint8_t *req, size_t len,
                             uint32_t timeout_ms, const char *cert_user,
                             api_done_fn done, void *ctx);

/* api_call_audit for a client with a token or else a certificate's CN
 * (api_call_cert's rule: a token wins); both borrowed like token. */
struct api_op *api_call_as(struct server *s, const struct api_method *m,
                           const uint8_t *req, size_t len, uint32_t timeout_ms,
                           const char *token, const char *cert_user,
                           const struct api_audit *audit, api_done_fn done,
                           void *ctx);

/* A lease for a Put or Txn to grant first, in the same Raft request
 * (consensus/apply/apply.h, "lease first"): a registration's own lease. */
struct api_lease_first {
    int64_t id;  /* > 0, from api_lease_id_pick */
    int64_t ttl; /* seconds; raised to the minimum as LeaseGrant's */
};

/* api_call_as for a Put or a writing Txn (whose failure branch only reads)
 * that grants lease->id first; the lease is revoked again if the write does
 * not take effect. Any other method, or a Txn that writes nothing, answers
 * ERR_BAD_REQUEST; a TTL over the maximum ERR_LEASE_TTL_TOO_LARGE. The
 * answer is the write's. */
struct api_op *api_call_leased(struct server *s, const struct api_method *m,
                               const uint8_t *req, size_t len,
                               uint32_t timeout_ms, const char *token,
                               const char *cert_user,
                               const struct api_audit *audit,
                               const struct api_lease_first *lease,
                               api_done_fn done, void *ctx);

/* May a write carry a lease_first now? Only once every member has
 * published the request level that reads it (node_apply_level); until
 * then a caller grants the lease with a request of its own first. */
bool api_can_lease_first(struct server *s);

/* A fresh lease ID from this member's generator (positive, never 0), as
 * LeaseGrant picks one when the client leaves it 0. */
int64_t api_lease_id_pick(struct server *s);

/* The caller is gone; done will not run. Safe until done has run. */
void api_cancel(struct api_op *op);

const struct api_method *api_find(const char *path);
const struct api_method *api_find_gw(const char *path);

struct server_listener {
    uv_tcp_t tcp;
    struct server *s;
    bool open;
    bool tls;     /* an https:// URL: connections go to tls_conn.c */
    bool metrics; /* --listen-metrics-urls: HTTP, metrics and probes only */
};

struct auth_jwt;

struct server {
    uv_loop_t *loop;
    const struct options *opt;
    struct limits limits;
    struct node *node;
    struct grpc_server grpc;
    bool grpc_on;
    struct grpc_method *grpc_methods;
    struct server_listener listeners[SERVER_LISTENERS_MAX];
    size_t listeners_count;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_timer_t watchdog; /* stops the process when the member fails */
    struct stall stall;  /* reports where the loop is stuck (stall.h) */
    bool stopping;
    int exit_code;
    uint64_t member_id;
    uint64_t cluster_id;
    uint64_t lease_id_next;
    uint64_t conns_open;
    /* closed at accept: gRPC connections alone fill LIMIT_CONNECTIONS
     * (past the sniff, each side counts its own refusals) */
    uint64_t conns_refused_at_accept;
    /* the sniff (server.c): connections not yet handed over, and those
     * closed for a late preface or request head, or a head too large */
    uint64_t conns_sniffing;
    uint64_t header_timeouts;
    uint64_t headers_too_large;
    /* where the sniff peeks (one loop thread: one buffer serves all);
     * options.c keeps --max-header-bytes within it */
    uint8_t sniff_peek[SERVER_SNIFF_PEEK_BYTES];
    uint64_t nospace_raised_ms; /* api.c: the last NOSPACE alarm proposed */
    bool http_start_failed;     /* http_server.c: not tried again */
    void *http;                 /* registry/http state, when built */
    void *watch;     /* watch service state (registry/server/api_watch.c) */
    void *lease;     /* lease service state (registry/server/api_lease.c) */
    void *compactor; /* auto compaction (compactor.c), when on */
    void *health;    /* active health checks (registry/services) */
    void *config;    /* config center state (registry/config) */
    void *tls;       /* client-port TLS (tls_conn.c), when https */
    void *peer_tls;  /* the --peer-* file watch (tls_peer.c) */
    /* registry API counters for /metrics (registry/services, and the
     * discovery streams in registry/http) */
    struct {
        uint64_t sessions_created;
        uint64_t registrations;
        uint64_t deregistrations;
        uint64_t session_expired; /* 410 answers */
        uint64_t discovery_reads;
        uint64_t subscribers_total;
        uint64_t subscribers_open;
        uint64_t push_messages;
    } svc_ctr;
    struct auth *auth;    /* users, roles, tokens (consensus/auth) */
    struct auth_jwt *jwt; /* --auth-token jwt,... (auth_jwt.h), or NULL */
    /* Every API call's time from api_call to its answer (gRPC unary,
     * the JSON gateway, and the registry and config APIs' inner calls):
     * bucket i counts those of at most 0.5 ms << i, the last the rest.
     * Not cumulative. Loop thread only. */
    struct {
        uint64_t buckets[SERVER_LATENCY_BUCKETS];
        uint64_t count;
        uint64_t sum_ns;
    } api_latency;
};

/* Start everything from opt; on error msg names the problem. */
int server_start(struct server *s, uv_loop_t *loop, const struct options *opt,
                 char *msg, size_t msg_len);

/* Begin a graceful stop (what SIGTERM does). */
void server_stop(struct server *s);

/* internal: the client-port listeners (server_listen.c) */
int server__listen(struct server *s, char *msg, size_t msg_len);
void server__listen_close(struct server *s);
int server__grpc_init(struct server *s);
/* TCP_NODELAY and keep-alive on an accepted client socket (best effort) */
void server__socket_opts(uv_tcp_t *tcp);

/* Client-port TLS counters (tls_conn.c), for /metrics. */
struct server_tls_stats {
    uint64_t handshakes_ok;
    uint64_t handshakes_failed;   /* bad certificate, protocol, cipher... */
    uint64_t handshakes_timedout; /* TLS_HANDSHAKE_TIMEOUT_MS passed */
    uint64_t handshakes_refused;  /* LIMIT_CONNECTIONS reached */
    uint64_t handshaking;         /* gauge */
    uint64_t conns_open;          /* gauge: TLS connections, any state */
    uint64_t alpn_h2;             /* handed to gRPC */
    uint64_t alpn_http1;          /* handed to HTTP/1.1 */
    uint64_t reloads_ok;          /* certificate and key read again */
    uint64_t reloads_failed;      /* new files refused: the old ones kept */
};

/* The client's address ("1.2.3.4:5678") of the TLS connection whose
 * plaintext end the HTTP or gRPC side holds as fd; "" when fd is not one. */
void server__tls_peer(const struct server *s, int fd, char *buf, size_t len);

/* The same lookup, with the CN of that connection's verified client
 * certificate into cn[cn_len] when --client-cert-auth is on ("" when not,
 * when there is none, or when it does not fit: no name is cut). */
void server__tls_client(const struct server *s, int fd, char *peer,
                        size_t peer_len, char *cn, size_t cn_len);

void server__tls_stats(const struct server *s, struct server_tls_stats *out);

/* Reload the client port's certificate, key, CA and CRL on SIGHUP and when
 * one of those files changes (polled every second); established
 * connections keep what they were set up with. Called once the loop runs
 * the server; no-op without TLS. */
void server__tls_watch(struct server *s);

/* Extension points, each a weak default that a module may replace with a
 * strong definition (so a module plugs in without editing server.c):
 *  - server__stream_methods: streaming gRPC methods (Watch, LeaseKeepAlive,
 *    Snapshot...) appended to the unary table; returns how many it wrote
 *    (<= cap). Called once at start, after the node is open.
 *  - server__observe: fill the node observer (events for watchers, lease
 *    changes for lease timers, leader changes). Called before node_open;
 *    the node is not open yet (s->node is NULL).
 *  - server__modules_start / server__modules_stop: after the node is open
 *    and before it closes (timers, state). */
size_t server__stream_methods(struct server *s, struct grpc_method *out,
                              size_t cap);
void server__observe(struct server *s, struct node_observer *obs);
int server__modules_start(struct server *s, char *msg, size_t msg_len);
void server__modules_stop(struct server *s);

/* --auto-compaction-* (compactor.c); stop before the node closes. */
int server__compactor_start(struct server *s);
void server__compactor_stop(struct server *s);

/* Maintenance.Snapshot, a server stream (snapshot.c). */
void server__snapshot_method(struct server *s, struct grpc_method *m);

/* `cairnd snapshot restore|status ...` (argv[1] is "snapshot"); returns the
 * process exit code. */
int server_snapshot_command(int argc, char **argv);

/* The HTTP/1.1 side of the client port: a connection that is not gRPC.
 * Provided by registry/http when it is built in; takes fd (and the bytes
 * already read). Returns 0 when it took the fd. */
/* Checks what the HTTP side needs before anything listens (weak: 0). */
int server__http_preflight(char *msg, size_t msg_len);
/* A connection of a --listen-metrics-urls listener (weak: refused). */
int server__http_adopt_metrics(struct server *s, int fd, const void *pre,
                               size_t pre_len);
int server__http_adopt(struct server *s, int fd, const void *pre,
                       size_t pre_len);

#endif

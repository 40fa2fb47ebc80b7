/*
 * http_int.h - private to registry/http: the lws state, one connection's
 * request state, and the endpoint handlers shared between the files.
 */
#ifndef CAIRN_REGISTRY_HTTP_INT_H
#define CAIRN_REGISTRY_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h> /* before libwebsockets.h, which does not include it */

#include <libwebsockets.h>

#include "base/buf.h"
#include "registry/config/cfgapi.h"
#include "registry/http/http.h"
#include "registry/server/server.h"

/* Bytes of a stream's queue written per writable callback: bounds the
 * work one connection does per loop pass and what lws must buffer when
 * the kernel takes less. */
#define HTTP_WRITE_CHUNK_BYTES (64 * 1024)
/* Header tables lws may hold at once (each LIMIT_HEADER_BYTES, allocated
 * on demand, freed once a head is parsed) is the connection bound, up to
 * this: lws counts them in 16 bits. A connection past it waits for one. */
#define HTTP_HEADER_POOL_MAX   65535
/* Room for a response's header block (status line, content type and
 * length, CORS, connection, allow). */
#define HTTP_HDR_BLOCK_BYTES   1024
/* A response the kernel did not take at once is written by a drain
 * (http_server.c); a client that has not read it all after this long is
 * cut off. Generous: responses are bounded (range results), a slow
 * client is not a stalled one. */
#define HTTP_DRAIN_S           60
/* /health, /readyz: how long the quorum check may take (etcd: 1 s). */
#define HTTP_HEALTH_TIMEOUT_MS 1000
/* Authorization header kept for the gateway call (a raw etcd token). */
#define HTTP_TOKEN_MAX         1024 /* a JWT signed with RSA-4096 fits */
/* A stream (gateway watch or keep-alive, WebSocket watch) whose outbound
 * queue stays at its bound (LIMIT_CONN_OUT_BYTES) with nothing written for
 * this long is closed: the client is not reading. Its watchers were moved
 * to catch up from the store meanwhile, so memory stayed bounded; the
 * client reconnects from the last revision it saw. */
#define HTTP_STREAM_STALL_S    15 /* the default of --stall-timeout */
/* Bytes of one WebSocket frame we send (a longer message goes out as
 * continuation frames, one per writable callback). */
#define HTTP_WS_FRAME_BYTES    (64 * 1024)
/* Bytes of framed messages gathered for one socket before one write. */
#define HTTP_CORK_BYTES        (64 * 1024)
/* A pushed WebSocket message body this large is queued by reference to
 * one refcounted copy (struct http_blob) for every subscriber, not copied
 * into each queue: a 1 MiB config published to 10,000 subscribers holds
 * 1 MiB, not 10 GB. */
#define HTTP_SHARE_MIN_BYTES   (16 * 1024)

/* An immutable byte string shared by the queues that hold it. */
struct http_blob {
    uint32_t refs;
    size_t len;
    uint8_t data[];
};
struct http_blob *http__blob_new(const void *p, size_t n); /* refs 1 */
void http__blob_unref(struct http_blob *b);

/* Chunked request bodies (http_chunked.c): extension bytes (after the
 * size digits of every chunk) and trailer-section bytes one body may
 * carry. Both are skipped, never stored; the bounds keep the framing of a
 * body within its data bytes times a small factor (a size line is at most
 * 16 digits and CRLF), so LIMIT_REQUEST_BYTES bounds the wire bytes too. */
#define HTTP_CHUNK_EXT_BYTES     4096
#define HTTP_CHUNK_TRAILER_BYTES 8192

/* Counters for /metrics. */
struct http_stats {
    uint64_t conns_total;
    uint64_t conns_refused;
    uint64_t requests_total;
    uint64_t gateway_calls;
    uint64_t responses_2xx;
    uint64_t responses_3xx;
    uint64_t responses_4xx;
    uint64_t responses_5xx;
    uint64_t bodies_too_large;
    uint64_t bad_json;
    uint64_t chunked_bodies;   /* chunked request bodies decoded */
    uint64_t bad_chunked;      /* malformed chunked framing (400) */
    uint64_t host_refused;     /* 421: Host not in --host-whitelist */
    uint64_t pipelined_closed; /* see on_body_done() */
    uint64_t streams_total;    /* gateway streams and WebSockets opened */
    uint64_t streams_stalled;  /* closed by HTTP_STREAM_STALL_S */
    uint64_t ws_bad_messages;  /* undecodable or oversized WS messages */
    uint64_t mux_requests;     /* requests on /api/v1/stream sockets */
    uint64_t mux_errors;       /* of those, answered with an error */
    uint64_t mux_limit_hits;   /* refused at --ws-subscriptions-max, at
                                * MUX_CALLS_MAX or --ws-message-bytes-max */
    uint64_t push_encoded;     /* stream messages encoded (http_share.c) */
    uint64_t push_shared;      /* ... found encoded for another subscriber */
    uint64_t push_direct;      /* WebSocket messages written at once */
    uint64_t push_cork_writes; /* ... the writes that carried them */
    uint64_t push_by_ref;      /* messages queued by reference (blobs) */
};

struct hstream;

/* One encoding per change for the discovery and config streams
 * (http_share.c): the last HTTP_SHARE_REG discovery messages and the last
 * HTTP_SHARE_CFG resolved config changes. A hub pass delivers one change
 * to every subscriber before the next, so a few entries suffice; more
 * only cover subscribers catching up from older revisions. */
#define HTTP_SHARE_REG 16
#define HTTP_SHARE_CFG 8

struct http_share_reg {
    bool used;
    bool del;
    bool has_prev;
    int64_t rev;
    uint8_t *key;
    size_t key_len;
    char *text; /* NULL: nothing to send for this event */
    size_t text_len;
};

#define HTTP_SHARE_VARIANTS 4
struct http_share_cfg {
    struct cfg_change *change; /* NULL: empty */
    struct cfg_id id;
    int64_t rev;
    /* the change's large texts as blobs, keyed by the text's address */
    const char *blob_of[HTTP_SHARE_VARIANTS];
    struct http_blob *blob[HTTP_SHARE_VARIANTS];
};

struct http_share {
    struct http_share_reg reg[HTTP_SHARE_REG];
    struct http_share_cfg cfg[HTTP_SHARE_CFG];
    size_t reg_next;
    size_t cfg_next;
};

struct http {
    struct server *s;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    char metrics_tag; /* its address marks metrics connections (lws opaque) */
    void *loops[1];   /* the server's loop, for lws */
    uv_check_t watch; /* notices server_stop() */
    uv_timer_t reap;  /* waits for lws to finish */
    uv_timer_t sweep; /* cuts stalled streams (http__streams_sweep) */
    uint32_t reap_ticks;
    bool stopped; /* http_stop ran */
    int pending;  /* handles still open (with the drains) */
    int in_rx_cb; /* inside lws's read-path callbacks (resp_written) */
    uint64_t conns_open;
    struct http_stats st;
    struct hstream *streams; /* open streams (http_stream.c) */
    uint64_t streams_open;
    uint64_t mux_subs_open; /* subscriptions on /api/v1/stream sockets */
    uint8_t *tx;            /* LWS_PRE + one frame or slice: write scratch */
    /* WebSocket messages of one hub pass for one socket, framed, sent by
     * one write (http_stream.c, write_now()); flushed when another socket
     * writes, when full, before the socket's own writable callback and
     * after every hub pass (flush, a prepare handle) */
    uint8_t *cork; /* LWS_PRE + HTTP_CORK_BYTES */
    size_t cork_len;
    struct hstream *cork_hs; /* whose bytes cork holds, or NULL */
    uv_prepare_t flush;
    struct http_share share;
};

/* What a connection's request is waiting for. */
enum http_wait {
    HTTP_WAIT_NONE = 0,
    HTTP_WAIT_BODY,   /* gateway body arriving */
    HTTP_WAIT_CALL,   /* an api_call in flight */
    HTTP_WAIT_WRITE,  /* response queued, being written */
    HTTP_WAIT_STREAM, /* a stream answers (c->hs) */
};

/* Which stream a gateway path or WebSocket opens (0: none). */
enum http_stream_kind {
    HTTP_STREAM_NONE = 0,
    HTTP_STREAM_WATCH,     /* POST /v3/watch: chunked {"result":...} lines */
    HTTP_STREAM_KEEPALIVE, /* POST /v3/lease/keepalive: the same */
    HTTP_STREAM_WS,        /* WebSocket watch: one message per response */
};

/* Why an api_call was made (decides how its answer is rendered). */
enum http_purpose {
    HTTP_FOR_GATEWAY = 0,
    HTTP_FOR_HEALTH,
    HTTP_FOR_READYZ,
    HTTP_FOR_LIVEZ,
};

/* Where a chunked body's decoder is (http_chunked.c). */
enum http_chunk_state {
    HTTP_CHUNK_SIZE = 0, /* hex digits of a chunk size */
    HTTP_CHUNK_BWS,      /* blanks after the digits */
    HTTP_CHUNK_EXT,      /* ";" seen: extensions up to CR */
    HTTP_CHUNK_SIZE_LF,  /* the LF of the size line */
    HTTP_CHUNK_DATA,     /* size bytes of data left */
    HTTP_CHUNK_DATA_CR,  /* the CRLF after the data */
    HTTP_CHUNK_DATA_LF,
    HTTP_CHUNK_TRAILER,      /* a trailer field line, or the final CRLF */
    HTTP_CHUNK_TRAILER_TEXT, /* inside a trailer field line */
    HTTP_CHUNK_TRAILER_LF,   /* the LF of a trailer field line */
    HTTP_CHUNK_END_LF,       /* the LF of the final CRLF */
    HTTP_CHUNK_DONE,         /* the whole body is in */
    HTTP_CHUNK_FAILED,       /* an error was returned: feed no more */
};

struct http_chunked {
    enum http_chunk_state state;
    uint64_t size;   /* the chunk's size, then its data bytes left */
    uint32_t digits; /* hex digits of the size so far */
    uint32_t ext_bytes;
    uint32_t trailer_bytes;
    const char *why; /* static text of the ERR_BAD_REQUEST */
};

void http__chunked_init(struct http_chunked *ck);

/* Decode in[0..len) of a chunked body, appending its data to out (whose
 * cap_max is the body bound). *used gets the bytes consumed: all of them
 * unless the body ended (or failed) inside in. Returns 0 when more is
 * needed, 1 when the body is complete (in[*used..len) is what follows it),
 * ERR_BAD_REQUEST for malformed framing (ck->why says what, in Go's
 * words), ERR_LIMIT when a chunk's size would take the body past
 * out->cap_max (before its data arrives), or -ENOMEM. After a non-zero
 * return it must not be called again. */
int http__chunked_feed(struct http_chunked *ck, const uint8_t *in, size_t len,
                       struct buf *out, size_t *used);

struct http_conn;

/* The tail of a response the kernel did not take at once, written on a
 * dup of the connection's socket while lws is paused (http_server.c). */
struct http_drain {
    uv_tcp_t tcp;
    uv_write_t wr;
    struct http *h;
    struct http_conn *c; /* NULL once the connection went */
    uint8_t hdr[HTTP_HDR_BLOCK_BYTES];
    struct buf body; /* the response (LWS_PRE, then the body) */
};

/* One connection (lws per-session data: zeroed by lws, lives as long as
 * the connection; reset at the start of each request). */
struct http_conn {
    struct http *h;
    struct lws *wsi;
    enum http_wait wait;
    enum http_purpose purpose;
    const struct api_method *m;
    enum http_stream_kind skind; /* a stream path was asked for */
    struct hstream *hs;          /* the stream, once started */
    struct api_op *op;           /* pending call, for api_cancel on close */
    struct http_api_req *api;    /* an /api/v1/ request (http_api.c) */
    struct svc_req *svc;         /* its call in flight, for svc_cancel */
    struct cfg_req *cfg;         /* a config call in flight (cfgapi_cancel) */
    uint64_t body_limit;         /* 0: --max-request-bytes */
    char etag[80];               /* an ETag header for the answer, or "" */
    const char *cache_control;   /* a Cache-Control header, or NULL */
    const char *location;        /* a Location header, or NULL */
    bool close_after;     /* close instead of keep-alive (body refused) */
    bool written;         /* every byte of the response is with the kernel */
    bool body_expected;   /* Content-Length > 0: lws will deliver a body */
    bool kill;            /* close from the next writable callback */
    bool body_done;       /* lws reported this request's body complete */
    bool exclude_nospace; /* /health?exclude=NOSPACE */
    bool chunked;         /* the body comes in the chunked coding */
    bool rx_paused;       /* lws_rx_flow_control off: see rx_pause() */
    bool head;            /* a HEAD request: the answer goes without body */
    int status;
    const char *ctype;
    struct buf body; /* request body */
    struct http_chunked ck;
    struct buf resp;          /* LWS_PRE bytes of headroom, then the body */
    struct http_drain *drain; /* writing the response's tail */
    char token[HTTP_TOKEN_MAX];
};

/* Queue a response (body copied) and ask for a writable callback. */
int http__respond(struct http_conn *c, int status, const char *ctype,
                  const void *body, size_t len);

/* Close c's connection soon (from any context: inside lws's callbacks
 * or outside, as from an api_call completion). */
void http__conn_kill(struct http_conn *c);

/* The client's address for logs and audit ("1.2.3.4:5678"): on a TLS port
 * lws holds one end of a socketpair, so the address comes from the TLS
 * layer (registry/server/tls_conn.c); else from the socket. */
void http__peer(const struct http *h, struct lws *wsi, char *buf, size_t len);

/* http__peer, and the CN of the connection's verified TLS client
 * certificate under --client-cert-auth into cn[cn_len] ("" when none). */
void http__client(const struct http *h, struct lws *wsi, char *peer,
                  size_t peer_len, char *cn, size_t cn_len);

/* The gateway error body {"error","message","code"} for err (a base/err.h
 * code) or, when text is not NULL, for code with that text. */
int http__respond_error(struct http_conn *c, int err, enum grpc_code code,
                        const char *text);

/* protobuf-c allocations through base/alloc.h. */
ProtobufCAllocator *http__pb_allocator(void);

/* JSON string literal of s[0..n) (Go's escaping) appended to out. */
int http__json_quote(struct buf *out, const char *s, size_t n);

/* Endpoints (http_endpoints.c). Each returns 0 when it answered or started
 * something that will answer, else an error the caller turns into a 500. */
int http__get_version(struct http_conn *c);
int http__get_metrics(struct http_conn *c);
int http__get_health(struct http_conn *c, enum http_purpose which);
/* An internal call (health checks) finished: render its answer. */
void http__health_done(struct http_conn *c, int err, const uint8_t *resp,
                       size_t len);

/* Collect the request body (bounded, 413 past it; a gateway method m, a
 * stream c->skind, or an /api/v1/ request c->api), then dispatch it. */
int http__body_start(struct http_conn *c, const struct api_method *m);

/* /api/v1/ (http_api.c): route a request (sets c->api, then collects the
 * body), dispatch it once the body is in, and drop it when the
 * connection or request ends (cancels a call in flight). */
struct http_api_req;
struct svc_req;
int http__api_route(struct http_conn *c, const char *path, int meth);
/* A JSON error of the /api/v1 APIs (docs/registry.md, "Errors"). */
int http__api_error(struct http_conn *c, int status, const char *code,
                    const char *message);
/* The query string of the request on wsi, fragments joined with '&'. */
int http__query_join(struct lws *wsi, char *out, size_t len);
/* Discovery and config streams (http_stream.c): WebSocket upgrades and
 * SSE GETs under these paths; http__reg_sse_start serves both. */
#define REG_WATCH_PATH "/api/v1/watch/registry/"
#define CFG_WATCH_PATH "/api/v1/watch/config/"
/* The multiplexed WebSocket (http_mux.c): a plain request there is 400. */
#define MUX_PATH       "/api/v1/stream"
int http__reg_sse_start(struct http_conn *c, const char *path,
                        const char *query);
int http__api_dispatch(struct http_conn *c);
/* Stop reading the connection until its answer is out (a client that
 * half-closes after its request still gets it: http_server.c). */
void http__rx_pause(struct http_conn *c);
void http__api_clear(struct http_conn *c);

/* Start api_call for c (purpose and m set); answers through c. */
int http__call(struct http_conn *c, const uint8_t *req, size_t len,
               uint32_t timeout_ms);

/* Streams (http_stream.c). */

/* The next JSON value of a body holding several, p[*off..len): its bounds
 * [*start, *end) and *off moved past it; 1 when only whitespace is left.
 * Only the nesting is followed (the decoder checks the rest): an
 * unterminated value runs to len, so its decode fails. */
int http__json_next(const char *p, size_t len, size_t *off, size_t *start,
                    size_t *end);

/* The gateway path of a stream (with the /v3beta/ and /v3alpha/ aliases),
 * or HTTP_STREAM_NONE. */
enum http_stream_kind http__stream_kind(const char *path);

/* The request body of a stream path is complete (c->body): start the
 * stream (c->wait becomes HTTP_WAIT_STREAM) or queue an error response.
 * Returns non-zero when the connection must close. */
int http__stream_start(struct http_conn *c);

/* lws callbacks for a connection with c->hs (HTTP_WRITEABLE of a gateway
 * stream; SERVER_WRITEABLE, RECEIVE of a WebSocket). Non-zero: close. */
int http__stream_writable(struct http_conn *c);
int http__ws_receive(struct http_conn *c, const void *in, size_t len);

/* WebSocket upgrade: is the path one of ours (0) or not (-1)? And the
 * socket is established: set up c (zeroed by lws) as a WebSocket watch. */
int http__ws_confirm(struct lws *wsi);
int http__ws_established(struct http *h, struct http_conn *c, struct lws *wsi);

/* The connection is going: close the stream (hub stream, keep-alive in
 * flight) and free it. Idempotent. */
void http__stream_free(struct http_conn *c);

/* Server stop: every stream leaves the watch hub now (the hub closes right
 * after); the connections close with the lws context. */
void http__streams_stop(struct http *h);

/* Write what h->cork holds for its socket (a no-op when empty). */
void http__cork_flush(struct http *h);

/* http_uvpoll.c: cairnd's uv_poll_start. kept: calls that asked for the
 * events already asked for (nothing done); changed: calls that changed
 * them in place (one epoll_ctl MOD at the next poll, not DEL + ADD);
 * active: false when the loaded libuv is not the one the shortcut was
 * written for (every call then goes to libuv). */
void http__uvpoll_counts(uint64_t *kept, uint64_t *changed, bool *active);

/* Every HTTP_SWEEP_MS: close the streams whose queue stayed at its bound
 * with nothing written for HTTP_STREAM_STALL_S, and write the SSE
 * keep-alive comments that are due (one walk of the open streams, now_ms
 * from the loop's clock). */
#define HTTP_SWEEP_MS 1000
void http__streams_sweep(struct http *h, uint64_t now_ms);

/* One encoding per change (http_share.c). http__share_reg: the message
 * text of discovery event e ({"type":..,"revision":..,"instance":..}),
 * *text NULL when e sends nothing; http__share_cfg: config id at rev,
 * resolved (cfgapi.h). Both borrowed until the next call on h; 0 or an
 * error (not kept: the next call tries again). http__share_free empties
 * both rings. */
struct kv_event;
int http__share_reg(struct http *h, const struct kv_event *e, const char **text,
                    size_t *len);
int http__share_cfg(struct http *h, const struct cfg_id *id, int64_t rev,
                    const struct cfg_change **out);
/* The blob of text (n bytes, a text of change c from http__share_cfg),
 * made once per text while c is in the ring; borrowed like c (take a ref
 * to keep it). NULL when it is short (HTTP_SHARE_MIN_BYTES), when c's
 * variants are all taken, or out of memory: then copy the text. */
struct http_blob *http__share_cfg_blob(struct http *h,
                                       const struct cfg_change *c,
                                       const char *text, size_t n);
void http__share_free(struct http *h);

/* Provided by registry/server (api_watch.c, api_lease.c). */
struct watch_hub *api_watch__hub(struct server *s);
struct watch_create;
void api_watch__create_from_pb(struct server *s,
                               const Etcdserverpb__WatchCreateRequest *r,
                               const char *token, struct watch_create *wc);
void api_watch__kick(struct server *s);
typedef void (*api_lease_renew_fn)(void *ctx, int err, int64_t ttl);
int api_lease_renew(struct server *s, int64_t id, api_lease_renew_fn done,
                    void *ctx);

#endif

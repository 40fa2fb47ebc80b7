/*
 * http_stream_int.h - private to http_stream.c and http_mux.c: a stream
 * (one connection's pushed messages and its outbound queue) and the
 * subscriptions it carries.
 *
 * A single-purpose discovery or config stream (/api/v1/watch/...) holds
 * one subscription with id 0, whose messages go out untagged; the
 * multiplexed socket (MUX_PATH, http_mux.c) holds up to
 * --ws-subscriptions-max of them, each tagged {"sub":id,..}. Every
 * subscription of a stream shares its hub stream (one watcher each, told
 * apart by watch_id), its outbound queue and that queue's bound and
 * stall cut-off.
 */
#ifndef CAIRN_REGISTRY_HTTP_STREAM_INT_H
#define CAIRN_REGISTRY_HTTP_STREAM_INT_H

#include <jansson.h>

#include "registry/config/cfgapi.h"
#include "registry/http/http_int.h"

#define WS_CLOSE_REASON_MAX 120

/* REST calls (session, keepalive) in flight on one multiplexed socket;
 * one more is answered resource_exhausted. Each holds a small struct and
 * a proposal or renewal; 64 covers a client's sessions many times. */
#define MUX_CALLS_MAX          64
#define MUX_SUBS_HARD_MAX      HTTP_MUX_SUBS_HARD_MAX
#define MUX_MSG_BYTES_HARD_MAX HTTP_MUX_MSG_BYTES_HARD_MAX

struct ka_ticket;
struct hstream;

/* One discovery or config subscription. */
struct hsub {
    struct hstream *hs;
    struct hsub *next;     /* hs->subs */
    struct hsub *tab_next; /* hs->sub_tab's chain (id != 0) */
    int64_t id;            /* the client's id on a multiplexed socket, else 0 */
    bool cfg;              /* a config subscription (else discovery) */
    bool resnap;           /* a snapshot is due (after a compaction) */
    bool check_only;       /* since > 0: read only to check, then watch */
    bool answered;         /* multiplexed: the subscribe was answered */
    bool watching;         /* a hub watcher with watch_id is live */
    bool counted;          /* in svc_ctr.subscribers_open */
    /* the key prefix followed, the revision of the last message sent (the
     * resume point), the hub watcher, the snapshot read in flight */
    size_t key_len;
    char key[512];
    int64_t rev;
    int64_t watch_id;
    struct api_op *op;
    char *token; /* the caller's token, or NULL (none) */
    /* the token's user when the subscription was made (NULL: none), and
     * the auth revision its read permission was last checked at: a later
     * revision checks it again before the next message (sub_recheck) */
    char *user;
    uint64_t auth_rev;
    bool revoked; /* refused since: ends outside the hub's pass */
    /* config: who the client is, the one config it follows (or "" for
     * all under key), its entry in the subscribers view */
    struct cfg_client *cfg_client; /* config only (4 KB of labels) */
    char cfg_ns[CFG_NAME_MAX + 1];
    char cfg_app[CFG_NAME_MAX + 1];
    char cfg_name[CFG_NAME_MAX + 1];
    struct cfg_sub *cfg_sub;
};

/* A REST call made for a multiplexed socket (http_mux.c). */
struct mux_call {
    struct hstream *hs; /* outlives the call: cancelled before it goes */
    struct mux_call *next;
    struct svc_req *req; /* in flight; NULL once answered */
    json_t *id;          /* the request's id, echoed */
    int op;              /* which op (http_mux.c) */
};

struct hstream {
    struct http *h;
    struct http_conn *c;
    struct lws *wsi;
    struct hstream *prev, *next; /* h->streams */
    enum http_stream_kind kind;
    bool wrap;          /* {"result":...} around each response */
    bool headers_sent;  /* gateway kinds */
    bool hub_blocked;   /* the hub got ERR_BUSY: tell it when drained */
    bool stall_armed;   /* blocked: the sweep watches stall_ms */
    bool stall_cut;     /* the sweep closes it (counted as stalled) */
    bool rx_paused;     /* WebSocket reads stopped while blocked */
    bool doomed;        /* a response could not be encoded: end */
    bool ending;        /* nothing more will be queued: finish when drained */
    bool in_send;       /* inside the hub's send callback */
    bool direct;        /* enqueue may write at once (see write_now()) */
    uint64_t stall_ms;  /* blocked since, or last progress while blocked */
    uint64_t sse_ka_ms; /* SSE: the next keep-alive comment is due */
    int close_status;   /* WebSocket close code when ending */
    char close_reason[WS_CLOSE_REASON_MAX];
    struct watch_stream *st;
    /* outbound: HTTP chunks, or WebSocket messages as [be32 len][bytes],
     * or by reference (http_stream.c, enqueue_blob) */
    struct buf out;
    size_t out_off;
    size_t out_shared; /* bytes of the blobs queued by reference */
    size_t msg_sent;   /* WebSocket: bytes of the head message sent */
    /* keep-alive: the requests of the body not yet answered */
    struct buf reqs;
    size_t req_off;
    struct ka_ticket *ticket;
    int64_t ka_id;   /* the request being answered */
    bool ka_looping; /* inside ka_next: ka_done must not re-enter it */
    /* WebSocket: the message being received */
    struct buf in;
    bool in_skip; /* multiplexed: the message is over the bound */
    char token[HTTP_TOKEN_MAX];
    /* registry and config streams: the CN of the connection's verified TLS
     * client certificate under --client-cert-auth (heap), or NULL: the
     * user of a subscription without a token (etcd's rule) */
    char *cn;
    /* discovery and config: reg is a single-purpose stream (one sub),
     * reg_sse its SSE framing; mux the multiplexed socket */
    bool reg;
    bool reg_sse;
    bool mux;
    struct hsub *subs;
    size_t subs_count;
    /* multiplexed: the subscriptions by id, chained by tab_next (every
     * one with an id, or NULL: then found by walking subs); sub_tab_cap
     * is a power of two */
    struct hsub **sub_tab;
    size_t sub_tab_cap;
    bool subs_due;     /* a sub is revoked or due a snapshot: subs_resnap */
    int64_t watch_seq; /* the last hub watch_id given out */
    struct mux_call *calls;
    size_t calls_count;
};

/* http_stream.c, for http_mux.c. */

/* Queue o (a reference taken) as one text message. 0, -ENOMEM, ERR_LIMIT. */
int http__stream_send_json(struct hstream *hs, json_t *o);
/* Stop the hub and reads until the queue drains (see block()). */
void http__stream_block(struct hstream *hs);
/* A new subscription on hs (linked; not started), token copied; a config
 * one (cfg) gets its zeroed cfg_client. NULL on out of memory. */
struct hsub *http__sub_new(struct hstream *hs, int64_t id, const char *token,
                           bool cfg);
/* Start sub (key, and for config the cfg_ fields, set): snapshot then
 * events, or from since + 1. 0, or an error (sub still linked: free it). */
int http__sub_reg_start(struct hsub *sub, int64_t since);
int http__sub_cfg_start(struct hsub *sub, int64_t since);
/* The subscription with the client's id on a multiplexed socket, or
 * NULL. */
struct hsub *http__sub_find(const struct hstream *hs, int64_t id);
/* Unlink and free sub: its read is cancelled, its watcher cancelled (not
 * from inside the hub's send callback unless it is no longer watching). */
void http__sub_free(struct hsub *sub);
/* An ack a ({"name","version"[,"app"]}) on config sub: 0, or a static
 * text saying what is wrong in *why (field in *field). */
int http__sub_ack(struct hsub *sub, json_t *a, const char **why,
                  const char **field);

/* An ack read without jansson (http_ack.c): the strings point into the
 * message (not NUL-terminated); name, app NULL when absent. */
struct http_ack {
    int64_t sub; /* multiplexed: the subscription */
    int64_t version;
    const char *name;
    size_t name_len;
    const char *app;
    size_t app_len;
};
/* true when js is an ack of the plain shape (mux: {"op":"ack","sub",
 * "name"?,"app"?,"version"}; else {"ack":{"name"?,"app"?,"version"}}); false:
 * read it with jansson, which decides everything else. */
bool http__ack_read(const char *js, size_t len, bool mux, struct http_ack *a);
/* http__sub_ack of a read ack. */
int http__sub_ack_read(struct hsub *sub, const struct http_ack *a,
                       const char **why, const char **field);

/* http_mux.c, for http_stream.c. */

/* One whole client message on a multiplexed socket. */
void http__mux_message(struct hstream *hs, const char *json, size_t len);
/* A message over the bound was dropped: answer it. */
void http__mux_too_large(struct hstream *hs, uint64_t max);
/* The socket goes: cancel the REST calls in flight. */
void http__mux_detach(struct hstream *hs);
/* The bound of one client message on a multiplexed socket. */
uint64_t http__mux_msg_max(const struct hstream *hs);

#endif

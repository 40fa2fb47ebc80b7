/*
 * http_stream.c - the streams of the HTTP/1.1 side: etcd's gateway watch
 * and lease keep-alive (POST /v3/watch, POST /v3/lease/keepalive, with
 * the /v3beta/ and /v3alpha/ aliases), and WebSocket watch streams at
 * /v3/watch (and aliases) and /ws/watch.
 *
 * Gateway streams (etcd-api.md 1.4, as etcd 3.4's grpc-gateway serves
 * them). The body holds one or more JSON request messages, one after the
 * other (whitespace between them, usually a newline). The answer is a
 * chunked HTTP/1.1 response; each response message is one chunk holding
 * one line, {"result":{...}}\n. A watch runs until the client goes away or
 * the server stops; its headers go out with the first message (etcd's
 * gateway waits for it too). A keep-alive stream answers each request in
 * order, then ends (etcd ends the call when the client half-closes, which
 * the gateway does after the body). A first message that does not decode
 * gets etcd's non-stream error (500, code 2, Unknown); an undecodable
 * later message ends the list of requests, as etcd's gateway stops
 * reading there.
 *
 * WebSocket watch. An upgrade at one of the watch paths opens one hub
 * stream for the socket; every text (or binary) message from the client is
 * one JSON WatchRequest (create, cancel, progress), so one socket carries
 * many watches, told apart by watch_id as on a gRPC Watch stream. Each
 * WatchResponse is one text message: at /v3/watch wrapped as
 * {"result":{...}}, byte for byte what etcd's gateway sends over its
 * WebSocket proxy; at /ws/watch the bare WatchResponse object (Cairn's
 * path: one level less to unwrap). A message that does not decode gets an
 * {"error":{grpc_code,http_code,message,http_status}} message (the
 * gateway's stream error shape) and the socket stays open; a message over
 * --max-request-bytes closes it with 1009; malformed frames and invalid
 * UTF-8 are closed by lws (1002, 1007). A client resumes after a cut by
 * creating its watches again with start_revision = last revision seen + 1:
 * the hub replays exactly what it missed (or cancels with
 * compact_revision when that history is gone).
 *
 * Flow control. The hub sends only inside watch_hub_run (api_watch.c's
 * idle handle); send_resp() encodes into this stream's outbound queue and
 * asks lws for a writable callback. A queue at LIMIT_CONN_OUT_BYTES
 * answers ERR_BUSY: the hub keeps the response, stops sending on the
 * stream, and its watchers fall back to reading the store's history when
 * their own bounded queues fill, so memory stays bounded whatever the
 * client does. Writes drain the queue in slices (HTTP_WRITE_CHUNK_BYTES,
 * HTTP_WS_FRAME_BYTES) one per writable callback; below half the bound
 * the hub is told (watch_stream_writable). While blocked, a WebSocket's
 * reads stop too, and a stream whose queue makes no progress for
 * HTTP_STREAM_STALL_S is closed (lws timeout): the client is not reading.
 *
 * Discovery and config streams (below, "registry discovery") follow a
 * key prefix for one subscription (struct hsub); the multiplexed socket
 * (http_mux.c) holds many on one hub stream and this same queue.
 *
 * Ends. Client gone: lws reports CLOSED, the hub stream is closed (nothing
 * is sent after) and a keep-alive renewal still in flight is detached from
 * its ticket. Server stop: http__streams_stop() closes every hub stream
 * before the hub itself closes; the sockets close with the lws context.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/apply/apply.h"
#include "consensus/watch/watch.h"
#include "proto/kv.pb-c.h"
#include "proto/rpc.pb-c.h"
#include "registry/config/cfgapi.h"
#include "registry/http/http_int.h"
#include "registry/http/http_stream_int.h"
#include "registry/server/api_auth.h"
#include "registry/services/services.h"

/* A keep-alive renewal in flight holds a ticket; the stream may go first. */
struct ka_ticket {
    struct hstream *hs; /* NULL once the stream is gone */
};

/* ------------------------------------------------------------- helpers */

enum http_stream_kind http__stream_kind(const char *path)
{
    const char *rest;
    if (strncmp(path, "/v3/", 4) == 0) {
        rest = path + 4;
    } else if (strncmp(path, "/v3beta/", 8) == 0) {
        rest = path + 8;
    } else if (strncmp(path, "/v3alpha/", 9) == 0) {
        rest = path + 9;
    } else {
        return HTTP_STREAM_NONE;
    }
    if (strcmp(rest, "watch") == 0) {
        return HTTP_STREAM_WATCH;
    }
    if (strcmp(rest, "lease/keepalive") == 0) {
        return HTTP_STREAM_KEEPALIVE;
    }
    return HTTP_STREAM_NONE;
}

/* Bytes queued in the buffer itself. */
static size_t pending_raw(const struct hstream *hs)
{
    ASSERT(hs->out_off <= hs->out.len);
    return hs->out.len - hs->out_off;
}

/* Bytes the client has still to read (blobs queued by reference count
 * whole: the bounds are about what one client owes). */
static size_t pending(const struct hstream *hs)
{
    return pending_raw(hs) + hs->out_shared;
}

/*
 * A WebSocket message queued by reference: [be32 len | SHARED][be32 plen]
 * [prefix][be32 slen][suffix][be32 skip][blob pointer]. Its text is
 * prefix, the blob's bytes from skip, suffix; len is their sum. The entry
 * holds one ref on the blob, dropped when the message is written or the
 * stream goes.
 */
#define SHARED_FLAG 0x80000000u

static size_t shared_entry_bytes(const uint8_t *e)
{
    uint32_t plen = be32_get(e + 4);
    uint32_t slen = be32_get(e + 8 + plen);
    return 4 + 4 + plen + 4 + slen + 4 + sizeof(struct http_blob *);
}

static struct http_blob *shared_blob(const uint8_t *e, uint32_t *skip)
{
    uint32_t plen = be32_get(e + 4);
    uint32_t slen = be32_get(e + 8 + plen);
    const uint8_t *q = e + 12 + plen + slen;
    struct http_blob *b;
    *skip = be32_get(q);
    memcpy(&b, q + 4, sizeof(b));
    return b;
}

/* Copy n bytes of the shared message e's text from offset from. */
static void shared_copy(const uint8_t *e, size_t from, size_t n, uint8_t *dst)
{
    uint32_t plen = be32_get(e + 4);
    uint32_t slen = be32_get(e + 8 + plen);
    uint32_t skip;
    struct http_blob *b = shared_blob(e, &skip);
    const uint8_t *parts[3] = {e + 8, b->data + skip, e + 12 + plen};
    size_t lens[3] = {plen, b->len - skip, slen};
    for (int i = 0; i < 3 && n > 0; i++) {
        if (from >= lens[i]) {
            from -= lens[i];
            continue;
        }
        size_t k = lens[i] - from < n ? lens[i] - from : n;
        memcpy(dst, parts[i] + from, k);
        dst += k;
        n -= k;
        from = 0;
    }
}

/* The length of the WebSocket message at e, and whether it is shared. */
static uint32_t ws_entry_len(const uint8_t *e, bool *shared)
{
    uint32_t v = be32_get(e);
    *shared = (v & SHARED_FLAG) != 0;
    return v & ~SHARED_FLAG;
}

/* The stream goes: drop the refs its queue holds. */
static void queue_release(struct hstream *hs)
{
    size_t off = hs->out_off;
    if (hs->kind != HTTP_STREAM_WS) {
        return;
    }
    while (off + 4 <= hs->out.len) {
        const uint8_t *e = hs->out.data + off;
        bool shared;
        uint32_t len = ws_entry_len(e, &shared);
        if (shared) {
            uint32_t skip;
            http__blob_unref(shared_blob(e, &skip));
            off += shared_entry_bytes(e);
        } else {
            off += 4 + (size_t)len;
        }
    }
    hs->out_shared = 0;
}

static uint64_t out_max(const struct hstream *hs)
{
    return hs->h->s->limits.v[LIMIT_CONN_OUT_BYTES];
}

/* Iterative, one step per byte; strings are skipped with their escapes
 * so that braces inside them do not count. */
int http__json_next(const char *p, size_t len, size_t *off, size_t *start,
                    size_t *end)
{
    size_t i = *off;
    int depth = 0;
    bool in_str = false;
    while (i < len &&
           (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) {
        i++;
    }
    if (i == len) {
        *off = len;
        return 1;
    }
    *start = i;
    for (; i < len; i++) {
        char ch = p[i];
        if (in_str) {
            if (ch == '\\') {
                i++;
            } else if (ch == '"') {
                in_str = false;
            }
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            depth--;
        } else if (depth == 0 &&
                   (ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r')) {
            break;
        }
        if (depth <= 0 && !in_str && (ch == '}' || ch == ']')) {
            i++;
            break;
        }
    }
    *end = i < len ? i : len;
    *off = *end;
    return 0;
}

/* grpc-gateway v1's stream error: {"error":{grpc_code, http_code, message,
 * http_status}}. */
static int error_json(struct buf *out, enum grpc_code code, const char *text)
{
    char num[96];
    int status = grpc_code_http_status(code);
    int rc = buf_append(out, "{\"error\":{", 10);
    if (code != GRPC_OK) {
        snprintf(num, sizeof(num), "\"grpc_code\":%d,", (int)code);
        rc = rc != 0 ? rc : buf_append(out, num, strlen(num));
    }
    snprintf(num, sizeof(num), "\"http_code\":%d,\"message\":", status);
    rc = rc != 0 ? rc : buf_append(out, num, strlen(num));
    rc = rc != 0 ? rc : http__json_quote(out, text, strlen(text));
    rc = rc != 0 ? rc : buf_append(out, ",\"http_status\":", 15);
    const char *st = status == 400   ? "Bad Request"
                     : status == 429 ? "Too Many Requests"
                     : status == 503 ? "Service Unavailable"
                                     : "Internal Server Error";
    rc = rc != 0 ? rc : http__json_quote(out, st, strlen(st));
    return rc != 0 ? rc : buf_append(out, "}}", 2);
}

/* ------------------------------------------------------------ outbound */

/* A failed write means the connection is gone: nothing more is queued and
 * it is closed from lws's next pass, as http__conn_kill() does. */
static void write_failed(struct hstream *hs)
{
    hs->ending = true;
    lws_set_timeout(hs->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void http__cork_flush(struct http *h)
{
    struct hstream *hs = h->cork_hs;
    size_t n = h->cork_len;
    if (hs == NULL) {
        return;
    }
    h->cork_hs = NULL;
    h->cork_len = 0;
    /* framed already: lws writes the bytes as they are and keeps what the
     * kernel does not take, as for one message */
    if (lws_write(hs->wsi, h->cork + LWS_PRE, n, LWS_WRITE_HTTP) < (int)n) {
        write_failed(hs);
    }
    h->st.push_cork_writes++;
}

/* The header of one unmasked final text frame of n bytes into p; its
 * length. */
static size_t ws_frame_header(uint8_t *p, size_t n)
{
    p[0] = 0x81;
    if (n < 126) {
        p[1] = (uint8_t)n;
        return 2;
    }
    if (n < 65536) {
        p[1] = 126;
        p[2] = (uint8_t)(n >> 8);
        p[3] = (uint8_t)n;
        return 4;
    }
    p[1] = 127;
    for (int i = 0; i < 8; i++) {
        p[2 + i] = (uint8_t)((uint64_t)n >> (56 - 8 * i));
    }
    return 10;
}

/*
 * Write one WebSocket message outside lws's writable callback, when
 * nothing is queued before it. The queued path costs, per message, a
 * writable request and its cancel: with lws on libuv each is a
 * uv_poll_start, which libuv does as epoll_ctl DEL then ADD, so four
 * epoll_ctl calls and a loop pass before the send. A push to 10,000
 * subscribers spent more on those than on the sends.
 *
 * Here the message is framed into h->cork, which gathers the messages of
 * one socket in a row and goes out as one send() when another socket
 * writes, when it is full, and after the hub's pass (http_server.c's
 * prepare handle, before the loop polls). A socket carrying many
 * subscriptions (/api/v1/stream) so gets one send per change instead of
 * one per subscription; a socket with one costs a copy more than before.
 * The send has room unless the client stopped reading; lws keeps what the
 * kernel does not take (we write only when it holds nothing,
 * lws_partial_buffered()) and asks for the writable callback itself,
 * after which the queue drains as before and keeps the order: the cork is
 * flushed before the socket's writable callback writes anything.
 * Only from the hub's send callback (hs->direct), only whole messages of
 * one frame, only with the queue empty.
 */
static bool write_now(struct hstream *hs, const char *prefix, size_t plen,
                      const uint8_t *body, size_t len, const char *suffix,
                      size_t slen)
{
    struct http *h = hs->h;
    size_t total = plen + len + slen;
    if (!hs->direct || hs->kind != HTTP_STREAM_WS || pending(hs) != 0 ||
        total > HTTP_WS_FRAME_BYTES) {
        return false;
    }
    if (h->cork_hs != NULL &&
        (h->cork_hs != hs || h->cork_len + total + 10 > HTTP_CORK_BYTES)) {
        http__cork_flush(h);
    }
    if (hs->ending || hs->doomed || lws_partial_buffered(hs->wsi)) {
        return false;
    }
    ASSERT(hs->msg_sent == 0);
    if (total + 10 > HTTP_CORK_BYTES) { /* alone: as lws frames it */
        uint8_t *p = h->tx + LWS_PRE;
        memcpy(p, prefix, plen);
        memcpy(p + plen, body, len);
        memcpy(p + plen + len, suffix, slen);
        if (lws_write(hs->wsi, p, total, LWS_WRITE_TEXT) < (int)total) {
            write_failed(hs);
        }
    } else {
        uint8_t *p = h->cork + LWS_PRE + h->cork_len;
        size_t hl = ws_frame_header(p, total);
        memcpy(p + hl, prefix, plen);
        memcpy(p + hl + plen, body, len);
        memcpy(p + hl + plen + len, suffix, slen);
        h->cork_len += hl + total;
        h->cork_hs = hs;
    }
    h->st.push_direct++;
    return true;
}

static int enqueue(struct hstream *hs, const char *prefix, const uint8_t *body,
                   size_t len, const char *suffix);

/* Drop what was written once it is half the buffer; the rest moves to
 * the front. */
static void compact_out(struct hstream *hs)
{
    if (hs->out_off > 0 && hs->out_off * 2 >= hs->out.len) {
        memmove(hs->out.data, hs->out.data + hs->out_off, pending_raw(hs));
        hs->out.len -= hs->out_off;
        hs->out_off = 0;
    }
}

/* Queue one WebSocket message prefix + blob's bytes from skip + suffix by
 * reference (one ref taken), or write it at once; other kinds copy. */
static int enqueue_blob(struct hstream *hs, const char *prefix,
                        struct http_blob *b, size_t skip, const char *suffix)
{
    size_t plen = strlen(prefix);
    size_t slen = strlen(suffix);
    size_t total = plen + (b->len - skip) + slen;
    int rc;
    if (hs->kind != HTTP_STREAM_WS || total >= SHARED_FLAG) {
        return enqueue(hs, prefix, b->data + skip, b->len - skip, suffix);
    }
    if (write_now(hs, prefix, plen, b->data + skip, b->len - skip, suffix,
                  slen)) {
        return 0;
    }
    compact_out(hs);
    size_t old = hs->out.len;
    rc = buf_append_be32(&hs->out, (uint32_t)total | SHARED_FLAG);
    rc = rc != 0 ? rc : buf_append_be32(&hs->out, (uint32_t)plen);
    rc = rc != 0 ? rc : buf_append(&hs->out, prefix, plen);
    rc = rc != 0 ? rc : buf_append_be32(&hs->out, (uint32_t)slen);
    rc = rc != 0 ? rc : buf_append(&hs->out, suffix, slen);
    rc = rc != 0 ? rc : buf_append_be32(&hs->out, (uint32_t)skip);
    rc = rc != 0 ? rc : buf_append(&hs->out, &b, sizeof(b));
    if (rc != 0) {
        hs->out.len = old; /* no half entry; the callers end the stream */
        return rc;
    }
    b->refs++;
    hs->out_shared += b->len - skip;
    hs->h->st.push_by_ref++;
    lws_callback_on_writable(hs->wsi);
    return 0;
}

/* Queue one message: prefix + body + suffix, framed for the stream's kind
 * (an HTTP chunk holding one line, or a WebSocket message), or write it at
 * once (write_now()). */
static int enqueue(struct hstream *hs, const char *prefix, const uint8_t *body,
                   size_t len, const char *suffix)
{
    size_t plen = strlen(prefix);
    size_t slen = strlen(suffix);
    size_t total = plen + len + slen;
    char hdr[32];
    int rc;
    if (write_now(hs, prefix, plen, body, len, suffix, slen)) {
        return 0;
    }
    compact_out(hs);
    size_t old = hs->out.len;
    if (hs->kind == HTTP_STREAM_WS) {
        if (total >= SHARED_FLAG) {
            return ERR_LIMIT;
        }
        rc = buf_append_be32(&hs->out, (uint32_t)total);
    } else {
        total++; /* the line's "\n" */
        snprintf(hdr, sizeof(hdr), "%zx\r\n", total);
        rc = buf_append(&hs->out, hdr, strlen(hdr));
    }
    rc = rc != 0 ? rc : buf_append(&hs->out, prefix, plen);
    rc = rc != 0 ? rc : buf_append(&hs->out, body, len);
    rc = rc != 0 ? rc : buf_append(&hs->out, suffix, slen);
    if (rc == 0 && hs->kind != HTTP_STREAM_WS) {
        rc = buf_append(&hs->out, "\n\r\n", 3);
    }
    if (rc == 0) {
        lws_callback_on_writable(hs->wsi);
    } else {
        hs->out.len = old; /* no half message in the queue */
    }
    return rc;
}

static int enqueue_error(struct hstream *hs, enum grpc_code code,
                         const char *text)
{
    struct buf j;
    int rc;
    buf_init(&j, 4096 + strlen(text) * 6);
    rc = error_json(&j, code, text);
    if (rc == 0) {
        rc = enqueue(hs, "", j.data, j.len, "");
    }
    buf_free(&j);
    return rc;
}

/* Nothing more will be queued: finish once the queue is written (the
 * gateway's final chunk, or a WebSocket close with status). */
static void end_stream(struct hstream *hs, int ws_status, const char *reason)
{
    hs->ending = true;
    hs->close_status = ws_status;
    snprintf(hs->close_reason, sizeof(hs->close_reason), "%s", reason);
    if (hs->st != NULL) {
        watch_stream_close(hs->st);
        hs->st = NULL;
    }
    lws_callback_on_writable(hs->wsi);
}

/* ------------------------------------------------------------- encoding */

/* One hub response -> WatchResponse JSON (the same fields api_watch.c
 * puts on the gRPC stream). */
static int encode_resp(struct hstream *hs, const struct watch_resp *r,
                       struct buf *out)
{
    struct server *s = hs->h->s;
    Etcdserverpb__WatchResponse resp = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct node_status ns;
    size_t n = r->events_count;
    Mvccpb__Event *ev = NULL;
    Mvccpb__Event **evp = NULL;
    Mvccpb__KeyValue *kvs = NULL;
    int rc;
    if (n > 0) {
        ev = mem_alloc(n * sizeof(*ev));
        evp = mem_alloc(n * sizeof(*evp));
        kvs = mem_alloc(2 * n * sizeof(*kvs));
        if (ev == NULL || evp == NULL || kvs == NULL) {
            mem_free(ev);
            mem_free(evp);
            mem_free(kvs);
            return -ENOMEM;
        }
    }
    node_status(s->node, &ns);
    h.cluster_id = s->cluster_id;
    h.member_id = s->member_id;
    h.revision = r->revision;
    h.raft_term = ns.term;
    resp.header = &h;
    resp.watch_id = r->watch_id;
    resp.created = r->created;
    resp.canceled = r->canceled;
    resp.compact_revision = r->compact_revision;
    resp.cancel_reason =
        (char *)(r->cancel_reason != NULL ? r->cancel_reason : "");
    resp.fragment = r->fragment;
    for (size_t i = 0; i < n; i++) {
        const struct kv_event *e = &r->events[i];
        mvccpb__event__init(&ev[i]);
        ev[i].type = e->type == KV_EVENT_DELETE
                         ? MVCCPB__EVENT__EVENT_TYPE__DELETE
                         : MVCCPB__EVENT__EVENT_TYPE__PUT;
        apply_kv_to_pb(&e->kv, &kvs[2 * i]);
        ev[i].kv = &kvs[2 * i];
        if (e->has_prev) {
            apply_kv_to_pb(&e->prev, &kvs[2 * i + 1]);
            ev[i].prev_kv = &kvs[2 * i + 1];
        }
        evp[i] = &ev[i];
    }
    resp.n_events = n;
    resp.events = n > 0 ? evp : NULL;
    rc = http_pbjson_write(&resp.base, out);
    mem_free(ev);
    mem_free(evp);
    mem_free(kvs);
    return rc;
}

/* Stop the hub on this stream until the queue drains; a client that
 * never reads again is cut after HTTP_STREAM_STALL_S. */
static void block(struct hstream *hs)
{
    hs->hub_blocked = true;
    if (hs->kind == HTTP_STREAM_WS && !hs->rx_paused) {
        hs->rx_paused = true;
        lws_rx_flow_control(hs->wsi, 0);
    }
    if (!hs->stall_armed) {
        hs->stall_armed = true;
        hs->stall_ms = uv_now(hs->h->s->loop);
    }
}

static int reg_send(struct hstream *hs, const struct watch_resp *r);
static void subs_resnap(struct hstream *hs);
static bool reg_ws_path(struct lws *wsi);
static int reg_ws_start(struct hstream *hs);

/* The hub's send callback (runs inside watch_hub_run; must not call back
 * into the hub). */
static int send_resp(void *ctx, const struct watch_resp *r)
{
    struct hstream *hs = ctx;
    struct buf j;
    int rc;
    if (hs->doomed || hs->ending) {
        return ERR_BUSY;
    }
    if (pending(hs) >= out_max(hs)) {
        block(hs);
        return ERR_BUSY;
    }
    if (hs->reg || hs->mux) {
        hs->in_send = true;
        hs->direct = true;
        rc = reg_send(hs, r);
        hs->direct = false;
        hs->in_send = false;
        return rc;
    }
    /* one response is bounded by the hub's fragment size per event set;
     * the cap only stops a runaway */
    buf_init(&j, (size_t)out_max(hs) * 4 + (64u << 20));
    rc = encode_resp(hs, r, &j);
    if (rc == 0) {
        hs->direct = true;
        rc = enqueue(hs, hs->wrap ? "{\"result\":" : "", j.data, j.len,
                     hs->wrap ? "}" : "");
        hs->direct = false;
    }
    buf_free(&j);
    if (rc == -ENOMEM) {
        block(hs); /* retried when the queue drains */
        lws_callback_on_writable(hs->wsi);
        return ERR_BUSY;
    }
    if (rc != 0) {
        /* too large to send (or worse): end the stream from the writable
         * callback, outside the hub's pass */
        hs->doomed = true;
        lws_callback_on_writable(hs->wsi);
        return ERR_BUSY;
    }
    return 0;
}

/* -------------------------------------------------------------- requests */

static int decode_watch_req(struct hstream *hs, const char *json, size_t len,
                            Etcdserverpb__WatchRequest **out, char *msg,
                            size_t msg_len)
{
    struct buf pb;
    int rc;
    buf_init(&pb, (size_t)hs->h->s->limits.v[LIMIT_REQUEST_BYTES] + 65536);
    rc = http_pbjson_decode(&etcdserverpb__watch_request__descriptor, json, len,
                            &pb, msg, msg_len);
    if (rc == 0) {
        *out = etcdserverpb__watch_request__unpack(http__pb_allocator(), pb.len,
                                                   pb.data);
        if (*out == NULL) {
            snprintf(msg, msg_len, "cairn: request does not decode");
            rc = ERR_BAD_REQUEST;
        }
    } else if (rc == ERR_LIMIT) {
        snprintf(msg, msg_len, "cairn: request too large or too deep");
        rc = ERR_BAD_REQUEST;
    }
    buf_free(&pb);
    return rc;
}

static int watch_create(struct hstream *hs,
                        const Etcdserverpb__WatchCreateRequest *r)
{
    struct server *s = hs->h->s;
    struct watch_create wc;
    api_watch__create_from_pb(s, r, hs->token[0] != '\0' ? hs->token : NULL,
                              &wc);
    return watch_stream_create(hs->st, &wc);
}

/* Hand one request to the hub. ERR_BUSY: the client sends faster than it
 * reads (the hub's control queue is full). */
static int watch_apply(struct hstream *hs, const Etcdserverpb__WatchRequest *r)
{
    int rc = 0;
    ASSERT(hs->st != NULL);
    switch (r->request_union_case) {
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
        rc = watch_create(hs, r->create_request);
        break;
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
        rc = watch_stream_cancel(hs->st, r->cancel_request->watch_id);
        break;
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
        watch_stream_progress(hs->st);
        break;
    default:
        break; /* etcd ignores unknown request types */
    }
    return rc;
}

/* One JSON WatchRequest from a body or a WebSocket message. Returns 0,
 * ERR_BAD_REQUEST (msg says why) or ERR_BUSY. */
static int watch_message(struct hstream *hs, const char *json, size_t len,
                         char *msg, size_t msg_len)
{
    Etcdserverpb__WatchRequest *r = NULL;
    int rc = decode_watch_req(hs, json, len, &r, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    rc = watch_apply(hs, r);
    etcdserverpb__watch_request__free_unpacked(r, http__pb_allocator());
    return rc;
}

/* ------------------------------------------------------------ lifecycle */

/* hs->cn from the connection (one lookup per stream, not per event); out
 * of memory leaves it NULL: no user, so refused, never another's. */
static void stream_take_cn(struct hstream *hs)
{
    char peer[64], cn[GRPC_IDENTITY_BYTES_MAX];
    if (hs->wsi == NULL) {
        return;
    }
    http__client(hs->h, hs->wsi, peer, sizeof(peer), cn, sizeof(cn));
    if (cn[0] != '\0') {
        hs->cn = mem_dup(cn, strlen(cn) + 1);
    }
}

static struct hstream *stream_new(struct http_conn *c, struct lws *wsi,
                                  enum http_stream_kind kind)
{
    struct http *h = c->h;
    struct hstream *hs = mem_calloc(1, sizeof(*hs));
    if (hs == NULL) {
        return NULL;
    }
    if (h->tx == NULL) {
        size_t n = HTTP_WRITE_CHUNK_BYTES > HTTP_WS_FRAME_BYTES
                       ? HTTP_WRITE_CHUNK_BYTES
                       : HTTP_WS_FRAME_BYTES;
        h->tx = mem_alloc(LWS_PRE + n);
        if (h->tx == NULL) {
            mem_free(hs);
            return NULL;
        }
    }
    if (h->cork == NULL) {
        h->cork = mem_alloc(LWS_PRE + HTTP_CORK_BYTES);
        if (h->cork == NULL) {
            mem_free(hs);
            return NULL;
        }
    }
    hs->h = h;
    hs->c = c;
    hs->wsi = wsi;
    hs->kind = kind;
    /* one message may pass the bound once (it is accepted whole) */
    buf_init(&hs->out, 0);
    buf_init(&hs->reqs, (size_t)h->s->limits.v[LIMIT_REQUEST_BYTES] + 1);
    buf_init(&hs->in, (size_t)h->s->limits.v[LIMIT_REQUEST_BYTES] + 1);
    hs->next = h->streams;
    if (h->streams != NULL) {
        h->streams->prev = hs;
    }
    h->streams = hs;
    h->st.streams_total++;
    h->streams_open++;
    c->hs = hs;
    c->wait = HTTP_WAIT_STREAM;
    /* our own stall check bounds the wait, not lws's request timeouts */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    return hs;
}

/* Leave the hub; a renewal in flight keeps only its ticket. */
static void stream_detach(struct hstream *hs)
{
    for (struct hsub *sub = hs->subs; sub != NULL; sub = sub->next) {
        if (sub->op != NULL) {
            api_cancel(sub->op);
            sub->op = NULL;
        }
        sub->watching = false; /* the hub stream goes with them */
    }
    if (hs->mux) {
        http__mux_detach(hs);
    }
    if (hs->st != NULL) {
        watch_stream_close(hs->st);
        hs->st = NULL;
    }
    if (hs->ticket != NULL) {
        hs->ticket->hs = NULL;
        hs->ticket = NULL;
    }
}

void http__stream_free(struct http_conn *c)
{
    struct hstream *hs = c->hs;
    if (hs == NULL) {
        return;
    }
    struct http *h = hs->h;
    size_t n = 0;
    if (h->cork_hs == hs) { /* the connection is going: nothing to send */
        h->cork_hs = NULL;
        h->cork_len = 0;
    }
    stream_detach(hs);
    while (hs->subs != NULL) {
        ASSERT(n++ < MUX_SUBS_HARD_MAX + 1);
        http__sub_free(hs->subs);
    }
    ASSERT(hs->subs_count == 0);
    if (hs->stall_armed) {
        h->st.streams_stalled++; /* closed while the client did not read */
    }
    ASSERT(h->streams_open > 0);
    h->streams_open--;
    if (hs->prev != NULL) {
        hs->prev->next = hs->next;
    } else {
        h->streams = hs->next;
    }
    if (hs->next != NULL) {
        hs->next->prev = hs->prev;
    }
    queue_release(hs);
    buf_free(&hs->out);
    buf_free(&hs->reqs);
    buf_free(&hs->in);
    mem_free(hs->sub_tab);
    mem_free(hs->cn);
    mem_free(hs);
    c->hs = NULL;
}

void http__streams_stop(struct http *h)
{
    for (struct hstream *hs = h->streams; hs != NULL; hs = hs->next) {
        stream_detach(hs);
        hs->ending = true;
    }
}

static int open_hub_stream(struct hstream *hs)
{
    struct watch_hub *hub = api_watch__hub(hs->h->s);
    if (hub == NULL) {
        return ERR_STOPPED;
    }
    return watch_stream_open(hub, send_resp, hs, &hs->st);
}

/* ----------------------------------------------------- gateway: watch */

static int gw_watch_start(struct http_conn *c)
{
    const char *body = (const char *)c->body.data;
    size_t len = c->body.len;
    size_t off = 0;
    size_t a;
    size_t b;
    char msg[256];
    struct hstream *hs;
    Etcdserverpb__WatchRequest *first = NULL;
    int rc;
    bool more =
        http__json_next(body != NULL ? body : "", len, &off, &a, &b) == 0;
    hs = stream_new(c, c->wsi, HTTP_STREAM_WATCH);
    if (hs == NULL) {
        return -ENOMEM;
    }
    hs->wrap = true;
    memcpy(hs->token, c->token, sizeof(hs->token));
    if (more) {
        rc = decode_watch_req(hs, body + a, b - a, &first, msg, sizeof(msg));
        if (rc != 0) {
            /* etcd: the first message decides the status: 500, Unknown */
            http__stream_free(c);
            c->h->st.bad_json++;
            return http__respond_error(c, 0, GRPC_UNKNOWN, msg);
        }
    }
    rc = open_hub_stream(hs);
    if (rc != 0) {
        etcdserverpb__watch_request__free_unpacked(first, http__pb_allocator());
        http__stream_free(c);
        return http__respond_error(c, rc, GRPC_OK, NULL);
    }
    if (first != NULL) {
        rc = watch_apply(hs, first);
        etcdserverpb__watch_request__free_unpacked(first, http__pb_allocator());
    }
    while (rc == 0 && http__json_next(body, len, &off, &a, &b) == 0) {
        rc = watch_message(hs, body + a, b - a, msg, sizeof(msg));
        if (rc == ERR_BAD_REQUEST) {
            rc = 0; /* etcd's gateway stops reading the body here */
            break;
        }
    }
    if (rc == ERR_BUSY) {
        enqueue_error(hs, GRPC_RESOURCE_EXHAUSTED,
                      "cairn: too many watch requests in one body");
        end_stream(hs, 0, "");
    }
    buf_free(&c->body);
    api_watch__kick(hs->h->s);
    return 0;
}

/* ------------------------------------------------- gateway: keep-alive */

static void ka_next(struct hstream *hs);

static int decode_ka(struct hstream *hs, const char *json, size_t len,
                     int64_t *id, char *msg, size_t msg_len)
{
    Etcdserverpb__LeaseKeepAliveRequest *r;
    struct buf pb;
    int rc;
    buf_init(&pb, 65536);
    rc = http_pbjson_decode(&etcdserverpb__lease_keep_alive_request__descriptor,
                            json, len, &pb, msg, msg_len);
    if (rc == 0) {
        r = etcdserverpb__lease_keep_alive_request__unpack(http__pb_allocator(),
                                                           pb.len, pb.data);
        if (r == NULL) {
            snprintf(msg, msg_len, "cairn: request does not decode");
            rc = ERR_BAD_REQUEST;
        } else {
            *id = r->id;
            etcdserverpb__lease_keep_alive_request__free_unpacked(
                r, http__pb_allocator());
        }
    } else if (rc == ERR_LIMIT) {
        snprintf(msg, msg_len, "cairn: request too large or too deep");
        rc = ERR_BAD_REQUEST;
    }
    buf_free(&pb);
    (void)hs;
    return rc;
}

/* A renewal answered (maybe inside api_lease_renew, from ka_next). */
static void ka_done(void *ctx, int err, int64_t ttl)
{
    struct ka_ticket *t = ctx;
    struct hstream *hs = t->hs;
    Etcdserverpb__LeaseKeepAliveResponse resp =
        ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct node_status ns;
    struct server *s;
    struct buf j;
    int rc;
    mem_free(t);
    if (hs == NULL) {
        return; /* the client went away meanwhile */
    }
    hs->ticket = NULL;
    s = hs->h->s;
    if (err != 0 || s->node == NULL) {
        err = err != 0 ? err : ERR_STOPPED;
        enqueue_error(hs, grpc_code_from_err(err), err_str(err));
        end_stream(hs, 0, "");
        return;
    }
    node_status(s->node, &ns);
    h.cluster_id = s->cluster_id;
    h.member_id = s->member_id;
    h.revision = kv_rev(node_kv(s->node));
    h.raft_term = ns.term;
    resp.header = &h;
    resp.id = hs->ka_id;
    resp.ttl = ttl;
    buf_init(&j, 65536);
    rc = http_pbjson_write(&resp.base, &j);
    rc = rc != 0 ? rc : enqueue(hs, "{\"result\":", j.data, j.len, "}");
    buf_free(&j);
    if (rc != 0) {
        end_stream(hs, 0, "");
        return;
    }
    if (!hs->ka_looping) {
        ka_next(hs);
    }
}

/* Answer the body's requests one at a time, in order, while the queue
 * has room; the stream ends after the last (or at one that does not
 * decode: etcd's gateway stops reading there). Each pass consumes at
 * least one byte of the bounded body. */
static void ka_next(struct hstream *hs)
{
    const char *body = (const char *)hs->reqs.data;
    char msg[256];
    size_t a;
    size_t b;
    int64_t id = 0;
    int rc;
    hs->ka_looping = true;
    while (hs->ticket == NULL && !hs->ending && pending(hs) < out_max(hs)) {
        if (body == NULL ||
            http__json_next(body, hs->reqs.len, &hs->req_off, &a, &b) != 0 ||
            decode_ka(hs, body + a, b - a, &id, msg, sizeof(msg)) != 0) {
            end_stream(hs, 0, "");
            break;
        }
        struct ka_ticket *t = mem_calloc(1, sizeof(*t));
        if (t == NULL) {
            rc = -ENOMEM;
        } else {
            t->hs = hs;
            hs->ticket = t;
            hs->ka_id = id;
            rc = api_lease_renew(hs->h->s, id, ka_done, t);
        }
        if (rc != 0) {
            if (t != NULL) {
                hs->ticket = NULL;
                mem_free(t);
            }
            enqueue_error(hs, grpc_code_from_err(rc), err_str(rc));
            end_stream(hs, 0, "");
        }
    }
    hs->ka_looping = false;
}

static int gw_keepalive_start(struct http_conn *c)
{
    const char *body = (const char *)c->body.data;
    size_t off = 0;
    size_t a;
    size_t b;
    int64_t id;
    char msg[256];
    struct hstream *hs = stream_new(c, c->wsi, HTTP_STREAM_KEEPALIVE);
    if (hs == NULL) {
        return -ENOMEM;
    }
    hs->wrap = true;
    if (body != NULL && http__json_next(body, c->body.len, &off, &a, &b) == 0 &&
        decode_ka(hs, body + a, b - a, &id, msg, sizeof(msg)) != 0) {
        /* etcd: the first message decides the status: 500, Unknown */
        http__stream_free(c);
        c->h->st.bad_json++;
        return http__respond_error(c, 0, GRPC_UNKNOWN, msg);
    }
    /* the body becomes the stream's list of requests */
    hs->reqs = c->body;
    buf_init(&c->body, 0);
    ka_next(hs);
    return 0;
}

/* ------------------------------------------------- registry discovery */

/*
 * Discovery streams (docs/registry.md): GET /api/v1/watch/registry/<ns>
 * [/<svc>] as a WebSocket, or as SSE (Accept: text/event-stream). First a
 * snapshot {"type":"snapshot","revision":R,"instances":[..]} read at a
 * linearizable point as the caller (so key-range permissions apply), then
 * a hub watcher on the same prefix from R + 1 with prev_kv, each event one
 * {"type":"put"|"delete","revision":..,"instance":{..}} message in
 * revision order. since=R (or SSE's Last-Event-ID) skips the snapshot and
 * watches from R + 1: exactly what was missed, no repeat. When that history
 * was compacted the hub cancels with compact_revision; the stream says
 * {"type":"compacted",..} and sends a fresh snapshot, then follows again.
 * The hub's bounds apply unchanged: a subscriber that does not read is
 * moved to catch-up reads and, after HTTP_STREAM_STALL_S without progress,
 * cut; it resumes from the last revision it saw.
 *
 * Each of these is one struct hsub (http_stream_int.h): a single-purpose
 * stream holds one, with id 0; the multiplexed socket (http_mux.c) holds
 * many, each with its own watcher on the socket's one hub stream, and its
 * messages carry {"sub":id} first. There a subscription that fails ends
 * alone (a tagged error, or the subscribe's error answer) and the socket
 * stays. With since=R every stream first reads a count of its prefix as
 * the caller (the same permission check a snapshot makes), then follows.
 */

static void sub_drop(struct hsub *sub);

/* Queue one message of sub, its JSON text js[0..n) (a compact object,
 * copied), framed for the stream: an SSE event, {"sub":N,..} on a
 * multiplexed socket, or as it is. */
static int reg_enqueue_text(struct hsub *sub, const char *type, int64_t rev,
                            const char *js, size_t n, struct http_blob *blob)
{
    struct hstream *hs = sub->hs;
    char head[96];
    int rc;
    if (!sub->cfg) {
        hs->h->s->svc_ctr.push_messages++;
    }
    if (hs->reg_sse) {
        snprintf(head, sizeof(head),
                 "id: %lld\nevent: %s\ndata: ", (long long)rev, type);
        rc = enqueue(hs, head, (const uint8_t *)js, n, "\n");
    } else if (sub->id != 0) {
        /* the same object with "sub" first: {"sub":N,<the rest>} */
        ASSERT(n >= 2 && js[0] == '{');
        snprintf(head, sizeof(head), "{\"sub\":%lld%s", (long long)sub->id,
                 n > 2 ? "," : "");
        rc = blob != NULL
                 ? enqueue_blob(hs, head, blob, 1, "")
                 : enqueue(hs, head, (const uint8_t *)js + 1, n - 1, "");
    } else {
        rc = blob != NULL ? enqueue_blob(hs, "", blob, 0, "")
                          : enqueue(hs, "", (const uint8_t *)js, n, "");
    }
    return rc;
}

/* The same for an object o (taken), encoded for this subscriber only
 * (snapshots, errors: what is not shared). */
static int reg_enqueue(struct hsub *sub, const char *type, int64_t rev,
                       json_t *o)
{
    char *js = o != NULL ? svc_json_dump(o) : NULL;
    int rc;
    json_decref(o);
    if (js == NULL) {
        return -ENOMEM;
    }
    rc = reg_enqueue_text(sub, type, rev, js, strlen(js), NULL);
    free(js);
    return rc;
}

int http__stream_send_json(struct hstream *hs, json_t *o)
{
    char *js = o != NULL ? svc_json_dump(o) : NULL;
    int rc;
    json_decref(o);
    if (js == NULL) {
        return -ENOMEM;
    }
    rc = enqueue(hs, "", (const uint8_t *)js, strlen(js), "");
    free(js);
    return rc;
}

void http__stream_block(struct hstream *hs)
{
    block(hs);
}

/* Multiplexed: answer the subscribe, once, before its first message. */
static int sub_answer(struct hsub *sub)
{
    if (sub->id == 0 || sub->answered) {
        return 0;
    }
    int rc = http__stream_send_json(
        sub->hs, json_pack("{s:I,s:I}", "id", (json_int_t)sub->id, "sub",
                           (json_int_t)sub->id));
    sub->answered = rc == 0;
    return rc;
}

static void reg_fail(struct hsub *sub, const char *code, const char *text)
{
    struct hstream *hs = sub->hs;
    if (sub->id != 0 && !sub->answered) {
        /* the subscribe itself fails: its answer says why */
        http__stream_send_json(hs, json_pack("{s:I,s:{s:s,s:s}}", "id",
                                             (json_int_t)sub->id, "error",
                                             "code", code, "message", text));
        sub_drop(sub);
        return;
    }
    reg_enqueue(sub, "error", sub->rev,
                json_pack("{s:s,s:s,s:s,s:I}", "type", "error", "code", code,
                          "message", text, "revision", (json_int_t)sub->rev));
    if (sub->id != 0) {
        sub_drop(sub);
        return;
    }
    end_stream(hs, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, text);
}

static int reg_watch(struct hsub *sub, int64_t from)
{
    struct hstream *hs = sub->hs;
    Etcdserverpb__WatchCreateRequest q =
        ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    struct watch_create wc;
    uint8_t end[sizeof(sub->key)];
    int rc;
    ASSERT(!sub->watching);
    if (hs->st == NULL && (rc = open_hub_stream(hs)) != 0) {
        return rc;
    }
    memcpy(end, sub->key, sub->key_len);
    end[sub->key_len - 1]++; /* the prefix ends in '/' */
    q.key.data = (uint8_t *)sub->key;
    q.key.len = sub->key_len;
    q.range_end.data = end;
    q.range_end.len = sub->key_len;
    q.start_revision = from;
    q.prev_kv = 1;
    sub->watch_id = ++hs->watch_seq;
    q.watch_id = sub->watch_id;
    api_watch__create_from_pb(hs->h->s, &q, sub->token, &wc);
    if (sub->token == NULL && hs->cn != NULL) {
        /* the certificate's CN is the user, as for a gRPC watch */
        wc.denied =
            api_auth_range_check_user(hs->h->s, hs->cn, wc.key, wc.key_len,
                                      wc.range_end, wc.range_end_len) != 0;
    }
    rc = watch_stream_create(hs->st, &wc);
    sub->watching = rc == 0;
    api_watch__kick(hs->h->s);
    return rc;
}

/* since > 0: the check read passed; answer (multiplexed), then follow. */
static void sub_follow(struct hsub *sub)
{
    sub->check_only = false;
    if (sub_answer(sub) != 0 || reg_watch(sub, sub->rev + 1) != 0) {
        reg_fail(sub, "unavailable", "the stream could not follow changes");
    }
}

static void reg_snapshot_done(void *ctx, int err, const uint8_t *resp,
                              size_t len)
{
    struct hsub *sub = ctx;
    Etcdserverpb__RangeResponse *g;
    json_t *list;
    int64_t rev;
    sub->op = NULL;
    if (err != 0) {
        const char *code = "internal";
        grpc_api_v1_status(err, &code);
        reg_fail(sub, code, err_str(err));
        return;
    }
    if (sub->check_only) {
        sub_follow(sub);
        return;
    }
    g = etcdserverpb__range_response__unpack(http__pb_allocator(), len, resp);
    if (g == NULL) {
        reg_fail(sub, "internal", "snapshot read did not decode");
        return;
    }
    list = json_array();
    for (size_t i = 0; list != NULL && i < g->n_kvs; i++) {
        json_t *d =
            svc_doc_parse(g->kvs[i]->value.data, g->kvs[i]->value.len,
                          g->kvs[i]->mod_revision, g->kvs[i]->create_revision);
        if (d != NULL) {
            json_array_append_new(list, d);
        }
    }
    rev = g->header != NULL ? g->header->revision : 0;
    bool more = g->more;
    etcdserverpb__range_response__free_unpacked(g, http__pb_allocator());
    sub->rev = rev;
    if (sub_answer(sub) != 0 ||
        reg_enqueue(sub, "snapshot", rev,
                    json_pack("{s:s,s:I,s:o?,s:b}", "type", "snapshot",
                              "revision", (json_int_t)rev, "instances", list,
                              "more", more)) != 0 ||
        reg_watch(sub, rev + 1) != 0) {
        reg_fail(sub, "unavailable", "the stream could not follow changes");
    }
}

static void cfg_snapshot_done(void *ctx, int err, const uint8_t *resp,
                              size_t len);

static void reg_snapshot(struct hsub *sub)
{
    struct hstream *hs = sub->hs;
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    uint8_t end[sizeof(sub->key)];
    uint8_t *bytes;
    size_t n;
    struct api_op *op;
    const struct api_method *m = api_find("/etcdserverpb.KV/Range");
    ASSERT(m != NULL);
    ASSERT(sub->op == NULL);
    memcpy(end, sub->key, sub->key_len);
    end[sub->key_len - 1]++;
    q.key.data = (uint8_t *)sub->key;
    q.key.len = sub->key_len;
    q.range_end.data = end;
    q.range_end.len = sub->key_len;
    q.limit = SVC_LIST_MAX;
    if (sub->cfg || sub->check_only) {
        /* a linearizable count: the permission check and the revision the
         * snapshot is read at (then from the local store) */
        q.limit = 0;
        q.count_only = 1;
    }
    n = etcdserverpb__range_request__get_packed_size(&q);
    bytes = mem_alloc(n);
    if (bytes == NULL) {
        reg_fail(sub, "internal", "out of memory");
        return;
    }
    etcdserverpb__range_request__pack(&q, bytes);
    op = api_call_as(hs->h->s, m, bytes, n, 0, sub->token,
                     sub->token == NULL ? hs->cn : NULL, NULL,
                     sub->cfg ? cfg_snapshot_done : reg_snapshot_done, sub);
    mem_free(bytes);
    if (op != NULL) {
        sub->op = op;
    }
}

/* From the writable callback: the watcher was cancelled by compaction;
 * drop it and start over from a snapshot (outside the hub's pass). A
 * single-purpose stream drops its hub stream with it; a multiplexed one
 * keeps it for the other subscriptions and cancels this watcher (when the
 * hub's control queue is full the watcher stays until the socket goes,
 * its messages dropped: they carry a watch_id no subscription has). */
static void reg_resnapshot(struct hsub *sub)
{
    struct hstream *hs = sub->hs;
    sub->resnap = false;
    if (hs->ending || sub->op != NULL) {
        return;
    }
    if (!hs->mux && hs->st != NULL) {
        watch_stream_close(hs->st);
        hs->st = NULL;
    } else if (hs->mux && sub->watching && hs->st != NULL) {
        watch_stream_cancel(hs->st, sub->watch_id);
    }
    sub->watching = false;
    sub->check_only = false;
    reg_snapshot(sub);
}

/* Every subscription with a snapshot due (bounded by the subscriptions
 * held; a failing one unlinks only itself). */
static void subs_resnap(struct hstream *hs)
{
    struct hsub *next;
    size_t n = 0;
    if (!hs->subs_due) {
        return; /* none revoked or due a snapshot: no walk per write */
    }
    hs->subs_due = false;
    for (struct hsub *sub = hs->subs; sub != NULL; sub = next) {
        ASSERT(n++ <= hs->subs_count);
        next = sub->next;
        if (sub->revoked && sub->id != 0) {
            sub_drop(sub); /* refused by sub_recheck */
        } else if (sub->revoked) {
            if (!hs->ending) {
                end_stream(hs, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                           "etcdserver: permission denied");
            }
        } else if (sub->resnap) {
            reg_resnapshot(sub);
        }
    }
}

/* One event -> one message, encoded once for every subscriber
 * (http_share.c); a value that is not an instance document (written by
 * hand) is skipped, its revision still counts. */
static int reg_event(struct hsub *sub, const struct kv_event *e)
{
    const char *js = NULL;
    size_t n = 0;
    int rc = http__share_reg(sub->hs->h, e, &js, &n);
    if (rc != 0 || js == NULL) {
        return rc;
    }
    return reg_enqueue_text(sub, e->type == KV_EVENT_DELETE ? "delete" : "put",
                            e->kv.mod_revision, js, n, NULL);
}

static int cfg_events(struct hsub *sub, const struct watch_resp *r);

/* After an auth change (a revoked grant or role, a deleted user, auth
 * enabled), may sub's user still read its prefix? The hub checked it once,
 * at create, as etcd's watch does; a subscription ends instead of going on
 * pushing what its user may no longer read (registry.md, "One socket for
 * everything"). Returns 0, or 1 when sub was refused: its error message is
 * queued and it ends in subs_resnap, outside the hub's pass (a
 * single-purpose stream closes; a multiplexed subscription is dropped). */
static int sub_recheck(struct hsub *sub)
{
    struct hstream *hs = sub->hs;
    struct server *s = hs->h->s;
    uint8_t end[sizeof(sub->key)];
    uint64_t rev;
    int rc;
    if (s->auth == NULL || (rev = auth_revision(s->auth)) == sub->auth_rev) {
        return 0;
    }
    sub->auth_rev = rev;
    memcpy(end, sub->key, sub->key_len);
    end[sub->key_len - 1]++; /* the prefix ends in '/' */
    rc = api_auth_range_check_user(s, sub->user != NULL ? sub->user : "",
                                   (const uint8_t *)sub->key, sub->key_len, end,
                                   sub->key_len);
    if (rc == 0) {
        return 0;
    }
    const char *why = rc == ERR_PERMISSION_DENIED
                          ? "etcdserver: permission denied"
                          : "etcdserver: user name is empty";
    reg_enqueue(sub, "error", sub->rev,
                json_pack("{s:s,s:s,s:s}", "type", "error", "code",
                          rc == ERR_PERMISSION_DENIED ? "permission_denied"
                                                      : "unauthenticated",
                          "message", why));
    /* not here: closing or cancelling the watcher inside the hub's pass
     * would pull its queue from under the hub */
    sub->revoked = true;
    hs->subs_due = true;
    lws_callback_on_writable(hs->wsi);
    return 1;
}

/* One hub response of sub's watcher (inside the hub's pass). */
static int sub_send(struct hsub *sub, const struct watch_resp *r)
{
    struct hstream *hs = sub->hs;
    int rc = 0;
    if (sub->revoked || (!r->canceled && sub_recheck(sub) != 0)) {
        return 0;
    }
    if (sub->cfg && !r->canceled) {
        return cfg_events(sub, r);
    }
    if (r->canceled) {
        sub->watching = false; /* the hub dropped it */
        if (r->compact_revision > 0) {
            reg_enqueue(sub, "compacted", r->compact_revision,
                        json_pack("{s:s,s:I,s:I}", "type", "compacted",
                                  "revision", (json_int_t)sub->rev,
                                  "compact_revision",
                                  (json_int_t)r->compact_revision));
            sub->resnap = true;
            hs->subs_due = true;
            lws_callback_on_writable(hs->wsi);
            return 0;
        }
        const char *why =
            r->cancel_reason != NULL ? r->cancel_reason : "watch canceled";
        bool denied = strstr(why, "permission denied") != NULL;
        bool unauth = strstr(why, "invalid auth token") != NULL ||
                      strstr(why, "user name is empty") != NULL;
        reg_enqueue(sub, "error", sub->rev,
                    json_pack("{s:s,s:s,s:s}", "type", "error", "code",
                              denied   ? "permission_denied"
                              : unauth ? "unauthenticated"
                                       : "unavailable",
                              "message", why));
        if (sub->id != 0) {
            sub_drop(sub);
            return 0;
        }
        end_stream(hs, LWS_CLOSE_STATUS_POLICY_VIOLATION, why);
        return 0;
    }
    for (size_t i = 0; rc == 0 && i < r->events_count; i++) {
        const struct kv_event *e = &r->events[i];
        if (e->kv.mod_revision <= sub->rev) {
            continue; /* sent already (in the snapshot or before a cut) */
        }
        rc = reg_event(sub, e);
    }
    if (r->events_count > 0 && rc == 0) {
        int64_t last = r->events[r->events_count - 1].kv.mod_revision;
        sub->rev = last > sub->rev ? last : sub->rev;
    }
    if (rc != 0) {
        hs->doomed = true;
        lws_callback_on_writable(hs->wsi);
    }
    return 0;
}

/* Route a hub response to the subscription whose watcher it is; one for
 * a watcher already dropped is ignored. */
static int reg_send(struct hstream *hs, const struct watch_resp *r)
{
    size_t n = 0;
    for (struct hsub *sub = hs->subs; sub != NULL; sub = sub->next) {
        ASSERT(n++ <= hs->subs_count);
        if (sub->watching && sub->watch_id == r->watch_id) {
            return sub_send(sub, r);
        }
    }
    return 0;
}

/* since (a revision) from the query, or from Last-Event-ID for SSE;
 * 0 when absent; -1 when malformed. */
static int64_t reg_since(const char *query, const char *last_id)
{
    char v[32];
    const char *s = NULL;
    char *endp = NULL;
    if (svc_query_get(query, "since", v, sizeof(v)) == 0) {
        s = v;
    } else if (last_id != NULL && last_id[0] != '\0') {
        s = last_id;
    }
    if (s == NULL) {
        return 0;
    }
    errno = 0;
    long long r = strtoll(s, &endp, 10);
    if (errno != 0 || endp == s || *endp != '\0' || r < 0) {
        return -1;
    }
    return (int64_t)r;
}

/* ----------------------------------------- subscriptions by their id */

static size_t sub_slot(int64_t id, size_t cap)
{
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15ULL) >> 32) & (cap - 1);
}

struct hsub *http__sub_find(const struct hstream *hs, int64_t id)
{
    size_t n = 0;
    if (hs->sub_tab != NULL) {
        for (struct hsub *sub = hs->sub_tab[sub_slot(id, hs->sub_tab_cap)];
             sub != NULL; sub = sub->tab_next) {
            ASSERT(n++ <= hs->subs_count);
            if (sub->id == id) {
                return sub;
            }
        }
        return NULL;
    }
    for (struct hsub *sub = hs->subs; sub != NULL; sub = sub->next) {
        ASSERT(n++ <= hs->subs_count);
        if (sub->id == id) {
            return sub;
        }
    }
    return NULL;
}

/* sub (linked on hs->subs, id != 0) goes into the table, which doubles
 * when it holds as many as its slots. Out of memory: the old table takes
 * it (longer chains), or with none the walk of subs finds it. */
static void sub_tab_add(struct hstream *hs, struct hsub *sub)
{
    size_t slot;
    if (hs->subs_count > hs->sub_tab_cap) {
        size_t cap = hs->sub_tab_cap == 0 ? 16 : hs->sub_tab_cap * 2;
        struct hsub **t = mem_calloc(cap, sizeof(*t));
        if (t != NULL) {
            for (struct hsub *o = hs->subs; o != NULL; o = o->next) {
                if (o->id != 0) {
                    slot = sub_slot(o->id, cap);
                    o->tab_next = t[slot];
                    t[slot] = o;
                }
            }
            mem_free(hs->sub_tab);
            hs->sub_tab = t;
            hs->sub_tab_cap = cap;
            return; /* sub was on the list: it is in */
        }
    }
    if (hs->sub_tab != NULL) {
        slot = sub_slot(sub->id, hs->sub_tab_cap);
        sub->tab_next = hs->sub_tab[slot];
        hs->sub_tab[slot] = sub;
    }
}

static void sub_tab_remove(struct hstream *hs, struct hsub *sub)
{
    struct hsub **pp;
    if (hs->sub_tab == NULL || sub->id == 0) {
        return;
    }
    pp = &hs->sub_tab[sub_slot(sub->id, hs->sub_tab_cap)];
    while (*pp != sub) {
        ASSERT(*pp != NULL);
        pp = &(*pp)->tab_next;
    }
    *pp = sub->tab_next;
}

struct hsub *http__sub_new(struct hstream *hs, int64_t id, const char *token,
                           bool cfg)
{
    struct hsub *sub = mem_calloc(1, sizeof(*sub));
    if (sub == NULL) {
        return NULL;
    }
    if (cfg) {
        sub->cfg_client = mem_calloc(1, sizeof(*sub->cfg_client));
        if (sub->cfg_client == NULL) {
            mem_free(sub);
            return NULL;
        }
    }
    sub->hs = hs;
    sub->id = id;
    if (token != NULL && token[0] != '\0') {
        /* bounded by its source (HTTP_TOKEN_MAX); most streams have none */
        size_t n = strnlen(token, HTTP_TOKEN_MAX - 1);
        sub->token = mem_alloc(n + 1);
        if (sub->token == NULL) {
            mem_free(sub->cfg_client);
            mem_free(sub);
            return NULL;
        }
        memcpy(sub->token, token, n);
        sub->token[n] = '\0';
    }
    if (hs->h->s->auth != NULL) {
        /* the user the subscription is checked as from now on (an invalid
         * token has none: its subscribe is refused anyway) */
        char user[AUTH_NAME_BYTES_MAX + 1];
        sub->auth_rev = auth_revision(hs->h->s->auth);
        if (api_auth_user(hs->h->s, sub->token, user, sizeof(user)) == 0 &&
            user[0] != '\0') {
            size_t n = strlen(user);
            sub->user = mem_alloc(n + 1);
            if (sub->user == NULL) {
                mem_free(sub->token);
                mem_free(sub->cfg_client);
                mem_free(sub);
                return NULL;
            }
            memcpy(sub->user, user, n + 1);
        }
    }
    sub->next = hs->subs;
    hs->subs = sub;
    hs->subs_count++;
    if (id != 0) {
        hs->h->mux_subs_open++;
        sub_tab_add(hs, sub);
    }
    return sub;
}

void http__sub_free(struct hsub *sub)
{
    struct hstream *hs = sub->hs;
    struct server *s = hs->h->s;
    struct hsub **pp = &hs->subs;
    ASSERT(hs->subs_count > 0);
    /* the hub may not be called from inside its own pass */
    ASSERT(!(hs->in_send && sub->watching));
    if (sub->op != NULL) {
        api_cancel(sub->op);
        sub->op = NULL;
    }
    if (sub->watching && hs->st != NULL) {
        watch_stream_cancel(hs->st, sub->watch_id); /* see reg_resnapshot */
    }
    if (sub->cfg) {
        cfg_sub_close(s, sub->cfg_sub);
    } else if (sub->counted) {
        ASSERT(s->svc_ctr.subscribers_open > 0);
        s->svc_ctr.subscribers_open--;
    }
    while (*pp != sub) {
        ASSERT(*pp != NULL);
        pp = &(*pp)->next;
    }
    *pp = sub->next;
    sub_tab_remove(hs, sub);
    hs->subs_count--;
    if (sub->id != 0) {
        ASSERT(hs->h->mux_subs_open > 0);
        hs->h->mux_subs_open--;
    }
    mem_free(sub->cfg_client);
    mem_free(sub->token);
    mem_free(sub->user);
    mem_free(sub);
}

/* A multiplexed subscription ends by itself (it failed). */
static void sub_drop(struct hsub *sub)
{
    ASSERT(sub->id != 0);
    http__sub_free(sub);
}

int http__sub_reg_start(struct hsub *sub, int64_t since)
{
    struct server *s = sub->hs->h->s;
    ASSERT(since >= 0);
    ASSERT(sub->key_len > 0 && sub->key[sub->key_len - 1] == '/');
    sub->rev = since;
    sub->counted = true;
    s->svc_ctr.subscribers_total++;
    s->svc_ctr.subscribers_open++;
    /* since > 0: no snapshot, but the same read as the caller first (a
     * count), so permissions apply to a resumed stream too; the watch
     * alone left one the caller may not read silently open */
    sub->check_only = since > 0;
    reg_snapshot(sub);
    return 0;
}

/* Set up sub as a discovery stream of path (after REG_WATCH_PATH). */
static int reg_init(struct hsub *sub, const char *path, int64_t since)
{
    if (svc_watch_prefix(path, sub->key, sizeof(sub->key), &sub->key_len) !=
            0 ||
        since < 0) {
        return ERR_BAD_REQUEST;
    }
    return http__sub_reg_start(sub, since);
}

static int cfg_init(struct hsub *sub, const char *path, const char *query,
                    int64_t since);

static bool reg_ws_path(struct lws *wsi)
{
    char uri[1024];
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0) {
        return false;
    }
    return strncmp(uri, REG_WATCH_PATH, strlen(REG_WATCH_PATH)) == 0 ||
           strncmp(uri, CFG_WATCH_PATH, strlen(CFG_WATCH_PATH)) == 0;
}

static int reg_ws_start(struct hstream *hs)
{
    char uri[1024];
    char query[2048];
    char *q;
    struct hsub *sub;
    int rc;
    if (lws_hdr_copy(hs->wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0 ||
        http__query_join(hs->wsi, query, sizeof(query)) != 0) {
        return -1;
    }
    q = strchr(uri, '?');
    if (q != NULL) {
        *q = '\0';
    }
    sub = http__sub_new(hs, 0, hs->token,
                        strncmp(uri, CFG_WATCH_PATH, strlen(CFG_WATCH_PATH)) ==
                            0);
    if (sub == NULL) {
        return -1;
    }
    hs->reg = true;
    if (strncmp(uri, CFG_WATCH_PATH, strlen(CFG_WATCH_PATH)) == 0) {
        rc = cfg_init(sub, uri + strlen(CFG_WATCH_PATH), query,
                      reg_since(query, NULL));
    } else {
        rc =
            reg_init(sub, uri + strlen(REG_WATCH_PATH), reg_since(query, NULL));
    }
    if (rc == ERR_BAD_REQUEST) {
        static const char why[] = "bad path or since: /api/v1/watch/registry/"
                                  "<ns>[/<svc>]?since=<rev>";
        lws_close_reason(hs->wsi, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                         (unsigned char *)why, sizeof(why) - 1);
        return -1;
    }
    return rc == 0 ? 0 : -1;
}

/* An SSE subscriber's reads are not watched while its response runs, so
 * a client that went away is noticed only when a write fails: a comment
 * line every REG_SSE_KEEPALIVE_S makes that happen on an idle service too
 * (and keeps proxies from timing the stream out). http__streams_sweep()
 * writes it: an lws timer per stream would sit in lws's sorted timer
 * list, whose insertions walk it. */
#define REG_SSE_KEEPALIVE_S 15

/* The sweep found sse_ka_ms due: a comment line unless something is
 * queued anyway. Non-zero: the stream cannot go on. */
static int sse_keepalive(struct hstream *hs, uint64_t now_ms)
{
    ASSERT(hs->reg_sse);
    hs->sse_ka_ms = now_ms + (uint64_t)REG_SSE_KEEPALIVE_S * 1000;
    if (hs->ending || pending(hs) > 0) {
        return 0;
    }
    return enqueue(hs, ": keepalive\n", (const uint8_t *)"", 0, "");
}

int http__reg_sse_start(struct http_conn *c, const char *path,
                        const char *query)
{
    char last[32];
    struct hstream *hs;
    struct hsub *sub;
    int rc;
    if (lws_hdr_copy(c->wsi, c->token, sizeof(c->token),
                     WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
        c->token[0] = '\0';
    }
    last[0] = '\0';
    if (lws_hdr_custom_copy(c->wsi, last, sizeof(last), "last-event-id:", 14) <
        0) {
        last[0] = '\0';
    }
    hs = stream_new(c, c->wsi, HTTP_STREAM_WATCH);
    if (hs == NULL) {
        return -ENOMEM;
    }
    hs->reg_sse = true;
    hs->reg = true;
    memcpy(hs->token, c->token, sizeof(hs->token));
    stream_take_cn(hs);
    sub = http__sub_new(hs, 0, hs->token,
                        strncmp(path, CFG_WATCH_PATH, strlen(CFG_WATCH_PATH)) ==
                            0);
    if (sub == NULL) {
        http__stream_free(c);
        return -ENOMEM;
    }
    if (strncmp(path, CFG_WATCH_PATH, strlen(CFG_WATCH_PATH)) == 0) {
        rc = cfg_init(sub, path + strlen(CFG_WATCH_PATH), query,
                      reg_since(query, last));
    } else {
        rc = reg_init(sub, path + strlen(REG_WATCH_PATH),
                      reg_since(query, last));
    }
    if (rc != 0) {
        http__stream_free(c);
        return rc;
    }
    hs->sse_ka_ms =
        uv_now(c->h->s->loop) + (uint64_t)REG_SSE_KEEPALIVE_S * 1000;
    return 0;
}

/* ------------------------------------------------------ config streams */

/*
 * Config streams: /api/v1/watch/config/<ns>[/<app>[/<name>]] with
 * client_id= and labels= (gray rules) and since= (resume). The same
 * machinery as discovery (reg_*): one hub watcher on the scope's prefix
 * (/config/<ns>/ or /config/<ns>/<app>/, which holds heads, releases and
 * gray releases), a snapshot first, the revision of the last message as
 * the resume point. What differs is what a message says: not the changed
 * keys but the release this client should now run, resolved from the
 * local store at the event's revision (cfg_resolve: gray rule, secret
 * permission), sent when it differs from what this stream delivered.
 * Messages:
 *   {"type":"snapshot","revision":R,"configs":[release,..]}
 *   {"type":"put",<release>}      a publish, rollback, gray change
 *   {"type":"delete","namespace","app","name","revision"}
 *   {"type":"compacted"|"error",..} as for discovery
 * where a release is {namespace,app,name,version,format,sha256,author,
 * message,created_at,gray,revision,content}. The client acknowledges with
 * {"ack":{"name":..,"version":N}} ("app" too on a namespace stream).
 */

#define CFG_SNAPSHOT_MAX 1000

struct cfg_snap {
    struct hsub *sub;
    int64_t rev;
    json_t *list;
    int err;
};

static int cfg_snap_one(void *ctx, const struct cfg_id *id)
{
    struct cfg_snap *c = ctx;
    struct hsub *sub = c->sub;
    struct server *s = sub->hs->h->s;
    json_t *o = NULL;
    int64_t v = 0, created = 0;
    int rc;
    if (sub->cfg_name[0] != '\0' && strcmp(sub->cfg_name, id->name) != 0) {
        return 0;
    }
    if (json_array_size(c->list) >= CFG_SNAPSHOT_MAX) {
        return ERR_LIMIT;
    }
    rc = cfg_resolve(s, id, c->rev, sub->cfg_client,
                     cfg_can_secret(s, sub->token, sub->hs->cn, id), "put", &o,
                     &v, &created);
    if (rc == 1) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    json_object_del(o, "type");
    json_array_append_new(c->list, o);
    cfg_sub_delivered(s, sub->cfg_sub, id, v, created,
                      json_is_true(json_object_get(o, "gray")));
    return 0;
}

static void cfg_snapshot_done(void *ctx, int err, const uint8_t *resp,
                              size_t len)
{
    struct hsub *sub = ctx;
    Etcdserverpb__RangeResponse *g;
    struct cfg_snap c = {.sub = sub};
    sub->op = NULL;
    if (err != 0) {
        const char *code = "internal";
        grpc_api_v1_status(err, &code);
        reg_fail(sub, code, err_str(err));
        return;
    }
    if (sub->check_only) {
        sub_follow(sub);
        return;
    }
    g = etcdserverpb__range_response__unpack(http__pb_allocator(), len, resp);
    if (g == NULL) {
        reg_fail(sub, "internal", "snapshot read did not decode");
        return;
    }
    c.rev = g->header != NULL ? g->header->revision : 0;
    etcdserverpb__range_response__free_unpacked(g, http__pb_allocator());
    c.list = json_array();
    if (c.list == NULL) {
        reg_fail(sub, "internal", "out of memory");
        return;
    }
    /* the linearizable read returned: the local store holds c.rev */
    int rc = cfg_heads_local(sub->hs->h->s, sub->key, sub->key_len, c.rev,
                             CFG_SNAPSHOT_MAX + 1, cfg_snap_one, &c);
    if (rc != 0) {
        json_decref(c.list);
        reg_fail(sub, rc == ERR_LIMIT ? "too_large" : "unavailable",
                 rc == ERR_LIMIT ? "more than 1000 configs in the stream's "
                                   "scope: follow an app"
                                 : err_str(rc));
        return;
    }
    sub->rev = c.rev;
    if (sub_answer(sub) != 0 ||
        reg_enqueue(sub, "snapshot", c.rev,
                    json_pack("{s:s,s:I,s:o}", "type", "snapshot", "revision",
                              (json_int_t)c.rev, "configs", c.list)) != 0 ||
        reg_watch(sub, c.rev + 1) != 0) {
        reg_fail(sub, "unavailable", "the stream could not follow changes");
    }
}

/* The release id resolves to at rev, sent when it is not what this
 * stream delivered last. The change is resolved and encoded once for
 * every subscriber (http_share.c); this one picks its variant. */
static int cfg_one(struct hsub *sub, const struct cfg_id *id, int64_t rev)
{
    struct server *s = sub->hs->h->s;
    const struct cfg_change *c;
    const char *js = NULL;
    size_t n = 0;
    int64_t v = 0, created = 0;
    bool gray = false, now_gray = false;
    int64_t had = cfg_sub_delivered_version(sub->cfg_sub, id, &gray);
    int rc = http__share_cfg(sub->hs->h, id, rev, &c);
    if (rc == 0) {
        bool can = cfg_change_secret(c) &&
                   cfg_can_secret(s, sub->token, sub->hs->cn, id);
        rc = cfg_change_for(c, sub->cfg_client, can, &js, &n, &v, &created,
                            &now_gray);
    }
    if (rc == 1) {
        if (had == 0) {
            return 0; /* never sent here: nothing to take back */
        }
        cfg_sub_delivered(s, sub->cfg_sub, id, 0, 0, false);
        return reg_enqueue(sub, "delete", rev,
                           json_pack("{s:s,s:s,s:s,s:s,s:I}", "type", "delete",
                                     "namespace", id->ns, "app", id->app,
                                     "name", id->name, "revision",
                                     (json_int_t)rev));
    }
    if (rc != 0) {
        return rc;
    }
    if (had == v && gray == now_gray) {
        return 0; /* this client runs it already */
    }
    cfg_sub_delivered(s, sub->cfg_sub, id, v, created, now_gray);
    return reg_enqueue_text(sub, "put", rev, js, n,
                            http__share_cfg_blob(sub->hs->h, c, js, n));
}

/* The events of one watch response: per revision, each config touched is
 * resolved once. */
static int cfg_events(struct hsub *sub, const struct watch_resp *r)
{
    struct hstream *hs = sub->hs;
    struct cfg_id ids[16];
    size_t n = 0;
    int64_t cur = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i <= r->events_count; i++) {
        const struct kv_event *e = i < r->events_count ? &r->events[i] : NULL;
        int64_t rev = e != NULL ? e->kv.mod_revision : 0;
        if (e != NULL && rev <= sub->rev) {
            continue; /* sent already */
        }
        if (n > 0 && (e == NULL || rev != cur || n == 16)) {
            for (size_t j = 0; rc == 0 && j < n; j++) {
                rc = cfg_one(sub, &ids[j], cur);
            }
            n = 0;
        }
        if (e == NULL) {
            break;
        }
        struct cfg_id id;
        if (cfg_key_parse((const char *)e->kv.key, e->kv.key_len, &id, NULL) ==
                CFG_K_OTHER ||
            (sub->cfg_name[0] != '\0' && strcmp(id.name, sub->cfg_name) != 0)) {
            continue;
        }
        cur = rev;
        bool seen = false;
        for (size_t j = 0; j < n && !seen; j++) {
            seen = strcmp(ids[j].name, id.name) == 0 &&
                   strcmp(ids[j].app, id.app) == 0;
        }
        if (!seen) {
            ids[n++] = id;
        }
    }
    if (rc == ERR_COMPACTED) {
        /* the revision is gone under us: start over from a snapshot */
        reg_enqueue(sub, "compacted", sub->rev,
                    json_pack("{s:s,s:I}", "type", "compacted", "revision",
                              (json_int_t)sub->rev));
        sub->resnap = true;
        hs->subs_due = true;
        lws_callback_on_writable(hs->wsi);
        return 0;
    }
    if (r->events_count > 0 && rc == 0) {
        int64_t last = r->events[r->events_count - 1].kv.mod_revision;
        sub->rev = last > sub->rev ? last : sub->rev;
    }
    if (rc != 0) {
        hs->doomed = true;
        lws_callback_on_writable(hs->wsi);
    }
    return 0;
}

int http__sub_cfg_start(struct hsub *sub, int64_t since)
{
    struct hstream *hs = sub->hs;
    char peer[64];
    ASSERT(since >= 0);
    ASSERT(sub->cfg_ns[0] != '\0' && sub->key_len > 0);
    peer[0] = '\0';
    http__peer(hs->h, hs->wsi, peer, sizeof(peer));
    sub->cfg = true;
    sub->rev = since;
    sub->cfg_sub =
        cfg_sub_open(hs->h->s, sub->cfg_client, peer, sub->key, sub->cfg_name);
    if (sub->cfg_sub == NULL) {
        return -ENOMEM;
    }
    /* since > 0: no snapshot, but the caller's count of the prefix first,
     * as for a discovery stream: a single-purpose stream that went straight
     * to its watch stayed open and silent for a caller it refused */
    sub->check_only = since > 0;
    reg_snapshot(sub);
    return 0;
}

/* Set up sub as a config stream of path (after CFG_WATCH_PATH). */
static int cfg_init(struct hsub *sub, const char *path, const char *query,
                    int64_t since)
{
    char parts[3][CFG_NAME_MAX + 1];
    char labels[1024], msg[128];
    int n = 0;
    const char *p = path;
    int q;
    while (*p != '\0' && n < 3) {
        const char *e = strchr(p, '/');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (!cfg_name_ok(p, len)) {
            return ERR_BAD_REQUEST;
        }
        memcpy(parts[n], p, len);
        parts[n][len] = '\0';
        n++;
        p = e != NULL ? e + 1 : p + len;
        if (e != NULL && *p == '\0') {
            return ERR_BAD_REQUEST;
        }
    }
    if (n == 0 || *p != '\0' || since < 0) {
        return ERR_BAD_REQUEST;
    }
    snprintf(sub->cfg_ns, sizeof(sub->cfg_ns), "%s", parts[0]);
    if (n >= 2) {
        snprintf(sub->cfg_app, sizeof(sub->cfg_app), "%s", parts[1]);
    }
    if (n == 3) {
        snprintf(sub->cfg_name, sizeof(sub->cfg_name), "%s", parts[2]);
    }
    sub->key_len =
        (size_t)snprintf(sub->key, sizeof(sub->key), "/config/%s/%s%s",
                         parts[0], n >= 2 ? parts[1] : "", n >= 2 ? "/" : "");
    q = svc_query_get(query, "client_id", sub->cfg_client->client_id,
                      sizeof(sub->cfg_client->client_id));
    if (q < 0 || (q == 0 && !cfg_name_ok(sub->cfg_client->client_id,
                                         strlen(sub->cfg_client->client_id)))) {
        return ERR_BAD_REQUEST;
    }
    if (q > 0) {
        sub->cfg_client->client_id[0] = '\0';
    }
    q = svc_query_get(query, "labels", labels, sizeof(labels));
    if (q < 0 || (q == 0 && cfg_labels_parse(labels, strlen(labels),
                                             &sub->cfg_client->labels, msg,
                                             sizeof(msg)) != 0)) {
        return ERR_BAD_REQUEST;
    }
    return http__sub_cfg_start(sub, since);
}

/* The ack of app/name version on config sub (app or name NULL: the
 * stream's own); has_version false when "version" is not an integer. */
static int sub_ack(struct hsub *sub, const char *app, size_t app_len,
                   const char *name, size_t name_len, bool has_version,
                   int64_t version, const char **why, const char **field)
{
    struct cfg_id id;
    ASSERT(sub->cfg);
    if (app == NULL) {
        app = sub->cfg_app;
        app_len = strlen(app);
    }
    if (name == NULL) {
        name = sub->cfg_name;
        name_len = strlen(name);
    }
    if (!cfg_name_ok(app, app_len) || !cfg_name_ok(name, name_len) ||
        !has_version) {
        *why = "an ack names \"name\" (and \"app\" on a namespace "
               "stream) and an integer \"version\"";
        *field = !has_version                   ? "version"
                 : !cfg_name_ok(name, name_len) ? "name"
                                                : "app";
        return ERR_BAD_REQUEST;
    }
    /* cfg_name_ok bounds both to CFG_NAME_MAX; the namespace was checked
     * when the stream opened */
    memset(&id, 0, sizeof(id));
    memcpy(id.ns, sub->cfg_ns, strlen(sub->cfg_ns));
    memcpy(id.app, app, app_len);
    memcpy(id.name, name, name_len);
    if (cfg_sub_acked(sub->hs->h->s, sub->cfg_sub, &id, version) != 0) {
        *why = "that version was not delivered on this stream";
        *field = "version";
        return ERR_BAD_REQUEST;
    }
    return 0;
}

int http__sub_ack(struct hsub *sub, json_t *a, const char **why,
                  const char **field)
{
    const char *app = json_string_value(json_object_get(a, "app"));
    const char *name = json_string_value(json_object_get(a, "name"));
    json_t *v = json_object_get(a, "version");
    ASSERT(json_is_object(a));
    return sub_ack(sub, app, app != NULL ? strlen(app) : 0, name,
                   name != NULL ? strlen(name) : 0, json_is_integer(v),
                   json_integer_value(v), why, field);
}

int http__sub_ack_read(struct hsub *sub, const struct http_ack *a,
                       const char **why, const char **field)
{
    return sub_ack(sub, a->app, a->app_len, a->name, a->name_len, true,
                   a->version, why, field);
}

/* A client message on a config WebSocket: an ack. */
static void cfg_message(struct hsub *sub, const char *json, size_t len)
{
    struct http_ack ack;
    const char *why = NULL;
    const char *field = NULL;
    if (http__ack_read(json, len, false, &ack)) {
        http__sub_ack_read(sub, &ack, &why, &field);
    } else {
        json_error_t je;
        json_t *m = json_loadb(json, len, 0, &je);
        json_t *a = json_object_get(m, "ack");
        if (!json_is_object(a)) {
            why = "expected {\"ack\":{\"name\":..,\"version\":N}}";
        } else {
            http__sub_ack(sub, a, &why, &field);
        }
        json_decref(m);
    }
    if (why != NULL) {
        sub->hs->h->st.ws_bad_messages++;
        reg_enqueue(sub, "error", sub->rev,
                    json_pack("{s:s,s:s,s:s}", "type", "error", "code",
                              "bad_request", "message", why));
    }
}

/* ------------------------------------------------------------ writing */

struct hdr {
    const char *name;
    const char *value;
};

/* 200, then the headers, for a stream's chunked response. */
static int headers_write(struct hstream *hs, const struct hdr *hdrs, size_t n)
{
    unsigned char hb[LWS_PRE + 1024];
    unsigned char *start = hb + LWS_PRE;
    unsigned char *p = start;
    unsigned char *end = hb + sizeof(hb);
    if (lws_add_http_header_status(hs->wsi, 200, &p, end) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (lws_add_http_header_by_name(
                hs->wsi, (const unsigned char *)hdrs[i].name,
                (const unsigned char *)hdrs[i].value,
                (int)strlen(hdrs[i].value), &p, end) != 0) {
            return -1;
        }
    }
    return lws_finalize_write_http_header(hs->wsi, start, &p, end);
}

static int write_stream_headers(struct hstream *hs)
{
    static const struct hdr gw[] = {
        {"access-control-allow-headers:",
         "accept, content-type, authorization"},
        {"access-control-allow-methods:", "POST, GET, OPTIONS, PUT, DELETE"},
        {"access-control-allow-origin:", "*"},
        {"content-type:", "application/json"},
        {"grpc-metadata-content-type:", "application/grpc"},
        {"transfer-encoding:", "chunked"},
    };
    static const struct hdr sse[] = {
        {"access-control-allow-origin:", "*"},
        {"cache-control:", "no-cache"},
        {"content-type:", "text/event-stream"},
        {"transfer-encoding:", "chunked"},
    };
    if (hs->reg_sse) {
        return headers_write(hs, sse, sizeof(sse) / sizeof(sse[0]));
    }
    return headers_write(hs, gw, sizeof(gw) / sizeof(gw[0]));
}

/* Some bytes went out: the client reads. Restart or clear the stall check
 * (a timestamp the sweep reads: re-arming an lws timeout here was an
 * insertion into lws's sorted timer list per write) and let the hub send
 * again once the queue is below half its bound. */
static void progressed(struct hstream *hs)
{
    if (hs->hub_blocked && pending(hs) < out_max(hs) / 2) {
        hs->hub_blocked = false;
        if (hs->rx_paused) {
            hs->rx_paused = false;
            lws_rx_flow_control(hs->wsi, 1);
        }
        if (hs->st != NULL) {
            watch_stream_writable(hs->st);
            api_watch__kick(hs->h->s);
        }
    }
    if (hs->hub_blocked) {
        hs->stall_ms = uv_now(hs->h->s->loop);
    } else {
        hs->stall_armed = false;
    }
}

static int sse_keepalive(struct hstream *hs, uint64_t now_ms);

void http__streams_sweep(struct http *h, uint64_t now_ms)
{
    uint64_t n = 0;
    /* --stall-timeout; options that skipped validation keep the default */
    uint64_t stall_ms = h->s->opt->stall_timeout_ms != 0
                            ? h->s->opt->stall_timeout_ms
                            : (uint64_t)HTTP_STREAM_STALL_S * 1000;
    for (struct hstream *hs = h->streams; hs != NULL; hs = hs->next) {
        ASSERT(n++ < h->streams_open);
        if (hs->reg_sse && now_ms >= hs->sse_ka_ms && !hs->stall_cut &&
            sse_keepalive(hs, now_ms) != 0) {
            hs->stall_cut = true; /* out of memory: the stream goes */
            lws_set_timeout(hs->wsi, PENDING_TIMEOUT_USER_OK,
                            LWS_TO_KILL_ASYNC);
            continue;
        }
        if (!hs->stall_armed || hs->stall_cut ||
            now_ms - hs->stall_ms < stall_ms) {
            continue;
        }
        /* the client has not read for the whole period: close it from
         * lws's next pass (the stream is freed with its connection) */
        hs->stall_cut = true;
        lws_set_timeout(hs->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

/* A response could not be encoded: the stream ends with an error. */
static void handle_doomed(struct hstream *hs)
{
    hs->doomed = false;
    enqueue_error(hs, GRPC_INTERNAL, "cairn: watch response too large to send");
    end_stream(hs, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
               "cairn: watch response too large to send");
}

static int gw_writable(struct hstream *hs)
{
    struct http_conn *c = hs->c;
    size_t n;
    if (hs->doomed) {
        handle_doomed(hs);
    }
    subs_resnap(hs);
    if (!hs->headers_sent) {
        if (pending(hs) == 0 && !hs->ending) {
            return 0; /* etcd's gateway sends nothing before a message */
        }
        if (write_stream_headers(hs) != 0) {
            return -1;
        }
        hs->headers_sent = true;
        lws_callback_on_writable(hs->wsi);
        return 0;
    }
    n = pending_raw(hs); /* gateway and SSE streams queue no blobs */
    if (n > 0) {
        if (n > HTTP_WRITE_CHUNK_BYTES) {
            n = HTTP_WRITE_CHUNK_BYTES;
        }
        memcpy(hs->h->tx + LWS_PRE, hs->out.data + hs->out_off, n);
        if (lws_write(hs->wsi, hs->h->tx + LWS_PRE, n, LWS_WRITE_HTTP) < 0) {
            return -1;
        }
        hs->out_off += n;
        progressed(hs);
        if (hs->kind == HTTP_STREAM_KEEPALIVE && hs->ticket == NULL &&
            !hs->ending) {
            ka_next(hs);
        }
        if (pending(hs) > 0 || hs->ending) {
            lws_callback_on_writable(hs->wsi);
        }
        return 0;
    }
    if (!hs->ending || hs->ticket != NULL) {
        return 0;
    }
    /* the last chunk, then the connection serves the next request */
    memcpy(hs->h->tx + LWS_PRE, "0\r\n\r\n", 5);
    if (lws_write(hs->wsi, hs->h->tx + LWS_PRE, 5, LWS_WRITE_HTTP_FINAL) < 0) {
        return -1;
    }
    c->h->st.responses_2xx++;
    http__stream_free(c);
    c->wait = HTTP_WAIT_NONE;
    if (c->h->stopped || c->h->s->stopping) {
        return -1;
    }
    return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

static int ws_writable(struct hstream *hs)
{
    size_t n;
    uint32_t len;
    int flags;
    if (hs->doomed) {
        handle_doomed(hs);
    }
    subs_resnap(hs);
    if (pending(hs) == 0) {
        if (!hs->ending) {
            return 0;
        }
        lws_close_reason(hs->wsi,
                         (enum lws_close_status)(hs->close_status != 0
                                                     ? hs->close_status
                                                     : LWS_CLOSE_STATUS_NORMAL),
                         (unsigned char *)hs->close_reason,
                         strlen(hs->close_reason));
        return -1;
    }
    ASSERT(pending_raw(hs) >= 4);
    const uint8_t *e = hs->out.data + hs->out_off;
    bool shared;
    len = ws_entry_len(e, &shared);
    ASSERT(shared || pending_raw(hs) >= 4 + (size_t)len);
    ASSERT(hs->msg_sent < len);
    n = len - hs->msg_sent;
    if (n > HTTP_WS_FRAME_BYTES) {
        n = HTTP_WS_FRAME_BYTES;
    }
    flags = hs->msg_sent == 0 ? LWS_WRITE_TEXT : LWS_WRITE_CONTINUATION;
    if (hs->msg_sent + n < len) {
        flags |= LWS_WRITE_NO_FIN;
    }
    if (shared) {
        shared_copy(e, hs->msg_sent, n, hs->h->tx + LWS_PRE);
    } else {
        memcpy(hs->h->tx + LWS_PRE, e + 4 + hs->msg_sent, n);
    }
    if (lws_write(hs->wsi, hs->h->tx + LWS_PRE, n,
                  (enum lws_write_protocol)flags) < (int)n) {
        return -1;
    }
    hs->msg_sent += n;
    if (hs->msg_sent == len) {
        if (shared) {
            uint32_t skip;
            struct http_blob *b = shared_blob(e, &skip);
            ASSERT(hs->out_shared >= b->len - skip);
            hs->out_shared -= b->len - skip;
            hs->out_off += shared_entry_bytes(e);
            http__blob_unref(b);
        } else {
            hs->out_off += 4 + (size_t)len;
        }
        hs->msg_sent = 0;
    }
    progressed(hs);
    if (pending(hs) > 0 || hs->ending) {
        lws_callback_on_writable(hs->wsi);
    }
    return 0;
}

int http__stream_writable(struct http_conn *c)
{
    struct hstream *hs = c->hs;
    if (hs == NULL) {
        return 0;
    }
    if (hs->h->cork_hs == hs) {
        http__cork_flush(hs->h); /* its messages go before the queue's */
    }
    return hs->kind == HTTP_STREAM_WS ? ws_writable(hs) : gw_writable(hs);
}

int http__stream_start(struct http_conn *c)
{
    ASSERT(c->skind == HTTP_STREAM_WATCH || c->skind == HTTP_STREAM_KEEPALIVE);
    ASSERT(c->hs == NULL);
    if (c->skind == HTTP_STREAM_WATCH) {
        return gw_watch_start(c);
    }
    return gw_keepalive_start(c);
}

/* ------------------------------------------------------------ WebSocket */

/* The path of the upgrade (query cut off) into uri; -1 when absent. */
static int ws_uri(struct lws *wsi, char *uri, size_t len)
{
    char *q;
    if (lws_hdr_copy(wsi, uri, (int)len, WSI_TOKEN_GET_URI) <= 0) {
        return -1;
    }
    q = strchr(uri, '?');
    if (q != NULL) {
        *q = '\0';
    }
    return 0;
}

static int ws_path_wraps(struct lws *wsi, bool *wrap)
{
    char uri[1024];
    if (ws_uri(wsi, uri, sizeof(uri)) != 0) {
        return -1;
    }
    if (strcmp(uri, "/ws/watch") == 0 || strcmp(uri, MUX_PATH) == 0) {
        *wrap = false;
        return 0;
    }
    if (strncmp(uri, REG_WATCH_PATH, strlen(REG_WATCH_PATH)) == 0 ||
        strncmp(uri, CFG_WATCH_PATH, strlen(CFG_WATCH_PATH)) == 0) {
        *wrap = false;
        return 0; /* the path's names are checked when it opens */
    }
    if (http__stream_kind(uri) == HTTP_STREAM_WATCH) {
        *wrap = true; /* etcd's gateway over its WebSocket proxy */
        return 0;
    }
    return -1;
}

int http__ws_confirm(struct lws *wsi)
{
    bool wrap;
    return ws_path_wraps(wsi, &wrap);
}

static bool ws_mux_path(struct lws *wsi)
{
    char uri[1024];
    return ws_uri(wsi, uri, sizeof(uri)) == 0 && strcmp(uri, MUX_PATH) == 0;
}

int http__ws_established(struct http *h, struct http_conn *c, struct lws *wsi)
{
    struct hstream *hs;
    bool wrap = false;
    if (ws_path_wraps(wsi, &wrap) != 0) {
        return -1;
    }
    memset(c, 0, sizeof(*c));
    c->h = h;
    c->wsi = wsi;
    if (lws_hdr_copy(wsi, c->token, sizeof(c->token),
                     WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
        c->token[0] = '\0';
    }
    hs = stream_new(c, wsi, HTTP_STREAM_WS);
    if (hs == NULL) {
        return -1;
    }
    hs->wrap = wrap;
    memcpy(hs->token, c->token, sizeof(hs->token));
    stream_take_cn(hs);
    if (reg_ws_path(wsi)) {
        return reg_ws_start(hs);
    }
    hs->mux = ws_mux_path(wsi);
    if (open_hub_stream(hs) != 0) {
        lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY,
                         (unsigned char *)"etcdserver: server stopped", 26);
        return -1;
    }
    return 0;
}

/* A single-purpose config stream (its one subscription is a config's). */
static bool cfg_stream(const struct hstream *hs)
{
    return hs->reg && hs->subs != NULL && hs->subs->cfg;
}

/* One whole message from the client. */
static void ws_message(struct hstream *hs)
{
    char msg[256];
    if (cfg_stream(hs)) {
        /* an ack; an error answer asks for its own writable callback (an
         * unconditional one cost four epoll_ctl calls per ack) */
        cfg_message(hs->subs, (const char *)hs->in.data, hs->in.len);
        buf_reset(&hs->in);
        return;
    }
    int rc = watch_message(hs, (const char *)hs->in.data, hs->in.len, msg,
                           sizeof(msg));
    buf_reset(&hs->in);
    if (rc == ERR_BAD_REQUEST) {
        hs->h->st.ws_bad_messages++;
        enqueue_error(hs, GRPC_INVALID_ARGUMENT, msg);
    } else if (rc == ERR_BUSY) {
        enqueue_error(hs, GRPC_RESOURCE_EXHAUSTED,
                      "cairn: watch requests sent faster than replies "
                      "are read");
        end_stream(hs, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                   "cairn: too many requests without reading");
    }
    api_watch__kick(hs->h->s);
}

/* The multiplexed socket: a message over its bound is skipped (not
 * stored) up to its end and answered too_large; the socket stays. After
 * each request, a queue at its bound stops reads (block()) until the
 * client reads its answers: a client that writes without reading holds
 * at most one queue of them. */
static int mux_receive(struct hstream *hs, const void *in, size_t len)
{
    uint64_t max = http__mux_msg_max(hs);
    if (!hs->in_skip && hs->in.len + len > max) {
        hs->in_skip = true;
        buf_reset(&hs->in);
    }
    if (!hs->in_skip && buf_append(&hs->in, in, len) != 0) {
        return -1;
    }
    if (!lws_is_final_fragment(hs->wsi) ||
        lws_remaining_packet_payload(hs->wsi) != 0) {
        return 0;
    }
    if (hs->in_skip) {
        hs->in_skip = false;
        hs->h->st.ws_bad_messages++;
        http__mux_too_large(hs, max);
    } else {
        http__mux_message(hs,
                          hs->in.data != NULL ? (const char *)hs->in.data : "",
                          hs->in.len);
    }
    buf_reset(&hs->in);
    if (!hs->ending && pending(hs) >= out_max(hs)) {
        block(hs);
    }
    api_watch__kick(hs->h->s);
    return 0;
}

int http__ws_receive(struct http_conn *c, const void *in, size_t len)
{
    struct hstream *hs = c->hs;
    uint64_t max;
    if (hs != NULL && hs->mux && !hs->ending) {
        return mux_receive(hs, in, len);
    }
    if (hs == NULL || hs->ending || (hs->reg && !cfg_stream(hs)) ||
        (!hs->reg && hs->st == NULL)) {
        return 0; /* closing (or a discovery stream): dropped */
    }
    max = hs->h->s->limits.v[LIMIT_REQUEST_BYTES];
    if (hs->in.len + len > max ||
        hs->in.len + len + lws_remaining_packet_payload(hs->wsi) > max) {
        char reason[WS_CLOSE_REASON_MAX];
        hs->h->st.ws_bad_messages++;
        snprintf(reason, sizeof(reason),
                 "cairn: message larger than %llu bytes (max-request-bytes)",
                 (unsigned long long)max);
        lws_close_reason(hs->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                         (unsigned char *)reason, strlen(reason));
        return -1;
    }
    if (buf_append(&hs->in, in, len) != 0) {
        return -1;
    }
    if (lws_is_final_fragment(hs->wsi) &&
        lws_remaining_packet_payload(hs->wsi) == 0) {
        ws_message(hs);
    }
    return 0;
}

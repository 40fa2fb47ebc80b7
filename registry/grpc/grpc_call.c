/*
 * grpc_call.c - gRPC calls on HTTP/2 streams: nghttp2's callbacks, request
 * validation and dispatch, and the call API (send, finish, reply).
 *
 * Happy path (gRPC PROTOCOL-HTTP2.md). A request's HEADERS open a stream:
 * on_begin_headers takes a call from the pool; on_header checks :method,
 * :path (the method table), content-type, grpc-timeout and grpc-encoding,
 * and keeps the rest as metadata within header_bytes_max; when the header
 * block ends (on_frame_recv) the call is live and on_start runs. DATA
 * chunks go through the call's deframer; each complete message is checked
 * for nesting depth, decoded into the call's arena and passed to on_msg.
 * END_STREAM from the client runs on_half_close. Responses: the first send
 * submits the response HEADERS with a deferred data provider (data_read)
 * that drains the call's queue of framed messages; finish marks the call
 * finishing, and once the queue is empty data_read submits the trailers
 * (grpc-status, grpc-message). A call finished before any message sends a
 * single trailers-only HEADERS frame. After our END_STREAM, a client that
 * is still sending gets RST_STREAM(NO_ERROR), as grpc-go does.
 *
 * Failures. Wrong method or content-type: HTTP 405 / 415 and no call. Unknown
 * path: UNIMPLEMENTED. Too many header bytes: RESOURCE_EXHAUSTED. Message
 * over recv_msg_bytes_max or connection over conn_in_bytes_max:
 * RESOURCE_EXHAUSTED, with grpc-go's text. Compressed message: UNIMPLEMENTED
 * (with grpc-encoding) or INTERNAL. Undecodable, too deeply nested, missing,
 * extra (unary) or truncated message: INTERNAL. If the application had
 * already seen the call, its on_cancel runs. A stream reset by the client
 * or lost with its connection runs on_cancel unless the application had
 * finished. The call's memory goes back to the pool only when nghttp2
 * closes the stream (or the connection closes), never while the
 * application may still hold it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "registry/grpc/grpc_int.h"

#define MSG_STOP 1 /* deframer callback: stop feeding this call */

static const char *const status_str[] = {
    "0", "1",  "2",  "3",  "4",  "5",  "6",  "7",  "8",
    "9", "10", "11", "12", "13", "14", "15", "16",
};

#define NV_STATIC(n, v)                                                        \
    {                                                                          \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,          \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE       \
    }

/* ------------------------------------------------------- call pool */

static struct grpc_call *call_new(const struct grpc_server *srv)
{
    struct grpc_call *call = mem_alloc(sizeof(*call));

    if (call == NULL) {
        return NULL;
    }
    grpc__deframer_init(&call->df, srv->lim.recv_msg_bytes_max);
    buf_init(&call->outq, 2 * GRPC_SEND_MSG_MAX);
    call->pieces = NULL;
    call->pc_cap = 0;
    buf_init(&call->meta, srv->lim.header_bytes_max);
    buf_init(&call->msg, 4096);
    grpc__arena_init(&call->arena, GRPC_ARENA_BYTES_MAX);
    return call;
}

static struct grpc_call *call_get(struct grpc_conn *c, int32_t stream_id)
{
    struct grpc_server *srv = c->srv;
    struct grpc_call *call = srv->call_pool;

    if (call != NULL) {
        srv->call_pool = call->next;
        srv->call_pool_count--;
    } else {
        call = call_new(srv);
        if (call == NULL) {
            return NULL;
        }
    }
    call->conn = c;
    call->m = NULL;
    call->data = NULL;
    call->stream_id = stream_id;
    call->header_bytes = 0;
    call->msgs_in = 0;
    call->deadline_ms = 0;
    call->status = GRPC_OK;
    call->headers_done = 0;
    call->app_done = 0;
    call->resp_started = 0;
    call->finishing = 0;
    call->deferred = 0;
    call->remote_closed = 0;
    call->want_writable = 0;
    call->bad_encoding = 0;
    call->app_seen = 0;
    call->proto_err = 0;
    call->regular_seen = 0;
    call->pseudo_seen = 0;
    call->reject_http = 0;
    call->reject_code = GRPC_OK;
    call->in_counted = 0;
    call->outq_off = 0;
    call->pc_head = 0;
    call->pc_len = 0;
    call->pc_off = 0;
    call->out_bytes = 0;
    /* Link first in the connection's list. */
    call->prev = NULL;
    call->next = c->calls;
    if (c->calls != NULL) {
        c->calls->prev = call;
    }
    c->calls = call;
    srv->stats.calls_open++;
    return call;
}

/* Give back our share of the connection's inbound bytes. */
static void call_release_in(struct grpc_call *call)
{
    struct grpc_conn *c = call->conn;

    ASSERT(c->in_held >= call->in_counted);
    c->in_held -= call->in_counted;
    call->in_counted = 0;
    grpc__deframer_reset(&call->df);
}

static void buf_trim(struct buf *b)
{
    if (b->cap > GRPC_CALL_BUF_KEEP) {
        buf_free(b);
    }
    buf_reset(b);
}

/* ------------------------------------------------ the outbound queue */

static struct grpc_piece *pc_at(const struct grpc_call *call, size_t i)
{
    return &call->pieces[(call->pc_head + i) & (call->pc_cap - 1)];
}

/* Room for n more pieces. */
static int pc_reserve(struct grpc_call *call, size_t n)
{
    size_t cap = call->pc_cap == 0 ? 8 : call->pc_cap;
    struct grpc_piece *p;

    if (call->pc_len + n <= call->pc_cap) {
        return 0;
    }
    while (cap < call->pc_len + n) {
        cap *= 2;
    }
    p = mem_alloc(cap * sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < call->pc_len; i++) {
        p[i] = *pc_at(call, i);
    }
    mem_free(call->pieces);
    call->pieces = p;
    call->pc_cap = cap;
    call->pc_head = 0;
    return 0;
}

/* Append a piece (room reserved): owned bytes join an owned tail. */
static void pc_push(struct grpc_call *call, const uint8_t *ref,
                    const struct grpc_ref_ops *ops, size_t len)
{
    struct grpc_piece *t;

    if (ref == NULL && call->pc_len > 0) {
        t = pc_at(call, call->pc_len - 1);
        if (t->ref == NULL) {
            t->len += len;
            return;
        }
    }
    ASSERT(call->pc_len < call->pc_cap);
    t = pc_at(call, call->pc_len);
    t->ref = ref;
    t->ops = ops;
    t->len = len;
    call->pc_len++;
    if (ref != NULL) {
        ops->hold(ref);
    }
}

static void pc_pop(struct grpc_call *call)
{
    struct grpc_piece *h = pc_at(call, 0);

    ASSERT(call->pc_len > 0);
    if (h->ref != NULL) {
        h->ops->release(h->ref);
    }
    call->pc_head = (call->pc_head + 1) & (call->pc_cap - 1);
    call->pc_len--;
    call->pc_off = 0;
}

/* Drop everything queued (the call ends), giving back what was lent. */
static void outq_drop(struct grpc_call *call)
{
    while (call->pc_len > 0) {
        pc_pop(call);
    }
    call->pc_head = 0;
    buf_reset(&call->outq);
    call->outq_off = 0;
    call->out_bytes = 0;
}

void grpc__call_free(struct grpc_server *srv, struct grpc_call *call)
{
    struct grpc_conn *c = call->conn;

    /* Unlink from the connection. */
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else {
        c->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    call_release_in(call);
    ASSERT(c->queued_bytes >= call->out_bytes);
    c->queued_bytes -= call->out_bytes;
    outq_drop(call);
    grpc__arena_reset(&call->arena);
    ASSERT(srv->stats.calls_open > 0);
    srv->stats.calls_open--;
    call->conn = NULL;
    if (srv->call_pool_count >= GRPC_CALL_POOL_MAX || srv->closing) {
        grpc__deframer_free(&call->df);
        buf_free(&call->outq);
        mem_free(call->pieces);
        buf_free(&call->meta);
        buf_free(&call->msg);
        mem_free(call);
        return;
    }
    buf_trim(&call->df.body);
    buf_trim(&call->outq);
    if (call->pc_cap > GRPC_PIECES_KEEP) {
        mem_free(call->pieces);
        call->pieces = NULL;
        call->pc_cap = 0;
    }
    buf_trim(&call->meta);
    buf_trim(&call->msg);
    call->prev = NULL;
    call->next = srv->call_pool;
    srv->call_pool = call;
    srv->call_pool_count++;
}

/* --------------------------------------------------- status helpers */

static void set_message(struct grpc_call *call, const char *text)
{
    buf_reset(&call->msg);
    if (text != NULL && text[0] != '\0' &&
        grpc__percent_encode(&call->msg, text, strlen(text)) != 0) {
        buf_reset(&call->msg); /* a status without text beats none */
    }
}

static void fill_status_nv(const struct grpc_call *call, nghttp2_nv *nv,
                           size_t *n)
{
    const char *st = status_str[call->status];

    nv[*n].name = (uint8_t *)"grpc-status";
    nv[*n].namelen = sizeof("grpc-status") - 1;
    nv[*n].value = (uint8_t *)st;
    nv[*n].valuelen = strlen(st);
    nv[*n].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
    (*n)++;
    if (call->msg.len > 0) {
        nv[*n].name = (uint8_t *)"grpc-message";
        nv[*n].namelen = sizeof("grpc-message") - 1;
        nv[*n].value = call->msg.data;
        nv[*n].valuelen = call->msg.len;
        nv[*n].flags = NGHTTP2_NV_FLAG_NO_COPY_NAME; /* value is copied */
        (*n)++;
    }
}

static void submit_trailers(struct grpc_call *call)
{
    nghttp2_session *s = call->conn->ngh;
    nghttp2_nv nv[2];
    size_t n = 0;

    fill_status_nv(call, nv, &n);
    if (nghttp2_submit_trailer(s, call->stream_id, nv, n) != 0) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    }
}

/* Send the status: trailers-only if nothing went out yet, otherwise
 * trailers after the queued messages. */
static void finish_submit(struct grpc_call *call, enum grpc_code code,
                          const char *text)
{
    struct grpc_conn *c = call->conn;
    int rv = 0;

    ASSERT((unsigned)code < sizeof(status_str) / sizeof(status_str[0]));
    ASSERT(!call->finishing);
    call->status = code;
    set_message(call, text);
    if (!call->resp_started) {
        nghttp2_nv nv[4] = {
            NV_STATIC(":status", "200"),
            NV_STATIC("content-type", "application/grpc"),
        };
        size_t n = 2;
        fill_status_nv(call, nv, &n);
        call->resp_started = 1;
        call->finishing = 1;
        rv = nghttp2_submit_response(c->ngh, call->stream_id, nv, n, NULL);
    } else {
        call->finishing = 1;
        if (call->deferred) {
            call->deferred = 0;
            rv = nghttp2_session_resume_data(c->ngh, call->stream_id);
        }
    }
    if (rv != 0) {
        nghttp2_submit_rst_stream(c->ngh, NGHTTP2_FLAG_NONE, call->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    }
    grpc__conn_mark_dirty(c);
}

/* The layer ends a call on its own (bad request). The application hears
 * of it through on_cancel if it had seen the call. */
static void call_fail(struct grpc_call *call, enum grpc_code code,
                      const char *text)
{
    ASSERT(!call->app_done);
    call->app_done = 1;
    call_release_in(call);
    LOGD("grpc", "stream %d failed: %s: %s", (int)call->stream_id,
         grpc_code_name(code), text);
    finish_submit(call, code, text);
    if (call->app_seen && call->m != NULL && call->m->on_cancel != NULL) {
        call->m->on_cancel(call);
    }
}

/* Plain HTTP answer for requests that are not gRPC at all. */
static void respond_http(struct grpc_call *call, int status)
{
    static const char *const codes[] = {"405", "415"};
    const char *v = status == 405 ? codes[0] : codes[1];
    nghttp2_nv nv[1] = {NV_STATIC(":status", "000")};

    nv[0].value = (uint8_t *)v;
    nv[0].valuelen = 3;
    call->app_done = 1;
    call->resp_started = 1;
    call->finishing = 1;
    nghttp2_submit_response(call->conn->ngh, call->stream_id, nv, 1, NULL);
    grpc__conn_mark_dirty(call->conn);
}

/* ---------------------------------------------------- data provider */

/* The DATA frames' payload is not copied into nghttp2's buffer: data_read
 * only says how much (NGHTTP2_DATA_FLAG_NO_COPY), and send_data below
 * appends the frame header and the bytes from the call's queue straight
 * to the connection's output. nghttp2 calls it from the same
 * nghttp2_session_mem_send() that asked data_read, after every earlier
 * frame was handed over, so the order on the wire holds. A watch event's
 * encoding, lent to the queues of all its watchers, is copied only here,
 * once per watcher, into the server's output buffer (flush in
 * grpc_server.c). */

/* Copy the next n queued bytes to dst and let go of them. */
static void outq_take(struct grpc_call *call, uint8_t *dst, size_t n)
{
    struct grpc_conn *c = call->conn;

    ASSERT(n <= call->out_bytes);
    ASSERT(c->queued_bytes >= n);
    call->out_bytes -= n;
    c->queued_bytes -= n;
    while (n > 0) {
        struct grpc_piece *h = pc_at(call, 0);
        size_t k = h->len - call->pc_off;
        if (k > n) {
            k = n;
        }
        if (h->ref != NULL) {
            memcpy(dst, h->ref + call->pc_off, k);
        } else {
            memcpy(dst, call->outq.data + call->outq_off, k);
            call->outq_off += k;
        }
        dst += k;
        n -= k;
        call->pc_off += k;
        if (call->pc_off == h->len) {
            pc_pop(call);
        }
    }
    if (call->out_bytes == 0) {
        ASSERT(call->pc_len == 0);
        ASSERT(call->outq_off == call->outq.len);
        buf_reset(&call->outq);
        call->outq_off = 0;
        call->pc_head = 0;
    }
}

static ssize_t data_read(nghttp2_session *s, int32_t stream_id, uint8_t *out,
                         size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    struct grpc_call *call = src->ptr;
    struct grpc_conn *c = ud;
    size_t avail = call->out_bytes;
    size_t n = avail < length ? avail : length;

    (void)s;
    (void)out;
    (void)c;
    ASSERT(call->stream_id == stream_id);
    ASSERT(call->conn == c);
    if (n > 0) {
        *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    }
    if (n < avail) {
        return (ssize_t)n;
    }
    if (call->finishing) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        submit_trailers(call);
        return (ssize_t)n;
    }
    if (n == 0) {
        call->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static int send_data(nghttp2_session *s, nghttp2_frame *frame,
                     const uint8_t *framehd, size_t length,
                     nghttp2_data_source *src, void *ud)
{
    struct grpc_call *call = src->ptr;
    struct grpc_conn *c = ud;

    (void)s;
    ASSERT(call->conn == c);
    ASSERT(frame->data.padlen == 0); /* we never ask for padding */
    ASSERT(length <= call->out_bytes);
    (void)frame;
    if (buf_reserve(&c->out, 9 + length) != 0) {
        return NGHTTP2_ERR_CALLBACK_FAILURE; /* ends the connection */
    }
    memcpy(c->out.data + c->out.len, framehd, 9);
    outq_take(call, c->out.data + c->out.len + 9, length);
    c->out.len += 9 + length;
    return 0;
}

/* Submit the response headers with our data provider, or wake it up. */
static int response_kick(struct grpc_call *call)
{
    struct grpc_conn *c = call->conn;
    int rv = 0;

    if (!call->resp_started) {
        nghttp2_nv nv[2] = {
            NV_STATIC(":status", "200"),
            NV_STATIC("content-type", "application/grpc"),
        };
        nghttp2_data_provider prd;
        prd.source.ptr = call;
        prd.read_callback = data_read;
        rv = nghttp2_submit_response(c->ngh, call->stream_id, nv, 2, &prd);
        if (rv == 0) {
            call->resp_started = 1;
        }
    } else if (call->deferred) {
        call->deferred = 0;
        rv = nghttp2_session_resume_data(c->ngh, call->stream_id);
    }
    grpc__conn_mark_dirty(c);
    return rv == 0 ? 0 : (rv == NGHTTP2_ERR_NOMEM ? -ENOMEM : ERR_INVALID);
}

/* Whether piece i of a message is kept by reference. */
static bool piece_lent(size_t i, size_t first_ref, const struct iovec *iov)
{
    return i >= first_ref && iov[i].iov_len >= GRPC_REF_MIN;
}

/* Frame one message into the call's queue and wake the stream: pb packed,
 * or the n pieces of iov concatenated (pieces first_ref.. that are large
 * enough held through ops rather than copied). */
static int queue_msg(struct grpc_call *call, const ProtobufCMessage *pb,
                     const struct iovec *iov, size_t niov, size_t first_ref,
                     const struct grpc_ref_ops *ops)
{
    struct grpc_conn *c = call->conn;
    size_t size = 0;
    size_t owned = 0; /* bytes copied into outq */
    size_t npieces = 1;
    uint8_t *p;
    int rc;

    if (pb != NULL) {
        size = protobuf_c_message_get_packed_size(pb);
        owned = size;
    } else {
        for (size_t i = 0; i < niov; i++) {
            size += iov[i].iov_len;
            if (piece_lent(i, first_ref, iov)) {
                npieces += 2; /* the piece, owned bytes after it */
            } else {
                owned += iov[i].iov_len;
            }
        }
    }
    if (size > GRPC_SEND_MSG_MAX) {
        return ERR_LIMIT;
    }
    /* Reclaim what nghttp2 already took once it is half the buffer. */
    if (call->outq_off > 0 && call->outq_off >= call->outq.len / 2) {
        size_t rest = call->outq.len - call->outq_off;
        memmove(call->outq.data, call->outq.data + call->outq_off, rest);
        call->outq.len = rest;
        call->outq_off = 0;
    }
    rc = buf_reserve(&call->outq, GRPC_FRAME_HDR + owned);
    if (rc == 0) {
        rc = pc_reserve(call, npieces);
    }
    if (rc != 0) {
        return rc;
    }
    rc = response_kick(call);
    if (rc != 0) {
        return rc;
    }
    /* Nothing below fails. */
    p = call->outq.data + call->outq.len;
    p[0] = 0;
    be32_put(p + 1, (uint32_t)size);
    call->outq.len += GRPC_FRAME_HDR;
    pc_push(call, NULL, NULL, GRPC_FRAME_HDR);
    if (pb != NULL) {
        size_t packed = protobuf_c_message_pack(pb, p + GRPC_FRAME_HDR);
        ASSERT(packed == size);
        call->outq.len += size;
        pc_push(call, NULL, NULL, size);
    } else {
        for (size_t i = 0; i < niov; i++) {
            size_t len = iov[i].iov_len;
            if (len == 0) {
                continue;
            }
            if (piece_lent(i, first_ref, iov)) {
                pc_push(call, iov[i].iov_base, ops, len);
            } else {
                memcpy(call->outq.data + call->outq.len, iov[i].iov_base, len);
                call->outq.len += len;
                pc_push(call, NULL, NULL, len);
            }
        }
    }
    call->out_bytes += GRPC_FRAME_HDR + size;
    c->queued_bytes += GRPC_FRAME_HDR + size;
    return 0;
}

/* ------------------------------------------------------- call API */

const struct grpc_method *grpc_call_method(const struct grpc_call *call)
{
    return call->m;
}

void grpc_call_set_data(struct grpc_call *call, void *data)
{
    call->data = data;
}

void *grpc_call_data(const struct grpc_call *call)
{
    return call->data;
}

const char *grpc_call_identity(const struct grpc_call *call)
{
    return call->conn != NULL ? call->conn->identity : NULL;
}

int32_t grpc_call_stream_id(const struct grpc_call *call)
{
    return call->stream_id;
}

uint64_t grpc_call_deadline_ms(const struct grpc_call *call)
{
    return call->deadline_ms;
}

const char *grpc_call_metadata(const struct grpc_call *call, const char *name,
                               size_t *len_out)
{
    if (call->meta.len == 0) {
        return NULL; /* no metadata: data may be NULL, and NULL + 0 is UB */
    }
    const char *p = (const char *)call->meta.data;
    const char *end = p + call->meta.len;

    /* Pairs name\0value\0; the list is bounded by header_bytes_max. */
    while (p < end) {
        const char *v = p + strlen(p) + 1;
        size_t vlen = strlen(v);
        if (strcmp(p, name) == 0) {
            if (len_out != NULL) {
                *len_out = vlen;
            }
            return v;
        }
        p = v + vlen + 1;
    }
    return NULL;
}

/* Bytes a call has queued that nghttp2 has not taken (waiting for the
 * client's window for this stream, or for the next flush). */
static size_t call_queued(const struct grpc_call *call)
{
    return call->out_bytes;
}

/* Whether a call may queue more. A stream whose client does not read must
 * not hold up the other streams of its connection: each call may queue a
 * quarter of the connection's bound; the connection as a whole twice it
 * (queued) and its bound in framed, unwritten bytes. */
static bool send_room(const struct grpc_call *call)
{
    const struct grpc_conn *c = call->conn;
    size_t max = c->srv->lim.conn_out_bytes_max;
    return call_queued(call) <= max / 4 && c->queued_bytes <= 2 * max &&
           c->out.len + c->wout.len <= max;
}

static int send_checked(struct grpc_call *call, const ProtobufCMessage *pb,
                        const struct iovec *iov, size_t niov, size_t first_ref,
                        const struct grpc_ref_ops *ops)
{
    struct grpc_conn *c = call->conn;

    ASSERT(call->conn != NULL);
    ASSERT(!call->app_done);
    if (!send_room(call)) {
        call->want_writable = 1;
        c->want_writable = 1;
        return ERR_BUSY;
    }
    return queue_msg(call, pb, iov, niov, first_ref, ops);
}

int grpc_call_send(struct grpc_call *call, const ProtobufCMessage *msg)
{
    ASSERT(msg != NULL);
    return send_checked(call, msg, NULL, 0, 0, NULL);
}

int grpc_call_send_bytes(struct grpc_call *call, const void *data, size_t len)
{
    struct iovec v = {(void *)data, len};
    ASSERT(data != NULL || len == 0);
    return send_checked(call, NULL, &v, 1, 1, NULL);
}

int grpc_call_send_iov(struct grpc_call *call, const struct iovec *iov,
                       size_t n)
{
    ASSERT(iov != NULL || n == 0);
    return send_checked(call, NULL, iov, n, n, NULL);
}

int grpc_call_send_iov_ref(struct grpc_call *call, const struct iovec *iov,
                           size_t n, size_t first_ref,
                           const struct grpc_ref_ops *ops)
{
    ASSERT(iov != NULL || n == 0);
    ASSERT(ops != NULL && ops->hold != NULL && ops->release != NULL);
    return send_checked(call, NULL, iov, n, first_ref, ops);
}

void grpc_call_finish(struct grpc_call *call, enum grpc_code code,
                      const char *message)
{
    ASSERT(call->conn != NULL);
    ASSERT(!call->app_done);
    if ((unsigned)code > GRPC_UNAUTHENTICATED) {
        code = GRPC_UNKNOWN;
    }
    call->app_done = 1;
    call_release_in(call);
    finish_submit(call, code, message);
}

void grpc_call_reply(struct grpc_call *call, const ProtobufCMessage *msg)
{
    int rc;

    ASSERT(!call->app_done);
    rc = queue_msg(call, msg, NULL, 0, 0, NULL);
    if (rc == 0) {
        grpc_call_finish(call, GRPC_OK, NULL);
    } else if (rc == -ENOMEM || rc == ERR_LIMIT) {
        grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED,
                         "grpc: response message too large or out of memory");
    } else {
        grpc_call_finish(call, GRPC_INTERNAL, "grpc: cannot send response");
    }
}

void grpc_call_finish_err(struct grpc_call *call, int err)
{
    grpc_call_finish(call, grpc_code_from_err(err), err_str(err));
}

/* ------------------------------------------------ connection helpers */

void grpc__conn_cancel_calls(struct grpc_conn *c)
{
    struct grpc_call *call;
    size_t guard = 0;

    while ((call = c->calls) != NULL) {
        if (!call->app_done) {
            call->app_done = 1;
            c->srv->stats.calls_cancelled++;
            if (call->app_seen && call->m->on_cancel != NULL) {
                call->m->on_cancel(call);
            }
        }
        grpc__call_free(c->srv, call);
        ASSERT(++guard <= c->srv->stats.calls_total + 1);
    }
}

void grpc__conn_notify_writable(struct grpc_conn *c)
{
    struct grpc_call *call;

    /* The list is stable here: calls are freed only from nghttp2's
     * stream-close callback or a connection close, neither of which an
     * application send/finish can trigger. */
    c->want_writable = 0;
    for (call = c->calls; call != NULL; call = call->next) {
        if (!call->want_writable || call->app_done) {
            continue;
        }
        if (call_queued(call) > c->srv->lim.conn_out_bytes_max / 8) {
            /* its own stream is still backed up: wait for its client */
            c->want_writable = 1;
            continue;
        }
        call->want_writable = 0;
        if (call->m->on_writable != NULL) {
            call->m->on_writable(call);
        }
    }
}

/* ------------------------------------------------- request headers */

static int name_is(const uint8_t *name, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(name, lit, n) == 0;
}

static void reject(struct grpc_call *call, enum grpc_code code,
                   const char *text)
{
    if (call->reject_code != GRPC_OK || call->reject_http != 0) {
        return; /* the first reason wins */
    }
    call->reject_code = code;
    set_message(call, NULL);
    if (text != NULL) {
        buf_append(&call->msg, text, strlen(text));
    }
}

static void header_path(struct grpc_call *call, const uint8_t *v, size_t n)
{
    char text[160];

    call->m = grpc__method_find(call->conn->srv, (const char *)v, n);
    if (call->m == NULL) {
        call->conn->srv->stats.calls_unimplemented++;
        snprintf(text, sizeof(text), "unknown method %.*s",
                 (int)(n > 120 ? 120 : n), (const char *)v);
        reject(call, GRPC_UNIMPLEMENTED, text);
    }
}

static void header_content_type(struct grpc_call *call, const uint8_t *v,
                                size_t n)
{
    static const char ct[] = "application/grpc";
    size_t k = sizeof(ct) - 1;

    /* application/grpc, application/grpc+proto, application/grpc;... */
    if (n < k || memcmp(v, ct, k) != 0 ||
        (n > k && v[k] != '+' && v[k] != ';')) {
        if (call->reject_http == 0) {
            call->reject_http = 415;
        }
    }
}

static void header_timeout(struct grpc_call *call, const uint8_t *v, size_t n)
{
    uint64_t ms;

    if (grpc__timeout_parse((const char *)v, n, &ms) == 0) {
        call->deadline_ms = uv_now(call->conn->srv->loop) + ms;
        if (call->deadline_ms == 0) {
            call->deadline_ms = 1;
        }
    } else {
        reject(call, GRPC_INTERNAL, "grpc: malformed grpc-timeout");
    }
}

static void header_meta(struct grpc_call *call, const uint8_t *name,
                        size_t nlen, const uint8_t *v, size_t vlen)
{
    struct buf *b = &call->meta;
    size_t old = b->len;

    /* Names and values with NULs cannot be looked up; nghttp2 rejects NUL
     * in names, and we drop such values. */
    if (memchr(v, 0, vlen) != NULL) {
        return;
    }
    if (buf_append(b, name, nlen) != 0 || buf_append_u8(b, 0) != 0 ||
        buf_append(b, v, vlen) != 0 || buf_append_u8(b, 0) != 0) {
        b->len = old;
        reject(call, GRPC_RESOURCE_EXHAUSTED, "grpc: header list too large");
    }
}

/* RFC 9113 8.1.1 / 8.3: a malformed request is a stream error of type
 * PROTOCOL_ERROR. nghttp2's own HTTP checks are off (grpc_server.c: they
 * refuse an :authority that is a URL, which etcd's clients send when
 * dialing one connection per endpoint, e.g. etcdctl endpoint status
 * --cluster: "http://127.0.0.1:2379"), so the rest of them live here. */
static void malformed(nghttp2_session *s, struct grpc_call *call)
{
    if (call->proto_err) {
        return;
    }
    call->proto_err = 1;
    call->app_done = 1; /* the application never sees it */
    call->conn->srv->stats.bad_headers++;
    (void)nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, call->stream_id,
                                    NGHTTP2_PROTOCOL_ERROR);
}

/* The pseudo-header bit of name, 0 when it is not one a request has. */
static unsigned pseudo_bit(const uint8_t *name, size_t nlen)
{
    if (name_is(name, nlen, ":method")) {
        return 1;
    }
    if (name_is(name, nlen, ":path")) {
        return 2;
    }
    if (name_is(name, nlen, ":scheme")) {
        return 4;
    }
    if (name_is(name, nlen, ":authority")) {
        return 8;
    }
    return 0;
}

/* False for a field a well-formed request cannot carry. */
static bool field_ok(struct grpc_call *call, const uint8_t *name, size_t nlen,
                     const uint8_t *v, size_t vlen)
{
    if (!nghttp2_check_header_value(v, vlen)) {
        return false; /* NUL, CR or LF */
    }
    if (nlen > 0 && name[0] == ':') {
        unsigned bit = pseudo_bit(name, nlen);
        if (bit == 0 || call->regular_seen || (call->pseudo_seen & bit)) {
            return false; /* unknown, after a regular field, or repeated */
        }
        call->pseudo_seen |= bit;
        return vlen > 0 || bit == 8;
    }
    call->regular_seen = 1;
    for (size_t i = 0; i < nlen; i++) {
        if (name[i] >= 'A' && name[i] <= 'Z') {
            return false; /* HTTP/2 field names are lower case */
        }
    }
    if (!nghttp2_check_header_name(name, nlen)) {
        return false;
    }
    if (name_is(name, nlen, "connection") ||
        name_is(name, nlen, "keep-alive") ||
        name_is(name, nlen, "proxy-connection") ||
        name_is(name, nlen, "transfer-encoding") ||
        name_is(name, nlen, "upgrade")) {
        return false; /* connection-specific */
    }
    return !name_is(name, nlen, "te") ||
           (vlen == 8 && memcmp(v, "trailers", 8) == 0);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame,
                     const uint8_t *name, size_t nlen, const uint8_t *v,
                     size_t vlen, uint8_t flags, void *ud)
{
    struct grpc_call *call;
    struct grpc_conn *c = ud;

    (void)flags;
    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0; /* client trailers carry nothing gRPC uses */
    }
    call = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (call == NULL || call->proto_err) {
        return 0;
    }
    if (!field_ok(call, name, nlen, v, vlen)) {
        malformed(s, call);
        return 0;
    }
    /* RFC 9113 6.5.2: name + value + 32 per field. */
    if (call->header_bytes > c->srv->lim.header_bytes_max) {
        return 0; /* refused already (below) */
    }
    call->header_bytes += (uint32_t)(nlen + vlen + 32);
    if (call->header_bytes > c->srv->lim.header_bytes_max) {
        c->srv->stats.headers_too_large++;
        reject(call, GRPC_RESOURCE_EXHAUSTED, "grpc: header list too large");
        return 0;
    }
    if (nlen > 0 && name[0] == ':') {
        if (name_is(name, nlen, ":method") &&
            !(vlen == 4 && memcmp(v, "POST", 4) == 0)) {
            call->reject_http = 405;
        } else if (name_is(name, nlen, ":path")) {
            header_path(call, v, vlen);
        }
    } else if (name_is(name, nlen, "content-type")) {
        header_content_type(call, v, vlen);
    } else if (name_is(name, nlen, "grpc-timeout")) {
        header_timeout(call, v, vlen);
    } else if (name_is(name, nlen, "grpc-encoding")) {
        call->bad_encoding = !(vlen == 8 && memcmp(v, "identity", 8) == 0);
    } else if (!name_is(name, nlen, "te") &&
               !name_is(name, nlen, "grpc-accept-encoding")) {
        header_meta(call, name, nlen, v, vlen);
    }
    return 0;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame,
                            void *ud)
{
    struct grpc_conn *c = ud;
    struct grpc_call *call;

    if (frame->hd.type != NGHTTP2_HEADERS ||
        frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    c->active_ms = uv_now(c->srv->loop);
    call = call_get(c, frame->hd.stream_id);
    if (call == NULL) {
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    }
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, call);
    return 0;
}

/* The request's header block is complete. */
static void headers_complete(nghttp2_session *s, struct grpc_call *call)
{
    struct grpc_server *srv = call->conn->srv;

    if (!call->proto_err && (call->pseudo_seen & 7) != 7) {
        malformed(s, call); /* :method, :path and :scheme are required */
    }
    if (call->proto_err) {
        return;
    }
    srv->stats.calls_total++;
    /* Replies ignore the outbound bound (grpc_call_reply) and reads go on
     * so WINDOW_UPDATEs get in; what bounds a client that asks and never
     * reads is refusing new calls while too much waits for it. */
    if (grpc__conn_pending_out(call->conn) > 2 * srv->lim.conn_out_bytes_max) {
        reject(call, GRPC_UNAVAILABLE,
               "grpc: too many response bytes pending on this connection");
    }
    if (call->reject_http != 0) {
        respond_http(call, call->reject_http);
        return;
    }
    if (call->reject_code != GRPC_OK || call->m == NULL) {
        /* The application never sees this call. */
        char text[200];
        size_t n =
            call->msg.len < sizeof(text) - 1 ? call->msg.len : sizeof(text) - 1;
        memcpy(text, call->msg.data, n);
        text[n] = '\0';
        call->app_done = 1;
        finish_submit(call,
                      call->reject_code != GRPC_OK ? call->reject_code
                                                   : GRPC_UNIMPLEMENTED,
                      text);
        return;
    }
    call->headers_done = 1;
    if (call->m->on_start != NULL) {
        call->app_seen = 1;
        call->m->on_start(call);
    }
}

/* ------------------------------------------------- request messages */

static int on_message(void *ctx, int compressed, const uint8_t *data,
                      size_t len)
{
    static const uint8_t empty[1];
    struct grpc_call *call = ctx;
    const struct grpc_method *m = call->m;
    struct grpc_msg msg;

    if (compressed != 0) {
        call_fail(call, call->bad_encoding ? GRPC_UNIMPLEMENTED : GRPC_INTERNAL,
                  call->bad_encoding
                      ? "grpc: compressed messages are not supported"
                      : "grpc: compressed flag set without grpc-encoding");
        return MSG_STOP;
    }
    if ((m->kind == GRPC_UNARY || m->kind == GRPC_SERVER_STREAM) &&
        call->msgs_in > 0) {
        call_fail(call, GRPC_INTERNAL,
                  "grpc: more than one request message for a unary request");
        return MSG_STOP;
    }
    call->msgs_in++;
    msg.data = data != NULL ? data : empty;
    msg.len = len;
    msg.pb = NULL;
    if (m->req_desc != NULL) {
        int rc;
        grpc__arena_reset(&call->arena);
        rc =
            grpc__pb_depth_check(m->req_desc, msg.data, len, GRPC_PB_DEPTH_MAX);
        if (rc == 0) {
            msg.pb = protobuf_c_message_unpack(m->req_desc, &call->arena.pa,
                                               len, msg.data);
        }
        if (msg.pb == NULL) {
            call_fail(call,
                      call->arena.failed ? GRPC_RESOURCE_EXHAUSTED
                                         : GRPC_INTERNAL,
                      rc == ERR_LIMIT
                          ? "grpc: error unmarshalling request: nested too "
                            "deeply"
                          : "grpc: error unmarshalling request");
            return MSG_STOP;
        }
    }
    call->app_seen = 1;
    m->on_msg(call, &msg);
    return call->app_done ? MSG_STOP : 0;
}

static int on_data_chunk(nghttp2_session *s, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *ud)
{
    struct grpc_conn *c = ud;
    struct grpc_call *call;
    uint32_t too_big = 0;
    char text[120];
    int rc;

    (void)flags;
    call = nghttp2_session_get_stream_user_data(s, stream_id);
    if (call == NULL || call->app_done || !call->headers_done) {
        return 0; /* dropped; flow control still counts it */
    }
    if (c->in_held + len > c->srv->lim.conn_in_bytes_max) {
        call_fail(call, GRPC_RESOURCE_EXHAUSTED,
                  "grpc: too many request bytes pending on this connection");
        return 0;
    }
    rc = grpc__deframer_feed(&call->df, data, len, on_message, call, &too_big);
    if (call->app_done) {
        return 0; /* finished inside; its share is already released */
    }
    if (rc == ERR_LIMIT) {
        c->srv->stats.msgs_too_large++;
        snprintf(text, sizeof(text),
                 "grpc: received message larger than max (%u vs. %zu)", too_big,
                 c->srv->lim.recv_msg_bytes_max);
        call_fail(call, GRPC_RESOURCE_EXHAUSTED, text);
        return 0;
    }
    if (rc != 0) {
        call_fail(call, GRPC_RESOURCE_EXHAUSTED, "grpc: out of memory");
        return 0;
    }
    /* Account what the deframer now holds. */
    c->in_held -= call->in_counted;
    call->in_counted = grpc__deframer_held(&call->df);
    c->in_held += call->in_counted;
    return 0;
}

/* The client half-closed its side. */
static void remote_end(struct grpc_call *call)
{
    call->remote_closed = 1;
    if (call->app_done || !call->headers_done) {
        return;
    }
    if (!grpc__deframer_idle(&call->df)) {
        call_fail(call, GRPC_INTERNAL, "grpc: truncated request message");
        return;
    }
    if ((call->m->kind == GRPC_UNARY || call->m->kind == GRPC_SERVER_STREAM) &&
        call->msgs_in == 0) {
        call_fail(call, GRPC_INTERNAL, "grpc: missing request message");
        return;
    }
    if (call->m->on_half_close != NULL) {
        call->app_seen = 1;
        call->m->on_half_close(call);
    }
}

/* One RST_STREAM from the client takes a token from the connection's
 * bucket (reset_burst tokens, refilled at reset_rate a second, kept in
 * thousandths). Opening streams and resetting them at once costs the
 * client nothing and us a call each (CVE-2023-44487, "rapid reset"): with
 * the bucket empty the connection gets GOAWAY(ENHANCE_YOUR_CALM), and
 * grpc_server.c's read_cb stops reading and closes it. */
static void reset_taken(nghttp2_session *s, struct grpc_conn *c)
{
    const struct grpc_limits *lim = &c->srv->lim;
    uint64_t now = uv_now(c->srv->loop);
    uint64_t cap = (uint64_t)lim->reset_burst * 1000;

    ASSERT(now >= c->rst_at_ms);
    c->rst_milli += (now - c->rst_at_ms) * lim->reset_rate;
    c->rst_milli = c->rst_milli < cap ? c->rst_milli : cap;
    c->rst_at_ms = now;
    if (c->rst_milli >= 1000) {
        c->rst_milli -= 1000;
        return;
    }
    if (!c->calm) {
        c->calm = 1;
        (void)nghttp2_session_terminate_session(s, NGHTTP2_ENHANCE_YOUR_CALM);
    }
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame,
                         void *ud)
{
    struct grpc_conn *c = ud;
    struct grpc_call *call;

    if (frame->hd.type == NGHTTP2_SETTINGS &&
        !(frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        c->settings_seen = 1; /* the preface is complete (RFC 9113 3.4) */
        return 0;
    }
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        reset_taken(s, c);
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) {
        return 0;
    }
    call = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (call == NULL) {
        return 0;
    }
    if (frame->hd.type == NGHTTP2_HEADERS &&
        frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        headers_complete(s, call);
    }
    if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) {
        remote_end(call);
    }
    return 0;
}

static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame,
                         void *ud)
{
    struct grpc_conn *c = ud;
    struct grpc_call *call;

    /* nghttp2 refuses a stream past SETTINGS_MAX_CONCURRENT_STREAMS (or
     * opened after our GOAWAY) itself; we never use this code */
    if (frame->hd.type == NGHTTP2_RST_STREAM &&
        frame->rst_stream.error_code == NGHTTP2_REFUSED_STREAM) {
        c->srv->stats.streams_refused++;
        return 0;
    }
    /* A GOAWAY for an error nghttp2 found itself (a stream past the
     * acknowledged SETTINGS_MAX_CONCURRENT_STREAMS, a flood, bad frames):
     * conn_fail and the reset bucket count theirs. */
    if (frame->hd.type == NGHTTP2_GOAWAY &&
        frame->goaway.error_code != NGHTTP2_NO_ERROR && !c->fatal && !c->calm) {
        c->srv->stats.protocol_errors++;
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS ||
        !(frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        return 0;
    }
    call = nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    /* Our side is done; a client still sending is told to stop. */
    if (call != NULL && !call->remote_closed) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t stream_id,
                           uint32_t error_code, void *ud)
{
    struct grpc_conn *c = ud;
    struct grpc_call *call;

    (void)error_code;
    call = nghttp2_session_get_stream_user_data(s, stream_id);
    if (call == NULL) {
        return 0;
    }
    c->active_ms = uv_now(c->srv->loop);
    nghttp2_session_set_stream_user_data(s, stream_id, NULL);
    if (!call->app_done) {
        call->app_done = 1;
        c->srv->stats.calls_cancelled++;
        if (call->app_seen && call->m->on_cancel != NULL) {
            call->m->on_cancel(call);
        }
    }
    grpc__call_free(c->srv, call);
    return 0;
}

static int on_error(nghttp2_session *s, int code, const char *msg, size_t len,
                    void *ud)
{
    (void)s;
    (void)ud;
    LOGD("grpc", "http2: %.*s (%d)", (int)len, msg, code);
    return 0;
}

int grpc__callbacks_new(nghttp2_session_callbacks **out)
{
    nghttp2_session_callbacks *cbs;

    if (nghttp2_session_callbacks_new(&cbs) != 0) {
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs,
                                                            on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
                                                              on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
                                                           on_stream_close);
    nghttp2_session_callbacks_set_error_callback2(cbs, on_error);
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data);
    *out = cbs;
    return 0;
}

/*
 * grpc_server.c - connections: adopting sockets, feeding nghttp2, batching
 * its output into one write per connection per loop pass, the read/write
 * bounds, graceful and hard shutdown.
 *
 * Happy path. The listener sniffs the HTTP/2 preface and calls
 * grpc_server_adopt() with the socket and the bytes it already read. We
 * open a uv_tcp_t on it, create an nghttp2 server session, queue our
 * SETTINGS, and feed the pre-read bytes. Each read is fed to
 * nghttp2_session_mem_recv(), whose callbacks (grpc_call.c) run the calls.
 * Anything that produces output (a read, an application send/finish from
 * any callback) marks the connection dirty; once per loop pass the check
 * handle pulls nghttp2's frames into one buffer and writes it with
 * uv_try_write(), falling back to one uv_write() for the rest. The idle
 * handle only keeps poll from sleeping while something is dirty.
 *
 * Bounds (STYLE.md section 9). A connection stops reading when its pending
 * outbound bytes (queued response messages + unwritten frames) exceed
 * conn_out_bytes_max and resumes below half of it; it also stops after
 * read_pass_bytes_max bytes in one pass and resumes at the next check, so
 * one busy client cannot starve the others. About GRPC_OUT_PASS_MAX bytes
 * are pulled from nghttp2 per pass (DATA frames can take it past that in
 * one call, up to what the calls queued: see flush); flow control (the
 * peer's windows) is nghttp2's, with deferred data providers per call.
 *
 * Failures. A fatal nghttp2 error (bad preface, flood, malformed frames
 * that nghttp2 cannot recover from) stops reading, queues GOAWAY, writes
 * what is pending and closes. Recoverable protocol errors are handled by
 * nghttp2 itself (RST_STREAM or GOAWAY); the session then reports that it
 * wants neither to read nor to write, and we close. EOF or a socket error
 * closes at once. Closing cancels every open call (on_cancel) before the
 * session is freed; memory goes when the uv_tcp_t's close callback runs.
 * Closing never happens inside an nghttp2 callback: only from the read and
 * write callbacks, the check pass, and grpc_server_close().
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "registry/grpc/grpc_int.h"

#define KIB ((size_t)1024)
#define MIB (KIB * 1024)

/* ------------------------------------------------------------ limits */

void grpc_limits_init(struct grpc_limits *lim, const struct limits *base)
{
    struct limits def;

    if (base == NULL) {
        limits_init(&def);
        base = &def;
    }
    /* etcd accepts --max-request-bytes plus gRPC framing overhead. */
    lim->recv_msg_bytes_max = (size_t)base->v[LIMIT_REQUEST_BYTES] + 512 * KIB;
    lim->streams_per_conn_max = (uint32_t)base->v[LIMIT_STREAMS_PER_CONN];
    lim->header_bytes_max = (uint32_t)base->v[LIMIT_HEADER_BYTES];
    lim->conn_out_bytes_max = (size_t)base->v[LIMIT_CONN_OUT_BYTES];
    lim->connections_max = (uint32_t)base->v[LIMIT_CONNECTIONS];
    /* Partial requests held per connection: a few maximal requests. */
    lim->conn_in_bytes_max = 4 * lim->recv_msg_bytes_max;
    lim->read_pass_bytes_max = 256 * KIB;
    lim->stream_window_bytes = (uint32_t)MIB;
    lim->conn_window_bytes = (uint32_t)(4 * MIB);
    /* grpc-go's server gives the preface 120 s; a client that connects
     * and says nothing for 10 s is not a client */
    lim->handshake_timeout_ms = 10000;
    lim->idle_timeout_ms = 600000;
    lim->stall_timeout_ms = 15000; /* as HTTP streams (http_int.h) */
    /* the defaults of nghttp2's own reset limiter (Debian's 1.52.0) */
    lim->reset_burst = 1000;
    lim->reset_rate = 33;
}

static int limits_ok(const struct grpc_limits *l)
{
    return l->recv_msg_bytes_max > 0 && l->recv_msg_bytes_max <= UINT32_MAX &&
           l->streams_per_conn_max > 0 && l->header_bytes_max > 0 &&
           l->conn_out_bytes_max > 0 && l->conn_in_bytes_max > 0 &&
           l->connections_max > 0 && l->read_pass_bytes_max > 0 &&
           l->stream_window_bytes > 0 &&
           l->stream_window_bytes <= NGHTTP2_MAX_WINDOW_SIZE &&
           l->conn_window_bytes >= NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE &&
           l->conn_window_bytes <= NGHTTP2_MAX_WINDOW_SIZE &&
           l->handshake_timeout_ms > 0 && l->idle_timeout_ms > 0 &&
           l->stall_timeout_ms > 0 && l->reset_burst > 0 && l->reset_rate > 0;
}

/* ------------------------------------------------ nghttp2 allocation */

/* nghttp2 allocates and frees a handful of small blocks for every call
 * (its stream, header buffers, outbound items: 7 allocations and 11 frees
 * per unary call), which cost about 1,500 instructions of glibc malloc and
 * free per put. Freed blocks of up to 512 bytes are kept per size class
 * (GRPC_NGH_CACHE_MAX each) and handed out again. Every block starts with
 * a 16-byte header (malloc's alignment) giving its class, or NGH_BIG and
 * its size. New blocks still come from mem_alloc, so allocation failures
 * reach nghttp2 as before. Sessions run on the loop thread only, as does
 * this. */
#define NGH_HDR 16
#define NGH_BIG GRPC_NGH_CLASSES

struct ngh_hdr {
    uint32_t cls;
    uint32_t unused;
    size_t size; /* NGH_BIG: the bytes asked for */
};
STATIC_ASSERT(sizeof(struct ngh_hdr) == NGH_HDR, "ngh header size");

static size_t ngh_class_bytes(uint32_t cls)
{
    return (size_t)64 << cls;
}

static uint32_t ngh_class_of(size_t size)
{
    uint32_t cls = 0;
    while (cls < GRPC_NGH_CLASSES && size > ngh_class_bytes(cls)) {
        cls++;
    }
    return cls; /* NGH_BIG when past the last class */
}

static void *ngh_malloc(size_t size, void *ud)
{
    struct grpc_server *srv = ud;
    uint32_t cls = ngh_class_of(size);
    struct ngh_hdr *h;
    if (cls < NGH_BIG && srv->ngh_free_blocks[cls] != NULL) {
        uint8_t *p = srv->ngh_free_blocks[cls];
        memcpy(&srv->ngh_free_blocks[cls], p, sizeof(void *));
        srv->ngh_free_count[cls]--;
        srv->stats.h2_memory_bytes += NGH_HDR + ngh_class_bytes(cls);
        return p;
    }
    if (size > SIZE_MAX - NGH_HDR) {
        return NULL;
    }
    h = mem_alloc(NGH_HDR + (cls < NGH_BIG ? ngh_class_bytes(cls) : size));
    if (h == NULL) {
        return NULL;
    }
    h->cls = cls;
    h->unused = 0;
    h->size = size;
    srv->stats.h2_memory_bytes +=
        NGH_HDR + (cls < NGH_BIG ? ngh_class_bytes(cls) : size);
    return (uint8_t *)h + NGH_HDR;
}

static void ngh_free(void *ptr, void *ud)
{
    struct grpc_server *srv = ud;
    struct ngh_hdr *h;
    if (ptr == NULL) {
        return;
    }
    h = (struct ngh_hdr *)((uint8_t *)ptr - NGH_HDR);
    ASSERT(h->cls <= NGH_BIG);
    srv->stats.h2_memory_bytes -=
        NGH_HDR + (h->cls < NGH_BIG ? ngh_class_bytes(h->cls) : h->size);
    if (h->cls == NGH_BIG || srv->ngh_cache_off ||
        srv->ngh_free_count[h->cls] == GRPC_NGH_CACHE_MAX) {
        mem_free(h);
        return;
    }
    memcpy(ptr, &srv->ngh_free_blocks[h->cls], sizeof(void *));
    srv->ngh_free_blocks[h->cls] = ptr;
    srv->ngh_free_count[h->cls]++;
}

static void *ngh_calloc(size_t n, size_t size, void *ud)
{
    void *p;
    if (size != 0 && n > SIZE_MAX / size) {
        return NULL;
    }
    p = ngh_malloc(n * size, ud);
    if (p != NULL) {
        memset(p, 0, n * size);
    }
    return p;
}

static void *ngh_realloc(void *ptr, size_t size, void *ud)
{
    const struct ngh_hdr *h;
    size_t have;
    void *p;
    if (ptr == NULL) {
        return ngh_malloc(size, ud);
    }
    h = (const struct ngh_hdr *)((const uint8_t *)ptr - NGH_HDR);
    have = h->cls == NGH_BIG ? h->size : ngh_class_bytes(h->cls);
    if (size <= have && h->cls != NGH_BIG) {
        return ptr; /* the block's class holds it already */
    }
    p = ngh_malloc(size, ud);
    if (p == NULL) {
        return NULL; /* ptr stays, as realloc leaves it */
    }
    memcpy(p, ptr, size < have ? size : have);
    ngh_free(ptr, ud);
    return p;
}

/* Free the kept blocks; later frees go straight to mem_free. */
static void ngh_cache_drain(struct grpc_server *srv)
{
    srv->ngh_cache_off = 1;
    for (uint32_t cls = 0; cls < GRPC_NGH_CLASSES; cls++) {
        uint8_t *p = srv->ngh_free_blocks[cls];
        for (uint32_t guard = 0; p != NULL; guard++) {
            uint8_t *next;
            ASSERT(guard < GRPC_NGH_CACHE_MAX);
            memcpy(&next, p, sizeof(void *));
            mem_free(p - NGH_HDR);
            p = next;
        }
        srv->ngh_free_blocks[cls] = NULL;
        srv->ngh_free_count[cls] = 0;
    }
}

/* ------------------------------------------------------ method index */

static int mtab_build(struct grpc_server *srv, size_t count)
{
    size_t size = 16;
    size_t i;

    while (size < count * 2) {
        size *= 2;
    }
    srv->mtab = mem_calloc(size, sizeof(srv->mtab[0]));
    if (srv->mtab == NULL) {
        return -ENOMEM;
    }
    srv->mtab_mask = size - 1;
    for (i = 0; i < count; i++) {
        const struct grpc_method *m = &srv->methods[i];
        size_t n = strlen(m->path);
        size_t slot = grpc__hash(m->path, n) & srv->mtab_mask;
        size_t probes = 0;

        if (grpc__method_find(srv, m->path, n) != NULL) {
            return ERR_EXISTS;
        }
        while (srv->mtab[slot] != 0) {
            slot = (slot + 1) & srv->mtab_mask;
            ASSERT(++probes <= srv->mtab_mask);
        }
        srv->mtab[slot] = (uint32_t)(i + 1);
    }
    return 0;
}

const struct grpc_method *grpc__method_find(const struct grpc_server *srv,
                                            const char *path, size_t n)
{
    size_t slot = grpc__hash(path, n) & srv->mtab_mask;
    size_t probes;

    /* The table is at most half full, so an empty slot ends the probe. */
    for (probes = 0; probes <= srv->mtab_mask; probes++) {
        uint32_t idx = srv->mtab[slot];
        const struct grpc_method *m;
        if (idx == 0) {
            return NULL;
        }
        m = &srv->methods[idx - 1];
        if (strncmp(m->path, path, n) == 0 && m->path[n] == '\0') {
            return m;
        }
        slot = (slot + 1) & srv->mtab_mask;
    }
    return NULL;
}

/* ------------------------------------------------------ server setup */

static void check_cb(uv_check_t *h);
static void sweep_cb(uv_timer_t *h);

static void idle_cb(uv_idle_t *h)
{
    /* Nothing to do: being active keeps poll from blocking so that the
     * check pass runs promptly. check_cb stops it. */
    (void)h;
}

static int methods_ok(const struct grpc_method *methods, size_t count)
{
    size_t i;

    if (count == 0 || count > UINT32_MAX / 4) {
        return 0;
    }
    for (i = 0; i < count; i++) {
        const struct grpc_method *m = &methods[i];
        if (m->path == NULL || m->path[0] != '/' || m->on_msg == NULL ||
            m->kind > GRPC_BIDI_STREAM) {
            return 0;
        }
    }
    return 1;
}

static void server_free_parts(struct grpc_server *srv)
{
    struct grpc_call *call;

    mem_free(srv->mtab);
    srv->mtab = NULL;
    if (srv->cbs != NULL) {
        nghttp2_session_callbacks_del(srv->cbs);
        srv->cbs = NULL;
    }
    if (srv->opt != NULL) {
        nghttp2_option_del(srv->opt);
        srv->opt = NULL;
    }
    mem_free(srv->rbuf);
    srv->rbuf = NULL;
    buf_free(&srv->out);
    while ((call = srv->call_pool) != NULL) {
        srv->call_pool = call->next;
        buf_free(&call->outq);
        mem_free(call->pieces);
        buf_free(&call->meta);
        buf_free(&call->msg);
        grpc__deframer_free(&call->df);
        mem_free(call);
    }
    srv->call_pool_count = 0;
    ngh_cache_drain(srv);
}

int grpc_server_init(struct grpc_server *srv, uv_loop_t *loop,
                     const struct grpc_limits *lim,
                     const struct grpc_method *methods, size_t methods_count)
{
    int rc;

    if (!limits_ok(lim) || !methods_ok(methods, methods_count)) {
        return ERR_INVALID;
    }
    memset(srv, 0, sizeof(*srv));
    buf_init(&srv->out, 0);
    srv->loop = loop;
    srv->lim = *lim;
    srv->methods = methods;
    srv->mem.mem_user_data = srv;
    srv->mem.malloc = ngh_malloc;
    srv->mem.free = ngh_free;
    srv->mem.calloc = ngh_calloc;
    srv->mem.realloc = ngh_realloc;
    rc = mtab_build(srv, methods_count);
    if (rc == 0) {
        rc = grpc__callbacks_new(&srv->cbs);
    }
    if (rc == 0 && nghttp2_option_new(&srv->opt) != 0) {
        rc = -ENOMEM;
    }
    if (rc == 0) {
        srv->rbuf = mem_alloc(GRPC_READ_BUF);
        rc = srv->rbuf == NULL ? -ENOMEM : 0;
    }
    if (rc != 0) {
        server_free_parts(srv);
        return rc;
    }
    /* Closed streams are kept only for priority bookkeeping: not needed. */
    nghttp2_option_set_no_closed_streams(srv->opt, 1);
    /* nghttp2's HTTP checks refuse an :authority that is a URL, which
     * etcd's clients send; grpc_call.c checks the rest (field_ok). */
    nghttp2_option_set_no_http_messaging(srv->opt, 1);
    /* Our reset bucket (grpc_call.c) answers first, with a metric and
     * ENHANCE_YOUR_CALM; nghttp2's stays behind it as a backstop. */
    nghttp2_option_set_stream_reset_rate_limit(srv->opt,
                                               2 * (uint64_t)lim->reset_burst,
                                               2 * (uint64_t)lim->reset_rate);
    uv_check_init(loop, &srv->check);
    uv_idle_init(loop, &srv->idle);
    uv_timer_init(loop, &srv->sweep);
    srv->check.data = srv;
    srv->idle.data = srv;
    srv->sweep.data = srv;
    uv_check_start(&srv->check, check_cb);
    uv_timer_start(&srv->sweep, sweep_cb, GRPC_SWEEP_MS, GRPC_SWEEP_MS);
    /* No handle should keep the loop alive by itself. */
    uv_unref((uv_handle_t *)&srv->check);
    uv_unref((uv_handle_t *)&srv->idle);
    uv_unref((uv_handle_t *)&srv->sweep);
    srv->handles_open = 3;
    return 0;
}

size_t grpc_server_conns(const struct grpc_server *srv)
{
    return (size_t)srv->stats.conns_open;
}

void grpc_server_stats(const struct grpc_server *srv, struct grpc_stats *out)
{
    size_t guard = 0;

    *out = srv->stats;
    out->out_pending_bytes = 0;
    for (const struct grpc_conn *c = srv->conns; c != NULL; c = c->next) {
        ASSERT(++guard <= srv->stats.conns_open);
        out->out_pending_bytes += grpc__conn_pending_out(c);
    }
}

/* ------------------------------------------------------- dirty list */

void grpc__conn_mark_dirty(struct grpc_conn *c)
{
    struct grpc_server *srv = c->srv;

    if (c->dirty || c->closing) {
        return;
    }
    c->dirty = 1;
    c->dirty_next = srv->dirty;
    srv->dirty = c;
    if (!uv_is_active((uv_handle_t *)&srv->idle) && !srv->closing) {
        uv_idle_start(&srv->idle, idle_cb);
    }
}

static void dirty_remove(struct grpc_conn *c)
{
    struct grpc_conn **pp = &c->srv->dirty;
    size_t guard = 0;

    if (!c->dirty) {
        return;
    }
    while (*pp != NULL && *pp != c) {
        pp = &(*pp)->dirty_next;
        ASSERT(++guard <= c->srv->stats.conns_open + 1);
    }
    ASSERT(*pp == c);
    *pp = c->dirty_next;
    c->dirty_next = NULL;
    c->dirty = 0;
}

/* -------------------------------------------------------- conn close */

/* One of our handles finished closing; the last one ends a close. */
static void handle_gone(struct grpc_server *srv)
{
    ASSERT(srv->handles_open > 0);
    srv->handles_open--;
    if (srv->closing && srv->handles_open == 0) {
        server_free_parts(srv);
        if (srv->close_cb != NULL) {
            srv->close_cb(srv);
        }
    }
}

static void conn_closed_cb(uv_handle_t *h)
{
    struct grpc_conn *c = h->data;
    struct grpc_server *srv = c->srv;

    ASSERT(c->closing);
    ASSERT(!c->dirty);
    buf_free(&c->out);
    buf_free(&c->wout);
    mem_free(c->identity);
    mem_free(c);
    handle_gone(srv);
}

static void conn_close(struct grpc_conn *c)
{
    struct grpc_server *srv = c->srv;

    if (c->closing) {
        return;
    }
    c->closing = 1;
    dirty_remove(c);
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    /* The application hears about every open call before the session
     * goes (nghttp2_session_del runs no stream-close callbacks). */
    grpc__conn_cancel_calls(c);
    ASSERT(c->calls == NULL);
    nghttp2_session_del(c->ngh);
    c->ngh = NULL;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        srv->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    ASSERT(srv->stats.conns_open > 0);
    srv->stats.conns_open--;
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

/* ------------------------------------------------------------ reads */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct grpc_conn *c = h->data;

    (void)hint;
    /* One buffer per server: read_cb consumes it before returning. */
    b->base = (char *)c->srv->rbuf;
    b->len = GRPC_READ_BUF;
}

/* Stop reading, queue GOAWAY(error) unless nghttp2 has queued one, and
 * close once what is queued is written (conn_service). */
static void conn_end(struct grpc_conn *c, uint32_t error)
{
    c->fatal = 1;
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    nghttp2_session_terminate_session(c->ngh, error);
    grpc__conn_mark_dirty(c);
}

static void conn_fail(struct grpc_conn *c, const char *why, int code)
{
    LOGD("grpc", "connection failed: %s (%d)", why, code);
    c->srv->stats.protocol_errors++;
    conn_end(c, NGHTTP2_PROTOCOL_ERROR);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct grpc_conn *c = s->data;
    ssize_t rv;

    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        c->eof = 1;
        conn_close(c);
        return;
    }
    c->srv->stats.bytes_in += (uint64_t)nread;
    rv = nghttp2_session_mem_recv(c->ngh, (const uint8_t *)b->base,
                                  (size_t)nread);
    if (rv < 0) {
        conn_fail(c, nghttp2_strerror((int)rv), (int)rv);
        return;
    }
    if (c->calm && !c->fatal) {
        /* grpc_call.c emptied the reset bucket and queued the GOAWAY */
        LOGD("grpc", "connection cut off: RST_STREAM past the bucket");
        c->srv->stats.rapid_resets++;
        conn_end(c, NGHTTP2_ENHANCE_YOUR_CALM);
        return;
    }
    c->pass_bytes += (size_t)nread;
    if (c->pass_bytes >= c->srv->lim.read_pass_bytes_max && c->reading) {
        uv_read_stop(s);
        c->reading = 0;
        c->paused_pass = 1;
    }
    grpc__conn_mark_dirty(c);
}

static void read_resume(struct grpc_conn *c)
{
    if (c->reading || c->paused_out || c->paused_pass || c->fatal || c->eof ||
        c->closing) {
        return;
    }
    if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) != 0) {
        c->eof = 1;
        return;
    }
    c->reading = 1;
}

/* ----------------------------------------------------------- writes */

static void write_cb(uv_write_t *req, int status)
{
    struct grpc_conn *c = req->data;

    c->writing = 0;
    c->srv->stats.bytes_out += c->wout.len;
    c->moved_ms = uv_now(c->srv->loop);
    buf_reset(&c->wout);
    if (c->closing) {
        return;
    }
    if (status < 0) {
        c->eof = 1;
        conn_close(c);
        return;
    }
    grpc__conn_mark_dirty(c);
}

/* Pull frames from nghttp2 into c->out, up to about max bytes. */
static int pull_output(struct grpc_conn *c, size_t max)
{
    size_t frames = 0;

    while (c->out.len < max) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->ngh, &data);
        int rc;
        if (n < 0) {
            return (int)n;
        }
        if (n == 0) {
            break;
        }
        rc = buf_append(&c->out, data, (size_t)n);
        if (rc != 0) {
            return NGHTTP2_ERR_NOMEM;
        }
        /* Every frame is at least 9 bytes, so the bound above ends this. */
        ASSERT(++frames <= GRPC_OUT_PASS_MAX);
    }
    return 0;
}

/* Write what nghttp2 has; what the socket does not take goes to one
 * uv_write. pull_output stops at GRPC_OUT_CHUNK only between frames that
 * nghttp2 hands back: DATA frames go through send_data (grpc_call.c), and
 * one nghttp2_session_mem_send() emits all of them that the windows allow
 * (fan-out: 290 KB a connection a pass). Cutting that into 16-128 KiB
 * writes (NGHTTP2_ERR_PAUSE from send_data) was slower: more segments for
 * the peer to take in. The frames are produced in the server's buffer
 * (srv->out), lent to the connection as c->out for the pass: c->out is
 * empty between passes, and one buffer for all connections stays in the
 * cache, where one per connection was cold again by the time it was
 * refilled. */
static void flush(struct grpc_conn *c)
{
    struct grpc_server *srv = c->srv;
    struct buf own;
    size_t moved = 0;
    uv_buf_t b;
    int rv;

    if (c->writing || c->eof) {
        return;
    }
    ASSERT(c->out.len == 0);
    own = c->out;
    c->out = srv->out;
again:
    rv = pull_output(c, GRPC_OUT_CHUNK);
    if (rv != 0 && !c->fatal) {
        conn_fail(c, nghttp2_strerror(rv), rv);
    }
    if (c->out.len == 0) {
        goto done;
    }
    b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    rv = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (rv == UV_EAGAIN || rv == UV_ENOSYS) {
        rv = 0;
    }
    if (rv < 0) {
        c->eof = 1;
        goto done;
    }
    srv->stats.bytes_out += (uint64_t)rv;
    if (rv > 0) {
        c->moved_ms = uv_now(srv->loop);
    }
    if ((size_t)rv == c->out.len) {
        moved += c->out.len;
        buf_reset(&c->out);
        if (nghttp2_session_want_write(c->ngh)) {
            if (moved < GRPC_OUT_PASS_MAX && !c->fatal) {
                goto again;
            }
            grpc__conn_mark_dirty(c); /* more next pass */
        }
        goto done;
    }
    /* The socket is full: the rest goes to the connection's own buffer
     * and one uv_write. */
    ASSERT(c->wout.len == 0);
    if (buf_append(&c->wout, c->out.data + rv, c->out.len - (size_t)rv) != 0) {
        c->eof = 1;
        goto done;
    }
    b = uv_buf_init((char *)c->wout.data, (unsigned)c->wout.len);
    c->wreq.data = c;
    rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (rv != 0) {
        buf_reset(&c->wout);
        c->eof = 1;
        goto done;
    }
    c->writing = 1;
done:
    buf_reset(&c->out);
    srv->out = c->out;
    c->out = own;
}

size_t grpc__conn_pending_out(const struct grpc_conn *c)
{
    return c->queued_bytes + c->out.len + c->wout.len;
}

/* Two bounds on outbound bytes. Reads stop while frames we already
 * produced sit unwritten above the bound (the peer is not reading its
 * socket) and resume below half of it. Messages queued behind HTTP/2 flow
 * control do not stop reads: the peer's WINDOW_UPDATEs must still get in,
 * or a full queue would wait forever. Those are bounded at the producer
 * instead: grpc_call_send() says ERR_BUSY and on_writable follows once the
 * total is below half the bound. */
static void apply_out_bound(struct grpc_conn *c)
{
    size_t unwritten = c->out.len + c->wout.len;
    size_t max = c->srv->lim.conn_out_bytes_max;

    if (unwritten > max && !c->paused_out) {
        c->paused_out = 1;
        c->srv->stats.reads_paused++;
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
    } else if (c->paused_out && unwritten <= max / 2) {
        c->paused_out = 0;
    }
    if (c->want_writable && unwritten <= max / 2 && c->queued_bytes <= max) {
        grpc__conn_notify_writable(c);
    }
}

/* One connection's share of the check pass. */
static void conn_service(struct grpc_conn *c)
{
    if (c->closing) {
        return;
    }
    flush(c);
    if (c->eof) {
        conn_close(c);
        return;
    }
    c->pass_bytes = 0;
    c->paused_pass = 0;
    apply_out_bound(c);
    read_resume(c);
    if (c->eof) {
        conn_close(c);
        return;
    }
    /* Done: GOAWAY went both ways or was sent with no streams left, or a
     * fatal error's GOAWAY has been written. */
    if (!c->writing && c->out.len == 0 &&
        ((!nghttp2_session_want_read(c->ngh) &&
          !nghttp2_session_want_write(c->ngh)) ||
         c->fatal)) {
        conn_close(c);
    }
}

static void check_cb(uv_check_t *h)
{
    struct grpc_server *srv = h->data;
    struct grpc_conn *list = srv->dirty;
    size_t guard = 0;

    /* Detach the list: connections marked again while we work are served
     * next pass, so this pass is bounded by the connections it started
     * with. No connection's memory is freed before the closing phase. */
    srv->dirty = NULL;
    while (list != NULL) {
        struct grpc_conn *c = list;
        list = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = 0;
        conn_service(c);
        ASSERT(++guard <= srv->stats.conns_total + 1);
    }
    if (srv->dirty == NULL) {
        uv_idle_stop(&srv->idle);
    }
}

/* Once a second: a connection whose client never finished the preface
 * (its SETTINGS) within handshake_timeout_ms is closed at once (there is
 * nobody to say GOAWAY to); one with no call for idle_timeout_ms gets
 * GOAWAY(NO_ERROR), as Go's http2.Server does after IdleTimeout, and a
 * well-behaved client reconnects when it next needs to. One with output
 * pending and not a byte of it written for stall_timeout_ms is closed:
 * the client stopped reading (or stopped granting HTTP/2 window). What
 * it held stayed within the outbound bound meanwhile (senders were
 * refused, its watchers catch up from the store), but not for ever. A
 * client that reads slowly writes something and stays. */
static void sweep_cb(uv_timer_t *h)
{
    struct grpc_server *srv = h->data;
    uint64_t now = uv_now(srv->loop);
    struct grpc_conn *c = srv->conns;
    size_t guard = 0;

    while (c != NULL) {
        struct grpc_conn *next = c->next;
        ASSERT(++guard <= srv->stats.conns_total);
        if (c->closing) {
            c = next;
            continue;
        }
        if (grpc__conn_pending_out(c) == 0) {
            c->moved_ms = now;
        }
        /* before the fatal check: a GOAWAY nobody reads must not keep a
         * connection either */
        if (now - c->moved_ms >= srv->lim.stall_timeout_ms) {
            srv->stats.stalled_closed++;
            conn_close(c); /* it reads nothing: no GOAWAY to say */
        } else if (c->fatal) {
            /* its GOAWAY is on the way; conn_service closes it */
        } else if (!c->settings_seen &&
                   now - c->adopted_ms >= srv->lim.handshake_timeout_ms) {
            srv->stats.handshake_timeouts++;
            conn_close(c); /* unlinks c; next is still linked */
        } else if (c->settings_seen && c->calls == NULL &&
                   now - c->active_ms >= srv->lim.idle_timeout_ms) {
            srv->stats.idle_closed++;
            conn_end(c, NGHTTP2_NO_ERROR);
        }
        c = next;
    }
}

/* ------------------------------------------------------------ adopt */

static int session_new(struct grpc_server *srv, struct grpc_conn *c)
{
    nghttp2_settings_entry iv[5];
    int rv;

    rv = nghttp2_session_server_new3(&c->ngh, srv->cbs, c, srv->opt, &srv->mem);
    if (rv != 0) {
        return -ENOMEM;
    }
    iv[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS;
    iv[0].value = srv->lim.streams_per_conn_max;
    iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE;
    iv[1].value = srv->lim.stream_window_bytes;
    iv[2].settings_id = NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE;
    iv[2].value = srv->lim.header_bytes_max;
    iv[3].settings_id = NGHTTP2_SETTINGS_ENABLE_PUSH;
    iv[3].value = 0;
    iv[4].settings_id = NGHTTP2_SETTINGS_HEADER_TABLE_SIZE;
    iv[4].value = GRPC_HPACK_TABLE_BYTES;
    rv = nghttp2_submit_settings(c->ngh, NGHTTP2_FLAG_NONE, iv, 5);
    if (rv == 0) {
        rv = nghttp2_session_set_local_window_size(
            c->ngh, NGHTTP2_FLAG_NONE, 0, (int32_t)srv->lim.conn_window_bytes);
    }
    if (rv != 0) {
        nghttp2_session_del(c->ngh);
        c->ngh = NULL;
        return -ENOMEM;
    }
    return 0;
}

static void open_failed_cb(uv_handle_t *h)
{
    struct grpc_conn *c = h->data;
    struct grpc_server *srv = c->srv;

    mem_free(c->identity);
    mem_free(c);
    handle_gone(srv);
}

int grpc_server_adopt(struct grpc_server *srv, int fd, const void *pre,
                      size_t pre_len)
{
    return grpc_server_adopt_id(srv, fd, pre, pre_len, NULL);
}

int grpc_server_adopt_id(struct grpc_server *srv, int fd, const void *pre,
                         size_t pre_len, const char *identity)
{
    struct grpc_conn *c;
    char *id = NULL;
    int rc;

    if (srv->shutting_down || srv->closing) {
        return ERR_STOPPED;
    }
    if (srv->stats.conns_open >= srv->lim.connections_max) {
        srv->stats.conns_refused++;
        return ERR_BUSY;
    }
    if (identity != NULL) {
        size_t n = strnlen(identity, GRPC_IDENTITY_BYTES_MAX);
        if (n == GRPC_IDENTITY_BYTES_MAX) {
            return ERR_INVALID;
        }
        id = mem_alloc(n + 1);
        if (id == NULL) {
            return -ENOMEM;
        }
        memcpy(id, identity, n + 1);
    }
    c = mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        mem_free(id);
        return -ENOMEM;
    }
    c->srv = srv;
    c->identity = id;
    c->adopted_ms = uv_now(srv->loop);
    c->active_ms = c->adopted_ms;
    c->moved_ms = c->adopted_ms;
    c->rst_at_ms = c->adopted_ms;
    c->rst_milli = (uint64_t)srv->lim.reset_burst * 1000;
    buf_init(&c->out, 0);
    buf_init(&c->wout, 0);
    rc = session_new(srv, c);
    if (rc != 0) {
        mem_free(c->identity);
        mem_free(c);
        return rc;
    }
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    srv->handles_open++;
    rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        /* The handle never took fd: closing it leaves fd to the caller. */
        nghttp2_session_del(c->ngh);
        uv_close((uv_handle_t *)&c->tcp, open_failed_cb);
        return rc;
    }
    /* From here on fd is ours, whatever happens to the connection. */
    uv_tcp_nodelay(&c->tcp, 1);
    c->next = srv->conns;
    if (srv->conns != NULL) {
        srv->conns->prev = c;
    }
    srv->conns = c;
    srv->stats.conns_open++;
    srv->stats.conns_total++;
    if (pre_len > 0) {
        ssize_t rv = nghttp2_session_mem_recv(c->ngh, pre, pre_len);
        srv->stats.bytes_in += pre_len;
        if (rv < 0) {
            conn_fail(c, nghttp2_strerror((int)rv), (int)rv);
        }
    }
    read_resume(c);
    grpc__conn_mark_dirty(c);
    return 0;
}

/* --------------------------------------------------------- shutdown */

void grpc_server_shutdown(struct grpc_server *srv)
{
    struct grpc_conn *c;
    size_t guard = 0;

    srv->shutting_down = 1;
    for (c = srv->conns; c != NULL; c = c->next) {
        ASSERT(++guard <= srv->stats.conns_open);
        if (c->closing || c->fatal) {
            continue;
        }
        /* Streams up to the last one we saw are served to the end; the
         * client retries later ones elsewhere (RFC 9113 6.8). */
        nghttp2_submit_goaway(c->ngh, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->ngh),
                              NGHTTP2_NO_ERROR, NULL, 0);
        grpc__conn_mark_dirty(c);
    }
}

static void handle_closed_cb(uv_handle_t *h)
{
    handle_gone(h->data);
}

void grpc_server_close(struct grpc_server *srv, grpc_server_close_cb close_cb)
{
    size_t guard = 0;

    ASSERT(!srv->closing);
    srv->closing = 1;
    srv->shutting_down = 1;
    srv->close_cb = close_cb;
    while (srv->conns != NULL) {
        conn_close(srv->conns); /* unlinks it */
        ASSERT(++guard <= srv->stats.conns_total);
    }
    ASSERT(srv->dirty == NULL);
    uv_timer_stop(&srv->sweep);
    uv_close((uv_handle_t *)&srv->check, handle_closed_cb);
    uv_close((uv_handle_t *)&srv->idle, handle_closed_cb);
    uv_close((uv_handle_t *)&srv->sweep, handle_closed_cb);
}

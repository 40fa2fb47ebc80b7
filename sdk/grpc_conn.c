/*
 * cairn_cairn__conn.c - a minimal gRPC client: nghttp2 client sessions on
 * libuv TCP connections, one struct cairn__call per stream.
 *
 * Happy path. cairn__net_open connects every connection; on connect the
 * client preface and SETTINGS (no push, 16 MiB stream window) are queued
 * and the connection window is raised to 1 GiB, so flow control never
 * paces a benchmark. cairn__call_start submits HEADERS (:method POST,
 * :path, content-type application/grpc, te trailers) with a data provider
 * that reads the call's framed messages; a unary call sets END_STREAM
 * after them, a bidi call defers when its buffer is empty and resumes on
 * cairn__call_push. Responses: grpc-status and grpc-message come from the
 * trailers (or a trailers-only HEADERS frame); DATA is unframed into
 * messages only for calls that asked for them (want_msgs), whole messages
 * straight from nghttp2's chunk when they fit, else through the call's
 * buffer. When nghttp2 closes the stream the done callback gets the status.
 *
 * Output is batched: starting or feeding a call only marks its connection
 * dirty; cairn__net_flush (called by the engine at the end of each loop
 * callback, and by the read callback itself) drains nghttp2's output into
 * one buffer per connection and writes it with uv_try_write, falling back
 * to one uv_write; while a write is in flight further output waits for its
 * completion. So a read that completes 50 responses and starts 50 requests
 * costs one read and one write system call.
 *
 * TLS (net->tls set; RFC 8446 with ALPN "h2", as gRPC requires). The
 * socket carries ciphertext only: bytes read go into the SSL's read BIO
 * (a memory BIO), SSL_read gives plaintext to nghttp2_session_mem_recv;
 * nghttp2's output goes through SSL_write into the write BIO, which
 * conn_flush drains into wbuf and writes like cleartext output. After the
 * TCP connect the handshake runs first; the HTTP/2 session is made when
 * it completes and the preface queued, but the connection counts as
 * connected only when the first plaintext from the server (its SETTINGS)
 * is read: a TLS 1.3 server refuses a client certificate after the
 * client's side of the handshake is over, so waiting for the server's
 * first bytes turns that refusal into a failed connect with its reason.
 * A handshake or record that fails leaves the reason in conn->why
 * (OpenSSL's verify error for a certificate that does not verify) and
 * the connection dies with -EPROTO.
 *
 * Failures. A connection that fails to connect, reads EOF or an error,
 * gets a protocol error from nghttp2 or a write error is dead: each active
 * call gets its done callback with CAIRN__ST_TRANSPORT, and calls started
 * on it later fail with ERR_STOPPED. A stream reset by the server (or by
 * cairn__call_cancel) without a grpc-status ends with CAIRN__ST_TRANSPORT;
 * a response message above CAIRN__CALL_IN_MAX resets the stream and ends
 * with CAIRN__ST_BAD_RESPONSE.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>

#include <openssl/err.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "sdk/grpc_int.h"
#include "sdk/tls_int.h"

#define WINDOW_STREAM    (16 << 20)
#define WINDOW_CONN      (1 << 30)
#define FLUSH_CHUNK      ((size_t)1 << 20)
#define FLUSH_ROUNDS_MAX 64

static void conn_flush(struct cairn__conn *c);

static void mark_dirty(struct cairn__conn *c)
{
    struct cairn__net *net = c->net;
    if (c->dirty) {
        return;
    }
    ASSERT(net->dirty_count < net->conns_count);
    c->dirty = true;
    net->dirty[net->dirty_count++] = c;
}

static void list_remove(struct cairn__call *call)
{
    struct cairn__conn *c = call->conn;
    ASSERT(c != NULL && c->calls_count > 0);
    if (call->prev != NULL) {
        call->prev->next = call->next;
    } else {
        c->calls = call->next;
    }
    if (call->next != NULL) {
        call->next->prev = call->prev;
    }
    call->prev = call->next = NULL;
    c->calls_count--;
}

/* Ends an active call: unlinks it and runs its done callback. */
static void call_end(struct cairn__call *call, int status)
{
    ASSERT(call->active);
    list_remove(call);
    call->active = false;
    call->stream_id = 0;
    buf_reset(&call->out);
    call->out_off = 0;
    buf_reset(&call->in);
    call->on_done(call, status);
}

static void on_close(uv_handle_t *h)
{
    struct cairn__conn *c = h->data;
    c->net->closed++;
}

static void conn_fail(struct cairn__conn *c, int err)
{
    if (c->dead) {
        return;
    }
    bool was_connecting = !c->connected;
    c->dead = true;
    c->err = err;
    c->net->dead++;
    /* Bounded by the calls on this connection; a done callback cannot add
     * one (cairn__call_start refuses a dead connection). */
    while (c->calls != NULL) {
        call_end(c->calls, CAIRN__ST_TRANSPORT);
    }
    if (!c->closing) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_close);
    }
    if (was_connecting && c->net->on_change != NULL) {
        c->net->on_change(c->net);
    }
}

/* ------------------------------------------------------ nghttp2 hooks */

static ssize_t data_read(nghttp2_session *s, int32_t sid, uint8_t *out,
                         size_t length, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)sid;
    (void)ud;
    struct cairn__call *call = src->ptr;
    size_t avail = call->out.len - call->out_off;
    if (avail == 0) {
        if (!call->bidi || call->send_closed) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        call->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < length ? avail : length;
    memcpy(out, call->out.data + call->out_off, n);
    call->out_off += n;
    if (call->out_off == call->out.len) {
        buf_reset(&call->out);
        call->out_off = 0;
        if (!call->bidi || call->send_closed) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        }
    }
    return (ssize_t)n;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame,
                     const uint8_t *name, size_t namelen, const uint8_t *value,
                     size_t valuelen, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    if (frame->hd.type != NGHTTP2_HEADERS) {
        return 0;
    }
    struct cairn__call *call =
        nghttp2_session_get_stream_user_data(s, frame->hd.stream_id);
    if (call == NULL) {
        return 0;
    }
    if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0) {
        int v = 0;
        for (size_t i = 0; i < valuelen && i < 4; i++) {
            if (value[i] < '0' || value[i] > '9') {
                v = CAIRN__ST_BAD_RESPONSE;
                break;
            }
            v = v * 10 + (value[i] - '0');
        }
        if (valuelen == 0 || v > CAIRN__ST_GRPC_MAX) {
            v = CAIRN__ST_BAD_RESPONSE;
        }
        call->status = v;
        call->got_status = true;
    } else if (namelen == 12 && memcmp(name, "grpc-message", 12) == 0) {
        size_t n = valuelen < sizeof(call->message) - 1
                       ? valuelen
                       : sizeof(call->message) - 1;
        memcpy(call->message, value, n);
        call->message[n] = 0;
    }
    return 0;
}

static void call_bad(nghttp2_session *s, struct cairn__call *call)
{
    call->status = CAIRN__ST_BAD_RESPONSE;
    call->got_status = true;
    nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, call->stream_id,
                              NGHTTP2_CANCEL);
}

/* Appends up to n bytes of p to the partial message; returns how many it
 * took, or -1 when the message is too big. */
static ssize_t partial_take(struct cairn__call *call, const uint8_t *p,
                            size_t n)
{
    size_t want;
    if (call->in.len < 5) {
        want = 5 - call->in.len;
    } else {
        uint32_t mlen = be32_get(call->in.data + 1);
        want = 5 + (size_t)mlen - call->in.len;
    }
    size_t take = n < want ? n : want;
    if (buf_append(&call->in, p, take) != 0) {
        return -1;
    }
    if (call->in.len == 5 && be32_get(call->in.data + 1) > call->in_max) {
        return -1;
    }
    return (ssize_t)take;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t sid,
                   const uint8_t *p, size_t n, void *ud)
{
    (void)flags;
    (void)ud;
    struct cairn__call *call = nghttp2_session_get_stream_user_data(s, sid);
    if (call == NULL || !call->want_msgs) {
        return 0;
    }
    /* Each round consumes at least one byte, so n bounds the loop. */
    while (n > 0 && call->active && call->stream_id == sid) {
        if (call->in.len == 0 && n >= 5) {
            uint32_t mlen = be32_get(p + 1);
            if (mlen > call->in_max || p[0] != 0) {
                call_bad(s, call);
                return 0;
            }
            if (n >= 5 + (size_t)mlen) {
                call->msgs_in++;
                call->on_msg(call, p + 5, mlen);
                p += 5 + (size_t)mlen;
                n -= 5 + (size_t)mlen;
                continue;
            }
        }
        ssize_t took = partial_take(call, p, n);
        if (took < 0 || call->in.data[0] != 0) {
            call_bad(s, call);
            return 0;
        }
        p += took;
        n -= (size_t)took;
        if (call->in.len >= 5 &&
            call->in.len == 5 + (size_t)be32_get(call->in.data + 1)) {
            call->msgs_in++;
            call->on_msg(call, call->in.data + 5, call->in.len - 5);
            buf_reset(&call->in);
        }
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code,
                           void *ud)
{
    (void)error_code;
    (void)ud;
    struct cairn__call *call = nghttp2_session_get_stream_user_data(s, sid);
    if (call == NULL || !call->active || call->stream_id != sid) {
        return 0;
    }
    call_end(call, call->got_status ? call->status : CAIRN__ST_TRANSPORT);
    return 0;
}

/* ---------------------------------------------------------- socket I/O */

static void write_done(uv_write_t *req, int status)
{
    struct cairn__conn *c = req->data;
    c->writing = false;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    conn_flush(c);
}

/* A TLS failure: its reason into why, and the connection dies. */
static void tls_fail(struct cairn__conn *c, int ret)
{
    if (c->why[0] == 0) {
        cairn__tls_why(c->ssl, ret, c->why, sizeof(c->why));
    }
    conn_fail(c, -EPROTO);
}

/* Moves the ciphertext waiting in the write BIO to the end of wbuf. */
static int tls_take(struct cairn__conn *c)
{
    BIO *w = SSL_get_wbio(c->ssl);
    size_t pend = BIO_ctrl_pending(w);
    if (pend == 0) {
        return 0;
    }
    int rc = buf_reserve(&c->wbuf, pend);
    if (rc != 0) {
        return rc;
    }
    int n = BIO_read(w, c->wbuf.data + c->wbuf.len, (int)pend);
    if (n != (int)pend) {
        return ERR_BAD_REQUEST;
    }
    c->wbuf.len += pend;
    ASSERT(BIO_ctrl_pending(w) == 0);
    return 0;
}

/* Encrypts the plaintext in wbuf; wbuf then holds the ciphertext. A
 * memory BIO takes any amount, so SSL_write takes all or fails. */
static int tls_seal(struct cairn__conn *c)
{
    if (c->wbuf.len > 0) {
        ERR_clear_error();
        int n = SSL_write(c->ssl, c->wbuf.data, (int)c->wbuf.len);
        if (n != (int)c->wbuf.len) {
            cairn__tls_why(c->ssl, n, c->why, sizeof(c->why));
            return -EPROTO;
        }
        buf_reset(&c->wbuf);
    }
    return tls_take(c);
}

/* Drains nghttp2's output into wbuf (sealed with TLS); 0, or a negative
 * code. During a TLS handshake there is no session yet, only records. */
static int drain(struct cairn__conn *c)
{
    buf_reset(&c->wbuf);
    while (c->h2 != NULL && c->wbuf.len < FLUSH_CHUNK) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(c->h2, &d);
        if (n < 0) {
            return ERR_BAD_REQUEST;
        }
        if (n == 0) {
            break;
        }
        int rc = buf_append(&c->wbuf, d, (size_t)n);
        if (rc != 0) {
            return rc;
        }
    }
    return c->ssl != NULL ? tls_seal(c) : 0;
}

static void conn_flush(struct cairn__conn *c)
{
    if (c->dead || c->writing || (!c->connected && !c->handshaking)) {
        return;
    }
    for (int round = 0; round < FLUSH_ROUNDS_MAX; round++) {
        int rc = drain(c);
        if (rc != 0) {
            conn_fail(c, rc);
            return;
        }
        if (c->wbuf.len == 0) {
            return;
        }
        uv_buf_t b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
        int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (w == (int)b.len) {
            continue;
        }
        if (w < 0 && w != UV_EAGAIN) {
            conn_fail(c, w);
            return;
        }
        if (w > 0) {
            b.base += w;
            b.len -= (unsigned)w;
        }
        c->writing = true;
        c->write_req.data = c;
        rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, write_done);
        if (rc != 0) {
            c->writing = false;
            conn_fail(c, rc);
        }
        return;
    }
    /* Still more output after many rounds: finish on the next pass. */
    mark_dirty(c);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *out)
{
    (void)hint;
    struct cairn__conn *c = h->data;
    *out = uv_buf_init((char *)c->net->rbuf, sizeof(c->net->rbuf));
}

static int session_setup(struct cairn__conn *c);

/* The connection is usable: count it and tell the owner. */
static void conn_up(struct cairn__conn *c)
{
    ASSERT(!c->connected && !c->dead);
    c->handshaking = false;
    c->connected = true;
    c->net->connected++;
    if (c->net->on_change != NULL) {
        c->net->on_change(c->net);
    }
}

/* Runs the handshake on; true once it is done (the session then exists
 * and its preface is queued). */
static bool tls_handshake(struct cairn__conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            conn_flush(c); /* our next flight */
        } else {
            tls_fail(c, r);
        }
        return false;
    }
    const unsigned char *proto = NULL;
    unsigned plen = 0;
    SSL_get0_alpn_selected(c->ssl, &proto, &plen);
    if (plen != 0 && (plen != 2 || memcmp(proto, "h2", 2) != 0)) {
        snprintf(c->why, sizeof(c->why),
                 "tls: the server chose ALPN \"%.*s\", not h2", (int)plen,
                 (const char *)proto);
        conn_fail(c, -EPROTO);
        return false;
    }
    int rc = session_setup(c);
    if (rc != 0) {
        conn_fail(c, rc);
        return false;
    }
    conn_flush(c);
    return !c->dead;
}

/* Plaintext from the server to nghttp2; false when the connection died. */
static bool h2_recv(struct cairn__conn *c, const uint8_t *p, size_t n)
{
    ssize_t rv = nghttp2_session_mem_recv(c->h2, p, n);
    if (rv < 0) {
        conn_fail(c, ERR_BAD_REQUEST);
        return false;
    }
    return !c->dead;
}

/* Ciphertext in rbuf: through the SSL to nghttp2. */
static void tls_recv(struct cairn__conn *c, size_t nread)
{
    BIO *r = SSL_get_rbio(c->ssl);
    if (BIO_write(r, c->net->rbuf, (int)nread) != (int)nread) {
        conn_fail(c, -ENOMEM);
        return;
    }
    if (c->h2 == NULL && !tls_handshake(c)) {
        return;
    }
    /* Each SSL_read that returns bytes consumes records from the read
     * BIO, which holds at most what arrived: the loop ends at WANT_READ.
     * rbuf is free for plaintext: the BIO holds its own copy. */
    while (!c->dead) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->net->rbuf, (int)sizeof(c->net->rbuf));
        if (n <= 0) {
            if (SSL_get_error(c->ssl, n) != SSL_ERROR_WANT_READ) {
                tls_fail(c, n);
            }
            break;
        }
        if (c->handshaking) {
            conn_up(c);
        }
        if (!h2_recv(c, c->net->rbuf, (size_t)n)) {
            break;
        }
    }
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct cairn__conn *c = st->data;
    if (nread == 0) {
        return;
    }
    if (nread < 0) {
        if (c->handshaking && c->why[0] == 0) {
            snprintf(c->why, sizeof(c->why),
                     "tls: the server closed the connection during the "
                     "handshake");
        }
        conn_fail(c, (int)nread);
        cairn__net_flush(c->net);
        return;
    }
    if (c->ssl != NULL) {
        tls_recv(c, (size_t)nread);
    } else {
        h2_recv(c, (const uint8_t *)b->base, (size_t)nread);
    }
    if (c->dead || c->h2 == NULL) {
        /* failed, or a handshake still going: nothing more to do */
    } else if (!nghttp2_session_want_read(c->h2) &&
               !nghttp2_session_want_write(c->h2)) {
        conn_fail(c, -ECONNRESET); /* GOAWAY and nothing left */
    } else {
        conn_flush(c);
    }
    cairn__net_flush(c->net);
}

static int session_setup(struct cairn__conn *c)
{
    nghttp2_session_callbacks *cbs;
    int rc = nghttp2_session_callbacks_new(&cbs);
    if (rc != 0) {
        return -ENOMEM;
    }
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
                                                           on_stream_close);
    rc = nghttp2_session_client_new(&c->h2, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (rc != 0) {
        return -ENOMEM;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, WINDOW_STREAM},
    };
    rc = nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, iv, 2);
    if (rc == 0) {
        rc = nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0,
                                                   WINDOW_CONN);
    }
    return rc == 0 ? 0 : ERR_BAD_REQUEST;
}

/* After the TCP connect with TLS: the SSL on memory BIOs, reads on, and
 * the first flight (ClientHello) out. */
static void tls_start(struct cairn__conn *c)
{
    c->ssl = cairn__tls_ssl_new(c->net->tls, c->net->tls_host, "h2");
    BIO *r = BIO_new(BIO_s_mem());
    BIO *w = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || r == NULL || w == NULL) {
        BIO_free(r);
        BIO_free(w);
        conn_fail(c, -ENOMEM);
        return;
    }
    SSL_set_bio(c->ssl, r, w); /* the SSL owns both from here */
    c->handshaking = true;
    int rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rc != 0) {
        conn_fail(c, rc);
        return;
    }
    tls_handshake(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct cairn__conn *c = req->data;
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    if (c->net->tls != NULL) {
        uv_tcp_nodelay(&c->tcp, 1);
        tls_start(c);
        return;
    }
    int rc = session_setup(c);
    if (rc != 0) {
        conn_fail(c, rc);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->connected = true;
    c->net->connected++;
    rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rc != 0) {
        conn_fail(c, rc);
        return;
    }
    conn_flush(c);
    if (c->net->on_change != NULL) {
        c->net->on_change(c->net);
    }
}

/* ------------------------------------------------------------- the net */

int cairn__net_open(struct cairn__net *net, uv_loop_t *loop,
                    const struct sockaddr_in *addrs, size_t addrs_count,
                    size_t conns_count)
{
    ASSERT(addrs_count > 0);
    struct sockaddr_storage *ss = mem_calloc(addrs_count, sizeof(*ss));
    if (ss == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < addrs_count; i++) {
        memcpy(&ss[i], &addrs[i], sizeof(addrs[i]));
    }
    int rc = cairn__net_open_tls(net, loop, ss, addrs_count, conns_count, NULL,
                                 NULL);
    mem_free(ss); /* uv_tcp_connect copied each address */
    return rc;
}

/* "ip:port", "[ip6]:port" for an IPv6 address: the :authority. */
static void authority_of(const struct sockaddr_storage *a, char *out, size_t n)
{
    char ip[INET6_ADDRSTRLEN];
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &a6->sin6_addr, ip, sizeof(ip));
        snprintf(out, n, "[%s]:%u", ip, (unsigned)ntohs(a6->sin6_port));
        return;
    }
    ASSERT(a->ss_family == AF_INET);
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
    inet_ntop(AF_INET, &a4->sin_addr, ip, sizeof(ip));
    snprintf(out, n, "%s:%u", ip, (unsigned)ntohs(a4->sin_port));
}

int cairn__net_open_tls(struct cairn__net *net, uv_loop_t *loop,
                        const struct sockaddr_storage *addrs,
                        size_t addrs_count, size_t conns_count,
                        const struct cairn__tls *tls, const char *host)
{
    ASSERT(addrs_count > 0 && conns_count > 0);
    ASSERT(tls == NULL || host != NULL);
    memset(net, 0, sizeof(*net));
    if (tls != NULL) {
        if (strlen(host) >= sizeof(net->tls_host)) {
            return -EINVAL;
        }
        strcpy(net->tls_host, host);
        net->tls = tls;
    }
    net->loop = loop;
    net->conns = mem_calloc(conns_count, sizeof(*net->conns));
    net->dirty = mem_calloc(conns_count, sizeof(*net->dirty));
    if (net->conns == NULL || net->dirty == NULL) {
        mem_free(net->conns);
        mem_free(net->dirty);
        return -ENOMEM;
    }
    net->conns_count = conns_count;
    for (size_t i = 0; i < conns_count; i++) {
        struct cairn__conn *c = &net->conns[i];
        const struct sockaddr_storage *a = &addrs[i % addrs_count];
        c->net = net;
        buf_init(&c->wbuf, CAIRN__OUT_MAX);
        authority_of(a, c->authority, sizeof(c->authority));
        uv_tcp_init(loop, &c->tcp);
        c->tcp.data = c;
        c->connect_req.data = c;
        int rc = uv_tcp_connect(&c->connect_req, &c->tcp,
                                (const struct sockaddr *)a, on_connect);
        if (rc != 0) {
            conn_fail(c, rc);
        }
    }
    return 0;
}

void cairn__net_flush(struct cairn__net *net)
{
    /* A conn is listed at most once (its dirty flag), and flushing one can
     * list others (their calls restarted by a failure callback), so the
     * loop is bounded by conns_count additions. */
    for (size_t i = 0; i < net->dirty_count; i++) {
        struct cairn__conn *c = net->dirty[i];
        c->dirty = false;
        conn_flush(c);
    }
    net->dirty_count = 0;
}

void cairn__net_close(struct cairn__net *net)
{
    for (size_t i = 0; i < net->conns_count; i++) {
        struct cairn__conn *c = &net->conns[i];
        while (c->calls != NULL) { /* bounded by calls_count */
            struct cairn__call *call = c->calls;
            list_remove(call);
            call->active = false;
        }
        if (!c->dead) {
            c->dead = true;
            net->dead++;
        }
        if (!c->closing) {
            c->closing = true;
            uv_close((uv_handle_t *)&c->tcp, on_close);
        }
    }
    while (net->closed < net->conns_count) {
        uv_run(net->loop, UV_RUN_ONCE);
    }
    for (size_t i = 0; i < net->conns_count; i++) {
        struct cairn__conn *c = &net->conns[i];
        if (c->h2 != NULL) {
            nghttp2_session_del(c->h2);
        }
        SSL_free(c->ssl); /* and its two BIOs */
        buf_free(&c->wbuf);
    }
    mem_free(net->conns);
    mem_free(net->dirty);
    memset(net, 0, sizeof(*net));
}

/* ------------------------------------------------------------ the calls */

void cairn__call_init(struct cairn__call *call, cairn__call_msg_cb on_msg,
                      cairn__call_done_cb on_done, void *data)
{
    memset(call, 0, sizeof(*call));
    buf_init(&call->out, CAIRN__OUT_MAX);
    buf_init(&call->in, SIZE_MAX); /* capped by call->in_max per message */
    call->on_msg = on_msg;
    call->on_done = on_done;
    call->want_msgs = on_msg != NULL;
    call->in_max = CAIRN__CALL_IN_MAX;
    call->data = data;
}

void cairn__call_free(struct cairn__call *call)
{
    ASSERT(!call->active);
    buf_free(&call->out);
    buf_free(&call->in);
}

int cairn__call_add(struct cairn__call *call, const ProtobufCMessage *msg)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n > CAIRN__CALL_IN_MAX) {
        return ERR_LIMIT;
    }
    int rc = buf_reserve(&call->out, 5 + n);
    if (rc != 0) {
        return rc;
    }
    uint8_t *p = call->out.data + call->out.len;
    p[0] = 0;
    be32_put(p + 1, (uint32_t)n);
    size_t packed = protobuf_c_message_pack(msg, p + 5);
    ASSERT(packed == n);
    call->out.len += 5 + n;
    return 0;
}

#define NV(n, v)                                                               \
    {                                                                          \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1,          \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE       \
    }

int cairn__call_start(struct cairn__call *call, struct cairn__conn *conn,
                      const char *path, bool bidi)
{
    ASSERT(!call->active);
    if (conn->dead || !conn->connected) {
        buf_reset(&call->out);
        call->out_off = 0;
        return ERR_STOPPED;
    }
    nghttp2_nv hdrs[] = {
        NV(":method", "POST"),
        NV(":scheme", "http"),
        NV(":path", ""),
        NV(":authority", ""),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
        NV("token", ""),
    };
    if (conn->ssl != NULL) {
        hdrs[1].value = (uint8_t *)"https";
        hdrs[1].valuelen = 5;
    }
    hdrs[2].value = (uint8_t *)path;
    hdrs[2].valuelen = strlen(path);
    hdrs[3].value = (uint8_t *)conn->authority;
    hdrs[3].valuelen = strlen(conn->authority);
    size_t hdrs_count = 6;
    if (call->token != NULL) {
        hdrs[6].value = (uint8_t *)call->token;
        hdrs[6].valuelen = strlen(call->token);
        hdrs_count = 7;
    }
    nghttp2_data_provider dp = {.source.ptr = call, .read_callback = data_read};
    call->bidi = bidi;
    call->send_closed = false;
    call->deferred = false;
    call->got_status = false;
    call->status = CAIRN__ST_TRANSPORT;
    call->message[0] = 0;
    call->msgs_in = 0;
    buf_reset(&call->in);
    int32_t id =
        nghttp2_submit_request(conn->h2, NULL, hdrs, hdrs_count, &dp, call);
    if (id < 0) {
        buf_reset(&call->out);
        call->out_off = 0;
        return id == NGHTTP2_ERR_NOMEM ? -ENOMEM : ERR_STOPPED;
    }
    call->stream_id = id;
    call->conn = conn;
    call->active = true;
    call->prev = NULL;
    call->next = conn->calls;
    if (conn->calls != NULL) {
        conn->calls->prev = call;
    }
    conn->calls = call;
    conn->calls_count++;
    mark_dirty(conn);
    return 0;
}

int cairn__call_push(struct cairn__call *call)
{
    if (!call->active) {
        return ERR_STOPPED;
    }
    if (call->deferred) {
        call->deferred = false;
        int rc = nghttp2_session_resume_data(call->conn->h2, call->stream_id);
        if (rc != 0) {
            return ERR_STOPPED;
        }
    }
    mark_dirty(call->conn);
    return 0;
}

int cairn__call_close_send(struct cairn__call *call)
{
    if (!call->active) {
        return ERR_STOPPED;
    }
    call->send_closed = true;
    return cairn__call_push(call);
}

void cairn__call_cancel(struct cairn__call *call)
{
    if (!call->active) {
        return;
    }
    nghttp2_submit_rst_stream(call->conn->h2, NGHTTP2_FLAG_NONE,
                              call->stream_id, NGHTTP2_CANCEL);
    mark_dirty(call->conn);
}

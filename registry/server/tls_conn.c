/*
 * tls_conn.c - TLS connections on the client port: handshake, then a
 * relay between the TLS socket and a socketpair whose other end the gRPC
 * or the HTTP/1.1 side serves as if it were a plain connection.
 *
 * Happy path. An https:// listener's connection is accepted here (no
 * sniff: the whole port is TLS). Bytes read from the socket go into the
 * SSL's memory read BIO; SSL_do_handshake runs until done, its output
 * (drained from the memory write BIO) is written to the socket. When the
 * handshake ends, the ALPN protocol decides (RFC 7301): "h2" goes to
 * grpc_server_adopt(), "http/1.1" or none to server__http_adopt(), each
 * given one end of a fresh AF_UNIX socketpair; we keep the other end as a
 * uv_pipe_t. From then on, decrypted bytes (SSL_read) are written to the
 * pipe, and what the server writes to the pipe is encrypted (SSL_write)
 * and written to the socket.
 *
 * Why a socketpair and not a plaintext hook in each server: both sides
 * stay exactly as they are on the plain port (nghttp2's batched writes,
 * and the HTTP side's own sendmsg()/uv_write() on its fd for responses
 * and pushes, lws adopting a descriptor), so TLS cannot make them differ
 * and every path that writes to a connection's fd is covered. The cost is
 * one more copy through the kernel per byte and two more descriptors per
 * connection; a zero-copy hook for gRPC can replace it later if a
 * benchmark says it matters.
 *
 * Bounds. Each direction holds at most TLS_PENDING_BYTES_MAX unwritten
 * bytes: above it, reads from the other side stop (for the socket, before
 * SSL_read is asked for more: decrypted records wait inside the SSL), and
 * resume below half of it. Reads go through one shared buffer, consumed
 * before the callback returns.
 *
 * Failures. A handshake that fails (no client certificate, one from an
 * unknown CA, revoked, no common cipher or version, garbage) or that is
 * not done after --http-header-timeout closes the connection with one
 * log line, etcd's: rejected connection from "addr" (error "reason"), and
 * a counter. After the handshake: the client's EOF or close_notify shuts
 * the pipe's write side so the server sees EOF and finishes; the server
 * closing its end sends close_notify, writes what is left and closes. A
 * socket error or a TLS error closes at once. Memory goes when the last of
 * our handles has closed.
 */
#include <errno.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "registry/server/server.h"
#include "registry/server/tls_int.h"

#define TLS_READ_BYTES    (16 * 1024)
#define TLS_SSL_READS_MAX 64 /* SSL_read calls per pass per connection */

struct tls_out {
    struct buf q; /* produced, not yet handed to the socket */
    struct buf w; /* in one uv_write */
    bool writing;
    uv_write_t wr;
};

enum tls_state { TC_HANDSHAKE, TC_RELAY };

struct tls_conn {
    struct tls *t;
    uv_tcp_t tcp;
    uv_pipe_t app; /* our end of the socketpair, once relaying */
    uv_timer_t timer;
    uv_shutdown_t app_shut;
    SSL *ssl;
    BIO *rbio; /* owned by ssl */
    BIO *wbio; /* owned by ssl */
    enum tls_state state;
    struct tls_out to_net; /* ciphertext for the client */
    struct tls_out to_app; /* plaintext for the server side */
    bool app_open;
    bool tcp_reading;
    bool app_reading;
    bool net_eof;     /* the client is done sending (EOF or close_notify) */
    bool app_eof;     /* the server side closed its end */
    bool app_shut_on; /* the pipe's write side is being shut */
    bool closing;
    bool got_bytes;   /* the client sent something */
    bool ssl_drained; /* the last SSL_read wanted more bytes */
    int app_fd;       /* the other end, as the server side holds it, or -1 */
    ino_t app_ino;    /* its socket's inode: the fd number alone can be
                       * reused once the server side closed it */
    int handles;
    char peer[64];
    struct tls_conn *next;
    struct tls_conn *prev;
};

/* Files watched for a reload: cert, key, trusted CA, CRL. */
#define TLS_WATCH_FILES 4
#define TLS_POLL_MS     1000 /* how often their stat is compared */
#define TLS_SETTLE_MS   500  /* a change waits this long for its companions */

struct tls {
    struct server *s;
    SSL_CTX *ctx; /* new connections take a reference of this one */
    struct tls_conn *conns;
    /* app_fd -> its connection (server__tls_client runs once per HTTP API
     * request: a lookup, not a walk of every TLS connection) */
    struct tls_conn **by_fd;
    size_t by_fd_cap;
    struct server_tls_stats st;
    bool stopped; /* s->tls is NULL: freed with its last connection */
    /* Reload (server__tls_watch): SIGHUP, or a watched file changed. */
    uv_signal_t hup;
    uv_timer_t settle;
    uv_fs_poll_t polls[TLS_WATCH_FILES];
    unsigned polls_count;
    unsigned handles; /* reload handles not closed yet: t outlives them */
    uint8_t rbuf[TLS_READ_BYTES];
};

static void conn_close(struct tls_conn *c);
static void watch_close(struct tls *t);
static void tls_free(struct tls *t);
static void pass(struct tls_conn *c);
static void net_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* ------------------------------------------------------------ writing */

static size_t out_pending(const struct tls_out *o)
{
    return o->q.len + o->w.len;
}

/* An empty buffer gives its memory back: an idle connection (a watcher, a
 * subscriber) holds no read-sized buffers, only its SSL. */
static void buf_trim(struct buf *b)
{
    if (b->len == 0 && b->cap > 0) {
        buf_free(b);
        buf_init(b, 0);
    }
}

/* Hand o->q to the stream: uv_try_write, then one uv_write for the rest. */
static int out_flush(struct tls_out *o, uv_stream_t *st, uv_write_cb cb,
                     void *data)
{
    uv_buf_t b;
    int rv;
    if (o->writing || o->q.len == 0) {
        return 0;
    }
    b = uv_buf_init((char *)o->q.data, (unsigned)o->q.len);
    rv = uv_try_write(st, &b, 1);
    if (rv == UV_EAGAIN || rv == UV_ENOSYS) {
        rv = 0;
    }
    if (rv < 0) {
        return rv;
    }
    if ((size_t)rv == o->q.len) {
        buf_reset(&o->q);
        buf_trim(&o->q);
        return 0;
    }
    struct buf tmp = o->w;
    size_t rest = o->q.len - (size_t)rv;
    ASSERT(o->w.len == 0);
    memmove(o->q.data, o->q.data + rv, rest);
    o->q.len = rest;
    o->w = o->q;
    o->q = tmp;
    buf_reset(&o->q);
    b = uv_buf_init((char *)o->w.data, (unsigned)o->w.len);
    o->wr.data = data;
    rv = uv_write(&o->wr, st, &b, 1, cb);
    if (rv != 0) {
        buf_reset(&o->w);
        return rv;
    }
    o->writing = true;
    return 0;
}

/* Move what OpenSSL wrote into the memory BIO to the socket's queue. */
static int drain_wbio(struct tls_conn *c)
{
    size_t guard = 0;
    while (BIO_ctrl_pending(c->wbio) > 0) {
        int rc = buf_reserve(&c->to_net.q, TLS_READ_BYTES);
        if (rc != 0) {
            return rc;
        }
        int n = BIO_read(c->wbio, c->to_net.q.data + c->to_net.q.len,
                         TLS_READ_BYTES);
        if (n <= 0) {
            break;
        }
        c->to_net.q.len += (size_t)n;
        /* SSL_write takes at most a read's worth of plaintext per call */
        ASSERT(++guard <= 4 * (TLS_PENDING_BYTES_MAX / TLS_READ_BYTES) + 64);
    }
    return 0;
}

static void net_written(uv_write_t *wr, int status)
{
    struct tls_conn *c = wr->data;
    c->to_net.writing = false;
    buf_reset(&c->to_net.w);
    buf_trim(&c->to_net.w);
    if (c->closing) {
        return;
    }
    if (status < 0) {
        conn_close(c);
        return;
    }
    pass(c);
}

static void app_written(uv_write_t *wr, int status)
{
    struct tls_conn *c = wr->data;
    c->to_app.writing = false;
    buf_reset(&c->to_app.w);
    buf_trim(&c->to_app.w);
    if (c->closing) {
        return;
    }
    if (status < 0) {
        conn_close(c);
        return;
    }
    pass(c);
}

/* ----------------------------------------------------------- logging */

static void reject(struct tls_conn *c, const char *why)
{
    struct tls *t = c->t;
    t->st.handshakes_failed++;
    if (!c->got_bytes) {
        LOGD("server", "TLS: %s closed before a handshake", c->peer);
        return;
    }
    LOGI("server", "rejected connection from \"%s\" (error \"%s\")", c->peer,
         why);
}

static void reject_ssl(struct tls_conn *c)
{
    char why[192];
    long v = SSL_get_verify_result(c->ssl);
    if (v != X509_V_OK) {
        snprintf(why, sizeof(why), "client certificate: %s",
                 X509_verify_cert_error_string(v));
        ERR_clear_error();
    } else {
        server__tls_err(why, sizeof(why), "handshake failed");
    }
    reject(c, why);
}

/* --------------------------------------------------------- handshake */

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct tls_conn *c = h->data;
    (void)hint;
    b->base = (char *)c->t->rbuf;
    b->len = sizeof(c->t->rbuf);
}

static void app_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b);

/* The CN of a client certificate that verified, or "": the user name
 * under --client-cert-auth (etcd's AuthInfoFromTLS). A CN with a NUL in
 * it, or too long, is no name. */
static void peer_cn(struct tls_conn *c, char *buf, size_t len)
{
    X509 *x = SSL_get0_peer_certificate(c->ssl);
    const X509_NAME *name;
    const ASN1_STRING *v;
    int i;
    buf[0] = '\0';
    if (x == NULL || SSL_get_verify_result(c->ssl) != X509_V_OK) {
        return;
    }
    /* the first CN, as Go's Subject.CommonName */
    name = X509_get_subject_name(x);
    i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    v = i >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)) : NULL;
    if (v != NULL && ASN1_STRING_length(v) > 0 &&
        (size_t)ASN1_STRING_length(v) < len &&
        memchr(ASN1_STRING_get0_data(v), 0, (size_t)ASN1_STRING_length(v)) ==
            NULL) {
        memcpy(buf, ASN1_STRING_get0_data(v), (size_t)ASN1_STRING_length(v));
        buf[ASN1_STRING_length(v)] = '\0';
    }
    ERR_clear_error();
}

/* ------------------------------------------------------ app_fd index */

static void tls_free(struct tls *t)
{
    mem_free(t->by_fd);
    mem_free(t);
}

/* c's plaintext goes to the server side on fd (socket inode ino). */
static int app_fd_set(struct tls_conn *c, int fd, ino_t ino)
{
    struct tls *t = c->t;
    ASSERT(fd >= 0 && c->app_fd < 0);
    if ((size_t)fd >= t->by_fd_cap) {
        size_t cap = t->by_fd_cap > 0 ? t->by_fd_cap : 64;
        while (cap <= (size_t)fd) {
            cap *= 2;
        }
        struct tls_conn **v = mem_realloc(t->by_fd, cap * sizeof(*v));
        if (v == NULL) {
            return -ENOMEM;
        }
        memset(v + t->by_fd_cap, 0, (cap - t->by_fd_cap) * sizeof(*v));
        t->by_fd = v;
        t->by_fd_cap = cap;
    }
    /* an entry left by a connection whose end was closed (its EOF not
     * read yet) is replaced: that number is this connection's now */
    t->by_fd[fd] = c;
    c->app_fd = fd;
    c->app_ino = ino;
    return 0;
}

static void app_fd_clear(struct tls_conn *c)
{
    struct tls *t = c->t;
    if (c->app_fd >= 0 && (size_t)c->app_fd < t->by_fd_cap &&
        t->by_fd[c->app_fd] == c) {
        t->by_fd[c->app_fd] = NULL;
    }
    c->app_fd = -1;
}

/* The handshake is done: hand the plaintext to the side ALPN chose. */
static int hand_over(struct tls_conn *c)
{
    struct server *s = c->t->s;
    const unsigned char *proto = NULL;
    unsigned int plen = 0;
    int sv[2];
    int rc;
    SSL_get0_alpn_selected(c->ssl, &proto, &plen);
    bool h2 = plen == 2 && memcmp(proto, "h2", 2) == 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        return -errno;
    }
    uv_pipe_init(s->loop, &c->app, 0);
    c->app.data = c;
    c->app_open = true;
    c->handles++;
    rc = uv_pipe_open(&c->app, sv[0]);
    if (rc != 0) {
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    struct stat st;
    if (fstat(sv[1], &st) != 0) {
        rc = -errno;
        close(sv[1]);
        return rc;
    }
    rc = app_fd_set(c, sv[1], st.st_ino);
    if (rc != 0) {
        close(sv[1]);
        return rc;
    }
    char cn[GRPC_IDENTITY_BYTES_MAX];
    peer_cn(c, cn, sizeof(cn));
    rc = h2 ? grpc_server_adopt_id(&s->grpc, sv[1], NULL, 0,
                                   cn[0] != '\0' ? cn : NULL)
            : server__http_adopt(s, sv[1], NULL, 0);
    if (rc != 0) {
        app_fd_clear(c);
        close(sv[1]);
        LOGD("server", "TLS: %s refused by the %s side: %s", c->peer,
             h2 ? "gRPC" : "HTTP", err_str(rc));
        return rc;
    }
    if (h2) {
        c->t->st.alpn_h2++;
    } else {
        c->t->st.alpn_http1++;
    }
    return 0;
}

static int handshake_step(struct tls_conn *c)
{
    int r = SSL_do_handshake(c->ssl);
    int rc;
    if (r == 1) {
        struct tls *t = c->t;
        ASSERT(t->st.handshaking > 0);
        t->st.handshaking--;
        t->st.handshakes_ok++;
        uv_timer_stop(&c->timer);
        c->state = TC_RELAY;
        rc = drain_wbio(c);
        return rc != 0 ? rc : hand_over(c);
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        return drain_wbio(c);
    }
    reject_ssl(c);
    /* the alert OpenSSL queued still goes out, best effort */
    (void)drain_wbio(c);
    if (c->to_net.q.len > 0) {
        uv_buf_t b =
            uv_buf_init((char *)c->to_net.q.data, (unsigned)c->to_net.q.len);
        (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    }
    return ERR_INVALID;
}

/* ------------------------------------------------------------- relay */

/* Decrypt what the read BIO holds into the pipe's queue, within bounds. */
static int decrypt(struct tls_conn *c)
{
    c->ssl_drained = false;
    for (int i = 0; i < TLS_SSL_READS_MAX; i++) {
        if (out_pending(&c->to_app) >= TLS_PENDING_BYTES_MAX) {
            return 0;
        }
        int rc = buf_reserve(&c->to_app.q, TLS_READ_BYTES);
        if (rc != 0) {
            return rc;
        }
        int n = SSL_read(c->ssl, c->to_app.q.data + c->to_app.q.len,
                         TLS_READ_BYTES);
        if (n > 0) {
            c->to_app.q.len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
            c->ssl_drained = true;
            return 0;
        }
        if (e == SSL_ERROR_ZERO_RETURN) {
            c->net_eof = true; /* close_notify */
            c->ssl_drained = true;
            return 0;
        }
        char why[128];
        LOGD("server", "TLS: %s: %s", c->peer,
             server__tls_err(why, sizeof(why), "record error"));
        return ERR_INVALID;
    }
    return 0; /* more next pass (pass() runs again after a write) */
}

/* Reads on each side follow the other side's queue (hysteresis: stop above
 * the bound, resume at half). */
static void flow(struct tls_conn *c)
{
    size_t app_q = out_pending(&c->to_app);
    size_t net_q = out_pending(&c->to_net);
    bool want_net =
        !c->net_eof && (c->state == TC_HANDSHAKE ||
                        app_q < (c->tcp_reading ? TLS_PENDING_BYTES_MAX
                                                : TLS_PENDING_BYTES_MAX / 2));
    bool want_app = c->app_open && !c->app_eof &&
                    net_q < (c->app_reading ? TLS_PENDING_BYTES_MAX
                                            : TLS_PENDING_BYTES_MAX / 2);
    if (want_net != c->tcp_reading) {
        c->tcp_reading = want_net;
        if (want_net) {
            if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, net_read)) {
                c->tcp_reading = false;
                c->net_eof = true;
            }
        } else {
            uv_read_stop((uv_stream_t *)&c->tcp);
        }
    }
    if (want_app != c->app_reading) {
        c->app_reading = want_app;
        if (want_app) {
            if (uv_read_start((uv_stream_t *)&c->app, alloc_cb, app_read)) {
                c->app_reading = false;
                c->app_eof = true;
            }
        } else {
            uv_read_stop((uv_stream_t *)&c->app);
        }
    }
}

static void app_shut_done(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* the server side's EOF or close ends the connection */
}

static void linger_timeout(uv_timer_t *tm)
{
    conn_close(tm->data);
}

/* One round of work: decrypt, write both queues, end when both ends are
 * done. Called after every read, write and handshake step. */
static void pass(struct tls_conn *c)
{
    int rc = 0;
    if (c->state == TC_RELAY) {
        rc = decrypt(c);
        if (rc == 0) {
            rc = drain_wbio(c); /* tickets, alerts, key updates */
        }
        if (rc == 0) {
            rc = out_flush(&c->to_app, (uv_stream_t *)&c->app, app_written, c);
        }
    }
    if (rc == 0) {
        rc = out_flush(&c->to_net, (uv_stream_t *)&c->tcp, net_written, c);
    }
    if (rc != 0) {
        conn_close(c);
        return;
    }
    buf_trim(&c->to_app.q); /* decrypt() reserved room it may not have used */
    buf_trim(&c->to_net.q);
    /* the client is done and its last bytes are with the server side:
     * the server sees EOF, answers what it has and closes its end */
    if (c->net_eof && c->state == TC_RELAY && !c->app_shut_on &&
        c->ssl_drained && out_pending(&c->to_app) == 0 && !c->app_eof) {
        c->app_shut_on = true;
        if (uv_shutdown(&c->app_shut, (uv_stream_t *)&c->app, app_shut_done) !=
            0) {
            conn_close(c);
            return;
        }
        /* a server side that never closes is not waited for long */
        uv_timer_start(&c->timer, linger_timeout, TLS_HANDSHAKE_TIMEOUT_MS, 0);
    }
    if ((c->app_eof || (c->net_eof && c->state == TC_HANDSHAKE)) &&
        out_pending(&c->to_net) == 0) {
        conn_close(c);
        return;
    }
    flow(c);
}

static void net_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct tls_conn *c = st->data;
    int rc = 0;
    if (n == 0) {
        return;
    }
    if (n < 0) {
        if (c->state == TC_HANDSHAKE) {
            reject(c, n == UV_EOF ? "EOF" : uv_strerror((int)n));
            conn_close(c);
            return;
        }
        c->net_eof = true;
        if (n != UV_EOF) {
            conn_close(c);
            return;
        }
        pass(c);
        return;
    }
    c->got_bytes = true;
    if (BIO_write(c->rbio, b->base, (int)n) != (int)n) {
        conn_close(c);
        return;
    }
    if (c->state == TC_HANDSHAKE) {
        rc = handshake_step(c);
    }
    if (rc != 0) {
        conn_close(c);
        return;
    }
    pass(c);
}

static void app_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct tls_conn *c = st->data;
    if (n == 0) {
        return;
    }
    if (n < 0) {
        c->app_eof = true;
        app_fd_clear(c); /* the server side closed it: the number is free */
        uv_read_stop(st);
        c->app_reading = false;
        if (!c->net_eof) {
            (void)SSL_shutdown(c->ssl); /* close_notify */
            ERR_clear_error();
            (void)drain_wbio(c);
        }
        pass(c);
        return;
    }
    if (SSL_write(c->ssl, b->base, (int)n) != (int)n) {
        char why[128];
        LOGD("server", "TLS: %s: %s", c->peer,
             server__tls_err(why, sizeof(why), "write failed"));
        conn_close(c);
        return;
    }
    if (drain_wbio(c) != 0) {
        conn_close(c);
        return;
    }
    pass(c);
}

/* ------------------------------------------------------ open and close */

static void handle_closed(uv_handle_t *h)
{
    struct tls_conn *c = h->data;
    ASSERT(c->handles > 0);
    if (--c->handles > 0) {
        return;
    }
    buf_free(&c->to_net.q);
    buf_free(&c->to_net.w);
    buf_free(&c->to_app.q);
    buf_free(&c->to_app.w);
    mem_free(c);
}

static void conn_close(struct tls_conn *c)
{
    struct tls *t = c->t;
    if (c->closing) {
        return;
    }
    c->closing = true;
    app_fd_clear(c);
    if (c->state == TC_HANDSHAKE) {
        ASSERT(t->st.handshaking > 0);
        t->st.handshaking--;
    }
    ASSERT(t->st.conns_open > 0);
    t->st.conns_open--;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        t->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    SSL_free(c->ssl); /* and its BIOs */
    c->ssl = NULL;
    ERR_clear_error();
    uv_close((uv_handle_t *)&c->tcp, handle_closed);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    if (c->app_open) {
        uv_close((uv_handle_t *)&c->app, handle_closed);
    }
    if (t->stopped && t->conns == NULL && t->handles == 0) {
        tls_free(t); /* c no longer uses it */
    }
}

/* --http-header-timeout (options that skipped validation: the default):
 * the plain port's bound for a preface or request head, here for the
 * handshake; the head that follows has it again (lws, or gRPC's sweep). */
static uint64_t handshake_ms(const struct tls *t)
{
    uint64_t ms = t->s->opt->http_header_timeout_ms;
    return ms != 0 ? ms : TLS_HANDSHAKE_TIMEOUT_MS;
}

static void handshake_timeout(uv_timer_t *tm)
{
    struct tls_conn *c = tm->data;
    if (c->state == TC_HANDSHAKE) {
        c->t->st.handshakes_timedout++;
        LOGI("server",
             "rejected connection from \"%s\" (error \"TLS handshake not "
             "done in %llu ms\")",
             c->peer, (unsigned long long)handshake_ms(c->t));
    }
    conn_close(c);
}

static void peer_name(uv_tcp_t *tcp, char *buf, size_t len)
{
    struct sockaddr_storage sa;
    int sl = sizeof(sa);
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(tcp, (struct sockaddr *)&sa, &sl) == 0) {
        if (sa.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&sa;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
        } else {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&sa;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
        }
    }
    snprintf(buf, len, "%s:%d", ip, port);
}

static int conn_ssl(struct tls_conn *c)
{
    c->ssl = SSL_new(c->t->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        SSL_free(c->ssl);
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->ssl = NULL;
        ERR_clear_error();
        return -ENOMEM;
    }
    /* an empty read BIO says "retry", not EOF */
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    return 0;
}

void server__tls_accept(struct server *s, uv_stream_t *listener)
{
    struct tls *t = s->tls;
    struct tls_conn *c;
    ASSERT(t != NULL && t->ctx != NULL);
    c = mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->t = t;
    c->app_fd = -1;
    buf_init(&c->to_net.q, 0);
    buf_init(&c->to_net.w, 0);
    buf_init(&c->to_app.q, 0);
    buf_init(&c->to_app.w, 0);
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    c->next = t->conns;
    if (t->conns != NULL) {
        t->conns->prev = c;
    }
    t->conns = c;
    t->st.conns_open++;
    t->st.handshaking++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    peer_name(&c->tcp, c->peer, sizeof(c->peer));
    if (grpc_server_conns(&s->grpc) + t->st.handshaking >
            s->limits.v[LIMIT_CONNECTIONS] ||
        conn_ssl(c) != 0) {
        t->st.handshakes_refused++;
        conn_close(c);
        return;
    }
    server__socket_opts(&c->tcp);
    uv_timer_start(&c->timer, handshake_timeout, handshake_ms(t), 0);
    flow(c);
}

/* ------------------------------------------------------------ reload */

/* Certificates and keys read again (SIGHUP, or a watched file changed):
 * a new context for the connections that come next; those established
 * keep theirs (each SSL holds a reference), so none is dropped. A file
 * that does not load keeps the context in use, and the log says why. */
static void reload(struct tls *t, const char *why)
{
    const struct options_tls *o = &t->s->opt->client_tls;
    char msg[512];
    SSL_CTX *ctx = NULL;
    if (t->stopped) {
        return;
    }
    if (o->cert_file == NULL || o->cert_file[0] == '\0') {
        LOGI("server", "TLS: %s: --auto-tls has no files to read again", why);
        return;
    }
    int rc = server__tls_ctx_new(t->s->opt, &ctx, msg, sizeof(msg));
    if (rc != 0) {
        t->st.reloads_failed++;
        LOGE("server",
             "TLS: %s: keeping the certificate and key in use, the new "
             "ones do not load: %s",
             why, msg);
        return;
    }
    SSL_CTX_free(t->ctx);
    t->ctx = ctx;
    t->st.reloads_ok++;
    LOGI("server",
         "TLS: %s: certificate and key read again; new connections use "
         "them, open ones keep theirs",
         why);
}

static void on_hup(uv_signal_t *h, int signum)
{
    (void)signum;
    reload(h->data, "SIGHUP");
}

static void on_settled(uv_timer_t *tm)
{
    reload(tm->data, "a certificate file changed");
}

/* A watched file's stat changed (or it appeared or went): reload once the
 * writer is likely done with its companions (a cert and its key). */
static void on_file(uv_fs_poll_t *p, int status, const uv_stat_t *prev,
                    const uv_stat_t *curr)
{
    struct tls *t = p->data;
    (void)status;
    (void)prev;
    (void)curr;
    if (!t->stopped) {
        uv_timer_start(&t->settle, on_settled, TLS_SETTLE_MS, 0);
    }
}

static void watch_handle_closed(uv_handle_t *h)
{
    struct tls *t = h->data;
    ASSERT(t->handles > 0);
    t->handles--;
    if (t->stopped && t->conns == NULL && t->handles == 0) {
        tls_free(t);
    }
}

static void watch_close(struct tls *t)
{
    if (t->handles == 0) {
        return; /* never started */
    }
    uv_close((uv_handle_t *)&t->hup, watch_handle_closed);
    uv_close((uv_handle_t *)&t->settle, watch_handle_closed);
    for (unsigned i = 0; i < t->polls_count; i++) {
        uv_close((uv_handle_t *)&t->polls[i], watch_handle_closed);
    }
}

void server__tls_watch(struct server *s)
{
    struct tls *t = s->tls;
    const struct options_tls *o = &s->opt->client_tls;
    const char *files[TLS_WATCH_FILES] = {o->cert_file, o->key_file,
                                          o->trusted_ca_file, o->crl_file};
    if (t == NULL || t->handles != 0) {
        return;
    }
    uv_signal_init(s->loop, &t->hup);
    uv_timer_init(s->loop, &t->settle);
    t->hup.data = t;
    t->settle.data = t;
    t->handles = 2;
    uv_signal_start(&t->hup, on_hup, SIGHUP);
    for (unsigned i = 0; i < TLS_WATCH_FILES; i++) {
        uv_fs_poll_t *p = &t->polls[t->polls_count];
        if (files[i] == NULL || files[i][0] == '\0') {
            continue;
        }
        uv_fs_poll_init(s->loop, p);
        p->data = t;
        t->polls_count++;
        t->handles++;
        if (uv_fs_poll_start(p, on_file, files[i], TLS_POLL_MS) != 0) {
            LOGW("server",
                 "TLS: cannot watch %s for changes (SIGHUP still "
                 "reloads)",
                 files[i]);
        }
    }
}

/* --------------------------------------------------------- lifecycle */

bool server__tls_wanted(const struct server *s)
{
    const struct options_urls *u = &s->opt->listen_client_urls;
    for (size_t i = 0; i < u->count; i++) {
        if (strncmp(u->urls[i], "https://", 8) == 0) {
            return true;
        }
    }
    return false;
}

int server__tls_init(struct server *s, char *msg, size_t msg_len)
{
    const struct options_tls *o = &s->opt->client_tls;
    struct tls *t;
    int rc;
    if (!server__tls_wanted(s)) {
        if ((o->cert_file != NULL && o->cert_file[0] != '\0') ||
            (o->key_file != NULL && o->key_file[0] != '\0')) {
            LOGW("server", "scheme is HTTP while key and cert files are "
                           "present; ignoring key and cert files");
        }
        return 0;
    }
    t = mem_calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    t->s = s;
    rc = server__tls_ctx_new(s->opt, &t->ctx, msg, msg_len);
    if (rc != 0) {
        mem_free(t);
        return rc;
    }
    s->tls = t;
    return 0;
}

void server__tls_stop(struct server *s)
{
    struct tls *t = s->tls;
    struct tls_conn *c;
    size_t guard = 0;
    size_t open;
    if (t == NULL) {
        return;
    }
    open = t->st.conns_open;
    s->tls = NULL;
    t->stopped = true;
    SSL_CTX_free(t->ctx); /* each SSL holds its own reference */
    t->ctx = NULL;
    watch_close(t);
    if (t->conns == NULL) {
        if (t->handles == 0) {
            tls_free(t); /* else the last handle's close frees it */
        }
        return;
    }
    /* Connections in the handshake go now; relaying ones follow their
     * server side, which closes its ends as it stops. The last one to
     * close frees t (conn_close). */
    c = t->conns;
    while (c != NULL) {
        struct tls_conn *next = c->next;
        bool last = next == NULL;
        if (c->state == TC_HANDSHAKE) {
            conn_close(c); /* may free t when it was the last */
        }
        if (last) {
            break;
        }
        c = next;
        ASSERT(++guard <= open);
    }
}

void server__tls_client(const struct server *s, int fd, char *peer,
                        size_t peer_len, char *cn, size_t cn_len)
{
    const struct tls *t = s->tls;
    struct tls_conn *c;
    struct stat st;
    peer[0] = '\0';
    if (cn != NULL) {
        cn[0] = '\0';
    }
    if (t == NULL || fd < 0 || (size_t)fd >= t->by_fd_cap ||
        (c = t->by_fd[fd]) == NULL) {
        return;
    }
    /* The number and the inode: the server side may have closed its end
     * (a stalled stream cut off) while we still wait for the client to
     * read, and a plain connection accepted meanwhile gets that number. */
    ASSERT(c->app_fd == fd);
    if (fstat(fd, &st) != 0 || c->app_ino != st.st_ino) {
        return;
    }
    snprintf(peer, peer_len, "%s", c->peer);
    if (cn != NULL && s->opt->client_tls.client_cert_auth) {
        peer_cn(c, cn, cn_len);
    }
}

void server__tls_peer(const struct server *s, int fd, char *buf, size_t len)
{
    server__tls_client(s, fd, buf, len, NULL, 0);
}

void server__tls_stats(const struct server *s, struct server_tls_stats *out)
{
    const struct tls *t = s->tls;
    if (t == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = t->st;
}

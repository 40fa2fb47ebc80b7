/*
 * transport_tls.c - TLS on peer connections (OpenSSL 3, memory BIOs).
 *
 * Why memory BIOs and not an SSL on the socket: the transport's threading
 * model is libuv's. The loop owns the socket; reads land in on_read, writes
 * go through uv_write and finish in a callback. An SSL on the fd would read
 * and write the socket behind libuv's back. With a pair of memory BIOs the
 * SSL only transforms bytes: the ciphertext libuv read goes into the read
 * BIO and SSL_read puts plaintext into the connection's rbuf, exactly where
 * a plain read would have put it, so frame parsing, limits and the snapshot
 * pause work unchanged; SSL_write puts records into the write BIO, which is
 * drained at once into one heap buffer and handed to uv_write, whose
 * completion runs the caller's callback. The client port
 * (registry/server/tls_conn.c) uses memory BIOs for the same reason.
 *
 * Happy path, dialling side (a peer added with an https:// address): TCP
 * connect, then the TLS handshake (ClientHello from tr__tls_start's first
 * pump), then the transport's hello goes out as the first record; the
 * handshake timer covers all of it. Accepting side (tls_server_ctx set):
 * the handshake runs on the first bytes, then the 32-byte hello arrives as
 * plaintext, as on a plain connection.
 *
 * Verification is what the contexts say: the caller builds them from
 * --peer-trusted-ca-file, --peer-client-cert-auth, --peer-crl-file and
 * --peer-auto-tls. When the client context verifies, the dialler also
 * checks the peer URL's host against the certificate's SANs, as Go's
 * http.Transport (which etcd's peer transport is) does: its DNS name when
 * the URL had one (transport_peer_tls_name), else the IP it dialled.
 *
 * Bounds: one socket read (TR_TLS_RBUF_BYTES, a buffer shared by all
 * connections, emptied into the SSL before the callback returns) is fed at
 * a time; the pump stops when the connection pauses (its socket reads stop
 * too), so the read BIO holds at most one read plus a partial record. Each
 * write's ciphertext is one allocation as big as the plaintext write plus
 * record overhead, and the callers bound their writes (one batch, one
 * control write, one snapshot chunk).
 *
 * Failures: a failed handshake (untrusted or missing certificate, wrong IP
 * in the SAN, plain TCP or garbage on a TLS port, a TLS dialler on a plain
 * port) closes the connection with one log line naming the address and
 * OpenSSL's reason (and the verify result). On the dialling side the reason
 * becomes the peer's last_error, which the message connection's failure
 * line prints. With TLS 1.3 the dialler finishes its handshake before the
 * acceptor has checked its certificate; a refusal then arrives as an alert
 * read by SSL_read ("tlsv13 alert certificate required", "tlsv1 alert
 * unknown ca") and ends the same way.
 */
#include "consensus/transport/transport_int.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <netdb.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"

/* One socket read's plaintext is at most its ciphertext; each pass of the
 * pump takes at least one byte, so this bounds a pump generously. */
#define TR_TLS_PUMP_MAX (2 * TR_TLS_RBUF_BYTES + 64)

/* One write of ciphertext; the caller's request and callback ride along. */
struct tr_tls_wr {
    uv_write_t req;
    struct transport__conn *c;
    uv_write_t *user; /* NULL: handshake or alert bytes */
    uv_write_cb cb;
    uint8_t data[];
};

/* DNS SAN lookups for one accepted connection, one name at a time. It owns
 * itself: when the connection goes first, c becomes NULL and the last
 * callback frees it. */
struct tr_san_check {
    uv_getaddrinfo_t req;
    uv_getnameinfo_t rreq; /* the reverse lookup, first (etcd's order) */
    struct transport__conn *c;
    char ip[64]; /* the remote address */
    char names[TRANSPORT_SAN_NAMES_MAX][256];
    unsigned count, next;
    /* wildcard SANs ("*.headless.ns.svc"), kept as their suffix
     * (".headless.ns.svc"): only the reverse lookup can match them */
    char wild[TRANSPORT_SAN_NAMES_MAX][256];
    unsigned wild_count;
};

int tr__tls_ctx_ref(struct transport *t)
{
    if (t->cfg.tls_server_ctx == NULL && t->cfg.tls_client_ctx == NULL) {
        return 0;
    }
    t->tls_rbuf = mem_alloc(TR_TLS_RBUF_BYTES);
    if (t->tls_rbuf == NULL) {
        return -ENOMEM;
    }
    if (t->cfg.tls_server_ctx != NULL) {
        SSL_CTX_up_ref(t->cfg.tls_server_ctx);
    }
    if (t->cfg.tls_client_ctx != NULL) {
        SSL_CTX_up_ref(t->cfg.tls_client_ctx);
    }
    return 0;
}

int transport_tls_set(struct transport *t, struct ssl_ctx_st *server_ctx,
                      struct ssl_ctx_st *client_ctx)
{
    if (t->closing) {
        return -ESHUTDOWN;
    }
    if (t->tls_rbuf == NULL && (server_ctx != NULL || client_ctx != NULL)) {
        t->tls_rbuf = mem_alloc(TR_TLS_RBUF_BYTES);
        if (t->tls_rbuf == NULL) {
            return -ENOMEM;
        }
    }
    if (server_ctx != NULL && t->cfg.tls_server_ctx != NULL) {
        SSL_CTX_up_ref(server_ctx);
        SSL_CTX_free(t->cfg.tls_server_ctx);
        t->cfg.tls_server_ctx = server_ctx;
    }
    if (client_ctx != NULL) {
        SSL_CTX_up_ref(client_ctx);
        SSL_CTX_free(t->cfg.tls_client_ctx);
        t->cfg.tls_client_ctx = client_ctx;
    }
    return 0;
}

void tr__tls_ctx_unref(struct transport *t)
{
    SSL_CTX_free(t->cfg.tls_server_ctx); /* NULL is a no-op */
    SSL_CTX_free(t->cfg.tls_client_ctx);
    t->cfg.tls_server_ctx = NULL;
    t->cfg.tls_client_ctx = NULL;
}

static void tls_written(uv_write_t *req, int status)
{
    struct tr_tls_wr *w = req->data;
    struct transport__conn *c = w->c;
    uv_write_t *user = w->user;
    uv_write_cb cb = w->cb;
    mem_free(w);
    if (cb != NULL) {
        cb(user, status);
    } else if (status < 0 && c->state != TR_CLOSING) {
        tr__conn_fail(c, status);
    }
}

/* Hand everything the SSL produced to the socket as one write; cb (with
 * user) runs when it completes. With nothing produced and no cb, nothing
 * happens. */
static int flush_out(struct transport__conn *c, uv_write_t *user,
                     uv_write_cb cb)
{
    BIO *wb = SSL_get_wbio(c->ssl);
    size_t pending = BIO_ctrl_pending(wb);
    if (pending == 0 && cb == NULL) {
        return 0;
    }
    ASSERT(pending > 0); /* a caller's write always makes a record */
    ASSERT(pending <= INT_MAX && pending <= UINT_MAX);
    struct tr_tls_wr *w = mem_alloc(sizeof(*w) + pending);
    if (w == NULL) {
        return -ENOMEM;
    }
    int n = BIO_read(wb, w->data, (int)pending);
    ASSERT(n == (int)pending);
    w->c = c;
    w->user = user;
    w->cb = cb;
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)pending);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, tls_written);
    if (rc != 0) {
        mem_free(w);
    }
    return rc;
}

int tr__tls_write(struct transport__conn *c, uv_write_t *req,
                  const uv_buf_t *bufs, unsigned n, uv_write_cb cb)
{
    ASSERT(c->ssl != NULL && c->tls_up);
    ASSERT(n > 0 && cb != NULL);
    for (unsigned i = 0; i < n; i++) {
        size_t done = 0;
        if (bufs[i].len == 0) {
            continue;
        }
        ERR_clear_error();
        /* A memory BIO takes everything: no partial write, no retry. */
        if (SSL_write_ex(c->ssl, bufs[i].base, bufs[i].len, &done) != 1 ||
            done != bufs[i].len) {
            ERR_clear_error();
            return -EPROTO;
        }
    }
    return flush_out(c, req, cb);
}

/* The dialled IP as text, for the SAN check. */
static void dialled_ip(const struct transport__conn *c, char *ip, size_t len)
{
    const struct sockaddr_storage *a = &c->peer->addr;
    ip[0] = '\0';
    if (a->ss_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)a, ip, len);
    } else if (a->ss_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)a, ip, len);
    }
}

int tr__tls_start(struct transport__conn *c, bool dialer)
{
    struct transport *t = c->t;
    SSL_CTX *ctx = dialer ? t->cfg.tls_client_ctx : t->cfg.tls_server_ctx;
    ASSERT(c->ssl == NULL);
    if (ctx == NULL) {
        return ERR_INVALID;
    }
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem());
    BIO *wb = BIO_new(BIO_s_mem());
    if (ssl == NULL || rb == NULL || wb == NULL) {
        SSL_free(ssl);
        BIO_free(rb);
        BIO_free(wb);
        ERR_clear_error();
        return -ENOMEM;
    }
    BIO_set_mem_eof_return(rb, -1); /* empty: "retry", not EOF */
    BIO_set_mem_eof_return(wb, -1);
    SSL_set_bio(ssl, rb, wb); /* ssl owns both now */
    if (dialer) {
        char ip[64];
        ASSERT(c->peer != NULL);
        dialled_ip(c, ip, sizeof(ip));
        SSL_set_connect_state(ssl);
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        bool verify = (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0;
        int ok = 1;
        if (verify && c->peer->tls_name[0] != '\0') {
            /* a DNS name from the peer URL: SNI and the SAN check */
            ok = X509_VERIFY_PARAM_set1_host(vp, c->peer->tls_name, 0) &&
                 SSL_set_tlsext_host_name(ssl, c->peer->tls_name);
        } else if (verify && ip[0] != '\0') {
            ok = X509_VERIFY_PARAM_set1_ip_asc(vp, ip);
        }
        if (ok != 1) {
            SSL_free(ssl);
            ERR_clear_error();
            return -ENOMEM;
        }
    } else {
        SSL_set_accept_state(ssl);
    }
    c->ssl = ssl;
    return 0;
}

void tr__tls_free(struct transport__conn *c)
{
    if (c->san != NULL) {
        c->san->c = NULL; /* the lookup finishes on its own and frees it */
        c->san = NULL;
    }
    SSL_free(c->ssl); /* and its BIOs; NULL is a no-op */
    c->ssl = NULL;
}

/* The subject of the certificate the other side sent, if any. */
static void peer_subject(const struct transport__conn *c, char *buf, size_t len)
{
    X509 *x = SSL_get0_peer_certificate(c->ssl);
    buf[0] = '\0';
    if (x != NULL) {
        X509_NAME_oneline(X509_get_subject_name(x), buf, (int)len);
    }
}

/* Close c after a TLS failure (ssl_err from SSL_get_error), saying why. */
static void tls_fail(struct transport__conn *c, int ssl_err)
{
    struct transport *t = c->t;
    char why[TRANSPORT_REASON_MAX + 1];
    char subj[128];
    unsigned long e = ERR_get_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    long v = SSL_get_verify_result(c->ssl);
    int n;
    if (r == NULL) {
        r = ssl_err == SSL_ERROR_SYSCALL ? "unexpected EOF" : "TLS error";
    }
    n = snprintf(why, sizeof(why), "%s%s",
                 c->tls_up ? "TLS: " : "TLS handshake: ", r);
    if (v != X509_V_OK && n > 0 && (size_t)n < sizeof(why)) {
        n += snprintf(why + n, sizeof(why) - (size_t)n, " (%s)",
                      X509_verify_cert_error_string(v));
    }
    peer_subject(c, subj, sizeof(subj));
    if (subj[0] != '\0' && n > 0 && (size_t)n < sizeof(why)) {
        snprintf(why + n, sizeof(why) - (size_t)n, "; its certificate: %s",
                 subj);
    }
    ERR_clear_error();
    if (!c->tls_up) {
        t->stats.tls_handshakes_failed++;
    }
    (void)flush_out(c, NULL, NULL); /* our alert, if any */
    if (c->kind == TR_CONN_IN) {
        /* etcd's line for the same event */
        LOGW_LIMITED(TR_LOG,
                     "rejected peer connection from \"%s\" (error \"%s\")",
                     c->remote, why);
    } else {
        if (c->kind == TR_CONN_OUT_SNAP) {
            LOGW(TR_LOG,
                 "snapshot connection to member %016" PRIx64 " at %s: %s",
                 c->peer_id, c->remote, why);
        }
        if (c->peer != NULL) {
            tr__peer_set_error(c->peer, why);
            c->reason_set = true;
        }
    }
    tr__conn_fail(c, -EPROTO);
}

void tr__tls_on_read(struct transport__conn *c, const uint8_t *p, size_t len)
{
    ASSERT(c->ssl != NULL);
    ASSERT(len > 0 && len <= TR_TLS_RBUF_BYTES);
    if (BIO_write(SSL_get_rbio(c->ssl), p, (int)len) != (int)len) {
        ERR_clear_error();
        tr__conn_fail(c, -ENOMEM);
        return;
    }
    tr__tls_pump(c);
}

/* --- the dialling member's certificate names its address ------------- */

static void remote_ip(const struct transport__conn *c, char *ip, size_t len)
{
    const char *colon = strrchr(c->remote, ':');
    size_t n = colon != NULL ? (size_t)(colon - c->remote) : 0;
    if (n >= len) {
        n = 0;
    }
    memcpy(ip, c->remote, n);
    ip[n] = '\0';
}

static void san_refuse(struct transport__conn *c, const char *why)
{
    c->t->stats.tls_handshakes_failed++;
    LOGW_LIMITED(TR_LOG, "rejected peer connection from \"%s\" (error \"%s\")",
                 c->remote, why);
    tr__conn_fail(c, -EPROTO);
}

static void san_lookup_done(uv_getaddrinfo_t *req, int status,
                            struct addrinfo *res);

static int san_lookup_next(struct tr_san_check *s)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    s->req.data = s;
    return uv_getaddrinfo(s->c->t->loop, &s->req, san_lookup_done,
                          s->names[s->next], NULL, &hints);
}

static bool addrs_have(const struct addrinfo *res, const char *ip)
{
    char text[64];
    size_t n = 0;
    for (const struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        ASSERT(++n <= 4096); /* the resolver's list is finite */
        text[0] = '\0';
        if (a->ai_family == AF_INET) {
            uv_ip4_name((const struct sockaddr_in *)a->ai_addr, text,
                        sizeof(text));
        } else if (a->ai_family == AF_INET6) {
            uv_ip6_name((const struct sockaddr_in6 *)a->ai_addr, text,
                        sizeof(text));
        }
        if (strcmp(text, ip) == 0) {
            return true;
        }
    }
    return false;
}

static void san_finish(struct tr_san_check *s, bool match);

/* The connection went while a lookup ran: true (and s freed) if so. */
static bool san_orphan(struct tr_san_check *s)
{
    struct transport__conn *c = s->c;
    if (c == NULL || c->state == TR_CLOSING) {
        if (c != NULL) {
            c->san = NULL; /* closing, not yet finalized */
        }
        mem_free(s);
        return true;
    }
    ASSERT(c->san == s);
    return false;
}

/* Does host (a PTR name, maybe with its trailing dot) match a DNS SAN:
 * one of the names, or ends with a wildcard's suffix (etcd's
 * strings.HasSuffix: any depth below it)? */
static bool san_host_match(const struct tr_san_check *s, const char *host)
{
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.') {
        n--;
    }
    for (unsigned i = 0; i < s->wild_count; i++) {
        size_t w = strlen(s->wild[i]);
        if (n > w && strncasecmp(host + n - w, s->wild[i], w) == 0) {
            return true;
        }
    }
    for (unsigned i = 0; i < s->count; i++) {
        if (strlen(s->names[i]) == n &&
            strncasecmp(host, s->names[i], n) == 0) {
            return true;
        }
    }
    return false;
}

static void san_reverse_done(uv_getnameinfo_t *req, int status,
                             const char *host, const char *service)
{
    struct tr_san_check *s = req->data;
    (void)service;
    if (san_orphan(s)) {
        return;
    }
    if (status == 0 && host != NULL && san_host_match(s, host)) {
        san_finish(s, true);
        return;
    }
    /* then each name forward, as etcd's isHostInDNS goes on */
    if (s->count > 0 && san_lookup_next(s) == 0) {
        return;
    }
    san_finish(s, false);
}

static int san_reverse_start(struct tr_san_check *s)
{
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof(sa));
    if (uv_ip4_addr(s->ip, 0, (struct sockaddr_in *)&sa) != 0 &&
        uv_ip6_addr(s->ip, 0, (struct sockaddr_in6 *)&sa) != 0) {
        return -EINVAL;
    }
    s->rreq.data = s;
    return uv_getnameinfo(s->c->t->loop, &s->rreq, san_reverse_done,
                          (const struct sockaddr *)&sa, NI_NAMEREQD);
}

static void san_lookup_done(uv_getaddrinfo_t *req, int status,
                            struct addrinfo *res)
{
    struct tr_san_check *s = req->data;
    bool match = status == 0 && addrs_have(res, s->ip);
    uv_freeaddrinfo(res);
    if (san_orphan(s)) {
        return;
    }
    if (!match && ++s->next < s->count && san_lookup_next(s) == 0) {
        return;
    }
    san_finish(s, match);
}

static void san_finish(struct tr_san_check *s, bool match)
{
    struct transport__conn *c = s->c;
    c->san = NULL;
    if (match) {
        mem_free(s);
        tr__conn_read_start(c);
        tr__tls_pump(c); /* the records that waited */
        return;
    }
    char why[TRANSPORT_REASON_MAX + 1];
    snprintf(why, sizeof(why),
             "client certificate SAN: its DNS names%s do not resolve to %s "
             "and its reverse name matches none of them",
             s->count == TRANSPORT_SAN_NAMES_MAX ? " (the first 8)" : "",
             s->ip);
    mem_free(s);
    san_refuse(c, why);
}

/* Collect up to TRANSPORT_SAN_NAMES_MAX DNS SANs of gens into s. */
static void san_dns_names(GENERAL_NAMES *gens, struct tr_san_check *s,
                          bool *has_ip)
{
    int n = sk_GENERAL_NAME_num(gens);
    for (int i = 0; i < n; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type == GEN_IPADD) {
            *has_ip = true;
        } else if (g->type == GEN_DNS) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int len = ASN1_STRING_length(g->d.dNSName);
            if (len > 2 && (size_t)len < sizeof(s->wild[0]) &&
                memchr(d, 0, (size_t)len) == NULL && d[0] == '*' &&
                d[1] == '.' && s->wild_count < TRANSPORT_SAN_NAMES_MAX) {
                memcpy(s->wild[s->wild_count], d + 1, (size_t)len - 1);
                s->wild[s->wild_count][len - 1] = '\0';
                s->wild_count++;
            } else if (len > 0 && (size_t)len < sizeof(s->names[0]) &&
                       memchr(d, 0, (size_t)len) == NULL && d[0] != '*' &&
                       s->count < TRANSPORT_SAN_NAMES_MAX) {
                memcpy(s->names[s->count], d, (size_t)len);
                s->names[s->count][len] = '\0';
                s->count++;
            }
        }
    }
}

/* etcd 3.4's checkCertSAN: 0 when the dialler's certificate names its
 * address (or has no IP or DNS SAN); 1 when DNS lookups started (the pump
 * waits for san_lookup_done); -1 when refused (why says so). */
static int san_check(struct transport__conn *c, char *why, size_t len)
{
    X509 *x = SSL_get0_peer_certificate(c->ssl);
    GENERAL_NAMES *gens =
        x != NULL ? X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL)
                  : NULL;
    bool has_ip = false;
    if (gens == NULL) {
        return 0;
    }
    struct tr_san_check *s = mem_calloc(1, sizeof(*s));
    if (s == NULL) {
        GENERAL_NAMES_free(gens);
        snprintf(why, len, "out of memory checking the certificate SAN");
        return -1;
    }
    remote_ip(c, s->ip, sizeof(s->ip));
    san_dns_names(gens, s, &has_ip);
    GENERAL_NAMES_free(gens);
    if ((!has_ip && s->count == 0 && s->wild_count == 0) ||
        X509_check_ip_asc(x, s->ip, 0) == 1) {
        mem_free(s);
        return 0;
    }
    if (s->count == 0 && s->wild_count == 0) {
        snprintf(why, len,
                 "client certificate SAN: its IP addresses do "
                 "not include %s",
                 s->ip);
        mem_free(s);
        return -1;
    }
    s->c = c;
    if (san_reverse_start(s) != 0 &&
        (s->count == 0 || san_lookup_next(s) != 0)) {
        snprintf(why, len, "client certificate SAN: cannot resolve %.64s",
                 s->count > 0 ? s->names[0] : s->ip);
        mem_free(s);
        return -1;
    }
    c->san = s;
    return 1;
}

/* Run the handshake; true when it is done and the pump may decrypt. */
static bool handshake_step(struct transport__conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
    if (r != 1 && e != SSL_ERROR_WANT_READ) {
        tls_fail(c, e);
        return false;
    }
    int rc = flush_out(c, NULL, NULL);
    if (rc != 0) {
        tr__conn_fail(c, rc);
        return false;
    }
    if (r != 1) {
        return false;
    }
    c->tls_up = true;
    LOGD(TR_LOG, "peer connection %s %s: %s %s",
         c->kind == TR_CONN_IN ? "from" : "to", c->remote,
         SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
    if (c->kind != TR_CONN_IN) {
        tr__conn_out_hello(c);
    } else if (c->t->cfg.tls_check_client_san &&
               (SSL_get_verify_mode(c->ssl) & SSL_VERIFY_PEER) != 0) {
        char why[TRANSPORT_REASON_MAX + 1];
        int sr = san_check(c, why, sizeof(why));
        if (sr < 0) {
            san_refuse(c, why);
            return false;
        }
        if (sr > 0) {
            tr__conn_read_stop(c); /* nothing piles up in the read BIO */
            return false;
        }
    }
    return c->state != TR_CLOSING;
}

void tr__tls_pump(struct transport__conn *c)
{
    size_t guard = 0;
    ASSERT(c->ssl != NULL);
    if (c->state == TR_CLOSING || c->san != NULL) {
        return; /* closed, or waiting for the SAN's DNS lookup */
    }
    if (!c->tls_up && !handshake_step(c)) {
        return;
    }
    while (c->state != TR_CLOSING && !c->paused) {
        ASSERT(++guard <= TR_TLS_PUMP_MAX);
        size_t room = tr__rbuf_reserve(c);
        size_t got = 0;
        if (room == 0) {
            tr__conn_fail(c, -ENOMEM);
            return;
        }
        ERR_clear_error();
        int r = SSL_read_ex(c->ssl, c->rbuf + c->rlen, room, &got);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ) {
                break;
            }
            if (e == SSL_ERROR_ZERO_RETURN) {
                tr__conn_fail(c, -ECONNRESET); /* close_notify: EOF */
                return;
            }
            tls_fail(c, e);
            return;
        }
        ASSERT(got > 0 && got <= room);
        c->rlen += got;
        tr__conn_consume(c);
    }
    if (c->state != TR_CLOSING) {
        /* SSL_read may answer post-handshake messages (key update) */
        int rc = flush_out(c, NULL, NULL);
        if (rc != 0) {
            tr__conn_fail(c, rc);
        }
    }
}

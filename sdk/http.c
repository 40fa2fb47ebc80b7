/*
 * http.c - libcairn's blocking HTTP/1.1 and WebSocket client (http_int.h).
 *
 * Every socket is non-blocking and every wait is a poll() bounded by the
 * call's deadline, so no call can hang on a silent server. A request is
 * written whole, then the answer is read until its Content-Length, the
 * last chunk, or EOF, never past CAIRN_HTTP_HEAD_MAX + body_max bytes.
 * Anything that does not parse is CAIRN_E_BAD_RESPONSE.
 *
 * TLS: after the TCP connect the handshake runs on the same non-blocking
 * fd, SSL_connect retried after waiting for what it asked (WANT_READ:
 * POLLIN, WANT_WRITE: POLLOUT) until the deadline; then SSL_write and
 * SSL_read replace send and recv the same way. SSL_read is always tried
 * before waiting, since the SSL may hold decrypted bytes the socket no
 * longer shows. A server's refusal that TLS 1.3 delivers after the
 * handshake (no client certificate) surfaces at the first read, with
 * its reason in errbuf.
 *
 * An upgrade is accepted only with the Sec-WebSocket-Accept that RFC 6455
 * 4.2.2 derives from our key (SHA-1 from OpenSSL's libcrypto): a proxy or
 * cache answering 101 on its own is not taken for the server.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "base/alloc.h"
#include "sdk/client_int.h"
#include "sdk/http_int.h"
#include "sdk/tls_int.h"

/* A connection: its fd, and its SSL when it is TLS. */
struct hio {
    int fd;
    int wake; /* reads only: see struct cairn__ws */
    SSL *ssl;
    char *eb; /* where a TLS failure's reason goes (may be NULL) */
    size_t ebn;
};

static void set_err(char *errbuf, size_t n, const char *fmt, const char *a)
{
    if (errbuf != NULL && n > 0) {
        snprintf(errbuf, n, fmt, a);
    }
}

int cairn__hostport(const char *ep, char *host, size_t host_size, char *port,
                    size_t port_size)
{
    if (ep == NULL) {
        return CAIRN_E_INVALID;
    }
    ep = cairn__ep_strip(ep);
    const char *colon = strrchr(ep, ':');
    if (colon == NULL || colon == ep) {
        return CAIRN_E_INVALID;
    }
    const char *h = ep;
    size_t hl = (size_t)(colon - ep);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    const char *p = colon + 1;
    size_t pl = strcspn(p, "/");
    if (hl == 0 || hl >= host_size || pl == 0 || pl >= port_size) {
        return CAIRN_E_INVALID;
    }
    memcpy(host, h, hl);
    host[hl] = 0;
    memcpy(port, p, pl);
    port[pl] = 0;
    return 0;
}

/* "host:port" for a Host header, an IPv6 address in brackets (RFC 7230
 * section 5.4 with RFC 3986's IP-literal). */
static void host_header(const char *host, const char *port, char *out, size_t n)
{
    bool v6 = strchr(host, ':') != NULL;
    snprintf(out, n, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

static int64_t ms_left(uint64_t deadline_ns)
{
    uint64_t now = cairn__now_ns();
    if (now >= deadline_ns) {
        return 0;
    }
    return (int64_t)((deadline_ns - now) / 1000000u) + 1;
}

/* Waits for ev on fd until the deadline; with wake (an fd plus one, 0:
 * none), a byte on wake ends the wait early as a timeout (the bytes are
 * drained). */
static int wait_fd_wake(int fd, short ev, uint64_t deadline_ns, int wake)
{
    for (;;) {
        int64_t left = ms_left(deadline_ns);
        if (left <= 0) {
            return CAIRN_E_TIMEOUT;
        }
        struct pollfd p[2] = {{.fd = fd, .events = ev},
                              {.fd = wake - 1, .events = POLLIN}};
        int n = poll(p, wake > 0 ? 2 : 1, left > 1000000 ? 1000000 : (int)left);
        if (n > 0 && wake > 0 && (p[1].revents & POLLIN) != 0) {
            char drain[64];
            while (read(wake - 1, drain, sizeof(drain)) > 0) {
            }
            return CAIRN_E_TIMEOUT;
        }
        if (n > 0) {
            return 0;
        }
        if (n < 0 && errno != EINTR) {
            return CAIRN_E_UNAVAILABLE;
        }
    }
}

static int wait_fd(int fd, short ev, uint64_t deadline_ns)
{
    return wait_fd_wake(fd, ev, deadline_ns, 0);
}

static int dial(const char *ep, uint64_t deadline_ns, int *fd_out, char *eb,
                size_t ebn)
{
    char host[256], port[16];
    if (cairn__hostport(ep, host, sizeof(host), port, sizeof(port)) != 0) {
        set_err(eb, ebn, "bad endpoint %s", ep);
        return CAIRN_E_INVALID;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
        set_err(eb, ebn, "cannot resolve %s", ep);
        return CAIRN_E_UNAVAILABLE;
    }
    int rc = CAIRN_E_UNAVAILABLE;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = socket(ai->ai_family,
                        ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 &&
            errno != EINPROGRESS) {
            close(fd);
            continue;
        }
        rc = wait_fd(fd, POLLOUT, deadline_ns);
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (rc == 0 &&
            (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 ||
             soerr != 0)) {
            rc = CAIRN_E_UNAVAILABLE;
        }
        if (rc == 0) {
            *fd_out = fd;
            break;
        }
        close(fd);
        if (rc == CAIRN_E_TIMEOUT) {
            break;
        }
        rc = CAIRN_E_UNAVAILABLE;
    }
    freeaddrinfo(res);
    if (rc != 0) {
        set_err(eb, ebn,
                rc == CAIRN_E_TIMEOUT ? "connect to %s: timed out"
                                      : "connect to %s: refused or unreachable",
                ep);
    }
    return rc;
}

static int tls_wait(struct hio *io, int r, uint64_t deadline_ns);

/* The TLS handshake on a connected fd; the deadline bounds its waits. */
static int tls_connect(struct hio *io, const struct cairn__tls *tls,
                       const char *ep, uint64_t deadline_ns)
{
    char host[256], port[16];
    if (cairn__hostport(ep, host, sizeof(host), port, sizeof(port)) != 0) {
        return CAIRN_E_INVALID;
    }
    io->ssl = cairn__tls_ssl_new(tls, host, "http/1.1");
    if (io->ssl == NULL || SSL_set_fd(io->ssl, io->fd) != 1) {
        return CAIRN_E_NOMEM;
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(io->ssl);
        if (r == 1) {
            return 0;
        }
        int rc = tls_wait(io, r, deadline_ns);
        if (rc == CAIRN_E_TIMEOUT) {
            set_err(io->eb, io->ebn, "%s: TLS handshake timed out", ep);
        }
        if (rc != 0) {
            return rc;
        }
    }
}

/* Connects to ep, with TLS when tls says so; io is ready on 0. */
static int hio_open(struct hio *io, const char *ep,
                    const struct cairn__tls *tls, uint64_t deadline_ns,
                    char *eb, size_t ebn)
{
    memset(io, 0, sizeof(*io));
    io->fd = -1;
    io->eb = eb;
    io->ebn = ebn;
    int rc = dial(ep, deadline_ns, &io->fd, eb, ebn);
    if (rc != 0 || !cairn__tls_ep(tls, ep)) {
        return rc;
    }
    rc = tls_connect(io, tls, ep, deadline_ns);
    if (rc != 0) {
        SSL_free(io->ssl);
        io->ssl = NULL;
        close(io->fd);
        io->fd = -1;
    }
    return rc;
}

/* Closes io: a close_notify when TLS (one try, never a wait). */
static void hio_close(struct hio *io)
{
    if (io->ssl != NULL) {
        SSL_shutdown(io->ssl);
        SSL_free(io->ssl);
        ERR_clear_error();
        io->ssl = NULL;
    }
    if (io->fd >= 0) {
        close(io->fd);
        io->fd = -1;
    }
}

/* Waits for what the SSL asked for after a call returned r; 0 to retry,
 * else an error (its reason in io->eb). */
static int tls_wait(struct hio *io, int r, uint64_t deadline_ns)
{
    int e = SSL_get_error(io->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        return wait_fd_wake(io->fd, POLLIN, deadline_ns, io->wake);
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        return wait_fd(io->fd, POLLOUT, deadline_ns);
    }
    if (io->eb != NULL && io->ebn > 0) {
        cairn__tls_why(io->ssl, r, io->eb, io->ebn);
    } else {
        ERR_clear_error();
    }
    return CAIRN_E_UNAVAILABLE;
}

static int tls_send_all(struct hio *io, const uint8_t *p, size_t n,
                        uint64_t deadline_ns)
{
    /* Each round writes bytes or waits; the deadline bounds the waits. */
    while (n > 0) {
        ERR_clear_error();
        int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
        int w = SSL_write(io->ssl, p, chunk);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        int rc = tls_wait(io, w, deadline_ns);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int tls_recv_some(struct hio *io, uint8_t *buf, size_t cap,
                         uint64_t deadline_ns, size_t *got)
{
    for (;;) {
        ERR_clear_error();
        int chunk = cap > (1u << 30) ? 1 << 30 : (int)cap;
        int r = SSL_read(io->ssl, buf, chunk);
        if (r > 0) {
            *got = (size_t)r;
            return 0;
        }
        if (SSL_get_error(io->ssl, r) == SSL_ERROR_ZERO_RETURN) {
            *got = 0; /* close_notify (or an EOF: IGNORE_UNEXPECTED_EOF) */
            return 0;
        }
        int rc = tls_wait(io, r, deadline_ns);
        if (rc != 0) {
            return rc;
        }
    }
}

static int send_all(struct hio *io, const void *buf, size_t n,
                    uint64_t deadline_ns)
{
    if (io->ssl != NULL) {
        return tls_send_all(io, buf, n, deadline_ns);
    }
    int fd = io->fd;
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR) {
            return CAIRN_E_UNAVAILABLE;
        }
        int rc = wait_fd(fd, POLLOUT, deadline_ns);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Reads once (after waiting); 0 bytes is EOF. */
static int recv_some(struct hio *io, uint8_t *buf, size_t cap,
                     uint64_t deadline_ns, size_t *got)
{
    if (io->ssl != NULL) {
        return tls_recv_some(io, buf, cap, deadline_ns, got);
    }
    int fd = io->fd;
    for (;;) {
        ssize_t r = recv(fd, buf, cap, 0);
        if (r >= 0) {
            *got = (size_t)r;
            return 0;
        }
        if (errno != EAGAIN && errno != EINTR) {
            return CAIRN_E_UNAVAILABLE;
        }
        int rc = wait_fd_wake(fd, POLLIN, deadline_ns, io->wake);
        if (rc != 0) {
            return rc;
        }
    }
}

/* Growable byte buffer with a hard cap. */
struct bbuf {
    uint8_t *p;
    size_t len;
    size_t cap;
    size_t max;
};

static int bbuf_reserve(struct bbuf *b, size_t more)
{
    if (more > b->max || b->len > b->max - more) {
        return CAIRN_E_TOO_BIG;
    }
    if (b->len + more + 1 <= b->cap) {
        return 0;
    }
    size_t nc = b->cap == 0 ? 4096 : b->cap;
    while (nc < b->len + more + 1) {
        nc *= 2;
    }
    uint8_t *np = mem_realloc(b->p, nc);
    if (np == NULL) {
        return CAIRN_E_NOMEM;
    }
    b->p = np;
    b->cap = nc;
    return 0;
}

/* Finds the end of the head ("\r\n\r\n"); its length or 0. */
static size_t head_end(const uint8_t *p, size_t n)
{
    for (size_t i = 3; i < n; i++) {
        if (p[i - 3] == '\r' && p[i - 2] == '\n' && p[i - 1] == '\r' &&
            p[i] == '\n') {
            return i + 1;
        }
    }
    return 0;
}

/* A header's value in the head (case-insensitive name), copied. */
static bool header_get(const char *head, size_t head_len, const char *name,
                       char *out, size_t out_size)
{
    size_t nl = strlen(name);
    const char *p = head, *end = head + head_len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL) {
            break;
        }
        if ((size_t)(eol - p) > nl + 1 && strncasecmp(p, name, nl) == 0 &&
            p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t')) {
                v++;
            }
            const char *ve = eol;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ')) {
                ve--;
            }
            size_t vl = (size_t)(ve - v);
            if (vl >= out_size) {
                vl = out_size - 1;
            }
            memcpy(out, v, vl);
            out[vl] = 0;
            return true;
        }
        p = eol + 1;
    }
    return false;
}

static int parse_status(const uint8_t *p, size_t n, int *status)
{
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ') {
        return CAIRN_E_BAD_RESPONSE;
    }
    int s = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return CAIRN_E_BAD_RESPONSE;
        }
        s = s * 10 + (p[i] - '0');
    }
    if (s < 100) {
        return CAIRN_E_BAD_RESPONSE;
    }
    *status = s;
    return 0;
}

/* Decodes a chunked body in place; its new length or -1. */
static int dechunk(uint8_t *p, size_t n, size_t *out_len)
{
    size_t r = 0, w = 0;
    for (;;) {
        size_t sz = 0;
        int digits = 0;
        while (r < n) {
            uint8_t c = p[r];
            int v = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (v < 0) {
                break;
            }
            if (sz > (SIZE_MAX >> 4)) {
                return -1;
            }
            sz = sz * 16 + (size_t)v;
            digits++;
            r++;
        }
        if (digits == 0) {
            return -1;
        }
        const uint8_t *eol = memchr(p + r, '\n', n - r); /* extensions */
        if (eol == NULL) {
            return -1;
        }
        r = (size_t)(eol - p) + 1;
        if (sz == 0) {
            *out_len = w;
            return 0;
        }
        if (sz > n - r || n - r - sz < 2) {
            return -1;
        }
        memmove(p + w, p + r, sz);
        w += sz;
        r += sz;
        if (p[r] != '\r' || p[r + 1] != '\n') {
            return -1;
        }
        r += 2;
    }
}

void cairn__http_resp_free(struct cairn__http_resp *r)
{
    if (r != NULL) {
        mem_free(r->body);
        r->body = NULL;
        r->body_len = 0;
    }
}

bool cairn__url_escape(const char *s, char *out, size_t out_size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t w = 0;
    for (; *s != 0; s++) {
        unsigned char c = (unsigned char)*s;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                     (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                     c == '_' || c == '~';
        if (w + (plain ? 1 : 3) >= out_size) {
            return false;
        }
        if (plain) {
            out[w++] = (char)c;
        } else {
            out[w++] = '%';
            out[w++] = hex[c >> 4];
            out[w++] = hex[c & 15];
        }
    }
    if (w >= out_size) {
        return false;
    }
    out[w] = 0;
    return true;
}

/* "Authorization: <token>\r\n", or "" without a token; false when the
 * token cannot be a header value. */
static bool auth_line(const char *token, char *out, size_t n)
{
    out[0] = 0;
    if (token == NULL || token[0] == 0) {
        return true;
    }
    if (strpbrk(token, "\r\n") != NULL) {
        return false;
    }
    int k = snprintf(out, n, "Authorization: %s\r\n", token);
    return k > 0 && (size_t)k < n;
}

int cairn__http_call(const char *ep, const char *method, const char *path,
                     const char *body, size_t body_len, int64_t timeout_ms,
                     struct cairn__http_resp *out, char *eb, size_t ebn)
{
    return cairn__http_call_auth(ep, NULL, NULL, method, path, body, body_len,
                                 timeout_ms, out, eb, ebn);
}

int cairn__http_call_auth(const char *ep, const struct cairn__tls *tls,
                          const char *token, const char *method,
                          const char *path, const char *body, size_t body_len,
                          int64_t timeout_ms, struct cairn__http_resp *out,
                          char *eb, size_t ebn)
{
    char auth[CAIRN_TOKEN_MAX + 32];
    memset(out, 0, sizeof(*out));
    if (ep == NULL || method == NULL || path == NULL || path[0] != '/' ||
        strpbrk(path, " \r\n") != NULL || timeout_ms <= 0 ||
        !auth_line(token, auth, sizeof(auth))) {
        return CAIRN_E_INVALID;
    }
    char host[256], port[16];
    if (cairn__hostport(ep, host, sizeof(host), port, sizeof(port)) != 0) {
        return CAIRN_E_INVALID;
    }
    uint64_t deadline = cairn__now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct hio io;
    int rc = hio_open(&io, ep, tls, deadline, eb, ebn);
    if (rc != 0) {
        return rc;
    }
    char hp[300];
    host_header(host, port, hp, sizeof(hp));
    char head[1024 + sizeof(auth)];
    int hn = snprintf(head, sizeof(head),
                      "%s %s HTTP/1.1\r\nHost: %s\r\n%s"
                      "Accept: application/json\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      method, path, hp, auth, body != NULL ? body_len : 0);
    if (hn < 0 || (size_t)hn >= sizeof(head)) {
        hio_close(&io);
        return CAIRN_E_INVALID;
    }
    rc = send_all(&io, head, (size_t)hn, deadline);
    if (rc == 0 && body != NULL && body_len > 0) {
        rc = send_all(&io, body, body_len, deadline);
    }
    out->sent = true; /* from here the server may have acted on it */
    struct bbuf b = {.max = CAIRN_HTTP_HEAD_MAX + CAIRN_HTTP_BODY_MAX};
    size_t hlen = 0;
    int64_t clen = -1;
    bool chunked = false;
    while (rc == 0) {
        if (b.len >= b.max) {
            rc = CAIRN_E_TOO_BIG;
            break;
        }
        rc = bbuf_reserve(&b, 16384);
        if (rc == CAIRN_E_TOO_BIG && b.len < b.max) {
            rc = bbuf_reserve(&b, b.max - b.len);
        }
        if (rc != 0) {
            break;
        }
        size_t got = 0;
        rc = recv_some(&io, b.p + b.len, b.cap - 1 - b.len, deadline, &got);
        if (rc != 0) {
            break;
        }
        b.len += got;
        if (hlen == 0 && b.len > 0 &&
            memcmp(b.p, "HTTP/1.", b.len < 7 ? b.len : 7) != 0) {
            rc = CAIRN_E_BAD_RESPONSE; /* not HTTP: no need to read on */
            break;
        }
        if (hlen == 0) {
            hlen = head_end(b.p, b.len);
            if (hlen == 0 && b.len > CAIRN_HTTP_HEAD_MAX) {
                rc = CAIRN_E_BAD_RESPONSE;
                break;
            }
            if (hlen > 0) {
                char v[64];
                rc = parse_status(b.p, hlen, &out->status);
                if (rc != 0) {
                    break;
                }
                if (header_get((char *)b.p, hlen, "Content-Length", v,
                               sizeof(v))) {
                    char *e = NULL;
                    long long cl = strtoll(v, &e, 10);
                    if (e == v || *e != 0 || cl < 0 ||
                        (uint64_t)cl > CAIRN_HTTP_BODY_MAX) {
                        rc = cl > 0 ? CAIRN_E_TOO_BIG : CAIRN_E_BAD_RESPONSE;
                        break;
                    }
                    clen = cl;
                }
                if (header_get((char *)b.p, hlen, "Transfer-Encoding", v,
                               sizeof(v)) &&
                    strcasestr(v, "chunked") != NULL) {
                    chunked = true;
                    clen = -1;
                }
            }
        }
        if (hlen > 0 && clen >= 0 && b.len - hlen >= (size_t)clen) {
            break;
        }
        if (hlen > 0 && chunked && b.len - hlen >= 5 &&
            memcmp(b.p + b.len - 5, "0\r\n\r\n", 5) == 0) {
            size_t l = 0; /* maybe the end: try to decode a copy */
            uint8_t *cp = mem_dup(b.p + hlen, b.len - hlen);
            bool done = cp != NULL && dechunk(cp, b.len - hlen, &l) == 0;
            mem_free(cp);
            if (done) {
                break;
            }
        }
        if (got == 0) { /* EOF */
            if (hlen == 0 || clen >= 0 || chunked) {
                rc = CAIRN_E_UNAVAILABLE;
                set_err(eb, ebn, "%s: connection closed mid-answer", ep);
            }
            break;
        }
    }
    hio_close(&io);
    if (rc == CAIRN_E_UNAVAILABLE && eb != NULL && eb[0] == 0) {
        set_err(eb, ebn, "%s: connection lost", ep);
    }
    if (rc != 0) {
        mem_free(b.p);
        return rc;
    }
    size_t blen = b.len - hlen;
    if (clen >= 0) {
        blen = (size_t)clen;
    }
    memmove(b.p, b.p + hlen, blen);
    if (chunked && dechunk(b.p, blen, &blen) != 0) {
        mem_free(b.p);
        return CAIRN_E_BAD_RESPONSE;
    }
    b.p[blen] = 0;
    out->body = (char *)b.p;
    out->body_len = blen;
    return 0;
}

/* ------------------------------------------------------------ websocket */

static uint64_t prng_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void b64(const uint8_t *in, size_t n, char *out)
{
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t w = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        out[w++] = t[(v >> 18) & 63];
        out[w++] = t[(v >> 12) & 63];
        out[w++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[w++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[w] = 0;
}

/* RFC 6455 4.2.2: Sec-WebSocket-Accept is base64(SHA-1(key + GUID)). */
static bool accept_ok(const char *head, size_t head_len, const char *key64)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char got[64];
    char cat[64];
    char want[40];
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!header_get(head, head_len, "Sec-WebSocket-Accept", got, sizeof(got))) {
        return false;
    }
    int n = snprintf(cat, sizeof(cat), "%s%s", key64, guid);
    if (n < 0 || (size_t)n >= sizeof(cat) ||
        EVP_Digest(cat, (size_t)n, md, &mdlen, EVP_sha1(), NULL) != 1 ||
        mdlen != 20) {
        return false;
    }
    b64(md, 20, want);
    return strcmp(got, want) == 0;
}

int cairn__ws_open(struct cairn__ws *ws, const char *ep, const char *path,
                   int64_t timeout_ms, size_t msg_max, char *eb, size_t ebn)
{
    return cairn__ws_open_auth(ws, ep, NULL, NULL, path, timeout_ms, msg_max,
                               eb, ebn);
}

int cairn__ws_open_auth(struct cairn__ws *ws, const char *ep,
                        const struct cairn__tls *tls, const char *token,
                        const char *path, int64_t timeout_ms, size_t msg_max,
                        char *eb, size_t ebn)
{
    char auth[CAIRN_TOKEN_MAX + 32];
    memset(ws, 0, sizeof(*ws));
    ws->fd = -1;
    char host[256], port[16];
    if (path == NULL || path[0] != '/' || strpbrk(path, " \r\n") != NULL ||
        timeout_ms <= 0 || !auth_line(token, auth, sizeof(auth)) ||
        cairn__hostport(ep, host, sizeof(host), port, sizeof(port)) != 0) {
        return CAIRN_E_INVALID;
    }
    ws->msg_max = msg_max;
    ws->prng =
        cairn__now_ns() ^ ((uint64_t)(uintptr_t)ws << 17) ^ (uint64_t)getpid();
    ws->prng |= 1;
    uint64_t deadline = cairn__now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct hio io;
    int rc = hio_open(&io, ep, tls, deadline, eb, ebn);
    if (rc != 0) {
        return rc;
    }
    uint8_t key[16];
    for (int i = 0; i < 16; i++) {
        key[i] = (uint8_t)prng_next(&ws->prng);
    }
    char key64[32];
    b64(key, 16, key64);
    char *req = mem_alloc(strlen(path) + 512 + sizeof(auth));
    if (req == NULL) {
        hio_close(&io);
        return CAIRN_E_NOMEM;
    }
    char hp[300];
    host_header(host, port, hp, sizeof(hp));
    int n = sprintf(req,
                    "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                    "%sSec-WebSocket-Version: 13\r\n\r\n",
                    path, hp, key64, auth);
    rc = send_all(&io, req, (size_t)n, deadline);
    mem_free(req);
    struct bbuf b = {.max = CAIRN_HTTP_HEAD_MAX + msg_max + 16};
    size_t hlen = 0;
    while (rc == 0 && hlen == 0) {
        rc = bbuf_reserve(&b, 4096);
        size_t got = 0;
        if (rc == 0) {
            rc = recv_some(&io, b.p + b.len, b.cap - 1 - b.len, deadline, &got);
        }
        if (rc == 0 && got == 0) {
            rc = CAIRN_E_UNAVAILABLE;
        }
        b.len += got;
        if (rc == 0) {
            hlen = head_end(b.p, b.len);
            if (hlen == 0 && b.len > CAIRN_HTTP_HEAD_MAX) {
                rc = CAIRN_E_BAD_RESPONSE;
            }
        }
    }
    int status = 0;
    if (rc == 0) {
        rc = parse_status(b.p, hlen, &status);
    }
    if (rc == 0 && status != 101) {
        set_err(eb, ebn, "upgrade refused: %.200s", (char *)b.p);
        if (eb != NULL) {
            char *nl = strpbrk(eb, "\r\n");
            if (nl != NULL) {
                *nl = 0;
            }
        }
        rc = status == 404 || status == 400 ? CAIRN_E_INVALID
                                            : CAIRN_E_BAD_RESPONSE;
    }
    if (rc == 0 && !accept_ok((const char *)b.p, hlen, key64)) {
        set_err(eb, ebn,
                "%s: the upgrade's Sec-WebSocket-Accept does not "
                "answer our key",
                ep);
        rc = CAIRN_E_BAD_RESPONSE;
    }
    if (rc != 0) {
        if (rc == CAIRN_E_UNAVAILABLE && (eb == NULL || eb[0] == 0)) {
            set_err(eb, ebn, "%s: connection lost during upgrade", ep);
        }
        mem_free(b.p);
        hio_close(&io);
        return rc;
    }
    memmove(b.p, b.p + hlen, b.len - hlen);
    ws->buf = b.p;
    ws->len = b.len - hlen;
    ws->cap = b.cap;
    ws->fd = io.fd;
    ws->ssl = io.ssl;
    return 0;
}

static int ws_send_frame(struct cairn__ws *ws, unsigned opcode, const void *p,
                         size_t n, int64_t timeout_ms)
{
    if (ws->fd < 0) {
        return CAIRN_E_CLOSED;
    }
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        hdr[h++] = (uint8_t)(0x80 | n);
    } else if (n <= 0xffff) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) {
            hdr[h++] = (uint8_t)((uint64_t)n >> (8 * i));
        }
    }
    uint32_t mk = (uint32_t)prng_next(&ws->prng);
    uint8_t m[4] = {(uint8_t)mk, (uint8_t)(mk >> 8), (uint8_t)(mk >> 16),
                    (uint8_t)(mk >> 24)};
    memcpy(hdr + h, m, 4);
    h += 4;
    uint8_t *frame = mem_alloc(h + n);
    if (frame == NULL) {
        return CAIRN_E_NOMEM;
    }
    memcpy(frame, hdr, h);
    const uint8_t *src = p;
    for (size_t i = 0; i < n; i++) {
        frame[h + i] = src[i] ^ m[i & 3];
    }
    uint64_t deadline = cairn__now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct hio io = {.fd = ws->fd, .ssl = ws->ssl};
    int rc = send_all(&io, frame, h + n, deadline);
    mem_free(frame);
    return rc;
}

int cairn__ws_send_text(struct cairn__ws *ws, const char *s, size_t n,
                        int64_t timeout_ms)
{
    if (s == NULL || timeout_ms <= 0) {
        return CAIRN_E_INVALID;
    }
    return ws_send_frame(ws, 1, s, n, timeout_ms);
}

/* One whole frame at the start of ws->buf: its parts, or 0 (need more). */
static int frame_parse(struct cairn__ws *ws, unsigned *op, bool *fin,
                       size_t *hlen, size_t *plen)
{
    const uint8_t *p = ws->buf;
    if (ws->len < 2) {
        return 0;
    }
    *fin = (p[0] & 0x80) != 0;
    *op = p[0] & 0x0f;
    if ((p[0] & 0x70) != 0) {
        return CAIRN_E_BAD_RESPONSE; /* no extension was negotiated */
    }
    bool masked = (p[1] & 0x80) != 0;
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (ws->len < 4) {
            return 0;
        }
        len = ((uint64_t)p[2] << 8) | p[3];
        h = 4;
    } else if (len == 127) {
        if (ws->len < 10) {
            return 0;
        }
        len = 0;
        for (int i = 0; i < 8; i++) {
            len = (len << 8) | p[2 + i];
        }
        h = 10;
    }
    if (len > ws->msg_max) {
        return CAIRN_E_TOO_BIG;
    }
    if (masked) {
        h += 4;
    }
    if (ws->len < h || ws->len - h < len) {
        return 0;
    }
    if (masked) {
        for (size_t i = 0; i < len; i++) {
            ws->buf[h + i] ^= p[h - 4 + (i & 3)];
        }
    }
    *hlen = h;
    *plen = (size_t)len;
    return 1;
}

int cairn__ws_recv(struct cairn__ws *ws, int64_t timeout_ms, char **msg,
                   size_t *len)
{
    *msg = NULL;
    *len = 0;
    if (ws->fd < 0) {
        return CAIRN_E_CLOSED;
    }
    uint64_t deadline = cairn__now_ns() +
                        (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000u;
    for (;;) {
        unsigned op = 0;
        bool fin = false;
        size_t h = 0, pl = 0;
        int r = frame_parse(ws, &op, &fin, &h, &pl);
        if (r < 0) {
            return r;
        }
        if (r > 0) {
            const uint8_t *pay = ws->buf + h;
            int rc = 0;
            bool done = false;
            if (op == 8) { /* close: answer it and end */
                ws_send_frame(ws, 8, pay, pl < 2 ? pl : 2, 200);
                rc = CAIRN_E_CLOSED;
            } else if (op == 9) {
                rc = ws_send_frame(ws, 10, pay, pl, 1000);
            } else if (op == 10) {
                /* pong: nothing */
            } else if (op == 1 || op == 2 || op == 0) {
                if ((op == 0) != ws->in_frag) {
                    rc = CAIRN_E_BAD_RESPONSE;
                } else if (ws->frag_len + pl > ws->msg_max) {
                    rc = CAIRN_E_TOO_BIG;
                } else {
                    uint8_t *nf = mem_realloc(ws->frag, ws->frag_len + pl + 1);
                    if (nf == NULL) {
                        rc = CAIRN_E_NOMEM;
                    } else {
                        ws->frag = nf;
                        memcpy(nf + ws->frag_len, pay, pl);
                        ws->frag_len += pl;
                        ws->in_frag = !fin;
                        done = fin;
                    }
                }
            } else {
                rc = CAIRN_E_BAD_RESPONSE;
            }
            memmove(ws->buf, ws->buf + h + pl, ws->len - h - pl);
            ws->len -= h + pl;
            if (rc != 0) {
                return rc;
            }
            if (done) {
                ws->frag[ws->frag_len] = 0;
                *msg = (char *)ws->frag;
                *len = ws->frag_len;
                ws->frag = NULL;
                ws->frag_len = 0;
                return 0;
            }
            continue;
        }
        if (ws->cap - ws->len < 4096) {
            struct bbuf b = {.p = ws->buf,
                             .len = ws->len,
                             .cap = ws->cap,
                             .max = ws->msg_max + 4096 + 16};
            int rc = bbuf_reserve(&b, 4096);
            ws->buf = b.p;
            ws->cap = b.cap;
            if (rc != 0) {
                return rc;
            }
        }
        size_t got = 0;
        struct hio io = {.fd = ws->fd, .wake = ws->wake, .ssl = ws->ssl};
        int rc = recv_some(&io, ws->buf + ws->len, ws->cap - ws->len, deadline,
                           &got);
        if (rc != 0) {
            return rc;
        }
        if (got == 0) {
            return CAIRN_E_CLOSED;
        }
        ws->len += got;
    }
}

void cairn__ws_close(struct cairn__ws *ws)
{
    if (ws == NULL) {
        return;
    }
    if (ws->fd >= 0) {
        uint8_t code[2] = {0x03, 0xe8}; /* 1000 */
        ws_send_frame(ws, 8, code, 2, 100);
        struct hio io = {.fd = ws->fd, .ssl = ws->ssl};
        hio_close(&io);
        ws->fd = -1;
        ws->ssl = NULL;
    }
    mem_free(ws->buf);
    mem_free(ws->frag);
    ws->buf = NULL;
    ws->frag = NULL;
    ws->len = ws->cap = ws->frag_len = 0;
    ws->in_frag = false;
}

/*
 * svc_probe.c - one active health probe on the libuv loop (svc_health_int.h).
 *
 * Happy path, TCP: [resolve the host on libuv's pool unless it is an IP
 * literal,] connect; a completed connect passes. HTTP (RFC 9112 section 3
 * and 4, spoken as HTTP/1.0 so the server closes after one answer):
 * connect, write "GET <path> HTTP/1.0" with Host, read until the first
 * line ends, and pass on a 2xx or 3xx status; the rest of the answer is
 * never read. HTTPS: the same request over TLS (OpenSSL on memory BIOs:
 * bytes read from the socket go into the session, what it has to send is
 * written out, so the loop never blocks and libuv keeps the socket),
 * with SNI and, unless tls_skip_verify, the chain verified against the
 * system's CAs and the host name (or IP) checked. gRPC: the health
 * service's Check over HTTP/2 with prior knowledge, the whole request in
 * one write, the answer read frame by frame (hc_grpc_feed); SERVING
 * passes. gRPC over TLS: the same inside the HTTPS path's session, which
 * offers h2 by ALPN. One deadline timer covers every step.
 *
 * Failure modes. Resolve, connect, write or read errors fail the probe
 * with the step and libuv's text; the deadline fails it with "timeout";
 * a line that is not a status line fails it; a TLS failure names
 * OpenSSL's reason ("tls: certificate: self-signed certificate",
 * "tls: certificate: hostname mismatch"). After the outcome (or a
 * cancel) the probe closes its timer and socket and cancels a resolve
 * still on the pool; its memory goes when the last of those completes, so
 * a late callback never touches freed memory (libuv design: handle memory
 * may be reused only after the close callback).
 */
#include "registry/services/svc_health_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"

#define REQ_MAX (HC_URL_MAX + SVC_HOST_MAX + 128)
_Static_assert(REQ_MAX >= HC_GRPC_REQ_MAX, "a gRPC request fits req");
#define TLS_RD_MAX 4096 /* ciphertext read per callback */

struct hc_tls {
    SSL_CTX *ctx;
};

/* One write of TLS output; frees itself when libuv is done with it. */
struct tls_wr {
    uv_write_t req; /* first: the callback gets it */
    char data[];
};

struct hc_probe {
    struct hc_target t;
    uint32_t timeout_ms;
    hc_probe_done_fn done;
    void *ctx;
    uv_timer_t timer;
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    uv_getaddrinfo_t gai;
    int handles;      /* open handles (timer, tcp) */
    bool gai_pending; /* a resolve is on the pool */
    bool finished;    /* the outcome is decided (or cancelled) */
    bool canceled;
    char early[HC_OUTPUT_MAX]; /* a failure found in start, told later */
    char req[REQ_MAX];
    size_t req_len;
    char line[HC_STATUS_LINE_MAX];
    size_t line_len;
    SSL *ssl; /* HTTPS: the session and its two memory BIOs */
    BIO *rb;  /* ciphertext in (owned by ssl) */
    BIO *wb;  /* ciphertext out (owned by ssl) */
    bool hs_done;
    char rbuf[TLS_RD_MAX];
    struct hc_grpc grpc; /* HC_GRPC(S): the answer's reader */
    uv_write_t ackw;     /* HC_GRPC: the SETTINGS acknowledgement */
    bool acked;
};

/* An HTTP/2 SETTINGS frame with ACK, the answer to the server's. */
static const uint8_t h2_settings_ack[9] = {0, 0, 0, 4, 1, 0, 0, 0, 0};

static bool is_tls(const struct hc_probe *p)
{
    return p->t.type == HC_HTTPS || p->t.type == HC_GRPCS;
}

static bool is_grpc(const struct hc_probe *p)
{
    return p->t.type == HC_GRPC || p->t.type == HC_GRPCS;
}

/* ------------------------------------------------------------ parsing */

int hc_url_parse(const char *url, struct hc_target *out)
{
    const char *p, *hend, *pstart;
    size_t n;
    memset(out, 0, sizeof(*out));
    out->type = HC_HTTP;
    out->port = 80;
    if (url == NULL || strlen(url) >= HC_URL_MAX) {
        return ERR_INVALID;
    }
    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        out->type = HC_HTTPS;
        out->port = 443;
        p = url + 8;
    } else {
        return ERR_INVALID;
    }
    pstart = p + strcspn(p, "/?#");
    if (memchr(p, '@', (size_t)(pstart - p)) != NULL) {
        return ERR_INVALID; /* userinfo: not ours to send */
    }
    if (*p == '[') {
        hend = memchr(p, ']', (size_t)(pstart - p));
        if (hend == NULL) {
            return ERR_INVALID;
        }
        n = (size_t)(hend - p - 1);
        p++;
        hend++;
    } else {
        hend = memchr(p, ':', (size_t)(pstart - p));
        hend = hend != NULL ? hend : pstart;
        n = (size_t)(hend - p);
    }
    if (n == 0 || n > SVC_HOST_MAX) {
        return ERR_INVALID;
    }
    memcpy(out->host, p, n);
    out->host[n] = '\0';
    if (*hend == ':') {
        char *end = NULL;
        long v = strtol(hend + 1, &end, 10);
        if (end == hend + 1 || end != pstart || v < 1 || v > 65535) {
            return ERR_INVALID;
        }
        out->port = (int)v;
    } else if (hend != pstart) {
        return ERR_INVALID;
    }
    n = strcspn(pstart, "#");
    if (n == 0 || *pstart != '/') {
        /* "http://h" or "http://h?q": the path is "/" (+ the query) */
        snprintf(out->path, sizeof(out->path), "/%.*s", (int)n, pstart);
    } else {
        memcpy(out->path, pstart, n);
        out->path[n] = '\0';
    }
    for (const char *c = out->path; *c != '\0'; c++) {
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            return ERR_INVALID; /* would break the request line */
        }
    }
    return 0;
}

int hc_status_parse(const char *line, size_t n, int *code)
{
    /* "HTTP/" DIGIT "." DIGIT SP 3DIGIT (RFC 9112 section 4) */
    if (n < 12 || memcmp(line, "HTTP/", 5) != 0 || line[6] != '.' ||
        line[8] != ' ') {
        return ERR_INVALID;
    }
    int v = 0;
    for (size_t i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9') {
            return ERR_INVALID;
        }
        v = v * 10 + (line[i] - '0');
    }
    if (v < 100 ||
        (n > 12 && line[12] != ' ' && line[12] != '\r' && line[12] != '\n')) {
        return ERR_INVALID;
    }
    *code = v;
    return 0;
}

/* ---------------------------------------------------------- lifecycle */

static void maybe_free(struct hc_probe *p)
{
    ASSERT(p->handles >= 0);
    if (p->handles == 0 && !p->gai_pending) {
        mem_free(p);
    }
}

static void on_closed(uv_handle_t *h)
{
    struct hc_probe *p = h->data;
    p->handles--;
    maybe_free(p);
}

/* Stop everything in flight; memory goes when the last piece returns. */
static void teardown(struct hc_probe *p)
{
    ASSERT(p->finished);
    if (p->ssl != NULL) {
        SSL_free(p->ssl); /* and its BIOs; writes in flight own copies */
        p->ssl = NULL;
    }
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_closed);
    uv_close((uv_handle_t *)&p->tcp, on_closed);
    if (p->gai_pending) {
        uv_cancel((uv_req_t *)&p->gai); /* if it fails, the result comes */
    }
}

static void finish(struct hc_probe *p, bool ok, const char *output)
{
    if (p->finished) {
        return;
    }
    p->finished = true;
    if (!p->canceled) {
        p->done(p->ctx, ok, output);
    }
    teardown(p);
}

static void fail_uv(struct hc_probe *p, const char *step, int err)
{
    char out[HC_OUTPUT_MAX];
    snprintf(out, sizeof(out), "%s: %s", step, uv_strerror(err));
    finish(p, false, out);
}

void hc_probe_cancel(struct hc_probe *p)
{
    ASSERT(p != NULL);
    ASSERT(!p->finished);
    p->canceled = true;
    finish(p, false, NULL);
}

/* -------------------------------------------------------------- steps */

static void on_timeout(uv_timer_t *t)
{
    struct hc_probe *p = t->data;
    char out[HC_OUTPUT_MAX];
    if (p->early[0] != '\0') {
        finish(p, false, p->early);
        return;
    }
    snprintf(out, sizeof(out), "timeout after %u ms", p->timeout_ms);
    finish(p, false, out);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct hc_probe *p = h->data;
    (void)hint;
    if (is_tls(p) || is_grpc(p)) {
        b->base = p->rbuf;
        b->len = sizeof(p->rbuf);
        return;
    }
    ASSERT(p->line_len <= sizeof(p->line));
    b->base = p->line + p->line_len;
    b->len = sizeof(p->line) - p->line_len;
}

static void status_line_done(struct hc_probe *p)
{
    char out[HC_OUTPUT_MAX];
    int code = 0;
    if (hc_status_parse(p->line, p->line_len, &code) != 0) {
        finish(p, false, "not an HTTP status line");
        return;
    }
    snprintf(out, sizeof(out), "HTTP %d", code);
    finish(p, code >= 200 && code < 400, out);
}

/* ------------------------------------------------------------------ TLS */

static void on_tls_write(uv_write_t *w, int status)
{
    struct hc_probe *p = w->handle->data; /* alive: closing waits for us */
    mem_free(w);
    if (!p->finished && status < 0) {
        fail_uv(p, "write", status);
    }
}

/* Send what the session has queued (handshake records, the request). */
static void tls_flush(struct hc_probe *p)
{
    for (int guard = 0;; guard++) { /* each pass drains what it saw */
        size_t n = BIO_ctrl_pending(p->wb);
        struct tls_wr *w;
        uv_buf_t b;
        ASSERT(guard < 64);
        if (n == 0) {
            return;
        }
        w = mem_alloc(sizeof(*w) + n);
        if (w == NULL) {
            finish(p, false, "tls: out of memory");
            return;
        }
        int got = BIO_read(p->wb, w->data, (int)n);
        ASSERT(got == (int)n); /* a memory BIO gives what it holds */
        b = uv_buf_init(w->data, (unsigned)n);
        int rc = uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_tls_write);
        if (rc != 0) {
            mem_free(w);
            fail_uv(p, "write", rc);
            return;
        }
    }
}

static void tls_fail(struct hc_probe *p)
{
    char out[HC_OUTPUT_MAX];
    /* with verification off the result may hold an error that did not
     * fail the handshake: then it is not the reason */
    long vr = p->t.tls_skip_verify ? X509_V_OK : SSL_get_verify_result(p->ssl);
    unsigned long e = ERR_peek_last_error();
    if (vr != X509_V_OK) {
        snprintf(out, sizeof(out), "tls: certificate: %s",
                 X509_verify_cert_error_string(vr));
    } else if (e != 0) {
        snprintf(out, sizeof(out), "tls: %s", ERR_reason_error_string(e));
    } else {
        snprintf(out, sizeof(out), "tls: handshake failed");
    }
    ERR_clear_error();
    finish(p, false, out);
}

/* gRPC over TLS: the plaintext there is goes to the answer's reader, a
 * piece of line at a time (line is free: no status line here). */
static void grpc_tls_read(struct hc_probe *p)
{
    char out[HC_OUTPUT_MAX];
    for (int guard = 0; guard < 1024; guard++) { /* >= 1 byte a pass */
        int r = SSL_read(p->ssl, p->line, (int)sizeof(p->line));
        if (r <= 0) {
            int e = SSL_get_error(p->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN) {
                finish(p, false,
                       "the server closed the connection before "
                       "a health answer");
                return;
            }
            if (e != SSL_ERROR_WANT_READ) {
                tls_fail(p);
                return;
            }
            break;
        }
        int v = hc_grpc_feed(&p->grpc, (const uint8_t *)p->line, (size_t)r, out,
                             sizeof(out));
        if (v != 0) {
            finish(p, v > 0, out);
            return;
        }
        if (p->grpc.ack_due && !p->acked) {
            p->acked = true;
            if (SSL_write(p->ssl, h2_settings_ack, sizeof(h2_settings_ack)) !=
                (int)sizeof(h2_settings_ack)) {
                tls_fail(p);
                return;
            }
        }
    }
    tls_flush(p);
}

/* Move the session on: finish the handshake, send the request once, read
 * plaintext into the status line (gRPC: into the answer's reader). Runs after
 * each read and after the connect; ends with the session's output flushed (or
 * the probe done). */
static void tls_pump(struct hc_probe *p)
{
    int r;
    ERR_clear_error(); /* the queue is per thread; others use it too */
    if (!p->hs_done) {
        r = SSL_do_handshake(p->ssl);
        if (r != 1) {
            int e = SSL_get_error(p->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                tls_fail(p);
                return;
            }
            tls_flush(p);
            return;
        }
        p->hs_done = true;
        /* into a memory BIO: all of it or an error, never a partial */
        if (SSL_write(p->ssl, p->req, (int)p->req_len) != (int)p->req_len) {
            tls_fail(p);
            return;
        }
    }
    if (is_grpc(p)) {
        grpc_tls_read(p);
        return;
    }
    while (p->line_len < sizeof(p->line)) { /* each pass adds >= 1 byte */
        r = SSL_read(p->ssl, p->line + p->line_len,
                     (int)(sizeof(p->line) - p->line_len));
        if (r <= 0) {
            int e = SSL_get_error(p->ssl, r);
            if (e == SSL_ERROR_ZERO_RETURN && p->line_len > 0) {
                status_line_done(p); /* close_notify after a short answer */
                return;
            }
            if (e != SSL_ERROR_WANT_READ) {
                tls_fail(p);
                return;
            }
            break;
        }
        p->line_len += (size_t)r;
        if (memchr(p->line, '\n', p->line_len) != NULL ||
            p->line_len == sizeof(p->line)) {
            status_line_done(p);
            return;
        }
    }
    tls_flush(p);
}

static bool is_ip(const char *host)
{
    unsigned char b[16];
    return inet_pton(AF_INET, host, b) == 1 ||
           inet_pton(AF_INET6, host, b) == 1;
}

/* Set up the session (SNI, verification); it says hello once connected.
 * The session holds its own reference to tls's context. */
static int tls_begin(struct hc_probe *p, struct hc_tls *tls)
{
    ASSERT(tls != NULL && p->ssl == NULL);
    ERR_clear_error();
    p->ssl = SSL_new(tls->ctx);
    p->rb = BIO_new(BIO_s_mem());
    p->wb = BIO_new(BIO_s_mem());
    if (p->ssl == NULL || p->rb == NULL || p->wb == NULL) {
        BIO_free(p->rb);
        BIO_free(p->wb);
        SSL_free(p->ssl);
        p->ssl = NULL;
        return -ENOMEM;
    }
    SSL_set_bio(p->ssl, p->rb, p->wb); /* the session owns them now */
    SSL_set_connect_state(p->ssl);
    bool ip = is_ip(p->t.host);
    int ok = ip ? 1 : SSL_set_tlsext_host_name(p->ssl, p->t.host);
    /* gRPC servers refuse a TLS client that does not offer h2 (ALPN;
     * SSL_set_alpn_protos returns 0 on success) */
    if (ok == 1 && is_grpc(p) &&
        SSL_set_alpn_protos(p->ssl, (const unsigned char *)"\x02h2", 3) != 0) {
        ok = 0;
    }
    if (p->t.tls_skip_verify) {
        SSL_set_verify(p->ssl, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_set_verify(p->ssl, SSL_VERIFY_PEER, NULL);
        ok = ok && (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(p->ssl),
                                                       p->t.host)
                       : SSL_set1_host(p->ssl, p->t.host));
    }
    if (ok != 1) {
        ERR_clear_error();
        return ERR_INVALID;
    }
    return 0;
}

/* --------------------------------------------------------------- gRPC */

#define H2_DATA          0x0
#define H2_HEADERS       0x1
#define H2_RST_STREAM    0x3
#define H2_SETTINGS      0x4
#define H2_GOAWAY        0x7
#define H2_END_STREAM    0x1
#define H2_ACK           0x1
#define H2_END_HEADERS   0x4
#define H2_PADDED        0x8
#define H2_FRAME_MAX     16384 /* SETTINGS_MAX_FRAME_SIZE's default */
#define GRPC_HEALTH_PATH "/grpc.health.v1.Health/Check"

static size_t h2_frame_head(uint8_t *p, size_t len, uint8_t type, uint8_t flags,
                            uint32_t stream)
{
    p[0] = (uint8_t)(len >> 16);
    p[1] = (uint8_t)(len >> 8);
    p[2] = (uint8_t)len;
    p[3] = type;
    p[4] = flags;
    p[5] = (uint8_t)(stream >> 24);
    p[6] = (uint8_t)(stream >> 16);
    p[7] = (uint8_t)(stream >> 8);
    p[8] = (uint8_t)stream;
    return 9;
}

/* An HPACK string literal, not Huffman-coded (RFC 7541 5.2): the length
 * as an integer with a 7-bit prefix (5.1), then the bytes. */
static size_t hpack_str(uint8_t *p, const char *s, size_t n)
{
    size_t o = 0;
    if (n < 127) {
        p[o++] = (uint8_t)n;
    } else {
        size_t v = n - 127;
        p[o++] = 127;
        while (v >= 128) {
            p[o++] = (uint8_t)(0x80 | (v & 0x7f));
            v >>= 7;
        }
        p[o++] = (uint8_t)v;
    }
    memcpy(p + o, s, n);
    return o + n;
}

size_t hc_grpc_request(const struct hc_target *t, uint8_t *out, size_t cap)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    char auth[SVC_HOST_MAX + 16];
    bool v6 = strchr(t->host, ':') != NULL;
    int an = snprintf(auth, sizeof(auth), "%s%s%s:%d", v6 ? "[" : "", t->host,
                      v6 ? "]" : "", t->port);
    size_t sn = strnlen(t->path, HC_GRPC_SERVICE_MAX);
    size_t o = 0;
    ASSERT(an > 0 && (size_t)an < sizeof(auth));
    ASSERT(cap >= HC_GRPC_REQ_MAX);
    (void)cap;
    memcpy(out, preface, sizeof(preface) - 1);
    o += sizeof(preface) - 1;
    o += h2_frame_head(out + o, 0, H2_SETTINGS, 0, 0); /* our defaults */
    /* HEADERS on stream 1: indexed fields from the static table (RFC 7541
     * appendix A) where the whole field is there, else literals without
     * indexing (so nothing enters either side's dynamic table). */
    size_t hh = o;
    o += 9;
    out[o++] = 0x83;                              /* :method: POST */
    out[o++] = t->type == HC_GRPCS ? 0x87 : 0x86; /* :scheme: https | http */
    out[o++] = 0x04;                              /* :path, literal value */
    o += hpack_str(out + o, GRPC_HEALTH_PATH, sizeof(GRPC_HEALTH_PATH) - 1);
    out[o++] = 0x01; /* :authority, literal value */
    o += hpack_str(out + o, auth, (size_t)an);
    out[o++] = 0x0f; /* content-type (index 31 = 15 + 16) */
    out[o++] = 0x10;
    o += hpack_str(out + o, "application/grpc", 16);
    out[o++] = 0x0f; /* user-agent (index 58 = 15 + 43) */
    out[o++] = 0x2b;
    o += hpack_str(out + o, "cairn-health/1", 14);
    out[o++] = 0x00; /* te: trailers, both literal */
    o += hpack_str(out + o, "te", 2);
    o += hpack_str(out + o, "trailers", 8);
    (void)h2_frame_head(out + hh, o - hh - 9, H2_HEADERS, H2_END_HEADERS, 1);
    /* DATA: one uncompressed gRPC message, HealthCheckRequest{service}
     * (field 1, omitted when empty), and the end of our side. */
    size_t pb = sn > 0 ? 1 + (sn < 128 ? 1 : 2) + sn : 0;
    o += h2_frame_head(out + o, 5 + pb, H2_DATA, H2_END_STREAM, 1);
    out[o++] = 0; /* not compressed */
    out[o++] = 0;
    out[o++] = 0;
    out[o++] = (uint8_t)(pb >> 8);
    out[o++] = (uint8_t)pb;
    if (sn > 0) {
        out[o++] = 0x0a; /* field 1, length-delimited */
        if (sn < 128) {
            out[o++] = (uint8_t)sn;
        } else {
            out[o++] = (uint8_t)(0x80 | (sn & 0x7f));
            out[o++] = (uint8_t)(sn >> 7);
        }
        memcpy(out + o, t->path, sn);
        o += sn;
    }
    ASSERT(o <= HC_GRPC_REQ_MAX);
    return o;
}

static int grpc_verdict(int v, char *out, size_t out_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int grpc_verdict(int v, char *out, size_t out_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, out_len, fmt, ap);
    va_end(ap);
    return v;
}

/* The first gRPC message of stream 1, once it is all in (or as much of it
 * as msg keeps): HealthCheckResponse's status (field 1, a varint). */
static int grpc_message(const struct hc_grpc *g, bool ended, char *out,
                        size_t out_len)
{
    static const char *const names[] = {"UNKNOWN", "SERVING", "NOT_SERVING",
                                        "SERVICE_UNKNOWN"};
    if (g->msg_len < 5) {
        return ended ? grpc_verdict(-1, out, out_len,
                                    "the call ended inside its answer")
                     : 0;
    }
    if (g->msg[0] != 0) {
        return grpc_verdict(-1, out, out_len,
                            "a compressed answer (none was offered)");
    }
    uint32_t mlen = (uint32_t)g->msg[1] << 24 | (uint32_t)g->msg[2] << 16 |
                    (uint32_t)g->msg[3] << 8 | g->msg[4];
    size_t have = g->msg_len - 5;
    size_t want = mlen < sizeof(g->msg) - 5 ? mlen : sizeof(g->msg) - 5;
    if (have < want) {
        return ended ? grpc_verdict(-1, out, out_len,
                                    "the call ended inside its answer")
                     : 0;
    }
    /* field 1 (tag 0x08) comes first in what every gRPC library writes;
     * absent, the status is its default, UNKNOWN */
    uint64_t status = 0;
    const uint8_t *m = g->msg + 5;
    if (want >= 2 && m[0] == 0x08) {
        unsigned shift = 0;
        for (size_t i = 1; i < want && shift < 64; i++, shift += 7) {
            status |= (uint64_t)(m[i] & 0x7f) << shift;
            if ((m[i] & 0x80) == 0) {
                break;
            }
        }
    }
    if (status == 1) {
        return grpc_verdict(1, out, out_len, "status SERVING");
    }
    if (status < 4) {
        return grpc_verdict(-1, out, out_len, "status %s", names[status]);
    }
    return grpc_verdict(-1, out, out_len, "status %llu",
                        (unsigned long long)status);
}

/* The current frame is complete (header and payload). */
static int grpc_frame_end(struct hc_grpc *g, char *out, size_t out_len)
{
    g->hdr_len = 0;
    switch (g->type) {
    case H2_SETTINGS:
        if (g->stream == 0 && (g->flags & H2_ACK) == 0) {
            g->ack_due = true;
        }
        return 0;
    case H2_DATA:
        if (g->stream != 1) {
            return 0;
        }
        return grpc_message(g, (g->flags & H2_END_STREAM) != 0, out, out_len);
    case H2_HEADERS:
        if (g->stream == 1 && (g->flags & H2_END_STREAM) != 0) {
            return grpc_verdict(-1, out, out_len,
                                "the call ended without a health "
                                "answer (unknown service?)");
        }
        return 0;
    case H2_RST_STREAM:
        return g->stream == 1
                   ? grpc_verdict(-1, out, out_len, "the server reset the call")
                   : 0;
    case H2_GOAWAY:
        return grpc_verdict(-1, out, out_len,
                            "the server closed the connection (GOAWAY)");
    default:
        return 0;
    }
}

int hc_grpc_feed(struct hc_grpc *g, const uint8_t *p, size_t n, char *out,
                 size_t out_len)
{
    int rc;
    while (n > 0) {
        if (g->hdr_len < sizeof(g->hdr)) {
            size_t k = sizeof(g->hdr) - g->hdr_len;
            k = k < n ? k : n;
            memcpy(g->hdr + g->hdr_len, p, k);
            g->hdr_len += k;
            p += k;
            n -= k;
            if (g->hdr_len < sizeof(g->hdr)) {
                return 0;
            }
            uint32_t len = (uint32_t)g->hdr[0] << 16 |
                           (uint32_t)g->hdr[1] << 8 | g->hdr[2];
            g->type = g->hdr[3];
            g->flags = g->hdr[4];
            g->stream = ((uint32_t)g->hdr[5] << 24 | (uint32_t)g->hdr[6] << 16 |
                         (uint32_t)g->hdr[7] << 8 | g->hdr[8]) &
                        0x7fffffffu;
            if (len > H2_FRAME_MAX) {
                return grpc_verdict(-1, out, out_len,
                                    "a frame of %u bytes (the most "
                                    "allowed is %d): not an HTTP/2 gRPC "
                                    "server?",
                                    len, H2_FRAME_MAX);
            }
            g->left = len;
            g->pad = 0;
            g->pad_next = g->type == H2_DATA && (g->flags & H2_PADDED) != 0;
            if (g->pad_next && len == 0) {
                return grpc_verdict(-1, out, out_len,
                                    "a padded DATA frame without its "
                                    "pad length");
            }
            if (len == 0 && (rc = grpc_frame_end(g, out, out_len)) != 0) {
                return rc;
            }
            continue;
        }
        size_t k = g->left < n ? g->left : n;
        bool data = g->type == H2_DATA && g->stream == 1;
        for (size_t i = 0; data && i < k; i++) {
            uint32_t left = g->left - (uint32_t)i; /* this byte included */
            if (g->pad_next) {
                g->pad_next = false;
                g->pad = p[i];
                if (g->pad > left - 1) {
                    return grpc_verdict(-1, out, out_len,
                                        "DATA padding longer than its "
                                        "frame");
                }
            } else if (left > g->pad && g->msg_len < sizeof(g->msg)) {
                g->msg[g->msg_len++] = p[i];
            }
        }
        g->left -= (uint32_t)k;
        p += k;
        n -= k;
        if (g->left == 0 && (rc = grpc_frame_end(g, out, out_len)) != 0) {
            return rc;
        }
    }
    return 0;
}

static void on_ack_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status; /* a failed write shows as a failed read */
}

static void grpc_read(struct hc_probe *p, ssize_t nread)
{
    char out[HC_OUTPUT_MAX];
    if (nread < 0) {
        if (nread == UV_EOF) {
            finish(p, false,
                   "the server closed the connection before "
                   "a health answer");
        } else {
            fail_uv(p, "read", (int)nread);
        }
        return;
    }
    ASSERT((size_t)nread <= sizeof(p->rbuf));
    int v = hc_grpc_feed(&p->grpc, (const uint8_t *)p->rbuf, (size_t)nread, out,
                         sizeof(out));
    if (v != 0) {
        finish(p, v > 0, out);
        return;
    }
    if (p->grpc.ack_due && !p->acked) {
        /* once: a server's later SETTINGS wait for the probe's end */
        uv_buf_t b =
            uv_buf_init((char *)h2_settings_ack, sizeof(h2_settings_ack));
        p->acked = true;
        p->ackw.data = p;
        int rc =
            uv_write(&p->ackw, (uv_stream_t *)&p->tcp, &b, 1, on_ack_written);
        if (rc != 0) {
            fail_uv(p, "write", rc);
        }
    }
}

/* --------------------------------------------------------------- reads */

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct hc_probe *p = s->data;
    (void)b;
    if (p->finished) {
        return;
    }
    if (nread > 0 && is_tls(p)) {
        ASSERT((size_t)nread <= sizeof(p->rbuf));
        if (BIO_write(p->rb, p->rbuf, (int)nread) != (int)nread) {
            finish(p, false, "tls: out of memory");
            return;
        }
        tls_pump(p);
        return;
    }
    if (nread < 0 && is_tls(p) && !p->hs_done) {
        fail_uv(p, "tls handshake", (int)nread);
        return;
    }
    if (is_grpc(p)) {
        grpc_read(p, nread);
        return;
    }
    if (nread < 0) {
        if (nread == UV_EOF && p->line_len > 0) {
            status_line_done(p); /* a short answer without a newline */
        } else {
            fail_uv(p, "read", (int)nread);
        }
        return;
    }
    ASSERT((size_t)nread <= sizeof(p->line) - p->line_len);
    p->line_len += (size_t)nread;
    if (memchr(p->line, '\n', p->line_len) != NULL ||
        p->line_len == sizeof(p->line)) {
        status_line_done(p);
    }
}

static void on_write(uv_write_t *w, int status)
{
    struct hc_probe *p = w->data;
    if (p->finished) {
        return;
    }
    if (status < 0) {
        fail_uv(p, "write", status);
    }
}

/* The connection's two ends are one address: it reached itself. */
static bool self_connected(const uv_tcp_t *t)
{
    struct sockaddr_storage a, b;
    int an = sizeof(a), bn = sizeof(b);
    if (uv_tcp_getsockname(t, (struct sockaddr *)&a, &an) != 0 ||
        uv_tcp_getpeername(t, (struct sockaddr *)&b, &bn) != 0) {
        return false;
    }
    return an == bn && memcmp(&a, &b, (size_t)an) == 0;
}

static void on_connect(uv_connect_t *c, int status)
{
    struct hc_probe *p = c->data;
    uv_buf_t b;
    int rc;
    if (p->finished) {
        return; /* closed under it: UV_ECANCELED */
    }
    if (status < 0) {
        fail_uv(p, "connect", status);
        return;
    }
    if (self_connected(&p->tcp)) {
        /* nothing listens on a port of the ephemeral range, and the
         * kernel picked that very port as our source: a TCP
         * simultaneous open with ourselves, not a server */
        finish(p, false, "connect: nothing listens (connected to itself)");
        return;
    }
    if (p->t.type == HC_TCP) {
        finish(p, true, "TCP connect ok");
        return;
    }
    if (is_tls(p)) {
        rc = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
        if (rc != 0) {
            fail_uv(p, "read", rc);
            return;
        }
        tls_pump(p); /* the ClientHello */
        return;
    }
    b = uv_buf_init(p->req, (unsigned)p->req_len);
    p->wr.data = p;
    rc = uv_write(&p->wr, (uv_stream_t *)&p->tcp, &b, 1, on_write);
    if (rc == 0) {
        rc = uv_read_start((uv_stream_t *)&p->tcp, on_alloc, on_read);
    }
    if (rc != 0) {
        fail_uv(p, "write", rc);
    }
}

static int connect_to(struct hc_probe *p, const struct sockaddr *sa)
{
    p->conn.data = p;
    return uv_tcp_connect(&p->conn, &p->tcp, sa, on_connect);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
    struct hc_probe *p = g->data;
    int rc;
    p->gai_pending = false;
    if (p->finished) {
        uv_freeaddrinfo(res);
        maybe_free(p);
        return;
    }
    if (status < 0 || res == NULL) {
        uv_freeaddrinfo(res);
        fail_uv(p, "resolve", status < 0 ? status : UV_EAI_NONAME);
        return;
    }
    rc = connect_to(p, res->ai_addr);
    uv_freeaddrinfo(res);
    if (rc != 0) {
        fail_uv(p, "connect", rc);
    }
}

#ifdef CAIRN_FUZZ
static bool fuzz_loopback(const char *host, int port)
{
    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    static const uint8_t lo6[16] = {[15] = 1};
    if (uv_ip4_addr(host, port, &a4) == 0) {
        return (ntohl(a4.sin_addr.s_addr) >> 24) == 127;
    }
    if (uv_ip6_addr(host, port, &a6) == 0) {
        return memcmp(&a6.sin6_addr, lo6, 16) == 0;
    }
    return false;
}
#endif

/* Connect to a literal address, or resolve the name first. A failure here
 * is told from the timer, so done never runs inside hc_probe_start. */
static void begin(struct hc_probe *p, uv_loop_t *loop)
{
    struct sockaddr_storage ss;
    char port[8];
    struct addrinfo hints;
    int rc;
#ifdef CAIRN_FUZZ
    /* The fuzz targets register instances whose checks name whatever
     * the fuzzer wrote; their probes must stay on this host (no DNS
     * query, no packet off loopback), so only loopback literals are
     * probed there. Release builds never compile this. */
    if (!fuzz_loopback(p->t.host, p->t.port)) {
        snprintf(p->early, sizeof(p->early),
                 "connect: fuzz build probes loopback literals only");
        return;
    }
#endif
    if (uv_ip4_addr(p->t.host, p->t.port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(p->t.host, p->t.port, (struct sockaddr_in6 *)&ss) == 0) {
        rc = connect_to(p, (const struct sockaddr *)&ss);
        if (rc != 0) {
            snprintf(p->early, sizeof(p->early), "connect: %s",
                     uv_strerror(rc));
        }
        return;
    }
    snprintf(port, sizeof(port), "%d", p->t.port);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    p->gai.data = p;
    rc = uv_getaddrinfo(loop, &p->gai, on_resolved, p->t.host, port, &hints);
    if (rc != 0) {
        snprintf(p->early, sizeof(p->early), "resolve: %s", uv_strerror(rc));
        return;
    }
    p->gai_pending = true;
}

static size_t request_build(const struct hc_target *t, char *out, size_t cap)
{
    bool v6 = strchr(t->host, ':') != NULL;
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.0\r\nHost: %s%s%s:%d\r\n"
                     "User-Agent: cairn-health/1\r\nAccept: */*\r\n"
                     "Connection: close\r\n\r\n",
                     t->path, v6 ? "[" : "", t->host, v6 ? "]" : "", t->port);
    ASSERT(n > 0 && (size_t)n < cap); /* REQ_MAX covers path + host */
    return (size_t)n;
}

int hc_tls_new(struct hc_tls **out)
{
    struct hc_tls *t = mem_calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL ||
        SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(t->ctx);
        mem_free(t);
        ERR_clear_error();
        return ERR_INVALID;
    }
    /* No CAs found is not an error here: verification then fails with
     * a reason in the check's output ("unable to get local issuer"). */
    (void)SSL_CTX_set_default_verify_paths(t->ctx);
    ERR_clear_error();
    *out = t;
    return 0;
}

void hc_tls_free(struct hc_tls *tls)
{
    if (tls != NULL) {
        SSL_CTX_free(tls->ctx); /* sessions still open hold a reference */
        mem_free(tls);
    }
}

int hc_probe_start(uv_loop_t *loop, const struct hc_target *t,
                   uint32_t timeout_ms, struct hc_tls *tls,
                   hc_probe_done_fn done, void *ctx, struct hc_probe **out)
{
    struct hc_probe *p;
    int rc;
    ASSERT(done != NULL);
    ASSERT(timeout_ms > 0);
    if (t->port < 1 || t->port > 65535 || t->host[0] == '\0' ||
        ((t->type == HC_HTTPS || t->type == HC_GRPCS) && tls == NULL)) {
        return ERR_INVALID;
    }
    p = mem_calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    p->t = *t;
    p->timeout_ms = timeout_ms;
    p->done = done;
    p->ctx = ctx;
    if (t->type == HC_HTTP || t->type == HC_HTTPS) {
        p->req_len = request_build(t, p->req, sizeof(p->req));
    } else if (t->type == HC_GRPC || t->type == HC_GRPCS) {
        p->req_len = hc_grpc_request(t, (uint8_t *)p->req, sizeof(p->req));
    }
    if ((t->type == HC_HTTPS || t->type == HC_GRPCS) &&
        (rc = tls_begin(p, tls)) != 0) {
        mem_free(p);
        return rc;
    }
    rc = uv_tcp_init(loop, &p->tcp);
    if (rc != 0) {
        SSL_free(p->ssl);
        mem_free(p);
        return rc;
    }
    uv_timer_init(loop, &p->timer); /* cannot fail on unix */
    p->tcp.data = p;
    p->timer.data = p;
    p->handles = 2;
    begin(p, loop);
    uv_timer_start(&p->timer, on_timeout, p->early[0] != '\0' ? 0 : timeout_ms,
                   0);
    *out = p;
    return 0;
}

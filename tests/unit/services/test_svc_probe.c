/*
 * test_svc_probe.c - the health prober's parsers (svc_health_int.h).
 *
 * Goal: check URLs split into host, port and path the way the probe sends
 * them, and anything that would break the request line or that we do not
 * speak (userinfo, a bad port, other schemes) is refused; https URLs say
 * so and default to port 443; status lines give their
 * code and anything else is refused. Method: table-driven calls of
 * hc_url_parse and hc_status_parse. No sockets, no loop.
 *
 * gRPC health checks: the request's bytes are what an HTTP/2 peer reads
 * (frame headers, a header block that nghttp2's own HPACK decoder turns
 * into the fields a gRPC server needs, the HealthCheckRequest message);
 * the answer's reader gives the same verdict whether the bytes come at
 * once or one at a time, passes only SERVING and names every other end
 * (other statuses, trailers without a message, resets, GOAWAY, padding
 * that lies, oversized frames, compression, a message cut short).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>

#include "base/err.h"
#include "registry/services/svc_health_int.h"

static void url_forms_split_into_host_port_path(void **state)
{
    static const struct {
        const char *url, *host, *path;
        int port;
    } ok[] = {
        {"http://127.0.0.1:8080/health", "127.0.0.1", "/health", 8080},
        {"http://svc.local/", "svc.local", "/", 80},
        {"http://svc.local", "svc.local", "/", 80},
        {"http://h:1?x=1", "h", "/?x=1", 1},
        {"http://h/a/b?c=d#frag", "h", "/a/b?c=d", 80},
        {"http://[::1]:9000/ping", "::1", "/ping", 9000},
        {"http://[fe80::1]/", "fe80::1", "/", 80},
        {"https://svc.local/health", "svc.local", "/health", 443},
        {"https://127.0.0.1:8443", "127.0.0.1", "/", 8443},
        {"https://[::1]:9443/x", "::1", "/x", 9443},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct hc_target t;
        assert_int_equal(hc_url_parse(ok[i].url, &t), 0);
        assert_int_equal(t.type, strncmp(ok[i].url, "https", 5) == 0 ? HC_HTTPS
                                                                     : HC_HTTP);
        assert_string_equal(t.host, ok[i].host);
        assert_string_equal(t.path, ok[i].path);
        assert_int_equal(t.port, ok[i].port);
    }
}

static void url_refusals(void **state)
{
    static const char *const bad[] = {
        "https://",       "http://",      "http:///x",      "http://h:0/",
        "http://h:65536", "http://h:x/",  "http://h:80:90", "http://u@h/",
        "http://[::1/",   "http://h/a b", "ftp://h/",       "http://[::1]x/",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct hc_target t;
        assert_int_equal(hc_url_parse(bad[i], &t), ERR_INVALID);
    }
    assert_int_equal(hc_url_parse(NULL, &(struct hc_target){0}), ERR_INVALID);
    char big[HC_URL_MAX + 16];
    memset(big, 'a', sizeof(big));
    memcpy(big, "http://h/", 9);
    big[sizeof(big) - 1] = '\0';
    struct hc_target t;
    assert_int_equal(hc_url_parse(big, &t), ERR_INVALID); /* at the bound */
}

static void status_lines(void **state)
{
    static const struct {
        const char *line;
        int code; /* 0: refused */
    } t[] = {
        {"HTTP/1.0 200 OK\r\n", 200},
        {"HTTP/1.1 302 Found\r\n", 302},
        {"HTTP/1.1 503 Service Unavailable\r\n", 503},
        {"HTTP/1.1 204\r\n", 204},
        {"HTTP/1.1 200", 200},
        {"HTTP/1.1 099 x\r\n", 0},
        {"HTTP/1.1 20x OK\r\n", 0},
        {"HTTP/1.1 2000 OK\r\n", 0},
        {"SSH-2.0-OpenSSH\r\n", 0},
        {"", 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int code = 0;
        int rc = hc_status_parse(t[i].line, strlen(t[i].line), &code);
        if (t[i].code == 0) {
            assert_int_equal(rc, ERR_INVALID);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(code, t[i].code);
        }
    }
}

/* ---------------------------------------------------------------- gRPC */

static size_t frame(uint8_t *p, size_t len, uint8_t type, uint8_t flags,
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

/* Decode a header block with nghttp2's inflater into "name: value\n"
 * lines. */
static void inflate_block(const uint8_t *in, size_t n, char *out, size_t cap)
{
    nghttp2_hd_inflater *inf = NULL;
    size_t o = 0;
    assert_int_equal(nghttp2_hd_inflate_new(&inf), 0);
    out[0] = 0;
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t r = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, n, 1);
        assert_true(r >= 0);
        in += r;
        n -= (size_t)r;
        if (flags & NGHTTP2_HD_INFLATE_EMIT) {
            int w = snprintf(out + o, cap - o, "%.*s: %.*s\n", (int)nv.namelen,
                             nv.name, (int)nv.valuelen, nv.value);
            assert_true(w > 0 && (size_t)w < cap - o);
            o += (size_t)w;
        }
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(inf);
            break;
        }
        if (r == 0 && n == 0) {
            break;
        }
    }
    nghttp2_hd_inflate_del(inf);
}

static void grpc_request_one(const char *host, int port, const char *service,
                             const char *authority, bool tls)
{
    struct hc_target t;
    uint8_t req[HC_GRPC_REQ_MAX];
    char fields[2048];
    memset(&t, 0, sizeof(t));
    t.type = tls ? HC_GRPCS : HC_GRPC;
    snprintf(t.host, sizeof(t.host), "%s", host);
    t.port = port;
    snprintf(t.path, sizeof(t.path), "%s", service);
    size_t n = hc_grpc_request(&t, req, sizeof(req));
    assert_true(n <= sizeof(req));
    assert_memory_equal(req, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    const uint8_t *p = req + 24;
    /* an empty SETTINGS on stream 0 */
    static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    assert_memory_equal(p, settings, 9);
    p += 9;
    /* HEADERS, END_HEADERS, stream 1 */
    size_t hl = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
    assert_int_equal(p[3], 1);
    assert_int_equal(p[4], 4);
    assert_int_equal(p[8], 1);
    inflate_block(p + 9, hl, fields, sizeof(fields));
    char want[1024];
    snprintf(want, sizeof(want),
             ":method: POST\n:scheme: %s\n"
             ":path: /grpc.health.v1.Health/Check\n:authority: %s\n"
             "content-type: application/grpc\nuser-agent: cairn-health/1\n"
             "te: trailers\n",
             tls ? "https" : "http", authority);
    assert_string_equal(fields, want);
    p += 9 + hl;
    /* DATA, END_STREAM, stream 1: one uncompressed HealthCheckRequest */
    size_t dl = (size_t)p[0] << 16 | (size_t)p[1] << 8 | p[2];
    assert_int_equal(p[3], 0);
    assert_int_equal(p[4], 1);
    assert_int_equal(p[8], 1);
    size_t sn = strlen(service);
    size_t pb = sn == 0 ? 0 : 1 + (sn < 128 ? 1 : 2) + sn;
    assert_int_equal(dl, 5 + pb);
    const uint8_t *m = p + 9;
    assert_int_equal(m[0], 0);
    assert_int_equal((size_t)m[3] << 8 | m[4], pb);
    if (sn > 0) {
        assert_int_equal(m[5], 0x0a);
        size_t vl = m[6] & 0x7f;
        size_t at = 7;
        if (m[6] & 0x80) {
            vl |= (size_t)m[7] << 7;
            at = 8;
        }
        assert_int_equal(vl, sn);
        assert_memory_equal(m + at, service, sn);
    }
    assert_int_equal((size_t)(p + 9 + dl - req), n);
}

static void grpc_request_bytes(void **state)
{
    char longsvc[SVC_GRPC_SERVICE_MAX + 1];
    char longhost[SVC_HOST_MAX + 1];
    char auth[SVC_HOST_MAX + 16];
    (void)state;
    grpc_request_one("127.0.0.1", 50051, "", "127.0.0.1:50051", false);
    grpc_request_one("127.0.0.1", 50051, "shop.Cart", "127.0.0.1:50051", false);
    grpc_request_one("::1", 9, "a", "[::1]:9", true);
    memset(longsvc, 's', SVC_GRPC_SERVICE_MAX);
    longsvc[SVC_GRPC_SERVICE_MAX] = 0;
    /* a host name over 127 bytes: a multi-byte HPACK length */
    memset(longhost, 'h', SVC_HOST_MAX);
    longhost[SVC_HOST_MAX] = 0;
    snprintf(auth, sizeof(auth), "%s:65535", longhost);
    grpc_request_one(longhost, 65535, longsvc, auth, true);
}

/* The verdict for in, fed whole and one byte at a time (the same both
 * ways, with the same text); 0 when undecided. */
static int grpc_answer(const uint8_t *in, size_t n, char *out, size_t cap,
                       bool *ack)
{
    struct hc_grpc a, b;
    char o2[HC_OUTPUT_MAX];
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    out[0] = 0;
    o2[0] = 0;
    int va = hc_grpc_feed(&a, in, n, out, cap);
    int vb = 0;
    for (size_t i = 0; i < n && vb == 0; i++) {
        vb = hc_grpc_feed(&b, in + i, 1, o2, sizeof(o2));
    }
    assert_int_equal(va, vb);
    assert_string_equal(out, o2);
    if (ack != NULL) {
        *ack = a.ack_due;
    }
    return va;
}

/* A server's usual start: SETTINGS (one parameter), a HEADERS block on
 * stream 1 (content irrelevant to the reader). */
static size_t server_start(uint8_t *p)
{
    size_t o = frame(p, 6, 4, 0, 0);
    memcpy(p + o, "\x00\x05\x00\x00\x40\x00", 6);
    o += 6;
    o += frame(p + o, 3, 1, 4, 1);
    memcpy(p + o, "\x88\x5f\x8b", 3);
    return o + 3;
}

/* DATA on stream 1 with a gRPC message whose protobuf bytes are pb. */
static size_t data_msg(uint8_t *p, const uint8_t *pb, size_t pn, uint8_t flags)
{
    size_t o = frame(p, 5 + pn, 0, flags, 1);
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = 0;
    p[o++] = (uint8_t)pn;
    memcpy(p + o, pb, pn);
    return o + pn;
}

static void grpc_answers(void **state)
{
    uint8_t in[512];
    char out[HC_OUTPUT_MAX];
    size_t o;
    bool ack = false;
    (void)state;
    static const struct {
        const uint8_t *pb;
        size_t n;
        int v;
        const char *says;
    } st[] = {
        {(const uint8_t *)"\x08\x01", 2, 1, "status SERVING"},
        {(const uint8_t *)"\x08\x02", 2, -1, "status NOT_SERVING"},
        {(const uint8_t *)"\x08\x03", 2, -1, "status SERVICE_UNKNOWN"},
        {(const uint8_t *)"", 0, -1, "status UNKNOWN"},
        {(const uint8_t *)"\x08\x07", 2, -1, "status 7"},
        {(const uint8_t *)"\x08\x81\x01", 3, -1, "status 129"},
    };
    for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
        o = server_start(in);
        o += data_msg(in + o, st[i].pb, st[i].n, 0);
        assert_int_equal(grpc_answer(in, o, out, sizeof(out), &ack), st[i].v);
        assert_string_equal(out, st[i].says);
        assert_true(ack);
        /* without the message's last byte: no verdict yet */
        assert_int_equal(grpc_answer(in, o - 1, out, sizeof(out), NULL), 0);
    }

    /* the message split over two DATA frames, other streams' DATA and
     * a SETTINGS ack between them, then trailers */
    o = server_start(in);
    o += frame(in + o, 3, 0, 0, 1);
    memcpy(in + o, "\x00\x00\x00", 3);
    o += 3;
    o += frame(in + o, 4, 0, 0, 3); /* stream 3: not ours */
    memcpy(in + o, "\x00\x00\x00\x01", 4);
    o += 4;
    o += frame(in + o, 0, 4, 1, 0);
    o += frame(in + o, 4, 0, 0, 1);
    memcpy(in + o, "\x00\x02\x08\x01", 4);
    o += 4;
    o += frame(in + o, 1, 1, 5, 1);
    in[o++] = 0x88;
    assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), 1);

    /* PADDED DATA: pad length 3, the message, three pad bytes */
    o = server_start(in);
    o += frame(in + o, 1 + 7 + 3, 0, 0x8, 1);
    memcpy(in + o, "\x03\x00\x00\x00\x00\x02\x08\x01\xff\xff\xff", 11);
    o += 11;
    assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), 1);
    /* padding longer than the frame */
    o = server_start(in);
    o += frame(in + o, 4, 0, 0x8, 1);
    memcpy(in + o, "\x09\x00\x00\x00", 4);
    o += 4;
    assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), -1);
    assert_non_null(strstr(out, "padding"));
    /* a padded DATA frame of no bytes at all */
    o = frame(in, 0, 0, 0x8, 1);
    assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), -1);

    static const struct {
        uint8_t type, flags;
        uint32_t stream;
        const char *says;
    } ends[] = {
        {1, 5, 1, "without a health answer"}, /* trailers only */
        {3, 0, 1, "reset the call"},
        {7, 0, 0, "GOAWAY"},
    };
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
        o = server_start(in);
        size_t pl = ends[i].type == 7 ? 8 : ends[i].type == 3 ? 4 : 1;
        o += frame(in + o, pl, ends[i].type, ends[i].flags, ends[i].stream);
        memset(in + o, 0, pl);
        o += pl;
        assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), -1);
        assert_non_null(strstr(out, ends[i].says));
    }
    /* a reset of another stream means nothing to us */
    o = server_start(in);
    o += frame(in + o, 4, 3, 0, 5);
    memset(in + o, 0, 4);
    o += 4;
    assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), 0);

    /* DATA that ends the stream inside the message */
    o = server_start(in);
    o += frame(in + o, 6, 0, 1, 1);
    memcpy(in + o, "\x00\x00\x00\x00\x02\x08", 6);
    o += 6;
    assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), -1);
    assert_non_null(strstr(out, "inside its answer"));

    /* a compressed message */
    o = server_start(in);
    o += frame(in + o, 7, 0, 0, 1);
    memcpy(in + o, "\x01\x00\x00\x00\x02\x08\x01", 7);
    o += 7;
    assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), -1);
    assert_non_null(strstr(out, "compressed"));

    /* a frame over 16,384 bytes, and an HTTP/1.1 answer read as frames */
    o = frame(in, 16385, 0, 0, 1);
    assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), -1);
    assert_non_null(strstr(out, "16385"));
    o = frame(in, 16384, 0, 0, 1); /* the largest allowed: waits */
    assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), 0);
    const char *h1 = "HTTP/1.0 400 Bad request\r\n\r\n";
    assert_int_equal(
        grpc_answer((const uint8_t *)h1, strlen(h1), out, sizeof(out), NULL),
        -1);
    assert_non_null(strstr(out, "not an HTTP/2 gRPC server"));
    /* a message longer than the reader keeps: SERVING comes first */
    uint8_t big[80];
    memset(big, 0, sizeof(big));
    big[0] = 0x08;
    big[1] = 0x01;
    big[2] = 0x12; /* field 2, bytes: an unknown field's 76 bytes */
    big[3] = 76;
    o = server_start(in);
    o += data_msg(in + o, big, sizeof(big), 0);
    assert_int_equal(grpc_answer(in, o, out, sizeof(out), NULL), 1);
}

/* One binary per module: test_services.c's main runs this group too. */
int test_svc_probe_run(void);
int test_svc_probe_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(url_forms_split_into_host_port_path),
        cmocka_unit_test(url_refusals),
        cmocka_unit_test(status_lines),
        cmocka_unit_test(grpc_request_bytes),
        cmocka_unit_test(grpc_answers),
    };
    return cmocka_run_group_tests_name("svc_probe", tests, NULL, NULL);
}

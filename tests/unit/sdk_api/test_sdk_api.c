/*
 * test_sdk_api.c - libcairn's /api/v1 client against bad servers and bad
 * arguments: errors, never crashes, hangs or leaks.
 *
 * Method: a fake server thread on 127.0.0.1 answers each connection with
 * the next canned reply (garbage, truncated, oversized, malformed chunked
 * bodies, WebSocket frames with reserved bits or lengths past the bound,
 * JSON missing what the API promises), every truncation of a good reply
 * included; the HTTP and WebSocket layers, the registration, discovery and
 * config calls must return a clear error. Pickers are checked on lists of
 * up, draining and critical instances. Run under valgrind or ASan to see
 * leaks.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "base/alloc.h"
#include "sdk/api_int.h"
#include "sdk/client_int.h"

struct fake {
    int lfd;
    int port;
    pthread_t thr;
    const char *reply; /* what each connection gets */
    size_t reply_len;
    bool ws;       /* a 101 with the key's Sec-WebSocket-Accept first */
    bool ws_wrong; /* ... with a wrong one */
    pthread_mutex_t mu;
    volatile bool stop;
};

/* The 101 answering the request's Sec-WebSocket-Key (RFC 6455 4.2.2),
 * or with a wrong accept. */
static void ws_head(const char *req, bool wrong, char *out, size_t n)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    static const char t[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char key[64] = "";
    char cat[128];
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char acc[32];
    const char *k = strstr(req, "Sec-WebSocket-Key: ");
    if (k != NULL) {
        sscanf(k + 19, "%63[^\r\n]", key);
    }
    snprintf(cat, sizeof(cat), "%s%s", key, wrong ? "x" : guid);
    EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL);
    size_t w = 0;
    for (size_t i = 0; i < 20; i += 3) {
        uint32_t v = (uint32_t)md[i] << 16;
        v |= i + 1 < 20 ? (uint32_t)md[i + 1] << 8 : 0;
        v |= i + 2 < 20 ? md[i + 2] : 0;
        acc[w++] = t[(v >> 18) & 63];
        acc[w++] = t[(v >> 12) & 63];
        acc[w++] = i + 1 < 20 ? t[(v >> 6) & 63] : '=';
        acc[w++] = i + 2 < 20 ? t[v & 63] : '=';
    }
    acc[w] = 0;
    snprintf(out, n,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
             acc);
}

static void *fake_thread(void *arg)
{
    struct fake *f = arg;
    while (!f->stop) {
        struct pollfd p = {.fd = f->lfd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        char buf[8192];
        ssize_t r = 0;
        struct pollfd q = {.fd = fd, .events = POLLIN};
        if (poll(&q, 1, 500) > 0) {
            r = read(fd, buf, sizeof(buf) - 1);
        }
        buf[r > 0 ? r : 0] = 0;
        pthread_mutex_lock(&f->mu);
        if (f->ws) {
            char head[256];
            ws_head(buf, f->ws_wrong, head, sizeof(head));
            ssize_t hw = write(fd, head, strlen(head));
            (void)hw;
        }
        ssize_t w = write(fd, f->reply, f->reply_len);
        (void)w;
        pthread_mutex_unlock(&f->mu);
        usleep(20000);
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(f->lfd, (struct sockaddr *)&sa, &sl);
    f->port = ntohs(sa.sin_port);
    assert_int_equal(listen(f->lfd, 16), 0);
    assert_int_equal(pthread_create(&f->thr, NULL, fake_thread, f), 0);
}

static void fake_reply(struct fake *f, const char *s, size_t n)
{
    pthread_mutex_lock(&f->mu);
    f->reply = s;
    f->reply_len = n;
    pthread_mutex_unlock(&f->mu);
}

static void fake_stop(struct fake *f)
{
    f->stop = true;
    pthread_join(f->thr, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->mu);
}

static int http(struct fake *f, const char *reply, struct cairn__http_resp *r)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", f->port);
    fake_reply(f, reply, strlen(reply));
    return cairn__http_call(ep, "GET", "/api/v1/x", NULL, 0, 1000, r, NULL, 0);
}

static void http_answers(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f);
    struct cairn__http_resp r;
    assert_int_equal(
        http(&f, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}");
    cairn__http_resp_free(&r);
    assert_int_equal(http(&f,
                          "HTTP/1.1 410 Gone\r\nTransfer-Encoding: chunked\r\n"
                          "\r\n2;x=y\r\n{}\r\n3\r\nabc\r\n0\r\n\r\n",
                          &r),
                     0);
    assert_int_equal(r.status, 410);
    assert_string_equal(r.body, "{}abc");
    cairn__http_resp_free(&r);
    /* read to EOF without a length */
    assert_int_equal(http(&f, "HTTP/1.0 200 OK\r\n\r\nabc", &r), 0);
    assert_string_equal(r.body, "abc");
    cairn__http_resp_free(&r);

    assert_int_equal(http(&f, "hello there, not http\r\n\r\n", &r),
                     CAIRN_E_BAD_RESPONSE);
    assert_int_equal(http(&f, "HTTP/1.1 2x0 OK\r\n\r\n", &r),
                     CAIRN_E_BAD_RESPONSE);
    assert_int_equal(
        http(&f, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", &r),
        CAIRN_E_UNAVAILABLE);
    assert_int_equal(
        http(&f, "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", &r),
        CAIRN_E_TOO_BIG);
    assert_int_equal(
        http(&f, "HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n", &r),
        CAIRN_E_BAD_RESPONSE);
    assert_int_not_equal(http(&f,
                              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                              "\r\n\r\nzz\r\n0\r\n\r\n",
                              &r),
                         0);
    assert_int_not_equal(http(&f,
                              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                              "\r\n\r\nffffffffffffffffff\r\nab\r\n0\r\n\r\n",
                              &r),
                         0);
    /* every truncation of a good chunked reply: an error or the body */
    static const char good[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                               "\r\n\r\n4\r\nabcd\r\n0\r\n\r\n";
    for (size_t n = 0; n < sizeof(good) - 1; n++) {
        char ep[64];
        snprintf(ep, sizeof(ep), "127.0.0.1:%d", f.port);
        fake_reply(&f, good, n);
        int rc = cairn__http_call(ep, "GET", "/api/v1/x", NULL, 0, 1000, &r,
                                  NULL, 0);
        assert_true(rc != 0);
        cairn__http_resp_free(&r);
    }
    /* bad arguments, before any I/O */
    assert_int_equal(cairn__http_call("127.0.0.1:1", "GET", "no-slash", NULL, 0,
                                      100, &r, NULL, 0),
                     CAIRN_E_INVALID);
    assert_int_equal(cairn__http_call("127.0.0.1:1", "GET", "/a b", NULL, 0,
                                      100, &r, NULL, 0),
                     CAIRN_E_INVALID);
    assert_int_equal(
        cairn__http_call("nohost", "GET", "/a", NULL, 0, 100, &r, NULL, 0),
        CAIRN_E_INVALID);
    fake_stop(&f);
}

static int ws_case(struct fake *f, const char *frames, size_t n, char **msg,
                   size_t *len)
{
    static char buf[4096];
    memcpy(buf, frames, n);
    pthread_mutex_lock(&f->mu);
    f->ws = true;
    pthread_mutex_unlock(&f->mu);
    fake_reply(f, buf, n);
    char ep[64];
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", f->port);
    struct cairn__ws ws;
    int rc = cairn__ws_open(&ws, ep, "/api/v1/w", 1000, 1024, NULL, 0);
    if (rc != 0) {
        return rc;
    }
    rc = cairn__ws_recv(&ws, 1000, msg, len);
    cairn__ws_close(&ws);
    return rc;
}

static void ws_frames(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f);
    char *m = NULL;
    size_t l = 0;
    /* ping, then "hel" + continuation "lo" */
    static const char ok[] = "\x89\x01p\x01\x03hel\x80\x02lo";
    assert_int_equal(ws_case(&f, ok, sizeof(ok) - 1, &m, &l), 0);
    assert_int_equal(l, 5);
    assert_memory_equal(m, "hello", 5);
    mem_free(m);
    static const char rsv[] = "\xc1\x01x";
    assert_int_equal(ws_case(&f, rsv, sizeof(rsv) - 1, &m, &l),
                     CAIRN_E_BAD_RESPONSE);
    static const char big[] = "\x81\x7f\x00\x00\x00\x01\x00\x00\x00\x00";
    assert_int_equal(ws_case(&f, big, sizeof(big) - 1, &m, &l),
                     CAIRN_E_TOO_BIG);
    static const char cont[] = "\x80\x01x"; /* continuation first */
    assert_int_equal(ws_case(&f, cont, sizeof(cont) - 1, &m, &l),
                     CAIRN_E_BAD_RESPONSE);
    static const char op[] = "\x83\x01x"; /* reserved opcode */
    assert_int_equal(ws_case(&f, op, sizeof(op) - 1, &m, &l),
                     CAIRN_E_BAD_RESPONSE);
    /* a 101 whose Sec-WebSocket-Accept does not answer our key */
    pthread_mutex_lock(&f.mu);
    f.ws_wrong = true;
    pthread_mutex_unlock(&f.mu);
    assert_int_equal(ws_case(&f, ok, sizeof(ok) - 1, &m, &l),
                     CAIRN_E_BAD_RESPONSE);
    pthread_mutex_lock(&f.mu);
    f.ws_wrong = false;
    pthread_mutex_unlock(&f.mu);
    static const char cls[] = "\x88\x02\x03\xe8";
    assert_int_equal(ws_case(&f, cls, sizeof(cls) - 1, &m, &l), CAIRN_E_CLOSED);
    static const char half[] = "\x81\x05he"; /* then EOF */
    assert_int_equal(ws_case(&f, half, sizeof(half) - 1, &m, &l),
                     CAIRN_E_CLOSED);
    /* a refused upgrade */
    pthread_mutex_lock(&f.mu);
    f.ws = false;
    pthread_mutex_unlock(&f.mu);
    static const char nf[] =
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    fake_reply(&f, nf, sizeof(nf) - 1);
    char ep[64];
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", f.port);
    struct cairn__ws ws;
    assert_int_equal(cairn__ws_open(&ws, ep, "/api/v1/w", 1000, 1024, NULL, 0),
                     CAIRN_E_INVALID);
    fake_stop(&f);
}

static struct cairn_client *client_for(int port)
{
    char ep[64];
    snprintf(ep, sizeof(ep), "127.0.0.1:%d", port);
    const char *eps[] = {ep};
    struct cairn_options o;
    cairn_options_init(&o);
    o.endpoints = eps;
    o.endpoints_count = 1;
    o.timeout_ms = 500;
    struct cairn_client *c = NULL;
    assert_int_equal(cairn_client_new(&o, &c), 0);
    return c;
}

static void objects_on_bad_server(void **state)
{
    (void)state;
    struct fake f;
    fake_start(&f);
    struct cairn_client *c = client_for(f.port);
    struct cairn_registration *r = NULL;
    struct cairn_registration_options ro = {.ttl_s = 5, .timeout_ms = 500};
    static const char empty[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    fake_reply(&f, empty, sizeof(empty) - 1);
    assert_int_equal(cairn_registration_new(c, &ro, &r), CAIRN_E_BAD_RESPONSE);
    static const char gone[] =
        "HTTP/1.1 410 Gone\r\nContent-Length: 53\r\n\r\n"
        "{\"error\":\"gone\",\"code\":\"session_expired\",\"message\":\"\"}";
    fake_reply(&f, gone, sizeof(gone) - 1);
    assert_int_equal(cairn_registration_new(c, &ro, &r),
                     CAIRN_E_SESSION_EXPIRED);
    fake_reply(&f, "garbage", 7);
    assert_int_equal(cairn_registration_new(c, &ro, &r), CAIRN_E_BAD_RESPONSE);

    struct cairn_config_req q = {.ns = "n", .app = "a", .name = "c"};
    struct cairn_config_release rel;
    static const char badv[] = "HTTP/1.1 200 OK\r\nContent-Length: 15\r\n\r\n"
                               "{\"version\":\"x\"}";
    fake_reply(&f, badv, sizeof(badv) - 1);
    assert_int_equal(cairn_config_get(c, &q, 500, &rel), CAIRN_E_BAD_RESPONSE);
    fake_reply(&f, empty, sizeof(empty) - 1);
    assert_int_equal(cairn_config_get(c, &q, 500, &rel), CAIRN_E_BAD_RESPONSE);

    /* discovery: the stream answers garbage; no snapshot within the bound */
    static const char wsbad[] = "HTTP/1.1 101 Switching Protocols\r\n\r\n"
                                "\x81\x03{x}";
    fake_reply(&f, wsbad, sizeof(wsbad) - 1);
    struct cairn_discovery *d = NULL;
    int rc = cairn_discovery_new(c, "n", "s", NULL, NULL, 400, &d);
    assert_true(rc == CAIRN_E_TIMEOUT || rc == CAIRN_E_UNAVAILABLE);
    cairn_client_free(c);
    fake_stop(&f);
}

static void bad_arguments(void **state)
{
    (void)state;
    struct cairn_client *c = client_for(1);
    struct cairn_config_release rel;
    struct cairn_config_req q = {.ns = "n", .app = "a/b", .name = "c"};
    assert_int_equal(cairn_config_get(c, &q, 0, &rel), CAIRN_E_INVALID);
    q.app = "..";
    assert_int_equal(cairn_config_get(c, &q, 0, &rel), CAIRN_E_INVALID);
    assert_int_equal(cairn_config_get(c, NULL, 0, &rel), CAIRN_E_INVALID);
    struct cairn_config_watch *w = NULL;
    assert_int_equal(cairn_config_watch_new(c, &q, NULL, NULL, &w),
                     CAIRN_E_INVALID);
    struct cairn_discovery *d = NULL;
    assert_int_equal(cairn_discovery_new(c, "", NULL, NULL, NULL, 0, &d),
                     CAIRN_E_INVALID);
    assert_int_equal(cairn_discovery_new(c, "a b", NULL, NULL, NULL, 0, &d),
                     CAIRN_E_INVALID);
    struct cairn_registration *r = NULL;
    struct cairn_registration_options ro = {.ttl_s = 4000};
    assert_int_equal(cairn_registration_new(c, &ro, &r), CAIRN_E_INVALID);
    assert_int_equal(cairn_registration_new(NULL, NULL, &r), CAIRN_E_INVALID);
    struct cairn_instance_spec spec = {.ns = "n", .service = "s", .id = "i"};
    assert_int_equal(cairn_register(NULL, &spec), CAIRN_E_INVALID);
    struct cairn_api_resp ar;
    assert_int_equal(cairn_api_call(c, "GET", "/v3/x", NULL, 0, &ar),
                     CAIRN_E_INVALID);
    /* nothing listens on port 1: unreachable, and no cache to fall back on */
    q.app = "a";
    assert_int_equal(cairn_config_get(c, &q, 300, &rel), CAIRN_E_UNAVAILABLE);
    cairn_client_free(c);
}

static void json_decoders(void **state)
{
    (void)state;
    const char *bad[] = {"[]", "{}", "{\"id\":3}", "null", "\"x\""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
        struct cairn_instance in;
        assert_int_equal(cairn__instance_from_json(j, &in),
                         CAIRN_E_BAD_RESPONSE);
        struct cairn_config_release rel;
        assert_int_equal(cairn__release_from_json(j, &rel),
                         CAIRN_E_BAD_RESPONSE);
        cairn_config_release_free(&rel);
        json_decref(j);
    }
    json_t *j =
        json_loads("{\"id\":\"i\",\"weight\":5000,\"addr\":7,"
                   "\"zone\":\"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
                   "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
                   "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
                   "\"}",
                   0, NULL);
    struct cairn_instance in;
    assert_int_equal(cairn__instance_from_json(j, &in), 0);
    assert_int_equal(in.weight, 1000);
    assert_string_equal(in.addr, "");
    assert_string_equal(in.status, "up");
    assert_true(strlen(in.zone) <= CAIRN_NAME_MAX);
    json_decref(j);
}

static void pickers(void **state)
{
    (void)state;
    struct cairn_instance it[4];
    memset(it, 0, sizeof(it));
    const char *ids[] = {"a", "b", "c", "d"};
    const char *zones[] = {"z1", "z2", "z1", "z2"};
    for (int i = 0; i < 4; i++) {
        snprintf(it[i].id, sizeof(it[i].id), "%s", ids[i]);
        snprintf(it[i].addr, sizeof(it[i].addr), "h:%d", i + 1);
        snprintf(it[i].zone, sizeof(it[i].zone), "%s", zones[i]);
        snprintf(it[i].status, sizeof(it[i].status), "up");
        snprintf(it[i].health, sizeof(it[i].health), "passing");
        it[i].weight = 100;
    }
    snprintf(it[2].status, sizeof(it[2].status), "draining");
    snprintf(it[3].health, sizeof(it[3].health), "critical");
    struct cairn_instance_list l = {.items = it, .count = 4};
    uint64_t cur = 0;
    struct cairn_instance out;
    int seen[4] = {0};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(
            cairn_pick_from(&l, CAIRN_PICK_ROUND_ROBIN, NULL, &cur, &out), 0);
        seen[out.id[0] - 'a']++;
    }
    assert_int_equal(seen[0], 5);
    assert_int_equal(seen[1], 5);
    assert_int_equal(seen[2] + seen[3], 0);
    for (int i = 0; i < 5; i++) { /* z1's usable one is a */
        assert_int_equal(
            cairn_pick_from(&l, CAIRN_PICK_ZONE_FIRST, "z1", &cur, &out), 0);
        assert_string_equal(out.id, "a");
    }
    assert_int_equal(
        cairn_pick_from(&l, CAIRN_PICK_ZONE_FIRST, "z9", &cur, &out),
        0); /* no such zone: all usable */
    it[1].weight = 0;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(
            cairn_pick_from(&l, CAIRN_PICK_WEIGHTED_RANDOM, NULL, &cur, &out),
            0);
        assert_string_equal(out.id, "a");
    }
    it[0].weight = 0;
    assert_int_equal(
        cairn_pick_from(&l, CAIRN_PICK_WEIGHTED_RANDOM, NULL, &cur, &out),
        CAIRN_E_NOT_FOUND);
    snprintf(it[0].status, sizeof(it[0].status), "draining");
    snprintf(it[1].status, sizeof(it[1].status), "draining");
    assert_int_equal(
        cairn_pick_from(&l, CAIRN_PICK_ROUND_ROBIN, NULL, &cur, &out),
        CAIRN_E_NOT_FOUND);
    assert_int_equal(
        cairn_pick_from(&l, (enum cairn_pick_policy)9, NULL, &cur, &out),
        CAIRN_E_INVALID);
    assert_int_equal(
        cairn_pick_from(NULL, CAIRN_PICK_ROUND_ROBIN, NULL, &cur, &out),
        CAIRN_E_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http_answers),
        cmocka_unit_test(ws_frames),
        cmocka_unit_test(objects_on_bad_server),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(json_decoders),
        cmocka_unit_test(pickers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

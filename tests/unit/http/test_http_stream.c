/*
 * test_http_stream.c - the pure parts of the gateway's streams: splitting
 * a body of several JSON request messages (as etcd's gateway reads them
 * with a JSON decoder, one value after another) and the routing of stream
 * paths with their aliases. The streams themselves run against a real
 * cairnd in tests/compat/http_watch.test and ws_watch.test.
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <jansson.h>

#include "registry/http/http_int.h"
#include "registry/http/http_stream_int.h"

#include "test_http_stream.h"

/* Split s into its values; returns how many, with copies in out[]. */
static size_t split(const char *s, char out[][64], size_t cap)
{
    size_t len = strlen(s);
    size_t off = 0;
    size_t a;
    size_t b;
    size_t n = 0;
    for (size_t guard = 0; guard <= len + 1; guard++) {
        if (http__json_next(s, len, &off, &a, &b) != 0) {
            return n;
        }
        assert_true(a < b);
        assert_true(b <= len);
        assert_true(n < cap);
        assert_true(b - a < 64);
        memcpy(out[n], s + a, b - a);
        out[n][b - a] = '\0';
        n++;
    }
    fail_msg("the splitter did not advance");
    return n;
}

static void split_newline_separated(void **state)
{
    char v[8][64];
    (void)state;
    assert_int_equal(split("{\"a\":1}\n{\"b\":{\"c\":[1,2]}}\n\n", v, 8), 2);
    assert_string_equal(v[0], "{\"a\":1}");
    assert_string_equal(v[1], "{\"b\":{\"c\":[1,2]}}");
}

static void split_adjacent_and_spaced(void **state)
{
    char v[8][64];
    (void)state;
    assert_int_equal(split("{}{}  \t\r\n [1] {\"x\":null}", v, 8), 4);
    assert_string_equal(v[0], "{}");
    assert_string_equal(v[1], "{}");
    assert_string_equal(v[2], "[1]");
    assert_string_equal(v[3], "{\"x\":null}");
}

static void split_braces_inside_strings(void **state)
{
    char v[8][64];
    (void)state;
    assert_int_equal(split("{\"k\":\"}{\\\"]\"} {\"e\":\"\\\\\"}", v, 8), 2);
    assert_string_equal(v[0], "{\"k\":\"}{\\\"]\"}");
    assert_string_equal(v[1], "{\"e\":\"\\\\\"}");
}

static void split_scalars_and_garbage(void **state)
{
    char v[8][64];
    (void)state;
    /* each is its own value; the decoder then refuses what is not an
     * object, as etcd's does */
    assert_int_equal(split("123 garbage {}", v, 8), 3);
    assert_string_equal(v[0], "123");
    assert_string_equal(v[1], "garbage");
    assert_string_equal(v[2], "{}");
}

static void split_unterminated_runs_to_end(void **state)
{
    char v[8][64];
    (void)state;
    assert_int_equal(split("{} {\"a\":{\"b\":1}", v, 8), 2);
    assert_string_equal(v[1], "{\"a\":{\"b\":1}");
    assert_int_equal(split("{\"s\":\"open", v, 8), 1);
    assert_string_equal(v[0], "{\"s\":\"open");
    assert_int_equal(split("{\"s\":\"\\", v, 8), 1); /* escape at the end */
    assert_int_equal(split("}}", v, 8), 2);          /* stray closers */
}

static void split_empty_and_blank(void **state)
{
    char v[8][64];
    size_t off = 0;
    size_t a = 7;
    size_t b = 7;
    (void)state;
    assert_int_equal(split("", v, 8), 0);
    assert_int_equal(split(" \n\t\r ", v, 8), 0);
    assert_int_equal(http__json_next("", 0, &off, &a, &b), 1);
    assert_int_equal(off, 0);
}

static void stream_paths(void **state)
{
    (void)state;
    assert_int_equal(http__stream_kind("/v3/watch"), HTTP_STREAM_WATCH);
    assert_int_equal(http__stream_kind("/v3beta/watch"), HTTP_STREAM_WATCH);
    assert_int_equal(http__stream_kind("/v3alpha/watch"), HTTP_STREAM_WATCH);
    assert_int_equal(http__stream_kind("/v3/lease/keepalive"),
                     HTTP_STREAM_KEEPALIVE);
    assert_int_equal(http__stream_kind("/v3beta/lease/keepalive"),
                     HTTP_STREAM_KEEPALIVE);
    /* etcd 3.4 answers 404 here: keep-alive has no /kv/lease/ alias */
    assert_int_equal(http__stream_kind("/v3/kv/lease/keepalive"),
                     HTTP_STREAM_NONE);
    assert_int_equal(http__stream_kind("/v3/watchx"), HTTP_STREAM_NONE);
    assert_int_equal(http__stream_kind("/v3/watch/"), HTTP_STREAM_NONE);
    assert_int_equal(http__stream_kind("/v3/kv/range"), HTTP_STREAM_NONE);
    assert_int_equal(http__stream_kind("/ws/watch"), HTTP_STREAM_NONE);
    assert_int_equal(http__stream_kind("/v4/watch"), HTTP_STREAM_NONE);
    assert_int_equal(http__stream_kind(""), HTTP_STREAM_NONE);
}

/* ------------------------------------------------ acks without jansson */

/* What jansson reads from js, in the terms of struct http_ack: true when
 * js is an object whose members are what ack_read took (mux: op "ack",
 * sub, name?, app?, version; else ack:{name?, app?, version}). */
static bool jansson_agrees(const char *js, size_t len, bool mux,
                           const struct http_ack *a)
{
    json_t *m = json_loadb(js, len, 0, NULL);
    json_t *o = mux ? m : json_object_get(m, "ack");
    bool ok = json_is_object(o);
    const char *name = json_string_value(json_object_get(o, "name"));
    const char *app = json_string_value(json_object_get(o, "app"));
    json_t *v = json_object_get(o, "version");
    ok = ok && json_is_integer(v) && json_integer_value(v) == a->version;
    ok = ok && (name == NULL) == (a->name == NULL) &&
         (name == NULL || (strlen(name) == a->name_len &&
                           memcmp(name, a->name, a->name_len) == 0));
    ok = ok && (app == NULL) == (a->app == NULL) &&
         (app == NULL ||
          (strlen(app) == a->app_len && memcmp(app, a->app, a->app_len) == 0));
    if (mux) {
        json_t *sub = json_object_get(m, "sub");
        const char *op = json_string_value(json_object_get(m, "op"));
        ok =
            ok && json_is_integer(sub) && json_integer_value(sub) == a->sub &&
            op != NULL && strcmp(op, "ack") == 0 &&
            json_object_size(m) == (size_t)(3 + (name != NULL) + (app != NULL));
    } else {
        ok =
            ok && json_object_size(m) == 1 &&
            json_object_size(o) == (size_t)(1 + (name != NULL) + (app != NULL));
    }
    json_decref(m);
    return ok;
}

static void ack_read_plain_shapes(void **state)
{
    struct http_ack a;
    (void)state;
    const char *s = "{\"ack\":{\"name\":\"app.yaml\",\"version\":7}}";
    assert_true(http__ack_read(s, strlen(s), false, &a));
    assert_int_equal(a.version, 7);
    assert_int_equal(a.name_len, 8);
    assert_memory_equal(a.name, "app.yaml", 8);
    assert_null(a.app);
    assert_true(jansson_agrees(s, strlen(s), false, &a));
    s = " {\n \"ack\" : { \"version\" : 12 , \"app\":\"web\" "
        ",\"name\":\"x\"}\t}\r\n";
    assert_true(http__ack_read(s, strlen(s), false, &a));
    assert_int_equal(a.version, 12);
    assert_memory_equal(a.app, "web", 3);
    assert_true(jansson_agrees(s, strlen(s), false, &a));
    s = "{\"op\":\"ack\",\"sub\":12,\"name\":\"db.yaml\",\"version\":3}";
    assert_true(http__ack_read(s, strlen(s), true, &a));
    assert_int_equal(a.sub, 12);
    assert_int_equal(a.version, 3);
    assert_true(jansson_agrees(s, strlen(s), true, &a));
    s = "{\"version\":-5,\"sub\":999999999999999999,\"op\":\"ack\"}";
    assert_true(http__ack_read(s, strlen(s), true, &a));
    assert_int_equal(a.version, -5); /* refused later, by the ack's check */
    assert_int_equal(a.sub, 999999999999999999LL);
    assert_true(jansson_agrees(s, strlen(s), true, &a));
}

/* Every shape it leaves to jansson: the errors and odd cases stay there. */
static void ack_read_leaves_the_rest(void **state)
{
    static const char *const stream[] = {
        "",
        "{}",
        "[]",
        "{\"ack\":{}}",
        "{\"ack\":{\"name\":\"a\"}}",    /* no version */
        "{\"ack\":{\"version\":\"7\"}}", /* a string */
        "{\"ack\":{\"version\":7.0}}",   /* a real */
        "{\"ack\":{\"version\":7e0}}",
        "{\"ack\":{\"version\":07}}",                  /* not JSON */
        "{\"ack\":{\"version\":1234567890123456789}}", /* 19 digits */
        "{\"ack\":{\"version\":1,\"version\":2}}",     /* repeated */
        "{\"ack\":{\"version\":1,\"id\":2}}",          /* unknown */
        "{\"ack\":{\"version\":1},\"x\":1}",
        "{\"ack\":{\"name\":\"a\\u0062\",\"version\":1}}", /* an escape */
        "{\"ack\":{\"name\":\"\xc3\xa9\",\"version\":1}}", /* not ASCII */
        "{\"ack\":{\"version\":1}} x",                     /* trailing */
        "{\"ack\":{\"version\":1}",                        /* cut */
        "{\"ack\":{\"version\":1,}}",
        "{\"ack\":{\"version\":1}}}",
        "{\"op\":\"ack\",\"sub\":1,\"version\":1}", /* mux shape */
    };
    static const char *const mux[] = {
        "{\"op\":\"ack\",\"version\":1}", /* no sub */
        "{\"sub\":1,\"version\":1}",      /* no op */
        "{\"op\":\"unsubscribe\",\"sub\":1,\"version\":1}",
        "{\"op\":\"ack\",\"sub\":1,\"version\":1,\"id\":4}", /* answered */
        "{\"op\":\"ack\",\"sub\":\"1\",\"version\":1}",
        "{\"op\":\"ack\",\"sub\":1,\"version\":null}",
        "{\"op\":\"ack\",\"sub\":1,\"version\":1,\"op\":\"ack\"}",
        "{\"ack\":{\"version\":1}}", /* stream shape */
    };
    struct http_ack a;
    (void)state;
    for (size_t i = 0; i < sizeof(stream) / sizeof(stream[0]); i++) {
        if (http__ack_read(stream[i], strlen(stream[i]), false, &a)) {
            fail_msg("took %s", stream[i]);
        }
    }
    for (size_t i = 0; i < sizeof(mux) / sizeof(mux[0]); i++) {
        if (http__ack_read(mux[i], strlen(mux[i]), true, &a)) {
            fail_msg("took (mux) %s", mux[i]);
        }
    }
    /* a NUL inside the length is not the end of the message */
    assert_false(http__ack_read("{\"ack\":{\"version\":1}}\0", 25, false, &a));
}

/* Mutants of valid acks (bytes changed, dropped, doubled): whatever
 * ack_read takes, jansson reads to the same values and members. */
static void ack_read_agrees_with_jansson(void **state)
{
    static const char *const seeds[] = {
        "{\"ack\":{\"name\":\"app.yaml\",\"version\":17}}",
        "{\"ack\":{\"app\":\"web\",\"name\":\"n\",\"version\":2}}",
        "{\"op\":\"ack\",\"sub\":41,\"name\":\"cfg.json\",\"version\":9}",
        "{ \"op\" : \"ack\" , \"sub\" : 7 , \"version\" : 30 }",
    };
    static const char alphabet[] = "{}[]\":,0123456789-.eE \\\tabnopuv\x01\xff";
    uint64_t r = 0x2545F4914F6CDD1DULL;
    size_t took = 0;
    (void)state;
    for (int round = 0; round < 200000; round++) {
        char buf[128];
        const char *seed = seeds[round % 4];
        bool mux = round % 4 >= 2;
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        int edits = 1 + (int)(r % 3);
        for (int e = 0; e < edits; e++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            size_t at = (size_t)(r >> 8) % len;
            int kind = (int)(r % 3);
            char c = alphabet[(r >> 40) % (sizeof(alphabet) - 1)];
            if (kind == 0) {
                buf[at] = c;
            } else if (kind == 1 && len > 1) {
                memmove(buf + at, buf + at + 1, len - at - 1);
                len--;
            } else if (len < sizeof(buf) - 1) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = c;
                len++;
            }
        }
        struct http_ack a;
        if (http__ack_read(buf, len, mux, &a)) {
            took++;
            if (!jansson_agrees(buf, len, mux, &a)) {
                fail_msg("ack_read took %.*s (mux %d); jansson reads otherwise",
                         (int)len, buf, mux);
            }
        }
    }
    /* the mutants include many that are still acks (a digit changed, a
     * space added): the check is not vacuous */
    assert_true(took > 1000);
}

/* cairnd's _lws_log (http_server.c) stands in for the library's: lines
 * of a level that is on reach the emitter set with lws_set_log_level,
 * the rest (lws's parser debugging, a call per header byte) stop there. */
static int lws_lines;
static char lws_last[64];
static void lws_capture(int level, const char *line)
{
    (void)level;
    lws_lines++;
    snprintf(lws_last, sizeof(lws_last), "%s", line);
}

static void lws_log_interposed(void **state)
{
    (void)state;
    Dl_info info;
    void (*self)(const struct http *, struct lws *, char *, size_t) =
        http__peer; /* links http_server.c in */
    assert_non_null(self);
    /* the definition the program binds is the one in this program */
    assert_true(dladdr((void *)&_lws_log, &info) != 0);
    assert_null(strstr(info.dli_fname, "libwebsockets"));
    lws_set_log_level(LLL_ERR | LLL_WARN | LLL_NOTICE, lws_capture);
    lws_lines = 0;
    _lws_log(LLL_WARN, "probe %d\n", 7);
    assert_int_equal(lws_lines, 1);
    assert_non_null(strstr(lws_last, "probe 7"));
    _lws_log(LLL_PARSER, "byte %c\n", 'x');
    _lws_log(LLL_DEBUG, "debug\n");
    assert_int_equal(lws_lines, 1);
    lws_set_log_level(LLL_ERR | LLL_WARN, NULL);
}

/* cairnd's uv_poll_start (http_uvpoll.c) stands in for libuv's on the
 * program's handles. What epoll holds for a descriptor is read from
 * /proc/self/fdinfo of the loop's epoll descriptor: its event mask, or -1
 * when it is not registered. libuv 1.44's own uv_poll_start takes the
 * descriptor out of epoll at once on every call (the mask is back only
 * after the next poll); cairnd's leaves it there, and changes the mask at
 * the next poll. The events delivered are those asked for, before and
 * after each change. */
static int uvp_seen;
static int uvp_calls;

static void uvp_cb(uv_poll_t *p, int status, int events)
{
    (void)p;
    assert_int_equal(status, 0);
    uvp_seen |= events;
    uvp_calls++;
}

static long uvp_registered(uv_loop_t *loop, int fd)
{
    char path[64];
    char line[256];
    long mask = -1;
    snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", uv_backend_fd(loop));
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        int tfd;
        unsigned ev;
        if (sscanf(line, "tfd: %d events: %x", &tfd, &ev) == 2 && tfd == fd) {
            mask = (long)(ev & (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI));
        }
    }
    fclose(f);
    return mask;
}

static int uvp_turn(uv_loop_t *loop)
{
    uvp_seen = 0;
    uvp_calls = 0;
    uv_run(loop, UV_RUN_NOWAIT);
    return uvp_seen;
}

static void uv_poll_start_in_place(void **state)
{
    (void)state;
    Dl_info info;
    uv_loop_t loop;
    uv_poll_t p;
    int sv[2];
    uint64_t kept0, changed0, kept, changed;
    bool active;
    http__uvpoll_counts(&kept0, &changed0, &active);
    assert_true(dladdr((void *)&uv_poll_start, &info) != 0);
    assert_null(strstr(info.dli_fname, "libuv"));
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(uv_poll_init(&loop, &p, sv[0]), 0);

    /* a first start is libuv's: registered at the next poll */
    assert_int_equal(uv_poll_start(&p, UV_READABLE, uvp_cb), 0);
    assert_int_equal(uvp_turn(&loop), 0);
    assert_int_equal(uvp_registered(&loop, sv[0]), EPOLLIN);
    if (!active) {
        skip(); /* not libuv 1.44: every call went to libuv */
    }
    /* the same events: epoll is not touched */
    assert_int_equal(uv_poll_start(&p, UV_READABLE, uvp_cb), 0);
    assert_int_equal(uvp_registered(&loop, sv[0]), EPOLLIN);
    /* more events: still registered, the new mask at the next poll, and
     * the socket's room reported */
    assert_int_equal(uv_poll_start(&p, UV_READABLE | UV_WRITABLE, uvp_cb), 0);
    assert_int_equal(uvp_registered(&loop, sv[0]), EPOLLIN);
    assert_int_equal(uvp_turn(&loop), UV_WRITABLE);
    assert_int_equal(uvp_registered(&loop, sv[0]), EPOLLIN | EPOLLOUT);
    /* fewer events: the room is no longer reported */
    assert_int_equal(uv_poll_start(&p, UV_READABLE, uvp_cb), 0);
    assert_int_equal(uvp_turn(&loop), 0);
    assert_int_equal(uvp_calls, 0);
    assert_int_equal(uvp_registered(&loop, sv[0]), EPOLLIN);
    assert_int_equal(write(sv[1], "x", 1), 1);
    assert_int_equal(uvp_turn(&loop), UV_READABLE);
    char c;
    assert_int_equal(read(sv[0], &c, 1), 1);
    /* a change and back before any poll: the mask asked for last */
    assert_int_equal(uv_poll_start(&p, UV_WRITABLE, uvp_cb), 0);
    assert_int_equal(uv_poll_start(&p, UV_READABLE | UV_DISCONNECT, uvp_cb), 0);
    assert_int_equal(uvp_turn(&loop), 0);
    assert_int_equal(uvp_registered(&loop, sv[0]), EPOLLIN | EPOLLRDHUP);
    http__uvpoll_counts(&kept, &changed, &active);
    assert_int_equal(kept - kept0, 1);
    assert_int_equal(changed - changed0, 4);
    /* a stop is libuv's, and so is the start after it */
    assert_int_equal(uv_poll_stop(&p), 0);
    assert_int_equal(uvp_registered(&loop, sv[0]), -1);
    assert_int_equal(uv_poll_start(&p, UV_WRITABLE, uvp_cb), 0);
    assert_int_equal(uvp_turn(&loop), UV_WRITABLE);
    /* the peer's hang-up still reaches a handle changed in place */
    assert_int_equal(uv_poll_start(&p, UV_READABLE | UV_DISCONNECT, uvp_cb), 0);
    close(sv[1]);
    assert_true((uvp_turn(&loop) & UV_DISCONNECT) != 0);
    uv_close((uv_handle_t *)&p, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    close(sv[0]);
}

const struct CMUnitTest http_stream_tests[] = {
    cmocka_unit_test(split_newline_separated),
    cmocka_unit_test(split_adjacent_and_spaced),
    cmocka_unit_test(split_braces_inside_strings),
    cmocka_unit_test(split_scalars_and_garbage),
    cmocka_unit_test(split_unterminated_runs_to_end),
    cmocka_unit_test(split_empty_and_blank),
    cmocka_unit_test(stream_paths),
    cmocka_unit_test(ack_read_plain_shapes),
    cmocka_unit_test(ack_read_leaves_the_rest),
    cmocka_unit_test(ack_read_agrees_with_jansson),
    cmocka_unit_test(lws_log_interposed),
    cmocka_unit_test(uv_poll_start_in_place),
};
const size_t http_stream_tests_count =
    sizeof(http_stream_tests) / sizeof(http_stream_tests[0]);

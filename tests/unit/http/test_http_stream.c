/*
 * test_http_stream.c - the pure parts of the gateway's streams: splitting
 * a body of several JSON request messages (as etcd's gateway reads them
 * with a JSON decoder, one value after another) and the routing of stream
 * paths with their aliases. The streams themselves run against a real
 * cairnd in tests/compat/http_watch.test and ws_watch.test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "registry/http/http_int.h"

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

const struct CMUnitTest http_stream_tests[] = {
    cmocka_unit_test(split_newline_separated),
    cmocka_unit_test(split_adjacent_and_spaced),
    cmocka_unit_test(split_braces_inside_strings),
    cmocka_unit_test(split_scalars_and_garbage),
    cmocka_unit_test(split_unterminated_runs_to_end),
    cmocka_unit_test(split_empty_and_blank),
    cmocka_unit_test(stream_paths),
};
const size_t http_stream_tests_count =
    sizeof(http_stream_tests) / sizeof(http_stream_tests[0]);

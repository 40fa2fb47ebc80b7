/*
 * test_http_chunked.c - the chunked request-body decoder (http_chunked.c):
 * valid bodies decode to their data whatever the read boundaries (every
 * two-way split and byte by byte give the same result and stop at the same
 * byte), bytes after the body are left alone, every malformed form fails
 * with Go's wording, the body bound is enforced at the size line (at the
 * bound and one past), extensions and trailers at their bounds and one
 * past, and a failed allocation is an error, not a crash. The decoder on a
 * real connection: tests/integration/http_body.test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/err.h"
#include "registry/http/http_int.h"

#include "test_http_chunked.h"

#define CAP 4096

struct result {
    int rc;
    size_t used;
    struct buf out;
    const char *why;
};

/* Feed in[0..len) in pieces of step bytes (0: two pieces split at cut). */
static void feed(const char *in, size_t len, size_t step, size_t cut,
                 size_t cap, struct result *r)
{
    struct http_chunked ck;
    size_t off = 0;
    http__chunked_init(&ck);
    buf_init(&r->out, cap);
    r->rc = 0;
    r->used = 0;
    while (off < len && r->rc == 0) {
        size_t n = step != 0 ? step : (off < cut ? cut : len - off);
        size_t used = 0;
        if (n > len - off) {
            n = len - off;
        }
        r->rc = http__chunked_feed(&ck, (const uint8_t *)in + off, n, &r->out,
                                   &used);
        assert_true(used <= n);
        if (r->rc == 0) {
            assert_int_equal(used, n);
        }
        off += used;
    }
    r->used = off;
    r->why = ck.why;
}

/* Decode whole, then every split and byte by byte: all the same. */
static void decode_all_ways(const char *in, size_t len, size_t cap,
                            struct result *whole)
{
    feed(in, len, len, 0, cap, whole);
    for (size_t cut = 0; cut <= len; cut++) {
        for (size_t step = 0; step <= 1; step++) {
            struct result r;
            feed(in, len, step, cut, cap, &r);
            assert_int_equal(r.rc, whole->rc);
            assert_int_equal(r.used, whole->used);
            assert_int_equal(r.out.len, whole->out.len);
            if (whole->out.len > 0) {
                assert_memory_equal(r.out.data, whole->out.data,
                                    whole->out.len);
            }
            buf_free(&r.out);
        }
    }
}

static void expect_body(const char *in, const char *data)
{
    struct result r;
    decode_all_ways(in, strlen(in), CAP, &r);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.used, strlen(in));
    assert_int_equal(r.out.len, strlen(data));
    if (r.out.len > 0) {
        assert_memory_equal(r.out.data, data, r.out.len);
    }
    buf_free(&r.out);
}

static void expect_bad(const char *in, size_t len, const char *why)
{
    struct result r;
    decode_all_ways(in, len, CAP, &r);
    assert_int_equal(r.rc, ERR_BAD_REQUEST);
    assert_non_null(r.why);
    assert_string_equal(r.why, why);
    buf_free(&r.out);
}

static void chunked_valid_bodies(void **state)
{
    (void)state;
    expect_body("0\r\n\r\n", "");
    expect_body("000\r\n\r\n", "");
    expect_body("3\r\nabc\r\n0\r\n\r\n", "abc");
    expect_body("1\r\na\r\n2\r\nbc\r\n3\r\ndef\r\n0\r\n\r\n", "abcdef");
    expect_body("A\r\n0123456789\r\n0\r\n\r\n", "0123456789");
    expect_body("a\r\n0123456789\r\n0\r\n\r\n", "0123456789");
    expect_body("0003\r\nabc\r\n0\r\n\r\n", "abc");
    expect_body("3 \t\r\nabc\r\n0\r\n\r\n", "abc");
    expect_body("3;x=y;z=\"q r\"\r\nabc\r\n0;last\r\n\r\n", "abc");
    expect_body("3 ;x\r\nabc\r\n0\r\n\r\n", "abc");
    expect_body("3\r\na\r\n\r\n0\r\n\r\n", "a\r\n");
    expect_body("3\r\nabc\r\n0\r\nX-T: 1\r\nOther:two\r\n\r\n", "abc");
    /* 16 digits are allowed (Go too), here with a value that fits */
    expect_body("0000000000000002\r\nab\r\n0\r\n\r\n", "ab");
}

static void chunked_stops_at_the_end_of_the_body(void **state)
{
    (void)state;
    const char *in = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    struct result r;
    decode_all_ways(in, strlen(in), CAP, &r);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.used, strlen("3\r\nabc\r\n0\r\n\r\n"));
    assert_int_equal(r.out.len, 3);
    buf_free(&r.out);
    /* incomplete bodies want more, with everything consumed */
    const char *parts[] = {"",
                           "3",
                           "3\r",
                           "3\r\nab",
                           "3\r\nabc\r\n0\r\n",
                           "3\r\nabc\r\n0\r\nX: 1\r\n"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        decode_all_ways(parts[i], strlen(parts[i]), CAP, &r);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.used, strlen(parts[i]));
        buf_free(&r.out);
    }
}

static void chunked_malformed(void **state)
{
    (void)state;
    expect_bad("zz\r\n", 4, "invalid byte in chunk length");
    expect_bad("-5\r\n", 4, "invalid byte in chunk length");
    expect_bad("\r\nabc", 5, "invalid byte in chunk length");
    expect_bad(";x\r\n", 4, "invalid byte in chunk length");
    expect_bad("3 4\r\n", 5, "invalid byte in chunk length");
    expect_bad("3\nabc", 5, "invalid byte in chunk length");
    expect_bad("3\r\r\n", 4, "invalid byte in chunk length");
    expect_bad("00000000000000001\r\n", 19, "http chunk length too large");
    expect_bad("3\r\nabcX\r\n", 9, "malformed chunked encoding");
    expect_bad("3\r\nabc\rX", 8, "malformed chunked encoding");
    expect_bad("3\r\nabc\n0\r\n", 10, "malformed chunked encoding");
    expect_bad("3;a\x01"
               "b\r\n",
               7, "invalid byte in chunk extension");
    expect_bad("3;a\x7f\r\n", 6, "invalid byte in chunk extension");
    expect_bad("3;a\nb\r\n", 7, "invalid byte in chunk extension");
    expect_bad("0\r\n X: 1\r\n\r\n", 12, "malformed chunked trailer");
    expect_bad("0\r\n:x\r\n\r\n", 9, "malformed chunked trailer");
    expect_bad("0\r\n\n", 4, "malformed chunked trailer");
    expect_bad("0\r\nX: 1\n\r\n", 10, "malformed chunked trailer");
    expect_bad("0\r\nX: 1\rY\r\n", 11, "malformed chunked trailer");
    expect_bad("0\r\n\rX", 5, "malformed chunked trailer");
    expect_bad("0\r\nX:\0\r\n\r\n", 10, "malformed chunked trailer");
}

static void chunked_body_bound(void **state)
{
    (void)state;
    char in[256];
    struct result r;
    /* cap 10: 4 + 6 fits exactly; a chunk of 7 after 4 does not */
    snprintf(in, sizeof(in), "4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n");
    decode_all_ways(in, strlen(in), 10, &r);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.out.len, 10);
    buf_free(&r.out);
    snprintf(in, sizeof(in), "4\r\nabcd\r\n7\r\nefghijk\r\n0\r\n\r\n");
    decode_all_ways(in, strlen(in), 10, &r);
    assert_int_equal(r.rc, ERR_LIMIT);
    /* refused at the size line, before any of its data */
    assert_int_equal(r.used, strlen("4\r\nabcd\r\n7"));
    assert_int_equal(r.out.len, 4);
    buf_free(&r.out);
    /* a size that does not fit in memory at all */
    decode_all_ways("ffffffffffffffff\r\n", 18, 10, &r);
    assert_int_equal(r.rc, ERR_LIMIT);
    buf_free(&r.out);
}

static void chunked_extension_and_trailer_bounds(void **state)
{
    (void)state;
    static char in[3 * HTTP_CHUNK_TRAILER_BYTES];
    struct result r;
    size_t n;
    /* extensions: exactly HTTP_CHUNK_EXT_BYTES (";" and the rest) */
    n = (size_t)snprintf(in, sizeof(in), "1;");
    memset(in + n, 'e', HTTP_CHUNK_EXT_BYTES - 1);
    n += HTTP_CHUNK_EXT_BYTES - 1;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\nx\r\n0\r\n\r\n");
    feed(in, n, n, 0, CAP, &r);
    assert_int_equal(r.rc, 1);
    buf_free(&r.out);
    n = (size_t)snprintf(in, sizeof(in), "1;");
    memset(in + n, 'e', HTTP_CHUNK_EXT_BYTES);
    n += HTTP_CHUNK_EXT_BYTES;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\nx\r\n0\r\n\r\n");
    feed(in, n, n, 0, CAP, &r);
    assert_int_equal(r.rc, ERR_BAD_REQUEST);
    assert_string_equal(r.why, "chunk extensions too long");
    buf_free(&r.out);
    /* trailers: exactly HTTP_CHUNK_TRAILER_BYTES, final CRLF included */
    n = (size_t)snprintf(in, sizeof(in), "0\r\nX:");
    memset(in + n, 't', HTTP_CHUNK_TRAILER_BYTES - 6);
    n += HTTP_CHUNK_TRAILER_BYTES - 6;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n\r\n");
    feed(in, n, n, 0, CAP, &r);
    assert_int_equal(r.rc, 1);
    buf_free(&r.out);
    n = (size_t)snprintf(in, sizeof(in), "0\r\nX:");
    memset(in + n, 't', HTTP_CHUNK_TRAILER_BYTES - 5);
    n += HTTP_CHUNK_TRAILER_BYTES - 5;
    n += (size_t)snprintf(in + n, sizeof(in) - n, "\r\n\r\n");
    feed(in, n, n, 0, CAP, &r);
    assert_int_equal(r.rc, ERR_BAD_REQUEST);
    assert_string_equal(r.why, "chunked trailer too long");
    buf_free(&r.out);
}

static void chunked_allocation_failures(void **state)
{
    (void)state;
    const char *in = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    int succeeded = 0;
    for (unsigned long n = 1; n < 20 && !succeeded; n++) {
        struct result r;
        mem_fail_after(n, 1);
        feed(in, strlen(in), 1, 0, CAP, &r);
        mem_fail_after(0, 0);
        if (r.rc == 1) {
            assert_int_equal(r.out.len, 11);
            assert_memory_equal(r.out.data, "hello world", 11);
            succeeded = 1;
        } else {
            assert_int_equal(r.rc, -ENOMEM);
        }
        buf_free(&r.out);
    }
    assert_true(succeeded);
}

const struct CMUnitTest http_chunked_tests[] = {
    cmocka_unit_test(chunked_valid_bodies),
    cmocka_unit_test(chunked_stops_at_the_end_of_the_body),
    cmocka_unit_test(chunked_malformed),
    cmocka_unit_test(chunked_body_bound),
    cmocka_unit_test(chunked_extension_and_trailer_bounds),
    cmocka_unit_test(chunked_allocation_failures),
};
const size_t http_chunked_tests_count =
    sizeof(http_chunked_tests) / sizeof(http_chunked_tests[0]);

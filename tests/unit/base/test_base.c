/*
 * test_base.c - unit tests for base/: errors, buffers, varints, CRC32C, PRNG,
 * limits, logging and the failing allocator.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/discard.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"
#include "base/prng.h"
#include "base/jscan.h"
#include "base/str.h"

static void err_codes_do_not_collide_with_errno(void **state)
{
    (void)state;
    assert_true(ERR_KEY_NOT_PROVIDED < -ERR_BASE);
    assert_true(err_is_ours(ERR_NOSPACE));
    assert_false(err_is_ours(-ENOENT));
    assert_false(err_is_ours(0));
    assert_string_equal(
        err_str(ERR_COMPACTED),
        "etcdserver: mvcc: required revision has been compacted");
    assert_string_equal(err_str(ERR_DUPLICATE_KEY),
                        "etcdserver: duplicate key given in txn request");
    assert_string_equal(err_str(-ENOENT), strerror(ENOENT));
    assert_string_equal(err_str(0), "ok");
    assert_string_equal(err_name(ERR_NOSPACE), "NOSPACE");
    assert_null(err_name(-EIO));
    assert_string_equal(err_str(-ERR_BASE - 100000), "cairn: unknown error");
}

static void buf_grows_and_stops_at_its_cap(void **state)
{
    struct buf b;
    (void)state;
    buf_init(&b, 1000);
    for (int i = 0; i < 125; i++) {
        assert_int_equal(buf_append_be64(&b, (uint64_t)i), 0);
    }
    assert_int_equal(b.len, 1000);
    assert_int_equal(buf_append_u8(&b, 1), ERR_LIMIT);
    assert_int_equal(b.len, 1000); /* unchanged after the error */
    assert_int_equal(be64_get(b.data + 8 * 77), 77);
    buf_free(&b);
}

static void buf_reports_enomem_and_stays_usable(void **state)
{
    struct buf b;
    (void)state;
    buf_init(&b, 0);
    mem_fail_after(1, 0);
    assert_int_equal(buf_append(&b, "abc", 3), -ENOMEM);
    assert_int_equal(b.len, 0);
    assert_int_equal(buf_append(&b, "abc", 3), 0); /* only one failure */
    mem_fail_after(0, 0);
    assert_memory_equal(b.data, "abc", 3);
    buf_free(&b);
}

static void varints_round_trip_and_reject_malformed(void **state)
{
    uint8_t p[10];
    uint64_t v;
    static const uint64_t cases[] = {
        0, 1, 127, 128, 300, 1ull << 35, UINT64_MAX, UINT64_MAX - 1};
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = varint_put(p, cases[i]);
        assert_int_equal(varint_get(p, n, &v), n);
        assert_true(v == cases[i]);
        assert_int_equal(varint_get(p, n - 1, &v), 0); /* truncated */
    }
    memset(p, 0xff, sizeof(p));
    assert_int_equal(varint_get(p, sizeof(p), &v), 0); /* 10 bytes, no end */
    p[9] = 0x02;
    assert_int_equal(varint_get(p, sizeof(p), &v), 0); /* > 64 bits */
}

static void reader_fails_sticky_on_truncation(void **state)
{
    uint8_t data[5] = {0, 0, 0, 7, 9};
    struct reader r;
    uint32_t v32;
    uint64_t v64;
    uint8_t v8;
    (void)state;
    reader_init(&r, data, sizeof(data));
    assert_int_equal(reader_be32(&r, &v32), 0);
    assert_int_equal(v32, 7);
    assert_int_equal(reader_be64(&r, &v64), ERR_TRUNCATED);
    assert_int_equal(reader_u8(&r, &v8), ERR_TRUNCATED); /* sticky */
}

static void crc32c_matches_known_vectors(void **state)
{
    uint8_t zeros[32] = {0};
    uint8_t big[4099];
    (void)state;
    /* RFC 3720 B.4 and the common check value. */
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(0, zeros, sizeof(zeros)), 0x8A9136AAu);
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 31 + 7);
    }
    for (size_t len = 0; len < sizeof(big); len += 97) {
        assert_int_equal(crc32c(0, big, len), crc32c_sw(0, big, len));
    }
    /* Incremental equals one shot. */
    assert_int_equal(crc32c(crc32c(0, big, 1000), big + 1000, 3099),
                     crc32c(0, big, 4099));
}

static void prng_is_deterministic_per_seed(void **state)
{
    struct prng a;
    struct prng b;
    int hist[10] = {0};
    (void)state;
    prng_seed(&a, 42);
    prng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) {
        assert_true(prng_next(&a) == prng_next(&b));
    }
    prng_seed(&b, 43);
    assert_true(prng_next(&a) != prng_next(&b));
    for (int i = 0; i < 10000; i++) {
        uint64_t x = prng_below(&a, 10);
        assert_true(x < 10);
        hist[x]++;
    }
    for (int i = 0; i < 10; i++) {
        assert_in_range(hist[i], 800, 1200);
    }
    for (int i = 0; i < 1000; i++) {
        uint64_t x = prng_range(&a, 5, 7);
        assert_in_range(x, 5, 7);
    }
}

static void limits_reject_values_past_the_hard_max(void **state)
{
    struct limits l;
    (void)state;
    limits_init(&l);
    assert_int_equal(l.v[LIMIT_TXN_OPS], 128);
    assert_int_equal(l.v[LIMIT_REQUEST_BYTES], 1572864);
    assert_int_equal(limits_set(&l, "max-txn-ops", 65536), 0);
    assert_int_equal(limits_set(&l, "max-txn-ops", 65537), ERR_LIMIT);
    assert_int_equal(l.v[LIMIT_TXN_OPS], 65536);
    assert_int_equal(limits_set(&l, "no-such-limit", 1), ERR_INVALID);
}

static void log_writes_one_json_line_per_event(void **state)
{
    char out[1024] = {0};
    FILE *f = fmemopen(out, sizeof(out) - 1, "w");
    enum log_level lv;
    enum log_format fm;
    (void)state;
    assert_non_null(f);
    log_setup(LOG_INFO, LOG_FORMAT_JSON, f);
    LOGD("test", "hidden %d", 1);
    LOGI("test", "quote \" and\nnewline");
    fclose(f);
    log_setup(LOG_INFO, LOG_FORMAT_TEXT, NULL);
    assert_non_null(strstr(out, "\"level\":\"info\""));
    assert_non_null(strstr(out, "\"msg\":\"quote \\\" and newline\""));
    assert_null(strstr(out, "hidden"));
    assert_non_null(strchr(out, '\n'));
    assert_ptr_equal(strchr(out, '\n'), strrchr(out, '\n')); /* one line */
    assert_int_equal(log_level_parse("WARN", &lv), 0);
    assert_int_equal(lv, LOG_WARN);
    assert_int_equal(log_level_parse("loud", &lv), -EINVAL);
    assert_int_equal(log_format_parse("json", &fm), 0);
    assert_int_equal(log_format_parse("xml", &fm), -EINVAL);
}

/* A call site outside input repeats logs LOG_LIMIT_BURST lines a window;
 * the first line after a held-back run says how many were held. */
static void log_limit_holds_back_a_flood(void **state)
{
    struct log_limit l = {0};
    unsigned long long held = 99;
    (void)state;
    for (int i = 0; i < LOG_LIMIT_BURST; i++) {
        assert_true(log_limit_pass(&l, 5000 + i, &held));
        assert_int_equal(held, 0);
    }
    for (int i = 0; i < 25; i++) {
        assert_false(log_limit_pass(&l, 5100 + i, &held));
    }
    /* still the same window */
    assert_false(log_limit_pass(&l, 5000 + LOG_LIMIT_WINDOW_MS - 1, &held));
    assert_true(log_limit_pass(&l, 5000 + LOG_LIMIT_WINDOW_MS, &held));
    assert_int_equal(held, 26);
    assert_true(log_limit_pass(&l, 5000 + LOG_LIMIT_WINDOW_MS + 1, &held));
    assert_int_equal(held, 0);
    /* a clock that went back starts a window rather than holding forever */
    struct log_limit m = {0};
    for (int i = 0; i <= LOG_LIMIT_BURST; i++) {
        (void)log_limit_pass(&m, 90000, &held);
    }
    assert_true(log_limit_pass(&m, 1000, &held));
    assert_int_equal(held, 1);

    /* Through the macro: 40 events, 10 lines and no report yet. */
    char out[8192] = {0};
    FILE *f = fmemopen(out, sizeof(out) - 1, "w");
    assert_non_null(f);
    log_setup(LOG_INFO, LOG_FORMAT_TEXT, f);
    for (int i = 0; i < 40; i++) {
        LOGW_LIMITED("test", "refused request %d", i);
    }
    fclose(f);
    log_setup(LOG_INFO, LOG_FORMAT_TEXT, NULL);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++) {
        lines++;
    }
    assert_int_equal(lines, LOG_LIMIT_BURST);
    assert_non_null(strstr(out, "refused request 9\n"));
    assert_null(strstr(out, "refused request 10\n"));
}

/* str_utf8_safe: well-formed text comes back as it is; anything else as
 * a copy that is well-formed UTF-8, each bad byte a '?', cut at a
 * character's end (the JSON error bodies of the config and registry APIs
 * quote parser messages that may hold input bytes). */
static void str_utf8_safe_makes_utf8(void **state)
{
    (void)state;
    char tmp[16];
    const char *ok = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";
    assert_ptr_equal(str_utf8_safe(ok, tmp, sizeof(tmp)), ok);
    assert_string_equal(str_utf8_safe("a\xff"
                                      "b",
                                      tmp, sizeof(tmp)),
                        "a?b");
    /* overlong, a surrogate, past U+10FFFF, cut short at the end */
    assert_string_equal(str_utf8_safe("\xc0\xaf", tmp, sizeof(tmp)), "??");
    assert_string_equal(str_utf8_safe("\xed\xa0\x80", tmp, sizeof(tmp)), "???");
    assert_string_equal(str_utf8_safe("\xf4\x90\x80\x80", tmp, sizeof(tmp)),
                        "????");
    assert_string_equal(str_utf8_safe("x\xe2\x82", tmp, sizeof(tmp)), "x??");
    /* cut at cap - 1 bytes, never inside a character */
    assert_string_equal(str_utf8_safe("\xff\xc3\xa9\xc3\xa9", tmp, 5),
                        "?\xc3\xa9");
    assert_string_equal(str_utf8_safe("\xff\xc3\xa9", tmp, 3), "?");
    assert_string_equal(str_utf8_safe("\xff", tmp, 1), "");
    struct prng r;
    prng_seed(&r, 7);
    for (int i = 0; i < 20000; i++) {
        char in[24], out[12];
        size_t n = 1 + prng_below(&r, sizeof(in) - 1);
        for (size_t k = 0; k + 1 < n; k++) {
            in[k] = (char)(1 + prng_below(&r, 255));
        }
        in[n - 1] = '\0';
        size_t cap = 1 + prng_below(&r, sizeof(out));
        const char *got = str_utf8_safe(in, out, cap);
        const unsigned char *g = (const unsigned char *)got;
        size_t len = strlen(got);
        for (size_t k = 0; k < len;) {
            size_t m = str_utf8_seq(g + k, len - k);
            assert_true(m > 0);
            k += m;
        }
        assert_true(got == in || len < cap);
    }
}

/* str_list_has: whole elements only, first, middle, last, empty. */
static void str_list_has_matches_whole_elements(void **state)
{
    (void)state;
    const char *l = "localhost,example.com,::1";
    assert_true(str_list_has(l, "localhost", 9));
    assert_true(str_list_has(l, "example.com", 11));
    assert_true(str_list_has(l, "::1", 3));
    assert_false(str_list_has(l, "local", 5));
    assert_false(str_list_has(l, "example.com,::1", 15));
    assert_false(str_list_has(l, "", 0));
    assert_true(str_list_has("a,,b", "", 0));
    assert_true(str_list_has("*", "*", 1));
}

/* str_join and str_hex_u64 write what snprintf writes, cut the same way
 * at every buffer size, and return the same length. */
static void str_helpers_match_snprintf(void **state)
{
    (void)state;
    static const char *const parts[] = {"",     "a",        "/registry/",
                                        "ns-1", "services", "x.y_z"};
    struct prng r;
    prng_seed(&r, 42);
    for (int i = 0; i < 5000; i++) {
        const char *a = parts[prng_below(&r, 6)];
        const char *b = parts[prng_below(&r, 6)];
        const char *c = parts[prng_below(&r, 6)];
        size_t cap = (size_t)prng_below(&r, 40);
        char want[48], got[48];
        memset(want, 'W', sizeof(want));
        memset(got, 'W', sizeof(got));
        int wn = snprintf(cap > 0 ? want : NULL, cap, "%s%s%s", a, b, c);
        size_t gn = str_join(cap > 0 ? got : NULL, cap, a, b, c, NULL);
        assert_int_equal((size_t)wn, gn);
        assert_memory_equal(want, got, sizeof(want));
    }
    uint64_t xs[] = {0, 1, 15, 16, 0xdeadbeef, UINT64_MAX, 0x7fffffffffffffff};
    for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]) + 1000; i++) {
        uint64_t x = i < sizeof(xs) / sizeof(xs[0]) ? xs[i] : prng_next(&r);
        char want[STR_HEX_U64_BYTES], got[STR_HEX_U64_BYTES];
        int wn = snprintf(want, sizeof(want), "%" PRIx64, x);
        assert_int_equal((size_t)wn, str_hex_u64(x, got));
        assert_string_equal(want, got);
    }
    int64_t ds[] = {0, 1, -1, 9, 10, -10, 65535, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]) + 1000; i++) {
        int64_t x = i < sizeof(ds) / sizeof(ds[0])
                        ? ds[i]
                        : (int64_t)(prng_next(&r) >> (prng_next(&r) % 64));
        x = i % 2 == 0 || x == INT64_MIN ? x : -x;
        char want[STR_DEC_I64_BYTES], got[STR_DEC_I64_BYTES];
        int wn = snprintf(want, sizeof(want), "%" PRId64, x);
        assert_int_equal((size_t)wn, str_dec_i64(x, got));
        assert_string_equal(want, got);
    }
}

static void jscan_real_writes_the_fewest_digits(void **state)
{
    (void)state;
    static const struct {
        double x;
        const char *t;
    } cases[] = {
        {0.3, "0.3"},
        {0.1 + 0.2, "0.30000000000000004"},
        {0.8, "0.8"},
        {33.3, "33.3"},
        {37.774929123456789, "37.774929123456786"},
        {1.0, "1.0"},
        {-0.0, "-0.0"},
        {-2.5, "-2.5"},
        {1e300, "1e300"},
        {1e-5, "1e-5"},
        {1.5e-300, "1.5e-300"},
        {5e-324, "5e-324"},
        {1.7976931348623157e308, "1.7976931348623157e308"},
        {123456789012345680.0, "1.2345678901234568e17"},
        {1e15, "1000000000000000.0"},
        {1e17, "1e17"},
        {100.0, "100.0"},
    };
    char t[JSCAN_REAL_MAX];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = jscan_real(t, cases[i].x);
        assert_string_equal(t, cases[i].t);
        assert_int_equal(n, strlen(cases[i].t));
    }
    /* any double: reads back as itself, never longer than jansson's %.17g
     * (plus its ".0") */
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof(d));
        if (d != d || d - d != 0) {
            continue; /* NaN, an infinity: not JSON */
        }
        if (i % 2 == 0) {
            d = (double)(x % 1000000) / 1000.0; /* short decimals */
        }
        size_t n = jscan_real(t, d);
        char j[40];
        int m = snprintf(j, sizeof(j), "%.17g", d);
        assert_true(n > 0 && n <= (size_t)m + 2);
        assert_true(strtod(t, NULL) == d);
        assert_true(strchr(t, '.') != NULL || strchr(t, 'e') != NULL);
        assert_null(strstr(t, "e+"));
    }
}

static void jscan_takes_plain_pieces_only(void **state)
{
    (void)state;
    const char *s;
    size_t n;
    int64_t v;
    const char t1[] = " \t\r\n\"ab c\"";
    const char *e1 = t1 + sizeof(t1) - 1;
    const char *p = jscan_ws(t1, e1);
    assert_ptr_equal(p, t1 + 4);
    assert_ptr_equal(jscan_str(p, e1, &s, &n), e1);
    assert_int_equal(n, 4);
    assert_memory_equal(s, "ab c", 4);
    static const char *const bad_str[] = {"\"a\\\"\"", "\"\xc3\xa9\"",
                                          "\"a\x7f\"", "\"a\tb\"",
                                          "\"open",    "x\"a\""};
    for (size_t i = 0; i < sizeof(bad_str) / sizeof(bad_str[0]); i++) {
        const char *t = bad_str[i];
        assert_null(jscan_str(t, t + strlen(t), &s, &n));
    }
    static const struct {
        const char *t;
        int64_t v;
    } ok_int[] = {{"0", 0},
                  {"-0", 0},
                  {"7,", 7},
                  {"-12}", -12},
                  {"999999999999999999", 999999999999999999}};
    for (size_t i = 0; i < sizeof(ok_int) / sizeof(ok_int[0]); i++) {
        const char *t = ok_int[i].t;
        assert_non_null(jscan_int(t, t + strlen(t), &v));
        assert_int_equal(v, ok_int[i].v);
    }
    static const char *const bad_int[] = {
        "01", "-", "1.5", "2e3", "1E1", "1000000000000000000", "x", ""};
    for (size_t i = 0; i < sizeof(bad_int) / sizeof(bad_int[0]); i++) {
        const char *t = bad_int[i];
        assert_null(jscan_int(t, t + strlen(t), &v));
    }
}

/* The block cache: a freed small block comes back for the next allocation
 * of its size class, the per-thread byte cap holds, big blocks bypass it,
 * and failure injection counts cached allocations too. */
static void mem_cache_reuses_within_its_bounds(void **state)
{
    (void)state;
    if (!MEM_CACHE_ON) {
        skip(); /* AddressSanitizer build: a pass-through */
    }
    void *a = mem_cache_alloc(300);
    assert_non_null(a);
    memset(a, 0xab, 300);
    mem_cache_free(a, 300);
    /* 300 and 320 are one class (64-byte steps): the same block */
    void *b = mem_cache_alloc(320);
    assert_ptr_equal(a, b);
    memset(b, 0xcd, 320); /* the class's whole size is usable */
    /* a different class does not get it */
    mem_cache_free(b, 320);
    void *c = mem_cache_alloc(200);
    assert_ptr_not_equal(c, b);
    mem_cache_free(c, 200);
    /* failure injection: the next allocation fails even from the cache */
    mem_fail_after(1, 0);
    assert_null(mem_cache_alloc(300));
    mem_fail_after(0, 0);
    void *d = mem_cache_alloc(300);
    assert_ptr_equal(d, b);
    mem_cache_free(d, 300);
    /* over MEM_CACHE_BLOCK_MAX: plain allocations, never cached */
    void *big = mem_cache_alloc(MEM_CACHE_BLOCK_MAX + 1);
    assert_non_null(big);
    memset(big, 1, MEM_CACHE_BLOCK_MAX + 1);
    mem_cache_free(big, MEM_CACHE_BLOCK_MAX + 1);
    /* the byte cap: free far more than it in one class; the cache keeps
     * no more than the cap, and fills it */
    size_t before = mem_cache_bytes();
    enum { N = 3 * (int)(MEM_CACHE_BYTES_MAX / 1024) };
    void **v = malloc(N * sizeof(*v));
    assert_non_null(v);
    /* twice: the second round's allocations empty the class again (the
     * rest come from malloc), its frees fill it to the cap again */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            v[i] = mem_cache_alloc(1000);
            assert_non_null(v[i]);
        }
        assert_true(mem_cache_bytes() <= before);
        for (int i = 0; i < N; i++) {
            mem_cache_free(v[i], 1000);
        }
        assert_true(mem_cache_bytes() <= MEM_CACHE_BYTES_MAX);
        assert_true(mem_cache_bytes() > MEM_CACHE_BYTES_MAX - 1024);
    }
    free(v);
}

static void put_file(const char *path, const char *text, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

/* discard_rename hands back the replaced file open and whole, with the new
 * one under its name; a failed rename leaves both names as they were; a
 * file shrunk by discard_fd goes to nothing. */
static void discard_rename_keeps_the_old_file_open(void **state)
{
    char dir[] = "/tmp/cairn-discard-XXXXXX";
    char from[64], to[64], got[16] = {0};
    struct stat st;
    int old = -2;
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(from, sizeof(from), "%s/new", dir);
    snprintf(to, sizeof(to), "%s/cur", dir);

    /* nothing to replace: no descriptor */
    put_file(from, "first", 5);
    assert_int_equal(discard_rename(from, to, dir, &old), 0);
    assert_int_equal(old, -1);

    put_file(from, "second", 6);
    assert_int_equal(discard_rename(from, to, dir, &old), 0);
    assert_true(old >= 0);
    assert_int_equal(pread(old, got, sizeof(got) - 1, 0), 5);
    assert_string_equal(got, "first");
    assert_int_equal(fstat(old, &st), 0);
    assert_int_equal(st.st_nlink, 0); /* unlinked, blocks held */
    assert_int_equal(access(from, F_OK), -1);
    memset(got, 0, sizeof(got));
    int fd = open(to, O_RDONLY);
    assert_int_equal(read(fd, got, sizeof(got) - 1), 6);
    close(fd);
    assert_string_equal(got, "second");
    discard_fd(old);

    /* a failed rename (no such source) closes what it opened */
    old = -2;
    assert_int_equal(discard_rename(from, to, dir, &old), -ENOENT);
    assert_int_equal(old, -1);
    assert_int_equal(access(to, F_OK), 0);
    /* and a directory that cannot be synced fails it, the file closed */
    put_file(from, "third", 5);
    char nodir[96];
    snprintf(nodir, sizeof(nodir), "%s/none", dir);
    assert_int_equal(discard_rename(from, to, nodir, &old), -ENOENT);
    assert_int_equal(old, -1);
    assert_int_equal(discard_sync_dir(dir), 0);

    assert_int_equal(discard_path(to), 0);
    assert_int_equal(discard_path(to), -ENOENT);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(err_codes_do_not_collide_with_errno),
        cmocka_unit_test(buf_grows_and_stops_at_its_cap),
        cmocka_unit_test(buf_reports_enomem_and_stays_usable),
        cmocka_unit_test(varints_round_trip_and_reject_malformed),
        cmocka_unit_test(reader_fails_sticky_on_truncation),
        cmocka_unit_test(crc32c_matches_known_vectors),
        cmocka_unit_test(prng_is_deterministic_per_seed),
        cmocka_unit_test(limits_reject_values_past_the_hard_max),
        cmocka_unit_test(log_writes_one_json_line_per_event),
        cmocka_unit_test(log_limit_holds_back_a_flood),
        cmocka_unit_test(str_helpers_match_snprintf),
        cmocka_unit_test(str_list_has_matches_whole_elements),
        cmocka_unit_test(str_utf8_safe_makes_utf8),
        cmocka_unit_test(jscan_takes_plain_pieces_only),
        cmocka_unit_test(jscan_real_writes_the_fewest_digits),
        cmocka_unit_test(mem_cache_reuses_within_its_bounds),
        cmocka_unit_test(discard_rename_keeps_the_old_file_open),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}

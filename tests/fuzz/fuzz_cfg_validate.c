/*
 * fuzz_cfg_validate.c - the config center's pure library (config/) on
 * arbitrary bytes: cfg_validate in every format, cfg_properties_parse,
 * and cfg_diff between two halves of the input.
 *
 * Goal: never a crash, leak or hang; each call ends in one of its
 * documented codes; a refusal names a line and column inside the input;
 * the .properties parse agrees with its validation and hands out UTF-8;
 * and every diff is a patch that turns its first input into its second,
 * with a full budget and with a tiny one (the coarse path), checked by
 * applying it here with a strict unified-diff reader.
 *
 * Input: byte 0 picks the format (mod 4); byte 1 picks where the rest
 * splits into the diff's two sides (byte * rest / 255) and, from its low
 * bits, a small work budget for the second diff; the rest is the content.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "config/cfg_int.h"
#include "config/config.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 8192

/* Well-formed UTF-8, NUL allowed (a decoded \u0000). */
static bool utf8_ok(const uint8_t *p, size_t n)
{
    struct cfg_error e;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == 0) {
            return utf8_ok(p, i) && utf8_ok(p + i + 1, n - i - 1);
        }
    }
    return cfg__utf8_check((const char *)p, n, &e) == 0;
}

static int on_pair(void *ctx, const char *key, size_t key_len,
                   const char *value, size_t value_len, int line)
{
    int *last = ctx;
    FUZZ_CHECK(utf8_ok((const uint8_t *)key, key_len));
    FUZZ_CHECK(utf8_ok((const uint8_t *)value, value_len));
    FUZZ_CHECK(line >= *last);
    *last = line;
    return 0;
}

/* ------------------------------------------------------ patch reader */

struct cur {
    const uint8_t *p;
    size_t len, off;
};

/* The next line of c (with its "\n", if any): *s, *n. */
static bool next_line(struct cur *c, const uint8_t **s, size_t *n)
{
    if (c->off >= c->len) {
        return false;
    }
    const uint8_t *e = memchr(c->p + c->off, '\n', c->len - c->off);
    *s = c->p + c->off;
    *n = e != NULL ? (size_t)(e - *s) + 1 : c->len - c->off;
    c->off += *n;
    return true;
}

static size_t num(const uint8_t **s)
{
    size_t v = 0;
    FUZZ_CHECK(**s >= '0' && **s <= '9');
    while (**s >= '0' && **s <= '9') {
        v = v * 10 + (size_t)(**s - '0');
        (*s)++;
    }
    return v;
}

/* "l" or "l,s" -> first line index (0-based) and count. */
static void range(const uint8_t **s, size_t *first, size_t *count)
{
    size_t l = num(s);
    *count = 1;
    if (**s == ',') {
        (*s)++;
        *count = num(s);
    }
    *first = *count == 0 ? l : l - 1;
    FUZZ_CHECK(*count == 0 || l >= 1);
}

/* Apply the unified diff d to a; the result must be b. */
static void apply(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                  const struct buf *d)
{
    struct cur ca = {a, alen, 0};
    struct cur cd = {d->data, d->len, 0};
    struct buf out;
    const uint8_t *s, *t;
    size_t n, tn, aline = 0, bline = 0; /* lines read of a, written of b */
    buf_init(&out, 0);
    FUZZ_CHECK(next_line(&cd, &s, &n) && n == 6 &&
               memcmp(s, "--- A\n", 6) == 0);
    FUZZ_CHECK(next_line(&cd, &s, &n) && n == 6 &&
               memcmp(s, "+++ B\n", 6) == 0);
    while (next_line(&cd, &s, &n)) {
        size_t af, ac, bf, bc;
        FUZZ_CHECK(n > 4 && memcmp(s, "@@ -", 4) == 0);
        s += 4;
        range(&s, &af, &ac);
        FUZZ_CHECK(*s++ == ' ' && *s++ == '+');
        range(&s, &bf, &bc);
        FUZZ_CHECK(memcmp(s, " @@\n", 4) == 0);
        FUZZ_CHECK(af >= aline);
        for (; aline < af; aline++, bline++) { /* unchanged, before it */
            FUZZ_CHECK(next_line(&ca, &t, &tn));
            FUZZ_CHECK(buf_append(&out, t, tn) == 0);
        }
        FUZZ_CHECK(bf == bline);
        while (ac > 0 || bc > 0) {
            FUZZ_CHECK(next_line(&cd, &s, &n) && n >= 2);
            char op = (char)s[0];
            size_t tl = n - 1;
            /* "\ No newline at end of file" takes the "\n" away. */
            if (cd.off < cd.len && cd.p[cd.off] == '\\') {
                const uint8_t *m;
                size_t mn;
                FUZZ_CHECK(next_line(&cd, &m, &mn));
                FUZZ_CHECK(s[n - 1] == '\n');
                tl--;
            }
            if (op == ' ' || op == '-') {
                FUZZ_CHECK(ac > 0 && next_line(&ca, &t, &tn));
                FUZZ_CHECK(tn == tl && memcmp(t, s + 1, tl) == 0);
                aline++;
                ac--;
            }
            if (op == ' ' || op == '+') {
                FUZZ_CHECK(bc > 0);
                FUZZ_CHECK(buf_append(&out, s + 1, tl) == 0);
                bline++;
                bc--;
            }
            FUZZ_CHECK(op == ' ' || op == '-' || op == '+');
        }
    }
    while (next_line(&ca, &t, &tn)) {
        FUZZ_CHECK(buf_append(&out, t, tn) == 0);
    }
    FUZZ_CHECK(out.len == blen);
    FUZZ_CHECK(blen == 0 || memcmp(out.data, b, blen) == 0);
    buf_free(&out);
}

static void diff(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                 unsigned long long cost)
{
    struct buf d;
    struct cfg__diff_stats st;
    buf_init(&d, 0);
    int rc = cfg__diff_cost((const char *)a, alen, (const char *)b, blen, "A",
                            "B", &d, cost, &st);
    FUZZ_CHECK(rc == 0);
    if (alen == blen && (alen == 0 || memcmp(a, b, alen) == 0)) {
        FUZZ_CHECK(d.len == 0);
    } else {
        FUZZ_CHECK(d.len > 0);
        apply(a, alen, b, blen, &d);
    }
    buf_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cfg_error e;
    if (size < 2 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    enum cfg_format f = (enum cfg_format)(data[0] % CFG_FORMAT_COUNT);
    unsigned cut = data[1];
    const char *c = (const char *)data + 2;
    size_t len = size - 2;

    int rc = cfg_validate(f, c, len, &e);
    FUZZ_CHECK(rc == 0 || rc == ERR_INVALID || rc == ERR_LIMIT);
    FUZZ_CHECK(memchr(e.message, '\0', sizeof(e.message)) != NULL);
    if (rc != 0) {
        FUZZ_CHECK(e.message[0] != '\0');
        FUZZ_CHECK(e.line >= 1 && e.column >= 1);
        FUZZ_CHECK((size_t)e.line <= len + 1 && (size_t)e.column <= len + 1);
    }
    bool text_ok = cfg_validate(CFG_FORMAT_TEXT, c, len, &e) == 0;
    FUZZ_CHECK(text_ok ==
               (utf8_ok(data + 2, len) && memchr(c, 0, len) == NULL));

    int last = 1;
    int prc = cfg_properties_parse(c, len, on_pair, &last, &e);
    FUZZ_CHECK(prc == 0 || prc == ERR_INVALID);
    FUZZ_CHECK(prc == cfg_validate(CFG_FORMAT_PROPERTIES, c, len, &e));

    size_t at = len * cut / 255;
    diff(data + 2, at, data + 2 + at, len - at, CFG_DIFF_COST_MAX);
    diff(data + 2, at, data + 2 + at, len - at, cut & 63);
    return 0;
}

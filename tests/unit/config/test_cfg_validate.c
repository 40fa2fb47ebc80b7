/*
 * test_cfg_validate.c - cfg_validate and cfg_properties_parse
 * (config/cfg_validate.c, config/cfg_props.c).
 *
 * Goal: each format accepts what its reference reader accepts and refuses
 * the rest with the 1-based line and character column of the problem;
 * .properties files decode to exactly the pairs java.util.Properties.load
 * would put. Method: hand-written cases. There is no JVM here, so the
 * expected pairs were worked out from the javadoc of Properties.load
 * (Reader) (Java SE 17) and the LineReader / loadConvert code it
 * describes; each case names the rule it checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "config/config.h"

/* ------------------------------------------------------------ formats */

static void formats(void **state)
{
    (void)state;
    enum cfg_format f = CFG_FORMAT_TEXT;
    assert_int_equal(cfg_format_parse("yaml", &f), 0);
    assert_int_equal(f, CFG_FORMAT_YAML);
    assert_int_equal(cfg_format_parse("YML", &f), 0);
    assert_int_equal(f, CFG_FORMAT_YAML);
    assert_int_equal(cfg_format_parse("json", &f), 0);
    assert_int_equal(f, CFG_FORMAT_JSON);
    assert_int_equal(cfg_format_parse("Properties", &f), 0);
    assert_int_equal(f, CFG_FORMAT_PROPERTIES);
    assert_int_equal(cfg_format_parse("txt", &f), 0);
    assert_int_equal(f, CFG_FORMAT_TEXT);
    assert_int_equal(cfg_format_parse("xml", &f), ERR_INVALID);
    assert_int_equal(cfg_format_parse("", &f), ERR_INVALID);
    assert_int_equal(cfg_format_parse(NULL, &f), ERR_INVALID);
    for (int i = 0; i < CFG_FORMAT_COUNT; i++) {
        enum cfg_format g;
        assert_int_equal(cfg_format_parse(cfg_format_name(i), &g), 0);
        assert_int_equal(g, i);
    }
    assert_string_equal(cfg_format_name(CFG_FORMAT_COUNT), "unknown");
    struct cfg_error e;
    assert_int_equal(cfg_validate((enum cfg_format)9, "x", 1, &e), ERR_INVALID);
}

/* Refused as f at line:column, with msg in the message. */
static void refused(enum cfg_format f, const char *s, size_t len, int rc,
                    int line, int column, const char *msg)
{
    struct cfg_error e;
    int got = cfg_validate(f, s, len, &e);
    if (got != rc || e.line != line || e.column != column ||
        strstr(e.message, msg) == NULL) {
        fail_msg("%s \"%.*s\": got %s at %d:%d \"%s\", wanted %s at %d:%d "
                 "\"%s\"",
                 cfg_format_name(f), (int)len, s, err_name(got), e.line,
                 e.column, e.message, err_name(rc), line, column, msg);
    }
}

static void accepted(enum cfg_format f, const char *s)
{
    struct cfg_error e;
    int rc = cfg_validate(f, s, strlen(s), &e);
    if (rc != 0) {
        fail_msg("%s \"%s\" refused: %s at %d:%d", cfg_format_name(f), s,
                 e.message, e.line, e.column);
    }
    assert_string_equal(e.message, "");
}

/* RFC 3629 section 4 for every format; positions count characters and
 * break lines at \n, \r\n and \r. */
static void utf8_everywhere(void **state)
{
    (void)state;
    for (int f = 0; f < CFG_FORMAT_COUNT; f++) {
        refused(f, "ab\xff", 3, ERR_INVALID, 1, 3, "invalid UTF-8");
        refused(f, "\xc0\xaf", 2, ERR_INVALID, 1, 1, "0xc0");    /* overlong */
        refused(f, "\xe0\x80\xaf", 3, ERR_INVALID, 1, 1, "UTF"); /* overlong */
        refused(f, "\xed\xa0\x80", 3, ERR_INVALID, 1, 1, "UTF"); /* U+D800 */
        refused(f, "\xf4\x90\x80\x80", 4, ERR_INVALID, 1, 1, "UTF"); /* big */
        refused(f, "\xf5\x80\x80\x80", 4, ERR_INVALID, 1, 1, "UTF");
        refused(f, "a\xc3", 2, ERR_INVALID, 1, 2, "UTF"); /* truncated */
        refused(f, "\xc3\xa9\xe2\x82", 4, ERR_INVALID, 1, 2, "UTF");
        refused(f, "\xc3\xa9\x80", 3, ERR_INVALID, 1, 2, "0x80"); /* stray */
        refused(f, "a\0b", 3, ERR_INVALID, 1, 2, "NUL");
        refused(f, "a\nb\r\nc\rd\xff", 9, ERR_INVALID, 4, 2, "UTF");
        refused(f, "\xc3\xa9t\xc3\xa9\n\xe2\x82\xac\xf0\x9f\x98\x80\xff", 14,
                ERR_INVALID, 2, 3, "UTF");
    }
    accepted(CFG_FORMAT_TEXT, "");
    accepted(CFG_FORMAT_TEXT, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
                              "\xf4\x8f\xbf\xbf\xef\xbf\xbf\x7f\x01");
    struct cfg_error e;
    assert_int_equal(cfg_validate(CFG_FORMAT_TEXT, NULL, 0, &e), 0);
    assert_int_equal(cfg_validate(CFG_FORMAT_TEXT, "x", 1, NULL), 0);
}

static void size_limit(void **state)
{
    (void)state;
    char *big = malloc(CFG_CONTENT_MAX + 1);
    assert_non_null(big);
    memset(big, 'a', CFG_CONTENT_MAX + 1);
    struct cfg_error e;
    for (int f = 0; f < CFG_FORMAT_COUNT; f++) {
        /* "aaa...": text, a JSON error, a YAML scalar, a key. */
        int rc = cfg_validate(f, big, CFG_CONTENT_MAX, &e);
        assert_int_equal(rc, f == CFG_FORMAT_JSON ? ERR_INVALID : 0);
        assert_int_equal(cfg_validate(f, big, CFG_CONTENT_MAX + 1, &e),
                         ERR_LIMIT);
        assert_int_equal(e.line, 0);
        assert_non_null(strstr(e.message, "1048577 bytes"));
    }
    assert_int_equal(
        cfg_properties_parse(big, CFG_CONTENT_MAX + 1, NULL, NULL, &e),
        ERR_LIMIT);
    free(big);
}

/* ------------------------------------------------------------------ JSON */

static void json(void **state)
{
    (void)state;
    const enum cfg_format J = CFG_FORMAT_JSON;
    accepted(J, "{\"a\": [1, 2.5, true, null, \"x\"], \"b\": {}}");
    accepted(J, "42");      /* any value at the top (RFC 8259 section 2) */
    accepted(J, "\"s\"");   /* idem */
    accepted(J, " [ ] \n"); /* whitespace around */
    accepted(J, "123456789012345678901234567890"); /* past 64 bits */
    accepted(J, "{\"a\": \"\\u0000\\ud83d\\ude00\"}");
    accepted(J, "{\"a\": 1, \"A\": 2}");
    /* Errors point at the start of the token jansson names. */
    refused(J, "[1,]", 4, ERR_INVALID, 1, 4, "unexpected token");
    refused(J, "{\n  \"a\": tru\n}", 14, ERR_INVALID, 2, 8, "invalid token");
    refused(J, "{\"a\":1,\"a\":2}", 13, ERR_INVALID, 1, 8, "duplicate");
    refused(J, "{\"a\":1,\r\n \"a\":2}", 16, ERR_INVALID, 2, 2, "duplicate");
    refused(J, "{\"\xc3\xa9\":1,\"\xc3\xa9\":2}", 15, ERR_INVALID, 1, 8,
            "duplicate");
    refused(J, "{\"a\":1}}", 8, ERR_INVALID, 1, 8, "end of file expected");
    refused(J, "1e400", 5, ERR_INVALID, 1, 1, "overflow");
    refused(J, "[\"\\ud800\"]", 10, ERR_INVALID, 1, 2, "invalid Unicode");
    refused(J, "[\"a\nb\"]", 7, ERR_INVALID, 1, 2, "newline");
    /* Nothing more to read: the end of the input. */
    refused(J, "", 0, ERR_INVALID, 1, 1, "end of file");
    refused(J, "[1,2\n", 5, ERR_INVALID, 2, 1, "end of file");
    refused(J, "{\"a\":", 5, ERR_INVALID, 1, 6, "end of file");
    /* jansson's own depth bound (2048) holds the recursion. */
    char deep[5000];
    memset(deep, '[', sizeof(deep));
    refused(J, deep, sizeof(deep), ERR_INVALID, 1, 2049, "depth");
}

/* ------------------------------------------------------------------ YAML */

static void yaml(void **state)
{
    (void)state;
    const enum cfg_format Y = CFG_FORMAT_YAML;
    accepted(Y, "");
    accepted(Y, "# only a comment\n");
    accepted(Y, "a: 1\nb:\n  - x\n  - {c: d}\n");
    accepted(Y, "---\na: 1\n---\nb: 2\n...\n"); /* a multi-document stream */
    accepted(Y, "a: &x 1\nb: *x\n");
    accepted(Y, "k: \"caf\xc3\xa9\"\r\nl: 2\r\n");
    refused(Y, "a: b: c", 7, ERR_INVALID, 1, 5, "mapping values");
    refused(Y, "a: [1, 2", 8, ERR_INVALID, 2, 1,
            "while parsing a flow sequence (line 1, column 4): did not "
            "find expected ',' or ']'");
    refused(Y, "a:\n\tb: 1", 8, ERR_INVALID, 2, 1, "cannot start any token");
    refused(Y, "a: \x01", 4, ERR_INVALID, 1, 4, "control characters");
    refused(Y, "---\na: 1\n---\nb: [\n", 18, ERR_INVALID, 5, 1,
            "did not find expected node content"); /* 2nd document */
    refused(Y, "a:\n  - b\n c: d\n", 15, ERR_INVALID, 3, 2,
            "did not find expected key");
    /* Repeated keys in one mapping (block and flow, quoted or not, deep
     * down), and aliases to no anchor, which libyaml lets through. */
    refused(Y, "a: 1\nb: 2\na: 3\n", strlen("a: 1\nb: 2\na: 3\n"), ERR_INVALID,
            3, 1, "duplicate key \"a\"");
    refused(Y, "x:\n  y:\n    k: 1\n    \"k\": 2\n",
            strlen("x:\n  y:\n    k: 1\n    \"k\": 2\n"), ERR_INVALID, 4, 5,
            "duplicate key \"k\"");
    refused(Y, "{p: 1, q: 2, p: 3}", strlen("{p: 1, q: 2, p: 3}"), ERR_INVALID,
            1, 14, "duplicate key");
    refused(Y, "- a: 1\n  a: 2\n", strlen("- a: 1\n  a: 2\n"), ERR_INVALID, 2,
            3, "duplicate key");
    refused(Y, "a: *nope\n", strlen("a: *nope\n"), ERR_INVALID, 1, 4,
            "alias *nope names no anchor");
    refused(Y, "a: *x\nb: &x 1\n", strlen("a: *x\nb: &x 1\n"), ERR_INVALID, 1,
            4, "alias *x");
    refused(Y, "---\na: &x 1\n---\nb: *x\n",
            strlen("---\na: &x 1\n---\nb: *x\n"), ERR_INVALID, 4, 4,
            "alias *x"); /* anchors are per document */
    /* The same key in different mappings, in different documents, 1 and
     * "1", true and "true", the merge key twice: all fine. */
    accepted(Y, "a: {k: 1}\nb: {k: 2}\nk: 3\n");
    accepted(Y, "---\na: 1\n---\na: 2\n");
    accepted(Y, "1: x\n\"1\": y\ntrue: a\n\"true\": b\n~: n\n\"~\": m\n");
    accepted(Y, "b: &b {x: 1}\nc: &c {y: 2}\nd:\n  <<: *b\n  <<: *c\n");
    accepted(Y, "s:\n  - {a: 1}\n  - {a: 1}\n? [k]\n: 1\n? [k]\n: 2\n");
    /* Many keys: linear time and memory (the table grows). */
    {
        size_t cap = 1000000, n = 0;
        char *big = malloc(cap);
        assert_non_null(big);
        for (int k = 0; k < 50000; k++) {
            n += (size_t)snprintf(big + n, cap - n, "key%d: %d\n", k, k);
        }
        accepted(Y, big);
        n += (size_t)snprintf(big + n, cap - n, "key49999: again\n");
        struct cfg_error e2;
        assert_int_equal(cfg_validate(Y, big, n, &e2), ERR_INVALID);
        assert_int_equal(e2.line, 50001);
        free(big);
    }
    /* Nesting: CFG_YAML_DEPTH_MAX levels pass, one more is refused. */
    char deep[2 * CFG_YAML_DEPTH_MAX + 2];
    memset(deep, '[', CFG_YAML_DEPTH_MAX);
    memset(deep + CFG_YAML_DEPTH_MAX, ']', CFG_YAML_DEPTH_MAX);
    struct cfg_error e;
    assert_int_equal(cfg_validate(Y, deep, 2 * CFG_YAML_DEPTH_MAX, &e), 0);
    memset(deep, '[', CFG_YAML_DEPTH_MAX + 1);
    memset(deep + CFG_YAML_DEPTH_MAX + 1, ']', CFG_YAML_DEPTH_MAX + 1);
    refused(Y, deep, sizeof(deep), ERR_LIMIT, 1, CFG_YAML_DEPTH_MAX + 1,
            "nested deeper");
}

/* ------------------------------------------------------------ properties */

struct pairs {
    char text[2048];
    size_t len;
    int stop_after; /* stop the parse after this many pairs (0: never) */
    int seen;
};

/* Record "key|value|line;" with control bytes as \xNN. */
static int collect(void *ctx, const char *key, size_t key_len,
                   const char *value, size_t value_len, int line)
{
    struct pairs *p = ctx;
    const char *parts[2] = {key, value};
    size_t lens[2] = {key_len, value_len};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < lens[k]; i++) {
            unsigned char c = (unsigned char)parts[k][i];
            p->len +=
                (size_t)snprintf(p->text + p->len, sizeof(p->text) - p->len,
                                 c < 0x20 ? "\\x%02x" : "%c", c);
        }
        p->len +=
            (size_t)snprintf(p->text + p->len, sizeof(p->text) - p->len, "|");
    }
    p->len += (size_t)snprintf(p->text + p->len, sizeof(p->text) - p->len,
                               "%d;", line);
    p->seen++;
    return p->stop_after != 0 && p->seen == p->stop_after ? 7 : 0;
}

/* Parse s; the pairs must be want ("key|value|line;" each). */
static void props(const char *s, const char *want, const char *rule)
{
    struct pairs p;
    struct cfg_error e;
    memset(&p, 0, sizeof(p));
    int rc = cfg_properties_parse(s, strlen(s), collect, &p, &e);
    if (rc != 0 || strcmp(p.text, want) != 0) {
        fail_msg("%s: \"%s\" gave %s \"%s\", wanted \"%s\"", rule, s,
                 err_name(rc), p.text, want);
    }
    assert_int_equal(cfg_validate(CFG_FORMAT_PROPERTIES, s, strlen(s), &e), 0);
}

static void properties_pairs(void **state)
{
    (void)state;
    props("", "", "empty input");
    props("a=b", "a|b|1;", "key=value");
    props("a:b", "a|b|1;", "':' separates like '='");
    props("a b", "a|b|1;", "a blank ends the key");
    props("a\tb", "a|b|1;", "\\t is a blank");
    props("a\fb", "a|b|1;", "\\f is a blank");
    props("  a  =  b  ", "a|b  |1;",
          "blanks before the key and around '=' skipped, trailing kept");
    props("a = = b", "a|= b|1;", "only one separator is skipped");
    props("a :=b", "a|=b|1;", "blank ended the key, then one ':' skipped");
    props("a==b", "a|=b|1;", "the key ended at '=': the next '=' is value");
    props("a=b=c:d", "a|b=c:d|1;", "separators in the value stay");
    props("a", "a||1;", "a key alone has an empty value");
    props("a=", "a||1;", "empty value");
    props("=b", "|b|1;", "empty key");
    props(":", "||1;", "empty key and value");
    props("# c\n! c\n  # c\nk=v", "k|v|4;", "# and ! comments, after blanks");
    props("k=v # not a comment", "k|v # not a comment|1;",
          "# inside a value is text");
    props("\\#k=v", "#k|v|1;", "an escaped # is a key");
    props("a\\=b=c", "a=b|c|1;", "escaped '=' belongs to the key");
    props("a\\:b\\ c=d", "a:b c|d|1;", "escaped ':' and blank in the key");
    props("a=\\t\\n\\r\\f", "a|\\x09\\x0a\\x0d\\x0c|1;",
          "\\t \\n \\r \\f escapes");
    props("a=\\q\\\\\\\"", "a|q\\\"|1;", "other escapes drop the backslash");
    props("a=\\u0041\\u00e9\\u20AC", "a|A\xc3\xa9\xe2\x82\xac|1;",
          "\\uXXXX escapes, either case of hex");
    props("\\u0041=1", "A|1|1;", "escapes in keys");
    props("a=\\uD83D\\uDE00", "a|\xf0\x9f\x98\x80|1;",
          "a surrogate pair makes one character");
    props("a=\\uD83Dx\\uDE00", "a|\xef\xbf\xbdx\xef\xbf\xbd|1;",
          "lone surrogates become U+FFFD");
    props("a=\\u0000", "a|\\x00|1;", "\\u0000 is a NUL in the value");
    props("k\xc3\xa9=\xe2\x82\xac", "k\xc3\xa9|\xe2\x82\xac|1;",
          "UTF-8 passes through (load(Reader))");
    props("a=1\nb=2\rc=3\r\nd=4\n", "a|1|1;b|2|2;c|3|3;d|4|4;",
          "\\n, \\r and \\r\\n end lines");
    props("\n\n  \n\t\f\na=1\n\n", "a|1|5;", "blank lines are ignored");
    props("a=b\\\n   c", "a|bc|1;",
          "continuation: backslash, newline and leading blanks dropped");
    props("a=b\\\r\n\tc\nd=e", "a|bc|1;d|e|3;", "continuation over \\r\\n");
    props("a=b\\\rc", "a|bc|1;", "continuation over \\r");
    props("a=b\\\\\nc=d", "a|b\\|1;c|d|2;",
          "an even number of backslashes does not continue");
    props("a=b\\\\\\\nc", "a|b\\c|1;", "an odd number does");
    props("key\\\n  word = v", "keyword|v|1;", "a key can continue");
    props("a=b\\\n  # not a comment", "a|b# not a comment|1;",
          "a continuation line is never a comment");
    props("a=b\\\n\nc=d", "a|b|1;c|d|3;",
          "a continuation onto an empty line ends the logical line");
    props("a=b\\\n", "a|b|1;", "a continuation at the end of input");
    props("a=b\\", "a|b|1;", "a backslash at the end of input is dropped");
    props("\\", "||1;", "a lone backslash is an empty key");
    props("a=1\n# c \\\nb=2", "a|1|1;b|2|3;",
          "a comment line does not continue");
    props("\\\n#x=y", "",
          "JDK 9+ quirk: a logical line still empty when '#' comes is a "
          "comment (JDK 8 read key \"#x\")");
    props("\\\n  \\\n a=b", "a|b|1;", "empty continuations");
    props("a\\u0020b=c", "a b|c|1;", "an escaped blank does not end a key");
    props("a=1\na=2", "a|1|1;a|2|2;", "duplicates are all reported");
}

static void properties_errors(void **state)
{
    (void)state;
    const enum cfg_format P = CFG_FORMAT_PROPERTIES;
    /* The only IllegalArgumentException of loadConvert: fewer than four
     * characters after \u, or one of them not hex. */
    refused(P, "a=\\u004", 7, ERR_INVALID, 1, 3, "Malformed \\uxxxx");
    refused(P, "a=\\u00G1", 8, ERR_INVALID, 1, 3, "Malformed");
    refused(P, "a=\\uu0041", 9, ERR_INVALID, 1, 3, "Malformed");
    refused(P, "\\u12=x", 6, ERR_INVALID, 1, 1, "Malformed"); /* key ends */
    refused(P, "\\u12 34", 7, ERR_INVALID, 1, 1, "Malformed");
    refused(P, "x=1\nk\xc3\xa9=\xe2\x82\xac\\u12", 15, ERR_INVALID, 2, 5,
            "Malformed");
    refused(P, "a=b\\\n  \\u12", 11, ERR_INVALID, 2, 3, "Malformed");
    refused(P, "a=\\u12\\\\\r\n34", 12, ERR_INVALID, 1, 3, "Malformed");
    /* The escape joined across a continuation is whole: no error. */
    struct pairs p;
    struct cfg_error e;
    memset(&p, 0, sizeof(p));
    assert_int_equal(
        cfg_properties_parse("a=\\u00\\\n  41", 12, collect, &p, &e), 0);
    assert_string_equal(p.text, "a|A|1;");
    /* Pairs before the error were reported. */
    memset(&p, 0, sizeof(p));
    assert_int_equal(cfg_properties_parse("x=1\ny=\\u", 8, collect, &p, &e),
                     ERR_INVALID);
    assert_string_equal(p.text, "x|1|1;");
    assert_int_equal(e.line, 2);
    assert_int_equal(e.column, 3);
    /* The callback's nonzero answer stops the parse and is returned. */
    memset(&p, 0, sizeof(p));
    p.stop_after = 1;
    assert_int_equal(cfg_properties_parse("a=1\nb=2", 7, collect, &p, &e), 7);
    assert_int_equal(p.seen, 1);
}

int test_cfg_validate_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(formats),
        cmocka_unit_test(utf8_everywhere),
        cmocka_unit_test(size_limit),
        cmocka_unit_test(json),
        cmocka_unit_test(yaml),
        cmocka_unit_test(properties_pairs),
        cmocka_unit_test(properties_errors),
    };
    return cmocka_run_group_tests_name("cfg_validate", tests, NULL, NULL);
}

/*
 * test_cfg_gray.c - gray rules, labels, buckets and names
 * (config/cfg_gray.c).
 *
 * Goal: buckets are sticky, spread evenly and nest (10% is inside 20%);
 * rules and label strings parse as config.h says, every bad input is
 * refused naming the field, and bounds hold at the limit and one past it.
 * Method: the SHA-256 underneath is checked against OpenSSL on many
 * lengths; buckets over 1,000 and 10,000 client ids; hand-written rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "base/err.h"
#include "config/cfg_int.h"
#include "config/config.h"

static void sha256_matches_openssl(void **state)
{
    (void)state;
    uint8_t data[300];
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7 + 3);
    }
    /* Every length around the 55/56/64-byte padding edges and beyond,
     * fed in two pieces split anywhere. */
    for (size_t len = 0; len < sizeof(data); len++) {
        uint8_t want[32], got[32];
        unsigned wl = 0;
        assert_int_equal(EVP_Digest(data, len, want, &wl, EVP_sha256(), NULL),
                         1);
        size_t cut = len / 3;
        const void *p[2] = {data, data + cut};
        size_t l[2] = {cut, len - cut};
        cfg__sha256(p, l, 2, got);
        assert_memory_equal(got, want, 32);
    }
}

static void buckets(void **state)
{
    (void)state;
    char id[32];
    unsigned in10 = 0, again = 0, hist[10] = {0};
    struct cfg_gray_rule ten = {.kind = CFG_GRAY_PERCENTAGE,
                                .basis_points = 1000};
    struct cfg_gray_rule twenty = {.kind = CFG_GRAY_PERCENTAGE,
                                   .basis_points = 2000};
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "client-%d", i);
        unsigned b = cfg_gray_bucket("ns/app/db.yaml", id);
        assert_true(b < 10000);
        assert_int_equal(b, cfg_gray_bucket("ns/app/db.yaml", id));
        bool m = cfg_gray_match(&ten, "ns/app/db.yaml", id, NULL);
        in10 += m;
        again += cfg_gray_match(&ten, "ns/app/db.yaml", id, NULL);
        /* Widening keeps everyone already in. */
        assert_true(!m || cfg_gray_match(&twenty, "ns/app/db.yaml", id, NULL));
    }
    print_message("# 10%% of 1000 clients: %u matched\n", in10);
    assert_in_range(in10, 70, 130);
    assert_int_equal(again, in10);
    /* An even spread over 10,000 ids: each tenth of the range within
     * 15% of its 1,000. */
    for (int i = 0; i < 10000; i++) {
        snprintf(id, sizeof(id), "%d", i);
        hist[cfg_gray_bucket("cfg", id) / 1000]++;
    }
    for (int i = 0; i < 10; i++) {
        assert_in_range(hist[i], 850, 1150);
    }
    /* The config id matters, and the separator keeps ("ab","c") apart
     * from ("a","bc"). */
    unsigned same = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "c%d", i);
        same += cfg_gray_bucket("x", id) == cfg_gray_bucket("y", id);
    }
    assert_true(same < 5);
    /* Pinned: a change of hash or layout would move every client. The
     * value is SHA-256("ns/app/cfg\0client-1")[0..8] mod 10000. */
    uint8_t md[32];
    unsigned wl = 0;
    assert_int_equal(
        EVP_Digest("ns/app/cfg\0client-1", 19, md, &wl, EVP_sha256(), NULL), 1);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | md[i];
    }
    assert_int_equal(cfg_gray_bucket("ns/app/cfg", "client-1"), v % 10000);
}

static void percentage_edges(void **state)
{
    (void)state;
    struct cfg_gray_rule r = {.kind = CFG_GRAY_PERCENTAGE, .basis_points = 0};
    char id[16];
    for (int i = 0; i < 200; i++) {
        snprintf(id, sizeof(id), "%d", i);
        r.basis_points = 0;
        assert_false(cfg_gray_match(&r, "c", id, NULL));
        r.basis_points = 10000;
        assert_true(cfg_gray_match(&r, "c", id, NULL));
    }
    /* No client id: never in a percentage, even 100%. */
    assert_false(cfg_gray_match(&r, "c", NULL, NULL));
    assert_false(cfg_gray_match(&r, "c", "", NULL));
}

static json_t *js(const char *text)
{
    json_t *v = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    return v;
}

static void rule_ok(const char *text, enum cfg_gray_kind kind, unsigned bp,
                    const char *back)
{
    struct cfg_gray_rule r;
    char msg[CFG_MSG_MAX];
    json_t *v = js(text);
    int rc = cfg_gray_rule_parse(v, &r, msg, sizeof(msg));
    if (rc != 0) {
        fail_msg("%s refused: %s", text, msg);
    }
    assert_int_equal(r.kind, kind);
    if (kind == CFG_GRAY_PERCENTAGE) {
        assert_int_equal(r.basis_points, bp);
    }
    json_t *out = cfg_gray_rule_to_json(&r);
    assert_non_null(out);
    char *s = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(10));
    assert_string_equal(s, back);
    /* What we render parses back to the same rule. */
    struct cfg_gray_rule r2;
    assert_int_equal(cfg_gray_rule_parse(out, &r2, msg, sizeof(msg)), 0);
    assert_int_equal(r2.kind, r.kind);
    assert_int_equal(r2.basis_points, r.basis_points);
    assert_int_equal(r2.labels.count, r.labels.count);
    free(s);
    json_decref(out);
    json_decref(v);
}

static void rule_bad(const char *text, const char *field)
{
    struct cfg_gray_rule r;
    char msg[CFG_MSG_MAX] = "";
    json_t *v = js(text);
    int rc = cfg_gray_rule_parse(v, &r, msg, sizeof(msg));
    if (rc != ERR_BAD_REQUEST || strncmp(msg, field, strlen(field)) != 0) {
        fail_msg("%s: got %s \"%s\", wanted a message on %s", text,
                 err_name(rc), msg, field);
    }
    assert_int_equal(r.kind, 0);
    json_decref(v);
}

static void rules(void **state)
{
    (void)state;
    rule_ok("{\"percentage\":10}", CFG_GRAY_PERCENTAGE, 1000,
            "{\"percentage\":10}");
    rule_ok("{\"percentage\":0}", CFG_GRAY_PERCENTAGE, 0, "{\"percentage\":0}");
    rule_ok("{\"percentage\":100}", CFG_GRAY_PERCENTAGE, 10000,
            "{\"percentage\":100}");
    rule_ok("{\"percentage\":12.5}", CFG_GRAY_PERCENTAGE, 1250,
            "{\"percentage\":12.5}");
    rule_ok("{\"percentage\":33.33}", CFG_GRAY_PERCENTAGE, 3333,
            "{\"percentage\":33.33}");
    rule_ok("{\"percentage\":0.01}", CFG_GRAY_PERCENTAGE, 1,
            "{\"percentage\":0.01}");
    rule_ok("{\"percentage\":100.0}", CFG_GRAY_PERCENTAGE, 10000,
            "{\"percentage\":100}");
    rule_ok("{\"labels\":{\"zone\":\"eu-1\",\"canary\":\"true\"}}",
            CFG_GRAY_LABELS, 0,
            "{\"labels\":{\"zone\":\"eu-1\",\"canary\":\"true\"}}");
    rule_bad("[]", "rule");
    rule_bad("{}", "rule");
    rule_bad("{\"percentage\":1,\"labels\":{\"a\":\"b\"}}", "rule");
    rule_bad("{\"percentage\":10,\"extra\":1}", "extra");
    rule_bad("{\"percentage\":101}", "percentage");
    rule_bad("{\"percentage\":-1}", "percentage");
    rule_bad("{\"percentage\":100.01}", "percentage");
    rule_bad("{\"percentage\":12.345}", "percentage");
    rule_bad("{\"percentage\":\"10\"}", "percentage");
    rule_bad("{\"percentage\":true}", "percentage");
    rule_bad("{\"percentage\":null}", "percentage");
    rule_bad("{\"labels\":{}}", "labels");
    rule_bad("{\"labels\":[\"a\"]}", "labels");
    rule_bad("{\"labels\":{\"a\":1}}", "labels.a");
    rule_bad("{\"labels\":{\"a b\":\"c\"}}", "labels");
    rule_bad("{\"labels\":{\"a\":\"c d\"}}", "labels");
    rule_bad("{\"labels\":{\"\":\"c\"}}", "labels");
}

static void labels_parse(void **state)
{
    (void)state;
    struct cfg_labels l;
    char msg[CFG_MSG_MAX];
    const char *s = "zone=eu-1,app.k8s.io/name=web_2,empty=";
    assert_int_equal(cfg_labels_parse(s, strlen(s), &l, msg, sizeof(msg)), 0);
    assert_int_equal(l.count, 3);
    assert_string_equal(cfg_labels_get(&l, "zone"), "eu-1");
    assert_string_equal(cfg_labels_get(&l, "app.k8s.io/name"), "web_2");
    assert_string_equal(cfg_labels_get(&l, "empty"), "");
    assert_null(cfg_labels_get(&l, "none"));
    assert_null(cfg_labels_get(NULL, "zone"));
    json_t *j = cfg_labels_to_json(&l);
    char *d = json_dumps(j, JSON_COMPACT);
    assert_string_equal(d, "{\"zone\":\"eu-1\",\"app.k8s.io/name\":\"web_2\","
                           "\"empty\":\"\"}");
    free(d);
    json_decref(j);
    assert_int_equal(cfg_labels_parse("", 0, &l, msg, sizeof(msg)), 0);
    assert_int_equal(l.count, 0);
    /* Parses only [0, len): the rest of the string is not read. */
    assert_int_equal(cfg_labels_parse("a=b,c", 3, &l, msg, sizeof(msg)), 0);
    assert_int_equal(l.count, 1);
    static const char *const bad[] = {
        "a",     "a=b,",  ",a=b",    "a=b,,c=d",   "=b",      "a=b=c",
        "a b=c", "a=b c", "a=b,a=c", "a=\xc3\xa9", "a=b;c=d", "a=b, c=d",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg[0] = '\0';
        if (cfg_labels_parse(bad[i], strlen(bad[i]), &l, msg, sizeof(msg)) !=
            ERR_BAD_REQUEST) {
            fail_msg("labels \"%s\" accepted", bad[i]);
        }
        assert_int_equal(l.count, 0);
        assert_true(strncmp(msg, "labels", 6) == 0);
    }
    assert_int_equal(cfg_labels_parse("a", 1, &l, NULL, 0), ERR_BAD_REQUEST);
}

static void labels_limits(void **state)
{
    (void)state;
    struct cfg_labels l;
    char msg[CFG_MSG_MAX];
    char s[4096];
    size_t n = 0;
    /* CFG_LABELS_MAX labels pass; one more is refused. */
    for (int i = 0; i < CFG_LABELS_MAX + 1; i++) {
        n += (size_t)snprintf(s + n, sizeof(s) - n, "%sk%d=v", i ? "," : "", i);
        int rc = cfg_labels_parse(s, n, &l, msg, sizeof(msg));
        assert_int_equal(rc, i < CFG_LABELS_MAX ? 0 : ERR_BAD_REQUEST);
    }
    /* Key and value lengths at the bound and one past. */
    char k[CFG_LABEL_KEY_MAX + 2], v[CFG_LABEL_VALUE_MAX + 2];
    memset(k, 'k', sizeof(k));
    memset(v, 'v', sizeof(v));
    n = (size_t)snprintf(s, sizeof(s), "%.*s=%.*s", CFG_LABEL_KEY_MAX, k,
                         CFG_LABEL_VALUE_MAX, v);
    assert_int_equal(cfg_labels_parse(s, n, &l, msg, sizeof(msg)), 0);
    assert_int_equal(strlen(l.items[0].key), CFG_LABEL_KEY_MAX);
    assert_int_equal(strlen(l.items[0].value), CFG_LABEL_VALUE_MAX);
    n = (size_t)snprintf(s, sizeof(s), "%.*s=v", CFG_LABEL_KEY_MAX + 1, k);
    assert_int_equal(cfg_labels_parse(s, n, &l, msg, sizeof(msg)),
                     ERR_BAD_REQUEST);
    n = (size_t)snprintf(s, sizeof(s), "k=%.*s", CFG_LABEL_VALUE_MAX + 1, v);
    assert_int_equal(cfg_labels_parse(s, n, &l, msg, sizeof(msg)),
                     ERR_BAD_REQUEST);
    /* The same bounds in a rule. */
    json_t *r =
        json_pack("{s:{s:s#}}", "labels", "k", v, (int)CFG_LABEL_VALUE_MAX + 1);
    struct cfg_gray_rule g;
    assert_int_equal(cfg_gray_rule_parse(r, &g, msg, sizeof(msg)),
                     ERR_BAD_REQUEST);
    json_decref(r);
}

static void label_rules_match(void **state)
{
    (void)state;
    struct cfg_gray_rule r;
    struct cfg_labels c;
    char msg[CFG_MSG_MAX];
    json_t *v = js("{\"labels\":{\"zone\":\"eu\",\"tier\":\"canary\"}}");
    assert_int_equal(cfg_gray_rule_parse(v, &r, msg, sizeof(msg)), 0);
    json_decref(v);
    static const struct {
        const char *labels;
        bool match;
    } cases[] = {
        {"zone=eu,tier=canary", true},
        {"tier=canary,zone=eu,x=y", true}, /* order and extras do not matter */
        {"zone=eu", false},
        {"zone=eu,tier=prod", false},
        {"zone=EU,tier=canary", false}, /* values are case-sensitive */
        {"", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(cfg_labels_parse(cases[i].labels,
                                          strlen(cases[i].labels), &c, msg,
                                          sizeof(msg)),
                         0);
        assert_int_equal(cfg_gray_match(&r, "cfg", "id", &c), cases[i].match);
    }
    assert_false(cfg_gray_match(&r, "cfg", "id", NULL));
    /* A label rule needs no client id. */
    assert_int_equal(
        cfg_labels_parse("zone=eu,tier=canary", 19, &c, msg, sizeof(msg)), 0);
    assert_true(cfg_gray_match(&r, "cfg", NULL, &c));
}

static void names(void **state)
{
    (void)state;
    char big[CFG_NAME_MAX + 1];
    memset(big, 'a', sizeof(big));
    assert_true(cfg_name_ok("db.yaml", 7));
    assert_true(cfg_name_ok("A-z_0.9", 7));
    assert_true(cfg_name_ok("...", 3));
    assert_true(cfg_name_ok(big, CFG_NAME_MAX));
    assert_false(cfg_name_ok(big, CFG_NAME_MAX + 1));
    assert_false(cfg_name_ok("", 0));
    assert_false(cfg_name_ok(NULL, 0));
    assert_false(cfg_name_ok(".", 1));
    assert_false(cfg_name_ok("..", 2));
    assert_false(cfg_name_ok("a/b", 3));
    assert_false(cfg_name_ok("a b", 3));
    assert_false(cfg_name_ok("a\0b", 3));
    assert_false(cfg_name_ok("caf\xc3\xa9", 5));
}

int test_cfg_gray_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sha256_matches_openssl),
        cmocka_unit_test(buckets),
        cmocka_unit_test(percentage_edges),
        cmocka_unit_test(rules),
        cmocka_unit_test(labels_parse),
        cmocka_unit_test(labels_limits),
        cmocka_unit_test(label_rules_match),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests_name("cfg_gray", tests, NULL, NULL);
}

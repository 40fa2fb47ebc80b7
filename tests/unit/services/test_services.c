/*
 * test_services.c - the registry's model (registry/services/svc_model.c).
 * Goal: names, addresses, the stored instance document, PATCH, selectors,
 * filters, query strings and key parsing follow docs/registry.md, and
 * every bad input is refused with a message naming the field, leaving
 * nothing half-built.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "base/err.h"
#include "base/jscan.h"
#include "registry/services/services.h"

static json_t *js(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    return v;
}

static void names(void **state)
{
    (void)state;
    char big[SVC_NAME_MAX + 2];
    memset(big, 'a', sizeof(big));
    assert_true(svc_name_ok("web-1.prod_x", 12));
    assert_true(svc_name_ok(big, SVC_NAME_MAX));
    assert_false(svc_name_ok(big, SVC_NAME_MAX + 1));
    assert_false(svc_name_ok("", 0));
    assert_false(svc_name_ok("a b", 3));
    assert_false(svc_name_ok("a/b", 3));
    assert_false(svc_name_ok(".", 1));
    assert_false(svc_name_ok("..", 2));
    assert_true(svc_name_ok("...", 3));
    assert_false(svc_name_ok("caf\xc3\xa9", 5));
}

static void addresses(void **state)
{
    (void)state;
    char h[SVC_HOST_MAX + 1];
    int port = 0;
    assert_int_equal(svc_addr_parse("10.0.0.1:80", h, sizeof(h), &port), 0);
    assert_string_equal(h, "10.0.0.1");
    assert_int_equal(port, 80);
    assert_int_equal(svc_addr_parse("[fe80::1]:65535", h, sizeof(h), &port), 0);
    assert_string_equal(h, "fe80::1");
    assert_int_equal(port, 65535);
    assert_int_equal(
        svc_addr_parse("svc.ns.svc.cluster.local:9", h, sizeof(h), &port), 0);
    static const char *const bad[] = {
        "nohost", "h:0",       "h:65536",       "h:-1",   "h:+1",     "h:",
        ":80",    "::1:80",    "[::1]80",       "[]:80",  "[x:y]:80", "h:80 ",
        "a b:80", "h:1234567", "[10.0.0.1]:80", "h/x:80",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (svc_addr_parse(bad[i], h, sizeof(h), &port) == 0) {
            fail_msg("address \"%s\" was accepted", bad[i]);
        }
    }
}

static void build_ok(void **state)
{
    (void)state;
    char msg[SVC_MSG_MAX];
    json_t *doc = NULL;
    json_t *body = js("{\"addr\":\"127.0.0.1:8080\",\"zone\":\"z\","
                      "\"labels\":{\"env\":\"prod\"},\"meta\":{\"a\":[1]},"
                      "\"Metadata\":{\"x\":1},\"METADATA\":[1],"
                      "\"unknown\":1,\"weight\":0}");
    assert_int_equal(svc_instance_build(body, "ns", "svc", "i1", "ab", 0, &doc,
                                        msg, sizeof(msg)),
                     0);
    assert_string_equal(json_string_value(json_object_get(doc, "addr")),
                        "127.0.0.1:8080");
    assert_int_equal(json_integer_value(json_object_get(doc, "port")), 8080);
    assert_int_equal(json_integer_value(json_object_get(doc, "weight")), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "status")),
                        "up");
    assert_string_equal(json_string_value(json_object_get(doc, "health")),
                        "passing");
    assert_string_equal(
        json_string_value(json_object_get(doc, "registered_at")),
        "1970-01-01T00:00:00Z");
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        assert_true(strcasecmp(k, "metadata") != 0);
        assert_true(strcmp(k, "unknown") != 0);
    }
    json_decref(doc);
    json_decref(body);
    /* host + port, with checks: health starts unknown, defaults filled */
    body = js("{\"host\":\"::1\",\"port\":9,\"checks\":[{\"type\":\"tcp\","
              "\"addr\":\"127.0.0.1:9\"}]}");
    assert_int_equal(svc_instance_build(body, "ns", "svc", "i1", "ab", 0, &doc,
                                        msg, sizeof(msg)),
                     0);
    assert_string_equal(json_string_value(json_object_get(doc, "addr")),
                        "[::1]:9");
    assert_string_equal(json_string_value(json_object_get(doc, "health")),
                        "unknown");
    json_t *c = json_array_get(json_object_get(doc, "checks"), 0);
    assert_int_equal(json_integer_value(json_object_get(c, "interval")), 10);
    assert_int_equal(json_integer_value(json_object_get(c, "fail_after")), 3);
    json_decref(doc);
    json_decref(body);
}

static void build_refuses(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *field;
    } bad[] = {
        {"{}", "addr"},
        {"{\"addr\":5}", "addr"},
        {"{\"addr\":\"h:70000\"}", "addr"},
        {"{\"addr\":\"h:1\",\"port\":2}", "addr"},
        {"{\"host\":\"h\"}", "addr"},
        {"{\"host\":\"h\",\"port\":\"80\"}", "port"},
        {"{\"addr\":\"h:1\",\"weight\":-1}", "weight"},
        {"{\"addr\":\"h:1\",\"weight\":1001}", "weight"},
        {"{\"addr\":\"h:1\",\"weight\":1.5}", "weight"},
        {"{\"addr\":\"h:1\",\"status\":\"down\"}", "status"},
        {"{\"addr\":\"h:1\",\"labels\":[]}", "labels"},
        {"{\"addr\":\"h:1\",\"labels\":{\"a b\":\"x\"}}", "labels"},
        {"{\"addr\":\"h:1\",\"labels\":{\"a\":1}}", "labels"},
        {"{\"addr\":\"h:1\",\"meta\":[]}", "meta"},
        {"{\"addr\":\"h:1\",\"zone\":\"a\\nb\"}", "zone"},
        {"{\"addr\":\"h:1\",\"checks\":{}}", "checks"},
        {"{\"addr\":\"h:1\",\"checks\":[{\"type\":\"udp\"}]}", "checks.type"},
        {"{\"addr\":\"h:1\",\"checks\":[{\"type\":\"http\"}]}", "checks.url"},
        {"{\"addr\":\"h:1\",\"checks\":[{\"type\":\"http\",\"url\":"
         "\"ftp://x\"}]}",
         "checks.url"},
        {"{\"addr\":\"h:1\",\"checks\":[{\"type\":\"tcp\",\"addr\":\"x\"}]}",
         "checks.addr"},
        {"{\"addr\":\"h:1\",\"checks\":[{\"type\":\"tcp\",\"addr\":\"x:1\","
         "\"interval\":0}]}",
         "checks.interval"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char msg[SVC_MSG_MAX];
        char want[64];
        json_t *doc = NULL;
        json_t *body = js(bad[i].body);
        int rc = svc_instance_build(body, "ns", "s", "i", "ab", 0, &doc, msg,
                                    sizeof(msg));
        if (rc != ERR_BAD_REQUEST) {
            fail_msg("%s: rc %d", bad[i].body, rc);
        }
        assert_null(doc);
        snprintf(want, sizeof(want), "\"%s\"", bad[i].field);
        if (strstr(msg, want) == NULL) {
            fail_msg("%s: message \"%s\" does not name %s", bad[i].body, msg,
                     want);
        }
        json_decref(body);
    }
}

static void patch(void **state)
{
    (void)state;
    char msg[SVC_MSG_MAX];
    json_t *doc = js("{\"addr\":\"h:1\",\"status\":\"up\",\"weight\":1}");
    json_t *p = js("{\"status\":\"draining\",\"weight\":5}");
    assert_int_equal(svc_instance_patch(doc, p, msg, sizeof(msg)), 0);
    assert_string_equal(json_string_value(json_object_get(doc, "status")),
                        "draining");
    json_decref(p);
    /* a bad field leaves doc untouched, even after a good one */
    p = js("{\"weight\":9,\"addr\":\"x:2\"}");
    assert_int_equal(svc_instance_patch(doc, p, msg, sizeof(msg)),
                     ERR_BAD_REQUEST);
    assert_non_null(strstr(msg, "\"addr\""));
    assert_int_equal(json_integer_value(json_object_get(doc, "weight")), 5);
    json_decref(p);
    json_decref(doc);
}

static void filters(void **state)
{
    (void)state;
    char msg[SVC_MSG_MAX];
    struct svc_filter f;
    json_t *d = js("{\"zone\":\"z1\",\"version\":\"v1\",\"status\":\"up\","
                   "\"health\":\"passing\",\"labels\":{\"env\":\"prod\","
                   "\"tier\":\"web\"}}");
    memset(&f, 0, sizeof(f));
    assert_true(svc_filter_match(&f, d));
    assert_true(svc_instance_healthy(d));
    snprintf(f.selector, sizeof(f.selector), "env=prod,tier!=db");
    assert_int_equal(svc_selector_check(f.selector, msg, sizeof(msg)), 0);
    assert_true(svc_filter_match(&f, d));
    snprintf(f.selector, sizeof(f.selector), "env=prod,missing!=x");
    assert_true(svc_filter_match(&f, d));
    snprintf(f.selector, sizeof(f.selector), "env=prod,missing=x");
    assert_false(svc_filter_match(&f, d));
    snprintf(f.selector, sizeof(f.selector), "env=pro");
    assert_false(svc_filter_match(&f, d));
    f.selector[0] = '\0';
    snprintf(f.zone, sizeof(f.zone), "z2");
    assert_false(svc_filter_match(&f, d));
    static const char *const bad[] = {"env", "=x", "!=x", "a b=c", "a=b,,"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (svc_selector_check(bad[i], msg, sizeof(msg)) != ERR_BAD_REQUEST) {
            fail_msg("selector \"%s\" was accepted", bad[i]);
        }
    }
    json_object_set_new(d, "status", json_string("draining"));
    assert_false(svc_instance_healthy(d));
    json_decref(d);
}

static void queries_and_keys(void **state)
{
    (void)state;
    char v[16];
    char ns[SVC_NAME_MAX + 1], svc[SVC_NAME_MAX + 1], id[SVC_NAME_MAX + 1];
    char pfx[512];
    size_t n = 0;
    assert_int_equal(svc_query_get("a=1&sel=env%3Dx&b", "sel", v, sizeof(v)),
                     0);
    assert_string_equal(v, "env=x");
    assert_int_equal(svc_query_get("a=1&b", "b", v, sizeof(v)), 0);
    assert_string_equal(v, "");
    assert_int_equal(svc_query_get("ab=1", "a", v, sizeof(v)), 1);
    assert_int_equal(svc_query_get("a=12345678901234567890", "a", v, sizeof(v)),
                     ERR_LIMIT);
    assert_int_equal(svc_query_get("a=%4", "a", v, sizeof(v)), 0);
    assert_string_equal(v, "%4");
    static const char k[] = "/registry/n1/services/s1/i-1";
    assert_int_equal(svc_key_split(k, sizeof(k) - 1, ns, svc, id), 0);
    assert_string_equal(ns, "n1");
    assert_string_equal(svc, "s1");
    assert_string_equal(id, "i-1");
    static const char *const badk[] = {
        "/registry/n1/services/s1/", "/registry/n1/settings/s1",
        "/registry/n1/services/s1/i/x", "/other/n1/services/s1/i",
        "/registry//services/s1/i"};
    for (size_t i = 0; i < sizeof(badk) / sizeof(badk[0]); i++) {
        if (svc_key_split(badk[i], strlen(badk[i]), ns, svc, id) == 0) {
            fail_msg("key \"%s\" was split", badk[i]);
        }
    }
    assert_int_equal(svc_watch_prefix("n1/s1", pfx, sizeof(pfx), &n), 0);
    assert_string_equal(pfx, "/registry/n1/services/s1/");
    assert_int_equal(n, strlen(pfx));
    assert_int_equal(svc_watch_prefix("n1/", pfx, sizeof(pfx), &n), 0);
    assert_string_equal(pfx, "/registry/n1/services/");
    assert_int_equal(svc_watch_prefix("n1/s1/i", pfx, sizeof(pfx), &n),
                     ERR_INVALID);
    assert_int_equal(svc_watch_prefix("", pfx, sizeof(pfx), &n), ERR_INVALID);
    assert_int_equal(svc_watch_prefix("n 1", pfx, sizeof(pfx), &n),
                     ERR_INVALID);
}

static void parse_doc(void **state)
{
    (void)state;
    static const char v[] = "{\"addr\":\"h:1\",\"id\":\"i\"}";
    json_t *d = svc_doc_parse(v, sizeof(v) - 1, 7, 3);
    assert_non_null(d);
    assert_int_equal(json_integer_value(json_object_get(d, "revision")), 7);
    json_decref(d);
    assert_null(svc_doc_parse("plain text", 10, 1, 1));
    assert_null(svc_doc_parse("{\"id\":1}", 8, 1, 1));
    assert_null(svc_doc_parse("[1]", 3, 1, 1));
    assert_null(svc_doc_parse("{\"addr\":\"a\",\"addr\":\"b\"}", 23, 1, 1));
}

/* What svc_doc_peek must agree with: jansson with no flags (the gauge's
 * old reader). 1 with the health string for an instance, else 0. */
static int peek_ref(const char *v, size_t n, char *health, size_t cap)
{
    json_t *d = json_loadb(v, n, 0, NULL);
    int r = 0;
    health[0] = '\0';
    if (json_is_object(d) && json_is_string(json_object_get(d, "addr"))) {
        const char *h = json_string_value(json_object_get(d, "health"));
        snprintf(health, cap, "%s", h != NULL ? h : "");
        r = 1;
    }
    json_decref(d);
    return r;
}

/* Where the peek answers, jansson answers the same; count the answers. */
static size_t peek_agrees(const char *v, size_t n)
{
    char h1[16], h2[256];
    int a = svc_doc_peek(v, n, h1, sizeof(h1));
    if (a < 0) {
        return 0;
    }
    int b = peek_ref(v, n, h2, sizeof(h2));
    if (a != b || strcmp(h1, h2) != 0) {
        fail_msg("peek %d \"%s\", jansson %d \"%s\" on [%.*s]", a, h1, b, h2,
                 (int)n, v);
    }
    return 1;
}

static void peek_matches_jansson(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"addr\":\"h:1\",\"health\":\"passing\"}",
        "{\"addr\":\"h:1\",\"health\":\"critical\",\"x\":[1,2.5,-0.25,{}]}",
        "{\"addr\":\"h:1\"}",
        " {\"health\":\"unknown\" , \"addr\" : \"h:1\" }\n",
        "{\"addr\":1,\"health\":\"passing\"}",
        "{\"addr\":\"a\",\"addr\":2}",
        "{\"addr\":2,\"addr\":\"a\"}",
        "{\"addr\":\"a\",\"health\":\"passing\",\"health\":{\"x\":1}}",
        "{\"addr\":\"a\",\"health\":null}",
        "{\"addr\":\"a\",\"health\":\"a-much-too-long-health-value\"}",
        "{\"addr\":\"a\",\"health\":\"pass\\u0069ng\"}",
        "{\"addr\":\"a\",\"n\":123456789012345678901}",
        "{\"addr\":\"a\",\"n\":1e999}",
        "{\"addr\":\"a\",\"n\":01}",
        "{\"addr\":\"a\",\"n\":-}",
        "{\"addr\":\"a\",\"n\":1.}",
        "{\"addr\":\"a\",\"b\":[true,false,null]}",
        "{\"addr\":\"a\",\"b\":[tru]}",
        "{\"addr\":\"a\",}",
        "{\"addr\":\"a\"} x",
        "{\"addr\":\"\xc3\xa9\"}",
        "[{\"addr\":\"a\"}]",
        "\"addr\"",
        "5",
        "",
        "   ",
        "{}",
        "{\"addr\":\"a\",\"d\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    };
    char msg[SVC_MSG_MAX];
    size_t answered = 0, tried = 0;
    uint64_t x = 88172645463325252ull; /* xorshift64 */
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        answered += peek_agrees(docs[i], strlen(docs[i]));
    }
    /* a document the registry writes is always answered by the peek */
    json_t *body = js("{\"addr\":\"127.0.0.1:8080\",\"zone\":\"z\","
                      "\"labels\":{\"env\":\"prod\"},\"meta\":{\"a\":[1]},"
                      "\"checks\":[{\"type\":\"tcp\",\"addr\":\"h:9\"}]}");
    json_t *doc = NULL;
    assert_int_equal(svc_instance_build(body, "ns", "svc", "i1", "ab", 0, &doc,
                                        msg, sizeof(msg)),
                     0);
    char *text = json_dumps(doc, JSON_COMPACT);
    size_t n = strlen(text);
    char h[16];
    assert_int_equal(svc_doc_peek(text, n, h, sizeof(h)), 1);
    assert_string_equal(h, "unknown");
    /* and every mutation of it the peek answers, jansson answers alike */
    char *m = malloc(n + 8);
    assert_non_null(m);
    static const char alphabet[] = "{}[]\":,0123456789.-e \\tfnulra";
    for (int round = 0; round < 60000; round++) {
        size_t mn = n;
        memcpy(m, text, n);
        for (int e = 0; e < 1 + round % 3; e++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = mn > 0 ? (size_t)(x >> 8) % mn : 0;
            char c = alphabet[(x >> 40) % (sizeof(alphabet) - 1)];
            switch (x % 4) {
            case 0:
                m[at] = c;
                break; /* replace */
            case 1:
                if (mn > 0) { /* delete */
                    memmove(m + at, m + at + 1, mn - at - 1);
                    mn--;
                }
                break;
            case 2:
                if (mn < n + 7) { /* insert */
                    memmove(m + at + 1, m + at, mn - at);
                    m[at] = c;
                    mn++;
                }
                break;
            default:
                mn = at;
                break; /* cut */
            }
        }
        answered += peek_agrees(m, mn);
        tried++;
    }
    free(m);
    free(text);
    json_decref(doc);
    json_decref(body);
    /* the peek answers most of them: it is a fast path, not a refusal */
    if (answered < tried / 10) {
        fail_msg("the peek answered only %zu of %zu", answered, tried);
    }
    print_message("peek answered %zu of %zu mutated documents\n", answered,
                  tried);
}

/* A random JSON value for the dump test; depth bounds the nesting. */
static json_t *rand_json(uint64_t *x, int depth)
{
    static const char *const strs[] = {
        "",        "a",           "zone-1",
        "h\"q",    "back\\slash", "tab\there",
        "nl\n",    "\x7f",        "\xc3\xa9t\xc3\xa9",
        "/path/x", "\x01",        "\xe2\x82\xac",
    };
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    switch ((*x >> 3) % (depth > 0 ? 9 : 7)) {
    case 0:
        return json_integer((json_int_t)(*x >> 1) * ((*x & 1) ? -1 : 1));
    case 1:
        return json_integer((*x & 1) ? INT64_MIN : INT64_MAX);
    case 2:
        return json_real((double)(*x % 100000) / 7.0);
    case 3:
        return json_string(strs[(*x >> 9) % (sizeof(strs) / sizeof(strs[0]))]);
    case 4:
        return json_stringn("nul\0in", 6);
    case 5:
        return (*x & 1) ? json_true() : json_false();
    case 6:
        return json_null();
    case 7: {
        json_t *o = json_object();
        for (uint64_t i = 0; i < (*x >> 20) % 5; i++) {
            char k[16];
            snprintf(k, sizeof(k), "%s%d", i % 2 ? "k\"" : "key", (int)i);
            json_object_set_new(o, k, rand_json(x, depth - 1));
        }
        return o;
    }
    default: {
        json_t *a = json_array();
        for (uint64_t i = 0; i < (*x >> 20) % 5; i++) {
            json_array_append_new(a, rand_json(x, depth - 1));
        }
        return a;
    }
    }
}

/* jansson's compact text of v with each real rewritten as jscan_real
 * writes it (jansson's 17 digits read back as the same double): what
 * svc_json_dump must write, byte for byte. malloc'd. */
static char *jansson_short_reals(const json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(t);
    size_t n = strlen(t);
    char *out = malloc(n * 2 + JSCAN_REAL_MAX);
    assert_non_null(out);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (t[i] == '"') { /* a string, copied whole */
            size_t j = i + 1;
            while (t[j] != '"') {
                j += t[j] == '\\' ? 2 : 1;
            }
            memcpy(out + o, t + i, j + 1 - i);
            o += j + 1 - i;
            i = j + 1;
            continue;
        }
        if (t[i] == '-' || (t[i] >= '0' && t[i] <= '9')) {
            size_t j = i;
            bool real = false;
            while (j < n && strchr("+-0123456789.eE", t[j]) != NULL) {
                real |= t[j] == '.' || t[j] == 'e' || t[j] == 'E';
                j++;
            }
            if (real) {
                o += jscan_real(out + o, strtod(t + i, NULL));
            } else {
                memcpy(out + o, t + i, j - i);
                o += j - i;
            }
            i = j;
            continue;
        }
        out[o++] = t[i++];
    }
    out[o] = '\0';
    free(t);
    return out;
}

static void dump_matches_jansson(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char msg[SVC_MSG_MAX];
    json_t *body = js("{\"addr\":\"127.0.0.1:8080\",\"zone\":\"z\","
                      "\"labels\":{\"env\":\"prod\"},"
                      "\"meta\":{\"a\":[1,2.5,-3,true,null,{\"b\":\"c\"}],"
                      "\"q\\\"\":\"\\u0001\\u007f\"},"
                      "\"checks\":[{\"type\":\"tcp\",\"addr\":\"h:9\"}]}");
    json_t *doc = NULL;
    assert_int_equal(svc_instance_build(body, "ns", "svc", "i1", "ab", 0, &doc,
                                        msg, sizeof(msg)),
                     0);
    for (int i = 0; i < 3001; i++) {
        json_t *v = i == 0 ? json_incref(doc) : json_object();
        if (i > 0) {
            json_object_set_new(v, "x", rand_json(&x, 4));
            json_object_set_new(v, "y", rand_json(&x, 4));
        }
        char *a = svc_json_dump(v);
        char *b = jansson_short_reals(v);
        assert_non_null(a);
        if (strcmp(a, b) != 0) {
            fail_msg("dump\n%s\njansson\n%s", a, b);
        }
        free(a);
        free(b);
        json_decref(v);
    }
    json_decref(doc);
    json_decref(body);
}

/* A registration's text comes from svc_instance_render, never from a tree:
 * it must be, byte for byte, what svc_json_dump writes of the tree that
 * svc_instance_build makes of the same body (and that tree is what
 * jansson itself writes). Fixed bodies with every field and every kind of
 * string, then 3,000 random ones (random labels, meta, zone, checks; some
 * refused, and then both must refuse). */
static json_t *rand_body(uint64_t *x)
{
    static const char *const strs[] = {
        "", "z", "h\"q", "back\\slash", "\xc3\xa9", "\x7f", "tab\t",
    };
    static const char *const addrs[] = {
        "127.0.0.1:8080", "[::1]:9", "svc.example:1", "h:65535", "h:0",
    };
    json_t *b = json_object();
#define RND()   (*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17, *x)
#define PICK(a) (a)[RND() % (sizeof(a) / sizeof((a)[0]))]
    if (RND() % 4 != 0) {
        json_object_set_new(b, "addr", json_string(PICK(addrs)));
    } else {
        json_object_set_new(b, "host", json_string(RND() % 2 ? "::1" : "h"));
        json_object_set_new(b, "port",
                            json_integer((json_int_t)(RND() % 70000)));
    }
    if (RND() % 2) {
        json_object_set_new(b, "zone", json_string(PICK(strs)));
    }
    if (RND() % 2) {
        json_object_set_new(b, "version", json_string(PICK(strs)));
    }
    if (RND() % 2) {
        json_object_set_new(b, "weight",
                            json_integer((json_int_t)(RND() % 1100)));
    }
    if (RND() % 2) {
        json_t *l = json_object();
        for (uint64_t i = RND() % 4; i > 0; i--) {
            char k[16];
            snprintf(k, sizeof(k), "k%d", (int)(RND() % 8));
            json_object_set_new(l, k, json_string(PICK(strs)));
        }
        json_object_set_new(b, "labels", l);
    }
    if (RND() % 2) {
        json_t *m = json_object();
        json_object_set_new(m, "x", rand_json(x, 3));
        json_object_set_new(m, "y\"", rand_json(x, 2));
        json_object_set_new(b, "meta", m);
    }
    if (RND() % 3 == 0) {
        json_object_set_new(b, "status",
                            json_string(RND() % 2 ? "draining" : "up"));
    }
    if (RND() % 3 == 0) {
        json_t *c = json_array();
        for (uint64_t i = RND() % 3; i > 0; i--) {
            json_array_append_new(
                c, RND() % 2 ? json_pack("{s:s,s:s,s:b}", "type", "http", "url",
                                         "http://h/x\"y", "tls_skip_verify",
                                         (int)(RND() % 2))
                             : json_pack("{s:s,s:s,s:i}", "type", "tcp", "addr",
                                         "h:9", "interval", (int)(RND() % 5)));
        }
        json_object_set_new(b, "checks", c);
    }
#undef PICK
#undef RND
    return b;
}

static void render_matches_build(void **state)
{
    (void)state;
    uint64_t x = 0x2545f4914f6cdd1dull;
    int built = 0, hinted = 0;
    for (int i = 0; i < 3002; i++) {
        char msg[SVC_MSG_MAX], msg2[SVC_MSG_MAX];
        json_t *body =
            i == 0   ? js("{\"addr\":\"127.0.0.1:8080\",\"zone\":\"z\","
                            "\"labels\":{\"env\":\"prod\",\"q\":\"a\\\"b\"},"
                            "\"meta\":{\"a\":[1,2.5,-3,true,null,{\"b\":\"c\"}],"
                            "\"q\\\"\":\"\\u0001\\u007f\"},\"weight\":0,"
                            "\"checks\":[{\"type\":\"tcp\",\"addr\":\"h:9\"}]}")
            : i == 1 ? js("{\"host\":\"::1\",\"port\":9}")
                     : rand_body(&x);
        json_t *doc = NULL;
        struct svc_inst in;
        int rb = svc_instance_build(body, "ns", "svc-1", "i.1", "7b3a",
                                    1700000000, &doc, msg, sizeof(msg));
        int rc = svc_instance_check(body, 1700000000, &in, msg2, sizeof(msg2));
        if (rb != rc) {
            fail_msg("build %d, check %d", rb, rc);
        }
        if (rc != 0) {
            assert_string_equal(msg, msg2);
            json_decref(body);
            continue;
        }
        built++;
        char *a = svc_json_dump(doc);
        char *b = svc_instance_render(&in, "ns", "svc-1", "i.1", "7b3a");
        char *c = jansson_short_reals(doc);
        assert_non_null(a);
        assert_non_null(b);
        if (strcmp(a, b) != 0 || strcmp(b, c) != 0) {
            fail_msg("tree\n%s\nrendered\n%s\njansson\n%s", a, b, c);
        }
        /* the gauge's hint (svc_instance_health, left for documents
         * without an escape) is what its reader (the peek, else jansson)
         * finds in those bytes */
        char hs[16];
        const char *want = svc_instance_health(&in);
        if (strchr(b, '\\') == NULL) {
            int pk = svc_doc_peek(b, strlen(b), hs, sizeof(hs));
            json_t *back = pk < 0 ? json_loads(b, 0, NULL) : NULL;
            const char *got =
                pk == 1  ? hs
                : pk < 0 ? json_string_value(json_object_get(back, "health"))
                         : NULL;
            if (got == NULL || strcmp(got, want) != 0 ||
                (pk < 0 && !json_is_string(json_object_get(back, "addr")))) {
                fail_msg("hint %s, peek %d, document %s", want, pk, b);
            }
            json_decref(back);
        }
        hinted += strchr(b, '\\') == NULL;
        free(a);
        free(b);
        free(c);
        svc_instance_clear(&in);
        json_decref(doc);
        json_decref(body);
    }
    assert_true(built > 1000); /* most random bodies are registrations */
    assert_true(hinted > 300);
}

/* svc_json_load against json_loadb: whatever the fast reader takes,
 * jansson reads to an equal tree with members in the same order, and
 * svc_json_loadb answers exactly what jansson answers. */
static void json_agrees(const char *t, size_t n, bool dups, size_t *taken)
{
    json_error_t je;
    json_t *f = svc_json_load(t, n, dups);
    json_t *j = json_loadb(t, n, dups ? JSON_REJECT_DUPLICATES : 0, &je);
    json_t *w = svc_json_loadb(t, n, dups ? JSON_REJECT_DUPLICATES : 0, NULL);
    if (f != NULL) {
        (*taken)++;
        char *a = json_dumps(f, JSON_COMPACT);
        char *b = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        if (j == NULL || !json_equal(f, j) || b == NULL || strcmp(a, b) != 0) {
            fail_msg("fast reader took %.*s, jansson: %s", (int)n, t,
                     j == NULL ? je.text : b);
        }
        free(a);
        free(b);
    }
    assert_true((w == NULL) == (j == NULL));
    if (w != NULL && !json_equal(w, j)) {
        fail_msg("svc_json_loadb differs on %.*s", (int)n, t);
    }
    json_decref(f);
    json_decref(j);
    json_decref(w);
}

static void json_load_matches_jansson(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "{\"addr\":\"10.0.0.1:8080\",\"ttl\":10}",
        " { \"a\" : [ 1 , -2 , 0 , -0 , true , false , null , { } , [ ] ] }\n",
        "{\"a\":1,\"a\":2}",
        "{\"a\":{\"b\":{\"c\":[\"d\"]}},\"e\":\"\"}",
        "[1,2,3]",
        "[]",
        "{}",
        "{\"n\":123456789012345678}",
        "{\"n\":1234567890123456789}",
        "{\"n\":-123456789012345678}",
        "{\"n\":99999999999999999999}",
        "{\"n\":01}",
        "{\"n\":1.5}",
        "{\"n\":1e3}",
        "{\"n\":-}",
        "{\"s\":\"a\\\"b\"}",
        "{\"s\":\"\\u0041\"}",
        "{\"s\":\"\xc3\xa9\"}",
        "{\"s\":\"tab\there\"}",
        "{\"a\":tru}",
        "{\"a\":truex}",
        "{\"a\":1,}",
        "[1,]",
        "{\"a\":1} x",
        "{\"a\" 1}",
        "{a:1}",
        "\"s\"",
        "5",
        "",
        "  ",
        "{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
    };

    size_t taken = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        json_agrees(texts[i], strlen(texts[i]), false, &taken);
        json_agrees(texts[i], strlen(texts[i]), true, &taken);
    }
    json_agrees("{\"a\":\"x\0y\"}", 12, false, &taken); /* a NUL byte */
    assert_true(taken >= 16);
    /* random registration bodies as jansson writes them, then mutations */
    static const char alphabet[] = "{}[]\":,0123456789.-e \\tfnulra\x01\xc3";
    size_t rounds = 0;
    taken = 0;
    for (int i = 0; i < 2000; i++) {
        json_t *body = rand_body(&x);
        char *text = json_dumps(body, JSON_COMPACT);
        json_decref(body);
        assert_non_null(text);
        size_t n = strlen(text);
        char *m = malloc(n + 8);
        assert_non_null(m);
        json_agrees(text, n, true, &taken);
        for (int round = 0; round < 20; round++, rounds++) {
            size_t mn = n;
            memcpy(m, text, n);
            for (int e = 0; e < 1 + round % 3; e++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                size_t at = mn > 0 ? (size_t)(x >> 8) % mn : 0;
                char c = alphabet[(x >> 40) % (sizeof(alphabet) - 1)];
                if (x % 3 == 0) {
                    m[at] = c; /* replace */
                } else if (x % 3 == 1 && mn > 0) {
                    memmove(m + at, m + at + 1, mn - at - 1); /* delete */
                    mn--;
                } else {
                    memmove(m + at + 1, m + at, mn - at); /* insert */
                    m[at] = c;
                    mn++;
                }
            }
            json_agrees(m, mn, round % 2 == 0, &taken);
        }
        free(m);
        free(text);
    }
    /* most random bodies are plain, and a good share of mutations too */
    assert_true(taken > 2000);
    assert_true(rounds == 40000);
}

int test_svc_probe_run(void);

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(names),
        cmocka_unit_test(addresses),
        cmocka_unit_test(build_ok),
        cmocka_unit_test(build_refuses),
        cmocka_unit_test(patch),
        cmocka_unit_test(filters),
        cmocka_unit_test(queries_and_keys),
        cmocka_unit_test(parse_doc),
        cmocka_unit_test(peek_matches_jansson),
        cmocka_unit_test(dump_matches_jansson),
        cmocka_unit_test(render_matches_build),
        cmocka_unit_test(json_load_matches_jansson),
    };
    int fails = cmocka_run_group_tests_name("svc_model", tests, NULL, NULL);
    return fails + test_svc_probe_run();
}

/*
 * svc_json.c - the common JSON texts read into jansson trees without
 * jansson's reader.
 *
 * Every registry write brings a small body ({"addr":"10.0.0.1:8080",
 * "ttl":10}) and every discovery answer and pushed event reads stored
 * documents back. jansson reads a byte at a time through a stream
 * callback with a UTF-8 check each: a 35-byte body cost about 7,600
 * instructions, 8% of a registration on the loop thread, most of it in
 * the lexer rather than in the tree.
 *
 * svc_json_load takes only the plain shape: objects and arrays nested at
 * most SJ_DEPTH deep, strings of printable ASCII with no escape, integers
 * as JSON writes them with at most 18 digits, true, false, null, and JSON
 * whitespace where it may stand. Anything else (an escape, a byte over
 * 0x7e, a fraction or exponent, a long integer, a repeated member when
 * duplicates are refused, malformed text) gives NULL, and the caller asks
 * jansson, which reads the odd shapes and words every error as before.
 * What this accepts, jansson reads to an equal tree with its members in
 * the same order (unit-services compares both on random and mutated
 * texts).
 */
#include "registry/services/services.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/jscan.h"

#define SJ_DEPTH 16

struct sj {
    const char *p, *e;
    bool reject_dups;
    int depth;
};

static void sj_ws(struct sj *s)
{
    s->p = jscan_ws(s->p, s->e);
}

static bool sj_str(struct sj *s, const char **out, size_t *n)
{
    const char *q = jscan_str(s->p, s->e, out, n);
    if (q == NULL) {
        return false;
    }
    s->p = q;
    return true;
}

static json_t *sj_int(struct sj *s)
{
    int64_t v;
    const char *q = jscan_int(s->p, s->e, &v);
    if (q == NULL) {
        return NULL;
    }
    s->p = q;
    return json_integer(v);
}

static json_t *sj_word(struct sj *s, const char *w, json_t *v)
{
    size_t n = strlen(w);
    if ((size_t)(s->e - s->p) < n || memcmp(s->p, w, n) != 0) {
        return NULL;
    }
    s->p += n;
    return v;
}

static json_t *sj_value(struct sj *s);

/* An object or array from its opening bracket. */
static json_t *sj_container(struct sj *s)
{
    bool obj = *s->p == '{';
    char close = obj ? '}' : ']';
    json_t *c;
    if (++s->depth > SJ_DEPTH) {
        return NULL;
    }
    c = obj ? json_object() : json_array();
    if (c == NULL) {
        return NULL;
    }
    s->p++;
    sj_ws(s);
    if (s->p < s->e && *s->p == close) {
        s->p++;
        s->depth--;
        return c;
    }
    for (;;) {
        const char *k = NULL;
        size_t kn = 0;
        json_t *v;
        if (obj) {
            if (!sj_str(s, &k, &kn)) {
                break;
            }
            sj_ws(s);
            if (s->p >= s->e || *s->p != ':') {
                break;
            }
            s->p++;
            sj_ws(s);
            if (s->reject_dups && json_object_getn(c, k, kn) != NULL) {
                break;
            }
        }
        v = sj_value(s);
        if (v == NULL) {
            break;
        }
        if ((obj ? json_object_setn_new_nocheck(c, k, kn, v)
                 : json_array_append_new(c, v)) != 0) {
            break;
        }
        sj_ws(s);
        if (s->p < s->e && *s->p == ',') {
            s->p++;
            sj_ws(s);
            continue;
        }
        if (s->p < s->e && *s->p == close) {
            s->p++;
            s->depth--;
            return c;
        }
        break;
    }
    json_decref(c);
    return NULL;
}

static json_t *sj_value(struct sj *s)
{
    const char *str;
    size_t n;
    if (s->p >= s->e) {
        return NULL;
    }
    switch (*s->p) {
    case '"':
        return sj_str(s, &str, &n) ? json_stringn_nocheck(str, n) : NULL;
    case '{':
    case '[':
        return sj_container(s);
    case 't':
        return sj_word(s, "true", json_true());
    case 'f':
        return sj_word(s, "false", json_false());
    case 'n':
        return sj_word(s, "null", json_null());
    default:
        return *s->p == '-' || (*s->p >= '0' && *s->p <= '9') ? sj_int(s)
                                                              : NULL;
    }
}

json_t *svc_json_load(const char *text, size_t len, bool reject_dups)
{
    struct sj s = {text, text + len, reject_dups, 0};
    json_t *v;
    sj_ws(&s);
    if (s.p >= s.e || (*s.p != '{' && *s.p != '[')) {
        return NULL; /* jansson's own rule: an object or array on top */
    }
    v = sj_container(&s);
    if (v == NULL) {
        return NULL;
    }
    sj_ws(&s);
    if (s.p != s.e) {
        json_decref(v);
        return NULL;
    }
    return v;
}

json_t *svc_json_loadb(const char *text, size_t len, size_t flags,
                       json_error_t *err)
{
    json_t *v = NULL;
    if ((flags & ~(size_t)JSON_REJECT_DUPLICATES) == 0) {
        v = svc_json_load(text, len, (flags & JSON_REJECT_DUPLICATES) != 0);
    }
    return v != NULL ? v : json_loadb(text, len, flags, err);
}

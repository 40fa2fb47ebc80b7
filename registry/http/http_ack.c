/*
 * http_ack.c - a config subscriber's ack, read without building a JSON
 * tree.
 *
 * Every publish to N subscribers brings N acks back, each a small flat
 * object: {"ack":{"name":"app.yaml","version":7}} on a config stream, or
 * {"op":"ack","sub":12,"name":"app.yaml","version":7} on the multiplexed
 * socket. At 10,000 subscribers jansson's tree (an object, a hashtable,
 * strings and integers, then their frees) was a fifth of the server's CPU
 * in the config push bench, more than sending the publish.
 *
 * http__ack_read takes only the plain shape: an object of known members,
 * each at most once, strings of printable ASCII with no escape, integers
 * of at most 18 digits, JSON whitespace anywhere it may stand. Anything
 * else (an escape, a float, an unknown or repeated member, malformed
 * text, an "id" to answer) returns false, and the caller reads the
 * message with jansson as before: the errors, their texts and the odd
 * shapes stay in one place, and what this accepts jansson reads to the
 * same values.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "registry/http/http_stream_int.h"

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

/* A string with no escape and only printable ASCII: *s, *n point into
 * the message. Returns the byte after the closing quote, or NULL. */
static const char *plain_string(const char *p, const char *e, const char **s,
                                size_t *n)
{
    const char *q;
    if (p >= e || *p != '"') {
        return NULL;
    }
    for (q = ++p; q < e && *q != '"'; q++) {
        unsigned char c = (unsigned char)*q;
        if (c < 0x20 || c > 0x7e || c == '\\') {
            return NULL;
        }
    }
    if (q >= e) {
        return NULL;
    }
    *s = p;
    *n = (size_t)(q - p);
    return q + 1;
}

/* An integer as JSON writes one (no leading zero, no fraction or
 * exponent), at most 18 digits so it fits without overflow. */
static const char *plain_int(const char *p, const char *e, int64_t *v)
{
    bool neg = false;
    int64_t x = 0;
    int digits = 0;
    if (p < e && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= e || *p < '0' || *p > '9' ||
        (*p == '0' && p + 1 < e && p[1] >= '0' && p[1] <= '9')) {
        return NULL;
    }
    while (p < e && *p >= '0' && *p <= '9') {
        if (++digits > 18) {
            return NULL;
        }
        x = x * 10 + (*p++ - '0');
    }
    if (p < e && (*p == '.' || *p == 'e' || *p == 'E')) {
        return NULL;
    }
    *v = neg ? -x : x;
    return p;
}

enum {
    F_OP = 1 << 0,
    F_SUB = 1 << 1,
    F_NAME = 1 << 2,
    F_APP = 1 << 3,
    F_VERSION = 1 << 4,
    F_ACK = 1 << 5,
};

static bool key_is(const char *k, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(k, want, n) == 0;
}

/* The members of one object from its '{'; nested: the object of "ack"
 * (name, app, version), else the top level of a multiplexed ack (op, sub,
 * name, app, version) or of a stream's ({"ack":{..}}). Returns the byte
 * after the '}', or NULL. */
static const char *members(const char *p, const char *e, bool mux, bool nested,
                           struct http_ack *a, unsigned *seen)
{
    p = skip_ws(p, e);
    if (p >= e || *p != '{') {
        return NULL;
    }
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}') {
        return p + 1;
    }
    for (;;) {
        const char *k;
        size_t kn;
        unsigned f;
        p = plain_string(p, e, &k, &kn);
        if (p == NULL) {
            return NULL;
        }
        p = skip_ws(p, e);
        if (p >= e || *p != ':') {
            return NULL;
        }
        p = skip_ws(p + 1, e);
        if (!mux && !nested) {
            f = key_is(k, kn, "ack") ? F_ACK : 0;
        } else if (key_is(k, kn, "name")) {
            f = F_NAME;
        } else if (key_is(k, kn, "app")) {
            f = F_APP;
        } else if (key_is(k, kn, "version")) {
            f = F_VERSION;
        } else if (mux && key_is(k, kn, "op")) {
            f = F_OP;
        } else if (mux && key_is(k, kn, "sub")) {
            f = F_SUB;
        } else {
            f = 0;
        }
        if (f == 0 || (*seen & f) != 0) {
            return NULL; /* unknown or repeated: jansson decides */
        }
        *seen |= f;
        if (f == F_ACK) {
            p = members(p, e, false, true, a, seen);
        } else if (f == F_SUB || f == F_VERSION) {
            p = plain_int(p, e, f == F_SUB ? &a->sub : &a->version);
        } else {
            const char *s = NULL;
            size_t n = 0;
            p = plain_string(p, e, &s, &n);
            if (f == F_OP && p != NULL && !key_is(s, n, "ack")) {
                return NULL;
            }
            if (f == F_NAME) {
                a->name = s;
                a->name_len = n;
            } else if (f == F_APP) {
                a->app = s;
                a->app_len = n;
            }
        }
        if (p == NULL) {
            return NULL;
        }
        p = skip_ws(p, e);
        if (p < e && *p == ',') {
            p = skip_ws(p + 1, e);
            continue;
        }
        if (p < e && *p == '}') {
            return p + 1;
        }
        return NULL;
    }
}

bool http__ack_read(const char *js, size_t len, bool mux, struct http_ack *a)
{
    unsigned seen = 0;
    memset(a, 0, sizeof(*a));
    if (js == NULL || len == 0) {
        return false; /* an empty message (its body may be NULL) */
    }
    const char *e = js + len;
    const char *p = members(js, e, mux, false, a, &seen);
    if (p == NULL || skip_ws(p, e) != e) {
        return false;
    }
    /* the members an ack cannot go without; the rest have defaults */
    unsigned need = F_VERSION | (mux ? F_OP | F_SUB : F_ACK);
    return (seen & need) == need;
}

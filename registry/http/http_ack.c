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

#include "base/jscan.h"
#include "registry/http/http_stream_int.h"

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
    p = jscan_ws(p, e);
    if (p >= e || *p != '{') {
        return NULL;
    }
    p = jscan_ws(p + 1, e);
    if (p < e && *p == '}') {
        return p + 1;
    }
    for (;;) {
        const char *k;
        size_t kn;
        unsigned f;
        p = jscan_str(p, e, &k, &kn);
        if (p == NULL) {
            return NULL;
        }
        p = jscan_ws(p, e);
        if (p >= e || *p != ':') {
            return NULL;
        }
        p = jscan_ws(p + 1, e);
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
            p = jscan_int(p, e, f == F_SUB ? &a->sub : &a->version);
        } else {
            const char *s = NULL;
            size_t n = 0;
            p = jscan_str(p, e, &s, &n);
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
        p = jscan_ws(p, e);
        if (p < e && *p == ',') {
            p = jscan_ws(p + 1, e);
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
    if (p == NULL || jscan_ws(p, e) != e) {
        return false;
    }
    /* the members an ack cannot go without; the rest have defaults */
    unsigned need = F_VERSION | (mux ? F_OP | F_SUB : F_ACK);
    return (seen & need) == need;
}

/*
 * jscan.c - the plain pieces of JSON text, scanned in place (jscan.h).
 */
#include "base/jscan.h"

#include <stdbool.h>

const char *jscan_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) {
        p++;
    }
    return p;
}

const char *jscan_str(const char *p, const char *e, const char **s, size_t *n)
{
    /* bytes that end a plain string's run: the closing quote, and what
     * makes it not plain (a control byte, a backslash, non-ASCII); one
     * table load a byte instead of four comparisons (the peek runs on
     * every registry event, the reader on every registry body) */
    static const struct stops {
        bool b[256];
    } stops = {.b = {[0 ... 0x1f] = true,
                     ['"'] = true,
                     ['\\'] = true,
                     [0x7f ... 0xff] = true}};
    const char *q;
    if (p >= e || *p != '"') {
        return NULL;
    }
    for (q = ++p; q < e && !stops.b[(unsigned char)*q]; q++) {
    }
    if (q >= e || *q != '"') {
        return NULL;
    }
    *s = p;
    *n = (size_t)(q - p);
    return q + 1;
}

const char *jscan_int(const char *p, const char *e, int64_t *v)
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

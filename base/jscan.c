/*
 * jscan.c - the plain pieces of JSON text, scanned in place (jscan.h).
 */
#include "base/jscan.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

size_t jscan_real(char *out, double x)
{
    int n = 0;
    /* the correctly rounded text of each precision in turn: the first that
     * reads back as x is the shortest (reals are rare in our documents:
     * at most 17 tries) */
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(out, JSCAN_REAL_MAX, "%.*g", prec, x);
        if (n < 0 || n >= JSCAN_REAL_MAX) {
            out[0] = '\0';
            return 0; /* not for a finite double in the C locale */
        }
        if (prec == 17 || strtod(out, NULL) == x) {
            break;
        }
    }
    /* 100.0, not 1e+02: a positive exponent below 17 in full (more digits
     * of the same rounding still read back) */
    const char *e = strchr(out, 'e');
    if (e != NULL && e[1] == '+' && atoi(e + 2) < 17) {
        n = snprintf(out, JSCAN_REAL_MAX, "%.*g", atoi(e + 2) + 1, x);
    }
    size_t len = (size_t)n;
    if (strchr(out, '.') == NULL && strchr(out, 'e') == NULL) {
        memcpy(out + len, ".0", 3);
        len += 2;
    }
    char *ex = strchr(out, 'e');
    if (ex != NULL) { /* 1e+300 as 1e300, 1e-05 as 1e-5 (jansson's form) */
        char *from = ex + 1;
        char *to = ex + 1;
        if (*from == '-') {
            from++;
            to++;
        } else if (*from == '+') {
            from++;
        }
        while (*from == '0' && from[1] != '\0') {
            from++;
        }
        memmove(to, from, strlen(from) + 1);
        len = strlen(out);
    }
    return len;
}

/*
 * str.c - string building without printf's machinery (str.h).
 */
#include "base/str.h"

#include <stdarg.h>
#include <string.h>

bool str_list_has(const char *list, const char *name, size_t len)
{
    for (const char *p = list;;) {
        size_t n = strcspn(p, ",");
        if (n == len && memcmp(p, name, len) == 0) {
            return true;
        }
        if (p[n] == '\0') {
            return false;
        }
        p += n + 1;
    }
}

size_t str_join(char *out, size_t cap, ...)
{
    va_list ap;
    const char *p;
    size_t n = 0;
    va_start(ap, cap);
    while ((p = va_arg(ap, const char *)) != NULL) {
        size_t k = strlen(p);
        if (n + 1 < cap) {
            size_t room = cap - 1 - n;
            memcpy(out + n, p, k < room ? k : room);
        }
        n += k;
    }
    va_end(ap);
    if (cap > 0) {
        out[n < cap ? n : cap - 1] = '\0';
    }
    return n;
}

size_t str_hex_u64(uint64_t x, char *out)
{
    static const char digits[] = "0123456789abcdef";
    char t[16];
    size_t n = 0;
    do {
        t[n++] = digits[x & 15];
        x >>= 4;
    } while (x != 0);
    for (size_t i = 0; i < n; i++) {
        out[i] = t[n - 1 - i];
    }
    out[n] = '\0';
    return n;
}

size_t str_dec_i64(int64_t x, char *out)
{
    char t[20];
    size_t n = 0, k = 0;
    uint64_t u = x < 0 ? 0 - (uint64_t)x : (uint64_t)x;
    do {
        t[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (x < 0) {
        out[k++] = '-';
    }
    while (n > 0) {
        out[k++] = t[--n];
    }
    out[k] = '\0';
    return k;
}

size_t str_utf8_seq(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    size_t n;
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80; /* the second byte's range */
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (left < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return n;
}

const char *str_utf8_safe(const char *s, char *tmp, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    size_t i = 0;
    while (i < len) {
        size_t n = str_utf8_seq(p + i, len - i);
        if (n == 0) {
            break;
        }
        i += n;
    }
    if (i == len) {
        return s;
    }
    size_t o = 0;
    for (i = 0; i < len;) {
        size_t n = str_utf8_seq(p + i, len - i);
        size_t k = n == 0 ? 1 : n;
        if (o + k > cap - 1) {
            break;
        }
        if (n == 0) {
            tmp[o] = '?';
        } else {
            memcpy(tmp + o, s + i, n);
        }
        o += k;
        i += k;
    }
    tmp[o] = '\0';
    return tmp;
}

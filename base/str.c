/*
 * str.c - string building without printf's machinery (str.h).
 */
#include "base/str.h"

#include <stdarg.h>
#include <string.h>

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

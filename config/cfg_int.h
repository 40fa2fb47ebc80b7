/*
 * cfg_int.h - what the files of config/ share, and the hooks its unit
 * tests use. Not for other modules.
 */
#ifndef CAIRN_CONFIG_CFG_INT_H
#define CAIRN_CONFIG_CFG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* Set *err (when not NULL) to msg at the place of byte offset off of
 * content (0 <= off <= len; off == len is the end of the input). */
void cfg__error_at(struct cfg_error *err, const char *content, size_t len,
                   size_t off, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Clear *err (when not NULL): message "", line and column 0. */
void cfg__error_clear(struct cfg_error *err);

/* 1-based line and column (in code points) of byte offset off (<= len):
 * lines end at "\n", "\r\n" and a lone "\r". */
void cfg__position(const char *content, size_t len, size_t off, int *line,
                   int *column);

/* Check UTF-8 and NUL bytes, setting *err at the first bad byte.
 * Errors: ERR_INVALID. */
int cfg__utf8_check(const char *content, size_t len, struct cfg_error *err);

/* What a diff cost: parts shown whole as deleted and inserted for want of
 * budget, splits made at the furthest point reached rather than on a
 * shortest path, and work units spent. */
struct cfg__diff_stats {
    unsigned coarse;
    unsigned settled;
    unsigned long long cost;
};

/* cfg_diff with an explicit work budget (tests force the coarse path);
 * st may be NULL. */
int cfg__diff_cost(const char *a, size_t alen, const char *b, size_t blen,
                   const char *label_a, const char *label_b, struct buf *out,
                   unsigned long long cost_max, struct cfg__diff_stats *st);

/* SHA-256 of the concatenation of n pieces (p[i], len[i]) into md. */
void cfg__sha256(const void *const *p, const size_t *len, size_t n,
                 uint8_t md[32]);

#endif

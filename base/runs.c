/*
 * runs.c - a value per index, kept as runs (runs.h).
 */
#include "base/runs.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"

void runs_free(struct runs *rs)
{
    mem_free(rs->r);
    memset(rs, 0, sizeof(*rs));
}

int runs_reserve(struct runs *rs, size_t extra)
{
    size_t cap;
    struct runs_entry *p;
    if (rs->n + extra <= rs->cap) {
        return 0;
    }
    cap = rs->cap < 16 ? 16 : rs->cap;
    while (cap < rs->n + extra) {
        cap *= 2;
    }
    p = mem_realloc(rs->r, cap * sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    rs->r = p;
    rs->cap = cap;
    return 0;
}

void runs_push(struct runs *rs, uint64_t i, uint64_t v)
{
    if (rs->n > 0 && rs->r[rs->n - 1].v == v) {
        return;
    }
    ASSERT(rs->n < rs->cap);
    ASSERT(rs->n == 0 || rs->r[rs->n - 1].index < i);
    rs->r[rs->n].index = i;
    rs->r[rs->n].v = v;
    rs->n++;
}

uint64_t runs_at(const struct runs *rs, uint64_t i)
{
    size_t lo = 0;
    size_t hi = rs->n;
    ASSERT(rs->n > 0 && rs->r[0].index <= i);
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (rs->r[mid].index <= i) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return rs->r[lo].v;
}

void runs_truncate(struct runs *rs, uint64_t last_keep)
{
    while (rs->n > 0 && rs->r[rs->n - 1].index > last_keep) {
        rs->n--;
    }
}

void runs_drop_front(struct runs *rs, uint64_t first)
{
    size_t k = 0;
    while (k + 1 < rs->n && rs->r[k + 1].index <= first) {
        k++;
    }
    memmove(rs->r, rs->r + k, (rs->n - k) * sizeof(*rs->r));
    rs->n -= k;
    if (rs->n > 0 && rs->r[0].index < first) {
        rs->r[0].index = first;
    }
}

/*
 * watch_index.c - which synced watchers does a key concern?
 *
 * Watchers that watch the same thing share a group, and matching works on
 * groups, so a hot key watched 100k times costs one lookup per event:
 *  - exact keys: a hash table from key bytes to the group;
 *  - prefixes: a hash table from prefix bytes to the group, plus a bitmap
 *    of the prefix lengths in use; an event probes the table once per
 *    length in use that is <= its key's length (most deployments use a
 *    handful of lengths);
 *  - other ranges ([a, b) that is not a prefix, and "every key >= a"): one
 *    group per distinct range in an array sorted by start; an event
 *    binary-searches the last start <= key and tests the ranges before it.
 *    This is linear in the number of distinct such ranges that start at or
 *    before the key; they are rare in practice (etcdctl and the client
 *    libraries watch keys and prefixes), so we keep it simple.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "consensus/watch/watch_int.h"

#define WHASH_INITIAL 64

static uint64_t hash_bytes(uint64_t h, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t group_hash(enum wkind kind, const uint8_t *key, size_t len,
                           const uint8_t *end, size_t end_len)
{
    uint64_t h = 14695981039346656037ULL ^ (uint64_t)kind;
    h = hash_bytes(h, key, len);
    if (kind == WK_RANGE) {
        h ^= 0x9e3779b97f4a7c15ULL + end_len;
        h = hash_bytes(h, end, end_len);
    }
    return h;
}

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return al < bl ? -1 : (al > bl ? 1 : 0);
}

static bool bytes_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* --- hash table of groups ------------------------------------------------ */

static int whash_init(struct whash *t)
{
    t->b = mem_calloc(WHASH_INITIAL, sizeof(*t->b));
    if (t->b == NULL) {
        return -ENOMEM;
    }
    t->mask = WHASH_INITIAL - 1;
    t->count = 0;
    return 0;
}

static void whash_free(struct whash *t)
{
    mem_free(t->b);
    t->b = NULL;
}

static struct wgroup *whash_find(const struct whash *t, uint64_t hash,
                                 enum wkind kind, const uint8_t *key,
                                 size_t len, const uint8_t *end, size_t end_len)
{
    for (struct wgroup *g = t->b[hash & t->mask]; g != NULL; g = g->hnext) {
        if (g->hash == hash && g->kind == kind &&
            bytes_eq(g->key, g->key_len, key, len) &&
            (kind != WK_RANGE || bytes_eq(g->end, g->end_len, end, end_len))) {
            return g;
        }
    }
    return NULL;
}

/* Grow (doubling) when the load passes 1; a failed grow is harmless. */
static void whash_grow(struct whash *t)
{
    size_t n = (t->mask + 1) * 2;
    struct wgroup **b = mem_calloc(n, sizeof(*b));
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i <= t->mask; i++) {
        struct wgroup *g = t->b[i];
        while (g != NULL) {
            struct wgroup *next = g->hnext;
            g->hnext = b[g->hash & (n - 1)];
            b[g->hash & (n - 1)] = g;
            g = next;
        }
    }
    mem_free(t->b);
    t->b = b;
    t->mask = n - 1;
}

static void whash_insert(struct whash *t, struct wgroup *g)
{
    if (t->count > t->mask) {
        whash_grow(t);
    }
    g->hnext = t->b[g->hash & t->mask];
    t->b[g->hash & t->mask] = g;
    t->count++;
}

static void whash_remove(struct whash *t, struct wgroup *g)
{
    struct wgroup **pp = &t->b[g->hash & t->mask];
    while (*pp != NULL && *pp != g) {
        pp = &(*pp)->hnext;
    }
    ASSERT(*pp == g);
    *pp = g->hnext;
    t->count--;
}

/* --- sorted ranges -------------------------------------------------------- */

/* First index whose start is >= key (or > key when after). */
static size_t ranges_bound(const struct windex *x, const uint8_t *key,
                           size_t len, bool after)
{
    size_t lo = 0;
    size_t hi = x->ranges_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct wgroup *g = x->ranges[mid];
        int c = bytes_cmp(g->key, g->key_len, key, len);
        if (c < 0 || (after && c == 0)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static int ranges_insert(struct windex *x, struct wgroup *g)
{
    if (x->ranges_count == x->ranges_cap) {
        size_t cap = x->ranges_cap == 0 ? 16 : x->ranges_cap * 2;
        struct wgroup **r = mem_realloc(x->ranges, cap * sizeof(*r));
        if (r == NULL) {
            return -ENOMEM;
        }
        x->ranges = r;
        x->ranges_cap = cap;
    }
    size_t at = ranges_bound(x, g->key, g->key_len, true);
    memmove(&x->ranges[at + 1], &x->ranges[at],
            (x->ranges_count - at) * sizeof(*x->ranges));
    x->ranges[at] = g;
    x->ranges_count++;
    return 0;
}

static void ranges_remove(struct windex *x, struct wgroup *g)
{
    size_t at = ranges_bound(x, g->key, g->key_len, false);
    while (at < x->ranges_count && x->ranges[at] != g) {
        at++;
    }
    ASSERT(at < x->ranges_count);
    memmove(&x->ranges[at], &x->ranges[at + 1],
            (x->ranges_count - at - 1) * sizeof(*x->ranges));
    x->ranges_count--;
}

/* --- index ---------------------------------------------------------------- */

int windex_init(struct windex *x)
{
    memset(x, 0, sizeof(*x));
    int rc = whash_init(&x->exact);
    rc = rc != 0 ? rc : whash_init(&x->prefix);
    rc = rc != 0 ? rc : whash_init(&x->ranges_h);
    if (rc != 0) {
        windex_free(x);
    }
    return rc;
}

void windex_free(struct windex *x)
{
    ASSERT(x->exact.count == 0 || x->exact.b != NULL);
    whash_free(&x->exact);
    whash_free(&x->prefix);
    whash_free(&x->ranges_h);
    mem_free(x->ranges);
    x->ranges = NULL;
}

size_t windex_groups(const struct windex *x)
{
    return x->exact.count + x->prefix.count + x->ranges_h.count;
}

static struct whash *table_of(struct windex *x, enum wkind kind)
{
    return kind == WK_EXACT ? &x->exact
                            : (kind == WK_PREFIX ? &x->prefix : &x->ranges_h);
}

static struct wgroup *group_new(struct windex *x, const struct watcher *w,
                                uint64_t hash)
{
    struct wgroup *g = mem_calloc(1, sizeof(*g));
    if (g == NULL) {
        return NULL;
    }
    g->kind = w->kind;
    g->hash = hash;
    g->key = mem_dup(w->match, w->match_len == 0 ? 1 : w->match_len);
    g->key_len = w->match_len;
    if (w->match_end != NULL) {
        g->end = mem_dup(w->match_end, w->match_end_len);
        g->end_len = w->match_end_len;
    }
    if (g->key == NULL || (w->match_end != NULL && g->end == NULL) ||
        (g->kind == WK_RANGE && ranges_insert(x, g) != 0)) {
        mem_free(g->key);
        mem_free(g->end);
        mem_free(g);
        return NULL;
    }
    whash_insert(table_of(x, g->kind), g);
    if (g->kind == WK_PREFIX) {
        ASSERT(g->key_len <= WATCH_KEY_MAX + 1);
        if (x->prefix_len_groups[g->key_len]++ == 0) {
            x->prefix_lens[g->key_len / 64] |= 1ULL << (g->key_len % 64);
        }
    }
    return g;
}

static void group_free(struct windex *x, struct wgroup *g)
{
    ASSERT(g->count == 0);
    ASSERT(g->head == NULL);
    whash_remove(table_of(x, g->kind), g);
    if (g->kind == WK_RANGE) {
        ranges_remove(x, g);
    }
    if (g->kind == WK_PREFIX) {
        if (--x->prefix_len_groups[g->key_len] == 0) {
            x->prefix_lens[g->key_len / 64] &= ~(1ULL << (g->key_len % 64));
        }
    }
    mem_free(g->key);
    mem_free(g->end);
    mem_free(g);
}

int windex_add(struct windex *x, struct watcher *w)
{
    ASSERT(w->group == NULL);
    uint64_t hash = group_hash(w->kind, w->match, w->match_len, w->match_end,
                               w->match_end_len);
    struct wgroup *g = whash_find(table_of(x, w->kind), hash, w->kind, w->match,
                                  w->match_len, w->match_end, w->match_end_len);
    if (g == NULL) {
        g = group_new(x, w, hash);
        if (g == NULL) {
            return -ENOMEM;
        }
    }
    w->group = g;
    w->gprev = NULL;
    w->gnext = g->head;
    if (g->head != NULL) {
        g->head->gprev = w;
    }
    g->head = w;
    g->count++;
    return 0;
}

void windex_remove(struct windex *x, struct watcher *w)
{
    struct wgroup *g = w->group;
    ASSERT(g != NULL);
    ASSERT(g->count > 0);
    if (w->gprev != NULL) {
        w->gprev->gnext = w->gnext;
    } else {
        g->head = w->gnext;
    }
    if (w->gnext != NULL) {
        w->gnext->gprev = w->gprev;
    }
    w->group = NULL;
    w->gprev = w->gnext = NULL;
    if (--g->count == 0) {
        group_free(x, g);
    }
}

static bool range_has(const struct wgroup *g, const uint8_t *key, size_t len)
{
    if (g->end == NULL) {
        return true; /* start <= key is known */
    }
    return bytes_cmp(key, len, g->end, g->end_len) < 0;
}

void windex_match(struct windex *x, const uint8_t *key, size_t key_len,
                  windex_fn fn, void *ctx)
{
    uint64_t h = 14695981039346656037ULL ^ (uint64_t)WK_EXACT;
    struct wgroup *g;
    if (x->exact.count > 0) {
        h = hash_bytes(h, key, key_len);
        g = whash_find(&x->exact, h, WK_EXACT, key, key_len, NULL, 0);
        if (g != NULL) {
            fn(ctx, g);
        }
    }
    if (x->prefix.count > 0) {
        /* Probe each prefix length in use, hashing incrementally. */
        uint64_t ph = 14695981039346656037ULL ^ (uint64_t)WK_PREFIX;
        size_t done = 0;
        for (size_t len = 0; len <= key_len && len <= WATCH_KEY_MAX + 1;
             len++) {
            if ((x->prefix_lens[len / 64] & (1ULL << (len % 64))) == 0) {
                continue;
            }
            ph = hash_bytes(ph, key + done, len - done);
            done = len;
            g = whash_find(&x->prefix, ph, WK_PREFIX, key, len, NULL, 0);
            if (g != NULL) {
                fn(ctx, g);
            }
        }
    }
    if (x->ranges_count > 0) {
        size_t at = ranges_bound(x, key, key_len, true);
        /* A callback may free a group, which shifts the array: walk from
         * the end downwards so that removals behind us do not matter. */
        while (at > 0) {
            at--;
            if (at >= x->ranges_count) {
                continue;
            }
            g = x->ranges[at];
            if (range_has(g, key, key_len)) {
                fn(ctx, g);
            }
        }
    }
}

void watch__prefix_end(const uint8_t *p, size_t len, uint8_t *out,
                       size_t *out_len)
{
    size_t n = len;
    while (n > 0 && p[n - 1] == 0xff) {
        n--;
    }
    if (n == 0) {
        *out_len = 0;
        return;
    }
    memcpy(out, p, n);
    out[n - 1] = (uint8_t)(p[n - 1] + 1);
    *out_len = n;
}

/*
 * lease.c - lease timers (the contract and the guarantee are in lease.h).
 *
 * Leases live in a hash table by id. Two binary min-heaps order them: by
 * "due" time (the expiry, or after a revoke was named, the time to name it
 * again if it is still there) and by next checkpoint time. Every member
 * keeps the table current from the log, so a member that becomes leader
 * already knows every lease and what the log said about it; only the
 * leader's expiry times are authoritative.
 */
#include "consensus/lease/lease.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"

#define HEAP_DUE 0
#define HEAP_CP  1
#define NO_INDEX SIZE_MAX
#define BUCKETS0 64

struct lease {
    struct lease *hnext;
    int64_t id;
    int64_t ttl_s;
    int64_t cp_remaining_s; /* last applied checkpoint; 0: none/cleared */
    bool cp_nonzero;        /* last proposed checkpoint had R > 0 */
    bool revoking;          /* named for revoke; due is the retry time */
    uint64_t expiry_ms;
    uint64_t due_ms;
    uint64_t next_cp_ms;
    size_t hidx[2];
};

struct lheap {
    struct lease **v;
    size_t n;
    size_t cap;
    int which;
};

struct lease_table {
    struct lease_config cfg;
    struct lease **b;
    size_t mask;
    size_t count;
    struct lheap heap[2];
    bool leader;
};

/* ------------------------------------------------------------------ heap */

static uint64_t key_of(const struct lheap *h, const struct lease *l)
{
    return h->which == HEAP_DUE ? l->due_ms : l->next_cp_ms;
}

static void heap_set(struct lheap *h, size_t i, struct lease *l)
{
    h->v[i] = l;
    l->hidx[h->which] = i;
}

static void sift_up(struct lheap *h, size_t i)
{
    struct lease *l = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (key_of(h, h->v[p]) <= key_of(h, l)) {
            break;
        }
        heap_set(h, i, h->v[p]);
        i = p;
    }
    heap_set(h, i, l);
}

static void sift_down(struct lheap *h, size_t i)
{
    struct lease *l = h->v[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) {
            break;
        }
        if (c + 1 < h->n && key_of(h, h->v[c + 1]) < key_of(h, h->v[c])) {
            c++;
        }
        if (key_of(h, l) <= key_of(h, h->v[c])) {
            break;
        }
        heap_set(h, i, h->v[c]);
        i = c;
    }
    heap_set(h, i, l);
}

static int heap_reserve(struct lheap *h)
{
    if (h->n < h->cap) {
        return 0;
    }
    size_t cap = h->cap == 0 ? 64 : h->cap * 2;
    struct lease **v = mem_realloc(h->v, cap * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    h->v = v;
    h->cap = cap;
    return 0;
}

static void heap_push(struct lheap *h, struct lease *l)
{
    ASSERT(h->n < h->cap);
    ASSERT(l->hidx[h->which] == NO_INDEX);
    heap_set(h, h->n++, l);
    sift_up(h, h->n - 1);
}

static void heap_remove(struct lheap *h, struct lease *l)
{
    size_t i = l->hidx[h->which];
    ASSERT(i < h->n);
    ASSERT(h->v[i] == l);
    l->hidx[h->which] = NO_INDEX;
    h->n--;
    if (i < h->n) {
        struct lease *m = h->v[h->n];
        heap_set(h, i, m);
        sift_down(h, i);
        sift_up(h, m->hidx[h->which]);
    }
}

/* The key of l changed: restore the heap order. */
static void heap_fix(struct lheap *h, struct lease *l)
{
    size_t i = l->hidx[h->which];
    ASSERT(i < h->n);
    sift_up(h, i);
    sift_down(h, l->hidx[h->which]);
}

/* ----------------------------------------------------------------- table */

static size_t slot(const struct lease_table *t, int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    return (size_t)(x >> 20) & t->mask;
}

static struct lease *find(const struct lease_table *t, int64_t id)
{
    for (struct lease *l = t->b[slot(t, id)]; l != NULL; l = l->hnext) {
        if (l->id == id) {
            return l;
        }
    }
    return NULL;
}

static void grow(struct lease_table *t)
{
    size_t n = (t->mask + 1) * 2;
    struct lease **b = mem_calloc(n, sizeof(*b));
    struct lease **old = t->b;
    size_t old_n = t->mask + 1;
    if (b == NULL) {
        return; /* longer chains; still correct */
    }
    t->b = b;
    t->mask = n - 1;
    for (size_t i = 0; i < old_n; i++) {
        struct lease *l = old[i];
        while (l != NULL) {
            struct lease *next = l->hnext;
            size_t s = slot(t, l->id);
            l->hnext = b[s];
            b[s] = l;
            l = next;
        }
    }
    mem_free(old);
}

static uint64_t secs_ms(int64_t s)
{
    return s <= 0 ? 0 : (uint64_t)s * 1000u;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static void set_expiry(struct lease_table *t, struct lease *l, uint64_t exp)
{
    l->expiry_ms = exp;
    l->revoking = false;
    l->due_ms = exp;
    heap_fix(&t->heap[HEAP_DUE], l);
}

static int insert(struct lease_table *t, int64_t id, int64_t ttl_s,
                  int64_t remaining_s, uint64_t now_ms)
{
    struct lease *l = find(t, id);
    if (l != NULL) {
        l->ttl_s = ttl_s;
        l->cp_remaining_s = remaining_s;
        set_expiry(t, l,
                   now_ms + secs_ms(remaining_s > 0 ? remaining_s : ttl_s));
        return 0;
    }
    if (heap_reserve(&t->heap[HEAP_DUE]) != 0 ||
        heap_reserve(&t->heap[HEAP_CP]) != 0) {
        return -ENOMEM;
    }
    l = mem_calloc(1, sizeof(*l));
    if (l == NULL) {
        return -ENOMEM;
    }
    l->id = id;
    l->ttl_s = ttl_s;
    l->cp_remaining_s = remaining_s;
    l->cp_nonzero = remaining_s > 0;
    l->expiry_ms = now_ms + secs_ms(remaining_s > 0 ? remaining_s : ttl_s);
    l->due_ms = l->expiry_ms;
    l->next_cp_ms = now_ms + t->cfg.checkpoint_interval_ms;
    l->hidx[0] = l->hidx[1] = NO_INDEX;
    if (t->count > t->mask) {
        grow(t);
    }
    size_t s = slot(t, id);
    l->hnext = t->b[s];
    t->b[s] = l;
    t->count++;
    heap_push(&t->heap[HEAP_DUE], l);
    heap_push(&t->heap[HEAP_CP], l);
    return 0;
}

int lease_table_init(const struct lease_config *cfg, struct lease_table **out)
{
    struct lease_table *t = mem_calloc(1, sizeof(*t));
    if (t == NULL) {
        return -ENOMEM;
    }
    t->cfg = *cfg;
    if (t->cfg.checkpoint_interval_ms == 0) {
        t->cfg.checkpoint_interval_ms = 5 * 60 * 1000;
    }
    if (t->cfg.revokes_per_tick_max == 0) {
        t->cfg.revokes_per_tick_max = 100;
    }
    if (t->cfg.checkpoints_per_tick_max == 0) {
        t->cfg.checkpoints_per_tick_max = 1000;
    }
    if (t->cfg.revoke_retry_ms == 0) {
        t->cfg.revoke_retry_ms = 3000;
    }
    t->b = mem_calloc(BUCKETS0, sizeof(*t->b));
    if (t->b == NULL) {
        mem_free(t);
        return -ENOMEM;
    }
    t->mask = BUCKETS0 - 1;
    t->heap[HEAP_DUE].which = HEAP_DUE;
    t->heap[HEAP_CP].which = HEAP_CP;
    *out = t;
    return 0;
}

void lease_table_close(struct lease_table *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i <= t->mask; i++) {
        struct lease *l = t->b[i];
        while (l != NULL) {
            struct lease *next = l->hnext;
            mem_free(l);
            l = next;
        }
    }
    mem_free(t->b);
    mem_free(t->heap[0].v);
    mem_free(t->heap[1].v);
    mem_free(t);
}

/* ------------------------------------------------------------ from the log */

int lease_on_grant(struct lease_table *t, int64_t id, int64_t ttl_s,
                   uint64_t now_ms)
{
    ASSERT(ttl_s > 0);
    return insert(t, id, ttl_s, 0, now_ms);
}

void lease_on_revoke(struct lease_table *t, int64_t id)
{
    struct lease **pp = &t->b[slot(t, id)];
    while (*pp != NULL && (*pp)->id != id) {
        pp = &(*pp)->hnext;
    }
    struct lease *l = *pp;
    if (l == NULL) {
        return;
    }
    *pp = l->hnext;
    heap_remove(&t->heap[HEAP_DUE], l);
    heap_remove(&t->heap[HEAP_CP], l);
    t->count--;
    mem_free(l);
}

void lease_on_checkpoint(struct lease_table *t, int64_t id, int64_t remaining_s,
                         uint64_t now_ms)
{
    struct lease *l = find(t, id);
    if (l == NULL) {
        return;
    }
    l->cp_remaining_s = remaining_s > 0 ? remaining_s : 0;
    if (remaining_s > 0 && t->leader) {
        /* The leader's expiry is what R was computed from (its own
         * checkpoint) or was set past it at promotion (an older
         * leader's: point 4). R is rounded up to whole seconds, so
         * applying it here would lengthen the lease at every checkpoint:
         * by up to a second each time, forever with an interval near a
         * second (found by the simulator). */
        return;
    }
    uint64_t until = now_ms + secs_ms(remaining_s > 0 ? remaining_s : l->ttl_s);
    if (until > l->expiry_ms) {
        set_expiry(t, l, until);
    }
}

int lease_restore(struct lease_table *t, int64_t id, int64_t ttl_s,
                  int64_t remaining_s, uint64_t now_ms)
{
    return insert(t, id, ttl_s, remaining_s, now_ms);
}

/* ------------------------------------------------------------------- role */

void lease_promote(struct lease_table *t, uint64_t now_ms)
{
    struct lheap *h = &t->heap[HEAP_DUE];
    t->leader = true;
    for (size_t i = 0; i < h->n; i++) {
        struct lease *l = h->v[i];
        int64_t basis = l->cp_remaining_s > 0 ? l->cp_remaining_s : l->ttl_s;
        l->expiry_ms = max_u64(l->expiry_ms, now_ms + secs_ms(basis) +
                                                 t->cfg.promote_extend_ms);
        l->due_ms = l->expiry_ms;
        l->revoking = false;
        l->cp_nonzero = l->cp_remaining_s > 0;
        l->next_cp_ms = now_ms + t->cfg.checkpoint_interval_ms;
    }
    /* Every key changed: rebuild both heaps bottom-up (linear). */
    for (int k = 0; k < 2; k++) {
        for (size_t i = t->heap[k].n / 2; i-- > 0;) {
            sift_down(&t->heap[k], i);
        }
    }
}

void lease_demote(struct lease_table *t)
{
    t->leader = false;
}

bool lease_is_leader(const struct lease_table *t)
{
    return t->leader;
}

/* ------------------------------------------------------------ leader work */

int lease_renew(struct lease_table *t, int64_t id, uint64_t now_ms,
                int64_t *ttl_s, bool *log_needed)
{
    struct lease *l = find(t, id);
    *log_needed = false;
    *ttl_s = 0;
    if (!t->leader) {
        return ERR_INVALID;
    }
    if (l == NULL || l->revoking || l->expiry_ms <= now_ms) {
        return ERR_LEASE_NOT_FOUND;
    }
    set_expiry(t, l, now_ms + secs_ms(l->ttl_s));
    if (l->cp_nonzero) {
        *log_needed = true;
        l->cp_nonzero = false;
    }
    *ttl_s = l->ttl_s;
    ASSERT(l->expiry_ms > now_ms);
    return 0;
}

void lease_checkpoint_proposed(struct lease_table *t, int64_t id,
                               int64_t remaining_s)
{
    struct lease *l = find(t, id);
    if (l != NULL) {
        l->cp_nonzero = remaining_s > 0;
    }
}

size_t lease_expired(struct lease_table *t, uint64_t now_ms, int64_t *ids,
                     size_t cap)
{
    struct lheap *h = &t->heap[HEAP_DUE];
    size_t n = 0;
    if (!t->leader) {
        return 0;
    }
    if (cap > t->cfg.revokes_per_tick_max) {
        cap = t->cfg.revokes_per_tick_max;
    }
    while (n < cap && h->n > 0 && h->v[0]->due_ms <= now_ms) {
        struct lease *l = h->v[0];
        ASSERT(l->expiry_ms <= now_ms);
        ids[n++] = l->id;
        l->revoking = true;
        l->due_ms = now_ms + t->cfg.revoke_retry_ms;
        heap_fix(h, l);
    }
    return n;
}

size_t lease_checkpoints_due(struct lease_table *t, uint64_t now_ms,
                             struct lease_checkpoint *out, size_t cap)
{
    struct lheap *h = &t->heap[HEAP_CP];
    uint64_t every = t->cfg.checkpoint_interval_ms;
    size_t n = 0;
    size_t visited = 0;
    if (!t->leader) {
        return 0;
    }
    if (cap > t->cfg.checkpoints_per_tick_max) {
        cap = t->cfg.checkpoints_per_tick_max;
    }
    /* Each visit moves a lease's next checkpoint an interval ahead, so
     * the loop visits each lease at most once per call. */
    while (n < cap && visited < t->count && h->n > 0 &&
           h->v[0]->next_cp_ms <= now_ms) {
        struct lease *l = h->v[0];
        visited++;
        l->next_cp_ms = now_ms + every;
        heap_fix(h, l);
        if (l->revoking || l->expiry_ms <= now_ms + every) {
            continue; /* expires before another checkpoint would matter */
        }
        uint64_t left = l->expiry_ms - now_ms;
        int64_t rem = (int64_t)((left + 999) / 1000);
        out[n].id = l->id;
        /* Never more than the TTL: after a promotion the expiry holds an
         * extra election timeout (point 4), which the next leader adds
         * again; carried in R it would grow with every failover (found by
         * the simulator). A new leader's now + TTL + E still covers all
         * this leader promised, which is at most TTL + E ahead. */
        out[n].remaining_s = rem < l->ttl_s ? rem : l->ttl_s;
        l->cp_nonzero = true;
        n++;
    }
    return n;
}

/* ---------------------------------------------------------------- queries */

int lease_remaining(const struct lease_table *t, int64_t id, uint64_t now_ms,
                    int64_t *remaining_s, int64_t *ttl_s)
{
    const struct lease *l = find(t, id);
    if (l == NULL) {
        return ERR_LEASE_NOT_FOUND;
    }
    *ttl_s = l->ttl_s;
    if (l->expiry_ms <= now_ms) {
        *remaining_s = 0;
    } else {
        /* whole seconds left, cut down as etcd's int64(Remaining().
         * Seconds()) is: 4.7 s answers 4, and 0 in the last second */
        *remaining_s = (int64_t)((l->expiry_ms - now_ms) / 1000);
    }
    return 0;
}

uint64_t lease_next_expiry(const struct lease_table *t)
{
    const struct lheap *h = &t->heap[HEAP_DUE];
    return h->n > 0 ? h->v[0]->due_ms : UINT64_MAX;
}

size_t lease_count(const struct lease_table *t)
{
    return t->count;
}

/*
 * raft_memstorage.c - struct raft_storage kept entirely in memory.
 *
 * The member's Raft log in memory (node.c) and the simulator's: the driver
 * writes into it exactly what a ready batch says to persist, and the core
 * reads it back through the function table. Entries are held in one array
 * from the first one still kept whole; each owns a copy of its data. Once
 * an entry's data is given back (evicted) it is folded into a run of terms
 * (and, for a configuration entry, a short list), so that memory follows
 * the entries held, not the entries written since the last snapshot.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "consensus/raft/raft_int.h"

static uint64_t ms_last(const struct raft_memstorage *ms)
{
    return ms->snap.meta.index + ms->count;
}

/* Position k (0 = the entry after the snapshot), k >= base. */
static struct raft_entry *ent(const struct raft_memstorage *ms, size_t k)
{
    ASSERT(k >= ms->base && k < ms->count);
    return &ms->ents[ms->start + (k - ms->base)];
}

static uint64_t term_of(const struct raft_memstorage *ms, size_t k)
{
    return k < ms->base ? runs_at(&ms->terms, ms->snap.meta.index + 1 + k)
                        : ent(ms, k)->term;
}

static int ms_hard_state(void *ctx, struct raft_hard_state *out)
{
    const struct raft_memstorage *ms = ctx;
    *out = ms->hard;
    return 0;
}

static int ms_first_index(void *ctx, uint64_t *out)
{
    const struct raft_memstorage *ms = ctx;
    *out = ms->snap.meta.index + 1;
    return 0;
}

static int ms_last_index(void *ctx, uint64_t *out)
{
    const struct raft_memstorage *ms = ctx;
    *out = ms_last(ms);
    return 0;
}

static int ms_term(void *ctx, uint64_t index, uint64_t *out)
{
    const struct raft_memstorage *ms = ctx;
    *out = 0;
    if (index < ms->snap.meta.index) {
        return ERR_COMPACTED;
    }
    if (index == ms->snap.meta.index) {
        *out = ms->snap.meta.term;
        return 0;
    }
    if (index > ms_last(ms)) {
        return ERR_NOT_FOUND;
    }
    size_t k = (size_t)(index - ms->snap.meta.index - 1);
    ASSERT(k < ms->base || ent(ms, k)->index == index);
    *out = term_of(ms, k);
    return 0;
}

static int ms_entries(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                      struct raft_entry *out, size_t cap, size_t *count)
{
    const struct raft_memstorage *ms = ctx;
    *count = 0;
    if (lo <= ms->snap.meta.index) {
        return ERR_COMPACTED;
    }
    if (hi > ms_last(ms) + 1 || lo >= hi) {
        return ERR_NOT_FOUND;
    }
    size_t k0 = (size_t)(lo - ms->snap.meta.index - 1);
    if (k0 < ms->evicted) {
        /* Only the evicted part here; the caller asks again for the rest. */
        uint64_t ehi = ms->snap.meta.index + 1 + ms->evicted;
        if (ms->fetch == NULL) {
            return ERR_BUSY;
        }
        return ms->fetch(ms->fctx, lo, hi < ehi ? hi : ehi, max_bytes, out, cap,
                         count);
    }
    uint64_t bytes = 0;
    for (uint64_t i = lo; i < hi && *count < cap; i++) {
        const struct raft_entry *e =
            ent(ms, (size_t)(i - ms->snap.meta.index - 1));
        bytes += raft__entry_bytes(e);
        if (*count > 0 && max_bytes > 0 && bytes > max_bytes) {
            break;
        }
        out[(*count)++] = *e; /* borrowed until the next call */
    }
    ASSERT(*count >= 1);
    return 0;
}

static int ms_last_conf(void *ctx, uint64_t lo, uint64_t hi,
                        struct raft_entry *out)
{
    const struct raft_memstorage *ms = ctx;
    if (lo <= ms->snap.meta.index) {
        lo = ms->snap.meta.index + 1;
    }
    if (hi > ms_last(ms)) {
        hi = ms_last(ms);
    }
    uint64_t kept = ms->snap.meta.index + 1 + ms->base; /* first in ents */
    for (uint64_t i = hi; i >= lo && i >= kept && i > ms->snap.meta.index;
         i--) {
        const struct raft_entry *e =
            ent(ms, (size_t)(i - ms->snap.meta.index - 1));
        if (e->type == RAFT_ENTRY_CONF) {
            ASSERT(e->data != NULL || e->len == 0);
            *out = *e; /* conf entries are never evicted */
            return 0;
        }
    }
    for (size_t c = ms->confs_n; c > 0; c--) {
        const struct raft_entry *e = &ms->confs[c - 1];
        if (e->index >= lo && e->index <= hi) {
            *out = *e;
            return 0;
        }
        if (e->index < lo) {
            break;
        }
    }
    return ERR_NOT_FOUND;
}

static int ms_snapshot(void *ctx, struct raft_snapshot *out)
{
    const struct raft_memstorage *ms = ctx;
    *out = ms->snap;
    return 0;
}

void raft_memstorage_init(struct raft_memstorage *ms)
{
    memset(ms, 0, sizeof(*ms));
    ms->iface.ctx = ms;
    ms->iface.hard_state = ms_hard_state;
    ms->iface.first_index = ms_first_index;
    ms->iface.last_index = ms_last_index;
    ms->iface.term = ms_term;
    ms->iface.entries = ms_entries;
    ms->iface.snapshot = ms_snapshot;
    ms->iface.last_conf = ms_last_conf;
}

static void conf_free(struct raft_memstorage *ms, struct raft_entry *e)
{
    if (e->data != NULL) {
        ms->resident_bytes -= e->len;
    }
    raft__entry_free(e);
}

/* Forget the dropped positions >= k: runs starting there and confs. */
static void gone_truncate(struct raft_memstorage *ms, size_t k)
{
    uint64_t index = ms->snap.meta.index + 1 + k; /* first one to forget */
    runs_truncate(&ms->terms, index - 1);
    while (ms->confs_n > 0 && ms->confs[ms->confs_n - 1].index >= index) {
        conf_free(ms, &ms->confs[--ms->confs_n]);
    }
}

/* Drop positions >= k. */
static void drop_from(struct raft_memstorage *ms, size_t k)
{
    size_t from = k > ms->base ? k : ms->base;
    for (size_t i = from; i < ms->count; i++) {
        struct raft_entry *e = ent(ms, i);
        if (e->data != NULL) {
            ms->resident_bytes -= e->len;
        }
        raft__entry_free(e);
    }
    if (k < ms->base) {
        gone_truncate(ms, k);
        ms->base = k;
        ms->start = 0;
    }
    if (k < ms->count) {
        ms->count = k;
    }
    if (ms->evicted > ms->count) {
        ms->evicted = ms->count;
    }
}

void raft_memstorage_close(struct raft_memstorage *ms)
{
    drop_from(ms, 0);
    mem_free(ms->ents);
    runs_free(&ms->terms);
    mem_free(ms->confs);
    raft__snapshot_free(&ms->snap);
    memset(ms, 0, sizeof(*ms));
}

const struct raft_storage *raft_memstorage_storage(struct raft_memstorage *ms)
{
    ms->iface.ctx = ms; /* survive a struct copy */
    return &ms->iface;
}

void raft_memstorage_set_hard_state(struct raft_memstorage *ms,
                                    const struct raft_hard_state *hs)
{
    ms->hard = *hs;
}

/* Room for n entries in ents from start; moves them to the front when
 * that is enough, and gives back most of an array that a lagging member
 * once filled when few entries are left in it. */
static int reserve(struct raft_memstorage *ms, size_t n)
{
    size_t live = ms->count - ms->base;
    ASSERT(live <= n);
    if (ms->start + n <= ms->cap) {
        return 0;
    }
    if (n <= ms->cap && ms->start > 0 && !(ms->cap > 4096 && n < ms->cap / 4)) {
        memmove(ms->ents, ms->ents + ms->start, live * sizeof(*ms->ents));
        ms->start = 0;
        return 0;
    }
    size_t cap = 16;
    while (cap < n + n / 2) {
        cap *= 2;
    }
    struct raft_entry *v = mem_alloc(cap * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    if (live > 0) {
        memcpy(v, ms->ents + ms->start, live * sizeof(*v));
    }
    mem_free(ms->ents);
    ms->ents = v;
    ms->cap = cap;
    ms->start = 0;
    return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) {
        return 0;
    }
    size_t c = *cap ? *cap * 2 : 8;
    while (c < need) {
        c *= 2;
    }
    void *v = mem_realloc(*p, c * size);
    if (v == NULL) {
        return -ENOMEM;
    }
    *p = v;
    *cap = c;
    return 0;
}

int raft_memstorage_append(struct raft_memstorage *ms,
                           const struct raft_entry *ents, size_t count)
{
    /* Skip what the snapshot already covers. */
    while (count > 0 && ents[0].index <= ms->snap.meta.index) {
        ents++;
        count--;
    }
    if (count == 0) {
        return 0;
    }
    if (ents[0].index > ms_last(ms) + 1) {
        return ERR_INVALID;
    }
    for (size_t i = 1; i < count; i++) {
        if (ents[i].index != ents[0].index + i) {
            return ERR_INVALID;
        }
    }
    size_t k = (size_t)(ents[0].index - ms->snap.meta.index - 1);
    size_t base = k < ms->base ? k : ms->base; /* after drop_from(k) */
    size_t need = k + count - base;
    if (need < ms->count - ms->base) {
        need = ms->count - ms->base;
    }
    if (reserve(ms, need) < 0) {
        return -ENOMEM;
    }
    /* Copy first so that a failure leaves the log as it was. */
    struct raft_entry *copies = mem_calloc(count, sizeof(*copies));
    if (copies == NULL) {
        return -ENOMEM;
    }
    bool lead = k <= ms->evicted; /* may continue the evicted prefix */
    for (size_t i = 0; i < count; i++) {
        copies[i] = ents[i];
        copies[i].data = NULL;
        if (ents[i].len > 0 && ents[i].data != NULL &&
            ents[i].type != RAFT_ENTRY_CONF) {
            lead = false;
        }
        if (ents[i].len > 0 && ents[i].data == NULL) {
            /* evicted (raft_memstorage_copy): stays so */
            if (!lead || ents[i].type == RAFT_ENTRY_CONF) {
                for (size_t j = 0; j < i; j++) {
                    mem_free(copies[j].data);
                }
                mem_free(copies);
                return ERR_INVALID; /* only a leading run may lack data */
            }
            continue;
        }
        if (ents[i].len > 0) {
            copies[i].data = mem_dup(ents[i].data, ents[i].len);
            if (copies[i].data == NULL) {
                for (size_t j = 0; j < i; j++) {
                    mem_free(copies[j].data);
                }
                mem_free(copies);
                return -ENOMEM;
            }
        }
    }
    drop_from(ms, k);
    ASSERT(ms->base == base && ms->count == k);
    ASSERT(ms->start + (k - base) + count <= ms->cap);
    memcpy(ms->ents + ms->start + (k - base), copies, count * sizeof(*copies));
    ms->count = k + count;
    for (size_t i = 0; i < count; i++) {
        if (copies[i].data == NULL && copies[i].len > 0) {
            ms->evicted = k + i + 1;
        } else {
            ms->resident_bytes += copies[i].len;
        }
    }
    mem_free(copies);
    ASSERT(ms_last(ms) == ents[count - 1].index);
    return 0;
}

int raft_memstorage_apply_snapshot(struct raft_memstorage *ms,
                                   const struct raft_snapshot *snap)
{
    if (snap->meta.index <= ms->snap.meta.index) {
        return ERR_COMPACTED;
    }
    struct raft_snapshot copy;
    if (raft__snapshot_copy(&copy, snap) < 0) {
        return -ENOMEM;
    }
    /* The core restores from a snapshot only when its log does not match
     * the snapshot's last entry, so no later entry can be kept. */
    drop_from(ms, 0);
    raft__snapshot_free(&ms->snap);
    ms->snap = copy;
    if (ms->hard.commit < snap->meta.index) {
        ms->hard.commit = snap->meta.index;
    }
    return 0;
}

int raft_memstorage_compact(struct raft_memstorage *ms,
                            const struct raft_snapshot_meta *meta,
                            const void *data, size_t len)
{
    if (meta->index <= ms->snap.meta.index) {
        return ERR_COMPACTED;
    }
    if (meta->index > ms_last(ms) || len > UINT32_MAX) {
        return ERR_INVALID;
    }
    size_t k = (size_t)(meta->index - ms->snap.meta.index); /* dropped */
    if (term_of(ms, k - 1) != meta->term) {
        return ERR_INVALID;
    }
    uint8_t *d = NULL;
    if (len > 0) {
        d = mem_dup(data, len);
        if (d == NULL) {
            return -ENOMEM;
        }
    }
    /* Entries kept as entries go; then the runs and confs below the new
     * first index (a run reaching past it now starts there). */
    size_t upto = k < ms->count ? k : ms->count;
    for (size_t i = ms->base; i < upto; i++) {
        struct raft_entry *e = ent(ms, i);
        if (e->data != NULL) {
            ms->resident_bytes -= e->len;
        }
        raft__entry_free(e);
    }
    if (k >= ms->base) {
        ms->start += k - ms->base;
        ms->base = 0;
        ms->terms.n = 0;
        for (size_t c = 0; c < ms->confs_n; c++) {
            conf_free(ms, &ms->confs[c]);
        }
        ms->confs_n = 0;
        if (ms->count == k) {
            ms->start = 0;
        }
    } else {
        uint64_t first = meta->index + 1;
        runs_drop_front(&ms->terms, first);
        size_t c = 0;
        while (c < ms->confs_n && ms->confs[c].index < first) {
            conf_free(ms, &ms->confs[c]);
            c++;
        }
        if (c > 0) { /* none: confs may be NULL, and memmove's may not */
            memmove(ms->confs, ms->confs + c,
                    (ms->confs_n - c) * sizeof(*ms->confs));
        }
        ms->confs_n -= c;
        ms->base -= k;
    }
    ms->count -= k;
    ms->evicted = ms->evicted > k ? ms->evicted - k : 0;
    raft__snapshot_free(&ms->snap);
    ms->snap.meta = *meta;
    ms->snap.data = d;
    ms->snap.data_len = (uint32_t)len;
    return 0;
}

/* Stop keeping the evicted positions as entries: their terms go to runs,
 * configuration entries (with their data) to confs. On failure (memory)
 * they simply stay entries. */
static void fold_evicted(struct raft_memstorage *ms)
{
    while (ms->base < ms->evicted) {
        struct raft_entry *e = ent(ms, ms->base);
        bool new_run =
            ms->terms.n == 0 || ms->terms.r[ms->terms.n - 1].v != e->term;
        if (runs_reserve(&ms->terms, 1) < 0) {
            return;
        }
        runs_push(&ms->terms, e->index, e->term);
        if (e->type == RAFT_ENTRY_CONF) {
            if (grow((void **)&ms->confs, &ms->confs_cap, ms->confs_n + 1,
                     sizeof(*ms->confs)) < 0) {
                if (new_run) {
                    ms->terms.n--;
                }
                return;
            }
            ms->confs[ms->confs_n++] = *e; /* takes the data */
        } else {
            ASSERT(e->data == NULL);
        }
        ms->base++;
        ms->start++;
    }
    if (ms->base == ms->count) {
        ms->start = 0;
    }
}

uint64_t raft_memstorage_evict(struct raft_memstorage *ms, uint64_t upto,
                               uint64_t keep_bytes)
{
    uint64_t freed = 0;
    while (ms->evicted < ms->count && ms->resident_bytes > keep_bytes) {
        struct raft_entry *e = ent(ms, ms->evicted);
        if (e->index > upto) {
            break;
        }
        if (e->data != NULL && e->type != RAFT_ENTRY_CONF) {
            ms->resident_bytes -= e->len;
            freed += e->len;
            mem_free(e->data);
            e->data = NULL;
        }
        ms->evicted++;
    }
    fold_evicted(ms);
    return freed;
}

int raft_memstorage_append_evicted(struct raft_memstorage *ms,
                                   const struct raft_entry *ents, size_t count)
{
    if (ms->evicted != ms->count) {
        return ERR_INVALID;
    }
    for (size_t i = 0; i < count; i++) {
        if (ents[i].data != NULL && ents[i].type != RAFT_ENTRY_CONF) {
            return ERR_INVALID;
        }
        if (ents[i].data == NULL && ents[i].len > 0 &&
            ents[i].type == RAFT_ENTRY_CONF) {
            return ERR_INVALID;
        }
    }
    int rc = raft_memstorage_append(ms, ents, count);
    if (rc == 0) {
        ms->evicted = ms->count;
        fold_evicted(ms);
    }
    return rc;
}

int raft_memstorage_term(const struct raft_memstorage *ms, uint64_t index,
                         uint64_t *term)
{
    return ms_term((void *)(uintptr_t)ms, index, term);
}

const struct raft_entry *raft_memstorage_entry(const struct raft_memstorage *ms,
                                               uint64_t index)
{
    if (index <= ms->snap.meta.index + ms->base || index > ms_last(ms)) {
        return NULL;
    }
    return ent(ms, (size_t)(index - ms->snap.meta.index - 1));
}

int raft_memstorage_copy(struct raft_memstorage *dst,
                         const struct raft_memstorage *src)
{
    struct raft_memstorage n;
    int rc = 0;
    raft_memstorage_init(&n);
    n.hard = src->hard;
    n.fetch = src->fetch;
    n.fctx = src->fctx;
    if (raft__snapshot_copy(&n.snap, &src->snap) < 0) {
        return -ENOMEM;
    }
    /* The positions kept as runs and confs, then the entries after them. */
    rc = runs_reserve(&n.terms, src->terms.n);
    if (rc == 0 && src->terms.n > 0) {
        memcpy(n.terms.r, src->terms.r, src->terms.n * sizeof(*n.terms.r));
        n.terms.n = src->terms.n;
    }
    if (rc == 0 && src->confs_n > 0) {
        rc = grow((void **)&n.confs, &n.confs_cap, src->confs_n,
                  sizeof(*n.confs));
    }
    for (size_t c = 0; rc == 0 && c < src->confs_n; c++) {
        struct raft_entry e = src->confs[c];
        if (e.len > 0 && e.data != NULL) {
            e.data = mem_dup(e.data, e.len);
            if (e.data == NULL) {
                rc = -ENOMEM;
                break;
            }
            n.resident_bytes += e.len;
        }
        n.confs[n.confs_n++] = e;
    }
    if (rc == 0) {
        n.base = src->base;
        n.count = src->base;
        n.evicted = src->base;
        if (src->count > src->base) {
            rc = raft_memstorage_append(&n, src->ents + src->start,
                                        src->count - src->base);
        }
    }
    if (rc < 0) {
        raft_memstorage_close(&n);
        return rc;
    }
    raft_memstorage_close(dst);
    *dst = n;
    dst->iface.ctx = dst;
    return 0;
}

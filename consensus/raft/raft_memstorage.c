/*
 * raft_memstorage.c - struct raft_storage kept entirely in memory.
 *
 * For unit tests and the simulator: the driver writes into it exactly what
 * a ready batch says to persist, and the core reads it back through the
 * function table. Entries are held in one array starting right after the
 * snapshot; each entry owns a copy of its data.
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
    const struct raft_entry *e = &ms->ents[index - ms->snap.meta.index - 1];
    ASSERT(e->index == index);
    *out = e->term;
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
        const struct raft_entry *e = &ms->ents[i - ms->snap.meta.index - 1];
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
    for (uint64_t i = hi; i >= lo && i > ms->snap.meta.index; i--) {
        const struct raft_entry *e = &ms->ents[i - ms->snap.meta.index - 1];
        if (e->type == RAFT_ENTRY_CONF) {
            ASSERT(e->data != NULL || e->len == 0);
            *out = *e; /* conf entries are never evicted */
            return 0;
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

static void drop_from(struct raft_memstorage *ms, size_t k)
{
    for (size_t i = k; i < ms->count; i++) {
        if (ms->ents[i].data != NULL) {
            ms->resident_bytes -= ms->ents[i].len;
        }
        raft__entry_free(&ms->ents[i]);
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

static int reserve(struct raft_memstorage *ms, size_t n)
{
    if (n <= ms->cap) {
        return 0;
    }
    size_t cap = ms->cap ? ms->cap : 16;
    while (cap < n) {
        cap *= 2;
    }
    struct raft_entry *v = mem_realloc(ms->ents, cap * sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    ms->ents = v;
    ms->cap = cap;
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
    if (reserve(ms, k + count) < 0) {
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
    memcpy(ms->ents + k, copies, count * sizeof(*copies));
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
    if (ms->ents[k - 1].term != meta->term) {
        return ERR_INVALID;
    }
    uint8_t *d = NULL;
    if (len > 0) {
        d = mem_dup(data, len);
        if (d == NULL) {
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < k; i++) {
        if (ms->ents[i].data != NULL) {
            ms->resident_bytes -= ms->ents[i].len;
        }
        raft__entry_free(&ms->ents[i]);
    }
    memmove(ms->ents, ms->ents + k, (ms->count - k) * sizeof(*ms->ents));
    ms->count -= k;
    ms->evicted = ms->evicted > k ? ms->evicted - k : 0;
    raft__snapshot_free(&ms->snap);
    ms->snap.meta = *meta;
    ms->snap.data = d;
    ms->snap.data_len = (uint32_t)len;
    return 0;
}

uint64_t raft_memstorage_evict(struct raft_memstorage *ms, uint64_t upto,
                               uint64_t keep_bytes)
{
    uint64_t freed = 0;
    while (ms->evicted < ms->count && ms->resident_bytes > keep_bytes) {
        struct raft_entry *e = &ms->ents[ms->evicted];
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
    return freed;
}

int raft_memstorage_copy(struct raft_memstorage *dst,
                         const struct raft_memstorage *src)
{
    struct raft_memstorage n;
    raft_memstorage_init(&n);
    n.hard = src->hard;
    n.fetch = src->fetch;
    n.fctx = src->fctx;
    if (raft__snapshot_copy(&n.snap, &src->snap) < 0) {
        return -ENOMEM;
    }
    if (src->count > 0) {
        int rc = raft_memstorage_append(&n, src->ents, src->count);
        if (rc < 0) {
            raft_memstorage_close(&n);
            return rc;
        }
    }
    raft_memstorage_close(dst);
    *dst = n;
    dst->iface.ctx = dst;
    return 0;
}

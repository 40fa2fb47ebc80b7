/*
 * raft_log.c - the log as the Raft core sees it: the durable part behind
 * struct raft_storage, plus the unstable tail the core keeps in memory until
 * the driver reports it durable (after etcd-io/raft's raftLog + unstable).
 *
 * Indexes [unstable_offset, unstable_offset + count) live in r->unstable;
 * everything below unstable_offset is read from storage. A received snapshot
 * waits in r->unstable_snap until raft_snapshot_installed(); meanwhile the
 * log starts right after it. The storage may still hold stale entries at or
 * above unstable_offset (a truncated suffix not yet overwritten): the core
 * never reads storage there.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "consensus/raft/raft_int.h"

/* Entries fetched from storage per call when scanning or slicing. */
#define LOG_BATCH 64

uint64_t raft__entry_bytes(const struct raft_entry *e)
{
    return (uint64_t)e->len + RAFT_ENTRY_HEADER_BYTES;
}

void raft__entry_free(struct raft_entry *e)
{
    mem_free(e->data);
    e->data = NULL;
    e->len = 0;
}

int raft__ents_push(struct raft__entries *v, const struct raft_entry *e,
                    bool copy_data)
{
    ASSERT(v->count <= v->cap);
    if (v->count == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        struct raft_entry *n = mem_realloc(v->v, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        v->v = n;
        v->cap = cap;
    }
    struct raft_entry c = *e;
    if (copy_data) {
        c.data = NULL;
        if (e->len > 0) {
            ASSERT(e->data != NULL);
            c.data = mem_dup(e->data, e->len);
            if (c.data == NULL) {
                return -ENOMEM;
            }
        }
    }
    v->v[v->count++] = c;
    return 0;
}

void raft__ents_free(struct raft__entries *v)
{
    for (size_t i = 0; i < v->count; i++) {
        raft__entry_free(&v->v[i]);
    }
    mem_free(v->v);
    memset(v, 0, sizeof(*v));
}

static void fail(struct raft *r, int rc)
{
    ASSERT(rc < 0);
    if (r->err == 0) {
        r->err = rc;
    }
}

uint64_t raft__first_index(struct raft *r)
{
    if (r->unstable_snap.meta.index > 0) {
        return r->unstable_snap.meta.index + 1;
    }
    uint64_t first = 0;
    int rc = r->st->first_index(r->st->ctx, &first);
    if (rc < 0) {
        fail(r, rc);
        return 1;
    }
    ASSERT(first >= 1);
    return first;
}

uint64_t raft__last_index(struct raft *r)
{
    if (r->unstable.count > 0) {
        return r->unstable_offset + r->unstable.count - 1;
    }
    /* With an empty tail the offset is always last + 1: after a restore,
     * a persist report, or init. */
    ASSERT(r->unstable_offset >= 1);
    return r->unstable_offset - 1;
}

uint64_t raft__persisted_index(const struct raft *r)
{
    if (r->unstable_snap.meta.index > 0) {
        return 0;
    }
    return r->unstable_offset - 1;
}

int raft__term(struct raft *r, uint64_t index, uint64_t *term)
{
    *term = 0;
    if (index >= r->unstable_offset) {
        uint64_t k = index - r->unstable_offset;
        if (k >= r->unstable.count) {
            return ERR_NOT_FOUND;
        }
        *term = r->unstable.v[k].term;
        ASSERT(r->unstable.v[k].index == index);
        return 0;
    }
    if (r->unstable_snap.meta.index > 0 &&
        index <= r->unstable_snap.meta.index) {
        if (index == r->unstable_snap.meta.index) {
            *term = r->unstable_snap.meta.term;
            return 0;
        }
        return ERR_COMPACTED;
    }
    /* Below the tail and above a pending snapshot: entries that followed
     * the snapshot and were reported durable before it was installed. The
     * storage holds them (the driver persists the snapshot point first). */
    int rc = r->st->term(r->st->ctx, index, term);
    if (rc == ERR_COMPACTED || rc == ERR_NOT_FOUND) {
        *term = 0;
        return rc;
    }
    if (rc < 0) {
        fail(r, rc);
        return rc;
    }
    return 0;
}

uint64_t raft__term_or0(struct raft *r, uint64_t index)
{
    uint64_t t = 0;
    if (raft__term(r, index, &t) < 0) {
        return 0;
    }
    return t;
}

uint64_t raft__last_term(struct raft *r)
{
    return raft__term_or0(r, raft__last_index(r));
}

bool raft__match_term(struct raft *r, uint64_t index, uint64_t term)
{
    uint64_t t = 0;
    if (raft__term(r, index, &t) < 0) {
        return false;
    }
    return t == term;
}

/* Copy storage entries [lo, hi) into out, within *budget bytes; *next gets
 * the next index to read. Errors: ERR_COMPACTED, ERR_BUSY (nothing could be
 * read: the storage is loading it), anything else fails the core. */
static int slice_storage(struct raft *r, uint64_t lo, uint64_t hi,
                         uint64_t *budget, struct raft__entries *out,
                         uint64_t *next)
{
    struct raft_entry batch[LOG_BATCH];
    *next = lo;
    for (uint64_t guard = 0; *next < hi; guard++) {
        ASSERT(guard <= hi - lo);
        size_t n = 0;
        int rc = r->st->entries(r->st->ctx, *next, hi, *budget, batch,
                                LOG_BATCH, &n);
        if (rc == ERR_COMPACTED) {
            return rc;
        }
        if (rc == ERR_BUSY) {
            /* Not in memory now: what was read so far is a whole answer. */
            return out->count > 0 ? 0 : rc;
        }
        if (rc < 0) {
            fail(r, rc);
            return rc;
        }
        ASSERT(n >= 1 && n <= LOG_BATCH);
        for (size_t i = 0; i < n; i++) {
            ASSERT(batch[i].index == *next);
            uint64_t sz = raft__entry_bytes(&batch[i]);
            if (out->count > 0 && sz > *budget) {
                *budget = 0;
                return 0;
            }
            rc = raft__ents_push(out, &batch[i], true);
            if (rc < 0) {
                fail(r, rc);
                return rc;
            }
            *budget = sz >= *budget ? 0 : *budget - sz;
            (*next)++;
            if (*budget == 0) {
                return 0;
            }
        }
    }
    return 0;
}

int raft__slice(struct raft *r, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                struct raft__entries *out)
{
    ASSERT(lo <= hi);
    ASSERT(hi <= raft__last_index(r) + 1);
    if (lo == hi) {
        return 0;
    }
    if (lo < raft__first_index(r)) {
        return ERR_COMPACTED;
    }
    uint64_t budget = max_bytes ? max_bytes : UINT64_MAX;
    uint64_t next = lo;
    if (lo < r->unstable_offset) {
        uint64_t shi = hi < r->unstable_offset ? hi : r->unstable_offset;
        int rc = slice_storage(r, lo, shi, &budget, out, &next);
        if (rc < 0) {
            return rc;
        }
        if (budget == 0 || next < shi) {
            return 0;
        }
    }
    for (; next < hi; next++) {
        const struct raft_entry *e = &r->unstable.v[next - r->unstable_offset];
        ASSERT(e->index == next);
        uint64_t sz = raft__entry_bytes(e);
        if (out->count > 0 && sz > budget) {
            break;
        }
        int rc = raft__ents_push(out, e, true);
        if (rc < 0) {
            fail(r, rc);
            return rc;
        }
        budget = sz >= budget ? 0 : budget - sz;
        if (budget == 0) {
            break;
        }
    }
    ASSERT(out->count >= 1);
    return 0;
}

int raft__log_append_owned(struct raft *r, struct raft_entry *e)
{
    ASSERT(e->index == raft__last_index(r) + 1);
    ASSERT(e->term >= raft__last_term(r));
    int rc = raft__ents_push(&r->unstable, e, false);
    if (rc < 0) {
        return rc;
    }
    e->data = NULL; /* taken */
    return 0;
}

int raft__log_truncate_append(struct raft *r, const struct raft_entry *ents,
                              size_t count)
{
    ASSERT(count >= 1);
    uint64_t after = ents[0].index;
    ASSERT(after > r->commit);
    ASSERT(after <= raft__last_index(r) + 1);
    if (after < r->unstable_offset) {
        /* The tail replaces entries already in storage: the whole unstable
         * part goes and the offset moves back. */
        for (size_t i = 0; i < r->unstable.count; i++) {
            raft__entry_free(&r->unstable.v[i]);
        }
        r->unstable.count = 0;
        r->unstable_offset = after;
    } else {
        size_t keep = (size_t)(after - r->unstable_offset);
        for (size_t i = keep; i < r->unstable.count; i++) {
            raft__entry_free(&r->unstable.v[i]);
        }
        r->unstable.count = keep;
    }
    if (r->unstable_in_progress > after) {
        r->unstable_in_progress = after;
    }
    for (size_t i = 0; i < count; i++) {
        int rc = raft__ents_push(&r->unstable, &ents[i], true);
        if (rc < 0) {
            fail(r, rc);
            return rc;
        }
    }
    ASSERT(raft__last_index(r) == ents[count - 1].index);
    return 0;
}

void raft__log_stable_to(struct raft *r, uint64_t index, uint64_t term)
{
    if (index < r->unstable_offset || r->unstable.count == 0) {
        return;
    }
    uint64_t k = index - r->unstable_offset;
    if (k >= r->unstable.count || r->unstable.v[k].term != term) {
        return; /* replaced since: the report is stale */
    }
    if (index >= r->unstable_in_progress) {
        return; /* never handed out: cannot be durable */
    }
    size_t drop = (size_t)k + 1;
    for (size_t i = 0; i < drop; i++) {
        raft__entry_free(&r->unstable.v[i]);
    }
    memmove(r->unstable.v, r->unstable.v + drop,
            (r->unstable.count - drop) * sizeof(r->unstable.v[0]));
    r->unstable.count -= drop;
    r->unstable_offset = index + 1;
    ASSERT(r->unstable_in_progress >= r->unstable_offset);
}

int raft__log_restore(struct raft *r, const struct raft_snapshot *snap)
{
    struct raft_snapshot copy;
    int rc = raft__snapshot_copy(&copy, snap);
    if (rc < 0) {
        fail(r, rc);
        return rc;
    }
    for (size_t i = 0; i < r->unstable.count; i++) {
        raft__entry_free(&r->unstable.v[i]);
    }
    r->unstable.count = 0;
    raft__snapshot_free(&r->unstable_snap);
    r->unstable_snap = copy;
    r->unstable_snap_in_progress = false;
    r->unstable_offset = snap->meta.index + 1;
    r->unstable_in_progress = r->unstable_offset;
    ASSERT(raft__last_index(r) == snap->meta.index);
    return 0;
}

uint64_t raft__find_conflict_by_term(struct raft *r, uint64_t index,
                                     uint64_t term)
{
    uint64_t last = raft__last_index(r);
    if (index > last) {
        index = last;
    }
    for (; index > 0; index--) {
        uint64_t t = 0;
        if (raft__term(r, index, &t) < 0 || t <= term) {
            break;
        }
    }
    return index;
}

int raft__snapshot_meta(struct raft *r, struct raft_snapshot_meta *out)
{
    if (r->unstable_snap.meta.index > 0) {
        *out = r->unstable_snap.meta;
        return 0;
    }
    struct raft_snapshot s;
    memset(&s, 0, sizeof(s));
    int rc = r->st->snapshot(r->st->ctx, &s);
    if (rc < 0) {
        fail(r, rc);
        return rc;
    }
    *out = s.meta;
    return 0;
}

/* Scan [lo, hi] backwards in batches for the latest conf entry. */
static int scan_slices(struct raft *r, uint64_t lo, uint64_t hi, bool *found,
                       struct raft_conf *out, uint64_t *conf_index);

/* The last conf entry in [lo, hi]: the unstable tail is read in memory,
 * the storage through last_conf when it has one (it needs no entry data,
 * which may be out of memory), else backwards through entries(). */
static int scan_conf(struct raft *r, uint64_t lo, uint64_t hi, bool *found,
                     struct raft_conf *out, uint64_t *conf_index)
{
    *found = false;
    if (r->st->last_conf == NULL) {
        return scan_slices(r, lo, hi, found, out, conf_index);
    }
    uint64_t uo = r->unstable_offset;
    if (hi >= uo) {
        int rc = scan_slices(r, lo > uo ? lo : uo, hi, found, out, conf_index);
        if (rc < 0 || *found || uo <= lo) {
            return rc;
        }
        hi = uo - 1;
    }
    struct raft_entry e;
    int rc = r->st->last_conf(r->st->ctx, lo, hi, &e);
    if (rc == ERR_NOT_FOUND) {
        return 0;
    }
    if (rc < 0) {
        fail(r, rc);
        return rc;
    }
    struct raft_conf_change cc;
    if (raft__conf_entry_decode(&e, &cc) < 0) {
        fail(r, ERR_CORRUPT); /* our own log holds garbage */
        return ERR_CORRUPT;
    }
    *out = cc.conf;
    *conf_index = e.index;
    *found = true;
    return 0;
}

static int scan_slices(struct raft *r, uint64_t lo, uint64_t hi, bool *found,
                       struct raft_conf *out, uint64_t *conf_index)
{
    *found = false;
    while (hi >= lo && hi > 0) {
        uint64_t b = hi - lo + 1 > LOG_BATCH ? hi - LOG_BATCH + 1 : lo;
        struct raft__entries v;
        memset(&v, 0, sizeof(v));
        uint64_t next = b;
        while (next <= hi) {
            int rc = raft__slice(r, next, hi + 1, 0, &v);
            if (rc < 0) {
                raft__ents_free(&v);
                return rc;
            }
            next = v.v[v.count - 1].index + 1;
        }
        for (size_t i = v.count; i-- > 0;) {
            if (v.v[i].type != RAFT_ENTRY_CONF) {
                continue;
            }
            struct raft_conf_change cc;
            int rc = raft__conf_entry_decode(&v.v[i], &cc);
            if (rc < 0) {
                raft__ents_free(&v);
                fail(r, ERR_CORRUPT); /* our own log holds garbage */
                return ERR_CORRUPT;
            }
            *out = cc.conf;
            *conf_index = v.v[i].index;
            *found = true;
            raft__ents_free(&v);
            return 0;
        }
        raft__ents_free(&v);
        if (b == lo) {
            break;
        }
        hi = b - 1;
    }
    return 0;
}

int raft__conf_at(struct raft *r, uint64_t index, struct raft_conf *out,
                  uint64_t *conf_index)
{
    if (r->conf_index > 0 && r->conf_index <= index &&
        index <= raft__last_index(r)) {
        /* conf_index is the latest conf entry in the whole log. */
        *out = r->conf;
        *conf_index = r->conf_index;
        return 0;
    }
    uint64_t first = raft__first_index(r);
    if (r->err) {
        return r->err;
    }
    bool found = false;
    if (index >= first) {
        int rc = scan_conf(r, first, index, &found, out, conf_index);
        if (rc < 0) {
            return rc;
        }
    }
    if (found) {
        return 0;
    }
    struct raft_snapshot_meta m;
    int rc = raft__snapshot_meta(r, &m);
    if (rc < 0) {
        return rc;
    }
    if (m.index > 0) {
        *out = m.conf;
        *conf_index = m.index;
    } else {
        *out = r->cfg.bootstrap;
        *conf_index = 0;
    }
    return 0;
}

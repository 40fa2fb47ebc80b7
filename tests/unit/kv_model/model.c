/*
 * model.c - the in-memory MVCC model (see model.h for what it promises).
 *
 * Every key keeps the list of all its records (put or tombstone) in
 * revision order; the state at revision r is the last record with main
 * revision <= r. A global list of (revision, sub, key, record) is the event
 * history. Nothing is ever removed except by mdl_abort, which truncates
 * everything above the last committed revision. Plain linear scans keep it
 * obviously right; speed does not matter here.
 */
#include "tests/unit/kv_model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"

struct mrec {
    int64_t rev;
    int64_t sub;
    bool tomb;
    int64_t create;
    int64_t version;
    int64_t lease;
    uint8_t *val;
    size_t val_len;
};

struct mkey {
    uint8_t *k;
    size_t len;
    struct mrec *r;
    size_t n;
    size_t cap;
};

struct mev {
    int64_t rev;
    int64_t sub;
    struct mkey *key;
    size_t idx; /* index of the record in key->r */
};

struct mdl {
    uint32_t max_ops;
    struct mkey **keys; /* sorted by bytes */
    size_t nkeys;
    size_t capkeys;
    struct mev *ev;
    size_t nev;
    size_t capev;
    struct mdl_view work; /* rev, compact, leases of the working state */
    struct mdl_view committed;
    size_t committed_nev;
};

/* ---- small helpers ------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
    void *q = mem_realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "model: out of memory\n");
        abort();
    }
    return q;
}

void *mdl_arena_alloc(struct mdl_arena *a, size_t bytes)
{
    if (a->count == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->blocks = xrealloc(a->blocks, a->cap * sizeof(void *));
    }
    void *p = mem_calloc(1, bytes ? bytes : 1);
    if (p == NULL) {
        fprintf(stderr, "model: out of memory\n");
        abort();
    }
    a->blocks[a->count++] = p;
    return p;
}

void *mdl_arena_dup(struct mdl_arena *a, const void *p, size_t bytes)
{
    void *q = mdl_arena_alloc(a, bytes);
    if (bytes > 0) {
        memcpy(q, p, bytes);
    }
    return q;
}

void mdl_arena_free(struct mdl_arena *a)
{
    for (size_t i = 0; i < a->count; i++) {
        mem_free(a->blocks[i]);
    }
    mem_free(a->blocks);
    memset(a, 0, sizeof(*a));
}

static void copy_kv(struct mdl_arena *a, struct kv_kv *dst,
                    const struct kv_kv *src)
{
    *dst = *src;
    dst->key = mdl_arena_dup(a, src->key, src->key_len);
    dst->value = mdl_arena_dup(a, src->value, src->value_len);
}

void mdl_events_push(struct mdl_events *e, const struct kv_event *ev)
{
    if (e->count == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 16;
        e->ev = xrealloc(e->ev, e->cap * sizeof(*e->ev));
    }
    struct kv_event *d = &e->ev[e->count++];
    d->type = ev->type;
    copy_kv(&e->mem, &d->kv, &ev->kv);
    d->has_prev = ev->has_prev;
    if (ev->has_prev) {
        copy_kv(&e->mem, &d->prev, &ev->prev);
    } else {
        memset(&d->prev, 0, sizeof(d->prev));
    }
}

void mdl_events_clear(struct mdl_events *e)
{
    mdl_arena_free(&e->mem);
    mem_free(e->ev);
    memset(e, 0, sizeof(*e));
}

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c < 0 ? -1 : 1;
    }
    return al < bl ? -1 : (al > bl ? 1 : 0);
}

static int i64_cmp(int64_t a, int64_t b)
{
    return a < b ? -1 : (a > b ? 1 : 0);
}

/* Is k inside [key, end) with kv.h's range forms? */
static bool in_range(const uint8_t *k, size_t kl, const uint8_t *key,
                     size_t key_len, const uint8_t *end, size_t end_len)
{
    if (end_len == 0) {
        return bytes_cmp(k, kl, key, key_len) == 0;
    }
    if (bytes_cmp(k, kl, key, key_len) < 0) {
        return false;
    }
    if (end_len == 1 && end[0] == 0) {
        return true;
    }
    return bytes_cmp(k, kl, end, end_len) < 0;
}

size_t mdl_prefix_end(const uint8_t *key, size_t key_len, uint8_t *out)
{
    size_t n = key_len;
    while (n > 0 && key[n - 1] == 0xff) {
        n--;
    }
    if (n == 0) {
        out[0] = 0;
        return 1;
    }
    memcpy(out, key, n);
    out[n - 1]++;
    return n;
}

/* ---- keys and records --------------------------------------------------- */

static size_t key_lower_bound(const struct mdl *m, const uint8_t *k, size_t kl)
{
    size_t lo = 0, hi = m->nkeys;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (bytes_cmp(m->keys[mid]->k, m->keys[mid]->len, k, kl) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static struct mkey *key_find(const struct mdl *m, const uint8_t *k, size_t kl)
{
    size_t i = key_lower_bound(m, k, kl);
    if (i < m->nkeys && bytes_cmp(m->keys[i]->k, m->keys[i]->len, k, kl) == 0) {
        return m->keys[i];
    }
    return NULL;
}

static struct mkey *key_get(struct mdl *m, const uint8_t *k, size_t kl)
{
    size_t i = key_lower_bound(m, k, kl);
    if (i < m->nkeys && bytes_cmp(m->keys[i]->k, m->keys[i]->len, k, kl) == 0) {
        return m->keys[i];
    }
    if (m->nkeys == m->capkeys) {
        m->capkeys = m->capkeys ? m->capkeys * 2 : 64;
        m->keys = xrealloc(m->keys, m->capkeys * sizeof(*m->keys));
    }
    struct mkey *nk = xrealloc(NULL, sizeof(*nk));
    memset(nk, 0, sizeof(*nk));
    nk->k = xrealloc(NULL, kl);
    memcpy(nk->k, k, kl);
    nk->len = kl;
    memmove(&m->keys[i + 1], &m->keys[i], (m->nkeys - i) * sizeof(*m->keys));
    m->keys[i] = nk;
    m->nkeys++;
    return nk;
}

/* The live record of k at revision rev, or NULL. */
static const struct mrec *rec_at(const struct mkey *k, int64_t rev)
{
    for (size_t i = k->n; i > 0; i--) {
        const struct mrec *r = &k->r[i - 1];
        if (r->rev <= rev) {
            return r->tomb ? NULL : r;
        }
    }
    return NULL;
}

static void rec_to_kv(const struct mkey *k, const struct mrec *r,
                      struct kv_kv *out)
{
    out->key = k->k;
    out->key_len = k->len;
    out->value = r->val;
    out->value_len = r->val_len;
    out->create_revision = r->create;
    out->mod_revision = r->rev;
    out->version = r->version;
    out->lease = r->lease;
}

const struct kv_kv *mdl_get(const struct mdl *m, int64_t rev,
                            const uint8_t *key, size_t key_len,
                            struct kv_kv *out)
{
    const struct mkey *k = key_find(m, key, key_len);
    const struct mrec *r = k ? rec_at(k, rev) : NULL;
    if (r == NULL) {
        return NULL;
    }
    rec_to_kv(k, r, out);
    return out;
}

/* ---- model lifetime and batches ---------------------------------------- */

int mdl_new(uint32_t max_txn_ops, struct mdl **out)
{
    struct mdl *m = xrealloc(NULL, sizeof(*m));
    memset(m, 0, sizeof(*m));
    m->max_ops = max_txn_ops ? max_txn_ops : 128;
    m->work.rev = 1;
    m->work.compact = 0;
    m->committed = m->work;
    *out = m;
    return 0;
}

void mdl_free(struct mdl *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->nkeys; i++) {
        struct mkey *k = m->keys[i];
        for (size_t j = 0; j < k->n; j++) {
            mem_free(k->r[j].val);
        }
        mem_free(k->r);
        mem_free(k->k);
        mem_free(k);
    }
    mem_free(m->keys);
    mem_free(m->ev);
    mem_free(m);
}

int64_t mdl_rev(const struct mdl *m)
{
    return m->work.rev;
}

int64_t mdl_compact_rev(const struct mdl *m)
{
    return m->work.compact;
}

void mdl_view_working(const struct mdl *m, struct mdl_view *v)
{
    *v = m->work;
}

const struct mdl_view *mdl_committed(const struct mdl *m)
{
    return &m->committed;
}

void mdl_commit(struct mdl *m)
{
    m->committed = m->work;
    m->committed_nev = m->nev;
}

void mdl_abort(struct mdl *m)
{
    int64_t keep = m->committed.rev;
    for (size_t i = 0; i < m->nkeys; i++) {
        struct mkey *k = m->keys[i];
        while (k->n > 0 && k->r[k->n - 1].rev > keep) {
            mem_free(k->r[k->n - 1].val);
            k->n--;
        }
    }
    m->nev = m->committed_nev;
    m->work = m->committed;
}

/* ---- writing ------------------------------------------------------------ */

/* One request's writes: all at revision rev, sub-revisions counted. */
struct wctx {
    struct mdl *m;
    int64_t rev;
    int64_t sub;
    struct mdl_events *ev;
};

static void emit(struct wctx *w, enum kv_event_type type,
                 const struct kv_kv *kv, const struct kv_kv *prev)
{
    if (w->ev == NULL) {
        return;
    }
    struct kv_event e;
    memset(&e, 0, sizeof(e));
    e.type = type;
    e.kv = *kv;
    if (prev != NULL) {
        e.has_prev = true;
        e.prev = *prev;
    }
    mdl_events_push(w->ev, &e);
}

static void push_rec(struct wctx *w, struct mkey *k, const struct mrec *r)
{
    struct mdl *m = w->m;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 8;
        k->r = xrealloc(k->r, k->cap * sizeof(*k->r));
    }
    k->r[k->n] = *r;
    if (m->nev == m->capev) {
        m->capev = m->capev ? m->capev * 2 : 256;
        m->ev = xrealloc(m->ev, m->capev * sizeof(*m->ev));
    }
    m->ev[m->nev].rev = r->rev;
    m->ev[m->nev].sub = r->sub;
    m->ev[m->nev].key = k;
    m->ev[m->nev].idx = k->n;
    m->nev++;
    k->n++;
}

static void w_put(struct wctx *w, struct mkey *k, const uint8_t *val,
                  size_t val_len, int64_t lease)
{
    const struct mrec *prev = rec_at(k, w->rev);
    struct kv_kv prevkv;
    if (prev != NULL) {
        rec_to_kv(k, prev, &prevkv);
    }
    struct mrec r;
    memset(&r, 0, sizeof(r));
    r.rev = w->rev;
    r.sub = w->sub++;
    r.create = prev ? prev->create : w->rev;
    r.version = prev ? prev->version + 1 : 1;
    r.lease = lease;
    r.val = xrealloc(NULL, val_len);
    if (val_len > 0) {
        memcpy(r.val, val, val_len);
    }
    r.val_len = val_len;
    /* prevkv points into k->r, which push_rec may move: emit from copies. */
    struct mdl_arena tmp = {0};
    if (prev != NULL) {
        struct kv_kv c;
        copy_kv(&tmp, &c, &prevkv);
        prevkv = c;
    }
    push_rec(w, k, &r);
    struct kv_kv now;
    rec_to_kv(k, &k->r[k->n - 1], &now);
    emit(w, KV_EVENT_PUT, &now, prev ? &prevkv : NULL);
    mdl_arena_free(&tmp);
}

/* Delete k if live at the request's revision; returns 1 if it was. */
static int w_del(struct wctx *w, struct mkey *k)
{
    const struct mrec *prev = rec_at(k, w->rev);
    if (prev == NULL) {
        return 0;
    }
    /* The event's prev is the record at rev - 1 (etcd's watch prev_kv):
     * for a key this txn put, the record before the txn, or none. */
    const struct mrec *before =
        prev->rev == w->rev ? rec_at(k, w->rev - 1) : prev;
    struct mdl_arena tmp = {0};
    struct kv_kv prevkv, c;
    if (before != NULL) {
        rec_to_kv(k, before, &prevkv);
        copy_kv(&tmp, &c, &prevkv);
    }
    struct mrec r;
    memset(&r, 0, sizeof(r));
    r.rev = w->rev;
    r.sub = w->sub++;
    r.tomb = true;
    push_rec(w, k, &r);
    struct kv_kv now;
    memset(&now, 0, sizeof(now));
    now.key = k->k;
    now.key_len = k->len;
    now.mod_revision = w->rev;
    emit(w, KV_EVENT_DELETE, &now, before != NULL ? &c : NULL);
    mdl_arena_free(&tmp);
    return 1;
}

static bool lease_exists(const struct mdl_view *v, int64_t id)
{
    for (size_t i = 0; i < v->leases_count; i++) {
        if (v->leases[i].id == id) {
            return true;
        }
    }
    return false;
}

/* ---- ranges ------------------------------------------------------------- */

static int sort_cmp_kv(const struct kv_kv *a, const struct kv_kv *b,
                       enum kv_sort_target t)
{
    switch (t) {
    case KV_SORT_KEY:
        return bytes_cmp(a->key, a->key_len, b->key, b->key_len);
    case KV_SORT_VERSION:
        return i64_cmp(a->version, b->version);
    case KV_SORT_CREATE:
        return i64_cmp(a->create_revision, b->create_revision);
    case KV_SORT_MOD:
        return i64_cmp(a->mod_revision, b->mod_revision);
    case KV_SORT_VALUE:
        return bytes_cmp(a->value, a->value_len, b->value, b->value_len);
    }
    return 0;
}

/* kv.h: ties are ordered by key in either direction (etcd's sort.Reverse
 * over a key-ordered slice keeps equal elements in place); only a key sort
 * is reversed by DESCEND. Input is in key order; a stable insertion sort
 * keeps it among ties. */
static void sort_kvs(struct kv_kv *v, size_t n, enum kv_sort_target t,
                     bool desc)
{
    for (size_t i = 1; i < n; i++) {
        struct kv_kv x = v[i];
        size_t j = i;
        while (j > 0 && (desc ? -1 : 1) * sort_cmp_kv(&v[j - 1], &x, t) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}

#define FULL_MAGIC 0x6d646c66756c6c31ull

struct full_hdr {
    uint64_t magic;
    size_t count;
    struct kv_kv *full;
    uint64_t pad;
};

const struct kv_kv *mdl_range_full(const struct kv_range_resp *resp,
                                   size_t *count)
{
    if (resp->kvs == NULL) {
        *count = 0;
        return NULL;
    }
    const struct full_hdr *h = (const struct full_hdr *)resp->kvs - 1;
    if (h->magic != FULL_MAGIC) {
        *count = 0;
        return NULL;
    }
    *count = h->count;
    return h->full;
}

/* The range itself. vis_rev: what revision 0 means; max_rev: a larger
 * requested revision is a future one; compact: a smaller one is gone. */
static int range_at(const struct mdl *m, int64_t vis_rev, int64_t max_rev,
                    int64_t compact, const struct kv_range_req *req,
                    struct mdl_arena *a, struct kv_range_resp *resp)
{
    memset(resp, 0, sizeof(*resp));
    if (req->key_len == 0) {
        return ERR_KEY_NOT_PROVIDED;
    }
    if ((unsigned)req->sort_order > KV_SORT_DESCEND ||
        (unsigned)req->sort_target > KV_SORT_VALUE) {
        return ERR_BAD_REQUEST;
    }
    int64_t rev = vis_rev;
    if (req->revision > 0) {
        if (req->revision > max_rev) {
            return ERR_FUTURE_REV;
        }
        if (req->revision < compact) {
            return ERR_COMPACTED;
        }
        rev = req->revision;
    }
    struct full_hdr *h =
        mdl_arena_alloc(a, sizeof(*h) + (m->nkeys + 1) * sizeof(struct kv_kv));
    h->magic = FULL_MAGIC;
    struct kv_kv *vis = (struct kv_kv *)(h + 1);
    struct kv_kv *all = mdl_arena_alloc(a, (m->nkeys + 1) * sizeof(*all));
    size_t n = 0;
    int64_t count = 0;
    for (size_t i = 0; i < m->nkeys; i++) {
        const struct mkey *k = m->keys[i];
        if (!in_range(k->k, k->len, req->key, req->key_len, req->range_end,
                      req->range_end_len)) {
            continue;
        }
        const struct mrec *r = rec_at(k, rev);
        if (r == NULL) {
            continue;
        }
        count++;
        struct kv_kv kv;
        rec_to_kv(k, r, &kv);
        if (req->max_mod_revision != 0 &&
            kv.mod_revision > req->max_mod_revision) {
            continue;
        }
        if (req->min_mod_revision != 0 &&
            kv.mod_revision < req->min_mod_revision) {
            continue;
        }
        if (req->max_create_revision != 0 &&
            kv.create_revision > req->max_create_revision) {
            continue;
        }
        if (req->min_create_revision != 0 &&
            kv.create_revision < req->min_create_revision) {
            continue;
        }
        copy_kv(a, &all[n], &kv);
        n++;
    }
    resp->count = count;
    resp->kvs = vis;
    if (req->count_only) {
        n = 0;
    }
    enum kv_sort_order order = req->sort_order;
    if (req->sort_target != KV_SORT_KEY && order == KV_SORT_NONE) {
        order = KV_SORT_ASCEND;
    }
    if (order != KV_SORT_NONE) {
        sort_kvs(all, n, req->sort_target, order == KV_SORT_DESCEND);
    }
    h->count = n;
    h->full = all;
    size_t out = n;
    if (req->limit > 0 && n > (size_t)req->limit) {
        out = (size_t)req->limit;
        resp->more = true;
    }
    for (size_t i = 0; i < out; i++) {
        vis[i] = all[i];
        if (req->keys_only) {
            vis[i].value = NULL;
            vis[i].value_len = 0;
        }
    }
    resp->kvs_count = out;
    return 0;
}

int mdl_range(const struct mdl *m, const struct mdl_view *v,
              const struct kv_range_req *req, struct mdl_arena *a,
              struct kv_range_resp *resp)
{
    return range_at(m, v->rev, v->rev, v->compact, req, a, resp);
}

int mdl_write_range(struct mdl *m, const struct kv_range_req *req,
                    struct mdl_arena *a, struct kv_range_resp *resp)
{
    return range_at(m, m->work.rev, m->work.rev, m->work.compact, req, a, resp);
}

/* ---- put / delete -------------------------------------------------------- */

static int put_check_static(const struct kv_put_req *req)
{
    if (req->key_len == 0) {
        return ERR_KEY_NOT_PROVIDED;
    }
    if (req->ignore_value && req->value_len != 0) {
        return ERR_VALUE_PROVIDED;
    }
    if (req->ignore_lease && req->lease != 0) {
        return ERR_LEASE_PROVIDED;
    }
    return 0;
}

/* The state checks of a put at revision rev. etcd 3.4 orders them
 * differently for a put on its own (apply.go Put: the lease first) and for
 * a put inside a txn (checkRequestPut: the key first). */
static int put_check_state(const struct mdl *m, int64_t rev,
                           const struct mdl_view *leases,
                           const struct kv_put_req *req, bool in_txn)
{
    int lease_rc = 0, key_rc = 0;
    if (req->lease != 0 && !lease_exists(leases, req->lease)) {
        lease_rc = ERR_LEASE_NOT_FOUND;
    }
    if (req->ignore_value || req->ignore_lease) {
        struct kv_kv tmp;
        if (mdl_get(m, rev, req->key, req->key_len, &tmp) == NULL) {
            key_rc = ERR_KEY_NOT_FOUND;
        }
    }
    if (in_txn) {
        return key_rc ? key_rc : lease_rc;
    }
    return lease_rc ? lease_rc : key_rc;
}

static void put_apply(struct wctx *w, const struct kv_put_req *req,
                      struct mdl_arena *a, struct kv_put_resp *resp)
{
    struct mkey *k = key_get(w->m, req->key, req->key_len);
    const struct mrec *prev = rec_at(k, w->rev);
    memset(resp, 0, sizeof(*resp));
    if (req->prev_kv && prev != NULL) {
        struct kv_kv kv;
        rec_to_kv(k, prev, &kv);
        resp->has_prev = true;
        copy_kv(a, &resp->prev_kv, &kv);
    }
    const uint8_t *val = req->value;
    size_t val_len = req->value_len;
    int64_t lease = req->lease;
    uint8_t *keep = NULL;
    if ((req->ignore_value || req->ignore_lease) && prev == NULL) {
        /* Checked before the txn ran, deleted by an earlier op of it (a
         * "\0" delete escapes etcd's duplicate check): etcd panics here. */
        fprintf(stderr, "model: ignore_* put of a key deleted earlier in "
                        "the same txn: undefined in etcd, do not generate\n");
        abort();
    }
    if (req->ignore_value) {
        keep = xrealloc(NULL, prev->val_len);
        if (prev->val_len > 0) {
            memcpy(keep, prev->val, prev->val_len);
        }
        val = keep;
        val_len = prev->val_len;
    }
    if (req->ignore_lease) {
        lease = prev->lease;
    }
    w_put(w, k, val, val_len, lease);
    mem_free(keep);
}

int mdl_put(struct mdl *m, const struct kv_put_req *req, struct mdl_arena *a,
            struct kv_put_resp *resp, int64_t *rev, struct mdl_events *ev)
{
    memset(resp, 0, sizeof(*resp));
    int rc = put_check_static(req);
    if (rc == 0) {
        rc = put_check_state(m, m->work.rev, &m->work, req, false);
    }
    if (rc != 0) {
        return rc;
    }
    struct wctx w = {m, m->work.rev + 1, 0, ev};
    put_apply(&w, req, a, resp);
    m->work.rev = w.rev;
    *rev = m->work.rev;
    return 0;
}

static void del_apply(struct wctx *w, const struct kv_delete_req *req,
                      struct mdl_arena *a, struct kv_delete_resp *resp)
{
    struct mdl *m = w->m;
    memset(resp, 0, sizeof(*resp));
    size_t cap = m->nkeys + 1;
    if (req->prev_kv) {
        resp->prev_kvs = mdl_arena_alloc(a, cap * sizeof(struct kv_kv));
    }
    for (size_t i = 0; i < m->nkeys; i++) {
        struct mkey *k = m->keys[i];
        if (!in_range(k->k, k->len, req->key, req->key_len, req->range_end,
                      req->range_end_len)) {
            continue;
        }
        const struct mrec *r = rec_at(k, w->rev);
        if (r == NULL) {
            continue;
        }
        if (req->prev_kv) {
            struct kv_kv kv;
            rec_to_kv(k, r, &kv);
            copy_kv(a, &resp->prev_kvs[resp->prev_kvs_count++], &kv);
        }
        resp->deleted += w_del(w, k);
    }
}

int mdl_delete(struct mdl *m, const struct kv_delete_req *req,
               struct mdl_arena *a, struct kv_delete_resp *resp, int64_t *rev,
               struct mdl_events *ev)
{
    memset(resp, 0, sizeof(*resp));
    if (req->key_len == 0) {
        return ERR_KEY_NOT_PROVIDED;
    }
    struct wctx w = {m, m->work.rev + 1, 0, ev};
    del_apply(&w, req, a, resp);
    if (w.sub > 0) {
        m->work.rev = w.rev;
    }
    *rev = m->work.rev;
    return 0;
}

/* ---- txn ----------------------------------------------------------------- */

static int txn_validate(const struct mdl *m, const struct kv_txn_req *t,
                        size_t budget);

/* budget: what the parent's longest list leaves (etcd's checkRequestOp
 * gets maxTxnOps - opc). */
static int op_validate(const struct mdl *m, const struct kv_op *op,
                       size_t budget)
{
    switch (op->type) {
    case KV_OP_RANGE:
        return op->u.range.key_len == 0 ? ERR_KEY_NOT_PROVIDED : 0;
    case KV_OP_PUT:
        return put_check_static(&op->u.put);
    case KV_OP_DELETE:
        return op->u.del.key_len == 0 ? ERR_KEY_NOT_PROVIDED : 0;
    case KV_OP_TXN:
        return txn_validate(m, op->u.txn, budget);
    }
    return ERR_INVALID;
}

static int txn_validate(const struct mdl *m, const struct kv_txn_req *t,
                        size_t budget)
{
    size_t opc = t->compares_count;
    if (opc < t->success_count) {
        opc = t->success_count;
    }
    if (opc < t->failure_count) {
        opc = t->failure_count;
    }
    if (opc > budget) {
        return ERR_TOO_MANY_OPS;
    }
    for (size_t i = 0; i < t->compares_count; i++) {
        const struct kv_compare *c = &t->compares[i];
        if (c->key_len == 0) {
            return ERR_KEY_NOT_PROVIDED;
        }
        if ((unsigned)c->result > KV_CMP_NOT_EQUAL ||
            (unsigned)c->target > KV_CMP_LEASE) {
            return ERR_BAD_COMPARE;
        }
    }
    for (size_t i = 0; i < t->success_count; i++) {
        int rc = op_validate(m, &t->success[i], budget - opc);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < t->failure_count; i++) {
        int rc = op_validate(m, &t->failure[i], budget - opc);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* etcd's checkIntervals: sets of put keys and delete intervals. */
struct ivl {
    const uint8_t *b;
    size_t bl;
    const uint8_t *e;
    size_t el; /* 0: a single key */
};

struct ivset {
    struct ivl *v;
    size_t n, cap;
};

struct kset {
    const uint8_t **k;
    size_t *kl;
    size_t n, cap;
};

static void iv_add(struct ivset *s, struct ivl iv)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
    }
    s->v[s->n++] = iv;
}

static bool iv_hits(const struct ivset *s, const uint8_t *k, size_t kl)
{
    for (size_t i = 0; i < s->n; i++) {
        if (in_range(k, kl, s->v[i].b, s->v[i].bl, s->v[i].e, s->v[i].el)) {
            return true;
        }
    }
    return false;
}

static bool ks_has(const struct kset *s, const uint8_t *k, size_t kl)
{
    for (size_t i = 0; i < s->n; i++) {
        if (bytes_cmp(s->k[i], s->kl[i], k, kl) == 0) {
            return true;
        }
    }
    return false;
}

static void ks_add(struct kset *s, const uint8_t *k, size_t kl)
{
    if (ks_has(s, k, kl)) {
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 8;
        s->k = xrealloc(s->k, s->cap * sizeof(*s->k));
        s->kl = xrealloc(s->kl, s->cap * sizeof(*s->kl));
    }
    s->k[s->n] = k;
    s->kl[s->n] = kl;
    s->n++;
}

static void ks_free(struct kset *s)
{
    mem_free(s->k);
    mem_free(s->kl);
    memset(s, 0, sizeof(*s));
}

static void iv_free(struct ivset *s)
{
    mem_free(s->v);
    memset(s, 0, sizeof(*s));
}

static int check_intervals(const struct kv_op *ops, size_t n, struct kset *puts,
                           struct ivset *dels)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == KV_OP_DELETE) {
            const struct kv_delete_req *d = &ops[i].u.del;
            if (d->range_end_len == 1 && d->range_end[0] == 0) {
                /* etcd takes "\0" literally here: [key, "\0") is empty,
                 * so such a delete conflicts with nothing (kv.h too). */
                continue;
            }
            struct ivl iv = {d->key, d->key_len, d->range_end,
                             d->range_end_len};
            iv_add(dels, iv);
        }
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (ops[i].type != KV_OP_TXN) {
            continue;
        }
        const struct kv_txn_req *t = ops[i].u.txn;
        struct kset pt = {0}, pe = {0};
        struct ivset dt = {0}, de = {0};
        rc = check_intervals(t->success, t->success_count, &pt, &dt);
        if (rc == 0) {
            rc = check_intervals(t->failure, t->failure_count, &pe, &de);
        }
        for (size_t j = 0; rc == 0 && j < pt.n; j++) {
            if (ks_has(puts, pt.k[j], pt.kl[j]) ||
                iv_hits(dels, pt.k[j], pt.kl[j])) {
                rc = ERR_DUPLICATE_KEY;
            } else {
                ks_add(puts, pt.k[j], pt.kl[j]);
            }
        }
        for (size_t j = 0; rc == 0 && j < pe.n; j++) {
            if (ks_has(puts, pe.k[j], pe.kl[j]) &&
                !ks_has(&pt, pe.k[j], pe.kl[j])) {
                rc = ERR_DUPLICATE_KEY;
            } else if (iv_hits(dels, pe.k[j], pe.kl[j])) {
                rc = ERR_DUPLICATE_KEY;
            } else {
                ks_add(puts, pe.k[j], pe.kl[j]);
            }
        }
        for (size_t j = 0; j < dt.n; j++) {
            iv_add(dels, dt.v[j]);
        }
        for (size_t j = 0; j < de.n; j++) {
            iv_add(dels, de.v[j]);
        }
        ks_free(&pt);
        ks_free(&pe);
        iv_free(&dt);
        iv_free(&de);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (ops[i].type != KV_OP_PUT) {
            continue;
        }
        const struct kv_put_req *p = &ops[i].u.put;
        if (ks_has(puts, p->key, p->key_len) ||
            iv_hits(dels, p->key, p->key_len)) {
            rc = ERR_DUPLICATE_KEY;
        } else {
            ks_add(puts, p->key, p->key_len);
        }
    }
    return rc;
}

static int check_dups(const struct kv_txn_req *t)
{
    struct kset p = {0};
    struct ivset d = {0};
    int rc = check_intervals(t->success, t->success_count, &p, &d);
    ks_free(&p);
    iv_free(&d);
    if (rc == 0) {
        rc = check_intervals(t->failure, t->failure_count, &p, &d);
        ks_free(&p);
        iv_free(&d);
    }
    return rc;
}

int mdl_txn_validate(const struct mdl *m, const struct kv_txn_req *req)
{
    return txn_validate(m, req, m->max_ops);
}

int mdl_txn_check_dups(const struct kv_txn_req *req)
{
    return check_dups(req);
}

static bool cmp_one(const struct kv_compare *c, const struct kv_kv *kv)
{
    int r = 0;
    switch (c->target) {
    case KV_CMP_VERSION:
        r = i64_cmp(kv->version, c->number);
        break;
    case KV_CMP_CREATE:
        r = i64_cmp(kv->create_revision, c->number);
        break;
    case KV_CMP_MOD:
        r = i64_cmp(kv->mod_revision, c->number);
        break;
    case KV_CMP_VALUE:
        r = bytes_cmp(kv->value, kv->value_len, c->value, c->value_len);
        break;
    case KV_CMP_LEASE:
        r = i64_cmp(kv->lease, c->number);
        break;
    }
    switch (c->result) {
    case KV_CMP_EQUAL:
        return r == 0;
    case KV_CMP_NOT_EQUAL:
        return r != 0;
    case KV_CMP_GREATER:
        return r > 0;
    case KV_CMP_LESS:
        return r < 0;
    }
    return true;
}

/* etcd's applyCompare at revision rev. */
static bool cmp_eval(const struct mdl *m, int64_t rev,
                     const struct kv_compare *c)
{
    size_t found = 0;
    for (size_t i = 0; i < m->nkeys; i++) {
        const struct mkey *k = m->keys[i];
        if (!in_range(k->k, k->len, c->key, c->key_len, c->range_end,
                      c->range_end_len)) {
            continue;
        }
        const struct mrec *r = rec_at(k, rev);
        if (r == NULL) {
            continue;
        }
        found++;
        struct kv_kv kv;
        rec_to_kv(k, r, &kv);
        if (!cmp_one(c, &kv)) {
            return false;
        }
    }
    if (found == 0) {
        if (c->target == KV_CMP_VALUE) {
            return false;
        }
        struct kv_kv zero;
        memset(&zero, 0, sizeof(zero));
        return cmp_one(c, &zero);
    }
    return true;
}

static bool cmps_eval(const struct mdl *m, int64_t rev,
                      const struct kv_txn_req *t)
{
    for (size_t i = 0; i < t->compares_count; i++) {
        if (!cmp_eval(m, rev, &t->compares[i])) {
            return false;
        }
    }
    return true;
}

/* The path: every txn on the chosen path (depth first, in order) gets its
 * compare result, all evaluated at the pre-txn revision (etcd's
 * compareToPath). */
struct path {
    bool v[256];
    size_t n;
};

static void path_build(const struct mdl *m, int64_t rev,
                       const struct kv_txn_req *t, struct path *p)
{
    bool ok = cmps_eval(m, rev, t);
    if (p->n < 256) {
        p->v[p->n] = ok;
    }
    p->n++;
    const struct kv_op *ops = ok ? t->success : t->failure;
    size_t n = ok ? t->success_count : t->failure_count;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == KV_OP_TXN) {
            path_build(m, rev, ops[i].u.txn, p);
        }
    }
}

struct pcheck {
    const struct mdl *m;
    const struct mdl_view *v; /* leases, compact */
    int64_t rev;              /* pre-txn revision */
    const struct path *p;
    size_t pi;
    int first_put; /* etcd reports the first put error ... */
    int first_rng; /* ... else the first range error */
    int first_any; /* the first error in path order */
};

static void path_check(struct pcheck *c, const struct kv_txn_req *t)
{
    bool ok = c->p->v[c->pi++];
    const struct kv_op *ops = ok ? t->success : t->failure;
    size_t n = ok ? t->success_count : t->failure_count;
    for (size_t i = 0; i < n; i++) {
        int rc = 0;
        if (ops[i].type == KV_OP_PUT) {
            rc = put_check_state(c->m, c->rev, c->v, &ops[i].u.put, true);
            if (rc != 0 && c->first_put == 0) {
                c->first_put = rc;
            }
        } else if (ops[i].type == KV_OP_RANGE) {
            int64_t r = ops[i].u.range.revision;
            if (r > c->rev) {
                rc = ERR_FUTURE_REV;
            } else if (r != 0 && r < (c->v->compact > 0 ? c->v->compact : -1)) {
                /* etcd's checkRequestRange: a negative one too */
                rc = ERR_COMPACTED;
            }
            if (rc != 0 && c->first_rng == 0) {
                c->first_rng = rc;
            }
        } else if (ops[i].type == KV_OP_TXN) {
            path_check(c, ops[i].u.txn);
        }
        if (rc != 0 && c->first_any == 0) {
            c->first_any = rc;
        }
    }
}

struct texec {
    struct wctx w; /* w.m may be NULL-writes for read-only txns */
    struct mdl *mw;
    const struct mdl *m;
    int64_t pre_rev;
    int64_t compact;
    const struct path *p;
    size_t pi;
    struct mdl_arena *a;
};

static void txn_exec(struct texec *x, const struct kv_txn_req *t,
                     struct kv_txn_resp *resp)
{
    bool ok = x->p->v[x->pi++];
    const struct kv_op *ops = ok ? t->success : t->failure;
    size_t n = ok ? t->success_count : t->failure_count;
    resp->succeeded = ok;
    resp->responses_count = n;
    resp->responses =
        mdl_arena_alloc(x->a, (n + 1) * sizeof(struct kv_op_resp));
    for (size_t i = 0; i < n; i++) {
        struct kv_op_resp *r = &resp->responses[i];
        r->type = ops[i].type;
        switch (ops[i].type) {
        case KV_OP_RANGE: {
            /* Revision 0 sees this txn's earlier writes (at pre_rev + 1). */
            int64_t vis = x->w.sub > 0 ? x->pre_rev + 1 : x->pre_rev;
            int rc = range_at(x->m, vis, x->pre_rev, x->compact,
                              &ops[i].u.range, x->a, &r->u.range);
            if (rc != 0) {
                fprintf(stderr, "model: txn range failed after checks\n");
                abort();
            }
            break;
        }
        case KV_OP_PUT:
            put_apply(&x->w, &ops[i].u.put, x->a, &r->u.put);
            break;
        case KV_OP_DELETE:
            del_apply(&x->w, &ops[i].u.del, x->a, &r->u.del);
            break;
        case KV_OP_TXN:
            r->u.txn = mdl_arena_alloc(x->a, sizeof(struct kv_txn_resp));
            txn_exec(x, ops[i].u.txn, r->u.txn);
            break;
        }
    }
}

/* Validation, duplicates, path, path checks: 0 or the error (etcd's) with
 * the in-order alternative in *alt. */
static int txn_prepare(const struct mdl *m, const struct mdl_view *v,
                       const struct kv_txn_req *req, struct path *p, int *alt)
{
    int rc = txn_validate(m, req, m->max_ops);
    if (rc == 0) {
        rc = check_dups(req);
    }
    *alt = rc;
    if (rc != 0) {
        return rc;
    }
    memset(p, 0, sizeof(*p));
    path_build(m, v->rev, req, p);
    if (p->n > 256) {
        fprintf(stderr, "model: txn path too long\n");
        abort();
    }
    struct pcheck c = {m, v, v->rev, p, 0, 0, 0, 0};
    path_check(&c, req);
    rc = c.first_put ? c.first_put : c.first_rng;
    *alt = c.first_any;
    return rc;
}

int mdl_txn(struct mdl *m, const struct kv_txn_req *req, struct mdl_arena *a,
            struct kv_txn_resp *resp, int64_t *rev, struct mdl_events *ev,
            int *alt_err)
{
    memset(resp, 0, sizeof(*resp));
    struct path p;
    int alt = 0;
    int rc = txn_prepare(m, &m->work, req, &p, &alt);
    if (alt_err != NULL) {
        *alt_err = alt;
    }
    if (rc != 0) {
        return rc;
    }
    struct texec x;
    memset(&x, 0, sizeof(x));
    x.w.m = m;
    x.w.rev = m->work.rev + 1;
    x.w.ev = ev;
    x.m = m;
    x.pre_rev = m->work.rev;
    x.compact = m->work.compact;
    x.p = &p;
    x.a = a;
    txn_exec(&x, req, resp);
    if (x.w.sub > 0) {
        m->work.rev = x.w.rev;
    }
    *rev = m->work.rev;
    return 0;
}

static bool ops_read_only(const struct kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == KV_OP_PUT || ops[i].type == KV_OP_DELETE) {
            return false;
        }
        if (ops[i].type == KV_OP_TXN && !mdl_txn_is_read_only(ops[i].u.txn)) {
            return false;
        }
    }
    return true;
}

bool mdl_txn_is_read_only(const struct kv_txn_req *req)
{
    return ops_read_only(req->success, req->success_count) &&
           ops_read_only(req->failure, req->failure_count);
}

int mdl_txn_read(const struct mdl *m, const struct mdl_view *v,
                 const struct kv_txn_req *req, struct mdl_arena *a,
                 struct kv_txn_resp *resp, int *alt_err)
{
    memset(resp, 0, sizeof(*resp));
    if (alt_err != NULL) {
        *alt_err = 0;
    }
    if (!mdl_txn_is_read_only(req)) {
        if (alt_err != NULL) {
            *alt_err = ERR_INVALID;
        }
        return ERR_INVALID;
    }
    struct path p;
    int alt = 0;
    int rc = txn_prepare(m, v, req, &p, &alt);
    if (alt_err != NULL) {
        *alt_err = alt;
    }
    if (rc != 0) {
        return rc;
    }
    struct texec x;
    memset(&x, 0, sizeof(x));
    x.m = m;
    x.pre_rev = v->rev;
    x.compact = v->compact;
    x.p = &p;
    x.a = a;
    txn_exec(&x, req, resp);
    if (x.w.sub != 0) {
        fprintf(stderr, "model: read-only txn wrote\n");
        abort();
    }
    return 0;
}

/* ---- compaction and leases ----------------------------------------------- */

int mdl_compact(struct mdl *m, int64_t rev)
{
    if (rev <= m->work.compact) {
        return ERR_COMPACTED;
    }
    if (rev > m->work.rev) {
        return ERR_FUTURE_REV;
    }
    m->work.compact = rev;
    return 0;
}

int mdl_lease_grant(struct mdl *m, int64_t id, int64_t ttl)
{
    struct mdl_view *v = &m->work;
    if (lease_exists(v, id)) {
        return ERR_LEASE_EXISTS;
    }
    if (v->leases_count == MDL_LEASES_MAX) {
        fprintf(stderr, "model: too many leases for the model\n");
        abort();
    }
    size_t i = v->leases_count;
    while (i > 0 && v->leases[i - 1].id > id) {
        v->leases[i] = v->leases[i - 1];
        i--;
    }
    v->leases[i].id = id;
    v->leases[i].ttl = ttl;
    v->leases[i].remaining_ttl = 0;
    v->leases_count++;
    return 0;
}

int mdl_lease_revoke(struct mdl *m, int64_t id, int64_t *rev,
                     struct mdl_events *ev)
{
    struct mdl_view *v = &m->work;
    size_t li = v->leases_count;
    for (size_t i = 0; i < v->leases_count; i++) {
        if (v->leases[i].id == id) {
            li = i;
        }
    }
    if (li == v->leases_count) {
        return ERR_LEASE_NOT_FOUND;
    }
    struct wctx w = {m, m->work.rev + 1, 0, ev};
    for (size_t i = 0; i < m->nkeys; i++) {
        const struct mrec *r = rec_at(m->keys[i], w.rev);
        if (r != NULL && r->lease == id) {
            w_del(&w, m->keys[i]);
        }
    }
    if (w.sub > 0) {
        m->work.rev = w.rev;
    }
    memmove(&v->leases[li], &v->leases[li + 1],
            (v->leases_count - li - 1) * sizeof(v->leases[0]));
    v->leases_count--;
    *rev = m->work.rev;
    return 0;
}

int mdl_lease_checkpoint(struct mdl *m, int64_t id, int64_t remaining_ttl)
{
    for (size_t i = 0; i < m->work.leases_count; i++) {
        if (m->work.leases[i].id == id) {
            m->work.leases[i].remaining_ttl = remaining_ttl;
            return 0;
        }
    }
    return ERR_LEASE_NOT_FOUND;
}

int mdl_lease_get(const struct mdl_view *v, int64_t id, struct kv_lease *out)
{
    for (size_t i = 0; i < v->leases_count; i++) {
        if (v->leases[i].id == id) {
            *out = v->leases[i];
            return 0;
        }
    }
    return ERR_LEASE_NOT_FOUND;
}

size_t mdl_lease_keys(const struct mdl *m, const struct mdl_view *v, int64_t id,
                      struct mdl_arena *a, struct kv_kv **keys)
{
    *keys = mdl_arena_alloc(a, (m->nkeys + 1) * sizeof(struct kv_kv));
    size_t n = 0;
    for (size_t i = 0; i < m->nkeys; i++) {
        const struct mrec *r = rec_at(m->keys[i], v->rev);
        if (r != NULL && r->lease == id) {
            struct kv_kv kv;
            rec_to_kv(m->keys[i], r, &kv);
            copy_kv(a, &(*keys)[n++], &kv);
        }
    }
    return n;
}

/* ---- history ------------------------------------------------------------- */

int mdl_events_read(const struct mdl *m, const struct mdl_view *v,
                    const uint8_t *key, size_t key_len,
                    const uint8_t *range_end, size_t range_end_len,
                    int64_t from_rev, int64_t to_rev, bool with_prev,
                    struct mdl_events *out, int64_t *to_rev_out)
{
    if (to_rev == 0) {
        to_rev = v->rev;
    }
    *to_rev_out = to_rev;
    if (from_rev < 1) {
        from_rev = 1;
    }
    if (from_rev < v->compact) {
        return ERR_COMPACTED;
    }
    for (size_t i = 0; i < m->nev; i++) {
        const struct mev *e = &m->ev[i];
        if (e->rev < from_rev || e->rev > to_rev || e->rev > v->rev) {
            continue;
        }
        const struct mkey *k = e->key;
        if (!in_range(k->k, k->len, key, key_len, range_end, range_end_len)) {
            continue;
        }
        const struct mrec *r = &k->r[e->idx];
        struct kv_event ev;
        memset(&ev, 0, sizeof(ev));
        if (r->tomb) {
            ev.type = KV_EVENT_DELETE;
            ev.kv.key = k->k;
            ev.kv.key_len = k->len;
            ev.kv.mod_revision = r->rev;
        } else {
            ev.type = KV_EVENT_PUT;
            rec_to_kv(k, r, &ev.kv);
        }
        /* etcd's watch looks prev up at mod_revision - 1 and not at all
         * for a create (etcd-api.md 1.5.6; v3rpc/watch.go). The two differ
         * from "the record just before" only when one txn wrote the key
         * twice, which etcd's duplicate check lets through across two
         * nested txns. */
        const struct mrec *pr = rec_at(k, r->rev - 1);
        bool create = !r->tomb && r->version == 1;
        if (r->rev - 1 < v->compact) {
            /* The key has a record at the compacted revision (this one),
             * so whatever it had before is compacted away. */
            pr = NULL;
        }
        if (with_prev && pr != NULL && !create) {
            ev.has_prev = true;
            rec_to_kv(k, pr, &ev.prev);
        }
        mdl_events_push(out, &ev);
    }
    return 0;
}

/* ---- HashKV ----------------------------------------------------------------
 */

/* Does a compaction at c keep record idx of k? */
static bool kept(const struct mkey *k, size_t idx, int64_t c)
{
    const struct mrec *r = &k->r[idx];
    if (r->rev >= c) {
        return true;
    }
    if (idx + 1 < k->n && k->r[idx + 1].rev <= c) {
        return false; /* not the latest record at or below c */
    }
    return !r->tomb;
}

int mdl_hash(const struct mdl *m, const struct mdl_view *v, int64_t rev,
             uint32_t *hash, int64_t *compact_rev, int64_t *hash_rev)
{
    int64_t r = rev <= 0 ? v->rev : rev;
    if (r > v->rev) {
        return ERR_FUTURE_REV;
    }
    if (r < v->compact) {
        return ERR_COMPACTED;
    }
    uint32_t crc = 0;
    for (size_t i = 0; i < m->nev && m->ev[i].rev <= r; i++) {
        const struct mev *e = &m->ev[i];
        const struct mkey *k = e->key;
        if (!kept(k, e->idx, v->compact)) {
            continue;
        }
        const struct mrec *rc = &k->r[e->idx];
        uint8_t key12[12], head[1 + 8 * 3 + 4];
        be64_put(key12, (uint64_t)rc->rev);
        be32_put(key12 + 8, (uint32_t)rc->sub);
        head[0] = rc->tomb ? 1 : 0;
        be64_put(head + 1, (uint64_t)(rc->tomb ? 0 : rc->create));
        be64_put(head + 9, (uint64_t)(rc->tomb ? 0 : rc->version));
        be64_put(head + 17, (uint64_t)(rc->tomb ? 0 : rc->lease));
        be32_put(head + 25, (uint32_t)k->len);
        crc = crc32c(crc, key12, sizeof(key12));
        crc = crc32c(crc, head, sizeof(head));
        crc = crc32c(crc, k->k, k->len);
        if (!rc->tomb && rc->val_len > 0) {
            crc = crc32c(crc, rc->val, rc->val_len);
        }
    }
    uint8_t b[8];
    be64_put(b, (uint64_t)v->compact);
    *hash = crc32c(crc, b, sizeof(b));
    *compact_rev = v->compact;
    *hash_rev = r;
    return 0;
}

/*
 * kv_range.c - Range: the read path, at the current or a past revision.
 *
 * At the current revision the answer comes from the live table with one
 * cursor walk (the hot path: no index, no copy on a read handle). A live
 * row holds a key's metadata; its value is read from the rev record at
 * (mod, sub) only for the records answered (after the count, filters,
 * sort and limit), and not at all for count_only or keys_only (unless
 * sorting by value). At a past revision r, each distinct key in the
 * index table is positioned at its greatest record <= r; tombstones are
 * skipped and the record itself is read from the rev table.
 *
 * etcd 3.4 rules (etcd-api.md 1.5.2, apply.go): count is every key in the
 * range at that revision, whatever limit and the min/max filters say; with a
 * sort (a non-KEY target with order NONE sorts ascending) or any filter,
 * everything is read, filtered, sorted and only then cut to limit; more
 * means the cut happened. Ties in a sort are broken by key (etcd's sort is
 * unstable there) so every member and every run answer alike.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "consensus/kv/kv_int.h"

int kv__view_cursor(struct kv_view *v, enum kv_cur which, MDB_cursor **out)
{
    static const enum kv_dbi_id dbi_of[KV_CUR__COUNT] = {
        [KV_CUR_LIVE] = KV_DBI_LIVE,
        [KV_CUR_INDEX] = KV_DBI_INDEX,
        [KV_CUR_REV] = KV_DBI_REV,
    };
    MDB_dbi dbi = v->kv->dbi[dbi_of[which]];
    struct kv_read *rd = v->rd;
    int rc;
    if (rd == NULL) {
        return kv__mdb_err(mdb_cursor_open(v->txn, dbi, out));
    }
    if (rd->cur[which] == NULL) {
        rc = mdb_cursor_open(rd->txn, dbi, &rd->cur[which]);
    } else if (!rd->cur_ok[which]) {
        rc = mdb_cursor_renew(rd->txn, rd->cur[which]);
    } else {
        rc = 0;
    }
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rd->cur_ok[which] = true;
    *out = rd->cur[which];
    return 0;
}

void kv__view_cursor_done(struct kv_view *v, MDB_cursor *c)
{
    if (v->rd == NULL && c != NULL) {
        mdb_cursor_close(c);
    }
}

int kv__live_get(MDB_txn *txn, struct kv *kv, const uint8_t *key,
                 size_t key_len, struct kv_rec *out)
{
    MDB_val k = {key_len, (void *)key}, d;
    int rc = mdb_get(txn, kv->dbi[KV_DBI_LIVE], &k, &d);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    return kv__live_decode(&k, &d, out);
}

static int rev_fetch(struct kv_view *v, const uint8_t *idx, struct kv_rec *out)
{
    MDB_val k = {KV_REVKEY_LEN, (void *)idx}, d;
    int rc = mdb_get(v->txn, v->kv->dbi[KV_DBI_REV], &k, &d);
    if (rc == MDB_NOTFOUND) {
        return ERR_CORRUPT; /* the index names a record that is gone */
    }
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = kv__rev_decode(&k, &d, out);
    if (rc == 0 && out->type != idx[12]) {
        return ERR_CORRUPT;
    }
    return rc;
}

/* The cursor is on key k (any of its dups). Leave in *d its greatest dup
 * with main revision <= rev: 0, or ERR_NOT_FOUND if every dup is newer. The
 * common case (the newest record is old enough) costs one step. */
static int idx_pick(MDB_cursor *c, MDB_val *k, int64_t rev, MDB_val *d)
{
    uint8_t keybuf[KV_KEY_BYTES_MAX];
    uint8_t seek[KV_IDX_LEN];
    int rc = mdb_cursor_get(c, k, d, MDB_LAST_DUP);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    if (d->mv_size != KV_IDX_LEN || k->mv_size > sizeof(keybuf)) {
        return ERR_CORRUPT;
    }
    if ((int64_t)be64_get(d->mv_data) <= rev) {
        return 0;
    }
    memcpy(keybuf, k->mv_data, k->mv_size);
    MDB_val kk = {k->mv_size, keybuf};
    kv__idx(seek, rev + 1, 0, 0);
    MDB_val sd = {KV_IDX_LEN, seek};
    rc = mdb_cursor_get(c, &kk, &sd, MDB_GET_BOTH_RANGE);
    if (rc != 0) {
        return rc == MDB_NOTFOUND ? ERR_CORRUPT : kv__mdb_err(rc);
    }
    rc = mdb_cursor_get(c, k, d, MDB_PREV_DUP);
    if (rc != 0) {
        return kv__mdb_err(rc); /* NOTFOUND: all dups are newer */
    }
    return d->mv_size == KV_IDX_LEN ? 0 : ERR_CORRUPT;
}

int kv__key_at(struct kv_view *v, MDB_cursor *idx, const uint8_t *key,
               size_t key_len, int64_t main, struct kv_rec *out)
{
    MDB_val k = {key_len, (void *)key}, d;
    int rc = mdb_cursor_get(idx, &k, &d, MDB_SET_KEY);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = idx_pick(idx, &k, main, &d);
    if (rc != 0) {
        return rc;
    }
    const uint8_t *p = d.mv_data;
    if (p[12] == KV_REC_DEL) {
        return ERR_NOT_FOUND;
    }
    return rev_fetch(v, p, out);
}

/* --- iteration over the keys of a span at one revision ------------------ */

struct iter {
    struct kv_view *v;
    const struct kv_span *span;
    MDB_cursor *c;
    MDB_cursor *vc; /* rev table, for lazy values; opened on first use */
    int64_t rev;    /* 0: the live table */
    bool started;
};

static int iter_value(struct iter *it, struct kv_rec *r)
{
    if (!r->lazy) {
        return 0;
    }
    if (it->vc == NULL) {
        int rc = kv__view_cursor(it->v, KV_CUR_REV, &it->vc);
        if (rc != 0) {
            return rc;
        }
    }
    return kv__value_load(it->v->txn, it->v->kv, it->vc, r);
}

static int iter_live(struct iter *it, struct kv_rec *out)
{
    MDB_val k, d;
    int rc;
    if (it->span->kind == KV_RANGE_ONE) {
        if (it->started) {
            return ERR_END;
        }
        it->started = true;
        rc = kv__live_get(it->v->txn, it->v->kv, it->span->key,
                          it->span->key_len, out);
        return rc == ERR_NOT_FOUND ? ERR_END : rc;
    }
    if (!it->started) {
        k.mv_size = it->span->key_len;
        k.mv_data = (void *)it->span->key;
        rc = mdb_cursor_get(it->c, &k, &d, MDB_SET_RANGE);
        it->started = true;
    } else {
        rc = mdb_cursor_get(it->c, &k, &d, MDB_NEXT);
    }
    if (rc != 0) {
        return rc == MDB_NOTFOUND ? ERR_END : kv__mdb_err(rc);
    }
    if (kv__span_past(it->span, k.mv_data, k.mv_size)) {
        return ERR_END;
    }
    return kv__live_decode(&k, &d, out);
}

static int iter_hist(struct iter *it, struct kv_rec *out)
{
    MDB_val k, d;
    for (size_t guard = 0;; guard++) {
        ASSERT(guard < SIZE_MAX);
        int rc;
        if (!it->started) {
            k.mv_size = it->span->key_len;
            k.mv_data = (void *)it->span->key;
            rc = mdb_cursor_get(it->c, &k, &d, MDB_SET_RANGE);
            it->started = true;
        } else {
            rc = mdb_cursor_get(it->c, &k, &d, MDB_NEXT_NODUP);
        }
        if (rc != 0) {
            return rc == MDB_NOTFOUND ? ERR_END : kv__mdb_err(rc);
        }
        if (kv__span_past(it->span, k.mv_data, k.mv_size)) {
            return ERR_END;
        }
        rc = idx_pick(it->c, &k, it->rev, &d);
        if (rc == ERR_NOT_FOUND) {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
        const uint8_t *p = d.mv_data;
        if (p[12] == KV_REC_DEL) {
            continue;
        }
        return rev_fetch(it->v, p, out);
    }
}

static int iter_next(struct iter *it, struct kv_rec *out)
{
    return it->rev == 0 ? iter_live(it, out) : iter_hist(it, out);
}

/* --- the answer ------------------------------------------------------------*/

struct plan {
    bool sort;
    bool filter;
    enum kv_sort_order order; /* effective */
    enum kv_sort_target target;
    int64_t limit;
    size_t bytes_max;
};

int kv__range_check(const struct kv_range_req *req)
{
    if ((unsigned)req->sort_order > KV_SORT_DESCEND ||
        (unsigned)req->sort_target > KV_SORT_VALUE) {
        return ERR_BAD_REQUEST;
    }
    return 0;
}

static bool filtered_out(const struct kv_range_req *r, const struct kv_rec *k)
{
    return (r->max_mod_revision != 0 && k->mod > r->max_mod_revision) ||
           (r->min_mod_revision != 0 && k->mod < r->min_mod_revision) ||
           (r->max_create_revision != 0 &&
            k->create > r->max_create_revision) ||
           (r->min_create_revision != 0 && k->create < r->min_create_revision);
}

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

/* A record kept by the walk: lazy until answer() loads its value. */
struct kept {
    struct kv_kv kv;
    uint32_t sub;
    bool lazy;
};

static int sort_cmp(const void *pa, const void *pb, void *arg)
{
    const struct kv_kv *a = &((const struct kept *)pa)->kv;
    const struct kv_kv *b = &((const struct kept *)pb)->kv;
    const struct plan *p = arg;
    int c = 0;
    switch (p->target) {
    case KV_SORT_KEY:
        break;
    case KV_SORT_VERSION:
        c = cmp_i64(a->version, b->version);
        break;
    case KV_SORT_CREATE:
        c = cmp_i64(a->create_revision, b->create_revision);
        break;
    case KV_SORT_MOD:
        c = cmp_i64(a->mod_revision, b->mod_revision);
        break;
    case KV_SORT_VALUE:
        c = kv__bytes_cmp(a->value, a->value_len, b->value, b->value_len);
        break;
    }
    if (p->order == KV_SORT_DESCEND) {
        c = -c;
    }
    /* Ties (equal version, revision or value) go in key order whatever the
     * direction, as etcd's sort of a key-ordered slice leaves them (Go's
     * sort.Sort on sort.Reverse keeps equal elements of a small slice in
     * place); only a key sort itself is reversed by DESCEND. */
    if (c == 0) {
        c = kv__bytes_cmp(a->key, a->key_len, b->key, b->key_len);
        if (p->target == KV_SORT_KEY && p->order == KV_SORT_DESCEND) {
            c = -c;
        }
    }
    return c;
}

static size_t kv_bytes(const struct kv_kv *k, bool keys_only)
{
    return sizeof(*k) + k->key_len + (keys_only ? 0 : k->value_len);
}

/* Emit kvs[0..n) into the answer (arena array; copies on a write view),
 * loading the values still lazy unless keys_only. */
static int answer(struct iter *it, const struct kv_range_req *req,
                  const struct plan *p, struct kept *kvs, size_t n,
                  struct kv_result *res, struct kv_range_resp *resp)
{
    struct kv_view *v = it->v;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (kvs[i].lazy && !req->keys_only) {
            struct kv_rec r = {
                .lazy = true,
                .key = kvs[i].kv.key,
                .key_len = kvs[i].kv.key_len,
                .mod = kvs[i].kv.mod_revision,
                .sub = kvs[i].sub,
            };
            int rc = iter_value(it, &r);
            if (rc != 0) {
                return rc;
            }
            kvs[i].kv.value = r.value;
            kvs[i].kv.value_len = r.value_len;
            kvs[i].lazy = false;
        }
        bytes += kv_bytes(&kvs[i].kv, req->keys_only);
    }
    if (bytes > p->bytes_max) {
        return ERR_LIMIT;
    }
    struct kv_kv *out = kv__alloc(res, n * sizeof(*out));
    if (out == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = kvs[i].kv;
        if (req->keys_only) {
            out[i].value = NULL;
            out[i].value_len = 0;
        }
        if (v->copy && kv__copy_kv(res, &out[i], !req->keys_only) != 0) {
            return -ENOMEM;
        }
    }
    resp->kvs = out;
    resp->kvs_count = n;
    return 0;
}

struct vec {
    struct kept *v;
    size_t n, cap;
};

static int vec_push(struct vec *vec, const struct kv_rec *r, size_t max)
{
    if (vec->n == vec->cap) {
        size_t cap = vec->cap == 0 ? 16 : vec->cap * 2;
        if (cap * sizeof(struct kept) > max) {
            cap = max / sizeof(struct kept);
            if (cap <= vec->n) {
                return ERR_LIMIT;
            }
        }
        struct kept *nv = mem_realloc(vec->v, cap * sizeof(*nv));
        if (nv == NULL) {
            return -ENOMEM;
        }
        vec->v = nv;
        vec->cap = cap;
    }
    struct kept *e = &vec->v[vec->n++];
    kv__rec_to_kv(r, &e->kv);
    e->sub = r->sub;
    e->lazy = r->lazy;
    return 0;
}

/* Walk the span once: count everything, keep what the plan needs. */
static int walk(struct iter *it, const struct kv_range_req *req,
                const struct plan *p, struct vec *keep, int64_t *count)
{
    struct kv_rec r;
    int rc;
    /* Without sort or filter only the first limit (+1 for more) matter. */
    size_t want = SIZE_MAX;
    if (req->count_only) {
        want = 0;
    } else if (!p->sort && !p->filter && p->limit > 0) {
        want = (size_t)p->limit;
    }
    for (;;) {
        rc = iter_next(it, &r);
        if (rc != 0) {
            break;
        }
        (*count)++;
        if (keep->n >= want || (p->filter && filtered_out(req, &r))) {
            continue;
        }
        if (p->sort && p->target == KV_SORT_VALUE) {
            rc = iter_value(it, &r); /* the sort needs it */
            if (rc != 0) {
                return rc;
            }
        }
        rc = vec_push(keep, &r, p->bytes_max);
        if (rc != 0) {
            return rc;
        }
    }
    return rc == ERR_END ? 0 : rc;
}

static void plan_make(struct kv_view *v, const struct kv_range_req *req,
                      struct plan *p)
{
    p->target = req->sort_target;
    p->order = req->sort_order;
    if (p->target != KV_SORT_KEY && p->order == KV_SORT_NONE) {
        p->order = KV_SORT_ASCEND;
    }
    p->sort = p->order != KV_SORT_NONE &&
              !(p->target == KV_SORT_KEY && p->order == KV_SORT_ASCEND);
    p->filter = req->min_mod_revision != 0 || req->max_mod_revision != 0 ||
                req->min_create_revision != 0 || req->max_create_revision != 0;
    p->limit = req->limit > 0 ? req->limit : 0;
    p->bytes_max = (size_t)v->kv->opts.range_result_bytes_max;
}

int kv__range(struct kv_view *v, const struct kv_range_req *req,
              struct kv_result *res, struct kv_range_resp *resp)
{
    struct kv_span span;
    struct plan p;
    memset(resp, 0, sizeof(*resp));
    int rc = kv__span(req->key, req->key_len, req->range_end,
                      req->range_end_len, &span);
    rc = rc != 0 ? rc : kv__range_check(req);
    if (rc != 0) {
        return rc;
    }
    int64_t rev = req->revision > 0 ? req->revision : 0;
    if (rev > v->max_rev) {
        return ERR_FUTURE_REV;
    }
    if (rev != 0 && rev < v->compact) {
        return ERR_COMPACTED;
    }
    if (span.kind == KV_RANGE_EMPTY) {
        return 0;
    }
    plan_make(v, req, &p);
    struct iter it = {.v = v, .span = &span};
    it.rev = rev == v->live_rev ? 0 : rev;
    if (it.rev != 0 || span.kind != KV_RANGE_ONE) {
        rc =
            kv__view_cursor(v, it.rev == 0 ? KV_CUR_LIVE : KV_CUR_INDEX, &it.c);
        if (rc != 0) {
            return rc;
        }
    }
    struct vec keep = {0};
    int64_t count = 0;
    rc = walk(&it, req, &p, &keep, &count);
    kv__view_cursor_done(v, it.c);
    it.c = NULL;
    if (rc == 0 && p.sort && keep.n > 1) {
        qsort_r(keep.v, keep.n, sizeof(*keep.v), sort_cmp, &p);
    }
    if (rc == 0) {
        size_t n = keep.n;
        if (p.limit > 0 && n > (size_t)p.limit) {
            n = (size_t)p.limit;
            resp->more = true;
        }
        /* Without sort or filter the walk kept at most limit kvs; more
         * follows from the count. */
        if (!p.sort && !p.filter && p.limit > 0 && !req->count_only &&
            count > p.limit) {
            resp->more = true;
        }
        resp->count = count;
        rc = answer(&it, req, &p, keep.v, n, res, resp);
    }
    kv__view_cursor_done(v, it.vc);
    mem_free(keep.v);
    if (rc != 0) {
        resp->kvs = NULL;
        resp->kvs_count = 0;
    }
    return rc;
}

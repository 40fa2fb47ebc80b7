/*
 * kv_write.c - the write handle: put, delete-range, compaction, leases,
 * auxiliary tables, the event buffer and commit.
 *
 * A batch is one LMDB write txn. Each request is applied in two phases:
 * first every check, lookup and allocation (results, events, key lists),
 * then the LMDB writes. A request that fails in the first phase has
 * written nothing, so put, delete, revoke and compaction run directly in
 * the batch txn (a nested txn per request costs 3-5x in a big batch). A
 * txn request, whose ops interleave reads, copies and writes, runs in a
 * nested txn (kv_txn.c) and is undone by aborting it. If LMDB itself fails
 * during the write phase of a direct request (out of map or memory, I/O),
 * the batch txn cannot continue: the handle turns failed (ERR_FAILED for
 * every later call, commit returns the first error) and the store keeps
 * its state before the batch.
 *
 * Events (kv.h): buffered per request, emitted after it succeeded, each
 * with the record it replaced (prev) when there was one.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/err.h"
#include "consensus/kv/kv_int.h"

#define EV_BYTES_MAX      ((size_t)1 << 40) /* bounded by the request itself */
#define REQ_COST_OVERHEAD 128               /* quota estimate per record set */

/* --- events ----------------------------------------------------------------*/

void kv__ev_reset(struct kv_evbuf *ev)
{
    ev->count = 0;
    buf_reset(&ev->data);
}

static int ev_bytes(struct kv_evbuf *ev, const uint8_t *p, size_t n,
                    size_t *off)
{
    *off = ev->data.len;
    return n == 0 ? 0 : buf_append(&ev->data, p, n);
}

int kv__ev_add(struct kv_evbuf *ev, enum kv_event_type type,
               const struct kv_rec *now, const struct kv_rec *prev)
{
    if (ev->count == ev->cap) {
        size_t cap = ev->cap == 0 ? 16 : ev->cap * 2;
        struct kv_ev_rec *r = mem_realloc(ev->recs, cap * sizeof(*r));
        if (r == NULL) {
            return -ENOMEM;
        }
        ev->recs = r;
        ev->cap = cap;
    }
    struct kv_ev_rec *e = &ev->recs[ev->count];
    size_t mark = ev->data.len;
    memset(e, 0, sizeof(*e));
    e->type = type;
    e->key_len = now->key_len;
    e->val_len = now->value_len;
    e->create = now->create;
    e->mod = now->mod;
    e->version = now->version;
    e->lease = now->lease;
    int rc = ev_bytes(ev, now->key, now->key_len, &e->key_off);
    rc = rc != 0 ? rc : ev_bytes(ev, now->value, now->value_len, &e->val_off);
    if (rc == 0 && prev != NULL) {
        e->has_prev = true;
        e->pval_len = prev->value_len;
        e->pcreate = prev->create;
        e->pmod = prev->mod;
        e->pversion = prev->version;
        e->please = prev->lease;
        rc = ev_bytes(ev, prev->value, prev->value_len, &e->pval_off);
    }
    if (rc != 0) {
        ev->data.len = mark;
        return rc;
    }
    ev->count++;
    return 0;
}

void kv__ev_emit(struct kv_write *wr)
{
    struct kv_evbuf *ev = &wr->ev;
    if (wr->on_event != NULL) {
        for (size_t i = 0; i < ev->count; i++) {
            const struct kv_ev_rec *e = &ev->recs[i];
            const uint8_t *d = ev->data.data;
            struct kv_event out;
            memset(&out, 0, sizeof(out));
            out.type = e->type;
            out.kv.key = d + e->key_off;
            out.kv.key_len = e->key_len;
            out.kv.value = e->val_len > 0 ? d + e->val_off : NULL;
            out.kv.value_len = e->val_len;
            out.kv.create_revision = e->create;
            out.kv.mod_revision = e->mod;
            out.kv.version = e->version;
            out.kv.lease = e->lease;
            out.has_prev = e->has_prev;
            out.prev_omitted = e->prev_omitted;
            if (e->has_prev) {
                out.prev.key = out.kv.key;
                out.prev.key_len = e->key_len;
                out.prev.value = e->pval_len > 0 ? d + e->pval_off : NULL;
                out.prev.value_len = e->pval_len;
                out.prev.create_revision = e->pcreate;
                out.prev.mod_revision = e->pmod;
                out.prev.version = e->pversion;
                out.prev.lease = e->please;
            }
            (void)wr->on_event(wr->ctx, &out);
        }
    }
    kv__ev_reset(ev);
}

/* --- handle
 * -----------------------------------------------------------------*/

int kv_write_begin(struct kv *kv, kv_event_cb on_event, void *ctx,
                   struct kv_write **out)
{
    if (atomic_load(&kv->failed) != 0) {
        return ERR_FAILED;
    }
    bool idle = false;
    if (!atomic_compare_exchange_strong(&kv->writer_active, &idle, true)) {
        return ERR_BUSY;
    }
    struct kv_write *wr = mem_calloc(1, sizeof(*wr));
    if (wr == NULL) {
        atomic_store(&kv->writer_active, false);
        return -ENOMEM;
    }
    wr->kv = kv;
    wr->on_event = on_event;
    wr->ctx = ctx;
    buf_init(&wr->ev.data, EV_BYTES_MAX);
    buf_init(&wr->scratch, EV_BYTES_MAX);
    int rc = kv__mdb_err(mdb_txn_begin(kv->env, NULL, 0, &wr->txn));
    if (rc == 0) {
        rc = kv__read_meta(wr->txn, kv->dbi[KV_DBI_META], &wr->rev,
                           &wr->compact, NULL, NULL);
        if (rc != 0) {
            mdb_txn_abort(wr->txn);
        }
    }
    if (rc != 0) {
        mem_free(wr);
        atomic_store(&kv->writer_active, false);
        return rc;
    }
    wr->db_bytes_begin = kv__db_bytes(kv);
    kv_applied(kv, &wr->mark_index, &wr->mark_term);
    *out = wr;
    return 0;
}

void kv_write_mark(struct kv_write *wr, uint64_t index, uint64_t term)
{
    wr->mark_index = index;
    wr->mark_term = term;
}

static void write_free(struct kv_write *wr)
{
    struct kv *kv = wr->kv;
    mem_free(wr->ev.recs);
    buf_free(&wr->ev.data);
    buf_free(&wr->scratch);
    mem_free(wr);
    atomic_store(&kv->writer_active, false);
}

static void live_cur_close(struct kv_write *wr)
{
    if (wr->live_cur != NULL) {
        mdb_cursor_close(wr->live_cur);
        wr->live_cur = NULL;
    }
}

void kv_write_abort(struct kv_write *wr)
{
    if (wr == NULL) {
        return;
    }
    live_cur_close(wr);
    if (wr->txn != NULL) {
        mdb_txn_abort(wr->txn);
    }
    write_free(wr);
}

/* Commit wr's LMDB txn with the revision and the applied index; the txn
 * is gone either way. Returns 0 or a positive LMDB code (the store is
 * failed when it is fatal). */
static int txn_commit(struct kv_write *wr, uint64_t applied_index,
                      uint64_t applied_term)
{
    struct kv *kv = wr->kv;
    MDB_dbi meta = kv->dbi[KV_DBI_META];
    uint8_t b[16];
    live_cur_close(wr);
    be64_put(b, (uint64_t)wr->rev);
    MDB_val k = {3, "rev"}, v = {8, b};
    int rc = mdb_put(wr->txn, meta, &k, &v, 0);
    be64_put(b, applied_index);
    be64_put(b + 8, applied_term);
    k = (MDB_val){7, "applied"};
    v = (MDB_val){16, b};
    rc = rc != 0 ? rc : mdb_put(wr->txn, meta, &k, &v, 0);
    if (rc != 0) {
        mdb_txn_abort(wr->txn);
    } else {
        rc = mdb_txn_commit(wr->txn); /* frees the txn either way */
    }
    wr->txn = NULL;
    if (rc != 0 && kv__fatal_err(rc)) {
        kv__set_failed(kv, kv__mdb_err(rc));
    }
    if (rc == 0) {
        kv__note_pages(kv);
        if (!kv->writemap) { /* its file is allocated ahead: kv__room */
            kv__grow_ahead(kv, atomic_load(&kv->last_pgno));
        } else {
            kv__wm_resident(kv);
        }
        pthread_mutex_lock(&kv->state_mu);
        kv->rev = wr->rev;
        kv->compact = wr->compact;
        kv->applied_index = applied_index;
        kv->applied_term = applied_term;
        pthread_mutex_unlock(&kv->state_mu);
    }
    return rc;
}

int kv_write_commit(struct kv_write *wr, uint64_t applied_index,
                    uint64_t applied_term)
{
    if (wr->err != 0) {
        int err = wr->err;
        kv_write_abort(wr);
        return err;
    }
    int err = kv__mdb_err(txn_commit(wr, applied_index, applied_term));
    write_free(wr);
    return err;
}

/* A new LMDB txn for wr after a savepoint or a rollback. */
static int txn_renew(struct kv_write *wr, int rc)
{
    if (rc == 0) {
        rc = mdb_txn_begin(wr->kv->env, NULL, 0, &wr->txn);
        if (rc != 0) {
            wr->txn = NULL;
        }
    }
    if (rc == 0 && wr->kv->writemap) {
        rc = kv__room(wr->kv, wr->txn);
    }
    return rc != 0 ? kv__poison(wr, rc) : 0;
}

void kv_write_on_savepoint(struct kv_write *wr, kv_savepoint_fn fn, void *ctx)
{
    wr->on_savepoint = fn;
    wr->savepoint_ctx = ctx;
}

void kv_write_event_prev(struct kv_write *wr, bool all, const uint8_t *prefix,
                         size_t prefix_len)
{
    wr->ev_prev_some = !all;
    wr->ev_prev_prefix = prefix;
    wr->ev_prev_prefix_len = prefix_len;
}

/* Whether the event on key needs the old record's value. */
static bool ev_wants_prev(const struct kv_write *wr, const uint8_t *key,
                          size_t key_len)
{
    if (wr->on_event == NULL) {
        return false;
    }
    if (!wr->ev_prev_some) {
        return true;
    }
    size_t n = wr->ev_prev_prefix_len;
    return n > 0 && key_len >= n && memcmp(key, wr->ev_prev_prefix, n) == 0;
}

/* The event of this revision that already changed now's key, or NULL. */
static const struct kv_ev_rec *ev_same_rev(const struct kv_evbuf *ev,
                                           const struct kv_rec *now)
{
    for (size_t i = ev->count; i-- > 0;) {
        const struct kv_ev_rec *e = &ev->recs[i];
        if (e->mod != now->mod) {
            return NULL; /* events go in revision order */
        }
        if (e->key_len == now->key_len &&
            (e->key_len == 0 ||
             memcmp((const uint8_t *)ev->data.data + e->key_off, now->key,
                    e->key_len) == 0)) {
            return e;
        }
    }
    return NULL;
}

/* Add an event whose old record's value was read (loaded) or not.
 *
 * An event's prev is the key's record at mod_revision - 1, as etcd reads
 * it for watchers and as kv_events_read does. A key one txn changes twice
 * (a put, then a delete whose range_end is "\0") has as old record here
 * the txn's own put; its prev is then that put's prev (none when the txn
 * created the key), so a watcher gets the same prev live and from the
 * history. */
static int ev_add_old(struct kv_write *wr, enum kv_event_type type,
                      const struct kv_rec *now, const struct kv_rec *old,
                      bool loaded)
{
    const struct kv_ev_rec *same =
        old != NULL && old->mod == now->mod ? ev_same_rev(&wr->ev, now) : NULL;
    if (same != NULL) {
        struct kv_ev_rec first = *same; /* the add may move the array */
        int rc = kv__ev_add(&wr->ev, type, now, NULL);
        if (rc == 0) {
            struct kv_ev_rec *e = &wr->ev.recs[wr->ev.count - 1];
            e->has_prev = first.has_prev;
            e->prev_omitted = first.prev_omitted;
            e->pval_off = first.pval_off; /* the bytes are in the buffer */
            e->pval_len = first.pval_len;
            e->pcreate = first.pcreate;
            e->pmod = first.pmod;
            e->pversion = first.pversion;
            e->please = first.please;
        }
        return rc;
    }
    int rc = kv__ev_add(&wr->ev, type, now, loaded ? old : NULL);
    if (rc == 0 && old != NULL && !loaded) {
        wr->ev.recs[wr->ev.count - 1].prev_omitted = true;
    }
    return rc;
}

int kv__savepoint(struct kv_write *wr)
{
    ASSERT(wr->kv->writemap && wr->err == 0);
    if (wr->on_savepoint != NULL) {
        int rc = wr->on_savepoint(wr->savepoint_ctx, wr);
        if (rc != 0) {
            wr->err = wr->err != 0 ? wr->err : rc;
            return wr->err;
        }
    }
    int rc = txn_commit(wr, wr->mark_index, wr->mark_term);
    wr->savepoints += rc == 0 ? 1 : 0;
    return txn_renew(wr, rc);
}

bool kv_write_saved(const struct kv_write *wr)
{
    return wr->savepoints > 0;
}

int kv__rollback(struct kv_write *wr)
{
    ASSERT(wr->kv->writemap);
    live_cur_close(wr);
    mdb_txn_abort(wr->txn);
    wr->txn = NULL;
    return txn_renew(wr, 0);
}

int64_t kv_write_rev(const struct kv_write *wr)
{
    return wr->rev;
}

int kv__write_ok(struct kv_write *wr)
{
    if (wr->err != 0 || atomic_load(&wr->kv->failed) != 0) {
        return ERR_FAILED;
    }
    if (wr->kv->writemap) {
        int rc = kv__room(wr->kv, wr->txn);
        if (rc != 0) {
            kv__poison(wr, rc);
            return ERR_FAILED;
        }
    }
    return 0;
}

/* A write-phase LMDB error in a direct request: the batch is lost. */
int kv__poison(struct kv_write *wr, int rc)
{
    int err = kv__mdb_err(rc);
    ASSERT(err != 0);
    if (wr->err == 0) {
        wr->err = err;
    }
    if (kv__fatal_err(rc)) {
        kv__set_failed(wr->kv, err);
    }
    kv__ev_reset(&wr->ev);
    return err;
}

void kv__req_begin(struct kv_req *rq, struct kv_write *wr, MDB_txn *txn,
                   struct kv_result *res)
{
    memset(rq, 0, sizeof(*rq));
    rq->wr = wr;
    rq->txn = txn;
    rq->main = wr->rev + 1;
    rq->res = res;
    kv__ev_reset(&wr->ev);
}

void kv__view_of_write(struct kv_view *v, struct kv_req *rq, int64_t pre_rev)
{
    memset(v, 0, sizeof(*v));
    v->kv = rq->wr->kv;
    v->txn = rq->txn;
    v->live_rev = rq->wrote ? rq->main : rq->wr->rev;
    v->max_rev = pre_rev;
    v->compact = rq->wr->compact;
    v->copy = true;
}

int kv__quota(struct kv_write *wr, uint64_t cost)
{
    uint64_t used = wr->db_bytes_begin + wr->cost_bytes;
    if (used + cost > wr->kv->opts.quota_bytes) {
        return ERR_NOSPACE;
    }
    return 0;
}

/* --- record writers (the write phase) --------------------------------------*/

static int lease_exists(MDB_txn *txn, struct kv *kv, int64_t id, bool *out)
{
    uint8_t b[8];
    be64_put(b, (uint64_t)id);
    MDB_val k = {8, b}, d;
    int rc = mdb_get(txn, kv->dbi[KV_DBI_LEASE], &k, &d);
    *out = rc == 0;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* rev record + index dup for one change of key at (main, sub). */
static int history_write(struct kv_req *rq, const struct kv_rec *r)
{
    struct kv *kv = rq->wr->kv;
    uint8_t rk[KV_REVKEY_LEN];
    uint8_t idx[KV_IDX_LEN];
    kv__revkey(rk, rq->main, r->sub);
    MDB_val k = {KV_REVKEY_LEN, rk};
    MDB_val d = {KV_REVHDR_LEN + r->key_len + r->value_len, NULL};
    /* Revisions only grow, so the record goes after the last one: no
     * search down the tree, and a full page splits at its end (pages stay
     * full, as kv_defrag packs them). */
    int rc =
        mdb_put(rq->txn, kv->dbi[KV_DBI_REV], &k, &d, MDB_RESERVE | MDB_APPEND);
    if (rc == MDB_KEYEXIST) {
        /* Not past the last record (never expected): LMDB wrote nothing;
         * a plain put keeps what a put always meant here. */
        d = (MDB_val){KV_REVHDR_LEN + r->key_len + r->value_len, NULL};
        rc = mdb_put(rq->txn, kv->dbi[KV_DBI_REV], &k, &d, MDB_RESERVE);
    }
    if (rc != 0) {
        return rc;
    }
    uint8_t *p = d.mv_data;
    p[0] = r->type;
    be64_put(p + 1, (uint64_t)r->create);
    be64_put(p + 9, (uint64_t)r->version);
    be64_put(p + 17, (uint64_t)r->lease);
    be32_put(p + 25, (uint32_t)r->key_len);
    memcpy(p + KV_REVHDR_LEN, r->key, r->key_len);
    if (r->value_len > 0) {
        memcpy(p + KV_REVHDR_LEN + r->key_len, r->value, r->value_len);
    }
    kv__idx(idx, rq->main, r->sub, r->type);
    k = (MDB_val){r->key_len, (void *)r->key};
    d = (MDB_val){KV_IDX_LEN, idx};
    return mdb_put(rq->txn, kv->dbi[KV_DBI_INDEX], &k, &d, 0);
}

/* The live row: the key's metadata only; its value is the one in the rev
 * record history_write just wrote at (mod, sub). */
static int live_write(struct kv_req *rq, const struct kv_rec *r)
{
    struct kv *kv = rq->wr->kv;
    uint8_t p[KV_LIVEHDR_LEN];
    be64_put(p, (uint64_t)r->create);
    be64_put(p + 8, (uint64_t)r->mod);
    be64_put(p + 16, (uint64_t)r->version);
    be64_put(p + 24, (uint64_t)r->lease);
    be32_put(p + 32, r->sub);
    MDB_val k = {r->key_len, (void *)r->key};
    MDB_val d = {KV_LIVEHDR_LEN, p};
    if (rq->live_at) {
        /* put_check_old left the cursor on this key, and nothing wrote
         * the live table since: replace the record where it is. */
        rq->live_at = false;
        return mdb_cursor_put(rq->wr->live_cur, &k, &d, MDB_CURRENT);
    }
    return mdb_put(rq->txn, kv->dbi[KV_DBI_LIVE], &k, &d, 0);
}

static int lkey_op(struct kv_req *rq, int64_t lease, const uint8_t *key,
                   size_t key_len, bool add)
{
    uint8_t b[8];
    be64_put(b, (uint64_t)lease);
    MDB_val k = {8, b}, d = {key_len, (void *)key};
    MDB_dbi dbi = rq->wr->kv->dbi[KV_DBI_LKEYS];
    int rc = add ? mdb_put(rq->txn, dbi, &k, &d, MDB_NODUPDATA)
                 : mdb_del(rq->txn, dbi, &k, &d);
    return rc == MDB_NOTFOUND || rc == MDB_KEYEXIST ? 0 : rc;
}

/* --- put
 * ---------------------------------------------------------------------*/

int kv__put_validate(const struct kv *kv, const struct kv_put_req *req)
{
    int rc = kv__key_validate(req->key, req->key_len);
    if (rc != 0) {
        return rc;
    }
    if (req->value_len > kv->opts.value_bytes_max) {
        return ERR_VALUE_TOO_LARGE;
    }
    if (req->value_len > 0 && req->value == NULL) {
        return ERR_INVALID;
    }
    if (req->ignore_value && req->value_len > 0) {
        return ERR_VALUE_PROVIDED;
    }
    if (req->ignore_lease && req->lease != 0) {
        return ERR_LEASE_PROVIDED;
    }
    return 0;
}

/* kv__live_get for a lone put, through the batch's live cursor, which it
 * leaves on the key when found (rq->live_at) for live_write. */
static int live_seek(struct kv_req *rq, const uint8_t *key, size_t key_len,
                     struct kv_rec *out)
{
    struct kv_write *wr = rq->wr;
    MDB_val k = {key_len, (void *)key}, d;
    int rc = 0;
    ASSERT(rq->txn == wr->txn);
    rq->live_at = false;
    if (wr->live_cur == NULL) {
        rc = mdb_cursor_open(wr->txn, wr->kv->dbi[KV_DBI_LIVE], &wr->live_cur);
    }
    if (rc != 0) {
        wr->live_cur = NULL;
        return kv__live_get(rq->txn, wr->kv, key, key_len, out);
    }
    rc = mdb_cursor_get(wr->live_cur, &k, &d, MDB_SET_KEY);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = kv__live_decode(&k, &d, out);
    rq->live_at = rc == 0;
    return rc;
}

/* The key must exist for ignore_*, the lease must exist when one is named.
 * etcd checks the lease first for a put on its own (apply.go Put) and the
 * key first inside a txn (checkRequestPut). Leaves the current record in
 * *old. */
static int put_check_old(struct kv_req *rq, const struct kv_put_req *req,
                         bool lease_first, struct kv_rec *old, bool *had_old)
{
    struct kv *kv = rq->wr->kv;
    bool exists = true;
    int rc = 0;
    if (req->lease != 0) {
        rc = kv__mdb_err(lease_exists(rq->txn, kv, req->lease, &exists));
    }
    if (rc != 0) {
        return rc;
    }
    if (!exists && lease_first) {
        return ERR_LEASE_NOT_FOUND;
    }
    rc = rq->lone && rq->txn == rq->wr->txn
             ? live_seek(rq, req->key, req->key_len, old)
             : kv__live_get(rq->txn, kv, req->key, req->key_len, old);
    if (rc != 0 && rc != ERR_NOT_FOUND) {
        return rc;
    }
    *had_old = rc == 0;
    if (!*had_old && (req->ignore_value || req->ignore_lease)) {
        return ERR_KEY_NOT_FOUND;
    }
    return exists ? 0 : ERR_LEASE_NOT_FOUND;
}

int kv__put_check(struct kv_req *rq, const struct kv_put_req *req)
{
    struct kv_rec old;
    bool had_old;
    return put_check_old(rq, req, false, &old, &had_old);
}

static int put_writes(struct kv_req *rq, const struct kv_rec *now, bool had_old,
                      int64_t old_lease)
{
    int rc = history_write(rq, now);
    rc = rc != 0 ? rc : live_write(rq, now);
    if (rc == 0 && had_old && old_lease != 0 && old_lease != now->lease) {
        rc = lkey_op(rq, old_lease, now->key, now->key_len, false);
    }
    if (rc == 0 && now->lease != 0 && (!had_old || old_lease != now->lease)) {
        rc = lkey_op(rq, now->lease, now->key, now->key_len, true);
    }
    return rc;
}

/* Phase one of a put: checks, the new record, copies of what the answer
 * and the event need. Writes nothing. The value of an ignore_value put is
 * copied into scratch (appended; the caller resets scratch once per
 * request) because the live write will change the page it lives in. */
int kv__put_prepare(struct kv_req *rq, const struct kv_put_req *req,
                    uint32_t sub, struct kv_put_resp *resp,
                    struct kv_put_plan *pp)
{
    struct kv_write *wr = rq->wr;
    struct kv_rec old;
    memset(resp, 0, sizeof(*resp));
    memset(pp, 0, sizeof(*pp));
    memset(&old, 0, sizeof(old));
    int rc = put_check_old(rq, req, rq->lone, &old, &pp->had_old);
    if (rc != 0) {
        return rc;
    }
    /* The old value, when the answer, the event or ignore_value needs it
     * (one rev lookup; a plain put nobody watches with prev skips it). */
    bool loaded = false;
    if (pp->had_old && (req->ignore_value || req->prev_kv ||
                        ev_wants_prev(wr, req->key, req->key_len))) {
        rc = kv__value_load(rq->txn, wr->kv, NULL, &old);
        if (rc != 0) {
            return rc;
        }
        loaded = true;
    }
    struct kv_rec *now = &pp->now;
    now->type = KV_REC_PUT;
    now->key = req->key;
    now->key_len = req->key_len;
    now->value = req->value;
    now->value_len = req->value_len;
    now->lease = req->ignore_lease ? old.lease : req->lease;
    now->create = pp->had_old ? old.create : rq->main;
    now->version = pp->had_old ? old.version + 1 : 1;
    now->mod = rq->main;
    now->sub = sub;
    pp->old_lease = pp->had_old ? old.lease : 0;
    if (req->ignore_value) {
        pp->value_in_scratch = true;
        pp->value_off = wr->scratch.len;
        if (buf_append(&wr->scratch, old.value, old.value_len) != 0) {
            return -ENOMEM;
        }
        now->value = old.value; /* valid until the first write */
        now->value_len = old.value_len;
    }
    if (req->prev_kv && pp->had_old) {
        kv__rec_to_kv(&old, &resp->prev_kv);
        if (kv__copy_kv(rq->res, &resp->prev_kv, true) != 0) {
            return -ENOMEM;
        }
        resp->has_prev = true;
    }
    if (wr->on_event != NULL &&
        ev_add_old(wr, KV_EVENT_PUT, now, pp->had_old ? &old : NULL, loaded) !=
            0) {
        return -ENOMEM;
    }
    return 0;
}

/* Phase two: the LMDB writes. Returns 0 or a positive LMDB code (the
 * caller decides: poison the batch or abort a nested txn). */
int kv__put_write(struct kv_req *rq, struct kv_put_plan *pp)
{
    if (pp->value_in_scratch) {
        /* An empty old value may leave the scratch buffer unallocated:
         * NULL + 0 is undefined, and there is nothing to point at. */
        const uint8_t *base = rq->wr->scratch.data;
        pp->now.value = base == NULL ? NULL : base + pp->value_off;
    }
    int rc = rq->wr->kv->writemap ? kv__room(rq->wr->kv, rq->txn) : 0;
    rc = rc != 0 ? rc : put_writes(rq, &pp->now, pp->had_old, pp->old_lease);
    if (rc != 0) {
        return rc;
    }
    rq->sub = pp->now.sub + 1;
    rq->wrote = true;
    return 0;
}

int kv__put_exec(struct kv_req *rq, const struct kv_put_req *req,
                 struct kv_put_resp *resp)
{
    struct kv_put_plan pp;
    buf_reset(&rq->wr->scratch);
    int rc = kv__put_prepare(rq, req, rq->sub, resp, &pp);
    return rc != 0 ? rc : kv__put_write(rq, &pp);
}

/* Run a direct request's exec result: map LMDB codes, poison on a write
 * phase failure, emit events and advance the revision on success. */
static int direct_done(struct kv_req *rq, int rc, int64_t *rev)
{
    struct kv_write *wr = rq->wr;
    if (rc > 0) {
        return kv__poison(wr, rc);
    }
    if (rc < 0) {
        kv__ev_reset(&wr->ev);
        return rc;
    }
    if (rq->wrote) {
        wr->rev = rq->main;
        wr->join_rev = rq->main;
        wr->join_sub = rq->sub;
    }
    kv__ev_emit(wr);
    if (rev != NULL) {
        *rev = wr->rev;
    }
    return 0;
}

int kv_put(struct kv_write *wr, const struct kv_put_req *req,
           struct kv_result *res, struct kv_put_resp *resp, int64_t *rev)
{
    struct kv_req rq;
    memset(resp, 0, sizeof(*resp));
    int rc = kv__write_ok(wr);
    rc = rc != 0 ? rc : kv__put_validate(wr->kv, req);
    uint64_t cost = 2 * (req->key_len + req->value_len) + REQ_COST_OVERHEAD;
    rc = rc != 0 ? rc : kv__quota(wr, cost);
    if (rc != 0) {
        return rc;
    }
    kv__req_begin(&rq, wr, wr->txn, res);
    rq.lone = true;
    rc = direct_done(&rq, kv__put_exec(&rq, req, resp), rev);
    if (rc == 0) {
        wr->cost_bytes += cost;
    }
    return rc;
}

/* --- joined writes ---------------------------------------------------------
 * A request's own bookkeeping (the audit log) written at the revision of the
 * request just applied, after its ops. Not checked against the quota: the
 * request it belongs to was, and the map has room past the quota. */

bool kv_write_can_join(const struct kv_write *wr, int64_t rev_before)
{
    return wr->rev > rev_before && wr->join_rev == wr->rev;
}

/* join: continue the last writing request's revision; else a new one. */
static void join_begin(struct kv_write *wr, struct kv_req *rq,
                       struct kv_result *res, bool join)
{
    kv__req_begin(rq, wr, wr->txn, res);
    rq->lone = true;
    if (join) {
        ASSERT(wr->join_rev == wr->rev);
        ASSERT(wr->rev > 0);
        rq->main = wr->rev;
        rq->sub = wr->join_sub;
    }
}

int kv_put_joined(struct kv_write *wr, const struct kv_put_req *req, bool join)
{
    struct kv_req rq;
    struct kv_result res = {0};
    struct kv_put_resp resp;
    int rc = kv__write_ok(wr);
    rc = rc != 0 ? rc : kv__put_validate(wr->kv, req);
    if (rc != 0) {
        return rc;
    }
    ASSERT(!req->prev_kv && req->lease == 0);
    join_begin(wr, &rq, &res, join);
    rc = direct_done(&rq, kv__put_exec(&rq, req, &resp), NULL);
    if (rc == 0) {
        ASSERT(wr->rev == rq.main);
        wr->cost_bytes +=
            2 * (req->key_len + req->value_len) + REQ_COST_OVERHEAD;
    }
    kv_result_free(&res);
    return rc;
}

int kv_delete_joined(struct kv_write *wr, const uint8_t *key, size_t key_len)
{
    struct kv_req rq;
    struct kv_result res = {0};
    struct kv_delete_resp resp;
    struct kv_delete_req req = {.key = key, .key_len = key_len};
    int rc = kv__write_ok(wr);
    if (rc != 0) {
        return rc;
    }
    ASSERT(key_len > 0);
    join_begin(wr, &rq, &res, true);
    rc = direct_done(&rq, kv__delete_exec(&rq, &req, &resp), NULL);
    ASSERT(rc != 0 || wr->rev == rq.main);
    kv_result_free(&res);
    return rc;
}

/* --- delete and revoke -----------------------------------------------------
 */

/* A key list in scratch: u32 key_len | key | i64 lease, repeated. */
static int dlist_add(struct kv_write *wr, const struct kv_rec *r)
{
    uint8_t h[4], l[8];
    be32_put(h, (uint32_t)r->key_len);
    be64_put(l, (uint64_t)r->lease);
    int rc = buf_append(&wr->scratch, h, 4);
    rc = rc != 0 ? rc : buf_append(&wr->scratch, r->key, r->key_len);
    return rc != 0 ? rc : buf_append(&wr->scratch, l, 8);
}

/* Collect one doomed key: its list entry, prev copy and event. */
static int doom(struct kv_req *rq, struct kv_rec *old, struct kv_kv **prevs,
                size_t *n, size_t *cap)
{
    struct kv_write *wr = rq->wr;
    bool loaded = false;
    if (prevs != NULL || ev_wants_prev(wr, old->key, old->key_len)) {
        int rc = kv__value_load(rq->txn, wr->kv, NULL, old);
        if (rc != 0) {
            return rc;
        }
        loaded = true;
    }
    if (dlist_add(wr, old) != 0) {
        return -ENOMEM;
    }
    if (prevs != NULL) {
        if (*n == *cap) {
            size_t ncap = *cap == 0 ? 8 : *cap * 2;
            struct kv_kv *nv = kv__alloc(rq->res, ncap * sizeof(*nv));
            if (nv == NULL) {
                return -ENOMEM;
            }
            if (*n > 0) {
                memcpy(nv, *prevs, *n * sizeof(*nv));
            }
            *prevs = nv;
            *cap = ncap;
        }
        kv__rec_to_kv(old, &(*prevs)[*n]);
        if (kv__copy_kv(rq->res, &(*prevs)[*n], true) != 0) {
            return -ENOMEM;
        }
    }
    (*n)++;
    if (wr->on_event != NULL) {
        struct kv_rec tomb;
        memset(&tomb, 0, sizeof(tomb));
        tomb.type = KV_REC_DEL;
        tomb.key = old->key;
        tomb.key_len = old->key_len;
        tomb.mod = rq->main;
        if (ev_add_old(wr, KV_EVENT_DELETE, &tomb, old, loaded) != 0) {
            return -ENOMEM;
        }
    }
    return 0;
}

/* Writemap: how many keys a long delete or compaction changes between two
 * checks that data.mdb is allocated far enough ahead (kv__room keeps at
 * least 4 MiB more than the largest value ahead; 64 keys change at most a
 * few hundred pages). */
#define ROOM_EVERY 64

/* Write tombstones for the collected keys. detach: also drop each key from
 * its lease's key set (revoke drops the whole set itself). */
static int dlist_write(struct kv_req *rq, size_t n, bool detach)
{
    struct kv_write *wr = rq->wr;
    struct reader r;
    reader_init(&r, wr->scratch.data, wr->scratch.len);
    for (size_t i = 0; i < n; i++) {
        uint32_t klen;
        uint64_t lease;
        struct kv_rec tomb;
        memset(&tomb, 0, sizeof(tomb));
        int rc = reader_be32(&r, &klen);
        rc = rc != 0 ? rc : reader_bytes(&r, klen, &tomb.key);
        rc = rc != 0 ? rc : reader_be64(&r, &lease);
        ASSERT(rc == 0); /* we wrote this list ourselves */
        tomb.type = KV_REC_DEL;
        tomb.key_len = klen;
        tomb.sub = rq->sub;
        if (wr->kv->writemap && (i & (ROOM_EVERY - 1)) == ROOM_EVERY - 1) {
            rc = kv__room(wr->kv, rq->txn);
            if (rc != 0) {
                return rc;
            }
        }
        rc = history_write(rq, &tomb);
        if (rc == 0) {
            MDB_val k = {klen, (void *)tomb.key};
            rc = mdb_del(rq->txn, wr->kv->dbi[KV_DBI_LIVE], &k, NULL);
        }
        if (rc == 0 && detach && lease != 0) {
            rc = lkey_op(rq, (int64_t)lease, tomb.key, klen, false);
        }
        if (rc != 0) {
            return rc;
        }
        rq->sub++;
        rq->wrote = true;
    }
    ASSERT(reader_left(&r) == 0);
    return 0;
}

static int collect_span(struct kv_req *rq, const struct kv_span *s,
                        struct kv_kv **prevs, size_t *n, size_t *cap)
{
    struct kv *kv = rq->wr->kv;
    struct kv_rec old;
    MDB_cursor *c;
    MDB_val k, d;
    if (s->kind == KV_RANGE_ONE) {
        int rc = kv__live_get(rq->txn, kv, s->key, s->key_len, &old);
        if (rc == ERR_NOT_FOUND) {
            return 0;
        }
        return rc != 0 ? rc : doom(rq, &old, prevs, n, cap);
    }
    int rc = mdb_cursor_open(rq->txn, kv->dbi[KV_DBI_LIVE], &c);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    k = (MDB_val){s->key_len, (void *)s->key};
    rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
    while (rc == 0 && !kv__span_past(s, k.mv_data, k.mv_size)) {
        rc = kv__live_decode(&k, &d, &old);
        rc = rc != 0 ? rc : doom(rq, &old, prevs, n, cap);
        if (rc != 0) {
            break;
        }
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    return rc > 0 ? kv__mdb_err(rc) : rc;
}

int kv__delete_exec(struct kv_req *rq, const struct kv_delete_req *req,
                    struct kv_delete_resp *resp)
{
    struct kv_span s;
    size_t n = 0, cap = 0;
    memset(resp, 0, sizeof(*resp));
    int rc = kv__span(req->key, req->key_len, req->range_end,
                      req->range_end_len, &s);
    if (rc != 0 || s.kind == KV_RANGE_EMPTY) {
        return rc;
    }
    buf_reset(&rq->wr->scratch);
    rc = collect_span(rq, &s, req->prev_kv ? &resp->prev_kvs : NULL, &n, &cap);
    if (rc != 0) {
        resp->prev_kvs = NULL;
        return rc;
    }
    rc = dlist_write(rq, n, true);
    if (rc != 0) {
        return rc;
    }
    resp->deleted = (int64_t)n;
    resp->prev_kvs_count = req->prev_kv ? n : 0;
    return 0;
}

int kv_delete(struct kv_write *wr, const struct kv_delete_req *req,
              struct kv_result *res, struct kv_delete_resp *resp, int64_t *rev)
{
    struct kv_req rq;
    memset(resp, 0, sizeof(*resp));
    int rc = kv__write_ok(wr);
    if (rc != 0) {
        return rc;
    }
    kv__req_begin(&rq, wr, wr->txn, res);
    rc = direct_done(&rq, kv__delete_exec(&rq, req, resp), rev);
    if (rc != 0) {
        memset(resp, 0, sizeof(*resp));
    }
    return rc;
}

int kv_lease_revoke(struct kv_write *wr, int64_t id, int64_t *rev)
{
    struct kv *kv = wr->kv;
    struct kv_req rq;
    struct kv_rec old;
    bool exists;
    size_t n = 0;
    int rc = kv__write_ok(wr);
    if (rc != 0) {
        return rc;
    }
    kv__req_begin(&rq, wr, wr->txn, NULL);
    rc = lease_exists(wr->txn, kv, id, &exists);
    if (rc != 0 || !exists) {
        return rc != 0 ? kv__mdb_err(rc) : ERR_LEASE_NOT_FOUND;
    }
    uint8_t b[8];
    be64_put(b, (uint64_t)id);
    MDB_val lk = {8, b}, k, d;
    MDB_cursor *c;
    buf_reset(&wr->scratch);
    rc = mdb_cursor_open(wr->txn, kv->dbi[KV_DBI_LKEYS], &c);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    k = lk;
    int mrc = mdb_cursor_get(c, &k, &d, MDB_SET_KEY);
    while (mrc == 0 && rc == 0) {
        rc = kv__live_get(wr->txn, kv, d.mv_data, d.mv_size, &old);
        if (rc == 0) {
            rc = doom(&rq, &old, NULL, &n, NULL);
        } else if (rc == ERR_NOT_FOUND) {
            rc = 0; /* tolerate a stale attachment: nothing to delete */
        }
        mrc = mdb_cursor_get(c, &k, &d, MDB_NEXT_DUP);
    }
    mdb_cursor_close(c);
    if (rc == 0 && mrc != MDB_NOTFOUND) {
        rc = kv__mdb_err(mrc);
    }
    if (rc != 0) {
        kv__ev_reset(&wr->ev);
        return rc;
    }
    int wrc = dlist_write(&rq, n, false);
    if (wrc == 0) {
        wrc = mdb_del(wr->txn, kv->dbi[KV_DBI_LKEYS], &lk, NULL);
        wrc = wrc == MDB_NOTFOUND ? 0 : wrc;
    }
    wrc = wrc != 0 ? wrc : mdb_del(wr->txn, kv->dbi[KV_DBI_LEASE], &lk, NULL);
    return direct_done(&rq, wrc, rev);
}

/* --- leases
 * ------------------------------------------------------------------*/

static int lease_put(MDB_txn *txn, struct kv *kv, int64_t id, int64_t ttl,
                     int64_t remaining, unsigned flags)
{
    uint8_t kb[8], vb[KV_LEASE_LEN];
    be64_put(kb, (uint64_t)id);
    be64_put(vb, (uint64_t)ttl);
    be64_put(vb + 8, (uint64_t)remaining);
    MDB_val k = {8, kb}, v = {KV_LEASE_LEN, vb};
    return mdb_put(txn, kv->dbi[KV_DBI_LEASE], &k, &v, flags);
}

int kv_lease_grant(struct kv_write *wr, int64_t id, int64_t ttl)
{
    bool exists;
    int rc = kv__write_ok(wr);
    if (rc != 0) {
        return rc;
    }
    if (id <= 0) {
        return ERR_INVALID;
    }
    rc = kv__quota(wr, REQ_COST_OVERHEAD);
    if (rc != 0) {
        return rc;
    }
    rc = lease_exists(wr->txn, wr->kv, id, &exists);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    if (exists) {
        return ERR_LEASE_EXISTS;
    }
    rc = lease_put(wr->txn, wr->kv, id, ttl, 0, 0);
    if (rc != 0) {
        return kv__poison(wr, rc);
    }
    wr->cost_bytes += REQ_COST_OVERHEAD;
    return 0;
}

int kv_lease_checkpoint(struct kv_write *wr, int64_t id, int64_t remaining_ttl)
{
    uint8_t kb[8];
    int rc = kv__write_ok(wr);
    if (rc != 0) {
        return rc;
    }
    be64_put(kb, (uint64_t)id);
    MDB_val k = {8, kb}, v;
    rc = mdb_get(wr->txn, wr->kv->dbi[KV_DBI_LEASE], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return ERR_LEASE_NOT_FOUND;
    }
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    if (v.mv_size != KV_LEASE_LEN) {
        return ERR_CORRUPT;
    }
    int64_t ttl = (int64_t)be64_get(v.mv_data);
    rc = lease_put(wr->txn, wr->kv, id, ttl, remaining_ttl, 0);
    return rc != 0 ? kv__poison(wr, rc) : 0;
}

/* --- compaction
 * -------------------------------------------------------------*/

/* Delete one history record: its rev entry and its index dup. */
static int history_del(struct kv_write *wr, const uint8_t *key, size_t klen,
                       const uint8_t idx[KV_IDX_LEN])
{
    MDB_val rk = {KV_REVKEY_LEN, (void *)idx};
    int rc = mdb_del(wr->txn, wr->kv->dbi[KV_DBI_REV], &rk, NULL);
    if (rc == 0) {
        MDB_val k = {klen, (void *)key}, d = {KV_IDX_LEN, (void *)idx};
        rc = mdb_del(wr->txn, wr->kv->dbi[KV_DBI_INDEX], &k, &d);
    }
    return rc;
}

/* The record at idx (key's latest at or below the compaction revision
 * rev): drop every older record of the key below rev, and the record
 * itself if it is a tombstone below rev. Records at rev itself stay (see
 * kv_compact). Returns an LMDB code. */
static int compact_key(struct kv_write *wr, MDB_cursor *ic, const uint8_t *key,
                       size_t klen, int64_t rev, const uint8_t idx[KV_IDX_LEN])
{
    MDB_val k, d;
    uint8_t old[KV_IDX_LEN];
    for (size_t guard = 0;; guard++) {
        ASSERT(guard < SIZE_MAX);
        k = (MDB_val){klen, (void *)key};
        int rc = mdb_cursor_get(ic, &k, &d, MDB_SET_KEY);
        if (rc != 0) {
            return rc;
        }
        if (d.mv_size != KV_IDX_LEN) {
            return MDB_CORRUPTED;
        }
        if (memcmp(d.mv_data, idx, KV_REVKEY_LEN) >= 0 ||
            (int64_t)be64_get(d.mv_data) >= rev) {
            break;
        }
        memcpy(old, d.mv_data, KV_IDX_LEN);
        rc = history_del(wr, key, klen, old);
        if (rc != 0) {
            return rc;
        }
    }
    bool drop = idx[12] == KV_REC_DEL && (int64_t)be64_get(idx) < rev;
    return drop ? history_del(wr, key, klen, idx) : 0;
}

/* Is idx the greatest record of key at or below rev? */
static int is_latest(struct kv_write *wr, MDB_cursor *ic, const uint8_t *key,
                     size_t klen, int64_t rev, const uint8_t idx[KV_IDX_LEN],
                     bool *out)
{
    (void)wr;
    MDB_val k = {klen, (void *)key}, d;
    int rc = mdb_cursor_get(ic, &k, &d, MDB_SET_KEY);
    if (rc != 0) {
        return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
    }
    rc = mdb_cursor_get(ic, &k, &d, MDB_LAST_DUP);
    if (rc != 0 || d.mv_size != KV_IDX_LEN) {
        return rc != 0 ? rc : MDB_CORRUPTED;
    }
    if ((int64_t)be64_get(d.mv_data) <= rev) {
        *out = memcmp(d.mv_data, idx, KV_IDX_LEN) == 0;
        return 0;
    }
    uint8_t seek[KV_IDX_LEN];
    kv__idx(seek, rev + 1, 0, 0);
    MDB_val kk = {klen, (void *)key}, sd = {KV_IDX_LEN, seek};
    rc = mdb_cursor_get(ic, &kk, &sd, MDB_GET_BOTH_RANGE);
    rc = rc != 0 ? rc : mdb_cursor_get(ic, &k, &d, MDB_PREV_DUP);
    if (rc != 0) {
        return rc == MDB_NOTFOUND ? MDB_CORRUPTED : rc;
    }
    *out = d.mv_size == KV_IDX_LEN && memcmp(d.mv_data, idx, KV_IDX_LEN) == 0;
    return 0;
}

static int compact_walk(struct kv_write *wr, int64_t rev)
{
    struct kv *kv = wr->kv;
    MDB_cursor *rc_cur = NULL, *ic = NULL;
    uint8_t pos[KV_REVKEY_LEN], idx[KV_IDX_LEN], key[KV_KEY_BYTES_MAX];
    int rc = mdb_cursor_open(wr->txn, kv->dbi[KV_DBI_REV], &rc_cur);
    rc = rc != 0 ? rc : mdb_cursor_open(wr->txn, kv->dbi[KV_DBI_INDEX], &ic);
    /* From the previous compaction revision on: what it kept at exactly
     * that revision may go now. */
    kv__revkey(pos, wr->compact, 0);
    for (size_t i = 1; rc == 0; i++) {
        MDB_val k = {KV_REVKEY_LEN, pos}, d;
        struct kv_rec r;
        if (kv->writemap && (i & (ROOM_EVERY - 1)) == 0) {
            rc = kv__room(kv, wr->txn);
            if (rc != 0) {
                break;
            }
        }
        rc = mdb_cursor_get(rc_cur, &k, &d, MDB_SET_RANGE);
        if (rc != 0) {
            break;
        }
        if (kv__rev_decode(&k, &d, &r) != 0 || r.key_len > sizeof(key)) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (r.mod > rev) {
            break;
        }
        kv__idx(idx, r.mod, r.sub, r.type);
        kv__revkey(pos, r.mod, r.sub + 1);
        if (r.sub == UINT32_MAX) {
            kv__revkey(pos, r.mod + 1, 0);
        }
        size_t klen = r.key_len;
        memcpy(key, r.key, klen); /* the page changes under the deletes */
        bool latest = false;
        rc = is_latest(wr, ic, key, klen, rev, idx, &latest);
        if (rc == 0 && latest) {
            rc = compact_key(wr, ic, key, klen, rev, idx);
        }
    }
    if (ic != NULL) {
        mdb_cursor_close(ic);
    }
    if (rc_cur != NULL) {
        mdb_cursor_close(rc_cur);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int kv_compact(struct kv_write *wr, int64_t rev)
{
    int rc = kv__write_ok(wr);
    if (rc != 0) {
        return rc;
    }
    if (rev <= wr->compact) {
        return ERR_COMPACTED;
    }
    if (rev > wr->rev) {
        return ERR_FUTURE_REV;
    }
    rc = compact_walk(wr, rev);
    if (rc == 0) {
        uint8_t b[8];
        be64_put(b, (uint64_t)rev);
        MDB_val k = {7, "compact"}, v = {8, b};
        rc = mdb_put(wr->txn, wr->kv->dbi[KV_DBI_META], &k, &v, 0);
    }
    if (rc != 0) {
        return kv__poison(wr, rc);
    }
    wr->compact = rev;
    return 0;
}

/* --- auxiliary tables
 * -------------------------------------------------------*/

static int aux_key(uint8_t *out, uint8_t table, const void *name,
                   size_t name_len)
{
    if (name_len > KV_AUX_NAME_MAX || (name_len > 0 && name == NULL)) {
        return ERR_INVALID;
    }
    out[0] = table;
    if (name_len > 0) {
        memcpy(out + 1, name, name_len);
    }
    return 0;
}

int kv_aux_put(struct kv_write *wr, uint8_t table, const void *name,
               size_t name_len, const void *value, size_t value_len)
{
    uint8_t key[1 + KV_AUX_NAME_MAX];
    int rc = kv__write_ok(wr);
    rc = rc != 0 ? rc : aux_key(key, table, name, name_len);
    if (rc != 0) {
        return rc;
    }
    if (value_len > wr->kv->opts.value_bytes_max) {
        return ERR_VALUE_TOO_LARGE;
    }
    if (value_len > 0 && value == NULL) {
        return ERR_INVALID;
    }
    MDB_val k = {1 + name_len, key}, v = {value_len, (void *)value};
    rc = mdb_put(wr->txn, wr->kv->dbi[KV_DBI_AUX], &k, &v, 0);
    return rc != 0 ? kv__poison(wr, rc) : 0;
}

int kv_write_aux_get(struct kv_write *wr, uint8_t table, const void *name,
                     size_t name_len, const void **value, size_t *value_len)
{
    uint8_t key[1 + KV_AUX_NAME_MAX];
    int rc = kv__write_ok(wr);
    rc = rc != 0 ? rc : aux_key(key, table, name, name_len);
    if (rc != 0) {
        return rc;
    }
    MDB_val k = {1 + name_len, key}, v;
    rc = mdb_get(wr->txn, wr->kv->dbi[KV_DBI_AUX], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return ERR_NOT_FOUND;
    }
    if (rc != 0) {
        return kv__poison(wr, rc);
    }
    *value = v.mv_data;
    *value_len = v.mv_size;
    return 0;
}

int kv_aux_delete(struct kv_write *wr, uint8_t table, const void *name,
                  size_t name_len)
{
    uint8_t key[1 + KV_AUX_NAME_MAX];
    int rc = kv__write_ok(wr);
    rc = rc != 0 ? rc : aux_key(key, table, name, name_len);
    if (rc != 0) {
        return rc;
    }
    MDB_val k = {1 + name_len, key};
    rc = mdb_del(wr->txn, wr->kv->dbi[KV_DBI_AUX], &k, NULL);
    if (rc == MDB_NOTFOUND) {
        return ERR_NOT_FOUND;
    }
    return rc != 0 ? kv__poison(wr, rc) : 0;
}

/* --- range inside the handle
 * -------------------------------------------------*/

int kv_write_range(struct kv_write *wr, const struct kv_range_req *req,
                   struct kv_result *res, struct kv_range_resp *resp)
{
    struct kv_req rq;
    struct kv_view v;
    memset(resp, 0, sizeof(*resp));
    int rc = kv__write_ok(wr);
    if (rc != 0) {
        return rc;
    }
    kv__req_begin(&rq, wr, wr->txn, res);
    kv__view_of_write(&v, &rq, wr->rev);
    return kv__range(&v, req, res, resp);
}

/*
 * kv_read.c - what a read handle offers besides Range's engine: the
 * history (events), HashKV, and the lease and auxiliary tables.
 *
 * Events come from a scan of the rev table in revision order, filtered by
 * key; the previous record of a key is its latest record at the revision
 * before the event (as etcd's watch looks up prev_kv at mod_revision - 1),
 * and is absent when that history was compacted or was a tombstone.
 */
#include <errno.h>
#include <string.h>

#include "base/assert.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "consensus/kv/kv_int.h"

static void view_of_read(struct kv_read *rd, struct kv_view *v)
{
    memset(v, 0, sizeof(*v));
    v->kv = rd->kv;
    v->txn = rd->txn;
    v->rd = rd;
    v->live_rev = rd->rev;
    v->max_rev = rd->rev;
    v->compact = rd->compact;
    v->copy = false;
}

static int read_ok(const struct kv_read *rd)
{
    return atomic_load(&rd->kv->failed) != 0 ? ERR_FAILED : 0;
}

int kv_range(struct kv_read *rd, const struct kv_range_req *req,
             struct kv_result *res, struct kv_range_resp *resp)
{
    struct kv_view v;
    int rc = read_ok(rd);
    if (rc != 0) {
        memset(resp, 0, sizeof(*resp));
        return rc;
    }
    view_of_read(rd, &v);
    return kv__range(&v, req, res, resp);
}

/* --- events
 * ------------------------------------------------------------------*/

struct ev_scan {
    struct kv_view v;
    struct kv_span span;
    MDB_cursor *idx; /* for prev lookups */
    bool with_prev;
    kv_event_cb cb;
    void *ctx;
};

static int ev_one(struct ev_scan *s, const struct kv_rec *r, bool *stop)
{
    struct kv_event ev;
    struct kv_rec prev;
    memset(&ev, 0, sizeof(ev));
    ev.kv.key = r->key;
    ev.kv.key_len = r->key_len;
    ev.kv.mod_revision = r->mod;
    if (r->type == KV_REC_PUT) {
        ev.type = KV_EVENT_PUT;
        ev.kv.value = r->value;
        ev.kv.value_len = r->value_len;
        ev.kv.create_revision = r->create;
        ev.kv.version = r->version;
        ev.kv.lease = r->lease;
    } else {
        ev.type = KV_EVENT_DELETE;
    }
    /* A create (a put at version 1) has no prev, as the write handle
     * gives none and etcd looks none up: even when one txn deleted the key
     * (to the end of the keyspace) and made it again, so that the record
     * at mod - 1 is the one deleted. */
    if (s->with_prev && !(ev.type == KV_EVENT_PUT && ev.kv.version == 1)) {
        int rc =
            kv__key_at(&s->v, s->idx, r->key, r->key_len, r->mod - 1, &prev);
        if (rc == 0) {
            ev.has_prev = true;
            kv__rec_to_kv(&prev, &ev.prev);
        } else if (rc != ERR_NOT_FOUND) {
            return rc;
        }
    }
    if (s->cb(s->ctx, &ev) != 0) {
        *stop = true;
    }
    return 0;
}

static int ev_loop(struct ev_scan *s, MDB_cursor *c, int64_t from, int64_t to,
                   size_t max_events, int64_t *next_rev)
{
    uint8_t start[KV_REVKEY_LEN];
    MDB_val k = {KV_REVKEY_LEN, start}, d;
    struct kv_rec r;
    int64_t cur = 0;
    size_t sent = 0;
    bool stop = false;
    kv__revkey(start, from, 0);
    int rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
    *next_rev = to + 1;
    while (rc == 0) {
        rc = kv__rev_decode(&k, &d, &r);
        if (rc != 0 || r.mod > to) {
            break;
        }
        if (r.mod != cur) {
            /* Revisions are never split: stop only between them. */
            if (stop || (max_events > 0 && sent >= max_events)) {
                *next_rev = r.mod;
                break;
            }
            cur = r.mod;
        }
        if (kv__span_has(&s->span, r.key, r.key_len)) {
            rc = ev_one(s, &r, &stop);
            if (rc != 0) {
                break;
            }
            sent++;
        }
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
    }
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    return rc > 0 ? kv__mdb_err(rc) : rc;
}

int kv_events_read(struct kv_read *rd, const uint8_t *key, size_t key_len,
                   const uint8_t *range_end, size_t range_end_len,
                   int64_t from_rev, int64_t to_rev, size_t max_events,
                   bool with_prev, kv_event_cb cb, void *ctx, int64_t *next_rev)
{
    struct ev_scan s;
    MDB_cursor *c;
    memset(&s, 0, sizeof(s));
    int rc = read_ok(rd);
    rc = rc != 0 ? rc
                 : kv__span(key, key_len, range_end, range_end_len, &s.span);
    if (rc != 0) {
        return rc;
    }
    ASSERT(cb != NULL);
    int64_t from = from_rev < 1 ? 1 : from_rev;
    int64_t to = to_rev <= 0 || to_rev > rd->rev ? rd->rev : to_rev;
    if (from < rd->compact) {
        return ERR_COMPACTED;
    }
    *next_rev = from > to ? from : to + 1;
    if (from > to || s.span.kind == KV_RANGE_EMPTY) {
        return 0;
    }
    view_of_read(rd, &s.v);
    s.with_prev = with_prev;
    s.cb = cb;
    s.ctx = ctx;
    rc = kv__view_cursor(&s.v, KV_CUR_REV, &c);
    if (rc == 0 && with_prev) {
        rc = kv__view_cursor(&s.v, KV_CUR_INDEX, &s.idx);
    }
    return rc != 0 ? rc : ev_loop(&s, c, from, to, max_events, next_rev);
}

/* --- HashKV --------------------------------------------------------------- */

int kv_hash(struct kv_read *rd, int64_t rev, uint32_t *hash,
            int64_t *compact_rev, int64_t *hash_rev)
{
    struct kv_view v;
    MDB_cursor *c;
    MDB_val k, d;
    uint8_t b[8];
    int rc = read_ok(rd);
    if (rc != 0) {
        return rc;
    }
    int64_t r = rev <= 0 ? rd->rev : rev;
    if (r > rd->rev) {
        return ERR_FUTURE_REV;
    }
    if (r < rd->compact) {
        return ERR_COMPACTED;
    }
    view_of_read(rd, &v);
    rc = kv__view_cursor(&v, KV_CUR_REV, &c);
    if (rc != 0) {
        return rc;
    }
    uint32_t crc = 0;
    rc = mdb_cursor_get(c, &k, &d, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size != KV_REVKEY_LEN) {
            return ERR_CORRUPT;
        }
        if ((int64_t)be64_get(k.mv_data) > r) {
            break;
        }
        crc = crc32c(crc, k.mv_data, k.mv_size);
        crc = crc32c(crc, d.mv_data, d.mv_size);
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return kv__mdb_err(rc);
    }
    be64_put(b, (uint64_t)rd->compact);
    *hash = crc32c(crc, b, sizeof(b));
    *compact_rev = rd->compact;
    *hash_rev = r;
    return 0;
}

/* --- leases ----------------------------------------------------------------*/

static int lease_decode(const MDB_val *k, const MDB_val *v, struct kv_lease *o)
{
    if (k->mv_size != 8 || v->mv_size != KV_LEASE_LEN) {
        return ERR_CORRUPT;
    }
    o->id = (int64_t)be64_get(k->mv_data);
    o->ttl = (int64_t)be64_get(v->mv_data);
    o->remaining_ttl = (int64_t)be64_get((const uint8_t *)v->mv_data + 8);
    return 0;
}

int kv_lease_get(struct kv_read *rd, int64_t id, struct kv_lease *out)
{
    uint8_t b[8];
    int rc = read_ok(rd);
    if (rc != 0) {
        return rc;
    }
    be64_put(b, (uint64_t)id);
    MDB_val k = {8, b}, v;
    rc = mdb_get(rd->txn, rd->kv->dbi[KV_DBI_LEASE], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return ERR_LEASE_NOT_FOUND;
    }
    return rc != 0 ? kv__mdb_err(rc) : lease_decode(&k, &v, out);
}

int kv_lease_list(struct kv_read *rd, kv_lease_cb cb, void *ctx)
{
    MDB_cursor *c;
    MDB_val k, v;
    struct kv_lease l;
    int rc = read_ok(rd);
    rc = rc != 0 ? rc
                 : kv__mdb_err(
                       mdb_cursor_open(rd->txn, rd->kv->dbi[KV_DBI_LEASE], &c));
    if (rc != 0) {
        return rc;
    }
    int mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        rc = lease_decode(&k, &v, &l);
        if (rc != 0 || cb(ctx, &l) != 0) {
            break;
        }
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc == 0 && mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = kv__mdb_err(mrc);
    }
    return rc;
}

int kv_lease_keys(struct kv_read *rd, int64_t id, kv_key_cb cb, void *ctx)
{
    MDB_cursor *c;
    uint8_t b[8];
    int rc = read_ok(rd);
    rc = rc != 0 ? rc
                 : kv__mdb_err(
                       mdb_cursor_open(rd->txn, rd->kv->dbi[KV_DBI_LKEYS], &c));
    if (rc != 0) {
        return rc;
    }
    be64_put(b, (uint64_t)id);
    MDB_val k = {8, b}, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    while (mrc == 0) {
        if (cb(ctx, v.mv_data, v.mv_size) != 0) {
            break;
        }
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP);
    }
    mdb_cursor_close(c);
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = kv__mdb_err(mrc);
    }
    return rc;
}

/* --- auxiliary tables
 * --------------------------------------------------------*/

int kv_aux_get(struct kv_read *rd, uint8_t table, const void *name,
               size_t name_len, const void **value, size_t *value_len)
{
    uint8_t key[1 + KV_AUX_NAME_MAX];
    int rc = read_ok(rd);
    if (rc != 0) {
        return rc;
    }
    if (name_len > KV_AUX_NAME_MAX || (name_len > 0 && name == NULL)) {
        return ERR_INVALID;
    }
    key[0] = table;
    if (name_len > 0) {
        memcpy(key + 1, name, name_len);
    }
    MDB_val k = {1 + name_len, key}, v;
    rc = mdb_get(rd->txn, rd->kv->dbi[KV_DBI_AUX], &k, &v);
    if (rc == MDB_NOTFOUND) {
        return ERR_NOT_FOUND;
    }
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    *value = v.mv_data;
    *value_len = v.mv_size;
    return 0;
}

int kv_aux_list(struct kv_read *rd, uint8_t table, kv_aux_cb cb, void *ctx)
{
    MDB_cursor *c;
    int rc = read_ok(rd);
    rc = rc != 0 ? rc
                 : kv__mdb_err(
                       mdb_cursor_open(rd->txn, rd->kv->dbi[KV_DBI_AUX], &c));
    if (rc != 0) {
        return rc;
    }
    MDB_val k = {1, &table}, v;
    int mrc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (mrc == 0) {
        const uint8_t *p = k.mv_data;
        if (k.mv_size < 1 || p[0] != table) {
            break;
        }
        if (cb(ctx, p + 1, k.mv_size - 1, v.mv_data, v.mv_size) != 0) {
            break;
        }
        mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = kv__mdb_err(mrc);
    }
    return rc;
}

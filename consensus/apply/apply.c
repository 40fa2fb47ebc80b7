/*
 * apply.c - committed entries and reads, turned into store calls.
 *
 * Happy path of apply_entries(): open one store write handle for the batch;
 * for each entry decode the envelope (a Put in protobuf-c's own layout is
 * read in place by apply_wire.c; everything else by protobuf-c, through our
 * allocator), convert the etcd request into kv.h's structs (pointers into
 * the decoded message, arrays in a per-request arena), run it, and if this
 * member proposed it, encode the response into the batch's output buffer.
 * Commit the handle with the last entry's index and term; only then hand
 * the results to the proposer, so no client hears of a write before it is
 * durable in the store.
 *
 * Failure modes: a request's own error (bad key, unknown lease, NOSPACE...)
 * is its result, the same on every member; an envelope that does not
 * decode is answered ERR_BAD_REQUEST (it cannot come from our proposers,
 * but a deterministic answer keeps members equal); a store failure aborts
 * the batch and is returned: the node stops.
 */
#include "consensus/apply/apply_int.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/arena.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/limits.h"
#include "consensus/auth/auth.h"
#include "proto/cairn.pb-c.h"

/* Planted bug for the simulator's checkers (tests/sim/sim.test): 1 applies
 * a repeated proposal again (no exactly-once). Never set in a real build. */
#ifndef APPLY_PLANTED_BUG
#define APPLY_PLANTED_BUG 0
#endif

/* protobuf-c allocations go through base/alloc.h (failure injection). */
static void *pb_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return mem_alloc(size);
}

static void pb_free(void *ctx, void *p)
{
    (void)ctx;
    mem_free(p);
}

static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

/* ------------------------------------------------------------- alarms */

static int load_alarm(void *ctx, const void *name, size_t name_len,
                      const void *value, size_t value_len)
{
    struct apply *a = ctx;
    (void)value;
    (void)value_len;
    if (name_len != 9 || a->alarms_count == APPLY_ALARMS_MAX) {
        return 0; /* not ours, or full: ignore rather than fail start */
    }
    a->alarms[a->alarms_count].member_id = be64_get(name);
    a->alarms[a->alarms_count].type = ((const uint8_t *)name)[8];
    a->alarms_count++;
    return 0;
}

static void alarms_refresh_nospace(struct apply *a)
{
    a->nospace = false;
    a->corrupt = false;
    for (size_t i = 0; i < a->alarms_count; i++) {
        if (a->alarms[i].type == ETCDSERVERPB__ALARM_TYPE__NOSPACE) {
            a->nospace = true;
        }
        if (a->alarms[i].type == ETCDSERVERPB__ALARM_TYPE__CORRUPT) {
            a->corrupt = true;
        }
    }
    atomic_store_explicit(&a->nospace_seen, a->nospace, memory_order_relaxed);
}

/* ------------------------------------------------------ exactly once */

/* Aux APPLY table: name = origin (8 bytes, big-endian), value = last id
 * (8 bytes, big-endian). */

static struct apply_origin *origin_find(struct apply *a, uint64_t origin)
{
    for (size_t i = 0; i < a->origins_count; i++) {
        if (a->origins[i].origin == origin) {
            return &a->origins[i];
        }
    }
    return NULL;
}

static int load_origin(void *ctx, const void *name, size_t name_len,
                       const void *value, size_t value_len)
{
    struct apply *a = ctx;
    if (name_len != 8 || value_len != 8 ||
        a->origins_count == APPLY_ORIGINS_MAX) {
        return 0; /* not ours, or full: ignore rather than fail start */
    }
    a->origins[a->origins_count].origin = be64_get(name);
    a->origins[a->origins_count].last_id = be64_get(value);
    a->origins_count++;
    return 0;
}

uint64_t apply_last_id(const struct apply *a, uint64_t origin)
{
    for (size_t i = 0; i < a->origins_count; i++) {
        if (a->origins[i].origin == origin) {
            return a->origins[i].last_id;
        }
    }
    return 0;
}

/* Record id as origin's last applied id, in memory and in wr. When the
 * table is full, the origin with the lowest last id is forgotten (the same
 * one on every member: the table is a function of the log). */
static int origin_note(struct apply *a, struct kv_write *wr, uint64_t origin,
                       uint64_t id)
{
    struct apply_origin *o = origin_find(a, origin);
    uint8_t name[8];
    int rc;
    if (o == NULL) {
        if (a->origins_count == APPLY_ORIGINS_MAX) {
            size_t low = 0;
            for (size_t i = 1; i < a->origins_count; i++) {
                if (a->origins[i].last_id < a->origins[low].last_id) {
                    low = i;
                }
            }
            be64_put(name, a->origins[low].origin);
            rc = kv_aux_delete(wr, KV_AUX_APPLY, name, sizeof(name));
            if (rc != 0 && rc != ERR_NOT_FOUND) {
                return rc;
            }
            a->origins[low] = a->origins[--a->origins_count];
        }
        o = &a->origins[a->origins_count++];
        o->origin = origin;
    }
    o->last_id = id;
    o->dirty = true;
    return 0;
}

/* Write the origins changed in this batch (one aux put each per batch). */
static int origins_flush(struct apply *a, struct kv_write *wr)
{
    for (size_t i = 0; i < a->origins_count; i++) {
        struct apply_origin *o = &a->origins[i];
        uint8_t name[8];
        uint8_t value[8];
        int rc;
        if (!o->dirty) {
            continue;
        }
        be64_put(name, o->origin);
        be64_put(value, o->last_id);
        rc = kv_aux_put(wr, KV_AUX_APPLY, name, sizeof(name), value,
                        sizeof(value));
        if (rc != 0) {
            return rc;
        }
        o->dirty = false;
    }
    return 0;
}

/* A writemap savepoint commits the entries before the current one: their
 * request ids go with them. */
static int savepoint_hook(void *ctx, struct kv_write *wr)
{
    struct apply *a = ctx;
    const struct apply_hooks *h = a->batch_hooks;
    /* The savepoint commits the entries before this one; gating on this
     * one's index as well costs nothing (the rest of the batch waits for
     * the same sync) and holds whatever it wrote so far. */
    int rc = h != NULL && h->commit_gate != NULL
                 ? h->commit_gate(h->ctx, a->batch_index)
                 : 0;
    return rc != 0 ? rc : origins_flush(a, wr);
}

static int origins_load(struct apply *a, struct kv_read *rd)
{
    a->origins_count = 0;
    return kv_aux_list(rd, KV_AUX_APPLY, load_origin, a);
}

int apply_init(struct apply *a, const struct apply_config *cfg)
{
    struct kv_read *rd;
    int rc;
    memset(a, 0, sizeof(*a));
    a->cfg = *cfg;
    if (a->cfg.min_lease_ttl_s <= 0) {
        a->cfg.min_lease_ttl_s = 1;
    }
    rc = kv_read_begin(cfg->kv, &rd);
    if (rc != 0) {
        return rc;
    }
    rc = kv_aux_list(rd, KV_AUX_ALARM, load_alarm, a);
    if (rc == 0) {
        rc = origins_load(a, rd);
    }
    if (rc == 0 && cfg->auth != NULL) {
        rc = auth_load(cfg->auth, rd);
    }
    kv_read_end(rd);
    alarms_refresh_nospace(a);
    return rc;
}

void apply_close(struct apply *a)
{
    apply__audit_close(a);
    a->cfg.kv = NULL;
}

size_t apply_alarms(const struct apply *a, struct apply_alarm *out, size_t cap)
{
    for (size_t i = 0; i < a->alarms_count && i < cap; i++) {
        out[i] = a->alarms[i];
    }
    return a->alarms_count;
}

/* ------------------------------------------------------------ envelope */

int apply_envelope(uint64_t id, uint64_t origin, enum apply_op op,
                   const uint8_t *req, size_t len, struct buf *out)
{
    return apply_envelope_extra(id, origin, op, req, len, NULL, 0, out);
}

size_t apply_envelope_head(uint64_t id, uint64_t origin, enum apply_op op,
                           size_t len, uint8_t *out)
{
    size_t n = 0;
    out[n++] = 1 << 3 | 0; /* id */
    n += varint_put(out + n, id);
    out[n++] = 2 << 3 | 0; /* origin */
    n += varint_put(out + n, origin);
    /* a varint: tags of fields >= 16 take two bytes */
    n += varint_put(out + n, (uint64_t)op << 3 | 2);
    n += varint_put(out + n, len);
    ASSERT(n <= APPLY_ENVELOPE_HEAD_MAX);
    return n;
}

int apply_envelope_extra(uint64_t id, uint64_t origin, enum apply_op op,
                         const uint8_t *req, size_t len, const uint8_t *extra,
                         size_t extra_len, struct buf *out)
{
    uint8_t head[APPLY_ENVELOPE_HEAD_MAX];
    size_t start = out->len;
    size_t h = apply_envelope_head(id, origin, op, len, head);
    int rc = buf_reserve(out, h + len + extra_len);
    ASSERT(extra != NULL || extra_len == 0);
    if (rc == 0) {
        rc = buf_append(out, head, h);
    }
    if (rc == 0) {
        rc = buf_append(out, req, len);
    }
    if (rc == 0 && extra_len > 0) {
        rc = buf_append(out, extra, extra_len);
    }
    if (rc != 0) {
        out->len = start;
    }
    return rc;
}

int apply_audit_field(const Cairnpb__AuditRecord *rec, struct buf *out)
{
    size_t start = out->len;
    size_t n = cairnpb__audit_record__get_packed_size(rec);
    int rc = apply__audit_check(rec);
    if (rc == 0) {
        rc = buf_append_varint(out, (uint64_t)100 << 3 | 2);
    }
    if (rc == 0) {
        rc = buf_append_varint(out, n);
    }
    if (rc == 0) {
        rc = buf_reserve(out, n);
    }
    if (rc == 0) {
        size_t packed = cairnpb__audit_record__pack(rec, out->data + out->len);
        ASSERT(packed == n);
        out->len += packed;
    } else {
        out->len = start;
    }
    return rc;
}

int apply_lease_first_field(int64_t id, int64_t ttl, struct buf *out)
{
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    size_t start = out->len;
    size_t n;
    int rc;
    g.id = id;
    g.ttl = ttl;
    n = etcdserverpb__lease_grant_request__get_packed_size(&g);
    rc = buf_append_varint(out, (uint64_t)101 << 3 | 2);
    if (rc == 0) {
        rc = buf_append_varint(out, n);
    }
    if (rc == 0) {
        rc = buf_reserve(out, n);
    }
    if (rc == 0) {
        size_t packed =
            etcdserverpb__lease_grant_request__pack(&g, out->data + out->len);
        ASSERT(packed == n);
        out->len += packed;
    } else {
        out->len = start;
    }
    return rc;
}

/* ---------------------------------------------------- request conversion */

static void range_from_pb(const Etcdserverpb__RangeRequest *p,
                          struct kv_range_req *r)
{
    memset(r, 0, sizeof(*r));
    r->key = p->key.data;
    r->key_len = p->key.len;
    r->range_end = p->range_end.data;
    r->range_end_len = p->range_end.len;
    r->limit = p->limit;
    r->revision = p->revision;
    r->sort_order = (enum kv_sort_order)p->sort_order;
    r->sort_target = (enum kv_sort_target)p->sort_target;
    r->keys_only = p->keys_only;
    r->count_only = p->count_only;
    r->min_mod_revision = p->min_mod_revision;
    r->max_mod_revision = p->max_mod_revision;
    r->min_create_revision = p->min_create_revision;
    r->max_create_revision = p->max_create_revision;
}

static void put_from_pb(const Etcdserverpb__PutRequest *p, struct kv_put_req *r)
{
    memset(r, 0, sizeof(*r));
    r->key = p->key.data;
    r->key_len = p->key.len;
    r->value = p->value.data;
    r->value_len = p->value.len;
    r->lease = p->lease;
    r->prev_kv = p->prev_kv;
    r->ignore_value = p->ignore_value;
    r->ignore_lease = p->ignore_lease;
}

static void delete_from_pb(const Etcdserverpb__DeleteRangeRequest *p,
                           struct kv_delete_req *r)
{
    memset(r, 0, sizeof(*r));
    r->key = p->key.data;
    r->key_len = p->key.len;
    r->range_end = p->range_end.data;
    r->range_end_len = p->range_end.len;
    r->prev_kv = p->prev_kv;
}

/* etcd reads the compare's operand from the union member that matches the
 * target; a mismatched or missing operand is zero (or empty). */
static int compare_from_pb(const Etcdserverpb__Compare *p, struct kv_compare *c)
{
    static const int want[] = {
        [ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION] =
            ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION,
        [ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE] =
            ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION,
        [ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD] =
            ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION,
        [ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE] =
            ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE,
        [ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE] =
            ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE,
    };
    memset(c, 0, sizeof(*c));
    if ((unsigned)p->target > ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE ||
        (unsigned)p->result >
            ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL) {
        return ERR_BAD_COMPARE;
    }
    c->result = (enum kv_cmp_result)p->result;
    c->target = (enum kv_cmp_target)p->target;
    c->key = p->key.data;
    c->key_len = p->key.len;
    c->range_end = p->range_end.data;
    c->range_end_len = p->range_end.len;
    if ((int)p->target_union_case != want[p->target]) {
        return 0;
    }
    if (p->target == ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE) {
        c->value = p->value.data;
        c->value_len = p->value.len;
    } else {
        c->number = p->version; /* every int64 member shares the slot */
    }
    return 0;
}

static int txn_from_pb(struct arena *ar, const Etcdserverpb__TxnRequest *p,
                       struct kv_txn_req *t, int depth);

static int ops_from_pb(struct arena *ar, Etcdserverpb__RequestOp **ops,
                       size_t n, const struct kv_op **out, int depth)
{
    struct kv_op *v = arena_calloc(ar, n == 0 ? 1 : n, sizeof(*v));
    if (v == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__RequestOp *o = ops[i];
        switch (o->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
            v[i].type = KV_OP_RANGE;
            range_from_pb(o->request_range, &v[i].u.range);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
            v[i].type = KV_OP_PUT;
            put_from_pb(o->request_put, &v[i].u.put);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
            v[i].type = KV_OP_DELETE;
            delete_from_pb(o->request_delete_range, &v[i].u.del);
            break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
            struct kv_txn_req *sub = arena_calloc(ar, 1, sizeof(*sub));
            int rc;
            if (sub == NULL) {
                return -ENOMEM;
            }
            rc = txn_from_pb(ar, o->request_txn, sub, depth + 1);
            if (rc != 0) {
                return rc;
            }
            v[i].type = KV_OP_TXN;
            v[i].u.txn = sub;
            break;
        }
        default:
            return ERR_KEY_NOT_FOUND; /* etcd: an empty op */
        }
    }
    *out = v;
    return 0;
}

static int txn_from_pb(struct arena *ar, const Etcdserverpb__TxnRequest *p,
                       struct kv_txn_req *t, int depth)
{
    struct kv_compare *cmps;
    int rc;
    if (depth > APPLY_TXN_DEPTH_MAX) {
        return ERR_LIMIT;
    }
    memset(t, 0, sizeof(*t));
    cmps =
        arena_calloc(ar, p->n_compare == 0 ? 1 : p->n_compare, sizeof(*cmps));
    if (cmps == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < p->n_compare; i++) {
        rc = compare_from_pb(p->compare[i], &cmps[i]);
        if (rc != 0) {
            return rc;
        }
    }
    t->compares = cmps;
    t->compares_count = p->n_compare;
    rc = ops_from_pb(ar, p->success, p->n_success, &t->success, depth);
    if (rc == 0) {
        rc = ops_from_pb(ar, p->failure, p->n_failure, &t->failure, depth);
    }
    t->success_count = p->n_success;
    t->failure_count = p->n_failure;
    return rc;
}

bool apply_txn_writes(const Etcdserverpb__TxnRequest *p)
{
    Etcdserverpb__RequestOp **lists[2] = {p->success, p->failure};
    size_t counts[2] = {p->n_success, p->n_failure};
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < counts[l]; i++) {
            const Etcdserverpb__RequestOp *o = lists[l][i];
            if (o->request_case ==
                    ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT ||
                o->request_case ==
                    ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE) {
                return true;
            }
            if (o->request_case ==
                    ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN &&
                apply_txn_writes(o->request_txn)) {
                return true;
            }
        }
    }
    return false;
}

/* ------------------------------------------------------------- requests */

struct run {
    struct apply *a;
    struct kv_write *wr;
    struct pb_header hdr;
    struct buf *out; /* response bytes, when the proposer is this member */
    int64_t rev;     /* store revision after the request */
    uint64_t index;  /* the entry's Raft index */
    bool txn_ok;     /* a Txn: its compares held */
};

static int run_put(struct run *r, const Etcdserverpb__PutRequest *p)
{
    struct kv_put_req req;
    struct kv_put_resp resp;
    struct kv_result res = {0};
    int rc;
    if (r->a->nospace) {
        return ERR_NOSPACE;
    }
    put_from_pb(p, &req);
    rc = kv_put(r->wr, &req, &res, &resp, &r->rev);
    if (rc == 0 && r->out != NULL) {
        r->hdr.revision = r->rev;
        rc = pb_put_encode(&r->hdr, &resp, r->out);
    }
    kv_result_free(&res);
    return rc;
}

static int run_delete(struct run *r, const Etcdserverpb__DeleteRangeRequest *p)
{
    struct kv_delete_req req;
    struct kv_delete_resp resp;
    struct kv_result res = {0};
    int rc;
    delete_from_pb(p, &req);
    rc = kv_delete(r->wr, &req, &res, &resp, &r->rev);
    if (rc == 0 && r->out != NULL) {
        r->hdr.revision = r->rev;
        rc = pb_delete_encode(&r->hdr, &resp, r->out);
    }
    kv_result_free(&res);
    return rc;
}

static int run_txn(struct run *r, const Etcdserverpb__TxnRequest *p)
{
    struct arena ar;
    struct kv_txn_req req;
    struct kv_txn_resp resp;
    struct kv_result res = {0};
    int64_t start = kv_write_rev(r->wr);
    int rc;

    if (r->a->nospace && apply_txn_writes(p)) {
        return ERR_NOSPACE;
    }
    arena_init(&ar, 0);
    rc = txn_from_pb(&ar, p, &req, 0);
    if (rc == 0) {
        rc = kv_txn(r->wr, &req, &res, &resp, &r->rev);
        r->txn_ok = rc == 0 && resp.succeeded;
    }
    if (rc == 0 && r->out != NULL) {
        r->hdr.revision = r->rev;
        rc = pb_txn_encode(&r->hdr, &resp, start, r->out);
    }
    kv_result_free(&res);
    arena_free(&ar);
    return rc;
}

static int run_compaction(struct run *r,
                          const Etcdserverpb__CompactionRequest *p)
{
    int rc = kv_compact(r->wr, p->revision);
    r->rev = kv_write_rev(r->wr);
    if (rc == 0 && r->out != NULL) {
        r->hdr.revision = r->rev;
        rc = pb_header_only_encode(&r->hdr, r->out);
    }
    return rc;
}

/* Aux LEASE table: name = lease id (8 bytes, big-endian), value = the Raft
 * index (8 bytes, big-endian) of the last renewal through the log. */
static int renewal_note(struct run *r, int64_t id)
{
    uint8_t name[8];
    uint8_t value[8];
    be64_put(name, (uint64_t)id);
    be64_put(value, r->index);
    return kv_aux_put(r->wr, KV_AUX_LEASE, name, sizeof(name), value,
                      sizeof(value));
}

static int renewal_forget(struct run *r, int64_t id)
{
    uint8_t name[8];
    be64_put(name, (uint64_t)id);
    int rc = kv_aux_delete(r->wr, KV_AUX_LEASE, name, sizeof(name));
    return rc == ERR_NOT_FOUND ? 0 : rc;
}

static int renewal_index(struct run *r, int64_t id, uint64_t *index)
{
    uint8_t name[8];
    const void *v;
    size_t vlen;
    be64_put(name, (uint64_t)id);
    *index = 0;
    int rc =
        kv_write_aux_get(r->wr, KV_AUX_LEASE, name, sizeof(name), &v, &vlen);
    if (rc == ERR_NOT_FOUND) {
        return 0;
    }
    if (rc == 0 && vlen == 8) {
        *index = be64_get(v);
    }
    return rc;
}

static int run_lease_grant(struct run *r,
                           const Etcdserverpb__LeaseGrantRequest *p,
                           const struct apply_hooks *h)
{
    int64_t ttl = p->ttl;
    int rc;
    if (r->a->nospace) {
        return ERR_NOSPACE;
    }
    if (ttl > APPLY_LEASE_TTL_MAX) {
        return ERR_LEASE_TTL_TOO_LARGE;
    }
    if (p->id <= 0) {
        return ERR_BAD_REQUEST; /* the proposer picks the ID */
    }
    if (ttl < r->a->cfg.min_lease_ttl_s) {
        ttl = r->a->cfg.min_lease_ttl_s;
    }
    rc = kv_lease_grant(r->wr, p->id, ttl);
    r->rev = kv_write_rev(r->wr);
    if (rc == 0 && h->on_lease != NULL) {
        h->on_lease(h->ctx, p->id, ttl, false);
    }
    if (rc == 0 && r->out != NULL) {
        r->hdr.revision = r->rev;
        rc = pb_lease_grant_encode(&r->hdr, p->id, ttl, r->out);
    }
    return rc;
}

static int run_lease_revoke(struct run *r,
                            const Etcdserverpb__LeaseRevokeRequest *p,
                            const struct apply_hooks *h)
{
    int rc = kv_lease_revoke(r->wr, p->id, &r->rev);
    if (rc == 0) {
        rc = renewal_forget(r, p->id);
    }
    if (rc == 0 && h->on_lease != NULL) {
        h->on_lease(h->ctx, p->id, 0, false);
    }
    if (rc == 0 && r->out != NULL) {
        r->hdr.revision = r->rev;
        rc = pb_header_only_encode(&r->hdr, r->out);
    }
    return rc;
}

/* The leader's expiry timer: revoke unless a renewal through the log
 * applied after what the leader had seen (cairn.proto, LeaseExpire). */
static int run_lease_expire(struct run *r, const Cairnpb__LeaseExpire *p,
                            const struct apply_hooks *h)
{
    uint64_t renewed = 0;
    int rc = renewal_index(r, p->id, &renewed);
    if (rc != 0) {
        return rc;
    }
    if (renewed > p->seen_index) {
        r->rev = kv_write_rev(r->wr);
        if (r->out != NULL) {
            r->hdr.revision = r->rev;
            return pb_header_only_encode(&r->hdr, r->out);
        }
        return 0; /* renewed meanwhile: the leader will see it */
    }
    Etcdserverpb__LeaseRevokeRequest rq =
        ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    rq.id = p->id;
    return run_lease_revoke(r, &rq, h);
}

/* A remaining TTL R > 0 was computed by the leader from its expiry when
 * it had applied seen_index. A renewal through the log applied after that
 * (a follower's keep-alive, R = 0, ordered before this checkpoint) was not
 * in it: recording the stale R would undo the renewal for every member that
 * rebuilds its lease timers from the store (restart, snapshot install) and
 * then leads (lease.h, point 4), which could revoke the lease before the
 * renewal's TTL ran out (simulator seed 19456). So that R is skipped; the
 * renewal's R = 0 (the full TTL) stays. seen_index 0: unknown, recorded. */
static int checkpoint_stale(struct run *r,
                            const Etcdserverpb__LeaseCheckpointRequest *p,
                            const Etcdserverpb__LeaseCheckpoint *c, bool *stale)
{
    uint64_t renewed = 0;
    *stale = false;
    if (c->remaining_ttl <= 0 || p->seen_index == 0) {
        return 0;
    }
    int rc = renewal_index(r, c->id, &renewed);
    *stale = rc == 0 && renewed > p->seen_index;
    return rc;
}

static int run_lease_checkpoint(struct run *r,
                                const Etcdserverpb__LeaseCheckpointRequest *p,
                                const struct apply_hooks *h)
{
    for (size_t i = 0; i < p->n_checkpoints; i++) {
        const Etcdserverpb__LeaseCheckpoint *c = p->checkpoints[i];
        bool stale;
        int rc = checkpoint_stale(r, p, c, &stale);
        if (rc != 0) {
            return rc;
        }
        if (stale) {
            continue; /* renewed after the leader computed R */
        }
        rc = kv_lease_checkpoint(r->wr, c->id, c->remaining_ttl);
        if (rc == ERR_LEASE_NOT_FOUND) {
            continue; /* revoked meanwhile: nothing to keep */
        }
        if (rc == 0 && c->remaining_ttl == 0) {
            rc = renewal_note(r, c->id); /* a renewal (R = 0) */
        }
        if (rc != 0) {
            return rc;
        }
        if (h->on_lease != NULL) {
            h->on_lease(h->ctx, c->id, c->remaining_ttl, true);
        }
    }
    r->rev = kv_write_rev(r->wr);
    if (r->out != NULL) {
        r->hdr.revision = r->rev;
        return pb_header_only_encode(&r->hdr, r->out);
    }
    return 0;
}

static int alarm_find(const struct apply *a, uint64_t member, int type)
{
    for (size_t i = 0; i < a->alarms_count; i++) {
        if (a->alarms[i].member_id == member && a->alarms[i].type == type) {
            return (int)i;
        }
    }
    return -1;
}

static int run_alarm(struct run *r, const Etcdserverpb__AlarmRequest *p)
{
    struct apply *a = r->a;
    struct apply_alarm hit[APPLY_ALARMS_MAX];
    size_t hits = 0;
    uint8_t name[9];
    int type = (int)p->alarm;
    int rc = 0;

    be64_put(name, p->memberid);
    name[8] = (uint8_t)type;
    switch (p->action) {
    case ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET:
        for (size_t i = 0; i < a->alarms_count; i++) {
            if (type == ETCDSERVERPB__ALARM_TYPE__NONE ||
                a->alarms[i].type == type) {
                hit[hits++] = a->alarms[i];
            }
        }
        break;
    case ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE:
        if (type != ETCDSERVERPB__ALARM_TYPE__NOSPACE &&
            type != ETCDSERVERPB__ALARM_TYPE__CORRUPT) {
            return ERR_BAD_REQUEST;
        }
        if (alarm_find(a, p->memberid, type) < 0) {
            if (a->alarms_count == APPLY_ALARMS_MAX) {
                return ERR_LIMIT;
            }
            rc = kv_aux_put(r->wr, KV_AUX_ALARM, name, sizeof(name), "", 0);
            if (rc != 0) {
                return rc;
            }
            a->alarms[a->alarms_count].member_id = p->memberid;
            a->alarms[a->alarms_count].type = type;
            a->alarms_count++;
        }
        hit[hits].member_id = p->memberid;
        hit[hits++].type = type;
        break;
    case ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE: {
        int i = alarm_find(a, p->memberid, type);
        if (i >= 0) {
            rc = kv_aux_delete(r->wr, KV_AUX_ALARM, name, sizeof(name));
            if (rc != 0 && rc != ERR_NOT_FOUND) {
                return rc;
            }
            hit[hits++] = a->alarms[i];
            a->alarms[i] = a->alarms[--a->alarms_count];
        }
        rc = 0;
        break;
    }
    default:
        return ERR_BAD_REQUEST;
    }
    alarms_refresh_nospace(a);
    r->rev = kv_write_rev(r->wr);
    if (r->out != NULL) {
        r->hdr.revision = r->rev;
        rc = pb_alarm_encode(&r->hdr, hit, hits, r->out);
    }
    return rc;
}

static int run_member_attr(struct run *r, const Cairnpb__MemberAttributes *p,
                           const struct apply_hooks *h)
{
    uint8_t name[12];
    struct buf b;
    size_t nl = strlen(p->name);
    int rc;
    if (p->id == 0 || nl > 0xffff) {
        return ERR_BAD_REQUEST;
    }
    be64_put(name, p->id);
    memcpy(name + 8, "attr", 4);
    buf_init(&b, 0x30000);
    rc = buf_append_u8(&b, (uint8_t)(nl >> 8));
    if (rc == 0) {
        rc = buf_append_u8(&b, (uint8_t)nl);
    }
    if (rc == 0) {
        rc = buf_append(&b, p->name, nl);
    }
    size_t cl = 0;
    for (size_t i = 0; i < p->n_client_urls; i++) {
        cl += strlen(p->client_urls[i]) + (i > 0 ? 1 : 0);
    }
    if (rc == 0 && cl > 0xffff) {
        rc = ERR_BAD_REQUEST;
    }
    if (rc == 0) {
        rc = buf_append_u8(&b, (uint8_t)(cl >> 8));
    }
    if (rc == 0) {
        rc = buf_append_u8(&b, (uint8_t)cl);
    }
    for (size_t i = 0; rc == 0 && i < p->n_client_urls; i++) {
        if (i > 0) {
            rc = buf_append_u8(&b, ',');
        }
        if (rc == 0) {
            rc = buf_append(&b, p->client_urls[i], strlen(p->client_urls[i]));
        }
    }
    uint32_t mine = r->a->cfg.level != 0 ? r->a->cfg.level : APPLY_LEVEL;
    if (rc == 0 && p->apply_level != 0 && mine >= 2) {
        /* after the URLs: readers that predate it stop before it */
        uint8_t lv[4];
        be32_put(lv, p->apply_level);
        rc = buf_append(&b, lv, sizeof(lv));
    }
    if (rc == 0) {
        rc = kv_aux_put(r->wr, KV_AUX_CLUSTER, name, sizeof(name), b.data,
                        b.len);
    }
    buf_free(&b);
    r->rev = kv_write_rev(r->wr);
    if (rc == 0 && h->on_member != NULL) {
        h->on_member(h->ctx, p->id);
    }
    if (rc == 0 && r->out != NULL) {
        r->hdr.revision = r->rev;
        rc = pb_header_only_encode(&r->hdr, r->out);
    }
    return rc;
}

static int run_member_record(struct run *r, const Cairnpb__MemberRecord *p,
                             const struct apply_hooks *h)
{
    uint8_t name[8];
    int rc;
    if (p->id == 0 || p->record.len == 0) {
        return ERR_BAD_REQUEST;
    }
    be64_put(name, p->id);
    rc = kv_aux_put(r->wr, KV_AUX_CLUSTER, name, sizeof(name), p->record.data,
                    p->record.len);
    r->rev = kv_write_rev(r->wr);
    if (rc == 0 && h->on_member != NULL) {
        h->on_member(h->ctx, p->id);
    }
    if (rc == 0 && r->out != NULL) {
        r->hdr.revision = r->rev;
        rc = pb_header_only_encode(&r->hdr, r->out);
    }
    return rc;
}

/* Auth changes (consensus/auth); every answer is a header alone. */
static int run_auth(struct run *r, const Cairnpb__InternalRequest *req)
{
    int rc;
    if (r->a->cfg.auth == NULL || !auth_is_request((int)req->request_case)) {
        return ERR_BAD_REQUEST;
    }
    rc = auth_apply(r->a->cfg.auth, r->wr, req);
    r->rev = kv_write_rev(r->wr);
    if (rc == 0 && r->out != NULL) {
        r->hdr.revision = r->rev;
        rc = pb_header_only_encode(&r->hdr, r->out);
    }
    return rc;
}

/* Under a CORRUPT alarm etcd applies no KV write, compaction, lease
 * grant or revoke (applierV3Corrupt; an expiry is a revoke there), on
 * every member, until the alarm is disarmed; auth, alarm and member
 * requests still apply. */
static bool corrupt_refuses(const struct run *r,
                            const Cairnpb__InternalRequest *req)
{
    if (!r->a->corrupt) {
        return false;
    }
    switch (req->request_case) {
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_PUT:
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_DELETE_RANGE:
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_TXN:
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_COMPACTION:
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_LEASE_GRANT:
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_LEASE_REVOKE:
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_LEASE_EXPIRE:
        return true;
    default:
        return req->lease_first != NULL;
    }
}

static int run_request(struct run *r, const Cairnpb__InternalRequest *req,
                       const struct apply_hooks *h)
{
    if (corrupt_refuses(r, req)) {
        return ERR_CORRUPT_CLUSTER;
    }
    switch (req->request_case) {
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_PUT:
        return run_put(r, req->put);
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_DELETE_RANGE:
        return run_delete(r, req->delete_range);
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_TXN:
        return run_txn(r, req->txn);
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_COMPACTION:
        return run_compaction(r, req->compaction);
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_LEASE_GRANT:
        return run_lease_grant(r, req->lease_grant, h);
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_LEASE_REVOKE:
        return run_lease_revoke(r, req->lease_revoke, h);
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_LEASE_CHECKPOINT:
        return run_lease_checkpoint(r, req->lease_checkpoint, h);
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_ALARM:
        return run_alarm(r, req->alarm);
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_MEMBER_ATTR:
        return run_member_attr(r, req->member_attr, h);
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_MEMBER_RECORD:
        return run_member_record(r, req->member_record, h);
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_LEASE_EXPIRE:
        return run_lease_expire(r, req->lease_expire, h);
    default:
        return run_auth(r, req);
    }
}

/* ------------------------------------------------------------ batches */

/* A result waiting for the commit; its bytes are out[off..off+len). */
struct pending {
    uint64_t id;
    enum apply_op op;
    int err;
    int64_t revision;
    size_t off;
    size_t len;
};

/* The id, origin and request field that apply_envelope writes first, read
 * off the wire when the envelope as a whole does not decode. */
static bool envelope_head(const uint8_t *p, size_t len, uint64_t *id,
                          uint64_t *origin, enum apply_op *op)
{
    /* tag 1, id, tag 2, origin, the request's tag */
    uint64_t v[5];
    size_t off = 0;
    if (p == NULL) {
        return false;
    }
    for (int k = 0; k < 5; k++) {
        size_t n = varint_get(p + off, len - off, &v[k]);
        if (n == 0) {
            return false;
        }
        off += n;
    }
    if (v[0] != (1 << 3 | 0) || v[2] != (2 << 3 | 0)) {
        return false;
    }
    *id = v[1];
    *origin = v[3];
    *op = (v[4] & 7) == 2 && (v[4] >> 3) <= INT32_MAX
              ? (enum apply_op)(v[4] >> 3)
              : (enum apply_op)0;
    return true;
}

bool apply_entry_early(const struct raft_entry *e)
{
    uint64_t id, origin;
    enum apply_op op;
    if (e->type == RAFT_ENTRY_EMPTY) {
        return true;
    }
    if (e->type != RAFT_ENTRY_NORMAL ||
        !envelope_head(e->data, e->len, &id, &origin, &op)) {
        return false;
    }
    switch (op) {
    case APPLY_PUT:
    case APPLY_DELETE_RANGE:
    case APPLY_TXN:
    case APPLY_LEASE_GRANT:
    case APPLY_LEASE_REVOKE:
    case APPLY_LEASE_CHECKPOINT:
    case APPLY_LEASE_EXPIRE:
        return true;
    default:
        return false;
    }
}

/* A store error that is not the request's own fault stops the batch. */
static bool is_store_failure(int rc)
{
    return rc == ERR_FAILED || rc == ERR_CORRUPT || rc == -EIO ||
           rc == -ENOSPC || rc == -ENOMEM || rc == -EROFS;
}

/* Did the request change what its audit record says it did? A Txn whose
 * compares failed (a lost race the front end retries) and a DeleteRange
 * that deleted nothing did not. */
static bool took_effect(const struct run *r,
                        const Cairnpb__InternalRequest *req, int64_t rev_before)
{
    switch (req->request_case) {
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_TXN:
        return r->txn_ok;
    case CAIRNPB__INTERNAL_REQUEST__REQUEST_DELETE_RANGE:
        return kv_write_rev(r->wr) > rev_before;
    default:
        return true;
    }
}

/* May req carry a lease to grant first (apply.h, "lease first")? A Put,
 * or a Txn whose failure branch only reads: whatever the lease holds when
 * it is revoked again was then written by nothing. */
bool apply_lease_first_txn_ok(const Etcdserverpb__TxnRequest *t)
{
    for (size_t i = 0; i < t->n_failure; i++) {
        if (t->failure[i]->request_case !=
            ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) {
            return false;
        }
    }
    return true;
}

static bool lease_first_allowed(const Cairnpb__InternalRequest *req)
{
    return req->request_case == CAIRNPB__INTERNAL_REQUEST__REQUEST_PUT ||
           (req->request_case == CAIRNPB__INTERNAL_REQUEST__REQUEST_TXN &&
            apply_lease_first_txn_ok(req->txn));
}

/* The request, after its lease_first if it has one; the lease is revoked
 * again, in wr, when the request did not take effect. */
static int run_leased(struct run *r, const Cairnpb__InternalRequest *req,
                      const struct apply_hooks *h)
{
    const Etcdserverpb__LeaseGrantRequest *g = req->lease_first;
    struct buf *out = r->out;
    int rc;
    if (g == NULL || corrupt_refuses(r, req)) {
        return run_request(r, req, h);
    }
    if (!lease_first_allowed(req)) {
        return ERR_BAD_REQUEST; /* refused whole, on every member */
    }
    r->out = NULL; /* the answer is the request's, not the grant's */
    rc = run_lease_grant(r, g, h);
    r->out = out;
    if (rc != 0) {
        return rc;
    }
    rc = run_request(r, req, h);
    bool took = rc == 0 &&
                (req->request_case != CAIRNPB__INTERNAL_REQUEST__REQUEST_TXN ||
                 r->txn_ok);
    if (took || is_store_failure(rc)) {
        return rc;
    }
    /* Not written: the lease holds nothing (a refused Put attached nothing,
     * a failed Txn only read), so revoking it deletes nothing and makes no
     * revision; the answer keeps the request's revision. */
    int64_t rev = r->rev;
    Etcdserverpb__LeaseRevokeRequest rq =
        ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    rq.id = g->id;
    r->out = NULL;
    int urc = run_lease_revoke(r, &rq, h);
    r->out = out;
    r->rev = rev;
    if (urc != 0) {
        /* the request's writes are not kept alone (run_audited) */
        return is_store_failure(urc) ? urc : ERR_FAILED;
    }
    return rc;
}

/* Run the request and, if it took effect, its audit record, in wr. */
static int run_audited(struct run *r, const Cairnpb__InternalRequest *req,
                       const struct apply_hooks *h)
{
    int64_t before = kv_write_rev(r->wr);
    int rc = req->audit != NULL ? apply__audit_check(req->audit) : 0;
    if (rc != 0) {
        return rc; /* refused whole: the same on every member */
    }
    rc = run_leased(r, req, h);
    if (rc != 0 || req->audit == NULL || !took_effect(r, req, before)) {
        return rc;
    }
    rc = apply__audit_write(r->a, r->wr, req->audit, before);
    /* The request's writes are in the handle already: any failure must
     * lose the batch (a store failure does), never keep them alone. The
     * record was checked, so only the store can fail here. */
    return rc == 0 || is_store_failure(rc) ? rc : ERR_FAILED;
}

/* The entry's request: a Put in the canonical layout read in place into
 * the caller's structs (apply_wire.c), anything else decoded by protobuf-c
 * (free it with request_free). NULL when it does not decode. */
static Cairnpb__InternalRequest *request_decode(const struct raft_entry *e,
                                                Cairnpb__InternalRequest *fast,
                                                Etcdserverpb__PutRequest *put)
{
    if (apply__put_decode(e->data, e->len, fast, put)) {
        return fast;
    }
    return cairnpb__internal_request__unpack(&pb_allocator, e->len, e->data);
}

static void request_free(Cairnpb__InternalRequest *req,
                         const Cairnpb__InternalRequest *fast)
{
    if (req != fast) {
        cairnpb__internal_request__free_unpacked(req, &pb_allocator);
    }
}

static int apply_one(struct apply *a, struct kv_write *wr,
                     const struct raft_entry *e, uint64_t raft_term,
                     const struct apply_hooks *h, struct buf *out,
                     struct pending *p, bool *has_result)
{
    Cairnpb__InternalRequest fast;
    Etcdserverpb__PutRequest fast_put;
    Cairnpb__InternalRequest *req;
    struct run r = {.a = a, .wr = wr, .index = e->index};
    int rc;

    *has_result = false;
    req = request_decode(e, &fast, &fast_put);
    if (req == NULL) {
        /* Undecodable. Our proposer can still be waiting on it: protobuf-c
         * accepts some requests whose re-encoding it then refuses (a field
         * number 0 in a non-canonical tag). Answer it; change nothing. */
        uint64_t id, origin;
        enum apply_op op;
        if (envelope_head(e->data, e->len, &id, &origin, &op) &&
            origin == a->cfg.member_id) {
            *has_result = true;
            p->id = id;
            p->op = op;
            p->err = ERR_BAD_REQUEST;
            p->revision = kv_write_rev(wr);
            p->off = out->len;
            p->len = 0;
        }
        return 0;
    }
    r.hdr.cluster_id = a->cfg.cluster_id;
    r.hdr.member_id = a->cfg.member_id;
    r.hdr.raft_term = raft_term;
    r.out = req->origin == a->cfg.member_id ? out : NULL;
    size_t off = out->len;
    if (APPLY_PLANTED_BUG == 0 && req->id != 0 &&
        req->id <= apply_last_id(a, req->origin)) {
        /* Delivered twice, or overtaken: never executed (see apply.h). */
        rc = ERR_PROPOSAL_DROPPED;
        r.rev = kv_write_rev(wr);
    } else {
        /* Noted after it ran: a writemap savepoint inside it (kv.h,
         * kv_write_mark) records the entries before it, and only their
         * ids (origins_flush through savepoint_hook). */
        rc = run_audited(&r, req, h);
        int nrc = req->id != 0 && !is_store_failure(rc)
                      ? origin_note(a, wr, req->origin, req->id)
                      : 0;
        if (nrc != 0) {
            request_free(req, &fast);
            return nrc; /* the store failed */
        }
    }
    if (r.rev == 0) {
        r.rev = kv_write_rev(wr);
    }
    if (r.out != NULL) {
        *has_result = true;
        p->id = req->id;
        p->op = (enum apply_op)req->request_case;
        p->err = rc;
        p->revision = r.rev;
        p->off = off;
        p->len = rc == 0 ? out->len - off : 0;
        if (rc != 0) {
            out->len = off; /* drop a half-written response */
        }
    }
    request_free(req, &fast);
    return is_store_failure(rc) ? rc : 0;
}

int apply_entries(struct apply *a, const struct raft_entry *ents, size_t n,
                  uint64_t raft_term, const struct apply_hooks *hooks)
{
    struct kv_write *wr;
    struct buf out;
    struct pending *pend;
    size_t pend_count = 0;
    uint64_t applied;
    uint64_t applied_term;
    int rc;

    ASSERT(a->cfg.kv != NULL);
    if (n == 0) {
        return 0;
    }
    kv_applied(a->cfg.kv, &applied, &applied_term);
    if (ents[n - 1].index <= applied) {
        return 0; /* the whole batch is already in the store (replay) */
    }
    pend = mem_calloc(n, sizeof(*pend));
    if (pend == NULL) {
        return -ENOMEM;
    }
    buf_init(&out, 0);
    rc = kv_write_begin(a->cfg.kv, hooks->on_event, hooks->ctx, &wr);
    if (rc != 0) {
        mem_free(pend);
        return rc;
    }
    kv_write_on_savepoint(wr, savepoint_hook, a);
    if (hooks->events_prev_some) {
        kv_write_event_prev(wr, false, hooks->events_prev_prefix,
                            hooks->events_prev_prefix_len);
    }
    a->batch_hooks = hooks;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct raft_entry *e = &ents[i];
        bool has = false;
        if (e->index <= applied) {
            continue;
        }
        a->batch_index = e->index;
        if (e->type == RAFT_ENTRY_NORMAL) {
            rc = apply_one(a, wr, e, raft_term, hooks, &out, &pend[pend_count],
                           &has);
            pend_count += has ? 1 : 0;
        } else if (e->type == RAFT_ENTRY_CONF && hooks->on_conf != NULL) {
            rc = hooks->on_conf(hooks->ctx, wr, e);
        }
        if (rc == 0) {
            kv_write_mark(wr, e->index, e->term); /* e is whole */
        }
    }
    if (rc == 0) {
        rc = origins_flush(a, wr);
    }
    if (rc == 0 && hooks->commit_gate != NULL) {
        rc = hooks->commit_gate(hooks->ctx, ents[n - 1].index);
    }
    a->batch_hooks = NULL;
    if (rc != 0) {
        kv_write_abort(wr);
    } else {
        rc = kv_write_commit(wr, ents[n - 1].index, ents[n - 1].term);
    }
    if (rc != 0) {
        /* The batch did not land: forget its ids (the store has the truth;
         * the node stops on a failed batch, this keeps apply honest). */
        struct kv_read *rd;
        if (kv_read_begin(a->cfg.kv, &rd) == 0) {
            (void)origins_load(a, rd);
            kv_read_end(rd);
        }
    }
    for (size_t i = 0; rc == 0 && i < pend_count; i++) {
        struct apply_result res = {
            .id = pend[i].id,
            .op = pend[i].op,
            .err = pend[i].err,
            .revision = pend[i].revision,
            .resp = pend[i].len > 0 ? out.data + pend[i].off : NULL,
            .resp_len = pend[i].len,
        };
        if (hooks->on_result != NULL) {
            hooks->on_result(hooks->ctx, &res);
        }
    }
    buf_free(&out);
    mem_free(pend);
    return rc;
}

/* ----------------------------------------------------------------- reads */

int apply_range(struct apply *a, struct kv_read *rd,
                const Etcdserverpb__RangeRequest *req, uint64_t raft_term,
                struct buf *out)
{
    struct kv_range_req r;
    struct kv_range_resp resp;
    struct kv_result res = {0};
    struct pb_header h = {.cluster_id = a->cfg.cluster_id,
                          .member_id = a->cfg.member_id,
                          .revision = kv_read_rev(rd),
                          .raft_term = raft_term};
    int rc;
    range_from_pb(req, &r);
    rc = kv_range(rd, &r, &res, &resp);
    if (rc == 0) {
        rc = pb_range_encode(&h, &resp, out);
    }
    kv_result_free(&res);
    return rc;
}

int apply_txn_read(struct apply *a, struct kv_read *rd,
                   const Etcdserverpb__TxnRequest *req, uint64_t raft_term,
                   struct buf *out)
{
    struct arena ar;
    struct kv_txn_req t;
    struct kv_txn_resp resp;
    struct kv_result res = {0};
    struct pb_header h = {.cluster_id = a->cfg.cluster_id,
                          .member_id = a->cfg.member_id,
                          .revision = kv_read_rev(rd),
                          .raft_term = raft_term};
    int rc;
    if (apply_txn_writes(req)) {
        return ERR_INVALID;
    }
    arena_init(&ar, 0);
    rc = txn_from_pb(&ar, req, &t, 0);
    if (rc == 0) {
        rc = kv_txn_read(rd, &t, &res, &resp);
    }
    if (rc == 0) {
        rc = pb_txn_encode(&h, &resp, h.revision, out);
    }
    kv_result_free(&res);
    arena_free(&ar);
    return rc;
}

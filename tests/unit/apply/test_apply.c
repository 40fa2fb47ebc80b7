/*
 * test_apply.c - committed etcd requests applied to a real store.
 *
 * Goal: every response apply encodes by hand decodes with protobuf-c's
 * generated decoder into exactly what etcd would answer, and the entry
 * stream drives the store deterministically (results only for the
 * proposer, replays skipped, alarms and leases remembered).
 * Method: real LMDB stores in temp dirs; requests packed with protobuf-c,
 * wrapped by apply_envelope into Raft entries, applied with apply_entries;
 * responses unpacked with protobuf-c and compared field by field.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/prng.h"
#include "consensus/apply/apply.h"
#include "consensus/apply/apply_int.h"
#include "proto/cairn.pb-c.h"
#include "proto/kv.pb-c.h"
#include "proto/rpc.pb-c.h"

#define ME    0x1111
#define OTHER 0x2222

struct fixture {
    char dir[64];
    struct kv *kv;
    struct apply a;
    uint64_t index;
    /* the last result seen */
    int results;
    struct apply_result last;
    uint8_t resp[65536];
    int events;
    int64_t lease_id;
    int64_t lease_ttl;
};

static void on_result(void *ctx, const struct apply_result *r)
{
    struct fixture *f = ctx;
    f->results++;
    f->last = *r;
    assert_true(r->resp_len <= sizeof(f->resp));
    if (r->resp_len > 0) {
        memcpy(f->resp, r->resp, r->resp_len);
    }
    f->last.resp = f->resp;
}

static int on_event(void *ctx, const struct kv_event *ev)
{
    struct fixture *f = ctx;
    (void)ev;
    f->events++;
    return 0;
}

static void on_lease(void *ctx, int64_t id, int64_t ttl, bool checkpoint)
{
    struct fixture *f = ctx;
    (void)checkpoint;
    f->lease_id = id;
    f->lease_ttl = ttl;
}

static struct apply_hooks hooks_of(struct fixture *f)
{
    struct apply_hooks h = {.ctx = f,
                            .on_event = on_event,
                            .on_result = on_result,
                            .on_lease = on_lease};
    return h;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct kv_options o = {.sync = KV_SYNC_NONE,
                           .writemap = getenv("CAIRN_KV_WRITEMAP") != NULL};
    struct apply_config cfg = {
        .cluster_id = 0xc1, .member_id = ME, .min_lease_ttl_s = 2};
    snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-apply-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(kv_open(f->dir, &o, &f->kv), 0);
    cfg.kv = f->kv;
    assert_int_equal(apply_init(&f->a, &cfg), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    apply_close(&f->a);
    kv_close(f->kv);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Pack msg, wrap it, apply it as the next entry; returns the result count
 * delta (1 when origin is ME). */
static int propose(struct fixture *f, uint64_t origin, enum apply_op op,
                   const ProtobufCMessage *msg)
{
    uint8_t tmp[4096];
    size_t len = protobuf_c_message_pack(msg, tmp);
    struct buf b;
    struct raft_entry e;
    struct apply_hooks h = hooks_of(f);
    int before = f->results;
    assert_true(len < sizeof(tmp));
    buf_init(&b, 0);
    assert_int_equal(apply_envelope(++f->index, origin, op, tmp, len, &b), 0);
    e.index = f->index;
    e.term = 1;
    e.type = RAFT_ENTRY_NORMAL;
    e.data = b.data;
    e.len = (uint32_t)b.len;
    assert_int_equal(apply_entries(&f->a, &e, 1, 7, &h), 0);
    buf_free(&b);
    return f->results - before;
}

/* Apply puts of key k with the given (origin, id) pairs as one batch. */
static void put_batch(struct fixture *f, const char *k, const uint64_t *origin,
                      const uint64_t *id, size_t n)
{
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    uint8_t tmp[256];
    size_t len;
    struct buf b[4];
    struct raft_entry e[4];
    struct apply_hooks h = hooks_of(f);
    assert_true(n <= 4);
    p.key.data = (uint8_t *)k;
    p.key.len = strlen(k);
    len = protobuf_c_message_pack(&p.base, tmp);
    for (size_t i = 0; i < n; i++) {
        buf_init(&b[i], 0);
        assert_int_equal(
            apply_envelope(id[i], origin[i], APPLY_PUT, tmp, len, &b[i]), 0);
        e[i].index = ++f->index;
        e[i].term = 1;
        e[i].type = RAFT_ENTRY_NORMAL;
        e[i].data = b[i].data;
        e[i].len = (uint32_t)b[i].len;
    }
    assert_int_equal(apply_entries(&f->a, e, n, 7, &h), 0);
    for (size_t i = 0; i < n; i++) {
        buf_free(&b[i]);
    }
}

static void repeated_proposals_apply_once(void **state)
{
    struct fixture *f = *state;
    struct apply_config cfg = f->a.cfg;
    uint64_t o1[] = {OTHER, OTHER};
    uint64_t i1[] = {100, 100};
    uint64_t o2[] = {ME};
    uint64_t i2[] = {100};
    uint64_t i3[] = {50};
    uint64_t i4[] = {0, 0};
    uint64_t o4[] = {ME, ME};

    /* The same proposal twice in one batch: one revision. */
    put_batch(f, "d", o1, i1, 2);
    assert_int_equal(kv_rev(f->kv), 2);
    assert_int_equal(apply_last_id(&f->a, OTHER), 100);
    /* Again in a later batch: still refused. */
    put_batch(f, "d", o1, i1, 1);
    assert_int_equal(kv_rev(f->kv), 2);
    /* The same id from another proposer is a different request. */
    put_batch(f, "d", o2, i2, 1);
    assert_int_equal(kv_rev(f->kv), 3);
    assert_int_equal(f->last.err, 0);
    /* An overtaken (lower) id is refused, and its proposer told. */
    int before = f->results;
    put_batch(f, "d", o2, i3, 1);
    assert_int_equal(kv_rev(f->kv), 3);
    assert_int_equal(f->results, before + 1);
    assert_int_equal(f->last.err, ERR_PROPOSAL_DROPPED);
    /* The verdict survives a restart: it lives in the store. */
    apply_close(&f->a);
    kv_close(f->kv);
    struct kv_options ko = {.sync = KV_SYNC_NONE,
                            .writemap = getenv("CAIRN_KV_WRITEMAP") != NULL};
    assert_int_equal(kv_open(f->dir, &ko, &f->kv), 0);
    cfg.kv = f->kv;
    assert_int_equal(apply_init(&f->a, &cfg), 0);
    assert_int_equal(apply_last_id(&f->a, OTHER), 100);
    assert_int_equal(apply_last_id(&f->a, ME), 100);
    put_batch(f, "d", o1, i1, 1);
    assert_int_equal(kv_rev(f->kv), 3);
    i1[0] = 101;
    put_batch(f, "d", o1, i1, 1);
    assert_int_equal(kv_rev(f->kv), 4);
    /* Id 0 is never deduplicated. */
    put_batch(f, "d", o4, i4, 2);
    assert_int_equal(kv_rev(f->kv), 6);
}

static int put(struct fixture *f, const char *k, const char *v, int64_t lease,
               bool prev)
{
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key.data = (uint8_t *)k;
    p.key.len = strlen(k);
    p.value.data = (uint8_t *)v;
    p.value.len = strlen(v);
    p.lease = lease;
    p.prev_kv = prev;
    assert_int_equal(propose(f, ME, APPLY_PUT, &p.base), 1);
    return f->last.err;
}

static void put_response_decodes_with_header_and_prev_kv(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__PutResponse *r;
    assert_int_equal(put(f, "a", "1", 0, false), 0);
    assert_int_equal(f->last.revision, 2);
    assert_int_equal(put(f, "a", "22", 0, true), 0);
    r = etcdserverpb__put_response__unpack(NULL, f->last.resp_len,
                                           f->last.resp);
    assert_non_null(r);
    assert_non_null(r->header);
    assert_int_equal(r->header->cluster_id, 0xc1);
    assert_int_equal(r->header->member_id, ME);
    assert_int_equal(r->header->revision, 3);
    assert_int_equal(r->header->raft_term, 7);
    assert_non_null(r->prev_kv);
    assert_int_equal(r->prev_kv->value.len, 1);
    assert_memory_equal(r->prev_kv->value.data, "1", 1);
    assert_int_equal(r->prev_kv->mod_revision, 2);
    assert_int_equal(r->prev_kv->create_revision, 2);
    assert_int_equal(r->prev_kv->version, 1);
    etcdserverpb__put_response__free_unpacked(r, NULL);
    assert_int_equal(f->events, 2);
}

static void entries_from_other_members_apply_without_results(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key.data = (uint8_t *)"x";
    p.key.len = 1;
    assert_int_equal(propose(f, OTHER, APPLY_PUT, &p.base), 0);
    assert_int_equal(kv_rev(f->kv), 2);
    uint64_t idx;
    uint64_t term;
    kv_applied(f->kv, &idx, &term);
    assert_int_equal(idx, f->index);
}

static void replayed_entries_are_skipped(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    assert_int_equal(put(f, "k", "v", 0, false), 0);
    f->index--; /* the same index again, as after a restart */
    p.key.data = (uint8_t *)"k";
    p.key.len = 1;
    assert_int_equal(propose(f, ME, APPLY_PUT, &p.base), 0);
    assert_int_equal(kv_rev(f->kv), 2); /* not applied twice */
}

static void range_response_matches_etcd_fields(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RangeResponse *r;
    struct kv_read *rd;
    struct buf out;
    put(f, "p/1", "one", 0, false);
    put(f, "p/2", "two", 0, false);
    put(f, "p/3", "three", 0, false);
    q.key.data = (uint8_t *)"p/";
    q.key.len = 2;
    q.range_end.data = (uint8_t *)"p0";
    q.range_end.len = 2;
    q.limit = 2;
    buf_init(&out, 0);
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(apply_range(&f->a, rd, &q, 7, &out), 0);
    kv_read_end(rd);
    r = etcdserverpb__range_response__unpack(NULL, out.len, out.data);
    assert_non_null(r);
    assert_int_equal(r->header->revision, 4);
    assert_int_equal(r->n_kvs, 2);
    assert_true(r->more);
    assert_int_equal(r->count, 3);
    assert_memory_equal(r->kvs[1]->key.data, "p/2", 3);
    etcdserverpb__range_response__free_unpacked(r, NULL);
    buf_free(&out);
}

static void txn_inner_headers_follow_etcd_revisions(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;
    Etcdserverpb__Compare *cs[1] = {&c};
    Etcdserverpb__RequestOp o1 = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp o2 = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp o3 = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *ops[3] = {&o1, &o2, &o3};
    Etcdserverpb__RangeRequest g = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__TxnResponse *r;

    put(f, "t", "old", 0, false); /* rev 2 */
    c.key.data = (uint8_t *)"t";
    c.key.len = 1;
    c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    c.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c.value.data = (uint8_t *)"old";
    c.value.len = 3;
    g.key = c.key;
    p.key = c.key;
    p.value.data = (uint8_t *)"new";
    p.value.len = 3;
    o1.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    o1.request_range = &g;
    o2.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    o2.request_put = &p;
    o3.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    o3.request_range = &g;
    t.n_compare = 1;
    t.compare = cs;
    t.n_success = 3;
    t.success = ops;
    assert_int_equal(propose(f, ME, APPLY_TXN, &t.base), 1);
    assert_int_equal(f->last.err, 0);
    r = etcdserverpb__txn_response__unpack(NULL, f->last.resp_len,
                                           f->last.resp);
    assert_non_null(r);
    assert_true(r->succeeded);
    assert_int_equal(r->header->revision, 3);
    assert_int_equal(r->header->member_id, ME);
    assert_int_equal(r->n_responses, 3);
    /* read before the write sees 2, the write and the read after it 3 */
    assert_int_equal(r->responses[0]->response_range->header->revision, 2);
    assert_int_equal(r->responses[0]->response_range->header->member_id, 0);
    assert_memory_equal(r->responses[0]->response_range->kvs[0]->value.data,
                        "old", 3);
    assert_int_equal(r->responses[1]->response_put->header->revision, 3);
    assert_int_equal(r->responses[2]->response_range->header->revision, 3);
    assert_memory_equal(r->responses[2]->response_range->kvs[0]->value.data,
                        "new", 3);
    etcdserverpb__txn_response__free_unpacked(r, NULL);
    /* the compare now fails: failure branch is empty, no new revision */
    assert_int_equal(propose(f, ME, APPLY_TXN, &t.base), 1);
    r = etcdserverpb__txn_response__unpack(NULL, f->last.resp_len,
                                           f->last.resp);
    assert_false(r->succeeded);
    assert_int_equal(r->header->revision, 3);
    etcdserverpb__txn_response__free_unpacked(r, NULL);
}

static void request_errors_reach_the_proposer(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    assert_int_equal(put(f, "", "v", 0, false), ERR_KEY_NOT_PROVIDED);
    assert_int_equal(put(f, "k", "v", 99, false), ERR_LEASE_NOT_FOUND);
    c.revision = 100;
    assert_int_equal(propose(f, ME, APPLY_COMPACTION, &c.base), 1);
    assert_int_equal(f->last.err, ERR_FUTURE_REV);
    assert_int_equal(f->last.resp_len, 0);
    assert_int_equal(kv_rev(f->kv), 1);
}

static void leases_grant_attach_and_revoke_in_one_revision(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    Etcdserverpb__LeaseRevokeRequest rv =
        ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    Etcdserverpb__LeaseGrantResponse *gr;
    g.id = 42;
    g.ttl = 1; /* below the minimum: raised to 2 */
    assert_int_equal(propose(f, ME, APPLY_LEASE_GRANT, &g.base), 1);
    assert_int_equal(f->last.err, 0);
    gr = etcdserverpb__lease_grant_response__unpack(NULL, f->last.resp_len,
                                                    f->last.resp);
    assert_int_equal(gr->id, 42);
    assert_int_equal(gr->ttl, 2);
    etcdserverpb__lease_grant_response__free_unpacked(gr, NULL);
    assert_int_equal(f->lease_id, 42);
    assert_int_equal(f->lease_ttl, 2);
    assert_int_equal(propose(f, ME, APPLY_LEASE_GRANT, &g.base), 1);
    assert_int_equal(f->last.err, ERR_LEASE_EXISTS);
    g.id = 43;
    g.ttl = 9000000001;
    assert_int_equal(propose(f, ME, APPLY_LEASE_GRANT, &g.base), 1);
    assert_int_equal(f->last.err, ERR_LEASE_TTL_TOO_LARGE);
    assert_int_equal(put(f, "l1", "v", 42, false), 0);
    assert_int_equal(put(f, "l2", "v", 42, false), 0);
    assert_int_equal(kv_rev(f->kv), 3);
    rv.id = 42;
    assert_int_equal(propose(f, ME, APPLY_LEASE_REVOKE, &rv.base), 1);
    assert_int_equal(f->last.err, 0);
    assert_int_equal(f->last.revision, 4);
    assert_int_equal(f->lease_ttl, 0);
    assert_int_equal(propose(f, ME, APPLY_LEASE_REVOKE, &rv.base), 1);
    assert_int_equal(f->last.err, ERR_LEASE_NOT_FOUND);
}

static void an_expiry_after_a_renewal_it_did_not_see_is_skipped(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    Etcdserverpb__LeaseCheckpointRequest cr =
        ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
    Etcdserverpb__LeaseCheckpoint cp = ETCDSERVERPB__LEASE_CHECKPOINT__INIT;
    Etcdserverpb__LeaseCheckpoint *cpp = &cp;
    Cairnpb__LeaseExpire ex = CAIRNPB__LEASE_EXPIRE__INIT;
    g.id = 7;
    g.ttl = 5;
    assert_int_equal(propose(f, ME, APPLY_LEASE_GRANT, &g.base), 1);
    assert_int_equal(put(f, "k", "v", 7, false), 0);
    /* a renewal through the log (R = 0) at the next index */
    cp.id = 7;
    cr.n_checkpoints = 1;
    cr.checkpoints = &cpp;
    assert_int_equal(propose(f, OTHER, APPLY_LEASE_CHECKPOINT, &cr.base), 0);
    uint64_t renewed_at = f->index;
    /* the leader decided before it applied that renewal: skipped */
    ex.id = 7;
    ex.seen_index = renewed_at - 1;
    int64_t rev = kv_rev(f->kv);
    f->lease_ttl = -1;
    assert_int_equal(propose(f, ME, APPLY_LEASE_EXPIRE, &ex.base), 1);
    assert_int_equal(f->last.err, 0);
    assert_int_equal(kv_rev(f->kv), rev); /* nothing deleted */
    assert_int_equal(f->lease_ttl, -1);   /* no revoke reported */
    /* a decision that saw it: the lease and its key go */
    ex.seen_index = renewed_at;
    assert_int_equal(propose(f, ME, APPLY_LEASE_EXPIRE, &ex.base), 1);
    assert_int_equal(f->last.err, 0);
    assert_int_equal(kv_rev(f->kv), rev + 1);
    assert_int_equal(f->lease_ttl, 0);
    /* an expiry of a gone lease answers as a revoke would */
    assert_int_equal(propose(f, ME, APPLY_LEASE_EXPIRE, &ex.base), 1);
    assert_int_equal(f->last.err, ERR_LEASE_NOT_FOUND);
}

static int remaining_of(void *ctx, const struct kv_lease *rec)
{
    int64_t *out = ctx;
    if (rec->id == out[0]) {
        out[1] = rec->remaining_ttl;
    }
    return 0;
}

static int64_t stored_remaining(struct fixture *f, int64_t id)
{
    int64_t v[2] = {id, -1};
    struct kv_read *rd;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_lease_list(rd, remaining_of, v), 0);
    kv_read_end(rd);
    return v[1];
}

/* Seed 19456: a follower's renewal (R = 0) ordered before a checkpoint the
 * leader computed without it; recording that R would let a member rebuilt
 * from the store (restart, snapshot) revoke the lease early as leader. */
static void a_checkpoint_after_a_renewal_it_did_not_see_is_skipped(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    Etcdserverpb__LeaseCheckpointRequest cr =
        ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
    Etcdserverpb__LeaseCheckpoint cp = ETCDSERVERPB__LEASE_CHECKPOINT__INIT;
    Etcdserverpb__LeaseCheckpoint *cpp = &cp;
    g.id = 7;
    g.ttl = 7;
    assert_int_equal(propose(f, ME, APPLY_LEASE_GRANT, &g.base), 1);
    cp.id = 7;
    cr.n_checkpoints = 1;
    cr.checkpoints = &cpp;
    /* the leader's checkpoint, seen everything: recorded */
    cp.remaining_ttl = 6;
    cr.seen_index = f->index;
    assert_int_equal(propose(f, ME, APPLY_LEASE_CHECKPOINT, &cr.base), 1);
    assert_int_equal(f->last.err, 0);
    assert_int_equal(stored_remaining(f, 7), 6);
    /* a follower's renewal through the log */
    uint64_t seen = f->index;
    cp.remaining_ttl = 0;
    cr.seen_index = 0;
    assert_int_equal(propose(f, OTHER, APPLY_LEASE_CHECKPOINT, &cr.base), 0);
    assert_int_equal(stored_remaining(f, 7), 0);
    /* then the leader's R = 5, computed before it applied the renewal */
    cp.remaining_ttl = 5;
    cr.seen_index = seen;
    f->lease_ttl = -1;
    assert_int_equal(propose(f, ME, APPLY_LEASE_CHECKPOINT, &cr.base), 1);
    assert_int_equal(f->last.err, 0);
    assert_int_equal(stored_remaining(f, 7), 0); /* the renewal stays */
    assert_int_equal(f->lease_ttl, -1);          /* not reported */
    /* one that saw the renewal is recorded; seen_index 0 (unknown) too */
    cr.seen_index = f->index;
    assert_int_equal(propose(f, ME, APPLY_LEASE_CHECKPOINT, &cr.base), 1);
    assert_int_equal(stored_remaining(f, 7), 5);
    assert_int_equal(f->lease_ttl, 5);
    cp.remaining_ttl = 4;
    cr.seen_index = 0;
    assert_int_equal(propose(f, ME, APPLY_LEASE_CHECKPOINT, &cr.base), 1);
    assert_int_equal(stored_remaining(f, 7), 4);
}

static void nospace_alarm_refuses_writes_until_disarmed(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__AlarmRequest al = ETCDSERVERPB__ALARM_REQUEST__INIT;
    Etcdserverpb__AlarmResponse *ar;
    Etcdserverpb__DeleteRangeRequest d =
        ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    struct apply_config cfg = f->a.cfg;
    al.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE;
    al.memberid = OTHER;
    al.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
    assert_int_equal(put(f, "a", "1", 0, false), 0);
    assert_int_equal(propose(f, ME, APPLY_ALARM, &al.base), 1);
    ar = etcdserverpb__alarm_response__unpack(NULL, f->last.resp_len,
                                              f->last.resp);
    assert_int_equal(ar->n_alarms, 1);
    assert_int_equal(ar->alarms[0]->memberid, OTHER);
    assert_int_equal(ar->alarms[0]->alarm, ETCDSERVERPB__ALARM_TYPE__NOSPACE);
    etcdserverpb__alarm_response__free_unpacked(ar, NULL);
    assert_int_equal(put(f, "b", "1", 0, false), ERR_NOSPACE);
    d.key.data = (uint8_t *)"a";
    d.key.len = 1;
    assert_int_equal(propose(f, ME, APPLY_DELETE_RANGE, &d.base), 1);
    assert_int_equal(f->last.err, 0); /* deletes still work */
    /* the alarm survives a restart of the applier */
    apply_close(&f->a);
    assert_int_equal(apply_init(&f->a, &cfg), 0);
    assert_true(f->a.nospace);
    al.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE;
    assert_int_equal(propose(f, ME, APPLY_ALARM, &al.base), 1);
    assert_false(f->a.nospace);
    assert_int_equal(put(f, "b", "1", 0, false), 0);
}

static void txn_depth_check_bounds_nesting(void **state)
{
    uint8_t inner[8192];
    uint8_t tmp[8192];
    size_t len = 0;
    (void)state;
    /* Build TxnRequest{success: [RequestOp{request_txn: ...}]} 40 deep. */
    for (int d = 0; d < 40; d++) {
        size_t n = 0;
        /* RequestOp: field 4, the txn */
        tmp[n++] = 4 << 3 | 2;
        n += varint_put(tmp + n, len);
        memcpy(tmp + n, inner, len);
        n += len;
        /* TxnRequest: field 2 (success), the op */
        size_t m = 0;
        inner[m++] = 2 << 3 | 2;
        m += varint_put(inner + m, n);
        memcpy(inner + m, tmp, n);
        len = m + n;
    }
    assert_int_equal(apply_txn_depth_check(inner, len, 64), 0);
    assert_int_equal(apply_txn_depth_check(inner, len, 39), ERR_LIMIT);
    assert_int_equal(apply_txn_depth_check(inner, len - 1, 64),
                     ERR_BAD_REQUEST);
    inner[0] = 0x07; /* wire type 7 does not exist */
    assert_int_equal(apply_txn_depth_check(inner, len, 64), ERR_BAD_REQUEST);
}

static void garbage_entries_advance_the_index_only(void **state)
{
    struct fixture *f = *state;
    struct raft_entry e[2];
    struct apply_hooks h = hooks_of(f);
    uint8_t junk[] = {0xff, 0xff, 0xff, 0x01, 0x02};
    uint64_t idx;
    uint64_t term;
    e[0].index = 1;
    e[0].term = 1;
    e[0].type = RAFT_ENTRY_NORMAL;
    e[0].data = junk;
    e[0].len = sizeof(junk);
    e[1] = e[0];
    e[1].index = 2;
    e[1].type = RAFT_ENTRY_EMPTY;
    e[1].len = 0;
    assert_int_equal(apply_entries(&f->a, e, 2, 1, &h), 0);
    kv_applied(f->kv, &idx, &term);
    assert_int_equal(idx, 2);
    assert_int_equal(kv_rev(f->kv), 1);
    assert_int_equal(f->results, 0);
}

/* ------------------------------------------------- Puts read in place
 * apply_wire.c reads a Put entry without protobuf-c when it is laid out
 * as protobuf-c packs it. Whatever it accepts must read exactly as
 * protobuf-c reads it, and the store must end the same either way. */

/* A random PutRequest: empty or not key and value, leases of every size
 * (negative ones take ten bytes), each bool on or off. */
static void random_put(struct prng *g, Etcdserverpb__PutRequest *p,
                       uint8_t *bytes, size_t cap)
{
    static const int64_t leases[] = {0,   1,         127, 128,
                                     300, INT64_MAX, -1,  INT64_MIN};
    size_t kl = (size_t)prng_below(g, 4) == 0 ? 0 : prng_range(g, 1, 40);
    size_t vl = (size_t)prng_below(g, 3) == 0 ? 0 : prng_range(g, 1, 300);
    assert_true(kl + vl <= cap);
    for (size_t i = 0; i < kl + vl; i++) {
        bytes[i] = (uint8_t)prng_next(g);
    }
    etcdserverpb__put_request__init(p);
    p->key.data = kl > 0 ? bytes : NULL;
    p->key.len = kl;
    p->value.data = vl > 0 ? bytes + kl : NULL;
    p->value.len = vl;
    p->lease = leases[prng_below(g, sizeof(leases) / sizeof(leases[0]))];
    p->prev_kv = prng_chance(g, 1, 2);
    p->ignore_value = prng_chance(g, 1, 4);
    p->ignore_lease = prng_chance(g, 1, 4);
}

static void assert_bytes_equal(const ProtobufCBinaryData *a,
                               const ProtobufCBinaryData *b)
{
    assert_int_equal(a->len, b->len);
    assert_true((a->data == NULL) == (b->data == NULL));
    if (a->len > 0) {
        assert_memory_equal(a->data, b->data, a->len);
    }
}

/* If apply__put_decode takes p[0..len), protobuf-c must read the same.
 * Returns whether it took it. */
static bool wire_agrees(const uint8_t *p, size_t len)
{
    Cairnpb__InternalRequest fast;
    Etcdserverpb__PutRequest put;
    Cairnpb__InternalRequest *slow;
    if (!apply__put_decode(p, len, &fast, &put)) {
        return false;
    }
    slow = cairnpb__internal_request__unpack(NULL, len, p);
    assert_non_null(slow);
    assert_int_equal(slow->id, fast.id);
    assert_int_equal(slow->origin, fast.origin);
    assert_null(slow->audit);
    assert_int_equal(slow->request_case,
                     CAIRNPB__INTERNAL_REQUEST__REQUEST_PUT);
    assert_int_equal(fast.request_case, CAIRNPB__INTERNAL_REQUEST__REQUEST_PUT);
    assert_ptr_equal(fast.put, &put);
    assert_bytes_equal(&slow->put->key, &put.key);
    assert_bytes_equal(&slow->put->value, &put.value);
    assert_int_equal(slow->put->lease, put.lease);
    assert_int_equal(slow->put->prev_kv, put.prev_kv);
    assert_int_equal(slow->put->ignore_value, put.ignore_value);
    assert_int_equal(slow->put->ignore_lease, put.ignore_lease);
    cairnpb__internal_request__free_unpacked(slow, NULL);
    return true;
}

/* If apply_put_read_packed takes the PutRequest p[0..len), protobuf-c must
 * read the same request and pack it back into exactly p. Returns whether
 * it took it. */
static bool packed_agrees(const uint8_t *p, size_t len)
{
    Etcdserverpb__PutRequest put;
    Etcdserverpb__PutRequest *slow;
    uint8_t again[1024];
    if (!apply_put_read_packed(p, len, &put)) {
        return false;
    }
    slow = etcdserverpb__put_request__unpack(NULL, len, p);
    assert_non_null(slow);
    assert_bytes_equal(&slow->key, &put.key);
    assert_bytes_equal(&slow->value, &put.value);
    assert_int_equal(slow->lease, put.lease);
    assert_int_equal(slow->prev_kv, put.prev_kv);
    assert_int_equal(slow->ignore_value, put.ignore_value);
    assert_int_equal(slow->ignore_lease, put.ignore_lease);
    assert_true(etcdserverpb__put_request__get_packed_size(slow) <=
                sizeof(again));
    assert_int_equal(etcdserverpb__put_request__pack(slow, again), len);
    assert_memory_equal(again, p, len);
    etcdserverpb__put_request__free_unpacked(slow, NULL);
    return true;
}

static void put_requests_read_packed_repack_to_the_same_bytes(void **state)
{
    struct prng g;
    uint8_t bytes[400];
    uint8_t req[512];
    uint8_t bad[600];
    int mutated = 0;
    (void)state;
    prng_seed(&g, 13);
    for (int i = 0; i < 3000; i++) {
        Etcdserverpb__PutRequest p;
        random_put(&g, &p, bytes, sizeof(bytes));
        size_t len = etcdserverpb__put_request__pack(&p, req);
        assert_true(packed_agrees(req, len));
        for (int m = 0; m < 20; m++) {
            size_t n = len;
            memcpy(bad, req, n);
            switch (prng_below(&g, 5)) {
            case 0:
                bad[prng_below(&g, n + 1)] ^= (uint8_t)prng_range(&g, 1, 255);
                break;
            case 1:
                bad[prng_below(&g, n + 1)] = (uint8_t)prng_below(&g, 3);
                break;
            case 2:
                n = prng_below(&g, n + 1);
                break;
            case 3: /* an explicit default or a long form: not packed */
                bad[n++] = (uint8_t)(prng_range(&g, 1, 6) << 3);
                bad[n++] = 0;
                break;
            default:
                bad[n++] = (uint8_t)prng_next(&g);
                break;
            }
            mutated += packed_agrees(bad, n) ? 1 : 0;
        }
    }
    assert_true(mutated > 0);
    /* Read, but not as protobuf-c packs: left to protobuf-c. */
    const uint8_t zero_lease[] = {0x0a, 1, 'k', 0x18, 0};
    const uint8_t long_lease[] = {0x0a, 1, 'k', 0x18, 0x81, 0};
    const uint8_t false_bool[] = {0x0a, 1, 'k', 0x20, 0};
    const uint8_t empty_key[] = {0x0a, 0, 0x12, 1, 'v'};
    const uint8_t long_len[] = {0x0a, 0x81, 0, 'k'};
    Etcdserverpb__PutRequest put;
    assert_false(apply_put_read_packed(zero_lease, sizeof(zero_lease), &put));
    assert_false(apply_put_read_packed(long_lease, sizeof(long_lease), &put));
    assert_false(apply_put_read_packed(false_bool, sizeof(false_bool), &put));
    assert_false(apply_put_read_packed(empty_key, sizeof(empty_key), &put));
    assert_false(apply_put_read_packed(long_len, sizeof(long_len), &put));
    assert_true(apply_put_read_packed(NULL, 0, &put)); /* all defaults */
    assert_int_equal(put.key.len, 0);
}

static void put_entries_read_in_place_match_protobuf_c(void **state)
{
    static const uint64_t ids[] = {0, 1, 127, 128, 1ull << 35, UINT64_MAX};
    struct prng g;
    uint8_t bytes[400];
    uint8_t req[512];
    uint8_t bad[600];
    int taken = 0;
    int mutated = 0;
    (void)state;
    prng_seed(&g, 11);
    for (int i = 0; i < 3000; i++) {
        Etcdserverpb__PutRequest p;
        struct buf b;
        random_put(&g, &p, bytes, sizeof(bytes));
        size_t len = etcdserverpb__put_request__pack(&p, req);
        buf_init(&b, 0);
        assert_int_equal(apply_envelope(ids[prng_below(&g, 6)],
                                        ids[prng_below(&g, 6)], APPLY_PUT, req,
                                        len, &b),
                         0);
        /* What our proposers write is always read in place. */
        assert_true(wire_agrees(b.data, b.len));
        taken++;
        /* Corrupted copies: flipped, cut, grown. */
        for (int m = 0; m < 20; m++) {
            size_t n = b.len;
            memcpy(bad, b.data, n);
            switch (prng_below(&g, 4)) {
            case 0:
                bad[prng_below(&g, n)] ^= (uint8_t)prng_range(&g, 1, 255);
                break;
            case 1:
                bad[prng_below(&g, n)] = (uint8_t)prng_next(&g);
                break;
            case 2:
                n = prng_below(&g, n);
                break;
            default:
                bad[n++] = (uint8_t)prng_next(&g);
                break;
            }
            mutated += wire_agrees(bad, n) ? 1 : 0;
        }
        buf_free(&b);
    }
    assert_int_equal(taken, 3000);
    assert_true(mutated > 0); /* some corruptions stay canonical Puts */
}

static void
put_entries_not_in_canonical_form_are_left_to_protobuf_c(void **state)
{
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Cairnpb__AuditRecord rec = CAIRNPB__AUDIT_RECORD__INIT;
    Cairnpb__InternalRequest fast;
    Etcdserverpb__PutRequest put;
    uint8_t req[64];
    struct buf b;
    struct buf extra;
    size_t len;
    (void)state;
    p.key.data = (uint8_t *)"k";
    p.key.len = 1;
    p.value.data = (uint8_t *)"v";
    p.value.len = 1;
    len = etcdserverpb__put_request__pack(&p, req);
    /* An audit record after the request. */
    rec.principal = "u";
    rec.action = "a";
    buf_init(&extra, 0);
    assert_int_equal(apply_audit_field(&rec, &extra), 0);
    buf_init(&b, 0);
    assert_int_equal(apply_envelope_extra(1, 2, APPLY_PUT, req, len, extra.data,
                                          extra.len, &b),
                     0);
    assert_false(apply__put_decode(b.data, b.len, &fast, &put));
    buf_reset(&b);
    /* Another request. */
    assert_int_equal(apply_envelope(1, 2, APPLY_DELETE_RANGE, req, len, &b), 0);
    assert_false(apply__put_decode(b.data, b.len, &fast, &put));
    buf_reset(&b);
    /* The value before the key, and an unknown field. */
    const uint8_t swapped[] = {0x12, 1, 'v', 0x0a, 1, 'k'};
    const uint8_t unknown[] = {0x0a, 1, 'k', 0x78, 0};
    assert_int_equal(
        apply_envelope(1, 2, APPLY_PUT, swapped, sizeof(swapped), &b), 0);
    assert_false(apply__put_decode(b.data, b.len, &fast, &put));
    buf_reset(&b);
    assert_int_equal(
        apply_envelope(1, 2, APPLY_PUT, unknown, sizeof(unknown), &b), 0);
    assert_false(apply__put_decode(b.data, b.len, &fast, &put));
    buf_free(&b);
    buf_free(&extra);
}

/* Apply bytes p[0..len) as the next entry of f. */
static void apply_raw(struct fixture *f, const uint8_t *p, size_t len)
{
    struct apply_hooks h = hooks_of(f);
    struct raft_entry e = {.index = ++f->index,
                           .term = 1,
                           .type = RAFT_ENTRY_NORMAL,
                           .data = (uint8_t *)p,
                           .len = (uint32_t)len};
    assert_int_equal(apply_entries(&f->a, &e, 1, 7, &h), 0);
}

/* p's fields in reverse order plus an unknown field 15: protobuf-c reads
 * the same request, apply_wire.c declines it. */
static size_t put_pack_reversed(const Etcdserverpb__PutRequest *p, uint8_t *out)
{
    size_t n = 0;
    const uint8_t flags[3] = {(uint8_t)p->ignore_lease,
                              (uint8_t)p->ignore_value, (uint8_t)p->prev_kv};
    out[n++] = 0x78; /* field 15, varint 0 */
    out[n++] = 0;
    for (int i = 0; i < 3; i++) {
        if (flags[i]) {
            out[n++] = (uint8_t)((6 - i) << 3);
            out[n++] = 1;
        }
    }
    if (p->lease != 0) {
        out[n++] = 3 << 3;
        n += varint_put(out + n, (uint64_t)p->lease);
    }
    if (p->value.len > 0) {
        out[n++] = 2 << 3 | 2;
        n += varint_put(out + n, p->value.len);
        memcpy(out + n, p->value.data, p->value.len);
        n += p->value.len;
    }
    out[n++] = 1 << 3 | 2;
    n += varint_put(out + n, p->key.len);
    memcpy(out + n, p->key.data, p->key.len);
    return n + p->key.len;
}

static void puts_read_in_place_leave_the_store_as_protobuf_c_does(void **state)
{
    struct fixture *f = *state;
    void *second;
    struct fixture *g2;
    struct prng g;
    uint8_t bytes[400];
    uint8_t req[512];
    Etcdserverpb__LeaseGrantRequest lg =
        ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    assert_int_equal(setup(&second), 0);
    g2 = second;
    lg.id = 300;
    lg.ttl = 60;
    assert_int_equal(propose(f, ME, APPLY_LEASE_GRANT, &lg.base), 1);
    assert_int_equal(propose(g2, ME, APPLY_LEASE_GRANT, &lg.base), 1);
    prng_seed(&g, 12);
    for (int i = 0; i < 400; i++) {
        Etcdserverpb__PutRequest p;
        struct buf b;
        random_put(&g, &p, bytes, sizeof(bytes));
        if (p.key.len > 0) {
            p.key.len = 1 + p.key.len % 2; /* a few keys, overwritten */
            bytes[0] = (uint8_t)('a' + prng_below(&g, 8));
        }
        p.lease = (int64_t[]){0, 0, 300, 301}[prng_below(&g, 4)];
        buf_init(&b, 0);
        size_t len = etcdserverpb__put_request__pack(&p, req);
        assert_int_equal(
            apply_envelope(f->index + 1, ME, APPLY_PUT, req, len, &b), 0);
        apply_raw(f, b.data, b.len);
        buf_reset(&b);
        len = put_pack_reversed(&p, req);
        assert_int_equal(
            apply_envelope(g2->index + 1, ME, APPLY_PUT, req, len, &b), 0);
        assert_false(apply__put_decode(b.data, b.len,
                                       &(Cairnpb__InternalRequest){0},
                                       &(Etcdserverpb__PutRequest){0}));
        apply_raw(g2, b.data, b.len);
        buf_free(&b);
        /* The same answer, byte for byte. */
        assert_int_equal(f->results, g2->results);
        assert_int_equal(f->last.err, g2->last.err);
        assert_int_equal(f->last.revision, g2->last.revision);
        assert_int_equal(f->last.resp_len, g2->last.resp_len);
        assert_memory_equal(f->resp, g2->resp, f->last.resp_len);
        assert_int_equal(f->events, g2->events);
    }
    /* The same store: revision and the hash of every record. */
    struct kv_read *ra;
    struct kv_read *rb;
    uint32_t ha, hb;
    int64_t ca, cb, ra_rev, rb_rev;
    assert_int_equal(kv_rev(f->kv), kv_rev(g2->kv));
    assert_true(kv_rev(f->kv) > 50); /* most puts took effect */
    assert_int_equal(kv_read_begin(f->kv, &ra), 0);
    assert_int_equal(kv_read_begin(g2->kv, &rb), 0);
    assert_int_equal(kv_hash(ra, 0, &ha, &ca, &ra_rev), 0);
    assert_int_equal(kv_hash(rb, 0, &hb, &cb, &rb_rev), 0);
    assert_int_equal(ha, hb);
    assert_int_equal(ra_rev, rb_rev);
    kv_read_end(ra);
    kv_read_end(rb);
    assert_int_equal(teardown(&second), 0);
}

/* ------------------------------------------------------------ audit */

/* As propose (origin ME), with Cairn-only envelope fields x after the
 * request. */
static int propose_extra(struct fixture *f, enum apply_op op,
                         const ProtobufCMessage *msg, const struct buf *x)
{
    uint8_t tmp[4096];
    size_t len = protobuf_c_message_pack(msg, tmp);
    struct buf b;
    struct raft_entry e;
    struct apply_hooks h = hooks_of(f);
    int before = f->results;
    buf_init(&b, 0);
    assert_int_equal(
        apply_envelope_extra(++f->index, ME, op, tmp, len, x->data, x->len, &b),
        0);
    e.index = f->index;
    e.term = 1;
    e.type = RAFT_ENTRY_NORMAL;
    e.data = b.data;
    e.len = (uint32_t)b.len;
    assert_int_equal(apply_entries(&f->a, &e, 1, 7, &h), 0);
    buf_free(&b);
    return f->results - before;
}

/* As propose, with an audit record beside the request. */
static int propose_audit(struct fixture *f, enum apply_op op,
                         const ProtobufCMessage *msg,
                         const Cairnpb__AuditRecord *rec)
{
    struct buf x;
    buf_init(&x, 0);
    assert_int_equal(apply_audit_field(rec, &x), 0);
    int n = propose_extra(f, op, msg, &x);
    buf_free(&x);
    return n;
}

static void audit_rec(Cairnpb__AuditRecord *rec, const char *action)
{
    cairnpb__audit_record__init(rec);
    rec->action = (char *)action;
    rec->ns = "prod";
    rec->target = "shop/app";
    rec->principal = "alice";
    rec->source = "127.0.0.1:5000";
    rec->message = "why \"quoted\"\n";
    rec->version = 3;
    rec->time_ms = 1700000000123;
}

/* The record of seq: its mod_revision (0 when absent) and value. */
static int64_t audit_get(struct fixture *f, uint64_t seq, char *val, size_t cap)
{
    char k[APPLY_AUDIT_KEY_MAX];
    struct kv_read *rd;
    struct kv_range_req q = {0};
    struct kv_range_resp resp;
    struct kv_result res = {0};
    int64_t rev = 0;
    q.key = (const uint8_t *)k;
    q.key_len = apply_audit_key(seq, k, sizeof(k));
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_range(rd, &q, &res, &resp), 0);
    if (resp.kvs_count == 1) {
        rev = resp.kvs[0].mod_revision;
        size_t n =
            resp.kvs[0].value_len < cap ? resp.kvs[0].value_len : cap - 1;
        memcpy(val, resp.kvs[0].value, n);
        val[n] = '\0';
    }
    kv_result_free(&res);
    kv_read_end(rd);
    return rev;
}

static struct apply_audit_verdict audit_verify(struct fixture *f)
{
    struct apply_audit_verdict v;
    struct kv_read *rd;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(apply_audit_verify(rd, &v), 0);
    kv_read_end(rd);
    return v;
}

static void audit_records_join_their_writes_revision(void **state)
{
    struct fixture *f = *state;
    Cairnpb__AuditRecord rec;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;
    Etcdserverpb__Compare *cs[1] = {&c};
    Etcdserverpb__RequestOp o = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *ops[1] = {&o};
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    char val[4096];

    audit_rec(&rec, "config.publish");
    p.key.data = (uint8_t *)"k";
    p.key.len = 1;
    p.value.data = (uint8_t *)"v";
    p.value.len = 1;
    assert_int_equal(propose_audit(f, APPLY_PUT, &p.base, &rec), 1);
    assert_int_equal(f->last.err, 0);
    assert_int_equal(f->last.revision, 2);
    assert_int_equal(audit_get(f, 1, val, sizeof(val)), 2);
    assert_non_null(strstr(val, "{\"seq\":1,\"revision\":2,\"time\":"
                                "\"2023-11-14T22:13:20.123Z\",\"principal\":"
                                "\"alice\""));
    assert_non_null(strstr(val, "\"message\":\"why \\\"quoted\\\"\\u000a\""));
    assert_non_null(strstr(val, ",\"version\":3,\"message\":"));
    assert_int_equal(apply_audit_records(&f->a), 1);

    /* a Txn whose compare fails writes no record and no revision */
    c.key = p.key;
    c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    c.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 99;
    o.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    o.request_put = &p;
    t.n_compare = 1;
    t.compare = cs;
    t.n_success = 1;
    t.success = ops;
    assert_int_equal(propose_audit(f, APPLY_TXN, &t.base, &rec), 1);
    assert_int_equal(kv_rev(f->kv), 2);
    assert_int_equal(audit_get(f, 2, val, sizeof(val)), 0);
    /* it holds: record 2 at the txn's revision 3 */
    c.mod_revision = 2;
    assert_int_equal(propose_audit(f, APPLY_TXN, &t.base, &rec), 1);
    assert_int_equal(f->last.revision, 3);
    assert_int_equal(kv_rev(f->kv), 3);
    assert_int_equal(audit_get(f, 2, val, sizeof(val)), 3);
    /* a lease grant makes no revision: its record makes one of its own */
    g.id = 7;
    g.ttl = 60;
    assert_int_equal(propose_audit(f, APPLY_LEASE_GRANT, &g.base, &rec), 1);
    assert_int_equal(audit_get(f, 3, val, sizeof(val)), 4);

    struct apply_audit_verdict v = audit_verify(f);
    assert_true(v.ok);
    assert_int_equal(v.records, 3);
    assert_int_equal(v.head_seq, 3);
    /* an edit through the KV API breaks the chain at that record */
    char k[APPLY_AUDIT_KEY_MAX];
    audit_get(f, 2, val, sizeof(val));
    p.key.len = apply_audit_key(2, k, sizeof(k));
    p.key.data = (uint8_t *)k;
    p.value.data = (uint8_t *)val;
    p.value.len = strlen(val);
    assert_int_equal(propose(f, ME, APPLY_PUT, &p.base), 1);
    v = audit_verify(f);
    assert_false(v.ok);
    assert_int_equal(v.broken_seq, 2);
}

static void audit_retention_keeps_the_newest_and_anchors_verify(void **state)
{
    struct fixture *f = *state;
    Cairnpb__AuditRecord rec;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    char val[4096];
    audit_rec(&rec, "registry.register");
    rec.keep = 2;
    p.key.data = (uint8_t *)"k";
    p.key.len = 1;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(propose_audit(f, APPLY_PUT, &p.base, &rec), 1);
    }
    assert_int_equal(audit_get(f, 3, val, sizeof(val)), 0);
    assert_int_equal(audit_get(f, 4, val, sizeof(val)), 5);
    assert_int_equal(audit_get(f, 5, val, sizeof(val)), 6);
    struct apply_audit_verdict v = audit_verify(f);
    assert_true(v.ok);
    assert_int_equal(v.first_seq, 4);
    assert_int_equal(v.records, 2);
}

static void a_bad_audit_record_refuses_the_whole_request(void **state)
{
    struct fixture *f = *state;
    Cairnpb__AuditRecord rec;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    struct buf x;
    audit_rec(&rec, "config.publish");
    rec.target = "\xff\xfe"; /* not UTF-8 */
    buf_init(&x, 0);
    assert_int_equal(apply_audit_field(&rec, &x), ERR_BAD_REQUEST);
    assert_int_equal(x.len, 0);
    buf_free(&x);
    /* forged past the proposer's check: apply refuses it the same way */
    uint8_t tmp[256], env[512];
    Cairnpb__InternalRequest ir = CAIRNPB__INTERNAL_REQUEST__INIT;
    p.key.data = (uint8_t *)"k";
    p.key.len = 1;
    ir.id = ++f->index;
    ir.origin = ME;
    ir.request_case = CAIRNPB__INTERNAL_REQUEST__REQUEST_PUT;
    ir.put = &p;
    ir.audit = &rec;
    size_t n = cairnpb__internal_request__pack(&ir, env);
    assert_true(n < sizeof(env));
    (void)tmp;
    struct raft_entry e = {.index = f->index,
                           .term = 1,
                           .type = RAFT_ENTRY_NORMAL,
                           .data = env,
                           .len = (uint32_t)n};
    struct apply_hooks h = hooks_of(f);
    assert_int_equal(apply_entries(&f->a, &e, 1, 7, &h), 0);
    assert_int_equal(f->last.err, ERR_BAD_REQUEST);
    assert_int_equal(kv_rev(f->kv), 1);
}

static void random_kv(struct prng *g, struct kv_kv *kv, uint8_t *key,
                      uint8_t *val)
{
    static const int64_t nums[] = {0, 1, 127, 128, 300, 1 << 21, INT64_MAX, -1};
    memset(kv, 0, sizeof(*kv));
    kv->key_len = prng_below(g, 40);
    kv->value_len = prng_chance(g, 1, 4) ? 0 : prng_below(g, 400);
    for (size_t i = 0; i < kv->key_len; i++) {
        key[i] = (uint8_t)prng_below(g, 256);
    }
    for (size_t i = 0; i < kv->value_len; i++) {
        val[i] = (uint8_t)prng_below(g, 256);
    }
    kv->key = key;
    kv->value = val;
    kv->create_revision = nums[prng_below(g, 8)];
    kv->mod_revision = nums[prng_below(g, 8)];
    kv->version = nums[prng_below(g, 8)];
    kv->lease = nums[prng_below(g, 8)];
}

static void to_pb(const struct kv_kv *kv, Mvccpb__KeyValue *out)
{
    mvccpb__key_value__init(out);
    out->key.data = (uint8_t *)kv->key;
    out->key.len = kv->key_len;
    out->value.data = (uint8_t *)kv->value;
    out->value.len = kv->value_len;
    out->create_revision = kv->create_revision;
    out->mod_revision = kv->mod_revision;
    out->version = kv->version;
    out->lease = kv->lease;
}

/* A watch response built from apply_watch_head and one record per event
 * (what api_watch.c sends, each event encoded once for every watcher) is
 * byte for byte what protobuf-c packs for the same WatchResponse. */
static void watch_responses_from_parts_match_protobuf_c(void **state)
{
    static const uint64_t ids[] = {0, 1, 0x8e0c5b1b5d1f2a3bULL, 127};
    static const int64_t wids[] = {0, 1, 5000, INT64_MAX, -1};
    struct prng g;
    struct buf got;
    (void)state;
    prng_seed(&g, 29);
    buf_init(&got, 0);
    for (int round = 0; round < 2000; round++) {
        enum { N = 6 };
        uint8_t keys[2 * N][40];
        uint8_t vals[2 * N][400];
        struct kv_event ev[N];
        Mvccpb__KeyValue kvs[2 * N];
        Mvccpb__Event pev[N];
        Mvccpb__Event *pevp[N];
        size_t n = prng_below(&g, N) + 1;
        Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        uint8_t head[APPLY_WATCH_HEAD_MAX];
        h.cluster_id = ids[prng_below(&g, 4)];
        h.member_id = ids[prng_below(&g, 4)];
        h.revision = (int64_t)prng_below(&g, 1u << 30);
        h.raft_term = ids[prng_below(&g, 4)];
        r.header = &h;
        r.watch_id = wids[prng_below(&g, 5)];
        r.fragment = prng_chance(&g, 1, 3);
        r.cancel_reason = (char *)"";
        buf_reset(&got);
        assert_int_equal(
            buf_append(&got, head,
                       apply_watch_head(head, h.cluster_id, h.member_id,
                                        h.revision, h.raft_term, r.watch_id,
                                        r.fragment)),
            0);
        for (size_t i = 0; i < n; i++) {
            memset(&ev[i], 0, sizeof(ev[i]));
            ev[i].type = prng_chance(&g, 1, 3) ? KV_EVENT_DELETE : KV_EVENT_PUT;
            random_kv(&g, &ev[i].kv, keys[2 * i], vals[2 * i]);
            ev[i].has_prev = prng_chance(&g, 1, 2);
            if (ev[i].has_prev) {
                random_kv(&g, &ev[i].prev, keys[2 * i + 1], vals[2 * i + 1]);
            }
            mvccpb__event__init(&pev[i]);
            pev[i].type = ev[i].type == KV_EVENT_DELETE
                              ? MVCCPB__EVENT__EVENT_TYPE__DELETE
                              : MVCCPB__EVENT__EVENT_TYPE__PUT;
            to_pb(&ev[i].kv, &kvs[2 * i]);
            pev[i].kv = &kvs[2 * i];
            if (ev[i].has_prev) {
                to_pb(&ev[i].prev, &kvs[2 * i + 1]);
                pev[i].prev_kv = &kvs[2 * i + 1];
            }
            pevp[i] = &pev[i];
            size_t before = got.len;
            assert_int_equal(apply_watch_event_encode(&ev[i], &got), 0);
            assert_int_equal(got.len - before, apply_watch_event_size(&ev[i]));
        }
        r.n_events = n;
        r.events = pevp;
        size_t want_len = etcdserverpb__watch_response__get_packed_size(&r);
        uint8_t *want = malloc(want_len);
        assert_non_null(want);
        assert_int_equal(etcdserverpb__watch_response__pack(&r, want),
                         want_len);
        assert_int_equal(got.len, want_len);
        assert_memory_equal(got.data, want, want_len);
        free(want);
    }
    buf_free(&got);
}

/* ------------------------------------------------------- lease first */

/* As propose, with a lease to grant first (InternalRequest.lease_first). */
static int propose_leased(struct fixture *f, enum apply_op op,
                          const ProtobufCMessage *msg, int64_t id, int64_t ttl)
{
    struct buf x;
    buf_init(&x, 0);
    assert_int_equal(apply_lease_first_field(id, ttl, &x), 0);
    int n = propose_extra(f, op, msg, &x);
    buf_free(&x);
    return n;
}

static int count_lease(void *ctx, const struct kv_lease *l)
{
    (void)l;
    (*(int *)ctx)++;
    return 0;
}

/* How many leases the store holds; *ttl: lease id's granted TTL (0: none). */
static int leases_in_store(struct fixture *f, int64_t id, int64_t *ttl)
{
    struct kv_read *rd;
    struct kv_lease l;
    int n = 0;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_lease_list(rd, count_lease, &n), 0);
    *ttl = kv_lease_get(rd, id, &l) == 0 ? l.ttl : 0;
    kv_read_end(rd);
    return n;
}

static void a_lease_first_is_granted_with_its_write_or_not_at_all(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__RangeRequest rg = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__Compare c = ETCDSERVERPB__COMPARE__INIT;
    Etcdserverpb__Compare *cs[1] = {&c};
    Etcdserverpb__RequestOp ok = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp ko = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *oks[1] = {&ok};
    Etcdserverpb__RequestOp *kos[1] = {&ko};
    Etcdserverpb__LeaseRevokeRequest rv =
        ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    Etcdserverpb__TxnResponse *tr;
    int64_t ttl;

    /* a Put under the lease it grants: one request, one revision */
    p.key.data = (uint8_t *)"/registry/a/services/s/i1";
    p.key.len = strlen((char *)p.key.data);
    p.value.data = (uint8_t *)"{}";
    p.value.len = 2;
    p.lease = 41;
    assert_int_equal(propose_leased(f, APPLY_PUT, &p.base, 41, 1), 1);
    assert_int_equal(f->last.err, 0);
    assert_int_equal(f->last.revision, 2);
    assert_int_equal(kv_rev(f->kv), 2);
    assert_int_equal(leases_in_store(f, 41, &ttl), 1);
    assert_int_equal(ttl, 2); /* raised to the minimum, as LeaseGrant's */
    assert_int_equal(f->lease_id, 41);
    assert_int_equal(f->lease_ttl, 2);
    /* the answer is the Put's */
    Etcdserverpb__PutResponse *pr =
        etcdserverpb__put_response__unpack(NULL, f->last.resp_len, f->resp);
    assert_non_null(pr);
    assert_int_equal(pr->header->revision, 2);
    etcdserverpb__put_response__free_unpacked(pr, NULL);
    /* the key is the lease's: revoking it deletes the key */
    rv.id = 41;
    assert_int_equal(propose(f, ME, APPLY_LEASE_REVOKE, &rv.base), 1);
    assert_int_equal(f->last.err, 0);
    assert_int_equal(kv_rev(f->kv), 3);
    assert_int_equal(leases_in_store(f, 41, &ttl), 0);

    /* a Txn whose compare fails: its read answers, the lease is revoked
     * again in the same request, no revision */
    p.lease = 42;
    c.key = p.key;
    c.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    c.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    c.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c.mod_revision = 99;
    ok.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    ok.request_put = &p;
    rg.key = p.key;
    ko.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    ko.request_range = &rg;
    t.n_compare = 1;
    t.compare = cs;
    t.n_success = 1;
    t.success = oks;
    t.n_failure = 1;
    t.failure = kos;
    assert_int_equal(propose_leased(f, APPLY_TXN, &t.base, 42, 30), 1);
    assert_int_equal(f->last.err, 0);
    tr = etcdserverpb__txn_response__unpack(NULL, f->last.resp_len, f->resp);
    assert_non_null(tr);
    assert_false(tr->succeeded);
    assert_int_equal(tr->header->revision, 3);
    etcdserverpb__txn_response__free_unpacked(tr, NULL);
    assert_int_equal(kv_rev(f->kv), 3);
    assert_int_equal(leases_in_store(f, 42, &ttl), 0);
    assert_int_equal(f->lease_id, 42);
    assert_int_equal(f->lease_ttl, 0); /* the timers were told it went */

    /* the compare holds (absent: mod_revision 0): written under the lease */
    c.mod_revision = 0;
    assert_int_equal(propose_leased(f, APPLY_TXN, &t.base, 42, 30), 1);
    assert_int_equal(f->last.err, 0);
    tr = etcdserverpb__txn_response__unpack(NULL, f->last.resp_len, f->resp);
    assert_non_null(tr);
    assert_true(tr->succeeded);
    assert_int_equal(tr->header->revision, 4);
    etcdserverpb__txn_response__free_unpacked(tr, NULL);
    assert_int_equal(leases_in_store(f, 42, &ttl), 1);
    assert_int_equal(ttl, 30);

    /* an ID in use: ERR_LEASE_EXISTS, nothing written */
    p.lease = 42;
    assert_int_equal(propose_leased(f, APPLY_PUT, &p.base, 42, 30), 1);
    assert_int_equal(f->last.err, ERR_LEASE_EXISTS);
    assert_int_equal(kv_rev(f->kv), 4);

    /* a refused Put (its lease is another, unknown one): the granted
     * lease goes again */
    p.lease = 777;
    assert_int_equal(propose_leased(f, APPLY_PUT, &p.base, 43, 30), 1);
    assert_int_equal(f->last.err, ERR_LEASE_NOT_FOUND);
    assert_int_equal(leases_in_store(f, 43, &ttl), 1); /* only 42 */
    assert_int_equal(ttl, 0);
    assert_int_equal(kv_rev(f->kv), 4);

    /* refused whole: a failure branch that writes, another request, an
     * ID <= 0 */
    p.lease = 44;
    ko.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    ko.request_put = &p;
    c.mod_revision = 99;
    assert_int_equal(propose_leased(f, APPLY_TXN, &t.base, 44, 30), 1);
    assert_int_equal(f->last.err, ERR_BAD_REQUEST);
    rv.id = 42;
    assert_int_equal(propose_leased(f, APPLY_LEASE_REVOKE, &rv.base, 44, 30),
                     1);
    assert_int_equal(f->last.err, ERR_BAD_REQUEST);
    p.lease = 0;
    assert_int_equal(propose_leased(f, APPLY_PUT, &p.base, 0, 30), 1);
    assert_int_equal(f->last.err, ERR_BAD_REQUEST);
    assert_int_equal(leases_in_store(f, 44, &ttl), 1);
    assert_int_equal(ttl, 0);
    assert_int_equal(kv_rev(f->kv), 4);
}

/* A member's published level is kept after its client URLs, where readers
 * that predate levels stop; a member acting as such a binary keeps none. */
static void member_levels_are_kept_after_the_urls(void **state)
{
    struct fixture *f = *state;
    Cairnpb__MemberAttributes a = CAIRNPB__MEMBER_ATTRIBUTES__INIT;
    char *urls[1] = {"http://127.0.0.1:2379"};
    uint8_t name[12];
    const void *v;
    size_t vlen;
    struct kv_read *rd;
    a.id = 0x77;
    a.name = "m7";
    a.n_client_urls = 1;
    a.client_urls = urls;
    a.apply_level = APPLY_LEVEL;
    be64_put(name, 0x77);
    memcpy(name + 8, "attr", 4);
    assert_int_equal(propose(f, ME, APPLY_MEMBER_ATTR, &a.base), 1);
    assert_int_equal(f->last.err, 0);
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(
        kv_aux_get(rd, KV_AUX_CLUSTER, name, sizeof(name), &v, &vlen), 0);
    /* u16 2 "m7" u16 21 urls u32 level */
    assert_int_equal(vlen, 2 + 2 + 2 + 21 + 4);
    assert_memory_equal((const uint8_t *)v + 2 + 2 + 2 + 21, "\0\0\0\2", 4);
    kv_read_end(rd);

    /* no level: the record ends at the URLs, as before levels */
    a.apply_level = 0;
    assert_int_equal(propose(f, ME, APPLY_MEMBER_ATTR, &a.base), 1);
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(
        kv_aux_get(rd, KV_AUX_CLUSTER, name, sizeof(name), &v, &vlen), 0);
    assert_int_equal(vlen, 2 + 2 + 2 + 21);
    kv_read_end(rd);

    /* applied as a binary before levels (cfg.level 1): none kept */
    struct apply_config cfg = f->a.cfg;
    apply_close(&f->a);
    cfg.level = 1;
    assert_int_equal(apply_init(&f->a, &cfg), 0);
    a.apply_level = APPLY_LEVEL;
    assert_int_equal(propose(f, ME, APPLY_MEMBER_ATTR, &a.base), 1);
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(
        kv_aux_get(rd, KV_AUX_CLUSTER, name, sizeof(name), &v, &vlen), 0);
    assert_int_equal(vlen, 2 + 2 + 2 + 21);
    kv_read_end(rd);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(put_response_decodes_with_header_and_prev_kv),
        T(entries_from_other_members_apply_without_results),
        T(replayed_entries_are_skipped),
        T(range_response_matches_etcd_fields),
        T(txn_inner_headers_follow_etcd_revisions),
        T(request_errors_reach_the_proposer),
        T(leases_grant_attach_and_revoke_in_one_revision),
        T(nospace_alarm_refuses_writes_until_disarmed),
        T(txn_depth_check_bounds_nesting),
        T(garbage_entries_advance_the_index_only),
        T(put_entries_read_in_place_match_protobuf_c),
        T(put_requests_read_packed_repack_to_the_same_bytes),
        T(put_entries_not_in_canonical_form_are_left_to_protobuf_c),
        T(puts_read_in_place_leave_the_store_as_protobuf_c_does),
        T(repeated_proposals_apply_once),
        T(an_expiry_after_a_renewal_it_did_not_see_is_skipped),
        T(a_checkpoint_after_a_renewal_it_did_not_see_is_skipped),
        T(audit_records_join_their_writes_revision),
        T(audit_retention_keeps_the_newest_and_anchors_verify),
        T(a_bad_audit_record_refuses_the_whole_request),
        T(watch_responses_from_parts_match_protobuf_c),
        T(a_lease_first_is_granted_with_its_write_or_not_at_all),
        T(member_levels_are_kept_after_the_urls),
    };
    return cmocka_run_group_tests_name("apply", tests, NULL, NULL);
}

/*
 * api.c - the etcd v3 services, shared by the gRPC front end and the JSON
 * gateway.
 *
 * Writes (Put, DeleteRange, writing Txn, Compact, LeaseGrant, LeaseRevoke,
 * Alarm) are proposed through Raft with the client's request bytes inside
 * the envelope; the member that proposed gets the encoded response from the
 * applier (consensus/apply). Linearizable reads wait for a ReadIndex point,
 * then run on a store read handle here, on the loop thread; serializable
 * reads skip the wait. Everything else (Status, MemberList, hashes) is
 * answered from local state, as etcd does.
 */
#include "registry/server/api_int.h"
#include "registry/server/api_auth.h"
#include "registry/server/api_lock.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"
#include "consensus/apply/apply.h"
#include "proto/health.pb-c.h"
#include "proto/rpc.pb-c.h"

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

/* LeaseTimeToLive reads the lease timers: registry/server/api_lease.c. */
int api__lease_ttl_fn(struct api_op *op, const ProtobufCMessage *req);

/* ----------------------------------------------------------- op lifetime */

void api__op_maybe_free(struct api_op *op)
{
    if (op->finished && op->async_refs == 0) {
        if (op->owned != NULL) {
            protobuf_c_message_free_unpacked(op->owned, &pb_allocator);
        }
        buf_free(&op->extra);
        mem_free(op);
    }
}

/* Answer once. After this the op may be freed. */
void api__finish(struct api_op *op, int err, const uint8_t *resp, size_t len)
{
    if (op->finished) {
        return;
    }
    op->finished = true;
    if (op->start_ns != 0) {
        uint64_t d = clock_mono_ns() - op->start_ns;
        size_t i = 0;
        while (i + 1 < SERVER_LATENCY_BUCKETS && d > (500000ull << i)) {
            i++;
        }
        op->s->api_latency.buckets[i]++;
        op->s->api_latency.count++;
        op->s->api_latency.sum_ns += d;
    }
    if (!op->canceled) {
        op->done(op->ctx, err, resp, len);
    }
}

/* Answer with a protobuf-c message (packed here). */
void api__finish_msg(struct api_op *op, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *p = mem_alloc(len == 0 ? 1 : len);
    if (p == NULL) {
        api__finish(op, -ENOMEM, NULL, 0);
        return;
    }
    protobuf_c_message_pack(msg, p);
    api__finish(op, 0, p, len);
    mem_free(p);
}

void api_cancel(struct api_op *op)
{
    op->canceled = true;
    if (op->finished) {
        api__op_maybe_free(op);
    }
}

const char api_token_internal[] = "";

struct api_op *api_call(struct server *s, const struct api_method *m,
                        const uint8_t *req, size_t len, uint32_t timeout_ms,
                        api_done_fn done, void *ctx)
{
    return api_call_auth(s, m, req, len, timeout_ms, NULL, done, ctx);
}

struct api_op *api_call_auth(struct server *s, const struct api_method *m,
                             const uint8_t *req, size_t len,
                             uint32_t timeout_ms, const char *token,
                             api_done_fn done, void *ctx)
{
    return api_call_audit(s, m, req, len, timeout_ms, token, NULL, done, ctx);
}

static char *str_or_empty(const char *s)
{
    return (char *)(s != NULL ? s : "");
}

/* The audit field for op's proposal: the front end's record, stamped with
 * this member's clock and retention (the applier uses both as given, so
 * every member stores the same). */
static int audit_attach(struct api_op *op, const struct api_audit *au)
{
    Cairnpb__AuditRecord rec = CAIRNPB__AUDIT_RECORD__INIT;
    rec.action = str_or_empty(au->action);
    rec.ns = str_or_empty(au->ns);
    rec.target = str_or_empty(au->target);
    rec.principal = str_or_empty(au->principal);
    rec.source = str_or_empty(au->source);
    rec.version = au->version;
    rec.message = str_or_empty(au->message);
    rec.time_ms = (int64_t)clock_wall_ms();
    rec.keep = op->s->opt->audit_retention_records;
    return apply_audit_field(&rec, &op->extra);
}

static struct api_op *
call_start(struct server *s, const struct api_method *m, const uint8_t *req,
           size_t len, uint32_t timeout_ms, const char *token,
           const char *cert_user, const struct api_audit *audit,
           const struct api_lease_first *lease, api_done_fn done, void *ctx);

struct api_op *api_call_audit(struct server *s, const struct api_method *m,
                              const uint8_t *req, size_t len,
                              uint32_t timeout_ms, const char *token,
                              const struct api_audit *audit, api_done_fn done,
                              void *ctx)
{
    return call_start(s, m, req, len, timeout_ms, token, NULL, audit, NULL,
                      done, ctx);
}

struct api_op *api_call_as(struct server *s, const struct api_method *m,
                           const uint8_t *req, size_t len, uint32_t timeout_ms,
                           const char *token, const char *cert_user,
                           const struct api_audit *audit, api_done_fn done,
                           void *ctx)
{
    return call_start(s, m, req, len, timeout_ms, token, cert_user, audit, NULL,
                      done, ctx);
}

struct api_op *api_call_leased(struct server *s, const struct api_method *m,
                               const uint8_t *req, size_t len,
                               uint32_t timeout_ms, const char *token,
                               const char *cert_user,
                               const struct api_audit *audit,
                               const struct api_lease_first *lease,
                               api_done_fn done, void *ctx)
{
    ASSERT(lease != NULL);
    return call_start(s, m, req, len, timeout_ms, token, cert_user, audit,
                      lease, done, ctx);
}

bool api_can_lease_first(struct server *s)
{
    return s->node != NULL &&
           node_apply_level(s->node, APPLY_LEVEL_LEASE_FIRST);
}

int64_t api_lease_id_pick(struct server *s)
{
    int64_t id = (int64_t)(s->lease_id_next++ & INT64_MAX);
    if (id == 0) {
        id = (int64_t)(s->lease_id_next++ & INT64_MAX);
    }
    return id;
}

struct api_op *api_call_cert(struct server *s, const struct api_method *m,
                             const uint8_t *req, size_t len,
                             uint32_t timeout_ms, const char *cert_user,
                             api_done_fn done, void *ctx)
{
    return call_start(s, m, req, len, timeout_ms, NULL, cert_user, NULL, NULL,
                      done, ctx);
}

/* Append lease's envelope field to op's extra fields (after the audit
 * record's, if any). Only a Put or a writing Txn whose failure branch only
 * reads may carry one (apply refuses anything else the same way). */
static int lease_attach(struct api_op *op, const ProtobufCMessage *pb,
                        const struct api_lease_first *lease)
{
    if (lease->id <= 0) {
        return ERR_BAD_REQUEST;
    }
    if (lease->ttl > APPLY_LEASE_TTL_MAX) {
        return ERR_LEASE_TTL_TOO_LARGE;
    }
    if (op->m->req_desc == &etcdserverpb__txn_request__descriptor) {
        const Etcdserverpb__TxnRequest *t =
            (const Etcdserverpb__TxnRequest *)pb;
        if (!apply_txn_writes(t) || !apply_lease_first_txn_ok(t)) {
            return ERR_BAD_REQUEST; /* a read, or a failure that writes */
        }
    } else if (op->m->req_desc != &etcdserverpb__put_request__descriptor) {
        return ERR_BAD_REQUEST;
    }
    return apply_lease_first_field(lease->id, lease->ttl, &op->extra);
}

static struct api_op *
call_start(struct server *s, const struct api_method *m, const uint8_t *req,
           size_t len, uint32_t timeout_ms, const char *token,
           const char *cert_user, const struct api_audit *audit,
           const struct api_lease_first *lease, api_done_fn done, void *ctx)
{
    struct api_op *op = mem_calloc(1, sizeof(*op));
    ProtobufCMessage *pb = NULL;
    Etcdserverpb__PutRequest put;
    int rc;
    if (op == NULL) {
        done(ctx, -ENOMEM, NULL, 0);
        return NULL;
    }
    op->s = s;
    buf_init(&op->extra, 0);
    op->m = m;
    op->done = done;
    op->ctx = ctx;
    op->timeout_ms = timeout_ms;
    op->start_ns = clock_mono_ns();
    if (s->stopping) {
        api__finish(op, ERR_STOPPED, NULL, 0);
        api__op_maybe_free(op);
        return NULL;
    }
    if (m->raw && m->req_desc == &etcdserverpb__txn_request__descriptor) {
        rc = apply_txn_depth_check(req, len,
                                   (int)limits_default(LIMIT_TXN_DEPTH));
        if (rc != 0) {
            api__finish(op, rc == ERR_LIMIT ? ERR_TOO_MANY_OPS : ERR_UNMARSHAL,
                        NULL, 0);
            api__op_maybe_free(op);
            return NULL;
        }
    }
    if (m->req_desc == &etcdserverpb__put_request__descriptor &&
        apply_put_read_packed(req, len, &put)) {
        /* Read in place, pointing into req: fn proposes req itself
         * (propose), and nothing keeps put past fn. */
        pb = &put.base;
        op->packed_msg = pb;
        op->packed = req;
        op->packed_len = len;
    } else {
        pb = protobuf_c_message_unpack(m->req_desc, &pb_allocator, len, req);
        if (pb == NULL) {
            /* grpc-go's answer to bytes it cannot decode: INTERNAL */
            api__finish(op, ERR_UNMARSHAL, NULL, 0);
            api__op_maybe_free(op);
            return NULL;
        }
        op->owned = pb;
    }
    op->token = token;
    op->cert_user = token == NULL ? cert_user : NULL;
    rc = api_auth_check(op, pb);
    if (rc == 0 && audit != NULL) {
        rc = audit_attach(op, audit);
    }
    if (rc == 0 && lease != NULL) {
        rc = lease_attach(op, pb, lease);
    }
    if (rc != 0) {
        api__finish(op, rc, NULL, 0);
        api__op_maybe_free(op);
        return NULL;
    }
    op->async_refs++; /* held across fn so a synchronous answer is safe */
    rc = m->fn(op, pb);
    op->async_refs--;
    op->packed_msg = NULL; /* req and put die here */
    op->packed = NULL;
    if (rc != 0) {
        api__finish(op, rc, NULL, 0);
    }
    if (op->finished) {
        api__op_maybe_free(op);
        return NULL;
    }
    return op;
}

/* ---------------------------------------------------------------- helpers */

uint64_t api__term_now(struct server *s)
{
    return node_term(s->node);
}

void api__fill_header(struct server *s, Etcdserverpb__ResponseHeader *h,
                      int64_t rev)
{
    h->cluster_id = node_cluster_id(s->node);
    h->member_id = s->member_id;
    h->revision = rev;
    h->raft_term = node_term(s->node);
}

static void nospace_done(void *ctx, const struct apply_result *res)
{
    (void)ctx;
    (void)res; /* refused or lost: the next refused write asks again */
}

/* A write the store refused for --quota-backend-bytes raises this
 * member's NOSPACE alarm, as etcd's quota check does before it answers
 * "database space exceeded"; then every member refuses writes at once
 * (apply's nospace) until an operator frees space and disarms it. At most
 * one proposal a second. */
static void raise_nospace(struct server *s)
{
    uint64_t now = uv_now(s->loop);
    Etcdserverpb__AlarmRequest req = ETCDSERVERPB__ALARM_REQUEST__INIT;
    uint8_t buf[64];
    size_t len;
    if (s->node == NULL ||
        (s->nospace_raised_ms != 0 && now - s->nospace_raised_ms < 1000)) {
        return;
    }
    s->nospace_raised_ms = now;
    req.action = ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE;
    req.memberid = s->member_id;
    req.alarm = ETCDSERVERPB__ALARM_TYPE__NOSPACE;
    len = etcdserverpb__alarm_request__get_packed_size(&req);
    ASSERT(len <= sizeof(buf));
    etcdserverpb__alarm_request__pack(&req, buf);
    if (node_propose(s->node, APPLY_ALARM, buf, len, 0, nospace_done, NULL) !=
        0) {
        s->nospace_raised_ms = 0;
    }
    LOGW("api", "a write exceeded --quota-backend-bytes: raising the NOSPACE "
                "alarm (writes are refused until it is disarmed)");
}

/* After a write is applied: the applier encoded the response already. */
static void on_proposed(void *ctx, const struct apply_result *res)
{
    struct api_op *op = ctx;
    op->async_refs--;
    if (res->err == ERR_NOSPACE) {
        raise_nospace(op->s);
    }
    api__finish(op, res->err, res->resp, res->resp_len);
    api__op_maybe_free(op);
}

static int propose_bytes(struct api_op *op, enum apply_op kind,
                         const uint8_t *p, size_t len)
{
    int rc;
    op->async_refs++;
    rc = node_propose_extra(op->s->node, kind, p, len, op->extra.data,
                            op->extra.len, op->timeout_ms, on_proposed, op);
    if (rc != 0) {
        op->async_refs--;
    }
    return rc;
}

static int propose(struct api_op *op, enum apply_op kind,
                   const ProtobufCMessage *req)
{
    if (req == op->packed_msg) {
        return propose_bytes(op, kind, op->packed, op->packed_len);
    }
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t stack[4096];
    uint8_t *p = len <= sizeof(stack) ? stack : mem_alloc(len);
    int rc;
    if (p == NULL) {
        return -ENOMEM;
    }
    /* Re-packing a decoded message gives the same bytes a client sent for
     * every field we know; it also drops unknown fields. */
    protobuf_c_message_pack(req, p);
    rc = propose_bytes(op, kind, p, len);
    if (p != stack) {
        mem_free(p);
    }
    return rc;
}

/* ------------------------------------------------------------------ KV */

static int serve_range(struct api_op *op)
{
    const Etcdserverpb__RangeRequest *r =
        (const Etcdserverpb__RangeRequest *)op->owned;
    struct kv_read *rd;
    struct buf out;
    int rc = node_read_begin(op->s->node, &rd);
    if (rc != 0) {
        return rc;
    }
    buf_init(&out, 0);
    rc =
        apply_range(node_apply(op->s->node), rd, r, api__term_now(op->s), &out);
    node_read_end(op->s->node, rd);
    if (rc == 0) {
        api__finish(op, 0, out.data, out.len);
    }
    buf_free(&out);
    return rc;
}

static int serve_txn_read(struct api_op *op)
{
    const Etcdserverpb__TxnRequest *t =
        (const Etcdserverpb__TxnRequest *)op->owned;
    struct kv_read *rd;
    struct buf out;
    int rc = node_read_begin(op->s->node, &rd);
    if (rc != 0) {
        return rc;
    }
    buf_init(&out, 0);
    rc = apply_txn_read(node_apply(op->s->node), rd, t, api__term_now(op->s),
                        &out);
    node_read_end(op->s->node, rd);
    if (rc == 0) {
        api__finish(op, 0, out.data, out.len);
    }
    buf_free(&out);
    return rc;
}

static void on_read_point(void *ctx, int err)
{
    struct api_op *op = ctx;
    op->async_refs--;
    if (err == 0 && !op->canceled) {
        err = op->serve(op);
    }
    if (err != 0 || op->canceled) {
        api__finish(op, err != 0 ? err : ERR_CANCELED, NULL, 0);
    }
    api__op_maybe_free(op);
}

int api__read_linearizable(struct api_op *op, api_serve_fn serve)
{
    int rc;
    op->serve = serve;
    op->async_refs++;
    rc = node_read_index(op->s->node, op->timeout_ms, on_read_point, op);
    if (rc != 0) {
        op->async_refs--;
    }
    return rc;
}

static int kv_range_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__RangeRequest *r =
        (const Etcdserverpb__RangeRequest *)req;
    if (r->key.len == 0) {
        return ERR_KEY_NOT_PROVIDED;
    }
    if (r->serializable) {
        return serve_range(op);
    }
    return api__read_linearizable(op, serve_range);
}

static int kv_put_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__PutRequest *r = (const Etcdserverpb__PutRequest *)req;
    if (r->key.len == 0) {
        return ERR_KEY_NOT_PROVIDED;
    }
    if (r->key.len > KV_KEY_BYTES_MAX) {
        return ERR_KEY_TOO_LARGE; /* apply would refuse it: no proposal */
    }
    if (r->ignore_value && r->value.len != 0) {
        return ERR_VALUE_PROVIDED;
    }
    if (r->ignore_lease && r->lease != 0) {
        return ERR_LEASE_PROVIDED;
    }
    if (node_nospace(op->s->node)) {
        return ERR_NOSPACE; /* refused before Raft, as etcd's quota check */
    }
    return propose(op, APPLY_PUT, req);
}

static int kv_delete_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__DeleteRangeRequest *r =
        (const Etcdserverpb__DeleteRangeRequest *)req;
    if (r->key.len == 0) {
        return ERR_KEY_NOT_PROVIDED;
    }
    return propose(op, APPLY_DELETE_RANGE, req);
}

static int kv_txn_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__TxnRequest *t = (const Etcdserverpb__TxnRequest *)req;
    if (!apply_txn_writes(t)) {
        return api__read_linearizable(op, serve_txn_read);
    }
    if (node_nospace(op->s->node)) {
        return ERR_NOSPACE; /* apply would refuse it: no proposal */
    }
    return propose(op, APPLY_TXN, req);
}

static int kv_compact_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, APPLY_COMPACTION, req);
}

/* ---------------------------------------------------------------- Lease */

static int lease_grant_fn(struct api_op *op, const ProtobufCMessage *req)
{
    Etcdserverpb__LeaseGrantRequest *r = (Etcdserverpb__LeaseGrantRequest *)req;
    if (r->ttl > APPLY_LEASE_TTL_MAX) {
        return ERR_LEASE_TTL_TOO_LARGE;
    }
    if (node_nospace(op->s->node)) {
        return ERR_NOSPACE; /* apply would refuse it: no proposal */
    }
    if (r->id == 0) {
        /* etcd picks a positive 63-bit id from the member's generator. */
        r->id = api_lease_id_pick(op->s);
    }
    return propose(op, APPLY_LEASE_GRANT, req);
}

static int lease_revoke_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, APPLY_LEASE_REVOKE, req);
}

struct lease_list {
    Etcdserverpb__LeaseStatus *v;
    Etcdserverpb__LeaseStatus **p;
    size_t count;
    size_t cap;
    int err;
};

static int collect_lease(void *ctx, const struct kv_lease *l)
{
    struct lease_list *ll = ctx;
    if (ll->count == ll->cap) {
        size_t cap = ll->cap == 0 ? 16 : ll->cap * 2;
        Etcdserverpb__LeaseStatus *v = mem_realloc(ll->v, cap * sizeof(*v));
        if (v == NULL) {
            ll->err = -ENOMEM;
            return 1;
        }
        ll->v = v;
        ll->cap = cap;
    }
    etcdserverpb__lease_status__init(&ll->v[ll->count]);
    ll->v[ll->count++].id = l->id;
    return 0;
}

static int lease_leases_fn(struct api_op *op, const ProtobufCMessage *req)
{
    Etcdserverpb__LeaseLeasesResponse resp =
        ETCDSERVERPB__LEASE_LEASES_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct lease_list ll = {0};
    struct kv_read *rd;
    int rc;
    (void)req;
    rc = node_read_begin(op->s->node, &rd);
    if (rc != 0) {
        return rc;
    }
    api__fill_header(op->s, &h, kv_read_rev(rd));
    rc = kv_lease_list(rd, collect_lease, &ll);
    node_read_end(op->s->node, rd);
    rc = rc != 0 ? rc : ll.err;
    if (rc == 0 && ll.count > 0) {
        ll.p = mem_alloc(ll.count * sizeof(*ll.p));
        if (ll.p == NULL) {
            rc = -ENOMEM;
        }
        for (size_t i = 0; rc == 0 && i < ll.count; i++) {
            ll.p[i] = &ll.v[i];
        }
    }
    if (rc == 0) {
        resp.header = &h;
        resp.n_leases = ll.count;
        resp.leases = ll.p;
        api__finish_msg(op, &resp.base);
    }
    mem_free(ll.p);
    mem_free(ll.v);
    return rc;
}

/* ------------------------------------------------------------ Maintenance */

/* Status's errors: "etcdserver: no leader" when this member knows of
 * none, then one text per active alarm, as etcd prints an AlarmMember
 * ("memberID:<id> alarm:NOSPACE "). */
struct status_errs {
    char text[8][64];
    char *p[8];
    size_t n;
};

static int collect_alarm(void *ctx, const void *name, size_t name_len,
                         const void *value, size_t value_len)
{
    struct status_errs *e = ctx;
    const uint8_t *b = name;
    (void)value;
    (void)value_len;
    if (name_len != 9 || e->n == 8) {
        return 0;
    }
    const char *type = b[8] == ETCDSERVERPB__ALARM_TYPE__NOSPACE   ? "NOSPACE"
                       : b[8] == ETCDSERVERPB__ALARM_TYPE__CORRUPT ? "CORRUPT"
                                                                   : "NONE";
    snprintf(e->text[e->n], sizeof(e->text[0]), "memberID:%llu alarm:%s ",
             (unsigned long long)be64_get(b), type);
    e->p[e->n] = e->text[e->n];
    e->n++;
    return 0;
}

static int maint_status_fn(struct api_op *op, const ProtobufCMessage *req)
{
    struct status_errs errs = {.n = 0};
    struct kv_read *rd;
    Etcdserverpb__StatusResponse resp = ETCDSERVERPB__STATUS_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct node_status st;
    uint64_t db;
    uint64_t in_use;
    char version[] = SERVER_VERSION;
    char storage[] = SERVER_CLUSTER_VER;
    (void)req;
    node_status(op->s->node, &st);
    node_store_size(op->s->node, &db, &in_use);
    api__fill_header(op->s, &h, kv_rev(node_kv(op->s->node)));
    resp.header = &h;
    resp.version = version;
    resp.dbsize = (int64_t)db;
    resp.dbsizeinuse = (int64_t)in_use;
    resp.leader = st.leader;
    resp.raftindex = st.commit_index;
    resp.raftterm = st.term;
    resp.raftappliedindex = st.applied_index;
    resp.islearner = st.learner;
    resp.storageversion = storage;
    resp.dbsizequota = (int64_t)op->s->limits.v[LIMIT_QUOTA_BACKEND_BYTES];
    if (st.leader == 0) {
        snprintf(errs.text[0], sizeof(errs.text[0]), "%s",
                 err_str(ERR_NO_LEADER));
        errs.p[0] = errs.text[0];
        errs.n = 1;
    }
    if (node_read_begin(op->s->node, &rd) == 0) {
        (void)kv_aux_list(rd, KV_AUX_ALARM, collect_alarm, &errs);
        node_read_end(op->s->node, rd);
    }
    resp.n_errors = errs.n;
    resp.errors = errs.p;
    api__finish_msg(op, &resp.base);
    return 0;
}

static int maint_alarm_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, APPLY_ALARM, req);
}

static int maint_hashkv_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__HashKVRequest *r =
        (const Etcdserverpb__HashKVRequest *)req;
    Etcdserverpb__HashKVResponse resp = ETCDSERVERPB__HASH_KVRESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct kv_read *rd;
    uint32_t hash;
    int64_t compact;
    int64_t hrev;
    int rc = node_read_begin(op->s->node, &rd);
    if (rc != 0) {
        return rc;
    }
    api__fill_header(op->s, &h, kv_read_rev(rd));
    rc = kv_hash(rd, r->revision, &hash, &compact, &hrev);
    node_read_end(op->s->node, rd);
    if (rc == 0) {
        resp.header = &h;
        resp.hash = hash;
        resp.compact_revision = compact;
        resp.hash_revision = hrev;
        api__finish_msg(op, &resp.base);
    }
    return rc;
}

static int maint_hash_fn(struct api_op *op, const ProtobufCMessage *req)
{
    Etcdserverpb__HashResponse resp = ETCDSERVERPB__HASH_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct kv_read *rd;
    uint32_t hash;
    int64_t compact;
    int64_t hrev;
    int rc;
    (void)req;
    rc = node_read_begin(op->s->node, &rd);
    if (rc != 0) {
        return rc;
    }
    api__fill_header(op->s, &h, kv_read_rev(rd));
    rc = kv_hash(rd, 0, &hash, &compact, &hrev);
    node_read_end(op->s->node, rd);
    if (rc == 0) {
        resp.header = &h;
        resp.hash = hash;
        api__finish_msg(op, &resp.base);
    }
    return rc;
}

/* --------------------------------------------------------------- Cluster */

static size_t split_urls(char *s, char **out, size_t cap)
{
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(s, ",", &save); t != NULL && n < cap;
         t = strtok_r(NULL, ",", &save)) {
        out[n++] = t;
    }
    return n;
}

static int cluster_member_list_fn(struct api_op *op,
                                  const ProtobufCMessage *req)
{
    Etcdserverpb__MemberListResponse resp =
        ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct node_member ms[NODE_MEMBERS_MAX];
    Etcdserverpb__Member pm[NODE_MEMBERS_MAX];
    Etcdserverpb__Member *pp[NODE_MEMBERS_MAX];
    char *peer[NODE_MEMBERS_MAX][16];
    char *client[NODE_MEMBERS_MAX][16];
    size_t n;
    (void)req;
    n = node_members(op->s->node, ms, NODE_MEMBERS_MAX);
    if (n > NODE_MEMBERS_MAX) {
        n = NODE_MEMBERS_MAX;
    }
    for (size_t i = 0; i < n; i++) {
        etcdserverpb__member__init(&pm[i]);
        pm[i].id = ms[i].id;
        pm[i].name = ms[i].name;
        pm[i].n_peerurls = split_urls(ms[i].peer_urls, peer[i], 16);
        pm[i].peerurls = peer[i];
        pm[i].n_clienturls = split_urls(ms[i].client_urls, client[i], 16);
        pm[i].clienturls = client[i];
        pm[i].islearner = ms[i].learner;
        pp[i] = &pm[i];
    }
    api__fill_header(op->s, &h, 0); /* etcd 3.4: no revision here */
    resp.header = &h;
    resp.n_members = n;
    resp.members = pp;
    api__finish_msg(op, &resp.base);
    return 0;
}

/* ---------------------------------------------------------------- Health */

static int health_check_fn(struct api_op *op, const ProtobufCMessage *req)
{
    Grpc__Health__V1__HealthCheckResponse resp =
        GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    struct node_status st;
    (void)req;
    node_status(op->s->node, &st);
    resp.status =
        st.leader != 0 && node_failed(op->s->node) == 0
            ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
            : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
    api__finish_msg(op, &resp.base);
    return 0;
}

/* ----------------------------------------------------------------- table */

#define M(path, gw, req, resp, raw, fn)                                        \
    {                                                                          \
        path, gw, &req##__descriptor, &resp##__descriptor, raw, fn             \
    }

const struct api_method api_methods[] = {
    M("/etcdserverpb.KV/Range", "/v3/kv/range", etcdserverpb__range_request,
      etcdserverpb__range_response, false, kv_range_fn),
    M("/etcdserverpb.KV/Put", "/v3/kv/put", etcdserverpb__put_request,
      etcdserverpb__put_response, false, kv_put_fn),
    M("/etcdserverpb.KV/DeleteRange", "/v3/kv/deleterange",
      etcdserverpb__delete_range_request, etcdserverpb__delete_range_response,
      false, kv_delete_fn),
    M("/etcdserverpb.KV/Txn", "/v3/kv/txn", etcdserverpb__txn_request,
      etcdserverpb__txn_response, true, kv_txn_fn),
    M("/etcdserverpb.KV/Compact", "/v3/kv/compaction",
      etcdserverpb__compaction_request, etcdserverpb__compaction_response,
      false, kv_compact_fn),
    M("/etcdserverpb.Lease/LeaseGrant", "/v3/lease/grant",
      etcdserverpb__lease_grant_request, etcdserverpb__lease_grant_response,
      false, lease_grant_fn),
    M("/etcdserverpb.Lease/LeaseRevoke", "/v3/lease/revoke",
      etcdserverpb__lease_revoke_request, etcdserverpb__lease_revoke_response,
      false, lease_revoke_fn),
    M("/etcdserverpb.Lease/LeaseTimeToLive", "/v3/lease/timetolive",
      etcdserverpb__lease_time_to_live_request,
      etcdserverpb__lease_time_to_live_response, false, api__lease_ttl_fn),
    M("/etcdserverpb.Lease/LeaseLeases", "/v3/lease/leases",
      etcdserverpb__lease_leases_request, etcdserverpb__lease_leases_response,
      false, lease_leases_fn),
    M("/etcdserverpb.Maintenance/Status", "/v3/maintenance/status",
      etcdserverpb__status_request, etcdserverpb__status_response, false,
      maint_status_fn),
    M("/etcdserverpb.Maintenance/Alarm", "/v3/maintenance/alarm",
      etcdserverpb__alarm_request, etcdserverpb__alarm_response, false,
      maint_alarm_fn),
    M("/etcdserverpb.Maintenance/HashKV", "/v3/maintenance/hashkv",
      etcdserverpb__hash_kvrequest, etcdserverpb__hash_kvresponse, false,
      maint_hashkv_fn),
    M("/etcdserverpb.Maintenance/Hash", "/v3/maintenance/hash",
      etcdserverpb__hash_request, etcdserverpb__hash_response, false,
      maint_hash_fn),
    M("/etcdserverpb.Cluster/MemberList", "/v3/cluster/member/list",
      etcdserverpb__member_list_request, etcdserverpb__member_list_response,
      false, cluster_member_list_fn),
    M("/etcdserverpb.Cluster/MemberAdd", "/v3/cluster/member/add",
      etcdserverpb__member_add_request, etcdserverpb__member_add_response,
      false, api__member_add),
    M("/etcdserverpb.Cluster/MemberRemove", "/v3/cluster/member/remove",
      etcdserverpb__member_remove_request, etcdserverpb__member_remove_response,
      false, api__member_remove),
    M("/etcdserverpb.Cluster/MemberUpdate", "/v3/cluster/member/update",
      etcdserverpb__member_update_request, etcdserverpb__member_update_response,
      false, api__member_update),
    M("/etcdserverpb.Cluster/MemberPromote", "/v3/cluster/member/promote",
      etcdserverpb__member_promote_request,
      etcdserverpb__member_promote_response, false, api__member_promote),
    M("/etcdserverpb.Maintenance/MoveLeader",
      "/v3/maintenance/transfer-leadership", etcdserverpb__move_leader_request,
      etcdserverpb__move_leader_response, false, api__move_leader),
    M("/etcdserverpb.Maintenance/Defragment", "/v3/maintenance/defragment",
      etcdserverpb__defragment_request, etcdserverpb__defragment_response,
      false, api__defragment),
    M("/grpc.health.v1.Health/Check", NULL,
      grpc__health__v1__health_check_request,
      grpc__health__v1__health_check_response, false, health_check_fn),
};

const size_t api_methods_count = sizeof(api_methods) / sizeof(api_methods[0]);

const struct api_method *api_find(const char *path)
{
    for (size_t i = 0; i < api_methods_count; i++) {
        if (strcmp(api_methods[i].path, path) == 0) {
            return &api_methods[i];
        }
    }
    for (size_t i = 0; i < api_auth_methods_count; i++) {
        if (strcmp(api_auth_methods[i].path, path) == 0) {
            return &api_auth_methods[i];
        }
    }
    for (size_t i = 0; i < api_lock_methods_count; i++) {
        if (strcmp(api_lock_methods[i].path, path) == 0) {
            return &api_lock_methods[i];
        }
    }
    return NULL;
}

const struct api_method *api_find_gw(const char *path)
{
    /* /v3beta/ and /v3alpha/ are aliases of /v3/ */
    const char *rest = NULL;
    if (strncmp(path, "/v3/", 4) == 0) {
        rest = path + 3;
    } else if (strncmp(path, "/v3beta/", 8) == 0) {
        rest = path + 7;
    } else if (strncmp(path, "/v3alpha/", 9) == 0) {
        rest = path + 8;
    } else {
        return NULL;
    }
    for (size_t i = 0; i < api_methods_count; i++) {
        if (api_methods[i].gw != NULL &&
            strcmp(api_methods[i].gw + 3, rest) == 0) {
            return &api_methods[i];
        }
    }
    for (size_t i = 0; i < api_auth_methods_count; i++) {
        if (api_auth_methods[i].gw != NULL &&
            strcmp(api_auth_methods[i].gw + 3, rest) == 0) {
            return &api_auth_methods[i];
        }
    }
    for (size_t i = 0; i < api_lock_methods_count; i++) {
        if (strcmp(api_lock_methods[i].gw + 3, rest) == 0) {
            return &api_lock_methods[i];
        }
    }
    /* etcd keeps lease aliases under /v3/kv/lease/ */
    if (strncmp(rest, "/kv/lease/", 10) == 0) {
        char alias[64];
        snprintf(alias, sizeof(alias), "/v3/lease/%s", rest + 10);
        for (size_t i = 0; i < api_methods_count; i++) {
            if (api_methods[i].gw != NULL &&
                strcmp(api_methods[i].gw, alias) == 0) {
                return &api_methods[i];
            }
        }
    }
    return NULL;
}

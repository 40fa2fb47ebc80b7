/*
 * kv.c - libcairn's KV calls: range, put, delete, txn (etcdserverpb.KV).
 *
 * Each call checks its arguments, builds the protobuf request pointing at
 * the caller's bytes (nothing is copied until the request is framed),
 * runs one unary call under the client's mutex and hands the unpacked
 * answer to the decoders. Reads and read-only txns are idempotent (retried
 * on another endpoint after a broken connection); writes are not.
 */
#include <string.h>

#include "base/alloc.h"
#include "sdk/client_int.h"

#define TXN_OPS_MAX 1024 /* per branch; servers refuse far fewer (128) */

CAIRN_EXPORT size_t cairn_prefix_end(const uint8_t *prefix, size_t prefix_len,
                                     uint8_t *out)
{
    /* Bounded by prefix_len: drop trailing 0xff bytes, bump the last. */
    for (size_t n = prefix_len; n > 0; n--) {
        if (prefix[n - 1] < 0xff) {
            memmove(out, prefix, n);
            out[n - 1] = (uint8_t)(prefix[n - 1] + 1);
            return n;
        }
    }
    out[0] = 0;
    return 1;
}

static ProtobufCBinaryData bin(const uint8_t *p, size_t n)
{
    ProtobufCBinaryData b = {n, (uint8_t *)(n > 0 ? p : NULL)};
    return b;
}

static bool key_ok(const uint8_t *key, size_t len)
{
    return key != NULL && len > 0;
}

static void range_req_fill(const struct cairn_range_req *r,
                           Etcdserverpb__RangeRequest *m)
{
    etcdserverpb__range_request__init(m);
    m->key = bin(r->key, r->key_len);
    m->range_end = bin(r->range_end, r->range_end_len);
    m->limit = r->limit;
    m->revision = r->revision;
    m->sort_order = (Etcdserverpb__RangeRequest__SortOrder)r->sort_order;
    m->sort_target = (Etcdserverpb__RangeRequest__SortTarget)r->sort_target;
    m->serializable = r->serializable;
    m->keys_only = r->keys_only;
    m->count_only = r->count_only;
    m->min_mod_revision = r->min_mod_revision;
    m->max_mod_revision = r->max_mod_revision;
    m->min_create_revision = r->min_create_revision;
    m->max_create_revision = r->max_create_revision;
}

static bool range_req_ok(const struct cairn_range_req *r)
{
    return r != NULL && key_ok(r->key, r->key_len) &&
           (r->range_end != NULL || r->range_end_len == 0) &&
           r->sort_order <= CAIRN_SORT_DESCEND &&
           r->sort_target <= CAIRN_SORT_VALUE && r->limit >= 0;
}

static void put_req_fill(const struct cairn_put_req *r,
                         Etcdserverpb__PutRequest *m)
{
    etcdserverpb__put_request__init(m);
    m->key = bin(r->key, r->key_len);
    m->value = bin(r->value, r->value_len);
    m->lease = r->lease;
    m->prev_kv = r->prev_kv;
    m->ignore_value = r->ignore_value;
    m->ignore_lease = r->ignore_lease;
}

static bool put_req_ok(const struct cairn_put_req *r)
{
    return r != NULL && key_ok(r->key, r->key_len) &&
           (r->value != NULL || r->value_len == 0);
}

static void delete_req_fill(const struct cairn_delete_req *r,
                            Etcdserverpb__DeleteRangeRequest *m)
{
    etcdserverpb__delete_range_request__init(m);
    m->key = bin(r->key, r->key_len);
    m->range_end = bin(r->range_end, r->range_end_len);
    m->prev_kv = r->prev_kv;
}

static bool delete_req_ok(const struct cairn_delete_req *r)
{
    return r != NULL && key_ok(r->key, r->key_len) &&
           (r->range_end != NULL || r->range_end_len == 0);
}

CAIRN_EXPORT int cairn_range(struct cairn_client *c,
                             const struct cairn_range_req *req,
                             int64_t deadline_ms, struct cairn_range_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if (!range_req_ok(req)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__RangeRequest m;
    range_req_fill(req, &m);
    pthread_mutex_lock(&c->mu);
    ProtobufCMessage *resp = NULL;
    int rc = cairn__unary(c, "/etcdserverpb.KV/Range", &m.base,
                          &etcdserverpb__range_response__descriptor, true,
                          cairn__deadline(c, deadline_ms), &resp);
    if (rc == 0) {
        rc = cairn__range_from_pb((void *)resp, out);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

CAIRN_EXPORT int cairn_put(struct cairn_client *c,
                           const struct cairn_put_req *req, int64_t deadline_ms,
                           struct cairn_put_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if (!put_req_ok(req)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__PutRequest m;
    put_req_fill(req, &m);
    pthread_mutex_lock(&c->mu);
    ProtobufCMessage *resp = NULL;
    int rc = cairn__unary(c, "/etcdserverpb.KV/Put", &m.base,
                          &etcdserverpb__put_response__descriptor, false,
                          cairn__deadline(c, deadline_ms), &resp);
    if (rc == 0) {
        rc = cairn__put_from_pb((void *)resp, out);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

CAIRN_EXPORT int cairn_delete(struct cairn_client *c,
                              const struct cairn_delete_req *req,
                              int64_t deadline_ms,
                              struct cairn_delete_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    if (!delete_req_ok(req)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__DeleteRangeRequest m;
    delete_req_fill(req, &m);
    pthread_mutex_lock(&c->mu);
    ProtobufCMessage *resp = NULL;
    int rc = cairn__unary(c, "/etcdserverpb.KV/DeleteRange", &m.base,
                          &etcdserverpb__delete_range_response__descriptor,
                          false, cairn__deadline(c, deadline_ms), &resp);
    if (rc == 0) {
        rc = cairn__delete_from_pb((void *)resp, out);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* ---------------------------------------------------------------- txn */

/* The protobuf side of a txn: one block of request structs. */
struct txn_pb {
    Etcdserverpb__TxnRequest req;
    Etcdserverpb__Compare *cmp;
    Etcdserverpb__Compare **cmp_ptrs;
    Etcdserverpb__RequestOp *ops;
    Etcdserverpb__RequestOp **op_ptrs;
    Etcdserverpb__RangeRequest *ranges;
    Etcdserverpb__PutRequest *puts;
    Etcdserverpb__DeleteRangeRequest *dels;
};

static bool compare_fill(const struct cairn_compare *s,
                         Etcdserverpb__Compare *m)
{
    etcdserverpb__compare__init(m);
    if (!key_ok(s->key, s->key_len) || s->result > CAIRN_CMP_NOT_EQUAL ||
        s->target > CAIRN_CMP_LEASE ||
        (s->range_end == NULL && s->range_end_len > 0) ||
        (s->value == NULL && s->value_len > 0)) {
        return false;
    }
    m->result = (Etcdserverpb__Compare__CompareResult)s->result;
    m->target = (Etcdserverpb__Compare__CompareTarget)s->target;
    m->key = bin(s->key, s->key_len);
    m->range_end = bin(s->range_end, s->range_end_len);
    switch (s->target) {
    case CAIRN_CMP_VERSION:
        m->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        m->version = s->number;
        break;
    case CAIRN_CMP_CREATE:
        m->target_union_case =
            ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        m->create_revision = s->number;
        break;
    case CAIRN_CMP_MOD:
        m->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        m->mod_revision = s->number;
        break;
    case CAIRN_CMP_VALUE:
        m->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
        m->value = bin(s->value, s->value_len);
        break;
    case CAIRN_CMP_LEASE:
        m->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
        m->lease = s->number;
        break;
    }
    return true;
}

/* Fills op i of the block; false when the op is malformed. */
static bool op_fill(struct txn_pb *t, size_t i, const struct cairn_op *op,
                    bool *writes)
{
    Etcdserverpb__RequestOp *m = &t->ops[i];
    etcdserverpb__request_op__init(m);
    t->op_ptrs[i] = m;
    switch (op->type) {
    case CAIRN_OP_RANGE:
        if (!range_req_ok(&op->range)) {
            return false;
        }
        range_req_fill(&op->range, &t->ranges[i]);
        m->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
        m->request_range = &t->ranges[i];
        return true;
    case CAIRN_OP_PUT:
        if (!put_req_ok(&op->put)) {
            return false;
        }
        put_req_fill(&op->put, &t->puts[i]);
        m->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        m->request_put = &t->puts[i];
        *writes = true;
        return true;
    case CAIRN_OP_DELETE:
        if (!delete_req_ok(&op->del)) {
            return false;
        }
        delete_req_fill(&op->del, &t->dels[i]);
        m->request_case =
            ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
        m->request_delete_range = &t->dels[i];
        *writes = true;
        return true;
    }
    return false;
}

static void txn_pb_free(struct txn_pb *t)
{
    mem_free(t->cmp);
    mem_free(t->cmp_ptrs);
    mem_free(t->ops);
    mem_free(t->op_ptrs);
    mem_free(t->ranges);
    mem_free(t->puts);
    mem_free(t->dels);
}

static int txn_pb_build(const struct cairn_txn_req *r, struct txn_pb *t,
                        bool *writes)
{
    memset(t, 0, sizeof(*t));
    etcdserverpb__txn_request__init(&t->req);
    size_t nc = r->compares_count;
    size_t no = r->success_count + r->failure_count;
    if ((nc > 0 && r->compares == NULL) ||
        (r->success_count > 0 && r->success == NULL) ||
        (r->failure_count > 0 && r->failure == NULL) || nc > TXN_OPS_MAX ||
        r->success_count > TXN_OPS_MAX || r->failure_count > TXN_OPS_MAX) {
        return CAIRN_E_INVALID;
    }
    t->cmp = mem_calloc(nc + 1, sizeof(*t->cmp));
    t->cmp_ptrs = mem_calloc(nc + 1, sizeof(*t->cmp_ptrs));
    t->ops = mem_calloc(no + 1, sizeof(*t->ops));
    t->op_ptrs = mem_calloc(no + 1, sizeof(*t->op_ptrs));
    t->ranges = mem_calloc(no + 1, sizeof(*t->ranges));
    t->puts = mem_calloc(no + 1, sizeof(*t->puts));
    t->dels = mem_calloc(no + 1, sizeof(*t->dels));
    if (t->cmp == NULL || t->cmp_ptrs == NULL || t->ops == NULL ||
        t->op_ptrs == NULL || t->ranges == NULL || t->puts == NULL ||
        t->dels == NULL) {
        return CAIRN_E_NOMEM;
    }
    for (size_t i = 0; i < nc; i++) {
        if (!compare_fill(&r->compares[i], &t->cmp[i])) {
            return CAIRN_E_INVALID;
        }
        t->cmp_ptrs[i] = &t->cmp[i];
    }
    for (size_t i = 0; i < no; i++) {
        const struct cairn_op *op = i < r->success_count
                                        ? &r->success[i]
                                        : &r->failure[i - r->success_count];
        if (!op_fill(t, i, op, writes)) {
            return CAIRN_E_INVALID;
        }
    }
    t->req.n_compare = nc;
    t->req.compare = t->cmp_ptrs;
    t->req.n_success = r->success_count;
    t->req.success = t->op_ptrs;
    t->req.n_failure = r->failure_count;
    t->req.failure = t->op_ptrs + r->success_count;
    return 0;
}

CAIRN_EXPORT int cairn_txn(struct cairn_client *c,
                           const struct cairn_txn_req *req, int64_t deadline_ms,
                           struct cairn_txn_resp *out)
{
    if (c == NULL || out == NULL || req == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    struct txn_pb t;
    bool writes = false;
    int rc = txn_pb_build(req, &t, &writes);
    if (rc != 0) {
        txn_pb_free(&t);
        return rc;
    }
    pthread_mutex_lock(&c->mu);
    ProtobufCMessage *resp = NULL;
    rc = cairn__unary(c, "/etcdserverpb.KV/Txn", &t.req.base,
                      &etcdserverpb__txn_response__descriptor, !writes,
                      cairn__deadline(c, deadline_ms), &resp);
    if (rc == 0) {
        rc = cairn__txn_from_pb((void *)resp, out);
    }
    pthread_mutex_unlock(&c->mu);
    txn_pb_free(&t);
    return rc;
}

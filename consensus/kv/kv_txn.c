/*
 * kv_txn.c - Txn: validation, etcd's duplicate-key rule, compares and the
 * execution of the chosen branch.
 *
 * The order follows etcd 3.4 (v3rpc/key.go, etcdserver/apply.go), checked
 * against a running etcd 3.4.23:
 *  1. Validation. Each of compares, success and failure may hold at most
 *     max_txn_ops; a nested txn's lists at most what its parent left
 *     (max_txn_ops minus the parent's longest list). Empty keys, bad enums,
 *     oversized values are refused here.
 *  2. Duplicate keys (etcd's checkIntervals), for the success ops and the
 *     failure ops separately: collect this level's deletes, then each
 *     nested txn's puts (its success and failure puts may repeat each
 *     other: only one branch runs) checked against the puts and deletes
 *     seen so far, then this level's puts. A delete whose range_end is
 *     "\0" never conflicts (etcd's interval tree sees [key, "\0") as
 *     empty); we keep that so the same requests are accepted.
 *  3. Every compare on the chosen path, nested ones included, is evaluated
 *     against the state before the txn (etcd's compareToPath), so a nested
 *     compare does not see the writes of earlier ops.
 *  4. Checks on the chosen path against that state: puts (key exists for
 *     ignore_*, lease exists), then ranges (revision not future, not
 *     compacted). Then the ops run in order; ranges see earlier writes.
 * A txn whose chosen path writes runs in a nested LMDB txn, so any
 * failure is undone by aborting it; two common shapes skip that cost
 * (see txn_run): a path that only reads, and a flat list of puts, which
 * is prepared whole before its first write.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/limits.h"
#include "consensus/kv/kv_int.h"

/* --- 1. validation ---------------------------------------------------------*/

static size_t max3(size_t a, size_t b, size_t c)
{
    size_t m = a > b ? a : b;
    return m > c ? m : c;
}

static int compare_validate(const struct kv_compare *c)
{
    int rc = kv__key_validate(c->key, c->key_len);
    if (rc != 0) {
        return rc;
    }
    if ((unsigned)c->result > KV_CMP_NOT_EQUAL ||
        (unsigned)c->target > KV_CMP_LEASE) {
        return ERR_BAD_COMPARE;
    }
    if ((c->value_len > 0 && c->value == NULL) ||
        (c->range_end_len > 0 && c->range_end == NULL)) {
        return ERR_BAD_COMPARE;
    }
    return 0;
}

static int txn_validate(const struct kv *kv, const struct kv_txn_req *t,
                        size_t budget, unsigned depth, size_t *total);

static int op_validate(const struct kv *kv, const struct kv_op *op,
                       size_t budget, unsigned depth, size_t *total)
{
    struct kv_span s;
    int rc;
    switch (op->type) {
    case KV_OP_RANGE:
        rc = kv__span(op->u.range.key, op->u.range.key_len,
                      op->u.range.range_end, op->u.range.range_end_len, &s);
        return rc != 0 ? rc : kv__range_check(&op->u.range);
    case KV_OP_PUT:
        return kv__put_validate(kv, &op->u.put);
    case KV_OP_DELETE:
        return kv__span(op->u.del.key, op->u.del.key_len, op->u.del.range_end,
                        op->u.del.range_end_len, &s);
    case KV_OP_TXN:
        if (op->u.txn == NULL) {
            return ERR_BAD_REQUEST;
        }
        return txn_validate(kv, op->u.txn, budget, depth + 1, total);
    }
    return ERR_BAD_REQUEST;
}

static int txn_validate(const struct kv *kv, const struct kv_txn_req *t,
                        size_t budget, unsigned depth, size_t *total)
{
    size_t opc = max3(t->compares_count, t->success_count, t->failure_count);
    if (depth > limits_default(LIMIT_TXN_DEPTH) || opc > budget) {
        return ERR_TOO_MANY_OPS;
    }
    *total += t->compares_count + t->success_count + t->failure_count;
    if (*total > KV_TXN_OPS_TOTAL_MAX) {
        return ERR_TOO_MANY_OPS;
    }
    if ((t->compares_count > 0 && t->compares == NULL) ||
        (t->success_count > 0 && t->success == NULL) ||
        (t->failure_count > 0 && t->failure == NULL)) {
        return ERR_BAD_REQUEST;
    }
    for (size_t i = 0; i < t->compares_count; i++) {
        int rc = compare_validate(&t->compares[i]);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < t->success_count + t->failure_count; i++) {
        const struct kv_op *op = i < t->success_count
                                     ? &t->success[i]
                                     : &t->failure[i - t->success_count];
        int rc = op_validate(kv, op, budget - opc, depth, total);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* --- 2. duplicate keys
 * -------------------------------------------------------*/

struct spans {
    struct kv_span *v;
    size_t n, cap;
};

static int spans_add(struct spans *s, const struct kv_span *x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap == 0 ? 8 : s->cap * 2;
        struct kv_span *nv = mem_realloc(s->v, cap * sizeof(*nv));
        if (nv == NULL) {
            return -ENOMEM;
        }
        s->v = nv;
        s->cap = cap;
    }
    s->v[s->n++] = *x;
    return 0;
}

static bool spans_has_key(const struct spans *s, const struct kv_span *k)
{
    for (size_t i = 0; i < s->n; i++) {
        if (kv__bytes_cmp(s->v[i].key, s->v[i].key_len, k->key, k->key_len) ==
            0) {
            return true;
        }
    }
    return false;
}

/* Does any delete cover key? (FROM and EMPTY deletes never do: see top.) */
static bool dels_cover(const struct spans *d, const struct kv_span *k)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct kv_span *s = &d->v[i];
        if ((s->kind == KV_RANGE_ONE || s->kind == KV_RANGE_SPAN) &&
            kv__span_has(s, k->key, k->key_len)) {
            return true;
        }
    }
    return false;
}

static int put_add(struct spans *puts, const struct spans *dels,
                   const struct kv_span *k)
{
    if (spans_has_key(puts, k) || dels_cover(dels, k)) {
        return ERR_DUPLICATE_KEY;
    }
    return spans_add(puts, k);
}

static int intervals(const struct kv_op *ops, size_t n, struct spans *puts,
                     struct spans *dels);

/* Fold one nested txn's puts and deletes into this level's. */
static int fold_child(const struct kv_txn_req *t, struct spans *puts,
                      struct spans *dels)
{
    struct spans tp = {0}, td = {0}, ep = {0}, ed = {0};
    int rc = intervals(t->success, t->success_count, &tp, &td);
    rc = rc != 0 ? rc : intervals(t->failure, t->failure_count, &ep, &ed);
    for (size_t i = 0; rc == 0 && i < tp.n; i++) {
        rc = put_add(puts, dels, &tp.v[i]);
    }
    for (size_t i = 0; rc == 0 && i < ep.n; i++) {
        bool seen = spans_has_key(puts, &ep.v[i]);
        if (seen && !spans_has_key(&tp, &ep.v[i])) {
            rc = ERR_DUPLICATE_KEY;
        } else if (dels_cover(dels, &ep.v[i])) {
            rc = ERR_DUPLICATE_KEY;
        } else if (!seen) {
            rc = spans_add(puts, &ep.v[i]);
        }
    }
    for (size_t i = 0; rc == 0 && i < td.n + ed.n; i++) {
        rc = spans_add(dels, i < td.n ? &td.v[i] : &ed.v[i - td.n]);
    }
    mem_free(tp.v);
    mem_free(td.v);
    mem_free(ep.v);
    mem_free(ed.v);
    return rc;
}

static int intervals(const struct kv_op *ops, size_t n, struct spans *puts,
                     struct spans *dels)
{
    struct kv_span s;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct kv_delete_req *d = &ops[i].u.del;
        if (ops[i].type == KV_OP_DELETE) {
            rc = kv__span(d->key, d->key_len, d->range_end, d->range_end_len,
                          &s);
            rc = rc != 0 ? rc : spans_add(dels, &s);
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (ops[i].type == KV_OP_TXN) {
            rc = fold_child(ops[i].u.txn, puts, dels);
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct kv_put_req *p = &ops[i].u.put;
        if (ops[i].type == KV_OP_PUT) {
            rc = kv__span(p->key, p->key_len, NULL, 0, &s);
            rc = rc != 0 ? rc : put_add(puts, dels, &s);
        }
    }
    return rc;
}

static int dup_check_list(const struct kv_op *ops, size_t n)
{
    struct spans puts = {0}, dels = {0};
    int rc = intervals(ops, n, &puts, &dels);
    mem_free(puts.v);
    mem_free(dels.v);
    return rc;
}

static int txn_check(const struct kv *kv, const struct kv_txn_req *req)
{
    size_t total = 0;
    int rc = txn_validate(kv, req, kv->opts.max_txn_ops, 0, &total);
    rc = rc != 0 ? rc : dup_check_list(req->success, req->success_count);
    return rc != 0 ? rc : dup_check_list(req->failure, req->failure_count);
}

static bool ops_read_only(const struct kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == KV_OP_PUT || ops[i].type == KV_OP_DELETE) {
            return false;
        }
        if (ops[i].type == KV_OP_TXN && ops[i].u.txn != NULL &&
            !kv_txn_is_read_only(ops[i].u.txn)) {
            return false;
        }
    }
    return true;
}

bool kv_txn_is_read_only(const struct kv_txn_req *req)
{
    return ops_read_only(req->success, req->success_count) &&
           ops_read_only(req->failure, req->failure_count);
}

/* Quota cost of every put in the tree (etcd refuses a txn with any put
 * when over quota, whichever branch runs). */
static uint64_t txn_cost(const struct kv_txn_req *t)
{
    uint64_t cost = 0;
    for (size_t i = 0; i < t->success_count + t->failure_count; i++) {
        const struct kv_op *op = i < t->success_count
                                     ? &t->success[i]
                                     : &t->failure[i - t->success_count];
        if (op->type == KV_OP_PUT) {
            cost += 2 * (op->u.put.key_len + op->u.put.value_len) + 128;
        } else if (op->type == KV_OP_TXN) {
            cost += txn_cost(op->u.txn);
        }
    }
    return cost;
}

/* --- 3. compares and the path -------------------------------------------*/

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b ? 1 : 0;
}

static bool compare_kv(const struct kv_compare *c, const struct kv_rec *r)
{
    int x = 0;
    switch (c->target) {
    case KV_CMP_VERSION:
        x = cmp_i64(r->version, c->number);
        break;
    case KV_CMP_CREATE:
        x = cmp_i64(r->create, c->number);
        break;
    case KV_CMP_MOD:
        x = cmp_i64(r->mod, c->number);
        break;
    case KV_CMP_VALUE:
        x = kv__bytes_cmp(r->value, r->value_len, c->value, c->value_len);
        break;
    case KV_CMP_LEASE:
        x = cmp_i64(r->lease, c->number);
        break;
    }
    switch (c->result) {
    case KV_CMP_EQUAL:
        return x == 0;
    case KV_CMP_GREATER:
        return x > 0;
    case KV_CMP_LESS:
        return x < 0;
    case KV_CMP_NOT_EQUAL:
        return x != 0;
    }
    UNREACHABLE();
}

/* etcd's applyCompare on the live table: every key in the range must
 * pass; no key at all compares a zero record (VALUE: false). */
static int compare_eval(struct kv *kv, MDB_txn *txn, const struct kv_compare *c,
                        bool *out)
{
    struct kv_span s;
    struct kv_rec r;
    MDB_cursor *cur;
    MDB_val k, d;
    size_t seen = 0;
    int rc = kv__span(c->key, c->key_len, c->range_end, c->range_end_len, &s);
    if (rc != 0) {
        return rc;
    }
    *out = true;
    if (s.kind == KV_RANGE_ONE) {
        rc = kv__live_get(txn, kv, s.key, s.key_len, &r);
        if (rc == 0 && c->target == KV_CMP_VALUE) {
            rc = kv__value_load(txn, kv, NULL, &r);
        }
        if (rc == 0) {
            *out = compare_kv(c, &r);
            return 0;
        }
        if (rc != ERR_NOT_FOUND) {
            return rc;
        }
    } else if (s.kind != KV_RANGE_EMPTY) {
        rc = mdb_cursor_open(txn, kv->dbi[KV_DBI_LIVE], &cur);
        if (rc != 0) {
            return kv__mdb_err(rc);
        }
        k = (MDB_val){s.key_len, (void *)s.key};
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
        while (rc == 0 && *out && !kv__span_past(&s, k.mv_data, k.mv_size)) {
            rc = kv__live_decode(&k, &d, &r);
            if (rc == 0 && c->target == KV_CMP_VALUE) {
                rc = kv__value_load(txn, kv, NULL, &r);
            }
            if (rc == 0) {
                seen++;
                *out = compare_kv(c, &r);
                rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
            }
        }
        mdb_cursor_close(cur);
        if (rc != 0 && rc != MDB_NOTFOUND) {
            return rc > 0 ? kv__mdb_err(rc) : rc;
        }
        if (seen > 0) {
            return 0;
        }
    }
    if (c->target == KV_CMP_VALUE) {
        *out = false;
        return 0;
    }
    memset(&r, 0, sizeof(r));
    *out = compare_kv(c, &r);
    return 0;
}

struct path {
    bool *v;
    size_t n, cap;
    size_t at; /* read position during checks and exec */
};

static int path_push(struct path *p, bool b)
{
    if (p->n == p->cap) {
        size_t cap = p->cap == 0 ? 8 : p->cap * 2;
        bool *nv = mem_realloc(p->v, cap * sizeof(*nv));
        if (nv == NULL) {
            return -ENOMEM;
        }
        p->v = nv;
        p->cap = cap;
    }
    p->v[p->n++] = b;
    return 0;
}

/* The chosen branch of t and of every nested txn on it, in pre-order. */
static int path_build(struct kv *kv, MDB_txn *txn, const struct kv_txn_req *t,
                      struct path *p)
{
    bool ok = true;
    for (size_t i = 0; ok && i < t->compares_count; i++) {
        int rc = compare_eval(kv, txn, &t->compares[i], &ok);
        if (rc != 0) {
            return rc;
        }
    }
    int rc = path_push(p, ok);
    const struct kv_op *ops = ok ? t->success : t->failure;
    size_t n = ok ? t->success_count : t->failure_count;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (ops[i].type == KV_OP_TXN) {
            rc = path_build(kv, txn, ops[i].u.txn, p);
        }
    }
    return rc;
}

/* --- 4. checks and execution -----------------------------------------------*/

struct tx {
    struct kv *kv;
    MDB_txn *txn;       /* pre-state for the checks */
    struct kv_view *rv; /* read handle view; NULL in a write handle */
    struct kv_req *rq;  /* write handle request; NULL on a read handle */
    int64_t pre_rev;    /* revision before the txn */
    int64_t compact;
    struct path path;
    struct kv_result *res;
};

/* kind: 0 puts, 1 ranges (etcd checks all puts first, then all ranges). */
static int check_path(struct tx *x, const struct kv_txn_req *t, int kind)
{
    ASSERT(x->path.at < x->path.n);
    bool ok = x->path.v[x->path.at++];
    const struct kv_op *ops = ok ? t->success : t->failure;
    size_t n = ok ? t->success_count : t->failure_count;
    for (size_t i = 0; i < n; i++) {
        int rc = 0;
        const struct kv_range_req *r = &ops[i].u.range;
        if (ops[i].type == KV_OP_TXN) {
            rc = check_path(x, ops[i].u.txn, kind);
        } else if (ops[i].type == KV_OP_PUT && kind == 0) {
            rc = kv__put_check(x->rq, &ops[i].u.put);
        } else if (ops[i].type == KV_OP_RANGE && kind == 1) {
            /* etcd's checkRequestRange: any revision but 0 below its
             * compacted revision (-1 before the first compaction) is
             * compacted, a negative one too, although a Range outside a
             * txn reads a negative revision as the latest. */
            int64_t floor = x->compact > 0 ? x->compact : -1;
            if (r->revision > x->pre_rev) {
                rc = ERR_FUTURE_REV;
            } else if (r->revision != 0 && r->revision < floor) {
                rc = ERR_COMPACTED;
            }
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int exec_ops(struct tx *x, const struct kv_txn_req *t,
                    struct kv_txn_resp *resp);

static int exec_op(struct tx *x, const struct kv_op *op, struct kv_op_resp *out)
{
    struct kv_view wv;
    out->type = op->type;
    switch (op->type) {
    case KV_OP_RANGE:
        if (x->rq == NULL) {
            return kv__range(x->rv, &op->u.range, x->res, &out->u.range);
        }
        kv__view_of_write(&wv, x->rq, x->pre_rev);
        return kv__range(&wv, &op->u.range, x->res, &out->u.range);
    case KV_OP_PUT:
        ASSERT(x->rq != NULL);
        return kv__put_exec(x->rq, &op->u.put, &out->u.put);
    case KV_OP_DELETE:
        ASSERT(x->rq != NULL);
        return kv__delete_exec(x->rq, &op->u.del, &out->u.del);
    case KV_OP_TXN:
        out->u.txn = kv__alloc(x->res, sizeof(*out->u.txn));
        if (out->u.txn == NULL) {
            return -ENOMEM;
        }
        return exec_ops(x, op->u.txn, out->u.txn);
    }
    UNREACHABLE();
}

static int exec_ops(struct tx *x, const struct kv_txn_req *t,
                    struct kv_txn_resp *resp)
{
    memset(resp, 0, sizeof(*resp));
    ASSERT(x->path.at < x->path.n);
    resp->succeeded = x->path.v[x->path.at++];
    const struct kv_op *ops = resp->succeeded ? t->success : t->failure;
    size_t n = resp->succeeded ? t->success_count : t->failure_count;
    if (n == 0) {
        return 0;
    }
    resp->responses = kv__alloc(x->res, n * sizeof(*resp->responses));
    if (resp->responses == NULL) {
        return -ENOMEM;
    }
    memset(resp->responses, 0, n * sizeof(*resp->responses));
    resp->responses_count = n;
    for (size_t i = 0; i < n; i++) {
        int rc = exec_op(x, &ops[i], &resp->responses[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Compute the path and run the checks (on x->txn, before any write). */
static int prepare(struct tx *x, const struct kv_txn_req *req, bool writes)
{
    int rc = path_build(x->kv, x->txn, req, &x->path);
    if (rc == 0 && writes) {
        x->path.at = 0;
        rc = check_path(x, req, 0);
    }
    if (rc == 0) {
        x->path.at = 0;
        rc = check_path(x, req, 1);
    }
    x->path.at = 0;
    return rc;
}

int kv__txn_read(struct kv_view *v, const struct kv_txn_req *req,
                 struct kv_result *res, struct kv_txn_resp *resp)
{
    struct tx x = {.kv = v->kv, .txn = v->txn, .rv = v};
    memset(resp, 0, sizeof(*resp));
    int rc = txn_check(v->kv, req);
    if (rc != 0) {
        return rc;
    }
    if (!kv_txn_is_read_only(req)) {
        return ERR_INVALID;
    }
    x.pre_rev = v->max_rev;
    x.compact = v->compact;
    x.res = res;
    rc = prepare(&x, req, false);
    rc = rc != 0 ? rc : exec_ops(&x, req, resp);
    mem_free(x.path.v);
    if (rc != 0) {
        memset(resp, 0, sizeof(*resp));
    }
    return rc > 0 ? kv__mdb_err(rc) : rc;
}

int kv_txn_read(struct kv_read *rd, const struct kv_txn_req *req,
                struct kv_result *res, struct kv_txn_resp *resp)
{
    struct kv_view v = {
        .kv = rd->kv,
        .txn = rd->txn,
        .rd = rd,
        .live_rev = rd->rev,
        .max_rev = rd->rev,
        .compact = rd->compact,
        .copy = false,
    };
    if (atomic_load(&rd->kv->failed) != 0) {
        memset(resp, 0, sizeof(*resp));
        return ERR_FAILED;
    }
    return kv__txn_read(&v, req, res, resp);
}

/* Does the chosen path write (a put or delete anywhere on it)? */
static bool path_writes(struct tx *x, const struct kv_txn_req *t)
{
    ASSERT(x->path.at < x->path.n);
    bool ok = x->path.v[x->path.at++];
    const struct kv_op *ops = ok ? t->success : t->failure;
    size_t n = ok ? t->success_count : t->failure_count;
    bool w = false;
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type == KV_OP_PUT || ops[i].type == KV_OP_DELETE) {
            w = true;
        } else if (ops[i].type == KV_OP_TXN && path_writes(x, ops[i].u.txn)) {
            w = true;
        }
    }
    return w;
}

/* The common writing txn (compare, then puts): with every op a put and
 * keys distinct (the duplicate rule), each put sees the state before the
 * txn, so all of them can be prepared (checks, copies, events) before
 * the first write, and the txn needs no nested LMDB txn. Returns 0, an
 * error with nothing written, or a positive LMDB code from the writes. */
static int exec_flat_puts(struct tx *x, const struct kv_op *ops, size_t n,
                          struct kv_txn_resp *resp)
{
    struct kv_req *rq = x->rq;
    resp->responses = kv__alloc(x->res, n * sizeof(*resp->responses));
    struct kv_put_plan *pp = mem_alloc(n * sizeof(*pp));
    if (resp->responses == NULL || pp == NULL) {
        mem_free(pp);
        return -ENOMEM;
    }
    memset(resp->responses, 0, n * sizeof(*resp->responses));
    resp->responses_count = n;
    buf_reset(&rq->wr->scratch);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        resp->responses[i].type = KV_OP_PUT;
        rc = kv__put_prepare(rq, &ops[i].u.put, rq->sub + (uint32_t)i,
                             &resp->responses[i].u.put, &pp[i]);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = kv__put_write(rq, &pp[i]);
    }
    mem_free(pp);
    return rc;
}

static bool flat_puts(const struct kv_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ops[i].type != KV_OP_PUT) {
            return false;
        }
    }
    return n > 0;
}

/* How a txn runs: a path that writes nothing and a flat list of puts run
 * in the batch txn; anything else in a nested txn that a failure aborts. */
enum txn_mode {
    TXN_READ = 0,
    TXN_PUTS = 1,
    TXN_NESTED = 2,
};

/* Writemap: LMDB has no nested txns. The batch so far is committed, the
 * txn runs in a fresh LMDB txn, and a failure aborts that one (a fatal
 * LMDB error poisons the batch instead). */
static int txn_run_savepoint(struct tx *x, const struct kv_txn_req *req,
                             struct kv_txn_resp *resp)
{
    struct kv_write *wr = x->rq->wr;
    int rc = kv__savepoint(wr);
    if (rc != 0) {
        return rc;
    }
    x->txn = wr->txn;
    x->rq->txn = wr->txn;
    rc = exec_ops(x, req, resp);
    if (rc > 0 && kv__fatal_err(rc)) {
        return kv__poison(wr, rc);
    }
    if (rc != 0) {
        int rrc = kv__rollback(wr);
        x->txn = wr->txn;
        x->rq->txn = wr->txn;
        return rrc != 0 ? rrc : rc > 0 ? kv__mdb_err(rc) : rc;
    }
    return 0;
}

static int txn_run(struct tx *x, const struct kv_txn_req *req,
                   struct kv_txn_resp *resp)
{
    struct kv_write *wr = x->rq->wr;
    x->path.at = 0;
    enum txn_mode mode = path_writes(x, req) ? TXN_NESTED : TXN_READ;
    x->path.at = 0;
    const struct kv_op *ops = x->path.v[0] ? req->success : req->failure;
    size_t n = x->path.v[0] ? req->success_count : req->failure_count;
    if (mode == TXN_NESTED && flat_puts(ops, n)) {
        mode = TXN_PUTS;
    }
    if (mode == TXN_PUTS) {
        memset(resp, 0, sizeof(*resp));
        resp->succeeded = x->path.v[0];
        int rc = exec_flat_puts(x, ops, n, resp);
        return rc > 0 ? kv__poison(wr, rc) : rc;
    }
    if (mode == TXN_READ) {
        int rc = exec_ops(x, req, resp);
        return rc > 0 ? kv__mdb_err(rc) : rc;
    }
    if (wr->kv->writemap) {
        return txn_run_savepoint(x, req, resp);
    }
    MDB_txn *child;
    int rc = mdb_txn_begin(wr->kv->env, wr->txn, 0, &child);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    x->rq->txn = child;
    rc = exec_ops(x, req, resp);
    rc = rc != 0 ? rc : mdb_txn_commit(child);
    if (rc != 0) {
        mdb_txn_abort(child);
    }
    x->rq->txn = wr->txn;
    return rc > 0 ? kv__mdb_err(rc) : rc;
}

int kv_txn(struct kv_write *wr, const struct kv_txn_req *req,
           struct kv_result *res, struct kv_txn_resp *resp, int64_t *rev)
{
    struct kv_req rq;
    memset(resp, 0, sizeof(*resp));
    int rc = kv__write_ok(wr);
    if (rc != 0) {
        return rc;
    }
    rc = txn_check(wr->kv, req);
    uint64_t cost = txn_cost(req);
    if (rc == 0 && cost > 0) {
        rc = kv__quota(wr, cost);
    }
    if (rc != 0) {
        return rc;
    }
    kv__req_begin(&rq, wr, wr->txn, res);
    struct tx x = {.kv = wr->kv, .txn = wr->txn, .rq = &rq, .res = res};
    x.pre_rev = wr->rev;
    x.compact = wr->compact;
    rc = prepare(&x, req, !kv_txn_is_read_only(req));
    rc = rc != 0 ? rc : txn_run(&x, req, resp);
    mem_free(x.path.v);
    if (rc != 0) {
        kv__ev_reset(&wr->ev);
        memset(resp, 0, sizeof(*resp));
        return rc;
    }
    if (rq.wrote) {
        wr->rev = rq.main;
        wr->join_rev = rq.main;
        wr->join_sub = rq.sub;
        wr->cost_bytes += cost;
    }
    kv__ev_emit(wr);
    if (rev != NULL) {
        *rev = wr->rev;
    }
    return 0;
}

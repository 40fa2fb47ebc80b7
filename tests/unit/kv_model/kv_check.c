/*
 * kv_check.c - field-by-field comparison of store and model answers.
 */
#include "tests/unit/kv_model/kv_check.h"

#include <inttypes.h>
#include <string.h>

void chk_dump_bytes(FILE *f, const uint8_t *p, size_t n)
{
    fputc('"', f);
    size_t shown = n > 48 ? 48 : n;
    for (size_t i = 0; i < shown; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
            fputc(p[i], f);
        } else {
            fprintf(f, "\\x%02x", p[i]);
        }
    }
    fputc('"', f);
    if (shown < n) {
        fprintf(f, "...(%zu bytes)", n);
    }
}

void chk_dump_kv(FILE *f, const char *indent, const struct kv_kv *kv)
{
    fprintf(f, "%s{key ", indent);
    chk_dump_bytes(f, kv->key, kv->key_len);
    fprintf(f, " value ");
    chk_dump_bytes(f, kv->value, kv->value_len);
    fprintf(f,
            " create %" PRId64 " mod %" PRId64 " version %" PRId64
            " lease %" PRId64 "}\n",
            kv->create_revision, kv->mod_revision, kv->version, kv->lease);
}

void chk_dump_range_req(FILE *f, const char *indent,
                        const struct kv_range_req *r)
{
    fprintf(f, "%srange key ", indent);
    chk_dump_bytes(f, r->key, r->key_len);
    fprintf(f, " end ");
    chk_dump_bytes(f, r->range_end, r->range_end_len);
    fprintf(f,
            " rev %" PRId64 " limit %" PRId64 " order %d target %d keys_only"
            " %d count_only %d mod [%" PRId64 ",%" PRId64 "] create [%" PRId64
            ",%" PRId64 "]\n",
            r->revision, r->limit, (int)r->sort_order, (int)r->sort_target,
            r->keys_only, r->count_only, r->min_mod_revision,
            r->max_mod_revision, r->min_create_revision,
            r->max_create_revision);
}

static void dump_ops(FILE *f, const char *indent, const char *what,
                     const struct kv_op *ops, size_t n)
{
    char deeper[64];
    snprintf(deeper, sizeof(deeper), "%s    ", indent);
    fprintf(f, "%s  %s (%zu):\n", indent, what, n);
    for (size_t i = 0; i < n; i++) {
        const struct kv_op *op = &ops[i];
        switch (op->type) {
        case KV_OP_RANGE:
            chk_dump_range_req(f, deeper, &op->u.range);
            break;
        case KV_OP_PUT:
            fprintf(f, "%sput key ", deeper);
            chk_dump_bytes(f, op->u.put.key, op->u.put.key_len);
            fprintf(f, " value ");
            chk_dump_bytes(f, op->u.put.value, op->u.put.value_len);
            fprintf(f,
                    " lease %" PRId64 " prev_kv %d ignore_value %d "
                    "ignore_lease %d\n",
                    op->u.put.lease, op->u.put.prev_kv, op->u.put.ignore_value,
                    op->u.put.ignore_lease);
            break;
        case KV_OP_DELETE:
            fprintf(f, "%sdelete key ", deeper);
            chk_dump_bytes(f, op->u.del.key, op->u.del.key_len);
            fprintf(f, " end ");
            chk_dump_bytes(f, op->u.del.range_end, op->u.del.range_end_len);
            fprintf(f, " prev_kv %d\n", op->u.del.prev_kv);
            break;
        case KV_OP_TXN:
            chk_dump_txn_req(f, deeper, op->u.txn);
            break;
        }
    }
}

void chk_dump_txn_req(FILE *f, const char *indent, const struct kv_txn_req *t)
{
    static const char *const res[] = {"==", ">", "<", "!="};
    static const char *const tgt[] = {"VERSION", "CREATE", "MOD", "VALUE",
                                      "LEASE"};
    fprintf(f, "%stxn compares (%zu):\n", indent, t->compares_count);
    for (size_t i = 0; i < t->compares_count; i++) {
        const struct kv_compare *c = &t->compares[i];
        fprintf(f, "%s    ", indent);
        if ((unsigned)c->target <= KV_CMP_LEASE) {
            fprintf(f, "%s(", tgt[c->target]);
        } else {
            fprintf(f, "target%d(", (int)c->target);
        }
        chk_dump_bytes(f, c->key, c->key_len);
        if (c->range_end_len > 0) {
            fprintf(f, "..");
            chk_dump_bytes(f, c->range_end, c->range_end_len);
        }
        if ((unsigned)c->result <= KV_CMP_NOT_EQUAL) {
            fprintf(f, ") %s ", res[c->result]);
        } else {
            fprintf(f, ") result%d ", (int)c->result);
        }
        if (c->target == KV_CMP_VALUE) {
            chk_dump_bytes(f, c->value, c->value_len);
            fputc('\n', f);
        } else {
            fprintf(f, "%" PRId64 "\n", c->number);
        }
    }
    dump_ops(f, indent, "success", t->success, t->success_count);
    dump_ops(f, indent, "failure", t->failure, t->failure_count);
}

void chk_dump_range(FILE *f, const char *indent, const struct kv_range_resp *r)
{
    fprintf(f, "%srange: count %" PRId64 " more %d kvs %zu\n", indent, r->count,
            r->more, r->kvs_count);
    char deeper[64];
    snprintf(deeper, sizeof(deeper), "%s  ", indent);
    for (size_t i = 0; i < r->kvs_count; i++) {
        chk_dump_kv(f, deeper, &r->kvs[i]);
    }
}

void chk_dump_txn(FILE *f, const char *indent, const struct kv_txn_resp *t)
{
    char deeper[64];
    snprintf(deeper, sizeof(deeper), "%s  ", indent);
    fprintf(f, "%stxn: succeeded %d responses %zu\n", indent, t->succeeded,
            t->responses_count);
    for (size_t i = 0; i < t->responses_count; i++) {
        const struct kv_op_resp *r = &t->responses[i];
        switch (r->type) {
        case KV_OP_RANGE:
            chk_dump_range(f, deeper, &r->u.range);
            break;
        case KV_OP_PUT:
            fprintf(f, "%sput: has_prev %d\n", deeper, r->u.put.has_prev);
            if (r->u.put.has_prev) {
                chk_dump_kv(f, deeper, &r->u.put.prev_kv);
            }
            break;
        case KV_OP_DELETE:
            fprintf(f, "%sdelete: deleted %" PRId64 " prev_kvs %zu\n", deeper,
                    r->u.del.deleted, r->u.del.prev_kvs_count);
            for (size_t j = 0; j < r->u.del.prev_kvs_count; j++) {
                chk_dump_kv(f, deeper, &r->u.del.prev_kvs[j]);
            }
            break;
        case KV_OP_TXN:
            if (r->u.txn != NULL) {
                chk_dump_txn(f, deeper, r->u.txn);
            } else {
                fprintf(f, "%stxn: NULL\n", deeper);
            }
            break;
        default:
            fprintf(f, "%sresponse of unknown type %d\n", deeper, (int)r->type);
        }
    }
}

void chk_dump_events(FILE *f, const char *indent, const struct kv_event *ev,
                     size_t n)
{
    char deeper[64];
    snprintf(deeper, sizeof(deeper), "%s    prev ", indent);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s%s ", indent,
                ev[i].type == KV_EVENT_PUT ? "PUT   " : "DELETE");
        chk_dump_kv(f, "", &ev[i].kv);
        if (ev[i].has_prev) {
            chk_dump_kv(f, deeper, &ev[i].prev);
        }
    }
}

static bool bytes_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

bool chk_kv_eq(const struct kv_kv *a, const struct kv_kv *b)
{
    return bytes_eq(a->key, a->key_len, b->key, b->key_len) &&
           bytes_eq(a->value, a->value_len, b->value, b->value_len) &&
           a->create_revision == b->create_revision &&
           a->mod_revision == b->mod_revision && a->version == b->version &&
           a->lease == b->lease;
}

static int sort_value_cmp(const struct kv_kv *a, const struct kv_kv *b,
                          enum kv_sort_target t)
{
    switch (t) {
    case KV_SORT_VERSION:
        return a->version == b->version ? 0 : 1;
    case KV_SORT_CREATE:
        return a->create_revision == b->create_revision ? 0 : 1;
    case KV_SORT_MOD:
        return a->mod_revision == b->mod_revision ? 0 : 1;
    case KV_SORT_VALUE:
        return bytes_eq(a->value, a->value_len, b->value, b->value_len) ? 0 : 1;
    case KV_SORT_KEY:
        break;
    }
    return bytes_eq(a->key, a->key_len, b->key, b->key_len) ? 0 : 1;
}

/* Equal up to the order of records whose sort values tie? */
static bool range_kvs_tolerant(FILE *f, const struct kv_range_req *req,
                               const struct kv_range_resp *got,
                               const struct kv_range_resp *want)
{
    size_t nfull = 0;
    const struct kv_kv *full = mdl_range_full(want, &nfull);
    if (full == NULL || nfull < got->kvs_count) {
        fprintf(f, "  (model gave no full list)\n");
        return false;
    }
    for (size_t i = 0; i < got->kvs_count; i++) {
        const struct kv_kv *g = &got->kvs[i];
        const struct kv_kv *m = NULL;
        for (size_t j = 0; j < nfull; j++) {
            if (bytes_eq(g->key, g->key_len, full[j].key, full[j].key_len)) {
                m = &full[j];
            }
        }
        for (size_t j = 0; j < i; j++) {
            if (bytes_eq(g->key, g->key_len, got->kvs[j].key,
                         got->kvs[j].key_len)) {
                fprintf(f, "  kvs[%zu] repeats a key\n", i);
                return false;
            }
        }
        if (m == NULL) {
            fprintf(f, "  kvs[%zu] is not a record the model has\n", i);
            return false;
        }
        struct kv_kv expect = *m;
        if (req->keys_only) {
            expect.value = NULL;
            expect.value_len = 0;
        }
        if (!chk_kv_eq(g, &expect)) {
            fprintf(f, "  kvs[%zu] fields differ from the model's record\n", i);
            return false;
        }
        if (sort_value_cmp(m, &full[i], req->sort_target) != 0) {
            fprintf(f, "  kvs[%zu] is out of sort order\n", i);
            return false;
        }
    }
    return true;
}

static bool range_kvs_ok(FILE *f, const struct kv_range_req *req,
                         const struct kv_range_resp *got,
                         const struct kv_range_resp *want)
{
    size_t i = 0;
    while (i < got->kvs_count && chk_kv_eq(&got->kvs[i], &want->kvs[i])) {
        i++;
    }
    if (i == got->kvs_count) {
        return true;
    }
    fprintf(f, "  kvs[%zu] differs\n", i);
    if (req->sort_target != KV_SORT_KEY &&
        range_kvs_tolerant(f, req, got, want)) {
        fprintf(f, "  (only the order of records whose sort values tie "
                   "differs: kv.h orders ties by key, reversed with the "
                   "order)\n");
    }
    return false;
}

bool chk_range(FILE *f, const struct kv_range_req *req,
               const struct kv_range_resp *got,
               const struct kv_range_resp *want)
{
    bool ok = got->count == want->count && got->more == want->more &&
              got->kvs_count == want->kvs_count;
    if (!ok) {
        fprintf(f, "  count/more/kvs_count differ\n");
    } else {
        ok = range_kvs_ok(f, req, got, want);
    }
    if (!ok) {
        chk_dump_range_req(f, "  request: ", req);
        chk_dump_range(f, "  store ", got);
        chk_dump_range(f, "  model ", want);
    }
    return ok;
}

bool chk_put(FILE *f, const struct kv_put_resp *got,
             const struct kv_put_resp *want)
{
    bool ok = got->has_prev == want->has_prev &&
              (!got->has_prev || chk_kv_eq(&got->prev_kv, &want->prev_kv));
    if (!ok) {
        fprintf(f, "  put answers differ: store has_prev %d, model %d\n",
                got->has_prev, want->has_prev);
        if (got->has_prev) {
            chk_dump_kv(f, "  store prev ", &got->prev_kv);
        }
        if (want->has_prev) {
            chk_dump_kv(f, "  model prev ", &want->prev_kv);
        }
    }
    return ok;
}

bool chk_delete(FILE *f, const struct kv_delete_resp *got,
                const struct kv_delete_resp *want)
{
    bool ok = got->deleted == want->deleted &&
              got->prev_kvs_count == want->prev_kvs_count;
    for (size_t i = 0; ok && i < got->prev_kvs_count; i++) {
        ok = chk_kv_eq(&got->prev_kvs[i], &want->prev_kvs[i]);
    }
    if (!ok) {
        fprintf(f,
                "  delete answers differ: store deleted %" PRId64
                " prev %zu, model deleted %" PRId64 " prev %zu\n",
                got->deleted, got->prev_kvs_count, want->deleted,
                want->prev_kvs_count);
        for (size_t i = 0; i < got->prev_kvs_count; i++) {
            chk_dump_kv(f, "  store prev ", &got->prev_kvs[i]);
        }
        for (size_t i = 0; i < want->prev_kvs_count; i++) {
            chk_dump_kv(f, "  model prev ", &want->prev_kvs[i]);
        }
    }
    return ok;
}

static bool txn_eq(FILE *f, const struct kv_txn_req *req,
                   const struct kv_txn_resp *got,
                   const struct kv_txn_resp *want)
{
    if (got->succeeded != want->succeeded ||
        got->responses_count != want->responses_count) {
        fprintf(f, "  txn succeeded/responses differ (%d/%zu vs %d/%zu)\n",
                got->succeeded, got->responses_count, want->succeeded,
                want->responses_count);
        return false;
    }
    const struct kv_op *ops = want->succeeded ? req->success : req->failure;
    for (size_t i = 0; i < got->responses_count; i++) {
        const struct kv_op_resp *g = &got->responses[i];
        const struct kv_op_resp *w = &want->responses[i];
        if (g->type != w->type) {
            fprintf(f, "  response %zu has type %d, want %d\n", i, (int)g->type,
                    (int)w->type);
            return false;
        }
        bool ok = true;
        switch (w->type) {
        case KV_OP_RANGE:
            ok = chk_range(f, &ops[i].u.range, &g->u.range, &w->u.range);
            break;
        case KV_OP_PUT:
            ok = chk_put(f, &g->u.put, &w->u.put);
            break;
        case KV_OP_DELETE:
            ok = chk_delete(f, &g->u.del, &w->u.del);
            break;
        case KV_OP_TXN:
            ok =
                g->u.txn != NULL && txn_eq(f, ops[i].u.txn, g->u.txn, w->u.txn);
            break;
        }
        if (!ok) {
            fprintf(f, "  (in response %zu)\n", i);
            return false;
        }
    }
    return true;
}

bool chk_txn(FILE *f, const struct kv_txn_req *req,
             const struct kv_txn_resp *got, const struct kv_txn_resp *want)
{
    bool ok = txn_eq(f, req, got, want);
    if (!ok) {
        chk_dump_txn_req(f, "  ", req);
        chk_dump_txn(f, "  store ", got);
        chk_dump_txn(f, "  model ", want);
    }
    return ok;
}

bool chk_events(FILE *f, const struct kv_event *got, size_t got_n,
                const struct kv_event *want, size_t want_n, bool compare_prev)
{
    bool ok = got_n == want_n;
    for (size_t i = 0; ok && i < got_n; i++) {
        ok = got[i].type == want[i].type && chk_kv_eq(&got[i].kv, &want[i].kv);
        if (ok && compare_prev) {
            ok = got[i].has_prev == want[i].has_prev &&
                 (!got[i].has_prev || chk_kv_eq(&got[i].prev, &want[i].prev));
        }
    }
    if (!ok) {
        fprintf(f, "  events differ: store %zu, model %zu\n", got_n, want_n);
        fprintf(f, "  store events:\n");
        chk_dump_events(f, "    ", got, got_n);
        fprintf(f, "  model events:\n");
        chk_dump_events(f, "    ", want, want_n);
    }
    return ok;
}

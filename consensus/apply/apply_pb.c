/*
 * apply_pb.c - etcd responses encoded straight from the store's results.
 *
 * protobuf-c would need every answer rebuilt as a tree of its structs
 * before packing; for a range of thousands of keys that is one allocation
 * and one copy per key for nothing. These writers emit the protobuf wire
 * format (varints, length-delimited fields; zero values omitted as proto3
 * does) from struct kv_kv and friends. Nested messages need their size
 * first, so each message has a size function and an encode function that
 * agree; apply_pb_selftest-style round trips against protobuf-c's decoder
 * live in tests/unit/apply.
 *
 * Field numbers are etcd's (proto/rpc.proto, proto/kv.proto).
 */
#include "consensus/apply/apply_int.h"

#include <string.h>

#include "base/assert.h"
#include "base/buf.h"

size_t pb_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Size of a varint field (omitted when zero). */
static size_t f_varint_size(uint64_t v)
{
    return v == 0 ? 0 : 1 + pb_varint_size(v);
}

/* Size of a length-delimited field (omitted when empty unless forced). */
static size_t f_bytes_size(size_t len, bool force)
{
    return (len == 0 && !force) ? 0 : 1 + pb_varint_size(len) + len;
}

static int w_tag(struct buf *out, uint32_t field, uint32_t wire)
{
    return buf_append_varint(out, (uint64_t)field << 3 | wire);
}

static int w_varint(struct buf *out, uint32_t field, uint64_t v)
{
    if (v == 0) {
        return 0;
    }
    int rc = w_tag(out, field, 0);
    return rc != 0 ? rc : buf_append_varint(out, v);
}

static int w_bytes(struct buf *out, uint32_t field, const void *p, size_t len,
                   bool force)
{
    int rc;
    if (len == 0 && !force) {
        return 0;
    }
    rc = w_tag(out, field, 2);
    if (rc == 0) {
        rc = buf_append_varint(out, len);
    }
    if (rc == 0) {
        rc = buf_append(out, p, len);
    }
    return rc;
}

/* Start a nested message of known size. */
static int w_msg(struct buf *out, uint32_t field, size_t size)
{
    int rc = w_tag(out, field, 2);
    return rc != 0 ? rc : buf_append_varint(out, size);
}

/* ----------------------------------------------------------- KeyValue */

size_t apply_kv_size(const struct kv_kv *kv)
{
    return f_bytes_size(kv->key_len, false) +
           f_varint_size((uint64_t)kv->create_revision) +
           f_varint_size((uint64_t)kv->mod_revision) +
           f_varint_size((uint64_t)kv->version) +
           f_bytes_size(kv->value_len, false) +
           f_varint_size((uint64_t)kv->lease);
}

void apply_kv_to_pb(const struct kv_kv *kv, Mvccpb__KeyValue *out)
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

int apply_encode_kv(const struct kv_kv *kv, struct buf *out)
{
    int rc = w_bytes(out, 1, kv->key, kv->key_len, false);
    if (rc == 0) {
        rc = w_varint(out, 2, (uint64_t)kv->create_revision);
    }
    if (rc == 0) {
        rc = w_varint(out, 3, (uint64_t)kv->mod_revision);
    }
    if (rc == 0) {
        rc = w_varint(out, 4, (uint64_t)kv->version);
    }
    if (rc == 0) {
        rc = w_bytes(out, 5, kv->value, kv->value_len, false);
    }
    if (rc == 0) {
        rc = w_varint(out, 6, (uint64_t)kv->lease);
    }
    return rc;
}

static size_t f_kv_size(const struct kv_kv *kv)
{
    return f_bytes_size(apply_kv_size(kv), true);
}

static int w_kv(struct buf *out, uint32_t field, const struct kv_kv *kv)
{
    int rc = w_msg(out, field, apply_kv_size(kv));
    return rc != 0 ? rc : apply_encode_kv(kv, out);
}

/* ------------------------------------------------------------- header */

static size_t header_size(const struct pb_header *h)
{
    return f_varint_size(h->cluster_id) + f_varint_size(h->member_id) +
           f_varint_size((uint64_t)h->revision) + f_varint_size(h->raft_term);
}

static size_t f_header_size(const struct pb_header *h)
{
    return f_bytes_size(header_size(h), true);
}

/* A varint field into p (nothing when zero); its size. */
static size_t put_varint_field(uint8_t *p, uint8_t field, uint64_t v)
{
    if (v == 0) {
        return 0;
    }
    p[0] = (uint8_t)(field << 3);
    return 1 + varint_put(p + 1, v);
}

/* Every response starts with one: written in one append, not nine (a put's
 * answer is little else). */
static int w_header(struct buf *out, const struct pb_header *h)
{
    /* tag and a one-byte length, four fields of at most 1 + 10 bytes */
    uint8_t b[2 + 4 * 11];
    size_t size = header_size(h);
    size_t n = 2;
    ASSERT(size < 0x80);
    b[0] = 1 << 3 | 2;
    b[1] = (uint8_t)size;
    n += put_varint_field(b + n, 1, h->cluster_id);
    n += put_varint_field(b + n, 2, h->member_id);
    n += put_varint_field(b + n, 3, (uint64_t)h->revision);
    n += put_varint_field(b + n, 4, h->raft_term);
    ASSERT(n == 2 + size);
    return buf_append(out, b, n);
}

/* --------------------------------------------------------- RangeResponse */

size_t pb_range_size(const struct pb_header *h, const struct kv_range_resp *r)
{
    size_t n = f_header_size(h);
    for (size_t i = 0; i < r->kvs_count; i++) {
        n += f_kv_size(&r->kvs[i]);
    }
    return n + (r->more ? 2 : 0) + f_varint_size((uint64_t)r->count);
}

int pb_range_encode(const struct pb_header *h, const struct kv_range_resp *r,
                    struct buf *out)
{
    int rc = buf_reserve(out, pb_range_size(h, r));
    if (rc == 0) {
        rc = w_header(out, h);
    }
    for (size_t i = 0; rc == 0 && i < r->kvs_count; i++) {
        rc = w_kv(out, 2, &r->kvs[i]);
    }
    if (rc == 0) {
        rc = w_varint(out, 3, r->more ? 1 : 0);
    }
    if (rc == 0) {
        rc = w_varint(out, 4, (uint64_t)r->count);
    }
    return rc;
}

/* ----------------------------------------------------------- PutResponse */

size_t pb_put_size(const struct pb_header *h, const struct kv_put_resp *r)
{
    return f_header_size(h) + (r->has_prev ? f_kv_size(&r->prev_kv) : 0);
}

int pb_put_encode(const struct pb_header *h, const struct kv_put_resp *r,
                  struct buf *out)
{
    int rc = w_header(out, h);
    if (rc == 0 && r->has_prev) {
        rc = w_kv(out, 2, &r->prev_kv);
    }
    return rc;
}

/* --------------------------------------------------- DeleteRangeResponse */

size_t pb_delete_size(const struct pb_header *h, const struct kv_delete_resp *r)
{
    size_t n = f_header_size(h) + f_varint_size((uint64_t)r->deleted);
    for (size_t i = 0; i < r->prev_kvs_count; i++) {
        n += f_kv_size(&r->prev_kvs[i]);
    }
    return n;
}

int pb_delete_encode(const struct pb_header *h, const struct kv_delete_resp *r,
                     struct buf *out)
{
    int rc = w_header(out, h);
    if (rc == 0) {
        rc = w_varint(out, 2, (uint64_t)r->deleted);
    }
    for (size_t i = 0; rc == 0 && i < r->prev_kvs_count; i++) {
        rc = w_kv(out, 3, &r->prev_kvs[i]);
    }
    return rc;
}

/* ----------------------------------------------------------- TxnResponse
 * Inner responses carry a header holding only the revision, as etcd's do:
 * a read sees the txn's start revision, or start + 1 once an earlier op of
 * the whole txn (an enclosing txn's included) changed something; a write
 * reports start + 1. A nested txn's own header is empty, as etcd 3.4's is
 * (its newTxnResp gives each one a blank header). */

static bool op_resp_wrote(const struct kv_op_resp *r);

static bool txn_resp_wrote(const struct kv_txn_resp *t)
{
    for (size_t i = 0; i < t->responses_count; i++) {
        if (op_resp_wrote(&t->responses[i])) {
            return true;
        }
    }
    return false;
}

static bool op_resp_wrote(const struct kv_op_resp *r)
{
    switch (r->type) {
    case KV_OP_PUT:
        return true;
    case KV_OP_DELETE:
        return r->u.del.deleted > 0;
    case KV_OP_TXN:
        return txn_resp_wrote(r->u.txn);
    default:
        return false;
    }
}

static size_t txn_body_size(const struct pb_header *h,
                            const struct kv_txn_resp *t, int64_t start_rev,
                            bool wrote_before);

static size_t op_body_size(const struct kv_op_resp *r, int64_t start_rev,
                           bool wrote_before)
{
    struct pb_header ih = {0};
    ih.revision = start_rev + (wrote_before ? 1 : 0);
    switch (r->type) {
    case KV_OP_RANGE:
        return pb_range_size(&ih, &r->u.range);
    case KV_OP_PUT:
        ih.revision = start_rev + 1;
        return pb_put_size(&ih, &r->u.put);
    case KV_OP_DELETE:
        ih.revision = start_rev + (wrote_before || r->u.del.deleted > 0);
        return pb_delete_size(&ih, &r->u.del);
    case KV_OP_TXN:
        ih.revision = 0;
        return txn_body_size(&ih, r->u.txn, start_rev, wrote_before);
    }
    return 0;
}

/* ResponseOp: one of fields 1..4 holding the inner response. */
static size_t op_size(const struct kv_op_resp *r, int64_t start_rev,
                      bool wrote_before)
{
    return f_bytes_size(op_body_size(r, start_rev, wrote_before), true);
}

static size_t txn_body_size(const struct pb_header *h,
                            const struct kv_txn_resp *t, int64_t start_rev,
                            bool wrote_before)
{
    size_t n = f_header_size(h) + (t->succeeded ? 2 : 0);
    bool wrote = wrote_before;
    for (size_t i = 0; i < t->responses_count; i++) {
        n += f_bytes_size(op_size(&t->responses[i], start_rev, wrote), true);
        wrote = wrote || op_resp_wrote(&t->responses[i]);
    }
    return n;
}

static int txn_body_encode(const struct pb_header *h,
                           const struct kv_txn_resp *t, int64_t start_rev,
                           bool wrote_before, struct buf *out, int depth);

static int op_encode(const struct kv_op_resp *r, int64_t start_rev,
                     bool wrote_before, struct buf *out, int depth)
{
    struct pb_header ih = {0};
    int rc;
    ih.revision = start_rev + (wrote_before ? 1 : 0);
    rc = w_msg(out, (uint32_t)r->type + 1,
               op_body_size(r, start_rev, wrote_before));
    if (rc != 0) {
        return rc;
    }
    switch (r->type) {
    case KV_OP_RANGE:
        return pb_range_encode(&ih, &r->u.range, out);
    case KV_OP_PUT:
        ih.revision = start_rev + 1;
        return pb_put_encode(&ih, &r->u.put, out);
    case KV_OP_DELETE:
        ih.revision = start_rev + (wrote_before || r->u.del.deleted > 0);
        return pb_delete_encode(&ih, &r->u.del, out);
    case KV_OP_TXN:
        ih.revision = 0;
        return txn_body_encode(&ih, r->u.txn, start_rev, wrote_before, out,
                               depth + 1);
    }
    return ERR_INVALID;
}

static int txn_body_encode(const struct pb_header *h,
                           const struct kv_txn_resp *t, int64_t start_rev,
                           bool wrote_before, struct buf *out, int depth)
{
    bool wrote = wrote_before;
    int rc;
    ASSERT(depth <= APPLY_TXN_DEPTH_MAX + 1);
    rc = w_header(out, h);
    if (rc == 0) {
        rc = w_varint(out, 2, t->succeeded ? 1 : 0);
    }
    for (size_t i = 0; rc == 0 && i < t->responses_count; i++) {
        rc = w_msg(out, 3, op_size(&t->responses[i], start_rev, wrote));
        if (rc == 0) {
            rc = op_encode(&t->responses[i], start_rev, wrote, out, depth);
        }
        wrote = wrote || op_resp_wrote(&t->responses[i]);
    }
    return rc;
}

int pb_txn_encode(const struct pb_header *h, const struct kv_txn_resp *t,
                  int64_t start_rev, struct buf *out)
{
    int rc = buf_reserve(out, txn_body_size(h, t, start_rev, false));
    return rc != 0 ? rc : txn_body_encode(h, t, start_rev, false, out, 0);
}

/* ------------------------------------------------- small responses */

int pb_header_only_encode(const struct pb_header *h, struct buf *out)
{
    return w_header(out, h);
}

int pb_lease_grant_encode(const struct pb_header *h, int64_t id, int64_t ttl,
                          struct buf *out)
{
    int rc = w_header(out, h);
    if (rc == 0) {
        rc = w_varint(out, 2, (uint64_t)id);
    }
    if (rc == 0) {
        rc = w_varint(out, 3, (uint64_t)ttl);
    }
    return rc;
}

int pb_alarm_encode(const struct pb_header *h, const struct apply_alarm *al,
                    size_t count, struct buf *out)
{
    /* etcd 3.4's Alarm answer carries no header at all (its maintenance
     * server forwards the applier's response without filling one). */
    int rc = 0;
    (void)h;
    for (size_t i = 0; rc == 0 && i < count; i++) {
        size_t sz = f_varint_size(al[i].member_id) +
                    f_varint_size((uint64_t)al[i].type);
        rc = w_msg(out, 2, sz);
        if (rc == 0) {
            rc = w_varint(out, 1, al[i].member_id);
        }
        if (rc == 0) {
            rc = w_varint(out, 2, (uint64_t)al[i].type);
        }
    }
    return rc;
}

/* ------------------------------------------------ txn nesting pre-check */

/* Walk a message's fields; for each length-delimited field `nest_field`
 * call down into it with `next`. Every length is checked against what is
 * left; the depth is bounded. */
static int walk(const uint8_t *p, size_t len, int depth, int max_depth,
                bool in_txn);

static int walk_fields(const uint8_t *p, size_t len, int depth, int max_depth,
                       bool in_txn)
{
    struct reader r;
    reader_init(&r, p, len);
    for (size_t guard = 0; reader_left(&r) > 0; guard++) {
        uint64_t key;
        uint64_t v;
        const uint8_t *sub;
        if (reader_varint(&r, &key) != 0) {
            return ERR_BAD_REQUEST;
        }
        uint32_t field = (uint32_t)(key >> 3);
        switch (key & 7) {
        case 0:
            if (reader_varint(&r, &v) != 0) {
                return ERR_BAD_REQUEST;
            }
            break;
        case 1:
            if (reader_bytes(&r, 8, &sub) != 0) {
                return ERR_BAD_REQUEST;
            }
            break;
        case 5:
            if (reader_bytes(&r, 4, &sub) != 0) {
                return ERR_BAD_REQUEST;
            }
            break;
        case 2:
            if (reader_varint(&r, &v) != 0 || v > reader_left(&r) ||
                reader_bytes(&r, (size_t)v, &sub) != 0) {
                return ERR_BAD_REQUEST;
            }
            /* TxnRequest: success = 2, failure = 3 hold RequestOps.
             * RequestOp: request_txn = 4 holds a TxnRequest. */
            if (in_txn && (field == 2 || field == 3)) {
                int rc = walk(sub, (size_t)v, depth, max_depth, false);
                if (rc != 0) {
                    return rc;
                }
            } else if (!in_txn && field == 4) {
                int rc = walk(sub, (size_t)v, depth + 1, max_depth, true);
                if (rc != 0) {
                    return rc;
                }
            }
            break;
        default:
            return ERR_BAD_REQUEST;
        }
    }
    return 0;
}

static int walk(const uint8_t *p, size_t len, int depth, int max_depth,
                bool in_txn)
{
    if (depth > max_depth) {
        return ERR_LIMIT;
    }
    return walk_fields(p, len, depth, max_depth, in_txn);
}

int apply_txn_depth_check(const uint8_t *p, size_t len, int max_depth)
{
    return walk(p, len, 0, max_depth, true);
}

/* ------------------------------------------------------ watch responses */

size_t apply_watch_head(uint8_t *out, uint64_t cluster_id, uint64_t member_id,
                        int64_t revision, uint64_t raft_term, int64_t watch_id,
                        bool fragment)
{
    struct pb_header h = {cluster_id, member_id, revision, raft_term};
    size_t hs = header_size(&h);
    size_t n = 0;
    ASSERT(hs < 0x80);
    out[n++] = 1 << 3 | 2;
    out[n++] = (uint8_t)hs;
    n += put_varint_field(out + n, 1, h.cluster_id);
    n += put_varint_field(out + n, 2, h.member_id);
    n += put_varint_field(out + n, 3, (uint64_t)h.revision);
    n += put_varint_field(out + n, 4, h.raft_term);
    if (watch_id != 0) {
        out[n++] = 2 << 3;
        n += varint_put(out + n, (uint64_t)watch_id);
    }
    if (fragment) {
        out[n++] = 7 << 3;
        out[n++] = 1;
    }
    ASSERT(n <= APPLY_WATCH_HEAD_MAX);
    return n;
}

static size_t event_body_size(const struct kv_event *e)
{
    size_t n = e->type == KV_EVENT_DELETE ? 2 : 0;
    n += f_bytes_size(apply_kv_size(&e->kv), true);
    if (e->has_prev) {
        n += f_bytes_size(apply_kv_size(&e->prev), true);
    }
    return n;
}

size_t apply_watch_event_size(const struct kv_event *e)
{
    return f_bytes_size(event_body_size(e), true);
}

int apply_watch_event_encode(const struct kv_event *e, struct buf *out)
{
    int rc = w_msg(out, 11, event_body_size(e));
    if (rc == 0 && e->type == KV_EVENT_DELETE) {
        rc = w_varint(out, 1, 1); /* mvccpb.Event.DELETE */
    }
    if (rc == 0) {
        rc = w_kv(out, 2, &e->kv);
    }
    if (rc == 0 && e->has_prev) {
        rc = w_kv(out, 3, &e->prev);
    }
    return rc;
}

/*
 * apply_wire.c - a Put entry read straight from its bytes.
 *
 * Nearly every entry a busy member applies is a Put: the PutRequest that
 * the proposer packed with protobuf-c, wrapped by apply_envelope. Decoding
 * it with protobuf-c allocates the envelope, the request, the key and the
 * value, copies both, and frees all four right after the put: about 3,000
 * instructions of the 40,000 a put cost in all (BENCHMARKS.md, "Where the
 * time goes"). This reader fills caller-owned structs instead, with the key
 * and the value pointing into the entry, which outlives the request.
 *
 * It takes only the layout protobuf-c's packer and apply_envelope write,
 * one field after the other in field-number order:
 *
 *   08 varint id | 10 varint origin | 22 len PutRequest      (nothing after)
 *   PutRequest: [0a len key] [12 len value] [18 varint lease]
 *               [20 b prev_kv] [28 b ignore_value] [30 b ignore_lease]
 *               each at most once, in this order; b is 00 or 01
 *
 * and declines everything else (an audit field, another request, unknown
 * or repeated fields, other wire types, overlong tags), so that the caller
 * decodes it with protobuf-c, whose reading defines every entry. Whatever
 * this reader accepts, protobuf-c accepts too and reads into the same
 * values (varints as protobuf-c folds them, length prefixes of at most 5
 * bytes and at most INT_MAX as it requires, an empty bytes field as
 * {0, NULL}): every member, follower or replaying, gets the same request
 * either way.
 *
 * The API reads a client's PutRequest with the same code
 * (apply_put_read_packed), and when the bytes are also exactly what
 * protobuf-c would pack for it (no field at its default, every varint in
 * its shortest form: what etcd's clients send) it proposes the client's
 * bytes as they are, with no unpack, re-pack and free on the loop.
 * tests/unit/apply checks both readers against protobuf-c on packed
 * requests and on random corruptions of them.
 */
#include "consensus/apply/apply_int.h"

#include <limits.h>
#include <string.h>

#include "base/assert.h"
#include "base/buf.h"

/* A length prefix as protobuf-c reads it (scan_length_prefix_data): at
 * most 5 bytes, the value at most INT_MAX and within the input. Returns
 * the prefix's size, or 0 when protobuf-c would refuse it. */
static size_t length_get(const uint8_t *p, size_t len, size_t *out)
{
    uint64_t v;
    size_t n = varint_get(p, len < 5 ? len : 5, &v);
    if (n == 0 || v > INT_MAX || v > len - n) {
        return 0;
    }
    *out = (size_t)v;
    return n;
}

/* One bytes field: tag, length, data. */
static bool bytes_get(struct reader *r, ProtobufCBinaryData *out)
{
    size_t n;
    size_t h = length_get(r->p + r->off, r->len - r->off, &n);
    if (h == 0) {
        return false;
    }
    r->off += h;
    out->len = n;
    out->data = n > 0 ? (uint8_t *)(uintptr_t)(r->p + r->off) : NULL;
    r->off += n;
    return true;
}

static bool varint_field(struct reader *r, uint64_t *out)
{
    size_t n = varint_get(r->p + r->off, r->len - r->off, out);
    r->off += n;
    return n > 0;
}

/* The varint that ends at r->off took n bytes: is it the shortest form? */
static bool shortest(const struct reader *r, size_t n)
{
    return n == 1 || r->p[r->off - 1] != 0;
}

/* A bool in its one-byte form (protobuf-c reads longer ones too; they are
 * left to it). */
static bool bool_field(struct reader *r, protobuf_c_boolean *out)
{
    if (r->off == r->len || r->p[r->off] > 1) {
        return false;
    }
    *out = r->p[r->off++];
    return true;
}

/* One field of a PutRequest, its tag read. *packed is cleared when the
 * field is not as protobuf-c writes it: at its default value (which it
 * leaves out) or in a longer form than the shortest. */
static bool put_field(struct reader *r, uint8_t tag,
                      Etcdserverpb__PutRequest *put, bool *packed)
{
    size_t at = r->off;
    uint64_t lease;
    bool ok;
    switch (tag) {
    case 1 << 3 | 2:
        ok = bytes_get(r, &put->key);
        *packed = *packed && put->key.len > 0 &&
                  r->off - at == pb_varint_size(put->key.len) + put->key.len;
        return ok;
    case 2 << 3 | 2:
        ok = bytes_get(r, &put->value);
        *packed =
            *packed && put->value.len > 0 &&
            r->off - at == pb_varint_size(put->value.len) + put->value.len;
        return ok;
    case 3 << 3 | 0:
        ok = varint_field(r, &lease);
        put->lease = (int64_t)lease;
        *packed = *packed && ok && lease != 0 && shortest(r, r->off - at);
        return ok;
    case 4 << 3 | 0:
        ok = bool_field(r, &put->prev_kv);
        break;
    case 5 << 3 | 0:
        ok = bool_field(r, &put->ignore_value);
        break;
    case 6 << 3 | 0:
        ok = bool_field(r, &put->ignore_lease);
        break;
    default:
        return false; /* a wire type protobuf-c would refuse */
    }
    *packed = *packed && ok && r->p[at] == 1;
    return ok;
}

/* PutRequest fields 1-6, each at most once, in order. */
static bool put_fields(struct reader *r, Etcdserverpb__PutRequest *put,
                       bool *packed)
{
    uint8_t last = 0;
    *packed = true;
    while (r->off < r->len) {
        uint8_t tag = r->p[r->off++];
        if ((tag >> 3) <= last || (tag >> 3) > 6) {
            return false;
        }
        last = (uint8_t)(tag >> 3);
        if (!put_field(r, tag, put, packed)) {
            return false;
        }
    }
    return true;
}

bool apply_put_read_packed(const uint8_t *p, size_t len,
                           Etcdserverpb__PutRequest *put)
{
    static const Etcdserverpb__PutRequest put0 =
        ETCDSERVERPB__PUT_REQUEST__INIT;
    struct reader r;
    bool packed;
    if (p == NULL && len > 0) {
        return false;
    }
    *put = put0;
    reader_init(&r, p, len);
    return put_fields(&r, put, &packed) && packed;
}

bool apply__put_decode(const uint8_t *p, size_t len,
                       Cairnpb__InternalRequest *req,
                       Etcdserverpb__PutRequest *put)
{
    static const Cairnpb__InternalRequest req0 =
        CAIRNPB__INTERNAL_REQUEST__INIT;
    static const Etcdserverpb__PutRequest put0 =
        ETCDSERVERPB__PUT_REQUEST__INIT;
    struct reader r;
    size_t body;
    size_t h;
    bool packed; /* a Put entry need not be, protobuf-c reads it alike */
    if (p == NULL || len < 6 || p[0] != (1 << 3 | 0)) {
        return false;
    }
    *req = req0;
    *put = put0;
    reader_init(&r, p, len);
    r.off = 1;
    if (!varint_field(&r, &req->id) || r.off == len ||
        p[r.off++] != (2 << 3 | 0) || !varint_field(&r, &req->origin) ||
        r.off == len || p[r.off++] != (APPLY_PUT << 3 | 2)) {
        return false;
    }
    h = length_get(p + r.off, len - r.off, &body);
    /* the request is the envelope's last field */
    if (h == 0 || r.off + h + body != len) {
        return false;
    }
    r.off += h;
    if (!put_fields(&r, put, &packed)) {
        return false;
    }
    ASSERT(r.off == len);
    req->request_case = CAIRNPB__INTERNAL_REQUEST__REQUEST_PUT;
    req->put = put;
    return true;
}

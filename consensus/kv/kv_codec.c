/*
 * kv_codec.c - record layouts, key spans and LMDB error mapping.
 *
 * The byte tables are in kv.h. Records come from disk, so every decoder
 * checks lengths and answers ERR_CORRUPT rather than asserting.
 */
#include <errno.h>
#include <string.h>

#include "base/assert.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"
#include "consensus/kv/kv_int.h"

void kv__revkey(uint8_t out[KV_REVKEY_LEN], int64_t main, uint32_t sub)
{
    be64_put(out, (uint64_t)main);
    be32_put(out + 8, sub);
}

void kv__idx(uint8_t out[KV_IDX_LEN], int64_t main, uint32_t sub, uint8_t type)
{
    be64_put(out, (uint64_t)main);
    be32_put(out + 8, sub);
    out[12] = type;
}

int kv__live_decode(const MDB_val *k, const MDB_val *v, struct kv_rec *out)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size != KV_LIVEHDR_LEN || k->mv_size == 0) {
        return ERR_CORRUPT;
    }
    out->type = KV_REC_PUT;
    out->lazy = true;
    out->key = k->mv_data;
    out->key_len = k->mv_size;
    out->create = (int64_t)be64_get(p);
    out->mod = (int64_t)be64_get(p + 8);
    out->version = (int64_t)be64_get(p + 16);
    out->lease = (int64_t)be64_get(p + 24);
    out->sub = be32_get(p + 32);
    out->value = NULL;
    out->value_len = 0;
    return 0;
}

int kv__value_load(MDB_txn *txn, struct kv *kv, MDB_cursor *cur,
                   struct kv_rec *r)
{
    uint8_t rk[KV_REVKEY_LEN];
    struct kv_rec h;
    int rc;
    if (!r->lazy) {
        return 0;
    }
    kv__revkey(rk, r->mod, r->sub);
    MDB_val k = {KV_REVKEY_LEN, rk}, d;
    if (cur != NULL) {
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET);
        k = (MDB_val){KV_REVKEY_LEN, rk};
    } else {
        rc = mdb_get(txn, kv->dbi[KV_DBI_REV], &k, &d);
    }
    if (rc == MDB_NOTFOUND) {
        return ERR_CORRUPT; /* a live key always has its rev record */
    }
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = kv__rev_decode(&k, &d, &h);
    if (rc != 0) {
        return rc;
    }
    if (h.type != KV_REC_PUT ||
        kv__bytes_cmp(h.key, h.key_len, r->key, r->key_len) != 0) {
        return ERR_CORRUPT;
    }
    r->value = h.value;
    r->value_len = h.value_len;
    r->lazy = false;
    return 0;
}

int kv__rev_decode(const MDB_val *k, const MDB_val *v, struct kv_rec *out)
{
    const uint8_t *p = v->mv_data;
    const uint8_t *kp = k->mv_data;
    if (k->mv_size != KV_REVKEY_LEN || v->mv_size < KV_REVHDR_LEN) {
        return ERR_CORRUPT;
    }
    uint32_t key_len = be32_get(p + 25);
    if (p[0] > KV_REC_DEL || key_len == 0 ||
        key_len > v->mv_size - KV_REVHDR_LEN) {
        return ERR_CORRUPT;
    }
    out->type = p[0];
    out->lazy = false;
    out->create = (int64_t)be64_get(p + 1);
    out->version = (int64_t)be64_get(p + 9);
    out->lease = (int64_t)be64_get(p + 17);
    out->key = p + KV_REVHDR_LEN;
    out->key_len = key_len;
    out->value = p + KV_REVHDR_LEN + key_len;
    out->value_len = v->mv_size - KV_REVHDR_LEN - key_len;
    out->mod = (int64_t)be64_get(kp);
    out->sub = be32_get(kp + 8);
    return 0;
}

void kv__rec_to_kv(const struct kv_rec *r, struct kv_kv *out)
{
    out->key = r->key;
    out->key_len = r->key_len;
    out->value = r->value;
    out->value_len = r->value_len;
    out->create_revision = r->create;
    out->mod_revision = r->mod;
    out->version = r->version;
    out->lease = r->lease;
}

int kv__mdb_err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_NOTFOUND:
        return ERR_NOT_FOUND;
    case MDB_MAP_FULL:
        return ERR_NOSPACE;
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_DBS_FULL:
        return ERR_LIMIT;
    case MDB_READERS_FULL:
        return ERR_BUSY;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
        return ERR_CORRUPT;
    case MDB_VERSION_MISMATCH:
        return ERR_BAD_VERSION;
    case MDB_BAD_VALSIZE:
        return ERR_INVALID;
    default:
        break;
    }
    if (rc > 0) {
        return -rc;
    }
    return ERR_FAILED; /* MDB_PANIC, MDB_BAD_TXN, MDB_MAP_RESIZED, ... */
}

/* Errors after which the environment cannot be trusted: I/O and
 * corruption. Resource errors (map full, out of memory) only lose the
 * batch that met them. */
bool kv__fatal_err(int rc)
{
    switch (rc) {
    case 0:
    case MDB_NOTFOUND:
    case MDB_MAP_FULL:
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_READERS_FULL:
    case MDB_BAD_VALSIZE:
    case ENOMEM:
        return false;
    default:
        return true;
    }
}

void kv__set_failed(struct kv *kv, int err)
{
    int zero = 0;
    ASSERT(err < 0);
    if (atomic_compare_exchange_strong(&kv->failed, &zero, err)) {
        LOGE("kv", "store failed: %s", err_str(err));
    }
}

int kv__bytes_cmp(const uint8_t *a, size_t a_len, const uint8_t *b,
                  size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return a_len < b_len ? -1 : a_len > b_len ? 1 : 0;
}

int kv__key_validate(const uint8_t *key, size_t key_len)
{
    if (key_len == 0 || key == NULL) {
        return ERR_KEY_NOT_PROVIDED;
    }
    if (key_len > KV_KEY_BYTES_MAX) {
        return ERR_KEY_TOO_LARGE;
    }
    return 0;
}

int kv__span(const uint8_t *key, size_t key_len, const uint8_t *end,
             size_t end_len, struct kv_span *out)
{
    int rc = kv__key_validate(key, key_len);
    if (rc != 0) {
        return rc;
    }
    if (end_len > 0 && end == NULL) {
        return ERR_INVALID;
    }
    out->key = key;
    out->key_len = key_len;
    out->end = end;
    out->end_len = end_len;
    if (end_len == 0) {
        out->kind = KV_RANGE_ONE;
    } else if (end_len == 1 && end[0] == 0) {
        out->kind = KV_RANGE_FROM;
    } else if (kv__bytes_cmp(end, end_len, key, key_len) <= 0) {
        out->kind = KV_RANGE_EMPTY;
    } else {
        out->kind = KV_RANGE_SPAN;
    }
    return 0;
}

bool kv__span_past(const struct kv_span *s, const uint8_t *k, size_t k_len)
{
    switch (s->kind) {
    case KV_RANGE_ONE:
        return kv__bytes_cmp(k, k_len, s->key, s->key_len) != 0;
    case KV_RANGE_FROM:
        return false;
    case KV_RANGE_SPAN:
        return kv__bytes_cmp(k, k_len, s->end, s->end_len) >= 0;
    case KV_RANGE_EMPTY:
        return true;
    }
    UNREACHABLE();
}

bool kv__span_has(const struct kv_span *s, const uint8_t *k, size_t k_len)
{
    if (s->kind == KV_RANGE_EMPTY ||
        kv__bytes_cmp(k, k_len, s->key, s->key_len) < 0) {
        return false;
    }
    return !kv__span_past(s, k, k_len);
}

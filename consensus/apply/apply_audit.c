/*
 * apply_audit.c - the audit log's hash chain, written in apply and checked
 * on a read handle (apply.h, "Audit log"; docs/audit.md).
 *
 * Why here: a registry or config write is one Raft request and its audit
 * record must commit with it, never apart. A chain head compared by every
 * front-end Txn would serialise all writers (each retries on every other's
 * record). Instead the front end attaches the record's body to its request
 * (cairnpb.InternalRequest.audit) and the applier, which sees requests one
 * at a time in log order on every member, numbers and chains it: seq =
 * head.seq + 1, hash = SHA-256 of the record's canonical bytes, which hold
 * prev_hash, seq and the revision. The inputs are the log and the store,
 * so every member writes the same bytes; the chain lives in the store, so
 * snapshots carry it, and its records are current keys, so compaction
 * leaves them.
 *
 * Happy path of apply__audit_write: the request took effect; read the head
 * (aux AUDIT "head"), build the record, put /audit/<seq %016x> at the
 * request's revision (kv_put_joined), delete the oldest records past the
 * proposer's retention (at most two per record, so a lowered retention
 * shrinks the log gradually and a request's work stays bounded), store the
 * new head. Every failure here is the store's (validation ran before the
 * request, apply__audit_check): the caller aborts the batch, so a write is
 * never kept without its record.
 *
 * Verify (apply_audit_verify) walks the records in key order from the
 * oldest kept: keys contiguous, each record's seq its key's, its revision
 * its key's mod_revision (a re-put of the same bytes is an edit too), its
 * prev_hash the previous record's hash (the oldest's is the trusted anchor:
 * retention deleted what came before it), its hash its bytes' SHA-256, and
 * the last record and the oldest seq what the head says.
 */
#include "consensus/apply/apply_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "base/assert.h"
#include "base/buf.h"

#define HEAD_NAME     "head"
#define HEAD_LEN      (8 + 8 + APPLY_AUDIT_HASH_BYTES)
#define HEX_LEN       (2 * APPLY_AUDIT_HASH_BYTES)
/* ,"hash":"<64 hex>" before the closing brace */
#define HASH_TAIL_LEN (9 + HEX_LEN + 1)
/* ,"prev_hash":"<64 hex>" before the hash */
#define PREV_TAIL_LEN (14 + HEX_LEN + 1)
/* Records read per range call while verifying. */
#define VERIFY_PAGE   512

struct head {
    uint64_t seq;    /* last record's, 0: none yet */
    uint64_t oldest; /* oldest kept record's seq (seq + 1 when none) */
    uint8_t hash[APPLY_AUDIT_HASH_BYTES];
};

/* ------------------------------------------------------------ checks */

static bool utf8_ok(const char *s, size_t n)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            k = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 2;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 3;
        } else {
            return false;
        }
        if (i + k >= n) {
            return false;
        }
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80) {
                return false;
            }
        }
        i += k + 1;
    }
    return true;
}

static bool field_ok(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;
    return n <= max && utf8_ok(s != NULL ? s : "", n);
}

int apply__audit_check(const Cairnpb__AuditRecord *rec)
{
    ASSERT(rec != NULL);
    if (!field_ok(rec->action, APPLY_AUDIT_NAME_MAX) || rec->action == NULL ||
        rec->action[0] == '\0') {
        return ERR_BAD_REQUEST;
    }
    if (!field_ok(rec->ns, APPLY_AUDIT_NAME_MAX) ||
        !field_ok(rec->target, APPLY_AUDIT_TARGET_MAX) ||
        !field_ok(rec->principal, APPLY_AUDIT_NAME_MAX) ||
        !field_ok(rec->source, APPLY_AUDIT_NAME_MAX) ||
        !field_ok(rec->message, APPLY_AUDIT_MESSAGE_MAX)) {
        return ERR_BAD_REQUEST;
    }
    if (rec->time_ms < 0 || rec->time_ms > APPLY_AUDIT_TIME_MS_MAX) {
        return ERR_BAD_REQUEST;
    }
    return 0;
}

/* ------------------------------------------------------------ record */

static int json_str(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *p = s != NULL ? s : "";
    int rc = buf_append_u8(b, '"');
    while (rc == 0 && *p != '\0') {
        size_t run = 0; /* bytes that go as they are, appended at once */
        while (p[run] != '\0' && p[run] != '"' && p[run] != '\\' &&
               (uint8_t)p[run] >= 0x20) {
            run++;
        }
        rc = run > 0 ? buf_append(b, p, run) : 0;
        p += run;
        uint8_t c = (uint8_t)*p;
        if (rc != 0 || c == '\0') {
            break;
        }
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            rc = buf_append(b, e, 2);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, e, 6);
        }
        p++;
    }
    return rc != 0 ? rc : buf_append_u8(b, '"');
}

static int json_lit(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

static void hex_of(const uint8_t *h, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < APPLY_AUDIT_HASH_BYTES; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[HEX_LEN] = '\0';
}

/* Decimal digits of v, exactly w of them (leading zeros) when w > 0.
 * snprintf did this at ~1.6k instructions a call, four calls a record. */
static size_t put_dec(char *out, uint64_t v, int w)
{
    char t[24];
    size_t n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 || (w > 0 && n < (size_t)w));
    for (size_t i = 0; i < n; i++) {
        out[i] = t[n - 1 - i];
    }
    return n;
}

static int json_u64(struct buf *b, uint64_t v)
{
    char t[24];
    return buf_append(b, t, put_dec(t, v, 0));
}

static int json_i64(struct buf *b, int64_t v)
{
    char t[24];
    size_t n = 0;
    if (v < 0) {
        t[n++] = '-';
    }
    n += put_dec(t + n, v < 0 ? 0 - (uint64_t)v : (uint64_t)v, 0);
    return buf_append(b, t, n);
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (years past 9999 take more digits). */
static void time_of(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    size_t n;
    ASSERT(ms >= 0 && cap >= 40);
    gmtime_r(&t, &tm);
    n = put_dec(out, (uint64_t)(tm.tm_year + 1900), 4);
    out[n++] = '-';
    n += put_dec(out + n, (uint64_t)tm.tm_mon + 1, 2);
    out[n++] = '-';
    n += put_dec(out + n, (uint64_t)tm.tm_mday, 2);
    out[n++] = 'T';
    n += put_dec(out + n, (uint64_t)tm.tm_hour, 2);
    out[n++] = ':';
    n += put_dec(out + n, (uint64_t)tm.tm_min, 2);
    out[n++] = ':';
    n += put_dec(out + n, (uint64_t)tm.tm_sec, 2);
    out[n++] = '.';
    n += put_dec(out + n, (uint64_t)(ms % 1000), 3);
    out[n++] = 'Z';
    out[n] = '\0';
}

/* The canonical bytes (everything but the hash) into b. */
static int record_body(struct buf *b, const Cairnpb__AuditRecord *rec,
                       uint64_t seq, int64_t rev, const uint8_t *prev)
{
    char ts[96], ph[HEX_LEN + 1];
    int rc;
    time_of(rec->time_ms, ts, sizeof(ts));
    hex_of(prev, ph);
    rc = json_lit(b, "{\"seq\":");
    rc = rc != 0 ? rc : json_u64(b, seq);
    rc = rc != 0 ? rc : json_lit(b, ",\"revision\":");
    rc = rc != 0 ? rc : json_i64(b, rev);
    rc = rc != 0 ? rc : json_lit(b, ",\"time\":");
    rc = rc != 0 ? rc : json_str(b, ts);
    rc = rc != 0 ? rc : json_lit(b, ",\"principal\":");
    rc = rc != 0 ? rc : json_str(b, rec->principal);
    rc = rc != 0 ? rc : json_lit(b, ",\"source\":");
    rc = rc != 0 ? rc : json_str(b, rec->source);
    rc = rc != 0 ? rc : json_lit(b, ",\"action\":");
    rc = rc != 0 ? rc : json_str(b, rec->action);
    rc = rc != 0 ? rc : json_lit(b, ",\"namespace\":");
    rc = rc != 0 ? rc : json_str(b, rec->ns);
    rc = rc != 0 ? rc : json_lit(b, ",\"target\":");
    rc = rc != 0 ? rc : json_str(b, rec->target);
    rc = rc != 0 ? rc : json_lit(b, ",\"version\":");
    rc = rc != 0 ? rc : json_i64(b, rec->version);
    rc = rc != 0 ? rc : json_lit(b, ",\"message\":");
    rc = rc != 0 ? rc : json_str(b, rec->message);
    rc = rc != 0 ? rc : json_lit(b, ",\"prev_hash\":");
    rc = rc != 0 ? rc : json_str(b, ph);
    return rc != 0 ? rc : buf_append_u8(b, '}');
}

size_t apply_audit_key(uint64_t seq, char *out, size_t cap)
{
    int n = snprintf(out, cap, APPLY_AUDIT_PREFIX "%016" PRIx64, seq);
    ASSERT(n > 0 && (size_t)n < cap);
    return (size_t)n;
}

/* ------------------------------------------------------------- head */

static int head_decode(const void *v, size_t len, struct head *h)
{
    const uint8_t *p = v;
    if (len != HEAD_LEN) {
        return ERR_CORRUPT;
    }
    h->seq = be64_get(p);
    h->oldest = be64_get(p + 8);
    memcpy(h->hash, p + 16, APPLY_AUDIT_HASH_BYTES);
    return 0;
}

static int head_read(struct kv_write *wr, struct head *h)
{
    const void *v;
    size_t len;
    int rc = kv_write_aux_get(wr, KV_AUX_AUDIT, HEAD_NAME, 4, &v, &len);
    if (rc == ERR_NOT_FOUND) {
        memset(h, 0, sizeof(*h));
        h->oldest = 1;
        return 0;
    }
    return rc != 0 ? rc : head_decode(v, len, h);
}

static int head_write(struct kv_write *wr, const struct head *h)
{
    uint8_t v[HEAD_LEN];
    be64_put(v, h->seq);
    be64_put(v + 8, h->oldest);
    memcpy(v + 16, h->hash, APPLY_AUDIT_HASH_BYTES);
    return kv_aux_put(wr, KV_AUX_AUDIT, HEAD_NAME, 4, v, sizeof(v));
}

/* Delete the oldest records past keep: at most two per call. */
static int trim(struct kv_write *wr, struct head *h, uint64_t keep)
{
    for (int i = 0; i < 2 && h->seq - h->oldest + 1 > keep; i++) {
        char k[APPLY_AUDIT_KEY_MAX];
        size_t n = apply_audit_key(h->oldest, k, sizeof(k));
        int rc = kv_delete_joined(wr, (const uint8_t *)k, n);
        if (rc != 0) {
            return rc;
        }
        h->oldest++;
    }
    ASSERT(h->oldest <= h->seq);
    return 0;
}

/* SHA-256 of data[0..len) with the context a keeps (see struct apply);
 * the one-shot SHA256() when it cannot be had. */
static void record_hash(struct apply *a, const uint8_t *data, size_t len,
                        uint8_t *out)
{
    unsigned int n = 0;
    if (a->sha_md == NULL) {
        a->sha_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    }
    if (a->sha_ctx == NULL && a->sha_md != NULL) {
        a->sha_ctx = EVP_MD_CTX_new();
    }
    if (a->sha_ctx == NULL ||
        !EVP_DigestInit_ex2(a->sha_ctx, a->sha_md, NULL) ||
        !EVP_DigestUpdate(a->sha_ctx, data, len) ||
        !EVP_DigestFinal_ex(a->sha_ctx, out, &n) ||
        n != APPLY_AUDIT_HASH_BYTES) {
        SHA256(data, len, out);
    }
}

void apply__audit_close(struct apply *a)
{
    EVP_MD_CTX_free(a->sha_ctx);
    EVP_MD_free(a->sha_md);
    a->sha_ctx = NULL;
    a->sha_md = NULL;
}

int apply__audit_write(struct apply *a, struct kv_write *wr,
                       const Cairnpb__AuditRecord *rec, int64_t rev_before)
{
    struct head h;
    struct buf b;
    char k[APPLY_AUDIT_KEY_MAX], hx[HEX_LEN + 1];
    uint8_t hash[APPLY_AUDIT_HASH_BYTES];
    bool join = kv_write_can_join(wr, rev_before);
    int64_t rev = join ? kv_write_rev(wr) : kv_write_rev(wr) + 1;
    uint64_t keep = rec->keep == 0 ? APPLY_AUDIT_KEEP_DEF : rec->keep;
    int rc = head_read(wr, &h);
    if (rc != 0) {
        return rc == ERR_CORRUPT ? ERR_FAILED : rc;
    }
    keep = keep > APPLY_AUDIT_KEEP_MAX ? APPLY_AUDIT_KEEP_MAX : keep;
    buf_init(&b, 0);
    rc = buf_reserve(&b, 512); /* a usual record: no regrowth */
    rc = rc != 0 ? rc : record_body(&b, rec, h.seq + 1, rev, h.hash);
    if (rc == 0) {
        record_hash(a, b.data, b.len, hash);
        hex_of(hash, hx);
        b.len--; /* the closing brace: the hash goes before it */
        rc = json_lit(&b, ",\"hash\":");
        rc = rc != 0 ? rc : json_str(&b, hx);
        rc = rc != 0 ? rc : buf_append_u8(&b, '}');
    }
    if (rc == 0) {
        struct kv_put_req put = {0};
        put.key = (const uint8_t *)k;
        put.key_len = apply_audit_key(h.seq + 1, k, sizeof(k));
        put.value = b.data;
        put.value_len = b.len;
        rc = kv_put_joined(wr, &put, join);
    }
    buf_free(&b);
    if (rc != 0) {
        return rc;
    }
    ASSERT(kv_write_rev(wr) == rev);
    h.seq++;
    memcpy(h.hash, hash, sizeof(hash));
    rc = trim(wr, &h, keep);
    rc = rc != 0 ? rc : head_write(wr, &h);
    if (rc == 0) {
        atomic_fetch_add_explicit(&a->audit_records, 1, memory_order_relaxed);
    }
    return rc;
}

uint64_t apply_audit_records(const struct apply *a)
{
    return atomic_load_explicit(&a->audit_records, memory_order_relaxed);
}

/* ------------------------------------------------------------ verify */

static bool hex_eq(const char *hex, const uint8_t *h)
{
    char want[HEX_LEN + 1];
    hex_of(h, want);
    return memcmp(hex, want, HEX_LEN) == 0;
}

static bool hex_parse(const char *hex, uint8_t *out)
{
    for (size_t i = 0; i < APPLY_AUDIT_HASH_BYTES; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return false;
        }
        out[i] = (uint8_t)v;
    }
    return true;
}

static int64_t num_after(const uint8_t *v, size_t len, const char *tag)
{
    size_t tl = strlen(tag);
    int64_t n = 0;
    size_t i = tl;
    if (len < tl + 1 || memcmp(v, tag, tl) != 0) {
        return -1;
    }
    while (i < len && i < tl + 19 && v[i] >= '0' && v[i] <= '9') {
        n = n * 10 + (int64_t)(v[i++] - '0');
    }
    return i > tl && i < len && v[i] == ',' ? n : -1;
}

static void fail(struct apply_audit_verdict *out, uint64_t seq, const char *why)
{
    out->ok = false;
    out->broken_seq = seq;
    out->reason = why;
}

/* Check one record against the chain so far; false when it breaks. */
static bool verify_one(struct apply_audit_verdict *out, const struct kv_kv *kv,
                       uint64_t want_seq, uint8_t *prev, bool first)
{
    char k[APPLY_AUDIT_KEY_MAX];
    const uint8_t *v = kv->value;
    size_t len = kv->value_len;
    uint8_t h[APPLY_AUDIT_HASH_BYTES];
    size_t kn = apply_audit_key(want_seq, k, sizeof(k));
    if (kv->key_len != kn || memcmp(kv->key, k, kn) != 0) {
        fail(out, want_seq, "missing record (a gap in the sequence)");
        return false;
    }
    if (len < 16 + PREV_TAIL_LEN + HASH_TAIL_LEN + 1 || v[len - 1] != '}' ||
        memcmp(v + len - 1 - HASH_TAIL_LEN, ",\"hash\":\"", 9) != 0 ||
        memcmp(v + len - 1 - HASH_TAIL_LEN - PREV_TAIL_LEN, ",\"prev_hash\":\"",
               14) != 0) {
        fail(out, want_seq, "record is not in the audit format");
        return false;
    }
    const char *hash_hex = (const char *)v + len - 1 - HASH_TAIL_LEN + 9;
    const char *prev_hex =
        (const char *)v + len - 1 - HASH_TAIL_LEN - PREV_TAIL_LEN + 14;
    int64_t seq = num_after(v, len, "{\"seq\":");
    if (seq < 0 || (uint64_t)seq != want_seq) {
        fail(out, want_seq, "record's seq differs from its key");
        return false;
    }
    const uint8_t *rv = memchr(v, ',', len);
    int64_t rev = rv != NULL
                      ? num_after(rv, len - (size_t)(rv - v), ",\"revision\":")
                      : -1;
    if (rev != kv->mod_revision) {
        fail(out, want_seq, "record was rewritten (revision differs)");
        return false;
    }
    if (first) {
        if (!hex_parse(prev_hex, prev)) {
            fail(out, want_seq, "record is not in the audit format");
            return false;
        }
    } else if (!hex_eq(prev_hex, prev)) {
        fail(out, want_seq, "prev_hash differs from the previous hash");
        return false;
    }
    /* the canonical bytes: the record without its hash member */
    struct buf b;
    buf_init(&b, 0);
    if (buf_append(&b, v, len - 1 - HASH_TAIL_LEN) != 0 ||
        buf_append_u8(&b, '}') != 0) {
        buf_free(&b);
        fail(out, want_seq, "out of memory");
        return false;
    }
    SHA256(b.data, b.len, h);
    buf_free(&b);
    if (!hex_eq(hash_hex, h)) {
        fail(out, want_seq, "hash differs from the record's contents");
        return false;
    }
    memcpy(prev, h, sizeof(h));
    return true;
}

static int verify_head(struct kv_read *rd, struct head *h)
{
    const void *v;
    size_t len;
    int rc = kv_aux_get(rd, KV_AUX_AUDIT, HEAD_NAME, 4, &v, &len);
    if (rc == ERR_NOT_FOUND) {
        memset(h, 0, sizeof(*h));
        h->oldest = 1;
        return 0;
    }
    return rc != 0 ? rc : head_decode(v, len, h);
}

int apply_audit_verify(struct kv_read *rd, struct apply_audit_verdict *out)
{
    static const char end[] = APPLY_AUDIT_PREFIX_END;
    char k[APPLY_AUDIT_KEY_MAX];
    uint8_t prev[APPLY_AUDIT_HASH_BYTES];
    struct head h;
    uint64_t want;
    int rc = verify_head(rd, &h);
    memset(out, 0, sizeof(*out));
    out->ok = true;
    if (rc != 0) {
        return rc;
    }
    out->head_seq = h.seq;
    out->first_seq = h.oldest;
    hex_of(h.hash, out->head_hash);
    want = h.oldest;
    /* at most head.seq - oldest + 1 records, plus one stray past them */
    for (uint64_t pages = 0; out->ok; pages++) {
        struct kv_range_req q = {0};
        struct kv_range_resp resp;
        struct kv_result res = {0};
        ASSERT(pages <= h.seq / VERIFY_PAGE + 2);
        q.key = (const uint8_t *)k;
        q.key_len = apply_audit_key(want, k, sizeof(k));
        q.range_end = (const uint8_t *)end;
        q.range_end_len = sizeof(end) - 1;
        q.limit = VERIFY_PAGE;
        if (pages == 0) {
            q.key = (const uint8_t *)APPLY_AUDIT_PREFIX;
            q.key_len = strlen(APPLY_AUDIT_PREFIX);
        }
        rc = kv_range(rd, &q, &res, &resp);
        if (rc != 0) {
            kv_result_free(&res);
            return rc;
        }
        for (size_t i = 0; out->ok && i < resp.kvs_count; i++) {
            if (want > h.seq) {
                fail(out, want, "record past the head (added or head lost)");
            } else if (verify_one(out, &resp.kvs[i], want, prev,
                                  want == h.oldest)) {
                out->records++;
                want++;
            }
        }
        bool more = resp.more;
        kv_result_free(&res);
        if (!more) {
            break;
        }
    }
    if (out->ok && want != h.seq + 1) {
        fail(out, want, "missing record (the chain ends before the head)");
    } else if (out->ok && h.seq > 0 && memcmp(prev, h.hash, sizeof(prev))) {
        fail(out, h.seq, "last record's hash differs from the head");
    }
    return 0;
}

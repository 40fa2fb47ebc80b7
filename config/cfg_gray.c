/*
 * cfg_gray.c - gray-release rules, client labels and config names.
 *
 * A gray release shows a new version of a config to some clients only:
 * those carrying given labels, or a sticky share of them. Stickiness
 * comes from hashing: a client's bucket (0..9999) for a config is a
 * function of the two ids alone, so every member of the cluster and every
 * later release put the client in the same place, and widening a rollout
 * from 10% to 20% keeps the first 10% in. SHA-256 rather than a faster
 * hash because ids are chosen by clients: no one can aim at a bucket
 * short of inverting it. It is written out here (FIPS 180-4) rather than
 * taken from OpenSSL so that the bucket cannot fail: OpenSSL 3's digests
 * allocate and may return an error, and a bucket has no error to give.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "config/cfg_int.h"

/* ---------------------------------------------------------------- SHA-256 */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

struct sha256 {
    uint32_t h[8];
    uint8_t block[64];
    size_t used;    /* bytes in block */
    uint64_t total; /* bytes hashed */
};

static uint32_t ror(uint32_t x, unsigned n)
{
    return x >> n | x << (32 - n);
}

static void sha_compress(uint32_t h[8], const uint8_t b[64])
{
    uint32_t w[64];
    uint32_t v[8];
    for (int i = 0; i < 16; i++) {
        w[i] = be32_get(b + 4 * i);
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ w[i - 15] >> 3;
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ w[i - 2] >> 10;
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(v, h, sizeof(v));
    for (int i = 0; i < 64; i++) {
        uint32_t s1 = ror(v[4], 6) ^ ror(v[4], 11) ^ ror(v[4], 25);
        uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
        uint32_t t1 = v[7] + s1 + ch + sha_k[i] + w[i];
        uint32_t s0 = ror(v[0], 2) ^ ror(v[0], 13) ^ ror(v[0], 22);
        uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
        memmove(v + 1, v, 7 * sizeof(v[0]));
        v[4] += t1;
        v[0] = t1 + s0 + maj;
    }
    for (int i = 0; i < 8; i++) {
        h[i] += v[i];
    }
}

static void sha_update(struct sha256 *s, const uint8_t *p, size_t len)
{
    s->total += len;
    while (len > 0) {
        size_t n = 64 - s->used < len ? 64 - s->used : len;
        memcpy(s->block + s->used, p, n);
        s->used += n;
        p += n;
        len -= n;
        if (s->used == 64) {
            sha_compress(s->h, s->block);
            s->used = 0;
        }
    }
}

void cfg__sha256(const void *const *p, const size_t *len, size_t n,
                 uint8_t md[32])
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                   0xa54ff53a, 0x510e527f, 0x9b05688c,
                                   0x1f83d9ab, 0x5be0cd19};
    struct sha256 s;
    uint8_t pad[72] = {0x80};
    memcpy(s.h, h0, sizeof(h0));
    s.used = 0;
    s.total = 0;
    for (size_t i = 0; i < n; i++) {
        sha_update(&s, p[i], len[i]);
    }
    uint64_t bits = s.total * 8;
    size_t padlen = s.used < 56 ? 56 - s.used : 120 - s.used;
    be64_put(pad + padlen, bits);
    sha_update(&s, pad, padlen + 8);
    for (int i = 0; i < 8; i++) {
        be32_put(md + 4 * i, s.h[i]);
    }
}

unsigned cfg_gray_bucket(const char *config_id, const char *client_id)
{
    static const char zero = 0;
    uint8_t md[32];
    const void *p[3] = {config_id, &zero, client_id};
    size_t len[3] = {strlen(config_id), 1, strlen(client_id)};
    cfg__sha256(p, len, 3, md);
    return (unsigned)(be64_get(md) % 10000);
}

/* ------------------------------------------------------------------ names */

static bool name_char(unsigned char c, bool slash)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           (slash && c == '/');
}

bool cfg_name_ok(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > CFG_NAME_MAX) {
        return false;
    }
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!name_char((unsigned char)s[i], false)) {
            return false;
        }
    }
    return true;
}

/* ----------------------------------------------------------------- labels */

static void say(char *msg, size_t msg_len, const char *fmt, const char *a,
                size_t alen)
{
    if (msg != NULL && msg_len > 0) {
        snprintf(msg, msg_len, fmt, (int)(alen > 64 ? 64 : alen), a);
    }
}

static bool label_text_ok(const char *s, size_t len, size_t max, bool empty)
{
    if (len > max || (len == 0 && !empty)) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!name_char((unsigned char)s[i], true)) {
            return false;
        }
    }
    return true;
}

/* Append key=value to l after checking both; the message names the key.
 * Errors: ERR_BAD_REQUEST. */
static int label_add(struct cfg_labels *l, const char *k, size_t klen,
                     const char *v, size_t vlen, const char *where, char *msg,
                     size_t msg_len)
{
    char fmt[128];
    if (!label_text_ok(k, klen, CFG_LABEL_KEY_MAX, false)) {
        snprintf(fmt, sizeof(fmt),
                 "%s: label name \"%%.*s\" must be 1 to %d characters of "
                 "A-Z a-z 0-9 . _ / -",
                 where, CFG_LABEL_KEY_MAX);
        say(msg, msg_len, fmt, k, klen);
        return ERR_BAD_REQUEST;
    }
    if (!label_text_ok(v, vlen, CFG_LABEL_VALUE_MAX, true)) {
        snprintf(fmt, sizeof(fmt),
                 "%s: value of label \"%%.*s\" must be 0 to %d characters "
                 "of A-Z a-z 0-9 . _ / -",
                 where, CFG_LABEL_VALUE_MAX);
        say(msg, msg_len, fmt, k, klen);
        return ERR_BAD_REQUEST;
    }
    for (unsigned i = 0; i < l->count; i++) {
        if (strlen(l->items[i].key) == klen &&
            memcmp(l->items[i].key, k, klen) == 0) {
            snprintf(fmt, sizeof(fmt), "%s: label \"%%.*s\" given twice",
                     where);
            say(msg, msg_len, fmt, k, klen);
            return ERR_BAD_REQUEST;
        }
    }
    if (l->count == CFG_LABELS_MAX) {
        snprintf(fmt, sizeof(fmt), "%s: more than %d labels%%.*s", where,
                 CFG_LABELS_MAX);
        say(msg, msg_len, fmt, "", 0);
        return ERR_BAD_REQUEST;
    }
    struct cfg_label *it = &l->items[l->count++];
    memcpy(it->key, k, klen);
    it->key[klen] = '\0';
    memcpy(it->value, v, vlen);
    it->value[vlen] = '\0';
    return 0;
}

int cfg_labels_parse(const char *s, size_t len, struct cfg_labels *out,
                     char *msg, size_t msg_len)
{
    size_t i = 0;
    out->count = 0;
    if (s == NULL || len == 0) {
        return 0;
    }
    /* Each pass consumes one item and its comma. */
    while (i <= len) {
        const char *item = s + i;
        const char *end = memchr(item, ',', len - i);
        size_t ilen = end != NULL ? (size_t)(end - item) : len - i;
        const char *eq = memchr(item, '=', ilen);
        if (eq == NULL) {
            say(msg, msg_len, "labels: \"%.*s\" is not name=value", item, ilen);
            out->count = 0;
            return ERR_BAD_REQUEST;
        }
        size_t klen = (size_t)(eq - item);
        int rc = label_add(out, item, klen, eq + 1, ilen - klen - 1, "labels",
                           msg, msg_len);
        if (rc != 0) {
            out->count = 0;
            return rc;
        }
        if (end == NULL) {
            break;
        }
        i += ilen + 1;
    }
    return 0;
}

const char *cfg_labels_get(const struct cfg_labels *l, const char *key)
{
    if (l == NULL) {
        return NULL;
    }
    for (unsigned i = 0; i < l->count && i < CFG_LABELS_MAX; i++) {
        if (strcmp(l->items[i].key, key) == 0) {
            return l->items[i].value;
        }
    }
    return NULL;
}

json_t *cfg_labels_to_json(const struct cfg_labels *l)
{
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    for (unsigned i = 0; i < l->count && i < CFG_LABELS_MAX; i++) {
        if (json_object_set_new(o, l->items[i].key,
                                json_string(l->items[i].value)) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* ------------------------------------------------------------------ rules */

static int rule_labels(json_t *v, struct cfg_gray_rule *out, char *msg,
                       size_t msg_len)
{
    const char *k;
    json_t *val;
    if (!json_is_object(v) || json_object_size(v) == 0) {
        say(msg, msg_len, "labels: must be an object of 1 or more labels%.*s",
            "", 0);
        return ERR_BAD_REQUEST;
    }
    json_object_foreach(v, k, val)
    {
        if (!json_is_string(val)) {
            say(msg, msg_len, "labels.%.*s: must be a string", k, strlen(k));
            return ERR_BAD_REQUEST;
        }
        int rc = label_add(&out->labels, k, strlen(k), json_string_value(val),
                           json_string_length(val), "labels", msg, msg_len);
        if (rc != 0) {
            return rc;
        }
    }
    out->kind = CFG_GRAY_LABELS;
    return 0;
}

static int rule_percentage(json_t *v, struct cfg_gray_rule *out, char *msg,
                           size_t msg_len)
{
    double bp = -1;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        bp = i >= 0 && i <= 100 ? (double)i * 100 : -1;
    } else if (json_is_real(v)) {
        double x = json_real_value(v) * 100;
        double r = nearbyint(x);
        /* Two decimals: x is a whole number of basis points, up to the
         * rounding of a decimal fraction into a double. */
        bp = fabs(x - r) <= 1e-6 ? r : -1;
    }
    if (!(bp >= 0 && bp <= 10000)) {
        say(msg, msg_len,
            "percentage: must be a number from 0 to 100 with at most two "
            "decimals%.*s",
            "", 0);
        return ERR_BAD_REQUEST;
    }
    out->kind = CFG_GRAY_PERCENTAGE;
    out->basis_points = (unsigned)bp;
    return 0;
}

int cfg_gray_rule_parse(json_t *rule, struct cfg_gray_rule *out, char *msg,
                        size_t msg_len)
{
    const char *k;
    json_t *v;
    json_t *labels = NULL;
    json_t *pct = NULL;
    int rc;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(rule)) {
        say(msg, msg_len, "rule: must be an object%.*s", "", 0);
        return ERR_BAD_REQUEST;
    }
    json_object_foreach(rule, k, v)
    {
        if (strcmp(k, "labels") == 0) {
            labels = v;
        } else if (strcmp(k, "percentage") == 0) {
            pct = v;
        } else {
            say(msg, msg_len, "%.*s: unknown field of a gray rule", k,
                strlen(k));
            return ERR_BAD_REQUEST;
        }
    }
    if ((labels == NULL) == (pct == NULL)) {
        say(msg, msg_len,
            "rule: give exactly one of \"labels\" and \"percentage\"%.*s", "",
            0);
        return ERR_BAD_REQUEST;
    }
    rc = labels != NULL ? rule_labels(labels, out, msg, msg_len)
                        : rule_percentage(pct, out, msg, msg_len);
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

json_t *cfg_gray_rule_to_json(const struct cfg_gray_rule *r)
{
    json_t *v;
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    if (r->kind == CFG_GRAY_LABELS) {
        v = cfg_labels_to_json(&r->labels);
    } else if (r->basis_points % 100 == 0) {
        v = json_integer(r->basis_points / 100);
    } else {
        v = json_real(r->basis_points / 100.0);
    }
    /* json_object_set_new takes v even when it fails (or is NULL). */
    if (json_object_set_new(
            o, r->kind == CFG_GRAY_LABELS ? "labels" : "percentage", v) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

bool cfg_gray_match(const struct cfg_gray_rule *r, const char *config_id,
                    const char *client_id,
                    const struct cfg_labels *client_labels)
{
    if (r->kind == CFG_GRAY_PERCENTAGE) {
        if (client_id == NULL || client_id[0] == '\0') {
            return false;
        }
        return cfg_gray_bucket(config_id, client_id) < r->basis_points;
    }
    if (r->kind != CFG_GRAY_LABELS || r->labels.count == 0) {
        return false;
    }
    for (unsigned i = 0; i < r->labels.count && i < CFG_LABELS_MAX; i++) {
        const char *v = cfg_labels_get(client_labels, r->labels.items[i].key);
        if (v == NULL || strcmp(v, r->labels.items[i].value) != 0) {
            return false;
        }
    }
    return true;
}

/*
 * cfg_model.c - the config center's keys and values (cfgapi.h: layout),
 * secrets (AES-256-GCM), and the resolution of "the release this client
 * runs" from the local store, for the streams.
 *
 * Secrets. The content of a secret release is stored as nonce (12 random
 * bytes) || ciphertext || tag (16), sealed with the key of
 * --config-secret-key-file and with "<ns>/<app>/<name>/<v>" as additional
 * data, so a sealed value moved to another config or version does not
 * open. Without a key a secret can be neither published nor read.
 */
#include "registry/config/cfg_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "registry/server/server.h"
#include "registry/services/services.h"

/* ------------------------------------------------------------- keys */

static size_t put(char *out, size_t len, int n)
{
    (void)out;
    ASSERT(n > 0 && (size_t)n < len);
    return (size_t)n;
}

size_t cfg_key_head(const struct cfg_id *c, char *out, size_t len)
{
    return put(
        out, len,
        snprintf(out, len, CFG_PREFIX "%s/%s/%s", c->ns, c->app, c->name));
}

size_t cfg_key_release(const struct cfg_id *c, int64_t v, char *out, size_t len)
{
    return put(out, len,
               snprintf(out, len, CFG_PREFIX "%s/%s/~r/%s/%010" PRId64, c->ns,
                        c->app, c->name, v));
}

size_t cfg_key_releases(const struct cfg_id *c, char *out, size_t len)
{
    return put(
        out, len,
        snprintf(out, len, CFG_PREFIX "%s/%s/~r/%s/", c->ns, c->app, c->name));
}

size_t cfg_key_gray(const struct cfg_id *c, char *out, size_t len)
{
    return put(
        out, len,
        snprintf(out, len, CFG_PREFIX "%s/%s/~g/%s", c->ns, c->app, c->name));
}

/* The next '/'-separated part of [*p, end) into out as a name. */
static bool take_name(const char **p, const char *end, char *out)
{
    const char *s = *p;
    const char *e = memchr(s, '/', (size_t)(end - s));
    size_t n = (size_t)((e != NULL ? e : end) - s);
    if (!cfg_name_ok(s, n)) {
        return false;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    *p = e != NULL ? e + 1 : end;
    return true;
}

enum cfg_key_kind cfg_key_parse(const char *key, size_t len, struct cfg_id *id,
                                int64_t *v)
{
    const char *p = key;
    const char *end = key + len;
    size_t pl = strlen(CFG_PREFIX);
    if (len <= pl || memcmp(key, CFG_PREFIX, pl) != 0) {
        return CFG_K_OTHER;
    }
    p += pl;
    if (!take_name(&p, end, id->ns) || p == end ||
        !take_name(&p, end, id->app) || p == end) {
        return CFG_K_OTHER;
    }
    if (end - p > 3 && memcmp(p, "~r/", 3) == 0) {
        char num[16];
        p += 3;
        if (!take_name(&p, end, id->name) || end - p != 10) {
            return CFG_K_OTHER;
        }
        memcpy(num, p, 10);
        num[10] = '\0';
        for (int i = 0; i < 10; i++) {
            if (num[i] < '0' || num[i] > '9') {
                return CFG_K_OTHER;
            }
        }
        if (v != NULL) {
            *v = strtoll(num, NULL, 10);
        }
        return CFG_K_RELEASE;
    }
    if (end - p > 3 && memcmp(p, "~g/", 3) == 0) {
        p += 3;
        if (!take_name(&p, end, id->name) || p != end || key[len - 1] == '/') {
            return CFG_K_OTHER;
        }
        return CFG_K_GRAY;
    }
    if (!take_name(&p, end, id->name) || p != end || key[len - 1] == '/') {
        return CFG_K_OTHER;
    }
    return CFG_K_HEAD;
}

/* ---------------------------------------------------------- releases */

int cfg_release_parse(const void *val, size_t len, json_t **meta,
                      const char **content, size_t *content_len)
{
    const char *s = val;
    const char *nl = memchr(s, '\n', len);
    json_t *m;
    json_int_t n;
    if (nl == NULL) {
        return ERR_INVALID;
    }
    m = json_loadb(s, (size_t)(nl - s), 0, NULL);
    if (m == NULL || !json_is_object(m)) {
        json_decref(m);
        return ERR_INVALID;
    }
    n = json_integer_value(json_object_get(m, "length"));
    if (n < 0 || (size_t)n != len - (size_t)(nl + 1 - s)) {
        json_decref(m);
        return ERR_INVALID;
    }
    *meta = m;
    *content = nl + 1;
    *content_len = (size_t)n;
    return 0;
}

int cfg_release_encode(json_t *meta, const char *content, size_t len,
                       struct buf *out)
{
    char *js;
    int rc;
    if (json_object_set_new(meta, "length", json_integer((json_int_t)len)) !=
        0) {
        return -ENOMEM;
    }
    js = svc_json_dump(meta);
    if (js == NULL) {
        return -ENOMEM;
    }
    rc = buf_append(out, js, strlen(js));
    free(js);
    if (rc == 0) {
        rc = buf_append(out, "\n", 1);
    }
    if (rc == 0 && len > 0) {
        rc = buf_append(out, content, len);
    }
    return rc;
}

/* ----------------------------------------------------------- secrets */

#define GCM_NONCE 12
#define GCM_TAG   16

static int aad_of(const struct cfg_id *id, int64_t v, char *out, size_t len)
{
    return snprintf(out, len, "%s/%s/%s/%" PRId64, id->ns, id->app, id->name,
                    v);
}

int cfg_secret_seal(struct server *s, const struct cfg_id *id, int64_t v,
                    const char *plain, size_t len, struct buf *out)
{
    struct cfg_state *st = cfg__state(s);
    unsigned char nonce[GCM_NONCE], tag[GCM_TAG];
    char aad[CFG_KEY_MAX];
    int an = aad_of(id, v, aad, sizeof(aad));
    int n = 0, rc = ERR_FAILED;
    EVP_CIPHER_CTX *x;
    if (st == NULL || !st->has_key) {
        return ERR_PERMISSION_DENIED;
    }
    if (RAND_bytes(nonce, sizeof(nonce)) != 1 ||
        buf_reserve(out, len + GCM_NONCE + GCM_TAG) != 0) {
        return -ENOMEM;
    }
    x = EVP_CIPHER_CTX_new();
    if (x == NULL) {
        return -ENOMEM;
    }
    unsigned char *dst = out->data + out->len + GCM_NONCE;
    if (EVP_EncryptInit_ex(x, EVP_aes_256_gcm(), NULL, st->key, nonce) == 1 &&
        EVP_EncryptUpdate(x, NULL, &n, (const unsigned char *)aad, an) == 1 &&
        EVP_EncryptUpdate(x, dst, &n, (const unsigned char *)plain, (int)len) ==
            1 &&
        EVP_EncryptFinal_ex(x, dst + n, &n) == 1 &&
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_GET_TAG, GCM_TAG, tag) == 1) {
        memcpy(out->data + out->len, nonce, GCM_NONCE);
        memcpy(dst + len, tag, GCM_TAG);
        out->len += len + GCM_NONCE + GCM_TAG;
        rc = 0;
    }
    EVP_CIPHER_CTX_free(x);
    return rc;
}

int cfg_secret_open(struct server *s, const struct cfg_id *id, int64_t v,
                    const char *enc, size_t len, struct buf *out)
{
    struct cfg_state *st = cfg__state(s);
    char aad[CFG_KEY_MAX];
    int an = aad_of(id, v, aad, sizeof(aad));
    const unsigned char *e = (const unsigned char *)enc;
    size_t clen;
    int n = 0, rc = ERR_CORRUPT;
    EVP_CIPHER_CTX *x;
    if (st == NULL || !st->has_key) {
        return ERR_PERMISSION_DENIED;
    }
    if (len < GCM_NONCE + GCM_TAG) {
        return ERR_CORRUPT;
    }
    clen = len - GCM_NONCE - GCM_TAG;
    if (buf_reserve(out, clen + 1) != 0) {
        return -ENOMEM;
    }
    x = EVP_CIPHER_CTX_new();
    if (x == NULL) {
        return -ENOMEM;
    }
    unsigned char *dst = out->data + out->len;
    if (EVP_DecryptInit_ex(x, EVP_aes_256_gcm(), NULL, st->key, e) == 1 &&
        EVP_DecryptUpdate(x, NULL, &n, (const unsigned char *)aad, an) == 1 &&
        EVP_DecryptUpdate(x, dst, &n, e + GCM_NONCE, (int)clen) == 1 &&
        EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_GCM_SET_TAG, GCM_TAG,
                            (void *)(e + len - GCM_TAG)) == 1 &&
        EVP_DecryptFinal_ex(x, dst + n, &n) == 1) {
        out->len += clen;
        rc = 0;
    }
    EVP_CIPHER_CTX_free(x);
    return rc;
}

/* ------------------------------------------------ local resolution */

struct local {
    struct server *s;
    struct kv_read *rd;
    struct kv_result res;
};

static int local_get(struct local *l, const char *key, size_t kn, int64_t rev,
                     struct kv_range_resp *out)
{
    struct kv_range_req q;
    memset(&q, 0, sizeof(q));
    q.key = (const uint8_t *)key;
    q.key_len = kn;
    q.revision = rev;
    return kv_range(l->rd, &q, &l->res, out);
}

/* The stream message of a release value (meta + content). */
static json_t *release_msg(struct server *s, const struct cfg_id *id,
                           json_t *meta, const char *content, size_t clen,
                           bool gray, bool can_secret, const char *type,
                           int64_t rev)
{
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?,s:b,s:I}",
                  "type", type, "namespace", id->ns, "app", id->app, "name",
                  id->name, "version", json_object_get(meta, "version"),
                  "format", json_object_get(meta, "format"), "sha256",
                  json_object_get(meta, "sha256"), "author",
                  json_object_get(meta, "author"), "message",
                  json_object_get(meta, "message"), "created_at",
                  json_object_get(meta, "created_at"), "gray", gray, "revision",
                  (json_int_t)rev);
    bool secret = json_is_true(json_object_get(meta, "secret"));
    if (o == NULL) {
        return NULL;
    }
    if (secret) {
        json_object_set_new(o, "secret", json_true());
    }
    if (!secret) {
        json_object_set_new(o, "content", json_stringn(content, clen));
    } else if (can_secret) {
        struct buf clear;
        buf_init(&clear, CFG_CONTENT_MAX + 64);
        int rc = cfg_secret_open(
            s, id, json_integer_value(json_object_get(meta, "version")),
            content, clen, &clear);
        if (rc == 0) {
            json_object_set_new(
                o, "content",
                json_stringn((const char *)clear.data, clear.len));
        } else {
            json_object_set_new(o, "content", json_null());
            json_object_set_new(o, "redacted", json_true());
        }
        buf_free(&clear);
    } else {
        json_object_set_new(o, "content", json_null());
        json_object_set_new(o, "redacted", json_true());
    }
    return o;
}

static bool client_gets_gray(const struct cfg_id *id, json_t *gmeta,
                             const struct cfg_client *c)
{
    struct cfg_gray_rule rule;
    char msg[128];
    char cid[3 * CFG_NAME_MAX + 4];
    json_t *r = json_object_get(gmeta, "rule");
    if (r == NULL || cfg_gray_rule_parse(r, &rule, msg, sizeof(msg)) != 0) {
        return false;
    }
    snprintf(cid, sizeof(cid), "%s/%s/%s", id->ns, id->app, id->name);
    return cfg_gray_match(
        &rule, cid, c != NULL && c->client_id[0] != '\0' ? c->client_id : NULL,
        c != NULL ? &c->labels : NULL);
}

int cfg_resolve(struct server *s, const struct cfg_id *id, int64_t rev,
                const struct cfg_client *client, bool can_secret,
                const char *type, json_t **out, int64_t *version,
                int64_t *created_ms)
{
    struct local l = {.s = s};
    struct kv_range_resp h, g, r;
    char key[CFG_KEY_MAX];
    size_t kn;
    json_t *head = NULL, *meta = NULL;
    const char *content;
    size_t clen;
    int rc = node_read_begin(s->node, &l.rd);
    *out = NULL;
    if (rc != 0) {
        return rc;
    }
    kn = cfg_key_head(id, key, sizeof(key));
    rc = local_get(&l, key, kn, rev, &h);
    if (rc != 0 || h.kvs_count == 0) {
        rc = rc != 0 ? rc : 1;
        goto done;
    }
    head =
        json_loadb((const char *)h.kvs[0].value, h.kvs[0].value_len, 0, NULL);
    if (head == NULL) {
        rc = 1; /* not one of ours: as if absent */
        goto done;
    }
    kn = cfg_key_gray(id, key, sizeof(key));
    rc = local_get(&l, key, kn, rev, &g);
    if (rc != 0) {
        goto done;
    }
    if (g.kvs_count > 0 && cfg_release_parse(g.kvs[0].value, g.kvs[0].value_len,
                                             &meta, &content, &clen) == 0) {
        if (client_gets_gray(id, meta, client)) {
            *version = json_integer_value(json_object_get(meta, "version"));
            *created_ms =
                json_integer_value(json_object_get(meta, "created_ms"));
            *out = release_msg(s, id, meta, content, clen, true, can_secret,
                               type, rev);
            rc = *out != NULL ? 0 : -ENOMEM;
            goto done;
        }
        json_decref(meta);
        meta = NULL;
    }
    kn = cfg_key_release(id,
                         json_integer_value(json_object_get(head, "version")),
                         key, sizeof(key));
    rc = local_get(&l, key, kn, rev, &r);
    if (rc != 0) {
        goto done;
    }
    if (r.kvs_count == 0 ||
        cfg_release_parse(r.kvs[0].value, r.kvs[0].value_len, &meta, &content,
                          &clen) != 0) {
        rc = 1;
        goto done;
    }
    *version = json_integer_value(json_object_get(meta, "version"));
    *created_ms = json_integer_value(json_object_get(meta, "created_ms"));
    *out =
        release_msg(s, id, meta, content, clen, false, can_secret, type, rev);
    rc = *out != NULL ? 0 : -ENOMEM;
done:
    json_decref(meta);
    json_decref(head);
    kv_result_free(&l.res);
    node_read_end(s->node, l.rd);
    return rc;
}

/* ------------------------------------------- one change, shared */

/*
 * A config stream pushes "the release this client runs" after each change.
 * Resolving it per subscriber (cfg_resolve: three store reads, a JSON
 * parse, a release_msg and its encoding) cost 100-134 us each, 10,000
 * times for one publish at 10,000 subscribers. A struct cfg_change does
 * the reads once per (config, revision) and encodes each variant a client
 * can get once: the release, or the gray release for clients its rule
 * matches, each in clear and, for a secret, redacted. What is left per
 * subscriber is the gray match (a SHA-256 for a percentage rule) and the
 * secret permission. The text is what svc_json_dump made of
 * cfg_resolve's object, byte for byte, so a client cannot tell.
 */

/* One release a client may be sent: rc 0 with its texts, 1 when there is
 * none (deleted, or not one of ours), or an error. */
struct cfg_variant {
    int rc;
    int64_t version;
    int64_t created_ms;
    char *clear; /* content in clear (or not a secret) */
    size_t clear_len;
    char *redacted; /* a secret, for a client that may not read it */
    size_t redacted_len;
};

struct cfg_change {
    struct cfg_id id;
    int64_t rev;
    bool secret;   /* a variant is a secret: permission matters */
    bool has_gray; /* a gray release with a rule that parses */
    struct cfg_gray_rule rule;
    char cid[3 * CFG_NAME_MAX + 4]; /* "<ns>/<app>/<name>" for buckets */
    struct cfg_variant main, gray;
    size_t encodings; /* texts made */
};

/* svc_json_dump of o (taken) into *text and *len; -ENOMEM. */
static int dump_take(json_t *o, char **text, size_t *len)
{
    *text = o != NULL ? svc_json_dump(o) : NULL;
    json_decref(o);
    if (*text == NULL) {
        return -ENOMEM;
    }
    *len = strlen(*text);
    return 0;
}

/* Fill v from a release value (meta taken). */
static int variant_make(struct server *s, struct cfg_change *c,
                        struct cfg_variant *v, json_t *meta,
                        const char *content, size_t clen, bool gray)
{
    bool secret = json_is_true(json_object_get(meta, "secret"));
    int rc;
    v->version = json_integer_value(json_object_get(meta, "version"));
    v->created_ms = json_integer_value(json_object_get(meta, "created_ms"));
    rc = dump_take(
        release_msg(s, &c->id, meta, content, clen, gray, true, "put", c->rev),
        &v->clear, &v->clear_len);
    c->encodings++;
    if (rc == 0 && secret) {
        c->secret = true;
        rc = dump_take(release_msg(s, &c->id, meta, content, clen, gray, false,
                                   "put", c->rev),
                       &v->redacted, &v->redacted_len);
        c->encodings++;
    }
    json_decref(meta);
    v->rc = rc;
    return rc;
}

/* The gray release, if any, and its rule (kept only when it parses: a
 * rule that does not matches no client, as in client_gets_gray). */
static int change_gray(struct local *l, struct cfg_change *c)
{
    struct kv_range_resp g;
    char key[CFG_KEY_MAX];
    char msg[128];
    json_t *meta = NULL;
    const char *content;
    size_t clen;
    size_t kn = cfg_key_gray(&c->id, key, sizeof(key));
    int rc = local_get(l, key, kn, c->rev, &g);
    if (rc != 0 || g.kvs_count == 0 ||
        cfg_release_parse(g.kvs[0].value, g.kvs[0].value_len, &meta, &content,
                          &clen) != 0) {
        return rc;
    }
    json_t *r = json_object_get(meta, "rule");
    if (r == NULL || cfg_gray_rule_parse(r, &c->rule, msg, sizeof(msg)) != 0) {
        json_decref(meta);
        return 0;
    }
    c->has_gray = true;
    return variant_make(l->s, c, &c->gray, meta, content, clen, true);
}

/* The release the head names; an error here concerns only the clients
 * that do not get the gray release (as in cfg_resolve). */
static int change_main(struct local *l, struct cfg_change *c, json_t *head)
{
    struct kv_range_resp r;
    char key[CFG_KEY_MAX];
    json_t *meta = NULL;
    const char *content;
    size_t clen;
    size_t kn = cfg_key_release(
        &c->id, json_integer_value(json_object_get(head, "version")), key,
        sizeof(key));
    int rc = local_get(l, key, kn, c->rev, &r);
    if (rc != 0) {
        c->main.rc = rc;
        return 0;
    }
    if (r.kvs_count == 0 ||
        cfg_release_parse(r.kvs[0].value, r.kvs[0].value_len, &meta, &content,
                          &clen) != 0) {
        c->main.rc = 1;
        return 0;
    }
    return variant_make(l->s, c, &c->main, meta, content, clen, false);
}

static void variant_free(struct cfg_variant *v)
{
    free(v->clear);
    free(v->redacted);
}

void cfg_change_free(struct cfg_change *c)
{
    if (c == NULL) {
        return;
    }
    variant_free(&c->main);
    variant_free(&c->gray);
    mem_free(c);
}

int cfg_change_load(struct server *s, const struct cfg_id *id, int64_t rev,
                    struct cfg_change **out)
{
    struct local l = {.s = s};
    struct kv_range_resp h;
    char key[CFG_KEY_MAX];
    json_t *head = NULL;
    struct cfg_change *c;
    int rc;
    *out = NULL;
    c = mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    c->id = *id;
    c->rev = rev;
    c->main.rc = 1;
    snprintf(c->cid, sizeof(c->cid), "%s/%s/%s", id->ns, id->app, id->name);
    rc = node_read_begin(s->node, &l.rd);
    if (rc != 0) {
        mem_free(c);
        return rc;
    }
    size_t kn = cfg_key_head(id, key, sizeof(key));
    rc = local_get(&l, key, kn, rev, &h);
    if (rc == 0 && h.kvs_count > 0) {
        head = json_loadb((const char *)h.kvs[0].value, h.kvs[0].value_len, 0,
                          NULL);
    }
    /* no head, or not one of ours: absent for every client */
    if (rc == 0 && head != NULL) {
        rc = change_gray(&l, c);
        rc = rc != 0 ? rc : change_main(&l, c, head);
    }
    json_decref(head);
    kv_result_free(&l.res);
    node_read_end(s->node, l.rd);
    if (rc != 0) {
        cfg_change_free(c);
        return rc;
    }
    ASSERT(c->has_gray || c->gray.clear == NULL);
    *out = c;
    return 0;
}

bool cfg_change_secret(const struct cfg_change *c)
{
    return c->secret;
}

size_t cfg_change_encodings(const struct cfg_change *c)
{
    return c->encodings;
}

int cfg_change_for(const struct cfg_change *c, const struct cfg_client *client,
                   bool can_secret, const char **text, size_t *len,
                   int64_t *version, int64_t *created_ms, bool *gray)
{
    const struct cfg_variant *v = &c->main;
    *gray = false;
    if (c->has_gray &&
        cfg_gray_match(&c->rule, c->cid,
                       client != NULL && client->client_id[0] != '\0'
                           ? client->client_id
                           : NULL,
                       client != NULL ? &client->labels : NULL)) {
        v = &c->gray;
        *gray = true;
    }
    if (v->rc != 0) {
        return v->rc;
    }
    ASSERT(v->clear != NULL);
    bool clear = v->redacted == NULL || can_secret;
    *text = clear ? v->clear : v->redacted;
    *len = clear ? v->clear_len : v->redacted_len;
    *version = v->version;
    *created_ms = v->created_ms;
    return 0;
}

int cfg_heads_local(struct server *s, const char *prefix, size_t plen,
                    int64_t rev, size_t limit, cfg_head_fn fn, void *ctx)
{
    struct local l = {.s = s};
    struct kv_range_req q;
    struct kv_range_resp resp;
    char from[CFG_KEY_MAX + 2], end[CFG_KEY_MAX + 2];
    size_t fn_len = plen, seen = 0;
    int rc = node_read_begin(s->node, &l.rd);
    if (rc != 0) {
        return rc;
    }
    if (plen >= CFG_KEY_MAX || plen == 0) {
        node_read_end(s->node, l.rd);
        return ERR_INVALID;
    }
    memcpy(from, prefix, plen);
    memcpy(end, prefix, plen);
    end[plen - 1]++; /* the prefix ends in '/' */
    /* Pages of keys only; a "~r"/"~g" subtree is skipped by starting the
     * next page past it. */
    while (rc == 0 && seen < limit) {
        memset(&q, 0, sizeof(q));
        q.key = (const uint8_t *)from;
        q.key_len = fn_len;
        q.range_end = (const uint8_t *)end;
        q.range_end_len = plen;
        q.revision = rev;
        q.keys_only = true;
        q.limit = 256;
        rc = kv_range(l.rd, &q, &l.res, &resp);
        if (rc != 0 || resp.kvs_count == 0) {
            break;
        }
        bool jumped = false;
        for (size_t i = 0; i < resp.kvs_count && rc == 0 && !jumped; i++) {
            struct cfg_id id;
            const char *k = (const char *)resp.kvs[i].key;
            size_t kl = resp.kvs[i].key_len;
            enum cfg_key_kind kind = cfg_key_parse(k, kl, &id, NULL);
            if (kind == CFG_K_HEAD) {
                rc = fn(ctx, &id);
                seen++;
            }
            if (kind == CFG_K_RELEASE || kind == CFG_K_GRAY) {
                /* skip the app's whole ~ subtree */
                fn_len = (size_t)snprintf(from, sizeof(from),
                                          CFG_PREFIX "%s/%s/~~", id.ns, id.app);
                jumped = true;
            } else if (i + 1 == resp.kvs_count) {
                if (kl + 1 >= sizeof(from)) {
                    rc = ERR_INVALID;
                    break;
                }
                memcpy(from, k, kl);
                from[kl] = '\0'; /* the next key after k */
                fn_len = kl + 1;
            }
        }
        if (!resp.more && !jumped) {
            break;
        }
        kv_result_free(&l.res);
        memset(&l.res, 0, sizeof(l.res));
    }
    kv_result_free(&l.res);
    node_read_end(s->node, l.rd);
    return rc;
}

int64_t cfg__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

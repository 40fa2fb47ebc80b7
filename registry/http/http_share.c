/*
 * http_share.c - one encoding per change for the discovery and config
 * streams (ARCHITECTURE.md: "one encoding per change").
 *
 * Every subscriber has its own hub watcher, so the hub hands the same
 * event to each subscriber's stream in turn (in one pass, or over several
 * when some catch up later). Encoding the pushed message per subscriber
 * made a registration cost a JSON parse and an encode 10,000 times at
 * 10,000 subscribers, and a config publish three store reads, a parse and
 * an encode each. Here the first subscriber to need a change's message
 * makes it and the next ones reuse it:
 *
 *   discovery: the message of one event, {"type":"put"|"delete",
 *     "revision":R,"instance":{..}}, keyed by (revision, key, type, prev
 *     present). It depends on nothing else, so every subscriber's bytes
 *     are the same; a value that is not an instance document is kept as
 *     "nothing to send".
 *   config: a struct cfg_change (cfgapi.h) per (config, revision): the
 *     store read once and each variant (release or gray release, clear or
 *     redacted) encoded once; each subscriber only picks its variant.
 *
 * Both are small rings of the most recent keys (an event in MVCC is fixed
 * by its revision and key, a config at a revision does not change, so an
 * entry never goes stale; the ring only bounds memory). A subscriber
 * copies the text into its own outbound queue, framed for its stream
 * (SSE lines, a multiplexed socket's {"sub":N,..}): the copy costs a
 * memcpy, the encoding it replaces a parse and a dump. Errors are not
 * kept: each subscriber meets them itself (a compaction, out of memory).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "consensus/kv/kv.h"
#include "registry/config/cfgapi.h"
#include "registry/http/http_int.h"
#include "registry/services/services.h"

/* A discovery event's key, as the ring keeps it. */
static bool reg_same(const struct http_share_reg *r, const struct kv_event *e)
{
    return r->used && r->rev == e->kv.mod_revision &&
           r->del == (e->type == KV_EVENT_DELETE) &&
           r->has_prev == e->has_prev && r->key_len == e->kv.key_len &&
           memcmp(r->key, e->kv.key, e->kv.key_len) == 0;
}

static void reg_clear(struct http_share_reg *r)
{
    mem_free(r->key);
    free(r->text); /* svc_json_dump's allocation */
    memset(r, 0, sizeof(*r));
}

/* The message of e, encoded (a new reference to free), or NULL with *rc 0
 * when e is not sent (a value that is not an instance document). */
static json_t *reg_encode(const struct kv_event *e)
{
    char ns[SVC_NAME_MAX + 1], svc[SVC_NAME_MAX + 1], id[SVC_NAME_MAX + 1];
    int64_t rev = e->kv.mod_revision;
    json_t *d;
    if (e->type != KV_EVENT_DELETE) {
        d = svc_doc_parse(e->kv.value, e->kv.value_len, rev,
                          e->kv.create_revision);
        if (d == NULL) {
            return NULL;
        }
        return json_pack("{s:s,s:I,s:o}", "type", "put", "revision",
                         (json_int_t)rev, "instance", d);
    }
    d = e->has_prev
            ? svc_doc_parse(e->prev.value, e->prev.value_len,
                            e->prev.mod_revision, e->prev.create_revision)
            : NULL;
    if (d == NULL) {
        if (svc_key_split((const char *)e->kv.key, e->kv.key_len, ns, svc,
                          id) != 0) {
            return NULL;
        }
        d = json_pack("{s:s,s:s,s:s}", "id", id, "namespace", ns, "service",
                      svc);
    }
    return json_pack("{s:s,s:I,s:o?}", "type", "delete", "revision",
                     (json_int_t)rev, "instance", d);
}

int http__share_reg(struct http *h, const struct kv_event *e, const char **text,
                    size_t *len)
{
    struct http_share *sh = &h->share;
    struct http_share_reg *r;
    for (size_t i = 0; i < HTTP_SHARE_REG; i++) {
        if (reg_same(&sh->reg[i], e)) {
            h->st.push_shared++;
            *text = sh->reg[i].text;
            *len = sh->reg[i].text_len;
            return 0;
        }
    }
    r = &sh->reg[sh->reg_next];
    reg_clear(r);
    /* the key first: a failure leaves the slot empty */
    r->key = mem_dup(e->kv.key, e->kv.key_len);
    if (r->key == NULL && e->kv.key_len > 0) {
        return -ENOMEM;
    }
    json_t *o = reg_encode(e);
    if (o != NULL) {
        r->text = svc_json_dump(o);
        json_decref(o);
        if (r->text == NULL) {
            reg_clear(r);
            return -ENOMEM;
        }
        r->text_len = strlen(r->text);
        h->st.push_encoded++;
    }
    /* a value that does not parse is kept too: NULL text, nothing sent
     * (a put whose instance would not encode is the same to a client) */
    r->used = true;
    r->rev = e->kv.mod_revision;
    r->del = e->type == KV_EVENT_DELETE;
    r->has_prev = e->has_prev;
    r->key_len = e->kv.key_len;
    sh->reg_next = (sh->reg_next + 1) % HTTP_SHARE_REG;
    ASSERT(reg_same(r, e));
    *text = r->text;
    *len = r->text_len;
    return 0;
}

struct http_blob *http__blob_new(const void *p, size_t n)
{
    struct http_blob *b = mem_alloc(sizeof(*b) + n);
    if (b != NULL) {
        b->refs = 1;
        b->len = n;
        memcpy(b->data, p, n);
    }
    return b;
}

void http__blob_unref(struct http_blob *b)
{
    if (b != NULL && --b->refs == 0) {
        mem_free(b);
    }
}

static void cfg_clear(struct http_share_cfg *c)
{
    cfg_change_free(c->change);
    for (size_t i = 0; i < HTTP_SHARE_VARIANTS; i++) {
        http__blob_unref(c->blob[i]); /* queues may still hold it */
    }
    memset(c, 0, sizeof(*c));
}

struct http_blob *http__share_cfg_blob(struct http *h,
                                       const struct cfg_change *c,
                                       const char *text, size_t n)
{
    struct http_share *sh = &h->share;
    if (n < HTTP_SHARE_MIN_BYTES) {
        return NULL;
    }
    for (size_t i = 0; i < HTTP_SHARE_CFG; i++) {
        struct http_share_cfg *sc = &sh->cfg[i];
        if (sc->change != c) {
            continue;
        }
        for (size_t k = 0; k < HTTP_SHARE_VARIANTS; k++) {
            if (sc->blob[k] != NULL && sc->blob_of[k] == text &&
                sc->blob[k]->len == n) {
                return sc->blob[k];
            }
            if (sc->blob[k] == NULL) {
                sc->blob[k] = http__blob_new(text, n);
                sc->blob_of[k] = text;
                return sc->blob[k];
            }
        }
        return NULL;
    }
    return NULL;
}

int http__share_cfg(struct http *h, const struct cfg_id *id, int64_t rev,
                    const struct cfg_change **out)
{
    struct http_share *sh = &h->share;
    struct http_share_cfg *c;
    int rc;
    for (size_t i = 0; i < HTTP_SHARE_CFG; i++) {
        c = &sh->cfg[i];
        if (c->change != NULL && c->rev == rev &&
            strcmp(c->id.name, id->name) == 0 &&
            strcmp(c->id.app, id->app) == 0 && strcmp(c->id.ns, id->ns) == 0) {
            h->st.push_shared++;
            *out = c->change;
            return 0;
        }
    }
    c = &sh->cfg[sh->cfg_next];
    cfg_clear(c);
    rc = cfg_change_load(h->s, id, rev, &c->change);
    if (rc != 0) {
        ASSERT(c->change == NULL);
        return rc;
    }
    c->id = *id;
    c->rev = rev;
    sh->cfg_next = (sh->cfg_next + 1) % HTTP_SHARE_CFG;
    h->st.push_encoded += cfg_change_encodings(c->change);
    *out = c->change;
    return 0;
}

void http__share_free(struct http *h)
{
    struct http_share *sh = &h->share;
    for (size_t i = 0; i < HTTP_SHARE_REG; i++) {
        reg_clear(&sh->reg[i]);
    }
    for (size_t i = 0; i < HTTP_SHARE_CFG; i++) {
        cfg_clear(&sh->cfg[i]);
    }
}

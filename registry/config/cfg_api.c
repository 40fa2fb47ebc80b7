/*
 * cfg_api.c - the config center's REST calls (cfgapi.h, docs/config.md),
 * each reduced to etcd requests through api_call_auth as the caller's
 * token, so quotas and key-range permissions apply unchanged: a role that
 * may read /config/<ns>/ reads that namespace's configs and nothing else.
 *
 *   PUT    /api/v1/config/<ns>/<app>/<name>          Range head, Txn
 *   GET    /api/v1/config/<ns>/<app>/<name>          Txn of 3 reads
 *   DELETE /api/v1/config/<ns>/<app>/<name>          Txn
 *   GET    .../<name>/versions, .../versions/<v>     Range
 *   GET    .../<name>/diff?from=a&to=b               Txn of 2 reads
 *   POST   .../<name>/rollback                       Txn of reads, Txn
 *   PUT|GET|DELETE .../<name>/gray, POST .../gray/promote
 *   GET    .../<name>/subscribers                    this member's streams
 *   POST   .../<name>/validate                       none (a range check)
 *   GET    /api/v1/config/<ns>, /api/v1/config/<ns>/<app>   listings
 *
 * A write reads the head, then writes in one Txn guarded by the head's
 * mod_revision (absent: create_revision 0): the release, the new head and
 * the trimming of old releases commit together or not at all. A lost race
 * re-evaluates on the head the failed Txn read back (CFG_RETRIES times).
 * Version numbers only grow: the head's "next" is taken by every publish,
 * rollback and gray release, so an abandoned gray number is never reused,
 * and a promoted gray release keeps its number (its subscribers already run
 * it). A publish or rollback while a gray release is open is 409: promote
 * or abandon it first.
 */
#include "registry/config/cfg_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/sha.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "base/str.h"
#include "proto/rpc.pb-c.h"
#include "registry/grpc/grpc.h"
#include "registry/server/api_auth.h"
#include "registry/server/server.h"
#include "registry/services/services.h"

#define TOKEN_MAX   1024
#define QUERY_MAX   2048
#define CFG_RETRIES 5
#define LIST_MAX    10000
#define API         "/api/v1/config"

enum route {
    R_PUT,
    R_GET,
    R_DELETE,
    R_VERSIONS,
    R_VERSION,
    R_DIFF,
    R_ROLLBACK,
    R_GRAY_PUT,
    R_GRAY_GET,
    R_GRAY_DELETE,
    R_GRAY_PROMOTE,
    R_SUBSCRIBERS,
    R_VALIDATE,
    R_LIST_APPS,
    R_LIST_CONFIGS,
};

struct cfg_req;
struct diff_job;
typedef void (*step_fn)(struct cfg_req *r, int err, const uint8_t *resp,
                        size_t len);

struct cfg_req {
    struct server *s;
    struct cfg_req **slot;
    cfgapi_done_fn done;
    void *ctx;
    struct api_op *op;
    struct cfg_waiter *waiter;
    step_fn next;
    enum route route;
    char token[TOKEN_MAX];
    char cert_user[256]; /* a verified client certificate's CN, or "" */
    char query[QUERY_MAX];
    char peer[64];
    char inm[80]; /* If-None-Match */
    char user[128];
    struct cfg_id id;
    json_t *body;
    int retries;
    int64_t v, v2; /* a version named by the path or query */
    /* what a write publishes */
    enum cfg_format fmt;
    bool secret;
    bool gray_write;
    struct buf content; /* clear */
    char sha[SHA256_DIGEST_LENGTH * 2 + 1];
    const char *source;
    int64_t from;
    json_t *rule;
    int64_t expect_version; /* -1: none */
    /* wait_acks */
    double wait_frac;
    uint32_t wait_ms;
    json_t *answer;        /* held while acks are awaited */
    struct diff_job *diff; /* a diff running on the thread pool */
};

/* A diff runs on libuv's thread pool: cfg_diff may spend up to about a
 * second of one core on two 1 MiB documents (CFG_DIFF_COST_MAX), which on
 * the loop would stall every client of the member. The job owns copies of
 * both texts; a request that goes away first only detaches (r = NULL).
 * At most DIFFS_MAX run or wait at once per process (each holds up to two
 * 1 MiB texts and the output); more are answered 503. Loop thread only. */
#define DIFFS_MAX 4
struct diff_job {
    uv_work_t w;
    struct cfg_req *r;
    struct buf a, b, out;
    char lab_a[CFG_NAME_MAX + 32], lab_b[CFG_NAME_MAX + 32];
    int rc;
};
static unsigned diffs_running;

static void req_free(struct cfg_req *r)
{
    if (r->slot != NULL) {
        ASSERT(*r->slot == r);
        *r->slot = NULL;
    }
    if (r->diff != NULL) {
        r->diff->r = NULL;
    }
    if (r->waiter != NULL) {
        cfg__wait_cancel(r->s, r->waiter);
    }
    json_decref(r->body);
    json_decref(r->rule);
    json_decref(r->answer);
    buf_free(&r->content);
    mem_free(r);
}

/* ---------------------------------------------------------- answering */

static void answer_raw(struct cfg_req *r, int status, const char *ctype,
                       const char *etag, const char *body, size_t len)
{
    if (r->slot != NULL) {
        ASSERT(*r->slot == r);
        *r->slot = NULL;
        r->slot = NULL;
    }
    r->done(r->ctx, status, ctype, etag, body, len);
    req_free(r);
}

static void answer_json(struct cfg_req *r, int status, json_t *o)
{
    static const char oom[] = "{\"error\":\"out of memory\",\"code\":"
                              "\"internal\",\"message\":\"out of memory\"}";
    char *s = o != NULL ? svc_json_dump(o) : NULL;
    json_decref(o);
    if (s == NULL) {
        answer_raw(r, 500, "application/json", NULL, oom, sizeof(oom) - 1);
        return;
    }
    answer_raw(r, status, "application/json", NULL, s, strlen(s));
    free(s);
}

static void answer_error(struct cfg_req *r, int status, const char *code,
                         const char *message, const char *field)
{
    char tmp[512];
    message = str_utf8_safe(message, tmp, sizeof(tmp)); /* parser text */
    json_t *o = json_pack("{s:s,s:s,s:s}", "error", message, "code", code,
                          "message", message);
    if (o != NULL && field != NULL) {
        json_object_set_new(o, "field", json_string(field));
    }
    answer_json(r, status, o);
}

static void answer_bad(struct cfg_req *r, const char *msg, const char *field)
{
    answer_error(r, 400, "bad_request", msg, field);
}

static void answer_err(struct cfg_req *r, int err)
{
    const char *code = "internal";
    int status = grpc_api_v1_status(err, &code);
    answer_error(r, status, code, err_str(err), NULL);
}

/* ------------------------------------------------------- inner calls */

static void inner_done(void *ctx, int err, const uint8_t *resp, size_t len)
{
    struct cfg_req *r = ctx;
    step_fn next = r->next;
    r->op = NULL;
    r->next = NULL;
    ASSERT(next != NULL);
    next(r, err, resp, len);
}

/* The audit record of a write route's requests (docs/audit.md), NULL for
 * a read route. A write route's read-only Txns (the head it reads first)
 * propose nothing, so the record goes only with the write; a Txn whose
 * compare fails (a lost race, retried) records nothing. Never the content:
 * metadata only, so a secret config's value never reaches the log. */
static const struct api_audit *audit_of(const struct cfg_req *r,
                                        struct api_audit *au, char *target,
                                        size_t cap)
{
    static const char *const actions[] = {
        [R_PUT] = "config.publish",
        [R_DELETE] = "config.delete",
        [R_ROLLBACK] = "config.rollback",
        [R_GRAY_PUT] = "config.gray.put",
        [R_GRAY_DELETE] = "config.gray.abandon",
        [R_GRAY_PROMOTE] = "config.gray.promote",
    };
    const char *msg = NULL;
    if ((size_t)r->route >= sizeof(actions) / sizeof(actions[0]) ||
        actions[r->route] == NULL) {
        return NULL;
    }
    if (r->body != NULL) {
        msg = json_string_value(json_object_get(r->body, "message"));
    }
    memset(au, 0, sizeof(*au));
    snprintf(target, cap, "%s/%s", r->id.app, r->id.name);
    au->action = actions[r->route];
    au->ns = r->id.ns;
    au->target = target;
    au->principal = r->user;
    au->source = r->peer;
    au->version = r->route == R_DELETE ? 0 : r->v;
    au->message = msg;
    return au;
}

static void call(struct cfg_req *r, const char *path,
                 const ProtobufCMessage *msg, step_fn next)
{
    const struct api_method *m = api_find(path);
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *bytes = mem_alloc(n > 0 ? n : 1);
    struct api_op *op;
    ASSERT(m != NULL);
    ASSERT(r->op == NULL);
    if (bytes == NULL) {
        next(r, -ENOMEM, NULL, 0);
        return;
    }
    protobuf_c_message_pack(msg, bytes);
    r->next = next;
    struct api_audit au;
    char target[2 * CFG_NAME_MAX + 2];
    const struct api_audit *ap = audit_of(r, &au, target, sizeof(target));
    op = api_call_as(
        r->s, m, bytes, n, 0, r->token[0] != '\0' ? r->token : NULL,
        r->cert_user[0] != '\0' ? r->cert_user : NULL, ap, inner_done, r);
    mem_free(bytes);
    if (op != NULL) {
        r->op = op;
    }
}

/* A Txn under construction: storage for its parts. */
#define TX_OPS 6
struct tx {
    Etcdserverpb__TxnRequest txn;
    Etcdserverpb__Compare cmp[2];
    Etcdserverpb__Compare *cmpp[2];
    Etcdserverpb__RequestOp ok[TX_OPS], ko[2];
    Etcdserverpb__RequestOp *okp[TX_OPS], *kop[2];
    Etcdserverpb__PutRequest put[TX_OPS];
    Etcdserverpb__DeleteRangeRequest del[TX_OPS];
    Etcdserverpb__RangeRequest rg[TX_OPS + 2];
    char keys[2 * TX_OPS + 4][CFG_KEY_MAX];
    size_t nkeys, nput, ndel, nrg;
};

static void tx_init(struct tx *t)
{
    memset(t, 0, sizeof(*t));
    etcdserverpb__txn_request__init(&t->txn);
    for (int i = 0; i < 2; i++) {
        t->cmpp[i] = &t->cmp[i];
        t->kop[i] = &t->ko[i];
    }
    for (int i = 0; i < TX_OPS; i++) {
        t->okp[i] = &t->ok[i];
    }
    t->txn.compare = t->cmpp;
    t->txn.success = t->okp;
    t->txn.failure = t->kop;
}

/* A new Txn for r, or NULL after answering out of memory. */
static struct tx *tx_new(struct cfg_req *r)
{
    struct tx *t = mem_alloc(sizeof(*t));
    if (t == NULL) {
        answer_err(r, -ENOMEM);
        return NULL;
    }
    tx_init(t);
    return t;
}

/* Send t (packed at once) as r's next request, then free it. */
static void tx_send(struct cfg_req *r, struct tx *t, step_fn next)
{
    call(r, "/etcdserverpb.KV/Txn", &t->txn.base, next);
    mem_free(t);
}

static ProtobufCBinaryData tx_bytes(struct tx *t, const char *k, size_t n)
{
    ProtobufCBinaryData b;
    ASSERT(t->nkeys < sizeof(t->keys) / sizeof(t->keys[0]));
    ASSERT(n < CFG_KEY_MAX);
    memcpy(t->keys[t->nkeys], k, n);
    b.data = (uint8_t *)t->keys[t->nkeys++];
    b.len = n;
    return b;
}

/* The range end of a prefix ending in '/'. */
static ProtobufCBinaryData tx_end(struct tx *t, const char *p, size_t n)
{
    ProtobufCBinaryData b = tx_bytes(t, p, n);
    b.data[n - 1]++;
    return b;
}

static Etcdserverpb__RequestOp *tx_op(struct tx *t, bool failure)
{
    Etcdserverpb__RequestOp *op;
    if (failure) {
        ASSERT(t->txn.n_failure < 2);
        op = &t->ko[t->txn.n_failure++];
    } else {
        ASSERT(t->txn.n_success < TX_OPS);
        op = &t->ok[t->txn.n_success++];
    }
    etcdserverpb__request_op__init(op);
    return op;
}

static Etcdserverpb__RangeRequest *tx_range(struct tx *t, bool failure,
                                            const char *k, size_t n)
{
    Etcdserverpb__RequestOp *op = tx_op(t, failure);
    Etcdserverpb__RangeRequest *q = &t->rg[t->nrg++];
    etcdserverpb__range_request__init(q);
    q->key = tx_bytes(t, k, n);
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    op->request_range = q;
    return q;
}

static void tx_put(struct tx *t, const char *k, size_t n, const void *v,
                   size_t vn)
{
    Etcdserverpb__RequestOp *op = tx_op(t, false);
    Etcdserverpb__PutRequest *p = &t->put[t->nput++];
    etcdserverpb__put_request__init(p);
    p->key = tx_bytes(t, k, n);
    p->value.data = (uint8_t *)v;
    p->value.len = vn;
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op->request_put = p;
}

/* Delete k, or [k, end) when end is not NULL. */
static void tx_del(struct tx *t, const char *k, size_t n, const char *end,
                   size_t en)
{
    Etcdserverpb__RequestOp *op = tx_op(t, false);
    Etcdserverpb__DeleteRangeRequest *d = &t->del[t->ndel++];
    etcdserverpb__delete_range_request__init(d);
    d->key = tx_bytes(t, k, n);
    if (end != NULL) {
        d->range_end = tx_bytes(t, end, en);
    }
    op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    op->request_delete_range = d;
}

static void tx_cmp_mod(struct tx *t, const char *k, size_t n, int64_t mod)
{
    Etcdserverpb__Compare *c = &t->cmp[t->txn.n_compare++];
    etcdserverpb__compare__init(c);
    c->key = tx_bytes(t, k, n);
    c->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c->mod_revision = mod; /* 0: the key is absent */
}

static Etcdserverpb__TxnResponse *txn_unpack(struct cfg_req *r, int err,
                                             const uint8_t *resp, size_t len)
{
    Etcdserverpb__TxnResponse *t;
    if (err != 0) {
        answer_err(r, err);
        return NULL;
    }
    t = etcdserverpb__txn_response__unpack(NULL, len, resp);
    if (t == NULL) {
        answer_err(r, ERR_UNMARSHAL);
    }
    return t;
}

static const Etcdserverpb__RangeResponse *
txn_range(const Etcdserverpb__TxnResponse *t, size_t i)
{
    if (i >= t->n_responses ||
        t->responses[i]->response_case !=
            ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE) {
        return NULL;
    }
    return t->responses[i]->response_range;
}

static int64_t txn_rev(const Etcdserverpb__TxnResponse *t)
{
    return t->header != NULL ? t->header->revision : 0;
}

/* ------------------------------------------------------------- helpers */

static void rfc3339(char *out, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000) % 1000);
}

static void sha_hex(const void *p, size_t n, char *out)
{
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256(p, n, d);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

static const char *ctype_of(const char *fmt)
{
    if (fmt == NULL) {
        return "text/plain; charset=utf-8";
    }
    if (strcmp(fmt, "json") == 0) {
        return "application/json";
    }
    if (strcmp(fmt, "yaml") == 0) {
        return "application/yaml";
    }
    return "text/plain; charset=utf-8";
}

static size_t history_max(const struct server *s)
{
    uint64_t n = s->opt->config_history;
    return n == 0 ? CFG_HISTORY_DEF : (size_t)n;
}

/* May the caller read secrets of this config in clear? Auth off: yes.
 * Auth on: read permission on /config-secret/<ns>/<app>/<name>. */
bool cfg_can_secret(struct server *s, const char *token, const char *cert_user,
                    const struct cfg_id *id)
{
    char k[CFG_KEY_MAX];
    int n = snprintf(k, sizeof(k), "/config-secret/%s/%s/%s", id->ns, id->app,
                     id->name);
    return api_auth_range_check_as(s, token != NULL && token[0] ? token : NULL,
                                   cert_user, (const uint8_t *)k, (size_t)n,
                                   NULL, 0) == 0;
}

/* A release value's content in clear for the caller into out (borrowing
 * content when it is not a secret). 0, or ERR_PERMISSION_DENIED. */
static int clear_of(struct cfg_req *r, json_t *meta, const char *content,
                    size_t clen, struct buf *tmp, const char **out,
                    size_t *out_len)
{
    if (!json_is_true(json_object_get(meta, "secret"))) {
        *out = content;
        *out_len = clen;
        return 0;
    }
    if (!cfg_can_secret(r->s, r->token, r->cert_user, &r->id)) {
        return ERR_PERMISSION_DENIED;
    }
    int rc = cfg_secret_open(
        r->s, &r->id, json_integer_value(json_object_get(meta, "version")),
        content, clen, tmp);
    if (rc == 0) {
        *out = (const char *)tmp->data;
        *out_len = tmp->len;
    }
    return rc;
}

/* The release as JSON for a reader: meta fields plus content (or null and
 * "redacted" for a secret the caller may not read). */
static json_t *release_json(struct cfg_req *r, json_t *meta,
                            const char *content, size_t clen, int64_t rev)
{
    struct buf tmp;
    const char *c;
    size_t cl;
    json_t *o = json_deep_copy(meta);
    if (o == NULL) {
        return NULL;
    }
    json_object_del(o, "length");
    json_object_del(o, "created_ms");
    json_object_set_new(o, "namespace", json_string(r->id.ns));
    json_object_set_new(o, "app", json_string(r->id.app));
    json_object_set_new(o, "name", json_string(r->id.name));
    if (rev > 0) {
        json_object_set_new(o, "revision", json_integer(rev));
    }
    buf_init(&tmp, CFG_CONTENT_MAX + 64);
    if (clear_of(r, meta, content, clen, &tmp, &c, &cl) == 0) {
        json_object_set_new(o, "content", json_stringn(c, cl));
    } else {
        json_object_set_new(o, "content", json_null());
        json_object_set_new(o, "redacted", json_true());
    }
    buf_free(&tmp);
    return o;
}

/* ------------------------------------------------------------ publish */

static void publish_read(struct cfg_req *r);

static void published(struct cfg_req *r, int err, const uint8_t *resp,
                      size_t len);

static void acks_done(void *ctx, size_t acked, size_t total, bool timed_out)
{
    struct cfg_req *r = ctx;
    json_t *a = r->answer;
    r->waiter = NULL;
    r->answer = NULL;
    json_object_set_new(a, "acks",
                        json_pack("{s:I,s:I,s:b}", "acked", (json_int_t)acked,
                                  "subscribers", (json_int_t)total, "timed_out",
                                  timed_out));
    answer_json(r, 200, a);
}

/* The Txn committed (or lost a race: evaluate again on what it read). */
static void published(struct cfg_req *r, int err, const uint8_t *resp,
                      size_t len)
{
    Etcdserverpb__TxnResponse *t = txn_unpack(r, err, resp, len);
    if (t == NULL) {
        return;
    }
    bool ok = t->succeeded;
    int64_t rev = txn_rev(t);
    etcdserverpb__txn_response__free_unpacked(t, NULL);
    if (!ok) {
        if (++r->retries <= CFG_RETRIES) {
            publish_read(r);
            return;
        }
        answer_error(r, 409, "conflict",
                     "the config changed concurrently; try again", NULL);
        return;
    }
    struct cfg_state *st = cfg__state(r->s);
    if (st != NULL) {
        if (r->route == R_ROLLBACK) {
            st->ctr.rollbacks++;
        } else if (r->route == R_PUT) {
            st->ctr.publishes++;
        } else {
            st->ctr.gray_changes++;
        }
    }
    json_t *a = json_pack("{s:I,s:I,s:s}", "version", (json_int_t)r->v,
                          "revision", (json_int_t)rev, "sha256", r->sha);
    if (r->route == R_DELETE || r->route == R_GRAY_DELETE) {
        json_decref(a);
        a = json_pack("{s:I}", "revision", (json_int_t)rev);
    }
    if (a != NULL && r->wait_frac > 0 && st != NULL) {
        struct cfg_acks now;
        r->answer = a;
        r->waiter = cfg__wait_acks(r->s, &r->id, r->v, r->wait_frac, r->wait_ms,
                                   acks_done, r, &now);
        if (r->waiter != NULL) {
            return; /* acks_done answers */
        }
        /* nothing to wait for (the counts as they are), or not awaited */
        r->answer = NULL;
        json_object_set_new(a, "acks",
                            json_pack("{s:I,s:I,s:b}", "acked",
                                      (json_int_t)now.acked, "subscribers",
                                      (json_int_t)now.total, "timed_out",
                                      now.timed_out));
    }
    answer_json(r, 200, a);
}

/* The head after this write, as JSON text; the release's meta in *meta.
 * head may be NULL (a new config). */
static int next_head(struct cfg_req *r, json_t *head, json_t **meta_out,
                     char **head_out, int64_t *cut)
{
    char now[64];
    json_t *h = head != NULL ? json_deep_copy(head) : json_object();
    json_t *hist, *meta, *entry;
    const char *msg = NULL;
    if (h == NULL) {
        return -ENOMEM;
    }
    rfc3339(now, sizeof(now));
    if (r->body != NULL) {
        msg = json_string_value(json_object_get(r->body, "message"));
    }
    meta =
        json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:I}", "version", (json_int_t)r->v,
                  "format", cfg_format_name(r->fmt), "sha256", r->sha, "author",
                  r->user, "message", msg != NULL ? msg : "", "created_at", now,
                  "created_ms", (json_int_t)cfg__now_ms());
    if (meta == NULL) {
        json_decref(h);
        return -ENOMEM;
    }
    if (r->secret) {
        json_object_set_new(meta, "secret", json_true());
    }
    json_object_set_new(meta, "source", json_string(r->source));
    if (r->from > 0) {
        json_object_set_new(meta, "from_version", json_integer(r->from));
    }
    json_object_set_new(h, "next", json_integer(r->v + 1));
    if (r->gray_write) {
        json_object_set_new(meta, "rule", json_incref(r->rule));
        json_object_set_new(
            meta, "base_version",
            json_integer(json_integer_value(json_object_get(h, "version"))));
        json_object_set_new(h, "gray",
                            json_pack("{s:I,s:s,s:O,s:s,s:s}", "version",
                                      (json_int_t)r->v, "sha256", r->sha,
                                      "rule", r->rule, "author", r->user,
                                      "created_at", now));
        *cut = 0;
    } else {
        json_object_del(h, "gray");
        json_object_set_new(h, "version", json_integer(r->v));
        json_object_set_new(h, "format", json_string(cfg_format_name(r->fmt)));
        json_object_set_new(h, "sha256", json_string(r->sha));
        json_object_set_new(h, "author", json_string(r->user));
        json_object_set_new(h, "message", json_string(msg != NULL ? msg : ""));
        json_object_set_new(h, "created_at", json_string(now));
        json_object_set_new(h, "secret", json_boolean(r->secret));
        hist = json_object_get(h, "history");
        if (!json_is_array(hist)) {
            hist = json_array();
            json_object_set_new(h, "history", hist);
        }
        entry = json_deep_copy(meta);
        json_array_append_new(hist, entry);
        size_t keep = history_max(r->s);
        while (json_array_size(hist) > keep) {
            json_array_remove(hist, 0);
        }
        *cut = json_integer_value(
            json_object_get(json_array_get(hist, 0), "version"));
    }
    *head_out = svc_json_dump(h);
    json_decref(h);
    if (*head_out == NULL) {
        json_decref(meta);
        return -ENOMEM;
    }
    *meta_out = meta;
    return 0;
}

/* The head as read (NULL: absent) with its mod_revision: write. */
static void publish_write(struct cfg_req *r, json_t *head, int64_t mod)
{
    struct tx *t;
    struct buf val, sealed;
    json_t *meta = NULL;
    char *hv = NULL;
    char key[CFG_KEY_MAX], end[CFG_KEY_MAX];
    size_t kn, en;
    int64_t cut = 0;
    int rc;
    if (head != NULL && json_object_get(head, "gray") != NULL &&
        (r->route == R_PUT || r->route == R_ROLLBACK)) {
        answer_error(r, 409, "conflict",
                     "a gray release is open: promote or abandon it first",
                     NULL);
        return;
    }
    if (r->expect_version >= 0 && json_integer_value(json_object_get(
                                      head, "version")) != r->expect_version) {
        answer_error(r, 409, "conflict",
                     "expect_version does not match the current version",
                     "expect_version");
        return;
    }
    if (head == NULL && r->route != R_PUT) {
        answer_error(r, 404, "not_found", "no such config", NULL);
        return;
    }
    if (r->route != R_GRAY_PROMOTE) {
        int64_t next = head != NULL
                           ? json_integer_value(json_object_get(head, "next"))
                           : 0;
        r->v = next > 0 ? next : 1;
    }
    if (head != NULL && r->route == R_GRAY_PUT) {
        r->secret = json_is_true(json_object_get(head, "secret"));
    }
    buf_init(&val, 2 * (size_t)CFG_CONTENT_MAX);
    buf_init(&sealed, (size_t)CFG_CONTENT_MAX + 64);
    rc = next_head(r, head, &meta, &hv, &cut);
    if (rc == 0 && r->secret) {
        rc = cfg_secret_seal(r->s, &r->id, r->v, (const char *)r->content.data,
                             r->content.len, &sealed);
    }
    if (rc == 0) {
        rc = r->secret ? cfg_release_encode(meta, (const char *)sealed.data,
                                            sealed.len, &val)
                       : cfg_release_encode(meta, (const char *)r->content.data,
                                            r->content.len, &val);
    }
    json_decref(meta);
    buf_free(&sealed);
    if (rc != 0) {
        free(hv);
        buf_free(&val);
        if (rc == ERR_PERMISSION_DENIED) {
            answer_error(r, 400, "bad_request",
                         "secret configs need --config-secret-key-file",
                         "secret");
        } else {
            answer_err(r, rc);
        }
        return;
    }
    if ((t = tx_new(r)) == NULL) {
        free(hv);
        buf_free(&val);
        return;
    }
    kn = cfg_key_head(&r->id, key, sizeof(key));
    tx_cmp_mod(t, key, kn, mod);
    tx_range(t, true, key, kn);
    tx_put(t, key, kn, hv, strlen(hv));
    if (r->gray_write) {
        kn = cfg_key_gray(&r->id, key, sizeof(key));
        tx_put(t, key, kn, val.data, val.len);
    } else {
        kn = cfg_key_release(&r->id, r->v, key, sizeof(key));
        tx_put(t, key, kn, val.data, val.len);
        if (cut > 1) { /* releases older than the oldest kept */
            kn = cfg_key_release(&r->id, 0, key, sizeof(key));
            en = cfg_key_release(&r->id, cut, end, sizeof(end));
            tx_del(t, key, kn, end, en);
        }
        if (r->route == R_GRAY_PROMOTE) {
            kn = cfg_key_gray(&r->id, key, sizeof(key));
            tx_del(t, key, kn, NULL, 0);
        }
    }
    tx_send(r, t, published);
    free(hv);
    buf_free(&val);
}

/* A head range result: the head JSON and its mod_revision (NULL, 0 when
 * absent). ERR_INVALID when the key holds something that is not a head. */
static int head_of(const Etcdserverpb__RangeResponse *g, json_t **head,
                   int64_t *mod)
{
    *head = NULL;
    *mod = 0;
    if (g == NULL || g->n_kvs == 0) {
        return 0;
    }
    *mod = g->kvs[0]->mod_revision;
    *head = json_loadb((const char *)g->kvs[0]->value.data,
                       g->kvs[0]->value.len, 0, NULL);
    if (*head == NULL || !json_is_object(*head)) {
        json_decref(*head);
        *head = NULL;
        return ERR_INVALID;
    }
    return 0;
}

static void publish_head_read(struct cfg_req *r, int err, const uint8_t *resp,
                              size_t len)
{
    Etcdserverpb__TxnResponse *t = txn_unpack(r, err, resp, len);
    json_t *head, *gmeta = NULL;
    int64_t mod;
    if (t == NULL) {
        return;
    }
    if (head_of(txn_range(t, 0), &head, &mod) != 0) {
        etcdserverpb__txn_response__free_unpacked(t, NULL);
        answer_error(r, 409, "conflict",
                     "the config's head key holds something else (written "
                     "by hand?)",
                     NULL);
        return;
    }
    if (r->route == R_GRAY_PROMOTE || r->route == R_ROLLBACK) {
        const Etcdserverpb__RangeResponse *g = txn_range(t, 1);
        const char *content;
        size_t clen;
        struct buf tmp;
        const char *c;
        size_t cl;
        if (g == NULL || g->n_kvs == 0 ||
            cfg_release_parse(g->kvs[0]->value.data, g->kvs[0]->value.len,
                              &gmeta, &content, &clen) != 0) {
            etcdserverpb__txn_response__free_unpacked(t, NULL);
            json_decref(head);
            answer_error(r, 404, "not_found",
                         r->route == R_ROLLBACK
                             ? "that version is not in the history"
                             : "no gray release is open",
                         r->route == R_ROLLBACK ? "to" : NULL);
            return;
        }
        buf_init(&tmp, CFG_CONTENT_MAX + 64);
        int rc = clear_of(r, gmeta, content, clen, &tmp, &c, &cl);
        buf_reset(&r->content);
        if (rc == 0) {
            rc = buf_append(&r->content, c, cl);
        }
        buf_free(&tmp);
        if (rc != 0) {
            etcdserverpb__txn_response__free_unpacked(t, NULL);
            json_decref(head);
            json_decref(gmeta);
            answer_err(r, rc);
            return;
        }
        cfg_format_parse(json_string_value(json_object_get(gmeta, "format")),
                         &r->fmt);
        r->secret = json_is_true(json_object_get(gmeta, "secret"));
        sha_hex(r->content.data, r->content.len, r->sha);
        if (r->route == R_GRAY_PROMOTE) {
            r->v = json_integer_value(json_object_get(gmeta, "version"));
            if (r->body == NULL ||
                json_object_get(r->body, "message") == NULL) {
                json_decref(r->body);
                r->body = json_pack("{s:O?}", "message",
                                    json_object_get(gmeta, "message"));
            }
        }
        json_decref(gmeta);
    }
    etcdserverpb__txn_response__free_unpacked(t, NULL);
    publish_write(r, head, mod);
    json_decref(head);
}

/* Read the head (and for rollback the release named, for promote the gray
 * release) as one Txn of reads. */
static void publish_read(struct cfg_req *r)
{
    struct tx *t;
    char key[CFG_KEY_MAX];
    size_t kn;
    if ((t = tx_new(r)) == NULL) {
        return;
    }
    kn = cfg_key_head(&r->id, key, sizeof(key));
    tx_range(t, false, key, kn);
    if (r->route == R_ROLLBACK) {
        kn = cfg_key_release(&r->id, r->from, key, sizeof(key));
        tx_range(t, false, key, kn);
    } else if (r->route == R_GRAY_PROMOTE) {
        kn = cfg_key_gray(&r->id, key, sizeof(key));
        tx_range(t, false, key, kn);
    }
    tx_send(r, t, publish_head_read);
}

/* A document from the body: content, format, validated. 0, or answered. */
/* The body's "content" (a string up to CFG_CONTENT_MAX) and "format"
 * (into r->fmt; text when absent), as publish and validate take them: the
 * content, or NULL when answered (400 or 413; r is freed then). */
static json_t *content_from_body(struct cfg_req *r)
{
    json_t *c = json_object_get(r->body, "content");
    json_t *f = json_object_get(r->body, "format");
    if (!json_is_string(c)) {
        answer_bad(r, "field \"content\" is required (a string)", "content");
        return NULL;
    }
    if (json_string_length(c) > CFG_CONTENT_MAX) {
        answer_error(r, 413, "too_large",
                     "field \"content\" is larger than 1048576 bytes",
                     "content");
        return NULL;
    }
    r->fmt = CFG_FORMAT_TEXT;
    if (f != NULL && !json_is_null(f) &&
        (!json_is_string(f) ||
         cfg_format_parse(json_string_value(f), &r->fmt) != 0)) {
        answer_bad(r,
                   "field \"format\" must be one of yaml, json, properties, "
                   "text",
                   "format");
        return NULL;
    }
    return c;
}

static int document_from_body(struct cfg_req *r)
{
    json_t *c = content_from_body(r); /* NULL: answered, r is gone */
    if (c == NULL) {
        return ERR_BAD_REQUEST;
    }
    json_t *m = json_object_get(r->body, "message");
    json_t *sec = json_object_get(r->body, "secret");
    struct cfg_error e;
    struct cfg_state *st = cfg__state(r->s);
    if (m != NULL && !json_is_null(m) &&
        (!json_is_string(m) || json_string_length(m) > CFG_COMMIT_MSG_MAX)) {
        answer_bad(r,
                   "field \"message\" must be a string of at most 1024 "
                   "bytes",
                   "message");
        return ERR_BAD_REQUEST;
    }
    if ((m == NULL || json_string_length(m) == 0) &&
        r->s->opt->config_require_message) {
        answer_bad(r,
                   "field \"message\" is required (--config-require-message)",
                   "message");
        return ERR_BAD_REQUEST;
    }
    if (sec != NULL && !json_is_null(sec) && !json_is_boolean(sec)) {
        answer_bad(r, "field \"secret\" must be true or false", "secret");
        return ERR_BAD_REQUEST;
    }
    r->secret = json_is_true(sec);
    if (r->secret && (st == NULL || !st->has_key)) {
        answer_bad(r,
                   "secret configs need the server's --config-secret-key-file",
                   "secret");
        return ERR_BAD_REQUEST;
    }
    if (cfg_validate(r->fmt, json_string_value(c), json_string_length(c), &e) !=
        0) {
        char line[400], tmp[400];
        if (st != NULL) {
            st->ctr.invalid++;
        }
        /* the cut may split a character */
        snprintf(line, sizeof(line), "invalid %s at line %d, column %d: %s",
                 cfg_format_name(r->fmt), e.line, e.column, e.message);
        const char *msg = str_utf8_safe(line, tmp, sizeof(tmp));
        answer_json(r, 400,
                    json_pack("{s:s,s:s,s:s,s:s,s:i,s:i}", "error", msg, "code",
                              "invalid_document", "message", msg, "field",
                              "content", "line", e.line, "column", e.column));
        return ERR_BAD_REQUEST;
    }
    if (buf_append(&r->content, json_string_value(c), json_string_length(c)) !=
        0) {
        answer_err(r, -ENOMEM);
        return -ENOMEM;
    }
    sha_hex(r->content.data, r->content.len, r->sha);
    return 0;
}

static int64_t int_field(struct cfg_req *r, const char *name, bool *bad)
{
    json_t *v = json_object_get(r->body, name);
    *bad = false;
    if (v == NULL || json_is_null(v)) {
        return -1;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        *bad = true;
        return -1;
    }
    return json_integer_value(v);
}

static int query_num(struct cfg_req *r, const char *name, double lo, double hi,
                     double *out);

static void publish(struct cfg_req *r)
{
    bool bad;
    char msg[128];
    r->source = "publish";
    if (document_from_body(r) != 0) {
        return;
    }
    r->expect_version = int_field(r, "expect_version", &bad);
    if (bad) {
        answer_bad(r, "field \"expect_version\" must be an integer >= 0",
                   "expect_version");
        return;
    }
    double frac = 0, tmo = 10;
    int q = query_num(r, "wait_acks", 0, 1, &frac);
    if (q < 0) {
        answer_bad(r, "parameter \"wait_acks\" must be a fraction 0-1",
                   "wait_acks");
        return;
    }
    q = query_num(r, "timeout", 0.001, CFG_WAIT_MAX_S, &tmo);
    if (q < 0) {
        snprintf(msg, sizeof(msg),
                 "parameter \"timeout\" must be seconds, 0.001-%d",
                 CFG_WAIT_MAX_S);
        answer_bad(r, msg, "timeout");
        return;
    }
    r->wait_frac = frac;
    r->wait_ms = (uint32_t)(tmo * 1000);
    publish_read(r);
}

static void rollback(struct cfg_req *r)
{
    bool bad;
    json_t *m = json_object_get(r->body, "message");
    r->source = "rollback";
    r->from = int_field(r, "to", &bad);
    if (bad || r->from < 1) {
        answer_bad(r, "field \"to\" is required (a version >= 1)", "to");
        return;
    }
    if (m != NULL && !json_is_null(m) &&
        (!json_is_string(m) || json_string_length(m) > CFG_COMMIT_MSG_MAX)) {
        answer_bad(r,
                   "field \"message\" must be a string of at most 1024 "
                   "bytes",
                   "message");
        return;
    }
    if ((m == NULL || json_string_length(m) == 0) &&
        r->s->opt->config_require_message) {
        answer_bad(r,
                   "field \"message\" is required (--config-require-message)",
                   "message");
        return;
    }
    publish_read(r);
}

static void gray_put(struct cfg_req *r)
{
    char msg[256];
    struct cfg_gray_rule rule;
    json_t *rule_j = json_object_get(r->body, "rule");
    r->source = "gray";
    r->gray_write = true;
    if (!json_is_object(rule_j)) {
        answer_bad(r,
                   "field \"rule\" is required: {\"labels\":{..}} or "
                   "{\"percentage\":P}",
                   "rule");
        return;
    }
    if (cfg_gray_rule_parse(rule_j, &rule, msg, sizeof(msg)) != 0) {
        answer_bad(r, msg, "rule");
        return;
    }
    if (json_object_get(r->body, "secret") != NULL) {
        answer_bad(r, "a gray release keeps its config's secret flag",
                   "secret");
        return;
    }
    if (document_from_body(r) != 0) {
        return;
    }
    r->rule = json_incref(rule_j);
    r->expect_version = -1;
    publish_read(r);
}

/* --------------------------------------------------- gray abandon, delete */

static void removed(struct cfg_req *r, int err, const uint8_t *resp, size_t len)
{
    Etcdserverpb__TxnResponse *t = txn_unpack(r, err, resp, len);
    if (t == NULL) {
        return;
    }
    bool ok = t->succeeded;
    int64_t rev = txn_rev(t);
    etcdserverpb__txn_response__free_unpacked(t, NULL);
    if (!ok) {
        answer_error(r, 404, "not_found",
                     r->route == R_DELETE ? "no such config"
                                          : "no gray release is open",
                     NULL);
        return;
    }
    struct cfg_state *st = cfg__state(r->s);
    if (st != NULL) {
        if (r->route == R_DELETE) {
            st->ctr.deletes++;
        } else {
            st->ctr.gray_changes++;
        }
    }
    answer_json(r, 200, json_pack("{s:I}", "revision", (json_int_t)rev));
}

static void config_delete(struct cfg_req *r)
{
    struct tx *t;
    char key[CFG_KEY_MAX];
    size_t kn;
    if ((t = tx_new(r)) == NULL) {
        return;
    }
    kn = cfg_key_head(&r->id, key, sizeof(key));
    /* the head exists: its create_revision is not 0 */
    Etcdserverpb__Compare *c = &t->cmp[t->txn.n_compare++];
    etcdserverpb__compare__init(c);
    c->key = tx_bytes(t, key, kn);
    c->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER;
    c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
    c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    c->create_revision = 0;
    tx_del(t, key, kn, NULL, 0);
    kn = cfg_key_releases(&r->id, key, sizeof(key));
    ProtobufCBinaryData e = tx_end(t, key, kn);
    tx_del(t, key, kn, (const char *)e.data, e.len);
    kn = cfg_key_gray(&r->id, key, sizeof(key));
    tx_del(t, key, kn, NULL, 0);
    tx_send(r, t, removed);
}

static void gray_abandon_read(struct cfg_req *r, int err, const uint8_t *resp,
                              size_t len)
{
    Etcdserverpb__TxnResponse *t = txn_unpack(r, err, resp, len);
    json_t *head;
    int64_t mod;
    char key[CFG_KEY_MAX];
    size_t kn;
    if (t == NULL) {
        return;
    }
    int rc = head_of(txn_range(t, 0), &head, &mod);
    etcdserverpb__txn_response__free_unpacked(t, NULL);
    if (rc != 0 || head == NULL || json_object_get(head, "gray") == NULL) {
        json_decref(head);
        answer_error(
            r, 404, "not_found",
            head == NULL ? "no such config" : "no gray release is open", NULL);
        return;
    }
    r->v = json_integer_value(
        json_object_get(json_object_get(head, "gray"), "version"));
    json_object_del(head, "gray");
    char *hv = svc_json_dump(head);
    json_decref(head);
    struct tx *x;
    if (hv == NULL) {
        answer_err(r, -ENOMEM);
        return;
    }
    if ((x = tx_new(r)) == NULL) {
        free(hv);
        return;
    }
    kn = cfg_key_head(&r->id, key, sizeof(key));
    tx_cmp_mod(x, key, kn, mod);
    tx_put(x, key, kn, hv, strlen(hv));
    kn = cfg_key_gray(&r->id, key, sizeof(key));
    tx_del(x, key, kn, NULL, 0);
    tx_send(r, x, removed);
    free(hv);
}

/* --------------------------------------------------------------- reads */

static void client_from_query(struct cfg_req *r, struct cfg_client *c, int *bad)
{
    char labels[1024];
    char msg[128];
    memset(c, 0, sizeof(*c));
    *bad = 0;
    int q = svc_query_get(r->query, "client_id", c->client_id,
                          sizeof(c->client_id));
    if (q < 0 || (q == 0 && !cfg_name_ok(c->client_id, strlen(c->client_id)))) {
        *bad = 1;
        return;
    }
    q = svc_query_get(r->query, "labels", labels, sizeof(labels));
    if (q < 0 || (q == 0 && cfg_labels_parse(labels, strlen(labels), &c->labels,
                                             msg, sizeof(msg)) != 0)) {
        *bad = 2;
    }
}

static void config_read(struct cfg_req *r, int err, const uint8_t *resp,
                        size_t len)
{
    Etcdserverpb__TxnResponse *t = txn_unpack(r, err, resp, len);
    json_t *head = NULL, *meta = NULL;
    int64_t mod;
    const char *content;
    size_t clen;
    bool gray = false;
    struct cfg_client cl;
    int bad;
    if (t == NULL) {
        return;
    }
    client_from_query(r, &cl, &bad);
    if (head_of(txn_range(t, 0), &head, &mod) != 0 || head == NULL) {
        etcdserverpb__txn_response__free_unpacked(t, NULL);
        json_decref(head);
        answer_error(r, 404, "not_found", "no such config", NULL);
        return;
    }
    const Etcdserverpb__RangeResponse *g = txn_range(t, 1);
    const Etcdserverpb__RangeResponse *m = txn_range(t, 2);
    const Mvccpb__KeyValue *kv = NULL;
    if (g != NULL && g->n_kvs > 0 &&
        cfg_release_parse(g->kvs[0]->value.data, g->kvs[0]->value.len, &meta,
                          &content, &clen) == 0) {
        struct cfg_gray_rule rule;
        char msg[128], cid[3 * CFG_NAME_MAX + 4];
        snprintf(cid, sizeof(cid), "%s/%s/%s", r->id.ns, r->id.app, r->id.name);
        if (cfg_gray_rule_parse(json_object_get(meta, "rule"), &rule, msg,
                                sizeof(msg)) == 0 &&
            cfg_gray_match(&rule, cid,
                           cl.client_id[0] != '\0' ? cl.client_id : NULL,
                           &cl.labels)) {
            gray = true;
            kv = g->kvs[0];
        } else {
            json_decref(meta);
            meta = NULL;
        }
    }
    if (!gray) {
        if (m == NULL || m->n_kvs == 0 ||
            cfg_release_parse(m->kvs[0]->value.data, m->kvs[0]->value.len,
                              &meta, &content, &clen) != 0) {
            etcdserverpb__txn_response__free_unpacked(t, NULL);
            json_decref(head);
            answer_error(r, 404, "not_found", "no such config", NULL);
            return;
        }
        kv = m->kvs[0];
    }
    int64_t rev = kv->mod_revision;
    struct cfg_state *st = cfg__state(r->s);
    if (st != NULL) {
        st->ctr.reads++;
    }
    char raw[8];
    if (svc_query_get(r->query, "raw", raw, sizeof(raw)) == 0 &&
        strcmp(raw, "0") != 0) {
        struct buf tmp;
        const char *c;
        size_t n;
        char etag[80];
        const char *sha = json_string_value(json_object_get(meta, "sha256"));
        snprintf(etag, sizeof(etag), "\"%s\"", sha != NULL ? sha : "");
        buf_init(&tmp, CFG_CONTENT_MAX + 64);
        if (clear_of(r, meta, content, clen, &tmp, &c, &n) != 0) {
            buf_free(&tmp);
            answer_error(r, 403, "permission_denied",
                         "this secret config needs read permission on "
                         "/config-secret/<ns>/<app>/<name>",
                         NULL);
        } else if (r->inm[0] != '\0' && strcmp(r->inm, etag) == 0) {
            buf_free(&tmp);
            answer_raw(r, 304, ctype_of(NULL), etag, "", 0);
        } else {
            answer_raw(
                r, 200,
                ctype_of(json_string_value(json_object_get(meta, "format"))),
                etag, c, n);
            buf_free(&tmp);
        }
        json_decref(meta);
        json_decref(head);
        etcdserverpb__txn_response__free_unpacked(t, NULL);
        return;
    }
    json_t *o = release_json(r, meta, content, clen, rev);
    if (o != NULL) {
        json_object_set_new(o, "gray", json_boolean(gray));
    }
    json_decref(meta);
    json_decref(head);
    etcdserverpb__txn_response__free_unpacked(t, NULL);
    answer_json(r, 200, o);
}

static void config_get(struct cfg_req *r)
{
    struct tx *t;
    char key[CFG_KEY_MAX];
    size_t kn;
    struct cfg_client cl;
    int bad;
    client_from_query(r, &cl, &bad);
    if (bad != 0) {
        answer_bad(r,
                   bad == 1 ? "parameter \"client_id\" must be a name"
                            : "parameter \"labels\" must be k=v,k2=v2",
                   bad == 1 ? "client_id" : "labels");
        return;
    }
    if ((t = tx_new(r)) == NULL) {
        return;
    }
    kn = cfg_key_head(&r->id, key, sizeof(key));
    tx_range(t, false, key, kn);
    kn = cfg_key_gray(&r->id, key, sizeof(key));
    tx_range(t, false, key, kn);
    kn = cfg_key_releases(&r->id, key, sizeof(key));
    Etcdserverpb__RangeRequest *q = tx_range(t, false, key, kn);
    q->range_end = tx_end(t, key, kn);
    q->sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    q->sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY;
    q->limit = 1;
    tx_send(r, t, config_read);
}

static void versions_read(struct cfg_req *r, int err, const uint8_t *resp,
                          size_t len)
{
    Etcdserverpb__TxnResponse *t = txn_unpack(r, err, resp, len);
    json_t *head;
    int64_t mod;
    if (t == NULL) {
        return;
    }
    int rc = head_of(txn_range(t, 0), &head, &mod);
    etcdserverpb__txn_response__free_unpacked(t, NULL);
    if (rc != 0 || head == NULL) {
        json_decref(head);
        answer_error(r, 404, "not_found", "no such config", NULL);
        return;
    }
    json_t *hist = json_object_get(head, "history");
    json_t *list = json_array();
    for (size_t i = json_array_size(hist); list != NULL && i > 0; i--) {
        json_t *e = json_deep_copy(json_array_get(hist, i - 1));
        json_object_del(e, "length");
        json_object_del(e, "created_ms");
        json_array_append_new(list, e);
    }
    answer_json(
        r, 200,
        json_pack("{s:s,s:s,s:s,s:O?,s:o?,s:O?,s:I}", "namespace", r->id.ns,
                  "app", r->id.app, "name", r->id.name, "version",
                  json_object_get(head, "version"), "versions", list, "gray",
                  json_object_get(head, "gray"), "revision", (json_int_t)mod));
    json_decref(head);
}

static void one_head(struct cfg_req *r, step_fn next)
{
    struct tx *t;
    char key[CFG_KEY_MAX];
    size_t kn;
    if ((t = tx_new(r)) == NULL) {
        return;
    }
    kn = cfg_key_head(&r->id, key, sizeof(key));
    tx_range(t, false, key, kn);
    tx_send(r, t, next);
}

/* Version v (R_VERSION) or the gray release (R_GRAY_GET). */
static void release_read(struct cfg_req *r, int err, const uint8_t *resp,
                         size_t len)
{
    Etcdserverpb__TxnResponse *t = txn_unpack(r, err, resp, len);
    json_t *meta;
    const char *content;
    size_t clen;
    if (t == NULL) {
        return;
    }
    const Etcdserverpb__RangeResponse *g = txn_range(t, 0);
    if (g == NULL || g->n_kvs == 0 ||
        cfg_release_parse(g->kvs[0]->value.data, g->kvs[0]->value.len, &meta,
                          &content, &clen) != 0) {
        etcdserverpb__txn_response__free_unpacked(t, NULL);
        answer_error(r, 404, "not_found",
                     r->route == R_GRAY_GET ? "no gray release is open"
                                            : "that version is not in the "
                                              "history",
                     NULL);
        return;
    }
    json_t *o = release_json(r, meta, content, clen, g->kvs[0]->mod_revision);
    json_decref(meta);
    etcdserverpb__txn_response__free_unpacked(t, NULL);
    answer_json(r, 200, o);
}

static void release_get(struct cfg_req *r)
{
    struct tx *t;
    char key[CFG_KEY_MAX];
    size_t kn;
    if ((t = tx_new(r)) == NULL) {
        return;
    }
    kn = r->route == R_GRAY_GET
             ? cfg_key_gray(&r->id, key, sizeof(key))
             : cfg_key_release(&r->id, r->v, key, sizeof(key));
    tx_range(t, false, key, kn);
    tx_send(r, t, release_read);
}

static void diff_work(uv_work_t *w)
{
    struct diff_job *j = w->data;
    j->rc = cfg_diff(j->a.len > 0 ? (const char *)j->a.data : "", j->a.len,
                     j->b.len > 0 ? (const char *)j->b.data : "", j->b.len,
                     j->lab_a, j->lab_b, &j->out);
}

static void diff_job_free(struct diff_job *j)
{
    buf_free(&j->a);
    buf_free(&j->b);
    buf_free(&j->out);
    mem_free(j);
}

static void diff_after(uv_work_t *w, int status)
{
    struct diff_job *j = w->data;
    struct cfg_req *r = j->r;
    ASSERT(diffs_running > 0);
    diffs_running--;
    if (r != NULL) {
        r->diff = NULL;
        if (status != 0) {
            answer_err(r, status == UV_ECANCELED ? ERR_CANCELED : -ENOMEM);
        } else if (j->rc != 0) {
            answer_err(r, j->rc);
        } else {
            answer_raw(r, 200, "text/x-diff; charset=utf-8", NULL,
                       (const char *)j->out.data, j->out.len);
        }
    }
    diff_job_free(j);
}

/* Hand the two texts (copied) to the thread pool; 0 or an error for the
 * caller to answer (the request is untouched then). */
static int diff_start(struct cfg_req *r, const char *xa, size_t na,
                      const char *xb, size_t nb)
{
    struct diff_job *j;
    int rc;
    if (diffs_running >= DIFFS_MAX) {
        return ERR_BUSY;
    }
    j = mem_calloc(1, sizeof(*j));
    if (j == NULL) {
        return -ENOMEM;
    }
    buf_init(&j->a, CFG_CONTENT_MAX + 64);
    buf_init(&j->b, CFG_CONTENT_MAX + 64);
    buf_init(&j->out, 64u << 20);
    rc = buf_append(&j->a, xa, na);
    if (rc == 0) {
        rc = buf_append(&j->b, xb, nb);
    }
    if (rc == 0) {
        snprintf(j->lab_a, sizeof(j->lab_a), "%s@%" PRId64, r->id.name, r->v);
        snprintf(j->lab_b, sizeof(j->lab_b), "%s@%" PRId64, r->id.name, r->v2);
        j->w.data = j;
        j->r = r;
        rc = uv_queue_work(r->s->loop, &j->w, diff_work, diff_after);
        rc = rc != 0 ? -ENOMEM : 0;
    }
    if (rc != 0) {
        diff_job_free(j);
        return rc;
    }
    diffs_running++;
    r->diff = j;
    return 0;
}

static void diff_read(struct cfg_req *r, int err, const uint8_t *resp,
                      size_t len)
{
    Etcdserverpb__TxnResponse *t = txn_unpack(r, err, resp, len);
    json_t *ma = NULL, *mb = NULL;
    const char *ca, *cb, *xa, *xb;
    size_t la, lb, na, nb;
    struct buf ta, tb;
    if (t == NULL) {
        return;
    }
    const Etcdserverpb__RangeResponse *ga = txn_range(t, 0);
    const Etcdserverpb__RangeResponse *gb = txn_range(t, 1);
    if (ga == NULL || ga->n_kvs == 0 || gb == NULL || gb->n_kvs == 0 ||
        cfg_release_parse(ga->kvs[0]->value.data, ga->kvs[0]->value.len, &ma,
                          &ca, &la) != 0 ||
        cfg_release_parse(gb->kvs[0]->value.data, gb->kvs[0]->value.len, &mb,
                          &cb, &lb) != 0) {
        json_decref(ma);
        etcdserverpb__txn_response__free_unpacked(t, NULL);
        answer_error(r, 404, "not_found",
                     "a version named is not in the history", NULL);
        return;
    }
    buf_init(&ta, CFG_CONTENT_MAX + 64);
    buf_init(&tb, CFG_CONTENT_MAX + 64);
    int rc = clear_of(r, ma, ca, la, &ta, &xa, &na);
    if (rc == 0) {
        rc = clear_of(r, mb, cb, lb, &tb, &xb, &nb);
    }
    if (rc == 0) {
        rc = diff_start(r, xa, na, xb, nb);
    }
    json_decref(ma);
    json_decref(mb);
    etcdserverpb__txn_response__free_unpacked(t, NULL);
    buf_free(&ta);
    buf_free(&tb);
    if (rc == ERR_PERMISSION_DENIED) {
        answer_error(r, 403, "permission_denied",
                     "this secret config needs read permission on "
                     "/config-secret/<ns>/<app>/<name>",
                     NULL);
    } else if (rc == ERR_BUSY) {
        answer_error(r, 503, "unavailable",
                     "too many diffs are running on this member; retry", NULL);
    } else if (rc != 0) {
        answer_err(r, rc);
    }
}

static void diff_get(struct cfg_req *r)
{
    struct tx *t;
    char key[CFG_KEY_MAX];
    size_t kn;
    double a, b;
    if (query_num(r, "from", 1, 1e10, &a) != 0 ||
        query_num(r, "to", 1, 1e10, &b) != 0 || a != floor(a) ||
        b != floor(b)) {
        answer_bad(r, "parameters \"from\" and \"to\" are required (versions)",
                   "from");
        return;
    }
    r->v = (int64_t)a;
    r->v2 = (int64_t)b;
    if ((t = tx_new(r)) == NULL) {
        return;
    }
    kn = cfg_key_release(&r->id, r->v, key, sizeof(key));
    tx_range(t, false, key, kn);
    kn = cfg_key_release(&r->id, r->v2, key, sizeof(key));
    tx_range(t, false, key, kn);
    tx_send(r, t, diff_read);
}

/* Listing: the heads of an app (configs) or the apps of a namespace. */
static void list_read(struct cfg_req *r, int err, const uint8_t *resp,
                      size_t len)
{
    Etcdserverpb__RangeResponse *g;
    json_t *list = json_array();
    char last[CFG_NAME_MAX + 1] = "";
    if (err != 0) {
        json_decref(list);
        answer_err(r, err);
        return;
    }
    g = etcdserverpb__range_response__unpack(NULL, len, resp);
    if (g == NULL || list == NULL) {
        json_decref(list);
        answer_err(r, g == NULL ? ERR_UNMARSHAL : -ENOMEM);
        return;
    }
    for (size_t i = 0; i < g->n_kvs; i++) {
        struct cfg_id id;
        const Mvccpb__KeyValue *kv = g->kvs[i];
        if (cfg_key_parse((const char *)kv->key.data, kv->key.len, &id, NULL) !=
            CFG_K_HEAD) {
            continue;
        }
        if (r->route == R_LIST_APPS) {
            if (strcmp(last, id.app) != 0) {
                snprintf(last, sizeof(last), "%s", id.app);
                json_array_append_new(list, json_string(id.app));
            }
            continue;
        }
        json_t *h =
            json_loadb((const char *)kv->value.data, kv->value.len, 0, NULL);
        if (h == NULL) {
            continue;
        }
        json_t *gr = json_object_get(h, "gray");
        json_array_append_new(
            list,
            json_pack("{s:s,s:O?,s:O?,s:O?,s:O?,s:O?,s:b,s:b,s:I}", "name",
                      id.name, "version", json_object_get(h, "version"),
                      "format", json_object_get(h, "format"), "author",
                      json_object_get(h, "author"), "message",
                      json_object_get(h, "message"), "updated_at",
                      json_object_get(h, "created_at"), "secret",
                      json_is_true(json_object_get(h, "secret")), "gray",
                      gr != NULL, "revision", (json_int_t)kv->mod_revision));
        json_decref(h);
    }
    int64_t rev = g->header != NULL ? g->header->revision : 0;
    bool more = g->more;
    etcdserverpb__range_response__free_unpacked(g, NULL);
    answer_json(r, 200,
                json_pack("{s:s,s:o,s:b,s:I}", "namespace", r->id.ns,
                          r->route == R_LIST_APPS ? "apps" : "configs", list,
                          "more", more, "revision", (json_int_t)rev));
}

static void list_get(struct cfg_req *r)
{
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    char key[CFG_KEY_MAX], end[CFG_KEY_MAX];
    int n;
    if (r->route == R_LIST_APPS) {
        n = snprintf(key, sizeof(key), CFG_PREFIX "%s/", r->id.ns);
    } else {
        n = snprintf(key, sizeof(key), CFG_PREFIX "%s/%s/", r->id.ns,
                     r->id.app);
    }
    memcpy(end, key, (size_t)n);
    if (r->route == R_LIST_APPS) {
        end[n - 1]++;
    } else {
        end[n] = '~'; /* the heads only, not the ~r and ~g trees */
    }
    q.key.data = (uint8_t *)key;
    q.key.len = (size_t)n;
    q.range_end.data = (uint8_t *)end;
    q.range_end.len = r->route == R_LIST_APPS ? (size_t)n : (size_t)n + 1;
    /* the apps listing sees release keys too: keys only */
    q.keys_only = r->route == R_LIST_APPS;
    q.limit = LIST_MAX;
    call(r, "/etcdserverpb.KV/Range", &q.base, list_read);
}

/* -------------------------------------------------------------- routing */

static bool is_audit_path(const char *path)
{
    return strcmp(path, "/api/v1/audit") == 0 ||
           strncmp(path, "/api/v1/audit/", 14) == 0;
}

static bool is_config_path(const char *path)
{
    return strcmp(path, API) == 0 ||
           strncmp(path, API "/", strlen(API) + 1) == 0;
}

bool cfgapi_path_is_ours(const char *path)
{
    return is_config_path(path) || is_audit_path(path);
}

uint64_t cfgapi_body_max(const char *path)
{
    return is_config_path(path) ? CFG_BODY_MAX : 0;
}

static bool meth_is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

/* Split p ("a/b/c...") into at most 6 parts. */
static int split(const char *p, char out[6][CFG_NAME_MAX + 1], int *n)
{
    *n = 0;
    while (*p != '\0') {
        const char *e = strchr(p, '/');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (*n == 6 || len == 0 || len > CFG_NAME_MAX) {
            return -1;
        }
        memcpy(out[*n], p, len);
        out[*n][len] = '\0';
        (*n)++;
        if (e == NULL) {
            break;
        }
        p = e + 1;
        if (*p == '\0') {
            return -1; /* a trailing slash */
        }
    }
    return 0;
}

/* 0 routed, 1 answered, -1 no such path, -2 method not allowed. */
static int route(struct cfg_req *r, const char *method, const char *rest)
{
    char parts[6][CFG_NAME_MAX + 1];
    int n;
    if (*rest == '/') {
        rest++;
    }
    if (split(rest, parts, &n) != 0 || n == 0) {
        return -1;
    }
    static const char *const what[] = {"namespace", "app", "name"};
    for (int i = 0; i < n && i < 3; i++) {
        if (!cfg_name_ok(parts[i], strlen(parts[i]))) {
            char msg[96];
            snprintf(msg, sizeof(msg),
                     "the %s in the path must be 1-128 bytes of "
                     "[A-Za-z0-9._-]",
                     what[i]);
            answer_bad(r, msg, what[i]);
            return 1;
        }
    }
    snprintf(r->id.ns, sizeof(r->id.ns), "%s", parts[0]);
    if (n == 1) {
        r->route = R_LIST_APPS;
        return meth_is(method, "GET") ? 0 : -2;
    }
    snprintf(r->id.app, sizeof(r->id.app), "%s", parts[1]);
    if (n == 2) {
        r->route = R_LIST_CONFIGS;
        return meth_is(method, "GET") ? 0 : -2;
    }
    snprintf(r->id.name, sizeof(r->id.name), "%s", parts[2]);
    if (n == 3) {
        if (meth_is(method, "PUT")) {
            r->route = R_PUT;
        } else if (meth_is(method, "GET")) {
            r->route = R_GET;
        } else if (meth_is(method, "DELETE")) {
            r->route = R_DELETE;
        } else {
            return -2;
        }
        return 0;
    }
    const char *sub = parts[3];
    if (n == 4 && strcmp(sub, "versions") == 0) {
        r->route = R_VERSIONS;
        return meth_is(method, "GET") ? 0 : -2;
    }
    if (n == 5 && strcmp(sub, "versions") == 0) {
        char *end = NULL;
        long long v = strtoll(parts[4], &end, 10);
        if (*end != '\0' || v < 1 || v > 9999999999LL) {
            answer_bad(r, "the version in the path must be an integer >= 1",
                       "version");
            return 1;
        }
        r->v = v;
        r->route = R_VERSION;
        return meth_is(method, "GET") ? 0 : -2;
    }
    if (n == 4 && strcmp(sub, "diff") == 0) {
        r->route = R_DIFF;
        return meth_is(method, "GET") ? 0 : -2;
    }
    if (n == 4 && strcmp(sub, "rollback") == 0) {
        r->route = R_ROLLBACK;
        return meth_is(method, "POST") ? 0 : -2;
    }
    if (n == 4 && strcmp(sub, "subscribers") == 0) {
        r->route = R_SUBSCRIBERS;
        return meth_is(method, "GET") ? 0 : -2;
    }
    if (n == 4 && strcmp(sub, "validate") == 0) {
        r->route = R_VALIDATE;
        return meth_is(method, "POST") ? 0 : -2;
    }
    if (n == 4 && strcmp(sub, "gray") == 0) {
        if (meth_is(method, "PUT")) {
            r->route = R_GRAY_PUT;
        } else if (meth_is(method, "GET")) {
            r->route = R_GRAY_GET;
        } else if (meth_is(method, "DELETE")) {
            r->route = R_GRAY_DELETE;
        } else {
            return -2;
        }
        return 0;
    }
    if (n == 5 && strcmp(sub, "gray") == 0 &&
        strcmp(parts[4], "promote") == 0) {
        r->route = R_GRAY_PROMOTE;
        return meth_is(method, "POST") ? 0 : -2;
    }
    return -1;
}

static bool wants_body(enum route rt)
{
    return rt == R_PUT || rt == R_ROLLBACK || rt == R_GRAY_PUT ||
           rt == R_GRAY_PROMOTE || rt == R_VALIDATE;
}

static int body_parse(struct cfg_req *r, const char *body, size_t len)
{
    json_error_t je;
    char msg[300];
    size_t i = 0;
    while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' ||
                       body[i] == '\t')) {
        i++;
    }
    if (i == len) {
        r->body = json_object();
        return r->body != NULL ? 0 : -ENOMEM;
    }
    r->body = svc_json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (r->body == NULL || !json_is_object(r->body)) {
        if (r->body != NULL) {
            snprintf(msg, sizeof(msg), "the body must be a JSON object");
        } else {
            snprintf(msg, sizeof(msg),
                     "malformed JSON at line %d, column %d: %s", je.line,
                     je.column, je.text);
        }
        answer_bad(r, msg, NULL);
        return ERR_BAD_REQUEST;
    }
    return 0;
}

/* A number parameter: 0 present and in [lo, hi], 1 absent, -1 bad. */
static int query_num(struct cfg_req *r, const char *name, double lo, double hi,
                     double *out)
{
    char v[40];
    char *end = NULL;
    int q = svc_query_get(r->query, name, v, sizeof(v));
    if (q != 0) {
        return q > 0 ? 1 : -1;
    }
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(d >= lo && d <= hi)) {
        return -1;
    }
    *out = d;
    return 0;
}

/* POST .../<name>/validate {"content","format"}: the publish's document
 * checks without the publish, for an editor; the verdict is a 200 either
 * way ({"valid":true,..} or {"valid":false,"error",..,"line","column"});
 * a request that is wrong itself (no content, an unknown format, too
 * large) is answered as a publish would be. Whoever may read the config
 * may ask: nothing is read or written. */
static void validate(struct cfg_req *r)
{
    char k[CFG_KEY_MAX];
    size_t kn = cfg_key_head(&r->id, k, sizeof(k));
    json_t *c;
    struct cfg_error e;
    char sha[2 * SHA256_DIGEST_LENGTH + 1];
    int rc =
        api_auth_range_check_as(r->s, r->token[0] ? r->token : NULL,
                                r->cert_user, (const uint8_t *)k, kn, NULL, 0);
    if (rc != 0) {
        answer_err(r, rc);
        return;
    }
    if ((c = content_from_body(r)) == NULL) {
        return;
    }
    if (cfg_validate(r->fmt, json_string_value(c), json_string_length(c), &e) !=
        0) {
        char msg[400];
        snprintf(msg, sizeof(msg), "invalid %s at line %d, column %d: %s",
                 cfg_format_name(r->fmt), e.line, e.column, e.message);
        answer_json(r, 200,
                    json_pack("{s:b,s:s,s:s,s:s,s:i,s:i}", "valid", 0, "format",
                              cfg_format_name(r->fmt), "error", msg, "message",
                              msg, "line", e.line, "column", e.column));
        return;
    }
    sha_hex((const uint8_t *)json_string_value(c), json_string_length(c), sha);
    answer_json(r, 200,
                json_pack("{s:b,s:s,s:s,s:I}", "valid", 1, "format",
                          cfg_format_name(r->fmt), "sha256", sha, "bytes",
                          (json_int_t)json_string_length(c)));
}

static void dispatch(struct cfg_req *r)
{
    switch (r->route) {
    case R_PUT:
        publish(r);
        break;
    case R_GET:
        config_get(r);
        break;
    case R_DELETE:
        config_delete(r);
        break;
    case R_VERSIONS:
        one_head(r, versions_read);
        break;
    case R_VERSION:
    case R_GRAY_GET:
        release_get(r);
        break;
    case R_DIFF:
        diff_get(r);
        break;
    case R_ROLLBACK:
        rollback(r);
        break;
    case R_GRAY_PUT:
        gray_put(r);
        break;
    case R_GRAY_DELETE:
        one_head(r, gray_abandon_read);
        break;
    case R_GRAY_PROMOTE:
        r->source = "gray_promote";
        r->expect_version = -1;
        publish_read(r);
        break;
    case R_SUBSCRIBERS: {
        /* the caller must be able to read the config */
        char k[CFG_KEY_MAX];
        size_t kn = cfg_key_head(&r->id, k, sizeof(k));
        int rc = api_auth_range_check_as(r->s, r->token[0] ? r->token : NULL,
                                         r->cert_user, (const uint8_t *)k, kn,
                                         NULL, 0);
        if (rc != 0) {
            answer_err(r, rc);
            break;
        }
        /* "member": the streams listed are the ones this member serves */
        answer_json(r, 200,
                    json_pack("{s:s,s:s,s:s,s:s,s:o?}", "namespace", r->id.ns,
                              "app", r->id.app, "name", r->id.name, "member",
                              r->s->opt != NULL && r->s->opt->name != NULL
                                  ? r->s->opt->name
                                  : "",
                              "subscribers", cfg__subs_json(r->s, &r->id)));
        break;
    }
    case R_VALIDATE:
        validate(r);
        break;
    case R_LIST_APPS:
    case R_LIST_CONFIGS:
        list_get(r);
        break;
    }
}

void cfgapi_handle(struct server *s, const char *method, const char *path,
                   const char *query, const char *body, size_t len,
                   const char *token, const char *cert_user, const char *peer,
                   const char *if_none_match, struct cfg_req **slot,
                   cfgapi_done_fn done, void *ctx)
{
    struct cfg_req *r = mem_calloc(1, sizeof(*r));
    int rc;
    ASSERT(done != NULL && slot != NULL);
    *slot = NULL;
    if (r == NULL) {
        static const char oom[] = "{\"error\":\"out of memory\","
                                  "\"code\":\"internal\","
                                  "\"message\":\"out of memory\"}";
        done(ctx, 503, "application/json", NULL, oom, sizeof(oom) - 1);
        return;
    }
    r->s = s;
    r->done = done;
    r->ctx = ctx;
    r->expect_version = -1;
    buf_init(&r->content, CFG_CONTENT_MAX);
    if (token != NULL) {
        snprintf(r->token, sizeof(r->token), "%s", token);
    }
    if (cert_user != NULL &&
        strlen(cert_user) < sizeof(r->cert_user)) { /* else no name */
        snprintf(r->cert_user, sizeof(r->cert_user), "%s", cert_user);
    }
    snprintf(r->peer, sizeof(r->peer), "%s", peer != NULL ? peer : "");
    snprintf(r->inm, sizeof(r->inm), "%s",
             if_none_match != NULL ? if_none_match : "");
    if (query != NULL && strlen(query) >= sizeof(r->query)) {
        answer_error(r, 414, "too_large", "the query string is too long", NULL);
        return;
    }
    snprintf(r->query, sizeof(r->query), "%s", query != NULL ? query : "");
    if (is_audit_path(path)) {
        int status;
        json_t *o =
            cfg__audit(s, method, path, r->query, r->token[0] ? r->token : NULL,
                       r->cert_user, &status);
        answer_json(r, status, o);
        return;
    }
    rc = is_config_path(path) ? route(r, method, path + strlen(API)) : -1;
    if (rc == 1) {
        return;
    }
    if (rc == -1) {
        answer_error(r, 404, "not_found", "no such API path", NULL);
        return;
    }
    if (rc == -2) {
        answer_error(r, 405, "method_not_allowed",
                     "method not allowed on this path", NULL);
        return;
    }
    if (wants_body(r->route) && body_parse(r, body, len) != 0) {
        return;
    }
    /* the author: the token's user (auth on), else the client
     * certificate's CN (--client-cert-auth, etcd's rule), else anonymous */
    rc = api_auth_user_as(s, r->token[0] ? r->token : NULL, r->cert_user,
                          r->user, sizeof(r->user));
    if (rc != 0 && wants_body(r->route)) {
        answer_err(r, rc);
        return;
    }
    if (r->user[0] == '\0') {
        snprintf(r->user, sizeof(r->user), "anonymous");
    }
    r->slot = slot;
    *slot = r;
    dispatch(r);
}

void cfgapi_cancel(struct cfg_req *r)
{
    if (r == NULL) {
        return;
    }
    ASSERT(r->slot != NULL && *r->slot == r);
    if (r->op != NULL) {
        api_cancel(r->op);
        r->op = NULL;
    }
    req_free(r);
}

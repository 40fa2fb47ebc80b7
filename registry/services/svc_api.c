/*
 * svc_api.c - the registry's REST calls (services.h), each reduced to etcd
 * requests made through api_call_auth, as the caller's token: the core's
 * guarantees, quotas and key-range permissions apply unchanged, so a role
 * scoped to /registry/<ns>/ is scoped to that namespace here too.
 *
 * Happy paths, one or two requests each:
 *   POST   /api/v1/sessions               LeaseGrant
 *   POST   /api/v1/sessions/<id>/keepalive   a lease renewal (api_lease_renew)
 *   GET    /api/v1/sessions/<id>          LeaseTimeToLive
 *   DELETE /api/v1/sessions/<id>          LeaseRevoke (its instances go too)
 *   PUT    /api/v1/registry/<ns>/<svc>/<id>  Txn: [mod_revision ==
 *          expect_revision ?] put(doc, lease) (a Put without the compare),
 *          granting the lease first in the same request when no session
 *   PATCH  same                            Range, then Txn: mod_revision
 *          unchanged ? put(doc, ignore_lease) (read again on a lost race)
 *   GET    same                            Range
 *   DELETE same                            DeleteRange
 *   GET    /api/v1/registry/<ns>/<svc>     Txn of two reads (instances and
 *          settings, one revision)
 *   PUT    /api/v1/registry/<ns>/<svc>     put of the settings key
 *   GET    /api/v1/registry/<ns>           Range of the namespace
 *   GET    /api/v1/registry                Range, keys only
 *   GET    /api/v1/sd/prometheus           Range of a namespace or service
 * Every write is one Raft request. A registration without a session grants
 * its lease inside the same request (api_call_leased; etcd's API cannot
 * grant a lease inside a txn, the core can): if the write is refused the
 * lease is revoked with it, so no refused registration leaves a lease.
 *
 * Fencing. A put names its lease, so a write under an expired session fails
 * atomically (the lease is gone: 410 session_expired) and cannot bring back
 * an instance that expiry removed; a PATCH is a compare on mod_revision, so
 * it never re-creates a deregistered instance; a PUT with expect_revision
 * (0: must not exist) is a compare-and-write the SDK uses to fence a retry.
 *
 * Failure modes. Bad input answers 400 naming the field before anything is
 * sent to the core. An inner error maps through grpc_api_v1_status. The
 * caller going away (svc_cancel) cancels the inner call; a write already
 * proposed still commits, as with any etcd client that hangs up.
 */
#include "registry/services/services.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "base/str.h"
#include "consensus/kv/kv.h"
#include "proto/rpc.pb-c.h"
#include "registry/grpc/grpc.h"
#include "registry/server/api_auth.h"
#include "registry/server/server.h"

#define TOKEN_MAX      1024
#define QUERY_MAX      2048
#define PATCH_RETRIES  5
#define KEY_MAX        512
#define NAMESPACES_MAX 10000

/* api_lease.c's one-shot renewal. */
typedef void (*api_lease_renew_fn)(void *ctx, int err, int64_t ttl);
int api_lease_renew(struct server *s, int64_t id, api_lease_renew_fn done,
                    void *ctx);

enum route {
    R_SESSION_CREATE,
    R_SESSION_KEEPALIVE,
    R_SESSION_GET,
    R_SESSION_DELETE,
    R_INSTANCE_PUT,
    R_INSTANCE_PATCH,
    R_INSTANCE_GET,
    R_INSTANCE_DELETE,
    R_SERVICE_GET,
    R_SERVICE_PUT,
    R_NAMESPACE_GET,
    R_ROOT_GET,
    R_PROM_SD,
};

struct svc_req;
typedef void (*step_fn)(struct svc_req *r, int err, const uint8_t *resp,
                        size_t len);

/* A renewal in flight outlives a cancelled call: it holds this ticket. */
struct renew_ticket {
    struct svc_req *r; /* NULL once the call is gone */
};

/* Scalars first: req_new() zeroes them and only the first byte of each
 * string (about 5 KB of buffers, most never written, are not cleared). */
struct svc_req {
    struct server *s;
    struct svc_req **slot; /* the caller's handle, cleared when answered */
    svc_done_fn done;
    void *ctx;
    struct api_op *op;
    struct renew_ticket *ticket;
    step_fn next;
    enum route route;
    json_t *body;
    json_t *doc;
    char *val; /* doc as written (svc_json_dump), until answered */
    int64_t lease;
    bool grant_first; /* the next write grants lease first (ttl=) */
    int64_t ttl;
    int64_t expect_rev; /* -1: none */
    int64_t mod_rev;
    int retries;
    /* a registration: the body checked, rendered once the session is
     * known (instead of a doc tree built, dumped and freed); inst is set
     * by svc_instance_check */
    bool have_inst;
    struct svc_inst inst; /* the first field req_new() does not clear */
    char sess[24];
    char token[TOKEN_MAX];
    char cert_user[256]; /* a verified client certificate's CN, or "" */
    char query[QUERY_MAX];
    char peer[64];  /* the client's address, for the audit log */
    char user[128]; /* the token's user, or "anonymous" */
    char ns[SVC_NAME_MAX + 1];
    char svc[SVC_NAME_MAX + 1];
    char id[SVC_NAME_MAX + 1];
    struct svc_filter filter; /* a discovery read's, checked before it */
};

static struct svc_req *req_new(void)
{
    struct svc_req *r = mem_alloc(sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    memset(r, 0, offsetof(struct svc_req, inst));
    r->sess[0] = r->token[0] = r->cert_user[0] = r->query[0] = '\0';
    r->peer[0] = r->user[0] = r->ns[0] = r->svc[0] = r->id[0] = '\0';
    r->filter.healthy = false;
    r->filter.zone[0] = r->filter.version[0] = r->filter.selector[0] = '\0';
    return r;
}

static void instance_patch(struct svc_req *r);

/* ---------------------------------------------------------- answering */

static void req_free(struct svc_req *r)
{
    if (r->slot != NULL) {
        ASSERT(*r->slot == r);
        *r->slot = NULL;
    }
    if (r->ticket != NULL) {
        r->ticket->r = NULL; /* the renewal frees it when it lands */
    }
    json_decref(r->body);
    json_decref(r->doc);
    if (r->have_inst) {
        svc_instance_clear(&r->inst);
    }
    free(r->val);
    mem_free(r);
}

/* Hand the answer over: the caller sees no call in flight from now. */
static void answer_body(struct svc_req *r, int status, const char *body,
                        size_t len)
{
    if (r->slot != NULL) {
        ASSERT(*r->slot == r);
        *r->slot = NULL;
        r->slot = NULL;
    }
    r->done(r->ctx, status, body, len);
    req_free(r);
}

static void answer_json(struct svc_req *r, int status, json_t *o)
{
    static const char oom[] = "{\"error\":\"out of memory\",\"code\":"
                              "\"internal\",\"message\":\"out of memory\"}";
    char *s = o != NULL ? svc_json_dump(o) : NULL;
    json_decref(o);
    if (s == NULL) {
        answer_body(r, 500, oom, sizeof(oom) - 1);
        return;
    }
    answer_body(r, status, s, strlen(s));
    free(s);
}

static void answer_error(struct svc_req *r, int status, const char *code,
                         const char *message, const char *field)
{
    struct buf b;
    buf_init(&b, SVC_DOC_MAX);
    if (svc_error_body(&b, code, message, field) != 0) {
        buf_free(&b);
        answer_json(r, 500, NULL);
        return;
    }
    answer_body(r, status, (const char *)b.data, b.len);
    buf_free(&b);
}

static void answer_err(struct svc_req *r, int err)
{
    const char *code = "internal";
    int status = grpc_api_v1_status(err, &code);
    const char *text = err_str(err);
    if (err == ERR_LEASE_NOT_FOUND) {
        text = "session expired or unknown: register again";
        r->s->svc_ctr.session_expired++;
    }
    answer_error(r, status, code, text, NULL);
}

static void answer_bad(struct svc_req *r, const char *msg, const char *field)
{
    char name[64];
    const char *f = strstr(msg, "field \"");
    if (field == NULL && f != NULL) { /* the model's messages name it */
        f += 7;
        size_t n = strcspn(f, "\"");
        if (n > 0 && n < sizeof(name)) {
            memcpy(name, f, n);
            name[n] = '\0';
            field = name;
        }
    }
    answer_error(r, 400, "bad_request", msg, field);
}

/* ------------------------------------------------------- inner calls */

static void inner_done(void *ctx, int err, const uint8_t *resp, size_t len)
{
    struct svc_req *r = ctx;
    step_fn next = r->next;
    r->op = NULL;
    r->next = NULL;
    ASSERT(next != NULL);
    next(r, err, resp, len);
}

/* The audit record of r's write through path (docs/audit.md), or NULL
 * when that request is not one: reads, keep-alives, and the lease a
 * registration takes first with a request of its own (instance_grant;
 * the registration's record names it). */
static const struct api_audit *audit_of(const struct svc_req *r,
                                        const char *path, struct api_audit *au,
                                        char *target, size_t cap)
{
    bool aside = strcmp(path, "/etcdserverpb.KV/Range") == 0 ||
                 strcmp(path, "/etcdserverpb.Lease/LeaseTimeToLive") == 0 ||
                 strcmp(path, "/etcdserverpb.Lease/LeaseGrant") == 0;
    memset(au, 0, sizeof(*au));
    au->principal = r->user;
    au->source = r->peer;
    au->ns = r->ns;
    au->target = target;
    str_join(target, cap, r->svc, "/", r->id, NULL);
    switch (r->route) {
    case R_SESSION_CREATE:
    case R_SESSION_DELETE:
        au->action =
            r->route == R_SESSION_CREATE ? "session.create" : "session.delete";
        ASSERT(cap >= STR_HEX_U64_BYTES);
        str_hex_u64((uint64_t)r->lease, target);
        return au;
    case R_INSTANCE_PUT:
        au->action = "registry.register";
        return aside ? NULL : au;
    case R_INSTANCE_PATCH:
        au->action = "registry.patch";
        return au;
    case R_INSTANCE_DELETE:
        au->action = "registry.deregister";
        return au;
    case R_SERVICE_PUT:
        au->action = "registry.service.put";
        str_join(target, cap, r->svc, NULL);
        return au;
    default:
        return NULL;
    }
}

/* One etcd request as the caller; next runs exactly once (maybe before
 * this returns, in which case r may be gone when it does). */
static void call(struct svc_req *r, const char *path,
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
    char target[2 * SVC_NAME_MAX + 24];
    const struct api_audit *ap = audit_of(r, path, &au, target, sizeof(target));
    const char *tok = r->token[0] != '\0' ? r->token : NULL;
    const char *cu = r->cert_user[0] != '\0' ? r->cert_user : NULL;
    if (r->grant_first) {
        struct api_lease_first lf = {.id = r->lease, .ttl = r->ttl};
        r->grant_first = false;
        op = api_call_leased(r->s, m, bytes, n, 0, tok, cu, ap, &lf, inner_done,
                             r);
    } else {
        op = api_call_as(r->s, m, bytes, n, 0, tok, cu, ap, inner_done, r);
    }
    mem_free(bytes);
    if (op != NULL) {
        r->op = op; /* not answered yet, so r is alive */
    }
}

/* ------------------------------------------------------------ keys */

static size_t key_instance(const struct svc_req *r, char *out, size_t len)
{
    size_t n = str_join(out, len, SVC_PREFIX, r->ns, "/services/", r->svc, "/",
                        r->id, NULL);
    ASSERT(n > 0 && n < len);
    return n;
}

/* Prefix of a service's instances (svc set) or of a namespace's services
 * (svc empty), or of every namespace (ns empty). */
static size_t key_prefix(const struct svc_req *r, char *out, size_t len)
{
    size_t n;
    if (r->ns[0] == '\0') {
        n = str_join(out, len, SVC_PREFIX, NULL);
    } else if (r->svc[0] == '\0') {
        n = str_join(out, len, SVC_PREFIX, r->ns, "/services/", NULL);
    } else {
        n = str_join(out, len, SVC_PREFIX, r->ns, "/services/", r->svc, "/",
                     NULL);
    }
    ASSERT(n > 0 && n < len);
    return n;
}

static size_t key_settings(const struct svc_req *r, char *out, size_t len)
{
    size_t n =
        str_join(out, len, SVC_PREFIX, r->ns, "/settings/", r->svc, NULL);
    ASSERT(n > 0 && n < len);
    return n;
}

/* The end of a prefix range: the prefix with its last byte + 1 (every
 * prefix here ends in '/', never 0xff). */
static void prefix_end(const char *p, size_t n, char *out)
{
    ASSERT(n > 0 && (unsigned char)p[n - 1] < 0xff);
    memcpy(out, p, n);
    out[n - 1] = (char)(p[n - 1] + 1);
}

static void session_hex(int64_t id, char *out, size_t len)
{
    ASSERT(len >= STR_HEX_U64_BYTES);
    str_hex_u64((uint64_t)id, out);
}

static int session_parse(const char *s, int64_t *id)
{
    char *end = NULL;
    size_t n = strlen(s);
    if (n == 0 || n > 16) {
        return ERR_BAD_REQUEST;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F'))) {
            return ERR_BAD_REQUEST;
        }
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 16);
    if (errno != 0 || *end != '\0' || v == 0 || v > INT64_MAX) {
        return ERR_BAD_REQUEST;
    }
    *id = (int64_t)v;
    return 0;
}

/* The stored document of kv with its revision, or NULL when the value is
 * not a registry document (a key someone wrote with etcdctl). */
static json_t *doc_from_kv(const Mvccpb__KeyValue *kv)
{
    return svc_doc_parse(kv->value.data, kv->value.len, kv->mod_revision,
                         kv->create_revision);
}

static int64_t header_rev(const Etcdserverpb__ResponseHeader *h)
{
    return h != NULL ? h->revision : 0;
}

/* ----------------------------------------------------------- sessions */

static void session_granted(struct svc_req *r, int err, const uint8_t *resp,
                            size_t len)
{
    char hex[24];
    Etcdserverpb__LeaseGrantResponse *g;
    if (err != 0) {
        answer_err(r, err);
        return;
    }
    g = etcdserverpb__lease_grant_response__unpack(NULL, len, resp);
    if (g == NULL) {
        answer_err(r, ERR_UNMARSHAL);
        return;
    }
    r->s->svc_ctr.sessions_created++;
    session_hex(g->id, hex, sizeof(hex));
    answer_json(r, 200,
                json_pack("{s:s,s:I,s:I}", "session", hex, "ttl",
                          (json_int_t)g->ttl, "revision",
                          (json_int_t)header_rev(g->header)));
    etcdserverpb__lease_grant_response__free_unpacked(g, NULL);
}

static int ttl_from_body(struct svc_req *r, int64_t *ttl)
{
    json_t *v = r->body != NULL ? json_object_get(r->body, "ttl") : NULL;
    *ttl = SVC_TTL_DEFAULT;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > SVC_TTL_MAX) {
        answer_bad(r, "field \"ttl\" must be an integer 1-3600 (seconds)",
                   "ttl");
        return ERR_BAD_REQUEST;
    }
    *ttl = json_integer_value(v);
    return 0;
}

static void session_create(struct svc_req *r)
{
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    if (ttl_from_body(r, &r->ttl) != 0) {
        return;
    }
    g.ttl = r->ttl;
    /* as LeaseGrant with ID 0, here so that the audit record names the
     * session */
    g.id = api_lease_id_pick(r->s);
    r->lease = g.id;
    call(r, "/etcdserverpb.Lease/LeaseGrant", &g.base, session_granted);
}

static void renewed(void *ctx, int err, int64_t ttl)
{
    struct renew_ticket *t = ctx;
    struct svc_req *r = t->r;
    char hex[24];
    mem_free(t);
    if (r == NULL) {
        return; /* the caller went away */
    }
    r->ticket = NULL;
    if (err == 0 && ttl <= 0) {
        err = ERR_LEASE_NOT_FOUND;
    }
    if (err != 0) {
        answer_err(r, err);
        return;
    }
    session_hex(r->lease, hex, sizeof(hex));
    answer_json(r, 200,
                json_pack("{s:s,s:I}", "session", hex, "ttl", (json_int_t)ttl));
}

static void session_keepalive(struct svc_req *r)
{
    struct renew_ticket *t = mem_calloc(1, sizeof(*t));
    int rc;
    if (t == NULL) {
        answer_err(r, -ENOMEM);
        return;
    }
    t->r = r;
    r->ticket = t;
    rc = api_lease_renew(r->s, r->lease, renewed, t);
    if (rc != 0) {
        r->ticket = NULL;
        mem_free(t);
        answer_err(r, rc);
    }
}

static void session_ttl_done(struct svc_req *r, int err, const uint8_t *resp,
                             size_t len)
{
    char hex[24];
    Etcdserverpb__LeaseTimeToLiveResponse *t;
    if (err != 0) {
        answer_err(r, err);
        return;
    }
    t = etcdserverpb__lease_time_to_live_response__unpack(NULL, len, resp);
    if (t == NULL) {
        answer_err(r, ERR_UNMARSHAL);
        return;
    }
    if (t->ttl < 0) {
        etcdserverpb__lease_time_to_live_response__free_unpacked(t, NULL);
        answer_err(r, ERR_LEASE_NOT_FOUND);
        return;
    }
    json_t *keys = json_array();
    for (size_t i = 0; keys != NULL && i < t->n_keys; i++) {
        json_array_append_new(
            keys, json_stringn((const char *)t->keys[i].data, t->keys[i].len));
    }
    session_hex(r->lease, hex, sizeof(hex));
    answer_json(r, 200,
                json_pack("{s:s,s:I,s:I,s:o?}", "session", hex, "ttl",
                          (json_int_t)t->ttl, "granted_ttl",
                          (json_int_t)t->grantedttl, "keys", keys));
    etcdserverpb__lease_time_to_live_response__free_unpacked(t, NULL);
}

static void session_get(struct svc_req *r)
{
    Etcdserverpb__LeaseTimeToLiveRequest q =
        ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    q.id = r->lease;
    q.keys = 1;
    call(r, "/etcdserverpb.Lease/LeaseTimeToLive", &q.base, session_ttl_done);
}

static void session_revoked(struct svc_req *r, int err, const uint8_t *resp,
                            size_t len)
{
    Etcdserverpb__LeaseRevokeResponse *v;
    if (err != 0) {
        answer_err(r, err);
        return;
    }
    v = etcdserverpb__lease_revoke_response__unpack(NULL, len, resp);
    int64_t rev = v != NULL ? header_rev(v->header) : 0;
    if (v != NULL) {
        etcdserverpb__lease_revoke_response__free_unpacked(v, NULL);
    }
    answer_json(r, 200, json_pack("{s:I}", "revision", (json_int_t)rev));
}

static void session_delete(struct svc_req *r)
{
    Etcdserverpb__LeaseRevokeRequest q =
        ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    q.id = r->lease;
    call(r, "/etcdserverpb.Lease/LeaseRevoke", &q.base, session_revoked);
}

/* ---------------------------------------------------------- instances */

/* The answer to a write that went in, from the bytes written rather than
 * a copy of the document rendered again: the same text answer_json gives
 * for {"revision":R,"session":S,"instance":doc + "revision":R} (compact,
 * insertion order, "revision" last), without the deep copy and the second
 * json_dumps, which were a sixth of a registration's instructions. Not
 * taken when the document names a "revision" of its own (set would
 * replace it in place) or the session needs escaping: -1, the caller
 * renders the answer the general way. */
static int answer_written(struct svc_req *r, int64_t rev)
{
    char hex[24];
    const char *sess =
        r->have_inst ? r->sess
                     : json_string_value(json_object_get(r->doc, "session"));
    size_t vn = r->val != NULL ? strlen(r->val) : 0;
    if (vn < 2 || r->val[0] != '{' || r->val[vn - 1] != '}' ||
        json_object_get(r->doc, "revision") != NULL) {
        return -1;
    }
    if (sess == NULL) {
        session_hex(r->lease, hex, sizeof(hex));
        sess = hex;
    }
    for (const char *c = sess; *c != 0; c++) {
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') ||
              (*c >= 'A' && *c <= 'Z'))) {
            return -1;
        }
    }
    struct buf b;
    char num[STR_DEC_I64_BYTES];
    size_t nn = str_dec_i64(rev, num);
    size_t sn = strlen(sess);
    buf_init(&b, 2 * SVC_DOC_MAX);
    /* the whole answer's size at once, not three doublings from 256 */
    int rc = buf_reserve(&b, 64 + sn + vn + 2 * nn);
    rc = rc != 0 ? rc : buf_append(&b, "{\"revision\":", 12);
    rc = rc != 0 ? rc : buf_append(&b, num, nn);
    rc = rc != 0 ? rc : buf_append(&b, ",\"session\":\"", 12);
    rc = rc != 0 ? rc : buf_append(&b, sess, sn);
    rc = rc != 0 ? rc : buf_append(&b, "\",\"instance\":", 13);
    rc = rc != 0 ? rc : buf_append(&b, r->val, vn - 1);
    rc = rc != 0 ? rc
                 : buf_append(&b, vn > 2 ? ",\"revision\":" : "\"revision\":",
                              vn > 2 ? 12 : 11);
    rc = rc != 0 ? rc : buf_append(&b, num, nn);
    rc = rc != 0 ? rc : buf_append(&b, "}}", 2);
    if (rc != 0) {
        buf_free(&b);
        return -1;
    }
    answer_body(r, 200, (const char *)b.data, b.len);
    buf_free(&b);
    return 0;
}

/* The instance is written at rev: answer with it. */
static void instance_done(struct svc_req *r, int64_t rev)
{
    char hex[24];
    if (r->route == R_INSTANCE_PUT) {
        r->s->svc_ctr.registrations++;
    }
    if (answer_written(r, rev) == 0) {
        return;
    }
    json_t *inst = r->doc != NULL   ? json_deep_copy(r->doc)
                   : r->val != NULL ? json_loads(r->val, 0, NULL)
                                    : NULL;
    if (inst != NULL) {
        json_object_set_new(inst, "revision", json_integer(rev));
    }
    const char *sess = json_string_value(json_object_get(inst, "session"));
    if (sess == NULL) {
        session_hex(r->lease, hex, sizeof(hex));
        sess = hex;
    }
    answer_json(r, 200,
                json_pack("{s:I,s:s,s:o?}", "revision", (json_int_t)rev,
                          "session", sess, "instance", inst));
}

/* A registration without expect_revision went in as a plain Put. */
static void instance_put_written(struct svc_req *r, int err,
                                 const uint8_t *resp, size_t len)
{
    Etcdserverpb__PutResponse *p;
    if (err != 0) {
        answer_err(r, err);
        return;
    }
    p = etcdserverpb__put_response__unpack(NULL, len, resp);
    if (p == NULL) {
        answer_err(r, ERR_UNMARSHAL);
        return;
    }
    int64_t rev = header_rev(p->header);
    etcdserverpb__put_response__free_unpacked(p, NULL);
    instance_done(r, rev);
}

static void instance_written(struct svc_req *r, int err, const uint8_t *resp,
                             size_t len)
{
    Etcdserverpb__TxnResponse *t;
    if (err != 0) {
        answer_err(r, err);
        return;
    }
    t = etcdserverpb__txn_response__unpack(NULL, len, resp);
    if (t == NULL) {
        answer_err(r, ERR_UNMARSHAL);
        return;
    }
    int64_t rev = header_rev(t->header);
    bool ok = t->succeeded;
    int64_t cur = 0;
    if (!ok && t->n_responses == 1 &&
        t->responses[0]->response_case ==
            ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE &&
        t->responses[0]->response_range->n_kvs == 1) {
        cur = t->responses[0]->response_range->kvs[0]->mod_revision;
    }
    etcdserverpb__txn_response__free_unpacked(t, NULL);
    if (!ok) {
        char msg[160];
        if (r->route == R_INSTANCE_PATCH) {
            /* someone wrote between our read and our write: read again */
            if (++r->retries <= PATCH_RETRIES) {
                json_decref(r->doc);
                r->doc = NULL;
                instance_patch(r);
                return;
            }
            answer_error(r, 409, "conflict",
                         "instance changed concurrently; try again", NULL);
            return;
        }
        snprintf(msg, sizeof(msg),
                 "expect_revision %" PRId64 " does not match: the instance "
                 "is at revision %" PRId64 " (0: absent)",
                 r->expect_rev, cur);
        answer_error(r, 409, "conflict", msg, "expect_revision");
        return;
    }
    instance_done(r, rev);
}

/* Txn: [compare mod_revision(key) == want] then put doc (with lease, or
 * keeping the key's lease), else read the key. */
static void instance_txn(struct svc_req *r, bool have_cmp, int64_t want,
                         bool keep_lease)
{
    char key[KEY_MAX];
    size_t kn = key_instance(r, key, sizeof(key));
    char *val = r->have_inst ? svc_instance_render(&r->inst, r->ns, r->svc,
                                                   r->id, r->sess)
                             : svc_json_dump(r->doc);
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__RangeRequest rg = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RequestOp ok = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp ko = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *oks[1] = {&ok};
    Etcdserverpb__RequestOp *kos[1] = {&ko};
    Etcdserverpb__TxnRequest txn = ETCDSERVERPB__TXN_REQUEST__INIT;
    if (val == NULL) {
        answer_err(r, -ENOMEM);
        return;
    }
    if (strlen(val) > SVC_DOC_MAX) {
        free(val);
        answer_error(r, 413, "too_large",
                     "the instance document is larger than 65536 bytes", NULL);
        return;
    }
    cmp.key.data = (uint8_t *)key;
    cmp.key.len = kn;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    cmp.mod_revision = want;
    put.key = cmp.key;
    put.value.data = (uint8_t *)val;
    put.value.len = strlen(val);
    put.lease = keep_lease ? 0 : r->lease;
    put.ignore_lease = keep_lease;
    rg.key = cmp.key;
    if (r->have_inst) { /* rendered: its health is known without a read */
        svc_health_hint(r->s, key, kn, val, put.value.len,
                        svc_instance_health(&r->inst));
    }
    free(r->val);
    r->val = val; /* kept for the answer (answer_written) */
    if (!have_cmp && r->route == R_INSTANCE_PUT) {
        /* nothing to compare: a Put does the same, and is cheaper to
         * apply (no Txn to decode, no compare to evaluate) */
        call(r, "/etcdserverpb.KV/Put", &put.base, instance_put_written);
        return;
    }
    ok.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    ok.request_put = &put;
    ko.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    ko.request_range = &rg;
    txn.n_compare = have_cmp ? 1 : 0;
    txn.compare = cmps;
    txn.n_success = 1;
    txn.success = oks;
    txn.n_failure = have_cmp ? 1 : 0;
    txn.failure = kos;
    call(r, "/etcdserverpb.KV/Txn", &txn.base, instance_written);
}

/* The lease is known: name it in the document (built and checked before
 * anything was written) and write. */
static void instance_write(struct svc_req *r)
{
    ASSERT(r->have_inst);
    session_hex(r->lease, r->sess, sizeof(r->sess));
    instance_txn(r, r->expect_rev >= 0, r->expect_rev, false);
}

static void instance_lease_granted(struct svc_req *r, int err,
                                   const uint8_t *resp, size_t len)
{
    Etcdserverpb__LeaseGrantResponse *g;
    if (err != 0) {
        answer_err(r, err);
        return;
    }
    g = etcdserverpb__lease_grant_response__unpack(NULL, len, resp);
    if (g == NULL) {
        answer_err(r, ERR_UNMARSHAL);
        return;
    }
    r->lease = g->id;
    etcdserverpb__lease_grant_response__free_unpacked(g, NULL);
    instance_write(r);
}

/* A lease of the instance's own, granted in the same Raft request as the
 * write (api_call_leased): if the write is refused (expect_revision), the
 * lease is revoked with it, and a registration is one request, not two.
 * While a member of the cluster does not read that request yet (a rolling
 * upgrade), the lease is granted first with a request of its own, and a
 * refused write leaves it to expire by itself. */
static void instance_grant(struct svc_req *r)
{
    r->lease = api_lease_id_pick(r->s);
    if (!api_can_lease_first(r->s)) {
        Etcdserverpb__LeaseGrantRequest g =
            ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
        g.id = r->lease;
        g.ttl = r->ttl;
        call(r, "/etcdserverpb.Lease/LeaseGrant", &g.base,
             instance_lease_granted);
        return;
    }
    r->grant_first = true;
    instance_write(r);
}

/*
 * A ttl= registration of an id that is registered already, under a session
 * of its own (a lease holding this one key, granted with the same TTL),
 * renews that session and writes under it. Granting a new lease each time
 * left the old one alive until its TTL ran out: a client that re-registers
 * as its heartbeat (Eureka's and Nacos's habit) piled up one live lease
 * per beat. Anything else (no such instance, a shared session, another
 * TTL, an error on the way) takes a new lease, as a first registration.
 */
static void instance_ttl_renewed(void *ctx, int err, int64_t ttl)
{
    struct renew_ticket *t = ctx;
    struct svc_req *r = t->r;
    mem_free(t);
    if (r == NULL) {
        return; /* the caller went away */
    }
    r->ticket = NULL;
    if (err != 0 || ttl <= 0) {
        instance_grant(r); /* it ran out meanwhile */
        return;
    }
    instance_write(r); /* r->lease is the instance's own session */
}

static void instance_ttl_checked(struct svc_req *r, int err,
                                 const uint8_t *resp, size_t len)
{
    char key[KEY_MAX];
    size_t kn = key_instance(r, key, sizeof(key));
    Etcdserverpb__LeaseTimeToLiveResponse *t =
        err == 0
            ? etcdserverpb__lease_time_to_live_response__unpack(NULL, len, resp)
            : NULL;
    bool own = t != NULL && t->ttl > 0 && t->grantedttl == r->ttl &&
               t->n_keys == 1 && t->keys[0].len == kn &&
               memcmp(t->keys[0].data, key, kn) == 0;
    if (t != NULL) {
        etcdserverpb__lease_time_to_live_response__free_unpacked(t, NULL);
    }
    if (!own) {
        instance_grant(r);
        return;
    }
    struct renew_ticket *tk = mem_calloc(1, sizeof(*tk));
    if (tk == NULL) {
        instance_grant(r);
        return;
    }
    tk->r = r;
    r->ticket = tk;
    int rc = api_lease_renew(r->s, r->lease, instance_ttl_renewed, tk);
    if (rc != 0) {
        r->ticket = NULL;
        mem_free(tk);
        instance_grant(r);
    }
}

/* The lease of the instance's key in this member's store (0: none, or the
 * caller may not read the key, or the store cannot be read now).
 * A serializable read is enough: it only proposes a lease, which
 * LeaseTimeToLive then checks against the leader's state. Read here, not
 * through a Range call: same permission check (etcd's, on the one key),
 * without packing a request and unpacking its answer (about 12k
 * instructions, 7% of a ttl= registration on the loop thread). */
static int64_t instance_lease_local(struct svc_req *r)
{
    char key[KEY_MAX];
    size_t kn = key_instance(r, key, sizeof(key));
    struct kv_read *rd;
    struct kv_result res = {0};
    struct kv_range_resp rr;
    struct kv_range_req q;
    int64_t lease = 0;
    if (api_auth_range_check_as(r->s, r->token[0] != '\0' ? r->token : NULL,
                                r->cert_user[0] != '\0' ? r->cert_user : NULL,
                                (const uint8_t *)key, kn, NULL, 0) != 0 ||
        node_read_begin(r->s->node, &rd) != 0) {
        return 0;
    }
    memset(&q, 0, sizeof(q));
    q.key = (const uint8_t *)key;
    q.key_len = kn;
    q.keys_only = true;
    if (kv_range(rd, &q, &res, &rr) == 0 && rr.kvs_count == 1) {
        lease = rr.kvs[0].lease;
    }
    kv_result_free(&res);
    node_read_end(r->s->node, rd);
    return lease;
}

static void instance_ttl_lookup(struct svc_req *r)
{
    int64_t lease = instance_lease_local(r);
    if (lease == 0) {
        instance_grant(r);
        return;
    }
    r->lease = lease;
    Etcdserverpb__LeaseTimeToLiveRequest q =
        ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    q.id = lease;
    q.keys = 1;
    call(r, "/etcdserverpb.Lease/LeaseTimeToLive", &q.base,
         instance_ttl_checked);
}

static void instance_put(struct svc_req *r)
{
    json_t *sv;
    json_t *ev;
    char msg[SVC_MSG_MAX];
    if (!json_is_object(r->body)) {
        answer_bad(r, "the body must be a JSON object", NULL);
        return;
    }
    sv = json_object_get(r->body, "session");
    ev = json_object_get(r->body, "expect_revision");
    r->expect_rev = -1;
    if (ev != NULL && !json_is_null(ev)) {
        if (!json_is_integer(ev) || json_integer_value(ev) < 0) {
            answer_bad(r, "field \"expect_revision\" must be an integer >= 0",
                       "expect_revision");
            return;
        }
        r->expect_rev = json_integer_value(ev);
    }
    /* everything but the lease is checked before anything is written */
    int rc = svc_instance_check(r->body, (int64_t)time(NULL), &r->inst, msg,
                                sizeof(msg));
    r->have_inst = rc == 0;
    if (rc != 0) {
        if (rc == ERR_BAD_REQUEST) {
            answer_bad(r, msg, NULL);
        } else {
            answer_err(r, rc);
        }
        return;
    }
    if (sv != NULL && !json_is_null(sv)) {
        if (!json_is_string(sv) ||
            session_parse(json_string_value(sv), &r->lease) != 0) {
            answer_bad(r, "field \"session\" must be a session id (hex)",
                       "session");
            return;
        }
        if (json_object_get(r->body, "ttl") != NULL) {
            answer_bad(r, "give \"session\" or \"ttl\", not both", "ttl");
            return;
        }
        instance_write(r);
        return;
    }
    if (ttl_from_body(r, &r->ttl) != 0) {
        return;
    }
    instance_ttl_lookup(r);
}

static Etcdserverpb__RangeResponse *
range_unpack(struct svc_req *r, int err, const uint8_t *resp, size_t len)
{
    Etcdserverpb__RangeResponse *g;
    if (err != 0) {
        answer_err(r, err);
        return NULL;
    }
    g = etcdserverpb__range_response__unpack(NULL, len, resp);
    if (g == NULL) {
        answer_err(r, ERR_UNMARSHAL);
    }
    return g;
}

static void instance_patch_read(struct svc_req *r, int err, const uint8_t *resp,
                                size_t len)
{
    char msg[SVC_MSG_MAX];
    Etcdserverpb__RangeResponse *g = range_unpack(r, err, resp, len);
    if (g == NULL) {
        return;
    }
    if (g->n_kvs == 0) {
        etcdserverpb__range_response__free_unpacked(g, NULL);
        answer_error(r, 404, "not_found", "no such instance", NULL);
        return;
    }
    r->doc = doc_from_kv(g->kvs[0]);
    r->mod_rev = g->kvs[0]->mod_revision;
    r->lease = g->kvs[0]->lease;
    etcdserverpb__range_response__free_unpacked(g, NULL);
    if (r->doc == NULL) {
        answer_error(r, 409, "conflict",
                     "the key does not hold a registry instance document",
                     NULL);
        return;
    }
    json_object_del(r->doc, "revision");
    json_object_del(r->doc, "create_revision");
    json_t *before = json_deep_copy(r->doc);
    if (svc_instance_patch(r->doc, r->body, msg, sizeof(msg)) != 0) {
        json_decref(before);
        answer_bad(r, msg, NULL);
        return;
    }
    /* Nothing changes (a drain sent again, a controller's reconcile
     * loop): no write, so no new revision and no event pushed to every
     * subscriber of the service. The answer names the instance's own
     * revision. */
    bool same = before != NULL && json_equal(before, r->doc);
    json_decref(before);
    if (same) {
        free(r->val);
        r->val = svc_json_dump(r->doc);
        if (r->val == NULL) {
            answer_err(r, -ENOMEM);
            return;
        }
        instance_done(r, r->mod_rev);
        return;
    }
    instance_txn(r, true, r->mod_rev, true);
}

static void range_key(struct svc_req *r, const char *key, size_t kn,
                      step_fn next)
{
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key.data = (uint8_t *)key;
    q.key.len = kn;
    call(r, "/etcdserverpb.KV/Range", &q.base, next);
}

static void instance_patch(struct svc_req *r)
{
    char key[KEY_MAX];
    size_t kn = key_instance(r, key, sizeof(key));
    if (!json_is_object(r->body)) {
        answer_bad(r, "the body must be a JSON object", NULL);
        return;
    }
    range_key(r, key, kn, instance_patch_read);
}

static void instance_read(struct svc_req *r, int err, const uint8_t *resp,
                          size_t len)
{
    Etcdserverpb__RangeResponse *g = range_unpack(r, err, resp, len);
    json_t *d;
    if (g == NULL) {
        return;
    }
    d = g->n_kvs == 1 ? doc_from_kv(g->kvs[0]) : NULL;
    int64_t rev = header_rev(g->header);
    bool none = g->n_kvs == 0;
    etcdserverpb__range_response__free_unpacked(g, NULL);
    if (none) {
        answer_error(r, 404, "not_found", "no such instance", NULL);
        return;
    }
    if (d == NULL) {
        answer_error(r, 409, "conflict",
                     "the key does not hold a registry instance document",
                     NULL);
        return;
    }
    answer_json(
        r, 200,
        json_pack("{s:I,s:o}", "revision", (json_int_t)rev, "instance", d));
}

static void instance_deleted(struct svc_req *r, int err, const uint8_t *resp,
                             size_t len)
{
    Etcdserverpb__DeleteRangeResponse *d;
    if (err != 0) {
        answer_err(r, err);
        return;
    }
    d = etcdserverpb__delete_range_response__unpack(NULL, len, resp);
    if (d == NULL) {
        answer_err(r, ERR_UNMARSHAL);
        return;
    }
    int64_t rev = header_rev(d->header);
    int64_t n = d->deleted;
    etcdserverpb__delete_range_response__free_unpacked(d, NULL);
    if (n == 0) {
        answer_error(r, 404, "not_found", "no such instance", NULL);
        return;
    }
    r->s->svc_ctr.deregistrations++;
    answer_json(r, 200, json_pack("{s:I}", "revision", (json_int_t)rev));
}

static void instance_delete(struct svc_req *r)
{
    char key[KEY_MAX];
    Etcdserverpb__DeleteRangeRequest q =
        ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    q.key.data = (uint8_t *)key;
    q.key.len = key_instance(r, key, sizeof(key));
    call(r, "/etcdserverpb.KV/DeleteRange", &q.base, instance_deleted);
}

/* ----------------------------------------------------- service reads */

static int filter_from_query(struct svc_req *r, struct svc_filter *f)
{
    char tmp[16];
    char msg[SVC_MSG_MAX];
    memset(f, 0, sizeof(*f));
    if (svc_query_get(r->query, "healthy", tmp, sizeof(tmp)) == 0) {
        if (strcmp(tmp, "true") != 0 && strcmp(tmp, "false") != 0 &&
            strcmp(tmp, "1") != 0 && strcmp(tmp, "0") != 0) {
            answer_bad(r, "parameter \"healthy\" must be true or false",
                       "healthy");
            return ERR_BAD_REQUEST;
        }
        f->healthy = strcmp(tmp, "true") == 0 || strcmp(tmp, "1") == 0;
    }
    if (svc_query_get(r->query, "zone", f->zone, sizeof(f->zone)) < 0 ||
        svc_query_get(r->query, "version", f->version, sizeof(f->version)) <
            0 ||
        svc_query_get(r->query, "selector", f->selector, sizeof(f->selector)) <
            0) {
        answer_bad(r, "a query parameter is too long", NULL);
        return ERR_BAD_REQUEST;
    }
    if (svc_selector_check(f->selector, msg, sizeof(msg)) != 0) {
        answer_bad(r, msg, "selector");
        return ERR_BAD_REQUEST;
    }
    return 0;
}

static double threshold_of(const Etcdserverpb__RangeResponse *g)
{
    json_t *o;
    double t = 0;
    if (g == NULL || g->n_kvs == 0) {
        return 0;
    }
    o = json_loadb((const char *)g->kvs[0]->value.data, g->kvs[0]->value.len, 0,
                   NULL);
    if (json_is_number(json_object_get(o, "protect_threshold"))) {
        t = json_number_value(json_object_get(o, "protect_threshold"));
    }
    json_decref(o);
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

static void service_read(struct svc_req *r, int err, const uint8_t *resp,
                         size_t len)
{
    const struct svc_filter *fp = &r->filter;
    Etcdserverpb__TxnResponse *t;
    const Etcdserverpb__RangeResponse *ins;
    if (err != 0) {
        answer_err(r, err);
        return;
    }
    t = etcdserverpb__txn_response__unpack(NULL, len, resp);
    ins = t != NULL ? txn_range(t, 0) : NULL;
    if (ins == NULL) {
        if (t != NULL) {
            etcdserverpb__txn_response__free_unpacked(t, NULL);
        }
        answer_err(r, ERR_UNMARSHAL);
        return;
    }
    double thr = threshold_of(txn_range(t, 1));
    r->s->svc_ctr.discovery_reads++;
    json_t *all = json_array();
    size_t total = 0, healthy = 0;
    for (size_t i = 0; all != NULL && i < ins->n_kvs; i++) {
        json_t *d = doc_from_kv(ins->kvs[i]);
        if (d == NULL || !svc_filter_match(fp, d)) {
            json_decref(d);
            continue;
        }
        total++;
        healthy += svc_instance_healthy(d) ? 1 : 0;
        json_array_append_new(all, d);
    }
    bool active = total > 0 && thr > 0 && (double)healthy / (double)total < thr;
    json_t *out = all;
    if (fp->healthy && all != NULL) {
        /* protection: below the threshold, critical instances are handed
         * out too, so the survivors are not flooded (Nacos's protect
         * threshold); draining ones never are */
        out = json_array();
        size_t i;
        json_t *d;
        json_array_foreach(all, i, d)
        {
            const char *st = json_string_value(json_object_get(d, "status"));
            bool up = st != NULL && strcmp(st, "up") == 0;
            if (svc_instance_healthy(d) || (active && up)) {
                json_array_append(out, d);
            }
        }
        json_decref(all);
    }
    answer_json(r, 200,
                json_pack("{s:I,s:s,s:s,s:{s:f,s:b},s:o?,s:b}", "revision",
                          (json_int_t)header_rev(t->header), "namespace", r->ns,
                          "service", r->svc, "protection", "threshold", thr,
                          "active", active, "instances", out, "more",
                          ins->more));
    etcdserverpb__txn_response__free_unpacked(t, NULL);
}

static void service_get(struct svc_req *r)
{
    char pfx[KEY_MAX], end[KEY_MAX], skey[KEY_MAX];
    size_t pn = key_prefix(r, pfx, sizeof(pfx));
    size_t sn = key_settings(r, skey, sizeof(skey));
    Etcdserverpb__RangeRequest a = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RangeRequest b = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RequestOp oa = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp ob = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *ops[2] = {&oa, &ob};
    Etcdserverpb__TxnRequest txn = ETCDSERVERPB__TXN_REQUEST__INIT;
    if (filter_from_query(r, &r->filter) != 0) {
        return; /* answered 400 before anything was read */
    }
    prefix_end(pfx, pn, end);
    a.key.data = (uint8_t *)pfx;
    a.key.len = pn;
    a.range_end.data = (uint8_t *)end;
    a.range_end.len = pn;
    a.limit = SVC_LIST_MAX;
    b.key.data = (uint8_t *)skey;
    b.key.len = sn;
    oa.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    oa.request_range = &a;
    ob.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    ob.request_range = &b;
    txn.n_success = 2;
    txn.success = ops;
    call(r, "/etcdserverpb.KV/Txn", &txn.base, service_read);
}

static void settings_written(struct svc_req *r, int err, const uint8_t *resp,
                             size_t len)
{
    Etcdserverpb__PutResponse *p;
    if (err != 0) {
        answer_err(r, err);
        return;
    }
    p = etcdserverpb__put_response__unpack(NULL, len, resp);
    int64_t rev = p != NULL ? header_rev(p->header) : 0;
    if (p != NULL) {
        etcdserverpb__put_response__free_unpacked(p, NULL);
    }
    answer_json(r, 200,
                json_pack("{s:I,s:O}", "revision", (json_int_t)rev, "settings",
                          r->doc));
}

static void settings_read(struct svc_req *r, int err, const uint8_t *resp,
                          size_t len)
{
    Etcdserverpb__RangeResponse *g = range_unpack(r, err, resp, len);
    if (g == NULL) {
        return;
    }
    size_t vn = strlen(r->val);
    bool same = g->n_kvs == 1 && g->kvs[0]->value.len == vn &&
                memcmp(g->kvs[0]->value.data, r->val, vn) == 0;
    int64_t rev = header_rev(g->header);
    etcdserverpb__range_response__free_unpacked(g, NULL);
    if (same) {
        answer_json(r, 200,
                    json_pack("{s:I,s:O}", "revision", (json_int_t)rev,
                              "settings", r->doc));
        return;
    }
    char key[KEY_MAX];
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key.data = (uint8_t *)key;
    put.key.len = key_settings(r, key, sizeof(key));
    put.value.data = (uint8_t *)r->val;
    put.value.len = vn;
    call(r, "/etcdserverpb.KV/Put", &put.base, settings_written);
}

static void service_put(struct svc_req *r)
{
    json_t *thr = json_object_get(r->body, "protect_threshold");
    json_t *meta = json_object_get(r->body, "meta");
    if (!json_is_object(r->body)) {
        answer_bad(r, "the body must be a JSON object", NULL);
        return;
    }
    if (thr != NULL && (!json_is_number(thr) || json_number_value(thr) < 0 ||
                        json_number_value(thr) > 1)) {
        answer_bad(r, "field \"protect_threshold\" must be a number 0-1",
                   "protect_threshold");
        return;
    }
    if (meta != NULL && !json_is_object(meta)) {
        answer_bad(r, "field \"meta\" must be an object", "meta");
        return;
    }
    r->doc = json_pack("{s:f,s:o}", "protect_threshold",
                       thr != NULL ? json_number_value(thr) : 0.0, "meta",
                       meta != NULL ? json_incref(meta) : json_object());
    char *val = r->doc != NULL ? svc_json_dump(r->doc) : NULL;
    if (val == NULL) {
        answer_err(r, -ENOMEM);
        return;
    }
    /* The same settings again (a GitOps sync) write nothing: no
     * revision, no event, no audit record. Read, compare, then put (a
     * Txn would write on its else branch, which the audit's "took
     * effect" does not count); two writers racing both put, as before. */
    free(r->val);
    r->val = val;
    char key[KEY_MAX];
    size_t kn = key_settings(r, key, sizeof(key));
    range_key(r, key, kn, settings_read);
}

/* GET /api/v1/registry/<ns>: services with instance and healthy counts. */
static void namespace_read(struct svc_req *r, int err, const uint8_t *resp,
                           size_t len)
{
    Etcdserverpb__RangeResponse *g = range_unpack(r, err, resp, len);
    char pfx[KEY_MAX];
    size_t pn = key_prefix(r, pfx, sizeof(pfx));
    json_t *list;
    json_t *cur = NULL;
    if (g == NULL) {
        return;
    }
    list = json_array();
    for (size_t i = 0; list != NULL && i < g->n_kvs; i++) {
        const Mvccpb__KeyValue *kv = g->kvs[i];
        if (kv->key.len <= pn) {
            continue; /* the range holds only keys under the prefix */
        }
        const char *k = (const char *)kv->key.data + pn;
        size_t kn = kv->key.len - pn;
        const char *slash = memchr(k, '/', kn);
        if (slash == NULL) {
            continue;
        }
        size_t sn = (size_t)(slash - k);
        const char *name = json_string_value(json_object_get(cur, "service"));
        if (cur == NULL || strlen(name) != sn || memcmp(name, k, sn) != 0) {
            cur = json_pack("{s:s%,s:i,s:i}", "service", k, sn, "instances", 0,
                            "healthy", 0);
            json_array_append_new(list, cur);
        }
        json_t *d = doc_from_kv(kv);
        if (d == NULL) {
            continue;
        }
        json_object_set_new(
            cur, "instances",
            json_integer(json_integer_value(json_object_get(cur, "instances")) +
                         1));
        if (svc_instance_healthy(d)) {
            json_object_set_new(
                cur, "healthy",
                json_integer(
                    json_integer_value(json_object_get(cur, "healthy")) + 1));
        }
        json_decref(d);
    }
    answer_json(r, 200,
                json_pack("{s:I,s:s,s:o?,s:b}", "revision",
                          (json_int_t)header_rev(g->header), "namespace", r->ns,
                          "services", list, "more", g->more));
    etcdserverpb__range_response__free_unpacked(g, NULL);
}

/* GET /api/v1/registry: the namespaces (keys only). */
static void root_read(struct svc_req *r, int err, const uint8_t *resp,
                      size_t len)
{
    Etcdserverpb__RangeResponse *g = range_unpack(r, err, resp, len);
    size_t pn = strlen(SVC_PREFIX);
    json_t *list;
    const char *last = NULL;
    size_t last_n = 0;
    if (g == NULL) {
        return;
    }
    list = json_array();
    for (size_t i = 0; list != NULL && i < g->n_kvs; i++) {
        if (g->kvs[i]->key.len <= pn) {
            continue;
        }
        const char *k = (const char *)g->kvs[i]->key.data + pn;
        size_t kn = g->kvs[i]->key.len - pn;
        const char *slash = memchr(k, '/', kn);
        if (slash == NULL || json_array_size(list) >= NAMESPACES_MAX) {
            continue;
        }
        size_t nn = (size_t)(slash - k);
        if (last != NULL && nn == last_n && memcmp(last, k, nn) == 0) {
            continue;
        }
        if (!svc_name_ok(k, nn)) {
            continue;
        }
        json_array_append_new(list, json_pack("{s:s%}", "namespace", k, nn));
        last = k;
        last_n = nn;
    }
    answer_json(r, 200,
                json_pack("{s:I,s:o?,s:b}", "revision",
                          (json_int_t)header_rev(g->header), "namespaces", list,
                          "more", g->more));
    etcdserverpb__range_response__free_unpacked(g, NULL);
}

/* Prometheus http_sd: [{"targets":[addr],"labels":{...}}] per instance. */
static void prom_read(struct svc_req *r, int err, const uint8_t *resp,
                      size_t len)
{
    Etcdserverpb__RangeResponse *g = range_unpack(r, err, resp, len);
    json_t *list;
    if (g == NULL) {
        return;
    }
    list = json_array();
    for (size_t i = 0; list != NULL && i < g->n_kvs; i++) {
        json_t *d = doc_from_kv(g->kvs[i]);
        json_t *labels;
        const char *k;
        json_t *v;
        char name[SVC_NAME_MAX + 32];
        if (d == NULL) {
            continue;
        }
        labels =
            json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "__meta_cairn_namespace",
                      json_object_get(d, "namespace"), "__meta_cairn_service",
                      json_object_get(d, "service"), "__meta_cairn_instance",
                      json_object_get(d, "id"), "__meta_cairn_zone",
                      json_object_get(d, "zone"), "__meta_cairn_version",
                      json_object_get(d, "version"), "__meta_cairn_health",
                      json_object_get(d, "health"), "__meta_cairn_status",
                      json_object_get(d, "status"));
        json_object_foreach(json_object_get(d, "labels"), k, v)
        {
            /* Prometheus label names are [a-zA-Z_][a-zA-Z0-9_]* */
            int n = snprintf(name, sizeof(name), "__meta_cairn_label_%s", k);
            for (int j = 0; j < n; j++) {
                if (name[j] == '.' || name[j] == '-') {
                    name[j] = '_';
                }
            }
            json_object_set(labels, name, v);
        }
        json_array_append_new(list, json_pack("{s:[O],s:o?}", "targets",
                                              json_object_get(d, "addr"),
                                              "labels", labels));
        json_decref(d);
    }
    etcdserverpb__range_response__free_unpacked(g, NULL);
    answer_json(r, 200, list);
}

static void range_prefix(struct svc_req *r, bool keys_only, step_fn next)
{
    char pfx[KEY_MAX], end[KEY_MAX];
    size_t pn = key_prefix(r, pfx, sizeof(pfx));
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    prefix_end(pfx, pn, end);
    q.key.data = (uint8_t *)pfx;
    q.key.len = pn;
    q.range_end.data = (uint8_t *)end;
    q.range_end.len = pn;
    q.limit = SVC_LIST_MAX;
    q.keys_only = keys_only;
    call(r, "/etcdserverpb.KV/Range", &q.base, next);
}

/* ------------------------------------------------------------ routing */

bool svc_path_is_ours(const char *path)
{
    return strncmp(path, "/api/v1/sessions", 16) == 0 ||
           strncmp(path, "/api/v1/registry", 16) == 0 ||
           strncmp(path, "/api/v1/sd/", 11) == 0;
}

/* Split path (after its fixed head) into at most 3 names; *n gets the
 * count, *slash whether it ended in a slash. -1 on an empty or bad
 * segment or more than 3. */
static int split(const char *p, char out[3][SVC_NAME_MAX + 1], int *n,
                 int *bad_at, bool *slash)
{
    *n = 0;
    *slash = false;
    if (*p == '\0') {
        return 0;
    }
    if (*p != '/') {
        return -1;
    }
    p++;
    while (*p != '\0') {
        const char *e = strchr(p, '/');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);
        if (e != NULL && e[1] == '\0') {
            e = NULL; /* a trailing slash is allowed (reads only) */
            *slash = true;
        }
        if (*n == 3) {
            return -1;
        }
        if (!svc_name_ok(p, len)) {
            *bad_at = *n;
            return -2;
        }
        memcpy(out[*n], p, len);
        out[*n][len] = '\0';
        (*n)++;
        if (e == NULL) {
            break;
        }
        p = e + 1;
    }
    return 0;
}

static bool meth_is(const char *m, const char *want)
{
    return strcmp(m, want) == 0;
}

static int route_registry(struct svc_req *r, const char *method,
                          const char *rest)
{
    static const char *const what[3] = {"namespace", "service", "instance id"};
    char parts[3][SVC_NAME_MAX + 1];
    int n = 0, bad_at = 0;
    bool slash = false;
    int rc = split(rest, parts, &n, &bad_at, &slash);
    if (rc == -2) {
        char msg[SVC_MSG_MAX];
        snprintf(msg, sizeof(msg),
                 "bad %s in the path: names are 1-128 bytes of "
                 "[A-Za-z0-9._-]",
                 what[bad_at]);
        answer_bad(r, msg, what[bad_at]);
        return 1;
    }
    if (rc != 0) {
        return -1;
    }
    /* A write names its target exactly. lws decodes a %00 after a slash
     * into the path, which then ends at the slash: PUT .../cart/%00 came
     * here as PUT .../cart/ and overwrote the service's settings. */
    if (slash && !meth_is(method, "GET")) {
        answer_error(r, 404, "not_found",
                     "no such API path: a write's path ends in a name, "
                     "not a slash",
                     NULL);
        return 1;
    }
    str_join(r->ns, sizeof(r->ns), n > 0 ? parts[0] : "", NULL);
    str_join(r->svc, sizeof(r->svc), n > 1 ? parts[1] : "", NULL);
    str_join(r->id, sizeof(r->id), n > 2 ? parts[2] : "", NULL);
    static const struct {
        int n;
        const char *m;
        enum route r;
    } t[] = {
        {0, "GET", R_ROOT_GET},     {1, "GET", R_NAMESPACE_GET},
        {2, "GET", R_SERVICE_GET},  {2, "PUT", R_SERVICE_PUT},
        {3, "PUT", R_INSTANCE_PUT}, {3, "PATCH", R_INSTANCE_PATCH},
        {3, "GET", R_INSTANCE_GET}, {3, "DELETE", R_INSTANCE_DELETE},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (t[i].n == n && meth_is(method, t[i].m)) {
            r->route = t[i].r;
            return 0;
        }
    }
    return -2; /* the path is ours, the method is not */
}

static int route_sessions(struct svc_req *r, const char *method,
                          const char *rest)
{
    char id[32];
    const char *e;
    size_t n;
    if (*rest == '\0' || strcmp(rest, "/") == 0) {
        if (!meth_is(method, "POST")) {
            return -2;
        }
        r->route = R_SESSION_CREATE;
        return 0;
    }
    if (*rest != '/') {
        return -1;
    }
    rest++;
    e = strchr(rest, '/');
    n = e != NULL ? (size_t)(e - rest) : strlen(rest);
    if (n >= sizeof(id)) {
        n = sizeof(id) - 1;
    }
    memcpy(id, rest, n);
    id[n] = '\0';
    if (session_parse(id, &r->lease) != 0) {
        answer_bad(r, "the session id in the path must be hex", "session");
        return 1;
    }
    if (e == NULL || strcmp(e, "/") == 0) {
        if (meth_is(method, "GET")) {
            r->route = R_SESSION_GET;
        } else if (meth_is(method, "DELETE")) {
            r->route = R_SESSION_DELETE;
        } else {
            return -2;
        }
        return 0;
    }
    if (strcmp(e, "/keepalive") == 0 || strcmp(e, "/keepalive/") == 0) {
        if (!meth_is(method, "POST") && !meth_is(method, "PUT")) {
            return -2;
        }
        r->route = R_SESSION_KEEPALIVE;
        return 0;
    }
    return -1;
}

static int route_prom(struct svc_req *r, const char *method, const char *rest)
{
    if (strcmp(rest, "prometheus") != 0) {
        return -1;
    }
    if (!meth_is(method, "GET")) {
        return -2;
    }
    if (svc_query_get(r->query, "namespace", r->ns, sizeof(r->ns)) != 0 ||
        !svc_name_ok(r->ns, strlen(r->ns))) {
        answer_bad(r, "parameter \"namespace\" is required (a name)",
                   "namespace");
        return 1;
    }
    int q = svc_query_get(r->query, "service", r->svc, sizeof(r->svc));
    if (q < 0 || (q == 0 && !svc_name_ok(r->svc, strlen(r->svc)))) {
        answer_bad(r, "parameter \"service\" must be a name", "service");
        return 1;
    }
    r->route = R_PROM_SD;
    return 0;
}

static void dispatch(struct svc_req *r)
{
    switch (r->route) {
    case R_SESSION_CREATE:
        session_create(r);
        break;
    case R_SESSION_KEEPALIVE:
        session_keepalive(r);
        break;
    case R_SESSION_GET:
        session_get(r);
        break;
    case R_SESSION_DELETE:
        session_delete(r);
        break;
    case R_INSTANCE_PUT:
        instance_put(r);
        break;
    case R_INSTANCE_PATCH:
        instance_patch(r);
        break;
    case R_INSTANCE_GET: {
        char key[KEY_MAX];
        size_t kn = key_instance(r, key, sizeof(key));
        range_key(r, key, kn, instance_read);
        break;
    }
    case R_INSTANCE_DELETE:
        instance_delete(r);
        break;
    case R_SERVICE_GET:
        service_get(r);
        break;
    case R_SERVICE_PUT:
        service_put(r);
        break;
    case R_NAMESPACE_GET:
        range_prefix(r, false, namespace_read);
        break;
    case R_ROOT_GET:
        range_prefix(r, true, root_read);
        break;
    case R_PROM_SD:
        range_prefix(r, false, prom_read);
        break;
    }
}

/* Routes that read a JSON body. */
static bool wants_body(enum route rt)
{
    return rt == R_SESSION_CREATE || rt == R_INSTANCE_PUT ||
           rt == R_INSTANCE_PATCH || rt == R_SERVICE_PUT;
}

static int body_parse(struct svc_req *r, const char *body, size_t len)
{
    json_error_t je;
    char msg[SVC_MSG_MAX];
    bool blank = true;
    for (size_t i = 0; i < len; i++) {
        if (body[i] != ' ' && body[i] != '\n' && body[i] != '\r' &&
            body[i] != '\t') {
            blank = false;
            break;
        }
    }
    if (blank) {
        r->body = json_object(); /* no body: every field at its default */
        if (r->body == NULL) {
            answer_err(r, -ENOMEM);
            return -ENOMEM;
        }
        return 0;
    }
    r->body = svc_json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (r->body == NULL) {
        snprintf(msg, sizeof(msg), "malformed JSON at line %d, column %d: %s",
                 je.line, je.column, je.text);
        answer_bad(r, msg, NULL);
        return ERR_BAD_REQUEST;
    }
    return 0;
}

void svc_handle(struct server *s, const char *method, const char *path,
                const char *query, const char *body, size_t len,
                const char *token, const char *cert_user, const char *peer,
                struct svc_req **slot, svc_done_fn done, void *ctx)
{
    struct svc_req *r = req_new();
    int rc;
    ASSERT(done != NULL);
    ASSERT(slot != NULL);
    *slot = NULL;
    if (r == NULL) {
        static const char oom[] = "{\"error\":\"out of memory\","
                                  "\"code\":\"internal\","
                                  "\"message\":\"out of memory\"}";
        done(ctx, 503, oom, sizeof(oom) - 1);
        return;
    }
    r->s = s;
    r->done = done;
    r->ctx = ctx;
    r->expect_rev = -1;
    if (token != NULL) {
        str_join(r->token, sizeof(r->token), token, NULL);
    }
    if (cert_user != NULL &&
        strlen(cert_user) < sizeof(r->cert_user)) { /* else no name */
        str_join(r->cert_user, sizeof(r->cert_user), cert_user, NULL);
    }
    if (query != NULL && strlen(query) >= sizeof(r->query)) {
        answer_error(r, 414, "too_large", "the query string is too long", NULL);
        return;
    }
    str_join(r->query, sizeof(r->query), query != NULL ? query : "", NULL);
    if (strncmp(path, "/api/v1/registry", 16) == 0) {
        rc = route_registry(r, method, path + 16);
    } else if (strncmp(path, "/api/v1/sessions", 16) == 0) {
        rc = route_sessions(r, method, path + 16);
    } else if (strncmp(path, "/api/v1/sd/", 11) == 0) {
        rc = route_prom(r, method, path + 11);
    } else {
        rc = -1;
    }
    if (rc == 1) {
        return; /* answered (a bad name) */
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
        return; /* answered */
    }
    /* who writes, for the audit log: the token's user (auth on), else
     * the client certificate's CN (--client-cert-auth, etcd's rule), else
     * anonymous; a bad token fails the inner call itself */
    str_join(r->peer, sizeof(r->peer), peer != NULL ? peer : "", NULL);
    if (api_auth_user_as(s, r->token[0] ? r->token : NULL, r->cert_user,
                         r->user, sizeof(r->user)) != 0 ||
        r->user[0] == '\0') {
        str_join(r->user, sizeof(r->user), "anonymous", NULL);
    }
    /* from here r lives until its answer; *slot follows it */
    r->slot = slot;
    *slot = r;
    dispatch(r);
}

void svc_cancel(struct svc_req *r)
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

int svc_api_metrics(struct server *s, struct buf *out)
{
    char text[2048];
    static const struct {
        const char *name;
        const char *type;
        const char *help;
    } m[] = {
        {"sessions_created_total", "counter", "Registry sessions opened."},
        {"registrations_total", "counter",
         "Instances registered (PUT answered 200)."},
        {"deregistrations_total", "counter",
         "Instances deregistered by DELETE."},
        {"session_expired_total", "counter",
         "Calls answered 410 session_expired."},
        {"discovery_reads_total", "counter", "Service discovery reads."},
        {"subscribers_total", "counter", "Discovery streams opened."},
        {"subscribers", "gauge", "Discovery streams open now."},
        {"push_messages_total", "counter",
         "Discovery stream messages queued (snapshots and events)."},
    };
    const uint64_t v[] = {
        s->svc_ctr.sessions_created, s->svc_ctr.registrations,
        s->svc_ctr.deregistrations,  s->svc_ctr.session_expired,
        s->svc_ctr.discovery_reads,  s->svc_ctr.subscribers_total,
        s->svc_ctr.subscribers_open, s->svc_ctr.push_messages,
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
        int n = snprintf(text, sizeof(text),
                         "# HELP cairn_registry_%s %s\n"
                         "# TYPE cairn_registry_%s %s\n"
                         "cairn_registry_%s %" PRIu64 "\n",
                         m[i].name, m[i].help, m[i].name, m[i].type, m[i].name,
                         v[i]);
        int rc = buf_append(out, text, (size_t)n);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

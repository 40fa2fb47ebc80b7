/*
 * api_auth.c - etcd's Auth service, and who may call what when auth is on.
 *
 * Changes (enable, disable, users, roles, grants) are proposed through Raft
 * as cairnpb.InternalRequest fields 20-30 and applied by consensus/auth on
 * every member. Passwords are hashed here, on libuv's thread pool (bcrypt
 * costs tens of milliseconds), and only the hash enters the log. Reads of
 * the auth state (UserGet/List, RoleGet/List, AuthStatus) are answered from
 * this member's applied state. Authenticate checks the password off the
 * loop and issues a simple token that only this member knows.
 *
 * Checks (api_auth_check) follow etcd 3.4: KV calls need READ/WRITE on
 * every key range they touch (Txn: every compare and every op of both
 * branches, nested txns too; prev_kv needs READ); LeaseRevoke needs WRITE
 * on every key attached to the lease; Compact needs nothing (etcd 3.4
 * lets any user compact: checked against a real etcd); auth administration,
 * membership changes and the maintenance calls that expose or rewrite the whole
 * store need role root; UserGet of oneself and RoleGet of a held role are
 * allowed. A call without a token, with auth on, acts as the empty user
 * ("user name is empty"); a bad or expired token is "invalid auth token".
 * Checks run when the request arrives, before proposing; etcd re-checks at
 * apply against the auth revision, which we do not (see the report).
 */
#include "registry/server/api_auth.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/apply/apply.h"
#include "registry/grpc/grpc.h"
#include "registry/server/api_int.h"
#include "registry/server/auth_jwt.h"

#define USER_CAP      (AUTH_NAME_BYTES_MAX + 1)
#define TXN_DEPTH_MAX 128 /* apply refuses deeper ones anyway */

static struct auth *srv_auth(struct server *s)
{
    return s->node != NULL ? node_apply(s->node)->cfg.auth : NULL;
}

static uint64_t now_ms(void)
{
    return clock_mono_ns() / 1000000u;
}

int api_auth_new(const struct options *o, struct auth **out)
{
    struct auth_config cfg = {
        .bcrypt_cost = (unsigned)o->bcrypt_cost,
        .token_ttl_ms = o->auth_token_ttl_s * 1000u,
    };
    struct auth *a = mem_calloc(1, sizeof(*a));
    int rc;
    if (a == NULL) {
        return -ENOMEM;
    }
    rc = auth_init(a, &cfg);
    if (rc != 0) {
        mem_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void api_auth_free(struct auth *a)
{
    if (a != NULL) {
        auth_close(a);
        mem_free(a);
    }
}

/* ------------------------------------------------------------- tokens */

/* check_rev: false for what etcd checks with IsAdminPermitted (user and
 * role administration, maintenance, membership), which looks at the user
 * and its root role but not at the token's auth revision. */
static int token_user(struct server *s, const char *token, char *user,
                      size_t cap, bool check_rev)
{
    struct auth *a = srv_auth(s);
    user[0] = '\0';
    if (a == NULL || token == NULL || token[0] == '\0' || !auth_enabled(a)) {
        return 0;
    }
    if (s->jwt != NULL) {
        /* etcd's rule for JWTs: a token signed before any change to users,
         * roles or permissions is refused, and the client authenticates
         * again (simple tokens are dropped with the user instead) */
        uint64_t rev = 0;
        int rc = auth_jwt_verify(s->jwt, token, clock_wall_ms() / 1000u, user,
                                 cap, &rev);
        if (rc == 0 && check_rev && rev < auth_revision(a)) {
            user[0] = '\0';
            rc = ERR_AUTH_OLD_REVISION;
        }
        return rc;
    }
    return auth_token_user(a, token, now_ms(), user, cap);
}

int api_auth_user(struct server *s, const char *token, char *user, size_t cap)
{
    return token_user(s, token, user, cap, true);
}

int api_auth_user_as(struct server *s, const char *token, const char *cert_user,
                     char *user, size_t cap)
{
    struct auth *a = srv_auth(s);
    if (token != NULL && token[0] != '\0') {
        return api_auth_user(s, token, user, cap);
    }
    user[0] = '\0';
    if (a == NULL || cert_user == NULL || cert_user[0] == '\0' ||
        !auth_enabled(a)) {
        return 0;
    }
    int n = snprintf(user, cap, "%s", cert_user);
    if (n <= 0 || (size_t)n >= cap) {
        user[0] = '\0';
        return ERR_PERMISSION_DENIED;
    }
    return 0;
}

int api_auth_range_check_as(struct server *s, const char *token,
                            const char *cert_user, const uint8_t *key,
                            size_t key_len, const uint8_t *range_end,
                            size_t range_end_len)
{
    if ((token == NULL || token[0] == '\0') && cert_user != NULL &&
        cert_user[0] != '\0') {
        return api_auth_range_check_user(s, cert_user, key, key_len, range_end,
                                         range_end_len);
    }
    return api_auth_range_check(s, token, key, key_len, range_end,
                                range_end_len);
}

int api_auth_range_check(struct server *s, const char *token,
                         const uint8_t *key, size_t key_len,
                         const uint8_t *range_end, size_t range_end_len)
{
    struct auth *a = srv_auth(s);
    char user[USER_CAP];
    int rc;
    if (a == NULL || !auth_enabled(a)) {
        return 0;
    }
    rc = api_auth_user(s, token, user, sizeof(user));
    if (rc == 0) {
        rc = auth_check(a, user, AUTH_PERM_READ, key, key_len, range_end,
                        range_end_len);
    }
    return rc;
}

int api_auth_range_check_user(struct server *s, const char *user,
                              const uint8_t *key, size_t key_len,
                              const uint8_t *range_end, size_t range_end_len)
{
    struct auth *a = srv_auth(s);
    if (a == NULL || !auth_enabled(a)) {
        return 0;
    }
    if (user[0] == '\0') {
        return ERR_USER_EMPTY;
    }
    if (strlen(user) >= USER_CAP) {
        return ERR_PERMISSION_DENIED;
    }
    return auth_check(a, user, AUTH_PERM_READ, key, key_len, range_end,
                      range_end_len);
}

const char *api_auth_grpc_token(const struct grpc_call *call)
{
    const char *t = grpc_call_metadata(call, "token", NULL);
    return t != NULL ? t : grpc_call_metadata(call, "authorization", NULL);
}

int api_auth_admin(struct server *s, const char *token, const char *cert_user)
{
    struct auth *a = srv_auth(s);
    char user[USER_CAP];
    int rc;
    if (a == NULL || !auth_enabled(a)) {
        return 0;
    }
    if ((token == NULL || token[0] == '\0') && cert_user != NULL &&
        cert_user[0] != '\0') {
        int n = snprintf(user, sizeof(user), "%s", cert_user);
        if (n <= 0 || (size_t)n >= sizeof(user)) {
            return ERR_PERMISSION_DENIED;
        }
    } else {
        rc = api_auth_user(s, token, user, sizeof(user));
        if (rc != 0) {
            return rc;
        }
    }
    return auth_check_admin(a, user);
}

/* ------------------------------------------------------------- checks */

static int check_range(struct auth *a, const char *user,
                       const Etcdserverpb__RangeRequest *r)
{
    return auth_check(a, user, AUTH_PERM_READ, r->key.data, r->key.len,
                      r->range_end.data, r->range_end.len);
}

static int check_put(struct auth *a, const char *user,
                     const Etcdserverpb__PutRequest *r)
{
    int rc =
        auth_check(a, user, AUTH_PERM_WRITE, r->key.data, r->key.len, NULL, 0);
    if (rc == 0 && r->prev_kv) {
        rc = auth_check(a, user, AUTH_PERM_READ, r->key.data, r->key.len, NULL,
                        0);
    }
    return rc;
}

static int check_delete(struct auth *a, const char *user,
                        const Etcdserverpb__DeleteRangeRequest *r)
{
    int rc = auth_check(a, user, AUTH_PERM_WRITE, r->key.data, r->key.len,
                        r->range_end.data, r->range_end.len);
    if (rc == 0 && r->prev_kv) {
        rc = auth_check(a, user, AUTH_PERM_READ, r->key.data, r->key.len,
                        r->range_end.data, r->range_end.len);
    }
    return rc;
}

/* depth is bounded: api_call refused deeper txns before decoding. */
static int check_txn(struct auth *a, const char *user,
                     const Etcdserverpb__TxnRequest *t, int depth)
{
    Etcdserverpb__RequestOp **lists[2] = {t->success, t->failure};
    size_t counts[2] = {t->n_success, t->n_failure};
    int rc = depth > TXN_DEPTH_MAX ? ERR_TOO_MANY_OPS : 0;
    for (size_t i = 0; rc == 0 && i < t->n_compare; i++) {
        const Etcdserverpb__Compare *c = t->compare[i];
        rc = auth_check(a, user, AUTH_PERM_READ, c->key.data, c->key.len,
                        c->range_end.data, c->range_end.len);
    }
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; rc == 0 && i < counts[l]; i++) {
            const Etcdserverpb__RequestOp *o = lists[l][i];
            switch (o->request_case) {
            case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
                rc = check_range(a, user, o->request_range);
                break;
            case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
                rc = check_put(a, user, o->request_put);
                break;
            case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
                rc = check_delete(a, user, o->request_delete_range);
                break;
            case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
                rc = check_txn(a, user, o->request_txn, depth + 1);
                break;
            default:
                break; /* an empty op: the applier refuses it */
            }
        }
    }
    return rc;
}

struct lease_keys_check {
    struct auth *a;
    const char *user;
    int rc;
};

static int lease_key_cb(void *ctx, const uint8_t *key, size_t key_len)
{
    struct lease_keys_check *c = ctx;
    c->rc = auth_check(c->a, c->user, AUTH_PERM_WRITE, key, key_len, NULL, 0);
    return c->rc != 0 ? 1 : 0;
}

static int check_lease_revoke(struct server *s, struct auth *a,
                              const char *user,
                              const Etcdserverpb__LeaseRevokeRequest *r)
{
    struct lease_keys_check c = {.a = a, .user = user};
    struct kv_read *rd;
    int rc;
    if (auth_check_admin(a, user) == 0) {
        return 0; /* root may revoke anything */
    }
    /* no user: refused by the first attached key (auth_check's
     * ERR_USER_EMPTY); a lease without keys is revoked, as etcd 3.4 does */
    rc = node_read_begin(s->node, &rd);
    if (rc != 0) {
        return rc;
    }
    rc = kv_lease_keys(rd, r->id, lease_key_cb, &c);
    node_read_end(s->node, rd);
    if (c.rc != 0) {
        return c.rc;
    }
    return rc == ERR_LEASE_NOT_FOUND ? 0 : rc;
}

struct lease_read_check {
    struct auth *a;
    const char *user;
    int rc;
};

static int lease_read_cb(void *ctx, const uint8_t *key, size_t key_len)
{
    struct lease_read_check *c = ctx;
    c->rc = auth_check(c->a, c->user, AUTH_PERM_READ, key, key_len, NULL, 0);
    return c->rc != 0 ? 1 : 0;
}

/* LeaseTimeToLive with keys: the user must be allowed to read every key
 * attached, or the answer would name keys outside its grants (etcd 3.4.23
 * does not check; 3.4.26 and 3.5.9 do, GHSA-3p4g-rcw5-8298). Without keys
 * nothing is checked, as in etcd. */
static int check_lease_ttl(struct server *s, struct auth *a, const char *user,
                           const Etcdserverpb__LeaseTimeToLiveRequest *r)
{
    struct lease_read_check c = {.a = a, .user = user};
    struct kv_read *rd;
    int rc;
    if (!r->keys || auth_check_admin(a, user) == 0) {
        return 0;
    }
    if (user[0] == '\0') {
        return ERR_USER_EMPTY;
    }
    rc = node_read_begin(s->node, &rd);
    if (rc != 0) {
        return rc;
    }
    rc = kv_lease_keys(rd, r->id, lease_read_cb, &c);
    node_read_end(s->node, rd);
    if (c.rc != 0) {
        return ERR_PERMISSION_DENIED;
    }
    return rc == ERR_LEASE_NOT_FOUND ? 0 : rc;
}

enum rule {
    RULE_NONE,  /* no check, token ignored */
    RULE_TOKEN, /* a token, if given, must be valid */
    RULE_ADMIN, /* role root */
    RULE_KV,    /* by the request's keys */
    RULE_USER_GET,
    RULE_ROLE_GET,
    RULE_LEASE_TTL, /* the attached keys' read permission, if asked */
};

struct rule_row {
    const char *path;
    enum rule rule;
};

static const struct rule_row rules[] = {
    /* a token it carries is checked after the password: authenticate_next */
    {"/etcdserverpb.Auth/Authenticate", RULE_NONE},
    {"/etcdserverpb.Auth/UserGet", RULE_USER_GET},
    {"/etcdserverpb.Auth/RoleGet", RULE_ROLE_GET},
    {"/etcdserverpb.Auth/", RULE_ADMIN}, /* every other Auth RPC */
    {"/etcdserverpb.KV/Range", RULE_KV},
    {"/etcdserverpb.KV/Put", RULE_KV},
    {"/etcdserverpb.KV/DeleteRange", RULE_KV},
    {"/etcdserverpb.KV/Txn", RULE_KV},
    {"/etcdserverpb.KV/Compact", RULE_TOKEN}, /* etcd 3.4: no check */
    {"/etcdserverpb.Lease/LeaseRevoke", RULE_KV},
    /* etcd 3.4 reads leases without looking at the token at all */
    {"/etcdserverpb.Lease/LeaseTimeToLive", RULE_LEASE_TTL},
    {"/etcdserverpb.Lease/LeaseLeases", RULE_NONE},
    {"/etcdserverpb.Lease/LeaseKeepAlive", RULE_NONE},
    {"/etcdserverpb.Lease/", RULE_TOKEN},
    {"/etcdserverpb.Maintenance/Status", RULE_NONE},
    {"/etcdserverpb.Maintenance/Alarm", RULE_TOKEN},
    {"/etcdserverpb.Maintenance/", RULE_ADMIN}, /* Defragment, Hash, ... */
    {"/etcdserverpb.Cluster/MemberList", RULE_NONE},
    {"/etcdserverpb.Cluster/", RULE_ADMIN}, /* membership changes */
    {"/etcdserverpb.Watch/", RULE_TOKEN},   /* ranges: at watch create */
    {"/grpc.health.v1.Health/", RULE_NONE},
    /* the recipes' own KV calls are checked as the caller, and their
     * errors answered as etcd's are (Unknown, the auth error's text) */
    {"/v3lockpb.Lock/", RULE_NONE},
    {"/v3electionpb.Election/", RULE_NONE},
};

static enum rule rule_of(const char *path)
{
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        size_t n = strlen(rules[i].path);
        bool prefix = rules[i].path[n - 1] == '/';
        if (prefix ? strncmp(path, rules[i].path, n) == 0
                   : strcmp(path, rules[i].path) == 0) {
            return rules[i].rule;
        }
    }
    return RULE_TOKEN;
}

static int check_kv(struct server *s, struct auth *a, const char *user,
                    const ProtobufCMessage *req)
{
    const ProtobufCMessageDescriptor *d = req->descriptor;
    if (d == &etcdserverpb__range_request__descriptor) {
        return check_range(a, user, (const Etcdserverpb__RangeRequest *)req);
    }
    if (d == &etcdserverpb__put_request__descriptor) {
        return check_put(a, user, (const Etcdserverpb__PutRequest *)req);
    }
    if (d == &etcdserverpb__delete_range_request__descriptor) {
        return check_delete(a, user,
                            (const Etcdserverpb__DeleteRangeRequest *)req);
    }
    if (d == &etcdserverpb__txn_request__descriptor) {
        return check_txn(a, user, (const Etcdserverpb__TxnRequest *)req, 0);
    }
    if (d == &etcdserverpb__lease_revoke_request__descriptor) {
        return check_lease_revoke(
            s, a, user, (const Etcdserverpb__LeaseRevokeRequest *)req);
    }
    return ERR_PERMISSION_DENIED; /* a KV rule on an unknown message */
}

int api_auth_check(struct api_op *op, const ProtobufCMessage *req)
{
    struct auth *a = srv_auth(op->s);
    enum rule rule;
    char user[USER_CAP];
    int rc;
    /* Auth off (the common case) first: the rule is a walk of a table of
     * paths, a third of the work a put spent here. */
    if (a == NULL || op->token == api_token_internal || !auth_enabled(a)) {
        return 0;
    }
    rule = rule_of(op->m->path);
    if (rule == RULE_NONE ||
        (rule == RULE_LEASE_TTL &&
         !((const Etcdserverpb__LeaseTimeToLiveRequest *)req)->keys)) {
        return 0;
    }
    if (op->token == NULL && op->cert_user != NULL &&
        op->cert_user[0] != '\0') {
        /* etcd's AuthInfoFromTLS: the certificate's CN is the user; one
         * too long to be a user name must not be cut into another's */
        int n = snprintf(user, sizeof(user), "%s", op->cert_user);
        rc = n > 0 && (size_t)n < sizeof(user) ? 0 : ERR_PERMISSION_DENIED;
    } else {
        rc = token_user(op->s, op->token, user, sizeof(user),
                        rule != RULE_ADMIN && rule != RULE_USER_GET &&
                            rule != RULE_ROLE_GET);
    }
    if (rc != 0) {
        return rc;
    }
    switch (rule) {
    case RULE_ADMIN:
        return auth_check_admin(a, user);
    case RULE_KV:
        return check_kv(op->s, a, user, req);
    case RULE_LEASE_TTL:
        return check_lease_ttl(
            op->s, a, user, (const Etcdserverpb__LeaseTimeToLiveRequest *)req);
    case RULE_USER_GET: {
        const Etcdserverpb__AuthUserGetRequest *r =
            (const Etcdserverpb__AuthUserGetRequest *)req;
        rc = auth_check_admin(a, user);
        return rc != 0 && user[0] != '\0' && strcmp(r->name, user) == 0 ? 0
                                                                        : rc;
    }
    case RULE_ROLE_GET: {
        const Etcdserverpb__AuthRoleGetRequest *r =
            (const Etcdserverpb__AuthRoleGetRequest *)req;
        const struct auth_user *u;
        bool has;
        rc = auth_check_admin(a, user);
        if (rc == 0 || user[0] == '\0') {
            return rc;
        }
        u = auth_state_user(auth_lock(a), user);
        has = u != NULL && auth_user_has_role(u, r->role);
        auth_unlock(a);
        return has ? 0 : rc;
    }
    default:
        return 0;
    }
}

/* ------------------------------------------------------------ proposing */

static void on_proposed(void *ctx, const struct apply_result *res)
{
    struct api_op *op = ctx;
    op->async_refs--;
    api__finish(op, res->err, res->resp, res->resp_len);
    api__op_maybe_free(op);
}

/* Propose msg as InternalRequest field `kind` (enum auth_op). */
static int propose(struct api_op *op, enum auth_op kind,
                   const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *p = mem_alloc(len == 0 ? 1 : len);
    int rc;
    if (p == NULL) {
        return -ENOMEM;
    }
    protobuf_c_message_pack(msg, p);
    op->async_refs++;
    rc = node_propose(op->s->node, (enum apply_op)kind, p, len, op->timeout_ms,
                      on_proposed, op);
    if (rc != 0) {
        op->async_refs--;
    }
    mem_free(p);
    return rc;
}

/* --------------------------------------------------- bcrypt off the loop */

enum pw_kind { PW_HASH, PW_VERIFY };

struct pw_job {
    uv_work_t w;
    struct api_op *op;
    enum pw_kind kind;
    unsigned cost;
    int rc;
    char *password;
    char hash[AUTH_HASH_BYTES_MAX];
    char user[USER_CAP];
    void (*next)(struct pw_job *j); /* on the loop, op still wanted */
};

static void pw_work(uv_work_t *w)
{
    struct pw_job *j = w->data;
    if (j->kind == PW_HASH) {
        j->rc =
            auth_password_hash(j->password, j->cost, j->hash, sizeof(j->hash));
    } else {
        j->rc = auth_password_verify(j->password, j->hash);
    }
}

static void pw_job_free(struct pw_job *j)
{
    if (j->password != NULL) {
        memset(j->password, 0, strlen(j->password));
        mem_free(j->password);
    }
    mem_free(j);
}

static void pw_after(uv_work_t *w, int status)
{
    struct pw_job *j = w->data;
    struct api_op *op = j->op;
    op->async_refs--;
    if (status != 0 && j->rc == 0) {
        j->rc = ERR_CANCELED;
    }
    if (!op->canceled && !op->finished) {
        if (j->rc != 0) {
            api__finish(op, j->rc, NULL, 0);
        } else {
            j->next(j);
        }
    }
    pw_job_free(j);
    api__op_maybe_free(op);
}

static int pw_start(struct api_op *op, enum pw_kind kind, const char *password,
                    const char *hash, const char *user,
                    void (*next)(struct pw_job *j))
{
    struct pw_job *j = mem_calloc(1, sizeof(*j));
    int rc;
    if (j == NULL) {
        return -ENOMEM;
    }
    j->password = mem_dup(password, strlen(password) + 1);
    if (j->password == NULL) {
        mem_free(j);
        return -ENOMEM;
    }
    j->op = op;
    j->kind = kind;
    j->cost = (unsigned)op->s->opt->bcrypt_cost;
    j->next = next;
    j->w.data = j;
    snprintf(j->hash, sizeof(j->hash), "%s", hash != NULL ? hash : "");
    snprintf(j->user, sizeof(j->user), "%s", user != NULL ? user : "");
    op->async_refs++;
    rc = uv_queue_work(op->s->loop, &j->w, pw_work, pw_after);
    if (rc != 0) {
        op->async_refs--;
        pw_job_free(j);
        return rc;
    }
    return 0;
}

/* ----------------------------------------------------------- the RPCs */

static int auth_enable_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, AUTH_OP_ENABLE, req);
}

static int auth_disable_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, AUTH_OP_DISABLE, req);
}

static int auth_status_fn(struct api_op *op, const ProtobufCMessage *req)
{
    Etcdserverpb__AuthStatusResponse m =
        ETCDSERVERPB__AUTH_STATUS_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct auth *a = srv_auth(op->s);
    const struct auth_state *st;
    (void)req;
    if (a == NULL) {
        return ERR_AUTH_NOT_ENABLED;
    }
    st = auth_lock(a);
    m.enabled = st->enabled;
    m.authrevision = st->revision;
    auth_unlock(a);
    api__fill_header(op->s, &h, kv_rev(node_kv(op->s->node)));
    m.header = &h;
    api__finish_msg(op, &m.base);
    return 0;
}

static void authenticate_next(struct pw_job *j)
{
    Etcdserverpb__AuthenticateResponse m =
        ETCDSERVERPB__AUTHENTICATE_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    char token[AUTH_JWT_TOKEN_MAX];
    char caller[USER_CAP];
    struct server *s = j->op->s;
    struct auth *a = srv_auth(s);
    /* etcd 3.4 checks the password first, then (proposing the new token)
     * the token the request carries: a wrong password says so, a right one
     * under an invalid token is ERR_INVALID_AUTH_TOKEN */
    int rc = a == NULL ? ERR_AUTH_NOT_ENABLED
                       : api_auth_user(s, j->op->token, caller, sizeof(caller));
    if (rc == 0) {
        rc = s->jwt != NULL
                 ? auth_jwt_sign(s->jwt, j->user, auth_revision(a),
                                 clock_wall_ms() / 1000u, token, sizeof(token))
                 : auth_token_new(a, j->user, now_ms(), token, sizeof(token));
    }
    if (rc != 0) {
        api__finish(j->op, rc, NULL, 0);
        return;
    }
    api__fill_header(j->op->s, &h, kv_rev(node_kv(j->op->s->node)));
    m.header = &h;
    m.token = token;
    api__finish_msg(j->op, &m.base);
}

static int authenticate_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__AuthenticateRequest *r =
        (const Etcdserverpb__AuthenticateRequest *)req;
    struct auth *a = srv_auth(op->s);
    char hash[AUTH_HASH_BYTES_MAX];
    int rc;
    if (a == NULL) {
        return ERR_AUTH_NOT_ENABLED;
    }
    rc = auth_user_hash(a, r->name, hash, sizeof(hash));
    if (rc != 0) {
        return rc;
    }
    return pw_start(op, PW_VERIFY, r->password, hash, r->name,
                    authenticate_next);
}

static void user_add_next(struct pw_job *j)
{
    Etcdserverpb__AuthUserAddRequest q =
        *(const Etcdserverpb__AuthUserAddRequest *)j->op->owned;
    int rc;
    q.password = (char *)"";
    q.hashedpassword = j->hash;
    rc = propose(j->op, AUTH_OP_USER_ADD, &q.base);
    if (rc != 0) {
        api__finish(j->op, rc, NULL, 0);
    }
}

static int user_add_fn(struct api_op *op, const ProtobufCMessage *req)
{
    Etcdserverpb__AuthUserAddRequest *r =
        (Etcdserverpb__AuthUserAddRequest *)req;
    struct auth *a = srv_auth(op->s);
    bool nopw = r->options != NULL && r->options->no_password;
    bool exists;
    if (r->name[0] == '\0') {
        return ERR_USER_EMPTY;
    }
    if (a == NULL) {
        return ERR_AUTH_NOT_ENABLED;
    }
    /* Fail fast before paying for bcrypt; the applier checks again. */
    exists = auth_state_user(auth_lock(a), r->name) != NULL;
    auth_unlock(a);
    if (exists) {
        return ERR_USER_ALREADY_EXIST;
    }
    if (nopw || r->hashedpassword[0] != '\0') {
        Etcdserverpb__AuthUserAddRequest q = *r;
        q.password = (char *)"";
        return propose(op, AUTH_OP_USER_ADD, &q.base);
    }
    return pw_start(op, PW_HASH, r->password, NULL, NULL, user_add_next);
}

static void user_passwd_next(struct pw_job *j)
{
    Etcdserverpb__AuthUserChangePasswordRequest q =
        *(const Etcdserverpb__AuthUserChangePasswordRequest *)j->op->owned;
    int rc;
    q.password = (char *)"";
    q.hashedpassword = j->hash;
    rc = propose(j->op, AUTH_OP_USER_CHANGE_PASSWORD, &q.base);
    if (rc != 0) {
        api__finish(j->op, rc, NULL, 0);
    }
}

static int user_passwd_fn(struct api_op *op, const ProtobufCMessage *req)
{
    Etcdserverpb__AuthUserChangePasswordRequest *r =
        (Etcdserverpb__AuthUserChangePasswordRequest *)req;
    struct auth *a = srv_auth(op->s);
    bool exists;
    if (a == NULL) {
        return ERR_AUTH_NOT_ENABLED;
    }
    exists = auth_state_user(auth_lock(a), r->name) != NULL;
    auth_unlock(a);
    if (!exists) {
        return ERR_USER_NOT_FOUND;
    }
    if (r->hashedpassword[0] != '\0') {
        Etcdserverpb__AuthUserChangePasswordRequest q = *r;
        q.password = (char *)"";
        return propose(op, AUTH_OP_USER_CHANGE_PASSWORD, &q.base);
    }
    return pw_start(op, PW_HASH, r->password, NULL, NULL, user_passwd_next);
}

static int user_delete_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, AUTH_OP_USER_DELETE, req);
}

static int user_grant_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, AUTH_OP_USER_GRANT_ROLE, req);
}

static int user_revoke_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, AUTH_OP_USER_REVOKE_ROLE, req);
}

static int role_add_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, AUTH_OP_ROLE_ADD, req);
}

static int role_delete_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, AUTH_OP_ROLE_DELETE, req);
}

static int role_grant_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, AUTH_OP_ROLE_GRANT_PERMISSION, req);
}

static int role_revoke_fn(struct api_op *op, const ProtobufCMessage *req)
{
    return propose(op, AUTH_OP_ROLE_REVOKE_PERMISSION, req);
}

static int user_get_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__AuthUserGetRequest *r =
        (const Etcdserverpb__AuthUserGetRequest *)req;
    Etcdserverpb__AuthUserGetResponse m =
        ETCDSERVERPB__AUTH_USER_GET_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct auth *a = srv_auth(op->s);
    const struct auth_user *u;
    if (a == NULL) {
        return ERR_USER_NOT_FOUND;
    }
    api__fill_header(op->s, &h, kv_rev(node_kv(op->s->node)));
    m.header = &h;
    u = auth_state_user(auth_lock(a), r->name);
    if (u != NULL) {
        m.roles = u->roles; /* borrowed under the lock while packing */
        m.n_roles = u->roles_count;
        api__finish_msg(op, &m.base);
    }
    auth_unlock(a);
    return u != NULL ? 0 : ERR_USER_NOT_FOUND;
}

static int user_list_fn(struct api_op *op, const ProtobufCMessage *req)
{
    Etcdserverpb__AuthUserListResponse m =
        ETCDSERVERPB__AUTH_USER_LIST_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct auth *a = srv_auth(op->s);
    const struct auth_state *st;
    char **names = NULL;
    int rc = 0;
    (void)req;
    if (a == NULL) {
        return ERR_AUTH_NOT_ENABLED;
    }
    api__fill_header(op->s, &h, kv_rev(node_kv(op->s->node)));
    m.header = &h;
    st = auth_lock(a);
    if (st->users_count > 0) {
        names = mem_alloc(st->users_count * sizeof(char *));
        rc = names == NULL ? -ENOMEM : 0;
    }
    for (size_t i = 0; rc == 0 && i < st->users_count; i++) {
        names[i] = st->users[i]->name;
    }
    if (rc == 0) {
        m.users = names;
        m.n_users = st->users_count;
        api__finish_msg(op, &m.base);
    }
    auth_unlock(a);
    mem_free(names);
    return rc;
}

static int role_list_fn(struct api_op *op, const ProtobufCMessage *req)
{
    Etcdserverpb__AuthRoleListResponse m =
        ETCDSERVERPB__AUTH_ROLE_LIST_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct auth *a = srv_auth(op->s);
    const struct auth_state *st;
    char **names = NULL;
    int rc = 0;
    (void)req;
    if (a == NULL) {
        return ERR_AUTH_NOT_ENABLED;
    }
    api__fill_header(op->s, &h, kv_rev(node_kv(op->s->node)));
    m.header = &h;
    st = auth_lock(a);
    if (st->roles_count > 0) {
        names = mem_alloc(st->roles_count * sizeof(char *));
        rc = names == NULL ? -ENOMEM : 0;
    }
    for (size_t i = 0; rc == 0 && i < st->roles_count; i++) {
        names[i] = st->roles[i]->name;
    }
    if (rc == 0) {
        m.roles = names;
        m.n_roles = st->roles_count;
        api__finish_msg(op, &m.base);
    }
    auth_unlock(a);
    mem_free(names);
    return rc;
}

static int role_get_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__AuthRoleGetRequest *r =
        (const Etcdserverpb__AuthRoleGetRequest *)req;
    Etcdserverpb__AuthRoleGetResponse m =
        ETCDSERVERPB__AUTH_ROLE_GET_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct auth *a = srv_auth(op->s);
    const struct auth_role *role;
    Authpb__Permission *pv = NULL;
    Authpb__Permission **pp = NULL;
    int rc = 0;
    if (a == NULL) {
        return ERR_ROLE_NOT_FOUND;
    }
    api__fill_header(op->s, &h, kv_rev(node_kv(op->s->node)));
    m.header = &h;
    role = auth_state_role(auth_lock(a), r->role);
    if (role == NULL) {
        rc = ERR_ROLE_NOT_FOUND;
    } else if (role->perms_count > 0) {
        pv = mem_calloc(role->perms_count, sizeof(*pv));
        pp = mem_calloc(role->perms_count, sizeof(*pp));
        rc = pv == NULL || pp == NULL ? -ENOMEM : 0;
    }
    for (size_t i = 0; rc == 0 && i < role->perms_count; i++) {
        authpb__permission__init(&pv[i]);
        pv[i].permtype = (Authpb__Permission__Type)role->perms[i].type;
        pv[i].key.data = role->perms[i].key;
        pv[i].key.len = role->perms[i].key_len;
        pv[i].range_end.data = role->perms[i].end;
        pv[i].range_end.len = role->perms[i].end_len;
        pp[i] = &pv[i];
    }
    if (rc == 0) {
        m.perm = pp;
        m.n_perm = role->perms_count;
        api__finish_msg(op, &m.base);
    }
    auth_unlock(a);
    mem_free(pv);
    mem_free(pp);
    return rc;
}

/* ----------------------------------------------------------------- table */

#define M(path, gw, req, resp, fn)                                             \
    {                                                                          \
        path, gw, &req##__descriptor, &resp##__descriptor, false, fn           \
    }
#define P "/etcdserverpb.Auth/"

const struct api_method api_auth_methods[] = {
    M(P "AuthEnable", "/v3/auth/enable", etcdserverpb__auth_enable_request,
      etcdserverpb__auth_enable_response, auth_enable_fn),
    M(P "AuthDisable", "/v3/auth/disable", etcdserverpb__auth_disable_request,
      etcdserverpb__auth_disable_response, auth_disable_fn),
    M(P "AuthStatus", "/v3/auth/status", etcdserverpb__auth_status_request,
      etcdserverpb__auth_status_response, auth_status_fn),
    M(P "Authenticate", "/v3/auth/authenticate",
      etcdserverpb__authenticate_request, etcdserverpb__authenticate_response,
      authenticate_fn),
    M(P "UserAdd", "/v3/auth/user/add", etcdserverpb__auth_user_add_request,
      etcdserverpb__auth_user_add_response, user_add_fn),
    M(P "UserGet", "/v3/auth/user/get", etcdserverpb__auth_user_get_request,
      etcdserverpb__auth_user_get_response, user_get_fn),
    M(P "UserList", "/v3/auth/user/list", etcdserverpb__auth_user_list_request,
      etcdserverpb__auth_user_list_response, user_list_fn),
    M(P "UserDelete", "/v3/auth/user/delete",
      etcdserverpb__auth_user_delete_request,
      etcdserverpb__auth_user_delete_response, user_delete_fn),
    M(P "UserChangePassword", "/v3/auth/user/changepw",
      etcdserverpb__auth_user_change_password_request,
      etcdserverpb__auth_user_change_password_response, user_passwd_fn),
    M(P "UserGrantRole", "/v3/auth/user/grant",
      etcdserverpb__auth_user_grant_role_request,
      etcdserverpb__auth_user_grant_role_response, user_grant_fn),
    M(P "UserRevokeRole", "/v3/auth/user/revoke",
      etcdserverpb__auth_user_revoke_role_request,
      etcdserverpb__auth_user_revoke_role_response, user_revoke_fn),
    M(P "RoleAdd", "/v3/auth/role/add", etcdserverpb__auth_role_add_request,
      etcdserverpb__auth_role_add_response, role_add_fn),
    M(P "RoleGet", "/v3/auth/role/get", etcdserverpb__auth_role_get_request,
      etcdserverpb__auth_role_get_response, role_get_fn),
    M(P "RoleList", "/v3/auth/role/list", etcdserverpb__auth_role_list_request,
      etcdserverpb__auth_role_list_response, role_list_fn),
    M(P "RoleDelete", "/v3/auth/role/delete",
      etcdserverpb__auth_role_delete_request,
      etcdserverpb__auth_role_delete_response, role_delete_fn),
    M(P "RoleGrantPermission", "/v3/auth/role/grant",
      etcdserverpb__auth_role_grant_permission_request,
      etcdserverpb__auth_role_grant_permission_response, role_grant_fn),
    M(P "RoleRevokePermission", "/v3/auth/role/revoke",
      etcdserverpb__auth_role_revoke_permission_request,
      etcdserverpb__auth_role_revoke_permission_response, role_revoke_fn),
};

const size_t api_auth_methods_count =
    sizeof(api_auth_methods) / sizeof(api_auth_methods[0]);

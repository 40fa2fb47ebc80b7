/*
 * api_lock.c - etcd's Lock and Election services, run inside the member as
 * etcd runs them (its v3lock and v3election servers drive the clientv3
 * concurrency recipes through an in-process client; etcd-api.md 1.3 and 7
 * item 18). Every step is one of the calls the KV API makes: proposals
 * (node_propose with etcd requests), linearizable reads (node_read_index,
 * then a store read handle) and watchers on the watch hub.
 *
 * Lock(name, lease), happy path:
 *   1. lease 0: grant a lease of 60 s first (etcd's session default; the
 *      lease is then the caller's, never kept alive by us).
 *   2. key = name + "/" + lease in hex. Txn: if create_revision(key) == 0
 *      then put key (value "", the lease) and range the name's oldest key;
 *      else range key and the oldest key. Our revision is the txn's (or the
 *      key's create_revision: the same lease locks again).
 *   3. Oldest key is ours (or none): answered with the txn's header.
 *   4. Otherwise wait: at a linearizable read point take the newest key of
 *      the name created before ours (max_create_revision = ours - 1, sort
 *      CREATE descending, limit 1); watch it for its deletion from the next
 *      revision; on the delete read again. None left: read our own key in
 *      the same handle; gone means the lease died while we waited: "mutex:
 *      session is expired" (etcd 3.5; 3.4.23 answered success), else the
 *      answer carries that read's header.
 * Campaign is the same with the value in the put, no owner range in the
 * txn, a Proclaim when the key existed with another value, and the answer
 * carries the first txn's header and LeaderKey{name, key, rev, lease}.
 * Proclaim and Resign are one Txn guarded by create_revision == rev;
 * Leader is one linearizable read; Unlock one DeleteRange.
 * Observe: read the oldest key; none: watch the prefix for the first put
 * (header revision = its mod_revision); send {header, kv}; then watch that
 * key from the next revision: each put is sent, the delete starts over.
 *
 * Failure modes. A waiting call ends when its client cancels (api_cancel
 * sets op->canceled; a poll every POLL_MS notices it, since cancels are not
 * pushed to us), when its deadline (op->timeout_ms) passes (gRPC
 * DEADLINE_EXCEEDED), or at server stop ("server stopped"). A Lock that
 * fails after its key was created deletes the key, as etcd's Mutex does;
 * a Campaign does so when canceled or timed out, or when its Proclaim lost
 * (etcd's Resign). Those deletes are guarded by create_revision, so a key
 * that was re-created meanwhile survives. A watcher cancelled by compaction
 * makes the call read again; one the hub refused (limits) ends it with
 * RESOURCE_EXHAUSTED. Observe never blocks the hub: when the connection
 * has no room it keeps only the newest unsent response (etcd documents
 * that Observe may skip intermediate values, never the latest).
 *
 * Permissions (auth on): each inner request is checked as the caller's
 * token, through api_auth_check with the KV method it stands for; the
 * range reads of the name are checked once at the start.
 */
#include "registry/server/api_lock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/apply/apply.h"
#include "consensus/watch/watch.h"
#include "proto/kv.pb-c.h"
#include "proto/rpc.pb-c.h"
#include "proto/v3election.pb-c.h"
#include "proto/v3lock.pb-c.h"
#include "registry/server/api_auth.h"
#include "registry/server/api_int.h"

#define SESSION_TTL_S 60 /* etcd's concurrency.defaultSessionTTL */
#define POLL_MS       100
#define LEASE_HEX_MAX 18 /* "-" + 16 hex digits + NUL */

enum rkind {
    RK_LOCK,
    RK_UNLOCK,
    RK_CAMPAIGN,
    RK_PROCLAIM,
    RK_LEADER,
    RK_RESIGN,
    RK_OBSERVE,
};

enum rstep {
    ST_START,
    ST_GRANT,    /* lease grant in flight */
    ST_ACQUIRE,  /* the create txn in flight */
    ST_PROCLAIM, /* the proclaim txn in flight */
    ST_DELETE,   /* Unlock's delete or Resign's txn in flight */
    ST_READ,     /* a read point in flight */
    ST_WAIT,     /* a watcher on the hub */
    ST_DONE,     /* answered; freed once no callback is due */
};

/* How a wait ended, noted in the hub's callback and acted on later (the
 * hub must not be called from its own callback). */
enum wend {
    WE_NONE,
    WE_GONE,   /* the watched key was deleted: read again */
    WE_RETRY,  /* the watcher was compacted away: read again */
    WE_SWITCH, /* Observe saw the first put: watch that key */
    WE_FAILED, /* end the call with wend_err */
};

struct lock_svc {
    struct server *s;
    struct rcall *calls;
    size_t count;
    uv_timer_t poll;
    uv_idle_t defer;
    int handles;
    bool stopping;
};

struct rcall {
    struct lock_svc *svc;
    struct rcall *prev, *next;
    enum rkind kind;
    enum rstep step;
    struct api_op *op;      /* unary kinds */
    struct grpc_call *call; /* Observe; NULL once the client left */
    bool busy;              /* a node callback is due */
    bool cleanup_always;    /* Campaign: a failure now resigns */
    bool own_key;           /* key may be ours: delete it on failure */
    uint8_t *pfx;           /* name + "/", then its range end */
    size_t pfx_len;
    uint8_t *key; /* our key, or the observed leader's */
    size_t key_len;
    ProtobufCBinaryData value; /* borrowed from the request */
    int64_t lease;
    int64_t my_rev;
    int64_t hdr_rev;
    uint64_t deadline_ms; /* uv_now() time; 0: none */
    struct watch_stream *st;
    enum wend wend;
    int wend_err;
    int64_t switch_rev;
    struct buf out; /* Observe: the newest response not yet sent */
    bool blocked;
};

/* ------------------------------------------------------------- helpers */

static void *pb_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return mem_alloc(size);
}

static void pb_free(void *ctx, void *p)
{
    (void)ctx;
    mem_free(p);
}

static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

static const uint8_t *pfx_end(const struct rcall *r)
{
    return r->pfx + r->pfx_len;
}

/* Errors of the inner KV requests that etcd's in-process client turns
 * into gRPC Unknown with the same text. */
static int inner_err(int err)
{
    switch (err) {
    case ERR_LEASE_NOT_FOUND:
        return ERR_RECIPE_LEASE_NOT_FOUND;
    case ERR_KEY_NOT_PROVIDED:
        return ERR_RECIPE_KEY_NOT_PROVIDED;
    case ERR_PERMISSION_DENIED:
        return ERR_RECIPE_PERMISSION_DENIED;
    case ERR_USER_EMPTY:
        return ERR_RECIPE_USER_EMPTY;
    case ERR_INVALID_AUTH_TOKEN:
        return ERR_RECIPE_INVALID_AUTH_TOKEN;
    default:
        return err;
    }
}

static const char *rtoken(const struct rcall *r)
{
    if (r->op != NULL) {
        return r->op->token;
    }
    if (r->call == NULL) {
        return NULL;
    }
    const char *t = grpc_call_metadata(r->call, "token", NULL);
    return t != NULL ? t : grpc_call_metadata(r->call, "authorization", NULL);
}

/* The caller's verified certificate CN under --client-cert-auth, or NULL:
 * the user when it sent no token, as for every other call. */
static const char *rcert(const struct rcall *r)
{
    if (r->op != NULL) {
        return r->op->cert_user;
    }
    if (r->call == NULL || !r->svc->s->opt->client_tls.client_cert_auth) {
        return NULL;
    }
    return grpc_call_identity(r->call);
}

/* May the caller (its token, else its certificate's CN) run msg as the KV
 * method at path? */
static int inner_auth(const struct rcall *r, const char *path,
                      const ProtobufCMessage *msg)
{
    struct api_op tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.s = r->svc->s;
    tmp.m = api_find(path);
    tmp.token = rtoken(r);
    tmp.cert_user = rcert(r);
    ASSERT(tmp.m != NULL);
    return inner_err(api_auth_check(&tmp, msg));
}

static int range_auth(struct rcall *r)
{
    Etcdserverpb__RangeRequest q = ETCDSERVERPB__RANGE_REQUEST__INIT;
    q.key.data = r->pfx;
    q.key.len = r->pfx_len;
    q.range_end.data = (uint8_t *)pfx_end(r);
    q.range_end.len = r->pfx_len;
    return inner_auth(r, "/etcdserverpb.KV/Range", &q.base);
}

/* Time left before the caller's deadline, for the node's own timeouts;
 * 0 (the node's default) when the caller set none. */
static uint32_t remaining_ms(const struct rcall *r)
{
    uint64_t now = uv_now(r->svc->s->loop);
    if (r->deadline_ms == 0) {
        return 0;
    }
    return r->deadline_ms > now ? (uint32_t)(r->deadline_ms - now) : 1;
}

/* 0 while the call should go on, else the error it ends with. */
static int gone(const struct rcall *r)
{
    if (r->svc->stopping) {
        return ERR_STOPPED;
    }
    if (r->op != NULL) {
        if (r->op->canceled) {
            return ERR_CANCELED;
        }
        if (r->deadline_ms != 0 && uv_now(r->svc->s->loop) >= r->deadline_ms) {
            return -ETIMEDOUT;
        }
        return 0;
    }
    return r->call == NULL ? ERR_CANCELED : 0;
}

/* --------------------------------------------------- service and calls */

static void svc_maybe_free(struct lock_svc *svc)
{
    if (svc->stopping && svc->handles == 0 && svc->count == 0) {
        mem_free(svc);
    }
}

static void svc_handle_closed(uv_handle_t *h)
{
    struct lock_svc *svc = h->data;
    svc->handles--;
    svc_maybe_free(svc);
}

static struct lock_svc *svc_get(struct server *s)
{
    void **slot = api_watch__lock_slot(s);
    struct lock_svc *svc;
    if (slot == NULL || s->stopping) {
        return NULL;
    }
    if (*slot != NULL) {
        return *slot;
    }
    svc = mem_calloc(1, sizeof(*svc));
    if (svc == NULL) {
        return NULL;
    }
    svc->s = s;
    uv_timer_init(s->loop, &svc->poll);
    uv_idle_init(s->loop, &svc->defer);
    svc->poll.data = svc;
    svc->defer.data = svc;
    svc->handles = 2;
    *slot = svc;
    return svc;
}

static void sweep(struct lock_svc *svc);

static void on_poll(uv_timer_t *t)
{
    sweep(t->data);
}

static void on_defer(uv_idle_t *h)
{
    struct lock_svc *svc = h->data;
    uv_idle_stop(h);
    sweep(svc);
}

static void poll_start(struct lock_svc *svc)
{
    if (!svc->stopping && !uv_is_active((uv_handle_t *)&svc->poll)) {
        uv_timer_start(&svc->poll, on_poll, POLL_MS, POLL_MS);
    }
}

static void defer_start(struct lock_svc *svc)
{
    if (!svc->stopping) {
        uv_idle_start(&svc->defer, on_defer);
    }
}

static struct rcall *rcall_new(struct lock_svc *svc, enum rkind kind,
                               const ProtobufCBinaryData *name)
{
    struct rcall *r;
    if (svc->count >= API_LOCK_CALLS_MAX) {
        return NULL;
    }
    r = mem_calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    /* name + "/" and its range end: the same bytes with '/' + 1 last */
    r->pfx_len = name->len + 1;
    r->pfx = mem_alloc(2 * r->pfx_len);
    if (r->pfx == NULL) {
        mem_free(r);
        return NULL;
    }
    if (name->len > 0) {
        memcpy(r->pfx, name->data, name->len);
        memcpy(r->pfx + r->pfx_len, name->data, name->len);
    }
    r->pfx[name->len] = '/';
    r->pfx[r->pfx_len + name->len] = '/' + 1;
    r->svc = svc;
    r->kind = kind;
    r->step = ST_START;
    buf_init(&r->out, (size_t)svc->s->limits.v[LIMIT_REQUEST_BYTES] * 2 +
                          (size_t)64 * 1024);
    r->next = svc->calls;
    if (svc->calls != NULL) {
        svc->calls->prev = r;
    }
    svc->calls = r;
    svc->count++;
    return r;
}

static void close_stream(struct rcall *r)
{
    if (r->st != NULL) {
        watch_stream_close(r->st);
        r->st = NULL;
    }
}

static void rcall_free(struct rcall *r)
{
    struct lock_svc *svc = r->svc;
    struct api_op *op = r->op;
    ASSERT(!r->busy);
    ASSERT(r->st == NULL);
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        svc->calls = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    svc->count--;
    if (r->call != NULL) {
        grpc_call_set_data(r->call, NULL);
    }
    buf_free(&r->out);
    mem_free(r->pfx);
    mem_free(r->key);
    mem_free(r);
    if (op != NULL) {
        op->async_refs--;
        api__op_maybe_free(op);
    }
    svc_maybe_free(svc);
}

/* Answer the client (err, or the packed response bytes) and free r unless
 * a node callback is still due. Not from inside a hub callback. */
static void answer(struct rcall *r, int err, const uint8_t *resp, size_t len)
{
    if (r->step == ST_DONE) {
        return;
    }
    r->step = ST_DONE;
    close_stream(r);
    if (r->op != NULL) {
        api__finish(r->op, err, resp, len);
    } else if (r->call != NULL) {
        struct grpc_call *call = r->call;
        r->call = NULL;
        grpc_call_set_data(call, NULL);
        if (err == 0) {
            grpc_call_finish(call, GRPC_OK, NULL);
        } else {
            grpc_call_finish_err(call, err);
        }
    }
    if (!r->busy) {
        rcall_free(r);
    }
}

static void answer_msg(struct rcall *r, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *p = mem_alloc(len == 0 ? 1 : len);
    if (p == NULL) {
        answer(r, -ENOMEM, NULL, 0);
        return;
    }
    protobuf_c_message_pack(msg, p);
    answer(r, 0, p, len);
    mem_free(p);
}

/* Unlock, Resign and Proclaim answer a header alone. */
static void answer_header(struct rcall *r)
{
    V3lockpb__UnlockResponse u = V3LOCKPB__UNLOCK_RESPONSE__INIT;
    V3electionpb__ResignResponse rs = V3ELECTIONPB__RESIGN_RESPONSE__INIT;
    V3electionpb__ProclaimResponse p = V3ELECTIONPB__PROCLAIM_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    api__fill_header(r->svc->s, &h, r->hdr_rev);
    u.header = &h;
    rs.header = &h;
    p.header = &h;
    switch (r->kind) {
    case RK_UNLOCK:
        answer_msg(r, &u.base);
        break;
    case RK_RESIGN:
        answer_msg(r, &rs.base);
        break;
    default:
        ASSERT(r->kind == RK_PROCLAIM);
        answer_msg(r, &p.base);
        break;
    }
}

static void cleanup_done(void *ctx, const struct apply_result *res)
{
    (void)ctx;
    if (res->err != 0 && res->err != ERR_STOPPED) {
        LOGW("lock", "deleting an abandoned recipe key failed: %s",
             err_str(res->err));
    }
}

/* Delete our key if it is still the one we created (etcd's Mutex.Unlock
 * and Election.Resign after a failed wait). Nobody waits for the answer. */
static void delete_own_key(struct rcall *r)
{
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__DeleteRangeRequest del =
        ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *ops[1] = {&op};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    uint8_t p[1024];
    size_t len;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
    cmp.key.data = r->key;
    cmp.key.len = r->key_len;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    cmp.create_revision = r->my_rev;
    del.key = cmp.key;
    op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
    op.request_delete_range = &del;
    t.n_compare = 1;
    t.compare = cmps;
    t.n_success = 1;
    t.success = ops;
    len = protobuf_c_message_get_packed_size(&t.base);
    r->own_key = false;
    if (len > sizeof(p)) {
        return; /* keys are at most LIMIT_KEY_BYTES (511) */
    }
    protobuf_c_message_pack(&t.base, p);
    if (node_propose(r->svc->s->node, APPLY_TXN, p, len, 0, cleanup_done,
                     NULL) != 0) {
        LOGW("lock", "could not delete an abandoned recipe key");
    }
}

/* End the call with err, deleting our key first where etcd would. */
static void fail(struct rcall *r, int err)
{
    ASSERT(err != 0);
    if (r->own_key && err != ERR_STOPPED &&
        (r->kind == RK_LOCK || r->cleanup_always || err == ERR_CANCELED ||
         err == -ETIMEDOUT)) {
        delete_own_key(r);
    }
    answer(r, err, NULL, 0);
}

/* ---------------------------------------------------------- proposals */

static void on_proposed(void *ctx, const struct apply_result *res);

static int propose(struct rcall *r, enum rstep step, enum apply_op kind,
                   const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t stack[2048];
    uint8_t *p = len <= sizeof(stack) ? stack : mem_alloc(len);
    int rc;
    ASSERT(!r->busy);
    if (p == NULL) {
        return -ENOMEM;
    }
    protobuf_c_message_pack(msg, p);
    /* set before the call: a callback may come before it returns */
    r->busy = true;
    r->step = step;
    rc = node_propose(r->svc->s->node, kind, p, len, remaining_ms(r),
                      on_proposed, r);
    if (rc != 0) {
        r->busy = false;
        r->step = ST_START;
    }
    if (p != stack) {
        mem_free(p);
    }
    return rc;
}

static int grant(struct rcall *r)
{
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    struct server *s = r->svc->s;
    int rc;
    g.ttl = SESSION_TTL_S;
    g.id = api_lease_id_pick(s); /* as LeaseGrant with ID 0 */
    rc = inner_auth(r, "/etcdserverpb.Lease/LeaseGrant", &g.base);
    return rc != 0 ? rc : propose(r, ST_GRANT, APPLY_LEASE_GRANT, &g.base);
}

/* Lock and Campaign: create our key unless it exists (etcd's tryAcquire). */
static int acquire(struct rcall *r)
{
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__RangeRequest get = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RangeRequest owner = ETCDSERVERPB__RANGE_REQUEST__INIT;
    Etcdserverpb__RequestOp ops[3];
    Etcdserverpb__RequestOp *succ[2] = {&ops[0], &ops[2]};
    Etcdserverpb__RequestOp *fail_ops[2] = {&ops[1], &ops[2]};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    char hex[LEASE_HEX_MAX];
    int rc;
    if (r->lease >= 0) {
        snprintf(hex, sizeof(hex), "%" PRIx64, (uint64_t)r->lease);
    } else { /* Go's %x of a negative int64 */
        snprintf(hex, sizeof(hex), "-%" PRIx64, -(uint64_t)r->lease);
    }
    mem_free(r->key);
    r->key_len = r->pfx_len + strlen(hex);
    r->key = mem_alloc(r->key_len);
    if (r->key == NULL) {
        return -ENOMEM;
    }
    memcpy(r->key, r->pfx, r->pfx_len);
    memcpy(r->key + r->pfx_len, hex, strlen(hex));
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
    cmp.key.data = r->key;
    cmp.key.len = r->key_len;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    cmp.create_revision = 0;
    put.key = cmp.key;
    put.value = r->value;
    put.lease = r->lease;
    get.key = cmp.key;
    owner.key.data = r->pfx;
    owner.key.len = r->pfx_len;
    owner.range_end.data = (uint8_t *)pfx_end(r);
    owner.range_end.len = r->pfx_len;
    owner.limit = 1;
    owner.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
    owner.sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE;
    for (size_t i = 0; i < 3; i++) {
        etcdserverpb__request_op__init(&ops[i]);
    }
    ops[0].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    ops[0].request_put = &put;
    ops[1].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    ops[1].request_range = &get;
    ops[2].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    ops[2].request_range = &owner;
    t.n_compare = 1;
    t.compare = cmps;
    /* Lock also ranges the holder, to answer an uncontended lock at once */
    t.n_success = r->kind == RK_LOCK ? 2 : 1;
    t.success = succ;
    t.n_failure = r->kind == RK_LOCK ? 2 : 1;
    t.failure = fail_ops;
    rc = inner_auth(r, "/etcdserverpb.KV/Txn", &t.base);
    return rc != 0 ? rc : propose(r, ST_ACQUIRE, APPLY_TXN, &t.base);
}

/* Txn: if create_revision(key) == my_rev then put (Proclaim) or delete
 * (Resign). */
static int guarded(struct rcall *r, bool put_value)
{
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__DeleteRangeRequest del =
        ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *ops[1] = {&op};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    int rc;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
    cmp.key.data = r->key;
    cmp.key.len = r->key_len;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
    cmp.create_revision = r->my_rev;
    if (put_value) {
        put.key = cmp.key;
        put.value = r->value;
        put.lease = r->lease;
        op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        op.request_put = &put;
    } else {
        del.key = cmp.key;
        op.request_case =
            ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
        op.request_delete_range = &del;
    }
    t.n_compare = 1;
    t.compare = cmps;
    t.n_success = 1;
    t.success = ops;
    rc = inner_auth(r, "/etcdserverpb.KV/Txn", &t.base);
    if (rc != 0) {
        return rc;
    }
    return propose(r, put_value ? ST_PROCLAIM : ST_DELETE, APPLY_TXN, &t.base);
}

static int read_start(struct rcall *r);

/* After the lease is known: the kind's first write. */
static int after_lease(struct rcall *r)
{
    switch (r->kind) {
    case RK_LOCK:
    case RK_CAMPAIGN:
        return acquire(r);
    case RK_PROCLAIM:
        return guarded(r, true);
    default:
        ASSERT(!"after_lease: kind without a lease");
        return ERR_FAILED;
    }
}

static void after_grant(struct rcall *r, const struct apply_result *res)
{
    Etcdserverpb__LeaseGrantResponse *g;
    int rc = res->err != 0 ? inner_err(res->err) : gone(r);
    if (rc == 0) {
        g = etcdserverpb__lease_grant_response__unpack(
            &pb_allocator, res->resp_len, res->resp);
        if (g == NULL) {
            rc = ERR_FAILED;
        } else {
            r->lease = g->id;
            etcdserverpb__lease_grant_response__free_unpacked(g, &pb_allocator);
            rc = after_lease(r);
        }
    }
    if (rc != 0) {
        fail(r, rc);
    }
}

/* The holder's create_revision from the Lock txn's owner range, or 0. */
static int64_t txn_owner_rev(const Etcdserverpb__TxnResponse *t)
{
    const Etcdserverpb__RangeResponse *rr;
    if (t->n_responses < 2 ||
        t->responses[1]->response_case !=
            ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE) {
        return 0;
    }
    rr = t->responses[1]->response_range;
    return rr->n_kvs > 0 ? rr->kvs[0]->create_revision : 0;
}

/* The acquire txn's verdict: our revision, and whether we wait. */
static int acquired(struct rcall *r, const Etcdserverpb__TxnResponse *t,
                    bool *need_proclaim, bool *holder)
{
    const Mvccpb__KeyValue *kv = NULL;
    if (t->header == NULL || t->n_responses < 1) {
        return ERR_FAILED;
    }
    r->hdr_rev = t->header->revision;
    r->my_rev = r->hdr_rev;
    *need_proclaim = false;
    if (!t->succeeded) {
        const Etcdserverpb__ResponseOp *o = t->responses[0];
        if (o->response_case !=
                ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE ||
            o->response_range->n_kvs < 1) {
            return ERR_FAILED;
        }
        kv = o->response_range->kvs[0];
        r->my_rev = kv->create_revision;
        *need_proclaim =
            r->kind == RK_CAMPAIGN &&
            (kv->value.len != r->value.len ||
             (kv->value.len > 0 &&
              memcmp(kv->value.data, r->value.data, kv->value.len) != 0));
    }
    r->own_key = true;
    if (r->kind == RK_LOCK) {
        int64_t owner = txn_owner_rev(t);
        *holder = owner == 0 || owner == r->my_rev;
    } else {
        *holder = false; /* Campaign always reads its predecessors */
    }
    return 0;
}

static void answer_lock(struct rcall *r)
{
    V3lockpb__LockResponse resp = V3LOCKPB__LOCK_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    api__fill_header(r->svc->s, &h, r->hdr_rev);
    resp.header = &h;
    resp.key.data = r->key;
    resp.key.len = r->key_len;
    r->own_key = false; /* the client holds it now */
    answer_msg(r, &resp.base);
}

static void answer_campaign(struct rcall *r)
{
    V3electionpb__CampaignResponse resp = V3ELECTIONPB__CAMPAIGN_RESPONSE__INIT;
    V3electionpb__LeaderKey lk = V3ELECTIONPB__LEADER_KEY__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    api__fill_header(r->svc->s, &h, r->hdr_rev);
    lk.name.data = r->pfx;
    lk.name.len = r->pfx_len - 1;
    lk.key.data = r->key;
    lk.key.len = r->key_len;
    lk.rev = r->my_rev;
    lk.lease = r->lease;
    resp.header = &h;
    resp.leader = &lk;
    r->own_key = false;
    answer_msg(r, &resp.base);
}

static void after_acquire(struct rcall *r, const struct apply_result *res)
{
    Etcdserverpb__TxnResponse *t;
    bool need_proclaim = false;
    bool holder = false;
    int rc = inner_err(res->err);
    if (rc == 0) {
        t = etcdserverpb__txn_response__unpack(&pb_allocator, res->resp_len,
                                               res->resp);
        rc = t == NULL ? ERR_FAILED : acquired(r, t, &need_proclaim, &holder);
        if (t != NULL) {
            etcdserverpb__txn_response__free_unpacked(t, &pb_allocator);
        }
    }
    rc = rc != 0 ? rc : gone(r);
    if (rc == 0 && holder) {
        answer_lock(r);
        return;
    }
    if (rc == 0 && need_proclaim) {
        r->cleanup_always = true; /* etcd resigns when this fails */
        rc = guarded(r, true);
    } else if (rc == 0) {
        rc = read_start(r);
    }
    if (rc != 0) {
        fail(r, rc);
    }
}

static void after_proclaim(struct rcall *r, const struct apply_result *res)
{
    Etcdserverpb__TxnResponse *t;
    int rc = inner_err(res->err);
    bool won = false;
    int64_t rev = 0;
    if (rc == 0) {
        t = etcdserverpb__txn_response__unpack(&pb_allocator, res->resp_len,
                                               res->resp);
        if (t == NULL || t->header == NULL) {
            rc = ERR_FAILED;
        } else {
            won = t->succeeded;
            rev = t->header->revision;
        }
        if (t != NULL) {
            etcdserverpb__txn_response__free_unpacked(t, &pb_allocator);
        }
    }
    if (rc == 0 && !won) {
        rc = ERR_ELECTION_NOT_LEADER;
    }
    if (rc == 0 && r->kind == RK_PROCLAIM) {
        r->hdr_rev = rev;
        answer_header(r);
        return;
    }
    rc = rc != 0 ? rc : gone(r);
    if (rc == 0) {
        r->cleanup_always = false;
        rc = read_start(r);
    }
    if (rc != 0) {
        fail(r, rc);
    }
}

/* Unlock (DeleteRangeResponse) or Resign (TxnResponse): the header. */
static void after_delete(struct rcall *r, const struct apply_result *res)
{
    const ProtobufCMessageDescriptor *d =
        r->kind == RK_UNLOCK ? &etcdserverpb__delete_range_response__descriptor
                             : &etcdserverpb__txn_response__descriptor;
    ProtobufCMessage *m;
    int rc = inner_err(res->err);
    if (rc != 0) {
        fail(r, rc);
        return;
    }
    m = protobuf_c_message_unpack(d, &pb_allocator, res->resp_len, res->resp);
    if (m == NULL) {
        fail(r, ERR_FAILED);
        return;
    }
    /* both messages carry the header as field 1, first in the struct */
    r->hdr_rev =
        r->kind == RK_UNLOCK
            ? ((Etcdserverpb__DeleteRangeResponse *)m)->header->revision
            : ((Etcdserverpb__TxnResponse *)m)->header->revision;
    protobuf_c_message_free_unpacked(m, &pb_allocator);
    answer_header(r);
}

static void on_proposed(void *ctx, const struct apply_result *res)
{
    struct rcall *r = ctx;
    ASSERT(r->busy);
    r->busy = false;
    switch (r->step) {
    case ST_DONE:
        rcall_free(r);
        break;
    case ST_GRANT:
        after_grant(r, res);
        break;
    case ST_ACQUIRE:
        after_acquire(r, res);
        break;
    case ST_PROCLAIM:
        after_proclaim(r, res);
        break;
    case ST_DELETE:
        after_delete(r, res);
        break;
    default:
        ASSERT(!"on_proposed: no proposal in this step");
    }
}

/* --------------------------------------------------------------- waits */

static void flush(struct rcall *r)
{
    int rc;
    if (r->call == NULL || r->out.len == 0 || r->blocked) {
        return;
    }
    rc = grpc_call_send_bytes(r->call, r->out.data, r->out.len);
    if (rc == 0) {
        buf_reset(&r->out);
    } else if (rc == ERR_BUSY) {
        r->blocked = true; /* on_writable sends it (or a newer one) */
    } else if (r->wend == WE_NONE) {
        r->wend = WE_FAILED;
        r->wend_err = rc;
        defer_start(r->svc);
    }
}

/* Observe: replace the unsent response with {header(rev), kv} and try to
 * send it. */
static void emit(struct rcall *r, const struct kv_kv *kv, int64_t rev)
{
    V3electionpb__LeaderResponse resp = V3ELECTIONPB__LEADER_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    Mvccpb__KeyValue k;
    size_t len;
    apply_kv_to_pb(kv, &k);
    api__fill_header(r->svc->s, &h, rev);
    resp.header = &h;
    resp.kv = &k;
    len = protobuf_c_message_get_packed_size(&resp.base);
    buf_reset(&r->out);
    if (buf_reserve(&r->out, len) != 0) {
        if (r->wend == WE_NONE) {
            r->wend = WE_FAILED;
            r->wend_err = ERR_LIMIT;
            defer_start(r->svc);
        }
        return;
    }
    protobuf_c_message_pack(&resp.base, r->out.data);
    r->out.len = len;
    flush(r);
}

static void wait_end(struct rcall *r, enum wend e, int err)
{
    if (r->wend == WE_NONE) {
        r->wend = e;
        r->wend_err = err;
        defer_start(r->svc);
    }
}

/* Observe's prefix watcher: the first put is the new leader. */
static void observe_first(struct rcall *r, const struct kv_event *e)
{
    uint8_t *k = mem_alloc(e->kv.key_len);
    if (k == NULL) {
        wait_end(r, WE_FAILED, -ENOMEM);
        return;
    }
    memcpy(k, e->kv.key, e->kv.key_len);
    mem_free(r->key);
    r->key = k;
    r->key_len = e->kv.key_len;
    emit(r, &e->kv, e->kv.mod_revision);
    r->switch_rev = e->kv.mod_revision + 1;
    wait_end(r, WE_SWITCH, 0);
}

/* The hub's send callback for every waiting call. Never calls the hub. */
static int on_watch(void *ctx, const struct watch_resp *w)
{
    struct rcall *r = ctx;
    if (r->step != ST_WAIT || r->wend != WE_NONE) {
        return 0;
    }
    if (w->canceled) {
        wait_end(r, w->compact_revision > 0 ? WE_RETRY : WE_FAILED, ERR_BUSY);
        return 0;
    }
    for (size_t i = 0; i < w->events_count && r->wend == WE_NONE; i++) {
        const struct kv_event *e = &w->events[i];
        if (e->type == KV_EVENT_DELETE) {
            wait_end(r, WE_GONE, 0);
        } else if (r->kind == RK_OBSERVE && r->switch_rev == 0) {
            observe_first(r, e);
        } else if (r->kind == RK_OBSERVE) {
            emit(r, &e->kv, w->revision);
        }
    }
    return 0;
}

/* Watch key (or the name's prefix) from revision from. For Lock and
 * Campaign only deletes matter; Observe's first watcher only puts. */
static int wait_on(struct rcall *r, const uint8_t *key, size_t key_len,
                   bool prefix, int64_t from)
{
    struct server *s = r->svc->s;
    struct watch_hub *hub = api_watch__hub(s);
    struct watch_create c;
    int rc;
    ASSERT(r->st == NULL);
    if (hub == NULL) {
        return ERR_STOPPED;
    }
    rc = watch_stream_open(hub, on_watch, r, &r->st);
    if (rc != 0) {
        r->st = NULL;
        return rc;
    }
    memset(&c, 0, sizeof(c));
    c.key = key;
    c.key_len = key_len;
    if (prefix) {
        c.range_end = pfx_end(r);
        c.range_end_len = r->pfx_len;
        c.no_delete = true;
    }
    c.start_revision = from;
    c.no_put = r->kind != RK_OBSERVE;
    rc = watch_stream_create(r->st, &c);
    if (rc != 0) {
        close_stream(r);
        return rc;
    }
    r->step = ST_WAIT;
    r->wend = WE_NONE;
    api_watch__kick(s);
    poll_start(r->svc);
    return 0;
}

/* Lock: the lease may have died while we waited (etcd 3.5's check). */
static int own_key_alive(struct rcall *r, struct kv_read *rd, bool *alive)
{
    struct kv_range_req q;
    struct kv_range_resp rr;
    struct kv_result res = {0};
    int rc;
    memset(&q, 0, sizeof(q));
    q.key = r->key;
    q.key_len = r->key_len;
    q.count_only = true;
    rc = kv_range(rd, &q, &res, &rr);
    *alive = rc == 0 && rr.count > 0;
    kv_result_free(&res);
    return rc;
}

/* The read step of every kind, on one read handle. Decides and acts. */
static int serve_read(struct rcall *r)
{
    struct kv_read *rd;
    struct kv_result res = {0};
    struct kv_range_resp rr;
    struct kv_range_req q;
    struct buf msg;
    bool alive = false;
    int64_t rev;
    int rc = node_read_begin(r->svc->s->node, &rd);
    if (rc != 0) {
        return rc;
    }
    rev = kv_read_rev(rd);
    memset(&q, 0, sizeof(q));
    q.key = r->pfx;
    q.key_len = r->pfx_len;
    q.range_end = pfx_end(r);
    q.range_end_len = r->pfx_len;
    q.limit = 1;
    q.sort_target = KV_SORT_CREATE;
    q.sort_order = KV_SORT_ASCEND;
    if (r->kind == RK_LOCK || r->kind == RK_CAMPAIGN) {
        /* the newest key created before ours (etcd's waitDeletes) */
        q.sort_order = KV_SORT_DESCEND;
        q.max_create_revision = r->my_rev - 1;
    }
    rc = kv_range(rd, &q, &res, &rr);
    buf_init(&msg, 0);
    if (rc != 0) {
        /* answered below */
    } else if (rr.kvs_count > 0 && r->kind != RK_LEADER) {
        const struct kv_kv *kv = &rr.kvs[0];
        /* the hub copies the key: the handle may end after this */
        rc = wait_on(r, kv->key, kv->key_len, false, rev + 1);
        if (rc == 0 && r->kind == RK_OBSERVE) {
            uint8_t *k = mem_alloc(kv->key_len);
            if (k == NULL) {
                wait_end(r, WE_FAILED, -ENOMEM);
            } else {
                memcpy(k, kv->key, kv->key_len);
                mem_free(r->key);
                r->key = k;
                r->key_len = kv->key_len;
                r->switch_rev = rev + 1;
                emit(r, kv, rev);
            }
        }
    } else if (r->kind == RK_LEADER && rr.kvs_count > 0) {
        V3electionpb__LeaderResponse resp = V3ELECTIONPB__LEADER_RESPONSE__INIT;
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        Mvccpb__KeyValue k;
        apply_kv_to_pb(&rr.kvs[0], &k);
        api__fill_header(r->svc->s, &h, rev);
        resp.header = &h;
        resp.kv = &k;
        rc = buf_reserve(&msg, protobuf_c_message_get_packed_size(&resp.base));
        if (rc == 0) {
            msg.len = protobuf_c_message_pack(&resp.base, msg.data);
        }
    } else if (r->kind == RK_OBSERVE) {
        r->switch_rev = 0; /* the first put under the name leads */
        rc = wait_on(r, r->pfx, r->pfx_len, true, rev + 1);
    } else if (r->kind == RK_LOCK) {
        rc = own_key_alive(r, rd, &alive);
    }
    kv_result_free(&res);
    node_read_end(r->svc->s->node, rd);
    if (rc != 0 || r->step == ST_WAIT) {
        buf_free(&msg);
        return rc;
    }
    /* no wait: this read decides the answer */
    if (r->kind == RK_LEADER) {
        if (msg.len == 0) {
            answer(r, ERR_ELECTION_NO_LEADER, NULL, 0);
        } else {
            answer(r, 0, msg.data, msg.len);
        }
    } else if (r->kind == RK_LOCK && !alive) {
        r->own_key = false;
        answer(r, ERR_SESSION_EXPIRED, NULL, 0);
    } else if (r->kind == RK_LOCK) {
        r->hdr_rev = rev;
        answer_lock(r);
    } else {
        ASSERT(r->kind == RK_CAMPAIGN);
        answer_campaign(r); /* with the acquire txn's header, as etcd */
    }
    buf_free(&msg);
    return 0;
}

static void on_read_point(void *ctx, int err)
{
    struct rcall *r = ctx;
    int rc;
    ASSERT(r->busy);
    r->busy = false;
    if (r->step == ST_DONE) {
        rcall_free(r);
        return;
    }
    rc = err != 0 ? err : gone(r);
    if (rc == 0) {
        rc = serve_read(r);
    }
    if (rc != 0) {
        fail(r, rc);
    }
}

static int read_start(struct rcall *r)
{
    int rc = gone(r);
    ASSERT(!r->busy);
    if (rc != 0) {
        return rc;
    }
    r->busy = true; /* before the call, as in propose() */
    r->step = ST_READ;
    rc = node_read_index(r->svc->s->node, remaining_ms(r), on_read_point, r);
    if (rc != 0) {
        r->busy = false;
        r->step = ST_START;
    }
    return rc;
}

/* Act on a wait that ended (outside the hub's callbacks). */
static void wait_finish(struct rcall *r)
{
    enum wend e = r->wend;
    int rc = 0;
    close_stream(r);
    r->wend = WE_NONE;
    r->step = ST_START;
    switch (e) {
    case WE_GONE:
    case WE_RETRY:
        rc = read_start(r);
        break;
    case WE_SWITCH:
        rc = gone(r);
        rc =
            rc != 0 ? rc : wait_on(r, r->key, r->key_len, false, r->switch_rev);
        break;
    default:
        rc = r->wend_err != 0 ? r->wend_err : ERR_FAILED;
        break;
    }
    if (rc != 0) {
        fail(r, rc);
    }
}

/* Every waiting call: act on ended waits, end cancelled or late calls. */
static void sweep(struct lock_svc *svc)
{
    struct rcall *next;
    size_t waiting = 0;
    for (struct rcall *r = svc->calls; r != NULL; r = next) {
        next = r->next;
        if (r->step != ST_WAIT) {
            continue;
        }
        int g = gone(r);
        if (r->wend != WE_NONE) {
            wait_finish(r);
        } else if (g != 0) {
            close_stream(r);
            fail(r, g);
        } else {
            waiting++;
        }
    }
    if (waiting == 0 && !svc->stopping) {
        uv_timer_stop(&svc->poll);
    }
}

/* ------------------------------------------------------ unary methods */

/* A call record for op on name; the op stays alive until it is freed. */
static int start(struct api_op *op, enum rkind kind,
                 const ProtobufCBinaryData *name, struct rcall **out)
{
    struct lock_svc *svc = svc_get(op->s);
    struct rcall *r;
    if (svc == NULL) {
        return op->s->stopping ? ERR_STOPPED : -ENOMEM;
    }
    /* End the waiting calls whose clients cancelled before this request
     * came (on one connection the cancel arrives first) now, not at the
     * next poll: their key deletions are then proposed, and applied,
     * before this call's first write, as in etcd, where the cancel stops
     * the waiter at once. Else a Campaign that timed out and the same
     * client's next Campaign (same lease, so the same key) race: the new
     * one takes over the key and answers, then the old one's late cleanup
     * deletes it, leaving a leader that holds no key. */
    sweep(svc);
    r = rcall_new(svc, kind, name);
    if (r == NULL) {
        return ERR_BUSY;
    }
    r->op = op;
    op->async_refs++;
    if (op->timeout_ms != 0) {
        r->deadline_ms = uv_now(op->s->loop) + op->timeout_ms;
    }
    *out = r;
    return 0;
}

static int lock_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const V3lockpb__LockRequest *q = (const V3lockpb__LockRequest *)req;
    struct rcall *r;
    int rc = start(op, RK_LOCK, &q->name, &r);
    if (rc != 0) {
        return rc;
    }
    r->lease = q->lease;
    rc = range_auth(r);
    rc = rc != 0 ? rc : q->lease == 0 ? grant(r) : acquire(r);
    if (rc != 0) {
        fail(r, inner_err(rc));
    }
    return 0;
}

static int unlock_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const V3lockpb__UnlockRequest *q = (const V3lockpb__UnlockRequest *)req;
    Etcdserverpb__DeleteRangeRequest del =
        ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    ProtobufCBinaryData none = {0, NULL};
    struct rcall *r;
    int rc;
    if (q->key.len == 0) {
        return ERR_RECIPE_KEY_NOT_PROVIDED;
    }
    rc = start(op, RK_UNLOCK, &none, &r);
    if (rc != 0) {
        return rc;
    }
    del.key = q->key;
    rc = inner_auth(r, "/etcdserverpb.KV/DeleteRange", &del.base);
    rc = rc != 0 ? rc : propose(r, ST_DELETE, APPLY_DELETE_RANGE, &del.base);
    if (rc != 0) {
        fail(r, inner_err(rc));
    }
    return 0;
}

static int campaign_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const V3electionpb__CampaignRequest *q =
        (const V3electionpb__CampaignRequest *)req;
    struct rcall *r;
    int rc = start(op, RK_CAMPAIGN, &q->name, &r);
    if (rc != 0) {
        return rc;
    }
    r->lease = q->lease;
    r->value = q->value;
    rc = range_auth(r);
    rc = rc != 0 ? rc : q->lease == 0 ? grant(r) : acquire(r);
    if (rc != 0) {
        fail(r, inner_err(rc));
    }
    return 0;
}

/* Proclaim and Resign act on a LeaderKey the client kept. */
static int resume(struct api_op *op, enum rkind kind,
                  const V3electionpb__LeaderKey *lk, struct rcall **out)
{
    struct rcall *r;
    int rc;
    if (lk == NULL) {
        return ERR_LEADER_KEY_MISSING;
    }
    rc = start(op, kind, &lk->name, &r);
    if (rc != 0) {
        return rc;
    }
    r->key_len = lk->key.len;
    r->key = mem_alloc(lk->key.len == 0 ? 1 : lk->key.len);
    if (r->key == NULL) {
        fail(r, -ENOMEM);
        return 0; /* answered */
    }
    if (lk->key.len > 0) {
        memcpy(r->key, lk->key.data, lk->key.len);
    }
    r->my_rev = lk->rev;
    r->lease = lk->lease;
    *out = r;
    return 0;
}

static int proclaim_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const V3electionpb__ProclaimRequest *q =
        (const V3electionpb__ProclaimRequest *)req;
    struct rcall *r = NULL;
    int rc = resume(op, RK_PROCLAIM, q->leader, &r);
    if (rc != 0 || r == NULL) {
        return rc;
    }
    r->value = q->value;
    /* etcd's session: lease 0 grants a fresh lease for the put */
    rc = r->lease == 0 ? grant(r) : guarded(r, true);
    if (rc != 0) {
        fail(r, inner_err(rc));
    }
    return 0;
}

static int resign_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const V3electionpb__ResignRequest *q =
        (const V3electionpb__ResignRequest *)req;
    struct rcall *r = NULL;
    int rc = resume(op, RK_RESIGN, q->leader, &r);
    if (rc != 0 || r == NULL) {
        return rc;
    }
    rc = guarded(r, false);
    if (rc != 0) {
        fail(r, inner_err(rc));
    }
    return 0;
}

static int leader_fn(struct api_op *op, const ProtobufCMessage *req)
{
    const V3electionpb__LeaderRequest *q =
        (const V3electionpb__LeaderRequest *)req;
    struct rcall *r;
    int rc = start(op, RK_LEADER, &q->name, &r);
    if (rc != 0) {
        return rc;
    }
    rc = range_auth(r);
    rc = rc != 0 ? rc : read_start(r);
    if (rc != 0) {
        fail(r, rc);
    }
    return 0;
}

#define M(path, gw, req, resp, fn)                                             \
    {                                                                          \
        path, gw, &req##__descriptor, &resp##__descriptor, false, fn           \
    }

const struct api_method api_lock_methods[] = {
    M("/v3lockpb.Lock/Lock", "/v3/lock/lock", v3lockpb__lock_request,
      v3lockpb__lock_response, lock_fn),
    M("/v3lockpb.Lock/Unlock", "/v3/lock/unlock", v3lockpb__unlock_request,
      v3lockpb__unlock_response, unlock_fn),
    M("/v3electionpb.Election/Campaign", "/v3/election/campaign",
      v3electionpb__campaign_request, v3electionpb__campaign_response,
      campaign_fn),
    M("/v3electionpb.Election/Proclaim", "/v3/election/proclaim",
      v3electionpb__proclaim_request, v3electionpb__proclaim_response,
      proclaim_fn),
    M("/v3electionpb.Election/Leader", "/v3/election/leader",
      v3electionpb__leader_request, v3electionpb__leader_response, leader_fn),
    M("/v3electionpb.Election/Resign", "/v3/election/resign",
      v3electionpb__resign_request, v3electionpb__resign_response, resign_fn),
};

const size_t api_lock_methods_count =
    sizeof(api_lock_methods) / sizeof(api_lock_methods[0]);

/* ------------------------------------------------------------- Observe */

static void observe_on_msg(struct grpc_call *call, const struct grpc_msg *msg)
{
    struct server *s = grpc_call_method(call)->ctx;
    const V3electionpb__LeaderRequest *q =
        (const V3electionpb__LeaderRequest *)msg->pb;
    struct lock_svc *svc;
    struct rcall *r;
    int rc;
    if (q == NULL || grpc_call_data(call) != NULL) {
        return; /* one request per server stream */
    }
    svc = svc_get(s);
    if (svc == NULL) {
        grpc_call_finish_err(call, s->stopping ? ERR_STOPPED : -ENOMEM);
        return;
    }
    r = rcall_new(svc, RK_OBSERVE, &q->name);
    if (r == NULL) {
        grpc_call_finish_err(call, ERR_BUSY);
        return;
    }
    r->call = call;
    grpc_call_set_data(call, r);
    rc = range_auth(r);
    rc = rc != 0 ? rc : read_start(r);
    if (rc != 0) {
        fail(r, rc);
    }
}

static void observe_on_cancel(struct grpc_call *call)
{
    struct rcall *r = grpc_call_data(call);
    if (r == NULL) {
        return;
    }
    grpc_call_set_data(call, NULL);
    r->call = NULL;
    if (!r->busy) {
        /* not inside a hub callback: the stream may close now */
        close_stream(r);
        r->step = ST_DONE;
        rcall_free(r);
    }
    /* else the read's callback sees the call gone and ends it */
}

static void observe_on_writable(struct grpc_call *call)
{
    struct rcall *r = grpc_call_data(call);
    if (r != NULL) {
        r->blocked = false;
        flush(r);
    }
}

size_t api_lock_stream_methods(struct server *s, struct grpc_method *out,
                               size_t cap)
{
    if (cap == 0) {
        return 0;
    }
    memset(&out[0], 0, sizeof(out[0]));
    out[0].path = "/v3electionpb.Election/Observe";
    out[0].kind = GRPC_SERVER_STREAM;
    out[0].req_desc = &v3electionpb__leader_request__descriptor;
    out[0].on_msg = observe_on_msg;
    out[0].on_cancel = observe_on_cancel;
    out[0].on_writable = observe_on_writable;
    out[0].ctx = s;
    return 1;
}

/* ---------------------------------------------------------------- stop */

void api_lock_stop(struct server *s)
{
    void **slot = api_watch__lock_slot(s);
    struct lock_svc *svc;
    struct rcall *next;
    if (slot == NULL || *slot == NULL) {
        return;
    }
    svc = *slot;
    *slot = NULL;
    svc->stopping = true;
    for (struct rcall *r = svc->calls; r != NULL; r = next) {
        next = r->next;
        close_stream(r);
        if (!r->busy) {
            fail(r, ERR_STOPPED);
        }
        /* busy: the node fails the proposal or read when it closes */
    }
    uv_timer_stop(&svc->poll);
    uv_idle_stop(&svc->defer);
    uv_close((uv_handle_t *)&svc->poll, svc_handle_closed);
    uv_close((uv_handle_t *)&svc->defer, svc_handle_closed);
}

/*
 * api_watch.c - etcd's Watch service (bidi gRPC stream) on the watch hub,
 * and the server's extension points for the streaming modules (watch and
 * lease: see server.h).
 *
 * Each Watch call is one hub stream. Requests (create, cancel, progress)
 * go to the hub at once; the hub answers through send_resp(), which
 * encodes an etcd WatchResponse (etcd-api.md 1.5.6) and queues it on the
 * call. Sends happen only inside watch_hub_run(), which an idle handle
 * drives while the hub has work; a send refused at the connection's
 * outbound bound blocks the stream until on_writable.
 *
 * Failure modes: a client that sends requests without reading its replies
 * fills the stream's control queue and the call ends with
 * RESOURCE_EXHAUSTED; a response too large to frame ends the call with
 * INTERNAL; a stream opened with "hasleader: true" metadata is refused
 * when the member has no leader, and ended with "etcdserver: no leader"
 * after three election timeouts without one (as etcd's monitorLeader);
 * during the first three election timeouts after start, before any leader
 * was heard of, it is accepted and waits (etcd does not serve clients
 * then at all: a restarted member is found by a client's retry).
 * On server stop every Watch call ends with "etcdserver: server stopped".
 */
#include "registry/server/api_auth.h"
#include "registry/server/server.h"

#include "registry/server/api_lock.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/apply/apply.h"
#include "consensus/watch/watch.h"
#include "proto/kv.pb-c.h"
#include "proto/rpc.pb-c.h"
#include "registry/http/http.h"
#include "registry/config/cfgapi.h"
#include "registry/services/services.h"

/* The lease service (api_lease.c). */
int api_lease__start(struct server *s, char *msg, size_t msg_len);
void api_lease__stop(struct server *s);
size_t api_lease__methods(struct server *s, struct grpc_method *out,
                          size_t cap);
void api_lease__on_lease(struct server *s, int64_t id, int64_t ttl,
                         bool checkpoint);
void api_lease__on_leader(struct server *s, uint64_t leader, uint64_t term);
void api_lease__no_leader(struct server *s);
void api_lease__restored(struct server *s);

#define RUN_BUDGET            4096
#define NO_LEADER_ELECTIONS   3
#define PROGRESS_INTERVAL_MIN 100

struct wcall {
    struct watch_svc *svc;
    struct grpc_call *call;
    struct watch_stream *st;
    struct wcall *prev, *next;
    bool hasleader;
    bool doomed; /* end after the hub's pass (send failed hard) */
};

struct watch_svc {
    struct server *s;
    struct watch_hub *hub;
    uv_idle_t run;
    uv_timer_t progress;
    uv_timer_t no_leader;
    int handles;
    bool stopping;
    uint64_t leader;
    uint64_t term;
    bool seen_leader; /* a leader was known since start */
    struct wcall *calls;
    void *lock; /* the Lock/Election services' state (api_lock.c) */
    /* encoding scratch, reused by every response */
    Mvccpb__Event *ev;
    Mvccpb__Event **evp;
    Mvccpb__KeyValue *kvs;
    struct iovec *iov; /* head + one piece per event */
    size_t scratch_cap;
};

/* ------------------------------------------------------------ encoding */

static int scratch_reserve(struct watch_svc *w, size_t n)
{
    if (n <= w->scratch_cap) {
        return 0;
    }
    size_t cap = w->scratch_cap == 0 ? 64 : w->scratch_cap;
    while (cap < n) {
        cap *= 2;
    }
    Mvccpb__Event *ev = mem_alloc(cap * sizeof(*ev));
    Mvccpb__Event **evp = mem_alloc(cap * sizeof(*evp));
    Mvccpb__KeyValue *kvs = mem_alloc(2 * cap * sizeof(*kvs));
    struct iovec *iov = mem_alloc((cap + 1) * sizeof(*iov));
    if (ev == NULL || evp == NULL || kvs == NULL || iov == NULL) {
        mem_free(ev);
        mem_free(evp);
        mem_free(kvs);
        mem_free(iov);
        return -ENOMEM;
    }
    mem_free(w->ev);
    mem_free(w->evp);
    mem_free(w->kvs);
    mem_free(w->iov);
    w->ev = ev;
    w->evp = evp;
    w->kvs = kvs;
    w->iov = iov;
    w->scratch_cap = cap;
    return 0;
}

/* The encoding of one event for the hub's slot: encoded once, then every
 * watcher the event goes to gets the same bytes (held by reference in the
 * call's queue, not copied). NULL: out of memory. */
static const struct watch_enc *event_enc(const struct kv_event *e,
                                         struct watch_enc *slot)
{
    if (slot->data == NULL) {
        size_t size = apply_watch_event_size(e);
        uint8_t *d = watch_enc_alloc(size);
        struct buf b;
        if (d == NULL) {
            return NULL;
        }
        /* a buf over the block that cannot grow (cap_max = cap) */
        b.data = d;
        b.len = 0;
        b.cap = size;
        b.cap_max = size;
        if (apply_watch_event_encode(e, &b) != 0) {
            watch_enc_release(d);
            return NULL;
        }
        slot->data = d;
        slot->len = b.len;
    }
    return slot;
}

static const struct grpc_ref_ops enc_ref_ops = {
    watch_enc_hold,
    watch_enc_release,
};

/* An events response from its parts (apply_watch_head and the events'
 * shared encodings). 1: not possible here, use protobuf-c. */
static int send_events_fast(struct wcall *c, const struct watch_resp *r)
{
    struct watch_svc *w = c->svc;
    uint8_t head[APPLY_WATCH_HEAD_MAX];
    w->iov[0].iov_base = head;
    w->iov[0].iov_len =
        apply_watch_head(head, w->s->cluster_id, w->s->member_id, r->revision,
                         w->term, r->watch_id, r->fragment);
    for (size_t i = 0; i < r->events_count; i++) {
        const struct watch_enc *e = event_enc(&r->events[i], r->enc[i]);
        if (e == NULL) {
            return 1;
        }
        w->iov[i + 1].iov_base = e->data;
        w->iov[i + 1].iov_len = e->len;
    }
    return grpc_call_send_iov_ref(c->call, w->iov, r->events_count + 1, 1,
                                  &enc_ref_ops);
}

static int send_resp(void *ctx, const struct watch_resp *r)
{
    struct wcall *c = ctx;
    struct watch_svc *w = c->svc;
    Etcdserverpb__WatchResponse resp = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    int rc;
    if (c->doomed) {
        return ERR_BUSY;
    }
    if (scratch_reserve(w, r->events_count) != 0) {
        return ERR_BUSY; /* the hub retries on a later pass */
    }
    if (r->events_count > 0 && r->enc != NULL && !r->created && !r->canceled &&
        r->compact_revision == 0 && r->cancel_reason == NULL) {
        rc = send_events_fast(c, r);
        if (rc != 1) {
            if (rc != 0 && rc != ERR_BUSY) {
                c->doomed = true;
                return ERR_BUSY;
            }
            return rc;
        }
    }
    h.cluster_id = w->s->cluster_id;
    h.member_id = w->s->member_id;
    h.revision = r->revision;
    h.raft_term = w->term;
    resp.header = &h;
    resp.watch_id = r->watch_id;
    resp.created = r->created;
    resp.canceled = r->canceled;
    resp.compact_revision = r->compact_revision;
    resp.cancel_reason =
        (char *)(r->cancel_reason != NULL ? r->cancel_reason : "");
    resp.fragment = r->fragment;
    for (size_t i = 0; i < r->events_count; i++) {
        const struct kv_event *e = &r->events[i];
        mvccpb__event__init(&w->ev[i]);
        w->ev[i].type = e->type == KV_EVENT_DELETE
                            ? MVCCPB__EVENT__EVENT_TYPE__DELETE
                            : MVCCPB__EVENT__EVENT_TYPE__PUT;
        apply_kv_to_pb(&e->kv, &w->kvs[2 * i]);
        w->ev[i].kv = &w->kvs[2 * i];
        if (e->has_prev) {
            apply_kv_to_pb(&e->prev, &w->kvs[2 * i + 1]);
            w->ev[i].prev_kv = &w->kvs[2 * i + 1];
        }
        w->evp[i] = &w->ev[i];
    }
    resp.n_events = r->events_count;
    resp.events = r->events_count > 0 ? w->evp : NULL;
    rc = grpc_call_send(c->call, &resp.base);
    if (rc != 0 && rc != ERR_BUSY) {
        c->doomed = true; /* ended after the pass */
        return ERR_BUSY;
    }
    return rc;
}

/* ------------------------------------------------------------- running */

static void schedule(struct watch_svc *w);

static void call_remove(struct wcall *c)
{
    struct watch_svc *w = c->svc;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        w->calls = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    watch_stream_close(c->st);
    mem_free(c);
}

/* End a call from our side (never from on_cancel). */
static void call_end(struct wcall *c, int err)
{
    struct grpc_call *call = c->call;
    grpc_call_set_data(call, NULL);
    call_remove(c);
    if (err == 0) {
        grpc_call_finish(call, GRPC_OK, NULL);
    } else if (err == ERR_LIMIT) {
        grpc_call_finish(call, GRPC_INTERNAL,
                         "cairn: watch response too large to send");
    } else {
        grpc_call_finish_err(call, err);
    }
}

static void on_run(uv_idle_t *idle)
{
    struct watch_svc *w = idle->data;
    bool more = w->hub != NULL && watch_hub_run(w->hub, RUN_BUDGET);
    struct wcall *next;
    for (struct wcall *c = w->calls; c != NULL; c = next) {
        next = c->next;
        if (c->doomed) {
            call_end(c, ERR_LIMIT);
        }
    }
    if (!more) {
        uv_idle_stop(&w->run);
    }
}

static void schedule(struct watch_svc *w)
{
    if (!w->stopping && w->hub != NULL && watch_hub_pending(w->hub)) {
        uv_idle_start(&w->run, on_run);
    }
}

/* ------------------------------------------------------------ requests */

/* Mark wc refused for rc (0: allowed), with etcd 3.4's cancel reason: the
 * gRPC status text of the auth error (observed against etcd 3.4.23). */
static void deny(struct watch_create *wc, int rc)
{
    wc->denied = rc != 0;
    wc->deny_reason =
        rc == ERR_USER_EMPTY
            ? "rpc error: code = InvalidArgument desc = etcdserver: user name "
              "is empty"
        : rc == ERR_INVALID_AUTH_TOKEN
            ? "rpc error: code = Unauthenticated desc = etcdserver: invalid "
              "auth token"
            : NULL; /* permission denied */
}

/* A WatchCreateRequest as the hub takes it (pointers borrowed from r),
 * checked against token's permissions: a refused create is marked denied
 * and answered as etcd does, created then canceled with the permission
 * error. Shared by the gRPC stream and the HTTP/WebSocket streams. */
void api_watch__create_from_pb(struct server *s,
                               const Etcdserverpb__WatchCreateRequest *r,
                               const char *token, struct watch_create *wc)
{
    memset(wc, 0, sizeof(*wc));
    wc->key = r->key.data;
    wc->key_len = r->key.len;
    wc->range_end = r->range_end.data;
    wc->range_end_len = r->range_end.len;
    wc->start_revision = r->start_revision;
    wc->watch_id = r->watch_id;
    wc->prev_kv = r->prev_kv;
    wc->progress_notify = r->progress_notify;
    wc->fragment = r->fragment;
    for (size_t i = 0; i < r->n_filters; i++) {
        if (r->filters[i] ==
            ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT) {
            wc->no_put = true;
        } else if (r->filters[i] ==
                   ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE) {
            wc->no_delete = true;
        }
    }
    if (s->auth != NULL) {
        deny(wc, api_auth_range_check(s, token, wc->key, wc->key_len,
                                      wc->range_end, wc->range_end_len));
    }
}

static void on_create(struct wcall *c,
                      const Etcdserverpb__WatchCreateRequest *r)
{
    struct watch_create wc;
    struct server *s = c->svc->s;
    const char *token = api_auth_grpc_token(c->call);
    const char *cn = s->opt->client_tls.client_cert_auth
                         ? grpc_call_identity(c->call)
                         : NULL;
    api_watch__create_from_pb(s, r, token, &wc);
    if (token == NULL && cn != NULL && s->auth != NULL) {
        /* the certificate's CN is the user, as for unary calls (server.c) */
        deny(&wc, api_auth_range_check_user(s, cn, wc.key, wc.key_len,
                                            wc.range_end, wc.range_end_len));
    }
    if (watch_stream_create(c->st, &wc) != 0) {
        call_end(c, ERR_BUSY);
    }
}

static void watch_on_msg(struct grpc_call *call, const struct grpc_msg *msg)
{
    struct wcall *c = grpc_call_data(call);
    const Etcdserverpb__WatchRequest *r =
        (const Etcdserverpb__WatchRequest *)msg->pb;
    if (c == NULL || r == NULL) {
        return;
    }
    struct watch_svc *w = c->svc;
    switch (r->request_union_case) {
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
        on_create(c, r->create_request);
        break;
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
        if (watch_stream_cancel(c->st, r->cancel_request->watch_id) != 0) {
            call_end(c, ERR_BUSY);
        }
        break;
    case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
        watch_stream_progress(c->st);
        break;
    default:
        break; /* etcd ignores unknown request types */
    }
    schedule(w);
}

static bool wants_leader(struct grpc_call *call)
{
    const char *v = grpc_call_metadata(call, "hasleader", NULL);
    return v != NULL && strcmp(v, "true") == 0;
}

static void watch_on_start(struct grpc_call *call)
{
    struct watch_svc *w = grpc_call_method(call)->ctx;
    struct wcall *c;
    if (w->stopping || w->hub == NULL) {
        grpc_call_finish_err(call, ERR_STOPPED);
        return;
    }
    /* Just after start a member has not heard from the leader yet (etcd
     * serves no client before it has): then such a stream waits, as one
     * open when the leader was lost does (on_no_leader). */
    if (wants_leader(call) && w->leader == 0 &&
        (w->seen_leader || !uv_is_active((uv_handle_t *)&w->no_leader))) {
        grpc_call_finish_err(call, ERR_NO_LEADER);
        return;
    }
    c = mem_calloc(1, sizeof(*c));
    if (c == NULL || watch_stream_open(w->hub, send_resp, c, &c->st) != 0) {
        mem_free(c);
        grpc_call_finish_err(call, -ENOMEM);
        return;
    }
    c->svc = w;
    c->call = call;
    c->hasleader = wants_leader(call);
    c->next = w->calls;
    if (w->calls != NULL) {
        w->calls->prev = c;
    }
    w->calls = c;
    grpc_call_set_data(call, c);
}

static void watch_on_cancel(struct grpc_call *call)
{
    struct wcall *c = grpc_call_data(call);
    if (c != NULL) {
        grpc_call_set_data(call, NULL);
        call_remove(c);
    }
}

static void watch_on_writable(struct grpc_call *call)
{
    struct wcall *c = grpc_call_data(call);
    if (c != NULL) {
        watch_stream_writable(c->st);
        schedule(c->svc);
    }
}

/* --------------------------------------------------------------- timers */

static void on_progress(uv_timer_t *t)
{
    struct watch_svc *w = t->data;
    if (w->hub != NULL) {
        watch_hub_progress_tick(w->hub);
        schedule(w);
    }
}

static void on_no_leader(uv_timer_t *t)
{
    struct watch_svc *w = t->data;
    struct wcall *next;
    if (w->leader != 0) {
        return;
    }
    LOGW("watch",
         "no leader for %d election timeouts: ending streams that "
         "require one",
         NO_LEADER_ELECTIONS);
    for (struct wcall *c = w->calls; c != NULL; c = next) {
        next = c->next;
        if (c->hasleader) {
            call_end(c, ERR_NO_LEADER);
        }
    }
    api_lease__no_leader(w->s);
}

/* ------------------------------------ Lock and Election (api_lock.c) */

/* They wait on this hub: it, NULL once the service stops. */
struct watch_hub *api_watch__hub(struct server *s)
{
    struct watch_svc *w = s->watch;
    return w != NULL && !w->stopping ? w->hub : NULL;
}

/* Where they keep their state; NULL once the service stops. */
void **api_watch__lock_slot(struct server *s)
{
    struct watch_svc *w = s->watch;
    return w != NULL && !w->stopping ? &w->lock : NULL;
}

/* Run the hub soon: they created a watcher outside a hub callback. */
void api_watch__kick(struct server *s)
{
    if (s->watch != NULL) {
        schedule(s->watch);
    }
}

/* ---------------------------------------------------- extension points */

/* The first watcher with prev_kv came, or the last one went: every event
 * brings prev, or only the registry's (node_events_prev). */
static void on_prev_wanted(void *ctx, bool on)
{
    struct watch_svc *w = ctx;
    if (!w->stopping && w->s != NULL && w->s->node != NULL) {
        node_events_prev(w->s->node, on);
    }
}

static void obs_events(void *ctx, const struct kv_event *evs, size_t n,
                       int64_t rev)
{
    struct server *s = ctx;
    struct watch_svc *w = s->watch;
    if (w != NULL && w->hub != NULL) {
        watch_hub_events(w->hub, evs, n, rev);
        schedule(w);
    }
    svc_health_on_events(s, evs, n);
}

static void obs_lease(void *ctx, int64_t id, int64_t ttl, bool checkpoint)
{
    api_lease__on_lease(ctx, id, ttl, checkpoint);
}

static void obs_leader(void *ctx, uint64_t leader, uint64_t term)
{
    struct server *s = ctx;
    struct watch_svc *w = s->watch;
    if (w != NULL) {
        w->term = term;
        if (leader == 0 && w->leader != 0 && !w->stopping) {
            uint64_t ms = s->opt->election_timeout_ms * NO_LEADER_ELECTIONS;
            uv_timer_start(&w->no_leader, on_no_leader, ms, 0);
        }
        if (leader != 0) {
            uv_timer_stop(&w->no_leader);
            w->seen_leader = true;
        }
        w->leader = leader;
    }
    api_lease__on_leader(s, leader, term);
    svc_health_on_leader(s, leader, term);
}

/* A snapshot replaced the store: watchers re-read from it, lease timers
 * are rebuilt from its records. */
static void obs_restored(void *ctx, int64_t rev)
{
    struct server *s = ctx;
    struct watch_svc *w = s->watch;
    (void)rev;
    if (w != NULL) {
        watch_hub_restored(w->hub);
    }
    api_lease__restored(s);
    svc_health_on_restored(s);
}

void server__observe(struct server *s, struct node_observer *obs)
{
    obs->ctx = s;
    /* The registry's gauge counts an instance's old document out when it
     * changes or goes (svc__gauge_events): those events always bring it. */
    obs->events_prev_prefix = SVC_PREFIX;
    obs->events = obs_events;
    obs->lease = obs_lease;
    obs->leader = obs_leader;
    obs->restored = obs_restored;
}

size_t server__stream_methods(struct server *s, struct grpc_method *out,
                              size_t cap)
{
    struct watch_svc *w = s->watch;
    size_t n = 0;
    if (w != NULL && cap > 0) {
        memset(&out[0], 0, sizeof(out[0]));
        out[0].path = "/etcdserverpb.Watch/Watch";
        out[0].kind = GRPC_BIDI_STREAM;
        out[0].req_desc = &etcdserverpb__watch_request__descriptor;
        out[0].on_start = watch_on_start;
        out[0].on_msg = watch_on_msg;
        out[0].on_cancel = watch_on_cancel;
        out[0].on_writable = watch_on_writable;
        out[0].ctx = w;
        n = 1;
    }
    return n + api_lease__methods(s, out + n, cap - n);
}

static int read_begin(void *ctx, struct kv_read **rd)
{
    return node_read_begin(ctx, rd);
}

static void read_end(void *ctx, struct kv_read *rd)
{
    node_read_end(ctx, rd);
}

static int watch_start(struct server *s, char *msg, size_t msg_len)
{
    struct watch_svc *w = mem_calloc(1, sizeof(*w));
    struct watch_config cfg;
    struct node_status st;
    int rc;
    if (w == NULL) {
        snprintf(msg, msg_len, "watch: out of memory");
        return -ENOMEM;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.kv = node_kv(s->node);
    cfg.read_begin = read_begin;
    cfg.read_end = read_end;
    cfg.read_ctx = s->node;
    cfg.watchers_max = s->limits.v[LIMIT_WATCHERS];
    cfg.watchers_per_stream_max = s->limits.v[LIMIT_WATCHERS_PER_CONN];
    cfg.events_queued_max = s->limits.v[LIMIT_WATCH_EVENTS_QUEUED];
    cfg.fragment_bytes = s->limits.v[LIMIT_REQUEST_BYTES];
    cfg.prev_wanted = on_prev_wanted;
    cfg.prev_ctx = w;
    rc = watch_hub_init(&cfg, &w->hub);
    if (rc != 0) {
        mem_free(w);
        snprintf(msg, msg_len, "watch: %s", err_str(rc));
        return rc;
    }
    w->s = s;
    node_events_prev(s->node, false); /* no watcher with prev_kv yet */
    node_status(s->node, &st);
    w->leader = st.leader;
    w->term = st.term;
    uv_idle_init(s->loop, &w->run);
    uv_timer_init(s->loop, &w->progress);
    uv_timer_init(s->loop, &w->no_leader);
    w->run.data = w;
    w->progress.data = w;
    w->no_leader.data = w;
    uint64_t every = s->opt->experimental_watch_progress_notify_interval_ms;
    if (every == 0) {
        every = 10 * 60 * 1000;
    }
    if (every < PROGRESS_INTERVAL_MIN) {
        every = PROGRESS_INTERVAL_MIN;
    }
    uv_timer_start(&w->progress, on_progress, every, every);
    w->seen_leader = w->leader != 0;
    if (!w->seen_leader) {
        uv_timer_start(&w->no_leader, on_no_leader,
                       s->opt->election_timeout_ms * NO_LEADER_ELECTIONS, 0);
    }
    s->watch = w;
    return 0;
}

int server__modules_start(struct server *s, char *msg, size_t msg_len)
{
    int rc = watch_start(s, msg, msg_len);
    rc = rc != 0 ? rc : api_lease__start(s, msg, msg_len);
    rc = rc != 0 ? rc : cfgapi_start(s, msg, msg_len);
    return rc != 0 ? rc : svc_health_start(s, msg, msg_len);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct watch_svc *w = h->data;
    if (--w->handles == 0) {
        mem_free(w->ev);
        mem_free(w->evp);
        mem_free(w->kvs);
        mem_free(w->iov);
        mem_free(w);
    }
}

void server__modules_stop(struct server *s)
{
    struct watch_svc *w = s->watch;
    http_stop(s);     /* its streams leave the hub before it closes */
    api_lock_stop(s); /* its watchers go before the hub */
    svc_health_stop(s);
    cfgapi_stop(s);
    api_lease__stop(s);
    if (w == NULL) {
        return;
    }
    w->stopping = true;
    while (w->calls != NULL) {
        call_end(w->calls, ERR_STOPPED);
    }
    watch_hub_close(w->hub);
    w->hub = NULL;
    s->watch = NULL;
    w->handles = 3;
    uv_close((uv_handle_t *)&w->run, on_handle_closed);
    uv_close((uv_handle_t *)&w->progress, on_handle_closed);
    uv_close((uv_handle_t *)&w->no_leader, on_handle_closed);
}

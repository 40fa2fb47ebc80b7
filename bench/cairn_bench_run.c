/*
 * cairn_bench_run.c - the workload engine of cairn-bench.
 *
 * A run is a sequence of phases on one loop: connect every connection;
 * preload the key space (txns of 64 sequential puts, not measured) when
 * asked; grant one lease per client (lease-keepalive); open the watch
 * streams and create every watcher (watch workloads); then the measured
 * phase; then, for watches, drain until every expected event arrived.
 *
 * Clients are slots: each holds at most one outstanding request and is
 * pinned to connection (slot mod conns), so --clients 100 --conns 10 is ten
 * HTTP/2 streams in flight on each of ten sockets.
 *  - Closed loop (no --rate): a slot sends its next request as soon as the
 *    previous one completes; latency is completion minus send time.
 *  - Open loop (--rate R): request i is due at start + i/R. A timerfd
 *    (nanosecond resolution, unlike libuv's millisecond timers) wakes the
 *    loop at the next due time and free slots send what is due; when every
 *    slot is busy, due requests wait for a slot. Latency is measured from
 *    the due time, not the send time, so a server stall shows up as the
 *    latency of every request that should have been sent during it
 *    (coordinated omission, Gil Tene's "How NOT to measure latency").
 * Lease keep-alives use one bidi stream per slot (what etcd clients do);
 * a request is one LeaseKeepAliveRequest and its completion the matching
 * response. Watch workloads: writers are the slots, putting values that
 * carry their (due or send) time; watchers receive on --watch-streams bidi
 * streams and each event's latency is receive time minus that stamp.
 *
 * Failures: a request that ends with a non-OK status is counted under
 * that status; UNIMPLEMENTED also stops the phase (the server lacks the
 * method: every further request would fail the same way). A slot whose
 * connection or stream died stops; the phase ends when no slot can go on.
 * A watchdog ends any phase after timeout_s without progress: a setup phase
 * then fails the run with ERR_TIMEOUT, the measured phase is reported with
 * timed_out set and its in-flight requests as not completed.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/err.h"
#include "bench/cairn_bench.h"
#include "proto/rpc.pb-c.h"

#define PRELOAD_OPS 64
#define WATCHDOG_MS 250

static const char PATH_PUT[] = "/etcdserverpb.KV/Put";
static const char PATH_RANGE[] = "/etcdserverpb.KV/Range";
static const char PATH_TXN[] = "/etcdserverpb.KV/Txn";
static const char PATH_DELETE[] = "/etcdserverpb.KV/DeleteRange";
static const char PATH_GRANT[] = "/etcdserverpb.Lease/LeaseGrant";
static const char PATH_KEEPALIVE[] = "/etcdserverpb.Lease/LeaseKeepAlive";
static const char PATH_WATCH[] = "/etcdserverpb.Watch/Watch";

enum phase {
    PH_CONNECT,
    PH_PRELOAD,
    PH_GRANT,
    PH_WATCH_CREATE,
    PH_MAIN,
    PH_DRAIN,
};

struct run;

struct slot {
    struct cairn__call call;
    struct run *run;
    struct cairn__conn *conn;
    enum bench_op op;
    uint64_t t0;      /* latency start: due time (open loop) or send time */
    uint64_t wkey;    /* watch: key of the outstanding put */
    int64_t lease_id; /* lease-keepalive */
    bool busy;
    bool dead;
    bool stream_open; /* lease-keepalive: its bidi stream is up */
};

struct run {
    const struct bench_cfg *cfg;
    struct bench_result *res;
    uv_loop_t loop;
    struct cairn__net net;
    struct prng prng;
    struct slot *slots;
    uint32_t slots_count;
    uint32_t *free_slots; /* open loop: idle slots */
    uint32_t free_count;
    uint8_t *value;
    unsigned digits;
    /* encoding scratch: packing copies, so one set serves every slot */
    char keys[BENCH_TXN_OPS_MAX > PRELOAD_OPS ? BENCH_TXN_OPS_MAX : PRELOAD_OPS]
             [BENCH_KEY_MAX];
    char range_end[BENCH_KEY_MAX];
    Etcdserverpb__PutRequest
        puts[PRELOAD_OPS > BENCH_TXN_OPS_MAX ? PRELOAD_OPS : BENCH_TXN_OPS_MAX];
    Etcdserverpb__RequestOp ops[BENCH_TXN_OPS_MAX];
    Etcdserverpb__RequestOp *op_ptrs[BENCH_TXN_OPS_MAX];
    /* the current phase */
    enum phase phase;
    bool record;
    uint64_t total; /* requests to issue; 0 = until deadline */
    uint64_t deadline_ns;
    uint64_t issued;
    uint64_t done;
    uint32_t inflight;
    uint32_t alive; /* slots not dead */
    bool stopping;  /* issue nothing more */
    uint64_t seq;   /* next sequential key */
    uint64_t start_ns;
    uint64_t last_done_ns;
    uint64_t setup_errors;
    /* open loop */
    bool open_loop;
    double interval_ns;
    int tfd;
    uv_poll_t tpoll;
    bool tpoll_init;
    /* watchdog */
    uv_timer_t watchdog;
    uint64_t progress_seen;
    uint64_t progress_ns;
    bool stalled;
    /* watch */
    struct cairn__call *wcalls;
    uint32_t wcalls_count;
    uint32_t wcalls_dead;
    uint64_t now_ns; /* receive time of the message being scanned */
    uint64_t last_event_ns;
};

/* ------------------------------------------------------------- helpers */

static uint64_t progress(const struct run *r)
{
    return r->done + r->res->events + r->res->watchers_created + r->wcalls_dead;
}

static void note_error(struct run *r, const char *what, int status,
                       const char *msg)
{
    if (r->res->first_error[0] != 0) {
        return;
    }
    snprintf(r->res->first_error, sizeof(r->res->first_error), "%s: %s%s%s",
             what, bench_status_name(status), msg[0] ? ": " : "", msg);
}

static void phase_stop(struct run *r)
{
    uv_stop(&r->loop);
}

static void key_at(struct run *r, char *out, uint64_t idx, size_t *len)
{
    *len = bench_key_format(out, BENCH_KEY_MAX, r->cfg->key_prefix,
                            r->cfg->key_bytes, r->digits, idx);
    ASSERT(*len > 0);
}

static uint64_t next_key(struct run *r, uint64_t span)
{
    if (r->cfg->seq_keys) {
        uint64_t k = r->seq % r->cfg->key_space;
        r->seq += span;
        return k;
    }
    return prng_below(&r->prng, r->cfg->key_space);
}

/* Watchers that see a put to key idx. */
static uint64_t watchers_on(const struct run *r, uint64_t idx)
{
    const struct bench_cfg *c = r->cfg;
    if (c->watch_prefix) {
        return r->res->watchers_created;
    }
    uint64_t w = c->watchers / c->watch_keys;
    return w + (idx < c->watchers % c->watch_keys ? 1 : 0);
}

static bool is_watch(const struct bench_cfg *c)
{
    return c->workload == BENCH_WL_WATCH ||
           c->workload == BENCH_WL_WATCH_LATENCY;
}

/* ------------------------------------------------------------ encoding */

static int add_put(struct run *r, struct slot *s, uint64_t idx, uint64_t t0)
{
    Etcdserverpb__PutRequest m = ETCDSERVERPB__PUT_REQUEST__INIT;
    size_t klen;
    key_at(r, r->keys[0], idx, &klen);
    if (is_watch(r->cfg)) {
        bench_stamp_put(r->value, t0);
    }
    m.key.data = (uint8_t *)r->keys[0];
    m.key.len = klen;
    m.value.data = r->value;
    m.value.len = r->cfg->val_bytes;
    return cairn__call_add(&s->call, &m.base);
}

static int add_range(struct run *r, struct slot *s, uint64_t idx)
{
    Etcdserverpb__RangeRequest m = ETCDSERVERPB__RANGE_REQUEST__INIT;
    size_t klen;
    if (r->cfg->workload == BENCH_WL_READY) {
        memcpy(r->keys[0], "health", 6);
        klen = 6;
    } else {
        key_at(r, r->keys[0], idx, &klen);
    }
    m.key.data = (uint8_t *)r->keys[0];
    m.key.len = klen;
    m.serializable = r->cfg->serializable;
    unsigned d = r->cfg->prefix_digits;
    if (d > 0) {
        /* The keys sharing all but the last d digits: [p, p+1). */
        size_t plen = klen > d ? klen - d : 1;
        memcpy(r->range_end, r->keys[0], plen);
        r->range_end[plen - 1]++;
        m.key.len = plen;
        m.range_end.data = (uint8_t *)r->range_end;
        m.range_end.len = plen;
    }
    return cairn__call_add(&s->call, &m.base);
}

/* A txn of n puts to keys first, first+1, ... (mod key_space): distinct
 * keys, as etcd refuses duplicates in one txn. */
static int add_txn(struct run *r, struct slot *s, uint64_t first, size_t n)
{
    Etcdserverpb__TxnRequest m = ETCDSERVERPB__TXN_REQUEST__INIT;
    ASSERT(n > 0 && n <= BENCH_TXN_OPS_MAX);
    for (size_t j = 0; j < n; j++) {
        Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
        Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
        size_t klen;
        key_at(r, r->keys[j], (first + j) % r->cfg->key_space, &klen);
        p.key.data = (uint8_t *)r->keys[j];
        p.key.len = klen;
        p.value.data = r->value;
        p.value.len = r->cfg->val_bytes;
        r->puts[j] = p;
        op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        op.request_put = &r->puts[j];
        r->ops[j] = op;
        r->op_ptrs[j] = &r->ops[j];
    }
    m.n_success = n;
    m.success = r->op_ptrs;
    return cairn__call_add(&s->call, &m.base);
}

static int add_delete(struct run *r, struct slot *s, uint64_t idx)
{
    Etcdserverpb__DeleteRangeRequest m =
        ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    size_t klen;
    key_at(r, r->keys[0], idx, &klen);
    m.key.data = (uint8_t *)r->keys[0];
    m.key.len = klen;
    return cairn__call_add(&s->call, &m.base);
}

/* ------------------------------------------------------------- issuing */

static enum bench_op main_op(struct run *r)
{
    switch (r->cfg->workload) {
    case BENCH_WL_RANGE:
    case BENCH_WL_READY:
        return BENCH_OP_RANGE;
    case BENCH_WL_TXN_PUT:
        return BENCH_OP_TXN;
    case BENCH_WL_DELETE:
        return BENCH_OP_DELETE;
    case BENCH_WL_LEASE_KEEPALIVE:
        return BENCH_OP_KEEPALIVE;
    case BENCH_WL_MIXED: {
        uint64_t scale = 1000000;
        uint64_t num = (uint64_t)llround(r->cfg->read_ratio * (double)scale);
        return prng_chance(&r->prng, num, scale) ? BENCH_OP_RANGE
                                                 : BENCH_OP_PUT;
    }
    default:
        return BENCH_OP_PUT;
    }
}

static int start_keepalive(struct run *r, struct slot *s)
{
    Etcdserverpb__LeaseKeepAliveRequest m =
        ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    (void)r;
    if (s->lease_id == 0) {
        return ERR_STOPPED;
    }
    m.id = s->lease_id;
    s->call.want_msgs = true;
    int rc = cairn__call_add(&s->call, &m.base);
    if (rc != 0) {
        return rc;
    }
    if (s->stream_open) {
        return cairn__call_push(&s->call);
    }
    rc = cairn__call_start(&s->call, s->conn, PATH_KEEPALIVE, true);
    s->stream_open = rc == 0;
    return rc;
}

/* Encodes and starts the slot's next request of this phase. */
static int encode_start(struct run *r, struct slot *s)
{
    const struct bench_cfg *c = r->cfg;
    const char *path = PATH_PUT;
    int rc;
    s->call.want_msgs = false;
    switch (s->op) {
    case BENCH_OP_PUT:
        if (!is_watch(c) || c->watch_prefix) {
            s->wkey = next_key(r, 1);
        } else {
            s->wkey = c->seq_keys ? r->seq++ % c->watch_keys
                                  : prng_below(&r->prng, c->watch_keys);
        }
        rc = add_put(r, s, s->wkey, s->t0);
        break;
    case BENCH_OP_RANGE:
        path = PATH_RANGE;
        rc = add_range(r, s, next_key(r, 1));
        break;
    case BENCH_OP_TXN:
        path = PATH_TXN;
        if (r->phase == PH_PRELOAD) {
            uint64_t first = r->issued * PRELOAD_OPS;
            uint64_t left = c->key_space - first;
            rc = add_txn(r, s, first, left < PRELOAD_OPS ? left : PRELOAD_OPS);
        } else {
            rc = add_txn(r, s, next_key(r, c->txn_ops), c->txn_ops);
        }
        break;
    case BENCH_OP_DELETE:
        path = PATH_DELETE;
        rc = add_delete(r, s, next_key(r, 1));
        break;
    case BENCH_OP_GRANT: {
        Etcdserverpb__LeaseGrantRequest m =
            ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
        m.ttl = c->lease_ttl_s;
        path = PATH_GRANT;
        s->call.want_msgs = true;
        rc = cairn__call_add(&s->call, &m.base);
        break;
    }
    case BENCH_OP_KEEPALIVE:
        return start_keepalive(r, s);
    default:
        return ERR_INVALID;
    }
    if (rc != 0) {
        return rc;
    }
    return cairn__call_start(&s->call, s->conn, path, false);
}

static void slot_kill(struct run *r, struct slot *s)
{
    if (!s->dead) {
        s->dead = true;
        ASSERT(r->alive > 0);
        r->alive--;
    }
}

/* Sends the slot's next request, latency measured from t0. False when the
 * slot cannot send (its connection or stream is gone). */
static bool slot_issue(struct run *r, struct slot *s, uint64_t t0)
{
    ASSERT(!s->busy && !s->dead);
    switch (r->phase) {
    case PH_PRELOAD:
        s->op = BENCH_OP_TXN;
        break;
    case PH_GRANT:
        s->op = BENCH_OP_GRANT;
        break;
    default:
        s->op = main_op(r);
        break;
    }
    s->t0 = t0;
    int rc = encode_start(r, s);
    if (rc != 0) {
        slot_kill(r, s);
        return false;
    }
    s->busy = true;
    r->issued++;
    r->inflight++;
    return true;
}

static bool may_issue(struct run *r, uint64_t now)
{
    if (r->stopping) {
        return false;
    }
    if (r->total > 0 ? r->issued >= r->total : now >= r->deadline_ns) {
        r->stopping = true;
        return false;
    }
    return true;
}

/* True while the phase may still send something. */
static bool phase_more(const struct run *r)
{
    return !r->stopping && r->alive > 0 &&
           (r->total == 0 || r->issued < r->total);
}

static void maybe_finish(struct run *r)
{
    if (r->inflight == 0 && !phase_more(r)) {
        phase_stop(r);
    }
}

static void arm_timer(struct run *r, uint64_t due_ns)
{
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(due_ns / 1000000000ull);
    its.it_value.tv_nsec = (long)(due_ns % 1000000000ull);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) {
        its.it_value.tv_nsec = 1; /* zero would disarm */
    }
    int rc = timerfd_settime(r->tfd, TFD_TIMER_ABSTIME, &its, NULL);
    ASSERT(rc == 0);
}

/* Open loop: sends every request that is due while a slot is free, then
 * arms the timer for the next one. Each round pops a free slot. */
static void open_dispatch(struct run *r)
{
    uint64_t now = clock_mono_ns();
    while (r->free_count > 0 && may_issue(r, now)) {
        uint64_t due =
            r->start_ns + (uint64_t)((double)r->issued * r->interval_ns);
        if (due > now) {
            arm_timer(r, due);
            return;
        }
        struct slot *s = &r->slots[r->free_slots[--r->free_count]];
        slot_issue(r, s, due);
    }
}

static void free_push(struct run *r, struct slot *s)
{
    ASSERT(r->free_count < r->slots_count);
    r->free_slots[r->free_count++] = (uint32_t)(s - r->slots);
}

/* ----------------------------------------------------------- completion */

static void record(struct run *r, struct slot *s, int status, uint64_t now)
{
    struct bench_result *res = r->res;
    if (!r->record) {
        if (status != BENCH_ST_OK) {
            r->setup_errors++;
            note_error(r, bench_op_name(s->op), status, s->call.message);
        }
        if (status == BENCH_ST_UNIMPLEMENTED) {
            res->unimplemented = true;
            r->stopping = true;
        }
        return;
    }
    res->status_count[status]++;
    if (status == BENCH_ST_OK) {
        uint64_t lat = now > s->t0 ? now - s->t0 : 0;
        res->ok++;
        bench_hist_record(&res->all, lat);
        bench_hist_record(&res->op[s->op], lat);
        if (is_watch(r->cfg)) {
            res->events_expected += watchers_on(r, s->wkey);
        }
        return;
    }
    note_error(r, bench_op_name(s->op), status, s->call.message);
    if (status == BENCH_ST_UNIMPLEMENTED) {
        res->unimplemented = true;
        r->stopping = true;
    }
}

static void complete(struct run *r, struct slot *s, int status)
{
    uint64_t now = clock_mono_ns();
    ASSERT(s->busy && r->inflight > 0);
    s->busy = false;
    r->inflight--;
    r->done++;
    r->last_done_ns = now;
    record(r, s, status, now);
    if (s->op == BENCH_OP_KEEPALIVE && !s->stream_open) {
        slot_kill(r, s);
    }
    if (!s->dead) {
        if (r->open_loop && r->phase == PH_MAIN) {
            free_push(r, s);
            open_dispatch(r);
        } else if (may_issue(r, now)) {
            slot_issue(r, s, now);
        }
    }
    maybe_finish(r);
}

static void slot_msg(struct cairn__call *call, const uint8_t *msg, size_t len)
{
    struct slot *s = call->data;
    struct run *r = s->run;
    int64_t v = 0;
    if (s->op == BENCH_OP_GRANT) {
        if (bench_grant_resp_id(msg, len, &v) == 0) {
            s->lease_id = v;
        }
        return;
    }
    if (s->op != BENCH_OP_KEEPALIVE || !s->busy) {
        return;
    }
    int rc = bench_keepalive_resp_ttl(msg, len, &v);
    complete(r, s, rc == 0 && v > 0 ? BENCH_ST_OK : BENCH_ST_BAD_RESPONSE);
}

static void slot_done(struct cairn__call *call, int status)
{
    struct slot *s = call->data;
    struct run *r = s->run;
    if (s->op == BENCH_OP_KEEPALIVE) {
        /* The stream ended: fails the request in flight, if any. */
        s->stream_open = false;
        if (s->busy) {
            complete(r, s, status == BENCH_ST_OK ? BENCH_ST_TRANSPORT : status);
        } else {
            slot_kill(r, s);
            maybe_finish(r);
        }
        return;
    }
    if (s->op == BENCH_OP_GRANT && status == BENCH_ST_OK && s->lease_id == 0) {
        status = BENCH_ST_BAD_RESPONSE;
    }
    complete(r, s, status);
}

/* ------------------------------------------------------------- watches */

static void on_event(void *ctx, const uint8_t *value, size_t len)
{
    struct run *r = ctx;
    uint64_t t;
    r->res->events++;
    if (bench_stamp_get(value, len, &t)) {
        bench_hist_record(&r->res->event_lat,
                          r->now_ns > t ? r->now_ns - t : 0);
    }
}

static void watch_msg(struct cairn__call *call, const uint8_t *msg, size_t len)
{
    struct run *r = call->data;
    struct bench_result *res = r->res;
    struct bench_watch_resp w;
    r->now_ns = clock_mono_ns();
    uint64_t before = res->events;
    if (bench_watch_resp_scan(msg, len, &w, on_event, r) != 0) {
        res->status_count[BENCH_ST_BAD_RESPONSE]++;
        note_error(r, "watch", BENCH_ST_BAD_RESPONSE, "malformed response");
        return;
    }
    if (w.created) {
        res->watchers_created++;
        if (r->phase == PH_WATCH_CREATE &&
            res->watchers_created == r->cfg->watchers) {
            phase_stop(r);
        }
    }
    if (w.canceled) {
        res->status_count[BENCH_ST_BAD_RESPONSE]++;
        note_error(r, "watch", BENCH_ST_BAD_RESPONSE, "watcher canceled");
    }
    if (res->events != before) {
        r->last_event_ns = r->now_ns;
        if (r->phase == PH_DRAIN && res->events >= res->events_expected) {
            phase_stop(r);
        }
    }
}

static void watch_done(struct cairn__call *call, int status)
{
    struct run *r = call->data;
    r->wcalls_dead++;
    if (status != BENCH_ST_OK) {
        r->res->status_count[status]++;
        note_error(r, "watch stream", status, call->message);
    }
    if (status == BENCH_ST_UNIMPLEMENTED) {
        r->res->unimplemented = true;
    }
    if (r->wcalls_dead == r->wcalls_count &&
        (r->phase == PH_WATCH_CREATE || r->phase == PH_DRAIN)) {
        phase_stop(r);
    }
}

static int watch_open(struct run *r)
{
    const struct bench_cfg *c = r->cfg;
    uint32_t n =
        c->watch_streams < c->watchers ? c->watch_streams : c->watchers;
    r->wcalls = mem_calloc(n, sizeof(*r->wcalls));
    if (r->wcalls == NULL) {
        return -ENOMEM;
    }
    r->wcalls_count = n;
    for (uint32_t i = 0; i < n; i++) {
        cairn__call_init(&r->wcalls[i], watch_msg, watch_done, r);
    }
    for (uint32_t j = 0; j < c->watchers; j++) {
        Etcdserverpb__WatchRequest m = ETCDSERVERPB__WATCH_REQUEST__INIT;
        Etcdserverpb__WatchCreateRequest cr =
            ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
        size_t klen;
        char end[BENCH_KEY_MAX];
        if (c->watch_prefix) {
            klen = strlen(c->key_prefix);
            memcpy(r->keys[0], c->key_prefix, klen);
            memcpy(end, c->key_prefix, klen);
            end[klen - 1]++;
            cr.range_end.data = (uint8_t *)end;
            cr.range_end.len = klen;
        } else {
            key_at(r, r->keys[0], j % c->watch_keys, &klen);
        }
        cr.key.data = (uint8_t *)r->keys[0];
        cr.key.len = klen;
        m.request_union_case =
            ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
        m.create_request = &cr;
        int rc = cairn__call_add(&r->wcalls[j % n], &m.base);
        if (rc != 0) {
            return rc;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        struct cairn__conn *conn = &r->net.conns[i % r->net.conns_count];
        int rc = cairn__call_start(&r->wcalls[i], conn, PATH_WATCH, true);
        if (rc != 0) {
            r->wcalls_dead++;
        }
    }
    return 0;
}

/* ------------------------------------------------------------- timers */

static void on_tick(uv_poll_t *h, int status, int events)
{
    struct run *r = h->data;
    uint64_t expirations;
    (void)status;
    (void)events;
    ssize_t n = read(r->tfd, &expirations, sizeof(expirations));
    (void)n;
    if (r->phase == PH_MAIN && r->open_loop) {
        open_dispatch(r);
        maybe_finish(r);
    }
    cairn__net_flush(&r->net);
}

static void on_watchdog(uv_timer_t *t)
{
    struct run *r = t->data;
    uint64_t now = clock_mono_ns();
    uint64_t p = progress(r);
    if (p != r->progress_seen) {
        r->progress_seen = p;
        r->progress_ns = now;
    } else if ((double)(now - r->progress_ns) / 1e9 > r->cfg->timeout_s) {
        r->stalled = true;
        phase_stop(r);
    }
    if (r->phase == PH_MAIN && r->total == 0 && now >= r->deadline_ns) {
        r->stopping = true;
        maybe_finish(r);
    }
    cairn__net_flush(&r->net);
}

/* ---------------------------------------------------------- the phases */

/* Runs the loop until the phase stops itself (or the watchdog does). */
static void phase_run(struct run *r)
{
    r->stalled = false;
    r->progress_seen = progress(r);
    r->progress_ns = clock_mono_ns();
    cairn__net_flush(&r->net);
    uv_run(&r->loop, UV_RUN_DEFAULT);
}

/* A closed-loop phase over every live slot; total 0 = until deadline. */
static void phase_requests(struct run *r, enum phase ph, uint64_t total,
                           bool rec)
{
    uint64_t now = clock_mono_ns();
    r->phase = ph;
    r->record = rec;
    r->total = total;
    r->issued = r->done = 0;
    r->stopping = false;
    r->start_ns = r->last_done_ns = now;
    r->seq = 0;
    if (r->open_loop && ph == PH_MAIN) {
        r->free_count = 0;
        for (uint32_t i = 0; i < r->slots_count; i++) {
            if (!r->slots[i].dead) {
                free_push(r, &r->slots[i]);
            }
        }
        open_dispatch(r);
    } else {
        for (uint32_t i = 0; i < r->slots_count && may_issue(r, now); i++) {
            if (!r->slots[i].dead) {
                slot_issue(r, &r->slots[i], now);
            }
        }
    }
    if (r->inflight == 0 && !phase_more(r)) {
        return;
    }
    phase_run(r);
}

static bool all_connected(const struct cairn__net *net)
{
    return net->connected + net->dead >= net->conns_count;
}

static void on_net_change(struct cairn__net *net)
{
    struct run *r = net->data;
    if (r->phase == PH_CONNECT && all_connected(net)) {
        phase_stop(r);
    }
}

static int phase_connect(struct run *r)
{
    const struct bench_cfg *c = r->cfg;
    int rc =
        cairn__net_open(&r->net, &r->loop, c->addrs, c->addrs_count, c->conns);
    if (rc != 0) {
        return rc;
    }
    r->net.on_change = on_net_change;
    r->net.data = r;
    r->phase = PH_CONNECT;
    if (!all_connected(&r->net)) {
        phase_run(r);
    }
    if (r->net.connected == 0) {
        int err = r->net.conns[0].err;
        return err != 0 ? err : ERR_TIMEOUT;
    }
    for (uint32_t i = 0; i < r->slots_count; i++) {
        struct slot *s = &r->slots[i];
        s->conn = &r->net.conns[i % r->net.conns_count];
        if (s->conn->dead) {
            slot_kill(r, s);
        }
    }
    return 0;
}

static int phase_setup(struct run *r)
{
    const struct bench_cfg *c = r->cfg;
    if (c->preload) {
        phase_requests(r, PH_PRELOAD,
                       (c->key_space + PRELOAD_OPS - 1) / PRELOAD_OPS, false);
        if (r->stalled) {
            return ERR_TIMEOUT;
        }
    }
    if (c->workload == BENCH_WL_LEASE_KEEPALIVE) {
        phase_requests(r, PH_GRANT, r->slots_count, false);
        if (r->stalled) {
            return ERR_TIMEOUT;
        }
        if (r->res->unimplemented) {
            return 1;
        }
    }
    if (is_watch(c)) {
        int rc = watch_open(r);
        if (rc != 0) {
            return rc;
        }
        r->phase = PH_WATCH_CREATE;
        if (r->wcalls_dead < r->wcalls_count) {
            phase_run(r);
        }
        if (r->stalled) {
            return ERR_TIMEOUT;
        }
        if (r->wcalls_dead == r->wcalls_count) {
            return 1; /* every watch stream failed: nothing to measure */
        }
    }
    return 0;
}

static void phase_main(struct run *r)
{
    const struct bench_cfg *c = r->cfg;
    struct bench_result *res = r->res;
    uint64_t total = c->total;
    if (c->rate > 0) {
        r->open_loop = true;
        r->interval_ns = 1e9 / c->rate;
        if (total == 0) {
            total = (uint64_t)llround(c->rate * c->duration_s);
        }
    }
    r->deadline_ns = clock_mono_ns() + (uint64_t)(c->duration_s * 1e9);
    phase_requests(r, PH_MAIN, total, true);
    res->timed_out = r->stalled;
    res->requested = total > 0 ? total : r->issued;
    res->not_sent = res->requested - r->issued;
    res->elapsed_s = (double)(r->last_done_ns - r->start_ns) / 1e9;
    if (is_watch(c) && !res->timed_out && res->events < res->events_expected) {
        r->phase = PH_DRAIN;
        phase_run(r);
        res->timed_out = r->stalled;
    }
    if (is_watch(c) && res->events > 0) {
        uint64_t last = r->last_event_ns > r->last_done_ns ? r->last_event_ns
                                                           : r->last_done_ns;
        res->events_elapsed_s = (double)(last - r->start_ns) / 1e9;
    }
}

/* ------------------------------------------------------ setup, teardown */

static int run_init(struct run *r, const struct bench_cfg *c,
                    struct bench_result *res)
{
    r->cfg = c;
    r->res = res;
    r->tfd = -1;
    prng_seed(&r->prng, c->seed);
    r->digits = bench_digits_for(is_watch(c) && c->watch_keys > c->key_space
                                     ? c->watch_keys
                                     : c->key_space);
    r->slots_count = c->clients;
    r->slots = mem_calloc(c->clients, sizeof(*r->slots));
    r->free_slots = mem_calloc(c->clients, sizeof(*r->free_slots));
    r->value = mem_alloc(c->val_bytes + BENCH_STAMP_BYTES);
    if (r->slots == NULL || r->free_slots == NULL || r->value == NULL) {
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < c->val_bytes; i++) {
        r->value[i] = (uint8_t)('a' + prng_below(&r->prng, 26));
    }
    for (uint32_t i = 0; i < c->clients; i++) {
        struct slot *s = &r->slots[i];
        s->run = r;
        cairn__call_init(&s->call, slot_msg, slot_done, s);
    }
    r->alive = c->clients;
    int rc = uv_loop_init(&r->loop);
    if (rc != 0) {
        return rc;
    }
    uv_timer_init(&r->loop, &r->watchdog);
    r->watchdog.data = r;
    uv_timer_start(&r->watchdog, on_watchdog, WATCHDOG_MS, WATCHDOG_MS);
    r->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (r->tfd < 0) {
        return -errno;
    }
    uv_poll_init(&r->loop, &r->tpoll, r->tfd);
    r->tpoll.data = r;
    r->tpoll_init = true;
    uv_poll_start(&r->tpoll, UV_READABLE, on_tick);
    return 0;
}

static void run_close(struct run *r)
{
    if (r->net.conns != NULL) {
        cairn__net_close(&r->net);
    }
    if (r->tpoll_init) {
        uv_close((uv_handle_t *)&r->tpoll, NULL);
    }
    if (r->watchdog.data != NULL) {
        uv_close((uv_handle_t *)&r->watchdog, NULL);
        uv_run(&r->loop, UV_RUN_DEFAULT);
        int rc = uv_loop_close(&r->loop);
        ASSERT(rc == 0);
    }
    if (r->tfd >= 0) {
        close(r->tfd);
    }
    for (uint32_t i = 0; r->slots != NULL && i < r->slots_count; i++) {
        cairn__call_free(&r->slots[i].call);
    }
    for (uint32_t i = 0; i < r->wcalls_count; i++) {
        cairn__call_free(&r->wcalls[i]);
    }
    mem_free(r->wcalls);
    mem_free(r->slots);
    mem_free(r->free_slots);
    mem_free(r->value);
}

static void result_reset(struct bench_result *res)
{
    memset(res, 0, offsetof(struct bench_result, all));
    bench_hist_reset(&res->all);
    for (int i = 0; i < BENCH_OP__COUNT; i++) {
        bench_hist_reset(&res->op[i]);
    }
    res->watchers_created = res->events = res->events_expected = 0;
    res->events_elapsed_s = 0;
    bench_hist_reset(&res->event_lat);
}

int bench_run(const struct bench_cfg *cfg, struct bench_result *res)
{
    char why[128];
    int rc = bench_cfg_check(cfg, why, sizeof(why));
    if (rc != 0) {
        return rc;
    }
    result_reset(res);
    struct run *r = mem_calloc(1, sizeof(*r));
    if (r == NULL) {
        return -ENOMEM;
    }
    rc = run_init(r, cfg, res);
    if (rc == 0) {
        rc = phase_connect(r);
    }
    if (rc == 0) {
        rc = phase_setup(r);
        if (rc == 0) {
            phase_main(r);
        } else if (rc > 0) {
            res->requested = cfg->total;
            res->not_sent = cfg->total;
            rc = 0;
        }
    }
    run_close(r);
    mem_free(r);
    return rc;
}

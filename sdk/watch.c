/*
 * watch.c - libcairn's blocking watch: one Watch stream per struct
 * cairn_watch on the client's connection, a bounded queue of decoded
 * responses, and resume after a broken stream.
 *
 * Happy path. cairn_watch_open starts a bidi stream, sends one create
 * request (start_revision as asked) and waits for "created". Responses
 * arrive whenever the client's loop runs (in cairn_watch_next, or while
 * any other call on the client runs) and are decoded into the queue;
 * cairn_watch_next pops them in order. next_rev tracks the revision after
 * the last one queued: after creation it is header.revision + 1 when the
 * watch started "from now", after events the last event's mod_revision + 1,
 * after a progress notification header.revision + 1.
 *
 * Failures. A stream that ends without being canceled by the server (the
 * connection broke, the member went away, Unavailable such as "no leader")
 * is re-created from next_rev on a fresh connection (failover, backoff)
 * the next time cairn_watch_next runs: no event is lost or repeated. A full
 * queue (CAIRN_WATCH_QUEUE_MAX) cancels the stream the same way, so a slow
 * reader costs memory only up to the bound. A server cancel ends the watch
 * for good: CAIRN_E_COMPACTED (with compact_revision) or CAIRN_E_CANCELED
 * with cancel_reason. A response that does not decode ends it with
 * CAIRN_E_BAD_RESPONSE.
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "sdk/client_int.h"

#define WATCH_PATH "/etcdserverpb.Watch/Watch"

struct witem {
    struct witem *next;
    struct cairn_watch_resp resp;
};

struct cairn_watch {
    struct cairn_client *c;
    struct cairn_watch *next; /* the client's list */
    struct cairn__call call;
    bool live;    /* the stream is up (started and not ended) */
    bool created; /* the server confirmed the current stream's create */
    bool done;    /* the current stream ended */
    bool news;    /* something arrived since the waiter cleared it */
    uint8_t *key;
    size_t key_len;
    uint8_t *range_end;
    size_t range_end_len;
    struct cairn_watch_req req;
    int64_t next_rev; /* 0: "from now" until the first create answer */
    struct witem *head;
    struct witem *tail;
    size_t queued;
    int end_err; /* sticky once set */
    int64_t compact_rev;
    uint64_t resumes;
    char reason[256];
};

static void wq_push(struct cairn_watch *w, struct witem *it)
{
    it->next = NULL;
    if (w->tail != NULL) {
        w->tail->next = it;
    } else {
        w->head = it;
    }
    w->tail = it;
    w->queued++;
    w->news = true;
}

static void set_end(struct cairn_watch *w, int err, const char *reason)
{
    w->news = true;
    if (w->end_err == 0) {
        w->end_err = err;
        snprintf(w->reason, sizeof(w->reason), "%s", reason);
    }
    cairn__call_cancel(&w->call);
}

static void on_create_answer(struct cairn_watch *w,
                             const Etcdserverpb__WatchResponse *m)
{
    w->created = true;
    w->news = true;
    if (w->next_rev == 0 && m->header != NULL) {
        w->next_rev = m->header->revision + 1;
    }
}

static void watch_msg(struct cairn__call *call, const uint8_t *p, size_t n)
{
    struct cairn_watch *w = call->data;
    Etcdserverpb__WatchResponse *m = (void *)protobuf_c_message_unpack(
        &etcdserverpb__watch_response__descriptor, NULL, n, p);
    if (m == NULL) {
        set_end(w, CAIRN_E_BAD_RESPONSE, "watch response does not parse");
        return;
    }
    if (m->canceled) {
        if (m->compact_revision > 0) {
            w->compact_rev = m->compact_revision;
            set_end(w, CAIRN_E_COMPACTED,
                    "etcdserver: mvcc: required revision has been compacted");
        } else {
            set_end(w, CAIRN_E_CANCELED,
                    m->cancel_reason != NULL && m->cancel_reason[0] != 0
                        ? m->cancel_reason
                        : "watch canceled");
        }
        protobuf_c_message_free_unpacked(&m->base, NULL);
        return;
    }
    if (m->created) {
        on_create_answer(w, m);
        if (m->n_events == 0) {
            protobuf_c_message_free_unpacked(&m->base, NULL);
            return;
        }
    }
    if (w->queued >= CAIRN_WATCH_QUEUE_MAX) {
        /* Full: drop this one and the stream; resume from next_rev. */
        protobuf_c_message_free_unpacked(&m->base, NULL);
        cairn__call_cancel(&w->call);
        return;
    }
    struct witem *it = mem_calloc(1, sizeof(*it));
    int64_t hdr_rev = m->header != NULL ? m->header->revision : 0;
    int rc = it == NULL ? CAIRN_E_NOMEM : cairn__watch_from_pb(m, &it->resp);
    if (rc != 0) {
        if (it == NULL) {
            protobuf_c_message_free_unpacked(&m->base, NULL);
        }
        mem_free(it);
        set_end(w, rc, cairn_strerror(rc));
        return;
    }
    struct cairn_watch_resp *r = &it->resp;
    if (r->events_count > 0) {
        w->next_rev = r->events[r->events_count - 1].kv.mod_revision + 1;
    } else if (hdr_rev + 1 > w->next_rev) {
        w->next_rev = hdr_rev + 1; /* progress: all before it was sent */
    }
    wq_push(w, it);
}

static void watch_done(struct cairn__call *call, int status)
{
    struct cairn_watch *w = call->data;
    (void)status;
    w->live = false;
    w->done = true;
    w->news = true;
}

void cairn__watches_conn_lost(struct cairn_client *c)
{
    for (struct cairn_watch *w = c->watches; w != NULL; w = w->next) {
        if (w->live) { /* the call ended without its callback */
            w->live = false;
            w->done = true;
        }
    }
}

/* Starts a stream from next_rev and waits for its create answer. */
static int stream_start(struct cairn_watch *w, uint64_t deadline_ns)
{
    struct cairn_client *c = w->c;
    struct cairn__conn *conn;
    int rc = cairn__conn_get(c, deadline_ns, &conn);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__WatchCreateRequest cr =
        ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    Etcdserverpb__WatchCreateRequest__FilterType filters[2];
    size_t nf = 0;
    cr.key.data = w->key;
    cr.key.len = w->key_len;
    cr.range_end.data = w->range_end;
    cr.range_end.len = w->range_end_len;
    cr.start_revision = w->next_rev;
    cr.prev_kv = w->req.prev_kv;
    cr.progress_notify = w->req.progress_notify;
    if (w->req.filters & CAIRN_WATCH_NOPUT) {
        filters[nf++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
    }
    if (w->req.filters & CAIRN_WATCH_NODELETE) {
        filters[nf++] =
            ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE;
    }
    cr.n_filters = nf;
    cr.filters = filters;
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case =
        ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &cr;
    w->call.token = c->token;
    w->call.in_max = c->recv_bytes_max;
    rc = cairn__call_add(&w->call, &req.base);
    if (rc == 0) {
        rc = cairn__call_start(&w->call, conn, WATCH_PATH, true);
    }
    if (rc != 0) {
        cairn__conn_drop(c);
        return cairn__fail(c, CAIRN_E_UNAVAILABLE, 14, "watch stream failed");
    }
    w->live = true;
    w->done = false;
    w->created = false;
    /* Wait for the create answer, the end of the stream, or the deadline. */
    while (!w->created && !w->done && w->end_err == 0) {
        w->news = false;
        if (!cairn__run_until(c, &w->news, deadline_ns)) {
            break;
        }
    }
    /* Created, then canceled (a compacted start revision: etcd sends the
     * two answers apart, cairnd often in one read): the stream was made,
     * so the caller gets the watch and its end from cairn_watch_next,
     * with the compaction revision, whichever way the answers came. */
    if (w->end_err != 0 && !w->created) {
        return cairn__fail(c, w->end_err, 0, "%s", w->reason);
    }
    if (!w->created) {
        if (w->live) {
            cairn__call_cancel(&w->call);
        }
        return w->done ? cairn__fail(c, CAIRN_E_UNAVAILABLE, 14,
                                     "watch stream ended before created")
                       : cairn__fail(c, CAIRN_E_TIMEOUT, 4,
                                     "context deadline exceeded");
    }
    return 0;
}

static void watch_free(struct cairn_watch *w)
{
    while (w->head != NULL) { /* bounded by queued */
        struct witem *it = w->head;
        w->head = it->next;
        cairn_watch_resp_free(&it->resp);
        mem_free(it);
    }
    cairn__call_free(&w->call);
    mem_free(w->key);
    mem_free(w->range_end);
    mem_free(w);
}

static void unlink_watch(struct cairn_watch *w)
{
    struct cairn_watch **pp = &w->c->watches;
    while (*pp != NULL && *pp != w) { /* bounded by the list */
        pp = &(*pp)->next;
    }
    if (*pp == w) {
        *pp = w->next;
    }
}

CAIRN_EXPORT int cairn_watch_open(struct cairn_client *c,
                                  const struct cairn_watch_req *req,
                                  int64_t deadline_ms, struct cairn_watch **out)
{
    if (c == NULL || req == NULL || out == NULL || req->key == NULL ||
        req->key_len == 0 || req->start_revision < 0 ||
        (req->range_end == NULL && req->range_end_len > 0)) {
        return CAIRN_E_INVALID;
    }
    struct cairn_watch *w = mem_calloc(1, sizeof(*w));
    if (w == NULL) {
        return CAIRN_E_NOMEM;
    }
    w->key = mem_dup(req->key, req->key_len);
    w->key_len = req->key_len;
    if (req->range_end_len > 0) {
        w->range_end = mem_dup(req->range_end, req->range_end_len);
        w->range_end_len = req->range_end_len;
    }
    cairn__call_init(&w->call, watch_msg, watch_done, w);
    if (w->key == NULL || (req->range_end_len > 0 && w->range_end == NULL)) {
        watch_free(w);
        return CAIRN_E_NOMEM;
    }
    w->c = c;
    w->req = *req;
    w->next_rev = req->start_revision;
    pthread_mutex_lock(&c->mu);
    w->next = c->watches;
    c->watches = w;
    uint64_t deadline_ns = cairn__deadline(c, deadline_ms);
    int rc = 0;
    if (c->user != NULL && c->token == NULL) {
        /* A zero-op read authenticates through the unary path. */
        ProtobufCMessage *resp = NULL;
        Etcdserverpb__StatusRequest m = ETCDSERVERPB__STATUS_REQUEST__INIT;
        rc = cairn__unary(c, "/etcdserverpb.Maintenance/Status", &m.base,
                          &etcdserverpb__status_response__descriptor, true,
                          deadline_ns, &resp);
        if (resp != NULL) {
            protobuf_c_message_free_unpacked(resp, NULL);
        }
    }
    if (rc == 0) {
        rc = stream_start(w, deadline_ns);
    }
    if (rc != 0) {
        if (w->live) {
            cairn__call_cancel(&w->call);
            cairn__run_until(c, &w->done, cairn__now_ns() + 100000000u);
        }
        if (w->live) {
            cairn__conn_drop(c); /* ends the call without its callback */
        }
        unlink_watch(w);
        pthread_mutex_unlock(&c->mu);
        watch_free(w);
        return rc;
    }
    pthread_mutex_unlock(&c->mu);
    *out = w;
    return 0;
}

static bool has_news(const struct cairn_watch *w)
{
    return w->head != NULL || w->end_err != 0 || !w->live;
}

/* One pass of cairn_watch_next under the mutex: 1 = nothing yet. */
static int next_step(struct cairn_watch *w, uint64_t deadline_ns,
                     unsigned *round, struct cairn_watch_resp *out)
{
    struct cairn_client *c = w->c;
    if (w->head != NULL) {
        struct witem *it = w->head;
        w->head = it->next;
        if (w->head == NULL) {
            w->tail = NULL;
        }
        w->queued--;
        *out = it->resp;
        mem_free(it);
        return 0;
    }
    if (w->end_err != 0) {
        return cairn__fail(c, w->end_err, 0, "%s", w->reason);
    }
    if (!w->live) {
        int rc = stream_start(w, deadline_ns);
        if (rc == 0) {
            w->resumes++;
            *round = 0;
        } else if (rc == CAIRN_E_INVALID_TOKEN && c->user != NULL) {
            mem_free(c->token);
            c->token = NULL;
        } else if (w->end_err != 0) {
            return rc;
        } else {
            cairn__backoff(c, (*round)++, deadline_ns);
        }
        return 1;
    }
    w->news = false;
    cairn__run_until(c, &w->news, deadline_ns);
    return 1;
}

CAIRN_EXPORT int cairn_watch_next(struct cairn_watch *w, int64_t deadline_ms,
                                  struct cairn_watch_resp *out)
{
    if (w == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    struct cairn_client *c = w->c;
    pthread_mutex_lock(&c->mu);
    uint64_t deadline_ns =
        deadline_ms < 0    ? UINT64_MAX
        : deadline_ms == 0 ? cairn__deadline(c, 0)
                           : cairn__now_ns() + (uint64_t)deadline_ms * 1000000u;
    unsigned round = 0;
    int rc = 1;
    /* Each pass either returns, or waits (a loop step or a backoff), so
     * the deadline bounds the passes. */
    while (rc == 1) {
        rc = next_step(w, deadline_ns, &round, out);
        if (rc == 1 && !has_news(w) && cairn__now_ns() >= deadline_ns) {
            rc =
                cairn__fail(c, CAIRN_E_TIMEOUT, 4, "context deadline exceeded");
        }
        if (rc == 1 && !w->live && cairn__now_ns() >= deadline_ns) {
            rc =
                cairn__fail(c, CAIRN_E_TIMEOUT, 4, "context deadline exceeded");
        }
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

CAIRN_EXPORT int64_t cairn_watch_compact_revision(struct cairn_watch *w)
{
    return w->compact_rev;
}

CAIRN_EXPORT uint64_t cairn_watch_resumes(struct cairn_watch *w)
{
    return w->resumes;
}

CAIRN_EXPORT void cairn_watch_close(struct cairn_watch *w)
{
    if (w == NULL) {
        return;
    }
    struct cairn_client *c = w->c;
    pthread_mutex_lock(&c->mu);
    if (w->live) {
        cairn__call_cancel(&w->call);
        cairn__run_until(c, &w->done, cairn__now_ns() + 100000000u);
        if (w->live) {
            cairn__conn_drop(c);
        }
    }
    unlink_watch(w);
    pthread_mutex_unlock(&c->mu);
    watch_free(w);
}

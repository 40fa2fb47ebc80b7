/*
 * watch.c - the watch hub: watchers, their queues, history catch-up and the
 * order of replies on a stream (the contract is in watch.h).
 *
 * Happy path: a create registers the watcher and queues its "created"
 * reply; a watcher from the present is synced at once and joins the match
 * index, one from the past is unsynced and reads history. Each applied
 * batch comes through watch_hub_events(): every event is matched through
 * the index, copied once, and referenced from each matching watcher's
 * queue. watch_hub_run() then visits the streams that have work, round
 * robin: control replies first, then each ready watcher in turn (send a
 * response made of whole revisions, or read one chunk of history), then a
 * pending progress reply.
 *
 * Failure modes: a send that says ERR_BUSY blocks the stream until
 * watch_stream_writable() (nothing is lost: what was refused stays queued);
 * a queue past its bound turns the watcher unsynced (it re-reads from the
 * store what it dropped); history compacted under a watcher cancels it with
 * compact_revision (etcd's ErrCompacted); other store errors cancel it with
 * a reason; out of memory on a live event turns the watcher unsynced too.
 */
#include "consensus/watch/watch.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "consensus/watch/watch_int.h"

#define IDS_INITIAL          16
#define Q_INITIAL            4
#define Q_SHRINK_AT          64
#define STREAM_PASS_BUDGET   1024
#define EVENT_OVERHEAD_BYTES 64

/* ------------------------------------------------------ encoding blocks */

struct enc_block {
    size_t refs;
    size_t size; /* what mem_cache_alloc was asked for */
    max_align_t data[];
};

static struct enc_block *enc_block_of(const void *data)
{
    return (struct enc_block *)((uintptr_t)data -
                                offsetof(struct enc_block, data));
}

uint8_t *watch_enc_alloc(size_t len)
{
    struct enc_block *b = mem_cache_alloc(sizeof(*b) + len);
    if (b == NULL) {
        return NULL;
    }
    b->refs = 1;
    b->size = sizeof(*b) + len;
    return (uint8_t *)b->data;
}

void watch_enc_hold(const void *data)
{
    struct enc_block *b = enc_block_of(data);
    ASSERT(b->refs > 0);
    b->refs++;
}

void watch_enc_release(const void *data)
{
    struct enc_block *b;
    if (data == NULL) {
        return;
    }
    b = enc_block_of(data);
    ASSERT(b->refs > 0);
    if (--b->refs == 0) {
        mem_cache_free(b, b->size);
    }
}

/* ----------------------------------------------------------- event copies */

static struct wev *wev_new(struct watch_hub *h, const struct kv_event *e)
{
    size_t pv = e->has_prev ? e->prev.value_len : 0;
    size_t size = sizeof(struct wev) + e->kv.key_len + e->kv.value_len + pv;
    struct wev *ev = mem_cache_alloc(size);
    if (ev == NULL) {
        return NULL;
    }
    memset(ev, 0, sizeof(*ev));
    ev->alloc_bytes = size;
    ev->type = (uint8_t)e->type;
    ev->prev_omitted = e->prev_omitted;
    ev->bytes = size;
    ev->kv = e->kv;
    uint8_t *p = ev->data;
    if (e->kv.key_len > 0) {
        memcpy(p, e->kv.key, e->kv.key_len);
    }
    ev->kv.key = p;
    p += e->kv.key_len;
    if (e->kv.value_len > 0) {
        memcpy(p, e->kv.value, e->kv.value_len);
    }
    ev->kv.value = p;
    p += e->kv.value_len;
    if (e->has_prev) {
        ev->has_prev = true;
        ev->prev = e->prev;
        ev->prev.key = ev->kv.key;
        ev->prev.key_len = ev->kv.key_len;
        if (pv > 0) {
            memcpy(p, e->prev.value, pv);
        }
        ev->prev.value = p;
    }
    h->bytes += size;
    return ev;
}

static void wev_free(struct watch_hub *h, struct wev *ev)
{
    ASSERT(h->bytes >= ev->bytes);
    h->bytes -= ev->bytes;
    watch_enc_release(ev->enc[0].data);
    watch_enc_release(ev->enc[1].data);
    mem_cache_free(ev, ev->alloc_bytes);
}

static void wev_unref(struct watch_hub *h, struct wev *ev)
{
    ASSERT(ev->refs > 0);
    if (--ev->refs == 0) {
        wev_free(h, ev);
    }
}

/* Count in the byte bound what the front end just encoded into ev. */
static void wev_count_enc(struct watch_hub *h, struct wev *ev)
{
    for (unsigned i = 0; i < 2; i++) {
        if (ev->enc[i].data != NULL && !(ev->enc_counted & (1u << i))) {
            ev->enc_counted |= (uint8_t)(1u << i);
            ev->bytes += ev->enc[i].len;
            h->bytes += ev->enc[i].len;
        }
    }
}

static size_t ev_size(const struct watcher *w, const struct wev *ev)
{
    size_t n = EVENT_OVERHEAD_BYTES + ev->kv.key_len + ev->kv.value_len;
    if (w->prev_kv && ev->has_prev) {
        n += EVENT_OVERHEAD_BYTES + ev->prev.key_len + ev->prev.value_len;
    }
    return n;
}

/* ------------------------------------------------------- recent history */

static struct wev *ring_at(const struct watch_hub *h, size_t i)
{
    return h->ring[(h->ring_head + i) & (WATCH_RING_EVENTS - 1)];
}

/* Drop the oldest revision's events; returns that revision. */
static int64_t ring_pop_rev(struct watch_hub *h)
{
    int64_t r = ring_at(h, 0)->kv.mod_revision;
    while (h->ring_len > 0 && ring_at(h, 0)->kv.mod_revision == r) {
        struct wev *ev = ring_at(h, 0);
        h->ring_head = (h->ring_head + 1) & (WATCH_RING_EVENTS - 1);
        h->ring_len--;
        ASSERT(h->ring_bytes >= ev->alloc_bytes);
        h->ring_bytes -= ev->alloc_bytes;
        wev_unref(h, ev);
    }
    return r;
}

static void ring_clear(struct watch_hub *h)
{
    while (h->ring_len > 0) {
        (void)ring_pop_rev(h);
    }
}

/* A revision the ring cannot hold whole: empty it and take nothing more
 * of rev (the next revision starts it again). */
static void ring_gap(struct watch_hub *h, int64_t rev)
{
    ring_clear(h);
    h->ring_skip = rev;
}

/* The copy of the newest event e for the ring (with a reference the ring
 * holds), or NULL when the ring does not take it. */
static struct wev *ring_take(struct watch_hub *h, const struct kv_event *e)
{
    int64_t r = e->kv.mod_revision;
    if (h->watchers == 0) {
        ring_clear(h); /* nobody could catch up from it */
        return NULL;
    }
    if (r <= h->ring_skip) {
        return NULL;
    }
    if (h->ring_len > 0 &&
        r > ring_at(h, h->ring_len - 1)->kv.mod_revision + 1) {
        ring_clear(h); /* revisions it never saw: start again at r */
    }
    size_t size = sizeof(struct wev) + e->kv.key_len + e->kv.value_len +
                  (e->has_prev ? e->prev.value_len : 0);
    if (h->ring == NULL) {
        h->ring = mem_alloc(WATCH_RING_EVENTS * sizeof(*h->ring));
    }
    if (h->ring == NULL || size > WATCH_RING_BYTES ||
        h->bytes + size > h->cfg.hub_bytes_max) {
        ring_gap(h, r);
        return NULL;
    }
    while (h->ring_len == WATCH_RING_EVENTS ||
           (h->ring_len > 0 && h->ring_bytes + size > WATCH_RING_BYTES)) {
        if (ring_pop_rev(h) == r) {
            ring_gap(h, r); /* r's first events are gone */
            return NULL;
        }
    }
    struct wev *ev = wev_new(h, e);
    if (ev == NULL) {
        ring_gap(h, r);
        return NULL;
    }
    ev->refs = 1;
    if (e->prev_omitted) {
        h->ring_omit_hi = r;
    }
    h->ring[(h->ring_head + h->ring_len) & (WATCH_RING_EVENTS - 1)] = ev;
    h->ring_len++;
    h->ring_bytes += ev->alloc_bytes;
    return ev;
}

/* Whether the ring holds every event from revision from to its newest,
 * with prev where there was one if prev is asked for. */
static bool ring_holds(const struct watch_hub *h, int64_t from, bool prev)
{
    return h->ring_len > 0 && from >= ring_at(h, 0)->kv.mod_revision &&
           from <= ring_at(h, h->ring_len - 1)->kv.mod_revision &&
           (!prev || from > h->ring_omit_hi);
}

/* --------------------------------------------------------------- queues */

/* Queue capacities are powers of two (Q_INITIAL, doubled): a mask, not a
 * division, per access (1,000 watchers of a prefix: 1,000 per event). */
static size_t q_slot(const struct watcher *w, size_t i)
{
    return (w->qhead + i) & (w->qcap - 1);
}

static struct wev *q_at(const struct watcher *w, size_t i)
{
    ASSERT(i < w->qlen);
    return w->q[q_slot(w, i)];
}

static int q_push(struct watcher *w, struct wev *ev)
{
    if (w->qlen == w->qcap) {
        size_t cap = w->qcap == 0 ? Q_INITIAL : w->qcap * 2;
        struct wev **q = mem_alloc(cap * sizeof(*q));
        if (q == NULL) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < w->qlen; i++) {
            q[i] = q_at(w, i);
        }
        mem_free(w->q);
        w->q = q;
        w->qcap = cap;
        w->qhead = 0;
    }
    w->q[q_slot(w, w->qlen)] = ev;
    w->qlen++;
    ev->refs++;
    w->st->queued++;
    w->st->hub->queued++;
    return 0;
}

static void q_pop(struct watcher *w)
{
    struct watch_hub *h = w->st->hub;
    ASSERT(w->qlen > 0);
    wev_unref(h, w->q[w->qhead]);
    w->qhead = q_slot(w, 1);
    w->qlen--;
    w->st->queued--;
    h->queued--;
    if (w->qlen == 0) {
        w->qhead = 0;
        if (w->qcap > Q_SHRINK_AT) {
            mem_free(w->q);
            w->q = NULL;
            w->qcap = 0;
        }
    }
}

/* Drop queued events from index keep on (keep = 0: all). */
static void q_truncate(struct watcher *w, size_t keep)
{
    struct watch_hub *h = w->st->hub;
    while (w->qlen > keep) {
        size_t last = q_slot(w, w->qlen - 1);
        wev_unref(h, w->q[last]);
        w->qlen--;
        w->st->queued--;
        h->queued--;
    }
    if (w->qlen == 0) {
        w->qhead = 0;
        w->frag_sent = 0;
    }
}

/* ------------------------------------------------- stream bookkeeping */

static bool stream_has_work(const struct watch_stream *st)
{
    return st->ctrl_len > 0 || st->ready_count > 0 || st->progress_pending;
}

static void active_add(struct watch_stream *st)
{
    struct watch_hub *h = st->hub;
    if (st->in_active || st->blocked || !stream_has_work(st)) {
        return;
    }
    st->in_active = true;
    if (h->active == NULL) {
        st->anext = st->aprev = st;
        h->active = st;
    } else {
        st->anext = h->active;
        st->aprev = h->active->aprev;
        st->aprev->anext = st;
        h->active->aprev = st;
    }
}

static void active_remove(struct watch_stream *st)
{
    struct watch_hub *h = st->hub;
    if (!st->in_active) {
        return;
    }
    st->in_active = false;
    if (st->anext == st) {
        h->active = NULL;
    } else {
        st->aprev->anext = st->anext;
        st->anext->aprev = st->aprev;
        if (h->active == st) {
            h->active = st->anext;
        }
    }
    st->anext = st->aprev = NULL;
}

static void ready_add(struct watcher *w)
{
    struct watch_stream *st = w->st;
    if (!w->in_ready) {
        w->in_ready = true;
        if (st->ready == NULL) {
            w->rnext = w->rprev = w;
            st->ready = w;
        } else {
            w->rnext = st->ready;
            w->rprev = st->ready->rprev;
            w->rprev->rnext = w;
            st->ready->rprev = w;
        }
        st->ready_count++;
    }
    active_add(st);
}

static void ready_remove(struct watcher *w)
{
    struct watch_stream *st = w->st;
    if (!w->in_ready) {
        return;
    }
    w->in_ready = false;
    if (w->rnext == w) {
        st->ready = NULL;
    } else {
        w->rprev->rnext = w->rnext;
        w->rnext->rprev = w->rprev;
        if (st->ready == w) {
            st->ready = w->rnext;
        }
    }
    w->rnext = w->rprev = NULL;
    ASSERT(st->ready_count > 0);
    st->ready_count--;
}

/* A watcher needs a turn while it is unsynced, holds events or owes a
 * progress reply. Every such watcher is in its stream's ready ring, so an
 * empty ring means every watcher of the stream is synced and idle. */
static void busy_update(struct watcher *w)
{
    if (!w->synced || w->qlen > 0 || w->progress_due) {
        ready_add(w);
    }
}

static int ctrl_push(struct watch_stream *st, const struct ctrl *c)
{
    if (st->ctrl_len == st->ctrl_cap) {
        size_t cap = st->ctrl_cap == 0 ? 8 : st->ctrl_cap * 2;
        struct ctrl *v;
        if (st->ctrl_len >= st->hub->cfg.ctrl_queued_max) {
            return ERR_BUSY;
        }
        v = mem_alloc(cap * sizeof(*v));
        if (v == NULL) {
            return -ENOMEM;
        }
        for (size_t i = 0; i < st->ctrl_len; i++) {
            v[i] = st->ctrl[(st->ctrl_head + i) % st->ctrl_cap];
        }
        mem_free(st->ctrl);
        st->ctrl = v;
        st->ctrl_cap = cap;
        st->ctrl_head = 0;
    }
    st->ctrl[(st->ctrl_head + st->ctrl_len) % st->ctrl_cap] = *c;
    st->ctrl_len++;
    active_add(st);
    return 0;
}

/* ------------------------------------------------------------- id map */

static size_t id_slot(const struct watch_stream *st, int64_t id)
{
    uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15ULL;
    return (size_t)(x >> 17) & st->ids_mask;
}

static struct watcher *id_find(const struct watch_stream *st, int64_t id)
{
    for (struct watcher *w = st->ids[id_slot(st, id)]; w != NULL;
         w = w->idnext) {
        if (w->id == id) {
            return w;
        }
    }
    return NULL;
}

static void id_grow(struct watch_stream *st)
{
    size_t n = (st->ids_mask + 1) * 2;
    struct watcher **b = mem_calloc(n, sizeof(*b));
    struct watcher **old = st->ids;
    size_t old_n = st->ids_mask + 1;
    if (b == NULL) {
        return; /* longer chains; still correct */
    }
    st->ids = b;
    st->ids_mask = n - 1;
    for (size_t i = 0; i < old_n; i++) {
        struct watcher *w = old[i];
        while (w != NULL) {
            struct watcher *next = w->idnext;
            size_t s = id_slot(st, w->id);
            w->idnext = b[s];
            b[s] = w;
            w = next;
        }
    }
    mem_free(old);
}

static void id_insert(struct watch_stream *st, struct watcher *w)
{
    if (st->watchers > st->ids_mask) {
        id_grow(st);
    }
    size_t s = id_slot(st, w->id);
    w->idnext = st->ids[s];
    st->ids[s] = w;
}

static void id_remove(struct watch_stream *st, struct watcher *w)
{
    struct watcher **pp = &st->ids[id_slot(st, w->id)];
    while (*pp != NULL && *pp != w) {
        pp = &(*pp)->idnext;
    }
    ASSERT(*pp == w);
    *pp = w->idnext;
}

/* ------------------------------------------------------------ watchers */

static void progress_list_remove(struct watch_hub *h, struct watcher *w)
{
    if (!w->progress_notify) {
        return;
    }
    if (w->pprev != NULL) {
        w->pprev->pnext = w->pnext;
    } else {
        h->progress = w->pnext;
    }
    if (w->pnext != NULL) {
        w->pnext->pprev = w->pprev;
    }
}

static void unsync(struct watcher *w)
{
    struct watch_hub *h = w->st->hub;
    if (w->synced) {
        windex_remove(&h->idx, w);
        w->synced = false;
        h->synced--;
    }
}

static void watcher_free(struct watcher *w)
{
    struct watch_stream *st = w->st;
    struct watch_hub *h = st->hub;
    unsync(w);
    ready_remove(w);
    progress_list_remove(h, w);
    q_truncate(w, 0);
    id_remove(st, w);
    mem_free(w->q);
    mem_free(w->key);
    mem_free(w->end);
    st->watchers--;
    h->watchers--;
    if (w->prev_kv && --h->prev_watchers == 0 && h->cfg.prev_wanted != NULL) {
        h->cfg.prev_wanted(h->cfg.prev_ctx, false);
    }
    mem_free(w);
}

/* The range end that makes key a prefix, compared with the request. */
static bool is_prefix(const uint8_t *key, size_t len, const uint8_t *end,
                      size_t end_len)
{
    uint8_t pe[WATCH_KEY_MAX + 1];
    size_t pe_len;
    if (len > WATCH_KEY_MAX) {
        return false;
    }
    watch__prefix_end(key, len, pe, &pe_len);
    return pe_len > 0 && pe_len == end_len && memcmp(pe, end, end_len) == 0;
}

/* Decide the kind from (key, range_end) as etcd reads them. */
static void classify(struct watcher *w)
{
    w->match = w->key;
    w->match_len = w->key_len;
    w->match_end = NULL;
    w->match_end_len = 0;
    if (w->end_len == 0) {
        w->kind = WK_EXACT;
    } else if (w->end_len == 1 && w->end[0] == 0) {
        if (w->key_len == 1 && w->key[0] == 0) {
            w->kind = WK_PREFIX; /* every key: the empty prefix */
            w->match_len = 0;
        } else {
            w->kind = WK_RANGE; /* every key >= key */
        }
    } else if (is_prefix(w->key, w->key_len, w->end, w->end_len)) {
        w->kind = WK_PREFIX;
    } else {
        w->kind = WK_RANGE;
        w->match_end = w->end;
        w->match_end_len = w->end_len;
    }
}

static int create_fail(struct watch_stream *st, int64_t rev, const char *why)
{
    struct ctrl c = {CTRL_CREATE_FAILED, -1, rev, 0, why};
    return ctrl_push(st, &c);
}

static const char *create_check(struct watch_stream *st,
                                const struct watch_create *c)
{
    struct watch_hub *h = st->hub;
    if (c->key_len > WATCH_KEY_MAX || c->range_end_len > WATCH_KEY_MAX) {
        return err_str(ERR_KEY_TOO_LARGE);
    }
    if (c->range_end_len > 0 &&
        !(c->range_end_len == 1 && c->range_end[0] == 0)) {
        size_t n =
            c->key_len < c->range_end_len ? c->key_len : c->range_end_len;
        int cmp = n > 0 ? memcmp(c->key, c->range_end, n) : 0;
        if (cmp > 0 || (cmp == 0 && c->key_len >= c->range_end_len)) {
            return WATCH_ERR_EMPTY_RANGE;
        }
    }
    if (c->watch_id != 0 && id_find(st, c->watch_id) != NULL) {
        return WATCH_ERR_DUPLICATE_ID;
    }
    if (st->watchers >= h->cfg.watchers_per_stream_max ||
        h->watchers >= h->cfg.watchers_max) {
        return WATCH_ERR_TOO_MANY;
    }
    return NULL;
}

static struct watcher *watcher_new(struct watch_stream *st,
                                   const struct watch_create *c)
{
    struct watcher *w = mem_calloc(1, sizeof(*w));
    if (w == NULL) {
        return NULL;
    }
    w->st = st;
    /* An empty key arrives as NULL from protobuf-c (an absent bytes
     * field): it is one zero byte here, never a copy from NULL (which
     * read address 0: a Watch create without a key stopped the daemon). */
    w->key = c->key_len > 0 ? mem_dup(c->key, c->key_len) : mem_calloc(1, 1);
    w->key_len = c->key_len;
    if (c->range_end_len > 0) {
        w->end = mem_dup(c->range_end, c->range_end_len);
        w->end_len = c->range_end_len;
    }
    if (w->key == NULL || (c->range_end_len > 0 && w->end == NULL)) {
        mem_free(w->key);
        mem_free(w->end);
        mem_free(w);
        return NULL;
    }
    w->prev_kv = c->prev_kv;
    w->progress_notify = c->progress_notify;
    w->fragment = c->fragment;
    w->no_put = c->no_put;
    w->no_delete = c->no_delete;
    classify(w);
    return w;
}

static int64_t assign_id(struct watch_stream *st, int64_t asked)
{
    if (asked != 0) {
        return asked;
    }
    /* etcd: the lowest free id from a counter that starts at 0. The loop
     * ends: at most watchers ids are taken. */
    for (size_t i = 0; i <= st->watchers; i++) {
        if (id_find(st, st->next_id) == NULL) {
            break;
        }
        st->next_id++;
    }
    return st->next_id++;
}

int watch_stream_create(struct watch_stream *st, const struct watch_create *c)
{
    struct watch_hub *h = st->hub;
    int64_t rev = kv_rev(h->cfg.kv);
    int64_t compact = kv_compact_rev(h->cfg.kv);
    const char *why;
    struct watcher *w;
    int rc;
    if (st->ctrl_len + 2 > h->cfg.ctrl_queued_max) {
        return ERR_BUSY;
    }
    rev = rev > h->rev ? rev : h->rev;
    /* etcd 3.4 puts the gRPC status error's text here
     * (rpctypes.ErrGRPCPermissionDenied.Error(), observed via etcdctl) */
    why = !c->denied ? create_check(st, c)
          : c->deny_reason != NULL
              ? c->deny_reason
              : "rpc error: code = PermissionDenied desc = etcdserver: "
                "permission denied";
    if (why != NULL) {
        return create_fail(st, rev, why);
    }
    w = watcher_new(st, c);
    if (w == NULL) {
        return create_fail(st, rev, WATCH_ERR_NO_MEMORY);
    }
    w->id = assign_id(st, c->watch_id);
    struct ctrl cr = {CTRL_CREATED, w->id, rev, 0, NULL};
    rc = ctrl_push(st, &cr);
    if (rc != 0) {
        mem_free(w->key);
        mem_free(w->end);
        mem_free(w);
        return rc;
    }
    if (c->start_revision != 0 && c->start_revision < compact) {
        /* etcd: created, then canceled with the compaction revision. */
        struct ctrl cc = {CTRL_COMPACTED, w->id, 0, compact, NULL};
        mem_free(w->key);
        mem_free(w->end);
        mem_free(w);
        return ctrl_push(st, &cc);
    }
    id_insert(st, w);
    st->watchers++;
    h->watchers++;
    if (w->prev_kv && h->prev_watchers++ == 0 && h->cfg.prev_wanted != NULL) {
        h->cfg.prev_wanted(h->cfg.prev_ctx, true);
    }
    if (w->progress_notify) {
        w->pnext = h->progress;
        if (h->progress != NULL) {
            h->progress->pprev = w;
        }
        h->progress = w;
    }
    w->next_rev = c->start_revision == 0 ? rev + 1 : c->start_revision;
    if (w->next_rev > h->rev && windex_add(&h->idx, w) == 0) {
        w->synced = true;
        h->synced++;
    }
    busy_update(w);
    return 0;
}

int watch_stream_cancel(struct watch_stream *st, int64_t watch_id)
{
    struct watcher *w = id_find(st, watch_id);
    int64_t rev = kv_rev(st->hub->cfg.kv);
    if (w == NULL) {
        return 0; /* etcd 3.4 ignores unknown ids */
    }
    if (st->ctrl_len >= st->hub->cfg.ctrl_queued_max) {
        return ERR_BUSY;
    }
    watcher_free(w);
    struct ctrl c = {CTRL_CANCELED, watch_id,
                     rev > st->hub->rev ? rev : st->hub->rev, 0, NULL};
    return ctrl_push(st, &c);
}

/* End a watcher from inside the hub (compaction, store error). */
static void watcher_end(struct watcher *w, enum ctrl_kind kind, int64_t compact,
                        const char *why)
{
    struct watch_stream *st = w->st;
    struct ctrl c = {kind, w->id, 0, compact, why};
    if (kind == CTRL_FAILED) {
        c.rev = st->hub->rev;
    }
    watcher_free(w);
    /* Past the bound the reply is dropped; the watcher is gone either way
     * and a client that does not read its stream hears nothing more. */
    (void)ctrl_push(st, &c);
}

/* ----------------------------------------------------------- live events */

struct match {
    struct watch_hub *h;
    const struct kv_event *e;
    struct wev *ev;
};

static bool filtered(const struct watcher *w, enum kv_event_type type)
{
    return (type == KV_EVENT_PUT && w->no_put) ||
           (type == KV_EVENT_DELETE && w->no_delete);
}

/* w falls behind: drop what it holds (but for a revision it has partly
 * sent as fragments) and re-read the rest from the store. */
static void overflow(struct watcher *w, int64_t rev)
{
    struct watch_hub *h = w->st->hub;
    int64_t next = rev;
    if (w->qlen > 0) {
        int64_t head = q_at(w, 0)->kv.mod_revision;
        size_t keep = 0;
        if (w->frag_sent > 0) {
            while (keep < w->qlen && q_at(w, keep)->kv.mod_revision == head) {
                keep++;
            }
            next = head + 1;
        } else {
            next = head;
        }
        q_truncate(w, keep);
    }
    unsync(w);
    w->next_rev = next;
    h->overflows++;
    busy_update(w);
}

static bool over_bounds(const struct watcher *w, const struct match *m,
                        size_t size)
{
    const struct watch_hub *h = m->h;
    return w->qlen >= h->cfg.events_queued_max ||
           w->st->queued >= h->cfg.stream_queued_max ||
           (m->ev == NULL && h->bytes + size > h->cfg.hub_bytes_max);
}

static void match_group(void *ctx, struct wgroup *g)
{
    struct match *m = ctx;
    const struct kv_event *e = m->e;
    size_t size = sizeof(struct wev) + e->kv.key_len + e->kv.value_len +
                  (e->has_prev ? e->prev.value_len : 0);
    struct watcher *next;
    for (struct watcher *w = g->head; w != NULL; w = next) {
        next = w->gnext;
        ASSERT(w->synced);
        if (e->kv.mod_revision < w->next_rev || filtered(w, e->type)) {
            continue;
        }
        if (over_bounds(w, m, size) || (w->prev_kv && e->prev_omitted)) {
            overflow(w, e->kv.mod_revision);
            continue;
        }
        if (m->ev == NULL) {
            m->ev = wev_new(m->h, e);
        }
        if (m->ev == NULL || q_push(w, m->ev) != 0) {
            overflow(w, e->kv.mod_revision);
            continue;
        }
        ready_add(w);
    }
}

void watch_hub_events(struct watch_hub *h, const struct kv_event *evs, size_t n,
                      int64_t rev)
{
    for (size_t i = 0; i < n; i++) {
        struct match m = {h, &evs[i], NULL};
        ASSERT(evs[i].kv.mod_revision > 0);
        m.ev = ring_take(h, &evs[i]);
        if (h->synced > 0) {
            windex_match(&h->idx, evs[i].kv.key, evs[i].kv.key_len, match_group,
                         &m);
        }
        if (m.ev != NULL && m.ev->refs == 0) {
            wev_free(h, m.ev);
        }
        if (evs[i].kv.mod_revision > h->rev) {
            h->rev = evs[i].kv.mod_revision;
        }
    }
    if (rev > h->rev) {
        h->rev = rev;
    }
}

/* --------------------------------------------------------------- history */

/* History is read for a batch of a stream's unsynced watchers at once
 * (etcd's syncWatchers does the same): one scan of the store's history
 * from the lowest next revision of the batch, each event matched through a
 * temporary index of the batch's watchers. So 100k watchers that fell
 * behind cost a few hundred scans, not 100k. */
struct batch {
    struct watch_hub *h;
    int err;
};

static void catchup_group(void *ctx, struct wgroup *g, const struct kv_event *e,
                          struct wev **ev)
{
    struct batch *b = ctx;
    for (struct watcher *w = g->head; w != NULL; w = w->gnext) {
        if (e->kv.mod_revision < w->next_rev || filtered(w, e->type)) {
            continue;
        }
        if (*ev == NULL) {
            *ev = wev_new(b->h, e);
        }
        if (*ev == NULL || q_push(w, *ev) != 0) {
            b->err = -ENOMEM;
            return;
        }
    }
}

struct cmatch {
    struct batch *b;
    const struct kv_event *e;
    struct wev *ev;
};

static void cmatch_group(void *ctx, struct wgroup *g)
{
    struct cmatch *m = ctx;
    if (m->b->err == 0) {
        catchup_group(m->b, g, m->e, &m->ev);
    }
}

static int catchup_event(void *ctx, const struct kv_event *e)
{
    struct batch *b = ctx;
    struct cmatch m = {b, e, NULL};
    windex_match(&b->h->cidx, e->kv.key, e->kv.key_len, cmatch_group, &m);
    if (m.ev != NULL && m.ev->refs == 0) {
        wev_free(b->h, m.ev);
    }
    return b->err != 0 ? 1 : 0;
}

/* Match the ring's events from revision from (which it holds) to to
 * against the batch, at most WATCH_RING_CHUNK of them (catchup_events_max
 * if smaller) but never part of a revision, as kv_events_read does.
 * Returns the revision to go on from: the first one not read, or the
 * ring's newest + 1. */
static int64_t ring_catchup(struct watch_hub *h, struct batch *b, int64_t from,
                            int64_t to)
{
    size_t lo = 0;
    size_t hi = h->ring_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ring_at(h, mid)->kv.mod_revision < from) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    int64_t next = from;
    size_t count = 0;
    size_t max = h->cfg.catchup_events_max < WATCH_RING_CHUNK
                     ? h->cfg.catchup_events_max
                     : WATCH_RING_CHUNK;
    for (size_t i = lo; i < h->ring_len; i++) {
        struct wev *ev = ring_at(h, i);
        int64_t r = ev->kv.mod_revision;
        if (r != next - 1 || count == 0) {
            /* a revision starts here */
            if (r > to) {
                return to + 1;
            }
            if (count >= max) {
                return r;
            }
        }
        struct kv_event e;
        memset(&e, 0, sizeof(e));
        e.type = (enum kv_event_type)ev->type;
        e.kv = ev->kv;
        e.has_prev = ev->has_prev;
        e.prev = ev->prev;
        struct cmatch m = {b, &e, ev};
        windex_match(&h->cidx, e.kv.key, e.kv.key_len, cmatch_group, &m);
        if (b->err != 0) {
            return from;
        }
        count++;
        next = r + 1;
    }
    return next;
}

/* Collect up to WATCH_CATCHUP_BATCH unsynced watchers with empty queues
 * from w's stream (w first); cancel those below the compaction. Returns
 * how many are in h->batch. */
static size_t batch_collect(struct watcher *w, int64_t compact)
{
    struct watch_stream *st = w->st;
    struct watch_hub *h = st->hub;
    size_t n = 0;
    size_t ring = st->ready_count;
    struct watcher *x = w;
    for (size_t i = 0; i < ring && n < WATCH_CATCHUP_BATCH; i++) {
        if (!x->synced && x->qlen == 0) {
            h->batch[n++] = x;
        }
        x = x->rnext;
    }
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        x = h->batch[i];
        if (x->next_rev < compact) {
            watcher_end(x, CTRL_COMPACTED, compact, NULL);
        } else if (windex_add(&h->cidx, x) == 0) {
            h->batch[kept++] = x;
        }
    }
    return kept;
}

/* Read one bounded chunk of history for the batch that w leads; watchers
 * that reach the hub's revision rejoin the index. *alive: w still exists.
 * Returns the work done (>= 1). */
static size_t catchup_chunk(struct watcher *w, bool *alive)
{
    struct watch_hub *h = w->st->hub;
    struct batch b = {h, 0};
    struct kv_read *rd = NULL;
    int64_t compact = kv_compact_rev(h->cfg.kv);
    int64_t from = INT64_MAX;
    int64_t next = 0;
    bool prev = false;
    bool w_compacted = w->next_rev < compact;
    size_t n = batch_collect(w, compact);
    int rc;
    *alive = !w_compacted;
    for (size_t i = 0; i < n; i++) {
        from = h->batch[i]->next_rev < from ? h->batch[i]->next_rev : from;
        prev = prev || h->batch[i]->prev_kv;
    }
    rc = n == 0 ? ERR_BUSY : 0;
    if (rc == 0 && ring_holds(h, from, prev)) {
        next = ring_catchup(h, &b, from, from + h->cfg.catchup_revs_max - 1);
        h->catchup_reads++;
        h->ring_reads++;
        rc = b.err;
    } else if (rc == 0 && (rc = h->cfg.read_begin(h->cfg.read_ctx, &rd)) == 0) {
        int64_t to = from + h->cfg.catchup_revs_max - 1;
        to = to < kv_read_rev(rd) ? to : kv_read_rev(rd);
        next = from;
        if (from <= to) {
            rc = kv_events_read(
                rd, (const uint8_t *)"\0", 1, (const uint8_t *)"\0", 1, from,
                to, h->cfg.catchup_events_max, prev, catchup_event, &b, &next);
        }
        h->cfg.read_end(h->cfg.read_ctx, rd);
        h->catchup_reads++;
        rc = rc != 0 ? rc : b.err;
    }
    size_t read = 0;
    for (size_t i = 0; i < n; i++) {
        struct watcher *x = h->batch[i];
        windex_remove(&h->cidx, x);
        if (rc != 0) {
            q_truncate(x, 0); /* retried later from the same revision */
            continue;
        }
        read += x->qlen;
        if (x->next_rev < next) {
            x->next_rev = next;
        }
        if (x->next_rev > h->rev && windex_add(&h->idx, x) == 0) {
            x->synced = true;
            h->synced++;
        }
    }
    return read + 1;
}

/* --------------------------------------------------------------- sending */

static int scratch_reserve(struct watch_hub *h, size_t n)
{
    if (n <= h->scratch_cap) {
        return 0;
    }
    size_t cap = h->scratch_cap == 0 ? 64 : h->scratch_cap;
    while (cap < n) {
        cap *= 2;
    }
    struct kv_event *s = mem_realloc(h->scratch, cap * sizeof(*s));
    if (s == NULL) {
        return -ENOMEM;
    }
    h->scratch = s;
    struct watch_enc **e = mem_realloc(h->scratch_enc, cap * sizeof(*e));
    if (e == NULL) {
        return -ENOMEM; /* scratch grew alone: harmless, cap is unchanged */
    }
    h->scratch_enc = e;
    h->scratch_cap = cap;
    return 0;
}

/* How many events from the queue head go into the next response, and
 * whether it is a non-final fragment. */
static size_t pick_events(const struct watcher *w, bool *fragment)
{
    const struct watch_hub *h = w->st->hub;
    int64_t head = q_at(w, 0)->kv.mod_revision;
    size_t rev_count = 0;
    size_t rev_bytes = 0;
    *fragment = false;
    while (rev_count < w->qlen && q_at(w, rev_count)->kv.mod_revision == head) {
        rev_bytes += ev_size(w, q_at(w, rev_count));
        rev_count++;
    }
    if (w->fragment && (w->frag_sent > 0 ||
                        (rev_bytes > h->cfg.fragment_bytes && rev_count > 1))) {
        size_t n = 0;
        size_t bytes = 0;
        while (n < rev_count) {
            size_t s = ev_size(w, q_at(w, n));
            if (n > 0 && bytes + s > h->cfg.fragment_bytes) {
                break;
            }
            bytes += s;
            n++;
        }
        *fragment = n < rev_count;
        return n;
    }
    /* Whole revisions up to the soft size (at least one revision). */
    size_t n = rev_count;
    size_t bytes = rev_bytes;
    while (n < w->qlen) {
        int64_t r = q_at(w, n)->kv.mod_revision;
        size_t k = n;
        size_t b = 0;
        while (k < w->qlen && q_at(w, k)->kv.mod_revision == r) {
            b += ev_size(w, q_at(w, k));
            k++;
        }
        if (bytes + b > h->cfg.response_bytes_soft) {
            break;
        }
        bytes += b;
        n = k;
    }
    return n;
}

/* out->prev is left as it was unless has_prev (the contract in watch.h). */
static void fill_event(const struct watcher *w, const struct wev *ev,
                       struct kv_event *out)
{
    out->type = (enum kv_event_type)ev->type;
    out->kv = ev->kv;
    out->has_prev = w->prev_kv && ev->has_prev;
    if (out->has_prev) {
        out->prev = ev->prev;
    }
}

/* Send the next response of w's queue: 0 sent, ERR_BUSY refused. */
static int send_events(struct watcher *w, size_t *used)
{
    struct watch_stream *st = w->st;
    struct watch_hub *h = st->hub;
    bool fragment;
    size_t n = pick_events(w, &fragment);
    struct watch_resp r;
    ASSERT(n > 0);
    ASSERT(n <= w->qlen);
    if (scratch_reserve(h, n) != 0) {
        return ERR_BUSY; /* try again later */
    }
    for (size_t i = 0; i < n; i++) {
        struct wev *ev = q_at(w, i);
        fill_event(w, ev, &h->scratch[i]);
        h->scratch_enc[i] = &ev->enc[h->scratch[i].has_prev ? 1 : 0];
    }
    memset(&r, 0, sizeof(r));
    r.watch_id = w->id;
    /* etcd: events read from the history carry the store's revision at the
     * time they are sent, live ones their own, which is the store's revision
     * too when they go out at once. The hub's revision gives both; it lags
     * etcd's only for live events held back by a slow client. */
    r.revision = h->rev > h->scratch[n - 1].kv.mod_revision
                     ? h->rev
                     : h->scratch[n - 1].kv.mod_revision;
    r.fragment = fragment;
    r.events = h->scratch;
    r.enc = h->scratch_enc;
    r.events_count = n;
    int rc = st->send(st->ctx, &r);
    for (size_t i = 0; i < n; i++) {
        wev_count_enc(h, q_at(w, i));
    }
    if (rc != 0) {
        return ERR_BUSY;
    }
    h->responses_sent++;
    h->events_sent += n;
    w->had_events = true;
    w->frag_sent = fragment ? w->frag_sent + n : 0;
    for (size_t i = 0; i < n; i++) {
        q_pop(w);
    }
    *used += n;
    return 0;
}

static int send_ctrl(struct watch_stream *st, const struct ctrl *c)
{
    struct watch_resp r;
    memset(&r, 0, sizeof(r));
    r.watch_id = c->watch_id;
    r.revision = c->rev;
    r.created = c->kind == CTRL_CREATED || c->kind == CTRL_CREATE_FAILED;
    r.canceled = c->kind != CTRL_CREATED;
    r.compact_revision = c->compact_rev;
    r.cancel_reason = c->reason;
    return st->send(st->ctx, &r);
}

static int send_progress(struct watch_stream *st, int64_t id)
{
    struct watch_resp r;
    memset(&r, 0, sizeof(r));
    r.watch_id = id;
    r.revision = st->hub->rev;
    return st->send(st->ctx, &r);
}

/* One ready watcher's turn. Returns ERR_BUSY when the stream refused. */
static int watcher_turn(struct watcher *w, size_t *used)
{
    if (w->qlen > 0) {
        return send_events(w, used);
    }
    if (!w->synced) {
        /* Send what was read before the next watcher reads: at most one
         * unsent history chunk per stream. */
        bool alive;
        *used += catchup_chunk(w, &alive);
        while (alive && w->qlen > 0) {
            int rc = send_events(w, used);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    if (w->progress_due) {
        if (send_progress(w->st, w->id) != 0) {
            return ERR_BUSY;
        }
        w->progress_due = false;
        *used += 1;
    }
    ready_remove(w);
    return 0;
}

/* Work on one stream, about budget events. */
static size_t stream_work(struct watch_stream *st, size_t budget)
{
    size_t used = 0;
    while (used < budget && !st->blocked) {
        if (st->ctrl_len > 0) {
            if (send_ctrl(st, &st->ctrl[st->ctrl_head]) != 0) {
                st->blocked = true;
                break;
            }
            st->ctrl_head = (st->ctrl_head + 1) % st->ctrl_cap;
            st->ctrl_len--;
            used++;
            continue;
        }
        if (st->ready != NULL) {
            struct watcher *w = st->ready;
            st->ready = w->rnext; /* round robin */
            if (watcher_turn(w, &used) != 0) {
                st->blocked = true;
            }
            continue;
        }
        if (st->progress_pending) {
            if (send_progress(st, -1) != 0) {
                st->blocked = true;
                break;
            }
            st->progress_pending = false;
        }
        break;
    }
    return used == 0 ? 1 : used;
}

bool watch_hub_run(struct watch_hub *h, size_t budget)
{
    size_t used = 0;
    while (h->active != NULL && used < budget) {
        struct watch_stream *st = h->active;
        size_t b = budget - used;
        h->active = st->anext;
        used +=
            stream_work(st, b < STREAM_PASS_BUDGET ? b : STREAM_PASS_BUDGET);
        if (st->blocked || !stream_has_work(st)) {
            active_remove(st);
        }
    }
    return h->active != NULL;
}

bool watch_hub_pending(const struct watch_hub *h)
{
    return h->active != NULL;
}

void watch_hub_progress_tick(struct watch_hub *h)
{
    for (struct watcher *w = h->progress; w != NULL; w = w->pnext) {
        if (!w->had_events && w->synced) {
            w->progress_due = true;
            ready_add(w);
        }
        w->had_events = false;
    }
}

/* ------------------------------------------------------------- streams */

int watch_stream_open(struct watch_hub *h, watch_send_fn send, void *ctx,
                      struct watch_stream **out)
{
    struct watch_stream *st = mem_calloc(1, sizeof(*st));
    ASSERT(send != NULL);
    if (st == NULL) {
        return -ENOMEM;
    }
    st->ids = mem_calloc(IDS_INITIAL, sizeof(*st->ids));
    if (st->ids == NULL) {
        mem_free(st);
        return -ENOMEM;
    }
    st->ids_mask = IDS_INITIAL - 1;
    st->hub = h;
    st->send = send;
    st->ctx = ctx;
    st->next = h->streams;
    if (h->streams != NULL) {
        h->streams->prev = st;
    }
    h->streams = st;
    h->streams_count++;
    *out = st;
    return 0;
}

void watch_stream_close(struct watch_stream *st)
{
    struct watch_hub *h = st->hub;
    for (size_t i = 0; i <= st->ids_mask; i++) {
        while (st->ids[i] != NULL) {
            watcher_free(st->ids[i]);
        }
    }
    ASSERT(st->watchers == 0);
    ASSERT(st->queued == 0);
    active_remove(st);
    if (st->prev != NULL) {
        st->prev->next = st->next;
    } else {
        h->streams = st->next;
    }
    if (st->next != NULL) {
        st->next->prev = st->prev;
    }
    h->streams_count--;
    mem_free(st->ctrl);
    mem_free(st->ids);
    mem_free(st);
}

void watch_stream_progress(struct watch_stream *st)
{
    st->progress_pending = true;
    active_add(st);
}

void watch_stream_writable(struct watch_stream *st)
{
    st->blocked = false;
    active_add(st);
}

size_t watch_stream_watchers(const struct watch_stream *st)
{
    return st->watchers;
}

/* ---------------------------------------------------------------- hub */

static int kv_read_begin_default(void *ctx, struct kv_read **rd)
{
    return kv_read_begin(ctx, rd);
}

static void kv_read_end_default(void *ctx, struct kv_read *rd)
{
    (void)ctx;
    kv_read_end(rd);
}

void watch_hub_restored(struct watch_hub *h)
{
    int64_t rev = kv_rev(h->cfg.kv);
    for (struct watch_stream *st = h->streams; st != NULL; st = st->next) {
        for (size_t i = 0; i <= st->ids_mask; i++) {
            for (struct watcher *w = st->ids[i]; w != NULL; w = w->idnext) {
                if (w->synced) {
                    /* everything up to the hub's revision was queued */
                    if (w->next_rev <= h->rev) {
                        w->next_rev = h->rev + 1;
                    }
                    unsync(w);
                    busy_update(w);
                }
            }
        }
    }
    ring_clear(h); /* history from before the snapshot */
    h->rev = rev > h->rev ? rev : h->rev;
}

int watch_hub_init(const struct watch_config *cfg, struct watch_hub **out)
{
    struct watch_hub *h = mem_calloc(1, sizeof(*h));
    ASSERT(cfg->kv != NULL);
    ASSERT(limits_hard_max(LIMIT_KEY_BYTES) <= WATCH_KEY_MAX);
    if (h == NULL) {
        return -ENOMEM;
    }
    h->cfg = *cfg;
    struct watch_config *c = &h->cfg;
    if (c->read_begin == NULL || c->read_end == NULL) {
        c->read_begin = kv_read_begin_default;
        c->read_end = kv_read_end_default;
        c->read_ctx = c->kv;
    }
    c->watchers_max =
        c->watchers_max != 0 ? c->watchers_max : limits_default(LIMIT_WATCHERS);
    c->watchers_per_stream_max = c->watchers_per_stream_max != 0
                                     ? c->watchers_per_stream_max
                                     : limits_default(LIMIT_WATCHERS_PER_CONN);
    c->events_queued_max = c->events_queued_max != 0
                               ? c->events_queued_max
                               : limits_default(LIMIT_WATCH_EVENTS_QUEUED);
    c->stream_queued_max = c->stream_queued_max != 0
                               ? c->stream_queued_max
                               : 16 * c->events_queued_max;
    c->hub_bytes_max =
        c->hub_bytes_max != 0 ? c->hub_bytes_max : (size_t)256 << 20;
    c->ctrl_queued_max = c->ctrl_queued_max != 0 ? c->ctrl_queued_max : 4096;
    c->catchup_events_max =
        c->catchup_events_max != 0 ? c->catchup_events_max : 1024;
    c->catchup_revs_max = c->catchup_revs_max > 0 ? c->catchup_revs_max : 4096;
    c->response_bytes_soft =
        c->response_bytes_soft != 0 ? c->response_bytes_soft : 64 * 1024;
    c->fragment_bytes = c->fragment_bytes != 0
                            ? c->fragment_bytes
                            : limits_default(LIMIT_REQUEST_BYTES);
    if (windex_init(&h->idx) != 0) {
        mem_free(h);
        return -ENOMEM;
    }
    if (windex_init(&h->cidx) != 0) {
        windex_free(&h->idx);
        mem_free(h);
        return -ENOMEM;
    }
    h->rev = kv_rev(cfg->kv);
    *out = h;
    return 0;
}

void watch_hub_close(struct watch_hub *h)
{
    ASSERT(h->streams == NULL);
    ASSERT(h->watchers == 0);
    ring_clear(h);
    mem_free(h->ring);
    windex_free(&h->idx);
    windex_free(&h->cidx);
    mem_free(h->scratch);
    mem_free(h->scratch_enc);
    mem_free(h);
}

void watch_hub_stats(const struct watch_hub *h, struct watch_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->watchers = h->watchers;
    out->streams = h->streams_count;
    out->synced = h->synced;
    out->unsynced = h->watchers - h->synced;
    out->groups = windex_groups(&h->idx);
    out->events_queued = h->queued;
    out->event_bytes = h->bytes;
    out->overflows = h->overflows;
    out->catchup_reads = h->catchup_reads;
    out->ring_reads = h->ring_reads;
    out->ring_events = h->ring_len;
    for (size_t i = 0; i < h->ring_len; i++) {
        out->ring_bytes += ring_at(h, i)->bytes;
    }
    out->events_sent = h->events_sent;
    out->responses_sent = h->responses_sent;
    out->rev = h->rev;
}

/*
 * sim_watch.c - the real watch hub in every member, watch clients, and the
 * watch checker.
 *
 * Each member runs one consensus/watch hub over its store, fed as the
 * daemon feeds it (registry/server/api_watch.c): the events of each
 * applied batch go to watch_hub_events() with the store's revision, a
 * snapshot install calls watch_hub_restored(), and the hub's work
 * (watch_hub_run, a seed-chosen budget per pass) runs from its own event
 * soon after, again while it says work remains, as the daemon's idle
 * handle does. The hub's bounds are seed-chosen and often tiny, so that
 * watchers overflow, fall back to history and catch up in small chunks.
 *
 * A watch client holds one stream with one watcher (a key, a prefix, a
 * range or every key; maybe prev_kv, a filter, progress_notify) on one
 * member. When that member crashes, is removed, or the client decides to
 * move, it re-opens on another member from the revision after the last one
 * it received, as etcd's clients do; a start-0 watcher whose "created"
 * never arrived starts again from 0. A compaction cancel restarts it at
 * compact_revision. Sometimes the client refuses a response (ERR_BUSY) and
 * says writable later; sometimes it asks for progress. Both only in the
 * fault phase, like its moves: a client that refuses 30% of one-event
 * responses and waits up to 50 ms each time reads ~100 events/s, less than
 * the cluster writes, so its lag grows for the whole fault phase; once the
 * writes stop it must read at full speed to catch up in the final bound.
 *
 * The checker keeps, per client, next_rev: every event in its range below
 * next_rev was received. Each response must hold whole revisions at or
 * above next_rev, with no event of the committed history in range between
 * next_rev and the response's first revision (no gap), and exactly the
 * history's in-range events of each revision, with the same kv and prev_kv
 * (no duplicate, no reordering, nothing invented). A compaction cancel is
 * right only when next_rev is below compact_revision (etcd: a start below
 * the compaction is canceled, one at it is served). A progress reply with
 * revision R means every in-range event up to R was received. In the final
 * phase every client must catch up with the whole history.
 */
#include <inttypes.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "tests/sim/sim_wl.h"

/* ------------------------------------------------------------- params */

void wl_watch_params(struct sim *s)
{
    struct sim_wl *w = s->wl;
    struct prng *r = &w->rng;
    w->watchers =
        prng_chance(r, 1, 8) ? 0 : (uint32_t)prng_range(r, 1, WL_WATCHERS_MAX);
    struct watch_config *c = &w->hub_cfg;
    memset(c, 0, sizeof(*c));
    if (prng_chance(r, 1, 2)) {
        c->events_queued_max = prng_range(r, 1, 16);
    }
    if (prng_chance(r, 1, 3)) {
        c->stream_queued_max = prng_range(r, 1, 32);
    }
    if (prng_chance(r, 1, 2)) {
        c->catchup_events_max = prng_range(r, 1, 8);
    }
    if (prng_chance(r, 1, 2)) {
        c->catchup_revs_max = (int64_t)prng_range(r, 1, 40);
    }
    if (prng_chance(r, 1, 2)) {
        c->response_bytes_soft = prng_range(r, 60, 1000);
    }
    w->run_budget = prng_chance(r, 1, 2) ? prng_range(r, 1, 16) : 4096;
    w->busy_ppm = prng_chance(r, 1, 2) ? (uint32_t)prng_range(r, 0, 300000) : 0;
    w->compact_pct = (uint32_t)prng_range(r, 0, 15);
    w->progress_us = prng_range(r, 200, 3000) * 1000;
}

/* ------------------------------------------------------------- hubs */

static void run_soon(struct sim *s, struct sim_member *m)
{
    struct wl_member *x = &s->wl->m[m->slot];
    if (!x->open || x->run_scheduled) {
        return;
    }
    x->run_scheduled = true;
    wl_schedule(s, prng_range(&s->wl->rng, 0, 2000), EV_WATCH, m->slot, m->inc);
}

static void prev_wanted(void *ctx, bool on)
{
    struct wl_member *x = ctx;
    x->prev_all = on || !x->prev_skip;
}

/* The node's apply thread sees the hub's word late (the next batch it
 * starts): here, one batch late, so that events applied without prev
 * still reach a hub that has a prev_kv watcher by then. */
bool wl_events_prev_all(struct sim *s, struct sim_member *m)
{
    struct wl_member *x = &s->wl->m[m->slot];
    bool closed = !x->open || x->hub == NULL;
    bool all = closed || x->prev_all_late;
    x->prev_all_late = closed || x->prev_all;
    return all;
}

void wl_watch_open(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[m->slot];
    struct watch_config cfg = w->hub_cfg;
    cfg.kv = m->fsm.kv;
    /* half the seeds (from the seed itself: the generator's draws stay as
     * they were) let the apply leave prev out while no watcher here has
     * prev_kv; the reference (sim_ref.c) fills it back in */
    x->prev_skip = ((s->seed * 0x9E3779B97F4A7C15ull) >> 63) != 0;
    x->prev_all = !x->prev_skip;
    x->prev_all_late = true;
    cfg.prev_wanted = prev_wanted;
    cfg.prev_ctx = x;
    int rc = watch_hub_init(&cfg, &x->hub);
    ASSERT(rc == 0);
    wl_schedule(s, prng_range(&w->rng, 1, w->progress_us), EV_WPROGRESS,
                m->slot, m->inc);
}

static void reconnect_later(struct sim *s, struct wl_watcher *c)
{
    c->token++;
    wl_schedule(s, prng_range(&s->wl->rng, 10, 500) * 1000, EV_WCLIENT, c->idx,
                c->token);
}

static void disconnect(struct sim *s, struct wl_watcher *c)
{
    ASSERT(c->connected);
    watch_stream_close(c->st);
    c->st = NULL;
    c->connected = false;
    c->have_id = false;
    c->create_pending = false;
    c->blocked = false;
    (void)s;
}

void wl_watch_down(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[m->slot];
    for (uint32_t i = 0; i < w->watchers; i++) {
        struct wl_watcher *c = &w->w[i];
        if (c->connected && c->slot == m->slot) {
            disconnect(s, c);
            reconnect_later(s, c);
        }
    }
    struct watch_stats st;
    watch_hub_stats(x->hub, &st);
    w->st_overflows += st.overflows;
    watch_hub_close(x->hub);
    x->hub = NULL;
}

void wl_watch_events(struct sim *s, struct sim_member *m,
                     const struct kv_event *evs, size_t n, int64_t rev)
{
    struct wl_member *x = &s->wl->m[m->slot];
    watch_hub_events(x->hub, evs, n, rev);
    if (watch_hub_pending(x->hub)) {
        run_soon(s, m);
    }
}

void wl_watch_restored(struct sim *s, struct sim_member *m)
{
    struct wl_member *x = &s->wl->m[m->slot];
    watch_hub_restored(x->hub);
    if (watch_hub_pending(x->hub)) {
        run_soon(s, m);
    }
}

void wl_watch_run(struct sim *s, uint32_t slot, uint64_t inc)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[slot];
    if (!x->open || x->inc != inc) {
        return;
    }
    x->run_scheduled = false;
    bool more = watch_hub_run(x->hub, w->run_budget);
    sim_hash(s, 0x3a7c, ((uint64_t)slot << 32) | more);
    if (more) {
        run_soon(s, &s->m[slot]);
    }
}

void wl_watch_progress(struct sim *s, uint32_t slot, uint64_t inc)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[slot];
    if (!x->open || x->inc != inc) {
        return;
    }
    watch_hub_progress_tick(x->hub);
    if (watch_hub_pending(x->hub)) {
        run_soon(s, &s->m[slot]);
    }
    wl_schedule(s, w->progress_us, EV_WPROGRESS, slot, inc);
}

/* ------------------------------------------------------------ checker */

/* The first in-range event of the history in revisions [from, to], or
 * NULL. */
static const struct wl_ev *first_in_range(const struct sim *s,
                                          const struct wl_watcher *c,
                                          int64_t from, int64_t to)
{
    const struct sim_wl *w = s->wl;
    if (from < 1) {
        from = 1;
    }
    if (to > w->ref_rev) {
        to = w->ref_rev;
    }
    if (from > to) {
        return NULL;
    }
    size_t first;
    size_t end;
    wl_ref_rev(s, from, &first, &end);
    size_t stop;
    wl_ref_rev(s, to, &end, &stop);
    for (size_t i = first; i < stop; i++) {
        if (wl_ev_matches(c, &w->ref[i])) {
            return &w->ref[i];
        }
    }
    return NULL;
}

static bool kvrec_equal(const struct wl_kvrec *a, const struct wl_kvrec *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

/* One response's events, whole revisions in order. */
static void check_events(struct sim *s, struct wl_watcher *c,
                         const struct watch_resp *r)
{
    struct sim_wl *w = s->wl;
    struct sim_member *m = &s->m[c->slot];
    int64_t compact = kv_compact_rev(m->fsm.kv);
    for (size_t i = 0; i < r->events_count;) {
        int64_t rev = r->events[i].kv.mod_revision;
        if (!c->have_pos || rev < c->next_rev) {
            sim_violation(s,
                          "watch %u on member %lu: event at rev %ld, "
                          "expected from rev %ld (duplicate or reordered)",
                          c->idx, (unsigned long)m->id, (long)rev,
                          (long)c->next_rev);
            return;
        }
        if (rev > w->ref_rev) {
            sim_violation(s,
                          "watch %u on member %lu: event at rev %ld past the "
                          "committed history (%ld)",
                          c->idx, (unsigned long)m->id, (long)rev,
                          (long)w->ref_rev);
            return;
        }
        const struct wl_ev *gap = first_in_range(s, c, c->next_rev, rev - 1);
        if (gap != NULL) {
            sim_violation(s,
                          "watch %u on member %lu: gap: rev %ld received, "
                          "but rev %ld (key %.*s) never was",
                          c->idx, (unsigned long)m->id, (long)rev,
                          (long)gap->kv.mod_rev, gap->key_len, gap->key);
            return;
        }
        size_t first;
        size_t end;
        wl_ref_rev(s, rev, &first, &end);
        for (size_t k = first; k < end; k++) {
            const struct wl_ev *h = &w->ref[k];
            if (!wl_ev_matches(c, h)) {
                continue;
            }
            if (i >= r->events_count || r->events[i].kv.mod_revision != rev) {
                sim_violation(s,
                              "watch %u on member %lu: rev %ld lacks the "
                              "event on key %.*s",
                              c->idx, (unsigned long)m->id, (long)rev,
                              h->key_len, h->key);
                return;
            }
            struct wl_ev got;
            wl_ev_from_kv(&got, &r->events[i]);
            bool ok = got.type == h->type && got.key_len == h->key_len &&
                      memcmp(got.key, h->key, h->key_len) == 0 &&
                      kvrec_equal(&got.kv, &h->kv);
            if (ok && c->prev_kv) {
                if (got.has_prev) {
                    ok = h->has_prev && kvrec_equal(&got.prev, &h->prev);
                } else {
                    /* left out only when that history was compacted */
                    ok = !h->has_prev || h->prev.mod_rev < compact;
                }
            } else if (ok) {
                ok = !got.has_prev;
            }
            if (!ok) {
                sim_violation(s,
                              "watch %u on member %lu: rev %ld key %.*s: "
                              "the event differs from the history",
                              c->idx, (unsigned long)m->id, (long)rev,
                              h->key_len, h->key);
                return;
            }
            i++;
            w->st_events_checked++;
            c->events++;
        }
        if (i < r->events_count && r->events[i].kv.mod_revision == rev) {
            sim_violation(s,
                          "watch %u on member %lu: rev %ld has an event on "
                          "%.*s the history has not (in range)",
                          c->idx, (unsigned long)m->id, (long)rev,
                          (int)r->events[i].kv.key_len,
                          (const char *)r->events[i].kv.key);
            return;
        }
        c->next_rev = rev + 1;
    }
}

static void check_progress(struct sim *s, struct wl_watcher *c, int64_t rev)
{
    struct sim_wl *w = s->wl;
    if (!c->have_pos) {
        return;
    }
    const struct wl_ev *e = first_in_range(s, c, c->next_rev, rev);
    if (e != NULL || rev > w->ref_rev) {
        sim_violation(s,
                      "watch %u on member %lu: progress at rev %ld, but rev "
                      "%ld was not delivered",
                      c->idx, (unsigned long)s->m[c->slot].id, (long)rev,
                      e != NULL ? (long)e->kv.mod_rev : (long)w->ref_rev);
        return;
    }
    w->st_progress_checked++;
}

static void on_compacted(struct sim *s, struct wl_watcher *c, int64_t crev)
{
    struct sim_wl *w = s->wl;
    struct sim_member *m = &s->m[c->slot];
    if (!c->have_pos || c->next_rev >= crev ||
        crev > kv_compact_rev(m->fsm.kv)) {
        sim_violation(s,
                      "watch %u on member %lu: canceled as compacted at %ld, "
                      "but it was at rev %ld (store compacted at %ld)",
                      c->idx, (unsigned long)m->id, (long)crev,
                      c->have_pos ? (long)c->next_rev : -1L,
                      (long)kv_compact_rev(m->fsm.kv));
        return;
    }
    /* the client re-lists and resumes at the compaction revision */
    c->next_rev = crev;
    c->have_id = false;
    c->compacted++;
    w->st_compact_cancels++;
    c->token++;
    wl_schedule(s, prng_range(&w->rng, 1, 100) * 1000, EV_WCLIENT, c->idx,
                c->token);
}

/* The stream's send callback: check what arrives (or refuse it). */
static int on_resp(void *ctx, const struct watch_resp *r)
{
    struct wl_watcher *c = ctx;
    struct sim *s = c->s;
    struct sim_wl *w = s->wl;
    if (w->busy_ppm > 0 && s->phase == PHASE_FAULT &&
        prng_chance(&w->rng, w->busy_ppm, 1000000)) {
        c->blocked = true;
        c->token++;
        wl_schedule(s, prng_range(&w->rng, 1, 50000), EV_WCLIENT, c->idx,
                    c->token);
        return ERR_BUSY;
    }
    sim_trace(s,
              "watch %u: resp id %ld rev %ld events %zu (first rev %ld)%s%s "
              "compact %ld",
              c->idx, (long)r->watch_id, (long)r->revision, r->events_count,
              r->events_count > 0 ? (long)r->events[0].kv.mod_revision : 0L,
              r->created ? " created" : "", r->canceled ? " canceled" : "",
              (long)r->compact_revision);
    sim_hash(s, 0x3e5b,
             ((uint64_t)c->idx << 40) ^ (uint64_t)r->revision ^
                 ((uint64_t)r->events_count << 20));
    if (r->created && r->canceled) {
        sim_violation(s, "watch %u: create refused: %s", c->idx,
                      r->cancel_reason != NULL ? r->cancel_reason : "?");
        return 0;
    }
    if (r->created) {
        if (!c->create_pending) {
            sim_violation(s, "watch %u: a created reply nobody asked for",
                          c->idx);
            return 0;
        }
        c->create_pending = false;
        c->have_id = true;
        c->watch_id = r->watch_id;
        if (c->start_asked == 0 && !c->have_pos) {
            c->have_pos = true;
            c->next_rev = r->revision + 1;
        }
        return 0;
    }
    if (r->watch_id != -1 && (!c->have_id || r->watch_id != c->watch_id)) {
        sim_violation(s, "watch %u: a response for watch id %ld (ours %ld)",
                      c->idx, (long)r->watch_id,
                      c->have_id ? (long)c->watch_id : -1L);
        return 0;
    }
    if (r->canceled) {
        if (r->compact_revision > 0) {
            on_compacted(s, c, r->compact_revision);
        } else {
            sim_violation(s, "watch %u: canceled: %s", c->idx,
                          r->cancel_reason != NULL ? r->cancel_reason : "-");
        }
        return 0;
    }
    if (r->events_count > 0) {
        check_events(s, c, r);
    } else if (c->have_id) {
        /* (a stream progress with no watcher on the stream says nothing) */
        check_progress(s, c, r->revision);
    }
    return 0;
}

/* ------------------------------------------------------------ clients */

static void create(struct sim *s, struct wl_watcher *c)
{
    struct sim_wl *w = s->wl;
    struct watch_create wc;
    memset(&wc, 0, sizeof(wc));
    wc.key = (const uint8_t *)c->key;
    wc.key_len = c->key_len;
    wc.range_end = (const uint8_t *)c->end;
    wc.range_end_len = c->end_len;
    wc.prev_kv = c->prev_kv;
    wc.no_put = c->no_put;
    wc.no_delete = c->no_delete;
    wc.progress_notify = c->progress_notify;
    if (c->have_pos) {
        wc.start_revision = c->next_rev;
    } else if (!c->started) {
        uint64_t r = prng_below(&w->rng, 10);
        if (r < 4 || w->ref_rev == 0) {
            wc.start_revision = 0;
        } else if (r < 8) {
            wc.start_revision =
                (int64_t)prng_range(&w->rng, 1, (uint64_t)w->ref_rev + 1);
        } else {
            wc.start_revision =
                w->ref_rev + (int64_t)prng_range(&w->rng, 1, 20);
        }
        if (wc.start_revision > 0) {
            c->have_pos = true;
            c->next_rev = wc.start_revision;
        }
    }
    c->started = true;
    c->start_asked = wc.start_revision;
    c->create_pending = true;
    int rc = watch_stream_create(c->st, &wc);
    ASSERT(rc == 0);
    sim_trace(s, "watch %u: create on %lu from %ld", c->idx,
              (unsigned long)s->m[c->slot].id, (long)wc.start_revision);
    run_soon(s, &s->m[c->slot]);
}

/* After healing, clients use the members of the current configuration
 * (a member whose addition was lost keeps running alone, and its store
 * never catches up: a sim artifact, since it started at the proposal). */
static bool usable(const struct sim *s, uint32_t slot)
{
    const struct sim_member *l = NULL;
    uint64_t best = 0;
    if (s->phase == PHASE_FAULT) {
        return true;
    }
    for (uint32_t i = 0; i < s->slots_used; i++) {
        const struct sim_member *m = &s->m[i];
        if (m->up && m->raft_open && m->role == RAFT_LEADER) {
            struct raft_status st;
            raft_status(&m->raft, &st);
            if (l == NULL || st.hard.term > best) {
                best = st.hard.term;
                l = m;
            }
        }
    }
    if (l == NULL) {
        return true;
    }
    struct raft_status st;
    raft_status(&l->raft, &st);
    for (uint32_t i = 0; i < st.conf.voters_count; i++) {
        if (st.conf.voters[i] == slot + 1) {
            return true;
        }
    }
    for (uint32_t i = 0; i < st.conf.learners_count; i++) {
        if (st.conf.learners[i] == slot + 1) {
            return true;
        }
    }
    return false;
}

static void connect(struct sim *s, struct wl_watcher *c)
{
    struct sim_wl *w = s->wl;
    uint32_t cand[SIM_SLOTS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->slots_used; i++) {
        if (s->m[i].up && !s->m[i].removed && w->m[i].open && usable(s, i)) {
            cand[n++] = i;
        }
    }
    if (n == 0) {
        reconnect_later(s, c);
        return;
    }
    uint32_t slot = cand[prng_below(&w->rng, n)];
    int rc = watch_stream_open(w->m[slot].hub, on_resp, c, &c->st);
    ASSERT(rc == 0);
    c->connected = true;
    c->slot = slot;
    c->inc = s->m[slot].inc;
    if (c->started) {
        c->reopens++;
        w->st_reopens++;
    }
    create(s, c);
}

static void compact_request(struct sim *s, struct wl_watcher *c)
{
    struct sim_wl *w = s->wl;
    if (w->ref_rev < 2) {
        return;
    }
    struct sim_member *m = &s->m[c->slot];
    int64_t lo = w->ref_rev > 60 ? w->ref_rev - 60 : 1;
    Etcdserverpb__CompactionRequest req =
        ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    req.revision =
        (int64_t)prng_range(&w->rng, (uint64_t)lo, (uint64_t)w->ref_rev);
    struct wl_prop *p = wl_prop_new(s, WP_COMPACT, m);
    (void)wl_propose(s, m, p, APPLY_COMPACTION, &req.base);
}

void wl_watcher_wake(struct sim *s, uint32_t idx, uint64_t token)
{
    struct sim_wl *w = s->wl;
    struct wl_watcher *c = &w->w[idx];
    if (c->token != token) {
        return;
    }
    c->token++;
    uint64_t next = prng_range(&w->rng, 100, 2000) * 1000;
    if (!c->connected) {
        connect(s, c);
    } else if (c->blocked) {
        c->blocked = false;
        watch_stream_writable(c->st);
        run_soon(s, &s->m[c->slot]);
    } else if (!c->have_id && !c->create_pending) {
        create(s, c); /* after a compaction cancel */
    } else if (s->phase != PHASE_FAULT && !usable(s, c->slot)) {
        disconnect(s, c);
        connect(s, c);
    } else if (s->phase == PHASE_FAULT) {
        uint64_t r = prng_below(&w->rng, 100);
        if (r < 5) {
            disconnect(s, c); /* move to another member */
            connect(s, c);
        } else if (r < 10) {
            watch_stream_progress(c->st);
            run_soon(s, &s->m[c->slot]);
        } else if (r < 10 + w->compact_pct) {
            compact_request(s, c);
        }
    }
    if (c->token == token + 1) {
        wl_schedule(s, next, EV_WCLIENT, c->idx, c->token);
    }
}

static void pick_range(struct sim *s, struct wl_watcher *c)
{
    struct prng *r = &s->wl->rng;
    uint64_t k = prng_below(r, 6);
    c->key_len = 1;
    c->end_len = 1;
    switch (k) {
    case 0: /* one register key */
        c->key[0] = 'k';
        c->key[1] = (char)('0' + prng_below(r, s->p.keys));
        c->key_len = 2;
        c->end_len = 0;
        break;
    case 1: /* the register keys */
        c->key[0] = 'k';
        c->end[0] = 'l';
        break;
    case 2: /* the lease keys */
        c->key[0] = 'L';
        c->end[0] = 'M';
        break;
    case 3: /* every key */
        c->key[0] = 0;
        c->end[0] = 0;
        break;
    case 4: /* every key from k1 */
        c->key[0] = 'k';
        c->key[1] = '1';
        c->key_len = 2;
        c->end[0] = 0;
        break;
    default: /* [k1, k3) */
        c->key[0] = 'k';
        c->key[1] = '1';
        c->key_len = 2;
        c->end[0] = 'k';
        c->end[1] = '3';
        c->end_len = 2;
        break;
    }
    c->prev_kv = prng_chance(r, 1, 2);
    c->no_put = prng_chance(r, 1, 12);
    c->no_delete = !c->no_put && prng_chance(r, 1, 12);
    c->progress_notify = prng_chance(r, 1, 3);
}

void wl_watch_start(struct sim *s)
{
    struct sim_wl *w = s->wl;
    for (uint32_t i = 0; i < w->watchers; i++) {
        struct wl_watcher *c = &w->w[i];
        memset(c, 0, sizeof(*c));
        c->s = s;
        c->idx = i;
        pick_range(s, c);
        c->token = 1;
        wl_schedule(s, prng_range(&w->rng, 1, 5 * SIM_US_PER_S), EV_WCLIENT, i,
                    c->token);
    }
}

/* Final phase: every client has received every event in its range. */
bool wl_watch_final_done(struct sim *s, bool report)
{
    struct sim_wl *w = s->wl;
    bool done = true;
    for (uint32_t i = 0; i < w->watchers; i++) {
        struct wl_watcher *c = &w->w[i];
        bool ok = c->connected && c->have_id && c->have_pos &&
                  first_in_range(s, c, c->next_rev, w->ref_rev) == NULL;
        if (!ok && report) {
            sim_violation(s,
                          "watch %u (on member %lu, %s) has not caught up: "
                          "at rev %ld of %ld",
                          c->idx, (unsigned long)s->m[c->slot].id,
                          c->connected ? "connected" : "disconnected",
                          c->have_pos ? (long)c->next_rev : -1L,
                          (long)w->ref_rev);
        }
        done = done && ok;
    }
    return done;
}

void wl_watch_close(struct sim *s)
{
    struct sim_wl *w = s->wl;
    for (uint32_t i = 0; i < w->watchers; i++) {
        ASSERT(!w->w[i].connected);
    }
}

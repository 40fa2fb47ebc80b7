/*
 * sim_ref.c - the committed history, proposals made for watchers and
 * leases, and the hooks through which the rest of the simulator reaches
 * sim_watch.c and sim_lease.c (declared in sim.h; each is a no-op when
 * watchers and leases are off: --fsm mem or --no-wl).
 *
 * The committed history. Every member applies the same log through the
 * real consensus/apply, whose event hook reports each store event. The
 * first member to apply a revision records its events (the reference);
 * every later member's events at that revision must be equal, event by
 * event (so a member that diverges is caught here, not only by the digest
 * at convergence). Watchers are checked against this reference.
 *
 * First application. For each log index the virtual time at which any
 * member first applied it is kept: the lease checker measures a renewal
 * through the log from there (no member can hold the renewal earlier).
 *
 * Proposals. Our requests go through raft_propose on a member, as the
 * daemon's node_propose does (a follower's Raft forwards to the leader);
 * their answers come from apply's on_result hook on the proposer, routed
 * here by request id before sim_fsm.c's own handling.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "proto/cairn.pb-c.h"
#include "tests/sim/sim_wl.h"

static void grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return;
    }
    size_t n = *cap ? *cap : 256;
    while (n < need) {
        n *= 2;
    }
    uint8_t *p = mem_realloc(*v, n * elem);
    ASSERT(p != NULL);
    memset(p + *cap * elem, 0, (n - *cap) * elem);
    *v = p;
    *cap = n;
}

void wl_schedule(struct sim *s, uint64_t delay_us, uint32_t kind, uint32_t a,
                 uint64_t b)
{
    if (s->wl->closing) {
        return; /* the run is over */
    }
    sim_schedule(s, s->now + delay_us, kind, a, b, NULL);
}

uint64_t wl_max_leader_term(const struct sim *s)
{
    for (size_t t = s->ck.terms_cap; t-- > 0;) {
        if (s->ck.leader_of_term[t] != 0) {
            return t;
        }
    }
    return 0;
}

int64_t wl_min_lease_ttl(const struct sim *s)
{
    /* registry: ceil(1.5 election timeouts) in whole seconds */
    uint64_t e_ms = s->p.election_ticks * s->p.tick_us / 1000;
    return (int64_t)((3 * e_ms / 2 + 999) / 1000);
}

/* ------------------------------------------------------------ setup */

void wl_init(struct sim *s)
{
    struct sim_wl *w = mem_calloc(1, sizeof(*w));
    ASSERT(w != NULL);
    s->wl = w;
    w->on = s->opts.fsm == FSM_KV && !s->opts.no_wl;
    w->plant = s->opts.plant;
    prng_seed(&w->rng, prng_mix(s->seed ^ 0x776c776c));
    for (uint32_t i = 0; i < SIM_SLOTS; i++) {
        buf_init(&w->m[i].bdata, 0);
    }
    if (!w->on) {
        return;
    }
    wl_watch_params(s);
    wl_lease_params(s);
    /* a new store is at revision 1, with no events */
    grow((void **)&w->rev_first, &w->rev_cap, 3, sizeof(*w->rev_first));
    w->ref_rev = 1;
}

void wl_start(struct sim *s)
{
    if (s->wl == NULL || !s->wl->on) {
        return;
    }
    wl_watch_start(s);
    wl_lease_start(s);
}

void wl_shutdown(struct sim *s)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on) {
        return;
    }
    w->closing = true;
    for (uint32_t i = 0; i < s->slots_used; i++) {
        wl_member_down(s, &s->m[i]);
    }
}

void wl_close(struct sim *s)
{
    struct sim_wl *w = s->wl;
    if (w == NULL) {
        return;
    }
    wl_watch_close(s);
    wl_lease_close(s);
    for (uint32_t i = 0; i < SIM_SLOTS; i++) {
        ASSERT(!w->m[i].open);
        mem_free(w->m[i].bev);
        buf_free(&w->m[i].bdata);
    }
    mem_free(w->ref);
    mem_free(w->rev_first);
    mem_free(w->first_apply_us);
    mem_free(w->prop_of_req);
    mem_free(w->props);
    mem_free(w);
    s->wl = NULL;
}

void wl_dispatch(struct sim *s, const struct sim_ev *e)
{
    switch (e->kind) {
    case EV_WATCH:
        wl_watch_run(s, e->a, e->b);
        break;
    case EV_WCLIENT:
        wl_watcher_wake(s, e->a, e->b);
        break;
    case EV_LTICK:
        wl_lease_tick(s, e->a, e->b);
        break;
    case EV_LAGENT:
        wl_agent_wake(s, e->a, e->b);
        break;
    case EV_WPROGRESS:
        wl_watch_progress(s, e->a, e->b);
        break;
    default:
        UNREACHABLE();
    }
}

/* ------------------------------------------------------ members */

int wl_member_open(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on) {
        return 0;
    }
    struct wl_member *x = &w->m[m->slot];
    ASSERT(!x->open);
    x->open = true;
    x->inc = m->inc;
    x->run_scheduled = false;
    x->revokes_inflight = 0;
    wl_watch_open(s, m);
    return wl_lease_open(s, m);
}

void wl_member_down(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on || !w->m[m->slot].open) {
        return;
    }
    /* The member's pending proposals will never be answered to their
     * callers (the daemon fails them at close). */
    for (size_t i = 0; i < w->props_count; i++) {
        struct wl_prop *p = &w->props[i];
        if (!p->answered && p->slot == m->slot && p->inc == m->inc) {
            p->answered = true;
            wl_lease_prop_lost(s, p);
        }
    }
    wl_watch_down(s, m);
    wl_lease_down(s, m);
    w->m[m->slot].open = false;
}

int wl_member_restored(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on || !w->m[m->slot].open) {
        return 0;
    }
    wl_watch_restored(s, m);
    return wl_lease_restored(s, m);
}

void wl_role_changed(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on || !w->m[m->slot].open) {
        return;
    }
    wl_lease_role_changed(s, m);
}

uint32_t wl_member_swallowed(struct sim *s, struct sim_member *m,
                             uint64_t last_id)
{
    struct sim_wl *w = s->wl;
    uint32_t n = 0;
    if (w == NULL || !w->on || !w->m[m->slot].open) {
        return 0;
    }
    /* What the node's ERR_TIMEOUT for them means here (as expire_props). */
    for (size_t i = 0; i < w->props_count; i++) {
        struct wl_prop *p = &w->props[i];
        if (!p->answered && p->slot == m->slot && p->inc == m->inc &&
            p->req_id <= last_id) {
            p->answered = true;
            n++;
            wl_lease_prop_lost(s, p);
        }
    }
    return n;
}

/* ------------------------------------------------------ proposals */

struct wl_prop *wl_prop_new(struct sim *s, uint8_t kind, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    grow((void **)&w->props, &w->props_cap, w->props_count + 1,
         sizeof(*w->props));
    struct wl_prop *p = &w->props[w->props_count++];
    memset(p, 0, sizeof(*p));
    p->req_id = ++s->next_req;
    p->kind = kind;
    p->slot = m->slot;
    p->inc = m->inc;
    p->agent = UINT32_MAX;
    p->at_us = s->now;
    /* the node's waiter timeout: 5 s + two election timeouts */
    p->deadline_us = s->now + 5 * SIM_US_PER_S +
                     2 * (uint64_t)s->p.election_ticks * m->tick_us;
    grow((void **)&w->prop_of_req, &w->por_cap, (size_t)p->req_id + 1,
         sizeof(*w->prop_of_req));
    w->prop_of_req[p->req_id] = (uint32_t)w->props_count;
    return p;
}

static struct wl_prop *prop_find(struct sim *s, uint64_t req_id)
{
    struct sim_wl *w = s->wl;
    if (req_id >= w->por_cap || w->prop_of_req[req_id] == 0) {
        return NULL;
    }
    return &w->props[w->prop_of_req[req_id] - 1];
}

int wl_propose(struct sim *s, struct sim_member *m, struct wl_prop *p,
               enum apply_op op, const ProtobufCMessage *req)
{
    int rc = ERR_STOPPED;
    if (m->up && m->raft_open && !m->removed) {
        struct buf *tmp = &s->scratch;
        buf_reset(tmp);
        size_t n = protobuf_c_message_get_packed_size(req);
        rc = buf_reserve(tmp, n);
        ASSERT(rc == 0);
        tmp->len = protobuf_c_message_pack(req, tmp->data);
        buf_reset(&s->scratch2);
        rc = apply_envelope(p->req_id, m->id, op, tmp->data, tmp->len,
                            &s->scratch2);
        ASSERT(rc == 0);
        rc = raft_propose(&m->raft, RAFT_ENTRY_NORMAL, s->scratch2.data,
                          s->scratch2.len, NULL);
    }
    sim_hash(s, 0x3a1e,
             ((uint64_t)p->kind << 32) | (uint64_t)(rc < 0 ? -rc : 0));
    sim_trace(s, "wl: propose kind %u req %lu lease %lx via %lu: %s", p->kind,
              (unsigned long)p->req_id, (unsigned long)p->lease,
              (unsigned long)m->id, rc < 0 ? err_str(rc) : "ok");
    if (rc < 0) {
        p->answered = true;
        return rc;
    }
    member_drive(s, m);
    return 0;
}

bool wl_result(struct sim *s, struct sim_member *m,
               const struct apply_result *res)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on) {
        return false;
    }
    struct wl_prop *p = prop_find(s, res->id);
    if (p == NULL) {
        return false;
    }
    if (p->answered || p->slot != m->slot || p->inc != m->inc) {
        return true; /* given up on, or proposed before a restart */
    }
    p->answered = true;
    if (p->kind != WP_COMPACT) {
        wl_lease_result(s, m, p, res);
    }
    return true;
}

/* ------------------------------------------------- the history */

static void kvrec_from(struct wl_kvrec *r, const struct kv_kv *kv)
{
    memset(r, 0, sizeof(*r));
    r->create_rev = kv->create_revision;
    r->mod_rev = kv->mod_revision;
    r->version = kv->version;
    r->lease = kv->lease;
    ASSERT(kv->value_len <= WL_KEY_MAX);
    r->val_len = (uint8_t)kv->value_len;
    if (kv->value_len > 0) {
        memcpy(r->val, kv->value, kv->value_len);
    }
}

void wl_ev_from_kv(struct wl_ev *out, const struct kv_event *e)
{
    memset(out, 0, sizeof(*out));
    out->type = (uint8_t)e->type;
    ASSERT(e->kv.key_len <= WL_KEY_MAX);
    out->key_len = (uint8_t)e->kv.key_len;
    memcpy(out->key, e->kv.key, e->kv.key_len);
    kvrec_from(&out->kv, &e->kv);
    out->has_prev = e->has_prev;
    if (e->has_prev) {
        kvrec_from(&out->prev, &e->prev);
    }
}

void wl_ref_rev(const struct sim *s, int64_t rev, size_t *first, size_t *end)
{
    const struct sim_wl *w = s->wl;
    if (rev < 1 || rev > w->ref_rev) {
        *first = *end = w->ref_count;
        return;
    }
    *first = w->rev_first[rev];
    *end = rev == w->ref_rev ? w->ref_count : w->rev_first[rev + 1];
}

static bool key_in(const char *k, size_t kl, const char *a, size_t al)
{
    /* k >= a (bytewise, shorter first on a tie) */
    size_t n = kl < al ? kl : al;
    int c = memcmp(k, a, n);
    return c > 0 || (c == 0 && kl >= al);
}

bool wl_ev_matches(const struct wl_watcher *w, const struct wl_ev *e)
{
    if ((e->type == KV_EVENT_PUT && w->no_put) ||
        (e->type == KV_EVENT_DELETE && w->no_delete)) {
        return false;
    }
    if (w->end_len == 0) {
        return e->key_len == w->key_len &&
               memcmp(e->key, w->key, w->key_len) == 0;
    }
    bool all = w->key_len == 1 && w->key[0] == 0;
    if (!all && !key_in(e->key, e->key_len, w->key, w->key_len)) {
        return false;
    }
    if (w->end_len == 1 && w->end[0] == 0) {
        return true;
    }
    return !key_in(e->key, e->key_len, w->end, w->end_len);
}

static bool ev_equal(const struct wl_ev *a, const struct wl_ev *b)
{
    return memcmp(a, b, sizeof(*a)) == 0; /* both fully zeroed first */
}

/* A new revision's events, recorded by the first member to apply them;
 * the lease model of sim_lease.c follows them (check (c)). */
static void ref_append(struct sim *s, const struct wl_ev *e)
{
    struct sim_wl *w = s->wl;
    int64_t rev = e->kv.mod_rev;
    if (rev != w->ref_rev) {
        ASSERT(rev == w->ref_rev + 1);
        grow((void **)&w->rev_first, &w->rev_cap, (size_t)rev + 2,
             sizeof(*w->rev_first));
        w->rev_first[rev] = w->ref_count;
        w->ref_rev = rev;
    }
    grow((void **)&w->ref, &w->ref_cap, w->ref_count + 1, sizeof(*w->ref));
    w->ref[w->ref_count++] = *e;
    /* the lease model: attachments, and deletes only by a revoke */
    if (e->type == KV_EVENT_PUT) {
        struct wl_lease *nl = wl_lease_get(s, e->kv.lease);
        struct wl_lease *ol =
            e->has_prev ? wl_lease_get(s, e->prev.lease) : NULL;
        if (nl != ol) {
            if (nl != NULL) {
                nl->keys_attached++;
            }
            if (ol != NULL && ol->keys_attached > 0) {
                ol->keys_attached--;
            }
        }
    } else if (e->has_prev && e->prev.lease != 0) {
        struct wl_lease *ol = wl_lease_get(s, e->prev.lease);
        if (ol == NULL) {
            return;
        }
        if (ol->revoked) {
            sim_violation(s,
                          "lease %lx: key %.*s deleted at rev %ld after "
                          "the lease was revoked",
                          (unsigned long)ol->id, e->key_len, e->key, (long)rev);
        } else if (ol->revoke_rev != 0 && ol->revoke_rev != rev) {
            sim_violation(s,
                          "lease %lx: its keys deleted at revisions %ld and "
                          "%ld (one revoke, one revision)",
                          (unsigned long)ol->id, (long)ol->revoke_rev,
                          (long)rev);
        }
        ol->revoke_rev = rev;
        ol->keys_deleted++;
        if (ol->keys_attached > 0) {
            ol->keys_attached--;
        }
    }
}

/* An event the apply gave no prev (prev_omitted: the key had a record):
 * the reference takes it as it would have come, the key's newest put
 * before this revision in the committed history. None there, or a
 * delete, is a violation (omitted must mean there was one). */
static void ref_fill_prev(struct sim *s, struct sim_member *m, struct wl_ev *e)
{
    const struct sim_wl *w = s->wl;
    int64_t rev = e->kv.mod_rev;
    size_t i = rev > w->ref_rev ? w->ref_count : w->rev_first[rev];
    ASSERT(!e->has_prev);
    while (i > 0) {
        const struct wl_ev *h = &w->ref[--i];
        if (h->kv.mod_rev >= rev || h->key_len != e->key_len ||
            memcmp(h->key, e->key, e->key_len) != 0) {
            continue;
        }
        if (h->type == KV_EVENT_PUT) {
            e->has_prev = true;
            e->prev = h->kv;
            return;
        }
        break;
    }
    sim_violation(s,
                  "member %lu: rev %ld key %.*s: prev omitted, but the "
                  "history has no live record before it",
                  (unsigned long)m->id, (long)rev, e->key_len, e->key);
}

static void on_event(struct sim *s, struct sim_member *m,
                     const struct kv_event *ev)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[m->slot];
    ASSERT(x->in_apply);
    struct wl_ev e;
    wl_ev_from_kv(&e, ev);
    int64_t rev = e.kv.mod_rev;
    if (ev->prev_omitted) {
        w->st_prev_omitted++;
        ref_fill_prev(s, m, &e);
    }
    /* position of this event within its revision on this member */
    size_t k = 0;
    if (x->bev_count > 0 && x->bev[x->bev_count - 1].kv.mod_revision == rev) {
        size_t j = x->bev_count;
        while (j > 0 && x->bev[j - 1].kv.mod_revision == rev) {
            j--;
            k++;
        }
    }
    bool recording =
        rev > w->ref_rev ||
        (rev == w->ref_rev && m->slot == w->ref_owner &&
         m->inc == w->ref_owner_inc && w->ref_owner_batch == x->batch_seq);
    if (recording) {
        if (rev > w->ref_rev + 1) {
            sim_violation(s, "member %lu: event at rev %ld after rev %ld",
                          (unsigned long)m->id, (long)rev, (long)w->ref_rev);
            return;
        }
        if (rev > w->ref_rev) {
            w->ref_owner = m->slot;
            w->ref_owner_inc = m->inc;
            w->ref_owner_batch = x->batch_seq;
        }
        ref_append(s, &e);
    } else {
        size_t first;
        size_t end;
        wl_ref_rev(s, rev, &first, &end);
        if (first + k >= end || !ev_equal(&w->ref[first + k], &e)) {
            sim_violation(s,
                          "member %lu: event %zu of rev %ld (key %.*s) "
                          "differs from the committed history",
                          (unsigned long)m->id, k, (long)rev, e.key_len, e.key);
        }
    }
    /* keep a copy for the member's hub */
    grow((void **)&x->bev, &x->bev_cap, x->bev_count + 1, sizeof(*x->bev));
    struct kv_event *c = &x->bev[x->bev_count++];
    *c = *ev;
    size_t need = ev->kv.key_len + ev->kv.value_len +
                  (ev->has_prev ? ev->prev.value_len : 0);
    size_t off = x->bdata.len;
    int rc = buf_reserve(&x->bdata, need + 1);
    ASSERT(rc == 0);
    /* offsets now; pointers fixed at the end of the batch */
    c->kv.key = (const uint8_t *)(uintptr_t)off;
    buf_append(&x->bdata, ev->kv.key, ev->kv.key_len);
    c->kv.value = (const uint8_t *)(uintptr_t)x->bdata.len;
    buf_append(&x->bdata, ev->kv.value, ev->kv.value_len);
    if (ev->has_prev) {
        c->prev.key = c->kv.key;
        c->prev.value = (const uint8_t *)(uintptr_t)x->bdata.len;
        buf_append(&x->bdata, ev->prev.value, ev->prev.value_len);
    }
}

/* The request id an entry carries (the envelope's field 1), or 0. */
static uint64_t entry_req_id(const struct raft_entry *e)
{
    uint64_t id = 0;
    if (e->type != RAFT_ENTRY_NORMAL || e->len < 2 || e->data[0] != 0x08 ||
        varint_get(e->data + 1, e->len - 1, &id) == 0) {
        return 0;
    }
    return id;
}

/* Renewals through the log in a first-applied entry: every checkpoint with
 * R = 0, as consensus/apply records them for LeaseExpire. */
/* Whether apply refuses this proposal as repeated or overtaken (apply.h,
 * exactly once); called once per entry, in log order. */
static bool scan_refused(struct sim *s, uint64_t origin, uint64_t id)
{
    struct sim_wl *w = s->wl;
    size_t i = 0;
    if (id == 0) {
        return false;
    }
    while (i < WL_ORIGINS_MAX && w->scan_origin[i] != 0 &&
           w->scan_origin[i] != origin) {
        i++;
    }
    ASSERT(i < WL_ORIGINS_MAX); /* members ever created: SIM_SLOTS */
    w->scan_origin[i] = origin;
    if (id <= w->scan_last_id[i]) {
        return true;
    }
    w->scan_last_id[i] = id;
    return false;
}

/* Returns true when apply will refuse the entry (it takes no effect). */
static bool note_log_renewals(struct sim *s, const struct raft_entry *e)
{
    bool refused = false;
    if (e->type != RAFT_ENTRY_NORMAL) {
        return false;
    }
    Cairnpb__InternalRequest *req =
        cairnpb__internal_request__unpack(NULL, e->len, e->data);
    if (req == NULL) {
        return false;
    }
    refused = scan_refused(s, req->origin, req->id);
    if (refused) {
        /* nothing of it happens */
    } else if (req->request_case ==
               CAIRNPB__INTERNAL_REQUEST__REQUEST_LEASE_GRANT) {
        struct wl_lease *l = wl_lease_get(s, req->lease_grant->id);
        if (l != NULL && l->log_grant_index == 0) {
            l->log_grant_index = e->index;
        }
    } else if (req->request_case ==
               CAIRNPB__INTERNAL_REQUEST__REQUEST_LEASE_CHECKPOINT) {
        const Etcdserverpb__LeaseCheckpointRequest *c = req->lease_checkpoint;
        for (size_t k = 0; k < c->n_checkpoints; k++) {
            struct wl_lease *l = wl_lease_get(s, c->checkpoints[k]->id);
            /* apply skips a checkpoint of a lease not granted yet (a
             * keep-alive that reached the log before its grant) */
            if (l != NULL && c->checkpoints[k]->remaining_ttl == 0 &&
                l->log_grant_index != 0) {
                l->log_renew_index = e->index;
            }
        }
    }
    cairnpb__internal_request__free_unpacked(req, NULL);
    return refused;
}

void wl_apply_begin(struct sim *s, struct sim_member *m,
                    const struct raft_entry *e, size_t n)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on) {
        return;
    }
    struct wl_member *x = &w->m[m->slot];
    ASSERT(x->open && !x->in_apply);
    x->in_apply = true;
    x->batch_seq++;
    x->bev_count = 0;
    buf_reset(&x->bdata);
    for (size_t i = 0; i < n; i++) {
        if (e[i].index <= w->fa_max) {
            continue;
        }
        w->fa_max = e[i].index;
        grow((void **)&w->first_apply_us, &w->fa_cap, (size_t)e[i].index + 1,
             sizeof(*w->first_apply_us));
        w->first_apply_us[e[i].index] = s->now;
        bool refused = note_log_renewals(s, &e[i]);
        struct wl_prop *p = prop_find(s, entry_req_id(&e[i]));
        if (p != NULL && p->index == 0 && !refused) {
            p->index = e[i].index;
            p->applied_us = s->now;
            wl_lease_applied(s, p);
        }
    }
}

int wl_on_event(struct sim *s, struct sim_member *m, const struct kv_event *ev)
{
    if (s->wl != NULL && s->wl->on) {
        on_event(s, m, ev);
    }
    return 0;
}

void wl_on_lease(struct sim *s, struct sim_member *m, int64_t id, int64_t ttl,
                 bool checkpoint)
{
    if (s->wl != NULL && s->wl->on) {
        wl_lease_hook(s, m, id, ttl, checkpoint);
    }
}

static void plant_drop(struct sim *s, struct wl_member *x)
{
    /* planted bug 3: the first event at rev >= 10 that some connected
     * watcher of this member wants never reaches the hub */
    struct sim_wl *w = s->wl;
    for (size_t i = 0; i < x->bev_count; i++) {
        struct wl_ev e;
        wl_ev_from_kv(&e, &x->bev[i]);
        if (e.kv.mod_rev < 10) {
            continue;
        }
        for (uint32_t j = 0; j < w->watchers; j++) {
            struct wl_watcher *c = &w->w[j];
            if (c->connected && c->slot == (uint32_t)(x - w->m) &&
                !c->create_pending && wl_ev_matches(c, &e)) {
                memmove(&x->bev[i], &x->bev[i + 1],
                        (x->bev_count - i - 1) * sizeof(*x->bev));
                x->bev_count--;
                w->plant = 0; /* once */
                return;
            }
        }
    }
}

void wl_apply_end(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on) {
        return;
    }
    struct wl_member *x = &w->m[m->slot];
    ASSERT(x->in_apply);
    x->in_apply = false;
    /* each revision of the batch has as many events as the history */
    for (size_t i = 0; i < x->bev_count;) {
        int64_t rev = x->bev[i].kv.mod_revision;
        size_t k = 0;
        while (i < x->bev_count && x->bev[i].kv.mod_revision == rev) {
            i++;
            k++;
        }
        size_t first;
        size_t end;
        wl_ref_rev(s, rev, &first, &end);
        if (end - first != k) {
            sim_violation(s,
                          "member %lu: rev %ld has %zu events, the "
                          "history %zu",
                          (unsigned long)m->id, (long)rev, k, end - first);
        }
    }
    for (size_t i = 0; i < x->bev_count; i++) {
        struct kv_event *c = &x->bev[i];
        c->kv.key = x->bdata.data + (uintptr_t)c->kv.key;
        c->kv.value = x->bdata.data + (uintptr_t)c->kv.value;
        if (c->has_prev) {
            c->prev.key = c->kv.key;
            c->prev.value = x->bdata.data + (uintptr_t)c->prev.value;
        }
    }
    int64_t crev = kv_compact_rev(m->fsm.kv);
    if (crev > w->compact_max) {
        w->compact_max = crev;
    }
    if (w->plant == 3) {
        plant_drop(s, x);
    }
    if (x->bev_count > 0) {
        wl_watch_events(s, m, x->bev, x->bev_count, kv_rev(m->fsm.kv));
    }
    x->bev_count = 0;
    wl_lease_sync_role(s, m);
}

/* ------------------------------------------------------- the end */

void wl_final(struct sim *s)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on) {
        return;
    }
    w->final_at = s->now;
    wl_lease_final(s);
}

bool wl_final_done(struct sim *s)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on) {
        return true;
    }
    /* Bounded: every lease's deadline (TTL + election timeout + slack)
     * and the watchers' catch-up fit well inside this. */
    bool late = s->now - w->final_at >
                (uint64_t)(w->min_ttl_s + w->ttl_span_s) * SIM_US_PER_S +
                    2 * w->election_ms_max * 1000 + 20 * SIM_US_PER_S;
    bool done = wl_watch_final_done(s, late) & wl_lease_final_done(s, late);
    return done || late;
}

void wl_check_end(struct sim *s)
{
    struct sim_wl *w = s->wl;
    if (w == NULL || !w->on) {
        return;
    }
    wl_lease_check_end(s);
}

void wl_report(const struct sim *s, char *out, size_t len)
{
    const struct sim_wl *w = s->wl;
    out[0] = '\0';
    if (w == NULL || !w->on) {
        return;
    }
    size_t leases_revoked = 0;
    for (size_t i = 0; i < w->leases_count; i++) {
        leases_revoked += w->leases[i].revoked;
    }
    snprintf(out, len,
             ", watchers %u events checked %lu progress %lu compacted %lu "
             "reopens %lu, leases %zu revoked %zu keep-alives %lu (log %lu, "
             "unconfirmed %lu) "
             "checkpoints %lu ttl0-live %lu late-races %lu revoke-lag %lu ms",
             w->watchers, (unsigned long)w->st_events_checked,
             (unsigned long)w->st_progress_checked,
             (unsigned long)w->st_compact_cancels, (unsigned long)w->st_reopens,
             w->leases_count, leases_revoked, (unsigned long)w->st_ka_acked,
             (unsigned long)w->st_ka_log, (unsigned long)w->st_ka_unconfirmed,
             (unsigned long)w->st_checkpoints,
             (unsigned long)w->st_ka_zero_live, (unsigned long)w->st_late_races,
             (unsigned long)(w->st_revoke_lag_max_us / 1000));
}

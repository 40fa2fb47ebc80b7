/*
 * sim_lease.c - lease timers in every member as the daemon runs them, lease
 * agents (clients), and the lease checkers.
 *
 * What is mirrored, and from where. The daemon's lease logic is
 * consensus/lease (pure: every call takes now_ms) glued to libuv, gRPC and
 * the node in registry/server/api_lease.c. That glue is short but woven
 * into the KeepAlive stream and the node's proposal callbacks, so instead
 * of factoring it out this file calls consensus/lease's API per member,
 * with the virtual clock in milliseconds as now_ms, doing exactly what
 * api_lease.c does:
 *  - table: lease_table_init with revokes_per_tick_max 100,
 *    checkpoints_per_tick_max 1000, promote_extend_ms = the member's
 *    election timeout (api_lease__start); rebuilt from kv_lease_list at
 *    every start and after a snapshot install (restore_one,
 *    api_lease__restored), the role applied again afterwards;
 *  - the log: apply's on_lease hook -> lease_on_checkpoint / lease_on_grant
 *    / lease_on_revoke (api_lease__on_lease);
 *  - the role: lease_promote when the member leads and has applied its
 *    term's first entry, lease_demote when it stops or its term changes
 *    (api_lease__on_leader with node_lead_applied; the daemon hears it
 *    from the node's soft state and after the applied batch with that
 *    entry, we sync before every use of the table and after every applied
 *    batch, which no lease decision can tell apart);
 *  - the tick every 100 ms on the leader (on_tick): propose_revokes
 *    (lease_expired, at most 100, at most 1000 revokes in flight, one
 *    LeaseExpire proposal each, carrying its applied index) and
 *    propose_checkpoints
 *    (lease_checkpoints_due, one LeaseCheckpoint proposal with all, carrying
 *    its applied index);
 *    proposals time out as the node's waiters do (5 s + 2 election
 *    timeouts), which frees an in-flight revoke slot;
 *  - a keep-alive (ka_on_msg / on_prop_done): on the leader lease_renew,
 *    answered at once unless it asks for a clearing checkpoint; on a
 *    follower, a renewal through the log (a checkpoint with R = 0), even
 *    for a lease its table does not hold yet, answered once applied with
 *    the TTL the local table then has (0 if the lease is gone).
 * One deviation: the checkpoint interval is seed-chosen (0.5-4 s, or the
 * daemon's 5 min), because the simulated TTLs are seconds long and the
 * checkpoint path would never run at 5 min. The minimum TTL is the
 * daemon's: ceil(1.5 election timeouts) (node.c, apply's min_lease_ttl_s).
 *
 * An agent grants a lease (its own id, TTL in the seed's range), attaches
 * one to three keys "L<id>/<n>" (now and then re-puts one, or detaches it
 * with lease 0), and sends keep-alives every TTL/3 to some member. A
 * seed-chosen share of leases are abandoned at a random moment; a lease
 * whose grant outcome is unknown, or that answers TTL 0, or that had no
 * answer for TTL, is abandoned too (its agent moves on). In the final
 * phase every lease is abandoned.
 *
 * The checkers. A renewal is counted, with a time a on the virtual clock:
 *  - the grant, a = when any member first applied it;
 *  - a keep-alive answered TTL > 0 by a leader in memory, a = the answer
 *    time, when no member had yet been leader of a later term (a leader
 *    that may be deposed is not a quorum's leader);
 *  - a keep-alive answered TTL > 0 after its log entry applied (follower
 *    renewal, or the leader's clearing checkpoint), a = when any member
 *    first applied that entry.
 * (a) A lease whose revoke was decided at time r (the leader's
 *     lease_expired named it; the revoke that took effect is the first in
 *     log order) must have no counted renewal with a <= r < a + TTL.
 *     Renewals made after r (in flight while the revoke was decided) are
 *     counted as "late races", not violations: etcd has the same window.
 * (b) An abandoned lease is revoked; when that happens after healing, it
 *     happens by max(last counted renewal, healed, promotion of a leader,
 *     that leader's own last renewal) + TTL + election timeout + one lease
 *     tick + a commit's worth of network and disk delay, for the first
 *     leader that stays in office that long (time without one is not
 *     counted: revoke_due). A leader's own renewal counts here even when
 *     nobody heard its answer: a keep-alive renews on arrival, as etcd's
 *     lessor does, and the answer waits for a read-index round the agent
 *     may not wait out (seed 445227: renewed at 105.39 s, abandoned 9 ms
 *     later, revoked 5.05 s after the renewal; the check, counting only
 *     the answered renewal at 103.73 s, wanted it by 110.15 s).
 * (c) The keys attached to a lease are deleted at one revision, together
 *     with the lease, and none is left (the model follows the committed
 *     history in sim_ref.c: only revokes delete lease keys).
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "proto/cairn.pb-c.h"
#include "tests/sim/sim_wl.h"

static uint64_t now_ms(const struct sim *s)
{
    return s->now / 1000;
}

static uint64_t election_ms(const struct sim *s, const struct sim_member *m)
{
    return (uint64_t)s->p.election_ticks * m->tick_us / 1000;
}

struct wl_lease *wl_lease_get(struct sim *s, int64_t id)
{
    struct sim_wl *w = s->wl;
    if (id < WL_LEASE_BASE || id >= WL_LEASE_BASE + (int64_t)w->leases_count) {
        return NULL;
    }
    return &w->leases[id - WL_LEASE_BASE];
}

static void add_renewal(struct sim *s, struct wl_lease *l, uint64_t at)
{
    if (l->renew_count == l->renew_cap) {
        size_t cap = l->renew_cap ? l->renew_cap * 2 : 8;
        uint64_t *v = mem_realloc(l->renew_us, cap * sizeof(*v));
        ASSERT(v != NULL);
        l->renew_us = v;
        l->renew_cap = cap;
    }
    l->renew_us[l->renew_count++] = at;
    (void)s;
}

/* m's table, leading in an open tenure, renewed l now (lease_renew, or a
 * renewal through the log applied): that leader revokes l no sooner than
 * TTL after it, whether or not anyone heard the answer (check b). */
static void add_touch(struct sim *s, struct wl_lease *l,
                      const struct wl_member *x)
{
    if (x->tenure == 0) {
        return;
    }
    if (l->touch_count > 0 &&
        l->touch[l->touch_count - 1].tenure == x->tenure) {
        l->touch[l->touch_count - 1].at_us = s->now;
        return;
    }
    if (l->touch_count == l->touch_cap) {
        size_t cap = l->touch_cap ? l->touch_cap * 2 : 4;
        struct wl_touch *v = mem_realloc(l->touch, cap * sizeof(*v));
        ASSERT(v != NULL);
        l->touch = v;
        l->touch_cap = cap;
    }
    l->touch[l->touch_count].at_us = s->now;
    l->touch[l->touch_count].tenure = x->tenure;
    l->touch_count++;
}

/* A tenure opens when m's table is promoted; check (b) owes a revoke only
 * to a leader that held on long enough (wl_lease_check_end). */
static void tenure_open(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[m->slot];
    ASSERT(x->tenure == 0);
    if (w->tenures_count == w->tenures_cap) {
        size_t cap = w->tenures_cap ? w->tenures_cap * 2 : 16;
        struct wl_tenure *v = mem_realloc(w->tenures, cap * sizeof(*v));
        ASSERT(v != NULL);
        w->tenures = v;
        w->tenures_cap = cap;
    }
    struct wl_tenure *t = &w->tenures[w->tenures_count++];
    t->slot = m->slot;
    t->from_us = s->now;
    t->until_us = UINT64_MAX;
    x->tenure = w->tenures_count;
}

static void tenure_close(struct sim *s, struct wl_member *x)
{
    if (x->tenure == 0) {
        return; /* already closed by the Raft role change */
    }
    struct wl_tenure *t = &s->wl->tenures[x->tenure - 1];
    ASSERT(t->until_us == UINT64_MAX);
    t->until_us = s->now;
    x->tenure = 0;
}

/* ------------------------------------------------------------- params */

void wl_lease_params(struct sim *s)
{
    struct sim_wl *w = s->wl;
    struct prng *r = &w->rng;
    w->agents =
        prng_chance(r, 1, 6) ? 0 : (uint32_t)prng_range(r, 1, WL_AGENTS_MAX);
    w->min_ttl_s = wl_min_lease_ttl(s);
    if (w->min_ttl_s < 1) {
        w->min_ttl_s = 1;
    }
    w->ttl_span_s = (int64_t)prng_range(r, 0, 8);
    w->abandon_pct = (uint32_t)prng_range(r, 0, 50);
    w->cp_interval_ms = prng_chance(r, 2, 3) ? prng_range(r, 500, 4000) : 0;
    w->election_ms_max =
        (uint64_t)s->p.election_ticks * s->p.tick_us * 110 / 100 / 1000;
}

/* ------------------------------------------------------------- tables */

struct restore_ctx {
    struct sim *s;
    struct lease_table *t;
};

static int restore_one(void *ctx, const struct kv_lease *rec)
{
    struct restore_ctx *r = ctx;
    return lease_restore(r->t, rec->id, rec->ttl, rec->remaining_ttl,
                         now_ms(r->s)) != 0
               ? 1
               : 0;
}

static struct lease_table *table_build(struct sim *s, struct sim_member *m)
{
    struct lease_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.revokes_per_tick_max = WL_REVOKES_PER_TICK;
    cfg.checkpoints_per_tick_max = WL_CHECKPOINTS_BATCH;
    cfg.promote_extend_ms = election_ms(s, m);
    cfg.checkpoint_interval_ms = s->wl->cp_interval_ms;
    struct lease_table *t;
    int rc = lease_table_init(&cfg, &t);
    ASSERT(rc == 0);
    struct kv_read *rd;
    rc = kv_read_begin(m->fsm.kv, &rd);
    ASSERT(rc == 0);
    struct restore_ctx r = {s, t};
    rc = kv_lease_list(rd, restore_one, &r);
    kv_read_end(rd);
    ASSERT(rc == 0);
    return t;
}

void wl_lease_sync_role(struct sim *s, struct sim_member *m)
{
    struct wl_member *x = &s->wl->m[m->slot];
    if (!x->open) {
        return;
    }
    /* api_lease__on_leader: the table leads once the member, as leader,
     * has applied its term's first entry (node_lead_applied), and only in
     * that term */
    bool lead = m->up && m->raft_open && m->role == RAFT_LEADER &&
                m->raft.role == RAFT_LEADER && m->raft.term_start_index != 0 &&
                m->fsm.applied >= m->raft.term_start_index;
    uint64_t term = lead ? m->raft.term : 0;
    if (lease_is_leader(x->lt) && (!lead || x->term != term)) {
        lease_demote(x->lt);
        tenure_close(s, x);
    }
    if (lead && !lease_is_leader(x->lt)) {
        lease_promote(x->lt, now_ms(s));
        tenure_open(s, m);
        x->term = term;
        sim_trace(s, "wl: member %lu leads leases (%zu) from term %lu",
                  (unsigned long)m->id, lease_count(x->lt),
                  (unsigned long)x->term);
    }
}

/* The table hears of it at the next sync, as the daemon's does from the
 * node's soft state; the tenure ends now, because from now on no revoke
 * this member proposes can commit in its term. Leader again (a new term):
 * the table is promoted afresh once it applied that term's first entry. */
void wl_lease_role_changed(struct sim *s, struct sim_member *m)
{
    struct wl_member *x = &s->wl->m[m->slot];
    if (m->role != RAFT_LEADER) {
        tenure_close(s, x);
    }
}

int wl_lease_open(struct sim *s, struct sim_member *m)
{
    struct wl_member *x = &s->wl->m[m->slot];
    x->lt = table_build(s, m);
    uint64_t e = election_ms(s, m);
    if (e > s->wl->election_ms_max) {
        s->wl->election_ms_max = e;
    }
    wl_schedule(s, prng_range(&s->wl->rng, 1, WL_LEASE_TICK_US), EV_LTICK,
                m->slot, m->inc);
    return 0;
}

void wl_lease_down(struct sim *s, struct sim_member *m)
{
    struct wl_member *x = &s->wl->m[m->slot];
    tenure_close(s, x);
    lease_table_close(x->lt);
    x->lt = NULL;
}

int wl_lease_restored(struct sim *s, struct sim_member *m)
{
    struct wl_member *x = &s->wl->m[m->slot];
    tenure_close(s, x); /* the new table is promoted afresh */
    lease_table_close(x->lt);
    x->lt = table_build(s, m);
    wl_lease_sync_role(s, m);
    return 0;
}

/* apply's on_lease, on every member, in apply order */
void wl_lease_hook(struct sim *s, struct sim_member *m, int64_t id, int64_t ttl,
                   bool checkpoint)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[m->slot];
    if (checkpoint) {
        lease_on_checkpoint(x->lt, id, ttl, now_ms(s));
        struct wl_lease *t = wl_lease_get(s, id);
        int64_t rem;
        int64_t gttl;
        if (ttl == 0 && t != NULL && lease_is_leader(x->lt) &&
            lease_remaining(x->lt, id, now_ms(s), &rem, &gttl) == 0) {
            add_touch(s, t, x);
        }
    } else if (ttl > 0) {
        int rc = lease_on_grant(x->lt, id, ttl, now_ms(s));
        ASSERT(rc == 0);
    } else {
        lease_on_revoke(x->lt, id);
    }
    struct wl_lease *l = wl_lease_get(s, id);
    if (l == NULL) {
        sim_violation(s, "member %lu: a lease %lx nobody granted",
                      (unsigned long)m->id, (unsigned long)id);
        return;
    }
    if (!checkpoint && ttl > 0 && !l->granted) {
        l->granted = true;
        l->ttl = ttl;
        l->grant_us = s->now;
        add_renewal(s, l, s->now);
        if (ttl < w->min_ttl_s || ttl < l->ttl_asked) {
            sim_violation(s, "lease %lx granted TTL %ld (asked %ld, min %ld)",
                          (unsigned long)id, (long)ttl, (long)l->ttl_asked,
                          (long)w->min_ttl_s);
        }
    } else if (!checkpoint && ttl == 0 && !l->revoked) {
        /* the first member to apply the revoke: check (c) */
        l->revoked = true;
        l->revoke_applied_us = s->now;
        if (l->revoke_index == 0) {
            sim_violation(s, "lease %lx revoked, but by no revoke we know",
                          (unsigned long)id);
        }
        if (l->keys_attached > 0) {
            sim_violation(s, "lease %lx revoked with %u keys still attached",
                          (unsigned long)id, l->keys_attached);
        }
        if (l->keys_deleted > 0 && l->revoke_rev != s->wl->ref_rev) {
            sim_violation(s,
                          "lease %lx: its keys went at rev %ld, the revoke "
                          "at rev %ld",
                          (unsigned long)id, (long)l->revoke_rev,
                          (long)s->wl->ref_rev);
        }
        w->st_revokes++;
    }
}

/* A proposal of ours was first applied somewhere (index known). */
void wl_lease_applied(struct sim *s, struct wl_prop *p)
{
    if (p->kind != WP_REVOKE) {
        return;
    }
    struct wl_lease *l = wl_lease_get(s, p->lease);
    if (l != NULL && !l->revoked && l->revoke_index == 0 &&
        l->log_renew_index <= p->seen_index) {
        /* the first expire in log order that saw the last renewal through
         * the log is the one that takes effect (apply: LeaseExpire) */
        l->revoke_index = p->index;
        l->revoke_decided_us = p->at_us;
        l->revoke_slot = p->slot;
    }
}

/* ---------------------------------------------------------- the tick */

static void propose_revokes(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[m->slot];
    int64_t ids[WL_REVOKES_PER_TICK];
    size_t cap = WL_REVOKES_INFLIGHT - x->revokes_inflight;
    uint64_t now = now_ms(s);
    if (w->plant == 4) {
        now += 2000; /* planted bug 4: the leader's clock runs 2 s early */
    }
    if (w->plant == 5) {
        return; /* planted bug 5: the leader never revokes */
    }
    if (w->plant == 9) {
        now = now > 2000 ? now - 2000 : 0; /* planted bug 9: 2 s late */
    }
    size_t n = lease_expired(
        x->lt, now, ids, cap < WL_REVOKES_PER_TICK ? cap : WL_REVOKES_PER_TICK);
    for (size_t i = 0; i < n; i++) {
        /* propose_revokes: an expiry carrying what this member applied */
        Cairnpb__LeaseExpire req = CAIRNPB__LEASE_EXPIRE__INIT;
        req.id = ids[i];
        req.seen_index = m->fsm.applied;
        struct wl_prop *p = wl_prop_new(s, WP_REVOKE, m);
        p->lease = ids[i];
        p->seen_index = req.seen_index;
        if (wl_propose(s, m, p, APPLY_LEASE_EXPIRE, &req.base) != 0) {
            return; /* named again after revoke_retry_ms */
        }
        x->revokes_inflight++;
        if (!x->open || !m->up) {
            return;
        }
    }
}

static void propose_checkpoints(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[m->slot];
    struct lease_checkpoint due[WL_CHECKPOINTS_BATCH];
    Etcdserverpb__LeaseCheckpoint cps[WL_CHECKPOINTS_BATCH];
    Etcdserverpb__LeaseCheckpoint *cpp[WL_CHECKPOINTS_BATCH];
    size_t n =
        lease_checkpoints_due(x->lt, now_ms(s), due, WL_CHECKPOINTS_BATCH);
    if (n == 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        etcdserverpb__lease_checkpoint__init(&cps[i]);
        cps[i].id = due[i].id;
        cps[i].remaining_ttl = due[i].remaining_s;
        cpp[i] = &cps[i];
    }
    Etcdserverpb__LeaseCheckpointRequest req =
        ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
    req.n_checkpoints = n;
    req.checkpoints = cpp;
    req.seen_index = m->fsm.applied; /* as api_lease.c: node_applied */
    struct wl_prop *p = wl_prop_new(s, WP_CHECKPOINT, m);
    (void)wl_propose(s, m, p, APPLY_LEASE_CHECKPOINT, &req.base);
    w->st_checkpoints += n;
}

/* The node's waiters time out: a revoke that never applied frees its
 * in-flight slot (props are in proposal order; each member keeps a
 * cursor). */
static void expire_props(struct sim *s, struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    for (size_t i = 0; i < w->props_count; i++) {
        struct wl_prop *p = &w->props[i];
        if (p->answered || p->slot != m->slot || p->inc != m->inc ||
            p->deadline_us > s->now) {
            continue;
        }
        p->answered = true;
        wl_lease_prop_lost(s, p);
    }
}

void wl_lease_tick(struct sim *s, uint32_t slot, uint64_t inc)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[slot];
    struct sim_member *m = &s->m[slot];
    if (!x->open || x->inc != inc) {
        return;
    }
    wl_lease_sync_role(s, m);
    if ((s->now / WL_LEASE_TICK_US) % 10 == slot % 10) {
        expire_props(s, m); /* about once a second per member */
    }
    if (lease_is_leader(x->lt)) {
        propose_revokes(s, m);
        if (x->open && m->up && x->inc == inc) {
            propose_checkpoints(s, m);
        }
    }
    if (x->open && x->inc == inc) {
        wl_schedule(s, WL_LEASE_TICK_US, EV_LTICK, slot, inc);
    }
}

/* ------------------------------------------------------------ agents */

static void agent_later(struct sim *s, struct wl_agent *a, uint64_t delay)
{
    a->token++;
    wl_schedule(s, delay, EV_LAGENT, a->idx, a->token);
}

static struct sim_member *agent_member(struct sim *s, struct wl_agent *a)
{
    struct prng *r = &s->wl->rng;
    if (a->prefer >= s->slots_used || prng_chance(r, 1, 4)) {
        a->prefer = (uint32_t)prng_below(r, s->slots_used);
    }
    struct sim_member *m = &s->m[a->prefer];
    if (m->up && m->leader != RAFT_NONE && m->leader <= SIM_SLOTS &&
        prng_chance(r, 1, 2)) {
        struct sim_member *l = &s->m[m->leader - 1];
        if (l->up) {
            return l;
        }
    }
    return m;
}

static bool member_ok(struct sim *s, struct sim_member *m)
{
    return m->up && m->raft_open && !m->removed && s->wl->m[m->slot].open;
}

static void lease_abandon(struct sim *s, struct wl_agent *a, const char *why)
{
    struct wl_lease *l = wl_lease_get(s, a->lease);
    if (l != NULL && !l->abandoned) {
        l->abandoned = true;
        l->abandon_us = s->now;
        sim_trace(s, "wl: agent %u abandons lease %lx (%s)", a->idx,
                  (unsigned long)l->id, why);
    }
    a->lease = 0;
    a->state = AG_IDLE;
    a->busy = false;
}

static void agent_send(struct sim *s, struct wl_agent *a, struct wl_prop *p,
                       struct sim_member *m, enum apply_op op,
                       const ProtobufCMessage *req)
{
    p->agent = a->idx;
    p->agent_gen = ++a->gen;
    p->lease = a->lease;
    a->busy = true;
    a->deadline_us = s->now + s->p.client_timeout_us;
    if (wl_propose(s, m, p, op, req) != 0) {
        a->busy = false; /* refused at once: no effect */
    }
}

static void agent_grant(struct sim *s, struct wl_agent *a)
{
    struct sim_wl *w = s->wl;
    if (w->leases_count == w->leases_cap) {
        size_t cap = w->leases_cap ? w->leases_cap * 2 : 32;
        struct wl_lease *v = mem_realloc(w->leases, cap * sizeof(*v));
        ASSERT(v != NULL);
        w->leases = v;
        w->leases_cap = cap;
    }
    struct wl_lease *l = &w->leases[w->leases_count++];
    memset(l, 0, sizeof(*l));
    l->id = WL_LEASE_BASE + (int64_t)(w->leases_count - 1);
    l->agent = a->idx;
    int64_t lo = w->min_ttl_s > 1 ? w->min_ttl_s - 1 : 1;
    l->ttl_asked = (int64_t)prng_range(
        &w->rng, (uint64_t)lo, (uint64_t)(w->min_ttl_s + w->ttl_span_s));
    a->lease = l->id;
    a->state = AG_GRANT;
    a->keys_to_put = (uint32_t)prng_range(&w->rng, 1, WL_KEYS_PER_LEASE_MAX);
    a->abandon = prng_chance(&w->rng, w->abandon_pct, 100);
    struct sim_member *m = agent_member(s, a);
    Etcdserverpb__LeaseGrantRequest req =
        ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    req.id = l->id;
    req.ttl = l->ttl_asked;
    struct wl_prop *p = wl_prop_new(s, WP_GRANT, m);
    agent_send(s, a, p, m, APPLY_LEASE_GRANT, &req.base);
    if (!a->busy) {
        a->lease = 0;
        a->state = AG_IDLE;
    }
}

static void agent_put(struct sim *s, struct wl_agent *a)
{
    struct sim_wl *w = s->wl;
    struct wl_lease *l = wl_lease_get(s, a->lease);
    char key[WL_KEY_MAX];
    char val[WL_KEY_MAX];
    uint32_t n = l->next_key < a->keys_to_put
                     ? l->next_key
                     : (uint32_t)prng_below(&w->rng, l->next_key);
    int kl = snprintf(key, sizeof(key), "L%08lx/%u", (unsigned long)l->id, n);
    int vl = snprintf(val, sizeof(val), "v%016llx",
                      (unsigned long long)++s->next_value);
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key.data = (uint8_t *)key;
    req.key.len = (size_t)kl;
    req.value.data = (uint8_t *)val;
    req.value.len = (size_t)vl;
    /* now and then a key is detached (lease 0): a revoke must spare it */
    req.lease = n < l->next_key && prng_chance(&w->rng, 1, 8) ? 0 : l->id;
    if (n == l->next_key) {
        l->next_key++;
    }
    struct sim_member *m = agent_member(s, a);
    struct wl_prop *p = wl_prop_new(s, WP_PUT, m);
    agent_send(s, a, p, m, APPLY_PUT, &req.base);
}

static void ka_answer(struct sim *s, struct wl_agent *a, int64_t ttl)
{
    struct sim_wl *w = s->wl;
    struct wl_lease *l = wl_lease_get(s, a->lease);
    a->busy = false;
    if (l == NULL) {
        return;
    }
    if (ttl > 0) {
        l->last_ack_us = s->now;
        w->st_ka_acked++;
        return;
    }
    if (!l->revoked) {
        w->st_ka_zero_live++;
    }
    lease_abandon(s, a, "keep-alive answered TTL 0");
}

static void agent_keepalive_log(struct sim *s, struct wl_agent *a,
                                struct sim_member *m);

/* One keep-alive on m, as api_lease.c's ka_on_msg handles it. */
static void agent_keepalive(struct sim *s, struct wl_agent *a)
{
    struct sim_wl *w = s->wl;
    struct sim_member *m = agent_member(s, a);
    if (!member_ok(s, m)) {
        return; /* no connection: try again at the next period */
    }
    struct wl_member *x = &w->m[m->slot];
    struct wl_lease *l = wl_lease_get(s, a->lease);
    wl_lease_sync_role(s, m);
    int64_t ttl = 0;
    bool log_needed = false;
    bool leader = lease_is_leader(x->lt);
    a->gen++;
    if (leader) {
        if (lease_renew(x->lt, l->id, now_ms(s), &ttl, &log_needed) == 0) {
            add_touch(s, l, x);
        } else {
            int64_t rem;
            int64_t gttl;
            ttl = 0;
            /* leader_unaware: a grant not applied yet goes through the log */
            log_needed = lease_remaining(x->lt, l->id, now_ms(s), &rem,
                                         &gttl) == ERR_LEASE_NOT_FOUND;
        }
    } else {
        log_needed = true; /* follower: always through the log */
    }
    sim_hash(s, 0x4a11, ((uint64_t)l->id << 8) | (leader << 1) | log_needed);
    if (!log_needed && w->plant == 8) {
        /* planted bug 8: answered at once, as before seed 9649's fix */
        if (ttl > 0) {
            add_renewal(s, l, s->now);
        }
        ka_answer(s, a, ttl);
        return;
    }
    if (!log_needed) {
        /* confirm_start: answered after a read-index round that began
         * after the renewal, if the member still leads in this term */
        struct sim_read *r = NULL;
        ASSERT(leader);
        if (member_read_start(s, m, &r) == 0) {
            r->agent = true;
            r->client = a->idx;
            r->client_gen = a->gen;
            r->ttl = ttl;
            r->term = x->term;
            r->at_us = s->now;
            a->busy = true;
            a->deadline_us = s->now + s->p.client_timeout_us;
            member_drive(s, m);
            return;
        }
        /* no round to be had: through the log */
    }
    agent_keepalive_log(s, a, m);
}

bool wl_agent_waits(struct sim *s, uint32_t idx, uint64_t gen)
{
    const struct wl_agent *a = &s->wl->a[idx];
    return a->busy && a->gen == gen;
}

/* on_confirmed: the renewal made at r->at_us counts from then, for every
 * check, when the member still leads in the term it renewed in; else the
 * agent renews through the log at once (renewals_retry or the fallback in
 * on_confirmed). Runs inside the member's processing: the log renewal
 * waits for the agent's next wake. */
void wl_ka_confirmed(struct sim *s, struct sim_member *m,
                     const struct sim_read *r, bool ok)
{
    struct sim_wl *w = s->wl;
    struct wl_agent *a = &w->a[r->client];
    struct wl_member *x = &w->m[m->slot];
    if (!wl_agent_waits(s, r->client, r->client_gen)) {
        return;
    }
    if (ok) {
        wl_lease_sync_role(s, m);
    }
    struct wl_lease *l = wl_lease_get(s, a->lease);
    if (ok && x->open && lease_is_leader(x->lt) && x->term == r->term) {
        if (r->ttl > 0 && l != NULL) {
            add_renewal(s, l, r->at_us);
        }
        ka_answer(s, a, r->ttl);
        return;
    }
    w->st_ka_unconfirmed++;
    a->busy = false;
    a->gen++;
    a->ka_via_log = true;
    agent_later(s, a, 1);
}

/* A renewal through the log (a checkpoint with R = 0), as a follower
 * makes it, or a leader whose table asks for a clearing checkpoint. */
static void agent_keepalive_log(struct sim *s, struct wl_agent *a,
                                struct sim_member *m)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[m->slot];
    struct wl_lease *l = wl_lease_get(s, a->lease);
    bool leader = lease_is_leader(x->lt);
    Etcdserverpb__LeaseCheckpoint cp = ETCDSERVERPB__LEASE_CHECKPOINT__INIT;
    Etcdserverpb__LeaseCheckpoint *cpp = &cp;
    Etcdserverpb__LeaseCheckpointRequest req =
        ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
    cp.id = l->id;
    cp.remaining_ttl = 0;
    req.n_checkpoints = 1;
    req.checkpoints = &cpp;
    struct wl_prop *p = wl_prop_new(s, WP_RENEW, m);
    agent_send(s, a, p, m, APPLY_LEASE_CHECKPOINT, &req.base);
    if (!a->busy && leader && x->open) {
        lease_checkpoint_proposed(x->lt, l->id, 1);
    }
}

void wl_agent_wake(struct sim *s, uint32_t idx, uint64_t token)
{
    struct sim_wl *w = s->wl;
    struct wl_agent *a = &w->a[idx];
    if (a->token != token) {
        return;
    }
    uint64_t wait_until = a->state == AG_ALIVE ? a->next_ka_us : a->deadline_us;
    if (a->busy && s->now < wait_until) {
        agent_later(s, a, wait_until - s->now);
        return;
    }
    if (a->busy) {
        a->busy = false; /* gave up: outcome unknown */
        a->gen++;
        if (a->state == AG_GRANT) {
            lease_abandon(s, a, "grant outcome unknown");
        } else if (a->state == AG_PUT) {
            a->state = AG_ALIVE; /* the lease lives on or not */
        }
    }
    if (w->final_abandoned) {
        return;
    }
    struct wl_lease *l = wl_lease_get(s, a->lease);
    switch (a->state) {
    case AG_IDLE:
        agent_grant(s, a);
        break;
    case AG_PUT:
        agent_put(s, a);
        break;
    case AG_ALIVE: {
        uint64_t ttl_us = (uint64_t)l->ttl * SIM_US_PER_S;
        if (a->abandon && s->now >= a->abandon_at_us) {
            lease_abandon(s, a, "chosen");
        } else if (s->now > l->last_ack_us + ttl_us) {
            lease_abandon(s, a, "no answer for a TTL");
        } else if (a->ka_via_log) {
            struct sim_member *m = agent_member(s, a);
            a->ka_via_log = false;
            if (member_ok(s, m)) {
                wl_lease_sync_role(s, m);
                agent_keepalive_log(s, a, m);
            }
        } else if (s->now >= a->next_ka_us) {
            a->next_ka_us = s->now + ttl_us / 3;
            agent_keepalive(s, a);
        } else if (prng_chance(&w->rng, 1, 4)) {
            agent_put(s, a);
        }
        break;
    }
    default:
        UNREACHABLE();
    }
    if (a->state == AG_IDLE && !a->busy) {
        agent_later(s, a, prng_range(&w->rng, 100, 3000) * 1000);
    } else if (a->state == AG_ALIVE) {
        uint64_t next = a->next_ka_us > s->now ? a->next_ka_us - s->now : 1;
        uint64_t r = prng_range(&w->rng, 200, 2000) * 1000;
        agent_later(s, a, next < r ? next : r);
    } else {
        agent_later(s, a, a->busy ? s->p.client_timeout_us : 1000);
    }
}

static void agent_done(struct sim *s, struct wl_prop *p, bool ok, int err,
                       int64_t ttl)
{
    struct sim_wl *w = s->wl;
    if (p->agent == UINT32_MAX) {
        return;
    }
    struct wl_agent *a = &w->a[p->agent];
    if (!a->busy || a->gen != p->agent_gen || a->lease != p->lease) {
        return; /* the agent gave up on it */
    }
    struct wl_lease *l = wl_lease_get(s, a->lease);
    switch (p->kind) {
    case WP_GRANT:
        a->busy = false;
        if (!ok) {
            if (err != 0) {
                sim_violation(s, "lease %lx: grant failed: %s",
                              (unsigned long)l->id, err_str(err));
            }
            lease_abandon(s, a, "grant failed");
            break;
        }
        a->state = AG_PUT;
        l->last_ack_us = s->now;
        a->next_ka_us = s->now + (uint64_t)l->ttl * SIM_US_PER_S / 3;
        a->abandon_at_us =
            s->now +
            prng_range(&w->rng, 0, 4 * (uint64_t)l->ttl) * SIM_US_PER_S;
        break;
    case WP_PUT:
        a->busy = false;
        if (!ok && err == ERR_LEASE_NOT_FOUND) {
            lease_abandon(s, a, "lease gone at put");
        } else if (!ok && err != 0) {
            sim_violation(s, "lease %lx: put failed: %s", (unsigned long)l->id,
                          err_str(err));
        } else if (l->next_key >= a->keys_to_put) {
            a->state = AG_ALIVE;
        }
        break;
    case WP_RENEW:
        if (!ok) {
            a->busy = false; /* stream ended: the next period retries */
        } else {
            ka_answer(s, a, ttl);
        }
        break;
    default:
        break;
    }
    agent_later(s, a, 1000);
}

void wl_lease_result(struct sim *s, struct sim_member *m, struct wl_prop *p,
                     const struct apply_result *res)
{
    struct sim_wl *w = s->wl;
    struct wl_member *x = &w->m[m->slot];
    if (res->err == ERR_PROPOSAL_DROPPED) {
        /* Refused by apply as repeated or overtaken (apply.h): it never
         * took effect anywhere, as if the proposal had been lost. */
        wl_lease_prop_lost(s, p);
        return;
    }
    switch (p->kind) {
    case WP_REVOKE:
        if (x->revokes_inflight > 0) {
            x->revokes_inflight--;
        }
        break;
    case WP_RENEW: {
        /* on_prop_done: the local table says whether the lease survived */
        int64_t rem = 0;
        int64_t ttl = 0;
        if (res->err == 0 &&
            lease_remaining(x->lt, p->lease, now_ms(s), &rem, &ttl) == 0) {
            struct wl_lease *l = wl_lease_get(s, p->lease);
            if (ttl > 0 && l != NULL && p->index != 0) {
                add_renewal(s, l, p->applied_us);
                w->st_ka_log++;
            }
        } else {
            ttl = 0;
        }
        if (res->err != 0 && res->err != ERR_LEASE_NOT_FOUND) {
            agent_done(s, p, false, res->err, 0);
        } else {
            agent_done(s, p, true, 0, ttl);
        }
        break;
    }
    default:
        agent_done(s, p, res->err == 0, res->err, 0);
        break;
    }
}

void wl_lease_prop_lost(struct sim *s, struct wl_prop *p)
{
    struct sim_wl *w = s->wl;
    if (p->kind == WP_REVOKE && w->m[p->slot].open &&
        w->m[p->slot].inc == p->inc && w->m[p->slot].revokes_inflight > 0) {
        w->m[p->slot].revokes_inflight--;
    }
    agent_done(s, p, false, 0, 0);
}

void wl_lease_start(struct sim *s)
{
    struct sim_wl *w = s->wl;
    for (uint32_t i = 0; i < w->agents; i++) {
        struct wl_agent *a = &w->a[i];
        memset(a, 0, sizeof(*a));
        a->idx = i;
        agent_later(s, a, prng_range(&w->rng, 1, 3 * SIM_US_PER_S));
    }
}

/* --------------------------------------------------------- the end */

void wl_lease_final(struct sim *s)
{
    struct sim_wl *w = s->wl;
    w->final_abandoned = true;
    for (uint32_t i = 0; i < w->agents; i++) {
        struct wl_agent *a = &w->a[i];
        if (a->lease != 0) {
            lease_abandon(s, a, "final phase");
        }
        a->token++; /* stops */
    }
    for (size_t i = 0; i < w->leases_count; i++) {
        struct wl_lease *l = &w->leases[i];
        if (!l->abandoned) {
            l->abandoned = true;
            l->abandon_us = s->now;
        }
    }
}

bool wl_lease_final_done(struct sim *s, bool report)
{
    struct sim_wl *w = s->wl;
    bool done = true;
    for (size_t i = 0; i < w->props_count; i++) {
        const struct wl_prop *p = &w->props[i];
        if (p->kind == WP_GRANT && p->index == 0 && p->deadline_us > s->now) {
            done = false; /* a grant may still apply */
        }
    }
    for (size_t i = 0; i < w->leases_count; i++) {
        const struct wl_lease *l = &w->leases[i];
        if (l->granted && !l->revoked) {
            if (report) {
                sim_violation(s,
                              "lease %lx (TTL %ld s, abandoned at %lu ms) is "
                              "still there %lu ms into the final phase",
                              (unsigned long)l->id, (long)l->ttl,
                              (unsigned long)(l->abandon_us / 1000),
                              (unsigned long)((s->now - w->final_at) / 1000));
            }
            done = false;
        }
    }
    return done;
}

/* Check (b)'s deadline for an abandoned lease of TTL ttl_us last renewed
 * at last: the earliest over the lease-leader tenures in office after
 * healing of from + TTL + E (+ slack), from = max(last, healed, the
 * tenure's promotion), counting only a tenure that lasted to it. A leader
 * promoted after healing has every lease until at least now + TTL + E
 * (lease_promote); one in office at healing may have named the lease
 * before, its revoke lost, and names it again revoke_retry_ms later. A
 * leader that stepped down before its deadline owed nothing, and while
 * none leads nobody can revoke: etcd promises nothing then either. Not
 * only in theory: without pre-vote, members with stale logs that time out
 * first call elections they cannot win, and every higher term resets the
 * others' election timers (as in etcd-io/raft); seeds 3488, 3538 and 4410
 * stayed leaderless 4 to 7 s after healing, then the first leader
 * committed a revoke proposed before healing. UINT64_MAX: no tenure
 * lasted to its deadline. */
static uint64_t revoke_due(const struct sim *s, const struct wl_lease *l,
                           uint64_t ttl_us, uint64_t last, uint64_t slack,
                           uint64_t *from_out)
{
    const struct sim_wl *w = s->wl;
    uint64_t e_us = w->election_ms_max * 1000;
    uint64_t retry_us = 3 * SIM_US_PER_S; /* lease.c's revoke_retry_ms */
    uint64_t due = UINT64_MAX;
    *from_out = last > s->heal_at ? last : s->heal_at;
    for (size_t i = 0; i < w->tenures_count; i++) {
        const struct wl_tenure *t = &w->tenures[i];
        if (t->until_us < s->heal_at) {
            continue; /* over before healing */
        }
        uint64_t h = t->from_us > s->heal_at ? t->from_us : s->heal_at;
        uint64_t from = last > h ? last : h;
        for (size_t k = 0; k < l->touch_count; k++) {
            if (l->touch[k].tenure == i + 1 && l->touch[k].at_us > from) {
                from = l->touch[k].at_us; /* renewed, answer not counted */
            }
        }
        uint64_t d = from + ttl_us + e_us;
        if (t->from_us < s->heal_at && h + retry_us > d) {
            d = h + retry_us; /* a revoke named before healing */
        }
        d += slack;
        if (t->until_us >= d && d < due) {
            due = d;
            *from_out = from;
        }
    }
    return due;
}

void wl_lease_check_end(struct sim *s)
{
    struct sim_wl *w = s->wl;
    uint64_t slack = WL_LEASE_TICK_US +
                     2 * (s->net.delay_max_us + s->net.slow_max_us) +
                     2 * (s->p.disk_max_us + 50000);
    for (size_t i = 0; i < w->leases_count; i++) {
        const struct wl_lease *l = &w->leases[i];
        if (!l->granted || !l->revoked) {
            continue;
        }
        uint64_t ttl_us = (uint64_t)l->ttl * SIM_US_PER_S;
        uint64_t r = l->revoke_decided_us;
        uint64_t last = 0;
        for (size_t k = 0; k < l->renew_count; k++) {
            uint64_t a = l->renew_us[k];
            last = a > last ? a : last;
            if (a > r) {
                w->st_late_races++;
            } else if (a / 1000 + ttl_us / 1000 > r / 1000) {
                /* the daemon's clock (uv_now) counts milliseconds */
                sim_violation(s,
                              "lease %lx (TTL %ld s) revoked at %lu ms, "
                              "renewed at %lu ms (check a)",
                              (unsigned long)l->id, (long)l->ttl,
                              (unsigned long)(r / 1000),
                              (unsigned long)(a / 1000));
                break;
            }
        }
        /* (b): abandoned, revoked after healing */
        if (!l->abandoned || s->heal_at == 0 ||
            l->revoke_applied_us < s->heal_at) {
            continue;
        }
        uint64_t from;
        uint64_t due = revoke_due(s, l, ttl_us, last, slack, &from);
        if (l->revoke_applied_us > from + ttl_us &&
            l->revoke_applied_us - (from + ttl_us) > w->st_revoke_lag_max_us) {
            w->st_revoke_lag_max_us = l->revoke_applied_us - (from + ttl_us);
        }
        if (l->revoke_applied_us > due) {
            sim_violation(s,
                          "lease %lx (TTL %ld s) abandoned, revoked at %lu "
                          "ms, due by %lu ms (check b)",
                          (unsigned long)l->id, (long)l->ttl,
                          (unsigned long)(l->revoke_applied_us / 1000),
                          (unsigned long)(due / 1000));
        }
    }
}

void wl_lease_close(struct sim *s)
{
    struct sim_wl *w = s->wl;
    for (size_t i = 0; i < w->leases_count; i++) {
        mem_free(w->leases[i].renew_us);
        mem_free(w->leases[i].touch);
    }
    mem_free(w->leases);
    mem_free(w->tenures);
}

/*
 * sim.c - the simulator's main loop, scenario generation and CLI.
 *
 *   sim --seed S [--trace] [--fsm kv|mem] [--fault-s N]
 *   sim --seeds N [--start S] [--fsm kv|mem] [--fault-s N]
 *
 * One run (run_seed): derive every parameter from the seed (swarm testing:
 * each seed also enables its own subset of fault kinds), start the cluster,
 * the clients and the nemesis, then
 *   1. fault phase: partitions (symmetric and one-way), message loss,
 *      crashes that lose unsynced writes, membership changes, leadership
 *      transfers, compaction and snapshot installs, while clients run;
 *   2. healed phase: all links up, loss off, every member restarted, no new
 *      client ops; a leader must appear and all members converge (same
 *      applied index, same state) within heal_us of simulated time (with
 *      neither pre-vote nor check-quorum, a member whose add never
 *      committed is stopped then: stop_orphans);
 *   3. final reads of every key through the leader; then the history
 *      checks (linearizability, no lost acknowledged write) and the
 *      pairwise log-matching scan.
 * The run's trace hash mixes every send, delivery, disk completion, state
 * change and client event, so two runs of a seed can be compared cheaply;
 * --trace prints the same events as text.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "tests/sim/sim.h"
#include "tests/sim/sim_wl.h"

/* ------------------------------------------------------ trace, errors */

void sim_hash(struct sim *s, uint64_t a, uint64_t b)
{
    s->trace_hash = prng_mix(s->trace_hash ^ a ^ (s->now << 1));
    s->trace_hash = prng_mix(s->trace_hash ^ b);
}

void sim_trace(struct sim *s, const char *fmt, ...)
{
    if (!s->opts.trace) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    printf("%4" PRIu64 ".%06" PRIu64 " ", s->now / SIM_US_PER_S,
           s->now % SIM_US_PER_S);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

void sim_violation(struct sim *s, const char *fmt, ...)
{
    if (s->violations < SIM_VIOLATIONS_MAX) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->vmsg[s->violations], sizeof(s->vmsg[0]), fmt, ap);
        va_end(ap);
        if (s->opts.trace) {
            printf("VIOLATION at %" PRIu64 " us: %s\n", s->now,
                   s->vmsg[s->violations]);
        }
    }
    s->violations++;
}

/* ------------------------------------------------------------- heap */

static bool ev_less(const struct sim_ev *a, const struct sim_ev *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

void sim_schedule(struct sim *s, uint64_t at, uint32_t kind, uint32_t a,
                  uint64_t b, void *p)
{
    struct sim_heap *h = &s->heap;
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 4096;
        struct sim_ev *v = mem_realloc(h->v, cap * sizeof(*v));
        ASSERT(v != NULL);
        h->v = v;
        h->cap = cap;
    }
    ASSERT(at >= s->now);
    struct sim_ev e = {at, s->ev_seq++, kind, a, b, p};
    size_t i = h->count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_less(&e, &h->v[parent])) {
            break;
        }
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = e;
}

static struct sim_ev heap_pop(struct sim_heap *h)
{
    ASSERT(h->count > 0);
    struct sim_ev top = h->v[0];
    struct sim_ev last = h->v[--h->count];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= h->count) {
            break;
        }
        size_t c = l;
        if (l + 1 < h->count && ev_less(&h->v[l + 1], &h->v[l])) {
            c = l + 1;
        }
        if (!ev_less(&h->v[c], &last)) {
            break;
        }
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->count > 0) {
        h->v[i] = last;
    }
    return top;
}

/* ------------------------------------------------------- parameters */

static void params_pick(struct sim *s)
{
    struct sim_params *p = &s->p;
    struct prng *r = &s->rng;
    p->voters = prng_chance(r, 3, 5) ? 3 : 5;
    p->learners = prng_chance(r, 1, 5) ? 1 : 0;
    p->clients = (uint32_t)prng_range(r, 2, 8);
    p->keys = (uint32_t)prng_range(r, 2, 6);
    p->tick_us = prng_range(r, 20, 100) * 1000;
    p->election_ticks = (uint32_t)prng_range(r, 8, 20);
    p->heartbeat_ticks = (uint32_t)prng_range(r, 1, 3);
    p->pre_vote = prng_chance(r, 4, 5);
    p->check_quorum = prng_chance(r, 4, 5);
    p->max_msg_bytes =
        prng_chance(r, 1, 2) ? prng_range(r, 200, 4096) : 1 << 20;
    p->max_inflight =
        (uint32_t)(prng_chance(r, 1, 2) ? prng_range(r, 1, 8) : 256);
    p->max_committed_bytes =
        prng_chance(r, 1, 3) ? prng_range(r, 100, 2000) : 1 << 20;
    p->disk_min_us = prng_range(r, 20, 500);
    p->disk_max_us = p->disk_min_us + prng_range(r, 0, 5000);
    p->think_min_us = prng_range(r, 1, 50) * 1000;
    p->think_max_us = p->think_min_us + prng_range(r, 10, 500) * 1000;
    p->client_timeout_us = prng_range(r, 1000, 4000) * 1000;
    p->fault_us = s->opts.fault_us ? s->opts.fault_us
                                   : prng_range(r, 80, 260) * SIM_US_PER_S;
    p->heal_us = 60 * SIM_US_PER_S;
    p->nemesis_mean_us = prng_range(r, 500, 8000) * 1000;
    p->fault_mask = (uint32_t)prng_next(r) & 0xff;
    if (p->fault_mask == 0) {
        p->fault_mask = F_CRASH | F_PARTITION;
    }
    p->compact_min = prng_range(r, 10, 200);
    p->compact_max = p->compact_min + prng_range(r, 0, 300);
    p->loss_ppm = (uint32_t)prng_range(r, 0, 200000);
    p->dup_ppm = prng_chance(r, 1, 2) ? (uint32_t)prng_range(r, 0, 50000) : 0;

    struct sim_net *n = &s->net;
    n->delay_min_us = prng_range(r, 50, 2000);
    n->delay_max_us = n->delay_min_us + prng_range(r, 0, 20000);
    n->slow_ppm = (uint32_t)prng_range(r, 0, 20000);
    n->slow_max_us = prng_range(r, 1, 2000) * 1000;
    n->dup_ppm = p->dup_ppm;
}

/* ---------------------------------------------------------- nemesis */

static struct sim_member *find_leader(struct sim *s)
{
    struct sim_member *l = NULL;
    uint64_t best = 0;
    for (uint32_t i = 0; i < s->slots_used; i++) {
        struct sim_member *m = &s->m[i];
        if (m->up && m->role == RAFT_LEADER) {
            struct raft_status st;
            raft_status(&m->raft, &st);
            if (l == NULL || st.hard.term > best) {
                best = st.hard.term;
                l = m;
            }
        }
    }
    return l;
}

static uint32_t pick_live(struct sim *s, bool up)
{
    uint32_t cand[SIM_SLOTS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->slots_used; i++) {
        if (s->m[i].exists && !s->m[i].removed && s->m[i].up == up) {
            cand[n++] = i;
        }
    }
    return n == 0 ? UINT32_MAX : cand[prng_below(&s->rng, n)];
}

static void heal_later(struct sim *s)
{
    s->partition_gen++;
    sim_schedule(s, s->now + prng_range(&s->rng, 200, 10000) * 1000, EV_HEAL,
                 s->partition_gen, 0, NULL);
}

static void nem_partition(struct sim *s, bool asym)
{
    uint32_t side[SIM_SLOTS];
    for (uint32_t i = 0; i < s->slots_used; i++) {
        side[i] = (uint32_t)prng_below(&s->rng, 2);
    }
    for (uint32_t i = 0; i < s->slots_used; i++) {
        for (uint32_t j = 0; j < s->slots_used; j++) {
            if (side[i] != side[j] && (!asym || prng_chance(&s->rng, 1, 2))) {
                s->net.up[i][j] = false;
            }
        }
    }
    s->st_partitions++;
    sim_trace(s, "nemesis: %s partition", asym ? "one-way" : "symmetric");
    heal_later(s);
}

static void nem_isolate(struct sim *s, struct sim_member *l)
{
    for (uint32_t j = 0; j < s->slots_used; j++) {
        s->net.up[l->slot][j] = false;
        s->net.up[j][l->slot] = false;
    }
    s->st_partitions++;
    sim_trace(s, "nemesis: isolate leader %lu", (unsigned long)l->id);
    heal_later(s);
}

static void nem_crash(struct sim *s, uint32_t slot)
{
    if (slot == UINT32_MAX) {
        return;
    }
    uint64_t inc = s->m[slot].inc;
    member_crash(s, slot);
    sim_schedule(s, s->now + prng_range(&s->rng, 50, 5000) * 1000, EV_RESTART,
                 slot, inc, NULL);
}

static void nem_membership(struct sim *s, struct sim_member *l)
{
    struct raft_status st;
    raft_status(&l->raft, &st);
    struct raft_conf_change cc;
    memset(&cc, 0, sizeof(cc));
    uint64_t r = prng_below(&s->rng, 4);
    uint32_t fresh = s->slots_used;
    if (r == 0 && fresh < SIM_SLOTS) {
        /* The new member starts once the change is accepted. */
        cc.type = prng_chance(&s->rng, 2, 3) ? RAFT_CC_ADD_LEARNER
                                             : RAFT_CC_ADD_VOTER;
        cc.node_id = fresh + 1;
    } else if (r == 1 && st.conf.learners_count > 0) {
        cc.type = RAFT_CC_PROMOTE;
        cc.node_id =
            st.conf.learners[prng_below(&s->rng, st.conf.learners_count)];
    } else if (r == 2 && st.conf.voters_count > 3) {
        cc.type = RAFT_CC_REMOVE;
        cc.node_id = st.conf.voters[prng_below(&s->rng, st.conf.voters_count)];
    } else if (r == 3 && st.conf.learners_count > 0) {
        cc.type = RAFT_CC_REMOVE;
        cc.node_id =
            st.conf.learners[prng_below(&s->rng, st.conf.learners_count)];
    } else {
        return;
    }
    int rc = raft_propose_conf_change(&l->raft, &cc, NULL);
    sim_trace(s, "nemesis: conf change %u node %lu via %lu: %s", cc.type,
              (unsigned long)cc.node_id, (unsigned long)l->id,
              rc < 0 ? err_str(rc) : "proposed");
    sim_hash(s, 0xcc, ((uint64_t)cc.type << 32) | (uint64_t)(rc < 0 ? -rc : 0));
    if (rc == 0) {
        s->st_conf_changes++;
        if (cc.node_id == fresh + 1 && !s->m[fresh].exists) {
            s->m[fresh].initial = false;
            member_start(s, fresh);
        }
    }
    member_drive(s, l);
}

static void nem_transfer(struct sim *s, struct sim_member *l)
{
    struct raft_status st;
    raft_status(&l->raft, &st);
    uint64_t to = st.conf.voters[prng_below(&s->rng, st.conf.voters_count)];
    if (to == l->id) {
        return;
    }
    int rc = raft_transfer_leader(&l->raft, to);
    sim_trace(s, "nemesis: transfer %lu -> %lu: %s", (unsigned long)l->id,
              (unsigned long)to, rc < 0 ? err_str(rc) : "started");
    if (rc == 0) {
        s->st_transfers++;
    }
    member_drive(s, l);
}

static void nemesis(struct sim *s)
{
    uint32_t kinds[8];
    uint32_t n = 0;
    for (uint32_t b = 0; b < 8; b++) {
        if (s->p.fault_mask & (1u << b)) {
            kinds[n++] = 1u << b;
        }
    }
    uint32_t k = kinds[prng_below(&s->rng, n)];
    struct sim_member *l = find_leader(s);
    switch (k) {
    case F_PARTITION:
        nem_partition(s, false);
        break;
    case F_ASYM:
        nem_partition(s, true);
        break;
    case F_ISOLATE_LEADER:
        if (l != NULL) {
            nem_isolate(s, l);
        }
        break;
    case F_LOSS:
        s->net.loss_ppm = (uint32_t)prng_range(&s->rng, 0, s->p.loss_ppm);
        sim_trace(s, "nemesis: loss %u ppm", s->net.loss_ppm);
        heal_later(s);
        break;
    case F_CRASH:
        if (prng_chance(&s->rng, 1, 2)) {
            /* simlog: crash it while its next write is in flight, where
             * the WAL's torn-tail recovery has work to do. */
            uint32_t slot = pick_live(s, true);
            if (slot != UINT32_MAX) {
                s->m[slot].crash_armed = true;
                sim_trace(s, "nemesis: crash %lu during its next write",
                          (unsigned long)s->m[slot].id);
            }
            break;
        }
        nem_crash(s, pick_live(s, true));
        break;
    case F_CRASH_LEADER:
        if (l != NULL) {
            nem_crash(s, l->slot);
        }
        break;
    case F_MEMBERSHIP:
        if (l != NULL) {
            nem_membership(s, l);
        }
        break;
    case F_TRANSFER:
        if (l != NULL) {
            nem_transfer(s, l);
        }
        break;
    default:
        UNREACHABLE();
    }
    uint64_t next = prng_range(&s->rng, 1, 2 * s->p.nemesis_mean_us);
    if (s->now + next < s->p.fault_us) {
        sim_schedule(s, s->now + next, EV_NEMESIS, 0, 0, NULL);
    }
}

/* ------------------------------------------------------------ phases */

static void start_heal(struct sim *s)
{
    s->phase = PHASE_HEAL;
    s->heal_at = s->now;
    net_heal_all(s);
    s->partition_gen++;
    for (uint32_t i = 0; i < s->slots_used; i++) {
        struct sim_member *m = &s->m[i];
        if (m->exists && !m->removed && !m->up) {
            member_start(s, i);
        }
    }
    check_logs_pairwise(s);
    sim_trace(s, "healed: all links up, every member running");
    sim_schedule(s, s->now + 100000, EV_CHECK, 0, 0, NULL);
}

/* A member whose add never committed, still running. The nemesis starts a
 * new member as soon as its conf change is proposed, and a leader change may
 * drop that entry; the member took the configuration from its own log (it
 * applies when appended, thesis 4.1), so it counts itself a voter of a
 * cluster that never hears from it again, and campaigns at ever higher
 * terms for ever. Pre-vote (its stale log loses) or check-quorum (a member
 * that hears a leader ignores it, thesis 4.2.3) each make it harmless, and
 * the daemon always runs with both. With neither, Raft has no defence:
 * each of its votes deposes the leader, the healed cluster changes leader
 * every few seconds, and no abandoned lease can ever expire, since each new
 * leader must extend every lease by TTL + election timeout (lease.h, point
 * 4; seeds 3442 and 3898). So in that configuration the healed cluster's
 * operator stops such a member, as one would after a failed MemberAdd.
 * It is out for good once the leader of the highest term has committed
 * its whole log: that log ends in the leader's term, so every later
 * leader's log extends it, and an add missing from it can never commit
 * (nemesis changes stop with the fault phase). */
static void stop_orphans(struct sim *s)
{
    struct sim_member *l = find_leader(s);
    struct raft_status st;
    if (s->p.pre_vote || s->p.check_quorum || l == NULL) {
        return;
    }
    raft_status(&l->raft, &st);
    if (st.hard.commit != st.last_index || st.hard.term == 0) {
        return;
    }
    for (uint32_t i = 0; i < s->slots_used; i++) {
        struct sim_member *m = &s->m[i];
        if (!m->exists || m->removed || raft_conf_is_voter(&st.conf, m->id) ||
            raft_conf_is_learner(&st.conf, m->id)) {
            continue;
        }
        sim_trace(s,
                  "member %lu is in no configuration of leader %lu (term "
                  "%lu, all committed): its add never committed",
                  (unsigned long)m->id, (unsigned long)l->id,
                  (unsigned long)st.hard.term);
        sim_hash(s, 0x0a9f, m->id);
        member_stop_for_good(s, i);
    }
}

static bool clients_idle(const struct sim *s)
{
    for (uint32_t i = 0; i < s->p.clients; i++) {
        if (s->c[i].busy) {
            return false;
        }
    }
    return true;
}

static void periodic_check(struct sim *s)
{
    stop_orphans(s);
    if (s->phase == PHASE_HEAL) {
        uint64_t ls;
        if (clients_idle(s) && check_converged(s, &ls)) {
            s->converged_at = s->now;
            s->phase = PHASE_FINAL;
            sim_trace(s, "converged at %lu after healing",
                      (unsigned long)(s->now - s->heal_at));
            clients_final_reads(s);
            wl_final(s);
        } else if (s->now - s->heal_at > s->p.heal_us) {
            sim_violation(s,
                          "liveness: no convergence %lu s after healing "
                          "(leader %s)",
                          (unsigned long)(s->p.heal_us / SIM_US_PER_S),
                          s->leader_at ? "seen" : "never seen");
            s->phase = PHASE_DONE;
            return;
        }
    } else if (s->phase == PHASE_FINAL) {
        if (s->final_done >= s->p.keys && wl_final_done(s)) {
            s->phase = PHASE_DONE;
            return;
        }
        if (s->now - s->converged_at > s->p.heal_us) {
            sim_violation(s,
                          "liveness: final reads not done %lu s after "
                          "convergence",
                          (unsigned long)(s->p.heal_us / SIM_US_PER_S));
            s->phase = PHASE_DONE;
            return;
        }
    }
    /* While healing, not every 100 ms: the leader's lease checkpoints
     * (the workload's remaining-TTL proposals) come every 100 ms too, and
     * seed 759569's each fell 3 ms before a check, so every check saw one
     * in flight (the leader's log not all committed) and the cluster
     * never "converged" in 60 s though it committed all along. 97 ms
     * drifts across their phase. */
    uint64_t next = s->phase == PHASE_HEAL ? 97000 : 100000;
    sim_schedule(s, s->now + next, EV_CHECK, 0, 0, NULL);
}

static void dispatch(struct sim *s, const struct sim_ev *e)
{
    struct sim_member *m = e->kind == EV_TICK || e->kind == EV_DISK ||
                                   e->kind == EV_RESTART ||
                                   e->kind == EV_CRASH ||
                                   e->kind == EV_INSTALL || e->kind == EV_FETCH
                               ? &s->m[e->a]
                               : NULL;
    switch (e->kind) {
    case EV_TICK:
        if (m->up && m->inc == e->b) {
            member_tick(s, m);
        }
        break;
    case EV_DISK:
        if (m->up && m->inc == e->b) {
            member_disk_done(s, m);
        }
        break;
    case EV_FETCH:
        if (m->up && m->inc == e->b) {
            member_fetch_done(s, m);
        }
        break;
    case EV_INSTALL:
        if (m->up && m->inc == e->b) {
            member_install_store(s, m);
        }
        break;
    case EV_DELIVER:
        net_deliver(s, e->p);
        break;
    case EV_CLIENT:
        if (s->c[e->a].wake_token == e->b) {
            client_wake(s, &s->c[e->a]);
        }
        break;
    case EV_NEMESIS:
        if (s->phase == PHASE_FAULT) {
            nemesis(s);
        }
        break;
    case EV_RESTART:
        if (!m->up && !m->removed && m->inc == e->b) {
            member_start(s, e->a);
        }
        break;
    case EV_HEAL:
        if (e->a == s->partition_gen) {
            net_heal_all(s);
            sim_trace(s, "nemesis: network healed");
        }
        break;
    case EV_CHECK:
        periodic_check(s);
        break;
    case EV_WATCH:
    case EV_WCLIENT:
    case EV_LTICK:
    case EV_LAGENT:
    case EV_WPROGRESS:
        wl_dispatch(s, e);
        break;
    case EV_CRASH:
        if (m->up && m->inc == e->b && s->phase == PHASE_FAULT) {
            nem_crash(s, e->a);
        }
        break;
    default:
        UNREACHABLE();
    }
}

static void stop_removed(struct sim *s)
{
    for (uint32_t i = 0; i < s->slots_used; i++) {
        if (s->m[i].stop_pending) {
            s->m[i].stop_pending = false;
            member_stop_for_good(s, i);
        }
    }
}

/* ------------------------------------------------------------ a run */

static void run_loop(struct sim *s)
{
    uint64_t end = s->p.fault_us + 3 * s->p.heal_us;
    /* The first violation ends the run: what follows is noise, and the
     * replay command reproduces it. */
    while (s->phase != PHASE_DONE && s->heap.count > 0 && s->violations == 0) {
        struct sim_ev e = heap_pop(&s->heap);
        ASSERT(e.at >= s->now);
        s->now = e.at;
        if (s->phase == PHASE_FAULT && s->now >= s->p.fault_us) {
            start_heal(s);
        }
        dispatch(s, &e);
        stop_removed(s);
        if (++s->events > SIM_EVENTS_MAX) {
            sim_violation(s, "livelock: %lu events by %lu us",
                          (unsigned long)s->events, (unsigned long)s->now);
            break;
        }
        if (s->now > end) {
            sim_violation(s, "run did not finish by %lu s",
                          (unsigned long)(end / SIM_US_PER_S));
            break;
        }
    }
}

static void run_checks(struct sim *s)
{
    if (s->violations > 0) {
        return;
    }
    check_logs_pairwise(s);
    if (s->phase != PHASE_DONE || s->final_done < s->p.keys) {
        return; /* liveness already failed; the history is incomplete */
    }
    check_final_state(s);
    wl_check_end(s);
    /* Ops still open at the end: writes unknown, reads dropped. */
    for (size_t i = 0; i < s->hist_count; i++) {
        struct sim_op *op = &s->hist[i];
        if (op->outcome == OUT_PENDING) {
            op->outcome = op->type == OP_GET ? OUT_FAIL : OUT_UNKNOWN;
            op->ret_us = SIM_NEVER;
        }
    }
    if (s->opts.dump_history) {
        for (size_t i = 0; i < s->hist_count; i++) {
            const struct sim_op *op = &s->hist[i];
            if (op->outcome == OUT_FAIL) {
                continue;
            }
            printf("op %zu k%u c%u %s v%lu exp %lu -> %lu %s [%lu, %lu]\n", i,
                   op->key, op->client,
                   op->type == OP_PUT   ? "put"
                   : op->type == OP_GET ? "get"
                   : op->type == OP_DEL ? "del"
                                        : "cas",
                   (unsigned long)op->value, (unsigned long)op->expected,
                   (unsigned long)op->result,
                   op->outcome == OUT_OK ? "ok" : "unknown",
                   (unsigned long)op->call_us,
                   op->ret_us == SIM_NEVER ? 0UL : (unsigned long)op->ret_us);
        }
    }
    char msg[200];
    int rc = lin_check(s, msg, sizeof(msg));
    if (rc == 1) {
        sim_violation(s, "%s", msg);
    } else if (rc == 2) {
        s->lin_gave_up = true;
        printf("seed %" PRIu64 ": note: %s\n", s->seed, msg);
    }
}

static void run_free(struct sim *s)
{
    wl_shutdown(s);
    for (size_t i = 0; i < s->heap.count; i++) {
        if (s->heap.v[i].kind == EV_DELIVER) {
            net_free_pkt(s, s->heap.v[i].p);
        }
    }
    mem_free(s->heap.v);
    for (uint32_t i = 0; i < SIM_SLOTS; i++) {
        member_free(s, i);
    }
    wl_close(s);
    net_close(s);
    check_close(s);
    mem_free(s->hist);
    buf_free(&s->scratch);
    buf_free(&s->scratch2);
    rmdir(s->opts.shm_dir);
}

struct run_result {
    uint32_t violations;
    bool gave_up;
    uint64_t sim_us;
    uint64_t hash;
    uint64_t watch_events;
    uint64_t prev_omitted;
    uint64_t leases;
    uint64_t installs;     /* snapshots installed (both halves) */
    uint64_t inst_crashes; /* crashes aimed between the halves */
    uint64_t catchups;     /* restarts that installed the received copy */
};

static void run_seed(uint64_t seed, const struct sim_opts *opts,
                     struct run_result *res)
{
    struct sim *s = mem_calloc(1, sizeof(*s));
    ASSERT(s != NULL);
    s->seed = seed;
    s->opts = *opts;
    char dir[96];
    snprintf(dir, sizeof(dir), "%s/cairn-sim-%d-%" PRIu64, opts->shm_dir,
             (int)getpid(), seed);
    s->opts.shm_dir = dir;
    if (opts->fsm == FSM_KV && mkdir(dir, 0700) < 0 && errno != EEXIST) {
        fprintf(stderr, "mkdir %s: %s\n", dir, strerror(errno));
        exit(2);
    }
    prng_seed(&s->rng, seed);
    prng_seed(&s->net_rng, prng_mix(seed ^ 0x6e6574));
    buf_init(&s->scratch, 0);
    buf_init(&s->scratch2, 0);
    net_init(s);
    check_init(s);
    params_pick(s);
    wl_init(s);
    s->bootstrap.voters_count = s->p.voters;
    for (uint32_t i = 0; i < s->p.voters; i++) {
        s->bootstrap.voters[i] = i + 1;
        s->m[i].initial = true;
    }
    for (uint32_t i = 0; i < s->p.learners; i++) {
        uint32_t slot = s->p.voters + i;
        s->bootstrap.learners[s->bootstrap.learners_count++] = slot + 1;
        s->m[slot].initial = true;
    }
    sim_trace(s,
              "seed %" PRIu64 ": %u voters %u learners, %u clients, %u "
              "keys, tick %lu ms, faults 0x%x, fault phase %lu s",
              seed, s->p.voters, s->p.learners, s->p.clients, s->p.keys,
              (unsigned long)(s->p.tick_us / 1000), s->p.fault_mask,
              (unsigned long)(s->p.fault_us / SIM_US_PER_S));
    sim_trace(s,
              "raft: election %u ticks, heartbeat %u, pre-vote %d, "
              "check-quorum %d",
              s->p.election_ticks, s->p.heartbeat_ticks, (int)s->p.pre_vote,
              (int)s->p.check_quorum);
    for (uint32_t i = 0; i < s->p.voters + s->p.learners; i++) {
        if (member_start(s, i) < 0) {
            break;
        }
    }
    clients_start(s);
    wl_start(s);
    sim_schedule(s, prng_range(&s->rng, 1, s->p.nemesis_mean_us), EV_NEMESIS, 0,
                 0, NULL);
    run_loop(s);
    run_checks(s);
    res->violations = s->violations;
    res->gave_up = s->lin_gave_up;
    res->sim_us = s->now;
    res->hash = s->trace_hash;
    res->watch_events = s->wl->st_events_checked;
    res->prev_omitted = s->wl->st_prev_omitted;
    res->installs = s->st_snap_installs;
    res->inst_crashes = s->st_inst_crashes;
    res->catchups = s->st_store_catchups;
    res->leases = 0; /* granted ones: every checker saw them */
    for (size_t i = 0; i < s->wl->leases_count; i++) {
        res->leases += s->wl->leases[i].granted;
    }
    char wl[400];
    wl_report(s, wl, sizeof(wl));
    if (opts->verbose || s->violations > 0 || opts->trace) {
        printf("seed %" PRIu64 ": %s, %.1f s simulated, trace hash %016" PRIx64
               ", ops ok %lu unknown %lu failed %lu, crashes %lu, partitions "
               "%lu, conf changes %lu, transfers %lu, elections %lu, "
               "snapshots installed %lu, compactions %lu, torn %lu, msgs %lu, "
               "lin steps %lu%s%s\n",
               seed, s->violations ? "FAIL" : "ok", (double)s->now / 1e6,
               s->trace_hash, (unsigned long)s->st_ops_ok,
               (unsigned long)s->st_ops_unknown, (unsigned long)s->st_ops_fail,
               (unsigned long)s->st_crashes, (unsigned long)s->st_partitions,
               (unsigned long)s->st_conf_changes,
               (unsigned long)s->st_transfers, (unsigned long)s->st_elections,
               (unsigned long)s->st_snap_installs,
               (unsigned long)s->st_compactions, (unsigned long)s->st_torn,
               (unsigned long)s->net.sent, (unsigned long)s->st_lin_steps,
               s->lin_gave_up ? " (lin gave up)" : "", wl);
    }
    if (opts->verbose || s->violations > 0 || opts->trace) {
        /* simlog: the simulated disks under the real WAL. */
        printf(
            "seed %" PRIu64 ": disk: torn writes %lu (with garbage %lu), "
            "WAL reset to its snapshot at start %lu, crashes between "
            "install halves %lu, store caught up at start %lu, evicted "
            "entries asked busy %lu served %lu\n",
            seed, (unsigned long)s->st_torn, (unsigned long)s->st_torn_garbage,
            (unsigned long)s->st_wal_repairs, (unsigned long)s->st_inst_crashes,
            (unsigned long)s->st_store_catchups,
            (unsigned long)s->st_fetch_busy, (unsigned long)s->st_fetch_served);
    }
    for (uint32_t i = 0; i < s->violations && i < SIM_VIOLATIONS_MAX; i++) {
        printf("seed %" PRIu64 ": violation: %s\n", seed, s->vmsg[i]);
    }
    run_free(s);
    mem_free(s);
}

/* -------------------------------------------------------------- CLI */

static void usage(void)
{
    fprintf(stderr,
            "usage: sim --seed S [--trace] [--fsm kv|mem] [--fault-s N]\n"
            "       sim --selftest   (the history checker on known cases)\n"
            "       sim --seeds N [--start S] [--fsm kv|mem] [--fault-s N] "
            "[--stop-on-fail] [-v]\n"
            "       --no-wl: no watchers, leases or compactions; --no-evict: "
            "members keep\n"
            "       every entry's data in memory (else about half of the "
            "seeds evict it);\n"
            "       --plant N: a planted bug\n"
            "       (3 a watch event lost, 4 leases revoked 2 s early, 5 no "
            "lease ever revoked,\n"
            "       7 a restart ignores the received snapshot copy, 8 a "
            "leader answers\n"
            "       lease renewals without confirming its leadership, 9 "
            "leases revoked 2 s late)\n");
    exit(2);
}

static uint64_t arg_u64(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0' || end == s) {
        usage();
    }
    return v;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct sim_opts o;
    memset(&o, 0, sizeof(o));
    /* simlog: the WAL warns of each torn tail it repairs; the run reports
     * those itself, and a log line's wall-clock time would make traces
     * differ. Errors still show. */
    log_setup(LOG_ERROR, LOG_FORMAT_TEXT, stderr);
    o.fsm = FSM_KV;
    o.shm_dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    uint64_t seed = 0;
    uint64_t seeds = 0;
    uint64_t start = 1;
    bool one = false;
    bool stop_on_fail = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--seed") == 0 && v) {
            seed = arg_u64(v);
            one = true;
            i++;
        } else if (strcmp(a, "--seeds") == 0 && v) {
            seeds = arg_u64(v);
            i++;
        } else if (strcmp(a, "--start") == 0 && v) {
            start = arg_u64(v);
            i++;
        } else if (strcmp(a, "--fsm") == 0 && v) {
            if (strcmp(v, "kv") == 0) {
                o.fsm = FSM_KV;
            } else if (strcmp(v, "mem") == 0) {
                o.fsm = FSM_MEM;
            } else {
                usage();
            }
            i++;
        } else if (strcmp(a, "--fault-s") == 0 && v) {
            o.fault_us = arg_u64(v) * SIM_US_PER_S;
            i++;
        } else if (strcmp(a, "--plant") == 0 && v) {
            o.plant = (uint32_t)arg_u64(v);
            i++;
        } else if (strcmp(a, "--no-wl") == 0) {
            o.no_wl = true;
        } else if (strcmp(a, "--no-evict") == 0) {
            o.no_evict = true;
        } else if (strcmp(a, "--trace") == 0) {
            o.trace = true;
        } else if (strcmp(a, "--dump-history") == 0) {
            o.dump_history = true;
        } else if (strcmp(a, "--stop-on-fail") == 0) {
            stop_on_fail = true;
        } else if (strcmp(a, "--selftest") == 0) {
            return lin_selftest() > 0 ? 1 : 0;
        } else if (strcmp(a, "-v") == 0) {
            o.verbose = true;
        } else {
            usage();
        }
    }
    if (!one && seeds == 0) {
        usage();
    }
    const char *fsm_flag = o.fsm == FSM_MEM ? " --fsm mem" : "";
    char fault_flag[96] = "";
    if (o.fault_us) {
        snprintf(fault_flag, sizeof(fault_flag), " --fault-s %" PRIu64,
                 o.fault_us / SIM_US_PER_S);
    }
    if (o.no_wl) {
        strcat(fault_flag, " --no-wl");
    }
    if (o.no_evict) {
        strcat(fault_flag, " --no-evict");
    }
    if (o.plant != 0) {
        snprintf(fault_flag + strlen(fault_flag),
                 sizeof(fault_flag) - strlen(fault_flag), " --plant %u",
                 o.plant);
    }
    if (one) {
        o.verbose = true;
        struct run_result r;
        run_seed(seed, &o, &r);
        if (r.violations > 0) {
            printf("replay: %s --seed %" PRIu64 "%s%s --trace\n", argv[0], seed,
                   fsm_flag, fault_flag);
        }
        return r.violations > 0 ? 1 : 0;
    }
    double t0 = wall_s();
    uint64_t sim_us = 0;
    uint64_t bad = 0;
    uint64_t gave_up = 0;
    uint64_t viol = 0;
    uint64_t wev = 0;
    uint64_t pom = 0;
    uint64_t leases = 0;
    uint64_t installs = 0;
    uint64_t inst_crashes = 0;
    uint64_t catchups = 0;
    uint64_t k = 0;
    for (; k < seeds && !(stop_on_fail && bad > 0); k++) {
        struct run_result r;
        run_seed(start + k, &o, &r);
        sim_us += r.sim_us;
        gave_up += r.gave_up;
        viol += r.violations;
        wev += r.watch_events;
        pom += r.prev_omitted;
        leases += r.leases;
        installs += r.installs;
        inst_crashes += r.inst_crashes;
        catchups += r.catchups;
        if (r.violations > 0) {
            bad++;
            printf("FAILED seed %" PRIu64 "; replay: %s --seed %" PRIu64
                   "%s%s --trace\n",
                   start + k, argv[0], start + k, fsm_flag, fault_flag);
            fflush(stdout);
        }
    }
    double wall = wall_s() - t0;
    double hours = (double)sim_us / 3.6e9;
    printf("seeds %" PRIu64 " (from %" PRIu64 "), simulated %.2f h, wall %.1f "
           "s (%.1f seeds/min, %.2f simulated h/min), failing seeds %" PRIu64
           ", violations %" PRIu64
           ", linearizability searches given up %" PRIu64
           ", watch events checked %" PRIu64 " (applied without prev %" PRIu64
           "), leases checked %" PRIu64 ", snapshot installs %" PRIu64
           " (crashes between halves %" PRIu64
           ", stores caught up at start %" PRIu64 ")\n",
           k, start, hours, wall, (double)k * 60 / wall, hours * 60 / wall, bad,
           viol, gave_up, wev, pom, leases, installs, inst_crashes, catchups);
    return bad > 0 ? 1 : 0;
}

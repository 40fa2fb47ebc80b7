/*
 * sim_client.c - clients: put, linearizable get, delete and compare-and-set
 * on a small key set, with unique values, each op recorded with its
 * invocation and response times and its outcome.
 *
 * A client has at most one op outstanding. It sends the op to a member it
 * prefers (sometimes the leader that member names, sometimes any member;
 * followers forward). Outcomes: ok; failed (the member refused it at once,
 * so it had no effect); unknown (timed out, the member's leader changed, or
 * the member crashed: the op may still take effect, and the checker lets it
 * happen or not). A get that fails or times out constrains nothing and is
 * left out. After the healed phase each key is read once more through the
 * leader (the final reads), so an acknowledged write that was lost shows.
 */
#include <string.h>

#include "base/assert.h"
#include "base/err.h"
#include "base/alloc.h"
#include "tests/sim/sim.h"

static void wake_later(struct sim *s, struct sim_client *c, uint64_t delay_us)
{
    c->wake_token++;
    sim_schedule(s, s->now + delay_us, EV_CLIENT, c->idx, c->wake_token, NULL);
}

static size_t hist_push(struct sim *s)
{
    if (s->hist_count == s->hist_cap) {
        size_t cap = s->hist_cap ? s->hist_cap * 2 : 1024;
        struct sim_op *v = mem_realloc(s->hist, cap * sizeof(*v));
        ASSERT(v != NULL);
        s->hist = v;
        s->hist_cap = cap;
    }
    struct sim_op *op = &s->hist[s->hist_count];
    memset(op, 0, sizeof(*op));
    return s->hist_count++;
}

static struct sim_member *pick_member(struct sim *s, struct sim_client *c)
{
    if (c->prefer >= s->slots_used || prng_chance(&s->rng, 1, 10)) {
        c->prefer = (uint32_t)prng_below(&s->rng, s->slots_used);
    }
    struct sim_member *m = &s->m[c->prefer];
    if (m->up && m->leader != RAFT_NONE && m->leader <= SIM_SLOTS &&
        prng_chance(&s->rng, 1, 2)) {
        struct sim_member *l = &s->m[m->leader - 1];
        if (l->up) {
            return l;
        }
    }
    return m;
}

static void choose_op(struct sim *s, struct sim_client *c, struct sim_op *op)
{
    op->key = (uint8_t)prng_below(&s->rng, s->p.keys);
    uint64_t r = prng_below(&s->rng, 100);
    if (r < 30) {
        op->type = OP_PUT;
    } else if (r < 65) {
        op->type = OP_GET;
    } else if (r < 75) {
        op->type = OP_DEL;
    } else {
        op->type = OP_CAS;
    }
    if (op->type == OP_PUT || op->type == OP_CAS) {
        op->value = ++s->next_value;
    }
    if (op->type == OP_CAS) {
        op->expected = prng_chance(&s->rng, 4, 5) ? c->last_seen[op->key] : 0;
    }
}

static void issue(struct sim *s, struct sim_client *c, struct sim_member *m,
                  size_t oi)
{
    struct sim_op *op = &s->hist[oi];
    op->client = c->idx;
    op->call_us = s->now;
    op->outcome = OUT_PENDING;
    c->gen++;
    c->busy = true;
    c->op = oi;
    c->slot = m->slot;
    int rc = ERR_STOPPED;
    if (m->up && !m->removed) {
        rc = op->type == OP_GET ? member_read(s, m, c)
                                : member_propose_op(s, m, c, op);
    }
    sim_hash(s, 0xc11e,
             ((uint64_t)c->idx << 40) | ((uint64_t)op->type << 32) |
                 (uint64_t)(rc < 0 ? -rc : 0));
    sim_trace(s, "client %u: %s k%u v%lu exp %lu at %lu: %s", c->idx,
              op->type == OP_PUT   ? "put"
              : op->type == OP_GET ? "get"
              : op->type == OP_DEL ? "del"
                                   : "cas",
              op->key, (unsigned long)op->value, (unsigned long)op->expected,
              (unsigned long)m->id, rc < 0 ? err_str(rc) : "sent");
    if (rc < 0) {
        client_done(s, c->idx, c->gen, OUT_FAIL, 0);
        return;
    }
    /* Still busy unless answered synchronously (it never is: answers come
     * from later events). */
    if (c->busy) {
        c->deadline = s->now + s->p.client_timeout_us;
        c->wake_token++;
        sim_schedule(s, c->deadline, EV_CLIENT, c->idx, c->wake_token, NULL);
    }
}

static void issue_final_read(struct sim *s, struct sim_client *c)
{
    size_t oi = hist_push(s);
    struct sim_op *op = &s->hist[oi];
    op->type = OP_GET;
    op->key = (uint8_t)c->final_next;
    op->final_read = true;
    uint64_t leader_slot = 0;
    struct sim_member *m = &s->m[c->idx % s->slots_used];
    if (check_converged(s, &leader_slot)) {
        m = &s->m[leader_slot];
    } else {
        m = pick_member(s, c);
    }
    issue(s, c, m, oi);
}

void client_wake(struct sim *s, struct sim_client *c)
{
    if (c->busy) {
        if (s->now < c->deadline) {
            return;
        }
        /* Timed out: a write may still happen; a read is simply lost. */
        struct sim_op *op = &s->hist[c->op];
        client_done(s, c->idx, c->gen,
                    op->type == OP_GET ? OUT_FAIL : OUT_UNKNOWN, 0);
        return;
    }
    if (s->phase == PHASE_FAULT) {
        size_t oi = hist_push(s);
        choose_op(s, c, &s->hist[oi]);
        issue(s, c, pick_member(s, c), oi);
        return;
    }
    if (s->phase == PHASE_FINAL && c->final_next < s->p.keys) {
        issue_final_read(s, c);
    }
}

void client_done(struct sim *s, uint32_t client, uint64_t gen, int outcome,
                 uint64_t result)
{
    ASSERT(client < s->p.clients);
    struct sim_client *c = &s->c[client];
    if (!c->busy || c->gen != gen) {
        return; /* an answer for an op the client gave up on */
    }
    struct sim_op *op = &s->hist[c->op];
    op->outcome = (uint8_t)outcome;
    op->result = result;
    op->ret_us = outcome == OUT_UNKNOWN ? SIM_NEVER : s->now;
    c->busy = false;
    sim_hash(s, 0xd09e,
             ((uint64_t)client << 40) | ((uint64_t)outcome << 32) |
                 (result & 0xffffffffu));
    sim_trace(s, "client %u: done %s result %lu", client,
              outcome == OUT_OK     ? "ok"
              : outcome == OUT_FAIL ? "failed"
                                    : "unknown",
              (unsigned long)result);
    switch (outcome) {
    case OUT_OK:
        s->st_ops_ok++;
        if (op->type == OP_GET) {
            c->last_seen[op->key] = result;
            if (op->final_read) {
                c->final_next += s->p.clients;
                s->final_done++;
            }
        } else if (op->type == OP_PUT || (op->type == OP_CAS && result)) {
            c->last_seen[op->key] = op->value;
        }
        break;
    case OUT_UNKNOWN:
        s->st_ops_unknown++;
        break;
    default:
        s->st_ops_fail++;
        c->prefer = (uint32_t)prng_below(&s->rng, s->slots_used);
        break;
    }
    uint64_t think = prng_range(&s->rng, s->p.think_min_us, s->p.think_max_us);
    wake_later(s, c, think);
}

void client_read_done(struct sim *s, uint32_t client, uint64_t gen,
                      struct sim_member *m)
{
    struct sim_client *c = &s->c[client];
    if (!c->busy || c->gen != gen) {
        return;
    }
    uint64_t v = 0;
    int rc = fsm_read(s, m, s->hist[c->op].key, &v);
    if (rc < 0) {
        sim_violation(s, "member %lu: read of k%u failed: %s",
                      (unsigned long)m->id, s->hist[c->op].key, err_str(rc));
        client_done(s, client, gen, OUT_FAIL, 0);
        return;
    }
    client_done(s, client, gen, OUT_OK, v);
}

void clients_start(struct sim *s)
{
    for (uint32_t i = 0; i < s->p.clients; i++) {
        struct sim_client *c = &s->c[i];
        memset(c, 0, sizeof(*c));
        c->idx = i;
        c->prefer = (uint32_t)prng_below(&s->rng, s->p.voters);
        wake_later(s, c, prng_range(&s->rng, 1, s->p.think_max_us));
    }
}

void clients_final_reads(struct sim *s)
{
    s->final_done = 0;
    for (uint32_t i = 0; i < s->p.clients; i++) {
        struct sim_client *c = &s->c[i];
        c->final_next = i;
        if (!c->busy) {
            wake_later(s, c, 1);
        }
    }
}

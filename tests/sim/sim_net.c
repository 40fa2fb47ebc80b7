/*
 * sim_net.c - the simulated network: every message is encoded with the real
 * codec (raft_msg_encode), given a fate from the seed (delay, loss,
 * duplication, a long stall, a cut link) and decoded at delivery.
 *
 * Packets come from a free list and keep their buffers, so a long run does
 * not churn the heap per message. Reordering is a consequence of random
 * per-message delays. A link cut at send time or at delivery time drops the
 * packet (in-flight packets die with a partition, as TCP segments would).
 *
 * MsgProp is duplicated only with the real store: a forwarded proposal
 * repeated by the network is appended twice, and consensus/apply must
 * execute it once (apply.h, exactly once). The in-memory state machine has
 * no such rule, so with it MsgProp is never repeated.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "tests/sim/sim.h"

void net_init(struct sim *s)
{
    struct sim_net *n = &s->net;
    for (uint32_t i = 0; i < SIM_SLOTS; i++) {
        for (uint32_t j = 0; j < SIM_SLOTS; j++) {
            n->up[i][j] = true;
        }
    }
}

void net_close(struct sim *s)
{
    struct sim_pkt *p = s->net.free_list;
    while (p != NULL) {
        struct sim_pkt *next = p->next_free;
        buf_free(&p->b);
        mem_free(p);
        p = next;
    }
    s->net.free_list = NULL;
}

static struct sim_pkt *pkt_get(struct sim *s)
{
    struct sim_pkt *p = s->net.free_list;
    if (p != NULL) {
        s->net.free_list = p->next_free;
    } else {
        p = mem_calloc(1, sizeof(*p));
        ASSERT(p != NULL);
        buf_init(&p->b, RAFT_CODEC_MSG_BYTES_MAX);
    }
    p->next_free = NULL;
    p->lost = false;
    buf_reset(&p->b);
    s->net.pkts_live++;
    return p;
}

void net_free_pkt(struct sim *s, struct sim_pkt *p)
{
    ASSERT(s->net.pkts_live > 0);
    s->net.pkts_live--;
    /* Keep small buffers for reuse; give back snapshot-sized ones. */
    if (p->b.cap > 65536) {
        buf_free(&p->b);
        buf_init(&p->b, RAFT_CODEC_MSG_BYTES_MAX);
    }
    p->next_free = s->net.free_list;
    s->net.free_list = p;
}

struct sim_pkt *net_encode(struct sim *s, uint32_t from,
                           const struct raft_msg *m)
{
    ASSERT(m->to >= 1 && m->to <= SIM_SLOTS);
    struct sim_pkt *p = pkt_get(s);
    p->from = from;
    p->to = (uint32_t)(m->to - 1);
    p->from_inc = (uint32_t)s->m[from].inc;
    p->type = m->type;
    int rc = raft_msg_encode(m, &p->b);
    if (rc < 0) {
        sim_violation(s, "raft_msg_encode failed: %s (type %s)", err_str(rc),
                      raft_msg_type_str(m->type));
        net_free_pkt(s, p);
        return NULL;
    }
    return p;
}

static uint64_t delay(struct sim *s)
{
    struct sim_net *n = &s->net;
    uint64_t d = prng_range(&s->net_rng, n->delay_min_us, n->delay_max_us);
    if (n->slow_ppm > 0 && prng_chance(&s->net_rng, n->slow_ppm, 1000000)) {
        d += prng_range(&s->net_rng, 0, n->slow_max_us);
    }
    return d;
}

static void report_lost_snapshot(struct sim *s, struct sim_pkt *p)
{
    /* The sender's transport learns that the stream failed, later. */
    p->lost = true;
    sim_schedule(s, s->now + delay(s), EV_DELIVER, 0, 0, p);
}

void net_send(struct sim *s, struct sim_pkt *p)
{
    struct sim_net *n = &s->net;
    uint32_t crc = crc32c(0, p->b.data, p->b.len);
    sim_hash(s, ((uint64_t)p->from << 32) | p->to, crc);
    sim_trace(s, "send %u->%u %s len %zu crc %08x", p->from + 1, p->to + 1,
              raft_msg_type_str(p->type), p->b.len, crc);
    n->sent++;
    /* A bounded network: a message storm (a livelocked core) overflows it
     * instead of exhausting memory. */
    bool cut = !n->up[p->from][p->to] || n->pkts_live > SIM_PKTS_MAX;
    bool lost =
        n->loss_ppm > 0 && prng_chance(&s->net_rng, n->loss_ppm, 1000000);
    if (cut || lost) {
        n->dropped++;
        if (p->type == RAFT_MSG_SNAP) {
            report_lost_snapshot(s, p);
            return;
        }
        if (cut && prng_chance(&s->net_rng, 1, 8)) {
            struct sim_member *fm = &s->m[p->from];
            if (fm->up && fm->raft_open) {
                raft_report_unreachable(&fm->raft, p->to + 1);
            }
        }
        net_free_pkt(s, p);
        return;
    }
    if (n->dup_ppm > 0 && (s->opts.fsm == FSM_KV || p->type != RAFT_MSG_PROP) &&
        p->type != RAFT_MSG_SNAP &&
        prng_chance(&s->net_rng, n->dup_ppm, 1000000)) {
        struct sim_pkt *q = pkt_get(s);
        q->from = p->from;
        q->to = p->to;
        q->from_inc = p->from_inc;
        q->type = p->type;
        int rc = buf_append(&q->b, p->b.data, p->b.len);
        ASSERT(rc == 0);
        n->duplicated++;
        sim_schedule(s, s->now + delay(s), EV_DELIVER, 0, 0, q);
    }
    sim_schedule(s, s->now + delay(s), EV_DELIVER, 0, 0, p);
}

static void snapshot_report(struct sim *s, struct sim_pkt *p, bool ok)
{
    struct sim_member *fm = &s->m[p->from];
    if (fm->up && fm->raft_open && (uint32_t)fm->inc == p->from_inc) {
        raft_report_snapshot(&fm->raft, p->to + 1, ok);
        member_drive(s, fm);
    }
}

void net_deliver(struct sim *s, struct sim_pkt *p)
{
    struct sim_net *n = &s->net;
    struct sim_member *to = &s->m[p->to];
    if (p->lost) {
        snapshot_report(s, p, false);
        net_free_pkt(s, p);
        return;
    }
    if (!n->up[p->from][p->to] || !to->up || !to->raft_open) {
        n->dropped++;
        if (p->type == RAFT_MSG_SNAP) {
            snapshot_report(s, p, false);
        }
        net_free_pkt(s, p);
        return;
    }
    struct raft_msg m;
    int rc = raft_msg_decode(p->b.data, p->b.len, 0, &m);
    if (rc < 0) {
        sim_violation(s, "raft_msg_decode of our own encoding failed: %s",
                      err_str(rc));
        net_free_pkt(s, p);
        return;
    }
    n->delivered++;
    sim_hash(s, 0xde11, ((uint64_t)p->to << 32) | m.type);
    sim_trace(s, "recv %u->%u %s term %lu idx %lu/%lu commit %lu n %u%s",
              p->from + 1, p->to + 1, raft_msg_type_str(m.type),
              (unsigned long)m.term, (unsigned long)m.index,
              (unsigned long)m.log_term, (unsigned long)m.commit,
              m.entries_count, (m.flags & RAFT_MSG_F_REJECT) ? " reject" : "");
    if (p->type == RAFT_MSG_SNAP) {
        member_snap_in(s, to, &m, p); /* stepped once its copy is durable */
    } else {
        member_step(s, to, &m);
    }
    raft_msg_free_decoded(&m);
    if (p->type == RAFT_MSG_SNAP) {
        snapshot_report(s, p, true);
    }
    net_free_pkt(s, p);
}

void net_heal_all(struct sim *s)
{
    for (uint32_t i = 0; i < SIM_SLOTS; i++) {
        for (uint32_t j = 0; j < SIM_SLOTS; j++) {
            s->net.up[i][j] = true;
        }
    }
    s->net.loss_ppm = 0;
}

/*
 * sim_member.c - one simulated member: the real Raft core driven exactly as
 * raft.h's ordering rules say, over a simulated disk.
 *
 * Happy path of one ready batch (member_drive):
 *   1. msgs go to the network at once (a leader replicates while it
 *      persists, thesis 10.2.1);
 *   2. snapshot, entries and hard state become one disk op, queued FIFO
 *      behind earlier ones; its msgs_after_persist wait inside the op;
 *   3. committed entries are applied to the state machine at once (they are
 *      durable already) and raft_applied() reported;
 *   4. reads get their index and are answered once applied >= index;
 *   5. raft_advance().
 * When an op's simulated fsync completes (member_disk_done) it is copied
 * into the durable raft_memstorage, its held messages are sent, and
 * raft_persisted() / raft_snapshot_installed() are reported.
 *
 * A crash (member_crash) keeps a random prefix of the unsynced ops, and may
 * tear the next one (its snapshot and a prefix of its entries reach the
 * disk, its hard state does not), as a write-ahead log with a torn tail
 * does. Everything else the member held in memory is lost.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "tests/sim/sim.h"

/* ------------------------------------------------------------ disk ops */

static void dop_free(struct sim *s, struct sim_dop *op, bool send_held)
{
    if (op->has_snap) {
        mem_free(op->snap.data);
    }
    for (size_t i = 0; i < op->ents_count; i++) {
        mem_free(op->ents[i].data);
    }
    mem_free(op->ents);
    for (size_t i = 0; i < op->after_count; i++) {
        if (send_held) {
            net_send(s, op->after[i]);
        } else {
            net_free_pkt(s, op->after[i]);
        }
    }
    mem_free(op->after);
    memset(op, 0, sizeof(*op));
}

static struct sim_dop *dop_push(struct sim_member *m)
{
    if (m->dops_head > 0 && m->dops_head == m->dops_count) {
        m->dops_head = 0;
        m->dops_count = 0;
    }
    if (m->dops_count == m->dops_cap) {
        if (m->dops_head > 0) {
            memmove(m->dops, m->dops + m->dops_head,
                    (m->dops_count - m->dops_head) * sizeof(*m->dops));
            m->dops_count -= m->dops_head;
            m->dops_head = 0;
        }
        if (m->dops_count == m->dops_cap) {
            size_t cap = m->dops_cap ? m->dops_cap * 2 : 8;
            struct sim_dop *v = mem_realloc(m->dops, cap * sizeof(*v));
            ASSERT(v != NULL);
            m->dops = v;
            m->dops_cap = cap;
        }
    }
    struct sim_dop *op = &m->dops[m->dops_count++];
    memset(op, 0, sizeof(*op));
    return op;
}

static size_t dops_pending(const struct sim_member *m)
{
    return m->dops_count - m->dops_head;
}

static void copy_entries(struct sim_dop *op, const struct raft_entry *e,
                         size_t n)
{
    op->ents = mem_calloc(n, sizeof(*op->ents));
    ASSERT(op->ents != NULL);
    for (size_t i = 0; i < n; i++) {
        op->ents[i] = e[i];
        op->ents[i].data = NULL;
        if (e[i].len > 0) {
            op->ents[i].data = mem_dup(e[i].data, e[i].len);
            ASSERT(op->ents[i].data != NULL);
        }
    }
    op->ents_count = n;
}

/* Copy (part of) an op into durable storage: the snapshot, the first
 * `ents` entries, and the hard state when `hard`. */
static void dop_make_durable(struct sim *s, struct sim_member *m,
                             const struct sim_dop *op, size_t ents, bool hard)
{
    if (op->has_snap) {
        int rc = raft_memstorage_apply_snapshot(&m->ds, &op->snap);
        if (rc < 0) {
            sim_violation(s, "member %lu: durable snapshot %lu refused: %s",
                          (unsigned long)m->id,
                          (unsigned long)op->snap.meta.index, err_str(rc));
        }
    }
    if (ents > 0) {
        int rc = raft_memstorage_append(&m->ds, op->ents, ents);
        if (rc < 0) {
            sim_violation(s, "member %lu: durable append at %lu refused: %s",
                          (unsigned long)m->id,
                          (unsigned long)op->ents[0].index, err_str(rc));
        } else {
            check_durable(s, m, op->ents, ents);
        }
    }
    if (hard) {
        raft_memstorage_set_hard_state(&m->ds, &op->hard);
    }
}

/* ------------------------------------------------------- the log view */

bool member_log_get(const struct sim_member *m, uint64_t index,
                    struct raft_entry *out, bool *compacted)
{
    *compacted = false;
    for (size_t k = m->dops_count; k > m->dops_head; k--) {
        const struct sim_dop *op = &m->dops[k - 1];
        if (op->ents_count > 0) {
            uint64_t lo = op->ents[0].index;
            uint64_t hi = op->ents[op->ents_count - 1].index;
            if (index >= lo && index <= hi) {
                *out = op->ents[index - lo];
                return true;
            }
            if (index > hi) {
                return false;
            }
        }
        if (op->has_snap) {
            if (index <= op->snap.meta.index) {
                *compacted = true;
                return false;
            }
            return false; /* a snapshot drops every later entry */
        }
    }
    const struct raft_memstorage *ds = &m->ds;
    if (index <= ds->snap.meta.index) {
        *compacted = true;
        return false;
    }
    if (index > ds->snap.meta.index + ds->count) {
        return false;
    }
    *out = ds->ents[index - ds->snap.meta.index - 1];
    return true;
}

uint64_t member_log_last(const struct sim_member *m)
{
    for (size_t k = m->dops_count; k > m->dops_head; k--) {
        const struct sim_dop *op = &m->dops[k - 1];
        if (op->ents_count > 0) {
            return op->ents[op->ents_count - 1].index;
        }
        if (op->has_snap) {
            return op->snap.meta.index;
        }
    }
    return m->ds.snap.meta.index + m->ds.count;
}

/* ------------------------------------------------------ start and stop */

static void fail_pending(struct sim *s, struct sim_member *m, bool reads_too)
{
    for (uint32_t i = 0; i < SIM_CLIENTS_MAX; i++) {
        struct sim_pending *p = &m->props[i];
        if (p->req_id != 0) {
            p->req_id = 0;
            client_done(s, p->client, p->client_gen, OUT_UNKNOWN, 0);
        }
    }
    for (uint32_t i = 0; i < SIM_READS_MAX; i++) {
        struct sim_read *r = &m->reads[i];
        if (r->ctx != 0 && (reads_too || !r->have_index)) {
            r->ctx = 0;
            client_done(s, r->client, r->client_gen, OUT_FAIL, 0);
        }
    }
}

int member_start(struct sim *s, uint32_t slot)
{
    struct sim_member *m = &s->m[slot];
    ASSERT(!m->up && !m->removed);
    if (!m->exists) {
        bool initial = m->initial;
        memset(m, 0, sizeof(*m));
        m->initial = initial;
        m->exists = true;
        m->slot = slot;
        m->id = slot + 1;
        raft_memstorage_init(&m->ds);
        uint64_t skew = prng_range(&s->rng, 90, 110);
        m->tick_us = s->p.tick_us * skew / 100;
        m->compact_every =
            prng_range(&s->rng, s->p.compact_min, s->p.compact_max);
        if (s->slots_used <= slot) {
            s->slots_used = slot + 1;
        }
    }
    m->inc++;
    int rc = fsm_open(s, m);
    if (rc < 0) {
        sim_violation(s, "member %lu: state machine open failed: %s",
                      (unsigned long)m->id, err_str(rc));
        return rc;
    }
    /* A durable snapshot newer than the state machine: install it first
     * (the crash hit between writing the snapshot and applying it). */
    if (m->ds.snap.meta.index > m->fsm.applied) {
        rc = fsm_restore(s, m, m->ds.snap.data, m->ds.snap.data_len,
                         m->ds.snap.meta.index, m->ds.snap.meta.term);
        if (rc < 0) {
            sim_violation(s, "member %lu: restore at start failed: %s",
                          (unsigned long)m->id, err_str(rc));
            return rc;
        }
    }
    struct raft_config cfg;
    raft_config_default(&cfg, m->id);
    cfg.seed = prng_mix(s->seed ^ (m->id << 40) ^ (m->inc << 20));
    cfg.election_ticks = s->p.election_ticks;
    cfg.heartbeat_ticks = s->p.heartbeat_ticks;
    cfg.pre_vote = s->p.pre_vote;
    cfg.check_quorum = s->p.check_quorum;
    cfg.max_msg_bytes = s->p.max_msg_bytes;
    cfg.max_inflight_msgs = s->p.max_inflight;
    cfg.max_committed_bytes = s->p.max_committed_bytes;
    cfg.storage = raft_memstorage_storage(&m->ds);
    if (m->initial) {
        cfg.bootstrap = s->bootstrap;
    }
    /* The store may be ahead of the durable hard state's commit (it is
     * persisted lazily, and we apply before the batch's fsync): hand the
     * core no more than it knows is committed; apply_entries skips what
     * the store already holds. */
    uint64_t commit = m->ds.hard.commit > m->ds.snap.meta.index
                          ? m->ds.hard.commit
                          : m->ds.snap.meta.index;
    cfg.applied = m->fsm.applied < commit ? m->fsm.applied : commit;
    rc = raft_init(&m->raft, &cfg);
    if (rc < 0) {
        sim_violation(s, "member %lu: raft_init failed: %s",
                      (unsigned long)m->id, err_str(rc));
        return rc;
    }
    m->raft_open = true;
    m->up = true;
    m->leader = RAFT_NONE;
    m->role = RAFT_FOLLOWER;
    m->commit_seen = m->ds.hard.commit;
    m->disk_free_at = s->now;
    sim_trace(s, "start %lu inc %lu applied %lu durable last %lu",
              (unsigned long)m->id, (unsigned long)m->inc,
              (unsigned long)cfg.applied,
              (unsigned long)(m->ds.snap.meta.index + m->ds.count));
    sim_hash(s, 0x57a7, m->id);
    sim_schedule(s, s->now + prng_range(&s->rng, 1, m->tick_us), EV_TICK, slot,
                 m->inc, NULL);
    return 0;
}

void member_crash(struct sim *s, uint32_t slot)
{
    struct sim_member *m = &s->m[slot];
    ASSERT(m->up);
    size_t n = dops_pending(m);
    size_t keep = (size_t)prng_below(&s->rng, n + 1);
    for (size_t i = 0; i < keep; i++) {
        struct sim_dop *op = &m->dops[m->dops_head + i];
        dop_make_durable(s, m, op, op->ents_count, op->has_hard);
    }
    if (keep < n && prng_chance(&s->rng, 1, 2)) {
        /* Torn: the snapshot and a prefix of the entries, no hard state. */
        struct sim_dop *op = &m->dops[m->dops_head + keep];
        size_t part = (size_t)prng_below(&s->rng, op->ents_count + 1);
        dop_make_durable(s, m, op, part, false);
        s->st_torn++;
    }
    for (size_t i = m->dops_head; i < m->dops_count; i++) {
        dop_free(s, &m->dops[i], false);
    }
    m->dops_head = 0;
    m->dops_count = 0;
    fail_pending(s, m, true);
    raft_close(&m->raft);
    m->raft_open = false;
    m->up = false;
    fsm_crash(s, m);
    m->crashes++;
    s->st_crashes++;
    sim_trace(s, "crash %lu kept %zu of %zu unsynced ops", (unsigned long)m->id,
              keep, n);
    sim_hash(s, 0xc4a5, ((uint64_t)keep << 32) | m->id);
}

void member_stop_for_good(struct sim *s, uint32_t slot)
{
    struct sim_member *m = &s->m[slot];
    if (m->removed) {
        return;
    }
    if (m->up) {
        member_crash(s, slot);
    }
    m->removed = true;
    sim_trace(s, "member %lu removed and stopped", (unsigned long)m->id);
}

void member_free(struct sim *s, uint32_t slot)
{
    struct sim_member *m = &s->m[slot];
    if (!m->exists) {
        return;
    }
    if (m->raft_open) {
        raft_close(&m->raft);
        m->raft_open = false;
    }
    for (size_t i = m->dops_head; i < m->dops_count; i++) {
        dop_free(s, &m->dops[i], false);
    }
    mem_free(m->dops);
    m->dops = NULL;
    raft_memstorage_close(&m->ds);
    fsm_close(s, m, true);
    m->exists = false;
}

/* ------------------------------------------------------- the batch */

static void on_soft_change(struct sim *s, struct sim_member *m,
                           const struct raft_ready *rd)
{
    bool leader_changed = rd->leader != m->leader || rd->role != m->role;
    m->leader = rd->leader;
    m->role = rd->role;
    sim_trace(s, "member %lu: %s, leader %lu, term %lu", (unsigned long)m->id,
              raft_role_str(rd->role), (unsigned long)rd->leader,
              (unsigned long)rd->hard.term);
    sim_hash(s, 0x50f7, ((uint64_t)rd->role << 32) | rd->leader);
    if (leader_changed) {
        fail_pending(s, m, false);
    }
    if (rd->role == RAFT_LEADER) {
        s->st_elections++;
        check_leader(s, m, rd->hard.term);
        if (s->phase == PHASE_HEAL && s->leader_at == 0) {
            s->leader_at = s->now;
        }
    }
}

static void serve_reads(struct sim *s, struct sim_member *m)
{
    for (uint32_t i = 0; i < SIM_READS_MAX; i++) {
        struct sim_read *r = &m->reads[i];
        if (r->ctx != 0 && r->have_index && m->fsm.applied >= r->index) {
            r->ctx = 0;
            client_read_done(s, r->client, r->client_gen, m);
        }
    }
}

static void note_reads(struct sim *s, struct sim_member *m,
                       const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->reads_count; i++) {
        for (uint32_t j = 0; j < SIM_READS_MAX; j++) {
            struct sim_read *r = &m->reads[j];
            if (r->ctx == rd->reads[i].ctx) {
                r->index = rd->reads[i].index;
                r->have_index = true;
            }
        }
        sim_hash(s, 0x4ead, rd->reads[i].index);
    }
}

static void note_conf(struct sim *s, struct sim_member *m,
                      const struct raft_entry *e)
{
    struct raft_conf_change cc;
    int rc = raft_conf_change_decode(e->data, e->len, &cc);
    if (rc < 0) {
        sim_violation(s, "member %lu: committed conf entry %lu undecodable",
                      (unsigned long)m->id, (unsigned long)e->index);
        return;
    }
    if (cc.type == RAFT_CC_REMOVE && cc.node_id >= 1 &&
        cc.node_id <= SIM_SLOTS) {
        struct sim_member *x = &s->m[cc.node_id - 1];
        /* Stop it after this event (never from inside its own batch). */
        if (x->exists && !x->removed) {
            x->stop_pending = true;
        }
    }
}

static void maybe_compact(struct sim *s, struct sim_member *m)
{
    uint64_t idx = m->fsm.applied;
    if (idx < m->ds.snap.meta.index + m->compact_every) {
        return;
    }
    struct raft_status st;
    raft_status(&m->raft, &st);
    if (st.applied != idx || idx > m->ds.snap.meta.index + m->ds.count) {
        return; /* the store is ahead of what the core handed out */
    }
    struct raft_snapshot_meta meta;
    int rc = raft_compact(&m->raft, idx, &meta);
    if (rc < 0) {
        sim_violation(s, "member %lu: raft_compact(%lu) failed: %s",
                      (unsigned long)m->id, (unsigned long)idx, err_str(rc));
        return;
    }
    buf_reset(&s->scratch);
    rc = fsm_snapshot(s, m, &s->scratch);
    ASSERT(rc == 0);
    rc =
        raft_memstorage_compact(&m->ds, &meta, s->scratch.data, s->scratch.len);
    if (rc < 0) {
        sim_violation(s, "member %lu: compact at %lu failed: %s",
                      (unsigned long)m->id, (unsigned long)idx, err_str(rc));
        return;
    }
    s->st_compactions++;
    sim_trace(s, "member %lu compacted to %lu (%zu bytes)",
              (unsigned long)m->id, (unsigned long)idx, s->scratch.len);
}

static void apply_committed(struct sim *s, struct sim_member *m,
                            const struct raft_ready *rd)
{
    if (rd->committed_count == 0) {
        return;
    }
    for (size_t i = 0; i < rd->committed_count; i++) {
        const struct raft_entry *e = &rd->committed[i];
        if (e->index > rd->hard.commit) {
            sim_violation(s,
                          "member %lu: entry %lu handed out to apply "
                          "above commit %lu",
                          (unsigned long)m->id, (unsigned long)e->index,
                          (unsigned long)rd->hard.commit);
        }
        check_applied(s, m, e);
        if (e->type == RAFT_ENTRY_CONF) {
            note_conf(s, m, e);
        }
    }
    const struct raft_entry *last = &rd->committed[rd->committed_count - 1];
    int rc = fsm_apply(s, m, rd->committed, rd->committed_count);
    if (rc < 0) {
        sim_violation(s, "member %lu: apply up to %lu failed: %s",
                      (unsigned long)m->id, (unsigned long)last->index,
                      err_str(rc));
        return;
    }
    rc = raft_applied(&m->raft, last->index);
    ASSERT(rc == 0);
    sim_hash(s, 0xa991, last->index);
}

static void write_batch(struct sim *s, struct sim_member *m,
                        const struct raft_ready *rd)
{
    bool write =
        rd->snapshot != NULL || rd->entries_count > 0 || rd->hard_changed;
    if (!write && rd->msgs_after_persist_count == 0) {
        return;
    }
    if (!write && dops_pending(m) == 0) {
        /* Nothing to make durable and nothing ahead: send now. */
        for (size_t i = 0; i < rd->msgs_after_persist_count; i++) {
            struct sim_pkt *p =
                net_encode(s, m->slot, &rd->msgs_after_persist[i]);
            if (p != NULL) {
                net_send(s, p);
            }
        }
        return;
    }
    struct sim_dop *op = dop_push(m);
    if (rd->snapshot != NULL) {
        op->has_snap = true;
        op->snap = *rd->snapshot;
        op->snap.data = NULL;
        if (rd->snapshot->data_len > 0) {
            op->snap.data = mem_dup(rd->snapshot->data, rd->snapshot->data_len);
            ASSERT(op->snap.data != NULL);
        }
    }
    if (rd->entries_count > 0) {
        copy_entries(op, rd->entries, rd->entries_count);
    }
    op->has_hard = rd->hard_changed;
    op->hard = rd->hard;
    if (rd->msgs_after_persist_count > 0) {
        op->after =
            mem_calloc(rd->msgs_after_persist_count, sizeof(*op->after));
        ASSERT(op->after != NULL);
        for (size_t i = 0; i < rd->msgs_after_persist_count; i++) {
            struct sim_pkt *p =
                net_encode(s, m->slot, &rd->msgs_after_persist[i]);
            if (p != NULL) {
                op->after[op->after_count++] = p;
            }
        }
    }
    uint64_t start = m->disk_free_at > s->now ? m->disk_free_at : s->now;
    uint64_t lat = prng_range(&s->rng, s->p.disk_min_us, s->p.disk_max_us);
    if (prng_chance(&s->rng, 1, 200)) {
        lat += prng_range(&s->rng, 0, 50000); /* a slow fsync */
    }
    op->done_at = start + lat;
    m->disk_free_at = op->done_at;
    sim_schedule(s, op->done_at, EV_DISK, m->slot, m->inc, NULL);
}

static void handle_batch(struct sim *s, struct sim_member *m,
                         const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->msgs_count; i++) {
        struct sim_pkt *p = net_encode(s, m->slot, &rd->msgs[i]);
        if (p != NULL) {
            net_send(s, p);
        }
    }
    write_batch(s, m, rd);
    if (rd->snapshot != NULL && rd->committed_count > 0) {
        sim_violation(s,
                      "member %lu: committed entries handed out with a "
                      "snapshot to install",
                      (unsigned long)m->id);
    }
    check_commit(s, m, rd->hard.commit, rd->hard.term);
    note_reads(s, m, rd);
    apply_committed(s, m, rd);
    if (rd->soft_changed) {
        on_soft_change(s, m, rd);
    }
    serve_reads(s, m);
    maybe_compact(s, m);
}

void member_drive(struct sim *s, struct sim_member *m)
{
    for (uint32_t guard = 0; m->up && raft_has_ready(&m->raft); guard++) {
        ASSERT(guard < 100000);
        struct raft_ready rd;
        int rc = raft_ready(&m->raft, &rd);
        if (rc < 0) {
            sim_violation(s, "member %lu: raft_ready failed: %s",
                          (unsigned long)m->id, err_str(rc));
            raft_advance(&m->raft, &rd);
            return;
        }
        handle_batch(s, m, &rd);
        raft_advance(&m->raft, &rd);
    }
}

void member_tick(struct sim *s, struct sim_member *m)
{
    int rc = raft_tick(&m->raft);
    if (rc < 0) {
        sim_violation(s, "member %lu: raft_tick failed: %s",
                      (unsigned long)m->id, err_str(rc));
    }
    member_drive(s, m);
    sim_schedule(s, s->now + m->tick_us, EV_TICK, m->slot, m->inc, NULL);
}

void member_step(struct sim *s, struct sim_member *m,
                 const struct raft_msg *msg)
{
    int rc = raft_step(&m->raft, msg);
    if (rc < 0) {
        sim_violation(s, "member %lu: raft_step(%s) failed: %s",
                      (unsigned long)m->id, raft_msg_type_str(msg->type),
                      err_str(rc));
    }
    member_drive(s, m);
}

void member_disk_done(struct sim *s, struct sim_member *m)
{
    ASSERT(dops_pending(m) > 0);
    struct sim_dop *op = &m->dops[m->dops_head];
    ASSERT(op->done_at == s->now);
    m->dops_head++;
    dop_make_durable(s, m, op, op->ents_count, op->has_hard);
    if (op->has_snap) {
        int rc = fsm_restore(s, m, op->snap.data, op->snap.data_len,
                             op->snap.meta.index, op->snap.meta.term);
        if (rc < 0) {
            sim_violation(s, "member %lu: snapshot install failed: %s",
                          (unsigned long)m->id, err_str(rc));
        }
        rc = raft_snapshot_installed(&m->raft, op->snap.meta.index);
        ASSERT(rc == 0);
        s->st_snap_installs++;
        sim_trace(s, "member %lu installed snapshot %lu", (unsigned long)m->id,
                  (unsigned long)op->snap.meta.index);
    }
    uint64_t last_idx = 0;
    uint64_t last_term = 0;
    if (op->ents_count > 0) {
        last_idx = op->ents[op->ents_count - 1].index;
        last_term = op->ents[op->ents_count - 1].term;
    }
    dop_free(s, op, true); /* sends the held messages */
    if (last_idx > 0) {
        int rc = raft_persisted(&m->raft, last_idx, last_term);
        if (rc < 0) {
            sim_violation(s, "member %lu: raft_persisted failed: %s",
                          (unsigned long)m->id, err_str(rc));
        }
    }
    sim_hash(s, 0xd15c, ((uint64_t)m->slot << 32) | last_idx);
    member_drive(s, m);
    serve_reads(s, m);
}

/* ------------------------------------------------------ client entry */

int member_propose_op(struct sim *s, struct sim_member *m, struct sim_client *c,
                      const struct sim_op *op)
{
    uint64_t req_id = ++s->next_req;
    buf_reset(&s->scratch2);
    int rc = fsm_encode_op(s, m, req_id, op, &s->scratch2);
    ASSERT(rc == 0);
    rc = raft_propose(&m->raft, RAFT_ENTRY_NORMAL, s->scratch2.data,
                      s->scratch2.len, NULL);
    if (rc < 0) {
        return rc;
    }
    struct sim_pending *p = &m->props[c->idx];
    p->req_id = req_id;
    p->client = c->idx;
    p->client_gen = c->gen;
    c->req_id = req_id;
    member_drive(s, m);
    return 0;
}

int member_read(struct sim *s, struct sim_member *m, struct sim_client *c)
{
    struct sim_read *slot = NULL;
    for (uint32_t i = 0; i < SIM_READS_MAX && slot == NULL; i++) {
        struct sim_read *r = &m->reads[i];
        const struct sim_client *owner = &s->c[r->client];
        if (r->ctx != 0 && (!owner->busy || owner->gen != r->client_gen)) {
            r->ctx = 0; /* its client gave up on it */
        }
        if (r->ctx == 0) {
            slot = r;
        }
    }
    if (slot == NULL) {
        return ERR_BUSY;
    }
    uint64_t ctx = ++s->next_ctx;
    int rc = raft_read_index(&m->raft, ctx);
    if (rc < 0) {
        return rc;
    }
    slot->ctx = ctx;
    slot->have_index = false;
    slot->index = 0;
    slot->client = c->idx;
    slot->client_gen = c->gen;
    member_drive(s, m);
    return 0;
}

void member_answer(struct sim *s, struct sim_member *m, uint64_t req_id,
                   int outcome, uint64_t result)
{
    for (uint32_t i = 0; i < SIM_CLIENTS_MAX; i++) {
        struct sim_pending *p = &m->props[i];
        if (p->req_id == req_id && req_id != 0) {
            p->req_id = 0;
            client_done(s, p->client, p->client_gen, outcome, result);
            return;
        }
    }
}

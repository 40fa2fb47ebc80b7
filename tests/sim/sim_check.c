/*
 * sim_check.c - the safety checkers that watch the cluster while it runs,
 * and the convergence test of the healed phase.
 *
 *  - Election safety: at most one leader per term (recorded whenever a
 *    batch reports the leader role).
 *  - Log matching: entries with the same index and term in any member's
 *    durable log have the same bytes (checked as each reaches the disk, and
 *    again for every entry the WAL recovers at a start), and two members'
 *    WALs that agree at an index agree on everything before it (pairwise
 *    scan of the logs read back from the simulated disks at the end of each
 *    phase).
 *  - Leader completeness: when a member becomes leader of term t, its log
 *    (durable plus unsynced) holds every entry known committed in a term
 *    below t. The commit term of an index is the lowest term any member
 *    reported a commit index covering it with; that is never below the
 *    true commit term, so the check has no false alarms.
 *  - State machine safety: every member applies the same entry at each
 *    index.
 * The client-history checks are in sim_lin.c and check_final_state().
 */
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/crc32c.h"
#include "tests/sim/sim.h"

static uint32_t entry_crc(const struct raft_entry *e)
{
    uint32_t c = crc32c(0, &e->type, 1);
    return e->len > 0 ? crc32c(c, e->data, e->len) : c;
}

static void grow(void **v, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) {
        return;
    }
    size_t n = *cap ? *cap : 1024;
    while (n < need) {
        n *= 2;
    }
    uint8_t *p = mem_realloc(*v, n * elem);
    ASSERT(p != NULL);
    memset(p + *cap * elem, 0, (n - *cap) * elem);
    *v = p;
    *cap = n;
}

static void grow_idx(struct sim_check *ck, uint64_t index)
{
    if (index < ck->idx_cap) {
        return;
    }
    size_t cap = ck->idx_cap;
    grow((void **)&ck->applied, &cap, (size_t)index + 1, sizeof(*ck->applied));
    cap = ck->idx_cap;
    grow((void **)&ck->commit_term, &cap, (size_t)index + 1,
         sizeof(*ck->commit_term));
    ck->idx_cap = cap;
}

void check_init(struct sim *s)
{
    memset(&s->ck, 0, sizeof(s->ck));
}

void check_close(struct sim *s)
{
    mem_free(s->ck.leader_of_term);
    mem_free(s->ck.applied);
    mem_free(s->ck.commit_term);
    mem_free(s->ck.logs);
    mem_free(s->ck.req_index);
    mem_free(s->ck.val_rev);
    memset(&s->ck, 0, sizeof(s->ck));
}

static void check_completeness(struct sim *s, struct sim_member *m,
                               uint64_t term)
{
    struct sim_check *ck = &s->ck;
    for (uint64_t i = 1; i <= ck->max_commit && i < ck->idx_cap; i++) {
        uint64_t ct = ck->commit_term[i];
        if (ct == 0 || ct >= term || ck->applied[i].term == 0) {
            continue;
        }
        struct raft_entry e;
        bool compacted;
        if (!member_log_get(m, i, &e, &compacted)) {
            if (!compacted) {
                sim_violation(s,
                              "leader completeness: leader %lu of term "
                              "%lu lacks entry %lu committed in term %lu",
                              (unsigned long)m->id, (unsigned long)term,
                              (unsigned long)i, (unsigned long)ct);
                return;
            }
            continue;
        }
        if (e.term != ck->applied[i].term ||
            entry_crc(&e) != ck->applied[i].crc) {
            sim_violation(s,
                          "leader completeness: leader %lu of term %lu "
                          "has term %lu at %lu, committed %lu",
                          (unsigned long)m->id, (unsigned long)term,
                          (unsigned long)e.term, (unsigned long)i,
                          (unsigned long)ck->applied[i].term);
            return;
        }
    }
}

void check_leader(struct sim *s, struct sim_member *m, uint64_t term)
{
    struct sim_check *ck = &s->ck;
    grow((void **)&ck->leader_of_term, &ck->terms_cap, (size_t)term + 1,
         sizeof(*ck->leader_of_term));
    uint64_t prev = ck->leader_of_term[term];
    if (prev != 0 && prev != m->id) {
        sim_violation(s,
                      "election safety: members %lu and %lu both lead "
                      "term %lu",
                      (unsigned long)prev, (unsigned long)m->id,
                      (unsigned long)term);
    }
    ck->leader_of_term[term] = m->id;
    check_completeness(s, m, term);
}

void check_commit(struct sim *s, struct sim_member *m, uint64_t commit,
                  uint64_t term)
{
    struct sim_check *ck = &s->ck;
    if (commit <= m->commit_seen) {
        return;
    }
    grow_idx(ck, commit);
    for (uint64_t i = m->commit_seen + 1; i <= commit; i++) {
        if (ck->commit_term[i] == 0 || ck->commit_term[i] > term) {
            ck->commit_term[i] = term;
        }
    }
    m->commit_seen = commit;
    if (commit > ck->max_commit) {
        ck->max_commit = commit;
    }
}

/* The request id an entry carries: ours ('M' command) or the envelope's
 * field 1 (varint). 0 when there is none. */
static uint64_t entry_req_id(const struct raft_entry *e)
{
    if (e->type != RAFT_ENTRY_NORMAL || e->len < 2) {
        return 0;
    }
    if (e->data[0] == 'M' && e->len >= 11) {
        return be64_get(e->data + 3);
    }
    uint64_t id = 0;
    if (e->data[0] == 0x08 && varint_get(e->data + 1, e->len - 1, &id) > 0) {
        return id;
    }
    return 0;
}

/* A proposal takes effect once: one index per request id. */
static void check_once(struct sim *s, const struct raft_entry *e)
{
    struct sim_check *ck = &s->ck;
    uint64_t id = entry_req_id(e);
    if (id == 0 || id > s->next_req) {
        return;
    }
    grow((void **)&ck->req_index, &ck->req_cap, (size_t)id + 1,
         sizeof(*ck->req_index));
    if (ck->req_index[id] == 0) {
        ck->req_index[id] = e->index;
    } else if (ck->req_index[id] != e->index && s->opts.fsm != FSM_KV) {
        /* With the store a repeated proposal may sit in the log twice;
         * apply executes it once, and check_put_effect checks that. */
        sim_violation(s, "request %lu applied twice, at %lu and %lu",
                      (unsigned long)id, (unsigned long)ck->req_index[id],
                      (unsigned long)e->index);
    }
}

/* A put's effect: the value (unique per request) lands at one revision on
 * every member and at every replay; a request executed twice would put it
 * at a second revision. */
void check_put_effect(struct sim *s, struct sim_member *m, uint64_t value,
                      int64_t rev)
{
    struct sim_check *ck = &s->ck;
    if (value > s->next_value) {
        return; /* not a value we wrote */
    }
    grow((void **)&ck->val_rev, &ck->val_cap, (size_t)value + 1,
         sizeof(*ck->val_rev));
    if (ck->val_rev[value] == 0) {
        ck->val_rev[value] = rev;
    } else if (ck->val_rev[value] != rev) {
        sim_violation(s,
                      "member %lu: value %lu put at revision %ld, once "
                      "put at %ld: a request took effect twice",
                      (unsigned long)m->id, (unsigned long)value, (long)rev,
                      (long)ck->val_rev[value]);
    }
}

void check_applied(struct sim *s, struct sim_member *m,
                   const struct raft_entry *e)
{
    check_once(s, e);
    struct sim_check *ck = &s->ck;
    grow_idx(ck, e->index);
    struct sim_logent *a = &ck->applied[e->index];
    uint32_t crc = entry_crc(e);
    if (a->term == 0) {
        a->term = e->term;
        a->crc = crc;
        a->type = e->type;
        return;
    }
    if (a->term != e->term || a->crc != crc) {
        sim_violation(s,
                      "state machine safety: member %lu applies term %lu "
                      "at index %lu where another applied term %lu",
                      (unsigned long)m->id, (unsigned long)e->term,
                      (unsigned long)e->index, (unsigned long)a->term);
    }
}

void check_durable(struct sim *s, struct sim_member *m,
                   const struct raft_entry *e, size_t n)
{
    struct sim_check *ck = &s->ck;
    for (size_t k = 0; k < n; k++) {
        grow((void **)&ck->logs, &ck->logs_cap, (size_t)e[k].index + 1,
             sizeof(*ck->logs));
        struct sim_idxterms *t = &ck->logs[e[k].index];
        uint32_t crc = entry_crc(&e[k]);
        bool found = false;
        for (uint32_t j = 0; j < t->count; j++) {
            if (t->e[j].term == e[k].term) {
                found = true;
                if (t->e[j].crc != crc) {
                    sim_violation(s,
                                  "log matching: member %lu has a "
                                  "different entry at %lu term %lu",
                                  (unsigned long)m->id,
                                  (unsigned long)e[k].index,
                                  (unsigned long)e[k].term);
                }
            }
        }
        if (!found && t->count < 4) {
            t->e[t->count].term = e[k].term;
            t->e[t->count].crc = crc;
            t->count++;
        }
    }
}

/* Two members' logs, as their WALs hold them (read back from the
 * simulated disk, checksums verified): once they agree on an index's term
 * they agree on every entry below it. */
static void pair_check(struct sim *s, struct sim_member *a,
                       struct sim_member *b)
{
    if (a->log == NULL || b->log == NULL) {
        return; /* not recovered (its start failed: already reported) */
    }
    uint64_t fa = log_first_index(a->log);
    uint64_t fb = log_first_index(b->log);
    uint64_t la = log_last_index(a->log);
    uint64_t lb = log_last_index(b->log);
    uint64_t lo = fa > fb ? fa : fb;
    uint64_t hi = la < lb ? la : lb;
    bool matched = false;
    struct buf copy;
    buf_init(&copy, 0);
    for (uint64_t i = hi; i >= lo && i > 0; i--) {
        struct raft_entry ea;
        struct raft_entry eb;
        bool ca;
        bool cb;
        if (!member_log_get(a, i, &ea, &ca)) {
            sim_violation(s, "member %lu: WAL read of entry %lu failed",
                          (unsigned long)a->id, (unsigned long)i);
            break;
        }
        /* ea's data is borrowed until a's next read: keep a copy. */
        buf_reset(&copy);
        int rc = buf_append(&copy, ea.data, ea.len);
        ASSERT(rc == 0);
        ea.data = copy.data;
        if (!member_log_get(b, i, &eb, &cb)) {
            sim_violation(s, "member %lu: WAL read of entry %lu failed",
                          (unsigned long)b->id, (unsigned long)i);
            break;
        }
        if (!matched && ea.term == eb.term) {
            matched = true;
        }
        if (matched &&
            (ea.term != eb.term || ea.len != eb.len || ea.type != eb.type ||
             (ea.len > 0 && memcmp(ea.data, eb.data, ea.len)))) {
            sim_violation(s,
                          "log matching: members %lu and %lu agree below "
                          "but differ at index %lu",
                          (unsigned long)a->id, (unsigned long)b->id,
                          (unsigned long)i);
            break;
        }
    }
    buf_free(&copy);
}

void check_logs_pairwise(struct sim *s)
{
    for (uint32_t i = 0; i < s->slots_used; i++) {
        for (uint32_t j = i + 1; j < s->slots_used; j++) {
            if (s->m[i].exists && s->m[j].exists) {
                pair_check(s, &s->m[i], &s->m[j]);
            }
        }
    }
}

/* The healed cluster has converged: a leader whose whole log is committed,
 * every member of its configuration up, following it, and applied to that
 * commit with the same state. */
bool check_converged(struct sim *s, uint64_t *leader_slot)
{
    struct sim_member *l = NULL;
    uint64_t best_term = 0;
    for (uint32_t i = 0; i < s->slots_used; i++) {
        struct sim_member *m = &s->m[i];
        if (m->up && m->raft_open && m->role == RAFT_LEADER) {
            struct raft_status st;
            raft_status(&m->raft, &st);
            if (st.hard.term >= best_term) {
                best_term = st.hard.term;
                l = m;
            }
        }
    }
    if (l == NULL) {
        return false;
    }
    struct raft_status st;
    raft_status(&l->raft, &st);
    if (st.hard.commit != st.last_index || l->fsm.applied != st.hard.commit) {
        return false;
    }
    uint64_t ids[2 * RAFT_MEMBERS_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < st.conf.voters_count; i++) {
        ids[n++] = st.conf.voters[i];
    }
    for (uint32_t i = 0; i < st.conf.learners_count; i++) {
        ids[n++] = st.conf.learners[i];
    }
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] == 0 || ids[i] > s->slots_used) {
            return false;
        }
        struct sim_member *m = &s->m[ids[i] - 1];
        if (!m->up || m->leader != l->id || m->fsm.applied != st.hard.commit) {
            return false;
        }
    }
    *leader_slot = l->slot;
    uint64_t d = fsm_digest(s, l);
    for (uint32_t i = 0; i < n; i++) {
        struct sim_member *m = &s->m[ids[i] - 1];
        if (m != l && fsm_digest(s, m) != d) {
            sim_violation(s,
                          "convergence: member %lu state differs from "
                          "leader %lu at applied index %lu",
                          (unsigned long)m->id, (unsigned long)l->id,
                          (unsigned long)st.hard.commit);
            return true; /* converged in index; reported once */
        }
    }
    return true;
}

/* No acknowledged write lost: the final read of each key returns the value
 * of the last write, where "last" may be any write that is not known to
 * have finished before the acknowledged one started. */
void check_final_state(struct sim *s)
{
    for (uint32_t k = 0; k < s->p.keys; k++) {
        const struct sim_op *fin = NULL;
        for (size_t i = 0; i < s->hist_count; i++) {
            const struct sim_op *op = &s->hist[i];
            if (op->final_read && op->key == k && op->outcome == OUT_OK) {
                fin = op;
            }
        }
        if (fin == NULL) {
            sim_violation(s, "final read of k%u never succeeded", k);
            continue;
        }
        /* The two latest return times of writes that may have happened. */
        uint64_t top1 = 0;
        uint64_t top2 = 0;
        size_t top1_i = SIZE_MAX;
        for (size_t i = 0; i < s->hist_count; i++) {
            const struct sim_op *op = &s->hist[i];
            bool write = op->type != OP_GET && op->key == k &&
                         (op->outcome == OUT_UNKNOWN ||
                          (op->outcome == OUT_OK &&
                           (op->type != OP_CAS || op->result == 1)));
            if (!write) {
                continue;
            }
            if (op->ret_us >= top1) {
                top2 = top1;
                top1 = op->ret_us;
                top1_i = i;
            } else if (op->ret_us > top2) {
                top2 = op->ret_us;
            }
        }
        for (size_t i = 0; i < s->hist_count; i++) {
            const struct sim_op *op = &s->hist[i];
            bool acked = op->key == k && op->outcome == OUT_OK &&
                         (op->type == OP_PUT ||
                          (op->type == OP_CAS && op->result == 1) ||
                          (op->type == OP_DEL && op->result == 1));
            if (!acked) {
                continue;
            }
            uint64_t v = op->type == OP_DEL ? 0 : op->value;
            uint64_t other = i == top1_i ? top2 : top1;
            if (fin->result != v && other < op->call_us) {
                sim_violation(s,
                              "acknowledged write lost: k%u final value "
                              "%lu, but op %zu (value %lu, acked at %lu us)"
                              " was the last write",
                              k, (unsigned long)fin->result, i,
                              (unsigned long)v, (unsigned long)op->ret_us);
                break;
            }
        }
    }
}

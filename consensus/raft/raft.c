/*
 * raft.c - the Raft protocol as a pure state machine (Ongaro's thesis,
 * after etcd-io/raft's design): elections with pre-vote (thesis 9.6) and
 * check-quorum (6.2 and 9.6 leases), log replication with per-follower
 * probe/replicate/snapshot states (etcd's flow control), the commit rule of
 * figure 3.7 (only current-term entries by counting replicas), ReadIndex
 * (6.4), snapshots (5), single-server membership changes (4.1) and leader
 * transfer (3.10).
 *
 * Every effect goes to an outbound queue or to the log's unstable tail and
 * leaves through raft_ready(). Nothing here blocks, reads a clock or does
 * I/O; storage reads go through r->st. An allocation or storage failure in
 * the middle of a change sets r->err and the core stays failed.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/limits.h"
#include "consensus/raft/raft_int.h"

#ifndef RAFT_PLANTED_BUG
#define RAFT_PLANTED_BUG 0
#endif

/* Bound for loops that resend while a follower has room: one per slot. */
#define SEND_LOOP_MAX 65536

static void become_follower(struct raft *r, uint64_t term, uint64_t leader);
static void campaign(struct raft *r, bool pre, bool transfer);
static bool maybe_send_append(struct raft *r, struct raft__progress *pr,
                              bool send_if_empty);
static void reads_on_commit(struct raft *r);

static void fail(struct raft *r, int rc)
{
    ASSERT(rc < 0);
    if (r->err == 0) {
        r->err = rc;
    }
}

/* ------------------------------------------------------------- names */

const char *raft_msg_type_str(uint8_t type)
{
    static const char *const names[] = {
        "none",           "prevote",     "prevote_resp",
        "vote",           "vote_resp",   "app",
        "app_resp",       "heartbeat",   "heartbeat_resp",
        "snap",           "prop",        "readindex",
        "readindex_resp", "timeout_now", "transfer_leader",
        "prop_refused",
    };
    STATIC_ASSERT(sizeof(names) / sizeof(names[0]) == RAFT_MSG_TYPE_MAX + 1,
                  "one name per message type");
    return type <= RAFT_MSG_TYPE_MAX ? names[type] : "unknown";
}

const char *raft_role_str(uint8_t role)
{
    switch (role) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PRECANDIDATE:
        return "precandidate";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    default:
        return "unknown";
    }
}

void raft_config_default(struct raft_config *cfg, uint64_t id)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->id = id;
    cfg->seed = id;
    cfg->election_ticks = 10;
    cfg->heartbeat_ticks = 1;
    cfg->pre_vote = true;
    cfg->check_quorum = true;
    cfg->forward_proposals = true;
    cfg->max_entry_bytes = limits_default(LIMIT_RAFT_ENTRY_BYTES);
    cfg->max_msg_bytes = limits_default(LIMIT_RAFT_MSG_BYTES);
    cfg->max_inflight_msgs = (uint32_t)limits_default(LIMIT_RAFT_INFLIGHT_MSGS);
    cfg->max_inflight_bytes = 0;
    cfg->max_uncommitted_bytes = limits_default(LIMIT_RAFT_UNCOMMITTED_BYTES);
    cfg->max_committed_bytes = limits_default(LIMIT_RAFT_MSG_BYTES);
    cfg->max_pending_reads = 4096;
    cfg->max_queued_msgs = 4096;
}

/* ---------------------------------------------------------- progress */

static struct raft__progress *pr_find(struct raft *r, uint64_t id)
{
    if (id == RAFT_NONE) {
        return NULL;
    }
    for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
        if (r->prs[i].id == id) {
            return &r->prs[i];
        }
    }
    return NULL;
}

static bool is_voter(const struct raft *r, uint64_t id)
{
    return raft_conf_is_voter(&r->conf, id);
}

static uint32_t quorum(const struct raft *r)
{
    return r->conf.voters_count / 2 + 1;
}

static bool infl_full(const struct raft *r, const struct raft__progress *pr)
{
    if (pr->infl_count >= r->cfg.max_inflight_msgs) {
        return true;
    }
    return r->cfg.max_inflight_bytes > 0 &&
           pr->infl_bytes >= r->cfg.max_inflight_bytes;
}

static void infl_add(struct raft *r, struct raft__progress *pr, uint64_t index,
                     uint64_t bytes)
{
    ASSERT(pr->infl_count < r->cfg.max_inflight_msgs);
    uint32_t slot =
        (pr->infl_start + pr->infl_count) % r->cfg.max_inflight_msgs;
    if (pr->infl_count > 0) {
        uint32_t prev =
            (slot + r->cfg.max_inflight_msgs - 1) % r->cfg.max_inflight_msgs;
        ASSERT(pr->infl[prev].index < index);
    }
    pr->infl[slot].index = index;
    pr->infl[slot].bytes = bytes;
    pr->infl_count++;
    pr->infl_bytes += bytes;
}

/* Free every in-flight append up to index (acknowledged). */
static void infl_free_le(struct raft *r, struct raft__progress *pr,
                         uint64_t index)
{
    while (pr->infl_count > 0 && pr->infl[pr->infl_start].index <= index) {
        ASSERT(pr->infl_bytes >= pr->infl[pr->infl_start].bytes);
        pr->infl_bytes -= pr->infl[pr->infl_start].bytes;
        pr->infl_start = (pr->infl_start + 1) % r->cfg.max_inflight_msgs;
        pr->infl_count--;
    }
    if (pr->infl_count == 0) {
        pr->infl_start = 0;
        ASSERT(pr->infl_bytes == 0);
    }
}

static void infl_reset(struct raft__progress *pr)
{
    pr->infl_start = 0;
    pr->infl_count = 0;
    pr->infl_bytes = 0;
}

static void pr_become_probe(struct raft__progress *pr)
{
    /* Coming back from a snapshot, start after it (etcd's BecomeProbe). */
    if (pr->state == RAFT_PR_SNAPSHOT) {
        uint64_t ps = pr->pending_snapshot;
        pr->next = (pr->match + 1 > ps + 1) ? pr->match + 1 : ps + 1;
    } else {
        pr->next = pr->match + 1;
    }
    pr->state = RAFT_PR_PROBE;
    pr->pending_snapshot = 0;
    pr->probe_sent = false;
    infl_reset(pr);
}

static void pr_become_replicate(struct raft__progress *pr)
{
    pr->state = RAFT_PR_REPLICATE;
    pr->next = pr->match + 1;
    pr->probe_sent = false;
    pr->pending_snapshot = 0;
    infl_reset(pr);
}

static bool pr_paused(const struct raft *r, const struct raft__progress *pr)
{
    switch (pr->state) {
    case RAFT_PR_PROBE:
        return pr->probe_sent;
    case RAFT_PR_REPLICATE:
        return infl_full(r, pr);
    default:
        return true;
    }
}

/* Accept an acknowledgement of index; false when it is stale. */
static bool pr_maybe_update(struct raft__progress *pr, uint64_t index)
{
    bool updated = false;
    if (pr->match < index) {
        pr->match = index;
        updated = true;
        pr->probe_sent = false;
    }
    if (pr->next < index + 1) {
        pr->next = index + 1;
    }
    return updated;
}

/* A rejection of the append after `rejected`; hint is the follower's guess
 * of the last index that may match. False when the rejection is stale. */
static bool pr_maybe_decr(struct raft__progress *pr, uint64_t rejected,
                          uint64_t hint)
{
    if (pr->state == RAFT_PR_REPLICATE) {
        if (rejected <= pr->match) {
            return false;
        }
        pr->next = pr->match + 1;
        return true;
    }
    if (pr->next == 0 || pr->next - 1 != rejected) {
        return false;
    }
    uint64_t n = rejected < hint + 1 ? rejected : hint + 1;
    pr->next = n > pr->match + 1 ? n : pr->match + 1;
    ASSERT(pr->next >= 1);
    pr->probe_sent = false;
    return true;
}

/* Make the progress slots match conf c: keep known peers, add new ones,
 * free the removed. Allocates first, so that on -ENOMEM nothing changed
 * (r fails, and its old conf and progress still agree). */
static bool sync_progress(struct raft *r, const struct raft_conf *c)
{
    uint64_t ids[2 * RAFT_MEMBERS_MAX];
    struct raft__inflight *infl[2 * RAFT_MEMBERS_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->voters_count; i++) {
        ids[n++] = c->voters[i];
    }
    for (uint32_t i = 0; i < c->learners_count; i++) {
        ids[n++] = c->learners[i];
    }
    ASSERT(n <= RAFT_MEMBERS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        infl[i] = NULL;
        if (pr_find(r, ids[i]) != NULL) {
            continue;
        }
        infl[i] = mem_calloc(r->cfg.max_inflight_msgs, sizeof(*infl[i]));
        if (infl[i] == NULL) {
            for (uint32_t k = 0; k < i; k++) {
                mem_free(infl[k]);
            }
            fail(r, -ENOMEM);
            return false;
        }
    }
    for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
        struct raft__progress *pr = &r->prs[i];
        if (pr->id != RAFT_NONE && !raft_conf_is_voter(c, pr->id) &&
            !raft_conf_is_learner(c, pr->id)) {
            mem_free(pr->infl);
            memset(pr, 0, sizeof(*pr));
        }
    }
    uint64_t next = raft__last_index(r) + 1;
    for (uint32_t i = 0; i < n; i++) {
        struct raft__progress *pr = pr_find(r, ids[i]);
        if (pr == NULL) {
            for (int k = 0; k < RAFT_MEMBERS_MAX && !pr; k++) {
                if (r->prs[k].id == RAFT_NONE) {
                    pr = &r->prs[k];
                }
            }
            ASSERT(pr != NULL); /* conf size <= RAFT_MEMBERS_MAX */
            memset(pr, 0, sizeof(*pr));
            pr->infl = infl[i];
            pr->id = ids[i];
            pr->next = next;
            pr->recent_active = true; /* give a new peer a fair start */
        }
        pr->learner = i >= c->voters_count;
    }
    return true;
}

/* ----------------------------------------------------------- messages */

static void msg_free(struct raft_msg *m)
{
    for (uint32_t i = 0; i < m->entries_count; i++) {
        raft__entry_free(&m->entries[i]);
    }
    mem_free(m->entries);
    raft__snapshot_free(&m->snapshot);
    memset(m, 0, sizeof(*m));
}

static void msgq_free(struct raft__msgq *q)
{
    for (size_t i = 0; i < q->count; i++) {
        msg_free(&q->v[i]);
    }
    mem_free(q->v);
    memset(q, 0, sizeof(*q));
}

static int msgq_push(struct raft__msgq *q, const struct raft_msg *m)
{
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        struct raft_msg *v = mem_realloc(q->v, cap * sizeof(*v));
        if (v == NULL) {
            return -ENOMEM;
        }
        q->v = v;
        q->cap = cap;
    }
    q->v[q->count++] = *m;
    return 0;
}

/* Messages that acknowledge durable state wait for the persist. A
 * heartbeat response acknowledges only the term, and when the term changed
 * in a batch every message of that batch waits anyway (raft_ready), so it
 * may leave at once: ReadIndex rounds then cost no fsync on followers. */
static bool needs_persist(uint8_t type)
{
    return type == RAFT_MSG_VOTE || type == RAFT_MSG_VOTE_RESP ||
           type == RAFT_MSG_APP_RESP;
}

static void refuse_forwarded(struct raft *r, uint64_t to,
                             const struct raft_entry *e, int err);

/* Queue m (the queue takes its entries and snapshot data). Forwards
 * (PROP, READINDEX, TRANSFER_LEADER) travel with term 0; everything else
 * carries our term unless the caller set one (vote replies, pre-votes). */
static void send(struct raft *r, struct raft_msg *m)
{
    ASSERT(m->to != RAFT_NONE && m->to != r->id);
    ASSERT(m->type != RAFT_MSG_NONE && m->type <= RAFT_MSG_TYPE_MAX);
    m->from = r->id;
    if (m->type == RAFT_MSG_PROP || m->type == RAFT_MSG_READINDEX ||
        m->type == RAFT_MSG_TRANSFER_LEADER) {
        m->term = 0;
    } else if (m->term == 0) {
        m->term = r->term;
    }
    struct raft__msgq *q = needs_persist(m->type) ? &r->out_after : &r->out;
    if (r->out.count + r->out_after.count >= r->cfg.max_queued_msgs) {
        /* The network may lose any message; so may we, rather than grow. */
        r->msgs_dropped++;
        msg_free(m);
        return;
    }
    if (msgq_push(q, m) < 0) {
        msg_free(m);
        fail(r, -ENOMEM);
        return;
    }
    memset(m, 0, sizeof(*m));
}

static void send_simple(struct raft *r, uint8_t type, uint64_t to,
                        uint64_t term, uint64_t index, uint8_t flags)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.to = to;
    m.term = term;
    m.index = index;
    m.flags = flags;
    send(r, &m);
}

/* -------------------------------------------------------- role changes */

static void randomize_timeout(struct raft *r)
{
    uint64_t e = r->cfg.election_ticks;
    r->randomized_timeout = (uint32_t)prng_range(&r->prng, e, 2 * e - 1);
    ASSERT(r->randomized_timeout >= r->cfg.election_ticks);
}

static void drop_reads(struct raft *r)
{
    r->reads_count = 0;
    r->read_round_sent = 0;
}

static void reset(struct raft *r, uint64_t term)
{
    if (r->term != term) {
        ASSERT(term > r->term);
        r->term = term;
        r->vote = RAFT_NONE;
    }
    r->leader = RAFT_NONE;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    randomize_timeout(r);
    r->lead_transferee = RAFT_NONE;
    r->uncommitted_bytes = 0;
    r->term_start_index = 0;
    drop_reads(r);
    uint64_t last = raft__last_index(r);
    for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
        struct raft__progress *pr = &r->prs[i];
        if (pr->id == RAFT_NONE) {
            continue;
        }
        pr->match = 0;
        pr->next = last + 1;
        pr->state = RAFT_PR_PROBE;
        pr->pending_snapshot = 0;
        pr->probe_sent = false;
        pr->recent_active = false;
        pr->heard = false;
        pr->heard_last = false;
        pr->read_ack = 0;
        pr->vote = 0;
        infl_reset(pr);
    }
}

static void become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
    reset(r, term);
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
}

static void become_precandidate(struct raft *r)
{
    ASSERT(r->role != RAFT_LEADER);
    /* Pre-vote changes neither term nor vote (thesis 9.6). */
    r->role = RAFT_PRECANDIDATE;
    r->leader = RAFT_NONE;
    for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
        r->prs[i].vote = 0;
    }
}

static void become_candidate(struct raft *r)
{
    ASSERT(r->role != RAFT_LEADER);
    reset(r, r->term + 1);
    r->vote = r->id;
    r->role = RAFT_CANDIDATE;
}

static void bcast_append(struct raft *r);

static void become_leader(struct raft *r)
{
    ASSERT(r->role == RAFT_CANDIDATE);
    reset(r, r->term);
    r->role = RAFT_LEADER;
    r->leader = r->id;
    for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
        if (r->prs[i].id != RAFT_NONE) {
            r->prs[i].recent_active = true;
        }
    }
    struct raft__progress *self = pr_find(r, r->id);
    if (self != NULL) {
        self->match = raft__persisted_index(r);
        pr_become_replicate(self);
    }
    /* The empty entry commits everything before it (thesis 3.6.2) and
     * marks the point after which ReadIndex and conf changes may run. */
    struct raft_entry e;
    memset(&e, 0, sizeof(e));
    e.index = raft__last_index(r) + 1;
    e.term = r->term;
    e.type = RAFT_ENTRY_EMPTY;
    if (raft__log_append_owned(r, &e) < 0) {
        fail(r, -ENOMEM);
        return;
    }
    r->term_start_index = e.index;
}

/* ----------------------------------------------------------- elections */

static bool promotable(const struct raft *r)
{
    return is_voter(r, r->id) && r->unstable_snap.meta.index == 0;
}

/* Count granted and rejected votes of voters. */
static void tally(struct raft *r, uint32_t *granted, uint32_t *rejected)
{
    *granted = 0;
    *rejected = 0;
    for (uint32_t i = 0; i < r->conf.voters_count; i++) {
        const struct raft__progress *pr = pr_find(r, r->conf.voters[i]);
        ASSERT(pr != NULL);
        *granted += pr->vote == 1;
        *rejected += pr->vote == 2;
    }
    ASSERT(*granted + *rejected <= r->conf.voters_count);
}

static void record_vote(struct raft *r, uint64_t from, bool granted)
{
    struct raft__progress *pr = pr_find(r, from);
    if (pr != NULL && pr->vote == 0) {
        pr->vote = granted ? 1 : 2;
    }
}

static void campaign(struct raft *r, bool pre, bool transfer)
{
    if (!promotable(r)) {
        return;
    }
    uint64_t term;
    uint8_t type;
    if (pre) {
        become_precandidate(r);
        term = r->term + 1;
        type = RAFT_MSG_PREVOTE;
    } else {
        become_candidate(r);
        term = r->term;
        type = RAFT_MSG_VOTE;
    }
    record_vote(r, r->id, true);
    uint32_t granted, rejected;
    tally(r, &granted, &rejected);
    if (granted >= quorum(r)) {
        /* A single voter wins at once. */
        if (pre) {
            campaign(r, false, transfer);
        } else {
            become_leader(r);
            bcast_append(r);
        }
        return;
    }
    uint64_t last = raft__last_index(r);
    uint64_t last_term = raft__last_term(r);
    for (uint32_t i = 0; i < r->conf.voters_count; i++) {
        uint64_t id = r->conf.voters[i];
        if (id == r->id) {
            continue;
        }
        struct raft_msg m;
        memset(&m, 0, sizeof(m));
        m.type = type;
        m.to = id;
        m.term = term;
        m.index = last;
        m.log_term = last_term;
        m.flags = transfer ? RAFT_MSG_F_TRANSFER : 0;
        send(r, &m);
    }
}

static void handle_vote_request(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE;
    bool can_vote = r->vote == m->from ||
                    (r->vote == RAFT_NONE && r->leader == RAFT_NONE) ||
                    (pre && m->term > r->term);
#if RAFT_PLANTED_BUG == 1
    /* Planted bug 1: forget the vote already cast in this term. */
    can_vote = true;
#endif
    uint64_t last = raft__last_index(r);
    uint64_t last_term = raft__last_term(r);
    bool up_to_date = m->log_term > last_term ||
                      (m->log_term == last_term && m->index >= last);
    uint8_t resp = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;
    if (can_vote && up_to_date) {
        /* Answer in the candidate's term so that it counts the vote; a real
         * vote is recorded (and persisted before the answer leaves). */
        send_simple(r, resp, m->from, m->term, 0, 0);
        if (!pre) {
            ASSERT(m->term == r->term);
            r->election_elapsed = 0;
            r->vote = m->from;
        }
    } else {
        send_simple(r, resp, m->from, r->term, 0, RAFT_MSG_F_REJECT);
    }
}

static void handle_vote_response(struct raft *r, const struct raft_msg *m)
{
    bool pre = r->role == RAFT_PRECANDIDATE;
    if ((pre && m->type != RAFT_MSG_PREVOTE_RESP) ||
        (!pre && m->type != RAFT_MSG_VOTE_RESP)) {
        return;
    }
    record_vote(r, m->from, (m->flags & RAFT_MSG_F_REJECT) == 0);
    uint32_t granted, rejected;
    tally(r, &granted, &rejected);
    if (granted >= quorum(r)) {
        if (pre) {
            campaign(r, false, false);
        } else {
            become_leader(r);
            bcast_append(r);
        }
    } else if (rejected >= quorum(r)) {
        become_follower(r, r->term, RAFT_NONE);
    }
}

/* -------------------------------------------------------- replication */

static void send_snapshot(struct raft *r, struct raft__progress *pr)
{
    if (!pr->recent_active) {
        return; /* no point streaming a snapshot to a silent peer */
    }
    struct raft_snapshot s;
    memset(&s, 0, sizeof(s));
    int rc = r->st->snapshot(r->st->ctx, &s);
    if (rc < 0) {
        fail(r, rc);
        return;
    }
    ASSERT(s.meta.index > 0); /* storage compacted without a snapshot */
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_SNAP;
    m.to = pr->id;
    if (raft__snapshot_copy(&m.snapshot, &s) < 0) {
        fail(r, -ENOMEM);
        return;
    }
    pr->state = RAFT_PR_SNAPSHOT;
    pr->pending_snapshot = s.meta.index;
    pr->probe_sent = false;
    infl_reset(pr);
    send(r, &m);
}

static bool maybe_send_append(struct raft *r, struct raft__progress *pr,
                              bool send_if_empty)
{
    ASSERT(r->role == RAFT_LEADER);
    ASSERT(pr->id != r->id);
    if (pr_paused(r, pr)) {
        return false;
    }
    uint64_t prev = pr->next - 1;
    uint64_t prev_term = 0;
    int rc = raft__term(r, prev, &prev_term);
    struct raft__entries ents;
    memset(&ents, 0, sizeof(ents));
    uint64_t last = raft__last_index(r);
    if (rc == 0 && pr->next <= last) {
        rc = raft__slice(r, pr->next, last + 1, r->cfg.max_msg_bytes, &ents);
    }
    if (rc == ERR_COMPACTED) {
        raft__ents_free(&ents);
        send_snapshot(r, pr);
        return false;
    }
    if (rc == ERR_BUSY) {
        /* The storage is reading these back; raft_entries_available (or
         * the next heartbeat answer) tries again. */
        raft__ents_free(&ents);
        r->append_busy++;
        return false;
    }
    if (rc < 0 || r->err) {
        raft__ents_free(&ents);
        fail(r, rc < 0 ? rc : r->err);
        return false;
    }
    if (ents.count == 0 && !send_if_empty) {
        return false;
    }
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_APP;
    m.to = pr->id;
    m.index = prev;
    m.log_term = prev_term;
    m.commit = r->commit;
    m.entries = ents.v;
    m.entries_count = (uint32_t)ents.count;
    if (ents.count > 0) {
        uint64_t bytes = 0;
        for (size_t i = 0; i < ents.count; i++) {
            bytes += ents.v[i].len;
        }
        uint64_t last_sent = ents.v[ents.count - 1].index;
        if (pr->state == RAFT_PR_REPLICATE) {
            pr->next = last_sent + 1;
            infl_add(r, pr, last_sent, bytes);
        }
    }
    if (pr->state == RAFT_PR_PROBE) {
        pr->probe_sent = true;
    }
    send(r, &m);
    return true;
}

void raft_entries_available(struct raft *r)
{
    if (r->err || r->role != RAFT_LEADER) {
        return;
    }
    uint64_t last = raft__last_index(r);
    for (int i = 0; i < RAFT_MEMBERS_MAX && !r->err; i++) {
        struct raft__progress *pr = &r->prs[i];
        if (pr->id != RAFT_NONE && pr->id != r->id && pr->next <= last) {
            maybe_send_append(r, pr, false);
        }
    }
}

static void bcast_append(struct raft *r)
{
    for (int i = 0; i < RAFT_MEMBERS_MAX && !r->err; i++) {
        struct raft__progress *pr = &r->prs[i];
        if (pr->id != RAFT_NONE && pr->id != r->id) {
            maybe_send_append(r, pr, true);
        }
    }
}

static void bcast_heartbeat(struct raft *r, uint64_t ctx)
{
    for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
        struct raft__progress *pr = &r->prs[i];
        if (pr->id == RAFT_NONE || pr->id == r->id) {
            continue;
        }
        struct raft_msg m;
        memset(&m, 0, sizeof(m));
        m.type = RAFT_MSG_HEARTBEAT;
        m.to = pr->id;
        /* Never tell a follower to commit past what it is known to hold. */
        m.commit = pr->match < r->commit ? pr->match : r->commit;
        m.ctx = ctx;
        send(r, &m);
    }
}

/* Leader: advance commit to the highest index a quorum of voters holds
 * durably, if that entry is of the current term (thesis figure 3.7). */
static bool maybe_commit(struct raft *r)
{
    uint64_t m[RAFT_MEMBERS_MAX + 1];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->conf.voters_count; i++) {
        const struct raft__progress *pr = pr_find(r, r->conf.voters[i]);
        ASSERT(pr != NULL);
        m[n++] = pr->match;
#if RAFT_PLANTED_BUG == 2
        /* Planted bug 2: the leader counts itself twice. */
        if (pr->id == r->id) {
            m[n++] = pr->match;
        }
#endif
    }
    if (n == 0) {
        return false;
    }
    /* Sort descending (n is tiny). */
    for (uint32_t i = 1; i < n; i++) {
        for (uint32_t j = i; j > 0 && m[j - 1] < m[j]; j--) {
            uint64_t t = m[j];
            m[j] = m[j - 1];
            m[j - 1] = t;
        }
    }
    uint64_t idx = m[quorum(r) - 1];
    if (idx <= r->commit) {
        return false;
    }
    if (raft__term_or0(r, idx) != r->term) {
        return false; /* older terms commit only indirectly (figure 3.7) */
    }
    ASSERT(idx <= raft__last_index(r));
    r->commit = idx;
    return true;
}

/* After the leader's commit moved. */
static void leader_committed(struct raft *r)
{
    ASSERT(r->role == RAFT_LEADER);
    if (r->conf_index <= r->commit && !is_voter(r, r->id)) {
        /* Our removal is committed: stop leading (thesis 4.2.2). */
        become_follower(r, r->term, RAFT_NONE);
        return;
    }
    reads_on_commit(r);
    bcast_append(r);
}

static void set_conf(struct raft *r, const struct raft_conf *c, uint64_t index)
{
    ASSERT(raft__conf_valid(c));
    if (!sync_progress(r, c)) {
        return;
    }
    r->conf = *c;
    r->conf_index = index;
    if (r->role == RAFT_LEADER && r->lead_transferee != RAFT_NONE &&
        !is_voter(r, r->lead_transferee)) {
        r->lead_transferee = RAFT_NONE;
    }
}

/* After entries were appended or the tail truncated at `from`: make
 * r->conf the latest configuration in the log (on-append rule). */
static void refresh_conf(struct raft *r, const struct raft_entry *ents,
                         size_t count, uint64_t from)
{
    for (size_t i = count; i-- > 0;) {
        if (ents[i].type == RAFT_ENTRY_CONF) {
            struct raft_conf_change cc;
            int rc = raft__conf_entry_decode(&ents[i], &cc);
            ASSERT(rc == 0); /* validated on receipt */
            set_conf(r, &cc.conf, ents[i].index);
            return;
        }
    }
    if (r->conf_index >= from) {
        struct raft_conf c;
        uint64_t ci = 0;
        if (raft__conf_at(r, from - 1, &c, &ci) == 0) {
            set_conf(r, &c, ci);
        }
    }
}

/* ------------------------------------------------------------ followers */

static void commit_to(struct raft *r, uint64_t commit)
{
    if (commit > r->commit) {
        ASSERT(commit <= raft__last_index(r));
        r->commit = commit;
    }
}

static void handle_append(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg resp;
    memset(&resp, 0, sizeof(resp));
    resp.type = RAFT_MSG_APP_RESP;
    resp.to = m->from;
    if (m->index < r->commit) {
        resp.index = r->commit;
        send(r, &resp);
        return;
    }
    if (raft__match_term(r, m->index, m->log_term)) {
        uint64_t last_new = m->index + m->entries_count;
        /* Skip entries we already hold; truncate at the first conflict. */
        uint32_t k = 0;
        for (; k < m->entries_count; k++) {
            if (!raft__match_term(r, m->entries[k].index, m->entries[k].term)) {
                break;
            }
        }
        if (k < m->entries_count) {
            uint64_t from = m->entries[k].index;
            ASSERT(from > r->commit); /* never truncate committed entries */
            if (raft__log_truncate_append(r, m->entries + k,
                                          m->entries_count - k) < 0) {
                return;
            }
            refresh_conf(r, m->entries + k, m->entries_count - k, from);
        }
        commit_to(r, m->commit < last_new ? m->commit : last_new);
        resp.index = last_new;
        send(r, &resp);
        return;
    }
    /* Reject with a hint: the last index at or below the probe whose term
     * is at most the leader's term there. The leader can skip a whole term
     * per round trip instead of one entry (etcd's fast backtracking). */
    uint64_t hint =
        m->index < raft__last_index(r) ? m->index : raft__last_index(r);
    hint = raft__find_conflict_by_term(r, hint, m->log_term);
    resp.index = m->index;
    resp.flags = RAFT_MSG_F_REJECT;
    resp.reject_hint = hint;
    resp.log_term = raft__term_or0(r, hint);
    send(r, &resp);
}

static void handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
    uint64_t last = raft__last_index(r);
    /* A correct leader never sends more than our match; clamp anyway. */
    commit_to(r, m->commit < last ? m->commit : last);
    struct raft_msg resp;
    memset(&resp, 0, sizeof(resp));
    resp.type = RAFT_MSG_HEARTBEAT_RESP;
    resp.to = m->from;
    resp.ctx = m->ctx;
    send(r, &resp);
}

static void handle_snapshot(struct raft *r, const struct raft_msg *m)
{
    const struct raft_snapshot_meta *s = &m->snapshot.meta;
    struct raft_msg resp;
    memset(&resp, 0, sizeof(resp));
    resp.type = RAFT_MSG_APP_RESP;
    resp.to = m->from;
    if (s->index <= r->commit) {
        resp.index = r->commit;
        send(r, &resp);
        return;
    }
    if (raft__match_term(r, s->index, s->term)) {
        /* We already hold that prefix: just learn it is committed. */
        commit_to(r, s->index);
        resp.index = r->commit;
        send(r, &resp);
        return;
    }
    if (raft__log_restore(r, &m->snapshot) < 0) {
        return;
    }
    r->commit = s->index;
    set_conf(r, &s->conf, s->index);
    resp.index = raft__last_index(r);
    ASSERT(resp.index == s->index);
    send(r, &resp);
}

/* ------------------------------------------------------------ ReadIndex */

static void read_release(struct raft *r, const struct raft__read *rd)
{
    if (rd->from == r->id) {
        ASSERT(r->out_reads_count < r->cfg.max_pending_reads);
        r->out_reads[r->out_reads_count].ctx = rd->ctx;
        r->out_reads[r->out_reads_count].index = rd->index;
        r->out_reads_count++;
        return;
    }
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_READINDEX_RESP;
    m.to = rd->from;
    m.ctx = rd->ctx;
    m.index = rd->index;
    send(r, &m);
}

static bool committed_in_term(const struct raft *r)
{
    return r->term_start_index > 0 && r->commit >= r->term_start_index;
}

static uint32_t read_acks(struct raft *r, uint64_t round)
{
    uint32_t acks = 0;
    for (uint32_t i = 0; i < r->conf.voters_count; i++) {
        const struct raft__progress *pr = pr_find(r, r->conf.voters[i]);
        ASSERT(pr != NULL);
        acks += pr->id == r->id || pr->read_ack >= round;
    }
    return acks;
}

/* Start a heartbeat round for the reads waiting on the next round, unless
 * one is in flight (reads arriving meanwhile share the following round). */
static void read_round_maybe_start(struct raft *r);

static void read_round_check(struct raft *r)
{
    for (int guard = 0; r->read_round_sent > 0; guard++) {
        ASSERT(guard < 2);
        if (read_acks(r, r->read_round_sent) < quorum(r)) {
            return;
        }
        uint32_t keep = 0;
        for (uint32_t i = 0; i < r->reads_count; i++) {
            struct raft__read *rd = &r->reads[i];
            if (rd->round > 0 && rd->round <= r->read_round_sent) {
                read_release(r, rd);
            } else {
                r->reads[keep++] = *rd;
            }
        }
        r->reads_count = keep;
        r->read_round_sent = 0;
        read_round_maybe_start(r);
    }
}

static void read_round_maybe_start(struct raft *r)
{
    if (r->read_round_sent > 0 || !committed_in_term(r)) {
        return;
    }
    bool any = false;
    for (uint32_t i = 0; i < r->reads_count && !any; i++) {
        any = r->reads[i].round == r->read_round_next;
    }
    if (!any) {
        return;
    }
    r->read_round_sent = r->read_round_next++;
    bcast_heartbeat(r, r->read_round_sent);
    /* A single voter confirms its own round at once; otherwise wait for
     * the heartbeat responses. */
    if (read_acks(r, r->read_round_sent) >= quorum(r)) {
        read_round_check(r);
    }
}

/* The leader's first commit in its term releases held reads. */
static void reads_on_commit(struct raft *r)
{
    if (!committed_in_term(r)) {
        return;
    }
    for (uint32_t i = 0; i < r->reads_count; i++) {
        if (r->reads[i].round == 0) {
            r->reads[i].index = r->commit;
            r->reads[i].round = r->read_round_next;
        }
    }
    read_round_maybe_start(r);
}

static int leader_read(struct raft *r, uint64_t from, uint64_t ctx)
{
    ASSERT(r->role == RAFT_LEADER);
    if (r->reads_count >= r->cfg.max_pending_reads ||
        (from == r->id &&
         r->out_reads_count + r->reads_count >= r->cfg.max_pending_reads)) {
        return ERR_BUSY;
    }
    struct raft__read *rd = &r->reads[r->reads_count++];
    rd->from = from;
    rd->ctx = ctx;
    /* The commit index now is a safe read point once we know we still
     * lead (thesis 6.4); before our first commit it is not yet known. */
    rd->index = r->commit;
    rd->round = committed_in_term(r) ? r->read_round_next : 0;
    /* The round starts in raft_ready(), so that every read asked for in
     * one pass of the driver's loop shares one heartbeat round. */
    return 0;
}

/* ------------------------------------------------------------- leaders */

static void send_timeout_now(struct raft *r, uint64_t to)
{
    send_simple(r, RAFT_MSG_TIMEOUT_NOW, to, 0, 0, 0);
}

static int leader_transfer(struct raft *r, uint64_t to)
{
    ASSERT(r->role == RAFT_LEADER);
    if (to == r->id) {
        return 0; /* already leading */
    }
    struct raft__progress *pr = pr_find(r, to);
    if (pr == NULL || pr->learner) {
        return ERR_BAD_LEADER_TRANSFEREE;
    }
    if (r->lead_transferee == to) {
        return 0;
    }
    r->lead_transferee = to;
    r->election_elapsed = 0; /* the transfer's deadline */
    if (pr->match == raft__last_index(r)) {
        send_timeout_now(r, to);
    } else {
        maybe_send_append(r, pr, true);
    }
    return 0;
}

static void handle_app_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft__progress *pr = pr_find(r, m->from);
    if (pr == NULL) {
        return;
    }
    pr->recent_active = true;
    pr->heard = true;
    if (m->flags & RAFT_MSG_F_REJECT) {
        uint64_t hint = m->reject_hint;
        if (m->log_term > 0) {
            hint = raft__find_conflict_by_term(r, hint, m->log_term);
        }
        if (pr_maybe_decr(pr, m->index, hint)) {
            if (pr->state == RAFT_PR_REPLICATE) {
                pr_become_probe(pr);
            }
            maybe_send_append(r, pr, true);
        }
        return;
    }
    bool was_paused = pr_paused(r, pr);
    if (m->index > raft__last_index(r) || !pr_maybe_update(pr, m->index)) {
        return;
    }
    if (pr->state == RAFT_PR_PROBE) {
        pr_become_replicate(pr);
    } else if (pr->state == RAFT_PR_SNAPSHOT &&
               pr->match + 1 >= raft__first_index(r)) {
        pr_become_probe(pr);
        pr_become_replicate(pr);
    } else if (pr->state == RAFT_PR_REPLICATE) {
        infl_free_le(r, pr, m->index);
    }
    if (maybe_commit(r)) {
        leader_committed(r);
        if (r->role != RAFT_LEADER) {
            return;
        }
    } else if (was_paused) {
        maybe_send_append(r, pr, true);
    }
    for (int i = 0; i < SEND_LOOP_MAX && maybe_send_append(r, pr, false); i++) {
    }
    if (m->from == r->lead_transferee && pr->match == raft__last_index(r)) {
        send_timeout_now(r, m->from);
    }
}

static void handle_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft__progress *pr = pr_find(r, m->from);
    if (pr == NULL) {
        return;
    }
    pr->recent_active = true;
    pr->heard = true;
    pr->probe_sent = false;
    if (pr->state == RAFT_PR_REPLICATE && infl_full(r, pr) &&
        pr->infl_count > 0) {
        /* Free one slot so a lost append cannot stall the pipe forever. */
        infl_free_le(r, pr, pr->infl[pr->infl_start].index);
    }
    if (pr->match < raft__last_index(r)) {
        maybe_send_append(r, pr, true);
    }
    if (m->ctx > pr->read_ack) {
        pr->read_ack = m->ctx;
        read_round_check(r);
    }
}

static int propose_conf(struct raft *r, const struct raft_conf_change *cc,
                        uint64_t *index);
static int leader_append(struct raft *r, uint8_t type, const void *data,
                         size_t len, uint64_t *index);

static void leader_step(struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APP_RESP:
        handle_app_resp(r, m);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        handle_heartbeat_resp(r, m);
        break;
    case RAFT_MSG_PROP:
        for (uint32_t i = 0; i < m->entries_count && !r->err; i++) {
            const struct raft_entry *e = &m->entries[i];
            if (e->type == RAFT_ENTRY_CONF) {
                struct raft_conf_change cc;
                if (raft_conf_change_decode(e->data, e->len, &cc) == 0) {
                    int rc = propose_conf(r, &cc, NULL);
                    if (rc < 0 && r->err == 0) {
                        refuse_forwarded(r, m->from, e, rc);
                    }
                }
            } else {
                (void)leader_append(r, e->type, e->data, e->len, NULL);
            }
        }
        break;
    case RAFT_MSG_READINDEX:
        (void)leader_read(r, m->from, m->ctx);
        break;
    case RAFT_MSG_TRANSFER_LEADER:
        (void)leader_transfer(r, m->index);
        break;
    default:
        break; /* nothing else means anything to a leader in its term */
    }
}

static void forward(struct raft *r, const struct raft_msg *m)
{
    if (r->leader == RAFT_NONE || r->leader == r->id) {
        return;
    }
    struct raft_msg f = *m;
    f.to = r->leader;
    f.entries = NULL;
    f.entries_count = 0;
    memset(&f.snapshot, 0, sizeof(f.snapshot));
    if (m->entries_count > 0) {
        struct raft__entries v;
        memset(&v, 0, sizeof(v));
        for (uint32_t i = 0; i < m->entries_count; i++) {
            if (raft__ents_push(&v, &m->entries[i], true) < 0) {
                raft__ents_free(&v);
                return; /* a dropped forward is a lost message */
            }
        }
        f.entries = v.v;
        f.entries_count = (uint32_t)v.count;
    }
    send(r, &f);
}

static void follower_step(struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APP:
        r->election_elapsed = 0;
        r->leader = m->from;
        handle_append(r, m);
        break;
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->leader = m->from;
        handle_heartbeat(r, m);
        break;
    case RAFT_MSG_SNAP:
        r->election_elapsed = 0;
        r->leader = m->from;
        handle_snapshot(r, m);
        break;
    case RAFT_MSG_PROP:
        if (r->cfg.forward_proposals) {
            forward(r, m);
        }
        break;
    case RAFT_MSG_TRANSFER_LEADER:
        forward(r, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        /* The leader picked us: campaign now, skipping pre-vote, and tell
         * voters to ignore their lease (thesis 3.10). */
        campaign(r, false, true);
        break;
    case RAFT_MSG_READINDEX_RESP:
        if (r->out_reads_count < r->cfg.max_pending_reads) {
            r->out_reads[r->out_reads_count].ctx = m->ctx;
            r->out_reads[r->out_reads_count].index = m->index;
            r->out_reads_count++;
        }
        break;
    default:
        break;
    }
}

static void candidate_step(struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APP:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_SNAP:
        /* Someone won this term. */
        become_follower(r, m->term, m->from);
        follower_step(r, m);
        break;
    case RAFT_MSG_PREVOTE_RESP:
    case RAFT_MSG_VOTE_RESP:
        handle_vote_response(r, m);
        break;
    default:
        break;
    }
}

#ifdef CAIRN_DEBUG
/* Whole-state check after each input (debug builds; O(unstable + members)). */
bool raft__invariant_ok(struct raft *r)
{
    if (r->err) {
        return true; /* a failed core may be half-updated */
    }
    uint64_t last = raft__last_index(r);
    for (size_t i = 0; i < r->unstable.count; i++) {
        const struct raft_entry *e = &r->unstable.v[i];
        if (e->index != r->unstable_offset + i || e->term > r->term ||
            (i > 0 && e->term < r->unstable.v[i - 1].term)) {
            return false;
        }
    }
    if (r->unstable_in_progress < r->unstable_offset ||
        r->unstable_in_progress > last + 1 || r->commit > last ||
        r->applying > r->commit || r->applied > r->applying) {
        return false;
    }
    for (uint32_t i = 0; i < r->conf.voters_count; i++) {
        if (pr_find(r, r->conf.voters[i]) == NULL) {
            return false;
        }
    }
    for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
        const struct raft__progress *pr = &r->prs[i];
        if (pr->id == RAFT_NONE) {
            continue;
        }
        if (r->role == RAFT_LEADER &&
            (pr->next == 0 || pr->next > last + 1 || pr->match > last ||
             pr->infl_count > r->cfg.max_inflight_msgs)) {
            return false;
        }
    }
    return r->role != RAFT_LEADER || r->leader == r->id;
}
#endif

/* ---------------------------------------------------------- step, tick */

static bool entry_ok(const struct raft *r, const struct raft_entry *e)
{
    if (e->type > RAFT_ENTRY_TYPE_MAX || e->len > r->cfg.max_entry_bytes ||
        (e->len > 0 && e->data == NULL)) {
        return false;
    }
    if (e->type == RAFT_ENTRY_CONF) {
        struct raft_conf_change cc;
        return raft_conf_change_decode(e->data, e->len, &cc) == 0;
    }
    return true;
}

/* Peer input is checked here, so that nothing a peer sends can reach an
 * assertion further in. A message that fails is dropped like a lost one. */
static bool msg_ok(const struct raft *r, const struct raft_msg *m)
{
    if (m->type == RAFT_MSG_NONE || m->type > RAFT_MSG_TYPE_MAX ||
        m->from == RAFT_NONE || m->from == r->id || m->to != r->id) {
        return false;
    }
    /* No real term gets near this; adopting one would let a later
     * campaign's term + 1 wrap to 0. */
    if (m->term > UINT64_MAX / 2) {
        return false;
    }
    if (m->entries_count > RAFT_CODEC_ENTRIES_MAX ||
        (m->entries_count > 0 && m->entries == NULL) ||
        (m->entries_count > 0 && m->type != RAFT_MSG_APP &&
         m->type != RAFT_MSG_PROP && m->type != RAFT_MSG_PROP_REFUSED)) {
        return false;
    }
    for (uint32_t i = 0; i < m->entries_count; i++) {
        if (!entry_ok(r, &m->entries[i])) {
            return false;
        }
    }
    if (m->type == RAFT_MSG_APP) {
        if (m->log_term > m->term || m->index > UINT64_MAX / 2) {
            return false;
        }
        uint64_t prev_term = m->log_term;
        for (uint32_t i = 0; i < m->entries_count; i++) {
            const struct raft_entry *e = &m->entries[i];
            if (e->index != m->index + 1 + i || e->term < prev_term ||
                e->term > m->term) {
                return false;
            }
            prev_term = e->term;
        }
    }
    if (m->type == RAFT_MSG_SNAP) {
        const struct raft_snapshot_meta *s = &m->snapshot.meta;
        /* An index near the top would wrap the log's next index. */
        if (s->index == 0 || s->index > UINT64_MAX / 2 || s->term == 0 ||
            s->term > m->term || !raft__conf_valid(&s->conf) ||
            (m->snapshot.data_len > 0 && m->snapshot.data == NULL)) {
            return false;
        }
    }
    if ((m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) &&
        m->log_term > m->term) {
        return false;
    }
    return true;
}

static bool is_forward(uint8_t type)
{
    return type == RAFT_MSG_PROP || type == RAFT_MSG_READINDEX ||
           type == RAFT_MSG_TRANSFER_LEADER;
}

/* Term rules common to every role (thesis figure 3.1, plus the pre-vote and
 * lease rules of 9.6). Returns false when the message is done with. */
static bool step_term(struct raft *r, const struct raft_msg *m)
{
    if (m->term == 0) {
        return is_forward(m->type);
    }
    if (m->term > r->term) {
        if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
            bool in_lease = r->cfg.check_quorum && r->leader != RAFT_NONE &&
                            r->election_elapsed < r->cfg.election_ticks;
            if (in_lease && !(m->flags & RAFT_MSG_F_TRANSFER)) {
                return false; /* we heard from a leader recently */
            }
        }
        if (m->type == RAFT_MSG_PREVOTE) {
            return true; /* a pre-vote never changes our term */
        }
        if (m->type == RAFT_MSG_PREVOTE_RESP &&
            !(m->flags & RAFT_MSG_F_REJECT)) {
            return true; /* granted in the term we would run in */
        }
        bool from_leader = m->type == RAFT_MSG_APP ||
                           m->type == RAFT_MSG_HEARTBEAT ||
                           m->type == RAFT_MSG_SNAP;
        become_follower(r, m->term, from_leader ? m->from : RAFT_NONE);
        return true;
    }
    if (m->term < r->term) {
        if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
            (m->type == RAFT_MSG_APP || m->type == RAFT_MSG_HEARTBEAT)) {
            /* A stale leader (e.g. back from a partition) learns our term
             * from this and steps down. */
            send_simple(r, RAFT_MSG_APP_RESP, m->from, 0, 0, 0);
        } else if (m->type == RAFT_MSG_PREVOTE) {
            send_simple(r, RAFT_MSG_PREVOTE_RESP, m->from, 0, 0,
                        RAFT_MSG_F_REJECT);
        }
        return false;
    }
    return true;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
    if (r->err) {
        return r->err;
    }
    if (!msg_ok(r, m) || !step_term(r, m)) {
        return r->err;
    }
    if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
        handle_vote_request(r, m);
        return r->err;
    }
    switch (r->role) {
    case RAFT_LEADER:
        leader_step(r, m);
        break;
    case RAFT_FOLLOWER:
        follower_step(r, m);
        break;
    default:
        candidate_step(r, m);
        break;
    }
    DASSERT(raft__invariant_ok(r));
    return r->err;
}

static void tick_leader(struct raft *r)
{
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (r->election_elapsed >= r->cfg.election_ticks) {
        r->election_elapsed = 0;
        for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
            r->prs[i].heard_last = r->prs[i].heard;
            r->prs[i].heard = false;
        }
        if (r->cfg.check_quorum) {
            uint32_t active = 0;
            for (uint32_t i = 0; i < r->conf.voters_count; i++) {
                struct raft__progress *pr = pr_find(r, r->conf.voters[i]);
                ASSERT(pr != NULL);
                active += pr->id == r->id || pr->recent_active;
            }
            for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
                r->prs[i].recent_active = false;
            }
            if (active < quorum(r)) {
                /* We cannot reach a quorum: stop claiming to lead. */
                become_follower(r, r->term, RAFT_NONE);
                return;
            }
        }
        r->lead_transferee = RAFT_NONE; /* a transfer ran out of time */
    }
    if (r->heartbeat_elapsed >= r->cfg.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        bcast_heartbeat(r, r->read_round_sent);
    }
}

int raft_tick(struct raft *r)
{
    if (r->err) {
        return r->err;
    }
    if (r->role == RAFT_LEADER) {
        tick_leader(r);
        return r->err;
    }
    r->election_elapsed++;
    if (promotable(r) && r->election_elapsed >= r->randomized_timeout) {
        r->election_elapsed = 0;
        randomize_timeout(r);
        campaign(r, r->cfg.pre_vote, false);
    }
    DASSERT(raft__invariant_ok(r));
    return r->err;
}

int raft_campaign(struct raft *r)
{
    if (r->err) {
        return r->err;
    }
    if (r->role != RAFT_LEADER) {
        campaign(r, r->cfg.pre_vote, false);
    }
    return r->err;
}

/* ------------------------------------------------------------ proposals */

static int leader_append(struct raft *r, uint8_t type, const void *data,
                         size_t len, uint64_t *index)
{
    ASSERT(r->role == RAFT_LEADER);
    if (r->lead_transferee != RAFT_NONE) {
        return ERR_PROPOSAL_DROPPED;
    }
    if (len > r->cfg.max_entry_bytes) {
        return ERR_REQUEST_TOO_LARGE;
    }
    /* Always admit one entry, however big, when nothing is uncommitted. */
    if (r->uncommitted_bytes > 0 &&
        r->uncommitted_bytes + len > r->cfg.max_uncommitted_bytes) {
        return ERR_BUSY;
    }
    struct raft_entry e;
    memset(&e, 0, sizeof(e));
    if (len > 0) {
        e.data = mem_dup(data, len);
        if (e.data == NULL) {
            return -ENOMEM;
        }
    }
    e.len = (uint32_t)len;
    e.type = type;
    e.term = r->term;
    e.index = raft__last_index(r) + 1;
    if (raft__log_append_owned(r, &e) < 0) {
        mem_free(e.data);
        return -ENOMEM;
    }
    r->uncommitted_bytes += len;
    if (index != NULL) {
        *index = e.index;
    }
    for (int i = 0; i < RAFT_MEMBERS_MAX && !r->err; i++) {
        struct raft__progress *pr = &r->prs[i];
        if (pr->id != RAFT_NONE && pr->id != r->id) {
            maybe_send_append(r, pr, false);
        }
    }
    return r->err;
}

/* Tell the member that forwarded configuration change e why it was not
 * appended (RAFT_MSG_PROP_REFUSED), so that its caller hears the error
 * instead of waiting out its timeout. Best effort, as every message. */
static void refuse_forwarded(struct raft *r, uint64_t to,
                             const struct raft_entry *e, int err)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_PROP_REFUSED;
    m.to = to;
    m.reject_hint = (uint64_t)(-(int64_t)err); /* err < 0 */
    m.entries = mem_calloc(1, sizeof(*m.entries));
    if (m.entries == NULL) {
        return;
    }
    if (e->len > 0) {
        m.entries[0].data = mem_dup(e->data, e->len);
        if (m.entries[0].data == NULL) {
            mem_free(m.entries);
            return;
        }
    }
    m.entries[0].len = e->len;
    m.entries[0].type = e->type;
    m.entries_count = 1;
    send(r, &m);
}

static int forward_entry(struct raft *r, uint8_t type, const void *data,
                         size_t len)
{
    if (r->leader == RAFT_NONE) {
        return ERR_NO_LEADER;
    }
    if (!r->cfg.forward_proposals) {
        return ERR_NOT_LEADER;
    }
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_PROP;
    m.to = r->leader;
    m.entries = mem_calloc(1, sizeof(*m.entries));
    if (m.entries == NULL) {
        return -ENOMEM;
    }
    if (len > 0) {
        m.entries[0].data = mem_dup(data, len);
        if (m.entries[0].data == NULL) {
            mem_free(m.entries);
            return -ENOMEM;
        }
    }
    m.entries[0].len = (uint32_t)len;
    m.entries[0].type = type;
    m.entries_count = 1;
    send(r, &m);
    return r->err;
}

int raft_propose(struct raft *r, uint8_t type, const void *data, size_t len,
                 uint64_t *index)
{
    if (r->err) {
        return r->err;
    }
    if (index != NULL) {
        *index = 0;
    }
    if ((type != RAFT_ENTRY_NORMAL && type != RAFT_ENTRY_EMPTY) ||
        (len > 0 && data == NULL)) {
        return ERR_INVALID;
    }
    if (len > r->cfg.max_entry_bytes) {
        return ERR_REQUEST_TOO_LARGE;
    }
    if (r->role == RAFT_LEADER) {
        return leader_append(r, type, data, len, index);
    }
    return forward_entry(r, type, data, len);
}

static int conf_add(uint64_t *ids, uint32_t *count, const struct raft_conf *c,
                    uint64_t id)
{
    if (c->voters_count + c->learners_count >= RAFT_MEMBERS_MAX) {
        return ERR_LIMIT;
    }
    ids[(*count)++] = id;
    return 0;
}

static void conf_del(uint64_t *ids, uint32_t *count, uint64_t id)
{
    for (uint32_t i = 0; i < *count; i++) {
        if (ids[i] == id) {
            ids[i] = ids[--(*count)];
            return;
        }
    }
}

/* The configuration that results from cc, or an error. */
static int conf_apply(struct raft *r, const struct raft_conf_change *cc,
                      struct raft_conf *c)
{
    *c = r->conf;
    bool voter = raft_conf_is_voter(c, cc->node_id);
    bool learner = raft_conf_is_learner(c, cc->node_id);
    switch (cc->type) {
    case RAFT_CC_ADD_VOTER:
        if (voter) {
            return ERR_MEMBER_EXISTS;
        }
        if (learner) {
            conf_del(c->learners, &c->learners_count, cc->node_id);
        }
        return conf_add(c->voters, &c->voters_count, c, cc->node_id);
    case RAFT_CC_ADD_LEARNER:
        if (voter || learner) {
            return ERR_MEMBER_EXISTS;
        }
        return conf_add(c->learners, &c->learners_count, c, cc->node_id);
    case RAFT_CC_REMOVE:
        if (voter) {
            if (c->voters_count == 1) {
                return ERR_INVALID; /* nobody would be left to decide */
            }
            conf_del(c->voters, &c->voters_count, cc->node_id);
        } else if (learner) {
            conf_del(c->learners, &c->learners_count, cc->node_id);
        } else {
            return ERR_MEMBER_NOT_FOUND;
        }
        return 0;
    case RAFT_CC_PROMOTE: {
        if (!learner) {
            return voter ? ERR_NOT_LEARNER : ERR_MEMBER_NOT_FOUND;
        }
        /* etcd's rule: a learner joins the voters only when it holds at
         * least 90% of the leader's log, so it cannot stall commits. */
        const struct raft__progress *pr = pr_find(r, cc->node_id);
        ASSERT(pr != NULL);
        if (pr->match * 10 < raft__last_index(r) * 9) {
            return ERR_LEARNER_NOT_READY;
        }
        conf_del(c->learners, &c->learners_count, cc->node_id);
        return conf_add(c->voters, &c->voters_count, c, cc->node_id);
    }
    default:
        return ERR_INVALID;
    }
}

/* Whether the leader heard from member id lately (itself: always). */
static bool reached(struct raft *r, uint64_t id)
{
    const struct raft__progress *pr = pr_find(r, id);
    return id == r->id || (pr != NULL && (pr->heard || pr->heard_last));
}

/* cfg.strict_conf: etcd's reconfiguration guards (mayAddMember,
 * mayRemoveMember), with "connected" read as "answered in the last two
 * election timeouts". Adding any member needs every voter reached (one
 * voter alone may add the second: how a cluster grows from one);
 * removing a voter that answers needs the other voters reached to be a
 * quorum of the voters left. A voter that does not answer goes freely. */
static int conf_check_reached(struct raft *r, const struct raft_conf_change *cc)
{
    const struct raft_conf *c = &r->conf;
    uint32_t n = c->voters_count;
    uint32_t up = 0;
    for (uint32_t i = 0; i < n; i++) {
        up += reached(r, c->voters[i]);
    }
    switch (cc->type) {
    case RAFT_CC_ADD_VOTER:
    case RAFT_CC_ADD_LEARNER:
        if (raft_conf_is_learner(c, cc->node_id)) {
            return 0; /* a learner made a voter: promote's rule */
        }
        return up == n ? 0 : ERR_UNHEALTHY;
    case RAFT_CC_REMOVE:
        if (!raft_conf_is_voter(c, cc->node_id) ||
            (cc->node_id != r->id && !reached(r, cc->node_id))) {
            return 0;
        }
        return up - 1 >= (n - 1) / 2 + 1 ? 0 : ERR_UNHEALTHY;
    default:
        return 0;
    }
}

static int propose_conf(struct raft *r, const struct raft_conf_change *cc,
                        uint64_t *index)
{
    ASSERT(r->role == RAFT_LEADER);
    if (r->lead_transferee != RAFT_NONE) {
        return ERR_PROPOSAL_DROPPED;
    }
    /* One change at a time, and only after an entry of our term has
     * committed (so no change of an earlier leader is still in doubt). */
    if (!committed_in_term(r) || r->conf_index > r->commit) {
        return ERR_BUSY;
    }
    struct raft_conf_change n = *cc;
    int rc = conf_apply(r, cc, &n.conf);
    if (rc == 0 && r->cfg.strict_conf) {
        rc = conf_check_reached(r, cc);
    }
    if (rc < 0) {
        return rc;
    }
    struct buf b;
    buf_init(&b, r->cfg.max_entry_bytes);
    rc = raft_conf_change_encode(&n, &b);
    if (rc == ERR_LIMIT) {
        rc = ERR_REQUEST_TOO_LARGE;
    }
    uint64_t idx = 0;
    if (rc == 0) {
        rc = leader_append(r, RAFT_ENTRY_CONF, b.data, b.len, &idx);
    }
    buf_free(&b);
    if (rc < 0) {
        return rc;
    }
    set_conf(r, &n.conf, idx); /* on append (thesis 4.1) */
    if (index != NULL) {
        *index = idx;
    }
    return r->err;
}

int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc,
                             uint64_t *index)
{
    if (r->err) {
        return r->err;
    }
    if (index != NULL) {
        *index = 0;
    }
    if (cc->node_id == RAFT_NONE || cc->type == 0 ||
        cc->type > RAFT_CC_TYPE_MAX || (cc->ctx_len > 0 && !cc->ctx)) {
        return ERR_INVALID;
    }
    if (r->role == RAFT_LEADER) {
        return propose_conf(r, cc, index);
    }
    struct raft_conf_change req = *cc;
    memset(&req.conf, 0, sizeof(req.conf));
    struct buf b;
    buf_init(&b, r->cfg.max_entry_bytes);
    int rc = raft_conf_change_encode(&req, &b);
    if (rc == 0) {
        rc = forward_entry(r, RAFT_ENTRY_CONF, b.data, b.len);
    }
    buf_free(&b);
    return rc == ERR_LIMIT ? ERR_REQUEST_TOO_LARGE : rc;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    if (r->err) {
        return r->err;
    }
    if (r->role == RAFT_LEADER) {
        int rc = leader_read(r, r->id, ctx);
        return rc < 0 ? rc : r->err;
    }
    if (r->leader == RAFT_NONE) {
        return ERR_NO_LEADER;
    }
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = RAFT_MSG_READINDEX;
    m.to = r->leader;
    m.ctx = ctx;
    send(r, &m);
    return r->err;
}

int raft_transfer_leader(struct raft *r, uint64_t to)
{
    if (r->err) {
        return r->err;
    }
    if (r->role == RAFT_LEADER) {
        int rc = leader_transfer(r, to);
        return rc < 0 ? rc : r->err;
    }
    if (r->leader == RAFT_NONE) {
        return ERR_NO_LEADER;
    }
    if (to == RAFT_NONE || !is_voter(r, to)) {
        return ERR_BAD_LEADER_TRANSFEREE;
    }
    send_simple(r, RAFT_MSG_TRANSFER_LEADER, r->leader, 0, to, 0);
    return r->err;
}

/* ---------------------------------------------------------- ready batch */

/* Reads wait for a heartbeat round that raft_ready() will start. */
static bool read_round_startable(const struct raft *r)
{
    if (r->role != RAFT_LEADER || r->read_round_sent > 0 ||
        !committed_in_term(r)) {
        return false;
    }
    for (uint32_t i = 0; i < r->reads_count; i++) {
        if (r->reads[i].round == r->read_round_next) {
            return true;
        }
    }
    return false;
}

static uint64_t committed_hi(const struct raft *r)
{
    if (r->unstable_snap.meta.index > 0) {
        return r->applying; /* nothing applies until the snapshot lands */
    }
    uint64_t p = raft__persisted_index(r);
    return r->commit < p ? r->commit : p;
}

static bool hard_eq(const struct raft_hard_state *a,
                    const struct raft_hard_state *b)
{
    return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

static struct raft_hard_state hard_now(const struct raft *r)
{
    struct raft_hard_state h = {r->term, r->vote, r->commit};
    return h;
}

bool raft_has_ready(const struct raft *r)
{
    if (r->err || r->ready_out) {
        return false;
    }
    struct raft_hard_state h = hard_now(r);
    uint64_t last = r->unstable.count
                        ? r->unstable_offset + r->unstable.count - 1
                        : r->unstable_offset - 1;
    return r->leader != r->prev_leader || r->role != r->prev_role ||
           !hard_eq(&h, &r->prev_hard) ||
           (r->unstable_snap.meta.index > 0 && !r->unstable_snap_in_progress) ||
           r->unstable_in_progress <= last || r->out.count > 0 ||
           r->out_after.count > 0 || r->out_reads_count > 0 ||
           committed_hi(r) > r->applying || read_round_startable(r);
}

static int ready_committed(struct raft *r)
{
    uint64_t hi = committed_hi(r);
    if (hi <= r->applying) {
        return 0;
    }
    int rc = raft__slice(r, r->applying + 1, hi + 1, r->cfg.max_committed_bytes,
                         &r->rd_committed);
    if (rc < 0) {
        fail(r, rc); /* committed entries cannot be compacted: applied < */
        return rc;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < r->rd_committed.count; i++) {
        ASSERT(r->rd_committed.v[i].index == r->applying + 1 + i);
        bytes += r->rd_committed.v[i].len;
    }
    r->applying = r->rd_committed.v[r->rd_committed.count - 1].index;
    ASSERT(r->applying <= r->commit);
    if (r->role == RAFT_LEADER) {
        r->uncommitted_bytes =
            bytes >= r->uncommitted_bytes ? 0 : r->uncommitted_bytes - bytes;
    }
    return 0;
}

/* Move the outbound queues into the batch. When term or vote changed in
 * this batch every message waits for the persist (a message must never
 * carry a term or a vote the sender could forget in a crash). */
static int ready_msgs(struct raft *r, bool term_or_vote_changed)
{
    r->rd_msgs = r->out;
    r->rd_after = r->out_after;
    memset(&r->out, 0, sizeof(r->out));
    memset(&r->out_after, 0, sizeof(r->out_after));
    if (!term_or_vote_changed || r->rd_msgs.count == 0) {
        return 0;
    }
    for (size_t i = 0; i < r->rd_after.count; i++) {
        if (msgq_push(&r->rd_msgs, &r->rd_after.v[i]) < 0) {
            /* Messages already moved stay owned by rd_msgs; the rest are
             * still in rd_after: both are freed by advance/close. */
            memmove(r->rd_after.v, r->rd_after.v + i,
                    (r->rd_after.count - i) * sizeof(r->rd_after.v[0]));
            r->rd_after.count -= i;
            fail(r, -ENOMEM);
            return -ENOMEM;
        }
    }
    struct raft__msgq t = r->rd_after;
    t.count = 0;
    r->rd_after = r->rd_msgs;
    r->rd_msgs = t;
    return 0;
}

int raft_ready(struct raft *r, struct raft_ready *rd)
{
    ASSERT(!r->ready_out);
    memset(rd, 0, sizeof(*rd));
    if (r->err) {
        return r->err;
    }
    if (read_round_startable(r)) {
        read_round_maybe_start(r);
    }
    r->ready_out = true;
    rd->leader = r->leader;
    rd->role = r->role;
    rd->soft_changed = r->leader != r->prev_leader || r->role != r->prev_role;
    rd->hard = hard_now(r);
    rd->hard_changed = !hard_eq(&rd->hard, &r->prev_hard);
    bool tv = rd->hard.term != r->prev_hard.term ||
              rd->hard.vote != r->prev_hard.vote;
    if (r->unstable_snap.meta.index > 0 && !r->unstable_snap_in_progress) {
        if (raft__snapshot_copy(&r->rd_snap, &r->unstable_snap) < 0) {
            fail(r, -ENOMEM);
            return r->err;
        }
        r->rd_has_snap = true;
        r->unstable_snap_in_progress = true;
        rd->snapshot = &r->rd_snap;
    }
    uint64_t last = raft__last_index(r);
    for (uint64_t i = r->unstable_in_progress; i <= last; i++) {
        const struct raft_entry *e = &r->unstable.v[i - r->unstable_offset];
        if (raft__ents_push(&r->rd_entries, e, true) < 0) {
            fail(r, -ENOMEM);
            return r->err;
        }
    }
    r->unstable_in_progress = last + 1;
    if (ready_committed(r) < 0 || ready_msgs(r, tv) < 0) {
        return r->err;
    }
    struct raft_read_state *t = r->rd_reads;
    r->rd_reads = r->out_reads;
    r->rd_reads_count = r->out_reads_count;
    r->out_reads = t;
    r->out_reads_count = 0;

    rd->entries = r->rd_entries.v;
    rd->entries_count = r->rd_entries.count;
    rd->msgs = r->rd_msgs.v;
    rd->msgs_count = r->rd_msgs.count;
    rd->msgs_after_persist = r->rd_after.v;
    rd->msgs_after_persist_count = r->rd_after.count;
    rd->committed = r->rd_committed.v;
    rd->committed_count = r->rd_committed.count;
    rd->reads = r->rd_reads;
    rd->reads_count = r->rd_reads_count;

    r->prev_hard = rd->hard;
    r->prev_leader = r->leader;
    r->prev_role = r->role;
    return 0;
}

static void release_batch(struct raft *r)
{
    msgq_free(&r->rd_msgs);
    msgq_free(&r->rd_after);
    raft__ents_free(&r->rd_entries);
    raft__ents_free(&r->rd_committed);
    raft__snapshot_free(&r->rd_snap);
    r->rd_has_snap = false;
    r->rd_reads_count = 0;
    r->ready_out = false;
}

void raft_advance(struct raft *r, struct raft_ready *rd)
{
    ASSERT(r->ready_out);
    release_batch(r);
    memset(rd, 0, sizeof(*rd));
}

/* ---------------------------------------------------------- completions */

int raft_persisted(struct raft *r, uint64_t index, uint64_t term)
{
    if (r->err) {
        return r->err;
    }
    raft__log_stable_to(r, index, term);
    if (r->role == RAFT_LEADER) {
        struct raft__progress *self = pr_find(r, r->id);
        uint64_t p = raft__persisted_index(r);
        if (self != NULL && p > self->match) {
            self->match = p;
            self->next = p + 1 > self->next ? p + 1 : self->next;
            if (maybe_commit(r)) {
                leader_committed(r);
            }
        }
    }
    return r->err;
}

int raft_applied(struct raft *r, uint64_t index)
{
    if (r->err) {
        return r->err;
    }
    ASSERT(index <= r->applying); /* only what we handed out */
    if (index > r->applied) {
        r->applied = index;
    }
    return 0;
}

uint64_t raft_replicated_index(const struct raft *r)
{
    uint64_t low = UINT64_MAX;
    if (r->role != RAFT_LEADER) {
        return UINT64_MAX;
    }
    for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
        if (r->prs[i].id != RAFT_NONE && r->prs[i].match < low) {
            low = r->prs[i].match;
        }
    }
    return low;
}

int raft_snapshot_installed(struct raft *r, uint64_t index)
{
    if (r->err) {
        return r->err;
    }
    if (r->unstable_snap.meta.index != index || !r->unstable_snap_in_progress) {
        return 0; /* replaced by a newer snapshot meanwhile */
    }
    raft__snapshot_free(&r->unstable_snap);
    r->unstable_snap_in_progress = false;
    /* The log goes on right after the snapshot: in the tail, or in the
     * storage for entries reported durable while the install ran. */
    ASSERT(r->unstable_offset >= index + 1);
    if (r->applying < index) {
        r->applying = index;
    }
    if (r->applied < index) {
        r->applied = index;
    }
    return 0;
}

void raft_snapshot_failed(struct raft *r, int err)
{
    fail(r, err < 0 ? err : ERR_FAILED);
}

void raft_report_unreachable(struct raft *r, uint64_t id)
{
    struct raft__progress *pr = pr_find(r, id);
    if (r->err || r->role != RAFT_LEADER || pr == NULL || id == r->id) {
        return;
    }
    if (pr->state == RAFT_PR_REPLICATE) {
        pr_become_probe(pr);
    }
}

void raft_report_snapshot(struct raft *r, uint64_t id, bool ok)
{
    struct raft__progress *pr = pr_find(r, id);
    if (r->err || r->role != RAFT_LEADER || pr == NULL ||
        pr->state != RAFT_PR_SNAPSHOT) {
        return;
    }
    if (!ok) {
        pr->pending_snapshot = 0;
    }
    pr_become_probe(pr);
    /* Wait for the follower's answer (or a heartbeat) before probing. */
    pr->probe_sent = true;
}

int raft_compact(struct raft *r, uint64_t index, struct raft_snapshot_meta *out)
{
    if (r->err) {
        return r->err;
    }
    memset(out, 0, sizeof(*out));
    if (index == 0 || index > r->applied) {
        return ERR_INVALID;
    }
    if (index < raft__first_index(r)) {
        return ERR_COMPACTED;
    }
    int rc = raft__term(r, index, &out->term);
    if (rc < 0) {
        return rc;
    }
    uint64_t ci = 0;
    rc = raft__conf_at(r, index, &out->conf, &ci);
    if (rc < 0) {
        return rc;
    }
    out->index = index;
    return 0;
}

/* ------------------------------------------------------ init and status */

static int config_check(const struct raft_config *c)
{
    const struct raft_storage *s = c->storage;
    if (c->id == RAFT_NONE || c->heartbeat_ticks == 0 ||
        c->election_ticks <= c->heartbeat_ticks ||
        c->election_ticks > UINT32_MAX / 2 || c->max_inflight_msgs == 0 ||
        c->max_msg_bytes == 0 || c->max_entry_bytes == 0 ||
        c->max_pending_reads == 0 || c->max_queued_msgs == 0 ||
        c->max_uncommitted_bytes == 0 || !raft__conf_valid(&c->bootstrap)) {
        return ERR_INVALID;
    }
    if (s == NULL || !s->hard_state || !s->first_index || !s->last_index ||
        !s->term || !s->entries || !s->snapshot) {
        return ERR_INVALID;
    }
    return 0;
}

static int init_state(struct raft *r)
{
    struct raft_hard_state hs;
    struct raft_snapshot snap;
    uint64_t last = 0;
    int rc = r->st->hard_state(r->st->ctx, &hs);
    rc = rc ? rc : r->st->snapshot(r->st->ctx, &snap);
    rc = rc ? rc : r->st->last_index(r->st->ctx, &last);
    if (rc < 0) {
        return rc;
    }
    if (last < snap.meta.index || hs.commit > last) {
        return ERR_CORRUPT;
    }
    r->unstable_offset = last + 1;
    r->unstable_in_progress = last + 1;
    r->term = hs.term;
    r->vote = hs.vote;
    r->commit = hs.commit > snap.meta.index ? hs.commit : snap.meta.index;
    r->prev_hard = hs;
    r->applied =
        r->cfg.applied > snap.meta.index ? r->cfg.applied : snap.meta.index;
    if (r->applied > r->commit) {
        return ERR_INVALID;
    }
    r->applying = r->applied;
    struct raft_conf c;
    uint64_t ci = 0;
    rc = raft__conf_at(r, last, &c, &ci);
    if (rc < 0) {
        return rc;
    }
    set_conf(r, &c, ci);
    return r->err;
}

int raft_init(struct raft *r, const struct raft_config *cfg)
{
    memset(r, 0, sizeof(*r));
    int rc = config_check(cfg);
    if (rc < 0) {
        return rc;
    }
    r->cfg = *cfg;
    r->st = cfg->storage;
    r->id = cfg->id;
    prng_seed(&r->prng, cfg->seed);
    r->read_round_next = 1;
    r->reads = mem_calloc(cfg->max_pending_reads, sizeof(*r->reads));
    r->out_reads = mem_calloc(cfg->max_pending_reads, sizeof(*r->out_reads));
    r->rd_reads = mem_calloc(cfg->max_pending_reads, sizeof(*r->rd_reads));
    if (!r->reads || !r->out_reads || !r->rd_reads) {
        raft_close(r);
        return -ENOMEM;
    }
    rc = init_state(r);
    if (rc < 0) {
        raft_close(r);
        return rc;
    }
    become_follower(r, r->term, RAFT_NONE);
    r->prev_role = RAFT_FOLLOWER;
    r->prev_leader = RAFT_NONE;
    return r->err;
}

void raft_close(struct raft *r)
{
    if (r->ready_out) {
        release_batch(r);
    }
    raft__ents_free(&r->unstable);
    raft__snapshot_free(&r->unstable_snap);
    for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
        mem_free(r->prs[i].infl);
    }
    msgq_free(&r->out);
    msgq_free(&r->out_after);
    msgq_free(&r->rd_msgs);
    msgq_free(&r->rd_after);
    raft__ents_free(&r->rd_entries);
    raft__ents_free(&r->rd_committed);
    raft__snapshot_free(&r->rd_snap);
    mem_free(r->reads);
    mem_free(r->out_reads);
    mem_free(r->rd_reads);
    memset(r, 0, sizeof(*r));
}

void raft_status(const struct raft *r, struct raft_status *out)
{
    memset(out, 0, sizeof(*out));
    out->id = r->id;
    out->role = r->role;
    out->leader = r->leader;
    out->hard = hard_now(r);
    out->applied = r->applied;
    out->last_index = r->unstable.count
                          ? r->unstable_offset + r->unstable.count - 1
                          : r->unstable_offset - 1;
    out->first_index = r->unstable_snap.meta.index
                           ? r->unstable_snap.meta.index + 1
                           : 0; /* storage's, unless a snapshot waits */
    if (out->first_index == 0 && r->st != NULL) {
        uint64_t f = 0;
        if (r->st->first_index(r->st->ctx, &f) == 0) {
            out->first_index = f;
        }
    }
    out->conf_index = r->conf_index;
    out->conf = r->conf;
    out->lead_transferee = r->lead_transferee;
    out->msgs_dropped = r->msgs_dropped;
    for (int i = 0; i < RAFT_MEMBERS_MAX; i++) {
        const struct raft__progress *pr = &r->prs[i];
        if (pr->id == RAFT_NONE) {
            continue;
        }
        uint32_t k = out->progress_count++;
        out->progress[k].id = pr->id;
        out->progress[k].match = pr->match;
        out->progress[k].next = pr->next;
        out->progress[k].state = pr->state;
        out->progress[k].learner = pr->learner;
        out->progress[k].recent_active = pr->recent_active;
        out->progress[k].inflight_count = pr->infl_count;
    }
}

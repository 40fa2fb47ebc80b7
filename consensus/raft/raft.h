/*
 * raft.h - the pure Raft state machine (after etcd-io/raft's RawNode/Ready).
 *
 * Does:     decides everything Raft decides (elections with pre-vote and
 *           check-quorum, replication with flow control, commit, ReadIndex,
 *           snapshots, single-server membership changes, leader transfer)
 *           and returns its effects as data in a ready batch.
 * Owns:     the in-memory (unstable) tail of the log, the progress of every
 *           peer, queued outbound messages and the current ready batch. All
 *           memory comes from base/alloc.h.
 * Threads:  one struct raft belongs to one thread (the event loop); no call
 *           blocks, sleeps, reads a clock or does I/O.
 * Borrowed: everything a ready batch points to lives until raft_advance().
 *           Arguments to every call are copied before the call returns.
 * Errors:   0 or a negative code: ERR_NO_LEADER, ERR_NOT_LEADER,
 *           ERR_PROPOSAL_DROPPED, ERR_BUSY, ERR_REQUEST_TOO_LARGE, ERR_INVALID,
 *           ERR_MEMBER_EXISTS, ERR_MEMBER_NOT_FOUND, ERR_NOT_LEARNER,
 *           ERR_LEARNER_NOT_READY, ERR_BAD_LEADER_TRANSFEREE, ERR_LIMIT,
 *           -ENOMEM, or a storage error. After -ENOMEM or a storage error in
 *           the middle of a state change, or raft_snapshot_failed(), the core
 *           is failed: every later call returns that same error (STYLE 5).
 * Limits:   members (voters + learners) <= RAFT_MEMBERS_MAX; entry, message,
 *           in-flight, uncommitted and queue bounds in struct raft_config
 *           (defaults from base/limits.h).
 * Not here: the durable log and snapshot files (consensus/log, behind struct
 *           raft_storage), sockets (consensus/transport), turning wall time
 *           into ticks and the persist -> send -> apply loop (consensus/node).
 *
 * Determinism: the same config (seed included) and the same sequence of
 * calls give byte-identical ready batches. Nothing here reads a clock; the
 * election jitter comes from a base/prng.h generator seeded by cfg.seed.
 *
 * Membership: single-server changes (Raft thesis 4.1), one at a time. A
 * configuration lives in a RAFT_ENTRY_CONF log entry carrying the whole
 * resulting member list, and a server uses the latest configuration in its
 * log as soon as the entry is appended, committed or not (thesis 4.1). We
 * chose "on append" because it is the rule the single-server safety argument
 * is proved for; "on apply" needs extra care so that two servers never use
 * configurations two changes apart. The price: when a follower's log suffix
 * is truncated, the configuration reverts to the latest one left in the
 * log (or the snapshot's). A leader refuses a change (ERR_BUSY) until it has
 * committed an entry of its own term (the fix for the bug Ongaro described
 * in 2015) and while an earlier change is uncommitted. Joint consensus is not
 * implemented: single-server changes cover add voter, remove voter, add
 * learner and promote learner, which is all the node layer needs. A leader
 * removed by a change keeps leading (without counting itself) until the
 * change commits, then steps down.
 *
 * How to drive this core (consensus/node does this; tests do it in-line):
 *
 *     struct raft r;  raft_config_default(&cfg, my_id);  cfg.storage = &st;
 *     raft_init(&r, &cfg);
 *     loop:
 *       on timer:         raft_tick(&r);
 *       on peer message:  raft_msg_decode(bytes, len, &m); raft_step(&r, &m);
 *       on client write:  raft_propose(&r, RAFT_ENTRY_NORMAL, p, n, &idx);
 *       while (raft_has_ready(&r)) {
 *           struct raft_ready rd;  raft_ready(&r, &rd);
 *           send(rd.msgs)                         -- may go out right away
 *           write(rd.snapshot, rd.entries, rd.hard) -- durable, in order
 *           raft_persisted(&r, last.index, last.term)   -- after the fsync
 *           raft_snapshot_installed(&r, rd.snapshot->meta.index)  -- if any
 *           send(rd.msgs_after_persist)           -- only after the fsync
 *           apply(rd.committed); raft_applied(&r, last committed index);
 *           serve(rd.reads) once applied >= read.index
 *           raft_advance(&r, &rd);                -- releases the batch
 *       }
 *
 * An asynchronous driver may call raft_advance() as soon as it has copied the
 * batch and report raft_persisted() later; any call may happen between
 * raft_ready() and raft_advance() except another raft_ready().
 */
#ifndef CAIRN_CONSENSUS_RAFT_H
#define CAIRN_CONSENSUS_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/prng.h"
#include "base/runs.h"

struct buf;

/* Voters plus learners. A small fixed bound keeps the config a flat struct
 * that a message or a snapshot can carry without allocation. */
#define RAFT_MEMBERS_MAX 16
/* Node id 0 means "nobody" (no vote, no leader). */
#define RAFT_NONE        0

/* ---------------------------------------------------------------- entries */

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0, /* opaque command for the state machine */
    RAFT_ENTRY_CONF = 1,   /* membership change (raft_conf_change encoding) */
    RAFT_ENTRY_EMPTY = 2,  /* a new leader's no-op; nothing to apply */
};
#define RAFT_ENTRY_TYPE_MAX RAFT_ENTRY_EMPTY

struct raft_entry {
    uint64_t index;
    uint64_t term;
    uint8_t type;  /* enum raft_entry_type */
    uint32_t len;  /* bytes at data */
    uint8_t *data; /* owner depends on where the entry is (see each use) */
};

/* The membership: who votes and who only learns. Ids are distinct,
 * non-zero, and a node is never both a voter and a learner. */
struct raft_conf {
    uint32_t voters_count;
    uint32_t learners_count;
    uint64_t voters[RAFT_MEMBERS_MAX];
    uint64_t learners[RAFT_MEMBERS_MAX];
};

enum raft_conf_change_type {
    RAFT_CC_ADD_VOTER = 1,
    RAFT_CC_REMOVE = 2, /* remove a voter or a learner */
    RAFT_CC_ADD_LEARNER = 3,
    RAFT_CC_PROMOTE = 4, /* learner -> voter */
};
#define RAFT_CC_TYPE_MAX RAFT_CC_PROMOTE

/* A change as proposed, and as stored in a RAFT_ENTRY_CONF entry. In the log,
 * `conf` is the whole configuration that results (filled in by the leader);
 * in a proposal it is ignored. `ctx` is opaque to the core (the node layer
 * puts the member's peer URLs there); it is borrowed. */
struct raft_conf_change {
    uint8_t type; /* enum raft_conf_change_type */
    uint64_t node_id;
    struct raft_conf conf;
    const uint8_t *ctx;
    uint32_t ctx_len;
};

/* ---------------------------------------------------------- durable state */

struct raft_hard_state {
    uint64_t term;
    uint64_t vote;   /* RAFT_NONE when no vote in term */
    uint64_t commit; /* may be persisted lazily; it is only a hint */
};

struct raft_snapshot_meta {
    uint64_t index; /* last index the snapshot covers */
    uint64_t term;  /* term of that entry */
    struct raft_conf conf;
};

/* data is opaque to the core. The node layer streams real snapshots out of
 * band and leaves data empty; tests and the simulator put the whole state
 * machine here. */
struct raft_snapshot {
    struct raft_snapshot_meta meta;
    uint8_t *data;
    uint32_t data_len;
};

/*
 * The durable log as the core sees it, provided by the driver
 * (consensus/log, or raft_memstorage below). Calls are synchronous and
 * happen inside raft_* calls. Every index below first_index is compacted;
 * the snapshot covers up to first_index - 1. Errors: ERR_COMPACTED for an
 * index below first_index (term() allows first_index - 1, the snapshot's),
 * ERR_NOT_FOUND past last_index; entries() may also answer ERR_BUSY (the
 * data is not in memory: the driver is reading it back and will call
 * raft_entries_available), and the core then sends nothing to that
 * follower for now. Committed entries not yet handed out in a ready batch
 * must never be ERR_BUSY. Any other error fails the core.
 */
struct raft_storage {
    void *ctx;
    int (*hard_state)(void *ctx, struct raft_hard_state *out);
    int (*first_index)(void *ctx, uint64_t *out);
    int (*last_index)(void *ctx, uint64_t *out);
    int (*term)(void *ctx, uint64_t index, uint64_t *out);
    /* Entries [lo, hi) into out[0..cap), stopping before the total data
     * would pass max_bytes, but always at least one when lo < hi. Each
     * out[i].data is borrowed until the next call on this storage. */
    int (*entries)(void *ctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                   struct raft_entry *out, size_t cap, size_t *count);
    /* The latest snapshot; data borrowed until the next call. Index 0 means
     * none. */
    int (*snapshot)(void *ctx, struct raft_snapshot *out);
    /* Optional (NULL: the core reads entries() backwards): the last
     * RAFT_ENTRY_CONF entry with index in [lo, hi], its data borrowed
     * until the next call; ERR_NOT_FOUND when there is none. Must work
     * where entries() would answer ERR_BUSY. */
    int (*last_conf)(void *ctx, uint64_t lo, uint64_t hi,
                     struct raft_entry *out);
};

/* ---------------------------------------------------------------- messages */

enum raft_msg_type {
    RAFT_MSG_NONE = 0,
    RAFT_MSG_PREVOTE = 1,
    RAFT_MSG_PREVOTE_RESP = 2,
    RAFT_MSG_VOTE = 3,
    RAFT_MSG_VOTE_RESP = 4,
    RAFT_MSG_APP = 5,
    RAFT_MSG_APP_RESP = 6,
    RAFT_MSG_HEARTBEAT = 7,
    RAFT_MSG_HEARTBEAT_RESP = 8,
    RAFT_MSG_SNAP = 9,
    RAFT_MSG_PROP = 10,            /* follower -> leader proposal forward */
    RAFT_MSG_READINDEX = 11,       /* follower -> leader read request */
    RAFT_MSG_READINDEX_RESP = 12,  /* leader -> follower: index for ctx */
    RAFT_MSG_TIMEOUT_NOW = 13,     /* leader -> transferee: campaign now */
    RAFT_MSG_TRANSFER_LEADER = 14, /* follower -> leader forward */
    /* leader -> the follower that forwarded a configuration change the
     * leader refused: entries[0] is that change, reject_hint its error
     * (negated ERR_*). Raft itself ignores it; the follower's owner may
     * answer whoever waits on the change. Older members drop it. */
    RAFT_MSG_PROP_REFUSED = 15,
};
#define RAFT_MSG_TYPE_MAX RAFT_MSG_PROP_REFUSED

#define RAFT_MSG_F_REJECT   0x01 /* a response that refuses */
#define RAFT_MSG_F_TRANSFER 0x02 /* a vote for a leader transfer */

/*
 * One message. Field use by type:
 *   (PRE)VOTE:      term = candidate's (next) term, index/log_term = its last
 *   (PRE)VOTE_RESP: F_REJECT when refused
 *   APP:            index/log_term = entry before entries[], commit
 *   APP_RESP:       accepted: index = last matching index. Rejected:
 *                   index = the APP's index, reject_hint/log_term = the
 *                   follower's guess of the last index that could match and
 *                   its term (fast backtracking, etcd's findConflictByTerm)
 *   HEARTBEAT:      commit = min(follower match, leader commit), ctx = read
 *                   round; HEARTBEAT_RESP echoes ctx
 *   SNAP:           snapshot
 *   PROP:           entries (index/term 0), term 0
 *   READINDEX:      ctx, term 0; READINDEX_RESP: ctx, index
 *   TRANSFER_LEADER: index = transferee id, term 0
 * Messages produced by the core own their entries and snapshot data until
 * raft_advance(); messages given to raft_step() are borrowed for the call.
 */
struct raft_msg {
    uint8_t type;  /* enum raft_msg_type */
    uint8_t flags; /* RAFT_MSG_F_* */
    uint64_t from;
    uint64_t to;
    uint64_t term;
    uint64_t log_term;
    uint64_t index;
    uint64_t commit;
    uint64_t reject_hint;
    uint64_t ctx;
    uint32_t entries_count;
    struct raft_entry *entries;
    struct raft_snapshot snapshot; /* RAFT_MSG_SNAP only */
};

/* ------------------------------------------------------------------ config */

struct raft_config {
    uint64_t id;              /* this node, non-zero */
    uint64_t seed;            /* election jitter; give each node its own */
    uint32_t election_ticks;  /* > heartbeat_ticks; default 10 */
    uint32_t heartbeat_ticks; /* default 1 */
    bool pre_vote;            /* default true */
    bool check_quorum;        /* default true */
    bool forward_proposals;   /* followers send MsgProp; default true */
    /* etcd's --strict-reconfig-check, on the leader's view (propose_conf):
     * adding a member needs an answer from every voter in the last two
     * election timeouts, removing a reachable voter needs the others it
     * hears from to be a quorum without it (ERR_UNHEALTHY). Default
     * false. */
    bool strict_conf;
    uint64_t max_entry_bytes;       /* LIMIT_RAFT_ENTRY_BYTES */
    uint64_t max_msg_bytes;         /* LIMIT_RAFT_MSG_BYTES: one append */
    uint32_t max_inflight_msgs;     /* LIMIT_RAFT_INFLIGHT_MSGS per peer */
    uint64_t max_inflight_bytes;    /* per peer, 0 = only the count bounds */
    uint64_t max_uncommitted_bytes; /* LIMIT_RAFT_UNCOMMITTED_BYTES */
    uint64_t max_committed_bytes;   /* data handed out per ready batch */
    uint32_t max_pending_reads;     /* queued ReadIndex requests */
    uint32_t max_queued_msgs;       /* outbound queue; past it, drop */
    uint64_t applied; /* the state machine already holds entries <= this */
    /* Used only when storage is empty (no snapshot, no conf entry): the
     * initial members, the same on every node of a new cluster. A node that
     * joins an existing cluster passes an empty conf. */
    struct raft_conf bootstrap;
    const struct raft_storage *storage; /* borrowed until raft_close */
};

/* Defaults above; storage and bootstrap left empty. */
void raft_config_default(struct raft_config *cfg, uint64_t id);

/* ------------------------------------------------------------- ready batch */

enum raft_role {
    RAFT_FOLLOWER = 0,
    RAFT_PRECANDIDATE = 1,
    RAFT_CANDIDATE = 2,
    RAFT_LEADER = 3,
};

struct raft_read_state {
    uint64_t ctx;   /* as given to raft_read_index() */
    uint64_t index; /* serve the read once applied >= index */
};

/*
 * The effects of everything since the previous batch. Ordering rules the
 * driver must follow (Raft thesis 3.8 and 10.2.1):
 *  1. Persist `snapshot` (if any), then `entries`, then `hard` (if
 *     hard_changed), durably and in that order. entries[0].index may be at
 *     or below the durable last index: drop the durable suffix from there.
 *  2. `msgs` may be sent at once, before or while step 1 runs: they are a
 *     leader's appends, heartbeats and snapshots (a leader replicates while
 *     it persists its own entries, thesis 10.2.1) and forwards that
 *     acknowledge nothing.
 *  3. `msgs_after_persist` (vote requests and responses, append responses,
 *     and every message of a batch that changed term or vote) go out only
 *     after step 1 is durable: they acknowledge that state.
 *  4. Report durability with raft_persisted(last entry index, term) and
 *     raft_snapshot_installed(). A leader counts its own entries toward
 *     commit only after raft_persisted().
 *  5. Apply `committed` in order (only committed, durable entries appear
 *     here), then report raft_applied(). Skip RAFT_ENTRY_EMPTY; decode
 *     RAFT_ENTRY_CONF with raft_conf_change_decode().
 *  6. `reads`: answer each once the applied index reaches read.index.
 *  7. raft_advance() releases the batch; every pointer in it dies there.
 * A soft state change (leader or role) means pending proposals and reads
 * made through this node may have been dropped: the driver fails or retries
 * them (the core does not report each one).
 */
struct raft_ready {
    bool soft_changed;
    uint64_t leader; /* RAFT_NONE when unknown */
    uint8_t role;    /* enum raft_role */

    bool hard_changed;
    struct raft_hard_state hard;

    const struct raft_snapshot *snapshot; /* NULL when none */
    const struct raft_entry *entries;     /* to persist */
    size_t entries_count;

    const struct raft_msg *msgs;
    size_t msgs_count;
    const struct raft_msg *msgs_after_persist;
    size_t msgs_after_persist_count;

    const struct raft_entry *committed; /* to apply */
    size_t committed_count;

    const struct raft_read_state *reads;
    size_t reads_count;
};

/* ----------------------------------------------------------- status, peers */

enum raft_progress_state {
    RAFT_PR_PROBE = 0,     /* one append at a time until a match is found */
    RAFT_PR_REPLICATE = 1, /* pipelined appends, bounded by inflights */
    RAFT_PR_SNAPSHOT = 2,  /* waiting for a snapshot to land */
};

struct raft_status {
    uint64_t id;
    uint8_t role;
    uint64_t leader;
    struct raft_hard_state hard;
    uint64_t applied;
    uint64_t first_index;
    uint64_t last_index;
    uint64_t conf_index; /* index of the entry holding conf; 0 = bootstrap */
    struct raft_conf conf;
    uint64_t lead_transferee;
    uint64_t msgs_dropped; /* outbound queue overflow, since init */
    /* leader only: one row per member, self included */
    uint32_t progress_count;
    struct {
        uint64_t id;
        uint64_t match;
        uint64_t next;
        uint8_t state; /* enum raft_progress_state */
        bool learner;
        bool recent_active;
        uint32_t inflight_count;
    } progress[RAFT_MEMBERS_MAX];
};

/* ----------------------------------------------------- private: the state */

/* Everything below is private to consensus/raft; it is here only so that
 * the caller can allocate struct raft. Read it through raft_status(). */
struct raft__inflight {
    uint64_t index;
    uint64_t bytes;
};

struct raft__progress {
    uint64_t id; /* RAFT_NONE = free slot */
    uint64_t match;
    uint64_t next;
    uint64_t pending_snapshot;
    uint64_t read_ack; /* highest read round acknowledged */
    uint8_t state;
    bool learner;
    bool probe_sent;
    bool recent_active;
    /* an answer came in this check-quorum window (heard), in the one
     * before (heard_last): reached lately, for cfg.strict_conf */
    bool heard;
    bool heard_last;
    uint8_t vote; /* elections: 0 none, 1 granted, 2 rejected */
    /* ring of in-flight appends (replicate state) */
    struct raft__inflight *infl;
    uint32_t infl_start;
    uint32_t infl_count;
    uint64_t infl_bytes;
};

struct raft__read {
    uint64_t from; /* requester; self for local reads */
    uint64_t ctx;
    uint64_t index;
    uint64_t round; /* 0 = waiting for the leader's first commit */
};

struct raft__msgq {
    struct raft_msg *v;
    size_t count;
    size_t cap;
};

struct raft__entries {
    struct raft_entry *v; /* each data owned */
    size_t count;
    size_t cap;
};

struct raft {
    struct raft_config cfg;
    const struct raft_storage *st;
    struct prng prng;
    int err; /* sticky failure */

    uint64_t id;
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
    uint64_t applied;  /* reported by the driver */
    uint64_t applying; /* handed out in committed[] */
    uint64_t leader;
    uint8_t role;

    /* log: storage plus the unstable tail [unstable_offset, ...] */
    struct raft__entries unstable;
    uint64_t unstable_offset;
    uint64_t unstable_in_progress; /* first unstable index not handed out */
    struct raft_snapshot unstable_snap; /* meta.index 0 = none */
    bool unstable_snap_in_progress;

    struct raft_conf conf;
    uint64_t conf_index;

    struct raft__progress prs[RAFT_MEMBERS_MAX];

    uint32_t election_elapsed;
    uint32_t heartbeat_elapsed;
    uint32_t randomized_timeout;

    uint64_t lead_transferee;
    uint64_t uncommitted_bytes;
    uint64_t term_start_index; /* leader: index of its first entry in term */
    uint64_t append_busy;      /* appends not sent: storage answered ERR_BUSY */

    struct raft__read *reads;
    uint32_t reads_count;
    uint64_t read_round_next; /* round the next batch of reads joins */
    uint64_t read_round_sent; /* round in flight (0 = none) */

    struct raft__msgq out;       /* may send now */
    struct raft__msgq out_after; /* after persist */
    struct raft_read_state *out_reads;
    uint32_t out_reads_count;
    uint64_t msgs_dropped;

    /* what the previous batch told the driver */
    struct raft_hard_state prev_hard;
    uint64_t prev_leader;
    uint8_t prev_role;

    /* the batch handed out and not yet advanced */
    bool ready_out;
    struct raft__msgq rd_msgs;
    struct raft__msgq rd_after;
    struct raft__entries rd_entries;
    struct raft__entries rd_committed;
    struct raft_read_state *rd_reads;
    uint32_t rd_reads_count;
    struct raft_snapshot rd_snap;
    bool rd_has_snap;
};

/* --------------------------------------------------------------- the calls */

/* Set up r from cfg (copied) and the state in cfg->storage: hard state,
 * snapshot, the latest configuration in the log. r starts as a follower.
 * Errors: ERR_INVALID (id 0, ticks, bootstrap conf), -ENOMEM, storage. */
int raft_init(struct raft *r, const struct raft_config *cfg);

/* Free everything r owns, including an outstanding ready batch. */
void raft_close(struct raft *r);

/* One logical clock tick. Elections, heartbeats, check-quorum and transfer
 * timeouts are counted in ticks. */
int raft_tick(struct raft *r);

/* Feed one message from a peer; m is borrowed for the call. Stale,
 * unknown-sender and nonsense messages are ignored (return 0): the network
 * may lose, repeat and reorder. Errors: only -ENOMEM / storage (failed). */
int raft_step(struct raft *r, const struct raft_msg *m);

/* Start an election now (tests, or a single-node bootstrap). No-op unless r
 * is a voter and not the leader. */
int raft_campaign(struct raft *r);

/* Propose data (copied) as a RAFT_ENTRY_NORMAL or RAFT_ENTRY_EMPTY entry.
 * On the leader the entry is appended and *index (may be NULL) gets its
 * index; a follower forwards it (index 0) when forward_proposals is set.
 * Errors: ERR_NO_LEADER, ERR_NOT_LEADER (forwarding off),
 * ERR_PROPOSAL_DROPPED (leader transfer running), ERR_REQUEST_TOO_LARGE
 * (len > max_entry_bytes), ERR_BUSY (uncommitted bytes at the bound),
 * ERR_INVALID (type), -ENOMEM (r stays usable). */
int raft_propose(struct raft *r, uint8_t type, const void *data, size_t len,
                 uint64_t *index);

/* Propose a membership change (cc->conf ignored, cc->ctx copied). Leader
 * computes and logs the resulting configuration; followers forward as
 * MsgProp. Errors: those of raft_propose, plus ERR_BUSY (a change is
 * pending, or the leader has not committed an entry of its term yet),
 * ERR_MEMBER_EXISTS, ERR_MEMBER_NOT_FOUND, ERR_NOT_LEARNER,
 * ERR_LEARNER_NOT_READY (promoting a learner far behind), ERR_LIMIT (members
 * full), ERR_INVALID (bad type or id, or removing the last voter). */
int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc,
                             uint64_t *index);

/* Ask for a linearizable read point. A raft_read_state with this ctx comes
 * out in a later batch (ctx should be unique per node) once the leader has
 * confirmed it still leads; concurrent requests share a heartbeat round. A
 * leader that has not committed an entry of its term yet holds requests
 * until it has. Errors: ERR_NO_LEADER, ERR_BUSY (max_pending_reads). */
int raft_read_index(struct raft *r, uint64_t ctx);

/* Hand leadership to `to`. The leader brings it up to date, then sends
 * MsgTimeoutNow; it gives up after an election timeout. Proposals fail with
 * ERR_PROPOSAL_DROPPED meanwhile. Followers forward the request.
 * Errors: ERR_NO_LEADER, ERR_BAD_LEADER_TRANSFEREE (self, not a voter). */
int raft_transfer_leader(struct raft *r, uint64_t to);

/* True when raft_ready() would return a non-empty batch. */
bool raft_has_ready(const struct raft *r);

/* Fill rd with the next batch (possibly empty). Precondition: the previous
 * batch was advanced. Errors: -ENOMEM / storage: r is failed and rd is
 * empty; the driver stops the node and calls raft_close(). */
int raft_ready(struct raft *r, struct raft_ready *rd);

/* Release the batch returned by raft_ready(). */
void raft_advance(struct raft *r, struct raft_ready *rd);

/* Entries up to index, where index has `term`, and the hard state of every
 * batch handed out before them, are durable and readable from storage. A
 * report that no longer matches the log (replaced meanwhile) is ignored. */
int raft_persisted(struct raft *r, uint64_t index, uint64_t term);

/* The state machine has applied every entry <= index. */
int raft_applied(struct raft *r, uint64_t index);

/* The highest index whose entry no member is waiting for from this one: on
 * the leader, the lowest match over every member, learners included (0
 * while a member's match is unknown); elsewhere UINT64_MAX, as nobody reads
 * a log that is not the leader's. The driver may let go of the data of
 * entries at or below it and of its applied index (raft_memstorage_evict):
 * a member that falls behind later is served from the WAL. Read-only. */
uint64_t raft_replicated_index(const struct raft *r);

/* The batch's snapshot is durable in storage (first_index is now
 * index + 1) and the state machine holds it. */
int raft_snapshot_installed(struct raft *r, uint64_t index);

/* Installing the batch's snapshot failed: the node cannot continue. r moves
 * to the failed state with err (negative). */
void raft_snapshot_failed(struct raft *r, int err);

/* The transport could not reach `id`: stop pipelining to it. */
void raft_report_unreachable(struct raft *r, uint64_t id);

/* The snapshot sent to `id` was delivered (ok) or lost. Report one outcome
 * for every RAFT_MSG_SNAP taken from a batch: until then the leader sends
 * that follower nothing but heartbeats. A transport that cannot know may
 * report ok once sent; if it was lost, the follower's answer to the next
 * probe leads the leader back to a new snapshot. */
void raft_report_snapshot(struct raft *r, uint64_t id, bool ok);

/* Storage entries that answered ERR_BUSY may be readable now: a leader
 * sends appends to every follower that is behind and not paused. */
void raft_entries_available(struct raft *r);

/* Describe a snapshot at `index` for the driver to write before it compacts
 * the log: term and the configuration in effect there. Preconditions none;
 * errors: ERR_INVALID (index > applied), ERR_COMPACTED (below the current
 * snapshot), storage errors. */
int raft_compact(struct raft *r, uint64_t index,
                 struct raft_snapshot_meta *out);

void raft_status(const struct raft *r, struct raft_status *out);

/* ----------------------------------------------- helpers, names for logs */

const char *raft_msg_type_str(uint8_t type);
const char *raft_role_str(uint8_t role);

/* True when id is a voter (or a learner) in c. */
bool raft_conf_is_voter(const struct raft_conf *c, uint64_t id);
bool raft_conf_is_learner(const struct raft_conf *c, uint64_t id);

/* ----------------------------------------------------------- wire codec
 *
 * Message (all integers big-endian):
 *   off  size  field
 *   0    4     magic "RFTM" (0x5246544d)
 *   4    1     version (1)
 *   5    1     type (enum raft_msg_type, 1..RAFT_MSG_TYPE_MAX)
 *   6    1     flags (RAFT_MSG_F_*; other bits must be 0)
 *   7    1     reserved, 0
 *   8    8     from          16  8  to          24  8  term
 *   32   8     log_term      40  8  index       48  8  commit
 *   56   8     reject_hint   64  8  ctx
 *   72   4     entries_count (<= RAFT_CODEC_ENTRIES_MAX)
 *   76   ...   entries_count x entry:
 *                8 index, 8 term, 1 type, 4 len, len bytes data
 *   ...        type SNAP only: snapshot:
 *                8 index, 8 term, conf, 4 data_len, data
 *              conf: 1 voters_count, 1 learners_count, then 8 bytes per id
 *   end-4 4    crc32c of every byte before it
 *
 * Conf change entry data (RAFT_ENTRY_CONF):
 *   0    4     magic "RFTC" (0x52465443)
 *   4    1     version (1)
 *   5    1     type (enum raft_conf_change_type)
 *   6    8     node_id
 *   14   ...   conf (as above)
 *   ...  4     ctx_len, then ctx bytes
 *
 * Decoding checks every length against the bytes left and the limits below
 * before it allocates or reads: truncated or malformed input is ERR_CORRUPT
 * (ERR_BAD_MAGIC, ERR_BAD_VERSION, ERR_LIMIT for counts and sizes past the
 * bounds), never a crash.
 */
#define RAFT_MSG_MAGIC           0x5246544dU
#define RAFT_CC_MAGIC            0x52465443U
#define RAFT_CODEC_VERSION       1
#define RAFT_MSG_HEADER_BYTES    76
#define RAFT_ENTRY_HEADER_BYTES  21
/* Above what max_msg_bytes allows: every entry costs at least its 21-byte
 * header, so a message under the 128 MiB hard maximum holds fewer. */
#define RAFT_CODEC_ENTRIES_MAX   (1u << 23)
#define RAFT_CODEC_MSG_BYTES_MAX ((uint64_t)134217728) /* hard max */

/* Append m's encoding to out. Errors: ERR_INVALID (type, counts, conf),
 * ERR_LIMIT / -ENOMEM from the buffer (out unchanged on error). */
int raft_msg_encode(const struct raft_msg *m, struct buf *out);

/* Decode p[0..len) into out. out->entries is allocated (free it with
 * raft_msg_free_decoded); entry and snapshot data point into p (borrowed
 * as long as p). max_bytes bounds len (0 = RAFT_CODEC_MSG_BYTES_MAX).
 * Errors: ERR_CORRUPT, ERR_BAD_MAGIC, ERR_BAD_VERSION, ERR_LIMIT, -ENOMEM;
 * on error nothing needs freeing. */
int raft_msg_decode(const uint8_t *p, size_t len, uint64_t max_bytes,
                    struct raft_msg *out);
void raft_msg_free_decoded(struct raft_msg *m);

/* A membership as bytes (snapshot files' conf): u32 voters, u32 learners,
 * then the ids, all big-endian. Decode: ERR_CORRUPT on short or oversized
 * input (more than RAFT_MEMBERS_MAX of either). */
int raft_conf_encode(const struct raft_conf *c, struct buf *out);
int raft_conf_decode(const uint8_t *p, size_t len, struct raft_conf *out);

/* Conf change entry payload. Decode borrows ctx from p. */
int raft_conf_change_encode(const struct raft_conf_change *cc, struct buf *out);
int raft_conf_change_decode(const uint8_t *p, size_t len,
                            struct raft_conf_change *out);

/* ------------------------------------------------- in-memory raft_storage
 *
 * A complete raft_storage in memory, for tests and the simulator. The driver
 * writes what a ready batch says to persist; the core reads through
 * raft_memstorage_storage(). "Durable" means "in this struct": a simulator
 * that wants lost writes keeps two and copies on its simulated fsync.
 */
struct raft_memstorage {
    struct raft_hard_state hard;
    struct raft_snapshot snap; /* data owned */
    /* The log holds count entries, index snap.meta.index + 1 + k for
     * position k. The first evicted positions lost their data (given back
     * by raft_memstorage_evict); reading them goes to fetch, and without
     * one (or when it has nothing yet) entries() answers ERR_BUSY, which
     * the core takes as "not now". Of those, the first base positions are
     * not kept as entries at all, so that memory does not grow with the
     * writes between snapshots: their terms are runs, and their
     * configuration entries (with data: last_conf reads them) are confs.
     * Positions base..count-1 are ents[start .. start + count - base). */
    struct raft_entry *ents;
    size_t count;
    size_t cap;
    size_t start;
    size_t base;
    struct runs terms;        /* terms of positions 0..base-1 (base/runs.h) */
    struct raft_entry *confs; /* ascending index, all below base */
    size_t confs_n;
    size_t confs_cap;
    size_t evicted;
    uint64_t resident_bytes; /* data bytes held by entries not evicted */
    /* Serves [lo, hi) for evicted entries (lo evicted): the contract of
     * raft_storage.entries; ERR_BUSY when the data is not at hand yet (the
     * driver loads it and calls raft_entries_available). */
    int (*fetch)(void *fctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                 struct raft_entry *out, size_t cap, size_t *count);
    void *fctx;
    struct raft_storage iface;
};

void raft_memstorage_init(struct raft_memstorage *ms);
void raft_memstorage_close(struct raft_memstorage *ms);
/* The interface to put in raft_config.storage; points into ms. */
const struct raft_storage *raft_memstorage_storage(struct raft_memstorage *ms);
void raft_memstorage_set_hard_state(struct raft_memstorage *ms,
                                    const struct raft_hard_state *hs);
/* Append entries (copied), first dropping every entry >= ents[0].index.
 * Errors: ERR_INVALID (a gap after the last entry or below the snapshot),
 * -ENOMEM (unchanged). */
int raft_memstorage_append(struct raft_memstorage *ms,
                           const struct raft_entry *ents, size_t count);
/* Replace everything with snap (copied); every entry is dropped (the core
 * restores only when its log does not match the snapshot). Errors:
 * ERR_COMPACTED (older than the current snapshot), -ENOMEM. */
int raft_memstorage_apply_snapshot(struct raft_memstorage *ms,
                                   const struct raft_snapshot *snap);
/* Record a snapshot at meta (from raft_compact) with data (copied) and drop
 * entries <= meta->index. Errors: ERR_COMPACTED, ERR_INVALID, -ENOMEM. */
int raft_memstorage_compact(struct raft_memstorage *ms,
                            const struct raft_snapshot_meta *meta,
                            const void *data, size_t len);
/* Give back the data of entries with index <= upto, oldest first, until
 * at most keep_bytes of entry data stay resident; entries of length 0 cost
 * nothing and stay, and configuration entries keep theirs (last_conf). Returns
 * the bytes given back. The caller must be able to read them again (fetch)
 * before handing them to the core: only entries that are durable elsewhere (the
 * WAL) and applied may go. */
uint64_t raft_memstorage_evict(struct raft_memstorage *ms, uint64_t upto,
                               uint64_t keep_bytes);
/* Append entries that are already evicted (a driver loading a log whose
 * older part it can read again: fetch), after every entry held is evicted
 * too: entries carry no data, except configuration entries, which keep
 * theirs (copied). Errors: ERR_INVALID (an entry held has its data, a
 * gap, data where none may be, or none on a configuration entry),
 * -ENOMEM (unchanged). */
int raft_memstorage_append_evicted(struct raft_memstorage *ms,
                                   const struct raft_entry *ents, size_t count);
/* Index's term (0, or ERR_COMPACTED / ERR_NOT_FOUND as storage.term), and
 * the entry itself while it is kept whole (NULL once folded into a run of
 * terms, or out of range). For checkers: both read only. */
int raft_memstorage_term(const struct raft_memstorage *ms, uint64_t index,
                         uint64_t *term);
const struct raft_entry *raft_memstorage_entry(const struct raft_memstorage *ms,
                                               uint64_t index);
/* Deep copy src into dst (dst initialised); evicted entries stay evicted
 * and fetch is copied. Errors: -ENOMEM. */
int raft_memstorage_copy(struct raft_memstorage *dst,
                         const struct raft_memstorage *src);

#endif

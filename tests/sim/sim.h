/*
 * sim.h - the deterministic cluster simulator (private to tests/sim).
 *
 * Does:     runs N members (the real Raft core, the real WAL and snapshot
 *           files of consensus/log on a simulated disk (sim_disk.h), the
 *           real store through consensus/apply or a small in-memory register
 *           machine) and many clients on a simulated network and a virtual
 *           clock, all derived from one 64-bit seed; then checks safety
 *           (one leader per term, log matching, leader completeness, equal
 *           applied entries, linearizable client history, no lost acked
 *           write) and liveness after a healed phase.
 * Owns:     everything of one run lives in struct sim; nothing is global.
 * Threads:  one thread; a run is a pure function of its seed.
 * Borrowed: n/a (test program).
 * Errors:   violations are counted and printed with the seed; internal
 *           failures of the simulator itself are ASSERTs.
 * Limits:   SIM_SLOTS members over a run, SIM_CLIENTS_MAX clients,
 *           SIM_KEYS_MAX keys.
 * Not here: the scenario files with golden transcripts (not written yet).
 *
 * Method (after TigerBeetle's VOPR and canonical/raft's fixture): every
 * parameter (cluster size, tick, network and disk latency, loss, fault mix,
 * client mix) comes from the seed; a fault phase is followed by a healed
 * phase in which a leader must appear and every member must converge within
 * a bounded simulated time.
 */
#ifndef CAIRN_TESTS_SIM_H
#define CAIRN_TESTS_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/prng.h"
#include "consensus/apply/apply.h"
#include "consensus/kv/kv.h"
#include "consensus/log/log.h"
#include "consensus/raft/raft.h"

struct sim_disk; /* sim_disk.h */

#define SIM_SLOTS          12 /* members ever created in one run */
#define SIM_CLIENTS_MAX    10
#define SIM_KEYS_MAX       8
#define SIM_READS_MAX      64 /* pending reads per member */
#define SIM_US_PER_S       ((uint64_t)1000000)
#define SIM_NEVER          UINT64_MAX
#define SIM_VIOLATIONS_MAX 8                   /* messages kept per run */
#define SIM_PKTS_MAX       100000              /* packets in flight */
#define SIM_EVENTS_MAX     ((uint64_t)5000000) /* per run: livelock guard */

/* ------------------------------------------------------------ events */

enum sim_ev_kind {
    EV_TICK = 1,    /* a: slot, b: incarnation */
    EV_DELIVER = 2, /* p: struct sim_pkt */
    EV_DISK = 3,    /* a: slot, b: incarnation: head disk op done */
    EV_CLIENT = 4,  /* a: client, b: generation */
    EV_NEMESIS = 5, /* next fault action */
    EV_RESTART = 6, /* a: slot, b: incarnation that crashed */
    EV_HEAL = 7,    /* a: which link change to undo (partition id) */
    EV_CHECK = 8,   /* periodic checks */
    /* watchers and leases (sim_wl.h) */
    EV_WATCH = 9,      /* a: slot, b: incarnation: run the member's hub */
    EV_WCLIENT = 10,   /* a: watch client, b: token */
    EV_LTICK = 11,     /* a: slot, b: incarnation: lease timer tick */
    EV_LAGENT = 12,    /* a: lease agent, b: token */
    EV_WPROGRESS = 13, /* a: slot, b: incarnation: progress_notify tick */
    EV_CRASH = 14,     /* a: slot, b: incarnation: crash with I/O in flight */
    EV_INSTALL = 15,   /* a: slot, b: incarnation: a snapshot's store half */
    EV_FETCH = 16,     /* a: slot, b: incarnation: evicted entries loaded */
};

struct sim_ev {
    uint64_t at; /* virtual microseconds */
    uint64_t seq;
    uint32_t kind;
    uint32_t a;
    uint64_t b;
    void *p;
};

struct sim_heap {
    struct sim_ev *v;
    size_t count;
    size_t cap;
};

/* ----------------------------------------------------------- network */

struct sim_pkt {
    struct sim_pkt *next_free;
    uint32_t from; /* slots */
    uint32_t to;
    uint32_t from_inc; /* sender incarnation (for snapshot reports) */
    uint8_t type;      /* raft_msg_type, for reports and stats */
    bool lost;         /* delivered as a loss report only (snapshots) */
    struct buf b;      /* the encoded message */
};

struct sim_net {
    struct sim_pkt *free_list;
    size_t pkts_live;
    /* link[from][to]: false = cut. Index by slot. */
    bool up[SIM_SLOTS][SIM_SLOTS];
    uint32_t loss_ppm; /* per message */
    uint32_t dup_ppm;  /* per message (never MsgProp, see sim_net.c) */
    uint32_t slow_ppm; /* long delay */
    uint64_t delay_min_us;
    uint64_t delay_max_us;
    uint64_t slow_max_us;
    /* stats */
    uint64_t sent;
    uint64_t delivered;
    uint64_t dropped;
    uint64_t duplicated;
};

/* ------------------------------------------------------------ disk */

/* One ready batch's write, pending until its simulated fsync. The bytes
 * went to the WAL on the simulated disk at once (sim_disk.h); this keeps
 * what the member learns when the I/O is done. */
struct sim_dop {
    uint64_t done_at;
    uint64_t disk_mark; /* sim_disk_mark() after the batch's I/O */
    bool has_snap;
    struct raft_snapshot snap; /* data owned */
    struct raft_entry *ents;   /* owned, each data owned */
    size_t ents_count;
    bool has_hard;
    struct raft_hard_state hard;
    struct sim_pkt **after; /* msgs_after_persist, encoded */
    size_t after_count;
    /* A received MsgSnap (encoded, owned) whose copy of the store was
     * written to the received-copy file: stepped into Raft when done. */
    struct buf snap_in;
};

/* ---------------------------------------------------- state machines */

enum sim_fsm_kind {
    FSM_MEM = 0, /* a register per key, in memory (lost on crash) */
    FSM_KV = 1,  /* the real store through consensus/apply */
};

struct sim_fsm {
    uint64_t applied;
    uint64_t applied_term;
    /* FSM_MEM */
    uint64_t vals[SIM_KEYS_MAX]; /* 0 = absent */
    /* FSM_KV */
    struct kv *kv;
    struct apply ap;
    bool ap_open;
    char dir[128];
};

/* ----------------------------------------------------------- members */

struct sim_pending {
    uint64_t req_id; /* 0 = free */
    uint32_t client;
    uint64_t client_gen;
};

struct sim_read {
    uint64_t ctx; /* 0 = free */
    uint64_t index;
    bool have_index;
    uint32_t client; /* a client's index, or a lease agent's (agent) */
    uint64_t client_gen;
    /* a lease agent's in-memory renewal waiting for its round
     * (sim_lease.c, as api_lease.c's confirm_start) */
    bool agent;
    int64_t ttl;    /* the answer */
    uint64_t term;  /* the lease table's term at the renewal */
    uint64_t at_us; /* when it renewed */
};

struct sim_member {
    uint32_t slot;
    uint64_t id;
    bool exists;       /* slot in use */
    bool up;           /* running (not crashed) */
    bool removed;      /* removed from the cluster: stopped for good */
    bool stop_pending; /* removal applied somewhere: stop after the event */
    bool initial;      /* in the bootstrap configuration */
    uint64_t inc;      /* incarnation, bumped at each start */
    uint64_t tick_us;
    struct raft raft;
    bool raft_open;
    struct raft_memstorage ds; /* Raft's storage: what the log holds
                                  durably (rebuilt from it at each start) */
    struct sim_dop *dops;      /* FIFO of unsynced writes */
    size_t dops_head;
    size_t dops_count;
    size_t dops_cap;
    uint64_t disk_free_at;
    struct sim_fsm fsm;
    struct sim_pending props[SIM_CLIENTS_MAX];
    struct sim_read reads[SIM_READS_MAX];
    uint64_t leader; /* from the last batch */
    uint8_t role;
    uint64_t commit_seen; /* highest commit recorded in the checker */
    uint64_t compact_every;
    uint64_t crashes;
    /* --- the real WAL and snapshot files on a simulated disk (simlog) */
    struct sim_disk *disk; /* survives crashes; freed with the member */
    struct log *log;       /* open while up, and after a final stop */
    struct log_options lo; /* segment size from the seed, vfs = disk */
    uint32_t tear_pct;     /* chance that a crash tears the next write */
    uint64_t wal_term;     /* term and vote in the WAL's last hard state */
    uint64_t wal_vote;
    struct buf arena;       /* entry data read back from the log */
    bool crash_armed;       /* nemesis: crash during the next write */
    uint64_t unsynced_from; /* lowest index an unsynced write at the last
                               crash could replace (UINT64_MAX: none) */
    /* --- a received snapshot, installed in two halves as consensus/node
     * does (sim_member.c): reset by a crash */
    bool snap_in_syncing;   /* its copy's write is in flight */
    uint64_t snap_in_index; /* the copy last stepped into Raft */
    bool inst_pending;      /* installing (node: snap_installing) */
    bool inst_wal_done;     /* metadata saved, WAL reset: durable */
    bool inst_store_done;   /* store swapped to the received copy */
    uint64_t inst_index;    /* the snapshot being installed */
    uint64_t inst_term;
    uint64_t inst_applied;       /* the applied index reads see meanwhile */
    uint64_t inst_persist_index; /* entries written with the reset: */
    uint64_t inst_persist_term;  /* reported once the install is done */
    /* --- the in-memory log kept to a budget, as consensus/node does
     * (node_logmem.c): applied entries' data given back, read back from
     * the WAL after a delay (ERR_BUSY meanwhile). From a prng of its own,
     * so that runs without eviction keep their schedules. */
    struct sim *sim;
    bool evict_on;
    uint64_t evict_keep; /* data bytes kept resident */
    struct prng frng;
    bool fetch_loading; /* EV_FETCH scheduled */
    bool fetch_ready;   /* [fetch_lo, fetch_hi) may be read now */
    uint64_t fetch_lo;
    uint64_t fetch_hi;
};

/* ----------------------------------------------------------- clients */

enum sim_op_type {
    OP_PUT = 1,
    OP_GET = 2,
    OP_DEL = 3,
    OP_CAS = 4,
};

enum sim_outcome {
    OUT_PENDING = 0,
    OUT_OK = 1,
    OUT_FAIL = 2,    /* definitely had no effect: dropped from the history */
    OUT_UNKNOWN = 3, /* may or may not have taken effect */
};

struct sim_op {
    uint8_t type;
    uint8_t key;
    uint8_t outcome;
    bool final_read; /* issued in the final phase */
    uint32_t client;
    uint64_t value;    /* put/cas: new value */
    uint64_t expected; /* cas: expected value (0 = absent) */
    uint64_t result;   /* get: value; del: deleted count; cas: 1 succeeded */
    uint64_t call_us;
    uint64_t ret_us; /* SIM_NEVER for unknown */
};

struct sim_client {
    uint32_t idx;
    bool busy;
    uint64_t gen;  /* bumps at each op, invalidates stale completions */
    size_t op;     /* index in history while busy */
    uint32_t slot; /* member the op went to */
    uint64_t req_id;
    uint64_t deadline;
    uint32_t prefer;     /* member it talks to */
    uint64_t wake_token; /* the EV_CLIENT that is current */
    uint32_t final_next; /* next key of the final reads */
    uint64_t last_seen[SIM_KEYS_MAX];
};

/* ----------------------------------------------------------- checker */

struct sim_logent {
    uint64_t term;
    uint32_t crc;
    uint8_t type;
};

/* Per index, the distinct (term, crc) pairs seen in durable logs. */
struct sim_idxterms {
    struct sim_logent e[4];
    uint32_t count;
};

struct sim_check {
    uint64_t *leader_of_term; /* id, by term */
    size_t terms_cap;
    struct sim_logent *applied; /* by index; term 0 = none */
    uint64_t *commit_term;      /* by index; min term seen committed */
    size_t idx_cap;
    uint64_t *req_index; /* by request id: the index that carried it */
    size_t req_cap;
    /* FSM_KV: by written value, the store revision that put it (a value is
     * written by one request, so it must take effect at one revision). */
    int64_t *val_rev;
    size_t val_cap;
    struct sim_idxterms *logs; /* by index */
    size_t logs_cap;
    uint64_t max_commit;
};

/* ------------------------------------------------------------ params */

struct sim_params {
    uint32_t voters;   /* initial: 3 or 5 */
    uint32_t learners; /* initial extra learners added at start */
    uint32_t clients;
    uint32_t keys;
    uint64_t tick_us;
    uint32_t election_ticks;
    uint32_t heartbeat_ticks;
    bool pre_vote;
    bool check_quorum;
    uint64_t max_msg_bytes;
    uint32_t max_inflight;
    uint64_t max_committed_bytes;
    uint64_t disk_min_us;
    uint64_t disk_max_us;
    uint64_t think_min_us;
    uint64_t think_max_us;
    uint64_t client_timeout_us;
    uint64_t fault_us; /* length of the fault phase */
    uint64_t heal_us;  /* liveness bound after healing */
    uint64_t nemesis_mean_us;
    uint32_t fault_mask; /* enabled fault kinds (swarm testing) */
    uint64_t compact_min;
    uint64_t compact_max;
    uint32_t loss_ppm;
    uint32_t dup_ppm;
};

enum sim_fault {
    F_PARTITION = 1u << 0,
    F_ASYM = 1u << 1,
    F_CRASH = 1u << 2,
    F_LOSS = 1u << 3,
    F_MEMBERSHIP = 1u << 4,
    F_TRANSFER = 1u << 5,
    F_ISOLATE_LEADER = 1u << 6,
    F_CRASH_LEADER = 1u << 7,
};

enum sim_phase {
    PHASE_FAULT = 0,
    PHASE_HEAL = 1,
    PHASE_FINAL = 2,
    PHASE_DONE = 3,
};

struct sim_opts {
    bool trace;
    enum sim_fsm_kind fsm;
    const char *shm_dir;
    bool verbose;
    bool dump_history; /* print the client history before checking it */
    uint64_t fault_us; /* 0 = from seed */
    bool no_wl;        /* no watchers, leases or compactions */
    bool no_evict;     /* members keep every entry's data in memory */
    uint32_t plant;    /* planted bug in the watch/lease wiring (sim_wl.h),
                          or 7: a restart ignores the received copy */
};

struct sim_wl;

struct sim {
    uint64_t seed;
    struct sim_opts opts;
    struct sim_params p;
    struct prng rng;     /* scenario decisions */
    struct prng net_rng; /* network fates */
    uint64_t now;
    uint64_t ev_seq;
    uint64_t events;
    struct sim_heap heap;
    struct sim_net net;
    struct sim_member m[SIM_SLOTS];
    uint32_t slots_used;
    struct sim_client c[SIM_CLIENTS_MAX];
    struct sim_op *hist;
    size_t hist_count;
    size_t hist_cap;
    uint64_t next_value;
    uint64_t next_req;
    uint64_t next_ctx;
    enum sim_phase phase;
    uint64_t heal_at;
    uint64_t converged_at;
    uint64_t leader_at; /* first leader seen after healing */
    bool final_started;
    uint32_t final_done;
    struct sim_check ck;
    struct raft_conf bootstrap;
    struct buf scratch;  /* encoding */
    struct buf scratch2; /* envelope */
    uint64_t trace_hash;
    /* results */
    uint32_t violations;
    char vmsg[SIM_VIOLATIONS_MAX][200];
    /* stats */
    uint64_t st_ops_ok;
    uint64_t st_ops_unknown;
    uint64_t st_ops_fail;
    uint64_t st_crashes;
    uint64_t st_partitions;
    uint64_t st_conf_changes;
    uint64_t st_transfers;
    uint64_t st_snap_installs;
    uint64_t st_compactions;
    uint64_t st_elections;
    uint64_t st_torn;
    uint64_t st_torn_garbage;   /* torn writes with garbage after the prefix */
    uint64_t st_wal_repairs;    /* restarts whose WAL was behind its snapshot */
    uint64_t st_store_catchups; /* restarts whose store was behind it */
    uint64_t st_inst_crashes;   /* crashes aimed between install halves */
    uint64_t st_fetch_busy;     /* evicted entries asked for, not at hand */
    uint64_t st_fetch_served;   /* evicted entries served from the WAL */
    uint64_t st_lin_steps;
    bool lin_gave_up;
    uint32_t partition_gen;
    struct sim_wl *wl; /* watchers and leases (sim_ref.c) */
};

/* sim.c */
void sim_violation(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sim_trace(struct sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sim_hash(struct sim *s, uint64_t a, uint64_t b);
void sim_schedule(struct sim *s, uint64_t at, uint32_t kind, uint32_t a,
                  uint64_t b, void *p);

/* sim_net.c */
void net_init(struct sim *s);
void net_close(struct sim *s);
void net_free_pkt(struct sim *s, struct sim_pkt *p);
/* Encode m into a packet (not yet sent). */
struct sim_pkt *net_encode(struct sim *s, uint32_t from,
                           const struct raft_msg *m);
/* Decide the packet's fate and schedule its delivery (or drop it). */
void net_send(struct sim *s, struct sim_pkt *p);
void net_deliver(struct sim *s, struct sim_pkt *p);
void net_heal_all(struct sim *s);

/* sim_member.c */
int member_start(struct sim *s, uint32_t slot);
void member_crash(struct sim *s, uint32_t slot);
void member_stop_for_good(struct sim *s, uint32_t slot);
void member_free(struct sim *s, uint32_t slot);
void member_drive(struct sim *s, struct sim_member *m);
void member_tick(struct sim *s, struct sim_member *m);
void member_disk_done(struct sim *s, struct sim_member *m);
void member_step(struct sim *s, struct sim_member *m,
                 const struct raft_msg *msg);
/* A MsgSnap for m (p borrowed): its store copy goes to the received-copy
 * file first, and the message is stepped when that write is durable; a
 * copy arriving while another is being written or installed is dropped,
 * as the node refuses such a stream. */
void member_snap_in(struct sim *s, struct sim_member *m,
                    const struct raft_msg *msg, const struct sim_pkt *p);
/* EV_INSTALL: the store half of the pending snapshot install. */
void member_install_store(struct sim *s, struct sim_member *m);
/* EV_FETCH: the evicted entries asked for are "read back" now. */
void member_fetch_done(struct sim *s, struct sim_member *m);
/* Entry i of the member's log as written (durable + pending), or false. */
bool member_log_get(struct sim_member *m, uint64_t index,
                    struct raft_entry *out, bool *compacted);
uint64_t member_log_last(const struct sim_member *m);
int member_propose_op(struct sim *s, struct sim_member *m, struct sim_client *c,
                      const struct sim_op *op);
int member_read(struct sim *s, struct sim_member *m, struct sim_client *c);
/* A read-index round for something else than a client: *out is the slot
 * to fill (agent and the rest) before the next member_drive. */
int member_read_start(struct sim *s, struct sim_member *m,
                      struct sim_read **out);
/* The state machine answered a proposal (any member; only the proposer
 * has it pending). */
void member_answer(struct sim *s, struct sim_member *m, uint64_t req_id,
                   int outcome, uint64_t result);

/* sim_fsm.c */
int fsm_open(struct sim *s, struct sim_member *m);
void fsm_close(struct sim *s, struct sim_member *m, bool destroy);
void fsm_crash(struct sim *s, struct sim_member *m);
/* Apply committed entries; answers go to client_done via member. */
int fsm_apply(struct sim *s, struct sim_member *m, const struct raft_entry *e,
              size_t n);
int fsm_read(struct sim *s, struct sim_member *m, uint32_t key, uint64_t *val);
int fsm_snapshot(struct sim *s, struct sim_member *m, struct buf *out);
int fsm_restore(struct sim *s, struct sim_member *m, const uint8_t *data,
                size_t len, uint64_t index, uint64_t term);
int fsm_encode_op(struct sim *s, struct sim_member *m, uint64_t req_id,
                  const struct sim_op *op, struct buf *out);
uint64_t fsm_digest(struct sim *s, struct sim_member *m);
/* The highest proposal id of m's own that its store has applied
 * (apply_last_id); 0 with the in-memory machine, which keeps none. */
uint64_t fsm_last_id(struct sim *s, struct sim_member *m);

/* sim_client.c */
void client_wake(struct sim *s, struct sim_client *c);
void client_done(struct sim *s, uint32_t client, uint64_t gen, int outcome,
                 uint64_t result);
/* Called by a member that answered a read: the value at this moment. */
void client_read_done(struct sim *s, uint32_t client, uint64_t gen,
                      struct sim_member *m);
void clients_start(struct sim *s);
void clients_final_reads(struct sim *s);

/* sim_check.c */
void check_init(struct sim *s);
void check_close(struct sim *s);
void check_leader(struct sim *s, struct sim_member *m, uint64_t term);
void check_commit(struct sim *s, struct sim_member *m, uint64_t commit,
                  uint64_t term);
void check_put_effect(struct sim *s, struct sim_member *m, uint64_t value,
                      int64_t rev);
void check_applied(struct sim *s, struct sim_member *m,
                   const struct raft_entry *e);
void check_durable(struct sim *s, struct sim_member *m,
                   const struct raft_entry *e, size_t n);
void check_logs_pairwise(struct sim *s);
void check_final_state(struct sim *s);
bool check_converged(struct sim *s, uint64_t *leader_slot);

/* sim_ref.c: watchers and leases (sim_wl.h). Every hook is a no-op when
 * they are off (--fsm mem, --no-wl). */
void wl_init(struct sim *s); /* after the parameters are picked */
void wl_start(struct sim *s);
void wl_shutdown(struct sim *s); /* run over: before the heap goes */
void wl_close(struct sim *s);
void wl_dispatch(struct sim *s, const struct sim_ev *e);
int64_t wl_min_lease_ttl(const struct sim *s);
/* sim_fsm.c: the store opened (start, restart), is going away (crash,
 * close), was replaced by a snapshot. */
int wl_member_open(struct sim *s, struct sim_member *m);
void wl_member_down(struct sim *s, struct sim_member *m);
int wl_member_restored(struct sim *s, struct sim_member *m);
/* sim_member.c: the member's Raft role changed (m->role is the new one). */
void wl_role_changed(struct sim *s, struct sim_member *m);
/* sim_member.c: a lease agent's read-index round (member_read_start):
 * does the agent still wait for it; it ended (ok: the read point is
 * applied; else failed). */
bool wl_agent_waits(struct sim *s, uint32_t idx, uint64_t gen);
void wl_ka_confirmed(struct sim *s, struct sim_member *m,
                     const struct sim_read *r, bool ok);
/* sim_member.c: after a snapshot install, m's proposals with ids at or
 * below last_id get no answer from apply any more: they are lost.
 * Returns how many there were. */
uint32_t wl_member_swallowed(struct sim *s, struct sim_member *m,
                             uint64_t last_id);
/* sim_fsm.c: around apply_entries, and apply's hooks. */
void wl_apply_begin(struct sim *s, struct sim_member *m,
                    const struct raft_entry *e, size_t n);
void wl_apply_end(struct sim *s, struct sim_member *m);
int wl_on_event(struct sim *s, struct sim_member *m, const struct kv_event *ev);
/* Whether m's apply must give every event its prev (kv_write_event_prev):
 * false while its hub has no prev_kv watcher, on seeds that let the apply
 * skip it (about half). */
bool wl_events_prev_all(struct sim *s, struct sim_member *m);
void wl_on_lease(struct sim *s, struct sim_member *m, int64_t id, int64_t ttl,
                 bool checkpoint);
/* An answer to one of ours: true if it was (then it is handled). */
bool wl_result(struct sim *s, struct sim_member *m,
               const struct apply_result *res);
/* sim.c: the final phase began; may the run end now (watchers caught up,
 * abandoned leases gone)?; the end-of-run checks. */
void wl_final(struct sim *s);
bool wl_final_done(struct sim *s);
void wl_check_end(struct sim *s);
void wl_report(const struct sim *s, char *out, size_t len);

/* sim_lin.c: is the history (per key) linearizable for a register with
 * put/get/delete/cas? Returns 0 ok, 1 violation (message filled), 2 the
 * search gave up (budget). */
int lin_check(struct sim *s, char *msg, size_t msg_len);
/* Known histories, known verdicts; prints TAP lines, returns failures. */
int lin_selftest(void);

#endif

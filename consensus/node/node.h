/*
 * node.h - one cluster member: drives Raft, the write-ahead log, the peer
 * transport and the store.
 *
 * Does:     turns wall time into Raft ticks; runs the persist -> send ->
 *           apply cycle of consensus/raft's ready batches; proposes client
 *           writes and hands each proposer its answer; serves linearizable
 *           read points (ReadIndex); exposes leader, term, applied index and
 *           membership. It makes no protocol decisions of its own.
 * Owns:     the data directory (member/wal, member/snap, member/kv), the
 *           Raft core and its in-memory log (a raft_memstorage mirrored
 *           durably by the WAL: the WAL is written, and read only at start),
 *           two threads (the WAL writer and the store applier), the peer
 *           transport, and every pending proposal and read.
 * Threads:  every node_* function runs on the loop thread. The WAL thread
 *           owns struct log; the apply thread owns the store's write handle.
 *           Store reads (kv_read_begin) may run on any thread.
 * Borrowed: node_kv() and node_apply() live until node_close(); answers
 *           handed to callbacks live until the callback returns.
 * Errors:   node_open: ERR_LOCKED, ERR_CORRUPT (log or store), ERR_INVALID
 *           (config), -errno. node_propose: ERR_NO_LEADER, ERR_STOPPED,
 *           ERR_TOO_MANY_REQUESTS, ERR_REQUEST_TOO_LARGE, -ENOMEM; later,
 *           through the callback: the request's own error, ERR_TIMEOUT
 *           (etcd's "request timed out"), ERR_STOPPED. A WAL or store
 *           failure stops the member (it cannot go on safely): node_failed()
 *           then says why and every call returns ERR_STOPPED.
 * Limits:   pending proposals (LIMIT_RAFT_PENDING_PROPOSALS), pending reads,
 *           queued WAL and apply work (bounded by Raft's uncommitted bytes).
 * Not here: the etcd API (registry/), leases' timers (consensus/lease),
 *           watchers (consensus/watch).
 *
 * Durability order (see consensus/raft/raft.h, the ready batch rules): a
 * batch's entries and hard state go to the WAL thread, which appends and
 * fsyncs many batches at once (group commit); only when that is done are
 * the batch's "after persist" messages sent and raft_persisted() reported.
 * Committed entries go to the apply thread, which applies a whole run of
 * them in one store transaction that records the applied index; answers
 * are released after that commit. The store itself is not fsynced per
 * batch: node_ckpt.c keeps checkpoints of it and trims the WAL only below
 * the newest one, and after a system crash (not a process crash) restores
 * the checkpoint and replays the log.
 */
#ifndef CAIRN_CONSENSUS_NODE_H
#define CAIRN_CONSENSUS_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "consensus/apply/apply.h"
#include "consensus/kv/kv.h"
#include "consensus/raft/raft.h"

struct node;
struct ssl_ctx_st; /* OpenSSL SSL_CTX */

#define NODE_MEMBERS_MAX   RAFT_MEMBERS_MAX
#define NODE_NAME_MAX      64
#define NODE_URLS_MAX      256
#define NODE_FSYNC_BUCKETS 15 /* see node_status.wal_fsync_buckets */

/* One member as the cluster knows it (etcd's Member). */
struct node_member {
    uint64_t id;
    char name[NODE_NAME_MAX];
    char peer_urls[NODE_URLS_MAX];   /* comma separated */
    char client_urls[NODE_URLS_MAX]; /* comma separated */
    bool learner;
    /* the request level it published (apply.h, APPLY_LEVEL); 0: none yet
     * (not published since it joined, or a binary that predates levels) */
    uint32_t apply_level;
};

/* How the store stays recoverable after a power loss (node_ckpt.c):
 * copies, checkpoints in place, or in place at rest and copies under
 * writes. */
enum node_ckpt_mode {
    NODE_CKPT_AUTO = 0,
    NODE_CKPT_COPY,
    NODE_CKPT_IN_PLACE,
};

struct node_config {
    const char *data_dir; /* member/ is created inside */
    uint64_t member_id;   /* this member */
    uint64_t cluster_id;
    uint32_t heartbeat_ms;   /* etcd's --heartbeat-interval */
    uint32_t election_ms;    /* etcd's --election-timeout */
    uint64_t snapshot_count; /* applied entries between Raft snapshots */
    enum node_ckpt_mode checkpoint_mode; /* node_ckpt.c; default auto */
    /* Data of applied Raft entries kept in memory for lagging followers
     * (older ones are read back from the WAL); 0: 32 MiB. */
    uint64_t raft_log_memory_bytes;
    uint64_t quota_bytes;          /* store quota (0: default) */
    bool store_writemap;           /* kv_options.writemap */
    uint64_t store_resident_bytes; /* kv_options.resident_bytes (0: its
                                    * default) */
    uint32_t max_txn_ops;
    uint32_t max_request_bytes;
    bool unsafe_no_fsync;
    uint64_t seed; /* election jitter, transport backoff */
    /* Members of a new cluster (all of them, this one included); ignored
     * when the data directory already holds a cluster. */
    struct node_member initial[NODE_MEMBERS_MAX];
    size_t initial_count;
    /* "ip:port" or "https://ip:port"; NULL: no peer port (1 member) */
    const char *listen_peer;
    /* Peer TLS contexts (OpenSSL SSL_CTX), borrowed for node_open: the
     * transport takes its own references. The server one is required for
     * an https:// listen_peer; the client one dials https:// peers. */
    struct ssl_ctx_st *peer_tls_server_ctx;
    struct ssl_ctx_st *peer_tls_client_ctx;
    bool peer_tls_check_client_san; /* see transport_config */
    /* Published to the cluster once the member runs (MemberList shows
     * them): this member's name and client URLs (comma separated). */
    const char *name;
    const char *client_urls;
    struct auth *auth; /* borrowed; the applier loads and changes it */
    /* Joining a running cluster (--initial-cluster-state existing): Raft
     * starts with no configuration and learns it from the leader. */
    bool join_existing;
    /* --initial-cluster-token: mixed into member ids (see below). */
    const char *cluster_token;
    /* --strict-reconfig-check: membership changes that would leave too
     * few started or reachable voters are refused (node_member_change). */
    bool strict_reconfig;
};

/* Fill cfg with etcd's defaults (heartbeat 100, election 1000, snapshot
 * count 100000); data_dir, ids and members are left for the caller. */
void node_config_default(struct node_config *cfg);

/* What a proposer hears back: the result of apply (see apply.h), or an
 * error without a response (ERR_TIMEOUT, ERR_STOPPED). */
typedef void (*node_propose_cb)(void *ctx, const struct apply_result *res);

/* A linearizable read point: serve the read from the store now (err 0), or
 * fail it (ERR_TIMEOUT, ERR_NO_LEADER, ERR_STOPPED). */
typedef void (*node_read_cb)(void *ctx, int err);

/* Told on the loop thread, after the store committed them, of every store
 * event (for watchers) and lease change (for lease timers). */
struct node_observer {
    void *ctx;
    /* Events of one applied batch, in order; borrowed for the call. */
    void (*events)(void *ctx, const struct kv_event *evs, size_t n,
                   int64_t rev);
    void (*lease)(void *ctx, int64_t id, int64_t ttl, bool checkpoint);
    /* The leader or the term changed; also called again, with the same
     * leader and term, once node_lead_applied turns true. */
    void (*leader)(void *ctx, uint64_t leader, uint64_t term);
    /* The store was replaced by a leader's snapshot (revision rev): every
     * view built from the store (watchers' positions, lease timers) must
     * be rebuilt from it. */
    void (*restored)(void *ctx, int64_t rev);
    /* Events on keys with this prefix always carry prev (NULL: none);
     * the others only while node_events_prev(n, true) (the default). */
    const char *events_prev_prefix;
};

/* Whether every event must carry prev (some consumer wants it for any
 * key) or only those under obs.events_prev_prefix: the others then come
 * with prev_omitted, and the apply thread saves reading the old value.
 * Any thread; takes effect at the next applied batch. */
void node_events_prev(struct node *n, bool all);

/* Open the member's data (replaying the WAL into memory), start its
 * threads, timers and peer listener on loop. *out is owned by the caller
 * until node_close's callback. msg gets one line on error. */
int node_open(uv_loop_t *loop, const struct node_config *cfg,
              const struct node_observer *obs, struct node **out, char *msg,
              size_t msg_len);

/* Stop: fail pending proposals and reads with ERR_STOPPED, drain and join
 * the threads, sync the store and the WAL, close handles. done runs once
 * everything is closed and memory is freed. */
void node_close(struct node *n, void (*done)(void *ctx), void *ctx);

/* New peer TLS contexts (--peer-* files read again) for the connections
 * made from now on; see transport_tls_set. Borrowed for the call. No-op
 * without a peer transport. Errors: as transport_tls_set. */
int node_peer_tls_set(struct node *n, struct ssl_ctx_st *server_ctx,
                      struct ssl_ctx_st *client_ctx);

/* Propose an etcd request (op and its protobuf bytes, copied). cb runs
 * exactly once when 0 is returned, never when an error is returned.
 * timeout_ms 0: etcd's default (5 s + 2 election timeouts). */
int node_propose(struct node *n, enum apply_op op, const uint8_t *req,
                 size_t len, uint32_t timeout_ms, node_propose_cb cb,
                 void *ctx);

/* The same, with Cairn-only envelope fields extra[0..extra_len) (copied;
 * apply_audit_field's output) after the request. max_request_bytes bounds
 * the request and the extra together. */
int node_propose_extra(struct node *n, enum apply_op op, const uint8_t *req,
                       size_t len, const uint8_t *extra, size_t extra_len,
                       uint32_t timeout_ms, node_propose_cb cb, void *ctx);

/* Ask for a linearizable read point; cb runs once (always, when 0 is
 * returned) when the store has applied everything committed before the
 * call, or with an error. */
int node_read_index(struct node *n, uint32_t timeout_ms, node_read_cb cb,
                    void *ctx);

/* Membership changes through Raft (one at a time, as raft.h explains).
 * ADD and ADD_LEARNER take m's id, name and peer URLs; REMOVE and PROMOTE
 * take m->id; UPDATE replaces m->id's peer URLs. cb runs once when the
 * change is applied here (err 0), or with ERR_TIMEOUT / ERR_STOPPED.
 * Errors now: ERR_NO_LEADER, ERR_MEMBER_EXISTS, ERR_MEMBER_NOT_FOUND,
 * ERR_NOT_LEARNER, ERR_LEARNER_NOT_READY, ERR_TOO_MANY_LEARNERS, ERR_BUSY
 * (another change is pending), ERR_STOPPED; with cfg.strict_reconfig also
 * ERR_NOT_ENOUGH_STARTED (too few voters ever published themselves, as
 * etcd's IsReadyTo{Add,Remove,Promote}) and, on the leader, ERR_UNHEALTHY
 * (raft_config.strict_conf: voters it has not heard from lately). */
enum node_member_op {
    NODE_MEMBER_ADD = 1,
    NODE_MEMBER_ADD_LEARNER = 2,
    NODE_MEMBER_REMOVE = 3,
    NODE_MEMBER_PROMOTE = 4,
    NODE_MEMBER_UPDATE = 5,
};
/* The id a member with these peer URLs gets in this cluster. */
uint64_t node_member_id_for(const struct node *n, const char *peer_urls);

int node_member_change(struct node *n, enum node_member_op op,
                       const struct node_member *m, uint32_t timeout_ms,
                       node_propose_cb cb, void *ctx);

/* Hand leadership to member `to` (MoveLeader); only on the leader
 * (ERR_NOT_LEADER). cb (err 0) runs once `to` leads, or with ERR_TIMEOUT
 * (etcd: "leader transfer took too long") after timeout_ms. */
int node_transfer_leader(struct node *n, uint64_t to, uint32_t timeout_ms,
                         node_read_cb cb, void *ctx);

/* Write a consistent copy of the store to fd (kv_snapshot_write) under
 * the store lock's read side. Any thread; blocks while it copies. */
int node_snapshot_write(struct node *n, int fd);

/* Defragment the store on the apply thread, with readers locked out for
 * its duration; cb gets the result. */
int node_defrag(struct node *n, node_read_cb cb, void *ctx);

/* A store read handle, taken under the node's store lock so that a
 * snapshot install never swaps the store under a reader. Every reader of
 * node_kv() uses these instead of kv_read_begin/kv_read_end. Any thread. */
int node_read_begin(struct node *n, struct kv_read **rd);
void node_read_end(struct node *n, struct kv_read *rd);

/* The store file's size and the bytes of it in use (kv_size), read under
 * the store lock: a defrag or an install closes and reopens LMDB's
 * environment, and kv_size outside the lock read it half open (a SIGSEGV
 * in mdb_env_info when /metrics or Status came during a defrag). While a
 * swap holds the lock it answers the last sizes instead of waiting. Loop
 * thread. */
void node_store_size(struct node *n, uint64_t *db_bytes,
                     uint64_t *in_use_bytes);

/* Store and applier, for reads (through node_read_begin). */
struct kv *node_kv(struct node *n);
struct apply *node_apply(struct node *n);

struct node_status {
    uint64_t member_id;
    uint64_t cluster_id;
    uint64_t leader; /* 0: none */
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t first_index; /* the Raft log's first and last entry (the log */
    uint64_t last_index;  /* may run past commit_index on any member) */
    uint8_t role;         /* enum raft_role */
    bool learner;
    uint64_t proposals_pending;
    uint64_t proposals_failed;
    uint64_t proposals_committed;
    uint64_t leader_changes;
    uint64_t wal_fsyncs;
    uint64_t wal_fsync_ns_total;
    /* Batches of new entries handed to the apply thread beside their WAL
     * write (a lone voter; their store commit waits for Raft's). */
    uint64_t early_batches;
    /* Jobs handed to the WAL thread: writes (entries, a hard state that
     * changed term or vote, a snapshot's reset, messages that wait for
     * them), releases of old segments and reads of evicted entries. Each
     * is a round trip through that thread. */
    uint64_t wal_jobs;
    /* Early batches whose store commit the WAL thread released itself,
     * once durable (a lone voter's rule), before the loop told Raft. */
    uint64_t wal_gate_opens;
    /* Of wal_jobs, those the loop wrote and synced itself, the WAL thread
     * idle (a lone entry in a run of them, on a quick disk). */
    uint64_t wal_inline;
    /* fsync durations: bucket i counts those of at most 1 ms << i (etcd's
     * buckets, 0.001 s doubling to 8.192 s); the last counts the rest.
     * Not cumulative. */
    uint64_t wal_fsync_buckets[NODE_FSYNC_BUCKETS];
    /* The in-memory Raft log: entry data held, and what was given back and
     * read again from the WAL for lagging followers. */
    uint64_t log_resident_bytes;
    uint64_t log_entries;
    uint64_t log_evicted_bytes;
    uint64_t log_reads;
    uint64_t log_read_bytes;
    /* The peer port (transport_stats; zero before the transport starts). */
    uint64_t peer_conns_accepted;
    uint64_t peer_conns_refused;
    uint64_t peer_conns_in_open;
    uint64_t peer_conns_malformed;
    uint64_t peer_tls_failed;
};
void node_status(const struct node *n, struct node_status *out);

/* One peer's traffic on the peer port (etcd's etcd_network_peer_* series
 * on /metrics). */
struct node_peer_stats {
    uint64_t id;
    uint64_t bytes_sent, bytes_received;
    uint64_t msgs_dropped; /* not sent: queue full, or the peer down */
    uint64_t snapshots_sent, snapshots_received;
    bool connected;
};
/* The transport's peers (the other members), at most max of them; returns
 * how many were written (0 before the transport starts). Loop thread. */
size_t node_peer_stats(const struct node *n, struct node_peer_stats *out,
                       size_t max);

/* The current term and the cluster id, for response headers: cheap (no
 * copy of the Raft status), loop thread. */
uint64_t node_term(const struct node *n);
/* The applied index as the loop has delivered it (results, events, lease
 * changes): what the loop thread's view of the store reflects. */
uint64_t node_applied(const struct node *n);
/* This member leads and the loop has applied its term's first entry (the
 * leader's empty entry): everything earlier leaders committed is applied
 * here, and an entry of an earlier term can no longer commit unless it came
 * before that one. Until then the term may never commit anything, and
 * another member may still commit what an earlier leader appended: the
 * lease timers lead only from here (api_lease.c; lease.h, point 1). */
bool node_lead_applied(const struct node *n);
/* A NOSPACE alarm is raised, as of this member's last applied entry: its
 * writes would be refused at apply (any thread). */
bool node_nospace(struct node *n);
uint64_t node_cluster_id(const struct node *n);

/* The members as this node knows them; returns the count (<= cap). */
size_t node_members(const struct node *n, struct node_member *out, size_t cap);

/* Has every member of the cluster published request level `level` or newer
 * (apply.h)? False while any member has not (an older binary in a rolling
 * upgrade, a member that joined and has not published yet): a proposer
 * then keeps to the requests every member reads the same way. */
bool node_apply_level(const struct node *n, uint32_t level);

/* The lowest level any member has published, as this member's table says
 * (0: a member has published none). */
uint32_t node_cluster_apply_level(const struct node *n);

/* 0, or why the member stopped (WAL or store failure). */
int node_failed(const struct node *n);

/* The member id etcd derives from peer URLs (sorted, joined) and the
 * cluster token, and the cluster id from the sorted member ids: the first
 * 8 bytes of a SHA-1, big-endian (etcd's membership package). Unlike etcd,
 * MemberAdd uses the same derivation (etcd mixes in the time instead of the
 * token): a joining member can then compute its own id from its flags
 * without asking the cluster, which our peer protocol has no call for. */
uint64_t node_member_id_derive(const char *peer_urls, const char *token);
uint64_t node_cluster_id_derive(const uint64_t *member_ids, size_t n);

#endif

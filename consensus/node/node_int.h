/* node_int.h - private to consensus/node. */
#ifndef CAIRN_CONSENSUS_NODE_INT_H
#define CAIRN_CONSENSUS_NODE_INT_H

/* Raft bytes in flight to one follower (see open_raft). */
#define NODE_INFLIGHT_BYTES ((uint64_t)16 << 20)

#include <stdatomic.h>

#include "base/buf.h"
#include "consensus/log/log.h"
#include "consensus/node/node.h"
#include "consensus/transport/transport.h"

/* One ready batch's persist work, handed to the WAL thread, and back. */
struct wal_job {
    struct wal_job *next;
    struct raft_entry *ents; /* data points into blob */
    size_t ents_count;
    uint8_t *blob;
    bool has_hard;
    struct raft_hard_state hard;
    /* msgs_after_persist, encoded: repeated (u64 to, u32 len, bytes) */
    struct buf after;
    uint64_t release_before; /* nonzero: log_release after the append */
    uint64_t reset_index;    /* nonzero: log_reset before the append */
    uint64_t reset_term;
    /* With reset_index: the installed snapshot's membership (encoded); its
     * metadata file is saved before the reset, on the WAL thread (an fsync
     * there can wait seconds behind the page cache: never on the loop). */
    struct buf reset_conf;
    /* read_hi nonzero: read entries [read_lo, read_hi) back, within
     * read_max bytes, into read_ents (data in read_arena) (node_logmem.c). */
    uint64_t read_lo;
    uint64_t read_hi;
    size_t read_max;
    struct raft_entry *read_ents;
    size_t read_count;
    uint8_t *read_arena;
    int err; /* set by the WAL thread */
};

/* The in-memory log's budget and the window read back from the WAL
 * (node_logmem.c). */
#define NODE_LOG_MEMORY_DEFAULT ((uint64_t)32 << 20)
#define NODE_REREAD_BYTES       ((size_t)4 << 20)
/* Released WAL segments waiting for their unlink (trash_drain); past it
 * the WAL thread unlinks them itself. */
#define NODE_TRASH_MAX          16

struct node_reread {
    struct raft_entry *ents; /* data in arena */
    size_t count;
    uint8_t *arena;
    bool loading; /* a read job is with the WAL thread */
    uint64_t reads;
    uint64_t read_bytes;
    uint64_t read_errors;
    uint64_t served;
    uint64_t evicted_bytes;
};

/* A run of committed entries for the apply thread. */
struct apply_job {
    struct apply_job *next;
    struct raft_entry *ents;
    size_t ents_count;
    uint8_t *blob;
    uint64_t term;          /* for response headers */
    uint64_t install_index; /* nonzero: swap the store for a snapshot first */
    char install_path[512];
    bool defrag; /* defragment the store (no entries) */
    bool early;  /* entries not yet committed: node__gate_wait holds their
                  * store commit */
    /* filled by the apply thread */
    int err;
    uint64_t applied;   /* last index applied */
    struct buf results; /* repeated node__result records */
    struct buf events;  /* repeated encoded kv events */
    bool members_changed;
    size_t events_count;
    int64_t rev;
    uint64_t install_last_id; /* our origin's last applied id after the swap */
};

/* A queue between threads: a mutex, a condition and a singly linked FIFO. */
struct jobq {
    uv_mutex_t mu;
    uv_cond_t cv;
    /* the consumer waiting inside a job (the apply thread at its commit
     * gate): pushes do not wake it, stop does */
    uv_cond_t held_cv;
    void *head;
    void *tail;
    size_t count;
    bool stop;
    bool waiting; /* the consumer waits for jobs (wal_in: node__wal_inline) */
    bool lent;    /* wal_in: the loop holds the WAL for a pass */
};

struct waiter {
    uint64_t id; /* 0: free */
    uint64_t deadline_ms;
    node_propose_cb cb;
    void *ctx;
    bool conf; /* a membership change: a leader's refusal may answer it */
};

struct read_wait {
    uint64_t round; /* read round this request joined */
    uint64_t index; /* read point, once known (0: not yet) */
    uint64_t deadline_ms;
    node_read_cb cb;
    void *ctx;
};

/* Snapshot transfers to one peer (one at a time). */
struct node_peer_snap {
    uint64_t id;
    bool busy;
};

struct node {
    uv_loop_t *loop;
    struct node_config cfg;
    struct node_observer obs;
    char dir_member[448];
    char dir_wal[512];
    char dir_snap[512];
    char dir_kv[512];

    struct kv *kv;
    struct apply apply;
    struct log *log;
    struct raft_memstorage ms;
    struct node_reread rr;
    struct raft raft;
    bool raft_ready_out;

    struct transport transport;
    bool transport_on;

    uv_timer_t tick;
    uv_check_t check;
    uv_idle_t busy; /* on while work is due: the poll must not sleep */
    /* The two threads' completions wake the loop through one eventfd,
     * polled by the loop, and a flag per out queue says which has news
     * (node__notify). Not uv_async: libuv 1.44's loop spins, then calls
     * sched_yield, while a sender is between marking its handle and
     * writing the eventfd; the loop, woken by that very write, usually
     * got there first (one client: 0.57 sched_yield per put). */
    int wake_fd;
    uv_poll_t wake_poll;
    atomic_int wal_news;
    atomic_int apply_news;
    int handles_open;
    bool dirty;
    bool closing;
    void (*close_done)(void *ctx);
    void *close_ctx;

    /* WAL thread */
    bool threads_started;
    uv_thread_t wal_thread;
    struct jobq wal_in;
    struct jobq wal_out;
    uint64_t wal_term; /* the WAL thread's last written term and vote */
    uint64_t wal_vote;
    /* The loop's side: the term and vote of the newest hard state handed
     * to the WAL thread, and a hard state whose only change was the commit
     * index, held to ride with the next job (handle_ready). */
    uint64_t sent_term;
    uint64_t sent_vote;
    bool hard_held;
    struct raft_hard_state hard_later;
    atomic_uint_fast64_t wal_fsyncs;
    atomic_uint_fast64_t wal_fsync_ns;
    atomic_uint_fast64_t wal_last_fsync_ns; /* the last append's time */
    int wal_failed; /* the WAL's holder (wal_pass): an append failed */
    uint64_t wal_inline_passes; /* loop: passes it ran (node__wal_inline) */
    unsigned lone_run; /* loop: early batches in a row of one lone entry */
    atomic_uint_fast64_t wal_fsync_hist[NODE_FSYNC_BUCKETS];

    /* apply thread */
    uv_thread_t apply_thread;
    struct jobq apply_in;
    struct jobq apply_out;
    uint64_t applied;    /* loop's view: reported to raft */
    uint64_t committed;  /* highest index Raft handed out as committed */
    uint64_t snap_index; /* last Raft snapshot (memstorage compaction) */
    /* Early apply (node.c, early_job): a lone voter hands its new entries
     * to the apply thread with their WAL job, and the store commits them
     * once Raft has (gate_ok, raised by the loop under apply_in's mutex,
     * signalled on its held_cv; apply_in's stop cancels the wait). The
     * apply thread has every entry up to max(committed, early_hi). */
    uint64_t early_hi;   /* the last entry handed out early */
    uint64_t early_jobs; /* how many batches went early */
    uint64_t wal_jobs;   /* jobs handed to the WAL thread (node_status) */
    atomic_uint_fast64_t gate_ok;
    atomic_bool events_prev_all; /* node_events_prev */
    /* For a lone voter an entry of its term is committed the moment it is
     * durable, so the WAL thread opens the gate itself, up to gate_permit
     * (under apply_in's mutex), without the round trip through the loop:
     * one wake-up less between the fsync and the answer. The loop raises
     * the permit with each early batch and takes it back (node__gate_revoke)
     * before anything that could change that rule: a configuration change,
     * a lost leadership. Raft learns of the commit later, on the loop;
     * until then store_applied runs ahead of what is reported to Raft. */
    uint64_t gate_permit;
    uint64_t store_applied; /* loop: the store's last applied entry */
    atomic_uint_fast64_t wal_gate_opens; /* gates the WAL thread opened */

    /* proposals: ring indexed by id % cap */
    struct waiter *waiters;
    size_t waiters_cap;
    size_t waiters_max; /* the pending limit; waiters_cap grows to it */
    uint64_t next_id;
    uint64_t oldest_id;
    uint64_t pending;

    /* reads: a FIFO ring of waiting reads */
    struct read_wait *reads;
    size_t reads_cap;
    size_t reads_head; /* oldest */
    size_t reads_count;
    uint64_t read_round_next; /* the round new reads join */
    uint64_t read_round_sent; /* asked of raft, answer pending (0: none) */
    uint64_t read_round_sent_ms;
    uint64_t last_tick_ms; /* to notice a loop that was held up */
    uint64_t tick_ms;      /* the Raft tick period */

    /* state seen by the loop */
    uint64_t leader;
    uint64_t term;
    uint8_t role;
    bool lead_applied; /* node_lead_applied, as last told to obs.leader */
    uint64_t leader_changes;
    uint64_t proposals_failed;
    uint64_t msgs_dropped; /* outbound Raft messages dropped here */
    uint64_t proposals_committed;
    int failed;

    struct node_member members[NODE_MEMBERS_MAX];
    size_t members_count;
    char self_name[NODE_NAME_MAX]; /* copies: cfg points here */
    char self_client_urls[NODE_URLS_MAX];
    char self_listen_peer[256];
    char self_data_dir[512];
    char self_token[256];
    /* leader transfer in progress (node_transfer_leader) */
    uint64_t move_to;
    uint64_t move_deadline_ms;
    node_read_cb move_cb;
    void *move_ctx;
    /* defragmentation in progress */
    node_read_cb defrag_cb;
    void *defrag_ctx;
    /* transport peers as last synced with the member list */
    struct {
        uint64_t id;
        char addr[128];
    } tpeers[NODE_MEMBERS_MAX];
    size_t tpeers_count;
    bool published;       /* our attributes are in the cluster's table */
    uint32_t apply_level; /* the level we publish (APPLY_LEVEL) */
    bool publish_pending; /* a publish proposal is in flight */

    /* WAL segments released and renamed to NAME.del by the WAL thread
     * (log_options.discard), unlinked on the loop's thread pool
     * (node.c, trash_drain). */
    uv_mutex_t trash_mu;
    char trash[NODE_TRASH_MAX][LOG_NAME_MAX];
    int trash_n;
    atomic_int trash_pending;
    bool trash_mu_on;

    /* The store file's paced write-back (node.c, store_writeback). */
    uint64_t wb_off;
    uint64_t wb_last_ms;
    uint32_t wb_pass_ms; /* a whole pass over the file; 0: none */
    bool wb_running;

    /* Readers of the store take this shared; swapping the store for a
     * snapshot (apply thread) takes it exclusive. */
    uv_rwlock_t store_lock;
    /* node_store_size's last answer, given while a swap holds the lock */
    uint64_t size_db;
    uint64_t size_in_use;
    bool store_lock_on;

    /* snapshots (node_snap.c) */
    struct node_peer_snap snaps[NODE_MEMBERS_MAX];
    size_t snap_sends;
    int snap_in_fd;
    struct buf snap_in_meta;
    uint64_t snap_in_from;
    uint64_t snap_in_ready_index;
    bool snap_installing;
    bool snap_in_syncing; /* a received stream's fsync is on a worker */
    bool snap_in_stepped; /* stepped into Raft, its batch not handled yet */
    bool snap_wal_done;
    bool snap_store_done;
    struct raft_snapshot_meta snap_install_meta;
    uint64_t snap_persist_index; /* raft_persisted held until installed */
    size_t snap_works;           /* store copies running on worker threads */

    /* checkpoints (node_ckpt.c) */
    bool ckpt_running;
    bool ckpt_force;    /* a checkpoint now: the store was defragmented */
    bool adopt_pending; /* a received copy waits for the running one */
    bool ckpt_inplace;  /* checkpoints in place may be taken (node_ckpt.c) */
    bool ckpt_rest;     /* the next one is in place: the writes paused */
    bool rest_taken;    /* one was taken in this pause already */
    uint64_t ckpt_early_bytes; /* auto: written back in place since the
                                * pause by early checkpoints */
    uint64_t rest_applied;     /* applied index when the pause began */
    uint64_t rest_since_ms;
    uint32_t ckpt_rest_ms;        /* a pause this long calls one in place */
    uint64_t ckpt_grow_pages;     /* growth that calls the next one early */
    uint64_t ckpt_grow_bytes;     /* the same in bytes */
    bool ckpt_last_inplace;       /* the kind of the newest (for the log) */
    uint64_t ckpt_last_ms;        /* and how long it took, */
    uint64_t ckpt_last_pinned_ms; /* a copy: its read of the store, */
    bool ckpt_last_memory;        /* through a memfd (ckpt_read), */
    uint64_t ckpt_last_bytes;     /* and a copy's size */
    uint64_t ckpt_at;
    struct raft_snapshot_meta ckpt_meta; /* written with the checkpoint */
    uint64_t applied_bytes;              /* entry bytes applied since open */
    uint64_t bytes_index;       /* the last entry counted in applied_bytes */
    uint64_t ckpt_bytes_at;     /* applied_bytes when the newest one began */
    uint64_t copy_due_bytes;    /* a period's copy waits for this many since
                                 * (maybe_snapshot; 0: not yet computed) */
    uint64_t ckpt_copy_floor;   /* smaller stores copy at every period */
    uint64_t ckpt_memory_floor; /* smaller copies skip the memfd */
    uint32_t wal_delay_ms; /* CAIRN_TEST_WAL_DELAY_MS: a slow disk, for tests */
    bool close_finished;
    uint64_t snap_persist_term;

    /* CAIRN_TEST_CRASH_AT, read at open (node__crash_point). */
    char crash_at[32];
};

/* node_threads.c */
int node__jobq_init(struct jobq *q);
void node__jobq_close(struct jobq *q);
void node__jobq_push(struct jobq *q, void *job); /* job's first field: next */
/* From a thread, after pushing to an out queue: set its flag (news, one
 * of n->wal_news, n->apply_news) and wake the loop unless the flag was
 * set already (the loop clears it before it takes the queue). */
void node__notify(struct node *n, atomic_int *news);

/* node_logmem.c */
void node__logmem_init(struct node *n);
void node__logmem_close(struct node *n);
/* Give back the data of applied entries over the budget. */
void node__logmem_trim(struct node *n, uint64_t applied);
int node__wal_read(struct node *n, struct wal_job *j);
void node__logmem_read_done(struct node *n, struct wal_job *j, int rc);
void *node__jobq_take_all(struct jobq *q, bool wait, size_t *count);
void node__jobq_stop(struct jobq *q);
void node__wal_main(void *arg);
void node__apply_main(void *arg);
/* Listen for peers and connect to the other members: at open when there
 * are any (alone_too: even if not), else once a second member is being
 * added (node__transport_sync, node_member_change). */
int node__transport_start(struct node *n, bool alone_too);
/* Whether id is in Raft's configuration: a member being added is, from the
 * change's append, before the member list has it (from its apply). */
bool node__in_conf(const struct node *n, uint64_t id);
/* Loop: write and sync wj itself, as the WAL thread would, when that
 * thread waits with nothing queued (true); else false, and wj is the
 * caller's to queue. */
bool node__wal_inline(struct node *n, struct wal_job *wj);
/* One turn of a bounded spin-wait (the CPU's pause hint). */
static inline void node__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}
/* Apply thread: block until Raft committed index (0), or the apply queue
 * stopped (ERR_CANCELED). */
int node__gate_wait(struct node *n, uint64_t index);
/* Loop: Raft committed up to index; let the apply thread commit it. */
void node__gate_open(struct node *n, uint64_t index);
/* The WAL thread, after entries up to index are durable. */
void node__gate_open_durable(struct node *n, uint64_t index);
/* Loop: no more gates opened by the WAL thread until the next early batch.
 * A leader's Raft first hears of the entries under any gate it opened, so
 * that they commit under the rule they were durable under (before a
 * configuration change is proposed). */
void node__gate_revoke(struct node *n);
void node__wal_job_free(struct wal_job *j);
void node__apply_job_free(struct apply_job *j);

/* node_snap.c */
void node__snap_send(struct node *n, const struct raft_msg *m);
void node__snap_cb(void *owner, struct transport_snap_in *in, uint64_t from,
                   enum transport_snap_event ev, const uint8_t *data,
                   size_t len, int status);
int node__snap_install_start(struct node *n, const struct raft_snapshot *s,
                             struct wal_job *wj, struct apply_job *aj);
void node__snap_install_check(struct node *n);

/* node_ckpt.c */
int node__state_write(struct node *n, bool clean);
int node__state_damaged(struct node *n);
int node__state_check(struct node *n, char *msg, size_t msg_len);
int node__checkpoint_start(struct node *n, bool inplace);
int node__checkpoint_adopt(struct node *n, const char *path);
void node__checkpoint_adopt_received(struct node *n);
int node__store_catch_up(struct node *n, char *msg, size_t msg_len);
int node__checkpoint_open(struct node *n, char *msg, size_t msg_len);
bool node__checkpoint_due(struct node *n);
bool node__checkpoint_copy_exists(struct node *n);
int node__defrag(struct node *n);
void node__crash_init(struct node *n);
void node__crash_point(const struct node *n, const char *point);
void node__crash_hold(const struct node *n, const char *point);

/* node.c */
void node__snapshot_finish(struct node *n);
void node__snapshot_check(struct node *n);
void node__close_finish(struct node *n);
int node__members_reload(struct node *n);
int node__member_encode(const struct node_member *m, struct buf *b);
void node__transport_sync(struct node *n);
void node__move_check(struct node *n, uint64_t now_ms);
int node__peer_addr(const char *urls, char *out, size_t out_len);
void node__peer_host(const char *urls, char *out, size_t out_len);
uint64_t node__waiter_add(struct node *n, uint32_t timeout_ms,
                          node_propose_cb cb, void *ctx);
void node__waiter_finish(struct node *n, uint64_t id,
                         const struct apply_result *res);
/* Take back a waiter whose proposal failed synchronously (no callback). */
void node__waiter_drop(struct node *n, uint64_t id);
/* discard_fd and discard_path (base/discard.h) for the loop's thread:
 * the shrinking goes to the loop's pool. 0 or -errno. */
void node__discard_fd_async(struct node *n, int fd);
int node__discard_path_async(struct node *n, const char *path);

/* A result record in apply_job.results. */
struct node__result {
    uint64_t id;
    int32_t err;
    uint32_t op;
    int64_t revision;
    uint32_t resp_len; /* bytes follow, padded to 8 */
};

/* Keep the loop from sleeping in poll while n->dirty (node.c, on_check);
 * off again once nothing is due. For work queued outside the loop's
 * check phase. */
void node__wake(struct node *n);

#endif

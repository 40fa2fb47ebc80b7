/*
 * sim_wl.h - watchers and leases in the simulator (private to tests/sim).
 *
 * Does:     runs, in every simulated member, the real watch hub
 *           (consensus/watch) over the member's real store and the real
 *           lease timers (consensus/lease) driven the way the daemon drives
 *           them (registry/server/api_lease.c, api_watch.c), on the virtual
 *           clock; adds watch clients, lease agents and compaction requests
 *           to the workload; checks every watcher's events against the
 *           committed history and every lease's life against its
 *           acknowledged keep-alives.
 * Owns:     struct sim_wl (s->wl) and everything in it.
 * Threads:  the simulator's one thread.
 * Borrowed: n/a.
 * Errors:   violations through sim_violation().
 * Limits:   WL_WATCHERS_MAX watch clients, WL_AGENTS_MAX lease agents.
 * Not here: Raft and the register clients (sim_member.c, sim_client.c).
 *
 * Files: sim_ref.c (the committed history, proposals, the hooks the rest
 * of the simulator calls), sim_watch.c (hubs, watch clients, the watch
 * checker), sim_lease.c (lease timers, agents, the lease checkers).
 */
#ifndef CAIRN_TESTS_SIM_WL_H
#define CAIRN_TESTS_SIM_WL_H

#include "consensus/lease/lease.h"
#include "consensus/watch/watch.h"
#include "tests/sim/sim.h"

#define WL_WATCHERS_MAX       6
#define WL_AGENTS_MAX         6
#define WL_KEY_MAX            24
#define WL_LEASE_BASE         0x1000 /* lease id = base + index in s->wl->leases */
#define WL_KEYS_PER_LEASE_MAX 3

/* What registry/server/api_lease.c uses (mirrored, see sim_lease.c). */
#define WL_LEASE_TICK_US     100000 /* TICK_MS */
#define WL_REVOKES_PER_TICK  100
#define WL_REVOKES_INFLIGHT  1000
#define WL_CHECKPOINTS_BATCH 1000

/* One event of the committed history (the first member to apply a
 * revision records it; every other member's events must be equal). */
struct wl_kvrec {
    int64_t create_rev;
    int64_t mod_rev;
    int64_t version;
    int64_t lease;
    uint8_t val_len;
    char val[WL_KEY_MAX];
};

struct wl_ev {
    uint8_t type; /* enum kv_event_type */
    uint8_t key_len;
    bool has_prev;
    char key[WL_KEY_MAX];
    struct wl_kvrec kv;
    struct wl_kvrec prev;
};

enum wl_prop_kind {
    WP_GRANT = 1,
    WP_PUT = 2,        /* a key attached to (or detached from) a lease */
    WP_RENEW = 3,      /* keep-alive through the log (checkpoint R = 0) */
    WP_REVOKE = 4,     /* leader: an expired lease */
    WP_CHECKPOINT = 5, /* leader: remaining TTLs */
    WP_COMPACT = 6,
};

/* A proposal made by the code under sim_wl. */
struct wl_prop {
    uint64_t req_id;
    uint8_t kind;
    bool answered;
    uint32_t slot; /* proposer */
    uint64_t inc;
    uint32_t agent; /* UINT32_MAX: none waits */
    uint64_t agent_gen;
    int64_t lease;
    uint64_t at_us;      /* proposed: a revoke's decision time */
    uint64_t index;      /* log index once applied somewhere; 0 = not yet */
    uint64_t applied_us; /* first applied anywhere */
    uint64_t deadline_us;
    uint64_t seen_index; /* a revoke (LeaseExpire): its seen_index */
};

/* Per member (slot): the hub and the lease table of the current
 * incarnation, as the daemon's server keeps them. */
struct wl_member {
    bool open; /* hub and table exist */
    uint64_t inc;
    struct watch_hub *hub;
    struct lease_table *lt;
    uint64_t term; /* lease role as last synced */
    size_t tenure; /* its open tenure: index + 1 in tenures, 0: none */
    size_t revokes_inflight;
    bool run_scheduled;
    /* the batch being applied: events copied out of apply's hook */
    struct kv_event *bev;
    size_t bev_count;
    size_t bev_cap;
    struct buf bdata;
    bool in_apply;
    uint64_t batch_seq;
    /* every event with prev (its hub has a prev_kv watcher, or the seed
     * never lets the apply skip prev) */
    bool prev_all;
    bool prev_skip;     /* the seed's: the apply may leave prev out */
    bool prev_all_late; /* prev_all as the last batch's apply saw it */
};

struct wl_watcher {
    struct sim *s;
    uint32_t idx;
    uint64_t token; /* current EV_WCLIENT */
    /* what it watches */
    char key[WL_KEY_MAX];
    uint8_t key_len;
    char end[WL_KEY_MAX];
    uint8_t end_len;
    bool prev_kv;
    bool no_put;
    bool no_delete;
    bool progress_notify;
    /* the current stream */
    bool connected;
    uint32_t slot;
    uint64_t inc;
    struct watch_stream *st;
    bool create_pending; /* created reply not yet seen */
    bool have_id;
    int64_t watch_id;
    int64_t start_asked;
    bool blocked; /* we answered ERR_BUSY */
    /* the checker: every event in range below next_rev was received */
    bool have_pos;
    int64_t next_rev;
    bool started; /* first create done */
    uint64_t caught_up_us;
    /* stats */
    uint64_t events;
    uint64_t reopens;
    uint64_t compacted;
};

struct wl_touch {
    uint64_t at_us;
    size_t tenure;
};

struct wl_lease {
    int64_t id;
    uint32_t agent;
    int64_t ttl_asked;
    int64_t ttl;  /* granted (from the log); 0 until known */
    bool granted; /* the grant applied somewhere */
    bool revoked; /* the revoke applied somewhere */
    /* index of the last renewal through the log (a checkpoint with R = 0),
     * as apply records it: an expire that saw less does not take effect */
    uint64_t log_renew_index;
    uint64_t log_grant_index; /* its grant's index, in the same scan */
    bool abandoned;           /* its agent stopped keeping it alive */
    uint64_t abandon_us;
    uint64_t grant_us; /* first applied */
    uint64_t revoke_decided_us;
    uint64_t revoke_applied_us;
    uint64_t revoke_index;
    uint32_t revoke_slot;   /* proposer of the effective revoke */
    int64_t revoke_rev;     /* revision of its key deletes; 0: none */
    uint32_t keys_attached; /* model: keys now attached */
    uint32_t keys_deleted;  /* deleted by its revoke */
    /* counted renewals (see sim_lease.c): times on the virtual clock */
    uint64_t *renew_us;
    size_t renew_count;
    size_t renew_cap;
    uint64_t last_ack_us; /* last keep-alive acknowledged with TTL > 0 */
    uint32_t next_key;
    /* renewals a lease-leader's table made, answered or not (check b):
     * per tenure (1-based, as wl_member.tenure) the latest, in time order */
    struct wl_touch *touch;
    size_t touch_count;
    size_t touch_cap;
};

enum wl_agent_state {
    AG_IDLE = 0,
    AG_GRANT = 1,
    AG_PUT = 2,
    AG_ALIVE = 3,
};

struct wl_agent {
    uint32_t idx;
    uint64_t token;
    uint8_t state;
    bool busy; /* one request outstanding */
    uint64_t gen;
    uint64_t deadline_us;
    int64_t lease; /* current lease id, 0: none */
    uint32_t keys_to_put;
    uint32_t prefer;
    uint64_t next_ka_us;
    bool ka_via_log; /* the round failed: renew through the log next */
    bool abandon;    /* this lease will be abandoned at abandon_at_us */
    uint64_t abandon_at_us;
};

/* One member's time as lease leader, for check (b): from lease_promote to
 * the first of its Raft role leaving leader, lease_demote and its table's
 * close (a member that stepped down cannot commit a revoke, even if its
 * table has not heard yet). */
struct wl_tenure {
    uint32_t slot;
    uint64_t from_us;
    uint64_t until_us; /* UINT64_MAX: still leading */
};

#define WL_ORIGINS_MAX 16

struct sim_wl {
    struct prng rng;
    bool on;
    /* apply's exactly-once rule as the log scan sees it (apply.h): per
     * proposer, the highest request id applied; a lower or equal one is
     * refused and takes no effect */
    uint64_t scan_origin[WL_ORIGINS_MAX];
    uint64_t scan_last_id[WL_ORIGINS_MAX];
    bool closing;   /* run over: schedule nothing */
    uint32_t plant; /* planted bug (sim --plant N), 0: none */
    /* parameters from the seed */
    uint32_t watchers;
    uint32_t agents;
    struct watch_config hub_cfg;
    size_t run_budget;
    uint32_t busy_ppm; /* a watch client refuses a response */
    int64_t min_ttl_s;
    int64_t ttl_span_s;
    uint32_t abandon_pct;
    uint64_t cp_interval_ms;
    uint64_t election_ms_max;
    uint32_t compact_pct;
    uint64_t progress_us;
    /* the committed history */
    struct wl_ev *ref;
    size_t ref_count;
    size_t ref_cap;
    size_t *rev_first; /* by revision: index of its first event in ref */
    size_t rev_cap;
    int64_t ref_rev;     /* highest revision recorded */
    int64_t compact_max; /* highest compaction revision applied anywhere */
    uint32_t ref_owner;  /* the member recording ref_rev, in batch ... */
    uint64_t ref_owner_inc;
    uint64_t ref_owner_batch;
    uint64_t *first_apply_us; /* by log index */
    size_t fa_cap;
    uint64_t fa_max; /* highest index applied anywhere */
    /* proposals: by request id, index + 1 into props (0: not ours) */
    uint32_t *prop_of_req;
    size_t por_cap;
    struct wl_prop *props;
    size_t props_count;
    size_t props_cap;
    struct wl_member m[SIM_SLOTS];
    struct wl_watcher w[WL_WATCHERS_MAX];
    struct wl_agent a[WL_AGENTS_MAX];
    struct wl_lease *leases;
    size_t leases_count;
    size_t leases_cap;
    struct wl_tenure *tenures; /* in order of promotion */
    size_t tenures_count;
    size_t tenures_cap;
    /* end of the run */
    uint64_t final_at;
    bool final_abandoned;
    /* stats */
    uint64_t st_events_checked;
    uint64_t st_prev_omitted; /* events applied with prev left out */
    uint64_t st_progress_checked;
    uint64_t st_compact_cancels;
    uint64_t st_reopens;
    uint64_t st_overflows;
    uint64_t st_ka_acked;
    uint64_t st_ka_log;
    uint64_t st_ka_unconfirmed; /* in-memory renewals whose round failed */
    uint64_t st_ka_zero_live;   /* TTL 0 for a lease still alive */
    uint64_t st_revokes;
    uint64_t st_checkpoints;
    uint64_t st_late_races;        /* renewed after the revoke was decided */
    uint64_t st_revoke_lag_max_us; /* (b): revoke applied past T */
};

/* sim_ref.c */
struct wl_prop *wl_prop_new(struct sim *s, uint8_t kind, struct sim_member *m);
/* Propose the envelope of an etcd request on m (raft_propose + drive).
 * On failure the proposal is marked answered. */
int wl_propose(struct sim *s, struct sim_member *m, struct wl_prop *p,
               enum apply_op op, const ProtobufCMessage *req);
struct wl_lease *wl_lease_get(struct sim *s, int64_t id);
/* Events of the history at revision rev: [*first, *end) in s->wl->ref. */
void wl_ref_rev(const struct sim *s, int64_t rev, size_t *first, size_t *end);
bool wl_ev_matches(const struct wl_watcher *w, const struct wl_ev *e);
void wl_ev_from_kv(struct wl_ev *out, const struct kv_event *e);
void wl_schedule(struct sim *s, uint64_t delay_us, uint32_t kind, uint32_t a,
                 uint64_t b);
uint64_t wl_max_leader_term(const struct sim *s);

/* sim_watch.c */
void wl_watch_params(struct sim *s);
void wl_watch_open(struct sim *s, struct sim_member *m);
void wl_watch_down(struct sim *s, struct sim_member *m);
void wl_watch_events(struct sim *s, struct sim_member *m,
                     const struct kv_event *evs, size_t n, int64_t rev);
void wl_watch_restored(struct sim *s, struct sim_member *m);
void wl_watch_run(struct sim *s, uint32_t slot, uint64_t inc);
void wl_watch_progress(struct sim *s, uint32_t slot, uint64_t inc);
void wl_watcher_wake(struct sim *s, uint32_t idx, uint64_t token);
void wl_watch_start(struct sim *s);
bool wl_watch_final_done(struct sim *s, bool report);
void wl_watch_close(struct sim *s);

/* sim_lease.c */
void wl_lease_params(struct sim *s);
int wl_lease_open(struct sim *s, struct sim_member *m);
void wl_lease_down(struct sim *s, struct sim_member *m);
int wl_lease_restored(struct sim *s, struct sim_member *m);
void wl_lease_hook(struct sim *s, struct sim_member *m, int64_t id, int64_t ttl,
                   bool checkpoint);
void wl_lease_sync_role(struct sim *s, struct sim_member *m);
void wl_lease_role_changed(struct sim *s, struct sim_member *m);
void wl_lease_tick(struct sim *s, uint32_t slot, uint64_t inc);
void wl_agent_wake(struct sim *s, uint32_t idx, uint64_t token);

void wl_lease_result(struct sim *s, struct sim_member *m, struct wl_prop *p,
                     const struct apply_result *res);
void wl_lease_prop_lost(struct sim *s, struct wl_prop *p);
void wl_lease_applied(struct sim *s, struct wl_prop *p);
void wl_lease_start(struct sim *s);
void wl_lease_final(struct sim *s);
bool wl_lease_final_done(struct sim *s, bool report);
void wl_lease_check_end(struct sim *s);
void wl_lease_close(struct sim *s);

#endif

/*
 * lease.h - lease timers: when does each lease expire, and who may say so.
 *
 * Does:     mirrors the store's leases (granted, revoked, checkpointed, as
 *           applied from the log) with an expiry time each; on the leader
 *           it renews leases (keep-alive), names the expired ones to revoke
 *           (a bounded number per tick) and the remaining TTLs to
 *           checkpoint. Pure: no clock, no I/O, no threads; every call that
 *           needs the time takes now_ms (a monotonic millisecond clock).
 * Owns:     its table of leases and two heaps (expiry, next checkpoint).
 * Threads:  one thread (the loop thread) for every call.
 * Borrowed: nothing is kept from the caller.
 * Errors:   ERR_LEASE_NOT_FOUND (unknown or already expired), -ENOMEM.
 * Limits:   revocations per tick (revokes_per_tick_max), checkpoints per
 *           tick (checkpoints_per_tick_max); the number of leases is bounded
 *           by the store (LIMIT_LEASES, checked before a grant is proposed).
 * Not here: proposing revokes and checkpoints through Raft, the KeepAlive
 *           stream and forwarding from followers (registry/server/
 *           api_lease.c); the persistent records (consensus/kv).
 *
 * The guarantee (what tests/unit/lease checks). Write T for a lease's
 * granted TTL and E for the election timeout (promote_extend_ms).
 *  1. Only a leader names leases to revoke, and only leases whose expiry
 *     time has passed on its clock. "Leader" (lease_promote) means: leads
 *     and has applied its term's first entry, in that term only (the
 *     caller's duty). A leader whose term has committed nothing must not
 *     renew in memory: its term may never commit, and an expiry an earlier
 *     leader appended without that renewal may still be committed by
 *     another; after that entry, an earlier term's entry commits only if
 *     it came before it, so was decided before this leader was elected.
 *  2. A keep-alive answered with TTL > 0 (on the leader, after any log
 *     write it needed; on a follower, after its renewal entry applied)
 *     keeps the lease until at least a + T on every member that is or
 *     becomes leader, where a is when that member made the renewal (leader,
 *     in memory) or applied it from the log, on its own clock.
 *  3. A checkpoint records remaining TTL R (computed from the leader's
 *     expiry when proposed, at most the TTL). Applying it sets expiry =
 * max(expiry, now + R): a checkpoint never shortens a lease. A renewal through
 * the log is a checkpoint with R = 0, meaning the full TTL. On the leader an R
 * > 0 is only recorded: its expiry is where R came from, and R is rounded up to
 * whole seconds, so applying it would lengthen the lease at every checkpoint.
 * The leader's checkpoint carries its applied index (seen_index); apply skips
 * an R > 0 for a lease renewed through the log after it (a follower's renewal
 * ordered before it): that R is stale, and recorded it would undo the renewal
 * for a member rebuilt from the store (lease_restore) that then leads.
 *  4. A new leader sets each expiry to the later of what it has seen
 *     (grant, checkpoints and renewals applied from the log, each counted
 *     from when it applied them) and now + (last checkpoint R, or T when
 *     none or cleared) + E. So failover never expires a lease early, and
 *     with checkpoints a lease is not reset to its full TTL either.
 *  5. The leader renews a lease in memory only while the last checkpoint
 *     it proposed for that lease is 0; otherwise renew() asks the caller to
 *     write a clearing checkpoint (R = 0) and answer only after it applied,
 *     so that no stale R > 0 can survive a keep-alive into a new leader's
 *     term (point 4 would otherwise honour the stale R).
 *  6. An expired lease cannot be renewed (ERR_LEASE_NOT_FOUND, TTL 0), as in
 *     etcd: its revoke is already on its way.
 * Clocks are assumed to run at the same rate on every member (as etcd).
 */
#ifndef CAIRN_CONSENSUS_LEASE_H
#define CAIRN_CONSENSUS_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lease_table;

struct lease_config {
    uint64_t checkpoint_interval_ms; /* 0: 5 minutes (etcd's default) */
    size_t revokes_per_tick_max;     /* 0: 100 */
    size_t checkpoints_per_tick_max; /* 0: 1000 (etcd's batch) */
    uint64_t revoke_retry_ms;        /* 0: 3000: a lost revoke is retried */
    uint64_t promote_extend_ms;      /* E: the election timeout */
};

struct lease_checkpoint {
    int64_t id;
    int64_t remaining_s;
};

/* Set up an empty table; cfg is copied. Errors: -ENOMEM. */
int lease_table_init(const struct lease_config *cfg, struct lease_table **out);
void lease_table_close(struct lease_table *t);

/* --- what the log says (every member, in apply order) ------------------- */

/* A grant applied (ttl already raised to the minimum by apply). A known id
 * is refreshed. -ENOMEM: the table is unchanged. */
int lease_on_grant(struct lease_table *t, int64_t id, int64_t ttl_s,
                   uint64_t now_ms);

/* A revoke applied; unknown ids are ignored. */
void lease_on_revoke(struct lease_table *t, int64_t id);

/* A checkpoint applied: remaining_s > 0 is a remaining TTL, 0 a renewal to
 * the full TTL (see the guarantee, point 3). Unknown ids are ignored. */
void lease_on_checkpoint(struct lease_table *t, int64_t id, int64_t remaining_s,
                         uint64_t now_ms);

/* At start, from the store's records (kv_lease_list). -ENOMEM. */
int lease_restore(struct lease_table *t, int64_t id, int64_t ttl_s,
                  int64_t remaining_s, uint64_t now_ms);

/* --- role ---------------------------------------------------------------- */

/* This member became leader and applied its term's first entry (points 1
 * and 4) / stopped being leader, or its term changed. */
void lease_promote(struct lease_table *t, uint64_t now_ms);
void lease_demote(struct lease_table *t);
bool lease_is_leader(const struct lease_table *t);

/* --- leader work ------------------------------------------------------- */

/* Keep-alive on the leader. *ttl_s gets the granted TTL. *log_needed is set
 * when the caller must write a clearing checkpoint (R = 0) and answer only
 * after it applied (point 5); if that write cannot be proposed, call
 * lease_checkpoint_proposed(t, id, 1) to restore the rule.
 * Errors: ERR_LEASE_NOT_FOUND (unknown, or expired: point 6), ERR_INVALID
 * when not leader. */
int lease_renew(struct lease_table *t, int64_t id, uint64_t now_ms,
                int64_t *ttl_s, bool *log_needed);

/* The caller proposed a checkpoint with remaining_s for id (tracks point
 * 5). Unknown ids are ignored. */
void lease_checkpoint_proposed(struct lease_table *t, int64_t id,
                               int64_t remaining_s);

/* Up to cap expired leases to revoke now, earliest first, each at most
 * once per revoke_retry_ms (cap is also bounded by revokes_per_tick_max).
 * Returns how many ids were written. Not leader: 0. */
size_t lease_expired(struct lease_table *t, uint64_t now_ms, int64_t *ids,
                     size_t cap);

/* Up to cap checkpoints due now (remaining TTLs of leases whose remaining
 * exceeds the checkpoint interval, once per interval; cap also bounded by
 * checkpoints_per_tick_max). The table records them as proposed. Not
 * leader: 0. */
size_t lease_checkpoints_due(struct lease_table *t, uint64_t now_ms,
                             struct lease_checkpoint *out, size_t cap);

/* --- queries ------------------------------------------------------------- */

/* Remaining TTL in whole seconds, cut down as etcd's is (4.7 s is 4),
 * >= 0 (on a follower: its estimate from what the log told it), and the
 * granted TTL. ERR_LEASE_NOT_FOUND. */
int lease_remaining(const struct lease_table *t, int64_t id, uint64_t now_ms,
                    int64_t *remaining_s, int64_t *ttl_s);

/* Time of the next expiry (UINT64_MAX: none), for tests and timers. */
uint64_t lease_next_expiry(const struct lease_table *t);

size_t lease_count(const struct lease_table *t);

#endif

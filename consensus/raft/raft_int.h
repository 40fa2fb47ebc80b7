/*
 * raft_int.h - private cross-file helpers of consensus/raft.
 *
 * raft_log.c keeps the log view (storage plus the unstable tail);
 * raft.c runs the protocol; raft_codec.c encodes messages and conf changes.
 * Storage failures inside the log helpers set r->err (the core is failed
 * from then on) and the helpers return a harmless value; the public entry
 * points return r->err.
 */
#ifndef CAIRN_CONSENSUS_RAFT_INT_H
#define CAIRN_CONSENSUS_RAFT_INT_H

#include "consensus/raft/raft.h"

/* -- entry vectors (each entry owns its data) */
int raft__ents_push(struct raft__entries *v, const struct raft_entry *e,
                    bool copy_data);
void raft__ents_free(struct raft__entries *v);
void raft__entry_free(struct raft_entry *e);
uint64_t raft__entry_bytes(const struct raft_entry *e);

/* -- log view */
uint64_t raft__first_index(struct raft *r);
uint64_t raft__last_index(struct raft *r);
/* 0, ERR_COMPACTED, ERR_NOT_FOUND, or a storage error (also sets r->err). */
int raft__term(struct raft *r, uint64_t index, uint64_t *term);
/* Term of index, 0 when unknown (compacted or past the end). */
uint64_t raft__term_or0(struct raft *r, uint64_t index);
uint64_t raft__last_term(struct raft *r);
bool raft__match_term(struct raft *r, uint64_t index, uint64_t term);
/* Deep copies of [lo, hi) appended to out, stopping before max_bytes of
 * data (at least one). ERR_COMPACTED when lo is below the first index. */
int raft__slice(struct raft *r, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                struct raft__entries *out);
/* Last index known durable and consistent with the log (0 while a received
 * snapshot waits to be installed). */
uint64_t raft__persisted_index(const struct raft *r);
/* Append an entry whose data the log takes (e->data owned). */
int raft__log_append_owned(struct raft *r, struct raft_entry *e);
/* Drop the tail from index `from` on and append copies of ents. */
int raft__log_truncate_append(struct raft *r, const struct raft_entry *ents,
                              size_t count);
void raft__log_stable_to(struct raft *r, uint64_t index, uint64_t term);
int raft__log_restore(struct raft *r, const struct raft_snapshot *snap);
/* Latest index <= index whose term is <= term (etcd's findConflictByTerm). */
uint64_t raft__find_conflict_by_term(struct raft *r, uint64_t index,
                                     uint64_t term);
/* The configuration in effect at index: the latest conf entry <= index,
 * else the snapshot's, else the bootstrap one. */
int raft__conf_at(struct raft *r, uint64_t index, struct raft_conf *out,
                  uint64_t *conf_index);
/* Snapshot metadata (unstable first, then storage); data not copied. */
int raft__snapshot_meta(struct raft *r, struct raft_snapshot_meta *out);

/* -- conf helpers (raft_codec.c) */
bool raft__conf_valid(const struct raft_conf *c);
/* Decode a RAFT_ENTRY_CONF payload and check its conf. */
int raft__conf_entry_decode(const struct raft_entry *e,
                            struct raft_conf_change *out);

/* Debug builds only (DASSERT): whole-state consistency of r. */
bool raft__invariant_ok(struct raft *r);

int raft__snapshot_copy(struct raft_snapshot *dst,
                        const struct raft_snapshot *src);
void raft__snapshot_free(struct raft_snapshot *s);

#endif

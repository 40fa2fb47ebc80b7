/*
 * model.h - a plain in-memory model of etcd v3's MVCC semantics, written
 * from the reference (../shared/reference/etcd-api.md 1.5.1-1.5.5 and 7)
 * and etcd 3.4's apply.go, independently of consensus/kv.
 *
 * Does:     answers the same requests as consensus/kv (it takes kv.h's
 *           request structs and fills kv.h's response structs), so a test
 *           can run both side by side and compare every field.
 * Owns:     the whole history of every key (never compacted away: a read at
 *           a revision >= the compacted one sees exactly the same thing as
 *           without compaction, so only the error rules need the compacted
 *           revision), the leases, and the answers it hands out (in a
 *           struct mdl_arena that the caller frees).
 * Threads:  one thread.
 * Borrowed: answers point into the arena passed to the call.
 * Errors:   the same codes as kv.h, from the same rules. Out of memory
 *           aborts (test code).
 * Limits:   slow on purpose (linear scans): for thousands of operations.
 * Not here: the comparison of answers (kv_check.h) and the random driver.
 *
 * Semantics that etcd fixes and the model follows (etcd 3.4):
 *  - nested txn compares are evaluated against the state before the whole
 *    txn (etcd's compareToPath runs on the txn's read view first);
 *  - a txn checks its chosen path before running it: every put (lease
 *    exists, ignore_* need the key) and then every range (revision). When
 *    several such errors are present the model reports etcd's choice and
 *    also the first one in path order (*alt_err), and a test accepts either;
 *  - duplicate keys follow etcd's checkIntervals exactly, nested txns
 *    included (a delete with range_end "\0" conflicts with nothing);
 *  - a nested txn's lists count against what its parent's longest list
 *    leaves of max_txn_ops;
 *  - kv.h's refinements: ties in a sort go by key (reversed with the
 *    order), an unknown sort enum is ERR_BAD_REQUEST, compaction keeps the
 *    records at the compacted revision so history reads from it work.
 */
#ifndef CAIRN_TESTS_KV_MODEL_H
#define CAIRN_TESTS_KV_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consensus/kv/kv.h"

#define MDL_LEASES_MAX 64

struct mdl;

/* Memory for answers: every block is freed at once by mdl_arena_free. */
struct mdl_arena {
    void **blocks;
    size_t count;
    size_t cap;
};

void *mdl_arena_alloc(struct mdl_arena *a, size_t bytes); /* zeroed */
void *mdl_arena_dup(struct mdl_arena *a, const void *p, size_t bytes);
void mdl_arena_free(struct mdl_arena *a);

/* A list of events with their bytes copied (for the store's callback and
 * for the model's own output). */
struct mdl_events {
    struct kv_event *ev;
    size_t count;
    size_t cap;
    struct mdl_arena mem;
};

void mdl_events_push(struct mdl_events *e, const struct kv_event *ev);
void mdl_events_clear(struct mdl_events *e);

/* What a read handle sees: the history up to rev, the compacted revision
 * and the lease table as of one moment. */
struct mdl_view {
    int64_t rev;
    int64_t compact;
    size_t leases_count;
    struct kv_lease leases[MDL_LEASES_MAX];
};

int mdl_new(uint32_t max_txn_ops, struct mdl **out);
void mdl_free(struct mdl *m);

/* Working state (including requests of the batch in progress). */
int64_t mdl_rev(const struct mdl *m);
int64_t mdl_compact_rev(const struct mdl *m);
void mdl_view_working(const struct mdl *m, struct mdl_view *v);

/* Batches: mdl_commit makes the working state the committed one; mdl_abort
 * drops everything since the last commit. */
void mdl_commit(struct mdl *m);
void mdl_abort(struct mdl *m);
const struct mdl_view *mdl_committed(const struct mdl *m);

/* Write requests on the working state. ev (may be NULL) receives the
 * request's events, each with its prev record. */
int mdl_put(struct mdl *m, const struct kv_put_req *req, struct mdl_arena *a,
            struct kv_put_resp *resp, int64_t *rev, struct mdl_events *ev);
int mdl_delete(struct mdl *m, const struct kv_delete_req *req,
               struct mdl_arena *a, struct kv_delete_resp *resp, int64_t *rev,
               struct mdl_events *ev);
int mdl_txn(struct mdl *m, const struct kv_txn_req *req, struct mdl_arena *a,
            struct kv_txn_resp *resp, int64_t *rev, struct mdl_events *ev,
            int *alt_err);
int mdl_write_range(struct mdl *m, const struct kv_range_req *req,
                    struct mdl_arena *a, struct kv_range_resp *resp);
int mdl_compact(struct mdl *m, int64_t rev);
int mdl_lease_grant(struct mdl *m, int64_t id, int64_t ttl);
int mdl_lease_revoke(struct mdl *m, int64_t id, int64_t *rev,
                     struct mdl_events *ev);
int mdl_lease_checkpoint(struct mdl *m, int64_t id, int64_t remaining_ttl);

/* Reads on a view (a committed moment). */
int mdl_range(const struct mdl *m, const struct mdl_view *v,
              const struct kv_range_req *req, struct mdl_arena *a,
              struct kv_range_resp *resp);
int mdl_txn_read(const struct mdl *m, const struct mdl_view *v,
                 const struct kv_txn_req *req, struct mdl_arena *a,
                 struct kv_txn_resp *resp, int *alt_err);
bool mdl_txn_is_read_only(const struct kv_txn_req *req);
/* The request-only checks of a txn (op counts, empty keys, compare enums)
 * and etcd's duplicate-key rules: 0 or the error. */
int mdl_txn_validate(const struct mdl *m, const struct kv_txn_req *req);
int mdl_txn_check_dups(const struct kv_txn_req *req);
/* Every matching event (no max_events: the caller checks the store's
 * prefix against this list); *next_rev = to_rev + 1. */
int mdl_events_read(const struct mdl *m, const struct mdl_view *v,
                    const uint8_t *key, size_t key_len,
                    const uint8_t *range_end, size_t range_end_len,
                    int64_t from_rev, int64_t to_rev, bool with_prev,
                    struct mdl_events *out, int64_t *to_rev_out);
/* HashKV as kv.h defines it, from the records a compaction at v->compact
 * keeps (per key: everything above it, everything at it, and the latest
 * record below it unless that is a tombstone): CRC32C over each kept
 * record with main revision <= rev as (be64 main | be32 sub) and (u8 type
 * | be64 create | be64 version | be64 lease | be32 key_len | key |
 * value), then be64 compacted revision. rev 0: the view's. */
int mdl_hash(const struct mdl *m, const struct mdl_view *v, int64_t rev,
             uint32_t *hash, int64_t *compact_rev, int64_t *hash_rev);
int mdl_lease_get(const struct mdl_view *v, int64_t id, struct kv_lease *out);
/* Keys attached to lease id at the view, in key order (as kv_kv records). */
size_t mdl_lease_keys(const struct mdl *m, const struct mdl_view *v, int64_t id,
                      struct mdl_arena *a, struct kv_kv **keys);

/* For a range answer made by the model: every record that passed the
 * filters, sorted, before limit and keys_only (values kept). The checker
 * uses it to accept any order of records whose sort values tie. */
const struct kv_kv *mdl_range_full(const struct kv_range_resp *resp,
                                   size_t *count);

/* The live record of one key at revision rev (NULL if absent); for test
 * generators that want compares which hold. Borrowed until the next
 * write. */
const struct kv_kv *mdl_get(const struct mdl *m, int64_t rev,
                            const uint8_t *key, size_t key_len,
                            struct kv_kv *out);

/* The prefix range end etcd clients compute ("a" -> "b", "a\xff" -> "b",
 * all 0xff -> "\0"); writes into out (len <= key_len or 1). */
size_t mdl_prefix_end(const uint8_t *key, size_t key_len, uint8_t *out);

#endif

/*
 * kv.h - the MVCC key-value store: etcd v3's data model on LMDB.
 *
 * Does:     keeps every revision of every key (until compacted) in an LMDB
 *           environment: range at any retained revision, put, delete-range,
 *           txn, compaction, leases' persistent records, auxiliary tables
 *           for other modules, defragmentation, snapshots and HashKV.
 * Owns:     the LMDB environment under <dir> (files data.mdb, lock.mdb), an
 *           exclusive lock on the directory, and the memory of its handles.
 * Threads:  exactly one writer at a time (the apply thread), and any number
 *           of readers on any threads (LMDB MDB_NOTLS read transactions that
 *           never block the writer). kv_open/kv_close/kv_defrag/
 *           kv_snapshot_install need every read and write handle closed.
 * Borrowed: results of a read handle point into LMDB's map and stay valid
 *           until kv_read_end(). Results produced inside a write handle are
 *           copied into the caller's struct kv_result and live until
 *           kv_result_free(). Event callbacks get pointers valid only for the
 *           duration of the callback.
 * Errors:   0 or a negative code from base/err.h: ERR_KEY_NOT_PROVIDED,
 *           ERR_KEY_TOO_LARGE, ERR_VALUE_TOO_LARGE, ERR_INVALID_RANGE,
 *           ERR_COMPACTED, ERR_FUTURE_REV, ERR_KEY_NOT_FOUND,
 *           ERR_VALUE_PROVIDED, ERR_LEASE_PROVIDED, ERR_LEASE_NOT_FOUND,
 *           ERR_LEASE_EXISTS, ERR_TOO_MANY_OPS, ERR_DUPLICATE_KEY,
 *           ERR_BAD_COMPARE, ERR_NOSPACE, ERR_LIMIT, ERR_CORRUPT,
 *           ERR_BAD_MAGIC, ERR_BAD_VERSION, ERR_LOCKED, ERR_FAILED, -ENOMEM
 *           and -errno from the OS. A request refused for what it asks
 *           (every etcd error, bad input, NOSPACE, -ENOMEM from our own
 *           allocations) leaves the store exactly as it was before it and
 *           the write handle usable. If LMDB itself fails while writing
 *           (map full, its own allocation, I/O) the batch txn cannot go on:
 *           the handle answers ERR_FAILED from then on and kv_write_commit
 *           returns the first error, leaving the store as before the batch.
 *           An I/O or corruption error puts the whole store in a failed
 *           state (every later call returns ERR_FAILED).
 * Limits:   key bytes <= LIMIT_KEY_BYTES (511: LMDB's compiled key size; the
 *           user key is itself an LMDB key); value bytes <=
 *           LIMIT_VALUE_BYTES; ops per txn list <= max_txn_ops (a nested
 *           list: what its parent's longest list leaves, as etcd); nested
 *           txn depth <= LIMIT_TXN_DEPTH and ops in a whole txn tree <=
 *           16384 (both ERR_TOO_MANY_OPS); range answers (and the working
 *           set of a sorted/filtered range) <= LIMIT_RANGE_RESULT_BYTES;
 *           database bytes <= quota (NOSPACE); aux names <= 400 bytes.
 * Not here: Raft, the write-ahead log and applying log entries (consensus/
 *           node); lease expiry timers (consensus/lease); watchers and their
 *           buffering (consensus/watch): this module only emits events and
 *           reads history; permission checks (consensus/auth).
 *
 * Semantics are etcd 3.4's (../shared/reference/etcd-api.md 1.5 and 7):
 *  - The store starts at revision 1. Each effective write request (a put, a
 *    delete that deleted something, a txn whose chosen branch wrote, a lease
 *    revoke that deleted keys) adds exactly one main revision; the ops inside
 *    it are numbered by sub-revision 0, 1, 2, ... Deleting nothing and
 *    read-only txns add none. Put of an unchanged value still adds one.
 *  - Deletes leave tombstones; a key's create_revision, version and lease
 *    restart after a delete.
 *  - A read at revision r sees exactly the writes with main revision <= r.
 *    r <= 0 means the current revision. r < compacted revision gives
 *    ERR_COMPACTED; reading *at* the compacted revision works; r > current
 *    gives ERR_FUTURE_REV.
 *  - Quota (etcd's NOSPACE): a put, a txn holding any put (in any branch,
 *    as etcd) and a lease grant fail with ERR_NOSPACE when the database
 *    size (the high-water mark at kv_write_begin, as etcd's db size) plus
 *    an estimate of the batch's writes so far and of this request exceeds
 *    quota_bytes. The LMDB map is quota + max(quota, 64 MiB), so deletes,
 *    compaction and revokes keep working past the quota; kv_defrag gives
 *    the space back.
 *
 * Sync contract (how durability is split between the WAL and LMDB):
 *  - kv_write_commit() records the applied Raft index and term in the same
 *    LMDB transaction as the batch's changes, so the store always reopens at
 *    the end of some whole batch and kv_applied() names it.
 *  - By default (KV_SYNC_META_LAZY) LMDB flushes data pages at each commit
 *    but not the meta page (MDB_NOMETASYNC): a process crash loses nothing
 *    committed; a power loss may lose the last committed batch(es), never
 *    corrupt the file. The node replays the WAL from kv_applied() + 1 at
 *    start, so that loss is repaired.
 *  - The node must not release WAL segments past what a durable copy of the
 *    store covers: consensus/node keeps checkpoints (in place with
 *    kv_ckpt_pin, or copies with kv_snapshot_write, fsynced) for that and
 *    runs the store with KV_SYNC_NONE; see
 *    consensus/node/node_ckpt.c for when the live file may be trusted.
 *  - KV_SYNC_NONE (MDB_NOSYNC) survives a process crash whole but not a
 *    system crash: use it only with such a durable copy and a rule for
 *    when to distrust the live file (the node has both).
 *
 * On disk (LMDB named databases inside data.mdb; integers big-endian):
 *   meta   "magic" -> "CAIRNKV\0" (8 bytes), "version" -> u32 2, "rev" ->
 *          i64 current, "compact" -> i64 compacted revision, "applied" ->
 *          u64 index | u64 term. (No scheduled-compaction record: a
 *          compaction finishes inside the batch's txn, so "compact" is
 *          always a finished one.)
 *   rev    key = i64 main revision | u32 sub revision (12 bytes)
 *          value = the event record: u8 type (0 put, 1 delete) | i64
 *          create_revision | i64 version | i64 lease | u32 key_len | key |
 *          value. History; what watch catch-up and historical reads use.
 *   index  (MDB_DUPSORT | MDB_DUPFIXED) key = user key, dup = i64 main |
 *          u32 sub | u8 type (13 bytes): every retained revision of the
 *          key, ascending. A key whose history is all compacted away has
 *          no entry.
 *   live   key = user key -> i64 create | i64 mod | i64 version | i64 lease
 *          | u32 sub (36 bytes): the current state of live (non-deleted)
 *          keys, without the value: that is in the rev record at (mod,
 *          sub), which compaction never removes (it is the key's latest).
 *          Reads at the current revision walk this table with one cursor
 *          and look up the value of each record they answer (none for
 *          count_only or keys_only); each value is stored once.
 * Format 1 (before issue 11) also kept a copy of the value after the live
 * row's 36 bytes. kv_open migrates a format-1 store in place (each live row
 * cut to its 36 bytes, version set to 2, all in one write txn: a crash
 * leaves format 1 whole and the next open migrates again); that one open
 * takes time in the number of live keys. kv_snapshot_install accepts a
 * format-1 file and migrates it the same way. The rev and index tables
 * are unchanged, so HashKV is too.
 *   lease  key = i64 lease id -> i64 ttl | i64 remaining ttl checkpoint.
 *   lkeys  (MDB_DUPSORT) key = i64 lease id, dup = user key (the live
 *          keys attached to the lease).
 *   aux    key = u8 table | name -> value (for other modules: members,
 *          auth, cluster identity, alarms). Written in the same write
 *          transaction as the batch.
 * The implementation may refine these records; it must keep the magic and
 * version check and document any change here.
 */
#ifndef CAIRN_CONSENSUS_KV_H
#define CAIRN_CONSENSUS_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest key the store keeps: LMDB's key bound (511 in Debian's
 * build, checked at open). Longer keys are ERR_KEY_TOO_LARGE. */
#define KV_KEY_BYTES_MAX 511

struct kv;       /* the store; opaque, allocated by kv_open */
struct kv_read;  /* a read handle (LMDB read txn) */
struct kv_write; /* a write handle (LMDB write txn) */

enum kv_sync_mode {
    KV_SYNC_META_LAZY = 0, /* default: see the sync contract above */
    KV_SYNC_FULL = 1,      /* fsync data and meta at every commit */
    KV_SYNC_NONE = 2,      /* no fsync at all (see the contract above) */
};

struct kv_options {
    uint64_t quota_bytes; /* 0: LIMIT_QUOTA_BACKEND_BYTES default */
    uint32_t max_txn_ops; /* 0: LIMIT_TXN_OPS default (128) */
    uint32_t max_readers; /* 0: 126 */
    enum kv_sync_mode sync;
    uint64_t value_bytes_max;        /* 0: LIMIT_VALUE_BYTES default */
    uint64_t range_result_bytes_max; /* 0: LIMIT_RANGE_RESULT_BYTES default */
    /* MDB_WRITEMAP: a commit changes the pages in the shared map instead
     * of writing each dirty page with pwrite. LMDB has no nested txns with
     * it, so a Txn that may fail after its first write runs between two
     * commits of the batch (a savepoint: see kv_write_mark). data.mdb is
     * kept allocated (fallocate, its size included) ahead of LMDB's next
     * page by more than one operation uses, so a full disk is ERR_FAILED
     * (ENOSPC), never a SIGBUS. If this LMDB's layout cannot be checked or
     * the file system cannot allocate ahead, the store opens without it
     * (kv_writemap says which). */
    bool writemap;
    /* writemap: the process's resident file pages past which the writer
     * unmaps the store's map while the file grows (0: KV_RESIDENT_DEFAULT;
     * kv_env.c says why only then) */
    uint64_t resident_bytes;
};
#define KV_RESIDENT_DEFAULT ((uint64_t)256 << 20)

/* One key's record at some revision. In read results the byte pointers are
 * borrowed (see Borrowed above). */
struct kv_kv {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
};

enum kv_sort_order {
    KV_SORT_NONE = 0,
    KV_SORT_ASCEND = 1,
    KV_SORT_DESCEND = 2,
};

enum kv_sort_target {
    KV_SORT_KEY = 0,
    KV_SORT_VERSION = 1,
    KV_SORT_CREATE = 2,
    KV_SORT_MOD = 3,
    KV_SORT_VALUE = 4,
};

/* Range over [key, range_end). range_end empty: the single key. range_end
 * "\0" (one zero byte): every key >= key. key "\0" with range_end "\0":
 * everything. A range_end that is not empty, not "\0" and <= key is an
 * empty range in etcd; we answer it as empty too (not ERR_INVALID_RANGE),
 * because clients send such ranges and expect no error. A sort_order or
 * sort_target outside its enum is ERR_BAD_REQUEST. Ties in a sort are
 * ordered by key ascending in either direction, as etcd leaves them, so
 * every member answers alike. */
struct kv_range_req {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *range_end;
    size_t range_end_len;
    int64_t limit;    /* 0: no limit */
    int64_t revision; /* 0: current */
    enum kv_sort_order sort_order;
    enum kv_sort_target sort_target;
    bool keys_only;
    bool count_only;
    int64_t min_mod_revision; /* 0: no filter (each of the four) */
    int64_t max_mod_revision;
    int64_t min_create_revision;
    int64_t max_create_revision;
};

struct kv_range_resp {
    struct kv_kv *kvs; /* array of kvs_count, in the requested order */
    size_t kvs_count;
    bool more;     /* cut by limit */
    int64_t count; /* keys in the range at that revision (ignores limit
                      and the min/max filters) */
};

struct kv_put_req {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t lease; /* 0: no lease (detaches any) */
    bool prev_kv;
    bool ignore_value;
    bool ignore_lease;
};

struct kv_put_resp {
    bool has_prev; /* prev_kv was asked and the key existed */
    struct kv_kv prev_kv;
};

struct kv_delete_req {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *range_end; /* same forms as kv_range_req */
    size_t range_end_len;
    bool prev_kv;
};

struct kv_delete_resp {
    int64_t deleted;
    struct kv_kv *prev_kvs; /* when prev_kv was asked */
    size_t prev_kvs_count;
};

enum kv_cmp_result {
    KV_CMP_EQUAL = 0,
    KV_CMP_GREATER = 1,
    KV_CMP_LESS = 2,
    KV_CMP_NOT_EQUAL = 3,
};

enum kv_cmp_target {
    KV_CMP_VERSION = 0,
    KV_CMP_CREATE = 1,
    KV_CMP_MOD = 2,
    KV_CMP_VALUE = 3,
    KV_CMP_LEASE = 4,
};

/* etcd's Compare. For VALUE, value/value_len is compared bytewise; for the
 * others, number. A range_end applies the compare to every key in the range
 * (all must hold). A missing key compares as an all-zero record, and a
 * VALUE compare on a missing key is false. An unknown result or target
 * enum value is ERR_BAD_COMPARE. */
struct kv_compare {
    enum kv_cmp_result result;
    enum kv_cmp_target target;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *range_end;
    size_t range_end_len;
    int64_t number; /* version, create, mod revision or lease */
    const uint8_t *value;
    size_t value_len;
};

enum kv_op_type {
    KV_OP_RANGE = 0,
    KV_OP_PUT = 1,
    KV_OP_DELETE = 2,
    KV_OP_TXN = 3,
};

struct kv_txn_req;

struct kv_op {
    enum kv_op_type type;
    union {
        struct kv_range_req range;
        struct kv_put_req put;
        struct kv_delete_req del;
        const struct kv_txn_req *txn;
    } u;
};

struct kv_txn_req {
    const struct kv_compare *compares;
    size_t compares_count;
    const struct kv_op *success;
    size_t success_count;
    const struct kv_op *failure;
    size_t failure_count;
};

struct kv_txn_resp;

struct kv_op_resp {
    enum kv_op_type type;
    union {
        struct kv_range_resp range;
        struct kv_put_resp put;
        struct kv_delete_resp del;
        struct kv_txn_resp *txn;
    } u;
};

struct kv_txn_resp {
    bool succeeded;
    struct kv_op_resp *responses;
    size_t responses_count;
};

/* Owner of everything a request's answer points to (arrays, copied bytes).
 * Zero-initialise, pass to any number of calls, then kv_result_free. */
struct kv_result {
    void *arena;  /* private */
    size_t bytes; /* total bytes held, for the range-result limit */
};

void kv_result_free(struct kv_result *res);

/* Open (creating if absent) the store in dir. Takes an exclusive lock on
 * dir (flock on dir/LOCK); ERR_LOCKED if another process holds it. A file
 * without our magic: ERR_BAD_MAGIC; a newer version: ERR_BAD_VERSION
 * (logged with both versions). Opening does not scan the data: time and
 * memory do not grow with the number of keys, except for the one open
 * that migrates a format-1 store (see On disk). opts may be NULL for defaults.
 * On success *out is owned by the caller until kv_close. */
int kv_open(const char *dir, const struct kv_options *opts, struct kv **out);

/* Close and free. Every handle must be ended first. */
void kv_close(struct kv *kv);

/* Current and compacted revisions, applied index and term (as of the last
 * commit). Cheap; any thread. */
int64_t kv_rev(const struct kv *kv);
int64_t kv_compact_rev(const struct kv *kv);
void kv_applied(const struct kv *kv, uint64_t *index, uint64_t *term);

/* Size of the database file in use (the high-water mark of its pages, as
 * etcd's db size) and bytes of pages in use (etcd's db size in use: the
 * high-water mark less LMDB's free pages; this walks the freelist). */
void kv_size(struct kv *kv, uint64_t *db_bytes, uint64_t *in_use_bytes);

/* kv_size's db_bytes alone: no freelist walk, cheap enough for a tick. */
uint64_t kv_db_bytes(struct kv *kv);

/* Entries in all of the store's tables together, as of the last commit
 * (etcd's "total keys" of a backend: every row, not only live keys). */
uint64_t kv_entry_count(struct kv *kv);

/* Make every commit so far durable (fsync data and meta). */
int kv_sync(struct kv *kv);

/* --- reads ---------------------------------------------------------------
 * A read handle is a consistent snapshot at the revision current when it
 * began. Begin and end on the same thread or not: either works (MDB_NOTLS).
 * ERR_BUSY when max_readers handles are already open. */
int kv_read_begin(struct kv *kv, struct kv_read **out);
void kv_read_end(struct kv_read *rd);
int64_t kv_read_rev(const struct kv_read *rd);

/* Range on a read handle. resp's arrays live in res; key/value bytes are
 * borrowed from the handle (valid until kv_read_end). ERR_LIMIT when the
 * answer (or, for a sorted or filtered range, the set it is cut from)
 * would exceed range_result_bytes_max. */
int kv_range(struct kv_read *rd, const struct kv_range_req *req,
             struct kv_result *res, struct kv_range_resp *resp);

/* A read-only txn (every op is a range, recursively) evaluated on a read
 * handle; same borrowing as kv_range. ERR_INVALID if an op writes (in any
 * branch). Validation and checks as kv_txn. */
int kv_txn_read(struct kv_read *rd, const struct kv_txn_req *req,
                struct kv_result *res, struct kv_txn_resp *resp);

/* True if req (recursively) contains no put or delete. */
bool kv_txn_is_read_only(const struct kv_txn_req *req);

/* --- history and events --------------------------------------------------*/

enum kv_event_type {
    KV_EVENT_PUT = 0,
    KV_EVENT_DELETE = 1,
};

/* One change. For DELETE, kv holds the key, mod_revision = the deleting
 * revision and zero create_revision/version/lease/value. prev is the
 * record before the change when the caller asked for it (has_prev false if
 * there was none). Events from a write handle carry prev (the record the
 * request replaced or deleted; for a key an earlier op of the same txn
 * changed, the record before the txn, as etcd's watch prev_kv is the
 * record at mod_revision - 1) unless kv_write_event_prev said nobody
 * needs it for that key: then prev_omitted is set instead (there was a
 * record; kv_events_read gives it to whoever needs it after all).
 * kv_events_read fills prev when with_prev is set, from the key's record
 * at mod_revision - 1 (absent when that history was compacted). */
struct kv_event {
    enum kv_event_type type;
    struct kv_kv kv;
    bool has_prev;
    bool prev_omitted;
    struct kv_kv prev;
};

/* For kv_events_read: return nonzero to stop early. The events of one
 * revision are never split: the read stops after the rest of the current
 * revision's events, returns 0 and sets *next_rev to the next revision.
 * The write handle's event callback's return value is ignored. */
typedef int (*kv_event_cb)(void *ctx, const struct kv_event *ev);

/* Read the events with main revision in [from_rev, to_rev] (to_rev 0: the
 * handle's revision) on keys in [key, range_end) (same forms as range), in
 * revision order (ops of one revision in sub-revision order). max_events
 * (0: no limit) is checked between revisions: a read stops before the
 * first revision that would start at or past it, so it may deliver more
 * when one revision holds many events (revisions are never split).
 * with_prev fills ev.prev. *next_rev is set to the revision to continue
 * from (to_rev + 1 when everything was read). to_rev past the handle's
 * revision is the handle's revision. from_rev < 1 is 1. from_rev <
 * compacted revision: ERR_COMPACTED (the history is gone; etcd cancels
 * such watches with compact_revision); from the compacted revision itself
 * works, as in etcd, and is complete (kv_compact keeps every record at
 * that revision). This scans the history from from_rev (it is how
 * watchers catch up). */
int kv_events_read(struct kv_read *rd, const uint8_t *key, size_t key_len,
                   const uint8_t *range_end, size_t range_end_len,
                   int64_t from_rev, int64_t to_rev, size_t max_events,
                   bool with_prev, kv_event_cb cb, void *ctx,
                   int64_t *next_rev);

/* HashKV: CRC32C over every retained rev-table entry (its 12-byte key and
 * its record bytes, in revision order) with main revision <= rev, then the
 * compacted revision (be64); rev 0 is the handle's revision. Equal on
 * every member that applied the same log (compactions included).
 * ERR_COMPACTED below the compacted revision, ERR_FUTURE_REV past the
 * handle's. */
int kv_hash(struct kv_read *rd, int64_t rev, uint32_t *hash,
            int64_t *compact_rev, int64_t *hash_rev);

/* --- writes --------------------------------------------------------------
 * A write handle groups the apply of many requests (a batch of committed
 * Raft entries) into one LMDB transaction. Each request is atomic on its
 * own: a request that fails leaves no change and the handle stays usable
 * for the next request (put, delete and revoke do every check and
 * allocation before their first write; a txn whose ops cannot all be
 * prepared that way runs in a nested LMDB txn). Only an LMDB failure while
 * writing loses the batch (see Errors at the top). The event callback, if
 * not NULL, receives every event of every successful request, in order,
 * after the request succeeded (so a failed request emits nothing); it must
 * not call back into kv. One write handle at a time: ERR_BUSY otherwise.
 * ERR_FAILED after an I/O error. */
int kv_write_begin(struct kv *kv, kv_event_cb on_event, void *ctx,
                   struct kv_write **out);

/* Commit the batch together with the Raft index and term it reaches. On
 * error the batch is lost and the store is unchanged (or failed), but for
 * what a writemap savepoint already committed (kv_write_mark). Frees the
 * handle either way. */
int kv_write_commit(struct kv_write *wr, uint64_t applied_index,
                    uint64_t applied_term);

/* Drop the batch. Frees the handle. */
void kv_write_abort(struct kv_write *wr);

/* The requests so far complete the Raft entries up to index (term). With
 * writemap a Txn request may commit the batch so far before it runs (a
 * savepoint), and that commit records this index as applied: the store
 * then always opens at the end of a whole entry. Without a mark the
 * savepoint records the applied index the batch began with. Without
 * writemap this only stores the numbers. */
void kv_write_mark(struct kv_write *wr, uint64_t index, uint64_t term);

/* Called by a writemap savepoint before it commits, to add what belongs
 * with the entries up to the mark (writes through wr). A non-zero return
 * poisons the batch. */
typedef int (*kv_savepoint_fn)(void *ctx, struct kv_write *wr);
void kv_write_on_savepoint(struct kv_write *wr, kv_savepoint_fn fn, void *ctx);

/* Which events need prev (the default: all). all false: only events on
 * keys that start with prefix (prefix_len 0: none); the others skip
 * reading the old value (a lookup in the history) and set prev_omitted.
 * The answer's prev_kv is read whenever the request asks for it. prefix
 * is borrowed for the handle's life. */
void kv_write_event_prev(struct kv_write *wr, bool all, const uint8_t *prefix,
                         size_t prefix_len);

/* Whether a writemap savepoint committed part of this batch: an abort
 * (or a failed commit) then leaves the store at the last savepoint. */
bool kv_write_saved(const struct kv_write *wr);

/* Whether the store runs with MDB_WRITEMAP (asked and available). */
bool kv_writemap(const struct kv *kv);

/* Revision after the requests applied so far on this handle. */
int64_t kv_write_rev(const struct kv_write *wr);

/* The requests. Each copies what it returns into res. *rev is the store
 * revision after the request (the response header's revision). A put with
 * a lease that does not exist is ERR_LEASE_NOT_FOUND. Over quota, put and
 * a writing txn are ERR_NOSPACE (deletes, compaction and lease revoke
 * still work). */
int kv_put(struct kv_write *wr, const struct kv_put_req *req,
           struct kv_result *res, struct kv_put_resp *resp, int64_t *rev);
int kv_delete(struct kv_write *wr, const struct kv_delete_req *req,
              struct kv_result *res, struct kv_delete_resp *resp, int64_t *rev);
/* Txn, in etcd 3.4's order (v3rpc/key.go, etcdserver/apply.go):
 *  1. validation: op counts against max_txn_ops in compares, success and
 *     failure separately, a nested txn's lists against what its parent's
 *     longest list leaves (ERR_TOO_MANY_OPS); empty keys
 *     (ERR_KEY_NOT_PROVIDED), bad compare enums (ERR_BAD_COMPARE), an
 *     unknown op type (ERR_BAD_REQUEST), put flags as kv_put, in both
 *     branches;
 *  2. duplicate keys (ERR_DUPLICATE_KEY) per etcd's checkIntervals, for
 *     the success ops and the failure ops separately, nested txns
 *     included (a nested txn's success and failure puts may repeat each
 *     other); a delete whose range_end is "\0" conflicts with nothing,
 *     as in etcd;
 *  3. quota (ERR_NOSPACE) if the txn holds any put;
 *  4. every compare on the chosen path, nested ones included, against the
 *     state before the txn (a nested compare does not see earlier ops);
 *  5. checks on the chosen path against that state: puts (ERR_KEY_NOT_FOUND
 *     for ignore_*, ERR_LEASE_NOT_FOUND), then ranges (ERR_FUTURE_REV past
 *     the revision before the txn, ERR_COMPACTED);
 *  6. the chosen ops in order; ranges see earlier writes. All writes share
 *     one revision, numbered by sub-revision in op order. */
int kv_txn(struct kv_write *wr, const struct kv_txn_req *req,
           struct kv_result *res, struct kv_txn_resp *resp, int64_t *rev);
/* Joined writes: keys that belong to the request just applied (apply's
 * audit log). With join, the put is written at that request's revision
 * with the sub-revisions after its ops, so a reader sees both or neither;
 * kv_write_can_join says whether the last request on the handle wrote
 * (rev_before: kv_write_rev before it), and only then may join be true
 * (ASSERT). Without join (the request wrote no key) the put makes a
 * revision of its own. The delete removes one key (nothing if absent) at
 * the revision of the last write, joined. The put takes no lease and no
 * prev_kv. No quota check (the request they belong to had one). Errors:
 * kv_put's validation, ERR_FAILED, -ENOMEM; a failure after the request's
 * own writes leaves them: the caller must then abort the batch. */
bool kv_write_can_join(const struct kv_write *wr, int64_t rev_before);
int kv_put_joined(struct kv_write *wr, const struct kv_put_req *req, bool join);
int kv_delete_joined(struct kv_write *wr, const uint8_t *key, size_t key_len);

/* Range inside the write handle (sees this batch's writes); results are
 * copied into res. */
int kv_write_range(struct kv_write *wr, const struct kv_range_req *req,
                   struct kv_result *res, struct kv_range_resp *resp);

/* Compact: remove history below rev, keeping for every key its latest
 * record at or below rev unless that record is a tombstone. Every record
 * *at* rev stays, tombstones included (one step further than etcd, which
 * drops a tombstone at rev too): reads at rev answer the same, and the
 * history from rev on is whole, so a watcher resuming at the compacted
 * revision (what clients do with compact_revision) misses no delete. The
 * next compaction drops them. rev <= the compacted revision:
 * ERR_COMPACTED; rev > current: ERR_FUTURE_REV. Adds no revision. Runs
 * within the handle; a very large history is removed in one go (the node
 * may bound work by compacting in steps). */
int kv_compact(struct kv_write *wr, int64_t rev);

/* --- leases' persistent records (the timers live in consensus/lease) ---*/

struct kv_lease {
    int64_t id;
    int64_t ttl;           /* granted TTL, seconds */
    int64_t remaining_ttl; /* last checkpoint, seconds; 0: none */
};

/* Grant: ERR_LEASE_EXISTS if id is taken; ERR_NOSPACE over quota; id <= 0
 * is ERR_INVALID. Adds no revision. */
int kv_lease_grant(struct kv_write *wr, int64_t id, int64_t ttl);

/* Revoke: deletes every key attached to the lease in one revision (none if
 * no keys) and the lease itself; ERR_LEASE_NOT_FOUND if absent. *rev as for
 * kv_delete. Events as a delete of each key. */
int kv_lease_revoke(struct kv_write *wr, int64_t id, int64_t *rev);

/* Record a remaining-TTL checkpoint; ERR_LEASE_NOT_FOUND if absent. */
int kv_lease_checkpoint(struct kv_write *wr, int64_t id, int64_t remaining_ttl);

/* Look up one lease; ERR_LEASE_NOT_FOUND. Works on a read handle. */
int kv_lease_get(struct kv_read *rd, int64_t id, struct kv_lease *out);

/* Every lease, in id order (for rebuilding timers at start and Leases). */
typedef int (*kv_lease_cb)(void *ctx, const struct kv_lease *lease);
int kv_lease_list(struct kv_read *rd, kv_lease_cb cb, void *ctx);

/* Keys attached to a lease, in key order; key bytes borrowed for the call. */
typedef int (*kv_key_cb)(void *ctx, const uint8_t *key, size_t key_len);
int kv_lease_keys(struct kv_read *rd, int64_t id, kv_key_cb cb, void *ctx);

/* --- auxiliary tables for other modules ----------------------------------
 * table is a small number owned by the caller's module (see KV_AUX_*);
 * name <= 400 bytes (ERR_INVALID past it). Values up to value_bytes_max
 * (ERR_VALUE_TOO_LARGE). Aux writes add no revision and are not events. */
enum kv_aux_table {
    KV_AUX_CLUSTER = 1, /* cluster and member identity, membership */
    KV_AUX_AUTH = 2,    /* users, roles, auth revision */
    KV_AUX_ALARM = 3,   /* raised alarms */
    KV_AUX_CONFIG = 4,  /* config center metadata */
    KV_AUX_APPLY = 5,   /* apply's per-proposer last request id */
    KV_AUX_LEASE = 6,   /* apply's per-lease index of the last log renewal */
    KV_AUX_AUDIT = 7,   /* apply's audit chain head */
};

int kv_aux_put(struct kv_write *wr, uint8_t table, const void *name,
               size_t name_len, const void *value, size_t value_len);
int kv_aux_delete(struct kv_write *wr, uint8_t table, const void *name,
                  size_t name_len); /* ERR_NOT_FOUND if absent */
/* As kv_aux_get, inside a write handle (sees its own writes); *value
 * borrowed until the handle's next write or its end. */
int kv_write_aux_get(struct kv_write *wr, uint8_t table, const void *name,
                     size_t name_len, const void **value, size_t *value_len);
/* *value borrowed until kv_read_end; ERR_NOT_FOUND if absent. */
int kv_aux_get(struct kv_read *rd, uint8_t table, const void *name,
               size_t name_len, const void **value, size_t *value_len);
typedef int (*kv_aux_cb)(void *ctx, const void *name, size_t name_len,
                         const void *value, size_t value_len);
int kv_aux_list(struct kv_read *rd, uint8_t table, kv_aux_cb cb, void *ctx);

/* --- whole-store operations ----------------------------------------------*/

/* Write a consistent copy of the whole store (compacted, as of one moment)
 * to fd; readers and the writer keep running meanwhile. */
int kv_snapshot_write(struct kv *kv, int fd);

/* Start the disk write of the store file's dirty pages in [*offset,
 * *offset + bytes) (sync_file_range, SYNC_FILE_RANGE_WRITE: no wait, no
 * fsync), then move *offset on past them, back to 0 past the pages in
 * use. Called at a pace over the whole file, it keeps the kernel from
 * writing back everything the writes dirtied in one burst when the oldest
 * dirty page expires (node.c, store_writeback). Durability is unchanged. */
int kv_writeback(struct kv *kv, uint64_t *offset, uint64_t bytes);

/* Replace the store's contents with the copy in file path (written by
 * kv_snapshot_write, possibly on another member). Needs every handle
 * closed (ERR_BUSY). The file is opened read-only and checked (magic,
 * version: format 1 is migrated when the copy is opened, meta) and
 * copied repacked (as kv_defrag) next to data.mdb before it replaces
 * the current one; on error the current store is untouched. Revision,
 * compaction and applied index are the snapshot's afterwards. */
int kv_snapshot_install(struct kv *kv, const char *path);

/* Drop fd's file (whole and synced) from the page cache and read it back
 * in single pages: for a store file written in large pieces (a restored
 * checkpoint), whose random page writes would otherwise each walk a large
 * folio (kv_env.c, "The page cache in single pages"). Best effort. */
void kv_cache_small(int fd);

/* Defragment: write a repacked copy of the file (every table re-inserted
 * in order into a fresh file, so its pages are full, not only the free
 * pages dropped) and swap it in atomically (rename, then fsync of the
 * directory), then reopen. Needs
 * every handle closed (ERR_BUSY). A crash at any point leaves either the
 * old or the new file, both whole. */
int kv_defrag(struct kv *kv);

/* --- checkpoints in place (kv_ckpt.c) ------------------------------------
 * The live file as its own durable copy, for a store run with
 * KV_SYNC_NONE: kv_ckpt_pin holds the newest committed state T (LMDB then
 * reuses none of its pages until kv_ckpt_unpin*), and fills a record of it:
 * T's meta page and the file's identity (device, inode, birth time). After
 * kv_sync that state is durable, and once the caller keeps the record
 * durably, kv_ckpt_restore can bring the file back to T after a power loss
 * (its meta pages rewritten: the ones on disk may name pages that never
 * reached it). The pins cost the pages freed while they last: the file
 * grows by them (kv_ckpt_growth). */

#define KV_CKPT_META_BYTES 256

struct kv_file_id {
    uint64_t dev;
    uint64_t ino;
    int64_t btime_sec;
    uint32_t btime_nsec;
    uint32_t pad;
};

struct kv_ckpt {
    struct kv_file_id file;
    uint32_t page_bytes;
    uint32_t pad;
    uint64_t txnid;
    uint64_t last_pgno;
    uint64_t applied_index;
    uint64_t applied_term;
    uint8_t meta[KV_CKPT_META_BYTES]; /* the head of T's meta page */
};

/* Whether this file system can carry checkpoints in place (the file's
 * birth time is known, LMDB's meta page is the layout we read). 0 or
 * -ENOTSUP / ERR_INVALID. */
int kv_ckpt_supported(struct kv *kv);

/* Pin the newest committed state and describe it in *out. ERR_BUSY when
 * KV_PINS_MAX states are pinned already. Any thread. */
int kv_ckpt_pin(struct kv *kv, struct kv_ckpt *out);

/* Release the pin of ck (a failed checkpoint), or every pin older than ck
 * (ck was made durable); both do nothing if the file was replaced since
 * (a defrag or an install drops every pin). */
void kv_ckpt_unpin(struct kv *kv, const struct kv_ckpt *ck);
void kv_ckpt_unpin_older(struct kv *kv, const struct kv_ckpt *ck);

/* The identity of the file the store runs on now; and every pin released
 * if the store still runs on file (a copy became the checkpoint: no state
 * of that file needs keeping whole). */
void kv_ckpt_file(struct kv *kv, struct kv_file_id *out);
void kv_ckpt_unpin_all(struct kv *kv, const struct kv_file_id *file);

/* Whether ck describes the file the store runs on now. */
bool kv_ckpt_current(struct kv *kv, const struct kv_ckpt *ck);

/* Pages freed by the commits since the newest pin (0 without one): what
 * the pins keep LMDB from reusing, so what the file grows by unless a
 * checkpoint moves the pins on. Counted, not read off the file's size:
 * the pages freed between two checkpoints are reused after the next one,
 * so a trigger on the file's growth alone waits longer each time (the
 * reusable pool grows by the threshold at each checkpoint) and the file
 * grows without bound. */
uint64_t kv_ckpt_growth(struct kv *kv);

/* Describe the newest state of the closed LMDB file path (a defrag's
 * output) as kv_ckpt_pin would, without pinning it. */
int kv_ckpt_describe(const char *path, struct kv_ckpt *out);

/* Before kv_open: bring dir/data.mdb back to the state ck describes.
 * ERR_NOT_FOUND if data.mdb is not the file ck names (replaced since). */
int kv_ckpt_restore(const char *dir, const struct kv_ckpt *ck);

/* kv_defrag with a hook: cb runs once the repacked copy is durable,
 * before it replaces data.mdb, with the record of its state (pinned right
 * after the swap); a failing cb abandons the defrag. */
typedef int (*kv_defrag_cb)(void *ctx, const struct kv_ckpt *fresh);
int kv_defrag_hook(struct kv *kv, kv_defrag_cb cb, void *ctx);

#endif

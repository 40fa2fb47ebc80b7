/*
 * kv_int.h - private structures and helpers shared by the kv_*.c files.
 *
 * Does:     the record codecs (byte layouts in kv.h), the store, read and
 *           write handle structs, the result arena, the event buffer and
 *           the "view" that lets one range/compare/txn engine run on a read
 *           handle (borrowing) or inside a write handle (copying).
 * Owns:     nothing by itself.
 * Threads:  as kv.h.
 * Borrowed: record pointers decoded from LMDB point into the map or into a
 *           dirty page of the write txn: never hold one across a write.
 * Errors:   as kv.h.
 * Limits:   KV_TXN_OPS_TOTAL_MAX below.
 * Not here: the public API (kv.h).
 */
#ifndef CAIRN_CONSENSUS_KV_INT_H
#define CAIRN_CONSENSUS_KV_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "consensus/kv/kv.h"

#define KV_MAGIC     "CAIRNKV" /* 8 bytes with its NUL */
#define KV_MAGIC_LEN 8
#define KV_VERSION   2u
/* Format 1 kept each live key's value in its live row too; kv_open
 * migrates it (kv_env.c). */
#define KV_VERSION_1 1u

/* Every op of a txn tree, all levels together. etcd bounds each list (and
 * each nested list by what its parent left of max_txn_ops) but not the
 * tree; nesting can multiply. This keeps the duplicate check and the
 * response tree bounded; no real client comes near it. */
#define KV_TXN_OPS_TOTAL_MAX 16384

/* LIMIT_KEY_BYTES's hard maximum: LMDB's compiled key size (checked
 * against mdb_env_get_maxkeysize at open). */
#define KV_AUX_NAME_MAX    400
#define KV_READERS_DEFAULT 126
/* Slots kept beyond max_readers: snapshot copies, kv_size and the pins
 * of checkpoints in place (kv_ckpt.c, at most KV_PINS_MAX). */
#define KV_READERS_SPARE   8
#define KV_PINS_MAX        3

/* Record sizes (see the byte tables in kv.h). */
#define KV_REVKEY_LEN  12
#define KV_REVHDR_LEN  29 /* type, create, version, lease, key_len */
#define KV_IDX_LEN     13 /* main, sub, type */
#define KV_LIVEHDR_LEN 36 /* the whole live row (format 2) */
#define KV_LEASE_LEN   16

enum kv_rec_type {
    KV_REC_PUT = 0,
    KV_REC_DEL = 1,
};

enum kv_dbi_id {
    KV_DBI_META = 0,
    KV_DBI_REV,
    KV_DBI_INDEX,
    KV_DBI_LIVE,
    KV_DBI_LEASE,
    KV_DBI_LKEYS,
    KV_DBI_AUX,
    KV_DBI__COUNT
};

struct kv {
    MDB_env *env;
    MDB_dbi dbi[KV_DBI__COUNT];
    char *dir;
    int lock_fd;
    struct kv_options opts; /* with defaults filled in */
    uint64_t map_bytes;
    size_t page_bytes;

    /* Published after each commit for kv_rev() & co. on any thread. */
    pthread_mutex_t state_mu;
    int64_t rev;
    int64_t compact;
    uint64_t applied_index;
    uint64_t applied_term;

    atomic_int failed; /* 0, or the error that failed the store */
    atomic_int readers_open;
    atomic_bool writer_active;

    /* Reset read txns kept for reuse (mdb_txn_renew is cheaper than a new
     * txn: no reader-slot search, no allocation). */
    pthread_mutex_t pool_mu;
    struct kv_read *pool;

    /* Checkpoints in place (kv_ckpt.c): read txns that keep committed
     * states of the file intact, the file's identity, and its page count
     * after the last commit (the writer publishes it). */
    pthread_mutex_t pins_mu;
    struct kv_pin {
        MDB_txn *txn;
        uint64_t txnid;
        uint64_t last_pgno;
    } pins[KV_PINS_MAX];
    struct kv_file_id file_id;
    atomic_uint_fast64_t last_pgno;
    /* Pages freed by the commits after the newest pin (LMDB's free list
     * records newer than it), counted by the writer after each commit
     * while a pin exists: freed_txnid the pin counted from, freed_upto the
     * last record read. freed is what the node reads. */
    atomic_uint_fast64_t freed_txnid;
    uint64_t freed_upto;
    atomic_uint_fast64_t freed;
    /* data.mdb's bytes made ready in the page cache as single pages
     * (kv__grow_ahead); the writer's alone. */
    uint64_t ahead_end;
    uint64_t ahead_used; /* the file's used bytes at the last commit */
    /* MDB_WRITEMAP (kv_options.writemap, when available): data.mdb's
     * blocks are allocated up to alloc_end (the writer's alone), and
     * next_off is where LMDB's MDB_txn keeps its next page number. */
    bool writemap;
    uint64_t alloc_end;
    size_t next_off;
    /* the writer's: commits since it last looked at how much of the map
     * is resident (kv__wm_resident) */
    uint32_t wm_commits;
    uint64_t wm_unmapped_at; /* the file's used bytes at the last unmap */
    void *map_addr;          /* where data.mdb is mapped, once looked up */
};

/* kv_env.c, writemap only: make sure data.mdb's blocks are allocated well
 * ahead of the next page txn may use. 0, or a positive errno (ENOSPC):
 * the batch must not go on. */
int kv__room(struct kv *kv, MDB_txn *txn);

/* kv_env.c, writemap only, after each commit: every few commits, if more
 * of the process's file pages are mapped than kv_options.resident_bytes
 * and the file grew by half that since the last time, drop the map's
 * pages from its page tables (their data stays in the page cache, dirty
 * ones too). */
void kv__wm_resident(struct kv *kv);

/* kv_env.c: after a commit that left the last page at last_pgno, keep
 * the file extended, and cached in single pages, ahead of it. */
void kv__grow_ahead(struct kv *kv, uint64_t last_pgno);

/* kv_ckpt.c */
/* Drop every pin; how many there were. */
int kv__pins_drop(struct kv *kv);
int kv__file_id(const char *path, struct kv_file_id *out);
void kv__note_pages(struct kv *kv);
/* kv_env.c: the pages listed by the free list records keyed from txnid
 * `from` on (0: all); *last becomes the last key read (unchanged when
 * none). */
int kv__freelist_sum(MDB_txn *txn, uint64_t from, uint64_t *last,
                     uint64_t *pages);
/* Pin the newest state of a file just swapped in (after a defrag or an
 * install): its record was saved before the swap (kv_defrag's cb). */
int kv__pin_fresh(struct kv *kv);

enum kv_cur { KV_CUR_LIVE = 0, KV_CUR_INDEX, KV_CUR_REV, KV_CUR__COUNT };

struct kv_read {
    struct kv *kv;
    MDB_txn *txn;
    MDB_cursor *cur[KV_CUR__COUNT];
    bool cur_ok[KV_CUR__COUNT]; /* renewed for the current txn */
    int64_t rev;
    int64_t compact;
    struct kv_read *next; /* pool link */
};

/* Events of the request being applied, emitted once it succeeds. Byte
 * fields are offsets into data (which may move while it grows). */
struct kv_ev_rec {
    enum kv_event_type type;
    bool has_prev;
    bool prev_omitted;
    size_t key_off, key_len, val_off, val_len;
    size_t pval_off, pval_len;
    int64_t create, mod, version, lease;
    int64_t pcreate, pmod, pversion, please;
};

struct kv_evbuf {
    struct kv_ev_rec *recs;
    size_t count, cap;
    struct buf data;
};

struct kv_write {
    struct kv *kv;
    MDB_txn *txn;
    int64_t rev;
    int64_t compact;
    uint64_t db_bytes_begin; /* committed high-water mark at begin */
    uint64_t cost_bytes;     /* quota estimate of this batch so far */
    int err;                 /* sticky: the batch txn can no longer commit */
    kv_event_cb on_event;
    void *ctx;
    bool ev_prev_some; /* kv_write_event_prev: not every event needs prev */
    const uint8_t *ev_prev_prefix;
    size_t ev_prev_prefix_len;
    struct kv_evbuf ev;
    struct buf scratch; /* delete/revoke key lists, copied values */
    /* The last request that wrote: its revision and its next sub-revision
     * (kv_put_joined / kv_delete_joined continue it). */
    int64_t join_rev;
    uint32_t join_sub;
    /* A cursor on the live table for lone puts, opened at the first: the
     * lookup of the old record leaves it on the key, and the live write
     * replaces the record there without a second descent (live_write).
     * NULL until then; closed before the txn ends. */
    MDB_cursor *live_cur;
    /* The last whole Raft entry of the batch so far (kv_write_mark); a
     * writemap savepoint records it as applied. */
    uint64_t mark_index;
    uint64_t mark_term;
    kv_savepoint_fn on_savepoint;
    void *savepoint_ctx;
    uint32_t savepoints; /* committed so far in this batch */
};

/* kv_write.c, writemap only: commit the batch so far (applied: the mark)
 * and go on in a new LMDB txn, so that aborting that one undoes only what
 * comes after. Cursors on the old txn are gone. 0 or an error (the batch
 * is then poisoned). */
int kv__savepoint(struct kv_write *wr);
/* Drop what was written since the savepoint and go on in a new txn. */
int kv__rollback(struct kv_write *wr);

/* Where an engine reads from. On a read handle results are borrowed; in a
 * write handle they are copied into the result arena. */
struct kv_view {
    struct kv *kv;
    MDB_txn *txn;
    struct kv_read *rd; /* NULL inside a write handle */
    int64_t live_rev;   /* the revision the live table shows now */
    int64_t max_rev;    /* largest revision a read may name */
    int64_t compact;
    bool copy;
};

/* One request being applied inside a write handle. */
struct kv_req {
    struct kv_write *wr;
    MDB_txn *txn; /* the batch txn, or a child for a txn request */
    int64_t main; /* the revision this request writes at */
    uint32_t sub; /* next sub revision */
    bool wrote;
    bool lone;    /* a put on its own, not inside a txn */
    bool live_at; /* wr->live_cur is on this put's key, found */
    struct kv_result *res;
};

/* A decoded record of a key at some revision (pointers borrowed). A
 * record decoded from the live table has no value yet (lazy: value NULL,
 * value_len 0): the value is in the rev record at (mod, sub), which
 * kv__value_load reads. Only code that needs the value pays that
 * lookup. */
struct kv_rec {
    uint8_t type;
    bool lazy;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t create, mod, version, lease;
    uint32_t sub;
};

/* --- codecs (kv_codec.c) ----------------------------------------------- */
void kv__revkey(uint8_t out[KV_REVKEY_LEN], int64_t main, uint32_t sub);
void kv__idx(uint8_t out[KV_IDX_LEN], int64_t main, uint32_t sub, uint8_t type);
int kv__live_decode(const MDB_val *k, const MDB_val *v, struct kv_rec *out);
int kv__rev_decode(const MDB_val *k, const MDB_val *v, struct kv_rec *out);
/* Fill a lazy record's value from its rev record, through cur (a cursor
 * on the rev table; positioned near the last one it is cheaper than a
 * lookup from the root) or, cur NULL, mdb_get. No-op if not lazy. The
 * value is borrowed as any record pointer. ERR_CORRUPT if the rev record
 * is missing or is not a put of the same key. */
int kv__value_load(MDB_txn *txn, struct kv *kv, MDB_cursor *cur,
                   struct kv_rec *r);
void kv__rec_to_kv(const struct kv_rec *r, struct kv_kv *out);
int kv__mdb_err(int rc);
bool kv__fatal_err(int rc);
void kv__set_failed(struct kv *kv, int err);

/* --- keys and ranges (kv_codec.c) ---------------------------------------*/
enum kv_range_kind {
    KV_RANGE_ONE = 0,  /* range_end empty: the key alone */
    KV_RANGE_FROM = 1, /* range_end "\0": every key >= key */
    KV_RANGE_SPAN = 2, /* [key, range_end) */
    KV_RANGE_EMPTY = 3 /* range_end <= key */
};

struct kv_span {
    enum kv_range_kind kind;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *end;
    size_t end_len;
};

int kv__span(const uint8_t *key, size_t key_len, const uint8_t *end,
             size_t end_len, struct kv_span *out);
/* Is k past the span (k >= end, or k != key for ONE)? */
bool kv__span_past(const struct kv_span *s, const uint8_t *k, size_t k_len);
bool kv__span_has(const struct kv_span *s, const uint8_t *k, size_t k_len);
int kv__bytes_cmp(const uint8_t *a, size_t a_len, const uint8_t *b,
                  size_t b_len);

/* --- result arena (kv_result.c) -----------------------------------------*/
void *kv__alloc(struct kv_result *res, size_t n);
int kv__copy_kv(struct kv_result *res, struct kv_kv *kv, bool with_value);

/* --- events (kv_write.c) ------------------------------------------------ */
void kv__ev_reset(struct kv_evbuf *ev);
int kv__ev_add(struct kv_evbuf *ev, enum kv_event_type type,
               const struct kv_rec *now, const struct kv_rec *prev);
void kv__ev_emit(struct kv_write *wr);

/* --- reads (kv_range.c) --------------------------------------------------*/
int kv__view_cursor(struct kv_view *v, enum kv_cur which, MDB_cursor **out);
void kv__view_cursor_done(struct kv_view *v, MDB_cursor *c);
int kv__range(struct kv_view *v, const struct kv_range_req *req,
              struct kv_result *res, struct kv_range_resp *resp);
int kv__range_check(const struct kv_range_req *req);
/* The latest record of key at or below (main, sub) in the index, decoded
 * from the rev table; ERR_NOT_FOUND if none (or it is a tombstone when
 * skip_tomb). */
int kv__key_at(struct kv_view *v, MDB_cursor *idx, const uint8_t *key,
               size_t key_len, int64_t main, struct kv_rec *out);
int kv__live_get(MDB_txn *txn, struct kv *kv, const uint8_t *key,
                 size_t key_len, struct kv_rec *out);

/* --- writes used by the txn engine (kv_write.c) --------------------------*/
struct kv_put_plan {
    struct kv_rec now;
    bool had_old;
    int64_t old_lease;
    bool value_in_scratch; /* ignore_value: now.value is scratch + off */
    size_t value_off;
};
int kv__put_prepare(struct kv_req *rq, const struct kv_put_req *req,
                    uint32_t sub, struct kv_put_resp *resp,
                    struct kv_put_plan *pp);
int kv__put_write(struct kv_req *rq, struct kv_put_plan *pp);
int kv__poison(struct kv_write *wr, int rc);
/* The batch can take another request: 0, or ERR_FAILED (poisoned, or the
 * store failed; with writemap also when data.mdb cannot be allocated
 * ahead, which poisons it). */
int kv__write_ok(struct kv_write *wr);
int kv__put_check(struct kv_req *rq, const struct kv_put_req *req);
int kv__put_exec(struct kv_req *rq, const struct kv_put_req *req,
                 struct kv_put_resp *resp);
int kv__delete_exec(struct kv_req *rq, const struct kv_delete_req *req,
                    struct kv_delete_resp *resp);
int kv__put_validate(const struct kv *kv, const struct kv_put_req *req);
int kv__key_validate(const uint8_t *key, size_t key_len);
int kv__quota(struct kv_write *wr, uint64_t cost);
void kv__req_begin(struct kv_req *rq, struct kv_write *wr, MDB_txn *txn,
                   struct kv_result *res);
void kv__view_of_write(struct kv_view *v, struct kv_req *rq, int64_t pre_rev);

/* --- txn (kv_txn.c) ------------------------------------------------------*/
int kv__txn_read(struct kv_view *v, const struct kv_txn_req *req,
                 struct kv_result *res, struct kv_txn_resp *resp);

/* --- environment (kv_env.c) ----------------------------------------------*/
int kv__read_meta(MDB_txn *txn, MDB_dbi meta, int64_t *rev, int64_t *compact,
                  uint64_t *index, uint64_t *term);
uint64_t kv__db_bytes(struct kv *kv);

#endif

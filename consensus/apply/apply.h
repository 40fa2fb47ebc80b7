/*
 * apply.h - executes etcd requests against the store.
 *
 * Does:     the one place where an etcd request (a protobuf-c message of
 *           proto/rpc.proto) becomes store calls and the store's answer
 *           becomes an etcd response. Writes arrive as committed Raft entries
 *           carrying a cairnpb.InternalRequest (built by apply_envelope);
 *           reads (Range, read-only Txn) are served on a store read handle.
 *           Responses are encoded here, straight from the store's results,
 *           into the exact bytes etcd would send.
 * Owns:     its struct and the nospace state; borrows the kv.
 * Threads:  apply_entries() runs on the store's single writer thread (the
 *           apply thread); the read functions run on any thread, each on its
 *           own read handle.
 * Borrowed: every pointer handed to a hook lives until the hook returns.
 * Errors:   a request that fails (bad key, compacted revision, unknown lease,
 *           NOSPACE, ...) is not an error of apply_entries: its result
 *           carries the code, and every member reaches the same verdict from
 *           the same log. apply_entries itself fails only when the store
 *           does (I/O, ERR_FAILED, -ENOMEM while committing): the node must
 *           then stop, because applying must never skip an entry.
 * Limits:   nested txn depth LIMIT_TXN_DEPTH; a response is built in memory
 *           (range answers bounded by LIMIT_RANGE_RESULT_BYTES in kv).
 * Not here: proposing, waiting and matching answers to callers (node),
 *           permission checks (auth, before proposing), lease timers (lease;
 *           told through hooks), watch fan-out (watch; told through the
 *           event hook).
 *
 * Deterministic: the result of an entry depends only on the store's state
 * and the entry, never on the member, the clock or the proposer. Lease IDs
 * and TTLs are therefore fixed before proposing (the API layer picks an ID
 * when the client leaves it 0) and checked again here.
 *
 * Envelope (cairnpb.InternalRequest, proto/cairn.proto): field 1 id
 * (varint), field 2 origin member (varint), then exactly one of fields
 * 4..12 holding the request's bytes (enum apply_op). The proposer writes
 * the envelope around the request's encoding; the envelope itself is never
 * rebuilt.
 */
#ifndef CAIRN_CONSENSUS_APPLY_H
#define CAIRN_CONSENSUS_APPLY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consensus/kv/kv.h"
#include "consensus/raft/raft.h"
#include "proto/cairn.pb-c.h"
#include "proto/rpc.pb-c.h"

struct buf;
struct auth;

/* Field numbers in cairnpb.InternalRequest. */
enum apply_op {
    APPLY_PUT = 4,
    APPLY_DELETE_RANGE = 5,
    APPLY_TXN = 6,
    APPLY_COMPACTION = 7,
    APPLY_LEASE_GRANT = 8,
    APPLY_LEASE_REVOKE = 9,
    APPLY_LEASE_CHECKPOINT = 10,
    APPLY_ALARM = 11,
    APPLY_MEMBER_ATTR = 12,
    APPLY_MEMBER_RECORD = 13,
    APPLY_LEASE_EXPIRE = 14, /* cairnpb.LeaseExpire: the leader's timer */
};

/* Lease bounds, as etcd: TTLs below the minimum are raised to it. */
#define APPLY_LEASE_TTL_MAX ((int64_t)9000000000)

struct apply_config {
    struct kv *kv;           /* borrowed until apply_close */
    uint64_t cluster_id;     /* response headers */
    uint64_t member_id;      /* response headers; origin of local requests */
    int64_t min_lease_ttl_s; /* etcd: ceil(1.5 * election timeout), >= 1 */
    /* The request level this member applies (0: APPLY_LEVEL). Tests only
     * set a lower one, to act as a binary that predates a level: below 2,
     * a MemberAttributes' apply_level is not stored, as such a binary would
     * not (node's CAIRN_TEST_APPLY_LEVEL). */
    uint32_t level;
    /* Auth store (consensus/auth): loaded from the store by apply_init,
     * changed by auth requests; borrowed. NULL: auth requests fail. */
    struct auth *auth;
};

/* One answered request, for the member that proposed it. */
struct apply_result {
    uint64_t id; /* the envelope's id */
    enum apply_op op;
    int err;             /* 0 or the request's error (ERR_*) */
    int64_t revision;    /* store revision after the request */
    const uint8_t *resp; /* encoded etcd response (with header) when err 0 */
    size_t resp_len;
};

/* What the applier tells the rest of the node, all on the apply thread. */
struct apply_hooks {
    void *ctx;
    /* Every store event of every request, in order (for watchers). */
    kv_event_cb on_event;
    /* Which events carry prev (kv_write_event_prev): all of them unless
     * events_prev_some, then those on keys starting with the prefix. */
    bool events_prev_some;
    const uint8_t *events_prev_prefix;
    size_t events_prev_prefix_len;
    /* The answer to a request this member proposed (origin == member_id). */
    void (*on_result)(void *ctx, const struct apply_result *res);
    /* Lease changes for the lease timers: ttl > 0 granted (or checkpointed
     * with remaining = ttl when checkpoint is true), ttl 0 revoked. */
    void (*on_lease)(void *ctx, int64_t id, int64_t ttl, bool checkpoint);
    /* A RAFT_ENTRY_CONF entry: the node records membership in the same
     * write handle (kv_aux_put). May be NULL. Returning an error fails the
     * whole batch (as an I/O error would). */
    int (*on_conf)(void *ctx, struct kv_write *wr, const struct raft_entry *e);
    /* Member attributes changed (after a member_attr request); may be NULL.
     * The attributes live in the aux CLUSTER table under the member's id
     * (8 bytes, big-endian) followed by "attr": u16 name length, name, u16
     * client URLs length, client URLs (comma separated). */
    void (*on_member)(void *ctx, uint64_t id);
    /* Called before the store commits a state that holds entries up to
     * index (a batch's end, or a savepoint inside it); may be NULL. It may
     * block until those entries are committed in Raft (the node applies a
     * lone member's entries while their WAL write is still syncing, and
     * holds the commit here). Non-zero aborts the batch with that code. */
    int (*commit_gate)(void *ctx, uint64_t index);
};

#define APPLY_ALARMS_MAX 64

/* Proposers remembered for duplicate detection (see apply_entries). More
 * than this many distinct origins: the one with the lowest last id is
 * forgotten, on every member alike. */
#define APPLY_ORIGINS_MAX 256

/* The highest request id applied from one proposer (member). */
struct apply_origin {
    uint64_t origin;
    uint64_t last_id;
    bool dirty; /* changed in the batch being applied */
};

/* One raised alarm (etcdserverpb.AlarmMember). */
struct apply_alarm {
    uint64_t member_id;
    int type; /* etcdserverpb.AlarmType: 1 NOSPACE, 2 CORRUPT */
};

struct apply {
    struct apply_config cfg;
    /* Raised alarms, mirrored from the store's alarm table. */
    struct apply_alarm alarms[APPLY_ALARMS_MAX];
    size_t alarms_count;
    bool nospace; /* a NOSPACE alarm is raised: writes are refused */
    bool corrupt; /* a CORRUPT alarm is raised: KV and lease writes are
                   * refused, "corrupt cluster" (etcd's applierV3Corrupt) */
    atomic_bool nospace_seen; /* nospace, for other threads */
    /* Per proposer, the highest id applied; mirrored in the store's aux
     * APPLY table, written in the same transaction as the entries. */
    struct apply_origin origins[APPLY_ORIGINS_MAX];
    size_t origins_count;
    /* Audit records written since start (read from any thread). */
    atomic_uint_least64_t audit_records;
    /* The audit chain's SHA-256 (an EVP_MD and an EVP_MD_CTX, made at the
     * first record, freed by apply_close): OpenSSL 3's one-shot SHA256()
     * looks the algorithm up and makes a context for every record. */
    void *sha_md;
    void *sha_ctx;
    /* apply_entries' hooks and the entry it is at (for a savepoint's
     * commit_gate); NULL between calls. */
    const struct apply_hooks *batch_hooks;
    uint64_t batch_index;
};

/* Set up; reads the alarm table to restore the nospace state. */
int apply_init(struct apply *a, const struct apply_config *cfg);
void apply_close(struct apply *a);

/* The highest request id applied from origin (0 if none): a restarting
 * proposer starts its ids above it. */
uint64_t apply_last_id(const struct apply *a, uint64_t origin);

/* Write the envelope for the etcd request req[0..len) (already validated by
 * the caller) into out (appended). Errors: ERR_LIMIT / -ENOMEM from out. */
int apply_envelope(uint64_t id, uint64_t origin, enum apply_op op,
                   const uint8_t *req, size_t len, struct buf *out);

/* The envelope's bytes before the request's own: id, origin, the request's
 * tag and length len, into out (at least APPLY_ENVELOPE_HEAD_MAX bytes);
 * returns how many. The request's len bytes follow them, then any extra
 * fields (apply_envelope_extra). */
#define APPLY_ENVELOPE_HEAD_MAX (1 + 10 + 1 + 10 + 2 + 10)
size_t apply_envelope_head(uint64_t id, uint64_t origin, enum apply_op op,
                           size_t len, uint8_t *out);

/* As apply_envelope, with already-encoded Cairn-only fields extra[0..
 * extra_len) after the request (apply_audit_field's output); extra may be
 * NULL when extra_len is 0. */
int apply_envelope_extra(uint64_t id, uint64_t origin, enum apply_op op,
                         const uint8_t *req, size_t len, const uint8_t *extra,
                         size_t extra_len, struct buf *out);

/* ---------------------------------------------------------- audit log
 * Registry and config writes carry an audit record body
 * (cairnpb.AuditRecord, InternalRequest field 100). When the request takes
 * effect (no error; a Txn whose compares held; a DeleteRange that deleted)
 * the applier writes, in the same store transaction and at the request's
 * revision (a request that made none, a LeaseGrant, gets a revision of its
 * own):
 *
 *   /audit/<seq as %016x> -> one line of JSON, fields in this order:
 *     {"seq":N,"revision":R,"time":"<RFC 3339 UTC, ms>","principal":"..",
 *      "source":"..","action":"..","namespace":"..","target":"..",
 *      "version":V,"message":"..","prev_hash":"<64 hex>","hash":"<64 hex>"}
 *   hash = SHA-256 of the same bytes without the ,"hash":".." member.
 *   prev_hash of seq 1 is 64 zeros.
 *   aux AUDIT "head" -> seq (8, big-endian) | oldest kept seq (8) | hash (32)
 *
 * The oldest records past the proposer's keep (0: APPLY_AUDIT_KEEP_DEF) are
 * deleted in the same request, two at most per record. A record body that
 * fails apply__audit_check refuses the whole request (ERR_BAD_REQUEST). */
#define APPLY_AUDIT_PREFIX      "/audit/"
#define APPLY_AUDIT_PREFIX_END  "/audit0"
#define APPLY_AUDIT_KEY_MAX     32
#define APPLY_AUDIT_HASH_BYTES  32
#define APPLY_AUDIT_NAME_MAX    256
#define APPLY_AUDIT_TARGET_MAX  1024
#define APPLY_AUDIT_MESSAGE_MAX 4096
#define APPLY_AUDIT_KEEP_DEF    100000
/* A bound on the store the log may take: 10M records of < 8 KiB. */
#define APPLY_AUDIT_KEEP_MAX    10000000
/* 9999-12-31T23:59:59.999Z */
#define APPLY_AUDIT_TIME_MS_MAX ((int64_t)253402300799999)

/* The Cairn-only envelope field for rec (tag 100, length, message) appended
 * to out. Errors: ERR_BAD_REQUEST (apply__audit_check), -ENOMEM. */
int apply_audit_field(const Cairnpb__AuditRecord *rec, struct buf *out);

/* ------------------------------------------------------ lease first
 * A Put, or a Txn whose failure branch only reads, may carry a lease to
 * grant first (cairnpb.LeaseGrantRequest, InternalRequest field 101): a
 * registration and its own lease in one Raft request. The applier grants
 * the lease (as LeaseGrant: the ID fixed by the proposer, the TTL raised to
 * the minimum), runs the request, and revokes the lease again in the same
 * request when the write did not take effect (an error, or a Txn whose
 * compares failed), so a refused write leaves no lease behind. The answer
 * is the request's own; the revision is the write's (a lease alone makes
 * none). A lease_first beside anything else, or a failure branch that
 * writes, refuses the whole request (ERR_BAD_REQUEST), as does an ID <= 0;
 * an ID in use answers ERR_LEASE_EXISTS and writes nothing. */

/* Request levels (MemberAttributes.apply_level). A member publishes the
 * newest it applies; a proposer uses a level's requests only once every
 * member has published that level (node_apply_level), so no member applies
 * an entry it would read differently from the others (an older binary
 * ignores an envelope field it does not know, and would refuse the Put a
 * lease_first makes possible: a store that differs).
 *   1  everything before levels were published
 *   2  lease_first (field 101) */
#define APPLY_LEVEL_LEASE_FIRST 2
#define APPLY_LEVEL             2

/* May this Txn carry a lease_first: does its failure branch only read? */
bool apply_lease_first_txn_ok(const Etcdserverpb__TxnRequest *t);

/* The envelope field for a lease id/ttl to grant first (tag 101, length,
 * LeaseGrantRequest) appended to out. Errors: -ENOMEM. */
int apply_lease_first_field(int64_t id, int64_t ttl, struct buf *out);

/* The key of record seq into out (cap >= APPLY_AUDIT_KEY_MAX); its length. */
size_t apply_audit_key(uint64_t seq, char *out, size_t cap);

/* Records written by this member's applier since it started. */
uint64_t apply_audit_records(const struct apply *a);

/* The chain's state as apply_audit_verify found it. */
struct apply_audit_verdict {
    bool ok;
    uint64_t records;   /* records checked and found whole */
    uint64_t first_seq; /* the oldest kept (its prev_hash is the anchor) */
    uint64_t head_seq;  /* the head's: the last record written */
    char head_hash[2 * APPLY_AUDIT_HASH_BYTES + 1];
    uint64_t broken_seq; /* when !ok: the first record that does not fit */
    const char *reason;  /* when !ok: a static sentence */
};

/* Check the whole chain on a read handle (see apply_audit.c). A broken
 * chain is a verdict, not an error; errors are the store's. Reads every
 * kept record: O(records) time, O(1) memory per page of 512. */
int apply_audit_verify(struct kv_read *rd, struct apply_audit_verdict *out);

/* Apply committed entries in one store write handle and commit it with the
 * last entry's index and term. Entries of type EMPTY only advance the
 * applied index; CONF goes to hooks->on_conf; NORMAL entries are decoded and
 * executed, and the proposer's results reported through hooks->on_result
 * (after the batch is committed, so an answer never runs ahead of
 * durability). raft_term goes into response headers. Entries at or below
 * the store's applied index are skipped (replay after restart).
 *
 * Exactly once: a NORMAL entry whose id is not above the highest id already
 * applied from the same origin is not executed; its proposer (if waiting)
 * gets ERR_PROPOSAL_DROPPED. A proposer's ids increase (node takes them from
 * the clock and apply_last_id), and its proposals reach the log in id order
 * (one ordered connection to the leader, never resent), so only a repeated
 * delivery of the same proposal is refused; a proposal overtaken by a later
 * one of the same proposer is refused too, which is safe: it was never
 * applied and never will be. The verdict depends only on the log, so every
 * member reaches it; the state survives restarts and snapshots in the
 * store. Id 0 is never deduplicated.
 *
 * ERR_PROPOSAL_DROPPED means "no effect" only to a proposer that applied
 * every entry before it: the first copy of a repeat answers it first. A
 * proposer that installs a snapshot skips the entries it covers and their
 * answers, so after an install it must answer its waiters with ids at or
 * below apply_last_id(own origin) as of unknown outcome (ran or was
 * overtaken) before applying on; the node does. */
int apply_entries(struct apply *a, const struct raft_entry *ents, size_t n,
                  uint64_t raft_term, const struct apply_hooks *hooks);

/* May e be applied before Raft commits it, its effects held in the store's
 * write txn until commit_gate lets the commit go? True for empty entries
 * and for requests whose every effect is in that txn or rides in the
 * results and events handed out after the commit (put, delete, txn,
 * lease grant, revoke, checkpoint, expiry); false for membership, auth,
 * alarms, compaction and anything that does not decode. */
bool apply_entry_early(const struct raft_entry *e);

/* Serve a Range on a read handle: the encoded RangeResponse (header with
 * the read handle's revision) is appended to out. Errors: the request's
 * (ERR_COMPACTED, ERR_FUTURE_REV, ERR_KEY_NOT_PROVIDED, ERR_LIMIT, ...). */
int apply_range(struct apply *a, struct kv_read *rd,
                const Etcdserverpb__RangeRequest *req, uint64_t raft_term,
                struct buf *out);

/* Serve a read-only Txn on a read handle (ERR_INVALID if it writes). */
int apply_txn_read(struct apply *a, struct kv_read *rd,
                   const Etcdserverpb__TxnRequest *req, uint64_t raft_term,
                   struct buf *out);

/* True if a TxnRequest (decoded) writes anything, nested txns included. */
bool apply_txn_writes(const Etcdserverpb__TxnRequest *req);

/* Copy of the raised alarms (at most cap); returns how many there are. */
size_t apply_alarms(const struct apply *a, struct apply_alarm *out, size_t cap);

/* Read the PutRequest p[0..len) into *put, with key and value pointing
 * into p, when p is exactly what protobuf-c packs for that request (fields
 * in order, none at its default value, shortest varints); then p can be
 * proposed as it is. false (and *put meaningless) for any other bytes,
 * valid or not: decode those with protobuf-c. Reads p only. */
bool apply_put_read_packed(const uint8_t *p, size_t len,
                           Etcdserverpb__PutRequest *put);

/* Check, before decoding untrusted bytes with protobuf-c (whose decoder
 * recurses without a bound), that a TxnRequest nests at most max_depth
 * txns. Walks the wire format only. Returns 0, ERR_LIMIT (too deep) or
 * ERR_BAD_REQUEST (malformed). */
int apply_txn_depth_check(const uint8_t *p, size_t len, int max_depth);

/* Encode one KeyValue message (mvccpb.KeyValue) into out; used by watch
 * responses too. */
int apply_encode_kv(const struct kv_kv *kv, struct buf *out);
size_t apply_kv_size(const struct kv_kv *kv);

/* The same KeyValue as a protobuf-c message whose key and value borrow
 * kv's bytes (for code that builds whole responses with protobuf-c). */
void apply_kv_to_pb(const struct kv_kv *kv, Mvccpb__KeyValue *out);

/* A WatchResponse that carries events, encoded from parts: the head
 * (header, watch_id, fragment) then one record per event (field 11, an
 * mvccpb.Event with its prev_kv when e->has_prev). Concatenated, they are
 * byte for byte what protobuf-c packs for the same message, so one event's
 * record can be encoded once and sent to every watcher it matches. */
#define APPLY_WATCH_HEAD_MAX 64
size_t apply_watch_head(uint8_t *out, uint64_t cluster_id, uint64_t member_id,
                        int64_t revision, uint64_t raft_term, int64_t watch_id,
                        bool fragment);
size_t apply_watch_event_size(const struct kv_event *e);
int apply_watch_event_encode(const struct kv_event *e, struct buf *out);

#endif

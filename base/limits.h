/*
 * limits.h - every limit in Cairn, in one table (after SQLite's sqliteLimit.h).
 *
 * Does:     names each limit with its default, its compile-time hard maximum
 *           (and why), and the config key that sets it.
 * Owns:     nothing: the table is constant. A running daemon copies the
 *           defaults into its own struct limits and applies its flags there.
 * Threads:  read-only; safe anywhere.
 * Errors:   limits_set() returns ERR_LIMIT for a value above the hard maximum
 *           and ERR_INVALID for an unknown key.
 * Limits:   this file is the limits.
 * Not here: the checks themselves live in the module that owns each limit;
 *           each check returns that module's error (ERR_KEY_TOO_LARGE, ...).
 *
 * Adding a limit: one row here, a check and an error in its module, a metric,
 * and a test at the bound and one past it (STYLE.md section 9).
 */
#ifndef CAIRN_BASE_LIMITS_H
#define CAIRN_BASE_LIMITS_H

#include <stdint.h>

/* X(NAME, default, hard_max, "config-key", "why the hard max") */
#define LIMITS_TABLE(X)                                                        \
    /* store */                                                                \
    X(KEY_BYTES, 511, 511, "max-key-bytes",                                    \
      "LMDB's compiled maximum key size; keys index B-trees directly")         \
    X(VALUE_BYTES, 1572864, 67108864, "max-value-bytes",                       \
      "a value must fit in one request and one Raft entry")                    \
    X(TXN_OPS, 128, 65536, "max-txn-ops", "etcd's default; bounds apply work") \
    X(TXN_DEPTH, 64, 128, "max-txn-depth",                                     \
      "nested txns recurse; bound the depth of recursion")                     \
    X(RANGE_RESULT_BYTES, 268435456, 1073741824, "max-range-result-bytes",     \
      "a range answer is built in memory before it is sent")                   \
    X(QUOTA_BACKEND_BYTES, 2147483648, 1099511627776, "quota-backend-bytes",   \
      "etcd's default 2 GiB; LMDB map size is set from it")                    \
    /* requests and network */                                                 \
    X(REQUEST_BYTES, 1572864, 67108864, "max-request-bytes",                   \
      "etcd's default 1.5 MiB; a request is held whole in memory")             \
    X(CONNECTIONS, 10000, 1000000, "max-connections",                          \
      "each connection holds buffers; bound total memory")                     \
    X(STREAMS_PER_CONN, 1000, 1000000, "max-concurrent-streams",               \
      "HTTP/2 streams per connection")                                         \
    X(HEADER_BYTES, 16384, 1048576, "max-header-bytes",                        \
      "HTTP header list per request")                                          \
    X(CONN_OUT_BYTES, 16777216, 1073741824, "max-conn-out-bytes",              \
      "pending outbound bytes per connection before reads stop")               \
    X(WATCHERS_PER_CONN, 100000, 1000000, "max-watchers-per-conn",             \
      "watchers multiplexed on one stream or socket")                          \
    X(WATCHERS, 1000000, 10000000, "max-watchers", "watchers in total")        \
    X(WATCH_EVENTS_QUEUED, 1024, 1048576, "max-watch-events-queued",           \
      "events buffered per watcher before it catches up from the store")       \
    X(LEASES, 1000000, 100000000, "max-leases", "leases alive at once")        \
    /* raft */                                                                 \
    X(RAFT_ENTRY_BYTES, 2097152, 67108864, "max-raft-entry-bytes",             \
      "largest request plus its envelope")                                     \
    X(RAFT_MSG_BYTES, 4194304, 134217728, "max-raft-msg-bytes",                \
      "one append message; must hold the largest entry")                       \
    X(RAFT_INFLIGHT_MSGS, 256, 65536, "max-inflight-msgs",                     \
      "append messages in flight per follower")                                \
    X(RAFT_UNCOMMITTED_BYTES, 67108864, 1073741824, "max-uncommitted-bytes",   \
      "proposals not yet committed")                                           \
    X(RAFT_PENDING_PROPOSALS, 100000, 10000000, "max-pending-proposals",       \
      "requests waiting for their entry to apply")                             \
    X(SNAPSHOT_CHUNK_BYTES, 1048576, 16777216, "snapshot-chunk-bytes",         \
      "one chunk of a snapshot stream")                                        \
    X(SNAPSHOT_COUNT, 100000, 100000000, "snapshot-count",                     \
      "applied entries kept before a Raft snapshot")

enum limit_id {
#define X(name, def, max, key, why) LIMIT_##name,
    LIMITS_TABLE(X)
#undef X
        LIMIT__COUNT
};

struct limits {
    uint64_t v[LIMIT__COUNT];
};

/* Fill with the defaults. */
void limits_init(struct limits *l);

/* Set by config key ("max-txn-ops"); ERR_INVALID or ERR_LIMIT. */
int limits_set(struct limits *l, const char *key, uint64_t value);

uint64_t limits_default(enum limit_id id);
uint64_t limits_hard_max(enum limit_id id);
const char *limits_key(enum limit_id id);

#endif

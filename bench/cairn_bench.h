/*
 * cairn_bench.h - cairn-bench: a load generator for etcd's v3 gRPC API.
 *
 * Does:     drives an etcd-compatible server (etcd itself or cairnd) over
 *           cleartext HTTP/2 with many connections x many concurrent
 *           streams from one libuv loop thread, and measures throughput and
 *           latency with a log-bucketed histogram. Parts: the histogram
 *           (bench_hist), a minimal gRPC client (bench_net/bench_conn/
 *           bench_call), scanners for the few responses it reads, and the
 *           workload engine (bench_run).
 * Owns:     struct bench_net owns its sockets and nghttp2 sessions; a
 *           struct bench_call owns its send and receive buffers; the caller
 *           allocates every struct and the engine's result histograms.
 * Threads:  one thread: the loop given to bench_net_open and every callback.
 * Borrowed: a message passed to a bench_call_msg_cb is valid until the
 *           callback returns; status text until the next call on the call.
 * Errors:   0 or a negative code (base/err.h): -ENOMEM, ERR_LIMIT (a
 *           buffer cap), ERR_STOPPED (the connection is gone), ERR_INVALID
 *           (bad configuration), -errno from libuv. Request outcomes are not
 *           errors of these functions: they arrive as gRPC status codes
 *           (enum bench_status) in the done callback.
 * Limits:   BENCH_CONNS_MAX connections, BENCH_CLIENTS_MAX concurrent
 *           requests, BENCH_KEY_MAX key bytes, BENCH_VAL_MAX value bytes,
 *           BENCH_CALL_IN_MAX bytes of one response message, BENCH_OUT_MAX
 *           pending outbound bytes per connection.
 * Not here: the server side of gRPC (registry/grpc), the comparison with
 *           etcd (bench/compare.sh), the store microbenchmark (kv-bench).
 *
 * Wire: gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md, RFC 9113). Each
 * message is framed as
 *     offset size  field
 *     0      1     compressed flag (always 0 here)
 *     1      4     length N, big endian
 *     5      N     serialized protobuf
 * and a call ends with trailers carrying grpc-status (and grpc-message).
 */
#ifndef CAIRN_BENCH_CAIRN_BENCH_H
#define CAIRN_BENCH_CAIRN_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "base/buf.h"
#include "base/prng.h"
#include "sdk/grpc_int.h"

#define BENCH_CONNS_MAX     1024
#define BENCH_CLIENTS_MAX   65536
#define BENCH_ENDPOINTS_MAX 8
#define BENCH_KEY_MAX       256
#define BENCH_VAL_MAX       (1u << 20)
#define BENCH_TXN_OPS_MAX   128
#define BENCH_WATCHERS_MAX  1000000
#define BENCH_CALL_IN_MAX   CAIRN__CALL_IN_MAX
#define BENCH_OUT_MAX       CAIRN__OUT_MAX

/* ------------------------------------------------------------ histogram */

/*
 * Log-linear buckets, as in HdrHistogram: values below 2^SUB_BITS have one
 * bucket each (exact); above that every power of two [2^k, 2^(k+1)) is cut
 * into 2^SUB_BITS equal buckets of width 2^(k-SUB_BITS). A bucket's width is
 * at most 2^-SUB_BITS of its low bound, and percentiles report the bucket's
 * midpoint, so a reported value is within 2^-(SUB_BITS+1) (0.39%) of a
 * value actually recorded at that rank. Values above 2^(TOP_BIT+1)-1 (2.4
 * hours in ns) share the last bucket; min, max, count and sum are exact.
 */
#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB      (1u << BENCH_HIST_SUB_BITS)
#define BENCH_HIST_TOP_BIT  42
#define BENCH_HIST_BUCKETS                                                     \
    ((BENCH_HIST_TOP_BIT - BENCH_HIST_SUB_BITS + 2) * BENCH_HIST_SUB)

struct bench_hist {
    uint64_t count;
    uint64_t sum; /* exact; saturates at UINT64_MAX */
    uint64_t min; /* UINT64_MAX when empty */
    uint64_t max;
    uint64_t bucket[BENCH_HIST_BUCKETS];
};

void bench_hist_reset(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t v);
/* Adds src's counts to dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* Nearest-rank percentile (pct in [0, 100]): the value of rank
 * ceil(pct/100 * count), reported as its bucket's midpoint clamped to
 * [min, max]; 0 when empty. pct 0 gives min, pct 100 gives max. */
uint64_t bench_hist_percentile(const struct bench_hist *h, double pct);
double bench_hist_mean(const struct bench_hist *h);
/* Bucket layout, for tests: index of v, and each bucket's [low, low+width). */
size_t bench_hist_index(uint64_t v);
uint64_t bench_hist_bucket_low(size_t idx);
uint64_t bench_hist_bucket_width(size_t idx);

/* Outcome of a call (sdk/grpc_int.h's codes under bench's names). */
enum bench_status {
    BENCH_ST_OK = CAIRN__ST_OK,
    BENCH_ST_UNIMPLEMENTED = CAIRN__ST_UNIMPLEMENTED,
    BENCH_ST_GRPC_MAX = CAIRN__ST_GRPC_MAX,
    BENCH_ST_TRANSPORT = CAIRN__ST_TRANSPORT,
    BENCH_ST_BAD_RESPONSE = CAIRN__ST_BAD_RESPONSE,
    BENCH_ST__COUNT = CAIRN__ST__COUNT,
};

const char *bench_status_name(int status);

/* ---------------------------------------------------- response scanners */

struct bench_watch_resp {
    int64_t watch_id;
    bool created;
    bool canceled;
    uint32_t events;
};
/* Called for each event of a WatchResponse with the event's kv value. */
typedef void (*bench_event_cb)(void *ctx, const uint8_t *value, size_t len);
/* Scans a serialized etcdserverpb.WatchResponse without allocating.
 * ERR_BAD_REQUEST when malformed. */
int bench_watch_resp_scan(const uint8_t *p, size_t len,
                          struct bench_watch_resp *out, bench_event_cb cb,
                          void *ctx);
/* The TTL of a serialized LeaseKeepAliveResponse (0 when the lease is
 * gone). ERR_BAD_REQUEST when malformed. */
int bench_keepalive_resp_ttl(const uint8_t *p, size_t len, int64_t *ttl);
/* The ID of a serialized LeaseGrantResponse. */
int bench_grant_resp_id(const uint8_t *p, size_t len, int64_t *id);

/* Writes key number idx as prefix + zero-padded decimal, at least
 * key_bytes long and wide enough for digits digits; returns its length
 * (no NUL), or 0 when it would not fit in out_max. */
size_t bench_key_format(char *out, size_t out_max, const char *prefix,
                        size_t key_bytes, unsigned digits, uint64_t idx);
/* Decimal digits needed for numbers below n (at least 1). */
unsigned bench_digits_for(uint64_t n);

/* A value that carries the time it was sent, for put-to-receive latency:
 * bytes 0-7 the send time (ns, CLOCK_MONOTONIC, little endian), bytes
 * 8-15 the same xor BENCH_STAMP_XOR, the rest filler. */
#define BENCH_STAMP_BYTES 16
#define BENCH_STAMP_XOR   0x5ca1ab1ec0ffee00ull
void bench_stamp_put(uint8_t *value, uint64_t t_ns);
/* True (and *t_ns set) when value starts with a valid stamp. */
bool bench_stamp_get(const uint8_t *value, size_t len, uint64_t *t_ns);

/* ------------------------------------------------------------- workload */

enum bench_workload {
    BENCH_WL_PUT,
    BENCH_WL_RANGE,
    BENCH_WL_TXN_PUT,
    BENCH_WL_DELETE,
    BENCH_WL_WATCH,
    BENCH_WL_WATCH_LATENCY,
    BENCH_WL_LEASE_KEEPALIVE,
    BENCH_WL_MIXED,
    BENCH_WL_READY,
    BENCH_WL__COUNT,
};

/* What one request does; each has its own latency histogram. */
enum bench_op {
    BENCH_OP_PUT,
    BENCH_OP_RANGE,
    BENCH_OP_TXN,
    BENCH_OP_DELETE,
    BENCH_OP_KEEPALIVE,
    BENCH_OP_GRANT,
    BENCH_OP__COUNT,
};

const char *bench_workload_name(enum bench_workload wl);
int bench_workload_parse(const char *s, enum bench_workload *out);
const char *bench_op_name(enum bench_op op);

struct bench_cfg {
    enum bench_workload workload;
    struct sockaddr_in addrs[BENCH_ENDPOINTS_MAX];
    size_t addrs_count;
    uint32_t conns;
    uint32_t clients;
    uint64_t total;     /* requests in the measured phase (0: duration) */
    double duration_s;  /* when total is 0 */
    double rate;        /* requests/s, open loop; 0 = closed loop */
    uint32_t key_bytes; /* key length (at least prefix + digits) */
    uint32_t val_bytes;
    uint64_t key_space;     /* keys are numbered [0, key_space) */
    bool seq_keys;          /* else uniformly random */
    bool serializable;      /* ranges (range, mixed) */
    uint32_t prefix_digits; /* >0: a range covers the 10^d keys sharing a
                              prefix, else a point get */
    uint32_t txn_ops;       /* puts per txn (txn-put) */
    double read_ratio;      /* mixed: share of ranges, the rest puts */
    bool preload;           /* put every key before the measured phase */
    uint32_t watchers;      /* watch: watchers in total */
    uint32_t watch_keys;    /* ... over this many keys, or */
    bool watch_prefix;      /* ... all on the key prefix */
    uint32_t watch_streams; /* watch streams carrying them */
    int64_t lease_ttl_s;
    double timeout_s; /* bound on each setup phase and on draining */
    uint64_t seed;
    char key_prefix[32];
};

/* Defaults for workload wl (what cairn-bench uses before its flags). */
void bench_cfg_defaults(struct bench_cfg *cfg, enum bench_workload wl);
/* ERR_INVALID with a message in err when the combination cannot run. */
int bench_cfg_check(const struct bench_cfg *cfg, char *err, size_t err_len);

struct bench_result {
    uint64_t requested;
    uint64_t ok;
    uint64_t status_count[BENCH_ST__COUNT];
    uint64_t not_sent; /* requests never sent (connections lost, timeout) */
    char first_error[320];
    double elapsed_s;
    bool timed_out;
    bool unimplemented; /* the server does not have the method */
    struct bench_hist all;
    struct bench_hist op[BENCH_OP__COUNT];
    /* watch workloads */
    uint64_t watchers_created;
    uint64_t events;
    uint64_t events_expected;
    double events_elapsed_s; /* first put sent to last event received */
    struct bench_hist event_lat;
};

/* Runs cfg's workload on a fresh loop and fills res (allocated by the
 * caller; bench_run resets it). Returns 0 when the run completed (request
 * failures are counted in res, not returned), or a negative code when it
 * could not run: -ECONNREFUSED and other -errno when no connection came
 * up, ERR_TIMEOUT when a setup phase did not finish within timeout_s. */
int bench_run(const struct bench_cfg *cfg, struct bench_result *res);

#endif

/*
 * cairn.h - libcairn, the C client library of Cairn and of any etcd v3
 * server (etcd 3.4+, cairnd).
 *
 * Does:     etcd's v3 API over gRPC (HTTP/2, cleartext or TLS): KV range, put,
 *           delete and txn with compares; leases (grant, revoke, time to
 *           live, list, one keep-alive); watch with automatic resume from
 *           the last revision after a reconnect; members (list, add,
 *           remove, update, promote), status, compaction, hashkv, alarms,
 *           defragment, move-leader; user/password auth and the users and
 *           roles admin. One client holds one connection at a time
 *           to one of several endpoints and fails over to the next.
 * Owns:     a struct cairn_client owns its connection, its private event
 *           loop, a copy of every option string and its auth token. Each
 *           result struct (cairn_range_resp, ...) owns the memory its
 *           pointers point into, until its _free call.
 * Threads:  a client may be shared by threads: calls on one client are
 *           serialized (one runs at a time, the others wait on its mutex).
 *           Calls on different clients never wait for each other. The
 *           blocking face runs no callbacks. Results may be read and freed
 *           on any thread.
 * Borrowed: request structs and their byte strings are only read during
 *           the call (copied as needed). cairn_client_errmsg() is valid
 *           until the next call on the client.
 * Errors:   every call returns 0 or a negative enum cairn_err; cairn_strerror
 *           names it. Bad arguments give CAIRN_E_INVALID, a malformed or
 *           truncated server answer gives CAIRN_E_BAD_RESPONSE; nothing
 *           aborts on input from the caller or the network. The server's
 *           own text (e.g. "etcdserver: requested lease not found") and
 *           gRPC code are kept for cairn_client_errmsg/_grpc_code.
 * Limits:   CAIRN_ENDPOINTS_MAX endpoints; responses up to
 *           cairn_options.recv_bytes_max (default 64 MiB); a watch queues
 *           at most CAIRN_WATCH_QUEUE_MAX undelivered responses, after which
 *           it drops its stream and resumes from the last queued revision
 *           when read again (nothing lost, nothing repeated).
 *           Cairn's registry and config center over HTTP/1.1 and WebSocket
 *           on the same endpoints (/api/v1: see "Registry" and "Config"
 *           below): registrations kept alive by a background thread and
 *           re-registered after an expiry, discovery caches following the
 *           pushed stream, pickers, config get/subscribe/ack with a local
 *           file cache.
 *           Leases kept alive by a background thread (cairn_keeper, for
 *           lock and election).
 *           The asynchronous face on a caller's uv_loop_t ("the async
 *           face" at the end: the blocking calls run on its threads, the
 *           callbacks on the loop's thread).
 *           With a user, the /api/v1 calls and streams carry a token
 *           from the gateway's /v3/auth/authenticate, renewed when the
 *           server says it expired and at every stream reconnect.
 * TLS:      https:// endpoints (and bare ones when a TLS option is set,
 *           see cairn_options). A server certificate that does not verify,
 *           or a handshake the server refuses (no client certificate), is
 *           a connection failure: CAIRN_E_UNAVAILABLE once no endpoint
 *           could be reached, with cairn_client_errmsg naming the reason
 *           ("x509: certificate verify failed: unable to get local issuer
 *           certificate", "tls: tlsv13 alert certificate required").
 *           A TLS file that is missing, unreadable, not PEM, or a key that
 *           does not match its certificate fails cairn_client_new; the
 *           reason (file and OpenSSL's text) comes from
 *           cairn_client_new_ex's buffer, or cairn_client_new_errmsg after
 *           a plain cairn_client_new, as there is no client to ask.
 * Not here: the gRPC transport is private
 * (sdk/grpc_int.h), so is the HTTP/1.1 one (sdk/http_int.h).
 *
 * Addresses: an endpoint named by a host name with both an IPv4 and an
 * IPv6 address is dialled on its IPv4 address first and, when that
 * connect is refused, on its IPv6 one (then it counts as unreachable).
 *
 * Failover and retries: a call that could not reach an endpoint (connect
 * refused, connection lost before the request was sent) goes to the next
 * endpoint, round robin, with exponential backoff (50 ms doubling to 1 s,
 * with jitter) until its deadline. A read (range, time to live, lists,
 * status) is also retried when the connection broke while it was in flight
 * or the server answered Unavailable; a write is not, because it may have
 * been applied (CAIRN_E_UNAVAILABLE; the caller decides).
 *
 * ABI: the client and every other object are opaque. struct
 * cairn_options is versioned by its first field, struct_size, which
 * cairn_options_init sets to the sizeof the caller was compiled with:
 * the library reads only the fields inside struct_size and takes the
 * default for the others, so a program built against an older cairn.h
 * keeps working with a newer libcairn.so.1 (and one built against a newer
 * header works with an older library as long as it leaves the fields
 * that library does not know at zero). New fields are only appended,
 * each starting past the previous sizeof (never in its tail padding),
 * and zero is always a new field's default. A struct_size of 0 (options
 * not set up with cairn_options_init), one below CAIRN_OPTIONS_SIZE_MIN or
 * above CAIRN_OPTIONS_SIZE_MAX, or one that is not a multiple of 8 is
 * refused with CAIRN_E_INVALID, and cairn_client_new_ex says why. Result
 * structs are written by the library: their layout changes only with the
 * soname. The soname is libcairn.so.1 (.so.0 had no struct_size).
 */
#ifndef CAIRN_H
#define CAIRN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define CAIRN_EXPORT __attribute__((visibility("default")))
#else
#define CAIRN_EXPORT
#endif

#define CAIRN_ENDPOINTS_MAX   16
#define CAIRN_WATCH_QUEUE_MAX 1024

/* X(name, value, text). 0 is success. */
#define CAIRN_ERR_TABLE(X)                                                     \
    X(INVALID, -1, "invalid argument")                                         \
    X(NOMEM, -2, "out of memory")                                              \
    X(TIMEOUT, -3, "context deadline exceeded")                                \
    X(UNAVAILABLE, -4, "no endpoint could be reached")                         \
    X(BAD_RESPONSE, -5, "malformed answer from the server")                    \
    X(SERVER, -6, "the server answered with an error")                         \
    X(COMPACTED, -7, "etcdserver: mvcc: required revision has been compacted") \
    X(FUTURE_REV, -8,                                                          \
      "etcdserver: mvcc: required revision is a future "                       \
      "revision")                                                              \
    X(LEASE_NOT_FOUND, -9, "etcdserver: requested lease not found")            \
    X(KEY_NOT_FOUND, -10, "etcdserver: key not found")                         \
    X(PERMISSION_DENIED, -11, "etcdserver: permission denied")                 \
    X(AUTH_FAILED, -12,                                                        \
      "etcdserver: authentication failed, invalid user ID "                    \
      "or password")                                                           \
    X(INVALID_TOKEN, -13, "etcdserver: invalid auth token")                    \
    X(NO_LEADER, -14, "etcdserver: no leader")                                 \
    X(CANCELED, -15, "watch canceled")                                         \
    X(CLOSED, -16, "the client or watch is closed")                            \
    X(TOO_BIG, -17, "message larger than the configured limit")                \
    X(NOT_FOUND, -18, "not found")                                             \
    X(CONFLICT, -19, "conflict: the revision or version differs")              \
    X(SESSION_EXPIRED, -20, "the session expired: register again")             \
    X(IO, -21, "could not write the output")

enum cairn_err {
    CAIRN_OK = 0,
#define CAIRN__X(name, value, text) CAIRN_E_##name = (value),
    CAIRN_ERR_TABLE(CAIRN__X)
#undef CAIRN__X
};

/* The text of an enum cairn_err (static; "unknown error" for others). */
CAIRN_EXPORT const char *cairn_strerror(int err);

/* ------------------------------------------------------------ client */

struct cairn_client;

struct cairn_options {
    /* sizeof(struct cairn_options) as the caller's cairn.h has it: set by
     * cairn_options_init, never by hand (see "ABI" at the top). */
    size_t struct_size;
    /* "host:port", "http://host:port" or "https://host:port"; an IPv6
     * address in brackets ("[::1]:2379"), a name dialed on its IPv4
     * address when it has one. https://
     * is always TLS, http:// never; a bare host:port is TLS when any TLS
     * field below is set (as etcd's Go client with a TLS config). Copied
     * by cairn_client_new. */
    const char *const *endpoints;
    size_t endpoints_count;
    const char *user;        /* NULL: no auth */
    const char *password;    /* with user */
    int64_t dial_timeout_ms; /* per connection attempt; default 2000 */
    int64_t timeout_ms;      /* default deadline of a call; default 5000 */
    size_t recv_bytes_max;   /* largest response message; default 64 MiB */
    uint64_t seed;           /* backoff jitter; 0 picks one */
    /* TLS (OpenSSL 3), for gRPC (ALPN h2) and the /api/v1 calls and
     * WebSockets alike. Paths are read by cairn_client_new. */
    const char *ca_file;       /* PEM CAs the server must chain to; NULL:
                                * the system store */
    const char *cert_file;     /* PEM client certificate (mutual TLS); */
    const char *key_file;      /* with its key: both or neither */
    const char *server_name;   /* checked (and sent as SNI) instead of the
                                * endpoint's host; NULL: the host */
    bool insecure_skip_verify; /* no check of the server's certificate */
    bool tls;                  /* TLS for bare host:port endpoints even
                                * without the files above (etcdctl's
                                * --insecure-transport=false) */
};

/* The smallest struct_size accepted: the layout before the TLS fields
 * (through seed), the oldest one a caller may have been built with. */
#define CAIRN_OPTIONS_SIZE_MIN (offsetof(struct cairn_options, ca_file))
/* The largest struct_size accepted: anything above is garbage, not a
 * newer header. */
#define CAIRN_OPTIONS_SIZE_MAX 4096

/* Fills the first struct_size bytes of opt with the defaults (no
 * endpoints; no TLS files, verification on, bare endpoints in cleartext)
 * and records struct_size. Call it through cairn_options_init, which
 * passes the sizeof of the caller's header. A struct_size outside
 * [CAIRN_OPTIONS_SIZE_MIN, CAIRN_OPTIONS_SIZE_MAX] writes only the
 * struct_size field (when it fits), and cairn_client_new refuses it. */
CAIRN_EXPORT void cairn_options_init_size(struct cairn_options *opt,
                                          size_t struct_size);
/* Fills opt with the defaults and its struct_size with this header's
 * sizeof (inline, so the size is the caller's, not the library's). */
static inline void cairn_options_init(struct cairn_options *opt)
{
    cairn_options_init_size(opt, sizeof(*opt));
}

/* Creates a client; connects lazily, at the first call. Copies opt and its
 * strings. On success *out is the client (free it with cairn_client_free).
 * Errors: CAIRN_E_INVALID (opt not set up by cairn_options_init or with a
 * struct_size that is no cairn_options' (see "ABI" at the top), no
 * endpoints, more than CAIRN_ENDPOINTS_MAX, an endpoint that does not
 * parse, a user without a password; a TLS file that is missing, cannot
 * be read or is not PEM, a key that does not match cert_file, only one of
 * cert_file and key_file), CAIRN_E_NOMEM. */
CAIRN_EXPORT int cairn_client_new(const struct cairn_options *opt,
                                  struct cairn_client **out);
/* cairn_client_new, and on failure a NUL-terminated reason in errbuf (up
 * to errbuf_size bytes; errbuf may be NULL): the option at fault and, for
 * a TLS file, its path and OpenSSL's or the system's reason, e.g.
 * "key_file /etc/k.pem: does not match cert_file /etc/c.pem (OpenSSL: key
 * values mismatch)". errbuf is left untouched on success. */
CAIRN_EXPORT int cairn_client_new_ex(const struct cairn_options *opt,
                                     struct cairn_client **out, char *errbuf,
                                     size_t errbuf_size);
/* The reason cairn_client_new last failed on the calling thread (the
 * text cairn_client_new_ex would have written; "" before any failure).
 * Thread-local and static: valid until the thread's next failed
 * cairn_client_new. */
CAIRN_EXPORT const char *cairn_client_new_errmsg(void);
/* Closes the connection and frees the client. Open watches must have been
 * closed first (else they are closed here and their handles become
 * invalid). NULL is a no-op. */
CAIRN_EXPORT void cairn_client_free(struct cairn_client *c);

/* Details of the last failed call on c: the server's message (or a
 * transport description), and its gRPC status code (0 when the failure
 * was not a gRPC status). Valid until the next call on c. */
CAIRN_EXPORT const char *cairn_client_errmsg(struct cairn_client *c);
CAIRN_EXPORT int cairn_client_grpc_code(struct cairn_client *c);
/* The endpoint (as given) of the current or last connection. */
CAIRN_EXPORT const char *cairn_client_endpoint(struct cairn_client *c);

/* ------------------------------------------------------------- types */

struct cairn_header {
    uint64_t cluster_id;
    uint64_t member_id;
    int64_t revision;
    uint64_t raft_term;
};

/* A key-value pair of a result; key and value point into the result and
 * are not NUL-terminated. */
struct cairn_kv {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
};

/* ---------------------------------------------------------------- KV */

enum cairn_sort_order {
    CAIRN_SORT_NONE = 0,
    CAIRN_SORT_ASCEND = 1,
    CAIRN_SORT_DESCEND = 2
};
enum cairn_sort_target {
    CAIRN_SORT_KEY = 0,
    CAIRN_SORT_VERSION = 1,
    CAIRN_SORT_CREATE = 2,
    CAIRN_SORT_MOD = 3,
    CAIRN_SORT_VALUE = 4
};

/* [key, range_end): range_end NULL/empty is the key alone, "\0" (length 1)
 * every key >= key; cairn_prefix_end() computes a prefix's end. */
struct cairn_range_req {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *range_end;
    size_t range_end_len;
    int64_t limit;    /* 0: no limit */
    int64_t revision; /* <= 0: the latest */
    enum cairn_sort_order sort_order;
    enum cairn_sort_target sort_target;
    bool serializable;
    bool keys_only;
    bool count_only;
    int64_t min_mod_revision;
    int64_t max_mod_revision;
    int64_t min_create_revision;
    int64_t max_create_revision;
};

struct cairn_range_resp {
    struct cairn_header header;
    struct cairn_kv *kvs;
    size_t kvs_count;
    bool more;
    int64_t count;
    void *priv_; /* owned memory */
};

struct cairn_put_req {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *value;
    size_t value_len;
    int64_t lease;
    bool prev_kv;
    bool ignore_value;
    bool ignore_lease;
};

struct cairn_put_resp {
    struct cairn_header header;
    struct cairn_kv *prev_kv; /* NULL unless asked for and the key existed */
    void *priv_;
};

struct cairn_delete_req {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *range_end;
    size_t range_end_len;
    bool prev_kv;
};

struct cairn_delete_resp {
    struct cairn_header header;
    int64_t deleted;
    struct cairn_kv *prev_kvs;
    size_t prev_kvs_count;
    void *priv_;
};

/* Writes the range end of prefix into out (at least prefix_len bytes):
 * the prefix with its last byte below 0xff incremented and what follows
 * dropped; a prefix of only 0xff bytes (or empty) gives "\0", every key.
 * Returns the length written. */
CAIRN_EXPORT size_t cairn_prefix_end(const uint8_t *prefix, size_t prefix_len,
                                     uint8_t *out);

/* Each call below: deadline_ms > 0 bounds the whole call, including
 * failover; 0 uses the client's timeout_ms. On success the response is
 * filled and owns its memory until its _free (also safe on a zeroed or
 * failed response). Errors: CAIRN_E_INVALID (empty key, NULL), transport
 * errors (CAIRN_E_UNAVAILABLE, CAIRN_E_TIMEOUT), CAIRN_E_BAD_RESPONSE,
 * and the server's (CAIRN_E_COMPACTED, CAIRN_E_FUTURE_REV,
 * CAIRN_E_LEASE_NOT_FOUND, CAIRN_E_KEY_NOT_FOUND, CAIRN_E_PERMISSION_DENIED,
 * CAIRN_E_NO_LEADER, or CAIRN_E_SERVER for the rest). */
CAIRN_EXPORT int cairn_range(struct cairn_client *c,
                             const struct cairn_range_req *req,
                             int64_t deadline_ms, struct cairn_range_resp *out);
CAIRN_EXPORT void cairn_range_resp_free(struct cairn_range_resp *r);

CAIRN_EXPORT int cairn_put(struct cairn_client *c,
                           const struct cairn_put_req *req, int64_t deadline_ms,
                           struct cairn_put_resp *out);
CAIRN_EXPORT void cairn_put_resp_free(struct cairn_put_resp *r);

CAIRN_EXPORT int cairn_delete(struct cairn_client *c,
                              const struct cairn_delete_req *req,
                              int64_t deadline_ms,
                              struct cairn_delete_resp *out);
CAIRN_EXPORT void cairn_delete_resp_free(struct cairn_delete_resp *r);

/* --------------------------------------------------------------- txn */

enum cairn_cmp_result {
    CAIRN_CMP_EQUAL = 0,
    CAIRN_CMP_GREATER = 1,
    CAIRN_CMP_LESS = 2,
    CAIRN_CMP_NOT_EQUAL = 3
};
enum cairn_cmp_target {
    CAIRN_CMP_VERSION = 0,
    CAIRN_CMP_CREATE = 1,
    CAIRN_CMP_MOD = 2,
    CAIRN_CMP_VALUE = 3,
    CAIRN_CMP_LEASE = 4
};

struct cairn_compare {
    enum cairn_cmp_result result;
    enum cairn_cmp_target target;
    const uint8_t *key;
    size_t key_len;
    const uint8_t *range_end; /* optional */
    size_t range_end_len;
    int64_t number;       /* version, create/mod revision or lease */
    const uint8_t *value; /* CAIRN_CMP_VALUE */
    size_t value_len;
};

enum cairn_op_type {
    CAIRN_OP_RANGE = 0,
    CAIRN_OP_PUT = 1,
    CAIRN_OP_DELETE = 2
};

struct cairn_op {
    enum cairn_op_type type;
    struct cairn_range_req range;
    struct cairn_put_req put;
    struct cairn_delete_req del;
};

struct cairn_txn_req {
    const struct cairn_compare *compares;
    size_t compares_count;
    const struct cairn_op *success;
    size_t success_count;
    const struct cairn_op *failure;
    size_t failure_count;
};

/* One response of the branch that ran, in op order; only the member of
 * its type is filled (their priv_ is NULL: the txn response owns all). */
struct cairn_op_resp {
    enum cairn_op_type type;
    struct cairn_range_resp range;
    struct cairn_put_resp put;
    struct cairn_delete_resp del;
};

struct cairn_txn_resp {
    struct cairn_header header;
    bool succeeded;
    struct cairn_op_resp *responses;
    size_t responses_count;
    void *priv_;
};

/* Atomic if (all compares) then success else failure. Not retried on a
 * broken connection unless no op writes. Errors as for cairn_range, plus
 * the server's txn errors (CAIRN_E_SERVER: duplicate key, too many
 * operations). Nested txns are not in this slice. */
CAIRN_EXPORT int cairn_txn(struct cairn_client *c,
                           const struct cairn_txn_req *req, int64_t deadline_ms,
                           struct cairn_txn_resp *out);
CAIRN_EXPORT void cairn_txn_resp_free(struct cairn_txn_resp *r);

/* ------------------------------------------------------------- lease */

struct cairn_lease_grant_resp {
    struct cairn_header header;
    int64_t id;
    int64_t ttl;
    char error[128]; /* the server's error field, NUL-terminated */
};

/* Grants a lease of ttl_s seconds; id 0 lets the server pick. */
CAIRN_EXPORT int cairn_lease_grant(struct cairn_client *c, int64_t ttl_s,
                                   int64_t id, int64_t deadline_ms,
                                   struct cairn_lease_grant_resp *out);
/* Revokes lease id and deletes its keys. CAIRN_E_LEASE_NOT_FOUND when it
 * does not exist. out may be NULL. */
CAIRN_EXPORT int cairn_lease_revoke(struct cairn_client *c, int64_t id,
                                    int64_t deadline_ms,
                                    struct cairn_header *out);

struct cairn_lease_ttl_resp {
    struct cairn_header header;
    int64_t id;
    int64_t ttl; /* remaining seconds; -1 when the lease is gone */
    int64_t granted_ttl;
    struct cairn_kv *keys; /* only key/key_len set; with keys */
    size_t keys_count;
    void *priv_;
};
CAIRN_EXPORT int cairn_lease_timetolive(struct cairn_client *c, int64_t id,
                                        bool keys, int64_t deadline_ms,
                                        struct cairn_lease_ttl_resp *out);
CAIRN_EXPORT void cairn_lease_ttl_resp_free(struct cairn_lease_ttl_resp *r);

struct cairn_lease_list_resp {
    struct cairn_header header;
    int64_t *ids;
    size_t ids_count;
    void *priv_;
};
CAIRN_EXPORT int cairn_lease_list(struct cairn_client *c, int64_t deadline_ms,
                                  struct cairn_lease_list_resp *out);
CAIRN_EXPORT void cairn_lease_list_resp_free(struct cairn_lease_list_resp *r);

/* One keep-alive round trip: *ttl_out is the renewed TTL, 0 when the
 * lease is gone (not an error, as in etcd). header may be NULL. */
CAIRN_EXPORT int cairn_lease_keepalive_once(struct cairn_client *c, int64_t id,
                                            int64_t deadline_ms,
                                            int64_t *ttl_out,
                                            struct cairn_header *header);

/* ------------------------------------------------------------- watch */

struct cairn_watch;

enum cairn_event_type { CAIRN_EVENT_PUT = 0, CAIRN_EVENT_DELETE = 1 };
enum cairn_watch_filter {
    CAIRN_WATCH_NOPUT = 1,   /* bit: drop PUT events on the server */
    CAIRN_WATCH_NODELETE = 2 /* bit: drop DELETE events */
};

struct cairn_watch_req {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *range_end;
    size_t range_end_len;
    int64_t start_revision; /* 0: from now */
    bool prev_kv;
    bool progress_notify;
    unsigned filters; /* enum cairn_watch_filter bits */
};

struct cairn_event {
    enum cairn_event_type type;
    struct cairn_kv kv;
    struct cairn_kv *prev_kv; /* NULL unless prev_kv and known */
};

struct cairn_watch_resp {
    struct cairn_header header;
    struct cairn_event *events; /* all of one or more revisions, in order */
    size_t events_count;        /* 0: a progress notification */
    void *priv_;
};

/* Opens a watch (a stream of its own on the client's connection) and
 * waits for the server's "created" answer. Copies req. *out stays valid
 * until cairn_watch_close. Errors: as for cairn_range; CAIRN_E_CANCELED
 * with the server's reason (errmsg) when it refused the watch. A
 * start_revision below the compaction opens the watch (etcd and cairnd
 * create it, then cancel it); its first cairn_watch_next ends with
 * CAIRN_E_COMPACTED and cairn_watch_compact_revision tells the revision. */
CAIRN_EXPORT int cairn_watch_open(struct cairn_client *c,
                                  const struct cairn_watch_req *req,
                                  int64_t deadline_ms,
                                  struct cairn_watch **out);
/* Blocks until the next response (events of one or more whole revisions,
 * or a progress notification), the deadline (CAIRN_E_TIMEOUT; the watch
 * stays usable) or an end. A broken connection or an Unavailable server
 * is not an end: the watch reconnects (failover, backoff) and re-creates
 * itself from the revision after the last one it returned, so no event is
 * lost or repeated. Ends: CAIRN_E_COMPACTED (history gone: re-read, then
 * watch again; cairn_watch_compact_revision), CAIRN_E_CANCELED (canceled
 * by the server; errmsg has the reason). deadline_ms < 0 waits forever. */
CAIRN_EXPORT int cairn_watch_next(struct cairn_watch *w, int64_t deadline_ms,
                                  struct cairn_watch_resp *out);
CAIRN_EXPORT void cairn_watch_resp_free(struct cairn_watch_resp *r);
/* The compaction revision that ended the watch (0 if none). */
CAIRN_EXPORT int64_t cairn_watch_compact_revision(struct cairn_watch *w);
/* How many times the watch re-created itself after a broken stream. */
CAIRN_EXPORT uint64_t cairn_watch_resumes(struct cairn_watch *w);
/* Cancels the stream and frees the watch. NULL is a no-op. */
CAIRN_EXPORT void cairn_watch_close(struct cairn_watch *w);

/* ----------------------------------------------------- cluster, status */

struct cairn_member {
    uint64_t id;
    const char *name; /* "" until the member started */
    const char *const *peer_urls;
    size_t peer_urls_count;
    const char *const *client_urls;
    size_t client_urls_count;
    bool is_learner;
};

struct cairn_member_list_resp {
    struct cairn_header header;
    struct cairn_member *members;
    size_t members_count;
    void *priv_;
};
CAIRN_EXPORT int cairn_member_list(struct cairn_client *c, int64_t deadline_ms,
                                   struct cairn_member_list_resp *out);
CAIRN_EXPORT void cairn_member_list_resp_free(struct cairn_member_list_resp *r);

struct cairn_status_resp {
    struct cairn_header header;
    char version[32];
    int64_t db_size;
    int64_t db_size_in_use;
    uint64_t leader;
    uint64_t raft_index;
    uint64_t raft_term;
    uint64_t raft_applied_index;
    bool is_learner;
    const char *const *errors;
    size_t errors_count;
    void *priv_;
};
/* Status of the member the client is connected to. */
CAIRN_EXPORT int cairn_status(struct cairn_client *c, int64_t deadline_ms,
                              struct cairn_status_resp *out);
CAIRN_EXPORT void cairn_status_resp_free(struct cairn_status_resp *r);

/* ------------------------------------------- maintenance, membership */

/* Administrative calls (admin.c). Each is one unary request with the
 * client's failover rules (the reads HashKV, Alarm GET, the lists and the
 * gets are retried; the writes are not). out/hdr may be NULL where it is
 * a struct cairn_header *. Errors: CAIRN_E_INVALID (NULL client, empty
 * name), CAIRN_E_UNAVAILABLE, CAIRN_E_TIMEOUT, CAIRN_E_BAD_RESPONSE, and
 * the server's answer: CAIRN_E_COMPACTED / CAIRN_E_FUTURE_REV (compact,
 * hashkv), CAIRN_E_PERMISSION_DENIED, CAIRN_E_SERVER with the server's
 * text in cairn_client_errmsg ("etcdserver: user name already exists",
 * "etcdserver: bad leader transferee", ...). */

/* Compacts the history up to rev; physical: answer once the space is
 * reclaimed. */
CAIRN_EXPORT int cairn_compact(struct cairn_client *c, int64_t rev,
                               bool physical, int64_t deadline_ms,
                               struct cairn_header *hdr);

struct cairn_hashkv_resp {
    struct cairn_header header;
    uint32_t hash;
    int64_t compact_revision;
};
/* The hash of the member's KV history up to rev (0: latest). */
CAIRN_EXPORT int cairn_hashkv(struct cairn_client *c, int64_t rev,
                              int64_t deadline_ms,
                              struct cairn_hashkv_resp *out);

/* Streams the backend snapshot of the member the client is connected to
 * into fd as it arrives (fd is only written, never closed or synced);
 * *bytes (if not NULL) counts what was written. The deadline covers the
 * whole transfer. Not retried on another member. Errors: as above, and
 * CAIRN_E_IO when a write to fd fails (errno in cairn_client_errmsg). */
CAIRN_EXPORT int cairn_snapshot(struct cairn_client *c, int fd,
                                int64_t deadline_ms, uint64_t *bytes);

/* Defragments the member the client is connected to. */
CAIRN_EXPORT int cairn_defragment(struct cairn_client *c, int64_t deadline_ms,
                                  struct cairn_header *hdr);
/* Asks the leader (the client must be connected to it) to hand over to
 * the member target. */
CAIRN_EXPORT int cairn_move_leader(struct cairn_client *c, uint64_t target,
                                   int64_t deadline_ms,
                                   struct cairn_header *hdr);

enum cairn_alarm_type {
    CAIRN_ALARM_NONE = 0,
    CAIRN_ALARM_NOSPACE = 1,
    CAIRN_ALARM_CORRUPT = 2
};
struct cairn_alarm {
    uint64_t member_id;
    int alarm; /* enum cairn_alarm_type; other values as the server sent */
};
struct cairn_alarm_resp {
    struct cairn_header header;
    struct cairn_alarm *alarms;
    size_t alarms_count;
};
/* The active alarms. */
CAIRN_EXPORT int cairn_alarm_list(struct cairn_client *c, int64_t deadline_ms,
                                  struct cairn_alarm_resp *out);
/* Deactivates one alarm (member_id 0: every member); out lists what the
 * server deactivated. */
CAIRN_EXPORT int cairn_alarm_disarm(struct cairn_client *c,
                                    const struct cairn_alarm *a,
                                    int64_t deadline_ms,
                                    struct cairn_alarm_resp *out);
CAIRN_EXPORT void cairn_alarm_resp_free(struct cairn_alarm_resp *r);

struct cairn_member_add_resp {
    struct cairn_header header;
    struct cairn_member member; /* the new member (no name yet) */
    struct cairn_member *members;
    size_t members_count;
    void *priv_;
};
/* Adds a member (a learner if learner) with its peer URLs (copied). */
CAIRN_EXPORT int cairn_member_add(struct cairn_client *c,
                                  const char *const *peer_urls, size_t n,
                                  bool learner, int64_t deadline_ms,
                                  struct cairn_member_add_resp *out);
CAIRN_EXPORT void cairn_member_add_resp_free(struct cairn_member_add_resp *r);
/* Remove, update (new peer URLs) and promote answer with the members
 * after the change, freed with cairn_member_list_resp_free. */
CAIRN_EXPORT int cairn_member_remove(struct cairn_client *c, uint64_t id,
                                     int64_t deadline_ms,
                                     struct cairn_member_list_resp *out);
CAIRN_EXPORT int cairn_member_update(struct cairn_client *c, uint64_t id,
                                     const char *const *peer_urls, size_t n,
                                     int64_t deadline_ms,
                                     struct cairn_member_list_resp *out);
CAIRN_EXPORT int cairn_member_promote(struct cairn_client *c, uint64_t id,
                                      int64_t deadline_ms,
                                      struct cairn_member_list_resp *out);

/* ------------------------------------------------ kept-alive leases */

/* A lease kept alive by a background thread (etcd's concurrency.Session):
 * what lock and election need from their caller. The thread has its own
 * connection, made with the options of the client given at start, and
 * renews every ttl/3 (at least 300 ms apart). */
#define CAIRN_KEEPER_TTL_MAX 9000000000LL /* etcd's MaxLeaseTTL */

struct cairn_keeper;

enum cairn_keeper_event {
    CAIRN_KEEPER_LOST = 1,        /* the lease is gone (the server says so,
                                   * or its TTL passed with no renewal
                                   * answered); the thread has ended */
    CAIRN_KEEPER_UNREACHABLE = 2, /* a renewal failed (err); retrying every
                                   * 500 ms until the TTL has passed */
    CAIRN_KEEPER_RENEWED = 3      /* renewed again after UNREACHABLE */
};

/* Runs on the keeper's thread, no lock held; may call anything but
 * cairn_keeper_free on the same keeper. ttl is the renewed TTL (RENEWED),
 * err the error that caused the event (0: none; for LOST, 0 when the
 * server said the lease is gone). */
typedef void (*cairn_keeper_cb)(void *arg, enum cairn_keeper_event ev,
                                int64_t lease, int64_t ttl, int err);

/* Keeps lease alive (its TTL ttl_s, for the local expiry), or with lease
 * 0 grants a new one of ttl_s seconds (0: 60) first, on the keeper's
 * connection. cb may be NULL. c is only read here (its options), under
 * its mutex; it may be freed before the keeper. Errors: CAIRN_E_INVALID
 * (a negative lease or TTL, a lease without its TTL), CAIRN_E_NOMEM, and
 * for lease 0 the errors of cairn_lease_grant (details in c's errmsg). */
CAIRN_EXPORT int cairn_keeper_new(struct cairn_client *c, int64_t lease,
                                  int64_t ttl_s, cairn_keeper_cb cb,
                                  void *cb_arg, struct cairn_keeper **out);
/* The lease kept alive. */
CAIRN_EXPORT int64_t cairn_keeper_lease(struct cairn_keeper *k);
/* The TTL of the last answered renewal (the granted TTL before the first),
 * 0 once the lease is lost; renewals (may be NULL) counts them. Any
 * thread. */
CAIRN_EXPORT int64_t cairn_keeper_ttl(struct cairn_keeper *k,
                                      uint64_t *renewals);
/* Stops the thread; with revoke (and the lease not lost) revokes the
 * lease, which releases the locks and leaderships held with it. NULL is a
 * no-op. */
CAIRN_EXPORT void cairn_keeper_free(struct cairn_keeper *k, bool revoke);

/* ---------------------------------------------------- lock, election */

/* etcd's lock and election services (v3lockpb, v3electionpb; lock.c).
 * The caller owns the session: a lease it keeps alive (cairn_keeper, or
 * keep-alives on another client, since calls on one client run one at a
 * time) for as long as it holds the lock or leadership; revoking it
 * releases both.
 * cairn_lock and cairn_campaign wait on the server until acquired or the
 * deadline passes (CAIRN_E_TIMEOUT). Errors as the calls above, and the
 * server's text for "election: not leader", "election: no leader",
 * "mutex: session is expired" (CAIRN_E_SERVER). */

struct cairn_lock_resp {
    struct cairn_header header;
    uint8_t *key; /* "<name>/<lease hex>", NUL-terminated; owned */
    size_t key_len;
};
CAIRN_EXPORT int cairn_lock(struct cairn_client *c, const char *name,
                            int64_t lease, int64_t deadline_ms,
                            struct cairn_lock_resp *out);
CAIRN_EXPORT void cairn_lock_resp_free(struct cairn_lock_resp *r);
CAIRN_EXPORT int cairn_unlock(struct cairn_client *c, const uint8_t *key,
                              size_t key_len, int64_t deadline_ms,
                              struct cairn_header *hdr);

/* The leadership a campaign won; name and key NUL-terminated, owned. */
struct cairn_leader_key {
    struct cairn_header header;
    uint8_t *name;
    size_t name_len;
    uint8_t *key;
    size_t key_len;
    int64_t rev;
    int64_t lease;
};
CAIRN_EXPORT int cairn_campaign(struct cairn_client *c, const char *name,
                                int64_t lease, const uint8_t *value,
                                size_t value_len, int64_t deadline_ms,
                                struct cairn_leader_key *out);
CAIRN_EXPORT void cairn_leader_key_free(struct cairn_leader_key *k);
CAIRN_EXPORT int cairn_proclaim(struct cairn_client *c,
                                const struct cairn_leader_key *k,
                                const uint8_t *value, size_t value_len,
                                int64_t deadline_ms, struct cairn_header *hdr);
CAIRN_EXPORT int cairn_resign(struct cairn_client *c,
                              const struct cairn_leader_key *k,
                              int64_t deadline_ms, struct cairn_header *hdr);
/* The leader's key and value as a range answer of one key (none: no
 * leader, or the server's "election: no leader"). */
CAIRN_EXPORT int cairn_election_leader(struct cairn_client *c, const char *name,
                                       int64_t deadline_ms,
                                       struct cairn_range_resp *out);
/* Called with each leader the server reports (borrowed until it
 * returns); a nonzero return ends the observation with that value. */
typedef int (*cairn_observe_cb)(void *arg,
                                const struct cairn_range_resp *leader);
/* Follows the election's leader until cb stops it, the server ends the
 * stream, or the deadline passes (CAIRN_E_TIMEOUT). Runs cb on the
 * calling thread with the client's mutex held: cb must not call the same
 * client. */
CAIRN_EXPORT int cairn_election_observe(struct cairn_client *c,
                                        const char *name, cairn_observe_cb cb,
                                        void *arg, int64_t deadline_ms);

/* --------------------------------------------------------------- auth */

/* Users and roles (etcdserverpb.Auth). Names are NUL-terminated strings,
 * copied. Every call but cairn_auth_status needs the root role once auth
 * is enabled. */
CAIRN_EXPORT int cairn_auth_enable(struct cairn_client *c, int64_t deadline_ms,
                                   struct cairn_header *hdr);
CAIRN_EXPORT int cairn_auth_disable(struct cairn_client *c, int64_t deadline_ms,
                                    struct cairn_header *hdr);
/* etcd 3.5's AuthStatus (etcd 3.4 answers Unimplemented: CAIRN_E_SERVER). */
CAIRN_EXPORT int cairn_auth_status(struct cairn_client *c, int64_t deadline_ms,
                                   bool *enabled, uint64_t *auth_revision,
                                   struct cairn_header *hdr);

/* A list of names (users, or a user's roles, or roles); each name is
 * NUL-terminated and lives until _free. */
struct cairn_names_resp {
    struct cairn_header header;
    const char *const *names;
    size_t names_count;
    void *priv_;
};
CAIRN_EXPORT void cairn_names_resp_free(struct cairn_names_resp *r);

/* password NULL: a user without a password (only certificates or a
 * token from elsewhere can authenticate it). */
CAIRN_EXPORT int cairn_user_add(struct cairn_client *c, const char *name,
                                const char *password, int64_t deadline_ms,
                                struct cairn_header *hdr);
CAIRN_EXPORT int cairn_user_delete(struct cairn_client *c, const char *name,
                                   int64_t deadline_ms,
                                   struct cairn_header *hdr);
CAIRN_EXPORT int cairn_user_passwd(struct cairn_client *c, const char *name,
                                   const char *password, int64_t deadline_ms,
                                   struct cairn_header *hdr);
CAIRN_EXPORT int cairn_user_grant_role(struct cairn_client *c, const char *user,
                                       const char *role, int64_t deadline_ms,
                                       struct cairn_header *hdr);
CAIRN_EXPORT int cairn_user_revoke_role(struct cairn_client *c,
                                        const char *user, const char *role,
                                        int64_t deadline_ms,
                                        struct cairn_header *hdr);
/* The user's roles. */
CAIRN_EXPORT int cairn_user_get(struct cairn_client *c, const char *name,
                                int64_t deadline_ms,
                                struct cairn_names_resp *out);
CAIRN_EXPORT int cairn_user_list(struct cairn_client *c, int64_t deadline_ms,
                                 struct cairn_names_resp *out);

enum cairn_perm_type {
    CAIRN_PERM_READ = 0,
    CAIRN_PERM_WRITE = 1,
    CAIRN_PERM_READWRITE = 2
};
/* A permission on [key, range_end) (range_end_len 0: key alone; "\0":
 * every key from key on). Byte strings as in cairn_kv. */
struct cairn_permission {
    int type; /* enum cairn_perm_type */
    const uint8_t *key;
    size_t key_len;
    const uint8_t *range_end;
    size_t range_end_len;
};
struct cairn_role_resp {
    struct cairn_header header;
    struct cairn_permission *perms;
    size_t perms_count;
    void *priv_;
};
CAIRN_EXPORT int cairn_role_add(struct cairn_client *c, const char *name,
                                int64_t deadline_ms, struct cairn_header *hdr);
CAIRN_EXPORT int cairn_role_delete(struct cairn_client *c, const char *name,
                                   int64_t deadline_ms,
                                   struct cairn_header *hdr);
/* The role's permissions, in the server's order. */
CAIRN_EXPORT int cairn_role_get(struct cairn_client *c, const char *name,
                                int64_t deadline_ms,
                                struct cairn_role_resp *out);
CAIRN_EXPORT void cairn_role_resp_free(struct cairn_role_resp *r);
CAIRN_EXPORT int cairn_role_list(struct cairn_client *c, int64_t deadline_ms,
                                 struct cairn_names_resp *out);
CAIRN_EXPORT int cairn_role_grant_permission(struct cairn_client *c,
                                             const char *role,
                                             const struct cairn_permission *p,
                                             int64_t deadline_ms,
                                             struct cairn_header *hdr);
CAIRN_EXPORT int
cairn_role_revoke_permission(struct cairn_client *c, const char *role,
                             const uint8_t *key, size_t key_len,
                             const uint8_t *range_end, size_t range_end_len,
                             int64_t deadline_ms, struct cairn_header *hdr);

/* --------------------------------------------------- Cairn's /api/v1 */

/* The objects below (registration, discovery, config watch) copy the
 * client's endpoints when created and never use its gRPC connection: the
 * client may be freed once they exist. Each call is one HTTP/1.1 request
 * to an endpoint, failing over to the next endpoint when the connection
 * cannot be made. The discovery caches and config watches made from one
 * client share one WebSocket (/api/v1/stream) and one thread, the
 * client's stream thread, which runs their callbacks one at a time: a
 * callback that blocks delays the others. The socket and thread live
 * while the client or any of them does. An answer 4xx/5xx maps to: 400
 * CAIRN_E_INVALID, 401 CAIRN_E_INVALID_TOKEN, 403 CAIRN_E_PERMISSION_DENIED,
 * 404 CAIRN_E_NOT_FOUND, 409 CAIRN_E_CONFLICT, 410 CAIRN_E_SESSION_EXPIRED,
 * 413 CAIRN_E_TOO_BIG, 503 CAIRN_E_UNAVAILABLE, else CAIRN_E_SERVER. They
 * copy the client's TLS settings too: a TLS endpoint is spoken to with
 * https and wss (ALPN http/1.1), verified as the gRPC connection is. */

struct cairn_api_resp {
    int status; /* HTTP status; 0 when no answer came */
    char *body; /* the answer (JSON), NUL-terminated; owned until _free */
    size_t body_len;
};

/* One call: method ("GET", "PUT", ...), path (starting "/api/v1/", query
 * included, already escaped), body (JSON text or NULL). Returns 0 on a
 * 2xx; on a 4xx/5xx the mapped error with *out still holding the answer
 * (the server's {"error","code","message"}), and the message in
 * cairn_client_errmsg. A write whose connection broke after it was sent
 * is not repeated (CAIRN_E_UNAVAILABLE). Runs under the client's mutex.
 * Errors: CAIRN_E_INVALID, CAIRN_E_UNAVAILABLE, CAIRN_E_TIMEOUT,
 * CAIRN_E_BAD_RESPONSE, CAIRN_E_TOO_BIG (answer over 8 MiB), the mapped
 * statuses above. */
CAIRN_EXPORT int cairn_api_call(struct cairn_client *c, const char *method,
                                const char *path, const char *body,
                                int64_t deadline_ms,
                                struct cairn_api_resp *out);
CAIRN_EXPORT void cairn_api_resp_free(struct cairn_api_resp *r);

/* A plain GET of path (starting "/", query included, already escaped) on
 * the client's endpoint number endpoint_index (0: the first given), for
 * what is not /api/v1: /metrics, /health, /version. No failover, so every
 * answer comes from the one member asked (check datascale reads one
 * member's memory before and after its puts), and no auth token (etcd
 * serves these without one). TLS as cairn_api_call: a TLS endpoint is
 * spoken to with https (ALPN http/1.1), verified as the gRPC connection
 * is. Returns 0 on a 2xx, *out holding the answer (any content type,
 * NUL-terminated); on a 4xx/5xx the status mapped as above with *out
 * still holding the answer and "HTTP <status>" in cairn_client_errmsg.
 * Owns: *out owns its body until cairn_api_resp_free (also after an
 * error). Threads: copies the client's endpoints and TLS settings under
 * its mutex, then runs without it (a slow endpoint holds up no other
 * call). Errors: CAIRN_E_INVALID (bad path, endpoint_index past the
 * client's endpoints), CAIRN_E_UNAVAILABLE (cannot connect: the reason in
 * cairn_client_errmsg), CAIRN_E_TIMEOUT (deadline_ms, 0: the client's
 * timeout), CAIRN_E_BAD_RESPONSE (not HTTP), CAIRN_E_TOO_BIG (answer over
 * 8 MiB), CAIRN_E_NOMEM, the mapped statuses. */
CAIRN_EXPORT int cairn_http_get(struct cairn_client *c, size_t endpoint_index,
                                const char *path, int64_t deadline_ms,
                                struct cairn_api_resp *out);

/* ---------------------------------------------------------- registry */

#define CAIRN_NAME_MAX 128

/* An instance to register. Strings are copied by cairn_register. */
struct cairn_instance_spec {
    const char *ns;      /* namespace, service, id: names of 1-128 bytes */
    const char *service; /* of [A-Za-z0-9._-] */
    const char *id;
    const char *addr;        /* "host:port" */
    int weight;              /* 0-1000; < 0: the server's default (100) */
    const char *zone;        /* NULL: "" */
    const char *version;     /* NULL: "" */
    const char *labels_json; /* NULL or a JSON object of strings */
    const char *meta_json;   /* NULL or a JSON object */
};

/* An instance as discovery sees it (copied out of the server's document). */
struct cairn_instance {
    char ns[CAIRN_NAME_MAX + 1];
    char service[CAIRN_NAME_MAX + 1];
    char id[CAIRN_NAME_MAX + 1];
    char addr[CAIRN_NAME_MAX * 2 + 8];
    char zone[CAIRN_NAME_MAX + 1];
    char version[CAIRN_NAME_MAX + 1];
    char status[16]; /* "up", "draining" */
    char health[16]; /* "passing", "critical", "unknown" */
    int weight;
    int64_t revision;
};

struct cairn_instance_list {
    struct cairn_instance *items;
    size_t count;
    int64_t revision; /* of the snapshot or last change it reflects */
};
CAIRN_EXPORT void cairn_instance_list_free(struct cairn_instance_list *l);

struct cairn_registration;

enum cairn_session_event {
    CAIRN_SESSION_LOST = 1,        /* keep-alives fail (server unreachable);
                                    * retrying every 500 ms */
    CAIRN_SESSION_RENEWED = 2,     /* reachable again, same session */
    CAIRN_SESSION_REREGISTERED = 3 /* the session had expired: a new one
                                    * holds every instance again */
};

/* Runs on the registration's background thread, never with a lock held:
 * it may call cairn_register and cairn_deregister, not
 * cairn_registration_free. session is the session's id (hex), borrowed for
 * the call; err the error that caused LOST. */
typedef void (*cairn_session_cb)(void *arg, enum cairn_session_event ev,
                                 int err, const char *session);

struct cairn_registration_options {
    int64_t ttl_s;       /* session TTL, 1-3600; 0: 10 */
    int64_t timeout_ms;  /* each HTTP call; 0: 2000 */
    cairn_session_cb cb; /* may be NULL */
    void *cb_arg;
};

/* Opens a session (POST /api/v1/sessions) and starts the background thread
 * that renews it every ttl/3 (at least 300 ms apart; every 500 ms while
 * the server cannot be reached). When a renewal answers 410 (the session
 * expired: the process was paused, or cut off, longer than the TTL), the
 * thread opens a new session and registers every instance of the
 * registration again, then reports CAIRN_SESSION_REREGISTERED. o is copied
 * (NULL: defaults). Errors: CAIRN_E_INVALID, CAIRN_E_NOMEM, the errors of
 * cairn_api_call (the session could not be opened; nothing runs). */
CAIRN_EXPORT int
cairn_registration_new(struct cairn_client *c,
                       const struct cairn_registration_options *o,
                       struct cairn_registration **out);
/* Registers (or re-registers) an instance under the session and remembers
 * it for re-registration. spec is copied. A 410 on the way renews the
 * session first (once). Any thread. Errors: CAIRN_E_INVALID (bad spec,
 * also the server's 400 with its message in errmsg), CAIRN_E_NOMEM, and
 * cairn_api_call's. On failure the instance is not remembered. */
CAIRN_EXPORT int cairn_register(struct cairn_registration *r,
                                const struct cairn_instance_spec *spec);
/* Deregisters (DELETE) and forgets an instance. CAIRN_E_NOT_FOUND when the
 * server does not have it (it is forgotten anyway). */
CAIRN_EXPORT int cairn_deregister(struct cairn_registration *r, const char *ns,
                                  const char *service, const char *id);
/* The current session id (hex) into buf; times the session was replaced. */
CAIRN_EXPORT int cairn_registration_session(struct cairn_registration *r,
                                            char *buf, size_t buf_size,
                                            uint64_t *reregistrations);
/* The last error text of the registration (valid until its next call). */
CAIRN_EXPORT const char *
cairn_registration_errmsg(struct cairn_registration *r);
/* Stops the thread; with end_session, deletes the session and with it
 * every instance (one write) first. NULL is a no-op. */
CAIRN_EXPORT void cairn_registration_free(struct cairn_registration *r,
                                          bool end_session);

/* Discovery: a cache of one service's instances (or a namespace's when
 * service is NULL) that follows the pushed stream (a registry subscription
 * on the client's shared /api/v1/stream WebSocket), subscribing again with
 * "since" its last revision after a broken connection (failover, backoff
 * 100 ms doubling to 2 s) so no change is lost. */
struct cairn_discovery;

/* Runs on the client's stream thread after each snapshot or change, with
 * no lock held; list is borrowed for the call. It may call
 * cairn_discovery_get and cairn_pick, and free other discovery caches and
 * config watches, not its own cairn_discovery_free. */
typedef void (*cairn_discovery_cb)(void *arg,
                                   const struct cairn_instance_list *list);

/* Starts following ns/service and waits up to deadline_ms (0: 5000) for
 * the first snapshot. cb may be NULL. Strings are copied. Errors:
 * CAIRN_E_INVALID (bad names), CAIRN_E_NOMEM, CAIRN_E_TIMEOUT or
 * CAIRN_E_UNAVAILABLE (no snapshot yet; the cache was not created). */
CAIRN_EXPORT int cairn_discovery_new(struct cairn_client *c, const char *ns,
                                     const char *service, cairn_discovery_cb cb,
                                     void *cb_arg, int64_t deadline_ms,
                                     struct cairn_discovery **out);
/* A copy of the cached instances (every status), sorted by id. */
CAIRN_EXPORT int cairn_discovery_get(struct cairn_discovery *d,
                                     struct cairn_instance_list *out);
/* Whether the stream is connected now (false while it reconnects: the
 * cache then shows the last state seen). */
CAIRN_EXPORT bool cairn_discovery_connected(struct cairn_discovery *d);
CAIRN_EXPORT void cairn_discovery_free(struct cairn_discovery *d);

enum cairn_pick_policy {
    CAIRN_PICK_ROUND_ROBIN = 0,
    CAIRN_PICK_WEIGHTED_RANDOM = 1, /* by weight; weight 0 never picked */
    CAIRN_PICK_ZONE_FIRST = 2       /* round robin within zone, else all */
};

/* Picks one usable instance (status "up", health not "critical") into
 * *out. zone is read by CAIRN_PICK_ZONE_FIRST only. Thread-safe.
 * Errors: CAIRN_E_INVALID, CAIRN_E_NOT_FOUND (no usable instance). */
CAIRN_EXPORT int cairn_pick(struct cairn_discovery *d,
                            enum cairn_pick_policy policy, const char *zone,
                            struct cairn_instance *out);
/* The same over a list (no state: round robin uses *cursor). */
CAIRN_EXPORT int cairn_pick_from(const struct cairn_instance_list *l,
                                 enum cairn_pick_policy policy,
                                 const char *zone, uint64_t *cursor,
                                 struct cairn_instance *out);

/* ------------------------------------------------------------ config */

struct cairn_config_req {
    const char *ns; /* namespace, app, name: names */
    const char *app;
    const char *name;
    const char *client_id; /* NULL: none (no percentage gray release) */
    const char *labels;    /* "k=v,k2=v2" or NULL, for gray rules */
    const char *cache_dir; /* NULL: no local cache; else the directory
                            * (created) holding <ns>@<app>@<name>.json */
};

struct cairn_config_release {
    int64_t version;
    int64_t revision;
    char *content; /* NUL-terminated (content_len excludes it) */
    size_t content_len;
    char format[16];
    char sha256[65];
    bool gray;  /* the gray release for this client */
    bool stale; /* served from the local cache: the server was unreachable */
    void *priv_;
};
CAIRN_EXPORT void cairn_config_release_free(struct cairn_config_release *r);

/* Reads the release this client should run (GET with client_id and
 * labels). With cache_dir: a fresh answer is written to the cache
 * (atomically: temp file, fsync, rename), and when no endpoint can be
 * reached (CAIRN_E_UNAVAILABLE, CAIRN_E_TIMEOUT) the cached release is
 * returned with stale = true and 0. Errors: CAIRN_E_INVALID,
 * CAIRN_E_NOT_FOUND, CAIRN_E_BAD_RESPONSE, cairn_api_call's (when there is
 * no cache to fall back on). */
CAIRN_EXPORT int cairn_config_get(struct cairn_client *c,
                                  const struct cairn_config_req *req,
                                  int64_t deadline_ms,
                                  struct cairn_config_release *out);

struct cairn_config_watch;

/* Runs on the client's stream thread with no lock held; rel is borrowed
 * for the call. When it returns, the release is acknowledged on the stream
 * ({"op":"ack","sub","name","version"}), so an ack means "applied". A
 * stale release (from the cache) is not acknowledged. It must not call
 * cairn_config_watch_free on its own watch. */
typedef void (*cairn_config_cb)(void *arg,
                                const struct cairn_config_release *rel);

/* Follows one config over the config stream (a config subscription with
 * client_id and labels on the client's shared /api/v1/stream WebSocket),
 * resuming with "since" after a reconnect. cb runs for every new release
 * (and a deletion is not reported). At start, when the server cannot be
 * reached and cache_dir holds a release, cb runs at once with it (stale);
 * once the stream connects, cb runs again with the fresh release (even of
 * the same version: stale false tells it is fresh now). Returns at once;
 * req is copied. Errors: CAIRN_E_INVALID, CAIRN_E_NOMEM. */
CAIRN_EXPORT int cairn_config_watch_new(struct cairn_client *c,
                                        const struct cairn_config_req *req,
                                        cairn_config_cb cb, void *cb_arg,
                                        struct cairn_config_watch **out);
CAIRN_EXPORT bool cairn_config_watch_connected(struct cairn_config_watch *w);
CAIRN_EXPORT void cairn_config_watch_free(struct cairn_config_watch *w);

/* ------------------------------------------------- the async face */

/* The asynchronous face on a caller's libuv loop (async.c). Calls run on
 * one worker thread of the face, in the order given, each on the face's
 * own client (as the blocking calls, with their deadlines and failover);
 * each watch runs on a thread of its own. Every callback (done, the watch
 * callback) runs on the loop's thread, from the loop, never inside the
 * call that queued it. cairn_async_new, _call, _watch, _watch_close and
 * _free are for the loop's thread too. Bounds: CAIRN_ASYNC_QUEUE_MAX calls
 * waiting to run (one more is refused CAIRN_E_TOO_BIG), CAIRN_ASYNC_WATCHES_MAX
 * watches; a watch stops reading while CAIRN_WATCH_QUEUE_MAX of its
 * responses wait for the loop. */
#define CAIRN_ASYNC_QUEUE_MAX   4096
#define CAIRN_ASYNC_WATCHES_MAX 256

struct uv_loop_s; /* uv_loop_t */
struct cairn_async;
struct cairn_async_watch;

/* A call run on the worker with the face's client: any blocking call of
 * this header (the arguments, the response and its _free are the
 * caller's, through arg). Its return value is done's rc. */
typedef int (*cairn_async_fn)(struct cairn_client *c, void *arg);
/* Runs once per queued call, on the loop's thread: rc is fn's, or
 * CAIRN_E_CLOSED for a call the face's close came before. */
typedef void (*cairn_async_done)(void *arg, int rc);
/* A watch's responses in order; rc != 0 (resp NULL) is its end, as
 * cairn_watch_next's errors (CAIRN_E_COMPACTED, CAIRN_E_CANCELED, ...):
 * nothing follows, and the watch is still to be closed. resp is borrowed
 * for the call. */
typedef void (*cairn_async_watch_cb)(void *arg, int rc,
                                     const struct cairn_watch_resp *resp);

/* Creates the face on loop (opt as cairn_client_new's, copied): a client
 * and the worker thread; connects at the first call. Errors: those of
 * cairn_client_new. */
CAIRN_EXPORT int cairn_async_new(struct uv_loop_s *loop,
                                 const struct cairn_options *opt,
                                 struct cairn_async **out);
/* cairn_async_new with the reason of a failure in errbuf, as
 * cairn_client_new_ex's. */
CAIRN_EXPORT int cairn_async_new_ex(struct uv_loop_s *loop,
                                    const struct cairn_options *opt,
                                    struct cairn_async **out, char *errbuf,
                                    size_t errbuf_size);
/* Queues fn; done (may be NULL) runs later on the loop. Errors (nothing
 * runs): CAIRN_E_INVALID, CAIRN_E_NOMEM, CAIRN_E_TOO_BIG (the queue is
 * full), CAIRN_E_CLOSED. */
CAIRN_EXPORT int cairn_async_call(struct cairn_async *a, cairn_async_fn fn,
                                  cairn_async_done done, void *arg);
/* Opens a watch (req copied) on a thread and client of its own: cb runs
 * for every response, with automatic resume as cairn_watch_next's. Errors:
 * CAIRN_E_INVALID, CAIRN_E_NOMEM, CAIRN_E_TOO_BIG (CAIRN_ASYNC_WATCHES_MAX
 * open), CAIRN_E_CLOSED. */
CAIRN_EXPORT int cairn_async_watch(struct cairn_async *a,
                                   const struct cairn_watch_req *req,
                                   cairn_async_watch_cb cb, void *arg,
                                   struct cairn_async_watch **out);
/* Stops the watch (within 200 ms of the call it is in) and frees it; its
 * undelivered responses are dropped. May be called from its callback. */
CAIRN_EXPORT void cairn_async_watch_close(struct cairn_async_watch *w);
/* Closes every watch, waits for the call in progress (bounded by its
 * deadline), then answers every call not answered yet: its result, or
 * CAIRN_E_CLOSED for one that never ran. The memory goes once the loop
 * has run the close of the face's handle. NULL is a no-op. */
CAIRN_EXPORT void cairn_async_free(struct cairn_async *a);

#ifdef __cplusplus
}
#endif

#endif

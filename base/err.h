/*
 * err.h - the one error table of Cairn.
 *
 * Does:     names every error Cairn returns, with its message text.
 * Owns:     nothing; err_str() returns pointers into a constant table.
 * Threads:  every function is safe from any thread.
 * Borrowed: err_str()'s result is static and lives forever.
 * Errors:   functions return 0 or a negative code. OS errors pass through as
 *           -errno (small magnitudes); Cairn's own codes start at -10000 so the
 *           two never collide. err_str() prints either kind.
 * Limits:   none.
 * Not here: the mapping to gRPC and HTTP statuses lives in registry/, the only
 *           place allowed to know about wire status codes.
 *
 * Messages that etcd clients parse ("etcdserver: ...") are byte for byte the
 * texts etcd 3.4 sends; clients map the text back to typed errors, so the text
 * is part of the wire API (see ../shared/reference/etcd-api.md section 1.6).
 */
#ifndef CAIRN_BASE_ERR_H
#define CAIRN_BASE_ERR_H

#include <stddef.h>

/* X(name, message). Order is the ABI of the numeric values: append only. */
#define ERR_TABLE(X)                                                           \
    X(KEY_NOT_PROVIDED, "etcdserver: key is not provided")                     \
    X(KEY_NOT_FOUND, "etcdserver: key not found")                              \
    X(VALUE_PROVIDED, "etcdserver: value is provided")                         \
    X(LEASE_PROVIDED, "etcdserver: lease is provided")                         \
    X(TOO_MANY_OPS, "etcdserver: too many operations in txn request")          \
    X(DUPLICATE_KEY, "etcdserver: duplicate key given in txn request")         \
    X(COMPACTED, "etcdserver: mvcc: required revision has been compacted")     \
    X(FUTURE_REV, "etcdserver: mvcc: required revision is a future revision")  \
    X(NOSPACE, "etcdserver: mvcc: database space exceeded")                    \
    X(LEASE_NOT_FOUND, "etcdserver: requested lease not found")                \
    X(LEASE_EXISTS, "etcdserver: lease already exists")                        \
    X(LEASE_TTL_TOO_LARGE, "etcdserver: too large lease TTL")                  \
    X(REQUEST_TOO_LARGE, "etcdserver: request is too large")                   \
    X(TOO_MANY_REQUESTS, "etcdserver: too many requests")                      \
    X(NO_LEADER, "etcdserver: no leader")                                      \
    X(NOT_LEADER, "etcdserver: not leader")                                    \
    X(LEADER_CHANGED, "etcdserver: leader changed")                            \
    X(STOPPED, "etcdserver: server stopped")                                   \
    X(TIMEOUT, "etcdserver: request timed out")                                \
    X(MEMBER_NOT_FOUND, "etcdserver: member not found")                        \
    X(MEMBER_EXISTS, "etcdserver: member ID already exist")                    \
    X(PEER_URL_EXISTS, "etcdserver: Peer URLs already exists")                 \
    X(BAD_LEADER_TRANSFEREE, "etcdserver: bad leader transferee")              \
    X(LEARNER_NOT_READY,                                                       \
      "etcdserver: can only promote a learner member which is in sync with "   \
      "leader")                                                                \
    X(NOT_LEARNER, "etcdserver: can only promote a learner member")            \
    X(TOO_MANY_LEARNERS, "etcdserver: too many learner members in cluster")    \
    X(PERMISSION_DENIED, "etcdserver: permission denied")                      \
    X(INVALID_AUTH_TOKEN, "etcdserver: invalid auth token")                    \
    X(CORRUPT_CLUSTER, "etcdserver: corrupt cluster")                          \
    X(KEY_TOO_LARGE, "cairn: key is too large")                                \
    X(VALUE_TOO_LARGE, "cairn: value is too large")                            \
    X(INVALID_RANGE, "cairn: range end is before the key")                     \
    X(BAD_COMPARE, "cairn: malformed compare in txn request")                  \
    X(BAD_REQUEST, "cairn: malformed request")                                 \
    X(CORRUPT, "cairn: data is corrupt")                                       \
    X(BAD_MAGIC, "cairn: file is not a Cairn file (bad magic)")                \
    X(BAD_VERSION, "cairn: file format version is not supported")              \
    X(FAILED, "cairn: object is in a failed state after an earlier error")     \
    X(LOCKED, "cairn: data directory is locked by another process")            \
    X(BUSY, "cairn: resource limit reached, try again")                        \
    X(PROPOSAL_DROPPED, "cairn: proposal dropped")                             \
    X(CANCELED, "cairn: operation canceled")                                   \
    X(LIMIT, "cairn: limit exceeded")                                          \
    X(INVALID, "cairn: invalid argument")                                      \
    X(NOT_FOUND, "cairn: not found")                                           \
    X(EXISTS, "cairn: already exists")                                         \
    X(END, "cairn: end of data")                                               \
    X(TRUNCATED, "cairn: data is truncated")                                   \
    X(USER_EMPTY, "etcdserver: user name is empty")                            \
    X(ROLE_EMPTY, "etcdserver: role name is empty")                            \
    X(AUTH_FAILED,                                                             \
      "etcdserver: authentication failed, invalid user ID or password")        \
    X(INVALID_AUTH_MGMT, "etcdserver: invalid auth management")                \
    X(AUTH_OLD_REVISION, "etcdserver: revision of auth store is old")          \
    X(ROOT_USER_NOT_EXIST, "etcdserver: root user does not exist")             \
    X(ROOT_ROLE_NOT_EXIST, "etcdserver: root user does not have root role")    \
    X(USER_ALREADY_EXIST, "etcdserver: user name already exists")              \
    X(USER_NOT_FOUND, "etcdserver: user name not found")                       \
    X(ROLE_ALREADY_EXIST, "etcdserver: role name already exists")              \
    X(ROLE_NOT_FOUND, "etcdserver: role name not found")                       \
    X(ROLE_NOT_GRANTED, "etcdserver: role is not granted to the user")         \
    X(PERMISSION_NOT_GRANTED,                                                  \
      "etcdserver: permission is not granted to the role")                     \
    X(AUTH_NOT_ENABLED, "etcdserver: authentication is not enabled")           \
    X(PERMISSION_NOT_GIVEN, "etcdserver: permission not given")                \
    X(UNMARSHAL, "grpc: error unmarshalling request: malformed message")       \
    X(ELECTION_NOT_LEADER, "election: not leader")                             \
    X(ELECTION_NO_LEADER, "election: no leader")                               \
    X(LEADER_KEY_MISSING, "\"leader\" field must be provided")                 \
    X(SESSION_EXPIRED, "mutex: session is expired")                            \
    X(RECIPE_LEASE_NOT_FOUND, "etcdserver: requested lease not found")         \
    X(RECIPE_KEY_NOT_PROVIDED, "etcdserver: key is not provided")              \
    X(RECIPE_PERMISSION_DENIED, "etcdserver: permission denied")               \
    X(RECIPE_USER_EMPTY, "etcdserver: user name is empty")                     \
    X(RECIPE_INVALID_AUTH_TOKEN, "etcdserver: invalid auth token")             \
    X(MEMBER_REMOVED,                                                          \
      "etcdserver: the member has been permanently removed from the cluster")  \
    X(AUTH_VERIFY_ONLY, "auth: token signing attempted with verify-only key")  \
    X(NOT_ENOUGH_STARTED,                                                      \
      "etcdserver: re-configuration failed due to not enough started "         \
      "members")                                                               \
    X(UNHEALTHY, "etcdserver: unhealthy cluster")                              \
    X(MEMBER_BAD_URLS, "etcdserver: given member URLs are invalid")

#define ERR_BASE 10000

/* Position of each code in the table: ERR_IDX_KEY_NOT_PROVIDED == 0, ... */
enum err_index {
#define X(name, msg) ERR_IDX_##name,
    ERR_TABLE(X)
#undef X
        ERR_IDX__COUNT
};

/* The codes themselves: -10001, -10002, ... in table order. */
enum err_code {
#define X(name, msg) ERR_##name = -(ERR_BASE + 1 + ERR_IDX_##name),
    ERR_TABLE(X)
#undef X
};

/* Message for a code: ours, -errno, or 0 ("ok"). Never NULL. */
const char *err_str(int code);

/* The reason beside a code: snprintf into msg, unless msg is NULL or
 * msg_len 0 (callers that do not want it pass those). */
void err_msg(char *msg, size_t msg_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Name of one of our codes ("NOSPACE"), or NULL for an errno or unknown. */
const char *err_name(int code);

/* True when code is one of Cairn's own codes (not an errno). */
static inline int err_is_ours(int code)
{
    return code <= -(ERR_BASE + 1) && code > -(ERR_BASE + 1 + ERR_IDX__COUNT);
}

#endif

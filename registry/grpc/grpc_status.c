/*
 * grpc_status.c - the one table from Cairn's error codes to gRPC status
 * codes, and from gRPC codes to the HTTP statuses of the JSON gateway
 * (STYLE.md section 5: no other code invents status codes).
 *
 * The gRPC code of each etcd error follows etcd's rpctypes table
 * (shared/reference/etcd-api.md section 1.6); clients key retries on the
 * code (Unavailable is retried) and typed errors on the message text, which
 * is err_str(err). The HTTP column is grpc-gateway v1's HTTPStatusFromCode,
 * which etcd 3.4 and 3.5 serve.
 */
#include <errno.h>

#include "base/err.h"
#include "registry/grpc/grpc.h"

enum grpc_code grpc_code_from_err(int err)
{
    switch (err) {
    case 0:
        return GRPC_OK;
    case ERR_KEY_NOT_PROVIDED:
    case ERR_KEY_NOT_FOUND:
    case ERR_VALUE_PROVIDED:
    case ERR_LEASE_PROVIDED:
    case ERR_TOO_MANY_OPS:
    case ERR_DUPLICATE_KEY:
    case ERR_REQUEST_TOO_LARGE:
    case ERR_KEY_TOO_LARGE:
    case ERR_VALUE_TOO_LARGE:
    case ERR_INVALID_RANGE:
    case ERR_BAD_COMPARE:
    case ERR_BAD_REQUEST:
    case ERR_INVALID:
    case ERR_USER_EMPTY:
    case ERR_ROLE_EMPTY:
    case ERR_AUTH_FAILED:
    case ERR_INVALID_AUTH_MGMT:
    case ERR_AUTH_OLD_REVISION:
    case ERR_PERMISSION_NOT_GIVEN:
    case ERR_MEMBER_BAD_URLS:
        return GRPC_INVALID_ARGUMENT;
    case ERR_COMPACTED:
    case ERR_FUTURE_REV:
    case ERR_LEASE_TTL_TOO_LARGE:
    case ERR_END:
        return GRPC_OUT_OF_RANGE;
    case ERR_NOSPACE:
    case ERR_TOO_MANY_REQUESTS:
    case ERR_BUSY:
    case ERR_LIMIT:
    case -ENOMEM:
        return GRPC_RESOURCE_EXHAUSTED;
    case ERR_LEASE_NOT_FOUND:
    case ERR_MEMBER_NOT_FOUND:
    case ERR_NOT_FOUND:
        return GRPC_NOT_FOUND;
    case ERR_EXISTS:
        return GRPC_ALREADY_EXISTS;
    case ERR_LEASE_EXISTS:
    case ERR_MEMBER_EXISTS:
    case ERR_PEER_URL_EXISTS:
    case ERR_LEARNER_NOT_READY:
    case ERR_NOT_LEARNER:
    case ERR_TOO_MANY_LEARNERS:
    case ERR_NOT_ENOUGH_STARTED:
    case ERR_NOT_LEADER:
    case ERR_BAD_LEADER_TRANSFEREE:
    case ERR_ROOT_USER_NOT_EXIST:
    case ERR_ROOT_ROLE_NOT_EXIST:
    case ERR_USER_ALREADY_EXIST:
    case ERR_USER_NOT_FOUND:
    case ERR_ROLE_ALREADY_EXIST:
    case ERR_ROLE_NOT_FOUND:
    case ERR_ROLE_NOT_GRANTED:
    case ERR_PERMISSION_NOT_GRANTED:
    case ERR_AUTH_NOT_ENABLED:
        return GRPC_FAILED_PRECONDITION;
    case ERR_UNMARSHAL:
        return GRPC_INTERNAL;
    case ERR_PERMISSION_DENIED:
        return GRPC_PERMISSION_DENIED;
    case ERR_INVALID_AUTH_TOKEN:
        return GRPC_UNAUTHENTICATED;
    case ERR_NO_LEADER:
    case ERR_LEADER_CHANGED:
    case ERR_STOPPED:
    case ERR_TIMEOUT:
    case ERR_LOCKED:
    case ERR_PROPOSAL_DROPPED:
    case ERR_UNHEALTHY:
        return GRPC_UNAVAILABLE;
    case ERR_CORRUPT_CLUSTER:
    case ERR_CORRUPT:
    case ERR_TRUNCATED:
        return GRPC_DATA_LOSS;
    case ERR_CANCELED:
    case -ECANCELED:
        return GRPC_CANCELLED;
    case -ETIMEDOUT:
        return GRPC_DEADLINE_EXCEEDED;
    case ERR_BAD_MAGIC:
    case ERR_BAD_VERSION:
    case ERR_FAILED:
        return GRPC_INTERNAL;
    default:
        return GRPC_UNKNOWN;
    }
}

int grpc_code_http_status(enum grpc_code code)
{
    switch (code) {
    case GRPC_OK:
        return 200;
    case GRPC_CANCELLED:
        return 408;
    case GRPC_INVALID_ARGUMENT:
    case GRPC_OUT_OF_RANGE:
        return 400;
    case GRPC_DEADLINE_EXCEEDED:
        return 504;
    case GRPC_NOT_FOUND:
        return 404;
    case GRPC_ALREADY_EXISTS:
    case GRPC_ABORTED:
        return 409;
    case GRPC_PERMISSION_DENIED:
        return 403;
    case GRPC_UNAUTHENTICATED:
        return 401;
    case GRPC_RESOURCE_EXHAUSTED:
        return 429;
    case GRPC_FAILED_PRECONDITION:
        return 412;
    case GRPC_UNIMPLEMENTED:
        return 501;
    case GRPC_UNAVAILABLE:
        return 503;
    case GRPC_UNKNOWN:
    case GRPC_INTERNAL:
    case GRPC_DATA_LOSS:
    default:
        return 500;
    }
}

const char *grpc_code_name(enum grpc_code code)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if ((unsigned)code >= sizeof(names) / sizeof(names[0])) {
        return "UNKNOWN";
    }
    return names[code];
}

/* The /api/v1/ REST surface (registry, config): the same mapping, with a
 * few rows of its own that its contract fixes (docs/registry.md): an
 * expired session is 410 (the client must register again, which no other
 * status says), a body or value too large is 413, and a failed compare is
 * 409. code is the machine-readable name clients switch on. */
int grpc_api_v1_status(int err, const char **code)
{
    enum grpc_code g;
    switch (err) {
    case ERR_LEASE_NOT_FOUND:
    case ERR_SESSION_EXPIRED:
        *code = "session_expired";
        return 410;
    case ERR_REQUEST_TOO_LARGE:
    case ERR_VALUE_TOO_LARGE:
    case ERR_KEY_TOO_LARGE:
        *code = "too_large";
        return 413;
    case ERR_BAD_REQUEST:
    case ERR_INVALID:
        *code = "bad_request";
        return 400;
    case ERR_NOT_FOUND:
    case ERR_KEY_NOT_FOUND:
        *code = "not_found";
        return 404;
    case ERR_EXISTS:
        *code = "conflict";
        return 409;
    case ERR_USER_EMPTY: /* auth on and no token: etcd says InvalidArgument */
        *code = "unauthenticated";
        return 401;
    default:
        break;
    }
    g = grpc_code_from_err(err);
    switch (g) {
    case GRPC_PERMISSION_DENIED:
        *code = "permission_denied";
        break;
    case GRPC_UNAUTHENTICATED:
        *code = "unauthenticated";
        break;
    case GRPC_RESOURCE_EXHAUSTED:
        *code = "resource_exhausted";
        break;
    case GRPC_UNAVAILABLE:
    case GRPC_DEADLINE_EXCEEDED:
        *code = "unavailable";
        return 503;
    case GRPC_INVALID_ARGUMENT:
    case GRPC_OUT_OF_RANGE:
        *code = "bad_request";
        break;
    case GRPC_FAILED_PRECONDITION:
        *code = "failed_precondition";
        break;
    default:
        *code = "internal";
        break;
    }
    return grpc_code_http_status(g);
}

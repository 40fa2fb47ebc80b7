/*
 * api_int.h - libcairn's shared part of the /api/v1 objects (registry.c,
 * config.c): endpoint lists with failover, calls with error mapping, JSON
 * decoding of instances and releases (not installed).
 *
 * Does:     one HTTP call on the first reachable endpoint, mapping the
 *           status to enum cairn_err and the server's message to errbuf.
 * Owns:     a struct cairn__eps owns copies of the endpoint strings.
 * Threads:  an eps is used by one thread at a time (its owner's lock).
 * Borrowed: arguments during the call only.
 * Errors:   as cairn_api_call in cairn.h.
 * Limits:   CAIRN_ENDPOINTS_MAX endpoints; answers CAIRN_HTTP_BODY_MAX.
 * Not here: sockets and framing (http_int.h).
 */
#ifndef CAIRN_SDK_API_INT_H
#define CAIRN_SDK_API_INT_H

#include <jansson.h>

#include "sdk/http_int.h"
#include "sdk/include/cairn.h"
#include "sdk/tls_int.h"

struct cairn__eps {
    char *ep[CAIRN_ENDPOINTS_MAX];
    size_t count;
    size_t cur; /* the endpoint to try first */
    char *user; /* NULL: no auth */
    char *password;
    char token[CAIRN_TOKEN_MAX]; /* "" until authenticated */
    struct cairn__tls tls;       /* the client's, shared */
};

/* Copies c's endpoints, user, password, token and TLS settings (under its
 * mutex). */
int cairn__eps_copy(struct cairn_client *c, struct cairn__eps *e);
void cairn__eps_free(struct cairn__eps *e);
/* With a user: a token from POST /v3/auth/authenticate (the JSON gateway)
 * when there is none yet, or a new one with renew. 0 without a user.
 * Errors: CAIRN_E_AUTH_FAILED (refused), the transport's. */
int cairn__eps_auth(struct cairn__eps *e, bool renew, int64_t timeout_ms,
                    char *eb, size_t ebn);

/* HTTP status -> error (0 for 2xx). */
int cairn__status_to_err(int status);

/* One call with failover. idempotent: also moves on after a connection
 * broke once the request was sent. On a 4xx/5xx returns the mapped error
 * with *out holding the answer, and "<code>: <message>" in errbuf. */
int cairn__api(struct cairn__eps *e, const char *method, const char *path,
               const char *body, bool idempotent, int64_t timeout_ms,
               struct cairn__http_resp *out, char *errbuf, size_t errbuf_size);

/* A name of the API: 1-128 bytes of [A-Za-z0-9._-], not "." or "..". */
bool cairn__name_ok(const char *s);

/* Sleeps up to ms in 50 ms steps while *stop stays false. */
void cairn__nap(const volatile bool *stop, int64_t ms);

/* Instance document -> struct; CAIRN_E_BAD_RESPONSE without an id. */
int cairn__instance_from_json(const json_t *o, struct cairn_instance *out);

/* Release JSON -> struct (content copied); CAIRN_E_BAD_RESPONSE when a
 * required field is missing. */
int cairn__release_from_json(const json_t *o, struct cairn_config_release *out);

#endif

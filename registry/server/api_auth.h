/*
 * api_auth.h - etcd's Auth service and the permission checks of every RPC
 * (registry/server/api_auth.c).
 *
 * Does:     the 17 Auth RPCs (api_auth_methods[]); api_auth_check, which
 *           api_call runs before a method; token -> user for streams.
 * Owns:     the struct auth it creates (api_auth_new / api_auth_free).
 * Threads:  the loop thread; bcrypt runs on libuv's thread pool.
 * Borrowed: nothing is kept from the arguments after a call returns.
 * Errors:   etcd's auth errors (consensus/auth/auth.h), ERR_INVALID_AUTH_TOKEN,
 *           ERR_PERMISSION_DENIED, ERR_USER_EMPTY, and node_propose's.
 * Limits:   consensus/auth's.
 * Not here: the auth state and its rules (consensus/auth), applying
 *           (consensus/apply).
 */
#ifndef CAIRN_REGISTRY_API_AUTH_H
#define CAIRN_REGISTRY_API_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "consensus/auth/auth.h"
#include "registry/server/server.h"

extern const struct api_method api_auth_methods[];
extern const size_t api_auth_methods_count;

/* Create the auth store from the options (--bcrypt-cost,
 * --auth-token-ttl); hand it to node_config.auth before node_open and free
 * it after the node has closed. */
int api_auth_new(const struct options *o, struct auth **out);
void api_auth_free(struct auth *a);

/* Run before op->m->fn(op, req), with op->token set (the "token" metadata,
 * or the gateway's Authorization header; NULL when absent). Returns 0 when
 * the call may go on, else the error to answer it with:
 * ERR_INVALID_AUTH_TOKEN (a token that is unknown or expired),
 * ERR_USER_EMPTY (auth on and no token, for a call that needs a user),
 * ERR_PERMISSION_DENIED, ERR_USER_NOT_FOUND (admin calls), or a store error
 * (LeaseRevoke reads the lease's keys). With auth off it returns 0 at once,
 * whatever the token. It never answers op itself. */
int api_auth_check(struct api_op *op, const ProtobufCMessage *req);

/* The user a token names (user[0] = 0 when token is NULL/empty or auth is
 * off): 0 or ERR_INVALID_AUTH_TOKEN. Refreshes the token's TTL. */
int api_auth_user(struct server *s, const char *token, char *user, size_t cap);

/* The user of a request that carries token, or else, with auth on, the
 * verified client certificate's CN cert_user (--client-cert-auth; NULL or
 * "" when none): etcd's rule, a token wins. 0, ERR_INVALID_AUTH_TOKEN, or
 * ERR_PERMISSION_DENIED for a CN too long to be a user name (never cut
 * into another name). */
int api_auth_user_as(struct server *s, const char *token, const char *cert_user,
                     char *user, size_t cap);

/* api_auth_range_check for a request with token or else cert_user. */
int api_auth_range_check_as(struct server *s, const char *token,
                            const char *cert_user, const uint8_t *key,
                            size_t key_len, const uint8_t *range_end,
                            size_t range_end_len);

struct grpc_call;

/* The auth token a gRPC call carries: its "token" metadata, else its
 * "authorization" metadata (etcd's fallback), else NULL. Borrowed until
 * the call ends. The streams that api_call does not run (Watch, Snapshot)
 * read it here, as server.c does for unary calls. */
const char *api_auth_grpc_token(const struct grpc_call *call);

/* For calls api_call does not run (Maintenance.Snapshot): is the caller
 * root? token as the "token" metadata (NULL when absent), cert_user the
 * verified client certificate's CN under --client-cert-auth (NULL if
 * none), used only without a token. 0 (also with auth off),
 * ERR_INVALID_AUTH_TOKEN, ERR_USER_EMPTY, ERR_PERMISSION_DENIED. */
int api_auth_admin(struct server *s, const char *token, const char *cert_user);

/* For watch creates: may token's user read [key, range_end)? 0,
 * ERR_INVALID_AUTH_TOKEN, ERR_USER_EMPTY, ERR_PERMISSION_DENIED. */
int api_auth_range_check(struct server *s, const char *token,
                         const uint8_t *key, size_t key_len,
                         const uint8_t *range_end, size_t range_end_len);

/* The same for a user named directly: the CN of a verified TLS client
 * certificate under --client-cert-auth (api_call_cert). A name too long
 * to be a user's is ERR_PERMISSION_DENIED. */
int api_auth_range_check_user(struct server *s, const char *user,
                              const uint8_t *key, size_t key_len,
                              const uint8_t *range_end, size_t range_end_len);

#endif

/*
 * auth.h - users, roles, key-range permissions and simple tokens (etcd v3's
 * auth store).
 *
 * Does:     keeps the replicated auth state (enabled flag, auth revision,
 *           users with bcrypt password hashes and roles, roles with
 *           [key, range_end) READ/WRITE/READWRITE permissions) in memory,
 *           mirrored in the store's KV_AUX_AUTH table; changes it only by
 *           applying committed requests (auth_apply); answers permission
 *           checks; and keeps this member's simple tokens (random, with a
 *           TTL refreshed on use; not replicated).
 * Owns:     its struct (caller-allocated), a mutex, every user/role/token
 *           record (mem_alloc), and nothing in the store but its aux table.
 * Threads:  every function may be called from any thread; a mutex guards
 *           the state. auth_apply runs on the apply thread inside the
 *           batch's write handle; checks and tokens on the loop thread.
 *           auth_password_hash/verify are slow (bcrypt) and take no lock:
 *           run them off the event loop.
 * Borrowed: auth_lock() returns the state; its pointers stay valid until
 *           auth_unlock(). Everything else copies.
 * Errors:   etcd's auth errors from base/err.h (ERR_USER_EMPTY,
 *           ERR_ROLE_EMPTY, ERR_AUTH_FAILED, ERR_INVALID_AUTH_MGMT,
 *           ERR_ROOT_USER_NOT_EXIST, ERR_ROOT_ROLE_NOT_EXIST,
 *           ERR_USER_ALREADY_EXIST, ERR_USER_NOT_FOUND,
 *           ERR_ROLE_ALREADY_EXIST, ERR_ROLE_NOT_FOUND, ERR_ROLE_NOT_GRANTED,
 *           ERR_PERMISSION_NOT_GRANTED, ERR_PERMISSION_NOT_GIVEN,
 *           ERR_AUTH_NOT_ENABLED, ERR_PERMISSION_DENIED,
 *           ERR_INVALID_AUTH_TOKEN), ERR_LIMIT past a bound below, ERR_CORRUPT
 *           for a record that does not decode, -ENOMEM, and the store's.
 * Limits:   AUTH_USERS_MAX, AUTH_ROLES_MAX, AUTH_PERMS_PER_ROLE_MAX,
 *           AUTH_ROLES_PER_USER_MAX, AUTH_NAME_BYTES_MAX, AUTH_TOKENS_MAX.
 * Not here: which RPC needs which permission and reading the token from
 *           request metadata (registry/server/api_auth.c); proposing
 *           (consensus/node); the envelope (consensus/apply).
 *
 * Semantics (etcd 3.4's auth/store.go, shared/reference/etcd-api.md 1.3,
 * 1.5.9, 1.6): enabling needs user "root" holding role "root"; with auth on,
 * "root" cannot be deleted nor lose role "root", and role "root" cannot be
 * deleted (ERR_INVALID_AUTH_MGMT). Role "root" may be granted before it
 * exists and allows everything. Every successful change adds one to the
 * auth revision. Deleting or re-passwording a user, and disabling auth,
 * drop that user's (every) token on this member. Permissions: a single key
 * (range_end empty), [key, range_end), or every key >= key (range_end
 * "\0"); a request is allowed when the union of the user's roles' grants of
 * the wanted type covers the whole requested interval.
 *
 * Records in KV_AUX_AUTH (name -> value); every value starts with a 4-byte
 * magic and a version byte:
 *
 *   name            value
 *   "meta"          "CAUM" | u8 version 1 | u8 enabled | be64 revision
 *   "u" + user      "CAUU" | u8 version 1 | authpb.User (protobuf; password
 *                   holds the crypt(3) hash, "" with options.no_password)
 *   "r" + role      "CAUR" | u8 version 1 | authpb.Role (protobuf)
 *
 * Requests in cairnpb.InternalRequest (proto/cairn.proto), field numbers
 * enum auth_op. UserAdd and UserChangePassword carry the hash in
 * hashedPassword (computed by the proposer) and never the clear password,
 * so the log holds no secrets and every member stores the same hash.
 */
#ifndef CAIRN_CONSENSUS_AUTH_H
#define CAIRN_CONSENSUS_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consensus/kv/kv.h"
#include "proto/cairn.pb-c.h"

#define AUTH_USERS_MAX          65536
#define AUTH_ROLES_MAX          65536
#define AUTH_PERMS_PER_ROLE_MAX 512 /* a role record stays < 1.5 MiB */
#define AUTH_PERM_KEY_BYTES_MAX 1024
#define AUTH_ROLES_PER_USER_MAX 1024
#define AUTH_NAME_BYTES_MAX     256 /* an aux name is <= 400 bytes */
#define AUTH_TOKENS_MAX         100000
#define AUTH_HASH_BYTES_MAX     128 /* a crypt(3) bcrypt string is 60 */
#define AUTH_TOKEN_BYTES_MAX    48  /* 16 letters, '.', a decimal u64 */
#define AUTH_TOKEN_BUCKETS      4096

#define AUTH_ROOT "root"

/* Field numbers in cairnpb.InternalRequest (cast to enum apply_op). */
enum auth_op {
    AUTH_OP_ENABLE = 20,
    AUTH_OP_DISABLE = 21,
    AUTH_OP_USER_ADD = 22,
    AUTH_OP_USER_DELETE = 23,
    AUTH_OP_USER_CHANGE_PASSWORD = 24,
    AUTH_OP_USER_GRANT_ROLE = 25,
    AUTH_OP_USER_REVOKE_ROLE = 26,
    AUTH_OP_ROLE_ADD = 27,
    AUTH_OP_ROLE_DELETE = 28,
    AUTH_OP_ROLE_GRANT_PERMISSION = 29,
    AUTH_OP_ROLE_REVOKE_PERMISSION = 30,
};

/* authpb.Permission.Type */
enum auth_perm_type {
    AUTH_PERM_READ = 0,
    AUTH_PERM_WRITE = 1,
    AUTH_PERM_READWRITE = 2,
};

struct auth_perm {
    enum auth_perm_type type;
    uint8_t *key;
    size_t key_len;
    uint8_t *end; /* NULL/0: one key; "\0": every key >= key */
    size_t end_len;
};

struct auth_role {
    char *name;
    struct auth_perm *perms; /* sorted by (key, end) */
    size_t perms_count;
};

struct auth_user {
    char *name;
    char *hash; /* crypt(3) string; "" when no_password */
    bool no_password;
    char **roles; /* sorted, distinct */
    size_t roles_count;
};

/* The replicated part. Arrays of pointers sorted by name. */
struct auth_state {
    bool enabled;
    uint64_t revision;
    struct auth_user **users;
    size_t users_count;
    struct auth_role **roles;
    size_t roles_count;
};

struct auth_token;

/* This member's simple tokens (a chained hash table). */
struct auth_tokens {
    struct auth_token *buckets[AUTH_TOKEN_BUCKETS];
    size_t count;
    uint64_t serial; /* the number after the '.' */
};

struct auth_config {
    unsigned bcrypt_cost;  /* 4..31; etcd's --bcrypt-cost (10) */
    uint64_t token_ttl_ms; /* etcd's --auth-token-ttl (300 s) */
};

struct auth {
    pthread_mutex_t mu;
    struct auth_config cfg;
    struct auth_state st;
    struct auth_tokens tok;
};

/* ---------------------------------------------------------- lifecycle */

/* Empty state (auth disabled, revision 0). cfg copied. */
int auth_init(struct auth *a, const struct auth_config *cfg);
void auth_close(struct auth *a);

/* Replace the state with the store's records (at start, and after a
 * snapshot install); drops every token. ERR_CORRUPT for a bad record. */
int auth_load(struct auth *a, struct kv_read *rd);

/* ------------------------------------------------------------- apply */

/* True when kind (an InternalRequest oneof case) is one of enum auth_op. */
bool auth_is_request(int kind);

/* Apply one committed auth request inside the batch's write handle: the
 * state and its records change together. The request's own errors (see
 * the top) leave both as they were. Store errors are returned as they are:
 * the batch fails and the node stops, so memory never outlives it. */
int auth_apply(struct auth *a, struct kv_write *wr,
               const Cairnpb__InternalRequest *req);

/* ---------------------------------------------------- pure state ops
 * These change a bare state (no lock, no store); auth_apply uses them and
 * unit tests drive them directly. names are NUL-terminated. */
void auth_state_free(struct auth_state *st);
struct auth_user *auth_state_user(const struct auth_state *st,
                                  const char *name);
struct auth_role *auth_state_role(const struct auth_state *st,
                                  const char *name);
bool auth_user_has_role(const struct auth_user *u, const char *role);

/* Is user allowed `want` (READ or WRITE) on [key, end) (end as in a
 * RangeRequest: empty = one key, "\0" = from key)? 0, ERR_USER_EMPTY (no
 * user name), ERR_PERMISSION_DENIED (unknown user or not covered). Auth
 * disabled allows everything. */
int auth_state_check(const struct auth_state *st, const char *user,
                     enum auth_perm_type want, const uint8_t *key,
                     size_t key_len, const uint8_t *end, size_t end_len);

/* Admin (role root) check: 0 when auth is off or user holds role root;
 * ERR_USER_EMPTY, ERR_USER_NOT_FOUND, ERR_PERMISSION_DENIED. */
int auth_state_admin(const struct auth_state *st, const char *user);

/* Encode/decode one record value (see the table above). */
int auth_user_encode(const struct auth_user *u, uint8_t **out, size_t *len);
int auth_user_decode(const void *v, size_t len, struct auth_user **out);
int auth_role_encode(const struct auth_role *r, uint8_t **out, size_t *len);
int auth_role_decode(const void *v, size_t len, struct auth_role **out);
void auth_user_free(struct auth_user *u);
void auth_role_free(struct auth_role *r);

/* ------------------------------------------------------------- reads */

/* The state, locked; borrowed until auth_unlock. */
const struct auth_state *auth_lock(struct auth *a);
void auth_unlock(struct auth *a);

bool auth_enabled(struct auth *a);
uint64_t auth_revision(struct auth *a);

/* auth_state_check / auth_state_admin under the lock. */
int auth_check(struct auth *a, const char *user, enum auth_perm_type want,
               const uint8_t *key, size_t key_len, const uint8_t *end,
               size_t end_len);
int auth_check_admin(struct auth *a, const char *user);

/* Copy user's password hash into hash[cap] for a password check:
 * ERR_AUTH_NOT_ENABLED, ERR_AUTH_FAILED (unknown user, no password). */
int auth_user_hash(struct auth *a, const char *user, char *hash, size_t cap);

/* ------------------------------------------------------------ tokens */

/* A new token for user, valid token_ttl_ms from now_ms: written to
 * out[cap] (cap >= AUTH_TOKEN_BYTES_MAX). ERR_AUTH_NOT_ENABLED, ERR_BUSY
 * (AUTH_TOKENS_MAX live tokens), ERR_INVALID (no randomness), -ENOMEM. */
int auth_token_new(struct auth *a, const char *user, uint64_t now_ms, char *out,
                   size_t cap);

/* The user of a live token, copied to user[cap]; refreshes its TTL.
 * ERR_INVALID_AUTH_TOKEN when unknown or expired. */
int auth_token_user(struct auth *a, const char *token, uint64_t now_ms,
                    char *user, size_t cap);

/* Drop expired tokens (bounded: all of them, once). */
void auth_token_sweep(struct auth *a, uint64_t now_ms);
size_t auth_token_count(struct auth *a);

/* --------------------------------------------------------- passwords */

/* bcrypt ("$2b$", cost) of password into out[cap] (cap >=
 * AUTH_HASH_BYTES_MAX). Slow by design. ERR_INVALID (cost, no
 * randomness), ERR_LIMIT (password longer than 72 bytes is cut by bcrypt;
 * we refuse past 1024). */
int auth_password_hash(const char *password, unsigned cost, char *out,
                       size_t cap);

/* 0 when password matches hash (any crypt(3) bcrypt form, "$2a$" from
 * etcd included), else ERR_AUTH_FAILED. Slow by design. */
int auth_password_verify(const char *password, const char *hash);

#endif

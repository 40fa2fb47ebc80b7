/*
 * auth_jwt.h - etcd's JWT auth tokens (--auth-token jwt,...), OpenSSL 3.
 *
 * Does:     parses etcd's --auth-token spec "jwt,pub-key=P,priv-key=K,
 *           sign-method=M,ttl=D" and loads the keys at start; signs a
 *           token for a user at an auth revision; verifies a token and
 *           reads back its user and revision. Tokens are etcd's: a JWS in
 *           compact form, header {"alg":M,"typ":"JWT"}, claims {"exp":
 *           unix seconds,"revision":auth revision,"username":user}, so a
 *           token signed by etcd 3.4 with the same key is taken here and
 *           the other way round.
 * Methods:  RS256/384/512 and PS256/384/512 (RSA keys), ES256/384/512 (EC
 *           keys on P-256/P-384/P-521, signatures as JWS's r||s), HS256/
 *           384/512 (the priv-key file's bytes are the secret, as etcd).
 *           Without priv-key the member only verifies (etcd's verify-only
 *           mode: Authenticate fails).
 * Owns:     the keys; struct auth_jwt itself (auth_jwt_free).
 * Threads:  any after auth_jwt_open; no shared mutable state.
 * Errors:   auth_jwt_open: ERR_INVALID with msg naming the option, file
 *           and reason. verify: ERR_INVALID_AUTH_TOKEN for anything wrong
 *           (format, signature, algorithm other than the configured one,
 *           expired); sign: ERR_AUTH_VERIFY_ONLY in verify-only mode
 *           (etcd's ErrVerifyOnly, which clients see as gRPC Unknown).
 * Limits:   tokens up to AUTH_JWT_TOKEN_MAX bytes, key files up to 64 KiB.
 * Not here: the revision check against the auth store (api_auth.c), the
 *           simple tokens (consensus/auth).
 */
#ifndef CAIRN_REGISTRY_SERVER_AUTH_JWT_H
#define CAIRN_REGISTRY_SERVER_AUTH_JWT_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_JWT_TOKEN_MAX     1024
#define AUTH_JWT_TTL_DEFAULT_S 300 /* etcd's ttl=5m */

struct auth_jwt;

/* spec is the whole --auth-token value ("jwt,..."). */
int auth_jwt_open(const char *spec, struct auth_jwt **out, char *msg,
                  size_t msg_len);
void auth_jwt_free(struct auth_jwt *j);

/* A token for user at auth revision rev, valid ttl from now_s. */
int auth_jwt_sign(const struct auth_jwt *j, const char *user, uint64_t rev,
                  uint64_t now_s, char *out, size_t cap);

/* The user (into user[cap]) and auth revision of a valid token. */
int auth_jwt_verify(const struct auth_jwt *j, const char *token, uint64_t now_s,
                    char *user, size_t cap, uint64_t *rev);

#endif

/* auth_int.h - private to consensus/auth: token table helpers. The caller
 * holds the auth mutex. */
#ifndef CAIRN_CONSENSUS_AUTH_INT_H
#define CAIRN_CONSENSUS_AUTH_INT_H

#include "consensus/auth/auth.h"

/* Drop every token. */
void auth__tokens_clear(struct auth_tokens *t);

/* Drop the tokens of one user (deleted, or its password changed). */
void auth__tokens_drop_user(struct auth_tokens *t, const char *user);

/* Fill out[0..n) with random letters (OpenSSL RAND_bytes); ERR_INVALID
 * when the generator fails. */
int auth__random_letters(char *out, size_t n);

#endif

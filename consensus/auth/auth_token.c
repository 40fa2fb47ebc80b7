/*
 * auth_token.c - this member's simple tokens and the password hashes.
 *
 * A simple token is 16 random letters, a dot and a serial number, like
 * etcd's ("MmfvttTYnyOpBkKv.26"). It names a user for token_ttl_ms after
 * its last use (etcd's --auth-token-ttl, refreshed on each use). Tokens
 * live only in this member's memory: a client that fails over to another
 * member gets "invalid auth token" and authenticates again, as the Go
 * client does by itself.
 *
 * Passwords are bcrypt hashes from libxcrypt (crypt_gensalt_rn with the
 * "$2b$" prefix and OpenSSL random bytes, then crypt_r); checks compare in
 * constant time. Both cost milliseconds per call by design, so callers
 * keep them off the event loop and outside the auth mutex.
 */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "consensus/auth/auth.h"
#include "consensus/auth/auth_int.h"

struct auth_token {
    struct auth_token *next;
    uint64_t expires_ms;
    char *user;
    char token[AUTH_TOKEN_BYTES_MAX];
};

static size_t bucket_of(const char *token)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = token; *p != '\0'; p++) {
        h ^= (uint8_t)*p;
        h *= 16777619u;
    }
    return h % AUTH_TOKEN_BUCKETS;
}

static void token_free(struct auth_token *t)
{
    mem_free(t->user);
    mem_free(t);
}

void auth__tokens_clear(struct auth_tokens *t)
{
    for (size_t i = 0; i < AUTH_TOKEN_BUCKETS; i++) {
        struct auth_token *e = t->buckets[i];
        while (e != NULL) {
            struct auth_token *next = e->next;
            token_free(e);
            e = next;
        }
        t->buckets[i] = NULL;
    }
    t->count = 0;
}

/* Drop the entries of every bucket for which drop() says so. */
static void tokens_filter(struct auth_tokens *t,
                          bool (*drop)(const struct auth_token *e,
                                       const void *arg),
                          const void *arg)
{
    for (size_t i = 0; i < AUTH_TOKEN_BUCKETS; i++) {
        struct auth_token **pp = &t->buckets[i];
        while (*pp != NULL) {
            struct auth_token *e = *pp;
            if (drop(e, arg)) {
                *pp = e->next;
                token_free(e);
                ASSERT(t->count > 0);
                t->count--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static bool is_user(const struct auth_token *e, const void *arg)
{
    return strcmp(e->user, (const char *)arg) == 0;
}

static bool is_expired(const struct auth_token *e, const void *arg)
{
    return e->expires_ms <= *(const uint64_t *)arg;
}

void auth__tokens_drop_user(struct auth_tokens *t, const char *user)
{
    tokens_filter(t, is_user, user);
}

void auth_token_sweep(struct auth *a, uint64_t now_ms)
{
    pthread_mutex_lock(&a->mu);
    tokens_filter(&a->tok, is_expired, &now_ms);
    pthread_mutex_unlock(&a->mu);
}

size_t auth_token_count(struct auth *a)
{
    size_t n;
    pthread_mutex_lock(&a->mu);
    n = a->tok.count;
    pthread_mutex_unlock(&a->mu);
    return n;
}

int auth__random_letters(char *out, size_t n)
{
    static const char letters[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    uint8_t rnd[64];
    size_t got = 0;
    /* Rejection sampling keeps the letters uniform: 208 = 4 * 52. */
    for (int round = 0; round < 16 && got < n; round++) {
        if (RAND_bytes(rnd, (int)sizeof(rnd)) != 1) {
            return ERR_INVALID;
        }
        for (size_t i = 0; i < sizeof(rnd) && got < n; i++) {
            if (rnd[i] < 208) {
                out[got++] = letters[rnd[i] % 52];
            }
        }
    }
    return got == n ? 0 : ERR_INVALID;
}

static int token_insert(struct auth *a, const char *user, uint64_t now_ms,
                        const char *letters, char *out, size_t cap)
{
    struct auth_token *e = mem_calloc(1, sizeof(*e));
    size_t b;
    if (e == NULL) {
        return -ENOMEM;
    }
    e->user = mem_dup(user, strlen(user) + 1);
    if (e->user == NULL) {
        mem_free(e);
        return -ENOMEM;
    }
    a->tok.serial++;
    snprintf(e->token, sizeof(e->token), "%.16s.%llu", letters,
             (unsigned long long)a->tok.serial);
    e->expires_ms = now_ms + a->cfg.token_ttl_ms;
    b = bucket_of(e->token);
    e->next = a->tok.buckets[b];
    a->tok.buckets[b] = e;
    a->tok.count++;
    snprintf(out, cap, "%s", e->token);
    return 0;
}

int auth_token_new(struct auth *a, const char *user, uint64_t now_ms, char *out,
                   size_t cap)
{
    char letters[16];
    int rc;
    if (cap < AUTH_TOKEN_BYTES_MAX) {
        return ERR_INVALID;
    }
    rc = auth__random_letters(letters, sizeof(letters));
    if (rc != 0) {
        return rc;
    }
    pthread_mutex_lock(&a->mu);
    if (!a->st.enabled) {
        rc = ERR_AUTH_NOT_ENABLED;
    } else {
        if (a->tok.count >= AUTH_TOKENS_MAX) {
            tokens_filter(&a->tok, is_expired, &now_ms);
        }
        rc = a->tok.count >= AUTH_TOKENS_MAX ? ERR_BUSY : 0;
    }
    if (rc == 0) {
        rc = token_insert(a, user, now_ms, letters, out, cap);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int auth_token_user(struct auth *a, const char *token, uint64_t now_ms,
                    char *user, size_t cap)
{
    struct auth_token **pp;
    int rc = ERR_INVALID_AUTH_TOKEN;
    if (strnlen(token, AUTH_TOKEN_BYTES_MAX) >= AUTH_TOKEN_BYTES_MAX) {
        return ERR_INVALID_AUTH_TOKEN;
    }
    pthread_mutex_lock(&a->mu);
    pp = &a->tok.buckets[bucket_of(token)];
    while (*pp != NULL) {
        struct auth_token *e = *pp;
        if (strcmp(e->token, token) != 0) {
            pp = &e->next;
            continue;
        }
        if (e->expires_ms <= now_ms) {
            *pp = e->next; /* expired: forget it */
            token_free(e);
            a->tok.count--;
            break;
        }
        e->expires_ms = now_ms + a->cfg.token_ttl_ms;
        if (strlen(e->user) < cap) {
            strcpy(user, e->user);
            rc = 0;
        } else {
            rc = ERR_LIMIT;
        }
        break;
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* ---------------------------------------------------------- passwords */

#define PASSWORD_BYTES_MAX 1024

int auth_password_hash(const char *password, unsigned cost, char *out,
                       size_t cap)
{
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    uint8_t rnd[16];
    struct crypt_data *cd;
    int rc = 0;
    if (cost < 4 || cost > 31 || cap < AUTH_HASH_BYTES_MAX) {
        return ERR_INVALID;
    }
    if (strlen(password) > PASSWORD_BYTES_MAX) {
        return ERR_LIMIT;
    }
    if (RAND_bytes(rnd, (int)sizeof(rnd)) != 1) {
        return ERR_INVALID;
    }
    if (crypt_gensalt_rn("$2b$", cost, (const char *)rnd, (int)sizeof(rnd),
                         setting, (int)sizeof(setting)) == NULL) {
        return ERR_INVALID;
    }
    cd = mem_calloc(1, sizeof(*cd)); /* 32 KiB: not on the stack */
    if (cd == NULL) {
        return -ENOMEM;
    }
    if (crypt_r(password, setting, cd) == NULL || cd->output[0] == '*' ||
        strlen(cd->output) >= cap) {
        rc = ERR_INVALID;
    } else {
        strcpy(out, cd->output);
    }
    OPENSSL_cleanse(cd, sizeof(*cd));
    mem_free(cd);
    return rc;
}

int auth_password_verify(const char *password, const char *hash)
{
    struct crypt_data *cd;
    size_t n = strlen(hash);
    int rc = ERR_AUTH_FAILED;
    if (n == 0 || hash[0] != '$' || strlen(password) > PASSWORD_BYTES_MAX) {
        return ERR_AUTH_FAILED;
    }
    cd = mem_calloc(1, sizeof(*cd));
    if (cd == NULL) {
        return -ENOMEM;
    }
    if (crypt_r(password, hash, cd) != NULL && strlen(cd->output) == n &&
        CRYPTO_memcmp(cd->output, hash, n) == 0) {
        rc = 0;
    }
    OPENSSL_cleanse(cd, sizeof(*cd));
    mem_free(cd);
    return rc;
}

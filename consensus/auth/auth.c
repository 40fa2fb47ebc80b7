/*
 * auth.c - the auth store: loading from the store, applying committed
 * requests, and the locked readers the API layer uses.
 *
 * Happy path of auth_apply(): under the mutex, check the request against
 * the state (etcd 3.4's auth/store.go rules), build the changed user or
 * role as a new record (a clone of the old one with the change), write it
 * and the meta record (new auth revision) into the batch's write handle,
 * and only then swap the new record into the in-memory state, so a refused
 * request changes neither.
 *
 * Failure modes: a refused request returns its etcd error and touches
 * nothing. A store error while writing records returns that error; the
 * batch then fails as a whole and the node stops (apply.h), so the
 * in-memory state never survives a store that lacks it. The one request
 * that writes several records (RoleDelete: the role and every user that
 * held it) writes only records whose size is bounded far below the store's
 * value limit, so it fails only with the store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/err.h"
#include "consensus/auth/auth.h"
#include "consensus/auth/auth_int.h"

STATIC_ASSERT(AUTH_NAME_BYTES_MAX + 1 <= 400, "aux names are <= 400 bytes");

/* ---------------------------------------------------------- lifecycle */

int auth_init(struct auth *a, const struct auth_config *cfg)
{
    int rc;
    memset(a, 0, sizeof(*a));
    a->cfg = *cfg;
    if (a->cfg.bcrypt_cost == 0) {
        a->cfg.bcrypt_cost = 10;
    }
    if (a->cfg.token_ttl_ms == 0) {
        a->cfg.token_ttl_ms = 300000;
    }
    rc = pthread_mutex_init(&a->mu, NULL);
    return rc == 0 ? 0 : -rc;
}

void auth_close(struct auth *a)
{
    auth__tokens_clear(&a->tok);
    auth_state_free(&a->st);
    pthread_mutex_destroy(&a->mu);
}

const struct auth_state *auth_lock(struct auth *a)
{
    pthread_mutex_lock(&a->mu);
    return &a->st;
}

void auth_unlock(struct auth *a)
{
    pthread_mutex_unlock(&a->mu);
}

/* --------------------------------------------------------------- load */

struct load {
    struct auth_state st;
    size_t users_cap;
    size_t roles_cap;
};

static int grow(void *arr_ptr, size_t *cap, size_t count)
{
    void **arr = *(void ***)arr_ptr;
    size_t ncap;
    if (count < *cap) {
        return 0;
    }
    ncap = *cap == 0 ? 16 : *cap * 2;
    arr = mem_realloc(arr, ncap * sizeof(void *));
    if (arr == NULL) {
        return -ENOMEM;
    }
    *(void ***)arr_ptr = arr;
    *cap = ncap;
    return 0;
}

static int load_meta(struct auth_state *st, const uint8_t *v, size_t len)
{
    if (len != 14 || memcmp(v, "CAUM", 4) != 0) {
        return ERR_CORRUPT;
    }
    if (v[4] != 1) {
        return ERR_BAD_VERSION;
    }
    st->enabled = v[5] != 0;
    st->revision = be64_get(v + 6);
    return 0;
}

static int load_one(void *ctx, const void *name, size_t name_len,
                    const void *value, size_t value_len)
{
    struct load *l = ctx;
    const uint8_t *n = name;
    int rc;
    if (name_len == 4 && memcmp(name, "meta", 4) == 0) {
        return load_meta(&l->st, value, value_len);
    }
    if (name_len > 1 && n[0] == 'u') {
        struct auth_user *u;
        if (l->st.users_count == AUTH_USERS_MAX) {
            return ERR_LIMIT;
        }
        rc = grow(&l->st.users, &l->users_cap, l->st.users_count);
        if (rc == 0) {
            rc = auth_user_decode(value, value_len, &u);
        }
        if (rc == 0) {
            l->st.users[l->st.users_count++] = u;
        }
        return rc;
    }
    if (name_len > 1 && n[0] == 'r') {
        struct auth_role *r;
        if (l->st.roles_count == AUTH_ROLES_MAX) {
            return ERR_LIMIT;
        }
        rc = grow(&l->st.roles, &l->roles_cap, l->st.roles_count);
        if (rc == 0) {
            rc = auth_role_decode(value, value_len, &r);
        }
        if (rc == 0) {
            l->st.roles[l->st.roles_count++] = r;
        }
        return rc;
    }
    return ERR_CORRUPT;
}

static int cmp_user(const void *x, const void *y)
{
    const struct auth_user *const *a = x;
    const struct auth_user *const *b = y;
    return strcmp((*a)->name, (*b)->name);
}

static int cmp_role(const void *x, const void *y)
{
    const struct auth_role *const *a = x;
    const struct auth_role *const *b = y;
    return strcmp((*a)->name, (*b)->name);
}

int auth_load(struct auth *a, struct kv_read *rd)
{
    struct load l;
    int rc;
    memset(&l, 0, sizeof(l));
    rc = kv_aux_list(rd, KV_AUX_AUTH, load_one, &l);
    if (rc != 0) {
        auth_state_free(&l.st);
        return rc;
    }
    /* The store lists names in byte order, which is strcmp's order for
     * these NUL-free names; sort anyway, so the invariant never depends
     * on another module. */
    if (l.st.users_count > 0) {
        qsort(l.st.users, l.st.users_count, sizeof(void *), cmp_user);
    }
    if (l.st.roles_count > 0) {
        qsort(l.st.roles, l.st.roles_count, sizeof(void *), cmp_role);
    }
    pthread_mutex_lock(&a->mu);
    auth_state_free(&a->st);
    a->st = l.st;
    auth__tokens_clear(&a->tok);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

/* ------------------------------------------------------------- reads */

bool auth_enabled(struct auth *a)
{
    bool on;
    pthread_mutex_lock(&a->mu);
    on = a->st.enabled;
    pthread_mutex_unlock(&a->mu);
    return on;
}

uint64_t auth_revision(struct auth *a)
{
    uint64_t rev;
    pthread_mutex_lock(&a->mu);
    rev = a->st.revision;
    pthread_mutex_unlock(&a->mu);
    return rev;
}

int auth_check(struct auth *a, const char *user, enum auth_perm_type want,
               const uint8_t *key, size_t key_len, const uint8_t *end,
               size_t end_len)
{
    int rc;
    pthread_mutex_lock(&a->mu);
    rc = auth_state_check(&a->st, user, want, key, key_len, end, end_len);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int auth_check_admin(struct auth *a, const char *user)
{
    int rc;
    pthread_mutex_lock(&a->mu);
    rc = auth_state_admin(&a->st, user);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

int auth_user_hash(struct auth *a, const char *user, char *hash, size_t cap)
{
    const struct auth_user *u;
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    u = auth_state_user(&a->st, user);
    if (!a->st.enabled) {
        rc = ERR_AUTH_NOT_ENABLED;
    } else if (u == NULL || u->no_password || u->hash[0] == '\0') {
        rc = ERR_AUTH_FAILED;
    } else if (strlen(u->hash) >= cap) {
        rc = ERR_LIMIT;
    } else {
        strcpy(hash, u->hash);
    }
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/*
 * auth_apply.c - committed auth requests: check, write the records, swap
 * them into memory (see auth.c's top comment for the order and failures).
 *
 * The rules are etcd 3.4's auth/store.go, error for error (etcd-api.md
 * 1.5.9 and 1.6). Every change adds one to the auth revision and rewrites
 * the meta record; requests that change nothing (enable when enabled,
 * granting a role a user already holds) succeed without a new revision.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/err.h"
#include "consensus/auth/auth.h"
#include "consensus/auth/auth_int.h"

/* ------------------------------------------------------------ records */

static int put_meta(struct kv_write *wr, bool enabled, uint64_t revision)
{
    uint8_t v[14];
    memcpy(v, "CAUM", 4);
    v[4] = 1;
    v[5] = enabled ? 1 : 0;
    be64_put(v + 6, revision);
    return kv_aux_put(wr, KV_AUX_AUTH, "meta", 4, v, sizeof(v));
}

static int aux_name(char kind, const char *name, char *out, size_t *len)
{
    size_t n = strlen(name);
    if (n == 0 || n > AUTH_NAME_BYTES_MAX) {
        return ERR_LIMIT;
    }
    out[0] = kind;
    memcpy(out + 1, name, n);
    *len = n + 1;
    return 0;
}

static int put_user(struct kv_write *wr, const struct auth_user *u)
{
    char name[AUTH_NAME_BYTES_MAX + 1];
    size_t nl;
    uint8_t *v;
    size_t vl;
    int rc = aux_name('u', u->name, name, &nl);
    if (rc == 0) {
        rc = auth_user_encode(u, &v, &vl);
    }
    if (rc == 0) {
        rc = kv_aux_put(wr, KV_AUX_AUTH, name, nl, v, vl);
        mem_free(v);
    }
    return rc;
}

static int put_role(struct kv_write *wr, const struct auth_role *r)
{
    char name[AUTH_NAME_BYTES_MAX + 1];
    size_t nl;
    uint8_t *v;
    size_t vl;
    int rc = aux_name('r', r->name, name, &nl);
    if (rc == 0) {
        rc = auth_role_encode(r, &v, &vl);
    }
    if (rc == 0) {
        rc = kv_aux_put(wr, KV_AUX_AUTH, name, nl, v, vl);
        mem_free(v);
    }
    return rc;
}

static int del_record(struct kv_write *wr, char kind, const char *n)
{
    char name[AUTH_NAME_BYTES_MAX + 1];
    size_t nl;
    int rc = aux_name(kind, n, name, &nl);
    if (rc == 0) {
        rc = kv_aux_delete(wr, KV_AUX_AUTH, name, nl);
    }
    return rc == ERR_NOT_FOUND ? 0 : rc;
}

/* One more auth revision, persisted. */
static int bump(struct auth_state *st, struct kv_write *wr)
{
    int rc = put_meta(wr, st->enabled, st->revision + 1);
    if (rc == 0) {
        st->revision++;
    }
    return rc;
}

/* ---------------------------------------------------- array helpers */

static size_t lower_bound(void *const *arr, size_t n, const char *name)
{
    size_t lo = 0;
    size_t hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        /* users and roles both start with their name (auth_state.c) */
        if (strcmp(*(char *const *)arr[mid], name) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static int arr_insert(void ***arr, size_t *n, size_t pos, void *item)
{
    void **v = mem_realloc(*arr, (*n + 1) * sizeof(void *));
    if (v == NULL) {
        return -ENOMEM;
    }
    memmove(v + pos + 1, v + pos, (*n - pos) * sizeof(void *));
    v[pos] = item;
    *arr = v;
    (*n)++;
    return 0;
}

static void arr_remove(void **arr, size_t *n, size_t pos)
{
    ASSERT(pos < *n);
    memmove(arr + pos, arr + pos + 1, (*n - pos - 1) * sizeof(void *));
    (*n)--;
}

static char *str_dup(const char *s)
{
    return mem_dup(s, strlen(s) + 1);
}

static struct auth_user *user_clone(const struct auth_user *u)
{
    struct auth_user *c = mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->name = str_dup(u->name);
    c->hash = str_dup(u->hash);
    c->no_password = u->no_password;
    c->roles = mem_calloc(u->roles_count + 1, sizeof(char *));
    if (c->name == NULL || c->hash == NULL || c->roles == NULL) {
        auth_user_free(c);
        return NULL;
    }
    for (size_t i = 0; i < u->roles_count; i++) {
        c->roles[i] = str_dup(u->roles[i]);
        if (c->roles[i] == NULL) {
            auth_user_free(c);
            return NULL;
        }
        c->roles_count++;
    }
    return c;
}

static struct auth_role *role_clone(const struct auth_role *r)
{
    struct auth_role *c = mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->name = str_dup(r->name);
    c->perms = mem_calloc(r->perms_count + 1, sizeof(*c->perms));
    if (c->name == NULL || c->perms == NULL) {
        auth_role_free(c);
        return NULL;
    }
    for (size_t i = 0; i < r->perms_count; i++) {
        const struct auth_perm *p = &r->perms[i];
        struct auth_perm *q = &c->perms[i];
        q->type = p->type;
        q->key = mem_dup(p->key, p->key_len);
        q->key_len = p->key_len;
        q->end = p->end_len > 0 ? mem_dup(p->end, p->end_len) : NULL;
        q->end_len = p->end_len;
        c->perms_count++;
        if (q->key == NULL || (q->end == NULL && q->end_len > 0)) {
            auth_role_free(c);
            return NULL;
        }
    }
    return c;
}

/* Persist the changed user u (replacing the state's copy at the same name)
 * and bump the revision; on success the state owns u. */
static int commit_user(struct auth_state *st, struct kv_write *wr,
                       struct auth_user *u)
{
    size_t pos =
        lower_bound((void *const *)st->users, st->users_count, u->name);
    int rc;
    ASSERT(pos < st->users_count);
    ASSERT(strcmp(st->users[pos]->name, u->name) == 0);
    rc = put_user(wr, u);
    if (rc == 0) {
        rc = bump(st, wr);
    }
    if (rc != 0) {
        auth_user_free(u);
        return rc;
    }
    auth_user_free(st->users[pos]);
    st->users[pos] = u;
    return 0;
}

static int commit_role(struct auth_state *st, struct kv_write *wr,
                       struct auth_role *r)
{
    size_t pos =
        lower_bound((void *const *)st->roles, st->roles_count, r->name);
    int rc;
    ASSERT(pos < st->roles_count);
    ASSERT(strcmp(st->roles[pos]->name, r->name) == 0);
    rc = put_role(wr, r);
    if (rc == 0) {
        rc = bump(st, wr);
    }
    if (rc != 0) {
        auth_role_free(r);
        return rc;
    }
    auth_role_free(st->roles[pos]);
    st->roles[pos] = r;
    return 0;
}

/* ------------------------------------------------------- enable/disable */

static int do_enable(struct auth *a, struct kv_write *wr)
{
    struct auth_state *st = &a->st;
    const struct auth_user *root;
    int rc;
    if (st->enabled) {
        return 0; /* etcd: already on, nothing to do */
    }
    root = auth_state_user(st, AUTH_ROOT);
    if (root == NULL) {
        return ERR_ROOT_USER_NOT_EXIST;
    }
    if (!auth_user_has_role(root, AUTH_ROOT)) {
        return ERR_ROOT_ROLE_NOT_EXIST;
    }
    rc = put_meta(wr, true, st->revision + 1);
    if (rc == 0) {
        st->enabled = true;
        st->revision++;
        auth__tokens_clear(&a->tok);
    }
    return rc;
}

static int do_disable(struct auth *a, struct kv_write *wr)
{
    struct auth_state *st = &a->st;
    int rc;
    if (!st->enabled) {
        return 0;
    }
    rc = put_meta(wr, false, st->revision + 1);
    if (rc == 0) {
        st->enabled = false;
        st->revision++;
        auth__tokens_clear(&a->tok);
    }
    return rc;
}

/* ---------------------------------------------------------------- users */

static int name_check(const char *name, int empty_err)
{
    size_t n = strlen(name);
    if (n == 0) {
        return empty_err;
    }
    return n > AUTH_NAME_BYTES_MAX ? ERR_LIMIT : 0;
}

static int do_user_add(struct auth *a, struct kv_write *wr,
                       const Etcdserverpb__AuthUserAddRequest *r)
{
    struct auth_state *st = &a->st;
    bool nopw = r->options != NULL && r->options->no_password;
    const char *hash = nopw ? "" : r->hashedpassword;
    struct auth_user *u;
    size_t pos;
    int rc = name_check(r->name, ERR_USER_EMPTY);
    if (rc != 0) {
        return rc;
    }
    if (auth_state_user(st, r->name) != NULL) {
        return ERR_USER_ALREADY_EXIST;
    }
    if (st->users_count >= AUTH_USERS_MAX) {
        return ERR_LIMIT;
    }
    if (!nopw && (hash[0] != '$' || strlen(hash) >= AUTH_HASH_BYTES_MAX)) {
        return ERR_BAD_REQUEST; /* the proposer hashes every password */
    }
    u = mem_calloc(1, sizeof(*u));
    if (u == NULL) {
        return -ENOMEM;
    }
    u->name = str_dup(r->name);
    u->hash = str_dup(hash);
    u->no_password = nopw;
    u->roles = mem_calloc(1, sizeof(char *));
    rc = u->name == NULL || u->hash == NULL || u->roles == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        rc = put_user(wr, u);
    }
    if (rc == 0) {
        pos = lower_bound((void *const *)st->users, st->users_count, u->name);
        rc = arr_insert((void ***)&st->users, &st->users_count, pos, u);
    }
    if (rc != 0) {
        auth_user_free(u);
        return rc;
    }
    return bump(st, wr);
}

static int do_user_delete(struct auth *a, struct kv_write *wr,
                          const Etcdserverpb__AuthUserDeleteRequest *r)
{
    struct auth_state *st = &a->st;
    size_t pos;
    int rc;
    if (st->enabled && strcmp(r->name, AUTH_ROOT) == 0) {
        return ERR_INVALID_AUTH_MGMT;
    }
    if (auth_state_user(st, r->name) == NULL) {
        return ERR_USER_NOT_FOUND;
    }
    rc = del_record(wr, 'u', r->name);
    if (rc == 0) {
        rc = bump(st, wr);
    }
    if (rc != 0) {
        return rc;
    }
    pos = lower_bound((void *const *)st->users, st->users_count, r->name);
    auth__tokens_drop_user(&a->tok, r->name);
    auth_user_free(st->users[pos]);
    arr_remove((void **)st->users, &st->users_count, pos);
    return 0;
}

static int do_user_passwd(struct auth *a, struct kv_write *wr,
                          const Etcdserverpb__AuthUserChangePasswordRequest *r)
{
    const struct auth_user *old = auth_state_user(&a->st, r->name);
    struct auth_user *u;
    char *hash;
    int rc;
    if (old == NULL) {
        return ERR_USER_NOT_FOUND;
    }
    if (r->hashedpassword[0] != '$' ||
        strlen(r->hashedpassword) >= AUTH_HASH_BYTES_MAX) {
        return ERR_BAD_REQUEST;
    }
    u = user_clone(old);
    hash = str_dup(r->hashedpassword);
    if (u == NULL || hash == NULL) {
        auth_user_free(u);
        mem_free(hash);
        return -ENOMEM;
    }
    mem_free(u->hash);
    u->hash = hash;
    rc = commit_user(&a->st, wr, u);
    if (rc == 0) {
        auth__tokens_drop_user(&a->tok, r->name);
    }
    return rc;
}

static int do_user_grant(struct auth *a, struct kv_write *wr,
                         const Etcdserverpb__AuthUserGrantRoleRequest *r)
{
    const struct auth_user *old = auth_state_user(&a->st, r->user);
    struct auth_user *u;
    size_t pos = 0;
    char *role;
    if (old == NULL) {
        return ERR_USER_NOT_FOUND;
    }
    if (strcmp(r->role, AUTH_ROOT) != 0 &&
        auth_state_role(&a->st, r->role) == NULL) {
        return ERR_ROLE_NOT_FOUND;
    }
    if (auth_user_has_role(old, r->role)) {
        return 0; /* etcd: ignored, no new revision */
    }
    if (old->roles_count >= AUTH_ROLES_PER_USER_MAX) {
        return ERR_LIMIT;
    }
    u = user_clone(old);
    role = str_dup(r->role);
    if (u == NULL || role == NULL) {
        auth_user_free(u);
        mem_free(role);
        return -ENOMEM;
    }
    while (pos < u->roles_count && strcmp(u->roles[pos], role) < 0) {
        pos++;
    }
    /* user_clone left room for one more role */
    memmove(u->roles + pos + 1, u->roles + pos,
            (u->roles_count - pos) * sizeof(char *));
    u->roles[pos] = role;
    u->roles_count++;
    return commit_user(&a->st, wr, u);
}

static int do_user_revoke(struct auth *a, struct kv_write *wr,
                          const Etcdserverpb__AuthUserRevokeRoleRequest *r)
{
    const struct auth_user *old = auth_state_user(&a->st, r->name);
    struct auth_user *u;
    if (a->st.enabled && strcmp(r->name, AUTH_ROOT) == 0 &&
        strcmp(r->role, AUTH_ROOT) == 0) {
        return ERR_INVALID_AUTH_MGMT;
    }
    if (old == NULL) {
        return ERR_USER_NOT_FOUND;
    }
    if (!auth_user_has_role(old, r->role)) {
        return ERR_ROLE_NOT_GRANTED;
    }
    u = user_clone(old);
    if (u == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < u->roles_count; i++) {
        if (strcmp(u->roles[i], r->role) == 0) {
            mem_free(u->roles[i]);
            arr_remove((void **)u->roles, &u->roles_count, i);
            break;
        }
    }
    return commit_user(&a->st, wr, u);
}

/* ---------------------------------------------------------------- roles */

static int do_role_add(struct auth *a, struct kv_write *wr,
                       const Etcdserverpb__AuthRoleAddRequest *r)
{
    struct auth_state *st = &a->st;
    struct auth_role *role;
    size_t pos;
    int rc = name_check(r->name, ERR_ROLE_EMPTY);
    if (rc != 0) {
        return rc;
    }
    if (auth_state_role(st, r->name) != NULL) {
        return ERR_ROLE_ALREADY_EXIST;
    }
    if (st->roles_count >= AUTH_ROLES_MAX) {
        return ERR_LIMIT;
    }
    role = mem_calloc(1, sizeof(*role));
    if (role == NULL) {
        return -ENOMEM;
    }
    role->name = str_dup(r->name);
    role->perms = mem_calloc(1, sizeof(*role->perms));
    rc = role->name == NULL || role->perms == NULL ? -ENOMEM : 0;
    if (rc == 0) {
        rc = put_role(wr, role);
    }
    if (rc == 0) {
        pos = lower_bound((void *const *)st->roles, st->roles_count, r->name);
        rc = arr_insert((void ***)&st->roles, &st->roles_count, pos, role);
    }
    if (rc != 0) {
        auth_role_free(role);
        return rc;
    }
    return bump(st, wr);
}

/* Users holding role, with the role taken away, written to the store; the
 * clones replace the originals only once every write went through. */
static int strip_role(struct auth_state *st, struct kv_write *wr,
                      const char *role)
{
    int rc = 0;
    for (size_t i = 0; i < st->users_count && rc == 0; i++) {
        struct auth_user *u;
        if (!auth_user_has_role(st->users[i], role)) {
            continue;
        }
        u = user_clone(st->users[i]);
        if (u == NULL) {
            return -ENOMEM;
        }
        for (size_t j = 0; j < u->roles_count; j++) {
            if (strcmp(u->roles[j], role) == 0) {
                mem_free(u->roles[j]);
                arr_remove((void **)u->roles, &u->roles_count, j);
                break;
            }
        }
        rc = put_user(wr, u);
        if (rc == 0) {
            auth_user_free(st->users[i]);
            st->users[i] = u;
        } else {
            auth_user_free(u);
        }
    }
    return rc;
}

static int do_role_delete(struct auth *a, struct kv_write *wr,
                          const Etcdserverpb__AuthRoleDeleteRequest *r)
{
    struct auth_state *st = &a->st;
    size_t pos;
    int rc;
    if (st->enabled && strcmp(r->role, AUTH_ROOT) == 0) {
        return ERR_INVALID_AUTH_MGMT;
    }
    if (auth_state_role(st, r->role) == NULL) {
        return ERR_ROLE_NOT_FOUND;
    }
    rc = del_record(wr, 'r', r->role);
    if (rc == 0) {
        rc = strip_role(st, wr, r->role);
    }
    if (rc == 0) {
        rc = bump(st, wr);
    }
    if (rc != 0) {
        return rc;
    }
    pos = lower_bound((void *const *)st->roles, st->roles_count, r->role);
    auth_role_free(st->roles[pos]);
    arr_remove((void **)st->roles, &st->roles_count, pos);
    return 0;
}

static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return al < bl ? -1 : (al > bl ? 1 : 0);
}

/* A role's grants are kept in etcd 3.4's order: by key alone, grants with
 * the same key in the order they were made (etcd appends and sorts by key;
 * Go's sort of so short a slice moves nothing among equals).
 *
 * perm_find: the grant on exactly (key, end) (*found), else where a new one
 * goes: after every grant whose key is <= key. etcd 3.4 looks only at the
 * first grant of the key; when that one has another range_end it adds a
 * second grant instead of updating, so a grant narrowed from WRITE to READ
 * keeps its WRITE there. We update the grant, as a grant again is meant
 * to (docs/kv.md names the difference). */
static size_t perm_find(const struct auth_role *r, const uint8_t *key,
                        size_t kl, const uint8_t *end, size_t el, bool *found)
{
    size_t i = 0;
    *found = false;
    while (i < r->perms_count &&
           bytes_cmp(r->perms[i].key, r->perms[i].key_len, key, kl) < 0) {
        i++;
    }
    for (; i < r->perms_count &&
           bytes_cmp(r->perms[i].key, r->perms[i].key_len, key, kl) == 0;
         i++) {
        if (bytes_cmp(r->perms[i].end, r->perms[i].end_len, end, el) == 0) {
            *found = true;
            return i;
        }
    }
    return i;
}

static int do_role_grant(struct auth *a, struct kv_write *wr,
                         const Etcdserverpb__AuthRoleGrantPermissionRequest *r)
{
    const struct auth_role *old = auth_state_role(&a->st, r->name);
    const Authpb__Permission *p = r->perm;
    struct auth_role *role;
    struct auth_perm q = {0};
    bool found;
    size_t pos;
    if (old == NULL) {
        return ERR_ROLE_NOT_FOUND;
    }
    if (p == NULL) {
        return ERR_PERMISSION_NOT_GIVEN;
    }
    if ((unsigned)p->permtype > AUTH_PERM_READWRITE ||
        p->key.len > AUTH_PERM_KEY_BYTES_MAX ||
        p->range_end.len > AUTH_PERM_KEY_BYTES_MAX) {
        return ERR_BAD_REQUEST;
    }
    pos = perm_find(old, p->key.data, p->key.len, p->range_end.data,
                    p->range_end.len, &found);
    if (!found && old->perms_count >= AUTH_PERMS_PER_ROLE_MAX) {
        return ERR_LIMIT;
    }
    role = role_clone(old);
    if (role == NULL) {
        return -ENOMEM;
    }
    if (found) {
        role->perms[pos].type = (enum auth_perm_type)p->permtype;
        return commit_role(&a->st, wr, role);
    }
    q.type = (enum auth_perm_type)p->permtype;
    q.key = mem_dup(p->key.data, p->key.len);
    q.key_len = p->key.len;
    q.end = p->range_end.len > 0 ? mem_dup(p->range_end.data, p->range_end.len)
                                 : NULL;
    q.end_len = p->range_end.len;
    if (q.key == NULL || (q.end == NULL && q.end_len > 0)) {
        mem_free(q.key);
        mem_free(q.end);
        auth_role_free(role);
        return -ENOMEM;
    }
    /* role_clone left room for one more grant */
    memmove(role->perms + pos + 1, role->perms + pos,
            (role->perms_count - pos) * sizeof(*role->perms));
    role->perms[pos] = q;
    role->perms_count++;
    return commit_role(&a->st, wr, role);
}

static int
do_role_revoke(struct auth *a, struct kv_write *wr,
               const Etcdserverpb__AuthRoleRevokePermissionRequest *r)
{
    const struct auth_role *old = auth_state_role(&a->st, r->role);
    struct auth_role *role;
    bool found;
    size_t pos;
    if (old == NULL) {
        return ERR_ROLE_NOT_FOUND;
    }
    pos = perm_find(old, r->key.data, r->key.len, r->range_end.data,
                    r->range_end.len, &found);
    if (!found) {
        return ERR_PERMISSION_NOT_GRANTED;
    }
    role = role_clone(old);
    if (role == NULL) {
        return -ENOMEM;
    }
    mem_free(role->perms[pos].key);
    mem_free(role->perms[pos].end);
    memmove(role->perms + pos, role->perms + pos + 1,
            (role->perms_count - pos - 1) * sizeof(*role->perms));
    role->perms_count--;
    return commit_role(&a->st, wr, role);
}

/* ------------------------------------------------------------ dispatch */

bool auth_is_request(int kind)
{
    return kind >= AUTH_OP_ENABLE && kind <= AUTH_OP_ROLE_REVOKE_PERMISSION;
}

static int dispatch(struct auth *a, struct kv_write *wr,
                    const Cairnpb__InternalRequest *q)
{
    switch ((int)q->request_case) {
    case AUTH_OP_ENABLE:
        return do_enable(a, wr);
    case AUTH_OP_DISABLE:
        return do_disable(a, wr);
    case AUTH_OP_USER_ADD:
        return do_user_add(a, wr, q->auth_user_add);
    case AUTH_OP_USER_DELETE:
        return do_user_delete(a, wr, q->auth_user_delete);
    case AUTH_OP_USER_CHANGE_PASSWORD:
        return do_user_passwd(a, wr, q->auth_user_change_password);
    case AUTH_OP_USER_GRANT_ROLE:
        return do_user_grant(a, wr, q->auth_user_grant_role);
    case AUTH_OP_USER_REVOKE_ROLE:
        return do_user_revoke(a, wr, q->auth_user_revoke_role);
    case AUTH_OP_ROLE_ADD:
        return do_role_add(a, wr, q->auth_role_add);
    case AUTH_OP_ROLE_DELETE:
        return do_role_delete(a, wr, q->auth_role_delete);
    case AUTH_OP_ROLE_GRANT_PERMISSION:
        return do_role_grant(a, wr, q->auth_role_grant_permission);
    case AUTH_OP_ROLE_REVOKE_PERMISSION:
        return do_role_revoke(a, wr, q->auth_role_revoke_permission);
    default:
        return ERR_BAD_REQUEST;
    }
}

int auth_apply(struct auth *a, struct kv_write *wr,
               const Cairnpb__InternalRequest *req)
{
    int rc;
    ASSERT(a != NULL);
    ASSERT(auth_is_request((int)req->request_case));
    pthread_mutex_lock(&a->mu);
    rc = dispatch(a, wr, req);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

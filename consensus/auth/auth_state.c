/*
 * auth_state.c - the auth state as plain data: lookups, the permission
 * checker and the record codecs. No locks, no store, no clock.
 *
 * The checker follows etcd 3.4's range permission cache: the grants of the
 * wanted type (READWRITE counts as both) from all of a user's roles form a
 * set of half-open intervals, and a request is allowed when that union
 * covers the whole requested interval. We build the union per check (sort
 * and sweep) instead of caching it; a user holds few grants, and the check
 * stays a pure function of the state.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "consensus/auth/auth.h"
#include "proto/auth.pb-c.h"

/* ------------------------------------------------------------ lookups */

STATIC_ASSERT(offsetof(struct auth_user, name) == 0, "name first");
STATIC_ASSERT(offsetof(struct auth_role, name) == 0, "name first");

struct auth_user *auth_state_user(const struct auth_state *st, const char *name)
{
    size_t lo = 0;
    size_t hi = st->users_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->users[mid]->name, name);
        if (c == 0) {
            return st->users[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

struct auth_role *auth_state_role(const struct auth_state *st, const char *name)
{
    size_t lo = 0;
    size_t hi = st->roles_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->roles[mid]->name, name);
        if (c == 0) {
            return st->roles[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

bool auth_user_has_role(const struct auth_user *u, const char *role)
{
    for (size_t i = 0; i < u->roles_count; i++) {
        if (strcmp(u->roles[i], role) == 0) {
            return true;
        }
    }
    return false;
}

void auth_user_free(struct auth_user *u)
{
    if (u == NULL) {
        return;
    }
    for (size_t i = 0; i < u->roles_count; i++) {
        mem_free(u->roles[i]);
    }
    mem_free(u->roles);
    mem_free(u->hash);
    mem_free(u->name);
    mem_free(u);
}

void auth_role_free(struct auth_role *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->perms_count; i++) {
        mem_free(r->perms[i].key);
        mem_free(r->perms[i].end);
    }
    mem_free(r->perms);
    mem_free(r->name);
    mem_free(r);
}

void auth_state_free(struct auth_state *st)
{
    for (size_t i = 0; i < st->users_count; i++) {
        auth_user_free(st->users[i]);
    }
    for (size_t i = 0; i < st->roles_count; i++) {
        auth_role_free(st->roles[i]);
    }
    mem_free(st->users);
    mem_free(st->roles);
    memset(st, 0, sizeof(*st));
}

/* ------------------------------------------------------------ checker */

/* A bound in key space: the bytes p[0..len), followed by one 0 byte when
 * z (the successor of a key), or +infinity when inf. */
struct bnd {
    const uint8_t *p;
    size_t len;
    bool z;
    bool inf;
};

struct ival {
    struct bnd b;
    struct bnd e;
};

static int bnd_cmp(const struct bnd *a, const struct bnd *b)
{
    if (a->inf || b->inf) {
        return (a->inf ? 1 : 0) - (b->inf ? 1 : 0);
    }
    size_t al = a->len + (a->z ? 1u : 0u);
    size_t bl = b->len + (b->z ? 1u : 0u);
    size_t n = al < bl ? al : bl;
    for (size_t i = 0; i < n; i++) {
        uint8_t ca = i < a->len ? a->p[i] : 0;
        uint8_t cb = i < b->len ? b->p[i] : 0;
        if (ca != cb) {
            return ca < cb ? -1 : 1;
        }
    }
    return al < bl ? -1 : (al > bl ? 1 : 0);
}

/* etcd's interval forms: end empty = the key alone, "\0" = every key from
 * key on, else [key, end). */
static void ival_make(struct ival *iv, const uint8_t *key, size_t key_len,
                      const uint8_t *end, size_t end_len)
{
    memset(iv, 0, sizeof(*iv));
    iv->b.p = key;
    iv->b.len = key_len;
    if (end_len == 0) {
        iv->e.p = key;
        iv->e.len = key_len;
        iv->e.z = true;
    } else if (end_len == 1 && end[0] == 0) {
        iv->e.inf = true;
    } else {
        iv->e.p = end;
        iv->e.len = end_len;
    }
}

static int ival_cmp_start(const void *x, const void *y)
{
    const struct ival *a = x;
    const struct ival *b = y;
    return bnd_cmp(&a->b, &b->b);
}

static bool type_grants(enum auth_perm_type have, enum auth_perm_type want)
{
    return have == AUTH_PERM_READWRITE || have == want;
}

/* Does the union of ivs[0..n) cover want? Sorts ivs. */
static bool covered(struct ival *ivs, size_t n, const struct ival *want)
{
    struct bnd cur = want->b;
    if (bnd_cmp(&want->e, &want->b) <= 0) {
        return false; /* an empty request interval: see the caller */
    }
    qsort(ivs, n, sizeof(*ivs), ival_cmp_start);
    for (size_t i = 0; i < n; i++) {
        if (bnd_cmp(&ivs[i].b, &cur) > 0) {
            break; /* a gap before the next grant */
        }
        if (bnd_cmp(&ivs[i].e, &cur) > 0) {
            cur = ivs[i].e;
        }
        if (bnd_cmp(&cur, &want->e) >= 0) {
            return true;
        }
    }
    return bnd_cmp(&cur, &want->e) >= 0;
}

static size_t user_grants_count(const struct auth_state *st,
                                const struct auth_user *u)
{
    size_t n = 0;
    for (size_t i = 0; i < u->roles_count; i++) {
        const struct auth_role *r = auth_state_role(st, u->roles[i]);
        n += r != NULL ? r->perms_count : 0;
    }
    return n;
}

static int check_user(const struct auth_state *st, const struct auth_user *u,
                      enum auth_perm_type want, const struct ival *req)
{
    size_t cap = user_grants_count(st, u);
    struct ival *ivs;
    size_t n = 0;
    bool ok;
    if (cap == 0) {
        return ERR_PERMISSION_DENIED;
    }
    ivs = mem_alloc(cap * sizeof(*ivs));
    if (ivs == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < u->roles_count; i++) {
        const struct auth_role *r = auth_state_role(st, u->roles[i]);
        for (size_t j = 0; r != NULL && j < r->perms_count; j++) {
            const struct auth_perm *p = &r->perms[j];
            if (!type_grants(p->type, want)) {
                continue;
            }
            ASSERT(n < cap);
            ival_make(&ivs[n], p->key, p->key_len, p->end, p->end_len);
            if (bnd_cmp(&ivs[n].e, &ivs[n].b) > 0) {
                n++; /* an empty grant adds nothing */
            }
        }
    }
    ok = covered(ivs, n, req);
    mem_free(ivs);
    return ok ? 0 : ERR_PERMISSION_DENIED;
}

int auth_state_check(const struct auth_state *st, const char *user,
                     enum auth_perm_type want, const uint8_t *key,
                     size_t key_len, const uint8_t *end, size_t end_len)
{
    const struct auth_user *u;
    struct ival req;
    ASSERT(want == AUTH_PERM_READ || want == AUTH_PERM_WRITE);
    if (!st->enabled) {
        return 0;
    }
    if (user == NULL || user[0] == '\0') {
        return ERR_USER_EMPTY;
    }
    u = auth_state_user(st, user);
    if (u == NULL) {
        return ERR_PERMISSION_DENIED;
    }
    if (auth_user_has_role(u, AUTH_ROOT)) {
        return 0;
    }
    ival_make(&req, key, key_len, end, end_len);
    if (bnd_cmp(&req.e, &req.b) <= 0) {
        /* A backwards range selects nothing; ask for the key alone, so an
         * odd request never gets more than a plain one would. */
        ival_make(&req, key, key_len, NULL, 0);
    }
    return check_user(st, u, want, &req);
}

int auth_state_admin(const struct auth_state *st, const char *user)
{
    const struct auth_user *u;
    if (!st->enabled) {
        return 0;
    }
    if (user == NULL || user[0] == '\0') {
        return ERR_USER_EMPTY;
    }
    u = auth_state_user(st, user);
    if (u == NULL) {
        return ERR_USER_NOT_FOUND;
    }
    return auth_user_has_role(u, AUTH_ROOT) ? 0 : ERR_PERMISSION_DENIED;
}

/* ------------------------------------------------------------ records */

static void *pb_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return mem_alloc(size);
}

static void pb_free(void *ctx, void *p)
{
    (void)ctx;
    mem_free(p);
}

static ProtobufCAllocator pb_allocator = {pb_alloc, pb_free, NULL};

#define REC_HEAD    5
#define REC_VERSION 1

static int rec_pack(const char magic[4], const ProtobufCMessage *m,
                    uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *p = mem_alloc(REC_HEAD + n);
    if (p == NULL) {
        return -ENOMEM;
    }
    memcpy(p, magic, 4);
    p[4] = REC_VERSION;
    protobuf_c_message_pack(m, p + REC_HEAD);
    *out = p;
    *len = REC_HEAD + n;
    return 0;
}

static int rec_check(const char magic[4], const void *v, size_t len)
{
    const uint8_t *p = v;
    if (len < REC_HEAD || memcmp(p, magic, 4) != 0) {
        return ERR_BAD_MAGIC;
    }
    return p[4] == REC_VERSION ? 0 : ERR_BAD_VERSION;
}

int auth_user_encode(const struct auth_user *u, uint8_t **out, size_t *len)
{
    Authpb__User m = AUTHPB__USER__INIT;
    Authpb__UserAddOptions o = AUTHPB__USER_ADD_OPTIONS__INIT;
    m.name.data = (uint8_t *)u->name;
    m.name.len = strlen(u->name);
    m.password.data = (uint8_t *)u->hash;
    m.password.len = strlen(u->hash);
    m.roles = u->roles;
    m.n_roles = u->roles_count;
    o.no_password = u->no_password;
    m.options = &o;
    return rec_pack("CAUU", &m.base, out, len);
}

/* A NUL-terminated copy of bytes that must not hold a NUL. */
static char *str_from(const uint8_t *p, size_t len)
{
    char *s;
    if (memchr(p, 0, len) != NULL) {
        return NULL;
    }
    s = mem_alloc(len + 1);
    if (s != NULL) {
        memcpy(s, p, len);
        s[len] = '\0';
    }
    return s;
}

static int user_from_pb(const Authpb__User *m, struct auth_user **out)
{
    struct auth_user *u = mem_calloc(1, sizeof(*u));
    if (u == NULL) {
        return -ENOMEM;
    }
    u->name = str_from(m->name.data, m->name.len);
    u->hash = str_from(m->password.data, m->password.len);
    u->no_password = m->options != NULL && m->options->no_password;
    u->roles = mem_calloc(m->n_roles == 0 ? 1 : m->n_roles, sizeof(char *));
    if (u->name == NULL || u->hash == NULL || u->roles == NULL) {
        auth_user_free(u);
        return ERR_CORRUPT;
    }
    for (size_t i = 0; i < m->n_roles; i++) {
        u->roles[i] =
            str_from((const uint8_t *)m->roles[i], strlen(m->roles[i]));
        if (u->roles[i] == NULL) {
            auth_user_free(u);
            return -ENOMEM;
        }
        u->roles_count++;
    }
    *out = u;
    return 0;
}

int auth_user_decode(const void *v, size_t len, struct auth_user **out)
{
    Authpb__User *m;
    int rc = rec_check("CAUU", v, len);
    if (rc != 0) {
        return rc;
    }
    m = authpb__user__unpack(&pb_allocator, len - REC_HEAD,
                             (const uint8_t *)v + REC_HEAD);
    if (m == NULL) {
        return ERR_CORRUPT;
    }
    rc = user_from_pb(m, out);
    authpb__user__free_unpacked(m, &pb_allocator);
    return rc;
}

int auth_role_encode(const struct auth_role *r, uint8_t **out, size_t *len)
{
    Authpb__Role m = AUTHPB__ROLE__INIT;
    Authpb__Permission *pv = NULL;
    Authpb__Permission **pp = NULL;
    int rc;
    if (r->perms_count > 0) {
        pv = mem_calloc(r->perms_count, sizeof(*pv));
        pp = mem_calloc(r->perms_count, sizeof(*pp));
        if (pv == NULL || pp == NULL) {
            mem_free(pv);
            mem_free(pp);
            return -ENOMEM;
        }
    }
    for (size_t i = 0; i < r->perms_count; i++) {
        authpb__permission__init(&pv[i]);
        pv[i].permtype = (Authpb__Permission__Type)r->perms[i].type;
        pv[i].key.data = r->perms[i].key;
        pv[i].key.len = r->perms[i].key_len;
        pv[i].range_end.data = r->perms[i].end;
        pv[i].range_end.len = r->perms[i].end_len;
        pp[i] = &pv[i];
    }
    m.name.data = (uint8_t *)r->name;
    m.name.len = strlen(r->name);
    m.keypermission = pp;
    m.n_keypermission = r->perms_count;
    rc = rec_pack("CAUR", &m.base, out, len);
    mem_free(pv);
    mem_free(pp);
    return rc;
}

static int role_from_pb(const Authpb__Role *m, struct auth_role **out)
{
    struct auth_role *r = mem_calloc(1, sizeof(*r));
    size_t n = m->n_keypermission;
    if (r == NULL) {
        return -ENOMEM;
    }
    r->name = str_from(m->name.data, m->name.len);
    r->perms = mem_calloc(n == 0 ? 1 : n, sizeof(*r->perms));
    if (r->name == NULL || r->perms == NULL) {
        auth_role_free(r);
        return ERR_CORRUPT;
    }
    for (size_t i = 0; i < n; i++) {
        const Authpb__Permission *p = m->keypermission[i];
        struct auth_perm *q = &r->perms[i];
        if ((unsigned)p->permtype > AUTH_PERM_READWRITE) {
            auth_role_free(r);
            return ERR_CORRUPT;
        }
        q->type = (enum auth_perm_type)p->permtype;
        q->key = mem_dup(p->key.data, p->key.len);
        q->key_len = p->key.len;
        q->end = p->range_end.len > 0
                     ? mem_dup(p->range_end.data, p->range_end.len)
                     : NULL;
        q->end_len = p->range_end.len;
        r->perms_count++;
        if ((q->key == NULL && q->key_len > 0) ||
            (q->end == NULL && q->end_len > 0)) {
            auth_role_free(r);
            return -ENOMEM;
        }
    }
    *out = r;
    return 0;
}

int auth_role_decode(const void *v, size_t len, struct auth_role **out)
{
    Authpb__Role *m;
    int rc = rec_check("CAUR", v, len);
    if (rc != 0) {
        return rc;
    }
    m = authpb__role__unpack(&pb_allocator, len - REC_HEAD,
                             (const uint8_t *)v + REC_HEAD);
    if (m == NULL) {
        return ERR_CORRUPT;
    }
    rc = role_from_pb(m, out);
    authpb__role__free_unpacked(m, &pb_allocator);
    return rc;
}

/*
 * test_auth.c - the auth store: etcd's rules, the permission checker, the
 * records in the store, tokens and password hashes.
 *
 * Goal: auth requests applied from Raft entries change users, roles and
 * grants exactly as etcd 3.4 does (same errors, one auth revision per
 * change), the state survives a reopen of the store, and the checker
 * allows exactly the key intervals the grants cover.
 * Method: a real LMDB store in a temp dir and the real applier
 * (consensus/apply): each request is packed with protobuf-c, wrapped with
 * apply_envelope into a Raft entry and applied with apply_entries; the
 * answer comes back through on_result. Reopening builds a fresh struct
 * auth from the store's aux table through apply_init.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <crypt.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/err.h"
#include "consensus/apply/apply.h"
#include "consensus/auth/auth.h"
#include "proto/rpc.pb-c.h"

#define ME 0x1111

struct fixture {
    char dir[64];
    struct kv *kv;
    struct apply ap;
    struct auth auth;
    uint64_t index;
    int err; /* the last result's */
    int results;
};

static void on_result(void *ctx, const struct apply_result *r)
{
    struct fixture *f = ctx;
    f->results++;
    f->err = r->err;
    if (r->err == 0) {
        Etcdserverpb__AuthEnableResponse *m =
            etcdserverpb__auth_enable_response__unpack(NULL, r->resp_len,
                                                       r->resp);
        assert_non_null(m);
        assert_non_null(m->header);
        assert_int_equal(m->header->member_id, ME);
        etcdserverpb__auth_enable_response__free_unpacked(m, NULL);
    }
}

static void open_store(struct fixture *f)
{
    struct kv_options o = {.sync = KV_SYNC_NONE};
    struct auth_config ac = {.bcrypt_cost = 4, .token_ttl_ms = 1000};
    struct apply_config cfg = {.cluster_id = 0xc1, .member_id = ME};
    assert_int_equal(kv_open(f->dir, &o, &f->kv), 0);
    assert_int_equal(auth_init(&f->auth, &ac), 0);
    cfg.kv = f->kv;
    cfg.auth = &f->auth;
    assert_int_equal(apply_init(&f->ap, &cfg), 0);
    kv_applied(f->kv, &f->index, &(uint64_t){0});
}

static void close_store(struct fixture *f)
{
    apply_close(&f->ap);
    auth_close(&f->auth);
    kv_close(f->kv);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-auth-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    open_store(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    close_store(f);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Apply msg as InternalRequest field op; returns the request's error. */
static int run(struct fixture *f, enum auth_op op, const ProtobufCMessage *m)
{
    uint8_t tmp[8192];
    size_t len = protobuf_c_message_get_packed_size(m);
    struct buf env;
    struct raft_entry e = {0};
    struct apply_hooks h = {.ctx = f, .on_result = on_result};
    int before = f->results;
    assert_true(len <= sizeof(tmp));
    protobuf_c_message_pack(m, tmp);
    buf_init(&env, 0);
    assert_int_equal(
        apply_envelope(f->index + 1, ME, (enum apply_op)op, tmp, len, &env), 0);
    e.index = ++f->index;
    e.term = 1;
    e.type = RAFT_ENTRY_NORMAL;
    e.data = env.data;
    e.len = env.len;
    assert_int_equal(apply_entries(&f->ap, &e, 1, 1, &h), 0);
    buf_free(&env);
    assert_int_equal(f->results, before + 1);
    return f->err;
}

static int user_add(struct fixture *f, const char *name, const char *pw)
{
    Etcdserverpb__AuthUserAddRequest r =
        ETCDSERVERPB__AUTH_USER_ADD_REQUEST__INIT;
    Authpb__UserAddOptions o = AUTHPB__USER_ADD_OPTIONS__INIT;
    char hash[AUTH_HASH_BYTES_MAX];
    r.name = (char *)name;
    if (pw == NULL) {
        o.no_password = true;
        r.options = &o;
    } else {
        assert_int_equal(auth_password_hash(pw, 4, hash, sizeof(hash)), 0);
        r.hashedpassword = hash;
    }
    return run(f, AUTH_OP_USER_ADD, &r.base);
}

static int role_add(struct fixture *f, const char *name)
{
    Etcdserverpb__AuthRoleAddRequest r =
        ETCDSERVERPB__AUTH_ROLE_ADD_REQUEST__INIT;
    r.name = (char *)name;
    return run(f, AUTH_OP_ROLE_ADD, &r.base);
}

static int grant_role(struct fixture *f, const char *user, const char *role)
{
    Etcdserverpb__AuthUserGrantRoleRequest r =
        ETCDSERVERPB__AUTH_USER_GRANT_ROLE_REQUEST__INIT;
    r.user = (char *)user;
    r.role = (char *)role;
    return run(f, AUTH_OP_USER_GRANT_ROLE, &r.base);
}

static int revoke_role(struct fixture *f, const char *user, const char *role)
{
    Etcdserverpb__AuthUserRevokeRoleRequest r =
        ETCDSERVERPB__AUTH_USER_REVOKE_ROLE_REQUEST__INIT;
    r.name = (char *)user;
    r.role = (char *)role;
    return run(f, AUTH_OP_USER_REVOKE_ROLE, &r.base);
}

/* end: NULL = one key, "" (with end_len 1) handled by the caller */
static int grant_perm(struct fixture *f, const char *role, int type,
                      const char *key, const char *end, size_t end_len)
{
    Etcdserverpb__AuthRoleGrantPermissionRequest r =
        ETCDSERVERPB__AUTH_ROLE_GRANT_PERMISSION_REQUEST__INIT;
    Authpb__Permission p = AUTHPB__PERMISSION__INIT;
    r.name = (char *)role;
    p.permtype = (Authpb__Permission__Type)type;
    p.key.data = (uint8_t *)key;
    p.key.len = strlen(key);
    p.range_end.data = (uint8_t *)end;
    p.range_end.len = end_len;
    r.perm = &p;
    return run(f, AUTH_OP_ROLE_GRANT_PERMISSION, &r.base);
}

static int revoke_perm(struct fixture *f, const char *role, const char *key,
                       const char *end, size_t end_len)
{
    Etcdserverpb__AuthRoleRevokePermissionRequest r =
        ETCDSERVERPB__AUTH_ROLE_REVOKE_PERMISSION_REQUEST__INIT;
    r.role = (char *)role;
    r.key.data = (uint8_t *)key;
    r.key.len = strlen(key);
    r.range_end.data = (uint8_t *)end;
    r.range_end.len = end_len;
    return run(f, AUTH_OP_ROLE_REVOKE_PERMISSION, &r.base);
}

static int enable(struct fixture *f)
{
    Etcdserverpb__AuthEnableRequest r = ETCDSERVERPB__AUTH_ENABLE_REQUEST__INIT;
    return run(f, AUTH_OP_ENABLE, &r.base);
}

static int disable(struct fixture *f)
{
    Etcdserverpb__AuthDisableRequest r =
        ETCDSERVERPB__AUTH_DISABLE_REQUEST__INIT;
    return run(f, AUTH_OP_DISABLE, &r.base);
}

static int user_delete(struct fixture *f, const char *name)
{
    Etcdserverpb__AuthUserDeleteRequest r =
        ETCDSERVERPB__AUTH_USER_DELETE_REQUEST__INIT;
    r.name = (char *)name;
    return run(f, AUTH_OP_USER_DELETE, &r.base);
}

static int role_delete(struct fixture *f, const char *name)
{
    Etcdserverpb__AuthRoleDeleteRequest r =
        ETCDSERVERPB__AUTH_ROLE_DELETE_REQUEST__INIT;
    r.role = (char *)name;
    return run(f, AUTH_OP_ROLE_DELETE, &r.base);
}

static int check(struct fixture *f, const char *user, enum auth_perm_type t,
                 const char *key, const char *end, size_t end_len)
{
    return auth_check(&f->auth, user, t, (const uint8_t *)key, strlen(key),
                      (const uint8_t *)end, end_len);
}

/* ------------------------------------------------------------- tests */

static void enable_needs_root_user_with_root_role(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(enable(f), ERR_ROOT_USER_NOT_EXIST);
    assert_int_equal(user_add(f, "root", "pw"), 0);
    assert_int_equal(enable(f), ERR_ROOT_ROLE_NOT_EXIST);
    assert_false(auth_enabled(&f->auth));
    /* role root may be granted before it exists (etcdctl relies on it) */
    assert_int_equal(grant_role(f, "root", "root"), 0);
    assert_int_equal(enable(f), 0);
    assert_true(auth_enabled(&f->auth));
    assert_int_equal(enable(f), 0); /* already on: fine, nothing changes */
}

static void root_is_protected_while_enabled(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(user_add(f, "root", "pw"), 0);
    assert_int_equal(role_add(f, "root"), 0);
    assert_int_equal(grant_role(f, "root", "root"), 0);
    assert_int_equal(enable(f), 0);
    assert_int_equal(user_delete(f, "root"), ERR_INVALID_AUTH_MGMT);
    assert_int_equal(revoke_role(f, "root", "root"), ERR_INVALID_AUTH_MGMT);
    assert_int_equal(role_delete(f, "root"), ERR_INVALID_AUTH_MGMT);
    assert_int_equal(disable(f), 0);
    assert_int_equal(revoke_role(f, "root", "root"), 0);
    assert_int_equal(role_delete(f, "root"), 0);
    assert_int_equal(user_delete(f, "root"), 0);
}

static void errors_match_etcd(void **state)
{
    struct fixture *f = *state;
    uint64_t rev;
    assert_int_equal(user_add(f, "", "pw"), ERR_USER_EMPTY);
    assert_int_equal(role_add(f, ""), ERR_ROLE_EMPTY);
    assert_int_equal(user_add(f, "alice", "pw"), 0);
    assert_int_equal(user_add(f, "alice", "pw"), ERR_USER_ALREADY_EXIST);
    assert_int_equal(role_add(f, "r1"), 0);
    assert_int_equal(role_add(f, "r1"), ERR_ROLE_ALREADY_EXIST);
    assert_int_equal(grant_role(f, "bob", "r1"), ERR_USER_NOT_FOUND);
    assert_int_equal(grant_role(f, "alice", "nope"), ERR_ROLE_NOT_FOUND);
    assert_int_equal(revoke_role(f, "alice", "r1"), ERR_ROLE_NOT_GRANTED);
    assert_int_equal(user_delete(f, "bob"), ERR_USER_NOT_FOUND);
    assert_int_equal(role_delete(f, "nope"), ERR_ROLE_NOT_FOUND);
    assert_int_equal(grant_perm(f, "nope", 0, "a", NULL, 0),
                     ERR_ROLE_NOT_FOUND);
    assert_int_equal(revoke_perm(f, "r1", "a", NULL, 0),
                     ERR_PERMISSION_NOT_GRANTED);
    /* a granted role again: accepted, no new revision */
    assert_int_equal(grant_role(f, "alice", "r1"), 0);
    rev = auth_revision(&f->auth);
    assert_int_equal(grant_role(f, "alice", "r1"), 0);
    assert_int_equal(auth_revision(&f->auth), rev);
    assert_string_equal(err_str(ERR_ROOT_ROLE_NOT_EXIST),
                        "etcdserver: root user does not have root role");
}

static void every_change_adds_one_revision(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(auth_revision(&f->auth), 0);
    assert_int_equal(user_add(f, "u", "pw"), 0);
    assert_int_equal(auth_revision(&f->auth), 1);
    assert_int_equal(role_add(f, "r"), 0);
    assert_int_equal(grant_role(f, "u", "r"), 0);
    assert_int_equal(grant_perm(f, "r", AUTH_PERM_READ, "k", NULL, 0), 0);
    assert_int_equal(revoke_perm(f, "r", "k", NULL, 0), 0);
    assert_int_equal(revoke_role(f, "u", "r"), 0);
    assert_int_equal(auth_revision(&f->auth), 6);
    assert_int_equal(user_add(f, "u", "pw"), ERR_USER_ALREADY_EXIST);
    assert_int_equal(auth_revision(&f->auth), 6);
}

/* A user u with role r and grants; root; auth on. */
static void make_users(struct fixture *f)
{
    assert_int_equal(user_add(f, "root", "pw"), 0);
    assert_int_equal(grant_role(f, "root", "root"), 0);
    assert_int_equal(user_add(f, "u", "pw"), 0);
    assert_int_equal(role_add(f, "r"), 0);
    assert_int_equal(role_add(f, "r2"), 0);
    assert_int_equal(grant_role(f, "u", "r"), 0);
    assert_int_equal(grant_role(f, "u", "r2"), 0);
    /* r: read one key "k"; readwrite [a, c); write prefix "w/" */
    assert_int_equal(grant_perm(f, "r", AUTH_PERM_READ, "k", NULL, 0), 0);
    assert_int_equal(grant_perm(f, "r", AUTH_PERM_READWRITE, "a", "c", 1), 0);
    assert_int_equal(grant_perm(f, "r", AUTH_PERM_WRITE, "w/", "w0", 2), 0);
    /* r2: read [c, e) and everything from "z" on */
    assert_int_equal(grant_perm(f, "r2", AUTH_PERM_READ, "c", "e", 1), 0);
    assert_int_equal(grant_perm(f, "r2", AUTH_PERM_READ, "z", "\0", 1), 0);
    assert_int_equal(enable(f), 0);
}

static void checker_covers_exactly_the_grants(void **state)
{
    struct fixture *f = *state;
    make_users(f);
    /* single keys */
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "k", NULL, 0), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_WRITE, "k", NULL, 0),
                     ERR_PERMISSION_DENIED);
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "k0", NULL, 0),
                     ERR_PERMISSION_DENIED);
    assert_int_equal(check(f, "u", AUTH_PERM_WRITE, "b", NULL, 0), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_WRITE, "c", NULL, 0),
                     ERR_PERMISSION_DENIED);
    /* prefix grant covers its keys and its own range, not beyond */
    assert_int_equal(check(f, "u", AUTH_PERM_WRITE, "w/x", NULL, 0), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_WRITE, "w/", "w0", 2), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_WRITE, "w/", "w1", 2),
                     ERR_PERMISSION_DENIED);
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "w/x", NULL, 0),
                     ERR_PERMISSION_DENIED);
    /* union over two roles: [a, c) + [c, e) covers [a, e), not [a, f) */
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "a", "e", 1), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "b", "d", 1), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "a", "f", 1),
                     ERR_PERMISSION_DENIED);
    /* from-key: "z" on covers any range starting at or after z */
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "zz", "\0", 1), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "z", "\xff\xff", 2), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "y", "\0", 1),
                     ERR_PERMISSION_DENIED);
    /* root and the other users */
    assert_int_equal(check(f, "root", AUTH_PERM_WRITE, "", "\0", 1), 0);
    assert_int_equal(check(f, "nobody", AUTH_PERM_READ, "k", NULL, 0),
                     ERR_PERMISSION_DENIED);
    assert_int_equal(check(f, "", AUTH_PERM_READ, "k", NULL, 0),
                     ERR_USER_EMPTY);
    assert_int_equal(auth_check_admin(&f->auth, "u"), ERR_PERMISSION_DENIED);
    assert_int_equal(auth_check_admin(&f->auth, "root"), 0);
    assert_int_equal(auth_check_admin(&f->auth, ""), ERR_USER_EMPTY);
    assert_int_equal(auth_check_admin(&f->auth, "x"), ERR_USER_NOT_FOUND);
    /* a revoked grant and a deleted role no longer count */
    assert_int_equal(revoke_perm(f, "r", "k", NULL, 0), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "k", NULL, 0),
                     ERR_PERMISSION_DENIED);
    assert_int_equal(role_delete(f, "r2"), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "c", NULL, 0),
                     ERR_PERMISSION_DENIED);
    /* auth off: everything goes */
    assert_int_equal(disable(f), 0);
    assert_int_equal(check(f, "", AUTH_PERM_WRITE, "c", NULL, 0), 0);
}

static void grant_again_updates_the_type(void **state)
{
    struct fixture *f = *state;
    make_users(f);
    assert_int_equal(check(f, "u", AUTH_PERM_WRITE, "k", NULL, 0),
                     ERR_PERMISSION_DENIED);
    assert_int_equal(grant_perm(f, "r", AUTH_PERM_READWRITE, "k", NULL, 0), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_WRITE, "k", NULL, 0), 0);
    const struct auth_state *st = auth_lock(&f->auth);
    assert_int_equal(auth_state_role(st, "r")->perms_count, 3);
    auth_unlock(&f->auth);
}

/* Grants are listed in etcd 3.4's order: by key alone, those with one key
 * in the order made (found by kv_diff.test: RoleGet listed them by
 * range_end too). A grant again updates the grant on exactly that key and
 * range_end, wherever it is among its key's (etcd adds a second one when
 * it is not the first: docs/kv.md). */
static void grants_of_one_key_keep_the_order_made(void **state)
{
    struct fixture *f = *state;
    const struct auth_role *r;
    assert_int_equal(role_add(f, "o"), 0);
    assert_int_equal(grant_perm(f, "o", AUTH_PERM_READ, "k", "z", 1), 0);
    assert_int_equal(grant_perm(f, "o", AUTH_PERM_WRITE, "k", NULL, 0), 0);
    assert_int_equal(grant_perm(f, "o", AUTH_PERM_READ, "a", NULL, 0), 0);
    const struct auth_state *st = auth_lock(&f->auth);
    r = auth_state_role(st, "o");
    assert_int_equal(r->perms_count, 3);
    assert_memory_equal(r->perms[0].key, "a", 1);
    assert_int_equal(r->perms[1].end_len, 1); /* k..z, made first */
    assert_int_equal(r->perms[2].end_len, 0); /* k alone */
    auth_unlock(&f->auth);
    assert_int_equal(grant_perm(f, "o", AUTH_PERM_READ, "k", NULL, 0), 0);
    st = auth_lock(&f->auth);
    r = auth_state_role(st, "o");
    assert_int_equal(r->perms_count, 3);
    assert_int_equal(r->perms[2].type, AUTH_PERM_READ);
    auth_unlock(&f->auth);
    assert_int_equal(revoke_perm(f, "o", "k", NULL, 0), 0);
    st = auth_lock(&f->auth);
    r = auth_state_role(st, "o");
    assert_int_equal(r->perms_count, 2);
    assert_int_equal(r->perms[1].end_len, 1);
    auth_unlock(&f->auth);
    assert_int_equal(revoke_perm(f, "o", "k", NULL, 0),
                     ERR_PERMISSION_NOT_GRANTED);
}

static void state_survives_reopen(void **state)
{
    struct fixture *f = *state;
    const struct auth_state *st;
    const struct auth_user *u;
    const struct auth_role *r;
    uint64_t rev;
    make_users(f);
    rev = auth_revision(&f->auth);
    close_store(f);
    open_store(f);
    assert_true(auth_enabled(&f->auth));
    assert_int_equal(auth_revision(&f->auth), rev);
    st = auth_lock(&f->auth);
    assert_int_equal(st->users_count, 2);
    assert_int_equal(st->roles_count, 2);
    u = auth_state_user(st, "u");
    assert_non_null(u);
    assert_int_equal(u->roles_count, 2);
    assert_string_equal(u->roles[0], "r");
    assert_string_equal(u->roles[1], "r2");
    assert_int_equal(auth_password_verify("pw", u->hash), 0);
    r = auth_state_role(st, "r");
    assert_non_null(r);
    assert_int_equal(r->perms_count, 3);
    assert_memory_equal(r->perms[0].key, "a", 1);
    assert_int_equal(r->perms[0].type, AUTH_PERM_READWRITE);
    auth_unlock(&f->auth);
    /* and the checker answers as before */
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "a", "e", 1), 0);
    assert_int_equal(check(f, "u", AUTH_PERM_READ, "a", "f", 1),
                     ERR_PERMISSION_DENIED);
}

static void tokens_expire_refresh_and_die_with_their_user(void **state)
{
    struct fixture *f = *state;
    char tok[AUTH_TOKEN_BYTES_MAX];
    char tok2[AUTH_TOKEN_BYTES_MAX];
    char user[64];
    Etcdserverpb__AuthUserChangePasswordRequest cp =
        ETCDSERVERPB__AUTH_USER_CHANGE_PASSWORD_REQUEST__INIT;
    char hash[AUTH_HASH_BYTES_MAX];
    assert_int_equal(auth_token_new(&f->auth, "u", 0, tok, sizeof(tok)),
                     ERR_AUTH_NOT_ENABLED);
    make_users(f);
    assert_int_equal(auth_token_new(&f->auth, "u", 1000, tok, sizeof(tok)), 0);
    assert_int_equal(strlen(tok) > 17, 1);
    assert_int_equal(tok[16], '.');
    /* TTL 1000 ms, refreshed by each use */
    assert_int_equal(auth_token_user(&f->auth, tok, 1900, user, sizeof(user)),
                     0);
    assert_string_equal(user, "u");
    assert_int_equal(auth_token_user(&f->auth, tok, 2800, user, sizeof(user)),
                     0);
    assert_int_equal(auth_token_user(&f->auth, tok, 3800, user, sizeof(user)),
                     ERR_INVALID_AUTH_TOKEN);
    assert_int_equal(
        auth_token_user(&f->auth, "bogus.1", 0, user, sizeof(user)),
        ERR_INVALID_AUTH_TOKEN);
    /* a new password ends the user's tokens, not others' */
    assert_int_equal(auth_token_new(&f->auth, "u", 5000, tok, sizeof(tok)), 0);
    assert_int_equal(auth_token_new(&f->auth, "root", 5000, tok2, sizeof(tok2)),
                     0);
    assert_string_not_equal(tok, tok2);
    assert_int_equal(auth_password_hash("new", 4, hash, sizeof(hash)), 0);
    cp.name = (char *)"u";
    cp.hashedpassword = hash;
    assert_int_equal(run(f, AUTH_OP_USER_CHANGE_PASSWORD, &cp.base), 0);
    assert_int_equal(auth_token_user(&f->auth, tok, 5001, user, sizeof(user)),
                     ERR_INVALID_AUTH_TOKEN);
    assert_int_equal(auth_token_user(&f->auth, tok2, 5001, user, sizeof(user)),
                     0);
    /* disabling auth ends every token */
    assert_int_equal(disable(f), 0);
    assert_int_equal(auth_token_count(&f->auth), 0);
    assert_int_equal(auth_token_user(&f->auth, tok2, 5002, user, sizeof(user)),
                     ERR_INVALID_AUTH_TOKEN);
}

static void tokens_sweep_drops_only_expired(void **state)
{
    struct fixture *f = *state;
    char tok[AUTH_TOKEN_BYTES_MAX];
    make_users(f);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(
            auth_token_new(&f->auth, "u", (uint64_t)i * 100, tok, sizeof(tok)),
            0);
    }
    assert_int_equal(auth_token_count(&f->auth), 100);
    auth_token_sweep(&f->auth, 5000); /* expiry = i*100 + 1000 <= 5000 */
    assert_int_equal(auth_token_count(&f->auth), 59);
}

static void passwords_hash_and_verify(void **state)
{
    char h1[AUTH_HASH_BYTES_MAX];
    char h2[AUTH_HASH_BYTES_MAX];
    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;
    (void)state;
    assert_int_equal(auth_password_hash("secret", 4, h1, sizeof(h1)), 0);
    assert_int_equal(auth_password_hash("secret", 4, h2, sizeof(h2)), 0);
    assert_memory_equal(h1, "$2b$04$", 7);
    assert_string_not_equal(h1, h2); /* salted */
    assert_int_equal(auth_password_verify("secret", h1), 0);
    assert_int_equal(auth_password_verify("Secret", h1), ERR_AUTH_FAILED);
    assert_int_equal(auth_password_verify("secret", ""), ERR_AUTH_FAILED);
    assert_int_equal(auth_password_hash("x", 3, h1, sizeof(h1)), ERR_INVALID);
    /* "$2a$" hashes (Go's bcrypt, etcd 3.5 hashedPassword) verify too */
    memset(&cd, 0, sizeof(cd));
    assert_non_null(
        crypt_gensalt_rn("$2a$", 4, NULL, 0, setting, sizeof(setting)));
    assert_non_null(crypt_r("pw", setting, &cd));
    assert_int_equal(auth_password_verify("pw", cd.output), 0);
    assert_int_equal(auth_password_verify("pX", cd.output), ERR_AUTH_FAILED);
}

static void records_reject_garbage(void **state)
{
    struct auth_user *u = NULL;
    struct auth_role *r = NULL;
    struct auth_user src = {.name = (char *)"n", .hash = (char *)"$2b$x"};
    uint8_t *v;
    size_t len;
    (void)state;
    assert_int_equal(auth_user_decode("CAUU", 4, &u), ERR_BAD_MAGIC);
    assert_int_equal(auth_user_decode("CAUU\x02", 5, &u), ERR_BAD_VERSION);
    assert_int_equal(auth_user_decode("CAUR\x01", 5, &u), ERR_BAD_MAGIC);
    assert_int_equal(auth_role_decode("CAUR\x01\xff\xff", 7, &r), ERR_CORRUPT);
    assert_int_equal(auth_user_encode(&src, &v, &len), 0);
    assert_int_equal(auth_user_decode(v, len, &u), 0);
    assert_string_equal(u->name, "n");
    assert_string_equal(u->hash, "$2b$x");
    auth_user_free(u);
    mem_free(v);
}

static void bad_hash_in_log_is_refused(void **state)
{
    struct fixture *f = *state;
    Etcdserverpb__AuthUserAddRequest r =
        ETCDSERVERPB__AUTH_USER_ADD_REQUEST__INIT;
    r.name = (char *)"x";
    r.password = (char *)"clear"; /* never used: the log carries hashes */
    assert_int_equal(run(f, AUTH_OP_USER_ADD, &r.base), ERR_BAD_REQUEST);
    assert_int_equal(user_add(f, "nopw", NULL), 0);
    const struct auth_state *st = auth_lock(&f->auth);
    assert_true(auth_state_user(st, "nopw")->no_password);
    assert_null(auth_state_user(st, "x"));
    auth_unlock(&f->auth);
    assert_int_equal(user_add(f, "root", "pw"), 0);
    assert_int_equal(grant_role(f, "root", "root"), 0);
    assert_int_equal(enable(f), 0);
    char hash[AUTH_HASH_BYTES_MAX];
    assert_int_equal(auth_user_hash(&f->auth, "nopw", hash, sizeof(hash)),
                     ERR_AUTH_FAILED);
    assert_int_equal(auth_user_hash(&f->auth, "root", hash, sizeof(hash)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(enable_needs_root_user_with_root_role,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(root_is_protected_while_enabled, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(errors_match_etcd, setup, teardown),
        cmocka_unit_test_setup_teardown(every_change_adds_one_revision, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(checker_covers_exactly_the_grants,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(grant_again_updates_the_type, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(grants_of_one_key_keep_the_order_made,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(state_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(
            tokens_expire_refresh_and_die_with_their_user, setup, teardown),
        cmocka_unit_test_setup_teardown(tokens_sweep_drops_only_expired, setup,
                                        teardown),
        cmocka_unit_test(passwords_hash_and_verify),
        cmocka_unit_test(records_reject_garbage),
        cmocka_unit_test_setup_teardown(bad_hash_in_log_is_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_kv_basic.c - open/reopen/lock, Put, DeleteRange and Range against
 * etcd 3.4's rules (etcd-api.md 1.5.1-1.5.3, section 7).
 *
 * Method: real LMDB stores in temp dirs; each test drives the public API
 * and checks revisions, records and errors; bad input must leave the store
 * exactly as it was (same revision, same answers).
 */
#include <fcntl.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/kv/kv_test.h"

#define OUT_MAX 4096

/* --- environment -----------------------------------------------------------
 */

static void open_creates_store_at_revision_1(void **state)
{
    struct fx *f = *state;
    uint64_t idx = 9, term = 9;
    assert_int_equal(kv_rev(f->kv), 1);
    assert_int_equal(kv_compact_rev(f->kv), 0);
    kv_applied(f->kv, &idx, &term);
    assert_int_equal(idx, 0);
    assert_int_equal(term, 0);
    assert_int_equal(t_put(f->kv, "a", "1"), 2); /* first write: rev 2 */
}

static void reopen_keeps_revision_compaction_and_applied_index(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    for (int i = 0; i < 5; i++) {
        t_put(f->kv, "k", "v");
    }
    assert_int_equal(t_compact(f->kv, 4), 0);
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_write_commit(wr, 77, 3), 0);
    fx_reopen(f);
    uint64_t idx, term;
    kv_applied(f->kv, &idx, &term);
    assert_int_equal(kv_rev(f->kv), 6);
    assert_int_equal(kv_compact_rev(f->kv), 4);
    assert_int_equal(idx, 77);
    assert_int_equal(term, 3);
    char v[16];
    struct kv_kv m;
    assert_int_equal(t_get(f->kv, "k", 0, v, sizeof(v), &m), 0);
    assert_int_equal(m.version, 5);
    assert_int_equal(t_get(f->kv, "k", 3, v, sizeof(v), &m), ERR_COMPACTED);
}

static void second_open_is_locked_also_from_forked_child(void **state)
{
    struct fx *f = *state;
    struct kv *other = NULL;
    assert_int_equal(kv_open(f->dir, &f->opts, &other), ERR_LOCKED);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct kv *c = NULL;
        int rc = kv_open(f->dir, &f->opts, &c);
        _exit(rc == ERR_LOCKED ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* Closing releases the lock. */
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
}

static void open_rejects_foreign_files(void **state)
{
    struct fx *f = *state;
    char dir[64], path[128];
    struct kv *kv = NULL;
    (void)f;
    /* Garbage where data.mdb should be. */
    make_tmpdir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 5000; i++) {
        fputs("not an lmdb file ", fp);
    }
    fclose(fp);
    assert_int_equal(kv_open(dir, NULL, &kv), ERR_BAD_MAGIC);
    rm_rf(dir);
    /* An LMDB file that is not ours. */
    make_tmpdir(dir, sizeof(dir));
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = {3, "foo"}, v = {3, "bar"};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(kv_open(dir, NULL, &kv), ERR_BAD_MAGIC);
    rm_rf(dir);
}

static void open_rejects_a_newer_format_version(void **state)
{
    struct fx *f = *state;
    fx_close(f);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    uint8_t ver[4] = {0, 0, 0, 3};
    MDB_val k = {7, "version"}, v = {4, ver};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(fx_open(f), ERR_BAD_VERSION);
    assert_null(f->kv);
}

/* --- format 1 (values also in the live table) ------------------------------
 * Format 1 wrote each live row as its 36-byte header followed by a copy of
 * the value (kv.h, On disk). downgrade() rewrites a closed store that way,
 * from the rev records, and sets version 1: what a format-1 build left. */

static void raw_open(const char *dir, MDB_env **env, MDB_txn **txn,
                     MDB_dbi *meta, MDB_dbi *live, MDB_dbi *rev)
{
    assert_int_equal(mdb_env_create(env), 0);
    assert_int_equal(mdb_env_set_maxdbs(*env, 16), 0);
    assert_int_equal(mdb_env_open(*env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(*env, NULL, 0, txn), 0);
    assert_int_equal(mdb_dbi_open(*txn, "meta", 0, meta), 0);
    assert_int_equal(mdb_dbi_open(*txn, "live", 0, live), 0);
    assert_int_equal(mdb_dbi_open(*txn, "rev", 0, rev), 0);
}

static uint32_t raw_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void downgrade(const char *dir)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, live, rev;
    MDB_cursor *c;
    MDB_val k, d;
    static uint8_t row[36 + 8192];
    uint8_t key[512];
    raw_open(dir, &env, &txn, &meta, &live, &rev);
    assert_int_equal(mdb_cursor_open(txn, live, &c), 0);
    int rc = mdb_cursor_get(c, &k, &d, MDB_FIRST);
    while (rc == 0) {
        assert_int_equal(d.mv_size, 36);
        uint8_t rk[12];
        memcpy(rk, (const uint8_t *)d.mv_data + 8, 8);      /* mod */
        memcpy(rk + 8, (const uint8_t *)d.mv_data + 32, 4); /* sub */
        MDB_val rkv = {12, rk}, rv;
        assert_int_equal(mdb_get(txn, rev, &rkv, &rv), 0);
        const uint8_t *p = rv.mv_data;
        size_t klen = raw_be32(p + 25);
        size_t vlen = rv.mv_size - 29 - klen;
        assert_true(36 + vlen <= sizeof(row));
        memcpy(row, d.mv_data, 36);
        memcpy(row + 36, p + 29 + klen, vlen);
        memcpy(key, k.mv_data, k.mv_size);
        MDB_val nk = {k.mv_size, key}, nd = {36 + vlen, row};
        assert_int_equal(mdb_cursor_put(c, &nk, &nd, MDB_CURRENT), 0);
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
    }
    assert_int_equal(rc, MDB_NOTFOUND);
    mdb_cursor_close(c);
    uint8_t ver[4] = {0, 0, 0, 1};
    k = (MDB_val){7, "version"};
    d = (MDB_val){4, ver};
    assert_int_equal(mdb_put(txn, meta, &k, &d, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* The format version and the longest live row of a closed store. */
static void raw_format(const char *dir, uint32_t *version, size_t *row_max)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, live, rev;
    MDB_cursor *c;
    MDB_val k = {7, "version"}, d;
    raw_open(dir, &env, &txn, &meta, &live, &rev);
    assert_int_equal(mdb_get(txn, meta, &k, &d), 0);
    assert_int_equal(d.mv_size, 4);
    *version = raw_be32(d.mv_data);
    *row_max = 0;
    assert_int_equal(mdb_cursor_open(txn, live, &c), 0);
    while (mdb_cursor_get(c, &k, &d, MDB_NEXT) == 0) {
        *row_max = d.mv_size > *row_max ? d.mv_size : *row_max;
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* Every record of every key at rev (0: current), with its metadata, and
 * the HashKV at the current revision. */
static void dump(struct kv *kv, int64_t rev, char *out, size_t cap)
{
    struct kv_read *rd;
    struct kv_result res = {0};
    struct kv_range_resp resp;
    struct kv_range_req req = rq_all();
    uint32_t h;
    int64_t crev, hrev;
    size_t n = 0;
    req.revision = rev;
    assert_int_equal(kv_read_begin(kv, &rd), 0);
    assert_int_equal(kv_range(rd, &req, &res, &resp), 0);
    for (size_t i = 0; i < resp.kvs_count; i++) {
        const struct kv_kv *x = &resp.kvs[i];
        n += (size_t)snprintf(
            out + n, cap - n, "%.*s=%.*s@%lld/%lld/%lld/%lld,", (int)x->key_len,
            (const char *)x->key, (int)(x->value_len > 40 ? 40 : x->value_len),
            (const char *)x->value, (long long)x->create_revision,
            (long long)x->mod_revision, (long long)x->version,
            (long long)x->lease);
        assert_true(n < cap);
    }
    assert_int_equal(kv_hash(rd, 0, &h, &crev, &hrev), 0);
    snprintf(out + n, cap - n, "count=%lld hash=%08x", (long long)resp.count,
             h);
    kv_result_free(&res);
    kv_read_end(rd);
}

static void history_for_migration(struct kv *kv)
{
    static char big[3001];
    memset(big, 'B', sizeof(big) - 1);
    struct kv_write *wr;
    int64_t rev;
    assert_int_equal(kv_write_begin(kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_grant(wr, 7, 60), 0);
    assert_int_equal(kv_write_commit(wr, 1, 1), 0);
    t_put(kv, "a", "1");
    t_put(kv, "b", "2");
    t_put(kv, "a", "3");
    t_del(kv, "b", NULL);
    t_put(kv, "empty", "");
    t_put(kv, "big", big);
    struct kv_put_req lp = {.key = U8("leased"),
                            .key_len = 6,
                            .value = U8("L"),
                            .value_len = 1,
                            .lease = 7};
    assert_int_equal(t_put_req(kv, &lp, NULL, &rev), 0);
    struct kv_op s[] = {op_put("t1", "x"), op_put("t2", "y")};
    struct kv_txn_req t = {NULL, 0, s, 2, NULL, 0};
    assert_int_equal(t_txn(kv, &t, NULL, NULL), 0);
    assert_int_equal(t_compact(kv, 5), 0);
    t_put(kv, "a", "4");
}

static void open_migrates_a_format_1_store(void **state)
{
    struct fx *f = *state;
    static char want_now[OUT_MAX], want_past[OUT_MAX], got[OUT_MAX];
    char v1[128];
    history_for_migration(f->kv);
    int64_t rev = kv_rev(f->kv);
    dump(f->kv, 0, want_now, sizeof(want_now));
    dump(f->kv, rev - 2, want_past, sizeof(want_past));
    fx_close(f);
    downgrade(f->dir);
    uint32_t version;
    size_t row_max;
    raw_format(f->dir, &version, &row_max);
    assert_int_equal(version, 1);
    assert_int_equal(row_max, 36 + 3000); /* "big" carries its value */
    /* A copy of the format-1 file, for a snapshot install below. */
    snprintf(v1, sizeof(v1), "%s.v1", f->dir);
    snprintf(got, sizeof(got), "cp %s/data.mdb %s", f->dir, v1);
    assert_int_equal(system(got), 0);
    /* Open migrates: same answers, same hash, format 2 on disk. */
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(kv_rev(f->kv), rev);
    assert_int_equal(kv_compact_rev(f->kv), 5);
    dump(f->kv, 0, got, sizeof(got));
    assert_string_equal(got, want_now);
    dump(f->kv, rev - 2, got, sizeof(got));
    assert_string_equal(got, want_past);
    struct kv_range_req q = rq_key("big");
    q.keys_only = true;
    int64_t count;
    assert_int_equal(t_range(f->kv, &q, got, sizeof(got), &count, NULL), 0);
    assert_string_equal(got, "big");
    assert_int_equal(t_put(f->kv, "a", "5"), rev + 1);
    fx_close(f);
    raw_format(f->dir, &version, &row_max);
    assert_int_equal(version, 2);
    assert_int_equal(row_max, 36);
    assert_int_equal(fx_open(f), 0); /* a second open has nothing to do */
    assert_int_equal(t_get(f->kv, "a", 0, got, sizeof(got), NULL), 0);
    assert_string_equal(got, "5");
    assert_int_equal(t_get(f->kv, "a", rev, got, sizeof(got), NULL), 0);
    assert_string_equal(got, "4");
    /* A format-1 snapshot (an older member's) installs and migrates. */
    assert_int_equal(kv_snapshot_install(f->kv, v1), 0);
    assert_int_equal(kv_rev(f->kv), rev);
    dump(f->kv, 0, got, sizeof(got));
    assert_string_equal(got, want_now);
    unlink(v1);
}

/* A live row whose rev record is gone (it cannot happen: compaction keeps
 * every key's latest record) is ERR_CORRUPT when its value is needed; a
 * count or keys-only range does not read values. */
static void a_live_key_without_its_rev_record_is_corrupt(void **state)
{
    struct fx *f = *state;
    char got[OUT_MAX];
    int64_t count;
    int64_t rev = t_put(f->kv, "k", "v");
    fx_close(f);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta, live, revdb;
    raw_open(f->dir, &env, &txn, &meta, &live, &revdb);
    uint8_t rk[12] = {0};
    rk[7] = (uint8_t)rev;
    MDB_val k = {12, rk};
    assert_int_equal(mdb_del(txn, revdb, &k, NULL), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    assert_int_equal(fx_open(f), 0);
    struct kv_range_req q = rq_key("k");
    assert_int_equal(t_range(f->kv, &q, got, sizeof(got), NULL, NULL),
                     ERR_CORRUPT);
    q.keys_only = true;
    assert_int_equal(t_range(f->kv, &q, got, sizeof(got), &count, NULL), 0);
    assert_string_equal(got, "k");
    q.keys_only = false;
    q.count_only = true;
    assert_int_equal(t_range(f->kv, &q, NULL, 0, &count, NULL), 0);
    assert_int_equal(count, 1);
}

/* --- put -----------------------------------------------------------------*/

static void put_adds_one_revision_and_counts_versions(void **state)
{
    struct fx *f = *state;
    struct kv_kv m;
    char v[16];
    assert_int_equal(t_put(f->kv, "a", "1"), 2);
    assert_int_equal(t_put(f->kv, "b", "1"), 3);
    assert_int_equal(t_put(f->kv, "a", "2"), 4);
    assert_int_equal(t_get(f->kv, "a", 0, v, sizeof(v), &m), 0);
    assert_string_equal(v, "2");
    assert_int_equal(m.create_revision, 2);
    assert_int_equal(m.mod_revision, 4);
    assert_int_equal(m.version, 2);
    assert_int_equal(m.lease, 0);
}

static void put_of_unchanged_value_still_adds_a_revision(void **state)
{
    struct fx *f = *state;
    struct kv_kv m;
    assert_int_equal(t_put(f->kv, "a", "same"), 2);
    assert_int_equal(t_put(f->kv, "a", "same"), 3);
    assert_int_equal(t_get(f->kv, "a", 0, NULL, 0, &m), 0);
    assert_int_equal(m.version, 2);
    assert_int_equal(m.mod_revision, 3);
}

static void put_prev_kv_returns_the_record_it_replaced(void **state)
{
    struct fx *f = *state;
    struct kv_put_req req = {.key = U8("a"), .key_len = 1, .prev_kv = true};
    struct kv_put_resp resp;
    req.value = U8("new");
    req.value_len = 3;
    assert_int_equal(t_put_req(f->kv, &req, &resp, NULL), 0);
    assert_false(resp.has_prev); /* nothing before */
    assert_int_equal(t_put_req(f->kv, &req, &resp, NULL), 0);
    assert_true(resp.has_prev);
    assert_int_equal(resp.prev_kv.mod_revision, 2);
    assert_int_equal(resp.prev_kv.version, 1);
    assert_memory_equal(resp.prev_kv.value, "new", 3);
}

static void put_ignore_value_keeps_value_and_needs_the_key(void **state)
{
    struct fx *f = *state;
    struct kv_put_req req = {.key = U8("a"), .key_len = 1};
    char v[16];
    struct kv_kv m;
    req.ignore_value = true;
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), ERR_KEY_NOT_FOUND);
    assert_int_equal(kv_rev(f->kv), 1);
    t_put(f->kv, "a", "keep");
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), 0);
    assert_int_equal(t_get(f->kv, "a", 0, v, sizeof(v), &m), 0);
    assert_string_equal(v, "keep");
    assert_int_equal(m.version, 2);
    req.value = U8("x");
    req.value_len = 1;
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), ERR_VALUE_PROVIDED);
    assert_int_equal(kv_rev(f->kv), 3);
}

static void put_ignore_lease_keeps_lease_and_needs_the_key(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_kv m;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_grant(wr, 7, 60), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    struct kv_put_req req = {.key = U8("a"), .key_len = 1, .ignore_lease = 1};
    req.value = U8("v2");
    req.value_len = 2;
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), ERR_KEY_NOT_FOUND);
    struct kv_put_req first = {.key = U8("a"), .key_len = 1, .lease = 7};
    assert_int_equal(t_put_req(f->kv, &first, NULL, NULL), 0);
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), 0);
    assert_int_equal(t_get(f->kv, "a", 0, NULL, 0, &m), 0);
    assert_int_equal(m.lease, 7);
    req.lease = 7;
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), ERR_LEASE_PROVIDED);
}

static void put_with_a_missing_lease_is_lease_not_found(void **state)
{
    struct fx *f = *state;
    struct kv_put_req req = {.key = U8("a"), .key_len = 1, .lease = 99};
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), ERR_LEASE_NOT_FOUND);
    assert_int_equal(kv_rev(f->kv), 1);
    assert_int_equal(t_get(f->kv, "a", 0, NULL, 0, NULL), ERR_NOT_FOUND);
}

static int count_key(void *ctx, const uint8_t *key, size_t key_len)
{
    (void)key;
    (void)key_len;
    (*(int *)ctx)++;
    return 0;
}

static int lease_key_count(struct kv *kv, int64_t id)
{
    struct kv_read *rd;
    int n = 0;
    assert_int_equal(kv_read_begin(kv, &rd), 0);
    assert_int_equal(kv_lease_keys(rd, id, count_key, &n), 0);
    kv_read_end(rd);
    return n;
}

/* etcd checks a lone put's lease before ignore_value's key (apply.go
 * Put) and the key first inside a txn (checkRequestPut). */
static void put_checks_lease_first_alone_and_key_first_in_txn(void **state)
{
    struct fx *f = *state;
    struct kv_put_req req = {.key = U8("gone"), .key_len = 4, .lease = 99};
    req.ignore_value = true;
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), ERR_LEASE_NOT_FOUND);
    struct kv_op op = {.type = KV_OP_PUT};
    op.u.put = req;
    struct kv_txn_req t = {NULL, 0, &op, 1, NULL, 0};
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_KEY_NOT_FOUND);
    assert_int_equal(kv_rev(f->kv), 1);
}

static void put_lease_zero_detaches_the_lease(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_kv m;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_grant(wr, 5, 10), 0);
    assert_int_equal(kv_lease_grant(wr, 6, 10), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    struct kv_put_req req = {.key = U8("a"), .key_len = 1, .lease = 5};
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), 0);
    assert_int_equal(lease_key_count(f->kv, 5), 1);
    req.lease = 6; /* moves */
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), 0);
    assert_int_equal(lease_key_count(f->kv, 5), 0);
    assert_int_equal(lease_key_count(f->kv, 6), 1);
    req.lease = 0;
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), 0);
    assert_int_equal(lease_key_count(f->kv, 6), 0);
    assert_int_equal(t_get(f->kv, "a", 0, NULL, 0, &m), 0);
    assert_int_equal(m.lease, 0);
}

static void bad_input_is_refused_and_leaves_the_store_untouched(void **state)
{
    struct fx *f = *state;
    static uint8_t big[600];
    memset(big, 'k', sizeof(big));
    fx_close(f);
    f->opts.value_bytes_max = 100;
    assert_int_equal(fx_open(f), 0);
    t_put(f->kv, "a", "1");
    struct kv_put_req req = {.key = U8(""), .key_len = 0};
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), ERR_KEY_NOT_PROVIDED);
    req.key = big;
    req.key_len = 512;
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), ERR_KEY_TOO_LARGE);
    req.key_len = 511; /* at the bound: fine */
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), 0);
    req.key = U8("v");
    req.key_len = 1;
    req.value = big;
    req.value_len = 101;
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), ERR_VALUE_TOO_LARGE);
    req.value_len = 100;
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), 0);
    assert_int_equal(kv_rev(f->kv), 4);
    /* Range and delete validate their keys too. */
    struct kv_range_req r = rq_key("");
    assert_int_equal(t_range(f->kv, &r, NULL, 0, NULL, NULL),
                     ERR_KEY_NOT_PROVIDED);
    r = rq_key("a");
    r.sort_order = (enum kv_sort_order)7;
    assert_int_equal(t_range(f->kv, &r, NULL, 0, NULL, NULL), ERR_BAD_REQUEST);
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_delete_resp dr;
    struct kv_op d = op_del("", NULL);
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_delete(wr, &d.u.del, &res, &dr, NULL),
                     ERR_KEY_NOT_PROVIDED);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    assert_int_equal(kv_rev(f->kv), 4);
    char out[OUT_MAX];
    r = rq_all();
    r.keys_only = true;
    int64_t count;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, NULL), 0);
    assert_int_equal(count, 3);
}

/* --- delete --------------------------------------------------------------*/

static void delete_of_a_missing_key_adds_no_revision(void **state)
{
    struct fx *f = *state;
    t_put(f->kv, "a", "1");
    assert_int_equal(t_del(f->kv, "zz", NULL), 0);
    assert_int_equal(t_del(f->kv, "b", "c"), 0);
    assert_int_equal(kv_rev(f->kv), 2);
}

static void delete_range_is_one_revision_and_returns_prev_kvs(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_delete_resp resp;
    char out[OUT_MAX];
    int64_t rev;
    t_put(f->kv, "a", "1");
    t_put(f->kv, "b", "2");
    t_put(f->kv, "c", "3");
    t_put(f->kv, "d", "4");
    struct kv_op d = op_del("b", "d");
    d.u.del.prev_kv = true;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_delete(wr, &d.u.del, &res, &resp, &rev), 0);
    assert_int_equal(rev, 6);
    assert_int_equal(resp.deleted, 2);
    kvs_format(resp.prev_kvs, resp.prev_kvs_count, out, sizeof(out));
    assert_string_equal(out, "b=2,c=3");
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
    struct kv_range_req r = rq_all();
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "a=1,d=4");
    /* Before the delete, at rev 5, both were there. */
    r.revision = 5;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "a=1,b=2,c=3,d=4");
}

static void delete_then_put_restarts_create_version_and_lease(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_kv m;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_grant(wr, 3, 10), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    struct kv_put_req req = {.key = U8("a"), .key_len = 1, .lease = 3};
    assert_int_equal(t_put_req(f->kv, &req, NULL, NULL), 0); /* rev 2 */
    t_put(f->kv, "a", "x");                                  /* rev 3 */
    assert_int_equal(t_del(f->kv, "a", NULL), 1);            /* rev 4 */
    assert_int_equal(t_put(f->kv, "a", "y"), 5);
    assert_int_equal(t_get(f->kv, "a", 0, NULL, 0, &m), 0);
    assert_int_equal(m.create_revision, 5);
    assert_int_equal(m.version, 1);
    assert_int_equal(m.lease, 0);
    assert_int_equal(t_get(f->kv, "a", 4, NULL, 0, NULL), ERR_NOT_FOUND);
    assert_int_equal(t_get(f->kv, "a", 3, NULL, 0, &m), 0);
    assert_int_equal(m.create_revision, 2);
    assert_int_equal(m.version, 2);
}

/* --- range ---------------------------------------------------------------*/

static void put_abc(struct kv *kv)
{
    t_put(kv, "a", "1");     /* 2 */
    t_put(kv, "ab", "2");    /* 3 */
    t_put(kv, "abc", "3");   /* 4 */
    t_put(kv, "b", "4");     /* 5 */
    t_put(kv, "c\xff", "5"); /* 6 */
}

static void range_end_forms_single_from_key_prefix_and_all(void **state)
{
    struct fx *f = *state;
    char out[OUT_MAX];
    put_abc(f->kv);
    struct kv_range_req r = rq_key("ab");
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "ab=2");
    r = rq_from("ab");
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "ab=2,abc=3,b=4,c\xff=5");
    r = rq_span("a", "b"); /* prefix "a" */
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "a=1,ab=2,abc=3");
    r = rq_all();
    int64_t count;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, NULL), 0);
    assert_int_equal(count, 5);
    r = rq_key("zz");
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, NULL), 0);
    assert_string_equal(out, "");
    assert_int_equal(count, 0);
}

static void range_end_at_or_before_key_is_empty(void **state)
{
    struct fx *f = *state;
    char out[OUT_MAX];
    int64_t count = -1;
    put_abc(f->kv);
    struct kv_range_req r = rq_span("b", "a");
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, NULL), 0);
    assert_string_equal(out, "");
    assert_int_equal(count, 0);
    r = rq_span("b", "b");
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, NULL), 0);
    assert_int_equal(count, 0);
}

static void range_limit_sets_more_and_keeps_count(void **state)
{
    struct fx *f = *state;
    char out[OUT_MAX];
    int64_t count;
    bool more;
    put_abc(f->kv);
    struct kv_range_req r = rq_all();
    r.limit = 2;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "a=1,ab=2");
    assert_int_equal(count, 5);
    assert_true(more);
    r.limit = 5;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_false(more);
    assert_int_equal(count, 5);
}

static void range_count_ignores_limit_and_filters(void **state)
{
    struct fx *f = *state;
    char out[OUT_MAX];
    int64_t count;
    bool more;
    put_abc(f->kv);
    struct kv_range_req r = rq_all();
    r.min_mod_revision = 4; /* abc, b, c\xff */
    r.limit = 1;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "abc=3");
    assert_int_equal(count, 5);
    assert_true(more);
    r = rq_all();
    r.max_create_revision = 3;
    r.min_create_revision = 3;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "ab=2");
    assert_int_equal(count, 5);
    assert_false(more);
    r = rq_all();
    r.max_mod_revision = 2;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "a=1");
    assert_int_equal(count, 5);
}

static void range_sort_defaults_to_ascending_for_other_targets(void **state)
{
    struct fx *f = *state;
    char out[OUT_MAX];
    t_put(f->kv, "a", "1");
    t_put(f->kv, "b", "1");
    t_put(f->kv, "a", "2"); /* a: version 2, mod 4 */
    t_put(f->kv, "c", "0");
    struct kv_range_req r = rq_all();
    r.sort_target = KV_SORT_VERSION; /* order NONE -> ascending */
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "b=1,c=0,a=2"); /* ties by key */
    r.sort_target = KV_SORT_MOD;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "b=1,a=2,c=0");
    r.sort_target = KV_SORT_VALUE;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "c=0,b=1,a=2");
    r.sort_target = KV_SORT_CREATE;
    r.sort_order = KV_SORT_DESCEND;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "c=0,b=1,a=2");
    /* Descending, ties still go in key order (b and c both version 1), as
     * etcd 3.4.23 answers; only a key sort is reversed whole. */
    r.sort_target = KV_SORT_VERSION;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "a=2,b=1,c=0");
    r.limit = 2;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "a=2,b=1");
    r.limit = 0;
    r.sort_target = KV_SORT_KEY;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "c=0,b=1,a=2");
}

static void range_sorts_and_filters_before_limit(void **state)
{
    struct fx *f = *state;
    char out[OUT_MAX];
    int64_t count;
    bool more;
    put_abc(f->kv);
    struct kv_range_req r = rq_all();
    r.sort_order = KV_SORT_DESCEND;
    r.sort_target = KV_SORT_KEY;
    r.limit = 2;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "c\xff=5,b=4");
    assert_true(more);
    assert_int_equal(count, 5);
    /* Sort by mod descending, filter mod <= 4, then limit 2. */
    r.sort_target = KV_SORT_MOD;
    r.max_mod_revision = 4;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "abc=3,ab=2");
    assert_true(more);
    r.limit = 3;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "abc=3,ab=2,a=1");
    assert_false(more);
}

static void range_keys_only_and_count_only(void **state)
{
    struct fx *f = *state;
    char out[OUT_MAX];
    int64_t count;
    bool more;
    put_abc(f->kv);
    struct kv_range_req r = rq_span("a", "b");
    r.keys_only = true;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, NULL), 0);
    assert_string_equal(out, "a,ab,abc");
    r.keys_only = false;
    r.count_only = true;
    r.limit = 1;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "");
    assert_int_equal(count, 3);
    assert_false(more);
}

static void range_at_past_revision_sees_old_values_not_tombstones(void **state)
{
    struct fx *f = *state;
    char out[OUT_MAX];
    int64_t count;
    t_put(f->kv, "a", "1");  /* 2 */
    t_put(f->kv, "b", "1");  /* 3 */
    t_put(f->kv, "a", "2");  /* 4 */
    t_del(f->kv, "b", NULL); /* 5 */
    t_put(f->kv, "c", "1");  /* 6 */
    t_put(f->kv, "b", "3");  /* 7 */
    struct kv_range_req r = rq_all();
    const char *want[] = {"",        "",    "a=1",     "a=1,b=1",
                          "a=2,b=1", "a=2", "a=2,c=1", "a=2,b=3,c=1"};
    for (int64_t rev = 1; rev <= 7; rev++) {
        r.revision = rev;
        assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, NULL), 0);
        assert_string_equal(out, want[rev]);
    }
    r.revision = 5;
    r.limit = 1;
    bool more;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "a=2");
    assert_int_equal(count, 1);
    assert_false(more);
    struct kv_kv m;
    assert_int_equal(t_get(f->kv, "b", 3, NULL, 0, &m), 0);
    assert_int_equal(m.mod_revision, 3);
    assert_int_equal(m.create_revision, 3);
    assert_int_equal(t_get(f->kv, "b", 7, NULL, 0, &m), 0);
    assert_int_equal(m.create_revision, 7);
}

static void range_future_and_compacted_revisions_are_errors(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 4; i++) {
        t_put(f->kv, "a", "x"); /* 2..5 */
    }
    struct kv_range_req r = rq_key("a");
    r.revision = 6;
    assert_int_equal(t_range(f->kv, &r, NULL, 0, NULL, NULL), ERR_FUTURE_REV);
    assert_int_equal(t_compact(f->kv, 3), 0);
    r.revision = 2;
    assert_int_equal(t_range(f->kv, &r, NULL, 0, NULL, NULL), ERR_COMPACTED);
    r.revision = 3; /* at the compaction revision: fine */
    int64_t count;
    assert_int_equal(t_range(f->kv, &r, NULL, 0, &count, NULL), 0);
    assert_int_equal(count, 1);
}

static void read_handle_is_a_snapshot(void **state)
{
    struct fx *f = *state;
    struct kv_read *rd;
    struct kv_result res = {0};
    struct kv_range_resp resp;
    char out[OUT_MAX];
    t_put(f->kv, "a", "old");
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    t_put(f->kv, "a", "new");
    t_put(f->kv, "b", "new");
    assert_int_equal(kv_read_rev(rd), 2);
    struct kv_range_req r = rq_all();
    assert_int_equal(kv_range(rd, &r, &res, &resp), 0);
    kvs_format(resp.kvs, resp.kvs_count, out, sizeof(out));
    assert_string_equal(out, "a=old");
    r.revision = 3; /* the handle's future */
    assert_int_equal(kv_range(rd, &r, &res, &resp), ERR_FUTURE_REV);
    kv_result_free(&res);
    kv_read_end(rd);
    assert_int_equal(kv_rev(f->kv), 4);
}

static void write_range_sees_the_batch_and_copies(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0}, pres = {0};
    struct kv_range_resp resp;
    struct kv_put_resp presp;
    char out[OUT_MAX];
    struct kv_put_req p = {.key = U8("k"), .key_len = 1};
    p.value = U8("v1");
    p.value_len = 2;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_put(wr, &p, &pres, &presp, NULL), 0);
    struct kv_range_req r = rq_key("k");
    assert_int_equal(kv_write_range(wr, &r, &res, &resp), 0);
    assert_int_equal(resp.kvs_count, 1);
    assert_int_equal(kv_write_rev(wr), 2);
    p.value = U8("v2");
    assert_int_equal(kv_put(wr, &p, &pres, &presp, NULL), 0);
    /* The first answer was copied: still v1 after the overwrite. */
    kvs_format(resp.kvs, resp.kvs_count, out, sizeof(out));
    assert_string_equal(out, "k=v1");
    r.revision = 2;
    assert_int_equal(kv_write_range(wr, &r, &res, &resp), 0);
    kvs_format(resp.kvs, resp.kvs_count, out, sizeof(out));
    assert_string_equal(out, "k=v1");
    kv_write_abort(wr);
    kv_result_free(&res);
    kv_result_free(&pres);
    assert_int_equal(kv_rev(f->kv), 1);
    assert_int_equal(t_get(f->kv, "k", 0, NULL, 0, NULL), ERR_NOT_FOUND);
}

static void range_answer_over_the_byte_limit_is_err_limit(void **state)
{
    struct fx *f = *state;
    fx_close(f);
    f->opts.range_result_bytes_max = 1000;
    assert_int_equal(fx_open(f), 0);
    char v[200];
    memset(v, 'x', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    char k[8];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        t_put(f->kv, k, v);
    }
    struct kv_range_req r = rq_all();
    assert_int_equal(t_range(f->kv, &r, NULL, 0, NULL, NULL), ERR_LIMIT);
    r.limit = 2;
    assert_int_equal(t_range(f->kv, &r, NULL, 0, NULL, NULL), 0);
    r.limit = 0;
    r.keys_only = true;
    assert_int_equal(t_range(f->kv, &r, NULL, 0, NULL, NULL), 0);
}

static void read_handles_past_max_readers_are_busy(void **state)
{
    struct fx *f = *state;
    struct kv_read *rd[4];
    fx_close(f);
    f->opts.max_readers = 3;
    assert_int_equal(fx_open(f), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(kv_read_begin(f->kv, &rd[i]), 0);
    }
    assert_int_equal(kv_read_begin(f->kv, &rd[3]), ERR_BUSY);
    kv_read_end(rd[0]);
    assert_int_equal(kv_read_begin(f->kv, &rd[0]), 0);
    for (int i = 0; i < 3; i++) {
        kv_read_end(rd[i]);
    }
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

const struct CMUnitTest kv_basic_tests[] = {
    T(open_creates_store_at_revision_1),
    T(reopen_keeps_revision_compaction_and_applied_index),
    T(second_open_is_locked_also_from_forked_child),
    T(open_rejects_foreign_files),
    T(open_rejects_a_newer_format_version),
    T(open_migrates_a_format_1_store),
    T(a_live_key_without_its_rev_record_is_corrupt),
    T(put_adds_one_revision_and_counts_versions),
    T(put_of_unchanged_value_still_adds_a_revision),
    T(put_prev_kv_returns_the_record_it_replaced),
    T(put_ignore_value_keeps_value_and_needs_the_key),
    T(put_ignore_lease_keeps_lease_and_needs_the_key),
    T(put_with_a_missing_lease_is_lease_not_found),
    T(put_checks_lease_first_alone_and_key_first_in_txn),
    T(put_lease_zero_detaches_the_lease),
    T(bad_input_is_refused_and_leaves_the_store_untouched),
    T(delete_of_a_missing_key_adds_no_revision),
    T(delete_range_is_one_revision_and_returns_prev_kvs),
    T(delete_then_put_restarts_create_version_and_lease),
    T(range_end_forms_single_from_key_prefix_and_all),
    T(range_end_at_or_before_key_is_empty),
    T(range_limit_sets_more_and_keeps_count),
    T(range_count_ignores_limit_and_filters),
    T(range_sort_defaults_to_ascending_for_other_targets),
    T(range_sorts_and_filters_before_limit),
    T(range_keys_only_and_count_only),
    T(range_at_past_revision_sees_old_values_not_tombstones),
    T(range_future_and_compacted_revisions_are_errors),
    T(read_handle_is_a_snapshot),
    T(write_range_sees_the_batch_and_copies),
    T(range_answer_over_the_byte_limit_is_err_limit),
    T(read_handles_past_max_readers_are_busy),
};
const size_t kv_basic_tests_count =
    sizeof(kv_basic_tests) / sizeof(kv_basic_tests[0]);

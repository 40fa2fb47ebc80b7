/*
 * test_kv_util.c - fixture and helpers for the kv unit tests, and main().
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/alloc.h"
#include "tests/unit/kv/kv_test.h"

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void rm_rf(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void make_tmpdir(char *out, size_t cap)
{
    snprintf(out, cap, "/tmp/cairn-kv-test.XXXXXX");
    assert_non_null(mkdtemp(out));
}

int fx_open(struct fx *f)
{
    return kv_open(f->dir, &f->opts, &f->kv);
}

int fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    make_tmpdir(f->dir, sizeof(f->dir));
    f->opts.sync = KV_SYNC_NONE;
    f->opts.writemap = getenv("CAIRN_KV_WRITEMAP") != NULL;
    assert_int_equal(fx_open(f), 0);
    *state = f;
    return 0;
}

void fx_close(struct fx *f)
{
    kv_close(f->kv);
    f->kv = NULL;
}

void fx_reopen(struct fx *f)
{
    fx_close(f);
    assert_int_equal(fx_open(f), 0);
}

int fx_teardown(void **state)
{
    struct fx *f = *state;
    mem_fail_after(0, 0);
    kv_close(f->kv);
    rm_rf(f->dir);
    free(f);
    return 0;
}

struct kv_range_req rq_key(const char *k)
{
    struct kv_range_req r = {.key = U8(k), .key_len = strlen(k)};
    return r;
}

struct kv_range_req rq_span(const char *k, const char *end)
{
    struct kv_range_req r = rq_key(k);
    r.range_end = U8(end);
    r.range_end_len = strlen(end);
    return r;
}

struct kv_range_req rq_from(const char *k)
{
    struct kv_range_req r = rq_key(k);
    r.range_end = U8("");
    r.range_end_len = 1;
    return r;
}

struct kv_range_req rq_all(void)
{
    struct kv_range_req r = {.key = U8(""), .key_len = 1};
    r.range_end = U8("");
    r.range_end_len = 1;
    return r;
}

struct kv_op op_put(const char *k, const char *v)
{
    struct kv_op o = {.type = KV_OP_PUT};
    o.u.put.key = U8(k);
    o.u.put.key_len = strlen(k);
    o.u.put.value = U8(v);
    o.u.put.value_len = strlen(v);
    return o;
}

struct kv_op op_del(const char *k, const char *end)
{
    struct kv_op o = {.type = KV_OP_DELETE};
    o.u.del.key = U8(k);
    o.u.del.key_len = strlen(k);
    if (end != NULL) {
        o.u.del.range_end = U8(end);
        o.u.del.range_end_len = strlen(end);
    }
    return o;
}

struct kv_op op_del_from(const char *k)
{
    struct kv_op o = op_del(k, NULL);
    o.u.del.range_end = U8("");
    o.u.del.range_end_len = 1;
    return o;
}

struct kv_op op_get(const char *k)
{
    struct kv_op o = {.type = KV_OP_RANGE};
    o.u.range = rq_key(k);
    return o;
}

struct kv_op op_txn(const struct kv_txn_req *t)
{
    struct kv_op o = {.type = KV_OP_TXN};
    o.u.txn = t;
    return o;
}

struct kv_compare cmp_num(const char *k, enum kv_cmp_target t,
                          enum kv_cmp_result r, int64_t n)
{
    struct kv_compare c = {.result = r, .target = t, .number = n};
    c.key = U8(k);
    c.key_len = strlen(k);
    return c;
}

struct kv_compare cmp_val(const char *k, enum kv_cmp_result r, const char *v)
{
    struct kv_compare c = cmp_num(k, KV_CMP_VALUE, r, 0);
    c.value = U8(v);
    c.value_len = strlen(v);
    return c;
}

int t_put_req(struct kv *kv, const struct kv_put_req *req,
              struct kv_put_resp *resp_out, int64_t *rev)
{
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_put_resp resp;
    int64_t r = 0;
    assert_int_equal(kv_write_begin(kv, NULL, NULL, &wr), 0);
    int rc = kv_put(wr, req, &res, &resp, &r);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    if (resp_out != NULL) {
        *resp_out = resp; /* byte pointers die with res: tests copy first */
        if (rc == 0 && resp.has_prev) {
            static char keep[4096];
            size_t n = resp.prev_kv.value_len < sizeof(keep)
                           ? resp.prev_kv.value_len
                           : sizeof(keep);
            memcpy(keep, resp.prev_kv.value, n);
            resp_out->prev_kv.value = U8(keep);
            resp_out->prev_kv.key = NULL;
        }
    }
    kv_result_free(&res);
    if (rev != NULL) {
        *rev = r;
    }
    return rc;
}

int64_t t_put(struct kv *kv, const char *k, const char *v)
{
    struct kv_put_req req = {.key = U8(k), .key_len = strlen(k)};
    int64_t rev = 0;
    req.value = U8(v);
    req.value_len = strlen(v);
    assert_int_equal(t_put_req(kv, &req, NULL, &rev), 0);
    return rev;
}

int64_t t_del(struct kv *kv, const char *k, const char *end)
{
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_delete_resp resp;
    struct kv_op o = op_del(k, end);
    int64_t rev;
    assert_int_equal(kv_write_begin(kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_delete(wr, &o.u.del, &res, &resp, &rev), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
    return resp.deleted;
}

int t_txn(struct kv *kv, const struct kv_txn_req *t, bool *succeeded,
          int64_t *rev)
{
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_txn_resp resp;
    int64_t r = 0;
    assert_int_equal(kv_write_begin(kv, NULL, NULL, &wr), 0);
    int rc = kv_txn(wr, t, &res, &resp, &r);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    if (succeeded != NULL) {
        *succeeded = resp.succeeded;
    }
    if (rev != NULL) {
        *rev = r;
    }
    kv_result_free(&res);
    return rc;
}

int t_compact(struct kv *kv, int64_t rev)
{
    struct kv_write *wr;
    assert_int_equal(kv_write_begin(kv, NULL, NULL, &wr), 0);
    int rc = kv_compact(wr, rev);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    return rc;
}

void kvs_format(const struct kv_kv *kvs, size_t n, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && at < cap; i++) {
        int w = snprintf(out + at, cap - at, "%s%.*s", i > 0 ? "," : "",
                         (int)kvs[i].key_len, (const char *)kvs[i].key);
        at += (size_t)w;
        if (kvs[i].value != NULL && at < cap) {
            w = snprintf(out + at, cap - at, "=%.*s", (int)kvs[i].value_len,
                         (const char *)kvs[i].value);
            at += (size_t)w;
        }
    }
}

int t_range(struct kv *kv, const struct kv_range_req *req, char *out,
            size_t cap, int64_t *count, bool *more)
{
    struct kv_read *rd;
    struct kv_result res = {0};
    struct kv_range_resp resp;
    assert_int_equal(kv_read_begin(kv, &rd), 0);
    int rc = kv_range(rd, req, &res, &resp);
    if (out != NULL) {
        kvs_format(resp.kvs, resp.kvs_count, out, cap);
    }
    if (count != NULL) {
        *count = resp.count;
    }
    if (more != NULL) {
        *more = resp.more;
    }
    kv_result_free(&res);
    kv_read_end(rd);
    return rc;
}

int t_get(struct kv *kv, const char *k, int64_t rev, char *val, size_t cap,
          struct kv_kv *meta)
{
    struct kv_read *rd;
    struct kv_result res = {0};
    struct kv_range_resp resp;
    struct kv_range_req req = rq_key(k);
    req.revision = rev;
    assert_int_equal(kv_read_begin(kv, &rd), 0);
    int rc = kv_range(rd, &req, &res, &resp);
    if (rc == 0 && resp.kvs_count == 0) {
        rc = ERR_NOT_FOUND;
    }
    if (rc == 0) {
        assert_int_equal(resp.kvs_count, 1);
        if (val != NULL) {
            snprintf(val, cap, "%.*s", (int)resp.kvs[0].value_len,
                     (const char *)resp.kvs[0].value);
        }
        if (meta != NULL) {
            *meta = resp.kvs[0];
            meta->key = NULL;
            meta->value = NULL;
        }
    }
    kv_result_free(&res);
    kv_read_end(rd);
    return rc;
}

int main(void)
{
    size_t n = kv_basic_tests_count + kv_txn_tests_count + kv_more_tests_count +
               kv_ckpt_tests_count;
    struct CMUnitTest *all = calloc(n, sizeof(*all));
    if (all == NULL) {
        return 1;
    }
    memcpy(all, kv_basic_tests, kv_basic_tests_count * sizeof(*all));
    memcpy(all + kv_basic_tests_count, kv_txn_tests,
           kv_txn_tests_count * sizeof(*all));
    memcpy(all + kv_basic_tests_count + kv_txn_tests_count, kv_more_tests,
           kv_more_tests_count * sizeof(*all));
    memcpy(all + n - kv_ckpt_tests_count, kv_ckpt_tests,
           kv_ckpt_tests_count * sizeof(*all));
    if (getenv("KV_TEST") != NULL) {
        cmocka_set_test_filter(getenv("KV_TEST")); /* run one test */
    }
    int rc = _cmocka_run_group_tests("kv", all, n, NULL, NULL);
    free(all);
    return rc;
}

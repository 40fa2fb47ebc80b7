/*
 * kv_test.h - fixture and helpers shared by the kv unit tests.
 *
 * Each test gets a fresh temp dir under /tmp with a real LMDB store
 * (KV_SYNC_NONE unless the test says otherwise); the helpers run single
 * requests in their own batch and fail the test on unexpected errors.
 */
#ifndef CAIRN_TESTS_UNIT_KV_TEST_H
#define CAIRN_TESTS_UNIT_KV_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "consensus/kv/kv.h"

struct fx {
    char dir[64];
    struct kv *kv;
    struct kv_options opts;
};

int fx_setup(void **state);
int fx_teardown(void **state);
/* Close and reopen the fixture's store with its options. */
void fx_reopen(struct fx *f);
void fx_close(struct fx *f);
int fx_open(struct fx *f);
void rm_rf(const char *dir);
void make_tmpdir(char *out, size_t cap);

#define U8(s) ((const uint8_t *)(s))

struct kv_range_req rq_key(const char *k);
struct kv_range_req rq_span(const char *k, const char *end);
struct kv_range_req rq_from(const char *k); /* range_end "\0" */
struct kv_range_req rq_all(void);           /* "\0" .. "\0" */

struct kv_op op_put(const char *k, const char *v);
struct kv_op op_del(const char *k, const char *end); /* end NULL: one */
struct kv_op op_del_from(const char *k);
struct kv_op op_get(const char *k);
struct kv_op op_txn(const struct kv_txn_req *t);
struct kv_compare cmp_num(const char *k, enum kv_cmp_target t,
                          enum kv_cmp_result r, int64_t n);
struct kv_compare cmp_val(const char *k, enum kv_cmp_result r, const char *v);

/* One-request batches. */
int64_t t_put(struct kv *kv, const char *k, const char *v);
int t_put_req(struct kv *kv, const struct kv_put_req *req,
              struct kv_put_resp *resp_out, int64_t *rev);
int64_t t_del(struct kv *kv, const char *k, const char *end);
int t_txn(struct kv *kv, const struct kv_txn_req *t, bool *succeeded,
          int64_t *rev);
int t_compact(struct kv *kv, int64_t rev);

/* Range on a fresh read handle; out gets "k=v,k2=v2" ("k" when keys_only
 * or count_only removed values). */
int t_range(struct kv *kv, const struct kv_range_req *req, char *out,
            size_t cap, int64_t *count, bool *more);
/* One key at revision rev (0: current): 0 or ERR_NOT_FOUND; meta filled. */
int t_get(struct kv *kv, const char *k, int64_t rev, char *val, size_t cap,
          struct kv_kv *meta);
void kvs_format(const struct kv_kv *kvs, size_t n, char *out, size_t cap);

extern const struct CMUnitTest kv_basic_tests[];
extern const size_t kv_basic_tests_count;
extern const struct CMUnitTest kv_txn_tests[];
extern const size_t kv_txn_tests_count;
extern const struct CMUnitTest kv_more_tests[];
extern const size_t kv_more_tests_count;
extern const struct CMUnitTest kv_ckpt_tests[];
extern const size_t kv_ckpt_tests_count;

#endif

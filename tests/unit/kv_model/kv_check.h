/*
 * kv_check.h - compare the store's answers with the model's, field by
 * field, and print both when they differ.
 *
 * Does:     equality of records, range/put/delete/txn answers and event
 *           lists; dumps of requests and answers for failure reports.
 * Owns:     nothing.
 * Threads:  one thread.
 * Borrowed: nothing is kept.
 * Errors:   the chk_* functions return true when equal; otherwise they print
 *           what differs and both answers to f and return false.
 * Limits:   none.
 * Not here: the model (model.h) and the random driver.
 *
 * Sorting: kv.h orders records whose sort values tie by key (reversed with
 * the order), so ranges are compared exactly. (etcd itself uses an unstable
 * sort; when only tied records differ in order the failure says so.)
 */
#ifndef CAIRN_TESTS_KV_CHECK_H
#define CAIRN_TESTS_KV_CHECK_H

#include <stdbool.h>
#include <stdio.h>

#include "consensus/kv/kv.h"
#include "tests/unit/kv_model/model.h"

void chk_dump_bytes(FILE *f, const uint8_t *p, size_t n);
void chk_dump_kv(FILE *f, const char *indent, const struct kv_kv *kv);
void chk_dump_range_req(FILE *f, const char *indent,
                        const struct kv_range_req *r);
void chk_dump_txn_req(FILE *f, const char *indent, const struct kv_txn_req *t);
void chk_dump_range(FILE *f, const char *indent, const struct kv_range_resp *r);
void chk_dump_txn(FILE *f, const char *indent, const struct kv_txn_resp *t);
void chk_dump_events(FILE *f, const char *indent, const struct kv_event *ev,
                     size_t n);

bool chk_kv_eq(const struct kv_kv *a, const struct kv_kv *b);
bool chk_range(FILE *f, const struct kv_range_req *req,
               const struct kv_range_resp *got,
               const struct kv_range_resp *want);
bool chk_put(FILE *f, const struct kv_put_resp *got,
             const struct kv_put_resp *want);
bool chk_delete(FILE *f, const struct kv_delete_resp *got,
                const struct kv_delete_resp *want);
bool chk_txn(FILE *f, const struct kv_txn_req *req,
             const struct kv_txn_resp *got, const struct kv_txn_resp *want);

/* Events: every field of kv; prev is compared when compare_prev (the
 * store's write callback may leave prev out; see the driver). */
bool chk_events(FILE *f, const struct kv_event *got, size_t got_n,
                const struct kv_event *want, size_t want_n, bool compare_prev);

#endif

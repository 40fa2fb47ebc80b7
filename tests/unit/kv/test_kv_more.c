/*
 * test_kv_more.c - compaction, quota, batches, events and history, leases,
 * auxiliary tables, defrag, snapshots, HashKV and allocation failures.
 *
 * Method: real stores in temp dirs. Where two stores must agree (hash,
 * snapshot install), both are driven by the same requests and compared
 * through the public API only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/limits.h"
#include "tests/unit/kv/kv_test.h"

#define OUT_MAX 8192

/* --- compaction --------------------------------------------------------- */

static void compact_boundaries_match_etcd(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < 5; i++) {
        t_put(f->kv, "k", "v"); /* 2..6 */
    }
    assert_int_equal(t_compact(f->kv, 7), ERR_FUTURE_REV);
    assert_int_equal(t_compact(f->kv, 4), 0);
    assert_int_equal(kv_rev(f->kv), 6); /* compaction adds no revision */
    assert_int_equal(kv_compact_rev(f->kv), 4);
    assert_int_equal(t_compact(f->kv, 4), ERR_COMPACTED);
    assert_int_equal(t_compact(f->kv, 3), ERR_COMPACTED);
    struct kv_kv m;
    assert_int_equal(t_get(f->kv, "k", 4, NULL, 0, &m), 0);
    assert_int_equal(m.mod_revision, 4);
    assert_int_equal(m.version, 3);
    assert_int_equal(t_get(f->kv, "k", 3, NULL, 0, NULL), ERR_COMPACTED);
    assert_int_equal(t_compact(f->kv, 6), 0); /* up to the current one */
    assert_int_equal(t_get(f->kv, "k", 0, NULL, 0, &m), 0);
    assert_int_equal(m.version, 5);
}

static int count_ev(void *ctx, const struct kv_event *ev)
{
    (void)ev;
    (*(int *)ctx)++;
    return 0;
}

static int history_count(struct kv *kv, int64_t from)
{
    struct kv_read *rd;
    int n = 0;
    int64_t next;
    assert_int_equal(kv_read_begin(kv, &rd), 0);
    assert_int_equal(kv_events_read(rd, U8(""), 1, U8(""), 1, from, 0, 0, false,
                                    count_ev, &n, &next),
                     0);
    kv_read_end(rd);
    return n;
}

static void compact_keeps_latest_record_per_key_unless_tombstone(void **state)
{
    struct fx *f = *state;
    char out[OUT_MAX];
    t_put(f->kv, "a", "1");  /* 2 */
    t_put(f->kv, "a", "2");  /* 3 */
    t_put(f->kv, "b", "1");  /* 4 */
    t_del(f->kv, "b", NULL); /* 5: tombstone, dropped */
    t_put(f->kv, "c", "1");  /* 6 */
    t_put(f->kv, "a", "3");  /* 7: after the compaction point */
    t_put(f->kv, "d", "1");  /* 8 */
    t_del(f->kv, "d", NULL); /* 9 */
    assert_int_equal(t_compact(f->kv, 6), 0);
    /* Kept: a@3, c@6 (latest at or below 6), and everything after 6. */
    assert_int_equal(history_count(f->kv, 6), 4); /* c@6, a@7, d@8, d@9 */
    struct kv_range_req r = rq_all();
    r.revision = 6;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "a=2,c=1");
    r.revision = 8;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "a=3,c=1,d=1");
    /* A second compaction drops what the first kept once it is shadowed;
     * the tombstone at 9 itself stays until the next one. */
    assert_int_equal(t_compact(f->kv, 9), 0);
    r.revision = 9;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "a=3,c=1");
    fx_reopen(f);
    assert_int_equal(kv_compact_rev(f->kv), 9);
    r.revision = 0;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "a=3,c=1");
    /* c@6, a@7 and the tombstone d@9 remain in the history. */
    assert_int_equal(history_count(f->kv, 9), 1);
    assert_int_equal(t_compact(f->kv, 9), ERR_COMPACTED);
    t_put(f->kv, "e", "1"); /* 10 */
    assert_int_equal(t_compact(f->kv, 10), 0);
    assert_int_equal(history_count(f->kv, 10), 1); /* d@9 is gone */
    struct kv_read *rd;
    uint32_t h;
    int64_t crev, hrev;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_hash(rd, 0, &h, &crev, &hrev), 0);
    assert_int_equal(crev, 10);
    assert_int_equal(hrev, 10);
    kv_read_end(rd);
}

/* --- quota ----------------------------------------------------------------*/

static void over_quota_put_txn_and_grant_fail_but_deletes_work(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    static char v[1001];
    char k[32];
    fx_close(f);
    f->opts.quota_bytes = 256 * 1024;
    assert_int_equal(fx_open(f), 0);
    memset(v, 'v', sizeof(v) - 1);
    int puts = 0, rc = 0;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_grant(wr, 1, 60), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    for (int i = 0; i < 1000 && rc == 0; i++) {
        snprintf(k, sizeof(k), "key%04d", i);
        struct kv_put_req req = {.key = U8(k), .key_len = strlen(k)};
        req.value = U8(v);
        req.value_len = sizeof(v) - 1;
        req.lease = i < 3 ? 1 : 0;
        rc = t_put_req(f->kv, &req, NULL, NULL);
        puts += rc == 0;
    }
    assert_int_equal(rc, ERR_NOSPACE);
    assert_true(puts > 20);
    uint64_t db, used;
    kv_size(f->kv, &db, &used);
    assert_true(db <= 256 * 1024 + 2 * 4096 * 4);
    int64_t rev = kv_rev(f->kv);
    struct kv_op s[] = {op_put("t", "x")};
    struct kv_txn_req t = {NULL, 0, NULL, 0, s, 1}; /* put in failure */
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_NOSPACE);
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_grant(wr, 2, 60), ERR_NOSPACE);
    assert_int_equal(kv_lease_revoke(wr, 1, NULL), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    assert_int_equal(kv_rev(f->kv), rev + 1);
    /* A txn that only deletes, a delete, and compaction still work. */
    struct kv_op d[] = {op_del("key0003", NULL)};
    t = (struct kv_txn_req){NULL, 0, d, 1, NULL, 0};
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), 0);
    assert_int_equal(t_del(f->kv, "key", "kez"), puts - 4);
    assert_int_equal(t_compact(f->kv, kv_rev(f->kv)), 0);
    /* After compaction and defrag the file shrinks and puts work again. */
    assert_int_equal(kv_defrag(f->kv), 0);
    int64_t before = kv_rev(f->kv);
    assert_int_equal(t_put(f->kv, "again", "1"), before + 1);
}

/* --- batches ---------------------------------------------------------------*/

static void failed_request_in_batch_keeps_earlier_requests(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_put_resp pr;
    struct kv_delete_resp dr;
    int64_t rev;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    struct kv_put_req a = {.key = U8("a"), .key_len = 1};
    struct kv_put_req bad = {.key = U8("b"), .key_len = 1, .lease = 5};
    assert_int_equal(kv_put(wr, &a, &res, &pr, &rev), 0);
    assert_int_equal(rev, 2);
    assert_int_equal(kv_put(wr, &bad, &res, &pr, &rev), ERR_LEASE_NOT_FOUND);
    bad.lease = 0;
    bad.ignore_value = true;
    assert_int_equal(kv_put(wr, &bad, &res, &pr, &rev), ERR_KEY_NOT_FOUND);
    assert_int_equal(kv_compact(wr, 5), ERR_FUTURE_REV);
    assert_int_equal(kv_lease_revoke(wr, 5, &rev), ERR_LEASE_NOT_FOUND);
    struct kv_op d = op_del("a", NULL);
    assert_int_equal(kv_delete(wr, &d.u.del, &res, &dr, &rev), 0);
    assert_int_equal(rev, 3);
    assert_int_equal(kv_put(wr, &a, &res, &pr, &rev), 0);
    assert_int_equal(rev, 4);
    assert_int_equal(kv_write_commit(wr, 10, 2), 0);
    kv_result_free(&res);
    assert_int_equal(kv_rev(f->kv), 4);
    struct kv_kv m;
    assert_int_equal(t_get(f->kv, "a", 0, NULL, 0, &m), 0);
    assert_int_equal(m.create_revision, 4);
    assert_int_equal(t_get(f->kv, "a", 2, NULL, 0, &m), 0);
    assert_int_equal(t_get(f->kv, "b", 0, NULL, 0, NULL), ERR_NOT_FOUND);
}

static void write_abort_discards_the_batch(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_put_resp pr;
    struct kv_put_req a = {.key = U8("a"), .key_len = 1};
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_put(wr, &a, &res, &pr, NULL), 0);
    assert_int_equal(kv_aux_put(wr, KV_AUX_ALARM, "x", 1, "y", 1), 0);
    struct kv_write *second;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &second), ERR_BUSY);
    kv_write_abort(wr);
    kv_result_free(&res);
    assert_int_equal(kv_rev(f->kv), 1);
    assert_int_equal(t_get(f->kv, "a", 0, NULL, 0, NULL), ERR_NOT_FOUND);
}

/* An LMDB failure while writing (here the map filling up through aux
 * writes, which the quota does not cover) loses the batch: the handle
 * answers ERR_FAILED, commit returns the error, the store is as before
 * the batch and takes the next one. */
static void map_full_while_writing_loses_only_the_batch(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_put_resp pr;
    static uint8_t big[1 << 20];
    char name[16];
    fx_close(f);
    f->opts.quota_bytes = 64 * 1024;
    f->opts.value_bytes_max = sizeof(big);
    assert_int_equal(fx_open(f), 0);
    t_put(f->kv, "before", "1");
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    struct kv_put_req p = {.key = U8("in-batch"), .key_len = 8};
    assert_int_equal(kv_put(wr, &p, &res, &pr, NULL), 0);
    int rc = 0, i;
    for (i = 0; i < 200 && rc == 0; i++) {
        snprintf(name, sizeof(name), "blob%d", i);
        rc =
            kv_aux_put(wr, KV_AUX_CONFIG, name, strlen(name), big, sizeof(big));
    }
    assert_int_equal(rc, ERR_NOSPACE);
    assert_true(i > 32);
    print_message("map full after %d MiB of aux values\n", i - 1);
    assert_int_equal(kv_put(wr, &p, &res, &pr, NULL), ERR_FAILED);
    assert_int_equal(kv_write_commit(wr, 9, 9), ERR_NOSPACE);
    kv_result_free(&res);
    assert_int_equal(kv_rev(f->kv), 2);
    assert_int_equal(t_get(f->kv, "in-batch", 0, NULL, 0, NULL), ERR_NOT_FOUND);
    uint64_t idx, term;
    kv_applied(f->kv, &idx, &term);
    assert_int_equal(idx, 0);
    assert_int_equal(t_put(f->kv, "after", "1"), 3);
}

/* --- events -------------------------------------------------------------- */

struct evlog {
    char s[OUT_MAX];
    int stop_after; /* 0: never */
    int seen;
};

static int log_ev(void *ctx, const struct kv_event *ev)
{
    struct evlog *l = ctx;
    size_t at = strlen(l->s);
    int n = snprintf(
        l->s + at, sizeof(l->s) - at, "%s%s %.*s@%lld", at > 0 ? "," : "",
        ev->type == KV_EVENT_PUT ? "PUT" : "DEL", (int)ev->kv.key_len,
        (const char *)ev->kv.key, (long long)ev->kv.mod_revision);
    at += (size_t)n;
    if (ev->type == KV_EVENT_PUT) {
        at += (size_t)snprintf(
            l->s + at, sizeof(l->s) - at, "=%.*s v%lld", (int)ev->kv.value_len,
            (const char *)ev->kv.value, (long long)ev->kv.version);
    }
    if (ev->has_prev) {
        snprintf(l->s + at, sizeof(l->s) - at, " prev=%.*s@%lld",
                 (int)ev->prev.value_len, (const char *)ev->prev.value,
                 (long long)ev->prev.mod_revision);
    }
    if (ev->prev_omitted) {
        assert_false(ev->has_prev);
        snprintf(l->s + strlen(l->s), sizeof(l->s) - strlen(l->s),
                 " prev-omitted");
    }
    l->seen++;
    return l->stop_after > 0 && l->seen >= l->stop_after;
}

static void events_follow_each_successful_request_with_prev(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_put_resp pr;
    struct kv_delete_resp dr;
    struct evlog l = {0};
    assert_int_equal(kv_write_begin(f->kv, log_ev, &l, &wr), 0);
    struct kv_put_req a = {.key = U8("a"), .key_len = 1};
    a.value = U8("1");
    a.value_len = 1;
    assert_int_equal(kv_put(wr, &a, &res, &pr, NULL), 0);
    a.value = U8("2");
    assert_int_equal(kv_put(wr, &a, &res, &pr, NULL), 0);
    struct kv_put_req bad = {.key = U8("b"), .key_len = 1, .lease = 42};
    assert_int_equal(kv_put(wr, &bad, &res, &pr, NULL), ERR_LEASE_NOT_FOUND);
    struct kv_op d = op_del("a", "b");
    assert_int_equal(kv_delete(wr, &d.u.del, &res, &dr, NULL), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
    assert_string_equal(l.s, "PUT a@2=1 v1,PUT a@3=2 v2 prev=1@2,"
                             "DEL a@4 prev=2@3");
}

/* kv_write_event_prev(all false): only keys under the prefix (and
 * requests that ask prev_kv for their answer) bring prev; the others say
 * prev_omitted, and a new key says neither. */
static void events_skip_prev_nobody_needs(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_put_resp pr;
    struct kv_delete_resp dr;
    struct evlog l = {0};
    assert_int_equal(t_put(f->kv, "a", "1"), 2);
    assert_int_equal(t_put(f->kv, "r/x", "1"), 3);
    assert_int_equal(kv_write_begin(f->kv, log_ev, &l, &wr), 0);
    kv_write_event_prev(wr, false, U8("r/"), 2);
    struct kv_put_req a = {.key = U8("a"), .key_len = 1};
    a.value = U8("2");
    a.value_len = 1;
    assert_int_equal(kv_put(wr, &a, &res, &pr, NULL), 0);
    assert_false(pr.has_prev);
    struct kv_put_req x = {.key = U8("r/x"), .key_len = 3};
    x.value = U8("2");
    x.value_len = 1;
    assert_int_equal(kv_put(wr, &x, &res, &pr, NULL), 0);
    a.value = U8("3");
    a.prev_kv = true; /* the answer needs it: the event gets it too */
    assert_int_equal(kv_put(wr, &a, &res, &pr, NULL), 0);
    assert_true(pr.has_prev);
    struct kv_put_req n = {.key = U8("new"), .key_len = 3};
    assert_int_equal(kv_put(wr, &n, &res, &pr, NULL), 0);
    struct kv_op d = op_del("a", "b");
    assert_int_equal(kv_delete(wr, &d.u.del, &res, &dr, NULL), 0);
    d = op_del("r/", "r0");
    assert_int_equal(kv_delete(wr, &d.u.del, &res, &dr, NULL), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
    assert_string_equal(l.s, "PUT a@4=2 v2 prev-omitted,"
                             "PUT r/x@5=2 v2 prev=1@3,"
                             "PUT a@6=3 v3 prev=2@4,"
                             "PUT new@7= v1,"
                             "DEL a@8 prev-omitted,"
                             "DEL r/x@9 prev=2@5");
    /* the history still has every prev for whoever reads it */
    struct kv_read *rd;
    struct evlog h = {0};
    int64_t next;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_events_read(rd, U8("a"), 1, NULL, 0, 4, 8, 0, true,
                                    log_ev, &h, &next),
                     0);
    kv_read_end(rd);
    assert_string_equal(h.s, "PUT a@4=2 v2 prev=1@2,PUT a@6=3 v3 prev=2@4,"
                             "DEL a@8 prev=3@6");
}

/* A key one txn changes twice (possible only with a delete to the end of
 * the keyspace, which etcd's duplicate check does not see): every event's
 * prev is the key's record at mod_revision - 1, and a create has none, as
 * etcd's watch answers; the live events and the history agree. Found by
 * kv_diff.test (live: the txn's own put was the delete's prev; history:
 * the re-created key's put carried the deleted record). */
static void a_key_changed_twice_in_one_txn_has_etcds_prevs(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_txn_resp tr;
    struct evlog l = {0};
    t_put(f->kv, "k", "0"); /* 2 */
    struct kv_op s1[] = {op_put("k", "1"), op_del_from("k")};
    struct kv_txn_req t1 = {NULL, 0, s1, 2, NULL, 0};
    struct kv_op s2[] = {op_del_from("j"), op_put("k", "2")};
    struct kv_txn_req t2 = {NULL, 0, s2, 2, NULL, 0};
    t_put(f->kv, "k", "1"); /* 3: t2 deletes it, then makes it again */
    assert_int_equal(kv_write_begin(f->kv, log_ev, &l, &wr), 0);
    assert_int_equal(kv_txn(wr, &t2, &res, &tr, NULL), 0); /* 4 */
    assert_int_equal(kv_txn(wr, &t1, &res, &tr, NULL), 0); /* 5 */
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
    const char *want = "DEL k@4 prev=1@3,PUT k@4=2 v1,"
                       "PUT k@5=1 v2 prev=2@4,DEL k@5 prev=2@4";
    assert_string_equal(l.s, want);
    struct kv_read *rd;
    struct evlog h = {0};
    int64_t next;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_events_read(rd, U8("k"), 1, NULL, 0, 4, 0, 0, true,
                                    log_ev, &h, &next),
                     0);
    kv_read_end(rd);
    assert_string_equal(h.s, want);
}

static void events_read_filters_keys_and_finds_prev(void **state)
{
    struct fx *f = *state;
    struct kv_read *rd;
    struct evlog l = {0};
    int64_t next;
    t_put(f->kv, "x/a", "1");  /* 2 */
    t_put(f->kv, "y", "1");    /* 3 */
    t_put(f->kv, "x/a", "2");  /* 4 */
    t_del(f->kv, "x/a", NULL); /* 5 */
    t_put(f->kv, "x/b", "1");  /* 6 */
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_events_read(rd, U8("x/"), 2, U8("x0"), 2, 2, 0, 0, true,
                                    log_ev, &l, &next),
                     0);
    assert_string_equal(l.s, "PUT x/a@2=1 v1,PUT x/a@4=2 v2 prev=1@2,"
                             "DEL x/a@5 prev=2@4,PUT x/b@6=1 v1");
    assert_int_equal(next, 7);
    l = (struct evlog){0};
    assert_int_equal(kv_events_read(rd, U8("x/a"), 3, NULL, 0, 3, 4, 0, false,
                                    log_ev, &l, &next),
                     0);
    assert_string_equal(l.s, "PUT x/a@4=2 v2");
    assert_int_equal(next, 5);
    kv_read_end(rd);
    /* After compaction the prev may be gone; reading below it fails. */
    assert_int_equal(t_compact(f->kv, 4), 0);
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    l = (struct evlog){0};
    assert_int_equal(kv_events_read(rd, U8("x/"), 2, U8("x0"), 2, 3, 0, 0, true,
                                    log_ev, &l, &next),
                     ERR_COMPACTED);
    assert_int_equal(kv_events_read(rd, U8("x/"), 2, U8("x0"), 2, 4, 0, 0, true,
                                    log_ev, &l, &next),
                     0);
    assert_string_equal(l.s, "PUT x/a@4=2 v2,DEL x/a@5 prev=2@4,"
                             "PUT x/b@6=1 v1");
    kv_read_end(rd);
}

static void events_read_never_splits_a_revision(void **state)
{
    struct fx *f = *state;
    struct kv_read *rd;
    struct evlog l = {0};
    int64_t next;
    t_put(f->kv, "a", "1");                      /* 2 */
    t_put(f->kv, "b", "1");                      /* 3 */
    t_put(f->kv, "c", "1");                      /* 4 */
    assert_int_equal(t_del(f->kv, "a", "z"), 3); /* 5: three events */
    t_put(f->kv, "d", "1");                      /* 6 */
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_events_read(rd, U8(""), 1, U8(""), 1, 2, 0, 2, false,
                                    log_ev, &l, &next),
                     0);
    assert_int_equal(l.seen, 2);
    assert_int_equal(next, 4);
    l = (struct evlog){0};
    assert_int_equal(kv_events_read(rd, U8(""), 1, U8(""), 1, 5, 0, 1, false,
                                    log_ev, &l, &next),
                     0);
    assert_int_equal(l.seen, 3); /* the whole of revision 5 */
    assert_int_equal(next, 6);
    /* A callback asking to stop ends the read after its revision. */
    l = (struct evlog){.stop_after = 1};
    assert_int_equal(kv_events_read(rd, U8(""), 1, U8(""), 1, 5, 0, 0, false,
                                    log_ev, &l, &next),
                     0);
    assert_int_equal(l.seen, 3);
    assert_int_equal(next, 6);
    l = (struct evlog){.stop_after = 1};
    assert_int_equal(kv_events_read(rd, U8(""), 1, U8(""), 1, 2, 0, 0, false,
                                    log_ev, &l, &next),
                     0);
    assert_int_equal(l.seen, 1);
    assert_int_equal(next, 3);
    kv_read_end(rd);
}

/* A watcher resuming at the compacted revision (as clients do with the
 * compact_revision of a cancelled watch) must not miss a delete made at
 * that revision. */
static void history_from_the_compacted_revision_is_whole(void **state)
{
    struct fx *f = *state;
    struct kv_read *rd;
    struct evlog l = {0};
    int64_t next;
    t_put(f->kv, "a", "1"); /* 2 */
    t_put(f->kv, "b", "1"); /* 3 */
    t_del(f->kv, "a", "c"); /* 4: two tombstones */
    assert_int_equal(t_compact(f->kv, 4), 0);
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_events_read(rd, U8("a"), 1, U8("c"), 1, 4, 0, 0, true,
                                    log_ev, &l, &next),
                     0);
    assert_string_equal(l.s, "DEL a@4,DEL b@4");
    assert_int_equal(kv_events_read(rd, U8("a"), 1, U8("c"), 1, 3, 0, 0, true,
                                    log_ev, &l, &next),
                     ERR_COMPACTED);
    kv_read_end(rd);
    struct kv_range_req r = rq_all();
    r.revision = 4;
    int64_t count = -1;
    assert_int_equal(t_range(f->kv, &r, NULL, 0, &count, NULL), 0);
    assert_int_equal(count, 0);
}

/* --- leases
 * -----------------------------------------------------------------*/

struct keys {
    char s[OUT_MAX];
};

static int key_cat(void *ctx, const uint8_t *key, size_t key_len)
{
    struct keys *k = ctx;
    size_t at = strlen(k->s);
    snprintf(k->s + at, sizeof(k->s) - at, "%s%.*s", at ? "," : "",
             (int)key_len, (const char *)key);
    return 0;
}

static int lease_cat(void *ctx, const struct kv_lease *l)
{
    struct keys *k = ctx;
    size_t at = strlen(k->s);
    snprintf(k->s + at, sizeof(k->s) - at, "%s%lld:%lld:%lld", at ? "," : "",
             (long long)l->id, (long long)l->ttl, (long long)l->remaining_ttl);
    return 0;
}

static void lease_grant_revoke_keys_and_checkpoint(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_read *rd;
    struct kv_lease l;
    struct keys ks = {{0}};
    struct evlog ev = {0};
    int64_t rev;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_grant(wr, 10, 30), 0);
    assert_int_equal(kv_lease_grant(wr, 11, 60), 0);
    assert_int_equal(kv_lease_grant(wr, 10, 30), ERR_LEASE_EXISTS);
    assert_int_equal(kv_lease_grant(wr, 0, 30), ERR_INVALID);
    assert_int_equal(kv_lease_checkpoint(wr, 11, 42), 0);
    assert_int_equal(kv_lease_checkpoint(wr, 12, 42), ERR_LEASE_NOT_FOUND);
    assert_int_equal(kv_write_rev(wr), 1); /* grants add no revision */
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    const char *keys[] = {"s/b", "s/a", "s/c"};
    for (int i = 0; i < 3; i++) {
        struct kv_put_req p = {.key = U8(keys[i]), .key_len = 3};
        p.lease = i < 2 ? 10 : 11;
        assert_int_equal(t_put_req(f->kv, &p, NULL, NULL), 0); /* 2..4 */
    }
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_lease_keys(rd, 10, key_cat, &ks), 0);
    assert_string_equal(ks.s, "s/a,s/b");
    ks.s[0] = 0;
    assert_int_equal(kv_lease_list(rd, lease_cat, &ks), 0);
    assert_string_equal(ks.s, "10:30:0,11:60:42");
    assert_int_equal(kv_lease_get(rd, 11, &l), 0);
    assert_int_equal(l.remaining_ttl, 42);
    assert_int_equal(kv_lease_get(rd, 13, &l), ERR_LEASE_NOT_FOUND);
    kv_read_end(rd);
    assert_int_equal(kv_write_begin(f->kv, log_ev, &ev, &wr), 0);
    assert_int_equal(kv_lease_revoke(wr, 10, &rev), 0);
    assert_int_equal(rev, 5); /* both keys at one revision */
    assert_int_equal(kv_lease_revoke(wr, 10, &rev), ERR_LEASE_NOT_FOUND);
    assert_int_equal(kv_lease_grant(wr, 12, 5), 0);
    assert_int_equal(kv_lease_revoke(wr, 12, &rev), 0);
    assert_int_equal(rev, 5); /* no keys: no revision */
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    assert_string_equal(ev.s, "DEL s/a@5 prev=@3,DEL s/b@5 prev=@2");
    assert_int_equal(t_get(f->kv, "s/a", 0, NULL, 0, NULL), ERR_NOT_FOUND);
    assert_int_equal(t_get(f->kv, "s/c", 0, NULL, 0, NULL), 0);
    ks.s[0] = 0;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_lease_keys(rd, 10, key_cat, &ks), 0);
    assert_string_equal(ks.s, "");
    assert_int_equal(kv_lease_list(rd, lease_cat, &ks), 0);
    assert_string_equal(ks.s, "11:60:42");
    kv_read_end(rd);
    /* Deleting a key detaches it from its lease. */
    t_del(f->kv, "s/c", NULL);
    ks.s[0] = 0;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_lease_keys(rd, 11, key_cat, &ks), 0);
    assert_string_equal(ks.s, "");
    kv_read_end(rd);
}

/* --- aux
 * ----------------------------------------------------------------------*/

static int aux_cat(void *ctx, const void *name, size_t name_len,
                   const void *value, size_t value_len)
{
    struct keys *k = ctx;
    size_t at = strlen(k->s);
    snprintf(k->s + at, sizeof(k->s) - at, "%s%.*s=%.*s", at ? "," : "",
             (int)name_len, (const char *)name, (int)value_len,
             (const char *)value);
    return 0;
}

static void aux_tables_put_get_list_delete(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_read *rd;
    struct keys ks = {{0}};
    const void *v;
    size_t vlen;
    static char longname[402];
    memset(longname, 'n', sizeof(longname));
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_aux_put(wr, KV_AUX_AUTH, "user/b", 6, "B", 1), 0);
    assert_int_equal(kv_aux_put(wr, KV_AUX_AUTH, "user/a", 6, "A", 1), 0);
    assert_int_equal(kv_aux_put(wr, KV_AUX_CLUSTER, "id", 2, "C", 1), 0);
    assert_int_equal(kv_aux_put(wr, KV_AUX_ALARM, longname, 401, "x", 1),
                     ERR_INVALID);
    assert_int_equal(kv_aux_put(wr, KV_AUX_ALARM, longname, 400, "x", 1), 0);
    assert_int_equal(kv_aux_delete(wr, KV_AUX_ALARM, "nope", 4), ERR_NOT_FOUND);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    assert_int_equal(kv_rev(f->kv), 1);
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_aux_get(rd, KV_AUX_CLUSTER, "id", 2, &v, &vlen), 0);
    assert_int_equal(vlen, 1);
    assert_memory_equal(v, "C", 1);
    assert_int_equal(kv_aux_get(rd, KV_AUX_AUTH, "id", 2, &v, &vlen),
                     ERR_NOT_FOUND);
    assert_int_equal(kv_aux_list(rd, KV_AUX_AUTH, aux_cat, &ks), 0);
    assert_string_equal(ks.s, "user/a=A,user/b=B");
    kv_read_end(rd);
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_aux_delete(wr, KV_AUX_AUTH, "user/a", 6), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    fx_reopen(f);
    ks.s[0] = 0;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_aux_list(rd, KV_AUX_AUTH, aux_cat, &ks), 0);
    assert_string_equal(ks.s, "user/b=B");
    kv_read_end(rd);
}

/* --- whole store
 * ------------------------------------------------------------*/

/* data.mdb's size; with writemap the file is the map's size (sparse), so
 * what counts is the bytes up to LMDB's last page. */
static off_t file_size(struct kv *kv, const char *dir)
{
    char p[128];
    struct stat st;
    snprintf(p, sizeof(p), "%s/data.mdb", dir);
    assert_int_equal(stat(p, &st), 0);
    if (kv_writemap(kv)) {
        uint64_t db = 0, in_use = 0;
        kv_size(kv, &db, &in_use);
        assert_true((uint64_t)st.st_size >= db);
        return (off_t)db;
    }
    return st.st_size;
}

static void fill(struct kv *kv, int n, const char *prefix)
{
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_put_resp pr;
    static char v[1000];
    char k[64];
    memset(v, 'z', sizeof(v));
    assert_int_equal(kv_write_begin(kv, NULL, NULL, &wr), 0);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof(k), "%s%06d", prefix, i);
        struct kv_put_req p = {.key = U8(k), .key_len = strlen(k)};
        p.value = U8(v);
        p.value_len = (size_t)(100 + i % 900);
        assert_int_equal(kv_put(wr, &p, &res, &pr, NULL), 0);
    }
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
}

static void defrag_shrinks_the_file_after_compaction_and_keeps_data(void **s)
{
    struct fx *f = *s;
    char out[OUT_MAX];
    fill(f->kv, 3000, "big/");
    t_put(f->kv, "keep", "me");
    assert_int_equal(t_del(f->kv, "big/", "big0"), 3000);
    assert_int_equal(t_compact(f->kv, kv_rev(f->kv)), 0);
    int64_t rev = kv_rev(f->kv);
    off_t before = file_size(f->kv, f->dir);
    struct kv_read *rd;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_defrag(f->kv), ERR_BUSY); /* handles open */
    kv_read_end(rd);
    assert_int_equal(kv_defrag(f->kv), 0);
    off_t after = file_size(f->kv, f->dir);
    assert_true(after * 4 < before);
    assert_int_equal(kv_rev(f->kv), rev);
    assert_int_equal(kv_compact_rev(f->kv), rev);
    struct kv_range_req r = rq_all();
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), NULL, NULL), 0);
    assert_string_equal(out, "keep=me");
    assert_int_equal(t_put(f->kv, "after", "1"), rev + 1);
    fx_reopen(f);
    assert_int_equal(kv_rev(f->kv), rev + 1);
}

static uint32_t hash_of(struct kv *kv, int64_t rev)
{
    struct kv_read *rd;
    uint32_t h;
    int64_t crev, hrev;
    assert_int_equal(kv_read_begin(kv, &rd), 0);
    assert_int_equal(kv_hash(rd, rev, &h, &crev, &hrev), 0);
    kv_read_end(rd);
    return h;
}

static void same_requests(struct kv *kv)
{
    fill(kv, 50, "h/");
    t_put(kv, "h/000003", "changed");
    t_del(kv, "h/000010", "h/000020");
    struct kv_op s[] = {op_put("t1", "a"), op_put("t2", "b")};
    struct kv_txn_req t = {NULL, 0, s, 2, NULL, 0};
    assert_int_equal(t_txn(kv, &t, NULL, NULL), 0);
    assert_int_equal(t_compact(kv, 52), 0);
}

static void hash_is_equal_for_stores_given_the_same_requests(void **state)
{
    struct fx *f = *state;
    struct fx g = {.opts = {.sync = KV_SYNC_NONE,
                            .writemap = getenv("CAIRN_KV_WRITEMAP") != NULL}};
    make_tmpdir(g.dir, sizeof(g.dir));
    assert_int_equal(fx_open(&g), 0);
    same_requests(f->kv);
    same_requests(g.kv);
    assert_int_equal(hash_of(f->kv, 0), hash_of(g.kv, 0));
    assert_int_equal(hash_of(f->kv, 53), hash_of(g.kv, 53));
    assert_int_not_equal(hash_of(f->kv, 53), hash_of(f->kv, 0));
    struct kv_read *rd;
    uint32_t h;
    int64_t c, r;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_hash(rd, 51, &h, &c, &r), ERR_COMPACTED);
    assert_int_equal(kv_hash(rd, 99, &h, &c, &r), ERR_FUTURE_REV);
    kv_read_end(rd);
    t_put(g.kv, "extra", "1");
    assert_int_not_equal(hash_of(f->kv, 0), hash_of(g.kv, 0));
    /* Compaction alone changes the hash (history and compact revision). */
    fx_close(&g);
    rm_rf(g.dir);
}

/* HashKV is defined over the rev table's records (kv.h), which a change
 * of the other tables must not touch: these are the values format 1 gave
 * for this history (issue 11 moved values out of the live table). */
static void hash_of_a_fixed_history_is_pinned(void **state)
{
    struct fx *f = *state;
    same_requests(f->kv);
    assert_int_equal(hash_of(f->kv, 0), 0x5eeb0024u);
    assert_int_equal(hash_of(f->kv, 53), 0xe64a825au);
}

static void snapshot_write_and_install_round_trip(void **state)
{
    struct fx *f = *state;
    struct fx g = {.opts = {.sync = KV_SYNC_NONE,
                            .writemap = getenv("CAIRN_KV_WRITEMAP") != NULL}};
    char path[128], out1[OUT_MAX], out2[OUT_MAX];
    make_tmpdir(g.dir, sizeof(g.dir));
    assert_int_equal(fx_open(&g), 0);
    same_requests(f->kv);
    struct kv_write *wr;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_grant(wr, 8, 9), 0);
    assert_int_equal(kv_aux_put(wr, KV_AUX_CLUSTER, "id", 2, "c1", 2), 0);
    assert_int_equal(kv_write_commit(wr, 123, 4), 0);
    t_put(g.kv, "to-be-replaced", "1");
    snprintf(path, sizeof(path), "%s.snap", g.dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    struct kv_read *rd;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0); /* readers may run */
    assert_int_equal(kv_snapshot_write(f->kv, fd), 0);
    kv_read_end(rd);
    close(fd);
    assert_int_equal(kv_snapshot_install(g.kv, path), 0);
    uint64_t idx, term;
    kv_applied(g.kv, &idx, &term);
    assert_int_equal(idx, 123);
    assert_int_equal(term, 4);
    assert_int_equal(kv_rev(g.kv), kv_rev(f->kv));
    assert_int_equal(kv_compact_rev(g.kv), 52);
    assert_int_equal(hash_of(f->kv, 0), hash_of(g.kv, 0));
    struct kv_range_req r = rq_all();
    assert_int_equal(t_range(f->kv, &r, out1, sizeof(out1), NULL, NULL), 0);
    assert_int_equal(t_range(g.kv, &r, out2, sizeof(out2), NULL, NULL), 0);
    assert_string_equal(out1, out2);
    struct kv_lease l;
    assert_int_equal(kv_read_begin(g.kv, &rd), 0);
    assert_int_equal(kv_lease_get(rd, 8, &l), 0);
    kv_read_end(rd);
    /* A file that is not a snapshot leaves the store untouched. */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "garbage!", 8), 8);
    close(fd);
    assert_int_equal(kv_snapshot_install(g.kv, path), ERR_BAD_MAGIC);
    assert_int_equal(kv_snapshot_install(g.kv, "/nonexistent/x"), -ENOENT);
    assert_int_equal(hash_of(f->kv, 0), hash_of(g.kv, 0));
    assert_int_equal(t_put(g.kv, "still", "works"), kv_rev(f->kv) + 1);
    unlink(path);
    fx_close(&g);
    rm_rf(g.dir);
}

/* --- allocation failures
 * -------------------------------------------------------*/

/* One op in its own batch (events on), with whatever allocations fail. */
static int sweep_op(struct kv *kv, int which)
{
    struct kv_write *wr;
    struct kv_result res = {0};
    struct evlog l = {0};
    int rc = kv_write_begin(kv, log_ev, &l, &wr);
    if (rc != 0) {
        return rc;
    }
    if (which == 0) {
        struct kv_put_req p = {.key = U8("k000001"), .key_len = 7};
        struct kv_put_resp pr;
        p.prev_kv = true;
        p.value = U8("new");
        p.value_len = 3;
        rc = kv_put(wr, &p, &res, &pr, NULL);
    } else if (which == 1) {
        struct kv_op d = op_del("k000000", "k000004");
        struct kv_delete_resp dr;
        d.u.del.prev_kv = true;
        rc = kv_delete(wr, &d.u.del, &res, &dr, NULL);
    } else if (which == 2) {
        struct kv_compare c =
            cmp_num("k000002", KV_CMP_VERSION, KV_CMP_GREATER, 0);
        struct kv_op in[] = {op_put("n1", "x"), op_get("k000003")};
        struct kv_txn_req it = {NULL, 0, in, 2, NULL, 0};
        struct kv_op s[] = {op_put("k000002", "t"),
                            op_del("k000004", "k000006"), op_txn(&it)};
        s[1].u.del.prev_kv = true;
        struct kv_txn_req t = {&c, 1, s, 3, NULL, 0};
        struct kv_txn_resp tr;
        rc = kv_txn(wr, &t, &res, &tr, NULL);
    } else {
        struct kv_range_req r = rq_all();
        r.sort_target = KV_SORT_MOD;
        struct kv_range_resp rr;
        rc = kv_write_range(wr, &r, &res, &rr);
    }
    int crc = kv_write_commit(wr, 0, 0);
    kv_result_free(&res);
    return rc != 0 ? rc : crc;
}

struct snap {
    char all[OUT_MAX];
    int64_t rev;
    uint32_t hash;
};

static void snap_take(struct kv *kv, struct snap *s)
{
    struct kv_range_req r = rq_all();
    assert_int_equal(t_range(kv, &r, s->all, sizeof(s->all), NULL, NULL), 0);
    s->rev = kv_rev(kv);
    s->hash = hash_of(kv, 0);
}

static bool snap_eq(const struct snap *a, const struct snap *b)
{
    return strcmp(a->all, b->all) == 0 && a->rev == b->rev &&
           a->hash == b->hash;
}

static void fresh(struct fx *f)
{
    fx_close(f);
    rm_rf(f->dir);
    assert_int_equal(mkdir(f->dir, 0700), 0);
    assert_int_equal(fx_open(f), 0);
    fill(f->kv, 8, "k");
}

/* Sweep n over every allocation of each op: the n-th allocation and all
 * after it fail. The store must end exactly before or exactly after the
 * op (as a clean run leaves it), survive a reopen, and keep working. */
static void allocation_failures_never_crash_or_corrupt(void **state)
{
    struct fx *f = *state;
    struct snap before, after, now;
    for (int which = 0; which < 4; which++) {
        fresh(f);
        snap_take(f->kv, &before);
        assert_int_equal(sweep_op(f->kv, which), 0);
        snap_take(f->kv, &after);
        int failures = 0;
        for (unsigned long n = 1;; n++) {
            assert_true(n < 1000);
            fresh(f);
            mem_fail_after(n, 1);
            int rc = sweep_op(f->kv, which);
            unsigned long used = mem_fail_after(0, 0);
            snap_take(f->kv, &now);
            if (rc == 0) {
                assert_true(snap_eq(&now, &after));
            } else {
                failures++;
                assert_true(rc == -ENOMEM);
                assert_true(snap_eq(&now, &before));
            }
            fx_reopen(f);
            snap_take(f->kv, &now);
            assert_true(snap_eq(&now, rc == 0 ? &after : &before));
            t_put(f->kv, "alive", "1");
            if (used < n) {
                assert_int_equal(rc, 0);
                break; /* no allocation failed: the sweep is complete */
            }
        }
        assert_true(failures > 0);
        print_message("op %d: %d allocation points failed cleanly\n", which,
                      failures);
    }
}

/* --- options and sizes
 * ------------------------------------------------------*/

static void every_sync_mode_commits_and_reopens(void **state)
{
    struct fx *f = *state;
    const enum kv_sync_mode modes[] = {KV_SYNC_META_LAZY, KV_SYNC_FULL,
                                       KV_SYNC_NONE};
    for (size_t i = 0; i < 3; i++) {
        fx_close(f);
        f->opts.sync = modes[i];
        assert_int_equal(fx_open(f), 0);
        int64_t rev = t_put(f->kv, "k", "v");
        assert_int_equal(kv_sync(f->kv), 0);
        fx_reopen(f);
        assert_int_equal(kv_rev(f->kv), rev);
    }
    fx_close(f);
    f->opts.sync = (enum kv_sync_mode)9;
    assert_int_equal(fx_open(f), ERR_INVALID);
    f->opts.sync = KV_SYNC_NONE;
    f->opts.max_txn_ops = 70000; /* past LIMIT_TXN_OPS's hard max */
    assert_int_equal(fx_open(f), ERR_LIMIT);
    f->opts.max_txn_ops = 0;
    assert_int_equal(fx_open(f), 0);
}

static void size_reports_file_and_pages_in_use(void **state)
{
    struct fx *f = *state;
    uint64_t db0, used0, db1, used1, db2, used2;
    kv_size(f->kv, &db0, &used0);
    assert_true(db0 > 0);
    assert_true(used0 <= db0);
    fill(f->kv, 2000, "s/");
    kv_size(f->kv, &db1, &used1);
    assert_true(db1 > db0 + 2000 * 100);
    assert_true(used1 <= db1);
    t_del(f->kv, "s/", "s0");
    assert_int_equal(t_compact(f->kv, kv_rev(f->kv)), 0);
    t_put(f->kv, "x", "1"); /* lets LMDB account the freed pages */
    kv_size(f->kv, &db2, &used2);
    assert_int_equal(kv_db_bytes(f->kv), db2); /* the same, without the walk */
    assert_int_equal(kv_db_bytes(f->kv) > db0, 1);
    assert_true(db2 >= db1);    /* the file does not shrink by itself */
    assert_true(used2 < used1); /* but its pages are free again */
}

static void whole_store_ops_need_every_handle_closed(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    char path[128];
    t_put(f->kv, "a", "1");
    snprintf(path, sizeof(path), "%s.snap", f->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(kv_snapshot_write(f->kv, fd), 0);
    close(fd);
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_defrag(f->kv), ERR_BUSY);
    assert_int_equal(kv_snapshot_install(f->kv, path), ERR_BUSY);
    kv_write_abort(wr);
    assert_int_equal(kv_snapshot_install(f->kv, path), 0);
    assert_int_equal(kv_rev(f->kv), 2);
    unlink(path);
}

static void past_revision_range_sorts_filters_and_limits(void **state)
{
    struct fx *f = *state;
    char out[OUT_MAX];
    int64_t count;
    bool more;
    t_put(f->kv, "a", "3");  /* 2 */
    t_put(f->kv, "b", "2");  /* 3 */
    t_put(f->kv, "c", "1");  /* 4 */
    t_put(f->kv, "a", "9");  /* 5 */
    t_del(f->kv, "c", NULL); /* 6 */
    struct kv_range_req r = rq_all();
    r.revision = 4;
    r.sort_target = KV_SORT_VALUE;
    r.limit = 2;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "c=1,b=2");
    assert_int_equal(count, 3);
    assert_true(more);
    r.min_create_revision = 3;
    r.limit = 0;
    r.sort_order = KV_SORT_DESCEND;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_string_equal(out, "b=2,c=1");
    assert_int_equal(count, 3);
    r = rq_span("a", "c");
    r.revision = 5;
    r.count_only = true;
    assert_int_equal(t_range(f->kv, &r, out, sizeof(out), &count, &more), 0);
    assert_int_equal(count, 2);
    assert_string_equal(out, "");
}

static void events_read_clamps_to_the_handle_revision(void **state)
{
    struct fx *f = *state;
    struct kv_read *rd;
    struct evlog l = {0};
    int64_t next;
    t_put(f->kv, "a", "1"); /* 2 */
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    t_put(f->kv, "a", "2"); /* 3: after the handle began */
    assert_int_equal(kv_events_read(rd, U8("a"), 1, NULL, 0, 0, 99, 0, false,
                                    log_ev, &l, &next),
                     0);
    assert_string_equal(l.s, "PUT a@2=1 v1");
    assert_int_equal(next, 3);
    l = (struct evlog){0};
    assert_int_equal(kv_events_read(rd, U8("a"), 1, NULL, 0, 3, 0, 0, false,
                                    log_ev, &l, &next),
                     0);
    assert_int_equal(l.seen, 0);
    assert_int_equal(next, 3);
    kv_read_end(rd);
}

/* Long histories make LMDB sub-databases (a key with thousands of
 * revisions in index, a lease with thousands of keys in lkeys); the
 * compacting copies of defrag and snapshot must keep them whole. */
static void compacting_copies_keep_long_histories(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_put_resp pr;
    char k[32], v[32];
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_grant(wr, 77, 60), 0);
    for (int i = 0; i < 3000; i++) {
        snprintf(v, sizeof(v), "v%d", i);
        struct kv_put_req p = {.key = U8("hot"), .key_len = 3};
        p.value = U8(v);
        p.value_len = strlen(v);
        assert_int_equal(kv_put(wr, &p, &res, &pr, NULL), 0);
        snprintf(k, sizeof(k), "leased/%05d", i);
        struct kv_put_req q = {.key = U8(k), .key_len = strlen(k), .lease = 77};
        assert_int_equal(kv_put(wr, &q, &res, &pr, NULL), 0);
    }
    assert_int_equal(kv_write_commit(wr, 5, 1), 0);
    kv_result_free(&res);
    uint32_t h = hash_of(f->kv, 0);
    assert_int_equal(kv_defrag(f->kv), 0);
    assert_int_equal(hash_of(f->kv, 0), h);
    char path[128], got[32];
    snprintf(path, sizeof(path), "%s.snap", f->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(kv_snapshot_write(f->kv, fd), 0);
    close(fd);
    struct fx g = {.opts = {.sync = KV_SYNC_NONE,
                            .writemap = getenv("CAIRN_KV_WRITEMAP") != NULL}};
    make_tmpdir(g.dir, sizeof(g.dir));
    assert_int_equal(fx_open(&g), 0);
    assert_int_equal(kv_snapshot_install(g.kv, path), 0);
    assert_int_equal(hash_of(g.kv, 0), h);
    for (int64_t rev = 2; rev < 6000; rev += 997) {
        assert_int_equal(t_get(g.kv, "hot", rev, got, sizeof(got), NULL), 0);
        snprintf(v, sizeof(v), "v%lld", (long long)((rev - 2) / 2));
        assert_string_equal(got, v);
    }
    int64_t rev;
    assert_int_equal(kv_write_begin(g.kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_revoke(wr, 77, &rev), 0);
    assert_int_equal(kv_write_commit(wr, 6, 1), 0);
    int64_t count;
    struct kv_range_req r = rq_span("leased/", "leased0");
    r.count_only = true;
    assert_int_equal(t_range(g.kv, &r, NULL, 0, &count, NULL), 0);
    assert_int_equal(count, 0);
    r.revision = rev - 1;
    assert_int_equal(t_range(g.kv, &r, NULL, 0, &count, NULL), 0);
    assert_int_equal(count, 3000);
    unlink(path);
    fx_close(&g);
    rm_rf(g.dir);
}

/* Defrag repacks: after three rounds of puts over the same 3000 keys are
 * compacted down to one, the file is close to the bytes it holds (each
 * value once, full pages), not a third-full pages of three times that. */
static void defrag_repacks_pages_after_compaction(void **state)
{
    struct fx *f = *state;
    static char v[257];
    char k[32];
    memset(v, 'p', 256);
    for (int round = 0; round < 3; round++) {
        struct kv_write *wr;
        struct kv_result res = {0};
        struct kv_put_resp pr;
        assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
        for (int i = 0; i < 3000; i++) {
            /* Scattered order, as random puts would be. */
            snprintf(k, sizeof(k), "r%06d", (i * 7919) % 3000);
            struct kv_put_req p = {.key = U8(k), .key_len = strlen(k)};
            p.value = U8(v);
            p.value_len = 256;
            assert_int_equal(kv_put(wr, &p, &res, &pr, NULL), 0);
        }
        assert_int_equal(kv_write_commit(wr, (uint64_t)round + 1, 1), 0);
        kv_result_free(&res);
    }
    assert_int_equal(t_compact(f->kv, kv_rev(f->kv)), 0);
    assert_int_equal(kv_defrag(f->kv), 0);
    /* Payload: 3000 rev records of 12 + 29 + 7 + 256 bytes, live rows of
     * 7 + 36, index entries of 7 + 13; LMDB adds 8 bytes a node and 2 a
     * pointer. Allow a quarter more for page headers and branches. */
    off_t payload =
        3000 * ((12 + 29 + 7 + 256 + 10) + (7 + 36 + 10) + (7 + 13 + 10 + 16));
    off_t size = file_size(f->kv, f->dir);
    assert_true(size < payload * 5 / 4);
    char got[300];
    assert_int_equal(t_get(f->kv, "r002999", 0, got, sizeof(got), NULL), 0);
    assert_int_equal(strlen(got), 256);
    struct kv_range_req q = rq_span("r", "s");
    int64_t count;
    q.count_only = true;
    assert_int_equal(t_range(f->kv, &q, NULL, 0, &count, NULL), 0);
    assert_int_equal(count, 3000);
}

/* Pages of the file at dir/data.mdb (first len bytes) that the page
 * cache holds in large folios, by the kernel's page flags; -1 when this
 * process cannot read page frame numbers (no CAP_SYS_ADMIN). */
static long pages_in_large_folios(const char *dir, size_t len, long *seen)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    int fd = open(path, O_RDONLY);
    int pm = open("/proc/self/pagemap", O_RDONLY);
    int kf = open("/proc/kpageflags", O_RDONLY);
    long big = 0;
    *seen = 0;
    const uint8_t *m =
        fd < 0 ? MAP_FAILED : mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED || pm < 0 || kf < 0) {
        big = -1;
    }
    for (size_t off = 0; big >= 0 && off < len; off += 4096) {
        volatile uint8_t touch = m[off];
        (void)touch;
        uint64_t ent = 0, fl = 0;
        off_t at = (off_t)(((uintptr_t)m + off) / 4096 * 8);
        if (pread(pm, &ent, 8, at) != 8) {
            big = -1;
            break;
        }
        uint64_t pfn = ent & ((1ull << 55) - 1);
        if (!(ent >> 63) || pfn == 0) {
            if (ent >> 63) {
                big = -1; /* present but the frame is hidden from us */
            }
            continue;
        }
        if (pread(kf, &fl, 8, (off_t)(pfn * 8)) != 8) {
            big = -1;
            break;
        }
        (*seen)++;
        big += (fl >> 15 & 1) || (fl >> 16 & 1); /* compound head/tail */
    }
    if (m != MAP_FAILED) {
        munmap((void *)m, len);
    }
    if (fd >= 0) {
        close(fd);
    }
    if (pm >= 0) {
        close(pm);
    }
    if (kf >= 0) {
        close(kf);
    }
    return big;
}

/* A growing store keeps its file ahead of LMDB's last page and cached in
 * single pages (kv_env.c, "The page cache in single pages"): LMDB's own
 * growth writes runs of up to 64 pages, which the kernel caches in large
 * folios, and every later random page write into one walks all its
 * blocks. Linux-specific: where the file system caches nothing in large
 * folios the test still holds; on ext4 here it fails without the
 * read-ahead of the tail (most of the pages sit in large folios). */
static void growing_file_is_cached_in_single_pages(void **state)
{
    struct fx *f = *state;

    static char v[1025];
    char k[32];
    memset(v, 'g', 1024);
    for (int round = 0; round < 24; round++) {
        struct kv_write *wr;
        struct kv_result res = {0};
        struct kv_put_resp pr;
        assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
        for (int i = 0; i < 1000; i++) {
            snprintf(k, sizeof(k), "g%02d%05d", round, i);
            struct kv_put_req p = {.key = U8(k), .key_len = strlen(k)};
            p.value = U8(v);
            p.value_len = 1024;
            assert_int_equal(kv_put(wr, &p, &res, &pr, NULL), 0);
        }
        assert_int_equal(kv_write_commit(wr, (uint64_t)round + 1, 1), 0);
        kv_result_free(&res);
    }
    uint64_t db = 0, in_use = 0;
    kv_size(f->kv, &db, &in_use);
    assert_true(db > ((uint64_t)20 << 20));
    struct stat st;
    char path[128];
    snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
    assert_int_equal(stat(path, &st), 0);
    if (kv_writemap(f->kv)) {
        /* no pwrite here: LMDB's pages come in by faults, one at a time.
         * What this mode promises instead: the file allocated (no holes)
         * past the last page by more than the largest value and 4 MiB (a
         * full disk is ENOSPC from fallocate, not SIGBUS), and no larger
         * than twice that reserve (not the map's size, which LMDB gives
         * it at open). */
        uint64_t vmax = f->opts.value_bytes_max != 0
                            ? f->opts.value_bytes_max
                            : limits_default(LIMIT_VALUE_BYTES);
        uint64_t near = vmax + ((uint64_t)4 << 20);
        /* (the last commit may run a few pages past its last check; the
         * allocation is rounded up to 1 MiB) */
        assert_true((uint64_t)st.st_size >= db + near - ((uint64_t)1 << 20));
        assert_true((uint64_t)st.st_size <=
                    db + 2 * near + (db >> 6) + ((uint64_t)1 << 20));
        assert_true((uint64_t)st.st_blocks * 512 + 4096 >=
                    (uint64_t)st.st_size);
        return;
    }
    /* the file reaches past the last page, by no more than twice the
     * last commit's growth (1.3 MB here) and a rounding step */
    assert_true((uint64_t)st.st_size > db);
    assert_true((uint64_t)st.st_size <= db + ((uint64_t)3 << 20));
    long seen = 0;
    long big = pages_in_large_folios(f->dir, (size_t)db, &seen);
    if (big < 0) {
        skip(); /* page flags need CAP_SYS_ADMIN */
    }
    print_message("%ld of %ld cached pages in large folios\n", big, seen);
    assert_true(seen > (long)(db / 4096 / 2));
    /* The first 4 MiB, and the commit that crosses them, grow before
     * the read-ahead starts: 1,086 of 8,592 pages here; without it
     * 8,376 (97%). */
    assert_true(big <= seen / 5);
}

/* Process-wide resident file pages (/proc/self/status RssFile), bytes. */
static uint64_t rss_file_bytes(void)
{
    FILE *fp = fopen("/proc/self/status", "r");
    char line[128];
    unsigned long long kb = 0;
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp) != NULL) {
        if (sscanf(line, "RssFile: %llu kB", &kb) == 1) {
            break;
        }
    }
    fclose(fp);
    return (uint64_t)kb << 10;
}

/* With writemap every page a commit changes stays mapped in the process
 * (VmRSS) until unmapped. Past kv_options.resident_bytes, while the file
 * grows, the writer drops the map's pages from its page tables: the
 * resident file pages fall, and nothing is lost (the changed pages stay in
 * the page cache, dirty, and reach the file). A store that no longer grows
 * stays mapped: unmapping it would fault back every page it writes. */
static void writemap_unmaps_pages_past_the_resident_budget(void **state)
{
    (void)state;
    struct fx g = {.opts = {.sync = KV_SYNC_NONE,
                            .writemap = true,
                            .resident_bytes = (uint64_t)8 << 20}};
    make_tmpdir(g.dir, sizeof(g.dir));
    assert_int_equal(fx_open(&g), 0);
    if (!kv_writemap(g.kv)) {
        fx_close(&g);
        rm_rf(g.dir);
        skip(); /* this file system cannot allocate ahead */
    }
    static char v[1025];
    char k[32], got[1100];
    for (int c = 0; c < 128; c++) {
        /* 64 commits that grow the file by 36 MB, then 64 that rewrite
         * ten keys in place */
        int n = c < 64 ? 400 : 10;
        int at = c < 64 ? c : 0;
        struct kv_write *wr;
        struct kv_result res = {0};
        struct kv_put_resp pr;
        assert_int_equal(kv_write_begin(g.kv, NULL, NULL, &wr), 0);
        for (int i = 0; i < n; i++) {
            snprintf(k, sizeof(k), "r%02d%04d", at, i);
            snprintf(v, sizeof(v), "%0*d", 1000, at * 400 + i);
            struct kv_put_req p = {.key = U8(k), .key_len = strlen(k)};
            p.value = U8(v);
            p.value_len = strlen(v);
            assert_int_equal(kv_put(wr, &p, &res, &pr, NULL), 0);
        }
        assert_int_equal(kv_write_commit(wr, (uint64_t)c + 1, 1), 0);
        kv_result_free(&res);
        uint64_t db = 0, in_use = 0;
        if (c == 63) {
            kv_size(g.kv, &db, &in_use);
            uint64_t rss = rss_file_bytes();
            print_message("grown: resident file pages %llu kB, store %llu "
                          "kB in use\n",
                          (unsigned long long)(rss >> 10),
                          (unsigned long long)(in_use >> 10));
            assert_true(in_use > ((uint64_t)24 << 20));
            assert_true(rss < in_use / 2);
            /* every key read back: its pages mapped again */
            for (int r = 0; r < 64; r++) {
                for (int i = 0; i < 400; i++) {
                    snprintf(k, sizeof(k), "r%02d%04d", r, i);
                    snprintf(v, sizeof(v), "%0*d", 1000, r * 400 + i);
                    assert_int_equal(t_get(g.kv, k, 0, got, sizeof(got), NULL),
                                     0);
                    assert_string_equal(got, v);
                }
            }
            assert_true(rss_file_bytes() > in_use / 2);
        }
    }
    uint64_t db = 0, in_use = 0;
    kv_size(g.kv, &db, &in_use);
    uint64_t rss = rss_file_bytes();
    print_message("not growing: resident file pages %llu kB\n",
                  (unsigned long long)(rss >> 10));
    assert_true(rss > in_use / 2);
    for (int pass = 0; pass < 2; pass++) {
        fx_reopen(&g); /* from the file, through a new map */
        for (int c = 0; c < 64; c += 7) {
            for (int i = 0; i < 400; i += 53) {
                snprintf(k, sizeof(k), "r%02d%04d", c, i);
                snprintf(v, sizeof(v), "%0*d", 1000, c * 400 + i);
                assert_int_equal(t_get(g.kv, k, 0, got, sizeof(got), NULL), 0);
                assert_string_equal(got, v);
            }
        }
    }
    fx_close(&g);
    rm_rf(g.dir);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

const struct CMUnitTest kv_more_tests[] = {
    T(compact_boundaries_match_etcd),
    T(compact_keeps_latest_record_per_key_unless_tombstone),
    T(history_from_the_compacted_revision_is_whole),
    T(over_quota_put_txn_and_grant_fail_but_deletes_work),
    T(a_key_changed_twice_in_one_txn_has_etcds_prevs),
    T(failed_request_in_batch_keeps_earlier_requests),
    T(write_abort_discards_the_batch),
    T(map_full_while_writing_loses_only_the_batch),
    T(events_follow_each_successful_request_with_prev),
    T(events_skip_prev_nobody_needs),
    T(events_read_filters_keys_and_finds_prev),
    T(events_read_never_splits_a_revision),
    T(lease_grant_revoke_keys_and_checkpoint),
    T(aux_tables_put_get_list_delete),
    T(defrag_shrinks_the_file_after_compaction_and_keeps_data),
    T(defrag_repacks_pages_after_compaction),
    T(hash_is_equal_for_stores_given_the_same_requests),
    T(hash_of_a_fixed_history_is_pinned),
    T(snapshot_write_and_install_round_trip),
    T(allocation_failures_never_crash_or_corrupt),
    T(every_sync_mode_commits_and_reopens),
    T(size_reports_file_and_pages_in_use),
    T(whole_store_ops_need_every_handle_closed),
    T(past_revision_range_sorts_filters_and_limits),
    T(events_read_clamps_to_the_handle_revision),
    T(compacting_copies_keep_long_histories),
    T(growing_file_is_cached_in_single_pages),
    T(writemap_unmaps_pages_past_the_resident_budget),
};
const size_t kv_more_tests_count =
    sizeof(kv_more_tests) / sizeof(kv_more_tests[0]);

/*
 * test_kv_txn.c - Txn against etcd 3.4's rules (etcd-api.md 1.5.4): compares
 * (missing key = zero record, VALUE false on a missing key, range_end),
 * branches, one revision with sub-revisions, reads seeing earlier writes,
 * nested compares on the state before the txn, the duplicate-key rule
 * and the op-count limits (cases checked against a real etcd 3.4.23).
 */
#include <stdio.h>
#include <stdlib.h>

#include "tests/unit/kv/kv_test.h"

#define OUT_MAX 4096
#define N(a)    (sizeof(a) / sizeof((a)[0]))

static struct kv_txn_req txn_of(const struct kv_compare *c, size_t nc,
                                const struct kv_op *s, size_t ns,
                                const struct kv_op *fl, size_t nf)
{
    struct kv_txn_req t = {c, nc, s, ns, fl, nf};
    return t;
}

static bool cmp_once(struct kv *kv, struct kv_compare c)
{
    bool ok = false;
    struct kv_txn_req t = txn_of(&c, 1, NULL, 0, NULL, 0);
    assert_int_equal(t_txn(kv, &t, &ok, NULL), 0);
    return ok;
}

static void txn_compares_choose_the_branch(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_lease_grant(wr, 9, 100), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    t_put(f->kv, "k", "m"); /* 2 */
    struct kv_put_req p = {.key = U8("k"), .key_len = 1, .lease = 9};
    p.value = U8("m");
    p.value_len = 1;
    assert_int_equal(t_put_req(f->kv, &p, NULL, NULL), 0); /* 3, version 2 */
    assert_true(cmp_once(f->kv, cmp_num("k", KV_CMP_VERSION, KV_CMP_EQUAL, 2)));
    assert_true(cmp_once(f->kv, cmp_num("k", KV_CMP_CREATE, KV_CMP_EQUAL, 2)));
    assert_true(cmp_once(f->kv, cmp_num("k", KV_CMP_MOD, KV_CMP_GREATER, 2)));
    assert_false(cmp_once(f->kv, cmp_num("k", KV_CMP_MOD, KV_CMP_LESS, 3)));
    assert_true(cmp_once(f->kv, cmp_num("k", KV_CMP_MOD, KV_CMP_NOT_EQUAL, 4)));
    assert_true(cmp_once(f->kv, cmp_num("k", KV_CMP_LEASE, KV_CMP_EQUAL, 9)));
    assert_true(cmp_once(f->kv, cmp_val("k", KV_CMP_EQUAL, "m")));
    assert_true(cmp_once(f->kv, cmp_val("k", KV_CMP_GREATER, "l")));
    assert_true(cmp_once(f->kv, cmp_val("k", KV_CMP_LESS, "mm")));
    assert_false(cmp_once(f->kv, cmp_val("k", KV_CMP_NOT_EQUAL, "m")));
    /* Compares are ANDed; success and failure ops run accordingly. */
    struct kv_compare cs[] = {
        cmp_num("k", KV_CMP_VERSION, KV_CMP_EQUAL, 2),
        cmp_val("k", KV_CMP_EQUAL, "nope"),
    };
    struct kv_op s[] = {op_put("s", "1")}, fl[] = {op_put("f", "1")};
    struct kv_txn_req t = txn_of(cs, 2, s, 1, fl, 1);
    bool ok = true;
    int64_t rev;
    assert_int_equal(t_txn(f->kv, &t, &ok, &rev), 0);
    assert_false(ok);
    assert_int_equal(rev, 4);
    assert_int_equal(t_get(f->kv, "f", 0, NULL, 0, NULL), 0);
    assert_int_equal(t_get(f->kv, "s", 0, NULL, 0, NULL), ERR_NOT_FOUND);
}

static void txn_compare_on_a_missing_key_uses_a_zero_record(void **state)
{
    struct fx *f = *state;
    assert_true(cmp_once(f->kv, cmp_num("no", KV_CMP_CREATE, KV_CMP_EQUAL, 0)));
    assert_true(cmp_once(f->kv, cmp_num("no", KV_CMP_MOD, KV_CMP_EQUAL, 0)));
    assert_true(cmp_once(f->kv, cmp_num("no", KV_CMP_VERSION, KV_CMP_LESS, 1)));
    assert_true(cmp_once(f->kv, cmp_num("no", KV_CMP_LEASE, KV_CMP_EQUAL, 0)));
    /* VALUE on a missing key is false whatever the result asks. */
    assert_false(cmp_once(f->kv, cmp_val("no", KV_CMP_EQUAL, "")));
    assert_false(cmp_once(f->kv, cmp_val("no", KV_CMP_NOT_EQUAL, "x")));
    assert_false(cmp_once(f->kv, cmp_val("no", KV_CMP_LESS, "x")));
    /* Create-if-absent, the kube-apiserver shape. */
    struct kv_compare c = cmp_num("lock", KV_CMP_CREATE, KV_CMP_EQUAL, 0);
    struct kv_op s[] = {op_put("lock", "me")};
    struct kv_txn_req t = txn_of(&c, 1, s, 1, NULL, 0);
    bool ok;
    assert_int_equal(t_txn(f->kv, &t, &ok, NULL), 0);
    assert_true(ok);
    assert_int_equal(t_txn(f->kv, &t, &ok, NULL), 0);
    assert_false(ok);
    assert_int_equal(kv_rev(f->kv), 2);
}

static void txn_compare_with_range_end_applies_to_every_key(void **state)
{
    struct fx *f = *state;
    t_put(f->kv, "p/a", "1");
    t_put(f->kv, "p/b", "1");
    t_put(f->kv, "p/b", "2");
    struct kv_compare c = cmp_num("p/", KV_CMP_VERSION, KV_CMP_EQUAL, 1);
    c.range_end = U8("p0");
    c.range_end_len = 2;
    assert_false(cmp_once(f->kv, c));
    c.result = KV_CMP_GREATER;
    c.number = 0;
    assert_true(cmp_once(f->kv, c));
    /* An empty range compares the zero record. */
    c = cmp_num("q/", KV_CMP_VERSION, KV_CMP_EQUAL, 0);
    c.range_end = U8("q0");
    c.range_end_len = 2;
    assert_true(cmp_once(f->kv, c));
    c = cmp_val("q/", KV_CMP_NOT_EQUAL, "x");
    c.range_end = U8("q0");
    c.range_end_len = 2;
    assert_false(cmp_once(f->kv, c));
    c = cmp_val("p/", KV_CMP_GREATER, "0");
    c.range_end = U8("");
    c.range_end_len = 1; /* from p/ on */
    assert_true(cmp_once(f->kv, c));
}

static int collect_ev(void *ctx, const struct kv_event *ev)
{
    char *out = ctx;
    size_t at = strlen(out);
    snprintf(out + at, OUT_MAX - at, "%s%s %.*s@%lld", at > 0 ? "," : "",
             ev->type == KV_EVENT_PUT ? "PUT" : "DEL", (int)ev->kv.key_len,
             (const char *)ev->kv.key, (long long)ev->kv.mod_revision);
    return 0;
}

static void txn_writes_share_one_revision_with_sub_revisions(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_txn_resp resp;
    char evs[OUT_MAX] = "";
    int64_t rev;
    t_put(f->kv, "x", "0");
    t_put(f->kv, "y", "0");
    struct kv_op s[] = {op_put("a", "1"), op_put("b", "1"), op_del("x", "z")};
    struct kv_txn_req t = txn_of(NULL, 0, s, N(s), NULL, 0);
    assert_int_equal(kv_write_begin(f->kv, collect_ev, evs, &wr), 0);
    assert_int_equal(kv_txn(wr, &t, &res, &resp, &rev), 0);
    assert_int_equal(rev, 4);
    assert_true(resp.succeeded);
    assert_int_equal(resp.responses_count, 3);
    assert_int_equal(resp.responses[2].type, KV_OP_DELETE);
    assert_int_equal(resp.responses[2].u.del.deleted, 2);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
    assert_string_equal(evs, "PUT a@4,PUT b@4,DEL x@4,DEL y@4");
    struct kv_kv m;
    assert_int_equal(t_get(f->kv, "b", 0, NULL, 0, &m), 0);
    assert_int_equal(m.mod_revision, 4);
    assert_int_equal(m.create_revision, 4);
    /* The history keeps the order of the ops (sub-revisions). */
    struct kv_read *rd;
    int64_t next;
    evs[0] = 0;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_events_read(rd, U8(""), 1, U8(""), 1, 4, 0, 0, false,
                                    collect_ev, evs, &next),
                     0);
    kv_read_end(rd);
    assert_string_equal(evs, "PUT a@4,PUT b@4,DEL x@4,DEL y@4");
    assert_int_equal(next, 5);
}

static void txn_reads_see_earlier_writes_of_the_same_txn(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_txn_resp resp;
    char out[OUT_MAX];
    t_put(f->kv, "a", "old"); /* 2 */
    t_put(f->kv, "b", "old"); /* 3 */
    struct kv_op s[] = {op_get("a"), op_put("a", "new"), op_get("a"),
                        op_del("b", NULL), op_get("b")};
    s[0].u.range.revision = 3; /* at the revision before: allowed */
    struct kv_txn_req t = txn_of(NULL, 0, s, 5, NULL, 0);
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    int rc = kv_txn(wr, &t, &res, &resp, NULL);
    if (rc != 0) {
        kv_write_abort(wr);
        fail_msg("txn: %s", err_str(rc));
    }
    kvs_format(resp.responses[0].u.range.kvs,
               resp.responses[0].u.range.kvs_count, out, sizeof(out));
    assert_string_equal(out, "a=old");
    kvs_format(resp.responses[2].u.range.kvs,
               resp.responses[2].u.range.kvs_count, out, sizeof(out));
    assert_string_equal(out, "a=new");
    assert_int_equal(resp.responses[2].u.range.kvs[0].mod_revision, 4);
    assert_int_equal(resp.responses[4].u.range.count, 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
}

static void txn_read_only_adds_no_revision(void **state)
{
    struct fx *f = *state;
    t_put(f->kv, "a", "1");
    struct kv_op s[] = {op_get("a"), op_del("nothing", NULL)};
    struct kv_txn_req t = txn_of(NULL, 0, s, 1, NULL, 0);
    int64_t rev;
    assert_int_equal(t_txn(f->kv, &t, NULL, &rev), 0);
    assert_int_equal(rev, 2);
    t = txn_of(NULL, 0, s, 2, NULL, 0); /* deletes nothing */
    assert_int_equal(t_txn(f->kv, &t, NULL, &rev), 0);
    assert_int_equal(rev, 2);
    assert_int_equal(kv_rev(f->kv), 2);
}

static void txn_read_runs_on_a_read_handle_and_refuses_writes(void **state)
{
    struct fx *f = *state;
    struct kv_read *rd;
    struct kv_result res = {0};
    struct kv_txn_resp resp;
    char out[OUT_MAX];
    t_put(f->kv, "a", "1");
    struct kv_compare c = cmp_num("a", KV_CMP_VERSION, KV_CMP_EQUAL, 1);
    struct kv_op s[] = {op_get("a")}, w[] = {op_put("a", "2")};
    struct kv_txn_req t = txn_of(&c, 1, s, 1, NULL, 0);
    assert_true(kv_txn_is_read_only(&t));
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_txn_read(rd, &t, &res, &resp), 0);
    assert_true(resp.succeeded);
    kvs_format(resp.responses[0].u.range.kvs, 1, out, sizeof(out));
    assert_string_equal(out, "a=1");
    struct kv_txn_req inner = txn_of(NULL, 0, NULL, 0, w, 1);
    struct kv_op nest[] = {op_txn(&inner)};
    t = txn_of(&c, 1, s, 1, nest, 1); /* a put in a branch not taken */
    assert_false(kv_txn_is_read_only(&t));
    assert_int_equal(kv_txn_read(rd, &t, &res, &resp), ERR_INVALID);
    kv_read_end(rd);
    kv_result_free(&res);
}

static void txn_nested_compares_see_the_state_before_the_txn(void **state)
{
    struct fx *f = *state;
    char v[16];
    /* etcd evaluates every compare of the path before any op runs. */
    struct kv_compare c = cmp_num("x", KV_CMP_VERSION, KV_CMP_EQUAL, 0);
    struct kv_op pre[] = {op_put("y", "pre")}, post[] = {op_put("y", "post")};
    struct kv_txn_req inner = txn_of(&c, 1, pre, 1, post, 1);
    struct kv_op s[] = {op_put("x", "1"), op_txn(&inner)};
    struct kv_txn_req t = txn_of(NULL, 0, s, 2, NULL, 0);
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_txn_resp resp;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_txn(wr, &t, &res, &resp, NULL), 0);
    assert_int_equal(resp.responses[1].type, KV_OP_TXN);
    assert_true(resp.responses[1].u.txn->succeeded);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
    assert_int_equal(t_get(f->kv, "y", 0, v, sizeof(v), NULL), 0);
    assert_string_equal(v, "pre");
}

struct dup_case {
    const char *what;
    int want;
};

static void txn_duplicate_key_rules_match_etcd(void **state)
{
    struct fx *f = *state;
    t_put(f->kv, "k", "0");
    int64_t rev0 = kv_rev(f->kv);
    /* Building blocks. */
    struct kv_op put_k[] = {op_put("k", "1")};
    struct kv_op put_k2[] = {op_put("k", "2")};
    struct kv_op del_k[] = {op_del("k", NULL)};
    struct kv_txn_req then_put = txn_of(NULL, 0, put_k, 1, NULL, 0);
    struct kv_txn_req else_put = txn_of(NULL, 0, NULL, 0, put_k2, 1);
    struct kv_txn_req both_put = txn_of(NULL, 0, put_k, 1, put_k2, 1);
    struct kv_txn_req then_del = txn_of(NULL, 0, del_k, 1, NULL, 0);
    struct {
        struct kv_op ops[3];
        size_t n;
        int want;
    } cases[] = {
        {{op_put("k", "1"), op_put("k", "2")}, 2, ERR_DUPLICATE_KEY},
        {{op_del("a", "z"), op_put("k", "1")}, 2, ERR_DUPLICATE_KEY},
        {{op_put("k", "1"), op_del("k", NULL)}, 2, ERR_DUPLICATE_KEY},
        {{op_put("k", "1"), op_txn(&else_put)}, 2, ERR_DUPLICATE_KEY},
        {{op_txn(&both_put)}, 1, 0},
        {{op_txn(&then_del), op_put("k", "1")}, 2, ERR_DUPLICATE_KEY},
        {{op_put("k", "1"), op_txn(&then_del)}, 2, ERR_DUPLICATE_KEY},
        {{op_txn(&then_put), op_txn(&then_del)}, 2, 0}, /* etcd's order */
        {{op_txn(&then_del), op_txn(&then_put)}, 2, ERR_DUPLICATE_KEY},
        {{op_txn(&then_put), op_txn(&then_put)}, 2, ERR_DUPLICATE_KEY},
        {{op_del("k", NULL), op_del("a", "z")}, 2, 0},
        {{op_del_from("a"), op_put("k", "1")}, 2, 0}, /* "\0" quirk */
        {{op_put("k", "1"), op_del("k", "k")}, 2, 0}, /* empty range */
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct kv_txn_req t =
            txn_of(NULL, 0, cases[i].ops, cases[i].n, NULL, 0);
        int rc = t_txn(f->kv, &t, NULL, NULL);
        if (rc != cases[i].want) {
            fail_msg("case %zu: got %d want %d", i, rc, cases[i].want);
        }
        if (rc != 0) {
            assert_int_equal(kv_rev(f->kv), rev0);
        } else {
            rev0 = kv_rev(f->kv);
            t_put(f->kv, "k", "0");
            rev0 = kv_rev(f->kv);
        }
    }
    /* Success and failure are checked separately. */
    struct kv_txn_req t = txn_of(NULL, 0, put_k, 1, put_k2, 1);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), 0);
    /* The failure branch alone can hold a duplicate. */
    struct kv_op two[] = {op_put("k", "1"), op_put("k", "2")};
    t = txn_of(NULL, 0, NULL, 0, two, 2);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_DUPLICATE_KEY);
}

static void txn_op_counts_are_limited_per_list_and_nesting(void **state)
{
    struct fx *f = *state;
    static struct kv_op gets[200];
    static struct kv_op puts[200];
    static char names[200][8];
    for (int i = 0; i < 200; i++) {
        snprintf(names[i], sizeof(names[i]), "n%d", i);
        gets[i] = op_get(names[i]);
        puts[i] = op_put(names[i], "v");
    }
    struct kv_txn_req t = txn_of(NULL, 0, gets, 128, gets, 128);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), 0);
    t = txn_of(NULL, 0, gets, 129, NULL, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_TOO_MANY_OPS);
    static struct kv_compare cs[129];
    for (int i = 0; i < 129; i++) {
        cs[i] = cmp_num("a", KV_CMP_VERSION, KV_CMP_EQUAL, 0);
    }
    t = txn_of(cs, 129, NULL, 0, NULL, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_TOO_MANY_OPS);
    /* A nested list gets what the parent's longest list leaves (as etcd:
     * 99 gets + 1 txn leaves 28). */
    static struct kv_op outer[100];
    struct kv_txn_req inner = txn_of(NULL, 0, puts, 29, NULL, 0);
    memcpy(outer, gets, 99 * sizeof(outer[0]));
    outer[99] = op_txn(&inner);
    t = txn_of(NULL, 0, outer, 100, NULL, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_TOO_MANY_OPS);
    inner.success_count = 28;
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), 0);
    assert_int_equal(kv_rev(f->kv), 2);
    /* Options change the bound. */
    fx_close(f);
    f->opts.max_txn_ops = 4;
    assert_int_equal(fx_open(f), 0);
    t = txn_of(NULL, 0, puts + 100, 5, NULL, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_TOO_MANY_OPS);
    t.success_count = 4;
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), 0);
}

static void txn_failing_op_undoes_the_whole_txn(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_txn_resp resp;
    struct kv_put_resp presp;
    char evs[OUT_MAX] = "";
    t_put(f->kv, "a", "0");
    struct kv_op s[] = {op_put("a", "1"), op_del("x", "zz"), op_put("b", "1")};
    s[2].u.put.lease = 404; /* no such lease */
    struct kv_txn_req t = txn_of(NULL, 0, s, 3, NULL, 0);
    struct kv_put_req p = {.key = U8("c"), .key_len = 1};
    assert_int_equal(kv_write_begin(f->kv, collect_ev, evs, &wr), 0);
    assert_int_equal(kv_put(wr, &p, &res, &presp, NULL), 0);
    assert_int_equal(kv_txn(wr, &t, &res, &resp, NULL), ERR_LEASE_NOT_FOUND);
    assert_int_equal(kv_write_rev(wr), 3);
    assert_int_equal(kv_put(wr, &p, &res, &presp, NULL), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
    assert_string_equal(evs, "PUT c@3,PUT c@4");
    char v[16];
    assert_int_equal(t_get(f->kv, "a", 0, v, sizeof(v), NULL), 0);
    assert_string_equal(v, "0");
    assert_int_equal(t_get(f->kv, "b", 0, NULL, 0, NULL), ERR_NOT_FOUND);
    /* A failure discovered while running (not by the checks) is undone
     * too: the "\0" delete is not a duplicate, and then ignore_value finds
     * its key gone. */
    struct kv_op s2[] = {op_put("q", "1"), op_del_from("a"), op_put("a", "")};
    s2[2].u.put.ignore_value = true;
    t = txn_of(NULL, 0, s2, 3, NULL, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_KEY_NOT_FOUND);
    assert_int_equal(kv_rev(f->kv), 4);
    assert_int_equal(t_get(f->kv, "q", 0, NULL, 0, NULL), ERR_NOT_FOUND);
    assert_int_equal(t_get(f->kv, "a", 0, NULL, 0, NULL), 0);
}

/* A txn that fails after its first write, in the middle of a batch. Without
 * writemap it runs in a nested LMDB txn; with it, the batch so far is
 * committed first (a savepoint, applied: the last kv_write_mark) and the
 * txn's own LMDB txn is aborted. Either way the batch goes on whole, and a
 * batch aborted after a savepoint keeps exactly the entries before it. */
static void txn_failing_mid_batch_keeps_the_batch_whole(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_txn_resp resp;
    struct kv_put_resp presp;
    char evs[OUT_MAX] = "";
    bool wm = kv_writemap(f->kv);
    uint64_t idx = 0, term = 0;
    t_put(f->kv, "a", "0"); /* rev 2 */
    struct kv_op s[] = {op_put("q", "1"), op_del_from("a"), op_put("a", "")};
    s[2].u.put.ignore_value = true; /* fails: the delete took "a" */
    struct kv_txn_req t = txn_of(NULL, 0, s, 3, NULL, 0);
    struct kv_put_req c = {.key = U8("c"), .key_len = 1};
    struct kv_put_req d = {.key = U8("d"), .key_len = 1};
    assert_int_equal(kv_write_begin(f->kv, collect_ev, evs, &wr), 0);
    assert_int_equal(kv_put(wr, &c, &res, &presp, NULL), 0); /* rev 3 */
    kv_write_mark(wr, 5, 2);
    assert_int_equal(kv_txn(wr, &t, &res, &resp, NULL), ERR_KEY_NOT_FOUND);
    assert_int_equal(kv_write_saved(wr), wm);
    kv_write_mark(wr, 6, 2);
    assert_int_equal(kv_put(wr, &d, &res, &presp, NULL), 0); /* rev 4 */
    kv_write_mark(wr, 7, 2);
    assert_int_equal(kv_write_commit(wr, 7, 2), 0);
    assert_string_equal(evs, "PUT c@3,PUT d@4");
    fx_reopen(f);
    assert_int_equal(kv_rev(f->kv), 4);
    kv_applied(f->kv, &idx, &term);
    assert_int_equal(idx, 7);
    assert_int_equal(t_get(f->kv, "q", 0, NULL, 0, NULL), ERR_NOT_FOUND);
    assert_int_equal(t_get(f->kv, "a", 0, NULL, 0, NULL), 0);
    assert_int_equal(t_get(f->kv, "d", 0, NULL, 0, NULL), 0);
    /* an abort after the savepoint: the entry before it stays, with its
     * index (without writemap the whole batch goes) */
    struct kv_put_req e = {.key = U8("e"), .key_len = 1};
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_put(wr, &e, &res, &presp, NULL), 0); /* rev 5 */
    kv_write_mark(wr, 8, 3);
    assert_int_equal(kv_txn(wr, &t, &res, &resp, NULL), ERR_KEY_NOT_FOUND);
    kv_write_abort(wr);
    kv_result_free(&res);
    fx_reopen(f);
    kv_applied(f->kv, &idx, &term);
    assert_int_equal(kv_rev(f->kv), wm ? 5 : 4);
    assert_int_equal(idx, wm ? 8 : 7);
    assert_int_equal(term, wm ? 3 : 2);
    assert_int_equal(t_get(f->kv, "e", 0, NULL, 0, NULL),
                     wm ? 0 : ERR_NOT_FOUND);
    assert_int_equal(t_get(f->kv, "q", 0, NULL, 0, NULL), ERR_NOT_FOUND);
}

static void txn_malformed_input_is_refused_untouched(void **state)
{
    struct fx *f = *state;
    t_put(f->kv, "a", "0");
    struct kv_compare c = cmp_num("a", (enum kv_cmp_target)9, KV_CMP_EQUAL, 0);
    struct kv_op s[] = {op_put("b", "1")};
    struct kv_txn_req t = txn_of(&c, 1, s, 1, NULL, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_BAD_COMPARE);
    c = cmp_num("a", KV_CMP_MOD, (enum kv_cmp_result)5, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_BAD_COMPARE);
    c = cmp_num("", KV_CMP_MOD, KV_CMP_EQUAL, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_KEY_NOT_PROVIDED);
    struct kv_op bad[] = {op_put("b", "1"), op_put("c", "1")};
    bad[1].type = (enum kv_op_type)17;
    t = txn_of(NULL, 0, bad, 2, NULL, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_BAD_REQUEST);
    struct kv_op empty[] = {op_put("b", "1"), op_get("")};
    t = txn_of(NULL, 0, NULL, 0, empty, 2); /* in the branch not taken */
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_KEY_NOT_PROVIDED);
    struct kv_op iv[] = {op_put("b", "1")};
    iv[0].u.put.ignore_value = true;
    t = txn_of(NULL, 0, iv, 1, NULL, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_VALUE_PROVIDED);
    assert_int_equal(kv_rev(f->kv), 2);
    assert_int_equal(t_get(f->kv, "b", 0, NULL, 0, NULL), ERR_NOT_FOUND);
}

static void txn_range_revisions_are_checked_before_running(void **state)
{
    struct fx *f = *state;
    t_put(f->kv, "a", "0");
    t_put(f->kv, "a", "1");
    struct kv_op s[] = {op_put("b", "1"), op_get("a")};
    s[1].u.range.revision = 4; /* the txn's own revision: still future */
    struct kv_txn_req t = txn_of(NULL, 0, s, 2, NULL, 0);
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_FUTURE_REV);
    assert_int_equal(t_compact(f->kv, 3), 0);
    s[1].u.range.revision = 2;
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), ERR_COMPACTED);
    s[1].u.range.revision = 3;
    assert_int_equal(t_txn(f->kv, &t, NULL, NULL), 0);
    assert_int_equal(kv_rev(f->kv), 4);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

const struct CMUnitTest kv_txn_tests[] = {
    T(txn_compares_choose_the_branch),
    T(txn_compare_on_a_missing_key_uses_a_zero_record),
    T(txn_compare_with_range_end_applies_to_every_key),
    T(txn_writes_share_one_revision_with_sub_revisions),
    T(txn_reads_see_earlier_writes_of_the_same_txn),
    T(txn_read_only_adds_no_revision),
    T(txn_read_runs_on_a_read_handle_and_refuses_writes),
    T(txn_nested_compares_see_the_state_before_the_txn),
    T(txn_duplicate_key_rules_match_etcd),
    T(txn_op_counts_are_limited_per_list_and_nesting),
    T(txn_failing_op_undoes_the_whole_txn),
    T(txn_failing_mid_batch_keeps_the_batch_whole),
    T(txn_malformed_input_is_refused_untouched),
    T(txn_range_revisions_are_checked_before_running),
};
const size_t kv_txn_tests_count =
    sizeof(kv_txn_tests) / sizeof(kv_txn_tests[0]);

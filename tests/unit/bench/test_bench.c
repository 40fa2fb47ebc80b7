/*
 * test_bench.c - unit tests for cairn-bench's pure parts: the latency
 * histogram on known inputs, the allocation-free response scanners against
 * messages packed by protobuf-c, key numbering, value stamps and the
 * configuration checks.
 *
 * Method: the histogram is fed distributions whose exact nearest-rank
 * percentiles are known in closed form (uniform 1..N, two clusters, a
 * single value) and every reported figure must lie within the documented
 * relative error (2^-(SUB_BITS+1)); the bucket layout is walked end to end
 * (contiguous, each bucket maps back to itself, widths within the bound).
 * The scanners read WatchResponse/LeaseKeepAliveResponse/LeaseGrantResponse
 * bytes produced by the generated protobuf-c code, so a field-number slip
 * fails here, and truncated input must be refused, never read past.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "base/prng.h"
#include "bench/cairn_bench.h"
#include "proto/kv.pb-c.h"
#include "proto/rpc.pb-c.h"

#define REL_ERR (1.0 / (double)(2u * BENCH_HIST_SUB))

static struct bench_hist *hist_new(void)
{
    struct bench_hist *h = malloc(sizeof(*h));
    assert_non_null(h);
    bench_hist_reset(h);
    return h;
}

/* |got - want| <= want * REL_ERR (and exact below the linear range). */
static void assert_close(uint64_t got, uint64_t want)
{
    double diff = got > want ? (double)(got - want) : (double)(want - got);
    if (diff > (double)want * REL_ERR) {
        fail_msg("got %llu, want %llu within %.4f%%", (unsigned long long)got,
                 (unsigned long long)want, REL_ERR * 100);
    }
}

static void hist_empty_reports_zero(void **state)
{
    (void)state;
    struct bench_hist *h = hist_new();
    assert_int_equal(bench_hist_percentile(h, 50), 0);
    assert_int_equal(bench_hist_percentile(h, 100), 0);
    assert_true(bench_hist_mean(h) == 0.0);
    assert_int_equal(h->count, 0);
    free(h);
}

static void hist_small_values_are_exact(void **state)
{
    (void)state;
    struct bench_hist *h = hist_new();
    for (uint64_t v = 0; v < BENCH_HIST_SUB; v++) {
        bench_hist_record(h, v);
    }
    /* 128 values 0..127: rank ceil(p% * 128), value rank-1. */
    assert_int_equal(bench_hist_percentile(h, 50), 63);
    assert_int_equal(bench_hist_percentile(h, 90), 115);
    assert_int_equal(bench_hist_percentile(h, 99), 126);
    assert_int_equal(bench_hist_percentile(h, 0), 0);
    assert_int_equal(bench_hist_percentile(h, 100), 127);
    assert_int_equal(h->min, 0);
    assert_int_equal(h->max, 127);
    assert_true(bench_hist_mean(h) == 63.5);
    free(h);
}

static void hist_uniform_percentiles_within_bound(void **state)
{
    (void)state;
    struct bench_hist *h = hist_new();
    const uint64_t n = 1000000;
    for (uint64_t v = 1; v <= n; v++) {
        bench_hist_record(h, v);
    }
    const double pcts[] = {1, 10, 25, 50, 75, 90, 99, 99.9, 99.99};
    for (size_t i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        /* Values 1..n: the nearest-rank p-th percentile is p% of n. */
        uint64_t want = (uint64_t)(pcts[i] / 100.0 * (double)n + 0.5);
        assert_close(bench_hist_percentile(h, pcts[i]), want);
    }
    assert_int_equal(bench_hist_percentile(h, 100), n);
    assert_int_equal(h->count, n);
    assert_true(bench_hist_mean(h) == (double)(n + 1) / 2.0);
    free(h);
}

static void hist_two_clusters_split_at_the_right_rank(void **state)
{
    (void)state;
    struct bench_hist *h = hist_new();
    for (int i = 0; i < 990; i++) {
        bench_hist_record(h, 1000000); /* 1 ms */
    }
    for (int i = 0; i < 10; i++) {
        bench_hist_record(h, 100000000); /* 100 ms */
    }
    /* Rank 990 is the last fast one, rank 991 the first slow one. */
    assert_close(bench_hist_percentile(h, 99), 1000000);
    assert_close(bench_hist_percentile(h, 99.1), 100000000);
    assert_close(bench_hist_percentile(h, 99.9), 100000000);
    assert_close(bench_hist_percentile(h, 50), 1000000);
    assert_int_equal(h->max, 100000000);
    free(h);
}

static void hist_single_values_round_trip(void **state)
{
    (void)state;
    struct prng r;
    prng_seed(&r, 42);
    struct bench_hist *h = hist_new();
    for (int i = 0; i < 2000; i++) {
        /* Log-uniform over 1 ns .. ~1 h. */
        unsigned bits = (unsigned)prng_range(&r, 0, 41);
        uint64_t v =
            ((uint64_t)1 << bits) + prng_below(&r, (uint64_t)1 << bits);
        bench_hist_reset(h);
        bench_hist_record(h, v);
        bench_hist_record(h, v);
        bench_hist_record(h, v + 1);
        /* Midpoint clamped to [min, max]: within the bound of v. */
        assert_close(bench_hist_percentile(h, 50), v);
        assert_int_equal(bench_hist_percentile(h, 100), v + 1);
        assert_int_equal(bench_hist_percentile(h, 0), v);
    }
    free(h);
}

static void hist_huge_values_clamp_but_max_is_exact(void **state)
{
    (void)state;
    struct bench_hist *h = hist_new();
    uint64_t huge = (uint64_t)1 << 60;
    bench_hist_record(h, 5);
    bench_hist_record(h, huge);
    assert_int_equal(bench_hist_index(huge), BENCH_HIST_BUCKETS - 1);
    assert_int_equal(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
    assert_int_equal(bench_hist_percentile(h, 100), huge);
    assert_int_equal(h->max, huge);
    assert_int_equal(bench_hist_percentile(h, 50), 5);
    bench_hist_record(h, UINT64_MAX);
    assert_true(h->sum == UINT64_MAX); /* saturates, no wrap */
    free(h);
}

static void hist_bucket_layout_is_contiguous(void **state)
{
    (void)state;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        uint64_t lo = bench_hist_bucket_low(i);
        uint64_t w = bench_hist_bucket_width(i);
        assert_true(w >= 1);
        assert_int_equal(bench_hist_index(lo), i);
        assert_int_equal(bench_hist_index(lo + w - 1), i);
        if (i + 1 < BENCH_HIST_BUCKETS) {
            assert_int_equal(bench_hist_bucket_low(i + 1), lo + w);
        }
        if (i >= BENCH_HIST_SUB) {
            /* width/low <= 2^-SUB_BITS: the relative error bound. */
            assert_true(w * BENCH_HIST_SUB <= lo);
        } else {
            assert_int_equal(w, 1);
        }
    }
}

static void hist_merge_equals_recording_together(void **state)
{
    (void)state;
    struct bench_hist *a = hist_new(), *b = hist_new(), *all = hist_new();
    struct prng r;
    prng_seed(&r, 7);
    for (int i = 0; i < 10000; i++) {
        uint64_t v = prng_below(&r, 50000000);
        bench_hist_record(i % 3 ? a : b, v);
        bench_hist_record(all, v);
    }
    bench_hist_merge(a, b);
    assert_int_equal(a->count, all->count);
    assert_int_equal(a->sum, all->sum);
    assert_int_equal(a->min, all->min);
    assert_int_equal(a->max, all->max);
    assert_memory_equal(a->bucket, all->bucket, sizeof(a->bucket));
    assert_int_equal(bench_hist_percentile(a, 99),
                     bench_hist_percentile(all, 99));
    free(a);
    free(b);
    free(all);
}

/* ------------------------------------------------------------ scanners */

struct seen {
    int events;
    uint64_t stamps[8];
    int stamped;
    size_t last_len;
};

static void on_value(void *ctx, const uint8_t *v, size_t len)
{
    struct seen *s = ctx;
    uint64_t t;
    s->events++;
    s->last_len = len;
    if (bench_stamp_get(v, len, &t) && s->stamped < 8) {
        s->stamps[s->stamped++] = t;
    }
}

/* A WatchResponse with n events whose values carry stamps 1000+i. */
static size_t pack_watch(uint8_t *out, size_t cap, int n, int created)
{
    Etcdserverpb__WatchResponse w = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    Mvccpb__Event ev[4];
    Mvccpb__Event *evp[4];
    Mvccpb__KeyValue kv[4];
    uint8_t val[4][40];
    assert_true(n <= 4);
    hdr.revision = 77;
    hdr.cluster_id = 12345;
    w.header = &hdr;
    w.watch_id = 300;
    w.created = created;
    for (int i = 0; i < n; i++) {
        Mvccpb__Event e = MVCCPB__EVENT__INIT;
        Mvccpb__KeyValue k = MVCCPB__KEY_VALUE__INIT;
        memset(val[i], 'x', sizeof(val[i]));
        bench_stamp_put(val[i], 1000 + (uint64_t)i);
        k.key.data = (uint8_t *)"k0001";
        k.key.len = 5;
        k.value.data = val[i];
        k.value.len = sizeof(val[i]);
        k.mod_revision = 70 + i;
        k.version = 3;
        kv[i] = k;
        e.kv = &kv[i];
        ev[i] = e;
        evp[i] = &ev[i];
    }
    w.n_events = (size_t)n;
    w.events = evp;
    size_t len = etcdserverpb__watch_response__get_packed_size(&w);
    assert_true(len <= cap);
    return etcdserverpb__watch_response__pack(&w, out);
}

static void scan_watch_response_events_and_stamps(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = pack_watch(buf, sizeof(buf), 3, 0);
    struct bench_watch_resp w;
    struct seen s = {0};
    assert_int_equal(bench_watch_resp_scan(buf, len, &w, on_value, &s), 0);
    assert_int_equal(w.events, 3);
    assert_int_equal(w.watch_id, 300);
    assert_false(w.created);
    assert_int_equal(s.events, 3);
    assert_int_equal(s.stamped, 3);
    assert_int_equal(s.stamps[0], 1000);
    assert_int_equal(s.stamps[2], 1002);
    assert_int_equal(s.last_len, 40);

    len = pack_watch(buf, sizeof(buf), 0, 1);
    memset(&s, 0, sizeof(s));
    assert_int_equal(bench_watch_resp_scan(buf, len, &w, on_value, &s), 0);
    assert_true(w.created);
    assert_int_equal(w.events, 0);
    assert_int_equal(s.events, 0);
}

static void scan_refuses_truncated_input(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t len = pack_watch(buf, sizeof(buf), 2, 0);
    struct bench_watch_resp w;
    int refused = 0;
    /* Every strict prefix either scans as fewer fields or is refused;
     * none may claim more events than the whole message has. */
    for (size_t cut = 1; cut < len; cut++) {
        struct seen s = {0};
        int rc = bench_watch_resp_scan(buf, cut, &w, on_value, &s);
        if (rc != 0) {
            assert_int_equal(rc, ERR_BAD_REQUEST);
            refused++;
        } else {
            assert_true(w.events < 2);
        }
    }
    assert_true(refused > 0);
    uint8_t bad[] = {0x5a, 0xff}; /* field 11, length 255, 0 bytes follow */
    assert_int_equal(bench_watch_resp_scan(bad, sizeof(bad), &w, NULL, NULL),
                     ERR_BAD_REQUEST);
}

static void scan_lease_responses(void **state)
{
    (void)state;
    uint8_t buf[256];
    Etcdserverpb__LeaseKeepAliveResponse ka =
        ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    hdr.revision = 9;
    ka.header = &hdr;
    ka.id = 0x1234567890;
    ka.ttl = 60;
    size_t len = etcdserverpb__lease_keep_alive_response__pack(&ka, buf);
    int64_t v = -1;
    assert_int_equal(bench_keepalive_resp_ttl(buf, len, &v), 0);
    assert_int_equal(v, 60);
    ka.ttl = 0; /* a lease that is gone */
    len = etcdserverpb__lease_keep_alive_response__pack(&ka, buf);
    assert_int_equal(bench_keepalive_resp_ttl(buf, len, &v), 0);
    assert_int_equal(v, 0);

    Etcdserverpb__LeaseGrantResponse gr =
        ETCDSERVERPB__LEASE_GRANT_RESPONSE__INIT;
    gr.header = &hdr;
    gr.id = 0x7a11e5;
    gr.ttl = 30;
    len = etcdserverpb__lease_grant_response__pack(&gr, buf);
    assert_int_equal(bench_grant_resp_id(buf, len, &v), 0);
    assert_int_equal(v, 0x7a11e5);
}

/* ---------------------------------------------------------- the rest */

static void key_format_pads_and_bounds(void **state)
{
    (void)state;
    char k[BENCH_KEY_MAX];
    size_t n = bench_key_format(k, sizeof(k), "k", 8, 4, 42);
    assert_int_equal(n, 8);
    assert_memory_equal(k, "k0000042", 8);
    n = bench_key_format(k, sizeof(k), "key/", 2, 6, 7);
    assert_int_equal(n, 10); /* wider than key_bytes to fit the digits */
    assert_memory_equal(k, "key/000007", 10);
    assert_int_equal(bench_key_format(k, 5, "k", 8, 4, 1), 0);
    assert_int_equal(bench_digits_for(1), 1);
    assert_int_equal(bench_digits_for(10), 1);
    assert_int_equal(bench_digits_for(11), 2);
    assert_int_equal(bench_digits_for(1000000), 6);
    assert_int_equal(bench_digits_for(1000001), 7);
}

static void stamps_round_trip_and_reject_noise(void **state)
{
    (void)state;
    uint8_t v[32];
    uint64_t t = 0;
    memset(v, 'a', sizeof(v));
    assert_false(bench_stamp_get(v, sizeof(v), &t));
    bench_stamp_put(v, 123456789012345ull);
    assert_true(bench_stamp_get(v, sizeof(v), &t));
    assert_int_equal(t, 123456789012345ull);
    assert_false(bench_stamp_get(v, BENCH_STAMP_BYTES - 1, &t));
    v[9] ^= 1;
    assert_false(bench_stamp_get(v, sizeof(v), &t));
}

static void cfg_checks_refuse_bad_combinations(void **state)
{
    (void)state;
    struct bench_cfg c;
    char why[128];
    bench_cfg_defaults(&c, BENCH_WL_PUT);
    assert_int_equal(bench_cfg_check(&c, why, sizeof(why)), ERR_INVALID);
    assert_string_equal(why, "no endpoint");
    uv_ip4_addr("127.0.0.1", 2379, &c.addrs[0]);
    c.addrs_count = 1;
    assert_int_equal(bench_cfg_check(&c, why, sizeof(why)), 0);
    c.total = 0;
    assert_int_equal(bench_cfg_check(&c, why, sizeof(why)), ERR_INVALID);
    c.duration_s = 1;
    assert_int_equal(bench_cfg_check(&c, why, sizeof(why)), 0);
    c.txn_ops = BENCH_TXN_OPS_MAX + 1;
    assert_int_equal(bench_cfg_check(&c, why, sizeof(why)), ERR_INVALID);

    bench_cfg_defaults(&c, BENCH_WL_WATCH);
    c.addrs_count = 1;
    assert_true(c.watch_prefix);
    c.val_bytes = BENCH_STAMP_BYTES - 1; /* no room for the stamp */
    assert_int_equal(bench_cfg_check(&c, why, sizeof(why)), ERR_INVALID);

    enum bench_workload wl;
    assert_int_equal(bench_workload_parse("lease-keepalive", &wl), 0);
    assert_int_equal(wl, BENCH_WL_LEASE_KEEPALIVE);
    assert_string_equal(bench_workload_name(wl), "lease-keepalive");
    assert_int_equal(bench_workload_parse("nope", &wl), ERR_INVALID);
    assert_string_equal(bench_status_name(14), "UNAVAILABLE");
    assert_string_equal(bench_status_name(BENCH_ST_TRANSPORT), "TRANSPORT");
    assert_string_equal(bench_status_name(99), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hist_empty_reports_zero),
        cmocka_unit_test(hist_small_values_are_exact),
        cmocka_unit_test(hist_uniform_percentiles_within_bound),
        cmocka_unit_test(hist_two_clusters_split_at_the_right_rank),
        cmocka_unit_test(hist_single_values_round_trip),
        cmocka_unit_test(hist_huge_values_clamp_but_max_is_exact),
        cmocka_unit_test(hist_bucket_layout_is_contiguous),
        cmocka_unit_test(hist_merge_equals_recording_together),
        cmocka_unit_test(scan_watch_response_events_and_stamps),
        cmocka_unit_test(scan_refuses_truncated_input),
        cmocka_unit_test(scan_lease_responses),
        cmocka_unit_test(key_format_pads_and_bounds),
        cmocka_unit_test(stamps_round_trip_and_reject_noise),
        cmocka_unit_test(cfg_checks_refuse_bad_combinations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

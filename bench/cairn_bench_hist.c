/*
 * cairn_bench_hist.c - the latency histogram of cairn-bench.
 *
 * HdrHistogram's layout with fixed parameters: exact buckets below
 * 2^SUB_BITS, then 2^SUB_BITS linear buckets per power of two. Recording is
 * a count-leading-zeros and an add, so it costs nothing next to a request;
 * the percentile walk is linear in the (few thousand) buckets and runs once
 * per report. See cairn_bench.h for the error bound.
 */
#include <string.h>

#include "base/assert.h"
#include "bench/cairn_bench.h"

void bench_hist_reset(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

size_t bench_hist_index(uint64_t v)
{
    if (v < BENCH_HIST_SUB) {
        return (size_t)v;
    }
    unsigned k = 63u - (unsigned)__builtin_clzll(v);
    if (k > BENCH_HIST_TOP_BIT) {
        return BENCH_HIST_BUCKETS - 1;
    }
    unsigned shift = k - BENCH_HIST_SUB_BITS;
    size_t sub = (size_t)(v >> shift) - BENCH_HIST_SUB;
    ASSERT(sub < BENCH_HIST_SUB);
    size_t idx = (size_t)(shift + 1) * BENCH_HIST_SUB + sub;
    ASSERT(idx < BENCH_HIST_BUCKETS);
    return idx;
}

uint64_t bench_hist_bucket_low(size_t idx)
{
    ASSERT(idx < BENCH_HIST_BUCKETS);
    if (idx < BENCH_HIST_SUB) {
        return idx;
    }
    size_t shift = idx / BENCH_HIST_SUB - 1;
    uint64_t sub = idx % BENCH_HIST_SUB;
    return (BENCH_HIST_SUB + sub) << shift;
}

uint64_t bench_hist_bucket_width(size_t idx)
{
    ASSERT(idx < BENCH_HIST_BUCKETS);
    if (idx < BENCH_HIST_SUB) {
        return 1;
    }
    return (uint64_t)1 << (idx / BENCH_HIST_SUB - 1);
}

void bench_hist_record(struct bench_hist *h, uint64_t v)
{
    h->bucket[bench_hist_index(v)]++;
    h->count++;
    h->sum = (h->sum + v < h->sum) ? UINT64_MAX : h->sum + v;
    if (v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    if (src->count == 0) {
        return;
    }
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        dst->bucket[i] += src->bucket[i];
    }
    dst->count += src->count;
    dst->sum =
        (dst->sum + src->sum < dst->sum) ? UINT64_MAX : dst->sum + src->sum;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

uint64_t bench_hist_percentile(const struct bench_hist *h, double pct)
{
    if (h->count == 0) {
        return 0;
    }
    if (pct <= 0) {
        return h->min;
    }
    if (pct >= 100) {
        return h->max;
    }
    /* Nearest rank: the smallest rank r with r >= pct% of count. The
     * epsilon keeps 99.9% of 1000 at rank 999 despite binary fractions. */
    double exact = pct / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)exact;
    if ((double)rank < exact - 1e-9) {
        rank++;
    }
    if (rank == 0) {
        rank = 1;
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            uint64_t mid =
                bench_hist_bucket_low(i) + bench_hist_bucket_width(i) / 2;
            if (mid < h->min) {
                mid = h->min;
            }
            if (mid > h->max) {
                mid = h->max;
            }
            return mid;
        }
    }
    ASSERT(!"histogram counts do not add up");
    return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
    if (h->count == 0) {
        return 0;
    }
    return (double)h->sum / (double)h->count;
}

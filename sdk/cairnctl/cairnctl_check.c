/*
 * cairnctl_check.c - `check perf`, as etcdctl 3.4's (check.go): puts of a
 * 256-byte key and a 1 KiB value under --prefix, paced to the load's
 * rate for its duration, then the verdict etcdctl prints:
 *
 *   load  rate (puts/s)  clients  duration
 *   s           150         50       60 s
 *   m          1000        200       60 s
 *   l          8000        500       60 s
 *   xl        15000       1000       60 s
 *
 *   PASS: Throughput is N writes/s      (FAIL: Throughput too low: ..)
 *   PASS: Slowest request took Xs       (Slowest request took too long: ..)
 *   PASS: Stddev is Xs                  (Stddev too high: ..)
 *   PASS | FAIL                         (FAIL exits 1)
 *
 * Throughput passes above 90% of the rate, the slowest put at most 0.5 s,
 * the standard deviation of the latencies at most 0.1 s; any error fails
 * ("FAIL: too many errors", then "FAIL: ERROR(<text>) -> <count>" per
 * error). A prefix that already has keys is refused (exit 3); the keys are
 * deleted at the end (--auto-compact compacts at that revision,
 * --auto-defrag defragments every endpoint).
 *
 * Differences, said in the help: --duration (seconds; etcdctl's is fixed
 * at 60) keeps a test short; etcdctl's progress bar is not drawn; the
 * clients are at most CHECK_THREADS_MAX connections (each a thread doing
 * one blocking put at a time), which the paced rate of even xl needs only
 * when a put takes longer than CHECK_THREADS_MAX / 15000 s = 4 ms.
 *
 * `check datascale`, etcdctl 3.4's too: a fixed count of puts, as fast as
 * the clients go, of a 512-byte key and a 512-byte value (1 KiB a pair)
 * under --prefix, and the growth of the first endpoint's
 * process_resident_memory_bytes (its /metrics) across them:
 *
 *   load  pairs      clients
 *   s        10000       50
 *   m       100000      200
 *   l      1000000      500
 *   xl     3000000     1000
 *
 *   Start data scale check for work load [N key-value pairs, 1024 bytes
 *   per key-value, C concurrent clients].
 *   <progress: "\r done / N  pp.pp%" redrawn, "\r N / N 100.00% 1s\n">
 *   PASS: Approximate system memory used : X.XX MB.   (after - before)
 *
 * A /metrics that cannot be read prints why ("fetch error: ..", "could
 * not find: process_resident_memory_bytes", "parse error: ..") and "FAIL:
 * Could not read process_resident_memory_bytes before (after) the put
 * operations." (exit 1); errors of puts print etcdctl's FAIL lines (exit
 * 1). Both share the clients, the key scheme, the error tally, the
 * prefix check and the cleanup below.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/assert.h"
#include "sdk/cairnctl/cairnctl.h"

#define CHECK_THREADS_MAX  64
#define CHECK_ERRORS_MAX   8   /* distinct error texts kept */
#define CHECK_KEY_BYTES    256 /* perf's; datascale's are 512 and 512 */
#define CHECK_VALUE_BYTES  1024
#define CHECK_DS_HALF      512
#define CHECK_PREFIX_MAX   1024
#define CHECK_METRIC       "process_resident_memory_bytes"
#define CHECK_DURATION_MAX 3600
#define CHECK_CLEANUP_MS   30000 /* etcdctl's for delete, compact, defrag */

/* etcdctl's workloads by name: check perf's puts a second and clients,
 * check datascale's pairs and clients. */
struct check_load {
    const char *name;
    const char *alias;
    int64_t limit;   /* perf: puts a second */
    int64_t clients; /* perf */
    uint64_t pairs;  /* datascale */
    int64_t ds_clients;
};

static const struct check_load loads[] = {
    {"s", "small", 150, 50, 10000, 50},
    {"m", "medium", 1000, 200, 100000, 200},
    {"l", "large", 8000, 500, 1000000, 500},
    {"xl", "xLarge", 15000, 1000, 3000000, 1000},
};

struct check_run {
    struct ctl *x;
    const char *prefix;
    size_t key_bytes; /* after the prefix */
    size_t value_bytes;
    double t0, t_end, period;      /* period 0: unpaced, slots puts */
    double duration_s;             /* paced: t_end is t0 + duration_s */
    atomic_uint_fast64_t next;     /* index of the next put to send */
    atomic_uint_fast64_t finished; /* puts answered (or failed) */
    atomic_uint_fast32_t running;  /* client threads not yet done */
    double *lats;                  /* seconds, by put index */
    bool *ok;
    uint64_t slots;
    pthread_mutex_t mu; /* errors */
    char err_text[CHECK_ERRORS_MAX][256];
    uint64_t err_count[CHECK_ERRORS_MAX];
    uint64_t err_other;
};

static volatile sig_atomic_t check_interrupted;

static void on_int(int sig)
{
    (void)sig;
    check_interrupted = 1;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void sleep_until(double t)
{
    double d = t - now_s();
    if (d > 0) {
        struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static void record_error(struct check_run *r, struct cairn_client *c, int rc)
{
    char t[256];
    ctl_err_text(c, rc, t, sizeof(t));
    pthread_mutex_lock(&r->mu);
    size_t i = 0;
    while (i < CHECK_ERRORS_MAX && r->err_count[i] > 0 &&
           strcmp(r->err_text[i], t) != 0) {
        i++;
    }
    if (i == CHECK_ERRORS_MAX) {
        r->err_other++;
    } else {
        snprintf(r->err_text[i], sizeof(r->err_text[i]), "%s", t);
        r->err_count[i]++;
    }
    pthread_mutex_unlock(&r->mu);
}

/* Put number i: a random key of key_bytes after the prefix (etcdctl:
 * binary.PutVarint of a random int63 into that many zeros, so keys may
 * repeat and a put then updates) and a value of zeros; its latency and
 * success are kept. key holds the prefix. Returns the put's error. */
static int put_one(struct check_run *r, struct cairn_client *c, uint64_t i,
                   uint8_t *key, unsigned *seed)
{
    static const uint8_t value[CHECK_VALUE_BYTES];
    size_t plen = strlen(r->prefix);
    ASSERT(i < r->slots);
    ASSERT(r->value_bytes <= sizeof(value));
    memset(key + plen, 0, r->key_bytes);
    uint64_t v = ((uint64_t)rand_r(seed) << 32 | (uint64_t)rand_r(seed))
                 << 1; /* zigzag of a non-negative value */
    size_t k = plen;
    while (v >= 0x80) { /* bounded: at most 10 bytes of 7 bits */
        key[k++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    key[k] = (uint8_t)v;
    struct cairn_put_req req = {.key = key,
                                .key_len = plen + r->key_bytes,
                                .value = value,
                                .value_len = r->value_bytes};
    struct cairn_put_resp pr;
    double st = now_s();
    int rc = cairn_put(c, &req, ctl_deadline(r->x), &pr);
    r->lats[i] = now_s() - st;
    if (rc == 0) {
        r->ok[i] = true;
        cairn_put_resp_free(&pr);
    }
    return rc;
}

/* One client: takes the next put's index, waits for its slot in the
 * paced schedule (the rate limiter) unless unpaced, sends it. */
static void *worker(void *arg)
{
    struct check_run *r = arg;
    struct cairn_client *c = ctl_client_new(r->x);
    if (c == NULL) {
        atomic_fetch_sub(&r->running, 1);
        return NULL; /* takes no slot: the other clients send its puts */
    }
    uint8_t key[CHECK_PREFIX_MAX + CHECK_DS_HALF];
    size_t plen = strlen(r->prefix);
    ASSERT(plen <= CHECK_PREFIX_MAX && r->key_bytes <= CHECK_DS_HALF);
    memcpy(key, r->prefix, plen);
    unsigned seed = (unsigned)(uintptr_t)&key ^ (unsigned)time(NULL);
    for (;;) { /* bounded: indexes past slots or the duration end it */
        uint64_t i = atomic_fetch_add(&r->next, 1);
        double at = r->t0 + (double)i * r->period;
        if (i >= r->slots || check_interrupted ||
            (r->period > 0 && at >= r->t_end)) {
            break;
        }
        if (r->period > 0) {
            sleep_until(at);
        }
        int rc = put_one(r, c, i, key, &seed);
        if (rc != 0) {
            record_error(r, c, rc);
        }
        atomic_fetch_add(&r->finished, 1);
    }
    cairn_client_free(c);
    atomic_fetch_sub(&r->running, 1);
    return NULL;
}

/* etcdctl's compact(): a physical compaction, its two lines; an exit
 * code on failure ("Error: ..", 1), else -1. */
static int check_compact(struct ctl *x, struct cairn_client *c, int64_t rev)
{
    ASSERT(rev > 0);
    printf("Compacting with revision %" PRId64 "\n", rev);
    fflush(stdout);
    int rc = cairn_compact(c, rev, true, CHECK_CLEANUP_MS, NULL);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    printf("Compacted with revision %" PRId64 "\n", rev);
    return -1;
}

/* etcdctl's defrag() on each endpoint of the client, in order; an exit
 * code at the first failure, else -1. */
static int check_defrag(struct ctl *x)
{
    ASSERT(x->endpoints_count <= CAIRN_ENDPOINTS_MAX);
    for (size_t i = 0; i < x->endpoints_count; i++) {
        const char *ep = x->endpoints[i];
        const uint8_t *p = (const uint8_t *)ep;
        printf("Defragmenting ");
        out_goquote_to(stdout, p, strlen(ep));
        printf("\n");
        fflush(stdout);
        struct cairn_client *c = ctl_client_for(x, ep);
        if (c == NULL) {
            return CTL_EXIT_BAD_ARGS;
        }
        int rc = cairn_defragment(c, CHECK_CLEANUP_MS, NULL);
        if (rc != 0) {
            rc = ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
            cairn_client_free(c);
            return rc;
        }
        cairn_client_free(c);
        printf("Defragmented ");
        out_goquote_to(stdout, p, strlen(ep));
        printf("\n");
    }
    return -1;
}

/* Deletes the prefix's keys, then --auto-compact at that revision and
 * --auto-defrag. A failed delete is check perf's FAIL line (etcdctl's
 * attemptCleanup: the verdict follows) or, strict, datascale's "Error:"
 * exit. Returns an exit code to stop with, or -1. */
static int cleanup(struct ctl *x, struct cairn_client *c, const char *prefix,
                   bool strict)
{
    uint8_t end[CHECK_PREFIX_MAX + 1];
    size_t plen = strlen(prefix);
    ASSERT(plen <= CHECK_PREFIX_MAX);
    struct cairn_delete_req d = {
        .key = (const uint8_t *)prefix,
        .key_len = plen,
        .range_end = end,
        .range_end_len = cairn_prefix_end((const uint8_t *)prefix, plen, end)};
    struct cairn_delete_resp dr;
    int rc = cairn_delete(c, &d, CHECK_CLEANUP_MS, &dr);
    if (rc != 0 && strict) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    if (rc != 0) {
        char t[256];
        ctl_err_text(c, rc, t, sizeof(t));
        printf("FAIL: Cleanup failed during key deletion: ERROR(%s)\n", t);
        return -1; /* etcdctl defragments nonetheless */
    }
    int64_t rev = dr.header.revision;
    cairn_delete_resp_free(&dr);
    rc = ctl_flag_bool(x, "auto-compact") ? check_compact(x, c, rev) : -1;
    if (rc < 0 && ctl_flag_bool(x, "auto-defrag")) {
        rc = check_defrag(x);
    }
    return rc;
}

/* etcdctl's verdict from the latencies of the successful puts. */
static bool verdict(const struct check_run *r, uint64_t sent, double total_s,
                    int64_t limit)
{
    uint64_t n = 0;
    double sum = 0, slowest = 0, var = 0;
    for (uint64_t i = 0; i < sent; i++) {
        if (r->ok[i]) {
            n++;
            sum += r->lats[i];
            slowest = r->lats[i] > slowest ? r->lats[i] : slowest;
        }
    }
    double avg = n > 0 ? sum / (double)n : 0;
    for (uint64_t i = 0; i < sent; i++) {
        if (r->ok[i]) {
            var += (r->lats[i] - avg) * (r->lats[i] - avg);
        }
    }
    double stddev = n > 0 ? sqrt(var / (double)n) : 0;
    double rps = total_s > 0 ? (double)n / total_s : 0;
    bool ok = true;
    if (r->err_count[0] > 0) {
        printf("FAIL: too many errors\n");
        for (size_t i = 0; i < CHECK_ERRORS_MAX && r->err_count[i] > 0; i++) {
            printf("FAIL: ERROR(%s) -> %" PRIu64 "\n", r->err_text[i],
                   r->err_count[i]);
        }
        if (r->err_other > 0) {
            printf("FAIL: ERROR(other errors) -> %" PRIu64 "\n", r->err_other);
        }
        ok = false;
    }
    if (rps / (double)limit <= 0.9) {
        printf("FAIL: Throughput too low: %d writes/s\n", (int)rps + 1);
        ok = false;
    } else {
        printf("PASS: Throughput is %d writes/s\n", (int)rps + 1);
    }
    if (slowest > 0.5) {
        printf("Slowest request took too long: %fs\n", slowest);
        ok = false;
    } else {
        printf("PASS: Slowest request took %fs\n", slowest);
    }
    if (stddev > 0.1) {
        printf("Stddev too high: %fs\n", stddev);
        ok = false;
    } else {
        printf("PASS: Stddev is %fs\n", stddev);
    }
    printf(ok ? "PASS\n" : "FAIL\n");
    return ok;
}

static const struct check_load *find_load(const char *s)
{
    for (size_t i = 0; i < sizeof(loads) / sizeof(loads[0]); i++) {
        if (strcmp(s, loads[i].name) == 0 || strcmp(s, loads[i].alias) == 0) {
            return &loads[i];
        }
    }
    return NULL;
}

/* The prefix must be empty; an exit code, or -1 to go on. */
static int prefix_empty(struct ctl *x, struct cairn_client *c, const char *p)
{
    uint8_t end[4096];
    size_t plen = strlen(p);
    struct cairn_range_req q = {
        .key = (const uint8_t *)p,
        .key_len = plen,
        .range_end = end,
        .range_end_len = cairn_prefix_end((const uint8_t *)p, plen, end),
        .limit = 1};
    struct cairn_range_resp rr;
    int rc = cairn_range(c, &q, ctl_deadline(x), &rr);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    size_t n = rr.kvs_count;
    cairn_range_resp_free(&rr);
    if (n > 0) {
        return ctl_fail(CTL_EXIT_INVALID_INPUT,
                        "prefix \"%s\" has keys. Delete with etcdctl del "
                        "--prefix %s first",
                        p, p);
    }
    return -1;
}

/* A run of slots puts; NULL when out of memory (nothing to free). */
static struct check_run *run_new(struct ctl *x, const char *prefix,
                                 uint64_t slots)
{
    struct check_run *r = calloc(1, sizeof(*r));
    if (r != NULL) {
        r->lats = calloc(slots, sizeof(*r->lats));
        r->ok = calloc(slots, sizeof(*r->ok));
    }
    if (r == NULL || r->lats == NULL || r->ok == NULL) {
        if (r != NULL) {
            free(r->lats);
            free(r->ok);
        }
        free(r);
        return NULL;
    }
    r->x = x;
    r->prefix = prefix;
    r->slots = slots;
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void run_free(struct check_run *r)
{
    pthread_mutex_destroy(&r->mu);
    free(r->lats);
    free(r->ok);
    free(r);
}

/* etcdctl's pb.v1 bar on stdout (drawn there on a terminal or not): the
 * count and share redrawn five times a second while the clients run,
 * then the total and the time taken in Go's form. */
static void progress_draw(const struct check_run *r, bool last)
{
    uint64_t done = atomic_load(&r->finished);
    double pct = r->slots > 0 ? 100.0 * (double)done / (double)r->slots : 0;
    printf("\r %" PRIu64 " / %" PRIu64 " %7.2f%%", done, r->slots, pct);
    if (last) {
        char d[32];
        uint64_t secs = (uint64_t)llround(now_s() - r->t0);
        if (secs == 0) {
            snprintf(d, sizeof(d), "0s"); /* Go's; fmt_duration says 0ns */
        } else {
            fmt_duration(secs * 1000000000u, d, sizeof(d));
        }
        printf(" %s\n", d);
    }
    fflush(stdout);
}

/* Runs the clients (at most CHECK_THREADS_MAX threads) until the puts
 * are sent or the duration is over; returns how many started. */
static size_t run_clients(struct check_run *r, int64_t clients, bool bar)
{
    struct sigaction a = {.sa_handler = on_int};
    sigaction(SIGINT, &a, NULL);
    sigaction(SIGTERM, &a, NULL);
    size_t nt =
        clients < CHECK_THREADS_MAX ? (size_t)clients : CHECK_THREADS_MAX;
    pthread_t th[CHECK_THREADS_MAX];
    if (r->period > 0 || r->t0 == 0) {
        r->t0 = now_s(); /* unpaced: kept from a first put sent alone */
    }
    r->t_end = r->t0 + r->duration_s;
    atomic_store(&r->running, (uint_fast32_t)nt);
    size_t started = 0;
    while (started < nt && pthread_create(&th[started], NULL, worker, r) == 0) {
        started++;
    }
    atomic_fetch_sub(&r->running, (uint_fast32_t)(nt - started));
    if (bar) {
        progress_draw(r, false);
        /* bounded: every client ends after its last slot */
        while (atomic_load(&r->running) > 0) {
            struct timespec ts = {0, 200000000};
            nanosleep(&ts, NULL);
            progress_draw(r, false);
        }
        progress_draw(r, true);
    }
    for (size_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
    ASSERT(atomic_load(&r->running) == 0);
    return started;
}

/* --load and --prefix; NULL after printing the error (*code set). */
static const char *check_prefix(struct ctl *x, int *code)
{
    const char *prefix = ctl_flag(x, "prefix");
    if (strlen(prefix) > CHECK_PREFIX_MAX) {
        *code = ctl_fail(CTL_EXIT_BAD_ARGS, "--prefix is at most %d bytes",
                         CHECK_PREFIX_MAX);
        return NULL;
    }
    return prefix;
}

int cmd_check_perf(struct ctl *x)
{
    const struct check_load *load = find_load(ctl_flag(x, "load"));
    if (load == NULL) {
        return ctl_fail(CTL_EXIT_BAD_FEATURE, "unknown load option %s",
                        ctl_flag(x, "load"));
    }
    int64_t dur = 60;
    if (!ctl_flag_int(x, "duration", &dur)) {
        return CTL_EXIT_BAD_ARGS;
    }
    if (dur < 1 || dur > CHECK_DURATION_MAX) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "--duration is 1-%d seconds",
                        CHECK_DURATION_MAX);
    }
    int rc = 0;
    const char *prefix = check_prefix(x, &rc);
    if (prefix == NULL) {
        return rc;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    rc = prefix_empty(x, c, prefix);
    if (rc >= 0) {
        return rc;
    }
    struct check_run *r = run_new(x, prefix, (uint64_t)(load->limit * dur) + 1);
    if (r == NULL) {
        return ctl_fail(CTL_EXIT_ERROR, "out of memory");
    }
    r->key_bytes = CHECK_KEY_BYTES;
    r->value_bytes = CHECK_VALUE_BYTES;
    r->period = 1.0 / (double)load->limit;
    r->duration_s = (double)dur;
    size_t started = run_clients(r, load->clients, false);
    double total = now_s() - r->t0;
    uint64_t sent = atomic_load(&r->next);
    sent = sent < r->slots ? sent : r->slots;
    rc = cleanup(x, c, prefix, false);
    if (rc >= 0) {
        run_free(r);
        return rc;
    }
    if (started == 0) {
        ctl_fail(CTL_EXIT_ERROR, "cannot start a client thread");
    }
    bool ok = started > 0 && verdict(r, sent, total, load->limit);
    run_free(r);
    if (check_interrupted) {
        return ctl_fail(CTL_EXIT_INTERRUPTED, "interrupted");
    }
    return ok ? 0 : CTL_EXIT_ERROR;
}

/* --------------------------------------------------------- datascale */

/* The value of the gauge CHECK_METRIC in a Prometheus text exposition:
 * "name value [timestamp]", labels allowed, the value in Go's float
 * forms (52428800, 5.24288e+07). 0 and a message in why when absent or
 * not a positive finite number, which etcdctl takes as unreadable. */
static double metric_value(const char *text, char *why, size_t why_size)
{
    size_t nlen = strlen(CHECK_METRIC);
    const char *l = text;
    while (l != NULL && *l != 0) { /* bounded: one step a line */
        if (strncmp(l, CHECK_METRIC, nlen) == 0 &&
            (l[nlen] == ' ' || l[nlen] == '\t' || l[nlen] == '{')) {
            break;
        }
        l = strchr(l, '\n');
        l = l != NULL ? l + 1 : NULL;
    }
    if (l == NULL || *l == 0) {
        snprintf(why, why_size, "could not find: %s", CHECK_METRIC);
        return 0;
    }
    const char *p = l + nlen;
    if (*p == '{') {
        const char *e = strpbrk(p, "}\n");
        p = e != NULL && *e == '}' ? e + 1 : p;
    }
    p += strspn(p, " \t");
    size_t tl = strcspn(p, " \t\r\n");
    char tok[64];
    snprintf(tok, sizeof(tok), "%.*s", (int)(tl < 63 ? tl : 63), p);
    char *end = NULL;
    double v = strtod(tok, &end);
    if (tl == 0 || tl >= sizeof(tok) || end != tok + tl || !isfinite(v)) {
        snprintf(why, why_size,
                 "parse error: strconv.ParseFloat: parsing \"%s\": invalid "
                 "syntax",
                 tok);
        return 0;
    }
    return v > 0 ? v : 0;
}

/* The first endpoint's resident memory (etcdctl's endpointMemoryMetrics);
 * 0 after printing why on stdout, as etcdctl does. */
static double endpoint_rss(struct ctl *x, struct cairn_client *c)
{
    struct cairn_api_resp a;
    int rc = cairn_http_get(c, 0, "/metrics", ctl_deadline(x), &a);
    char why[512];
    double v = 0;
    if (rc != 0 && a.status == 0) { /* no answer: etcdctl's Get error */
        const char *ep = x->endpoints[0];
        snprintf(why, sizeof(why), "fetch error: Get \"%s%s/metrics\": %s",
                 strncmp(ep, "http", 4) == 0 ? "" : "http://", ep,
                 cairn_client_errmsg(c));
    } else { /* any status: etcdctl reads the body of a 404 as well */
        v = metric_value(a.body != NULL ? a.body : "", why, sizeof(why));
    }
    cairn_api_resp_free(&a);
    if (v <= 0) {
        printf("%s\n", why);
    }
    return v;
}

/* Put 0, sent alone: etcdctl's shape (512 + 512 bytes after the prefix)
 * unless the server refuses a key that long (cairnd keeps keys to LMDB's
 * 511 bytes), when the pair becomes check perf's key of 256 bytes and a
 * value of 768, still 1024 bytes (said on stderr, stdout stays etcdctl's).
 * The workers then go on from put 1. */
static void ds_first_put(struct check_run *r, struct cairn_client *c)
{
    uint8_t key[CHECK_PREFIX_MAX + CHECK_DS_HALF];
    size_t plen = strlen(r->prefix);
    ASSERT(plen <= CHECK_PREFIX_MAX && r->slots > 0);
    memcpy(key, r->prefix, plen);
    unsigned seed = (unsigned)(uintptr_t)&key ^ (unsigned)time(NULL);
    r->t0 = now_s();
    int rc = put_one(r, c, 0, key, &seed);
    if (rc != 0 && strstr(cairn_client_errmsg(c), "key is too large")) {
        fprintf(stderr,
                "cairnctl: the server refuses keys of %zu bytes: keys of "
                "%zu and values of %d bytes instead\n",
                plen + r->key_bytes, plen + CHECK_KEY_BYTES,
                2 * CHECK_DS_HALF - CHECK_KEY_BYTES);
        r->key_bytes = CHECK_KEY_BYTES;
        r->value_bytes = 2 * CHECK_DS_HALF - CHECK_KEY_BYTES;
        rc = put_one(r, c, 0, key, &seed);
    }
    if (rc != 0) {
        record_error(r, c, rc);
    }
    atomic_store(&r->next, 1);
    atomic_store(&r->finished, 1);
}

/* etcdctl's last lines: the errors of the puts, or the memory used. */
static int ds_verdict(const struct check_run *r, double before, double after)
{
    if (r->err_count[0] > 0) {
        printf("FAIL: too many errors\n");
        for (size_t i = 0; i < CHECK_ERRORS_MAX && r->err_count[i] > 0; i++) {
            printf("FAIL: ERROR(%s) -> %" PRIu64 "\n", r->err_text[i],
                   r->err_count[i]);
        }
        if (r->err_other > 0) {
            printf("FAIL: ERROR(other errors) -> %" PRIu64 "\n", r->err_other);
        }
        return CTL_EXIT_ERROR;
    }
    /* may be negative: the member may have given memory back */
    printf("PASS: Approximate system memory used : %.2f MB.\n",
           (after - before) / (1024.0 * 1024.0));
    return 0;
}

int cmd_check_datascale(struct ctl *x)
{
    const struct check_load *load = find_load(ctl_flag(x, "load"));
    if (load == NULL) {
        return ctl_fail(CTL_EXIT_BAD_FEATURE, "unknown load option %s",
                        ctl_flag(x, "load"));
    }
    int rc = 0;
    const char *prefix = check_prefix(x, &rc);
    if (prefix == NULL) {
        return rc;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    ASSERT(x->endpoints_count > 0);
    rc = prefix_empty(x, c, prefix);
    if (rc >= 0) {
        return rc;
    }
    struct check_run *r = run_new(x, prefix, load->pairs);
    if (r == NULL) {
        return ctl_fail(CTL_EXIT_ERROR, "out of memory");
    }
    r->key_bytes = CHECK_DS_HALF;
    r->value_bytes = CHECK_DS_HALF;
    double before = endpoint_rss(x, c);
    if (before <= 0) {
        printf("FAIL: Could not read %s before the put operations.\n",
               CHECK_METRIC);
        run_free(r);
        return CTL_EXIT_ERROR;
    }
    printf("Start data scale check for work load [%" PRIu64
           " key-value pairs, %d bytes per key-value, %" PRId64
           " concurrent clients].\n",
           load->pairs, 2 * CHECK_DS_HALF, load->ds_clients);
    fflush(stdout);
    ds_first_put(r, c);
    size_t started = run_clients(r, load->ds_clients, true);
    double after = started > 0 ? endpoint_rss(x, c) : 0;
    if (after <= 0) {
        if (started == 0) {
            ctl_fail(CTL_EXIT_ERROR, "cannot start a client thread");
        }
        printf("FAIL: Could not read %s after the put operations.\n",
               CHECK_METRIC);
        run_free(r); /* and the keys stay, as etcdctl leaves them */
        return CTL_EXIT_ERROR;
    }
    rc = cleanup(x, c, prefix, true);
    if (rc >= 0) {
        run_free(r);
        return rc;
    }
    rc = check_interrupted ? ctl_fail(CTL_EXIT_INTERRUPTED, "interrupted")
                           : ds_verdict(r, before, after);
    run_free(r);
    return rc;
}

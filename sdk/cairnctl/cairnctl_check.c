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

#include "sdk/cairnctl/cairnctl.h"

#define CHECK_THREADS_MAX  64
#define CHECK_ERRORS_MAX   8 /* distinct error texts kept */
#define CHECK_KEY_BYTES    256
#define CHECK_VALUE_BYTES  1024
#define CHECK_DURATION_MAX 3600

struct check_load {
    const char *name;
    const char *alias;
    int64_t limit;
    int64_t clients;
};

static const struct check_load loads[] = {
    {"s", "small", 150, 50},
    {"m", "medium", 1000, 200},
    {"l", "large", 8000, 500},
    {"xl", "xLarge", 15000, 1000},
};

struct check_run {
    struct ctl *x;
    const char *prefix;
    double t0, t_end, period;
    atomic_uint_fast64_t next; /* index of the next put to send */
    double *lats;              /* seconds, by put index */
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

/* One client: takes the next put's index, waits for its slot in the
 * paced schedule (the rate limiter), sends it, records the latency. */
static void *worker(void *arg)
{
    struct check_run *r = arg;
    struct cairn_client *c = ctl_client_new(r->x);
    if (c == NULL) {
        return NULL; /* takes no slot: the other clients send its puts */
    }
    uint8_t key[4096];
    static const uint8_t value[CHECK_VALUE_BYTES];
    size_t plen = strlen(r->prefix);
    memcpy(key, r->prefix, plen);
    unsigned seed = (unsigned)(uintptr_t)&key ^ (unsigned)time(NULL);
    for (;;) { /* bounded: indexes past the duration end it */
        uint64_t i = atomic_fetch_add(&r->next, 1);
        double at = r->t0 + (double)i * r->period;
        if (i >= r->slots || at >= r->t_end || check_interrupted) {
            break;
        }
        sleep_until(at);
        /* etcdctl: binary.PutVarint of a random int63 into 256 zeros */
        memset(key + plen, 0, CHECK_KEY_BYTES);
        uint64_t v = ((uint64_t)rand_r(&seed) << 32 | (uint64_t)rand_r(&seed))
                     << 1; /* zigzag of a non-negative value */
        size_t k = plen;
        while (v >= 0x80) {
            key[k++] = (uint8_t)(v | 0x80);
            v >>= 7;
        }
        key[k] = (uint8_t)v;
        struct cairn_put_req req = {.key = key,
                                    .key_len = plen + CHECK_KEY_BYTES,
                                    .value = value,
                                    .value_len = sizeof(value)};
        struct cairn_put_resp pr;
        double st = now_s();
        int rc = cairn_put(c, &req, ctl_deadline(r->x), &pr);
        r->lats[i] = now_s() - st;
        if (rc == 0) {
            r->ok[i] = true;
            cairn_put_resp_free(&pr);
        } else {
            record_error(r, c, rc);
        }
    }
    cairn_client_free(c);
    return NULL;
}

/* Deletes the prefix's keys; compacts at that revision when asked. */
static void cleanup(struct ctl *x, struct cairn_client *c, const char *prefix,
                    bool compact)
{
    uint8_t end[4096];
    size_t plen = strlen(prefix);
    struct cairn_delete_req d = {
        .key = (const uint8_t *)prefix,
        .key_len = plen,
        .range_end = end,
        .range_end_len = cairn_prefix_end((const uint8_t *)prefix, plen, end)};
    struct cairn_delete_resp dr;
    int rc = cairn_delete(c, &d, 30000, &dr);
    if (rc != 0) {
        char t[256];
        ctl_err_text(c, rc, t, sizeof(t));
        printf("FAIL: Cleanup failed during key deletion: ERROR(%s)\n", t);
        return;
    }
    int64_t rev = dr.header.revision;
    cairn_delete_resp_free(&dr);
    if (compact) {
        rc = cairn_compact(c, rev, false, ctl_deadline(x), NULL);
        if (rc != 0) {
            ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        } else {
            printf("compacted revision %" PRId64 "\n", rev);
        }
    }
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
    const char *prefix = ctl_flag(x, "prefix");
    if (dur < 1 || dur > CHECK_DURATION_MAX || strlen(prefix) > 1024) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "--duration is 1-%d seconds and "
                        "--prefix at most 1024 bytes",
                        CHECK_DURATION_MAX);
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    int rc = prefix_empty(x, c, prefix);
    if (rc >= 0) {
        return rc;
    }
    struct check_run *r = calloc(1, sizeof(*r));
    uint64_t slots = (uint64_t)(load->limit * dur) + 1;
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
        return ctl_fail(CTL_EXIT_ERROR, "out of memory");
    }
    r->x = x;
    r->prefix = prefix;
    r->slots = slots;
    r->period = 1.0 / (double)load->limit;
    pthread_mutex_init(&r->mu, NULL);
    struct sigaction a = {.sa_handler = on_int};
    sigaction(SIGINT, &a, NULL);
    sigaction(SIGTERM, &a, NULL);
    size_t nt = load->clients < CHECK_THREADS_MAX ? (size_t)load->clients
                                                  : CHECK_THREADS_MAX;
    pthread_t th[CHECK_THREADS_MAX];
    r->t0 = now_s();
    r->t_end = r->t0 + (double)dur;
    size_t started = 0;
    while (started < nt && pthread_create(&th[started], NULL, worker, r) == 0) {
        started++;
    }
    for (size_t i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
    }
    double total = now_s() - r->t0;
    uint64_t sent = atomic_load(&r->next);
    sent = sent < slots ? sent : slots;
    cleanup(x, c, prefix, ctl_flag_bool(x, "auto-compact"));
    if (ctl_flag_bool(x, "auto-defrag")) {
        cmd_defrag(x);
    }
    if (started == 0) {
        ctl_fail(CTL_EXIT_ERROR, "cannot start a client thread");
    }
    bool ok = started > 0 && verdict(r, sent, total, load->limit);
    pthread_mutex_destroy(&r->mu);
    free(r->lats);
    free(r->ok);
    free(r);
    if (check_interrupted) {
        return ctl_fail(CTL_EXIT_INTERRUPTED, "interrupted");
    }
    return ok ? 0 : CTL_EXIT_ERROR;
}

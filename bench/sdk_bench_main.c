/*
 * sdk_bench_main.c - sdk-bench: cairn-bench's put and range loads made
 * through libcairn's blocking API, to tell whether the library is the
 * bottleneck (issue 14: its throughput should be at least 0.8x
 * cairn-bench's on the same server with the same parameters).
 *
 *   sdk-bench put|range [--endpoints H:P] [--clients N] [--total N]
 *             [--key-size N] [--val-size N] [--key-space N]
 *             [--consistency l|s] [--seed N] [--json]
 *
 * Each client is one thread with its own struct cairn_client (so its own
 * connection: calls on one client run one at a time), doing blocking
 * calls back to back; cairn-bench's equivalent is --conns N --clients N.
 * Keys are cairn-bench's ("k" and the index zero-padded to key-size),
 * random over key-space; values are key-size... val-size bytes of 'x'.
 * range reads point keys (cairn-bench's default range workload); it does
 * not preload (run cairn-bench range, which does, or a put first).
 * Prints the throughput of successful calls and latency percentiles
 * (one table line, or one JSON object with --json).
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cairn.h>

#define CLIENTS_MAX 1024

struct cfg {
    const char *endpoint;
    int put; /* else range */
    unsigned clients;
    uint64_t total;
    unsigned key_size;
    unsigned val_size;
    uint64_t key_space;
    int serializable;
    uint64_t seed;
    int json;
};

struct worker {
    pthread_t th;
    const struct cfg *cfg;
    atomic_uint_fast64_t *next; /* shared request counter */
    struct cairn_client *c;
    uint64_t rng;
    uint64_t ok;
    uint64_t failed;
    int first_err;
    uint32_t *lat_us; /* one slot per request this worker sent */
    size_t lat_count;
    size_t lat_cap;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    const struct cfg *c = w->cfg;
    char key[300];
    uint8_t *val = malloc(c->val_size + 1);
    if (val == NULL) {
        return NULL;
    }
    memset(val, 'x', c->val_size);
    int width = (int)(c->key_size > 1 ? c->key_size - 1 : 1);
    for (;;) {
        uint64_t i = atomic_fetch_add(w->next, 1);
        if (i >= c->total) {
            break;
        }
        uint64_t idx = xorshift(&w->rng) % c->key_space;
        int kl = snprintf(key, sizeof(key), "k%0*" PRIu64, width, idx);
        uint64_t t0 = now_ns();
        int rc;
        if (c->put) {
            struct cairn_put_req pr = {.key = (const uint8_t *)key,
                                       .key_len = (size_t)kl,
                                       .value = val,
                                       .value_len = c->val_size};
            struct cairn_put_resp resp;
            rc = cairn_put(w->c, &pr, 10000, &resp);
            cairn_put_resp_free(&resp);
        } else {
            struct cairn_range_req rq = {.key = (const uint8_t *)key,
                                         .key_len = (size_t)kl,
                                         .serializable = c->serializable};
            struct cairn_range_resp resp;
            rc = cairn_range(w->c, &rq, 10000, &resp);
            cairn_range_resp_free(&resp);
        }
        uint64_t us = (now_ns() - t0) / 1000;
        if (rc == 0) {
            w->ok++;
            if (w->lat_count < w->lat_cap) {
                w->lat_us[w->lat_count++] =
                    us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
            }
        } else {
            if (w->failed++ == 0) {
                w->first_err = rc;
            }
        }
    }
    free(val);
    return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sdk-bench put|range [--endpoints H:P] [--clients N] "
            "[--total N]\n"
            "       [--key-size N] [--val-size N] [--key-space N] "
            "[--consistency l|s]\n"
            "       [--seed N] [--json]\n");
}

static int parse(int argc, char **argv, struct cfg *c)
{
    static const struct option opts[] = {
        {"endpoints", required_argument, NULL, 'e'},
        {"clients", required_argument, NULL, 'c'},
        {"total", required_argument, NULL, 't'},
        {"key-size", required_argument, NULL, 'k'},
        {"val-size", required_argument, NULL, 'v'},
        {"key-space", required_argument, NULL, 's'},
        {"consistency", required_argument, NULL, 'l'},
        {"seed", required_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0}};
    if (argc < 2 || (strcmp(argv[1], "put") && strcmp(argv[1], "range"))) {
        return -1;
    }
    *c = (struct cfg){.endpoint = "127.0.0.1:2379",
                      .put = !strcmp(argv[1], "put"),
                      .clients = 10,
                      .total = 10000,
                      .key_size = 8,
                      .val_size = 256,
                      .key_space = 10000,
                      .seed = 1};
    optind = 2;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'e':
            c->endpoint = optarg;
            break;
        case 'c':
            c->clients = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            c->total = strtoull(optarg, NULL, 10);
            break;
        case 'k':
            c->key_size = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'v':
            c->val_size = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            c->key_space = strtoull(optarg, NULL, 10);
            break;
        case 'l':
            c->serializable = optarg[0] == 's';
            break;
        case 'r':
            c->seed = strtoull(optarg, NULL, 10);
            break;
        case 'j':
            c->json = 1;
            break;
        default:
            return -1;
        }
    }
    if (c->clients == 0 || c->clients > CLIENTS_MAX || c->total == 0 ||
        c->key_space == 0 || c->key_size == 0 || c->key_size > 64 ||
        c->val_size > (1u << 20)) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cfg cfg;
    if (parse(argc, argv, &cfg) != 0) {
        usage();
        return 2;
    }
    struct worker *ws = calloc(cfg.clients, sizeof(*ws));
    atomic_uint_fast64_t next = 0;
    if (ws == NULL) {
        return 1;
    }
    for (unsigned i = 0; i < cfg.clients; i++) {
        struct cairn_options o;
        cairn_options_init(&o);
        o.endpoints = &cfg.endpoint;
        o.endpoints_count = 1;
        o.seed = cfg.seed + i;
        int rc = cairn_client_new(&o, &ws[i].c);
        ws[i].lat_cap = (size_t)(cfg.total / cfg.clients) * 2 + 16;
        ws[i].lat_us = malloc(ws[i].lat_cap * sizeof(uint32_t));
        if (rc != 0 || ws[i].lat_us == NULL) {
            fprintf(stderr, "client: %s\n", cairn_strerror(rc));
            return 1;
        }
        ws[i].cfg = &cfg;
        ws[i].next = &next;
        ws[i].rng = (cfg.seed * 0x9e3779b97f4a7c15ull) ^ (i + 1) * 7919u;
        /* connect before the clock starts, as cairn-bench does */
        struct cairn_status_resp st;
        rc = cairn_status(ws[i].c, 5000, &st);
        cairn_status_resp_free(&st);
        if (rc != 0) {
            fprintf(stderr, "connect: %s\n", cairn_strerror(rc));
            return 1;
        }
    }
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < cfg.clients; i++) {
        pthread_create(&ws[i].th, NULL, run, &ws[i]);
    }
    uint64_t ok = 0, failed = 0;
    size_t n = 0;
    int first_err = 0;
    for (unsigned i = 0; i < cfg.clients; i++) {
        pthread_join(ws[i].th, NULL);
        ok += ws[i].ok;
        failed += ws[i].failed;
        n += ws[i].lat_count;
        if (first_err == 0) {
            first_err = ws[i].first_err;
        }
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    uint32_t *all = malloc((n + 1) * sizeof(uint32_t));
    size_t k = 0;
    for (unsigned i = 0; i < cfg.clients; i++) {
        memcpy(all + k, ws[i].lat_us, ws[i].lat_count * sizeof(uint32_t));
        k += ws[i].lat_count;
        free(ws[i].lat_us);
        cairn_client_free(ws[i].c);
    }
    qsort(all, n, sizeof(uint32_t), cmp_u32);
#define PCT(p) (n > 0 ? all[(size_t)((double)(n - 1) * (p))] / 1000.0 : 0.0)
    double tput = secs > 0 ? (double)ok / secs : 0;
    if (cfg.json) {
        printf("{\"workload\":\"%s\",\"clients\":%u,\"ok\":%" PRIu64
               ",\"failed\":%" PRIu64 ",\"elapsed_s\":%.6f,"
               "\"throughput\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
               "\"first_error\":\"%s\"}\n",
               argv[1], cfg.clients, ok, failed, secs, tput, PCT(0.5),
               PCT(0.99), first_err ? cairn_strerror(first_err) : "");
    } else {
        printf("sdk-bench %s: %u clients, key %u B, value %u B\n"
               "  requests   %" PRIu64 ": ok %" PRIu64 ", failed %" PRIu64
               " in %.3f s\n"
               "  throughput %.1f ok/s\n"
               "  latency ms p50 %.3f p99 %.3f max %.3f\n",
               argv[1], cfg.clients, cfg.key_size, cfg.val_size, cfg.total, ok,
               failed, secs, tput, PCT(0.5), PCT(0.99), PCT(1.0));
        if (first_err) {
            printf("  first error: %s\n", cairn_strerror(first_err));
        }
    }
    free(all);
    free(ws);
    return failed == 0 ? 0 : 1;
}

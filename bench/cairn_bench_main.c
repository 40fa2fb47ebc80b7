/*
 * cairn_bench_main.c - cairn-bench: command line and report.
 *
 * Usage: cairn-bench WORKLOAD [flags]     (cairn-bench --help for flags)
 * Workloads: put, range, txn-put, delete, watch, watch-latency,
 * lease-keepalive, mixed, and ready (waits until a linearizable get of
 * "health" succeeds; prints how long that took, for restart timings).
 *
 * Prints a short table, or with --json one JSON object on one line (for
 * bench/compare.sh). Exit status: 0 when every requested operation
 * succeeded (and, for watches, every expected event arrived); 1 when some
 * failed, were not sent, or the server lacks the method (the report says
 * "unimplemented"); 2 on bad usage or when the run could not start (no
 * connection, a setup phase timed out).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "bench/cairn_bench.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-bench WORKLOAD [flags]\n"
            "workloads: put range txn-put delete watch watch-latency\n"
            "           lease-keepalive mixed ready\n"
            "  --endpoints H:P[,H:P]  servers (default 127.0.0.1:2379); "
            "connections\n"
            "                         are spread over them round-robin\n"
            "  --conns N              TCP connections (default 10)\n"
            "  --clients N            concurrent requests, spread over the\n"
            "                         connections (default 100)\n"
            "  --total N              requests to send (default 10000)\n"
            "  --duration S           or: send for S seconds\n"
            "  --rate R               open loop at R requests/s, latency from\n"
            "                         each request's due time\n"
            "  --key-size N           key bytes (default 8)\n"
            "  --val-size N           value bytes (default 256)\n"
            "  --key-space N          keys numbered 0..N-1 (default 10000)\n"
            "  --seq-keys             sequential keys (default random)\n"
            "  --consistency l|s      ranges linearizable (default) or "
            "serializable\n"
            "  --prefix-digits D      ranges over the 10^D keys sharing a "
            "prefix\n"
            "                         (default 0: point gets)\n"
            "  --txn-ops N            puts per txn (txn-put, default 1)\n"
            "  --read-ratio F         mixed: share of ranges (default 0.9)\n"
            "  --preload / --no-preload  put every key first (default on for\n"
            "                         range, delete, mixed)\n"
            "  --watchers N           watch: watchers (default 1000; 100 for\n"
            "                         watch-latency)\n"
            "  --watch-keys M         ... spread over M keys (default 1)\n"
            "  --watch-prefix         ... or all on the key prefix (watch "
            "default)\n"
            "  --watch-streams S      ... on S streams (default 10)\n"
            "  --lease-ttl S          lease-keepalive: TTL (default 60)\n"
            "  --timeout S            give up a phase after S s without "
            "progress\n"
            "                         (default 60; ready: total wait)\n"
            "  --key-prefix P         key prefix (default k)\n"
            "  --seed N               PRNG seed (default 1)\n"
            "  --json                 one JSON object instead of the table\n");
}

static int parse_endpoints(struct bench_cfg *c, const char *arg)
{
    char tmp[512];
    snprintf(tmp, sizeof(tmp), "%s", arg);
    c->addrs_count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(tmp, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (strncmp(tok, "http://", 7) == 0) {
            tok += 7;
        }
        char *colon = strrchr(tok, ':');
        if (colon == NULL || c->addrs_count == BENCH_ENDPOINTS_MAX) {
            return ERR_INVALID;
        }
        *colon = 0;
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end != 0 || port <= 0 || port > 65535) {
            return ERR_INVALID;
        }
        if (strcmp(tok, "localhost") == 0) {
            tok = "127.0.0.1";
        }
        if (uv_ip4_addr(tok, (int)port, &c->addrs[c->addrs_count]) != 0) {
            return ERR_INVALID;
        }
        c->addrs_count++;
    }
    return c->addrs_count > 0 ? 0 : ERR_INVALID;
}

static int num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != 0 || v < lo || v > hi) {
        return ERR_INVALID;
    }
    *out = v;
    return 0;
}

enum {
    O_ENDPOINTS = 256,
    O_CONNS,
    O_CLIENTS,
    O_TOTAL,
    O_DURATION,
    O_RATE,
    O_KEY_SIZE,
    O_VAL_SIZE,
    O_KEY_SPACE,
    O_SEQ_KEYS,
    O_CONSISTENCY,
    O_PREFIX_DIGITS,
    O_TXN_OPS,
    O_READ_RATIO,
    O_PRELOAD,
    O_NO_PRELOAD,
    O_WATCHERS,
    O_WATCH_KEYS,
    O_WATCH_PREFIX,
    O_WATCH_STREAMS,
    O_LEASE_TTL,
    O_TIMEOUT,
    O_KEY_PREFIX,
    O_SEED,
    O_JSON,
    O_HELP,
};

static const struct option long_opts[] = {
    {"endpoints", required_argument, NULL, O_ENDPOINTS},
    {"conns", required_argument, NULL, O_CONNS},
    {"clients", required_argument, NULL, O_CLIENTS},
    {"total", required_argument, NULL, O_TOTAL},
    {"duration", required_argument, NULL, O_DURATION},
    {"rate", required_argument, NULL, O_RATE},
    {"key-size", required_argument, NULL, O_KEY_SIZE},
    {"val-size", required_argument, NULL, O_VAL_SIZE},
    {"key-space", required_argument, NULL, O_KEY_SPACE},
    {"seq-keys", no_argument, NULL, O_SEQ_KEYS},
    {"consistency", required_argument, NULL, O_CONSISTENCY},
    {"prefix-digits", required_argument, NULL, O_PREFIX_DIGITS},
    {"txn-ops", required_argument, NULL, O_TXN_OPS},
    {"read-ratio", required_argument, NULL, O_READ_RATIO},
    {"preload", no_argument, NULL, O_PRELOAD},
    {"no-preload", no_argument, NULL, O_NO_PRELOAD},
    {"watchers", required_argument, NULL, O_WATCHERS},
    {"watch-keys", required_argument, NULL, O_WATCH_KEYS},
    {"watch-prefix", no_argument, NULL, O_WATCH_PREFIX},
    {"watch-streams", required_argument, NULL, O_WATCH_STREAMS},
    {"lease-ttl", required_argument, NULL, O_LEASE_TTL},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"key-prefix", required_argument, NULL, O_KEY_PREFIX},
    {"seed", required_argument, NULL, O_SEED},
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

/* One flag; ERR_INVALID when its value is out of range. */
static int apply_opt(struct bench_cfg *c, int o, const char *arg, bool *json)
{
    double v = 0;
    int rc = 0;
    switch (o) {
    case O_ENDPOINTS:
        return parse_endpoints(c, arg);
    case O_CONNS:
        rc = num(arg, 1, BENCH_CONNS_MAX, &v);
        c->conns = (uint32_t)v;
        break;
    case O_CLIENTS:
        rc = num(arg, 1, BENCH_CLIENTS_MAX, &v);
        c->clients = (uint32_t)v;
        break;
    case O_TOTAL:
        rc = num(arg, 1, 1e12, &v);
        c->total = (uint64_t)v;
        c->duration_s = 0;
        break;
    case O_DURATION:
        rc = num(arg, 0.001, 1e6, &c->duration_s);
        c->total = 0;
        break;
    case O_RATE:
        rc = num(arg, 0.001, 1e9, &c->rate);
        break;
    case O_KEY_SIZE:
        rc = num(arg, 1, BENCH_KEY_MAX / 2, &v);
        c->key_bytes = (uint32_t)v;
        break;
    case O_VAL_SIZE:
        rc = num(arg, 0, BENCH_VAL_MAX, &v);
        c->val_bytes = (uint32_t)v;
        break;
    case O_KEY_SPACE:
        rc = num(arg, 1, 1e12, &v);
        c->key_space = (uint64_t)v;
        break;
    case O_SEQ_KEYS:
        c->seq_keys = true;
        break;
    case O_CONSISTENCY:
        if (strcmp(arg, "l") != 0 && strcmp(arg, "s") != 0) {
            return ERR_INVALID;
        }
        c->serializable = arg[0] == 's';
        break;
    case O_PREFIX_DIGITS:
        rc = num(arg, 0, 9, &v);
        c->prefix_digits = (uint32_t)v;
        break;
    case O_TXN_OPS:
        rc = num(arg, 1, BENCH_TXN_OPS_MAX, &v);
        c->txn_ops = (uint32_t)v;
        break;
    case O_READ_RATIO:
        rc = num(arg, 0, 1, &c->read_ratio);
        break;
    case O_PRELOAD:
    case O_NO_PRELOAD:
        c->preload = o == O_PRELOAD;
        break;
    case O_WATCHERS:
        rc = num(arg, 1, BENCH_WATCHERS_MAX, &v);
        c->watchers = (uint32_t)v;
        break;
    case O_WATCH_KEYS:
        rc = num(arg, 1, 1e9, &v);
        c->watch_keys = (uint32_t)v;
        c->watch_prefix = false;
        break;
    case O_WATCH_PREFIX:
        c->watch_prefix = true;
        break;
    case O_WATCH_STREAMS:
        rc = num(arg, 1, 1e6, &v);
        c->watch_streams = (uint32_t)v;
        break;
    case O_LEASE_TTL:
        rc = num(arg, 1, 9e9, &v);
        c->lease_ttl_s = (int64_t)v;
        break;
    case O_TIMEOUT:
        rc = num(arg, 0.01, 1e6, &c->timeout_s);
        break;
    case O_KEY_PREFIX:
        if (arg[0] == 0 || strlen(arg) >= sizeof(c->key_prefix)) {
            return ERR_INVALID;
        }
        snprintf(c->key_prefix, sizeof(c->key_prefix), "%s", arg);
        break;
    case O_SEED:
        rc = num(arg, 0, 1.8e19, &v);
        c->seed = (uint64_t)v;
        break;
    case O_JSON:
        *json = true;
        break;
    default:
        return ERR_INVALID;
    }
    return rc;
}

/* ------------------------------------------------------------ reports */

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

static void text_lat(const char *what, const struct bench_hist *h)
{
    printf("  %-10s ms  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f"
           "  mean %.3f  (n %llu)\n",
           what, ms(bench_hist_percentile(h, 50)),
           ms(bench_hist_percentile(h, 90)), ms(bench_hist_percentile(h, 99)),
           ms(bench_hist_percentile(h, 99.9)), ms(h->max),
           bench_hist_mean(h) / 1e6, (unsigned long long)h->count);
}

static uint64_t failed_count(const struct bench_result *r)
{
    uint64_t f = 0;
    for (int i = 1; i < BENCH_ST__COUNT; i++) {
        f += r->status_count[i];
    }
    return f;
}

static void report_text(const struct bench_cfg *c, const struct bench_result *r)
{
    printf("cairn-bench %s: %u conns, %u clients, key %u B, value %u B, "
           "%llu keys %s%s\n",
           bench_workload_name(c->workload), c->conns, c->clients, c->key_bytes,
           c->val_bytes, (unsigned long long)c->key_space,
           c->seq_keys ? "sequential" : "random",
           c->rate > 0 ? ", open loop" : "");
    printf("  requests   %llu: ok %llu, failed %llu, not sent %llu, in "
           "%.3f s%s%s\n",
           (unsigned long long)r->requested, (unsigned long long)r->ok,
           (unsigned long long)failed_count(r), (unsigned long long)r->not_sent,
           r->elapsed_s, r->timed_out ? " (TIMED OUT)" : "",
           r->unimplemented ? " (UNIMPLEMENTED by the server)" : "");
    printf("  throughput %.1f ok/s\n",
           r->elapsed_s > 0 ? (double)r->ok / r->elapsed_s : 0.0);
    text_lat("latency", &r->all);
    int kinds = 0;
    for (int i = 0; i < BENCH_OP__COUNT; i++) {
        kinds += r->op[i].count > 0;
    }
    for (int i = 0; kinds > 1 && i < BENCH_OP__COUNT; i++) {
        if (r->op[i].count > 0) {
            text_lat(bench_op_name((enum bench_op)i), &r->op[i]);
        }
    }
    if (c->workload == BENCH_WL_WATCH ||
        c->workload == BENCH_WL_WATCH_LATENCY) {
        printf("  watch      %llu watchers, events %llu of %llu expected in "
               "%.3f s: %.1f events/s\n",
               (unsigned long long)r->watchers_created,
               (unsigned long long)r->events,
               (unsigned long long)r->events_expected, r->events_elapsed_s,
               r->events_elapsed_s > 0 ? (double)r->events / r->events_elapsed_s
                                       : 0.0);
        text_lat("put->event", &r->event_lat);
    }
    for (int i = 1; i < BENCH_ST__COUNT; i++) {
        if (r->status_count[i] > 0) {
            printf("  error      %s %llu\n", bench_status_name(i),
                   (unsigned long long)r->status_count[i]);
        }
    }
    if (r->first_error[0] != 0) {
        printf("  first error: %s\n", r->first_error);
    }
}

static void json_lat(const struct bench_hist *h)
{
    printf("{\"n\":%llu,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,"
           "\"p999\":%.4f,\"max\":%.4f,\"mean\":%.4f}",
           (unsigned long long)h->count, ms(bench_hist_percentile(h, 50)),
           ms(bench_hist_percentile(h, 90)), ms(bench_hist_percentile(h, 99)),
           ms(bench_hist_percentile(h, 99.9)), ms(h->max),
           bench_hist_mean(h) / 1e6);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            printf("\\%c", ch);
        } else if (ch < 0x20 || ch >= 0x7f) {
            printf("\\u%04x", ch);
        } else {
            putchar(ch);
        }
    }
    putchar('"');
}

static void report_json(const struct bench_cfg *c, const struct bench_result *r)
{
    printf("{\"workload\":\"%s\",\"conns\":%u,\"clients\":%u,"
           "\"requested\":%llu,\"ok\":%llu,\"failed\":%llu,\"not_sent\":%llu,"
           "\"elapsed_s\":%.6f,\"throughput\":%.2f,\"timed_out\":%s,"
           "\"unimplemented\":%s,\"latency_ms\":",
           bench_workload_name(c->workload), c->conns, c->clients,
           (unsigned long long)r->requested, (unsigned long long)r->ok,
           (unsigned long long)failed_count(r), (unsigned long long)r->not_sent,
           r->elapsed_s, r->elapsed_s > 0 ? (double)r->ok / r->elapsed_s : 0.0,
           r->timed_out ? "true" : "false",
           r->unimplemented ? "true" : "false");
    json_lat(&r->all);
    printf(",\"ops\":{");
    const char *sep = "";
    for (int i = 0; i < BENCH_OP__COUNT; i++) {
        if (r->op[i].count > 0) {
            printf("%s\"%s\":", sep, bench_op_name((enum bench_op)i));
            json_lat(&r->op[i]);
            sep = ",";
        }
    }
    printf("},\"errors\":{");
    sep = "";
    for (int i = 1; i < BENCH_ST__COUNT; i++) {
        if (r->status_count[i] > 0) {
            printf("%s\"%s\":%llu", sep, bench_status_name(i),
                   (unsigned long long)r->status_count[i]);
            sep = ",";
        }
    }
    printf("},\"first_error\":");
    json_str(r->first_error);
    if (c->workload == BENCH_WL_WATCH ||
        c->workload == BENCH_WL_WATCH_LATENCY) {
        printf(",\"watch\":{\"watchers\":%llu,\"events\":%llu,"
               "\"expected\":%llu,\"elapsed_s\":%.6f,\"events_per_s\":%.2f,"
               "\"latency_ms\":",
               (unsigned long long)r->watchers_created,
               (unsigned long long)r->events,
               (unsigned long long)r->events_expected, r->events_elapsed_s,
               r->events_elapsed_s > 0 ? (double)r->events / r->events_elapsed_s
                                       : 0.0);
        json_lat(&r->event_lat);
        putchar('}');
    }
    printf("}\n");
}

/* ------------------------------------------------------------- main */

/* ready: retries a linearizable get until it succeeds or timeout_s. */
static int run_ready(const struct bench_cfg *c, struct bench_result *res,
                     bool json)
{
    uint64_t t0 = clock_mono_ns();
    uint64_t limit = t0 + (uint64_t)(c->timeout_s * 1e9);
    struct bench_cfg one = *c;
    one.timeout_s = c->timeout_s < 2 ? c->timeout_s : 2;
    int attempts = 0;
    for (;;) { /* bounded by the time limit */
        attempts++;
        int rc = bench_run(&one, res);
        uint64_t now = clock_mono_ns();
        if (rc == 0 && res->ok == 1) {
            if (json) {
                printf("{\"workload\":\"ready\",\"ready_ms\":%.3f,"
                       "\"attempts\":%d}\n",
                       ms(now - t0), attempts);
            } else {
                printf("ready in %.3f ms (%d attempts)\n", ms(now - t0),
                       attempts);
            }
            return 0;
        }
        if (now >= limit) {
            fprintf(stderr, "cairn-bench ready: not ready after %.1f s: %s\n",
                    c->timeout_s, rc != 0 ? err_str(rc) : res->first_error);
            return 1;
        }
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    enum bench_workload wl;
    if (bench_workload_parse(argv[1], &wl) != 0) {
        fprintf(stderr, "cairn-bench: unknown workload %s\n", argv[1]);
        usage(stderr);
        return 2;
    }
    struct bench_cfg cfg;
    bench_cfg_defaults(&cfg, wl);
    parse_endpoints(&cfg, "127.0.0.1:2379");
    bool json = false;
    int o;
    optind = 2;
    while ((o = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
        if (o == O_HELP) {
            usage(stdout);
            return 0;
        }
        if (o == '?' || apply_opt(&cfg, o, optarg, &json) != 0) {
            fprintf(stderr, "cairn-bench: bad flag or value: %s\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "cairn-bench: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    char why[160];
    if (bench_cfg_check(&cfg, why, sizeof(why)) != 0) {
        fprintf(stderr, "cairn-bench: %s\n", why);
        return 2;
    }
    struct bench_result *res = mem_alloc(sizeof(*res));
    if (res == NULL) {
        fprintf(stderr, "cairn-bench: out of memory\n");
        return 2;
    }
    int status;
    if (wl == BENCH_WL_READY) {
        status = run_ready(&cfg, res, json);
    } else {
        int rc = bench_run(&cfg, res);
        if (rc != 0) {
            fprintf(stderr, "cairn-bench %s: %s%s%s\n", argv[1], err_str(rc),
                    res->first_error[0] ? " - " : "", res->first_error);
            status = 2;
        } else {
            if (json) {
                report_json(&cfg, res);
            } else {
                report_text(&cfg, res);
            }
            bool watch_ok =
                (wl != BENCH_WL_WATCH && wl != BENCH_WL_WATCH_LATENCY) ||
                res->events >= res->events_expected;
            status = res->ok == res->requested && failed_count(res) == 0 &&
                             !res->timed_out && !res->unimplemented && watch_ok
                         ? 0
                         : 1;
        }
    }
    mem_free(res);
    return status;
}

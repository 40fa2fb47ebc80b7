/*
 * options.c - the flag table, and the three sources that feed it: the
 * command line, the environment and a YAML file (libyaml's event parser).
 *
 * Every option is one row of the table below: its etcd name, its kind, where
 * it lives in struct options and its default. The parsers only find the row
 * and hand the text to set_value(), so a flag, an environment variable and a
 * YAML key always mean the same thing.
 */
#include "registry/server/options.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/limits.h"
#include "registry/http/http.h"
#include "registry/server/discovery_srv.h"
#include "registry/services/services.h"

#define VALUE_BYTES_MAX         4096
#define INITIAL_CLUSTER_DEFAULT "default=http://localhost:2380"
#define YAML_DEPTH_MAX          4

enum kind {
    K_STR,      /* char * */
    K_UINT,     /* uint64_t */
    K_BOOL,     /* bool */
    K_MS,       /* uint64_t milliseconds; bare number = ms */
    K_DURATION, /* uint64_t milliseconds; Go duration ("5s"); bare = s */
    K_URLS,     /* struct options_urls, comma separated */
};

struct row {
    const char *name;
    enum kind kind;
    size_t off;
    const char *def; /* NULL: empty/zero */
    const char *help;
};

#define F(field) offsetof(struct options, field)

static const struct row rows[] = {
    {"name", K_STR, F(name), "default", "human-readable name for this member"},
    {"data-dir", K_STR, F(data_dir), NULL,
     "path to the data directory (default: ${name}.etcd)"},
    {"wal-dir", K_STR, F(wal_dir), NULL, "path to a dedicated WAL directory"},
    {"snapshot-count", K_UINT, F(snapshot_count), "100000",
     "committed transactions that trigger a snapshot to disk"},
    {"store-checkpoint", K_STR, F(store_checkpoint), "auto",
     "how the store stays recoverable after a power loss: 'copy' (a "
     "compacted copy of the store every snapshot), 'in-place' (the live "
     "file's state pinned and synced, no copy: about half the disk, but "
     "about half the put rate under heavy random writes, which it writes "
     "back at each checkpoint) or 'auto' (copies while writes come, in "
     "place once they pause: the copy is then removed; see BENCHMARKS.md)"},
    {"store-writemap", K_BOOL, F(store_writemap), "true",
     "the store changes its pages in a shared map instead of writing each "
     "one at commit (MDB_WRITEMAP): less CPU per write; data.mdb is then "
     "allocated a few MiB ahead of use (default off with "
     "--store-checkpoint in-place)"},
    {"store-resident-bytes", K_UINT, F(store_resident_bytes), "268435456",
     "with --store-writemap: the store's pages kept mapped in cairnd (its "
     "VmRSS) while data.mdb grows; past it they are unmapped (they stay in "
     "the page cache). A store that no longer grows stays mapped. A "
     "checkpoint copy of 32 MiB up to half of it is read into memory before "
     "its file (1 MiB-1 TiB)"},
    {"raft-log-memory-bytes", K_UINT, F(raft_log_memory_bytes), "33554432",
     "data of applied Raft entries kept in memory for a lagging follower "
     "(entries every member holds are given back at once); older ones are "
     "read back from the WAL (1 MiB-64 GiB)"},
    {"heartbeat-interval", K_MS, F(heartbeat_interval_ms), "100",
     "time (ms) of a heartbeat interval"},
    {"election-timeout", K_MS, F(election_timeout_ms), "1000",
     "time (ms) for an election to time out"},
    {"listen-peer-urls", K_URLS, F(listen_peer_urls), "http://localhost:2380",
     "URLs to listen on for peer traffic"},
    {"listen-client-urls", K_URLS, F(listen_client_urls),
     "http://localhost:2379", "URLs to listen on for client traffic"},
    {"max-snapshots", K_UINT, F(max_snapshots), "5",
     "maximum number of snapshot files to retain (0 is unlimited)"},
    {"max-wals", K_UINT, F(max_wals), "5",
     "maximum number of WAL files to retain (0 is unlimited)"},
    {"quota-backend-bytes", K_UINT, F(quota_backend_bytes), "0",
     "raise alarms when the backend size exceeds the quota (0: 2 GiB)"},
    {"backend-batch-interval", K_DURATION, F(backend_batch_interval_ms), NULL,
     "maximum time before committing the backend transaction"},
    {"backend-batch-limit", K_UINT, F(backend_batch_limit), "0",
     "maximum operations before committing the backend transaction"},
    {"max-txn-ops", K_UINT, F(max_txn_ops), "128",
     "maximum number of operations permitted in a transaction"},
    {"max-request-bytes", K_UINT, F(max_request_bytes), "1572864",
     "maximum client request size in bytes the server will accept"},
    {"max-connections", K_UINT, F(max_connections), "10000",
     "client connections open at once, HTTP/1.1 and gRPC together "
     "(1-1000000); one more is closed at accept"},
    {"max-concurrent-streams", K_UINT, F(max_concurrent_streams), "4294967295",
     "maximum concurrent streams per client connection"},
    /* hardening of the client port (docs/hardening.md) */
    {"max-header-bytes", K_UINT, F(max_header_bytes), "16384",
     "bytes of one request's header block, HTTP/1.1 (431) and HTTP/2 "
     "(RESOURCE_EXHAUSTED) (1024-65535)"},
    {"max-conn-out-bytes", K_UINT, F(max_conn_out_bytes), "16777216",
     "response bytes pending for one client connection before its reads "
     "stop and its streams are cut off (65536-1073741824)"},
    {"http-header-timeout", K_DURATION, F(http_header_timeout_ms), "10s",
     "time a new connection has to send its HTTP/1.1 request head or its "
     "HTTP/2 preface and SETTINGS (on https, its TLS handshake has as "
     "long before); also each later request head (1s-10m)"},
    {"idle-timeout", K_DURATION, F(idle_timeout_ms), "10m",
     "an HTTP/1.1 keep-alive connection between requests, or an HTTP/2 one "
     "with no stream open, is closed after this (1s-24h)"},
    {"stall-timeout", K_DURATION, F(stall_timeout_ms), "15s",
     "a gRPC connection with output pending, or an HTTP or WebSocket "
     "stream at --max-conn-out-bytes, with nothing written for this long "
     "is closed: its client is not reading (1s-1h)"},
    {"http2-reset-burst", K_UINT, F(http2_reset_burst), "1000",
     "RST_STREAM frames a client may send at once before "
     "--http2-reset-rate applies; past both: GOAWAY ENHANCE_YOUR_CALM "
     "(1-100000)"},
    {"http2-reset-rate", K_UINT, F(http2_reset_rate), "33",
     "RST_STREAM frames per second a client may send after the burst "
     "(1-100000)"},
    {"grpc-keepalive-min-time", K_DURATION, F(grpc_keepalive_min_time_ms), "5s",
     "minimum interval a client should wait before pinging the server"},
    {"grpc-keepalive-interval", K_DURATION, F(grpc_keepalive_interval_ms), "2h",
     "frequency of server-to-client pings to check the connection"},
    {"grpc-keepalive-timeout", K_DURATION, F(grpc_keepalive_timeout_ms), "20s",
     "time the server waits for a ping answer before closing"},
    {"initial-advertise-peer-urls", K_URLS, F(initial_advertise_peer_urls),
     "http://localhost:2380", "this member's peer URLs to advertise"},
    {"advertise-client-urls", K_URLS, F(advertise_client_urls),
     "http://localhost:2379", "this member's client URLs to advertise"},
    {"initial-cluster", K_STR, F(initial_cluster), INITIAL_CLUSTER_DEFAULT,
     "initial cluster configuration"},
    {"initial-cluster-state", K_STR, F(initial_cluster_state), "new",
     "initial cluster state ('new' or 'existing')"},
    {"initial-cluster-token", K_STR, F(initial_cluster_token), "etcd-cluster",
     "initial cluster token for the cluster during bootstrap"},
    {"discovery", K_STR, F(discovery), NULL, "discovery URL (not supported)"},
    {"discovery-srv", K_STR, F(discovery_srv), NULL,
     "DNS domain used to bootstrap the initial cluster"},
    {"discovery-srv-name", K_STR, F(discovery_srv_name), NULL,
     "suffix to the DNS SRV name queried when bootstrapping"},
    {"discovery-fallback", K_STR, F(discovery_fallback), "proxy",
     "expected behavior when discovery services fail"},
    {"discovery-proxy", K_STR, F(discovery_proxy), NULL,
     "HTTP proxy to use for traffic to the discovery service"},
    {"strict-reconfig-check", K_BOOL, F(strict_reconfig_check), "true",
     "reject reconfiguration requests that would cause quorum loss"},
    {"pre-vote", K_BOOL, F(pre_vote), "true",
     "enable the raft pre-vote algorithm (always on in Cairn)"},
    {"auto-compaction-mode", K_STR, F(auto_compaction_mode), "periodic",
     "interpret retention as 'periodic' duration or 'revision' count"},
    {"auto-compaction-retention", K_STR, F(auto_compaction_retention), "0",
     "auto compaction retention (0 means disable)"},
    {"enable-v2", K_BOOL, F(enable_v2), "false",
     "accept etcd V2 client requests (not supported)"},
    {"cert-file", K_STR, F(client_tls.cert_file), NULL,
     "path to the client server TLS cert file"},
    {"key-file", K_STR, F(client_tls.key_file), NULL,
     "path to the client server TLS key file"},
    {"trusted-ca-file", K_STR, F(client_tls.trusted_ca_file), NULL,
     "path to the client server TLS trusted CA cert file"},
    {"client-crl-file", K_STR, F(client_tls.crl_file), NULL,
     "path to the client certificate revocation list file"},
    {"client-cert-auth", K_BOOL, F(client_tls.client_cert_auth), "false",
     "enable client cert authentication"},
    {"auto-tls", K_BOOL, F(client_tls.auto_tls), "false",
     "client TLS using generated certificates"},
    {"peer-cert-file", K_STR, F(peer_tls.cert_file), NULL,
     "path to the peer server TLS cert file"},
    {"peer-key-file", K_STR, F(peer_tls.key_file), NULL,
     "path to the peer server TLS key file"},
    {"peer-trusted-ca-file", K_STR, F(peer_tls.trusted_ca_file), NULL,
     "path to the peer server TLS trusted CA file"},
    {"peer-crl-file", K_STR, F(peer_tls.crl_file), NULL,
     "path to the peer certificate revocation list file"},
    {"peer-client-cert-auth", K_BOOL, F(peer_tls.client_cert_auth), "false",
     "enable peer client cert authentication"},
    {"peer-auto-tls", K_BOOL, F(peer_tls.auto_tls), "false",
     "peer TLS using self-generated certificates"},
    {"experimental-peer-skip-client-san-verification", K_BOOL,
     F(peer_tls.skip_client_san), "false",
     "skip verification of SAN field in client certificate for peer "
     "connections"},
    {"cipher-suites", K_STR, F(cipher_suites), NULL,
     "comma-separated list of supported TLS cipher suites"},
    {"cors", K_STR, F(cors), "*", "comma-separated whitelist of CORS origins"},
    {"host-whitelist", K_STR, F(host_whitelist), "*",
     "acceptable hostnames from HTTP client requests"},
    {"auth-token", K_STR, F(auth_token), "simple",
     "auth token type: 'simple', or 'jwt,pub-key=F,priv-key=F,"
     "sign-method=RS256|ES256|..,ttl=5m'"},
    {"bcrypt-cost", K_UINT, F(bcrypt_cost), "10",
     "cost of hashing auth passwords (4..31)"},
    {"auth-token-ttl", K_UINT, F(auth_token_ttl_s), "300",
     "seconds before a simple token expires"},
    {"enable-pprof", K_BOOL, F(enable_pprof), "false",
     "profiling endpoint (not supported)"},
    {"enable-console", K_BOOL, F(enable_console), "true",
     "serve the web console at /ui/ on the client port ('false': 404)"},
    {"metrics", K_STR, F(metrics), "basic",
     "metrics to export ('basic' or 'extensive')"},
    {"listen-metrics-urls", K_URLS, F(listen_metrics_urls), NULL,
     "additional URLs to serve /metrics and /health on"},
    {"logger", K_STR, F(logger), "zap", "logger ('zap' or 'capnslog')"},
    {"log-outputs", K_STR, F(log_outputs), "default",
     "'default', 'stderr', 'stdout' or a file path"},
    {"log-level", K_STR, F(log_level), "info",
     "debug, info, warn, error, panic or fatal"},
    {"log-format", K_STR, F(log_format), "text", "'text' or 'json'"},
    {"experimental-initial-corrupt-check", K_BOOL,
     F(experimental_initial_corrupt_check), "false",
     "check data corruption before serving (not supported: a warning)"},
    {"experimental-enable-lease-checkpoint", K_BOOL,
     F(experimental_enable_lease_checkpoint), "true",
     "persist remaining lease TTLs (always on in Cairn)"},
    {"experimental-compaction-batch-limit", K_UINT,
     F(experimental_compaction_batch_limit), "1000",
     "maximum revisions deleted in each compaction batch"},
    {"experimental-watch-progress-notify-interval", K_DURATION,
     F(experimental_watch_progress_notify_interval_ms), "10m",
     "duration of periodic watch progress notifications"},
    {"experimental-warning-apply-duration", K_DURATION,
     F(experimental_warning_apply_duration_ms), "100ms",
     "time an apply may take before a warning is logged"},
    {"force-new-cluster", K_BOOL, F(force_new_cluster), "false",
     "force to create a new one member cluster (refused if true: restore "
     "a snapshot instead)"},
    {"unsafe-no-fsync", K_BOOL, F(unsafe_no_fsync), "false",
     "disables fsync, unsafe, will cause data loss"},
    {"config-history", K_UINT, F(config_history), "100",
     "config center: releases kept per config (1-10000)"},
    {"config-require-message", K_BOOL, F(config_require_message), "false",
     "config center: refuse a publish without a message"},
    {"config-secret-key-file", K_STR, F(config_secret_key_file), NULL,
     "config center: AES-256 key (32 bytes or 64 hex digits) for secrets"},
    {"audit-retention-records", K_UINT, F(audit_retention_records), "100000",
     "audit log: records kept, oldest deleted first (1-10000000)"},
    /* the service registry's bounds (Cairn's own; limits in services.h) */
    {"registry-probes-max", K_UINT, F(registry_probes_max), "256",
     "health probes in flight at once (1-4096)"},
    {"registry-probe-instances-max", K_UINT, F(registry_probe_instances_max),
     "100000", "instances with checks the leader probes (1-100000)"},
    {"registry-probe-writes-max", K_UINT, F(registry_probe_writes_max), "64",
     "health state writes in flight at once (1-1024)"},
    {"registry-metrics-services-max", K_UINT, F(registry_metrics_services_max),
     "1000",
     "services with their own cairn_registry_instances series (0-10000)"},
    /* the multiplexed WebSocket's bounds (registry/http/http_stream_int.h) */
    {"ws-subscriptions-max", K_UINT, F(ws_subscriptions_max), "256",
     "subscriptions on one multiplexed WebSocket (1-4096)"},
    {"ws-message-bytes-max", K_UINT, F(ws_message_bytes_max), "65536",
     "bytes of one client message on a multiplexed WebSocket "
     "(256-1048576)"},
    {"config-file", K_STR, F(config_file), NULL,
     "path to the server configuration file (YAML)"},
};

#define ROWS_COUNT (sizeof(rows) / sizeof(rows[0]))

static void fail(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || err_len == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static const struct row *find_row(const char *name, size_t len)
{
    for (size_t i = 0; i < ROWS_COUNT; i++) {
        if (strlen(rows[i].name) == len &&
            strncmp(rows[i].name, name, len) == 0) {
            return &rows[i];
        }
    }
    return NULL;
}

static int parse_uint(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;
    if (*s == '\0' || *s == '-' || isspace((unsigned char)*s)) {
        return ERR_INVALID;
    }
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return ERR_INVALID;
    }
    *out = v;
    return 0;
}

/* Go duration: a sequence of <number><unit> with units ns us ms s m h; a
 * bare number is taken in bare_unit_ms. Result in milliseconds (rounded
 * down, sub-millisecond parts dropped). */
static int parse_duration(const char *s, uint64_t bare_unit_ms, uint64_t *out)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ns", 1e-6}, {"us", 1e-3}, {"µs", 1e-3}, {"ms", 1.0},
                 {"s", 1e3},   {"m", 6e4},   {"h", 3.6e6}};
    double total = 0;
    uint64_t bare;
    if (parse_uint(s, &bare) == 0) {
        if (bare > UINT64_MAX / bare_unit_ms) {
            return ERR_INVALID;
        }
        *out = bare * bare_unit_ms;
        return 0;
    }
    if (*s == '\0') {
        return ERR_INVALID;
    }
    for (int guard = 0; *s != '\0'; guard++) {
        char *end;
        double v;
        size_t best = 0;
        double mul = 0;
        if (guard > 16 || !(isdigit((unsigned char)*s) || *s == '.')) {
            return ERR_INVALID;
        }
        v = strtod(s, &end);
        if (end == s) {
            return ERR_INVALID;
        }
        s = end;
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t n = strlen(units[i].unit);
            if (strncmp(s, units[i].unit, n) == 0 && n > best &&
                !isalpha((unsigned char)s[n])) {
                best = n;
                mul = units[i].ms;
            }
        }
        if (best == 0) {
            return ERR_INVALID;
        }
        s += best;
        total += v * mul;
    }
    if (total < 0 || total > 1e15) {
        return ERR_INVALID;
    }
    *out = (uint64_t)total;
    return 0;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "1", "t", "yes", "on"};
    static const char *const no[] = {"false", "0", "f", "no", "off"};
    for (size_t i = 0; i < 5; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return ERR_INVALID;
}

static void urls_clear(struct options_urls *u)
{
    for (size_t i = 0; i < u->count; i++) {
        mem_free(u->urls[i]);
        u->urls[i] = NULL;
    }
    u->count = 0;
}

static int urls_parse(struct options_urls *u, const char *s, char *err,
                      size_t err_len, const char *name)
{
    struct options_urls tmp = {.count = 0};
    const char *p = s;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        while (len > 0 && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len > 0 && isspace((unsigned char)p[len - 1])) {
            len--;
        }
        if (len > 0) {
            if (tmp.count == OPTIONS_URLS_MAX) {
                urls_clear(&tmp);
                fail(err, err_len, "--%s: more than %d URLs", name,
                     OPTIONS_URLS_MAX);
                return ERR_INVALID;
            }
            if (!(strncmp(p, "http://", 7) == 0 ||
                  strncmp(p, "https://", 8) == 0 ||
                  strncmp(p, "unix://", 7) == 0 ||
                  strncmp(p, "unixs://", 8) == 0)) {
                fail(err, err_len,
                     "--%s: URL scheme must be http, https, unix or unixs: "
                     "'%.*s'",
                     name, (int)len, p);
                urls_clear(&tmp);
                return ERR_INVALID;
            }
            tmp.urls[tmp.count] = mem_alloc(len + 1);
            if (tmp.urls[tmp.count] == NULL) {
                urls_clear(&tmp);
                return -ENOMEM;
            }
            memcpy(tmp.urls[tmp.count], p, len);
            tmp.urls[tmp.count][len] = '\0';
            tmp.count++;
        }
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    urls_clear(u);
    *u = tmp;
    return 0;
}

static int set_row(struct options *o, const struct row *r, const char *value,
                   char *err, size_t err_len)
{
    void *field = (char *)o + r->off;
    uint64_t n;
    bool b;
    int rc;

    if (strlen(value) > VALUE_BYTES_MAX) {
        fail(err, err_len, "--%s: value longer than %d bytes", r->name,
             VALUE_BYTES_MAX);
        return ERR_INVALID;
    }
    switch (r->kind) {
    case K_STR: {
        char *copy = mem_dup(value, strlen(value) + 1);
        if (copy == NULL) {
            return -ENOMEM;
        }
        mem_free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case K_UINT:
        if (parse_uint(value, &n) != 0) {
            fail(err, err_len, "--%s: not a non-negative integer: '%s'",
                 r->name, value);
            return ERR_INVALID;
        }
        *(uint64_t *)field = n;
        return 0;
    case K_BOOL:
        if (parse_bool(value, &b) != 0) {
            fail(err, err_len, "--%s: not a boolean: '%s'", r->name, value);
            return ERR_INVALID;
        }
        *(bool *)field = b;
        if (r->off == F(store_writemap)) {
            o->store_writemap_given = true;
        }
        return 0;
    case K_MS:
    case K_DURATION:
        if (parse_duration(value, r->kind == K_MS ? 1 : 1000, &n) != 0) {
            fail(err, err_len, "--%s: not a duration (e.g. 100, 5s, 2h): '%s'",
                 r->name, value);
            return ERR_INVALID;
        }
        *(uint64_t *)field = n;
        return 0;
    case K_URLS:
        rc = urls_parse((struct options_urls *)field, value, err, err_len,
                        r->name);
        return rc;
    }
    return ERR_INVALID;
}

int options_set(struct options *o, const char *name, const char *value,
                char *err, size_t err_len)
{
    const struct row *r = find_row(name, strlen(name));
    if (r == NULL) {
        fail(err, err_len, "unknown flag --%s", name);
        return ERR_INVALID;
    }
    return set_row(o, r, value, err, err_len);
}

void options_defaults(struct options *o)
{
    memset(o, 0, sizeof(*o));
    for (size_t i = 0; i < ROWS_COUNT; i++) {
        if (rows[i].def != NULL) {
            int rc = set_row(o, &rows[i], rows[i].def, NULL, 0);
            (void)rc; /* defaults are valid; -ENOMEM leaves the field empty */
        }
    }
    o->store_writemap_given = false;
}

void options_free(struct options *o)
{
    for (size_t i = 0; i < ROWS_COUNT; i++) {
        void *field = (char *)o + rows[i].off;
        if (rows[i].kind == K_STR) {
            mem_free(*(char **)field);
            *(char **)field = NULL;
        } else if (rows[i].kind == K_URLS) {
            urls_clear((struct options_urls *)field);
        }
    }
}

void options_usage(const char *prog)
{
    printf("usage: %s [flags]\n\n"
           "Cairn: an etcd v3 compatible key-value store, registry and "
           "config center.\nEvery flag is also read from CAIRN_<FLAG> "
           "(e.g. CAIRN_DATA_DIR) or ETCD_<FLAG>.\n\n",
           prog);
    for (size_t i = 0; i < ROWS_COUNT; i++) {
        printf("  --%s\n        %s", rows[i].name, rows[i].help);
        if (rows[i].def != NULL && rows[i].def[0] != '\0') {
            printf(" (default %s)", rows[i].def);
        }
        printf("\n");
    }
    printf("  --version\n        print the version and exit\n");
}

/* --- YAML ------------------------------------------------------------------
 * The file is a mapping of flag names to scalars, with TLS settings nested
 * under client-transport-security and peer-transport-security, as in etcd's
 * etcd.conf.yml. Sequences of scalars are joined with commas (for URL
 * lists). Anything else is an error naming the line. */

static const char *tls_key_map(const char *section, const char *key, char *buf,
                               size_t len)
{
    static const char *const keys[] = {"cert-file",       "key-file",
                                       "trusted-ca-file", "client-cert-auth",
                                       "auto-tls",        "crl-file"};
    int known = 0;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(key, keys[i]) == 0) {
            known = 1;
        }
    }
    if (!known) {
        return NULL;
    }
    if (strcmp(section, "peer-transport-security") == 0) {
        snprintf(buf, len, "peer-%s", key);
    } else if (strcmp(key, "crl-file") == 0) {
        snprintf(buf, len, "client-crl-file");
    } else {
        snprintf(buf, len, "%s", key);
    }
    return buf;
}

struct yaml_state {
    yaml_parser_t parser;
    struct options *o;
    char *err;
    size_t err_len;
    const char *path;
};

static int yaml_next(struct yaml_state *st, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&st->parser, ev)) {
        fail(st->err, st->err_len, "config file %s: line %zu: %s", st->path,
             st->parser.problem_mark.line + 1,
             st->parser.problem != NULL ? st->parser.problem
                                        : "malformed YAML");
        return ERR_INVALID;
    }
    return 0;
}

/* Read the value of key: a scalar, or a sequence of scalars joined by ','. */
static int yaml_value(struct yaml_state *st, yaml_event_t *first, char *out,
                      size_t out_len)
{
    size_t len = 0;
    if (first->type == YAML_SCALAR_EVENT) {
        if (first->data.scalar.length >= out_len) {
            fail(st->err, st->err_len, "config file %s: line %zu: too long",
                 st->path, first->start_mark.line + 1);
            return ERR_INVALID;
        }
        memcpy(out, first->data.scalar.value, first->data.scalar.length);
        out[first->data.scalar.length] = '\0';
        return 0;
    }
    if (first->type != YAML_SEQUENCE_START_EVENT) {
        fail(st->err, st->err_len, "config file %s: line %zu: expected a value",
             st->path, first->start_mark.line + 1);
        return ERR_INVALID;
    }
    out[0] = '\0';
    for (int guard = 0; guard <= OPTIONS_URLS_MAX; guard++) {
        yaml_event_t ev;
        int rc = yaml_next(st, &ev);
        if (rc != 0) {
            return rc;
        }
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (ev.type != YAML_SCALAR_EVENT ||
            len + ev.data.scalar.length + 2 >= out_len) {
            fail(st->err, st->err_len,
                 "config file %s: line %zu: expected a list of strings",
                 st->path, ev.start_mark.line + 1);
            yaml_event_delete(&ev);
            return ERR_INVALID;
        }
        if (len > 0) {
            out[len++] = ',';
        }
        memcpy(out + len, ev.data.scalar.value, ev.data.scalar.length);
        len += ev.data.scalar.length;
        out[len] = '\0';
        yaml_event_delete(&ev);
    }
    fail(st->err, st->err_len, "config file %s: list too long", st->path);
    return ERR_INVALID;
}

static int yaml_mapping(struct yaml_state *st, const char *section)
{
    char key[128];
    char mapped[160];
    for (int guard = 0; guard < 1024; guard++) {
        yaml_event_t kev;
        yaml_event_t vev;
        const char *name;
        char *val;
        int rc = yaml_next(st, &kev);
        if (rc != 0) {
            return rc;
        }
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return 0;
        }
        if (kev.type != YAML_SCALAR_EVENT ||
            kev.data.scalar.length >= sizeof(key)) {
            fail(st->err, st->err_len,
                 "config file %s: line %zu: expected a key", st->path,
                 kev.start_mark.line + 1);
            yaml_event_delete(&kev);
            return ERR_INVALID;
        }
        memcpy(key, kev.data.scalar.value, kev.data.scalar.length);
        key[kev.data.scalar.length] = '\0';
        size_t line = kev.start_mark.line + 1;
        yaml_event_delete(&kev);
        rc = yaml_next(st, &vev);
        if (rc != 0) {
            return rc;
        }
        if (section == NULL && vev.type == YAML_MAPPING_START_EVENT &&
            (strcmp(key, "client-transport-security") == 0 ||
             strcmp(key, "peer-transport-security") == 0)) {
            yaml_event_delete(&vev);
            rc = yaml_mapping(st, key);
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        name = section != NULL
                   ? tls_key_map(section, key, mapped, sizeof(mapped))
                   : key;
        if (name == NULL || find_row(name, strlen(name)) == NULL ||
            strcmp(name, "config-file") == 0) {
            fail(st->err, st->err_len,
                 "config file %s: line %zu: unknown key '%s'%s%s", st->path,
                 line, key, section != NULL ? " in " : "",
                 section != NULL ? section : "");
            yaml_event_delete(&vev);
            return ERR_INVALID;
        }
        val = mem_alloc(VALUE_BYTES_MAX * 4);
        if (val == NULL) {
            yaml_event_delete(&vev);
            return -ENOMEM;
        }
        rc = yaml_value(st, &vev, val, VALUE_BYTES_MAX * 4);
        yaml_event_delete(&vev);
        /* YAML's null ("~" or empty) leaves the default in place. */
        if (rc == 0 && strcmp(val, "") != 0 && strcmp(val, "~") != 0 &&
            strcmp(val, "null") != 0) {
            char e2[512];
            rc = options_set(st->o, name, val, e2, sizeof(e2));
            if (rc == ERR_INVALID) {
                fail(st->err, st->err_len, "config file %s: line %zu: %s",
                     st->path, line, e2);
            }
        }
        mem_free(val);
        if (rc != 0) {
            return rc;
        }
    }
    fail(st->err, st->err_len, "config file %s: too many keys", st->path);
    return ERR_INVALID;
}

int options_load_file(struct options *o, const char *path, char *err,
                      size_t err_len)
{
    struct yaml_state st = {
        .o = o, .err = err, .err_len = err_len, .path = path};
    FILE *f = fopen(path, "rb");
    int rc = 0;
    int depth_ok = 0;

    if (f == NULL) {
        fail(err, err_len, "config file %s: %s", path, strerror(errno));
        return ERR_INVALID;
    }
    if (!yaml_parser_initialize(&st.parser)) {
        fclose(f);
        return -ENOMEM;
    }
    yaml_parser_set_input_file(&st.parser, f);
    /* stream start, document start, mapping start, then the mapping */
    for (int i = 0; i < 3 && rc == 0; i++) {
        yaml_event_t ev;
        rc = yaml_next(&st, &ev);
        if (rc != 0) {
            break;
        }
        if (i == 1 && ev.type == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&ev); /* an empty file: all defaults */
            depth_ok = 2;
            break;
        }
        if ((i == 0 && ev.type != YAML_STREAM_START_EVENT) ||
            (i == 1 && ev.type != YAML_DOCUMENT_START_EVENT) ||
            (i == 2 && ev.type != YAML_MAPPING_START_EVENT)) {
            fail(err, err_len,
                 "config file %s: line %zu: the top level must be a mapping "
                 "of option names to values",
                 path, ev.start_mark.line + 1);
            rc = ERR_INVALID;
        }
        yaml_event_delete(&ev);
        depth_ok = i + 1;
    }
    if (rc == 0 && depth_ok == 3) {
        rc = yaml_mapping(&st, NULL);
    }
    yaml_parser_delete(&st.parser);
    fclose(f);
    return rc;
}

/* --- command line and environment ------------------------------------------*/

static int parse_env(struct options *o, char **envp, char *err, size_t err_len)
{
    extern char **environ;
    char **env = envp != NULL ? envp : environ;
    for (size_t i = 0; env != NULL && env[i] != NULL; i++) {
        const char *e = env[i];
        const char *eq = strchr(e, '=');
        char name[128];
        size_t plen;
        if (eq == NULL) {
            continue;
        }
        if (strncmp(e, "CAIRN_", 6) == 0) {
            plen = 6;
        } else if (strncmp(e, "ETCD_", 5) == 0) {
            plen = 5;
        } else {
            continue;
        }
        size_t nlen = (size_t)(eq - e) - plen;
        if (nlen == 0 || nlen >= sizeof(name)) {
            continue;
        }
        for (size_t j = 0; j < nlen; j++) {
            char c = e[plen + j];
            name[j] = c == '_' ? '-' : (char)tolower((unsigned char)c);
        }
        name[nlen] = '\0';
        const struct row *r = find_row(name, nlen);
        if (r == NULL) {
            /* Unknown CAIRN_ variables are an error (a typo should not be
             * silently ignored); unknown ETCD_ ones are left alone, since
             * the environment may hold settings for other etcd tools
             * (ETCDCTL_API is a different prefix and never matches). */
            /* CAIRN_BUILD, CAIRN_ROOT, CAIRN_TIMEOUT_SCALE and CAIRN_TEST_*
             * belong to the test harness, not to cairnd's settings. */
            if (plen == 6 && strcmp(name, "build") != 0 &&
                strcmp(name, "root") != 0 &&
                strcmp(name, "timeout-scale") != 0 &&
                strncmp(name, "test-", 5) != 0) {
                fail(err, err_len, "unknown environment variable %.*s",
                     (int)(eq - e), e);
                return ERR_INVALID;
            }
            continue;
        }
        char e2[512];
        int rc = set_row(o, r, eq + 1, e2, sizeof(e2));
        if (rc != 0) {
            fail(err, err_len, "environment variable %.*s: %s", (int)(eq - e),
                 e, e2);
            return rc;
        }
        o->initial_cluster_given |= r->off == F(initial_cluster);
    }
    return 0;
}

static int parse_args(struct options *o, int argc, char **argv, char *err,
                      size_t err_len)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *name;
        const char *eq;
        const char *value;
        size_t nlen;
        const struct row *r;

        if (a[0] != '-') {
            fail(err, err_len, "unexpected argument '%s'", a);
            return ERR_INVALID;
        }
        name = a + (a[1] == '-' ? 2 : 1); /* Go accepts -flag and --flag */
        eq = strchr(name, '=');
        nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
        if (nlen == 4 && strncmp(name, "help", 4) == 0) {
            options_usage(argv[0]);
            return 1;
        }
        if (nlen == 7 && strncmp(name, "version", 7) == 0) {
            printf("cairnd Version: %s\netcd API compatible: 3.5\n",
                   CAIRN_BUILD_ID);
            return 1;
        }
        r = find_row(name, nlen);
        if (r == NULL) {
            fail(err, err_len, "unknown flag --%.*s", (int)nlen, name);
            return ERR_INVALID;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (r->kind == K_BOOL) {
            value = "true"; /* a bare boolean flag sets it */
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fail(err, err_len, "flag needs an argument: --%s", r->name);
            return ERR_INVALID;
        }
        int rc = set_row(o, r, value, err, err_len);
        if (rc != 0) {
            return rc;
        }
        o->initial_cluster_given |= r->off == F(initial_cluster);
    }
    return 0;
}

static int fill_derived(struct options *o)
{
    if (o->data_dir == NULL || o->data_dir[0] == '\0') {
        size_t len = strlen(o->name) + 6;
        char *d = mem_alloc(len);
        if (d == NULL) {
            return -ENOMEM;
        }
        snprintf(d, len, "%s.etcd", o->name);
        mem_free(o->data_dir);
        o->data_dir = d;
    }
    if (o->store_writemap && !o->store_writemap_given &&
        o->store_checkpoint != NULL &&
        strcmp(o->store_checkpoint, "in-place") == 0) {
        o->store_writemap = false; /* the default gives way (validate) */
    }
    return 0;
}

int options_parse(struct options *o, int argc, char **argv, char **envp,
                  char *err, size_t err_len)
{
    struct options flags;
    int rc;

    /* Flags first into a scratch copy: we need --config-file before we know
     * whether flags count at all. */
    options_defaults(&flags);
    rc = parse_env(&flags, envp, err, err_len);
    if (rc == 0) {
        rc = parse_args(&flags, argc, argv, err, err_len);
    }
    if (rc != 0) {
        options_free(&flags);
        return rc;
    }
    if (flags.config_file != NULL && flags.config_file[0] != '\0') {
        char *path = mem_dup(flags.config_file, strlen(flags.config_file) + 1);
        options_free(&flags);
        if (path == NULL) {
            return -ENOMEM;
        }
        /* etcd: a config file replaces flags and environment entirely. */
        rc = options_load_file(o, path, err, err_len);
        if (rc == 0) {
            mem_free(o->config_file);
            o->config_file = path;
        } else {
            mem_free(path);
        }
    } else {
        options_free(o);
        *o = flags;
    }
    if (rc == 0) {
        rc = fill_derived(o);
    }
    if (rc == 0) {
        rc = options_validate(o, err, err_len);
    }
    return rc;
}

/* --discovery-srv replaces --initial-cluster. etcd refuses both together;
 * like etcd, an --initial-cluster equal to the default counts as not given
 * when it comes from a config file (etcd cannot tell there either). */
static int validate_discovery_srv(const struct options *o, char *err,
                                  size_t err_len)
{
    char ssl[DISCOVERY_SRV_HOST_MAX + 1];
    char plain[DISCOVERY_SRV_HOST_MAX + 1];
    bool srv = o->discovery_srv != NULL && o->discovery_srv[0] != '\0';
    bool named =
        o->discovery_srv_name != NULL && o->discovery_srv_name[0] != '\0';
    bool given = o->initial_cluster_given ||
                 strcmp(o->initial_cluster, INITIAL_CLUSTER_DEFAULT) != 0;
    if (srv && given) {
        fail(err, err_len,
             "multiple discovery or bootstrap flags are set. Choose one of "
             "\"initial-cluster\", \"discovery\" or \"discovery-srv\"");
        return ERR_INVALID;
    }
    if (named && !srv) {
        fail(err, err_len,
             "--discovery-srv-name: needs --discovery-srv (the domain to "
             "query)");
        return ERR_INVALID;
    }
    if (!srv) {
        return 0;
    }
    return discovery_srv_qnames(o->discovery_srv, o->discovery_srv_name, ssl,
                                plain, sizeof(ssl), err, err_len);
}

/* The registry's bounds: each within 1 (0 for the metrics cap) and its
 * compile-time hard maximum (services.h says why each). */
static int validate_registry(const struct options *o, char *err, size_t err_len)
{
    const struct {
        const char *name;
        uint64_t v, lo, hi;
    } b[] = {
        {"registry-probes-max", o->registry_probes_max, 1, SVC_PROBES_HARD_MAX},
        {"registry-probe-instances-max", o->registry_probe_instances_max, 1,
         SVC_PROBE_INSTANCES_HARD_MAX},
        {"registry-probe-writes-max", o->registry_probe_writes_max, 1,
         SVC_PROBE_WRITES_HARD_MAX},
        {"registry-metrics-services-max", o->registry_metrics_services_max, 0,
         SVC_GAUGE_SERVICES_HARD_MAX},
        {"ws-subscriptions-max", o->ws_subscriptions_max, 1,
         HTTP_MUX_SUBS_HARD_MAX},
        {"ws-message-bytes-max", o->ws_message_bytes_max, 256,
         HTTP_MUX_MSG_BYTES_HARD_MAX},
    };
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
        if (b[i].v < b[i].lo || b[i].v > b[i].hi) {
            fail(err, err_len, "--%s: must be %" PRIu64 "..%" PRIu64, b[i].name,
                 b[i].lo, b[i].hi);
            return ERR_INVALID;
        }
    }
    return 0;
}

/* The client port's hardening bounds (docs/hardening.md). Header bytes
 * stop at 65535: libwebsockets keeps the header table's size in 16 bits. */
static int validate_hardening(const struct options *o, char *err,
                              size_t err_len)
{
    const struct {
        const char *name;
        uint64_t v, lo, hi;
        const char *unit;
    } b[] = {
        {"max-header-bytes", o->max_header_bytes, 1024, 65535, ""},
        {"max-conn-out-bytes", o->max_conn_out_bytes, 65536,
         limits_hard_max(LIMIT_CONN_OUT_BYTES), ""},
        {"http-header-timeout", o->http_header_timeout_ms, 1000, 600000, " ms"},
        {"idle-timeout", o->idle_timeout_ms, 1000, 86400000, " ms"},
        {"stall-timeout", o->stall_timeout_ms, 1000, 3600000, " ms"},
        {"http2-reset-burst", o->http2_reset_burst, 1, 100000, ""},
        {"http2-reset-rate", o->http2_reset_rate, 1, 100000, ""},
    };
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++) {
        if (b[i].v < b[i].lo || b[i].v > b[i].hi) {
            fail(err, err_len, "--%s: must be %" PRIu64 "..%" PRIu64 "%s",
                 b[i].name, b[i].lo, b[i].hi, b[i].unit);
            return ERR_INVALID;
        }
    }
    return 0;
}

int options_validate(const struct options *o, char *err, size_t err_len)
{
    uint64_t retention;
    int rc;
    if (o->name == NULL || o->name[0] == '\0') {
        fail(err, err_len, "--name: must not be empty");
        return ERR_INVALID;
    }
    if (o->raft_log_memory_bytes < ((uint64_t)1 << 20) ||
        o->raft_log_memory_bytes > ((uint64_t)64 << 30)) {
        fail(err, err_len,
             "--raft-log-memory-bytes: must be 1048576..68719476736");
        return ERR_INVALID;
    }
    if (o->store_resident_bytes < ((uint64_t)1 << 20) ||
        o->store_resident_bytes > ((uint64_t)1 << 40)) {
        fail(err, err_len,
             "--store-resident-bytes: must be 1048576..1099511627776");
        return ERR_INVALID;
    }
    if (o->heartbeat_interval_ms == 0) {
        fail(err, err_len, "--heartbeat-interval: must be > 0");
        return ERR_INVALID;
    }
    if (o->election_timeout_ms < 5 * o->heartbeat_interval_ms) {
        fail(err, err_len,
             "--election-timeout[%" PRIu64
             "] should be at least as 5 times as --heartbeat-interval[%" PRIu64
             "]",
             o->election_timeout_ms, o->heartbeat_interval_ms);
        return ERR_INVALID;
    }
    if (o->election_timeout_ms > 50000) {
        fail(err, err_len,
             "--election-timeout[%" PRIu64 "] is too long, and should be set "
             "less than 50 seconds",
             o->election_timeout_ms);
        return ERR_INVALID;
    }
    if (strcmp(o->initial_cluster_state, "new") != 0 &&
        strcmp(o->initial_cluster_state, "existing") != 0) {
        fail(err, err_len,
             "--initial-cluster-state: must be 'new' or 'existing', not '%s'",
             o->initial_cluster_state);
        return ERR_INVALID;
    }
    if (strcmp(o->store_checkpoint, "copy") != 0 &&
        strcmp(o->store_checkpoint, "in-place") != 0 &&
        strcmp(o->store_checkpoint, "auto") != 0) {
        fail(err, err_len,
             "--store-checkpoint: must be 'auto', 'copy' or 'in-place', not "
             "'%s'",
             o->store_checkpoint);
        return ERR_INVALID;
    }
    if (o->store_writemap && strcmp(o->store_checkpoint, "in-place") == 0) {
        /* each checkpoint's sync write-protects every mapped page it
         * writes and each is faulted in again: 3x slower (BENCHMARKS.md) */
        fail(err, err_len,
             "--store-writemap: not with --store-checkpoint in-place (use "
             "'auto' or 'copy')");
        return ERR_INVALID;
    }
    if (strcmp(o->auto_compaction_mode, "periodic") != 0 &&
        strcmp(o->auto_compaction_mode, "revision") != 0) {
        fail(err, err_len,
             "--auto-compaction-mode: must be 'periodic' or 'revision', not "
             "'%s'",
             o->auto_compaction_mode);
        return ERR_INVALID;
    }
    if (strcmp(o->auto_compaction_mode, "revision") == 0
            ? parse_uint(o->auto_compaction_retention, &retention) != 0
            : parse_duration(o->auto_compaction_retention, 3600000,
                             &retention) != 0) {
        fail(err, err_len, "--auto-compaction-retention: invalid value '%s'",
             o->auto_compaction_retention);
        return ERR_INVALID;
    }
    if (o->listen_client_urls.count == 0) {
        fail(err, err_len, "--listen-client-urls: at least one URL needed");
        return ERR_INVALID;
    }
    if (o->max_request_bytes == 0 || o->max_request_bytes > 67108864) {
        fail(err, err_len, "--max-request-bytes: must be 1..67108864");
        return ERR_INVALID;
    }
    if (o->max_connections == 0 ||
        o->max_connections > limits_hard_max(LIMIT_CONNECTIONS)) {
        fail(err, err_len, "--max-connections: must be 1..%" PRIu64,
             limits_hard_max(LIMIT_CONNECTIONS));
        return ERR_INVALID;
    }
    rc = validate_hardening(o, err, err_len);
    if (rc != 0) {
        return rc;
    }
    if (o->config_history == 0 || o->config_history > 10000) {
        fail(err, err_len, "--config-history: must be 1..10000");
        return ERR_INVALID;
    }
    if (o->audit_retention_records == 0 ||
        o->audit_retention_records > 10000000) {
        fail(err, err_len, "--audit-retention-records: must be 1..10000000");
        return ERR_INVALID;
    }
    if (o->max_txn_ops == 0 || o->max_txn_ops > 65536) {
        fail(err, err_len, "--max-txn-ops: must be 1..65536");
        return ERR_INVALID;
    }
    if (o->bcrypt_cost < 4 || o->bcrypt_cost > 31) {
        fail(err, err_len, "--bcrypt-cost: must be 4..31");
        return ERR_INVALID;
    }
    /* etcd refuses an unknown type ("auth: invalid auth options"); taking
     * it for "simple" would hide a setting the operator meant */
    if (strcmp(o->auth_token, "simple") != 0) {
        char t[40];
        snprintf(t, sizeof(t), "%.*s", (int)strcspn(o->auth_token, ","),
                 o->auth_token);
        if (strcmp(t, "jwt") != 0) {
            fail(err, err_len,
                 "--auth-token: unknown token type \"%s\" (auth: invalid "
                 "auth options); use 'simple' or 'jwt,...'",
                 t);
            return ERR_INVALID;
        }
        /* the jwt options and keys are checked at start (auth_jwt.c) */
    }
    if (strcmp(o->log_level, "debug") != 0 &&
        strcmp(o->log_level, "info") != 0 &&
        strcmp(o->log_level, "warn") != 0 &&
        strcmp(o->log_level, "error") != 0 &&
        strcmp(o->log_level, "panic") != 0 &&
        strcmp(o->log_level, "dpanic") != 0 &&
        strcmp(o->log_level, "fatal") != 0) {
        fail(err, err_len, "--log-level: unknown level '%s'", o->log_level);
        return ERR_INVALID;
    }
    if (strcmp(o->log_format, "text") != 0 &&
        strcmp(o->log_format, "json") != 0) {
        fail(err, err_len, "--log-format: must be 'text' or 'json'");
        return ERR_INVALID;
    }
    if (o->discovery != NULL && o->discovery[0] != '\0') {
        fail(err, err_len,
             "--discovery: v2 discovery URLs are not supported; use "
             "--discovery-srv or --initial-cluster");
        return ERR_INVALID;
    }
    rc = validate_discovery_srv(o, err, err_len);
    if (rc != 0) {
        return rc;
    }
    if (o->enable_v2) {
        fail(err, err_len, "--enable-v2: the v2 API is not supported");
        return ERR_INVALID;
    }
    if (o->force_new_cluster) {
        /* etcd rewrites the membership to this member alone; taking that
         * silently as a no-op would leave the operator waiting for a
         * quorum that is gone */
        fail(err, err_len,
             "--force-new-cluster: not supported; to recover from a lost "
             "quorum, save a snapshot of a surviving member (cairnctl "
             "snapshot save, or its data.mdb) and start a new cluster "
             "from it (cairnd snapshot restore)");
        return ERR_INVALID;
    }
    return validate_registry(o, err, err_len);
}

/*
 * test_options.c - cairnd's settings: flags, environment, YAML file.
 * Goal: every source maps to the same table, with etcd's names and defaults,
 * and every bad input fails with a message naming the option.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/err.h"
#include "base/limits.h"
#include "registry/server/options.h"

static char err[512];

static int parse(struct options *o, char **envp, int argc, ...)
{
    char *argv[32];
    va_list ap;
    argv[0] = "cairnd";
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i + 1] = va_arg(ap, char *);
    }
    va_end(ap);
    err[0] = '\0';
    options_defaults(o);
    return options_parse(o, argc + 1, argv, envp, err, sizeof(err));
}

static char *empty_env[] = {NULL};

static void defaults_are_etcds(void **state)
{
    struct options o;
    (void)state;
    assert_int_equal(parse(&o, empty_env, 0), 0);
    assert_string_equal(o.name, "default");
    assert_string_equal(o.data_dir, "default.etcd");
    assert_int_equal(o.heartbeat_interval_ms, 100);
    assert_int_equal(o.election_timeout_ms, 1000);
    assert_int_equal(o.snapshot_count, 100000);
    assert_int_equal(o.max_txn_ops, 128);
    assert_int_equal(o.max_request_bytes, 1572864);
    assert_int_equal(o.grpc_keepalive_min_time_ms, 5000);
    assert_int_equal(o.grpc_keepalive_interval_ms, 7200000);
    assert_int_equal(o.listen_client_urls.count, 1);
    assert_string_equal(o.listen_client_urls.urls[0], "http://localhost:2379");
    assert_string_equal(o.initial_cluster, "default=http://localhost:2380");
    assert_string_equal(o.initial_cluster_state, "new");
    assert_string_equal(o.store_checkpoint, "auto"); /* the default */
    assert_true(o.store_writemap);
    assert_string_equal(o.initial_cluster_token, "etcd-cluster");
    assert_true(o.strict_reconfig_check);
    options_free(&o);
}

static void flags_take_both_forms_and_name_the_data_dir(void **state)
{
    struct options o;
    (void)state;
    assert_int_equal(parse(&o, empty_env, 7, "--name", "m1",
                           "--election-timeout=2000", "-heartbeat-interval",
                           "200", "--listen-client-urls",
                           "http://127.0.0.1:2379,http://127.0.0.1:22379"),
                     0);
    assert_string_equal(o.name, "m1");
    assert_string_equal(o.data_dir, "m1.etcd");
    assert_int_equal(o.election_timeout_ms, 2000);
    assert_int_equal(o.heartbeat_interval_ms, 200);
    assert_int_equal(o.listen_client_urls.count, 2);
    assert_string_equal(o.listen_client_urls.urls[1], "http://127.0.0.1:22379");
    options_free(&o);
}

static void unknown_and_invalid_flags_are_named(void **state)
{
    struct options o;
    (void)state;
    assert_int_equal(parse(&o, empty_env, 1, "--no-such-flag"), ERR_INVALID);
    assert_string_equal(err, "unknown flag --no-such-flag");
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 2, "--snapshot-count", "abc"),
                     ERR_INVALID);
    assert_non_null(strstr(err, "--snapshot-count"));
    assert_non_null(strstr(err, "'abc'"));
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 1, "--data-dir"), ERR_INVALID);
    assert_string_equal(err, "flag needs an argument: --data-dir");
    options_free(&o);
    /* taken as a no-op it would leave the operator waiting for a quorum */
    assert_int_equal(parse(&o, empty_env, 1, "--force-new-cluster"),
                     ERR_INVALID);
    assert_non_null(strstr(err, "snapshot restore"));
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 1, "--force-new-cluster=false"), 0);
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 2, "--election-timeout", "400"),
                     ERR_INVALID);
    assert_non_null(strstr(err, "at least as 5 times"));
    options_free(&o);
    assert_int_equal(
        parse(&o, empty_env, 2, "--listen-client-urls", "ftp://x:1"),
        ERR_INVALID);
    assert_non_null(strstr(err, "--listen-client-urls"));
    options_free(&o);
    assert_int_equal(
        parse(&o, empty_env, 2, "--initial-cluster-state", "maybe"),
        ERR_INVALID);
    assert_non_null(strstr(err, "--initial-cluster-state"));
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 2, "--store-checkpoint", "sometimes"),
                     ERR_INVALID);
    assert_non_null(strstr(err, "must be 'auto', 'copy' or 'in-place'"));
    options_free(&o);
    for (int i = 0; i < 3; i++) {
        const char *kinds[] = {"auto", "copy", "in-place"};
        assert_int_equal(
            parse(&o, empty_env, 2, "--store-checkpoint", kinds[i]), 0);
        assert_string_equal(o.store_checkpoint, kinds[i]);
        /* writemap is on by default, but not with in-place checkpoints */
        assert_true(o.store_writemap == (i != 2));
        options_free(&o);
    }
    assert_int_equal(parse(&o, empty_env, 1, "--store-writemap"), 0);
    assert_true(o.store_writemap);
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 1, "--store-writemap=false"), 0);
    assert_false(o.store_writemap);
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 1, "--store-writemap=maybe"),
                     ERR_INVALID);
    assert_non_null(strstr(err, "--store-writemap"));
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 3, "--store-writemap",
                           "--store-checkpoint", "in-place"),
                     ERR_INVALID);
    assert_non_null(strstr(err, "not with --store-checkpoint in-place"));
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 3, "--store-writemap",
                           "--store-checkpoint", "copy"),
                     0);
    options_free(&o);
    /* given false, in place is fine; given true (above), refused */
    assert_int_equal(parse(&o, empty_env, 3, "--store-writemap=false",
                           "--store-checkpoint", "in-place"),
                     0);
    assert_false(o.store_writemap);
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 0), 0);
    assert_int_equal(o.store_resident_bytes, (uint64_t)256 << 20);
    options_free(&o);
    assert_int_equal(
        parse(&o, empty_env, 2, "--store-resident-bytes", "1048576"), 0);
    assert_int_equal(o.store_resident_bytes, (uint64_t)1 << 20);
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 2, "--store-resident-bytes", "4096"),
                     ERR_INVALID);
    assert_non_null(strstr(err, "--store-resident-bytes"));
    options_free(&o);
    assert_int_equal(
        parse(&o, empty_env, 2, "--grpc-keepalive-min-time", "5 parsecs"),
        ERR_INVALID);
    assert_non_null(strstr(err, "--grpc-keepalive-min-time"));
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 1, "stray"), ERR_INVALID);
    options_free(&o);
}

static void environment_feeds_every_flag(void **state)
{
    struct options o;
    char *env[] = {"CAIRN_NAME=envname",
                   "ETCD_SNAPSHOT_COUNT=5",
                   "CAIRN_PRE_VOTE=false",
                   "ETCDCTL_API=3",
                   "PATH=/bin",
                   NULL};
    char *bad_env[] = {"CAIRN_NO_SUCH=1", NULL};
    (void)state;
    assert_int_equal(parse(&o, env, 0), 0);
    assert_string_equal(o.name, "envname");
    assert_int_equal(o.snapshot_count, 5);
    assert_false(o.pre_vote);
    options_free(&o);
    /* flags win over the environment */
    assert_int_equal(parse(&o, env, 2, "--name", "flag"), 0);
    assert_string_equal(o.name, "flag");
    options_free(&o);
    assert_int_equal(parse(&o, bad_env, 0), ERR_INVALID);
    assert_non_null(strstr(err, "CAIRN_NO_SUCH"));
    options_free(&o);
}

static const char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/cairn-opt-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void config_file_replaces_flags_with_etcd_keys(void **state)
{
    struct options o;
    const char *path = write_file(
        "# a member\n"
        "name: 'infra1'\n"
        "data-dir: /var/lib/x\n"
        "election-timeout: 1500\n"
        "listen-client-urls: http://127.0.0.1:2379,http://10.0.0.1:2379\n"
        "initial-advertise-peer-urls:\n  - http://127.0.0.1:2380\n"
        "initial-cluster-state: 'existing'\n"
        "auto-compaction-retention: \"1\"\n"
        "wal-dir:\n"
        "client-transport-security:\n"
        "  cert-file: /c.pem\n"
        "  client-cert-auth: true\n"
        "peer-transport-security:\n"
        "  key-file: /pk.pem\n");
    char arg[128];
    (void)state;
    snprintf(arg, sizeof(arg), "--config-file=%s", path);
    assert_int_equal(parse(&o, empty_env, 3, arg, "--name", "ignored"), 0);
    assert_string_equal(o.name, "infra1");
    assert_string_equal(o.data_dir, "/var/lib/x");
    assert_int_equal(o.election_timeout_ms, 1500);
    assert_int_equal(o.listen_client_urls.count, 2);
    assert_int_equal(o.initial_advertise_peer_urls.count, 1);
    assert_string_equal(o.initial_cluster_state, "existing");
    assert_string_equal(o.client_tls.cert_file, "/c.pem");
    assert_true(o.client_tls.client_cert_auth);
    assert_string_equal(o.peer_tls.key_file, "/pk.pem");
    assert_null(o.wal_dir);
    options_free(&o);
    unlink(path);
}

static void bad_config_files_name_the_line(void **state)
{
    struct options o;
    char arg[128];
    static const char *const cases[][2] = {
        {"name: a\nbogus-key: 1\n", "line 2: unknown key 'bogus-key'"},
        {"name: [a, b\n", "config file"},
        {"- a\n- b\n", "top level must be a mapping"},
        {"snapshot-count: many\n", "line 1: --snapshot-count"},
        {"client-transport-security:\n  nope: 1\n", "unknown key 'nope'"},
        {"name: {a: b}\n", "expected a value"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = write_file(cases[i][0]);
        snprintf(arg, sizeof(arg), "--config-file=%s", path);
        assert_int_equal(parse(&o, empty_env, 1, arg), ERR_INVALID);
        if (strstr(err, cases[i][1]) == NULL) {
            fail_msg("case %zu: '%s' does not contain '%s'", i, err,
                     cases[i][1]);
        }
        options_free(&o);
        unlink(path);
    }
    assert_int_equal(parse(&o, empty_env, 1, "--config-file=/nonexistent/x"),
                     ERR_INVALID);
    assert_non_null(strstr(err, "/nonexistent/x"));
    options_free(&o);
}

/* The registry's bounds: defaults, each source, and refusals at 0 and one
 * past each hard maximum (naming the flag). */
static void registry_bounds_from_every_source(void **state)
{
    struct options o;
    char arg[128];
    char *env[] = {"CAIRN_REGISTRY_PROBES_MAX=7",
                   "CAIRN_REGISTRY_PROBE_WRITES_MAX=3", NULL};
    static const char *const bad[][2] = {
        {"--registry-probes-max=0", "--registry-probes-max: must be 1..4096"},
        {"--registry-probes-max=4097", "--registry-probes-max"},
        {"--registry-probe-instances-max=0", "--registry-probe-instances-max"},
        {"--registry-probe-instances-max=100001",
         "--registry-probe-instances-max: must be 1..100000"},
        {"--registry-probe-writes-max=1025", "--registry-probe-writes-max"},
        {"--registry-metrics-services-max=10001",
         "--registry-metrics-services-max: must be 0..10000"},
    };
    (void)state;
    assert_int_equal(parse(&o, empty_env, 0), 0);
    assert_int_equal(o.registry_probes_max, 256);
    assert_int_equal(o.registry_probe_instances_max, 100000);
    assert_int_equal(o.registry_probe_writes_max, 64);
    assert_int_equal(o.registry_metrics_services_max, 1000);
    options_free(&o);
    assert_int_equal(parse(&o, env, 2, "--registry-probe-instances-max", "9"),
                     0);
    assert_int_equal(o.registry_probes_max, 7);
    assert_int_equal(o.registry_probe_writes_max, 3);
    assert_int_equal(o.registry_probe_instances_max, 9);
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 2, "--registry-probes-max=4096",
                           "--registry-metrics-services-max=0"),
                     0);
    assert_int_equal(o.registry_probes_max, 4096);
    assert_int_equal(o.registry_metrics_services_max, 0);
    options_free(&o);
    const char *path = write_file("registry-probes-max: 5\n"
                                  "registry-probe-instances-max: 11\n"
                                  "registry-probe-writes-max: 2\n"
                                  "registry-metrics-services-max: 4\n");
    snprintf(arg, sizeof(arg), "--config-file=%s", path);
    assert_int_equal(parse(&o, empty_env, 1, arg), 0);
    assert_int_equal(o.registry_probes_max, 5);
    assert_int_equal(o.registry_probe_instances_max, 11);
    assert_int_equal(o.registry_probe_writes_max, 2);
    assert_int_equal(o.registry_metrics_services_max, 4);
    options_free(&o);
    unlink(path);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&o, empty_env, 1, bad[i][0]), ERR_INVALID);
        if (strstr(err, bad[i][1]) == NULL) {
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, bad[i][1]);
        }
        options_free(&o);
    }
}

/* The multiplexed WebSocket's bounds: defaults, environment and YAML,
 * the bound itself, and one past each end (naming the flag). */
/* --max-connections (LIMIT_CONNECTIONS), which no source reached before:
 * the default is the limits table's, each source sets it, the bound and
 * one past it. */
static void connections_bound_from_every_source(void **state)
{
    struct options o;
    char arg[128];
    char *env[] = {"CAIRN_MAX_CONNECTIONS=20000", NULL};
    static const char *const bad[][2] = {
        {"--max-connections=0", "--max-connections: must be 1..1000000"},
        {"--max-connections=1000001", "--max-connections: must be 1..1000000"},
        {"--max-connections=-1", "max-connections"},
        {"--max-connections=many", "max-connections"},
    };
    (void)state;
    assert_int_equal(parse(&o, empty_env, 0), 0);
    assert_int_equal(o.max_connections, limits_default(LIMIT_CONNECTIONS));
    assert_int_equal(o.max_connections, 10000);
    options_free(&o);
    assert_int_equal(parse(&o, env, 1, "--max-connections=1000000"), 0);
    assert_int_equal(o.max_connections, 1000000); /* the bound; flag wins */
    options_free(&o);
    assert_int_equal(parse(&o, env, 0), 0);
    assert_int_equal(o.max_connections, 20000);
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 2, "--max-connections", "1"), 0);
    assert_int_equal(o.max_connections, 1);
    options_free(&o);
    const char *path = write_file("max-connections: 12345\n");
    snprintf(arg, sizeof(arg), "--config-file=%s", path);
    assert_int_equal(parse(&o, empty_env, 1, arg), 0);
    assert_int_equal(o.max_connections, 12345);
    options_free(&o);
    unlink(path);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&o, empty_env, 1, bad[i][0]), ERR_INVALID);
        if (strstr(err, bad[i][1]) == NULL) {
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, bad[i][1]);
        }
        options_free(&o);
    }
}

/* --auth-token: "simple" or "jwt,..."; an unknown type stops the start
 * with its name, as etcd's "auth: invalid auth options" does (the jwt
 * options and key files are checked at start: tests/compat/auth_jwt.test). */
static void auth_token_type_checked(void **state)
{
    struct options o;
    static const char *const bad[][2] = {
        {"--auth-token=bogus", "unknown token type \"bogus\""},
        {"--auth-token=jwtx,sign-method=RS256", "unknown token type \"jwtx\""},
        {"--auth-token=", "unknown token type \"\""},
        {"--auth-token=Simple", "unknown token type \"Simple\""},
    };
    (void)state;
    assert_int_equal(parse(&o, empty_env, 0), 0);
    assert_string_equal(o.auth_token, "simple");
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 1, "--auth-token=simple"), 0);
    options_free(&o);
    assert_int_equal(
        parse(&o, empty_env, 1,
              "--auth-token=jwt,pub-key=a.pub,priv-key=a,sign-method=RS256"),
        0);
    options_free(&o);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&o, empty_env, 1, bad[i][0]), ERR_INVALID);
        if (strstr(err, bad[i][1]) == NULL) {
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, bad[i][1]);
        }
        options_free(&o);
    }
}

static void ws_bounds_from_every_source(void **state)
{
    struct options o;
    char arg[128];
    char *env[] = {"CAIRN_WS_SUBSCRIPTIONS_MAX=9", NULL};
    static const char *const bad[][2] = {
        {"--ws-subscriptions-max=0", "--ws-subscriptions-max: must be 1..4096"},
        {"--ws-subscriptions-max=4097", "--ws-subscriptions-max"},
        {"--ws-message-bytes-max=255",
         "--ws-message-bytes-max: must be 256..1048576"},
        {"--ws-message-bytes-max=1048577", "--ws-message-bytes-max"},
    };
    (void)state;
    assert_int_equal(parse(&o, empty_env, 0), 0);
    assert_int_equal(o.ws_subscriptions_max, 256);
    assert_int_equal(o.ws_message_bytes_max, 65536);
    options_free(&o);
    assert_int_equal(parse(&o, env, 2, "--ws-message-bytes-max=256",
                           "--ws-subscriptions-max=4096"),
                     0);
    assert_int_equal(o.ws_subscriptions_max, 4096); /* the flag wins */
    assert_int_equal(o.ws_message_bytes_max, 256);
    options_free(&o);
    assert_int_equal(parse(&o, env, 0), 0);
    assert_int_equal(o.ws_subscriptions_max, 9);
    options_free(&o);
    const char *path = write_file("ws-subscriptions-max: 3\n"
                                  "ws-message-bytes-max: 1048576\n");
    snprintf(arg, sizeof(arg), "--config-file=%s", path);
    assert_int_equal(parse(&o, empty_env, 1, arg), 0);
    assert_int_equal(o.ws_subscriptions_max, 3);
    assert_int_equal(o.ws_message_bytes_max, 1048576);
    options_free(&o);
    unlink(path);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&o, empty_env, 1, bad[i][0]), ERR_INVALID);
        if (strstr(err, bad[i][1]) == NULL) {
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, bad[i][1]);
        }
        options_free(&o);
    }
}

/* The client port's hardening bounds (docs/hardening.md): defaults, each
 * at its bounds from a flag, the environment and the config file, and one
 * past each refused with the flag's name and range. */
static void hardening_bounds_from_every_source(void **state)
{
    struct options o;
    char arg[128];
    char *env[] = {"CAIRN_IDLE_TIMEOUT=90s", "ETCD_HTTP2_RESET_RATE=7", NULL};
    static const char *const bad[][2] = {
        {"--max-header-bytes=1023", "--max-header-bytes: must be 1024..65535"},
        {"--max-header-bytes=65536", "--max-header-bytes"},
        {"--max-conn-out-bytes=65535", "--max-conn-out-bytes: must be 65536.."},
        {"--max-conn-out-bytes=1073741825", "--max-conn-out-bytes"},
        {"--http-header-timeout=999ms",
         "--http-header-timeout: must be 1000..600000 ms"},
        {"--http-header-timeout=10m1s", "--http-header-timeout"},
        {"--idle-timeout=0", "--idle-timeout: must be 1000..86400000 ms"},
        {"--idle-timeout=25h", "--idle-timeout"},
        {"--stall-timeout=500ms", "--stall-timeout: must be 1000..3600000 ms"},
        {"--stall-timeout=2h", "--stall-timeout"},
        {"--http2-reset-burst=0", "--http2-reset-burst: must be 1..100000"},
        {"--http2-reset-rate=100001", "--http2-reset-rate: must be 1..100000"},
    };
    (void)state;
    assert_int_equal(parse(&o, empty_env, 0), 0);
    assert_int_equal(o.max_header_bytes, 16384);
    assert_int_equal(o.max_conn_out_bytes, 16777216);
    assert_int_equal(o.http_header_timeout_ms, 10000);
    assert_int_equal(o.idle_timeout_ms, 600000);
    assert_int_equal(o.stall_timeout_ms, 15000);
    assert_int_equal(o.http2_reset_burst, 1000);
    assert_int_equal(o.http2_reset_rate, 33);
    options_free(&o);
    assert_int_equal(parse(&o, env, 6, "--max-header-bytes=65535",
                           "--http-header-timeout=1s", "--idle-timeout=24h",
                           "--stall-timeout=1h", "--http2-reset-burst=1",
                           "--max-conn-out-bytes=65536"),
                     0);
    assert_int_equal(o.max_header_bytes, 65535);
    assert_int_equal(o.http_header_timeout_ms, 1000);
    assert_int_equal(o.idle_timeout_ms, 86400000); /* the flag wins */
    assert_int_equal(o.stall_timeout_ms, 3600000);
    assert_int_equal(o.http2_reset_burst, 1);
    assert_int_equal(o.http2_reset_rate, 7); /* from ETCD_ */
    assert_int_equal(o.max_conn_out_bytes, 65536);
    options_free(&o);
    const char *path = write_file("max-header-bytes: 1024\n"
                                  "http-header-timeout: 10m\n"
                                  "http2-reset-rate: 100000\n");
    snprintf(arg, sizeof(arg), "--config-file=%s", path);
    assert_int_equal(parse(&o, empty_env, 1, arg), 0);
    assert_int_equal(o.max_header_bytes, 1024);
    assert_int_equal(o.http_header_timeout_ms, 600000);
    assert_int_equal(o.http2_reset_rate, 100000);
    options_free(&o);
    unlink(path);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&o, empty_env, 1, bad[i][0]), ERR_INVALID);
        if (strstr(err, bad[i][1]) == NULL) {
            fail_msg("case %zu: '%s' does not contain '%s'", i, err, bad[i][1]);
        }
        options_free(&o);
    }
}

static void raft_log_memory_from_every_source(void **state)
{
    struct options o;
    char arg[600];
    char *env[] = {"CAIRN_RAFT_LOG_MEMORY_BYTES=2097152", NULL};
    (void)state;
    assert_int_equal(parse(&o, empty_env, 0), 0);
    assert_int_equal(o.raft_log_memory_bytes, (uint64_t)32 << 20);
    options_free(&o);
    assert_int_equal(parse(&o, env, 0), 0);
    assert_int_equal(o.raft_log_memory_bytes, 2097152);
    options_free(&o);
    assert_int_equal(parse(&o, env, 1, "--raft-log-memory-bytes=1048576"), 0);
    assert_int_equal(o.raft_log_memory_bytes, 1048576); /* the flag wins */
    options_free(&o);
    const char *path = write_file("raft-log-memory-bytes: 8388608\n");
    snprintf(arg, sizeof(arg), "--config-file=%s", path);
    assert_int_equal(parse(&o, empty_env, 1, arg), 0);
    assert_int_equal(o.raft_log_memory_bytes, 8388608);
    options_free(&o);
    unlink(path);
    assert_int_equal(parse(&o, empty_env, 1, "--raft-log-memory-bytes=1048575"),
                     ERR_INVALID);
    assert_non_null(strstr(err, "--raft-log-memory-bytes: must be 1048576.."));
    options_free(&o);
    assert_int_equal(
        parse(&o, empty_env, 1, "--raft-log-memory-bytes=68719476737"),
        ERR_INVALID);
    options_free(&o);
}

static void console_flag_from_every_source(void **state)
{
    struct options o;
    char arg[128];
    char *env[] = {"CAIRN_ENABLE_CONSOLE=false", NULL};
    (void)state;
    assert_int_equal(parse(&o, empty_env, 0), 0);
    assert_true(o.enable_console); /* on by default */
    options_free(&o);
    assert_int_equal(parse(&o, empty_env, 1, "--enable-console=false"), 0);
    assert_false(o.enable_console);
    options_free(&o);
    assert_int_equal(parse(&o, env, 0), 0);
    assert_false(o.enable_console);
    options_free(&o);
    assert_int_equal(parse(&o, env, 1, "--enable-console"), 0);
    assert_true(o.enable_console); /* a bare flag sets it; the flag wins */
    options_free(&o);
    const char *path = write_file("enable-console: false\n");
    snprintf(arg, sizeof(arg), "--config-file=%s", path);
    assert_int_equal(parse(&o, empty_env, 1, arg), 0);
    assert_false(o.enable_console);
    options_free(&o);
    unlink(path);
    assert_int_equal(parse(&o, empty_env, 1, "--enable-console=maybe"),
                     ERR_INVALID);
    assert_non_null(strstr(err, "--enable-console: not a boolean"));
    options_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_etcds),
        cmocka_unit_test(flags_take_both_forms_and_name_the_data_dir),
        cmocka_unit_test(unknown_and_invalid_flags_are_named),
        cmocka_unit_test(environment_feeds_every_flag),
        cmocka_unit_test(config_file_replaces_flags_with_etcd_keys),
        cmocka_unit_test(bad_config_files_name_the_line),
        cmocka_unit_test(registry_bounds_from_every_source),
        cmocka_unit_test(connections_bound_from_every_source),
        cmocka_unit_test(ws_bounds_from_every_source),
        cmocka_unit_test(auth_token_type_checked),
        cmocka_unit_test(raft_log_memory_from_every_source),
        cmocka_unit_test(hardening_bounds_from_every_source),
        cmocka_unit_test(console_flag_from_every_source),
    };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}

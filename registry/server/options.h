/*
 * options.h - cairnd's settings: etcd's flags, CAIRN_* environment variables
 * and a YAML config file with etcd's keys.
 *
 * Does:     fills struct options from, in order of precedence: the config
 *           file (--config-file / CAIRN_CONFIG_FILE; when given, flags and
 *           environment variables are ignored, exactly as etcd does), else
 *           command-line flags, else CAIRN_<FLAG> environment variables (also
 *           ETCD_<FLAG>, so an etcd user's environment carries over), else
 *           etcd's defaults. Validates every value.
 * Owns:     the strings in struct options (freed by options_free).
 * Threads:  startup only, on the main thread.
 * Errors:   options_parse returns ERR_INVALID with a message in err naming
 *           the option and the problem ("--election-timeout: not a number:
 *           'abc'", "unknown flag --foo", "config file x: line 3: ...").
 *           It returns 1 (not an error) when --help or --version was asked
 *           and printed.
 * Limits:   flag values up to 4096 bytes; URL lists up to 64 URLs.
 * Not here: what the settings do (registry/server), TLS file loading.
 *
 * Names, defaults and meanings are etcd 3.4's (etcd-api.md section 3.1).
 * Durations accept etcd's forms where etcd takes them: milliseconds as a
 * bare number for --heartbeat-interval/--election-timeout, Go durations
 * ("5s", "2h", "100ms") for the keepalive flags and periodic retention.
 */
#ifndef CAIRN_REGISTRY_OPTIONS_H
#define CAIRN_REGISTRY_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OPTIONS_URLS_MAX 64

struct options_urls {
    char *urls[OPTIONS_URLS_MAX];
    size_t count;
};

struct options_tls {
    char *cert_file;
    char *key_file;
    char *trusted_ca_file;
    char *crl_file;
    bool client_cert_auth;
    bool auto_tls;
    bool skip_client_san; /* peer only: etcd 3.4's experimental flag */
};

struct options {
    /* member */
    char *name;
    char *data_dir;
    char *wal_dir;
    uint64_t snapshot_count;
    char *store_checkpoint;         /* "auto", "copy" or "in-place" */
    bool store_writemap;            /* the store's pages changed in the map */
    uint64_t store_resident_bytes;  /* kv_options.resident_bytes */
    bool store_writemap_given;      /* set by a flag, env or file, not the
                                     * default */
    uint64_t raft_log_memory_bytes; /* Cairn's own (node_logmem.c) */
    uint64_t heartbeat_interval_ms;
    uint64_t election_timeout_ms;
    struct options_urls listen_peer_urls;
    struct options_urls listen_client_urls;
    uint64_t max_snapshots;
    uint64_t max_wals;
    uint64_t quota_backend_bytes;
    uint64_t backend_batch_interval_ms;
    uint64_t backend_batch_limit;
    uint64_t max_txn_ops;
    uint64_t max_request_bytes;
    uint64_t max_connections; /* LIMIT_CONNECTIONS: HTTP and gRPC together */
    uint64_t max_concurrent_streams;
    /* hardening of the client port (docs/hardening.md) */
    uint64_t max_header_bytes;       /* LIMIT_HEADER_BYTES */
    uint64_t max_conn_out_bytes;     /* LIMIT_CONN_OUT_BYTES */
    uint64_t http_header_timeout_ms; /* request head / HTTP/2 handshake */
    uint64_t idle_timeout_ms;        /* keep-alive, HTTP/2 with no stream */
    uint64_t stall_timeout_ms;       /* a client not reading its output */
    uint64_t http2_reset_burst;      /* RST_STREAMs before the rate counts */
    uint64_t http2_reset_rate;       /* RST_STREAMs per second after that */
    uint64_t grpc_keepalive_min_time_ms;
    uint64_t grpc_keepalive_interval_ms;
    uint64_t grpc_keepalive_timeout_ms;
    /* clustering */
    struct options_urls initial_advertise_peer_urls;
    struct options_urls advertise_client_urls;
    char *initial_cluster;
    /* --initial-cluster came from a flag or an environment variable (not
     * the default): with --discovery-srv that is refused, as etcd does. */
    bool initial_cluster_given;
    char *initial_cluster_state; /* "new" or "existing" */
    char *initial_cluster_token;
    char *discovery;
    char *discovery_srv;
    char *discovery_srv_name;
    char *discovery_fallback;
    char *discovery_proxy;
    bool strict_reconfig_check;
    bool pre_vote;
    char *auto_compaction_mode; /* "periodic" or "revision" */
    char *auto_compaction_retention;
    bool enable_v2;
    /* security */
    struct options_tls client_tls;
    struct options_tls peer_tls;
    char *cipher_suites;
    char *cors;
    char *host_whitelist;
    char *auth_token;
    uint64_t bcrypt_cost;
    uint64_t auth_token_ttl_s;
    /* monitoring and logging */
    bool enable_pprof;
    bool enable_console; /* the web console at /ui/ (registry/http) */
    char *metrics;
    struct options_urls listen_metrics_urls;
    char *logger;
    char *log_outputs;
    char *log_level;
    char *log_format;
    /* experimental and unsafe */
    bool experimental_initial_corrupt_check;
    bool experimental_enable_lease_checkpoint;
    uint64_t experimental_compaction_batch_limit;
    uint64_t experimental_watch_progress_notify_interval_ms;
    uint64_t experimental_warning_apply_duration_ms;
    bool force_new_cluster;
    bool unsafe_no_fsync;
    /* config center (registry/config) */
    uint64_t config_history;
    bool config_require_message;
    char *config_secret_key_file;
    /* the audit log (consensus/apply, docs/audit.md) */
    uint64_t audit_retention_records;
    /* the service registry's bounds (Cairn's own flags; services.h) */
    uint64_t registry_probes_max;
    uint64_t registry_probe_instances_max;
    uint64_t registry_probe_writes_max;
    uint64_t registry_metrics_services_max;
    /* the multiplexed WebSocket's bounds (http_stream_int.h) */
    uint64_t ws_subscriptions_max;
    uint64_t ws_message_bytes_max;
    /* where the settings came from */
    char *config_file;
};

/* Set every field to etcd's default. */
void options_defaults(struct options *o);

/* Parse argv (argv[0] is the program name) and the environment (envp may be
 * NULL for environ). On error, err (err_len bytes) holds one line naming
 * the option and the problem. Returns 0, 1 (help/version printed) or
 * ERR_INVALID / -ENOMEM. o must hold defaults (options_defaults) first. */
int options_parse(struct options *o, int argc, char **argv, char **envp,
                  char *err, size_t err_len);

/* Apply one setting by flag name without dashes ("data-dir"); used by the
 * three sources and by tests. */
int options_set(struct options *o, const char *name, const char *value,
                char *err, size_t err_len);

/* Load a YAML config file (etcd's keys). */
int options_load_file(struct options *o, const char *path, char *err,
                      size_t err_len);

/* Cross-field checks after parsing (election timeout >= 5 heartbeats, URL
 * forms, cluster state, compaction mode). */
int options_validate(const struct options *o, char *err, size_t err_len);

void options_free(struct options *o);

/* Print the flag list with defaults (for --help). */
void options_usage(const char *prog);

#endif

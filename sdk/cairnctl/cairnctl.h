/*
 * cairnctl.h - cairnctl, the command-line client: shared declarations of
 * its files (not installed).
 *
 * Does:     etcdctl 3.4's commands, flags, ETCDCTL_* environment variables,
 *           output formats (simple, json, fields, table) and exit codes, on
 *           top of libcairn's public API (sdk/include/cairn.h) alone.
 * Owns:     struct ctl: the parsed flags and the one client of a run.
 * Threads:  one.
 * Borrowed: flag values point into argv or the environment.
 * Errors:   each command returns an exit code (enum ctl_exit); messages go
 *           to stderr as "Error: ..." like etcdctl's.
 * Limits:   CTL_OPTS_MAX flags per command, CTL_ARGS_MAX positional args,
 *           CTL_LINE_MAX bytes per txn / watch -i input line.
 * Not here: the protocol (libcairn); the comparison with etcdctl
 *           (tests/compat/cairnctl_vs_etcdctl.test).
 */
#ifndef CAIRN_SDK_CAIRNCTL_H
#define CAIRN_SDK_CAIRNCTL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sdk/include/cairn.h"

#define CTL_OPTS_MAX 40
#define CTL_ARGS_MAX 64
#define CTL_LINE_MAX 65536

/* etcdctl's exit codes (etcdctl/ctlv3/command/error.go). */
enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_ERROR = 1,
    CTL_EXIT_BAD_CONN = 2,
    CTL_EXIT_INVALID_INPUT = 3,
    CTL_EXIT_BAD_FEATURE = 4,
    CTL_EXIT_INTERRUPTED = 5,
    CTL_EXIT_IO = 6,
    CTL_EXIT_BAD_ARGS = 128,
};

enum ctl_fmt { CTL_SIMPLE, CTL_JSON, CTL_FIELDS, CTL_TABLE, CTL_PROTOBUF };

struct ctl_opt {
    const char *name;
    char short_name;
    bool is_bool;
    const char *def;
    const char *help;
    const char *val; /* NULL: not given */
};

struct ctl;
typedef int (*ctl_cmd_fn)(struct ctl *x);

struct ctl_cmd {
    const char *name; /* "get", "lease grant" */
    const char *usage;
    const char *summary;
    const char *description; /* NULL or extra text */
    const struct ctl_opt *opts;
    size_t opts_count;
    ctl_cmd_fn fn;
};

struct ctl {
    const struct ctl_cmd *cmd;
    struct ctl_opt opts[CTL_OPTS_MAX]; /* the command's, then global */
    size_t opts_count;
    const char *args[CTL_ARGS_MAX];
    size_t args_count;
    const char *dash_args[CTL_ARGS_MAX]; /* after "--" (watch exec) */
    size_t dash_args_count;
    bool dash_seen; /* "--" was given (even with nothing after it) */
    enum ctl_fmt fmt;
    bool hex;
    char *endpoints[CAIRN_ENDPOINTS_MAX];
    size_t endpoints_count;
    int64_t dial_timeout_ms;
    int64_t command_timeout_ms;
    struct cairn_client *client;
};

/* Flags. */
const char *ctl_flag(const struct ctl *x, const char *name);
bool ctl_flag_bool(const struct ctl *x, const char *name);
/* A decimal flag; prints etcdctl's error and returns false when bad. */
bool ctl_flag_int(const struct ctl *x, const char *name, int64_t *out);

/* The client of this run (created at first use); NULL after printing the
 * error. */
struct cairn_client *ctl_client(struct ctl *x);
struct cairn_client *ctl_client_for(struct ctl *x, const char *endpoint);
/* One more client on every endpoint (the caller frees it). */
struct cairn_client *ctl_client_new(struct ctl *x);
/* The endpoints of a command: --endpoints, or with --cluster every
 * member's client URLs (etcdctl's endpointsFromCluster). Returns the count
 * or -1 after printing the error; the strings live in *store (free it
 * with cairn_member_list_resp_free). */
int ctl_endpoints(struct ctl *x, const char **eps,
                  struct cairn_member_list_resp *store);
/* Deadline of one request: dial + command timeouts. */
int64_t ctl_deadline(const struct ctl *x);

/* Prints "Error: <what>" for a failed call; returns code. */
int ctl_fail_call(struct ctl *x, struct cairn_client *c, int err, int code);
/* The text etcdctl prints for a failed call (into out), or to stderr. */
void ctl_err_text(struct cairn_client *c, int err, char *out, size_t size);
void ctl_print_err(struct cairn_client *c, int err);
/* Prints "Error: <fmt>" and returns code. */
int ctl_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Output helpers (cairnctl_out.c). */
void out_b64(const uint8_t *p, size_t n);
void out_json_str(const char *s);
void out_goquote(const uint8_t *p, size_t n); /* Go's %q */
void out_goquote_to(FILE *f, const uint8_t *p, size_t n);
void out_bytes(const struct ctl *x, const uint8_t *p, size_t n); /* simple */
void out_kv_simple(const struct ctl *x, const struct cairn_kv *kv,
                   bool value_only);
void out_kv_json(const struct cairn_kv *kv);
void out_header_json(const struct cairn_header *h); /* {"cluster_id":..} */
void out_header_json_flat(const struct cairn_header *h, bool *first);
void out_header_fields(const struct cairn_header *h);
void out_kv_fields(const struct ctl *x, const char *pfx,
                   const struct cairn_kv *kv);
/* go-humanize's Bytes (SI): "20 kB". */
void fmt_bytes_si(uint64_t n, char *out, size_t out_size);
/* Go's time.Duration.String for a duration in ns. */
void fmt_duration(uint64_t ns, char *out, size_t out_size);
/* An ASCII table like tablewriter with right-aligned cells. */
void out_table(const char *const *hdr, size_t cols, const char *const *cells,
               size_t rows);

/* watch -- cmd (cairnctl_exec.c): runs argv once per event of r, as
 * etcdctl 3.4 does, with ETCD_WATCH_REVISION (r's header revision),
 * ETCD_WATCH_EVENT_TYPE, ETCD_WATCH_KEY and ETCD_WATCH_VALUE (Go-quoted)
 * added to the environment, stdout and stderr shared. Returns -1 to go
 * on, or 1 after printing etcdctl's "command [..] error (..)" when the
 * command could not run or failed. */
int ctl_watch_exec(const char *const *argv, size_t argc,
                   const struct cairn_watch_resp *r);

/* Progress of a transfer into a file (cairnctl_progress.c): on a
 * terminal a line redrawn by a thread from the file's size (bytes, total,
 * rate, time left; fd < 0: the time taken); else nothing on stdout.
 * total 0: unknown. */
struct ctl_progress {
    const char *what;
    int fd;
    uint64_t total;
    double t0;
    bool tty;
    bool running;
    char note[96]; /* fd < 0: said at the end (set before _end) */
    atomic_bool stop;
    pthread_t th;
};
void ctl_progress_begin(struct ctl_progress *p, const char *what, int fd,
                        uint64_t total);
/* Stops the thread; on a terminal draws the last line (bytes) when ok. */
void ctl_progress_end(struct ctl_progress *p, uint64_t bytes, bool ok);
/* One etcdctl-style (zap JSON) info line on stderr; fields: "" or
 * ",\"k\":v" members without the leading comma. */
void ctl_progress_log(const char *msg, const char *fields);

/* -w protobuf (cairnctl_pb.c): the response as etcdctl 3.4 marshals and
 * prints it. */
void pb_print_header(const struct cairn_header *h);
void pb_print_range(const struct cairn_range_resp *r);
void pb_print_put(const struct cairn_put_resp *r);
void pb_print_delete(const struct cairn_delete_resp *r);
void pb_print_txn(const struct cairn_txn_resp *r);
void pb_print_watch(const struct cairn_watch_resp *r);
void pb_print_members(const struct cairn_header *h,
                      const struct cairn_member *ms, size_t n);
void pb_print_member_add(const struct cairn_member_add_resp *r);
void pb_print_header_msg(const struct cairn_header *h);
void pb_print_names(const struct cairn_names_resp *r);
void pb_print_role(const struct cairn_role_resp *r);
void pb_print_alarms(const struct cairn_alarm_resp *r);
/* etcdctl's failure after a revoke done with -w protobuf; the exit code. */
int pb_revoke_refusal(const struct cairn_header *h);

/* Commands. */
int cmd_get(struct ctl *x);
int cmd_put(struct ctl *x);
int cmd_del(struct ctl *x);
int cmd_txn(struct ctl *x);
int cmd_watch(struct ctl *x);
int cmd_lease_grant(struct ctl *x);
int cmd_lease_revoke(struct ctl *x);
int cmd_lease_timetolive(struct ctl *x);
int cmd_lease_list(struct ctl *x);
int cmd_lease_keepalive(struct ctl *x);
int cmd_member_list(struct ctl *x);
int cmd_endpoint_health(struct ctl *x);
int cmd_endpoint_status(struct ctl *x);
int cmd_version(struct ctl *x);
/* cairnctl_admin.c */
int cmd_compaction(struct ctl *x);
int cmd_alarm_list(struct ctl *x);
int cmd_alarm_disarm(struct ctl *x);
int cmd_defrag(struct ctl *x);
int cmd_endpoint_hashkv(struct ctl *x);
int cmd_move_leader(struct ctl *x);
int cmd_auth_enable(struct ctl *x);
int cmd_auth_disable(struct ctl *x);
int cmd_auth_status(struct ctl *x);
int cmd_member_add(struct ctl *x);
int cmd_member_remove(struct ctl *x);
int cmd_member_update(struct ctl *x);
int cmd_member_promote(struct ctl *x);
int cmd_snapshot_save(struct ctl *x);
int cmd_snapshot_status(struct ctl *x);
int cmd_snapshot_restore(struct ctl *x);
/* cairnctl_lock.c */
int cmd_lock(struct ctl *x);
int cmd_elect(struct ctl *x);
/* cairnctl_auth.c */
int cmd_user_add(struct ctl *x);
int cmd_user_delete(struct ctl *x);
int cmd_user_get(struct ctl *x);
int cmd_user_list(struct ctl *x);
int cmd_user_passwd(struct ctl *x);
int cmd_user_grant_role(struct ctl *x);
int cmd_user_revoke_role(struct ctl *x);
int cmd_role_add(struct ctl *x);
int cmd_role_delete(struct ctl *x);
int cmd_role_get(struct ctl *x);
int cmd_role_list(struct ctl *x);
int cmd_role_grant_permission(struct ctl *x);
int cmd_role_revoke_permission(struct ctl *x);
/* cairnctl_api.c: Cairn's registry and config center (/api/v1). */
int cmd_service_register(struct ctl *x);
int cmd_service_deregister(struct ctl *x);
int cmd_service_list(struct ctl *x);
int cmd_service_get(struct ctl *x);
int cmd_service_watch(struct ctl *x);
int cmd_service_drain(struct ctl *x);
int cmd_config_publish(struct ctl *x);
int cmd_config_get(struct ctl *x);
int cmd_config_list(struct ctl *x);
int cmd_config_history(struct ctl *x);
int cmd_config_diff(struct ctl *x);
int cmd_config_rollback(struct ctl *x);
int cmd_config_watch(struct ctl *x);
int cmd_config_subscribers(struct ctl *x);
int cmd_config_gray_put(struct ctl *x);
int cmd_config_gray_get(struct ctl *x);
int cmd_config_gray_promote(struct ctl *x);
int cmd_config_gray_abandon(struct ctl *x);
int cmd_audit_list(struct ctl *x);
int cmd_audit_verify(struct ctl *x);

/* Members as etcdctl's json and fields printers show them (added: the
 * member add answer's new member, or NULL). */
void print_members_json(const struct cairn_header *h,
                        const struct cairn_member *added,
                        const struct cairn_member *ms, size_t n);
void print_members_fields(const struct cairn_header *h,
                          const struct cairn_member *ms, size_t n);

/* Printers shared by txn and the single commands. */
void print_range(const struct ctl *x, const struct cairn_range_resp *r,
                 bool value_only);
void print_put(const struct ctl *x, const struct cairn_put_resp *r);
void print_delete(const struct ctl *x, const struct cairn_delete_resp *r);

/* Requests from a command's parsed flags and args: -1 to go on, else the
 * exit code after printing etcdctl's error. buf holds a computed range
 * end (4096 bytes); *in a value read from stdin (free it). */
int ctl_get_req(struct ctl *x, struct cairn_range_req *req, uint8_t *buf);
int ctl_put_req(struct ctl *x, struct cairn_put_req *req, bool use_stdin,
                char **in);
int ctl_del_req(struct ctl *x, struct cairn_delete_req *req, uint8_t *buf);
/* A hex lease ID; -1 when malformed. */
int ctl_parse_lease(const char *s, int64_t *out);
/* The command table and the global flags (for completion). */
const struct ctl_cmd *ctl_cmds(size_t *count);
const struct ctl_opt *ctl_global_opts(size_t *count);
/* cairnctl_check.c */
int cmd_check_perf(struct ctl *x);
int cmd_check_datascale(struct ctl *x);
/* cairnctl_complete.c */
int cmd_completion(struct ctl *x);
/* The command called name ("get"), or NULL. */
const struct ctl_cmd *ctl_cmd_find(const char *name);

#endif

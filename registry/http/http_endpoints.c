/*
 * http_endpoints.c - the plain GET endpoints of the client port: /version,
 * /metrics, /health, /livez and /readyz (shared/reference/etcd-api.md
 * section 3.2).
 *
 * /health follows etcd: false (503) when there is no leader, or when any
 * alarm is raised (?exclude=NOSPACE ignores that one), or when the alarm
 * list cannot be read through Raft within a second, which is the quorum
 * check. The alarm list is asked for with the Alarm GET method, like etcd
 * does, so it never reads the applier's memory from this thread.
 * /livez runs a serializable read of the store; /readyz needs a leader and
 * a linearizable read (ReadIndex) within a second. Both answer "ok", or
 * 503 with one "[-]check failed: reason" line per failing check.
 *
 * /metrics prints Prometheus text (format 0.0.4) with etcd's metric names
 * where etcd has one, from node_status(), kv_size(), grpc_server_stats()
 * and the process's own /proc entries; the rest are cairn_*.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "consensus/watch/watch.h"
#include "proto/rpc.pb-c.h"
#include "registry/config/cfgapi.h"
#include "registry/http/http_int.h"
#include "registry/services/services.h"

/* ------------------------------------------------------------ /version */

int http__get_version(struct http_conn *c)
{
    static const char body[] = "{\"etcdserver\":\"" SERVER_VERSION
                               "\",\"etcdcluster\":\"" SERVER_CLUSTER_VER "\"}";
    return http__respond(c, 200, "application/json", body, sizeof(body) - 1);
}

/* ------------------------------------------------------------ /metrics */

struct mw {
    struct buf *b;
    int err;
};

static void mw_printf(struct mw *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void mw_printf(struct mw *w, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    ASSERT(n >= 0 && (size_t)n < sizeof(line));
    if (w->err == 0) {
        w->err = buf_append(w->b, line, (size_t)n);
    }
}

static void head(struct mw *w, const char *name, const char *type,
                 const char *help)
{
    mw_printf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u64(struct mw *w, const char *name, const char *type,
                       const char *help, uint64_t v)
{
    head(w, name, type, help);
    mw_printf(w, "%s %" PRIu64 "\n", name, v);
}

static void metric_f(struct mw *w, const char *name, const char *type,
                     const char *help, double v)
{
    head(w, name, type, help);
    mw_printf(w, "%s %.9g\n", name, v);
}

/* Read a small /proc file whole (NUL-terminated); 0 or -errno. */
static int read_small(const char *path, char *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0) {
        return -errno;
    }
    n = read(fd, out, cap - 1);
    close(fd);
    if (n < 0) {
        return -errno;
    }
    out[n] = '\0';
    return 0;
}

static uint64_t open_fds(void)
{
    uint64_t n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    if (d == NULL) {
        return 0;
    }
    /* bounded by the process's fd limit */
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory's own fd */
}

/* Process start as Unix seconds: /proc/self/stat field 22 (ticks after
 * boot) plus btime from /proc/stat. 0 when unknown. */
static double start_time_s(void)
{
    char st[1024];
    char ps[4096];
    const char *p;
    unsigned long long ticks = 0;
    unsigned long long btime = 0;
    long hz = sysconf(_SC_CLK_TCK);
    if (read_small("/proc/self/stat", st, sizeof(st)) != 0 ||
        (p = strrchr(st, ')')) == NULL || hz <= 0) {
        return 0;
    }
    /* after ")": field 3 is the state; starttime is field 22 */
    for (int field = 2; field < 22 && p != NULL; field++) {
        p = strchr(p + 1, ' ');
    }
    if (p == NULL || sscanf(p + 1, "%llu", &ticks) != 1) {
        return 0;
    }
    if (read_small("/proc/stat", ps, sizeof(ps)) != 0 ||
        (p = strstr(ps, "btime ")) == NULL ||
        sscanf(p + 6, "%llu", &btime) != 1) {
        return 0;
    }
    return (double)btime + (double)ticks / (double)hz;
}

static void process_metrics(struct mw *w)
{
    struct rusage ru;
    struct rlimit rl;
    char statm[256];
    unsigned long long vsize = 0;
    unsigned long long rss = 0;
    long page = sysconf(_SC_PAGESIZE);
    double cpu = 0;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
              ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    }
    if (read_small("/proc/self/statm", statm, sizeof(statm)) == 0) {
        if (sscanf(statm, "%llu %llu", &vsize, &rss) != 2) {
            vsize = rss = 0;
        }
    }
    metric_f(w, "process_cpu_seconds_total", "counter",
             "Total user and system CPU time spent in seconds.", cpu);
    metric_u64(w, "process_resident_memory_bytes", "gauge",
               "Resident memory size in bytes.", rss * (uint64_t)page);
    metric_u64(w, "process_virtual_memory_bytes", "gauge",
               "Virtual memory size in bytes.", vsize * (uint64_t)page);
    metric_u64(w, "process_open_fds", "gauge",
               "Number of open file descriptors.", open_fds());
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        metric_u64(w, "process_max_fds", "gauge",
                   "Maximum number of open file descriptors.",
                   (uint64_t)rl.rlim_cur);
    }
    metric_f(w, "process_start_time_seconds", "gauge",
             "Start time of the process since unix epoch in seconds.",
             start_time_s());
    /* The heap as malloc sees it (as Go's go_memstats_heap_* in etcd):
     * RSS also grows when pages of blocks allocated earlier are first
     * written (a connection's buffers as it gets busier), which is not a
     * leak; bytes in use that grow are. */
    struct mallinfo2 mi = mallinfo2();
    metric_u64(w, "cairn_process_heap_inuse_bytes", "gauge",
               "Bytes malloc has handed out and not yet taken back.",
               (uint64_t)(mi.uordblks + mi.hblkhd));
    metric_u64(w, "cairn_process_heap_system_bytes", "gauge",
               "Bytes malloc holds from the system (heap and mmap'd "
               "blocks).",
               (uint64_t)(mi.arena + mi.hblkhd));
}

/* A histogram from n non-cumulative buckets: bucket i counts the
 * observations of at most first_s << i seconds, the last the rest. */
static void histogram(struct mw *w, const char *name, const char *help,
                      const uint64_t *buckets, size_t n, double first_s,
                      uint64_t count, uint64_t sum_ns)
{
    uint64_t cum = 0;
    head(w, name, "histogram", help);
    for (size_t i = 0; i + 1 < n; i++) {
        cum += buckets[i];
        mw_printf(w, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
                  first_s * (double)(1ull << i), cum);
    }
    mw_printf(w,
              "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %.9f\n"
              "%s_count %" PRIu64 "\n",
              name, count, name, (double)sum_ns / 1e9, name, count);
}

/* etcd's per-peer series (rafthttp/metrics.go): names, labels (member ids
 * in hex, as etcd's types.ID prints them) and meanings. */
static void peer_metrics(struct mw *w, struct server *s)
{
    struct node_peer_stats ps[NODE_MEMBERS_MAX];
    size_t n = node_peer_stats(s->node, ps, NODE_MEMBERS_MAX);
    static const struct {
        const char *name, *type, *help, *label;
        size_t off;
    } series[] = {
        {"etcd_network_peer_sent_bytes_total", "counter",
         "The total number of bytes sent to peers.", "To",
         offsetof(struct node_peer_stats, bytes_sent)},
        {"etcd_network_peer_received_bytes_total", "counter",
         "The total number of bytes received from peers.", "From",
         offsetof(struct node_peer_stats, bytes_received)},
        {"etcd_network_peer_sent_failures_total", "counter",
         "The total number of send failures from peers.", "To",
         offsetof(struct node_peer_stats, msgs_dropped)},
        {"etcd_network_snapshot_send_success", "counter",
         "Total number of successful snapshot sends", "To",
         offsetof(struct node_peer_stats, snapshots_sent)},
        {"etcd_network_snapshot_receive_success", "counter",
         "Total number of successful snapshot receives", "From",
         offsetof(struct node_peer_stats, snapshots_received)},
    };
    if (n == 0) {
        return;
    }
    for (size_t k = 0; k < sizeof(series) / sizeof(series[0]); k++) {
        head(w, series[k].name, series[k].type, series[k].help);
        for (size_t i = 0; i < n; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&ps[i] + series[k].off, sizeof(v));
            mw_printf(w, "%s{%s=\"%" PRIx64 "\"} %" PRIu64 "\n", series[k].name,
                      series[k].label, ps[i].id, v);
        }
    }
    head(w, "etcd_network_active_peers", "gauge",
         "The current number of active peer connections.");
    for (size_t i = 0; i < n; i++) {
        mw_printf(w,
                  "etcd_network_active_peers{Local=\"%" PRIx64
                  "\",Remote=\"%" PRIx64 "\"} %d\n",
                  s->member_id, ps[i].id, ps[i].connected ? 1 : 0);
    }
}

static void server_metrics(struct mw *w, struct server *s)
{
    struct node_status st;
    uint64_t db = 0;
    uint64_t in_use = 0;
    node_status(s->node, &st);
    node_store_size(s->node, &db, &in_use);
    metric_u64(w, "etcd_server_has_leader", "gauge",
               "Whether or not a leader exists. 1 is existence, 0 is not.",
               st.leader != 0);
    metric_u64(w, "etcd_server_is_leader", "gauge",
               "Whether or not this member is a leader. 1 if is, 0 otherwise.",
               st.leader != 0 && st.leader == s->member_id);
    metric_u64(w, "cairn_cluster_apply_level", "gauge",
               "The newest request level every member has published, as "
               "this member's table says (0: one has published none).",
               node_cluster_apply_level(s->node));
    metric_u64(w, "cairn_peer_connections_accepted_total", "counter",
               "Connections accepted on the peer port, before the handshake.",
               st.peer_conns_accepted);
    metric_u64(w, "cairn_peer_connections_refused_total", "counter",
               "Peer handshakes refused (another cluster, an unknown or "
               "removed member) or over the incoming connection bound.",
               st.peer_conns_refused);
    metric_u64(w, "cairn_peer_connections_malformed_total", "counter",
               "Peer connections closed for bytes that are not Cairn's peer "
               "protocol.",
               st.peer_conns_malformed);
    metric_u64(w, "cairn_peer_tls_handshakes_failed_total", "counter",
               "Peer TLS handshakes that failed, either direction.",
               st.peer_tls_failed);
    metric_u64(w, "cairn_peer_connections_in_open", "gauge",
               "Open incoming peer connections.", st.peer_conns_in_open);
    metric_u64(w, "etcd_server_leader_changes_seen_total", "counter",
               "The number of leader changes seen.", st.leader_changes);
    metric_u64(w, "etcd_server_proposals_committed_total", "gauge",
               "The total number of consensus proposals committed.",
               st.commit_index);
    metric_u64(w, "etcd_server_proposals_applied_total", "gauge",
               "The total number of consensus proposals applied.",
               st.applied_index);
    metric_u64(w, "cairn_raft_early_apply_batches_total", "counter",
               "Batches of new entries this member (the one voter) applied "
               "while their WAL write was syncing; each commit waited for "
               "the sync.",
               st.early_batches);
    metric_u64(w, "cairn_raft_wal_jobs_total", "counter",
               "Jobs this member handed to its WAL thread (appends, term "
               "or vote changes, releases of old segments, reads of "
               "entries no longer in memory).",
               st.wal_jobs);
    metric_u64(w, "cairn_raft_wal_gate_opens_total", "counter",
               "Times the WAL thread let early-applied entries commit to the "
               "store as soon as they were durable (the one voter's rule), "
               "without waiting for the loop.",
               st.wal_gate_opens);
    metric_u64(w, "cairn_raft_wal_inline_total", "counter",
               "WAL jobs the event loop wrote and synced itself while the "
               "WAL thread was idle (a lone entry in a run of them, a quick "
               "disk): no hand-off between threads on the way.",
               st.wal_inline);
    metric_u64(w, "etcd_server_proposals_pending", "gauge",
               "The current number of pending proposals to commit.",
               st.proposals_pending);
    metric_u64(w, "etcd_server_proposals_failed_total", "counter",
               "The total number of failed proposals seen.",
               st.proposals_failed);
    metric_u64(w, "etcd_mvcc_db_total_size_in_bytes", "gauge",
               "Total size of the underlying database physically allocated "
               "in bytes.",
               db);
    metric_u64(w, "etcd_mvcc_db_total_size_in_use_in_bytes", "gauge",
               "Total size of the underlying database logically in use in "
               "bytes.",
               in_use);
    metric_u64(w, "etcd_server_quota_backend_bytes", "gauge",
               "Current backend storage quota size in bytes.",
               s->limits.v[LIMIT_QUOTA_BACKEND_BYTES]);
    metric_u64(w, "etcd_debugging_mvcc_current_revision", "gauge",
               "The current revision of store.",
               (uint64_t)kv_rev(node_kv(s->node)));
    /* etcd's names for the same gauges; the console's Cluster page
     * charts the watcher count */
    struct watch_stats ws = {0};
    struct watch_hub *hub = api_watch__hub(s);
    if (hub != NULL) {
        watch_hub_stats(hub, &ws);
    }
    metric_u64(w, "etcd_debugging_mvcc_watcher_total", "gauge",
               "Total number of watchers.", (uint64_t)ws.watchers);
    metric_u64(w, "etcd_debugging_mvcc_watch_stream_total", "gauge",
               "Total number of watch streams.", (uint64_t)ws.streams);
    metric_u64(w, "etcd_debugging_mvcc_slow_watcher_total", "gauge",
               "Total number of unsynced slow watchers.",
               (uint64_t)ws.unsynced);
    metric_u64(w, "etcd_debugging_mvcc_events_total", "counter",
               "Total number of events sent by this member.", ws.events_sent);
    metric_u64(w, "cairn_watch_responses_total", "counter",
               "Watch responses that carried events (one response may carry "
               "several).",
               ws.responses_sent);
    metric_u64(w, "cairn_watch_overflows_total", "counter",
               "Times a watcher's queue passed its bound (or its stream's) "
               "and it went back to reading the store's history.",
               ws.overflows);
    metric_u64(w, "cairn_watch_catchup_reads_total", "counter",
               "History reads for watchers behind the store's revision.",
               ws.catchup_reads);
    metric_u64(w, "cairn_watch_catchup_ring_reads_total", "counter",
               "Of those, reads served from the hub's copies of the newest "
               "events instead of the store.",
               ws.ring_reads);
    peer_metrics(w, s);
    head(w, "etcd_server_id", "gauge",
         "Server or member ID in hexadecimal format. 1 for 'server_id' "
         "label with current ID.");
    mw_printf(w, "etcd_server_id{server_id=\"%" PRIx64 "\"} 1\n", s->member_id);
    head(w, "etcd_server_version", "gauge",
         "Which version is running. 1 for 'server_version' label with "
         "current version.");
    mw_printf(w, "etcd_server_version{server_version=\"%s\"} 1\n",
              SERVER_VERSION);
    histogram(w, "etcd_disk_wal_fsync_duration_seconds",
              "The latency distributions of fsync called by WAL.",
              st.wal_fsync_buckets, NODE_FSYNC_BUCKETS, 1e-3, st.wal_fsyncs,
              st.wal_fsync_ns_total);
    histogram(w, "cairn_api_request_duration_seconds",
              "Time from an API call's arrival to its answer (gRPC unary "
              "calls, the JSON gateway, the registry and config APIs' calls).",
              s->api_latency.buckets, SERVER_LATENCY_BUCKETS, 5e-4,
              s->api_latency.count, s->api_latency.sum_ns);
    metric_u64(w, "cairn_raft_term", "gauge", "The current Raft term.",
               st.term);
    metric_u64(w, "cairn_raft_role", "gauge",
               "Raft role: 0 follower, 1 pre-candidate, 2 candidate, 3 "
               "leader.",
               st.role);
    metric_u64(w, "cairn_raft_commit_index", "gauge",
               "The Raft commit index this member knows.", st.commit_index);
    metric_u64(w, "cairn_raft_applied_index", "gauge",
               "The last Raft index this member applied.", st.applied_index);
    metric_u64(w, "cairn_raft_log_first_index", "gauge",
               "The first index of this member's Raft log (after its last "
               "snapshot).",
               st.first_index);
    metric_u64(w, "cairn_raft_log_last_index", "gauge",
               "The last index of this member's Raft log (written, maybe not "
               "yet committed).",
               st.last_index);
    metric_u64(w, "cairn_raft_log_memory_bytes", "gauge",
               "Data bytes of Raft log entries held in memory "
               "(--raft-log-memory-bytes bounds the applied ones).",
               st.log_resident_bytes);
    metric_u64(w, "cairn_raft_log_memory_entries", "gauge",
               "Raft log entries indexed in memory (since the last snapshot).",
               st.log_entries);
    metric_u64(w, "cairn_raft_log_evicted_bytes_total", "counter",
               "Data bytes of applied entries given back from memory.",
               st.log_evicted_bytes);
    metric_u64(w, "cairn_raft_log_reads_total", "counter",
               "Windows of entries read back from the WAL for lagging "
               "followers.",
               st.log_reads);
    metric_u64(w, "cairn_raft_log_read_bytes_total", "counter",
               "Data bytes read back from the WAL for lagging followers.",
               st.log_read_bytes);
}

static void grpc_metrics(struct mw *w, struct server *s)
{
    struct grpc_stats g;
    if (!s->grpc_on) {
        return;
    }
    grpc_server_stats(&s->grpc, &g);
    /* Totals only: the gRPC layer does not count per method or code. */
    metric_u64(w, "grpc_server_started_total", "counter",
               "Total number of RPCs started on the server.", g.calls_total);
    metric_u64(w, "grpc_server_handled_total", "counter",
               "Total number of RPCs completed on the server, regardless of "
               "success or failure.",
               g.calls_total - g.calls_open);
    metric_u64(w, "etcd_network_client_grpc_received_bytes_total", "counter",
               "The total number of bytes received from grpc clients.",
               g.bytes_in);
    metric_u64(w, "etcd_network_client_grpc_sent_bytes_total", "counter",
               "The total number of bytes sent to grpc clients.", g.bytes_out);
    metric_u64(w, "cairn_grpc_connections_open", "gauge",
               "Open gRPC (HTTP/2) connections.", g.conns_open);
    metric_u64(w, "cairn_grpc_connections_total", "counter",
               "gRPC connections accepted.", g.conns_total);
    metric_u64(w, "cairn_grpc_connections_refused_total", "counter",
               "gRPC connections refused at the connection bound.",
               g.conns_refused);
    metric_u64(w, "cairn_grpc_h2_memory_bytes", "gauge",
               "Bytes nghttp2 holds for the open gRPC connections (HPACK "
               "tables, streams, frames queued).",
               g.h2_memory_bytes);
    metric_u64(w, "cairn_grpc_calls_open", "gauge", "gRPC calls running.",
               g.calls_open);
    metric_u64(w, "cairn_grpc_calls_unimplemented_total", "counter",
               "gRPC calls to unknown methods.", g.calls_unimplemented);
    metric_u64(w, "cairn_grpc_calls_cancelled_total", "counter",
               "gRPC calls cancelled by the client or the connection.",
               g.calls_cancelled);
    metric_u64(w, "cairn_grpc_messages_too_large_total", "counter",
               "gRPC requests refused for their size.", g.msgs_too_large);
    metric_u64(w, "cairn_grpc_malformed_requests_total", "counter",
               "gRPC streams reset for malformed request headers.",
               g.bad_headers);
    metric_u64(w, "cairn_grpc_protocol_errors_total", "counter",
               "gRPC connections closed for malformed HTTP/2.",
               g.protocol_errors);
    metric_u64(w, "cairn_grpc_reads_paused_total", "counter",
               "Times reads stopped on the outbound bound.", g.reads_paused);
    metric_u64(w, "cairn_grpc_handshake_timeouts_total", "counter",
               "gRPC connections closed: no SETTINGS within "
               "--http-header-timeout.",
               g.handshake_timeouts);
    metric_u64(w, "cairn_grpc_idle_closed_total", "counter",
               "gRPC connections sent GOAWAY after --idle-timeout with no "
               "call.",
               g.idle_closed);
    metric_u64(w, "cairn_grpc_rapid_reset_goaways_total", "counter",
               "gRPC connections cut off with GOAWAY(ENHANCE_YOUR_CALM): "
               "RST_STREAM past --http2-reset-burst/--http2-reset-rate.",
               g.rapid_resets);
    metric_u64(w, "cairn_grpc_stalled_closed_total", "counter",
               "gRPC connections closed: output pending, nothing written "
               "for --stall-timeout.",
               g.stalled_closed);
    metric_u64(w, "cairn_grpc_streams_refused_total", "counter",
               "HTTP/2 streams refused (REFUSED_STREAM): past "
               "--max-concurrent-streams, or opened after GOAWAY.",
               g.streams_refused);
    metric_u64(w, "cairn_grpc_out_pending_bytes", "gauge",
               "Response bytes queued or unwritten on gRPC connections "
               "(each within --max-conn-out-bytes).",
               g.out_pending_bytes);
    metric_u64(w, "cairn_grpc_headers_too_large_total", "counter",
               "gRPC calls refused: header list past --max-header-bytes.",
               g.headers_too_large);
}

static void tls_metrics(struct mw *w, const struct server *s)
{
    struct server_tls_stats t;
    server__tls_stats(s, &t);
    metric_u64(w, "cairn_tls_connections_open", "gauge",
               "Open TLS connections on the client port, any state.",
               t.conns_open);
    metric_u64(w, "cairn_tls_handshakes_in_progress", "gauge",
               "TLS handshakes under way.", t.handshaking);
    mw_printf(w,
              "# HELP cairn_tls_handshakes_total TLS handshakes on the "
              "client port, by result.\n"
              "# TYPE cairn_tls_handshakes_total counter\n"
              "cairn_tls_handshakes_total{result=\"ok\"} %" PRIu64 "\n"
              "cairn_tls_handshakes_total{result=\"failed\"} %" PRIu64 "\n"
              "cairn_tls_handshakes_total{result=\"timeout\"} %" PRIu64 "\n"
              "cairn_tls_handshakes_total{result=\"refused\"} %" PRIu64 "\n",
              t.handshakes_ok, t.handshakes_failed, t.handshakes_timedout,
              t.handshakes_refused);
    mw_printf(w,
              "# HELP cairn_tls_alpn_total TLS connections by the protocol "
              "ALPN chose.\n"
              "# TYPE cairn_tls_alpn_total counter\n"
              "cairn_tls_alpn_total{protocol=\"h2\"} %" PRIu64 "\n"
              "cairn_tls_alpn_total{protocol=\"http/1.1\"} %" PRIu64 "\n",
              t.alpn_h2, t.alpn_http1);
    mw_printf(w,
              "# HELP cairn_tls_reloads_total Times the client port's "
              "certificate and key were read again (SIGHUP or a file "
              "change), by result.\n"
              "# TYPE cairn_tls_reloads_total counter\n"
              "cairn_tls_reloads_total{result=\"ok\"} %" PRIu64 "\n"
              "cairn_tls_reloads_total{result=\"failed\"} %" PRIu64 "\n",
              t.reloads_ok, t.reloads_failed);
}

static void http_metrics(struct mw *w, const struct http *h)
{
    const struct http_stats *st = &h->st;
    metric_u64(w, "cairn_http_connections_open", "gauge",
               "Open HTTP/1.1 connections.", h->conns_open);
    metric_u64(w, "cairn_http_connections_total", "counter",
               "HTTP/1.1 connections adopted.", st->conns_total);
    metric_u64(w, "cairn_http_connections_refused_total", "counter",
               "HTTP/1.1 connections refused at the connection bound.",
               st->conns_refused);
    metric_u64(w, "cairn_stream_push_encodings_total", "counter",
               "Discovery and config stream messages encoded: one per "
               "change and variant, shared by every subscriber.",
               st->push_encoded);
    metric_u64(w, "cairn_stream_push_shared_total", "counter",
               "Subscribers that found their change already encoded (or "
               "resolved) for another.",
               st->push_shared);
    metric_u64(w, "cairn_stream_ws_direct_writes_total", "counter",
               "WebSocket stream messages written at once, not queued for a "
               "writable callback.",
               st->push_direct);
    metric_u64(w, "cairn_stream_ws_direct_sends_total", "counter",
               "Writes that carried those messages: one per socket and hub "
               "pass, however many of its subscriptions a change reached.",
               st->push_cork_writes);
    metric_u64(w, "cairn_stream_push_by_reference_total", "counter",
               "Large stream messages queued by reference to one shared "
               "copy instead of copied per subscriber.",
               st->push_by_ref);
    metric_u64(w, "cairn_connections_refused_at_accept_total", "counter",
               "Client connections closed at accept: gRPC connections fill "
               "--max-connections.",
               h->s->conns_refused_at_accept);
    metric_u64(w, "cairn_connections_sniffing", "gauge",
               "Client connections whose HTTP/2 preface or HTTP/1.1 request "
               "head is still arriving.",
               h->s->conns_sniffing);
    metric_u64(w, "cairn_http_header_timeouts_total", "counter",
               "Client connections closed: no HTTP/2 preface or HTTP/1.1 "
               "request head within --http-header-timeout.",
               h->s->header_timeouts);
    metric_u64(w, "cairn_http_headers_too_large_total", "counter",
               "HTTP/1.1 requests refused with 431: head past "
               "--max-header-bytes.",
               h->s->headers_too_large);
    metric_u64(w, "cairn_connections_max", "gauge",
               "The bound on client connections, HTTP/1.1 and gRPC together "
               "(--max-connections).",
               h->s->limits.v[LIMIT_CONNECTIONS]);
    metric_u64(w, "cairn_http_requests_total", "counter",
               "HTTP/1.1 requests received.", st->requests_total);
    metric_u64(w, "cairn_http_gateway_calls_total", "counter",
               "JSON gateway calls made.", st->gateway_calls);
    head(w, "cairn_http_responses_total", "counter",
         "HTTP/1.1 responses by status class.");
    mw_printf(w,
              "cairn_http_responses_total{code=\"2xx\"} %" PRIu64 "\n"
              "cairn_http_responses_total{code=\"3xx\"} %" PRIu64 "\n"
              "cairn_http_responses_total{code=\"4xx\"} %" PRIu64 "\n"
              "cairn_http_responses_total{code=\"5xx\"} %" PRIu64 "\n",
              st->responses_2xx, st->responses_3xx, st->responses_4xx,
              st->responses_5xx);
    metric_u64(w, "cairn_http_bodies_too_large_total", "counter",
               "Request bodies refused for their size (413).",
               st->bodies_too_large);
    metric_u64(w, "cairn_http_pipelined_closed_total", "counter",
               "Connections closed for pipelining behind a POST.",
               st->pipelined_closed);
    metric_u64(w, "cairn_http_bad_json_total", "counter",
               "Gateway requests refused as malformed JSON (400).",
               st->bad_json);
    metric_u64(w, "cairn_http_host_refused_total", "counter",
               "HTTP/1.1 requests refused with 421: Host header not in "
               "--host-whitelist.",
               st->host_refused);
    metric_u64(w, "cairn_http_chunked_bodies_total", "counter",
               "Chunked request bodies decoded.", st->chunked_bodies);
    metric_u64(w, "cairn_http_bad_chunked_total", "counter",
               "Chunked request bodies refused as malformed framing (400).",
               st->bad_chunked);
    uint64_t kept, changed;
    bool in_place;
    http__uvpoll_counts(&kept, &changed, &in_place);
    metric_u64(w, "cairn_http_poll_in_place", "gauge",
               "1 when HTTP/1.1 connections change their poll events in "
               "place (cairnd's uv_poll_start, libuv 1.44), 0 when libuv's "
               "own serves every change.",
               in_place ? 1 : 0);
    head(w, "cairn_http_poll_changes_total", "counter",
         "Changes of the events an HTTP/1.1 connection waits for, by what "
         "they cost: none (kept: the same events) or one epoll_ctl MOD "
         "(changed), where libuv would take the descriptor out of epoll "
         "and add it back.");
    mw_printf(w,
              "cairn_http_poll_changes_total{kind=\"kept\"} %" PRIu64 "\n"
              "cairn_http_poll_changes_total{kind=\"changed\"} %" PRIu64 "\n",
              kept, changed);
    metric_u64(w, "cairn_http_streams_open", "gauge",
               "Open gateway streams and WebSocket watch sockets.",
               h->streams_open);
    metric_u64(w, "cairn_http_streams_total", "counter",
               "Gateway streams and WebSocket watch sockets opened.",
               st->streams_total);
    metric_u64(w, "cairn_http_streams_stalled_total", "counter",
               "Streams closed while their client did not read.",
               st->streams_stalled);
    metric_u64(w, "cairn_http_ws_bad_messages_total", "counter",
               "WebSocket messages refused (undecodable or oversized).",
               st->ws_bad_messages);
    metric_u64(w, "cairn_http_ws_mux_requests_total", "counter",
               "Requests on /api/v1/stream sockets.", st->mux_requests);
    metric_u64(w, "cairn_http_ws_mux_errors_total", "counter",
               "Requests on /api/v1/stream sockets answered with an error.",
               st->mux_errors);
    metric_u64(w, "cairn_http_ws_mux_limit_hits_total", "counter",
               "Requests refused at --ws-subscriptions-max, "
               "--ws-message-bytes-max or the calls in flight bound.",
               st->mux_limit_hits);
    metric_u64(w, "cairn_http_ws_mux_subscriptions", "gauge",
               "Subscriptions open on /api/v1/stream sockets.",
               h->mux_subs_open);
}

int http__get_metrics(struct http_conn *c)
{
    struct server *s = c->h->s;
    struct buf b;
    struct mw w = {&b, 0};
    int rc;
    buf_init(&b, 1 << 20);
    if (s->node != NULL) {
        server_metrics(&w, s);
    }
    grpc_metrics(&w, s);
    http_metrics(&w, c->h);
    tls_metrics(&w, s);
    process_metrics(&w);
    if (w.err == 0) {
        w.err = svc_health_metrics(s, &b); /* registry/services */
    }
    if (w.err == 0) {
        w.err = svc_api_metrics(s, &b);
    }
    if (w.err == 0) {
        w.err = cfgapi_metrics(s, &b); /* registry/config */
    }
    rc = w.err;
    if (rc == 0) {
        rc = http__respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
                           b.data, b.len);
    }
    buf_free(&b);
    return rc;
}

/* -------------------------------------------------- /health and probes */

static int health_false(struct http_conn *c, const char *reason)
{
    struct buf b;
    int rc;
    buf_init(&b, 4096);
    rc = buf_append(&b, "{\"health\":\"false\",\"reason\":", 27);
    rc = rc != 0 ? rc : http__json_quote(&b, reason, strlen(reason));
    rc = rc != 0 ? rc : buf_append(&b, "}", 1);
    if (rc == 0) {
        rc = http__respond(c, 503, "application/json", b.data, b.len);
    }
    buf_free(&b);
    return rc;
}

static int probe_failed(struct http_conn *c, const char *check,
                        const char *reason)
{
    char text[512];
    snprintf(text, sizeof(text), "[-]%s failed: %s\n%s check failed\n", check,
             reason, c->purpose == HTTP_FOR_LIVEZ ? "livez" : "readyz");
    return http__respond(c, 503, "text/plain; charset=utf-8", text,
                         strlen(text));
}

/* ?exclude=NOSPACE (several exclude= may be given). */
static bool excludes_nospace(struct lws *wsi)
{
    char frag[128];
    for (int i = 0; i < 16; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
                                      WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0) {
            break;
        }
        if (strcmp(frag, "exclude=NOSPACE") == 0) {
            return true;
        }
    }
    return false;
}

static bool has_leader(struct server *s)
{
    struct node_status st;
    node_status(s->node, &st);
    return st.leader != 0;
}

/* A Range of the key "health" (what etcd reads for its probes). */
static int probe_read(struct http_conn *c, bool serializable,
                      uint32_t timeout_ms)
{
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    uint8_t req[64];
    r.key.data = (uint8_t *)"health";
    r.key.len = 6;
    r.serializable = serializable;
    ASSERT(protobuf_c_message_get_packed_size(&r.base) <= sizeof(req));
    size_t len = protobuf_c_message_pack(&r.base, req);
    c->m = api_find("/etcdserverpb.KV/Range");
    ASSERT(c->m != NULL);
    return http__call(c, req, len, timeout_ms);
}

int http__get_health(struct http_conn *c, enum http_purpose which)
{
    struct server *s = c->h->s;
    c->purpose = which;
    if (s->node == NULL || node_failed(s->node) != 0) {
        const char *why = s->node == NULL ? err_str(ERR_STOPPED)
                                          : err_str(node_failed(s->node));
        return which == HTTP_FOR_HEALTH
                   ? health_false(c, why)
                   : probe_failed(c, "serializable_read", why);
    }
    switch (which) {
    case HTTP_FOR_HEALTH:
        if (!has_leader(s)) {
            return health_false(c, "RAFT NO LEADER");
        }
        c->exclude_nospace = excludes_nospace(c->wsi);
        c->m = api_find("/etcdserverpb.Maintenance/Alarm");
        ASSERT(c->m != NULL);
        /* AlarmRequest{action: GET}: every field zero, no bytes */
        return http__call(c, (const uint8_t *)"", 0, HTTP_HEALTH_TIMEOUT_MS);
    case HTTP_FOR_READYZ:
        if (!has_leader(s)) {
            return probe_failed(c, "linearizable_read", err_str(ERR_NO_LEADER));
        }
        return probe_read(c, false, HTTP_HEALTH_TIMEOUT_MS);
    case HTTP_FOR_LIVEZ:
        return probe_read(c, true, HTTP_HEALTH_TIMEOUT_MS);
    default:
        UNREACHABLE();
    }
}

static const char *alarm_name(int type)
{
    switch (type) {
    case ETCDSERVERPB__ALARM_TYPE__NOSPACE:
        return "NOSPACE";
    case ETCDSERVERPB__ALARM_TYPE__CORRUPT:
        return "CORRUPT";
    default:
        return "UNKNOWN";
    }
}

/* The alarm list arrived: healthy unless one (not excluded) is raised. */
static int health_alarms(struct http_conn *c, const uint8_t *resp, size_t len)
{
    static const char ok[] = "{\"health\":\"true\"}";
    char reason[64] = "";
    Etcdserverpb__AlarmResponse *ar =
        etcdserverpb__alarm_response__unpack(http__pb_allocator(), len, resp);
    if (ar == NULL) {
        return health_false(c, "cannot read the alarm list");
    }
    for (size_t i = 0; i < ar->n_alarms && reason[0] == '\0'; i++) {
        int type = ar->alarms[i]->alarm;
        if (type == ETCDSERVERPB__ALARM_TYPE__NONE ||
            (type == ETCDSERVERPB__ALARM_TYPE__NOSPACE && c->exclude_nospace)) {
            continue;
        }
        snprintf(reason, sizeof(reason), "ALARM %s", alarm_name(type));
    }
    etcdserverpb__alarm_response__free_unpacked(ar, http__pb_allocator());
    if (reason[0] != '\0') {
        return health_false(c, reason);
    }
    return http__respond(c, 200, "application/json", ok, sizeof(ok) - 1);
}

void http__health_done(struct http_conn *c, int err, const uint8_t *resp,
                       size_t len)
{
    int rc;
    if (c->purpose == HTTP_FOR_HEALTH) {
        rc = err != 0 ? health_false(c, err_str(err))
                      : health_alarms(c, resp, len);
    } else if (err != 0) {
        rc = probe_failed(c,
                          c->purpose == HTTP_FOR_LIVEZ ? "serializable_read"
                                                       : "linearizable_read",
                          err_str(err));
    } else {
        rc = http__respond(c, 200, "text/plain; charset=utf-8", "ok", 2);
    }
    if (rc != 0) {
        http__conn_kill(c);
    }
}

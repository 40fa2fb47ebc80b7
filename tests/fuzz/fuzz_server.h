/*
 * fuzz_server.h - one real single-member cairnd (registry/server) inside a
 * fuzz target's process: its own loop, a data directory on tmpfs, the
 * client port on 127.0.0.1 with a kernel-chosen port, fsync off. Started
 * once per process (LLVMFuzzerInitialize); inputs then talk to it, and the
 * loop runs only while a target pumps it.
 *
 * The store keeps what earlier inputs wrote, so a crash may depend on more
 * than its own input; the targets keep writes small and the quota low so a
 * long run stays bounded (NOSPACE is then one more answer to exercise).
 */
#ifndef CAIRN_TESTS_FUZZ_SERVER_H
#define CAIRN_TESTS_FUZZ_SERVER_H

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <uv.h>

#include "base/log.h"
#include "registry/server/api_auth.h"
#include "registry/server/api_lock.h"
#include "registry/server/options.h"
#include "registry/server/server.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_API_METHODS_MAX 96

/* Methods fuzz_api leaves out: they would change the cluster for every
 * later input, or wait for a lock or leadership an earlier input holds. */
static inline bool fuzz_api_excluded(const char *path)
{
    static const char *const no[] = {
        "/etcdserverpb.Cluster/MemberAdd",
        "/etcdserverpb.Cluster/MemberRemove",
        "/etcdserverpb.Cluster/MemberUpdate",
        "/etcdserverpb.Cluster/MemberPromote",
        "/etcdserverpb.Maintenance/MoveLeader",
        "/etcdserverpb.Maintenance/Defragment",
        "/etcdserverpb.Auth/AuthEnable",
        "/v3lockpb.Lock/Lock",
        "/v3electionpb.Election/Campaign",
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
        if (strcmp(path, no[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* The methods fuzz_api picks from (byte 0 of an input indexes this list);
 * out has room for FUZZ_API_METHODS_MAX. Returns the count. */
static inline size_t fuzz_api_methods(const struct api_method **out)
{
    const struct api_method *tabs[3] = {api_methods, api_auth_methods,
                                        api_lock_methods};
    size_t counts[3] = {api_methods_count, api_auth_methods_count,
                        api_lock_methods_count};
    size_t n = 0;
    for (size_t t = 0; t < 3; t++) {
        for (size_t i = 0; i < counts[t] && n < FUZZ_API_METHODS_MAX; i++) {
            if (!fuzz_api_excluded(tabs[t][i].path)) {
                out[n++] = &tabs[t][i];
            }
        }
    }
    return n;
}

struct fuzz_server {
    uv_loop_t loop;
    struct options opt;
    struct server s;
    char dir[256];
    struct sockaddr_in client_addr;
};

static inline uint64_t fuzz_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void fuzz_server_set(struct fuzz_server *f, const char *name,
                                   const char *value)
{
    char err[256];
    if (options_set(&f->opt, name, value, err, sizeof(err)) != 0) {
        fprintf(stderr, "fuzz server: --%s=%s: %s\n", name, value, err);
        abort();
    }
}

/* Start the member and wait (bounded) until it leads its cluster of one. */
static inline void fuzz_server_start(struct fuzz_server *f)
{
    char data[512], msg[512];
    signal(SIGPIPE, SIG_IGN);
    /* FUZZ_LOG=1 shows the server's log (debug level). */
    log_setup(getenv("FUZZ_LOG") ? LOG_DEBUG : LOG_FATAL, LOG_FORMAT_TEXT,
              stderr);
    FUZZ_CHECK(uv_loop_init(&f->loop) == 0);
    fuzz_scratch_dir(f->dir, sizeof(f->dir));
    snprintf(data, sizeof(data), "%s/data", f->dir);
    options_defaults(&f->opt);
    fuzz_server_set(f, "name", "fz");
    fuzz_server_set(f, "data-dir", data);
    fuzz_server_set(f, "listen-client-urls", "http://127.0.0.1:0");
    fuzz_server_set(f, "advertise-client-urls", "http://127.0.0.1:2379");
    fuzz_server_set(f, "listen-peer-urls", "http://127.0.0.1:2380");
    fuzz_server_set(f, "initial-advertise-peer-urls", "http://127.0.0.1:2380");
    fuzz_server_set(f, "initial-cluster", "fz=http://127.0.0.1:2380");
    fuzz_server_set(f, "heartbeat-interval", "10");
    fuzz_server_set(f, "election-timeout", "50");
    fuzz_server_set(f, "quota-backend-bytes", "67108864");
    fuzz_server_set(f, "unsafe-no-fsync", "true");
    msg[0] = '\0';
    if (options_validate(&f->opt, msg, sizeof(msg)) != 0 ||
        server_start(&f->s, &f->loop, &f->opt, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "fuzz server: cannot start: %s\n", msg);
        abort();
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    FUZZ_CHECK(uv_tcp_getsockname(&f->s.listeners[0].tcp,
                                  (struct sockaddr *)&ss, &len) == 0);
    memcpy(&f->client_addr, &ss, sizeof(f->client_addr));
    uint64_t end = fuzz_now_ms() + 20000;
    for (;;) {
        struct node_status st;
        node_status(f->s.node, &st);
        if (st.leader == st.member_id && st.applied_index >= 1) {
            break;
        }
        FUZZ_CHECK(fuzz_now_ms() < end);
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

#endif

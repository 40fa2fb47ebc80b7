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
#include <stdbool.h>
#include <strings.h>
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
    bool tls; /* set before start: the client port is https (auto-tls) */
    /* set before start, with tls: client certificates are required and
     * verified against this CA (PEM), written to the data's parent */
    const char *client_ca_pem;
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

/* Start the member and wait (bounded) until it leads its cluster of one;
 * f->tls (set before) makes the client port https. */
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
    if (f->tls) {
        /* A self-signed certificate made in memory at start. */
        fuzz_server_set(f, "listen-client-urls", "https://127.0.0.1:0");
        fuzz_server_set(f, "advertise-client-urls", "https://127.0.0.1:2379");
        fuzz_server_set(f, "auto-tls", "true");
        if (f->client_ca_pem != NULL) {
            char ca[512];
            snprintf(ca, sizeof(ca), "%s/ca.pem", f->dir);
            fuzz_write_file(f->dir, "ca.pem", (const uint8_t *)f->client_ca_pem,
                            strlen(f->client_ca_pem));
            fuzz_server_set(f, "trusted-ca-file", ca);
            fuzz_server_set(f, "client-cert-auth", "true");
        }
    } else {
        fuzz_server_set(f, "listen-client-urls", "http://127.0.0.1:0");
        fuzz_server_set(f, "advertise-client-urls", "http://127.0.0.1:2379");
    }
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

/* ------------------------------------------------ a client connection
 * What the targets that talk to the server over loopback share: send all
 * bytes while running the server's loop, and read until the server closes
 * or goes quiet, all within a deadline (a fuzz check when it passes: a
 * connection the server neither answers nor closes is a finding). */

/* Run the loop until fd has one of events, within end. */
static inline void fuzz_conn_pump(struct fuzz_server *f, int fd, short events,
                                  uint64_t end)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (poll(&p, 1, 1) > 0) {
            return;
        }
        if (fuzz_now_ms() >= end) {
            fprintf(stderr, "fuzz server: no progress before the deadline\n");
        }
        FUZZ_CHECK(fuzz_now_ms() < end);
    }
}

/* Send p[0..n) on a non-blocking loop; what the server answers meanwhile
 * is read and dropped. Returns false when the server closed on us. */
static inline bool fuzz_conn_send(struct fuzz_server *f, int fd,
                                  const uint8_t *p, size_t n, uint64_t end)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            fuzz_conn_pump(f, fd, POLLOUT | POLLIN, end);
            char sink[4096];
            (void)recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        } else {
            return false;
        }
    }
    return true;
}

/* Read and run the loop until the server closes (true) or, with quiet_ms,
 * until nothing happened for that long (false). A Raft proposal still
 * pending counts as something happening. With out, what was read is
 * appended there (up to its capacity); done, when set, ends the wait
 * (false) as soon as it says the answer is complete. */
struct fuzz_answer {
    char *p;
    size_t len, cap;
};

static inline bool fuzz_conn_drain(struct fuzz_server *f, int fd, bool show,
                                   uint64_t end, uint64_t quiet_ms,
                                   struct fuzz_answer *out,
                                   bool (*done)(const struct fuzz_answer *))
{
    uint64_t last = fuzz_now_ms();
    for (;;) {
        char sink[4096];
        struct pollfd p = {.fd = fd, .events = POLLIN};
        struct node_status st;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        /* The server stops itself only when its member failed. */
        FUZZ_CHECK(f->s.node != NULL);
        node_status(f->s.node, &st);
        if (st.proposals_pending > 0) {
            last = fuzz_now_ms();
        }
        if (poll(&p, 1, 1) > 0) {
            ssize_t r = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                return true;
            }
            if (r > 0 && show) {
                fwrite(sink, 1, (size_t)r, stderr);
            }
            if (r > 0 && out != NULL) {
                size_t k = (size_t)r < out->cap - out->len
                               ? (size_t)r
                               : out->cap - out->len;
                memcpy(out->p + out->len, sink, k);
                out->len += k;
                if (done != NULL && done(out)) {
                    return false;
                }
            }
            last = fuzz_now_ms();
        }
        if (quiet_ms > 0 && fuzz_now_ms() - last >= quiet_ms) {
            return false;
        }
        if (fuzz_now_ms() >= end) {
            fprintf(stderr, "fuzz server: no answer or close before the "
                            "deadline\n");
        }
        FUZZ_CHECK(fuzz_now_ms() < end);
    }
}

/* Run the loop a few turns, so the server finishes closing what the
 * client closed. */
static inline void fuzz_server_settle(struct fuzz_server *f)
{
    for (int i = 0; i < 8; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
}

/* True once a whole HTTP/1.1 answer is in a: its head, then a body of
 * its Content-Length, or chunks up to the last one. An answer without
 * either ends with the connection. */
static inline bool fuzz_http_complete(const struct fuzz_answer *a)
{
    const char *p = a->p, *e = a->p + a->len;
    if (a->len == a->cap) {
        return true; /* as much as the caller wants */
    }
    const char *h = memmem(p, a->len, "\r\n\r\n", 4);
    if (h == NULL) {
        return false;
    }
    size_t head = (size_t)(h + 4 - p);
    for (const char *l = p; l < h; l++) {
        if (strncasecmp(l, "\ncontent-length:", 16) == 0) {
            size_t n = strtoul(l + 16, NULL, 10);
            return a->len - head >= n;
        }
        if (strncasecmp(l, "\ntransfer-encoding: chunked", 27) == 0) {
            return e - (h + 2) >= 7 && memcmp(e - 7, "\r\n0\r\n\r\n", 7) == 0;
        }
    }
    return false;
}

#endif

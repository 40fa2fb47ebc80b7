/*
 * loopback_floor_main.c - loopback-floor: what pushing one small message
 * to each of N loopback TCP connections costs on this machine with no
 * application work at all, and how long until every receiver has it (and
 * its ack is back). The floor under issue 12's and 13's push figures with
 * a socket per subscriber (BENCHMARKS.md, "The loopback floor").
 *
 *   build/release/loopback-floor [N [ROUNDS [push|ack [MSG_BYTES]]]]
 *       defaults: 10000 20 ack 160
 *
 * Two processes, as a server and its subscribers are: the server accepts N
 * connections from the client process (TCP_NODELAY on both ends, as
 * libwebsockets and Go set it). Each round the server writes one message
 * of MSG_BYTES to every connection, one send() each from one thread (as
 * cairnd's hub pass does), stamped with the round's start; the client
 * process reads with epoll and, in ack mode, answers each message with a
 * 40-byte ack on its connection at once (as regbench's subscribers do);
 * the server reads the acks after its sends. Figures: receipt latency at
 * the client, ack latency at the server (ack mode), each side's CPU per
 * message. Rounds are 300 ms apart. Traffic stays on 127.0.0.1; both
 * processes end by themselves (the client at the last message or 30 s
 * without one).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define ACK_BYTES 40
#define GAP_MS    300

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, size_t n)
{
    if (n == 0) {
        printf("%s: none\n", what);
        return;
    }
    qsort(v, n, sizeof(*v), cmp_d);
    printf("%s: n %zu p50 %.1f ms p90 %.1f ms p99 %.1f ms max %.1f ms\n", what,
           n, v[n / 2] * 1e3, v[n * 9 / 10] * 1e3, v[n * 99 / 100] * 1e3,
           v[n - 1] * 1e3);
}

static void nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Read whole fixed-size records from fd: *have carries a partial one.
 * Calls on(rec) for each. Returns -1 at EOF or error. */
static int read_records(int fd, size_t size, uint32_t *have, char *part,
                        void (*on)(const char *rec, void *ctx), void *ctx)
{
    char buf[65536];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r < 0) {
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        }
        if (r == 0) {
            return -1;
        }
        for (ssize_t o = 0; o < r;) {
            size_t take = size - *have;
            if ((size_t)(r - o) < take) {
                take = (size_t)(r - o);
            }
            memcpy(part + *have, buf + o, take);
            *have += (uint32_t)take;
            o += (ssize_t)take;
            if (*have == size) {
                on(part, ctx);
                *have = 0;
            }
        }
    }
}

struct side {
    int *fds;
    uint32_t *have;
    char *parts;
    size_t n;
    double *lat;
    size_t lat_n, lat_cap;
    bool ack;
    int cur; /* the fd being read */
    double last;
};

static void on_msg(const char *rec, void *ctx)
{
    struct side *s = ctx;
    double t0;
    double t = now();
    memcpy(&t0, rec, sizeof(t0));
    if (s->lat_n < s->lat_cap) {
        s->lat[s->lat_n++] = t - t0;
    }
    s->last = t;
    if (s->ack) {
        char a[ACK_BYTES];
        memset(a, 'a', sizeof(a));
        memcpy(a, &t0, sizeof(t0));
        (void)send(s->cur, a, sizeof(a), MSG_NOSIGNAL);
    }
}

static int client(int port, size_t n, int rounds, bool ack, size_t msg)
{
    struct side s = {0};
    struct sockaddr_in sa = {0};
    struct epoll_event ev, evs[256];
    int ep = epoll_create1(0);
    double c0;
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s.fds = calloc(n, sizeof(int));
    s.have = calloc(n, sizeof(uint32_t));
    s.parts = calloc(n, msg);
    s.lat_cap = n * (size_t)rounds;
    s.lat = calloc(s.lat_cap, sizeof(double));
    s.ack = ack;
    if (ep < 0 || s.fds == NULL || s.have == NULL || s.parts == NULL ||
        s.lat == NULL) {
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
            perror("loopback-floor: connect");
            return 1;
        }
        nodelay(fd);
        s.fds[i] = fd;
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    c0 = cpu_s();
    s.last = now();
    while (s.lat_n < s.lat_cap && now() - s.last < 30) {
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int j = 0; j < k; j++) {
            size_t i = evs[j].data.u64;
            s.cur = s.fds[i];
            if (read_records(s.fds[i], msg, &s.have[i], s.parts + i * msg,
                             on_msg, &s) != 0) {
                epoll_ctl(ep, EPOLL_CTL_DEL, s.fds[i], NULL);
            }
        }
    }
    double c = cpu_s() - c0;
    report("client receipt", s.lat, s.lat_n);
    printf("client CPU %.2f us a message (%.2f s)\n",
           s.lat_n ? c * 1e6 / (double)s.lat_n : 0.0, c);
    fflush(stdout);
    return s.lat_n == s.lat_cap ? 0 : 1;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 10000;
    int rounds = argc > 2 ? atoi(argv[2]) : 20;
    bool ack = argc > 3 ? strcmp(argv[3], "push") != 0 : true;
    size_t msg = argc > 4 ? (size_t)atol(argv[4]) : 160;
    struct rlimit rl;
    struct sockaddr_in sa = {0};
    socklen_t sl = sizeof(sa);
    int lfd, ep, status = 0;
    pid_t pid;
    if (n < 1 || n > 60000 || rounds < 1 || rounds > 1000 || msg < 16 ||
        msg > 60000) {
        fprintf(stderr, "usage: loopback-floor [N<=60000 [ROUNDS [push|ack "
                        "[MSG_BYTES 16-60000]]]]\n");
        return 2;
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < n + 64) {
        fprintf(stderr, "loopback-floor: RLIMIT_NOFILE %llu < %zu\n",
                (unsigned long long)rl.rlim_cur, n + 64);
        return 1;
    }
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
        perror("loopback-floor: listen");
        return 1;
    }
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        close(lfd);
        _exit(client(ntohs(sa.sin_port), n, rounds, ack, msg));
    }
    struct side s = {0};
    s.fds = calloc(n, sizeof(int));
    s.have = calloc(n, sizeof(uint32_t));
    s.parts = calloc(n, ACK_BYTES);
    s.lat_cap = n * (size_t)rounds;
    s.lat = calloc(s.lat_cap, sizeof(double));
    char *m = calloc(1, msg);
    ep = epoll_create1(0);
    if (pid < 0 || s.fds == NULL || s.have == NULL || s.parts == NULL ||
        s.lat == NULL || m == NULL || ep < 0) {
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            perror("loopback-floor: accept");
            kill(pid, SIGTERM);
            return 1;
        }
        nodelay(fd);
        s.fds[i] = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    usleep(300 * 1000);
    memset(m, 'm', msg);
    double c0 = cpu_s();
    for (int r = 0; r < rounds; r++) {
        double t0 = now();
        size_t want = s.lat_n + n;
        memcpy(m, &t0, sizeof(t0));
        for (size_t i = 0; i < n; i++) {
            if (send(s.fds[i], m, msg, MSG_NOSIGNAL) != (ssize_t)msg) {
                perror("loopback-floor: send");
                kill(pid, SIGTERM);
                return 1;
            }
        }
        while (ack && s.lat_n < want && now() - t0 < 30) {
            struct epoll_event evs[256];
            int k = epoll_wait(ep, evs, 256, 1000);
            for (int j = 0; j < k; j++) {
                size_t i = evs[j].data.u64;
                read_records(s.fds[i], ACK_BYTES, &s.have[i],
                             s.parts + i * ACK_BYTES, on_msg,
                             &s); /* s.ack is false: acks go unanswered */
            }
        }
        double left = GAP_MS / 1e3 - (now() - t0);
        if (left > 0) {
            usleep((useconds_t)(left * 1e6));
        }
    }
    double c = cpu_s() - c0;
    waitpid(pid, &status, 0);
    if (ack) {
        report("server ack", s.lat, s.lat_n);
    }
    printf("server CPU %.2f us a message (%.2f s, %d rounds of %zu, %zu-byte "
           "messages, %s)\n",
           c * 1e6 / ((double)n * rounds), c, rounds, n, msg,
           ack ? "acked" : "push only");
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

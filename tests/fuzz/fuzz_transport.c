/*
 * fuzz_transport.c - the peer transport's handshake and frame parsing
 * (consensus/transport) on arbitrary bytes from a peer, over a real loopback
 * connection to a real transport on a libuv loop.
 *
 * Why a socket: the parsing is not a separate pure function. The byte
 * layouts (tr__hello_decode, tr__frame_decode, tr__reply_decode in
 * transport_wire.c) are pure but do no validation; the checks (in_hello,
 * hello_decide, out_reply, next_frame, tr__frame_allowed, the snapshot
 * stream in transport_snap.c) live in transport_conn.c and work on a
 * struct transport__conn with its libuv handles. Exposing them would need
 * a "feed bytes to a connection state machine" entry point that takes a
 * write/close sink instead of the uv_tcp_t; until then a socket it is.
 *
 * Goal: whatever a peer sends, the transport delivers well-formed frames,
 * refuses or closes on malformed ones, and closes the connection when the
 * peer is done; it never crashes, asserts, leaks or hangs. Delivered
 * messages go through raft_msg_decode, as the node does.
 *
 * Input: byte 0 bit 0 picks the side:
 *   0  accepting side: the rest is what a dialler sends us (hello, frames);
 *   1  dialling side: the transport dials us to send a message; the rest is
 *      what we answer (reply, reason, then any frames).
 * We then half-close and wait, bounded, for the transport to close its end.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/log.h"
#include "consensus/raft/raft.h"
#include "consensus/transport/transport.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 16384
#define CLUSTER      0xC1C1C1C1ull
#define SELF         1
#define PEER         2
#define WAIT_MS      10000 /* a connection still open by then is a hang */

static uv_loop_t loop;
static struct transport t;
static struct sockaddr_in listen_addr;
static int peer_fd = -1; /* our listener for the dialling side */
static char peer_url[64];

static void on_recv(void *owner, uint64_t from, const uint8_t *data, size_t len)
{
    struct raft_msg m;
    (void)owner;
    (void)from;
    FUZZ_CHECK(len <= (size_t)1 << 20);
    if (getenv("FUZZ_SHOW") != NULL) {
        fprintf(stderr, "message, %zu bytes\n", len);
    }
    if (raft_msg_decode(data, len, 1 << 20, &m) == 0) {
        raft_msg_free_decoded(&m);
    }
}

static void on_snap(void *owner, struct transport_snap_in *in, uint64_t from,
                    enum transport_snap_event ev, const uint8_t *data,
                    size_t len, int status)
{
    (void)owner;
    (void)in;
    (void)from;
    FUZZ_CHECK(ev >= TRANSPORT_SNAP_BEGIN && ev <= TRANSPORT_SNAP_ABORT);
    if (getenv("FUZZ_SHOW") != NULL) {
        fprintf(stderr, "snapshot event %d, %zu bytes, status %d\n", ev, len,
                status);
    }
    FUZZ_CHECK(data != NULL || len == 0);
    FUZZ_CHECK(ev == TRANSPORT_SNAP_ABORT ? status != 0 : status == 0);
}

static int bound_listener(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    socklen_t al = sizeof(*a);
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    FUZZ_CHECK(fd >= 0);
    FUZZ_CHECK(bind(fd, (struct sockaddr *)a, sizeof(*a)) == 0);
    FUZZ_CHECK(listen(fd, 64) == 0);
    FUZZ_CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    FUZZ_CHECK(getsockname(fd, (struct sockaddr *)a, &al) == 0);
    return fd;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_setup(LOG_FATAL, LOG_FORMAT_TEXT, stderr);
    FUZZ_CHECK(uv_loop_init(&loop) == 0);
    struct transport_config cfg;
    transport_config_init(&cfg);
    cfg.cluster_id = CLUSTER;
    cfg.self_id = SELF;
    cfg.seed = 7;
    cfg.max_msg_bytes = 1 << 20;
    cfg.snapshot_chunk_bytes = 4096;
    cfg.backoff_min_ms = 1;
    cfg.backoff_max_ms = 2;
    cfg.recv_cb = on_recv;
    cfg.snap_cb = on_snap;
    FUZZ_CHECK(transport_init(&t, &loop, &cfg) == 0);
    FUZZ_CHECK(transport_listen(&t, "127.0.0.1:0") == 0);
    struct sockaddr_storage ss;
    FUZZ_CHECK(transport_listen_addr(&t, &ss) == 0);
    memcpy(&listen_addr, &ss, sizeof(listen_addr));
    struct sockaddr_in pa;
    peer_fd = bound_listener(&pa);
    snprintf(peer_url, sizeof(peer_url), "127.0.0.1:%u", ntohs(pa.sin_port));
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Run the loop while waiting for fd to become readable. */
static void pump(int fd, short events)
{
    uint64_t end = now_ms() + WAIT_MS;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        uv_run(&loop, UV_RUN_NOWAIT);
        if (poll(&p, 1, 1) > 0) {
            return;
        }
        FUZZ_CHECK(now_ms() < end);
    }
}

/* Send everything, then half-close; drain until the transport closes. */
static void talk(int fd, const uint8_t *p, size_t n)
{
    size_t off = 0;
    uint8_t sink[4096];
    while (off < n) {
        ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pump(fd, POLLOUT);
            continue;
        }
        break; /* the transport closed on us already */
    }
    shutdown(fd, SHUT_WR);
    for (;;) {
        pump(fd, POLLIN);
        ssize_t r = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            break;
        }
    }
}

static void no_time_wait(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void accepting_side(const uint8_t *p, size_t n)
{
    int fd = fuzz_connect((struct sockaddr *)&listen_addr, sizeof(listen_addr));
    talk(fd, p, n);
    close(fd);
}

/* Accept the transport's connection and read its hello. Connections left
 * in the backlog by a reconnect of an earlier input are skipped. */
static int accept_hello(void)
{
    uint8_t hello[TRANSPORT_HELLO_BYTES];
    uint64_t end = now_ms() + WAIT_MS;
    for (;;) {
        FUZZ_CHECK(now_ms() < end);
        pump(peer_fd, POLLIN);
        int fd = accept4(peer_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            continue;
        }
        no_time_wait(fd);
        size_t got = 0;
        while (got < sizeof(hello)) {
            pump(fd, POLLIN);
            ssize_t r =
                recv(fd, hello + got, sizeof(hello) - got, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                break;
            }
            got += r > 0 ? (size_t)r : 0;
        }
        if (got == sizeof(hello)) {
            return fd;
        }
        close(fd);
    }
}

static void dialling_side(const uint8_t *p, size_t n)
{
    static const uint8_t msg[] = "a raft message";
    FUZZ_CHECK(transport_peer_add(&t, PEER, peer_url) == 0);
    FUZZ_CHECK(transport_send(&t, PEER, msg, sizeof(msg)) == 0);
    int fd = accept_hello();
    talk(fd, p, n);
    close(fd);
    FUZZ_CHECK(transport_peer_remove(&t, PEER) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    if (data[0] & 1) {
        dialling_side(data + 1, size - 1);
    } else {
        accepting_side(data + 1, size - 1);
    }
    /* Closed connections free their memory on later loop passes. */
    for (int i = 0; i < 4; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    struct transport_stats st;
    transport_stats(&t, &st);
    FUZZ_CHECK(st.conns_in_open <= 1);
    return 0;
}

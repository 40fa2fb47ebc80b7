/*
 * fuzz_client_port.c - the client port of a real single-member server
 * (tests/fuzz/fuzz_server.h) on arbitrary bytes from a client over
 * loopback: the preface sniffing that splits gRPC from HTTP/1.1, our
 * nghttp2 callbacks (request header checks: :method, :path, content-type,
 * grpc-timeout, grpc-encoding, metadata, header list bounds; the message
 * deframer and decoding) in registry/grpc, and the HTTP/1.1 side
 * (JSON gateway, /health, /version, ...) in registry/http. nghttp2 and
 * libwebsockets parse the framing; what they hand us is ours.
 *
 * Goal: whatever a client sends, the server answers or closes, and closes
 * once the client half-closes and its calls are done (bounded wait); no
 * crash, no assertion, no leak; the member stays healthy.
 *
 * Input: byte 0 bit 0 set: gRPC, we send the HTTP/2 client preface, then
 * the rest (frames: SETTINGS, HEADERS with literal header fields, DATA);
 * clear: the rest as is (HTTP/1.1 requests, or anything).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tests/fuzz/fuzz_server.h"

#define FUZZ_MAX_LEN 8192
#define WAIT_MS      15000
#define QUIET_MS     8

static struct fuzz_server fs;

static void cleanup(void)
{
    fuzz_empty_dir(fs.dir);
    rmdir(fs.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_server_start(&fs);
    atexit(cleanup);
    return 0;
}

static void pump(int fd, short events, uint64_t end)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        uv_run(&fs.loop, UV_RUN_NOWAIT);
        if (poll(&p, 1, 1) > 0) {
            return;
        }
        if (fuzz_now_ms() >= end) {
            fprintf(stderr, "client port: no close within %d ms\n", WAIT_MS);
        }
        FUZZ_CHECK(fuzz_now_ms() < end);
    }
}

/* Read and run the loop until the server closes (true) or, with quiet_ms,
 * until nothing happened for that long (false). */
static bool drain(int fd, bool show, uint64_t end, uint64_t quiet_ms)
{
    uint64_t last = fuzz_now_ms();
    for (;;) {
        char sink[4096];
        struct pollfd p = {.fd = fd, .events = POLLIN};
        struct node_status st;
        uv_run(&fs.loop, UV_RUN_NOWAIT);
        /* The server stops itself only when its member failed. */
        FUZZ_CHECK(fs.s.node != NULL);
        node_status(fs.s.node, &st);
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
            last = fuzz_now_ms();
        }
        if (quiet_ms > 0 && fuzz_now_ms() - last >= quiet_ms) {
            return false;
        }
        if (fuzz_now_ms() >= end) {
            fprintf(stderr, "client port: no close within %d ms\n", WAIT_MS);
        }
        FUZZ_CHECK(fuzz_now_ms() < end);
    }
}

static void send_all(int fd, const uint8_t *p, size_t n, uint64_t end)
{
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(fd, p + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            pump(fd, POLLOUT | POLLIN, end);
            char sink[4096];
            (void)recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
        } else {
            return; /* the server closed on us already */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (size < 1) {
        return 0;
    }
    uint64_t end = fuzz_now_ms() + WAIT_MS;
    int fd = fuzz_connect((struct sockaddr *)&fs.client_addr,
                          sizeof(fs.client_addr));
    if (data[0] & 1) {
        send_all(fd, (const uint8_t *)preface, sizeof(preface) - 1, end);
    }
    send_all(fd, data + 1, size - 1, end);
    /* FUZZ_SHOW=1 prints the answer (to check what a seed reaches). */
    bool show = getenv("FUZZ_SHOW") != NULL;
    /* Let the requests run to their answers before half-closing: the
     * server drops calls still in flight when the client half-closes. */
    bool closed = drain(fd, show, end, QUIET_MS);
    if (!closed) {
        shutdown(fd, SHUT_WR);
        (void)drain(fd, show, end, 0);
    }
    close(fd);
    /* Let the server finish closing the connection. */
    for (int i = 0; i < 8; i++) {
        uv_run(&fs.loop, UV_RUN_NOWAIT);
    }
    FUZZ_CHECK(fs.s.node != NULL && node_failed(fs.s.node) == 0);
    return 0;
}

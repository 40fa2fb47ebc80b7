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
#define WAIT_MS      15000 /* a fuzz check past it */
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
        (void)fuzz_conn_send(&fs, fd, (const uint8_t *)preface,
                             sizeof(preface) - 1, end);
    }
    (void)fuzz_conn_send(&fs, fd, data + 1, size - 1, end);
    /* FUZZ_SHOW=1 prints the answer (to check what a seed reaches). */
    bool show = getenv("FUZZ_SHOW") != NULL;
    /* Let the requests run to their answers before half-closing: the
     * server drops calls still in flight when the client half-closes. */
    bool closed = fuzz_conn_drain(&fs, fd, show, end, QUIET_MS, NULL, NULL);
    if (!closed) {
        shutdown(fd, SHUT_WR);
        (void)fuzz_conn_drain(&fs, fd, show, end, 0, NULL, NULL);
    }
    close(fd);
    fuzz_server_settle(&fs);
    FUZZ_CHECK(fs.s.node != NULL && node_failed(fs.s.node) == 0);
    return 0;
}

/*
 * fuzz_ws.c - WebSocket sockets of a real single-member server
 * (tests/fuzz/fuzz_server.h) on arbitrary frames: the multiplexed stream
 * (GET /api/v1/stream: subscribe, unsubscribe, ack, session, keepalive;
 * registry/http/http_mux.c), the discovery and config watch streams
 * (/api/v1/watch/registry/<ns>, /api/v1/watch/config/<ns>: acks) and
 * etcd's watch over WebSocket (/ws/watch) in registry/http/http_stream.c.
 * libwebsockets parses the framing (lengths, masks, fragments, control
 * frames, UTF-8); what it hands us is ours.
 *
 * Goal: whatever frames come, the server answers or closes, never
 * crashes, asserts or leaks; once the client is gone its subscriptions
 * are released (the open subscriber gauge returns to zero within a bound)
 * and the member stays healthy.
 *
 * Input: byte 0, bits 0-1: the path (stream, registry watch, config
 * watch, etcd watch); bit 2: the rest goes as is after the upgrade (raw
 * bytes: any length encoding, unmasked frames, garbage); clear: the rest
 * is a list of frames the harness encodes, each
 *   h  (FIN bit 7, RSV bits 4-6, opcode bits 0-3),
 *   f  (bit 0: unmasked; bit 1: the header claims 2^63-1 bytes; bit 2:
 *       the 16-bit length form, bit 3: the 64-bit form, even when shorter
 *       would do; bits 4-7: the mask key's seed),
 *   n  (2 bytes, little endian: payload bytes, cut to what is left),
 *   the payload.
 * At start the server holds an instance (shop/cart/i1) and a config
 * (prod/shop/app.yaml), so subscriptions start with a snapshot.
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
#define ANSWER_MAX   (64 * 1024)

static const char *const paths[] = {
    "/api/v1/stream",
    "/api/v1/watch/registry/shop",
    "/api/v1/watch/config/prod?client_id=pod-1&labels=zone=z1",
    "/ws/watch",
};

static struct fuzz_server fs;
static char answer_buf[ANSWER_MAX];

static void cleanup(void)
{
    fuzz_empty_dir(fs.dir);
    rmdir(fs.dir);
}

static bool head_complete(const struct fuzz_answer *a)
{
    return a->len == a->cap || memmem(a->p, a->len, "\r\n\r\n", 4) != NULL;
}

/* One plain HTTP/1.1 call at start; returns the status. */
static int setup_call(const char *method, const char *path, const char *body)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n"
                     "\r\n%s",
                     method, path, strlen(body), body);
    int fd = fuzz_connect((struct sockaddr *)&fs.client_addr,
                          sizeof(fs.client_addr));
    struct fuzz_answer a = {.p = answer_buf, .cap = sizeof(answer_buf) - 1};
    uint64_t end = fuzz_now_ms() + WAIT_MS;
    FUZZ_CHECK(fuzz_conn_send(&fs, fd, (const uint8_t *)req, (size_t)n, end));
    (void)fuzz_conn_drain(&fs, fd, false, end, 0, &a, fuzz_http_complete);
    close(fd);
    fuzz_server_settle(&fs);
    return a.len > 12 ? atoi(a.p + 9) : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_server_start(&fs);
    atexit(cleanup);
    FUZZ_CHECK(setup_call("PUT", "/api/v1/registry/shop/cart/i1",
                          "{\"addr\":\"127.0.0.1:8080\",\"ttl\":3600,"
                          "\"zone\":\"z1\"}") == 200);
    FUZZ_CHECK(setup_call("PUT", "/api/v1/config/prod/shop/app.yaml",
                          "{\"content\":\"a: 1\\n\",\"format\":\"yaml\"}") ==
               200);
    return 0;
}

/* Encode the structured frames of p[0..n) into out (room for 2n + 14 per
 * frame: at most 14 header bytes per 4 input bytes). */
static size_t frames(const uint8_t *p, size_t n, uint8_t *out)
{
    size_t o = 0, i = 0;
    while (i + 4 <= n) {
        uint8_t h = p[i], f = p[i + 1];
        size_t len = (size_t)p[i + 2] | (size_t)p[i + 3] << 8;
        i += 4;
        if (len > n - i) {
            len = n - i;
        }
        bool masked = !(f & 1);
        out[o++] = h;
        uint8_t m = masked ? 0x80 : 0;
        if (f & 2) {
            out[o++] = m | 127;
            memcpy(out + o, "\x7f\xff\xff\xff\xff\xff\xff\xff", 8);
            o += 8;
        } else if ((f & 8) || len > 0xffff) {
            out[o++] = m | 127;
            for (int b = 7; b >= 0; b--) {
                out[o++] = (uint8_t)((uint64_t)len >> (8 * b));
            }
        } else if ((f & 4) || len > 125) {
            out[o++] = m | 126;
            out[o++] = (uint8_t)(len >> 8);
            out[o++] = (uint8_t)len;
        } else {
            out[o++] = m | (uint8_t)len;
        }
        uint8_t key[4] = {(uint8_t)(f & 0xf0), 0x5a, (uint8_t)(f * 7), 0x13};
        if (masked) {
            memcpy(out + o, key, 4);
            o += 4;
        }
        for (size_t k = 0; k < len; k++) {
            out[o++] = masked ? p[i + k] ^ key[k & 3] : p[i + k];
        }
        i += len;
    }
    return o;
}

/* The client is gone: its subscriptions go within a bound. */
static void wait_released(void)
{
    uint64_t end = fuzz_now_ms() + 5000;
    while (fs.s.svc_ctr.subscribers_open > 0) {
        if (fuzz_now_ms() >= end) {
            fprintf(stderr, "ws: %llu subscribers still open\n",
                    (unsigned long long)fs.s.svc_ctr.subscribers_open);
        }
        FUZZ_CHECK(fuzz_now_ms() < end);
        uv_run(&fs.loop, UV_RUN_NOWAIT);
        struct pollfd none;
        (void)poll(&none, 0, 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[FUZZ_MAX_LEN * 4 + 64];
    char up[512];
    if (size < 1 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    uint64_t end = fuzz_now_ms() + WAIT_MS;
    bool show = getenv("FUZZ_SHOW") != NULL;
    int n = snprintf(up, sizeof(up),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     paths[data[0] & 3]);
    int fd = fuzz_connect((struct sockaddr *)&fs.client_addr,
                          sizeof(fs.client_addr));
    struct fuzz_answer a = {.p = answer_buf, .cap = sizeof(answer_buf) - 1};
    FUZZ_CHECK(fuzz_conn_send(&fs, fd, (const uint8_t *)up, (size_t)n, end));
    (void)fuzz_conn_drain(&fs, fd, false, end, 0, &a, head_complete);
    a.p[a.len] = '\0';
    if (strncmp(a.p, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "ws: upgrade refused: %.200s\n", a.p);
    }
    FUZZ_CHECK(strncmp(a.p, "HTTP/1.1 101", 12) == 0);
    size_t len;
    if (data[0] & 4) {
        memcpy(out, data + 1, size - 1);
        len = size - 1;
    } else {
        len = frames(data + 1, size - 1, out);
    }
    bool closed = !fuzz_conn_send(&fs, fd, out, len, end);
    if (!closed) {
        closed = fuzz_conn_drain(&fs, fd, show, end, QUIET_MS, NULL, NULL);
    }
    close(fd);
    fuzz_server_settle(&fs);
    wait_released();
    FUZZ_CHECK(fs.s.node != NULL && node_failed(fs.s.node) == 0);
    return 0;
}

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
 * Two servers: one without auth, and one with auth on (users root and
 * ro, ro may read /registry/ only), so that the tokens of the upgrade and
 * of mux requests, and the permission checks of every subscription
 * (unauthenticated, permission_denied, the count read as the token's
 * user before a since), run too.
 *
 * Input: byte 0, bits 0-1: the path (stream, registry watch, config
 * watch, etcd watch); bits 3-4: the server and the upgrade's token (0: no
 * auth; 1: auth, no token; 2: auth, ro's; 3: auth, root's); in frame
 * payloads "$R" and "$U" become root's and ro's tokens (mux requests'
 * "token"); bit 2: the rest goes as is after the upgrade (raw
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

static struct fuzz_server fs, fa; /* without auth, with auth */
static char answer_buf[ANSWER_MAX];
static char tok_root[256], tok_ro[256];
static uint64_t tok_ms; /* when they were made (simple tokens expire) */

static void cleanup(void)
{
    fuzz_empty_dir(fs.dir);
    rmdir(fs.dir);
    fuzz_empty_dir(fa.dir);
    rmdir(fa.dir);
}

static bool head_complete(const struct fuzz_answer *a)
{
    return a->len == a->cap || memmem(a->p, a->len, "\r\n\r\n", 4) != NULL;
}

/* One plain HTTP/1.1 call at start (as token, when not NULL); returns the
 * status; the answer is in answer_buf. */
static int setup_call(struct fuzz_server *f, const char *token,
                      const char *method, const char *path, const char *body)
{
    char req[2048];
    int n =
        snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: x\r\n%s%s%sContent-Length: "
                 "%zu\r\n\r\n%s",
                 method, path, token ? "Authorization: " : "",
                 token ? token : "", token ? "\r\n" : "", strlen(body), body);
    int fd = fuzz_connect((struct sockaddr *)&f->client_addr,
                          sizeof(f->client_addr));
    struct fuzz_answer a = {.p = answer_buf, .cap = sizeof(answer_buf) - 1};
    uint64_t end = fuzz_now_ms() + WAIT_MS;
    FUZZ_CHECK(fuzz_conn_send(f, fd, (const uint8_t *)req, (size_t)n, end));
    (void)fuzz_conn_drain(f, fd, false, end, 0, &a, fuzz_http_complete);
    close(fd);
    fuzz_server_settle(f);
    a.p[a.len] = '\0';
    return a.len > 12 ? atoi(a.p + 9) : 0;
}

static void setup_ok(struct fuzz_server *f, const char *token,
                     const char *method, const char *path, const char *body)
{
    int st = setup_call(f, token, method, path, body);
    if (st != 200) {
        fprintf(stderr, "ws: setup %s %s: %d %.300s\n", method, path, st,
                answer_buf);
    }
    FUZZ_CHECK(st == 200);
}

/* The same instance and config on a server. */
static void setup_data(struct fuzz_server *f, const char *token)
{
    setup_ok(f, token, "PUT", "/api/v1/registry/shop/cart/i1",
             "{\"addr\":\"127.0.0.1:8080\",\"ttl\":3600,\"zone\":\"z1\"}");
    setup_ok(f, token, "PUT", "/api/v1/config/prod/shop/app.yaml",
             "{\"content\":\"a: 1\\n\",\"format\":\"yaml\"}");
}

static void authenticate(const char *user, const char *pw, char *out,
                         size_t cap)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"password\":\"%s\"}", user,
             pw);
    setup_ok(&fa, NULL, "POST", "/v3/auth/authenticate", body);
    const char *p = strstr(answer_buf, "\"token\":\"");
    FUZZ_CHECK(p != NULL);
    snprintf(out, cap, "%.*s", (int)strcspn(p + 9, "\""), p + 9);
}

/* Fresh tokens before the old ones could expire (TTL 300 s). */
static void tokens_refresh(void)
{
    if (tok_ms == 0 || fuzz_now_ms() - tok_ms > 60000) {
        authenticate("root", "rpw", tok_root, sizeof(tok_root));
        authenticate("ro", "ropw", tok_ro, sizeof(tok_ro));
        tok_ms = fuzz_now_ms();
    }
}

/* Users root and ro (read on /registry/), then auth on. */
static void setup_auth(void)
{
    static const char *const calls[][2] = {
        {"/v3/auth/user/add", "{\"name\":\"root\",\"password\":\"rpw\"}"},
        {"/v3/auth/role/add", "{\"name\":\"root\"}"},
        {"/v3/auth/user/grant", "{\"user\":\"root\",\"role\":\"root\"}"},
        {"/v3/auth/role/add", "{\"name\":\"ro\"}"},
        {"/v3/auth/role/grant",
         "{\"name\":\"ro\",\"perm\":{\"permType\":\"READ\",\"key\":"
         "\"L3JlZ2lzdHJ5Lw==\",\"range_end\":\"L3JlZ2lzdHJ5MA==\"}}"},
        {"/v3/auth/user/add", "{\"name\":\"ro\",\"password\":\"ropw\"}"},
        {"/v3/auth/user/grant", "{\"user\":\"ro\",\"role\":\"ro\"}"},
        {"/v3/auth/enable", "{}"},
    };
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        setup_ok(&fa, NULL, "POST", calls[i][0], calls[i][1]);
    }
    tokens_refresh();
    setup_data(&fa, tok_root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_server_start(&fs);
    fuzz_server_start(&fa);
    atexit(cleanup);
    setup_data(&fs, NULL);
    setup_auth();
    return 0;
}

/* Copy p[0..n) to out with "$R" and "$U" replaced by the tokens; returns
 * the length (out has room for n * 128). */
static size_t expand(const uint8_t *p, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *t = NULL;
        if (p[i] == '$' && i + 1 < n && (p[i + 1] == 'R' || p[i + 1] == 'U')) {
            t = p[i + 1] == 'R' ? tok_root : tok_ro;
        }
        if (t != NULL && strlen(t) < 128) {
            memcpy(out + o, t, strlen(t));
            o += strlen(t);
            i++;
        } else {
            out[o++] = p[i];
        }
    }
    return o;
}

/* Encode the structured frames of p[0..n) into out (room for 128 n + 14
 * per frame: tokens expanded, at most 14 header bytes per 4 input bytes). */
static size_t frames(const uint8_t *p, size_t n, uint8_t *out)
{
    static uint8_t pl[FUZZ_MAX_LEN * 128];
    size_t o = 0, i = 0;
    while (i + 4 <= n) {
        uint8_t h = p[i], f = p[i + 1];
        size_t len = (size_t)p[i + 2] | (size_t)p[i + 3] << 8;
        i += 4;
        if (len > n - i) {
            len = n - i;
        }
        size_t in_len = len;
        len = expand(p + i, in_len, pl);
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
            out[o++] = masked ? pl[k] ^ key[k & 3] : pl[k];
        }
        i += in_len;
    }
    return o;
}

/* The client is gone: its subscriptions go within a bound. */
static void wait_released(struct fuzz_server *f)
{
    uint64_t end = fuzz_now_ms() + 5000;
    while (f->s.svc_ctr.subscribers_open > 0) {
        if (fuzz_now_ms() >= end) {
            fprintf(stderr, "ws: %llu subscribers still open\n",
                    (unsigned long long)f->s.svc_ctr.subscribers_open);
        }
        FUZZ_CHECK(fuzz_now_ms() < end);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        struct pollfd none;
        (void)poll(&none, 0, 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[FUZZ_MAX_LEN * 132 + 64];
    char up[1024];
    if (size < 1 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    unsigned who = (data[0] >> 3) & 3;
    struct fuzz_server *f = who == 0 ? &fs : &fa;
    const char *token = who == 2 ? tok_ro : who == 3 ? tok_root : NULL;
    tokens_refresh();
    uint64_t end = fuzz_now_ms() + WAIT_MS;
    bool show = getenv("FUZZ_SHOW") != NULL;
    int n = snprintf(up, sizeof(up),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "%s%s%sSec-WebSocket-Version: 13\r\n\r\n",
                     paths[data[0] & 3], token ? "Authorization: " : "",
                     token ? token : "", token ? "\r\n" : "");
    int fd = fuzz_connect((struct sockaddr *)&f->client_addr,
                          sizeof(f->client_addr));
    struct fuzz_answer a = {.p = answer_buf, .cap = sizeof(answer_buf) - 1};
    FUZZ_CHECK(fuzz_conn_send(f, fd, (const uint8_t *)up, (size_t)n, end));
    (void)fuzz_conn_drain(f, fd, false, end, 0, &a, head_complete);
    a.p[a.len] = '\0';
    /* With auth on and no token, a single-purpose stream may refuse the
     * upgrade (401/403); everything else upgrades. */
    bool upgraded = strncmp(a.p, "HTTP/1.1 101", 12) == 0;
    if (!upgraded && !(who == 1 || who == 2)) {
        fprintf(stderr, "ws: upgrade refused: %.200s\n", a.p);
    }
    FUZZ_CHECK(upgraded || who == 1 || who == 2);
    if (show && !upgraded) {
        fprintf(stderr, "ws: upgrade answered %.200s\n", a.p);
    }
    size_t len;
    if (data[0] & 4) {
        memcpy(out, data + 1, size - 1);
        len = size - 1;
    } else {
        len = frames(data + 1, size - 1, out);
    }
    bool closed = !upgraded || !fuzz_conn_send(f, fd, out, len, end);
    if (!closed) {
        closed = fuzz_conn_drain(f, fd, show, end, QUIET_MS, NULL, NULL);
    }
    close(fd);
    fuzz_server_settle(f);
    wait_released(f);
    FUZZ_CHECK(f->s.node != NULL && node_failed(f->s.node) == 0);
    return 0;
}

/*
 * fuzz_rest.c - the registry and config REST API of a real single-member
 * server (tests/fuzz/fuzz_server.h) over HTTP/1.1 on loopback: the JSON
 * bodies of sessions, instance PUT and PATCH, service settings, config
 * publish, rollback, gray release and promote (registry/services/
 * svc_api.c, svc_model.c; registry/config/cfg_api.c, cfg_model.c), and
 * the query strings of the reads beside them.
 *
 * Goal: whatever the body or query, the server answers the request with
 * a status line and never 500 (bad input is a 4xx naming the field), or
 * closes; no crash, assertion or leak; the member stays healthy.
 *
 * Input: byte 0 picks a request (method and path) from the table below;
 * the rest is the body. When it starts with '?', its first line is the
 * query string (bytes a URL may not hold are percent-encoded here, so the
 * server's decoder sees them). "$S" in the body or query becomes the id
 * of a session opened at start (TTL 3600 s), so registrations under a
 * session and keep-alives reach their handlers. The harness frames the
 * request (Content-Length), so every execution reaches a handler;
 * fuzz_client_port covers the framing. At start the server holds a
 * registered instance (shop/cart/i1) and two versions of a config
 * (prod/shop/app.yaml), so PATCH, rollback and diff have something to
 * work on; inputs may delete them, and later inputs create them again.
 *
 * Probes: an instance's "checks" start health probes; the fuzz build
 * probes loopback literals only (svc_probe.c, CAIRN_FUZZ).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "tests/fuzz/fuzz_server.h"

#define FUZZ_MAX_LEN 4096
#define WAIT_MS      15000 /* a fuzz check past it */
#define ANSWER_MAX   (256 * 1024)
#define REQ_MAX      (3 * FUZZ_MAX_LEN + 1024)

static const struct {
    const char *method, *path;
} reqs[] = {
    {"PUT", "/api/v1/registry/shop/cart/i1"},
    {"PATCH", "/api/v1/registry/shop/cart/i1"},
    {"POST", "/api/v1/sessions"},
    {"POST", "/api/v1/sessions/$S/keepalive"},
    {"PUT", "/api/v1/registry/shop/cart"},
    {"PUT", "/api/v1/config/prod/shop/app.yaml"},
    {"POST", "/api/v1/config/prod/shop/app.yaml/rollback"},
    {"PUT", "/api/v1/config/prod/shop/app.yaml/gray"},
    {"POST", "/api/v1/config/prod/shop/app.yaml/gray/promote"},
    {"DELETE", "/api/v1/config/prod/shop/app.yaml/gray"},
    {"GET", "/api/v1/registry/shop/cart"},
    {"GET", "/api/v1/config/prod/shop/app.yaml"},
    {"GET", "/api/v1/config/prod/shop/app.yaml/diff"},
    {"GET", "/api/v1/sd/prometheus"},
    {"PUT", "/api/v1/registry/shop/cart/i2"},
    {"DELETE", "/api/v1/registry/shop/cart/i2"},
    {"PUT", "/api/v1/config/prod/shop/app.json"},
    {"GET", "/api/v1/registry/shop"},
    {"GET", "/api/v1/sessions/$S"},
    {"GET", "/api/v1/config/prod/shop/app.yaml/versions/1"},
};
#define REQS_COUNT (sizeof(reqs) / sizeof(reqs[0]))

static struct fuzz_server fs;
static char session[32]; /* hex id of the long session, or "0" */
/* libwebsockets drops some URIs without an answer: one whose decoded
 * bytes hold a NUL (lws_parse_urldecode), and one with more fragments
 * than its header table holds (about 90 '&' or ';' separators: "More
 * hdr frags than we can deal with"). Those may be closed unanswered. */
static bool query_dropped;
static char *answer_buf;

static void cleanup(void)
{
    free(answer_buf);
    fuzz_empty_dir(fs.dir);
    rmdir(fs.dir);
}

/* Append p[0..n) to out at *len, "$S" replaced by the session id; with
 * url, bytes a URL may not hold percent-encoded. */
static void put_text(char *out, size_t *len, const uint8_t *p, size_t n,
                     bool url)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '$' && i + 1 < n && p[i + 1] == 'S') {
            size_t k = strlen(session);
            memcpy(out + *len, session, k);
            *len += k;
            i++;
        } else if (url && (p[i] <= 0x20 || p[i] >= 0x7f || p[i] == '#')) {
            out[(*len)++] = '%';
            out[(*len)++] = hex[p[i] >> 4];
            out[(*len)++] = hex[p[i] & 15];
        } else {
            out[(*len)++] = (char)p[i];
        }
    }
}

/* Send one request, read its answer (into answer_buf); returns the status
 * (0: the server closed without one). */
static int exchange(size_t k, const uint8_t *q, size_t qn, const uint8_t *body,
                    size_t bn, uint64_t end, bool show)
{
    static char req[REQ_MAX];
    size_t len = 0, hlen;
    char *cl;
    len += (size_t)snprintf(req, sizeof(req), "%s ", reqs[k].method);
    put_text(req, &len, (const uint8_t *)reqs[k].path, strlen(reqs[k].path),
             false);
    put_text(req, &len, q, qn, true);
    size_t seps = 0;
    for (size_t i = 0; i < len; i++) {
        seps += req[i] == '&' || req[i] == ';';
    }
    query_dropped = memmem(req, len, "%00", 3) != NULL || seps >= 64;
    cl = req + len;
    len += (size_t)snprintf(cl, sizeof(req) - len,
                            " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: %8u\r\n\r\n",
                            0u);
    hlen = len;
    put_text(req, &len, body, bn, false);
    /* Now that the body's length is known, write it over the zeros. */
    char num[16];
    snprintf(num, sizeof(num), "%8u", (unsigned)(len - hlen));
    memcpy(strstr(cl, "Content-Length: ") + 16, num, 8);

    int fd = fuzz_connect((struct sockaddr *)&fs.client_addr,
                          sizeof(fs.client_addr));
    struct fuzz_answer a = {.p = answer_buf, .cap = ANSWER_MAX};
    if (fuzz_conn_send(&fs, fd, (const uint8_t *)req, len, end)) {
        (void)fuzz_conn_drain(&fs, fd, show, end, 0, &a, fuzz_http_complete);
    }
    close(fd);
    fuzz_server_settle(&fs);
    int status = 0;
    /* libwebsockets answers a URI it refuses (a bad %-escape: 403)
     * before it knows the version, as HTTP/1.0. */
    if (a.len >= 12 && (memcmp(a.p, "HTTP/1.1 ", 9) == 0 ||
                        memcmp(a.p, "HTTP/1.0 ", 9) == 0)) {
        status = atoi(a.p + 9);
    }
    return status;
}

static int call(const char *method_path_body, uint64_t end)
{
    /* "k|query|body" for the setup calls. */
    const char *s = method_path_body;
    size_t k = (size_t)atoi(s);
    const char *q = strchr(s, '|') + 1;
    const char *b = strchr(q, '|') + 1;
    return exchange(k, (const uint8_t *)q, (size_t)(b - 1 - q),
                    (const uint8_t *)b, strlen(b), end, false);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_server_start(&fs);
    atexit(cleanup);
    answer_buf = malloc(ANSWER_MAX);
    FUZZ_CHECK(answer_buf != NULL);
    uint64_t end = fuzz_now_ms() + 20000;
    snprintf(session, sizeof(session), "0");
    FUZZ_CHECK(call("2||{\"ttl\":3600}", end) == 200);
    const char *p = strstr(answer_buf, "\"session\":\"");
    FUZZ_CHECK(p != NULL);
    snprintf(session, sizeof(session), "%.*s", (int)strcspn(p + 11, "\""),
             p + 11);
    FUZZ_CHECK(call("0||{\"addr\":\"127.0.0.1:8080\",\"session\":\"$S\","
                    "\"zone\":\"z1\",\"labels\":{\"env\":\"prod\"}}",
                    end) == 200);
    FUZZ_CHECK(call("5||{\"content\":\"db:\\n  pool: 10\\n\","
                    "\"format\":\"yaml\",\"message\":\"first\"}",
                    end) == 200);
    FUZZ_CHECK(call("5||{\"content\":\"db:\\n  pool: 20\\n\","
                    "\"format\":\"yaml\",\"message\":\"second\"}",
                    end) == 200);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t k = data[0] % REQS_COUNT;
    const uint8_t *q = data + 1, *body = data + 1;
    size_t qn = 0, bn = size - 1;
    if (bn > 0 && body[0] == '?') {
        const uint8_t *nl = memchr(body, '\n', bn);
        qn = nl != NULL ? (size_t)(nl - body) : bn;
        body += nl != NULL ? qn + 1 : qn;
        bn = size - 1 - (size_t)(body - (data + 1));
    }
    /* FUZZ_SHOW=1 prints the answer (to check what a seed reaches). */
    bool show = getenv("FUZZ_SHOW") != NULL;
    int status = exchange(k, q, qn, body, bn, fuzz_now_ms() + WAIT_MS, show);
    if (show) {
        fprintf(stderr, "\n-> %s %s: %d\n", reqs[k].method, reqs[k].path,
                status);
    }
    /* A well-framed request is answered; bad input is never a 500. */
    FUZZ_CHECK((status >= 200 && status < 600) ||
               (status == 0 && query_dropped));
    FUZZ_CHECK(status != 500);
    FUZZ_CHECK(fs.s.node != NULL && node_failed(fs.s.node) == 0);
    return 0;
}

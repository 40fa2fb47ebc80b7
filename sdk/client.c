/*
 * client.c - libcairn's blocking core: one connection at a time to one of
 * several endpoints, unary calls with deadlines, failover, auth.
 *
 * Happy path. A call takes the client's mutex, computes its deadline, gets
 * the connection (connecting lazily to the current endpoint), frames the
 * request on a fresh stream (with the auth token as "token" metadata),
 * runs the client's private loop until the stream ends, and unpacks the
 * one response message. Watches opened on the client keep their streams
 * on the same connection; the loop serves them while any call runs.
 *
 * Failures. A connect that fails or takes longer than dial_timeout_ms
 * moves to the next endpoint; after a full round of failures the client
 * backs off (50 ms doubling to 1 s, jittered) and tries again, within
 * dial_timeout_ms and the call's deadline. A stream that ends without a
 * grpc-status (connection lost) is retried elsewhere for reads only. A
 * server status becomes an enum cairn_err plus the decoded grpc-message.
 * "invalid auth token" makes the client authenticate again and retry
 * once. A response that is not exactly one well-formed message is
 * CAIRN_E_BAD_RESPONSE. A call that reaches its deadline resets its stream
 * and returns CAIRN_E_TIMEOUT; the connection stays.
 */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "sdk/client_int.h"
#include "sdk/http_int.h"
#include "sdk/mux_int.h"

#define UNARY_ATTEMPTS_MAX 8
#define BACKOFF_BASE_MS    50
#define BACKOFF_CAP_MS     1000
#define CANCEL_WAIT_MS     200
#define RECV_DEFAULT       ((size_t)64 << 20)
/* etcd's largest response is 2 GiB; we cap below what one buffer holds. */
#define RECV_HARD_MAX      ((size_t)1 << 30)

static const struct {
    int err;
    const char *text;
} err_texts[] = {
#define CAIRN__X(name, value, text) {CAIRN_E_##name, text},
    CAIRN_ERR_TABLE(CAIRN__X)
#undef CAIRN__X
};

CAIRN_EXPORT const char *cairn_strerror(int err)
{
    if (err == 0) {
        return "ok";
    }
    for (size_t i = 0; i < sizeof(err_texts) / sizeof(err_texts[0]); i++) {
        if (err_texts[i].err == err) {
            return err_texts[i].text;
        }
    }
    return "unknown error";
}

uint64_t cairn__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cairn__deadline(struct cairn_client *c, int64_t deadline_ms)
{
    int64_t ms = deadline_ms > 0 ? deadline_ms : c->timeout_ms;
    return cairn__now_ns() + (uint64_t)ms * 1000000u;
}

int cairn__fail(struct cairn_client *c, int err, int grpc_code, const char *fmt,
                ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
    va_end(ap);
    c->grpc_code = grpc_code;
    return err;
}

/* ------------------------------------------------------------ options */

/* Every size struct cairn_options has had since it carries struct_size,
 * oldest first. A new field starts at or past the last one (never in its
 * tail padding, which an older caller leaves as it likes), and zero is its
 * default: then copying a caller's first struct_size bytes over the
 * defaults is exact. */
STATIC_ASSERT(CAIRN_OPTIONS_SIZE_MIN ==
                  offsetof(struct cairn_options, seed) + sizeof(uint64_t),
              "the oldest layout ends with seed");
STATIC_ASSERT(sizeof(struct cairn_options) <= CAIRN_OPTIONS_SIZE_MAX,
              "the hard maximum holds this layout");
STATIC_ASSERT(CAIRN_OPTIONS_SIZE_MIN % 8 == 0 &&
                  sizeof(struct cairn_options) % 8 == 0,
              "every layout's size is a multiple of 8");

CAIRN_EXPORT void cairn_options_init_size(struct cairn_options *opt,
                                          size_t struct_size)
{
    if (opt == NULL || struct_size < sizeof(opt->struct_size)) {
        return;
    }
    if (struct_size < CAIRN_OPTIONS_SIZE_MIN ||
        struct_size > CAIRN_OPTIONS_SIZE_MAX) {
        opt->struct_size = struct_size; /* cairn_client_new refuses it */
        return;
    }
    /* A newer caller's struct is longer: its fields past ours are zeroed
     * here (their default), so this older library accepts it. */
    memset(opt, 0, struct_size);
    opt->struct_size = struct_size;
    opt->dial_timeout_ms = 2000;
    opt->timeout_ms = 5000;
    opt->recv_bytes_max = RECV_DEFAULT;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

int cairn__options_read(const struct cairn_options *in,
                        struct cairn_options *out, char *eb, size_t ebn)
{
    ASSERT(out != NULL);
    cairn_options_init(out);
    if (in == NULL) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID, "no options (NULL)");
    }
    size_t n = in->struct_size;
    if (n == 0) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID,
                          "options: struct_size is 0: set them up with "
                          "cairn_options_init");
    }
    if (n < CAIRN_OPTIONS_SIZE_MIN || n > CAIRN_OPTIONS_SIZE_MAX || n % 8) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID,
                          "options: struct_size %zu is not the size of any "
                          "struct cairn_options (%zu to %d, a multiple of "
                          "8): set them up with cairn_options_init",
                          n, (size_t)CAIRN_OPTIONS_SIZE_MIN,
                          CAIRN_OPTIONS_SIZE_MAX);
    }
    if (n > sizeof(*out) &&
        !all_zero((const unsigned char *)in + sizeof(*out), n - sizeof(*out))) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID,
                          "options: a field past byte %zu is set, which this "
                          "libcairn (options of %zu bytes) does not know: "
                          "it is older than the cairn.h the program was "
                          "built with",
                          sizeof(*out), sizeof(*out));
    }
    memcpy(out, in, n < sizeof(*out) ? n : sizeof(*out));
    out->struct_size = sizeof(*out);
    return 0;
}

int cairn__why(char *eb, size_t ebn, int err, const char *fmt, ...)
{
    if (eb != NULL && ebn > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(eb, ebn, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* host:port with an optional http:// or https:// in front. */
static int endpoint_check(const char *ep)
{
    if (strncmp(ep, "unix", 4) == 0) {
        return CAIRN_E_INVALID;
    }
    ep = cairn__ep_strip(ep);
    const char *colon = strrchr(ep, ':');
    if (colon == NULL || colon == ep || colon[1] == 0 || strlen(ep) > 255) {
        return CAIRN_E_INVALID;
    }
    /* An IPv6 address only in brackets ("[::1]:2379", RFC 3986): "::1:2379"
     * would be ambiguous. */
    size_t hl = (size_t)(colon - ep);
    bool bracketed = ep[0] == '[' && hl >= 3 && ep[hl - 1] == ']';
    if (memchr(ep, ':', hl) != NULL && !bracketed) {
        return CAIRN_E_INVALID;
    }
    if (bracketed) {
        char ip[64];
        unsigned char bin[16];
        if (hl - 2 >= sizeof(ip)) {
            return CAIRN_E_INVALID;
        }
        memcpy(ip, ep + 1, hl - 2);
        ip[hl - 2] = 0;
        if (inet_pton(AF_INET6, ip, bin) != 1) {
            return CAIRN_E_INVALID;
        }
    }
    for (const char *p = colon + 1; *p != 0 && *p != '/'; p++) {
        if (*p < '0' || *p > '9') {
            return CAIRN_E_INVALID;
        }
    }
    long port = strtol(colon + 1, NULL, 10);
    return port > 0 && port < 65536 ? 0 : CAIRN_E_INVALID;
}

static char *str_copy(const char *s)
{
    return s == NULL ? NULL : mem_dup(s, strlen(s) + 1);
}

/* The checks of cairn_client_new that need no memory. */
static int options_check(const struct cairn_options *opt, char *eb, size_t ebn)
{
    if (opt->endpoints == NULL || opt->endpoints_count == 0) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID, "options: no endpoints");
    }
    if (opt->endpoints_count > CAIRN_ENDPOINTS_MAX) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID,
                          "options: %zu endpoints, more than %d",
                          opt->endpoints_count, CAIRN_ENDPOINTS_MAX);
    }
    if (opt->user != NULL && opt->password == NULL) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID,
                          "options: a user without a password");
    }
    for (size_t i = 0; i < opt->endpoints_count; i++) {
        if (opt->endpoints[i] == NULL) {
            return cairn__why(eb, ebn, CAIRN_E_INVALID,
                              "options: endpoint %zu is NULL", i);
        }
        if (endpoint_check(opt->endpoints[i]) != 0) {
            return cairn__why(eb, ebn, CAIRN_E_INVALID,
                              "options: endpoint \"%.255s\" is not "
                              "[http[s]://]host:port",
                              opt->endpoints[i]);
        }
    }
    return 0;
}

/* The reason of this thread's last failed cairn_client_new. */
static _Thread_local char new_why[512];

CAIRN_EXPORT int cairn_client_new(const struct cairn_options *opt,
                                  struct cairn_client **out)
{
    char why[sizeof(new_why)] = "";
    int rc = cairn_client_new_ex(opt, out, why, sizeof(why));
    if (rc != 0) {
        memcpy(new_why, why, sizeof(new_why));
    }
    return rc;
}

CAIRN_EXPORT const char *cairn_client_new_errmsg(void)
{
    return new_why;
}

CAIRN_EXPORT int cairn_client_new_ex(const struct cairn_options *in,
                                     struct cairn_client **out, char *eb,
                                     size_t ebn)
{
    if (out == NULL) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID, "no out pointer (NULL)");
    }
    struct cairn_options o;
    int rc = cairn__options_read(in, &o, eb, ebn);
    if (rc == 0) {
        rc = options_check(&o, eb, ebn);
    }
    if (rc != 0) {
        return rc;
    }
    const struct cairn_options *opt = &o;
    struct cairn_client *c = mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        return cairn__why(eb, ebn, CAIRN_E_NOMEM, "out of memory");
    }
    int trc = cairn__tls_init(&c->tls, opt, eb, ebn);
    if (trc != 0) {
        mem_free(c);
        return trc;
    }
    bool ok = true;
    for (size_t i = 0; i < opt->endpoints_count; i++) {
        c->endpoints[i] = str_copy(opt->endpoints[i]);
        ok = ok && c->endpoints[i] != NULL;
    }
    c->endpoints_count = opt->endpoints_count;
    c->user = str_copy(opt->user);
    c->password = str_copy(opt->password);
    ok = ok && (opt->user == NULL || (c->user != NULL && c->password != NULL));
    if (!ok || uv_loop_init(&c->loop) != 0) {
        for (size_t i = 0; i < c->endpoints_count; i++) {
            mem_free(c->endpoints[i]);
        }
        mem_free(c->user);
        mem_free(c->password);
        cairn__tls_free(&c->tls);
        mem_free(c);
        return cairn__why(eb, ebn, CAIRN_E_NOMEM, "out of memory");
    }
    uv_timer_init(&c->loop, &c->timer);
    pthread_mutex_init(&c->mu, NULL);
    c->dial_timeout_ms = opt->dial_timeout_ms > 0 ? opt->dial_timeout_ms : 2000;
    c->timeout_ms = opt->timeout_ms > 0 ? opt->timeout_ms : 5000;
    c->recv_bytes_max =
        opt->recv_bytes_max > 0 ? opt->recv_bytes_max : RECV_DEFAULT;
    if (c->recv_bytes_max > RECV_HARD_MAX) {
        c->recv_bytes_max = RECV_HARD_MAX;
    }
    c->prng = opt->seed != 0 ? opt->seed : (cairn__now_ns() | 1);
    *out = c;
    return 0;
}

static void net_close(struct cairn_client *c)
{
    if (c->net_open) {
        cairn__net_close(&c->net);
        c->net_open = false;
        cairn__watches_conn_lost(c);
    }
}

CAIRN_EXPORT void cairn_client_free(struct cairn_client *c)
{
    if (c == NULL) {
        return;
    }
    while (c->watches != NULL) { /* each close unlinks one */
        cairn_watch_close(c->watches);
    }
    cairn__mux_put(c->mux); /* its subscriptions' owners keep it going */
    pthread_mutex_lock(&c->mu);
    net_close(c);
    uv_close((uv_handle_t *)&c->timer, NULL);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    uv_loop_close(&c->loop);
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_destroy(&c->mu);
    for (size_t i = 0; i < c->endpoints_count; i++) {
        mem_free(c->endpoints[i]);
    }
    mem_free(c->user);
    if (c->password != NULL) {
        memset(c->password, 0, strlen(c->password));
    }
    mem_free(c->password);
    mem_free(c->token);
    cairn__tls_free(&c->tls);
    mem_free(c);
}

CAIRN_EXPORT const char *cairn_client_errmsg(struct cairn_client *c)
{
    return c->errmsg;
}

CAIRN_EXPORT int cairn_client_grpc_code(struct cairn_client *c)
{
    return c->grpc_code;
}

CAIRN_EXPORT const char *cairn_client_endpoint(struct cairn_client *c)
{
    return c->endpoints[c->ep_cur % c->endpoints_count];
}

/* ---------------------------------------------------------- the loop */

static void timer_cb(uv_timer_t *t)
{
    struct cairn_client *c = t->data;
    c->timer_fired = true;
}

bool cairn__run_until(struct cairn_client *c, const bool *flag,
                      uint64_t deadline_ns)
{
    /* Each pass blocks until an event or the timer; the timer bounds the
     * number of passes that can happen without *flag turning true. */
    while (!*flag) {
        uint64_t now = cairn__now_ns();
        if (now >= deadline_ns) {
            return false;
        }
        uint64_t ms = (deadline_ns - now + 999999) / 1000000;
        c->timer_fired = false;
        c->timer.data = c;
        /* Repeating, from a fresh loop time: a one-shot timer that came
         * due at the top of uv_run (the loop's cached time was older than
         * ms) fired there and left the poll after it with no timeout, so
         * the wait blocked for good (cairnctl hung about once in 500
         * calls under load). */
        uv_update_time(&c->loop);
        uv_timer_start(&c->timer, timer_cb, ms, ms);
        if (c->net_open) {
            cairn__net_flush(&c->net);
        }
        while (!*flag && !c->timer_fired) {
            uv_run(&c->loop, UV_RUN_ONCE);
            if (c->net_open) {
                cairn__net_flush(&c->net);
            }
        }
        uv_timer_stop(&c->timer);
    }
    return true;
}

void cairn__backoff(struct cairn_client *c, unsigned round,
                    uint64_t deadline_ns)
{
    uint64_t ms = BACKOFF_BASE_MS << (round < 5 ? round : 5);
    if (ms > BACKOFF_CAP_MS) {
        ms = BACKOFF_CAP_MS;
    }
    c->prng ^= c->prng << 13;
    c->prng ^= c->prng >> 7;
    c->prng ^= c->prng << 17;
    ms = ms / 2 + c->prng % (ms / 2 + 1); /* jitter: [ms/2, ms] */
    uint64_t until = cairn__now_ns() + ms * 1000000u;
    bool never = false;
    cairn__run_until(c, &never, until < deadline_ns ? until : deadline_ns);
}

/* --------------------------------------------------------- connecting */

/* An endpoint's addresses: a literal IPv4 or bracketed IPv6 address as
 * is; a name resolved, its first IPv4 address first when it has one (as
 * etcd's clients and cairnd's listeners pick for "localhost"), then its
 * first IPv6 one: connect_one tries the second when the first refuses.
 * Returns the count (1 or 2) or an error. */
static int resolve(struct cairn_client *c, const char *ep,
                   struct sockaddr_storage out[2])
{
    char host[256], port[16];
    if (cairn__hostport(ep, host, sizeof(host), port, sizeof(port)) != 0) {
        return cairn__fail(c, CAIRN_E_INVALID, 0, "bad endpoint %s", ep);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || res == NULL) {
        return cairn__fail(c, CAIRN_E_UNAVAILABLE, 0, "dial tcp: lookup %s: %s",
                           host, gai_strerror(rc));
    }
    static const int families[] = {AF_INET, AF_INET6};
    int n = 0;
    for (size_t f = 0; f < 2; f++) {
        for (const struct addrinfo *a = res; a != NULL; a = a->ai_next) {
            if (a->ai_family == families[f] && a->ai_addrlen <= sizeof(*out)) {
                memset(&out[n], 0, sizeof(out[n]));
                memcpy(&out[n], a->ai_addr, a->ai_addrlen);
                n++;
                break;
            }
        }
    }
    freeaddrinfo(res);
    if (n == 0) {
        return cairn__fail(c, CAIRN_E_UNAVAILABLE, 0,
                           "dial tcp: lookup %s: no IPv4 or IPv6 address",
                           host);
    }
    return n;
}

static bool net_settled(struct cairn_client *c)
{
    return c->net.connected + c->net.dead > 0;
}

static void on_net_change(struct cairn__net *net)
{
    struct cairn_client *c = net->data;
    (void)c;
}

/* The host of an endpoint (what TLS verifies), without brackets. */
static void ep_host(const char *ep, char *out, size_t size)
{
    ep = cairn__ep_strip(ep);
    const char *colon = strrchr(ep, ':');
    size_t n = colon != NULL ? (size_t)(colon - ep) : strlen(ep);
    if (n >= 2 && ep[0] == '[' && ep[n - 1] == ']') {
        ep++;
        n -= 2;
    }
    snprintf(out, size, "%.*s", (int)n, ep);
}

/* One connection to addr of endpoint idx within deadline_ns. *refused:
 * the connect itself failed (no TLS failure, no timeout), so another
 * address of the same name may be worth a try. *tls_failed: the server
 * answered and its handshake failed (errmsg says why). */
static int connect_addr(struct cairn_client *c, size_t idx,
                        const struct sockaddr_storage *addr,
                        uint64_t deadline_ns, bool *refused, bool *tls_failed)
{
    char host[256];
    *refused = false;
    *tls_failed = false;
    ep_host(c->endpoints[idx], host, sizeof(host));
    bool tls = cairn__tls_ep(&c->tls, c->endpoints[idx]);
    int rc = cairn__net_open_tls(&c->net, &c->loop, addr, 1, 1,
                                 tls ? &c->tls : NULL, host);
    if (rc != 0) {
        return cairn__fail(c, CAIRN_E_NOMEM, 0, "out of memory");
    }
    c->net_open = true;
    c->net.data = c;
    c->net.on_change = on_net_change;
    /* net_settled() turns true from the connect callback. */
    while (!net_settled(c)) {
        bool never = false;
        uint64_t now = cairn__now_ns();
        if (now >= deadline_ns) {
            net_close(c);
            return cairn__fail(c, CAIRN_E_TIMEOUT, 0,
                               "dial tcp %s: i/o timeout", c->endpoints[idx]);
        }
        uint64_t step = now + 5000000u; /* re-check every 5 ms at most */
        cairn__run_until(c, &never, step < deadline_ns ? step : deadline_ns);
    }
    if (c->net.connected == 0) {
        int err = c->net.conns[0].err;
        char why[sizeof(c->net.conns[0].why)];
        memcpy(why, c->net.conns[0].why, sizeof(why));
        net_close(c);
        if (why[0] != 0) { /* a TLS failure: its reason, as Go words it */
            *tls_failed = true;
            return cairn__fail(c, CAIRN_E_UNAVAILABLE, 0,
                               "connection error: desc = \"transport: "
                               "authentication handshake failed: %s\" (%s)",
                               why, c->endpoints[idx]);
        }
        *refused = true;
        return cairn__fail(c, CAIRN_E_UNAVAILABLE, 0,
                           "dial tcp %s: connect: %s", c->endpoints[idx],
                           err < 0 ? uv_strerror(err) : "failed");
    }
    return 0;
}

/* One attempt on endpoint idx within deadline_ns: its IPv4 address, and
 * its IPv6 one when the first refused (a name such as "localhost" served
 * on ::1 alone). */
static int connect_one(struct cairn_client *c, size_t idx, uint64_t deadline_ns,
                       bool *tls_failed)
{
    *tls_failed = false;
    net_close(c);
    struct sockaddr_storage addr[2];
    int n = resolve(c, c->endpoints[idx], addr);
    if (n < 0) {
        return n;
    }
    int rc = CAIRN_E_UNAVAILABLE;
    for (int i = 0; i < n; i++) {
        bool refused = false;
        rc = connect_addr(c, idx, &addr[i], deadline_ns, &refused, tls_failed);
        if (rc == 0 || !refused) {
            break;
        }
    }
    return rc;
}

static struct cairn__conn *conn_live(struct cairn_client *c)
{
    if (!c->net_open) {
        return NULL;
    }
    struct cairn__conn *conn = &c->net.conns[0];
    return conn->connected && !conn->dead ? conn : NULL;
}

void cairn__conn_drop(struct cairn_client *c)
{
    net_close(c);
    c->ep_cur = (c->ep_cur + 1) % c->endpoints_count;
}

int cairn__conn_get(struct cairn_client *c, uint64_t deadline_ns,
                    struct cairn__conn **out)
{
    struct cairn__conn *conn = conn_live(c);
    if (conn != NULL) {
        *out = conn;
        return 0;
    }
    if (c->net_open) { /* dead: a fresh connection to the next endpoint */
        cairn__conn_drop(c);
    }
    uint64_t dial_end =
        cairn__now_ns() + (uint64_t)c->dial_timeout_ms * 1000000u;
    if (dial_end > deadline_ns) {
        dial_end = deadline_ns;
    }
    /* A failed handshake is the dial's answer, over a later attempt's
     * timeout or refusal: under load the last attempt of a dial can run
     * out before its handshake ends, and "i/o timeout" would then hide a
     * certificate that can never verify. A round in which every endpoint
     * sent a certificate that does not verify ("x509: ...", decided here,
     * not a connection lost mid-handshake) ends the dial at once:
     * retrying within the same dial cannot change the outcome. */
    char tls_err[sizeof(c->errmsg)];
    tls_err[0] = 0;
    /* Rounds are bounded by dial_end: each waits at least its backoff. */
    for (unsigned round = 0;; round++) {
        bool all_x509 = true;
        for (size_t i = 0; i < c->endpoints_count; i++) {
            size_t idx = (c->ep_cur + i) % c->endpoints_count;
            bool tls_failed = false;
            int rc = connect_one(c, idx, dial_end, &tls_failed);
            if (rc == 0) {
                c->ep_cur = idx;
                *out = &c->net.conns[0];
                return 0;
            }
            if (rc == CAIRN_E_INVALID || rc == CAIRN_E_NOMEM) {
                return rc;
            }
            if (tls_failed) {
                memcpy(tls_err, c->errmsg, sizeof(tls_err));
            }
            if (!tls_failed || strstr(c->errmsg, "x509: ") == NULL) {
                all_x509 = false;
            }
            if (cairn__now_ns() >= dial_end) {
                goto out;
            }
        }
        if (all_x509) {
            goto out;
        }
        cairn__backoff(c, round, dial_end);
        if (cairn__now_ns() >= dial_end) {
            goto out;
        }
    }
out:
    if (tls_err[0] != 0) {
        memcpy(c->errmsg, tls_err, sizeof(c->errmsg));
        c->grpc_code = 0;
    }
    return CAIRN_E_UNAVAILABLE;
}

/* ------------------------------------------------------------- errors */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

/* grpc-message is percent-encoded (PROTOCOL-HTTP2.md "Responses"). */
static void percent_decode(const char *in, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 0; in[i] != 0 && o + 1 < out_size; i++) {
        int hi, lo;
        if (in[i] == '%' && (hi = hexval(in[i + 1])) >= 0 &&
            (lo = hexval(in[i + 2])) >= 0) {
            out[o++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    out[o] = 0;
}

int cairn__status_err(struct cairn_client *c, int grpc_code,
                      const char *message)
{
    char text[sizeof(c->errmsg)];
    percent_decode(message, text, sizeof(text));
    static const struct {
        int err;
        const char *text;
    } known[] = {
        {CAIRN_E_COMPACTED,
         "etcdserver: mvcc: required revision has been compacted"},
        {CAIRN_E_FUTURE_REV,
         "etcdserver: mvcc: required revision is a future revision"},
        {CAIRN_E_LEASE_NOT_FOUND, "etcdserver: requested lease not found"},
        {CAIRN_E_KEY_NOT_FOUND, "etcdserver: key not found"},
        {CAIRN_E_PERMISSION_DENIED, "etcdserver: permission denied"},
        {CAIRN_E_AUTH_FAILED,
         "etcdserver: authentication failed, invalid user ID or password"},
        {CAIRN_E_INVALID_TOKEN, "etcdserver: invalid auth token"},
        {CAIRN_E_NO_LEADER, "etcdserver: no leader"},
    };
    int err = CAIRN_E_SERVER;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(text, known[i].text) == 0) {
            err = known[i].err;
        }
    }
    return cairn__fail(c, err, grpc_code, "%s", text);
}

/* -------------------------------------------------------------- unary */

struct unary {
    struct cairn__call call;
    uint8_t *msg; /* the first response message (a copy) */
    size_t msg_len;
    unsigned msgs;
    bool nomem;
    bool done;
    int status;
};

static void unary_msg(struct cairn__call *call, const uint8_t *p, size_t n)
{
    struct unary *u = call->data;
    if (u->msgs++ > 0) {
        return; /* a second message: BAD_RESPONSE when the call ends */
    }
    u->msg = mem_dup(p, n > 0 ? n : 1);
    u->nomem = u->msg == NULL;
    u->msg_len = n;
}

static void unary_done(struct cairn__call *call, int status)
{
    struct unary *u = call->data;
    u->done = true;
    u->status = status;
}

static int authenticate(struct cairn_client *c, uint64_t deadline_ns);

/* Resets a call that ran out of time; drops the connection if the reset
 * does not finish it promptly. */
static void unary_abandon(struct cairn_client *c, struct unary *u)
{
    cairn__call_cancel(&u->call);
    uint64_t until = cairn__now_ns() + CANCEL_WAIT_MS * 1000000u;
    if (!cairn__run_until(c, &u->done, until)) {
        net_close(c); /* ends the call without its callback */
    }
}

/* One attempt: 1 = try again elsewhere, 0 = done (*out set), < 0 error. */
static int unary_once(struct cairn_client *c, const char *path,
                      const ProtobufCMessage *req,
                      const ProtobufCMessageDescriptor *desc, bool idempotent,
                      uint64_t deadline_ns, ProtobufCMessage **out)
{
    struct cairn__conn *conn;
    int rc = cairn__conn_get(c, deadline_ns, &conn);
    if (rc != 0) {
        return rc;
    }
    struct unary u = {0};
    cairn__call_init(&u.call, unary_msg, unary_done, &u);
    u.call.in_max = c->recv_bytes_max;
    u.call.token = c->authenticating ? NULL : c->token;
    rc = cairn__call_add(&u.call, req);
    if (rc == 0) {
        rc = cairn__call_start(&u.call, conn, path, false);
        if (rc == ERR_STOPPED) {
            cairn__call_free(&u.call);
            cairn__conn_drop(c);
            return 1; /* never left: safe to send elsewhere */
        }
    }
    if (rc != 0) {
        cairn__call_free(&u.call);
        return rc == ERR_LIMIT
                   ? cairn__fail(c, CAIRN_E_TOO_BIG, 0, "request too large")
                   : cairn__fail(c, CAIRN_E_NOMEM, 0, "no memory");
    }
    if (!cairn__run_until(c, &u.done, deadline_ns)) {
        unary_abandon(c, &u);
        cairn__call_free(&u.call);
        mem_free(u.msg);
        return cairn__fail(c, CAIRN_E_TIMEOUT, 4, "context deadline exceeded");
    }
    cairn__call_free(&u.call);
    if (u.status == CAIRN__ST_TRANSPORT) {
        mem_free(u.msg);
        cairn__conn_drop(c);
        if (idempotent) {
            return 1;
        }
        return cairn__fail(c, CAIRN_E_UNAVAILABLE, 14,
                           "connection lost during the request");
    }
    if (u.status == CAIRN__ST_BAD_RESPONSE) {
        mem_free(u.msg);
        return cairn__fail(c, CAIRN_E_BAD_RESPONSE, 0,
                           "malformed gRPC framing or status from %s",
                           cairn_client_endpoint(c));
    }
    if (u.status != CAIRN__ST_OK) {
        mem_free(u.msg);
        rc = cairn__status_err(c, u.status, u.call.message);
        if (u.status == 14 && idempotent && c->endpoints_count > 1) {
            cairn__conn_drop(c);
            return 1;
        }
        return rc;
    }
    if (u.nomem) {
        return cairn__fail(c, CAIRN_E_NOMEM, 0, "no memory");
    }
    if (u.msgs != 1) {
        mem_free(u.msg);
        return cairn__fail(c, CAIRN_E_BAD_RESPONSE, 0,
                           "expected one response message, got %u", u.msgs);
    }
    *out = protobuf_c_message_unpack(desc, NULL, u.msg_len, u.msg);
    mem_free(u.msg);
    if (*out == NULL) {
        return cairn__fail(c, CAIRN_E_BAD_RESPONSE, 0,
                           "response does not parse as %s", desc->name);
    }
    return 0;
}

int cairn__unary(struct cairn_client *c, const char *path,
                 const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *desc, bool idempotent,
                 uint64_t deadline_ns, ProtobufCMessage **out)
{
    c->errmsg[0] = 0;
    c->grpc_code = 0;
    int rc = 0;
    if (c->user != NULL && c->token == NULL && !c->authenticating) {
        rc = authenticate(c, deadline_ns);
        if (rc != 0) {
            return rc;
        }
    }
    bool reauthed = false;
    for (unsigned attempt = 0; attempt < UNARY_ATTEMPTS_MAX; attempt++) {
        rc = unary_once(c, path, req, desc, idempotent, deadline_ns, out);
        if (rc == CAIRN_E_INVALID_TOKEN && c->user != NULL && !reauthed &&
            !c->authenticating) {
            reauthed = true;
            mem_free(c->token);
            c->token = NULL;
            rc = authenticate(c, deadline_ns);
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        if (rc != 1) {
            return rc;
        }
        if (attempt >= c->endpoints_count) {
            cairn__backoff(c, attempt - (unsigned)c->endpoints_count,
                           deadline_ns);
        }
        if (cairn__now_ns() >= deadline_ns) {
            break;
        }
    }
    return cairn__fail(c, CAIRN_E_UNAVAILABLE, 14,
                       "no endpoint answered (last: %s)",
                       cairn_client_endpoint(c));
}

/* A server-streaming call: each response message to on_msg (which
 * returns nonzero to stop the call), until the server ends it. */
struct stream {
    struct cairn__call call;
    int (*on_msg)(void *arg, const uint8_t *p, size_t n);
    void *arg;
    int stop; /* on_msg's nonzero answer */
    bool done;
    int status;
};

static void stream_msg(struct cairn__call *call, const uint8_t *p, size_t n)
{
    struct stream *st = call->data;
    if (st->stop == 0) {
        st->stop = st->on_msg(st->arg, p, n);
        if (st->stop != 0) {
            cairn__call_cancel(call);
        }
    }
}

static void stream_done(struct cairn__call *call, int status)
{
    struct stream *st = call->data;
    st->done = true;
    st->status = status;
}

int cairn__stream(struct cairn_client *c, const char *path,
                  const ProtobufCMessage *req,
                  int (*on_msg)(void *arg, const uint8_t *p, size_t n),
                  void *arg, uint64_t deadline_ns)
{
    c->errmsg[0] = 0;
    c->grpc_code = 0;
    if (c->user != NULL && c->token == NULL) {
        int rc = authenticate(c, deadline_ns);
        if (rc != 0) {
            return rc;
        }
    }
    struct cairn__conn *conn;
    int rc = cairn__conn_get(c, deadline_ns, &conn);
    if (rc != 0) {
        return rc;
    }
    struct stream st = {.on_msg = on_msg, .arg = arg};
    cairn__call_init(&st.call, stream_msg, stream_done, &st);
    st.call.in_max = c->recv_bytes_max;
    st.call.want_msgs = true;
    st.call.token = c->token;
    rc = cairn__call_add(&st.call, req);
    if (rc == 0) {
        rc = cairn__call_start(&st.call, conn, path, false);
    }
    if (rc != 0) {
        cairn__call_free(&st.call);
        if (rc == ERR_STOPPED) {
            cairn__conn_drop(c);
            return cairn__fail(c, CAIRN_E_UNAVAILABLE, 14,
                               "connection lost before the request");
        }
        return cairn__fail(c, CAIRN_E_NOMEM, 0, "no memory");
    }
    if (!cairn__run_until(c, &st.done, deadline_ns)) {
        cairn__call_cancel(&st.call);
        uint64_t until = cairn__now_ns() + CANCEL_WAIT_MS * 1000000u;
        if (!cairn__run_until(c, &st.done, until)) {
            net_close(c);
        }
        cairn__call_free(&st.call);
        return cairn__fail(c, CAIRN_E_TIMEOUT, 4, "context deadline exceeded");
    }
    cairn__call_free(&st.call);
    if (st.stop != 0) {
        return st.stop;
    }
    if (st.status == CAIRN__ST_TRANSPORT) {
        cairn__conn_drop(c);
        return cairn__fail(c, CAIRN_E_UNAVAILABLE, 14,
                           "connection lost during the stream");
    }
    if (st.status == CAIRN__ST_BAD_RESPONSE) {
        return cairn__fail(c, CAIRN_E_BAD_RESPONSE, 0,
                           "malformed gRPC framing or status from %s",
                           cairn_client_endpoint(c));
    }
    if (st.status != CAIRN__ST_OK) {
        return cairn__status_err(c, st.status, st.call.message);
    }
    return 0;
}

static int authenticate(struct cairn_client *c, uint64_t deadline_ns)
{
    Etcdserverpb__AuthenticateRequest req =
        ETCDSERVERPB__AUTHENTICATE_REQUEST__INIT;
    req.name = c->user;
    req.password = c->password;
    ProtobufCMessage *m = NULL;
    c->authenticating = true;
    int rc = cairn__unary(c, "/etcdserverpb.Auth/Authenticate", &req.base,
                          &etcdserverpb__authenticate_response__descriptor,
                          true, deadline_ns, &m);
    c->authenticating = false;
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__AuthenticateResponse *r = (void *)m;
    mem_free(c->token);
    c->token = r->token != NULL && r->token[0] != 0 ? str_copy(r->token) : NULL;
    protobuf_c_message_free_unpacked(m, NULL);
    if (c->token == NULL) {
        return cairn__fail(c, CAIRN_E_BAD_RESPONSE, 0,
                           "Authenticate answered without a token");
    }
    return 0;
}

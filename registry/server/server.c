/*
 * server.c - cairnd's lifecycle, the client port and the gRPC glue.
 *
 * Start: derive the member and cluster IDs as etcd does (from the advertised
 * peer URLs, --initial-cluster and the token), open the member (node), set
 * up the gRPC server with one unary method per API method, listen on every
 * --listen-client-urls address, and catch SIGTERM/SIGINT.
 *
 * Each accepted connection is sniffed: its first bytes are read; the HTTP/2
 * client preface sends it to the gRPC server, anything else to the HTTP/1.1
 * side (registry/http) when that is built in, else it is closed. An
 * HTTP/1.1 connection is handed over only once its whole request head is
 * in, so libwebsockets' header tables are never held by a slow client
 * (slowloris): the preface or the head must come within
 * --http-header-timeout, the head within --max-header-bytes (else 431).
 * Connections being sniffed count against --max-connections.
 *
 * Stop (the first signal): stop accepting, GOAWAY on every gRPC connection
 * so running calls finish, close the member (it fails what is still
 * pending, syncs and joins its threads), then close the gRPC server; the
 * loop runs out and cairnd exits 0. A second signal exits at once.
 */
#include "registry/server/server.h"
#include "registry/server/auth_jwt.h"

#include "registry/config/cfgapi.h"
#include "registry/http/http.h"
#include "registry/server/api_auth.h"
#include "registry/server/api_lock.h"
#include "registry/server/discovery_srv.h"
#include "registry/server/tls_int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"

/* A client that vanished (host gone, NAT entry dropped) is found by TCP
 * keep-alive: probes after KEEPIDLE s of silence, KEEPCNT of them
 * KEEPINTVL s apart, and unacknowledged data is given up after
 * USER_TIMEOUT. The kernel keeps these timers, so an idle subscriber
 * costs the loop nothing; it replaces libwebsockets' per-socket PING
 * timers (registry/http/http_server.c), with about the same 5 minutes. */
#define CLIENT_KEEPIDLE_S      300
#define CLIENT_KEEPINTVL_S     10
#define CLIENT_KEEPCNT         3
#define CLIENT_USER_TIMEOUT_MS 330000

/* ------------------------------------------------------- extension points */

__attribute__((weak)) size_t
server__stream_methods(struct server *s, struct grpc_method *out, size_t cap)
{
    (void)s;
    (void)out;
    (void)cap;
    return 0;
}

__attribute__((weak)) void server__observe(struct server *s,
                                           struct node_observer *obs)
{
    (void)s;
    (void)obs;
}

__attribute__((weak)) int server__modules_start(struct server *s, char *msg,
                                                size_t msg_len)
{
    (void)s;
    (void)msg;
    (void)msg_len;
    return 0;
}

__attribute__((weak)) void server__modules_stop(struct server *s)
{
    (void)s;
}

#define STREAM_METHODS_MAX 32

/* ------------------------------------------------------------ gRPC glue */

struct glue {
    struct server *s;
    const struct api_method *m;
};

static void grpc_done(void *ctx, int err, const uint8_t *resp, size_t len)
{
    struct grpc_call *call = ctx;
    grpc_call_set_data(call, NULL);
    if (err != 0) {
        grpc_call_finish_err(call, err);
        return;
    }
    if (grpc_call_send_bytes(call, resp, len) != 0) {
        grpc_call_finish(call, GRPC_RESOURCE_EXHAUSTED,
                         "cairn: response could not be queued");
        return;
    }
    grpc_call_finish(call, GRPC_OK, NULL);
}

static void grpc_on_msg(struct grpc_call *call, const struct grpc_msg *msg)
{
    const struct glue *g = grpc_call_method(call)->ctx;
    uint64_t deadline = grpc_call_deadline_ms(call);
    uint32_t timeout_ms = 0;
    if (deadline != 0) {
        uint64_t now = uv_now(g->s->loop);
        timeout_ms = deadline > now ? (uint32_t)(deadline - now) : 1;
    }
    const char *token = grpc_call_metadata(call, "token", NULL);
    if (token == NULL) {
        token = grpc_call_metadata(call, "authorization", NULL);
    }
    /* a token wins; without one, --client-cert-auth makes the verified
     * certificate's CN the user (etcd's AuthInfoFromCtx) */
    const char *cn = g->s->opt->client_tls.client_cert_auth
                         ? grpc_call_identity(call)
                         : NULL;
    struct api_op *op = token == NULL && cn != NULL
                            ? api_call_cert(g->s, g->m, msg->data, msg->len,
                                            timeout_ms, cn, grpc_done, call)
                            : api_call_auth(g->s, g->m, msg->data, msg->len,
                                            timeout_ms, token, grpc_done, call);
    if (op != NULL) {
        grpc_call_set_data(call, op);
    }
}

static void grpc_on_cancel(struct grpc_call *call)
{
    struct api_op *op = grpc_call_data(call);
    if (op != NULL) {
        api_cancel(op);
    }
}

int server__grpc_init(struct server *s)
{
    struct grpc_limits lim;
    struct glue *glue;
    int rc;
    size_t unary =
        api_methods_count + api_auth_methods_count + api_lock_methods_count;
    size_t total;
    s->grpc_methods =
        mem_calloc(unary + STREAM_METHODS_MAX, sizeof(*s->grpc_methods));
    glue = mem_calloc(unary, sizeof(*glue));
    if (s->grpc_methods == NULL || glue == NULL) {
        mem_free(glue);
        return -ENOMEM;
    }
    for (size_t i = 0; i < unary; i++) {
        const struct api_method *m =
            i < api_methods_count ? &api_methods[i]
            : i < api_methods_count + api_auth_methods_count
                ? &api_auth_methods[i - api_methods_count]
                : &api_lock_methods[i - api_methods_count -
                                    api_auth_methods_count];
        glue[i].s = s;
        glue[i].m = m;
        s->grpc_methods[i].path = m->path;
        s->grpc_methods[i].kind = GRPC_UNARY;
        s->grpc_methods[i].on_msg = grpc_on_msg;
        s->grpc_methods[i].on_cancel = grpc_on_cancel;
        s->grpc_methods[i].ctx = &glue[i];
    }
    server__snapshot_method(s, &s->grpc_methods[unary]);
    total = unary + 1 +
            server__stream_methods(s, s->grpc_methods + unary + 1,
                                   STREAM_METHODS_MAX - 2);
    total += api_lock_stream_methods(s, s->grpc_methods + total, 1);
    grpc_limits_init(&lim, &s->limits);
    lim.recv_msg_bytes_max =
        (size_t)s->limits.v[LIMIT_REQUEST_BYTES] + 512 * 1024;
    if (s->opt->max_concurrent_streams < lim.streams_per_conn_max) {
        lim.streams_per_conn_max = (uint32_t)s->opt->max_concurrent_streams;
    }
    /* options_validate bounds these; 0 (options that skipped it) keeps
     * grpc_limits_init's default */
    if (s->opt->http_header_timeout_ms != 0) {
        lim.handshake_timeout_ms = s->opt->http_header_timeout_ms;
    }
    if (s->opt->idle_timeout_ms != 0) {
        lim.idle_timeout_ms = s->opt->idle_timeout_ms;
    }
    if (s->opt->stall_timeout_ms != 0) {
        lim.stall_timeout_ms = s->opt->stall_timeout_ms;
    }
    if (s->opt->http2_reset_burst != 0 && s->opt->http2_reset_rate != 0) {
        lim.reset_burst = (uint32_t)s->opt->http2_reset_burst;
        lim.reset_rate = (uint32_t)s->opt->http2_reset_rate;
    }
    rc = grpc_server_init(&s->grpc, s->loop, &lim, s->grpc_methods, total);
    if (rc == 0) {
        s->grpc_on = true;
    }
    return rc;
}

/* ------------------------------------------------------------ listeners */

/* After a 431, how long the client has to read it and close. */
#define SNIFF_LINGER_MS        2000
/* Wake-ups in a row that found no new byte before the sniff gives up (a
 * kernel that did not honour SO_RCVLOWAT would otherwise spin). */
#define SNIFF_EMPTY_WAKES_MAX  64
/* The longest request method the sniff waits for ("OPTIONS" is 7). */
#define SNIFF_METHOD_BYTES_MAX 32

/* A connection is sniffed until we know what it is and, for HTTP/1.1,
 * until its whole request head is in (see sniff_event). The sniff only
 * peeks: the side it goes to reads every byte itself. */
struct sniff {
    uv_tcp_t tcp;   /* accepted into, closed at once (fd is a dup) */
    uv_poll_t poll; /* on fd */
    uv_timer_t timer;
    struct server *s;
    int fd;
    bool metrics;   /* from a --listen-metrics-urls listener: HTTP only */
    bool rejecting; /* 431 sent: reading to EOF before the close */
    bool counted;   /* in s->conns_sniffing */
    size_t peeked;  /* bytes queued at the last peek */
    size_t scanned; /* peek[0..scanned) holds no end of head */
    unsigned empty_wakes;
    int closing;
};

static void sniff_closed(uv_handle_t *h)
{
    struct sniff *sn = h->data;
    if (--sn->closing == 0) {
        if (sn->fd >= 0) {
            close(sn->fd);
        }
        mem_free(sn);
    }
}

static void sniff_uncount(struct sniff *sn)
{
    if (sn->counted) {
        ASSERT(sn->s->conns_sniffing > 0);
        sn->s->conns_sniffing--;
        sn->counted = false;
    }
}

/* The poll handle goes first: closing it takes fd out of epoll at once,
 * before fd itself is closed (in sniff_closed). */
static void sniff_close(struct sniff *sn)
{
    ASSERT(sn->closing == 2 || sn->closing == 3); /* tcp may be closed */
    ASSERT(!uv_is_closing((uv_handle_t *)&sn->poll));
    sniff_uncount(sn);
    uv_timer_stop(&sn->timer);
    uv_close((uv_handle_t *)&sn->poll, sniff_closed);
    uv_close((uv_handle_t *)&sn->timer, sniff_closed);
}

__attribute__((weak)) int server__http_adopt_metrics(struct server *s, int fd,
                                                     const void *pre,
                                                     size_t pre_len)
{
    (void)s;
    (void)fd;
    (void)pre;
    (void)pre_len;
    return ERR_INVALID;
}

__attribute__((weak)) int server__http_adopt(struct server *s, int fd,
                                             const void *pre, size_t pre_len)
{
    (void)s;
    (void)fd;
    (void)pre;
    (void)pre_len;
    return ERR_INVALID; /* no HTTP/1.1 side built in: close it */
}

/* Hand the socket over, every byte still unread: a dup of fd (ours is
 * closed after the poll handle). */
static void sniff_hand_over(struct sniff *sn, bool grpc)
{
    static const int one = 1;
    int dupfd;
    int rc = ERR_INVALID;
    (void)setsockopt(sn->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
    /* from here the other side counts it (server__http_adopt's bound
     * looks at the connections still being sniffed) */
    sniff_close(sn);
    dupfd = dup(sn->fd);
    if (dupfd >= 0) {
        rc = sn->metrics ? server__http_adopt_metrics(sn->s, dupfd, NULL, 0)
             : grpc      ? grpc_server_adopt(&sn->s->grpc, dupfd, NULL, 0)
                         : server__http_adopt(sn->s, dupfd, NULL, 0);
        if (rc != 0) {
            close(dupfd);
        }
    }
    if (rc != 0 && grpc) {
        LOGD("server", "gRPC connection refused: %s", err_str(rc));
    }
}

/* The end of an HTTP/1.1 request head in p[0..len): an empty line (RFC
 * 9112 2.2: a recipient may take a bare LF for CRLF). Bytes before
 * *scanned were looked at before and are not looked at again. */
static bool head_complete(const uint8_t *p, size_t len, size_t *scanned)
{
    size_t i = *scanned > 2 ? *scanned - 2 : 0;
    for (; i < len; i++) {
        if (p[i] != '\n') {
            continue;
        }
        if ((i + 1 < len && p[i + 1] == '\n') ||
            (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n')) {
            return true;
        }
    }
    *scanned = len;
    return false;
}

/* Could p[0..len) begin an HTTP/1.1 request line? A method is a token
 * (RFC 9110 9.1; ours are letters) and ends at the first space. Anything
 * else (a TLS ClientHello on the plain port, garbage) goes to the HTTP
 * side at once, which answers or closes it as before: only what looks
 * like a request waits for its whole head. */
static bool request_plausible(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len && i <= SNIFF_METHOD_BYTES_MAX; i++) {
        uint8_t b = p[i];
        if (b == ' ') {
            return i > 0;
        }
        if (!((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') ||
              (b >= '0' && b <= '9' && i > 0) || b == '-' || b == '_')) {
            return false;
        }
    }
    return len <= SNIFF_METHOD_BYTES_MAX;
}

static void sniff_timeout(uv_timer_t *t);

/* Answer resp and close: the client's own bytes are then read to EOF
 * (or the timer) and dropped, so the answer is not lost to a reset. */
static void sniff_reject(struct sniff *sn, const char *resp, size_t len)
{
    static const int one = 1;
    sn->rejecting = true;
    sniff_uncount(sn);
    (void)send(sn->fd, resp, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)shutdown(sn->fd, SHUT_WR);
    (void)setsockopt(sn->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof(one));
    uv_timer_stop(&sn->timer);
    uv_timer_start(&sn->timer, sniff_timeout, SNIFF_LINGER_MS, 0);
}

/* The head is past --max-header-bytes: 431 as Go's net/http words it
 * (etcd's gateway). */
static void sniff_reject_431(struct sniff *sn)
{
    static const char resp[] =
        "HTTP/1.1 431 Request Header Fields Too Large\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Connection: close\r\n\r\n"
        "431 Request Header Fields Too Large";
    sn->s->headers_too_large++;
    sniff_reject(sn, resp, sizeof(resp) - 1);
}

/* Whether the request line's method is one the HTTP side parses (lws
 * knows these, in any case; it answers any other with a bare 403 page,
 * or closes on CONNECT). */
static bool method_known(const uint8_t *p, size_t len)
{
    static const char *const known[] = {"GET",    "POST",    "PUT", "PATCH",
                                        "DELETE", "OPTIONS", "HEAD"};
    size_t n = 0;
    while (n < len && p[n] != ' ') {
        n++;
    }
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strlen(known[i]) == n &&
            strncasecmp((const char *)p, known[i], n) == 0) {
            return true;
        }
    }
    return false;
}

/* Any other method (TRACE, CONNECT, BOGUS): 405, as etcd's gateway
 * answers it, then close. */
static void sniff_reject_405(struct sniff *sn)
{
    static const char resp[] =
        "HTTP/1.1 405 Method Not Allowed\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Allow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS\r\n"
        "Content-Length: 19\r\n"
        "Connection: close\r\n\r\n"
        "Method Not Allowed\n";
    sniff_reject(sn, resp, sizeof(resp) - 1);
}

/* After the 431: what the client still sends is read and dropped. */
static void sniff_discard(struct sniff *sn)
{
    ssize_t n = recv(sn->fd, sn->s->sniff_peek, sizeof(sn->s->sniff_peek),
                     MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        sniff_close(sn);
    }
}

/* fd is readable: peek at everything queued (up to the head bound). The
 * HTTP/2 preface goes to gRPC; an HTTP/1.1 head, once whole, to the HTTP
 * side; a head past the bound gets 431. Otherwise SO_RCVLOWAT is set one
 * past what is queued, so the next wake-up means a new byte came, and
 * a slow client costs one peek per segment it sends. */
static void sniff_event(uv_poll_t *p, int status, int events)
{
    struct sniff *sn = p->data;
    size_t cap = (size_t)sn->s->limits.v[LIMIT_HEADER_BYTES];
    uint8_t *buf = sn->s->sniff_peek;
    ssize_t n;
    int m;
    ASSERT(cap <= sizeof(sn->s->sniff_peek));
    if (sn->rejecting) {
        sniff_discard(sn);
        return;
    }
    if (status != 0 || sn->s->stopping) {
        sniff_close(sn);
        return;
    }
    n = recv(sn->fd, buf, cap, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return;
    }
    if (n <= 0) {
        sniff_close(sn); /* EOF before anything useful, or an error */
        return;
    }
    m = grpc_preface_match(buf, (size_t)n);
    if (m == 1) {
        sniff_hand_over(sn, true);
    } else if (m < 0 && !request_plausible(buf, (size_t)n)) {
        sniff_hand_over(sn, false);
    } else if (m < 0 && head_complete(buf, (size_t)n, &sn->scanned)) {
        if (method_known(buf, (size_t)n)) {
            sniff_hand_over(sn, false);
        } else {
            sniff_reject_405(sn);
        }
    } else if ((size_t)n == cap && m < 0) {
        sniff_reject_431(sn);
    } else if ((events & UV_DISCONNECT) != 0 ||
               ((size_t)n == sn->peeked &&
                ++sn->empty_wakes > SNIFF_EMPTY_WAKES_MAX)) {
        sniff_close(sn); /* half-closed with half a head */
    } else {
        int lowat = (int)n + 1;
        if ((size_t)n != sn->peeked) {
            sn->empty_wakes = 0;
        }
        sn->peeked = (size_t)n;
        (void)setsockopt(sn->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat,
                         sizeof(lowat));
    }
}

/* --http-header-timeout: the HTTP/2 preface or the HTTP/1.1 request head
 * did not come in time (a slowloris client, or one that never speaks). */
static void sniff_timeout(uv_timer_t *t)
{
    struct sniff *sn = t->data;
    if (!sn->rejecting) {
        sn->s->header_timeouts++;
    }
    sniff_close(sn);
}

/* Best effort: a socket that refuses an option keeps the default. */
void server__socket_opts(uv_tcp_t *tcp)
{
    static const struct {
        int level, name, value;
    } opts[] = {
        {SOL_SOCKET, SO_KEEPALIVE, 1},
        {IPPROTO_TCP, TCP_KEEPIDLE, CLIENT_KEEPIDLE_S},
        {IPPROTO_TCP, TCP_KEEPINTVL, CLIENT_KEEPINTVL_S},
        {IPPROTO_TCP, TCP_KEEPCNT, CLIENT_KEEPCNT},
        {IPPROTO_TCP, TCP_USER_TIMEOUT, CLIENT_USER_TIMEOUT_MS},
    };
    uv_os_fd_t fd;
    uv_tcp_nodelay(tcp, 1); /* lws does not set it on adopted sockets */
    if (uv_fileno((uv_handle_t *)tcp, &fd) != 0) {
        return;
    }
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        (void)setsockopt(fd, opts[i].level, opts[i].name, &opts[i].value,
                         sizeof(opts[i].value));
    }
}

/* Accept, then sniff on a dup of the socket: the uv_tcp_t that accepted
 * it is closed at once (uv_accept needs one; the sniff only polls). */
static void on_connection(uv_stream_t *server, int status)
{
    struct server_listener *l = server->data;
    struct server *s = l->s;
    struct sniff *sn;
    uv_os_fd_t fd;
    if (status != 0 || s->stopping) {
        return;
    }
    if (l->tls) {
        server__tls_accept(s, server); /* the whole port is TLS */
        return;
    }
    sn = mem_calloc(1, sizeof(*sn));
    if (sn == NULL) {
        return;
    }
    sn->s = s;
    sn->fd = -1;
    sn->metrics = l->metrics;
    uv_tcp_init(s->loop, &sn->tcp);
    sn->tcp.data = sn;
    if (uv_accept(server, (uv_stream_t *)&sn->tcp) == 0) {
        server__socket_opts(&sn->tcp);
        if (uv_fileno((uv_handle_t *)&sn->tcp, &fd) == 0) {
            sn->fd = dup(fd);
        }
    }
    /* connections still being sniffed count against the bound too: a
     * slowloris client cannot hold more than --max-connections */
    if (sn->fd >= 0 && grpc_server_conns(&s->grpc) + s->conns_sniffing >=
                           s->limits.v[LIMIT_CONNECTIONS]) {
        s->conns_refused_at_accept++;
        close(sn->fd);
        sn->fd = -1;
    }
    if (sn->fd >= 0 && uv_poll_init_socket(s->loop, &sn->poll, sn->fd) != 0) {
        close(sn->fd);
        sn->fd = -1;
    }
    if (sn->fd < 0) {
        sn->closing = 1;
        uv_close((uv_handle_t *)&sn->tcp, sniff_closed); /* frees sn */
        return;
    }
    sn->closing = 3; /* the tcp handle now, poll and timer in sniff_close */
    uv_close((uv_handle_t *)&sn->tcp, sniff_closed);
    uv_timer_init(s->loop, &sn->timer);
    sn->poll.data = sn;
    sn->timer.data = sn;
    sn->counted = true;
    s->conns_sniffing++;
    uv_timer_start(&sn->timer, sniff_timeout, s->opt->http_header_timeout_ms,
                   0);
    uv_poll_start(&sn->poll, UV_READABLE | UV_DISCONNECT, sniff_event);
    /* a client that has not said what it is does not hold up a stop */
    uv_unref((uv_handle_t *)&sn->poll);
    uv_unref((uv_handle_t *)&sn->timer);
}

/* "http[s]://host:port" -> sockaddr (host resolved, IPv4 or IPv6). */
static int url_sockaddr(const char *url, struct sockaddr_storage *out,
                        bool *tls, char *msg, size_t msg_len)
{
    const char *p = url;
    char host[256];
    char port[16];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    *tls = false;
    if (strncmp(p, "http://", 7) == 0) {
        p += 7;
    } else if (strncmp(p, "https://", 8) == 0) {
        p += 8;
        *tls = true;
    } else {
        snprintf(msg, msg_len,
                 "%s: only http:// and https:// URLs are supported", url);
        return ERR_INVALID;
    }
    const char *colon = strrchr(p, ':');
    const char *slash = strchr(p, '/');
    size_t end = slash != NULL ? (size_t)(slash - p) : strlen(p);
    if (colon == NULL || (size_t)(colon - p) >= sizeof(host) ||
        (size_t)(colon - p) > end || end - (size_t)(colon - p) - 1 == 0 ||
        end - (size_t)(colon - p) - 1 >= sizeof(port)) {
        snprintf(msg, msg_len, "%s: expected http[s]://host:port", url);
        return ERR_INVALID;
    }
    size_t hl = (size_t)(colon - p);
    const char *h = p;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, end - (size_t)(colon - p) - 1);
    port[end - (size_t)(colon - p) - 1] = '\0';
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
        snprintf(msg, msg_len, "%s: cannot resolve '%s'", url, host);
        return ERR_INVALID;
    }
    /* "localhost" may resolve to ::1 first; prefer IPv4 as etcd does. */
    const struct addrinfo *pick = res;
    for (const struct addrinfo *a = res; a != NULL; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    }
    memcpy(out, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* The HTTP side's start-up check (http_server.c has the strong one). */
__attribute__((weak)) int server__http_preflight(char *msg, size_t msg_len)
{
    (void)msg;
    (void)msg_len;
    return 0;
}

/* Binds and listens l (its fields set) on sa; on failure msg names url. */
static int listener_open(struct server_listener *l, struct server *s,
                         const struct sockaddr_storage *sa, int backlog,
                         const char *url, char *msg, size_t msg_len)
{
    int rc;
    uv_tcp_init(s->loop, &l->tcp);
    l->tcp.data = l;
    l->s = s;
    l->open = true;
    rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)sa, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&l->tcp, backlog, on_connection);
    }
    if (rc != 0) {
        snprintf(msg, msg_len, "listen on %s: %s", url, uv_strerror(rc));
    }
    return rc;
}

/* --listen-metrics-urls: plain HTTP listeners for /metrics, /health,
 * /readyz, /livez and /version (etcd's metrics listener), so probes and
 * scrapes need no client certificate when the client port asks for one. */
static int listen_metrics(struct server *s, char *msg, size_t msg_len)
{
    const struct options_urls *u = &s->opt->listen_metrics_urls;
    for (size_t i = 0; i < u->count; i++) {
        struct server_listener *l;
        struct sockaddr_storage sa;
        bool tls = false;
        int rc;
        if (s->listeners_count == SERVER_LISTENERS_MAX) {
            snprintf(msg, msg_len, "more than %d listen URLs",
                     SERVER_LISTENERS_MAX);
            return ERR_INVALID;
        }
        rc = url_sockaddr(u->urls[i], &sa, &tls, msg, msg_len);
        if (rc == 0 && tls) {
            snprintf(msg, msg_len,
                     "--listen-metrics-urls %s: https is not supported yet "
                     "(use http://)",
                     u->urls[i]);
            rc = ERR_INVALID;
        }
        if (rc != 0) {
            return rc;
        }
        l = &s->listeners[s->listeners_count++];
        l->metrics = true;
        rc = listener_open(l, s, &sa, 128, u->urls[i], msg, msg_len);
        if (rc != 0) {
            return rc;
        }
        LOGI("server", "serving metrics and probes on %s", u->urls[i]);
    }
    return 0;
}

int server__listen(struct server *s, char *msg, size_t msg_len)
{
    const struct options_urls *u = &s->opt->listen_client_urls;
    int pre = server__http_preflight(msg, msg_len);
    if (pre != 0) {
        return pre; /* before anything listens */
    }
    for (size_t i = 0; i < u->count && i < SERVER_LISTENERS_MAX; i++) {
        struct server_listener *l = &s->listeners[i];
        struct sockaddr_storage sa;
        bool tls = false;
        int rc = url_sockaddr(u->urls[i], &sa, &tls, msg, msg_len);
        if (rc != 0) {
            return rc;
        }
        /* server__tls_init made the context when any URL is https */
        ASSERT(!tls || s->tls != NULL);
        l->tls = tls;
        s->listeners_count = i + 1;
        rc = listener_open(l, s, &sa, 1024, u->urls[i], msg, msg_len);
        if (rc != 0) {
            return rc;
        }
        LOGI("server", "serving client requests on %s", u->urls[i]);
    }
    return listen_metrics(s, msg, msg_len);
}

void server__listen_close(struct server *s)
{
    for (size_t i = 0; i < s->listeners_count; i++) {
        if (s->listeners[i].open) {
            s->listeners[i].open = false;
            uv_close((uv_handle_t *)&s->listeners[i].tcp, NULL);
        }
    }
}

/* ------------------------------------------------------------ lifecycle */

/* --initial-cluster "a=http://x:2380,b=http://y:2380" (or the same text
 * derived from --discovery-srv) into members with etcd's IDs; the same name
 * may appear several times (several URLs). */
static int parse_initial_cluster(const struct options *o, const char *ic,
                                 struct node_config *nc, char *msg,
                                 size_t msg_len)
{
    char copy[4096];
    char *save = NULL;
    uint64_t ids[NODE_MEMBERS_MAX];
    snprintf(copy, sizeof(copy), "%s", ic);
    nc->initial_count = 0;
    for (char *t = strtok_r(copy, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        struct node_member *m = NULL;
        if (eq == NULL || eq == t) {
            snprintf(msg, msg_len,
                     "--initial-cluster: expected name=URL, got '%s'", t);
            return ERR_INVALID;
        }
        *eq = '\0';
        for (size_t i = 0; i < nc->initial_count; i++) {
            if (strcmp(nc->initial[i].name, t) == 0) {
                m = &nc->initial[i];
            }
        }
        if (m == NULL) {
            if (nc->initial_count == NODE_MEMBERS_MAX) {
                snprintf(msg, msg_len, "--initial-cluster: too many members");
                return ERR_INVALID;
            }
            m = &nc->initial[nc->initial_count++];
            memset(m, 0, sizeof(*m));
            snprintf(m->name, sizeof(m->name), "%s", t);
        }
        size_t len = strlen(m->peer_urls);
        snprintf(m->peer_urls + len, sizeof(m->peer_urls) - len, "%s%s",
                 len > 0 ? "," : "", eq + 1);
    }
    for (size_t i = 0; i < nc->initial_count; i++) {
        nc->initial[i].id = node_member_id_derive(nc->initial[i].peer_urls,
                                                  o->initial_cluster_token);
        ids[i] = nc->initial[i].id;
    }
    nc->cluster_id = node_cluster_id_derive(ids, nc->initial_count);
    return 0;
}

/* The initial cluster from --initial-cluster, or from DNS SRV records
 * when --discovery-srv is set (options.c refuses both together). The
 * lookup blocks, bounded (discovery_srv.h), before the loop runs. */
static int initial_cluster(const struct options *o, struct node_config *nc,
                           char *msg, size_t msg_len)
{
    char *found;
    int rc;
    if (o->discovery_srv == NULL || o->discovery_srv[0] == '\0') {
        return parse_initial_cluster(o, o->initial_cluster, nc, msg, msg_len);
    }
    found = mem_alloc(DISCOVERY_SRV_CLUSTER_MAX);
    if (found == NULL) {
        return -ENOMEM;
    }
    rc = discovery_srv_cluster(o, found, DISCOVERY_SRV_CLUSTER_MAX, msg,
                               msg_len);
    if (rc == 0) {
        rc = parse_initial_cluster(o, found, nc, msg, msg_len);
    }
    mem_free(found);
    return rc;
}

static int find_self(const struct options *o, struct node_config *nc, char *msg,
                     size_t msg_len)
{
    for (size_t i = 0; i < nc->initial_count; i++) {
        if (strcmp(nc->initial[i].name, o->name) == 0) {
            nc->member_id = nc->initial[i].id;
            nc->name = o->name;
            nc->client_urls = nc->initial[i].client_urls;
            /* our client URLs, as MemberList shows them */
            char *dst = nc->initial[i].client_urls;
            size_t cap = sizeof(nc->initial[i].client_urls);
            dst[0] = '\0';
            for (size_t k = 0; k < o->advertise_client_urls.count; k++) {
                size_t len = strlen(dst);
                snprintf(dst + len, cap - len, "%s%s", k > 0 ? "," : "",
                         o->advertise_client_urls.urls[k]);
            }
            return 0;
        }
    }
    snprintf(msg, msg_len,
             "couldn't find local name \"%s\" in the initial cluster "
             "configuration",
             o->name);
    return ERR_INVALID;
}

/* A member that cannot go on (its log or store failed, or the cluster
 * removed it) stops the process: exit code 2, after a clean shutdown of
 * what still works, as etcd exits when it is removed. */
static void on_watchdog(uv_timer_t *t)
{
    struct server *s = t->data;
    int err = s->node != NULL ? node_failed(s->node) : 0;
    stall_beat(&s->stall);
    if (err == 0 || s->stopping) {
        return;
    }
    LOGE("server", "stopping: %s", err_str(err));
    s->exit_code = 2;
    server_stop(s);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct server *s = h->data;
    if (s->stopping) {
        LOGW("server", "second signal %d: exiting now", signum);
        _exit(1);
    }
    LOGI("server", "received signal %d, shutting down", signum);
    server_stop(s);
}

static void on_grpc_closed(struct grpc_server *g)
{
    struct server *s =
        (struct server *)((char *)g - offsetof(struct server, grpc));
    if (s->grpc_methods != NULL) {
        /* the glue array hangs off the first unary method's ctx */
        mem_free(s->grpc_methods[0].ctx);
        mem_free(s->grpc_methods);
        s->grpc_methods = NULL;
    }
}

static void on_node_closed(void *ctx)
{
    struct server *s = ctx;
    s->node = NULL;
    api_auth_free(s->auth); /* the applier that used it is gone */
    auth_jwt_free(s->jwt);
    s->jwt = NULL;
    cfgapi_free(s);
    s->auth = NULL;
    if (s->grpc_on) {
        s->grpc_on = false;
        grpc_server_close(&s->grpc, on_grpc_closed);
    }
    LOGI("server", "stopped");
}

void server_stop(struct server *s)
{
    if (s->stopping) {
        return;
    }
    s->stopping = true;
    stall_stop(&s->stall); /* closing may legitimately block the loop */
    server__listen_close(s);
    server__tls_stop(s);
    server__peer_tls_stop(s);
    server__compactor_stop(s);
    server__modules_stop(s);
    http_stop(s);
    uv_close((uv_handle_t *)&s->sig_term, NULL);
    uv_close((uv_handle_t *)&s->sig_int, NULL);
    uv_close((uv_handle_t *)&s->watchdog, NULL);
    if (s->grpc_on) {
        grpc_server_shutdown(&s->grpc);
    }
    if (s->node != NULL) {
        node_close(s->node, on_node_closed, s);
    } else {
        on_node_closed(s);
    }
}

static void limits_from_options(struct server *s)
{
    const struct options *o = s->opt;
    limits_init(&s->limits);
    if (o->quota_backend_bytes != 0) {
        s->limits.v[LIMIT_QUOTA_BACKEND_BYTES] = o->quota_backend_bytes;
    }
    s->limits.v[LIMIT_REQUEST_BYTES] = o->max_request_bytes;
    s->limits.v[LIMIT_TXN_OPS] = o->max_txn_ops;
    /* options_validate bounds both; 0 (options that skipped it) keeps the
     * default */
    if (o->max_header_bytes != 0) {
        (void)limits_set(&s->limits, limits_key(LIMIT_HEADER_BYTES),
                         o->max_header_bytes);
    }
    if (o->max_conn_out_bytes != 0) {
        (void)limits_set(&s->limits, limits_key(LIMIT_CONN_OUT_BYTES),
                         o->max_conn_out_bytes);
    }
    /* options_validate bounds it to 1..hard max; options that skipped it
     * (0, or past the bound: ERR_LIMIT) keep the default */
    if (o->max_connections != 0) {
        (void)limits_set(&s->limits, limits_key(LIMIT_CONNECTIONS),
                         o->max_connections);
    }
}

int server_start(struct server *s, uv_loop_t *loop, const struct options *o,
                 char *msg, size_t msg_len)
{
    struct node_config nc;
    struct node_observer obs = {0};
    char peer[256] = "";
    SSL_CTX *peer_srv = NULL;
    SSL_CTX *peer_cli = NULL;
    int rc;

    memset(s, 0, sizeof(*s));
    s->loop = loop;
    s->opt = o;
    limits_from_options(s);
    /* certificate and key files are checked before anything opens */
    rc = server__tls_init(s, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    if (strncmp(o->auth_token, "jwt", 3) == 0) {
        rc = auth_jwt_open(o->auth_token, &s->jwt, msg, msg_len);
        if (rc != 0) {
            return rc;
        }
    }
    node_config_default(&nc);
    nc.data_dir = o->data_dir;
    nc.heartbeat_ms = (uint32_t)o->heartbeat_interval_ms;
    nc.election_ms = (uint32_t)o->election_timeout_ms;
    nc.snapshot_count = o->snapshot_count;
    nc.checkpoint_mode =
        strcmp(o->store_checkpoint, "in-place") == 0 ? NODE_CKPT_IN_PLACE
        : strcmp(o->store_checkpoint, "copy") == 0   ? NODE_CKPT_COPY
                                                     : NODE_CKPT_AUTO;
    nc.raft_log_memory_bytes = o->raft_log_memory_bytes;
    nc.quota_bytes = s->limits.v[LIMIT_QUOTA_BACKEND_BYTES];
    nc.store_writemap = o->store_writemap;
    nc.store_resident_bytes = o->store_resident_bytes;
    nc.max_txn_ops = (uint32_t)o->max_txn_ops;
    nc.max_request_bytes = (uint32_t)o->max_request_bytes;
    nc.unsafe_no_fsync = o->unsafe_no_fsync;
    nc.strict_reconfig = o->strict_reconfig_check;
    nc.seed = clock_mono_ns() ^ (uint64_t)getpid();
    nc.join_existing = strcmp(o->initial_cluster_state, "existing") == 0;
    nc.cluster_token = o->initial_cluster_token;
    rc = initial_cluster(o, &nc, msg, msg_len);
    if (rc == 0) {
        rc = find_self(o, &nc, msg, msg_len);
    }
    if (rc != 0) {
        return rc;
    }
    /* Given even to a member that starts alone: the node listens once a
     * second member is added (node__transport_sync), and a member of a
     * cluster grown since its first start must still be reachable. */
    if (o->listen_peer_urls.count > 0) {
        const char *u = o->listen_peer_urls.urls[0];
        bool https = strncmp(u, "https://", 8) == 0;
        const char *hp = https                           ? u + 8
                         : strncmp(u, "http://", 7) == 0 ? u + 7
                                                         : u;
        /* the scheme stays for https: the transport listens with TLS */
        snprintf(peer, sizeof(peer), "%s%s%s", https ? "https://" : "",
                 strncmp(hp, "localhost:", 10) == 0 ? "127.0.0.1:" : "",
                 strncmp(hp, "localhost:", 10) == 0 ? hp + 10 : hp);
        nc.listen_peer = peer;
    }
    /* peer certificates are checked before anything listens, too */
    rc = server__peer_tls_new(o, &peer_srv, &peer_cli, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    nc.peer_tls_server_ctx = peer_srv;
    nc.peer_tls_client_ctx = peer_cli;
    /* etcd 3.4 checks a dialling member's SAN against its address unless
     * --experimental-peer-skip-client-san-verification; not with auto TLS
     * (nothing is verified then) */
    nc.peer_tls_check_client_san =
        !o->peer_tls.skip_client_san &&
        !(o->peer_tls.auto_tls &&
          (o->peer_tls.cert_file == NULL || o->peer_tls.cert_file[0] == '\0'));
    s->member_id = nc.member_id;
    s->cluster_id = nc.cluster_id;
    s->lease_id_next = (nc.member_id << 16) ^ (clock_wall_ms() << 8);
    server__observe(s, &obs);
    rc = api_auth_new(o, &s->auth);
    if (rc != 0) {
        snprintf(msg, msg_len, "auth store: %s", err_str(rc));
        SSL_CTX_free(peer_srv);
        SSL_CTX_free(peer_cli);
        return rc;
    }
    nc.auth = s->auth;
    rc = node_open(loop, &nc, &obs, &s->node, msg, msg_len);
    /* the transport took its own references */
    SSL_CTX_free(peer_srv);
    SSL_CTX_free(peer_cli);
    if (rc != 0) {
        return rc;
    }
    rc = server__modules_start(s, msg, msg_len);
    if (rc == 0) {
        rc = server__compactor_start(s);
    }
    if (rc != 0) {
        return rc;
    }
    LOGI("server", "member %016llx of cluster %016llx, data in %s",
         (unsigned long long)s->member_id, (unsigned long long)s->cluster_id,
         o->data_dir);
    rc = server__grpc_init(s);
    if (rc != 0) {
        snprintf(msg, msg_len, "gRPC server: %s", err_str(rc));
        return rc;
    }
    rc = server__listen(s, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    uv_signal_init(loop, &s->sig_term);
    uv_signal_init(loop, &s->sig_int);
    s->sig_term.data = s;
    s->sig_int.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    server__tls_watch(s);
    server__peer_tls_watch(s);
    uv_timer_init(loop, &s->watchdog);
    s->watchdog.data = s;
    uv_timer_start(&s->watchdog, on_watchdog, 200, 200);
    if (stall_start(&s->stall, 2000) != 0) {
        LOGW("server", "no stall monitor: the loop's stack will not be shown");
    }
    if (s->opt->experimental_initial_corrupt_check) {
        LOGW("server", "--experimental-initial-corrupt-check is not "
                       "supported: no hash is compared with the peers at "
                       "start (etcdctl endpoint hashkv --cluster does)");
    }
    if (s->opt->enable_pprof) {
        LOGW("server", "--enable-pprof is not supported: no /debug/pprof");
    }
    return 0;
}

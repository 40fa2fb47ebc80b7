/*
 * http_server.c - libwebsockets on the server's libuv loop: adoption of the
 * client port's HTTP/1.1 connections, request routing, the JSON gateway,
 * and response writing.
 *
 * Happy path. The client-port sniffer (registry/server/server.c) sees a
 * connection that does not open with the HTTP/2 preface and calls
 * server__http_adopt() with a dup of the socket and the bytes it read. The
 * first call creates the lws context (foreign libuv loop, a vhost with no
 * listening socket); lws_adopt_socket_vhost_readbuf() then parses the
 * request. LWS_CALLBACK_HTTP routes by path: the gateway (POST /v3/...)
 * collects the body (bounded by LIMIT_REQUEST_BYTES), converts the JSON to
 * protobuf (http_pbjson.c) and calls api_call(); the answer is converted
 * back to JSON and written to the socket (resp_send()); then, from
 * LWS_CALLBACK_HTTP_WRITEABLE, the transaction completes and the
 * connection waits for the next request (keep-alive; lws holds pipelined
 * bytes until then). GET endpoints answer from http_endpoints.c.
 * The stream paths (POST /v3/watch, /v3/lease/keepalive) collect their body
 * the same way and then hand the connection to http_stream.c, as does a
 * WebSocket upgrade at a watch path (LWS_CALLBACK_ESTABLISHED onwards).
 *
 * Chunked request bodies are decoded by http_chunked.c, within the same
 * bound; the connection closes after their answer (see chunked_start()).
 * Responses are written by us, not lws, with reads paused from the moment
 * an answer is due until it is all with the kernel, so that a client that
 * half-closes after its request still gets it (see "writing out").
 *
 * Failure modes. A body past the limit gets 413 and the connection closes
 * (the rest of the body is not read); a chunked one as soon as a chunk's
 * size line says so. Malformed chunk framing gets 400 and a transfer
 * coding other than chunked 501, as from etcd, then the connection
 * closes. Malformed JSON gets 400 with the gateway's error body. A client
 * that goes away while its call is in flight: LWS_CALLBACK_CLOSED_HTTP
 * cancels the call (api_cancel), so the answer never touches freed memory;
 * the same for a response still being written (its drain is closed).
 * Connections past LIMIT_CONNECTIONS (HTTP and gRPC together) are refused
 * at adoption. A WebSocket upgrade anywhere but a watch path is hung up
 * on.
 *
 * Stop. http_stop() (or the check handle, on the loop pass after
 * server_stop() set s->stopping) destroys the lws context: lws closes every
 * connection (cancelling calls) and its libuv handles over the next loop
 * passes, and writes NULL into h->ctx when done (info.pcontext). A timer
 * waits for that before freeing struct http, because lws may call back
 * into it until then.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "base/str.h"
#include "registry/http/http_console_int.h"
#include "registry/http/http_int.h"

#define REAP_INTERVAL_MS 10
#define REAP_GIVE_UP     500 /* intervals (5 s) before leaving lws to it */

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason,
                   void *user, void *in, size_t len);

/* protocols[0] serves plain HTTP and the WebSocket watch streams of
 * clients that name no subprotocol (lws binds those to protocols[0]);
 * protocols[1] is the same for a client that names "cairn.watch". Both
 * share one callback and one per-connection struct.
 *
 * rx_buffer_size is the size of the receive buffer lws allocates for each
 * WebSocket, for its life, and bounds what one RECEIVE callback hands
 * over; messages are assembled, bounded by LIMIT_REQUEST_BYTES, in
 * http_stream.c. Clients send small messages (acks, watch and mux
 * requests), so HTTP_WS_RX_BYTES is small: at 64 KiB the buffers of 9,998
 * subscribers took 660 MB of address space, and a client that once sent a
 * large message kept its pages resident. 4 KiB is lws's own read size
 * (pt_serv_buf_size); at 1 KiB the buffer would save 3 KB more per socket
 * (measured), but lws then drains a large message so slowly after closing
 * it with 1009 that its close times out and the client sees a reset
 * (ws_watch.test). tx_packet_size, which lws would otherwise take from
 * rx_buffer_size, caps one send(): a whole frame or write slice. */
#define HTTP_WS_RX_BYTES 4096
#define HTTP_TX_PACKET_BYTES                                                   \
    ((HTTP_WRITE_CHUNK_BYTES > HTTP_WS_FRAME_BYTES ? HTTP_WRITE_CHUNK_BYTES    \
                                                   : HTTP_WS_FRAME_BYTES) +    \
     64)
static const struct lws_protocols http_protocols[] = {
    {"http", http_cb, sizeof(struct http_conn), HTTP_WS_RX_BYTES, 0, NULL,
     HTTP_TX_PACKET_BYTES},
    {"cairn.watch", http_cb, sizeof(struct http_conn), HTTP_WS_RX_BYTES, 0,
     NULL, HTTP_TX_PACKET_BYTES},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ------------------------------------------------------------- logging */

/* lws logs every adoption at error level ("adopt_socket_readbuf: calling
 * service"); drop those two lines and pass the rest on. */
static void lws_log_emit(int level, const char *line)
{
    char tmp[256];
    size_t n;
    if (strstr(line, "adopt_socket_readbuf") != NULL) {
        return;
    }
    snprintf(tmp, sizeof(tmp), "%s", line);
    n = strlen(tmp);
    while (n > 0 && (tmp[n - 1] == '\n' || tmp[n - 1] == '\r')) {
        tmp[--n] = '\0';
    }
    if (level & LLL_ERR) {
        LOGE_LIMITED("http", "lws: %s", tmp);
    } else {
        LOGW_LIMITED("http", "lws: %s", tmp);
    }
}

/* The levels lws_set_log_level was last given here (lws's own default
 * until then). */
static int lws_levels = LLL_ERR | LLL_WARN | LLL_NOTICE;

static void lws_levels_set(int levels)
{
    lws_levels = levels;
    lws_set_log_level(levels, lws_log_emit);
}

/* libwebsockets' log entry point, interposed: every lwsl_*() in the
 * library calls _lws_log through its PLT, and cairnd's definition comes
 * first. Debian's build keeps its parser's debug lines (lwsl_parser, once
 * a header byte), and its _lws_log hands each, level or not, to
 * _lws_logv, which only then drops it: about 170 calls a request at ~40
 * instructions, 5% of a registration on the loop thread. Here a line of
 * a level that is off costs a test; the others go on to _lws_logv as
 * before (which checks again and calls lws_log_emit). */
void _lws_log(int filter, const char *format, ...)
{
    va_list ap;
    if ((filter & lws_levels) == 0) {
        return;
    }
    va_start(ap, format);
    _lws_logv(filter, format, ap);
    va_end(ap);
}

/* ---------------------------------------------------------- responses */

static void drain_close(struct http_drain *d);
static void pending_done(struct http *h);

static void conn_clear(struct http_conn *c)
{
    if (c->drain != NULL) {
        drain_close(c->drain);
    }
    http__stream_free(c);
    http__api_clear(c);
    if (c->op != NULL) {
        api_cancel(c->op);
        c->op = NULL;
    }
    buf_free(&c->body);
    buf_free(&c->resp);
    c->wait = HTTP_WAIT_NONE;
}

/* Start a response body in c->resp, after LWS_PRE bytes of headroom. */
static int resp_begin(struct http_conn *c, int status, const char *ctype)
{
    buf_free(&c->resp);
    buf_init(&c->resp, 0);
    int rc = buf_reserve(&c->resp, LWS_PRE + 256);
    if (rc != 0) {
        return rc;
    }
    memset(c->resp.data, 0, LWS_PRE);
    c->resp.len = LWS_PRE;
    c->status = status;
    c->ctype = ctype;
    return 0;
}

static void resp_send(struct http_conn *c);

int http__respond(struct http_conn *c, int status, const char *ctype,
                  const void *body, size_t len)
{
    int rc = resp_begin(c, status, ctype);
    if (rc == 0) {
        rc = buf_append(&c->resp, body, len);
    }
    if (rc != 0) {
        return rc;
    }
    resp_send(c);
    return 0;
}

static int respond_text(struct http_conn *c, int status, const char *text)
{
    return http__respond(c, status, "text/plain; charset=utf-8", text,
                         strlen(text));
}

/* The gateway's error body for code and text, with HTTP status status
 * (0: the one the status table maps code to). */
static int respond_error_as(struct http_conn *c, enum grpc_code code,
                            const char *text, int status)
{
    char num[32];
    int rc;
    if (status == 0) {
        status = grpc_code_http_status(code);
    }
    rc = resp_begin(c, status, "application/json");
    rc = rc != 0 ? rc : buf_append(&c->resp, "{\"error\":", 9);
    rc = rc != 0 ? rc : http__json_quote(&c->resp, text, strlen(text));
    rc = rc != 0 ? rc : buf_append(&c->resp, ",\"message\":", 11);
    rc = rc != 0 ? rc : http__json_quote(&c->resp, text, strlen(text));
    snprintf(num, sizeof(num), ",\"code\":%d}", (int)code);
    rc = rc != 0 ? rc : buf_append(&c->resp, num, strlen(num));
    if (rc != 0) {
        return rc;
    }
    resp_send(c);
    return 0;
}

int http__respond_error(struct http_conn *c, int err, enum grpc_code code,
                        const char *text)
{
    if (text == NULL) {
        code = grpc_code_from_err(err);
        text = err_str(err);
    }
    return respond_error_as(c, code, text, 0);
}

/* The body is over the limit: 413 with the gateway's error body, then
 * close (the rest of the body is never read). */
static int respond_too_large(struct http_conn *c)
{
    char text[128];
    c->h->st.bodies_too_large++;
    c->close_after = true;
    buf_free(&c->body);
    uint64_t limit = c->body_limit > c->h->s->limits.v[LIMIT_REQUEST_BYTES]
                         ? c->body_limit
                         : c->h->s->limits.v[LIMIT_REQUEST_BYTES];
    snprintf(text, sizeof(text), "%s: body is larger than %llu bytes%s",
             err_str(ERR_REQUEST_TOO_LARGE), (unsigned long long)limit,
             c->body_limit > 0 ? "" : " (max-request-bytes)");
    /* HTTP's own status for it, not the table's 429 */
    return respond_error_as(c, GRPC_RESOURCE_EXHAUSTED, text, 413);
}

static int add_header(struct lws *wsi, const char *name, const char *value,
                      unsigned char **p, unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value,
                                       (int)strlen(value), p, end);
}

/* The response's header block into [*p, end), CRLF-terminated. */
static int headers_build(struct http_conn *c, unsigned char **p,
                         unsigned char *end)
{
    size_t blen = c->resp.len - LWS_PRE;
    /* a 304 has no body, and its length would claim one (RFC 9110 8.6) */
    /* the same three CORS headers on every answer, as one block: the
     * bytes lws_add_http_header_by_name writes for HTTP/1.1 ("name:
     * value" CRLF), without its byte-at-a-time copy of each name */
    static const char cors[] =
        "access-control-allow-origin: *\r\n"
        "access-control-allow-methods: POST, GET, OPTIONS, PUT, PATCH, "
        "DELETE\r\n"
        "access-control-allow-headers: accept, content-type, "
        "authorization\r\n";
    if ((c->status == 304
             ? lws_add_http_header_status(c->wsi, 304, p, end)
             : lws_add_http_common_headers(c->wsi, (unsigned)c->status,
                                           c->ctype, blen, p, end)) != 0 ||
        end - *p < (ptrdiff_t)sizeof(cors) + 2) {
        return -1;
    }
    memcpy(*p, cors, sizeof(cors) - 1);
    *p += sizeof(cors) - 1;
    if (c->close_after &&
        add_header(c->wsi, "connection:", "close", p, end) != 0) {
        return -1;
    }
    if (c->etag[0] != '\0' &&
        add_header(c->wsi, "etag:", c->etag, p, end) != 0) {
        return -1;
    }
    /* static files (the console): nosniff keeps a browser from reading
     * them as anything but their Content-Type */
    if (c->cache_control != NULL &&
        (add_header(c->wsi, "cache-control:", c->cache_control, p, end) != 0 ||
         add_header(c->wsi, "x-content-type-options:", "nosniff", p, end) !=
             0)) {
        return -1;
    }
    if (c->location != NULL &&
        add_header(c->wsi, "location:", c->location, p, end) != 0) {
        return -1;
    }
    if (c->status == 405 &&
        add_header(c->wsi, "allow:",
                   c->m != NULL || c->skind != HTTP_STREAM_NONE ? "POST"
                                                                : "GET",
                   p, end) != 0) {
        return -1;
    }
    return lws_finalize_http_header(c->wsi, p, end);
}

static int finish(struct http_conn *c)
{
    struct http_stats *st = &c->h->st;
    if (c->status < 300) {
        st->responses_2xx++;
    } else if (c->status < 400) {
        st->responses_3xx++;
    } else if (c->status < 500) {
        st->responses_4xx++;
    } else {
        st->responses_5xx++;
    }
    buf_free(&c->resp);
    c->wait = HTTP_WAIT_NONE;
    if (c->close_after) {
        return -1;
    }
    return lws_http_transaction_completed(c->wsi) ? -1 : 0;
}

/* ------------------------------------------------------- writing out
 *
 * Why we write responses ourselves. lws 4.1 closes a connection on the
 * first read that returns EOF while it expects more of a request (its
 * LRS_BODY state, which it keeps after a body is complete), and it serves
 * neither reads nor writes of a connection whose reads are paused. So a
 * client that half-closes right after its request (shutdown(SHUT_WR), nc
 * -N, health probes) would lose the answer to any POST whose call goes
 * to Raft. Instead: reads are paused from the moment an answer is due
 * until every byte of it is with the kernel (rx_pause()); the header
 * block (built by lws) and the body go out with one sendmsg() on the
 * socket, and what the kernel does not take at once is written by a
 * drain, a libuv stream on a dup of the socket, while lws stays paused.
 * Then the transaction ends and reads resume; an EOF lws reads now ends
 * a connection whose answer is out. A client that is gone altogether is
 * noticed when the write fails; a call's own timeout bounds the wait for
 * its answer, HTTP_DRAIN_S a drain. */

static void rx_pause(struct http_conn *c)
{
    if (!c->rx_paused) {
        c->rx_paused = true;
        lws_rx_flow_control(c->wsi, 0);
    }
}

void http__rx_pause(struct http_conn *c)
{
    rx_pause(c);
}

static void rx_resume(struct http_conn *c)
{
    if (c->rx_paused) {
        c->rx_paused = false;
        lws_rx_flow_control(c->wsi, 1);
    }
}

/* Close the connection (the answer is out, or cannot be). lws closes it
 * from the writable callback; the kill timeout is a second way, slow when
 * set from outside lws's callbacks (its timer is re-armed only when lws
 * runs). */
void http__conn_kill(struct http_conn *c)
{
    c->close_after = true;
    c->kill = true;
    rx_resume(c);
    lws_callback_on_writable(c->wsi);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* The last byte is with the kernel: the transaction ends now (resp_end())
 * when lws is not in a callback of its read path, else on its next pass
 * (LWS_CALLBACK_TIMER), with reads paused until then. Not from a writable
 * callback: the client may send its next request as soon as it has the
 * answer, and lws, which serves reads before writes, must meet it in its
 * header state. Not inside lws's read path (an answer given
 * synchronously): lws 4.1 spins there when the transaction ends under
 * it with more bytes buffered. Unless lws has yet to deliver the
 * request's body (answered before it was read: a wrong path or method):
 * then reads resume and on_body_done() comes back here. */
static int resp_end(struct http_conn *c);

static void resp_written(struct http_conn *c)
{
    ASSERT(c->wait == HTTP_WAIT_WRITE);
    ASSERT(c->drain == NULL);
    c->written = true;
    if (!c->close_after && c->body_expected && !c->body_done) {
        rx_resume(c);
        return;
    }
    if (c->h->in_rx_cb == 0) {
        if (resp_end(c) != 0) {
            http__conn_kill(c);
        }
        return;
    }
    rx_pause(c);
    lws_set_timer_usecs(c->wsi, 1);
}

/* LWS_CALLBACK_TIMER after resp_written(). */
static int resp_end(struct http_conn *c)
{
    ASSERT(c->written);
    /* resumed first: lws_http_transaction_completed() parks the
     * connection until a writable event, which lws does not serve while
     * reads are paused; nothing is read before it returns */
    rx_resume(c);
    return finish(c);
}

static void drain_closed(uv_handle_t *hd)
{
    struct http_drain *d = hd->data;
    struct http *h = d->h;
    buf_free(&d->body);
    mem_free(d);
    pending_done(h);
}

/* The drain goes (its dup of the socket closes; lws's fd keeps the
 * connection). A write still queued completes with UV_ECANCELED. */
static void drain_close(struct http_drain *d)
{
    if (d->c != NULL) {
        ASSERT(d->c->drain == d);
        d->c->drain = NULL;
        d->c = NULL;
    }
    if (!uv_is_closing((uv_handle_t *)&d->tcp)) {
        uv_close((uv_handle_t *)&d->tcp, drain_closed);
    }
}

static void drain_done(uv_write_t *wr, int status)
{
    struct http_drain *d = wr->data;
    struct http_conn *c = d->c;
    drain_close(d);
    if (c == NULL) {
        return; /* the connection went first */
    }
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    if (status != 0) {
        http__conn_kill(c);
        return;
    }
    resp_written(c);
}

/* Write the rest, hdr[done..hlen) then the body's tail, from a dup of the
 * socket; c->resp moves to the drain. */
static int drain_start(struct http_conn *c, const uint8_t *hdr, size_t hlen,
                       size_t done)
{
    struct http_drain *d;
    uv_buf_t bufs[2];
    unsigned nbufs = 0;
    size_t boff = done > hlen ? done - hlen : 0;
    int fd = dup(lws_get_socket_fd(c->wsi));
    ASSERT(hlen <= sizeof(d->hdr));
    if (fd < 0) {
        return -errno;
    }
    d = mem_calloc(1, sizeof(*d));
    if (d == NULL) {
        close(fd);
        return -ENOMEM;
    }
    uv_tcp_init(c->h->s->loop, &d->tcp);
    d->tcp.data = d;
    d->wr.data = d;
    d->h = c->h;
    c->h->pending++;
    if (uv_tcp_open(&d->tcp, fd) != 0) {
        close(fd);
        drain_close(d);
        return ERR_INVALID;
    }
    memcpy(d->hdr, hdr, hlen);
    d->body = c->resp;
    if (c->head) {
        d->body.len = LWS_PRE; /* HEAD: the head only (resp_write) */
    }
    buf_init(&c->resp, 0);
    if (done < hlen) {
        bufs[nbufs++] =
            uv_buf_init((char *)d->hdr + done, (unsigned)(hlen - done));
    }
    if (d->body.len - LWS_PRE > boff) {
        bufs[nbufs++] = uv_buf_init((char *)d->body.data + LWS_PRE + boff,
                                    (unsigned)(d->body.len - LWS_PRE - boff));
    }
    ASSERT(nbufs > 0);
    d->c = c;
    c->drain = d;
    if (uv_write(&d->wr, (uv_stream_t *)&d->tcp, bufs, nbufs, drain_done) !=
        0) {
        drain_close(d);
        return ERR_INVALID;
    }
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, HTTP_DRAIN_S);
    return 0;
}

/* Headers and body in one sendmsg(); a drain for what is left. */
static int resp_write(struct http_conn *c)
{
    unsigned char hb[LWS_PRE + HTTP_HDR_BLOCK_BYTES];
    unsigned char *start = hb + LWS_PRE;
    unsigned char *p = start;
    size_t blen = c->resp.len - LWS_PRE;
    struct iovec iov[2];
    struct msghdr mh;
    ssize_t n;
    if (headers_build(c, &p, hb + sizeof(hb)) != 0) {
        return ERR_LIMIT;
    }
    iov[0].iov_base = start;
    iov[0].iov_len = (size_t)(p - start);
    /* HEAD: the head says the length of the body it does not carry (as
     * Go's net/http does for etcd); a body here would be read as the
     * start of the next response on a kept-alive connection */
    blen = c->head ? 0 : blen;
    iov[1].iov_base = c->resp.data + LWS_PRE;
    iov[1].iov_len = blen;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = blen > 0 ? 2 : 1;
    n = sendmsg(lws_get_socket_fd(c->wsi), &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        return -errno;
    }
    n = n < 0 ? 0 : n;
    if ((size_t)n == iov[0].iov_len + blen) {
        resp_written(c);
        return 0;
    }
    return drain_start(c, start, iov[0].iov_len, (size_t)n);
}

/* The response in c->resp is complete: send it (the connection is
 * killed if that fails). */
static void resp_send(struct http_conn *c)
{
    ASSERT(c->resp.len >= LWS_PRE);
    ASSERT(c->drain == NULL);
    rx_pause(c);
    c->wait = HTTP_WAIT_WRITE;
    c->written = false;
    if (resp_write(c) != 0) {
        http__conn_kill(c);
    }
}

/* ------------------------------------------------------------- calls */

static void gw_answer(struct http_conn *c, int err, const uint8_t *resp,
                      size_t len)
{
    int rc;
    if (err != 0) {
        rc = http__respond_error(c, err, GRPC_OK, NULL);
    } else {
        rc = resp_begin(c, 200, "application/json");
        if (rc == 0) {
            rc = http_pbjson_encode(c->m->resp_desc, resp, len, &c->resp);
        }
        if (rc == 0) {
            resp_send(c);
        } else {
            LOGW("http", "%s: response not converted: %s", c->m->gw,
                 err_str(rc));
            rc = http__respond_error(c, rc, GRPC_INTERNAL,
                                     "cairn: response could not be "
                                     "converted to JSON");
        }
    }
    if (rc != 0) {
        http__conn_kill(c);
    }
}

static void call_done(void *ctx, int err, const uint8_t *resp, size_t len)
{
    struct http_conn *c = ctx;
    ASSERT(c->wait == HTTP_WAIT_CALL);
    c->op = NULL;
    if (c->purpose == HTTP_FOR_GATEWAY) {
        gw_answer(c, err, resp, len);
    } else {
        http__health_done(c, err, resp, len);
    }
}

int http__call(struct http_conn *c, const uint8_t *req, size_t len,
               uint32_t timeout_ms)
{
    struct api_op *op;
    ASSERT(c->m != NULL);
    ASSERT(c->op == NULL);
    rx_pause(c);
    c->wait = HTTP_WAIT_CALL;
    /* the node's timeout bounds the wait, not lws's */
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    /* the probes read as the server itself: with auth on, a read refused
     * for want of a token would say nothing about the member */
    const char *token = c->purpose != HTTP_FOR_GATEWAY ? api_token_internal
                        : c->token[0] != '\0'          ? c->token
                                                       : NULL;
    op =
        api_call_auth(c->h->s, c->m, req, len, timeout_ms, token, call_done, c);
    if (op != NULL) {
        ASSERT(c->wait == HTTP_WAIT_CALL);
        c->op = op;
    }
    return 0;
}

/* The whole body is in: JSON -> protobuf -> api_call, or a stream. */
static int gw_dispatch(struct http_conn *c)
{
    struct buf pb;
    char msg[256];
    int rc;
    if (c->skind != HTTP_STREAM_NONE) {
        return http__stream_start(c);
    }
    if (c->api != NULL) {
        return http__api_dispatch(c);
    }
    /* protobuf can be longer than its JSON (a negative int32 takes 10
     * bytes); gRPC accepts this much too */
    buf_init(&pb, (size_t)c->h->s->limits.v[LIMIT_REQUEST_BYTES] + 512 * 1024);
    rc = http_pbjson_decode(c->m->req_desc, (const char *)c->body.data,
                            c->body.len, &pb, msg, sizeof(msg));
    buf_free(&c->body);
    if (rc == ERR_BAD_REQUEST) {
        c->h->st.bad_json++;
        rc = http__respond_error(c, rc, GRPC_INVALID_ARGUMENT, msg);
    } else if (rc == ERR_LIMIT) {
        rc = http__respond_error(c, ERR_REQUEST_TOO_LARGE, GRPC_OK, NULL);
    } else if (rc != 0) {
        rc = http__respond_error(c, rc, GRPC_OK, NULL);
    } else {
        c->h->st.gateway_calls++;
        rc = http__call(c, pb.data, pb.len, 0);
    }
    buf_free(&pb);
    return rc;
}

static int header_u64(struct lws *wsi, enum lws_token_indexes tok,
                      uint64_t *out)
{
    char tmp[32];
    char *end = NULL;
    int n = lws_hdr_copy(wsi, tmp, sizeof(tmp), tok);
    if (n <= 0) {
        return n == 0 ? 1 : -1; /* absent : too long */
    }
    errno = 0;
    unsigned long long v = strtoull(tmp, &end, 10);
    if (errno != 0 || end == tmp || *end != '\0' || tmp[0] == '-') {
        return -1;
    }
    *out = v;
    return 0;
}

/* Transfer-Encoding: absent (0), the chunked coding alone (1), anything
 * else (-1). Go's server, and so etcd's gateway, takes only "chunked"
 * (any case) and answers any other coding with 501. */
static int transfer_coding(struct lws *wsi)
{
    char te[64];
    char *p = te;
    int n;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) <= 0) {
        return 0;
    }
    n = lws_hdr_copy(wsi, te, sizeof(te), WSI_TOKEN_HTTP_TRANSFER_ENCODING);
    if (n <= 0) {
        return -1;
    }
    while (n > 0 && (te[n - 1] == ' ' || te[n - 1] == '\t')) {
        te[--n] = '\0';
    }
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return strcasecmp(p, "chunked") == 0 ? 1 : -1;
}

/* The body comes chunked (RFC 9112 7.1). lws 4.1 does not decode it: it
 * hands over the raw bytes as body (on_body feeds the decoder) and, with
 * no Content-Length, frames everything that follows on the connection as
 * more of the same body, so the connection closes after the answer. */
static int chunked_start(struct http_conn *c, uint64_t limit)
{
    if (lws_hdr_total_length(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        /* RFC 9112 6.3: a smuggling attempt; lws would frame it by the
         * Content-Length */
        c->close_after = true;
        return http__respond_error(c, 0, GRPC_INVALID_ARGUMENT,
                                   "cairn: both Transfer-Encoding and "
                                   "Content-Length");
    }
    c->chunked = true;
    c->close_after = true;
    http__chunked_init(&c->ck);
    buf_init(&c->body, (size_t)limit);
    c->wait = HTTP_WAIT_BODY;
    return 0;
}

/* A gateway call (m), stream (c->skind) or /api/v1/ request (c->api):
 * collect the body. */
int http__body_start(struct http_conn *c, const struct api_method *m)
{
    uint64_t limit = c->body_limit > c->h->s->limits.v[LIMIT_REQUEST_BYTES]
                         ? c->body_limit
                         : c->h->s->limits.v[LIMIT_REQUEST_BYTES];
    uint64_t clen = 0;
    int hc;
    c->m = m;
    c->purpose = HTTP_FOR_GATEWAY;
    if (lws_hdr_copy(c->wsi, c->token, sizeof(c->token),
                     WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
        c->token[0] = '\0';
    }
    hc = transfer_coding(c->wsi);
    if (hc > 0) {
        return chunked_start(c, limit);
    }
    if (hc < 0) {
        c->close_after = true;
        return http__respond_error(c, 0, GRPC_UNIMPLEMENTED,
                                   "cairn: unsupported transfer encoding");
    }
    hc = header_u64(c->wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, &clen);
    if (hc < 0) {
        c->close_after = true;
        return http__respond_error(c, 0, GRPC_INVALID_ARGUMENT,
                                   "cairn: bad Content-Length");
    }
    if (clen > limit) {
        return respond_too_large(c);
    }
    buf_init(&c->body, (size_t)limit);
    if (clen == 0) {
        return gw_dispatch(c); /* no body: the empty request */
    }
    c->wait = HTTP_WAIT_BODY;
    return 0;
}

/* Bytes of a chunked body: decode; dispatch once the last chunk and the
 * trailers are in. Bytes after that (a pipelined request) are dropped:
 * the connection closes after the answer. */
static int on_chunked_body(struct http_conn *c, const void *in, size_t len)
{
    size_t used = 0;
    int rc = http__chunked_feed(&c->ck, in, len, &c->body, &used);
    if (rc == 0) {
        return 0;
    }
    if (rc == 1) {
        c->h->st.chunked_bodies++;
        /* lws, still expecting body, arms its content timeout when this
         * callback returns; LWS_CALLBACK_TIMER clears it again for the
         * call (whose own timeout bounds it) */
        lws_set_timer_usecs(c->wsi, 1);
        return gw_dispatch(c) == 0 ? 0 : -1;
    }
    if (rc == ERR_LIMIT) {
        return respond_too_large(c) == 0 ? 0 : -1;
    }
    if (rc == ERR_BAD_REQUEST) {
        c->h->st.bad_chunked++;
        buf_free(&c->body);
        return http__respond_error(c, 0, GRPC_INVALID_ARGUMENT, c->ck.why) == 0
                   ? 0
                   : -1;
    }
    return -1; /* -ENOMEM */
}

static int on_body(struct http_conn *c, const void *in, size_t len)
{
    int rc;
    if (c->wait != HTTP_WAIT_BODY) {
        return 0; /* a refused body still arriving */
    }
    if (c->chunked) {
        return on_chunked_body(c, in, len);
    }
    rc = buf_append(&c->body, in, len);
    if (rc == ERR_LIMIT) {
        return respond_too_large(c) == 0 ? 0 : -1;
    }
    return rc == 0 ? 0 : -1;
}

static int on_body_done(struct http_conn *c)
{
    if (!c->body_done && c->wait == HTTP_WAIT_WRITE && c->written) {
        c->body_done = true; /* answered before the body: see resp_written */
        resp_written(c);
        return 0;
    }
    if (c->body_done) {
        /* lws 4.1 offers bytes that follow a body (a pipelined request)
         * to the finished body again, as another completion, and does so
         * on every loop pass until the transaction ends: with an answer
         * still to come from Raft that would spin. Close instead; the
         * client sees the connection end and retries on a new one. */
        c->h->st.pipelined_closed++;
        return -1;
    }
    c->body_done = true;
    if (c->wait != HTTP_WAIT_BODY) {
        return 0; /* answered without the body (405, 413, no length) */
    }
    return gw_dispatch(c) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ routing */

static bool is_get(int meth)
{
    return meth == LWSHUMETH_GET;
}

/* A connection of a --listen-metrics-urls listener: its lws opaque
 * pointer is &h->metrics_tag instead of h (set right after adoption; lws
 * moves an adopted connection to the vhost its Host header names, so a
 * vhost of its own could not tell). */
static bool metrics_conn(const struct http *h, struct lws *wsi)
{
    return lws_get_opaque_user_data(wsi) == (const void *)&h->metrics_tag;
}

/* What a --listen-metrics-urls listener serves: etcd's metrics listener
 * has /metrics and /health; the probes and /version come with them, so a
 * kubelet can probe a member whose client port wants client
 * certificates. */
static bool metrics_path(const char *path)
{
    return strcmp(path, "/metrics") == 0 || strcmp(path, "/health") == 0 ||
           strcmp(path, "/readyz") == 0 || strcmp(path, "/livez") == 0 ||
           strcmp(path, "/version") == 0;
}

static int route(struct http_conn *c, const char *path, int meth)
{
    const struct api_method *m;
    enum http_stream_kind sk = http__stream_kind(path);
    if (meth == LWSHUMETH_OPTIONS) {
        /* a CORS preflight: etcd 3.4 answers 200 with its CORS headers
         * and no body on every path, so a browser page of another origin
         * may call the gateway and the /api/v1 APIs */
        return http__respond(c, 200, "text/plain; charset=utf-8", "", 0);
    }
    c->head = meth == LWSHUMETH_HEAD;
    if (metrics_conn(c->h, c->wsi) && !metrics_path(path)) {
        return respond_text(c, 404, "Not Found\n");
    }
    if (sk != HTTP_STREAM_NONE) {
        c->skind = sk;
        if (meth != LWSHUMETH_POST) {
            return respond_text(c, 405, "Method Not Allowed\n");
        }
        return http__body_start(c, NULL);
    }
    if (strncmp(path, "/v3", 3) == 0 &&
        (path[3] == '/' || path[3] == 'a' || path[3] == 'b')) {
        m = api_find_gw(path);
        if (m == NULL) {
            return respond_text(c, 404, "Not Found\n");
        }
        if (meth != LWSHUMETH_POST) {
            c->m = m;
            return respond_text(c, 405, "Method Not Allowed\n");
        }
        return http__body_start(c, m);
    }
    static const struct {
        const char *path;
        int which; /* 0 version, 1 metrics, else a purpose */
    } gets[] = {
        {"/version", 0},
        {"/metrics", 1},
        {"/health", 2 + HTTP_FOR_HEALTH},
        {"/readyz", 2 + HTTP_FOR_READYZ},
        {"/livez", 2 + HTTP_FOR_LIVEZ},
    };
    for (size_t i = 0; i < sizeof(gets) / sizeof(gets[0]); i++) {
        if (strcmp(path, gets[i].path) != 0) {
            continue;
        }
        /* HEAD /metrics as GET (Prometheus's handler takes it in etcd);
         * etcd's /version and /health refuse it with 405 */
        if (!is_get(meth) && !(c->head && gets[i].which == 1)) {
            return respond_text(c, 405, "Method Not Allowed\n");
        }
        if (gets[i].which == 0) {
            return http__get_version(c);
        }
        if (gets[i].which == 1) {
            return http__get_metrics(c);
        }
        return http__get_health(c, (enum http_purpose)(gets[i].which - 2));
    }
    if (strncmp(path, "/api/v1/", 8) == 0) {
        return http__api_route(c, path, meth);
    }
    if (http__console_path(path)) {
        return http__console_route(c, path, meth);
    }
    return respond_text(c, 404, "404 page not found\n");
}

/* --host-whitelist, etcd's guard against DNS rebinding (CVE-2018-5702):
 * a request on a plain (not TLS) client connection must name in its Host
 * header a host the list holds (the port aside, as Go's SplitHostPort
 * takes it off); "*" (the default) or an empty list let any through. */
static bool host_allowed(const struct http *h, struct lws *wsi)
{
    const char *list = h->s->opt->host_whitelist;
    char host[256];
    char peer[64];
    const char *name = host;
    size_t len;
    if (list == NULL || list[0] == '\0' || str_list_has(list, "*", 1) ||
        metrics_conn(h, wsi)) {
        return true;
    }
    server__tls_client(h->s, lws_get_socket_fd(wsi), peer, sizeof(peer), NULL,
                       0);
    if (peer[0] != '\0') {
        return true; /* TLS: any name */
    }
    if (lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) < 0) {
        host[0] = '\0';
    }
    len = strlen(host);
    const char *colon = strrchr(host, ':');
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (end != NULL && end[1] == ':' && end + 1 == colon) {
            name = host + 1; /* [v6]:port */
            len = (size_t)(end - name);
        }
    } else if (colon != NULL && strchr(host, ':') == colon) {
        len = (size_t)(colon - host); /* host:port */
    }
    return str_list_has(list, name, len);
}

static int respond_host_refused(struct http_conn *c, struct lws *wsi)
{
    char host[256];
    char text[512];
    if (lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) < 0) {
        host[0] = '\0';
    }
    c->close_after = true;
    snprintf(text, sizeof(text),
             "421 Misdirected Request: the Host header (\"%s\") is not in "
             "--host-whitelist; use TLS, or add the name to the list\n",
             host);
    return respond_text(c, 421, text);
}

static int on_request(struct http *h, struct http_conn *c, struct lws *wsi,
                      const char *path)
{
    char *uri = NULL;
    int uri_len = 0;
    uint64_t clen = 0;
    int meth;
    int rc;
    if (c->wait != HTTP_WAIT_NONE) {
        return -1; /* lws started a request while one is unanswered */
    }
    conn_clear(c);
    memset(c, 0, sizeof(*c));
    c->h = h;
    c->wsi = wsi;
    h->st.requests_total++;
    c->body_expected =
        header_u64(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, &clen) == 0 && clen > 0;
    meth = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
    /* lws decodes %00 into the path it hands over, which then ends there:
     * PUT .../shop/cart/%00 read as PUT .../shop/cart (the service's
     * settings, overwritten with defaults). No name holds a NUL. */
    bool nul = uri != NULL && uri_len > 0 &&
               memchr(uri, '\0', (size_t)uri_len) != NULL;
    if (h->stopped || h->s->stopping) {
        c->close_after = true;
        rc = http__respond_error(c, ERR_STOPPED, GRPC_OK, NULL);
    } else if (!host_allowed(h, wsi)) {
        h->st.host_refused++;
        LOGW_LIMITED("http", "refused a request for host-whitelist (DNS "
                             "rebinding)");
        rc = respond_host_refused(c, wsi);
    } else if (nul && path != NULL && strncmp(path, "/api/v1/", 8) == 0) {
        rc = http__api_error(c, 400, "bad_request",
                             "the path holds a NUL byte (%00)");
    } else if (nul) {
        rc = respond_text(c, 400,
                          "400 Bad Request: the path holds a NUL "
                          "byte (%00)\n");
    } else {
        rc = route(c, path != NULL ? path : "", meth);
    }
    if (rc != 0) {
        LOGW_LIMITED("http", "%s: %s", path != NULL ? path : "?", err_str(rc));
        conn_clear(c);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------- lws callback */

/* The callbacks of lws's read path: a request, its body. */
static int on_rx(struct http *h, struct http_conn *c, struct lws *wsi,
                 enum lws_callback_reasons reason, void *in, size_t len)
{
    if (reason == LWS_CALLBACK_HTTP) {
        return on_request(h, c, wsi, in);
    }
    if (c == NULL) {
        return -1;
    }
    return reason == LWS_CALLBACK_HTTP_BODY ? on_body(c, in, len)
                                            : on_body_done(c);
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason,
                   void *user, void *in, size_t len)
{
    struct http_conn *c = user;
    struct http *h = lws_context_user(lws_get_context(wsi));
    int rc;
    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        /* counted here, uncounted in WSI_DESTROY: both fire once per
         * adopted connection, whichever way it ends */
        lws_set_opaque_user_data(wsi, h);
        h->conns_open++;
        h->st.conns_total++;
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (lws_get_opaque_user_data(wsi) == h || metrics_conn(h, wsi)) {
            lws_set_opaque_user_data(wsi, NULL);
            ASSERT(h->conns_open > 0);
            h->conns_open--;
        }
        return 0;
    case LWS_CALLBACK_HTTP:
    case LWS_CALLBACK_HTTP_BODY:
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        h->in_rx_cb++; /* see resp_written() */
        rc = on_rx(h, c, wsi, reason, in, len);
        ASSERT(h->in_rx_cb > 0);
        h->in_rx_cb--;
        return rc;
    case LWS_CALLBACK_TIMER:
        if (c != NULL && c->wait == HTTP_WAIT_CALL) {
            lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        }
        if (c != NULL && c->wait == HTTP_WAIT_WRITE && c->written) {
            return resp_end(c);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        /* plain responses are written by resp_send(), not from here */
        if (c != NULL && c->wait == HTTP_WAIT_STREAM) {
            return http__stream_writable(c);
        }
        return c != NULL && c->kill ? -1 : 0;
    case LWS_CALLBACK_ESTABLISHED:
        return c != NULL ? http__ws_established(h, c, wsi) : -1;
    case LWS_CALLBACK_RECEIVE:
        return c != NULL ? http__ws_receive(c, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return c != NULL ? http__stream_writable(c) : 0;
    case LWS_CALLBACK_CLOSED:
        if (c != NULL) {
            conn_clear(c);
        }
        return 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        if (c != NULL) {
            conn_clear(c);
        }
        return 0;
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        /* the connection's per-session memory is about to go */
        if (c != NULL && c->wait == HTTP_WAIT_NONE) {
            conn_clear(c);
        }
        return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* WebSocket only at the watch paths (and never on a metrics
         * listener); anything else hangs up */
        if (in == NULL || strcmp(in, "websocket") != 0 || h->stopped ||
            h->s->stopping || metrics_conn(h, wsi) || !host_allowed(h, wsi)) {
            return -1;
        }
        return http__ws_confirm(wsi);
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

/* ------------------------------------------------------------ lifecycle */

/* One of the handles h waits for before it is freed has closed. */
static void pending_done(struct http *h)
{
    ASSERT(h->pending > 0);
    if (--h->pending > 0) {
        return;
    }
    if (h->ctx != NULL) {
        /* lws never finished; it may still call into h: leave it */
        LOGW("http", "libwebsockets did not finish stopping; state kept");
        return;
    }
    h->s->http = NULL;
    http__share_free(h);
    mem_free(h->tx);
    mem_free(h->cork);
    mem_free(h);
}

static void handle_closed(uv_handle_t *hd)
{
    pending_done(hd->data);
}

static void count_closing(uv_handle_t *hd, void *arg)
{
    if (uv_is_closing(hd)) {
        ++*(size_t *)arg;
    }
}

/* Every tick after stop. With a foreign loop, lws 4.1 only starts closing
 * its handles in the first lws_context_destroy(); the rest (vhosts, the
 * context, unloading its libuv plugin) happens in a later call, which must
 * come only once those handles are closed: a close callback that runs
 * after the plugin is unloaded jumps into unmapped code. The handles close
 * in chains (a wsi's close callback closes the next thing), so wait until
 * every connection is gone and no handle of the loop is closing, then call
 * it again; lws clears h->ctx (info.pcontext) when it is done. Bounded:
 * after REAP_GIVE_UP ticks the context is left as it is (a leak at exit,
 * never a jump into unloaded code). */
static void on_reap(uv_timer_t *t)
{
    struct http *h = t->data;
    size_t closing = 0;
    h->reap_ticks++;
    if (h->ctx != NULL && h->conns_open == 0) {
        uv_walk(h->s->loop, count_closing, &closing);
        if (closing == 0) {
            lws_context_destroy(h->ctx);
        }
    }
    if (h->ctx != NULL && h->reap_ticks < REAP_GIVE_UP) {
        return;
    }
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, handle_closed);
}

/* The server began to stop: follow it (runs once per loop pass; unref'd,
 * so it never keeps the loop alive by itself). */
static void on_watch(uv_check_t *w)
{
    struct http *h = w->data;
    if (h->s->stopping && !h->stopped) {
        http_stop(h->s);
    }
}

/*
 * No lws validity timers. lws 4.1's default policy keeps, for every
 * WebSocket, a timer to send a PING after 5 minutes without a PONG (and
 * hang up 10 s later), in its one sorted timer list: with 10,000
 * subscribers each insertion into that list (every connection set up,
 * every keep-alive request's timeout) walked 10,000 entries, and the pings
 * of a burst of connections all fell due together every 5 minutes. Dead
 * peers are found by TCP keep-alive instead (server.c sets it on every
 * client socket, in the kernel's timer wheel), and stalled streams by
 * http__streams_sweep().
 */
static const lws_retry_bo_t idle_policy = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

/* After the idle handles (the watch hub's pass, api_watch.c) and before
 * the loop polls: the last socket's gathered messages go out. */
static void on_flush(uv_prepare_t *p)
{
    http__cork_flush(p->data);
}

static void on_sweep(uv_timer_t *t)
{
    struct http *h = t->data;
    if (!h->stopped) {
        http__streams_sweep(h, uv_now(t->loop));
    }
}

/* Whole seconds for lws's timeouts, rounded up, at least 1. */
static unsigned secs_of(uint64_t ms)
{
    uint64_t s = (ms + 999) / 1000;
    return s == 0 ? 1 : s > 86400 ? 86400 : (unsigned)s;
}

static int ctx_create(struct http *h, char *msg, size_t msg_len)
{
    struct lws_context_creation_info info;
    const struct options *o = h->s->opt;
    uint64_t hdr = h->s->limits.v[LIMIT_HEADER_BYTES];
    uint64_t conns = h->s->limits.v[LIMIT_CONNECTIONS];
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* adoption only */
    info.protocols = http_protocols;
    info.options =
        LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN |
        LWS_SERVER_OPTION_DISABLE_IPV6 | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.foreign_loops = h->loops;
    info.user = h;
    info.pcontext = &h->ctx;
    /* The sniff (server.c) holds a first request's head to the bound
     * exactly; lws stores a head with overhead per field (a header it
     * does not know costs its name, value and about 10 bytes more), so
     * its table has half as much again, for the heads of later requests
     * too. A head that does not fit closes the connection. */
    hdr += hdr / 2;
    info.max_http_header_data = (unsigned short)(hdr < 65535 ? hdr : 65535);
    /* A table for every connection the bound allows: one client slow to
     * send a keep-alive request's head must not make others wait for a
     * table. Tables are made on demand and freed when the head is parsed,
     * so idle connections hold none; the first request's head never
     * needs one for long (server.c reads it whole before handing over). */
    info.max_http_header_pool =
        (unsigned short)(conns < HTTP_HEADER_POOL_MAX ? conns
                                                      : HTTP_HEADER_POOL_MAX);
    /* a later request's head has --http-header-timeout from its first
     * byte (lws's PENDING_TIMEOUT_HOLDING_AH) */
    info.timeout_secs_ah_idle = secs_of(o->http_header_timeout_ms);
    info.keepalive_timeout = (int)secs_of(o->idle_timeout_ms);
    info.server_string = "cairnd";
    info.vhost_name = "default";
    info.retry_and_idle_policy = &idle_policy;
    lws_levels_set(LLL_ERR | LLL_WARN);
    h->ctx = lws_create_context(&info);
    if (h->ctx == NULL) {
        snprintf(msg, msg_len, "libwebsockets: cannot create a context");
        return ERR_INVALID;
    }
    h->vh = lws_get_vhost_by_name(h->ctx, "default");
    if (h->vh == NULL) {
        lws_context_destroy(h->ctx);
        h->ctx = NULL;
        snprintf(msg, msg_len, "libwebsockets: no default vhost");
        return ERR_INVALID;
    }
    return 0;
}

/* libwebsockets opens /dev/urandom when its context is made; without it
 * the context fails, and lws's cleanup of a failed context on our libuv
 * loop crashed the daemon at the next attempt (a bare chroot showed it).
 * So the device is checked before anything listens, and a failed start
 * is not tried again. */
int server__http_preflight(char *msg, size_t msg_len)
{
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, msg_len,
                 "cannot open /dev/urandom (%s): the HTTP side "
                 "(libwebsockets) needs it; every container runtime "
                 "provides it",
                 strerror(errno));
        return ERR_INVALID;
    }
    close(fd);
    return 0;
}

int http_start(struct server *s, char *msg, size_t msg_len)
{
    struct http *h = s->http;
    int rc;
    if (h != NULL) {
        return h->stopped ? ERR_STOPPED : 0;
    }
    if (s->stopping) {
        return ERR_STOPPED;
    }
    if (s->http_start_failed) {
        snprintf(msg, msg_len, "the HTTP side failed to start earlier");
        return ERR_INVALID;
    }
    h = mem_calloc(1, sizeof(*h));
    if (h == NULL) {
        return -ENOMEM;
    }
    h->s = s;
    h->loops[0] = s->loop;
    rc = server__http_preflight(msg, msg_len);
    rc = rc != 0 ? rc : ctx_create(h, msg, msg_len);
    if (rc != 0) {
        s->http_start_failed = true;
        mem_free(h);
        return rc;
    }
    uv_check_init(s->loop, &h->watch);
    uv_prepare_init(s->loop, &h->flush);
    uv_timer_init(s->loop, &h->reap);
    uv_timer_init(s->loop, &h->sweep);
    h->watch.data = h;
    h->reap.data = h;
    h->sweep.data = h;
    h->flush.data = h;
    uv_check_start(&h->watch, on_watch);
    uv_prepare_start(&h->flush, on_flush);
    uv_unref((uv_handle_t *)&h->flush);
    uv_unref((uv_handle_t *)&h->watch);
    uv_timer_start(&h->sweep, on_sweep, HTTP_SWEEP_MS, HTTP_SWEEP_MS);
    uv_unref((uv_handle_t *)&h->sweep);
    h->pending = 4;
    s->http = h;
    LOGD("http", "HTTP/1.1 side started");
    return 0;
}

void http_stop(struct server *s)
{
    struct http *h = s->http;
    if (h == NULL || h->stopped) {
        return;
    }
    h->stopped = true;
    http__streams_stop(h); /* before the watch hub closes */
    uv_check_stop(&h->watch);
    uv_close((uv_handle_t *)&h->watch, handle_closed);
    http__cork_flush(h);
    uv_prepare_stop(&h->flush);
    uv_close((uv_handle_t *)&h->flush, handle_closed);
    uv_timer_stop(&h->sweep);
    uv_close((uv_handle_t *)&h->sweep, handle_closed);
    /* closes every connection (CLOSED_HTTP cancels pending calls); with a
     * foreign loop the rest finishes on later passes */
    lws_context_destroy(h->ctx);
    uv_timer_start(&h->reap, on_reap, 0, REAP_INTERVAL_MS);
}

void http__client(const struct http *h, struct lws *wsi, char *peer,
                  size_t peer_len, char *cn, size_t cn_len)
{
    int fd = lws_get_socket_fd(wsi);
    server__tls_client(h->s, fd, peer, peer_len, cn, cn_len);
    if (peer[0] != '\0') {
        return;
    }
    /* An IPv4 peer's dotted quad written here: lws_get_peer_simple (and
     * glibc's inet_ntop) go through snprintf, 1,700 instructions, 2% of a
     * registration. Anything else keeps lws's spelling. */
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    if (fd >= 0 && peer_len >= 16 &&
        getpeername(fd, (struct sockaddr *)&sa, &sl) == 0 &&
        sa.ss_family == AF_INET) {
        const uint8_t *a =
            (const uint8_t *)&((struct sockaddr_in *)&sa)->sin_addr.s_addr;
        char *o = peer;
        for (int i = 0; i < 4; i++) {
            o += str_dec_i64(a[i], o);
            *o++ = i < 3 ? '.' : '\0';
        }
        return;
    }
    peer[0] = '\0';
    lws_get_peer_simple(wsi, peer, peer_len);
}

void http__peer(const struct http *h, struct lws *wsi, char *buf, size_t len)
{
    http__client(h, wsi, buf, len, NULL, 0);
}

/* The strong definition of server.c's weak hook: a client-port connection
 * that is not gRPC. */
static int adopt(struct server *s, int fd, const void *pre, size_t pre_len,
                 bool metrics);

int server__http_adopt(struct server *s, int fd, const void *pre,
                       size_t pre_len)
{
    return adopt(s, fd, pre, pre_len, false);
}

int server__http_adopt_metrics(struct server *s, int fd, const void *pre,
                               size_t pre_len)
{
    return adopt(s, fd, pre, pre_len, true);
}

static int adopt(struct server *s, int fd, const void *pre, size_t pre_len,
                 bool metrics)
{
    struct http *h;
    char msg[160] = "";
    uint64_t conns;
    int rc = http_start(s, msg, sizeof(msg));
    if (rc != 0) {
        if (rc != ERR_STOPPED) {
            LOGE("http", "cannot serve HTTP: %s (%s)", msg, err_str(rc));
        }
        return rc;
    }
    h = s->http;
    conns = h->conns_open + (s->grpc_on ? grpc_server_conns(&s->grpc) : 0) +
            s->conns_sniffing;
    if (conns >= s->limits.v[LIMIT_CONNECTIONS]) {
        h->st.conns_refused++;
        return ERR_BUSY;
    }
    /* lws closes fd itself when it fails, so from here fd is lws's; no
     * request is read before this returns (reads come from the loop) */
    struct lws *wsi = lws_adopt_socket_vhost_readbuf(h->vh, fd, pre, pre_len);
    if (wsi == NULL) {
        LOGD("http", "connection closed at adoption");
    } else if (metrics) {
        ASSERT(lws_get_opaque_user_data(wsi) == h);
        lws_set_opaque_user_data(wsi, &h->metrics_tag);
    }
    return 0;
}

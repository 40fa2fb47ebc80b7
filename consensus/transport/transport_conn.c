/*
 * transport_conn.c - one TCP connection between members: dial or accept,
 * the handshake, reading and validating frames, delivering them.
 *
 * Happy path, dialling side: connect, write the hello, wait for the reply
 * (one handshake timer covers connect and reply), then frames flow. The
 * dialler sends no frame before the accepting reply, so an acceptor that
 * refuses has no unread bytes when it closes and the reason reaches us
 * intact (closing a socket with unread data sends RST instead of FIN).
 *
 * Happy path, accepting side: read the 32-byte hello, check magic, version,
 * cluster id, that we are the member the dialler meant, then ask accept_cb;
 * answer, then read frames. Every frame header is validated as soon as its
 * 12 bytes are in, before its payload is buffered: the type must fit the
 * channel and the length its limit, so a peer can never make us allocate
 * more than a header plus one maximal frame. The payload CRC is checked
 * before delivery.
 *
 * Reading: libuv reads straight into the connection's buffer (on_alloc), at
 * least TR_RBUF_MIN and at most one maximal frame plus a header. Work per
 * read is bounded by the buffer: each frame consumes at least 12 bytes.
 *
 * Failures: bad magic in a hello (not our protocol) closes without a reply;
 * a hello we refuse gets a reply with the reason, then we close; malformed
 * frames close the connection and count frames_malformed; a silent or stuck
 * peer hits the handshake or write-stall timer. All of them end in
 * conn_fail(), which lets the owner of the connection (peer queue, snapshot
 * send, or nobody for accepted ones) react, and tr__conn_close(), after
 * which the memory goes when both handles have closed.
 *
 * TLS goes between the socket and the rest: every outgoing byte passes
 * through tr__io_write() and every incoming byte arrives in on_read(). On a
 * TLS connection the first encrypts and the second decrypts into rbuf
 * (transport_tls.c); the dialler's hello waits for the TLS handshake.
 */
#include "consensus/transport/transport_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "base/log.h"

static void on_handle_closed(uv_handle_t *h);
static void on_timer(uv_timer_t *h);

static bool is_closing(const struct transport__conn *c)
{
    return c->state == TR_CLOSING;
}

int tr__conn_new(struct transport *t, enum tr_conn_kind kind,
                 struct transport__conn **out)
{
    struct transport__conn *c = mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    c->rbuf = mem_alloc(TR_RBUF_MIN);
    if (kind == TR_CONN_OUT_MSG) {
        c->bufs = mem_alloc(sizeof(uv_buf_t) * TRANSPORT_BATCH_MSGS_MAX);
    }
    if (c->rbuf == NULL || (kind == TR_CONN_OUT_MSG && c->bufs == NULL)) {
        mem_free(c->rbuf);
        mem_free(c->bufs);
        mem_free(c);
        return -ENOMEM;
    }
    c->rcap = TR_RBUF_MIN;
    c->t = t;
    c->kind = kind;
    c->state = kind == TR_CONN_IN ? TR_HELLO : TR_DIALING;
    c->channel = kind == TR_CONN_OUT_SNAP ? TRANSPORT_CHANNEL_SNAP
                                          : TRANSPORT_CHANNEL_MSG;
    int rc = uv_tcp_init(t->loop, &c->tcp);
    ASSERT(rc == 0); /* AF_UNSPEC: no socket yet, cannot fail */
    rc = uv_timer_init(t->loop, &c->timer);
    ASSERT(rc == 0);
    c->tcp.data = c;
    c->timer.data = c;
    c->connect_req.data = c;
    c->wreq.data = c;
    c->cwreq.data = c;
    c->handles = 2;
    t->handles_open += 2;
    c->next = t->conns;
    if (t->conns != NULL) {
        t->conns->prev = c;
    }
    t->conns = c;
    if (kind == TR_CONN_IN) {
        t->conns_in_count++;
    }
    *out = c;
    return 0;
}

void tr__conn_close(struct transport__conn *c, int err)
{
    if (is_closing(c)) {
        return;
    }
    if (c->err == 0) {
        c->err = err;
    }
    c->state = TR_CLOSING;
    c->reading = false;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

/* The connection's owner reacts to its failure; then it is closed. */
static void conn_fail(struct transport__conn *c, int err)
{
    ASSERT(err < 0);
    if (is_closing(c)) {
        return;
    }
    switch (c->kind) {
    case TR_CONN_OUT_MSG:
        tr__peer_conn_failed(c, err);
        break;
    case TR_CONN_OUT_SNAP:
        tr__snap_out_failed(c, err);
        break;
    case TR_CONN_IN:
        tr__conn_close(c, err);
        break;
    }
    ASSERT(is_closing(c));
}

void tr__conn_fail(struct transport__conn *c, int err)
{
    conn_fail(c, err);
}

static void conn_finalize(struct transport__conn *c)
{
    struct transport *t = c->t;
    ASSERT(c->handles == 0);
    ASSERT(!c->writing && !c->cwriting && c->batch == NULL);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        t->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    if (c->kind == TR_CONN_IN) {
        ASSERT(t->conns_in_count > 0);
        t->conns_in_count--;
        tr__snap_in_gone(c); /* ABORT to the owner if a stream was open */
    } else if (c->kind == TR_CONN_OUT_SNAP) {
        tr__snap_out_conn_gone(c);
    }
    tr__tls_free(c);
    mem_free(c->rbuf);
    mem_free(c->bufs);
    mem_free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct transport__conn *c = h->data;
    struct transport *t = c->t;
    ASSERT(c->handles > 0);
    if (--c->handles == 0) {
        conn_finalize(c);
    }
    tr__handle_closed(t);
}

/* --- socket I/O: the one place bytes enter and leave ----------------- */

int tr__io_write(struct transport__conn *c, uv_write_t *req,
                 const uv_buf_t *bufs, unsigned n, uv_write_cb cb)
{
    ASSERT(!is_closing(c));
    ASSERT(n > 0);
    if (c->ssl != NULL) {
        return tr__tls_write(c, req, bufs, n, cb);
    }
    return uv_write(req, (uv_stream_t *)&c->tcp, bufs, n, cb);
}

/* Room at rbuf + rlen for the next bytes: at least TR_RBUF_MIN, and one
 * whole frame once its header is in. 0 when growing failed. */
size_t tr__rbuf_reserve(struct transport__conn *c)
{
    size_t need = TR_RBUF_MIN;
    ASSERT(c->roff == 0); /* consume compacts before reading resumes */
    if (c->state == TR_READY && c->rlen >= TRANSPORT_FRAME_HEADER_BYTES) {
        /* Validated by tr__conn_consume when its header arrived. */
        need = TRANSPORT_FRAME_HEADER_BYTES + (size_t)be32_get(c->rbuf);
    }
    if (c->rcap < need) {
        uint8_t *p = mem_realloc(c->rbuf, need);
        if (p == NULL) {
            return 0;
        }
        c->rbuf = p;
        c->rcap = need;
    }
    ASSERT(c->rlen < c->rcap);
    return c->rcap - c->rlen;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct transport__conn *c = h->data;
    (void)suggested;
    if (c->ssl != NULL) {
        /* ciphertext: into the SSL before on_read returns */
        buf->base = (char *)c->t->tls_rbuf;
        buf->len = TR_TLS_RBUF_BYTES;
        return;
    }
    size_t room = tr__rbuf_reserve(c);
    buf->base = room == 0 ? NULL : (char *)c->rbuf + c->rlen;
    buf->len = room; /* 0: libuv reports UV_ENOBUFS to on_read */
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct transport__conn *c = s->data;
    (void)buf;
    if (is_closing(c) || nread == 0) {
        return;
    }
    if (nread < 0) {
        int err = nread == UV_EOF ? -ECONNRESET : (int)nread;
        if (nread == UV_ENOBUFS) {
            err = -ENOMEM;
        }
        if (c->ssl != NULL && !c->tls_up && nread == UV_EOF) {
            /* e.g. a TLS dialler on a plain port: the other side read our
             * ClientHello as a bad hello and closed */
            c->t->stats.tls_handshakes_failed++;
            LOGW(TR_LOG,
                 "peer connection %s %s: closed during the TLS handshake "
                 "(is the other side's peer URL http://?)",
                 c->kind == TR_CONN_IN ? "from" : "to", c->remote);
            if (c->peer != NULL && c->kind != TR_CONN_IN) {
                tr__peer_set_error(c->peer, "TLS handshake: connection "
                                            "closed by the peer (plain "
                                            "http:// peer port?)");
                c->reason_set = true;
            }
        }
        if (c->kind == TR_CONN_IN) {
            LOGD(TR_LOG,
                 "peer connection from %s (member %016" PRIx64 ") closed: %s",
                 c->remote, c->peer_id, err_str(err));
        }
        conn_fail(c, err);
        return;
    }
    if (c->ssl != NULL) {
        tr__tls_on_read(c, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    ASSERT((size_t)nread <= c->rcap - c->rlen);
    c->rlen += (size_t)nread;
    tr__conn_consume(c);
}

void tr__conn_read_start(struct transport__conn *c)
{
    if (c->reading || is_closing(c)) {
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        conn_fail(c, rc);
        return;
    }
    c->reading = true;
}

void tr__conn_read_stop(struct transport__conn *c)
{
    if (c->reading && !is_closing(c)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    c->reading = false;
}

/* --- control writes: hello, reply, ACK -------------------------------- */

static void on_cwrite(uv_write_t *req, int status)
{
    struct transport__conn *c = req->data;
    c->cwriting = false;
    if (is_closing(c)) {
        return;
    }
    if (status < 0) {
        conn_fail(c, status);
    } else if (c->close_after_cwrite) {
        tr__conn_close(c, 0);
    }
}

static void conn_cwrite(struct transport__conn *c, size_t len, bool close_after)
{
    uv_buf_t b;
    ASSERT(len <= sizeof(c->cbuf));
    if (c->cwriting) {
        /* Only a peer that ignores the protocol's turn-taking gets here. */
        tr__conn_malformed(c, "frame before our previous reply was sent");
        return;
    }
    b.base = (char *)c->cbuf;
    b.len = len;
    c->close_after_cwrite = close_after;
    int rc = tr__io_write(c, &c->cwreq, &b, 1, on_cwrite);
    if (rc != 0) {
        conn_fail(c, rc);
        return;
    }
    c->cwriting = true;
}

/* Write the 12-byte frame header plus payload (<= cbuf) as a control write. */
void tr__conn_write_control_frame(struct transport__conn *c, uint8_t type,
                                  const uint8_t *payload, size_t len,
                                  bool close_after)
{
    ASSERT(TRANSPORT_FRAME_HEADER_BYTES + len <= sizeof(c->cbuf));
    memcpy(c->cbuf + TRANSPORT_FRAME_HEADER_BYTES, payload, len);
    tr__frame_encode(c->cbuf, type, c->cbuf + TRANSPORT_FRAME_HEADER_BYTES,
                     len);
    conn_cwrite(c, TRANSPORT_FRAME_HEADER_BYTES + len, close_after);
}

/* --- dialling ------------------------------------------------------- */

/* The dialler's hello: right after connect, or after the TLS handshake. */
void tr__conn_out_hello(struct transport__conn *c)
{
    struct transport *t = c->t;
    ASSERT(c->kind != TR_CONN_IN && c->state == TR_HELLO);
    struct tr_hello h = {
        .magic = TRANSPORT_MAGIC,
        .version = TRANSPORT_VERSION,
        .channel = c->channel,
        .flags = 0,
        .cluster_id = t->cfg.cluster_id,
        .from = t->cfg.self_id,
        .to = c->peer_id,
    };
    tr__hello_encode(c->cbuf, &h);
    conn_cwrite(c, TRANSPORT_HELLO_BYTES, false);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct transport__conn *c = req->data;
    if (is_closing(c)) {
        return;
    }
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    ASSERT(c->state == TR_DIALING);
    c->state = TR_HELLO;
    if (!c->tls_want) {
        tr__conn_out_hello(c);
        tr__conn_read_start(c);
        return;
    }
    int rc = tr__tls_start(c, true);
    if (rc != 0) {
        if (c->peer != NULL) {
            tr__peer_set_error(c->peer,
                               rc == ERR_INVALID
                                   ? "https:// peer URL but no peer TLS "
                                     "configured on this member"
                                   : "TLS: out of memory");
            c->reason_set = true;
        }
        conn_fail(c, rc == ERR_INVALID ? -EPROTO : rc);
        return;
    }
    tr__conn_read_start(c);
    tr__tls_pump(c); /* the ClientHello */
}

int tr__conn_dial(struct transport__conn *c, const struct sockaddr *addr)
{
    ASSERT(c->kind != TR_CONN_IN);
    ASSERT(c->state == TR_DIALING);
    ASSERT(c->peer != NULL);
    c->tls_want = c->peer->tls;
    int rc = uv_tcp_connect(&c->connect_req, &c->tcp, addr, on_connect);
    if (rc != 0) {
        return rc;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 30);
    uv_timer_start(&c->timer, on_timer, c->t->cfg.handshake_timeout_ms, 0);
    return 0;
}

/* --- accepting ------------------------------------------------------ */

static void remote_text(struct transport__conn *c)
{
    struct sockaddr_storage ss;
    char ip[64] = "?";
    int len = (int)sizeof(ss);
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, ip, sizeof(ip));
            port = ntohs(a->sin6_port);
        } else if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, ip, sizeof(ip));
            port = ntohs(a->sin_port);
        }
    }
    snprintf(c->remote, sizeof(c->remote), "%s:%d", ip, port);
}

void tr__on_connection(uv_stream_t *server, int status)
{
    struct transport *t = server->data;
    struct transport__conn *c;
    if (status < 0 || t->closing) {
        if (status < 0) {
            LOGW_LIMITED(TR_LOG, "accepting a peer connection failed: %s",
                         err_str(status));
        }
        return;
    }
    bool over = t->conns_in_count >= t->cfg.conns_in_max;
    if (tr__conn_new(t, TR_CONN_IN, &c) != 0) {
        /* Without memory libuv keeps the socket and pauses the listener
         * until the next accept; nothing better is possible here. */
        LOGE(TR_LOG, "no memory to accept a peer connection");
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        tr__conn_close(c, -EIO);
        return;
    }
    remote_text(c);
    if (over) {
        t->stats.conns_refused++;
        LOGW_LIMITED(TR_LOG,
                     "refusing peer connection from %s: %zu connections "
                     "open (limit)",
                     c->remote, t->conns_in_count - 1);
        tr__conn_close(c, ERR_LIMIT);
        return;
    }
    t->stats.conns_accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 30); /* notice a dialler that vanished */
    uv_timer_start(&c->timer, on_timer, t->cfg.handshake_timeout_ms, 0);
    if (t->cfg.tls_server_ctx != NULL) {
        int rc = tr__tls_start(c, false);
        if (rc != 0) {
            LOGE_LIMITED(TR_LOG, "peer connection from %s: TLS: %s", c->remote,
                         err_str(rc));
            tr__conn_close(c, rc);
            return;
        }
    }
    tr__conn_read_start(c);
}

/* Refuse a hello: reply with the reason, log it, close once written. */
static void conn_refuse(struct transport__conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void conn_refuse(struct transport__conn *c, const char *fmt, ...)
{
    struct transport *t = c->t;
    char reason[TRANSPORT_REASON_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n;
    if (len > TRANSPORT_REASON_MAX) {
        len = TRANSPORT_REASON_MAX;
    }
    t->stats.conns_refused++;
    LOGW_LIMITED(TR_LOG,
                 "refused peer connection from %s (member %016" PRIx64 "): %s",
                 c->remote, c->peer_id, reason);
    struct tr_reply r = {
        .magic = TRANSPORT_MAGIC,
        .version = TRANSPORT_VERSION,
        .status = 1,
        .reason_len = (uint8_t)len,
        .cluster_id = t->cfg.cluster_id,
        .member_id = t->cfg.self_id,
    };
    tr__reply_encode(c->cbuf, &r);
    memcpy(c->cbuf + TRANSPORT_REPLY_BYTES, reason, len);
    c->state = TR_DONE;
    tr__conn_read_stop(c);
    conn_cwrite(c, TRANSPORT_REPLY_BYTES + len, true);
}

/* Decide on a decoded hello: refuse (with a reason) or accept. */
static void hello_decide(struct transport__conn *c, const struct tr_hello *h)
{
    struct transport *t = c->t;
    const struct transport_config *cfg = &t->cfg;
    c->peer_id = h->from;
    c->channel = h->channel;
    if (h->version != TRANSPORT_VERSION) {
        conn_refuse(c,
                    "unsupported peer protocol version %u (this member "
                    "speaks %u)",
                    h->version, TRANSPORT_VERSION);
    } else if ((h->channel != TRANSPORT_CHANNEL_MSG &&
                h->channel != TRANSPORT_CHANNEL_SNAP) ||
               h->flags != 0) {
        conn_refuse(c, "unknown channel %u or flags %u", h->channel, h->flags);
    } else if (h->cluster_id != cfg->cluster_id &&
               !((h->cluster_id == 0 || cfg->cluster_id == 0) &&
                 cfg->accept_cb != NULL)) {
        /* Cluster id 0 is a member joining a running cluster that has not
         * learnt the id yet. Either way round (the joiner dials, or a
         * member dials the joiner first) the caller is let in only when
         * the owner's accept_cb knows it as a member (checked next). */
        conn_refuse(c,
                    "cluster ID mismatch: this member is in cluster "
                    "%016" PRIx64 ", the caller in %016" PRIx64,
                    cfg->cluster_id, h->cluster_id);
    } else if (h->to != cfg->self_id) {
        conn_refuse(c,
                    "member ID mismatch: this is member %016" PRIx64
                    ", the caller expected %016" PRIx64,
                    cfg->self_id, h->to);
    } else if (h->from == 0 || h->from == cfg->self_id) {
        conn_refuse(c, "invalid caller member ID %016" PRIx64, h->from);
    } else if (h->channel == TRANSPORT_CHANNEL_SNAP && cfg->snap_cb == NULL) {
        conn_refuse(c, "this member does not accept snapshots");
    } else {
        int rc = cfg->accept_cb == NULL
                     ? 0
                     : cfg->accept_cb(cfg->owner, h->from,
                                      (enum transport_channel)h->channel);
        if (is_closing(c)) {
            return; /* the owner closed the transport from accept_cb */
        }
        if (rc != 0) {
            conn_refuse(c, "member %016" PRIx64 " refused: %s", h->from,
                        err_str(rc));
            return;
        }
        if (t->cfg.cluster_id == 0 && h->cluster_id != 0) {
            /* A joining member dialled by a known member before it dialled
             * out: it learns the id here, as it would from a reply. */
            t->cfg.cluster_id = h->cluster_id;
            if (t->cfg.cluster_cb != NULL) {
                t->cfg.cluster_cb(t->cfg.owner, h->cluster_id);
            }
            if (is_closing(c)) {
                return;
            }
        }
        struct tr_reply r = {
            .magic = TRANSPORT_MAGIC,
            .version = TRANSPORT_VERSION,
            .cluster_id = cfg->cluster_id,
            .member_id = cfg->self_id,
        };
        tr__reply_encode(c->cbuf, &r);
        c->state = TR_READY;
        c->peer = tr__peer_find(t, h->from);
        if (c->peer != NULL) {
            tr__peer_alive(c->peer);
        }
        uv_timer_stop(&c->timer);
        conn_cwrite(c, TRANSPORT_REPLY_BYTES, false);
    }
}

/* Accepting side, state TR_HELLO. Returns true when it consumed the hello
 * and the connection may go on parsing. */
static bool in_hello(struct transport__conn *c)
{
    static const uint8_t magic[4] = {0x43, 0x52, 0x4E, 0x50};
    size_t avail = c->rlen - c->roff;
    size_t n = avail < 4 ? avail : 4;
    STATIC_ASSERT(TRANSPORT_MAGIC == 0x43524E50u, "magic bytes above");
    if (memcmp(c->rbuf + c->roff, magic, n) != 0) {
        /* 0x16 0x03: a TLS ClientHello record */
        tr__conn_malformed(c, c->rbuf[c->roff] == 0x16
                                  ? "a TLS handshake on a plain peer port "
                                    "(this member's peer URL is http://)"
                                  : "not a Cairn peer (bad magic)");
        return false;
    }
    if (avail < TRANSPORT_HELLO_BYTES) {
        return false;
    }
    struct tr_hello h;
    tr__hello_decode(c->rbuf + c->roff, &h);
    c->roff += TRANSPORT_HELLO_BYTES;
    hello_decide(c, &h);
    return c->state == TR_READY;
}

/* Copy text for the operator, replacing bytes that could forge log lines. */
static void sanitize(char *dst, size_t cap, const uint8_t *src, size_t len)
{
    ASSERT(cap > 0);
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
    }
    dst[n] = '\0';
}

static void reply_refused(struct transport__conn *c, const uint8_t *reason,
                          size_t len)
{
    char text[TRANSPORT_REASON_MAX + 1];
    char line[TRANSPORT_REASON_MAX + 32];
    sanitize(text, sizeof(text), reason, len);
    LOGE(TR_LOG, "member %016" PRIx64 " at %s refused our connection: %s",
         c->peer_id, c->remote, text);
    if (c->peer != NULL) {
        snprintf(line, sizeof(line), "refused by peer: %s", text);
        tr__peer_set_error(c->peer, line);
        c->reason_set = true;
    }
    conn_fail(c, -EACCES);
}

/* Dialling side, state TR_HELLO: the reply. Returns true when accepted. */
static bool out_reply(struct transport__conn *c)
{
    struct transport *t = c->t;
    size_t avail = c->rlen - c->roff;
    struct tr_reply r;
    if (avail < TRANSPORT_REPLY_BYTES) {
        return false;
    }
    tr__reply_decode(c->rbuf + c->roff, &r);
    if (r.magic != TRANSPORT_MAGIC || r.version != TRANSPORT_VERSION) {
        tr__conn_malformed(c, "bad magic or version in handshake reply");
        return false;
    }
    if (avail < (size_t)TRANSPORT_REPLY_BYTES + r.reason_len) {
        return false;
    }
    const uint8_t *reason = c->rbuf + c->roff + TRANSPORT_REPLY_BYTES;
    c->roff += TRANSPORT_REPLY_BYTES + r.reason_len;
    if (r.status != 0) {
        reply_refused(c, reason, r.reason_len);
        return false;
    }
    if (t->cfg.cluster_id == 0 && r.cluster_id != 0 &&
        r.member_id == c->peer_id) {
        /* A joining member learns its cluster's id from the first peer
         * that accepts it. */
        t->cfg.cluster_id = r.cluster_id;
        if (t->cfg.cluster_cb != NULL) {
            t->cfg.cluster_cb(t->cfg.owner, r.cluster_id);
        }
    }
    if (r.cluster_id != t->cfg.cluster_id || r.member_id != c->peer_id) {
        tr__conn_malformed(c, "handshake reply names another cluster or "
                              "member");
        return false;
    }
    c->state = TR_READY;
    uv_timer_stop(&c->timer);
    if (c->kind == TR_CONN_OUT_MSG) {
        if (c->peer != NULL && c->peer->conn == c) {
            tr__peer_ready(c->peer);
        }
    } else {
        tr__snap_out_ready(c);
    }
    return !is_closing(c);
}

/* --- frames --------------------------------------------------------- */

bool tr__frame_allowed(const struct transport__conn *c, uint8_t type,
                       uint32_t len)
{
    const struct transport_config *cfg = &c->t->cfg;
    if (c->kind == TR_CONN_OUT_SNAP) {
        return type == TRANSPORT_FRAME_SNAP_ACK && len == 1 &&
               c->snap != NULL && c->snap->end_sent;
    }
    if (c->kind != TR_CONN_IN) {
        return false; /* nothing comes back on a message connection */
    }
    if (c->channel == TRANSPORT_CHANNEL_MSG) {
        return type == TRANSPORT_FRAME_MSG && len <= cfg->max_msg_bytes;
    }
    if (!c->rx_begun) {
        return type == TRANSPORT_FRAME_SNAP_BEGIN && len <= cfg->max_msg_bytes;
    }
    if (type == TRANSPORT_FRAME_SNAP_CHUNK) {
        return len <= cfg->snapshot_chunk_bytes;
    }
    return type == TRANSPORT_FRAME_SNAP_END && len == TRANSPORT_SNAP_END_BYTES;
}

void tr__conn_malformed(struct transport__conn *c, const char *why)
{
    c->t->stats.frames_malformed++;
    LOGW_LIMITED(
        TR_LOG, "closing peer connection %s %s (member %016" PRIx64 "): %s",
        c->kind == TR_CONN_IN ? "from" : "to", c->remote, c->peer_id, why);
    if (c->peer != NULL && c->kind != TR_CONN_IN) {
        tr__peer_set_error(c->peer, why);
        c->reason_set = true;
    }
    conn_fail(c, -EPROTO);
}

static void deliver_msg(struct transport__conn *c, const uint8_t *p, size_t len)
{
    struct transport *t = c->t;
    if (c->peer == NULL) {
        c->peer = tr__peer_find(t, c->peer_id);
    }
    if (c->peer != NULL) {
        c->peer->st.msgs_received++;
        c->peer->st.bytes_received += len;
    } else {
        t->stats.msgs_received_unknown++;
    }
    t->cfg.recv_cb(t->cfg.owner, c->peer_id, p, len);
}

static void dispatch(struct transport__conn *c, uint8_t type,
                     const uint8_t *payload, size_t len)
{
    if (c->kind == TR_CONN_OUT_SNAP) {
        tr__snap_out_frame(c, type, payload, len);
    } else if (c->channel == TRANSPORT_CHANNEL_MSG) {
        deliver_msg(c, payload, len);
    } else {
        tr__snap_in_frame(c, type, payload, len);
    }
}

/* Parse one frame at roff. Returns true when one was consumed. */
static bool next_frame(struct transport__conn *c)
{
    size_t avail = c->rlen - c->roff;
    struct tr_frame_hdr h;
    if (avail < TRANSPORT_FRAME_HEADER_BYTES) {
        return false;
    }
    tr__frame_decode(c->rbuf + c->roff, &h);
    if (h.reserved[0] != 0 || h.reserved[1] != 0 || h.reserved[2] != 0 ||
        !tr__frame_allowed(c, h.type, h.len)) {
        char why[96];
        snprintf(why, sizeof(why),
                 "malformed frame (type %u, %" PRIu32 " bytes)", h.type, h.len);
        tr__conn_malformed(c, why);
        return false;
    }
    if (avail - TRANSPORT_FRAME_HEADER_BYTES < h.len) {
        return false;
    }
    const uint8_t *payload = c->rbuf + c->roff + TRANSPORT_FRAME_HEADER_BYTES;
    uint32_t crc = h.len == 0 ? 0 : crc32c(0, payload, h.len);
    if (crc != h.crc) {
        tr__conn_malformed(c, "frame checksum mismatch");
        return false;
    }
    c->roff += TRANSPORT_FRAME_HEADER_BYTES + h.len;
    dispatch(c, h.type, payload, h.len);
    return true;
}

/* Move unparsed bytes to the front; give back a big buffer once empty. */
static void compact(struct transport__conn *c)
{
    size_t left = c->rlen - c->roff;
    if (c->roff > 0) {
        memmove(c->rbuf, c->rbuf + c->roff, left);
        c->roff = 0;
        c->rlen = left;
    }
    if (left == 0 && c->rcap > 4 * TR_RBUF_MIN &&
        c->channel == TRANSPORT_CHANNEL_MSG) {
        uint8_t *p = mem_realloc(c->rbuf, TR_RBUF_MIN);
        if (p != NULL) {
            c->rbuf = p;
            c->rcap = TR_RBUF_MIN;
        }
    }
}

/* Parse and deliver everything buffered, until paused, closed or short. */
void tr__conn_consume(struct transport__conn *c)
{
    size_t guard = 0;
    while (!is_closing(c) && !c->paused) {
        ASSERT(++guard <= c->rcap / TRANSPORT_FRAME_HEADER_BYTES + 2);
        bool more;
        if (c->state == TR_HELLO) {
            more = c->kind == TR_CONN_IN ? in_hello(c) : out_reply(c);
        } else if (c->state == TR_READY) {
            more = next_frame(c);
        } else {
            if (c->state == TR_DONE && c->rlen > c->roff) {
                tr__conn_malformed(c, "bytes after the end of the stream");
            }
            more = false;
        }
        if (!more) {
            break;
        }
    }
    if (!is_closing(c) && !c->paused) {
        compact(c);
    }
}

/* --- message batches ------------------------------------------------ */

static void batch_release(struct transport__conn *c, int status)
{
    struct transport__peer *p = c->peer;
    size_t n = 0;
    struct tr_qmsg *m = c->batch;
    while (m != NULL) {
        struct tr_qmsg *next = m->next;
        ASSERT(++n <= c->batch_msgs);
        mem_free(m);
        m = next;
    }
    ASSERT(n == c->batch_msgs);
    if (p != NULL) {
        ASSERT(p->fl_msgs >= c->batch_msgs && p->fl_bytes >= c->batch_bytes);
        p->fl_msgs -= c->batch_msgs;
        p->fl_bytes -= c->batch_bytes;
        if (status == 0) {
            p->st.msgs_sent += c->batch_msgs;
            p->st.bytes_sent += c->batch_bytes;
        } else {
            p->st.msgs_dropped += c->batch_msgs;
            p->st.bytes_dropped += c->batch_bytes;
        }
    }
    c->batch = NULL;
    c->batch_msgs = 0;
    c->batch_bytes = 0;
}

static void on_batch_written(uv_write_t *req, int status)
{
    struct transport__conn *c = req->data;
    c->writing = false;
    batch_release(c, status);
    if (is_closing(c)) {
        return;
    }
    uv_timer_stop(&c->timer);
    if (status < 0) {
        conn_fail(c, status);
        return;
    }
    struct transport__peer *p = c->peer;
    if (p != NULL && p->conn == c && p->q_msgs > 0) {
        tr__flush_arm(c->t);
    }
}

/* Move up to a batch of queued messages into one uv_write. */
void tr__conn_write_batch(struct transport__conn *c)
{
    struct transport__peer *p = c->peer;
    ASSERT(p != NULL && p->conn == c);
    ASSERT(c->state == TR_READY && !c->writing && c->batch == NULL);
    struct tr_qmsg *tail = NULL;
    size_t n = 0, bytes = 0;
    while (p->q_head != NULL && n < TRANSPORT_BATCH_MSGS_MAX &&
           (n == 0 ||
            bytes + p->q_head->payload_len <= TRANSPORT_BATCH_BYTES_MAX)) {
        struct tr_qmsg *m = p->q_head;
        p->q_head = m->next;
        m->next = NULL;
        c->bufs[n].base = (char *)m->frame;
        c->bufs[n].len = TRANSPORT_FRAME_HEADER_BYTES + m->payload_len;
        if (tail == NULL) {
            c->batch = m;
        } else {
            tail->next = m;
        }
        tail = m;
        n++;
        bytes += m->payload_len;
    }
    if (p->q_head == NULL) {
        p->q_tail = NULL;
    }
    ASSERT(n > 0 && n <= p->q_msgs);
    p->q_msgs -= n;
    p->q_bytes -= bytes;
    p->fl_msgs += n;
    p->fl_bytes += bytes;
    c->batch_msgs = n;
    c->batch_bytes = bytes;
    int rc = tr__io_write(c, &c->wreq, c->bufs, (unsigned)n, on_batch_written);
    if (rc != 0) {
        batch_release(c, rc);
        conn_fail(c, rc);
        return;
    }
    c->writing = true;
    p->st.writes++;
    uv_timer_start(&c->timer, on_timer, c->t->cfg.write_stall_ms, 0);
}

/* --- timers --------------------------------------------------------- */

/* Resume a paused incoming stream from the loop, not from the caller. */
void tr__conn_kick(struct transport__conn *c)
{
    tr__conn_timer_start(c, 0);
}

/* (Re)start the connection's one timer; what it means depends on state. */
void tr__conn_timer_start(struct transport__conn *c, uint64_t ms)
{
    if (!is_closing(c)) {
        uv_timer_start(&c->timer, on_timer, ms, 0);
    }
}

static void on_timer(uv_timer_t *h)
{
    struct transport__conn *c = h->data;
    if (is_closing(c)) {
        return;
    }
    if (c->state == TR_DIALING || c->state == TR_HELLO || c->state == TR_DONE) {
        LOGW_LIMITED(TR_LOG, "peer connection %s %s: handshake timed out",
                     c->kind == TR_CONN_IN ? "from" : "to", c->remote);
        conn_fail(c, -ETIMEDOUT);
    } else if (c->kind == TR_CONN_IN) {
        /* A resume kick (transport_snapshot_resume): deliver what is
         * buffered, then read again if the owner did not pause anew. */
        tr__conn_consume(c);
        if (!is_closing(c) && !c->paused && c->ssl != NULL) {
            tr__tls_pump(c); /* records the SSL still holds */
        }
        if (!is_closing(c) && !c->paused) {
            tr__conn_read_start(c);
        }
    } else {
        LOGW(TR_LOG, "peer connection to %s: no write progress, closing",
             c->remote);
        conn_fail(c, -ETIMEDOUT);
    }
}

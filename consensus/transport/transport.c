/*
 * transport.c - the transport's lifecycle, its peers, the outgoing message
 * queue and its flush, stats and close.
 *
 * Happy path of a message: transport_send() copies the payload behind a
 * frame header into the peer's queue and arms an idle handle, so the loop
 * does not block in poll. In the idle callback (once per loop pass) each
 * peer with queued messages either dials its connection (lazily, on first
 * use) or, when the connection is ready and no write is pending, moves up to
 * TRANSPORT_BATCH_MSGS_MAX messages into one uv_write (a writev). The write
 * callback counts them sent and re-arms the flush if more are waiting.
 *
 * Failure modes: a full queue (messages or bytes, counting those inside the
 * pending write) drops the new message and counts it; Raft retries. A failed
 * dial, a refused handshake or a lost connection drops every message queued
 * for that peer (they would be stale by the time a new connection exists),
 * reports the peer unreachable once, and starts a backoff timer: the delay
 * doubles from backoff_min_ms up to backoff_max_ms, each drawn uniformly from
 * [delay/2, delay] with the seeded PRNG so that members do not reconnect in
 * lockstep. A successful handshake resets the delay.
 */
#include "consensus/transport/transport_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"

void transport_config_init(struct transport_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_msg_bytes = (size_t)limits_default(LIMIT_RAFT_MSG_BYTES);
    cfg->snapshot_chunk_bytes =
        (size_t)limits_default(LIMIT_SNAPSHOT_CHUNK_BYTES);
    cfg->queue_msgs_max = TRANSPORT_QUEUE_MSGS_DEFAULT;
    cfg->queue_bytes_max = TRANSPORT_QUEUE_BYTES_DEFAULT;
    cfg->peers_max = TRANSPORT_PEERS_DEFAULT;
    cfg->conns_in_max = TRANSPORT_CONNS_IN_DEFAULT;
    cfg->backoff_min_ms = TRANSPORT_BACKOFF_MIN_MS;
    cfg->backoff_max_ms = TRANSPORT_BACKOFF_MAX_MS;
    cfg->handshake_timeout_ms = TRANSPORT_HANDSHAKE_TIMEOUT_MS;
    cfg->write_stall_ms = TRANSPORT_WRITE_STALL_MS;
    cfg->snap_stall_ms = TRANSPORT_SNAP_STALL_MS;
}

static int config_check(const struct transport_config *c)
{
    if (c->self_id == 0 || c->recv_cb == NULL) {
        return ERR_INVALID;
    }
    if (c->max_msg_bytes == 0 || c->snapshot_chunk_bytes == 0 ||
        c->queue_msgs_max == 0 || c->peers_max == 0 || c->conns_in_max == 0) {
        return ERR_INVALID;
    }
    if (c->backoff_min_ms == 0 || c->backoff_min_ms > c->backoff_max_ms ||
        c->handshake_timeout_ms == 0 || c->write_stall_ms == 0 ||
        c->snap_stall_ms == 0) {
        return ERR_INVALID;
    }
    if (c->queue_bytes_max < c->max_msg_bytes) {
        return ERR_INVALID;
    }
    if (c->max_msg_bytes > limits_hard_max(LIMIT_RAFT_MSG_BYTES) ||
        c->snapshot_chunk_bytes > limits_hard_max(LIMIT_SNAPSHOT_CHUNK_BYTES) ||
        c->queue_msgs_max > TRANSPORT_QUEUE_MSGS_MAX ||
        c->queue_bytes_max > TRANSPORT_QUEUE_BYTES_MAX ||
        c->peers_max > TRANSPORT_PEERS_MAX ||
        c->conns_in_max > TRANSPORT_CONNS_IN_MAX) {
        return ERR_LIMIT;
    }
    /* The frame length field is 32 bits. */
    if (c->max_msg_bytes > UINT32_MAX - TRANSPORT_FRAME_HEADER_BYTES ||
        c->snapshot_chunk_bytes > UINT32_MAX - TRANSPORT_FRAME_HEADER_BYTES) {
        return ERR_LIMIT;
    }
    return 0;
}

static void flush_cb(uv_idle_t *h);
static int addr_parse(const char *s, struct sockaddr_storage *out, bool *tls);

int transport_init(struct transport *t, uv_loop_t *loop,
                   const struct transport_config *cfg)
{
    ASSERT(t != NULL);
    ASSERT(loop != NULL && cfg != NULL);
    int rc = config_check(cfg);
    if (rc != 0) {
        return rc;
    }
    memset(t, 0, sizeof(*t));
    t->loop = loop;
    t->cfg = *cfg;
    rc = tr__tls_ctx_ref(t);
    if (rc != 0) {
        return rc;
    }
    prng_seed(&t->prng, cfg->seed);
    /* Neither init can fail on Unix (no socket is made until bind). */
    rc = uv_tcp_init(loop, &t->listener);
    ASSERT(rc == 0);
    rc = uv_idle_init(loop, &t->flush_idle);
    ASSERT(rc == 0);
    t->listener.data = t;
    t->flush_idle.data = t;
    t->handles_open = 2;
    return 0;
}

int transport_listen(struct transport *t, const char *addr)
{
    struct sockaddr_storage ss;
    if (t->closing) {
        return -ESHUTDOWN;
    }
    if (t->listening) {
        return ERR_EXISTS;
    }
    bool tls;
    int rc = addr_parse(addr, &ss, &tls);
    if (rc != 0) {
        return rc;
    }
    if (tls && t->cfg.tls_server_ctx == NULL) {
        LOGE(TR_LOG, "cannot listen for peers on %s: no peer TLS context",
             addr);
        return ERR_INVALID;
    }
    rc = uv_tcp_bind(&t->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&t->listener, 128, tr__on_connection);
    }
    if (rc != 0) {
        LOGE(TR_LOG, "cannot listen for peers on %s: %s", addr, err_str(rc));
        return rc;
    }
    t->listening = true;
    LOGI(TR_LOG, "listening for peers on %s", addr);
    return 0;
}

int transport_listen_addr(const struct transport *t,
                          struct sockaddr_storage *out)
{
    if (!t->listening) {
        return ERR_INVALID;
    }
    int len = (int)sizeof(*out);
    return uv_tcp_getsockname(&t->listener, (struct sockaddr *)out, &len);
}

/* --- addresses ------------------------------------------------------- */

static int parse_port(const char *s, int *out)
{
    long v = 0;
    if (*s == '\0') {
        return ERR_INVALID;
    }
    for (int i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 5) {
            return ERR_INVALID;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v > 65535) {
        return ERR_INVALID;
    }
    *out = (int)v;
    return 0;
}

static int addr_parse(const char *s, struct sockaddr_storage *out, bool *tls)
{
    char host[TR_ADDR_TEXT];
    int port;
    *tls = false;
    if (s == NULL) {
        return ERR_INVALID;
    }
    if (strncmp(s, "http://", 7) == 0) {
        s += 7;
    } else if (strncmp(s, "https://", 8) == 0) {
        s += 8;
        *tls = true;
    }
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(host)) {
        return ERR_INVALID;
    }
    memcpy(host, s, n + 1);
    memset(out, 0, sizeof(*out));
    if (host[0] == '[') {
        char *end = strchr(host, ']');
        if (end == NULL || end[1] != ':' || parse_port(end + 2, &port) != 0) {
            return ERR_INVALID;
        }
        *end = '\0';
        return uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)out) == 0
                   ? 0
                   : ERR_INVALID;
    }
    char *colon = strrchr(host, ':');
    if (colon == NULL || parse_port(colon + 1, &port) != 0) {
        return ERR_INVALID;
    }
    *colon = '\0';
    if (strchr(host, ':') != NULL) {
        return ERR_INVALID; /* IPv6 needs brackets */
    }
    return uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0
               ? 0
               : ERR_INVALID;
}

int transport_addr_parse(const char *s, struct sockaddr_storage *out)
{
    bool tls;
    return addr_parse(s, out, &tls);
}

/* --- peers ----------------------------------------------------------- */

struct transport__peer *tr__peer_find(const struct transport *t, uint64_t id)
{
    size_t n = 0;
    for (struct transport__peer *p = t->peers; p != NULL; p = p->next) {
        ASSERT(++n <= t->peers_count);
        if (p->id == id) {
            return p;
        }
    }
    return NULL;
}

void tr__peer_set_error(struct transport__peer *p, const char *text)
{
    snprintf(p->st.last_error, sizeof(p->st.last_error), "%s", text);
}

static void backoff_closed(uv_handle_t *h)
{
    struct transport__peer *p = h->data;
    struct transport *t = p->t;
    mem_free(p);
    tr__handle_closed(t);
}

static void backoff_fired(uv_timer_t *h)
{
    struct transport__peer *p = h->data;
    p->backoff_active = false;
    if (p->q_msgs > 0) {
        tr__flush_arm(p->t);
    }
}

/* The peer just dialled us: it is up, so a redial need not wait out the
 * backoff (a restarted member would otherwise hear from the leader only
 * when the leader's backoff, up to backoff_max_ms, ran out). */
void tr__peer_alive(struct transport__peer *p)
{
    p->attempts = 0;
    if (p->backoff_active) {
        uv_timer_stop(&p->backoff);
        p->backoff_active = false;
        if (p->q_msgs > 0) {
            tr__flush_arm(p->t);
        }
    }
}

int transport_peer_add(struct transport *t, uint64_t id, const char *addr)
{
    struct sockaddr_storage ss;
    bool tls;
    if (t->closing) {
        return -ESHUTDOWN;
    }
    if (id == 0 || id == t->cfg.self_id || addr_parse(addr, &ss, &tls) != 0) {
        return ERR_INVALID;
    }
    if (tr__peer_find(t, id) != NULL) {
        return ERR_EXISTS;
    }
    if (t->peers_count >= t->cfg.peers_max) {
        return ERR_LIMIT;
    }
    struct transport__peer *p = mem_calloc(1, sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    p->t = t;
    p->id = id;
    p->addr = ss;
    p->tls = tls;
    p->st.id = id;
    snprintf(p->addr_text, sizeof(p->addr_text), "%s", addr);
    int rc = uv_timer_init(t->loop, &p->backoff);
    ASSERT(rc == 0);
    p->backoff.data = p;
    t->handles_open++;
    p->next = t->peers;
    t->peers = p;
    t->peers_count++;
    /* Connect now, not at the first message: a restarted follower has
     * nothing to send until its election timeout, and the peer it dials
     * learns from the hello that it is back (tr__peer_alive). */
    p->dial_soon = true;
    tr__flush_arm(t);
    return 0;
}

/* Drop every message still waiting in p's queue, counting them. */
static void peer_purge(struct transport__peer *p)
{
    size_t n = 0;
    struct tr_qmsg *m = p->q_head;
    while (m != NULL) {
        struct tr_qmsg *next = m->next;
        ASSERT(++n <= p->q_msgs);
        p->st.msgs_dropped++;
        p->st.bytes_dropped += m->payload_len;
        mem_free(m);
        m = next;
    }
    ASSERT(n == p->q_msgs);
    p->q_head = p->q_tail = NULL;
    p->q_msgs = 0;
    p->q_bytes = 0;
}

/* Close p's outgoing message connection without reporting it unreachable
 * (we chose to close it). */
static void peer_drop_conn(struct transport__peer *p, int err)
{
    struct transport__conn *c = p->conn;
    if (c != NULL) {
        p->conn = NULL;
        tr__conn_close(c, err);
    }
}

int transport_peer_tls_name(struct transport *t, uint64_t id, const char *name)
{
    struct transport__peer *p = tr__peer_find(t, id);
    if (p == NULL) {
        return ERR_NOT_FOUND;
    }
    if (name == NULL) {
        name = "";
    }
    if (strlen(name) >= sizeof(p->tls_name)) {
        return ERR_INVALID;
    }
    snprintf(p->tls_name, sizeof(p->tls_name), "%s", name);
    return 0;
}

int transport_peer_update(struct transport *t, uint64_t id, const char *addr)
{
    struct sockaddr_storage ss;
    bool tls;
    if (t->closing) {
        return -ESHUTDOWN;
    }
    if (addr_parse(addr, &ss, &tls) != 0) {
        return ERR_INVALID;
    }
    struct transport__peer *p = tr__peer_find(t, id);
    if (p == NULL) {
        return ERR_NOT_FOUND;
    }
    p->addr = ss;
    p->tls = tls;
    snprintf(p->addr_text, sizeof(p->addr_text), "%s", addr);
    peer_drop_conn(p, ERR_CANCELED);
    p->attempts = 0;
    if (p->backoff_active) {
        uv_timer_stop(&p->backoff);
        p->backoff_active = false;
    }
    if (p->q_msgs > 0) {
        tr__flush_arm(t);
    }
    return 0;
}

/* Unlink p from everything that points at it and close its timer; memory
 * goes in backoff_closed. */
static void peer_destroy(struct transport__peer *p)
{
    struct transport *t = p->t;
    peer_drop_conn(p, ERR_CANCELED);
    peer_purge(p);
    for (struct transport__conn *c = t->conns; c != NULL; c = c->next) {
        if (c->peer == p) {
            c->peer = NULL;
        }
        /* A removed member must handshake again, where accept_cb can say
         * no; its open incoming connections go now. */
        if (c->kind == TR_CONN_IN && c->peer_id == p->id) {
            tr__conn_close(c, ERR_CANCELED);
        }
    }
    if (p->snap != NULL) {
        struct transport__snap_send *s = p->snap;
        p->snap = NULL;
        s->peer = NULL;
        tr__snap_cancel(s);
    }
    uv_close((uv_handle_t *)&p->backoff, backoff_closed);
}

int transport_peer_remove(struct transport *t, uint64_t id)
{
    if (t->closing) {
        return -ESHUTDOWN;
    }
    struct transport__peer **pp = &t->peers;
    while (*pp != NULL && (*pp)->id != id) {
        pp = &(*pp)->next;
    }
    struct transport__peer *p = *pp;
    if (p == NULL) {
        return ERR_NOT_FOUND;
    }
    *pp = p->next;
    t->peers_count--;
    peer_destroy(p);
    return 0;
}

/* --- the message queue ----------------------------------------------- */

void tr__flush_arm(struct transport *t)
{
    if (!t->flush_armed && !t->closing) {
        int rc = uv_idle_start(&t->flush_idle, flush_cb);
        ASSERT(rc == 0);
        t->flush_armed = true;
    }
}

int transport_send(struct transport *t, uint64_t to, const void *data,
                   size_t len)
{
    ASSERT(data != NULL || len == 0);
    if (t->closing) {
        return -ESHUTDOWN;
    }
    struct transport__peer *p = tr__peer_find(t, to);
    if (p == NULL) {
        return ERR_NOT_FOUND;
    }
    if (len > t->cfg.max_msg_bytes) {
        return ERR_LIMIT;
    }
    if (p->q_msgs + p->fl_msgs >= t->cfg.queue_msgs_max ||
        p->q_bytes + p->fl_bytes + len > t->cfg.queue_bytes_max) {
        p->st.msgs_dropped++;
        p->st.bytes_dropped += len;
        return ERR_BUSY;
    }
    struct tr_qmsg *m =
        mem_alloc(sizeof(*m) + TRANSPORT_FRAME_HEADER_BYTES + len);
    if (m == NULL) {
        p->st.msgs_dropped++;
        p->st.bytes_dropped += len;
        return -ENOMEM;
    }
    m->next = NULL;
    m->payload_len = len;
    if (len > 0) {
        memcpy(m->frame + TRANSPORT_FRAME_HEADER_BYTES, data, len);
    }
    tr__frame_encode(m->frame, TRANSPORT_FRAME_MSG,
                     m->frame + TRANSPORT_FRAME_HEADER_BYTES, len);
    if (p->q_tail != NULL) {
        p->q_tail->next = m;
    } else {
        p->q_head = m;
    }
    p->q_tail = m;
    p->q_msgs++;
    p->q_bytes += len;
    tr__flush_arm(t);
    return 0;
}

static void peer_dial(struct transport__peer *p)
{
    struct transport__conn *c;
    int rc = tr__conn_new(p->t, TR_CONN_OUT_MSG, &c);
    if (rc != 0) {
        /* No connection object: count as a failed attempt and retry. */
        peer_purge(p);
        p->backoff_active = true;
        uv_timer_start(&p->backoff, backoff_fired, p->t->cfg.backoff_min_ms, 0);
        return;
    }
    c->peer = p;
    c->peer_id = p->id;
    snprintf(c->remote, sizeof(c->remote), "%s", p->addr_text);
    p->conn = c;
    rc = tr__conn_dial(c, (const struct sockaddr *)&p->addr);
    if (rc != 0) {
        tr__peer_conn_failed(c, rc);
    }
}

/* Once per loop pass while armed: dial or write for every peer with work. */
static void flush_cb(uv_idle_t *h)
{
    struct transport *t = h->data;
    uv_idle_stop(h);
    t->flush_armed = false;
    struct transport__peer *p = t->peers;
    while (p != NULL) {
        /* The dial may report the peer unreachable, and the owner may remove
         * it from that callback: take next first (removal frees later). */
        struct transport__peer *next = p->next;
        if (p->q_msgs > 0 || (p->dial_soon && p->conn == NULL)) {
            struct transport__conn *c = p->conn;
            if (c == NULL) {
                if (!p->backoff_active) {
                    p->dial_soon = false;
                    peer_dial(p);
                }
            } else if (c->state == TR_READY && !c->writing) {
                tr__conn_write_batch(c);
            }
        }
        if (t->closing) {
            return;
        }
        p = next;
    }
}

/* The handshake on p's message connection was accepted. */
void tr__peer_ready(struct transport__peer *p)
{
    p->attempts = 0;
    p->st.connects++;
    p->st.last_error[0] = '\0';
    LOGI(TR_LOG, "connected to member %016" PRIx64 " at %s", p->id,
         p->addr_text);
    if (p->q_msgs > 0) {
        tr__flush_arm(p->t);
    }
}

static uint64_t backoff_delay_ms(struct transport *t, unsigned attempts)
{
    uint64_t d = t->cfg.backoff_min_ms;
    for (unsigned i = 0; i < attempts && d < t->cfg.backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > t->cfg.backoff_max_ms) {
        d = t->cfg.backoff_max_ms;
    }
    return d / 2 + prng_below(&t->prng, d - d / 2 + 1);
}

/* The outgoing message connection c failed or was lost (called only from
 * libuv callbacks, so the owner's callback may run here). */
void tr__peer_conn_failed(struct transport__conn *c, int err)
{
    struct transport *t = c->t;
    struct transport__peer *p = c->peer;
    bool was_ready = c->state == TR_READY;
    ASSERT(c->kind == TR_CONN_OUT_MSG);
    ASSERT(err < 0);
    tr__conn_close(c, err);
    if (p == NULL || p->conn != c) {
        return; /* already replaced or forgotten */
    }
    p->conn = NULL;
    peer_purge(p);
    if (!was_ready) {
        p->st.connect_failures++;
    }
    if (!c->reason_set) {
        tr__peer_set_error(p, err_str(err));
    }
    uint64_t delay = backoff_delay_ms(t, p->attempts);
    if (p->attempts < TR_ATTEMPTS_MAX) {
        p->attempts++;
    }
    p->backoff_active = true;
    uv_timer_start(&p->backoff, backoff_fired, delay, 0);
    LOGW(TR_LOG,
         "connection to member %016" PRIx64 " at %s %s: %s; retry in %" PRIu64
         " ms",
         p->id, p->addr_text, was_ready ? "lost" : "failed", p->st.last_error,
         delay);
    if (!t->closing && t->cfg.unreachable_cb != NULL) {
        t->cfg.unreachable_cb(t->cfg.owner, p->id, err);
    }
}

/* --- stats ----------------------------------------------------------- */

int transport_peer_stats(const struct transport *t, uint64_t id,
                         struct transport_peer_stats *out)
{
    const struct transport__peer *p = tr__peer_find(t, id);
    if (p == NULL) {
        return ERR_NOT_FOUND;
    }
    *out = p->st;
    out->msgs_queued = p->q_msgs + p->fl_msgs;
    out->bytes_queued = p->q_bytes + p->fl_bytes;
    out->connected = p->conn != NULL && p->conn->state == TR_READY;
    return 0;
}

void transport_stats(const struct transport *t, struct transport_stats *out)
{
    *out = t->stats;
    out->conns_in_open = t->conns_in_count;
}

/* --- close ----------------------------------------------------------- */

void tr__handle_closed(struct transport *t)
{
    ASSERT(t->handles_open > 0);
    t->handles_open--;
    tr__maybe_finish_close(t);
}

void tr__maybe_finish_close(struct transport *t)
{
    if (!t->closing || t->close_done) {
        return;
    }
    if (t->handles_open > 0 || t->snaps_live > 0) {
        return;
    }
    ASSERT(t->conns == NULL);
    ASSERT(t->peers == NULL);
    mem_free(t->tls_rbuf);
    t->tls_rbuf = NULL;
    t->close_done = true;
    if (t->close_cb != NULL) {
        t->close_cb(t);
    }
}

static void core_handle_closed(uv_handle_t *h)
{
    tr__handle_closed(h->data);
}

void transport_close(struct transport *t, transport_close_cb cb)
{
    ASSERT(!t->closing);
    t->closing = true;
    t->close_cb = cb;
    tr__tls_ctx_unref(t); /* each SSL holds its own reference */
    /* The two core handles keep handles_open above zero until their close
     * callbacks, so cb never runs from inside this call. */
    uv_close((uv_handle_t *)&t->listener, core_handle_closed);
    uv_close((uv_handle_t *)&t->flush_idle, core_handle_closed);
    size_t n = 0;
    while (t->peers != NULL) {
        struct transport__peer *p = t->peers;
        ASSERT(++n <= TRANSPORT_PEERS_MAX);
        t->peers = p->next;
        t->peers_count--;
        peer_destroy(p);
    }
    for (struct transport__conn *c = t->conns; c != NULL; c = c->next) {
        tr__conn_close(c, ERR_CANCELED);
    }
}

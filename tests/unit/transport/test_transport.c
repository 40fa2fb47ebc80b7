/*
 * test_transport.c - the peer transport over real sockets on 127.0.0.1.
 *
 * Goal: show that messages arrive in order and intact, that queues stay
 * bounded and drop (counting) instead of growing, that connections come back
 * after a restart, that members of other clusters and removed members are
 * refused with a reason, that snapshots do not delay messages, that garbage
 * on the peer port only costs its own connection, and that closing runs every
 * completion exactly once.
 *
 * Method: several transports on one uv loop in one process, each listening
 * on a port chosen by binding port 0. The loop runs one pass at a time until
 * a condition holds; a uv timer is the watchdog that bounds every wait. Raw
 * libuv sockets play misbehaving peers (silent, not reading, sending
 * garbage), building handshakes from the byte tables in transport.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "base/log.h"
#include "base/prng.h"
#include "consensus/transport/transport.h"

#define NODES     4
#define CLUSTER   0xc1u
#define WAIT_MS   10000
#define SMALL_MAX 4096

struct fixture;

/* One member under test and everything its callbacks saw. */
struct node {
    struct fixture *fx;
    struct transport t;
    uint64_t id;
    bool open;
    int close_calls;
    int port;
    /* messages */
    const size_t *expect; /* sizes in send order, or NULL: count only */
    size_t expect_count;
    uint64_t recv_count, recv_bytes;
    int bad_msgs; /* wrong size or content */
    uint64_t last_from;
    /* small timestamped messages (snapshot test) */
    uint64_t stamped, stamped_during_snap;
    uint64_t stamped_max_latency_ns;
    /* unreachable reports */
    int unreach_calls;
    int unreach_err;
    /* accept predicate: refuse this member id */
    uint64_t refuse_id;
    /* cluster_cb reports (a joining member) */
    int learnt_calls;
    uint64_t learnt_id;
    /* incoming snapshot */
    int snap_begin, snap_end, snap_abort, snap_chunks;
    int snap_status;
    uint64_t snap_bytes;
    uint32_t snap_crc;
    uint8_t snap_meta[64];
    size_t snap_meta_len;
    unsigned snap_pause_ms; /* pause after each chunk for this long */
    struct transport_snap_in *snap_in;
    uv_timer_t resume_timer;
    bool resume_timer_open;
    bool snap_in_progress;
};

struct raw {
    struct fixture *fx;
    uv_tcp_t listener; /* server mode */
    uv_tcp_t conn;
    bool conn_open;
    uv_connect_t creq;
    uv_write_t wreq;
    uint8_t in[4096];
    size_t in_len;
    uint8_t out[512];
    size_t out_len;
    bool reply; /* server: answer the hello with an accept */
    bool stop;  /* server: stop reading after the handshake */
    int accepted;
    int ended; /* EOF or error seen */
    uint64_t cluster, self;
};

struct ticker {
    uv_timer_t timer;
    struct node *from;
    uint64_t to;
    size_t len;
    uint64_t sent, busy, other;
    bool stamped;
};

struct fixture {
    uv_loop_t loop;
    uv_timer_t watchdog;
    bool timed_out;
    struct node n[NODES];
    struct raw raw; /* test-owned handles live here, not on a stack */
    struct ticker tk;
};

/* Payload byte i of message k. */
static uint8_t pattern(size_t k, size_t i)
{
    return (uint8_t)(k * 131u + i * 7u + (i >> 8));
}

static void fill(uint8_t *p, size_t k, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = pattern(k, i);
    }
}

/* --- callbacks ------------------------------------------------------- */

static void on_recv(void *owner, uint64_t from, const uint8_t *data, size_t len)
{
    struct node *n = owner;
    uint64_t k = n->recv_count++;
    n->recv_bytes += len;
    n->last_from = from;
    if (len == 24 && be64_get(data) == 0x5354414d50ull) { /* "STAMP" */
        uint64_t lat = clock_mono_ns() - be64_get(data + 8);
        n->stamped++;
        if (n->snap_in_progress) {
            n->stamped_during_snap++;
        }
        if (lat > n->stamped_max_latency_ns) {
            n->stamped_max_latency_ns = lat;
        }
        return;
    }
    if (n->expect == NULL) {
        return;
    }
    if (k >= n->expect_count || len != n->expect[k]) {
        n->bad_msgs++;
        return;
    }
    for (size_t i = 0; i < len; i++) {
        if (data[i] != pattern(k, i)) {
            n->bad_msgs++;
            return;
        }
    }
}

static void on_unreachable(void *owner, uint64_t peer, int err)
{
    struct node *n = owner;
    (void)peer;
    assert_false(n->t.close_done); /* nothing after the close callback */
    n->unreach_calls++;
    n->unreach_err = err;
}

static int on_accept(void *owner, uint64_t from, enum transport_channel ch)
{
    struct node *n = owner;
    (void)ch;
    return from == n->refuse_id ? ERR_MEMBER_NOT_FOUND : 0;
}

static void on_cluster_learnt(void *owner, uint64_t cluster_id)
{
    struct node *n = owner;
    n->learnt_calls++;
    n->learnt_id = cluster_id;
}

static void on_resume_timer(uv_timer_t *h)
{
    struct node *n = h->data;
    if (n->snap_in != NULL) {
        transport_snapshot_resume(n->snap_in);
    }
}

static void on_snap(void *owner, struct transport_snap_in *in, uint64_t from,
                    enum transport_snap_event ev, const uint8_t *data,
                    size_t len, int status)
{
    struct node *n = owner;
    (void)from;
    switch (ev) {
    case TRANSPORT_SNAP_BEGIN:
        n->snap_begin++;
        n->snap_in_progress = true;
        n->snap_bytes = 0;
        n->snap_crc = 0;
        n->snap_meta_len = len < sizeof(n->snap_meta) ? len : 0;
        memcpy(n->snap_meta, data, n->snap_meta_len);
        n->snap_in = in;
        break;
    case TRANSPORT_SNAP_CHUNK:
        n->snap_chunks++;
        n->snap_bytes += len;
        n->snap_crc = crc32c(n->snap_crc, data, len);
        if (n->snap_pause_ms > 0) {
            /* Pretend the chunk goes to disk off the loop. */
            transport_snapshot_pause(in);
            uv_timer_start(&n->resume_timer, on_resume_timer, n->snap_pause_ms,
                           0);
        }
        break;
    case TRANSPORT_SNAP_END:
    case TRANSPORT_SNAP_ABORT:
        if (ev == TRANSPORT_SNAP_END) {
            n->snap_end++;
        } else {
            n->snap_abort++;
        }
        n->snap_status = status;
        n->snap_in_progress = false;
        n->snap_in = NULL;
        uv_timer_stop(&n->resume_timer);
        break;
    }
}

static void on_closed(struct transport *t)
{
    struct node *n = (struct node *)((char *)t - offsetof(struct node, t));
    n->close_calls++;
    n->open = false;
}

/* --- loop helpers ---------------------------------------------------- */

static void on_watchdog(uv_timer_t *h)
{
    struct fixture *fx = h->data;
    fx->timed_out = true;
}

/* Run loop passes until pred(arg) holds; false when the watchdog fired. */
static bool wait_for(struct fixture *fx, bool (*pred)(void *), void *arg,
                     unsigned ms)
{
    fx->timed_out = false;
    uv_timer_start(&fx->watchdog, on_watchdog, ms, 0);
    while (!pred(arg) && !fx->timed_out) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&fx->watchdog);
    return pred(arg);
}

struct ge {
    const uint64_t *v;
    uint64_t target;
};

static bool pred_ge(void *arg)
{
    struct ge *g = arg;
    return *g->v >= g->target;
}

static bool wait_ge(struct fixture *fx, const uint64_t *v, uint64_t target)
{
    struct ge g = {v, target};
    return wait_for(fx, pred_ge, &g, WAIT_MS);
}

static bool pred_int_ge(void *arg)
{
    const int *p = arg;
    return *p >= 1;
}

static bool wait_int(struct fixture *fx, const int *v)
{
    return wait_for(fx, pred_int_ge, (void *)v, WAIT_MS);
}

static bool pred_never(void *arg)
{
    (void)arg;
    return false;
}

/* Run the loop for about ms (conditions that must NOT happen). */
static void run_for(struct fixture *fx, unsigned ms)
{
    wait_for(fx, pred_never, NULL, ms);
}

/* --- nodes ----------------------------------------------------------- */

static void node_config(struct node *n, struct transport_config *cfg,
                        uint64_t cluster)
{
    transport_config_init(cfg);
    cfg->cluster_id = cluster;
    cfg->self_id = n->id;
    cfg->seed = n->id;
    cfg->owner = n;
    cfg->recv_cb = on_recv;
    cfg->snap_cb = on_snap;
    cfg->unreachable_cb = on_unreachable;
    cfg->accept_cb = on_accept;
    cfg->cluster_cb = on_cluster_learnt;
    cfg->backoff_min_ms = 10;
    cfg->backoff_max_ms = 100;
}

static int node_port(struct node *n)
{
    struct sockaddr_storage ss;
    assert_int_equal(transport_listen_addr(&n->t, &ss), 0);
    if (ss.ss_family == AF_INET6) {
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Start node i with cfg, listening on 127.0.0.1:port (0: any). */
static void node_start_cfg(struct fixture *fx, int i,
                           const struct transport_config *cfg, int port)
{
    struct node *n = &fx->n[i];
    char addr[64];
    assert_false(n->open);
    assert_int_equal(transport_init(&n->t, &fx->loop, cfg), 0);
    n->open = true;
    n->close_calls = 0;
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    assert_int_equal(transport_listen(&n->t, addr), 0);
    n->port = node_port(n);
    assert_true(n->port > 0);
}

static void node_start(struct fixture *fx, int i, uint64_t cluster)
{
    struct transport_config cfg;
    node_config(&fx->n[i], &cfg, cluster);
    node_start_cfg(fx, i, &cfg, 0);
}

static void addr_of(const struct node *n, char *buf, size_t len)
{
    snprintf(buf, len, "127.0.0.1:%d", n->port);
}

/* Make a and b peers of each other. */
static void link_nodes(struct node *a, struct node *b)
{
    char addr[64];
    addr_of(b, addr, sizeof(addr));
    assert_int_equal(transport_peer_add(&a->t, b->id, addr), 0);
    addr_of(a, addr, sizeof(addr));
    assert_int_equal(transport_peer_add(&b->t, a->id, addr), 0);
}

static bool pred_closed(void *arg)
{
    return ((struct node *)arg)->close_calls > 0;
}

static void node_stop(struct fixture *fx, int i)
{
    struct node *n = &fx->n[i];
    assert_true(n->open);
    transport_close(&n->t, on_closed);
    assert_true(wait_for(fx, pred_closed, n, WAIT_MS));
    assert_int_equal(n->close_calls, 1);
    assert_false(n->open);
}

static struct transport_peer_stats peer_stats(struct node *n, uint64_t id)
{
    struct transport_peer_stats st;
    assert_int_equal(transport_peer_stats(&n->t, id, &st), 0);
    return st;
}

struct conn_wait {
    struct node *n;
    uint64_t id;
};

static bool pred_connected(void *arg)
{
    struct conn_wait *w = arg;
    struct transport_peer_stats st;
    return transport_peer_stats(&w->n->t, w->id, &st) == 0 && st.connected;
}

static bool wait_for_connected(struct fixture *fx, struct node *n, uint64_t id)
{
    struct conn_wait w = {n, id};
    return wait_for(fx, pred_connected, &w, WAIT_MS);
}

/* A free port: bind port 0 with a throwaway handle, read it, close it. */
static void on_plain_closed(uv_handle_t *h)
{
    (void)h;
}

static int free_port(struct fixture *fx)
{
    uv_tcp_t s;
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_init(&fx->loop, &s), 0);
    assert_int_equal(uv_tcp_bind(&s, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_tcp_getsockname(&s, (struct sockaddr *)&ss, &len), 0);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    uv_close((uv_handle_t *)&s, on_plain_closed);
    uv_run(&fx->loop, UV_RUN_NOWAIT);
    return port;
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    assert_int_equal(uv_timer_init(&fx->loop, &fx->watchdog), 0);
    fx->watchdog.data = fx;
    for (int i = 0; i < NODES; i++) {
        fx->n[i].fx = fx;
        fx->n[i].id = (uint64_t)(i + 1);
        assert_int_equal(uv_timer_init(&fx->loop, &fx->n[i].resume_timer), 0);
        fx->n[i].resume_timer.data = &fx->n[i];
    }
    *state = fx;
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, on_plain_closed);
    }
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < NODES; i++) {
        if (fx->n[i].open) {
            node_stop(fx, i);
        }
    }
    /* What is left belongs to the test (timers, raw sockets), also when a
     * failed assertion left the test half way. */
    uv_walk(&fx->loop, close_any, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    /* Every handle of every transport is closed, or this fails. */
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
    return 0;
}

/* --- a periodic sender ----------------------------------------------- */

static void on_tick(uv_timer_t *h)
{
    struct ticker *tk = h->data;
    uint8_t buf[SMALL_MAX];
    size_t len = tk->stamped ? 24 : tk->len;
    memset(buf, 0xab, len);
    if (tk->stamped) {
        be64_put(buf, 0x5354414d50ull);
        be64_put(buf + 8, clock_mono_ns());
    }
    int rc = transport_send(&tk->from->t, tk->to, buf, len);
    if (rc == 0) {
        tk->sent++;
    } else if (rc == ERR_BUSY) {
        tk->busy++;
    } else {
        tk->other++;
    }
}

static void ticker_start(struct fixture *fx, struct ticker *tk,
                         struct node *from, uint64_t to, unsigned every_ms)
{
    tk->sent = tk->busy = tk->other = 0;
    tk->from = from;
    tk->to = to;
    if (tk->len == 0) {
        tk->len = 32;
    }
    assert_int_equal(uv_timer_init(&fx->loop, &tk->timer), 0);
    tk->timer.data = tk;
    uv_timer_start(&tk->timer, on_tick, every_ms, every_ms);
}

static void on_flag_closed(uv_handle_t *h)
{
    *(bool *)h->data = true;
}

/* Close a handle the test owns and wait, so its memory may go. */
static void close_wait(struct fixture *fx, uv_handle_t *h)
{
    bool done = false;
    h->data = &done;
    uv_close(h, on_flag_closed);
    while (!done) {
        uv_run(&fx->loop, UV_RUN_ONCE);
    }
}

static void ticker_stop(struct fixture *fx, struct ticker *tk)
{
    close_wait(fx, (uv_handle_t *)&tk->timer);
}

/* --- tests ----------------------------------------------------------- */

static void addresses_parse_ipv4_and_ipv6_literals(void **state)
{
    struct sockaddr_storage ss;
    (void)state;
    assert_int_equal(transport_addr_parse("127.0.0.1:2380", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 2380);
    assert_int_equal(transport_addr_parse("http://10.0.0.1:0", &ss), 0);
    /* https:// means TLS to transport_peer_add; the address is the same */
    assert_int_equal(transport_addr_parse("https://127.0.0.1:1", &ss), 0);
    assert_int_equal(transport_addr_parse("[::1]:2380", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(transport_addr_parse("[fe80::1]:65535", &ss), 0);
    static const char *const bad[] = {
        "",
        "127.0.0.1",
        "127.0.0.1:",
        "127.0.0.1:65536",
        "::1:2380",
        "[::1]2380",
        "[::1]:",
        "localhost:2380",
        "1.2.3:80",
        "127.0.0.1:-1",
        "127.0.0.1:8x",
        "[::1:2380",
        "ftp://127.0.0.1:1",
        "127.0.0.1:000001",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(transport_addr_parse(bad[i], &ss), ERR_INVALID);
    }
    assert_int_equal(transport_addr_parse(NULL, &ss), ERR_INVALID);
}

static void config_is_validated(void **state)
{
    struct fixture *fx = *state;
    struct transport_config cfg;
    struct transport t;
    node_config(&fx->n[0], &cfg, CLUSTER);
    cfg.self_id = 0;
    assert_int_equal(transport_init(&t, &fx->loop, &cfg), ERR_INVALID);
    node_config(&fx->n[0], &cfg, CLUSTER);
    cfg.queue_bytes_max = cfg.max_msg_bytes - 1;
    assert_int_equal(transport_init(&t, &fx->loop, &cfg), ERR_INVALID);
    node_config(&fx->n[0], &cfg, CLUSTER);
    cfg.max_msg_bytes = ((size_t)128 << 20) + 1; /* past the hard max */
    cfg.queue_bytes_max = (size_t)1 << 30;
    assert_int_equal(transport_init(&t, &fx->loop, &cfg), ERR_LIMIT);
    node_config(&fx->n[0], &cfg, CLUSTER);
    cfg.backoff_min_ms = 200;
    cfg.backoff_max_ms = 100;
    assert_int_equal(transport_init(&t, &fx->loop, &cfg), ERR_INVALID);
}

static void messages_arrive_in_order_and_intact(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    const size_t max = (size_t)4 << 20; /* LIMIT_RAFT_MSG_BYTES default */
    size_t sizes[260];
    size_t count = 0;
    static const size_t fixed[] = {0,     1,     2,     3,       7,       8,
                                   15,    16,    100,   1000,    4095,    4096,
                                   65535, 65536, 65537, 1 << 20, max - 1, max};
    struct prng r;
    prng_seed(&r, 42);
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        sizes[count++] = fixed[i];
    }
    while (count < 260) {
        sizes[count++] = (size_t)prng_below(&r, 20000);
    }
    node_start(fx, 0, CLUSTER);
    node_start(fx, 1, CLUSTER);
    link_nodes(a, b);
    assert_int_equal(a->t.cfg.max_msg_bytes, max);
    b->expect = sizes;
    b->expect_count = count;
    uint8_t *buf = malloc(max + 1);
    assert_non_null(buf);
    uint64_t total = 0;
    for (size_t k = 0; k < count; k++) {
        fill(buf, k, sizes[k]);
        assert_int_equal(transport_send(&a->t, b->id, buf, sizes[k]), 0);
        total += sizes[k];
    }
    /* One past the maximum is refused at the sender and not counted. */
    assert_int_equal(transport_send(&a->t, b->id, buf, max + 1), ERR_LIMIT);
    free(buf);
    assert_true(wait_ge(fx, &b->recv_count, count));
    run_for(fx, 20); /* nothing extra arrives */
    assert_int_equal(b->recv_count, count);
    assert_int_equal(b->bad_msgs, 0);
    assert_int_equal(b->recv_bytes, total);
    assert_int_equal(b->last_from, a->id);
    struct transport_peer_stats st = peer_stats(a, b->id);
    assert_int_equal(st.msgs_sent, count);
    assert_int_equal(st.bytes_sent, total);
    assert_int_equal(st.msgs_dropped, 0);
    assert_int_equal(st.msgs_queued, 0);
    assert_true(st.connected);
    assert_int_equal(st.connects, 1);
    st = peer_stats(b, a->id);
    assert_int_equal(st.msgs_received, count);
    assert_int_equal(st.bytes_received, total);
    /* b never sent anything to a, but peers are dialled when added. */
    assert_true(wait_for_connected(fx, b, a->id));
    st = peer_stats(b, a->id);
    assert_int_equal(st.msgs_sent, 0);
}

static void receiver_closes_connection_on_frame_past_its_max(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    struct transport_config cfg;
    static size_t sizes[] = {65536};
    uint8_t *buf = malloc(65537);
    assert_non_null(buf);
    node_start(fx, 0, CLUSTER); /* sends up to 4 MiB */
    node_config(b, &cfg, CLUSTER);
    cfg.max_msg_bytes = 65536; /* accepts up to 64 KiB */
    node_start_cfg(fx, 1, &cfg, 0);
    link_nodes(a, b);
    b->expect = sizes;
    b->expect_count = 1;
    fill(buf, 0, 65536);
    assert_int_equal(transport_send(&a->t, b->id, buf, 65536), 0);
    assert_true(wait_ge(fx, &b->recv_count, 1));
    assert_int_equal(transport_send(&a->t, b->id, buf, 65537), 0);
    struct transport_stats ts;
    const uint64_t *mal = &b->t.stats.frames_malformed;
    assert_true(wait_ge(fx, mal, 1));
    transport_stats(&b->t, &ts);
    assert_int_equal(ts.frames_malformed, 1);
    assert_int_equal(b->recv_count, 1); /* the big one never delivered */
    assert_int_equal(b->bad_msgs, 0);
    free(buf);
    /* a notices, backs off, reconnects; b keeps working. */
    b->expect = NULL;
    struct ticker *tk = &fx->tk;
    *tk = (struct ticker){.len = 100};
    ticker_start(fx, tk, a, b->id, 5);
    assert_true(wait_ge(fx, &b->recv_count, 5));
    ticker_stop(fx, tk);
    assert_true(wait_int(fx, &a->unreach_calls));
    assert_int_equal(peer_stats(a, b->id).connects, 2);
}

static void batching_writes_many_messages_per_write(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    struct transport_config cfg;
    enum { N = 20000, LEN = 100, PER_PASS = 250 };
    static size_t sizes[N];
    node_config(a, &cfg, CLUSTER);
    cfg.queue_msgs_max = 8192;
    node_start_cfg(fx, 0, &cfg, 0);
    node_start(fx, 1, CLUSTER);
    link_nodes(a, b);
    for (size_t k = 0; k < N; k++) {
        sizes[k] = LEN;
    }
    b->expect = sizes;
    b->expect_count = N;
    uint8_t buf[LEN];
    size_t k = 0;
    uint64_t t0 = clock_mono_ns();
    fx->timed_out = false;
    uv_timer_start(&fx->watchdog, on_watchdog, WAIT_MS, 0);
    while (b->recv_count < N && !fx->timed_out) {
        for (int i = 0; i < PER_PASS && k < N; i++, k++) {
            fill(buf, k, LEN);
            assert_int_equal(transport_send(&a->t, b->id, buf, LEN), 0);
        }
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    }
    uv_timer_stop(&fx->watchdog);
    uint64_t ns = clock_mono_ns() - t0;
    assert_int_equal(b->recv_count, N);
    assert_int_equal(b->bad_msgs, 0);
    struct transport_peer_stats st = peer_stats(a, b->id);
    assert_int_equal(st.msgs_sent, N);
    assert_int_equal(st.msgs_dropped, 0);
    print_message("# %d msgs of %d bytes in %" PRIu64 " writes, %.1f ms\n", N,
                  LEN, st.writes, (double)ns / 1e6);
    assert_true(st.writes > 0);
    assert_true(st.writes * 20 <= N); /* at least 20 messages per write */
}

static void full_queue_drops_when_peer_is_not_up(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0];
    struct transport_config cfg;
    char addr[64];
    uint8_t buf[1024] = {0};
    node_config(a, &cfg, CLUSTER);
    cfg.queue_msgs_max = 100;
    cfg.queue_bytes_max = (size_t)4 << 20;
    node_start_cfg(fx, 0, &cfg, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port(fx));
    assert_int_equal(transport_peer_add(&a->t, 9, addr), 0);
    int busy = 0;
    for (int i = 0; i < 1000; i++) {
        int rc = transport_send(&a->t, 9, buf, sizeof(buf));
        if (rc == ERR_BUSY) {
            busy++;
        } else {
            assert_int_equal(rc, 0);
        }
    }
    assert_int_equal(busy, 900);
    struct transport_peer_stats st = peer_stats(a, 9);
    assert_int_equal(st.msgs_dropped, 900);
    assert_int_equal(st.msgs_queued, 100);
    assert_int_equal(st.bytes_queued, 100 * sizeof(buf));
    /* The dial fails: reported once, the queue is dropped too. */
    assert_true(wait_int(fx, &a->unreach_calls));
    assert_int_equal(a->unreach_err, -ECONNREFUSED);
    st = peer_stats(a, 9);
    assert_int_equal(st.msgs_dropped, 1000);
    assert_int_equal(st.bytes_dropped, 1000 * sizeof(buf));
    assert_int_equal(st.msgs_queued, 0);
    assert_int_equal(st.msgs_sent, 0);
    assert_false(st.connected);
    assert_true(strstr(st.last_error, "refused") != NULL);
    /* A byte bound too: 8 KiB of queue takes eight 1 KiB messages. */
    transport_close(&a->t, on_closed);
    assert_true(wait_for(fx, pred_closed, a, WAIT_MS));
    node_config(a, &cfg, CLUSTER);
    cfg.max_msg_bytes = 8192;
    cfg.queue_bytes_max = 8192;
    node_start_cfg(fx, 0, &cfg, 0);
    assert_int_equal(transport_peer_add(&a->t, 9, addr), 0);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(transport_send(&a->t, 9, buf, sizeof(buf)), 0);
    }
    assert_int_equal(transport_send(&a->t, 9, buf, sizeof(buf)), ERR_BUSY);
    assert_int_equal(transport_send(&a->t, 9, buf, 0), 0); /* 0 bytes fit */
    assert_int_equal(peer_stats(a, 9).msgs_dropped, 1);
}

/* --- a raw peer built from the byte tables --------------------------- */

static void raw_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    struct raw *r = h->data;
    (void)sz;
    b->base = (char *)r->in + r->in_len;
    b->len = sizeof(r->in) - r->in_len;
    if (b->len == 0) {
        b->base = (char *)r->in; /* discard: only the start matters */
        b->len = sizeof(r->in);
        r->in_len = 0;
    }
}

static void raw_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

static void raw_send(struct raw *r, const void *p, size_t len)
{
    uv_buf_t b;
    assert_true(len <= sizeof(r->out));
    memcpy(r->out, p, len);
    b.base = (char *)r->out;
    b.len = len;
    assert_int_equal(
        uv_write(&r->wreq, (uv_stream_t *)&r->conn, &b, 1, raw_written), 0);
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct raw *r = s->data;
    (void)b;
    if (n < 0) {
        r->ended++;
        uv_read_stop(s);
        return;
    }
    r->in_len += (size_t)n;
    if (r->reply && r->in_len >= TRANSPORT_HELLO_BYTES && r->out_len == 0) {
        uint8_t rep[TRANSPORT_REPLY_BYTES] = {0x43, 0x52, 0x4E, 0x50,
                                              0,    1,    0,    0};
        be64_put(rep + 8, r->cluster);
        be64_put(rep + 16, r->self);
        r->out_len = sizeof(rep);
        raw_send(r, rep, sizeof(rep));
        if (r->stop) {
            uv_read_stop(s); /* the peer is up but never reads again */
        }
    }
}

static void raw_on_conn(uv_stream_t *srv, int status)
{
    struct raw *r = srv->data;
    assert_int_equal(status, 0);
    assert_false(r->conn_open);
    assert_int_equal(uv_tcp_init(&r->fx->loop, &r->conn), 0);
    r->conn.data = r;
    r->conn_open = true;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&r->conn), 0);
    r->accepted++;
    uv_read_start((uv_stream_t *)&r->conn, raw_alloc, raw_read);
}

static int raw_listen(struct fixture *fx, struct raw *r)
{
    struct sockaddr_in a;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    r->fx = fx;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_init(&fx->loop, &r->listener), 0);
    r->listener.data = r;
    assert_int_equal(uv_tcp_bind(&r->listener, (struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&r->listener, 8, raw_on_conn), 0);
    assert_int_equal(
        uv_tcp_getsockname(&r->listener, (struct sockaddr *)&ss, &len), 0);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void raw_close(struct raw *r, bool listener)
{
    if (r->conn_open) {
        close_wait(r->fx, (uv_handle_t *)&r->conn);
        r->conn_open = false;
    }
    if (listener) {
        close_wait(r->fx, (uv_handle_t *)&r->listener);
    }
}

static void raw_connected(uv_connect_t *req, int status)
{
    struct raw *r = req->data;
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&r->conn, raw_alloc, raw_read);
    uv_buf_t b;
    b.base = (char *)r->out;
    b.len = r->out_len;
    assert_int_equal(
        uv_write(&r->wreq, (uv_stream_t *)&r->conn, &b, 1, raw_written), 0);
}

/* Connect to port and write bytes (at most sizeof(out)) once connected. */
static void raw_dial(struct fixture *fx, struct raw *r, int port,
                     const void *bytes, size_t len)
{
    struct sockaddr_in a;
    memset(r, 0, sizeof(*r));
    r->fx = fx;
    assert_true(len <= sizeof(r->out));
    memcpy(r->out, bytes, len);
    r->out_len = len;
    uv_ip4_addr("127.0.0.1", port, &a);
    assert_int_equal(uv_tcp_init(&fx->loop, &r->conn), 0);
    r->conn.data = r;
    r->creq.data = r;
    r->conn_open = true;
    assert_int_equal(uv_tcp_connect(&r->creq, &r->conn, (struct sockaddr *)&a,
                                    raw_connected),
                     0);
}

static size_t hello(uint8_t *p, uint64_t cluster, uint64_t from, uint64_t to)
{
    memset(p, 0, TRANSPORT_HELLO_BYTES);
    be32_put(p, TRANSPORT_MAGIC);
    p[5] = 1; /* version */
    p[6] = 1; /* message channel */
    be64_put(p + 8, cluster);
    be64_put(p + 16, from);
    be64_put(p + 24, to);
    return TRANSPORT_HELLO_BYTES;
}

/* A frame header claiming len bytes; the CRC covers the 64 bytes we have. */
static size_t frame(uint8_t *p, uint32_t len, uint8_t type,
                    const uint8_t *payload, uint32_t crc_xor)
{
    be32_put(p, len);
    p[4] = type;
    p[5] = p[6] = p[7] = 0;
    be32_put(p + 8, crc32c(0, payload, len < 64 ? len : 64) ^ crc_xor);
    return TRANSPORT_FRAME_HEADER_BYTES;
}

static void full_queue_drops_when_peer_is_not_reading(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0];
    struct transport_config cfg;
    struct raw *r = &fx->raw;
    *r = (struct raw){
        .reply = true, .stop = true, .cluster = CLUSTER, .self = 9};
    char addr[64];
    enum { LEN = 65536 };
    const size_t qmax = (size_t)1 << 20;
    static uint8_t buf[LEN];
    node_config(a, &cfg, CLUSTER);
    cfg.queue_bytes_max = qmax;
    cfg.max_msg_bytes = LEN;
    cfg.write_stall_ms = 60000;
    node_start_cfg(fx, 0, &cfg, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", raw_listen(fx, r));
    assert_int_equal(transport_peer_add(&a->t, 9, addr), 0);
    /* Offer 64 KiB messages every pass until the queue pushes back. */
    uint64_t offered = 0, busy = 0, passes = 0;
    fx->timed_out = false;
    uv_timer_start(&fx->watchdog, on_watchdog, WAIT_MS, 0);
    while (busy < 200 && offered < 4000 && !fx->timed_out) {
        for (int i = 0; i < 8; i++) {
            int rc = transport_send(&a->t, 9, buf, LEN);
            offered++;
            busy += rc == ERR_BUSY;
            assert_true(rc == 0 || rc == ERR_BUSY);
        }
        struct transport_peer_stats st = peer_stats(a, 9);
        assert_true(st.bytes_queued <= qmax);
        passes++;
        uv_run(&fx->loop, UV_RUN_NOWAIT);
    }
    uv_timer_stop(&fx->watchdog);
    struct transport_peer_stats st = peer_stats(a, 9);
    print_message("# offered %" PRIu64 " x 64 KiB, %" PRIu64 " written "
                  "before the peer's buffers filled, %" PRIu64 " dropped\n",
                  offered, st.msgs_sent, st.msgs_dropped);
    assert_int_equal(r->accepted, 1);
    assert_true(st.connected);
    assert_int_equal(busy, 200);
    assert_int_equal(st.msgs_dropped, busy);
    assert_true(st.bytes_queued <= qmax);
    assert_true(st.msgs_sent + st.msgs_queued + st.msgs_dropped == offered);
    assert_int_equal(a->unreach_calls, 0);
    raw_close(r, true);
}

static void silent_peer_times_out_the_handshake(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0];
    struct transport_config cfg;
    struct raw *r = &fx->raw;
    *r = (struct raw){.reply = false};
    char addr[64];
    node_config(a, &cfg, CLUSTER);
    cfg.handshake_timeout_ms = 100;
    node_start_cfg(fx, 0, &cfg, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", raw_listen(fx, r));
    assert_int_equal(transport_peer_add(&a->t, 9, addr), 0);
    assert_int_equal(transport_send(&a->t, 9, "x", 1), 0);
    assert_true(wait_int(fx, &a->unreach_calls));
    assert_int_equal(a->unreach_err, -ETIMEDOUT);
    assert_int_equal(peer_stats(a, 9).msgs_dropped, 1);
    assert_int_equal(peer_stats(a, 9).connect_failures, 1);
    raw_close(r, true);
}

static void reconnects_after_receiver_restarts(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    struct transport_config cfg;
    node_start(fx, 0, CLUSTER);
    node_start(fx, 1, CLUSTER);
    link_nodes(a, b);
    int port = b->port;
    struct ticker *tk = &fx->tk;
    *tk = (struct ticker){.len = 64};
    ticker_start(fx, tk, a, b->id, 5);
    assert_true(wait_ge(fx, &b->recv_count, 3));
    node_stop(fx, 1);
    assert_true(wait_int(fx, &a->unreach_calls)); /* lost, then refused */
    assert_false(peer_stats(a, b->id).connected);
    run_for(fx, 100); /* a keeps trying (and dropping) while b is down */
    assert_true(peer_stats(a, b->id).connect_failures >= 1);
    /* b comes back on the same port. */
    b->recv_count = 0;
    node_config(b, &cfg, CLUSTER);
    node_start_cfg(fx, 1, &cfg, port);
    assert_int_equal(b->port, port);
    assert_true(wait_ge(fx, &b->recv_count, 3));
    ticker_stop(fx, tk);
    struct transport_peer_stats st = peer_stats(a, b->id);
    assert_true(st.connected);
    assert_int_equal(st.connects, 2);
    assert_true(st.msgs_dropped > 0); /* sent while b was down */
    assert_int_equal(tk->other, 0);
}

static bool log_contains(FILE *f, const char *needle)
{
    char line[LOG_LINE_MAX + 2];
    bool found = false;
    fflush(f);
    rewind(f);
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        found = strstr(line, needle) != NULL;
    }
    fseek(f, 0, SEEK_END);
    return found;
}

static void other_cluster_and_removed_members_are_refused(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1], *c = &fx->n[2];
    char addr[64];
    FILE *logf = tmpfile();
    assert_non_null(logf);
    log_setup(LOG_INFO, LOG_FORMAT_TEXT, logf);
    node_start(fx, 0, 0xaaaa); /* a: another cluster */
    node_start(fx, 1, 0xbbbb);
    node_start(fx, 2, 0xbbbb);
    link_nodes(a, b);
    link_nodes(c, b);
    b->refuse_id = c->id; /* c was removed: b's node says no */
    assert_int_equal(transport_send(&a->t, b->id, "hi", 2), 0);
    assert_int_equal(transport_send(&c->t, b->id, "hi", 2), 0);
    assert_true(wait_int(fx, &a->unreach_calls));
    assert_true(wait_int(fx, &c->unreach_calls));
    assert_int_equal(a->unreach_err, -EACCES);
    assert_int_equal(c->unreach_err, -EACCES);
    struct transport_peer_stats st = peer_stats(a, b->id);
    assert_true(strstr(st.last_error, "cluster ID mismatch") != NULL);
    assert_false(st.connected);
    st = peer_stats(c, b->id);
    assert_true(strstr(st.last_error, "member not found") != NULL);
    assert_int_equal(b->recv_count, 0);
    struct transport_stats ts;
    transport_stats(&b->t, &ts);
    assert_int_equal(ts.conns_refused, 2);
    /* Both sides told the operator why. */
    assert_true(log_contains(logf, "refused our connection: cluster ID "
                                   "mismatch: this member is in cluster "
                                   "000000000000bbbb, the caller in "
                                   "000000000000aaaa"));
    assert_true(log_contains(logf, "refused peer connection from"));
    /* A dialler that reached the wrong member is refused too. */
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", b->port);
    assert_int_equal(transport_peer_add(&c->t, 7, addr), 0);
    assert_int_equal(transport_send(&c->t, 7, "hi", 2), 0);
    c->unreach_calls = 0;
    assert_true(wait_int(fx, &c->unreach_calls));
    assert_true(strstr(peer_stats(c, 7).last_error, "member ID mismatch") !=
                NULL);
    log_setup(LOG_WARN, LOG_FORMAT_TEXT, NULL);
    fclose(logf);
}

/* A member joining a running cluster starts with cluster id 0. When a
 * member dials it before it dials out (the leader sends as soon as the
 * member is added), it learns the id from that hello, if it knows the
 * caller, and then refuses callers of any other cluster. */
static void joining_member_learns_the_id_from_a_caller(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1], *c = &fx->n[2];
    struct node *d = &fx->n[3];
    node_start(fx, 0, 0xbbbb); /* a: a member of the running cluster */
    node_start(fx, 1, 0);      /* b: joining, id not learnt */
    node_start(fx, 2, 0xbbbb); /* c: the same cluster, but b refuses it */
    char addr[64];
    addr_of(b, addr, sizeof(addr)); /* b dials nobody yet */
    b->refuse_id = c->id;
    assert_int_equal(transport_peer_add(&c->t, b->id, addr), 0);
    assert_int_equal(transport_send(&c->t, b->id, "no", 2), 0);
    assert_true(wait_int(fx, &c->unreach_calls));
    assert_int_equal(c->unreach_err, -EACCES);
    assert_int_equal(b->learnt_calls, 0); /* a refused caller teaches nothing */
    assert_int_equal(transport_peer_add(&a->t, b->id, addr), 0);
    assert_int_equal(transport_send(&a->t, b->id, "hi", 2), 0);
    assert_true(wait_ge(fx, &b->recv_count, 1));
    assert_int_equal(b->learnt_calls, 1);
    assert_int_equal(b->learnt_id, 0xbbbb);
    assert_int_equal(a->unreach_calls, 0);
    /* b answers on its own with the learnt id, */
    addr_of(a, addr, sizeof(addr));
    assert_int_equal(transport_peer_add(&b->t, a->id, addr), 0);
    assert_int_equal(transport_send(&b->t, a->id, "back", 4), 0);
    assert_true(wait_ge(fx, &a->recv_count, 1));
    assert_int_equal(b->learnt_calls, 1);
    /* and now refuses another cluster's caller it would know by id. */
    node_start(fx, 3, 0xaaaa);
    addr_of(b, addr, sizeof(addr));
    assert_int_equal(transport_peer_add(&d->t, b->id, addr), 0);
    assert_int_equal(transport_send(&d->t, b->id, "no", 2), 0);
    assert_true(wait_int(fx, &d->unreach_calls));
    assert_true(
        strstr(peer_stats(d, b->id).last_error, "cluster ID mismatch") != NULL);
    assert_int_equal(b->learnt_calls, 1);
    assert_int_equal(b->recv_count, 1);
}

/* --- snapshots ------------------------------------------------------- */

struct snap_done {
    int calls;
    int status;
};

static void on_snap_done(void *arg, uint64_t to, int status)
{
    struct snap_done *d = arg;
    (void)to;
    d->calls++;
    d->status = status;
}

/* A temp file of len pseudo-random bytes; returns its fd and CRC. */
static int temp_file(size_t len, uint32_t *crc)
{
    char path[] = "/tmp/cairn-transport-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    struct prng r;
    prng_seed(&r, len);
    uint8_t *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)prng_next(&r);
    }
    assert_int_equal(write(fd, p, len), (ssize_t)len);
    *crc = crc32c(0, p, len);
    free(p);
    return fd;
}

static void snapshot_does_not_delay_messages(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    struct transport_config cfg;
    const size_t len = (size_t)6 << 20, chunk = (size_t)256 << 10;
    uint32_t crc;
    int fd = temp_file(len, &crc);
    node_config(a, &cfg, CLUSTER);
    cfg.snapshot_chunk_bytes = chunk;
    node_start_cfg(fx, 0, &cfg, 0);
    node_config(b, &cfg, CLUSTER);
    cfg.snapshot_chunk_bytes = chunk;
    node_start_cfg(fx, 1, &cfg, 0);
    link_nodes(a, b);
    b->snap_pause_ms = 8; /* 24 chunks: the stream takes 200 ms or more */
    struct snap_done d = {0};
    uint64_t t0 = clock_mono_ns();
    assert_int_equal(transport_send_snapshot(&a->t, b->id, "meta!", 5, fd, 0,
                                             len, on_snap_done, &d),
                     0);
    assert_int_equal(transport_send_snapshot(&a->t, b->id, "x", 1, fd, 0, len,
                                             on_snap_done, &d),
                     ERR_BUSY);
    struct ticker *tk = &fx->tk;
    *tk = (struct ticker){.stamped = true};
    ticker_start(fx, tk, a, b->id, 2);
    assert_true(wait_int(fx, &d.calls));
    uint64_t ms = (clock_mono_ns() - t0) / 1000000;
    ticker_stop(fx, tk);
    print_message("# %zu MB snapshot in %" PRIu64 " ms; %" PRIu64
                  " messages arrived during it, worst latency %.2f ms\n",
                  len >> 20, ms, b->stamped_during_snap,
                  (double)b->stamped_max_latency_ns / 1e6);
    assert_int_equal(d.calls, 1);
    assert_int_equal(d.status, 0);
    assert_int_equal(b->snap_begin, 1);
    assert_int_equal(b->snap_end, 1);
    assert_int_equal(b->snap_abort, 0);
    assert_int_equal(b->snap_chunks, (int)(len / chunk));
    assert_int_equal(b->snap_bytes, len);
    assert_int_equal(b->snap_crc, crc);
    assert_int_equal(b->snap_meta_len, 5);
    assert_memory_equal(b->snap_meta, "meta!", 5);
    /* Messages kept flowing while the stream was paused and resumed. */
    assert_true(b->stamped_during_snap >= 10);
    assert_true(b->stamped_max_latency_ns < (uint64_t)ms * 1000000 / 2);
    assert_int_equal(peer_stats(a, b->id).snapshots_sent, 1);
    assert_int_equal(peer_stats(b, a->id).snapshots_received, 1);
    assert_int_equal(peer_stats(a, b->id).msgs_dropped, 0);
    close(fd);
}

static void short_snapshot_file_fails_the_send(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    uint32_t crc;
    int fd = temp_file(1000, &crc);
    node_start(fx, 0, CLUSTER);
    node_start(fx, 1, CLUSTER);
    link_nodes(a, b);
    struct snap_done d = {0};
    /* Claims 2000 bytes; the file has 1000. */
    assert_int_equal(transport_send_snapshot(&a->t, b->id, NULL, 0, fd, 0, 2000,
                                             on_snap_done, &d),
                     0);
    assert_true(wait_int(fx, &d.calls));
    assert_int_equal(d.status, ERR_TRUNCATED);
    assert_true(wait_int(fx, &b->snap_abort));
    assert_int_equal(b->snap_end, 0);
    assert_int_equal(b->snap_bytes, 1000);
    /* An empty snapshot works, and the peer is free for the next one. */
    d.calls = 0;
    assert_int_equal(transport_send_snapshot(&a->t, b->id, "m", 1, fd, 0, 0,
                                             on_snap_done, &d),
                     0);
    assert_true(wait_int(fx, &d.calls));
    assert_int_equal(d.status, 0);
    assert_int_equal(b->snap_end, 1);
    run_for(fx, 10);
    assert_int_equal(d.calls, 1);
    close(fd);
}

static void garbage_closes_only_its_connection(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    struct transport_config cfg;
    uint8_t bytes[256];
    uint8_t payload[64];
    struct raw *r = &fx->raw;
    node_start(fx, 0, CLUSTER);
    node_config(b, &cfg, CLUSTER);
    cfg.max_msg_bytes = 1000;
    node_start_cfg(fx, 1, &cfg, 0);
    link_nodes(a, b);
    memset(payload, 0x5a, sizeof(payload));
    /* 1: not our protocol at all. */
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_dial(fx, r, b->port, http, strlen(http));
    assert_true(wait_int(fx, &r->ended));
    raw_close(r, false);
    /* 2..5: a good hello, then a bad frame: too long, bad CRC, unknown
     * type, nonzero reserved byte. */
    for (int v = 0; v < 4; v++) {
        size_t n = hello(bytes, CLUSTER, 5, b->id);
        uint32_t len = v == 0 ? 1001 : sizeof(payload);
        n += frame(bytes + n, len, v == 2 ? 9 : TRANSPORT_FRAME_MSG, payload,
                   v == 1 ? 1 : 0);
        if (v == 3) {
            bytes[n - 7] = 1;
        }
        memcpy(bytes + n, payload, sizeof(payload));
        n += sizeof(payload);
        raw_dial(fx, r, b->port, bytes, n);
        assert_true(wait_int(fx, &r->ended));
        raw_close(r, false);
    }
    struct transport_stats ts;
    transport_stats(&b->t, &ts);
    assert_int_equal(ts.frames_malformed, 5);
    assert_int_equal(b->recv_count, 0);
    /* A good frame from a raw member that is not a peer: delivered. */
    size_t n = hello(bytes, CLUSTER, 5, b->id);
    n += frame(bytes + n, sizeof(payload), TRANSPORT_FRAME_MSG, payload, 0);
    memcpy(bytes + n, payload, sizeof(payload));
    n += sizeof(payload);
    raw_dial(fx, r, b->port, bytes, n);
    assert_true(wait_ge(fx, &b->recv_count, 1));
    assert_int_equal(b->last_from, 5);
    transport_stats(&b->t, &ts);
    assert_int_equal(ts.msgs_received_unknown, 1);
    raw_close(r, false);
    /* b still serves a. */
    assert_int_equal(transport_send(&a->t, b->id, "ok", 2), 0);
    assert_true(wait_ge(fx, &b->recv_count, 2));
    assert_int_equal(b->last_from, a->id);
    assert_true(wait_ge(fx, &b->t.stats.conns_accepted, 7));
}

static void close_with_pending_work_runs_every_callback_once(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1], *c = &fx->n[2];
    struct transport_config cfg;
    uint32_t crc;
    char addr[64];
    uint8_t buf[1000] = {0};
    int fd = temp_file((size_t)4 << 20, &crc);
    node_config(a, &cfg, CLUSTER);
    cfg.snapshot_chunk_bytes = (size_t)64 << 10;
    node_start_cfg(fx, 0, &cfg, 0);
    node_start(fx, 1, CLUSTER);
    node_start(fx, 2, CLUSTER);
    link_nodes(a, b);
    link_nodes(a, c);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port(fx));
    assert_int_equal(transport_peer_add(&a->t, 9, addr), 0);
    b->snap_pause_ms = 50; /* keeps the stream open */
    struct snap_done db = {0}, dc = {0}, d9 = {0};
    assert_int_equal(transport_send_snapshot(&a->t, b->id, "m", 1, fd, 0,
                                             (size_t)4 << 20, on_snap_done,
                                             &db),
                     0);
    assert_true(wait_int(fx, &b->snap_begin));
    assert_int_equal(transport_send_snapshot(&a->t, c->id, "m", 1, fd, 0,
                                             (size_t)4 << 20, on_snap_done,
                                             &dc),
                     0);
    assert_int_equal(transport_send_snapshot(&a->t, 9, "m", 1, fd, 0, 100,
                                             on_snap_done, &d9),
                     0);
    for (int i = 0; i < 500; i++) {
        transport_send(&a->t, b->id, buf, sizeof(buf));
        transport_send(&a->t, c->id, buf, sizeof(buf));
        transport_send(&a->t, 9, buf, sizeof(buf));
    }
    int unreach_before = a->unreach_calls; /* peer 9's eager dial */
    transport_close(&a->t, on_closed);
    /* Nothing runs from inside transport_close; every call after it fails. */
    assert_int_equal(db.calls + dc.calls + d9.calls, 0);
    assert_int_equal(a->close_calls, 0);
    assert_int_equal(transport_send(&a->t, b->id, buf, 1), -ESHUTDOWN);
    assert_int_equal(transport_peer_add(&a->t, 12, addr), -ESHUTDOWN);
    assert_true(wait_for(fx, pred_closed, a, WAIT_MS));
    assert_int_equal(db.calls, 1);
    assert_int_equal(dc.calls, 1);
    assert_int_equal(d9.calls, 1);
    assert_int_equal(db.status, ERR_CANCELED);
    assert_int_equal(dc.status, ERR_CANCELED);
    assert_int_equal(d9.status, ERR_CANCELED);
    assert_int_equal(a->unreach_calls, unreach_before);
    /* b saw its stream cut: exactly one ABORT, no END. */
    assert_true(wait_int(fx, &b->snap_abort));
    assert_int_equal(b->snap_abort, 1);
    assert_int_equal(b->snap_end, 0);
    run_for(fx, 20);
    assert_int_equal(db.calls + dc.calls + d9.calls, 3);
    assert_int_equal(a->close_calls, 1);
    close(fd);
}

static void receiver_close_aborts_its_stream_and_fails_the_sender(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    uint32_t crc;
    int fd = temp_file((size_t)2 << 20, &crc);
    node_start(fx, 0, CLUSTER);
    node_start(fx, 1, CLUSTER);
    link_nodes(a, b);
    b->snap_pause_ms = 1000; /* paused on the first chunk */
    struct snap_done d = {0};
    assert_int_equal(transport_send_snapshot(&a->t, b->id, "m", 1, fd, 0,
                                             (size_t)2 << 20, on_snap_done, &d),
                     0);
    assert_true(wait_int(fx, &b->snap_chunks));
    transport_close(&b->t, on_closed);
    assert_true(wait_for(fx, pred_closed, b, WAIT_MS));
    assert_int_equal(b->snap_abort, 1);
    assert_int_equal(b->snap_status, ERR_CANCELED);
    assert_true(wait_int(fx, &d.calls));
    assert_true(d.status < 0);
    assert_true(d.status != ERR_CANCELED);
    run_for(fx, 10);
    assert_int_equal(d.calls, 1);
    /* Removing a peer cancels its snapshot. */
    node_start(fx, 1, CLUSTER);
    char addr[64];
    addr_of(b, addr, sizeof(addr));
    assert_int_equal(transport_peer_update(&a->t, b->id, addr), 0);
    d.calls = 0;
    assert_int_equal(transport_send_snapshot(&a->t, b->id, "m", 1, fd, 0,
                                             (size_t)2 << 20, on_snap_done, &d),
                     0);
    assert_int_equal(transport_peer_remove(&a->t, b->id), 0);
    assert_true(wait_int(fx, &d.calls));
    assert_int_equal(d.status, ERR_CANCELED);
    close(fd);
}

static void peers_can_be_updated_and_removed(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    char addr[64];
    node_start(fx, 0, CLUSTER);
    node_start(fx, 1, CLUSTER);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", free_port(fx));
    assert_int_equal(transport_peer_add(&a->t, b->id, addr), 0);
    assert_int_equal(transport_peer_add(&a->t, b->id, addr), ERR_EXISTS);
    assert_int_equal(transport_peer_add(&a->t, a->id, addr), ERR_INVALID);
    assert_int_equal(transport_peer_add(&a->t, 0, addr), ERR_INVALID);
    assert_int_equal(transport_peer_add(&a->t, 5, "nowhere"), ERR_INVALID);
    assert_int_equal(transport_send(&a->t, b->id, "1", 1), 0);
    assert_true(wait_int(fx, &a->unreach_calls));
    addr_of(b, addr, sizeof(addr));
    assert_int_equal(transport_peer_update(&a->t, b->id, addr), 0);
    assert_int_equal(transport_peer_update(&a->t, 77, addr), ERR_NOT_FOUND);
    assert_int_equal(transport_send(&a->t, b->id, "2", 1), 0);
    assert_true(wait_ge(fx, &b->recv_count, 1));
    assert_int_equal(transport_peer_remove(&a->t, b->id), 0);
    assert_int_equal(transport_peer_remove(&a->t, b->id), ERR_NOT_FOUND);
    assert_int_equal(transport_send(&a->t, b->id, "3", 1), ERR_NOT_FOUND);
    struct transport_peer_stats st;
    assert_int_equal(transport_peer_stats(&a->t, b->id, &st), ERR_NOT_FOUND);
    /* b's inbound connection from a is closed once a forgets b. */
    struct transport_stats ts;
    transport_stats(&b->t, &ts);
    assert_int_equal(ts.conns_in_open, 1);
    run_for(fx, 20);
    transport_stats(&b->t, &ts);
    assert_int_equal(ts.conns_in_open, 0);
    /* peers_max is a bound. */
    for (uint64_t id = 100; id < 100 + 64; id++) {
        assert_int_equal(transport_peer_add(&a->t, id, addr), 0);
    }
    assert_int_equal(transport_peer_add(&a->t, 500, addr), ERR_LIMIT);
}

static void removing_a_member_cuts_its_incoming_connection(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    node_start(fx, 0, CLUSTER);
    node_start(fx, 1, CLUSTER);
    link_nodes(a, b);
    assert_int_equal(transport_send(&a->t, b->id, "1", 1), 0);
    assert_true(wait_ge(fx, &b->recv_count, 1));
    /* b's node removes a: the peer goes, and the accept predicate says no. */
    b->refuse_id = a->id;
    assert_int_equal(transport_peer_remove(&b->t, a->id), 0);
    assert_true(wait_int(fx, &a->unreach_calls)); /* a's link was cut */
    struct ticker *tk = &fx->tk;
    *tk = (struct ticker){.len = 8};
    ticker_start(fx, tk, a, b->id, 5);
    run_for(fx, 100);
    ticker_stop(fx, tk);
    assert_int_equal(b->recv_count, 1);
    assert_true(tk->sent > 0);
    assert_true(strstr(peer_stats(a, b->id).last_error, "refused") != NULL);
    struct transport_stats ts;
    transport_stats(&b->t, &ts);
    assert_true(ts.conns_refused >= 1);
    /* A second listener on b's port fails cleanly. */
    struct transport_config cfg;
    char addr[64];
    node_config(&fx->n[2], &cfg, CLUSTER);
    assert_int_equal(transport_init(&fx->n[2].t, &fx->loop, &cfg), 0);
    fx->n[2].open = true;
    addr_of(b, addr, sizeof(addr));
    assert_int_equal(transport_listen(&fx->n[2].t, addr), -EADDRINUSE);
    assert_int_equal(
        transport_listen_addr(&fx->n[2].t, &(struct sockaddr_storage){0}),
        ERR_INVALID);
}

static void ipv6_loopback_carries_messages(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0], *b = &fx->n[1];
    struct transport_config cfg;
    char addr[64];
    node_config(b, &cfg, CLUSTER);
    assert_int_equal(transport_init(&b->t, &fx->loop, &cfg), 0);
    b->open = true;
    if (transport_listen(&b->t, "[::1]:0") != 0) {
        skip(); /* no IPv6 here; teardown closes b */
    }
    b->port = node_port(b);
    node_start(fx, 0, CLUSTER);
    snprintf(addr, sizeof(addr), "[::1]:%d", b->port);
    assert_int_equal(transport_peer_add(&a->t, b->id, addr), 0);
    assert_int_equal(transport_send(&a->t, b->id, "six", 3), 0);
    assert_true(wait_ge(fx, &b->recv_count, 1));
    assert_int_equal(b->last_from, a->id);
}

static void allocation_failures_are_errors(void **state)
{
    struct fixture *fx = *state;
    struct node *a = &fx->n[0];
    node_start(fx, 0, CLUSTER);
    mem_fail_after(1, 0);
    assert_int_equal(transport_peer_add(&a->t, 9, "127.0.0.1:1"), -ENOMEM);
    assert_int_equal(transport_peer_add(&a->t, 9, "127.0.0.1:1"), 0);
    mem_fail_after(1, 0);
    assert_int_equal(transport_send(&a->t, 9, "x", 1), -ENOMEM);
    mem_fail_after(0, 0);
    assert_int_equal(peer_stats(a, 9).msgs_dropped, 1);
    assert_int_equal(peer_stats(a, 9).msgs_queued, 0);
    /* Every allocation of a snapshot send, failed in turn. */
    uint32_t crc;
    int fd = temp_file(10, &crc);
    for (unsigned long k = 1; k <= 5; k++) {
        struct snap_done d = {0};
        mem_fail_after(k, 0);
        int rc = transport_send_snapshot(&a->t, 9, "m", 1, fd, 0, 10,
                                         on_snap_done, &d);
        mem_fail_after(0, 0);
        if (rc == 0) {
            assert_true(wait_int(fx, &d.calls));
        } else {
            assert_int_equal(rc, -ENOMEM);
            run_for(fx, 5);
            assert_int_equal(d.calls, 0);
        }
    }
    close(fd);
}

int main(void)
{
    log_setup(LOG_WARN, LOG_FORMAT_TEXT, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses_parse_ipv4_and_ipv6_literals),
        cmocka_unit_test_setup_teardown(config_is_validated, setup, teardown),
        cmocka_unit_test_setup_teardown(messages_arrive_in_order_and_intact,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            receiver_closes_connection_on_frame_past_its_max, setup, teardown),
        cmocka_unit_test_setup_teardown(batching_writes_many_messages_per_write,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(full_queue_drops_when_peer_is_not_up,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            full_queue_drops_when_peer_is_not_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_peer_times_out_the_handshake,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(reconnects_after_receiver_restarts,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            other_cluster_and_removed_members_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(snapshot_does_not_delay_messages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(short_snapshot_file_fails_the_send,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(garbage_closes_only_its_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            close_with_pending_work_runs_every_callback_once, setup, teardown),
        cmocka_unit_test_setup_teardown(
            receiver_close_aborts_its_stream_and_fails_the_sender, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            joining_member_learns_the_id_from_a_caller, setup, teardown),
        cmocka_unit_test_setup_teardown(peers_can_be_updated_and_removed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            removing_a_member_cuts_its_incoming_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(ipv6_loopback_carries_messages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(allocation_failures_are_errors, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

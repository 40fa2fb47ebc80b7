/*
 * transport_int.h - private structures shared by the transport's files.
 *
 * transport.c       lifecycle, peers, the message queue and its flush,
 *                   stats, close.
 * transport_conn.c  connections: dial, accept, the handshake, reading and
 *                   validating frames, delivering them, and the two
 *                   functions through which every socket byte passes.
 * transport_snap.c  snapshot streams, both directions.
 * transport_wire.c  encoding and decoding of hello, reply and frame headers.
 * transport_tls.c   TLS between the socket and the rest (memory BIOs).
 *
 * Lifetimes. A peer, a connection and a snapshot send are each allocated on
 * their own and freed only after their libuv handles have closed (and, for
 * a snapshot, its file read has returned), so a callback from libuv always
 * finds its object alive. Links between them are cleared from both sides
 * when one goes away: conn->peer and snap->peer become NULL when the peer is
 * removed, peer->conn when the connection starts closing.
 */
#ifndef CAIRN_CONSENSUS_TRANSPORT_INT_H
#define CAIRN_CONSENSUS_TRANSPORT_INT_H

#include "consensus/transport/transport.h"

#define TR_LOG          "transport"
#define TR_RBUF_MIN     ((size_t)64 << 10)
#define TR_ADDR_TEXT    128
#define TR_CBUF_BYTES   (TRANSPORT_REPLY_BYTES + TRANSPORT_REASON_MAX)
#define TR_ATTEMPTS_MAX 20 /* backoff doubling stops here (no overflow) */

/* One queued message: the frame header and the payload, contiguous. */
struct tr_qmsg {
    struct tr_qmsg *next;
    size_t payload_len;
    uint8_t frame[]; /* TRANSPORT_FRAME_HEADER_BYTES + payload_len */
};

struct transport__peer {
    struct transport *t;
    struct transport__peer *next;
    uint64_t id;
    struct sockaddr_storage addr;
    char addr_text[TR_ADDR_TEXT];
    bool tls;                    /* added with an https:// address */
    char tls_name[TR_ADDR_TEXT]; /* "": check the dialled IP */
    uv_timer_t backoff;
    bool backoff_active;
    bool dial_soon; /* dial without waiting for a message (peer added) */
    unsigned attempts;
    struct transport__conn *conn;      /* outgoing message connection */
    struct transport__snap_send *snap; /* snapshot being sent */
    struct tr_qmsg *q_head, *q_tail;   /* waiting to be written */
    size_t q_msgs, q_bytes;
    size_t fl_msgs, fl_bytes; /* inside a pending uv_write */
    struct transport_peer_stats st;
};

enum tr_conn_kind {
    TR_CONN_OUT_MSG = 1,
    TR_CONN_OUT_SNAP = 2,
    TR_CONN_IN = 3,
};

enum tr_conn_state {
    TR_DIALING = 1, /* outgoing: TCP connect pending */
    TR_HELLO = 2,   /* waiting for the hello (in) or the reply (out) */
    TR_READY = 3,   /* frames flow */
    TR_DONE = 4,    /* incoming snapshot: END seen, ACK being written */
    TR_CLOSING = 5,
};

struct transport__conn {
    struct transport *t;
    struct transport__conn *next, *prev;
    enum tr_conn_kind kind;
    enum tr_conn_state state;
    uint8_t channel;
    int handles;     /* open libuv handles of this connection */
    int err;         /* why it closed (first reason wins) */
    bool reason_set; /* peer->st.last_error already says why it failed */
    uv_tcp_t tcp;
    uv_timer_t timer;   /* handshake, write stall, snapshot stall, resume */
    struct ssl_st *ssl; /* NULL: plain TCP (transport_tls.c) */
    bool tls_up;        /* the TLS handshake finished */
    bool tls_want;      /* dialling: the peer's address was https:// */
    struct tr_san_check *san; /* a DNS SAN lookup in flight, or NULL */
    uv_connect_t connect_req;
    struct transport__peer *peer; /* may be NULL (see transport_int.h) */
    uint64_t peer_id;
    char remote[TR_ADDR_TEXT];
    /* reading: bytes [roff, rlen) of rbuf are unparsed */
    uint8_t *rbuf;
    size_t roff, rlen, rcap;
    bool reading;
    bool paused;
    /* control writes: hello, reply, snapshot ACK */
    uv_write_t cwreq;
    uint8_t cbuf[TR_CBUF_BYTES];
    bool cwriting;
    bool close_after_cwrite;
    /* message batch (outgoing message connection) */
    uv_write_t wreq;
    uv_buf_t *bufs;
    struct tr_qmsg *batch;
    size_t batch_msgs, batch_bytes;
    bool writing;
    /* snapshot */
    struct transport__snap_send *snap; /* outgoing snapshot connection */
    bool rx_begun, rx_ended;           /* incoming snapshot stream */
    uint64_t rx_bytes;
    uint32_t rx_crc;
};

struct transport__snap_send {
    struct transport *t;
    struct transport__peer *peer;
    struct transport__conn *conn;
    uint64_t to;
    uv_file fd;
    int64_t offset;
    uint64_t len, sent;
    uint32_t crc;
    uint8_t *meta; /* frame header + metadata */
    size_t meta_len;
    uint8_t *chunk; /* frame header + snapshot_chunk_bytes */
    uint8_t end[TRANSPORT_FRAME_HEADER_BYTES + TRANSPORT_SNAP_END_BYTES];
    uv_write_t wreq;
    uv_fs_t fs;
    bool fs_busy;
    bool end_sent;
    bool silent; /* the call failed: release without running done */
    int status;  /* 1 while undecided */
    transport_send_snapshot_done_cb done;
    void *arg;
};

/* Decoded wire structures (transport_wire.c). */
struct tr_hello {
    uint32_t magic;
    uint16_t version;
    uint8_t channel, flags;
    uint64_t cluster_id, from, to;
};

struct tr_reply {
    uint32_t magic;
    uint16_t version;
    uint8_t status, reason_len;
    uint64_t cluster_id, member_id;
};

struct tr_frame_hdr {
    uint32_t len;
    uint8_t type;
    uint8_t reserved[3];
    uint32_t crc;
};

void tr__hello_encode(uint8_t *p, const struct tr_hello *h);
void tr__hello_decode(const uint8_t *p, struct tr_hello *h);
void tr__reply_encode(uint8_t *p, const struct tr_reply *r);
void tr__reply_decode(const uint8_t *p, struct tr_reply *r);
void tr__frame_encode(uint8_t *p, uint8_t type, const uint8_t *payload,
                      size_t len);
void tr__frame_decode(const uint8_t *p, struct tr_frame_hdr *h);

/* transport.c */
struct transport__peer *tr__peer_find(const struct transport *t, uint64_t id);
void tr__flush_arm(struct transport *t);
void tr__peer_ready(struct transport__peer *p);
void tr__peer_conn_failed(struct transport__conn *c, int err);
void tr__peer_alive(struct transport__peer *p);
void tr__peer_set_error(struct transport__peer *p, const char *text);
void tr__handle_closed(struct transport *t);
void tr__maybe_finish_close(struct transport *t);

/* transport_conn.c */
int tr__conn_new(struct transport *t, enum tr_conn_kind kind,
                 struct transport__conn **out);
int tr__conn_dial(struct transport__conn *c, const struct sockaddr *addr);
void tr__conn_close(struct transport__conn *c, int err);
void tr__conn_write_batch(struct transport__conn *c);
int tr__io_write(struct transport__conn *c, uv_write_t *req,
                 const uv_buf_t *bufs, unsigned n, uv_write_cb cb);
void tr__on_connection(uv_stream_t *server, int status);
void tr__conn_consume(struct transport__conn *c);
void tr__conn_read_start(struct transport__conn *c);
void tr__conn_read_stop(struct transport__conn *c);
void tr__conn_malformed(struct transport__conn *c, const char *why);
void tr__conn_kick(struct transport__conn *c);
void tr__conn_timer_start(struct transport__conn *c, uint64_t ms);
void tr__conn_write_control_frame(struct transport__conn *c, uint8_t type,
                                  const uint8_t *payload, size_t len,
                                  bool close_after);

void tr__conn_fail(struct transport__conn *c, int err);
void tr__conn_out_hello(struct transport__conn *c);
size_t tr__rbuf_reserve(struct transport__conn *c);

/* transport_tls.c */
#define TR_TLS_RBUF_BYTES ((size_t)16 << 10) /* ciphertext per socket read */
int tr__tls_ctx_ref(struct transport *t);
void tr__tls_ctx_unref(struct transport *t);
int tr__tls_start(struct transport__conn *c, bool dialer);
void tr__tls_free(struct transport__conn *c);
void tr__tls_on_read(struct transport__conn *c, const uint8_t *p, size_t len);
void tr__tls_pump(struct transport__conn *c);
int tr__tls_write(struct transport__conn *c, uv_write_t *req,
                  const uv_buf_t *bufs, unsigned n, uv_write_cb cb);

/* transport_snap.c */
void tr__snap_out_ready(struct transport__conn *c);
void tr__snap_out_frame(struct transport__conn *c, uint8_t type,
                        const uint8_t *payload, size_t len);
void tr__snap_out_failed(struct transport__conn *c, int err);
void tr__snap_out_conn_gone(struct transport__conn *c);
void tr__snap_cancel(struct transport__snap_send *s);
void tr__snap_in_frame(struct transport__conn *c, uint8_t type,
                       const uint8_t *payload, size_t len);
void tr__snap_in_gone(struct transport__conn *c);
bool tr__frame_allowed(const struct transport__conn *c, uint8_t type,
                       uint32_t len);

#endif

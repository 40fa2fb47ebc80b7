/*
 * transport.h - the peer transport: opaque Raft messages and snapshot streams
 * between cluster members over TCP (the peer port, 2380).
 *
 * Does:     moves opaque, framed messages from this member to other members
 *           by member id, on a libuv loop: one lazily dialled outgoing
 *           connection per peer for messages (batched writes, bounded queue,
 *           reconnect with capped exponential backoff and jitter), and a
 *           separate connection per snapshot transfer so heartbeats never wait
 *           behind snapshot chunks. Incoming frames go to owner callbacks.
 * Owns:     its sockets, timers and queued message copies. The caller
 *           allocates struct transport; its memory may be reused only after
 *           the close callback of transport_close() has run.
 * Threads:  every function runs on the loop's thread, never inside another
 *           thread. Callbacks run on that thread, never from inside a call
 *           into this API (the owner may call back into the API from them).
 * Borrowed: received bytes are valid for the duration of the callback
 *           (snapshot chunks: until transport_snapshot_resume() when the
 *           callback paused the stream). Message bytes passed to send are
 *           copied. The snapshot fd is borrowed until its done callback.
 * Errors:   0 or negative codes: -errno (OS and libuv, which uses -errno on
 *           Unix), ERR_INVALID, ERR_LIMIT, ERR_BUSY, ERR_NOT_FOUND,
 *           ERR_EXISTS, -ENOMEM, -ESHUTDOWN once transport_close() began.
 *           Failures reported to callbacks: -ECONNREFUSED and friends from
 *           the OS, -EACCES when a peer refused our handshake (its reason is
 *           logged and kept in the peer stats), -EPROTO for malformed peer
 *           bytes and a failed TLS handshake or record (OpenSSL's reason
 *           logged and kept in the peer stats), -ETIMEDOUT for stalls,
 *           ERR_CORRUPT for a snapshot whose checksum failed, ERR_CANCELED
 *           when the transport closes first.
 * Limits:   message bytes (max_msg_bytes, LIMIT_RAFT_MSG_BYTES), snapshot
 *           chunk bytes (LIMIT_SNAPSHOT_CHUNK_BYTES), messages and bytes
 *           queued per peer, peers, incoming connections, handshake and write
 *           stall timeouts: all in struct transport_config. Each connection
 *           holds a 64 KiB read buffer that grows to one maximal frame only
 *           while such a frame arrives; a snapshot send holds one chunk.
 *           With TLS (tls_server_ctx, tls_client_ctx): one SSL with memory
 *           BIOs per connection, its record buffers, and one ciphertext
 *           buffer per pending write (each as big as the plaintext write
 *           that made it, so bounded by the same limits).
 * Not here: message encoding (the Raft core owns it), deciding which members
 *           may talk to us (the node, through accept_cb), DNS names (the
 *           caller resolves; addresses are IP literals), loading
 *           certificates and keys (the caller builds the SSL_CTXs from the
 *           --peer-* flags; transport_tls.c only runs the handshake and the
 *           records, as the file's top comment says).
 */
#ifndef CAIRN_CONSENSUS_TRANSPORT_H
#define CAIRN_CONSENSUS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "base/prng.h"

/*
 * Wire format, version 1. All integers big-endian.
 *
 * Every connection is opened by the dialling member, which sends a hello;
 * the accepting member answers with a reply and, when it refuses, closes.
 * Frames flow after an accepting reply. A message connection carries frames
 * one way only (dialler -> acceptor), so each pair of members uses two
 * connections, one per direction.
 *
 * Hello (dialler -> acceptor), TRANSPORT_HELLO_BYTES = 32:
 *   off size field
 *     0    4 magic 0x43524E50 ("CRNP")
 *     4    2 version (1)
 *     6    1 channel: 1 = messages, 2 = one snapshot stream
 *     7    1 flags, 0 (reserved; nonzero is refused)
 *     8    8 cluster id of the dialler
 *    16    8 member id of the dialler (nonzero)
 *    24    8 member id the dialler expects to reach
 *
 * Reply (acceptor -> dialler), TRANSPORT_REPLY_BYTES = 24 plus the reason:
 *     0    4 magic 0x43524E50
 *     4    2 version (1)
 *     6    1 status: 0 = accepted, 1 = refused
 *     7    1 reason length n (0..255; 0 when accepted)
 *     8    8 cluster id of the acceptor
 *    16    8 member id of the acceptor
 *    24    n reason, UTF-8 text for the operator, not NUL-terminated
 *
 * Frame, TRANSPORT_FRAME_HEADER_BYTES = 12 plus the payload:
 *     0    4 payload length
 *     4    1 type (below)
 *     5    3 reserved, 0
 *     8    4 CRC-32C of the payload (Castagnoli; 0 for an empty payload)
 *    12    . payload
 *
 * Frame types and where they may appear:
 *   1 MSG         message channel; one opaque Raft message, <= max_msg_bytes
 *   2 SNAP_BEGIN  snapshot channel, first frame: the snapshot's metadata
 *                 (opaque to us), <= max_msg_bytes
 *   3 SNAP_CHUNK  snapshot channel: data, <= snapshot_chunk_bytes
 *   4 SNAP_END    snapshot channel, last frame from the dialler, payload 12:
 *                 8 total data bytes, 4 CRC-32C over all data bytes in order
 *   5 SNAP_ACK    snapshot channel, acceptor -> dialler after END, payload 1:
 *                 0 = received intact, 1 = corrupt, 2 = refused
 *
 * Why a CRC when TCP has checksums: TCP's 16-bit sum misses some multi-bit
 * errors and says nothing about bugs in buffers on either side; CRC-32C runs
 * at memory speed with SSE4.2. The snapshot END checksum covers the stream.
 * A frame whose length, type, reserved bytes or CRC are wrong closes its
 * connection (logged); the member keeps running.
 */
#define TRANSPORT_MAGIC              0x43524E50u
#define TRANSPORT_VERSION            1
#define TRANSPORT_HELLO_BYTES        32
#define TRANSPORT_REPLY_BYTES        24
#define TRANSPORT_REASON_MAX         255
#define TRANSPORT_FRAME_HEADER_BYTES 12
#define TRANSPORT_SNAP_END_BYTES     12

enum transport_channel {
    TRANSPORT_CHANNEL_MSG = 1,
    TRANSPORT_CHANNEL_SNAP = 2,
};

enum transport_frame_type {
    TRANSPORT_FRAME_MSG = 1,
    TRANSPORT_FRAME_SNAP_BEGIN = 2,
    TRANSPORT_FRAME_SNAP_CHUNK = 3,
    TRANSPORT_FRAME_SNAP_END = 4,
    TRANSPORT_FRAME_SNAP_ACK = 5,
};

enum transport_snap_ack {
    TRANSPORT_SNAP_ACK_OK = 0,
    TRANSPORT_SNAP_ACK_CORRUPT = 1,
    TRANSPORT_SNAP_ACK_REFUSED = 2,
};

/* Events of one incoming snapshot stream, in order: BEGIN, CHUNK..., then
 * exactly one of END (checksum verified) or ABORT (status says why). */
enum transport_snap_event {
    TRANSPORT_SNAP_BEGIN = 1,
    TRANSPORT_SNAP_CHUNK = 2,
    TRANSPORT_SNAP_END = 3,
    TRANSPORT_SNAP_ABORT = 4,
};

/* Defaults and hard maxima of the transport's own limits. */
#define TRANSPORT_QUEUE_MSGS_DEFAULT   4096 /* etcd's stream buffer size */
#define TRANSPORT_QUEUE_MSGS_MAX       1048576
#define TRANSPORT_QUEUE_BYTES_DEFAULT  ((size_t)64 << 20)
#define TRANSPORT_QUEUE_BYTES_MAX      ((size_t)1 << 30)
#define TRANSPORT_PEERS_DEFAULT        64
#define TRANSPORT_PEERS_MAX            1024
#define TRANSPORT_CONNS_IN_DEFAULT     256
#define TRANSPORT_CONNS_IN_MAX         65536
#define TRANSPORT_BATCH_MSGS_MAX       512 /* below IOV_MAX (1024) */
#define TRANSPORT_BATCH_BYTES_MAX      ((size_t)4 << 20) /* soft: >= 1 msg */
#define TRANSPORT_BACKOFF_MIN_MS       100
#define TRANSPORT_BACKOFF_MAX_MS       5000
#define TRANSPORT_HANDSHAKE_TIMEOUT_MS 5000
#define TRANSPORT_WRITE_STALL_MS       10000
#define TRANSPORT_SNAP_STALL_MS        60000
#define TRANSPORT_SAN_NAMES_MAX        8 /* DNS SANs resolved per handshake */

struct transport;
struct transport_snap_in; /* one incoming snapshot stream (opaque) */
struct ssl_ctx_st;        /* OpenSSL's SSL_CTX (openssl/types.h) */

/* A message arrived from member `from`; data is borrowed for the call. */
typedef void (*transport_recv_cb)(void *owner, uint64_t from,
                                  const uint8_t *data, size_t len);

/* An incoming snapshot stream event. `in` names the stream for pause and
 * resume from BEGIN until the END or ABORT callback returns. data/len are
 * the metadata (BEGIN) or a chunk (CHUNK), else NULL/0; status is 0 except
 * for ABORT. data stays valid until the callback returns or, if it called
 * transport_snapshot_pause(in), until transport_snapshot_resume(in). */
typedef void (*transport_snap_cb)(void *owner, struct transport_snap_in *in,
                                  uint64_t from, enum transport_snap_event ev,
                                  const uint8_t *data, size_t len, int status);

/* A connection to `peer` could not be made or was lost; err says why. At
 * most once per connection attempt. Raft marks the peer unreachable. */
typedef void (*transport_unreachable_cb)(void *owner, uint64_t peer, int err);

/* Predicate on each incoming handshake that passed the cluster and receiver
 * checks: return 0 to accept, a negative code to refuse (its err_str text is
 * sent back as the reason). Used to refuse members that were removed. */
typedef int (*transport_accept_cb)(void *owner, uint64_t from,
                                   enum transport_channel channel);

/* Completion of transport_send_snapshot: 0 when the receiver acknowledged an
 * intact stream, else why not (ERR_CANCELED if the transport closed or the
 * peer was removed first). Runs exactly once per call that returned 0. */
typedef void (*transport_send_snapshot_done_cb)(void *arg, uint64_t to,
                                                int status);

typedef void (*transport_close_cb)(struct transport *t);

struct transport_config {
    uint64_t cluster_id;
    uint64_t self_id;            /* nonzero */
    uint64_t seed;               /* backoff jitter (base/prng.h) */
    size_t max_msg_bytes;        /* LIMIT_RAFT_MSG_BYTES */
    size_t snapshot_chunk_bytes; /* LIMIT_SNAPSHOT_CHUNK_BYTES */
    size_t queue_msgs_max;       /* per peer: queued + being written */
    size_t queue_bytes_max;      /* per peer, payload bytes, same scope */
    size_t peers_max;
    size_t conns_in_max;
    uint32_t backoff_min_ms;
    uint32_t backoff_max_ms;
    uint32_t handshake_timeout_ms;
    uint32_t write_stall_ms; /* a message write pending this long: drop conn */
    uint32_t snap_stall_ms;  /* a snapshot making no progress this long */
    void *owner;             /* first argument of every callback below */
    transport_recv_cb recv_cb;               /* required */
    transport_snap_cb snap_cb;               /* NULL: refuse snapshots */
    transport_unreachable_cb unreachable_cb; /* optional */
    transport_accept_cb accept_cb;           /* optional: NULL accepts all */
    /* Optional. A member that joins a running cluster starts with
     * cluster_id 0; the first peer that accepts it, or that dials it and
     * is accepted, tells the id, which the transport adopts and reports
     * here once. Acceptors let a dialler with cluster id 0 in, and a
     * transport with cluster id 0 lets any dialler in, only when accept_cb
     * is set (and accepts it). */
    void (*cluster_cb)(void *owner, uint64_t cluster_id);
    /* Optional TLS (OpenSSL 3), before the hello on both channels. Each
     * context is borrowed: transport_init takes a reference
     * (SSL_CTX_up_ref) and transport_close drops it, so the caller may free
     * its own at once. tls_server_ctx set: every accepted connection is
     * TLS (the caller decides from the https:// listen URL, and sets the
     * verify mode: --peer-client-cert-auth). tls_client_ctx: used to dial
     * peers added with an https:// address; the dialled IP is checked
     * against the certificate's SANs when the context verifies. A peer
     * added with https:// while tls_client_ctx is NULL fails to connect
     * ("no peer TLS configured"). */
    struct ssl_ctx_st *tls_server_ctx;
    struct ssl_ctx_st *tls_client_ctx;
    /* With tls_server_ctx requiring certificates: a dialling member's
     * certificate must name the address it connects from, as etcd 3.4
     * checks by default: an IP SAN equal to it, or a DNS SAN that resolves
     * to it (asynchronously, on libuv's thread pool; at most
     * TRANSPORT_SAN_NAMES_MAX names are tried). A certificate without IP
     * or DNS SANs passes, as in etcd. */
    bool tls_check_client_san;
};

/* Per-peer counters for metrics. "sent" counts messages whose write
 * completed; "dropped" counts messages refused by a full queue or lost with a
 * failed connection; "received" counts messages that arrived from it. */
struct transport_peer_stats {
    uint64_t id;
    uint64_t msgs_sent, bytes_sent;
    uint64_t msgs_dropped, bytes_dropped;
    uint64_t msgs_received, bytes_received;
    uint64_t msgs_queued, bytes_queued; /* now, including being written */
    uint64_t writes;                    /* uv_write calls (batches) */
    uint64_t connects;                  /* handshakes accepted by the peer */
    uint64_t connect_failures;
    uint64_t snapshots_sent, snapshots_received;
    bool connected;
    char last_error[TRANSPORT_REASON_MAX + 1]; /* "" when none yet */
};

/* Transport-wide counters. */
struct transport_stats {
    uint64_t conns_accepted;
    uint64_t conns_refused; /* handshakes we refused, or over conns_in_max */
    uint64_t conns_in_open;
    uint64_t frames_malformed;      /* connections closed for bad bytes */
    uint64_t msgs_received_unknown; /* from members not in our peer list */
    uint64_t tls_handshakes_failed; /* both directions */
};

struct transport__peer;
struct transport__conn;
struct transport__snap_send;

/* The caller allocates this; every field is private to the transport. */
struct transport {
    uv_loop_t *loop;
    struct transport_config cfg;
    struct prng prng;
    uv_tcp_t listener;
    uv_idle_t flush_idle;
    bool listening;
    bool flush_armed;
    bool closing;
    bool close_done;
    transport_close_cb close_cb;
    struct transport__peer *peers;
    size_t peers_count;
    struct transport__conn *conns; /* every connection, in and out */
    size_t conns_in_count;
    size_t handles_open; /* libuv handles not yet closed */
    size_t snaps_live;   /* snapshot sends not yet completed */
    struct transport_stats stats;
    uint8_t *tls_rbuf; /* TR_TLS_RBUF_BYTES of ciphertext, shared: each read
                        * goes into its SSL before the callback returns */
};

/* Fill cfg with the defaults above (ids 0, callbacks NULL). */
void transport_config_init(struct transport_config *cfg);

/* Set up t on loop with a copy of cfg. Returns ERR_INVALID when cfg is
 * inconsistent (self_id 0, no recv_cb, a zero limit, backoff min > max,
 * queue_bytes_max < max_msg_bytes) and ERR_LIMIT above a hard maximum. On
 * success the caller must eventually call transport_close(). */
int transport_init(struct transport *t, uv_loop_t *loop,
                   const struct transport_config *cfg);

/* Parse "ip:port", "[ipv6]:port", optionally led by "http://" or
 * "https://" (the latter means TLS to transport_peer_add). Errors:
 * ERR_INVALID. Hostnames are refused (resolve them first). */
int transport_addr_parse(const char *s, struct sockaddr_storage *out);

/* Accept peers on addr (copied). Errors: ERR_INVALID, ERR_EXISTS (already
 * listening), -EADDRINUSE and other bind/listen errors, -ESHUTDOWN. */
int transport_listen(struct transport *t, const char *addr);

/* The bound address (to learn a port chosen by binding port 0). Errors:
 * ERR_INVALID when not listening. */
int transport_listen_addr(const struct transport *t,
                          struct sockaddr_storage *out);

/* Add peer id at addr (copied; "https://ip:port" dials with TLS through
 * tls_client_ctx). No connection is made until a message is
 * sent. Errors: ERR_INVALID (id 0 or self, bad addr), ERR_EXISTS, ERR_LIMIT
 * (peers_max), -ENOMEM, -ESHUTDOWN. */
int transport_peer_add(struct transport *t, uint64_t id, const char *addr);

/* The name a TLS dialler checks the peer's certificate against: the host
 * of its URL when that is a DNS name (copied; "" or NULL: the dialled IP,
 * the default), as Go's http.Transport checks the URL's host. Takes effect
 * at the next connection. Errors: ERR_NOT_FOUND, ERR_INVALID (too long). */
int transport_peer_tls_name(struct transport *t, uint64_t id, const char *name);

/* Change a peer's address; an open connection to the old one is closed and
 * its unwritten messages dropped. Errors: as peer_add, ERR_NOT_FOUND. */
int transport_peer_update(struct transport *t, uint64_t id, const char *addr);

/* Forget a peer: its connections, in both directions, close (an incoming
 * snapshot stream from it gets ABORT), queued messages are dropped and a
 * snapshot being sent completes with ERR_CANCELED. New connections it dials
 * to us are still accepted unless accept_cb refuses them. Errors:
 * ERR_NOT_FOUND, -ESHUTDOWN. */
int transport_peer_remove(struct transport *t, uint64_t id);

/* Queue a copy of data[0..len) for peer `to`; the write happens later in
 * this loop pass, batched with others. Errors: ERR_NOT_FOUND (unknown
 * peer), ERR_LIMIT (len > max_msg_bytes), ERR_BUSY (the peer's queue is
 * full: the message is dropped and counted; the owner may report the peer
 * unreachable to Raft, as etcd does), -ENOMEM (dropped, counted),
 * -ESHUTDOWN. Messages to a peer arrive in order or not at all; after a
 * connection fails its unwritten messages are dropped (Raft retries). */
int transport_send(struct transport *t, uint64_t to, const void *data,
                   size_t len);

/* Stream a snapshot to `to` on its own connection: meta (copied, at most
 * max_msg_bytes) then len bytes of fd from offset, read off the loop in
 * chunks of snapshot_chunk_bytes, each written after the previous write
 * completed, then the END checksum; done runs once the receiver has
 * acknowledged, or on failure. fd is borrowed until done. Errors (done will
 * not run): ERR_NOT_FOUND, ERR_LIMIT (meta too big), ERR_BUSY (a snapshot
 * to this peer is already in flight), ERR_INVALID, -ENOMEM, -ESHUTDOWN. */
int transport_send_snapshot(struct transport *t, uint64_t to, const void *meta,
                            size_t meta_len, uv_file fd, int64_t offset,
                            uint64_t len, transport_send_snapshot_done_cb done,
                            void *arg);

/* Stop delivering events of an incoming snapshot stream (and stop reading
 * its socket, so TCP pushes back on the sender) until resume. Only valid
 * while `in` is (see transport_snap_cb). Idempotent. */
void transport_snapshot_pause(struct transport_snap_in *in);
void transport_snapshot_resume(struct transport_snap_in *in);

/* Counters of one peer. Errors: ERR_NOT_FOUND. */
int transport_peer_stats(const struct transport *t, uint64_t id,
                         struct transport_peer_stats *out);
void transport_stats(const struct transport *t, struct transport_stats *out);

/* Replace the TLS contexts (certificates read again): connections made
 * from now on use them, open ones keep the SSL they have (each holds a
 * reference to its context), so none is dropped. Borrowed as in
 * transport_config. A NULL argument keeps the context in use, so a listener
 * never changes between TLS and plain. Errors: -ENOMEM, -ESHUTDOWN. */
int transport_tls_set(struct transport *t, struct ssl_ctx_st *server_ctx,
                      struct ssl_ctx_st *client_ctx);

/* Close every handle. Pending snapshot sends complete with ERR_CANCELED,
 * incoming streams get ABORT with ERR_CANCELED, queued messages are dropped;
 * then cb runs once (it may be NULL), after which no callback runs and t may
 * be freed or reused. Calling it twice is a bug (asserted). */
void transport_close(struct transport *t, transport_close_cb cb);

#endif

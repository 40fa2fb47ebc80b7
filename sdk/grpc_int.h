/*
 * grpc_int.h - libcairn's gRPC client transport (private to sdk/ and
 * bench/): nghttp2 client sessions on libuv TCP connections, one struct
 * cairn__call per HTTP/2 stream.
 *
 * Does:     connects to etcd-compatible servers over cleartext HTTP/2 (h2c,
 *           prior knowledge) or over TLS (ALPN h2, tls_int.h) and runs
 *           unary, server-streaming and bidi gRPC
 *           calls on them, delivering each response message and the final
 *           grpc-status to callbacks.
 * Owns:     struct cairn__net owns its sockets and nghttp2 sessions; a
 *           struct cairn__call owns its send and receive buffers; the
 *           caller allocates every struct.
 * Threads:  one thread: the loop given to cairn__net_open runs every
 *           callback; no call may come from another thread.
 * Borrowed: a message passed to a cairn__call_msg_cb is valid until the
 *           callback returns; call->message until the call is started again;
 *           call->token and the path until the call ends.
 * Errors:   0 or a negative code (base/err.h): -ENOMEM, ERR_LIMIT (a buffer
 *           cap), ERR_STOPPED (the connection is gone), -errno from libuv.
 *           Outcomes of calls arrive as gRPC status codes (enum
 *           cairn__status) in the done callback, never as aborts: a
 *           malformed frame, an oversized message or a bad grpc-status ends
 *           the call with CAIRN__ST_BAD_RESPONSE.
 * Limits:   call->in_max bytes per response message (CAIRN__CALL_IN_MAX by
 *           default), CAIRN__OUT_MAX pending outbound bytes per connection
 *           and per call.
 * Not here: the public blocking API (sdk/client.c, sdk/include/cairn.h);
 *           cairn-bench's workloads (bench/).
 *
 * Wire: gRPC over HTTP/2 (grpc/doc/PROTOCOL-HTTP2.md, RFC 9113). Each
 * message is framed as
 *     offset size  field
 *     0      1     compressed flag (always 0 here; 1 from a server is an error)
 *     1      4     length N, big endian
 *     5      N     serialized protobuf
 * and a call ends with trailers carrying grpc-status (and grpc-message).
 */
#ifndef CAIRN_SDK_GRPC_INT_H
#define CAIRN_SDK_GRPC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "base/buf.h"

#define CAIRN__CALL_IN_MAX ((size_t)4 << 20)
#define CAIRN__OUT_MAX     ((size_t)64 << 20)

/* Outcome of a call: a gRPC status code (grpc/doc/statuscodes.md), or one
 * of two of ours for calls that end without a usable status. */
enum cairn__status {
    CAIRN__ST_OK = 0,
    CAIRN__ST_UNIMPLEMENTED = 12,
    CAIRN__ST_GRPC_MAX = 16,
    CAIRN__ST_TRANSPORT = 17,    /* stream reset or connection lost */
    CAIRN__ST_BAD_RESPONSE = 18, /* malformed answer, lease gone, canceled */
    CAIRN__ST__COUNT = 19,
};

struct cairn__call;
struct cairn__conn;
struct cairn__tls;

/* One response message (unframed). */
typedef void (*cairn__call_msg_cb)(struct cairn__call *call, const uint8_t *msg,
                                   size_t len);
/* The call ended: status is an enum cairn__status. The call may be started
 * again from inside this callback. */
typedef void (*cairn__call_done_cb)(struct cairn__call *call, int status);

struct cairn__call {
    struct cairn__conn *conn; /* while active */
    int32_t stream_id;
    bool active;
    bool bidi;      /* the send side stays open until cairn__call_close_send */
    bool want_msgs; /* deliver response messages (else only count them) */
    bool send_closed;
    bool deferred; /* nghttp2 is waiting for more data to send */
    bool got_status;
    int status;
    uint64_t msgs_in;
    struct buf out; /* framed messages not yet handed to nghttp2 */
    size_t out_off;
    struct buf in;     /* partial response message */
    char message[256]; /* grpc-message, as sent (percent-encoded) */
    const char *token; /* borrowed: sent as metadata "token" if set */
    size_t in_max;     /* largest response message (CAIRN__CALL_IN_MAX) */
    cairn__call_msg_cb on_msg;
    cairn__call_done_cb on_done;
    void *data;
    struct cairn__call *prev; /* the connection's list of active calls */
    struct cairn__call *next;
};

struct cairn__net;

struct cairn__conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct cairn__net *net;
    nghttp2_session *h2;
    bool connected;
    bool dead;
    bool closing;
    bool writing;
    bool dirty;
    int err;            /* why it died */
    char authority[64]; /* "[v6 address]:port" at most */
    SSL *ssl;           /* with TLS: memory BIOs between it and the socket */
    bool handshaking;   /* TLS handshake not finished: no HTTP/2 yet */
    char why[200];      /* a TLS failure's reason ("" otherwise) */
    struct buf wbuf;
    struct cairn__call *calls; /* active calls, for failing them on death */
    size_t calls_count;
};

struct cairn__net {
    uv_loop_t *loop;
    struct cairn__conn *conns;
    size_t conns_count;
    size_t connected;
    size_t dead;
    size_t closed;              /* handles whose close callback ran */
    struct cairn__conn **dirty; /* conns with output to flush */
    size_t dirty_count;
    const struct cairn__tls *tls; /* NULL: cleartext; borrowed until close */
    char tls_host[256];           /* the name or address to verify */
    /* Runs after each connection comes up or fails to (set after open). */
    void (*on_change)(struct cairn__net *net);
    void *data;
    /* One read buffer for all the connections: a read is handled in its
     * callback, and one buffer stays in the cache where one for each of
     * them was cold again by the time the kernel copied into it. */
    uint8_t rbuf[65536];
};

/* Starts connecting conns_count connections, spread round-robin over the
 * IPv4 addresses (cairn-bench's). Returns 0 with connections in progress;
 * run the loop until net->connected + net->dead == conns_count. */
int cairn__net_open(struct cairn__net *net, uv_loop_t *loop,
                    const struct sockaddr_in *addrs, size_t addrs_count,
                    size_t conns_count);
/* The same over TLS (tls borrowed until cairn__net_close; host is the
 * name to verify, copied): a connection counts as connected once its
 * handshake is done and h2 is agreed; one whose handshake fails is dead
 * with err -EPROTO and its reason in why. tls NULL is cleartext. The
 * addresses are IPv4 or IPv6 (sockaddr_in or sockaddr_in6 inside).
 * -EINVAL when host is longer than tls_host holds. */
int cairn__net_open_tls(struct cairn__net *net, uv_loop_t *loop,
                        const struct sockaddr_storage *addrs,
                        size_t addrs_count, size_t conns_count,
                        const struct cairn__tls *tls, const char *host);
/* Hands pending HTTP/2 output of every connection that has some to the
 * socket. Call at the end of every loop callback that started or fed a
 * call outside a read callback (reads flush by themselves). */
void cairn__net_flush(struct cairn__net *net);
/* Closes every connection (active calls end without their callbacks) and
 * runs the loop until the handles are closed; frees everything. */
void cairn__net_close(struct cairn__net *net);

/* Sets up a call struct (once); it can then be started many times. */
void cairn__call_init(struct cairn__call *call, cairn__call_msg_cb on_msg,
                      cairn__call_done_cb on_done, void *data);
void cairn__call_free(struct cairn__call *call);
/* Frames msg onto the call's send buffer (before or after start). */
int cairn__call_add(struct cairn__call *call, const ProtobufCMessage *msg);
/* Starts the call on conn with the messages added so far. path must be a
 * string that outlives the call. A unary call (bidi false) half-closes
 * after its buffer; a bidi call keeps sending what cairn__call_add adds
 * (call cairn__call_push after adding) until cairn__call_close_send.
 * ERR_STOPPED when conn is dead; the done callback then never runs. */
int cairn__call_start(struct cairn__call *call, struct cairn__conn *conn,
                      const char *path, bool bidi);
/* Tells nghttp2 that a started bidi call has new data. */
int cairn__call_push(struct cairn__call *call);
int cairn__call_close_send(struct cairn__call *call);
/* Resets the stream (CANCEL); the done callback runs with TRANSPORT. */
void cairn__call_cancel(struct cairn__call *call);

#endif

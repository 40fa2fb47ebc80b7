/*
 * grpc.h - gRPC over cleartext HTTP/2 (h2c) on a libuv loop.
 *
 * Does:     runs an HTTP/2 server session (nghttp2) on each connection the
 *           listener hands over, unframes and frames gRPC messages, decodes
 *           requests with protobuf-c, and dispatches every call to the
 *           method table the application registered (unary, server stream,
 *           client stream, bidi). Unknown methods get UNIMPLEMENTED.
 * Owns:     the adopted sockets, their nghttp2 sessions and buffers, and
 *           every struct grpc_call. The application owns its method table
 *           and whatever it hangs on a call with grpc_call_set_data().
 * Threads:  one loop thread: every function here and every callback runs on
 *           the loop given to grpc_server_init().
 * Borrowed: a request's bytes until on_msg returns, its decoded form until
 *           the next message on the same call or the call's end; metadata
 *           strings until the call ends. A call pointer is valid from the
 *           first callback that names it until the application calls
 *           grpc_call_finish()/grpc_call_reply(), or until its cancel
 *           callback returns, whichever comes first (see "Call lifetime").
 * Errors:   0 or a negative code (base/err.h): ERR_BUSY when a bound is hit
 *           (connections, outbound bytes), ERR_STOPPED after shutdown,
 *           -ENOMEM. Protocol errors from peers never reach the application:
 *           malformed HTTP/2 gets GOAWAY and a close, malformed gRPC gets a
 *           grpc-status on that stream.
 * Limits:   struct grpc_limits (from base/limits.h): message bytes in,
 *           streams and header bytes per connection, pending outbound bytes
 *           per connection, connections in total, bytes read per loop pass.
 * Not here: the listening socket and the preface sniffing that splits gRPC
 *           from HTTP/1.1 (registry/server; grpc_preface_match() helps), TLS,
 *           the etcd services themselves, compression (refused cleanly).
 *
 * Call lifetime (STYLE.md sections 4-5). The layer creates a call when a
 * request's headers arrive and hands it to the method's callbacks. From then
 * on exactly one of two things ends the application's use of it:
 *   - the application calls grpc_call_finish() (or grpc_call_reply(), which
 *     sends a message and finishes with OK): the call pointer is dead on
 *     return, and no further callback names it; or
 *   - the client resets the stream or the connection dies first: the layer
 *     runs on_cancel once, and the pointer is dead when on_cancel returns.
 *     on_cancel must not call grpc_call_finish().
 * Callbacks never run re-entrantly for the same call. The application may
 * call send/finish from inside any callback, or later from any callback of
 * the same loop (after a Raft commit, a timer, ...).
 *
 * Wire (gRPC over HTTP/2, github.com/grpc/grpc doc/PROTOCOL-HTTP2.md):
 *   request   HEADERS :method POST, :path /package.Service/Method,
 *             content-type application/grpc[+proto], te trailers,
 *             [grpc-timeout], [grpc-encoding], custom metadata
 *   messages  DATA, each message framed as
 *               offset size  field
 *               0      1     compressed flag (must be 0 here)
 *               1      4     length N, big endian
 *               5      N     serialized protobuf
 *   response  HEADERS :status 200, content-type application/grpc;
 *             DATA messages; trailers grpc-status, grpc-message
 *             (percent-encoded). With no message, one "trailers-only"
 *             HEADERS frame carries everything.
 */
#ifndef CAIRN_REGISTRY_GRPC_H
#define CAIRN_REGISTRY_GRPC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <nghttp2/nghttp2.h>
#include <protobuf-c/protobuf-c.h>
#include <uv.h>

#include "base/buf.h"
#include "base/limits.h"

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum grpc_code {
    GRPC_OK = 0,
    GRPC_CANCELLED = 1,
    GRPC_UNKNOWN = 2,
    GRPC_INVALID_ARGUMENT = 3,
    GRPC_DEADLINE_EXCEEDED = 4,
    GRPC_NOT_FOUND = 5,
    GRPC_ALREADY_EXISTS = 6,
    GRPC_PERMISSION_DENIED = 7,
    GRPC_RESOURCE_EXHAUSTED = 8,
    GRPC_FAILED_PRECONDITION = 9,
    GRPC_ABORTED = 10,
    GRPC_OUT_OF_RANGE = 11,
    GRPC_UNIMPLEMENTED = 12,
    GRPC_INTERNAL = 13,
    GRPC_UNAVAILABLE = 14,
    GRPC_DATA_LOSS = 15,
    GRPC_UNAUTHENTICATED = 16,
};

enum grpc_kind {
    GRPC_UNARY = 0,         /* one request, one response */
    GRPC_SERVER_STREAM = 1, /* one request, many responses */
    GRPC_CLIENT_STREAM = 2, /* many requests, one response */
    GRPC_BIDI_STREAM = 3,   /* many each way */
};

struct grpc_call;
struct grpc_server;

/* One request message. data/len are the serialized bytes, borrowed until
 * on_msg returns (they may point into the read buffer). pb is the decoded
 * message when the method names a request descriptor, else NULL; it lives
 * in the call's arena until the next message on this call or the call's
 * end, so a unary handler may keep it until it finishes. */
struct grpc_msg {
    const uint8_t *data;
    size_t len;
    ProtobufCMessage *pb;
};

/* Headers of the request arrived and were valid (all kinds; optional). */
typedef void (*grpc_start_cb)(struct grpc_call *call);
/* One request message. Unary and server-stream methods get exactly one. */
typedef void (*grpc_msg_cb)(struct grpc_call *call, const struct grpc_msg *msg);
/* The client half-closed: no more messages will come (optional). */
typedef void (*grpc_half_close_cb)(struct grpc_call *call);
/* The call died before the application finished it: the client reset the
 * stream, the connection closed, or the layer ended the call itself (an
 * oversized, compressed or undecodable message; the client got the status).
 * Only for calls the application has seen (a callback named them). */
typedef void (*grpc_cancel_cb)(struct grpc_call *call);
/* Outbound room is back after grpc_call_send() returned ERR_BUSY. */
typedef void (*grpc_writable_cb)(struct grpc_call *call);
/* grpc_server_close() completed; the server's memory may be reused. */
typedef void (*grpc_server_close_cb)(struct grpc_server *srv);

/* One entry of the method table. The table and the strings it points to
 * are borrowed for the life of the server. */
struct grpc_method {
    const char *path; /* "/etcdserverpb.KV/Range" */
    enum grpc_kind kind;
    /* When set, each request is decoded into pb (into a per-call arena);
     * undecodable bytes finish the call with INTERNAL before on_msg. */
    const ProtobufCMessageDescriptor *req_desc;
    grpc_start_cb on_start;
    grpc_msg_cb on_msg; /* required */
    grpc_half_close_cb on_half_close;
    grpc_cancel_cb on_cancel;
    grpc_writable_cb on_writable;
    void *ctx; /* for the application; grpc_call_method(call)->ctx */
};

/* Bounds. Fill with grpc_limits_init() then adjust. */
struct grpc_limits {
    size_t recv_msg_bytes_max;     /* one request message */
    uint32_t streams_per_conn_max; /* SETTINGS_MAX_CONCURRENT_STREAMS */
    uint32_t header_bytes_max;    /* per request header list (RFC 9113 6.5.2) */
    size_t conn_out_bytes_max;    /* see grpc_call_send() and Bounds below */
    size_t conn_in_bytes_max;     /* partial messages buffered per conn */
    uint32_t connections_max;     /* adopted connections at once */
    size_t read_pass_bytes_max;   /* bytes read per connection per loop pass */
    uint32_t stream_window_bytes; /* SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t conn_window_bytes;   /* connection receive window */
    /* A connection whose client has not sent its SETTINGS (the rest of
     * the preface, RFC 9113 3.4) this long after adoption is closed. */
    uint64_t handshake_timeout_ms;
    /* One with no call open for this long gets GOAWAY(NO_ERROR) and
     * closes (PINGs do not count as activity). */
    uint64_t idle_timeout_ms;
    /* One with output pending and nothing written for this long is
     * closed: its client is not reading (or grants no window). */
    uint64_t stall_timeout_ms;
    /* RST_STREAM frames from the client: a token bucket of reset_burst
     * tokens refilled at reset_rate a second; an empty bucket gets
     * GOAWAY(ENHANCE_YOUR_CALM) and a close (CVE-2023-44487). */
    uint32_t reset_burst;
    uint32_t reset_rate;
};

/* Counters for /metrics; monotonic except the *_open gauges. */
struct grpc_stats {
    uint64_t conns_open;
    uint64_t conns_total;
    uint64_t conns_refused; /* adopt refused at connections_max */
    uint64_t calls_open;
    uint64_t calls_total;
    uint64_t calls_unimplemented;
    uint64_t calls_cancelled;
    uint64_t msgs_too_large;
    uint64_t protocol_errors; /* connections closed for bad HTTP/2 */
    uint64_t bad_headers;     /* streams reset for malformed requests */
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t reads_paused;       /* times reads stopped on the outbound bound */
    uint64_t handshake_timeouts; /* closed: no SETTINGS in time */
    uint64_t idle_closed;        /* GOAWAY: no call for idle_timeout_ms */
    uint64_t rapid_resets;       /* GOAWAY: RST_STREAM past the bucket */
    uint64_t stalled_closed;     /* closed: output stuck, stall_timeout_ms */
    uint64_t out_pending_bytes;  /* gauge, summed by grpc_server_stats */
    uint64_t streams_refused;    /* RST_STREAM(REFUSED_STREAM) sent */
    uint64_t headers_too_large;  /* calls refused past header_bytes_max */
    uint64_t h2_memory_bytes;    /* gauge: nghttp2's blocks in use */
};

/* The HPACK table our decoder keeps per connection (SETTINGS_HEADER_TABLE_
 * SIZE; HTTP/2's default is 4,096). gRPC clients index every request's
 * grpc-timeout, a new value each call, so with 4 KiB the decoder's table
 * keeps filling with them: under make soak (1,000 connections, ~110 calls
 * a second) nghttp2's memory grew 13-20 kB/s, +2.9 MB in 170 s and still
 * rising. With 512 it stays flat. 512 bytes still hold the entries that
 * repeat (:path, :authority, user-agent, te, content-type) for clients
 * that send no deadline. */
#define GRPC_HPACK_TABLE_BYTES 512

/* nghttp2's small blocks, kept for reuse (grpc_server.c, "nghttp2
 * allocation"): size classes of 64 << i bytes. */
#define GRPC_NGH_CLASSES   4
#define GRPC_NGH_CACHE_MAX 256 /* blocks kept per class: 132 KiB at most */

/* Private. Public only so that the caller can allocate it (STYLE 4). */
struct grpc_server {
    uv_loop_t *loop;
    struct grpc_limits lim;
    const struct grpc_method *methods;
    uint32_t *mtab; /* open-addressed index into methods, +1; 0 = empty */
    size_t mtab_mask;
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
    nghttp2_mem mem;
    void *ngh_free_blocks[GRPC_NGH_CLASSES]; /* freed blocks, a list each */
    uint32_t ngh_free_count[GRPC_NGH_CLASSES];
    int ngh_cache_off; /* after server_free_parts: no more caching */
    uv_check_t check;  /* flushes dirty connections once per loop pass */
    uv_idle_t idle;    /* keeps poll from blocking while work is pending */
    uv_timer_t sweep;  /* handshake and idle timeouts, once a second */
    struct grpc_conn *conns;     /* all open connections */
    struct grpc_conn *dirty;     /* connections to flush this pass */
    struct grpc_call *call_pool; /* recycled calls */
    size_t call_pool_count;
    uint8_t *rbuf;  /* one read buffer: reads are handled synchronously */
    struct buf out; /* frames being written, lent to one connection at a
                     * time (flush, grpc_server.c) */
    int shutting_down;
    int closing;
    int handles_open;
    grpc_server_close_cb close_cb;
    struct grpc_stats stats;
};

/* Defaults: recv message = base REQUEST_BYTES + 512 KiB (like etcd's
 * --max-request-bytes plus gRPC's margin), streams, header bytes, conn out
 * bytes and connections from base; base may be NULL (compiled defaults). */
void grpc_limits_init(struct grpc_limits *lim, const struct limits *base);

/* Set up a server on loop. methods[0..methods_count) is borrowed until
 * grpc_server_close's callback; each path must be unique, begin with '/'
 * and have on_msg set. lim is copied.
 * Errors: ERR_INVALID (bad table or a limit of 0), ERR_EXISTS (duplicate
 * path), -ENOMEM, or a libuv error. On failure nothing needs closing. */
int grpc_server_init(struct grpc_server *srv, uv_loop_t *loop,
                     const struct grpc_limits *lim,
                     const struct grpc_method *methods, size_t methods_count);

/* Bounds on outbound bytes: reads on a connection stop while frames it
 * produced sit unwritten above conn_out_bytes_max (the peer is not reading)
 * and resume below half. Messages queued behind HTTP/2 flow control do not
 * stop reads (the peer's WINDOW_UPDATEs must get in); grpc_call_send()
 * refuses with ERR_BUSY once queued + unwritten bytes exceed the bound.
 * New calls on a connection with more than twice the bound pending are
 * refused with UNAVAILABLE (replies ignore the bound, so this is what caps
 * a client that asks and never reads). Each connection reads at most
 * read_pass_bytes_max per loop pass. */

/* Take over a connected TCP socket whose first bytes (pre[0..pre_len),
 * normally the sniffed client preface and whatever followed it) were
 * already read. pre is copied. On success the server owns fd and closes it.
 * Errors: ERR_STOPPED (shutdown or close started), ERR_BUSY (at
 * connections_max), -ENOMEM, a libuv error; the caller still owns fd.
 * Method callbacks may run before this returns when pre holds whole
 * requests. */
int grpc_server_adopt(struct grpc_server *srv, int fd, const void *pre,
                      size_t pre_len);

/* The same for a connection whose client proved an identity (the CN of a
 * verified TLS client certificate; registry/server/tls_conn.c): identity
 * (NUL-terminated, up to GRPC_IDENTITY_BYTES_MAX - 1 bytes, else
 * ERR_INVALID) is copied and read back with grpc_call_identity(). */
#define GRPC_IDENTITY_BYTES_MAX 256
int grpc_server_adopt_id(struct grpc_server *srv, int fd, const void *pre,
                         size_t pre_len, const char *identity);

/* Graceful stop (SIGTERM): every connection gets GOAWAY(NO_ERROR) naming
 * the last stream it will serve, running calls finish normally, and each
 * connection closes once its streams are done. New adopts fail with
 * ERR_STOPPED. Call grpc_server_close() later to cut stragglers. */
void grpc_server_shutdown(struct grpc_server *srv);

/* Hard stop: cancels every open call (on_cancel runs), closes every
 * connection and the server's handles; close_cb (may be NULL) runs once
 * everything is closed, after which srv may be freed. Must not be called
 * from inside a grpc callback. */
void grpc_server_close(struct grpc_server *srv, grpc_server_close_cb close_cb);

/* Open connections (for the listener's total-connection bound). */
size_t grpc_server_conns(const struct grpc_server *srv);

/* Copy the counters. */
void grpc_server_stats(const struct grpc_server *srv, struct grpc_stats *out);

/* --- calls -------------------------------------------------------------- */

const struct grpc_method *grpc_call_method(const struct grpc_call *call);

/* One slot for the application's per-call state. */
void grpc_call_set_data(struct grpc_call *call, void *data);
void *grpc_call_data(const struct grpc_call *call);

/* Value of request metadata name (lowercase, e.g. "token", "hasleader",
 * "authorization"), or NULL. *len_out (may be NULL) gets its length; the
 * value is also NUL-terminated. Borrowed until the call ends. */
const char *grpc_call_metadata(const struct grpc_call *call, const char *name,
                               size_t *len_out);

/* Deadline from grpc-timeout as a uv_now() time in ms, or 0 when the client
 * set none. The layer does not enforce it: clients reset the stream at
 * their deadline, which arrives as on_cancel. */
uint64_t grpc_call_deadline_ms(const struct grpc_call *call);

/* The connection's identity (grpc_server_adopt_id), or NULL. Borrowed
 * until the call ends. */
const char *grpc_call_identity(const struct grpc_call *call);

/* HTTP/2 stream id, for logs. */
int32_t grpc_call_stream_id(const struct grpc_call *call);

/* Queue one response message (serialized now, msg is not kept). The first
 * send also sends the response headers. Respects the connection's outbound
 * bound: when pending outbound bytes exceed it, nothing is queued, the call
 * is marked, and on_writable runs once there is room again.
 * Errors: ERR_BUSY (bound; retry on on_writable), ERR_LIMIT (message too
 * large to frame), -ENOMEM. The call stays usable after any error. */
int grpc_call_send(struct grpc_call *call, const ProtobufCMessage *msg);

/* Same with already serialized bytes (copied). */
int grpc_call_send_bytes(struct grpc_call *call, const void *data, size_t len);

/* Same with the message's bytes in n pieces, concatenated (copied). */
int grpc_call_send_iov(struct grpc_call *call, const struct iovec *iov,
                       size_t n);

/* How a call keeps bytes it was lent: hold takes one reference to the
 * block that starts at base, release gives it back. Both run on the loop
 * thread; release may come after the sender is gone (a call freed after
 * the service that lent the block stopped), so the block must not need
 * its maker to be freed. */
struct grpc_ref_ops {
    void (*hold)(const void *base);
    void (*release)(const void *base);
};

/* Same as grpc_call_send_iov, except that pieces first_ref .. n-1 each
 * start a block that ops can hold: the call keeps a reference to those it
 * does not copy (the large ones) until HTTP/2 frames their bytes into the
 * connection's output or the call ends, instead of copying them twice. One
 * watch event's encoding goes to every watcher of a prefix this way without a
 * copy per watcher. */
int grpc_call_send_iov_ref(struct grpc_call *call, const struct iovec *iov,
                           size_t n, size_t first_ref,
                           const struct grpc_ref_ops *ops);

/* End the call with a status; message (may be NULL) is percent-encoded
 * into grpc-message. Queued messages go out first, in order, within the
 * client's flow-control window. The call pointer is dead on return. */
void grpc_call_finish(struct grpc_call *call, enum grpc_code code,
                      const char *message);

/* Unary answer: send msg and finish with OK, ignoring the outbound bound
 * (reads stop instead, which bounds new work). On a send error the call
 * finishes with RESOURCE_EXHAUSTED or INTERNAL. Dead on return. */
void grpc_call_reply(struct grpc_call *call, const ProtobufCMessage *msg);

/* Finish with the status that err (a base/err.h code or -errno) maps to. */
void grpc_call_finish_err(struct grpc_call *call, int err);

/* --- status mapping (the one table: STYLE.md section 5) ----------------- */

/* gRPC code for one of our error codes; message text is err_str(err),
 * which for etcd's errors is etcd's exact text (clients parse it). */
enum grpc_code grpc_code_from_err(int err);

/* HTTP status the JSON gateway uses for a gRPC code (grpc-gateway v1). */
int grpc_code_http_status(enum grpc_code code);

/* HTTP status and code name ("session_expired", "not_found", ...) of an
 * error on the /api/v1/ REST surface (registry and config APIs). */
int grpc_api_v1_status(int err, const char **code);

/* "OK", "CANCELLED", ... for logs; "UNKNOWN" for out-of-range values. */
const char *grpc_code_name(enum grpc_code code);

/* --- sniffing helper for the listener ----------------------------------- */

#define GRPC_PREFACE_LEN 24

/* Compare the first bytes read from a new connection with the HTTP/2
 * client preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": 1 when all 24 bytes
 * match, 0 when the len bytes so far match (read more), -1 when they do
 * not (HTTP/1.1 or garbage). */
int grpc_preface_match(const void *buf, size_t len);

#endif

/*
 * grpc_int.h - private to registry/grpc: connection and call structs, and
 * the pure wire helpers (unit-tested in tests/unit/grpc).
 */
#ifndef CAIRN_REGISTRY_GRPC_INT_H
#define CAIRN_REGISTRY_GRPC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "registry/grpc/grpc.h"

/* gRPC message prefix: 1 flag byte + 4 length bytes. */
#define GRPC_FRAME_HDR       5
/* Largest message we frame on the way out (gRPC's own send cap is 2 GiB;
 * a Range answer is bounded by RANGE_RESULT_BYTES's hard max, 1 GiB). */
#define GRPC_SEND_MSG_MAX    ((size_t)1 << 30)
/* Protobuf nesting accepted before decoding: TxnRequest -> RequestOp ->
 * TxnRequest is two levels per txn level, and TXN_DEPTH's hard max is 64. */
#define GRPC_PB_DEPTH_MAX    140
/* Decoded messages live in a per-call arena capped here: a decoded message
 * may be many times its wire size (each empty submessage costs a struct). */
#define GRPC_ARENA_BYTES_MAX ((size_t)256 << 20)
/* Inline first arena block: most etcd requests decode within it. */
#define GRPC_ARENA_INLINE    1024
/* Bytes written per connection per pass, about: flush stops taking
 * frames from nghttp2 past it ... */
#define GRPC_OUT_PASS_MAX    ((size_t)512 << 10)
/* ... and a write goes out once this much is pulled, between frames that
 * nghttp2 hands back (DATA frames come through send_data all at once: see
 * flush in grpc_server.c). */
#define GRPC_OUT_CHUNK       ((size_t)16 << 10)
/* Recycled call structs kept per server, and the buffer size above which a
 * recycled call's buffers are released rather than kept. */
#define GRPC_CALL_POOL_MAX   1024
#define GRPC_CALL_BUF_KEEP   ((size_t)64 << 10)
#define GRPC_PIECES_KEEP     64
/* A lent piece shorter than this is copied: holding it costs more. */
#define GRPC_REF_MIN         128
/* Read buffer handed to libuv (one per server). */
#define GRPC_READ_BUF        65536
/* How often the handshake and idle timeouts are checked. */
#define GRPC_SWEEP_MS        1000

/* --- arena (for protobuf-c) --------------------------------------------- */

struct grpc_arena_block {
    struct grpc_arena_block *next;
    size_t size;
    size_t used;
    /* data follows, 16-byte aligned */
};

struct grpc_arena {
    ProtobufCAllocator pa;           /* hands out memory from the arena */
    struct grpc_arena_block *blocks; /* heap blocks, newest first */
    size_t heap_bytes;
    size_t cap_bytes;
    size_t inline_used;
    int failed; /* an allocation hit the cap or failed */
    _Alignas(16) uint8_t inline_block[GRPC_ARENA_INLINE];
};

void grpc__arena_init(struct grpc_arena *a, size_t cap_bytes);
/* Drop everything allocated (keeps the inline block). */
void grpc__arena_reset(struct grpc_arena *a);
void *grpc__arena_alloc(struct grpc_arena *a, size_t size);

/* --- deframer ----------------------------------------------------------- */

/* Called once per complete message; data is borrowed for the call. A
 * non-zero return stops grpc__deframer_feed, which returns it. */
typedef int (*grpc_deframe_cb)(void *ctx, int compressed, const uint8_t *data,
                               size_t len);

/* Reassembles length-prefixed gRPC messages from arbitrary chunks. A message
 * that arrives whole inside one chunk is passed straight from the chunk; a
 * split one is copied into body. */
struct grpc_deframer {
    uint8_t hdr[GRPC_FRAME_HDR];
    uint8_t hdr_len;
    uint8_t compressed;
    uint32_t msg_len;
    struct buf body;
    size_t msg_max;
};

void grpc__deframer_init(struct grpc_deframer *d, size_t msg_max);
void grpc__deframer_free(struct grpc_deframer *d);
/* Drop any partial message; keep the buffer. */
void grpc__deframer_reset(struct grpc_deframer *d);
/* Feed n bytes. Returns 0, ERR_LIMIT when a message declares more than
 * msg_max bytes (*too_big gets its length; the deframer is then stuck and
 * must be reset), -ENOMEM, or the callback's non-zero return. */
int grpc__deframer_feed(struct grpc_deframer *d, const uint8_t *p, size_t n,
                        grpc_deframe_cb cb, void *ctx, uint32_t *too_big);
/* True when no partial message is buffered. */
bool grpc__deframer_idle(const struct grpc_deframer *d);
/* Bytes of partial message held in memory. */
static inline size_t grpc__deframer_held(const struct grpc_deframer *d)
{
    return d->body.len;
}

/* --- small parsers ------------------------------------------------------ */

/* grpc-timeout value "1*8DIGIT unit" (H M S m u n) -> milliseconds, rounded
 * up. 0 or ERR_INVALID. */
int grpc__timeout_parse(const char *s, size_t n, uint64_t *ms_out);

/* Append s[0..n) percent-encoded for grpc-message: bytes outside 0x20-0x7e
 * and '%' become %XX. 0, ERR_LIMIT or -ENOMEM. */
int grpc__percent_encode(struct buf *out, const char *s, size_t n);

/* Walk the protobuf wire bytes against desc without recursion and check
 * that nesting stays within depth_max and every length fits its parent.
 * 0, ERR_LIMIT (too deep) or ERR_BAD_REQUEST (malformed). */
int grpc__pb_depth_check(const ProtobufCMessageDescriptor *desc,
                         const uint8_t *p, size_t n, unsigned depth_max);

/* FNV-1a, for the method index. */
uint32_t grpc__hash(const char *s, size_t n);

/* --- connection and call ------------------------------------------------ */

struct grpc_conn {
    uv_tcp_t tcp;
    struct grpc_server *srv;
    nghttp2_session *ngh;
    struct grpc_conn *prev, *next; /* srv->conns */
    struct grpc_conn *dirty_next;  /* srv->dirty */
    struct grpc_call *calls;       /* open calls, doubly linked */
    struct buf out;                /* nghttp2 output not yet written */
    struct buf wout;               /* output being written by wreq */
    uv_write_t wreq;
    size_t queued_bytes; /* response bytes queued in calls, not yet framed */
    size_t in_held;      /* partial request bytes held by deframers */
    size_t pass_bytes;   /* read during this loop pass */
    uint64_t adopted_ms; /* loop time of adoption */
    uint64_t active_ms;  /* loop time a call last began or ended */
    uint64_t moved_ms;   /* loop time output last moved (or was small) */
    uint64_t rst_milli;  /* reset tokens, in thousandths */
    uint64_t rst_at_ms;  /* loop time the bucket was last filled */
    unsigned dirty : 1;
    unsigned reading : 1;
    unsigned writing : 1;
    unsigned paused_out : 1;    /* reads stopped: outbound bound */
    unsigned paused_pass : 1;   /* reads stopped: per-pass bound */
    unsigned fatal : 1;         /* protocol failure: flush GOAWAY, then close */
    unsigned eof : 1;           /* peer closed or socket error */
    unsigned closing : 1;       /* uv_close issued */
    unsigned want_writable : 1; /* some call is waiting for room */
    unsigned settings_seen : 1; /* the client's first SETTINGS came */
    unsigned calm : 1;          /* GOAWAY(ENHANCE_YOUR_CALM) queued */
    char *identity;             /* grpc_server_adopt_id's, or NULL */
};

/* One piece of a call's outbound queue (see grpc_call.outq). */
struct grpc_piece {
    const uint8_t *ref; /* NULL: the next len bytes of outq */
    const struct grpc_ref_ops *ops;
    size_t len;
};

struct grpc_call {
    struct grpc_conn *conn;
    const struct grpc_method *m;
    struct grpc_call *prev, *next; /* conn->calls, or the pool */
    void *data;
    int32_t stream_id;
    uint32_t header_bytes;
    uint32_t msgs_in;
    uint64_t deadline_ms;
    enum grpc_code status;
    unsigned headers_done : 1;  /* request headers validated */
    unsigned app_done : 1;      /* finished by the app or cancel delivered */
    unsigned resp_started : 1;  /* response HEADERS submitted */
    unsigned finishing : 1;     /* trailers to follow the queued data */
    unsigned deferred : 1;      /* data provider returned DEFERRED */
    unsigned remote_closed : 1; /* client half-closed */
    unsigned want_writable : 1;
    unsigned bad_encoding : 1;  /* grpc-encoding other than identity */
    unsigned app_seen : 1;      /* some application callback named it */
    unsigned proto_err : 1;     /* malformed request headers: stream reset */
    unsigned regular_seen : 1;  /* a regular header field came */
    unsigned pseudo_seen : 4;   /* :method :path :scheme :authority */
    uint16_t reject_http;       /* answer with this HTTP status */
    enum grpc_code reject_code; /* or with this gRPC status */
    struct grpc_deframer df;
    size_t in_counted; /* our share of conn->in_held */
    /* Framed response messages not yet given to nghttp2: a FIFO of
     * pieces, each either the next bytes of outq (owned) or a held
     * reference to a block lent by the sender. */
    struct buf outq;           /* owned bytes */
    size_t outq_off;           /* bytes of outq already given */
    struct grpc_piece *pieces; /* ring, pc_cap a power of two */
    size_t pc_head, pc_len, pc_cap;
    size_t pc_off;    /* bytes of the head piece given */
    size_t out_bytes; /* bytes of all pieces not given */
    struct buf meta;  /* name\0value\0 ... */
    struct buf msg;   /* grpc-message, percent-encoded; or reject text */
    struct grpc_arena arena;
};

/* grpc_call.c: nghttp2 callbacks and the call API. */
int grpc__callbacks_new(nghttp2_session_callbacks **out);
void grpc__call_free(struct grpc_server *srv, struct grpc_call *call);
/* Cancel and free every call of a connection (connection closing). */
void grpc__conn_cancel_calls(struct grpc_conn *c);
/* Notify calls waiting for outbound room, bounded by the call count. */
void grpc__conn_notify_writable(struct grpc_conn *c);
/* Pending outbound bytes of a connection. */
size_t grpc__conn_pending_out(const struct grpc_conn *c);

/* grpc_server.c: schedule a flush of c at the end of this loop pass. */
void grpc__conn_mark_dirty(struct grpc_conn *c);
const struct grpc_method *grpc__method_find(const struct grpc_server *srv,
                                            const char *path, size_t n);

#endif

/*
 * client_int.h - libcairn's internals shared by its files (not installed).
 *
 * Does:     the blocking client core (connection, failover, unary calls,
 *           auth, error mapping) and the decoders of server answers, which
 *           tests/unit/sdk drives with malformed and truncated input.
 * Owns:     see cairn.h; a decoded response owns its unpacked protobuf
 *           message (and arrays pointing into it) through priv_.
 * Threads:  cairn__* functions run with the client's mutex held, on the
 *           caller's thread; the loop is private to the client.
 * Borrowed: as in cairn.h.
 * Errors:   enum cairn_err values; a decoder never aborts: a message that
 *           does not unpack, or unpacks with a required part missing,
 *           gives CAIRN_E_BAD_RESPONSE.
 * Limits:   CAIRN_ENDPOINTS_MAX endpoints, CAIRN_WATCH_QUEUE_MAX queued
 *           watch responses, UNARY_ATTEMPTS_MAX attempts of one call.
 * Not here: the HTTP/2 transport (grpc_int.h), the CLI (sdk/cairnctl/).
 */
#ifndef CAIRN_SDK_CLIENT_INT_H
#define CAIRN_SDK_CLIENT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "proto/rpc.pb-c.h"
#include "sdk/grpc_int.h"
#include "sdk/include/cairn.h"
#include "sdk/tls_int.h"

struct cairn__mux;

struct cairn_client {
    pthread_mutex_t mu;
    uv_loop_t loop;
    uv_timer_t timer;
    bool timer_fired;
    struct cairn__net net;
    bool net_open;
    struct cairn__tls tls;
    char *endpoints[CAIRN_ENDPOINTS_MAX];
    size_t endpoints_count;
    size_t ep_cur; /* endpoint of the current (or next) connection */
    char *user;
    char *password;
    char *token;
    bool authenticating;
    int64_t dial_timeout_ms;
    int64_t timeout_ms;
    size_t recv_bytes_max;
    uint64_t prng; /* backoff jitter (xorshift64) */
    int grpc_code;
    char errmsg[512];
    struct cairn_watch *watches; /* open watches, for connection loss */
    struct cairn__mux *mux;      /* the /api/v1/stream socket (mux_int.h) */
};

/* Monotonic now in ns, and the absolute deadline of a call. */
uint64_t cairn__now_ns(void);
uint64_t cairn__deadline(struct cairn_client *c, int64_t deadline_ms);

/* Records an error's details for cairn_client_errmsg; returns err. */
/* Reads the caller's options *in (struct_size bytes of them) into *out, a
 * full struct of this library's layout with defaults for the fields the
 * caller's struct lacks. CAIRN_E_INVALID (with the reason in eb) for a
 * NULL in or a struct_size that is none of cairn_options'. */
int cairn__options_read(const struct cairn_options *in,
                        struct cairn_options *out, char *eb, size_t ebn);
/* Writes the printf-style reason into eb (when eb is not NULL and ebn > 0)
 * and returns err. */
int cairn__why(char *eb, size_t ebn, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int cairn__fail(struct cairn_client *c, int err, int grpc_code, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

/* A live connection, connecting (with failover and backoff) if needed. */
int cairn__conn_get(struct cairn_client *c, uint64_t deadline_ns,
                    struct cairn__conn **out);
/* Drops the connection and moves to the next endpoint. */
void cairn__conn_drop(struct cairn_client *c);
/* Runs the loop until *flag is true or the deadline passes (false). */
bool cairn__run_until(struct cairn_client *c, const bool *flag,
                      uint64_t deadline_ns);
/* Sleeps on the loop (other streams keep being served). */
void cairn__backoff(struct cairn_client *c, unsigned round,
                    uint64_t deadline_ns);

/* One request, one response message: unpacks it with desc into *out
 * (free with protobuf_c_message_free_unpacked). idempotent calls are
 * retried on another endpoint after a broken connection or Unavailable. */
int cairn__unary(struct cairn_client *c, const char *path,
                 const ProtobufCMessage *req,
                 const ProtobufCMessageDescriptor *desc, bool idempotent,
                 uint64_t deadline_ns, ProtobufCMessage **out);

/* A server-streaming call: on_msg gets each serialized response message
 * (borrowed until it returns) and returns 0 to go on or an error to stop
 * the call, which then returns that error. Not retried elsewhere. */
int cairn__stream(struct cairn_client *c, const char *path,
                  const ProtobufCMessage *req,
                  int (*on_msg)(void *arg, const uint8_t *p, size_t n),
                  void *arg, uint64_t deadline_ns);

/* Maps a gRPC status and (percent-encoded) grpc-message to an error,
 * recording the decoded text. */
int cairn__status_err(struct cairn_client *c, int grpc_code,
                      const char *message);

/* Decoders: serialized response -> public struct. */
int cairn__range_resp_decode(const uint8_t *p, size_t len,
                             struct cairn_range_resp *out);
int cairn__txn_resp_decode(const uint8_t *p, size_t len,
                           struct cairn_txn_resp *out);
int cairn__watch_resp_decode(const uint8_t *p, size_t len,
                             struct cairn_watch_resp *out);
int cairn__status_resp_decode(const uint8_t *p, size_t len,
                              struct cairn_status_resp *out);
int cairn__member_list_resp_decode(const uint8_t *p, size_t len,
                                   struct cairn_member_list_resp *out);

/* From unpacked messages: each takes m (the public struct owns it on
 * success; it is freed on failure). */
int cairn__range_from_pb(Etcdserverpb__RangeResponse *m,
                         struct cairn_range_resp *out);
int cairn__txn_from_pb(Etcdserverpb__TxnResponse *m,
                       struct cairn_txn_resp *out);
int cairn__watch_from_pb(Etcdserverpb__WatchResponse *m,
                         struct cairn_watch_resp *out);
int cairn__put_from_pb(Etcdserverpb__PutResponse *m,
                       struct cairn_put_resp *out);
int cairn__delete_from_pb(Etcdserverpb__DeleteRangeResponse *m,
                          struct cairn_delete_resp *out);
int cairn__status_from_pb(Etcdserverpb__StatusResponse *m,
                          struct cairn_status_resp *out);
int cairn__members_from_pb(Etcdserverpb__MemberListResponse *m,
                           struct cairn_member_list_resp *out);
void cairn__header_from_pb(const Etcdserverpb__ResponseHeader *h,
                           struct cairn_header *out);
int cairn__kv_from_pb(const Mvccpb__KeyValue *m, struct cairn_kv *out);

/* Watches hear about their connection going away. */
void cairn__watches_conn_lost(struct cairn_client *c);

#endif

/*
 * http.h - the HTTP/1.1 side of cairnd's client port (libwebsockets).
 *
 * Does:     serves every client-port connection that is not gRPC: etcd's
 *           JSON gateway (POST /v3/<service>/<method>, /v3beta/ alias),
 *           /health, /livez, /readyz, /version and /metrics; the gateway's
 *           streams (POST /v3/watch, /v3/lease/keepalive: chunked
 *           {"result":...} lines) and WebSocket watch streams (/v3/watch,
 *           wrapped as etcd's gateway; /ws/watch, bare WatchResponse
 *           objects); the registry and config streams under
 *           /api/v1/watch/ (WebSocket or SSE) and the multiplexed
 *           WebSocket /api/v1/stream (session calls and many of those
 *           subscriptions on one socket: http_mux.c); and converts
 *           between JSON (grpc-gateway v1's mapping, as etcd 3.4/3.5 serve
 *           it) and protobuf for any message type protobuf-c describes.
 * Owns:     one libwebsockets context on the server's libuv loop (foreign
 *           loop, no listening socket: it only adopts the sockets the
 *           client-port sniffer hands over), created on the first adopt and
 *           destroyed by http_stop(); every adopted connection and its
 *           request or stream state (a stream's hub stream and its
 *           outbound queue). s->http points at it while it exists.
 * Threads:  the loop thread only (lws runs its callbacks there).
 * Borrowed: the converters write into a caller-owned struct buf; nothing
 *           is kept after they return.
 * Errors:   0 or a negative code (base/err.h): ERR_BAD_REQUEST (malformed
 *           JSON or a value of the wrong type: msg says which field),
 *           ERR_LIMIT (nesting deeper than HTTP_PBJSON_DEPTH_MAX, or the
 *           output buffer's cap), ERR_BUSY (connections at the bound),
 *           ERR_STOPPED (after http_stop), -ENOMEM.
 * Limits:   request body bytes, sized or chunked (LIMIT_REQUEST_BYTES,
 *           else 413; also one WebSocket message, else close 1009), chunk
 *           extension and trailer bytes (HTTP_CHUNK_EXT_BYTES,
 *           HTTP_CHUNK_TRAILER_BYTES, else 400), outbound bytes queued per
 *           stream (LIMIT_CONN_OUT_BYTES: the hub waits; no progress for
 *           HTTP_STREAM_STALL_S closes it), header bytes
 *           (LIMIT_HEADER_BYTES), connections (LIMIT_CONNECTIONS, shared
 *           with gRPC), message nesting (HTTP_PBJSON_DEPTH_MAX);
 *           on /api/v1/stream, subscriptions per socket
 *           (--ws-subscriptions-max) and bytes of one client message
 *           (--ws-message-bytes-max), each answered with an error, never a
 *           close.
 * Not here: the etcd services (registry/server/api.c), the status table
 *           (registry/grpc grpc_code_from_err / grpc_code_http_status),
 *           gRPC itself, the sniffer (registry/server/server.c), watch
 *           matching and catch-up (consensus/watch), lease renewal
 *           (registry/server/api_lease.c, api_lease_renew).
 *
 * JSON mapping (grpc-gateway v1 jsonpb, OrigName): field names as declared
 * in the .proto (range_end, ID, peerURLs); on input the lowerCamelCase
 * json_name is accepted too (rangeEnd). bytes are standard base64 with
 * padding; 64-bit integers are strings on output and a string or a number
 * on input; enums are names on output and a name or a number on input;
 * zero values, empty repeated fields and absent messages are omitted on
 * output, except a oneof member that is set; unknown input fields are
 * ignored (as etcd does); null means "absent".
 */
#ifndef CAIRN_REGISTRY_HTTP_H
#define CAIRN_REGISTRY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "base/buf.h"

/* Message nesting accepted on input and produced on output. A Txn nests
 * two message levels per txn level (RequestOp, TxnRequest) and api.c
 * accepts 32 txn levels; the bound keeps the converter's recursion flat. */
#define HTTP_PBJSON_DEPTH_MAX 80

/* Hard maxima of the multiplexed WebSocket's flags (--ws-subscriptions-max,
 * --ws-message-bytes-max; options.c checks them): each subscription holds
 * ~6 KiB and a hub watcher, and a client message is parsed whole in
 * memory. */
#define HTTP_MUX_SUBS_HARD_MAX      4096
#define HTTP_MUX_MSG_BYTES_HARD_MAX (1024 * 1024)

struct server;

/* Create the lws context on s->loop now (http__adopt does it lazily on the
 * first HTTP connection). Idempotent. Errors: ERR_STOPPED when the server
 * is stopping, -ENOMEM, ERR_INVALID (lws refused: msg says why). */
int http_start(struct server *s, char *msg, size_t msg_len);

/* Close every HTTP connection (pending gateway calls are cancelled, every
 * stream leaves the watch hub at once, before this returns) and
 * destroy the lws context; its handles close over the next loop passes and
 * the state is freed after that. Idempotent; safe when never started. The
 * HTTP side also stops by itself on the loop pass after server_stop() set
 * s->stopping, so calling this is only needed to stop it earlier. */
void http_stop(struct server *s);

/* JSON text json[0..len) -> the protobuf wire bytes of a desc message,
 * appended to out. Only the first JSON value is read (etcd reads one);
 * empty text or null is the empty message. On ERR_BAD_REQUEST msg gets a
 * one-line reason naming the field; out may hold partial bytes. */
int http_pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *json,
                       size_t len, struct buf *out, char *msg, size_t msg_len);

/* Protobuf wire bytes of a desc message -> JSON text appended to out (not
 * NUL-terminated). ERR_BAD_REQUEST when the bytes do not decode. */
int http_pbjson_encode(const ProtobufCMessageDescriptor *desc,
                       const uint8_t *pb, size_t len, struct buf *out);

/* An unpacked message -> JSON text appended to out. */
int http_pbjson_write(const ProtobufCMessage *msg, struct buf *out);

/* Standard base64 with padding. decode returns ERR_BAD_REQUEST on any
 * character outside the alphabet, bad padding or a bad length. */
int http_base64_encode(const uint8_t *p, size_t len, struct buf *out);
int http_base64_decode(const char *s, size_t len, struct buf *out);

#endif

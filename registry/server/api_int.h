/* api_int.h - private to the API layer of registry/server: what the method
 * files (api.c, api_cluster.c, ...) share. */
#ifndef CAIRN_REGISTRY_API_INT_H
#define CAIRN_REGISTRY_API_INT_H

#include "proto/rpc.pb-c.h"
#include "registry/server/server.h"

/* Answer op once (err 0 with the encoded response, or an error). */
void api__finish(struct api_op *op, int err, const uint8_t *resp, size_t len);

/* Answer with a protobuf-c message, packed here. */
void api__finish_msg(struct api_op *op, const ProtobufCMessage *msg);

/* Free op once it finished and no asynchronous callback is still due. An
 * asynchronous step takes op->async_refs++ before it starts and, in its
 * callback, does op->async_refs-- then api__finish (or not) then this. */
void api__op_maybe_free(struct api_op *op);

/* A linearizable read: a read index first (node_read_index), then, once
 * this member has applied everything committed when the request came,
 * serve(op) answers from its store (api__finish); an error from either
 * step, or a caller that went away, finishes op with that error. Returns
 * nonzero when the read index could not start (nothing is due then). */
typedef int (*api_serve_fn)(struct api_op *op);
int api__read_linearizable(struct api_op *op, api_serve_fn serve);

uint64_t api__term_now(struct server *s);
void api__fill_header(struct server *s, Etcdserverpb__ResponseHeader *h,
                      int64_t rev);

/* Methods defined outside api.c. */
int api__member_add(struct api_op *op, const ProtobufCMessage *req);
int api__member_remove(struct api_op *op, const ProtobufCMessage *req);
int api__member_update(struct api_op *op, const ProtobufCMessage *req);
int api__member_promote(struct api_op *op, const ProtobufCMessage *req);
int api__move_leader(struct api_op *op, const ProtobufCMessage *req);
int api__defragment(struct api_op *op, const ProtobufCMessage *req);

#endif

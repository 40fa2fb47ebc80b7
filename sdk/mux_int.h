/*
 * mux_int.h - one WebSocket per client for all of its discovery caches and
 * config watches: the server's multiplexed /api/v1/stream (docs/registry.md,
 * "One socket for everything"). Not installed.
 *
 * Does:     one thread per mux holds the socket: it subscribes each
 *           registered subscription (under its id, with the "since" its
 *           owner gives after a reconnect), routes every message to its
 *           subscription's handler, sends queued messages (acks), and on a
 *           broken socket fails over to the next endpoint (backoff 100 ms
 *           doubling to 2 s) and subscribes everything again.
 * Owns:     the socket, the thread, a copy of the client's endpoints. A mux
 *           is counted: the client holds one reference and each
 *           subscription's owner one, so a discovery or a config watch may
 *           outlive its client (cairn.h promises it).
 * Threads:  handlers (request, on_msg, on_link) run on the mux thread
 *           with no lock of the mux held, one at a time: a handler that
 *           blocks delays every subscription of the client.
 *           cairn__mux_remove may be called from any thread, including a
 *           handler of another subscription.
 * Borrowed: struct cairn__sub is the owner's, registered until removed.
 * Errors:   handlers return 0, or an error that makes the subscription
 *           subscribe again after its own backoff (the socket stays).
 * Limits:   a message CAIRN__MUX_MSG_MAX; the outbound queue
 *           CAIRN__MUX_QUEUE_MAX messages (an ack past it is dropped: the
 *           next release's ack covers it).
 */
#ifndef CAIRN_SDK_MUX_INT_H
#define CAIRN_SDK_MUX_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "sdk/api_int.h"

#define CAIRN__MUX_MSG_MAX   ((size_t)16 << 20)
#define CAIRN__MUX_QUEUE_MAX 1024

struct cairn__mux;
struct cairn__sub;

struct cairn__sub_ops {
    /* The subscribe request's fields besides "id" and "op" (the mux adds
     * them); a new object, or NULL on no memory. */
    json_t *(*request)(struct cairn__sub *s);
    /* A message of this subscription: the subscribe's answer
     * ({"id","sub"} or {"id","error"}) or one of its stream messages. */
    int (*on_msg)(struct cairn__sub *s, const json_t *m);
    /* The socket came up (err 0) or could not be opened / broke (err). */
    void (*on_link)(struct cairn__sub *s, int err);
};

struct cairn__sub {
    const struct cairn__sub_ops *ops;
    void *owner;
    /* the mux's, under its lock: */
    struct cairn__sub *next;
    int64_t id;
    bool sent;         /* subscribed on the current socket */
    bool in_handler;   /* a handler of it runs now */
    uint64_t retry_at; /* ns: not before (after a refused subscribe) */
    int64_t backoff_ms;
};

/* The client's mux, created at first use (a reference for the caller). */
int cairn__mux_get(struct cairn_client *c, struct cairn__mux **out);
/* Drops a reference; the last one stops the thread and frees the mux. */
void cairn__mux_put(struct cairn__mux *m);

/* Registers s (ops and owner set) and subscribes it as soon as the socket
 * is up. */
int cairn__mux_add(struct cairn__mux *m, struct cairn__sub *s);
/* Unregisters s: once this returns no handler of s runs or will run.
 * Sends an unsubscribe when s was subscribed. Not from s's own handler. */
void cairn__mux_remove(struct cairn__mux *m, struct cairn__sub *s);
/* Queues one message (copied; "sub" set to s's id) to send on the current
 * socket; dropped when the socket is down or the queue full. */
void cairn__mux_send(struct cairn__mux *m, struct cairn__sub *s, json_t *msg);

/* A stream "error" object's code -> enum cairn_err. */
int cairn__mux_code_err(const char *code);

#endif

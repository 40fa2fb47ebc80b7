/*
 * api_lock.h - etcd's server-side recipes: v3lockpb.Lock (Lock, Unlock)
 * and v3electionpb.Election (Campaign, Proclaim, Leader, Observe, Resign)
 * (registry/server/api_lock.c).
 *
 * Does:     runs etcd's concurrency recipes inside the member, on the same
 *           internal calls the KV API uses: a key "<name>/<lease hex>"
 *           created with a Txn on create_revision == 0 and attached to the
 *           caller's lease; the holder (leader) is the key of the name with
 *           the lowest create_revision; a waiter reads the key just before
 *           its own (max_create_revision = own - 1, sort CREATE descending,
 *           limit 1) at a linearizable point and watches it until it is
 *           deleted, then reads again.
 * Owns:     one record per call in progress (and its hub stream while it
 *           waits), a poll timer and an idle handle, created on first use;
 *           their root hangs on the watch service (api_watch__lock_slot).
 * Threads:  the loop thread only.
 * Borrowed: requests until the call is answered (api_op keeps them).
 * Errors:   what etcd 3.5 answers: "election: not leader", "election: no
 *           leader", "\"leader\" field must be provided", "mutex: session
 *           is expired" and the inner KV errors "requested lease not found"
 *           / "key is not provided", all gRPC Unknown as etcd's in-process
 *           client makes them; node errors (no leader, timeout, stopped) as
 *           the KV API answers them; a wait past the client's deadline ends
 *           with DEADLINE_EXCEEDED; ERR_BUSY past RECIPES_MAX calls.
 * Limits:   calls in progress (API_LOCK_CALLS_MAX); one hub watcher each
 *           while waiting (the hub's own bounds apply); Observe holds at
 *           most one unsent response (older ones are coalesced).
 * Not here: the KV semantics (consensus/apply), watch matching
 *           (consensus/watch), gRPC framing, the gateway's JSON.
 */
#ifndef CAIRN_REGISTRY_API_LOCK_H
#define CAIRN_REGISTRY_API_LOCK_H

#include <stddef.h>

#include "registry/grpc/grpc.h"
#include "registry/server/server.h"

struct watch_hub;

/* Calls in progress at once (every kind together); one past: ERR_BUSY. */
#define API_LOCK_CALLS_MAX 65536

/* The unary methods: Lock, Unlock, Campaign, Proclaim, Leader, Resign,
 * with etcd's gateway paths (/v3/lock/..., /v3/election/...). */
extern const struct api_method api_lock_methods[];
extern const size_t api_lock_methods_count;

/* Election.Observe, a server stream: writes at most one method into
 * out[0..cap) and returns how many it wrote. Call once at start (the
 * method table is borrowed by the gRPC server); s must outlive it. */
size_t api_lock_stream_methods(struct server *s, struct grpc_method *out,
                               size_t cap);

/* Server stop, before the watch hub closes (api_watch.c calls it): every
 * waiting call ends with "etcdserver: server stopped", Observe streams
 * too; calls with a proposal or read in flight end when the node fails
 * it. Idempotent. */
void api_lock_stop(struct server *s);

/* Provided by api_watch.c for this service: the hub (NULL once stopping),
 * a slot for the service's root (NULL once stopping), and a nudge to run
 * the hub after a watcher was created outside a hub callback. */
struct watch_hub *api_watch__hub(struct server *s);
void **api_watch__lock_slot(struct server *s);
void api_watch__kick(struct server *s);

#endif

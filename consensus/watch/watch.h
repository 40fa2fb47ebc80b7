/*
 * watch.h - the watch hub: etcd v3 watchers fed from the store's events.
 *
 * Does:     keeps every watcher (a key, a prefix or a range, from a start
 *           revision) and hands each one, through its stream's send
 *           callback, the store's events in revision order with no gap and
 *           no duplicate: first from the store's history (catch-up, read in
 *           bounded chunks), then live as batches are applied. Answers
 *           creates, cancels and progress requests in etcd's order
 *           (etcd-api.md 1.5.6 and 7 item 5).
 * Owns:     watchers, streams, the shared copies of live events and every
 *           queue; borrows the store (struct kv) for history reads.
 * Threads:  one thread (the loop thread) for every call; the hub takes no
 *           locks and makes no syscalls except the store's read handles.
 * Borrowed: a struct watch_resp handed to a send callback, and everything it
 *           points to, lives until the callback returns.
 * Errors:   0 or a negative code from base/err.h: ERR_BUSY (a bound was hit;
 *           see each function), -ENOMEM; store errors (ERR_COMPACTED ends a
 *           watcher with compact_revision as etcd does; anything else ends
 *           it with cancel_reason).
 * Limits:   watchers in total and per stream, events queued per watcher, per
 *           stream and bytes of live events in the hub (the recent-history
 *           ring's among them, which has its own bounds), control replies
 *           pending per stream, events read per catch-up chunk, revisions
 *           scanned per chunk, work per watch_hub_run call.
 * Not here: gRPC framing, hasleader, timers and the protobuf encoding
 *           (registry/server/api_watch.c); permission checks (auth).
 *
 * How an event reaches a watcher. A watcher is either synced or unsynced.
 * Synced watchers sit in the match index: exact keys in a hash table, prefix
 * watchers in a hash table per prefix (probed only at the prefix lengths in
 * use), other ranges in a list of distinct ranges sorted by start; watchers
 * with the same key, prefix or range share one group, so the matching work
 * per event does not grow with the number of watchers that share a key.
 * watch_hub_events() copies each matched event once (reference counted)
 * and queues a reference on every matching watcher. A watcher whose queue
 * would pass events_queued_max (or whose stream or the hub passed its
 * bound) drops its queue and becomes unsynced at the revision of the first
 * event it has not sent: memory stays bounded whatever the consumers do.
 * Unsynced watchers read the store's history (kv_events_read) from their
 * next revision, one bounded chunk at a time and only when their queue is
 * empty, until they reach the hub's revision; then they rejoin the index.
 * While any watcher exists the hub also keeps its copies of the newest
 * events (WATCH_RING_EVENTS, WATCH_RING_BYTES in watch_int.h; whole
 * revisions, no gap), and a catch-up from a revision they still cover reads
 * them instead of the store, in smaller chunks: a consumer that fell a
 * little behind under a burst costs no store read and no new copy.
 * Each watcher records the next revision it needs; any event below it is
 * skipped, which is what makes the hand-over between history and live
 * events free of gaps and duplicates.
 *
 * Order on a stream. Control replies (created, canceled) go out first, in
 * the order they were made, and events only when none is pending: so a
 * watcher's events never precede its "created" reply, and creates are
 * answered in arrival order. All events of one revision go in one response
 * unless the watcher asked for fragment and the revision is larger than
 * fragment_bytes. A progress reply (per watcher for progress_notify, or
 * watch_id -1 for a progress request) is sent only when the watchers it
 * covers are synced and their queues are empty, with the hub's revision,
 * so it never runs ahead of an undelivered event.
 */
#ifndef CAIRN_CONSENSUS_WATCH_H
#define CAIRN_CONSENSUS_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consensus/kv/kv.h"

struct watch_hub;
struct watch_stream;

/* etcd's texts for failed creates (cancel_reason). */
#define WATCH_ERR_DUPLICATE_ID                                                 \
    "mvcc: duplicate watch ID provided on the WatchStream"
#define WATCH_ERR_EMPTY_RANGE "mvcc: watcher range is empty"
#define WATCH_ERR_TOO_MANY    "cairn: too many watchers"
#define WATCH_ERR_NO_MEMORY   "cairn: out of memory"
#define WATCH_ERR_STORE       "cairn: history could not be read"

/* How the hub opens a store read handle (a node takes it under its store
 * lock: node_read_begin). NULL hooks: kv_read_begin / kv_read_end. */
typedef int (*watch_read_begin_fn)(void *ctx, struct kv_read **rd);
typedef void (*watch_read_end_fn)(void *ctx, struct kv_read *rd);

struct watch_config {
    struct kv *kv; /* borrowed until watch_hub_close */
    watch_read_begin_fn read_begin;
    watch_read_end_fn read_end;
    void *read_ctx;
    size_t watchers_max;            /* 0: LIMIT_WATCHERS */
    size_t watchers_per_stream_max; /* 0: LIMIT_WATCHERS_PER_CONN */
    size_t events_queued_max;   /* per watcher; 0: LIMIT_WATCH_EVENTS_QUEUED */
    size_t stream_queued_max;   /* per stream; 0: 16 x events_queued_max */
    size_t hub_bytes_max;       /* live event copies; 0: 256 MiB */
    size_t ctrl_queued_max;     /* control replies per stream; 0: 4096 */
    size_t catchup_events_max;  /* per history chunk; 0: 1024 */
    int64_t catchup_revs_max;   /* revisions per chunk; 0: 4096 */
    size_t response_bytes_soft; /* batch revisions up to this; 0: 64 KiB */
    size_t fragment_bytes;      /* fragment threshold; 0: 1.5 MiB */
    /* Called when the first watcher with prev_kv comes (true) and when
     * the last one goes (false); may be NULL. Events that arrive with
     * prev_omitted never reach such a watcher live: it reads them from the
     * store's history instead, with prev. */
    void (*prev_wanted)(void *ctx, bool on);
    void *prev_ctx;
};

/* A watch create request (etcd's WatchCreateRequest), copied by the hub. */
struct watch_create {
    const uint8_t *key;
    size_t key_len;
    const uint8_t *range_end; /* empty: the key alone; "\0": every key >= key */
    size_t range_end_len;
    int64_t start_revision; /* 0: from the next revision */
    int64_t watch_id;       /* 0: the hub assigns one */
    bool prev_kv;
    bool progress_notify;
    bool fragment;
    bool no_put;
    bool no_delete;
    /* The front end's permission check refused it: answered created and
     * canceled with etcd's "permission denied" reason, as etcd does;
     * deny_reason, when not NULL, is the reason instead (a static string:
     * etcd 3.4 says why, e.g. "user name is empty" without a token). */
    bool denied;
    const char *deny_reason;
};

/* A front end's encoding of one event, kept with the hub's copy of the
 * event so that every watcher the event goes to reuses it (1,000 watchers
 * of a prefix: one encoding, not 1,000). The front end may fill an empty
 * slot with a block from watch_enc_alloc; the hub then holds that one
 * reference, lets go of it with the event and counts the bytes against its
 * byte bound while it does. An event has one slot for watchers that get
 * its prev_kv and one for those that do not. */
struct watch_enc {
    uint8_t *data;
    size_t len;
};

/* Encoding blocks are reference counted so that an outbound queue can keep
 * one past the send, and past the hub (watch_enc_hold, watch_enc_release;
 * the block is freed with its last reference). The hub is not needed to
 * free one. Loop thread only: the counts are not atomic.
 * watch_enc_alloc: len bytes and one reference, or NULL. */
uint8_t *watch_enc_alloc(size_t len);
void watch_enc_hold(const void *data);
void watch_enc_release(const void *data);

/* One WatchResponse for the front end to encode. Events of a DELETE carry
 * only the key and mod_revision; has_prev is set only when the watcher
 * asked for prev_kv and the previous record exists; prev is meaningful
 * only then. */
struct watch_resp {
    int64_t watch_id;
    int64_t revision; /* header revision; 0 for a compaction cancel */
    bool created;
    bool canceled;
    bool fragment;
    int64_t compact_revision;
    const char *cancel_reason; /* NULL: none */
    const struct kv_event *events;
    struct watch_enc **enc; /* per event: its slot for this view, or NULL */
    size_t events_count;
};

/* Send one response. Return 0 when it was queued, ERR_BUSY when the stream
 * has no room: the hub keeps the response and stops sending on this stream
 * until watch_stream_writable(). Any other error is treated as ERR_BUSY.
 * It must not call back into the hub. */
typedef int (*watch_send_fn)(void *ctx, const struct watch_resp *r);

struct watch_stats {
    size_t watchers;
    size_t streams;
    size_t synced;
    size_t unsynced;
    size_t groups;
    size_t events_queued; /* references in watcher queues */
    size_t event_bytes;   /* bytes of live event copies */
    uint64_t overflows;   /* synced -> unsynced moves */
    uint64_t catchup_reads;
    uint64_t ring_reads; /* of catchup_reads, served from recent history */
    size_t ring_events;  /* events the recent-history ring holds */
    size_t ring_bytes;   /* of event_bytes, theirs (with encodings) */
    uint64_t events_sent;
    uint64_t responses_sent;
    int64_t rev; /* the hub's revision (last batch seen) */
};

/* Create the hub; its revision starts at the store's. cfg is copied.
 * Errors: -ENOMEM. */
int watch_hub_init(const struct watch_config *cfg, struct watch_hub **out);

/* Free everything; every stream must be closed first. */
void watch_hub_close(struct watch_hub *h);

/* The events of one applied batch, in revision order (node_observer's
 * events callback); rev is the store revision after the batch. The events
 * are copied when some watcher needs them. */
void watch_hub_events(struct watch_hub *h, const struct kv_event *evs, size_t n,
                      int64_t rev);

/* The store was replaced (a Raft snapshot installed): its history may
 * have jumped past events the hub never saw. Every synced watcher becomes
 * unsynced after the hub's revision and catches up from the new store (or
 * is canceled with compact_revision when that history is gone); the hub's
 * revision becomes the store's. */
void watch_hub_restored(struct watch_hub *h);

/* Do pending work (sends, history reads), at most about budget events.
 * Returns true if work remains (call again soon). */
bool watch_hub_run(struct watch_hub *h, size_t budget);

/* True if watch_hub_run has something to do. */
bool watch_hub_pending(const struct watch_hub *h);

/* The progress_notify interval elapsed: every watcher that asked for it
 * and got no event since the last tick gets a progress reply. */
void watch_hub_progress_tick(struct watch_hub *h);

void watch_hub_stats(const struct watch_hub *h, struct watch_stats *out);

/* A stream: one gRPC Watch call. send/ctx are kept until the stream is
 * closed. Errors: -ENOMEM. */
int watch_stream_open(struct watch_hub *h, watch_send_fn send, void *ctx,
                      struct watch_stream **out);

/* Remove every watcher of the stream and free it; nothing is sent. */
void watch_stream_close(struct watch_stream *st);

/* Create a watcher and queue its "created" reply (or a failed-create reply
 * with watch_id -1 and a cancel_reason, as etcd). Returns 0 either way, or
 * ERR_BUSY when ctrl_queued_max replies are already waiting (the client
 * sends faster than it reads; the caller should end the stream). */
int watch_stream_create(struct watch_stream *st, const struct watch_create *c);

/* Cancel watcher id and queue the "canceled" reply; an unknown id is
 * ignored (returns 0). ERR_BUSY as for create. */
int watch_stream_cancel(struct watch_stream *st, int64_t watch_id);

/* A progress request: one reply with watch_id -1 once every watcher of the
 * stream is synced and has sent its queued events. */
void watch_stream_progress(struct watch_stream *st);

/* The transport has room again after a send returned ERR_BUSY. */
void watch_stream_writable(struct watch_stream *st);

/* Watchers on the stream. */
size_t watch_stream_watchers(const struct watch_stream *st);

#endif

/*
 * watch_int.h - the hub's private structures, shared by watch.c (hub,
 * streams, queues) and watch_index.c (the match index).
 */
#ifndef CAIRN_CONSENSUS_WATCH_INT_H
#define CAIRN_CONSENSUS_WATCH_INT_H

#include "consensus/watch/watch.h"

#include "base/limits.h"

/* Longest key or prefix a watcher may name: the store's hard maximum key
 * size (LIMIT_KEY_BYTES, LMDB's 511), checked at hub init. No stored key is
 * longer, so a longer one could never match. */
#define WATCH_KEY_MAX 511

/* A shared copy of one live event (or a private copy of a history event),
 * reference counted by the queues that hold it. */
struct wev {
    uint32_t refs;
    uint8_t type; /* enum kv_event_type */
    bool has_prev;
    bool prev_omitted;   /* kv_event's: never goes live to a prev_kv watcher */
    size_t bytes;        /* allocation size, for the hub's byte bound */
    size_t alloc_bytes;  /* what mem_cache_alloc was asked for */
    uint8_t enc_counted; /* bit i: enc[i] is in bytes */
    struct kv_kv kv;
    struct kv_kv prev;
    struct watch_enc enc[2]; /* the front end's encodings, [has_prev] */
    uint8_t data[];          /* key | value | prev value */
};

enum wkind {
    WK_EXACT = 0,  /* one key */
    WK_PREFIX = 1, /* every key starting with key (range_end = prefix end) */
    WK_RANGE = 2,  /* [key, end), end empty meaning +infinity */
};

/* Watchers that share one key, prefix or range. */
struct wgroup {
    struct wgroup *hnext; /* hash chain */
    enum wkind kind;
    uint64_t hash;
    uint8_t *key;
    size_t key_len;
    uint8_t *end; /* WK_RANGE: end, NULL/0 for +infinity */
    size_t end_len;
    struct watcher *head; /* members (all synced) */
    size_t count;
};

struct watcher {
    struct watch_stream *st;
    int64_t id;
    struct watcher *idnext; /* stream's id hash chain */
    uint8_t *key;           /* as requested (for history reads) */
    size_t key_len;
    uint8_t *end;
    size_t end_len;
    enum wkind kind;
    const uint8_t *match; /* kind's key: the key, the prefix, range start */
    size_t match_len;
    const uint8_t *match_end; /* WK_RANGE end or NULL for +infinity */
    size_t match_end_len;
    bool prev_kv;
    bool progress_notify;
    bool fragment;
    bool no_put;
    bool no_delete;
    bool synced;       /* in the index, fed live */
    bool had_events;   /* since the last progress tick */
    bool progress_due; /* send a progress reply when idle */
    bool in_ready;
    int64_t next_rev; /* first revision not yet queued or sent */
    /* index membership */
    struct wgroup *group;
    struct watcher *gprev, *gnext;
    /* stream's ready ring (queued events, catching up, progress due) */
    struct watcher *rprev, *rnext;
    /* hub's list of progress_notify watchers */
    struct watcher *pprev, *pnext;
    /* the queue: a ring of event references */
    struct wev **q;
    size_t qhead;
    size_t qlen;
    size_t qcap;
    size_t frag_sent; /* events of the head revision sent as fragments */
};

enum ctrl_kind {
    CTRL_CREATED = 0,
    CTRL_CREATE_FAILED = 1,
    CTRL_CANCELED = 2,
    CTRL_COMPACTED = 3,
    CTRL_FAILED = 4, /* canceled with a reason (store error) */
};

struct ctrl {
    enum ctrl_kind kind;
    int64_t watch_id;
    int64_t rev;
    int64_t compact_rev;
    const char *reason;
};

struct watch_stream {
    struct watch_hub *hub;
    watch_send_fn send;
    void *ctx;
    struct watch_stream *prev, *next;   /* hub's stream list */
    struct watch_stream *aprev, *anext; /* hub's active ring */
    bool in_active;
    bool blocked; /* send said ERR_BUSY; wait for writable */
    bool progress_pending;
    /* watchers by id */
    struct watcher **ids;
    size_t ids_mask;
    size_t watchers;
    int64_t next_id;
    /* ready ring */
    struct watcher *ready;
    size_t ready_count;
    size_t queued; /* event references queued on this stream */
    /* control replies (ring) */
    struct ctrl *ctrl;
    size_t ctrl_head;
    size_t ctrl_len;
    size_t ctrl_cap;
};

struct whash {
    struct wgroup **b;
    size_t mask;
    size_t count;
};

/* The match index over synced watchers. */
struct windex {
    struct whash exact;
    struct whash prefix;
    uint64_t prefix_lens[(WATCH_KEY_MAX + 64) / 64 + 1]; /* bitmap */
    uint32_t prefix_len_groups[WATCH_KEY_MAX + 2];
    struct whash ranges_h;  /* WK_RANGE groups by (start, end) */
    struct wgroup **ranges; /* the same, sorted by start */
    size_t ranges_count;
    size_t ranges_cap;
};

/* Unsynced watchers read history together, this many at most. */
#define WATCH_CATCHUP_BATCH 256

/* The recent-history ring: the hub's copies of the newest events, in
 * revision order, every event of each revision it holds (a gap empties
 * it). Catch-up from a revision it holds reads it instead of the store:
 * no store read, and the copies and their encodings are the ones live
 * watchers already share. Bounded by events and by bytes (and by the
 * hub's byte bound when it takes an event). */
#define WATCH_RING_EVENTS 4096 /* a power of two */
#define WATCH_RING_BYTES  ((size_t)16 << 20)
/* Events per catch-up chunk from the ring (at most catchup_events_max):
 * small, so that the batch's queues stay in the cache between being
 * filled and being sent; a store read is dearer and takes more. */
#define WATCH_RING_CHUNK  64

struct watch_hub {
    struct watch_config cfg;
    int64_t rev;
    struct windex idx;
    struct windex cidx; /* the batch being caught up (empty between) */
    struct watcher *batch[WATCH_CATCHUP_BATCH];
    struct watch_stream *streams;
    struct watch_stream *active; /* streams with work and not blocked */
    size_t streams_count;
    size_t watchers;
    size_t synced;
    size_t queued;
    size_t bytes;
    struct watcher *progress; /* progress_notify watchers */
    uint64_t overflows;
    uint64_t catchup_reads;
    uint64_t ring_reads; /* catch-up chunks served from the ring */
    uint64_t events_sent;
    uint64_t responses_sent;
    /* recent-history ring (WATCH_RING_EVENTS slots once allocated) */
    struct wev **ring;
    size_t ring_head;
    size_t ring_len;
    size_t ring_bytes;    /* alloc_bytes of its events */
    int64_t ring_skip;    /* takes no event of this revision or older */
    int64_t ring_omit_hi; /* newest revision taken with prev_omitted */
    size_t prev_watchers; /* watchers with prev_kv */
    /* scratch for responses */
    struct kv_event *scratch;
    struct watch_enc **scratch_enc;
    size_t scratch_cap;
};

/* Index (watch_index.c). add may fail with -ENOMEM. */
int windex_init(struct windex *x);
void windex_free(struct windex *x);
int windex_add(struct windex *x, struct watcher *w);
void windex_remove(struct windex *x, struct watcher *w);
size_t windex_groups(const struct windex *x);

/* Call fn on each group whose members match key (each group at most once).
 * fn may remove members of the group it is called with (not others). */
typedef void (*windex_fn)(void *ctx, struct wgroup *g);
void windex_match(struct windex *x, const uint8_t *key, size_t key_len,
                  windex_fn fn, void *ctx);

/* The prefix's range end as etcd computes it (last byte + 1, trailing 0xff
 * dropped); *out_len 0 when there is none ("\0": every key). out must hold
 * len bytes. */
void watch__prefix_end(const uint8_t *p, size_t len, uint8_t *out,
                       size_t *out_len);

#endif

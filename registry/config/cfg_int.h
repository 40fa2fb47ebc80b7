/*
 * cfg_int.h - private to registry/config: the member's config-center state
 * (secret key, subscribers, acks waited for, counters).
 */
#ifndef CAIRN_REGISTRY_CFG_INT_H
#define CAIRN_REGISTRY_CFG_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "registry/config/cfgapi.h"

#define CFG_SUBS_MAX    100000 /* subscribers tracked per member */
#define CFG_SUB_CONFIGS 256    /* configs tracked per subscriber */
#define CFG_WAITERS_MAX 1024   /* PUT ?wait_acks= calls at once */
#define CFG_LAT_BUCKETS 14
#define CFG_WAIT_MAX_S  300

/* One config's delivered / acknowledged versions at one subscriber. */
struct cfg_sub_cfg {
    struct cfg_id id;
    int64_t delivered;
    int64_t delivered_at_ms;
    int64_t created_ms; /* the delivered release's publish time */
    bool gray;
    int64_t acked;
    int64_t acked_at_ms;
};

/* One subscriber. The configs it was sent grow on demand (most streams
 * follow one config; a fixed array of CFG_SUB_CONFIGS made each
 * subscriber 117 KB, 1.1 GB at 10,000 subscribers). */
struct cfg_sub {
    struct cfg_sub *prev, *next;
    const struct cfg_client *client; /* borrowed from the stream */
    char peer[64];
    char scope[CFG_KEY_MAX];
    char name[CFG_NAME_MAX + 1];
    int64_t since_ms;
    size_t n;   /* cfgs used */
    size_t cap; /* cfgs allocated, <= CFG_SUB_CONFIGS */
    struct cfg_sub_cfg *cfgs;
};

struct cfg_waiter;

struct cfg_state {
    bool has_key;
    unsigned char key[32];
    struct cfg_sub *subs;
    size_t subs_open;
    struct cfg_waiter *waiters;
    size_t waiters_open;
    struct {
        uint64_t publishes;
        uint64_t rollbacks;
        uint64_t deletes;
        uint64_t gray_changes;
        uint64_t invalid;
        uint64_t reads;
        uint64_t subscribers_total;
        uint64_t push_messages;
        uint64_t acks;
    } ctr;
    /* publish-to-ack latency, seconds: cumulative buckets */
    uint64_t lat_count;
    double lat_sum;
    uint64_t lat_buckets[CFG_LAT_BUCKETS];
};

/* The state, created on first use (NULL when out of memory). */
struct cfg_state *cfg__state(struct server *s);

/* Subscribers that cover id (open streams whose scope holds it). */
size_t cfg__subs_covering(struct server *s, const struct cfg_id *id);
/* ... of which acknowledged version v or later. */
size_t cfg__subs_acked(struct server *s, const struct cfg_id *id, int64_t v);

/* The subscribers view of id, as a JSON array (a new reference). */
json_t *cfg__subs_json(struct server *s, const struct cfg_id *id);

/* A waiter for acks of (id, v): done(ctx, acked, total) runs once, when
 * acked >= need or at the deadline. cancel forgets it (done never runs).
 * NULL when there is nothing to wait for (no subscriber, or enough acks
 * already) or no waiter can be held (CFG_WAITERS_MAX, out of memory):
 * then *now is the answer to give at once (timed_out set in the second
 * case: the acks were not awaited). */
typedef void (*cfg_wait_fn)(void *ctx, size_t acked, size_t total,
                            bool timed_out);
struct cfg_acks {
    size_t acked;
    size_t total;
    bool timed_out;
};
struct cfg_waiter *cfg__wait_acks(struct server *s, const struct cfg_id *id,
                                  int64_t v, double fraction,
                                  uint32_t timeout_ms, cfg_wait_fn done,
                                  void *ctx, struct cfg_acks *now);
void cfg__wait_cancel(struct server *s, struct cfg_waiter *w);

int64_t cfg__now_ms(void);

/* GET /api/v1/audit and /api/v1/audit/verify (cfg_audit.c), answered at
 * once from this member's store: the JSON answer (a new reference, NULL
 * only when out of memory) and its HTTP status in *status. */
json_t *cfg__audit(struct server *s, const char *method, const char *path,
                   const char *query, const char *token, const char *cert_user,
                   int *status);

#endif

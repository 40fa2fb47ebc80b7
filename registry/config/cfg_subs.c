/*
 * cfg_subs.c - the member's config-center state: the secret key, the
 * subscribers of its config streams (who runs what: delivered and
 * acknowledged versions), PUT ?wait_acks= waiters, the publish-to-ack
 * latency histogram and the /metrics text.
 *
 * The subscribers view is this member's: each member knows the streams it
 * serves. A cluster-wide view is the union of every member's answer (the
 * docs say so); acks are not written to the store, so 10,000 subscribers
 * acking a publish cost no Raft writes.
 *
 * PUT ?wait_acks= waiters count acks as they come: a waiter for (config,
 * version) is created with one walk of the subscribers (who covers it,
 * who acked already), then each ack of that config moves the counters of
 * its waiters whose version it reaches, and a subscriber that closes
 * takes its acks back. An ack costs O(waiters of its config), at most
 * CFG_WAITERS_MAX and usually zero or one, whatever the subscriber count
 * (the walk per ack it replaces made one publish to 9,998 subscribers
 * take about 25 s).
 */
#include "registry/config/cfg_int.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/apply/apply.h"
#include "consensus/node/node.h"
#include "registry/server/server.h"

struct cfg_waiter {
    struct cfg_waiter *prev, *next;
    struct server *s;
    struct cfg_id id;
    int64_t v;
    size_t need;
    size_t total;
    /* subscribers of id that acked v or later, kept by every ack and
     * close (cfg_sub_acked, cfg_sub_close) so that an ack costs O(waiters
     * of its config), not a walk of every subscriber */
    size_t acked;
    uv_timer_t timer;
    cfg_wait_fn done;
    void *ctx;
    bool fired;
};

static const double lat_bounds[CFG_LAT_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

static int load_key(struct cfg_state *st, const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned char b[200];
    size_t n;
    if (f == NULL) {
        LOGE("config", "--config-secret-key-file %s: %s", path,
             strerror(errno));
        return -errno;
    }
    n = fread(b, 1, sizeof(b), f);
    fclose(f);
    /* Exactly 32 bytes are a raw key whatever they are: a random key ends
     * in a newline, a return or a space about once in 85 (trimming those
     * refused it). Only the hex form may end in white space. */
    while (n != 32 && n > 0 &&
           (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' ')) {
        n--;
    }
    if (n == 32) {
        memcpy(st->key, b, 32);
    } else if (n == 64) {
        for (int i = 0; i < 32; i++) {
            unsigned v;
            char h[3] = {(char)b[2 * i], (char)b[2 * i + 1], 0};
            if (sscanf(h, "%02x", &v) != 1) {
                LOGE("config",
                     "--config-secret-key-file %s: not 64 hex "
                     "digits",
                     path);
                return ERR_INVALID;
            }
            st->key[i] = (unsigned char)v;
        }
    } else {
        LOGE("config",
             "--config-secret-key-file %s: want 32 raw bytes or 64 hex "
             "digits, found %zu bytes",
             path, n);
        return ERR_INVALID;
    }
    st->has_key = true;
    return 0;
}

struct cfg_state *cfg__state(struct server *s)
{
    struct cfg_state *st = s->config;
    if (st != NULL) {
        return st;
    }
    st = mem_calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    s->config = st;
    return st;
}

int cfgapi_start(struct server *s, char *msg, size_t msg_len)
{
    struct cfg_state *st = cfg__state(s);
    if (st == NULL) {
        return -ENOMEM;
    }
    if (s->opt->config_secret_key_file != NULL &&
        s->opt->config_secret_key_file[0] != '\0') {
        int rc = load_key(st, s->opt->config_secret_key_file);
        if (rc != 0) {
            snprintf(msg, msg_len,
                     "--config-secret-key-file %s: unreadable, or not 32 "
                     "bytes / 64 hex digits",
                     s->opt->config_secret_key_file);
            return ERR_INVALID;
        }
    }
    return 0;
}

static void waiter_closed(uv_handle_t *h)
{
    mem_free(h->data);
}

static void waiter_unlink(struct cfg_state *st, struct cfg_waiter *w)
{
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        st->waiters = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    }
    st->waiters_open--;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, waiter_closed);
}

void cfgapi_stop(struct server *s)
{
    struct cfg_state *st = s->config;
    if (st == NULL) {
        return;
    }
    while (st->waiters != NULL) {
        struct cfg_waiter *w = st->waiters;
        cfg_wait_fn done = w->done;
        void *ctx = w->ctx;
        size_t total = w->total;
        waiter_unlink(st, w);
        done(ctx, 0, total, true);
    }
}

void cfgapi_free(struct server *s)
{
    struct cfg_state *st = s->config;
    if (st == NULL) {
        return;
    }
    ASSERT(st->waiters == NULL);
    while (st->subs != NULL) {
        cfg_sub_close(s, st->subs);
    }
    memset(st->key, 0, sizeof(st->key));
    mem_free(st);
    s->config = NULL;
}

/* ---------------------------------------------------------- subscribers */

/* Does sub's scope hold id, whose head key is k[0..kn)? */
static bool covers(const struct cfg_sub *sub, const struct cfg_id *id,
                   const char *k, size_t kn)
{
    size_t sn = strlen(sub->scope);
    if (sn > kn || memcmp(k, sub->scope, sn) != 0) {
        return false;
    }
    /* a scope of one config is its app's prefix plus the name */
    return sub->name[0] == '\0' || strcmp(sub->name, id->name) == 0;
}

static bool same_id(const struct cfg_id *a, const struct cfg_id *b)
{
    return strcmp(a->name, b->name) == 0 && strcmp(a->app, b->app) == 0 &&
           strcmp(a->ns, b->ns) == 0;
}

struct cfg_sub *cfg_sub_open(struct server *s, const struct cfg_client *c,
                             const char *peer, const char *scope,
                             const char *name)
{
    struct cfg_state *st = cfg__state(s);
    struct cfg_sub *sub;
    if (st == NULL || st->subs_open >= CFG_SUBS_MAX) {
        return NULL;
    }
    sub = mem_calloc(1, sizeof(*sub));
    if (sub == NULL) {
        return NULL;
    }
    sub->client = c;
    snprintf(sub->peer, sizeof(sub->peer), "%s", peer != NULL ? peer : "");
    snprintf(sub->scope, sizeof(sub->scope), "%s", scope);
    snprintf(sub->name, sizeof(sub->name), "%s", name != NULL ? name : "");
    sub->since_ms = cfg__now_ms();
    sub->next = st->subs;
    if (st->subs != NULL) {
        st->subs->prev = sub;
    }
    st->subs = sub;
    st->subs_open++;
    st->ctr.subscribers_total++;
    return sub;
}

static void waiters_unack(struct cfg_state *st, const struct cfg_sub *sub);

void cfg_sub_close(struct server *s, struct cfg_sub *sub)
{
    struct cfg_state *st = s->config;
    if (sub == NULL || st == NULL) {
        return;
    }
    waiters_unack(st, sub);
    if (sub->prev != NULL) {
        sub->prev->next = sub->next;
    } else {
        st->subs = sub->next;
    }
    if (sub->next != NULL) {
        sub->next->prev = sub->prev;
    }
    st->subs_open--;
    mem_free(sub->cfgs);
    mem_free(sub);
}

static struct cfg_sub_cfg *sub_cfg(struct cfg_sub *sub, const struct cfg_id *id,
                                   bool add)
{
    for (size_t i = 0; i < sub->n; i++) {
        if (same_id(&sub->cfgs[i].id, id)) {
            return &sub->cfgs[i];
        }
    }
    if (!add || sub->n == CFG_SUB_CONFIGS) {
        return NULL; /* bounded: configs past the bound are not tracked */
    }
    if (sub->n == sub->cap) {
        size_t cap = sub->cap == 0 ? 1 : sub->cap * 2;
        cap = cap > CFG_SUB_CONFIGS ? CFG_SUB_CONFIGS : cap;
        struct cfg_sub_cfg *a = mem_realloc(sub->cfgs, cap * sizeof(*a));
        if (a == NULL) {
            return NULL; /* out of memory: not tracked, as past the bound */
        }
        sub->cfgs = a;
        sub->cap = cap;
    }
    ASSERT(sub->n < sub->cap);
    struct cfg_sub_cfg *e = &sub->cfgs[sub->n++];
    memset(e, 0, sizeof(*e));
    e->id = *id;
    return e;
}

int64_t cfg_sub_delivered_version(const struct cfg_sub *sub,
                                  const struct cfg_id *id, bool *gray)
{
    *gray = false;
    if (sub == NULL) {
        return 0;
    }
    for (size_t i = 0; i < sub->n; i++) {
        const struct cfg_sub_cfg *e = &sub->cfgs[i];
        if (strcmp(e->id.name, id->name) == 0 &&
            strcmp(e->id.app, id->app) == 0 && strcmp(e->id.ns, id->ns) == 0) {
            *gray = e->gray;
            return e->delivered;
        }
    }
    return 0;
}

void cfg_sub_delivered(struct server *s, struct cfg_sub *sub,
                       const struct cfg_id *id, int64_t version,
                       int64_t created_ms, bool gray)
{
    struct cfg_state *st = s->config;
    struct cfg_sub_cfg *e;
    if (sub == NULL || st == NULL) {
        return;
    }
    st->ctr.push_messages++;
    e = sub_cfg(sub, id, true);
    if (e != NULL) {
        e->delivered = version;
        e->delivered_at_ms = cfg__now_ms();
        e->created_ms = created_ms;
        e->gray = gray;
    }
}

static void waiters_ack(struct cfg_state *st, const struct cfg_id *id,
                        int64_t from, int64_t to);

int cfg_sub_acked(struct server *s, struct cfg_sub *sub,
                  const struct cfg_id *id, int64_t version)
{
    struct cfg_state *st = s->config;
    struct cfg_sub_cfg *e;
    if (sub == NULL || st == NULL) {
        return ERR_INVALID;
    }
    e = sub_cfg(sub, id, false);
    if (e == NULL || version > e->delivered || version < 1) {
        return ERR_INVALID; /* never delivered here: not an ack */
    }
    if (version <= e->acked) {
        return 0; /* a repeat */
    }
    int64_t before = e->acked;
    e->acked = version;
    e->acked_at_ms = cfg__now_ms();
    st->ctr.acks++;
    if (version == e->delivered && e->created_ms > 0) {
        double d = (double)(e->acked_at_ms - e->created_ms) / 1000.0;
        if (d < 0) {
            d = 0;
        }
        st->lat_count++;
        st->lat_sum += d;
        for (int i = 0; i < CFG_LAT_BUCKETS; i++) {
            if (d <= lat_bounds[i]) {
                st->lat_buckets[i]++;
            }
        }
    }
    waiters_ack(st, id, before, version);
    return 0;
}

size_t cfg__subs_covering(struct server *s, const struct cfg_id *id)
{
    struct cfg_state *st = s->config;
    char k[CFG_KEY_MAX];
    size_t kn = cfg_key_head(id, k, sizeof(k));
    size_t n = 0;
    for (struct cfg_sub *sub = st != NULL ? st->subs : NULL; sub != NULL;
         sub = sub->next) {
        n += covers(sub, id, k, kn);
    }
    return n;
}

size_t cfg__subs_acked(struct server *s, const struct cfg_id *id, int64_t v)
{
    struct cfg_state *st = s->config;
    char k[CFG_KEY_MAX];
    size_t kn = cfg_key_head(id, k, sizeof(k));
    size_t n = 0;
    for (struct cfg_sub *sub = st != NULL ? st->subs : NULL; sub != NULL;
         sub = sub->next) {
        if (covers(sub, id, k, kn)) {
            struct cfg_sub_cfg *e = sub_cfg(sub, id, false);
            n += e != NULL && e->acked >= v;
        }
    }
    return n;
}

static void iso_ms(int64_t ms, char *out, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ms % 1000));
}

json_t *cfg__subs_json(struct server *s, const struct cfg_id *id)
{
    struct cfg_state *st = s->config;
    json_t *a = json_array();
    size_t n = 0;
    char k[CFG_KEY_MAX];
    size_t kn = cfg_key_head(id, k, sizeof(k));
    for (struct cfg_sub *sub = st != NULL ? st->subs : NULL;
         sub != NULL && a != NULL && n < CFG_SUBS_MAX; sub = sub->next) {
        char since[64], acked_at[64];
        if (!covers(sub, id, k, kn)) {
            continue;
        }
        struct cfg_sub_cfg *e = sub_cfg(sub, id, false);
        iso_ms(sub->since_ms, since, sizeof(since));
        json_t *o = json_pack(
            "{s:s,s:o,s:s,s:s,s:I,s:I}", "client_id", sub->client->client_id,
            "labels", cfg_labels_to_json(&sub->client->labels), "address",
            sub->peer, "connected_since", since, "delivered_version",
            (json_int_t)(e != NULL ? e->delivered : 0), "acked_version",
            (json_int_t)(e != NULL ? e->acked : 0));
        if (o != NULL && e != NULL && e->acked_at_ms > 0) {
            iso_ms(e->acked_at_ms, acked_at, sizeof(acked_at));
            json_object_set_new(o, "acked_at", json_string(acked_at));
        }
        json_array_append_new(a, o);
        n++;
    }
    return a;
}

/* -------------------------------------------------------------- waiters */

static void waiter_fire(struct cfg_state *st, struct cfg_waiter *w,
                        size_t acked, bool timed_out)
{
    cfg_wait_fn done = w->done;
    void *ctx = w->ctx;
    size_t total = w->total;
    waiter_unlink(st, w);
    done(ctx, acked, total, timed_out);
}

#ifndef NDEBUG
/* The counter agrees with a walk of every subscriber (debug builds). */
static bool waiter_invariant_ok(const struct cfg_waiter *w)
{
    return w->acked == cfg__subs_acked(w->s, &w->id, w->v);
}
#endif

static void waiter_timeout(uv_timer_t *t)
{
    struct cfg_waiter *w = t->data;
    struct cfg_state *st = w->s->config;
    DASSERT(waiter_invariant_ok(w));
    waiter_fire(st, w, w->acked, true);
}

/* A subscriber's ack of id moved from version from to to (from < to):
 * count it for each waiter of id whose version it now reaches, and answer
 * those that have what they need. Bounded by the waiters held. */
static void waiters_ack(struct cfg_state *st, const struct cfg_id *id,
                        int64_t from, int64_t to)
{
    struct cfg_waiter *w = st->waiters;
    size_t n = 0;
    ASSERT(from < to);
    while (w != NULL) {
        struct cfg_waiter *next = w->next;
        ASSERT(n++ < CFG_WAITERS_MAX);
        if (from < w->v && w->v <= to && same_id(&w->id, id)) {
            w->acked++;
            DASSERT(waiter_invariant_ok(w));
            if (w->acked >= w->need) {
                waiter_fire(st, w, w->acked, false);
            }
        }
        w = next;
    }
}

/* sub goes: its acks no longer count (as a walk would no longer find
 * them). Nothing to do without waiters, the usual case. */
static void waiters_unack(struct cfg_state *st, const struct cfg_sub *sub)
{
    size_t n = 0;
    for (struct cfg_waiter *w = st->waiters; w != NULL; w = w->next) {
        ASSERT(n++ < CFG_WAITERS_MAX);
        for (size_t i = 0; i < sub->n; i++) {
            const struct cfg_sub_cfg *e = &sub->cfgs[i];
            if (e->acked >= w->v && same_id(&e->id, &w->id)) {
                ASSERT(w->acked > 0);
                w->acked--;
            }
        }
    }
}

struct cfg_waiter *cfg__wait_acks(struct server *s, const struct cfg_id *id,
                                  int64_t v, double fraction,
                                  uint32_t timeout_ms, cfg_wait_fn done,
                                  void *ctx, struct cfg_acks *now)
{
    struct cfg_state *st = cfg__state(s);
    struct cfg_waiter *w;
    memset(now, 0, sizeof(*now));
    if (st == NULL) {
        now->timed_out = true;
        return NULL;
    }
    size_t total = cfg__subs_covering(s, id);
    size_t need = (size_t)ceil(fraction * (double)total);
    size_t acked = need == 0 ? 0 : cfg__subs_acked(s, id, v);
    now->acked = acked;
    now->total = total;
    if (need == 0 || acked >= need) {
        return NULL; /* nothing to wait for: the caller answers now */
    }
    if (st->waiters_open >= CFG_WAITERS_MAX ||
        (w = mem_calloc(1, sizeof(*w))) == NULL) {
        now->timed_out = true; /* not awaited: say so */
        return NULL;
    }
    w->s = s;
    w->id = *id;
    w->v = v;
    w->need = need;
    w->total = total;
    w->acked = acked;
    w->done = done;
    w->ctx = ctx;
    uv_timer_init(s->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, waiter_timeout, timeout_ms, 0);
    w->next = st->waiters;
    if (st->waiters != NULL) {
        st->waiters->prev = w;
    }
    st->waiters = w;
    st->waiters_open++;
    return w;
}

void cfg__wait_cancel(struct server *s, struct cfg_waiter *w)
{
    struct cfg_state *st = s->config;
    if (w != NULL && st != NULL) {
        waiter_unlink(st, w);
    }
}

/* -------------------------------------------------------------- metrics */

int cfgapi_metrics(struct server *s, struct buf *out)
{
    struct cfg_state *st = cfg__state(s);
    char text[1024];
    int rc = 0;
    if (st == NULL) {
        return -ENOMEM;
    }
    static const struct {
        const char *name;
        const char *type;
        const char *help;
    } m[] = {
        {"publishes_total", "counter", "Config releases published."},
        {"rollbacks_total", "counter", "Config rollbacks."},
        {"deletes_total", "counter", "Configs deleted."},
        {"gray_changes_total", "counter",
         "Gray releases opened, promoted or abandoned."},
        {"invalid_documents_total", "counter",
         "Publishes refused: the document did not validate."},
        {"reads_total", "counter", "Config reads (GET of a config)."},
        {"subscribers_total", "counter", "Config streams opened."},
        {"subscribers", "gauge", "Config streams open now."},
        {"push_messages_total", "counter",
         "Config stream messages carrying a release."},
        {"acks_total", "counter", "Acknowledgements received."},
    };
    const uint64_t v[] = {
        st->ctr.publishes,         st->ctr.rollbacks,
        st->ctr.deletes,           st->ctr.gray_changes,
        st->ctr.invalid,           st->ctr.reads,
        st->ctr.subscribers_total, st->subs_open,
        st->ctr.push_messages,     st->ctr.acks,
    };
    for (size_t i = 0; rc == 0 && i < sizeof(m) / sizeof(m[0]); i++) {
        int n = snprintf(text, sizeof(text),
                         "# HELP cairn_config_%s %s\n"
                         "# TYPE cairn_config_%s %s\n"
                         "cairn_config_%s %" PRIu64 "\n",
                         m[i].name, m[i].help, m[i].name, m[i].type, m[i].name,
                         v[i]);
        rc = buf_append(out, text, (size_t)n);
    }
    if (rc == 0) {
        int n = snprintf(text, sizeof(text),
                         "# HELP cairn_config_publish_to_ack_seconds Time from "
                         "a release's publish to a subscriber's ack.\n"
                         "# TYPE cairn_config_publish_to_ack_seconds "
                         "histogram\n");
        rc = buf_append(out, text, (size_t)n);
    }
    for (int i = 0; rc == 0 && i < CFG_LAT_BUCKETS; i++) {
        int n = snprintf(text, sizeof(text),
                         "cairn_config_publish_to_ack_seconds_bucket{le=\"%g\"}"
                         " %" PRIu64 "\n",
                         lat_bounds[i], st->lat_buckets[i]);
        rc = buf_append(out, text, (size_t)n);
    }
    if (rc == 0) {
        int n =
            snprintf(text, sizeof(text),
                     "cairn_config_publish_to_ack_seconds_bucket{le=\"+"
                     "Inf\"} %" PRIu64 "\n"
                     "cairn_config_publish_to_ack_seconds_sum %.6f\n"
                     "cairn_config_publish_to_ack_seconds_count %" PRIu64 "\n",
                     st->lat_count, st->lat_sum, st->lat_count);
        rc = buf_append(out, text, (size_t)n);
    }
    if (rc == 0) {
        /* written by this member's applier: every member counts every
         * record (consensus/apply, docs/audit.md) */
        int n = snprintf(text, sizeof(text),
                         "# HELP cairn_audit_records_written_total Audit "
                         "records this member's store has written.\n"
                         "# TYPE cairn_audit_records_written_total counter\n"
                         "cairn_audit_records_written_total %" PRIu64 "\n",
                         apply_audit_records(node_apply(s->node)));
        rc = buf_append(out, text, (size_t)n);
    }
    return rc;
}

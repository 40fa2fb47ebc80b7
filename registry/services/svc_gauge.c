/*
 * svc_gauge.c - cairn_registry_instances{namespace,service,health}: how
 * many instances each service has in each health, on every member, with
 * no read of the store per scrape (svc_health_int.h).
 *
 * How. The counts follow the node observer's applied events (the same
 * feed the prober uses, through svc_health_on_events), which reach every
 * member in revision order on the loop thread and carry the record each
 * put or delete replaced. A put is +1 for (ns, svc, health) of the new
 * document and -1 for the old one's; a delete is -1 for the old one. So a
 * scrape costs O(series), a change O(1) plus parsing its two documents,
 * and lease keep-alives (no events) cost nothing.
 *
 * Start. The counts need a base: at start (and after a snapshot replaced
 * the store) the registry prefix is read at one fixed revision R0, in
 * pages of GAUGE_SCAN_PAGE keys, one page per loop turn, each from a fresh
 * read handle (kv_range at revision R0, so pages written meanwhile do not
 * show). Events at or below R0 are already in that read and are skipped;
 * events above it are deltas. The sum is the same whichever comes first,
 * so pages and events may interleave. Until the scan ends the series are
 * not printed (a partial sum could be negative). If R0 is compacted away
 * mid-scan, the counts are zeroed and the scan starts over at the current
 * revision.
 *
 * Why not a range per scrape: with 100k instances of ~1 KB, each scrape
 * would parse ~100 MB of JSON on the loop (or print a count cut at some
 * bound). Why not the prober's own set: it lives on the leader only and
 * holds only instances with checks.
 *
 * Cardinality. At most services_max (--registry-metrics-services-max)
 * (namespace, service) pairs get their own series (3 each); instances of
 * any other pair count in namespace="*",service="*" ('*' is not a name
 * byte, so it never clashes). Invariant: a pair's instances are counted
 * all in its entry or all in "*". It holds because a pair gets an entry
 * only while "*" is empty (then no instance of it is in "*"), and an entry
 * whose counts reached zero is removed only while "*" is empty (otherwise
 * it stays, at zero, holding its place).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/kv/kv.h"
#include "registry/server/server.h"
#include "registry/services/svc_health_int.h"

#define GAUGE_SCAN_PAGE 256
#define GAUGE_KEY_MAX   1024
#define GAUGE_HEALTHS   3
#define GAUGE_HINTS     256 /* a power of two */
#define GAUGE_HINT_MAX  2048

static const char *const health_names[GAUGE_HEALTHS] = {"passing", "critical",
                                                        "unknown"};

struct gauge_svc {
    struct gauge_svc *next; /* hash chain */
    uint64_t hash;
    int64_t n[GAUGE_HEALTHS];
    size_t ns_len;
    char names[]; /* ns '\0' svc '\0' */
};

struct svc_gauge {
    struct server *s;
    uv_timer_t scan;
    size_t services_max;
    size_t services_count;
    struct gauge_svc **buckets;
    size_t buckets_count; /* a power of two */
    int64_t other[GAUGE_HEALTHS];
    bool ready;       /* the base read finished: the counts are whole */
    bool other_used;  /* "*" counted something since the scan began */
    int64_t scan_rev; /* R0: events at or below it are in the base */
    int64_t scan_page;
    uint8_t scan_key[GAUGE_KEY_MAX];
    size_t scan_key_len;
    /* documents this member is about to write, with their health index
     * (svc__gauge_hint), direct-mapped by a hash of the key */
    struct gauge_hint {
        uint64_t kh;
        char *val; /* NULL: empty */
        size_t len;
        int health;
    } hints[GAUGE_HINTS];
};

static uint64_t fnv2(const char *a, const char *b)
{
    uint64_t x = 1469598103934665603ull;
    for (const char *p = a; *p != '\0'; p++) {
        x = (x ^ (uint8_t)*p) * 1099511628211ull;
    }
    x = (x ^ '/') * 1099511628211ull;
    for (const char *p = b; *p != '\0'; p++) {
        x = (x ^ (uint8_t)*p) * 1099511628211ull;
    }
    return x;
}

/* Does "*" hold no instance? Before the base read ends a pair's count
 * may be negative for a while (a delete's event before the page holding
 * the key), so zero sums prove nothing then: "*" counts as taken from
 * its first use until the counts are whole. */
static bool other_empty(const struct svc_gauge *g)
{
    if (!g->ready && g->other_used) {
        return false;
    }
    return g->other[0] == 0 && g->other[1] == 0 && g->other[2] == 0;
}

/* The index of a "health" value: unknown for anything else (or NULL). */
static int health_index(const char *s)
{
    for (int i = 0; s != NULL && i < GAUGE_HEALTHS; i++) {
        if (strcmp(s, health_names[i]) == 0) {
            return i;
        }
    }
    return 2;
}

/* The health index of an instance document, or -1 when val is not one
 * (same test as svc_doc_parse: a JSON object with a string "addr"). */
static int health_of(const uint8_t *val, size_t len)
{
    char hs[16];
    int h = svc_doc_peek(val, len, hs, sizeof(hs));
    if (h >= 0) { /* the usual case: no tree built (~2k instructions, not
                   * jansson's ~55k for a registration's document) */
        if (h == 0) {
            return -1;
        }
        return health_index(hs);
    }
    json_t *d = json_loadb((const char *)val, len, 0, NULL);
    h = -1;
    if (json_is_object(d) && json_is_string(json_object_get(d, "addr"))) {
        h = health_index(json_string_value(json_object_get(d, "health")));
    }
    json_decref(d);
    return h;
}

static struct gauge_svc **find(struct svc_gauge *g, const char *ns,
                               const char *svc, uint64_t x)
{
    struct gauge_svc **pp = &g->buckets[x & (g->buckets_count - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) { /* bounded by the chain */
        struct gauge_svc *e = *pp;
        if (e->hash == x && strcmp(e->names, ns) == 0 &&
            strcmp(e->names + e->ns_len + 1, svc) == 0) {
            return pp;
        }
    }
    return pp;
}

/* Add d (+1 or -1) to (ns, svc, health h). */
static void count(struct svc_gauge *g, const char *ns, const char *svc, int h,
                  int d)
{
    uint64_t x = fnv2(ns, svc);
    struct gauge_svc **pp = find(g, ns, svc, x);
    struct gauge_svc *e = *pp;
    ASSERT(h >= 0 && h < GAUGE_HEALTHS);
    if (e == NULL && other_empty(g) && g->services_count < g->services_max) {
        size_t nl = strlen(ns), sl = strlen(svc);
        e = mem_calloc(1, sizeof(*e) + nl + sl + 2);
        if (e != NULL) { /* out of memory: counted in "*" */
            e->hash = x;
            e->ns_len = nl;
            memcpy(e->names, ns, nl + 1);
            memcpy(e->names + nl + 1, svc, sl + 1);
            *pp = e;
            g->services_count++;
        }
    }
    if (e == NULL) {
        g->other[h] += d;
        g->other_used = true;
        return;
    }
    e->n[h] += d;
    if (e->n[0] == 0 && e->n[1] == 0 && e->n[2] == 0 && other_empty(g)) {
        *pp = e->next;
        mem_free(e);
        ASSERT(g->services_count > 0);
        g->services_count--;
    }
}

static uint64_t key_hash(const uint8_t *k, size_t n)
{
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        x = (x ^ k[i]) * 1099511628211ull;
    }
    return x;
}

/* The health index of a put's new document: the hint its writer left
 * when the bytes are the same (the peek's answer on those bytes, taken
 * once), else the peek. */
static int health_of_put(struct svc_gauge *g, const struct kv_kv *kv)
{
    uint64_t kh = key_hash(kv->key, kv->key_len);
    struct gauge_hint *t = &g->hints[kh & (GAUGE_HINTS - 1)];
    if (t->val != NULL && t->kh == kh && t->len == kv->value_len &&
        memcmp(t->val, kv->value, t->len) == 0) {
        int h = t->health;
        mem_free(t->val);
        t->val = NULL;
        return h;
    }
    return health_of(kv->value, kv->value_len);
}

/* d for the record k/v when it is an instance document. */
static void count_kv(struct svc_gauge *g, const struct kv_kv *kv, int d)
{
    char ns[SVC_NAME_MAX + 1], svc[SVC_NAME_MAX + 1], id[SVC_NAME_MAX + 1];
    if (svc_key_split((const char *)kv->key, kv->key_len, ns, svc, id) != 0) {
        return;
    }
    int h = d > 0 ? health_of_put(g, kv) : health_of(kv->value, kv->value_len);
    if (h >= 0) {
        count(g, ns, svc, h, d);
    }
}

void svc__gauge_events(struct svc_gauge *g, const struct kv_event *evs,
                       size_t n)
{
    for (size_t i = 0; g != NULL && i < n; i++) {
        const struct kv_event *e = &evs[i];
        if (e->kv.mod_revision <= g->scan_rev) {
            continue; /* the base read has it */
        }
        if (e->has_prev) {
            count_kv(g, &e->prev, -1);
        }
        if (e->type == KV_EVENT_PUT) {
            count_kv(g, &e->kv, +1);
        }
    }
}

/* ------------------------------------------------------------ the base */

static void reset(struct svc_gauge *g)
{
    for (size_t b = 0; b < g->buckets_count; b++) {
        while (g->buckets[b] != NULL) { /* each pass frees one */
            struct gauge_svc *e = g->buckets[b];
            g->buckets[b] = e->next;
            mem_free(e);
        }
    }
    g->services_count = 0;
    memset(g->other, 0, sizeof(g->other));
    g->other_used = false;
}

static void on_scan(uv_timer_t *t);

/* Zero the counts and read the registry again at the current revision,
 * the first page after delay_ms. */
static void scan_start(struct svc_gauge *g, uint64_t delay_ms)
{
    struct kv_read *rd;
    reset(g);
    g->ready = false;
    g->scan_rev = INT64_MAX; /* no deltas until R0 is known */
    g->scan_page = GAUGE_SCAN_PAGE;
    g->scan_key_len = strlen(SVC_PREFIX);
    memcpy(g->scan_key, SVC_PREFIX, g->scan_key_len);
    if (node_read_begin(g->s->node, &rd) == 0) {
        g->scan_rev = kv_read_rev(rd);
        node_read_end(g->s->node, rd);
    }
    uv_timer_start(&g->scan, on_scan, delay_ms, 1);
}

/* One page of the base read: keys from scan_key at revision scan_rev. */
static void on_scan(uv_timer_t *t)
{
    struct svc_gauge *g = t->data;
    static const char end[] = "/registry0"; /* SVC_PREFIX with '/' + 1 */
    struct kv_read *rd;
    struct kv_result res = {0};
    struct kv_range_resp rr;
    struct kv_range_req q;
    int rc;
    ASSERT(!g->ready);
    if (g->scan_rev == INT64_MAX || node_read_begin(g->s->node, &rd) != 0) {
        uv_timer_stop(&g->scan);
        scan_start(g, 1); /* busy at start: the next turn tries again */
        return;
    }
    memset(&q, 0, sizeof(q));
    q.key = g->scan_key;
    q.key_len = g->scan_key_len;
    q.range_end = (const uint8_t *)end;
    q.range_end_len = sizeof(end) - 1;
    q.limit = g->scan_page;
    q.revision = g->scan_rev;
    rc = kv_range(rd, &q, &res, &rr);
    for (size_t i = 0; rc == 0 && i < rr.kvs_count; i++) {
        count_kv(g, &rr.kvs[i], +1);
    }
    if (rc == 0 && rr.more && rr.kvs_count > 0) {
        const struct kv_kv *last = &rr.kvs[rr.kvs_count - 1];
        ASSERT(last->key_len + 1 <= sizeof(g->scan_key));
        memcpy(g->scan_key, last->key, last->key_len);
        g->scan_key[last->key_len] = 0; /* the next key after it */
        g->scan_key_len = last->key_len + 1;
    } else if (rc == 0) {
        g->ready = true;
        uv_timer_stop(&g->scan);
    }
    kv_result_free(&res);
    node_read_end(g->s->node, rd);
    if (rc == ERR_LIMIT && g->scan_page > 1) {
        g->scan_page /= 2; /* big documents: smaller pages */
    } else if (rc != 0) {
        LOGW("registry", "instances gauge: reading at %" PRId64 ": %s; again",
             g->scan_rev, err_str(rc));
        uv_timer_stop(&g->scan);
        scan_start(g, 1000); /* compacted past R0 (or worse): again */
    }
}

void svc__gauge_restored(struct svc_gauge *g)
{
    if (g != NULL) {
        uv_timer_stop(&g->scan);
        scan_start(g, 0);
    }
}

/* ------------------------------------------------------- start and stop */

int svc__gauge_start(struct server *s, size_t services_max,
                     struct svc_gauge **out)
{
    struct svc_gauge *g = mem_calloc(1, sizeof(*g));
    size_t nb = 64;
    ASSERT(services_max <= SVC_GAUGE_SERVICES_HARD_MAX);
    if (g == NULL) {
        return -ENOMEM;
    }
    while (nb < services_max) { /* chains of ~1 */
        nb *= 2;
    }
    g->buckets = mem_calloc(nb, sizeof(g->buckets[0]));
    if (g->buckets == NULL) {
        mem_free(g);
        return -ENOMEM;
    }
    g->s = s;
    g->buckets_count = nb;
    g->services_max = services_max;
    uv_timer_init(s->loop, &g->scan);
    g->scan.data = g;
    scan_start(g, 0);
    *out = g;
    return 0;
}

void svc__gauge_hint(struct svc_gauge *g, const char *key, size_t kn,
                     const char *val, size_t vn, const char *health)
{
    /* with an escape the reader may see something else (jansson refuses
     * a \u0000 the renderer would write): no hint, it reads as before */
    if (g == NULL || vn > GAUGE_HINT_MAX || memchr(val, '\\', vn) != NULL) {
        return;
    }
    uint64_t kh = key_hash((const uint8_t *)key, kn);
    struct gauge_hint *t = &g->hints[kh & (GAUGE_HINTS - 1)];
    char *copy = mem_realloc(t->val, vn > 0 ? vn : 1);
    if (copy == NULL) {
        return; /* t->val is still the old hint's, and valid */
    }
    memcpy(copy, val, vn);
    t->val = copy;
    t->kh = kh;
    t->len = vn;
    t->health = health_index(health);
}

static void on_closed(uv_handle_t *t)
{
    struct svc_gauge *g = t->data;
    for (size_t i = 0; i < GAUGE_HINTS; i++) {
        mem_free(g->hints[i].val);
    }
    reset(g);
    mem_free(g->buckets);
    mem_free(g);
}

void svc__gauge_stop(struct svc_gauge *g)
{
    if (g != NULL) {
        uv_close((uv_handle_t *)&g->scan, on_closed);
    }
}

/* ------------------------------------------------------------- metrics */

static int line(struct buf *out, const char *ns, const char *svc, int h,
                int64_t v)
{
    char text[SVC_NAME_MAX * 2 + 128];
    int n = snprintf(text, sizeof(text),
                     "cairn_registry_instances{namespace=\"%s\",service=\"%s\","
                     "health=\"%s\"} %" PRId64 "\n",
                     ns, svc, health_names[h], v);
    ASSERT(n > 0 && (size_t)n < sizeof(text));
    return buf_append(out, text, (size_t)n);
}

int svc__gauge_metrics(struct svc_gauge *g, struct buf *out)
{
    static const char head[] =
        "# HELP cairn_registry_instances Registered instances by namespace, "
        "service and health (services past "
        "--registry-metrics-services-max count in namespace=\"*\",service="
        "\"*\").\n"
        "# TYPE cairn_registry_instances gauge\n";
    int rc = buf_append(out, head, sizeof(head) - 1);
    if (g == NULL || !g->ready) {
        return rc; /* no series until the counts are whole */
    }
    for (size_t b = 0; rc == 0 && b < g->buckets_count; b++) {
        for (struct gauge_svc *e = g->buckets[b]; rc == 0 && e != NULL;
             e = e->next) {
            for (int h = 0; rc == 0 && h < GAUGE_HEALTHS; h++) {
                DASSERT(e->n[h] >= 0);
                rc = line(out, e->names, e->names + e->ns_len + 1, h, e->n[h]);
            }
        }
    }
    for (int h = 0; rc == 0 && !other_empty(g) && h < GAUGE_HEALTHS; h++) {
        rc = line(out, "*", "*", h, g->other[h]);
    }
    return rc;
}

/*
 * svc_health.c - active health checks of registered instances (services.h,
 * "health checks"): the leader probes every instance that carries
 * "checks", damps the outcomes, and writes "health" and "check" through
 * Raft only when an instance's state changes.
 *
 * Leadership. Only the leader probes, so there is one prober per cluster
 * and it moves with leadership. The node observer's leader callback
 * (api_watch.c's obs_leader, beside api_lease__on_leader) calls
 * svc_health_on_leader: becoming leader starts a scan and the probe timer;
 * losing it cancels every probe and drops the instance set. A new leader
 * starts the damping counters from zero, so a flip still needs fail_after
 * (or pass_after) results in a row, all seen by one prober.
 *
 * The instance set. On becoming leader the local store is scanned under
 * /registry/ in pages of HC_SCAN_PAGE keys, one page per loop turn (a fresh
 * read handle each), and then followed through the node observer's event
 * callback (svc_health_on_events), which sees every applied change on the
 * loop thread in revision order. Why the observer rather than a watcher
 * on the hub or a periodic rescan: it has no queue that can overflow (so
 * no cancel-and-resync path), no compaction gap, and it costs O(changes)
 * instead of parsing every document every few seconds (100k instances of
 * ~1 KB is ~100 MB of JSON per rescan); lease keep-alives produce no
 * events, so the steady state costs nothing. Pages and events interleave
 * safely because the store a page reads is never behind the events the
 * loop has been told of: a put is taken only when its mod_revision is
 * newer than the one held, a delete only when its revision is.
 *
 * Probing. Each check has a due time in a min-heap; a 100 ms tick starts
 * the due ones, at most --registry-probes-max in flight at once (the rest
 * wait their turn, late; counted), through svc_probe.c: non-blocking
 * connect / GET on the loop.
 *
 * Damping and writes. Per check, fail_after failures in a row make it
 * critical and pass_after successes in a row make it passing; in between
 * it has no verdict. The instance is critical when any check is, passing
 * when all are, and keeps its stored state otherwise. When that differs
 * from the stored "health", the current document is read from the local
 * store and written back by a Txn: mod_revision == the revision read ?
 * put(doc with health and check, ignore_lease). The write goes straight
 * to node_propose, as compactor.c and api_lock.c do: it is the server's
 * own write, not a client's, so it needs no token (the API layer's auth
 * would refuse a call without one once auth is on: ERR_USER_EMPTY). A lost
 * race (a PATCH or re-registration between read and write) fails the
 * compare; the event of the other write updates the revision and the next
 * probe result tries again.
 *
 * Bounds (flags, services.h): probes in flight; instances tracked (more
 * than --registry-probe-instances-max instances with checks: the rest are
 * not probed, counted and logged once per term; when a tracked one goes
 * while some were left out, the registry is scanned again, at most once
 * per HC_RESCAN_MS, and the ones left out take the free places); state
 * writes in flight (--registry-probe-writes-max: a flip over it waits, its
 * check probes again within HC_RETRY_MS). Each bound that bites counts in
 * cairn_registry_health_limit_hits_total{limit=..}.
 *
 * Failure modes. Out of memory tracking an instance skips it (counted);
 * a write that fails is retried on the next result. A restored snapshot
 * rescans. At stop, probes are cancelled and the state lives on until the
 * last proposal in flight answered.
 */
#include "registry/services/services.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/str.h"
#include "consensus/kv/kv.h"
#include "proto/rpc.pb-c.h"
#include "registry/server/server.h"
#include "registry/services/svc_health_int.h"

#define HC_TICK_MS      100
#define HC_SCAN_PAGE    256 /* keys per scan page (one per loop turn) */
#define HC_BUCKETS      (1u << 16)
#define HC_KEY_MAX      1024
#define HC_WRITE_TMO_MS 5000
#define HC_RETRY_MS     1000 /* a lost write probes again this soon */
#define HC_RESCAN_MS    1000 /* rescans for left-out instances, at most */

STATIC_ASSERT(SVC_PROBE_INSTANCES_HARD_MAX <= SVC_LIST_MAX,
              "never track more than the registry lists");
STATIC_ASSERT((HC_BUCKETS & (HC_BUCKETS - 1)) == 0, "a power of two");

enum hc_state {
    HS_UNKNOWN = 0,
    HS_PASSING = 1,
    HS_CRITICAL = 2,
    HS_NONE = 3, /* no verdict yet */
};

static const char *const state_names[] = {"unknown", "passing", "critical",
                                          "none"};

struct hc_inst;

struct hc_check {
    struct hc_inst *inst;
    enum hc_type type; /* HC_HTTP for http and https URLs */
    bool tls_skip_verify;
    char *target;  /* the url or addr, parsed when probed */
    char *service; /* HC_GRPC: the health service's name, or NULL */
    uint32_t interval_ms;
    uint32_t timeout_ms;
    uint16_t fail_after;
    uint16_t pass_after;
    uint16_t ok_run; /* successes in a row (capped) */
    uint16_t fail_run;
    uint64_t due_ms;
    size_t heap_at; /* SIZE_MAX: not in the heap */
    struct hc_probe *probe;
    char output[HC_OUTPUT_MAX];
};

struct hc_inst {
    struct hc_inst *next; /* hash chain */
    struct hc *h;
    uint8_t *key;
    size_t key_len;
    uint64_t hash;
    uint64_t checks_sig; /* hash of the normalized "checks" */
    int64_t mod_rev;
    enum hc_state stored;
    bool writing;
    size_t checks_count;
    struct hc_check checks[];
};

struct hc_stats {
    uint64_t probes;
    uint64_t probe_failures;
    uint64_t flips;
    uint64_t write_conflicts;
    uint64_t write_errors;
    uint64_t skipped;         /* not tracked: the bound or memory */
    uint64_t probes_deferred; /* ticks that left due probes for later */
    uint64_t over_limit;      /* instances left out by the bound */
    uint64_t writes_deferred; /* flips that waited for a write slot */
};

struct hc {
    struct server *s;
    uv_timer_t tick;
    uv_timer_t scan;
    int refs; /* 1 for the timers, one per proposal in flight */
    int timers_open;
    bool stopped;
    bool leading;
    uint64_t epoch; /* bumped at each leadership start */
    struct hc_inst **buckets;
    size_t insts_count;
    struct hc_check **heap;
    size_t heap_len;
    size_t heap_cap;
    int probes_inflight;
    int writes_inflight;
    bool scanning;
    bool skip_logged;
    bool left_out;  /* instances were left out since the last scan began */
    int probes_max; /* the bounds, from the flags at start */
    int writes_max;
    size_t instances_max;
    uint8_t scan_key[HC_KEY_MAX];
    size_t scan_key_len;
    int64_t scan_page;
    struct hc_stats st;
    struct svc_gauge *gauge; /* every member, leading or not */
    struct hc_tls *tls;      /* made at the first https probe */
};

struct hc_write {
    struct hc *h;
    uint64_t epoch;
    enum hc_state to;
    enum hc_state from;
    size_t key_len;
    uint8_t key[];
};

static void evaluate(struct hc *h, struct hc_inst *in);
static void rescan_if_left_out(struct hc *h);

/* ---------------------------------------------------------- helpers */

static uint64_t fnv(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t x = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        x = (x ^ b[i]) * 1099511628211ull;
    }
    return x;
}

static uint64_t now_ms(struct hc *h)
{
    return uv_now(h->s->loop);
}

static enum hc_state state_of(const char *s)
{
    if (s != NULL && strcmp(s, "passing") == 0) {
        return HS_PASSING;
    }
    if (s != NULL && strcmp(s, "critical") == 0) {
        return HS_CRITICAL;
    }
    return HS_UNKNOWN;
}

/* /registry/<ns>/services/<svc>/<id>, with no further '/'. */
static bool is_instance_key(const uint8_t *k, size_t n)
{
    size_t pn = strlen(SVC_PREFIX);
    const uint8_t *p, *e = k + n;
    if (n <= pn || memcmp(k, SVC_PREFIX, pn) != 0) {
        return false;
    }
    p = memchr(k + pn, '/', n - pn); /* end of <ns> */
    if (p == NULL || (size_t)(e - p) < 10 || memcmp(p, "/services/", 10) != 0) {
        return false;
    }
    p += 10;
    const uint8_t *q = memchr(p, '/', (size_t)(e - p)); /* end of <svc> */
    return q != NULL && q > p && q + 1 < e &&
           memchr(q + 1, '/', (size_t)(e - q - 1)) == NULL;
}

static void rfc3339_now(char *out, size_t len)
{
    time_t t = (time_t)(clock_wall_ms() / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ------------------------------------------------------------- heap */

static bool heap_less(struct hc *h, size_t a, size_t b)
{
    return h->heap[a]->due_ms < h->heap[b]->due_ms;
}

static void heap_swap(struct hc *h, size_t a, size_t b)
{
    struct hc_check *t = h->heap[a];
    h->heap[a] = h->heap[b];
    h->heap[b] = t;
    h->heap[a]->heap_at = a;
    h->heap[b]->heap_at = b;
}

static void heap_up(struct hc *h, size_t i)
{
    while (i > 0 && heap_less(h, i, (i - 1) / 2)) { /* log2(n) steps */
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct hc *h, size_t i)
{
    for (;;) { /* log2(n) steps: i at least doubles */
        size_t l = 2 * i + 1, m = i;
        if (l < h->heap_len && heap_less(h, l, m)) {
            m = l;
        }
        if (l + 1 < h->heap_len && heap_less(h, l + 1, m)) {
            m = l + 1;
        }
        if (m == i) {
            return;
        }
        heap_swap(h, i, m);
        i = m;
    }
}

static int heap_push(struct hc *h, struct hc_check *c)
{
    ASSERT(c->heap_at == SIZE_MAX);
    if (h->heap_len == h->heap_cap) {
        size_t cap = h->heap_cap == 0 ? 1024 : h->heap_cap * 2;
        struct hc_check **n = mem_realloc(h->heap, cap * sizeof(*n));
        if (n == NULL) {
            return -ENOMEM;
        }
        h->heap = n;
        h->heap_cap = cap;
    }
    h->heap[h->heap_len] = c;
    c->heap_at = h->heap_len++;
    heap_up(h, c->heap_at);
    return 0;
}

static void heap_remove(struct hc *h, struct hc_check *c)
{
    size_t i = c->heap_at;
    if (i == SIZE_MAX) {
        return;
    }
    ASSERT(i < h->heap_len && h->heap[i] == c);
    heap_swap(h, i, h->heap_len - 1);
    h->heap_len--;
    c->heap_at = SIZE_MAX;
    if (i < h->heap_len) {
        heap_down(h, i);
        heap_up(h, i);
    }
}

/* -------------------------------------------------------- instances */

static struct hc_inst **bucket(struct hc *h, uint64_t hash)
{
    return &h->buckets[hash & (HC_BUCKETS - 1)];
}

static struct hc_inst *find(struct hc *h, const uint8_t *k, size_t n)
{
    uint64_t x = fnv(k, n);
    for (struct hc_inst *in = *bucket(h, x); in != NULL; in = in->next) {
        if (in->hash == x && in->key_len == n && memcmp(in->key, k, n) == 0) {
            return in;
        }
    }
    return NULL;
}

/* Unlink, cancel its probes, free. */
static void inst_drop(struct hc *h, struct hc_inst *in)
{
    struct hc_inst **pp = bucket(h, in->hash);
    while (*pp != in) { /* bounded by the chain */
        ASSERT(*pp != NULL);
        pp = &(*pp)->next;
    }
    *pp = in->next;
    for (size_t i = 0; i < in->checks_count; i++) {
        struct hc_check *c = &in->checks[i];
        heap_remove(h, c);
        if (c->probe != NULL) {
            hc_probe_cancel(c->probe);
            h->probes_inflight--;
        }
        mem_free(c->target);
        mem_free(c->service);
    }
    ASSERT(h->insts_count > 0);
    h->insts_count--;
    mem_free(in->key);
    mem_free(in);
}

/* The instance's checks from its document's normalized "checks" array
 * (svc_model.c wrote it: every field present and in range). */
static struct hc_inst *inst_build(json_t *checks, const uint8_t *k, size_t n)
{
    size_t cn = json_array_size(checks);
    struct hc_inst *in;
    if (cn == 0 || cn > SVC_CHECKS_MAX) {
        return NULL;
    }
    in = mem_calloc(1, sizeof(*in) + cn * sizeof(in->checks[0]));
    if (in == NULL) {
        return NULL;
    }
    in->key = mem_alloc(n);
    if (in->key == NULL) {
        mem_free(in);
        return NULL;
    }
    memcpy(in->key, k, n);
    in->key_len = n;
    in->hash = fnv(k, n);
    for (size_t i = 0; i < cn; i++) {
        json_t *o = json_array_get(checks, i);
        struct hc_check *c = &in->checks[in->checks_count];
        const char *type = json_string_value(json_object_get(o, "type"));
        bool http = type != NULL && strcmp(type, "http") == 0;
        bool grpc = type != NULL && strcmp(type, "grpc") == 0;
        const char *t =
            json_string_value(json_object_get(o, http ? "url" : "addr"));
        const char *svc = json_string_value(json_object_get(o, "service"));
        json_int_t iv = json_integer_value(json_object_get(o, "interval"));
        json_int_t to = json_integer_value(json_object_get(o, "timeout"));
        json_int_t fa = json_integer_value(json_object_get(o, "fail_after"));
        json_int_t pa = json_integer_value(json_object_get(o, "pass_after"));
        if (type == NULL || (!http && !grpc && strcmp(type, "tcp") != 0) ||
            t == NULL || iv < 1 || iv > 3600 || to < 1 || to > 60 || fa < 1 ||
            fa > 100 || pa < 1 || pa > 100 ||
            (svc != NULL && (!grpc || strlen(svc) > HC_GRPC_SERVICE_MAX))) {
            continue; /* not a document svc_model.c wrote: skip the check */
        }
        c->target = mem_dup(t, strlen(t) + 1);
        c->service = svc != NULL ? mem_dup(svc, strlen(svc) + 1) : NULL;
        if (c->target == NULL || (svc != NULL && c->service == NULL)) {
            mem_free(c->target);
            mem_free(c->service);
            c->target = NULL;
            c->service = NULL;
            continue;
        }
        c->inst = in;
        c->type = http ? HC_HTTP : HC_TCP;
        if (grpc) {
            bool tls = json_is_true(json_object_get(o, "tls"));
            c->type = tls ? HC_GRPCS : HC_GRPC;
        }
        c->tls_skip_verify =
            json_is_true(json_object_get(o, "tls_skip_verify"));
        c->interval_ms = (uint32_t)iv * 1000;
        c->timeout_ms = (uint32_t)to * 1000;
        c->fail_after = (uint16_t)fa;
        c->pass_after = (uint16_t)pa;
        c->heap_at = SIZE_MAX;
        in->checks_count++;
    }
    if (in->checks_count == 0) {
        mem_free(in->key);
        mem_free(in);
        return NULL;
    }
    return in;
}

/* Insert in and schedule its first probes, spread over the first second
 * (or interval) by the key's hash so a fresh leader does not probe
 * everything in one tick. */
static void inst_insert(struct hc *h, struct hc_inst *in)
{
    struct hc_inst **b = bucket(h, in->hash);
    uint64_t now = now_ms(h);
    in->h = h;
    in->next = *b;
    *b = in;
    h->insts_count++;
    for (size_t i = 0; i < in->checks_count; i++) {
        struct hc_check *c = &in->checks[i];
        uint64_t spread = c->interval_ms < 1000 ? c->interval_ms : 1000;
        c->due_ms = now + (in->hash >> 8) % spread;
        if (heap_push(h, c) != 0) {
            LOGW("health", "out of memory scheduling a check of %.*s",
                 (int)in->key_len, (const char *)in->key);
        }
    }
}

/* A put of key k at mod_rev: track, update or forget the instance. */
/* False only when the document cannot have a "checks" member: the name
 * is nowhere in it, not even spelled with \u escapes. Most instances
 * have no checks, and parsing each registration's document here was a
 * seventh of its instructions. */
static bool may_have_checks(const uint8_t *v, size_t vn)
{
    const uint8_t *end = v + vn;
    if (memchr(v, '\\', vn) != NULL) {
        return true; /* any escape at all: let the parser decide */
    }
    /* by its 'k', which no other member name of a document has: memchr
     * skips a registration's document in a few dozen instructions where
     * memmem took 1,400 */
    for (const uint8_t *p = v; p < end;) {
        p = memchr(p, 'k', (size_t)(end - p));
        if (p == NULL) {
            return false;
        }
        if (p - v >= 5 && end - p >= 3 && memcmp(p - 5, "\"checks\"", 8) == 0) {
            return true;
        }
        p++;
    }
    return false;
}

static void on_put(struct hc *h, const uint8_t *k, size_t kn, const uint8_t *v,
                   size_t vn, int64_t mod_rev)
{
    struct hc_inst *old = find(h, k, kn);
    json_t *doc, *checks;
    char *sig = NULL;
    uint64_t sig_hash = 0;
    if (old != NULL && mod_rev <= old->mod_rev) {
        return; /* a page read after this event already had it */
    }
    if (old == NULL && !may_have_checks(v, vn)) {
        return; /* not tracked, and no checks to track: no parse */
    }
    doc = svc_json_loadb((const char *)v, vn, 0, NULL);
    checks = json_object_get(doc, "checks");
    if (json_is_array(checks) && json_array_size(checks) > 0) {
        sig = json_dumps(checks, JSON_COMPACT | JSON_SORT_KEYS);
        sig_hash = sig != NULL ? fnv(sig, strlen(sig)) : 0;
        free(sig);
    }
    if (sig_hash == 0) { /* no checks (any more): not ours to probe */
        if (old != NULL) {
            inst_drop(h, old);
            rescan_if_left_out(h);
        }
        json_decref(doc);
        return;
    }
    enum hc_state stored =
        state_of(json_string_value(json_object_get(doc, "health")));
    if (old != NULL && old->checks_sig == sig_hash) {
        old->mod_rev = mod_rev; /* same checks: keep the counters */
        old->stored = stored;
        json_decref(doc);
        return;
    }
    if (old == NULL && h->insts_count >= h->instances_max) {
        h->st.skipped++;
        h->st.over_limit++;
        h->left_out = true;
        if (!h->skip_logged) {
            LOGW("health",
                 "more than %zu instances with checks "
                 "(--registry-probe-instances-max): the rest are not probed",
                 h->instances_max);
            h->skip_logged = true;
        }
        json_decref(doc);
        return;
    }
    struct hc_inst *in = inst_build(checks, k, kn);
    json_decref(doc);
    if (old != NULL) {
        inst_drop(h, old); /* the checks changed: start afresh */
    }
    if (in == NULL) {
        h->st.skipped++;
        return;
    }
    in->checks_sig = sig_hash;
    in->mod_rev = mod_rev;
    in->stored = stored;
    inst_insert(h, in);
}

static void on_delete(struct hc *h, const uint8_t *k, size_t kn, int64_t rev)
{
    struct hc_inst *in = find(h, k, kn);
    if (in != NULL && rev > in->mod_rev) {
        inst_drop(h, in);
        rescan_if_left_out(h);
    }
}

/* ----------------------------------------------------------- writes */

/* A write lost a race or failed: probe again within HC_RETRY_MS rather
 * than a whole interval later, so the verdict is re-read and written on
 * the revision the other write made. */
static void retry_soon(struct hc *h, struct hc_inst *in)
{
    struct hc_check *c = &in->checks[0];
    uint64_t at = now_ms(h) + HC_RETRY_MS;
    if (c->heap_at == SIZE_MAX || c->due_ms <= at) {
        return; /* in flight (its result re-evaluates) or due soon anyway */
    }
    heap_remove(h, c);
    c->due_ms = at;
    if (heap_push(h, c) != 0) {
        LOGW("health", "out of memory rescheduling a check");
    }
}

static void write_done(void *ctx, const struct apply_result *res)
{
    struct hc_write *w = ctx;
    struct hc *h = w->h;
    bool ok = false;
    h->refs--;
    h->writes_inflight--;
    if (res->err == 0) {
        Etcdserverpb__TxnResponse *t =
            etcdserverpb__txn_response__unpack(NULL, res->resp_len, res->resp);
        ok = t != NULL && t->succeeded;
        if (t != NULL) {
            etcdserverpb__txn_response__free_unpacked(t, NULL);
        }
    }
    if (!h->stopped) {
        if (ok) {
            h->st.flips++;
            LOGI("health", "%.*s: %s -> %s", (int)w->key_len,
                 (const char *)w->key, state_names[w->from],
                 state_names[w->to]);
        } else if (res->err == 0) {
            h->st.write_conflicts++; /* the next result re-reads */
        } else if (res->err != ERR_STOPPED) {
            h->st.write_errors++;
            LOGW("health", "writing the health of %.*s: %s", (int)w->key_len,
                 (const char *)w->key, err_str(res->err));
        }
        struct hc_inst *in = h->leading && w->epoch == h->epoch
                                 ? find(h, w->key, w->key_len)
                                 : NULL;
        if (in != NULL) {
            in->writing = false;
            if (!ok) {
                retry_soon(h, in);
            }
        }
    }
    mem_free(w);
    if (h->refs == 0) {
        mem_free(h);
    }
}

/* The stored document of in, read from the local store, with health and
 * check set; NULL when the key moved on (its event will tell us) or is
 * not a document. The caller frees it. */
static char *doc_updated(struct hc *h, struct hc_inst *in, enum hc_state to,
                         const struct hc_check *why)
{
    struct kv_read *rd;
    struct kv_result res = {0};
    struct kv_range_resp rr;
    struct kv_range_req q;
    char at[32];
    char output[HC_OUTPUT_MAX + 8], fixed[HC_OUTPUT_MAX + 8];
    char *val = NULL;
    json_t *doc = NULL;
    json_t *check;
    if (node_read_begin(h->s->node, &rd) != 0) {
        return NULL;
    }
    memset(&q, 0, sizeof(q));
    q.key = in->key;
    q.key_len = in->key_len;
    if (kv_range(rd, &q, &res, &rr) == 0 && rr.kvs_count == 1 &&
        rr.kvs[0].mod_revision == in->mod_rev) {
        doc = json_loadb((const char *)rr.kvs[0].value, rr.kvs[0].value_len, 0,
                         NULL);
    }
    kv_result_free(&res);
    node_read_end(h->s->node, rd);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    rfc3339_now(at, sizeof(at));
    snprintf(output, sizeof(output), "%s: %s",
             why->type == HC_HTTP                            ? "http"
             : why->type == HC_GRPC || why->type == HC_GRPCS ? "grpc"
                                                             : "tcp",
             why->output);
    /* "since": the instance has had this health since then. Not the
     * time of the last probe: probes that change nothing are not written
     * (one Raft write per flip, not per probe; docs/registry.md). */
    /* A guard: the output is our own text (probe verdicts, libuv and
     * OpenSSL messages), and the JSON must stay UTF-8 if it ever is not. */
    check = json_pack("{s:s,s:s,s:s}", "status", state_names[to], "output",
                      str_utf8_safe(output, fixed, sizeof(fixed)), "since", at);
    if (check == NULL ||
        json_object_set_new(doc, "health", json_string(state_names[to])) ||
        json_object_set_new(doc, "check", check)) {
        json_decref(doc);
        return NULL; /* out of memory: the next result tries again */
    }
    val = svc_json_dump(doc);
    json_decref(doc);
    if (val != NULL && strlen(val) > SVC_DOC_MAX) {
        free(val);
        val = NULL;
    }
    return val;
}

static int txn_propose(struct hc *h, struct hc_inst *in, const char *val,
                       struct hc_write *w)
{
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__RequestOp ok = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *oks[1] = {&ok};
    Etcdserverpb__TxnRequest txn = ETCDSERVERPB__TXN_REQUEST__INIT;
    cmp.key.data = in->key;
    cmp.key.len = in->key_len;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    cmp.mod_revision = in->mod_rev;
    put.key = cmp.key;
    put.value.data = (uint8_t *)val;
    put.value.len = strlen(val);
    put.ignore_lease = true; /* the instance stays on its session */
    ok.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    ok.request_put = &put;
    txn.n_compare = 1;
    txn.compare = cmps;
    txn.n_success = 1;
    txn.success = oks;
    size_t n = protobuf_c_message_get_packed_size(&txn.base);
    uint8_t *p = mem_alloc(n);
    if (p == NULL) {
        return -ENOMEM;
    }
    protobuf_c_message_pack(&txn.base, p);
    int rc = node_propose(h->s->node, APPLY_TXN, p, n, HC_WRITE_TMO_MS,
                          write_done, w);
    mem_free(p);
    return rc;
}

/* Write in's new state: read, then compare-and-put. */
static void state_write(struct hc *h, struct hc_inst *in, enum hc_state to,
                        const struct hc_check *why)
{
    struct hc_write *w;
    char *val;
    ASSERT(!in->writing);
    ASSERT(to == HS_PASSING || to == HS_CRITICAL);
    val = doc_updated(h, in, to, why);
    if (val == NULL) {
        return;
    }
    w = mem_calloc(1, sizeof(*w) + in->key_len);
    if (w == NULL) {
        free(val);
        return;
    }
    w->h = h;
    w->epoch = h->epoch;
    w->to = to;
    w->from = in->stored;
    w->key_len = in->key_len;
    memcpy(w->key, in->key, in->key_len);
    int rc = txn_propose(h, in, val, w);
    free(val);
    if (rc != 0) {
        mem_free(w);
        h->st.write_errors++;
        return;
    }
    in->writing = true;
    h->writes_inflight++;
    h->refs++;
}

/* ----------------------------------------------------------- probing */

/* The instance's verdict from its checks' damped states. */
static enum hc_state verdict(const struct hc_inst *in,
                             const struct hc_check **why)
{
    bool all_pass = true;
    *why = &in->checks[0];
    for (size_t i = 0; i < in->checks_count; i++) {
        const struct hc_check *c = &in->checks[i];
        if (c->fail_run >= c->fail_after) {
            *why = c;
            return HS_CRITICAL;
        }
        if (c->ok_run < c->pass_after) {
            all_pass = false;
        }
    }
    return all_pass ? HS_PASSING : HS_NONE;
}

static void evaluate(struct hc *h, struct hc_inst *in)
{
    const struct hc_check *why;
    enum hc_state v = verdict(in, &why);
    if (v == HS_NONE || v == in->stored || in->writing) {
        return; /* a later result tries again */
    }
    if (h->writes_inflight >= h->writes_max) {
        h->st.writes_deferred++;
        retry_soon(h, in); /* its next result tries again */
        return;
    }
    state_write(h, in, v, why);
}

static void result(struct hc *h, struct hc_check *c, bool ok,
                   const char *output)
{
    h->st.probes++;
    if (ok) {
        c->fail_run = 0;
        c->ok_run = c->ok_run < UINT16_MAX ? c->ok_run + 1 : c->ok_run;
    } else {
        h->st.probe_failures++;
        c->ok_run = 0;
        c->fail_run = c->fail_run < UINT16_MAX ? c->fail_run + 1 : c->fail_run;
    }
    snprintf(c->output, sizeof(c->output), "%s", output);
    c->due_ms += c->interval_ms;
    if (c->due_ms < now_ms(h)) {
        c->due_ms = now_ms(h); /* we fell behind: do not burst */
    }
    if (heap_push(h, c) != 0) {
        LOGW("health", "out of memory rescheduling a check");
    }
    evaluate(h, c->inst);
}

static void probe_done(void *ctx, bool ok, const char *output)
{
    struct hc_check *c = ctx; /* alive: dropping a check cancels its probe */
    struct hc *h = c->inst->h;
    ASSERT(c->probe != NULL);
    ASSERT(h->probes_inflight > 0);
    c->probe = NULL;
    h->probes_inflight--;
    result(h, c, ok, output);
}

static void probe_start(struct hc *h, struct hc_check *c)
{
    struct hc_target t;
    int rc;
    if (c->type == HC_HTTP) {
        rc = hc_url_parse(c->target, &t);
        t.tls_skip_verify = c->tls_skip_verify;
        if (rc == 0 && t.type == HC_HTTPS && h->tls == NULL &&
            hc_tls_new(&h->tls) != 0) {
            result(h, c, false, "tls: no OpenSSL client context");
            return;
        }
    } else {
        memset(&t, 0, sizeof(t));
        t.type = c->type; /* HC_TCP, HC_GRPC or HC_GRPCS */
        t.tls_skip_verify = c->tls_skip_verify;
        rc = svc_addr_parse(c->target, t.host, sizeof(t.host), &t.port);
        if (c->service != NULL) { /* bounded when the check was read */
            snprintf(t.path, sizeof(t.path), "%s", c->service);
        }
        if (rc == 0 && t.type == HC_GRPCS && h->tls == NULL &&
            hc_tls_new(&h->tls) != 0) {
            result(h, c, false, "tls: no OpenSSL client context");
            return;
        }
    }
    if (rc == 0) {
        rc = hc_probe_start(h->s->loop, &t, c->timeout_ms, h->tls, probe_done,
                            c, &c->probe);
    }
    if (rc != 0) {
        result(h, c, false, rc == ERR_INVALID ? "bad target" : err_str(rc));
        return;
    }
    h->probes_inflight++;
}

static void on_tick(uv_timer_t *t)
{
    struct hc *h = t->data;
    uint64_t now = now_ms(h);
    int started = 0;
    while (h->heap_len > 0 && h->heap[0]->due_ms <= now) {
        /* started: a probe that fails at once is due again now */
        if (h->probes_inflight >= h->probes_max || started >= h->probes_max) {
            h->st.probes_deferred++;
            return;
        }
        struct hc_check *c = h->heap[0];
        heap_remove(h, c);
        probe_start(h, c);
        started++;
    }
}

/* ------------------------------------------------------------ scanning */

/* One page of the scan: keys from scan_key up to the prefix's end. */
static void on_scan(uv_timer_t *t)
{
    struct hc *h = t->data;
    static const char end[] = "/registry0"; /* SVC_PREFIX with '/' + 1 */
    struct kv_read *rd;
    struct kv_result res = {0};
    struct kv_range_resp rr;
    struct kv_range_req q;
    int rc;
    STATIC_ASSERT(sizeof(SVC_PREFIX) == sizeof(end), "prefix end");
    ASSERT(h->leading && h->scanning);
    if (node_read_begin(h->s->node, &rd) != 0) {
        return; /* busy: the next turn tries again */
    }
    memset(&q, 0, sizeof(q));
    q.key = h->scan_key;
    q.key_len = h->scan_key_len;
    q.range_end = (const uint8_t *)end;
    q.range_end_len = sizeof(end) - 1;
    q.limit = h->scan_page;
    rc = kv_range(rd, &q, &res, &rr);
    if (rc == ERR_LIMIT && h->scan_page > 1) {
        h->scan_page /= 2; /* big documents: smaller pages */
    } else if (rc != 0) {
        LOGW("health", "scanning the registry: %s", err_str(rc));
    }
    for (size_t i = 0; rc == 0 && i < rr.kvs_count; i++) {
        const struct kv_kv *kv = &rr.kvs[i];
        if (is_instance_key(kv->key, kv->key_len)) {
            on_put(h, kv->key, kv->key_len, kv->value, kv->value_len,
                   kv->mod_revision);
        }
    }
    if (rc == 0 && rr.more && rr.kvs_count > 0) {
        const struct kv_kv *last = &rr.kvs[rr.kvs_count - 1];
        ASSERT(last->key_len + 1 <= sizeof(h->scan_key));
        memcpy(h->scan_key, last->key, last->key_len);
        h->scan_key[last->key_len] = 0; /* the next key after it */
        h->scan_key_len = last->key_len + 1;
    } else if (rc == 0) {
        h->scanning = false;
        uv_timer_stop(&h->scan);
        LOGI("health", "leader: probing %zu instances with checks",
             h->insts_count);
        rescan_if_left_out(h); /* places freed while this scan ran */
    }
    kv_result_free(&res);
    node_read_end(h->s->node, rd);
}

/* Page through /registry/ from the start, the first page after delay_ms. */
static void scan_start(struct hc *h, uint64_t delay_ms)
{
    ASSERT(h->leading);
    ASSERT(!h->scanning);
    h->scanning = true;
    h->left_out = false;
    h->scan_page = HC_SCAN_PAGE;
    h->scan_key_len = strlen(SVC_PREFIX);
    memcpy(h->scan_key, SVC_PREFIX, h->scan_key_len);
    uv_timer_start(&h->scan, on_scan, delay_ms, 1);
}

/* Instances were left out by the bound and a place is free now: scan again
 * (on_put takes only keys it does not hold, up to the bound). One scan at
 * a time, each HC_RESCAN_MS after the last began or ended, so churn over
 * the bound costs at most one paged pass of the registry per second. */
static void rescan_if_left_out(struct hc *h)
{
    if (h->leading && h->left_out && !h->scanning &&
        h->insts_count < h->instances_max) {
        scan_start(h, HC_RESCAN_MS);
    }
}

/* ---------------------------------------------------------- leadership */

static void lead_begin(struct hc *h)
{
    ASSERT(!h->leading);
    ASSERT(h->insts_count == 0 && h->heap_len == 0);
    h->buckets = mem_calloc(HC_BUCKETS, sizeof(h->buckets[0]));
    if (h->buckets == NULL) {
        LOGE("health", "out of memory: this leader does not probe");
        return;
    }
    h->leading = true;
    h->epoch++;
    h->skip_logged = false;
    scan_start(h, 0);
    uv_timer_start(&h->tick, on_tick, HC_TICK_MS, HC_TICK_MS);
}

static void lead_end(struct hc *h)
{
    if (!h->leading) {
        return;
    }
    uv_timer_stop(&h->scan);
    uv_timer_stop(&h->tick);
    for (size_t b = 0; b < HC_BUCKETS; b++) {
        while (h->buckets[b] != NULL) { /* each pass drops one */
            inst_drop(h, h->buckets[b]);
        }
    }
    ASSERT(h->insts_count == 0 && h->heap_len == 0);
    ASSERT(h->probes_inflight == 0);
    mem_free(h->buckets);
    h->buckets = NULL;
    h->leading = false;
    h->scanning = false;
}

void svc_health_on_leader(struct server *s, uint64_t leader, uint64_t term)
{
    struct hc *h = s->health;
    (void)term;
    if (h == NULL) {
        return;
    }
    if (leader == s->member_id && !h->leading) {
        lead_begin(h);
    } else if (leader != s->member_id && h->leading) {
        LOGI("health", "no longer leader: probes stop here");
        lead_end(h);
    }
}

void svc_health_on_events(struct server *s, const struct kv_event *evs,
                          size_t n)
{
    struct hc *h = s->health;
    if (h != NULL) {
        svc__gauge_events(h->gauge, evs, n);
    }
    if (h == NULL || !h->leading) {
        return; /* a follower: the gauge only */
    }
    for (size_t i = 0; i < n; i++) {
        const struct kv_kv *kv = &evs[i].kv;
        if (!is_instance_key(kv->key, kv->key_len)) {
            continue;
        }
        if (evs[i].type == KV_EVENT_PUT) {
            on_put(h, kv->key, kv->key_len, kv->value, kv->value_len,
                   kv->mod_revision);
        } else {
            on_delete(h, kv->key, kv->key_len, kv->mod_revision);
        }
    }
}

void svc_health_hint(struct server *s, const char *key, size_t kn,
                     const char *val, size_t vn, const char *health)
{
    struct hc *h = s->health;
    if (h != NULL) {
        svc__gauge_hint(h->gauge, key, kn, val, vn, health);
    }
}

void svc_health_on_restored(struct server *s)
{
    struct hc *h = s->health;
    if (h != NULL) {
        svc__gauge_restored(h->gauge);
    }
    if (h != NULL && h->leading) {
        lead_end(h); /* the store changed under us: scan it again */
        lead_begin(h);
    }
}

/* ------------------------------------------------------- start and stop */

int svc_health_start(struct server *s, char *msg, size_t msg_len)
{
    struct hc *h = mem_calloc(1, sizeof(*h));
    struct node_status st;
    if (h == NULL) {
        snprintf(msg, msg_len, "health checks: out of memory");
        return -ENOMEM;
    }
    h->s = s;
    h->refs = 1;
    h->probes_max = s->opt != NULL ? (int)s->opt->registry_probes_max : 256;
    h->writes_max =
        s->opt != NULL ? (int)s->opt->registry_probe_writes_max : 64;
    h->instances_max = s->opt != NULL
                           ? (size_t)s->opt->registry_probe_instances_max
                           : SVC_PROBE_INSTANCES_HARD_MAX;
    ASSERT(h->probes_max >= 1 && h->probes_max <= SVC_PROBES_HARD_MAX);
    ASSERT(h->writes_max >= 1 && h->writes_max <= SVC_PROBE_WRITES_HARD_MAX);
    ASSERT(h->instances_max >= 1 &&
           h->instances_max <= SVC_PROBE_INSTANCES_HARD_MAX);
    if (svc__gauge_start(s,
                         s->opt != NULL
                             ? (size_t)s->opt->registry_metrics_services_max
                             : 1000,
                         &h->gauge) != 0) {
        mem_free(h);
        snprintf(msg, msg_len, "instances gauge: out of memory");
        return -ENOMEM;
    }
    uv_timer_init(s->loop, &h->tick);
    uv_timer_init(s->loop, &h->scan);
    h->tick.data = h;
    h->scan.data = h;
    h->timers_open = 2;
    s->health = h;
    node_status(s->node, &st);
    svc_health_on_leader(s, st.leader, st.term);
    return 0;
}

static void on_timer_closed(uv_handle_t *t)
{
    struct hc *h = t->data;
    if (--h->timers_open == 0 && --h->refs == 0) {
        mem_free(h);
    }
}

void svc_health_stop(struct server *s)
{
    struct hc *h = s->health;
    if (h == NULL) {
        return;
    }
    lead_end(h);
    h->stopped = true;
    mem_free(h->heap);
    h->heap = NULL;
    h->heap_cap = 0;
    s->health = NULL;
    svc__gauge_stop(h->gauge);
    h->gauge = NULL;
    hc_tls_free(h->tls); /* probes were cancelled: none holds it */
    h->tls = NULL;
    /* h lives until its timers closed and each proposal answered */
    uv_close((uv_handle_t *)&h->tick, on_timer_closed);
    uv_close((uv_handle_t *)&h->scan, on_timer_closed);
}

/* ------------------------------------------------------------- metrics */

int svc_health_metrics(struct server *s, struct buf *out)
{
    struct hc *h = s->health;
    static const struct hc_stats zero;
    const struct hc_stats *st = h != NULL ? &h->st : &zero;
    char text[4096];
    int n = snprintf(
        text, sizeof(text),
        "# HELP cairn_registry_health_probes_total Health probes run "
        "(leader only).\n"
        "# TYPE cairn_registry_health_probes_total counter\n"
        "cairn_registry_health_probes_total %" PRIu64 "\n"
        "# HELP cairn_registry_health_probe_failures_total Health probes "
        "that failed.\n"
        "# TYPE cairn_registry_health_probe_failures_total counter\n"
        "cairn_registry_health_probe_failures_total %" PRIu64 "\n"
        "# HELP cairn_registry_health_flips_total Instance health changes "
        "written.\n"
        "# TYPE cairn_registry_health_flips_total counter\n"
        "cairn_registry_health_flips_total %" PRIu64 "\n"
        "# HELP cairn_registry_health_write_conflicts_total Health writes "
        "that lost a race (retried).\n"
        "# TYPE cairn_registry_health_write_conflicts_total counter\n"
        "cairn_registry_health_write_conflicts_total %" PRIu64 "\n"
        "# HELP cairn_registry_health_skipped_total Instances with checks "
        "not probed (bound or memory).\n"
        "# TYPE cairn_registry_health_skipped_total counter\n"
        "cairn_registry_health_skipped_total %" PRIu64 "\n"
        "# HELP cairn_registry_health_instances Instances with checks this "
        "member probes.\n"
        "# TYPE cairn_registry_health_instances gauge\n"
        "cairn_registry_health_instances %zu\n"
        "# HELP cairn_registry_health_probes_in_flight Probes running now.\n"
        "# TYPE cairn_registry_health_probes_in_flight gauge\n"
        "cairn_registry_health_probes_in_flight %d\n"
        "# HELP cairn_registry_health_limit_hits_total Times a prober bound "
        "bit: probes (a tick left due probes waiting), instances (an "
        "instance with checks left unprobed), writes (a flip waited for a "
        "write slot).\n"
        "# TYPE cairn_registry_health_limit_hits_total counter\n"
        "cairn_registry_health_limit_hits_total{limit=\"probes\"} %" PRIu64 "\n"
        "cairn_registry_health_limit_hits_total{limit=\"instances\"} %" PRIu64
        "\n"
        "cairn_registry_health_limit_hits_total{limit=\"writes\"} %" PRIu64 "\n"
        "# HELP cairn_registry_health_limit The prober's bounds "
        "(--registry-probes-max, --registry-probe-instances-max, "
        "--registry-probe-writes-max).\n"
        "# TYPE cairn_registry_health_limit gauge\n"
        "cairn_registry_health_limit{limit=\"probes\"} %d\n"
        "cairn_registry_health_limit{limit=\"instances\"} %zu\n"
        "cairn_registry_health_limit{limit=\"writes\"} %d\n",
        st->probes, st->probe_failures, st->flips, st->write_conflicts,
        st->skipped, h != NULL ? h->insts_count : 0,
        h != NULL ? h->probes_inflight : 0, st->probes_deferred, st->over_limit,
        st->writes_deferred, h != NULL ? h->probes_max : 0,
        h != NULL ? h->instances_max : 0, h != NULL ? h->writes_max : 0);
    ASSERT(n > 0 && (size_t)n < sizeof(text));
    int rc = buf_append(out, text, (size_t)n);
    return rc != 0 ? rc : svc__gauge_metrics(h != NULL ? h->gauge : NULL, out);
}

/*
 * test_watch.c - the watch hub (consensus/watch) against a real store.
 *
 * Goal: etcd's watch semantics (etcd-api.md 1.5.6, 7 item 5) and the hub's
 * bounds: matching of keys, prefixes and ranges shared per group, order
 * with no gap or duplicate across the history/live hand-over, compaction
 * cancels, bounded memory for slow consumers, fragments, filters, progress.
 * Method: a real LMDB store in a temp dir; each write commits a batch and
 * then hands its events (read back from the store's history, as the node
 * delivers them: with prev) to watch_hub_events. A recording sink plays the
 * gRPC stream and can refuse sends (ERR_BUSY) to act as a slow consumer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <ftw.h>

#include "base/alloc.h"
#include "base/err.h"
#include "consensus/kv/kv.h"
#include "consensus/watch/watch.h"

#define U8(s)    ((const uint8_t *)(s))
#define RESP_MAX 20000
#define EVS_MAX  200000

struct rev_ev {
    int64_t watch_id;
    int type;
    char key[32];
    char value[32];
    char prev[32];
    bool has_prev;
    int64_t rev;
};

struct resp {
    int64_t watch_id;
    int64_t revision;
    bool created, canceled, fragment;
    int64_t compact;
    char reason[80];
    size_t first_ev; /* index into evs */
    size_t nev;
};

struct fx {
    char dir[64];
    struct kv *kv;
    struct watch_config cfg;
    struct watch_hub *hub;
    struct watch_stream *st;
    bool busy;
    struct resp *resps;
    size_t nresp;
    struct rev_ev *evs;
    size_t nev;
    /* encode: fill the events' encoding slots as api_watch.c does */
    bool encode;
    bool busy_after_encode; /* then refuse the send */
    size_t enc_fills;
    size_t enc_hits;
    size_t enc_prev_seen; /* events sent with a slot encoded with prev */
    bool omit_prev;       /* deliver events as prev_omitted (no prev) */
    int prev_calls[2];    /* prev_wanted(false), (true) */
};

/* What the sink "encodes": the key and whether prev came with it. */
static void sink_encode(struct fx *f, const struct watch_resp *r)
{
    for (size_t i = 0; i < r->events_count; i++) {
        struct watch_enc *slot = r->enc[i];
        const struct kv_event *e = &r->events[i];
        assert_non_null(slot);
        if (slot->data == NULL) {
            char tmp[64];
            int n =
                snprintf(tmp, sizeof(tmp), "%c:%.*s", e->has_prev ? 'P' : 'N',
                         (int)e->kv.key_len, (const char *)e->kv.key);
            slot->data = watch_enc_alloc((size_t)n);
            assert_non_null(slot->data);
            memcpy(slot->data, tmp, (size_t)n);
            slot->len = (size_t)n;
            f->enc_fills++;
        } else {
            f->enc_hits++;
        }
        /* a slot is never shared between the two views */
        assert_int_equal(slot->data[0], e->has_prev ? 'P' : 'N');
        if (slot->data[0] == 'P') {
            f->enc_prev_seen++;
        }
    }
}

static int sink(void *ctx, const struct watch_resp *r)
{
    struct fx *f = ctx;
    if (f->busy) {
        return ERR_BUSY;
    }
    if (f->encode && r->events_count > 0) {
        sink_encode(f, r);
        if (f->busy_after_encode) {
            return ERR_BUSY;
        }
    }
    assert_true(f->nresp < RESP_MAX);
    struct resp *o = &f->resps[f->nresp++];
    memset(o, 0, sizeof(*o));
    o->watch_id = r->watch_id;
    o->revision = r->revision;
    o->created = r->created;
    o->canceled = r->canceled;
    o->fragment = r->fragment;
    o->compact = r->compact_revision;
    if (r->cancel_reason != NULL) {
        snprintf(o->reason, sizeof(o->reason), "%s", r->cancel_reason);
    }
    o->first_ev = f->nev;
    o->nev = r->events_count;
    for (size_t i = 0; i < r->events_count; i++) {
        const struct kv_event *e = &r->events[i];
        assert_true(f->nev < EVS_MAX);
        struct rev_ev *x = &f->evs[f->nev++];
        memset(x, 0, sizeof(*x));
        x->watch_id = r->watch_id;
        x->type = e->type;
        snprintf(x->key, sizeof(x->key), "%.*s", (int)e->kv.key_len,
                 (const char *)e->kv.key);
        snprintf(x->value, sizeof(x->value), "%.*s", (int)e->kv.value_len,
                 (const char *)e->kv.value);
        x->has_prev = e->has_prev;
        if (e->has_prev) {
            snprintf(x->prev, sizeof(x->prev), "%.*s", (int)e->prev.value_len,
                     (const char *)e->prev.value);
        }
        x->rev = e->kv.mod_revision;
    }
    return 0;
}

static int rm_one(const char *p, const struct stat *s, int fl, struct FTW *w)
{
    (void)s;
    (void)fl;
    (void)w;
    return remove(p);
}

static int hub_open(struct fx *f)
{
    int rc = watch_hub_init(&f->cfg, &f->hub);
    if (rc == 0) {
        rc = watch_stream_open(f->hub, sink, f, &f->st);
    }
    return rc;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct kv_options o = {0};
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/cairn-watch-test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    o.sync = KV_SYNC_NONE;
    o.writemap = getenv("CAIRN_KV_WRITEMAP") != NULL;
    assert_int_equal(kv_open(f->dir, &o, &f->kv), 0);
    f->resps = calloc(RESP_MAX, sizeof(*f->resps));
    f->evs = calloc(EVS_MAX, sizeof(*f->evs));
    assert_non_null(f->resps);
    assert_non_null(f->evs);
    f->cfg.kv = f->kv;
    assert_int_equal(hub_open(f), 0);
    *state = f;
    return 0;
}

static void hub_reopen(struct fx *f)
{
    watch_stream_close(f->st);
    watch_hub_close(f->hub);
    assert_int_equal(hub_open(f), 0);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    watch_stream_close(f->st);
    watch_hub_close(f->hub);
    kv_close(f->kv);
    nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f->resps);
    free(f->evs);
    free(f);
    return 0;
}

/* Hand the events of revisions (from, to] to the hub, as the node does. */
struct evbuf {
    struct kv_event ev[64];
    uint8_t data[64][3][32];
    size_t n;
};

static int collect(void *ctx, const struct kv_event *e)
{
    struct evbuf *b = ctx;
    assert_true(b->n < 64);
    struct kv_event *o = &b->ev[b->n];
    *o = *e;
    memcpy(b->data[b->n][0], e->kv.key, e->kv.key_len);
    o->kv.key = b->data[b->n][0];
    if (e->kv.value_len > 0) {
        memcpy(b->data[b->n][1], e->kv.value, e->kv.value_len);
    }
    o->kv.value = b->data[b->n][1];
    if (e->has_prev) {
        memcpy(b->data[b->n][2], e->prev.value, e->prev.value_len);
        o->prev.value = b->data[b->n][2];
        o->prev.key = o->kv.key;
    }
    b->n++;
    return 0;
}

static void deliver(struct fx *f, int64_t from)
{
    struct kv_read *rd;
    struct evbuf b;
    int64_t next;
    b.n = 0;
    assert_int_equal(kv_read_begin(f->kv, &rd), 0);
    assert_int_equal(kv_events_read(rd, U8("\0"), 1, U8("\0"), 1, from + 1, 0,
                                    0, true, collect, &b, &next),
                     0);
    kv_read_end(rd);
    for (size_t i = 0; f->omit_prev && i < b.n; i++) {
        b.ev[i].prev_omitted = b.ev[i].has_prev;
        b.ev[i].has_prev = false;
    }
    watch_hub_events(f->hub, b.ev, b.n, kv_rev(f->kv));
}

static int64_t put(struct fx *f, const char *k, const char *v)
{
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_put_resp pr;
    struct kv_put_req req = {.key = U8(k),
                             .key_len = strlen(k),
                             .value = U8(v),
                             .value_len = strlen(v)};
    int64_t before = kv_rev(f->kv);
    int64_t rev;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_put(wr, &req, &res, &pr, &rev), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
    deliver(f, before);
    return rev;
}

/* Delete [k, end): every key at one revision. */
static int64_t del(struct fx *f, const char *k, const char *end)
{
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_delete_resp dr;
    struct kv_delete_req req = {.key = U8(k),
                                .key_len = strlen(k),
                                .range_end = U8(end),
                                .range_end_len = strlen(end)};
    int64_t before = kv_rev(f->kv);
    int64_t rev;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_delete(wr, &req, &res, &dr, &rev), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    kv_result_free(&res);
    deliver(f, before);
    return rev;
}

static void run(struct fx *f)
{
    for (int i = 0; i < 100000 && watch_hub_run(f->hub, 64); i++) {
    }
}

static struct watch_create wc_key(const char *k)
{
    struct watch_create c;
    memset(&c, 0, sizeof(c));
    c.key = U8(k);
    c.key_len = strlen(k);
    return c;
}

static struct watch_create wc_range(const char *k, const char *end,
                                    size_t end_len)
{
    struct watch_create c = wc_key(k);
    c.range_end = U8(end);
    c.range_end_len = end_len;
    return c;
}

/* Events received by watcher id, as "key=value@rev" joined by spaces. */
static void events_of(struct fx *f, int64_t id, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (size_t i = 0; i < f->nev && len + 1 < cap; i++) {
        if (f->evs[i].watch_id == id) {
            len += (size_t)snprintf(out + len, cap - len, "%s%s=%s@%lld",
                                    len ? " " : "", f->evs[i].key,
                                    f->evs[i].type ? "DEL" : f->evs[i].value,
                                    (long long)f->evs[i].rev);
        }
    }
}

/* --------------------------------------------------------------- tests */

static void created_reply_then_live_events_in_order(void **state)
{
    struct fx *f = *state;
    struct watch_create c = wc_key("a");
    char got[512];
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    put(f, "a", "1"); /* before the reply is out: must wait behind it */
    run(f);
    assert_true(f->nresp >= 2);
    assert_true(f->resps[0].created);
    assert_false(f->resps[0].canceled);
    assert_int_equal(f->resps[0].watch_id, 0);
    assert_int_equal(f->resps[0].revision, 1);
    put(f, "b", "x");
    put(f, "a", "2");
    put(f, "a", "3");
    run(f);
    events_of(f, 0, got, sizeof(got));
    assert_string_equal(got, "a=1@2 a=2@4 a=3@5");
    assert_int_equal(f->resps[f->nresp - 1].revision, 5);
}

static void ids_duplicates_and_cancel(void **state)
{
    struct fx *f = *state;
    struct watch_create c = wc_key("a");
    assert_int_equal(watch_stream_create(f->st, &c), 0); /* id 0 */
    assert_int_equal(watch_stream_create(f->st, &c), 0); /* id 1 */
    c.watch_id = 7;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    assert_int_equal(watch_stream_create(f->st, &c), 0); /* duplicate */
    c = wc_range("b", "a", 1);                           /* empty range */
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    assert_int_equal(watch_stream_cancel(f->st, 1), 0);
    assert_int_equal(watch_stream_cancel(f->st, 99), 0); /* ignored */
    run(f);
    assert_int_equal(f->nresp, 6);
    assert_int_equal(f->resps[0].watch_id, 0);
    assert_int_equal(f->resps[1].watch_id, 1);
    assert_int_equal(f->resps[2].watch_id, 7);
    assert_true(f->resps[3].created && f->resps[3].canceled);
    assert_int_equal(f->resps[3].watch_id, -1);
    assert_string_equal(f->resps[3].reason, WATCH_ERR_DUPLICATE_ID);
    assert_int_equal(f->resps[4].watch_id, -1);
    assert_string_equal(f->resps[4].reason, WATCH_ERR_EMPTY_RANGE);
    assert_true(f->resps[5].canceled && !f->resps[5].created);
    assert_int_equal(f->resps[5].watch_id, 1);
    assert_int_equal(watch_stream_watchers(f->st), 2);
    /* the next auto id skips 7 only when it gets there; now it is 2 */
    c = wc_key("z");
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    run(f);
    assert_int_equal(f->resps[6].watch_id, 2);
}

static void keys_prefixes_and_ranges_match(void **state)
{
    struct fx *f = *state;
    struct watch_create c[6] = {wc_key("k1"),
                                wc_range("k", "l", 1),
                                wc_range("k1", "k3", 2),
                                wc_range("k2", "\0", 1),
                                wc_range("\0", "\0", 1),
                                wc_range("k1", "k2", 2)};
    char got[512];
    for (int i = 0; i < 6; i++) {
        assert_int_equal(watch_stream_create(f->st, &c[i]), 0);
    }
    put(f, "k0", "a");
    put(f, "k1", "b");
    put(f, "k2", "c");
    put(f, "k3", "d");
    put(f, "x", "e");
    put(f, "k10", "f");
    run(f);
    events_of(f, 0, got, sizeof(got));
    assert_string_equal(got, "k1=b@3");
    events_of(f, 1, got, sizeof(got));
    assert_string_equal(got, "k0=a@2 k1=b@3 k2=c@4 k3=d@5 k10=f@7");
    events_of(f, 2, got, sizeof(got));
    assert_string_equal(got, "k1=b@3 k2=c@4 k10=f@7");
    events_of(f, 3, got, sizeof(got));
    assert_string_equal(got, "k2=c@4 k3=d@5 x=e@6");
    events_of(f, 4, got, sizeof(got));
    assert_string_equal(got, "k0=a@2 k1=b@3 k2=c@4 k3=d@5 x=e@6 k10=f@7");
    /* [k1, k2) is the prefix "k1": it shares the prefix index */
    events_of(f, 5, got, sizeof(got));
    assert_string_equal(got, "k1=b@3 k10=f@7");
}

static void same_key_watchers_share_one_group_and_one_copy(void **state)
{
    struct fx *f = *state;
    struct watch_create c = wc_key("hot");
    struct watch_stats s;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(watch_stream_create(f->st, &c), 0);
    }
    run(f);
    put(f, "hot", "v");
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.groups, 1);
    assert_int_equal(s.events_queued, 1000);
    assert_true(s.event_bytes < 1000); /* one shared copy */
    run(f);
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.ring_events, 1); /* only recent history keeps it */
    assert_int_equal(s.event_bytes, s.ring_bytes);
    assert_int_equal(f->nev, 1000);
}

/* One encoding per event and view, shared by every watcher it goes to,
 * counted in the hub's bytes while it lives and freed with the event. */
static void encodings_are_shared_per_view_and_freed_with_the_event(void **state)
{
    struct fx *f = *state;
    struct watch_create c = wc_key("hot");
    struct watch_stats s;
    f->encode = true;
    for (int i = 0; i < 1000; i++) {
        c.prev_kv = i % 2 == 1;
        assert_int_equal(watch_stream_create(f->st, &c), 0);
    }
    run(f);
    put(f, "hot", "v1");
    put(f, "hot", "v2"); /* has a prev: the views differ */
    watch_hub_stats(f->hub, &s);
    size_t before = s.event_bytes;
    assert_true(before > 0);
    /* a refused send keeps what was encoded, and counts it */
    f->busy_after_encode = true;
    (void)watch_hub_run(f->hub, 1);
    watch_hub_stats(f->hub, &s);
    assert_true(f->enc_fills >= 1);
    assert_true(s.event_bytes > before);
    assert_int_equal(f->nev, 0);
    f->busy_after_encode = false;
    f->enc_prev_seen = 0; /* the refused response is sent again below */
    watch_stream_writable(f->st);
    run(f);
    /* v1: no prev, one view; v2: the 500 prev_kv watchers get the other */
    assert_int_equal(f->enc_fills, 3);
    assert_int_equal(f->nev, 2000);
    assert_int_equal(f->enc_prev_seen, 500);
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.ring_events, 2); /* only recent history keeps them */
    assert_int_equal(s.event_bytes, s.ring_bytes);
    assert_true(s.ring_bytes > before);
}

static void history_catchup_hands_over_to_live_without_gap(void **state)
{
    struct fx *f = *state;
    char want[2048];
    char got[2048];
    size_t len = 0;
    f->cfg.catchup_events_max = 2;
    f->cfg.catchup_revs_max = 3;
    hub_reopen(f);
    for (int i = 0; i < 10; i++) {
        char v[8];
        snprintf(v, sizeof(v), "v%d", i);
        put(f, "h", v); /* revs 2..11 */
    }
    struct watch_create c = wc_key("h");
    c.start_revision = 4;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    /* live writes interleaved with the hub's catch-up passes */
    for (int i = 10; i < 20; i++) {
        char v[8];
        snprintf(v, sizeof(v), "v%d", i);
        watch_hub_run(f->hub, 3);
        put(f, "h", v); /* revs 12..21 */
    }
    run(f);
    for (int i = 2; i < 20; i++) {
        len += (size_t)snprintf(want + len, sizeof(want) - len, "%sh=v%d@%d",
                                len ? " " : "", i, i + 2);
    }
    events_of(f, 0, got, sizeof(got));
    assert_string_equal(got, want);
    struct watch_stats s;
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.synced, 1);
    assert_true(s.catchup_reads >= 3);
}

static void compacted_start_is_canceled_with_compact_revision(void **state)
{
    struct fx *f = *state;
    struct kv_write *wr;
    for (int i = 0; i < 6; i++) {
        put(f, "c", "x"); /* revs 2..7 */
    }
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_compact(wr, 5), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0);
    struct watch_create c = wc_key("c");
    c.start_revision = 4;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    c.start_revision = 5; /* at the compaction revision: works */
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    run(f);
    assert_true(f->resps[0].created);
    assert_int_equal(f->resps[0].watch_id, 0);
    assert_true(f->resps[1].canceled);
    assert_int_equal(f->resps[1].watch_id, 0);
    assert_int_equal(f->resps[1].compact, 5);
    assert_int_equal(f->resps[1].revision, 0);
    assert_true(f->resps[2].created);
    assert_int_equal(f->resps[2].watch_id, 1);
    char got[256];
    events_of(f, 1, got, sizeof(got));
    assert_string_equal(got, "c=x@5 c=x@6 c=x@7");
    assert_int_equal(watch_stream_watchers(f->st), 1);
}

static void slow_consumer_stays_bounded_and_loses_nothing(void **state)
{
    struct fx *f = *state;
    struct watch_stats s;
    char want[8192];
    char got[8192];
    size_t len = 0;
    f->cfg.events_queued_max = 4;
    hub_reopen(f);
    struct watch_create c = wc_key("s");
    c.prev_kv = true;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    run(f);
    f->busy = true;
    for (int i = 0; i < 200; i++) {
        char v[8];
        snprintf(v, sizeof(v), "%d", i);
        put(f, "s", v);
        watch_hub_run(f->hub, 64);
        watch_hub_stats(f->hub, &s);
        assert_true(s.events_queued <= 4);
    }
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.unsynced, 1);
    assert_true(s.overflows >= 1);
    f->busy = false;
    watch_stream_writable(f->st);
    run(f);
    for (int i = 0; i < 200; i++) {
        len += (size_t)snprintf(want + len, sizeof(want) - len, "%ss=%d@%d",
                                len ? " " : "", i, i + 2);
    }
    events_of(f, 0, got, sizeof(got));
    assert_string_equal(got, want);
    for (size_t i = 1; i < f->nev; i++) { /* prev_kv from history too */
        assert_true(f->evs[i].has_prev);
        assert_int_equal(atoi(f->evs[i].prev), atoi(f->evs[i].value) - 1);
    }
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.synced, 1);
}

/* A watcher that fell behind catches up from the hub's recent history
 * (the ring) rather than the store when the ring still holds the revision
 * it stopped at: the same events, prev_kv included, a revision's events
 * never split across chunks; and the ring lets go once nobody watches. */
static void slow_watchers_catch_up_from_recent_history(void **state)
{
    struct fx *f = *state;
    struct watch_stats s;
    static char want0[16384], want1[4096], got[16384];
    size_t l0 = 0, l1 = 0;
    int last[10];
    f->cfg.events_queued_max = 4;
    hub_reopen(f);
    struct watch_create c = wc_range("t", "u", 1);
    c.prev_kv = true;
    assert_int_equal(watch_stream_create(f->st, &c), 0); /* id 0 */
    c = wc_key("t3");
    assert_int_equal(watch_stream_create(f->st, &c), 0); /* id 1 */
    run(f);
    f->busy = true;
    for (int k = 0; k < 10; k++) {
        last[k] = -1;
    }
    int64_t del_revs[6];
    int ndel = 0;
    for (int i = 0; i < 300; i++) {
        char k[8], v[8];
        snprintf(k, sizeof(k), "t%d", i % 10);
        snprintf(v, sizeof(v), "%d", i);
        int64_t r = put(f, k, v);
        l0 += (size_t)snprintf(want0 + l0, sizeof(want0) - l0, "%s%s=%s@%lld",
                               l0 ? " " : "", k, v, (long long)r);
        if (i % 10 == 3) {
            l1 +=
                (size_t)snprintf(want1 + l1, sizeof(want1) - l1, "%s%s=%s@%lld",
                                 l1 ? " " : "", k, v, (long long)r);
        }
        if (i % 50 == 49) {
            r = del(f, "t", "u"); /* ten deletes at one revision */
            del_revs[ndel++] = r;
            for (int j = 0; j < 10; j++) {
                l0 += (size_t)snprintf(want0 + l0, sizeof(want0) - l0,
                                       " t%d=DEL@%lld", j, (long long)r);
            }
            l1 += (size_t)snprintf(want1 + l1, sizeof(want1) - l1,
                                   " t3=DEL@%lld", (long long)r);
        }
        watch_hub_run(f->hub, 64);
    }
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.unsynced, 2);
    assert_true(s.ring_events >= 300);
    f->busy = false;
    watch_stream_writable(f->st);
    run(f);
    events_of(f, 0, got, sizeof(got));
    assert_string_equal(got, want0);
    events_of(f, 1, got, sizeof(got));
    assert_string_equal(got, want1);
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.synced, 2);
    assert_true(s.ring_reads >= 5); /* 360 events, 64 at most a chunk */
    assert_int_equal(s.catchup_reads, s.ring_reads); /* no store read */
    /* prev_kv as the store gives it; each delete revision in one response */
    for (size_t i = 0; i < f->nev; i++) {
        const struct rev_ev *e = &f->evs[i];
        if (e->watch_id != 0) {
            continue;
        }
        int k = e->key[1] - '0';
        if (e->type != 0) {
            assert_true(e->has_prev);
            assert_int_equal(atoi(e->prev), last[k]);
            last[k] = -1;
            continue;
        }
        assert_int_equal(e->has_prev, last[k] >= 0);
        if (e->has_prev) {
            assert_int_equal(atoi(e->prev), last[k]);
        }
        last[k] = atoi(e->value);
    }
    for (size_t i = 0; i < f->nresp; i++) {
        const struct resp *r = &f->resps[i];
        size_t n = 0;
        for (size_t j = 0; j < r->nev; j++) {
            for (int d = 0; d < ndel; d++) {
                n += f->evs[r->first_ev + j].rev == del_revs[d] ? 1 : 0;
            }
        }
        assert_true(r->watch_id != 0 || n == 0 || n == 10);
    }
    /* nobody left: the next event empties the ring */
    assert_int_equal(watch_stream_cancel(f->st, 0), 0);
    assert_int_equal(watch_stream_cancel(f->st, 1), 0);
    run(f);
    put(f, "t0", "x");
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.ring_events, 0);
    assert_int_equal(s.event_bytes, 0);
}

/* Behind further than the ring reaches: the store first, then the ring. */
static void catchup_older_than_recent_history_reads_the_store(void **state)
{
    struct fx *f = *state;
    struct watch_stats s;
    f->cfg.events_queued_max = 4;
    hub_reopen(f);
    struct watch_create c = wc_key("o");
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    run(f);
    f->busy = true;
    int64_t first = 0;
    for (int i = 0; i < 5000; i++) {
        char v[8];
        snprintf(v, sizeof(v), "%d", i);
        int64_t r = put(f, "o", v);
        first = first == 0 ? r : first;
    }
    watch_hub_stats(f->hub, &s);
    assert_true(s.ring_events < 5000); /* the oldest are gone from it */
    f->busy = false;
    watch_stream_writable(f->st);
    run(f);
    assert_int_equal(f->nev, 5000);
    for (size_t i = 0; i < f->nev; i++) {
        assert_int_equal(f->evs[i].rev, first + (int64_t)i);
        assert_int_equal(atoi(f->evs[i].value), (int)i);
    }
    watch_hub_stats(f->hub, &s);
    assert_true(s.ring_reads >= 1);
    assert_true(s.catchup_reads > s.ring_reads);
    assert_int_equal(s.synced, 1);
}

static void on_prev_wanted(void *ctx, bool on)
{
    struct fx *f = ctx;
    f->prev_calls[on ? 1 : 0]++;
}

/* Events that come without prev (the apply skipped it: no watcher wanted
 * it when they were applied) go live to plain watchers only; a prev_kv
 * watcher reads them from the store's history, with prev, and neither the
 * ring nor its queue ever hands it one without. The hub says when the
 * first prev_kv watcher comes and the last one goes. */
static void prev_omitted_events_reach_prev_watchers_from_history(void **state)
{
    struct fx *f = *state;
    struct watch_stats s;
    char got[512];
    f->cfg.prev_wanted = on_prev_wanted;
    f->cfg.prev_ctx = f;
    hub_reopen(f);
    struct watch_create c = wc_key("p");
    assert_int_equal(watch_stream_create(f->st, &c), 0); /* id 0, plain */
    assert_int_equal(f->prev_calls[1], 0);
    c.prev_kv = true;
    assert_int_equal(watch_stream_create(f->st, &c), 0); /* id 1 */
    assert_int_equal(watch_stream_create(f->st, &c), 0); /* id 2 */
    assert_int_equal(f->prev_calls[1], 1);
    run(f);
    put(f, "p", "1");
    f->omit_prev = true; /* applied before the apply heard of them */
    put(f, "p", "2");
    put(f, "p", "3");
    f->omit_prev = false;
    put(f, "p", "4");
    run(f);
    events_of(f, 0, got, sizeof(got));
    assert_string_equal(got, "p=1@2 p=2@3 p=3@4 p=4@5");
    for (int64_t id = 1; id <= 2; id++) {
        events_of(f, id, got, sizeof(got));
        assert_string_equal(got, "p=1@2 p=2@3 p=3@4 p=4@5");
    }
    size_t with_prev = 0;
    for (size_t i = 0; i < f->nev; i++) {
        const struct rev_ev *e = &f->evs[i];
        if (e->watch_id == 0) {
            assert_false(e->has_prev);
        } else if (e->rev > 2) {
            assert_true(e->has_prev);
            assert_int_equal(atoi(e->prev), atoi(e->value) - 1);
            with_prev++;
        }
    }
    assert_int_equal(with_prev, 6);
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.overflows, 2); /* the prev watchers, not the plain */
    assert_int_equal(s.synced, 3);
    /* the ring holds 3 and 4 without prev: a prev watcher from revision 3
     * still reads the store */
    uint64_t ring_reads = s.ring_reads;
    uint64_t reads = s.catchup_reads;
    c.start_revision = 3;
    assert_int_equal(watch_stream_create(f->st, &c), 0); /* id 3 */
    run(f);
    events_of(f, 3, got, sizeof(got));
    assert_string_equal(got, "p=2@3 p=3@4 p=4@5");
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.ring_reads, ring_reads);
    assert_true(s.catchup_reads > reads);
    /* a plain watcher from revision 3 may use the ring */
    c.prev_kv = false;
    assert_int_equal(watch_stream_create(f->st, &c), 0); /* id 4 */
    run(f);
    events_of(f, 4, got, sizeof(got));
    assert_string_equal(got, "p=2@3 p=3@4 p=4@5");
    watch_hub_stats(f->hub, &s);
    assert_int_equal(s.ring_reads, ring_reads + 1);
    for (int64_t id = 1; id <= 3; id++) {
        assert_int_equal(watch_stream_cancel(f->st, id), 0);
    }
    assert_int_equal(f->prev_calls[0], 1); /* the last prev_kv one went */
    assert_int_equal(f->prev_calls[1], 1);
}

static void one_revision_is_never_split_unless_fragment(void **state)
{
    struct fx *f = *state;
    f->cfg.fragment_bytes = 300;
    f->cfg.response_bytes_soft = 100;
    hub_reopen(f);
    struct watch_create c = wc_range("f", "g", 1);
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    c.fragment = true;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    run(f);
    for (int i = 0; i < 10; i++) {
        char k[8];
        snprintf(k, sizeof(k), "f%d", i);
        put(f, k, "0123456789");
    }
    size_t before = f->nresp;
    run(f);
    size_t plain = 0;
    for (size_t i = before; i < f->nresp; i++) {
        plain += f->resps[i].watch_id == 0 ? 1 : 0;
    }
    assert_true(plain >= 2); /* revisions batched up to the soft size */
    before = f->nresp;
    int64_t rev = del(f, "f", "g"); /* 10 deletes at one revision */
    run(f);
    size_t whole = 0;
    size_t pieces = 0;
    size_t frag_events = 0;
    for (size_t i = before; i < f->nresp; i++) {
        const struct resp *r = &f->resps[i];
        if (r->watch_id == 0) {
            whole++;
            assert_int_equal(r->nev, 10);
            assert_false(r->fragment);
        } else {
            pieces++;
            frag_events += r->nev;
            assert_int_equal(r->fragment, i + 1 < f->nresp);
            for (size_t k = 0; k < r->nev; k++) {
                assert_int_equal(f->evs[r->first_ev + k].rev, rev);
            }
        }
    }
    assert_int_equal(whole, 1);
    assert_true(pieces >= 3);
    assert_int_equal(frag_events, 10);
}

static void filters_drop_puts_or_deletes(void **state)
{
    struct fx *f = *state;
    struct watch_create c = wc_key("q");
    char got[256];
    c.no_put = true;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    c.no_put = false;
    c.no_delete = true;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    put(f, "q", "1");
    del(f, "q", "");
    run(f);
    events_of(f, 0, got, sizeof(got));
    assert_string_equal(got, "q=DEL@3");
    events_of(f, 1, got, sizeof(got));
    assert_string_equal(got, "q=1@2");
}

static void progress_waits_for_catchup_and_never_runs_ahead(void **state)
{
    struct fx *f = *state;
    f->cfg.catchup_events_max = 1;
    f->cfg.catchup_revs_max = 1;
    hub_reopen(f);
    for (int i = 0; i < 5; i++) {
        put(f, "p", "x"); /* revs 2..6 */
    }
    struct watch_create c = wc_key("p");
    c.start_revision = 2;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    watch_stream_progress(f->st);
    run(f);
    /* created, 5 event responses, then the progress (-1) at rev 6 */
    const struct resp *last = &f->resps[f->nresp - 1];
    assert_int_equal(last->watch_id, -1);
    assert_int_equal(last->revision, 6);
    assert_int_equal(last->nev, 0);
    for (size_t i = 1; i + 1 < f->nresp; i++) {
        assert_true(f->resps[i].nev > 0);
    }
    assert_int_equal(f->nev, 5);
    /* progress_notify: only watchers without events since the last tick */
    c = wc_key("quiet");
    c.progress_notify = true;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    c = wc_key("busy");
    c.progress_notify = true;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    run(f);
    put(f, "busy", "1");
    run(f);
    size_t before = f->nresp;
    watch_hub_progress_tick(f->hub);
    run(f);
    assert_int_equal(f->nresp, before + 1);
    assert_int_equal(f->resps[before].watch_id, 1);
    assert_int_equal(f->resps[before].revision, 7);
    assert_int_equal(f->resps[before].nev, 0);
    assert_false(f->resps[before].created || f->resps[before].canceled);
}

static void limits_per_stream_and_control_queue(void **state)
{
    struct fx *f = *state;
    f->cfg.watchers_per_stream_max = 3;
    f->cfg.ctrl_queued_max = 8;
    hub_reopen(f);
    struct watch_create c = wc_key("l");
    for (int i = 0; i < 4; i++) {
        assert_int_equal(watch_stream_create(f->st, &c), 0);
    }
    run(f);
    assert_int_equal(watch_stream_watchers(f->st), 3);
    assert_string_equal(f->resps[3].reason, WATCH_ERR_TOO_MANY);
    f->busy = true; /* a client that does not read */
    int rc = 0;
    for (int i = 0; i < 20 && rc == 0; i++) {
        rc = watch_stream_create(f->st, &c);
    }
    assert_int_equal(rc, ERR_BUSY);
}

/* A snapshot install changes the store without events: after
 * watch_hub_restored the watchers catch up on what they missed. */
static void restored_store_is_caught_up_from_history(void **state)
{
    struct fx *f = *state;
    struct watch_create c = wc_key("r");
    char got[256];
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    put(f, "r", "1");
    run(f);
    struct kv_write *wr;
    struct kv_result res = {0};
    struct kv_put_resp pr;
    struct kv_put_req req = {
        .key = U8("r"), .key_len = 1, .value = U8("2"), .value_len = 1};
    int64_t rev;
    assert_int_equal(kv_write_begin(f->kv, NULL, NULL, &wr), 0);
    assert_int_equal(kv_put(wr, &req, &res, &pr, &rev), 0);
    assert_int_equal(kv_write_commit(wr, 0, 0), 0); /* no delivery */
    kv_result_free(&res);
    watch_hub_restored(f->hub);
    put(f, "r", "3");
    run(f);
    events_of(f, 0, got, sizeof(got));
    assert_string_equal(got, "r=1@2 r=2@3 r=3@4");
}

/* A create without a key (an absent protobuf bytes field: NULL, 0) is a
 * watch on the empty key, or with range_end "\0" on every key; it must not
 * copy from NULL (fuzz_ws found it through /ws/watch). */
static void create_without_key_watches_the_empty_key(void **state)
{
    struct fx *f = *state;
    struct watch_create c = wc_key("a");
    char got[512];
    c.key = NULL;
    c.key_len = 0;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    c.range_end = (const uint8_t *)"";
    c.range_end_len = 1;
    c.watch_id = 5;
    assert_int_equal(watch_stream_create(f->st, &c), 0);
    put(f, "a", "1");
    run(f);
    assert_true(f->nresp >= 3);
    assert_true(f->resps[0].created && !f->resps[0].canceled);
    assert_true(f->resps[1].created && !f->resps[1].canceled);
    events_of(f, 5, got, sizeof(got));
    assert_string_equal(got, "a=1@2");
    events_of(f, 0, got, sizeof(got));
    assert_string_equal(got, "");
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(created_reply_then_live_events_in_order),
        T(ids_duplicates_and_cancel),
        T(keys_prefixes_and_ranges_match),
        T(same_key_watchers_share_one_group_and_one_copy),
        T(encodings_are_shared_per_view_and_freed_with_the_event),
        T(history_catchup_hands_over_to_live_without_gap),
        T(compacted_start_is_canceled_with_compact_revision),
        T(slow_consumer_stays_bounded_and_loses_nothing),
        T(slow_watchers_catch_up_from_recent_history),
        T(catchup_older_than_recent_history_reads_the_store),
        T(prev_omitted_events_reach_prev_watchers_from_history),
        T(one_revision_is_never_split_unless_fragment),
        T(filters_drop_puts_or_deletes),
        T(progress_waits_for_catchup_and_never_runs_ahead),
        T(limits_per_stream_and_control_queue),
        T(restored_store_is_caught_up_from_history),
        T(create_without_key_watches_the_empty_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

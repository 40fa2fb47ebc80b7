/*
 * compactor.c - --auto-compaction-mode periodic|revision, as etcd.
 *
 * Periodic (retention R, a duration; a bare number is hours): every R/10
 * (at most every hour) the member samples its revision; it compacts to the
 * newest sample that is at least R old, so the last R of history is always
 * kept. Revision (retention N): every 5 minutes it compacts to current - N.
 * Only the leader proposes (a compaction is a Raft entry and reaches every
 * member); followers keep sampling so a new leader can take over at once.
 * A failed or refused compaction (nothing new to compact) is retried on the
 * next round.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "registry/server/api_int.h"

#define SAMPLES_MAX 64

struct compactor {
    struct server *s;
    uv_timer_t timer;
    bool revision_mode;
    uint64_t retention; /* ms (periodic) or revisions */
    uint64_t interval_ms;
    struct {
        uint64_t at_ms;
        int64_t rev;
    } samples[SAMPLES_MAX];
    size_t count;
    bool inflight;
    bool stopped;
    bool timer_closed;
    int64_t last;
};

/* Freed once stopped, the timer closed and no proposal outstanding. */
static void maybe_free(struct compactor *c)
{
    if (c->stopped && c->timer_closed && !c->inflight) {
        mem_free(c);
    }
}

static void on_compacted(void *ctx, const struct apply_result *res)
{
    struct compactor *c = ctx;
    c->inflight = false;
    if (c->stopped) {
        maybe_free(c);
        return;
    }
    if (res->err == 0) {
        LOGI("compactor", "compacted to revision %lld", (long long)c->last);
    } else if (res->err != ERR_COMPACTED) {
        LOGW("compactor", "compaction to %lld failed: %s", (long long)c->last,
             err_str(res->err));
    }
}

static void compact_to(struct compactor *c, int64_t rev)
{
    Etcdserverpb__CompactionRequest req =
        ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    uint8_t buf[32];
    struct node_status st;
    node_status(c->s->node, &st);
    if (rev <= 1 || rev <= c->last || c->inflight || st.role != RAFT_LEADER) {
        return;
    }
    req.revision = rev;
    size_t len = etcdserverpb__compaction_request__pack(&req, buf);
    if (node_propose(c->s->node, APPLY_COMPACTION, buf, len, 0, on_compacted,
                     c) == 0) {
        c->inflight = true;
        c->last = rev;
    }
}

static void on_timer(uv_timer_t *t)
{
    struct compactor *c = t->data;
    int64_t rev = kv_rev(node_kv(c->s->node));
    uint64_t now = uv_now(c->s->loop);
    if (c->revision_mode) {
        if (rev > (int64_t)c->retention) {
            compact_to(c, rev - (int64_t)c->retention);
        }
        return;
    }
    if (c->count == SAMPLES_MAX) {
        memmove(&c->samples[0], &c->samples[1],
                (SAMPLES_MAX - 1) * sizeof(c->samples[0]));
        c->count--;
    }
    c->samples[c->count].at_ms = now;
    c->samples[c->count].rev = rev;
    c->count++;
    /* the newest sample at least `retention` old */
    for (size_t i = c->count; i-- > 0;) {
        if (now - c->samples[i].at_ms >= c->retention) {
            compact_to(c, c->samples[i].rev);
            break;
        }
    }
}

static void on_closed(uv_handle_t *h)
{
    struct compactor *c = h->data;
    c->timer_closed = true;
    maybe_free(c);
}

/* Parse the retention like etcd: revision mode takes a count; periodic
 * takes a Go duration, or a bare number of hours. */
static int parse_retention(const char *s, bool revision, uint64_t *out)
{
    char *end;
    double v;
    if (revision) {
        unsigned long long n = strtoull(s, &end, 10);
        if (*s == '\0' || *end != '\0') {
            return ERR_INVALID;
        }
        *out = n;
        return 0;
    }
    v = strtod(s, &end);
    if (end == s || v < 0) {
        return ERR_INVALID;
    }
    if (*end == '\0') {
        *out = (uint64_t)(v * 3600000.0);
    } else if (strcmp(end, "h") == 0) {
        *out = (uint64_t)(v * 3600000.0);
    } else if (strcmp(end, "m") == 0) {
        *out = (uint64_t)(v * 60000.0);
    } else if (strcmp(end, "s") == 0) {
        *out = (uint64_t)(v * 1000.0);
    } else if (strcmp(end, "ms") == 0) {
        *out = (uint64_t)v;
    } else {
        return ERR_INVALID;
    }
    return 0;
}

int server__compactor_start(struct server *s)
{
    struct compactor *c;
    uint64_t retention = 0;
    bool revision = strcmp(s->opt->auto_compaction_mode, "revision") == 0;
    if (parse_retention(s->opt->auto_compaction_retention, revision,
                        &retention) != 0) {
        return ERR_INVALID; /* options_validate checked it already */
    }
    if (retention == 0) {
        return 0; /* off */
    }
    c = mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    c->s = s;
    c->revision_mode = revision;
    c->retention = retention;
    if (revision) {
        c->interval_ms = 5 * 60 * 1000;
    } else {
        c->interval_ms = retention / 10;
        if (c->interval_ms > 3600000) {
            c->interval_ms = 3600000;
        }
        if (c->interval_ms < 100) {
            c->interval_ms = 100;
        }
    }
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_timer, c->interval_ms, c->interval_ms);
    s->compactor = c;
    LOGI("compactor", "auto compaction: %s, retention %s",
         s->opt->auto_compaction_mode, s->opt->auto_compaction_retention);
    return 0;
}

void server__compactor_stop(struct server *s)
{
    struct compactor *c = s->compactor;
    if (c == NULL) {
        return;
    }
    s->compactor = NULL;
    c->stopped = true;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_closed);
}

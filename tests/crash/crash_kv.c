/*
 * crash_kv.c - kill -9 test of consensus/kv with real processes.
 *
 * Goal: after a process crash at any moment, the store reopens at the end
 * of exactly one whole batch k (kv_applied() = k), no batch that a commit
 * returned for is lost, and its contents equal a model that applied
 * batches 1..k: every key at the current revision, the revision and the
 * compacted revision, reads at earlier revisions, the history, the leases,
 * and HashKV (which covers exactly the records compaction must keep).
 *
 * Method: `crash kv` (the parent) makes a temp dir and repeatedly starts `crash
 * kv child DIR SEED FIRST` (fork + exec of this program), which opens the store
 * and applies batches FIRST, FIRST+1, ... for ever, each in one write handle
 * committed with applied index = its number, and reports each number on a pipe
 * once kv_write_commit returned. Batch i is a few puts, deletes, txns, lease
 * grants/revokes and now and then a compaction, all derived from (seed, i)
 * alone, so the parent can replay it into the model; after every 97th batch the
 * child also runs kv_defrag. The parent kills the child with SIGKILL after a
 * random delay (sometimes at once, so the kill lands in exec or kv_open),
 * reopens the store, checks it against the model at k, and starts the next
 * child at k + 1. Some rounds use a fresh directory to kill the very first
 * open.
 *
 * Options: --seed N (default fixed), --kills N (default 220), --seconds N
 * (default 50: stop early when over), --dir D (keep the store there).
 * Output: one line per failure with the seed and round, a summary line;
 * exit 0 when everything matched.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/prng.h"
#include "consensus/kv/kv.h"
#include "tests/unit/kv_model/kv_check.h"
#include "tests/unit/kv_model/model.h"

#define NKEYS     48
#define MAX_VALUE 4096

/* ---- the deterministic batches ------------------------------------------ */

/* Where a batch goes: the store's write handle or the model. */
struct target {
    void *ctx;
    int64_t (*rev)(void *ctx);
    int64_t (*compact_rev)(void *ctx);
    int (*put)(void *ctx, const struct kv_put_req *q);
    int (*del)(void *ctx, const struct kv_delete_req *q);
    int (*txn)(void *ctx, const struct kv_txn_req *q);
    int (*compact)(void *ctx, int64_t rev);
    int (*grant)(void *ctx, int64_t id, int64_t ttl);
    int (*revoke)(void *ctx, int64_t id);
};

struct gen {
    struct prng r;
    char keys[8][16];
    uint8_t vals[4][MAX_VALUE];
    int nk, nv;
};

static const char *gen_key(struct gen *g)
{
    char *k = g->keys[g->nk++ % 8];
    snprintf(k, 16, "k%02u", (unsigned)prng_below(&g->r, NKEYS));
    return k;
}

static void gen_value(struct gen *g, uint64_t batch, const uint8_t **v,
                      size_t *n)
{
    uint8_t *b = g->vals[g->nv++ % 4];
    size_t len = prng_chance(&g->r, 1, 20) ? 1000 + prng_below(&g->r, 3000)
                                           : 8 + prng_below(&g->r, 200);
    int head = snprintf((char *)b, MAX_VALUE, "b%" PRIu64 "-", batch);
    for (size_t i = (size_t)head; i < len; i++) {
        b[i] = (uint8_t)('a' + prng_below(&g->r, 26));
    }
    *v = b;
    *n = len;
}

static void batch_apply(uint64_t seed, uint64_t i, const struct target *t)
{
    struct gen g;
    memset(&g, 0, sizeof(g));
    prng_seed(&g.r, prng_mix(seed ^ (i * 0x9e3779b97f4a7c15ull)));
    unsigned nreq = 1 + (unsigned)prng_below(&g.r, 8);
    if (getenv("CAIRN_KV_WRITEMAP") != NULL) {
        /* one request a batch, as apply's one entry a mark: a writemap
         * savepoint (before a Txn) commits whole batches only */
        nreq = 1;
    }
    for (unsigned j = 0; j < nreq; j++) {
        uint64_t f = prng_below(&g.r, 100);
        if (f < 45) {
            struct kv_put_req q = {0};
            const char *k = gen_key(&g);
            q.key = (const uint8_t *)k;
            q.key_len = strlen(k);
            gen_value(&g, i, &q.value, &q.value_len);
            if (prng_chance(&g.r, 1, 6)) {
                q.lease = 1 + (int64_t)prng_below(&g.r, 4);
            }
            t->put(t->ctx, &q);
        } else if (f < 60) {
            struct kv_delete_req q = {0};
            const char *k = gen_key(&g);
            q.key = (const uint8_t *)k;
            q.key_len = strlen(k);
            char end[8];
            if (prng_chance(&g.r, 1, 4)) {
                /* k1x .. k1y: a prefix of up to ten keys */
                snprintf(end, sizeof(end), "k%c", k[1] + 1);
                q.key_len = 2;
                q.range_end = (const uint8_t *)end;
                q.range_end_len = 2;
            }
            t->del(t->ctx, &q);
        } else if (f < 85) {
            struct kv_compare c = {0};
            const char *ck = gen_key(&g);
            c.key = (const uint8_t *)ck;
            c.key_len = strlen(ck);
            c.target = KV_CMP_VERSION;
            c.result = (enum kv_cmp_result)prng_below(&g.r, 4);
            c.number = (int64_t)prng_below(&g.r, 3);
            struct kv_op ok[2], ko[1];
            memset(ok, 0, sizeof(ok));
            memset(ko, 0, sizeof(ko));
            const char *k1 = gen_key(&g);
            const char *k2 = gen_key(&g);
            ok[0].type = KV_OP_PUT;
            ok[0].u.put.key = (const uint8_t *)k1;
            ok[0].u.put.key_len = strlen(k1);
            gen_value(&g, i, &ok[0].u.put.value, &ok[0].u.put.value_len);
            ok[1].type = strcmp(k1, k2) == 0 ? KV_OP_RANGE : KV_OP_DELETE;
            ok[1].u.del.key = (const uint8_t *)k2;
            ok[1].u.del.key_len = strlen(k2);
            if (ok[1].type == KV_OP_RANGE) {
                memset(&ok[1].u.range, 0, sizeof(ok[1].u.range));
                ok[1].u.range.key = (const uint8_t *)k2;
                ok[1].u.range.key_len = strlen(k2);
            }
            ko[0].type = KV_OP_PUT;
            ko[0].u.put.key = (const uint8_t *)ck;
            ko[0].u.put.key_len = strlen(ck);
            gen_value(&g, i, &ko[0].u.put.value, &ko[0].u.put.value_len);
            struct kv_txn_req q = {&c, 1, ok, 2, ko, 1};
            t->txn(t->ctx, &q);
        } else if (f < 93) {
            t->grant(t->ctx, 1 + (int64_t)prng_below(&g.r, 4),
                     10 + (int64_t)prng_below(&g.r, 50));
        } else {
            t->revoke(t->ctx, 1 + (int64_t)prng_below(&g.r, 4));
        }
    }
    if (i % 40 == 0) {
        int64_t to = t->rev(t->ctx) - (int64_t)prng_below(&g.r, 30);
        if (to > t->compact_rev(t->ctx)) {
            t->compact(t->ctx, to);
        }
    }
}

/* The store as a target. A batch compacts at most once, at its end, so
 * the compacted revision as of the last commit is the batch's too. */
struct store_ctx {
    struct kv *kv;
    struct kv_write *wr;
};

static int64_t st_rev(void *c)
{
    return kv_write_rev(((struct store_ctx *)c)->wr);
}

static int64_t st_compact_rev(void *c)
{
    return kv_compact_rev(((struct store_ctx *)c)->kv);
}

static int st_put(void *c, const struct kv_put_req *q)
{
    struct kv_result res = {0};
    struct kv_put_resp r;
    int64_t rev;
    int rc = kv_put(((struct store_ctx *)c)->wr, q, &res, &r, &rev);
    kv_result_free(&res);
    return rc;
}

static int st_del(void *c, const struct kv_delete_req *q)
{
    struct kv_result res = {0};
    struct kv_delete_resp r;
    int64_t rev;
    int rc = kv_delete(((struct store_ctx *)c)->wr, q, &res, &r, &rev);
    kv_result_free(&res);
    return rc;
}

static int st_txn(void *c, const struct kv_txn_req *q)
{
    struct kv_result res = {0};
    struct kv_txn_resp r;
    int64_t rev;
    int rc = kv_txn(((struct store_ctx *)c)->wr, q, &res, &r, &rev);
    kv_result_free(&res);
    return rc;
}

static int st_compact(void *c, int64_t rev)
{
    return kv_compact(((struct store_ctx *)c)->wr, rev);
}

static int st_grant(void *c, int64_t id, int64_t ttl)
{
    return kv_lease_grant(((struct store_ctx *)c)->wr, id, ttl);
}

static int st_revoke(void *c, int64_t id)
{
    int64_t rev;
    return kv_lease_revoke(((struct store_ctx *)c)->wr, id, &rev);
}

/* The model as a target. */
static int64_t md_rev(void *c)
{
    return mdl_rev(c);
}

static int64_t md_compact_rev(void *c)
{
    return mdl_compact_rev(c);
}

static int md_put(void *c, const struct kv_put_req *q)
{
    struct mdl_arena a = {0};
    struct kv_put_resp r;
    int64_t rev;
    int rc = mdl_put(c, q, &a, &r, &rev, NULL);
    mdl_arena_free(&a);
    return rc;
}

static int md_del(void *c, const struct kv_delete_req *q)
{
    struct mdl_arena a = {0};
    struct kv_delete_resp r;
    int64_t rev;
    int rc = mdl_delete(c, q, &a, &r, &rev, NULL);
    mdl_arena_free(&a);
    return rc;
}

static int md_txn(void *c, const struct kv_txn_req *q)
{
    struct mdl_arena a = {0};
    struct kv_txn_resp r;
    int64_t rev;
    int rc = mdl_txn(c, q, &a, &r, &rev, NULL, NULL);
    mdl_arena_free(&a);
    return rc;
}

static int md_compact(void *c, int64_t rev)
{
    return mdl_compact(c, rev);
}

static int md_grant(void *c, int64_t id, int64_t ttl)
{
    return mdl_lease_grant(c, id, ttl);
}

static int md_revoke(void *c, int64_t id)
{
    int64_t rev;
    return mdl_lease_revoke(c, id, &rev, NULL);
}

/* ---- the child ----------------------------------------------------------- */

/* The store's options, child and parent alike: MDB_WRITEMAP (cairnd's
 * default) when CAIRN_KV_WRITEMAP is set (the child inherits it). */
static const struct kv_options *store_opts(void)
{
    static struct kv_options o;
    o.writemap = getenv("CAIRN_KV_WRITEMAP") != NULL;
    return o.writemap ? &o : NULL;
}

static int child_main(const char *dir, uint64_t seed, uint64_t first)
{
    struct kv *kv = NULL;
    int rc = kv_open(dir, store_opts(), &kv);
    if (rc != 0) {
        fprintf(stderr, "crash kv child: kv_open: %s\n", err_str(rc));
        return 1;
    }
    uint64_t idx = 0, term = 0;
    kv_applied(kv, &idx, &term);
    if (idx + 1 != first) {
        fprintf(stderr,
                "crash kv child: store is at %" PRIu64 ", asked to start at "
                "%" PRIu64 "\n",
                idx, first);
        return 1;
    }
    struct store_ctx sc = {kv, NULL};
    struct target t = {&sc,    st_rev,     st_compact_rev, st_put,   st_del,
                       st_txn, st_compact, st_grant,       st_revoke};
    for (uint64_t i = first;; i++) {
        if (i % 17 == 0) {
            /* A batch that is written and then dropped. */
            if (kv_write_begin(kv, NULL, NULL, &sc.wr) != 0) {
                return 1;
            }
            batch_apply(seed ^ 0x5a5a, i, &t);
            kv_write_abort(sc.wr);
        }
        rc = kv_write_begin(kv, NULL, NULL, &sc.wr);
        if (rc != 0) {
            fprintf(stderr, "crash kv child: write_begin: %s\n", err_str(rc));
            return 1;
        }
        batch_apply(seed, i, &t);
        rc = kv_write_commit(sc.wr, i, 1);
        if (rc != 0) {
            fprintf(stderr, "crash kv child: commit %" PRIu64 ": %s\n", i,
                    err_str(rc));
            return 1;
        }
        if (write(3, &i, sizeof(i)) != (ssize_t)sizeof(i)) {
            break; /* the parent is gone */
        }
        if (i % 97 == 0) {
            /* kv.h: a crash at any point of a defrag leaves the old or the
             * new file, both whole. */
            rc = kv_defrag(kv);
            if (rc != 0) {
                fprintf(stderr, "crash kv child: defrag: %s\n", err_str(rc));
                return 1;
            }
        }
    }
    kv_close(kv);
    return 0;
}

/* ---- the parent ---------------------------------------------------------- */

struct run {
    uint64_t seed;
    struct prng r;
    char self[512];
    char root[256]; /* temp root; the store is in root/kv */
    char dir[300];
    long round;
    bool failed;
};

static void fail_round(struct run *u, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail_round(struct run *u, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "crash kv: FAIL seed=%" PRIu64 " round=%ld: ", u->seed,
            u->round);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    u->failed = true;
}

static void model_advance(uint64_t seed, struct mdl *m, uint64_t *at,
                          uint64_t to)
{
    struct target t = {m,      md_rev,     md_compact_rev, md_put,   md_del,
                       md_txn, md_compact, md_grant,       md_revoke};
    for (uint64_t i = *at + 1; i <= to; i++) {
        batch_apply(seed, i, &t);
        mdl_commit(m);
    }
    *at = to;
}

static bool range_equal(struct run *u, struct kv_read *rd, struct mdl *m,
                        int64_t rev)
{
    struct kv_range_req q = {0};
    q.key = (const uint8_t *)"\0";
    q.key_len = 1;
    q.range_end = (const uint8_t *)"\0";
    q.range_end_len = 1;
    q.revision = rev;
    struct kv_result res = {0};
    struct mdl_arena a = {0};
    struct kv_range_resp got, want;
    memset(&got, 0, sizeof(got));
    int rc = kv_range(rd, &q, &res, &got);
    int wrc = mdl_range(m, mdl_committed(m), &q, &a, &want);
    bool ok = rc == wrc && (rc != 0 || chk_range(stderr, &q, &got, &want));
    if (!ok) {
        fail_round(u, "full range at revision %" PRId64 " differs (rc %d/%d)",
                   rev, rc, wrc);
    }
    kv_result_free(&res);
    mdl_arena_free(&a);
    return ok;
}

static int collect_cb(void *ctx, const struct kv_event *ev)
{
    mdl_events_push(ctx, ev);
    return 0;
}

static int lease_count_cb(void *ctx, const struct kv_lease *l)
{
    struct mdl_view *v = ctx;
    if (v->leases_count < MDL_LEASES_MAX) {
        v->leases[v->leases_count++] = *l;
    }
    return 0;
}

/* The reopened store against the model after the same batches. */
static bool verify(struct run *u, struct kv *kv, struct mdl *m)
{
    const struct mdl_view *v = mdl_committed(m);
    if (kv_rev(kv) != v->rev || kv_compact_rev(kv) != v->compact) {
        fail_round(u,
                   "revision %" PRId64 " compacted %" PRId64 ", model %" PRId64
                   " and %" PRId64,
                   kv_rev(kv), kv_compact_rev(kv), v->rev, v->compact);
        return false;
    }
    struct kv_read *rd = NULL;
    if (kv_read_begin(kv, &rd) != 0) {
        fail_round(u, "kv_read_begin failed");
        return false;
    }
    bool ok = range_equal(u, rd, m, 0);
    int64_t lo = v->compact > 1 ? v->compact : 1;
    for (int i = 0; ok && i < 3; i++) {
        ok = range_equal(
            u, rd, m,
            lo + (int64_t)prng_below(&u->r, (uint64_t)(v->rev - lo + 1)));
    }
    if (ok && v->compact + 1 <= v->rev) {
        /* From the compacted revision on, the history is whole. */
        int64_t from = v->compact + (int64_t)prng_below(
                                        &u->r, (uint64_t)(v->rev - v->compact));
        struct mdl_events got = {0}, want = {0};
        int64_t next = 0, to = 0;
        int rc =
            kv_events_read(rd, (const uint8_t *)"\0", 1, (const uint8_t *)"\0",
                           1, from, 0, 0, true, collect_cb, &got, &next);
        mdl_events_read(m, v, (const uint8_t *)"\0", 1, (const uint8_t *)"\0",
                        1, from, 0, true, &want, &to);
        if (rc != 0 || next != to + 1 ||
            !chk_events(stderr, got.ev, got.count, want.ev, want.count, true)) {
            fail_round(u, "history from %" PRId64 " differs (rc %d)", from, rc);
            ok = false;
        }
        mdl_events_clear(&got);
        mdl_events_clear(&want);
    }
    if (ok) {
        /* HashKV covers every retained record, so a compaction cut short
         * by the kill would show here even where reads agree. */
        uint32_t gh = 0, wh = 0;
        int64_t gc, wc, gr, wr;
        int rc = kv_hash(rd, 0, &gh, &gc, &gr);
        mdl_hash(m, v, 0, &wh, &wc, &wr);
        if (rc != 0 || gh != wh || gc != wc || gr != wr) {
            fail_round(u, "kv_hash %08x (rc %d), model %08x", gh, rc, wh);
            ok = false;
        }
    }
    if (ok) {
        struct mdl_view lv;
        memset(&lv, 0, sizeof(lv));
        int rc = kv_lease_list(rd, lease_count_cb, &lv);
        ok = rc == 0 && lv.leases_count == v->leases_count;
        for (size_t i = 0; ok && i < lv.leases_count; i++) {
            ok = lv.leases[i].id == v->leases[i].id &&
                 lv.leases[i].ttl == v->leases[i].ttl;
        }
        if (!ok) {
            fail_round(u, "leases differ: store %zu, model %zu",
                       lv.leases_count, v->leases_count);
        }
    }
    kv_read_end(rd);
    return ok;
}

static pid_t spawn_child(struct run *u, const char *dir, uint64_t first,
                         int *rfd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        return -1;
    }
    char seed[32], from[32];
    snprintf(seed, sizeof(seed), "%" PRIu64, u->seed);
    snprintf(from, sizeof(from), "%" PRIu64, first);
    pid_t pid = fork();
    if (pid == 0) {
        if (p[1] == 3) {
            fcntl(3, F_SETFD, 0);
        } else if (dup2(p[1], 3) != 3) {
            _exit(126);
        }
        execl(u->self, u->self, "kv", "child", dir, seed, from, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    *rfd = p[0];
    return pid;
}

static void sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* One child run: start at first, kill after a random delay. Returns the
 * last batch the child reported committed, or -1 on a failure. */
static int64_t run_child(struct run *u, const char *dir, uint64_t first,
                         uint64_t delay_us)
{
    int rfd = -1;
    pid_t pid = spawn_child(u, dir, first, &rfd);
    if (pid < 0) {
        fail_round(u, "fork: %s", strerror(errno));
        return -1;
    }
    sleep_us(delay_us);
    kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int64_t last = (int64_t)first - 1;
    uint64_t v;
    ssize_t n;
    while ((n = read(rfd, &v, sizeof(v))) == (ssize_t)sizeof(v)) {
        if ((int64_t)v != last + 1) {
            fail_round(u, "child reported %" PRIu64 " after %" PRId64, v, last);
        }
        last = (int64_t)v;
    }
    close(rfd);
    if (!WIFSIGNALED(status)) {
        fail_round(u, "child exited by itself with status %d",
                   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    return last;
}

static uint64_t pick_delay_us(struct run *u)
{
    uint64_t f = prng_below(&u->r, 100);
    if (f < 8) {
        return 0;
    }
    if (f < 23) {
        return prng_below(&u->r, 2000);
    }
    if (f < 78) {
        return 2000 + prng_below(&u->r, 38000);
    }
    return 40000 + prng_below(&u->r, 110000);
}

/* Reopen after the kill and compare; returns kv_applied or -1. */
static int64_t reopen_and_verify(struct run *u, const char *dir, struct mdl *m,
                                 uint64_t *model_at, int64_t reported,
                                 uint64_t before)
{
    struct kv *kv = NULL;
    int rc = kv_open(dir, store_opts(), &kv);
    if (rc != 0) {
        fail_round(u, "kv_open after kill: %s", err_str(rc));
        return -1;
    }
    uint64_t k = 0, term = 0;
    kv_applied(kv, &k, &term);
    int64_t out = (int64_t)k;
    if ((int64_t)k < reported || k < before || (k > 0 && term != 1)) {
        fail_round(u,
                   "applied %" PRIu64 " (term %" PRIu64 ") but the child "
                   "reported %" PRId64
                   " committed and the store was at %" PRIu64,
                   k, term, reported, before);
        out = -1;
    } else {
        model_advance(u->seed, m, model_at, k);
        if (!verify(u, kv, m)) {
            out = -1;
        }
    }
    kv_close(kv);
    return out;
}

static void rm_tree(const char *dir)
{
    DIR *dh = opendir(dir);
    if (dh == NULL) {
        return;
    }
    struct dirent *e;
    char path[600];
    while ((e = readdir(dh)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            rm_tree(path);
        } else {
            unlink(path);
        }
    }
    closedir(dh);
    rmdir(dir);
}

/* A fresh directory killed early: the first open and first commits. */
static bool fresh_round(struct run *u, long n)
{
    char dir[400];
    snprintf(dir, sizeof(dir), "%s/fresh-%ld", u->root, n);
    if (mkdir(dir, 0700) != 0) {
        fail_round(u, "mkdir %s: %s", dir, strerror(errno));
        return false;
    }
    int64_t rep = run_child(u, dir, 1, prng_below(&u->r, 4000));
    struct mdl *m = NULL;
    mdl_new(0, &m);
    uint64_t at = 0;
    bool ok = rep >= 0 && reopen_and_verify(u, dir, m, &at, rep, 0) >= 0;
    mdl_free(m);
    rm_tree(dir);
    return ok;
}

int crash_kv_main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "child") == 0) {
        return child_main(argv[2], strtoull(argv[3], NULL, 0),
                          strtoull(argv[4], NULL, 0));
    }
    struct run u;
    memset(&u, 0, sizeof(u));
    u.seed = 7;
    long kills = 220, seconds = 50;
    const char *keep = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            u.seed = strtoull(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--kills") == 0 && i + 1 < argc) {
            kills = strtol(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = strtol(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            keep = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: crash kv [--seed N] [--kills N] [--seconds N] "
                    "[--dir D]\n");
            return 2;
        }
    }
    prng_seed(&u.r, u.seed);
    ssize_t n = readlink("/proc/self/exe", u.self, sizeof(u.self) - 1);
    if (n <= 0) {
        fprintf(stderr, "crash kv: cannot find my own program\n");
        return 1;
    }
    u.self[n] = 0;
    if (keep != NULL) {
        snprintf(u.root, sizeof(u.root), "%s", keep);
        mkdir(u.root, 0700);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(u.root, sizeof(u.root), "%s/crash-kv-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(u.root) == NULL) {
            perror("mkdtemp");
            return 1;
        }
    }
    snprintf(u.dir, sizeof(u.dir), "%s/kv", u.root);
    mkdir(u.dir, 0700);
    struct mdl *m = NULL;
    mdl_new(0, &m);
    uint64_t model_at = 0, at = 0;
    long immediate = 0, fresh = 0, stuck = 0, done = 0;
    uint64_t start = clock_mono_ns();
    for (u.round = 1; u.round <= kills && !u.failed; u.round++) {
        if ((clock_mono_ns() - start) / 1000000000ull >= (uint64_t)seconds) {
            break;
        }
        if (prng_chance(&u.r, 1, 20)) {
            fresh++;
            done += fresh_round(&u, u.round);
            continue;
        }
        uint64_t delay = pick_delay_us(&u);
        immediate += delay == 0;
        int64_t rep = run_child(&u, u.dir, at + 1, delay);
        if (rep < 0) {
            break;
        }
        int64_t k = reopen_and_verify(&u, u.dir, m, &model_at, rep, at);
        if (k < 0) {
            break;
        }
        stuck += (uint64_t)k == at;
        at = (uint64_t)k;
        done++;
    }
    double secs = (double)(clock_mono_ns() - start) / 1e9;
    fprintf(stdout,
            "crash kv: seed %" PRIu64 ": %ld kills (%ld at once, %ld on a "
            "fresh dir, %ld without progress) in %.1f s; store reached batch "
            "%" PRIu64 ", revision %" PRId64 ", compacted %" PRId64 "; %s\n",
            u.seed, done, immediate, fresh, stuck, secs, at, mdl_rev(m),
            mdl_compact_rev(m), u.failed ? "FAILED" : "all states matched");
    mdl_free(m);
    if (u.failed) {
        fprintf(stderr, "crash kv: store kept in %s\n", u.dir);
        return 1;
    }
    if (keep == NULL) {
        rm_tree(u.root);
    }
    return done >= kills ? 0 : 3;
}

/*
 * node_threads.c - the two worker threads of a member and their queues.
 *
 * The WAL thread takes every job queued since its last pass and writes them
 * with as few fsyncs as the log allows (group commit): consecutive jobs
 * whose entries follow one another go into one log_append; a job whose
 * first entry rewrites earlier ones (a new leader's conflicting suffix)
 * starts a new append. Each finished job goes back to the loop, which then
 * sends the job's "after persist" messages and reports raft_persisted.
 *
 * The apply thread takes every run of committed entries queued since its
 * last pass and applies them all in one store transaction (consensus/apply
 * commits it with the applied index). Results and store events are copied
 * into the job and the job goes back to the loop.
 *
 * A failure of either (log or store I/O) is recorded in the job and ends the
 * thread's useful life: the loop sees the error and stops the member.
 */
#include "consensus/node/node_int.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"

int node__jobq_init(struct jobq *q)
{
    memset(q, 0, sizeof(*q));
    if (uv_mutex_init(&q->mu) != 0) {
        return -ENOMEM;
    }
    if (uv_cond_init(&q->cv) != 0) {
        uv_mutex_destroy(&q->mu);
        return -ENOMEM;
    }
    if (uv_cond_init(&q->held_cv) != 0) {
        uv_cond_destroy(&q->cv);
        uv_mutex_destroy(&q->mu);
        return -ENOMEM;
    }
    return 0;
}

void node__jobq_close(struct jobq *q)
{
    uv_cond_destroy(&q->held_cv);
    uv_cond_destroy(&q->cv);
    uv_mutex_destroy(&q->mu);
}

/* Every job struct starts with its `next` pointer. */
struct job_link {
    struct job_link *next;
};

void node__jobq_push(struct jobq *q, void *job)
{
    struct job_link *j = job;
    j->next = NULL;
    uv_mutex_lock(&q->mu);
    if (q->tail != NULL) {
        ((struct job_link *)q->tail)->next = j;
    } else {
        q->head = j;
    }
    q->tail = j;
    q->count++;
    uv_cond_signal(&q->cv);
    uv_mutex_unlock(&q->mu);
}

void node__notify(struct node *n, atomic_int *news)
{
    uint64_t one = 1;
    ssize_t w;
    if (atomic_exchange(news, 1) != 0) {
        return; /* the loop has yet to clear it: a wake-up is on its way */
    }
    do {
        w = write(n->wake_fd, &one, sizeof(one));
    } while (w < 0 && errno == EINTR);
    /* EAGAIN: the counter is at its maximum, so the loop is woken anyway.
     * Nothing else can fail on an open eventfd. */
}

void *node__jobq_take_all(struct jobq *q, bool wait, size_t *count)
{
    void *head;
    uv_mutex_lock(&q->mu);
    q->waiting = wait;
    while (wait && (q->head == NULL || q->lent) && !q->stop) {
        uv_cond_wait(&q->cv, &q->mu);
    }
    q->waiting = false;
    head = q->head;
    if (count != NULL) {
        *count = q->count;
    }
    q->head = NULL;
    q->tail = NULL;
    q->count = 0;
    uv_mutex_unlock(&q->mu);
    return head;
}

void node__jobq_stop(struct jobq *q)
{
    uv_mutex_lock(&q->mu);
    q->stop = true;
    uv_cond_broadcast(&q->cv);
    uv_cond_broadcast(&q->held_cv);
    uv_mutex_unlock(&q->mu);
}

void node__wal_job_free(struct wal_job *j)
{
    if (j == NULL) {
        return;
    }
    mem_free(j->ents);
    mem_free(j->blob);
    buf_free(&j->after);
    buf_free(&j->reset_conf);
    mem_free(j->read_ents);
    mem_free(j->read_arena);
    mem_free(j);
}

void node__apply_job_free(struct apply_job *j)
{
    if (j == NULL) {
        return;
    }
    mem_free(j->ents);
    mem_free(j->blob);
    buf_free(&j->results);
    buf_free(&j->events);
    mem_free(j);
}

/* ---------------------------------------------------------- WAL thread */

/* Append jobs [first, end) (entries consecutive across them) with one
 * log_append, the hard state of the last job that has one. */
static int wal_write_run(struct node *n, struct wal_job *first,
                         struct wal_job *end)
{
    size_t total = 0;
    struct log_entry *le;
    const struct log_hard_state *hs = NULL;
    struct log_hard_state hard;
    size_t k = 0;
    int rc;
    uint64_t t0;

    for (struct wal_job *j = first; j != end; j = j->next) {
        total += j->ents_count;
        if (j->has_hard) {
            hard.term = j->hard.term;
            hard.vote = j->hard.vote;
            hard.commit = j->hard.commit;
            hs = &hard;
        }
    }
    if (total == 0 && hs == NULL) {
        return 0;
    }
    if (total == 0 && hs->term == n->wal_term && hs->vote == n->wal_vote) {
        /* Only the commit index moved: it is a hint that may be persisted
         * lazily (raft.h), so it rides with the next write instead of
         * costing an fsync of its own. The job still completes in order. */
        return 0;
    }
    le = mem_alloc((total == 0 ? 1 : total) * sizeof(*le));
    if (le == NULL) {
        return -ENOMEM;
    }
    for (struct wal_job *j = first; j != end; j = j->next) {
        for (size_t i = 0; i < j->ents_count; i++, k++) {
            le[k].index = j->ents[i].index;
            le[k].term = j->ents[i].term;
            le[k].type = j->ents[i].type;
            le[k].data = j->ents[i].data;
            le[k].len = j->ents[i].len;
        }
    }
    if (n->wal_delay_ms > 0 && total > 0) {
        struct timespec ts = {n->wal_delay_ms / 1000,
                              (long)(n->wal_delay_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    t0 = clock_mono_ns();
    rc = log_append(n->log, le, total, hs);
    if (rc == 0 && hs != NULL) {
        n->wal_term = hs->term;
        n->wal_vote = hs->vote;
    }
    t0 = clock_mono_ns() - t0;
    atomic_fetch_add(&n->wal_fsyncs, 1);
    atomic_fetch_add(&n->wal_fsync_ns, t0);
    atomic_store(&n->wal_last_fsync_ns, t0);
    size_t b = 0;
    while (b + 1 < NODE_FSYNC_BUCKETS && t0 > (uint64_t)1000000 << b) {
        b++;
    }
    atomic_fetch_add(&n->wal_fsync_hist[b], 1);
    mem_free(le);
    return rc;
}

/* Write and sync a list of jobs, hand them back (wal_out), open the gate
 * as far as they made entries durable and tell the loop. Run by whoever
 * holds the WAL: its thread, or the loop while the thread waits
 * (node__wal_inline). */
static void wal_pass(struct node *n, struct wal_job *head)
{
    int failed = n->wal_failed;
    uint64_t durable = 0; /* the last entry this pass made durable */
    /* Cut the list into runs of consecutive entries. */
    struct wal_job *run = head;
    while (run != NULL) {
        struct wal_job *end = run->next;
        uint64_t next_index = 0;
        for (struct wal_job *j = run; j != end; j = j->next) {
            if (j->ents_count > 0) {
                next_index = j->ents[j->ents_count - 1].index + 1;
            }
        }
        for (int guard = 0; end != NULL; guard++) {
            if (end->reset_index != 0) {
                break; /* a snapshot: the log restarts there */
            }
            if (end->ents_count > 0 && next_index != 0 &&
                end->ents[0].index != next_index) {
                break; /* a rewrite: its own append */
            }
            if (end->ents_count > 0) {
                next_index = end->ents[end->ents_count - 1].index + 1;
            }
            end = end->next;
        }
        int rc = failed;
        if (rc == 0 && run->reset_index != 0) {
            node__crash_hold(n, "snap-store");
            struct log_snap_meta lm = {
                .index = run->reset_index,
                .term = run->reset_term,
                .conf = run->reset_conf.data,
                .conf_len = (uint32_t)run->reset_conf.len,
            };
            rc = log_snap_save(n->dir_snap, &lm, 0, "", 0, 0);
            rc = rc == ERR_EXISTS ? 0 : rc;
            if (rc == 0) {
                node__crash_point(n, "snap-meta");
            }
        }
        if (rc == 0 && run->reset_index != 0) {
            rc = log_reset(n->log, run->reset_index, run->reset_term);
        }
        if (rc == 0) {
            rc = wal_write_run(n, run, end);
        }
        if (rc == 0 && run->reset_index != 0) {
            node__crash_point(n, "snap-wal");
        }
        if (rc != 0 && failed == 0) {
            failed = rc;
            LOGE("node", "write-ahead log append failed: %s", err_str(rc));
        }
        for (struct wal_job *j = run; rc == 0 && j != end; j = j->next) {
            if (j->ents_count > 0 && j->reset_index == 0) {
                durable = j->ents[j->ents_count - 1].index;
            }
        }
        for (struct wal_job *j = run; j != end;) {
            struct wal_job *next = j->next;
            if (rc == 0 && j->release_before != 0) {
                /* Old segments are only a cost now; a failure to
                 * delete them is logged, not fatal. */
                int rr = log_release(n->log, j->release_before);
                if (rr != 0) {
                    LOGW("node", "releasing WAL segments: %s", err_str(rr));
                }
            }
            j->err = rc;
            if (rc == 0 && j->read_hi != 0) {
                j->err = node__wal_read(n, j);
            }
            node__jobq_push(&n->wal_out, j);
            j = next;
        }
        run = end;
    }
    /* After the push (node__gate_revoke finds every entry below the
     * gate in wal_out) and before the notice: the apply thread's
     * commit starts now, not after the loop's turn. */
    if (durable != 0 && failed == 0) {
        node__gate_open_durable(n, durable);
    }
    node__notify(n, &n->wal_news);
    n->wal_failed = failed;
}

void node__wal_main(void *arg)
{
    struct node *n = arg;
    for (;;) {
        struct wal_job *head = node__jobq_take_all(&n->wal_in, true, NULL);
        if (head == NULL) {
            break; /* stopped and drained */
        }
        wal_pass(n, head);
    }
}

bool node__wal_inline(struct node *n, struct wal_job *wj)
{
    struct jobq *q = &n->wal_in;
    uv_mutex_lock(&q->mu);
    bool ok = q->head == NULL && q->waiting && !q->stop;
    q->lent = ok;
    uv_mutex_unlock(&q->mu);
    if (!ok) {
        return false;
    }
    wj->next = NULL;
    wal_pass(n, wj);
    uv_mutex_lock(&q->mu); /* what the pass wrote, seen by the thread */
    q->lent = false;
    uv_mutex_unlock(&q->mu);
    return true;
}

/* ---------------------------------------------------------- apply thread */

struct apply_ctx {
    struct node *n;
    struct apply_job *job;
    int err;
    uint64_t early_lo; /* the first early entry of the batch (0: none) */
    size_t ents;       /* entries in the store transaction */
};

int node__gate_wait(struct node *n, uint64_t index)
{
    struct jobq *q = &n->apply_in;
    int rc = 0;
    if (atomic_load(&n->gate_ok) >= index) {
        return 0;
    }
    uv_mutex_lock(&q->mu);
    while (atomic_load(&n->gate_ok) < index && !q->stop) {
        uv_cond_wait(&q->held_cv, &q->mu);
    }
    if (atomic_load(&n->gate_ok) < index) {
        rc = ERR_CANCELED; /* closing: the entries are in the WAL */
    }
    uv_mutex_unlock(&q->mu);
    return rc;
}

void node__gate_open(struct node *n, uint64_t index)
{
    struct jobq *q = &n->apply_in;
    uint64_t old = atomic_load(&n->gate_ok);
    if (index <= old) {
        return;
    }
    if (n->early_hi <= old) {
        /* Nothing early is out: no commit can be waiting for this. The
         * WAL thread may raise the gate meanwhile (its permit is set
         * before this batch's WAL job goes out): only raise it here. */
        while (old < index &&
               !atomic_compare_exchange_weak(&n->gate_ok, &old, index)) {
        }
        return;
    }
    uv_mutex_lock(&q->mu);
    if (index > atomic_load(&n->gate_ok)) {
        atomic_store(&n->gate_ok, index);
        uv_cond_signal(&q->held_cv);
    }
    uv_mutex_unlock(&q->mu);
}

void node__gate_open_durable(struct node *n, uint64_t index)
{
    struct jobq *q = &n->apply_in;
    uv_mutex_lock(&q->mu);
    if (index > n->gate_permit) {
        index = n->gate_permit;
    }
    if (index > atomic_load(&n->gate_ok)) {
        atomic_store(&n->gate_ok, index);
        atomic_fetch_add(&n->wal_gate_opens, 1);
        uv_cond_signal(&q->held_cv);
    }
    uv_mutex_unlock(&q->mu);
}

/* A small early batch (one client or two) waits for the gate spinning, up
 * to about an fsync, before it sleeps: the store's commit then starts the
 * moment the WAL thread opens the gate, not one wake-up later (10-30 us on
 * a VM, a tenth of one client's put). A larger batch means clients
 * enough that the wait is covered by work, and the core is theirs. */
#define GATE_SPIN_ENTRIES 2
#define GATE_SPIN_NS      300000

static void gate_spin(struct node *n, uint64_t index)
{
    uint64_t end = clock_mono_ns() + GATE_SPIN_NS;
    for (unsigned i = 1; atomic_load(&n->gate_ok) < index; i++) {
        node__cpu_relax();
        if ((i & 63) == 0 && clock_mono_ns() > end) {
            return; /* the bound stands in for a check of stop */
        }
    }
}

/* apply_hooks.commit_gate: a state holding early entries waits for Raft. */
static int commit_gate(void *ctx, uint64_t index)
{
    struct apply_ctx *c = ctx;
    if (c->early_lo == 0 || index < c->early_lo) {
        return 0;
    }
    if (c->ents <= GATE_SPIN_ENTRIES) {
        gate_spin(c->n, index);
    }
    return node__gate_wait(c->n, index);
}

static void on_result(void *ctx, const struct apply_result *res)
{
    struct apply_ctx *c = ctx;
    struct node__result r = {.id = res->id,
                             .err = res->err,
                             .op = (uint32_t)res->op,
                             .revision = res->revision,
                             .resp_len = (uint32_t)res->resp_len};
    static const uint8_t pad[8] = {0};
    int rc = buf_append(&c->job->results, &r, sizeof(r));
    if (rc == 0 && res->resp_len > 0) {
        rc = buf_append(&c->job->results, res->resp, res->resp_len);
    }
    if (rc == 0 && (res->resp_len & 7) != 0) {
        rc = buf_append(&c->job->results, pad, 8 - (res->resp_len & 7));
    }
    if (rc != 0 && c->err == 0) {
        c->err = rc; /* the proposer will time out; counted as failed */
    }
}

/* Events are copied as: u8 type, u8 prev (1: has_prev, 2: prev_omitted),
 * kv, [prev]; each kv as
 * i64 create, mod, version, lease, u32 key_len, u32 value_len, bytes. */
static int put_kv(struct buf *b, const struct kv_kv *kv)
{
    uint8_t h[40];
    int rc;
    memcpy(h, &kv->create_revision, 8);
    memcpy(h + 8, &kv->mod_revision, 8);
    memcpy(h + 16, &kv->version, 8);
    memcpy(h + 24, &kv->lease, 8);
    uint32_t kl = (uint32_t)kv->key_len;
    uint32_t vl = (uint32_t)kv->value_len;
    memcpy(h + 32, &kl, 4);
    memcpy(h + 36, &vl, 4);
    rc = buf_append(b, h, sizeof(h));
    if (rc == 0) {
        rc = buf_append(b, kv->key, kv->key_len);
    }
    if (rc == 0) {
        rc = buf_append(b, kv->value, kv->value_len);
    }
    return rc;
}

static int on_event(void *ctx, const struct kv_event *ev)
{
    struct apply_ctx *c = ctx;
    struct node *n = c->n;
    uint8_t h[2] = {(uint8_t)ev->type,
                    ev->has_prev ? 1 : (ev->prev_omitted ? 2 : 0)};
    int rc;
    if (n->obs.events == NULL) {
        return 0;
    }
    rc = buf_append(&c->job->events, h, 2);
    if (rc == 0) {
        rc = put_kv(&c->job->events, &ev->kv);
    }
    if (rc == 0 && ev->has_prev) {
        rc = put_kv(&c->job->events, &ev->prev);
    }
    if (rc != 0 && c->err == 0) {
        c->err = rc;
    }
    c->job->events_count++;
    return 0;
}

/* A conf-change entry: its ctx is [u64 waiter id][u64 proposer][record]
 * (node_members.c). The record goes into the member table in this same
 * transaction; the proposer's waiter gets its answer after the commit. */
static int on_conf(void *ctx, struct kv_write *wr, const struct raft_entry *e)
{
    struct apply_ctx *c = ctx;
    struct raft_conf_change cc;
    uint8_t name[8];
    uint64_t waiter;
    uint64_t origin;
    int rc = 0;
    if (raft_conf_change_decode(e->data, e->len, &cc) != 0 || cc.ctx_len < 16) {
        return 0; /* the core wrote it; an undecodable one changes nothing */
    }
    memcpy(&waiter, cc.ctx, 8);
    memcpy(&origin, cc.ctx + 8, 8);
    be64_put(name, cc.node_id);
    c->job->members_changed = true;
    if (cc.type == RAFT_CC_REMOVE) {
        uint8_t attr[12];
        rc = kv_aux_delete(wr, KV_AUX_CLUSTER, name, sizeof(name));
        rc = rc == ERR_NOT_FOUND ? 0 : rc;
        memcpy(attr, name, 8);
        memcpy(attr + 8, "attr", 4);
        if (rc == 0) {
            rc = kv_aux_delete(wr, KV_AUX_CLUSTER, attr, sizeof(attr));
            rc = rc == ERR_NOT_FOUND ? 0 : rc;
        }
    } else if (cc.ctx_len > 16) {
        rc = kv_aux_put(wr, KV_AUX_CLUSTER, name, sizeof(name), cc.ctx + 16,
                        cc.ctx_len - 16);
    }
    if (rc == 0 && origin == c->n->cfg.member_id) {
        struct apply_result res = {
            .id = waiter, .err = 0, .revision = kv_write_rev(wr)};
        on_result(c, &res);
    }
    return rc;
}

static void on_lease(void *ctx, int64_t id, int64_t ttl, bool checkpoint)
{
    struct apply_ctx *c = ctx;
    /* Lease changes ride in the events buffer as a pseudo event 0xff. */
    uint8_t h[2] = {0xff, checkpoint ? 1 : 0};
    int rc = buf_append(&c->job->events, h, 2);
    if (rc == 0) {
        rc = buf_append(&c->job->events, &id, 8);
    }
    if (rc == 0) {
        rc = buf_append(&c->job->events, &ttl, 8);
    }
    if (rc != 0 && c->err == 0) {
        c->err = rc;
    }
}

/* Defragment with every reader locked out (kv_defrag needs no handle). */
static int defrag_store(struct node *n)
{
    int rc;
    uv_rwlock_wrlock(&n->store_lock);
    rc = node__defrag(n);
    if (rc == 0) {
        node__crash_point(n, "defrag-swap");
    }
    uv_rwlock_wrunlock(&n->store_lock);
    return rc;
}

/* Swap the store for the received copy, with every reader locked out. */
static int install_snapshot(struct node *n, struct apply_job *j)
{
    struct apply_config ac = n->apply.cfg;
    int rc;
    node__crash_hold(n, "snap-meta");
    node__crash_hold(n, "snap-wal");
    uv_rwlock_wrlock(&n->store_lock);
    rc = kv_snapshot_install(n->kv, j->install_path);
    uv_rwlock_wrunlock(&n->store_lock);
    if (rc == 0) {
        node__crash_point(n, "snap-store");
        apply_close(&n->apply);
        rc = apply_init(&n->apply, &ac);
    }
    return rc;
}

static void on_member(void *ctx, uint64_t id)
{
    struct apply_ctx *c = ctx;
    (void)id;
    c->job->members_changed = true;
}

void node__apply_main(void *arg)
{
    struct node *n = arg;
    int failed = 0;
    for (;;) {
        struct apply_job *head = node__jobq_take_all(&n->apply_in, true, NULL);
        if (head == NULL) {
            break;
        }
        for (struct apply_job *j = head; j != NULL;) {
            struct apply_job *next = j->next;
            struct apply_ctx c = {.n = n, .job = j};
            const char *pfx = n->obs.events_prev_prefix;
            struct apply_hooks h = {
                .ctx = &c,
                .on_event = on_event,
                .events_prev_some = !atomic_load_explicit(&n->events_prev_all,
                                                          memory_order_relaxed),
                .events_prev_prefix = (const uint8_t *)pfx,
                .events_prev_prefix_len = pfx != NULL ? strlen(pfx) : 0,
                .on_result = on_result,
                .on_lease = on_lease,
                .on_conf = on_conf,
                .on_member = on_member,
                .commit_gate = commit_gate};
            int rc = failed;
            if (rc == 0 && j->install_index != 0) {
                rc = install_snapshot(n, j);
                if (rc == 0) {
                    /* Read before this job's entries apply: the loop
                     * answers the waiters the snapshot swallowed (node.c,
                     * answer_swallowed_waiters). */
                    j->install_last_id =
                        apply_last_id(&n->apply, n->cfg.member_id);
                }
            }
            if (rc == 0 && j->defrag) {
                /* A failed defrag is the caller's error, not a failure of
                 * the member: the old file is still in place. */
                j->err = defrag_store(n);
                j->applied = 0;
                j->rev = kv_rev(n->kv);
                node__jobq_push(&n->apply_out, j);
                j = next;
                continue;
            }
            /* Group commit for the store: this job and the plain jobs
             * queued behind it are applied in one store transaction (one
             * commit, one fsync); their results and events ride in this
             * job, the others come back empty. */
            struct apply_job *end = next;
            size_t total = j->ents_count;
            if (j->early && j->ents_count > 0) {
                c.early_lo = j->ents[0].index;
            }
            for (int guard = 0; end != NULL && guard < 1024; guard++) {
                if (end->install_index != 0 || end->defrag) {
                    break;
                }
                if (c.early_lo == 0 && end->early && end->ents_count > 0) {
                    c.early_lo = end->ents[0].index;
                }
                total += end->ents_count;
                end = end->next;
            }
            c.ents = total;
            if (rc == 0 && end != next) {
                struct raft_entry *all = mem_alloc(total * sizeof(*all));
                size_t k = 0;
                if (all == NULL) {
                    end = next; /* no memory for the merge: one at a time */
                } else {
                    for (struct apply_job *x = j; x != end; x = x->next) {
                        memcpy(all + k, x->ents, x->ents_count * sizeof(*all));
                        k += x->ents_count;
                    }
                    rc = apply_entries(&n->apply, all, total, j->term, &h);
                    j->applied = total > 0 ? all[total - 1].index : 0;
                    mem_free(all);
                }
            } else if (rc == 0) {
                rc = apply_entries(&n->apply, j->ents, j->ents_count, j->term,
                                   &h);
                j->applied =
                    j->ents_count > 0 ? j->ents[j->ents_count - 1].index : 0;
            }
            if (rc != 0 && failed == 0) {
                failed = rc;
                if (rc != ERR_CANCELED) { /* the node is closing */
                    LOGE("node", "applying entries to the store failed: %s",
                         err_str(rc));
                }
            }
            j->rev = kv_rev(n->kv);
            for (struct apply_job *x = j; x != end;) {
                struct apply_job *xn = x->next;
                x->err = rc;
                if (x != j) {
                    x->applied = 0; /* covered by the first job */
                    x->rev = j->rev;
                }
                node__jobq_push(&n->apply_out, x);
                x = xn;
            }
            j = end;
        }
        node__notify(n, &n->apply_news);
    }
}

/*
 * node_logmem.c - the in-memory Raft log kept to a byte budget.
 *
 * Raft's storage on a member is a raft_memstorage filled from the WAL as
 * entries become durable. Left alone it holds the data of every entry since
 * the last snapshot (up to --snapshot-count, 100,000 entries: 60,000 puts
 * of 2 KB raised the heap by 134 MB). The data is needed again only when a
 * follower lags behind and the leader sends it old entries; etcd keeps it
 * all in memory (its MemoryStorage) for that.
 *
 * Here, once the entries are applied (hence committed and durable in the
 * WAL), their data is given back (raft_memstorage_evict; index, term and
 * length stay, about 32 bytes an entry): at once when every member holds
 * them (raft_replicated_index; on a follower always, since nobody reads
 * its log), and otherwise once more than --raft-log-memory-bytes are
 * resident, so that a lagging member costs at most that much. Unapplied
 * entries always stay: the apply thread needs them, and Raft must never
 * find a committed entry it has not handed out missing.
 *
 * When the core asks for an evicted entry (a lagging follower), the fetch
 * hook serves it from a read-back window if it holds it; otherwise it asks
 * the WAL thread, which owns the log, to read a window of up to
 * NODE_REREAD_BYTES from there, and answers ERR_BUSY: the core sends that
 * follower nothing now. When the window arrives, raft_entries_available
 * makes the leader send again. One window is held at a time; a served
 * entry's term must match the one memory keeps for its index (the same
 * index and term is the same entry), so a window read before a snapshot
 * install or a log rewrite is never served for other entries.
 */
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/node/node_int.h"

/* A window read back from the WAL: sized for a few appends of the core's
 * max_msg_bytes, and always for one entry of the largest request. */
static size_t reread_bytes(const struct node *n)
{
    size_t b = NODE_REREAD_BYTES;
    size_t one = (size_t)n->cfg.max_request_bytes + ((size_t)64 << 10);
    return one > b ? one : b;
}

static bool window_term_ok(struct node *n, const struct raft_entry *e)
{
    const struct raft_storage *st = raft_memstorage_storage(&n->ms);
    uint64_t t = 0;
    return st->term(st->ctx, e->index, &t) == 0 && t == e->term;
}

static void window_drop(struct node_reread *w)
{
    mem_free(w->ents);
    mem_free(w->arena);
    w->ents = NULL;
    w->arena = NULL;
    w->count = 0;
}

static void request_read(struct node *n, uint64_t lo, uint64_t hi)
{
    struct wal_job *j;
    if (n->rr.loading || n->closing || n->failed != 0 || !n->threads_started) {
        return;
    }
    j = mem_calloc(1, sizeof(*j));
    if (j == NULL) {
        return; /* asked again at the next heartbeat answer */
    }
    buf_init(&j->after, 0);
    buf_init(&j->reset_conf, 0);
    j->read_lo = lo;
    j->read_hi = hi;
    j->read_max = reread_bytes(n);
    n->rr.loading = true;
    n->wal_jobs++;
    node__jobq_push(&n->wal_in, j);
}

/* struct raft_memstorage's fetch: evicted entries [lo, hi). Loop thread,
 * inside a raft_* call. */
static int fetch(void *fctx, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                 struct raft_entry *out, size_t cap, size_t *count)
{
    struct node *n = fctx;
    struct node_reread *w = &n->rr;
    uint64_t bytes = 0;
    *count = 0;
    if (w->count > 0 && lo >= w->ents[0].index &&
        lo < w->ents[0].index + w->count) {
        for (size_t k = (size_t)(lo - w->ents[0].index);
             k < w->count && w->ents[k].index < hi && *count < cap; k++) {
            const struct raft_entry *e = &w->ents[k];
            if (!window_term_ok(n, e)) {
                break;
            }
            bytes += e->len;
            if (*count > 0 && max_bytes > 0 && bytes > max_bytes) {
                break;
            }
            out[(*count)++] = *e; /* borrowed until the window changes */
        }
        if (*count > 0) {
            w->served++;
            return 0;
        }
        window_drop(w); /* entries of another history */
    }
    request_read(n, lo, hi);
    return ERR_BUSY;
}

void node__logmem_init(struct node *n)
{
    memset(&n->rr, 0, sizeof(n->rr));
    n->ms.fetch = fetch;
    n->ms.fctx = n;
    if (n->cfg.raft_log_memory_bytes == 0) {
        n->cfg.raft_log_memory_bytes = NODE_LOG_MEMORY_DEFAULT;
    }
}

void node__logmem_close(struct node *n)
{
    window_drop(&n->rr);
}

void node__logmem_trim(struct node *n, uint64_t applied)
{
    uint64_t everyone = raft_replicated_index(&n->raft);
    uint64_t upto = everyone < applied ? everyone : applied;
    /* What every member holds and this one applied is read again only if
     * a member falls behind later (then from the WAL): let it all go, so
     * that a healthy cluster's heap does not grow with its writes. */
    if (n->ms.evicted < n->ms.count && n->ms.resident_bytes > 0) {
        n->rr.evicted_bytes += raft_memstorage_evict(&n->ms, upto, 0);
    }
    if (n->ms.resident_bytes > n->cfg.raft_log_memory_bytes) {
        n->rr.evicted_bytes += raft_memstorage_evict(
            &n->ms, applied, n->cfg.raft_log_memory_bytes);
    }
}

/* WAL thread: read the job's window (the log is this thread's). */
int node__wal_read(struct node *n, struct wal_job *j)
{
    size_t cap = 4096;
    struct log_entry *le = mem_alloc(cap * sizeof(*le));
    size_t count = 0;
    int rc;
    j->read_arena = mem_alloc(j->read_max);
    j->read_ents = mem_alloc(cap * sizeof(*j->read_ents));
    if (le == NULL || j->read_arena == NULL || j->read_ents == NULL) {
        mem_free(le);
        return -ENOMEM;
    }
    rc = log_entries(n->log, j->read_lo, j->read_hi, j->read_max, le, cap,
                     j->read_arena, j->read_max, &count);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        j->read_ents[i] = (struct raft_entry){
            .index = le[i].index,
            .term = le[i].term,
            .type = le[i].type,
            .len = le[i].len,
            .data = (uint8_t *)le[i].data,
        };
    }
    j->read_count = rc == 0 ? count : 0;
    mem_free(le);
    return rc;
}

/* Loop thread: a window came back from the WAL thread. */
void node__logmem_read_done(struct node *n, struct wal_job *j, int rc)
{
    struct node_reread *w = &n->rr;
    w->loading = false;
    if (rc != 0 || j->read_count == 0) {
        w->read_errors++;
        LOGW("node", "reading entries %llu.. back from the WAL: %s",
             (unsigned long long)j->read_lo, err_str(rc ? rc : ERR_NOT_FOUND));
        return;
    }
    window_drop(w);
    w->ents = j->read_ents;
    w->arena = j->read_arena;
    w->count = j->read_count;
    j->read_ents = NULL;
    j->read_arena = NULL;
    w->reads++;
    for (size_t i = 0; i < w->count; i++) {
        w->read_bytes += w->ents[i].len;
    }
    if (!n->closing) {
        raft_entries_available(&n->raft);
    }
}

/*
 * sim_member.c - one simulated member: the real Raft core driven exactly as
 * raft.h's ordering rules say, over a simulated disk.
 *
 * Happy path of one ready batch (member_drive):
 *   1. msgs go to the network at once (a leader replicates while it
 *      persists, thesis 10.2.1);
 *   2. snapshot, entries and hard state become one disk op, queued FIFO
 *      behind earlier ones; its msgs_after_persist wait inside the op;
 *   3. committed entries are applied to the state machine at once (they are
 *      durable already) and raft_applied() reported;
 *   4. reads get their index and are answered once applied >= index;
 *   5. raft_advance().
 * The batch's snapshot, entries and hard state go through the real WAL and
 * snapshot files (consensus/log) on the member's simulated disk
 * (sim_disk.c) at once, the way consensus/node's WAL thread writes them;
 * the disk keeps them journaled as not yet durable. When the op's simulated
 * fsync completes (member_disk_done) the journal is settled up to it, the
 * op is copied into Raft's storage (a raft_memstorage, as in the node), its
 * held messages are sent, and raft_persisted() / raft_snapshot_installed()
 * are reported.
 *
 * A received snapshot is installed in two halves at their own times, as
 * consensus/node does (node_snap.c): the MsgSnap's store copy is first
 * written and synced as the received-copy file (member/snap-in.tmp, the
 * node's file of that name) and only then stepped into Raft; the batch that
 * carries the snapshot starts both halves: the WAL half (snapshot file,
 * log_reset, the batch's entries) is a disk op like any batch's, the store
 * half (the store swapped to the received copy) an EV_INSTALL event of its
 * own. raft_snapshot_installed(), and raft_persisted() for the entries
 * written with the reset, are reported only when both are done; then the
 * received copy is dropped (the node keeps it as its checkpoint).
 * Meanwhile the member steps messages and writes and persists entries as
 * usual; Raft hands out nothing to apply, reads see the applied index of
 * before the install (the node's n->applied moves at the end), no
 * compaction starts, and another received snapshot is dropped (the node
 * refuses its stream). Some crashes are aimed between the two halves.
 *
 * A crash (member_crash) closes the log and lets the disk keep a random
 * prefix of the unsynced changes, maybe tearing the next write (a prefix of
 * its bytes, or that prefix then garbage). A start reopens the log, which
 * replays and repairs what the disk holds, and rebuilds Raft's storage from
 * it as consensus/node's load_wal does; what it recovered is checked against
 * what had been reported durable before the crash. A store behind the saved
 * snapshot then installs the received copy, as node__store_catch_up
 * decides (node_ckpt.c); with no usable copy the member cannot start.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "tests/sim/sim.h"
#include "tests/sim/sim_disk.h"

#define WAL_DIR     "wal"
#define SNAP_DIR    "snap"
#define MEMBER_DIR  "member" /* the node's member/: the received copy */
#define SNAP_IN     "snap-in.tmp"
#define SNAP_KEEP   2
#define READ_BATCH  64
#define ARENA_BYTES ((size_t)256 << 10)

/* ------------------------------------------------------------ disk ops */

static void dop_free(struct sim *s, struct sim_dop *op, bool send_held)
{
    if (op->has_snap) {
        mem_free(op->snap.data);
    }
    for (size_t i = 0; i < op->ents_count; i++) {
        mem_free(op->ents[i].data);
    }
    mem_free(op->ents);
    for (size_t i = 0; i < op->after_count; i++) {
        if (send_held) {
            net_send(s, op->after[i]);
        } else {
            net_free_pkt(s, op->after[i]);
        }
    }
    mem_free(op->after);
    buf_free(&op->snap_in);
    memset(op, 0, sizeof(*op));
}

static struct sim_dop *dop_push(struct sim_member *m)
{
    if (m->dops_head > 0 && m->dops_head == m->dops_count) {
        m->dops_head = 0;
        m->dops_count = 0;
    }
    if (m->dops_count == m->dops_cap) {
        if (m->dops_head > 0) {
            memmove(m->dops, m->dops + m->dops_head,
                    (m->dops_count - m->dops_head) * sizeof(*m->dops));
            m->dops_count -= m->dops_head;
            m->dops_head = 0;
        }
        if (m->dops_count == m->dops_cap) {
            size_t cap = m->dops_cap ? m->dops_cap * 2 : 8;
            struct sim_dop *v = mem_realloc(m->dops, cap * sizeof(*v));
            ASSERT(v != NULL);
            m->dops = v;
            m->dops_cap = cap;
        }
    }
    struct sim_dop *op = &m->dops[m->dops_count++];
    memset(op, 0, sizeof(*op));
    buf_init(&op->snap_in, 0);
    return op;
}

static size_t dops_pending(const struct sim_member *m)
{
    return m->dops_count - m->dops_head;
}

/* Schedule the completion of the I/O issued since the previous op: as op,
 * or (op NULL) as an op of its own when there is any such I/O. */
static void disk_io_later(struct sim *s, struct sim_member *m,
                          struct sim_dop *op)
{
    uint64_t mark = sim_disk_mark(m->disk);
    if (op == NULL) {
        bool unsealed = dops_pending(m) > 0
                            ? m->dops[m->dops_count - 1].disk_mark < mark
                            : sim_disk_unsettled(m->disk) > 0;
        if (!unsealed) {
            return;
        }
        op = dop_push(m);
    }
    op->disk_mark = mark;
    uint64_t start = m->disk_free_at > s->now ? m->disk_free_at : s->now;
    uint64_t lat = prng_range(&s->rng, s->p.disk_min_us, s->p.disk_max_us);
    if (prng_chance(&s->rng, 1, 200)) {
        lat += prng_range(&s->rng, 0, 50000); /* a slow fsync */
    }
    op->done_at = start + lat;
    m->disk_free_at = op->done_at;
    sim_schedule(s, op->done_at, EV_DISK, m->slot, m->inc, NULL);
    if (m->crash_armed && s->phase == PHASE_FAULT) {
        /* Before the write's simulated fsync completes. */
        m->crash_armed = false;
        sim_schedule(s, prng_range(&s->rng, s->now, op->done_at - 1), EV_CRASH,
                     m->slot, m->inc, NULL);
    }
}

static void copy_entries(struct sim_dop *op, const struct raft_entry *e,
                         size_t n)
{
    op->ents = mem_calloc(n, sizeof(*op->ents));
    ASSERT(op->ents != NULL);
    for (size_t i = 0; i < n; i++) {
        op->ents[i] = e[i];
        op->ents[i].data = NULL;
        if (e[i].len > 0) {
            op->ents[i].data = mem_dup(e[i].data, e[i].len);
            ASSERT(op->ents[i].data != NULL);
        }
    }
    op->ents_count = n;
}

/* Copy (the whole of) a completed op into Raft's storage, as the node's
 * on_wal_done does: the snapshot, the entries, the hard state. */
static void dop_make_durable(struct sim *s, struct sim_member *m,
                             const struct sim_dop *op)
{
    if (op->has_snap) {
        int rc = raft_memstorage_apply_snapshot(&m->ds, &op->snap);
        if (rc < 0) {
            sim_violation(s, "member %lu: durable snapshot %lu refused: %s",
                          (unsigned long)m->id,
                          (unsigned long)op->snap.meta.index, err_str(rc));
        }
    }
    if (op->ents_count > 0) {
        int rc = raft_memstorage_append(&m->ds, op->ents, op->ents_count);
        if (rc < 0) {
            sim_violation(s, "member %lu: durable append at %lu refused: %s",
                          (unsigned long)m->id,
                          (unsigned long)op->ents[0].index, err_str(rc));
        } else {
            check_durable(s, m, op->ents, op->ents_count);
        }
    }
    if (op->has_hard) {
        raft_memstorage_set_hard_state(&m->ds, &op->hard);
    }
}

/* ------------------------------------------------- the snapshot files */

/* A snapshot file with the state machine's bytes inline (the node keeps
 * them in the store and writes only the metadata; our in-memory state
 * machine has nowhere else to keep them). */
static int snap_save(struct sim *s, struct sim_member *m,
                     const struct raft_snapshot_meta *meta, const void *data,
                     size_t len)
{
    struct buf conf;
    buf_init(&conf, 0);
    int rc = raft_conf_encode(&meta->conf, &conf);
    if (rc == 0) {
        struct log_snap_meta lm = {meta->index, meta->term, conf.data,
                                   (uint32_t)conf.len};
        rc = log_snap_save_vfs(m->lo.vfs, SNAP_DIR, &lm, 0, len ? data : "",
                               len, SNAP_KEEP);
        rc = rc == ERR_EXISTS ? 0 : rc;
    }
    buf_free(&conf);
    if (rc < 0) {
        sim_violation(s, "member %lu: saving snapshot %lu failed: %s",
                      (unsigned long)m->id, (unsigned long)meta->index,
                      err_str(rc));
    }
    return rc;
}

/* The received copy of a store (node_snap.c's member/snap-in.tmp): written
 * whole, then the file and its directory synced, before its MsgSnap is
 * stepped, so that whenever the snapshot's metadata is durable so is the
 * copy. */
static int snap_in_write(struct sim_member *m, const void *p, size_t len)
{
    const struct log_vfs *v = m->lo.vfs;
    int dir = -1;
    int fd = -1;
    int rc = v->dir_open(v->ctx, MEMBER_DIR, true, &dir);
    if (rc < 0) {
        return rc;
    }
    unsigned flags = LOG_VFS_RDWR;
    if (v->exists(v->ctx, dir, SNAP_IN) == -ENOENT) {
        flags |= LOG_VFS_CREATE;
    }
    rc = v->open(v->ctx, dir, SNAP_IN, flags, &fd);
    if (rc == 0) {
        rc = v->truncate(v->ctx, fd, 0);
    }
    if (rc == 0 && len > 0) {
        rc = v->write(v->ctx, fd, p, len, 0);
    }
    if (rc == 0) {
        rc = v->sync(v->ctx, fd);
    }
    if (fd >= 0) {
        v->close(v->ctx, fd);
    }
    if (rc == 0) {
        rc = v->dir_sync(v->ctx, dir);
    }
    v->dir_close(v->ctx, dir);
    return rc;
}

/* The received copy into out (appended); -ENOENT when there is none. */
static int snap_in_read(struct sim_member *m, struct buf *out)
{
    const struct log_vfs *v = m->lo.vfs;
    int dir = -1;
    int fd = -1;
    uint64_t size = 0;
    int rc = v->dir_open(v->ctx, MEMBER_DIR, false, &dir);
    if (rc < 0) {
        return rc;
    }
    rc = v->open(v->ctx, dir, SNAP_IN, LOG_VFS_READ, &fd);
    if (rc == 0) {
        rc = v->size(v->ctx, fd, &size);
    }
    if (rc == 0) {
        rc = buf_reserve(out, (size_t)size);
    }
    if (rc == 0 && size > 0) {
        struct iovec iov = {out->data + out->len, (size_t)size};
        rc = v->read(v->ctx, fd, &iov, 1, 0);
        out->len += rc == 0 ? (size_t)size : 0;
    }
    if (fd >= 0) {
        v->close(v->ctx, fd);
    }
    v->dir_close(v->ctx, dir);
    return rc;
}

/* The install is done: the node renames the copy to its checkpoint; ours
 * has no further use. The unlink is journaled like any change (a crash may
 * undo it: a copy nothing names is harmless, see store_catch_up). */
static void snap_in_drop(struct sim *s, struct sim_member *m)
{
    const struct log_vfs *v = m->lo.vfs;
    int dir = -1;
    int rc = v->dir_open(v->ctx, MEMBER_DIR, false, &dir);
    if (rc < 0) {
        return;
    }
    rc = v->unlink(v->ctx, dir, SNAP_IN);
    if (rc == 0) {
        rc = v->dir_sync(v->ctx, dir);
    }
    v->dir_close(v->ctx, dir);
    if (rc < 0 && rc != -ENOENT) {
        sim_violation(s, "member %lu: dropping the received copy: %s",
                      (unsigned long)m->id, err_str(rc));
    }
}

/* ------------------------------------------------------- the log view */

/* Entry i read back from the WAL (data borrowed until the next read). */
static int log_read_one(struct sim_member *m, uint64_t i,
                        struct raft_entry *out)
{
    struct log_entry le;
    size_t count = 0;
    int rc;
    for (;;) {
        rc = log_entries(m->log, i, i + 1, UINT64_MAX, &le, 1, m->arena.data,
                         m->arena.cap, &count);
        if (rc != ERR_LIMIT) {
            break;
        }
        buf_reset(&m->arena);
        rc = buf_reserve(&m->arena, m->arena.cap * 2 + 4096);
        ASSERT(rc == 0);
    }
    if (rc < 0) {
        return rc;
    }
    ASSERT(count == 1);
    out->index = le.index;
    out->term = le.term;
    out->type = le.type;
    out->data = (uint8_t *)le.data;
    out->len = le.len;
    return 0;
}

bool member_log_get(struct sim_member *m, uint64_t index,
                    struct raft_entry *out, bool *compacted)
{
    *compacted = false;
    if (m->log == NULL || index > log_last_index(m->log)) {
        return false;
    }
    if (index < log_first_index(m->log)) {
        *compacted = true;
        return false;
    }
    return log_read_one(m, index, out) == 0;
}

uint64_t member_log_last(const struct sim_member *m)
{
    return m->log != NULL ? log_last_index(m->log) : 0;
}

/* ------------------------------------------- evicted entries, read back */

/* raft_memstorage's fetch for evicted entries [lo, hi): served from the
 * WAL once an EV_FETCH "loaded" a range holding lo; otherwise one load is
 * scheduled and the core hears ERR_BUSY, as node_logmem.c's fetch does.
 * An entry whose term differs from the one the storage keeps (the WAL was
 * reset to a snapshot the storage has not taken yet) is not served. */
static int member_fetch(void *fctx, uint64_t lo, uint64_t hi,
                        uint64_t max_bytes, struct raft_entry *out, size_t cap,
                        size_t *count)
{
    struct sim_member *m = fctx;
    struct sim *s = m->sim;
    *count = 0;
    if (m->fetch_ready && lo >= m->fetch_lo && lo < m->fetch_hi &&
        m->log != NULL) {
        struct log_entry le[64];
        size_t n = 0;
        uint64_t top = hi < m->fetch_hi ? hi : m->fetch_hi;
        int rc =
            log_entries(m->log, lo, top, max_bytes ? max_bytes : UINT64_MAX, le,
                        cap < 64 ? cap : 64, m->arena.data, m->arena.cap, &n);
        const struct raft_storage *st = raft_memstorage_storage(&m->ds);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            uint64_t t = 0;
            if (st->term(st->ctx, le[i].index, &t) != 0 || t != le[i].term) {
                break;
            }
            out[(*count)++] =
                (struct raft_entry){.index = le[i].index,
                                    .term = le[i].term,
                                    .type = le[i].type,
                                    .len = le[i].len,
                                    .data = (uint8_t *)le[i].data};
        }
        if (*count > 0) {
            s->st_fetch_served++;
            return 0;
        }
        m->fetch_ready = false;
    }
    if (!m->fetch_loading) {
        m->fetch_loading = true;
        m->fetch_lo = lo;
        m->fetch_hi = hi;
        sim_schedule(s, s->now + prng_range(&m->frng, 50, 20000), EV_FETCH,
                     m->slot, m->inc, NULL);
    }
    s->st_fetch_busy++;
    return ERR_BUSY;
}

void member_fetch_done(struct sim *s, struct sim_member *m)
{
    m->fetch_loading = false;
    m->fetch_ready = true;
    sim_trace(s, "member %lu: entries %lu..%lu read back", (unsigned long)m->id,
              (unsigned long)m->fetch_lo, (unsigned long)m->fetch_hi);
    raft_entries_available(&m->raft);
    member_drive(s, m);
}

/* ------------------------------------------------------ start and stop */

static void fail_pending(struct sim *s, struct sim_member *m, bool reads_too)
{
    for (uint32_t i = 0; i < SIM_CLIENTS_MAX; i++) {
        struct sim_pending *p = &m->props[i];
        if (p->req_id != 0) {
            p->req_id = 0;
            client_done(s, p->client, p->client_gen, OUT_UNKNOWN, 0);
        }
    }
    for (uint32_t i = 0; i < SIM_READS_MAX; i++) {
        struct sim_read *r = &m->reads[i];
        if (r->ctx != 0 && (reads_too || !r->have_index)) {
            r->ctx = 0;
            if (r->agent) {
                wl_ka_confirmed(s, m, r, false);
            } else {
                client_done(s, r->client, r->client_gen, OUT_FAIL, 0);
            }
        }
    }
}

/* The I/O made outside any batch (opening, repairing) is done at once. */
static void disk_settle_now(struct sim *s, struct sim_member *m)
{
    char what[160];
    uint64_t n =
        sim_disk_settle(m->disk, sim_disk_mark(m->disk), what, sizeof(what));
    if (n > 0) {
        sim_violation(s, "member %lu: the log returned before syncing: %s",
                      (unsigned long)m->id, what);
    }
}

/* The snapshot file is durable but the WAL was not reset to it (a crash
 * between log_snap_save and log_reset, which the node does in that order
 * too): the WAL ends before the snapshot, or holds a different entry at
 * its index. Do the reset the crash lost, as consensus/node's load_wal
 * does: without it the first append after such a restart fails with
 * ERR_INVALID (the sim shows it on most seeds when this is skipped). */
static int wal_catch_up(struct sim *s, struct sim_member *m,
                        const struct raft_snapshot_meta *meta)
{
    uint64_t t = 0;
    uint64_t last = log_last_index(m->log);
    if (meta->index <= last && log_term(m->log, meta->index, &t) == 0 &&
        t == meta->term) {
        return 0;
    }
    int rc = log_reset(m->log, meta->index, meta->term);
    s->st_wal_repairs++;
    sim_trace(s,
              "member %lu: WAL (last %lu, term %lu there) reset to "
              "snapshot %lu term %lu",
              (unsigned long)m->id, (unsigned long)last, (unsigned long)t,
              (unsigned long)meta->index, (unsigned long)meta->term);
    if (rc < 0) {
        sim_violation(s, "member %lu: WAL reset to %lu failed: %s",
                      (unsigned long)m->id, (unsigned long)meta->index,
                      err_str(rc));
    }
    return rc;
}

/* Open the WAL and the newest snapshot file on the member's disk and build
 * Raft's storage from them into out, as consensus/node's load_wal does.
 * Every recovered entry goes through the log-matching checker. */
static int member_recover(struct sim *s, struct sim_member *m,
                          struct raft_memstorage *out)
{
    char msg[256];
    int rc = log_open(WAL_DIR, &m->lo, &m->log, msg, sizeof(msg));
    if (rc < 0) {
        m->log = NULL;
        sim_violation(s, "member %lu: WAL recovery failed: %s (%s)",
                      (unsigned long)m->id, err_str(rc), msg);
        return rc;
    }
    uint64_t first = log_first_index(m->log);
    uint64_t last = log_last_index(m->log);
    struct log_snap ls;
    rc = log_snap_load_vfs(m->lo.vfs, SNAP_DIR, &ls, msg, sizeof(msg));
    if (rc == 0) {
        struct raft_snapshot snap;
        memset(&snap, 0, sizeof(snap));
        snap.meta.index = ls.index;
        snap.meta.term = ls.term;
        snap.data = ls.payload;
        snap.data_len = (size_t)ls.payload_len;
        rc = raft_conf_decode(ls.conf, ls.conf_len, &snap.meta.conf);
        if (rc == 0) {
            rc = raft_memstorage_apply_snapshot(out, &snap);
        }
        if (rc == 0) {
            rc = wal_catch_up(s, m, &snap.meta);
            first = log_first_index(m->log);
            last = log_last_index(m->log);
        }
        log_snap_free(&ls);
        if (rc < 0) {
            sim_violation(s, "member %lu: loading snapshot %lu: %s",
                          (unsigned long)m->id, (unsigned long)snap.meta.index,
                          err_str(rc));
            return rc;
        }
        if (first < snap.meta.index + 1) {
            first = snap.meta.index + 1;
        }
    } else if (rc != ERR_NOT_FOUND) {
        sim_violation(s, "member %lu: snapshot load failed: %s (%s)",
                      (unsigned long)m->id, err_str(rc), msg);
        return rc;
    } else if (first > 1) {
        sim_violation(s,
                      "member %lu: the WAL starts at index %lu but there "
                      "is no snapshot",
                      (unsigned long)m->id, (unsigned long)first);
        return ERR_CORRUPT;
    }
    /* As load_wal: with eviction on, what Raft will not hand out again
     * (the store holds it, and it is committed) goes in without its data,
     * configuration entries apart; reads of it go to member_fetch. */
    uint64_t bare = 0;
    if (m->evict_on) {
        struct log_hard_state hs0;
        log_hard_state(m->log, &hs0);
        uint64_t c0 = hs0.commit > out->snap.meta.index ? hs0.commit
                                                        : out->snap.meta.index;
        bare = m->fsm.applied < c0 ? m->fsm.applied : c0;
    }
    rc = 0;
    for (uint64_t lo = first; rc == 0 && lo <= last;) {
        struct log_entry le[READ_BATCH];
        struct raft_entry re[READ_BATCH];
        size_t count = 0;
        rc = log_entries(m->log, lo, last + 1, m->arena.cap, le, READ_BATCH,
                         m->arena.data, m->arena.cap, &count);
        if (rc == ERR_LIMIT) {
            buf_reset(&m->arena);
            rc = buf_reserve(&m->arena, m->arena.cap * 2);
            ASSERT(rc == 0);
            continue;
        }
        if (rc < 0 || count == 0) {
            sim_violation(s, "member %lu: reading the WAL at %lu: %s",
                          (unsigned long)m->id, (unsigned long)lo, err_str(rc));
            return rc < 0 ? rc : ERR_CORRUPT;
        }
        for (size_t i = 0; i < count; i++) {
            re[i].index = le[i].index;
            re[i].term = le[i].term;
            re[i].type = le[i].type;
            re[i].data = (uint8_t *)le[i].data;
            re[i].len = le[i].len;
        }
        check_durable(s, m, re, count);
        size_t nb = 0;
        while (nb < count && re[nb].index <= bare) {
            if (re[nb].type != RAFT_ENTRY_CONF) {
                re[nb].data = NULL;
            }
            nb++;
        }
        if (nb > 0) {
            rc = raft_memstorage_append_evicted(out, re, nb);
        }
        if (rc == 0 && nb < count) {
            rc = raft_memstorage_append(out, re + nb, count - nb);
        }
        lo += count;
    }
    if (rc < 0) {
        sim_violation(s, "member %lu: rebuilding the log: %s",
                      (unsigned long)m->id, err_str(rc));
        return rc;
    }
    struct log_hard_state hs;
    log_hard_state(m->log, &hs);
    struct raft_hard_state rh = {hs.term, hs.vote, hs.commit};
    m->wal_term = hs.term;
    m->wal_vote = hs.vote;
    /* The commit index is persisted lazily: what a snapshot covers is
     * committed whatever the last hard state says. */
    if (rh.commit < out->snap.meta.index) {
        rh.commit = out->snap.meta.index;
    }
    raft_memstorage_set_hard_state(out, &rh);
    disk_settle_now(s, m);
    return 0;
}

/* What the WAL recovered holds everything the member had reported durable
 * before the crash (exp): entries (same terms) below the lowest index an
 * unsynced write could have replaced (a conflicting append or a snapshot
 * that reached the disk), and term and vote. */
static void check_recovered(struct sim *s, struct sim_member *m,
                            const struct raft_memstorage *exp,
                            const struct raft_memstorage *got)
{
    uint64_t exp_last = exp->snap.meta.index + exp->count;
    uint64_t got_last = got->snap.meta.index + got->count;
    if (m->unsynced_from <= exp_last) {
        exp_last = m->unsynced_from - 1;
    }
    if (got_last < exp_last) {
        sim_violation(s,
                      "durability: member %lu's WAL recovered up to %lu, "
                      "but %lu had been synced",
                      (unsigned long)m->id, (unsigned long)got_last,
                      (unsigned long)exp_last);
        return;
    }
    uint64_t lo = exp->snap.meta.index > got->snap.meta.index
                      ? exp->snap.meta.index
                      : got->snap.meta.index;
    for (uint64_t i = lo + 1; i <= exp_last; i++) {
        /* Entries folded into runs of terms (their data given back) are
         * compared by term; whole ones by length and data too. */
        uint64_t ta = 0;
        uint64_t tb = 0;
        bool ok = raft_memstorage_term(exp, i, &ta) == 0 &&
                  raft_memstorage_term(got, i, &tb) == 0;
        ASSERT(ok);
        const struct raft_entry *a = raft_memstorage_entry(exp, i);
        const struct raft_entry *b = raft_memstorage_entry(got, i);
        if (ta != tb || (a != NULL && b != NULL &&
                         (a->len != b->len ||
                          (a->len > 0 && a->data != NULL && b->data != NULL &&
                           memcmp(a->data, b->data, a->len) != 0)))) {
            sim_violation(s,
                          "durability: member %lu's WAL recovered term %lu "
                          "at %lu where term %lu had been synced",
                          (unsigned long)m->id, (unsigned long)tb,
                          (unsigned long)i, (unsigned long)ta);
            return;
        }
    }
    if (got->hard.term < exp->hard.term ||
        (got->hard.term == exp->hard.term && exp->hard.vote != 0 &&
         got->hard.vote != exp->hard.vote)) {
        sim_violation(s,
                      "durability: member %lu's WAL recovered term %lu vote "
                      "%lu, but term %lu vote %lu had been synced",
                      (unsigned long)m->id, (unsigned long)got->hard.term,
                      (unsigned long)got->hard.vote,
                      (unsigned long)exp->hard.term,
                      (unsigned long)exp->hard.vote);
    }
}

/* Reopen the log after a crash (or the first time) and make Raft's storage
 * what it recovered. */
static int member_reload(struct sim *s, struct sim_member *m)
{
    struct raft_memstorage got;
    raft_memstorage_init(&got);
    int rc = member_recover(s, m, &got);
    if (rc == 0) {
        check_recovered(s, m, &m->ds, &got);
        raft_memstorage_close(&m->ds);
        raft_memstorage_init(&m->ds);
        rc = raft_memstorage_copy(&m->ds, &got);
        ASSERT(rc == 0);
    }
    raft_memstorage_close(&got);
    return rc;
}

/* As node__store_catch_up (node_ckpt.c): the store is behind the saved
 * snapshot, and Raft resumes applying after it with nothing below it in
 * the log. The received copy is still the received-copy file (synced
 * before its MsgSnap was stepped, dropped only after the install): install
 * it. None, or one that leaves the store behind, is the node's refusal to
 * start: a violation here, since the ordering above should make it
 * impossible. The in-memory registers die with every crash; their durable
 * copy is the snapshot file's payload. */
static int store_catch_up(struct sim *s, struct sim_member *m)
{
    uint64_t want = m->ds.snap.meta.index;
    uint64_t had = m->fsm.applied;
    int rc;
    if (s->opts.fsm == FSM_MEM) {
        rc = fsm_restore(s, m, m->ds.snap.data, m->ds.snap.data_len, want,
                         m->ds.snap.meta.term);
        if (rc < 0) {
            sim_violation(s, "member %lu: restore at start failed: %s",
                          (unsigned long)m->id, err_str(rc));
        }
        return rc;
    }
    if (s->opts.plant == 7) {
        /* Planted bug 7: the node's open before node__store_catch_up. */
        sim_trace(s,
                  "member %lu: planted bug 7: store (applied %lu) behind "
                  "snapshot %lu, running on",
                  (unsigned long)m->id, (unsigned long)had,
                  (unsigned long)want);
        return 0;
    }
    struct buf copy;
    buf_init(&copy, 0);
    rc = snap_in_read(m, &copy);
    if (rc < 0) {
        sim_violation(s,
                      "member %lu: the store (applied %lu) is behind the "
                      "snapshot at %lu and there is no received copy (%s): "
                      "the member cannot start",
                      (unsigned long)m->id, (unsigned long)had,
                      (unsigned long)want, err_str(rc));
    } else {
        rc = fsm_restore(s, m, copy.data, copy.len, want, m->ds.snap.meta.term);
        if (rc < 0 || m->fsm.applied < want) {
            sim_violation(s,
                          "member %lu: the store (applied %lu) was behind "
                          "the snapshot at %lu; installing the received "
                          "copy: %s, applied %lu",
                          (unsigned long)m->id, (unsigned long)had,
                          (unsigned long)want, err_str(rc),
                          (unsigned long)m->fsm.applied);
            rc = rc < 0 ? rc : ERR_CORRUPT;
        }
    }
    buf_free(&copy);
    if (rc == 0) {
        s->st_store_catchups++;
        sim_trace(s,
                  "member %lu: store (applied %lu) behind snapshot %lu: "
                  "installed the received copy",
                  (unsigned long)m->id, (unsigned long)had,
                  (unsigned long)want);
        snap_in_drop(s, m);
        disk_settle_now(s, m);
    }
    return rc;
}

int member_start(struct sim *s, uint32_t slot)
{
    struct sim_member *m = &s->m[slot];
    ASSERT(!m->up && !m->removed);
    if (!m->exists) {
        bool initial = m->initial;
        memset(m, 0, sizeof(*m));
        m->initial = initial;
        m->exists = true;
        m->slot = slot;
        m->id = slot + 1;
        raft_memstorage_init(&m->ds);
        uint64_t skew = prng_range(&s->rng, 90, 110);
        m->tick_us = s->p.tick_us * skew / 100;
        m->compact_every =
            prng_range(&s->rng, s->p.compact_min, s->p.compact_max);
        if (s->slots_used <= slot) {
            s->slots_used = slot + 1;
        }
        m->disk =
            sim_disk_new(prng_mix(s->seed ^ ((uint64_t)m->id << 48) ^ 0xd15c));
        /* Small segments, so that cuts, releases and resets are frequent. */
        m->lo.segment_bytes = prng_range(&s->rng, 4, 64) * 1024;
        m->lo.vfs = sim_disk_vfs(m->disk);
        m->tear_pct = (uint32_t)prng_range(&s->rng, 10, 100);
        m->unsynced_from = UINT64_MAX;
        /* Eviction in about half of the runs, all members alike. */
        prng_seed(&m->frng,
                  prng_mix(s->seed ^ ((uint64_t)m->id << 44) ^ 0xe71c7ULL));
        m->evict_on =
            !s->opts.no_evict && (prng_mix(s->seed ^ 0x10633e3ULL) & 1) == 0;
        m->evict_keep = prng_below(&m->frng, 3) * 2048;
        buf_init(&m->arena, 0);
        int rc = buf_reserve(&m->arena, ARENA_BYTES);
        ASSERT(rc == 0);
    }
    m->inc++;
    int rc = fsm_open(s, m);
    if (rc < 0) {
        sim_violation(s, "member %lu: state machine open failed: %s",
                      (unsigned long)m->id, err_str(rc));
        return rc;
    }
    rc = member_reload(s, m);
    if (rc < 0) {
        return rc;
    }
    /* A durable snapshot newer than the state machine (a crash between
     * the halves of an install): catch the store up first. */
    if (m->ds.snap.meta.index > m->fsm.applied) {
        rc = store_catch_up(s, m);
        if (rc < 0) {
            return rc;
        }
    }
    struct raft_config cfg;
    raft_config_default(&cfg, m->id);
    cfg.seed = prng_mix(s->seed ^ (m->id << 40) ^ (m->inc << 20));
    cfg.election_ticks = s->p.election_ticks;
    cfg.heartbeat_ticks = s->p.heartbeat_ticks;
    cfg.pre_vote = s->p.pre_vote;
    cfg.check_quorum = s->p.check_quorum;
    cfg.max_msg_bytes = s->p.max_msg_bytes;
    cfg.max_inflight_msgs = s->p.max_inflight;
    cfg.max_committed_bytes = s->p.max_committed_bytes;
    m->sim = s;
    m->fetch_loading = false;
    m->fetch_ready = false;
    if (m->evict_on) {
        m->ds.fetch = member_fetch;
        m->ds.fctx = m;
    }
    cfg.storage = raft_memstorage_storage(&m->ds);
    if (m->initial) {
        cfg.bootstrap = s->bootstrap;
    }
    /* The store may be ahead of the durable hard state's commit (it is
     * persisted lazily, and we apply before the batch's fsync): hand the
     * core no more than it knows is committed; apply_entries skips what
     * the store already holds. */
    uint64_t commit = m->ds.hard.commit > m->ds.snap.meta.index
                          ? m->ds.hard.commit
                          : m->ds.snap.meta.index;
    cfg.applied = m->fsm.applied < commit ? m->fsm.applied : commit;
    if (m->evict_on) {
        /* as load_wal: what Raft will not hand out again need not stay in
         * memory (not the store's applied index: Raft hands out again what
         * lies above the commit it knows) */
        (void)raft_memstorage_evict(&m->ds, cfg.applied, m->evict_keep);
    }
    rc = raft_init(&m->raft, &cfg);
    if (rc < 0) {
        sim_violation(s, "member %lu: raft_init failed: %s",
                      (unsigned long)m->id, err_str(rc));
        return rc;
    }
    m->raft_open = true;
    m->up = true;
    m->leader = RAFT_NONE;
    m->role = RAFT_FOLLOWER;
    m->commit_seen = m->ds.hard.commit;
    m->disk_free_at = s->now;
    sim_trace(s, "start %lu inc %lu applied %lu durable last %lu",
              (unsigned long)m->id, (unsigned long)m->inc,
              (unsigned long)cfg.applied,
              (unsigned long)(m->ds.snap.meta.index + m->ds.count));
    sim_hash(s, 0x57a7, m->id);
    sim_schedule(s, s->now + prng_range(&s->rng, 1, m->tick_us), EV_TICK, slot,
                 m->inc, NULL);
    return 0;
}

void member_crash(struct sim *s, uint32_t slot)
{
    struct sim_member *m = &s->m[slot];
    ASSERT(m->up);
    size_t n = dops_pending(m);
    m->unsynced_from = UINT64_MAX;
    for (size_t i = m->dops_head; i < m->dops_count; i++) {
        const struct sim_dop *op = &m->dops[i];
        uint64_t from = op->has_snap         ? op->snap.meta.index + 1
                        : op->ents_count > 0 ? op->ents[0].index
                                             : UINT64_MAX;
        if (from < m->unsynced_from) {
            m->unsynced_from = from;
        }
    }
    for (size_t i = m->dops_head; i < m->dops_count; i++) {
        dop_free(s, &m->dops[i], false);
    }
    m->dops_head = 0;
    m->dops_count = 0;
    /* An install in progress is lost with the process; open finishes it. */
    m->snap_in_syncing = false;
    m->inst_pending = false;
    m->inst_wal_done = false;
    m->inst_store_done = false;
    m->inst_persist_index = 0;
    /* The process dies: its log handle with it. Then the power: the disk
     * keeps what it keeps. */
    log_close(m->log);
    m->log = NULL;
    struct sim_disk_crash cr;
    sim_disk_crash(m->disk, &s->rng, m->tear_pct, &cr);
    if (cr.torn) {
        s->st_torn++;
        s->st_torn_garbage += cr.garbage;
    }
    fail_pending(s, m, true);
    raft_close(&m->raft);
    m->raft_open = false;
    m->up = false;
    fsm_crash(s, m);
    m->crashes++;
    s->st_crashes++;
    sim_trace(s,
              "crash %lu: %zu unsynced batches, the disk kept %lu of %lu "
              "changes%s",
              (unsigned long)m->id, n, (unsigned long)cr.kept,
              (unsigned long)cr.ops,
              cr.torn ? (cr.garbage ? ", then a torn write and garbage"
                                    : ", then a torn write")
                      : "");
    sim_hash(s, 0xc4a5, (cr.kept << 32) | m->id);
    sim_hash(s, 0x7042, (cr.torn_kept << 1) | cr.garbage);
}

void member_stop_for_good(struct sim *s, uint32_t slot)
{
    struct sim_member *m = &s->m[slot];
    if (m->removed) {
        return;
    }
    if (m->up) {
        member_crash(s, slot);
    }
    m->removed = true;
    /* Recover its log once more, for the log-matching scans. */
    if (m->log == NULL) {
        (void)member_reload(s, m);
    }
    sim_trace(s, "member %lu removed and stopped", (unsigned long)m->id);
}

void member_free(struct sim *s, uint32_t slot)
{
    struct sim_member *m = &s->m[slot];
    if (!m->exists) {
        return;
    }
    if (m->raft_open) {
        raft_close(&m->raft);
        m->raft_open = false;
    }
    for (size_t i = m->dops_head; i < m->dops_count; i++) {
        dop_free(s, &m->dops[i], false);
    }
    mem_free(m->dops);
    m->dops = NULL;
    log_close(m->log);
    m->log = NULL;
    sim_disk_free(m->disk);
    m->disk = NULL;
    buf_free(&m->arena);
    raft_memstorage_close(&m->ds);
    fsm_close(s, m, true);
    m->exists = false;
}

/* ------------------------------------------------------- the batch */

static void on_soft_change(struct sim *s, struct sim_member *m,
                           const struct raft_ready *rd)
{
    bool leader_changed = rd->leader != m->leader || rd->role != m->role;
    bool role_changed = rd->role != m->role;
    m->leader = rd->leader;
    m->role = rd->role;
    if (role_changed) {
        wl_role_changed(s, m);
    }
    sim_trace(s, "member %lu: %s, leader %lu, term %lu", (unsigned long)m->id,
              raft_role_str(rd->role), (unsigned long)rd->leader,
              (unsigned long)rd->hard.term);
    sim_hash(s, 0x50f7, ((uint64_t)rd->role << 32) | rd->leader);
    if (leader_changed) {
        fail_pending(s, m, false);
    }
    if (rd->role == RAFT_LEADER) {
        s->st_elections++;
        check_leader(s, m, rd->hard.term);
        if (s->phase == PHASE_HEAL && s->leader_at == 0) {
            s->leader_at = s->now;
        }
    }
}

static void serve_reads(struct sim *s, struct sim_member *m)
{
    /* During an install the node's applied index stays where it was until
     * both halves are done (node__snap_install_check). */
    uint64_t applied = m->inst_pending ? m->inst_applied : m->fsm.applied;
    for (uint32_t i = 0; i < SIM_READS_MAX; i++) {
        struct sim_read *r = &m->reads[i];
        if (r->ctx != 0 && r->have_index && applied >= r->index) {
            r->ctx = 0;
            if (r->agent) {
                wl_ka_confirmed(s, m, r, true);
            } else {
                client_read_done(s, r->client, r->client_gen, m);
            }
        }
    }
}

static void note_reads(struct sim *s, struct sim_member *m,
                       const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->reads_count; i++) {
        for (uint32_t j = 0; j < SIM_READS_MAX; j++) {
            struct sim_read *r = &m->reads[j];
            if (r->ctx == rd->reads[i].ctx) {
                r->index = rd->reads[i].index;
                r->have_index = true;
            }
        }
        sim_hash(s, 0x4ead, rd->reads[i].index);
    }
}

static void note_conf(struct sim *s, struct sim_member *m,
                      const struct raft_entry *e)
{
    struct raft_conf_change cc;
    int rc = raft_conf_change_decode(e->data, e->len, &cc);
    if (rc < 0) {
        sim_violation(s, "member %lu: committed conf entry %lu undecodable",
                      (unsigned long)m->id, (unsigned long)e->index);
        return;
    }
    if (cc.type == RAFT_CC_REMOVE && cc.node_id >= 1 &&
        cc.node_id <= SIM_SLOTS) {
        struct sim_member *x = &s->m[cc.node_id - 1];
        /* Stop it after this event (never from inside its own batch). */
        if (x->exists && !x->removed) {
            x->stop_pending = true;
        }
    }
}

static void maybe_compact(struct sim *s, struct sim_member *m)
{
    uint64_t idx = m->fsm.applied;
    if (m->inst_pending) {
        /* raft_compact would refuse (the log starts after the snapshot
         * being installed); the node shrugs that off, we just wait. */
        return;
    }
    if (idx < m->ds.snap.meta.index + m->compact_every) {
        return;
    }
    struct raft_status st;
    raft_status(&m->raft, &st);
    if (st.applied != idx || idx > m->ds.snap.meta.index + m->ds.count) {
        return; /* the store is ahead of what the core handed out */
    }
    struct raft_snapshot_meta meta;
    int rc = raft_compact(&m->raft, idx, &meta);
    if (rc < 0) {
        sim_violation(s, "member %lu: raft_compact(%lu) failed: %s",
                      (unsigned long)m->id, (unsigned long)idx, err_str(rc));
        return;
    }
    buf_reset(&s->scratch);
    rc = fsm_snapshot(s, m, &s->scratch);
    ASSERT(rc == 0);
    rc =
        raft_memstorage_compact(&m->ds, &meta, s->scratch.data, s->scratch.len);
    if (rc < 0) {
        sim_violation(s, "member %lu: compact at %lu failed: %s",
                      (unsigned long)m->id, (unsigned long)idx, err_str(rc));
        return;
    }
    /* The snapshot file, then the WAL segments it covers (the node does
     * both off the loop, in this order). */
    rc = snap_save(s, m, &meta, s->scratch.data, s->scratch.len);
    if (rc == 0) {
        rc = log_release(m->log, idx + 1);
        if (rc < 0) {
            sim_violation(s, "member %lu: WAL release below %lu failed: %s",
                          (unsigned long)m->id, (unsigned long)idx + 1,
                          err_str(rc));
        }
    }
    disk_io_later(s, m, NULL);
    s->st_compactions++;
    sim_trace(s, "member %lu compacted to %lu (%zu bytes)",
              (unsigned long)m->id, (unsigned long)idx, s->scratch.len);
}

static void apply_committed(struct sim *s, struct sim_member *m,
                            const struct raft_ready *rd)
{
    if (rd->committed_count == 0) {
        return;
    }
    for (size_t i = 0; i < rd->committed_count; i++) {
        const struct raft_entry *e = &rd->committed[i];
        if (e->index > rd->hard.commit) {
            sim_violation(s,
                          "member %lu: entry %lu handed out to apply "
                          "above commit %lu",
                          (unsigned long)m->id, (unsigned long)e->index,
                          (unsigned long)rd->hard.commit);
        }
        check_applied(s, m, e);
        if (e->type == RAFT_ENTRY_CONF) {
            note_conf(s, m, e);
        }
    }
    const struct raft_entry *last = &rd->committed[rd->committed_count - 1];
    int rc = fsm_apply(s, m, rd->committed, rd->committed_count);
    if (rc < 0) {
        sim_violation(s, "member %lu: apply up to %lu failed: %s",
                      (unsigned long)m->id, (unsigned long)last->index,
                      err_str(rc));
        return;
    }
    rc = raft_applied(&m->raft, last->index);
    ASSERT(rc == 0);
    sim_hash(s, 0xa991, last->index);
    if (m->evict_on) {
        (void)raft_memstorage_evict(&m->ds, last->index, m->evict_keep);
    }
}

/* Write the batch through the WAL at once, as the node's WAL thread does
 * (the snapshot file, then log_reset, then one log_append with the hard
 * state; a hard state whose term and vote did not change is a commit hint
 * and rides with the next write). */
static void wal_write(struct sim *s, struct sim_member *m,
                      const struct raft_ready *rd)
{
    int rc = 0;
    if (rd->snapshot != NULL) {
        rc = snap_save(s, m, &rd->snapshot->meta, rd->snapshot->data,
                       rd->snapshot->data_len);
        if (rc < 0) {
            return;
        }
        rc = log_reset(m->log, rd->snapshot->meta.index,
                       rd->snapshot->meta.term);
    }
    struct log_hard_state hs = {rd->hard.term, rd->hard.vote, rd->hard.commit};
    bool with_hs = rd->hard_changed;
    if (rd->entries_count == 0 && with_hs && hs.term == m->wal_term &&
        hs.vote == m->wal_vote) {
        with_hs = false;
    }
    if (rc == 0 && (rd->entries_count > 0 || with_hs)) {
        struct log_entry *le = mem_alloc((rd->entries_count + 1) * sizeof(*le));
        ASSERT(le != NULL);
        for (size_t i = 0; i < rd->entries_count; i++) {
            const struct raft_entry *e = &rd->entries[i];
            le[i].index = e->index;
            le[i].term = e->term;
            le[i].type = e->type;
            le[i].data = e->data;
            le[i].len = (uint32_t)e->len;
        }
        rc = log_append(m->log, le, rd->entries_count, with_hs ? &hs : NULL);
        mem_free(le);
        if (rc == 0 && with_hs) {
            m->wal_term = hs.term;
            m->wal_vote = hs.vote;
        }
    }
    if (rc < 0) {
        sim_violation(s,
                      "member %lu: WAL write (%zu entries from %lu) "
                      "failed: %s",
                      (unsigned long)m->id, rd->entries_count,
                      rd->entries_count ? (unsigned long)rd->entries[0].index
                                        : 0UL,
                      err_str(rc));
    }
}

/* The batch carries a snapshot: it must be the copy stepped last (the node
 * refuses any other, node__snap_install_start). Both halves start now. */
static void install_begin(struct sim *s, struct sim_member *m,
                          const struct raft_snapshot *snap)
{
    if (m->inst_pending || snap->meta.index != m->snap_in_index) {
        sim_violation(s,
                      "member %lu: Raft hands out snapshot %lu to install "
                      "(received copy %lu, an install pending: %d)",
                      (unsigned long)m->id, (unsigned long)snap->meta.index,
                      (unsigned long)m->snap_in_index, (int)m->inst_pending);
    }
    m->inst_pending = true;
    m->inst_wal_done = false;
    m->inst_store_done = false;
    m->inst_index = snap->meta.index;
    m->inst_term = snap->meta.term;
    m->inst_applied = m->fsm.applied;
    m->inst_persist_index = 0;
    m->inst_persist_term = 0;
}

/* The store half runs on the node's apply thread alongside the WAL job:
 * before or after the WAL half, from the seed. Unless a crash is already
 * armed inside the WAL half, aim one between the two halves sometimes. */
static void install_schedule(struct sim *s, struct sim_member *m,
                             uint64_t wal_done_at, bool crash_armed)
{
    uint64_t at =
        s->now + prng_range(&s->rng, s->p.disk_min_us, 2 * s->p.disk_max_us);
    sim_schedule(s, at, EV_INSTALL, m->slot, m->inc, NULL);
    uint64_t lo = at < wal_done_at ? at : wal_done_at;
    uint64_t hi = at < wal_done_at ? wal_done_at : at;
    if (!crash_armed && hi > lo && s->phase == PHASE_FAULT &&
        (s->p.fault_mask & F_CRASH) && prng_chance(&s->rng, 1, 4)) {
        /* After the first half (scheduled earlier: same time runs it
         * first), before the second. */
        s->st_inst_crashes++;
        sim_schedule(s, prng_range(&s->rng, lo, hi - 1), EV_CRASH, m->slot,
                     m->inc, NULL);
    }
}

/* Both halves done: tell Raft, as node__snap_install_check does. */
static void install_check(struct sim *s, struct sim_member *m)
{
    if (!m->inst_pending || !m->inst_wal_done || !m->inst_store_done) {
        return;
    }
    m->inst_pending = false;
    int rc = raft_snapshot_installed(&m->raft, m->inst_index);
    ASSERT(rc == 0);
    if (m->inst_persist_index != 0) {
        rc = raft_persisted(&m->raft, m->inst_persist_index,
                            m->inst_persist_term);
        if (rc < 0) {
            sim_violation(s, "member %lu: raft_persisted failed: %s",
                          (unsigned long)m->id, err_str(rc));
        }
        m->inst_persist_index = 0;
    }
    s->st_snap_installs++;
    sim_trace(s, "member %lu installed snapshot %lu", (unsigned long)m->id,
              (unsigned long)m->inst_index);
    snap_in_drop(s, m);
    disk_io_later(s, m, NULL);
}

static void write_batch(struct sim *s, struct sim_member *m,
                        const struct raft_ready *rd)
{
    bool write =
        rd->snapshot != NULL || rd->entries_count > 0 || rd->hard_changed;
    if (!write && rd->msgs_after_persist_count == 0) {
        return;
    }
    if (!write && dops_pending(m) == 0) {
        /* Nothing to make durable and nothing ahead: send now. */
        for (size_t i = 0; i < rd->msgs_after_persist_count; i++) {
            struct sim_pkt *p =
                net_encode(s, m->slot, &rd->msgs_after_persist[i]);
            if (p != NULL) {
                net_send(s, p);
            }
        }
        return;
    }
    if (rd->snapshot != NULL) {
        install_begin(s, m, rd->snapshot);
    }
    if (write) {
        wal_write(s, m, rd);
    }
    if (rd->snapshot != NULL && s->phase == PHASE_FAULT &&
        (s->p.fault_mask & F_CRASH) && prng_chance(&s->rng, 1, 4)) {
        /* A crash inside a snapshot install (between the snapshot file
         * and the WAL's reset) is the window wal_catch_up is for. */
        m->crash_armed = true;
    }
    struct sim_dop *op = dop_push(m);
    if (rd->snapshot != NULL) {
        op->has_snap = true;
        op->snap = *rd->snapshot;
        op->snap.data = NULL;
        if (rd->snapshot->data_len > 0) {
            op->snap.data = mem_dup(rd->snapshot->data, rd->snapshot->data_len);
            ASSERT(op->snap.data != NULL);
        }
    }
    if (rd->entries_count > 0) {
        copy_entries(op, rd->entries, rd->entries_count);
    }
    op->has_hard = rd->hard_changed;
    op->hard = rd->hard;
    if (rd->msgs_after_persist_count > 0) {
        op->after =
            mem_calloc(rd->msgs_after_persist_count, sizeof(*op->after));
        ASSERT(op->after != NULL);
        for (size_t i = 0; i < rd->msgs_after_persist_count; i++) {
            struct sim_pkt *p =
                net_encode(s, m->slot, &rd->msgs_after_persist[i]);
            if (p != NULL) {
                op->after[op->after_count++] = p;
            }
        }
    }
    bool armed = m->crash_armed;
    disk_io_later(s, m, op);
    if (rd->snapshot != NULL) {
        install_schedule(s, m, op->done_at, armed);
    }
}

static void handle_batch(struct sim *s, struct sim_member *m,
                         const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->msgs_count; i++) {
        struct sim_pkt *p = net_encode(s, m->slot, &rd->msgs[i]);
        if (p != NULL) {
            net_send(s, p);
        }
    }
    write_batch(s, m, rd);
    if (rd->snapshot != NULL && rd->committed_count > 0) {
        sim_violation(s,
                      "member %lu: committed entries handed out with a "
                      "snapshot to install",
                      (unsigned long)m->id);
    }
    check_commit(s, m, rd->hard.commit, rd->hard.term);
    note_reads(s, m, rd);
    apply_committed(s, m, rd);
    if (rd->soft_changed) {
        on_soft_change(s, m, rd);
    }
    serve_reads(s, m);
    maybe_compact(s, m);
}

void member_drive(struct sim *s, struct sim_member *m)
{
    for (uint32_t guard = 0; m->up && raft_has_ready(&m->raft); guard++) {
        ASSERT(guard < 100000);
        struct raft_ready rd;
        int rc = raft_ready(&m->raft, &rd);
        if (rc < 0) {
            sim_violation(s, "member %lu: raft_ready failed: %s",
                          (unsigned long)m->id, err_str(rc));
            raft_advance(&m->raft, &rd);
            return;
        }
        handle_batch(s, m, &rd);
        raft_advance(&m->raft, &rd);
    }
}

void member_tick(struct sim *s, struct sim_member *m)
{
    int rc = raft_tick(&m->raft);
    if (rc < 0) {
        sim_violation(s, "member %lu: raft_tick failed: %s",
                      (unsigned long)m->id, err_str(rc));
    }
    member_drive(s, m);
    sim_schedule(s, s->now + m->tick_us, EV_TICK, m->slot, m->inc, NULL);
}

void member_step(struct sim *s, struct sim_member *m,
                 const struct raft_msg *msg)
{
    int rc = raft_step(&m->raft, msg);
    if (rc < 0) {
        sim_violation(s, "member %lu: raft_step(%s) failed: %s",
                      (unsigned long)m->id, raft_msg_type_str(msg->type),
                      err_str(rc));
    }
    member_drive(s, m);
}

/* The snapshot just installed covers entries m never applied, so its own
 * proposals among them were never answered, and a repeat of one later in
 * the log would be refused as ERR_PROPOSAL_DROPPED ("no effect") although
 * the first copy ran. As consensus/node does after an install: every
 * pending proposal with an id at or below the store's last id of ours ran
 * or was overtaken, which nothing tells apart: its outcome is unknown. */
static void answer_swallowed(struct sim *s, struct sim_member *m)
{
    uint64_t last_id = fsm_last_id(s, m);
    uint32_t n = 0;
    for (uint32_t i = 0; i < SIM_CLIENTS_MAX; i++) {
        struct sim_pending *p = &m->props[i];
        if (p->req_id != 0 && p->req_id <= last_id) {
            p->req_id = 0;
            n++;
            client_done(s, p->client, p->client_gen, OUT_UNKNOWN, 0);
        }
    }
    uint32_t nwl = wl_member_swallowed(s, m, last_id);
    if (n + nwl > 0) {
        sim_trace(s,
                  "member %lu: snapshot swallowed %u client and %u workload "
                  "proposals (ids <= %lu): outcome unknown",
                  (unsigned long)m->id, n, nwl, (unsigned long)last_id);
    }
}

/* The received copy is durable: step its MsgSnap (node_snap.c's
 * snap_in_sync_done). */
static void snap_in_step(struct sim *s, struct sim_member *m,
                         const struct buf *b)
{
    struct raft_msg msg;
    m->snap_in_syncing = false;
    int rc = raft_msg_decode(b->data, b->len, 0, &msg);
    ASSERT(rc == 0 && msg.type == RAFT_MSG_SNAP);
    m->snap_in_index = msg.snapshot.meta.index;
    member_step(s, m, &msg);
    raft_msg_free_decoded(&msg);
}

void member_snap_in(struct sim *s, struct sim_member *m,
                    const struct raft_msg *msg, const struct sim_pkt *p)
{
    if (m->snap_in_syncing || m->inst_pending) {
        sim_trace(s, "member %lu drops snapshot %lu (%s)", (unsigned long)m->id,
                  (unsigned long)msg->snapshot.meta.index,
                  m->inst_pending ? "installing one" : "writing one");
        return;
    }
    int rc = snap_in_write(m, msg->snapshot.data, msg->snapshot.data_len);
    if (rc < 0) {
        sim_violation(s, "member %lu: writing the received copy: %s",
                      (unsigned long)m->id, err_str(rc));
        return;
    }
    struct sim_dop *op = dop_push(m);
    rc = buf_append(&op->snap_in, p->b.data, p->b.len);
    ASSERT(rc == 0);
    m->snap_in_syncing = true;
    disk_io_later(s, m, op);
}

void member_install_store(struct sim *s, struct sim_member *m)
{
    ASSERT(m->inst_pending && !m->inst_store_done);
    struct buf copy;
    buf_init(&copy, 0);
    int rc = snap_in_read(m, &copy);
    if (rc == 0) {
        rc =
            fsm_restore(s, m, copy.data, copy.len, m->inst_index, m->inst_term);
    }
    buf_free(&copy);
    if (rc < 0) {
        sim_violation(s, "member %lu: snapshot install failed: %s",
                      (unsigned long)m->id, err_str(rc));
    }
    m->inst_store_done = true;
    sim_trace(s, "member %lu: store swapped to snapshot %lu (WAL half %s)",
              (unsigned long)m->id, (unsigned long)m->inst_index,
              m->inst_wal_done ? "done" : "pending");
    /* Before any later result, as the node's on_apply_done. */
    answer_swallowed(s, m);
    install_check(s, m);
    member_drive(s, m);
    serve_reads(s, m);
}

void member_disk_done(struct sim *s, struct sim_member *m)
{
    ASSERT(dops_pending(m) > 0);
    struct sim_dop *op = &m->dops[m->dops_head];
    ASSERT(op->done_at == s->now);
    m->dops_head++;
    char what[160];
    uint64_t uncovered =
        sim_disk_settle(m->disk, op->disk_mark, what, sizeof(what));
    if (uncovered > 0) {
        sim_violation(s, "member %lu: the log returned before syncing: %s",
                      (unsigned long)m->id, what);
    }
    dop_make_durable(s, m, op);
    bool wal_half = op->has_snap;
    uint64_t last_idx = 0;
    uint64_t last_term = 0;
    if (op->ents_count > 0) {
        last_idx = op->ents[op->ents_count - 1].index;
        last_term = op->ents[op->ents_count - 1].term;
    }
    struct buf snap_in = op->snap_in; /* moved: stepping may push ops */
    buf_init(&op->snap_in, 0);
    dop_free(s, op, true); /* sends the held messages */
    if (wal_half) {
        /* The snapshot file and the reset WAL are durable; the entries
         * written with them are reported with the install (node.c's
         * on_wal_done). */
        ASSERT(m->inst_pending && !m->inst_wal_done);
        m->inst_wal_done = true;
        m->inst_persist_index = last_idx;
        m->inst_persist_term = last_term;
        sim_trace(s, "member %lu: WAL reset to snapshot %lu (store half %s)",
                  (unsigned long)m->id, (unsigned long)m->inst_index,
                  m->inst_store_done ? "done" : "pending");
        install_check(s, m);
    } else if (last_idx > 0) {
        int rc = raft_persisted(&m->raft, last_idx, last_term);
        if (rc < 0) {
            sim_violation(s, "member %lu: raft_persisted failed: %s",
                          (unsigned long)m->id, err_str(rc));
        }
    }
    sim_hash(s, 0xd15c, ((uint64_t)m->slot << 32) | last_idx);
    if (snap_in.len > 0) {
        snap_in_step(s, m, &snap_in);
    }
    buf_free(&snap_in);
    member_drive(s, m);
    serve_reads(s, m);
}

/* ------------------------------------------------------ client entry */

int member_propose_op(struct sim *s, struct sim_member *m, struct sim_client *c,
                      const struct sim_op *op)
{
    uint64_t req_id = ++s->next_req;
    buf_reset(&s->scratch2);
    int rc = fsm_encode_op(s, m, req_id, op, &s->scratch2);
    ASSERT(rc == 0);
    rc = raft_propose(&m->raft, RAFT_ENTRY_NORMAL, s->scratch2.data,
                      s->scratch2.len, NULL);
    if (rc < 0) {
        return rc;
    }
    struct sim_pending *p = &m->props[c->idx];
    p->req_id = req_id;
    p->client = c->idx;
    p->client_gen = c->gen;
    c->req_id = req_id;
    member_drive(s, m);
    return 0;
}

int member_read_start(struct sim *s, struct sim_member *m,
                      struct sim_read **out)
{
    struct sim_read *slot = NULL;
    for (uint32_t i = 0; i < SIM_READS_MAX && slot == NULL; i++) {
        struct sim_read *r = &m->reads[i];
        bool gone;
        if (r->agent) {
            gone = !wl_agent_waits(s, r->client, r->client_gen);
        } else {
            const struct sim_client *owner = &s->c[r->client];
            gone = !owner->busy || owner->gen != r->client_gen;
        }
        if (r->ctx != 0 && gone) {
            r->ctx = 0; /* its client gave up on it */
        }
        if (r->ctx == 0) {
            slot = r;
        }
    }
    if (slot == NULL) {
        return ERR_BUSY;
    }
    uint64_t ctx = ++s->next_ctx;
    int rc = raft_read_index(&m->raft, ctx);
    if (rc < 0) {
        return rc;
    }
    memset(slot, 0, sizeof(*slot));
    slot->ctx = ctx;
    *out = slot;
    return 0;
}

int member_read(struct sim *s, struct sim_member *m, struct sim_client *c)
{
    struct sim_read *slot;
    int rc = member_read_start(s, m, &slot);
    if (rc < 0) {
        return rc;
    }
    slot->client = c->idx;
    slot->client_gen = c->gen;
    member_drive(s, m);
    return 0;
}

void member_answer(struct sim *s, struct sim_member *m, uint64_t req_id,
                   int outcome, uint64_t result)
{
    for (uint32_t i = 0; i < SIM_CLIENTS_MAX; i++) {
        struct sim_pending *p = &m->props[i];
        if (p->req_id == req_id && req_id != 0) {
            p->req_id = 0;
            client_done(s, p->client, p->client_gen, outcome, result);
            return;
        }
    }
}

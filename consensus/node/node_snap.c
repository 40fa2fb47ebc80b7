/*
 * node_snap.c - Raft snapshots between members: the store travels whole.
 *
 * The store is the state machine and its own snapshot: a follower that fell
 * behind the leader's in-memory log gets a consistent copy of the leader's
 * store (kv_snapshot_write, taken on a libuv worker thread while writes go
 * on), streamed over the transport's snapshot channel with the encoded
 * MsgSnap as its metadata. The copy may be newer than the snapshot index
 * Raft names; that is safe because the applier skips every entry at or
 * below the store's applied index, so the entries in between are received
 * again and ignored.
 *
 * Sender: one transfer per follower at a time; the result goes to Raft with
 * raft_report_snapshot (a refused or failed transfer is reported too, so
 * Raft never waits forever).
 *
 * Receiver: chunks are written to member/snap-in.tmp as they come (the
 * stream pauses while a chunk is written is not needed: writes are to the
 * page cache); at END the file and its directory are fsynced and the
 * MsgSnap is stepped into Raft. When the ready batch carries the snapshot,
 * the metadata is saved in the snap directory, the WAL job for that batch
 * starts with a log reset, and the apply thread swaps the store (behind the
 * node's store lock, so no reader holds a handle meanwhile).
 * raft_snapshot_installed is reported once both the WAL reset and the store
 * swap are done; then snap-in.tmp becomes the store's checkpoint.
 *
 * A crash between the halves: open finishes what is missing (node.c's
 * load_wal resets a WAL that does not reach the saved snapshot;
 * node_ckpt.c's node__store_catch_up installs snap-in.tmp into a store that
 * is behind it). No new stream may truncate snap-in.tmp from the moment it
 * is stepped until it is installed.
 */
#include "consensus/node/node_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"

/* ------------------------------------------------------------- sending */

struct snap_out {
    uv_work_t work;
    struct node *n;
    uint64_t to;
    int fd;
    int err;
    char path[512];
    struct buf meta;
};

static struct node_peer_snap *peer_slot(struct node *n, uint64_t id)
{
    for (size_t i = 0; i < NODE_MEMBERS_MAX; i++) {
        if (n->snaps[i].id == id) {
            return &n->snaps[i];
        }
    }
    for (size_t i = 0; i < NODE_MEMBERS_MAX; i++) {
        if (n->snaps[i].id == 0) {
            n->snaps[i].id = id;
            n->snaps[i].busy = false;
            return &n->snaps[i];
        }
    }
    return NULL;
}

static void snap_out_free(struct snap_out *so)
{
    struct node_peer_snap *ps = peer_slot(so->n, so->to);
    if (ps != NULL) {
        ps->busy = false;
    }
    if (so->fd >= 0) {
        close(so->fd);
    }
    (void)node__discard_path_async(so->n, so->path);
    buf_free(&so->meta);
    so->n->snap_sends--;
    mem_free(so);
}

static void snap_sent(void *arg, uint64_t to, int status)
{
    struct snap_out *so = arg;
    struct node *n = so->n;
    if (!n->closing) {
        raft_report_snapshot(&n->raft, to, status == 0);
        n->dirty = true;
    }
    if (status != 0) {
        LOGW("node", "snapshot to %016llx failed: %s", (unsigned long long)to,
             err_str(status));
    } else {
        LOGI("node", "snapshot to %016llx delivered", (unsigned long long)to);
    }
    snap_out_free(so);
}

static void snap_write_work(uv_work_t *w)
{
    struct snap_out *so = w->data;
    uv_rwlock_rdlock(&so->n->store_lock);
    so->err = kv_snapshot_write(so->n->kv, so->fd);
    uv_rwlock_rdunlock(&so->n->store_lock);
}

static void snap_write_done(uv_work_t *w, int status)
{
    struct snap_out *so = w->data;
    struct node *n = so->n;
    struct stat st;
    int rc = status != 0 ? status : so->err;
    n->snap_works--;
    if (rc == 0 && fstat(so->fd, &st) != 0) {
        rc = -errno;
    }
    if (rc == 0 && (n->closing || !n->transport_on)) {
        rc = ERR_CANCELED;
    }
    if (rc == 0) {
        rc = transport_send_snapshot(&n->transport, so->to, so->meta.data,
                                     so->meta.len, so->fd, 0,
                                     (uint64_t)st.st_size, snap_sent, so);
    }
    if (rc != 0) {
        if (!n->closing) {
            raft_report_snapshot(&n->raft, so->to, false);
            n->dirty = true;
        }
        LOGW("node", "snapshot to %016llx not sent: %s",
             (unsigned long long)so->to, err_str(rc));
        snap_out_free(so);
    }
    node__close_finish(n);
}

void node__snap_send(struct node *n, const struct raft_msg *m)
{
    struct node_peer_snap *ps = peer_slot(n, m->to);
    struct snap_out *so;
    struct raft_msg meta = *m;
    int rc;
    if (ps == NULL || ps->busy || !n->transport_on || n->closing) {
        raft_report_snapshot(&n->raft, m->to, false);
        return;
    }
    so = mem_calloc(1, sizeof(*so));
    if (so == NULL) {
        raft_report_snapshot(&n->raft, m->to, false);
        return;
    }
    so->n = n;
    so->to = m->to;
    so->work.data = so;
    buf_init(&so->meta, 0);
    meta.snapshot.data = NULL; /* the store travels in the stream */
    meta.snapshot.data_len = 0;
    snprintf(so->path, sizeof(so->path), "%s/snap-out-%016llx.tmp",
             n->dir_member, (unsigned long long)m->to);
    so->fd = open(so->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    rc = so->fd < 0 ? -errno : raft_msg_encode(&meta, &so->meta);
    ps->busy = true;
    n->snap_sends++;
    if (rc == 0) {
        rc =
            uv_queue_work(n->loop, &so->work, snap_write_work, snap_write_done);
        n->snap_works += rc == 0 ? 1 : 0;
    }
    if (rc != 0) {
        raft_report_snapshot(&n->raft, m->to, false);
        snap_out_free(so);
        return;
    }
    LOGI("node", "sending a snapshot (index %llu) to %016llx",
         (unsigned long long)m->snapshot.meta.index, (unsigned long long)m->to);
}

/* ----------------------------------------------------------- receiving */

static void snap_in_abort(struct node *n)
{
    if (n->snap_in_fd >= 0) {
        close(n->snap_in_fd);
        n->snap_in_fd = -1;
    }
    buf_reset(&n->snap_in_meta);
    n->snap_in_from = 0;
}

/* A received stream at its END: fsynced on a worker, then stepped. */
struct snap_in_sync {
    uv_work_t work;
    struct node *n;
    uint64_t from;
    int fd;
    int err;
    struct buf meta; /* the MsgSnap, encoded */
    char dir[448];   /* member/, which holds snap-in.tmp */
};

/* The file and its name: after a power loss, open must find the whole
 * copy under its name whenever the snapshot's metadata is durable
 * (node__store_catch_up), and the metadata is saved only after this. */
static void snap_in_sync_work(uv_work_t *w)
{
    struct snap_in_sync *sy = w->data;
    sy->err = fsync(sy->fd) == 0 ? 0 : -errno;
    close(sy->fd);
    if (sy->err == 0) {
        int dfd = open(sy->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        sy->err = dfd < 0 ? -errno : 0;
        if (dfd >= 0) {
            sy->err = fsync(dfd) == 0 ? 0 : -errno;
            close(dfd);
        }
    }
}

static void snap_in_sync_done(uv_work_t *w, int status)
{
    struct snap_in_sync *sy = w->data;
    struct node *n = sy->n;
    struct raft_msg m;
    int rc = status != 0 ? status : sy->err;
    n->snap_works--;
    n->snap_in_syncing = false;
    if (rc == 0 && n->closing) {
        rc = ERR_CANCELED;
    }
    if (rc == 0) {
        rc = raft_msg_decode(sy->meta.data, sy->meta.len, 0, &m);
        if (rc == 0) {
            if (m.type == RAFT_MSG_SNAP && m.from == sy->from &&
                m.to == n->cfg.member_id) {
                n->snap_in_ready_index = m.snapshot.meta.index;
                rc = raft_step(&n->raft, &m);
                n->snap_in_stepped = true;
                n->dirty = true;
            }
            raft_msg_free_decoded(&m);
        }
    }
    if (rc != 0 && rc != ERR_CANCELED) {
        LOGW("node", "incoming snapshot from %016llx refused: %s",
             (unsigned long long)sy->from, err_str(rc));
    }
    buf_free(&sy->meta);
    mem_free(sy);
    if (n->closing) {
        node__close_finish(n);
    }
}

void node__snap_cb(void *owner, struct transport_snap_in *in, uint64_t from,
                   enum transport_snap_event ev, const uint8_t *data,
                   size_t len, int status)
{
    struct node *n = owner;
    char path[512];
    (void)in;
    snprintf(path, sizeof(path), "%s/snap-in.tmp", n->dir_member);
    switch (ev) {
    case TRANSPORT_SNAP_BEGIN:
        snap_in_abort(n); /* a newer stream replaces an older one */
        /* Not while a received copy waits to be installed: stepped into
         * Raft (its ready batch not handled yet, node.c's process), or
         * being installed. Truncating it then would hand the apply
         * thread, or open after a crash, a partial file. */
        if (n->snap_installing || n->snap_in_syncing || n->snap_in_stepped ||
            n->closing) {
            return; /* chunks are dropped; END fails the check below */
        }
        n->snap_in_fd =
            open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        n->snap_in_from = from;
        if (n->snap_in_fd < 0 || buf_append(&n->snap_in_meta, data, len) != 0) {
            snap_in_abort(n);
        }
        return;
    case TRANSPORT_SNAP_CHUNK:
        if (n->snap_in_fd >= 0 && n->snap_in_from == from) {
            size_t off = 0;
            while (off < len) {
                ssize_t w = write(n->snap_in_fd, data + off, len - off);
                if (w < 0 && errno == EINTR) {
                    continue;
                }
                if (w <= 0) {
                    LOGW("node", "writing an incoming snapshot: %s",
                         strerror(errno));
                    snap_in_abort(n);
                    return;
                }
                off += (size_t)w;
            }
        }
        return;
    case TRANSPORT_SNAP_ABORT:
        if (n->snap_in_from == from) {
            LOGW("node", "incoming snapshot from %016llx aborted: %s",
                 (unsigned long long)from, err_str(status));
            snap_in_abort(n);
        }
        return;
    case TRANSPORT_SNAP_END:
        break;
    }
    if (n->snap_in_fd < 0 || n->snap_in_from != from) {
        return;
    }
    /* The fsync runs on a worker: it can wait seconds behind the page
     * cache, and the loop must keep answering heartbeats meanwhile. */
    struct snap_in_sync *sy = mem_calloc(1, sizeof(*sy));
    if (sy == NULL) {
        LOGW("node", "incoming snapshot from %016llx refused: %s",
             (unsigned long long)from, err_str(-ENOMEM));
        snap_in_abort(n);
        return;
    }
    sy->n = n;
    sy->from = from;
    sy->fd = n->snap_in_fd;
    snprintf(sy->dir, sizeof(sy->dir), "%s", n->dir_member);
    sy->meta = n->snap_in_meta; /* moved */
    sy->work.data = sy;
    buf_init(&n->snap_in_meta, 0);
    n->snap_in_fd = -1;
    n->snap_in_from = 0;
    if (uv_queue_work(n->loop, &sy->work, snap_in_sync_work,
                      snap_in_sync_done) != 0) {
        close(sy->fd);
        buf_free(&sy->meta);
        mem_free(sy);
        return;
    }
    n->snap_works++;
    n->snap_in_syncing = true;
}

/* ------------------------------------------------------------ installing */

/* The batch's snapshot: record its metadata durably, start the swap on the
 * apply thread and the log reset in the batch's WAL job. */
int node__snap_install_start(struct node *n, const struct raft_snapshot *s,
                             struct wal_job *wj, struct apply_job *aj)
{
    int rc;
    if (n->snap_in_ready_index != s->meta.index) {
        return ERR_INVALID; /* Raft names a snapshot we did not receive */
    }
    /* The metadata file is written by the WAL thread, before its reset. */
    buf_reset(&wj->reset_conf);
    rc = raft_conf_encode(&s->meta.conf, &wj->reset_conf);
    if (rc != 0) {
        return rc;
    }
    rc = raft_memstorage_apply_snapshot(&n->ms, s);
    if (rc != 0) {
        return rc;
    }
    wj->reset_index = s->meta.index;
    wj->reset_term = s->meta.term;
    aj->install_index = s->meta.index;
    snprintf(aj->install_path, sizeof(aj->install_path), "%s/snap-in.tmp",
             n->dir_member);
    n->snap_installing = true;
    n->snap_wal_done = false;
    n->snap_store_done = false;
    n->snap_install_meta = s->meta;
    return 0;
}

/* Both halves done: tell Raft, refresh what the store holds. */
void node__snap_install_check(struct node *n)
{
    if (!n->snap_installing || !n->snap_wal_done || !n->snap_store_done) {
        return;
    }
    n->snap_installing = false;
    uint64_t index = n->snap_install_meta.index;
    (void)raft_snapshot_installed(&n->raft, index);
    if (n->snap_persist_index != 0) {
        (void)raft_persisted(&n->raft, n->snap_persist_index,
                             n->snap_persist_term);
        n->snap_persist_index = 0;
    }
    if (n->applied < index) {
        n->applied = index;
        (void)raft_applied(&n->raft, index);
    }
    n->snap_index = index;
    (void)node__members_reload(n);
    node__transport_sync(n);
    if (n->obs.restored != NULL) {
        n->obs.restored(n->obs.ctx, kv_rev(n->kv));
    }
    node__crash_point(n, "snap-adopt");
    /* The received copy (fsynced at its END) is the store's checkpoint
     * now: node_ckpt.c. Not while a copy of the store from before the
     * install is being written: its rename would land after ours and put
     * an older checkpoint back, which a reboot would restore below the
     * snapshot with the received copy gone (the member could not start).
     * ckpt_done adopts it then; until then snap-in.tmp is where a restart
     * finds it (node__store_catch_up). */
    if (n->ckpt_running) {
        n->adopt_pending = true;
    } else {
        node__checkpoint_adopt_received(n);
    }
    LOGI("node", "installed a snapshot at index %llu",
         (unsigned long long)index);
    n->dirty = true;
}

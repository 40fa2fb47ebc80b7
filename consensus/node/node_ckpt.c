/*
 * node_ckpt.c - the store's durability: no fsync per batch, checkpoints
 * instead, and a rule for when the live store file may be trusted.
 *
 * Why. The write-ahead log makes every committed entry durable before
 * anyone hears of it; the store (LMDB) only has to be *recoverable*. LMDB
 * without fsync (MDB_NOSYNC) loses nothing on a process crash (the page
 * cache survives), but after a power loss or kernel crash its file may be
 * damaged, because its meta page can reach the disk before the pages it
 * names. Fsyncing the store on every batch doubled the latency of a write
 * (two fsyncs in series: log, then store). So:
 *
 *  1. The store commits without fsync (KV_SYNC_NONE).
 *  2. Every --snapshot-count applied entries (and, in place, whenever the
 *     writes have freed CKPT_GROW_BYTES of pages the pins below keep LMDB
 *     from reusing) the node takes
 *     a checkpoint of the store, and only then releases WAL segments: the
 *     log always holds every entry after the newest checkpoint. Two kinds
 *     (--store-checkpoint):
 *      - a copy (the default: kv_snapshot_write, compacted) in
 *        member/snap/store.ckpt (temp file, fsync, rename, directory
 *        fsync);
 *      - in place (consensus/kv/kv_ckpt.c, where the file system gives
 *        birth times to tell files apart): the newest committed state of
 *        the live file is pinned (LMDB reuses none of its pages until the
 *        next checkpoint), the file is fsynced, and that state's meta page
 *        is recorded in member/snap/store.meta. No copy. One is taken at
 *        open, before anything writes (the last run's pin died with it),
 *        and a defrag records its new file before the swap (a crash on
 *        either side of the rename finds a record of the file it left).
 *        The price is the pinned pages: every page freed between two
 *        checkpoints stays allocated, and the fsync writes back every page
 *        allocated since the last one. Under heavy random writes that is
 *        more I/O and a larger file than the copy (BENCHMARKS.md,
 *        "Checkpoints in place"), hence not the default.
 *      - auto (the default): copies while the writes come, and once the
 *        applied index has stood still for CKPT_REST_MS (node.c,
 *        rest_check) or right after a defrag, one in place, which removes
 *        the copy (about the store's size: half the directory at rest).
 *        When the writes resume, the pin holds what they free; each time
 *        that reaches CKPT_GROW_BYTES, one more in place (it writes back
 *        what the burst dirtied, not the whole store) until those add up
 *        to the store's bytes in use (node.c, maybe_snapshot: rent or
 *        buy), then a copy: the record goes (durably, after the copy is)
 *        before the pins do (ckpt_unrecord), since a record of an
 *        unpinned state would bring the file back to pages since
 *        reused.
 *     A snapshot received from the leader is such a copy too and becomes
 *     store.ckpt when installed, until the next checkpoint in place of the
 *     new file removes it.
 *  3. member/kv.state records the boot id of the system that last opened
 *     the store and whether it was closed cleanly (after an fsync of the
 *     whole store). At open the live file is trusted if it was closed
 *     cleanly or if the system has not rebooted since (a process crash
 *     leaves the page cache, hence the file, whole). Otherwise it is
 *     brought back to its checkpoint in place (its meta pages rewritten
 *     from the record of this very file), or replaced by the copy (or by
 *     an empty store if there is neither yet: then the log still holds
 *     everything from index 1), and the log replays the rest. A store that
 * failed while running (an I/O error, a full disk) is marked "damaged" and is
 * never trusted either.
 *
 * The boot id comes from /proc/sys/kernel/random/boot_id; CAIRN_TEST_BOOT_ID
 * overrides it so that tests can simulate a reboot.
 *
 * Crash points, for tests: CAIRN_TEST_CRASH_AT=<point> makes the process
 * kill itself (SIGKILL, as kill -9 would) when it reaches the named point,
 * so a test can stop it inside a window a random kill rarely hits. A point
 * reached by one thread while another could close the window first holds
 * that other thread (node__crash_hold). The points (node_snap.c,
 * node_threads.c), named after what is durable when they fire:
 *   snap-meta   a received snapshot's metadata saved, the WAL not reset,
 *               the store not swapped;
 *   snap-wal    the metadata saved and the WAL reset, the store not
 *               swapped;
 *   snap-store  the store swapped, the metadata not saved;
 *   snap-adopt  both halves done, the received file not yet the store's
 *               checkpoint;
 *   defrag-swap a defrag's new file swapped in, no checkpoint taken of it
 *               yet (in place: only the defrag's own record covers it);
 *   ckpt-copied a copy durable, the record of a checkpoint in place not
 *               yet removed (it still wins at a restore);
 *   ckpt-unrecorded  the record removed durably, the pins not dropped,
 *               the Raft snapshot's metadata not yet saved.
 */
#include "consensus/node/node_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/crc32c.h"
#include "base/discard.h"
#include "base/err.h"
#include "base/log.h"

#define STATE_MAGIC        "cairn-kv-state 1"
#define META_MAGIC         "CAIRNCK1"
#define META_RECS          2 /* the live file's, and a defrag's new file's */
/* A checkpoint in place comes early once the writes have freed this much
 * since the newest pin (node__checkpoint_due); CAIRN_TEST_CKPT_GROW_MB
 * sets it for benchmarks of the trade (fewer write-backs, a larger
 * file). */
#define CKPT_GROW_BYTES    ((uint64_t)16 << 20)
/* --store-checkpoint auto: a pause in the writes this long calls a
 * checkpoint in place (node.c, rest_check). As long as the kernel keeps a
 * dirty page before writing it back (vm.dirty_expire_centisecs, 30 s by
 * default): by then the checkpoint's fsync finds little left to write, and
 * writes that pause for less go on as with copies, their pages rewritten
 * in the page cache rather than on the disk at every pause.
 * CAIRN_TEST_CKPT_REST_MS sets it for tests. */
#define CKPT_REST_MS       30000
/* A copy reaches the disk in pieces of this size, at most this fast
 * (ckpt_flush_paced); CAIRN_TEST_CKPT_MBPS sets the rate (0: no pace) for
 * A/B runs. */
#define CKPT_FLUSH_PIECE   ((uint64_t)256 << 10)
#define CKPT_FLUSH_BYTES_S ((uint64_t)200 << 20)

static void boot_id(char *out, size_t cap)
{
    const char *test = getenv("CAIRN_TEST_BOOT_ID");
    FILE *f;
    out[0] = '\0';
    if (test != NULL && test[0] != '\0') {
        snprintf(out, cap, "%s", test);
        return;
    }
    f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f == NULL) {
        return;
    }
    if (fgets(out, (int)cap, f) == NULL) {
        out[0] = '\0';
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

/* Write path atomically: temp file, fsync, rename, directory fsync. */
static int write_atomic(const char *dir, const char *path, const void *data,
                        size_t len)
{
    char tmp[700];
    int fd;
    int rc = 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
        rc = -errno;
    }
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = discard_sync_dir(dir);
    }
    if (rc != 0) {
        unlink(tmp);
    }
    return rc;
}

/* member/snap/store.meta: "CAIRNCK1", u32 count, u32 0, count records
 * (struct kv_ckpt, this machine's layout: the file never travels), u32
 * CRC-32C of all that. */
static int meta_save(const struct node *n, const struct kv_ckpt *recs,
                     uint32_t count)
{
    uint8_t buf[16 + META_RECS * sizeof(struct kv_ckpt) + 4];
    char path[600];
    size_t len = 16 + count * sizeof(struct kv_ckpt);
    ASSERT(count >= 1 && count <= META_RECS);
    memset(buf, 0, 16);
    memcpy(buf, META_MAGIC, 8);
    memcpy(buf + 8, &count, 4);
    memcpy(buf + 16, recs, count * sizeof(struct kv_ckpt));
    uint32_t crc = crc32c(0, buf, len);
    memcpy(buf + len, &crc, 4);
    if (mkdir(n->dir_snap, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    snprintf(path, sizeof(path), "%s/store.meta", n->dir_snap);
    return write_atomic(n->dir_snap, path, buf, len + 4);
}

/* 0, ERR_NOT_FOUND (no file) or ERR_CORRUPT. */
static int meta_load(const struct node *n, struct kv_ckpt *recs,
                     uint32_t *count)
{
    uint8_t buf[16 + META_RECS * sizeof(struct kv_ckpt) + 8];
    char path[600];
    uint32_t crc;
    snprintf(path, sizeof(path), "%s/store.meta", n->dir_snap);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? ERR_NOT_FOUND : -errno;
    }
    ssize_t len = read(fd, buf, sizeof(buf));
    close(fd);
    *count = 0;
    if (len >= 20) {
        memcpy(count, buf + 8, 4);
    }
    if (len < 20 || memcmp(buf, META_MAGIC, 8) != 0 || *count < 1 ||
        *count > META_RECS ||
        (size_t)len != 16 + *count * sizeof(struct kv_ckpt) + 4) {
        return ERR_CORRUPT;
    }
    memcpy(&crc, buf + len - 4, 4);
    if (crc != crc32c(0, buf, (size_t)len - 4)) {
        return ERR_CORRUPT;
    }
    memcpy(recs, buf + 16, *count * sizeof(struct kv_ckpt));
    return 0;
}

/* After a power loss: bring the live file back to its checkpoint in
 * place. 0 (done), ERR_NOT_FOUND (no record of this file), or an error. */
static int meta_restore(struct node *n, char *msg, size_t msg_len)
{
    struct kv_ckpt recs[META_RECS];
    uint32_t count;
    int rc = meta_load(n, recs, &count);
    if (rc == ERR_NOT_FOUND) {
        return rc;
    }
    if (rc != 0) {
        snprintf(msg, msg_len, "%s/store.meta: %s", n->dir_snap,
                 rc == ERR_CORRUPT ? "not a checkpoint record (bad checksum "
                                     "or length)"
                                   : err_str(rc));
        return rc;
    }
    for (uint32_t i = 0; i < count; i++) {
        rc = kv_ckpt_restore(n->dir_kv, &recs[i]);
        if (rc == ERR_NOT_FOUND) {
            continue; /* a record of a file replaced since */
        }
        if (rc != 0) {
            snprintf(msg, msg_len,
                     "restoring %s/data.mdb to its checkpoint in place "
                     "(applied index %llu): %s",
                     n->dir_kv, (unsigned long long)recs[i].applied_index,
                     err_str(rc));
            return rc;
        }
        LOGW("node",
             "the store was not closed cleanly: brought back to its "
             "checkpoint in place (applied index %llu); the log replays "
             "the rest",
             (unsigned long long)recs[i].applied_index);
        return 0;
    }
    return ERR_NOT_FOUND;
}

/* After the store failed (I/O error, disk full): the live file is not to
 * be trusted at the next start, whatever the boot id says. */
int node__state_damaged(struct node *n)
{
    char path[600];
    char line[64];
    snprintf(path, sizeof(path), "%s/kv.state", n->dir_member);
    int len = snprintf(line, sizeof(line), "%s - damaged\n", STATE_MAGIC);
    return write_atomic(n->dir_member, path, line, (size_t)len);
}

int node__state_write(struct node *n, bool clean)
{
    char path[600];
    char line[256];
    char id[80];
    boot_id(id, sizeof(id));
    snprintf(path, sizeof(path), "%s/kv.state", n->dir_member);
    int len = snprintf(line, sizeof(line), "%s %s %s\n", STATE_MAGIC,
                       id[0] != '\0' ? id : "-", clean ? "clean" : "open");
    return write_atomic(n->dir_member, path, line, (size_t)len);
}

/* Copy src to dst through a temp file, fsynced, renamed. */
static int copy_file(const char *src, const char *dir, const char *dst)
{
    char tmp[700];
    uint8_t *buf = mem_alloc(1 << 20);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = -1;
    int rc = 0;
    snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
    if (buf == NULL || in < 0) {
        rc = buf == NULL ? -ENOMEM : -errno;
    } else {
        out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        rc = out < 0 ? -errno : 0;
    }
    for (int guard = 0; rc == 0; guard++) {
        ssize_t r = read(in, buf, 1 << 20);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0) {
            break;
        }
        if (write(out, buf, (size_t)r) != r) {
            rc = -EIO;
        }
    }
    if (rc == 0 && fsync(out) != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        kv_cache_small(out);
    }
    if (out >= 0) {
        close(out);
    }
    if (in >= 0) {
        close(in);
    }
    mem_free(buf);
    if (rc == 0 && rename(tmp, dst) != 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = discard_sync_dir(dir);
    }
    if (rc != 0) {
        unlink(tmp);
    }
    return rc;
}

/* Before kv_open: decide whether the live store file can be trusted, and
 * if not, put the checkpoint (or nothing) in its place. */
int node__state_check(struct node *n, char *msg, size_t msg_len)
{
    char path[600];
    char ckpt[600];
    char data[640];
    char line[256] = "";
    char want[80];
    char magic[32];
    char id[80];
    char how[16];
    struct stat st;
    FILE *f;
    snprintf(path, sizeof(path), "%s/kv.state", n->dir_member);
    snprintf(ckpt, sizeof(ckpt), "%s/store.ckpt", n->dir_snap);
    snprintf(data, sizeof(data), "%s/data.mdb", n->dir_kv);
    if (stat(data, &st) != 0) {
        return 0; /* no store yet */
    }
    f = fopen(path, "r");
    if (f == NULL) {
        /* A store without a state file: written by a version that fsynced
         * every batch, or the state file was never written. */
        return 0;
    }
    if (fgets(line, sizeof(line), f) == NULL) {
        line[0] = '\0';
    }
    fclose(f);
    boot_id(want, sizeof(want));
    if (sscanf(line, "cairn-kv-state %31s %79s %15s", magic, id, how) != 3 ||
        strcmp(magic, "1") != 0) {
        snprintf(msg, msg_len, "%s: not a store state file", path);
        return ERR_CORRUPT;
    }
    if (strcmp(how, "clean") == 0 ||
        (strcmp(how, "open") == 0 && want[0] != '\0' &&
         strcmp(id, want) == 0)) {
        return 0; /* closed cleanly, or no reboot since: the file is whole */
    }
    int mrc = meta_restore(n, msg, msg_len);
    if (mrc != ERR_NOT_FOUND) {
        return mrc;
    }
    if (stat(ckpt, &st) == 0) {
        LOGW("node",
             "the store was not closed cleanly (%s): restoring it from its "
             "checkpoint %s; the log replays the rest",
             strcmp(how, "damaged") == 0 ? "it failed while running"
                                         : "the system restarted since",
             ckpt);
        int rc = copy_file(ckpt, n->dir_kv, data);
        if (rc != 0) {
            snprintf(msg, msg_len, "restoring %s from %s: %s", data, ckpt,
                     err_str(rc));
            return rc;
        }
    } else {
        LOGW("node",
             "the store was not closed cleanly (%s): rebuilding it from the "
             "log (no checkpoint yet)",
             strcmp(how, "damaged") == 0 ? "it failed while running"
                                         : "the system restarted since");
        if (unlink(data) != 0) {
            snprintf(msg, msg_len, "removing %s: %s", data, strerror(errno));
            return -errno;
        }
    }
    return 0;
}

/* ---------------------------------------------------------- checkpoints */

struct ckpt_work {
    uv_work_t work;
    struct node *n;
    struct raft_snapshot_meta meta; /* copied from the node at start */
    bool inplace;
    bool pinned;
    bool recorded;          /* in place: store.meta names ck, durably */
    struct kv_ckpt ck;      /* in place: the state pinned */
    struct kv_file_id file; /* a copy: the file copied, whose pins go */
    int err;
    uint64_t took_ns;    /* ckpt_work, for the log */
    uint64_t copy_bytes; /* a copy's size */
    uint64_t pinned_ns;  /* a copy: how long its read held the store */
    bool via_memory;     /* a copy: read into a memfd first (ckpt_read) */
    bool read_memory;    /* ... and it was (for the log) */
    char tmp[700];
    char path[700];
};

/* In place: pin the newest state, write back the file, then the record
 * (no defrag or install may swap the file meanwhile: the store lock). */
static int ckpt_inplace(struct ckpt_work *c)
{
    struct node *n = c->n;
    uv_rwlock_rdlock(&n->store_lock);
    int rc = kv_ckpt_pin(n->kv, &c->ck);
    c->pinned = rc == 0;
    rc = rc != 0 ? rc : kv_sync(n->kv);
    rc = rc != 0 ? rc : meta_save(n, &c->ck, 1);
    c->recorded = rc == 0;
    uv_rwlock_rdunlock(&n->store_lock);
    return rc;
}

/* A copy became the checkpoint: a record of a checkpoint in place goes,
 * durably, before the pins do (ckpt_done), because the pin of a recorded
 * state is all that keeps LMDB from reusing its pages. A record left
 * behind an unpinned state would bring the file back, after a power loss,
 * to a tree whose pages hold other data. */
static int ckpt_unrecord(struct ckpt_work *c)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/store.meta", c->n->dir_snap);
    node__crash_point(c->n, "ckpt-copied");
    if (unlink(path) != 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    int rc = discard_sync_dir(c->n->dir_snap);
    if (rc == 0) {
        node__crash_point(c->n, "ckpt-unrecorded");
    }
    return rc;
}

/* Write a copy's bytes (in the page cache) to the disk a piece at a time,
 * at most CKPT_FLUSH_BYTES_S, dropping each piece from the cache once
 * written. A WAL fdatasync that comes meanwhile finds at most a piece of
 * the copy ahead of it in the device's queue and cache, not the whole
 * copy (BENCHMARKS.md, "The checkpoint copy written back at a pace"). */
static int ckpt_flush_paced(const struct node *n, int fd, uint64_t size)
{
    const char *e = getenv("CAIRN_TEST_CKPT_MBPS");
    uint64_t rate = CKPT_FLUSH_BYTES_S;
    if (e != NULL) {
        double mbps = strtod(e, NULL); /* MB/s, fractions too; 0: no pace */
        rate = mbps > 0 && mbps < 1e6 ? (uint64_t)(mbps * (1 << 20)) : 0;
    }
    uint64_t t0 = clock_mono_ns();
    for (uint64_t off = 0; off < size; off += CKPT_FLUSH_PIECE) {
        if (sync_file_range(fd, (off_t)off, (off_t)CKPT_FLUSH_PIECE,
                            SYNC_FILE_RANGE_WAIT_BEFORE |
                                SYNC_FILE_RANGE_WRITE |
                                SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
            return errno == ENOSYS ? 0 : -errno; /* fsync does it all */
        }
        (void)posix_fadvise(fd, (off_t)off, (off_t)CKPT_FLUSH_PIECE,
                            POSIX_FADV_DONTNEED);
        if (rate == 0 || __atomic_load_n(&n->closing, __ATOMIC_RELAXED)) {
            continue; /* closing: no wait (fsync takes the rest) */
        }
        uint64_t due = t0 + (off + CKPT_FLUSH_PIECE) * 1000000000ull / rate;
        uint64_t now = clock_mono_ns();
        if (due > now) {
            struct timespec ts = {(time_t)((due - now) / 1000000000ull),
                                  (long)((due - now) % 1000000000ull)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            }
        }
    }
    return 0;
}

/* Copy src's first size bytes to fd at its file offset (sendfile). */
static int copy_fd(int src, int fd, uint64_t size)
{
    off_t off = 0;
    while ((uint64_t)off < size) {
        ssize_t k = sendfile(fd, src, &off, (size_t)(size - (uint64_t)off));
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return k < 0 ? -errno : -EIO;
        }
    }
    return 0;
}

/* The copy's read of the store, into fd. LMDB reuses no page freed while
 * the read lasts, so data.mdb grows by what the writes free meanwhile. A
 * write into a file's page cache can stall for a while behind another
 * writer's flush to the same disk (100 MB: 22-32 ms alone, 94-159 ms
 * right after 400 MB of someone else's dirty pages; the read of a 102 MB
 * copy 28-56 ms against 109-296 ms, and data.mdb 132 MB against 204-210
 * MB after etcd's put benchmark: BENCHMARKS.md). So a copy the node
 * expects to be at most half the store's resident budget (via_memory) is
 * read into a memfd, which no flush holds up, and goes to the file after
 * the read has ended. Out of memory there, it is read again straight
 * into the file. Not under CKPT_MEMORY_FLOOR: the memfd's pages cost
 * more to fill than a page cache's, and a small copy's read is short
 * either way (a 4 MB copy under load took 13-22 ms through memory, and
 * 1,000 puts at --snapshot-count 100 got 5-8 copies against 9). */
static int ckpt_read(struct ckpt_work *c, int fd)
{
    struct kv *kv = c->n->kv;
    int mfd = c->via_memory ? memfd_create("cairn-ckpt", MFD_CLOEXEC) : -1;
    uint64_t t0 = clock_mono_ns();
    if (mfd >= 0) {
        int rc = kv_snapshot_write(kv, mfd);
        c->pinned_ns = clock_mono_ns() - t0;
        struct stat st;
        if (rc == 0) {
            rc = fstat(mfd, &st) == 0 ? 0 : -errno;
        }
        if (rc == 0) {
            rc = copy_fd(mfd, fd, (uint64_t)st.st_size);
            close(mfd);
            c->read_memory = rc == 0;
            return rc;
        }
        close(mfd);
        if (rc == ERR_FAILED) {
            return rc; /* the store failed: no second try */
        }
        if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0) {
            return -errno;
        }
        LOGW("node",
             "checkpoint copy: reading it into memory failed (%s); "
             "reading it into the file",
             err_str(rc));
        t0 = clock_mono_ns();
    }
    int rc = kv_snapshot_write(kv, fd);
    c->pinned_ns = clock_mono_ns() - t0;
    return rc;
}

/* A copy: the store written whole to store.ckpt (temp file, fsync,
 * rename, directory fsync), then any record of a checkpoint in place
 * removed. The store lock is held from the copy to that removal, so that
 * no defrag swaps the file and records the new one in between (that
 * record must stay, and the new file's pin with it).
 *
 * The copy goes to the page cache at the speed of LMDB's walk (so its
 * read txn, which keeps LMDB from reusing the pages freed meanwhile, is
 * short), then to the disk at a pace (ckpt_flush_paced). Written at once
 * (buffered, then one fsync; or with O_DIRECT, as before 2026-11-26) it
 * sat in the device's queue in front of every WAL fdatasync of those
 * 100-300 ms: put p99 7-8 ms against 5-6 with the pace. The price is
 * the copy's size in dirty page cache for a moment; where memory is tight
 * (a cgroup's limit) the kernel throttles the copy's writes to the disk's
 * pace, which is what O_DIRECT did. */
static int ckpt_copy(struct ckpt_work *c)
{
    struct node *n = c->n;
    int fd = open(c->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int rc = fd < 0 ? -errno : 0;
    uv_rwlock_rdlock(&n->store_lock);
    kv_ckpt_file(n->kv, &c->file);
    if (rc == 0) {
        rc = ckpt_read(c, fd);
    }
    struct stat st;
    if (rc == 0 && fstat(fd, &st) == 0) {
        c->copy_bytes = (uint64_t)st.st_size;
    }
    if (rc == 0) {
        rc = ckpt_flush_paced(n, fd, c->copy_bytes);
    }
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
    }
    if (fd >= 0) {
        close(fd);
    }
    /* The copy before this one is freed a piece at a time, after. */
    int old_fd = -1;
    if (rc == 0) {
        rc = discard_rename(c->tmp, c->path, n->dir_snap, &old_fd);
    }
    if (rc == 0) {
        rc = ckpt_unrecord(c);
    }
    uv_rwlock_rdunlock(&n->store_lock);
    if (rc != 0) {
        unlink(c->tmp);
    }
    if (old_fd >= 0) {
        discard_fd(old_fd);
    }
    return rc;
}

static void ckpt_work(uv_work_t *w)
{
    struct ckpt_work *c = w->data;
    uint64_t t0 = clock_mono_ns();
    int rc = c->inplace ? ckpt_inplace(c) : ckpt_copy(c);
    /* Then the Raft snapshot's metadata, which lets the WAL below it go:
     * both fsyncs here, off the loop (an fsync can wait seconds behind
     * the store's dirty pages). */
    if (rc == 0) {
        struct log_snap_meta lm;
        struct buf conf;
        buf_init(&conf, 0);
        rc = raft_conf_encode(&c->meta.conf, &conf);
        lm.index = c->meta.index;
        lm.term = c->meta.term;
        lm.conf = conf.data;
        lm.conf_len = (uint32_t)conf.len;
        if (rc == 0) {
            rc = log_snap_save(c->n->dir_snap, &lm, 0, "", 0, 0);
            rc = rc == ERR_EXISTS ? 0 : rc;
        }
        buf_free(&conf);
    }
    c->err = rc;
    c->took_ns = clock_mono_ns() - t0;
}

static void ckpt_done(uv_work_t *w, int status)
{
    struct ckpt_work *c = w->data;
    struct node *n = c->n;
    int rc = status != 0 ? status : c->err;
    bool superseded = false;
    n->ckpt_running = false;
    if (c->pinned && rc == 0) {
        /* The state before this one is no longer needed whole, and the
         * copy (an earlier one, or what a received snapshot left) is older
         * than this record. */
        kv_ckpt_unpin_older(n->kv, &c->ck);
        if (kv_ckpt_current(n->kv, &c->ck)) {
            char old[600];
            snprintf(old, sizeof(old), "%s/store.ckpt", n->dir_snap);
            (void)node__discard_path_async(n, old);
        }
    } else if (c->pinned && c->recorded) {
        /* Failed after the record (saving the Raft snapshot's metadata):
         * the record names this state now, so its pin stays and the older
         * ones go (they kept its pages safe, but held every page freed
         * since, so the file grew until a checkpoint succeeded). The WAL
         * stays, since no snapshot is finished. */
        kv_ckpt_unpin_older(n->kv, &c->ck);
    } else if (c->pinned) {
        kv_ckpt_unpin(n->kv, &c->ck);
    } else if (!c->inplace && rc == 0) {
        /* A copy, with no record left: no state of the file it copied
         * needs keeping whole any more. */
        kv_ckpt_unpin_all(n->kv, &c->file);
    }
    if (n->adopt_pending && !n->closing) {
        /* After this copy's rename: the received one is newer, and this
         * copy's metadata is older than the snapshot installed since. */
        n->adopt_pending = false;
        node__checkpoint_adopt_received(n);
        superseded = true;
    }
    if (n->closing) {
        mem_free(c);
        node__close_finish(n);
        return;
    }
    if (superseded) {
        LOGI("node", "a received snapshot replaced the store checkpoint "
                     "written meanwhile");
    } else if (rc != 0) {
        LOGW("node", "writing the store checkpoint: %s (the log is kept)",
             err_str(rc));
    } else if (!n->closing) {
        n->ckpt_last_inplace = c->inplace;
        n->ckpt_last_ms = c->took_ns / 1000000;
        n->ckpt_last_bytes = c->copy_bytes;
        n->ckpt_last_pinned_ms = c->pinned_ns / 1000000;
        n->ckpt_last_memory = c->read_memory;
        node__snapshot_finish(n);
        /* A period (or the pin's growth) that fell due while this one ran
         * is taken now: a burst that ended meanwhile brings no later
         * apply to call it, and the log would stay unreleased until the
         * next write or the pause's checkpoint in place. Not after a
         * failure: the period's retry waits one period (maybe_snapshot). */
        node__snapshot_check(n);
    }
    mem_free(c);
}

int node__checkpoint_start(struct node *n, bool inplace)
{
    struct ckpt_work *c;
    int rc;
    if (n->ckpt_running) {
        return ERR_BUSY;
    }
    c = mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        return -ENOMEM;
    }
    if (mkdir(n->dir_snap, 0700) != 0 && errno != EEXIST) {
        mem_free(c);
        return -errno;
    }
    c->n = n;
    c->meta = n->ckpt_meta;
    c->inplace = inplace;
    if (!inplace) {
        uint64_t db, in_use;
        uint64_t budget = n->cfg.store_resident_bytes != 0
                              ? n->cfg.store_resident_bytes
                              : KV_RESIDENT_DEFAULT;
        node_store_size(n, &db, &in_use);
        c->via_memory = in_use >= n->ckpt_memory_floor && in_use <= budget / 2;
    }
    c->work.data = c;
    snprintf(c->path, sizeof(c->path), "%s/store.ckpt", n->dir_snap);
    snprintf(c->tmp, sizeof(c->tmp), "%s/store.ckpt.tmp", n->dir_snap);
    rc = uv_queue_work(n->loop, &c->work, ckpt_work, ckpt_done);
    if (rc != 0) {
        mem_free(c);
        return rc;
    }
    n->ckpt_running = true;
    return 0;
}

/* At open, before anything writes to the store. The record of the last
 * run (store.meta) names a state whose pages were pinned only while that
 * process lived; from here on the writes may reuse them, so wherever a
 * record exists a checkpoint in place is taken at once, before any write
 * (with --store-checkpoint copy too: the first copy then removes the
 * record, and the node asks for that copy at once). With in-place one is
 * taken in any case (then the copy is not needed); with auto and no
 * record, the first pause takes it. */
int node__checkpoint_open(struct node *n, char *msg, size_t msg_len)
{
    struct kv_ckpt ck;
    struct stat st;
    char meta[600];
    n->ckpt_inplace = false;
    n->ckpt_grow_pages = 0;
    n->ckpt_grow_bytes = 0;
    n->ckpt_rest_ms = CKPT_REST_MS;
    const char *tr = getenv("CAIRN_TEST_CKPT_REST_MS");
    if (tr != NULL && atoi(tr) > 0) {
        n->ckpt_rest_ms = (uint32_t)atoi(tr);
    }
    snprintf(meta, sizeof(meta), "%s/store.meta", n->dir_snap);
    bool recorded = stat(meta, &st) == 0;
    bool copies = n->cfg.checkpoint_mode == NODE_CKPT_COPY;
    if (copies && !recorded) {
        return 0;
    }
    int rc = kv_ckpt_supported(n->kv);
    if (rc != 0) {
        LOGI("node",
             "store checkpoints are copies here (no checkpoint in place: "
             "%s)",
             err_str(rc));
        return 0;
    }
    uint64_t grow = CKPT_GROW_BYTES;
    const char *tg = getenv("CAIRN_TEST_CKPT_GROW_MB");
    if (tg != NULL && atoi(tg) > 0) {
        grow = (uint64_t)atoi(tg) << 20; /* benchmarks of the trade */
    }
    long psize = sysconf(_SC_PAGESIZE); /* LMDB's page: the system's */
    n->ckpt_grow_pages = grow / (uint64_t)(psize > 0 ? psize : 4096);
    n->ckpt_grow_bytes = grow;
    if (!recorded && n->cfg.checkpoint_mode == NODE_CKPT_AUTO) {
        /* Nothing to keep pinned: copies until the writes pause (a pin
         * now would hold every page the first writes free). */
        n->ckpt_inplace = true;
        return 0;
    }
    rc = kv_ckpt_pin(n->kv, &ck);
    rc = rc != 0 ? rc : kv_sync(n->kv);
    rc = rc != 0 ? rc : meta_save(n, &ck, 1);
    if (rc != 0) {
        snprintf(msg, msg_len, "a checkpoint of the store at open: %s",
                 err_str(rc));
        return rc;
    }
    kv_ckpt_unpin_older(n->kv, &ck);
    if (copies) {
        LOGI("node", "a checkpoint in place from an earlier run is kept "
                     "until the first copy replaces it");
        n->ckpt_force = true;
        return 0;
    }
    n->ckpt_inplace = true;
    char old[600];
    snprintf(old, sizeof(old), "%s/store.ckpt", n->dir_snap);
    if (unlink(old) == 0) {
        LOGI("node",
             "the store's copy %s is replaced by a checkpoint in "
             "place",
             old);
    }
    return 0;
}

/* The writes freed what the pins of checkpoints in place hold back:
 * checkpoint early (in place; with auto a copy once the early ones since
 * the pause have written back about a copy's bytes: node.c,
 * maybe_snapshot), so that they are reused and the file stops growing. No
 * pin, no growth. */
bool node__checkpoint_due(struct node *n)
{
    return n->ckpt_grow_pages != 0 && n->kv != NULL &&
           kv_ckpt_growth(n->kv) >= n->ckpt_grow_pages;
}

/* Whether a copy of the store is on disk (auto: a pause replaces it). */
bool node__checkpoint_copy_exists(struct node *n)
{
    char path[600];
    struct stat st;
    snprintf(path, sizeof(path), "%s/store.ckpt", n->dir_snap);
    return stat(path, &st) == 0;
}

/* kv_defrag's hook: the new file's record joins the live file's before
 * the rename, so that either file, whichever a crash leaves, has one. */
static int defrag_record(void *ctx, const struct kv_ckpt *fresh)
{
    struct node *n = ctx;
    struct kv_ckpt recs[META_RECS];
    uint32_t count = 0, keep = 0;
    int rc = meta_load(n, recs, &count);
    if (rc != 0 && rc != ERR_NOT_FOUND) {
        return rc;
    }
    for (uint32_t i = 0; i < count && keep == 0; i++) {
        if (kv_ckpt_current(n->kv, &recs[i])) {
            recs[keep++] = recs[i];
        }
    }
    recs[keep++] = *fresh;
    return meta_save(n, recs, keep);
}

/* On the apply thread, every reader locked out. */
int node__defrag(struct node *n)
{
    if (!n->ckpt_inplace) {
        return kv_defrag(n->kv);
    }
    return kv_defrag_hook(n->kv, defrag_record, n);
}

/* A received snapshot (already fsynced) becomes the checkpoint. */
int node__checkpoint_adopt(struct node *n, const char *path)
{
    char ckpt[600];
    int rc;
    if (mkdir(n->dir_snap, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    snprintf(ckpt, sizeof(ckpt), "%s/store.ckpt", n->dir_snap);
    /* The copy replaced is freed a piece at a time, on the loop's pool. */
    int old_fd;
    rc = discard_rename(path, ckpt, n->dir_snap, &old_fd);
    if (old_fd >= 0) {
        node__discard_fd_async(n, old_fd);
    }
    return rc;
}

/* The install of a received snapshot is done: member/snap-in.tmp becomes
 * the checkpoint (node_snap.c, or ckpt_done when a copy was running). */
void node__checkpoint_adopt_received(struct node *n)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/snap-in.tmp", n->dir_member);
    int rc = node__checkpoint_adopt(n, path);
    if (rc != 0) {
        LOGW("node", "keeping the received snapshot as checkpoint: %s",
             err_str(rc));
    }
}

/* ------------------------------------------------ at open: catching up */

/* After load_wal: the store must hold at least what the saved Raft
 * snapshot covers, because Raft resumes applying after that index and the
 * WAL holds nothing below it. A received snapshot is installed in two
 * halves (node_snap.c): its metadata and the WAL reset on the WAL thread,
 * the store swap on the apply thread; then the received file becomes the
 * checkpoint. A crash between them leaves the metadata (and maybe the
 * reset WAL) durable and the store behind:
 *
 *  - metadata saved, store not swapped (WAL reset or not: load_wal
 *    finishes the reset);
 *  - both halves done, the received file not yet the checkpoint, then a
 *    reboot: node__state_check put the older checkpoint in place.
 *
 * In both the received copy is still member/snap-in.tmp (fsynced, with its
 * directory, before the snapshot was stepped into Raft, and only renamed
 * away after the install): install it now. A copy newer than the snapshot
 * is fine (the applier skips what the store already holds); one that is
 * older, or none at all, leaves a gap no log can fill: refuse to start
 * rather than run a store that silently misses committed entries. */
int node__store_catch_up(struct node *n, char *msg, size_t msg_len)
{
    char path[600];
    uint64_t want = n->ms.snap.meta.index;
    uint64_t had;
    uint64_t applied;
    uint64_t term;
    struct stat st;
    ASSERT(n->kv != NULL);
    kv_applied(n->kv, &had, &term);
    if (had >= want) {
        return 0;
    }
    snprintf(path, sizeof(path), "%s/snap-in.tmp", n->dir_member);
    if (stat(path, &st) != 0) {
        snprintf(msg, msg_len,
                 "the store (applied index %llu) is behind the Raft snapshot "
                 "at index %llu and the log holds nothing below it, but there "
                 "is no received copy (%s): this member cannot catch up; "
                 "remove it and add it again with an empty data directory",
                 (unsigned long long)had, (unsigned long long)want, path);
        return ERR_CORRUPT;
    }
    /* On failure the store is untouched (kv.h). */
    int rc = kv_snapshot_install(n->kv, path);
    if (rc != 0) {
        snprintf(msg, msg_len,
                 "the store (applied index %llu) is behind the Raft snapshot "
                 "at index %llu; installing the received copy %s: %s",
                 (unsigned long long)had, (unsigned long long)want, path,
                 err_str(rc));
        return rc;
    }
    kv_applied(n->kv, &applied, &term);
    if (applied < want) {
        snprintf(msg, msg_len,
                 "the store (applied index %llu) was behind the Raft snapshot "
                 "at index %llu, and so is the received copy %s (applied "
                 "index %llu): this member cannot catch up; remove it and "
                 "add it again with an empty data directory",
                 (unsigned long long)had, (unsigned long long)want, path,
                 (unsigned long long)applied);
        return ERR_CORRUPT;
    }
    LOGW("node",
         "the store (applied index %llu) was behind the Raft snapshot at "
         "%llu (a crash inside a snapshot install): installed the received "
         "copy %s (applied index %llu)",
         (unsigned long long)had, (unsigned long long)want, path,
         (unsigned long long)applied);
    /* As node__snap_install_check would have done. */
    rc = node__checkpoint_adopt(n, path);
    if (rc != 0) {
        snprintf(msg, msg_len, "keeping %s as the checkpoint: %s", path,
                 err_str(rc));
        return rc;
    }
    /* The store's contents changed under apply and the member table. */
    struct apply_config ac = n->apply.cfg;
    apply_close(&n->apply);
    rc = apply_init(&n->apply, &ac);
    if (rc == 0) {
        rc = node__members_reload(n);
    }
    if (rc != 0) {
        snprintf(msg, msg_len, "reopening the installed store: %s",
                 err_str(rc));
        return rc;
    }
    kv_applied(n->kv, &applied, &term);
    ASSERT(applied >= want);
    return 0;
}

/* ------------------------------------------------------- crash points */

void node__crash_init(struct node *n)
{
    const char *at = getenv("CAIRN_TEST_CRASH_AT");
    n->crash_at[0] = '\0';
    if (at != NULL && strlen(at) < sizeof(n->crash_at)) {
        snprintf(n->crash_at, sizeof(n->crash_at), "%s", at);
        LOGW("node", "test crash point armed: %s", n->crash_at);
    }
}

void node__crash_point(const struct node *n, const char *point)
{
    if (n->crash_at[0] == '\0' || strcmp(n->crash_at, point) != 0) {
        return;
    }
    LOGW("node", "crash point %s reached: killing the process", point);
    raise(SIGKILL);
}

/* The thread that could close the window stops here; the one that reaches
 * the crash point kills the process. Bounded: if the point is never
 * reached (a test's mistake), the process dies all the same. */
void node__crash_hold(const struct node *n, const char *point)
{
    if (n->crash_at[0] == '\0' || strcmp(n->crash_at, point) != 0) {
        return;
    }
    LOGW("node", "crash point %s: holding this thread", point);
    for (int i = 0; i < 600; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    node__crash_point(n, point);
}

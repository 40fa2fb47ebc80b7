/*
 * sim_disk.h - one member's simulated disk: an in-memory file system behind
 * consensus/log's VFS table (log_vfs.h), so the simulator runs the real WAL
 * and snapshot files. Private to tests/sim.
 *
 * Does:     keeps directories and files in memory; every change (write,
 *           truncate, allocate, create, rename, unlink, mkdir) is applied at
 *           once (reads see it) and journaled with what it overwrote, until
 *           the simulator says the I/O that made it is done (settle). A
 *           crash keeps a random prefix of the journaled changes, may tear
 *           the next one if it is a write (a prefix of its bytes, or the
 *           prefix then garbage), and undoes the rest.
 * Owns:     all its memory; handles given out to the log stay valid until
 *           closed or until the crash (the log must be closed first).
 * Threads:  one (the simulator's).
 * Borrowed: the VFS table points into the disk: valid until sim_disk_free.
 * Errors:   the VFS functions return -ENOENT, -EEXIST, -EBADF, -EMFILE,
 *           -ENAMETOOLONG, -ENOTEMPTY, ERR_TRUNCATED, ERR_LOCKED.
 * Limits:   SIM_DISK_DIRS directories, SIM_DISK_HANDLES open handles,
 *           names < SIM_DISK_NAME bytes.
 * Not here: latency (the simulator's EV_DISK events decide when a batch's
 *           I/O is done and call sim_disk_settle).
 *
 * Why a prefix: the real node syncs each frame before it writes the next,
 * so a crash leaves everything before the write in flight durable and that
 * write torn. The simulator lets a member run ahead of its simulated
 * fsyncs (the log is told its syncs succeeded, the Raft core is told only
 * when the EV_DISK event fires), and a crash then cuts the journal where a
 * real crash could have: the WAL sees exactly what a real crash leaves.
 * Separately, settle checks that every write, truncate, create and rename
 * was followed by a sync of its file or directory before the I/O counted
 * as done: a WAL that forgot an fsync is reported even though the prefix
 * model would have kept its data.
 */
#ifndef CAIRN_TESTS_SIM_DISK_H
#define CAIRN_TESTS_SIM_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/prng.h"
#include "consensus/log/log_vfs.h"

#define SIM_DISK_DIRS    4
#define SIM_DISK_HANDLES 32
#define SIM_DISK_NAME    64

struct sim_disk;

struct sim_disk_crash {
    uint64_t ops;       /* journaled changes in flight */
    uint64_t kept;      /* of which reached the disk whole */
    bool torn;          /* the next one, a write, reached it in part */
    bool garbage;       /* ... with garbage after the prefix */
    uint64_t torn_len;  /* bytes of that write */
    uint64_t torn_kept; /* bytes of it that reached the disk as written */
};

/* A fresh, empty disk whose random bytes (segment salts, garbage) come from
 * seed. Never NULL (asserts on out of memory: test code). */
struct sim_disk *sim_disk_new(uint64_t seed);
void sim_disk_free(struct sim_disk *d);
const struct log_vfs *sim_disk_vfs(struct sim_disk *d);

/* Changes journaled so far (a position to pass to settle later). */
uint64_t sim_disk_mark(const struct sim_disk *d);

/* Changes journaled and not settled yet. */
uint64_t sim_disk_unsettled(const struct sim_disk *d);

/* The changes before mark are on the disk for good. Returns how many of
 * them no sync covered; the first is described in what. */
uint64_t sim_disk_settle(struct sim_disk *d, uint64_t mark, char *what,
                         size_t what_len);

/* Power loss: every handle must be closed. Keeps a prefix of the changes
 * in flight (rng decides), tears the next one with probability
 * tear_pct/100 when it is a write, undoes the others. */
void sim_disk_crash(struct sim_disk *d, struct prng *rng, uint32_t tear_pct,
                    struct sim_disk_crash *out);

#endif

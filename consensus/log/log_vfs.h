/*
 * log_vfs.h - the file-system operations the WAL and the snapshot files use,
 * as a table of functions (like SQLite's VFS), so that a test can run the
 * real log on a disk of its own (tests/sim runs it on a simulated disk that
 * loses unsynced writes and tears the last one).
 *
 * Does:     names every file-system call consensus/log makes; the POSIX
 *           table (log_vfs_posix) is what log_open and the snapshot
 *           functions use when given none.
 * Owns:     nothing; a table and its ctx are borrowed by every log handle
 *           and snapshot call that uses them, for as long as that lasts.
 * Threads:  the POSIX table is stateless (the OS serialises); another
 *           table's rules are its own (the simulator's is one thread).
 * Borrowed: name and path strings are borrowed for the call; buffers too.
 * Errors:   every function returns 0 or a negative code: -errno (-ENOENT
 *           when a name is missing, -EEXIST for an exclusive create),
 *           ERR_TRUNCATED (read past the end of a file), ERR_LOCKED
 *           (dir_lock held elsewhere).
 * Limits:   handles are small non-negative ints (file descriptors for
 *           POSIX); a table decides how many it can give out.
 * Not here: retries and the failed state (log_wal.c); what a crash does to
 *           unsynced data (that is the disk's business: the log's recovery
 *           rules in log.h assume only that synced data stays and that an
 *           unsynced write may be lost or torn).
 *
 * Durability contract the log relies on: data written to a file is durable
 * after sync() on that file returns 0 (fdatasync: also the file size); a
 * name created, renamed or removed in a directory is durable after
 * dir_sync() on that directory returns 0.
 */
#ifndef CAIRN_CONSENSUS_LOG_VFS_H
#define CAIRN_CONSENSUS_LOG_VFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define LOG_VFS_READ   0u /* open for reading only */
#define LOG_VFS_RDWR   1u /* open for reading and writing */
#define LOG_VFS_CREATE 2u /* with RDWR: create; -EEXIST if it exists */

/* dir_list calls it once per name ("." and ".." excluded); a non-zero
 * return stops the listing and is returned by dir_list. The callback may
 * unlink the name it was given. */
typedef int (*log_vfs_list_cb)(void *arg, const char *name);

struct log_vfs {
    void *ctx;
    /* Open a directory (create: make it if missing, one level, and make
     * the new name durable in its parent). -ENOENT when missing and not
     * create. */
    int (*dir_open)(void *ctx, const char *path, bool create, int *dir);
    void (*dir_close)(void *ctx, int dir); /* drops dir_lock */
    /* Exclusive advisory lock, held until dir_close. ERR_LOCKED if held. */
    int (*dir_lock)(void *ctx, int dir);
    int (*dir_sync)(void *ctx, int dir);
    int (*dir_list)(void *ctx, int dir, log_vfs_list_cb cb, void *arg);
    /* 0 when name exists in dir, -ENOENT when not. */
    int (*exists)(void *ctx, int dir, const char *name);
    int (*unlink)(void *ctx, int dir, const char *name);
    /* Atomic replace of to by from, both in dir. */
    int (*rename)(void *ctx, int dir, const char *from, const char *to);

    /* Files. flags: LOG_VFS_READ, LOG_VFS_RDWR, optionally | CREATE. */
    int (*open)(void *ctx, int dir, const char *name, unsigned flags, int *fd);
    void (*close)(void *ctx, int fd);
    int (*size)(void *ctx, int fd, uint64_t *size);
    /* Fill iov[0..iovcnt) from off, exactly; ERR_TRUNCATED if the file ends
     * first (the buffers may then be partly written). */
    int (*read)(void *ctx, int fd, const struct iovec *iov, int iovcnt,
                uint64_t off);
    /* Write all of p[0..len) at off (the file grows as needed). */
    int (*write)(void *ctx, int fd, const void *p, size_t len, uint64_t off);
    /* fdatasync: data and size durable. Never retried by the log. */
    int (*sync)(void *ctx, int fd);
    int (*truncate)(void *ctx, int fd, uint64_t size);
    /* Make the file at least size bytes long, the new bytes zero, with the
     * space reserved where the disk can (fallocate). */
    int (*allocate)(void *ctx, int fd, uint64_t size);

    /* len random bytes (the WAL's per-segment salt). */
    int (*random)(void *ctx, void *p, size_t len);
};

/* The table over the real file system (open/pread/pwrite/fdatasync/...).
 * Static and constant: never freed. */
const struct log_vfs *log_vfs_posix(void);

#endif

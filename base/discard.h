/*
 * discard.h - large files deleted without holding the file system's
 * journal for long.
 *
 * Deleting a large file on ext4 frees all its blocks in one journal
 * transaction, and an fdatasync that needs a commit meanwhile (the WAL's)
 * waits the whole time: a 189 MB file deleted whole held a concurrent
 * fdatasync 86-114 ms on our test machine; cut into 2 MiB truncations,
 * 4-10 ms at most, for a deletion 10-30% longer. So a file goes thus:
 * opened, unlinked or renamed over (the open descriptor keeps its blocks),
 * shrunk a piece at a time, closed. A crash in between leaves an orphan
 * inode, which the file system frees at mount.
 *
 * A file renamed over must be shrunk only once the rename is durable (its
 * directory synced): before that, a crash could bring its old name back,
 * on an inode already cut short. Close it instead: that frees it whole.
 *
 * Threads: none kept; discard_fd and discard_path block for the whole
 * deletion (tens to hundreds of ms), so they are for worker threads;
 * discard_fd_detached hands the descriptor to a thread of its own.
 */
#ifndef CAIRN_BASE_DISCARD_H
#define CAIRN_BASE_DISCARD_H

/* Shrink fd's file a piece at a time and close fd. */
void discard_fd(int fd);

/* discard_fd on a detached thread of its own (on the calling thread if
 * none can be started). For a rare, large deletion from a thread that
 * must not wait for it. */
void discard_fd_detached(int fd);

/* Open path (to keep its blocks), then unlink it: 0 and *fd (-1 if the
 * file could not be opened: the unlink then freed it whole), or -errno
 * (-ENOENT: no such file) and nothing open. */
int discard_unlink(const char *path, int *fd);

/* discard_unlink, then discard_fd here. 0 or -errno. */
int discard_path(const char *path);

/* fsync the directory dir (its entries: a rename in it made durable).
 * 0 or -errno. */
int discard_sync_dir(const char *dir);

/* Rename from over to, then discard_sync_dir(dir). The file to named stays
 * open across the rename, so the rename frees none of its blocks. 0 and
 * *old: that file's descriptor (-1 if to named none), for the caller to
 * discard_fd here or on a thread of its choosing. On failure -errno, *old
 * -1 and the file only closed: it is still to, or may be after a crash. A
 * failed rename leaves from in place. */
int discard_rename(const char *from, const char *to, const char *dir, int *old);

#endif

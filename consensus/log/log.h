/*
 * log.h - the write-ahead log (WAL) and the snapshot files of one member.
 *
 * Does:     keeps the Raft log and hard state durable in an append-only,
 *           segmented, checksummed WAL (data-dir/member/wal/) and keeps Raft
 *           snapshot metadata files (data-dir/member/snap/).
 * Owns:     struct log (from log_open): its segment files, one open fd for
 *           the active segment plus one cached read fd, an exclusive flock on
 *           the WAL directory, and an in-memory index of the retained entries
 *           (24 bytes each: term, segment, offset, length). Every file-system
 *           call goes through a struct log_vfs (log_vfs.h; POSIX unless
 *           log_options.vfs or a *_vfs snapshot call names another).
 * Threads:  thread-confined and synchronous. The node calls every function
 *           on a handle from its own I/O thread, never from the event loop:
 *           log_append blocks for an fdatasync. The snapshot functions are
 *           stateless and may be called from any one thread at a time per
 *           directory.
 * Borrowed: log_entries() writes entry data into the caller's arena; the
 *           returned struct log_entry data pointers point into that arena.
 *           log_append() copies what it needs before returning.
 * Errors:   0 or a negative code (base/err.h): ERR_CORRUPT (mid-log damage;
 *           the message names file and offset), ERR_BAD_MAGIC,
 *           ERR_BAD_VERSION, ERR_LOCKED, ERR_LIMIT, ERR_INVALID,
 *           ERR_COMPACTED, ERR_NOT_FOUND, -ENOMEM and -errno. A failed write,
 *           fdatasync, ftruncate, fallocate, rename or directory fsync puts
 *           the log in a failed state: that call and every later call on the
 *           handle return the same code, until log_close. An fsync is never
 *           retried (after a failed fsync the kernel may have dropped the
 *           dirty pages, "fsyncgate"). -ENOMEM and validation errors leave
 *           the log exactly as it was.
 * Limits:   entry data <= entry_bytes_max (default LIMIT_RAFT_ENTRY_BYTES,
 *           never above its hard max, which is also what the reader accepts);
 *           retained entries <= entries_max; frame (one fdatasync) <=
 *           frame_bytes_max; snapshot conf <= LOG_SNAP_CONF_BYTES_MAX, inline
 *           payload <= LOG_SNAP_INLINE_BYTES_MAX. Every length read from disk
 *           is checked against these before anything is allocated.
 * Not here: what to release and when (the node: it keeps enough for slow
 *           followers and bounds the log by snapshot-count); the store's
 *           copy of LMDB that a snapshot points to (consensus/kv); Raft
 *           itself (consensus/raft reads this through its storage interface).
 *
 * ------------------------------------------------------------------------
 * WAL files. All integers little-endian. Segment names are
 * "<seq:016x>-<first_index:016x>.wal"; seq is +1 per segment with no gaps
 * (names sort by it). first_index may go down along seq: a conflicting
 * append that reaches below the active segment's first index starts a new
 * segment there. A segment is built as "<name>.tmp" (fallocated to
 * segment_bytes, header and a hard-state frame written, fdatasync), then
 * renamed and the directory fsynced: a *.wal file always has a whole header.
 *
 * Segment header (64 bytes, at offset 0):
 *   off size field
 *   0   8    magic "CAIRNWAL"
 *   8   4    version = 1
 *   12  4    flags: bit 0 RESET (the log restarts here; see log_reset)
 *   16  8    seq
 *   24  8    first_index: entries in this segment have index >= it; the
 *            view of the log is cut to first_index - 1 when it starts
 *   32  8    prev_term: term of entry first_index - 1 (0 if none)
 *   40  8    salt: random; seeds every frame header checksum
 *   48  12   zero
 *   60  4    crc32c of bytes 0..59
 *
 * Frame = one batch = one fdatasync (offsets 8-aligned, from 64):
 *   0   4    magic 0x314D5246 ("FRM1")
 *   4   4    body_len: bytes of records that follow (a multiple of 8)
 *   8   8    seq: 1, 2, ... within the segment (1 is the hard-state frame
 *            written when the segment was created)
 *   16  4    count: records in the body
 *   20  4    body_crc: crc32c of the body
 *   24  4    zero
 *   28  4    header crc: crc32c over salt (8 bytes LE) then bytes 0..27
 *
 * Record (inside a frame body; padded with zeros to 8 bytes):
 *   0   4    len: bytes from offset 8 to the end, unpadded (>= 24)
 *   4   4    crc32c over bytes 0..3, then bytes 8..8+len
 *   8   1    type: 1 entry, 2 hard state
 *   entry:      9 etype u8 | 10..15 zero | 16 index u64 | 24 term u64 |
 *               32 data (len - 24 bytes)
 *   hard state: 9..15 zero | 16 term u64 | 24 vote u64 | 32 commit u64
 *               (len = 32)
 *
 * Replay: segments in seq order; the first sets first_index/prev_term; a
 * later one must have seq + 1, and either RESET (drop everything), or a
 * first_index below the view's first (drop everything too: only a crash
 * inside the deletion of old segments, which runs oldest first with a
 * directory fsync after each unlink, leaves such a suffix), or a
 * first_index in [first, last + 1] whose prev_term matches. Entry records
 * must be consecutive inside a frame, >= the segment's first_index and
 * <= last + 1; an entry at index <= last discards the entries after it
 * (that is how a conflicting append is made durable: no file is rewritten).
 * The last hard-state record wins; every segment starts with one.
 *
 * Torn tail versus corruption. Each frame is written and fdatasynced before
 * the next frame exists, and no byte after the end of the log is ever
 * non-zero except from the one frame in flight. So, at the first frame that
 * fails (bad magic, header or body checksum, wrong seq, bad length, a
 * record that does not parse, or the file ends inside it) at offset o:
 *   - the frame is the segment's first (seq 1, synced before the rename):
 *     ERR_CORRUPT;
 *   - the rest of the file is zero: normal end of the segment (preallocated
 *     space), in any segment;
 *   - else, in a segment that is not the last one: ERR_CORRUPT;
 *   - else, if a valid frame with a higher seq starts at any 8-aligned
 *     offset after o (its header checksum is seeded with the segment's
 *     random salt, so entry data cannot forge one): ERR_CORRUPT, because a
 *     later frame was synced after this one was;
 *   - else it is a torn tail: the file is cut to o, fdatasynced and
 *     preallocated again (logged as a warning). A torn frame is dropped
 *     whole: its entries were never reported durable.
 * Damage that reads back as zeros at the end of a non-last segment shows up
 * as a gap to the next segment's first_index (ERR_CORRUPT) unless the lost
 * frames held only hard state.
 *
 * Snapshot files ("<index:016x>-<term:016x>.snap" in the snap directory):
 *   0   8    magic "CAIRNSNP"
 *   8   4    version = 1
 *   12  4    flags: bit 0 PATH (payload is a file path, not the bytes)
 *   16  8    index
 *   24  8    term
 *   32  4    conf_len (<= LOG_SNAP_CONF_BYTES_MAX)
 *   36  4    zero
 *   40  8    payload_len (<= LOG_SNAP_INLINE_BYTES_MAX; with PATH 1 to
 *            PATH_MAX - 1 bytes, no NUL among them)
 *   48  4    body crc32c over conf then payload
 *   52  8    zero
 *   60  4    crc32c of bytes 0..59
 *   64       conf bytes, then payload bytes; the file ends there
 * Written as "<name>.tmp", fsynced, renamed, directory fsynced. Loading takes
 * the newest file by index; only that newest file may be skipped, and only
 * when it is incomplete (shorter than its header or than header + lengths,
 * which a crash can leave on file systems that reorder rename before data);
 * any other damage, or any damage in the file we fall back to, is
 * ERR_CORRUPT: a snapshot that was once complete is never silently passed
 * over.
 */
#ifndef CAIRN_CONSENSUS_LOG_H
#define CAIRN_CONSENSUS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOG_SEGMENT_BYTES_DEFAULT ((uint64_t)64 << 20)
#define LOG_SEGMENT_BYTES_MIN     ((uint64_t)4096)
#define LOG_SEGMENT_BYTES_MAX     ((uint64_t)1 << 30) /* offsets fit in u32 */
#define LOG_FRAME_BYTES_DEFAULT   ((uint32_t)8 << 20)
#define LOG_ENTRIES_MAX_DEFAULT   ((uint64_t)8 << 20) /* 192 MiB of index */
#define LOG_SNAP_CONF_BYTES_MAX   ((uint32_t)1 << 20)
#define LOG_SNAP_INLINE_BYTES_MAX ((uint64_t)64 << 20)
#define LOG_SNAP_KEEP_DEFAULT     5
#define LOG_SNAP_FLAG_PATH        1u

struct log;     /* opaque; from log_open */
struct log_vfs; /* log_vfs.h: the file-system calls */

struct log_entry {
    uint64_t index;
    uint64_t term;
    uint8_t type; /* Raft entry type; stored, not interpreted */
    const uint8_t *data;
    uint32_t len;
};

struct log_hard_state {
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
};

struct log_options {
    uint64_t segment_bytes;   /* preallocation; 0: 64 MiB */
    uint32_t entry_bytes_max; /* 0: LIMIT_RAFT_ENTRY_BYTES default */
    uint32_t frame_bytes_max; /* bytes per fdatasync; 0: 8 MiB */
    uint64_t entries_max;     /* retained entries; 0: 8 Mi */
    /* The file system (log_vfs.h), borrowed until log_close; NULL: the
     * real one (log_vfs_posix). */
    const struct log_vfs *vfs;
    /* Where released segments go (log_release, log_reset). NULL: they are
     * unlinked inside the call; the unlink of a written segment frees its
     * cached pages and blocks, 20-45 ms for 64 MiB on ext4, and the
     * caller's thread is the one that syncs the log. Set: each is renamed
     * to NAME.del instead (as durably as the unlink: a directory fsync
     * after each) and handed to discard(discard_arg, name), which must see
     * it unlinked, from any thread (name is relative to wal_dir, at most
     * LOG_NAME_MAX bytes with its NUL). log_open unlinks *.del leftovers
     * of a crash. */
    void (*discard)(void *arg, const char *name);
    void *discard_arg;
};

#define LOG_NAME_MAX 64

/* Open (creating if needed) the WAL in wal_dir (one level is created; its
 * parent must exist), take its lock, replay it, repair a torn tail.
 * o may be NULL for defaults. On success *out owns the handle. On failure
 * nothing is left open and msg (if not NULL) holds one line naming the file
 * and offset at fault. Errors: ERR_CORRUPT, ERR_BAD_MAGIC, ERR_BAD_VERSION,
 * ERR_LOCKED, ERR_LIMIT (more retained entries than entries_max),
 * ERR_INVALID (options), -ENOMEM, -errno. */
int log_open(const char *wal_dir, const struct log_options *o, struct log **out,
             char *msg, size_t msg_len);

/* Close files and free everything. Safe on NULL and on a failed log. */
void log_close(struct log *l);

/* Append entries e[0..n) (consecutive indexes) and, if hs is not NULL, the
 * hard state, durably: returns after the bytes are fdatasynced. One call is
 * one group commit: one frame and one fdatasync, unless the encoded batch
 * exceeds frame_bytes_max, in which case it is split into frames that are
 * each synced in turn (hs goes in the last). e[0].index must be in
 * [first, last + 1]; an index <= last discards the entries from there on
 * first (conflicting suffix). Terms must not decrease. Everything is copied.
 * Errors: ERR_COMPACTED (e[0].index < first), ERR_INVALID (gap, not
 * consecutive, decreasing term, unknown handle state), ERR_LIMIT (entry too
 * big, too many retained entries), -ENOMEM (log unchanged), I/O -errno
 * (log failed). */
int log_append(struct log *l, const struct log_entry *e, size_t n,
               const struct log_hard_state *hs);

/* Restart the log after a snapshot at (index, term) that replaces it (a
 * follower installing a leader's snapshot): all entries are dropped, the
 * next append must be at index + 1, and term(index) == term. Durable on
 * return; older segments are deleted. Errors: I/O -errno (log failed),
 * -ENOMEM. */
int log_reset(struct log *l, uint64_t index, uint64_t term);

/* Delete the segments that hold only entries before before_index (never
 * the active segment), durably (directory fsync). The first index may stay
 * below before_index: a segment is released whole or not at all. Errors:
 * I/O -errno (log failed). */
int log_release(struct log *l, uint64_t before_index);

/* First retained index (last + 1 when the log is empty) and last index
 * (first - 1 when empty; 0 for a fresh log). */
uint64_t log_first_index(const struct log *l);
uint64_t log_last_index(const struct log *l);

/* The last hard state written (zeros for a fresh log). */
void log_hard_state(const struct log *l, struct log_hard_state *hs);

/* Term of entry i, from memory (no I/O). i may be first - 1 (the term
 * recorded before the first entry, 0 when none). Errors: ERR_COMPACTED
 * (i < first - 1), ERR_NOT_FOUND (i > last), the failed-state code. These
 * are the codes struct raft_storage (consensus/raft) expects. */
int log_term(const struct log *l, uint64_t i, uint64_t *term);

/* Entry i's term, Raft type and data length, from memory (no I/O, and so
 * no checksum: log_entries reads and checks the data). Errors:
 * ERR_COMPACTED (i < first), ERR_NOT_FOUND (i > last), the failed-state
 * code. */
int log_entry_meta(const struct log *l, uint64_t i, uint64_t *term,
                   uint8_t *type, uint32_t *len);

/* Read entries [lo, hi): stops before the entry that would take the data
 * total past max_bytes (but always returns at least one when lo < hi),
 * when out_cap entries are filled, or when the arena is full. Data is read
 * from the segment files into arena (borrowed by the caller; out[k].data
 * points into it) and each record's checksum is verified. *count gets the
 * number filled. Errors: ERR_COMPACTED (lo < first), ERR_NOT_FOUND (hi >
 * last + 1), ERR_INVALID (lo > hi, out_cap == 0), ERR_LIMIT (the first
 * entry does not fit
 * the arena), ERR_CORRUPT (a record changed on disk since it was written),
 * -errno from reads, the failed-state code. */
int log_entries(struct log *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                struct log_entry *out, size_t out_cap, uint8_t *arena,
                size_t arena_len, size_t *count);

/* 0, or the error that put the log in its failed state. */
int log_failed(const struct log *l);

/* ---------------------------------------------------------------- snaps */

struct log_snap_meta {
    uint64_t index;
    uint64_t term;
    const uint8_t *conf; /* membership config, opaque bytes */
    uint32_t conf_len;
};

/* A loaded snapshot; owns conf and payload (free with log_snap_free). */
struct log_snap {
    uint64_t index;
    uint64_t term;
    uint32_t flags; /* LOG_SNAP_FLAG_PATH: payload is a NUL-ended path */
    uint8_t *conf;
    uint32_t conf_len;
    uint8_t *payload;
    uint64_t payload_len;
};

/* Write a snapshot file for m into snap_dir (created if missing): payload is
 * the bytes, or with LOG_SNAP_FLAG_PATH a path (no NUL needed) to a file the
 * caller owns. Temp file, fsync, rename, directory fsync; then deletes the
 * oldest *.snap files beyond keep (0: LOG_SNAP_KEEP_DEFAULT). All pointers
 * are borrowed for the call. Errors: ERR_LIMIT (sizes), ERR_EXISTS (a
 * snapshot at that index and term is already there), -ENOMEM, -errno. */
int log_snap_save(const char *snap_dir, const struct log_snap_meta *m,
                  uint32_t flags, const void *payload, uint64_t payload_len,
                  unsigned keep);
/* The same through vfs (borrowed for the call; NULL: POSIX). */
int log_snap_save_vfs(const struct log_vfs *vfs, const char *snap_dir,
                      const struct log_snap_meta *m, uint32_t flags,
                      const void *payload, uint64_t payload_len, unsigned keep);

/* Load the newest valid snapshot (see the file comment for which damaged
 * files are skipped). Removes stale *.tmp files. On success *out owns its
 * buffers. Errors: ERR_NOT_FOUND (none), ERR_CORRUPT, ERR_BAD_MAGIC,
 * ERR_BAD_VERSION (msg names the file), -ENOMEM, -errno. */
int log_snap_load(const char *snap_dir, struct log_snap *out, char *msg,
                  size_t msg_len);
/* The same through vfs (borrowed for the call; NULL: POSIX). */
int log_snap_load_vfs(const struct log_vfs *vfs, const char *snap_dir,
                      struct log_snap *out, char *msg, size_t msg_len);

void log_snap_free(struct log_snap *s);

#endif

/*
 * bolt.h - a read-only reader of bbolt database files, for the status of
 * etcd snapshots (etcdctl snapshot status).
 *
 * Does:     checks a bbolt file the way bbolt's tx.Check does and computes
 *           etcd 3.4's snapshot status over it (hash, revision, keys, size).
 * Owns:     nothing past a call: a bitmap of page ids (2 bits a page, freed
 *           before return) and, for a file, a read-only mmap of it.
 * Threads:  pure functions of their input; callable anywhere.
 * Borrowed: the input bytes, only for the duration of the call.
 * Errors:   0, ERR_BAD_MAGIC (not bbolt), ERR_BAD_VERSION, ERR_CORRUPT
 *           (anything else wrong, named in msg), -ENOMEM, -errno (files).
 * Limits:   page size a power of two in [BOLT_PAGE_MIN, BOLT_PAGE_MAX];
 *           nesting (B-tree levels plus buckets in buckets) <= BOLT_DEPTH_MAX;
 *           elements visited <= file bytes / 16 + 16 (every real element has
 *           its own 16-byte header, so only overlapping hostile ones exceed);
 *           key and value bytes hashed <= file bytes (the same reason).
 * Not here: writing bbolt files; the cairnctl command and its output
 *           formats (sdk/cairnctl/); Cairn's own store (kv.h, LMDB).
 *
 * Format (bbolt 1.3, as etcd 3.4 writes it; integers little-endian, which
 * is the host order of every machine etcd ships for that we read):
 *
 *   Page id i lives at byte i * page_size. Page header, 16 bytes:
 *     0  u64 id        the page's own id
 *     8  u16 flags     0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist
 *    10  u16 count     elements (freelist: ids; 0xFFFF: the count is the
 *                      first u64 of the data and the ids follow it)
 *    12  u32 overflow  pages that follow this one as part of it
 *   Meta (pages 0 and 1), after the page header:
 *     0  u32 magic 0xED0CDAED    4  u32 version 2     8  u32 page_size
 *    12  u32 flags              16  u64 root page    24  u64 root sequence
 *    32  u64 freelist page (all ones: none written)
 *    40  u64 high-water page id (pages in use; tx.Size = it * page_size)
 *    48  u64 txid               56  u64 FNV-1a 64 of bytes 0..56
 *   The meta used is the valid one (magic, version, and checksum unless
 *   it is 0) with the higher txid; page_size comes from meta 0 (4096 when
 *   meta 0 is bad).
 *   Branch element, 16 bytes each after the header:
 *     0  u32 pos (key at element + pos)  4 u32 ksize  8 u64 child page
 *   Leaf element, 16 bytes each:
 *     0  u32 flags (0x01: the value is a bucket)  4 u32 pos (key at
 *        element + pos, value right after the key)  8 u32 ksize 12 u32 vsize
 *   Bucket value: u64 root page, u64 sequence; root 0 means inline: a leaf
 *   page (header and elements) follows those 16 bytes inside the value.
 */
#ifndef CAIRN_CONSENSUS_KV_BOLT_H
#define CAIRN_CONSENSUS_KV_BOLT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BOLT_MAGIC     0xED0CDAEDu
#define BOLT_VERSION   2u
#define BOLT_PAGE_MIN  512u
#define BOLT_PAGE_MAX  65536u /* the largest OS page size etcd runs on */
#define BOLT_DEPTH_MAX 64     /* real trees are < 10 levels deep */

struct bolt_status {
    uint32_t hash;      /* CRC-32C over each top-level bucket's name, then
                           each key and value in it (etcd's) */
    int64_t revision;   /* main revision of the last key in bucket "key"
                           (its first 8 bytes, big-endian); 0 if none */
    int64_t total_key;  /* entries over all top-level buckets */
    int64_t total_size; /* tx.Size(): high-water page id * page size */
};

/* True when head[0..n) looks like the start of a bbolt file: meta page 0
 * (or meta page 1 at 4096, when n reaches it) has bbolt's magic and
 * version 2. head may be NULL when n is 0. Reads only head[0..n). */
bool bolt_is_bolt(const uint8_t *head, size_t n);

/* The status of the bbolt database held whole in p[0..n) (an etcd
 * snapshot may carry 32 more bytes, its SHA-256: they are past the
 * high-water page and ignored). p is borrowed for the call; p may be NULL
 * when n is 0. st is written only on success. msg (may be NULL when
 * msg_len is 0) gets a NUL-terminated reason on failure.
 * Returns 0; ERR_BAD_MAGIC: neither meta page has bbolt's magic;
 * ERR_BAD_VERSION: a meta page has another version; ERR_CORRUPT: fewer
 * than 4096 bytes (bbolt's first read), a bad meta checksum, a file shorter
 * than its pages, a page id past the high-water mark or the file, a page
 * reached twice (which includes loops), a page reachable and freed or neither,
 * a page of the wrong type, an element past its page, elements or hashed
 * bytes past the budgets above (overlapping elements), nesting past
 * BOLT_DEPTH_MAX, a top-level key that is not a bucket, a key in bucket "key"
 * shorter than etcd's 17-byte revision; -ENOMEM. */
int bolt_status_mem(const uint8_t *p, size_t n, struct bolt_status *st,
                    char *msg, size_t msg_len);

/* The same on the file at path, mapped read-only (mmap, MAP_PRIVATE) for
 * the call; a file truncated by someone else meanwhile raises SIGBUS, as
 * with any mapped reader. msg is prefixed with path. Adds -errno from
 * open, fstat and mmap, and -EISDIR or -EINVAL when path is a directory
 * or not a regular file. */
int bolt_status_file(const char *path, struct bolt_status *st, char *msg,
                     size_t msg_len);

#endif

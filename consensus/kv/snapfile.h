/*
 * snapfile.h - snapshot files offline: check, inspect and restore the
 * file `etcdctl snapshot save` (or cairnctl's) writes when it talks to
 * cairnd. Used by `cairnd snapshot status|restore` and by cairnctl's
 * `snapshot status|restore`; no member runs meanwhile.
 *
 * The format: the bytes of a compacted copy of the store's LMDB file
 * (kv_snapshot_write: whole pages, so its length is a multiple of the
 * page size, 4096), then the SHA-256 of those bytes (32 bytes), as etcd
 * appends a SHA-256 to its own stream. A file whose length is a multiple
 * of 4096 has no trailer: a store copied by hand (member/kv/data.mdb),
 * accepted only when the caller skips the hash check, as etcd's
 * --skip-hash-check does for a db file copied from a member.
 *
 * Threads: any; each call owns what it opens and closes it before it
 * returns. Errors: 0 or a base/err.h code, with msg (when msg_len > 0)
 * naming the file and what is wrong with it.
 */
#ifndef CAIRN_KV_SNAPFILE_H
#define CAIRN_KV_SNAPFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAPFILE_HASH_BYTES 32

struct snapfile_status {
    uint32_t hash;       /* kv_hash of the whole store (HashKV at its rev) */
    int64_t revision;    /* the store's revision */
    int64_t compacted;   /* its compacted revision */
    uint64_t total_keys; /* rows in all tables (kv_entry_count) */
    uint64_t size;       /* bytes of the store (without the trailer) */
    bool has_hash;       /* the file carries the SHA-256 trailer */
};

/* The file's store length (*db_len) and whether a trailer follows it
 * (*has_hash); with a trailer and check set, its SHA-256 is checked. */
int snapfile_verify(const char *path, bool check, uint64_t *db_len,
                    bool *has_hash, char *msg, size_t msg_len);

/* Status of the snapshot in path (checked as snapfile_verify with check;
 * a file without a trailer is read as a bare store). The store is copied
 * into a temporary directory under $TMPDIR (or /tmp) to be opened, then
 * removed. */
int snapfile_status(const char *path, bool check, struct snapfile_status *st,
                    char *msg, size_t msg_len);

/* Build data_dir (which must not exist) for the first member of a new
 * cluster from the snapshot in path: data_dir/member/kv holds the store,
 * its applied index back at 0 and the old cluster's members and alarms
 * removed (a new cluster's are written when the member first starts).
 * skip_hash: accept a file without the trailer (its hash is then not
 * checked either way). *rev and *compacted get the store's revisions.
 * On error nothing is left at data_dir that this call made. */
int snapfile_restore(const char *path, const char *data_dir, bool skip_hash,
                     int64_t *rev, int64_t *compacted, char *msg,
                     size_t msg_len);

#endif

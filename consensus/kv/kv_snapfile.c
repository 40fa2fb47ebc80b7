/*
 * kv_snapfile.c - snapshot files offline (snapfile.h): the SHA-256
 * trailer, status and restore.
 *
 * Happy path of a restore: check the trailer's hash over the store's
 * bytes, make data_dir/member/kv, copy the store's bytes (without the
 * trailer) beside it, open an empty store there and install the copy
 * (kv_snapshot_install repacks it), then drop what belonged to the old
 * cluster (members, alarms) and sync. Status copies the store the same
 * way into a temporary directory and reads it there: kv_open needs a
 * directory it may lock and write, and the snapshot file stays untouched.
 */
#include "consensus/kv/snapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "base/alloc.h"
#include "base/err.h"
#include "consensus/kv/kv.h"

#define COPY_CHUNK (1u << 20)
#define PAGE_BYTES 4096u
/* Names kv_open leaves in a store directory. */
static const char *const store_files[] = {"data.mdb", "lock.mdb", "LOCK",
                                          "data.mdb.install"};

int snapfile_verify(const char *path, bool check, uint64_t *db_len,
                    bool *has_hash, char *msg, size_t msg_len)
{
    uint8_t want[SNAPFILE_HASH_BYTES];
    uint8_t got[EVP_MAX_MD_SIZE];
    uint8_t *buf = NULL;
    struct stat st;
    unsigned int hl = 0;
    EVP_MD_CTX *md = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = -errno;
        err_msg(msg, msg_len, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)PAGE_BYTES) {
        rc = ERR_CORRUPT;
        err_msg(msg, msg_len, "%s: %s", path,
                S_ISREG(st.st_mode) ? "too short to be a snapshot"
                                    : "not a regular file");
        goto out;
    }
    *has_hash = (uint64_t)st.st_size % PAGE_BYTES == SNAPFILE_HASH_BYTES;
    *db_len = (uint64_t)st.st_size - (*has_hash ? SNAPFILE_HASH_BYTES : 0);
    if (!*has_hash || !check) {
        goto out;
    }
    buf = mem_alloc(COPY_CHUNK);
    md = EVP_MD_CTX_new();
    if (buf == NULL || md == NULL ||
        EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        rc = -ENOMEM;
        err_msg(msg, msg_len, "%s: %s", path, "out of memory");
        goto out;
    }
    for (uint64_t off = 0; off < *db_len;) {
        size_t n = *db_len - off < COPY_CHUNK ? (size_t)(*db_len - off)
                                              : (size_t)COPY_CHUNK;
        if (pread(fd, buf, n, (off_t)off) != (ssize_t)n) {
            rc = -EIO;
            err_msg(msg, msg_len, "%s: %s", path, "read error");
            goto out;
        }
        EVP_DigestUpdate(md, buf, n);
        off += n;
    }
    EVP_DigestFinal_ex(md, got, &hl);
    if (pread(fd, want, SNAPFILE_HASH_BYTES, (off_t)*db_len) !=
            SNAPFILE_HASH_BYTES ||
        memcmp(want, got, SNAPFILE_HASH_BYTES) != 0) {
        rc = ERR_CORRUPT;
        err_msg(msg, msg_len, "%s: %s", path,
                "SHA-256 mismatch: the snapshot is damaged or not a cairnd "
                "snapshot");
    }
out:
    if (md != NULL) {
        EVP_MD_CTX_free(md);
    }
    mem_free(buf);
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

/* Copy the first len bytes of src to a new file dst, synced. */
static int copy_prefix(const char *src, const char *dst, uint64_t len)
{
    uint8_t *buf = mem_alloc(COPY_CHUNK);
    int in = open(src, O_RDONLY | O_CLOEXEC);
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int rc = 0;
    if (buf == NULL || in < 0 || out < 0) {
        rc = buf == NULL ? -ENOMEM : -errno;
    }
    for (uint64_t off = 0; rc == 0 && off < len;) {
        size_t n =
            len - off < COPY_CHUNK ? (size_t)(len - off) : (size_t)COPY_CHUNK;
        ssize_t r = pread(in, buf, n, (off_t)off);
        if (r != (ssize_t)n) {
            rc = r < 0 ? -errno : -EIO;
        } else if (write(out, buf, n) != (ssize_t)n) {
            rc = errno != 0 ? -errno : -EIO;
        }
        off += n;
    }
    if (rc == 0 && fsync(out) != 0) {
        rc = -errno;
    }
    if (in >= 0) {
        close(in);
    }
    if (out >= 0) {
        close(out);
    }
    mem_free(buf);
    return rc;
}

/* Remove the store files kv_open makes in dir, then dir (best effort). */
static void remove_store_dir(const char *dir)
{
    char p[4400];
    for (size_t i = 0; i < sizeof(store_files) / sizeof(store_files[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", dir, store_files[i]);
        unlink(p);
    }
    rmdir(dir);
}

int snapfile_status(const char *path, bool check, struct snapfile_status *st,
                    char *msg, size_t msg_len)
{
    const char *tmpdir = getenv("TMPDIR");
    char dir[4096];
    char db[4200];
    struct kv *kv = NULL;
    struct kv_read *rd = NULL;
    int rc;
    memset(st, 0, sizeof(*st));
    rc = snapfile_verify(path, check, &st->size, &st->has_hash, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    snprintf(dir, sizeof(dir), "%s/cairn-snapstatus-XXXXXX",
             tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
    if (mkdtemp(dir) == NULL) {
        rc = -errno;
        err_msg(msg, msg_len, "%s: %s", dir, strerror(errno));
        return rc;
    }
    snprintf(db, sizeof(db), "%s/data.mdb", dir);
    rc = copy_prefix(path, db, st->size);
    rc = rc != 0 ? rc : kv_open(dir, NULL, &kv);
    rc = rc != 0 ? rc : kv_read_begin(kv, &rd);
    if (rc == 0) {
        int64_t hrev = 0;
        rc = kv_hash(rd, 0, &st->hash, &st->compacted, &hrev);
        kv_read_end(rd);
        st->revision = kv_rev(kv);
        st->total_keys = kv_entry_count(kv);
    }
    if (kv != NULL) {
        kv_close(kv);
    }
    remove_store_dir(dir);
    if (rc != 0) {
        err_msg(msg, msg_len, "%s: %s", path,
                rc == ERR_BAD_MAGIC ? "not a cairnd snapshot" : err_str(rc));
    }
    return rc;
}

/* The restored store belongs to a new cluster: its Raft log starts at 1,
 * so the applied index goes back to 0, and the old cluster's members and
 * alarms go (the new members are written at first start). */
struct aux_names {
    uint8_t names[256][16];
    size_t lens[256];
    size_t count;
};

static int collect_aux(void *ctx, const void *name, size_t name_len,
                       const void *value, size_t value_len)
{
    struct aux_names *a = ctx;
    (void)value;
    (void)value_len;
    if (a->count < 256 && name_len <= 16) {
        memcpy(a->names[a->count], name, name_len);
        a->lens[a->count++] = name_len;
    }
    return 0;
}

static int restore_reset(struct kv *kv)
{
    static const uint8_t tables[] = {KV_AUX_CLUSTER, KV_AUX_ALARM};
    struct aux_names *a = mem_calloc(2, sizeof(*a));
    struct kv_read *rd;
    struct kv_write *wr;
    int rc = a == NULL ? -ENOMEM : kv_read_begin(kv, &rd);
    if (rc == 0) {
        for (size_t t = 0; rc == 0 && t < 2; t++) {
            rc = kv_aux_list(rd, tables[t], collect_aux, &a[t]);
        }
        kv_read_end(rd);
    }
    if (rc == 0) {
        rc = kv_write_begin(kv, NULL, NULL, &wr);
    }
    if (rc == 0) {
        for (size_t t = 0; t < 2; t++) {
            for (size_t i = 0; rc == 0 && i < a[t].count; i++) {
                rc = kv_aux_delete(wr, tables[t], a[t].names[i], a[t].lens[i]);
            }
        }
        if (rc == 0) {
            rc = kv_write_commit(wr, 0, 0);
        } else {
            kv_write_abort(wr);
        }
    }
    mem_free(a);
    return rc;
}

int snapfile_restore(const char *path, const char *data_dir, bool skip_hash,
                     int64_t *rev, int64_t *compacted, char *msg,
                     size_t msg_len)
{
    char member[4096];
    char kvdir[4200];
    char tmp[4200];
    struct stat sb;
    struct kv *kv = NULL;
    uint64_t db_len = 0;
    bool has_hash = false;
    int made = 0; /* directories made: data_dir, member, kv */
    int rc =
        snapfile_verify(path, !skip_hash, &db_len, &has_hash, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    if (!has_hash && !skip_hash) {
        err_msg(msg, msg_len, "%s: %s", path,
                "snapshot missing hash but --skip-hash-check=false");
        return ERR_CORRUPT;
    }
    if (stat(data_dir, &sb) == 0) {
        err_msg(msg, msg_len, "data-dir %s exists%s", data_dir,
                ": restore builds a new one");
        return -EEXIST;
    }
    snprintf(member, sizeof(member), "%s/member", data_dir);
    snprintf(kvdir, sizeof(kvdir), "%s/kv", member);
    snprintf(tmp, sizeof(tmp), "%s/restore.mdb", member);
    if (mkdir(data_dir, 0700) != 0 || (made++, mkdir(member, 0700) != 0) ||
        (made++, mkdir(kvdir, 0700) != 0)) {
        rc = -errno;
        err_msg(msg, msg_len, "%s: %s", data_dir, strerror(errno));
        goto undo;
    }
    made++;
    rc = copy_prefix(path, tmp, db_len);
    rc = rc != 0 ? rc : kv_open(kvdir, NULL, &kv);
    rc = rc != 0 ? rc : kv_snapshot_install(kv, tmp);
    rc = rc != 0 ? rc : restore_reset(kv);
    rc = rc != 0 ? rc : kv_sync(kv);
    if (kv != NULL) {
        *rev = kv_rev(kv);
        *compacted = kv_compact_rev(kv);
        kv_close(kv);
    }
    unlink(tmp);
    if (rc == 0) {
        return 0;
    }
    err_msg(msg, msg_len, "%s: %s", path,
            rc == ERR_BAD_MAGIC ? "not a cairnd snapshot" : err_str(rc));
undo:
    if (made >= 3) {
        remove_store_dir(kvdir);
    }
    if (made >= 2) {
        rmdir(member);
    }
    if (made >= 1) {
        rmdir(data_dir);
    }
    return rc;
}

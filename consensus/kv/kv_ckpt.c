/*
 * kv_ckpt.c - checkpoints in place: the live file as its own durable copy.
 *
 * The node runs the store without fsync (KV_SYNC_NONE). After a power loss
 * LMDB's file may be damaged because a meta page (the page a commit
 * rewrites to name its tree) can reach the disk before the pages it names.
 * Instead of a full copy of the store, a checkpoint in place keeps one
 * committed state T of the live file intact and durable:
 *
 *  - kv_ckpt_pin opens a read transaction at T. LMDB never reuses a page a
 *    reader's snapshot can reach, so T's tree stays as it is in the file
 *    while the pin lasts, whatever is committed after it.
 *  - It reads T's meta page from the file (the slot T & 1; a commit two
 *    later would rewrite it, so the txnid in the page is checked).
 *  - kv_sync after the pin writes back every page of T.
 *  - The caller keeps the record durably (node_ckpt.c: store.meta), and
 *    releases the previous pin only then.
 *
 * kv_ckpt_restore writes T's meta page back into both slots (the other one
 * as T - 1 naming the same tree, so LMDB picks T), and the store opens at
 * T, whole; the log replays what came after. A record names its file by
 * device, inode and birth time: a record of a file since replaced (a
 * defrag, an install, whose inode may be reused) never matches another.
 *
 * The price: a page freed while a pin lasts is not reused, so the file
 * grows by what the writes free between two checkpoints; kv_ckpt_growth
 * lets the node checkpoint sooner under heavy writes.
 *
 * LMDB 0.9's meta page (mdb.c): a 16-byte page header (pgno u64, pad u16,
 * flags u16, lower/upper u16 each), then MDB_meta: magic u32 0xBEEFC0DE,
 * version u32, address, mapsize, two 48-byte MDB_db, last_pg u64, txnid
 * u64. kv_ckpt_pin checks magic and txnid against what LMDB reports, so a
 * different layout is refused (the node then keeps copying).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/err.h"
#include "consensus/kv/kv_int.h"

#define META_MAGIC      0xBEEFC0DEu
#define META_OFF_MAGIC  16
#define META_OFF_LASTPG 136
#define META_OFF_TXNID  144

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void wr64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

int kv__file_id(const char *path, struct kv_file_id *out)
{
    struct statx sx;
    memset(out, 0, sizeof(*out));
    if (statx(AT_FDCWD, path, 0, STATX_INO | STATX_BTIME, &sx) != 0) {
        return -errno;
    }
    if ((sx.stx_mask & STATX_BTIME) == 0) {
        return -ENOTSUP;
    }
    out->dev = ((uint64_t)sx.stx_dev_major << 32) | sx.stx_dev_minor;
    out->ino = sx.stx_ino;
    out->btime_sec = sx.stx_btime.tv_sec;
    out->btime_nsec = sx.stx_btime.tv_nsec;
    return 0;
}

static bool same_file(const struct kv_file_id *a, const struct kv_file_id *b)
{
    return a->dev == b->dev && a->ino == b->ino &&
           a->btime_sec == b->btime_sec && a->btime_nsec == b->btime_nsec;
}

/* The newest pin's txnid (0: none). */
static uint64_t newest_pin(struct kv *kv)
{
    uint64_t newest = 0;
    pthread_mutex_lock(&kv->pins_mu);
    for (int i = 0; i < KV_PINS_MAX; i++) {
        if (kv->pins[i].txn != NULL && kv->pins[i].txnid > newest) {
            newest = kv->pins[i].txnid;
        }
    }
    pthread_mutex_unlock(&kv->pins_mu);
    return newest;
}

/* Add the free list records committed since the last count. Records
 * newer than the oldest reader are never consumed, so each is read
 * once. */
static void count_freed(struct kv *kv, uint64_t pin)
{
    MDB_txn *txn = NULL;
    if (pin != atomic_load(&kv->freed_txnid)) {
        kv->freed_upto = pin;
        atomic_store(&kv->freed, 0);
        atomic_store(&kv->freed_txnid, pin);
    }
    if (mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn) != 0) {
        return;
    }
    uint64_t add = 0;
    /* what was read counts even if the walk stopped short */
    (void)kv__freelist_sum(txn, kv->freed_upto + 1, &kv->freed_upto, &add);
    atomic_fetch_add(&kv->freed, add);
    mdb_txn_abort(txn);
}

void kv__note_pages(struct kv *kv)
{
    MDB_envinfo ei;
    if (mdb_env_info(kv->env, &ei) == 0) {
        atomic_store(&kv->last_pgno, (uint64_t)ei.me_last_pgno);
    }
    uint64_t pin = newest_pin(kv);
    if (pin != 0) {
        count_freed(kv, pin);
    }
}

/* Read the meta page of txnid from fd into ck (page size psize). */
static int read_meta(int fd, uint32_t psize, uint64_t txnid, struct kv_ckpt *ck)
{
    off_t off = (off_t)(txnid & 1) * psize;
    ssize_t n = pread(fd, ck->meta, sizeof(ck->meta), off);
    if (n != (ssize_t)sizeof(ck->meta)) {
        return n < 0 ? -errno : ERR_CORRUPT;
    }
    uint32_t magic;
    memcpy(&magic, ck->meta + META_OFF_MAGIC, 4);
    if (magic != META_MAGIC || rd64(ck->meta) != (txnid & 1)) {
        return ERR_INVALID; /* not the layout this file knows */
    }
    if (rd64(ck->meta + META_OFF_TXNID) != txnid) {
        return -EAGAIN; /* rewritten by a later commit meanwhile */
    }
    ck->txnid = txnid;
    ck->last_pgno = rd64(ck->meta + META_OFF_LASTPG);
    ck->page_bytes = psize;
    return 0;
}

int kv__pins_drop(struct kv *kv)
{
    int n = 0;
    pthread_mutex_lock(&kv->pins_mu);
    for (int i = 0; i < KV_PINS_MAX; i++) {
        if (kv->pins[i].txn != NULL) {
            mdb_txn_abort(kv->pins[i].txn);
            kv->pins[i].txn = NULL;
            n++;
        }
    }
    pthread_mutex_unlock(&kv->pins_mu);
    return n;
}

int kv_ckpt_pin(struct kv *kv, struct kv_ckpt *out)
{
    MDB_txn *txn = NULL;
    MDB_dbi meta = kv->dbi[KV_DBI_META];
    int fd = -1;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    if (atomic_load(&kv->failed) != 0) {
        return ERR_FAILED;
    }
    pthread_mutex_lock(&kv->pins_mu);
    int slot = -1;
    for (int i = 0; i < KV_PINS_MAX && slot < 0; i++) {
        slot = kv->pins[i].txn == NULL ? i : -1;
    }
    if (slot < 0) {
        pthread_mutex_unlock(&kv->pins_mu);
        return ERR_BUSY;
    }
    out->file = kv->file_id;
    if (mdb_env_get_fd(kv->env, &fd) != 0) {
        rc = ERR_INVALID;
    }
    /* A commit lands between the txn's start and the read at most a few
     * times in a row; two commits are needed to rewrite T's slot. */
    for (int tries = 0; rc == 0 && tries < 8; tries++) {
        rc = kv__mdb_err(mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn));
        if (rc != 0) {
            txn = NULL;
            break;
        }
        rc = read_meta(fd, (uint32_t)kv->page_bytes, mdb_txn_id(txn), out);
        if (rc != -EAGAIN) {
            break;
        }
        mdb_txn_abort(txn);
        txn = NULL;
    }
    if (rc == 0 && out->file.ino == 0) {
        rc = -ENOTSUP; /* the file's identity is unknown */
    }
    if (rc == 0) {
        int64_t rev, compact;
        rc = kv__read_meta(txn, meta, &rev, &compact, &out->applied_index,
                           &out->applied_term);
    }
    if (rc == 0) {
        kv->pins[slot].txn = txn;
        kv->pins[slot].txnid = out->txnid;
        kv->pins[slot].last_pgno = out->last_pgno;
    } else if (txn != NULL) {
        mdb_txn_abort(txn);
    }
    pthread_mutex_unlock(&kv->pins_mu);
    return rc;
}

static void unpin_if(struct kv *kv, const struct kv_ckpt *ck, bool older)
{
    pthread_mutex_lock(&kv->pins_mu);
    if (same_file(&ck->file, &kv->file_id)) {
        for (int i = 0; i < KV_PINS_MAX; i++) {
            struct kv_pin *p = &kv->pins[i];
            if (p->txn != NULL &&
                (older ? p->txnid < ck->txnid : p->txnid == ck->txnid)) {
                mdb_txn_abort(p->txn);
                p->txn = NULL;
            }
        }
    }
    pthread_mutex_unlock(&kv->pins_mu);
}

void kv_ckpt_unpin(struct kv *kv, const struct kv_ckpt *ck)
{
    unpin_if(kv, ck, false);
}

void kv_ckpt_unpin_older(struct kv *kv, const struct kv_ckpt *ck)
{
    unpin_if(kv, ck, true);
}

void kv_ckpt_file(struct kv *kv, struct kv_file_id *out)
{
    pthread_mutex_lock(&kv->pins_mu);
    *out = kv->file_id;
    pthread_mutex_unlock(&kv->pins_mu);
}

void kv_ckpt_unpin_all(struct kv *kv, const struct kv_file_id *file)
{
    struct kv_ckpt ck;
    memset(&ck, 0, sizeof(ck));
    ck.file = *file;
    ck.txnid = UINT64_MAX;
    unpin_if(kv, &ck, true);
}

bool kv_ckpt_current(struct kv *kv, const struct kv_ckpt *ck)
{
    pthread_mutex_lock(&kv->pins_mu);
    bool same = same_file(&ck->file, &kv->file_id);
    pthread_mutex_unlock(&kv->pins_mu);
    return same;
}

uint64_t kv_ckpt_growth(struct kv *kv)
{
    uint64_t pin = newest_pin(kv);
    /* a pin the writer has not counted from yet has freed nothing */
    return pin != 0 && atomic_load(&kv->freed_txnid) == pin
               ? atomic_load(&kv->freed)
               : 0;
}

int kv_ckpt_supported(struct kv *kv)
{
    struct kv_ckpt ck;
    int rc = kv_ckpt_pin(kv, &ck);
    if (rc == 0) {
        kv_ckpt_unpin(kv, &ck);
    }
    return rc;
}

int kv__pin_fresh(struct kv *kv)
{
    struct kv_ckpt ck;
    return kv_ckpt_pin(kv, &ck);
}

int kv_ckpt_describe(const char *path, struct kv_ckpt *out)
{
    uint8_t head[2][KV_CKPT_META_BYTES];
    memset(out, 0, sizeof(*out));
    int rc = kv__file_id(path, &out->file);
    if (rc != 0) {
        return rc;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    /* The page size: LMDB's default is the system's, which is what the
     * store runs with (kv->page_bytes comes from mdb_env_stat). */
    uint32_t psize = (uint32_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < 2 && rc == 0; i++) {
        ssize_t n = pread(fd, head[i], sizeof(head[i]), (off_t)i * psize);
        rc = n == (ssize_t)sizeof(head[i]) ? 0 : n < 0 ? -errno : ERR_CORRUPT;
    }
    if (rc == 0) {
        uint64_t t0 = rd64(head[0] + META_OFF_TXNID);
        uint64_t t1 = rd64(head[1] + META_OFF_TXNID);
        rc = read_meta(fd, psize, t1 > t0 ? t1 : t0, out);
    }
    close(fd);
    return rc;
}

int kv_ckpt_restore(const char *dir, const struct kv_ckpt *ck)
{
    char path[4096];
    struct kv_file_id id;
    struct stat st;
    uint8_t other[KV_CKPT_META_BYTES];
    int n = snprintf(path, sizeof(path), "%s/data.mdb", dir);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return -ENAMETOOLONG;
    }
    int rc = kv__file_id(path, &id);
    if (rc != 0) {
        return rc;
    }
    if (!same_file(&id, &ck->file)) {
        return ERR_NOT_FOUND;
    }
    if (ck->page_bytes < 1024 || ck->txnid == 0 ||
        rd64(ck->meta + META_OFF_TXNID) != ck->txnid ||
        rd64(ck->meta) != (ck->txnid & 1)) {
        return ERR_CORRUPT;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if ((uint64_t)st.st_size <
               (ck->last_pgno + 1) * (uint64_t)ck->page_bytes) {
        rc = ERR_CORRUPT; /* T's pages are not all there */
    }
    /* The other slot: the same tree as T - 1, so LMDB opens T. */
    memcpy(other, ck->meta, sizeof(other));
    wr64(other, (ck->txnid & 1) ^ 1);
    wr64(other + META_OFF_TXNID, ck->txnid - 1);
    for (uint64_t slot = 0; rc == 0 && slot < 2; slot++) {
        const uint8_t *img = slot == (ck->txnid & 1) ? ck->meta : other;
        ssize_t w =
            pwrite(fd, img, KV_CKPT_META_BYTES, (off_t)(slot * ck->page_bytes));
        rc = w == KV_CKPT_META_BYTES ? 0 : w < 0 ? -errno : -EIO;
    }
    if (rc == 0 && fdatasync(fd) != 0) {
        rc = -errno;
    }
    close(fd);
    return rc;
}

/*
 * kv_env.c - the LMDB environment: open, lock, meta records, read handles,
 * sizes, sync, and the whole-file operations (snapshot, install, defrag).
 *
 * Open takes an flock() on <dir>/LOCK before LMDB touches anything, so a
 * second process (or a second open in this one) gets ERR_LOCKED instead of
 * sharing the environment. The map is sized from the quota plus headroom:
 * puts stop at the quota (kv__quota) while deletes, compaction and lease
 * revokes, which also allocate pages, still have room to run.
 *
 * Defrag and install write a repacked copy next to data.mdb (every table
 * re-inserted in order, so pages are full), fsync it, rename it over
 * data.mdb and fsync the directory, then reopen: a crash leaves either the
 * old file or the new one, each whole.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/discard.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"
#include "consensus/kv/kv_int.h"

#define MAP_HEADROOM_MIN ((uint64_t)64 << 20)
#define PATH_MAX_KV      4096

static const char *const dbi_names[KV_DBI__COUNT] = {
    [KV_DBI_META] = "meta", [KV_DBI_REV] = "rev",     [KV_DBI_INDEX] = "index",
    [KV_DBI_LIVE] = "live", [KV_DBI_LEASE] = "lease", [KV_DBI_LKEYS] = "lkeys",
    [KV_DBI_AUX] = "aux",
};

static const unsigned dbi_flags[KV_DBI__COUNT] = {
    [KV_DBI_INDEX] = MDB_DUPSORT | MDB_DUPFIXED,
    [KV_DBI_LKEYS] = MDB_DUPSORT,
};

static int path_join(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) {
        return -ENAMETOOLONG;
    }
    return 0;
}

static int opts_fill(const struct kv_options *in, struct kv_options *o)
{
    if (in != NULL) {
        *o = *in;
    } else {
        memset(o, 0, sizeof(*o));
    }
    if (o->quota_bytes == 0) {
        o->quota_bytes = limits_default(LIMIT_QUOTA_BACKEND_BYTES);
    }
    if (o->max_txn_ops == 0) {
        o->max_txn_ops = (uint32_t)limits_default(LIMIT_TXN_OPS);
    }
    if (o->max_readers == 0) {
        o->max_readers = KV_READERS_DEFAULT;
    }
    if (o->value_bytes_max == 0) {
        o->value_bytes_max = limits_default(LIMIT_VALUE_BYTES);
    }
    if (o->range_result_bytes_max == 0) {
        o->range_result_bytes_max = limits_default(LIMIT_RANGE_RESULT_BYTES);
    }
    if (o->resident_bytes == 0) {
        o->resident_bytes = KV_RESIDENT_DEFAULT;
    }
    if (o->quota_bytes > limits_hard_max(LIMIT_QUOTA_BACKEND_BYTES) ||
        o->max_txn_ops > limits_hard_max(LIMIT_TXN_OPS) ||
        o->value_bytes_max > limits_hard_max(LIMIT_VALUE_BYTES) ||
        o->range_result_bytes_max > limits_hard_max(LIMIT_RANGE_RESULT_BYTES) ||
        o->max_readers > 65536) {
        return ERR_LIMIT;
    }
    if ((unsigned)o->sync > KV_SYNC_NONE) {
        return ERR_INVALID;
    }
    return 0;
}

static unsigned env_flags(const struct kv *kv)
{
    /* MDB_NOTLS: read txns are not tied to threads (handles are pooled and
     * may end on another thread). MDB_NORDAHEAD: reads are point lookups
     * and short cursor walks; readahead only evicts useful pages once the
     * file outgrows RAM. */
    unsigned f = MDB_NOTLS | MDB_NORDAHEAD | (kv->writemap ? MDB_WRITEMAP : 0);
    switch (kv->opts.sync) {
    case KV_SYNC_META_LAZY:
        f |= MDB_NOMETASYNC;
        break;
    case KV_SYNC_FULL:
        break;
    case KV_SYNC_NONE:
        f |= MDB_NOSYNC;
        break;
    }
    return f;
}

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *name, MDB_val *out)
{
    MDB_val k = {strlen(name), (void *)name};
    return mdb_get(txn, dbi, &k, out);
}

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *name, const void *p,
                    size_t n)
{
    MDB_val k = {strlen(name), (void *)name};
    MDB_val v = {n, (void *)p};
    return mdb_put(txn, dbi, &k, &v, 0);
}

int kv__read_meta(MDB_txn *txn, MDB_dbi m, int64_t *rev, int64_t *compact,
                  uint64_t *index, uint64_t *term)
{
    MDB_val v;
    int rc = meta_get(txn, m, "rev", &v);
    if (rc != 0 || v.mv_size != 8) {
        return rc != 0 && rc != MDB_NOTFOUND ? kv__mdb_err(rc) : ERR_CORRUPT;
    }
    *rev = (int64_t)be64_get(v.mv_data);
    rc = meta_get(txn, m, "compact", &v);
    if (rc != 0 || v.mv_size != 8) {
        return rc != 0 && rc != MDB_NOTFOUND ? kv__mdb_err(rc) : ERR_CORRUPT;
    }
    *compact = (int64_t)be64_get(v.mv_data);
    if (*rev < 1 || *compact < 0 || *compact > *rev) {
        return ERR_CORRUPT;
    }
    if (index != NULL) {
        rc = meta_get(txn, m, "applied", &v);
        if (rc != 0 || v.mv_size != 16) {
            return rc != 0 && rc != MDB_NOTFOUND ? kv__mdb_err(rc)
                                                 : ERR_CORRUPT;
        }
        *index = be64_get(v.mv_data);
        *term = be64_get((const uint8_t *)v.mv_data + 8);
    }
    return 0;
}

/* Check magic and version of an environment whose meta dbi is open;
 * *version gets the format (KV_VERSION, or KV_VERSION_1 to migrate). */
static int check_magic(MDB_txn *txn, MDB_dbi meta, uint32_t *version)
{
    MDB_val v;
    int rc = meta_get(txn, meta, "magic", &v);
    if (rc == MDB_NOTFOUND ||
        (rc == 0 && (v.mv_size != KV_MAGIC_LEN ||
                     memcmp(v.mv_data, KV_MAGIC, KV_MAGIC_LEN) != 0))) {
        return ERR_BAD_MAGIC;
    }
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = meta_get(txn, meta, "version", &v);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        return kv__mdb_err(rc);
    }
    if (rc == MDB_NOTFOUND || v.mv_size != 4) {
        return ERR_CORRUPT;
    }
    uint32_t ver = be32_get(v.mv_data);
    if (ver > KV_VERSION) {
        LOGE("kv", "store format %u is newer than this build's (%u)", ver,
             KV_VERSION);
        return ERR_BAD_VERSION;
    }
    if (ver != KV_VERSION && ver != KV_VERSION_1) {
        return ERR_CORRUPT;
    }
    *version = ver;
    return 0;
}

/* Format 1 -> 2: a format-1 live row is the 36-byte header followed by a
 * copy of the value that the rev record at (mod, sub) also holds; cut
 * every row to its header. One pass over the live table in the open's
 * write txn, so a crash leaves the store in format 1 whole, and the next
 * open migrates again. Returns an LMDB code or ERR_CORRUPT. */
static int migrate_1_to_2(MDB_txn *txn, MDB_dbi live, MDB_dbi meta)
{
    MDB_cursor *c;
    MDB_val k, d;
    uint8_t hdr[KV_LIVEHDR_LEN], key[KV_KEY_BYTES_MAX], b[4];
    size_t rows = 0;
    int rc = mdb_cursor_open(txn, live, &c);
    if (rc != 0) {
        return rc;
    }
    rc = mdb_cursor_get(c, &k, &d, MDB_FIRST);
    while (rc == 0) {
        if (d.mv_size < KV_LIVEHDR_LEN || k.mv_size > sizeof(key)) {
            rc = ERR_CORRUPT;
            break;
        }
        if (d.mv_size > KV_LIVEHDR_LEN) {
            /* Copies: the put moves the nodes of the page they are on. */
            memcpy(hdr, d.mv_data, KV_LIVEHDR_LEN);
            memcpy(key, k.mv_data, k.mv_size);
            k.mv_data = key;
            d = (MDB_val){KV_LIVEHDR_LEN, hdr};
            rc = mdb_cursor_put(c, &k, &d, MDB_CURRENT);
            if (rc != 0) {
                break;
            }
        }
        rows++;
        rc = mdb_cursor_get(c, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND) {
        return rc;
    }
    be32_put(b, KV_VERSION);
    rc = meta_put(txn, meta, "version", b, 4);
    if (rc == 0) {
        LOGI("kv", "store format 1 migrated to %u (%zu live keys)", KV_VERSION,
             rows);
    }
    return rc;
}

static int meta_init(MDB_txn *txn, MDB_dbi meta)
{
    uint8_t b[16];
    int rc = meta_put(txn, meta, "magic", KV_MAGIC, KV_MAGIC_LEN);
    be32_put(b, KV_VERSION);
    rc = rc != 0 ? rc : meta_put(txn, meta, "version", b, 4);
    be64_put(b, 1);
    rc = rc != 0 ? rc : meta_put(txn, meta, "rev", b, 8);
    be64_put(b, 0);
    rc = rc != 0 ? rc : meta_put(txn, meta, "compact", b, 8);
    be64_put(b + 8, 0);
    rc = rc != 0 ? rc : meta_put(txn, meta, "applied", b, 16);
    return rc;
}

/* Open (or create) the named databases and check or write the meta. */
static int env_setup(struct kv *kv)
{
    MDB_txn *txn;
    MDB_dbi meta;
    int rc = mdb_txn_begin(kv->env, NULL, 0, &txn);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (rc == MDB_NOTFOUND) {
        MDB_stat st;
        rc = mdb_stat(txn, 1 /* MAIN_DBI */, &st);
        if (rc == 0 && st.ms_entries != 0) {
            mdb_txn_abort(txn);
            return ERR_BAD_MAGIC; /* an LMDB file, not ours */
        }
        rc = rc != 0 ? rc : mdb_dbi_open(txn, "meta", MDB_CREATE, &meta);
        rc = rc != 0 ? rc : meta_init(txn, meta);
    } else if (rc == MDB_INCOMPATIBLE) {
        mdb_txn_abort(txn);
        return ERR_BAD_MAGIC;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return kv__mdb_err(rc);
    }
    uint32_t version = 0;
    int err = check_magic(txn, meta, &version);
    for (int i = 0; err == 0 && i < KV_DBI__COUNT; i++) {
        rc = mdb_dbi_open(txn, dbi_names[i], dbi_flags[i] | MDB_CREATE,
                          &kv->dbi[i]);
        err = rc == MDB_INCOMPATIBLE ? ERR_CORRUPT : kv__mdb_err(rc);
    }
    if (err == 0 && version == KV_VERSION_1) {
        rc = migrate_1_to_2(txn, kv->dbi[KV_DBI_LIVE], kv->dbi[KV_DBI_META]);
        err = rc < 0 ? rc : kv__mdb_err(rc);
    }
    if (err == 0) {
        err = kv__read_meta(txn, kv->dbi[KV_DBI_META], &kv->rev, &kv->compact,
                            &kv->applied_index, &kv->applied_term);
    }
    if (err != 0) {
        mdb_txn_abort(txn);
        return err;
    }
    return kv__mdb_err(mdb_txn_commit(txn));
}

/* The page cache in single pages. Linux caches a file in folios of up to
 * several MiB where they come from large writes or from readahead's
 * window, and a 4 KiB write into a large folio walks every block of it:
 * on ext4 here a random 4 KiB pwrite takes 5-8 us into a file written in
 * 1 MiB pieces against 1.5 us into single pages (BENCHMARKS.md,
 * "data.mdb cached in single pages"). LMDB writes a commit's dirty pages
 * with pwrite, one page or a run of up to 64 at a time, and grows the
 * file the same way, so a growing store ended up in large folios. After
 * a commit that brings LMDB's last page near the end of what is ready,
 * the file is extended a little further and that tail is read in (holes:
 * no I/O) by readahead of the range asked for, which makes single pages.
 * Files written whole elsewhere (a defrag's copy, an installed snapshot, a
 * restored checkpoint) are dropped from the cache and read back the same
 * way (kv_cache_small). */
#define KV_AHEAD_BYTES ((uint64_t)1 << 20)
#define KV_AHEAD_STEP  ((uint64_t)256 << 10)
#define KV_AHEAD_CHUNK ((uint64_t)128 << 10) /* under any readahead cap */
#define KV_RECACHE_MAX ((uint64_t)512 << 20)

static void cache_range(int fd, uint64_t from, uint64_t to)
{
    for (uint64_t o = from; o < to; o += KV_AHEAD_CHUNK) {
        uint64_t n = to - o < KV_AHEAD_CHUNK ? to - o : KV_AHEAD_CHUNK;
        (void)posix_fadvise(fd, (off_t)o, (off_t)n, POSIX_FADV_WILLNEED);
    }
}

void kv_cache_small(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        return;
    }
    /* drops what is clean and not mapped: call it after an fsync */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    /* read back the head of it; the rest comes in a page at a time as it
     * is used (the map reads no more: MDB_NORDAHEAD), and a page LMDB
     * writes whole is never read */
    uint64_t n = (uint64_t)st.st_size;
    cache_range(fd, 0, n < KV_RECACHE_MAX ? n : KV_RECACHE_MAX);
}

void kv__grow_ahead(struct kv *kv, uint64_t last_pgno)
{
    uint64_t used = (last_pgno + 1) * kv->page_bytes;
    uint64_t grew = used > kv->ahead_used ? used - kv->ahead_used : 0;
    /* a sixteenth of the file, at most KV_AHEAD_BYTES (nothing while the
     * file is under 4 MiB), or else twice what the last commit added, at
     * most 16 MiB */
    uint64_t ahead = used / 16 < KV_AHEAD_BYTES ? used / 16 : KV_AHEAD_BYTES;
    if (ahead >= KV_AHEAD_STEP && ahead < 2 * grew) {
        ahead = 2 * grew < 16 * KV_AHEAD_BYTES ? 2 * grew : 16 * KV_AHEAD_BYTES;
    }
    kv->ahead_used = used;
    struct stat st;
    int fd;
    if (ahead < KV_AHEAD_STEP || used + ahead / 2 <= kv->ahead_end ||
        mdb_env_get_fd(kv->env, &fd) != 0 || fstat(fd, &st) != 0) {
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t want = (used + ahead + KV_AHEAD_STEP - 1) & ~(KV_AHEAD_STEP - 1);
    if (kv->ahead_end < size) {
        kv->ahead_end = size; /* what was there is cached as it is */
    }
    if (size < want && ftruncate(fd, (off_t)want) != 0) {
        return; /* LMDB's own writes extend it, as before */
    }
    if (kv->ahead_end < want) {
        cache_range(fd, kv->ahead_end, want);
        kv->ahead_end = want;
    }
}

/* --- MDB_WRITEMAP ----------------------------------------------------------
 *
 * With MDB_WRITEMAP LMDB changes pages in the shared map: no pwrite per
 * dirty page at commit (the largest single cost of a put, BENCHMARKS.md).
 * A page touched past the end of the file, or in a hole of it on a full
 * disk, is a SIGBUS. So the writer keeps data.mdb allocated (fallocate,
 * which also sets its size) ahead of the next page of its txn, by more
 * than one operation can use: checked before each request, each put, and
 * every ROOM_EVERY keys of a long delete or compaction. Running out is
 * then ENOSPC from fallocate, with nothing touched. LMDB sizes the file to
 * the whole map when it opens it; env_open cuts it back to what is in use
 * plus the reserve, so the file is no larger than without writemap but for
 * that reserve. LMDB 0.9 has no call for a write txn's next page; it is
 * read from MDB_txn (mdb.c: parent, child, next_pgno, txnid, env), a
 * layout checked at open, as kv_ckpt.c checks the meta page's. */

#define WM_SLACK ((uint64_t)4 << 20) /* one op's pages besides its value */
#define WM_STEP  ((uint64_t)1 << 20)

/* How close to the end of the allocation the next page may come: one
 * operation's worth (the largest value, its tree pages), and a 256th of
 * the file for the free list LMDB writes at commit (8 bytes a freed page:
 * a 512th of the file at most). The reserve is twice that. */
static uint64_t wm_near(const struct kv *kv, uint64_t next)
{
    return kv->opts.value_bytes_max + WM_SLACK + next / 256;
}

/* Is MDB_txn laid out as expected? Its next page, txnid and env are
 * compared with what LMDB reports for a fresh write txn. And can the file
 * be allocated ahead? */
static bool txn_layout_ok(struct kv *kv)
{
    MDB_txn *txn = NULL;
    MDB_envinfo info;
    const size_t off = 2 * sizeof(void *);
    size_t next;
    size_t txnid;
    MDB_env *env;
    if (mdb_txn_begin(kv->env, NULL, 0, &txn) != 0) {
        return false;
    }
    memcpy(&next, (const char *)txn + off, sizeof(next));
    memcpy(&txnid, (const char *)txn + off + sizeof(size_t), sizeof(txnid));
    memcpy(&env, (const char *)txn + off + 2 * sizeof(size_t), sizeof(env));
    bool ok = mdb_env_info(kv->env, &info) == 0 &&
              next == info.me_last_pgno + 1 && txnid == mdb_txn_id(txn) &&
              env == kv->env;
    mdb_txn_abort(txn);
    kv->next_off = off;
    /* and the file system allocates ahead (no zero-filling emulation: it
     * would write over LMDB's pages); mode 0 on blocks in use is a no-op */
    int fd;
    if (ok && (mdb_env_get_fd(kv->env, &fd) != 0 ||
               fallocate(fd, 0, 0, (off_t)kv->page_bytes) != 0)) {
        LOGW("kv", "data.mdb: the file system cannot allocate ahead");
        ok = false;
    }
    return ok;
}

static uint64_t txn_next_byte(const struct kv *kv, MDB_txn *txn)
{
    size_t next;
    memcpy(&next, (const char *)txn + kv->next_off, sizeof(next));
    return (uint64_t)next * kv->page_bytes;
}

/* Allocate data.mdb up to where next + the reserve needs it (its size
 * included). 0 or a positive errno. */
static int wm_allocate(struct kv *kv, uint64_t next)
{
    uint64_t want = next + 2 * wm_near(kv, next);
    want = (want + WM_STEP - 1) & ~(WM_STEP - 1);
    want = want < kv->map_bytes ? want : kv->map_bytes;
    if (want <= kv->alloc_end) {
        return 0;
    }
    int fd;
    if (mdb_env_get_fd(kv->env, &fd) != 0) {
        return EBADF;
    }
    int rc = fallocate(fd, 0, (off_t)kv->alloc_end,
                       (off_t)(want - kv->alloc_end)) != 0
                 ? errno
                 : 0;
    if (rc != 0) {
        LOGE("kv", "data.mdb: cannot allocate %" PRIu64 " bytes ahead: %s",
             want - kv->alloc_end, strerror(rc));
        return rc;
    }
    kv->alloc_end = want;
    return 0;
}

int kv__room(struct kv *kv, MDB_txn *txn)
{
    uint64_t next = txn_next_byte(kv, txn);
    if (next + wm_near(kv, next) <= kv->alloc_end) {
        return 0;
    }
    return wm_allocate(kv, next);
}

/* At open: LMDB made the file as large as the map. Allocate what is in use
 * and the reserve, and cut the file there. */
static int wm_trim(struct kv *kv)
{
    MDB_envinfo info;
    int fd;
    if (mdb_env_info(kv->env, &info) != 0 ||
        mdb_env_get_fd(kv->env, &fd) != 0) {
        return ERR_FAILED;
    }
    kv->alloc_end = 0;
    int rc =
        wm_allocate(kv, ((uint64_t)info.me_last_pgno + 1) * kv->page_bytes);
    if (rc == 0 && ftruncate(fd, (off_t)kv->alloc_end) != 0) {
        rc = errno;
    }
    return rc != 0 ? -rc : 0;
}

/* Resident pages. The map's pages a writemap commit changes stay mapped
 * in this process, and count in its VmRSS, until it unmaps them; without
 * writemap only the pages read are (they stay too). Every WM_LOOK_EVERY
 * commits the writer reads the process's resident file pages (statm's
 * third field). Past kv_options.resident_bytes, and once the file has
 * grown by half that since the last time, it drops the whole map from its
 * page tables (MADV_DONTNEED). On a shared file map that loses nothing:
 * the data stays in the page cache, a dirty page's dirty bit goes with
 * it, and the next touch of a page is a minor fault (readers on other
 * threads fault theirs in the same way). The growth gate: pages a load
 * appends are rarely touched again, so unmapping them is cheap; a store
 * that no longer grows is written all over (LMDB reuses its free pages),
 * and unmapping it would fault every page back in, a write each (measured
 * in BENCHMARKS.md), so it stays mapped, as much as a pwrite store's reads
 * keep mapped. */
#define WM_LOOK_EVERY 32

static uint64_t resident_file_bytes(void)
{
    char b[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, b, sizeof(b) - 1);
    close(fd);
    unsigned long long size, rss, shared;
    if (n <= 0) {
        return 0;
    }
    b[n] = '\0';
    if (sscanf(b, "%llu %llu %llu", &size, &rss, &shared) != 3) {
        return 0;
    }
    return (uint64_t)shared * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Where LMDB mapped data.mdb (mdb_env_info's address is the one a fixed
 * map asked for, not this one): the map of /proc/self/maps with the
 * file's device and inode, looked up once. */
static int map_find(struct kv *kv)
{
    int fd;
    struct stat st;
    if (mdb_env_get_fd(kv->env, &fd) != 0 || fstat(fd, &st) != 0) {
        return ERR_FAILED;
    }
    FILE *f = fopen("/proc/self/maps", "re");
    if (f == NULL) {
        return ERR_FAILED;
    }
    char line[512];
    while (kv->map_addr == NULL && fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi, off, ino;
        unsigned maj, mnr;
        char perm[8];
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perm, &off,
                   &maj, &mnr, &ino) == 7 &&
            off == 0 && ino == (unsigned long)st.st_ino &&
            makedev(maj, mnr) == st.st_dev) {
            kv->map_addr = (void *)lo;
        }
    }
    fclose(f);
    if (kv->map_addr == NULL) {
        LOGW("kv", "data.mdb: its map is not in /proc/self/maps");
        kv->opts.resident_bytes = UINT64_MAX; /* do not look again */
        return ERR_FAILED;
    }
    return 0;
}

void kv__wm_resident(struct kv *kv)
{
    if (++kv->wm_commits < WM_LOOK_EVERY) {
        return;
    }
    kv->wm_commits = 0;
    uint64_t used = (atomic_load(&kv->last_pgno) + 1) * kv->page_bytes;
    if (used < kv->wm_unmapped_at + kv->opts.resident_bytes / 2 ||
        resident_file_bytes() <= kv->opts.resident_bytes) {
        return;
    }
    kv->wm_unmapped_at = used;
    if (kv->map_addr == NULL && map_find(kv) != 0) {
        return;
    }
    uint64_t len =
        kv->alloc_end < kv->map_bytes ? kv->alloc_end : kv->map_bytes;
    if (madvise(kv->map_addr, (size_t)len, MADV_DONTNEED) != 0) {
        LOGW("kv", "data.mdb: cannot unmap resident pages: %s",
             strerror(errno));
    }
}

bool kv_writemap(const struct kv *kv)
{
    return kv->writemap;
}

static int env_open(struct kv *kv)
{
    MDB_envinfo info;
    MDB_stat st;
    int rc = mdb_env_create(&kv->env);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = mdb_env_set_maxdbs(kv->env, KV_DBI__COUNT + 1);
    rc = rc != 0 ? rc : mdb_env_set_mapsize(kv->env, (size_t)kv->map_bytes);
    rc = rc != 0 ? rc
                 : mdb_env_set_maxreaders(kv->env, kv->opts.max_readers +
                                                       KV_READERS_SPARE);
    rc = rc != 0 ? rc : mdb_env_open(kv->env, kv->dir, env_flags(kv), 0600);
    rc = rc != 0 ? rc : mdb_env_stat(kv->env, &st);
    rc = rc != 0 ? rc : mdb_env_info(kv->env, &info);
    int err = rc == MDB_INVALID ? ERR_BAD_MAGIC : kv__mdb_err(rc);
    if (err == 0 && mdb_env_get_maxkeysize(kv->env) < KV_KEY_BYTES_MAX) {
        err = ERR_LIMIT; /* LMDB built with smaller keys than we promise */
    }
    if (err == 0) {
        char data[PATH_MAX_KV];
        kv->page_bytes = st.ms_psize;
        err = env_setup(kv);
        /* The file's identity, for checkpoints in place (kv_ckpt.c); a
         * file system without birth times leaves it zero: unsupported. */
        pthread_mutex_lock(&kv->pins_mu);
        if (path_join(data, sizeof(data), kv->dir, "data.mdb") != 0 ||
            kv__file_id(data, &kv->file_id) != 0) {
            memset(&kv->file_id, 0, sizeof(kv->file_id));
        }
        pthread_mutex_unlock(&kv->pins_mu);
        struct stat fs;
        kv->ahead_end = stat(data, &fs) == 0 ? (uint64_t)fs.st_size : 0;
        kv->ahead_used = 0;
        /* The pages freed since the newest pin are counted per file: a
         * new file's first pin may have the old one's txnid. */
        atomic_store(&kv->freed_txnid, 0);
        atomic_store(&kv->freed, 0);
        kv->freed_upto = 0;
        kv__note_pages(kv);
        kv->alloc_end = 0;
    }
    if (err == 0 && kv->writemap && !txn_layout_ok(kv)) {
        LOGW("kv", "the store runs without MDB_WRITEMAP (see above, or "
                   "this LMDB's MDB_txn is not laid out as expected)");
        mdb_env_close(kv->env);
        kv->env = NULL;
        kv->writemap = false;
        return env_open(kv);
    }
    if (err == 0 && kv->writemap) {
        err = wm_trim(kv);
    }
    if (err != 0) {
        mdb_env_close(kv->env);
        kv->env = NULL;
    }
    return err;
}

static void pool_drain(struct kv *kv)
{
    pthread_mutex_lock(&kv->pool_mu);
    struct kv_read *rd = kv->pool;
    kv->pool = NULL;
    pthread_mutex_unlock(&kv->pool_mu);
    while (rd != NULL) {
        struct kv_read *next = rd->next;
        for (int i = 0; i < KV_CUR__COUNT; i++) {
            if (rd->cur[i] != NULL) {
                mdb_cursor_close(rd->cur[i]);
            }
        }
        mdb_txn_abort(rd->txn);
        mem_free(rd);
        rd = next;
    }
}

static int lock_dir(struct kv *kv)
{
    char path[PATH_MAX_KV];
    int rc = path_join(path, sizeof(path), kv->dir, "LOCK");
    if (rc != 0) {
        return rc;
    }
    kv->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (kv->lock_fd < 0) {
        return -errno;
    }
    if (flock(kv->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK ? ERR_LOCKED : -errno;
        close(kv->lock_fd);
        kv->lock_fd = -1;
        return rc;
    }
    return 0;
}

static void kv_free(struct kv *kv)
{
    if (kv->env != NULL) {
        pool_drain(kv);
        kv__pins_drop(kv);
        mdb_env_close(kv->env);
    }
    if (kv->lock_fd >= 0) {
        close(kv->lock_fd);
    }
    pthread_mutex_destroy(&kv->pins_mu);
    pthread_mutex_destroy(&kv->pool_mu);
    pthread_mutex_destroy(&kv->state_mu);
    mem_free(kv->dir);
    mem_free(kv);
}

int kv_open(const char *dir, const struct kv_options *opts, struct kv **out)
{
    struct kv_options o;
    int rc = opts_fill(opts, &o);
    if (rc != 0) {
        return rc;
    }
    if (dir == NULL || dir[0] == 0 || strlen(dir) > PATH_MAX_KV - 32) {
        return ERR_INVALID;
    }
    struct kv *kv = mem_calloc(1, sizeof(*kv));
    if (kv == NULL) {
        return -ENOMEM;
    }
    kv->lock_fd = -1;
    kv->opts = o;
    kv->writemap = o.writemap;
    pthread_mutex_init(&kv->pool_mu, NULL);
    pthread_mutex_init(&kv->state_mu, NULL);
    pthread_mutex_init(&kv->pins_mu, NULL);
    uint64_t headroom =
        o.quota_bytes > MAP_HEADROOM_MIN ? o.quota_bytes : MAP_HEADROOM_MIN;
    kv->map_bytes = (o.quota_bytes + headroom + 4095) & ~(uint64_t)4095;
    kv->dir = mem_dup(dir, strlen(dir) + 1);
    if (kv->dir == NULL) {
        kv_free(kv);
        return -ENOMEM;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        rc = -errno;
        kv_free(kv);
        return rc;
    }
    rc = lock_dir(kv);
    rc = rc != 0 ? rc : env_open(kv);
    if (rc != 0) {
        kv_free(kv);
        return rc;
    }
    *out = kv;
    return 0;
}

void kv_close(struct kv *kv)
{
    if (kv == NULL) {
        return;
    }
    ASSERT(atomic_load(&kv->readers_open) == 0);
    ASSERT(!atomic_load(&kv->writer_active));
    kv_free(kv);
}

int64_t kv_rev(const struct kv *kv)
{
    struct kv *m = (struct kv *)kv; /* the mutex is not part of the value */
    pthread_mutex_lock(&m->state_mu);
    int64_t r = kv->rev;
    pthread_mutex_unlock(&m->state_mu);
    return r;
}

int64_t kv_compact_rev(const struct kv *kv)
{
    struct kv *m = (struct kv *)kv;
    pthread_mutex_lock(&m->state_mu);
    int64_t r = kv->compact;
    pthread_mutex_unlock(&m->state_mu);
    return r;
}

void kv_applied(const struct kv *kv, uint64_t *index, uint64_t *term)
{
    struct kv *m = (struct kv *)kv;
    pthread_mutex_lock(&m->state_mu);
    *index = kv->applied_index;
    *term = kv->applied_term;
    pthread_mutex_unlock(&m->state_mu);
}

uint64_t kv__db_bytes(struct kv *kv)
{
    MDB_envinfo info;
    if (mdb_env_info(kv->env, &info) != 0) {
        return 0;
    }
    return ((uint64_t)info.me_last_pgno + 1) * kv->page_bytes;
}

/* Pages on LMDB's freelist: each record of the free DB (dbi 0) is an
 * array of page numbers led by its count (the layout mdb_stat -f reads),
 * keyed by the txnid that freed them. */
int kv__freelist_sum(MDB_txn *txn, uint64_t from, uint64_t *last,
                     uint64_t *pages)
{
    MDB_cursor *c;
    size_t key = (size_t)from;
    MDB_val k = {sizeof(key), &key}, v;
    *pages = 0;
    int rc = mdb_cursor_open(txn, 0, &c);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = mdb_cursor_get(c, &k, &v, from == 0 ? MDB_FIRST : MDB_SET_RANGE);
    while (rc == 0) {
        size_t n;
        if (v.mv_size >= sizeof(n) && k.mv_size == sizeof(key)) {
            memcpy(&n, v.mv_data, sizeof(n));
            memcpy(&key, k.mv_data, sizeof(key));
            *pages += n;
            *last = key;
        }
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : kv__mdb_err(rc);
}

static int free_pages(struct kv *kv, uint64_t *pages)
{
    MDB_txn *txn;
    uint64_t last = 0;
    *pages = 0;
    int rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = kv__freelist_sum(txn, 0, &last, pages);
    mdb_txn_abort(txn);
    return rc;
}

void kv_size(struct kv *kv, uint64_t *db_bytes, uint64_t *in_use_bytes)
{
    uint64_t pages = 0;
    *db_bytes = kv__db_bytes(kv);
    if (free_pages(kv, &pages) != 0) {
        pages = 0;
    }
    uint64_t free_bytes = pages * kv->page_bytes;
    *in_use_bytes = free_bytes < *db_bytes ? *db_bytes - free_bytes : 0;
}

uint64_t kv_db_bytes(struct kv *kv)
{
    return kv__db_bytes(kv);
}

uint64_t kv_entry_count(struct kv *kv)
{
    MDB_txn *txn = NULL;
    uint64_t n = 0;
    if (mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &txn) != 0) {
        return 0;
    }
    for (int i = 0; i < KV_DBI__COUNT; i++) {
        MDB_stat st;
        if (mdb_stat(txn, kv->dbi[i], &st) == 0) {
            n += st.ms_entries;
        }
    }
    mdb_txn_abort(txn);
    return n;
}

int kv_sync(struct kv *kv)
{
    int err = atomic_load(&kv->failed);
    if (err != 0) {
        return ERR_FAILED;
    }
    int rc = mdb_env_sync(kv->env, 1);
    if (rc != 0) {
        kv__set_failed(kv, kv__mdb_err(rc));
        return kv__mdb_err(rc);
    }
    return 0;
}

/* --- read handles --------------------------------------------------------*/

int kv_read_begin(struct kv *kv, struct kv_read **out)
{
    if (atomic_load(&kv->failed) != 0) {
        return ERR_FAILED;
    }
    int n = atomic_fetch_add(&kv->readers_open, 1);
    if (n >= (int)kv->opts.max_readers) {
        atomic_fetch_sub(&kv->readers_open, 1);
        return ERR_BUSY;
    }
    pthread_mutex_lock(&kv->pool_mu);
    struct kv_read *rd = kv->pool;
    if (rd != NULL) {
        kv->pool = rd->next;
    }
    pthread_mutex_unlock(&kv->pool_mu);
    int rc;
    if (rd != NULL) {
        rc = mdb_txn_renew(rd->txn);
    } else {
        rd = mem_calloc(1, sizeof(*rd));
        if (rd == NULL) {
            atomic_fetch_sub(&kv->readers_open, 1);
            return -ENOMEM;
        }
        rd->kv = kv;
        rc = mdb_txn_begin(kv->env, NULL, MDB_RDONLY, &rd->txn);
    }
    int err = kv__mdb_err(rc);
    if (err == 0) {
        for (int i = 0; i < KV_CUR__COUNT; i++) {
            rd->cur_ok[i] = false;
        }
        err = kv__read_meta(rd->txn, kv->dbi[KV_DBI_META], &rd->rev,
                            &rd->compact, NULL, NULL);
    }
    if (err != 0) {
        if (rd->txn != NULL && rc == 0) {
            mdb_txn_reset(rd->txn);
        }
        if (rd->txn != NULL) {
            pthread_mutex_lock(&kv->pool_mu);
            rd->next = kv->pool;
            kv->pool = rd;
            pthread_mutex_unlock(&kv->pool_mu);
        } else {
            mem_free(rd);
        }
        atomic_fetch_sub(&kv->readers_open, 1);
        return err;
    }
    *out = rd;
    return 0;
}

void kv_read_end(struct kv_read *rd)
{
    if (rd == NULL) {
        return;
    }
    struct kv *kv = rd->kv;
    mdb_txn_reset(rd->txn);
    pthread_mutex_lock(&kv->pool_mu);
    rd->next = kv->pool;
    kv->pool = rd;
    pthread_mutex_unlock(&kv->pool_mu);
    int n = atomic_fetch_sub(&kv->readers_open, 1);
    ASSERT(n > 0);
}

int64_t kv_read_rev(const struct kv_read *rd)
{
    return rd->rev;
}

/* --- whole-file operations -----------------------------------------------*/

int kv_snapshot_write(struct kv *kv, int fd)
{
    if (atomic_load(&kv->failed) != 0) {
        return ERR_FAILED;
    }
    return kv__mdb_err(mdb_env_copyfd2(kv->env, fd, MDB_CP_COMPACT));
}

int kv_writeback(struct kv *kv, uint64_t *offset, uint64_t bytes)
{
    MDB_envinfo ei;
    int fd = -1;
    if (atomic_load(&kv->failed) != 0) {
        return ERR_FAILED;
    }
    if (mdb_env_get_fd(kv->env, &fd) != 0 || mdb_env_info(kv->env, &ei) != 0) {
        return ERR_INVALID;
    }
    uint64_t used = ((uint64_t)ei.me_last_pgno + 1) * kv->page_bytes;
    if (*offset >= used) {
        *offset = 0;
    }
    if (sync_file_range(fd, (off64_t)*offset, (off64_t)bytes,
                        SYNC_FILE_RANGE_WRITE) != 0) {
        return -errno;
    }
    *offset += bytes;
    return 0;
}

/* Copy one table of src (read txn rt) into dst (write txn wt) in key
 * order with MDB_APPEND / MDB_APPENDDUP: LMDB then splits a full page at
 * its end, so every page is filled. A table src lacks is skipped. */
static int repack_table(MDB_txn *rt, MDB_txn *wt, int i)
{
    MDB_dbi s, d;
    MDB_cursor *rc_ = NULL, *wc = NULL;
    MDB_val k, v;
    bool dups = (dbi_flags[i] & MDB_DUPSORT) != 0;
    int rc = mdb_dbi_open(rt, dbi_names[i], 0, &s);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    rc = rc != 0
             ? rc
             : mdb_dbi_open(wt, dbi_names[i], dbi_flags[i] | MDB_CREATE, &d);
    rc = rc != 0 ? rc : mdb_cursor_open(rt, s, &rc_);
    rc = rc != 0 ? rc : mdb_cursor_open(wt, d, &wc);
    int mrc = rc != 0 ? rc : mdb_cursor_get(rc_, &k, &v, MDB_FIRST);
    while (mrc == 0) {
        rc = mdb_cursor_put(wc, &k, &v, MDB_APPEND);
        while (rc == 0 && dups &&
               (mrc = mdb_cursor_get(rc_, &k, &v, MDB_NEXT_DUP)) == 0) {
            rc = mdb_cursor_put(wc, &k, &v, MDB_APPENDDUP);
        }
        if (rc != 0 || (mrc != 0 && mrc != MDB_NOTFOUND)) {
            break;
        }
        mrc = mdb_cursor_get(rc_, &k, &v, dups ? MDB_NEXT_NODUP : MDB_NEXT);
    }
    if (rc == 0 && mrc != MDB_NOTFOUND) {
        rc = mrc;
    }
    if (wc != NULL) {
        mdb_cursor_close(wc);
    }
    if (rc_ != NULL) {
        mdb_cursor_close(rc_);
    }
    return rc;
}

/* Write a repacked copy of src into path and make it durable: each table
 * re-inserted in order into a fresh environment (repack_table). LMDB's
 * compacting copy (MDB_CP_COMPACT) only drops free pages and keeps every
 * page as sparse as compaction's deletes left it (a third full after
 * compacting two revisions of three away); this copy is what makes defrag
 * give the space back. One write txn (LMDB spills its dirty pages to the
 * file when they outgrow memory); no lock file. */
static int repack_to(MDB_env *src, uint64_t map_bytes, const char *path)
{
    MDB_env *dst = NULL;
    MDB_txn *rt = NULL, *wt = NULL;
    unlink(path); /* a leftover of a crash */
    int rc = mdb_env_create(&dst);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = mdb_env_set_maxdbs(dst, KV_DBI__COUNT + 1);
    rc = rc != 0 ? rc : mdb_env_set_mapsize(dst, (size_t)map_bytes);
    rc = rc != 0 ? rc
                 : mdb_env_open(dst, path,
                                MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOSYNC, 0600);
    rc = rc != 0 ? rc : mdb_txn_begin(src, NULL, MDB_RDONLY, &rt);
    rc = rc != 0 ? rc : mdb_txn_begin(dst, NULL, 0, &wt);
    for (int i = 0; rc == 0 && i < KV_DBI__COUNT; i++) {
        rc = repack_table(rt, wt, i);
    }
    if (wt != NULL) {
        rc = rc != 0 ? rc : mdb_txn_commit(wt);
        if (rc != 0) {
            mdb_txn_abort(wt);
        }
    }
    if (rt != NULL) {
        mdb_txn_abort(rt);
    }
    rc = rc != 0 ? rc : mdb_env_sync(dst, 1);
    mdb_env_close(dst);
    if (rc != 0) {
        unlink(path);
    }
    return kv__mdb_err(rc);
}

/* Replace data.mdb by tmp (a whole, synced file) and reopen. After the
 * rename, a failure to reopen leaves the store failed. The old file stays
 * open across the rename, so that the rename does not free its blocks: a
 * thread of its own does that, a piece at a time, once the rename is
 * durable (base/discard.h). Freed whole here, a 310 MB file took about
 * 190 ms of the defragmentation's 1.7 s, the store closed, and held every
 * WAL fdatasync as long (BENCHMARKS.md, "A defragmentation's old file"). */
static int swap_in(struct kv *kv, const char *tmp)
{
    char data[PATH_MAX_KV];
    int rc = path_join(data, sizeof(data), kv->dir, "data.mdb");
    if (rc != 0) {
        unlink(tmp);
        return rc;
    }
    pool_drain(kv);
    /* Checkpoints in place pin states of the file (kv_ckpt.c): the new
     * file gets a pin of its own, and only then (copies pin nothing). */
    bool pinned = kv__pins_drop(kv) > 0;
    mdb_env_close(kv->env);
    kv->env = NULL;
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        kv_cache_small(fd); /* tmp is whole and synced */
        close(fd);
    }
    int old_fd;
    rc = discard_rename(tmp, data, kv->dir, &old_fd);
    if (rc != 0) {
        unlink(tmp); /* left by a failed rename */
    }
    if (old_fd >= 0) {
        discard_fd_detached(old_fd);
    }
    int rc2 = env_open(kv);
    if (rc2 != 0) {
        kv__set_failed(kv, rc2);
        return rc2;
    }
    if (rc == 0 && pinned && kv->file_id.ino != 0) {
        /* Before any write: the state the new file was synced at stays
         * whole until the node's next checkpoint (kv_defrag_hook). */
        (void)kv__pin_fresh(kv);
    }
    return rc;
}

static int whole_op_check(struct kv *kv)
{
    if (atomic_load(&kv->failed) != 0) {
        return ERR_FAILED;
    }
    if (atomic_load(&kv->readers_open) != 0 ||
        atomic_load(&kv->writer_active)) {
        return ERR_BUSY;
    }
    return 0;
}

int kv_defrag_hook(struct kv *kv, kv_defrag_cb cb, void *ctx)
{
    char tmp[PATH_MAX_KV];
    int rc = whole_op_check(kv);
    rc = rc != 0 ? rc : path_join(tmp, sizeof(tmp), kv->dir, "data.mdb.defrag");
    rc = rc != 0 ? rc : repack_to(kv->env, kv->map_bytes, tmp);
    if (rc != 0) {
        return rc;
    }
    if (cb != NULL) {
        struct kv_ckpt fresh;
        rc = kv_ckpt_describe(tmp, &fresh);
        /* the copy holds what the store holds now: no writer runs */
        kv_applied(kv, &fresh.applied_index, &fresh.applied_term);
        rc = rc != 0 ? rc : cb(ctx, &fresh);
        if (rc != 0) {
            unlink(tmp);
            return rc;
        }
    }
    return swap_in(kv, tmp);
}

int kv_defrag(struct kv *kv)
{
    return kv_defrag_hook(kv, NULL, NULL);
}

/* Open path read-only without a lock file and check it is one of ours. */
static int snapshot_open(const char *path, MDB_env **out)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    struct stat st;
    if (stat(path, &st) != 0) {
        return -errno;
    }
    if (!S_ISREG(st.st_mode)) {
        return ERR_BAD_MAGIC;
    }
    int rc = mdb_env_create(&env);
    if (rc != 0) {
        return kv__mdb_err(rc);
    }
    rc = mdb_env_set_maxdbs(env, KV_DBI__COUNT + 1);
    rc = rc != 0 ? rc
                 : mdb_env_open(env, path,
                                MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK, 0600);
    int err = rc == MDB_INVALID ? ERR_BAD_MAGIC : kv__mdb_err(rc);
    if (err == 0) {
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
        err = kv__mdb_err(rc);
    }
    if (err == 0) {
        rc = mdb_dbi_open(txn, "meta", 0, &meta);
        err = rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE ? ERR_BAD_MAGIC
                                                           : kv__mdb_err(rc);
        uint32_t version; /* format 1 too: the open after install migrates */
        err = err != 0 ? err : check_magic(txn, meta, &version);
        int64_t rev, compact;
        uint64_t index, term;
        err = err != 0
                  ? err
                  : kv__read_meta(txn, meta, &rev, &compact, &index, &term);
        mdb_txn_abort(txn);
    }
    if (err != 0) {
        mdb_env_close(env);
        return err;
    }
    *out = env;
    return 0;
}

int kv_snapshot_install(struct kv *kv, const char *path)
{
    char tmp[PATH_MAX_KV];
    MDB_env *src = NULL;
    int rc = whole_op_check(kv);
    rc =
        rc != 0 ? rc : path_join(tmp, sizeof(tmp), kv->dir, "data.mdb.install");
    rc = rc != 0 ? rc : snapshot_open(path, &src);
    if (rc != 0) {
        return rc;
    }
    rc = repack_to(src, kv->map_bytes, tmp);
    mdb_env_close(src);
    if (rc != 0) {
        return rc;
    }
    return swap_in(kv, tmp);
}

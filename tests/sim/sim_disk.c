/*
 * sim_disk.c - the simulated disk behind consensus/log's VFS (contract and
 * crash model in sim_disk.h).
 *
 * Files are inodes with reference counts (directory entries, open handles,
 * journal records). A file's bytes are kept up to the highest byte ever
 * written (len); bytes from len to size read as zeros, so a preallocated
 * 64 KiB segment costs only what was written into it. Invariant: len <=
 * size.
 *
 * The journal is an undo log: each change records what it replaced, so a
 * crash undoes a suffix of the journal newest first, which restores
 * exactly the state after the kept prefix.
 */
#include "tests/sim/sim_disk.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"

struct sd_file {
    uint8_t *data;
    size_t len;
    size_t cap;
    uint64_t size;
    uint32_t refs;
};

struct sd_ent {
    char name[SIM_DISK_NAME];
    struct sd_file *f;
};

struct sd_dir {
    bool exists;
    bool locked;
    char path[SIM_DISK_NAME];
    struct sd_ent *ents;
    size_t n;
    size_t cap;
};

enum { H_FREE = 0, H_DIR = 1, H_FILE = 2 };

struct sd_handle {
    uint8_t kind;
    bool rw;
    bool locked; /* this dir handle holds the lock */
    uint32_t dir;
    struct sd_file *f;
};

enum {
    U_WRITE = 1,
    U_SIZE = 2,
    U_LINK = 3,
    U_UNLINK = 4,
    U_RENAME = 5,
    U_MKDIR = 6,
};

/* One journaled change and what it replaced. */
struct sd_undo {
    uint8_t kind;
    bool covered; /* a later sync of its file or directory */
    uint32_t dir;
    struct sd_file *f;  /* referenced */
    struct sd_file *f2; /* rename: the file it replaced (referenced) */
    uint64_t off;       /* write */
    uint64_t len;       /* write */
    uint64_t old_size;
    uint64_t new_size; /* size */
    size_t old_len;    /* bytes materialised before */
    uint8_t *old;      /* write: [off, off+len); size: [new_size, old_len) */
    char name[SIM_DISK_NAME];
    char name2[SIM_DISK_NAME];
};

struct sim_disk {
    struct log_vfs vfs;
    struct prng rng;
    struct sd_dir dirs[SIM_DISK_DIRS];
    struct sd_handle h[SIM_DISK_HANDLES];
    struct sd_undo *u;
    size_t un;
    size_t ucap;
    uint64_t base; /* journal position of u[0] */
};

/* ---------------------------------------------------------------- inodes */

static struct sd_file *file_new(void)
{
    struct sd_file *f = mem_calloc(1, sizeof(*f));
    ASSERT(f != NULL);
    return f;
}

static void file_ref(struct sd_file *f)
{
    if (f != NULL) {
        f->refs++;
    }
}

static void file_unref(struct sd_file *f)
{
    if (f == NULL) {
        return;
    }
    ASSERT(f->refs > 0);
    if (--f->refs == 0) {
        mem_free(f->data);
        mem_free(f);
    }
}

static void file_reserve(struct sd_file *f, size_t need)
{
    if (need <= f->cap) {
        return;
    }
    size_t cap = f->cap < 4096 ? 4096 : f->cap;
    while (cap < need) {
        cap *= 2;
    }
    uint8_t *p = mem_realloc(f->data, cap);
    ASSERT(p != NULL);
    f->data = p;
    f->cap = cap;
}

/* Materialise bytes up to end (zeros). */
static void file_extend(struct sd_file *f, size_t end)
{
    if (end <= f->len) {
        return;
    }
    file_reserve(f, end);
    memset(f->data + f->len, 0, end - f->len);
    f->len = end;
}

/* ----------------------------------------------------------- directories */

static struct sd_ent *ent_find(struct sd_dir *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++) {
        if (strcmp(d->ents[i].name, name) == 0) {
            return &d->ents[i];
        }
    }
    return NULL;
}

/* Link f under name (which must be free); takes a reference. */
static void ent_add(struct sd_dir *d, const char *name, struct sd_file *f)
{
    ASSERT(ent_find(d, name) == NULL);
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        struct sd_ent *v = mem_realloc(d->ents, cap * sizeof(*v));
        ASSERT(v != NULL);
        d->ents = v;
        d->cap = cap;
    }
    struct sd_ent *e = &d->ents[d->n++];
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->f = f;
    file_ref(f);
}

/* Unlink name; drops the entry's reference. */
static void ent_del(struct sd_dir *d, const char *name)
{
    struct sd_ent *e = ent_find(d, name);
    ASSERT(e != NULL);
    struct sd_file *f = e->f;
    *e = d->ents[--d->n];
    file_unref(f);
}

/* --------------------------------------------------------------- journal */

static struct sd_undo *undo_push(struct sim_disk *d, uint8_t kind)
{
    if (d->un == d->ucap) {
        size_t cap = d->ucap ? d->ucap * 2 : 64;
        struct sd_undo *v = mem_realloc(d->u, cap * sizeof(*v));
        ASSERT(v != NULL);
        d->u = v;
        d->ucap = cap;
    }
    struct sd_undo *u = &d->u[d->un++];
    memset(u, 0, sizeof(*u));
    u->kind = kind;
    return u;
}

static void undo_release(struct sd_undo *u)
{
    file_unref(u->f);
    file_unref(u->f2);
    mem_free(u->old);
    memset(u, 0, sizeof(*u));
}

/* Undo u; for a write, keep the first keep bytes as written and, when
 * garbage, fill the rest with random bytes instead of the old ones. */
static void undo_apply(struct sim_disk *d, struct sd_undo *u, uint64_t keep,
                       bool garbage)
{
    struct sd_dir *dir = &d->dirs[u->dir];
    struct sd_file *f = u->f;
    switch (u->kind) {
    case U_WRITE: {
        ASSERT(keep <= u->len);
        size_t lo = (size_t)(u->off + keep);
        size_t hi = (size_t)(u->off + u->len);
        ASSERT(hi <= f->len);
        if (garbage) {
            for (size_t i = lo; i < hi; i++) {
                f->data[i] = (uint8_t)prng_next(&d->rng);
            }
            break; /* the size the write gave stays */
        }
        memcpy(f->data + lo, u->old + keep, hi - lo);
        uint64_t size = u->off + keep;
        f->size = size > u->old_size ? size : u->old_size;
        size_t len = u->old_len > lo ? u->old_len : lo;
        if (len < f->len) {
            f->len = len;
        }
        if (f->len > f->size) {
            f->len = (size_t)f->size;
        }
        break;
    }
    case U_SIZE:
        if (u->old != NULL) {
            file_reserve(f, u->old_len);
            memcpy(f->data + u->new_size, u->old,
                   u->old_len - (size_t)u->new_size);
            f->len = u->old_len;
        }
        f->size = u->old_size;
        if (f->len > f->size) {
            f->len = (size_t)f->size;
        }
        break;
    case U_LINK:
        ent_del(dir, u->name);
        break;
    case U_UNLINK:
        ent_add(dir, u->name, f);
        break;
    case U_RENAME:
        /* Now f is at name2 (and f2, if any, was replaced there). */
        ent_del(dir, u->name2);
        ent_add(dir, u->name, f);
        if (u->f2 != NULL) {
            ent_add(dir, u->name2, u->f2);
        }
        break;
    case U_MKDIR:
        ASSERT(dir->n == 0 && !dir->locked);
        mem_free(dir->ents);
        memset(dir, 0, sizeof(*dir));
        break;
    default:
        UNREACHABLE();
    }
}

/* ------------------------------------------------------------ the VFS */

static struct sd_handle *handle_get(struct sim_disk *d, int fd, uint8_t kind)
{
    if (fd < 0 || fd >= SIM_DISK_HANDLES || d->h[fd].kind != kind) {
        return NULL;
    }
    return &d->h[fd];
}

static int handle_new(struct sim_disk *d, uint8_t kind, int *out)
{
    for (int i = 0; i < SIM_DISK_HANDLES; i++) {
        if (d->h[i].kind == H_FREE) {
            memset(&d->h[i], 0, sizeof(d->h[i]));
            d->h[i].kind = kind;
            *out = i;
            return 0;
        }
    }
    return -EMFILE;
}

static int sd_dir_open(void *ctx, const char *path, bool create, int *out)
{
    struct sim_disk *d = ctx;
    int free_slot = -1;
    int found = -1;
    if (strlen(path) >= SIM_DISK_NAME) {
        return -ENAMETOOLONG;
    }
    for (int i = 0; i < SIM_DISK_DIRS; i++) {
        if (d->dirs[i].exists && strcmp(d->dirs[i].path, path) == 0) {
            found = i;
        } else if (!d->dirs[i].exists && free_slot < 0) {
            free_slot = i;
        }
    }
    if (found < 0 && !create) {
        return -ENOENT;
    }
    if (found < 0) {
        if (free_slot < 0) {
            return -ENOSPC;
        }
        found = free_slot;
        struct sd_dir *dir = &d->dirs[found];
        memset(dir, 0, sizeof(*dir));
        dir->exists = true;
        snprintf(dir->path, sizeof(dir->path), "%s", path);
        struct sd_undo *u = undo_push(d, U_MKDIR);
        u->dir = (uint32_t)found;
        u->covered = true; /* the POSIX table fsyncs the parent */
    }
    int rc = handle_new(d, H_DIR, out);
    if (rc == 0) {
        d->h[*out].dir = (uint32_t)found;
    }
    return rc;
}

static void sd_close(void *ctx, int fd)
{
    struct sim_disk *d = ctx;
    ASSERT(fd >= 0 && fd < SIM_DISK_HANDLES && d->h[fd].kind != H_FREE);
    struct sd_handle *h = &d->h[fd];
    if (h->kind == H_DIR && h->locked) {
        d->dirs[h->dir].locked = false;
    }
    if (h->kind == H_FILE) {
        file_unref(h->f);
    }
    memset(h, 0, sizeof(*h));
}

static int sd_dir_lock(void *ctx, int fd)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_DIR);
    if (h == NULL) {
        return -EBADF;
    }
    if (d->dirs[h->dir].locked) {
        return ERR_LOCKED;
    }
    d->dirs[h->dir].locked = true;
    h->locked = true;
    return 0;
}

static int sd_dir_sync(void *ctx, int fd)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_DIR);
    if (h == NULL) {
        return -EBADF;
    }
    for (size_t i = 0; i < d->un; i++) {
        struct sd_undo *u = &d->u[i];
        if (u->dir == h->dir &&
            (u->kind == U_LINK || u->kind == U_UNLINK || u->kind == U_RENAME)) {
            u->covered = true;
        }
    }
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int sd_dir_list(void *ctx, int fd, log_vfs_list_cb cb, void *arg)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_DIR);
    if (h == NULL) {
        return -EBADF;
    }
    struct sd_dir *dir = &d->dirs[h->dir];
    size_t n = dir->n;
    if (n == 0) {
        return 0;
    }
    /* A copy, sorted (the order is part of the run): cb may unlink. */
    char(*names)[SIM_DISK_NAME] = mem_alloc(n * sizeof(*names));
    const char **order = mem_alloc(n * sizeof(*order));
    ASSERT(names != NULL && order != NULL);
    for (size_t i = 0; i < n; i++) {
        memcpy(names[i], dir->ents[i].name, SIM_DISK_NAME);
        order[i] = names[i];
    }
    qsort(order, n, sizeof(*order), name_cmp);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = cb(arg, order[i]);
    }
    mem_free(order);
    mem_free(names);
    return rc;
}

static int sd_exists(void *ctx, int fd, const char *name)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_DIR);
    if (h == NULL) {
        return -EBADF;
    }
    return ent_find(&d->dirs[h->dir], name) != NULL ? 0 : -ENOENT;
}

static int sd_unlink(void *ctx, int fd, const char *name)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_DIR);
    if (h == NULL) {
        return -EBADF;
    }
    struct sd_dir *dir = &d->dirs[h->dir];
    struct sd_ent *e = ent_find(dir, name);
    if (e == NULL) {
        return -ENOENT;
    }
    struct sd_undo *u = undo_push(d, U_UNLINK);
    u->dir = h->dir;
    u->f = e->f;
    file_ref(u->f);
    snprintf(u->name, sizeof(u->name), "%s", name);
    ent_del(dir, name);
    return 0;
}

static int sd_rename(void *ctx, int fd, const char *from, const char *to)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_DIR);
    if (h == NULL) {
        return -EBADF;
    }
    if (strlen(to) >= SIM_DISK_NAME) {
        return -ENAMETOOLONG;
    }
    struct sd_dir *dir = &d->dirs[h->dir];
    struct sd_ent *e = ent_find(dir, from);
    if (e == NULL) {
        return -ENOENT;
    }
    if (strcmp(from, to) == 0) {
        return 0;
    }
    struct sd_undo *u = undo_push(d, U_RENAME);
    u->dir = h->dir;
    u->f = e->f;
    file_ref(u->f);
    snprintf(u->name, sizeof(u->name), "%s", from);
    snprintf(u->name2, sizeof(u->name2), "%s", to);
    struct sd_ent *old = ent_find(dir, to);
    if (old != NULL) {
        u->f2 = old->f;
        file_ref(u->f2);
        ent_del(dir, to);
    }
    ent_add(dir, to, u->f);
    ent_del(dir, from);
    return 0;
}

static int sd_open(void *ctx, int fd, const char *name, unsigned flags,
                   int *out)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_DIR);
    if (h == NULL) {
        return -EBADF;
    }
    if (strlen(name) >= SIM_DISK_NAME) {
        return -ENAMETOOLONG;
    }
    uint32_t di = h->dir;
    struct sd_dir *dir = &d->dirs[di];
    struct sd_ent *e = ent_find(dir, name);
    if ((flags & LOG_VFS_CREATE) && e != NULL) {
        return -EEXIST;
    }
    if (!(flags & LOG_VFS_CREATE) && e == NULL) {
        return -ENOENT;
    }
    int rc = handle_new(d, H_FILE, out);
    if (rc < 0) {
        return rc;
    }
    struct sd_file *f;
    if (e == NULL) {
        f = file_new();
        ent_add(dir, name, f);
        struct sd_undo *u = undo_push(d, U_LINK);
        u->dir = di;
        u->f = f;
        file_ref(f);
        snprintf(u->name, sizeof(u->name), "%s", name);
    } else {
        f = e->f;
    }
    d->h[*out].f = f;
    d->h[*out].rw = (flags & LOG_VFS_RDWR) != 0;
    file_ref(f);
    return 0;
}

static int sd_size(void *ctx, int fd, uint64_t *size)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_FILE);
    if (h == NULL) {
        return -EBADF;
    }
    *size = h->f->size;
    return 0;
}

static int sd_read(void *ctx, int fd, const struct iovec *iov, int iovcnt,
                   uint64_t off)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_FILE);
    if (h == NULL) {
        return -EBADF;
    }
    const struct sd_file *f = h->f;
    for (int k = 0; k < iovcnt; k++) {
        uint8_t *p = iov[k].iov_base;
        size_t n = iov[k].iov_len;
        if (off > f->size || n > f->size - off) {
            return ERR_TRUNCATED;
        }
        size_t have = off < f->len ? f->len - (size_t)off : 0;
        size_t c = have < n ? have : n;
        if (c > 0) {
            memcpy(p, f->data + off, c);
        }
        memset(p + c, 0, n - c);
        off += n;
    }
    return 0;
}

static int sd_write(void *ctx, int fd, const void *p, size_t len, uint64_t off)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_FILE);
    if (h == NULL || !h->rw) {
        return -EBADF;
    }
    if (len == 0) {
        return 0;
    }
    struct sd_file *f = h->f;
    struct sd_undo *u = undo_push(d, U_WRITE);
    u->f = f;
    file_ref(f);
    u->off = off;
    u->len = len;
    u->old_size = f->size;
    u->old_len = f->len;
    u->old = mem_alloc(len);
    ASSERT(u->old != NULL);
    size_t end = (size_t)off + len;
    file_extend(f, end);
    memcpy(u->old, f->data + off, len);
    memcpy(f->data + off, p, len);
    if (end > f->size) {
        f->size = end;
    }
    return 0;
}

static int sd_sync(void *ctx, int fd)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_FILE);
    if (h == NULL) {
        return -EBADF;
    }
    for (size_t i = 0; i < d->un; i++) {
        struct sd_undo *u = &d->u[i];
        if (u->f == h->f && (u->kind == U_WRITE || u->kind == U_SIZE)) {
            u->covered = true;
        }
    }
    return 0;
}

static int set_size(struct sim_disk *d, struct sd_file *f, uint64_t size)
{
    if (size == f->size) {
        return 0;
    }
    struct sd_undo *u = undo_push(d, U_SIZE);
    u->f = f;
    file_ref(f);
    u->old_size = f->size;
    u->new_size = size;
    u->old_len = f->len;
    if (size < f->len) {
        u->old = mem_dup(f->data + size, f->len - (size_t)size);
        ASSERT(u->old != NULL);
        f->len = (size_t)size;
    }
    f->size = size;
    return 0;
}

static int sd_truncate(void *ctx, int fd, uint64_t size)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_FILE);
    if (h == NULL || !h->rw) {
        return -EBADF;
    }
    return set_size(d, h->f, size);
}

static int sd_allocate(void *ctx, int fd, uint64_t size)
{
    struct sim_disk *d = ctx;
    struct sd_handle *h = handle_get(d, fd, H_FILE);
    if (h == NULL || !h->rw) {
        return -EBADF;
    }
    return size > h->f->size ? set_size(d, h->f, size) : 0;
}

static int sd_random(void *ctx, void *p, size_t len)
{
    struct sim_disk *d = ctx;
    uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        b[i] = (uint8_t)prng_next(&d->rng);
    }
    return 0;
}

/* ------------------------------------------------------------ the disk */

struct sim_disk *sim_disk_new(uint64_t seed)
{
    struct sim_disk *d = mem_calloc(1, sizeof(*d));
    ASSERT(d != NULL);
    prng_seed(&d->rng, seed);
    d->vfs = (struct log_vfs){
        .ctx = d,
        .dir_open = sd_dir_open,
        .dir_close = sd_close,
        .dir_lock = sd_dir_lock,
        .dir_sync = sd_dir_sync,
        .dir_list = sd_dir_list,
        .exists = sd_exists,
        .unlink = sd_unlink,
        .rename = sd_rename,
        .open = sd_open,
        .close = sd_close,
        .size = sd_size,
        .read = sd_read,
        .write = sd_write,
        .sync = sd_sync,
        .truncate = sd_truncate,
        .allocate = sd_allocate,
        .random = sd_random,
    };
    return d;
}

static void journal_drop(struct sim_disk *d, size_t n)
{
    ASSERT(n <= d->un);
    for (size_t i = 0; i < n; i++) {
        undo_release(&d->u[i]);
    }
    memmove(d->u, d->u + n, (d->un - n) * sizeof(*d->u));
    d->un -= n;
    d->base += n;
}

void sim_disk_free(struct sim_disk *d)
{
    if (d == NULL) {
        return;
    }
    for (int i = 0; i < SIM_DISK_HANDLES; i++) {
        if (d->h[i].kind != H_FREE) {
            sd_close(d, i);
        }
    }
    journal_drop(d, d->un);
    for (int i = 0; i < SIM_DISK_DIRS; i++) {
        struct sd_dir *dir = &d->dirs[i];
        while (dir->n > 0) {
            ent_del(dir, dir->ents[dir->n - 1].name);
        }
        mem_free(dir->ents);
    }
    mem_free(d->u);
    mem_free(d);
}

const struct log_vfs *sim_disk_vfs(struct sim_disk *d)
{
    return &d->vfs;
}

uint64_t sim_disk_mark(const struct sim_disk *d)
{
    return d->base + d->un;
}

uint64_t sim_disk_unsettled(const struct sim_disk *d)
{
    return d->un;
}

static const char *kind_str(uint8_t k)
{
    switch (k) {
    case U_WRITE:
        return "write";
    case U_SIZE:
        return "truncate";
    case U_LINK:
        return "create";
    case U_RENAME:
        return "rename";
    default:
        return "change";
    }
}

uint64_t sim_disk_settle(struct sim_disk *d, uint64_t mark, char *what,
                         size_t what_len)
{
    ASSERT(mark <= d->base + d->un);
    if (mark <= d->base) {
        return 0;
    }
    size_t n = (size_t)(mark - d->base);
    ASSERT(n <= d->un);
    uint64_t uncovered = 0;
    for (size_t i = 0; i < n; i++) {
        const struct sd_undo *u = &d->u[i];
        /* A lost unlink or preallocation is harmless; anything else the
         * log relies on must have been synced before its call returned. */
        bool must = u->kind == U_WRITE || u->kind == U_LINK ||
                    u->kind == U_RENAME ||
                    (u->kind == U_SIZE && u->new_size < u->old_size);
        if (must && !u->covered) {
            if (uncovered == 0 && what != NULL) {
                snprintf(what, what_len, "%s of %s%s (%lu bytes at %lu)",
                         kind_str(u->kind), u->name[0] ? u->name : "a file",
                         u->name2[0] ? " (renamed)" : "", (unsigned long)u->len,
                         (unsigned long)u->off);
            }
            uncovered++;
        }
    }
    journal_drop(d, n);
    return uncovered;
}

void sim_disk_crash(struct sim_disk *d, struct prng *rng, uint32_t tear_pct,
                    struct sim_disk_crash *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < SIM_DISK_HANDLES; i++) {
        ASSERT(d->h[i].kind == H_FREE); /* the log was closed first */
    }
    size_t n = d->un;
    size_t keep = (size_t)prng_below(rng, (uint64_t)n + 1);
    out->ops = n;
    out->kept = keep;
    for (size_t i = n; i > keep + 1; i--) {
        undo_apply(d, &d->u[i - 1], 0, false);
    }
    if (keep < n) {
        struct sd_undo *u = &d->u[keep];
        if (u->kind == U_WRITE && u->len > 1 &&
            prng_chance(rng, tear_pct, 100)) {
            uint64_t part = prng_below(rng, u->len);
            bool garbage = prng_chance(rng, 1, 2);
            undo_apply(d, u, part, garbage);
            out->torn = true;
            out->garbage = garbage;
            out->torn_len = u->len;
            out->torn_kept = part;
        } else {
            undo_apply(d, u, 0, false);
        }
    }
    journal_drop(d, n);
    for (int i = 0; i < SIM_DISK_DIRS; i++) {
        d->dirs[i].locked = false;
    }
}

/*
 * log_io.c - the POSIX table of log_vfs.h (full reads and writes that
 * survive short transfers and EINTR, durable mkdir, directory fsync, flock)
 * and the small helpers the WAL and snapshot code share. No retry on a
 * failed fsync: after one, the page cache may already have dropped the
 * dirty data (see log.h, Errors).
 */
#include "consensus/log/log_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/err.h"

/* ------------------------------------------------------------ directories */

static int px_fsync(int fd)
{
    ASSERT(fd >= 0);
    if (fsync(fd) < 0) {
        return -errno;
    }
    return 0;
}

/* mkdir path if missing (one level) and fsync its parent when it was
 * created, so the new entry is durable. 0 or -errno. */
static int px_mkdir_durable(const char *path)
{
    char parent[PATH_MAX];
    size_t len = strlen(path);
    const char *slash;
    int fd;
    int rc;

    if (len == 0 || len >= sizeof(parent)) {
        return -ENAMETOOLONG;
    }
    if (mkdir(path, 0700) < 0) {
        return errno == EEXIST ? 0 : -errno;
    }
    /* Created: make its directory entry durable. */
    slash = strrchr(path, '/');
    if (slash == NULL) {
        memcpy(parent, ".", 2);
    } else if (slash == path) {
        memcpy(parent, "/", 2);
    } else {
        memcpy(parent, path, (size_t)(slash - path));
        parent[slash - path] = '\0';
    }
    fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    rc = px_fsync(fd);
    close(fd);
    return rc;
}

static int px_dir_open(void *ctx, const char *path, bool create, int *dir)
{
    (void)ctx;
    if (create) {
        int rc = px_mkdir_durable(path);
        if (rc < 0) {
            return rc;
        }
    }
    *dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return *dir < 0 ? -errno : 0;
}

static void px_close(void *ctx, int fd)
{
    (void)ctx;
    if (fd >= 0) {
        close(fd);
    }
}

static int px_dir_lock(void *ctx, int dir)
{
    (void)ctx;
    if (flock(dir, LOCK_EX | LOCK_NB) < 0) {
        return errno == EWOULDBLOCK ? ERR_LOCKED : -errno;
    }
    return 0;
}

static int px_dir_sync(void *ctx, int dir)
{
    (void)ctx;
    return px_fsync(dir);
}

static int px_dir_list(void *ctx, int dir, log_vfs_list_cb cb, void *arg)
{
    int fd = dup(dir);
    DIR *d;
    struct dirent *de;
    int rc = 0;
    (void)ctx;
    if (fd < 0) {
        return -errno;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        rc = -errno;
        close(fd);
        return rc;
    }
    rewinddir(d);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            rc = cb(arg, de->d_name);
        }
    }
    closedir(d);
    return rc;
}

static int px_exists(void *ctx, int dir, const char *name)
{
    struct stat st;
    (void)ctx;
    return fstatat(dir, name, &st, 0) == 0 ? 0 : -errno;
}

static int px_unlink(void *ctx, int dir, const char *name)
{
    (void)ctx;
    return unlinkat(dir, name, 0) == 0 ? 0 : -errno;
}

static int px_rename(void *ctx, int dir, const char *from, const char *to)
{
    (void)ctx;
    return renameat(dir, from, dir, to) == 0 ? 0 : -errno;
}

/* ------------------------------------------------------------------ files */

static int px_open(void *ctx, int dir, const char *name, unsigned flags,
                   int *fd)
{
    int f = O_CLOEXEC;
    (void)ctx;
    f |= (flags & LOG_VFS_RDWR) ? O_RDWR : O_RDONLY;
    if (flags & LOG_VFS_CREATE) {
        ASSERT(flags & LOG_VFS_RDWR);
        f |= O_CREAT | O_EXCL;
    }
    *fd = openat(dir, name, f, 0600);
    return *fd < 0 ? -errno : 0;
}

static int px_size(void *ctx, int fd, uint64_t *size)
{
    struct stat st;
    (void)ctx;
    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    *size = (uint64_t)st.st_size;
    return 0;
}

static int pread_full(int fd, uint8_t *b, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, b + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return ERR_TRUNCATED;
        }
        done += (size_t)n;
    }
    return 0;
}

static int px_read(void *ctx, int fd, const struct iovec *iov, int iovcnt,
                   uint64_t off)
{
    size_t want = 0;
    size_t got;
    ssize_t n;
    (void)ctx;
    ASSERT(fd >= 0 && iovcnt > 0);
    for (int k = 0; k < iovcnt; k++) {
        want += iov[k].iov_len;
    }
    do {
        n = preadv(fd, iov, iovcnt, (off_t)off);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -errno;
    }
    got = (size_t)n;
    if (got >= want) {
        return 0;
    }
    /* Short read (rare): finish each buffer with plain preads. */
    for (int k = 0; k < iovcnt; k++) {
        size_t len = iov[k].iov_len;
        int rc;
        if (got >= len) {
            got -= len;
            off += len;
            continue;
        }
        rc = pread_full(fd, (uint8_t *)iov[k].iov_base + got, len - got,
                        off + got);
        if (rc < 0) {
            return rc;
        }
        off += len;
        got = 0;
    }
    return 0;
}

static int px_write(void *ctx, int fd, const void *p, size_t len, uint64_t off)
{
    const uint8_t *b = p;
    size_t done = 0;
    (void)ctx;
    ASSERT(fd >= 0);
    /* Each pass writes at least one byte or returns: bounded by len. */
    while (done < len) {
        ssize_t n = pwrite(fd, b + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        if (n == 0) {
            return -EIO;
        }
        done += (size_t)n;
    }
    ASSERT(done == len);
    return 0;
}

static int px_sync(void *ctx, int fd)
{
    (void)ctx;
    return fdatasync(fd) == 0 ? 0 : -errno;
}

static int px_truncate(void *ctx, int fd, uint64_t size)
{
    (void)ctx;
    return ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
}

static int px_allocate(void *ctx, int fd, uint64_t size)
{
    (void)ctx;
    if (fallocate(fd, 0, 0, (off_t)size) == 0) {
        return 0;
    }
    if (errno != EOPNOTSUPP) {
        return -errno;
    }
    return ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
}

static int px_random(void *ctx, void *p, size_t len)
{
    (void)ctx;
    ssize_t n = getrandom(p, len, 0);
    if (n != (ssize_t)len) {
        return n < 0 && errno != 0 ? -errno : -EIO;
    }
    return 0;
}

static const struct log_vfs posix_vfs = {
    .ctx = NULL,
    .dir_open = px_dir_open,
    .dir_close = px_close,
    .dir_lock = px_dir_lock,
    .dir_sync = px_dir_sync,
    .dir_list = px_dir_list,
    .exists = px_exists,
    .unlink = px_unlink,
    .rename = px_rename,
    .open = px_open,
    .close = px_close,
    .size = px_size,
    .read = px_read,
    .write = px_write,
    .sync = px_sync,
    .truncate = px_truncate,
    .allocate = px_allocate,
    .random = px_random,
};

const struct log_vfs *log_vfs_posix(void)
{
    return &posix_vfs;
}

/* ---------------------------------------------------------------- helpers */

const struct log_vfs *log__vfs(const struct log_vfs *v)
{
    return v != NULL ? v : &posix_vfs;
}

int log__read(const struct log_vfs *v, int fd, void *p, size_t len,
              uint64_t off)
{
    struct iovec iov = {p, len};
    if (len == 0) {
        return 0;
    }
    return v->read(v->ctx, fd, &iov, 1, off);
}

int log__read2(const struct log_vfs *v, int fd, void *hdr, size_t hdr_len,
               void *data, size_t data_len, uint64_t off)
{
    struct iovec iov[2] = {{hdr, hdr_len}, {data, data_len}};
    return v->read(v->ctx, fd, iov, data_len > 0 ? 2 : 1, off);
}

int log__all_zero(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }
    return 1;
}

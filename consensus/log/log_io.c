/*
 * log_io.c - small POSIX file helpers for the WAL and snapshot files: full
 * reads and writes that survive short transfers and EINTR, durable mkdir,
 * directory fsync. No retry on a failed fsync: after one, the page cache
 * may already have dropped the dirty data (see log.h, Errors).
 */
#include "consensus/log/log_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/err.h"

int log__pwrite_full(int fd, const void *p, size_t len, uint64_t off)
{
    const uint8_t *b = p;
    size_t done = 0;
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

int log__pread_full(int fd, void *p, size_t len, uint64_t off)
{
    uint8_t *b = p;
    size_t done = 0;
    ASSERT(fd >= 0);
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

int log__preadv2_full(int fd, void *hdr, size_t hdr_len, void *data,
                      size_t data_len, uint64_t off)
{
    struct iovec iov[2] = {{hdr, hdr_len}, {data, data_len}};
    ssize_t n;
    size_t got;
    ASSERT(fd >= 0);
    do {
        n = preadv(fd, iov, data_len > 0 ? 2 : 1, (off_t)off);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return -errno;
    }
    got = (size_t)n;
    if (got >= hdr_len + data_len) {
        return 0;
    }
    /* Short read (rare): finish with plain preads. */
    if (got < hdr_len) {
        int rc =
            log__pread_full(fd, (uint8_t *)hdr + got, hdr_len - got, off + got);
        if (rc < 0) {
            return rc;
        }
        got = hdr_len;
    }
    return log__pread_full(fd, (uint8_t *)data + (got - hdr_len),
                           data_len - (got - hdr_len), off + got);
}

int log__fsync_fd(int fd)
{
    ASSERT(fd >= 0);
    if (fsync(fd) < 0) {
        return -errno;
    }
    return 0;
}

int log__mkdir_durable(const char *path)
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
    rc = log__fsync_fd(fd);
    close(fd);
    return rc;
}

void log__msg(char *msg, size_t msg_len, const char *fmt, ...)
{
    va_list ap;
    if (msg == NULL || msg_len == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, msg_len, fmt, ap);
    va_end(ap);
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

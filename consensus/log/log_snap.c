/*
 * log_snap.c - Raft snapshot files: save (temp file, fsync, rename, dir
 * fsync, retention) and load the newest valid one. Format and the rule for
 * which damaged files may be skipped are in log.h.
 *
 * Why only an incomplete newest file is skipped: a file reaches its final
 * name only after its bytes were fsynced, so damage in a named file means
 * the disk lost synced data. Passing over it could silently roll the member
 * back to an older snapshot than the WAL expects; we stop instead and say
 * which file. A file that is merely short (or whose header never reached
 * the disk) is the one crash window some file systems leave around rename,
 * and it can only be the newest.
 */
#include "consensus/log/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/log/log_int.h"

#define SNAP_MAGIC      "CAIRNSNP"
#define SNAP_VERSION    1u
#define SNAP_HDR        64u
#define SNAP_NAME_LEN   64
#define SNAP_FILES_MAX  4096 /* more *.snap files than this: refuse */
/* Internal: the file is shorter than it says (or its header is zeros). */
#define SNAP_INCOMPLETE 1

struct snap_name {
    uint64_t index;
    uint64_t term;
};

static void snap_file(char *out, uint64_t index, uint64_t term, int tmp)
{
    snprintf(out, SNAP_NAME_LEN, "%016" PRIx64 "-%016" PRIx64 ".snap%s", index,
             term, tmp ? ".tmp" : "");
}

static int snap_name_parse(const char *n, struct snap_name *out)
{
    if (strlen(n) != 38 || n[16] != '-' || strcmp(n + 33, ".snap") != 0 ||
        strspn(n, "0123456789abcdef") != 16 ||
        strspn(n + 17, "0123456789abcdef") != 16) {
        return 0;
    }
    out->index = strtoull(n, NULL, 16);
    out->term = strtoull(n + 17, NULL, 16);
    return 1;
}

static int snap_cmp(const void *a, const void *b)
{
    const struct snap_name *x = a, *y = b;
    if (x->index != y->index) {
        return x->index < y->index ? -1 : 1;
    }
    return x->term < y->term ? -1 : x->term > y->term;
}

/* List *.snap files sorted oldest first; with sweep, remove *.snap.tmp
 * leftovers (only when loading: while saving, another thread of the same
 * member may be writing its own temp file there). *names is allocated
 * (SNAP_FILES_MAX entries). */
static int snap_list(int dirfd, bool sweep, struct snap_name **names, size_t *n)
{
    int fd = dup(dirfd);
    DIR *d;
    struct dirent *de;
    int rc = 0;
    *n = 0;
    *names = NULL;
    if (fd < 0) {
        return -errno;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        rc = -errno;
        close(fd);
        return rc;
    }
    *names = mem_alloc(SNAP_FILES_MAX * sizeof(**names));
    if (*names == NULL) {
        closedir(d);
        return -ENOMEM;
    }
    rewinddir(d);
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl > 9 && strcmp(de->d_name + nl - 9, ".snap.tmp") == 0) {
            if (sweep && unlinkat(dirfd, de->d_name, 0) < 0) {
                rc = -errno;
            }
        } else if (snap_name_parse(de->d_name, &(*names)[*n])) {
            if (*n == SNAP_FILES_MAX) {
                rc = ERR_LIMIT;
            } else {
                (*n)++;
            }
        }
    }
    closedir(d);
    if (rc < 0) {
        mem_free(*names);
        *names = NULL;
        *n = 0;
        return rc;
    }
    if (*n > 1) {
        qsort(*names, *n, sizeof(**names), snap_cmp);
    }
    return 0;
}

static int open_dir(const char *dir, int create, int *dirfd)
{
    if (create) {
        int rc = log__mkdir_durable(dir);
        if (rc < 0) {
            return rc;
        }
    }
    *dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return *dirfd < 0 ? -errno : 0;
}

/* Write the whole file under its temp name and fsync it. */
static int snap_write_tmp(int dirfd, const char *tmp,
                          const struct log_snap_meta *m, uint32_t flags,
                          const void *payload, uint64_t payload_len)
{
    uint8_t h[SNAP_HDR];
    uint32_t crc = crc32c(0, m->conf, m->conf_len);
    int fd;
    int rc;

    crc = crc32c(crc, payload, (size_t)payload_len);
    memset(h, 0, sizeof(h));
    memcpy(h, SNAP_MAGIC, 8);
    le32_put(h + 8, SNAP_VERSION);
    le32_put(h + 12, flags);
    le64_put(h + 16, m->index);
    le64_put(h + 24, m->term);
    le32_put(h + 32, m->conf_len);
    le64_put(h + 40, payload_len);
    le32_put(h + 48, crc);
    le32_put(h + 60, crc32c(0, h, 60));
    (void)unlinkat(dirfd, tmp, 0);
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    rc = log__pwrite_full(fd, h, sizeof(h), 0);
    if (rc == 0 && m->conf_len > 0) {
        rc = log__pwrite_full(fd, m->conf, m->conf_len, SNAP_HDR);
    }
    if (rc == 0 && payload_len > 0) {
        rc = log__pwrite_full(fd, payload, (size_t)payload_len,
                              SNAP_HDR + (uint64_t)m->conf_len);
    }
    if (rc == 0) {
        rc = log__fsync_fd(fd);
    }
    close(fd);
    if (rc < 0) {
        (void)unlinkat(dirfd, tmp, 0);
    }
    return rc;
}

/* Delete the oldest snapshots so that at most keep remain. */
static int snap_retain(int dirfd, unsigned keep)
{
    struct snap_name *names;
    size_t n;
    int rc = snap_list(dirfd, false, &names, &n);
    char name[SNAP_NAME_LEN];
    if (rc < 0) {
        return rc;
    }
    for (size_t k = 0; k + keep < n; k++) {
        snap_file(name, names[k].index, names[k].term, 0);
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) {
            rc = -errno;
            break;
        }
    }
    mem_free(names);
    if (rc == 0 && n > keep) {
        rc = log__fsync_fd(dirfd);
    }
    return rc;
}

int log_snap_save(const char *snap_dir, const struct log_snap_meta *m,
                  uint32_t flags, const void *payload, uint64_t payload_len,
                  unsigned keep)
{
    char name[SNAP_NAME_LEN], tmp[SNAP_NAME_LEN];
    struct stat st;
    int dirfd;
    int rc;

    ASSERT(snap_dir != NULL && m != NULL);
    ASSERT(payload != NULL || payload_len == 0);
    if (m->conf_len > LOG_SNAP_CONF_BYTES_MAX ||
        payload_len > ((flags & LOG_SNAP_FLAG_PATH)
                           ? (uint64_t)PATH_MAX - 1
                           : LOG_SNAP_INLINE_BYTES_MAX)) {
        return ERR_LIMIT;
    }
    if ((flags & ~LOG_SNAP_FLAG_PATH) != 0 ||
        (m->conf_len > 0 && m->conf == NULL) ||
        ((flags & LOG_SNAP_FLAG_PATH) &&
         (payload_len == 0 || memchr(payload, 0, payload_len) != NULL))) {
        return ERR_INVALID;
    }
    rc = open_dir(snap_dir, 1, &dirfd);
    if (rc < 0) {
        return rc;
    }
    snap_file(name, m->index, m->term, 0);
    snap_file(tmp, m->index, m->term, 1);
    if (fstatat(dirfd, name, &st, 0) == 0) {
        close(dirfd);
        return ERR_EXISTS;
    }
    rc = snap_write_tmp(dirfd, tmp, m, flags, payload, payload_len);
    if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0) {
        rc = -errno;
    }
    if (rc == 0) {
        rc = log__fsync_fd(dirfd);
    }
    if (rc == 0) {
        rc = snap_retain(dirfd, keep == 0 ? LOG_SNAP_KEEP_DEFAULT : keep);
    }
    close(dirfd);
    return rc;
}

/* Validate the header of a file named after nm; fills out's lengths. */
static int snap_hdr_check(const uint8_t *h, const struct snap_name *nm,
                          uint64_t size, struct log_snap *out, const char *file,
                          char *msg, size_t msg_len)
{
    uint64_t plen;
    if (log__all_zero(h, SNAP_HDR)) {
        return SNAP_INCOMPLETE;
    }
    if (memcmp(h, SNAP_MAGIC, 8) != 0) {
        log__msg(msg, msg_len, "snap: %s: bad magic", file);
        return ERR_BAD_MAGIC;
    }
    if (le32_get(h + 8) != SNAP_VERSION) {
        log__msg(msg, msg_len, "snap: %s: version %u is not supported", file,
                 le32_get(h + 8));
        return ERR_BAD_VERSION;
    }
    out->flags = le32_get(h + 12);
    out->index = le64_get(h + 16);
    out->term = le64_get(h + 24);
    out->conf_len = le32_get(h + 32);
    plen = le64_get(h + 40);
    if (le32_get(h + 60) != crc32c(0, h, 60) || out->index != nm->index ||
        out->term != nm->term || (out->flags & ~LOG_SNAP_FLAG_PATH) ||
        out->conf_len > LOG_SNAP_CONF_BYTES_MAX ||
        plen > ((out->flags & LOG_SNAP_FLAG_PATH)
                    ? (uint64_t)PATH_MAX - 1
                    : LOG_SNAP_INLINE_BYTES_MAX) ||
        ((out->flags & LOG_SNAP_FLAG_PATH) && plen == 0)) {
        log__msg(msg, msg_len, "snap: %s: offset 0: damaged header", file);
        return ERR_CORRUPT;
    }
    out->payload_len = plen;
    if (size < SNAP_HDR + (uint64_t)out->conf_len + plen) {
        return SNAP_INCOMPLETE;
    }
    if (size > SNAP_HDR + (uint64_t)out->conf_len + plen) {
        log__msg(msg, msg_len, "snap: %s: %" PRIu64 " bytes past the end", file,
                 size - SNAP_HDR - out->conf_len - plen);
        return ERR_CORRUPT;
    }
    return 0;
}

/* Read one file. 0, SNAP_INCOMPLETE, or a negative error. */
static int snap_read(int dirfd, const struct snap_name *nm,
                     struct log_snap *out, char *msg, size_t msg_len)
{
    char file[SNAP_NAME_LEN];
    uint8_t h[SNAP_HDR];
    struct stat st;
    int fd;
    int rc;

    memset(out, 0, sizeof(*out));
    snap_file(file, nm->index, nm->term, 0);
    fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0) {
        rc = -errno;
        log__msg(msg, msg_len, "snap: %s: %s", file, err_str(rc));
        if (fd >= 0) {
            close(fd);
        }
        return rc;
    }
    rc = (uint64_t)st.st_size < SNAP_HDR ? SNAP_INCOMPLETE
                                         : log__pread_full(fd, h, SNAP_HDR, 0);
    if (rc == 0) {
        rc = snap_hdr_check(h, nm, (uint64_t)st.st_size, out, file, msg,
                            msg_len);
    }
    if (rc == 0) {
        out->conf = mem_alloc(out->conf_len > 0 ? out->conf_len : 1);
        /* +1: a path payload is handed out NUL-terminated. */
        out->payload = mem_alloc((size_t)out->payload_len + 1);
        rc = out->conf && out->payload ? 0 : -ENOMEM;
    }
    if (rc == 0) {
        rc = log__pread_full(fd, out->conf, out->conf_len, SNAP_HDR);
    }
    if (rc == 0) {
        rc = log__pread_full(fd, out->payload, (size_t)out->payload_len,
                             SNAP_HDR + (uint64_t)out->conf_len);
    }
    if (rc == 0) {
        uint32_t crc = crc32c(0, out->conf, out->conf_len);
        crc = crc32c(crc, out->payload, (size_t)out->payload_len);
        out->payload[out->payload_len] = 0;
        if (crc != le32_get(h + 48)) {
            log__msg(msg, msg_len,
                     "snap: %s: offset %u: body checksum "
                     "mismatch",
                     file, SNAP_HDR);
            rc = ERR_CORRUPT;
        } else if ((out->flags & LOG_SNAP_FLAG_PATH) &&
                   memchr(out->payload, 0, (size_t)out->payload_len)) {
            /* log_snap_save never writes one: a path cut short at a NUL
             * would name another file. */
            log__msg(msg, msg_len, "snap: %s: path payload holds a NUL", file);
            rc = ERR_CORRUPT;
        }
    }
    if (rc < 0 && msg != NULL && msg[0] == '\0') {
        log__msg(msg, msg_len, "snap: %s: %s", file, err_str(rc));
    }
    close(fd);
    if (rc != 0) {
        log_snap_free(out);
    }
    return rc;
}

int log_snap_load(const char *snap_dir, struct log_snap *out, char *msg,
                  size_t msg_len)
{
    struct snap_name *names;
    size_t n;
    int dirfd;
    int rc;

    ASSERT(snap_dir != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    log__msg(msg, msg_len, "%s", "");
    rc = open_dir(snap_dir, 0, &dirfd);
    if (rc == -ENOENT) {
        return ERR_NOT_FOUND;
    }
    if (rc < 0) {
        log__msg(msg, msg_len, "snap: %s: %s", snap_dir, err_str(rc));
        return rc;
    }
    rc = snap_list(dirfd, true, &names, &n);
    if (rc == 0) {
        rc = ERR_NOT_FOUND;
        for (size_t k = n; k-- > 0;) {
            rc = snap_read(dirfd, &names[k], out, msg, msg_len);
            if (rc == SNAP_INCOMPLETE && k + 1 == n) {
                LOGW("snap",
                     "skipping incomplete newest snapshot "
                     "%016" PRIx64 "-%016" PRIx64 ".snap",
                     names[k].index, names[k].term);
                rc = ERR_NOT_FOUND;
                continue;
            }
            if (rc == SNAP_INCOMPLETE) {
                log__msg(msg, msg_len,
                         "snap: %016" PRIx64 "-%016" PRIx64
                         ".snap: incomplete, and not the newest",
                         names[k].index, names[k].term);
                rc = ERR_CORRUPT;
            }
            break;
        }
        mem_free(names);
    }
    close(dirfd);
    ASSERT(rc <= 0);
    return rc;
}

void log_snap_free(struct log_snap *s)
{
    if (s == NULL) {
        return;
    }
    mem_free(s->conf);
    mem_free(s->payload);
    s->conf = NULL;
    s->payload = NULL;
}

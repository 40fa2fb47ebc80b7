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

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct snap_listing {
    const struct log_vfs *v;
    int dirfd;
    bool sweep;
    struct snap_name *names;
    size_t n;
};

static int snap_list_one(void *arg, const char *name)
{
    struct snap_listing *sl = arg;
    size_t nl = strlen(name);
    if (nl > 9 && strcmp(name + nl - 9, ".snap.tmp") == 0) {
        return sl->sweep ? sl->v->unlink(sl->v->ctx, sl->dirfd, name) : 0;
    }
    if (snap_name_parse(name, &sl->names[sl->n])) {
        if (sl->n == SNAP_FILES_MAX) {
            return ERR_LIMIT;
        }
        sl->n++;
    }
    return 0;
}

/* List *.snap files sorted oldest first; with sweep, remove *.snap.tmp
 * leftovers (only when loading: while saving, another thread of the same
 * member may be writing its own temp file there). *names is allocated
 * (SNAP_FILES_MAX + 1 entries). */
static int snap_list(const struct log_vfs *v, int dirfd, bool sweep,
                     struct snap_name **names, size_t *n)
{
    struct snap_listing sl = {v, dirfd, sweep, NULL, 0};
    int rc;
    *n = 0;
    *names = NULL;
    /* + 1: the parse target of a name past the limit. */
    sl.names = mem_alloc((SNAP_FILES_MAX + 1) * sizeof(*sl.names));
    if (sl.names == NULL) {
        return -ENOMEM;
    }
    rc = v->dir_list(v->ctx, dirfd, snap_list_one, &sl);
    if (rc < 0) {
        mem_free(sl.names);
        return rc;
    }
    if (sl.n > 1) {
        qsort(sl.names, sl.n, sizeof(*sl.names), snap_cmp);
    }
    *names = sl.names;
    *n = sl.n;
    return 0;
}

static int open_dir(const struct log_vfs *v, const char *dir, int create,
                    int *dirfd)
{
    int rc = v->dir_open(v->ctx, dir, create != 0, dirfd);
    if (rc < 0) {
        *dirfd = -1;
    }
    return rc;
}

/* Write the whole file under its temp name and fsync it. */
static int snap_write_tmp(const struct log_vfs *v, int dirfd, const char *tmp,
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
    (void)v->unlink(v->ctx, dirfd, tmp);
    rc = v->open(v->ctx, dirfd, tmp, LOG_VFS_RDWR | LOG_VFS_CREATE, &fd);
    if (rc < 0) {
        return rc;
    }
    rc = v->write(v->ctx, fd, h, sizeof(h), 0);
    if (rc == 0 && m->conf_len > 0) {
        rc = v->write(v->ctx, fd, m->conf, m->conf_len, SNAP_HDR);
    }
    if (rc == 0 && payload_len > 0) {
        rc = v->write(v->ctx, fd, payload, (size_t)payload_len,
                      SNAP_HDR + (uint64_t)m->conf_len);
    }
    if (rc == 0) {
        rc = v->sync(v->ctx, fd);
    }
    v->close(v->ctx, fd);
    if (rc < 0) {
        (void)v->unlink(v->ctx, dirfd, tmp);
    }
    return rc;
}

/* Delete the oldest snapshots so that at most keep remain. */
static int snap_retain(const struct log_vfs *v, int dirfd, unsigned keep)
{
    struct snap_name *names;
    size_t n;
    int rc = snap_list(v, dirfd, false, &names, &n);
    char name[SNAP_NAME_LEN];
    if (rc < 0) {
        return rc;
    }
    for (size_t k = 0; k + keep < n; k++) {
        snap_file(name, names[k].index, names[k].term, 0);
        rc = v->unlink(v->ctx, dirfd, name);
        if (rc == -ENOENT) {
            rc = 0;
        }
        if (rc < 0) {
            break;
        }
    }
    mem_free(names);
    if (rc == 0 && n > keep) {
        rc = v->dir_sync(v->ctx, dirfd);
    }
    return rc;
}

int log_snap_save(const char *snap_dir, const struct log_snap_meta *m,
                  uint32_t flags, const void *payload, uint64_t payload_len,
                  unsigned keep)
{
    return log_snap_save_vfs(NULL, snap_dir, m, flags, payload, payload_len,
                             keep);
}

int log_snap_save_vfs(const struct log_vfs *vfs, const char *snap_dir,
                      const struct log_snap_meta *m, uint32_t flags,
                      const void *payload, uint64_t payload_len, unsigned keep)
{
    const struct log_vfs *v = log__vfs(vfs);
    char name[SNAP_NAME_LEN], tmp[SNAP_NAME_LEN];
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
    rc = open_dir(v, snap_dir, 1, &dirfd);
    if (rc < 0) {
        return rc;
    }
    snap_file(name, m->index, m->term, 0);
    snap_file(tmp, m->index, m->term, 1);
    if (v->exists(v->ctx, dirfd, name) == 0) {
        v->dir_close(v->ctx, dirfd);
        return ERR_EXISTS;
    }
    rc = snap_write_tmp(v, dirfd, tmp, m, flags, payload, payload_len);
    if (rc == 0) {
        rc = v->rename(v->ctx, dirfd, tmp, name);
    }
    if (rc == 0) {
        rc = v->dir_sync(v->ctx, dirfd);
    }
    if (rc == 0) {
        rc = snap_retain(v, dirfd, keep == 0 ? LOG_SNAP_KEEP_DEFAULT : keep);
    }
    v->dir_close(v->ctx, dirfd);
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
        err_msg(msg, msg_len, "snap: %s: bad magic", file);
        return ERR_BAD_MAGIC;
    }
    if (le32_get(h + 8) != SNAP_VERSION) {
        err_msg(msg, msg_len, "snap: %s: version %u is not supported", file,
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
        err_msg(msg, msg_len, "snap: %s: offset 0: damaged header", file);
        return ERR_CORRUPT;
    }
    out->payload_len = plen;
    if (size < SNAP_HDR + (uint64_t)out->conf_len + plen) {
        return SNAP_INCOMPLETE;
    }
    if (size > SNAP_HDR + (uint64_t)out->conf_len + plen) {
        err_msg(msg, msg_len, "snap: %s: %" PRIu64 " bytes past the end", file,
                size - SNAP_HDR - out->conf_len - plen);
        return ERR_CORRUPT;
    }
    return 0;
}

/* Read one file. 0, SNAP_INCOMPLETE, or a negative error. */
static int snap_read(const struct log_vfs *v, int dirfd,
                     const struct snap_name *nm, struct log_snap *out,
                     char *msg, size_t msg_len)
{
    char file[SNAP_NAME_LEN];
    uint8_t h[SNAP_HDR];
    uint64_t size = 0;
    int fd = -1;
    int rc;

    memset(out, 0, sizeof(*out));
    snap_file(file, nm->index, nm->term, 0);
    rc = v->open(v->ctx, dirfd, file, LOG_VFS_READ, &fd);
    if (rc == 0) {
        rc = v->size(v->ctx, fd, &size);
    }
    if (rc < 0) {
        err_msg(msg, msg_len, "snap: %s: %s", file, err_str(rc));
        if (fd >= 0) {
            v->close(v->ctx, fd);
        }
        return rc;
    }
    rc = size < SNAP_HDR ? SNAP_INCOMPLETE : log__read(v, fd, h, SNAP_HDR, 0);
    if (rc == 0) {
        rc = snap_hdr_check(h, nm, size, out, file, msg, msg_len);
    }
    if (rc == 0) {
        out->conf = mem_alloc(out->conf_len > 0 ? out->conf_len : 1);
        /* +1: a path payload is handed out NUL-terminated. */
        out->payload = mem_alloc((size_t)out->payload_len + 1);
        rc = out->conf && out->payload ? 0 : -ENOMEM;
    }
    if (rc == 0) {
        rc = log__read(v, fd, out->conf, out->conf_len, SNAP_HDR);
    }
    if (rc == 0) {
        rc = log__read(v, fd, out->payload, (size_t)out->payload_len,
                       SNAP_HDR + (uint64_t)out->conf_len);
    }
    if (rc == 0) {
        uint32_t crc = crc32c(0, out->conf, out->conf_len);
        crc = crc32c(crc, out->payload, (size_t)out->payload_len);
        out->payload[out->payload_len] = 0;
        if (crc != le32_get(h + 48)) {
            err_msg(msg, msg_len,
                    "snap: %s: offset %u: body checksum "
                    "mismatch",
                    file, SNAP_HDR);
            rc = ERR_CORRUPT;
        } else if ((out->flags & LOG_SNAP_FLAG_PATH) &&
                   memchr(out->payload, 0, (size_t)out->payload_len)) {
            /* log_snap_save never writes one: a path cut short at a NUL
             * would name another file. */
            err_msg(msg, msg_len, "snap: %s: path payload holds a NUL", file);
            rc = ERR_CORRUPT;
        }
    }
    if (rc < 0 && msg != NULL && msg[0] == '\0') {
        err_msg(msg, msg_len, "snap: %s: %s", file, err_str(rc));
    }
    v->close(v->ctx, fd);
    if (rc != 0) {
        log_snap_free(out);
    }
    return rc;
}

int log_snap_load(const char *snap_dir, struct log_snap *out, char *msg,
                  size_t msg_len)
{
    return log_snap_load_vfs(NULL, snap_dir, out, msg, msg_len);
}

int log_snap_load_vfs(const struct log_vfs *vfs, const char *snap_dir,
                      struct log_snap *out, char *msg, size_t msg_len)
{
    const struct log_vfs *v = log__vfs(vfs);
    struct snap_name *names;
    size_t n;
    int dirfd;
    int rc;

    ASSERT(snap_dir != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    err_msg(msg, msg_len, "%s", "");
    rc = open_dir(v, snap_dir, 0, &dirfd);
    if (rc == -ENOENT) {
        return ERR_NOT_FOUND;
    }
    if (rc < 0) {
        err_msg(msg, msg_len, "snap: %s: %s", snap_dir, err_str(rc));
        return rc;
    }
    rc = snap_list(v, dirfd, true, &names, &n);
    if (rc == 0) {
        rc = ERR_NOT_FOUND;
        for (size_t k = n; k-- > 0;) {
            rc = snap_read(v, dirfd, &names[k], out, msg, msg_len);
            if (rc == SNAP_INCOMPLETE && k + 1 == n) {
                LOGW("snap",
                     "skipping incomplete newest snapshot "
                     "%016" PRIx64 "-%016" PRIx64 ".snap",
                     names[k].index, names[k].term);
                rc = ERR_NOT_FOUND;
                continue;
            }
            if (rc == SNAP_INCOMPLETE) {
                err_msg(msg, msg_len,
                        "snap: %016" PRIx64 "-%016" PRIx64
                        ".snap: incomplete, and not the newest",
                        names[k].index, names[k].term);
                rc = ERR_CORRUPT;
            }
            break;
        }
        mem_free(names);
    }
    v->dir_close(v->ctx, dirfd);
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

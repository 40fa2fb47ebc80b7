/*
 * discard.c - large files deleted a piece at a time (discard.h).
 */
#include "base/discard.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* 2 MiB: of 1, 2 and 4 MiB tried, the one with the shortest concurrent
 * fdatasync (4-9 ms against 7-10), for 10-20% more time in all. */
#define DISCARD_STEP ((off_t)2 << 20)

void discard_fd(int fd)
{
    struct stat st;
    if (fstat(fd, &st) == 0) {
        off_t size = st.st_size;
        while (size > 0) {
            size = size > DISCARD_STEP ? size - DISCARD_STEP : 0;
            if (ftruncate(fd, size) != 0) {
                break; /* the close frees the rest whole */
            }
        }
    }
    close(fd);
}

static void *discard_main(void *arg)
{
    discard_fd((int)(intptr_t)arg);
    return NULL;
}

void discard_fd_detached(int fd)
{
    pthread_attr_t attr;
    pthread_t t;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = rc != 0 ? rc
                     : pthread_create(&t, &attr, discard_main,
                                      (void *)(intptr_t)fd);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        discard_fd(fd);
    }
}

int discard_unlink(const char *path, int *fd)
{
    *fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (unlink(path) != 0) {
        int rc = -errno;
        if (*fd >= 0) {
            close(*fd);
            *fd = -1;
        }
        return rc;
    }
    return 0;
}

int discard_path(const char *path)
{
    int fd;
    int rc = discard_unlink(path, &fd);
    if (fd >= 0) {
        discard_fd(fd);
    }
    return rc;
}

int discard_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    int rc = fsync(fd) != 0 ? -errno : 0;
    close(fd);
    return rc;
}

int discard_rename(const char *from, const char *to, const char *dir, int *old)
{
    int fd = open(to, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    int rc = rename(from, to) == 0 ? discard_sync_dir(dir) : -errno;
    if (rc != 0 && fd >= 0) {
        close(fd);
        fd = -1;
    }
    *old = fd;
    return rc;
}

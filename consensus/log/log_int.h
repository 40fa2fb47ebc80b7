/*
 * log_int.h - helpers shared by the WAL (log_wal.c) and the snapshot files
 * (log_snap.c). Private to consensus/log.
 */
#ifndef CAIRN_CONSENSUS_LOG_INT_H
#define CAIRN_CONSENSUS_LOG_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write all of p[0..len) at off; a short write is retried until done.
 * Returns 0 or -errno (-EIO if the kernel reports zero bytes written). */
int log__pwrite_full(int fd, const void *p, size_t len, uint64_t off);

/* Read exactly len bytes at off. ERR_TRUNCATED when the file ends first. */
int log__pread_full(int fd, void *p, size_t len, uint64_t off);

/* Read hdr_len bytes into hdr and then data_len bytes into data, from
 * offset off, with as few syscalls as possible (preadv). */
int log__preadv2_full(int fd, void *hdr, size_t hdr_len, void *data,
                      size_t data_len, uint64_t off);

/* fsync a directory fd; -errno on failure. */
int log__fsync_fd(int fd);

/* mkdir path if missing (one level) and fsync its parent when it was
 * created, so the new entry is durable. 0 or -errno. */
int log__mkdir_durable(const char *path);

/* snprintf into msg when msg is not NULL. */
void log__msg(char *msg, size_t msg_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* True when every byte of p[0..len) is zero. */
int log__all_zero(const uint8_t *p, size_t len);

#endif

/*
 * log_int.h - helpers shared by the WAL (log_wal.c) and the snapshot files
 * (log_snap.c). Private to consensus/log.
 */
#ifndef CAIRN_CONSENSUS_LOG_INT_H
#define CAIRN_CONSENSUS_LOG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "consensus/log/log_vfs.h"

/* v, or the POSIX table when v is NULL. */
const struct log_vfs *log__vfs(const struct log_vfs *v);

/* Read exactly len bytes at off. ERR_TRUNCATED when the file ends first. */
int log__read(const struct log_vfs *v, int fd, void *p, size_t len,
              uint64_t off);

/* Read hdr_len bytes into hdr and then data_len bytes into data, from
 * offset off, in one call (preadv on POSIX). */
int log__read2(const struct log_vfs *v, int fd, void *hdr, size_t hdr_len,
               void *data, size_t data_len, uint64_t off);

/* True when every byte of p[0..len) is zero. */
int log__all_zero(const uint8_t *p, size_t len);

#endif

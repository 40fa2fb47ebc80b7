/*
 * crc32c.h - CRC-32C (Castagnoli), as used by the WAL and snapshot files.
 *
 * Does:     crc32c(crc, data, len) extends a running checksum; start from 0.
 *           Uses the SSE4.2 instruction when the CPU has it, else tables.
 * Owns:     nothing (tables are const, built at compile time).
 * Threads:  pure; safe anywhere. Allowed inside consensus/raft.
 * Errors:   none.
 * Limits:   none.
 * Not here: the record framing that carries the checksum (consensus/log).
 */
#ifndef CAIRN_BASE_CRC32C_H
#define CAIRN_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The portable path only, so tests can check both give the same answer. */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif

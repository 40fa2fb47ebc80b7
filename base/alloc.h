/*
 * alloc.h - every heap allocation in Cairn goes through these hooks.
 *
 * Does:     mem_alloc / mem_calloc / mem_realloc / mem_free, plus a test
 *           switch that makes the Nth allocation fail.
 * Owns:     the hook table (process-wide, set before threads start).
 * Threads:  the functions are thread-safe when the hooks are (libc's are);
 *           the fail-Nth counter is atomic.
 * Errors:   the allocating calls return NULL on failure; library code turns
 *           that into -ENOMEM. Only startup code may exit on out-of-memory.
 * Not here: arenas and pools (owned by the modules that size them).
 */
#ifndef CAIRN_BASE_ALLOC_H
#define CAIRN_BASE_ALLOC_H

#include <stddef.h>

void *mem_alloc(size_t size);
void *mem_calloc(size_t count, size_t size);
void *mem_realloc(void *ptr, size_t size);
void mem_free(void *ptr);

/* Duplicate len bytes (not NUL-terminated); NULL on failure. */
void *mem_dup(const void *src, size_t len);

/* Test hook: the n-th allocation from now (1-based) and every one after it
 * fail when sticky is nonzero, only that one when it is zero. n == 0 turns
 * failure injection off. Returns the number of allocations since the last
 * call, so a test can sweep n over every allocation of an operation. */
unsigned long mem_fail_after(unsigned long n, int sticky);

#endif

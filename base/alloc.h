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

/* Small blocks kept for reuse by the thread that freed them: a hot path
 * that allocates and frees many blocks of a few sizes (a watch event's
 * copy and encoding, once per event and catch-up read) skips malloc's
 * bins. Sizes round up to 64 bytes; blocks over MEM_CACHE_BLOCK_MAX go
 * straight to mem_alloc/mem_free; a thread keeps at most
 * MEM_CACHE_BYTES_MAX bytes. mem_cache_free takes the size that was given
 * to mem_cache_alloc, and only such blocks. Failure injection counts these
 * allocations as it counts mem_alloc's. */
#define MEM_CACHE_BLOCK_MAX 2048
/* Under AddressSanitizer the cache is off (every block goes back to free,
 * where ASan can see a use after it). */
#if defined(__SANITIZE_ADDRESS__)
#define MEM_CACHE_ON 0
#else
#define MEM_CACHE_ON 1
#endif
#define MEM_CACHE_BYTES_MAX ((size_t)4 << 20)
void *mem_cache_alloc(size_t size);
void mem_cache_free(void *ptr, size_t size);
/* Bytes this thread's cache holds now. */
size_t mem_cache_bytes(void);

#endif

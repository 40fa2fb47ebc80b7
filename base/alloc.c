/* alloc.c - allocator hooks with failure injection for tests. */
#include "base/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Process-wide by design (STYLE.md section 8): the allocator hooks. */
static atomic_ulong alloc_count;
static atomic_ulong fail_at; /* 0: never fail */
static atomic_int fail_sticky;

static int should_fail(void)
{
    unsigned long at = atomic_load_explicit(&fail_at, memory_order_relaxed);
    unsigned long n = atomic_fetch_add(&alloc_count, 1) + 1;
    if (at == 0) {
        return 0;
    }
    if (n == at) {
        return 1;
    }
    return n > at && atomic_load(&fail_sticky);
}

void *mem_alloc(size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return malloc(size == 0 ? 1 : size);
}

void *mem_calloc(size_t count, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
}

void *mem_realloc(void *ptr, size_t size)
{
    if (should_fail()) {
        return NULL;
    }
    return realloc(ptr, size == 0 ? 1 : size);
}

void mem_free(void *ptr)
{
    free(ptr);
}

void *mem_dup(const void *src, size_t len)
{
    void *p = mem_alloc(len);
    if (p != NULL && len > 0) {
        memcpy(p, src, len);
    }
    return p;
}

unsigned long mem_fail_after(unsigned long n, int sticky)
{
    unsigned long seen = atomic_exchange(&alloc_count, 0);
    atomic_store(&fail_sticky, sticky);
    atomic_store(&fail_at, n);
    return seen;
}

/* ------------------------------------------------ per-thread block cache */

#define MC_GRAIN   64
#define MC_CLASSES (MEM_CACHE_BLOCK_MAX / MC_GRAIN)

struct mc_free {
    struct mc_free *next;
};

/* Per thread, so no lock; a thread's cached blocks go with the process. */
static _Thread_local struct {
    struct mc_free *head[MC_CLASSES];
    size_t bytes;
} mc;

static size_t mc_class(size_t size)
{
    return size == 0 ? 0 : (size - 1) / MC_GRAIN;
}

void *mem_cache_alloc(size_t size)
{
    size_t c = mc_class(size);
    struct mc_free *b;

    if (!MEM_CACHE_ON || c >= MC_CLASSES) {
        return mem_alloc(size);
    }
    b = mc.head[c];
    if (b == NULL) {
        return mem_alloc((c + 1) * MC_GRAIN);
    }
    if (should_fail()) {
        return NULL;
    }
    mc.head[c] = b->next;
    mc.bytes -= (c + 1) * MC_GRAIN;
    return b;
}

void mem_cache_free(void *ptr, size_t size)
{
    size_t c = mc_class(size);
    struct mc_free *b = ptr;

    if (ptr == NULL) {
        return;
    }
    if (!MEM_CACHE_ON || c >= MC_CLASSES ||
        mc.bytes + (c + 1) * MC_GRAIN > MEM_CACHE_BYTES_MAX) {
        mem_free(ptr);
        return;
    }
    b->next = mc.head[c];
    mc.head[c] = b;
    mc.bytes += (c + 1) * MC_GRAIN;
}

size_t mem_cache_bytes(void)
{
    return mc.bytes;
}

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

/*
 * arena.h - a bump allocator for one request's memory, capped, freed whole.
 *
 * Does:     arena_alloc() hands out 8-byte aligned blocks from chunks taken
 *           from base/alloc.h; arena_free() returns every chunk at once.
 * Owns:     its chunks.
 * Threads:  one thread at a time.
 * Borrowed: blocks live until arena_free() or arena_reset().
 * Errors:   arena_alloc returns NULL when allocation fails or the cap would
 *           be passed (the caller maps that to -ENOMEM or ERR_LIMIT; check
 *           arena_over_cap() to tell which).
 * Limits:   cap_bytes given at init (0: no cap beyond memory).
 * Not here: long-lived objects (use mem_alloc and a close function).
 */
#ifndef CAIRN_BASE_ARENA_H
#define CAIRN_BASE_ARENA_H

#include <stdbool.h>
#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head;
    size_t used;      /* bytes handed out in total */
    size_t cap_bytes; /* 0: none */
    bool over_cap;    /* the last failure was the cap, not memory */
};

void arena_init(struct arena *a, size_t cap_bytes);
void *arena_alloc(struct arena *a, size_t size);
void *arena_calloc(struct arena *a, size_t count, size_t size);
/* Copy len bytes into the arena (len 0 gives a valid non-NULL pointer). */
void *arena_dup(struct arena *a, const void *src, size_t len);
void arena_free(struct arena *a);
static inline bool arena_over_cap(const struct arena *a)
{
    return a->over_cap;
}

#endif

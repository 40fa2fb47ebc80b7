/* arena.c - chunked bump allocation. Chunks grow geometrically (4 KiB up to
 * 1 MiB) so a small request costs one malloc and a large one few. */
#include "base/arena.h"

#include <stdint.h>
#include <string.h>

#include "base/alloc.h"

struct arena_chunk {
    struct arena_chunk *next;
    size_t size; /* usable bytes after the header */
    size_t off;
    max_align_t data[]; /* aligned start */
};

#define CHUNK_MIN ((size_t)4096)
#define CHUNK_MAX ((size_t)1 << 20)

void arena_init(struct arena *a, size_t cap_bytes)
{
    a->head = NULL;
    a->used = 0;
    a->cap_bytes = cap_bytes;
    a->over_cap = false;
}

void *arena_alloc(struct arena *a, size_t size)
{
    struct arena_chunk *c = a->head;
    size_t need = (size + 7) & ~(size_t)7;
    if (need < size) {
        return NULL; /* overflow */
    }
    if (a->cap_bytes != 0 && need > a->cap_bytes - a->used) {
        a->over_cap = true;
        return NULL;
    }
    if (c == NULL || c->size - c->off < need) {
        size_t sz = c == NULL ? CHUNK_MIN : c->size * 2;
        if (sz > CHUNK_MAX) {
            sz = CHUNK_MAX;
        }
        if (sz < need) {
            sz = need;
        }
        struct arena_chunk *n = mem_alloc(sizeof(*n) + sz);
        if (n == NULL) {
            a->over_cap = false;
            return NULL;
        }
        n->size = sz;
        n->off = 0;
        /* Keep filling the old chunk's successor: a big one-off block goes
         * behind the head so the head's free space is not wasted. */
        if (c != NULL && sz == need && c->size - c->off > 256) {
            n->next = c->next;
            c->next = n;
            a->used += need;
            n->off = need;
            return (char *)n->data;
        }
        n->next = c;
        a->head = n;
        c = n;
    }
    void *p = (char *)c->data + c->off;
    c->off += need;
    a->used += need;
    return p;
}

void *arena_calloc(struct arena *a, size_t count, size_t size)
{
    if (size != 0 && count > SIZE_MAX / size) {
        return NULL;
    }
    void *p = arena_alloc(a, count * size);
    if (p != NULL) {
        memset(p, 0, count * size);
    }
    return p;
}

void *arena_dup(struct arena *a, const void *src, size_t len)
{
    void *p = arena_alloc(a, len == 0 ? 1 : len);
    if (p != NULL && len > 0) {
        memcpy(p, src, len);
    }
    return p;
}

void arena_free(struct arena *a)
{
    struct arena_chunk *c = a->head;
    for (int guard = 0; c != NULL; guard++) {
        struct arena_chunk *next = c->next;
        mem_free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}

/*
 * kv_result.c - the arena behind struct kv_result.
 *
 * A result holds every array and copied byte of one or more answers. It
 * is a list of chunks, each bump-allocated and freed whole by
 * kv_result_free; chunk sizes double (to 1 MiB) so a large answer costs
 * few allocations, and a small one costs one.
 */
#include <errno.h>
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "consensus/kv/kv_int.h"

#define CHUNK_MIN      2048
#define CHUNK_GROW_MAX ((size_t)1 << 20)

struct kv_chunk {
    struct kv_chunk *next;
    size_t cap;
    size_t used;
    alignas(max_align_t) uint8_t data[];
};

void *kv__alloc(struct kv_result *res, size_t n)
{
    struct kv_chunk *c = res->arena;
    size_t need = (n + 7) & ~(size_t)7;
    ASSERT(need >= n);
    if (c != NULL && c->cap - c->used >= need) {
        void *p = c->data + c->used;
        c->used += need;
        return p;
    }
    size_t cap = c == NULL ? CHUNK_MIN : c->cap * 2;
    if (cap > CHUNK_GROW_MAX) {
        cap = CHUNK_GROW_MAX;
    }
    if (cap < need) {
        cap = need;
    }
    if (cap > SIZE_MAX - sizeof(struct kv_chunk)) {
        return NULL;
    }
    struct kv_chunk *nc = mem_alloc(sizeof(*nc) + cap);
    if (nc == NULL) {
        return NULL;
    }
    nc->cap = cap;
    nc->used = need;
    /* A chunk sized for one big allocation is full at once: put it
     * behind the current chunk, whose free space stays in use. */
    if (c != NULL && cap == need) {
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        res->arena = nc;
    }
    res->bytes += sizeof(*nc) + cap;
    return nc->data;
}

int kv__copy_kv(struct kv_result *res, struct kv_kv *kv, bool with_value)
{
    size_t vlen = with_value ? kv->value_len : 0;
    uint8_t *p = kv__alloc(res, kv->key_len + vlen);
    if (p == NULL) {
        return -ENOMEM;
    }
    memcpy(p, kv->key, kv->key_len);
    kv->key = p;
    if (vlen > 0) {
        memcpy(p + kv->key_len, kv->value, vlen);
        kv->value = p + kv->key_len;
    } else {
        kv->value = NULL;
        kv->value_len = 0;
    }
    return 0;
}

void kv_result_free(struct kv_result *res)
{
    if (res == NULL) {
        return;
    }
    struct kv_chunk *c = res->arena;
    size_t guard = 0;
    while (c != NULL) {
        struct kv_chunk *next = c->next;
        mem_free(c);
        c = next;
        guard++;
        ASSERT(guard < SIZE_MAX);
    }
    res->arena = NULL;
    res->bytes = 0;
}

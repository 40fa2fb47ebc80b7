/* buf.c - bounded byte buffers, varints and a checked reader. */
#include "base/buf.h"

#include <errno.h>

#include "base/alloc.h"
#include "base/err.h"

void buf_init(struct buf *b, size_t cap_max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->cap_max = cap_max == 0 ? BUF_CAP_DEFAULT : cap_max;
}

void buf_free(struct buf *b)
{
    mem_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int buf_reserve(struct buf *b, size_t extra)
{
    size_t need;
    size_t cap;
    uint8_t *p;

    if (extra > b->cap_max || b->len > b->cap_max - extra) {
        return ERR_LIMIT;
    }
    need = b->len + extra;
    if (need <= b->cap) {
        return 0;
    }
    cap = b->cap == 0 ? 256 : b->cap;
    while (cap < need) {
        cap = cap > b->cap_max / 2 ? b->cap_max : cap * 2;
    }
    p = mem_realloc(b->data, cap);
    if (p == NULL) {
        return -ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *data, size_t len)
{
    int rc = buf_reserve(b, len);
    if (rc != 0) {
        return rc;
    }
    if (len > 0) {
        memcpy(b->data + b->len, data, len);
    }
    b->len += len;
    return 0;
}

int buf_append_u8(struct buf *b, uint8_t v)
{
    return buf_append(b, &v, 1);
}

int buf_append_be32(struct buf *b, uint32_t v)
{
    uint8_t tmp[4];
    be32_put(tmp, v);
    return buf_append(b, tmp, sizeof(tmp));
}

int buf_append_be64(struct buf *b, uint64_t v)
{
    uint8_t tmp[8];
    be64_put(tmp, v);
    return buf_append(b, tmp, sizeof(tmp));
}

int buf_append_varint(struct buf *b, uint64_t v)
{
    uint8_t tmp[10];
    return buf_append(b, tmp, varint_put(tmp, v));
}

size_t varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

size_t varint_get(const uint8_t *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < 10; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if ((p[i] & 0x80) == 0) {
            if (i == 9 && p[i] > 1) {
                return 0; /* overflows 64 bits */
            }
            *out = v;
            return i + 1;
        }
    }
    return 0;
}

static int reader_need(struct reader *r, size_t n)
{
    if (r->err != 0) {
        return r->err;
    }
    if (n > r->len - r->off) {
        r->err = ERR_TRUNCATED;
        return r->err;
    }
    return 0;
}

int reader_u8(struct reader *r, uint8_t *out)
{
    int rc = reader_need(r, 1);
    if (rc == 0) {
        *out = r->p[r->off++];
    }
    return rc;
}

int reader_be32(struct reader *r, uint32_t *out)
{
    int rc = reader_need(r, 4);
    if (rc == 0) {
        *out = be32_get(r->p + r->off);
        r->off += 4;
    }
    return rc;
}

int reader_be64(struct reader *r, uint64_t *out)
{
    int rc = reader_need(r, 8);
    if (rc == 0) {
        *out = be64_get(r->p + r->off);
        r->off += 8;
    }
    return rc;
}

int reader_varint(struct reader *r, uint64_t *out)
{
    size_t n;
    if (r->err != 0) {
        return r->err;
    }
    n = varint_get(r->p + r->off, r->len - r->off, out);
    if (n == 0) {
        r->err = ERR_TRUNCATED;
        return r->err;
    }
    r->off += n;
    return 0;
}

int reader_bytes(struct reader *r, size_t n, const uint8_t **out)
{
    int rc = reader_need(r, n);
    if (rc == 0) {
        *out = r->p + r->off;
        r->off += n;
    }
    return rc;
}

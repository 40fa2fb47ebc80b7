/*
 * buf.h - bounded growable byte buffers and fixed-width encoders.
 *
 * Does:     struct buf grows by doubling up to a cap set at init; the be/le
 *           helpers read and write fixed-width integers; varints as protobuf.
 * Owns:     a buf owns its data; buf_free releases it.
 * Threads:  a buf belongs to one thread at a time.
 * Borrowed: buf.data is valid until the next call that may grow the buffer.
 * Errors:   -ENOMEM when allocation fails, ERR_LIMIT when growing past the
 *           cap; on either error the buffer is unchanged.
 * Limits:   the cap given to buf_init (0 means BUF_CAP_DEFAULT).
 * Not here: protobuf messages (generated code in proto/).
 */
#ifndef CAIRN_BASE_BUF_H
#define CAIRN_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BUF_CAP_DEFAULT ((size_t)64 << 20)

struct buf {
    uint8_t *data;
    size_t len;
    size_t cap;     /* bytes allocated */
    size_t cap_max; /* growth limit */
};

void buf_init(struct buf *b, size_t cap_max);
void buf_free(struct buf *b);
static inline void buf_reset(struct buf *b)
{
    b->len = 0;
}

/* Make room for at least extra more bytes. */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_u8(struct buf *b, uint8_t v);
int buf_append_be32(struct buf *b, uint32_t v);
int buf_append_be64(struct buf *b, uint64_t v);
int buf_append_varint(struct buf *b, uint64_t v);

static inline void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static inline void be64_put(uint8_t *p, uint64_t v)
{
    be32_put(p, (uint32_t)(v >> 32));
    be32_put(p + 4, (uint32_t)v);
}

static inline uint64_t be64_get(const uint8_t *p)
{
    return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

static inline void le32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t le32_get(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline void le64_put(uint8_t *p, uint64_t v)
{
    le32_put(p, (uint32_t)v);
    le32_put(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t le64_get(const uint8_t *p)
{
    return (uint64_t)le32_get(p) | (uint64_t)le32_get(p + 4) << 32;
}

/* Write v as a varint at p (at most 10 bytes); returns bytes written. */
size_t varint_put(uint8_t *p, uint64_t v);

/* Read a varint from p[0..len); returns bytes read, or 0 when malformed or
 * truncated (more than 10 bytes, or len runs out). */
size_t varint_get(const uint8_t *p, size_t len, uint64_t *out);

/* A bounds-checked reader over borrowed bytes. Each get returns 0 or
 * ERR_TRUNCATED; after an error the reader stays failed. */
struct reader {
    const uint8_t *p;
    size_t len;
    size_t off;
    int err;
};

static inline void reader_init(struct reader *r, const void *p, size_t len)
{
    r->p = (const uint8_t *)p;
    r->len = len;
    r->off = 0;
    r->err = 0;
}

int reader_u8(struct reader *r, uint8_t *out);
int reader_be32(struct reader *r, uint32_t *out);
int reader_be64(struct reader *r, uint64_t *out);
int reader_varint(struct reader *r, uint64_t *out);
/* Borrow n bytes (pointer valid as long as the underlying memory). */
int reader_bytes(struct reader *r, size_t n, const uint8_t **out);

static inline size_t reader_left(const struct reader *r)
{
    return r->len - r->off;
}

#endif

/*
 * grpc_wire.c - the pure parts of the gRPC layer: message deframing, the
 * grpc-timeout and grpc-message encodings (gRPC PROTOCOL-HTTP2.md), a
 * non-recursive protobuf nesting check, the decode arena and the preface
 * match. No I/O here; tests/unit/grpc drives every function directly.
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "registry/grpc/grpc_int.h"

/* ------------------------------------------------------------- arena */

#define ARENA_ALIGN     16
#define ARENA_BLOCK_MIN 4096
#define ARENA_HDR                                                              \
    ((sizeof(struct grpc_arena_block) + ARENA_ALIGN - 1) &                     \
     ~(size_t)(ARENA_ALIGN - 1))

static void *arena_pa_alloc(void *data, size_t size)
{
    return grpc__arena_alloc(data, size);
}

static void arena_pa_free(void *data, void *ptr)
{
    /* Freed whole by grpc__arena_reset. */
    (void)data;
    (void)ptr;
}

void grpc__arena_init(struct grpc_arena *a, size_t cap_bytes)
{
    a->pa.alloc = arena_pa_alloc;
    a->pa.free = arena_pa_free;
    a->pa.allocator_data = a;
    a->blocks = NULL;
    a->heap_bytes = 0;
    a->cap_bytes = cap_bytes;
    a->inline_used = 0;
    a->failed = 0;
}

void grpc__arena_reset(struct grpc_arena *a)
{
    struct grpc_arena_block *b = a->blocks;
    unsigned long guard = 0;

    while (b != NULL) {
        struct grpc_arena_block *next = b->next;
        mem_free(b);
        b = next;
        ASSERT(++guard < (1UL << 40));
    }
    a->blocks = NULL;
    a->heap_bytes = 0;
    a->inline_used = 0;
    a->failed = 0;
}

void *grpc__arena_alloc(struct grpc_arena *a, size_t size)
{
    struct grpc_arena_block *b;
    size_t want;
    size_t block;

    if (size > a->cap_bytes) {
        a->failed = 1;
        return NULL;
    }
    size = (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (size <= GRPC_ARENA_INLINE - a->inline_used) {
        void *p = a->inline_block + a->inline_used;
        a->inline_used += size;
        return p;
    }
    b = a->blocks;
    if (b != NULL && size <= b->size - b->used) {
        void *p = (uint8_t *)b + ARENA_HDR + b->used;
        b->used += size;
        return p;
    }
    want = b == NULL ? ARENA_BLOCK_MIN : b->size * 2;
    block = size > want ? size : want;
    if (block > a->cap_bytes - a->heap_bytes) {
        block = size; /* last try: exactly what is asked */
        if (block > a->cap_bytes - a->heap_bytes) {
            a->failed = 1;
            return NULL;
        }
    }
    b = mem_alloc(ARENA_HDR + block);
    if (b == NULL) {
        a->failed = 1;
        return NULL;
    }
    b->size = block;
    b->used = size;
    b->next = a->blocks;
    a->blocks = b;
    a->heap_bytes += block;
    ASSERT(a->heap_bytes <= a->cap_bytes);
    return (uint8_t *)b + ARENA_HDR;
}

/* ---------------------------------------------------------- deframer */

void grpc__deframer_init(struct grpc_deframer *d, size_t msg_max)
{
    memset(d->hdr, 0, sizeof(d->hdr));
    d->hdr_len = 0;
    d->compressed = 0;
    d->msg_len = 0;
    buf_init(&d->body, msg_max == 0 ? 1 : msg_max);
    d->msg_max = msg_max;
}

void grpc__deframer_free(struct grpc_deframer *d)
{
    buf_free(&d->body);
    d->hdr_len = 0;
}

void grpc__deframer_reset(struct grpc_deframer *d)
{
    d->hdr_len = 0;
    d->msg_len = 0;
    buf_reset(&d->body);
}

bool grpc__deframer_idle(const struct grpc_deframer *d)
{
    return d->hdr_len == 0;
}

/* The header is complete: check the declared length. */
static int deframer_header(struct grpc_deframer *d, uint32_t *too_big)
{
    d->compressed = d->hdr[0];
    d->msg_len = be32_get(d->hdr + 1);
    if (d->msg_len > d->msg_max) {
        *too_big = d->msg_len;
        return ERR_LIMIT;
    }
    buf_reset(&d->body);
    return 0;
}

/* Deliver the buffered message and get ready for the next header. */
static int deframer_deliver(struct grpc_deframer *d, grpc_deframe_cb cb,
                            void *ctx)
{
    int rc;

    ASSERT(d->hdr_len == GRPC_FRAME_HDR);
    ASSERT(d->body.len == d->msg_len);
    d->hdr_len = 0;
    rc = cb(ctx, d->compressed, d->body.data, d->msg_len);
    buf_reset(&d->body);
    return rc;
}

int grpc__deframer_feed(struct grpc_deframer *d, const uint8_t *p, size_t n,
                        grpc_deframe_cb cb, void *ctx, uint32_t *too_big)
{
    size_t off = 0;
    int rc;

    /* Every pass consumes at least one byte, so n bounds the loop. */
    while (off < n) {
        size_t left = n - off;
        if (d->hdr_len == 0 && left >= GRPC_FRAME_HDR) {
            uint32_t len = be32_get(p + off + 1);
            if (len <= left - GRPC_FRAME_HDR && len <= d->msg_max) {
                /* Whole message in this chunk: no copy. */
                rc = cb(ctx, p[off], p + off + GRPC_FRAME_HDR, len);
                off += GRPC_FRAME_HDR + (size_t)len;
                if (rc != 0) {
                    return rc;
                }
                continue;
            }
        }
        if (d->hdr_len < GRPC_FRAME_HDR) {
            size_t take = GRPC_FRAME_HDR - d->hdr_len;
            take = take < left ? take : left;
            memcpy(d->hdr + d->hdr_len, p + off, take);
            d->hdr_len = (uint8_t)(d->hdr_len + take);
            off += take;
            if (d->hdr_len < GRPC_FRAME_HDR) {
                break;
            }
            rc = deframer_header(d, too_big);
            if (rc != 0) {
                return rc;
            }
        } else {
            size_t need = d->msg_len - d->body.len;
            size_t take = need < left ? need : left;
            rc = buf_append(&d->body, p + off, take);
            if (rc != 0) {
                return rc;
            }
            off += take;
        }
        if (d->hdr_len == GRPC_FRAME_HDR && d->body.len == d->msg_len) {
            rc = deframer_deliver(d, cb, ctx);
            if (rc != 0) {
                return rc;
            }
        }
    }
    ASSERT(off <= n);
    return 0;
}

/* ---------------------------------------------------- small parsers */

int grpc__timeout_parse(const char *s, size_t n, uint64_t *ms_out)
{
    uint64_t v = 0;
    size_t i;

    /* TimeoutValue is 1 to 8 ASCII digits, then one unit letter. */
    if (n < 2 || n > 9) {
        return ERR_INVALID;
    }
    for (i = 0; i + 1 < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return ERR_INVALID;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    switch (s[n - 1]) {
    case 'H':
        *ms_out = v * 3600000;
        return 0;
    case 'M':
        *ms_out = v * 60000;
        return 0;
    case 'S':
        *ms_out = v * 1000;
        return 0;
    case 'm':
        *ms_out = v;
        return 0;
    case 'u':
        *ms_out = (v + 999) / 1000;
        return 0;
    case 'n':
        *ms_out = (v + 999999) / 1000000;
        return 0;
    default:
        return ERR_INVALID;
    }
}

int grpc__percent_encode(struct buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    int rc;

    /* Worst case triples the length; reserve once. */
    if (n > ((size_t)-1) / 3) {
        return ERR_LIMIT;
    }
    rc = buf_reserve(out, n * 3);
    if (rc != 0) {
        return rc;
    }
    for (i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c >= 0x20 && c <= 0x7e && c != '%') {
            out->data[out->len++] = c;
        } else {
            out->data[out->len++] = '%';
            out->data[out->len++] = (uint8_t)hex[c >> 4];
            out->data[out->len++] = (uint8_t)hex[c & 15];
        }
    }
    return 0;
}

uint32_t grpc__hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    size_t i;

    for (i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    return h;
}

int grpc_preface_match(const void *buf, size_t len)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    size_t n = len < GRPC_PREFACE_LEN ? len : GRPC_PREFACE_LEN;

    STATIC_ASSERT(sizeof(preface) - 1 == GRPC_PREFACE_LEN, "preface size");
    if (memcmp(buf, preface, n) != 0) {
        return -1;
    }
    return n == GRPC_PREFACE_LEN ? 1 : 0;
}

/* ------------------------------------------------ protobuf depth walk */

struct pb_frame {
    const ProtobufCMessageDescriptor *desc; /* NULL: unknown submessage */
    size_t end;
};

/* Skip one field's payload; push a frame when it is a known submessage.
 * Returns 0, ERR_BAD_REQUEST, or 1 when a frame should be pushed. */
static int pb_field(const struct pb_frame *f, const uint8_t *p, size_t *off,
                    uint64_t tag, struct pb_frame *child)
{
    const ProtobufCFieldDescriptor *fd;
    uint64_t v;
    size_t k;
    size_t left = f->end - *off;

    switch (tag & 7) {
    case 0: /* varint */
        k = varint_get(p + *off, left, &v);
        if (k == 0) {
            return ERR_BAD_REQUEST;
        }
        *off += k;
        return 0;
    case 1: /* fixed64 */
        if (left < 8) {
            return ERR_BAD_REQUEST;
        }
        *off += 8;
        return 0;
    case 5: /* fixed32 */
        if (left < 4) {
            return ERR_BAD_REQUEST;
        }
        *off += 4;
        return 0;
    case 2: /* length-delimited */
        k = varint_get(p + *off, left, &v);
        if (k == 0 || v > left - k) {
            return ERR_BAD_REQUEST;
        }
        *off += k;
        fd = f->desc == NULL || (tag >> 3) > UINT32_MAX
                 ? NULL
                 : protobuf_c_message_descriptor_get_field(
                       f->desc, (unsigned)(tag >> 3));
        if (fd != NULL && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            child->desc = fd->descriptor;
            child->end = *off + (size_t)v;
            return 1;
        }
        *off += (size_t)v;
        return 0;
    default: /* groups (3, 4) are not proto3; 6 and 7 do not exist */
        return ERR_BAD_REQUEST;
    }
}

int grpc__pb_depth_check(const ProtobufCMessageDescriptor *desc,
                         const uint8_t *p, size_t n, unsigned depth_max)
{
    struct pb_frame st[GRPC_PB_DEPTH_MAX + 1];
    unsigned depth = 0;
    size_t off = 0;
    size_t steps = 0;

    ASSERT(depth_max <= GRPC_PB_DEPTH_MAX);
    st[0].desc = desc;
    st[0].end = n;
    for (;;) {
        uint64_t tag;
        size_t k;
        int rc;

        /* Each step consumes a byte or closes a frame opened by one. */
        ASSERT(++steps <= 2 * n + 2);
        while (depth > 0 && off == st[depth].end) {
            depth--;
        }
        if (depth == 0 && off == n) {
            return 0;
        }
        ASSERT(off < st[depth].end);
        k = varint_get(p + off, st[depth].end - off, &tag);
        if (k == 0 || (tag >> 3) == 0) {
            return ERR_BAD_REQUEST;
        }
        off += k;
        if (depth == depth_max && (tag & 7) == 2) {
            /* A submessage here would be one level too deep. */
            struct pb_frame probe;
            rc = pb_field(&st[depth], p, &off, tag, &probe);
            if (rc == 1) {
                return ERR_LIMIT;
            }
            if (rc != 0) {
                return rc;
            }
            continue;
        }
        rc = pb_field(&st[depth], p, &off, tag, &st[depth + 1]);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            depth++;
        }
    }
}

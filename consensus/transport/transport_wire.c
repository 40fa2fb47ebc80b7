/*
 * transport_wire.c - byte layouts of the hello, the reply and the frame
 * header (tables in transport.h). Pure functions: no I/O, no validation
 * beyond layout; callers check magic, version, types and lengths.
 */
#include "consensus/transport/transport_int.h"

#include "base/assert.h"
#include "base/buf.h"
#include "base/crc32c.h"

STATIC_ASSERT(TRANSPORT_HELLO_BYTES == 4 + 2 + 1 + 1 + 8 + 8 + 8,
              "hello layout");
STATIC_ASSERT(TRANSPORT_REPLY_BYTES == 4 + 2 + 1 + 1 + 8 + 8, "reply layout");
STATIC_ASSERT(TRANSPORT_FRAME_HEADER_BYTES == 4 + 1 + 3 + 4, "frame layout");
STATIC_ASSERT(TRANSPORT_REASON_MAX <= 255, "reason length is one byte");

static void be16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t be16_get(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

void tr__hello_encode(uint8_t *p, const struct tr_hello *h)
{
    be32_put(p, h->magic);
    be16_put(p + 4, h->version);
    p[6] = h->channel;
    p[7] = h->flags;
    be64_put(p + 8, h->cluster_id);
    be64_put(p + 16, h->from);
    be64_put(p + 24, h->to);
}

void tr__hello_decode(const uint8_t *p, struct tr_hello *h)
{
    h->magic = be32_get(p);
    h->version = be16_get(p + 4);
    h->channel = p[6];
    h->flags = p[7];
    h->cluster_id = be64_get(p + 8);
    h->from = be64_get(p + 16);
    h->to = be64_get(p + 24);
}

void tr__reply_encode(uint8_t *p, const struct tr_reply *r)
{
    be32_put(p, r->magic);
    be16_put(p + 4, r->version);
    p[6] = r->status;
    p[7] = r->reason_len;
    be64_put(p + 8, r->cluster_id);
    be64_put(p + 16, r->member_id);
}

void tr__reply_decode(const uint8_t *p, struct tr_reply *r)
{
    r->magic = be32_get(p);
    r->version = be16_get(p + 4);
    r->status = p[6];
    r->reason_len = p[7];
    r->cluster_id = be64_get(p + 8);
    r->member_id = be64_get(p + 16);
}

/* Header for payload[0..len); the payload itself is not copied. */
void tr__frame_encode(uint8_t *p, uint8_t type, const uint8_t *payload,
                      size_t len)
{
    ASSERT(len <= UINT32_MAX);
    ASSERT(payload != NULL || len == 0);
    be32_put(p, (uint32_t)len);
    p[4] = type;
    p[5] = 0;
    p[6] = 0;
    p[7] = 0;
    be32_put(p + 8, len == 0 ? 0 : crc32c(0, payload, len));
}

void tr__frame_decode(const uint8_t *p, struct tr_frame_hdr *h)
{
    h->len = be32_get(p);
    h->type = p[4];
    h->reserved[0] = p[5];
    h->reserved[1] = p[6];
    h->reserved[2] = p[7];
    h->crc = be32_get(p + 8);
}

/*
 * http_chunked.c - the chunked transfer coding of a request body (RFC 9112
 * section 7.1), decoded one byte at a time so that a body split across
 * any number of reads decodes the same.
 *
 * Why ours: libwebsockets 4.1 does not decode a chunked request body. It
 * hands a POST without Content-Length to LWS_CALLBACK_HTTP_BODY raw, as
 * if the body ran to its own 100 MB default; http_server.c feeds those
 * bytes here and dispatches the request once the last chunk and the
 * trailer section are in.
 *
 * Grammar (RFC 9112 7.1, 7.1.1, 7.1.2):
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext    = *( BWS ";" BWS name [ BWS "=" BWS value ] )
 * The extensions and trailer fields are skipped, not interpreted (etcd's
 * gateway ignores them too), within HTTP_CHUNK_EXT_BYTES and
 * HTTP_CHUNK_TRAILER_BYTES per body. Lines end with CRLF only; a bare LF
 * is malformed (Go's reader takes it; being strict costs real clients
 * nothing and leaves no framing a front proxy could read differently).
 *
 * Failure modes: ERR_BAD_REQUEST with Go's wording (etcd answers these
 * with 400 and the same text), ERR_LIMIT as soon as a chunk's size says
 * the decoded body would pass the output buffer's cap (before its data is
 * read), -ENOMEM from the buffer.
 */
#include <string.h>

#include "base/assert.h"
#include "base/err.h"
#include "registry/http/http_int.h"

/* Go's reader allows 16 hex digits (and fails the 17th). */
#define CHUNK_SIZE_DIGITS_MAX 16

static int hex_value(uint8_t ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

static int bad(struct http_chunked *ck, const char *why)
{
    ck->why = why;
    ck->state = HTTP_CHUNK_FAILED;
    return ERR_BAD_REQUEST;
}

/* One byte of the size line: digits, then extensions up to CR. */
static int size_byte(struct http_chunked *ck, uint8_t ch, size_t room)
{
    int v = hex_value(ch);
    if (ck->state == HTTP_CHUNK_SIZE && v >= 0) {
        if (ck->digits == CHUNK_SIZE_DIGITS_MAX) {
            return bad(ck, "http chunk length too large");
        }
        ck->size = ck->size << 4 | (uint64_t)v;
        ck->digits++;
        return 0;
    }
    if (ck->digits == 0) {
        return bad(ck, "invalid byte in chunk length");
    }
    if (ch == '\r') {
        if (ck->size > room) {
            ck->state = HTTP_CHUNK_FAILED;
            return ERR_LIMIT;
        }
        ck->state = HTTP_CHUNK_SIZE_LF;
        return 0;
    }
    /* after the digits: BWS, then ";" opens the extensions, skipped up
     * to the CR (bounded, no control bytes) */
    if (ck->state != HTTP_CHUNK_EXT && ch != ';' && ch != ' ' && ch != '\t') {
        return bad(ck, "invalid byte in chunk length");
    }
    if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
        return bad(ck, "invalid byte in chunk extension");
    }
    if (++ck->ext_bytes > HTTP_CHUNK_EXT_BYTES) {
        return bad(ck, "chunk extensions too long");
    }
    if (ch == ';') {
        ck->state = HTTP_CHUNK_EXT;
    } else if (ck->state == HTTP_CHUNK_SIZE) {
        ck->state = HTTP_CHUNK_BWS;
    }
    return 0;
}

/* One byte of the trailer section (after the last chunk's CRLF). */
static int trailer_byte(struct http_chunked *ck, uint8_t ch)
{
    if (++ck->trailer_bytes > HTTP_CHUNK_TRAILER_BYTES) {
        return bad(ck, "chunked trailer too long");
    }
    switch (ck->state) {
    case HTTP_CHUNK_TRAILER: /* start of a field line or the final CRLF */
        if (ch == '\r') {
            ck->state = HTTP_CHUNK_END_LF;
            return 0;
        }
        if (ch == '\n' || ch == ' ' || ch == '\t' || ch == ':') {
            return bad(ck, "malformed chunked trailer");
        }
        ck->state = HTTP_CHUNK_TRAILER_TEXT;
        return 0;
    case HTTP_CHUNK_TRAILER_TEXT:
        if (ch == '\r') {
            ck->state = HTTP_CHUNK_TRAILER_LF;
        } else if (ch == '\n' || ch == 0) {
            return bad(ck, "malformed chunked trailer");
        }
        return 0;
    case HTTP_CHUNK_TRAILER_LF:
        if (ch != '\n') {
            return bad(ck, "malformed chunked trailer");
        }
        ck->state = HTTP_CHUNK_TRAILER;
        return 0;
    case HTTP_CHUNK_END_LF:
        if (ch != '\n') {
            return bad(ck, "malformed chunked trailer");
        }
        ck->state = HTTP_CHUNK_DONE;
        return 0;
    default:
        ASSERT(false);
        return ERR_BAD_REQUEST;
    }
}

/* One framing byte (anything but chunk data). */
static int frame_byte(struct http_chunked *ck, uint8_t ch, size_t room)
{
    switch (ck->state) {
    case HTTP_CHUNK_SIZE:
    case HTTP_CHUNK_BWS:
    case HTTP_CHUNK_EXT:
        return size_byte(ck, ch, room);
    case HTTP_CHUNK_SIZE_LF:
        if (ch != '\n') {
            return bad(ck, "invalid byte in chunk length");
        }
        ck->state = ck->size == 0 ? HTTP_CHUNK_TRAILER : HTTP_CHUNK_DATA;
        return 0;
    case HTTP_CHUNK_DATA_CR:
        if (ch != '\r') {
            return bad(ck, "malformed chunked encoding");
        }
        ck->state = HTTP_CHUNK_DATA_LF;
        return 0;
    case HTTP_CHUNK_DATA_LF:
        if (ch != '\n') {
            return bad(ck, "malformed chunked encoding");
        }
        ck->state = HTTP_CHUNK_SIZE;
        ck->size = 0;
        ck->digits = 0;
        return 0;
    default:
        return trailer_byte(ck, ch);
    }
}

void http__chunked_init(struct http_chunked *ck)
{
    memset(ck, 0, sizeof(*ck));
    ck->state = HTTP_CHUNK_SIZE;
}

int http__chunked_feed(struct http_chunked *ck, const uint8_t *in, size_t len,
                       struct buf *out, size_t *used)
{
    size_t i = 0;
    int rc;
    ASSERT(out->len <= out->cap_max);
    ASSERT(ck->state != HTTP_CHUNK_FAILED);
    ASSERT(ck->state != HTTP_CHUNK_DONE);
    /* each pass consumes at least one byte: bounded by len */
    while (i < len && ck->state != HTTP_CHUNK_DONE) {
        if (ck->state == HTTP_CHUNK_DATA) {
            size_t n = len - i;
            if ((uint64_t)n > ck->size) {
                n = (size_t)ck->size;
            }
            rc = buf_append(out, in + i, n);
            if (rc != 0) {
                ck->state = HTTP_CHUNK_FAILED;
                return rc; /* -ENOMEM: the size was checked on its line */
            }
            i += n;
            ck->size -= n;
            if (ck->size == 0) {
                ck->state = HTTP_CHUNK_DATA_CR;
            }
            continue;
        }
        rc = frame_byte(ck, in[i], out->cap_max - out->len);
        if (rc != 0) {
            *used = i;
            return rc;
        }
        i++;
    }
    *used = i;
    ASSERT(i <= len);
    return ck->state == HTTP_CHUNK_DONE ? 1 : 0;
}

/*
 * fuzz_http_chunked.c - the chunked request-body decoder
 * (registry/http/http_chunked.c) on arbitrary bytes.
 *
 * Goal: any input ends in "more needed", a complete body, a bound error or
 * ERR_BAD_REQUEST with a reason; never a crash or a leak; a complete body
 * never holds more than the bound; and the result (code, bytes consumed,
 * decoded data) does not depend on how the input was split into reads:
 * whole, in pieces of a size the input picks, and byte by byte agree.
 *
 * Input: byte 0 picks the piece size (1..256) and byte 1 the body bound
 * (1 + 0..255 * 16 bytes; never 0, which buf_init takes as its default
 * cap, as --max-request-bytes is never 0); the rest is the body as it
 * arrives on the wire.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "registry/http/http_int.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 8192

struct run {
    int rc;
    size_t used;
    struct buf out;
};

static void decode(const uint8_t *p, size_t len, size_t step, size_t cap,
                   struct run *r)
{
    struct http_chunked ck;
    size_t off = 0;
    http__chunked_init(&ck);
    buf_init(&r->out, cap);
    r->rc = 0;
    while (off < len && r->rc == 0) {
        size_t n = len - off < step ? len - off : step;
        size_t used = 0;
        r->rc = http__chunked_feed(&ck, p + off, n, &r->out, &used);
        FUZZ_CHECK(used <= n);
        FUZZ_CHECK(r->rc != 0 || used == n);
        FUZZ_CHECK(r->rc != ERR_BAD_REQUEST || ck.why != NULL);
        off += used;
    }
    r->used = off;
    FUZZ_CHECK(r->out.len <= cap);
    FUZZ_CHECK(r->rc == 0 || r->rc == 1 || r->rc == ERR_BAD_REQUEST ||
               r->rc == ERR_LIMIT);
}

static void same(const struct run *a, const struct run *b)
{
    FUZZ_CHECK(a->rc == b->rc);
    FUZZ_CHECK(a->used == b->used);
    FUZZ_CHECK(a->out.len == b->out.len);
    FUZZ_CHECK(a->out.len == 0 ||
               memcmp(a->out.data, b->out.data, a->out.len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct run whole;
    struct run pieces;
    struct run bytes;
    if (size < 2 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    size_t step = (size_t)data[0] + 1;
    size_t cap = (size_t)data[1] * 16 + 1; /* 0 would mean "no cap" */
    data += 2;
    size -= 2;
    decode(data, size, size > 0 ? size : 1, cap, &whole);
    decode(data, size, step, cap, &pieces);
    decode(data, size, 1, cap, &bytes);
    same(&whole, &pieces);
    same(&whole, &bytes);
    buf_free(&whole.out);
    buf_free(&pieces.out);
    buf_free(&bytes.out);
    return 0;
}

/*
 * fuzz_grpc_wire.c - the gRPC layer's own parsing (registry/grpc/
 * grpc_wire.c): the length-prefixed message deframer, the protobuf nesting
 * check that runs before protobuf-c's recursive decoder, the request decode
 * into the call arena, and the grpc-timeout parser.
 *
 * Goal: no crash, no read past the input, no unbounded allocation; the
 * deframer delivers the same messages whatever the chunking of the stream
 * (DATA frames split a stream anywhere); a message that passes the depth
 * check decodes with protobuf-c without overflowing the stack.
 *
 * Input: byte 0 picks the request type (api_methods' request
 * descriptors), byte 1 seeds the chunk sizes, the rest is the stream of
 * gRPC messages as a client would send it in DATA frames.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "registry/grpc/grpc_int.h"
#include "registry/server/server.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 16384
#define MSG_MAX      4096 /* small, so that ERR_LIMIT is reachable */
#define MSGS_MAX     256

struct seen {
    const ProtobufCMessageDescriptor *desc;
    struct grpc_arena *arena;
    size_t count;
    uint64_t hash[MSGS_MAX];
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_setup(LOG_FATAL, LOG_FORMAT_TEXT, stderr);
    return 0;
}

static uint64_t fnv(const uint8_t *p, size_t n, int compressed)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)compressed;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h ^ n;
}

static int on_msg(void *ctx, int compressed, const uint8_t *data, size_t len)
{
    struct seen *s = ctx;
    FUZZ_CHECK(len <= MSG_MAX);
    if (s->count == MSGS_MAX) {
        return 1; /* enough: stop both runs at the same message */
    }
    s->hash[s->count++] = fnv(data, len, compressed);
    if (s->arena != NULL) {
        /* What grpc_call.c does with each request message. */
        grpc__arena_reset(s->arena);
        int rc = grpc__pb_depth_check(s->desc, data, len, GRPC_PB_DEPTH_MAX);
        FUZZ_CHECK(rc == 0 || rc == ERR_LIMIT || rc == ERR_BAD_REQUEST);
        if (rc == 0) {
            ProtobufCMessage *m =
                protobuf_c_message_unpack(s->desc, &s->arena->pa, len, data);
            (void)m; /* freed with the arena */
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    const ProtobufCMessageDescriptor *desc =
        api_methods[data[0] % api_methods_count].req_desc;
    uint32_t chunk_seed = data[1];
    size_t n = size - 2;
    uint8_t *p = malloc(n ? n : 1);
    memcpy(p, data + 2, n);

    /* Whole stream in one feed, decoding each message. */
    static struct grpc_arena arena;
    struct grpc_deframer d1, d2;
    struct seen s1 = {.desc = desc, .arena = &arena};
    struct seen s2 = {.desc = desc};
    uint32_t big1 = 0, big2 = 0;
    grpc__arena_init(&arena, (size_t)1 << 20);
    grpc__deframer_init(&d1, MSG_MAX);
    int rc1 = grpc__deframer_feed(&d1, p, n, on_msg, &s1, &big1);

    /* The same stream in chunks of 1..16 bytes (pattern from byte 1). */
    grpc__deframer_init(&d2, MSG_MAX);
    int rc2 = 0;
    size_t off = 0;
    while (off < n && rc2 == 0) {
        size_t c = 1 + ((chunk_seed + off * 7) % 16);
        if (c > n - off) {
            c = n - off;
        }
        /* Each chunk from its own allocation: overreads are caught. */
        uint8_t *chunk = malloc(c);
        memcpy(chunk, p + off, c);
        rc2 = grpc__deframer_feed(&d2, chunk, c, on_msg, &s2, &big2);
        free(chunk);
        off += c;
    }
    FUZZ_CHECK(rc1 == 0 || rc1 == ERR_LIMIT || rc1 == 1);
    FUZZ_CHECK(rc1 == rc2);
    FUZZ_CHECK(big1 == big2);
    FUZZ_CHECK(s1.count == s2.count);
    FUZZ_CHECK(memcmp(s1.hash, s2.hash, s1.count * sizeof(s1.hash[0])) == 0);
    if (rc1 == 0) {
        FUZZ_CHECK(grpc__deframer_idle(&d1) == grpc__deframer_idle(&d2));
        FUZZ_CHECK(grpc__deframer_held(&d1) == grpc__deframer_held(&d2));
    }
    grpc__deframer_free(&d1);
    grpc__deframer_free(&d2);
    grpc__arena_reset(&arena);

    /* The first bytes as a grpc-timeout header value. */
    uint64_t ms = 0;
    size_t tn = n < 12 ? n : 12;
    char *t = malloc(tn ? tn : 1);
    memcpy(t, p, tn);
    if (grpc__timeout_parse(t, tn, &ms) == 0) {
        FUZZ_CHECK(tn >= 2 && tn <= 9);
    }
    free(t);
    free(p);
    return 0;
}

/*
 * fuzz_raft_codec.c - the Raft message codec (consensus/raft/raft_codec.c)
 * on arbitrary bytes, as a peer could send them.
 *
 * Goal: raft_msg_decode returns an error or a message, never crashes, reads
 * out of bounds or allocates more than the input justifies; whatever
 * decodes re-encodes to exactly the same bytes (the format is canonical),
 * and every membership-change entry inside it decodes or fails cleanly and
 * re-encodes to its own bytes too.
 *
 * Method: each input is decoded as given and, a second time, with its last
 * four bytes replaced by the right CRC-32C, so the fuzzer explores the body
 * and does not spend its time guessing checksums.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "consensus/raft/raft.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 8192

static void check_conf_change(const struct raft_entry *e)
{
    struct raft_conf_change cc;
    struct buf b;
    if (raft_conf_change_decode(e->data, e->len, &cc) != 0) {
        return;
    }
    buf_init(&b, 0);
    FUZZ_CHECK(raft_conf_change_encode(&cc, &b) == 0);
    FUZZ_CHECK(b.len == e->len);
    FUZZ_CHECK(memcmp(b.data, e->data, e->len) == 0);
    buf_free(&b);
}

static void decode_one(const uint8_t *p, size_t len)
{
    struct raft_msg m;
    struct buf b;
    if (raft_msg_decode(p, len, 0, &m) != 0) {
        return;
    }
    for (uint32_t i = 0; i < m.entries_count; i++) {
        if (m.entries[i].type == RAFT_ENTRY_CONF) {
            check_conf_change(&m.entries[i]);
        }
    }
    if (m.type == RAFT_MSG_SNAP) {
        (void)raft_msg_type_str(m.type);
    }
    /* Round trip: the encoding of what decoded is the input itself. */
    buf_init(&b, 0);
    FUZZ_CHECK(raft_msg_encode(&m, &b) == 0);
    FUZZ_CHECK(b.len == len);
    FUZZ_CHECK(memcmp(b.data, p, len) == 0);
    buf_free(&b);
    raft_msg_free_decoded(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy: ASan then catches a read one past the input. */
    uint8_t *p = malloc(size ? size : 1);
    memcpy(p, data, size);
    decode_one(p, size);
    if (size >= RAFT_MSG_HEADER_BYTES + 4) {
        uint32_t crc = crc32c(0, p, size - 4);
        if (be32_get(p + size - 4) != crc) {
            be32_put(p + size - 4, crc);
            decode_one(p, size);
        }
    }
    /* The same bytes as a bare membership-change payload. */
    struct raft_entry e = {
        .type = RAFT_ENTRY_CONF, .data = p, .len = (uint32_t)size};
    check_conf_change(&e);
    free(p);
    return 0;
}

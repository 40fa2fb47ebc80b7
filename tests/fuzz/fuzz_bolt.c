/*
 * fuzz_bolt.c - the bbolt reader (consensus/kv/bolt.c) on arbitrary file
 * contents, as `cairnctl snapshot status` gets them from any file.
 *
 * Goal: any bytes give a status or one of the documented errors with a
 * message, never a crash, a read outside the input, a leak, an endless
 * loop or deep recursion (a page loop, overlapping elements, nested
 * inline buckets); a status is the same when asked twice, its size is
 * within the input and its key count within what the input can hold.
 *
 * Input: byte 0 is control: bit 0 set rewrites the FNV-1a checksum of
 * both meta pages (at 0 and at the page size meta 0 names, else 4096) so
 * the fuzzer gets past them to the tree. The rest is the file. Seeds in
 * corpus/bolt, each with the control byte 0x01 in front: real files
 * (etcd 3.4.23 snapshots with their SHA-256 trailer; small bbolt 1.3 files
 * with 512 and 1024-byte pages, a freelist or none, nested and inline
 * buckets, overflow values) and crafted ones (crafted-*: page loops, a
 * bucket whose root is the root page, overlapping elements and buckets,
 * a branch chain past the depth limit, deep inline buckets).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "consensus/kv/bolt.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 49152
#define META_AT      16u /* the meta follows its page header */
#define META_SUM     56u

static void fix_meta(uint8_t *p, size_t n, size_t off)
{
    if (off + META_AT + META_SUM + 8 > n) {
        return;
    }
    uint8_t *m = p + off + META_AT;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < META_SUM; i++) {
        h ^= m[i];
        h *= 1099511628211ull;
    }
    le64_put(m + META_SUM, h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bolt_status a, b;
    char msg[256];
    if (size < 1 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    size_t n = size - 1;
    /* An exact-size copy, so that ASan sees any read past the file. */
    uint8_t *p = malloc(n > 0 ? n : 1);
    FUZZ_CHECK(p != NULL);
    memcpy(p, data + 1, n);
    if ((data[0] & 1) != 0) {
        size_t ps = 4096;
        if (n >= META_AT + 12) {
            uint32_t v = le32_get(p + META_AT + 8);
            if (v >= 512 && v <= 65536 && (v & (v - 1)) == 0) {
                ps = v;
            }
        }
        fix_meta(p, n, 0);
        fix_meta(p, n, ps);
    }
    (void)bolt_is_bolt(p, n);
    msg[0] = 'x';
    int rc = bolt_status_mem(p, n, &a, msg, sizeof(msg));
    FUZZ_CHECK(rc == 0 || rc == ERR_BAD_MAGIC || rc == ERR_BAD_VERSION ||
               rc == ERR_CORRUPT || rc == -ENOMEM);
    FUZZ_CHECK(memchr(msg, '\0', sizeof(msg)) != NULL);
    if (rc == 0) {
        FUZZ_CHECK(a.total_size > 0 && (uint64_t)a.total_size <= n);
        FUZZ_CHECK(a.total_key >= 0 && (uint64_t)a.total_key <= n / 16 + 16);
        FUZZ_CHECK(bolt_status_mem(p, n, &b, msg, sizeof(msg)) == 0);
        FUZZ_CHECK(a.hash == b.hash && a.revision == b.revision &&
                   a.total_key == b.total_key && a.total_size == b.total_size);
    } else {
        FUZZ_CHECK(msg[0] != '\0' && strcmp(msg, "no error") != 0);
    }
    free(p);
    return 0;
}

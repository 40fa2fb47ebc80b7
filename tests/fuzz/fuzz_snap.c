/*
 * fuzz_snap.c - the snapshot file loader (consensus/log, log_snap_load) on
 * arbitrary file contents, through the public API.
 *
 * Goal: loading a snapshot directory holding any bytes returns ERR_NOT_FOUND,
 * a corruption error or a snapshot, never crashes; a loaded snapshot's
 * lengths are within the documented bounds, and saving it again and
 * loading gives the same bytes.
 *
 * Input: byte 0 is control: bit 0 set rewrites the header and body
 * checksums so the fuzzer gets past them; bit 1 set splits the rest into
 * two files at the offset in bytes 1-2 (the loader picks the newest and
 * may fall back to the older one). Files are named from their headers
 * (index at 16, term at 24), as the loader expects.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/log/log.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 8192
#define SNAP_HDR     64u

static char root[256];
static char snap[512];

static void cleanup(void)
{
    fuzz_empty_dir(root);
    rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_setup(LOG_FATAL, LOG_FORMAT_TEXT, stderr);
    fuzz_scratch_dir(root, sizeof(root));
    snprintf(snap, sizeof(snap), "%s/snap", root);
    atexit(cleanup);
    return 0;
}

static void fix_crcs(uint8_t *p, size_t n)
{
    if (n < SNAP_HDR) {
        return;
    }
    uint64_t body = n - SNAP_HDR;
    uint64_t conf = le32_get(p + 32);
    if (conf > body) {
        conf = body;
    }
    uint64_t plen = le64_get(p + 40);
    if (plen > body - conf) {
        plen = body - conf;
    }
    le32_put(p + 48, crc32c(0, p + SNAP_HDR, (size_t)(conf + plen)));
    le32_put(p + 60, crc32c(0, p, 60));
}

static void write_snap(uint8_t *p, size_t n, int fix)
{
    char name[64];
    uint64_t index = 1, term = 1;
    if (fix) {
        fix_crcs(p, n);
    }
    if (n >= 32) {
        index = le64_get(p + 16);
        term = le64_get(p + 24);
    }
    snprintf(name, sizeof(name), "%016" PRIx64 "-%016" PRIx64 ".snap", index,
             term);
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", snap, name);
    if (access(path, F_OK) == 0) {
        return;
    }
    fuzz_write_file(snap, name, p, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int fix = data[0] & 1;
    int two = (data[0] & 2) && size >= 3;
    size_t hdr = two ? 3 : 1;
    uint8_t *p = malloc(size);
    memcpy(p, data, size);
    fuzz_empty_dir(root);
    FUZZ_CHECK(mkdir(snap, 0700) == 0);
    size_t n = size - hdr;
    if (two) {
        size_t cut = (size_t)(p[1] | p[2] << 8) % (n + 1);
        write_snap(p + hdr, cut, fix);
        write_snap(p + hdr + cut, n - cut, fix);
    } else {
        write_snap(p + hdr, n, fix);
    }
    free(p);

    struct log_snap s;
    char msg[256];
    msg[0] = '\0';
    int rc = log_snap_load(snap, &s, msg, sizeof(msg));
    if (rc != 0) {
        FUZZ_CHECK(rc < 0);
        FUZZ_CHECK(rc == ERR_NOT_FOUND || msg[0] != '\0');
        return 0;
    }
    FUZZ_CHECK(s.conf_len <= LOG_SNAP_CONF_BYTES_MAX);
    FUZZ_CHECK((s.flags & ~LOG_SNAP_FLAG_PATH) == 0);
    FUZZ_CHECK(s.payload_len <= ((s.flags & LOG_SNAP_FLAG_PATH)
                                     ? (uint64_t)PATH_MAX
                                     : LOG_SNAP_INLINE_BYTES_MAX));
    /* A path payload is handed out NUL-terminated. */
    FUZZ_CHECK(s.payload[s.payload_len] == 0);

    /* Save it again under a fresh directory and load the same bytes. */
    char again[600];
    snprintf(again, sizeof(again), "%s/again", root);
    struct log_snap_meta m = {.index = s.index,
                              .term = s.term,
                              .conf = s.conf,
                              .conf_len = s.conf_len};
    rc = log_snap_save(again, &m, s.flags, s.payload, s.payload_len, 0);
    FUZZ_CHECK(rc == 0);
    struct log_snap s2;
    rc = log_snap_load(again, &s2, msg, sizeof(msg));
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(s2.index == s.index && s2.term == s.term);
    FUZZ_CHECK(s2.flags == s.flags);
    FUZZ_CHECK(s2.conf_len == s.conf_len);
    FUZZ_CHECK(s2.payload_len == s.payload_len);
    FUZZ_CHECK(memcmp(s2.conf, s.conf, s.conf_len) == 0);
    FUZZ_CHECK(memcmp(s2.payload, s.payload, (size_t)s.payload_len) == 0);
    log_snap_free(&s2);
    log_snap_free(&s);
    return 0;
}

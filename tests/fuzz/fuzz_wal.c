/*
 * fuzz_wal.c - WAL recovery (consensus/log, log_open) on arbitrary segment
 * file contents, through the public log API only.
 *
 * Goal: opening a WAL directory whose segments hold any bytes returns an
 * error or a valid log, never crashes. A log that opened is usable: every
 * entry it reports reads back (log_entries verifies each record's
 * checksum), an append after its last entry succeeds, and reopening it
 * gives the same log plus that entry.
 *
 * Input: byte 0 is control: bit 0 set rewrites the checksums of the
 * segment header, of each frame header and body and of each record
 * (walking the layout in log.h as far as the lengths make sense), so the
 * fuzzer explores the structure behind them; bit 1 set splits the rest
 * into two segments at the offset in bytes 1-2. Each segment is named
 * from its own header (seq at 16, first index at 24), as the log names
 * them; a name that repeats keeps the first.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/log/log.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 16384
#define SEG_HDR      64u
#define FRM_HDR      32u
#define ENTRIES_MAX  4096u

static char root[256];
static char wal[512];

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
    snprintf(wal, sizeof(wal), "%s/wal", root);
    atexit(cleanup);
    return 0;
}

/* Rewrite every checksum the layout lets us find (log.h's tables). */
static void fix_crcs(uint8_t *p, size_t n)
{
    if (n < SEG_HDR) {
        return;
    }
    le32_put(p + 60, crc32c(0, p, 60));
    uint8_t salt[8];
    memcpy(salt, p + 40, 8);
    size_t off = SEG_HDR;
    for (int frames = 0; frames < 64 && off + FRM_HDR <= n; frames++) {
        uint8_t *h = p + off;
        uint32_t body_len = le32_get(h + 4);
        uint32_t count = le32_get(h + 16);
        if (body_len > n - off - FRM_HDR) {
            body_len = (uint32_t)(n - off - FRM_HDR) & ~7u;
        }
        /* Records first: the body checksum covers them. */
        size_t ro = 0;
        for (uint32_t k = 0; k < count && ro + 8 <= body_len; k++) {
            uint8_t *r = h + FRM_HDR + ro;
            uint32_t len = le32_get(r);
            if (len > body_len - ro - 8) {
                break;
            }
            le32_put(r + 4, crc32c(crc32c(0, r, 4), r + 8, len));
            ro += 8 + ((len + 7u) & ~7u);
        }
        le32_put(h + 20, crc32c(0, h + FRM_HDR, body_len));
        le32_put(h + 28, crc32c(crc32c(0, salt, 8), h, 28));
        off += FRM_HDR + body_len;
    }
}

static void write_segment(uint8_t *p, size_t n, int fix)
{
    char name[64];
    uint64_t seq = 1, first = 1;
    if (fix) {
        fix_crcs(p, n);
    }
    if (n >= 32) {
        seq = le64_get(p + 16);
        first = le64_get(p + 24);
    }
    snprintf(name, sizeof(name), "%016" PRIx64 "-%016" PRIx64 ".wal", seq,
             first);
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", wal, name);
    if (access(path, F_OK) == 0) {
        return;
    }
    fuzz_write_file(wal, name, p, n);
}

struct view {
    uint64_t first, last;
    struct log_hard_state hs;
    uint64_t hash; /* of every entry's index, term, type and data */
};

static int read_view(struct log *l, struct view *v)
{
    static struct log_entry out[64];
    static uint8_t arena[1 << 16];
    v->first = log_first_index(l);
    v->last = log_last_index(l);
    log_hard_state(l, &v->hs);
    v->hash = 1469598103934665603ull;
    /* last may be UINT64_MAX (a segment named near the top): no + 1. */
    FUZZ_CHECK(v->first >= 1 && v->last >= v->first - 1);
    if (v->last - (v->first - 1) > ENTRIES_MAX) {
        return -1; /* too many to read back here; still a valid open */
    }
    if (v->last == UINT64_MAX) {
        /* log_entries takes [lo, hi): the entry at UINT64_MAX cannot be
         * asked for. Such a log opened without harm; stop here. */
        return -1;
    }
    uint64_t term;
    FUZZ_CHECK(log_term(l, v->first - 1, &term) == 0);
    for (uint64_t i = v->first; i <= v->last;) {
        size_t count = 0;
        int rc = log_entries(l, i, v->last + 1, UINT64_MAX, out, 64, arena,
                             sizeof(arena), &count);
        if (rc == ERR_LIMIT) {
            return -1; /* an entry larger than our arena */
        }
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(count > 0);
        for (size_t k = 0; k < count; k++) {
            FUZZ_CHECK(out[k].index == i + k);
            FUZZ_CHECK(log_term(l, out[k].index, &term) == 0);
            FUZZ_CHECK(term == out[k].term);
            v->hash = (v->hash ^ out[k].index ^ out[k].term ^ out[k].type) *
                      1099511628211ull;
            for (uint32_t b = 0; b < out[k].len; b++) {
                v->hash = (v->hash ^ out[k].data[b]) * 1099511628211ull;
            }
        }
        i += count;
    }
    return 0;
}

static const struct log_options opts = {.segment_bytes = 4096,
                                        .entries_max = 1u << 20};

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
    FUZZ_CHECK(mkdir(wal, 0700) == 0);
    size_t n = size - hdr;
    if (two) {
        size_t cut = (size_t)(p[1] | p[2] << 8) % (n + 1);
        write_segment(p + hdr, cut, fix);
        write_segment(p + hdr + cut, n - cut, fix);
    } else {
        write_segment(p + hdr, n, fix);
    }
    free(p);

    struct log *l = NULL;
    char msg[256];
    msg[0] = '\0';
    int rc = log_open(wal, &opts, &l, msg, sizeof(msg));
    if (rc != 0) {
        FUZZ_CHECK(rc < 0);
        FUZZ_CHECK(l == NULL);
        return 0;
    }
    struct view v1, v2;
    if (read_view(l, &v1) != 0) {
        log_close(l);
        return 0;
    }
    /* The recovered log takes an append after its end... */
    uint64_t term = 0;
    FUZZ_CHECK(log_term(l, v1.last, &term) == 0);
    static const uint8_t payload[] = "fuzz";
    struct log_entry e = {.index = v1.last + 1,
                          .term = term,
                          .type = 0,
                          .data = payload,
                          .len = sizeof(payload)};
    int arc = v1.last == UINT64_MAX ? -1 : log_append(l, &e, 1, NULL);
    if (arc != 0 && arc != -1) {
        fprintf(stderr, "append at %llu (term %llu) after recovery: %s\n",
                (unsigned long long)e.index, (unsigned long long)term,
                err_str(arc));
    }
    if (arc != 0) {
        /* Only limits may refuse it: entries_max, or an index at the top
         * of the range (a segment named near UINT64_MAX). */
        FUZZ_CHECK(arc == -1 || arc == ERR_LIMIT ||
                   (arc == ERR_INVALID && e.index > UINT64_MAX / 2));
    }
    if (arc == 0) {
        FUZZ_CHECK(read_view(l, &v1) == 0);
    }
    log_close(l);
    /* ...and reopens as the same log. */
    l = NULL;
    rc = log_open(wal, &opts, &l, msg, sizeof(msg));
    if (rc != 0) {
        fprintf(stderr, "reopen failed: %s (%s)\n", err_str(rc), msg);
    }
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(read_view(l, &v2) == 0);
    FUZZ_CHECK(v1.first == v2.first && v1.last == v2.last);
    FUZZ_CHECK(v1.hash == v2.hash);
    FUZZ_CHECK(memcmp(&v1.hs, &v2.hs, sizeof(v1.hs)) == 0);
    log_close(l);
    return 0;
}

/*
 * test_log.c - unit tests for consensus/log: the WAL and snapshot files.
 *
 * Goal: what is appended and reported durable comes back after a reopen,
 * byte for byte; a torn tail is cut back to the last whole frame at every
 * possible tear point; damage before the tail is refused with ERR_CORRUPT
 * naming file and offset; snapshots, release, reset, limits, allocation
 * failures and I/O failures behave as log.h says.
 *
 * Method: real files in a fresh temp directory per test (TMPDIR or /tmp).
 * Damage is made by editing copies of real segment files (truncate, zero,
 * flip bits). The frame layout used to find frame boundaries is the byte
 * table in log.h. I/O failure is real: RLIMIT_FSIZE makes the kernel refuse
 * a write past a size. One test runs the log through a VFS table of its
 * own (log_vfs.h) that forwards to the POSIX one, counts the calls, supplies
 * the salts and fails a sync on demand.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/log/log.h"
#include "consensus/log/log_vfs.h"

/* Paths here are short temp paths; the warning counts worst cases. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define SEG_SMALL 16384
#define DATA_MAX  400

struct fx {
    char root[256];
    char wal[300];
    char snap[300];
    char msg[512];
};

/* ------------------------------------------------------------- helpers */

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static void rm_tree(const char *p)
{
    nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    assert_non_null(f);
    snprintf(f->root, sizeof(f->root), "%s/cairn-log-XXXXXX",
             tmp != NULL ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->wal, sizeof(f->wal), "%s/wal", f->root);
    snprintf(f->snap, sizeof(f->snap), "%s/snap", f->root);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    mem_fail_after(0, 0);
    rm_tree(f->root);
    free(f);
    return 0;
}

static uint32_t len_for(uint64_t i)
{
    return (uint32_t)((i * 37) % DATA_MAX);
}

/* Entry data is a function of (index, term): a reread can be checked. */
static void fill(uint8_t *p, uint32_t len, uint64_t i, uint64_t term)
{
    for (uint32_t k = 0; k < len; k++) {
        p[k] = (uint8_t)((i * 131 + term * 7 + k * 13) % 255 + 1);
    }
}

/* Append [lo, hi) with term, in batches of batch entries. */
static void append_range(struct log *l, uint64_t lo, uint64_t hi, uint64_t term,
                         size_t batch)
{
    static uint8_t data[64][DATA_MAX];
    struct log_entry e[64];
    assert_true(batch >= 1 && batch <= 64);
    for (uint64_t i = lo; i < hi;) {
        size_t n = 0;
        while (n < batch && i < hi) {
            e[n].index = i;
            e[n].term = term;
            e[n].type = (uint8_t)(i % 3);
            e[n].len = len_for(i);
            fill(data[n], e[n].len, i, term);
            e[n].data = data[n];
            n++;
            i++;
        }
        assert_int_equal(log_append(l, e, n, NULL), 0);
    }
}

/* Append one batch [lo, hi) with term and expect rc. */
static void append_range_rc(struct log *l, uint64_t lo, uint64_t hi,
                            uint64_t term, int rc)
{
    static uint8_t data[64][DATA_MAX];
    struct log_entry e[64];
    size_t n = 0;
    assert_true(hi > lo && hi - lo <= 64);
    for (uint64_t i = lo; i < hi; i++, n++) {
        e[n].index = i;
        e[n].term = term;
        e[n].type = (uint8_t)(i % 3);
        e[n].len = len_for(i);
        fill(data[n], e[n].len, i, term);
        e[n].data = data[n];
    }
    assert_int_equal(log_append(l, e, n, NULL), rc);
}

/* Read [lo, hi) back and check data, type and term(i) via term_of. */
static void check_range(struct log *l, uint64_t lo, uint64_t hi,
                        uint64_t (*term_of)(uint64_t))
{
    static uint8_t arena[32 * DATA_MAX];
    uint8_t want[DATA_MAX];
    struct log_entry out[32];
    uint64_t i = lo;
    while (i < hi) {
        size_t n = 0;
        assert_int_equal(log_entries(l, i, hi, UINT64_MAX, out, 32, arena,
                                     sizeof(arena), &n),
                         0);
        assert_true(n >= 1);
        for (size_t k = 0; k < n; k++, i++) {
            uint64_t t;
            assert_int_equal(out[k].index, i);
            assert_int_equal(out[k].term, term_of(i));
            assert_int_equal(out[k].type, i % 3);
            assert_int_equal(out[k].len, len_for(i));
            fill(want, out[k].len, i, out[k].term);
            assert_memory_equal(out[k].data, want, out[k].len);
            assert_int_equal(log_term(l, i, &t), 0);
            assert_int_equal(t, term_of(i));
            /* the same from memory alone (load_wal's dataless head) */
            uint8_t ty = 0xff;
            uint32_t ln = 0;
            t = 0;
            assert_int_equal(log_entry_meta(l, i, &t, &ty, &ln), 0);
            assert_int_equal(t, term_of(i));
            assert_int_equal(ty, i % 3);
            assert_int_equal(ln, len_for(i));
        }
    }
}

static uint64_t term_one(uint64_t i)
{
    (void)i;
    return 1;
}

static struct log *open_ok(struct fx *f, uint64_t seg_bytes)
{
    struct log_options o = {.segment_bytes = seg_bytes};
    struct log *l = NULL;
    int rc = log_open(f->wal, &o, &l, f->msg, sizeof(f->msg));
    if (rc != 0) {
        fail_msg("log_open: %s: %s", err_str(rc), f->msg);
    }
    assert_non_null(l);
    return l;
}

static int open_rc(struct fx *f, const char *dir, uint64_t seg_bytes,
                   struct log **l)
{
    struct log_options o = {.segment_bytes = seg_bytes};
    f->msg[0] = 0;
    *l = NULL;
    return log_open(dir, &o, l, f->msg, sizeof(f->msg));
}

/* How many files in dir have text in their names. */
static size_t files_named(const char *dir, const char *text)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        n += strstr(de->d_name, text) != NULL;
    }
    closedir(d);
    return n;
}

/* Names of the segment files in dir, sorted; returns the count. */
static size_t seg_files(const char *dir, char names[][64], size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t n = 0;
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name);
        if (nl > 4 && strcmp(de->d_name + nl - 4, ".wal") == 0) {
            assert_true(n < cap);
            snprintf(names[n++], 64, "%s", de->d_name);
        }
    }
    closedir(d);
    qsort(names, n, 64, (int (*)(const void *, const void *))strcmp);
    return n;
}

static size_t seg_count(const char *dir)
{
    static char names[4096][64];
    return seg_files(dir, names, 4096);
}

static void last_seg_path(const char *dir, char *out, size_t len)
{
    static char names[4096][64];
    size_t n = seg_files(dir, names, 4096);
    assert_true(n > 0);
    snprintf(out, len, "%s/%s", dir, names[n - 1]);
}

/* Frame end offsets of a segment file (log.h byte table): ends[k] is where
 * frame k+1 ends. Returns the number of frames. */
static size_t frame_ends(const char *path, uint64_t *ends, size_t cap)
{
    int fd = open(path, O_RDONLY);
    uint8_t h[32];
    uint64_t off = 64;
    size_t n = 0;
    assert_true(fd >= 0);
    while (pread(fd, h, 32, (off_t)off) == 32 && le32_get(h) == 0x314D5246u) {
        off += 32 + le32_get(h + 4);
        assert_true(n < cap);
        ends[n++] = off;
    }
    close(fd);
    return n;
}

static void copy_file(const char *from, const char *to)
{
    static uint8_t b[1 << 16];
    int in = open(from, O_RDONLY);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ssize_t n;
    assert_true(in >= 0 && out >= 0);
    while ((n = read(in, b, sizeof(b))) > 0) {
        assert_int_equal(write(out, b, (size_t)n), n);
    }
    close(in);
    close(out);
}

/* Copy the flat directory from into a fresh directory to. */
static void copy_dir(const char *from, const char *to)
{
    DIR *d = opendir(from);
    struct dirent *de;
    char a[600], b[600];
    rm_tree(to);
    assert_int_equal(mkdir(to, 0700), 0);
    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }
        snprintf(a, sizeof(a), "%s/%s", from, de->d_name);
        snprintf(b, sizeof(b), "%s/%s", to, de->d_name);
        copy_file(a, b);
    }
    closedir(d);
}

static void patch(const char *path, uint64_t off, const void *p, size_t len)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, p, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static void flip_bit(const char *path, uint64_t off, int bit)
{
    uint8_t c;
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= (uint8_t)(1u << bit);
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

/* --------------------------------------------------------------- tests */

static void fresh_log_is_empty_and_reopens_empty(void **state)
{
    struct fx *f = *state;
    struct log_hard_state hs;
    struct log *l = open_ok(f, 0);
    uint64_t t = 99;
    struct stat st;
    char path[600];

    assert_int_equal(log_first_index(l), 1);
    assert_int_equal(log_last_index(l), 0);
    assert_int_equal(log_term(l, 0, &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(log_term(l, 1, &t), ERR_NOT_FOUND);
    log_hard_state(l, &hs);
    assert_int_equal(hs.term + hs.vote + hs.commit, 0);
    /* The segment is preallocated to its full size. */
    last_seg_path(f->wal, path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, LOG_SEGMENT_BYTES_DEFAULT);
    log_close(l);
    l = open_ok(f, 0);
    assert_int_equal(log_last_index(l), 0);
    assert_int_equal(seg_count(f->wal), 1);
    log_close(l);
}

static void second_open_of_a_locked_dir_fails(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    struct log *l2;
    assert_int_equal(open_rc(f, f->wal, SEG_SMALL, &l2), ERR_LOCKED);
    assert_null(l2);
    log_close(l);
}

static void appends_round_trip_across_many_segments(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    uint64_t i = 1;
    /* Batches of 1..17 entries, ~200 bytes each: dozens of segments. */
    for (size_t b = 1; i <= 3000; b = b % 17 + 1) {
        uint64_t hi = i + b > 3001 ? 3001 : i + b;
        append_range(l, i, hi, 1, b);
        i = hi;
    }
    assert_int_equal(log_last_index(l), 3000);
    assert_true(seg_count(f->wal) > 20);
    check_range(l, 1, 3001, term_one);
    log_close(l);

    l = open_ok(f, SEG_SMALL);
    assert_int_equal(log_first_index(l), 1);
    assert_int_equal(log_last_index(l), 3000);
    check_range(l, 1, 3001, term_one);
    append_range(l, 3001, 3101, 1, 7);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    check_range(l, 1, 3101, term_one);
    log_close(l);
}

static void entries_respects_max_bytes_caps_and_arena(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    struct log_entry out[8];
    uint8_t arena[4096];
    size_t n;
    append_range(l, 1, 41, 1, 5);
    /* max_bytes 0 still returns one entry. */
    assert_int_equal(log_entries(l, 2, 41, 0, out, 8, arena, sizeof(arena), &n),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].len, len_for(2));
    /* Stops before passing max_bytes: 74 + 111 = 185 <= 200 < 185 + 148. */
    assert_int_equal(
        log_entries(l, 2, 41, 200, out, 8, arena, sizeof(arena), &n), 0);
    assert_int_equal(n, 2);
    /* out_cap bounds the count. */
    assert_int_equal(
        log_entries(l, 1, 41, UINT64_MAX, out, 3, arena, sizeof(arena), &n), 0);
    assert_int_equal(n, 3);
    /* The arena bounds it too; a first entry that cannot fit is ERR_LIMIT. */
    assert_int_equal(
        log_entries(l, 10, 41, UINT64_MAX, out, 8, arena, len_for(10) - 1, &n),
        ERR_LIMIT);
    assert_int_equal(
        log_entries(l, 10, 41, UINT64_MAX, out, 8, arena, len_for(10) + 1, &n),
        0);
    assert_int_equal(n, 1);
    /* Ranges. */
    assert_int_equal(
        log_entries(l, 0, 5, 100, out, 8, arena, sizeof(arena), &n),
        ERR_COMPACTED);
    assert_int_equal(
        log_entries(l, 40, 42, 100, out, 8, arena, sizeof(arena), &n),
        ERR_NOT_FOUND);
    assert_int_equal(
        log_entries(l, 41, 41, 100, out, 8, arena, sizeof(arena), &n), 0);
    assert_int_equal(n, 0);
    log_close(l);
}

static void
hard_state_persists_alone_with_entries_and_across_segments(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    struct log_hard_state hs = {.term = 3, .vote = 2, .commit = 0}, got;
    uint8_t d[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct log_entry e = {.index = 1, .term = 3, .data = d, .len = 8};

    assert_int_equal(log_append(l, NULL, 0, &hs), 0);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    log_hard_state(l, &got);
    assert_int_equal(got.term, 3);
    assert_int_equal(got.vote, 2);
    assert_int_equal(got.commit, 0);

    hs.commit = 1;
    assert_int_equal(log_append(l, &e, 1, &hs), 0);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    log_hard_state(l, &got);
    assert_int_equal(got.commit, 1);
    assert_int_equal(log_last_index(l), 1);

    /* Many segments later, with the old ones released, the hard state is
     * still there: every segment starts with a copy. */
    append_range(l, 2, 800, 3, 4);
    assert_int_equal(log_release(l, 700), 0);
    assert_true(log_first_index(l) > 1);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    log_hard_state(l, &got);
    assert_int_equal(got.term, 3);
    assert_int_equal(got.vote, 2);
    assert_int_equal(got.commit, 1);
    log_close(l);
}

static uint64_t term_conflict(uint64_t i)
{
    return i < 50 ? 1 : 2;
}

static void conflicting_append_truncates_tail_durably(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    uint64_t t;
    append_range(l, 1, 101, 1, 10);
    /* A new leader overwrites from 50 with fewer entries. */
    append_range(l, 50, 61, 2, 11);
    assert_int_equal(log_last_index(l), 60);
    assert_int_equal(log_term(l, 61, &t), ERR_NOT_FOUND);
    check_range(l, 1, 61, term_conflict);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    assert_int_equal(log_last_index(l), 60);
    check_range(l, 1, 61, term_conflict);
    /* Appending after the truncation continues from 61. */
    append_range(l, 61, 70, 2, 3);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    assert_int_equal(log_last_index(l), 69);
    check_range(l, 1, 70, term_conflict);
    log_close(l);
}

static uint64_t term_deep(uint64_t i)
{
    return i < 50 ? 1 : 5;
}

static void conflict_below_the_active_segment_cuts_and_releases(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    size_t before;
    append_range(l, 1, 1001, 1, 8); /* many segments */
    before = seg_count(f->wal);
    assert_true(before > 5);
    append_range(l, 50, 80, 5, 4); /* reaches back many segments */
    assert_int_equal(log_last_index(l), 79);
    assert_int_equal(seg_count(f->wal), before + 1);
    check_range(l, 1, 80, term_deep);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    assert_int_equal(log_last_index(l), 79);
    check_range(l, 1, 80, term_deep);
    /* Releasing up to 60 drops every segment before the one holding 60,
     * including the dead ones holding the overwritten 50..1000. */
    assert_int_equal(log_release(l, 60), 0);
    assert_int_equal(log_first_index(l), 50);
    assert_int_equal(seg_count(f->wal), 1);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    assert_int_equal(log_first_index(l), 50);
    assert_int_equal(log_last_index(l), 79);
    check_range(l, 50, 80, term_deep);
    log_close(l);
}

static void append_validates_its_input(void **state)
{
    struct fx *f = *state;
    struct log_options o = {.segment_bytes = SEG_SMALL,
                            .entry_bytes_max = 1000,
                            .entries_max = 100};
    struct log *l;
    static uint8_t big[1001];
    struct log_entry e[2] = {{.index = 1, .term = 2, .data = big, .len = 1000},
                             {.index = 4, .term = 2}};
    assert_int_equal(log_open(f->wal, &o, &l, f->msg, sizeof(f->msg)), 0);
    /* Entry size: at the bound and one past it. */
    assert_int_equal(log_append(l, e, 1, NULL), 0);
    e[0].index = 2;
    e[0].len = 1001;
    assert_int_equal(log_append(l, e, 1, NULL), ERR_LIMIT);
    e[0].len = 10;
    /* Not consecutive, a gap, a decreasing term. */
    assert_int_equal(log_append(l, e, 2, NULL), ERR_INVALID);
    e[0].index = 3;
    assert_int_equal(log_append(l, e, 1, NULL), ERR_INVALID);
    e[0].index = 2;
    e[0].term = 1;
    assert_int_equal(log_append(l, e, 1, NULL), ERR_INVALID);
    assert_int_equal(log_failed(l), 0);
    assert_int_equal(log_last_index(l), 1);
    /* Retained entries: exactly entries_max fit, one more does not. */
    append_range(l, 2, 101, 2, 9);
    e[0].index = 101;
    e[0].term = 2;
    assert_int_equal(log_append(l, e, 1, NULL), ERR_LIMIT);
    assert_int_equal(log_release(l, 100), 0);
    assert_true(log_first_index(l) > 1);
    assert_int_equal(log_append(l, e, 1, NULL), 0);
    log_close(l);
}

/* Build a log whose last frame holds 3 entries and a hard state; return the
 * path of the last segment and the [start, end) of that frame. */
static void build_torn_fixture(struct fx *f, char *path, size_t len,
                               uint64_t *start, uint64_t *end)
{
    struct log *l = open_ok(f, SEG_SMALL);
    struct log_hard_state hs = {.term = 1, .vote = 1, .commit = 10};
    uint64_t ends[256];
    size_t n;
    append_range(l, 1, 21, 1, 1);
    assert_int_equal(log_append(l, NULL, 0, &hs), 0);
    {
        static uint8_t d[3][64];
        struct log_entry e[3];
        struct log_hard_state hs2 = {.term = 2, .vote = 3, .commit = 19};
        for (int k = 0; k < 3; k++) {
            e[k].index = 21 + (uint64_t)k;
            e[k].term = 1;
            e[k].type = (uint8_t)((21 + k) % 3);
            e[k].len = len_for(21 + (uint64_t)k) % 64;
            fill(d[k], e[k].len, e[k].index, 1);
            e[k].data = d[k];
        }
        assert_int_equal(log_append(l, e, 3, &hs2), 0);
    }
    log_close(l);
    last_seg_path(f->wal, path, len);
    n = frame_ends(path, ends, 256);
    assert_true(n >= 3);
    *start = ends[n - 2];
    *end = ends[n - 1];
}

/* After a repair the bytes past the last whole frame are zero again and
 * the segment is preallocated again (log.h: nothing non-zero past the end
 * of the log but the one frame in flight). */
static void tail_is_clean(const char *seg)
{
    static uint8_t b[SEG_SMALL];
    uint64_t ends[256];
    size_t n = frame_ends(seg, ends, 256);
    struct stat st;
    int fd = open(seg, O_RDONLY);
    assert_true(fd >= 0 && n > 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(st.st_size, SEG_SMALL);
    assert_int_equal(pread(fd, b, SEG_SMALL, 0), SEG_SMALL);
    close(fd);
    for (uint64_t k = ends[n - 1]; k < SEG_SMALL; k++) {
        assert_int_equal(b[k], 0);
    }
}

static void torn_recovered_log_is_the_previous_frames(struct fx *f,
                                                      const char *dir)
{
    struct log *l;
    struct log_hard_state hs;
    int rc = open_rc(f, dir, SEG_SMALL, &l);
    if (rc != 0) {
        fail_msg("open after tear: %s: %s", err_str(rc), f->msg);
    }
    assert_int_equal(log_last_index(l), 20);
    log_hard_state(l, &hs);
    assert_int_equal(hs.commit, 10);
    check_range(l, 1, 21, term_one);
    log_close(l);
    {
        char seg[700];
        last_seg_path(dir, seg, sizeof(seg));
        tail_is_clean(seg);
    }
}

static void torn_tail_at_every_byte_recovers_previous_frames(void **state)
{
    struct fx *f = *state;
    char path[600], copy[600], seg[600];
    uint64_t start, end;
    build_torn_fixture(f, path, sizeof(path), &start, &end);
    snprintf(copy, sizeof(copy), "%s/copy", f->root);
    snprintf(seg, sizeof(seg), "%s/%s", copy, strrchr(path, '/') + 1);
    assert_true(end - start > 100);
    for (uint64_t t = start; t < end; t++) {
        struct log *l;
        /* The file simply ends at t (no preallocated space left). */
        copy_dir(f->wal, copy);
        assert_int_equal(truncate(seg, (off_t)t), 0);
        torn_recovered_log_is_the_previous_frames(f, copy);
        /* The tail was cut: a new append lands right after entry 20 and a
         * second reopen sees it (checked on a sample of offsets). */
        if (t % 16 == 0) {
            assert_int_equal(open_rc(f, copy, SEG_SMALL, &l), 0);
            append_range(l, 21, 23, 3, 2);
            log_close(l);
            assert_int_equal(open_rc(f, copy, SEG_SMALL, &l), 0);
            assert_int_equal(log_last_index(l), 22);
            log_close(l);
        }
    }
}

static int tail_is_zero(const char *path, uint64_t from, uint64_t to)
{
    uint8_t b[4096];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0 && to - from <= sizeof(b));
    assert_int_equal(pread(fd, b, to - from, (off_t)from),
                     (ssize_t)(to - from));
    close(fd);
    for (uint64_t k = 0; k < to - from; k++) {
        if (b[k] != 0) {
            return 0;
        }
    }
    return 1;
}

static void torn_tail_in_preallocated_space_at_every_byte(void **state)
{
    struct fx *f = *state;
    char path[600], copy[600], seg[600];
    uint64_t start, end;
    static uint8_t zeros[4096];
    uint8_t junk[4096];
    build_torn_fixture(f, path, sizeof(path), &start, &end);
    snprintf(copy, sizeof(copy), "%s/copy", f->root);
    snprintf(seg, sizeof(seg), "%s/%s", copy, strrchr(path, '/') + 1);
    for (size_t k = 0; k < sizeof(junk); k++) {
        junk[k] = (uint8_t)(k * 89 + 7);
    }
    for (uint64_t t = start; t < end; t++) {
        /* The frame's bytes after t never reached the disk: the file keeps
         * its preallocated size and reads zeros from t on. */
        copy_dir(f->wal, copy);
        if (tail_is_zero(seg, t, end)) {
            /* Only the frame's zero padding is "lost": nothing is torn. */
            struct log *l;
            assert_int_equal(open_rc(f, copy, SEG_SMALL, &l), 0);
            assert_int_equal(log_last_index(l), 23);
            log_close(l);
            continue;
        }
        patch(seg, t, zeros, (size_t)(end - t));
        torn_recovered_log_is_the_previous_frames(f, copy);
        /* Or they reached it as garbage (a sector of some other data). */
        if (t % 4 == 0) {
            copy_dir(f->wal, copy);
            patch(seg, t, junk, (size_t)(end - t));
            torn_recovered_log_is_the_previous_frames(f, copy);
        }
    }
}

static void flipped_bit_before_the_tail_is_corrupt(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    char path[600], copy[600], seg[600];
    uint64_t ends[256];
    size_t n;
    append_range(l, 1, 21, 1, 1);
    log_close(l);
    last_seg_path(f->wal, path, sizeof(path));
    n = frame_ends(path, ends, 256);
    assert_true(n >= 12);
    snprintf(copy, sizeof(copy), "%s/copy", f->root);
    snprintf(seg, sizeof(seg), "%s/%s", copy, strrchr(path, '/') + 1);
    /* Every byte of a frame in the middle, one bit each. */
    for (uint64_t off = ends[8]; off < ends[9]; off++) {
        copy_dir(f->wal, copy);
        flip_bit(seg, off, (int)(off % 8));
        assert_int_equal(open_rc(f, copy, SEG_SMALL, &l), ERR_CORRUPT);
        assert_null(l);
        assert_non_null(strstr(f->msg, strrchr(path, '/') + 1));
        assert_non_null(strstr(f->msg, "offset"));
    }
    /* The original is untouched and still opens whole. */
    l = open_ok(f, SEG_SMALL);
    assert_int_equal(log_last_index(l), 20);
    log_close(l);
}

static void damage_in_a_non_last_segment_or_header_is_corrupt(void **state)
{
    struct fx *f = *state;
    static char names[64][64];
    struct log *l = open_ok(f, SEG_SMALL);
    char copy[600], seg[600], first[600];
    uint64_t ends[256];
    size_t n;
    append_range(l, 1, 301, 1, 3);
    log_close(l);
    n = seg_files(f->wal, names, 64);
    assert_true(n >= 3);
    snprintf(first, sizeof(first), "%s/%s", f->wal, names[0]);
    snprintf(copy, sizeof(copy), "%s/copy", f->root);
    snprintf(seg, sizeof(seg), "%s/%s", copy, names[0]);
    /* The last frame of the first segment: fine as a tail, not here. */
    assert_true(frame_ends(first, ends, 256) >= 2);
    n = frame_ends(first, ends, 256);
    copy_dir(f->wal, copy);
    flip_bit(seg, ends[n - 1] - 3, 2);
    assert_int_equal(open_rc(f, copy, SEG_SMALL, &l), ERR_CORRUPT);
    assert_non_null(strstr(f->msg, names[0]));
    /* A segment header. */
    copy_dir(f->wal, copy);
    flip_bit(seg, 30, 0);
    assert_int_equal(open_rc(f, copy, SEG_SMALL, &l), ERR_CORRUPT);
    copy_dir(f->wal, copy);
    patch(seg, 0, "XAIRNWAL", 8);
    assert_int_equal(open_rc(f, copy, SEG_SMALL, &l), ERR_BAD_MAGIC);
    /* A missing segment in the middle. */
    copy_dir(f->wal, copy);
    snprintf(seg, sizeof(seg), "%s/%s", copy, names[1]);
    assert_int_equal(unlink(seg), 0);
    assert_int_equal(open_rc(f, copy, SEG_SMALL, &l), ERR_CORRUPT);
    assert_non_null(strstr(f->msg, "missing"));
}

static void release_deletes_old_segments_and_survives_reopen(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    struct log_entry out[4];
    uint8_t arena[4 * DATA_MAX];
    size_t n, before;
    uint64_t first, t;
    append_range(l, 1, 1001, 1, 5);
    before = seg_count(f->wal);
    assert_int_equal(log_release(l, 500), 0);
    first = log_first_index(l);
    assert_true(first > 400 && first <= 500);
    assert_true(seg_count(f->wal) < before);
    assert_int_equal(log_term(l, first - 1, &t), 0);
    assert_int_equal(t, 1);
    assert_int_equal(log_term(l, first - 2, &t), ERR_COMPACTED);
    assert_int_equal(log_entries(l, first - 1, first + 1, 100, out, 4, arena,
                                 sizeof(arena), &n),
                     ERR_COMPACTED);
    check_range(l, first, 1001, term_one);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    assert_int_equal(log_first_index(l), first);
    assert_int_equal(log_last_index(l), 1000);
    check_range(l, first, 1001, term_one);
    /* Past the end: everything but the active segment goes. */
    assert_int_equal(log_release(l, 5000), 0);
    assert_int_equal(seg_count(f->wal), 1);
    assert_int_equal(log_last_index(l), 1000);
    append_range(l, 1001, 1011, 1, 5);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    assert_int_equal(log_last_index(l), 1010);
    check_range(l, log_first_index(l), 1011, term_one);
    log_close(l);
}

/* log_options.discard: released segments are renamed to NAME.del and
 * handed over instead of unlinked; the caller unlinks (here: some, to show
 * that log_open removes the rest). */
struct discarded {
    char names[64][LOG_NAME_MAX];
    size_t n;
};

static void note_discard(void *arg, const char *name)
{
    struct discarded *d = arg;
    assert_true(d->n < 64);
    assert_true(strlen(name) < LOG_NAME_MAX);
    snprintf(d->names[d->n++], LOG_NAME_MAX, "%s", name);
}

static void release_with_discard_renames_and_hands_over(void **state)
{
    struct fx *f = *state;
    struct discarded d;
    struct log *l = NULL;
    char path[1024];
    memset(&d, 0, sizeof(d));
    struct log_options o = {
        .segment_bytes = SEG_SMALL, .discard = note_discard, .discard_arg = &d};
    assert_int_equal(log_open(f->wal, &o, &l, f->msg, sizeof(f->msg)), 0);
    append_range(l, 1, 1001, 1, 5);
    size_t before = seg_count(f->wal);
    assert_int_equal(log_release(l, 500), 0);
    uint64_t first = log_first_index(l);
    assert_true(first > 400 && first <= 500);
    /* every released segment was handed over, renamed, still there */
    assert_true(d.n > 0);
    assert_int_equal(seg_count(f->wal) + d.n, before);
    assert_int_equal(files_named(f->wal, ".wal.del"), d.n);
    for (size_t i = 0; i < d.n; i++) {
        size_t nl = strlen(d.names[i]);
        assert_true(nl > 8 && strcmp(d.names[i] + nl - 8, ".wal.del") == 0);
        snprintf(path, sizeof(path), "%s/%s", f->wal, d.names[i]);
        assert_int_equal(access(path, F_OK), 0);
    }
    /* oldest first, as the unlinks were */
    for (size_t i = 1; i < d.n; i++) {
        assert_true(strcmp(d.names[i - 1], d.names[i]) < 0);
    }
    check_range(l, first, 1001, term_one);
    /* the caller unlinks one; a crash leaves the others */
    snprintf(path, sizeof(path), "%s/%s", f->wal, d.names[0]);
    assert_int_equal(unlink(path), 0);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    assert_int_equal(files_named(f->wal, ".wal.del"), 0);
    assert_int_equal(log_first_index(l), first);
    assert_int_equal(log_last_index(l), 1000);
    check_range(l, first, 1001, term_one);
    log_close(l);
}

static uint64_t term_after_reset(uint64_t i)
{
    (void)i;
    return 8;
}

static void reset_restarts_the_log_after_a_snapshot(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    uint64_t t;
    append_range(l, 1, 200, 1, 4);
    assert_int_equal(log_reset(l, 5000, 7), 0);
    assert_int_equal(log_first_index(l), 5001);
    assert_int_equal(log_last_index(l), 5000);
    assert_int_equal(log_term(l, 5000, &t), 0);
    assert_int_equal(t, 7);
    assert_int_equal(seg_count(f->wal), 1);
    append_range(l, 5001, 5011, 8, 3);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    assert_int_equal(log_first_index(l), 5001);
    assert_int_equal(log_last_index(l), 5010);
    assert_int_equal(log_term(l, 5000, &t), 0);
    assert_int_equal(t, 7);
    check_range(l, 5001, 5011, term_after_reset);
    log_close(l);
}

static void allocation_failure_in_append_leaves_the_log_unchanged(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    int failures = 0;
    /* Sweep: fail the k-th allocation of an append that must grow the
     * index past its first block and cut segments, until it succeeds. */
    for (unsigned long k = 1; k < 100; k++) {
        uint64_t last = log_last_index(l);
        int rc;
        static uint8_t d[64][DATA_MAX];
        struct log_entry e[64];
        for (size_t j = 0; j < 64; j++) {
            e[j].index = last + 1 + j;
            e[j].term = 1;
            e[j].type = (uint8_t)(e[j].index % 3);
            e[j].len = len_for(e[j].index);
            fill(d[j], e[j].len, e[j].index, 1);
            e[j].data = d[j];
        }
        mem_fail_after(k, 1);
        rc = log_append(l, e, 64, NULL);
        mem_fail_after(0, 0);
        if (rc == -ENOMEM) {
            failures++;
            assert_int_equal(log_last_index(l), last);
            assert_int_equal(log_failed(l), 0);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(log_last_index(l), last + 64);
        if (last + 64 > 1100) {
            break;
        }
        k = 0; /* next batch: sweep again */
    }
    assert_true(failures > 0);
    check_range(l, 1, log_last_index(l) + 1, term_one);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    assert_true(log_last_index(l) > 1100);
    check_range(l, 1, log_last_index(l) + 1, term_one);
    log_close(l);
}

static void allocation_failure_sweep_on_open(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    unsigned long k;
    int sticky;
    append_range(l, 1, 400, 1, 3);
    assert_int_equal(log_release(l, 100), 0);
    log_close(l);
    for (sticky = 0; sticky <= 1; sticky++) {
        for (k = 1; k < 10000; k++) {
            int rc;
            mem_fail_after(k, sticky);
            rc = open_rc(f, f->wal, SEG_SMALL, &l);
            mem_fail_after(0, 0);
            if (rc == 0) {
                break;
            }
            assert_int_equal(rc, -ENOMEM);
            assert_null(l);
        }
        assert_true(k > 3); /* it did allocate, and we failed each one */
        assert_int_equal(log_last_index(l), 399);
        check_range(l, log_first_index(l), 400, term_one);
        log_close(l);
    }
}

static void failed_write_puts_the_log_in_a_failed_state(void **state)
{
    struct fx *f = *state;
    struct log *l = open_ok(f, SEG_SMALL);
    struct rlimit old, lim;
    static uint8_t big[30000];
    struct log_entry e = {.index = 2, .term = 1, .data = big, .len = 30000};
    uint64_t t;
    size_t n;
    struct log_entry out[1];
    uint8_t arena[64];
    int rc;

    append_range(l, 1, 2, 1, 1);
    memset(big, 0x5a, sizeof(big));
    /* The kernel refuses writes past 24 KiB: a real EFBIG. */
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 24576;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    rc = log_append(l, &e, 1, NULL);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(rc, -EFBIG);
    /* Every later call returns the same error, even with the limit gone. */
    assert_int_equal(log_failed(l), -EFBIG);
    e.len = 10;
    assert_int_equal(log_append(l, &e, 1, NULL), -EFBIG);
    assert_int_equal(log_term(l, 1, &t), -EFBIG);
    assert_int_equal(log_entries(l, 1, 2, 10, out, 1, arena, 64, &n), -EFBIG);
    assert_int_equal(log_release(l, 2), -EFBIG);
    assert_int_equal(log_reset(l, 10, 1), -EFBIG);
    log_close(l);
    /* On disk: entry 1, then a torn frame that recovery cuts off. */
    l = open_ok(f, SEG_SMALL);
    assert_int_equal(log_last_index(l), 1);
    check_range(l, 1, 2, term_one);
    append_range(l, 2, 4, 1, 1);
    log_close(l);
}

static void big_batch_is_split_into_frames_and_reopens(void **state)
{
    struct fx *f = *state;
    struct log_options o = {.segment_bytes = 65536,
                            .entry_bytes_max = 4096,
                            .frame_bytes_max = 8192};
    struct log *l;
    static uint8_t d[40][3000];
    struct log_entry e[40];
    struct log_entry out[40];
    static uint8_t arena[40 * 3000];
    struct log_hard_state hs = {.term = 4, .vote = 1, .commit = 40}, got;
    size_t n;
    assert_int_equal(log_open(f->wal, &o, &l, f->msg, sizeof(f->msg)), 0);
    for (int k = 0; k < 40; k++) {
        e[k].index = (uint64_t)k + 1;
        e[k].term = 4;
        e[k].type = 0;
        e[k].len = 3000;
        memset(d[k], k + 1, 3000);
        e[k].data = d[k];
    }
    assert_int_equal(log_append(l, e, 40, &hs), 0);
    log_close(l);
    assert_int_equal(log_open(f->wal, &o, &l, f->msg, sizeof(f->msg)), 0);
    assert_int_equal(log_last_index(l), 40);
    log_hard_state(l, &got);
    assert_int_equal(got.commit, 40);
    assert_int_equal(
        log_entries(l, 1, 41, UINT64_MAX, out, 40, arena, sizeof(arena), &n),
        0);
    assert_int_equal(n, 40);
    for (int k = 0; k < 40; k++) {
        assert_int_equal(out[k].data[2999], k + 1);
    }
    log_close(l);
}

/* ----------------------------------------------------------- snapshots */

static void snap_path(struct fx *f, uint64_t index, uint64_t term, char *out,
                      size_t len)
{
    snprintf(out, len, "%s/%016" PRIx64 "-%016" PRIx64 ".snap", f->snap, index,
             term);
}

static size_t snap_count(const char *dir)
{
    return files_named(dir, ".snap");
}

static void snapshots_save_load_and_keep_the_newest(void **state)
{
    struct fx *f = *state;
    struct log_snap s;
    uint8_t conf[100], payload[5000];
    memset(conf, 0xc0, sizeof(conf));
    assert_int_equal(log_snap_load(f->snap, &s, f->msg, sizeof(f->msg)),
                     ERR_NOT_FOUND);
    for (uint64_t k = 1; k <= 7; k++) {
        struct log_snap_meta m = {.index = k * 100,
                                  .term = k,
                                  .conf = conf,
                                  .conf_len = (uint32_t)k * 10};
        memset(payload, (int)k, sizeof(payload));
        assert_int_equal(
            log_snap_save(f->snap, &m, 0, payload, sizeof(payload), 5), 0);
    }
    assert_int_equal(snap_count(f->snap), 5);
    assert_int_equal(log_snap_load(f->snap, &s, f->msg, sizeof(f->msg)), 0);
    assert_int_equal(s.index, 700);
    assert_int_equal(s.term, 7);
    assert_int_equal(s.flags, 0);
    assert_int_equal(s.conf_len, 70);
    assert_int_equal(s.payload_len, sizeof(payload));
    assert_int_equal(s.payload[4999], 7);
    log_snap_free(&s);
    {
        struct log_snap_meta m = {.index = 700, .term = 7};
        assert_int_equal(log_snap_save(f->snap, &m, 0, payload, 1, 5),
                         ERR_EXISTS);
        m.index = 800;
        m.conf_len = LOG_SNAP_CONF_BYTES_MAX + 1;
        m.conf = conf;
        assert_int_equal(log_snap_save(f->snap, &m, 0, payload, 1, 5),
                         ERR_LIMIT);
        /* A path payload comes back NUL-terminated. */
        m.conf_len = 3;
        assert_int_equal(log_snap_save(f->snap, &m, LOG_SNAP_FLAG_PATH,
                                       "/data/kv/snap.mdb", 17, 0),
                         0);
    }
    assert_int_equal(log_snap_load(f->snap, &s, f->msg, sizeof(f->msg)), 0);
    assert_int_equal(s.index, 800);
    assert_int_equal(s.flags, LOG_SNAP_FLAG_PATH);
    assert_string_equal((char *)s.payload, "/data/kv/snap.mdb");
    log_snap_free(&s);
    assert_int_equal(snap_count(f->snap), 5);
}

static void
damaged_snapshots_are_skipped_only_when_newest_and_short(void **state)
{
    struct fx *f = *state;
    struct log_snap s;
    uint8_t payload[1000];
    char p3[600], p2[600];
    memset(payload, 0x77, sizeof(payload));
    for (uint64_t k = 1; k <= 3; k++) {
        struct log_snap_meta m = {.index = k, .term = 1};
        assert_int_equal(
            log_snap_save(f->snap, &m, 0, payload, sizeof(payload), 0), 0);
    }
    snap_path(f, 3, 1, p3, sizeof(p3));
    snap_path(f, 2, 1, p2, sizeof(p2));
    /* A complete newest file with a flipped bit: an error, not a skip. */
    flip_bit(p3, 500, 3);
    assert_int_equal(log_snap_load(f->snap, &s, f->msg, sizeof(f->msg)),
                     ERR_CORRUPT);
    assert_non_null(strstr(f->msg, "0000000000000003-"));
    /* The newest cut short (a crash before its data reached the disk):
     * skipped, the previous one loads. */
    assert_int_equal(truncate(p3, 700), 0);
    assert_int_equal(log_snap_load(f->snap, &s, f->msg, sizeof(f->msg)), 0);
    assert_int_equal(s.index, 2);
    log_snap_free(&s);
    assert_int_equal(truncate(p3, 10), 0);
    assert_int_equal(log_snap_load(f->snap, &s, f->msg, sizeof(f->msg)), 0);
    assert_int_equal(s.index, 2);
    log_snap_free(&s);
    /* But the one we fall back to must be whole. */
    assert_int_equal(truncate(p2, 700), 0);
    assert_int_equal(log_snap_load(f->snap, &s, f->msg, sizeof(f->msg)),
                     ERR_CORRUPT);
    /* A leftover temp file is removed. */
    {
        char tmp[700];
        snprintf(tmp, sizeof(tmp), "%s.tmp", p2);
        copy_file(p3, tmp);
        assert_int_equal(unlink(p2), 0);
        assert_int_equal(log_snap_load(f->snap, &s, f->msg, sizeof(f->msg)), 0);
        assert_int_equal(s.index, 1);
        log_snap_free(&s);
        assert_int_equal(access(tmp, F_OK), -1);
    }
}

static void snapshot_load_survives_allocation_failures(void **state)
{
    struct fx *f = *state;
    struct log_snap s;
    struct log_snap_meta m = {
        .index = 9, .term = 2, .conf = (uint8_t *)"c", .conf_len = 1};
    unsigned long k;
    assert_int_equal(log_snap_save(f->snap, &m, 0, "payload", 7, 0), 0);
    for (k = 1; k < 100; k++) {
        int rc;
        mem_fail_after(k, 0);
        rc = log_snap_load(f->snap, &s, f->msg, sizeof(f->msg));
        mem_fail_after(0, 0);
        if (rc == 0) {
            break;
        }
        assert_int_equal(rc, -ENOMEM);
    }
    assert_true(k > 1);
    assert_memory_equal(s.payload, "payload", 7);
    log_snap_free(&s);
}

/* ------------------------------------------------------------- the VFS */

/* A table that forwards to the POSIX one, counts the calls, gives fixed
 * "random" bytes and can fail the next sync. */
struct cvfs {
    struct log_vfs v;
    const struct log_vfs *px;
    unsigned writes, syncs, dir_syncs, renames, randoms, reads, allocs;
    int fail_sync;           /* nonzero: the next sync returns it */
    unsigned unlinks;        /* of *.wal files */
    unsigned fail_unlink_at; /* nonzero: *.wal unlink number N fails with
                              * -EIO and does nothing (a crash there) */
};

#define CV(f) ((struct cvfs *)(f))
static int cv_dir_open(void *c, const char *p, bool cr, int *d)
{
    return CV(c)->px->dir_open(NULL, p, cr, d);
}
static void cv_close(void *c, int fd)
{
    CV(c)->px->close(NULL, fd);
}
static int cv_dir_lock(void *c, int d)
{
    return CV(c)->px->dir_lock(NULL, d);
}
static int cv_dir_sync(void *c, int d)
{
    CV(c)->dir_syncs++;
    return CV(c)->px->dir_sync(NULL, d);
}
static int cv_dir_list(void *c, int d, log_vfs_list_cb cb, void *arg)
{
    return CV(c)->px->dir_list(NULL, d, cb, arg);
}
static int cv_exists(void *c, int d, const char *n)
{
    return CV(c)->px->exists(NULL, d, n);
}
static int cv_unlink(void *c, int d, const char *n)
{
    size_t nl = strlen(n);
    if (nl > 4 && strcmp(n + nl - 4, ".wal") == 0 &&
        ++CV(c)->unlinks == CV(c)->fail_unlink_at) {
        return -EIO;
    }
    return CV(c)->px->unlink(NULL, d, n);
}
static int cv_rename(void *c, int d, const char *a, const char *b)
{
    CV(c)->renames++;
    return CV(c)->px->rename(NULL, d, a, b);
}
static int cv_open(void *c, int d, const char *n, unsigned fl, int *fd)
{
    return CV(c)->px->open(NULL, d, n, fl, fd);
}
static int cv_size(void *c, int fd, uint64_t *sz)
{
    return CV(c)->px->size(NULL, fd, sz);
}
static int cv_read(void *c, int fd, const struct iovec *iov, int n,
                   uint64_t off)
{
    CV(c)->reads++;
    return CV(c)->px->read(NULL, fd, iov, n, off);
}
static int cv_write(void *c, int fd, const void *p, size_t len, uint64_t off)
{
    CV(c)->writes++;
    return CV(c)->px->write(NULL, fd, p, len, off);
}
static int cv_sync(void *c, int fd)
{
    int rc = CV(c)->fail_sync;
    CV(c)->syncs++;
    if (rc != 0) {
        CV(c)->fail_sync = 0;
        return rc;
    }
    return CV(c)->px->sync(NULL, fd);
}
static int cv_truncate(void *c, int fd, uint64_t sz)
{
    return CV(c)->px->truncate(NULL, fd, sz);
}
static int cv_allocate(void *c, int fd, uint64_t sz)
{
    CV(c)->allocs++;
    return CV(c)->px->allocate(NULL, fd, sz);
}
static int cv_random(void *c, void *p, size_t len)
{
    CV(c)->randoms++;
    memset(p, 0xA5, len);
    return 0;
}

static void cvfs_init(struct cvfs *c)
{
    memset(c, 0, sizeof(*c));
    c->px = log_vfs_posix();
    c->v = (struct log_vfs){c,           cv_dir_open, cv_close,  cv_dir_lock,
                            cv_dir_sync, cv_dir_list, cv_exists, cv_unlink,
                            cv_rename,   cv_open,     cv_close,  cv_size,
                            cv_read,     cv_write,    cv_sync,   cv_truncate,
                            cv_allocate, cv_random};
}

static void log_runs_through_a_vfs_table(void **state)
{
    struct fx *f = *state;
    struct cvfs c;
    struct log *l = NULL;
    struct log_hard_state hs = {3, 2, 150};
    cvfs_init(&c);
    struct log_options o = {.segment_bytes = SEG_SMALL, .vfs = &c.v};
    assert_int_equal(log_open(f->wal, &o, &l, f->msg, sizeof(f->msg)), 0);
    append_range(l, 1, 301, 1, 7);
    assert_int_equal(log_append(l, NULL, 0, &hs), 0);
    check_range(l, 1, 301, term_one);
    log_close(l);
    /* Every frame was written and synced through the table; segments were
     * cut (rename, directory sync) with salts from its random(). */
    assert_true(c.writes >= 300 / 7);
    assert_true(c.syncs >= c.writes);
    assert_true(c.renames >= 2 && c.dir_syncs >= c.renames);
    assert_int_equal(c.randoms, c.renames);
    assert_true(c.reads > 0 && c.allocs > 0);
    char names[64][64];
    size_t n = seg_files(f->wal, names, 64);
    assert_true(n >= 2);
    {
        char path[400];
        uint8_t h[64];
        snprintf(path, sizeof(path), "%s/%s", f->wal, names[0]);
        FILE *fp = fopen(path, "rb");
        assert_non_null(fp);
        assert_int_equal(fread(h, 1, sizeof(h), fp), sizeof(h));
        fclose(fp);
        for (int k = 40; k < 48; k++) {
            assert_int_equal(h[k], 0xA5); /* the salt */
        }
    }

    /* What went through the table is a real log: the default opens it. */
    l = open_ok(f, SEG_SMALL);
    check_range(l, 1, 301, term_one);
    struct log_hard_state got;
    log_hard_state(l, &got);
    assert_int_equal(got.term, 3);
    assert_int_equal(got.commit, 150);
    log_close(l);

    /* Snapshots through the table. */
    unsigned renames = c.renames;
    struct log_snap_meta m = {.index = 120, .term = 1};
    assert_int_equal(log_snap_save_vfs(&c.v, f->snap, &m, 0, "abc", 3, 0), 0);
    assert_int_equal(c.renames, renames + 1);
    struct log_snap sn;
    assert_int_equal(
        log_snap_load_vfs(&c.v, f->snap, &sn, f->msg, sizeof(f->msg)), 0);
    assert_int_equal(sn.index, 120);
    assert_memory_equal(sn.payload, "abc", 3);
    log_snap_free(&sn);

    /* A failed sync of the table fails the log, as a real one does. */
    assert_int_equal(log_open(f->wal, &o, &l, f->msg, sizeof(f->msg)), 0);
    c.fail_sync = -EIO;
    append_range_rc(l, 301, 302, 1, -EIO);
    assert_int_equal(log_failed(l), -EIO);
    assert_int_equal(log_append(l, NULL, 0, &hs), -EIO);
    log_close(l);
    l = open_ok(f, SEG_SMALL);
    assert_true(log_last_index(l) >= 300);
    log_close(l);
}

/* A crash inside the deletion of old segments (log_reset after a received
 * snapshot, log_release after a local one) keeps some of the deletions.
 * With a later segment that starts below the oldest one left (a
 * conflicting append reached back many segments), replay refused the log:
 * "starts at index 50 but the log before it ends at ..." (simulator seed
 * 281, with the snapshot install in two halves). Every cut point, both
 * callers: the log reopens as the finished call would have left it, and
 * each unlink is followed by its own directory fsync. */
static void crash_inside_segment_deletion_reopens(void **state)
{
    struct fx *f = *state;
    for (int reset = 0; reset < 2; reset++) {
        for (unsigned cut = 1;; cut++) {
            struct cvfs c;
            struct log *l = NULL;
            struct log_options o = {.segment_bytes = SEG_SMALL, .vfs = &c.v};
            unsigned dsyncs;
            int rc;
            cvfs_init(&c);
            snprintf(f->wal, sizeof(f->wal), "%s/wal-%d-%u", f->root, reset,
                     cut);
            assert_int_equal(log_open(f->wal, &o, &l, f->msg, sizeof(f->msg)),
                             0);
            append_range(l, 1, 1001, 1, 8);
            append_range(l, 50, 80, 5, 4);
            assert_true(seg_count(f->wal) > 5);
            c.unlinks = 0;
            c.fail_unlink_at = cut;
            dsyncs = c.dir_syncs;
            rc = reset ? log_reset(l, 2000, 6) : log_release(l, 60);
            if (rc == 0) {
                /* Past the last deletion: one directory fsync each (plus
                 * the new segment's for a reset). */
                assert_true(cut > 2);
                assert_true(c.dir_syncs - dsyncs >= c.unlinks);
                log_close(l);
                break;
            }
            assert_int_equal(rc, -EIO);
            log_close(l);
            l = open_ok(f, SEG_SMALL);
            if (reset) {
                assert_int_equal(log_first_index(l), 2001);
                assert_int_equal(log_last_index(l), 2000);
                uint64_t t = 0;
                assert_int_equal(log_term(l, 2000, &t), 0);
                assert_int_equal(t, 6);
            } else {
                assert_true(log_first_index(l) <= 60);
                assert_int_equal(log_last_index(l), 79);
                check_range(l, 60, 80, term_deep);
            }
            /* And the log goes on from there. */
            if (reset) {
                append_range(l, 2001, 2010, 6, 3);
            } else {
                append_range(l, 80, 90, 5, 3);
                assert_int_equal(log_release(l, 70), 0);
            }
            log_close(l);
            l = open_ok(f, SEG_SMALL);
            assert_int_equal(log_last_index(l), reset ? 2009 : 89);
            log_close(l);
            assert_true(cut < 1000);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(fresh_log_is_empty_and_reopens_empty),
        T(second_open_of_a_locked_dir_fails),
        T(appends_round_trip_across_many_segments),
        T(entries_respects_max_bytes_caps_and_arena),
        T(hard_state_persists_alone_with_entries_and_across_segments),
        T(conflicting_append_truncates_tail_durably),
        T(conflict_below_the_active_segment_cuts_and_releases),
        T(append_validates_its_input),
        T(torn_tail_at_every_byte_recovers_previous_frames),
        T(torn_tail_in_preallocated_space_at_every_byte),
        T(flipped_bit_before_the_tail_is_corrupt),
        T(damage_in_a_non_last_segment_or_header_is_corrupt),
        T(release_deletes_old_segments_and_survives_reopen),
        T(release_with_discard_renames_and_hands_over),
        T(reset_restarts_the_log_after_a_snapshot),
        T(allocation_failure_in_append_leaves_the_log_unchanged),
        T(allocation_failure_sweep_on_open),
        T(failed_write_puts_the_log_in_a_failed_state),
        T(big_batch_is_split_into_frames_and_reopens),
        T(snapshots_save_load_and_keep_the_newest),
        T(damaged_snapshots_are_skipped_only_when_newest_and_short),
        T(snapshot_load_survives_allocation_failures),
        T(log_runs_through_a_vfs_table),
        T(crash_inside_segment_deletion_reopens),
#undef T
    };
    log_setup(LOG_ERROR, LOG_FORMAT_TEXT, stderr);
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}

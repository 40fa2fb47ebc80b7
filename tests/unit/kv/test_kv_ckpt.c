/*
 * test_kv_ckpt.c - checkpoints in place (kv_ckpt.c): a pinned state of the
 * live file survives what a power loss can do to the pages written after
 * it, and comes back whole with kv_ckpt_restore.
 *
 * Method: a real store in a temp dir (KV_SYNC_NONE, as the node runs it).
 * A power loss that kept a later meta page but not the pages it names is
 * played by writing garbage over both meta pages and over every page past
 * the pinned state's last page, after the store is closed. Without the
 * restore that file does not open; with it the store reopens at the
 * pinned state, key for key.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consensus/kv/kv_int.h"
#include "tests/unit/kv/kv_test.h"

#define KEYS 300

static void put_all(struct kv *kv, const char *tag, int from, int to)
{
    char k[32], v[300];
    for (int i = from; i < to; i++) {
        snprintf(k, sizeof(k), "key-%05d", i);
        int n = snprintf(v, sizeof(v), "%s-%d-", tag, i);
        memset(v + n, 'x', 200);
        v[n + 200] = '\0';
        t_put(kv, k, v);
    }
}

/* Every key holds tag's value (or is absent with tag NULL). */
static void check_all(struct kv *kv, const char *tag)
{
    char k[32], want[300], got[400];
    for (int i = 0; i < KEYS; i++) {
        snprintf(k, sizeof(k), "key-%05d", i);
        int rc = t_get(kv, k, 0, got, sizeof(got), NULL);
        if (tag == NULL) {
            assert_int_equal(rc, ERR_NOT_FOUND);
            continue;
        }
        assert_int_equal(rc, 0);
        int n = snprintf(want, sizeof(want), "%s-%d-", tag, i);
        memset(want + n, 'x', 200);
        want[n + 200] = '\0';
        assert_string_equal(got, want);
    }
}

/* What a power loss may leave: both meta pages and every page past the
 * pinned state's last one unreadable. */
static void scramble(const char *dir, const struct kv_ckpt *ck)
{
    char path[128];
    struct stat st;
    uint8_t junk[4096];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    memset(junk, 0xa5, sizeof(junk));
    uint64_t psize = ck->page_bytes;
    assert_true(psize <= sizeof(junk));
    assert_int_equal(pwrite(fd, junk, psize, 0), (ssize_t)psize);
    assert_int_equal(pwrite(fd, junk, psize, (off_t)psize), (ssize_t)psize);
    uint64_t pages = (uint64_t)st.st_size / psize;
    assert_true(pages > ck->last_pgno + 1); /* the churn grew the file */
    if (getenv("CAIRN_KV_WRITEMAP") != NULL) {
        /* the file is the map's size: what was written ends at the first
         * hole past T (LMDB's pages are cached, so they count as data) */
        off_t end = lseek(fd, (off_t)((ck->last_pgno + 1) * psize), SEEK_HOLE);
        assert_true(end > (off_t)((ck->last_pgno + 1) * psize));
        pages = (uint64_t)end / psize;
    }
    for (uint64_t p = ck->last_pgno + 1; p < pages; p++) {
        assert_int_equal(pwrite(fd, junk, psize, (off_t)(p * psize)),
                         (ssize_t)psize);
    }
    close(fd);
}

static void restore_brings_back_the_pinned_state(void **state)
{
    struct fx *f = *state;
    struct kv_ckpt ck;
    if (kv_ckpt_supported(f->kv) != 0) {
        skip(); /* no birth times on this file system */
    }
    put_all(f->kv, "one", 0, KEYS);
    int64_t rev = kv_rev(f->kv);
    assert_int_equal(kv_ckpt_pin(f->kv, &ck), 0);
    assert_int_equal(kv_sync(f->kv), 0);
    uint64_t idx, term;
    kv_applied(f->kv, &idx, &term);
    assert_int_equal(ck.applied_index, idx);
    /* Churn: every key rewritten twice, half deleted, compacted; the pages
     * this frees are not reused while the pin lasts. */
    put_all(f->kv, "two", 0, KEYS);
    put_all(f->kv, "three", 0, KEYS);
    t_del(f->kv, "key-00000", "key-00150");
    assert_int_equal(t_compact(f->kv, kv_rev(f->kv)), 0);
    assert_true(kv_ckpt_growth(f->kv) > 0);
    fx_close(f);
    scramble(f->dir, &ck);
    assert_int_not_equal(fx_open(f), 0); /* the damage is real */
    assert_int_equal(kv_ckpt_restore(f->dir, &ck), 0);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(kv_rev(f->kv), rev);
    check_all(f->kv, "one");
    /* The restored file takes writes and reopens. */
    put_all(f->kv, "four", 0, KEYS);
    fx_reopen(f);
    check_all(f->kv, "four");
}

static void record_of_a_replaced_file_does_not_apply(void **state)
{
    struct fx *f = *state;
    struct kv_ckpt ck;
    if (kv_ckpt_supported(f->kv) != 0) {
        skip();
    }
    put_all(f->kv, "one", 0, 50);
    assert_int_equal(kv_ckpt_pin(f->kv, &ck), 0);
    assert_true(kv_ckpt_current(f->kv, &ck));
    assert_int_equal(kv_defrag(f->kv), 0); /* a new file, a new identity */
    assert_false(kv_ckpt_current(f->kv, &ck));
    kv_ckpt_unpin(f->kv, &ck); /* dropped with the old file: a no-op */
    fx_close(f);
    assert_int_equal(kv_ckpt_restore(f->dir, &ck), ERR_NOT_FOUND);
    assert_int_equal(fx_open(f), 0);
}

static void pins_are_bounded_and_released(void **state)
{
    struct fx *f = *state;
    struct kv_ckpt a, b, c, d;
    if (kv_ckpt_supported(f->kv) != 0) {
        skip();
    }
    assert_int_equal(kv_ckpt_growth(f->kv), 0); /* no pin, no growth */
    put_all(f->kv, "one", 0, 10);
    /* Without pins (copies) a defrag pins nothing: three fit after it. */
    assert_int_equal(kv_defrag(f->kv), 0);
    assert_int_equal(kv_ckpt_pin(f->kv, &a), 0);
    put_all(f->kv, "two", 0, 10);
    assert_int_equal(kv_ckpt_pin(f->kv, &b), 0);
    assert_true(b.txnid > a.txnid);
    put_all(f->kv, "three", 0, 10);
    assert_int_equal(kv_ckpt_pin(f->kv, &c), 0);
    assert_int_equal(kv_ckpt_pin(f->kv, &d), ERR_BUSY);
    kv_ckpt_unpin_older(f->kv, &c); /* a and b go */
    assert_int_equal(kv_ckpt_pin(f->kv, &a), 0);
    assert_int_equal(kv_ckpt_pin(f->kv, &b), 0);
    assert_int_equal(kv_ckpt_pin(f->kv, &d), ERR_BUSY);
    kv_ckpt_unpin(f->kv, &c);
    assert_int_equal(kv_ckpt_pin(f->kv, &d), 0);
    /* kv_close drops what is left */
}

struct hooked {
    struct kv_ckpt fresh;
    int calls;
    int fail;
};

static int on_fresh(void *ctx, const struct kv_ckpt *fresh)
{
    struct hooked *h = ctx;
    h->fresh = *fresh;
    h->calls++;
    return h->fail;
}

static void defrag_hook_pins_the_new_file(void **state)
{
    struct fx *f = *state;
    struct hooked h = {.fail = ERR_INVALID};
    if (kv_ckpt_supported(f->kv) != 0) {
        skip();
    }
    put_all(f->kv, "one", 0, KEYS);
    t_del(f->kv, "key-00000", "key-00100");
    assert_int_equal(t_compact(f->kv, kv_rev(f->kv)), 0);
    /* A failing hook abandons the defrag: same file. */
    struct kv_ckpt before;
    assert_int_equal(kv_ckpt_pin(f->kv, &before), 0);
    assert_int_equal(kv_defrag_hook(f->kv, on_fresh, &h), ERR_INVALID);
    assert_true(kv_ckpt_current(f->kv, &before));
    h.fail = 0; /* the pin stands, as the node's does between checkpoints */
    int64_t rev = kv_rev(f->kv);
    assert_int_equal(kv_defrag_hook(f->kv, on_fresh, &h), 0);
    assert_int_equal(h.calls, 2);
    assert_true(kv_ckpt_current(f->kv, &h.fresh));
    assert_false(kv_ckpt_current(f->kv, &before));
    /* The new file's first state stays whole under the writes after it. */
    put_all(f->kv, "two", 100, KEYS);
    put_all(f->kv, "three", 100, KEYS);
    fx_close(f);
    scramble(f->dir, &h.fresh);
    assert_int_equal(kv_ckpt_restore(f->dir, &h.fresh), 0);
    assert_int_equal(fx_open(f), 0);
    assert_int_equal(kv_rev(f->kv), rev);
    char got[400];
    assert_int_equal(t_get(f->kv, "key-00050", 0, got, sizeof(got), NULL),
                     ERR_NOT_FOUND);
    assert_int_equal(t_get(f->kv, "key-00200", 0, got, sizeof(got), NULL), 0);
    assert_int_equal(strncmp(got, "one-200-", 8), 0);
}

/* The node's rule for checkpoints in place under steady overwrites: a new
 * checkpoint (pin, write back, release the older pin) whenever
 * kv_ckpt_growth reaches G pages. Each checkpoint lets the writes reuse
 * what was freed before it, so the file settles at the live data plus a
 * few G. Measured by the file's own growth instead, the trigger waits
 * longer each time (the pool of reusable pages grows by G at every
 * checkpoint) and the file keeps growing: 40 rounds of 1,000 overwrites,
 * compacted after each, took it from 24 MB after five rounds to 64 MB (59
 * checkpoints) that way; counted by pages freed it stays at 2.0-2.1 MB
 * (1,615 checkpoints). */
static void checkpoints_by_freed_pages_bound_the_file(void **state)
{
    struct fx *f = *state;
    struct kv_ckpt cur, next;
    const uint64_t G = 256; /* pages, 1 MiB */
    char k[32], v[300];
    if (kv_ckpt_supported(f->kv) != 0) {
        skip();
    }
    memset(v, 'x', 250);
    v[250] = '\0';
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof(k), "key-%05d", (i * 7919) % 1000);
        t_put(f->kv, k, v);
    }
    assert_int_equal(kv_ckpt_pin(f->kv, &cur), 0);
    int checkpoints = 0;
    uint64_t at5 = 0;
    for (int round = 0; round < 40; round++) {
        for (int i = 0; i < 1000; i++) {
            snprintf(k, sizeof(k), "key-%05d", (i * 7919 + round) % 1000);
            v[0] = (char)('a' + round % 26);
            t_put(f->kv, k, v);
            if (kv_ckpt_growth(f->kv) >= G) {
                assert_int_equal(kv_ckpt_pin(f->kv, &next), 0);
                assert_int_equal(kv_sync(f->kv), 0);
                kv_ckpt_unpin_older(f->kv, &next);
                cur = next;
                checkpoints++;
                /* the count starts again at the new pin */
                assert_true(kv_ckpt_growth(f->kv) < G);
            }
        }
        /* history compacted away: the live data stays the same size */
        assert_int_equal(t_compact(f->kv, kv_rev(f->kv)), 0);
        if (round == 5) {
            at5 = kv__db_bytes(f->kv);
        }
    }
    uint64_t end = kv__db_bytes(f->kv);
    assert_true(checkpoints >= 10);
    /* settled after the first rounds: no growth with the checkpoints */
    if (end > at5 + 4 * G * cur.page_bytes) {
        fail_msg("the file grew from %llu to %llu bytes over %d "
                 "checkpoints",
                 (unsigned long long)at5, (unsigned long long)end, checkpoints);
    }
    kv_ckpt_unpin(f->kv, &cur);
}

/* The count of pages freed since the newest pin belongs to one file. A
 * defrag's new file starts at a low txnid, here the very txnid of the old
 * file's pin (both are the first states of their files), and the count
 * must start again there: carried over, it would answer the old file's
 * pages freed, and read the new file's free list only from the old file's
 * position on. */
static void freed_count_starts_again_on_a_new_file(void **state)
{
    struct fx *f = *state;
    struct hooked h = {.fail = 0};
    struct kv_ckpt first;
    if (kv_ckpt_supported(f->kv) != 0) {
        skip();
    }
    assert_int_equal(kv_ckpt_pin(f->kv, &first), 0);
    put_all(f->kv, "one", 0, KEYS);
    put_all(f->kv, "two", 0, KEYS);
    assert_true(kv_ckpt_growth(f->kv) > 0);
    assert_int_equal(kv_defrag_hook(f->kv, on_fresh, &h), 0);
    assert_true(kv_ckpt_current(f->kv, &h.fresh));
    printf("# the old file's pin at txnid %llu, the new file's at %llu\n",
           (unsigned long long)first.txnid, (unsigned long long)h.fresh.txnid);
    assert_int_equal(h.fresh.txnid, first.txnid); /* the case in point */
    assert_int_equal(kv_ckpt_growth(f->kv), 0);
    /* and counts what the new file frees */
    put_all(f->kv, "three", 0, KEYS);
    uint64_t g = kv_ckpt_growth(f->kv);
    assert_true(g > 0);
    kv_ckpt_unpin(f->kv, &h.fresh);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
const struct CMUnitTest kv_ckpt_tests[] = {
    T(restore_brings_back_the_pinned_state),
    T(record_of_a_replaced_file_does_not_apply),
    T(pins_are_bounded_and_released),
    T(defrag_hook_pins_the_new_file),
    T(checkpoints_by_freed_pages_bound_the_file),
    T(freed_count_starts_again_on_a_new_file),
};
const size_t kv_ckpt_tests_count =
    sizeof(kv_ckpt_tests) / sizeof(kv_ckpt_tests[0]);

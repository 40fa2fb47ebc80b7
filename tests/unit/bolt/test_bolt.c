/*
 * test_bolt.c - unit tests for the bbolt reader (consensus/kv/bolt.c).
 *
 * Goal: the status etcd 3.4 computes (hash, revision, keys, size) on
 * small databases built here page by page, bbolt's choice of meta page,
 * and each check of tx.Check plus our own bounds (loops, shared pages,
 * ids past the end, freelist rules, the depth limit, the budgets) as a
 * distinct error rather than a crash. Method: images built in memory with
 * the byte layout of bolt.h; two real etcd 3.4.23 snapshots from the fuzz
 * corpus (skipped when the tests do not run from the source tree) give
 * the numbers etcdctl printed for them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "consensus/kv/bolt.h"

#define PS 4096u

struct img {
    uint8_t *p;
    size_t n;
    uint32_t ps;
};

struct el {
    uint32_t flags; /* 1: bucket */
    const void *k;
    uint32_t klen;
    const void *v;
    uint32_t vlen;
};

static struct img img_new(uint32_t pages, uint32_t ps)
{
    struct img m = {.p = calloc(pages, ps), .n = (size_t)pages * ps, .ps = ps};
    assert_non_null(m.p);
    return m;
}

static void page_hdr(uint8_t *at, uint64_t id, uint16_t flags, uint16_t count,
                     uint32_t overflow)
{
    le64_put(at, id);
    at[8] = (uint8_t)flags;
    at[9] = (uint8_t)(flags >> 8);
    at[10] = (uint8_t)count;
    at[11] = (uint8_t)(count >> 8);
    le32_put(at + 12, overflow);
}

static uint64_t fnv(const uint8_t *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 1099511628211ull;
    }
    return h;
}

static void put_meta(struct img *m, uint64_t idx, uint64_t root,
                     uint64_t freelist, uint64_t hwm, uint64_t txid)
{
    uint8_t *at = m->p + idx * m->ps, *b = at + 16;
    page_hdr(at, idx, 0x04, 0, 0);
    le32_put(b, BOLT_MAGIC);
    le32_put(b + 4, BOLT_VERSION);
    le32_put(b + 8, m->ps);
    le64_put(b + 16, root);
    le64_put(b + 32, freelist);
    le64_put(b + 40, hwm);
    le64_put(b + 48, txid);
    le64_put(b + 56, fnv(b, 56));
}

/* A leaf page (header and elements) at `at`; returns its length. */
static size_t put_leaf_at(uint8_t *at, uint64_t id, const struct el *e,
                          uint16_t count)
{
    size_t data = 16 + 16u * count;
    page_hdr(at, id, 0x02, count, 0);
    for (uint16_t i = 0; i < count; i++) {
        uint8_t *x = at + 16 + 16u * i;
        le32_put(x, e[i].flags);
        le32_put(x + 4, (uint32_t)(data - (16 + 16u * i)));
        le32_put(x + 8, e[i].klen);
        le32_put(x + 12, e[i].vlen);
        memcpy(at + data, e[i].k, e[i].klen);
        if (e[i].vlen > 0) {
            memcpy(at + data + e[i].klen, e[i].v, e[i].vlen);
        }
        data += e[i].klen + e[i].vlen;
    }
    return data;
}

static void put_leaf(struct img *m, uint64_t id, const struct el *e,
                     uint16_t count)
{
    assert_true(put_leaf_at(m->p + id * m->ps, id, e, count) <= m->ps);
}

static void put_branch(struct img *m, uint64_t id, const uint64_t *kids,
                       uint16_t count)
{
    uint8_t *at = m->p + id * m->ps;
    page_hdr(at, id, 0x01, count, 0);
    for (uint16_t i = 0; i < count; i++) {
        uint8_t *x = at + 16 + 16u * i;
        le32_put(x, (uint32_t)(16 + 16u * count + i - (16 + 16u * i)));
        le32_put(x + 4, 1);
        le64_put(x + 8, kids[i]);
        at[16 + 16u * count + i] = (uint8_t)('a' + i);
    }
}

/* A bucket value: root page, or (root 0) the inline leaf of e[]. */
static uint32_t bucket_val(uint8_t *out, uint64_t root, const struct el *e,
                           uint16_t count)
{
    memset(out, 0, 16);
    le64_put(out, root);
    if (root != 0) {
        return 16;
    }
    return (uint32_t)(16 + put_leaf_at(out + 16, 0, e, count));
}

static void revkey(uint8_t out[17], uint64_t main_rev)
{
    be64_put(out, main_rev);
    out[8] = '_';
    be64_put(out + 9, 0);
}

/* The reference database: root page 2 with bucket "key" (inline, two
 * revisions) and bucket "meta" (root page 3, one entry); 4 pages, no
 * freelist. *want gets etcd's status for it. */
static struct img ref_db(struct bolt_status *want)
{
    static uint8_t k1[17], k2[17], keyv[256], metav[16];
    struct img m = img_new(4, PS);
    revkey(k1, 5);
    revkey(k2, 9);
    struct el kv[2] = {{0, k1, 17, "one", 3}, {0, k2, 17, "two!", 4}};
    uint32_t kl = bucket_val(keyv, 0, kv, 2);
    uint32_t ml = bucket_val(metav, 3, NULL, 0);
    struct el top[2] = {{1, "key", 3, keyv, kl}, {1, "meta", 4, metav, ml}};
    struct el me[1] = {{0, "consistent_index", 16, "\0\0\0\0\0\0\0\x07", 8}};
    put_meta(&m, 0, 2, UINT64_MAX, 4, 2);
    put_meta(&m, 1, 2, UINT64_MAX, 4, 1);
    put_leaf(&m, 2, top, 2);
    put_leaf(&m, 3, me, 1);
    uint32_t h = crc32c(0, "key", 3);
    h = crc32c(h, k1, 17);
    h = crc32c(h, "one", 3);
    h = crc32c(h, k2, 17);
    h = crc32c(h, "two!", 4);
    h = crc32c(h, "meta", 4);
    h = crc32c(h, "consistent_index", 16);
    h = crc32c(h, "\0\0\0\0\0\0\0\x07", 8);
    *want = (struct bolt_status){
        .hash = h, .revision = 9, .total_key = 3, .total_size = 4 * PS};
    return m;
}

static int status(const struct img *m, struct bolt_status *st, char *msg)
{
    return bolt_status_mem(m->p, m->n, st, msg, 256);
}

#define EXPECT_ERR(m, code, text)                                              \
    do {                                                                       \
        struct bolt_status st_;                                                \
        char msg_[256];                                                        \
        assert_int_equal(status(&(m), &st_, msg_), (code));                    \
        if (strstr(msg_, (text)) == NULL) {                                    \
            fail_msg("message \"%s\" lacks \"%s\"", msg_, (text));             \
        }                                                                      \
    } while (0)

static void status_of_a_small_db_is_etcds(void **state)
{
    struct bolt_status want, got;
    char msg[256];
    (void)state;
    struct img m = ref_db(&want);
    assert_true(bolt_is_bolt(m.p, m.n));
    assert_int_equal(status(&m, &got, msg), 0);
    assert_int_equal(got.hash, want.hash);
    assert_int_equal(got.revision, want.revision);
    assert_int_equal(got.total_key, want.total_key);
    assert_int_equal(got.total_size, want.total_size);
    /* a snapshot's 32-byte SHA-256 trailer changes nothing */
    uint8_t *q = realloc(m.p, m.n + 32);
    assert_non_null(q);
    memset(q + m.n, 0xAB, 32);
    assert_int_equal(bolt_status_mem(q, m.n + 32, &got, msg, 256), 0);
    assert_int_equal(got.hash, want.hash);
    free(q);
}

static void the_valid_meta_with_the_higher_txid_is_used(void **state)
{
    struct bolt_status want, got;
    char msg[256];
    (void)state;
    struct img m = ref_db(&want);
    /* meta 1 newer, with a root (page 3: one non-bucket key) that fails */
    put_meta(&m, 1, 3, UINT64_MAX, 4, 3);
    EXPECT_ERR(m, ERR_CORRUPT, "cannot get hash of bucket consistent_index");
    m.p[PS + 16 + 40] ^= 1; /* meta 1's checksum breaks: meta 0 again */
    assert_int_equal(status(&m, &got, msg), 0);
    assert_int_equal(got.hash, want.hash);
    m.p[16 + 48] ^= 1; /* both bad */
    EXPECT_ERR(m, ERR_CORRUPT, "checksum error");
    put_meta(&m, 0, 2, UINT64_MAX, 4, 2);
    le64_put(m.p + 16 + 56, 0); /* checksum 0 is not checked (bbolt 1.3) */
    assert_int_equal(status(&m, &got, msg), 0);
    le32_put(m.p + 16 + 4, 1);
    le32_put(m.p + PS + 16 + 4, 1);
    EXPECT_ERR(m, ERR_BAD_VERSION, "version mismatch");
    le32_put(m.p + 16, 0xC0DEC0DE);
    le32_put(m.p + PS + 16, 0xC0DEC0DE);
    EXPECT_ERR(m, ERR_BAD_MAGIC, "invalid database");
    assert_false(bolt_is_bolt(m.p, m.n));
    free(m.p);
}

static void short_files_are_refused(void **state)
{
    struct bolt_status want, st;
    char msg[256];
    (void)state;
    struct img m = ref_db(&want);
    assert_int_equal(bolt_status_mem(NULL, 0, &st, msg, sizeof(msg)),
                     ERR_BAD_MAGIC);
    assert_int_equal(bolt_status_mem(m.p, 4095, &st, msg, sizeof(msg)),
                     ERR_CORRUPT);
    assert_non_null(strstr(msg, "invalid database"));
    assert_int_equal(bolt_status_mem(m.p, 3 * PS, &st, msg, sizeof(msg)),
                     ERR_CORRUPT);
    assert_non_null(strstr(msg, "high-water page 4 past the end"));
    assert_true(bolt_is_bolt(m.p, 24));
    assert_false(bolt_is_bolt(m.p, 23));
    assert_false(bolt_is_bolt(NULL, 0));
    free(m.p);
}

static void loops_and_shared_pages_are_refused(void **state)
{
    struct bolt_status want;
    (void)state;
    struct img m = ref_db(&want);
    uint64_t self = 2;
    put_branch(&m, 2, &self, 1);
    EXPECT_ERR(m, ERR_CORRUPT, "page 2: multiple references");
    uint64_t kids[2] = {3, 3};
    uint8_t empty[32];
    struct el b[1] = {{1, "b", 1, empty, bucket_val(empty, 0, NULL, 0)}};
    put_leaf(&m, 3, b, 1);
    put_branch(&m, 2, kids, 2);
    EXPECT_ERR(m, ERR_CORRUPT, "page 3: multiple references");
    /* a bucket whose root is the root page, and one that is a meta page */
    uint8_t v[16];
    struct el top[1] = {{1, "key", 3, v, bucket_val(v, 2, NULL, 0)}};
    put_leaf(&m, 2, top, 1);
    EXPECT_ERR(m, ERR_CORRUPT, "page 2: multiple references");
    bucket_val(v, 1, NULL, 0);
    put_leaf(&m, 2, top, 1);
    EXPECT_ERR(m, ERR_CORRUPT, "page 1: multiple references");
    free(m.p);
}

static void ids_and_elements_past_the_end_are_refused(void **state)
{
    struct bolt_status want;
    (void)state;
    struct img m = ref_db(&want);
    uint64_t far = 4;
    put_branch(&m, 2, &far, 1);
    EXPECT_ERR(m, ERR_CORRUPT, "page 4: out of bounds: 4");
    m = (free(m.p), ref_db(&want));
    le32_put(m.p + 3 * PS + 12, 1); /* page 3 overflows past the mark */
    EXPECT_ERR(m, ERR_CORRUPT, "overflow");
    m = (free(m.p), ref_db(&want));
    le32_put(m.p + 3 * PS + 16 + 12, PS); /* vsize */
    EXPECT_ERR(m, ERR_CORRUPT, "page 3: element 0 past its page");
    m = (free(m.p), ref_db(&want));
    m.p[3 * PS + 10] = 0xFF; /* count 255: elements past the page */
    m.p[3 * PS + 11] = 0x01;
    EXPECT_ERR(m, ERR_CORRUPT, "elements past its end");
    m = (free(m.p), ref_db(&want));
    le64_put(m.p + 3 * PS, 7); /* header names another page */
    EXPECT_ERR(m, ERR_CORRUPT, "page 3: header says page 7");
    m = (free(m.p), ref_db(&want));
    m.p[3 * PS + 8] = 0x10; /* a freelist page in a tree */
    EXPECT_ERR(m, ERR_CORRUPT, "page 3: invalid type: freelist");
    free(m.p);
}

static void etcd_key_rules_are_checked(void **state)
{
    struct bolt_status want;
    (void)state;
    struct img m = ref_db(&want);
    struct el top[1] = {{0, "plain", 5, "v", 1}};
    put_leaf(&m, 2, top, 1); /* page 3 unreachable: fine, no freelist */
    EXPECT_ERR(m, ERR_CORRUPT, "cannot get hash of bucket plain");
    uint8_t v[64];
    struct el shortk[1] = {{0, "12345678", 8, "v", 1}};
    struct el top2[1] = {{1, "key", 3, v, bucket_val(v, 0, shortk, 1)}};
    put_leaf(&m, 2, top2, 1);
    EXPECT_ERR(m, ERR_CORRUPT, "is not a revision");
    free(m.p);
}

/* Freelist page 4 listing page 5; page 6 neither reachable nor free. */
static void freelist_rules_are_tx_checks(void **state)
{
    struct bolt_status want, got;
    char msg[256];
    (void)state;
    struct img base = ref_db(&want);
    struct img m = img_new(7, PS);
    memcpy(m.p, base.p, base.n);
    free(base.p);
    put_meta(&m, 0, 2, 4, 7, 2);
    put_meta(&m, 1, 2, 4, 7, 1);
    page_hdr(m.p + 4 * PS, 4, 0x10, 2, 0);
    le64_put(m.p + 4 * PS + 16, 5);
    le64_put(m.p + 4 * PS + 24, 6);
    assert_int_equal(status(&m, &got, msg), 0);
    assert_int_equal(got.hash, want.hash);
    assert_int_equal(got.total_size, 7 * PS);
    m.p[4 * PS + 10] = 1; /* page 6 no longer free */
    EXPECT_ERR(m, ERR_CORRUPT, "page 6: unreachable unfreed");
    le64_put(m.p + 4 * PS + 16, 3); /* page 3 freed while in use */
    EXPECT_ERR(m, ERR_CORRUPT, "page 3: reachable freed");
    m.p[4 * PS + 10] = 2;
    le64_put(m.p + 4 * PS + 16, 6);
    EXPECT_ERR(m, ERR_CORRUPT, "page 6: already freed");
    /* the 0xFFFF form: the count is the first id slot */
    m.p[4 * PS + 10] = 0xFF;
    m.p[4 * PS + 11] = 0xFF;
    le64_put(m.p + 4 * PS + 16, 2);
    le64_put(m.p + 4 * PS + 24, 5);
    le64_put(m.p + 4 * PS + 32, 6);
    assert_int_equal(status(&m, &got, msg), 0);
    le64_put(m.p + 4 * PS + 16, UINT64_MAX / 2);
    EXPECT_ERR(m, ERR_CORRUPT, "ids past its page");
    m.p[4 * PS + 8] = 0x02;
    EXPECT_ERR(m, ERR_CORRUPT, "invalid freelist page");
    free(m.p);
}

static struct img chain(uint32_t levels)
{
    uint32_t pages = levels + 3;
    struct img m = img_new(pages, 512);
    put_meta(&m, 0, 2, UINT64_MAX, pages, 2);
    put_meta(&m, 1, 2, UINT64_MAX, pages, 1);
    for (uint64_t id = 2; id < pages - 1; id++) {
        uint64_t next = id + 1;
        put_branch(&m, id, &next, 1);
    }
    put_leaf(&m, pages - 1, NULL, 0);
    return m;
}

static void nesting_is_bounded(void **state)
{
    struct bolt_status got;
    char msg[256];
    (void)state;
    struct img m = chain(BOLT_DEPTH_MAX);
    assert_int_equal(status(&m, &got, msg), 0);
    assert_int_equal(got.total_key, 0);
    free(m.p);
    m = chain(BOLT_DEPTH_MAX + 1);
    EXPECT_ERR(m, ERR_CORRUPT, "nested deeper than");
    free(m.p);
}

static void overlapping_elements_hit_the_budgets(void **state)
{
    struct bolt_status want;
    uint8_t v[2048];
    struct el in[100];
    (void)state;
    struct img m = ref_db(&want);
    /* 100 top-level buckets sharing one inline bucket of 100 entries:
     * 10,000 elements from a 16 KB file */
    for (int i = 0; i < 100; i++) {
        in[i] = (struct el){0, "k", 1, "v", 1};
    }
    uint32_t vl = bucket_val(v, 0, in, 100);
    uint8_t *at = m.p + 2 * PS; /* every element of page 2 points at it */
    page_hdr(at, 2, 0x02, 100, 0);
    size_t data = 16 + 16 * 100;
    memcpy(at + data, "b", 1);
    memcpy(at + data + 1, v, vl);
    for (uint32_t i = 0; i < 100; i++) {
        le32_put(at + 16 + 16 * i, 1);
        le32_put(at + 16 + 16 * i + 4, (uint32_t)(data - (16 + 16 * i)));
        le32_put(at + 16 + 16 * i + 8, 1);
        le32_put(at + 16 + 16 * i + 12, vl);
    }
    EXPECT_ERR(m, ERR_CORRUPT, "more elements than the file holds");
    free(m.p);
}

static void allocation_failure_is_enomem(void **state)
{
    struct bolt_status want, got;
    char msg[256];
    (void)state;
    struct img m = ref_db(&want);
    mem_fail_after(1, 0);
    int rc = status(&m, &got, msg);
    mem_fail_after(0, 0);
    assert_int_equal(rc, -ENOMEM);
    assert_int_equal(status(&m, &got, msg), 0);
    free(m.p);
}

/* A seed of tests/fuzz/corpus/bolt (control byte, then the file) written
 * to a temp file; false when the tests do not run from the source tree. */
static bool seed_file(const char *name, char *path, size_t cap)
{
    char src[512];
    const char *root = getenv("CAIRN_ROOT");
    snprintf(src, sizeof(src), "%s/tests/fuzz/corpus/bolt/%s",
             root != NULL ? root : ".", name);
    FILE *f = fopen(src, "rb");
    if (f == NULL) {
        return false;
    }
    static uint8_t buf[65536];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    snprintf(path, cap, "/tmp/cairn-bolt-test-%d.db", (int)getpid());
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf + 1, 1, n - 1, f), n - 1);
    fclose(f);
    return true;
}

static void real_etcd_snapshots_match_etcdctl(void **state)
{
    /* etcdctl 3.4.23 snapshot status -w json on these two files */
    static const struct {
        const char *name;
        struct bolt_status want;
    } cases[] = {
        {"etcd-empty-snapshot", {18908440u, 0, 3, 20480}},
        {"etcd-compacted-snapshot", {542837u, 25, 30, 24576}},
    };
    char path[256], msg[512];
    struct bolt_status got;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!seed_file(cases[i].name, path, sizeof(path))) {
            skip();
        }
        int rc = bolt_status_file(path, &got, msg, sizeof(msg));
        unlink(path);
        assert_int_equal(rc, 0);
        assert_int_equal(got.hash, cases[i].want.hash);
        assert_int_equal(got.revision, cases[i].want.revision);
        assert_int_equal(got.total_key, cases[i].want.total_key);
        assert_int_equal(got.total_size, cases[i].want.total_size);
    }
    assert_int_equal(bolt_status_file("/nonexistent/x.db", &got, msg, 512),
                     -ENOENT);
    assert_non_null(strstr(msg, "/nonexistent/x.db"));
    assert_int_equal(bolt_status_file("/tmp", &got, msg, 512), -EISDIR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(status_of_a_small_db_is_etcds),
        cmocka_unit_test(the_valid_meta_with_the_higher_txid_is_used),
        cmocka_unit_test(short_files_are_refused),
        cmocka_unit_test(loops_and_shared_pages_are_refused),
        cmocka_unit_test(ids_and_elements_past_the_end_are_refused),
        cmocka_unit_test(etcd_key_rules_are_checked),
        cmocka_unit_test(freelist_rules_are_tx_checks),
        cmocka_unit_test(nesting_is_bounded),
        cmocka_unit_test(overlapping_elements_hit_the_budgets),
        cmocka_unit_test(allocation_failure_is_enomem),
        cmocka_unit_test(real_etcd_snapshots_match_etcdctl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

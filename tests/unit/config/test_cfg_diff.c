/*
 * test_cfg_diff.c - cfg_diff (config/cfg_diff.c) against GNU diff.
 *
 * Goal: the output is what `diff -u --label A --label B` prints, byte for
 * byte, and whatever happens it is a patch that turns a into b.
 * Method: fixed cases for the format's corners (empty files, missing
 * final newlines, ",0" and ",1" ranges, hunk merging at 6 and 7 lines
 * apart); then random pairs run through /usr/bin/diff. Pairs whose lines
 * each recur at most 5 times in a file must match GNU exactly (GNU sets
 * aside lines that recur more often, a heuristic we do not copy); pairs
 * with heavy repetition must give a patch that `patch` applies to give b
 * exactly, with no more changed lines than GNU's. The coarse path (work
 * budget exhausted) must also give a correct patch. Tests skip with a
 * message when diff or patch is missing.
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/err.h"
#include "config/cfg_int.h"
#include "config/config.h"

static char tmpdir[256];

static void write_file(const char *name, const char *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n > 0) {
        assert_int_equal(fwrite(p, 1, n, f), n);
    }
    assert_int_equal(fclose(f), 0);
}

/* Run cmd (a shell command) and capture its stdout into out. */
static int run(const char *cmd, struct buf *out)
{
    FILE *f = popen(cmd, "r");
    char tmp[4096];
    size_t n;
    assert_non_null(f);
    buf_reset(out);
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        assert_int_equal(buf_append(out, tmp, n), 0);
    }
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool have_tools(void)
{
    return access("/usr/bin/diff", X_OK) == 0 &&
           access("/usr/bin/patch", X_OK) == 0;
}

/* GNU's diff of a and b into out. */
static void gnu_diff(const char *a, size_t alen, const char *b, size_t blen,
                     struct buf *out)
{
    char cmd[1024];
    write_file("a", a, alen);
    write_file("b", b, blen);
    snprintf(cmd, sizeof(cmd),
             "cd %s && /usr/bin/diff -u --label A --label B a b", tmpdir);
    int st = run(cmd, out);
    assert_true(st == 0 || st == 1);
}

/* Does `patch` turn a into b with our diff d? */
static bool patch_ok(const char *a, size_t alen, const char *b, size_t blen,
                     const struct buf *d)
{
    char cmd[1024];
    struct buf got;
    buf_init(&got, 0);
    write_file("a", a, alen);
    write_file("p", (const char *)d->data, d->len);
    snprintf(cmd, sizeof(cmd),
             "cd %s && rm -f out && /usr/bin/patch -s -o out a p "
             ">/dev/null 2>&1 && cat out",
             tmpdir);
    int st = run(cmd, &got);
    bool ok = st == 0 && got.len == blen &&
              (blen == 0 || memcmp(got.data, b, blen) == 0);
    buf_free(&got);
    return ok;
}

/* Changed lines ("-" and "+" lines) of a unified diff. */
static size_t changed_lines(const struct buf *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->len; i++) {
        if (i == 0 || d->data[i - 1] == '\n') {
            bool hdr = i + 3 < d->len && (memcmp(d->data + i, "--- ", 4) == 0 ||
                                          memcmp(d->data + i, "+++ ", 4) == 0);
            if (!hdr && (d->data[i] == '-' || d->data[i] == '+')) {
                n++;
            }
        }
    }
    return n;
}

static void ours(const char *a, const char *b, struct buf *out)
{
    buf_reset(out);
    assert_int_equal(cfg_diff(a, strlen(a), b, strlen(b), "A", "B", out), 0);
}

static void expect(const char *a, const char *b, const char *want)
{
    struct buf out;
    buf_init(&out, 0);
    ours(a, b, &out);
    if (out.len != strlen(want) ||
        (out.len > 0 && memcmp(out.data, want, out.len) != 0)) {
        fail_msg("diff of \"%s\" and \"%s\":\n%.*s\nwanted:\n%s", a, b,
                 (int)out.len, (const char *)out.data, want);
    }
    buf_free(&out);
}

/* The format's corners, written out from GNU diff 3.8's output. */
static void diff_fixed_cases(void **state)
{
    (void)state;
    expect("", "", "");
    expect("a\n", "a\n", "");
    expect("", "x\n", "--- A\n+++ B\n@@ -0,0 +1 @@\n+x\n");
    expect("x\n", "", "--- A\n+++ B\n@@ -1 +0,0 @@\n-x\n");
    expect("x", "x\n",
           "--- A\n+++ B\n@@ -1 +1 @@\n-x\n\\ No newline at end of file\n"
           "+x\n");
    expect("a\nb", "a\nc",
           "--- A\n+++ B\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of "
           "file\n+c\n\\ No newline at end of file\n");
    expect("1\n2\n3\n4\n5\n", "1\n2\n4\n5\n",
           "--- A\n+++ B\n@@ -1,5 +1,4 @@\n 1\n 2\n-3\n 4\n 5\n");
    /* Six unchanged lines between changes: one hunk; seven: two. */
    expect("x\n1\n2\n3\n4\n5\n6\ny\n", "X\n1\n2\n3\n4\n5\n6\nY\n",
           "--- A\n+++ B\n@@ -1,8 +1,8 @@\n-x\n+X\n 1\n 2\n 3\n 4\n 5\n 6\n"
           "-y\n+Y\n");
    expect("x\n1\n2\n3\n4\n5\n6\n7\ny\n", "X\n1\n2\n3\n4\n5\n6\n7\nY\n",
           "--- A\n+++ B\n@@ -1,4 +1,4 @@\n-x\n+X\n 1\n 2\n 3\n"
           "@@ -6,4 +6,4 @@\n 5\n 6\n 7\n-y\n+Y\n");
    /* An insertion after line 4 of 8: the empty range is "4,0". */
    expect("1\n2\n3\n4\n5\n6\n7\n8\n", "1\n2\n3\n4\nn\n5\n6\n7\n8\n",
           "--- A\n+++ B\n@@ -2,6 +2,7 @@\n 2\n 3\n 4\n+n\n 5\n 6\n 7\n");
}

static void diff_limits(void **state)
{
    (void)state;
    struct buf out;
    char *big = malloc(CFG_CONTENT_MAX + 1);
    assert_non_null(big);
    memset(big, '\n', CFG_CONTENT_MAX + 1);
    buf_init(&out, 0);
    /* At the bound: a million empty lines against a million and one
     * less: fine. One byte past: refused, out untouched. */
    assert_int_equal(cfg_diff(big, CFG_CONTENT_MAX, big, CFG_CONTENT_MAX - 1,
                              "A", "B", &out),
                     0);
    static const char want[] = "--- A\n+++ B\n@@ -1048573,4 +1048573,3 @@\n"
                               " \n \n \n-\n";
    assert_int_equal(out.len, sizeof(want) - 1);
    assert_memory_equal(out.data, want, out.len);
    size_t len0 = out.len;
    assert_int_equal(cfg_diff(big, CFG_CONTENT_MAX + 1, "", 0, "A", "B", &out),
                     ERR_LIMIT);
    assert_int_equal(out.len, len0);
    /* Output past the buffer's cap: ERR_LIMIT, nothing appended. */
    struct buf small;
    buf_init(&small, 16);
    assert_int_equal(cfg_diff("a\n", 2, "b\n", 2, "A", "B", &small), ERR_LIMIT);
    assert_int_equal(small.len, 0);
    buf_free(&small);
    buf_free(&out);
    free(big);
}

/* --------------------------------------------------------------- random */

struct rng {
    uint64_t s;
};

static uint32_t rnd(struct rng *r, uint32_t n)
{
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)((r->s >> 33) % n);
}

/* Random lines from an alphabet of size alpha into out. */
static void gen(struct rng *r, struct buf *out, uint32_t lines, uint32_t alpha)
{
    char t[32];
    buf_reset(out);
    for (uint32_t i = 0; i < lines; i++) {
        int n = snprintf(t, sizeof(t), "l%u\n", rnd(r, alpha));
        assert_int_equal(buf_append(out, t, (size_t)n), 0);
    }
}

/* b from a by random edits: delete, insert, replace, copy a run. */
static void mutate(struct rng *r, const struct buf *a, struct buf *b,
                   uint32_t alpha)
{
    /* line starts of a */
    size_t starts[512];
    size_t n = 0;
    for (size_t i = 0; i < a->len && n < 511; i++) {
        if (i == 0 || a->data[i - 1] == '\n') {
            starts[n++] = i;
        }
    }
    starts[n] = a->len;
    buf_reset(b);
    char t[32];
    for (size_t i = 0; i < n; i++) {
        uint32_t op = rnd(r, 10);
        if (op == 0) {
            continue; /* delete */
        }
        if (op == 1 || op == 2) {
            int k = snprintf(t, sizeof(t), "l%u\n", rnd(r, alpha));
            assert_int_equal(buf_append(b, t, (size_t)k), 0);
            if (op == 1) {
                continue; /* replace */
            }
        }
        if (op == 3 && n > 1) {
            size_t j = rnd(r, (uint32_t)n);
            size_t e = j + 1 + rnd(r, 3);
            e = e < n ? e : n;
            assert_int_equal(
                buf_append(b, a->data + starts[j], starts[e] - starts[j]), 0);
        }
        assert_int_equal(
            buf_append(b, a->data + starts[i], starts[i + 1] - starts[i]), 0);
    }
}

static uint32_t max_repeat(const struct buf *x)
{
    /* lines are "l<k>\n" with k < 1000 */
    static uint32_t count[1000];
    uint32_t m = 0;
    memset(count, 0, sizeof(count));
    for (size_t i = 0; i < x->len; i++) {
        if ((i == 0 || x->data[i - 1] == '\n') && x->data[i] == 'l') {
            uint32_t k =
                (uint32_t)strtoul((const char *)x->data + i + 1, NULL, 10);
            if (k < 1000 && ++count[k] > m) {
                m = count[k];
            }
        }
    }
    return m;
}

struct tally {
    unsigned cases, exact, patched, strict, strict_exact, fewer, more;
};

/* A line of a config-like file: often one of a few common lines (blank,
 * a closing brace), else one of many. */
static void config_like(struct rng *r, struct buf *out, uint32_t lines)
{
    static const char *const common[] = {"\n", "}\n", "  x: 1\n"};
    char t[32];
    buf_reset(out);
    for (uint32_t i = 0; i < lines; i++) {
        int n = rnd(r, 10) < 4 ? snprintf(t, sizeof(t), "%s", common[rnd(r, 3)])
                               : snprintf(t, sizeof(t), "u%u\n", rnd(r, 3000));
        assert_int_equal(buf_append(out, t, (size_t)n), 0);
    }
}

enum kind { FEW_REPEATS, REPETITIVE, CONFIG_LIKE };

static void one_case(struct rng *r, struct tally *t, enum kind kind)
{
    struct buf a, b, mine, gnu;
    buf_init(&a, 0);
    buf_init(&b, 0);
    buf_init(&mine, 0);
    buf_init(&gnu, 0);
    uint32_t alpha = kind == REPETITIVE ? 2 + rnd(r, 4) : 8 + rnd(r, 60);
    if (kind == CONFIG_LIKE) {
        config_like(r, &a, rnd(r, 300));
        mutate(r, &a, &b, 3000);
    } else if (gen(r, &a, rnd(r, 40), alpha), rnd(r, 3) == 0) {
        gen(r, &b, rnd(r, 40), alpha); /* unrelated */
    } else {
        mutate(r, &a, &b, alpha);
    }
    /* drop final newlines now and then */
    if (a.len > 0 && rnd(r, 5) == 0) {
        a.len--;
    }
    if (b.len > 0 && rnd(r, 5) == 0) {
        b.len--;
    }
    bool strict =
        kind != CONFIG_LIKE && max_repeat(&a) <= 5 && max_repeat(&b) <= 5;
    struct cfg__diff_stats st = {.coarse = 1};
    int rc = cfg__diff_cost((const char *)a.data, a.len, (const char *)b.data,
                            b.len, "A", "B", &mine, CFG_DIFF_COST_MAX, &st);
    if (rc != 0) {
        fail_msg("cfg_diff: %s\na:\n%.*s\n--\nb:\n%.*s", err_str(rc),
                 (int)a.len, (const char *)a.data, (int)b.len,
                 (const char *)b.data);
    }
    assert_int_equal(st.coarse, 0);
    assert_int_equal(st.settled, 0);
    gnu_diff((const char *)a.data, a.len, (const char *)b.data, b.len, &gnu);
    bool same = mine.len == gnu.len &&
                (mine.len == 0 || memcmp(mine.data, gnu.data, mine.len) == 0);
    t->cases++;
    t->exact += same;
    t->strict += strict;
    t->strict_exact += strict && same;
    if (strict && !same) {
        fail_msg("a:\n%.*s\n--\nb:\n%.*s\n--\nours:\n%.*s\n--\nGNU:\n%.*s",
                 (int)a.len, (const char *)a.data, (int)b.len,
                 (const char *)b.data, (int)mine.len, (const char *)mine.data,
                 (int)gnu.len, (const char *)gnu.data);
    }
    if (!same) {
        size_t cm = changed_lines(&mine), cg = changed_lines(&gnu);
        t->fewer += cm < cg;
        t->more += cm > cg;
        if (cm > cg) {
            fail_msg("ours changes %zu lines, GNU %zu", cm, cg);
        }
    }
    /* GNU's output is a patch; ours is checked by `patch` when it differs
     * and on one case in four otherwise. */
    if (mine.len > 0 && (!same || t->cases % 4 == 0)) {
        if (!patch_ok((const char *)a.data, a.len, (const char *)b.data, b.len,
                      &mine)) {
            fail_msg("patch failed:\n%.*s", (int)mine.len,
                     (const char *)mine.data);
        }
        t->patched++;
    } else if (mine.len == 0) {
        assert_true(a.len == b.len &&
                    (a.len == 0 || memcmp(a.data, b.data, a.len) == 0));
    }
    buf_free(&a);
    buf_free(&b);
    buf_free(&mine);
    buf_free(&gnu);
}

static void diff_random_vs_gnu(void **state)
{
    (void)state;
    if (!have_tools()) {
        skip(); /* needs /usr/bin/diff and /usr/bin/patch */
    }
    struct rng r = {.s = 42};
    struct tally t;
    memset(&t, 0, sizeof(t));
    for (int i = 0; i < 700; i++) {
        one_case(&r, &t, FEW_REPEATS);
    }
    for (int i = 0; i < 200; i++) {
        one_case(&r, &t, REPETITIVE);
    }
    for (int i = 0; i < 200; i++) {
        one_case(&r, &t, CONFIG_LIKE);
    }
    print_message(
        "# random diffs: %u cases, %u byte-identical to GNU "
        "(%u of %u with lines recurring <= 5 times), %u patched "
        "back exactly by patch(1), %u with fewer changed lines than GNU\n",
        t.cases, t.exact, t.strict_exact, t.strict, t.patched, t.fewer);
    assert_int_equal(t.strict_exact, t.strict);
    assert_int_equal(t.more, 0);
}

/* The coarse path: a tiny budget still gives a patch that makes b. */
static void diff_coarse_is_correct(void **state)
{
    (void)state;
    if (!have_tools()) {
        skip();
    }
    struct rng r = {.s = 7};
    struct buf a, b, mine;
    buf_init(&a, 0);
    buf_init(&b, 0);
    buf_init(&mine, 0);
    unsigned coarse_seen = 0;
    for (int i = 0; i < 200; i++) {
        gen(&r, &a, 5 + rnd(&r, 60), 20);
        mutate(&r, &a, &b, 20);
        buf_reset(&mine);
        struct cfg__diff_stats st = {.coarse = 0};
        assert_int_equal(cfg__diff_cost((const char *)a.data, a.len,
                                        (const char *)b.data, b.len, "A", "B",
                                        &mine, rnd(&r, 40), &st),
                         0);
        coarse_seen += st.coarse > 0;
        if (mine.len > 0 && !patch_ok((const char *)a.data, a.len,
                                      (const char *)b.data, b.len, &mine)) {
            fail_msg("patch failed:\n%.*s", (int)mine.len,
                     (const char *)mine.data);
        }
    }
    assert_true(coarse_seen > 50);
    buf_free(&a);
    buf_free(&b);
    buf_free(&mine);
}

/* Two large inputs with many differences: bounded time, correct patch. */
static void diff_large(void **state)
{
    (void)state;
    if (!have_tools()) {
        skip();
    }
    struct rng r = {.s = 99};
    struct buf a, b, mine;
    buf_init(&a, 0);
    buf_init(&b, 0);
    buf_init(&mine, 0);
    gen(&r, &a, 120000, 200); /* ~700 KB, 600 copies of each line */
    mutate(&r, &a, &b, 200);
    assert_true(a.len <= CFG_CONTENT_MAX && b.len <= CFG_CONTENT_MAX);
    assert_int_equal(cfg_diff((const char *)a.data, a.len, (const char *)b.data,
                              b.len, "A", "B", &mine),
                     0);
    assert_true(patch_ok((const char *)a.data, a.len, (const char *)b.data,
                         b.len, &mine));
    buf_free(&a);
    buf_free(&b);
    buf_free(&mine);
}

/* Out of memory at each allocation in turn (the failing allocator):
 * -ENOMEM and nothing appended, or success with the right output. */
static void diff_out_of_memory(void **state)
{
    (void)state;
    static const char a[] = "1\n2\n3\n4\n5\n6\n7\n8\n9\n";
    static const char b[] = "1\n2\nx\n4\n5\n6\n7\n8\ny";
    struct buf want, out;
    buf_init(&want, 0);
    assert_int_equal(
        cfg_diff(a, sizeof(a) - 1, b, sizeof(b) - 1, "A", "B", &want), 0);
    bool done = false;
    for (unsigned long n = 1; !done && n < 1000; n++) {
        buf_init(&out, 0);
        assert_int_equal(buf_append(&out, "keep", 4), 0);
        mem_fail_after(n, 1);
        int rc = cfg_diff(a, sizeof(a) - 1, b, sizeof(b) - 1, "A", "B", &out);
        mem_fail_after(0, 0);
        if (rc == 0) {
            assert_int_equal(out.len, 4 + want.len);
            assert_memory_equal(out.data + 4, want.data, want.len);
            done = true;
        } else {
            assert_int_equal(rc, -ENOMEM);
            assert_int_equal(out.len, 4);
        }
        buf_free(&out);
    }
    assert_true(done);
    /* The .properties reader too. */
    done = false;
    for (unsigned long n = 1; !done && n < 100; n++) {
        struct cfg_error e;
        mem_fail_after(n, 1);
        int rc = cfg_properties_parse("a=b\nc=d", 7, NULL, NULL, &e);
        mem_fail_after(0, 0);
        assert_true(rc == 0 || rc == -ENOMEM);
        done = rc == 0;
    }
    assert_true(done);
    /* The YAML checks' own tables (libyaml's allocations are its own):
     * every failure is -ENOMEM, never a wrong verdict. */
    static const char y[] = "a: &x {k: 1, j: 2}\nb: *x\nc: 3\nd: 4\ne: 5\n";
    done = false;
    for (unsigned long n = 1; !done && n < 100; n++) {
        struct cfg_error e;
        mem_fail_after(n, 1);
        int rc = cfg_validate(CFG_FORMAT_YAML, y, sizeof(y) - 1, &e);
        mem_fail_after(0, 0);
        assert_true(rc == 0 || rc == -ENOMEM);
        done = rc == 0;
    }
    assert_true(done);
    buf_free(&want);
}

int test_cfg_diff_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(diff_fixed_cases),
        cmocka_unit_test(diff_limits),
        cmocka_unit_test(diff_random_vs_gnu),
        cmocka_unit_test(diff_coarse_is_correct),
        cmocka_unit_test(diff_large),
        cmocka_unit_test(diff_out_of_memory),
    };
    char tpl[] = "/tmp/cfg-diff-XXXXXX";
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/cfg-diff-XXXXXX",
             base != NULL ? base : "/tmp");
    if (mkdtemp(tmpdir) == NULL) {
        snprintf(tmpdir, sizeof(tmpdir), "%s", tpl);
        if (mkdtemp(tmpdir) == NULL) {
            return 1;
        }
    }
    int fails = cmocka_run_group_tests_name("cfg_diff", tests, NULL, NULL);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        fails++;
    }
    return fails;
}

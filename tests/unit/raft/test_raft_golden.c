/*
 * test_raft_golden.c - golden scenario transcripts of the Raft core.
 *
 * Goal: any change in what the core does (a message more or less, another
 * field value, a different order, a commit one message earlier) shows up as
 * a readable diff of a checked-in transcript, and each transcript can be
 * read by a person as a step-by-step account of the protocol (election
 * with pre-vote and a split vote, replication with pipelining, backtracking
 * with conflict hints, ReadIndex, snapshot install, membership changes,
 * leader transfer, check-quorum, the commit rule of figure 8).
 *
 * Method: each tests/unit/raft/testdata/<name>.txt is a script, commands on
 * lines starting with "> ", each followed by the events it caused when the
 * file was last regenerated (format: testdata/README). golden_run() replays
 * the commands on a fresh harness network (real cores, real codec, seeded
 * PRNG only) and reproduces the whole file; this test compares that with
 * the file byte for byte. On a mismatch it prints the differing lines as a
 * unified-style diff (TAP comments) and fails. A safety violation found
 * while replaying (two leaders in a term, logs or applied states that
 * differ) fails the test too, whatever the file says.
 *
 * Regenerating after an intended change:
 *     RAFT_GOLDEN_UPDATE=1 build/release/tests/unit-raft
 * rewrites every golden file from its commands (the test then passes);
 * review the result with `git diff tests/unit/raft/testdata` before
 * committing it. A file with a violation is never rewritten.
 *
 * The files are found under $CAIRN_ROOT/tests/unit/raft/testdata
 * (tests/run.sh sets CAIRN_ROOT), else under ./tests/unit/raft/testdata
 * (running the binary from the repo root).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>

#include "base/buf.h"
#include "tests/unit/raft/golden.h"

int raft_golden_tests(void);

#define TESTDATA   "tests/unit/raft/testdata"
#define DIFF_LINES 40 /* per side of the diff */
#define DIFF_CTX   3

/* Every scenario must be listed here: a file that is not is reported. */
static const char *const scenarios[] = {
    "election",     "election_split_vote", "replication",
    "backtracking", "read_index",          "snapshot",
    "membership",   "leader_transfer",     "check_quorum",
    "commit_rule",
};
#define SCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

static void testdata_dir(char *out, size_t cap)
{
    const char *root = getenv("CAIRN_ROOT");
    if (root != NULL && root[0] != '\0') {
        snprintf(out, cap, "%s/%s", root, TESTDATA);
    } else {
        snprintf(out, cap, "%s", TESTDATA);
    }
}

static int read_file(const char *path, struct buf *b)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return -errno;
    }
    char chunk[4096];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rc = buf_append(b, chunk, n);
    }
    if (rc == 0 && ferror(f)) {
        rc = -EIO;
    }
    fclose(f);
    return rc;
}

static int write_file(const char *path, const struct buf *b)
{
    char tmp[1100];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (f == NULL) {
        return -errno;
    }
    size_t n = fwrite(b->data, 1, b->len, f);
    int rc = (n == b->len && fflush(f) == 0) ? 0 : -EIO;
    if (fclose(f) != 0 && rc == 0) {
        rc = -EIO;
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        remove(tmp);
    }
    return rc;
}

/* ------------------------------------------------------------- the diff */

struct lines {
    const char **p; /* start of each line */
    size_t *len;
    size_t n;
};

static void split_lines(const struct buf *b, struct lines *l)
{
    size_t cap = 1;
    for (size_t i = 0; i < b->len; i++) {
        cap += b->data[i] == '\n';
    }
    l->p = calloc(cap, sizeof(*l->p));
    l->len = calloc(cap, sizeof(*l->len));
    assert_non_null(l->p);
    assert_non_null(l->len);
    l->n = 0;
    const char *s = (const char *)b->data;
    for (size_t pos = 0; pos < b->len;) {
        const char *nl = memchr(s + pos, '\n', b->len - pos);
        size_t n = nl ? (size_t)(nl - (s + pos)) : b->len - pos;
        l->p[l->n] = s + pos;
        l->len[l->n++] = n;
        pos += n + 1;
    }
}

static bool line_eq(const struct lines *a, size_t i, const struct lines *b,
                    size_t j)
{
    return a->len[i] == b->len[j] && memcmp(a->p[i], b->p[j], a->len[i]) == 0;
}

/* The edit script between a[lo..a.n-suf) and b[lo..b.n-suf) by a longest
 * common subsequence table (the middle part is small: a few hundred lines
 * per scenario). ops[k] is ' ', '-' or '+'; returns the count. */
static size_t edit_script(const struct lines *a, const struct lines *b,
                          size_t lo, size_t suf, char *ops, size_t cap)
{
    size_t n = a->n - suf - lo, m = b->n - suf - lo;
    uint32_t *t = calloc((n + 1) * (m + 1), sizeof(*t));
    assert_non_null(t);
#define T(i, j) t[(i) * (m + 1) + (j)]
    for (size_t i = n; i-- > 0;) {
        for (size_t j = m; j-- > 0;) {
            T(i, j) =
                line_eq(a, lo + i, b, lo + j)
                    ? T(i + 1, j + 1) + 1
                    : (T(i + 1, j) > T(i, j + 1) ? T(i + 1, j) : T(i, j + 1));
        }
    }
    size_t i = 0, j = 0, k = 0;
    while ((i < n || j < m) && k < cap) {
        if (i < n && j < m && line_eq(a, lo + i, b, lo + j)) {
            ops[k++] = ' ';
            i++;
            j++;
        } else if (j < m && (i == n || T(i, j + 1) >= T(i + 1, j))) {
            ops[k++] = '+';
            j++;
        } else {
            ops[k++] = '-';
            i++;
        }
    }
#undef T
    free(t);
    return k;
}

/* A unified-style diff of the first differences: DIFF_CTX lines of context
 * around each change, at most DIFF_LINES changed lines in all. */
static void print_diff(const char *path, const struct buf *want,
                       const struct buf *got)
{
    struct lines a, b;
    split_lines(want, &a);
    split_lines(got, &b);
    size_t pre = 0;
    while (pre < a.n && pre < b.n && line_eq(&a, pre, &b, pre)) {
        pre++;
    }
    size_t suf = 0;
    while (suf < a.n - pre && suf < b.n - pre &&
           line_eq(&a, a.n - 1 - suf, &b, b.n - 1 - suf)) {
        suf++;
    }
    size_t cap = (a.n - pre - suf) + (b.n - pre - suf);
    char *ops = malloc(cap + 1);
    assert_non_null(ops);
    size_t nops = edit_script(&a, &b, pre, suf, ops, cap);
    printf("# golden mismatch in %s, first at line %zu\n", path, pre + 1);
    printf("# --- %s (expected)\n# +++ replay (actual)\n", path);
    size_t ia = pre, ib = pre, shown = 0;
    size_t from = pre < DIFF_CTX ? 0 : pre - DIFF_CTX;
    for (size_t x = from; x < pre; x++) {
        printf("#  %.*s\n", (int)a.len[x], a.p[x]);
    }
    for (size_t k = 0; k < nops && shown < DIFF_LINES; k++) {
        if (ops[k] == ' ') {
            /* context only next to a change */
            bool near = false;
            for (size_t d = 1; d <= DIFF_CTX; d++) {
                near = near || (k >= d && ops[k - d] != ' ') ||
                       (k + d < nops && ops[k + d] != ' ');
            }
            if (near) {
                printf("#  %.*s\n", (int)a.len[ia], a.p[ia]);
            } else if (k > 0 && ops[k - 1] != ' ') {
                printf("# ...\n");
            }
            ia++;
            ib++;
        } else if (ops[k] == '-') {
            printf("# -%.*s\n", (int)a.len[ia], a.p[ia]);
            ia++;
            shown++;
        } else {
            printf("# +%.*s\n", (int)b.len[ib], b.p[ib]);
            ib++;
            shown++;
        }
    }
    if (shown >= DIFF_LINES) {
        printf("# ... (more differences)\n");
    }
    printf("# if the change is intended: RAFT_GOLDEN_UPDATE=1 and review "
           "`git diff %s`\n",
           TESTDATA);
    free(ops);
    free(a.p);
    free(a.len);
    free(b.p);
    free(b.len);
}

/* ------------------------------------------------------------ the tests */

static void scenario_matches_golden(void **state)
{
    const char *name = *state;
    char dir[512], path[1024], err[256] = "";
    testdata_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/%s.txt", dir, name);
    struct buf want, got;
    buf_init(&want, 0);
    buf_init(&got, 0);
    int rc = read_file(path, &want);
    if (rc != 0) {
        fail_msg("cannot read %s (%s); set CAIRN_ROOT or run from the "
                 "repo root",
                 path, strerror(-rc));
    }
    int violations = 0;
    rc = golden_run((const char *)want.data, want.len, &got, &violations, err,
                    sizeof(err));
    if (rc != 0) {
        fail_msg("%s: %s", path, err);
    }
    bool same = want.len == got.len &&
                (want.len == 0 || memcmp(want.data, got.data, want.len) == 0);
    const char *update = getenv("RAFT_GOLDEN_UPDATE");
    if (violations == 0 && !same && update != NULL &&
        strcmp(update, "1") == 0) {
        assert_int_equal(write_file(path, &got), 0);
        printf("# rewrote %s\n", path);
        same = true;
    } else if (!same) {
        print_diff(path, &want, &got);
    }
    buf_free(&want);
    buf_free(&got);
    if (violations > 0) {
        fail_msg("%s: %d safety violation(s) while replaying (see the "
                 "VIOLATION line in the diff)",
                 path, violations);
    }
    if (!same) {
        fail_msg("%s: replay differs from the golden transcript", path);
    }
}

/* A scenario file that is not in the list above would never run. */
static void every_testdata_file_is_a_listed_scenario(void **state)
{
    (void)state;
    char dir[512];
    testdata_dir(dir, sizeof(dir));
    DIR *d = opendir(dir);
    if (d == NULL) {
        fail_msg("cannot open %s; set CAIRN_ROOT or run from the repo root",
                 dir);
    }
    int unlisted = 0, txt = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".txt") != 0) {
            continue;
        }
        txt++;
        bool listed = false;
        for (size_t i = 0; i < SCENARIOS; i++) {
            listed = listed || (strlen(scenarios[i]) == n - 4 &&
                                strncmp(scenarios[i], e->d_name, n - 4) == 0);
        }
        if (!listed) {
            printf("# %s/%s is not listed in test_raft_golden.c\n", dir,
                   e->d_name);
            unlisted++;
        }
    }
    closedir(d);
    assert_int_equal(unlisted, 0);
    assert_int_equal(txt, SCENARIOS);
}

int raft_golden_tests(void)
{
    struct CMUnitTest tests[SCENARIOS + 1];
    memset(tests, 0, sizeof(tests));
    for (size_t i = 0; i < SCENARIOS; i++) {
        tests[i].name = scenarios[i];
        tests[i].test_func = scenario_matches_golden;
        tests[i].initial_state = (void *)scenarios[i];
    }
    tests[SCENARIOS].name = "every_testdata_file_is_a_listed_scenario";
    tests[SCENARIOS].test_func = every_testdata_file_is_a_listed_scenario;
    return _cmocka_run_group_tests("raft_golden", tests, SCENARIOS + 1, NULL,
                                   NULL);
}

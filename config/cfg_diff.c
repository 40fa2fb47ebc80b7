/*
 * cfg_diff.c - unified diffs between two versions of a config, as GNU
 * `diff -u` prints them.
 *
 * Pipeline, each step chosen so that the output matches GNU diff's for
 * the same files, not merely some correct diff:
 *  1. Split both inputs into lines (each keeps its "\n"; a last line
 *     without one differs from the same text with one).
 *  2. Strip the common prefix and suffix, but keep CFG_DIFF_CONTEXT lines
 *     of each inside the compared region, as GNU keeps its "horizon"
 *     lines (they matter for step 4's counts).
 *  3. Number the distinct lines of the region (hash table; probes count
 *     against the work budget, so crafted collisions cannot stall us).
 *  4. Set aside every line with no equal in the other file: it is a
 *     change whatever the alignment (GNU's discard of unmatched lines;
 *     GNU also sets aside lines that recur very often, which we do not).
 *  5. Compare the rest with Myers' algorithm ("An O(ND) Difference
 *     Algorithm and Its Variations", Algorithmica 1986, section 4b): find
 *     the middle snake of a shortest edit script by searching from both
 *     ends at once, split there, repeat on both halves (an explicit
 *     stack; depth is about log2 of the edit distance). Space is linear.
 *     Ties are broken as GNU does: forward, a deletion over an insertion
 *     when both reach as far; backward, the smaller x; diagonals scanned
 *     from the highest; the search clipped to the rectangle.
 *  6. Slide each run of changes as GNU's shift_boundaries does: up and
 *     down over equal lines to merge with neighbouring runs, ending as
 *     low as possible unless it can end where the other file's changes
 *     end.
 *  7. Print hunks: changes closer than 2 * CFG_DIFF_CONTEXT + 1 unchanged
 *     lines share one.
 * Every unit of work (a diagonal searched, a line compared along a
 * snake, a hash probe) is counted; past the budget each part not yet
 * compared is shown as deleted and inserted whole: longer than needed,
 * still exact.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "config/cfg_int.h"

struct side {
    const char *p;
    uint32_t n;       /* lines */
    uint32_t *start;  /* n + 1 line starts; line i is [start[i], start[i+1]) */
    uint32_t *eq;     /* class of each line of the region */
    uint8_t *changed; /* n + 2 bytes, changed[-1] == changed[n] == 0 */
    uint32_t lo, hi;  /* the compared region [lo, hi) */
    uint32_t *seq;    /* classes of the lines kept for Myers */
    uint32_t *map;    /* line index of each seq entry */
    uint32_t seq_n;
};

struct cls {
    uint64_t hash;
    uint32_t side; /* representative line: side and index */
    uint32_t line;
    uint32_t count[2];
};

struct diff {
    struct side s[2];
    struct cls *cls;
    uint32_t cls_n;
    uint32_t cls_cap;
    uint32_t *table; /* class index + 1, or 0 */
    uint32_t table_mask;
    int32_t *fd; /* Myers' V, forward and backward, by diagonal + voff */
    int32_t *bd;
    int64_t voff;
    unsigned long long cost;
    unsigned long long cost_max;
    unsigned coarse;  /* boxes shown whole for want of budget */
    unsigned settled; /* splits at the furthest point, not the middle */
};

static const char *line_ptr(const struct side *s, uint32_t i)
{
    return s->p + s->start[i];
}

static uint32_t line_len(const struct side *s, uint32_t i)
{
    return s->start[i + 1] - s->start[i];
}

static bool lines_equal(const struct side *a, uint32_t i, const struct side *b,
                        uint32_t j)
{
    uint32_t n = line_len(a, i);
    return n == line_len(b, j) &&
           memcmp(line_ptr(a, i), line_ptr(b, j), n) == 0;
}

/* ------------------------------------------------------------ 1. lines */

static int split_lines(struct side *s, const char *p, size_t len)
{
    uint32_t n = 0;
    for (size_t i = 0; i < len; i++) {
        n += p[i] == '\n';
    }
    if (len > 0 && p[len - 1] != '\n') {
        n++;
    }
    s->p = p;
    s->n = n;
    s->start = mem_alloc(((size_t)n + 1) * sizeof(uint32_t));
    s->eq = mem_alloc(((size_t)n + 1) * sizeof(uint32_t));
    uint8_t *changed = mem_calloc((size_t)n + 2, 1);
    s->changed = changed != NULL ? changed + 1 : NULL; /* changed[-1] is 0 */
    s->seq = mem_alloc(((size_t)n + 1) * sizeof(uint32_t));
    s->map = mem_alloc(((size_t)n + 1) * sizeof(uint32_t));
    if (s->start == NULL || s->eq == NULL || s->changed == NULL ||
        s->seq == NULL || s->map == NULL) {
        return -ENOMEM;
    }
    uint32_t k = 0;
    s->start[0] = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n') {
            s->start[++k] = (uint32_t)(i + 1);
        }
    }
    if (k < n) {
        s->start[++k] = (uint32_t)len;
    }
    ASSERT(k == n);
    return 0;
}

static void side_free(struct side *s)
{
    mem_free(s->start);
    mem_free(s->eq);
    mem_free(s->changed != NULL ? s->changed - 1 : NULL);
    mem_free(s->seq);
    mem_free(s->map);
}

/* ----------------------------------------------------------- 3. classes */

static uint64_t hash_line(const char *p, uint32_t n)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a, 64 bits */
    for (uint32_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    }
    return h ^ h >> 29;
}

/* The class of line i of side f, made when new. Errors: ERR_LIMIT when
 * the work budget runs out, -ENOMEM. */
static int classify(struct diff *d, uint32_t f, uint32_t i, uint32_t *out)
{
    const struct side *s = &d->s[f];
    uint64_t h = hash_line(line_ptr(s, i), line_len(s, i));
    uint32_t slot = (uint32_t)h & d->table_mask;
    /* Linear probing in a table at most half full: ends at an empty slot
     * within table_mask + 1 probes. */
    for (uint32_t probes = 0; probes <= d->table_mask; probes++) {
        uint32_t c = d->table[slot];
        if (c == 0) {
            if (d->cls_n == d->cls_cap) {
                /* Grown by doubling: memory follows the distinct lines,
                 * at most one per line. */
                uint32_t cap = d->cls_cap * 2;
                struct cls *n = mem_realloc(d->cls, cap * sizeof(*n));
                if (n == NULL) {
                    return -ENOMEM;
                }
                d->cls = n;
                d->cls_cap = cap;
            }
            struct cls *k = &d->cls[d->cls_n];
            k->hash = h;
            k->side = f;
            k->line = i;
            k->count[0] = k->count[1] = 0;
            d->table[slot] = ++d->cls_n;
            *out = d->cls_n - 1;
            return 0;
        }
        struct cls *k = &d->cls[c - 1];
        if (k->hash == h && lines_equal(&d->s[k->side], k->line, s, i)) {
            *out = c - 1;
            return 0;
        }
        if (++d->cost > d->cost_max) {
            return ERR_LIMIT;
        }
        slot = (slot + 1) & d->table_mask;
    }
    return ERR_LIMIT;
}

static int classify_all(struct diff *d)
{
    size_t total = (size_t)(d->s[0].hi - d->s[0].lo) + d->s[1].hi - d->s[1].lo;
    size_t size = 2;
    while (size < 2 * total) {
        size <<= 1;
    }
    d->table = mem_calloc(size, sizeof(uint32_t));
    d->cls_cap = 256;
    d->cls = mem_alloc(d->cls_cap * sizeof(struct cls));
    if (d->table == NULL || d->cls == NULL) {
        return -ENOMEM;
    }
    d->table_mask = (uint32_t)(size - 1);
    for (uint32_t f = 0; f < 2; f++) {
        struct side *s = &d->s[f];
        for (uint32_t i = s->lo; i < s->hi; i++) {
            int rc = classify(d, f, i, &s->eq[i]);
            if (rc != 0) {
                return rc;
            }
            d->cls[s->eq[i]].count[f]++;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ 4. discard */

static void discard_unmatched(struct diff *d)
{
    for (uint32_t f = 0; f < 2; f++) {
        struct side *s = &d->s[f];
        s->seq_n = 0;
        for (uint32_t i = s->lo; i < s->hi; i++) {
            if (d->cls[s->eq[i]].count[1 - f] == 0) {
                s->changed[i] = 1;
            } else {
                s->seq[s->seq_n] = s->eq[i];
                s->map[s->seq_n++] = i;
            }
        }
    }
}

/* --------------------------------------------------------------- 5. Myers */

/* Mark seq entries [xlo, xhi) of side 0 and [ylo, yhi) of side 1 changed. */
static void mark(struct diff *d, int32_t xlo, int32_t xhi, int32_t ylo,
                 int32_t yhi)
{
    for (int32_t x = xlo; x < xhi; x++) {
        d->s[0].changed[d->s[0].map[x]] = 1;
    }
    for (int32_t y = ylo; y < yhi; y++) {
        d->s[1].changed[d->s[1].map[y]] = 1;
    }
}

/* Edit steps searched from each end of a box before settling for the
 * furthest point reached as its split, which keeps one search at about
 * ROUNDS_MAX^2 work. GNU diff uses the same bound (its too_expensive is
 * 4096 for inputs under 16 Mi lines): below it both find shortest
 * scripts the same way, above it both give a longer but correct one. */
#define ROUNDS_MAX 4096

/* The furthest point of the searches so far (forward diagonals of
 * parity fmin, backward of parity bmin): the one with the larger share
 * of the box behind it. Used when the searches take too long to meet. */
static void furthest(const struct diff *d, const int32_t b[4], int32_t fmin,
                     int32_t fmax, int32_t bmin, int32_t bmax, int32_t *xm,
                     int32_t *ym)
{
    const int32_t *fd = d->fd + d->voff;
    const int32_t *bd = d->bd + d->voff;
    const int32_t xoff = b[0], xlim = b[1], yoff = b[2], ylim = b[3];
    int64_t fbest = -1, bbest = INT64_MAX;
    int32_t fx = xoff, fy = yoff, bx = xlim, by = ylim;
    for (int32_t k = fmax; k >= fmin; k -= 2) {
        int32_t x = fd[k] < xlim ? fd[k] : xlim;
        int32_t y = x - k;
        if (y > ylim) {
            x = ylim + k;
            y = ylim;
        }
        if ((int64_t)x + y > fbest) {
            fbest = (int64_t)x + y;
            fx = x;
            fy = y;
        }
    }
    for (int32_t k = bmax; k >= bmin; k -= 2) {
        int32_t x = bd[k] > xoff ? bd[k] : xoff;
        int32_t y = x - k;
        if (y < yoff) {
            x = yoff + k;
            y = yoff;
        }
        if ((int64_t)x + y < bbest) {
            bbest = (int64_t)x + y;
            bx = x;
            by = y;
        }
    }
    if (fbest - (xoff + yoff) >= ((int64_t)xlim + ylim) - bbest) {
        *xm = fx;
        *ym = fy;
    } else {
        *xm = bx;
        *ym = by;
    }
}

/* The middle snake of the box [xoff, xlim) x [yoff, ylim), whose corners
 * differ (the caller stripped equal lines at both ends): a point (*xm,
 * *ym) on a shortest path through it, or after ROUNDS_MAX steps the
 * furthest point reached. Diagonal k = x - y. Errors: ERR_LIMIT when the
 * work budget runs out first. */
static int middle(struct diff *d, int32_t xoff, int32_t xlim, int32_t yoff,
                  int32_t ylim, int32_t *xm, int32_t *ym)
{
    const uint32_t *xv = d->s[0].seq;
    const uint32_t *yv = d->s[1].seq;
    int32_t *fd = d->fd + d->voff;
    int32_t *bd = d->bd + d->voff;
    const int32_t dmin = xoff - ylim, dmax = xlim - yoff;
    const int32_t fmid = xoff - yoff, bmid = xlim - ylim;
    int32_t fmin = fmid, fmax = fmid, bmin = bmid, bmax = bmid;
    const bool odd = ((fmid - bmid) & 1) != 0;
    fd[fmid] = xoff;
    bd[bmid] = xlim;
    /* A path has at most (xlim - xoff) + (ylim - yoff) edits and each
     * pass adds one from each end: the searches meet within that many. */
    for (int64_t c = 1; c <= (int64_t)(xlim - xoff) + (ylim - yoff); c++) {
        unsigned long long work = 2;
        if (fmin > dmin) {
            fd[--fmin - 1] = -1;
        } else {
            ++fmin;
        }
        if (fmax < dmax) {
            fd[++fmax + 1] = -1;
        } else {
            --fmax;
        }
        for (int32_t k = fmax; k >= fmin; k -= 2) {
            int32_t tlo = fd[k - 1], thi = fd[k + 1];
            int32_t x = tlo >= thi ? tlo + 1 : thi;
            int32_t y = x - k;
            int32_t x0 = x;
            while (x < xlim && y < ylim && xv[x] == yv[y]) {
                x++;
                y++;
            }
            work += 1 + (unsigned)(x - x0);
            fd[k] = x;
            if (odd && bmin <= k && k <= bmax && bd[k] <= x) {
                *xm = x;
                *ym = y;
                return 0;
            }
        }
        if (bmin > dmin) {
            bd[--bmin - 1] = INT32_MAX;
        } else {
            ++bmin;
        }
        if (bmax < dmax) {
            bd[++bmax + 1] = INT32_MAX;
        } else {
            --bmax;
        }
        for (int32_t k = bmax; k >= bmin; k -= 2) {
            int32_t tlo = bd[k - 1], thi = bd[k + 1];
            int32_t x = tlo < thi ? tlo : thi - 1;
            int32_t y = x - k;
            int32_t x0 = x;
            while (x > xoff && y > yoff && xv[x - 1] == yv[y - 1]) {
                x--;
                y--;
            }
            work += 1 + (unsigned)(x0 - x);
            bd[k] = x;
            if (!odd && fmin <= k && k <= fmax && x <= fd[k]) {
                *xm = x;
                *ym = y;
                return 0;
            }
        }
        d->cost += work;
        if (d->cost > d->cost_max) {
            return ERR_LIMIT;
        }
        if (c >= ROUNDS_MAX) {
            const int32_t box[4] = {xoff, xlim, yoff, ylim};
            furthest(d, box, fmin, fmax, bmin, bmax, xm, ym);
            d->settled++;
            return 0;
        }
    }
    return ERR_LIMIT; /* not reached: the searches always meet */
}

struct box {
    int32_t xoff, xlim, yoff, ylim;
};

#define STACK_MAX 128

/* Compare seq of both sides (GNU's compareseq, without recursion). */
static void compare(struct diff *d)
{
    const uint32_t *xv = d->s[0].seq;
    const uint32_t *yv = d->s[1].seq;
    struct box stack[STACK_MAX];
    size_t top = 0;
    stack[top++] =
        (struct box){0, (int32_t)d->s[0].seq_n, 0, (int32_t)d->s[1].seq_n};
    /* Each box popped either ends or splits into two smaller ones. */
    while (top > 0) {
        struct box b = stack[--top];
        while (b.xoff < b.xlim && b.yoff < b.ylim && xv[b.xoff] == yv[b.yoff]) {
            b.xoff++;
            b.yoff++;
        }
        while (b.xoff < b.xlim && b.yoff < b.ylim &&
               xv[b.xlim - 1] == yv[b.ylim - 1]) {
            b.xlim--;
            b.ylim--;
        }
        if (b.xoff == b.xlim || b.yoff == b.ylim) {
            mark(d, b.xoff, b.xlim, b.yoff, b.ylim);
            continue;
        }
        int32_t xm = 0, ym = 0;
        int rc = d->cost > d->cost_max
                     ? ERR_LIMIT
                     : middle(d, b.xoff, b.xlim, b.yoff, b.ylim, &xm, &ym);
        /* A split must make both boxes smaller than this one; anything
         * else (out of budget, or a bug) shows the box as all changed. */
        bool inside = xm >= b.xoff && xm <= b.xlim && ym >= b.yoff &&
                      ym <= b.ylim && (xm - b.xoff) + (ym - b.yoff) > 0 &&
                      (b.xlim - xm) + (b.ylim - ym) > 0;
        if (rc != 0 || !inside || top + 2 > STACK_MAX) {
            DASSERT(rc != 0 || inside);
            d->coarse++;
            mark(d, b.xoff, b.xlim, b.yoff, b.ylim);
            continue;
        }
        stack[top++] = (struct box){xm, b.xlim, ym, b.ylim};
        stack[top++] = (struct box){b.xoff, xm, b.yoff, ym};
    }
}

/* ---------------------------------------------------------------- 6. shift */

/* Slide the runs of changes of side f within its region (GNU's
 * shift_boundaries). ch and och are the changed flags of this side and
 * the other, from their regions' first lines; both have a 0 before and
 * after the region. j tracks the line of the other side that pairs with
 * line i of this one (unchanged lines pair in order). */
static void shift(struct diff *d, uint32_t f)
{
    struct side *s = &d->s[f];
    struct side *o = &d->s[1 - f];
    uint8_t *ch = s->changed + s->lo;
    const uint8_t *och = o->changed + o->lo;
    const uint32_t *eq = s->eq + s->lo;
    const int64_t n = (int64_t)s->hi - s->lo;
    int64_t i = 0, j = 0;
    for (;;) {
        while (i < n && !ch[i]) {
            while (och[j]) {
                j++;
            }
            i++;
            j++;
        }
        if (i == n) {
            break;
        }
        int64_t start = i, runlength, corresponding;
        while (ch[++i]) {
        }
        while (och[j]) {
            j++;
        }
        do {
            runlength = i - start;
            /* Up, while the line above equals the run's last line. */
            while (start > 0 && eq[start - 1] == eq[i - 1]) {
                ch[--start] = 1;
                ch[--i] = 0;
                while (ch[start - 1]) {
                    start--;
                }
                while (och[--j]) {
                }
            }
            /* The last end of the run that meets a change of the other
             * side; n when there is none. */
            corresponding = och[j - 1] ? i : n;
            /* Down, while the run's first line equals the line below. */
            while (i != n && eq[start] == eq[i]) {
                ch[start++] = 0;
                ch[i++] = 1;
                while (ch[i]) {
                    i++;
                }
                while (och[++j]) {
                    corresponding = i;
                }
            }
        } while (runlength != i - start);
        while (corresponding < i) {
            ch[--start] = 1;
            ch[--i] = 0;
            while (och[--j]) {
            }
        }
    }
}

/* ---------------------------------------------------------------- 7. print */

static int put(struct buf *out, const char *p, size_t n)
{
    return buf_append(out, p, n);
}

static int put_line(struct buf *out, char mark_char, const struct side *s,
                    uint32_t i)
{
    static const char nonl[] = "\n\\ No newline at end of file\n";
    uint32_t n = line_len(s, i);
    const char *p = line_ptr(s, i);
    int rc = buf_append_u8(out, (uint8_t)mark_char);
    if (rc == 0) {
        rc = put(out, p, n);
    }
    if (rc == 0 && (n == 0 || p[n - 1] != '\n')) {
        rc = put(out, nonl, sizeof(nonl) - 1);
    }
    return rc;
}

/* "l,s" as GNU prints a range of count lines after line first (0-based):
 * "l" alone for one line, "l-1,0" (the line before) for none. */
static int put_range(struct buf *out, uint32_t first, uint32_t count)
{
    char t[32];
    int n;
    if (count == 0) {
        n = snprintf(t, sizeof(t), "%u,0", first);
    } else if (count == 1) {
        n = snprintf(t, sizeof(t), "%u", first + 1);
    } else {
        n = snprintf(t, sizeof(t), "%u,%u", first + 1, count);
    }
    return put(out, t, (size_t)n);
}

/* The next change at or after (*i, *j): [*i, *ie) deleted, [*j, *je)
 * inserted. False when none is left. */
static bool next_change(const struct diff *d, uint32_t *i, uint32_t *j,
                        uint32_t *ie, uint32_t *je)
{
    const struct side *a = &d->s[0], *b = &d->s[1];
    while (*i < a->n && *j < b->n && !a->changed[*i] && !b->changed[*j]) {
        (*i)++;
        (*j)++;
    }
    if (*i == a->n && *j == b->n) {
        return false;
    }
    *ie = *i;
    *je = *j;
    while (a->changed[*ie]) {
        (*ie)++;
    }
    while (b->changed[*je]) {
        (*je)++;
    }
    /* Unchanged lines pair up: a change is never empty on both sides. */
    ASSERT(*ie > *i || *je > *j);
    return true;
}

static int put_hunk(struct buf *out, const struct diff *d, uint32_t a0,
                    uint32_t a1, uint32_t b0, uint32_t b1)
{
    const struct side *a = &d->s[0], *b = &d->s[1];
    int rc = put(out, "@@ -", 4);
    rc = rc != 0 ? rc : put_range(out, a0, a1 - a0);
    rc = rc != 0 ? rc : put(out, " +", 2);
    rc = rc != 0 ? rc : put_range(out, b0, b1 - b0);
    rc = rc != 0 ? rc : put(out, " @@\n", 4);
    uint32_t i = a0, j = b0;
    while (rc == 0 && (i < a1 || j < b1)) {
        if ((i < a1 && a->changed[i]) || (j < b1 && b->changed[j])) {
            for (; rc == 0 && i < a1 && a->changed[i]; i++) {
                rc = put_line(out, '-', a, i);
            }
            for (; rc == 0 && j < b1 && b->changed[j]; j++) {
                rc = put_line(out, '+', b, j);
            }
            continue;
        }
        ASSERT(i < a1 && j < b1);
        rc = put_line(out, ' ', a, i);
        i++;
        j++;
    }
    return rc;
}

static int print(struct diff *d, struct buf *out, const char *label_a,
                 const char *label_b)
{
    const uint32_t ctx = CFG_DIFF_CONTEXT;
    const struct side *a = &d->s[0], *b = &d->s[1];
    uint32_t i = 0, j = 0, ie, je;
    int rc = 0;
    bool more = next_change(d, &i, &j, &ie, &je);
    if (!more) {
        return 0;
    }
    rc = put(out, "--- ", 4);
    rc = rc != 0 ? rc : put(out, label_a, strlen(label_a));
    rc = rc != 0 ? rc : put(out, "\n+++ ", 5);
    rc = rc != 0 ? rc : put(out, label_b, strlen(label_b));
    rc = rc != 0 ? rc : put(out, "\n", 1);
    /* Each pass prints one hunk and consumes at least one change. */
    while (rc == 0 && more) {
        uint32_t lead = i < ctx ? i : ctx;
        uint32_t a0 = i - lead, b0 = j - lead;
        uint32_t end_a = ie, end_b = je;
        i = ie;
        j = je;
        for (;;) {
            more = next_change(d, &i, &j, &ie, &je);
            if (!more || i - end_a >= 2 * ctx + 1) {
                break;
            }
            end_a = ie;
            end_b = je;
            i = ie;
            j = je;
        }
        uint32_t trail = a->n - end_a < ctx ? a->n - end_a : ctx;
        ASSERT(b->n - end_b >= trail);
        rc = put_hunk(out, d, a0, end_a + trail, b0, end_b + trail);
    }
    return rc;
}

/* ------------------------------------------------------------------ entry */

/* Steps 2 to 6; errors only -ENOMEM. */
static int analyze(struct diff *d)
{
    struct side *a = &d->s[0], *b = &d->s[1];
    const uint32_t h = CFG_DIFF_CONTEXT;
    uint32_t p = 0, s = 0;
    while (p < a->n && p < b->n && lines_equal(a, p, b, p)) {
        p++;
    }
    while (s < a->n - p && s < b->n - p &&
           lines_equal(a, a->n - 1 - s, b, b->n - 1 - s)) {
        s++;
    }
    if (p == a->n && p == b->n) {
        return 0;
    }
    a->lo = b->lo = p - (p < h ? p : h);
    a->hi = a->n - s + (s < h ? s : h);
    b->hi = b->n - s + (s < h ? s : h);
    int rc = classify_all(d);
    if (rc == ERR_LIMIT) {
        /* Too costly to even number the lines: all of the middle. */
        memset(a->changed + p, 1, a->n - s - p);
        memset(b->changed + p, 1, b->n - s - p);
        d->coarse++;
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    discard_unmatched(d);
    size_t diags = (size_t)a->seq_n + b->seq_n + 3;
    d->fd = mem_alloc(diags * sizeof(int32_t));
    d->bd = mem_alloc(diags * sizeof(int32_t));
    if (d->fd == NULL || d->bd == NULL) {
        return -ENOMEM;
    }
    d->voff = (int64_t)b->seq_n + 1;
    compare(d);
    shift(d, 0);
    shift(d, 1);
    return 0;
}

int cfg__diff_cost(const char *a, size_t alen, const char *b, size_t blen,
                   const char *label_a, const char *label_b, struct buf *out,
                   unsigned long long cost_max, struct cfg__diff_stats *st)
{
    struct diff d;
    size_t len0 = out->len;
    if (alen > CFG_CONTENT_MAX || blen > CFG_CONTENT_MAX) {
        return ERR_LIMIT;
    }
    memset(&d, 0, sizeof(d));
    d.cost_max = cost_max;
    int rc = split_lines(&d.s[0], alen > 0 ? a : "", alen);
    if (rc == 0) {
        rc = split_lines(&d.s[1], blen > 0 ? b : "", blen);
    }
    if (rc == 0) {
        rc = analyze(&d);
    }
    if (rc == 0) {
        rc = print(&d, out, label_a, label_b);
    }
    side_free(&d.s[0]);
    side_free(&d.s[1]);
    mem_free(d.table);
    mem_free(d.cls);
    mem_free(d.fd);
    mem_free(d.bd);
    if (rc != 0) {
        out->len = len0;
    }
    if (st != NULL) {
        st->coarse = d.coarse;
        st->settled = d.settled;
        st->cost = d.cost;
    }
    return rc;
}

int cfg_diff(const char *a, size_t alen, const char *b, size_t blen,
             const char *label_a, const char *label_b, struct buf *out)
{
    return cfg__diff_cost(a, alen, b, blen, label_a, label_b, out,
                          CFG_DIFF_COST_MAX, NULL);
}

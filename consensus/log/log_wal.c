/*
 * log_wal.c - the segmented write-ahead log (formats and recovery rules in
 * log.h).
 *
 * Happy path: log_append encodes one frame (the batch) into a reusable
 * buffer, picks the segment (cutting a new one when the frame does not fit
 * or when a conflicting append reaches below the active segment), writes it
 * with one pwrite at the end of the log and makes it durable with one
 * fdatasync. Only then does the in-memory index change. Segments are
 * preallocated so that the fdatasync normally has no file size to commit.
 *
 * Failures: validation and -ENOMEM are detected before any byte is written
 * and leave the log untouched. Any failed write/sync/rename puts the handle
 * in a failed state (STYLE.md section 5); nothing is retried.
 *
 * Open replays the segments into the same in-memory index the append path
 * maintains, so the two cannot disagree about what a record means.
 */
#include "consensus/log/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/runs.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"
#include "consensus/log/log_int.h"

#define SEG_MAGIC         "CAIRNWAL"
#define SEG_VERSION       1u
#define SEG_FLAG_RESET    1u
#define SEG_HDR           64u
#define FRM_MAGIC         0x314D5246u
#define FRM_HDR           32u
#define REC_HEAD          8u
#define REC_ENTRY_BODY    24u /* type..term, before the data */
#define REC_HS_BODY       32u
#define REC_ENTRY         1u
#define REC_HS            2u
/* The reader's bound on a frame body, independent of the options so a log
 * written with larger settings still opens: the hard maximum entry plus
 * room for a full batch around it. */
#define FRM_BODY_HARD_MAX ((uint64_t)160 << 20)
#define RD_CHUNK          ((size_t)1 << 20)
#define NAME_LEN          LOG_NAME_MAX

STATIC_ASSERT(LOG_SEGMENT_BYTES_MAX + FRM_BODY_HARD_MAX < UINT32_MAX,
              "record offsets are stored as u32");

struct seg {
    uint64_t seq;
    uint64_t first_index;
    uint64_t prev_term;
    uint64_t salt;
    uint32_t flags;
};

/* One retained entry: where its record lives in its segment. 8 bytes: the
 * segment and the term change rarely along the log, so they are kept as
 * runs (base/runs.h), not per entry; a member holds every entry since the
 * oldest segment it keeps, hundreds of thousands between snapshots. */
struct ix {
    uint32_t off; /* record offset in the segment */
    uint32_t len; /* record len field (body bytes, unpadded) */
};
STATIC_ASSERT(sizeof(struct ix) == 8, "an entry's place in 8 bytes");

struct log {
    const struct log_vfs *vfs; /* borrowed (options) or the POSIX table */
    int dirfd;
    struct log_options o;
    struct seg *segs; /* live segments, seq consecutive */
    size_t segs_n;
    size_t segs_cap;
    int active_fd;
    uint64_t active_size;      /* end of the last whole frame */
    uint64_t active_frame_seq; /* seq of that frame */
    int read_fd;               /* cached fd of an older segment */
    uint64_t read_seq;
    struct ix *ix;     /* entries first.. at ix[ix_start..ix_start+ix_n) */
    struct runs terms; /* each entry's term */
    struct runs seqs;  /* each entry's segment */
    struct runs types; /* each entry's Raft type (log_entry_meta) */
    size_t ix_start;
    size_t ix_n;
    size_t ix_cap;
    uint64_t first;
    uint64_t prev_term; /* term of first - 1 */
    struct log_hard_state hs;
    struct buf wbuf; /* frame being encoded */
    int failed;
};

/* ------------------------------------------------------------ in memory */

static uint64_t last_index(const struct log *l)
{
    return l->first + l->ix_n - 1;
}

static struct ix *ix_at(const struct log *l, uint64_t i)
{
    ASSERT(i >= l->first);
    ASSERT(i <= last_index(l));
    return &l->ix[l->ix_start + (size_t)(i - l->first)];
}

static uint64_t term_at(const struct log *l, uint64_t i)
{
    ASSERT(i + 1 >= l->first);
    return i + 1 == l->first ? l->prev_term : runs_at(&l->terms, i);
}

static uint64_t seq_at(const struct log *l, uint64_t i)
{
    (void)ix_at(l, i); /* asserts i is held */
    return runs_at(&l->seqs, i);
}

/* Make room so that the log can hold entries up to index upto. */
static int ix_reserve(struct log *l, uint64_t upto)
{
    size_t need;
    size_t cap;
    struct ix *p;
    if (upto < l->first || upto - l->first + 1 <= l->ix_n) {
        return 0;
    }
    if (upto - l->first + 1 > l->o.entries_max) {
        return ERR_LIMIT;
    }
    need = (size_t)(upto - l->first + 1);
    if (l->ix_start + need <= l->ix_cap) {
        return 0;
    }
    if (need <= l->ix_cap && l->ix_start > 0) {
        memmove(l->ix, l->ix + l->ix_start, l->ix_n * sizeof(*l->ix));
        l->ix_start = 0;
        return 0;
    }
    cap = l->ix_cap < 1024 ? 1024 : l->ix_cap;
    while (cap < need) {
        cap *= 2;
    }
    p = mem_alloc(cap * sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    if (l->ix_n > 0) {
        memcpy(p, l->ix + l->ix_start, l->ix_n * sizeof(*p));
    }
    mem_free(l->ix);
    l->ix = p;
    l->ix_cap = cap;
    l->ix_start = 0;
    return 0;
}

static void ix_truncate(struct log *l, uint64_t last_keep)
{
    ASSERT(last_keep + 1 >= l->first);
    if (last_keep < last_index(l)) {
        l->ix_n = (size_t)(last_keep + 1 - l->first);
        runs_truncate(&l->terms, last_keep);
        runs_truncate(&l->seqs, last_keep);
        runs_truncate(&l->types, last_keep);
    }
}

static void ix_reset(struct log *l, uint64_t index, uint64_t term)
{
    l->ix_start = 0;
    l->ix_n = 0;
    l->terms.n = 0;
    l->seqs.n = 0;
    l->types.n = 0;
    l->first = index + 1;
    l->prev_term = term;
}

static void ix_drop_front(struct log *l, uint64_t new_first)
{
    uint64_t drop;
    if (new_first <= l->first) {
        return;
    }
    ASSERT(new_first <= last_index(l) + 1);
    l->prev_term = term_at(l, new_first - 1);
    drop = new_first - l->first;
    l->ix_start += (size_t)drop;
    l->ix_n -= (size_t)drop;
    l->first = new_first;
    if (l->ix_n == 0) {
        l->terms.n = 0;
        l->seqs.n = 0;
        l->types.n = 0;
    } else {
        runs_drop_front(&l->terms, new_first);
        runs_drop_front(&l->seqs, new_first);
        runs_drop_front(&l->types, new_first);
    }
}

/* Push entry i (== last + 1, after truncation) with its location. */
static void ix_push(struct log *l, uint64_t i, uint64_t term, uint8_t type,
                    uint64_t seq, uint64_t off, uint32_t len)
{
    struct ix *x;
    ASSERT(i == last_index(l) + 1);
    ASSERT(l->ix_start + l->ix_n < l->ix_cap);
    x = &l->ix[l->ix_start + l->ix_n];
    x->off = (uint32_t)off;
    x->len = len;
    runs_push(&l->terms, i, term);
    runs_push(&l->seqs, i, seq);
    runs_push(&l->types, i, type);
    l->ix_n++;
}

/* ------------------------------------------------------------- encoding */

static void seg_name(char *out, uint64_t seq, uint64_t first, int tmp)
{
    snprintf(out, NAME_LEN, "%016" PRIx64 "-%016" PRIx64 ".wal%s", seq, first,
             tmp ? ".tmp" : "");
}

static void seg_hdr_encode(uint8_t *p, const struct seg *s)
{
    memset(p, 0, SEG_HDR);
    memcpy(p, SEG_MAGIC, 8);
    le32_put(p + 8, SEG_VERSION);
    le32_put(p + 12, s->flags);
    le64_put(p + 16, s->seq);
    le64_put(p + 24, s->first_index);
    le64_put(p + 32, s->prev_term);
    le64_put(p + 40, s->salt);
    le32_put(p + 60, crc32c(0, p, 60));
}

static uint32_t frm_hdr_crc(uint64_t salt, const uint8_t *h)
{
    uint8_t s[8];
    le64_put(s, salt);
    return crc32c(crc32c(0, s, 8), h, 28);
}

static void frm_hdr_encode(uint8_t *h, uint64_t salt, uint32_t body_len,
                           uint64_t seq, uint32_t count, uint32_t body_crc)
{
    le32_put(h, FRM_MAGIC);
    le32_put(h + 4, body_len);
    le64_put(h + 8, seq);
    le32_put(h + 16, count);
    le32_put(h + 20, body_crc);
    le32_put(h + 24, 0);
    le32_put(h + 28, frm_hdr_crc(salt, h));
}

static size_t pad8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

static size_t rec_size_entry(uint32_t len)
{
    return REC_HEAD + pad8(REC_ENTRY_BODY + (size_t)len);
}

static uint32_t rec_crc(const uint8_t *rec, uint32_t len)
{
    return crc32c(crc32c(0, rec, 4), rec + REC_HEAD, len);
}

/* Encode a record at p (room for its padded size, zeroed by the caller). */
static void rec_put_entry(uint8_t *p, const struct log_entry *e)
{
    uint32_t len = REC_ENTRY_BODY + e->len;
    le32_put(p, len);
    p[8] = REC_ENTRY;
    p[9] = e->type;
    le64_put(p + 16, e->index);
    le64_put(p + 24, e->term);
    if (e->len > 0) {
        memcpy(p + 32, e->data, e->len);
    }
    le32_put(p + 4, rec_crc(p, len));
}

static void rec_put_hs(uint8_t *p, const struct log_hard_state *hs)
{
    le32_put(p, REC_HS_BODY);
    p[8] = REC_HS;
    le64_put(p + 16, hs->term);
    le64_put(p + 24, hs->vote);
    le64_put(p + 32, hs->commit);
    le32_put(p + 4, rec_crc(p, REC_HS_BODY));
}

/* ------------------------------------------------------------- failures */

static int fail(struct log *l, int rc)
{
    ASSERT(rc < 0);
    /* Not logged here: the node decides (it stops) and logs. */
    if (l->failed == 0) {
        l->failed = rc;
    }
    return l->failed;
}

/* ------------------------------------------------------------- segments */

static int prealloc(const struct log *l, int fd, uint64_t bytes)
{
    return l->vfs->allocate(l->vfs->ctx, fd, bytes);
}

static int segs_reserve(struct log *l, size_t extra)
{
    struct seg *p;
    size_t cap;
    if (l->segs_n + extra <= l->segs_cap) {
        return 0;
    }
    cap = l->segs_cap < 8 ? 8 : l->segs_cap * 2;
    while (cap < l->segs_n + extra) {
        cap *= 2;
    }
    p = mem_realloc(l->segs, cap * sizeof(*p));
    if (p == NULL) {
        return -ENOMEM;
    }
    l->segs = p;
    l->segs_cap = cap;
    return 0;
}

static void close_read_fd(struct log *l)
{
    if (l->read_fd >= 0) {
        l->vfs->close(l->vfs->ctx, l->read_fd);
        l->read_fd = -1;
    }
}

/* Build, sync and rename a new segment starting at first_index, then make
 * it active. Caller reserved a slot in segs. I/O errors are returned raw;
 * the caller fails the log. */
static int seg_create(struct log *l, uint64_t first_index, uint64_t prev_term,
                      uint32_t flags)
{
    const struct log_vfs *v = l->vfs;
    uint8_t b[SEG_HDR + FRM_HDR + REC_HEAD + REC_HS_BODY];
    char tmp[NAME_LEN], name[NAME_LEN];
    struct seg s;
    int fd;
    int rc;

    ASSERT(l->segs_n < l->segs_cap);
    memset(&s, 0, sizeof(s));
    s.seq = l->segs_n > 0 ? l->segs[l->segs_n - 1].seq + 1 : 1;
    s.first_index = first_index;
    s.prev_term = prev_term;
    s.flags = flags;
    rc = v->random(v->ctx, &s.salt, sizeof(s.salt));
    if (rc < 0) {
        return rc;
    }
    seg_name(tmp, s.seq, first_index, 1);
    seg_name(name, s.seq, first_index, 0);
    (void)v->unlink(v->ctx, l->dirfd, tmp);
    rc = v->open(v->ctx, l->dirfd, tmp, LOG_VFS_RDWR | LOG_VFS_CREATE, &fd);
    if (rc < 0) {
        return rc;
    }
    memset(b, 0, sizeof(b));
    seg_hdr_encode(b, &s);
    rec_put_hs(b + SEG_HDR + FRM_HDR, &l->hs);
    frm_hdr_encode(b + SEG_HDR, s.salt, REC_HEAD + REC_HS_BODY, 1, 1,
                   crc32c(0, b + SEG_HDR + FRM_HDR, REC_HEAD + REC_HS_BODY));
    rc = prealloc(l, fd, l->o.segment_bytes);
    if (rc == 0) {
        rc = v->write(v->ctx, fd, b, sizeof(b), 0);
    }
    if (rc == 0) {
        rc = v->sync(v->ctx, fd);
    }
    if (rc == 0) {
        rc = v->rename(v->ctx, l->dirfd, tmp, name);
    }
    if (rc == 0) {
        rc = v->dir_sync(v->ctx, l->dirfd);
    }
    if (rc < 0) {
        v->close(v->ctx, fd);
        return rc;
    }
    if (l->active_fd >= 0) {
        v->close(v->ctx, l->active_fd);
    }
    l->active_fd = fd;
    l->active_size = sizeof(b);
    l->active_frame_seq = 1;
    l->segs[l->segs_n++] = s;
    if (flags & SEG_FLAG_RESET) {
        ix_reset(l, first_index - 1, prev_term);
    } else {
        ix_truncate(l, first_index - 1);
    }
    return 0;
}

/* Delete the oldest count segments (never the active one), oldest first,
 * with a directory fsync after each unlink (or, with a discard option, each
 * rename to NAME.del, which takes microseconds where the unlink of a
 * written segment takes tens of milliseconds; discard unlinks it on
 * another thread): without it a crash may keep any
 * subset of the unlinks (POSIX orders nothing before the fsync), leaving a
 * hole in the seq numbers that replay must refuse as corruption. With it a
 * crash leaves a suffix of the segments, which replay accepts (see
 * seg_apply_header for the one odd suffix: a later segment that starts
 * below the first remaining one). */
static int segs_delete_front(struct log *l, size_t count)
{
    char name[NAME_LEN];
    ASSERT(count < l->segs_n);
    if (count == 0) {
        return 0;
    }
    if (l->read_fd >= 0 && l->read_seq < l->segs[count].seq) {
        close_read_fd(l);
    }
    for (size_t k = 0; k < count; k++) {
        int rc;
        char del[NAME_LEN + 8];
        seg_name(name, l->segs[0].seq, l->segs[0].first_index, 0);
        if (l->o.discard != NULL) {
            snprintf(del, sizeof(del), "%s.del", name);
            rc = l->vfs->rename(l->vfs->ctx, l->dirfd, name, del);
        } else {
            rc = l->vfs->unlink(l->vfs->ctx, l->dirfd, name);
        }
        if (rc < 0 && rc != -ENOENT) {
            return rc;
        }
        bool renamed = rc == 0 && l->o.discard != NULL;
        memmove(l->segs, l->segs + 1, (l->segs_n - 1) * sizeof(*l->segs));
        l->segs_n--;
        rc = l->vfs->dir_sync(l->vfs->ctx, l->dirfd);
        if (rc < 0) {
            return rc;
        }
        if (renamed) {
            l->o.discard(l->o.discard_arg, del);
        }
    }
    return 0;
}

/* ------------------------------------------------------------- reading */

/* A window over one segment file for the replay scan. */
struct rd {
    const struct log_vfs *vfs;
    int fd;
    uint64_t size;
    uint8_t *buf;
    size_t cap;
    uint64_t boff;
    size_t blen;
};

/* Borrow bytes [off, off + len) of the file. ERR_TRUNCATED past its end. */
static int rd_get(struct rd *r, uint64_t off, size_t len, const uint8_t **p)
{
    size_t want;
    int rc;
    if (off > r->size || len > r->size - off) {
        return ERR_TRUNCATED;
    }
    if (off >= r->boff && off + len <= r->boff + r->blen) {
        *p = r->buf + (off - r->boff);
        return 0;
    }
    if (len > r->cap) {
        /* At least a chunk, so that small frames are read many at once. */
        size_t cap = len > RD_CHUNK ? len : RD_CHUNK;
        uint8_t *nb;
        ASSERT(len <= FRM_BODY_HARD_MAX + FRM_HDR);
        nb = mem_alloc(cap);
        if (nb == NULL) {
            return -ENOMEM;
        }
        mem_free(r->buf);
        r->buf = nb;
        r->cap = cap;
        r->blen = 0;
    }
    want = r->cap;
    if (want > r->size - off) {
        want = (size_t)(r->size - off);
    }
    r->blen = 0;
    rc = log__read(r->vfs, r->fd, r->buf, want, off);
    if (rc < 0) {
        return rc;
    }
    r->boff = off;
    r->blen = want;
    *p = r->buf;
    return 0;
}

static int rd_zero_from(struct rd *r, uint64_t off, int *zero)
{
    *zero = 1;
    /* Each pass consumes up to one chunk of the file: bounded by size. */
    while (off < r->size) {
        size_t n =
            r->size - off < RD_CHUNK ? (size_t)(r->size - off) : RD_CHUNK;
        const uint8_t *p;
        int rc = rd_get(r, off, n, &p);
        if (rc < 0) {
            return rc;
        }
        if (!log__all_zero(p, n)) {
            *zero = 0;
            return 0;
        }
        off += n;
    }
    return 0;
}

/* A parsed frame: borrowed body bytes in the window. */
struct frm {
    const uint8_t *body;
    uint32_t body_len;
    uint32_t count;
    uint64_t seq;
};

/* 1 when a frame with a valid header and body checksum and seq >= min_seq
 * starts at off (records are checked by frm_records_ok), 0 when not (also
 * when the file ends inside it), < 0 on read errors. */
static int frm_parse(struct rd *r, const struct seg *s, uint64_t off,
                     uint64_t min_seq, struct frm *f)
{
    const uint8_t *h;
    uint64_t body_len;
    int rc = rd_get(r, off, FRM_HDR, &h);
    if (rc == ERR_TRUNCATED) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    if (le32_get(h) != FRM_MAGIC ||
        le32_get(h + 28) != frm_hdr_crc(s->salt, h)) {
        return 0;
    }
    body_len = le32_get(h + 4);
    f->seq = le64_get(h + 8);
    f->count = le32_get(h + 16);
    if (f->seq < min_seq || body_len > FRM_BODY_HARD_MAX || body_len % 8 != 0 ||
        f->count == 0 || f->count > body_len / (REC_HEAD + REC_ENTRY_BODY)) {
        return 0;
    }
    {
        uint32_t body_crc = le32_get(h + 20);
        rc = rd_get(r, off + FRM_HDR, (size_t)body_len, &f->body);
        if (rc == ERR_TRUNCATED) {
            return 0;
        }
        if (rc < 0) {
            return rc;
        }
        if (crc32c(0, f->body, (size_t)body_len) != body_crc) {
            return 0;
        }
    }
    f->body_len = (uint32_t)body_len;
    return 1;
}

/* Structural check of the records of a checksummed frame. */
static int frm_records_ok(const struct frm *f)
{
    size_t off = 0;
    for (uint32_t k = 0; k < f->count; k++) {
        const uint8_t *p = f->body + off;
        uint32_t len;
        size_t sz;
        if (f->body_len - off < REC_HEAD + REC_ENTRY_BODY) {
            return 0;
        }
        len = le32_get(p);
        if (len < REC_ENTRY_BODY || len > f->body_len - off - REC_HEAD) {
            return 0;
        }
        sz = REC_HEAD + pad8(len);
        if (sz > f->body_len - off || le32_get(p + 4) != rec_crc(p, len)) {
            return 0;
        }
        if (p[8] == REC_HS ? len != REC_HS_BODY : p[8] != REC_ENTRY) {
            return 0;
        }
        off += sz;
    }
    return off == f->body_len;
}

/* Apply a well-formed frame found at off to the in-memory view. */
static int frm_apply(struct log *l, const struct seg *s, uint64_t off,
                     const struct frm *f, const char *file, char *msg,
                     size_t msg_len)
{
    size_t ro = 0;
    uint64_t next = 0;
    for (uint32_t k = 0; k < f->count; k++) {
        const uint8_t *p = f->body + ro;
        uint32_t len = le32_get(p);
        uint64_t rec_off = off + FRM_HDR + ro;
        ro += REC_HEAD + pad8(len);
        if (p[8] == REC_HS) {
            l->hs.term = le64_get(p + 16);
            l->hs.vote = le64_get(p + 24);
            l->hs.commit = le64_get(p + 32);
            continue;
        }
        uint64_t i = le64_get(p + 16);
        uint64_t term = le64_get(p + 24);
        int bad =
            (next != 0 && i != next) || i < s->first_index || i < l->first ||
            i > last_index(l) + 1 ||
            len - REC_ENTRY_BODY > limits_hard_max(LIMIT_RAFT_ENTRY_BYTES);
        if (!bad && term < term_at(l, i - 1)) {
            bad = 1;
        }
        if (bad) {
            err_msg(msg, msg_len,
                    "wal: %s: offset %" PRIu64 ": entry %" PRIu64
                    " (term %" PRIu64 ") does not follow the log",
                    file, rec_off, i, term);
            return ERR_CORRUPT;
        }
        ix_truncate(l, i - 1);
        int rc = ix_reserve(l, i);
        if (rc == 0) {
            rc = runs_reserve(&l->terms, 1);
        }
        if (rc == 0) {
            rc = runs_reserve(&l->seqs, 1);
        }
        if (rc == 0) {
            rc = runs_reserve(&l->types, 1);
        }
        if (rc < 0) {
            err_msg(msg, msg_len, "wal: %s: entry %" PRIu64 ": %s", file, i,
                    err_str(rc));
            return rc;
        }
        ix_push(l, i, term, p[9], s->seq, rec_off, len);
        next = i + 1;
    }
    return 0;
}

/* --------------------------------------------------------------- replay */

static int seg_hdr_read(struct rd *r, const char *file, struct seg *s,
                        char *msg, size_t msg_len)
{
    const uint8_t *p;
    int rc = rd_get(r, 0, SEG_HDR, &p);
    if (rc == ERR_TRUNCATED) {
        err_msg(msg, msg_len, "wal: %s: shorter than a segment header", file);
        return ERR_CORRUPT;
    }
    if (rc < 0) {
        err_msg(msg, msg_len, "wal: %s: read: %s", file, err_str(rc));
        return rc;
    }
    if (memcmp(p, SEG_MAGIC, 8) != 0) {
        err_msg(msg, msg_len, "wal: %s: offset 0: bad magic", file);
        return ERR_BAD_MAGIC;
    }
    if (le32_get(p + 8) != SEG_VERSION) {
        err_msg(msg, msg_len, "wal: %s: version %u is not supported", file,
                le32_get(p + 8));
        return ERR_BAD_VERSION;
    }
    if (le32_get(p + 60) != crc32c(0, p, 60)) {
        err_msg(msg, msg_len, "wal: %s: offset 0: header checksum mismatch",
                file);
        return ERR_CORRUPT;
    }
    if (le64_get(p + 16) != s->seq || le64_get(p + 24) != s->first_index ||
        s->first_index == 0) {
        err_msg(msg, msg_len, "wal: %s: header does not match the name", file);
        return ERR_CORRUPT;
    }
    s->flags = le32_get(p + 12);
    s->prev_term = le64_get(p + 32);
    s->salt = le64_get(p + 40);
    return 0;
}

/* Where segment k starts in the log view (see log.h, Replay). */
static int seg_apply_header(struct log *l, size_t k, const char *file,
                            char *msg, size_t msg_len)
{
    const struct seg *s = &l->segs[k];
    /* A segment that starts below the first remaining one: a crash cut
     * segs_delete_front (log_reset or log_release) short. Such a segment
     * exists only after a conflicting append reached back below the older
     * segment's first index, so everything that older segment holds was
     * overwritten, and the part before it was being deleted: the view
     * restarts here, as a reset would. A complete log never has one: the
     * oldest segment always holds the current copy of the first entry. */
    if (k == 0 || (s->flags & SEG_FLAG_RESET) || s->first_index < l->first) {
        ix_reset(l, s->first_index - 1, s->prev_term);
        return 0;
    }
    if (s->first_index < l->first || s->first_index > last_index(l) + 1) {
        err_msg(msg, msg_len,
                "wal: %s: starts at index %" PRIu64
                " but the log before it ends at %" PRIu64
                " (missing or damaged data)",
                file, s->first_index, last_index(l));
        return ERR_CORRUPT;
    }
    if (term_at(l, s->first_index - 1) != s->prev_term) {
        err_msg(msg, msg_len,
                "wal: %s: previous term %" PRIu64 " does not match %" PRIu64,
                file, s->prev_term, term_at(l, s->first_index - 1));
        return ERR_CORRUPT;
    }
    ix_truncate(l, s->first_index - 1);
    return 0;
}

/* After the last good frame at off: normal end, torn tail or corruption
 * (the rules are in log.h). Repairs a torn tail of the last segment. */
static int seg_classify_end(struct rd *r, const struct seg *s, uint64_t off,
                            uint64_t seq, int is_last, const char *file,
                            char *msg, size_t msg_len)
{
    int zero;
    int rc;
    struct frm f;
    if (seq == 1) {
        err_msg(msg, msg_len,
                "wal: %s: offset %" PRIu64 ": first frame is damaged", file,
                off);
        return ERR_CORRUPT;
    }
    rc = rd_zero_from(r, off, &zero);
    if (rc < 0 || zero) {
        return rc;
    }
    if (!is_last) {
        err_msg(msg, msg_len,
                "wal: %s: offset %" PRIu64
                ": damaged frame in a segment that is not the last",
                file, off);
        return ERR_CORRUPT;
    }
    /* Bounded by the file size: one probe per 8 bytes. */
    for (uint64_t p = off + 8; p + FRM_HDR <= r->size; p += 8) {
        rc = frm_parse(r, s, p, seq, &f);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            err_msg(msg, msg_len,
                    "wal: %s: offset %" PRIu64
                    ": damaged frame followed by a valid frame at offset "
                    "%" PRIu64,
                    file, off, p);
            return ERR_CORRUPT;
        }
    }
    LOGW("wal",
         "%s: torn write at offset %" PRIu64 " (%" PRIu64
         " bytes); truncating to the last whole frame",
         file, off, r->size - off);
    rc = r->vfs->truncate(r->vfs->ctx, r->fd, off);
    if (rc == 0) {
        rc = r->vfs->sync(r->vfs->ctx, r->fd);
    }
    if (rc < 0) {
        err_msg(msg, msg_len, "wal: %s: truncate: %s", file, err_str(rc));
        return rc;
    }
    /* seg_scan preallocates the segment again. */
    r->size = off;
    r->blen = 0;
    return 0;
}

static int seg_scan(struct log *l, struct rd *r, size_t k, char *msg,
                    size_t msg_len)
{
    struct seg *s = &l->segs[k];
    int is_last = k + 1 == l->segs_n;
    char file[NAME_LEN];
    uint64_t off = SEG_HDR;
    uint64_t seq = 1;
    struct frm f;
    int rc;

    seg_name(file, s->seq, s->first_index, 0);
    rc = seg_hdr_read(r, file, s, msg, msg_len);
    if (rc == 0) {
        rc = seg_apply_header(l, k, file, msg, msg_len);
    }
    /* Each frame is at least FRM_HDR + one record long: bounded by size. */
    while (rc == 0) {
        rc = frm_parse(r, s, off, seq, &f);
        if (rc == 1 && (f.seq != seq || !frm_records_ok(&f))) {
            rc = 0;
        }
        if (rc <= 0) {
            break;
        }
        rc = frm_apply(l, s, off, &f, file, msg, msg_len);
        off += FRM_HDR + f.body_len;
        seq++;
    }
    if (rc < 0) {
        if (msg != NULL && msg[0] == '\0') {
            err_msg(msg, msg_len, "wal: %s: %s", file, err_str(rc));
        }
        return rc;
    }
    rc = seg_classify_end(r, s, off, seq, is_last, file, msg, msg_len);
    if (rc == 0 && is_last && r->size < l->o.segment_bytes) {
        /* A short last segment (copied, or cut by a repair): preallocate
         * it again so appends do not grow the file. */
        rc = prealloc(l, r->fd, l->o.segment_bytes);
        if (rc < 0) {
            err_msg(msg, msg_len, "wal: %s: fallocate: %s", file, err_str(rc));
        }
    }
    if (rc == 0 && is_last) {
        l->active_size = off;
        l->active_frame_seq = seq - 1;
    }
    return rc;
}

static int name_parse(const char *n, uint64_t *seq, uint64_t *first)
{
    char *end;
    if (strlen(n) != 37 || n[16] != '-' || strcmp(n + 33, ".wal") != 0 ||
        strspn(n, "0123456789abcdef") != 16 ||
        strspn(n + 17, "0123456789abcdef") != 16) {
        return 0;
    }
    *seq = strtoull(n, &end, 16);
    *first = strtoull(n + 17, &end, 16);
    return 1;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int segs_list_one(void *arg, const char *name)
{
    struct log *l = arg;
    size_t nl = strlen(name);
    uint64_t seq, first;
    int rc = 0;
    if (nl > 8 && (strcmp(name + nl - 8, ".wal.tmp") == 0 ||
                   strcmp(name + nl - 8, ".wal.del") == 0)) {
        rc = l->vfs->unlink(l->vfs->ctx, l->dirfd, name);
    } else if (name_parse(name, &seq, &first)) {
        rc = segs_reserve(l, 1);
        if (rc == 0) {
            memset(&l->segs[l->segs_n], 0, sizeof(*l->segs));
            l->segs[l->segs_n].seq = seq;
            l->segs[l->segs_n].first_index = first;
            l->segs_n++;
        }
    }
    return rc;
}

/* Find the *.wal files (and remove *.wal.tmp leftovers of a crashed cut,
 * *.wal.del ones of a release whose discard had not unlinked them yet). */
static int segs_list(struct log *l, char *msg, size_t msg_len)
{
    int rc = l->vfs->dir_list(l->vfs->ctx, l->dirfd, segs_list_one, l);
    if (rc < 0) {
        err_msg(msg, msg_len, "wal: listing segments: %s", err_str(rc));
        return rc;
    }
    if (l->segs_n > 1) {
        qsort(l->segs, l->segs_n, sizeof(*l->segs), seg_cmp);
    }
    for (size_t k = 1; k < l->segs_n; k++) {
        if (l->segs[k].seq != l->segs[k - 1].seq + 1) {
            err_msg(msg, msg_len,
                    "wal: segment %016" PRIx64 " is missing before %016" PRIx64,
                    l->segs[k - 1].seq + 1, l->segs[k].seq);
            return ERR_CORRUPT;
        }
    }
    return 0;
}

static int replay(struct log *l, char *msg, size_t msg_len)
{
    struct rd r;
    int rc = 0;
    memset(&r, 0, sizeof(r));
    r.vfs = l->vfs;
    for (size_t k = 0; rc == 0 && k < l->segs_n; k++) {
        int is_last = k + 1 == l->segs_n;
        char file[NAME_LEN];
        seg_name(file, l->segs[k].seq, l->segs[k].first_index, 0);
        rc = l->vfs->open(l->vfs->ctx, l->dirfd, file,
                          is_last ? LOG_VFS_RDWR : LOG_VFS_READ, &r.fd);
        if (rc < 0) {
            err_msg(msg, msg_len, "wal: %s: open: %s", file, err_str(rc));
            break;
        }
        rc = l->vfs->size(l->vfs->ctx, r.fd, &r.size);
        if (rc == 0) {
            r.boff = 0;
            r.blen = 0;
            rc = seg_scan(l, &r, k, msg, msg_len);
        }
        if (rc == 0 && is_last) {
            l->active_fd = r.fd;
        } else {
            l->vfs->close(l->vfs->ctx, r.fd);
        }
    }
    mem_free(r.buf);
    return rc;
}

/* ----------------------------------------------------------------- open */

static int options_norm(struct log_options *o, const struct log_options *in)
{
    uint64_t entry_hard = limits_hard_max(LIMIT_RAFT_ENTRY_BYTES);
    memset(o, 0, sizeof(*o));
    if (in != NULL) {
        *o = *in;
    }
    if (o->segment_bytes == 0) {
        o->segment_bytes = LOG_SEGMENT_BYTES_DEFAULT;
    }
    if (o->entry_bytes_max == 0) {
        o->entry_bytes_max = (uint32_t)limits_default(LIMIT_RAFT_ENTRY_BYTES);
    }
    if (o->frame_bytes_max == 0) {
        o->frame_bytes_max = LOG_FRAME_BYTES_DEFAULT;
    }
    if (o->entries_max == 0) {
        o->entries_max = LOG_ENTRIES_MAX_DEFAULT;
    }
    if (o->segment_bytes < LOG_SEGMENT_BYTES_MIN ||
        o->segment_bytes > LOG_SEGMENT_BYTES_MAX ||
        o->entry_bytes_max > entry_hard || o->entries_max > SIZE_MAX / 32 ||
        o->frame_bytes_max > FRM_BODY_HARD_MAX) {
        return ERR_INVALID;
    }
    /* A frame must hold the largest entry plus a hard state. */
    if (o->frame_bytes_max < o->entry_bytes_max + 256u) {
        o->frame_bytes_max = o->entry_bytes_max + 256u;
    }
    return 0;
}

int log_open(const char *wal_dir, const struct log_options *o, struct log **out,
             char *msg, size_t msg_len)
{
    struct log *l;
    int rc;

    ASSERT(wal_dir != NULL && out != NULL);
    err_msg(msg, msg_len, "%s", "");
    *out = NULL;
    l = mem_calloc(1, sizeof(*l));
    if (l == NULL) {
        return -ENOMEM;
    }
    l->dirfd = l->active_fd = l->read_fd = -1;
    rc = options_norm(&l->o, o);
    l->vfs = log__vfs(l->o.vfs);
    if (rc < 0) {
        err_msg(msg, msg_len, "wal: invalid options");
        mem_free(l);
        return rc;
    }
    buf_init(&l->wbuf, (size_t)l->o.frame_bytes_max + 1024);
    l->first = 1;
    rc = l->vfs->dir_open(l->vfs->ctx, wal_dir, true, &l->dirfd);
    if (rc < 0) {
        l->dirfd = -1;
    }
    if (rc == 0) {
        rc = l->vfs->dir_lock(l->vfs->ctx, l->dirfd);
    }
    if (rc < 0) {
        err_msg(msg, msg_len, "wal: %s: %s", wal_dir, err_str(rc));
    }
    if (rc == 0) {
        rc = segs_list(l, msg, msg_len);
    }
    if (rc == 0 && l->segs_n == 0) {
        rc = segs_reserve(l, 1);
        if (rc == 0) {
            rc = seg_create(l, 1, 0, SEG_FLAG_RESET);
        }
        if (rc < 0) {
            err_msg(msg, msg_len, "wal: %s: creating: %s", wal_dir,
                    err_str(rc));
        }
    } else if (rc == 0) {
        rc = replay(l, msg, msg_len);
    }
    if (rc < 0) {
        log_close(l);
        return rc;
    }
    ASSERT(l->active_fd >= 0);
    ASSERT(l->segs_n > 0);
    *out = l;
    return 0;
}

void log_close(struct log *l)
{
    if (l == NULL) {
        return;
    }
    close_read_fd(l);
    if (l->active_fd >= 0) {
        l->vfs->close(l->vfs->ctx, l->active_fd);
    }
    if (l->dirfd >= 0) {
        l->vfs->dir_close(l->vfs->ctx, l->dirfd); /* drops the lock */
    }
    buf_free(&l->wbuf);
    mem_free(l->ix);
    runs_free(&l->terms);
    runs_free(&l->seqs);
    runs_free(&l->types);
    mem_free(l->segs);
    mem_free(l);
}

/* --------------------------------------------------------------- append */

static int batch_check(const struct log *l, const struct log_entry *e, size_t n)
{
    if (n == 0) {
        return 0;
    }
    ASSERT(e != NULL);
    if (e[0].index == 0 || e[0].index > UINT64_MAX - n) {
        return ERR_INVALID;
    }
    if (e[0].index < l->first) {
        return ERR_COMPACTED;
    }
    if (e[0].index > last_index(l) + 1 ||
        e[0].term < term_at(l, e[0].index - 1)) {
        return ERR_INVALID;
    }
    for (size_t k = 0; k < n; k++) {
        if (e[k].len > l->o.entry_bytes_max) {
            return ERR_LIMIT;
        }
        if (e[k].index != e[0].index + k || (e[k].len > 0 && !e[k].data) ||
            (k > 0 && e[k].term < e[k - 1].term)) {
            return ERR_INVALID;
        }
    }
    return 0;
}

/* How many entries from e[k] go into the next frame, and its body size. */
static size_t frame_take(const struct log *l, const struct log_entry *e,
                         size_t k, size_t n, int with_hs, size_t *body)
{
    size_t m = k;
    size_t sz = 0;
    while (m < n) {
        size_t r = rec_size_entry(e[m].len);
        if (m > k && sz + r > l->o.frame_bytes_max) {
            break;
        }
        sz += r;
        m++;
    }
    if (m == n && with_hs) {
        sz += REC_HEAD + REC_HS_BODY;
    }
    *body = sz;
    return m;
}

/* Write one frame holding e[0..cnt) and hs (either may be empty), then
 * fdatasync and apply it to memory. The frame bytes are in l->wbuf. */
static int frame_write(struct log *l, const struct log_entry *e, size_t cnt,
                       const struct log_hard_state *hs, size_t body)
{
    const struct seg *s = &l->segs[l->segs_n - 1];
    uint8_t *b = l->wbuf.data;
    uint64_t off;
    size_t ro = FRM_HDR;
    int rc;

    if ((cnt > 0 && e[0].index < s->first_index) ||
        (l->active_size + FRM_HDR + body > l->o.segment_bytes &&
         l->active_frame_seq > 1)) {
        uint64_t fi = cnt > 0 ? e[0].index : last_index(l) + 1;
        rc = seg_create(l, fi, term_at(l, fi - 1), 0);
        if (rc < 0) {
            return rc;
        }
        s = &l->segs[l->segs_n - 1];
    }
    off = l->active_size;
    frm_hdr_encode(b, s->salt, (uint32_t)body, l->active_frame_seq + 1,
                   (uint32_t)(cnt + (hs != NULL)),
                   crc32c(0, b + FRM_HDR, body));
    rc = l->vfs->write(l->vfs->ctx, l->active_fd, b, FRM_HDR + body, off);
    if (rc == 0) {
        rc = l->vfs->sync(l->vfs->ctx, l->active_fd);
    }
    if (rc < 0) {
        return rc;
    }
    for (size_t k = 0; k < cnt; k++) {
        ix_truncate(l, e[k].index - 1);
        ix_push(l, e[k].index, e[k].term, e[k].type, s->seq, off + ro,
                REC_ENTRY_BODY + e[k].len);
        ro += rec_size_entry(e[k].len);
    }
    if (hs != NULL) {
        l->hs = *hs;
    }
    l->active_size = off + FRM_HDR + body;
    l->active_frame_seq++;
    return 0;
}

static void frame_encode(struct log *l, const struct log_entry *e, size_t cnt,
                         const struct log_hard_state *hs, size_t body)
{
    uint8_t *b = l->wbuf.data;
    size_t ro = FRM_HDR;
    ASSERT(l->wbuf.cap >= FRM_HDR + body);
    memset(b, 0, FRM_HDR + body); /* padding goes to disk: initialise it */
    for (size_t k = 0; k < cnt; k++) {
        rec_put_entry(b + ro, &e[k]);
        ro += rec_size_entry(e[k].len);
    }
    if (hs != NULL) {
        rec_put_hs(b + ro, hs);
        ro += REC_HEAD + REC_HS_BODY;
    }
    ASSERT(ro == FRM_HDR + body);
    l->wbuf.len = ro;
}

int log_append(struct log *l, const struct log_entry *e, size_t n,
               const struct log_hard_state *hs)
{
    size_t k = 0;
    int rc;
    ASSERT(l != NULL);
    if (l->failed) {
        return l->failed;
    }
    if (n == 0 && hs == NULL) {
        return 0;
    }
    rc = batch_check(l, e, n);
    if (rc == 0 && n > 0) {
        rc = ix_reserve(l, e[n - 1].index);
    }
    if (rc == 0 && n > 0) {
        rc = runs_reserve(&l->terms, n);
    }
    if (rc == 0 && n > 0) {
        rc = runs_reserve(&l->seqs, n);
    }
    if (rc == 0 && n > 0) {
        rc = runs_reserve(&l->types, n);
    }
    /* Reserve everything before the first byte is written, so -ENOMEM
     * leaves the log as it was: the largest frame, one segment per frame. */
    if (rc == 0) {
        size_t frames = 0, body_max = 0;
        do {
            size_t body;
            k = frame_take(l, e, k, n, hs != NULL, &body);
            body_max = body > body_max ? body : body_max;
            frames++;
        } while (k < n);
        k = 0;
        buf_reset(&l->wbuf);
        rc = buf_reserve(&l->wbuf, FRM_HDR + body_max);
        if (rc == 0) {
            rc = segs_reserve(l, frames);
        }
    }
    if (rc < 0) {
        return rc;
    }
    do {
        size_t body;
        size_t m = frame_take(l, e, k, n, hs != NULL, &body);
        const struct log_hard_state *fhs = m == n ? hs : NULL;
        frame_encode(l, e + k, m - k, fhs, body);
        rc = frame_write(l, e + k, m - k, fhs, body);
        if (rc < 0) {
            return fail(l, rc);
        }
        k = m;
    } while (k < n);
    ASSERT(n == 0 || last_index(l) == e[n - 1].index);
    return 0;
}

/* ------------------------------------------------------ reset / release */

int log_reset(struct log *l, uint64_t index, uint64_t term)
{
    int rc;
    ASSERT(l != NULL);
    if (l->failed) {
        return l->failed;
    }
    if (index == UINT64_MAX) {
        return ERR_INVALID;
    }
    rc = segs_reserve(l, 1);
    if (rc < 0) {
        return rc;
    }
    rc = seg_create(l, index + 1, term, SEG_FLAG_RESET);
    if (rc == 0) {
        rc = segs_delete_front(l, l->segs_n - 1);
    }
    if (rc < 0) {
        return fail(l, rc);
    }
    ASSERT(l->first == index + 1 && l->ix_n == 0);
    return 0;
}

int log_release(struct log *l, uint64_t before_index)
{
    size_t pos;
    int rc;
    ASSERT(l != NULL);
    if (l->failed) {
        return l->failed;
    }
    if (before_index <= l->first) {
        return 0;
    }
    if (before_index <= last_index(l)) {
        pos = (size_t)(seq_at(l, before_index) - l->segs[0].seq);
    } else {
        pos = l->segs_n - 1;
    }
    ASSERT(pos < l->segs_n);
    rc = segs_delete_front(l, pos);
    if (rc < 0) {
        return fail(l, rc);
    }
    if (l->segs[0].first_index > l->first) {
        ix_drop_front(l, l->segs[0].first_index);
    }
    ASSERT(l->first <= before_index);
    return 0;
}

/* ------------------------------------------------------------ accessors */

uint64_t log_first_index(const struct log *l)
{
    return l->first;
}

uint64_t log_last_index(const struct log *l)
{
    return last_index(l);
}

void log_hard_state(const struct log *l, struct log_hard_state *hs)
{
    *hs = l->hs;
}

int log_failed(const struct log *l)
{
    return l->failed;
}

int log_term(const struct log *l, uint64_t i, uint64_t *term)
{
    ASSERT(l != NULL && term != NULL);
    if (l->failed) {
        return l->failed;
    }
    if (i + 1 < l->first) {
        return ERR_COMPACTED;
    }
    if (i > last_index(l)) {
        return ERR_NOT_FOUND;
    }
    *term = term_at(l, i);
    return 0;
}

int log_entry_meta(const struct log *l, uint64_t i, uint64_t *term,
                   uint8_t *type, uint32_t *len)
{
    ASSERT(l != NULL && term != NULL && type != NULL && len != NULL);
    if (l->failed) {
        return l->failed;
    }
    if (i < l->first) {
        return ERR_COMPACTED;
    }
    if (i > last_index(l)) {
        return ERR_NOT_FOUND;
    }
    *term = term_at(l, i);
    *type = (uint8_t)runs_at(&l->types, i);
    *len = ix_at(l, i)->len - REC_ENTRY_BODY;
    return 0;
}

static int fd_for(struct log *l, uint64_t seq, int *fd)
{
    char name[NAME_LEN];
    const struct seg *s;
    int rc;
    if (seq == l->segs[l->segs_n - 1].seq) {
        *fd = l->active_fd;
        return 0;
    }
    if (l->read_fd >= 0 && l->read_seq == seq) {
        *fd = l->read_fd;
        return 0;
    }
    close_read_fd(l);
    ASSERT(seq >= l->segs[0].seq && seq - l->segs[0].seq < l->segs_n);
    s = &l->segs[seq - l->segs[0].seq];
    seg_name(name, s->seq, s->first_index, 0);
    rc = l->vfs->open(l->vfs->ctx, l->dirfd, name, LOG_VFS_READ, &l->read_fd);
    if (rc < 0) {
        l->read_fd = -1;
        return rc;
    }
    l->read_seq = seq;
    *fd = l->read_fd;
    return 0;
}

/* Read entry i's record: data into dst, checked against the index. */
static int entry_read(struct log *l, uint64_t i, uint8_t *dst,
                      struct log_entry *out)
{
    const struct ix *x = ix_at(l, i);
    uint64_t seq = seq_at(l, i);
    uint64_t term = term_at(l, i);
    uint8_t h[REC_HEAD + REC_ENTRY_BODY];
    uint32_t dlen = x->len - REC_ENTRY_BODY;
    uint32_t crc;
    int fd = -1;
    int rc = fd_for(l, seq, &fd);
    if (rc == 0) {
        rc = log__read2(l->vfs, fd, h, sizeof(h), dst, dlen, x->off);
    }
    if (rc == ERR_TRUNCATED) {
        rc = ERR_CORRUPT;
    }
    if (rc < 0) {
        return rc;
    }
    crc = crc32c(crc32c(0, h, 4), h + REC_HEAD, REC_ENTRY_BODY);
    crc = crc32c(crc, dst, dlen);
    if (le32_get(h) != x->len || le32_get(h + 4) != crc || h[8] != REC_ENTRY ||
        le64_get(h + 16) != i || le64_get(h + 24) != term) {
        LOGE("wal",
             "segment %016" PRIx64 " offset %u: entry %" PRIu64
             " changed on disk since it was written",
             seq, x->off, i);
        return ERR_CORRUPT;
    }
    out->index = i;
    out->term = term;
    out->type = h[9];
    out->data = dst;
    out->len = dlen;
    return 0;
}

int log_entries(struct log *l, uint64_t lo, uint64_t hi, uint64_t max_bytes,
                struct log_entry *out, size_t out_cap, uint8_t *arena,
                size_t arena_len, size_t *count)
{
    size_t used = 0;
    uint64_t total = 0;
    size_t c = 0;
    ASSERT(l != NULL && count != NULL);
    *count = 0;
    if (l->failed) {
        return l->failed;
    }
    if (lo < l->first) {
        return ERR_COMPACTED;
    }
    if (hi > last_index(l) + 1) {
        return ERR_NOT_FOUND;
    }
    if (lo > hi || out_cap == 0 || out == NULL) {
        return ERR_INVALID;
    }
    for (uint64_t i = lo; i < hi && c < out_cap; i++) {
        uint32_t dlen = ix_at(l, i)->len - REC_ENTRY_BODY;
        int rc;
        if (c > 0 && total + dlen > max_bytes) {
            break;
        }
        if (arena_len - used < dlen) {
            if (c == 0) {
                return ERR_LIMIT;
            }
            break;
        }
        rc = entry_read(l, i, arena + used, &out[c]);
        if (rc < 0) {
            return rc;
        }
        used += dlen;
        total += dlen;
        c++;
    }
    ASSERT(c <= out_cap && used <= arena_len);
    *count = c;
    return 0;
}

/*
 * bolt.c - read-only bbolt reader: etcd 3.4's `snapshot status` on a file
 * that etcd wrote (format in bolt.h).
 *
 * etcd's Status (clientv3/snapshot/v3_snapshot.go) opens the file with
 * bbolt, runs tx.Check() and fails on any error it reports, then walks the
 * root bucket with a cursor: for each top-level bucket it hashes the name,
 * then every key and value of the bucket (a nested bucket's value counts
 * as empty), counts the entries, and for bucket "key" keeps the main
 * revision of the key. We do the same in one walk: the tree is visited in
 * key order (which is the cursor's order) while each real page is marked
 * in a "reachable" bitmap, as tx.Check does. Marking a page twice is an
 * error, so a page reached by two paths or by a loop stops the walk; with
 * the depth bound and the element and byte budgets (bolt.h) no input can
 * make the walk read outside p[0..n), recurse without bound or take more
 * than time linear in n. After the walk, tx.Check's last rule: every page
 * below the high-water mark is reachable or on the freelist. Like
 * tx.Check, we do not descend into inline buckets below the top level
 * (their bytes are inside a page already counted), which also keeps
 * overlapping inline buckets from multiplying the work.
 *
 * As in bbolt 1.3, a meta page whose checksum field is 0 is not checked
 * (bbolt wrote no checksum before 1.2), and a file shorter than 4096 bytes
 * is refused whatever its page size. Deliberate differences: a page whose
 * header id is not its position, a page id at the high-water mark, an
 * element or key past its page, an empty branch page and nesting past
 * BOLT_DEPTH_MAX are errors here, where bbolt would read whatever memory
 * is there (and may crash); a key in bucket "key" shorter than 17 bytes
 * is an error where etcdctl panics.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "consensus/kv/bolt.h"

#define PAGE_HDR     16u
#define ELEM_LEN     16u
#define META_SUM_OFF 56u /* the checksum covers the meta bytes before it */
#define META_LEN     64u
#define BUCKET_HDR   16u
#define PAGE_DEFAULT 4096u /* bbolt's fallback when meta 0 is bad */
#define F_BRANCH     0x01u
#define F_LEAF       0x02u
#define F_META       0x04u
#define F_FREELIST   0x10u
#define LEAF_BUCKET  0x01u
#define NO_FREELIST  UINT64_MAX
#define REV_KEY_LEN  17u /* etcd's revision key: 8 main, '_', 8 sub */
#define BUDGET_EXTRA 16u

STATIC_ASSERT(PAGE_HDR + META_LEN <= BOLT_PAGE_MIN,
              "a meta page must fit the smallest page");
STATIC_ASSERT(PAGE_DEFAULT >= BOLT_PAGE_MIN && PAGE_DEFAULT <= BOLT_PAGE_MAX,
              "the fallback page size is within the limits");

struct meta {
    uint32_t page_size;
    uint64_t root;
    uint64_t freelist;
    uint64_t hwm; /* high-water page id: pages [0, hwm) are in use */
    uint64_t txid;
};

/* A page to read elements from: a real page (id, overflow included) or
 * an inline bucket's page inside a value (then id is its holder's). */
struct span {
    const uint8_t *b;
    uint64_t len;
    uint64_t id;
    bool in_value;
};

enum level {
    LV_ROOT,   /* the root bucket: keys are top-level bucket names */
    LV_TOP,    /* inside a top-level bucket: hashed and counted */
    LV_NESTED, /* deeper buckets: checked only, as tx.Check does */
};

struct walk {
    const uint8_t *p;
    size_t n;
    uint64_t ps;
    uint64_t hwm;
    uint8_t *reach; /* hwm bits each */
    uint8_t *freed;
    uint64_t budget;    /* elements left to visit */
    uint64_t hash_left; /* bytes left to hash */
    bool in_key;        /* the current top-level bucket is "key" */
    uint32_t crc;
    int64_t revision;
    int64_t keys;
    char *msg;
    size_t msg_len;
};

/* Writes the reason into w->msg and returns rc, so that a failing check
 * reads `return fail(w, ERR_CORRUPT, ...)`. */
__attribute__((format(printf, 3, 4))) static int fail(struct walk *w, int rc,
                                                      const char *fmt, ...)
{
    va_list ap;
    ASSERT(rc < 0);
    if (w->msg != NULL && w->msg_len > 0) {
        va_start(ap, fmt);
        vsnprintf(w->msg, w->msg_len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint64_t fnv64a(const uint8_t *p, size_t len)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static bool bit_get(const uint8_t *map, uint64_t i)
{
    return ((unsigned)map[i / 8] >> (i % 8) & 1u) != 0;
}

static void bit_set(uint8_t *map, uint64_t i)
{
    map[i / 8] = (uint8_t)(map[i / 8] | (1u << (i % 8)));
}

static const char *page_type(uint16_t flags)
{
    if ((flags & F_BRANCH) != 0) {
        return "branch";
    }
    if ((flags & F_LEAF) != 0) {
        return "leaf";
    }
    if ((flags & F_META) != 0) {
        return "meta";
    }
    if ((flags & F_FREELIST) != 0) {
        return "freelist";
    }
    return "unknown";
}

/* A printable copy of a key for messages: at most 40 bytes, others '.'. */
static const char *printable(const uint8_t *k, uint64_t len, char out[48])
{
    size_t m = len < 40 ? (size_t)len : 40;
    for (size_t i = 0; i < m; i++) {
        out[i] = k[i] >= 0x20 && k[i] < 0x7f ? (char)k[i] : '.';
    }
    out[m] = '\0';
    return out;
}

/* Meta page at page[0..PAGE_HDR + META_LEN): 0 or why it is not valid. */
static int meta_read(const uint8_t *page, struct meta *m)
{
    const uint8_t *b = page + PAGE_HDR;
    if (le32_get(b) != BOLT_MAGIC) {
        return ERR_BAD_MAGIC;
    }
    if (le32_get(b + 4) != BOLT_VERSION) {
        return ERR_BAD_VERSION;
    }
    uint64_t sum = le64_get(b + META_SUM_OFF);
    if (sum != 0 && sum != fnv64a(b, META_SUM_OFF)) {
        return ERR_CORRUPT;
    }
    m->page_size = le32_get(b + 8);
    m->root = le64_get(b + 16);
    m->freelist = le64_get(b + 32);
    m->hwm = le64_get(b + 40);
    m->txid = le64_get(b + 48);
    return 0;
}

static const char *meta_err(int rc)
{
    return rc == ERR_BAD_MAGIC     ? "invalid database (bad magic)"
           : rc == ERR_BAD_VERSION ? "version mismatch"
                                   : "checksum error";
}

static bool page_size_ok(uint32_t ps)
{
    return ps >= BOLT_PAGE_MIN && ps <= BOLT_PAGE_MAX && (ps & (ps - 1)) == 0;
}

bool bolt_is_bolt(const uint8_t *head, size_t n)
{
    const size_t offs[2] = {0, PAGE_DEFAULT};
    for (size_t i = 0; i < 2; i++) {
        size_t o = offs[i] + PAGE_HDR;
        if (n >= o + 8 && le32_get(head + o) == BOLT_MAGIC &&
            le32_get(head + o + 4) == BOLT_VERSION) {
            return true;
        }
    }
    return false;
}

/* The page size (from meta 0) and the meta to use: the valid one with the
 * higher txid (bbolt's db.meta()), with its fields checked against n. */
static int meta_pick(struct walk *w, struct meta *m)
{
    struct meta m0 = {0}, m1 = {0};
    if (w->n < PAGE_HDR + META_LEN) {
        return fail(w, ERR_BAD_MAGIC, "%zu bytes: too short for bbolt", w->n);
    }
    if (w->n < PAGE_DEFAULT) {
        /* bbolt reads the first 4096 bytes whatever its page size, and
         * refuses a file that does not have them. */
        return fail(w, bolt_is_bolt(w->p, w->n) ? ERR_CORRUPT : ERR_BAD_MAGIC,
                    "invalid database: %zu bytes, fewer than %u", w->n,
                    PAGE_DEFAULT);
    }
    int rc0 = meta_read(w->p, &m0);
    w->ps = PAGE_DEFAULT;
    if (rc0 == 0 && !page_size_ok(m0.page_size)) {
        return fail(w, ERR_CORRUPT, "meta 0: page size %" PRIu32, m0.page_size);
    }
    if (rc0 == 0) {
        w->ps = m0.page_size;
    }
    if (w->n / 2 < w->ps) {
        if (rc0 != 0) {
            return fail(w, rc0, "meta 0: %s", meta_err(rc0));
        }
        return fail(w, ERR_CORRUPT,
                    "file size too small: %zu bytes, pages "
                    "of %" PRIu64,
                    w->n, w->ps);
    }
    int rc1 = meta_read(w->p + w->ps, &m1);
    if (rc0 != 0 && rc1 != 0) {
        return fail(w, rc0, "meta 0: %s; meta 1: %s", meta_err(rc0),
                    meta_err(rc1));
    }
    *m = rc1 != 0 || (rc0 == 0 && m0.txid >= m1.txid) ? m0 : m1;
    ASSERT(w->ps >= BOLT_PAGE_MIN);
    if (m->hwm > w->n / w->ps) {
        return fail(w, ERR_CORRUPT,
                    "high-water page %" PRIu64 " past the "
                    "end of the file (%zu bytes)",
                    m->hwm, w->n);
    }
    if (m->root < 2 || m->root >= m->hwm) {
        return fail(w, ERR_CORRUPT,
                    "root page %" PRIu64 ": out of bounds: "
                    "%" PRIu64,
                    m->root, m->hwm);
    }
    if (m->freelist != NO_FREELIST &&
        (m->freelist < 2 || m->freelist >= m->hwm)) {
        return fail(w, ERR_CORRUPT,
                    "freelist page %" PRIu64 ": out of "
                    "bounds: %" PRIu64,
                    m->freelist, m->hwm);
    }
    return 0;
}

/* The real page id: bounds checked, with its overflow pages. */
static int page_at(struct walk *w, uint64_t id, struct span *out)
{
    if (id >= w->hwm) {
        return fail(w, ERR_CORRUPT, "page %" PRIu64 ": out of bounds: %" PRIu64,
                    id, w->hwm);
    }
    ASSERT(w->hwm <= w->n / w->ps);
    const uint8_t *h = w->p + id * w->ps;
    if (le64_get(h) != id) {
        return fail(w, ERR_CORRUPT,
                    "page %" PRIu64 ": header says page %" PRIu64, id,
                    le64_get(h));
    }
    uint64_t ov = le32_get(h + 12);
    if (ov >= w->hwm - id) {
        return fail(w, ERR_CORRUPT,
                    "page %" PRIu64 ": %" PRIu64 " overflow "
                    "pages past the high-water mark %" PRIu64,
                    id, ov, w->hwm);
    }
    *out = (struct span){.b = h, .len = (ov + 1) * w->ps, .id = id};
    return 0;
}

/* A branch or leaf page of a bucket's tree: each of its pages may be
 * reached once (tx.Check's "multiple references") and must not be free. */
static int tree_page(struct walk *w, uint64_t id, struct span *out)
{
    int rc = page_at(w, id, out);
    if (rc != 0) {
        return rc;
    }
    uint64_t pages = out->len / w->ps;
    for (uint64_t i = 0; i < pages; i++) {
        if (bit_get(w->reach, id + i)) {
            return fail(w, ERR_CORRUPT, "page %" PRIu64 ": multiple references",
                        id + i);
        }
        bit_set(w->reach, id + i);
    }
    uint16_t flags = le16(out->b + 8);
    if (bit_get(w->freed, id)) {
        return fail(w, ERR_CORRUPT, "page %" PRIu64 ": reachable freed", id);
    }
    if ((flags & (F_BRANCH | F_LEAF)) == 0) {
        return fail(w, ERR_CORRUPT, "page %" PRIu64 ": invalid type: %s", id,
                    page_type(flags));
    }
    return 0;
}

static int walk_page(struct walk *w, const struct span *s, int depth,
                     enum level lv);

/* A bucket's value: its tree, inline in the value or from its root page. */
static int walk_bucket(struct walk *w, const struct span *holder,
                       const uint8_t *v, uint64_t vlen, int depth,
                       enum level lv)
{
    struct span s;
    if (vlen < BUCKET_HDR) {
        return fail(w, ERR_CORRUPT,
                    "page %" PRIu64 ": bucket value of %" PRIu64 " bytes",
                    holder->id, vlen);
    }
    uint64_t root = le64_get(v);
    if (root != 0) {
        int rc = tree_page(w, root, &s);
        return rc != 0 ? rc : walk_page(w, &s, depth + 1, lv);
    }
    s = (struct span){.b = v + BUCKET_HDR,
                      .len = vlen - BUCKET_HDR,
                      .id = holder->id,
                      .in_value = true};
    if (s.len < PAGE_HDR || (le16(s.b + 8) & F_LEAF) == 0) {
        return fail(w, ERR_CORRUPT,
                    "page %" PRIu64 ": inline bucket is not a "
                    "leaf page",
                    holder->id);
    }
    return walk_page(w, &s, depth + 1, lv);
}

/* Adds b[0..len) to the hash, within the byte budget: in a real file each
 * key and value has bytes of its own, so only overlapping ones run out. */
static int hash_add(struct walk *w, const uint8_t *b, uint64_t len)
{
    if (len > w->hash_left) {
        return fail(w, ERR_CORRUPT,
                    "more key and value bytes than the file "
                    "holds (overlapping elements)");
    }
    w->hash_left -= len;
    w->crc = crc32c(w->crc, b, (size_t)len);
    return 0;
}

/* One key/value of a leaf, at level lv: what etcd's Status does with it. */
static int leaf_entry(struct walk *w, const struct span *s, uint32_t flags,
                      const uint8_t *k, uint64_t klen, const uint8_t *v,
                      uint64_t vlen, int depth, enum level lv)
{
    char name[48];
    bool bucket = (flags & LEAF_BUCKET) != 0;
    if (lv == LV_ROOT) {
        if (!bucket) {
            return fail(w, ERR_CORRUPT, "cannot get hash of bucket %s",
                        printable(k, klen, name));
        }
        w->in_key = klen == 3 && memcmp(k, "key", 3) == 0;
        int rc = hash_add(w, k, klen);
        return rc != 0 ? rc : walk_bucket(w, s, v, vlen, depth, LV_TOP);
    }
    if (lv == LV_TOP) {
        int rc = hash_add(w, k, klen);
        rc = rc != 0 || bucket ? rc : hash_add(w, v, vlen);
        if (rc != 0) {
            return rc;
        }
        w->keys++;
        if (w->in_key && klen < REV_KEY_LEN) {
            return fail(w, ERR_CORRUPT,
                        "bucket key: key %s of %" PRIu64
                        " bytes is not a revision",
                        printable(k, klen, name), klen);
        }
        if (w->in_key) {
            w->revision = (int64_t)be64_get(k);
        }
    }
    if (!bucket) {
        return 0;
    }
    /* tx.Check skips inline buckets (root 0) and so everything inside
     * them; below the top level nothing else reads them either. */
    if (vlen >= BUCKET_HDR && (s->in_value || le64_get(v) == 0)) {
        return 0;
    }
    return walk_bucket(w, s, v, vlen, depth, LV_NESTED);
}

/* The elements of page s: leaf entries in order, or each child subtree. */
static int walk_page(struct walk *w, const struct span *s, int depth,
                     enum level lv)
{
    const char *where = s->in_value ? " (inline bucket)" : "";
    if (depth > BOLT_DEPTH_MAX) {
        return fail(w, ERR_CORRUPT, "page %" PRIu64 "%s: nested deeper than %d",
                    s->id, where, BOLT_DEPTH_MAX);
    }
    bool leaf = (le16(s->b + 8) & F_LEAF) != 0;
    uint64_t count = le16(s->b + 10);
    if (count > (s->len - PAGE_HDR) / ELEM_LEN) {
        return fail(w, ERR_CORRUPT,
                    "page %" PRIu64 "%s: %" PRIu64 " elements "
                    "past its end",
                    s->id, where, count);
    }
    if (count > w->budget) {
        return fail(w, ERR_CORRUPT,
                    "page %" PRIu64 "%s: more elements than "
                    "the file holds (overlapping pages)",
                    s->id, where);
    }
    if (!leaf && count == 0) {
        return fail(w, ERR_CORRUPT, "page %" PRIu64 ": empty branch page",
                    s->id);
    }
    w->budget -= count;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t off = PAGE_HDR + i * ELEM_LEN;
        const uint8_t *e = s->b + off;
        uint64_t pos = le32_get(e + (leaf ? 4 : 0));
        uint64_t klen = le32_get(e + (leaf ? 8 : 4));
        uint64_t vlen = leaf ? le32_get(e + 12) : 0;
        if (pos + klen + vlen > s->len - off) {
            return fail(w, ERR_CORRUPT,
                        "page %" PRIu64 "%s: element %" PRIu64 " past its page",
                        s->id, where, i);
        }
        int rc;
        if (leaf) {
            rc = leaf_entry(w, s, le32_get(e), e + pos, klen, e + pos + klen,
                            vlen, depth, lv);
        } else {
            struct span child;
            rc = tree_page(w, le64_get(e + 8), &child);
            rc = rc != 0 ? rc : walk_page(w, &child, depth + 1, lv);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* The freelist page: its pages are reachable, its ids are freed (once). */
static int read_freelist(struct walk *w, uint64_t id)
{
    struct span s;
    int rc = page_at(w, id, &s);
    if (rc != 0) {
        return rc;
    }
    uint16_t flags = le16(s.b + 8);
    if ((flags & F_FREELIST) == 0) {
        return fail(w, ERR_CORRUPT,
                    "page %" PRIu64 ": invalid freelist page, "
                    "page type is %s",
                    id, page_type(flags));
    }
    for (uint64_t i = 0; i < s.len / w->ps; i++) {
        bit_set(w->reach, id + i);
    }
    uint64_t room = (s.len - PAGE_HDR) / 8, first = 0;
    uint64_t count = le16(s.b + 10);
    if (count == 0xFFFF) {
        ASSERT(room >= 1);
        count = le64_get(s.b + PAGE_HDR);
        first = 1;
    }
    if (count > room - first) {
        return fail(w, ERR_CORRUPT,
                    "page %" PRIu64 ": freelist of %" PRIu64
                    " ids past its page",
                    id, count);
    }
    for (uint64_t i = first; i < first + count; i++) {
        uint64_t f = le64_get(s.b + PAGE_HDR + i * 8);
        if (f < w->hwm && bit_get(w->freed, f)) {
            return fail(w, ERR_CORRUPT, "page %" PRIu64 ": already freed", f);
        }
        if (f < w->hwm) {
            bit_set(w->freed, f);
        }
    }
    return 0;
}

static int check_and_walk(struct walk *w, const struct meta *m)
{
    struct span root;
    int rc;
    bit_set(w->reach, 0);
    bit_set(w->reach, 1);
    if (m->freelist != NO_FREELIST) {
        rc = read_freelist(w, m->freelist);
        if (rc != 0) {
            return rc;
        }
    }
    rc = tree_page(w, m->root, &root);
    rc = rc != 0 ? rc : walk_page(w, &root, 0, LV_ROOT);
    if (rc != 0 || m->freelist == NO_FREELIST) {
        /* Without a freelist on disk bbolt takes every unreachable page
         * as free, so there is nothing left to check. */
        return rc;
    }
    for (uint64_t i = 0; i < w->hwm; i++) {
        if (!bit_get(w->reach, i) && !bit_get(w->freed, i)) {
            return fail(w, ERR_CORRUPT, "page %" PRIu64 ": unreachable unfreed",
                        i);
        }
    }
    return 0;
}

int bolt_status_mem(const uint8_t *p, size_t n, struct bolt_status *st,
                    char *msg, size_t msg_len)
{
    struct walk w = {.p = p, .n = n, .msg = msg, .msg_len = msg_len};
    struct meta m = {0};
    ASSERT(st != NULL);
    ASSERT(p != NULL || n == 0);
    err_msg(msg, msg_len, "no error");
    int rc = meta_pick(&w, &m);
    if (rc != 0) {
        return rc;
    }
    w.hwm = m.hwm;
    w.budget = n / ELEM_LEN + BUDGET_EXTRA;
    w.hash_left = n;
    size_t map_bytes = (size_t)((m.hwm + 7) / 8);
    w.reach = mem_calloc(2, map_bytes);
    if (w.reach == NULL) {
        return fail(&w, -ENOMEM, "out of memory for %" PRIu64 " pages", m.hwm);
    }
    w.freed = w.reach + map_bytes;
    rc = check_and_walk(&w, &m);
    mem_free(w.reach);
    if (rc != 0) {
        return rc;
    }
    ASSERT(w.keys >= 0);
    st->hash = w.crc;
    st->revision = w.revision;
    st->total_key = w.keys;
    st->total_size = (int64_t)(m.hwm * w.ps);
    return 0;
}

int bolt_status_file(const char *path, struct bolt_status *st, char *msg,
                     size_t msg_len)
{
    char inner[256];
    struct stat sb;
    ASSERT(path != NULL);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        err_msg(msg, msg_len, "%s: %s", path, strerror(e));
        return -e;
    }
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        err_msg(msg, msg_len, "%s: %s", path, strerror(e));
        return -e;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size < 0) {
        int e = S_ISDIR(sb.st_mode) ? EISDIR : EINVAL;
        close(fd);
        err_msg(msg, msg_len, "%s: not a regular file", path);
        return -e;
    }
    size_t n = (size_t)sb.st_size;
    const uint8_t *p = NULL;
    if (n > 0) {
        void *map = mmap(NULL, n, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            err_msg(msg, msg_len, "%s: mmap: %s", path, strerror(e));
            return -e;
        }
        p = map;
    }
    close(fd);
    int rc = bolt_status_mem(p, n, st, inner, sizeof(inner));
    if (p != NULL) {
        munmap((void *)(uintptr_t)p, n);
    }
    if (rc != 0) {
        err_msg(msg, msg_len, "%s: %s", path, inner);
    }
    return rc;
}

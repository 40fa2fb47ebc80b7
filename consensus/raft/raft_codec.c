/*
 * raft_codec.c - the hand-written binary encoding of Raft messages and of
 * membership-change entries (byte tables in raft.h).
 *
 * The decoder takes untrusted bytes: every length is checked against the
 * bytes left and against fixed limits before anything is allocated or read,
 * so truncated or hostile input ends in an error, never a crash or an
 * allocation the input size does not justify. Entry and snapshot data in a
 * decoded message point into the caller's buffer (no copy).
 */
#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "consensus/raft/raft_int.h"

STATIC_ASSERT(RAFT_MSG_HEADER_BYTES == 76, "header layout in raft.h");
STATIC_ASSERT(RAFT_ENTRY_HEADER_BYTES == 8 + 8 + 1 + 4, "entry layout");
STATIC_ASSERT(RAFT_MEMBERS_MAX <= 255, "conf counts are one byte");

/* Smallest encodings, used to refuse counts the bytes cannot hold. */
#define CONF_MIN_BYTES 2
#define SNAP_MIN_BYTES (8 + 8 + CONF_MIN_BYTES + 4)
#define CRC_BYTES      4

bool raft_conf_is_voter(const struct raft_conf *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->voters_count; i++) {
        if (c->voters[i] == id) {
            return true;
        }
    }
    return false;
}

bool raft_conf_is_learner(const struct raft_conf *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->learners_count; i++) {
        if (c->learners[i] == id) {
            return true;
        }
    }
    return false;
}

bool raft__conf_valid(const struct raft_conf *c)
{
    if (c->voters_count > RAFT_MEMBERS_MAX ||
        c->learners_count > RAFT_MEMBERS_MAX ||
        c->voters_count + c->learners_count > RAFT_MEMBERS_MAX) {
        return false;
    }
    uint64_t all[RAFT_MEMBERS_MAX];
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->voters_count; i++) {
        all[n++] = c->voters[i];
    }
    for (uint32_t i = 0; i < c->learners_count; i++) {
        all[n++] = c->learners[i];
    }
    for (uint32_t i = 0; i < n; i++) {
        if (all[i] == RAFT_NONE) {
            return false;
        }
        for (uint32_t j = i + 1; j < n; j++) {
            if (all[i] == all[j]) {
                return false;
            }
        }
    }
    return true;
}

/* ---------------------------------------------------------------- encode */

static int put_conf(struct buf *b, const struct raft_conf *c)
{
    int rc = buf_append_u8(b, (uint8_t)c->voters_count);
    rc = rc ? rc : buf_append_u8(b, (uint8_t)c->learners_count);
    for (uint32_t i = 0; rc == 0 && i < c->voters_count; i++) {
        rc = buf_append_be64(b, c->voters[i]);
    }
    for (uint32_t i = 0; rc == 0 && i < c->learners_count; i++) {
        rc = buf_append_be64(b, c->learners[i]);
    }
    return rc;
}

static int put_entry(struct buf *b, const struct raft_entry *e)
{
    int rc = buf_append_be64(b, e->index);
    rc = rc ? rc : buf_append_be64(b, e->term);
    rc = rc ? rc : buf_append_u8(b, e->type);
    rc = rc ? rc : buf_append_be32(b, e->len);
    rc = rc ? rc : buf_append(b, e->data, e->len);
    return rc;
}

static bool msg_encodable(const struct raft_msg *m)
{
    if (m->type == RAFT_MSG_NONE || m->type > RAFT_MSG_TYPE_MAX) {
        return false;
    }
    if ((m->flags & ~(RAFT_MSG_F_REJECT | RAFT_MSG_F_TRANSFER)) != 0) {
        return false;
    }
    if (m->entries_count > RAFT_CODEC_ENTRIES_MAX) {
        return false;
    }
    for (uint32_t i = 0; i < m->entries_count; i++) {
        if (m->entries[i].type > RAFT_ENTRY_TYPE_MAX ||
            (m->entries[i].len > 0 && m->entries[i].data == NULL)) {
            return false;
        }
    }
    if (m->type == RAFT_MSG_SNAP && !raft__conf_valid(&m->snapshot.meta.conf)) {
        return false;
    }
    return true;
}

int raft_msg_encode(const struct raft_msg *m, struct buf *out)
{
    if (!msg_encodable(m)) {
        return ERR_INVALID;
    }
    size_t start = out->len;
    uint8_t h[RAFT_MSG_HEADER_BYTES];
    memset(h, 0, sizeof(h));
    be32_put(h, RAFT_MSG_MAGIC);
    h[4] = RAFT_CODEC_VERSION;
    h[5] = m->type;
    h[6] = m->flags;
    be64_put(h + 8, m->from);
    be64_put(h + 16, m->to);
    be64_put(h + 24, m->term);
    be64_put(h + 32, m->log_term);
    be64_put(h + 40, m->index);
    be64_put(h + 48, m->commit);
    be64_put(h + 56, m->reject_hint);
    be64_put(h + 64, m->ctx);
    be32_put(h + 72, m->entries_count);
    int rc = buf_append(out, h, sizeof(h));
    for (uint32_t i = 0; rc == 0 && i < m->entries_count; i++) {
        rc = put_entry(out, &m->entries[i]);
    }
    if (rc == 0 && m->type == RAFT_MSG_SNAP) {
        const struct raft_snapshot *s = &m->snapshot;
        rc = buf_append_be64(out, s->meta.index);
        rc = rc ? rc : buf_append_be64(out, s->meta.term);
        rc = rc ? rc : put_conf(out, &s->meta.conf);
        rc = rc ? rc : buf_append_be32(out, s->data_len);
        rc = rc ? rc : buf_append(out, s->data, s->data_len);
    }
    if (rc == 0) {
        uint32_t crc = crc32c(0, out->data + start, out->len - start);
        rc = buf_append_be32(out, crc);
    }
    if (rc < 0) {
        out->len = start; /* unchanged on error */
    }
    return rc;
}

/* ---------------------------------------------------------------- decode */

static int get_conf(struct reader *rd, struct raft_conf *c)
{
    uint8_t nv = 0, nl = 0;
    memset(c, 0, sizeof(*c));
    if (reader_u8(rd, &nv) < 0 || reader_u8(rd, &nl) < 0) {
        return ERR_CORRUPT;
    }
    if ((uint32_t)nv + nl > RAFT_MEMBERS_MAX) {
        return ERR_LIMIT;
    }
    c->voters_count = nv;
    c->learners_count = nl;
    for (uint32_t i = 0; i < nv; i++) {
        if (reader_be64(rd, &c->voters[i]) < 0) {
            return ERR_CORRUPT;
        }
    }
    for (uint32_t i = 0; i < nl; i++) {
        if (reader_be64(rd, &c->learners[i]) < 0) {
            return ERR_CORRUPT;
        }
    }
    return raft__conf_valid(c) ? 0 : ERR_CORRUPT;
}

static int get_entry(struct reader *rd, struct raft_entry *e)
{
    uint32_t len = 0;
    const uint8_t *p = NULL;
    if (reader_be64(rd, &e->index) < 0 || reader_be64(rd, &e->term) < 0 ||
        reader_u8(rd, &e->type) < 0 || reader_be32(rd, &len) < 0) {
        return ERR_CORRUPT;
    }
    if (e->type > RAFT_ENTRY_TYPE_MAX) {
        return ERR_CORRUPT;
    }
    if (len > reader_left(rd) || reader_bytes(rd, len, &p) < 0) {
        return ERR_CORRUPT;
    }
    e->len = len;
    e->data = len ? (uint8_t *)(uintptr_t)p : NULL;
    return 0;
}

static int get_header(struct reader *rd, struct raft_msg *m)
{
    uint32_t magic = 0, count = 0;
    uint8_t version = 0, reserved = 0;
    if (reader_be32(rd, &magic) < 0) {
        return ERR_CORRUPT;
    }
    if (magic != RAFT_MSG_MAGIC) {
        return ERR_BAD_MAGIC;
    }
    if (reader_u8(rd, &version) < 0) {
        return ERR_CORRUPT;
    }
    if (version != RAFT_CODEC_VERSION) {
        return ERR_BAD_VERSION;
    }
    if (reader_u8(rd, &m->type) < 0 || reader_u8(rd, &m->flags) < 0 ||
        reader_u8(rd, &reserved) < 0 || reader_be64(rd, &m->from) < 0 ||
        reader_be64(rd, &m->to) < 0 || reader_be64(rd, &m->term) < 0 ||
        reader_be64(rd, &m->log_term) < 0 || reader_be64(rd, &m->index) < 0 ||
        reader_be64(rd, &m->commit) < 0 ||
        reader_be64(rd, &m->reject_hint) < 0 || reader_be64(rd, &m->ctx) < 0 ||
        reader_be32(rd, &count) < 0) {
        return ERR_CORRUPT;
    }
    if (m->type == RAFT_MSG_NONE || m->type > RAFT_MSG_TYPE_MAX ||
        reserved != 0 ||
        (m->flags & ~(RAFT_MSG_F_REJECT | RAFT_MSG_F_TRANSFER)) != 0) {
        return ERR_CORRUPT;
    }
    if (count > RAFT_CODEC_ENTRIES_MAX) {
        return ERR_LIMIT;
    }
    /* Each entry takes at least its header: refuse counts the bytes left
     * cannot hold before allocating for them. */
    if ((uint64_t)count * RAFT_ENTRY_HEADER_BYTES > reader_left(rd)) {
        return ERR_CORRUPT;
    }
    m->entries_count = count;
    return 0;
}

static int get_snapshot(struct reader *rd, struct raft_snapshot *s)
{
    uint32_t len = 0;
    const uint8_t *p = NULL;
    if (reader_left(rd) < SNAP_MIN_BYTES) {
        return ERR_CORRUPT;
    }
    if (reader_be64(rd, &s->meta.index) < 0 ||
        reader_be64(rd, &s->meta.term) < 0) {
        return ERR_CORRUPT;
    }
    int rc = get_conf(rd, &s->meta.conf);
    if (rc < 0) {
        return rc;
    }
    if (reader_be32(rd, &len) < 0 || len > reader_left(rd) ||
        reader_bytes(rd, len, &p) < 0) {
        return ERR_CORRUPT;
    }
    s->data_len = len;
    s->data = len ? (uint8_t *)(uintptr_t)p : NULL;
    return 0;
}

int raft_msg_decode(const uint8_t *p, size_t len, uint64_t max_bytes,
                    struct raft_msg *out)
{
    memset(out, 0, sizeof(*out));
    if (max_bytes == 0 || max_bytes > RAFT_CODEC_MSG_BYTES_MAX) {
        max_bytes = RAFT_CODEC_MSG_BYTES_MAX;
    }
    if (len > max_bytes) {
        return ERR_LIMIT;
    }
    if (p == NULL || len < RAFT_MSG_HEADER_BYTES + CRC_BYTES) {
        return ERR_CORRUPT;
    }
    size_t body = len - CRC_BYTES;
    struct reader rd;
    reader_init(&rd, p, body);
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    int rc = get_header(&rd, &m);
    if (rc < 0) {
        return rc;
    }
    if (be32_get(p + body) != crc32c(0, p, body)) {
        return ERR_CORRUPT;
    }
    if (m.entries_count > 0) {
        m.entries = mem_calloc(m.entries_count, sizeof(*m.entries));
        if (m.entries == NULL) {
            return -ENOMEM;
        }
    }
    for (uint32_t i = 0; rc == 0 && i < m.entries_count; i++) {
        rc = get_entry(&rd, &m.entries[i]);
    }
    if (rc == 0 && m.type == RAFT_MSG_SNAP) {
        rc = get_snapshot(&rd, &m.snapshot);
    }
    if (rc == 0 && reader_left(&rd) != 0) {
        rc = ERR_CORRUPT; /* trailing garbage */
    }
    if (rc < 0) {
        mem_free(m.entries);
        return rc;
    }
    *out = m;
    return 0;
}

void raft_msg_free_decoded(struct raft_msg *m)
{
    mem_free(m->entries);
    m->entries = NULL;
    m->entries_count = 0;
}

/* --------------------------------------------------- conf change entries */

int raft_conf_change_encode(const struct raft_conf_change *cc, struct buf *out)
{
    if (cc->type == 0 || cc->type > RAFT_CC_TYPE_MAX ||
        !raft__conf_valid(&cc->conf) || (cc->ctx_len > 0 && !cc->ctx)) {
        return ERR_INVALID;
    }
    size_t start = out->len;
    int rc = buf_append_be32(out, RAFT_CC_MAGIC);
    rc = rc ? rc : buf_append_u8(out, RAFT_CODEC_VERSION);
    rc = rc ? rc : buf_append_u8(out, cc->type);
    rc = rc ? rc : buf_append_be64(out, cc->node_id);
    rc = rc ? rc : put_conf(out, &cc->conf);
    rc = rc ? rc : buf_append_be32(out, cc->ctx_len);
    rc = rc ? rc : buf_append(out, cc->ctx, cc->ctx_len);
    if (rc < 0) {
        out->len = start;
    }
    return rc;
}

int raft_conf_change_decode(const uint8_t *p, size_t len,
                            struct raft_conf_change *out)
{
    struct reader rd;
    uint32_t magic = 0, ctx_len = 0;
    uint8_t version = 0;
    const uint8_t *ctx = NULL;
    memset(out, 0, sizeof(*out));
    reader_init(&rd, p, p ? len : 0);
    if (reader_be32(&rd, &magic) < 0) {
        return ERR_CORRUPT;
    }
    if (magic != RAFT_CC_MAGIC) {
        return ERR_BAD_MAGIC;
    }
    if (reader_u8(&rd, &version) < 0) {
        return ERR_CORRUPT;
    }
    if (version != RAFT_CODEC_VERSION) {
        return ERR_BAD_VERSION;
    }
    if (reader_u8(&rd, &out->type) < 0 || reader_be64(&rd, &out->node_id) < 0) {
        return ERR_CORRUPT;
    }
    if (out->type == 0 || out->type > RAFT_CC_TYPE_MAX ||
        out->node_id == RAFT_NONE) {
        return ERR_CORRUPT;
    }
    int rc = get_conf(&rd, &out->conf);
    if (rc < 0) {
        return rc;
    }
    if (reader_be32(&rd, &ctx_len) < 0 || ctx_len > reader_left(&rd) ||
        reader_bytes(&rd, ctx_len, &ctx) < 0 || reader_left(&rd) != 0) {
        return ERR_CORRUPT;
    }
    out->ctx = ctx_len ? ctx : NULL;
    out->ctx_len = ctx_len;
    return 0;
}

int raft__conf_entry_decode(const struct raft_entry *e,
                            struct raft_conf_change *out)
{
    ASSERT(e->type == RAFT_ENTRY_CONF);
    return raft_conf_change_decode(e->data, e->len, out);
}

/* ------------------------------------------------------------- snapshots */

int raft__snapshot_copy(struct raft_snapshot *dst,
                        const struct raft_snapshot *src)
{
    *dst = *src;
    dst->data = NULL;
    if (src->data_len > 0) {
        dst->data = mem_dup(src->data, src->data_len);
        if (dst->data == NULL) {
            return -ENOMEM;
        }
    }
    return 0;
}

void raft__snapshot_free(struct raft_snapshot *s)
{
    mem_free(s->data);
    memset(s, 0, sizeof(*s));
}

int raft_conf_encode(const struct raft_conf *c, struct buf *out)
{
    size_t start = out->len;
    int rc = buf_append_be32(out, c->voters_count);
    if (rc == 0) {
        rc = buf_append_be32(out, c->learners_count);
    }
    for (uint32_t i = 0; rc == 0 && i < c->voters_count; i++) {
        rc = buf_append_be64(out, c->voters[i]);
    }
    for (uint32_t i = 0; rc == 0 && i < c->learners_count; i++) {
        rc = buf_append_be64(out, c->learners[i]);
    }
    if (rc != 0) {
        out->len = start; /* out unchanged on error */
    }
    return rc;
}

int raft_conf_decode(const uint8_t *p, size_t len, struct raft_conf *out)
{
    struct reader r;
    uint32_t nv;
    uint32_t nl;
    memset(out, 0, sizeof(*out));
    reader_init(&r, p, len);
    if (reader_be32(&r, &nv) != 0 || reader_be32(&r, &nl) != 0 ||
        nv > RAFT_MEMBERS_MAX || nl > RAFT_MEMBERS_MAX) {
        return ERR_CORRUPT;
    }
    for (uint32_t i = 0; i < nv; i++) {
        if (reader_be64(&r, &out->voters[i]) != 0) {
            return ERR_CORRUPT;
        }
    }
    for (uint32_t i = 0; i < nl; i++) {
        if (reader_be64(&r, &out->learners[i]) != 0) {
            return ERR_CORRUPT;
        }
    }
    out->voters_count = nv;
    out->learners_count = nl;
    return 0;
}

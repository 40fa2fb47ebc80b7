/*
 * test_raft_codec.c - the Raft wire codec: round trips of every message
 * type, and malformed input (every truncation, every single-bit flip, bad
 * magic, version, counts and lengths) rejected with an error, never a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "consensus/raft/raft.h"

int raft_codec_tests(void);

static void fill_msg(struct raft_msg *m, uint8_t type, struct raft_entry *e,
                     uint8_t *snapdata)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->flags = RAFT_MSG_F_REJECT;
    m->from = 0x0102030405060708ULL;
    m->to = 2;
    m->term = 77;
    m->log_term = 76;
    m->index = 1000;
    m->commit = 999;
    m->reject_hint = 5;
    m->ctx = 0xdeadbeefULL;
    if (type == RAFT_MSG_APP || type == RAFT_MSG_PROP) {
        static uint8_t a[] = "hello", b[] = "";
        e[0] = (struct raft_entry){1001, 77, RAFT_ENTRY_NORMAL, 5, a};
        e[1] = (struct raft_entry){1002, 77, RAFT_ENTRY_EMPTY, 0, b};
        e[1].data = NULL;
        m->entries = e;
        m->entries_count = 2;
    }
    if (type == RAFT_MSG_SNAP) {
        m->snapshot.meta.index = 500;
        m->snapshot.meta.term = 70;
        m->snapshot.meta.conf.voters_count = 3;
        m->snapshot.meta.conf.voters[0] = 1;
        m->snapshot.meta.conf.voters[1] = 2;
        m->snapshot.meta.conf.voters[2] = 3;
        m->snapshot.meta.conf.learners_count = 1;
        m->snapshot.meta.conf.learners[0] = 9;
        m->snapshot.data = snapdata;
        m->snapshot.data_len = 4;
    }
}

static void assert_msg_equal(const struct raft_msg *a, const struct raft_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->from, b->from);
    assert_int_equal(a->to, b->to);
    assert_int_equal(a->term, b->term);
    assert_int_equal(a->log_term, b->log_term);
    assert_int_equal(a->index, b->index);
    assert_int_equal(a->commit, b->commit);
    assert_int_equal(a->reject_hint, b->reject_hint);
    assert_int_equal(a->ctx, b->ctx);
    assert_int_equal(a->entries_count, b->entries_count);
    for (uint32_t i = 0; i < a->entries_count; i++) {
        assert_int_equal(a->entries[i].index, b->entries[i].index);
        assert_int_equal(a->entries[i].term, b->entries[i].term);
        assert_int_equal(a->entries[i].type, b->entries[i].type);
        assert_int_equal(a->entries[i].len, b->entries[i].len);
        if (a->entries[i].len) {
            assert_memory_equal(a->entries[i].data, b->entries[i].data,
                                a->entries[i].len);
        }
    }
    if (a->type == RAFT_MSG_SNAP) {
        assert_memory_equal(&a->snapshot.meta, &b->snapshot.meta,
                            sizeof(a->snapshot.meta));
        assert_int_equal(a->snapshot.data_len, b->snapshot.data_len);
        assert_memory_equal(a->snapshot.data, b->snapshot.data,
                            a->snapshot.data_len);
    }
}

static void every_message_type_round_trips(void **state)
{
    (void)state;
    for (uint8_t t = 1; t <= RAFT_MSG_TYPE_MAX; t++) {
        struct raft_entry e[2];
        uint8_t sd[4] = {1, 2, 3, 4};
        struct raft_msg m, d;
        fill_msg(&m, t, e, sd);
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(raft_msg_encode(&m, &b), 0);
        assert_int_equal(be32_get(b.data), RAFT_MSG_MAGIC);
        assert_int_equal(b.data[4], RAFT_CODEC_VERSION);
        assert_int_equal(raft_msg_decode(b.data, b.len, 0, &d), 0);
        assert_msg_equal(&m, &d);
        raft_msg_free_decoded(&d);
        buf_free(&b);
    }
}

/* Every prefix of a valid message, and every single-bit flip, is refused;
 * run under ASan this also proves no read goes out of bounds. */
static void truncated_and_flipped_input_is_refused(void **state)
{
    (void)state;
    uint8_t types[] = {RAFT_MSG_APP, RAFT_MSG_SNAP, RAFT_MSG_HEARTBEAT};
    for (size_t k = 0; k < sizeof(types); k++) {
        struct raft_entry e[2];
        uint8_t sd[4] = {1, 2, 3, 4};
        struct raft_msg m, d;
        fill_msg(&m, types[k], e, sd);
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(raft_msg_encode(&m, &b), 0);
        for (size_t len = 0; len < b.len; len++) {
            uint8_t *copy = malloc(len + 1); /* exact size for ASan */
            assert_non_null(copy);
            memcpy(copy, b.data, len);
            assert_true(raft_msg_decode(len ? copy : NULL, len, 0, &d) < 0);
            free(copy);
        }
        for (size_t bit = 0; bit < b.len * 8; bit++) {
            b.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            assert_true(raft_msg_decode(b.data, b.len, 0, &d) < 0);
            b.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        assert_int_equal(raft_msg_decode(b.data, b.len, 0, &d), 0);
        raft_msg_free_decoded(&d);
        buf_free(&b);
    }
}

static void reseal(uint8_t *p, size_t len)
{
    be32_put(p + len - 4, crc32c(0, p, len - 4));
}

static void bad_magic_version_counts_and_lengths(void **state)
{
    (void)state;
    struct raft_msg m, d;
    struct raft_entry e[2];
    fill_msg(&m, RAFT_MSG_APP, e, NULL);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(raft_msg_encode(&m, &b), 0);
    uint8_t *p = b.data;
    size_t n = b.len;

    p[0] ^= 0xff;
    assert_int_equal(raft_msg_decode(p, n, 0, &d), ERR_BAD_MAGIC);
    p[0] ^= 0xff;
    p[4] = 2;
    assert_int_equal(raft_msg_decode(p, n, 0, &d), ERR_BAD_VERSION);
    p[4] = RAFT_CODEC_VERSION;
    p[5] = RAFT_MSG_TYPE_MAX + 1;
    reseal(p, n);
    assert_int_equal(raft_msg_decode(p, n, 0, &d), ERR_CORRUPT);
    p[5] = RAFT_MSG_APP;
    /* a count far beyond what the bytes could hold: refused before any
     * allocation */
    be32_put(p + 72, 60000);
    reseal(p, n);
    assert_int_equal(raft_msg_decode(p, n, 0, &d), ERR_CORRUPT);
    be32_put(p + 72, 0xffffffffu);
    reseal(p, n);
    assert_int_equal(raft_msg_decode(p, n, 0, &d), ERR_LIMIT);
    be32_put(p + 72, 2);
    /* first entry's length pointing past the end */
    be32_put(p + 76 + 17, 0x7fffffffu);
    reseal(p, n);
    assert_int_equal(raft_msg_decode(p, n, 0, &d), ERR_CORRUPT);
    be32_put(p + 76 + 17, 5);
    reseal(p, n);
    assert_int_equal(raft_msg_decode(p, n, 0, &d), 0);
    raft_msg_free_decoded(&d);
    /* size bound */
    assert_int_equal(raft_msg_decode(p, n, n - 1, &d), ERR_LIMIT);
    buf_free(&b);
}

static void conf_change_round_trips_and_rejects_garbage(void **state)
{
    (void)state;
    struct raft_conf_change cc, d;
    memset(&cc, 0, sizeof(cc));
    cc.type = RAFT_CC_ADD_LEARNER;
    cc.node_id = 4;
    cc.conf.voters_count = 3;
    cc.conf.voters[0] = 1;
    cc.conf.voters[1] = 2;
    cc.conf.voters[2] = 3;
    cc.conf.learners_count = 1;
    cc.conf.learners[0] = 4;
    cc.ctx = (const uint8_t *)"http://127.0.0.1:2380";
    cc.ctx_len = 21;
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(raft_conf_change_encode(&cc, &b), 0);
    assert_int_equal(raft_conf_change_decode(b.data, b.len, &d), 0);
    assert_int_equal(d.type, cc.type);
    assert_int_equal(d.node_id, 4);
    assert_memory_equal(&d.conf, &cc.conf, sizeof(cc.conf));
    assert_int_equal(d.ctx_len, 21);
    assert_memory_equal(d.ctx, cc.ctx, 21);
    for (size_t len = 0; len < b.len; len++) {
        assert_true(raft_conf_change_decode(b.data, len, &d) < 0);
    }
    /* a duplicated member is refused */
    b.data[14 + 2 + 8 + 7] = 1; /* voters[1] := 1 */
    assert_int_equal(raft_conf_change_decode(b.data, b.len, &d), ERR_CORRUPT);
    buf_free(&b);
    cc.conf.learners[0] = 2; /* voter and learner at once */
    buf_init(&b, 0);
    assert_int_equal(raft_conf_change_encode(&cc, &b), ERR_INVALID);
    buf_free(&b);
}

static void membership_bytes_round_trip_and_refuse_garbage(void **state)
{
    (void)state;
    struct raft_conf c = {.voters_count = 3,
                          .learners_count = 1,
                          .voters = {1, 2, 0xffffffffffffffffULL},
                          .learners = {9}};
    struct raft_conf d;
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(raft_conf_encode(&c, &b), 0);
    assert_int_equal(b.len, 8 + 4 * 8);
    assert_int_equal(raft_conf_decode(b.data, b.len, &d), 0);
    assert_memory_equal(&c, &d, sizeof(c));
    /* every shorter prefix is refused */
    for (size_t n = 0; n < b.len; n++) {
        assert_int_equal(raft_conf_decode(b.data, n, &d), ERR_CORRUPT);
    }
    /* counts past the maximum are refused before any id is read */
    uint8_t big[8] = {0, 0, 0, RAFT_MEMBERS_MAX + 1, 0, 0, 0, 0};
    assert_int_equal(raft_conf_decode(big, sizeof(big), &d), ERR_CORRUPT);
    big[3] = 0;
    big[7] = RAFT_MEMBERS_MAX + 1;
    assert_int_equal(raft_conf_decode(big, sizeof(big), &d), ERR_CORRUPT);
    buf_free(&b);
}

int raft_codec_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_message_type_round_trips),
        cmocka_unit_test(truncated_and_flipped_input_is_refused),
        cmocka_unit_test(bad_magic_version_counts_and_lengths),
        cmocka_unit_test(conf_change_round_trips_and_rejects_garbage),
        cmocka_unit_test(membership_bytes_round_trip_and_refuse_garbage),
    };
    return cmocka_run_group_tests_name("raft_codec", tests, NULL, NULL);
}

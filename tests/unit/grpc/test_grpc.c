/*
 * test_grpc.c - unit tests for the pure parts of registry/grpc.
 *
 * Goal: the byte-level pieces behave at their edges: grpc-timeout parsing,
 * message deframing across every possible split of the input, the size
 * limit at the bound and one past it, grpc-message percent-encoding, the
 * non-recursive protobuf depth check, the decode arena and its cap, the
 * preface match and the status tables. Method: drive each function with
 * crafted bytes, compare with values computed independently in the test.
 * No sockets, no loop.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/err.h"
#include "proto/rpc.pb-c.h"
#include "registry/grpc/grpc_int.h"

/* ---------------------------------------------------- grpc-timeout */

static uint64_t timeout_of(const char *s)
{
    uint64_t ms = 12345;
    int rc = grpc__timeout_parse(s, strlen(s), &ms);
    assert_int_equal(rc, 0);
    return ms;
}

static void timeout_units(void **state)
{
    (void)state;
    assert_int_equal(timeout_of("1H"), 3600000);
    assert_int_equal(timeout_of("2M"), 120000);
    assert_int_equal(timeout_of("5S"), 5000);
    assert_int_equal(timeout_of("250m"), 250);
    assert_int_equal(timeout_of("1500u"), 2); /* rounded up */
    assert_int_equal(timeout_of("1000u"), 1);
    assert_int_equal(timeout_of("1n"), 1); /* never rounds to 0 */
    assert_int_equal(timeout_of("0S"), 0); /* already expired */
    assert_int_equal(timeout_of("99999999H"), 99999999ULL * 3600000ULL);
}

static void timeout_malformed(void **state)
{
    static const char *bad[] = {
        "", "S", "10", "10s", "10x", "-1S", "1 S", "123456789S", "1.5S", "S10",
    };
    size_t i;
    uint64_t ms = 7;

    (void)state;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(grpc__timeout_parse(bad[i], strlen(bad[i]), &ms),
                         ERR_INVALID);
    }
    assert_int_equal(ms, 7); /* untouched on error */
}

/* ------------------------------------------------------- deframer */

struct got {
    size_t count;
    uint8_t flags[16];
    size_t lens[16];
    uint8_t data[16][256];
    int stop_after; /* return 1 after this many messages, 0: never */
};

static int collect(void *ctx, int compressed, const uint8_t *data, size_t len)
{
    struct got *g = ctx;

    assert_true(g->count < 16);
    assert_true(len <= 256);
    g->flags[g->count] = (uint8_t)compressed;
    g->lens[g->count] = len;
    if (len > 0) {
        memcpy(g->data[g->count], data, len);
    }
    g->count++;
    return g->stop_after != 0 && (int)g->count >= g->stop_after ? 1 : 0;
}

/* Three messages: 3 bytes, empty, 200 bytes. */
static size_t build_stream(uint8_t *out)
{
    size_t n = 0;
    size_t i;

    out[n++] = 0;
    be32_put(out + n, 3);
    n += 4;
    memcpy(out + n, "abc", 3);
    n += 3;
    out[n++] = 0;
    be32_put(out + n, 0);
    n += 4;
    out[n++] = 1; /* compressed flag passes through */
    be32_put(out + n, 200);
    n += 4;
    for (i = 0; i < 200; i++) {
        out[n++] = (uint8_t)(i * 13);
    }
    return n;
}

static void check_three(const struct got *g)
{
    size_t i;

    assert_int_equal(g->count, 3);
    assert_int_equal(g->lens[0], 3);
    assert_memory_equal(g->data[0], "abc", 3);
    assert_int_equal(g->flags[0], 0);
    assert_int_equal(g->lens[1], 0);
    assert_int_equal(g->lens[2], 200);
    assert_int_equal(g->flags[2], 1);
    for (i = 0; i < 200; i++) {
        assert_int_equal(g->data[2][i], (uint8_t)(i * 13));
    }
}

static void deframe_every_split(void **state)
{
    uint8_t in[300];
    size_t n = build_stream(in);
    size_t a;
    size_t b;

    (void)state;
    /* Every pair of cut points: three chunks of every size. */
    for (a = 0; a <= n; a++) {
        for (b = a; b <= n; b++) {
            struct grpc_deframer d;
            struct got g;
            uint32_t big = 0;
            memset(&g, 0, sizeof(g));
            grpc__deframer_init(&d, 1000);
            assert_int_equal(grpc__deframer_feed(&d, in, a, collect, &g, &big),
                             0);
            assert_int_equal(
                grpc__deframer_feed(&d, in + a, b - a, collect, &g, &big), 0);
            assert_int_equal(
                grpc__deframer_feed(&d, in + b, n - b, collect, &g, &big), 0);
            check_three(&g);
            assert_true(grpc__deframer_idle(&d));
            assert_int_equal(grpc__deframer_held(&d), 0);
            grpc__deframer_free(&d);
        }
    }
}

static void deframe_byte_by_byte(void **state)
{
    uint8_t in[300];
    size_t n = build_stream(in);
    struct grpc_deframer d;
    struct got g;
    uint32_t big = 0;
    size_t i;

    (void)state;
    memset(&g, 0, sizeof(g));
    grpc__deframer_init(&d, 1000);
    for (i = 0; i < n; i++) {
        assert_int_equal(grpc__deframer_feed(&d, in + i, 1, collect, &g, &big),
                         0);
        if (i == 10) {
            /* Inside the second header: a partial message is pending. */
            assert_false(grpc__deframer_idle(&d));
        }
    }
    check_three(&g);
    grpc__deframer_free(&d);
}

static void deframe_limit_at_and_past(void **state)
{
    uint8_t in[5 + 100];
    struct grpc_deframer d;
    struct got g;
    uint32_t big = 0;

    (void)state;
    memset(in, 'x', sizeof(in));
    in[0] = 0;
    be32_put(in + 1, 100);
    /* At the bound: accepted, split or whole. */
    memset(&g, 0, sizeof(g));
    grpc__deframer_init(&d, 100);
    assert_int_equal(grpc__deframer_feed(&d, in, 50, collect, &g, &big), 0);
    assert_int_equal(grpc__deframer_feed(&d, in + 50, 55, collect, &g, &big),
                     0);
    assert_int_equal(g.count, 1);
    assert_int_equal(g.lens[0], 100);
    grpc__deframer_free(&d);
    /* One past: refused from the header alone, nothing delivered. */
    memset(&g, 0, sizeof(g));
    grpc__deframer_init(&d, 99);
    assert_int_equal(grpc__deframer_feed(&d, in, 3, collect, &g, &big), 0);
    assert_int_equal(grpc__deframer_feed(&d, in + 3, 2, collect, &g, &big),
                     ERR_LIMIT);
    assert_int_equal(big, 100);
    assert_int_equal(g.count, 0);
    assert_int_equal(grpc__deframer_held(&d), 0); /* nothing buffered */
    grpc__deframer_free(&d);
    /* A 4 GiB declaration does not allocate. */
    memset(&g, 0, sizeof(g));
    grpc__deframer_init(&d, 1 << 20);
    be32_put(in + 1, 0xffffffffu);
    assert_int_equal(grpc__deframer_feed(&d, in, sizeof(in), collect, &g, &big),
                     ERR_LIMIT);
    assert_int_equal(big, 0xffffffffu);
    grpc__deframer_free(&d);
}

static void deframe_stop_from_callback(void **state)
{
    uint8_t in[300];
    size_t n = build_stream(in);
    struct grpc_deframer d;
    struct got g;
    uint32_t big = 0;

    (void)state;
    memset(&g, 0, sizeof(g));
    g.stop_after = 1;
    grpc__deframer_init(&d, 1000);
    assert_int_equal(grpc__deframer_feed(&d, in, n, collect, &g, &big), 1);
    assert_int_equal(g.count, 1); /* nothing after the stop */
    grpc__deframer_free(&d);
}

static void deframe_held_counts_partial_body(void **state)
{
    uint8_t in[5 + 40];
    struct grpc_deframer d;
    struct got g;
    uint32_t big = 0;

    (void)state;
    memset(&g, 0, sizeof(g));
    memset(in, 'z', sizeof(in));
    in[0] = 0;
    be32_put(in + 1, 40);
    grpc__deframer_init(&d, 1000);
    assert_int_equal(grpc__deframer_feed(&d, in, 25, collect, &g, &big), 0);
    assert_int_equal(grpc__deframer_held(&d), 20);
    grpc__deframer_reset(&d);
    assert_true(grpc__deframer_idle(&d));
    assert_int_equal(grpc__deframer_held(&d), 0);
    grpc__deframer_free(&d);
}

/* --------------------------------------------------- percent-encode */

static void percent_encoding(void **state)
{
    struct buf b;
    const char in[] = "ok: 100% \"fine\"\n\xc3\xa9~\x7f";
    const char want[] = "ok: 100%25 \"fine\"%0A%C3%A9~%7F";

    (void)state;
    buf_init(&b, 0);
    assert_int_equal(grpc__percent_encode(&b, in, sizeof(in) - 1), 0);
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.data, want, b.len);
    buf_reset(&b);
    assert_int_equal(grpc__percent_encode(&b, "", 0), 0);
    assert_int_equal(b.len, 0);
    buf_free(&b);
    /* The cap holds: 10 bytes that need 30 do not fit in 20. */
    buf_init(&b, 20);
    assert_int_equal(grpc__percent_encode(&b, "\n\n\n\n\n\n\n\n\n\n", 10),
                     ERR_LIMIT);
    buf_free(&b);
}

/* -------------------------------------------------- protobuf depth */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    return varint_put(p, v);
}

/* TxnRequest{success:[RequestOp{request_txn: ...}]} nested `levels` deep,
 * built inside out into buf (returns the length at the front). */
static size_t nested_txn(uint8_t *buf, size_t cap, unsigned levels)
{
    uint8_t tmp[16];
    size_t len = 0;
    unsigned i;

    /* Build from the innermost message outwards at the end of buf. */
    for (i = 0; i < levels; i++) {
        size_t k;
        /* RequestOp.request_txn = field 4, wire type 2 */
        k = put_varint(tmp + 1, len);
        tmp[0] = 0x22;
        assert_true(len + k + 1 <= cap);
        memmove(buf + k + 1, buf, len);
        memcpy(buf, tmp, k + 1);
        len += k + 1;
        /* TxnRequest.success = field 2, wire type 2 */
        k = put_varint(tmp + 1, len);
        tmp[0] = 0x12;
        assert_true(len + k + 1 <= cap);
        memmove(buf + k + 1, buf, len);
        memcpy(buf, tmp, k + 1);
        len += k + 1;
    }
    return len;
}

static void depth_check_bounds(void **state)
{
    static uint8_t buf[8192];
    const ProtobufCMessageDescriptor *d =
        &etcdserverpb__txn_request__descriptor;
    size_t n;

    (void)state;
    /* 10 txn levels = 20 message levels below the top. */
    n = nested_txn(buf, sizeof(buf), 10);
    assert_int_equal(grpc__pb_depth_check(d, buf, n, 20), 0);
    assert_int_equal(grpc__pb_depth_check(d, buf, n, 19), ERR_LIMIT);
    n = nested_txn(buf, sizeof(buf), 1000);
    assert_int_equal(grpc__pb_depth_check(d, buf, n, GRPC_PB_DEPTH_MAX),
                     ERR_LIMIT);
    /* An empty message is fine. */
    assert_int_equal(grpc__pb_depth_check(d, buf, 0, 0), 0);
}

static void depth_check_malformed(void **state)
{
    const ProtobufCMessageDescriptor *d =
        &etcdserverpb__put_request__descriptor;
    /* key (field 1, bytes) claims 5 bytes, 2 present */
    static const uint8_t overlong[] = {0x0a, 0x05, 'a', 'b'};
    /* a group start (wire type 3) */
    static const uint8_t group[] = {0x0b, 0x00};
    /* a varint that never ends */
    static const uint8_t endless[] = {0x18, 0xff, 0xff, 0xff};
    /* field number 0 */
    static const uint8_t zero[] = {0x00, 0x01};
    /* fine: key "ab", lease 7, unknown fixed32 field 9 */
    static const uint8_t good[] = {0x0a, 0x02, 'a', 'b', 0x18, 0x07,
                                   0x4d, 1,    2,   3,   4};

    (void)state;
    assert_int_equal(grpc__pb_depth_check(d, overlong, sizeof(overlong), 4),
                     ERR_BAD_REQUEST);
    assert_int_equal(grpc__pb_depth_check(d, group, sizeof(group), 4),
                     ERR_BAD_REQUEST);
    assert_int_equal(grpc__pb_depth_check(d, endless, sizeof(endless), 4),
                     ERR_BAD_REQUEST);
    assert_int_equal(grpc__pb_depth_check(d, zero, sizeof(zero), 4),
                     ERR_BAD_REQUEST);
    assert_int_equal(grpc__pb_depth_check(d, good, sizeof(good), 4), 0);
}

static void depth_check_child_overruns_parent(void **state)
{
    /* TxnRequest.success (len 3) holding RequestOp.request_txn (len 5):
     * the child claims more than its parent holds. */
    static const uint8_t bad[] = {0x12, 0x03, 0x22, 0x05,
                                  0x00, 0x00, 0x00, 0x00};
    (void)state;
    assert_int_equal(
        grpc__pb_depth_check(&etcdserverpb__txn_request__descriptor, bad,
                             sizeof(bad), 10),
        ERR_BAD_REQUEST);
}

/* ------------------------------------------------------------ arena */

static void arena_decodes_and_caps(void **state)
{
    struct grpc_arena a;
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    Etcdserverpb__PutRequest *out;
    static uint8_t value[20000];
    static uint8_t wire[21000];
    size_t n;

    (void)state;
    memset(value, 'v', sizeof(value));
    req.key.data = (uint8_t *)"key";
    req.key.len = 3;
    req.value.data = value;
    req.value.len = sizeof(value);
    req.lease = 99;
    n = protobuf_c_message_pack(&req.base, wire);
    grpc__arena_init(&a, 1 << 20);
    out = (Etcdserverpb__PutRequest *)protobuf_c_message_unpack(
        &etcdserverpb__put_request__descriptor, &a.pa, n, wire);
    assert_non_null(out);
    assert_int_equal(out->lease, 99);
    assert_int_equal(out->value.len, sizeof(value));
    assert_memory_equal(out->value.data, value, sizeof(value));
    assert_true(a.heap_bytes >= sizeof(value)); /* spilled past inline */
    grpc__arena_reset(&a);
    assert_int_equal(a.heap_bytes, 0);
    /* Cap below the value size: decode fails cleanly. */
    grpc__arena_init(&a, 8192);
    out = (Etcdserverpb__PutRequest *)protobuf_c_message_unpack(
        &etcdserverpb__put_request__descriptor, &a.pa, n, wire);
    assert_null(out);
    assert_true(a.failed);
    grpc__arena_reset(&a);
}

static void arena_alignment(void **state)
{
    struct grpc_arena a;
    size_t i;

    (void)state;
    grpc__arena_init(&a, 1 << 20);
    for (i = 1; i < 300; i += 7) {
        void *p = grpc__arena_alloc(&a, i);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 0xab, i);
    }
    grpc__arena_reset(&a);
}

static void arena_alloc_failure(void **state)
{
    struct grpc_arena a;

    (void)state;
    grpc__arena_init(&a, 1 << 20);
    assert_non_null(grpc__arena_alloc(&a, 100)); /* inline: no malloc */
    mem_fail_after(1, 0);
    assert_null(grpc__arena_alloc(&a, 5000));
    mem_fail_after(0, 0);
    assert_true(a.failed);
    grpc__arena_reset(&a);
}

/* ---------------------------------------------------- small tables */

static void preface(void **state)
{
    const char p[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nmore";

    (void)state;
    assert_int_equal(grpc_preface_match(p, 3), 0);
    assert_int_equal(grpc_preface_match(p, 23), 0);
    assert_int_equal(grpc_preface_match(p, 24), 1);
    assert_int_equal(grpc_preface_match(p, sizeof(p) - 1), 1);
    assert_int_equal(grpc_preface_match("GET / HTTP/1.1\r\n", 16), -1);
    assert_int_equal(grpc_preface_match("PRX", 3), -1);
}

static void status_tables(void **state)
{
    (void)state;
    assert_int_equal(grpc_code_from_err(0), GRPC_OK);
    assert_int_equal(grpc_code_from_err(ERR_KEY_NOT_PROVIDED),
                     GRPC_INVALID_ARGUMENT);
    assert_int_equal(grpc_code_from_err(ERR_COMPACTED), GRPC_OUT_OF_RANGE);
    assert_int_equal(grpc_code_from_err(ERR_NOSPACE), GRPC_RESOURCE_EXHAUSTED);
    assert_int_equal(grpc_code_from_err(ERR_LEASE_NOT_FOUND), GRPC_NOT_FOUND);
    assert_int_equal(grpc_code_from_err(ERR_NOT_LEADER),
                     GRPC_FAILED_PRECONDITION);
    assert_int_equal(grpc_code_from_err(ERR_PERMISSION_DENIED),
                     GRPC_PERMISSION_DENIED);
    assert_int_equal(grpc_code_from_err(ERR_INVALID_AUTH_TOKEN),
                     GRPC_UNAUTHENTICATED);
    assert_int_equal(grpc_code_from_err(ERR_NO_LEADER), GRPC_UNAVAILABLE);
    assert_int_equal(grpc_code_from_err(ERR_CORRUPT_CLUSTER), GRPC_DATA_LOSS);
    assert_int_equal(grpc_code_from_err(-EPIPE), GRPC_UNKNOWN);
    assert_int_equal(grpc_code_http_status(GRPC_FAILED_PRECONDITION), 412);
    assert_int_equal(grpc_code_http_status(GRPC_RESOURCE_EXHAUSTED), 429);
    assert_int_equal(grpc_code_http_status(GRPC_UNAVAILABLE), 503);
    assert_int_equal(grpc_code_http_status(GRPC_OUT_OF_RANGE), 400);
    assert_string_equal(grpc_code_name(GRPC_UNIMPLEMENTED), "UNIMPLEMENTED");
    assert_string_equal(grpc_code_name((enum grpc_code)99), "UNKNOWN");
}

static void limits_defaults(void **state)
{
    struct grpc_limits l;

    (void)state;
    grpc_limits_init(&l, NULL);
    assert_int_equal(l.recv_msg_bytes_max, 1572864 + 512 * 1024);
    assert_int_equal(l.streams_per_conn_max,
                     limits_default(LIMIT_STREAMS_PER_CONN));
    assert_int_equal(l.header_bytes_max, limits_default(LIMIT_HEADER_BYTES));
    assert_int_equal(l.conn_out_bytes_max,
                     limits_default(LIMIT_CONN_OUT_BYTES));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(timeout_units),
        cmocka_unit_test(timeout_malformed),
        cmocka_unit_test(deframe_every_split),
        cmocka_unit_test(deframe_byte_by_byte),
        cmocka_unit_test(deframe_limit_at_and_past),
        cmocka_unit_test(deframe_stop_from_callback),
        cmocka_unit_test(deframe_held_counts_partial_body),
        cmocka_unit_test(percent_encoding),
        cmocka_unit_test(depth_check_bounds),
        cmocka_unit_test(depth_check_malformed),
        cmocka_unit_test(depth_check_child_overruns_parent),
        cmocka_unit_test(arena_decodes_and_caps),
        cmocka_unit_test(arena_alignment),
        cmocka_unit_test(arena_alloc_failure),
        cmocka_unit_test(preface),
        cmocka_unit_test(status_tables),
        cmocka_unit_test(limits_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

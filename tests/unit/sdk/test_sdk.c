/*
 * test_sdk.c - libcairn's handling of bad server answers and bad
 * arguments: errors, never crashes or leaks.
 *
 * Method: valid responses are packed with the generated protobuf-c code,
 * then every truncation of them and many seeded random mutations are fed
 * to each decoder; the result must be 0 or CAIRN_E_BAD_RESPONSE, and a
 * successful result is freed (run under ASan or valgrind to see leaks and
 * out-of-bounds reads). Answers that parse but lack a part the API
 * promises (an event without its kv, a txn response op with no case, a
 * nil member) must be CAIRN_E_BAD_RESPONSE. Bad options and requests are
 * refused with CAIRN_E_INVALID before any I/O.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/kv.pb-c.h"
#include "proto/rpc.pb-c.h"
#include "sdk/client_int.h"

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
    *len = protobuf_c_message_get_packed_size(m);
    uint8_t *p = malloc(*len + 1);
    assert_non_null(p);
    protobuf_c_message_pack(m, p);
    return p;
}

static uint8_t *range_resp_bytes(size_t *len)
{
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    h.cluster_id = 7;
    h.revision = 42;
    Mvccpb__KeyValue kv[2] = {MVCCPB__KEY_VALUE__INIT, MVCCPB__KEY_VALUE__INIT};
    Mvccpb__KeyValue *kvs[2] = {&kv[0], &kv[1]};
    kv[0].key.data = (uint8_t *)"foo";
    kv[0].key.len = 3;
    kv[0].value.data = (uint8_t *)"bar";
    kv[0].value.len = 3;
    kv[0].mod_revision = 5;
    kv[1].key.data = (uint8_t *)"zed";
    kv[1].key.len = 3;
    Etcdserverpb__RangeResponse r = ETCDSERVERPB__RANGE_RESPONSE__INIT;
    r.header = &h;
    r.n_kvs = 2;
    r.kvs = kvs;
    r.count = 2;
    return pack(&r.base, len);
}

static void range_decodes(void **state)
{
    (void)state;
    size_t len;
    uint8_t *p = range_resp_bytes(&len);
    struct cairn_range_resp r;
    assert_int_equal(cairn__range_resp_decode(p, len, &r), 0);
    assert_int_equal(r.header.revision, 42);
    assert_int_equal(r.kvs_count, 2);
    assert_memory_equal(r.kvs[0].key, "foo", 3);
    assert_memory_equal(r.kvs[0].value, "bar", 3);
    assert_int_equal(r.kvs[0].mod_revision, 5);
    assert_int_equal(r.count, 2);
    cairn_range_resp_free(&r);
    cairn_range_resp_free(&r); /* safe twice: zeroed */
    free(p);
}

/* Every proper prefix of a valid message: 0 or BAD_RESPONSE. */
static void truncations_are_errors_or_fine(void **state)
{
    (void)state;
    size_t len;
    uint8_t *p = range_resp_bytes(&len);
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n + 1);
        memcpy(cut, p, n);
        struct cairn_range_resp r;
        int rc = cairn__range_resp_decode(cut, n, &r);
        assert_true(rc == 0 || rc == CAIRN_E_BAD_RESPONSE);
        cairn_range_resp_free(&r);
        struct cairn_txn_resp t;
        rc = cairn__txn_resp_decode(cut, n, &t);
        assert_true(rc == 0 || rc == CAIRN_E_BAD_RESPONSE);
        cairn_txn_resp_free(&t);
        free(cut);
    }
    free(p);
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random bytes and mutated valid messages to every decoder. */
static void random_input_never_crashes(void **state)
{
    (void)state;
    uint64_t seed = 0x5ca1ab1e;
    size_t vlen;
    uint8_t *valid = range_resp_bytes(&vlen);
    uint8_t buf[256];
    unsigned ok = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n;
        if (i % 2 == 0) {
            n = next(&seed) % sizeof(buf);
            for (size_t k = 0; k < n; k++) {
                buf[k] = (uint8_t)next(&seed);
            }
        } else {
            n = vlen;
            memcpy(buf, valid, vlen);
            for (int k = 0; k < 3; k++) {
                buf[next(&seed) % vlen] = (uint8_t)next(&seed);
            }
        }
        struct cairn_range_resp r;
        struct cairn_txn_resp t;
        struct cairn_watch_resp w;
        struct cairn_status_resp s;
        struct cairn_member_list_resp m;
        int rc[5] = {
            cairn__range_resp_decode(buf, n, &r),
            cairn__txn_resp_decode(buf, n, &t),
            cairn__watch_resp_decode(buf, n, &w),
            cairn__status_resp_decode(buf, n, &s),
            cairn__member_list_resp_decode(buf, n, &m),
        };
        for (int k = 0; k < 5; k++) {
            assert_true(rc[k] == 0 || rc[k] == CAIRN_E_BAD_RESPONSE);
            ok += rc[k] == 0;
        }
        /* Read what decoded, so ASan sees any bad pointer. */
        for (size_t k = 0; rc[0] == 0 && k < r.kvs_count; k++) {
            volatile uint8_t sink = r.kvs[k].key_len ? r.kvs[k].key[0] : 0;
            (void)sink;
        }
        for (size_t k = 0; rc[2] == 0 && k < w.events_count; k++) {
            volatile size_t sink = w.events[k].kv.value_len;
            (void)sink;
        }
        cairn_range_resp_free(&r);
        cairn_txn_resp_free(&t);
        cairn_watch_resp_free(&w);
        cairn_status_resp_free(&s);
        cairn_member_list_resp_free(&m);
    }
    assert_true(ok > 0); /* the mutations do not all fail */
    free(valid);
}

static void event_without_kv_is_bad(void **state)
{
    (void)state;
    Mvccpb__Event ev = MVCCPB__EVENT__INIT; /* no kv */
    Mvccpb__Event *evs[1] = {&ev};
    Etcdserverpb__WatchResponse wr = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    wr.n_events = 1;
    wr.events = evs;
    size_t len;
    uint8_t *p = pack(&wr.base, &len);
    struct cairn_watch_resp w;
    assert_int_equal(cairn__watch_resp_decode(p, len, &w),
                     CAIRN_E_BAD_RESPONSE);
    assert_null(w.events);
    free(p);
    /* An unknown event type too. */
    Mvccpb__KeyValue kv = MVCCPB__KEY_VALUE__INIT;
    ev.kv = &kv;
    ev.type = (Mvccpb__Event__EventType)7;
    p = pack(&wr.base, &len);
    assert_int_equal(cairn__watch_resp_decode(p, len, &w),
                     CAIRN_E_BAD_RESPONSE);
    free(p);
}

static void txn_op_without_case_is_bad(void **state)
{
    (void)state;
    Etcdserverpb__ResponseOp op = ETCDSERVERPB__RESPONSE_OP__INIT;
    Etcdserverpb__ResponseOp *ops[1] = {&op};
    Etcdserverpb__TxnResponse tr = ETCDSERVERPB__TXN_RESPONSE__INIT;
    tr.n_responses = 1;
    tr.responses = ops;
    tr.succeeded = 1;
    size_t len;
    uint8_t *p = pack(&tr.base, &len);
    struct cairn_txn_resp t;
    assert_int_equal(cairn__txn_resp_decode(p, len, &t), CAIRN_E_BAD_RESPONSE);
    free(p);
    Etcdserverpb__PutResponse put = ETCDSERVERPB__PUT_RESPONSE__INIT;
    op.response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
    op.response_put = &put;
    p = pack(&tr.base, &len);
    assert_int_equal(cairn__txn_resp_decode(p, len, &t), 0);
    assert_true(t.succeeded);
    assert_int_equal(t.responses_count, 1);
    assert_int_equal(t.responses[0].type, CAIRN_OP_PUT);
    cairn_txn_resp_free(&t);
    free(p);
}

static void prefix_end_cases(void **state)
{
    (void)state;
    uint8_t out[8];
    assert_int_equal(cairn_prefix_end((const uint8_t *)"abc", 3, out), 3);
    assert_memory_equal(out, "abd", 3);
    const uint8_t ff[3] = {'a', 0xff, 0xff};
    assert_int_equal(cairn_prefix_end(ff, 3, out), 1);
    assert_int_equal(out[0], 'b');
    const uint8_t all[2] = {0xff, 0xff};
    assert_int_equal(cairn_prefix_end(all, 2, out), 1);
    assert_int_equal(out[0], 0);
}

static void bad_options_and_requests_are_refused(void **state)
{
    (void)state;
    struct cairn_options o;
    struct cairn_client *c = NULL;
    cairn_options_init(&o);
    assert_int_equal(cairn_client_new(&o, &c), CAIRN_E_INVALID);
    const char *tls_ep[] = {"https://127.0.0.1:2379"};
    o.endpoints = tls_ep;
    o.endpoints_count = 1;
    o.ca_file = "/nonexistent/ca.crt"; /* TLS files are read at once */
    assert_int_equal(cairn_client_new(&o, &c), CAIRN_E_INVALID);
    o.ca_file = NULL;
    o.cert_file = "/nonexistent/client.crt"; /* and without key_file */
    assert_int_equal(cairn_client_new(&o, &c), CAIRN_E_INVALID);
    o.cert_file = NULL;
    assert_int_equal(cairn_client_new(&o, &c), 0); /* https: TLS */
    cairn_client_free(c);
    c = NULL;
    const char *nop[] = {"127.0.0.1"};
    o.endpoints = nop;
    assert_int_equal(cairn_client_new(&o, &c), CAIRN_E_INVALID);
    const char *good[] = {"http://127.0.0.1:1"};
    o.endpoints = good;
    assert_int_equal(cairn_client_new(&o, &c), 0);
    struct cairn_range_req rq = {0}; /* empty key */
    struct cairn_range_resp rr;
    assert_int_equal(cairn_range(c, &rq, 0, &rr), CAIRN_E_INVALID);
    struct cairn_put_req pq = {0};
    struct cairn_put_resp pr;
    assert_int_equal(cairn_put(c, &pq, 0, &pr), CAIRN_E_INVALID);
    struct cairn_compare cmp = {0}; /* no key */
    struct cairn_txn_req tq = {&cmp, 1, NULL, 0, NULL, 0};
    struct cairn_txn_resp tr;
    assert_int_equal(cairn_txn(c, &tq, 0, &tr), CAIRN_E_INVALID);
    struct cairn_watch_req wq = {0};
    struct cairn_watch *w;
    assert_int_equal(cairn_watch_open(c, &wq, 0, &w), CAIRN_E_INVALID);
    assert_string_equal(cairn_strerror(CAIRN_E_BAD_RESPONSE),
                        "malformed answer from the server");
    cairn_client_free(c);
}

/* The admin, auth, lock and election calls refuse bad arguments before
 * any I/O (the client's only endpoint is unreachable: an attempt to send
 * would be UNAVAILABLE or TIMEOUT, not INVALID). */
static void admin_calls_refuse_bad_arguments(void **state)
{
    (void)state;
    struct cairn_options o;
    struct cairn_client *c = NULL;
    cairn_options_init(&o);
    const char *ep[] = {"127.0.0.1:1"};
    o.endpoints = ep;
    o.endpoints_count = 1;
    assert_int_equal(cairn_client_new(&o, &c), 0);
    struct cairn_header h;
    struct cairn_hashkv_resp hk;
    struct cairn_alarm_resp ar;
    struct cairn_member_add_resp ma;
    struct cairn_member_list_resp ml;
    struct cairn_names_resp nr;
    struct cairn_role_resp rr;
    struct cairn_lock_resp lr;
    struct cairn_leader_key lk;
    struct cairn_range_resp gr;
    bool on;
    uint64_t arev;
    assert_int_equal(cairn_compact(NULL, 1, false, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_hashkv(c, 0, 0, NULL), CAIRN_E_INVALID);
    assert_int_equal(cairn_hashkv(NULL, 0, 0, &hk), CAIRN_E_INVALID);
    assert_int_equal(cairn_defragment(NULL, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_move_leader(NULL, 1, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_alarm_list(c, 0, NULL), CAIRN_E_INVALID);
    assert_int_equal(cairn_alarm_disarm(c, NULL, 0, &ar), CAIRN_E_INVALID);
    assert_int_equal(cairn_snapshot(c, -1, 0, NULL), CAIRN_E_INVALID);
    const char *none[] = {""};
    assert_int_equal(cairn_member_add(c, NULL, 0, false, 0, &ma),
                     CAIRN_E_INVALID);
    assert_int_equal(cairn_member_add(c, none, 1, false, 0, &ma),
                     CAIRN_E_INVALID);
    assert_int_equal(cairn_member_update(c, 1, none, 1, 0, &ml),
                     CAIRN_E_INVALID);
    assert_int_equal(cairn_member_remove(c, 1, 0, NULL), CAIRN_E_INVALID);
    assert_int_equal(cairn_member_promote(NULL, 1, 0, &ml), CAIRN_E_INVALID);
    assert_int_equal(cairn_auth_enable(NULL, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_auth_disable(NULL, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_auth_status(c, 0, NULL, &arev, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_auth_status(c, 0, &on, NULL, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_user_add(c, "", "pw", 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_user_add(c, NULL, NULL, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_user_delete(c, "", 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_user_passwd(c, "u", NULL, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_user_grant_role(c, "u", "", 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_user_revoke_role(c, "", "r", 0, &h),
                     CAIRN_E_INVALID);
    assert_int_equal(cairn_user_get(c, "", 0, &nr), CAIRN_E_INVALID);
    assert_int_equal(cairn_user_list(c, 0, NULL), CAIRN_E_INVALID);
    assert_int_equal(cairn_role_add(c, "", 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_role_delete(c, NULL, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_role_get(c, "", 0, &rr), CAIRN_E_INVALID);
    assert_int_equal(cairn_role_list(NULL, 0, &nr), CAIRN_E_INVALID);
    struct cairn_permission p = {
        .type = 7, .key = (const uint8_t *)"k", .key_len = 1};
    assert_int_equal(cairn_role_grant_permission(c, "r", &p, 0, &h),
                     CAIRN_E_INVALID);
    p.type = CAIRN_PERM_READ;
    p.range_end_len = 1; /* no bytes behind it */
    assert_int_equal(cairn_role_grant_permission(c, "r", &p, 0, &h),
                     CAIRN_E_INVALID);
    assert_int_equal(
        cairn_role_revoke_permission(c, "r", NULL, 2, NULL, 0, 0, &h),
        CAIRN_E_INVALID);
    assert_int_equal(cairn_lock(c, "", 1, 0, &lr), CAIRN_E_INVALID);
    assert_int_equal(cairn_unlock(c, NULL, 0, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_campaign(c, "e", 1, NULL, 3, 0, &lk),
                     CAIRN_E_INVALID);
    assert_int_equal(cairn_proclaim(c, NULL, NULL, 0, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_resign(c, NULL, 0, &h), CAIRN_E_INVALID);
    assert_int_equal(cairn_election_leader(c, "", 0, &gr), CAIRN_E_INVALID);
    assert_int_equal(cairn_election_observe(c, "e", NULL, NULL, 0),
                     CAIRN_E_INVALID);
    /* the frees take zeroed and NULL results */
    cairn_alarm_resp_free(NULL);
    cairn_member_add_resp_free(NULL);
    cairn_names_resp_free(NULL);
    cairn_role_resp_free(NULL);
    cairn_lock_resp_free(NULL);
    cairn_leader_key_free(NULL);
    assert_string_equal(cairn_strerror(CAIRN_E_IO),
                        "could not write the output");
    cairn_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(range_decodes),
        cmocka_unit_test(truncations_are_errors_or_fine),
        cmocka_unit_test(random_input_never_crashes),
        cmocka_unit_test(event_without_kv_is_bad),
        cmocka_unit_test(txn_op_without_case_is_bad),
        cmocka_unit_test(prefix_end_cases),
        cmocka_unit_test(bad_options_and_requests_are_refused),
        cmocka_unit_test(admin_calls_refuse_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

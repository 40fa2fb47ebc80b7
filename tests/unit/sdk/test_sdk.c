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
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>
#include <uv.h>

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

/* ----------------------------------------------- versioned options */

/* A caller built against an older cairn.h passes a struct that ends
 * before the TLS fields (struct_size CAIRN_OPTIONS_SIZE_MIN). It is
 * allocated at exactly that size, so a read past it is a heap overflow
 * under ASan; without ASan the same layout followed by 0xff bytes (a
 * garbage ca_file pointer, tls = true) shows whether the tail was read:
 * the client must come out with the defaults (no TLS at all). */
static void older_shorter_options_take_defaults(void **state)
{
    (void)state;
    const char *ep[] = {"127.0.0.1:1"};
    size_t n = CAIRN_OPTIONS_SIZE_MIN;
    assert_true(n < sizeof(struct cairn_options));
    /* f: the caller's fields, then 0xff where an older caller's struct
     * has ended (init_size must not write there) */
    struct cairn_options f;
    memset(&f, 0xff, sizeof(f));
    cairn_options_init_size(&f, n);
    assert_int_equal(f.struct_size, n);
    assert_int_equal(f.timeout_ms, 5000);
    assert_int_equal(((unsigned char *)&f)[n], 0xff);
    f.endpoints = ep;
    f.endpoints_count = 1;
    f.timeout_ms = 1234;
    void *o = malloc(n); /* exactly n bytes: ASan sees any read past */
    assert_non_null(o);
    memcpy(o, &f, n);
    struct cairn_client *c = NULL;
    char why[256] = "";
    assert_int_equal(cairn_client_new_ex(o, &c, why, sizeof(why)), 0);
    assert_string_equal(why, "");          /* untouched on success */
    assert_int_equal(c->timeout_ms, 1234); /* a field it has: read */
    assert_null(c->tls.ctx);               /* the ones it lacks: defaults */
    assert_false(c->tls.bare);
    cairn_client_free(c);

    c = NULL; /* the garbage tail (ca_file 0xff..., tls true) is not read */
    assert_int_equal(cairn_client_new(&f, &c), 0);
    assert_null(c->tls.ctx);
    assert_false(c->tls.bare);
    assert_int_equal(c->timeout_ms, 1234);
    cairn_client_free(c);

    uv_loop_t loop; /* the async face reads it the same way */
    assert_int_equal(uv_loop_init(&loop), 0);
    struct cairn_async *a = NULL;
    assert_int_equal(cairn_async_new(&loop, o, &a), 0);
    cairn_async_free(a);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(o);
}

static void expect_refused(const struct cairn_options *o, const char *needle)
{
    struct cairn_client *c = NULL;
    char why[512] = "";
    assert_int_equal(cairn_client_new_ex(o, &c, why, sizeof(why)),
                     CAIRN_E_INVALID);
    assert_null(c);
    if (strstr(why, needle) == NULL) {
        fail_msg("\"%s\" does not say \"%s\"", why, needle);
    }
    /* the plain call keeps the same reason for cairn_client_new_errmsg */
    assert_int_equal(cairn_client_new(o, &c), CAIRN_E_INVALID);
    assert_null(c);
    assert_string_equal(cairn_client_new_errmsg(), why);
}

/* Zero, too small, huge and misaligned sizes are garbage, not versions;
 * a newer caller's longer struct is fine while its unknown tail is zero. */
static void garbage_struct_sizes_are_refused(void **state)
{
    (void)state;
    const char *ep[] = {"127.0.0.1:1"};
    struct cairn_options o;
    cairn_options_init(&o);
    assert_int_equal(o.struct_size, sizeof(o));
    o.endpoints = ep;
    o.endpoints_count = 1;
    struct cairn_options z = o;
    z.struct_size = 0;
    expect_refused(&z, "struct_size is 0: set them up with cairn_options_init");
    size_t bad[] = {8,
                    CAIRN_OPTIONS_SIZE_MIN - 8,
                    sizeof(o) + 1,
                    CAIRN_OPTIONS_SIZE_MAX + 8,
                    (size_t)1 << 40,
                    SIZE_MAX};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        z.struct_size = bad[i];
        expect_refused(&z, "is not the size of any struct cairn_options");
    }
    /* init with a garbage size writes struct_size only (no overflow of
     * the caller's struct under ASan), and the client refuses it */
    cairn_options_init_size(&z, (size_t)1 << 20);
    assert_int_equal(z.struct_size, (size_t)1 << 20);
    expect_refused(&z, "is not the size of any");
    cairn_options_init_size(NULL, sizeof(o)); /* no-op */
    struct cairn_client *c = NULL;
    assert_int_equal(cairn_client_new_ex(NULL, &c, NULL, 0), CAIRN_E_INVALID);

    /* a newer header: 16 more bytes, zero, then one set */
    unsigned char buf[sizeof(o) + 16];
    cairn_options_init_size((struct cairn_options *)buf, sizeof(buf));
    struct cairn_options *n = (struct cairn_options *)buf;
    assert_int_equal(n->struct_size, sizeof(buf));
    assert_int_equal(n->dial_timeout_ms, 2000);
    n->endpoints = ep;
    n->endpoints_count = 1;
    assert_int_equal(cairn_client_new(n, &c), 0);
    cairn_client_free(c);
    buf[sizeof(o) + 3] = 1;
    expect_refused(n, "does not know");
    o.endpoints_count = 0;
    expect_refused(&o, "no endpoints");
    const char *junk[] = {"no-port"};
    o.endpoints = junk;
    o.endpoints_count = 1;
    expect_refused(&o, "endpoint \"no-port\" is not");
}

/* ------------------------------------------------- TLS file errors */

struct pki {
    char dir[64];
    char ca[96], key[96], other_key[96], junk[96], missing[96];
};

static void write_pem_key(const char *path, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

/* A self-signed P-256 certificate and its key, another key, and a file
 * that is not PEM, in a fresh temporary directory. */
static void pki_make(struct pki *p)
{
    snprintf(p->dir, sizeof(p->dir), "/tmp/unit-sdk-tls.XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    snprintf(p->ca, sizeof(p->ca), "%s/ca.pem", p->dir);
    snprintf(p->key, sizeof(p->key), "%s/ca.key", p->dir);
    snprintf(p->other_key, sizeof(p->other_key), "%s/other.key", p->dir);
    snprintf(p->junk, sizeof(p->junk), "%s/junk.pem", p->dir);
    snprintf(p->missing, sizeof(p->missing), "%s/missing.pem", p->dir);
    EVP_PKEY *k = EVP_EC_gen("P-256");
    EVP_PKEY *k2 = EVP_EC_gen("P-256");
    assert_non_null(k);
    assert_non_null(k2);
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
                               (const unsigned char *)"unit-sdk", -1, -1, 0);
    X509_set_issuer_name(x, nm);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    FILE *f = fopen(p->ca, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    write_pem_key(p->key, k);
    write_pem_key(p->other_key, k2);
    f = fopen(p->junk, "w");
    assert_non_null(f);
    fputs("this is not PEM\n", f);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(k);
    EVP_PKEY_free(k2);
}

static void pki_remove(struct pki *p)
{
    unlink(p->ca);
    unlink(p->key);
    unlink(p->other_key);
    unlink(p->junk);
    rmdir(p->dir);
}

/* The reason of cairn_client_new_ex (and the async face's) for bad TLS
 * files names the option, the file and the system's or OpenSSL's reason. */
static void tls_file_errors_name_file_and_reason(void **state)
{
    (void)state;
    struct pki p;
    pki_make(&p);
    const char *ep[] = {"https://127.0.0.1:1"};
    struct cairn_options o;
    cairn_options_init(&o);
    o.endpoints = ep;
    o.endpoints_count = 1;
    char want[512];

    o.ca_file = p.missing;
    snprintf(want, sizeof(want), "ca_file %s: No such file or directory",
             p.missing);
    expect_refused(&o, want);
    o.ca_file = p.junk;
    snprintf(want, sizeof(want),
             "ca_file %s: no PEM certificate in it "
             "(OpenSSL: ",
             p.junk);
    expect_refused(&o, want);
    o.ca_file = p.dir; /* a directory: opens, does not read */
    snprintf(want, sizeof(want), "ca_file %s: is a directory", p.dir);
    expect_refused(&o, want);
    o.ca_file = p.ca;

    o.cert_file = p.ca; /* no key */
    expect_refused(&o, "cert_file is given without key_file: both or neither");
    o.cert_file = NULL;
    o.key_file = p.key;
    expect_refused(&o, "key_file is given without cert_file");
    o.cert_file = p.missing;
    snprintf(want, sizeof(want), "cert_file %s: No such file", p.missing);
    expect_refused(&o, want);
    o.cert_file = p.junk;
    snprintf(want, sizeof(want),
             "cert_file %s: not a PEM certificate "
             "(OpenSSL: ",
             p.junk);
    expect_refused(&o, want);
    o.cert_file = p.ca;
    o.key_file = p.junk;
    snprintf(want, sizeof(want),
             "key_file %s: not a PEM private key "
             "(OpenSSL: ",
             p.junk);
    expect_refused(&o, want);
    o.key_file = p.other_key;
    snprintf(want, sizeof(want),
             "key_file %s: does not match cert_file %s "
             "(OpenSSL: key values mismatch)",
             p.other_key, p.ca);
    expect_refused(&o, want);

    uv_loop_t loop; /* the async face gives the same reason */
    assert_int_equal(uv_loop_init(&loop), 0);
    struct cairn_async *a = NULL;
    char why[512] = "";
    assert_int_equal(cairn_async_new_ex(&loop, &o, &a, why, sizeof(why)),
                     CAIRN_E_INVALID);
    assert_null(a);
    if (strstr(why, want) == NULL) {
        fail_msg("async: \"%s\" does not say \"%s\"", why, want);
    }
    assert_int_equal(uv_loop_close(&loop), 0);

    o.key_file = p.key; /* the good pair */
    struct cairn_client *c = NULL;
    why[0] = 0;
    assert_int_equal(cairn_client_new_ex(&o, &c, why, sizeof(why)), 0);
    assert_non_null(c->tls.ctx);
    cairn_client_free(c);
    pki_remove(&p);
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
        cmocka_unit_test(older_shorter_options_take_defaults),
        cmocka_unit_test(garbage_struct_sizes_are_refused),
        cmocka_unit_test(tls_file_errors_name_file_and_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

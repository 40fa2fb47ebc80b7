/*
 * test_discovery_srv.c - --discovery-srv: SRV names, answers, and the
 * initial cluster derived from them (registry/server/discovery_srv.h), and
 * the option checks around them (options.c).
 *
 * Goal: the pure parts are right at and past every bound, and name members
 * as etcd does. Method: DNS responses are built byte by byte here (RFC 1035
 * section 4.1: header, question, answer records; SRV data per RFC 2782) and
 * read by the real parser (glibc's ns_parserr underneath); the derivation
 * gets answers with resolved addresses and is checked on its exact text.
 * No sockets: the lookups themselves run in tests/integration/
 * discovery_srv.test against a real DNS server.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "base/err.h"
#include "registry/server/discovery_srv.h"
#include "registry/server/options.h"

static char msg[1024];

/* ------------------------------------------------------------ packets */

struct pkt {
    uint8_t b[65536];
    size_t len;
};

static void put8(struct pkt *p, unsigned v)
{
    assert_true(p->len < sizeof(p->b));
    p->b[p->len++] = (uint8_t)v;
}

static void put16(struct pkt *p, unsigned v)
{
    put8(p, v >> 8);
    put8(p, v & 0xff);
}

static void put32(struct pkt *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p, v & 0xffff);
}

/* A name in wire form, uncompressed ("." is the root). */
static void put_name(struct pkt *p, const char *name)
{
    const char *s = name;
    while (*s != '\0' && strcmp(s, ".") != 0) {
        const char *dot = strchr(s, '.');
        size_t n = dot != NULL ? (size_t)(dot - s) : strlen(s);
        assert_true(n > 0 && n < 64);
        put8(p, (unsigned)n);
        memcpy(p->b + p->len, s, n);
        p->len += n;
        s += n + (dot != NULL ? 1 : 0);
    }
    put8(p, 0);
}

/* Header and question; answers counted by the caller (ancount). */
static void begin(struct pkt *p, unsigned rcode, unsigned ancount,
                  const char *qname)
{
    p->len = 0;
    put16(p, 0x1234);         /* id */
    put16(p, 0x8180 | rcode); /* response, RD, RA */
    put16(p, 1);              /* qdcount */
    put16(p, ancount);        /* ancount */
    put16(p, 0);              /* nscount */
    put16(p, 0);              /* arcount */
    put_name(p, qname);
    put16(p, 33); /* SRV */
    put16(p, 1);  /* IN */
}

static void add_srv(struct pkt *p, unsigned prio, unsigned weight,
                    unsigned port, const char *target)
{
    size_t rdlen_at;
    put16(p, 0xc00c); /* owner: the question's name */
    put16(p, 33);
    put16(p, 1);
    put32(p, 60);
    rdlen_at = p->len;
    put16(p, 0);
    put16(p, prio);
    put16(p, weight);
    put16(p, port);
    put_name(p, target);
    size_t rdlen = p->len - rdlen_at - 2;
    p->b[rdlen_at] = (uint8_t)(rdlen >> 8);
    p->b[rdlen_at + 1] = (uint8_t)rdlen;
}

static void add_cname(struct pkt *p, const char *target)
{
    size_t rdlen_at;
    put16(p, 0xc00c);
    put16(p, 5); /* CNAME */
    put16(p, 1);
    put32(p, 60);
    rdlen_at = p->len;
    put16(p, 0);
    put_name(p, target);
    size_t rdlen = p->len - rdlen_at - 2;
    p->b[rdlen_at] = (uint8_t)(rdlen >> 8);
    p->b[rdlen_at + 1] = (uint8_t)rdlen;
}

static struct pkt pk;
static struct discovery_srv_answer ans;

static int parse_pkt(void)
{
    snprintf(ans.qname, sizeof(ans.qname), "_etcd-server._tcp.cairn.test");
    msg[0] = '\0';
    return discovery_srv_parse(pk.b, pk.len, &ans, msg, sizeof(msg));
}

/* ------------------------------------------------------------ names */

static void qnames_follow_etcd(void **state)
{
    char ssl[256];
    char plain[256];
    (void)state;
    assert_int_equal(discovery_srv_qnames("cairn.test", NULL, ssl, plain,
                                          sizeof(ssl), msg, sizeof(msg)),
                     0);
    assert_string_equal(ssl, "_etcd-server-ssl._tcp.cairn.test");
    assert_string_equal(plain, "_etcd-server._tcp.cairn.test");
    /* an absolute name is the same query; --discovery-srv-name suffixes */
    assert_int_equal(discovery_srv_qnames("cairn.test.", "blue", ssl, plain,
                                          sizeof(ssl), msg, sizeof(msg)),
                     0);
    assert_string_equal(ssl, "_etcd-server-ssl-blue._tcp.cairn.test");
    assert_string_equal(plain, "_etcd-server-blue._tcp.cairn.test");
    assert_int_equal(discovery_srv_qnames("cairn.test", "", ssl, plain,
                                          sizeof(ssl), msg, sizeof(msg)),
                     0);
    assert_string_equal(plain, "_etcd-server._tcp.cairn.test");
}

static void qnames_reject_bad_input_by_name(void **state)
{
    char ssl[256];
    char plain[256];
    const char *bad[] = {"", ".", "a..b", "bad,name", "sp ace", ".lead", "x/y"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msg[0] = '\0';
        assert_int_equal(discovery_srv_qnames(bad[i], NULL, ssl, plain,
                                              sizeof(ssl), msg, sizeof(msg)),
                         ERR_INVALID);
        assert_non_null(strstr(msg, "--discovery-srv"));
    }
    assert_int_equal(discovery_srv_qnames("cairn.test", "a.b", ssl, plain,
                                          sizeof(ssl), msg, sizeof(msg)),
                     ERR_INVALID);
    assert_non_null(strstr(msg, "--discovery-srv-name"));
}

static void qnames_bounds(void **state)
{
    char ssl[256];
    char plain[256];
    char sfx[64];
    char dom[300];
    (void)state;
    /* suffix: 46 bytes fit the 63-byte label, 47 do not */
    memset(sfx, 'a', DISCOVERY_SRV_SUFFIX_MAX);
    sfx[DISCOVERY_SRV_SUFFIX_MAX] = '\0';
    assert_int_equal(discovery_srv_qnames("x.test", sfx, ssl, plain,
                                          sizeof(ssl), msg, sizeof(msg)),
                     0);
    assert_int_equal(strchr(ssl, '.') - ssl, 63);
    sfx[DISCOVERY_SRV_SUFFIX_MAX] = 'a';
    sfx[DISCOVERY_SRV_SUFFIX_MAX + 1] = '\0';
    assert_int_equal(discovery_srv_qnames("x.test", sfx, ssl, plain,
                                          sizeof(ssl), msg, sizeof(msg)),
                     ERR_LIMIT);
    /* the whole SRV name: 253 bytes fit, 254 do not */
    size_t prefix = strlen("_etcd-server-ssl._tcp.");
    size_t dlen = DISCOVERY_SRV_HOST_MAX - prefix;
    for (size_t i = 0; i < dlen; i++) {
        dom[i] = (i % 50 == 49) ? '.' : 'd';
    }
    dom[dlen] = '\0';
    assert_int_equal(discovery_srv_qnames(dom, NULL, ssl, plain, sizeof(ssl),
                                          msg, sizeof(msg)),
                     0);
    assert_int_equal(strlen(ssl), DISCOVERY_SRV_HOST_MAX);
    dom[dlen] = 'd';
    dom[dlen + 1] = '\0';
    assert_int_equal(discovery_srv_qnames(dom, NULL, ssl, plain, sizeof(ssl),
                                          msg, sizeof(msg)),
                     ERR_LIMIT);
    /* a label over 63 bytes is not a DNS name */
    memset(dom, 'l', 64);
    strcpy(dom + 64, ".test");
    assert_int_equal(discovery_srv_qnames(dom, NULL, ssl, plain, sizeof(ssl),
                                          msg, sizeof(msg)),
                     ERR_INVALID);
}

/* ------------------------------------------------------------ answers */

static void parse_orders_records_and_strips_the_dot(void **state)
{
    (void)state;
    begin(&pk, 0, 4, "_etcd-server._tcp.cairn.test");
    add_srv(&pk, 10, 0, 2380, "m3.cairn.test.");
    add_srv(&pk, 0, 5, 2380, "m2.cairn.test.");
    add_srv(&pk, 0, 50, 2380, "m1.cairn.test.");
    add_srv(&pk, 0, 5, 2381, "m2.cairn.test.");
    assert_int_equal(parse_pkt(), 0);
    assert_int_equal(ans.status, DISCOVERY_SRV_OK);
    assert_int_equal(ans.count, 4);
    assert_string_equal(ans.targets[0].host, "m1.cairn.test");
    assert_int_equal(ans.targets[0].weight, 50);
    assert_string_equal(ans.targets[1].host, "m2.cairn.test");
    assert_int_equal(ans.targets[1].port, 2380);
    assert_int_equal(ans.targets[2].port, 2381);
    assert_string_equal(ans.targets[3].host, "m3.cairn.test");
    assert_int_equal(ans.targets[3].priority, 10);
    assert_string_equal(ans.targets[3].addr, "");
}

static void parse_negative_answers(void **state)
{
    (void)state;
    begin(&pk, 3, 0, "_etcd-server._tcp.cairn.test"); /* NXDOMAIN */
    assert_int_equal(parse_pkt(), 0);
    assert_int_equal(ans.status, DISCOVERY_SRV_NXDOMAIN);
    begin(&pk, 0, 0, "_etcd-server._tcp.cairn.test"); /* no data */
    assert_int_equal(parse_pkt(), 0);
    assert_int_equal(ans.status, DISCOVERY_SRV_NODATA);
    begin(&pk, 2, 0, "_etcd-server._tcp.cairn.test"); /* SERVFAIL */
    assert_int_equal(parse_pkt(), 0);
    assert_int_equal(ans.status, DISCOVERY_SRV_FAILED);
    assert_non_null(strstr(ans.why, "2"));
    /* RFC 2782: a lone "." target means no service */
    begin(&pk, 0, 1, "_etcd-server._tcp.cairn.test");
    add_srv(&pk, 0, 0, 2380, ".");
    assert_int_equal(parse_pkt(), 0);
    assert_int_equal(ans.status, DISCOVERY_SRV_NODATA);
    assert_int_equal(ans.count, 0);
    /* a CNAME on the way is passed over */
    begin(&pk, 0, 2, "_etcd-server._tcp.cairn.test");
    add_cname(&pk, "elsewhere.cairn.test");
    add_srv(&pk, 0, 0, 2380, "m1.cairn.test");
    assert_int_equal(parse_pkt(), 0);
    assert_int_equal(ans.count, 1);
}

static void parse_rejects_malformed_answers(void **state)
{
    (void)state;
    begin(&pk, 0, 1, "_etcd-server._tcp.cairn.test");
    add_srv(&pk, 0, 0, 2380, "m1.cairn.test");
    size_t full = pk.len;
    pk.len = full - 3; /* cut inside the target name */
    assert_int_equal(parse_pkt(), -EIO);
    assert_non_null(strstr(msg, "_etcd-server._tcp.cairn.test"));
    pk.len = 5; /* not even a header */
    assert_int_equal(parse_pkt(), -EIO);
    begin(&pk, 0, 1, "_etcd-server._tcp.cairn.test");
    add_srv(&pk, 0, 0, 0, "m1.cairn.test");
    assert_int_equal(parse_pkt(), ERR_INVALID);
    assert_non_null(strstr(msg, "port 0"));
    begin(&pk, 0, 1, "_etcd-server._tcp.cairn.test");
    add_srv(&pk, 0, 0, 2380, "m,1.cairn.test");
    assert_int_equal(parse_pkt(), ERR_INVALID);
    assert_non_null(strstr(msg, "not a host name"));
}

static void parse_record_count_bound(void **state)
{
    char t[64];
    (void)state;
    begin(&pk, 0, DISCOVERY_SRV_TARGETS_MAX, "_etcd-server._tcp.cairn.test");
    for (int i = 0; i < DISCOVERY_SRV_TARGETS_MAX; i++) {
        snprintf(t, sizeof(t), "m%d.cairn.test", i);
        add_srv(&pk, 0, 0, 2380, t);
    }
    assert_int_equal(parse_pkt(), 0);
    assert_int_equal(ans.count, DISCOVERY_SRV_TARGETS_MAX);
    begin(&pk, 0, DISCOVERY_SRV_TARGETS_MAX + 1,
          "_etcd-server._tcp.cairn.test");
    for (int i = 0; i <= DISCOVERY_SRV_TARGETS_MAX; i++) {
        snprintf(t, sizeof(t), "m%d.cairn.test", i);
        add_srv(&pk, 0, 0, 2380, t);
    }
    assert_int_equal(parse_pkt(), ERR_LIMIT);
    assert_non_null(strstr(msg, "more than 16 SRV records"));
}

/* A target name of exactly len text bytes: labels of 63 and the rest. */
static void long_name(char *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        out[i] = (i % 64 == 63) ? '.' : 'h';
    }
    out[len] = '\0';
    assert_true(out[len - 1] != '.');
}

static void parse_target_name_bound(void **state)
{
    char t[300];
    (void)state;
    long_name(t, DISCOVERY_SRV_HOST_MAX); /* 253: the longest DNS name */
    begin(&pk, 0, 1, "_etcd-server._tcp.cairn.test");
    add_srv(&pk, 0, 0, 2380, t);
    assert_int_equal(parse_pkt(), 0);
    assert_int_equal(strlen(ans.targets[0].host), DISCOVERY_SRV_HOST_MAX);
    long_name(t, DISCOVERY_SRV_HOST_MAX + 2); /* one label more: 255 */
    t[DISCOVERY_SRV_HOST_MAX] = '.';
    t[DISCOVERY_SRV_HOST_MAX - 1] = 'h';
    begin(&pk, 0, 1, "_etcd-server._tcp.cairn.test");
    add_srv(&pk, 0, 0, 2380, t);
    int rc = parse_pkt();
    /* glibc's dn_expand refuses a name past 255 wire bytes first */
    assert_true(rc == ERR_LIMIT || rc == -EIO);
    assert_int_equal(ans.count, 0);
}

/* ------------------------------------------------------------ derivation */

static struct discovery_srv_answer a_ssl;
static struct discovery_srv_answer a_plain;
static char cluster[DISCOVERY_SRV_CLUSTER_MAX];

static void answer_init(struct discovery_srv_answer *a, const char *qname,
                        enum discovery_srv_status st)
{
    memset(a, 0, sizeof(*a));
    snprintf(a->qname, sizeof(a->qname), "%s", qname);
    a->status = st;
}

static void target(struct discovery_srv_answer *a, const char *host,
                   unsigned port, const char *ip)
{
    struct discovery_srv_target *t = &a->targets[a->count++];
    assert_true(a->count <= DISCOVERY_SRV_TARGETS_MAX);
    assert_true(strlen(host) < sizeof(t->host));
    memcpy(t->host, host, strlen(host) + 1);
    t->port = (uint16_t)port;
    if (ip != NULL) {
        snprintf(t->addr, sizeof(t->addr), "%s:%u", ip, port);
    }
    a->status = DISCOVERY_SRV_OK;
}

static void three_plain(void)
{
    answer_init(&a_ssl, "_etcd-server-ssl._tcp.cairn.test",
                DISCOVERY_SRV_NXDOMAIN);
    answer_init(&a_plain, "_etcd-server._tcp.cairn.test", DISCOVERY_SRV_NODATA);
    target(&a_plain, "m1.cairn.test", 12380, "127.0.0.1");
    target(&a_plain, "m2.cairn.test", 22380, "127.0.0.1");
    target(&a_plain, "m3.cairn.test", 32380, "127.0.0.1");
}

static int derive(const char *name, const char *url, const char *addr)
{
    struct discovery_srv_self self = {.url = url, .addr = addr};
    msg[0] = '\0';
    return discovery_srv_derive(name, &self, 1, &a_ssl, &a_plain, cluster,
                                sizeof(cluster), msg, sizeof(msg));
}

static void derive_names_self_and_counts_the_others(void **state)
{
    (void)state;
    three_plain();
    assert_int_equal(derive("m2", "http://127.0.0.1:22380", "127.0.0.1:22380"),
                     0);
    assert_string_equal(cluster, "0=http://m1.cairn.test:12380,"
                                 "m2=http://m2.cairn.test:22380,"
                                 "1=http://m3.cairn.test:32380");
    /* the advertised URL may name the host differently: addresses count */
    assert_int_equal(derive("m1", "http://localhost:12380", "127.0.0.1:12380"),
                     0);
    assert_string_equal(cluster, "m1=http://m1.cairn.test:12380,"
                                 "0=http://m2.cairn.test:22380,"
                                 "1=http://m3.cairn.test:32380");
}

static void derive_combines_https_and_http(void **state)
{
    struct discovery_srv_self self[2] = {
        {.url = "https://10.0.0.1:2380", .addr = "10.0.0.1:2380"},
        {.url = "https://a.example:2390", .addr = "10.0.0.1:2390"}};
    (void)state;
    answer_init(&a_ssl, "_etcd-server-ssl._tcp.x", DISCOVERY_SRV_NODATA);
    answer_init(&a_plain, "_etcd-server._tcp.x", DISCOVERY_SRV_NODATA);
    target(&a_ssl, "a.example", 2380, "10.0.0.1");
    target(&a_ssl, "a.example", 2390, "10.0.0.1");
    target(&a_ssl, "b.example", 2380, "10.0.0.2");
    target(&a_plain, "c.example", 2380, "10.0.0.3");
    assert_int_equal(discovery_srv_derive("a", self, 2, &a_ssl, &a_plain,
                                          cluster, sizeof(cluster), msg,
                                          sizeof(msg)),
                     0);
    /* both of our URLs under our name: one member with two URLs */
    assert_string_equal(cluster, "a=https://a.example:2380,"
                                 "a=https://a.example:2390,"
                                 "0=https://b.example:2380,"
                                 "1=http://c.example:2380");
}

static void derive_skips_unresolved_and_repeated_targets(void **state)
{
    (void)state;
    three_plain();
    target(&a_plain, "gone.cairn.test", 42380, NULL);      /* did not resolve */
    target(&a_plain, "m3.cairn.test", 32380, "127.0.0.1"); /* again */
    assert_int_equal(derive("m1", "http://127.0.0.1:12380", "127.0.0.1:12380"),
                     0);
    assert_string_equal(cluster, "m1=http://m1.cairn.test:12380,"
                                 "0=http://m2.cairn.test:22380,"
                                 "1=http://m3.cairn.test:32380");
}

static void derive_placeholder_never_equals_our_name(void **state)
{
    (void)state;
    three_plain();
    assert_int_equal(derive("0", "http://127.0.0.1:32380", "127.0.0.1:32380"),
                     0);
    assert_string_equal(cluster, "1=http://m1.cairn.test:12380,"
                                 "2=http://m2.cairn.test:22380,"
                                 "0=http://m3.cairn.test:32380");
}

static void derive_errors_are_clear(void **state)
{
    (void)state;
    /* our own address is not a target: etcd's text */
    three_plain();
    assert_int_equal(derive("m4", "http://127.0.0.1:42380", "127.0.0.1:42380"),
                     ERR_INVALID);
    assert_non_null(
        strstr(msg, "cannot find local etcd member \"m4\" in SRV records"));
    assert_non_null(strstr(msg, "127.0.0.1:42380"));
    assert_string_equal(cluster, "");
    /* a https record at our http address, and no http one: etcd's
     * mismatch text (with an http record as well, that one would do) */
    answer_init(&a_ssl, "_etcd-server-ssl._tcp.cairn.test",
                DISCOVERY_SRV_NODATA);
    target(&a_ssl, "m1.cairn.test", 12380, "127.0.0.1");
    assert_int_equal(derive("m1", "http://127.0.0.1:12380", "127.0.0.1:12380"),
                     0);
    answer_init(&a_plain, "_etcd-server._tcp.cairn.test", DISCOVERY_SRV_NODATA);
    target(&a_plain, "m2.cairn.test", 22380, "127.0.0.1");
    assert_int_equal(derive("m1", "http://127.0.0.1:12380", "127.0.0.1:12380"),
                     ERR_INVALID);
    assert_non_null(strstr(msg, "has scheme mismatch with expected peer "
                                "http://127.0.0.1:12380"));
    /* no records at all */
    answer_init(&a_ssl, "_etcd-server-ssl._tcp.none.test",
                DISCOVERY_SRV_NXDOMAIN);
    answer_init(&a_plain, "_etcd-server._tcp.none.test", DISCOVERY_SRV_NODATA);
    assert_int_equal(derive("m1", "http://127.0.0.1:12380", "127.0.0.1:12380"),
                     ERR_NOT_FOUND);
    assert_non_null(strstr(msg, "_etcd-server-ssl._tcp.none.test: no such "
                                "name; _etcd-server._tcp.none.test: no SRV "
                                "records"));
    /* records whose targets all fail to resolve */
    target(&a_plain, "gone.none.test", 2380, NULL);
    assert_int_equal(derive("m1", "http://127.0.0.1:12380", "127.0.0.1:12380"),
                     ERR_NOT_FOUND);
    assert_non_null(strstr(msg, "did not resolve"));
    /* a timeout or a failure of either query stops discovery */
    three_plain();
    a_ssl.status = DISCOVERY_SRV_TIMEOUT;
    assert_int_equal(derive("m1", "http://127.0.0.1:12380", "127.0.0.1:12380"),
                     -ETIMEDOUT);
    assert_non_null(strstr(msg, "_etcd-server-ssl._tcp.cairn.test timed out"));
    a_ssl.status = DISCOVERY_SRV_FAILED;
    assert_int_equal(derive("m1", "http://127.0.0.1:12380", "127.0.0.1:12380"),
                     -EIO);
    assert_non_null(strstr(msg, "failed"));
    /* an advertised URL that is not http(s) */
    three_plain();
    assert_int_equal(derive("m1", "unix://sock:1", "127.0.0.1:1"), ERR_INVALID);
}

static void derive_member_and_length_bounds(void **state)
{
    char host[300];
    (void)state;
    /* 16 members (8 https + 8 http) fit; a 17th does not */
    answer_init(&a_ssl, "_etcd-server-ssl._tcp.x", DISCOVERY_SRV_NODATA);
    answer_init(&a_plain, "_etcd-server._tcp.x", DISCOVERY_SRV_NODATA);
    for (unsigned i = 0; i < DISCOVERY_SRV_TARGETS_MAX / 2; i++) {
        target(&a_ssl, "s.x", 3000 + i, "10.0.0.1");
        target(&a_plain, "p.x", 4000 + i, "10.0.0.2");
    }
    assert_int_equal(derive("me", "https://10.0.0.1:3000", "10.0.0.1:3000"), 0);
    target(&a_plain, "p.x", 4999, "10.0.0.2");
    assert_int_equal(derive("me", "https://10.0.0.1:3000", "10.0.0.1:3000"),
                     ERR_LIMIT);
    assert_non_null(strstr(msg, "more than 16 members"));
    /* a peer URL must fit a member record (NODE_URLS_MAX - 1 bytes) */
    size_t fixed = strlen("http://") + strlen(":2380");
    long_name(host, NODE_URLS_MAX - 1 - fixed);
    three_plain();
    a_plain.count = 1;
    target(&a_plain, host, 2380, "127.0.0.2");
    assert_int_equal(derive("m1", "http://127.0.0.1:12380", "127.0.0.1:12380"),
                     0);
    long_name(host, NODE_URLS_MAX - fixed);
    a_plain.count = 1;
    target(&a_plain, host, 2380, "127.0.0.2");
    assert_int_equal(derive("m1", "http://127.0.0.1:12380", "127.0.0.1:12380"),
                     ERR_LIMIT);
    assert_non_null(strstr(msg, "longer than 255 bytes"));
    /* the whole text must fit the caller's buffer */
    three_plain();
    struct discovery_srv_self self = {.url = "http://127.0.0.1:12380",
                                      .addr = "127.0.0.1:12380"};
    assert_int_equal(discovery_srv_derive("m1", &self, 1, &a_ssl, &a_plain,
                                          cluster, 60, msg, sizeof(msg)),
                     ERR_LIMIT);
    assert_string_equal(cluster, "");
}

/* ------------------------------------------------------------ options */

static int parse_opts(struct options *o, char **envp, int argc, ...)
{
    char *argv[16];
    va_list ap;
    argv[0] = "cairnd";
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i + 1] = va_arg(ap, char *);
    }
    va_end(ap);
    msg[0] = '\0';
    options_defaults(o);
    return options_parse(o, argc + 1, argv, envp, msg, sizeof(msg));
}

#define CONFLICT                                                               \
    "multiple discovery or bootstrap flags are set. Choose one of "            \
    "\"initial-cluster\", \"discovery\" or \"discovery-srv\""

static void options_take_discovery_srv_from_every_source(void **state)
{
    struct options o;
    char *env_cairn[] = {"CAIRN_DISCOVERY_SRV=cairn.test", NULL};
    char *env_etcd[] = {"ETCD_DISCOVERY_SRV=cairn.test",
                        "ETCD_DISCOVERY_SRV_NAME=blue", NULL};
    char *none[] = {NULL};
    char path[] = "/tmp/cairn-dsrv-XXXXXX";
    (void)state;
    assert_int_equal(parse_opts(&o, none, 2, "--discovery-srv", "cairn.test"),
                     0);
    assert_string_equal(o.discovery_srv, "cairn.test");
    options_free(&o);
    assert_int_equal(parse_opts(&o, env_cairn, 0), 0);
    assert_string_equal(o.discovery_srv, "cairn.test");
    options_free(&o);
    assert_int_equal(parse_opts(&o, env_etcd, 0), 0);
    assert_string_equal(o.discovery_srv_name, "blue");
    options_free(&o);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *yaml = "name: m1\ndiscovery-srv: cairn.test\n"
                       "discovery-srv-name: blue\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    assert_int_equal(parse_opts(&o, none, 2, "--config-file", path), 0);
    assert_string_equal(o.discovery_srv, "cairn.test");
    assert_string_equal(o.discovery_srv_name, "blue");
    options_free(&o);
    unlink(path);
}

static void options_refuse_initial_cluster_with_discovery_srv(void **state)
{
    struct options o;
    char *none[] = {NULL};
    char *env_ic[] = {"CAIRN_INITIAL_CLUSTER=a=http://127.0.0.1:2380", NULL};
    char *env_srv[] = {"ETCD_DISCOVERY_SRV=cairn.test", NULL};
    char path[] = "/tmp/cairn-dsrv-XXXXXX";
    (void)state;
    assert_int_equal(parse_opts(&o, none, 4, "--discovery-srv", "cairn.test",
                                "--initial-cluster", "a=http://127.0.0.1:2380"),
                     ERR_INVALID);
    assert_string_equal(msg, CONFLICT);
    options_free(&o);
    /* an explicit flag counts even when it equals the default (etcd) */
    assert_int_equal(parse_opts(&o, none, 4, "--discovery-srv", "cairn.test",
                                "--initial-cluster",
                                "default=http://localhost:2380"),
                     ERR_INVALID);
    assert_string_equal(msg, CONFLICT);
    options_free(&o);
    assert_int_equal(parse_opts(&o, env_ic, 2, "--discovery-srv", "x.test"),
                     ERR_INVALID);
    assert_string_equal(msg, CONFLICT);
    options_free(&o);
    assert_int_equal(parse_opts(&o, env_srv, 2, "--initial-cluster",
                                "a=http://127.0.0.1:2380"),
                     ERR_INVALID);
    assert_string_equal(msg, CONFLICT);
    options_free(&o);
    /* a config file: only a value other than the default counts */
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *yaml = "discovery-srv: cairn.test\n"
                       "initial-cluster: a=http://127.0.0.1:2380\n";
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    assert_int_equal(parse_opts(&o, none, 2, "--config-file", path),
                     ERR_INVALID);
    assert_string_equal(msg, CONFLICT);
    options_free(&o);
    unlink(path);
    /* the suffix alone has nothing to query; a bad domain is named */
    assert_int_equal(parse_opts(&o, none, 2, "--discovery-srv-name", "blue"),
                     ERR_INVALID);
    assert_non_null(strstr(msg, "--discovery-srv-name"));
    options_free(&o);
    assert_int_equal(parse_opts(&o, none, 2, "--discovery-srv", "a,b"),
                     ERR_INVALID);
    assert_non_null(strstr(msg, "not a DNS domain"));
    options_free(&o);
}

static void cluster_lookup_fails_cleanly_without_memory(void **state)
{
    struct options o;
    char *none[] = {NULL};
    char out[DISCOVERY_SRV_CLUSTER_MAX];
    (void)state;
    assert_int_equal(parse_opts(&o, none, 2, "--discovery-srv", "cairn.test"),
                     0);
    /* both allocations come before any DNS traffic */
    for (unsigned long n = 1; n <= 2; n++) {
        mem_fail_after(n, 0);
        assert_int_equal(
            discovery_srv_cluster(&o, out, sizeof(out), msg, sizeof(msg)),
            -ENOMEM);
        mem_fail_after(0, 0);
        assert_string_equal(out, "");
    }
    options_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(qnames_follow_etcd),
        cmocka_unit_test(qnames_reject_bad_input_by_name),
        cmocka_unit_test(qnames_bounds),
        cmocka_unit_test(parse_orders_records_and_strips_the_dot),
        cmocka_unit_test(parse_negative_answers),
        cmocka_unit_test(parse_rejects_malformed_answers),
        cmocka_unit_test(parse_record_count_bound),
        cmocka_unit_test(parse_target_name_bound),
        cmocka_unit_test(derive_names_self_and_counts_the_others),
        cmocka_unit_test(derive_combines_https_and_http),
        cmocka_unit_test(derive_skips_unresolved_and_repeated_targets),
        cmocka_unit_test(derive_placeholder_never_equals_our_name),
        cmocka_unit_test(derive_errors_are_clear),
        cmocka_unit_test(derive_member_and_length_bounds),
        cmocka_unit_test(options_take_discovery_srv_from_every_source),
        cmocka_unit_test(options_refuse_initial_cluster_with_discovery_srv),
        cmocka_unit_test(cluster_lookup_fails_cleanly_without_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

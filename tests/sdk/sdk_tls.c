/*
 * sdk_tls.c - libcairn over TLS: gRPC (put, get, a watch from a past
 * revision) and Cairn's /api/v1 over https and wss (a registration, and a
 * discovery cache that sees a second instance pushed over its WebSocket);
 * then a client trusting another CA, refused on both paths with the
 * verification error named.
 *
 *   sdk-tls ENDPOINT CA CERT KEY OTHER-CA kv|all
 *
 * A lease keeper (a client of its own) grants its lease over TLS too;
 * server_name is checked instead of the host (localhost verifies,
 * other.example does not), and insecure_skip_verify accepts another CA.
 *
 * Goal (issue 14): every transport of the library speaks TLS with the
 * options of struct cairn_options and refuses a server it cannot verify.
 * Method: one client with ca_file (and cert_file/key_file unless CERT is
 * "-"), checks of each answer; "kv" stops after the gRPC part (etcd has
 * no /api/v1). TAP on stdout; exit 1 when anything failed. Every call has
 * a deadline.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cairn.h>

#define DL 5000 /* every call's deadline, ms */

static int n_checks;
static int n_fails;

static void ok(bool cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    n_checks++;
    printf("%s %d - ", cond ? "ok" : "not ok", n_checks);
    vprintf(fmt, ap);
    printf("\n");
    fflush(stdout);
    va_end(ap);
    if (!cond) {
        n_fails++;
    }
}

static struct cairn_client *client_with(const char *ep, const char *ca,
                                        const char *cert, const char *key,
                                        const char *server_name, bool skip)
{
    struct cairn_options o;
    cairn_options_init(&o);
    o.endpoints = &ep;
    o.endpoints_count = 1;
    const char *dial = getenv("SDK_TLS_DIAL_MS"); /* longer under valgrind */
    o.dial_timeout_ms = dial != NULL ? atoll(dial) : 1500;
    o.ca_file = ca;
    if (strcmp(cert, "-") != 0) {
        o.cert_file = cert;
        o.key_file = key;
    }
    o.server_name = server_name;
    o.insecure_skip_verify = skip;
    struct cairn_client *c = NULL;
    int rc = cairn_client_new(&o, &c);
    ok(rc == 0, "cairn_client_new for %s (%s)", ep, cairn_strerror(rc));
    return c;
}

static struct cairn_client *client(const char *ep, const char *ca,
                                   const char *cert, const char *key)
{
    return client_with(ep, ca, cert, key, NULL, false);
}

static int put(struct cairn_client *c, const char *k, const char *v,
               int64_t *rev)
{
    struct cairn_put_req req = {.key = (const uint8_t *)k,
                                .key_len = strlen(k),
                                .value = (const uint8_t *)v,
                                .value_len = strlen(v)};
    struct cairn_put_resp r;
    memset(&r, 0, sizeof(r));
    int rc = cairn_put(c, &req, DL, &r);
    if (rc == 0 && rev != NULL) {
        *rev = r.header.revision;
    }
    cairn_put_resp_free(&r);
    return rc;
}

static void kv_part(struct cairn_client *c)
{
    int64_t rev = 0;
    int rc = put(c, "tls/k1", "v1", &rev);
    ok(rc == 0 && rev > 0, "put over TLS (%s %s)", cairn_strerror(rc),
       cairn_client_errmsg(c));
    struct cairn_range_req rq = {.key = (const uint8_t *)"tls/k1",
                                 .key_len = 6};
    struct cairn_range_resp rr;
    memset(&rr, 0, sizeof(rr));
    rc = cairn_range(c, &rq, DL, &rr);
    ok(rc == 0 && rr.kvs_count == 1 && rr.kvs[0].value_len == 2 &&
           memcmp(rr.kvs[0].value, "v1", 2) == 0,
       "get over TLS reads the value back");
    cairn_range_resp_free(&rr);

    struct cairn_watch_req wq = {
        .key = (const uint8_t *)"tls/k1", .key_len = 6, .start_revision = rev};
    struct cairn_watch *w = NULL;
    rc = cairn_watch_open(c, &wq, DL, &w);
    ok(rc == 0, "watch --rev opens over TLS (%s)", cairn_strerror(rc));
    if (rc != 0) {
        return;
    }
    struct cairn_watch_resp wr;
    memset(&wr, 0, sizeof(wr));
    rc = cairn_watch_next(w, DL, &wr);
    ok(rc == 0 && wr.events_count == 1 && wr.events[0].kv.mod_revision == rev,
       "the watch from revision %" PRId64 " replays the put", rev);
    cairn_watch_resp_free(&wr);
    rc = put(c, "tls/k1", "v2", NULL);
    memset(&wr, 0, sizeof(wr));
    if (rc == 0) {
        rc = cairn_watch_next(w, DL, &wr);
    }
    ok(rc == 0 && wr.events_count == 1 && wr.events[0].kv.value_len == 2 &&
           memcmp(wr.events[0].kv.value, "v2", 2) == 0,
       "the watch gets a new put pushed over TLS");
    cairn_watch_resp_free(&wr);
    cairn_watch_close(w);

    /* a keeper dials a client of its own: with the same TLS settings */
    struct cairn_keeper *k = NULL;
    rc = cairn_keeper_new(c, 0, 5, NULL, NULL, &k);
    ok(rc == 0 && cairn_keeper_lease(k) != 0,
       "a lease keeper (its own connection) grants over TLS (%s)",
       cairn_strerror(rc));
    cairn_keeper_free(k, true);
}

static int discovered(struct cairn_discovery *d)
{
    struct cairn_instance_list l;
    memset(&l, 0, sizeof(l));
    if (cairn_discovery_get(d, &l) != 0) {
        return -1;
    }
    int n = (int)l.count;
    cairn_instance_list_free(&l);
    return n;
}

static void api_part(struct cairn_client *c)
{
    struct cairn_registration *r = NULL;
    int rc = cairn_registration_new(c, NULL, &r);
    ok(rc == 0, "a registry session opens over https (%s %s)",
       cairn_strerror(rc), cairn_client_errmsg(c));
    if (rc != 0) {
        return;
    }
    struct cairn_instance_spec s = {.ns = "tls",
                                    .service = "echo",
                                    .id = "i1",
                                    .addr = "127.0.0.1:9001",
                                    .weight = -1};
    rc = cairn_register(r, &s);
    ok(rc == 0, "register over https (%s %s)", cairn_strerror(rc),
       cairn_registration_errmsg(r));
    struct cairn_discovery *d = NULL;
    rc = cairn_discovery_new(c, "tls", "echo", NULL, NULL, DL, &d);
    ok(rc == 0 && discovered(d) == 1,
       "discovery's first snapshot over wss holds the instance (%s)",
       cairn_strerror(rc));
    if (rc == 0) {
        s.id = "i2";
        s.addr = "127.0.0.1:9002";
        rc = cairn_register(r, &s);
        int seen = 0;
        for (int i = 0; i < 100 && rc == 0 && seen != 2; i++) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
            seen = discovered(d);
        }
        ok(rc == 0 && seen == 2,
           "a second instance reaches discovery pushed over wss (%d seen)",
           seen);
        cairn_discovery_free(d);
    }
    struct cairn_api_resp ar;
    memset(&ar, 0, sizeof(ar));
    rc = cairn_api_call(c, "GET", "/api/v1/registry/tls/echo", NULL, DL, &ar);
    ok(rc == 0 && ar.body != NULL && strstr(ar.body, "\"i2\"") != NULL,
       "GET /api/v1/registry over https lists both (%s)", cairn_strerror(rc));
    cairn_api_resp_free(&ar);
    cairn_registration_free(r, true);
}

static void refused_part(const char *ep, const char *other_ca, bool api)
{
    struct cairn_client *c = client(ep, other_ca, "-", "-");
    if (c == NULL) {
        return;
    }
    int rc = put(c, "tls/k9", "x", NULL);
    const char *m = cairn_client_errmsg(c);
    ok(rc == CAIRN_E_UNAVAILABLE &&
           strstr(m, "certificate verify failed") != NULL,
       "gRPC to a server of another CA is refused: %s (%s)", cairn_strerror(rc),
       m);
    if (api) {
        struct cairn_api_resp ar;
        memset(&ar, 0, sizeof(ar));
        rc = cairn_api_call(c, "GET", "/api/v1/registry/tls/echo", NULL, 2000,
                            &ar);
        m = cairn_client_errmsg(c);
        ok(rc == CAIRN_E_UNAVAILABLE &&
               strstr(m, "certificate verify failed") != NULL,
           "https to a server of another CA is refused: %s (%s)",
           cairn_strerror(rc), m);
        cairn_api_resp_free(&ar);
    }
    cairn_client_free(c);
}

/* server_name replaces the endpoint's host in the check (the server's
 * certificate has DNS:localhost and IP:127.0.0.1); insecure_skip_verify
 * accepts a server of another CA. */
static void names_part(char **argv)
{
    struct cairn_client *c =
        client_with(argv[1], argv[2], argv[3], argv[4], "localhost", false);
    int rc = c != NULL ? put(c, "tls/n1", "x", NULL) : CAIRN_E_INVALID;
    ok(rc == 0, "server_name localhost (a DNS SAN) verifies (%s %s)",
       cairn_strerror(rc), c != NULL ? cairn_client_errmsg(c) : "");
    cairn_client_free(c);
    c = client_with(argv[1], argv[2], argv[3], argv[4], "other.example", false);
    rc = c != NULL ? put(c, "tls/n1", "x", NULL) : CAIRN_E_INVALID;
    ok(rc == CAIRN_E_UNAVAILABLE && c != NULL &&
           strstr(cairn_client_errmsg(c), "mismatch") != NULL,
       "server_name other.example is refused: %s",
       c != NULL ? cairn_client_errmsg(c) : "");
    cairn_client_free(c);
    c = client_with(argv[1], argv[5], argv[3], argv[4], NULL, true);
    rc = c != NULL ? put(c, "tls/n1", "x", NULL) : CAIRN_E_INVALID;
    ok(rc == 0, "insecure_skip_verify accepts it with another CA (%s)",
       cairn_strerror(rc));
    cairn_client_free(c);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr,
                "usage: sdk-tls ENDPOINT CA CERT KEY OTHER-CA kv|all\n");
        return 2;
    }
    bool api = strcmp(argv[6], "all") == 0;
    struct cairn_client *c = client(argv[1], argv[2], argv[3], argv[4]);
    if (c != NULL) {
        kv_part(c);
        if (api) {
            api_part(c);
        }
        cairn_client_free(c);
    }
    refused_part(argv[1], argv[5], api);
    names_part(argv);
    printf("1..%d\n", n_checks);
    return n_fails == 0 ? 0 : 1;
}

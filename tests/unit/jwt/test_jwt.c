/*
 * test_jwt.c - etcd's JWT auth tokens (registry/server/auth_jwt.c).
 *
 * Goal: what auth_jwt_verify takes is exactly a token signed with the
 * configured method and key, unexpired, with etcd's claims; everything
 * else (another algorithm, "alg":"none", a flipped bit, a signature of the
 * wrong length, base64url that is padded or not canonical, claims of the
 * wrong type, a huge or negative number, an oversize token) is
 * ERR_INVALID_AUTH_TOKEN, and bad --auth-token specs fail auth_jwt_open
 * with a message naming the option or file.
 * Method: keys made in-process with OpenSSL and written as PEM files to a
 * temp dir; tokens signed by auth_jwt_sign, then edited byte by byte or
 * rebuilt from crafted JSON and re-signed (HS256) so that only the edited
 * property is wrong. The compat side (etcd's own tokens, both directions)
 * is tests/compat/auth_jwt.test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "base/err.h"
#include "registry/server/auth_jwt.h"

#define NOW 1900000000u

static char dir[] = "/tmp/cairn-unit-jwt.XXXXXX";
static char path_rsa[256], path_rsa_pub[256], path_ec[256], path_ec_pub[256],
    path_ec384[256], path_hs[256];

static void write_key(EVP_PKEY *k, const char *path, int pub)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(
        pub ? PEM_write_PUBKEY(f, k)
            : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL),
        1);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    snprintf(path_rsa, sizeof(path_rsa), "%s/rsa.key", dir);
    snprintf(path_rsa_pub, sizeof(path_rsa_pub), "%s/rsa.pub", dir);
    snprintf(path_ec, sizeof(path_ec), "%s/ec.key", dir);
    snprintf(path_ec_pub, sizeof(path_ec_pub), "%s/ec.pub", dir);
    snprintf(path_ec384, sizeof(path_ec384), "%s/ec384.key", dir);
    snprintf(path_hs, sizeof(path_hs), "%s/hs.key", dir);
    write_key(rsa, path_rsa, 0);
    write_key(rsa, path_rsa_pub, 1);
    write_key(ec, path_ec, 0);
    write_key(ec, path_ec_pub, 1);
    write_key(ec384, path_ec384, 0);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(ec384);
    FILE *f = fopen(path_hs, "w");
    fputs("a shared secret of some length", f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct auth_jwt *open_ok(const char *fmt, const char *a, const char *b)
{
    char spec[1024], msg[512] = "";
    struct auth_jwt *j = NULL;
    snprintf(spec, sizeof(spec), fmt, a, b);
    int rc = auth_jwt_open(spec, &j, msg, sizeof(msg));
    if (rc != 0) {
        fail_msg("%s: %s", spec, msg);
    }
    return j;
}

static int verify(const struct auth_jwt *j, const char *tok, uint64_t now,
                  uint64_t *rev)
{
    char user[64];
    uint64_t r = 0;
    int rc = auth_jwt_verify(j, tok, now, user, sizeof(user), &r);
    if (rev != NULL) {
        *rev = r;
    }
    if (rc == 0) {
        assert_string_equal(user, "alice");
    }
    return rc;
}

/* Every method signs a token the same configuration verifies, with the
 * user and revision back, up to and including its exp second. */
static void sign_verify_every_method(void **state)
{
    (void)state;
    static const char *const rsa[] = {"RS256", "RS384", "RS512",
                                      "PS256", "PS384", "PS512"};
    char tok[AUTH_JWT_TOKEN_MAX];
    uint64_t rev;
    for (size_t i = 0; i < 6 + 3; i++) {
        struct auth_jwt *j;
        char spec[512];
        if (i < 6) {
            snprintf(spec, sizeof(spec),
                     "jwt,pub-key=%%s,priv-key=%%s,sign-method=%s,ttl=1m",
                     rsa[i]);
            j = open_ok(spec, path_rsa_pub, path_rsa);
        } else if (i == 6) {
            j = open_ok("jwt,pub-key=%s,priv-key=%s,sign-method=ES256,ttl=60s",
                        path_ec_pub, path_ec);
        } else if (i == 7) {
            j = open_ok("jwt,priv-key=%s,sign-method=ES384,ttl=1m%s",
                        path_ec384, "");
        } else {
            j = open_ok("jwt,priv-key=%s,sign-method=HS256,ttl=1m%s", path_hs,
                        "");
        }
        assert_int_equal(auth_jwt_sign(j, "alice", 42, NOW, tok, sizeof(tok)),
                         0);
        assert_int_equal(verify(j, tok, NOW, &rev), 0);
        assert_int_equal(rev, 42);
        assert_int_equal(verify(j, tok, NOW + 60, NULL), 0);
        assert_int_equal(verify(j, tok, NOW + 61, NULL),
                         ERR_INVALID_AUTH_TOKEN);
        /* every single flipped character of the signature is refused */
        char *sig = strrchr(tok, '.') + 1;
        size_t len = strlen(sig);
        for (size_t k = 0; k < len;
             k = k + 7 < len || k == len - 1 ? k + 7 : len - 1) {
            char c = sig[k];
            sig[k] = c == 'A' ? 'B' : 'A';
            if (verify(j, tok, NOW, NULL) != ERR_INVALID_AUTH_TOKEN) {
                fail_msg("method %zu: flipped char %zu of %zu accepted: %s", i,
                         k, len, tok);
            }
            sig[k] = c;
        }
        auth_jwt_free(j);
    }
}

static void b64(const char *in, size_t n, char *out, size_t cap)
{
    static const char T[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(uint8_t)in[i] << 16;
        v |= i + 1 < n ? (uint32_t)(uint8_t)in[i + 1] << 8 : 0;
        v |= i + 2 < n ? (uint8_t)in[i + 2] : 0;
        out[o++] = T[(v >> 18) & 63];
        out[o++] = T[(v >> 12) & 63];
        if (i + 1 < n) {
            out[o++] = T[(v >> 6) & 63];
        }
        if (i + 2 < n) {
            out[o++] = T[v & 63];
        }
        assert_true(o + 4 < cap);
    }
    out[o] = '\0';
}

/* An HS256 token over the given header and claims JSON, signed with the
 * secret the HS256 configuration reads: only what the JSON says is wrong. */
static void hs_token(const char *header, const char *claims, char *out,
                     size_t cap)
{
    char h[512], c[1024];
    uint8_t mac[64];
    unsigned int len = 0;
    b64(header, strlen(header), h, sizeof(h));
    b64(claims, strlen(claims), c, sizeof(c));
    snprintf(out, cap, "%s.%s", h, c);
    static const char secret[] = "a shared secret of some length";
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (uint8_t *)out, strlen(out),
         mac, &len);
    size_t o = strlen(out);
    out[o++] = '.';
    b64((const char *)mac, len, out + o, cap - o);
}

static void claims_are_checked(void **state)
{
    (void)state;
    struct auth_jwt *j =
        open_ok("jwt,priv-key=%s,sign-method=HS256%s", path_hs, "");
    char tok[2048];
    const char *H = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static const struct {
        const char *header, *claims;
        int rc;
    } cases[] = {
        {NULL, "{\"exp\":1900000100,\"revision\":7,\"username\":\"alice\"}", 0},
        /* Go's encoding: other key order, spaces */
        {NULL, "{ \"username\":\"alice\", \"revision\":7, \"exp\":1900000100 }",
         0},
        {NULL, "{\"exp\":1899999999,\"revision\":7,\"username\":\"alice\"}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL, "{\"revision\":7,\"username\":\"alice\"}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL, "{\"exp\":\"1900000100\",\"revision\":7,\"username\":\"alice\"}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL, "{\"exp\":1.9e9,\"revision\":7,\"username\":\"alice\"}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL, "{\"exp\":1900000100,\"revision\":-1,\"username\":\"alice\"}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL, "{\"exp\":1900000100,\"revision\":1e300,\"username\":\"alice\"}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL,
         "{\"exp\":1900000100,\"revision\":99999999999999999999999,"
         "\"username\":\"alice\"}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL, "{\"exp\":1900000100,\"revision\":7}", ERR_INVALID_AUTH_TOKEN},
        {NULL, "{\"exp\":1900000100,\"revision\":7,\"username\":\"\"}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL, "{\"exp\":1900000100,\"revision\":7,\"username\":7}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL, "{\"exp\":1900000100,\"revision\":7,\"username\":\"a\\u0000b\"}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL,
         "{\"exp\":1900000100,\"revision\":7,\"username\":\"root\","
         "\"username\":\"alice\"}",
         ERR_INVALID_AUTH_TOKEN},
        {NULL, "[1,2]", ERR_INVALID_AUTH_TOKEN},
        {NULL, "{\"exp\":1900000100,\"revision\":7,\"username\":\"alice\"",
         ERR_INVALID_AUTH_TOKEN},
        /* the header's alg must be the configured one, exactly */
        {"{\"alg\":\"none\",\"typ\":\"JWT\"}", NULL, ERR_INVALID_AUTH_TOKEN},
        {"{\"alg\":\"hs256\",\"typ\":\"JWT\"}", NULL, ERR_INVALID_AUTH_TOKEN},
        {"{\"alg\":\"HS384\",\"typ\":\"JWT\"}", NULL, ERR_INVALID_AUTH_TOKEN},
        {"{\"typ\":\"JWT\"}", NULL, ERR_INVALID_AUTH_TOKEN},
        {"{\"alg\":\"HS256\",\"alg\":\"none\"}", NULL, ERR_INVALID_AUTH_TOKEN},
        {"{\"alg\":\"HS256\"}", NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hs_token(cases[i].header != NULL ? cases[i].header : H,
                 cases[i].claims != NULL
                     ? cases[i].claims
                     : "{\"exp\":1900000100,\"revision\":7,\"username\":"
                       "\"alice\"}",
                 tok, sizeof(tok));
        int rc = verify(j, tok, NOW, NULL);
        if (rc != cases[i].rc) {
            fail_msg("case %zu (%s / %s): %d, want %d", i,
                     cases[i].header ? cases[i].header : "-",
                     cases[i].claims ? cases[i].claims : "-", rc, cases[i].rc);
        }
    }
    auth_jwt_free(j);
}

/* The compact form: three parts, unpadded canonical base64url, bounded. */
static void form_is_checked(void **state)
{
    (void)state;
    struct auth_jwt *j = open_ok("jwt,pub-key=%s,priv-key=%s,sign-method=ES256",
                                 path_ec_pub, path_ec);
    char tok[AUTH_JWT_TOKEN_MAX], bad[2 * AUTH_JWT_TOKEN_MAX];
    assert_int_equal(auth_jwt_sign(j, "alice", 3, NOW, tok, sizeof(tok)), 0);
    assert_int_equal(verify(j, tok, NOW, NULL), 0);
    /* no token for an empty name: verify would refuse it (fuzz_jwt) */
    assert_int_equal(auth_jwt_sign(j, "", 3, NOW, bad, sizeof(bad)),
                     ERR_INVALID);
    size_t n = strlen(tok);
    /* an ES256 signature is 64 bytes: 86 chars, its last char carries 2
     * spare bits */
    const char *sig = strrchr(tok, '.') + 1;
    assert_int_equal(strlen(sig), 86);

    snprintf(bad, sizeof(bad), "%s=", tok); /* padding */
    assert_int_equal(verify(j, bad, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    snprintf(bad, sizeof(bad), "%s.", tok); /* a fourth part */
    assert_int_equal(verify(j, bad, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    snprintf(bad, sizeof(bad), "%.*s", (int)(n - 1), tok); /* 63.x bytes */
    assert_int_equal(verify(j, bad, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    snprintf(bad, sizeof(bad), "%.*s", (int)(n - 3), tok); /* 62 bytes */
    assert_int_equal(verify(j, bad, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    snprintf(bad, sizeof(bad), "%sAAAA", tok); /* 67 bytes */
    assert_int_equal(verify(j, bad, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    /* the same bytes with the last char's spare bits set: not canonical */
    snprintf(bad, sizeof(bad), "%s", tok);
    {
        static const char T[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        char *last = bad + n - 1;
        int v = (int)(strchr(T, *last) - T);
        *last = T[v | 1];
        if (v != (v | 1)) {
            assert_int_equal(verify(j, bad, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
        }
    }
    /* standard base64's '+' and '/' are not base64url */
    snprintf(bad, sizeof(bad), "%s", tok);
    bad[n - 10] = '+';
    assert_int_equal(verify(j, bad, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    /* r || s of zeros */
    snprintf(bad, sizeof(bad), "%.*s", (int)(sig - tok), tok);
    memset(bad + (sig - tok), 'A', 86);
    bad[(sig - tok) + 86] = '\0';
    assert_int_equal(verify(j, bad, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    /* empty parts and no dots */
    assert_int_equal(verify(j, "", NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    assert_int_equal(verify(j, "..", NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    assert_int_equal(verify(j, "abc", NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    /* oversize: refused without reading past the bound */
    memset(bad, 'A', sizeof(bad) - 1);
    bad[sizeof(bad) - 1] = '\0';
    bad[10] = '.';
    bad[20] = '.';
    assert_int_equal(verify(j, bad, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    /* a token of another key of the same kind */
    struct auth_jwt *other =
        open_ok("jwt,priv-key=%s,sign-method=ES384%s", path_ec384, "");
    assert_int_equal(auth_jwt_sign(other, "alice", 3, NOW, bad, sizeof(bad)),
                     0);
    assert_int_equal(verify(j, bad, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    auth_jwt_free(other);
    auth_jwt_free(j);
}

/* An RSA configuration refuses an HS256 token whose secret is the public
 * key's PEM (the classic algorithm confusion), and a verify-only one
 * refuses to sign. */
static void confusion_and_verify_only(void **state)
{
    (void)state;
    struct auth_jwt *j =
        open_ok("jwt,pub-key=%s,sign-method=RS256%s", path_rsa_pub, "");
    char tok[AUTH_JWT_TOKEN_MAX];
    assert_int_equal(auth_jwt_sign(j, "alice", 1, NOW, tok, sizeof(tok)),
                     ERR_AUTH_VERIFY_ONLY);
    /* the public key file as HMAC secret */
    struct auth_jwt *hs =
        open_ok("jwt,priv-key=%s,sign-method=HS256%s", path_rsa_pub, "");
    assert_int_equal(auth_jwt_sign(hs, "alice", 1, NOW, tok, sizeof(tok)), 0);
    assert_int_equal(verify(j, tok, NOW, NULL), ERR_INVALID_AUTH_TOKEN);
    auth_jwt_free(hs);
    auth_jwt_free(j);
    /* a user name too long for the token is an error, not a cut token */
    j = open_ok("jwt,priv-key=%s,sign-method=RS256%s", path_rsa, "");
    char user[900];
    memset(user, 'u', sizeof(user) - 1);
    user[sizeof(user) - 1] = '\0';
    assert_int_not_equal(auth_jwt_sign(j, user, 1, NOW, tok, sizeof(tok)), 0);
    auth_jwt_free(j);
}

static void bad_specs_name_the_problem(void **state)
{
    (void)state;
    char spec[1024], msg[512];
    struct {
        const char *fmt, *a, *b, *want;
    } cases[] = {
        {"jwt,pub-key=%s/nosuch,priv-key=%s,sign-method=RS256", dir, path_rsa,
         "/nosuch: cannot read"},
        {"jwt,pub-key=%s,priv-key=%s,sign-method=RS256", path_ec_pub, path_ec,
         "needs an RSA key"},
        {"jwt,pub-key=%s,priv-key=%s,sign-method=ES256", path_rsa_pub, path_rsa,
         "needs an EC key on P-256"},
        {"jwt,priv-key=%s,sign-method=ES256%s", path_ec384, "",
         "needs an EC key on P-256"},
        {"jwt,priv-key=%s,sign-method=ES384%s", path_ec, "",
         "needs an EC key on P-384"},
        {"jwt,pub-key=%s,priv-key=%s,sign-method=RS256", path_hs, path_rsa,
         "not a PEM public key"},
        {"jwt,pub-key=%s,priv-key=%s,sign-method=none", path_rsa_pub, path_rsa,
         "unknown sign-method \"none\""},
        {"jwt,pub-key=%s,priv-key=%s", path_rsa_pub, path_rsa,
         "jwt needs sign-method="},
        {"jwt,priv-key=%s,sign-method=RS256,ttl=%s", path_rsa, "0s",
         "ttl \"0s\""},
        {"jwt,priv-key=%s,sign-method=RS256,ttl=%s", path_rsa, "5",
         "ttl \"5\""},
        {"jwt,priv-key=%s,sign-method=RS256,ttl=%s", path_rsa, "-1m",
         "ttl \"-1m\""},
        {"jwt,priv-key=%s,sign-method=RS256,ttl=%s", path_rsa, "1e400s",
         "ttl \"1e400s\""},
        {"jwt,priv-key=%s,sign-method=RS256,ttl=%s", path_rsa, "nans",
         "ttl \"nans\""},
        {"jwt,priv-key=%s,sign-method=RS256,ttl=%s", path_rsa, "infh",
         "ttl \"infh\""},
        {"jwt,priv-key=%s,sign-method=RS256,ttl=%s", path_rsa, "0x10s",
         "ttl \"0x10s\""},
        {"jwt,priv-key=%s,sign-method=RS256,ttl=%s", path_rsa, "1e3s",
         "ttl \"1e3s\""},
        {"jwt,priv-key=%s,sign-method=RS256,ttl=%s", path_rsa, "5 m",
         "ttl \"5 m\""},
        {"jwt,priv-key=%s,sign-method=RS256,ttl=%s", path_rsa,
         "999999999999999h", "ttl \"999999999999999h\""},
        {"jwt,priv-key=%s,priv-key=%s,sign-method=RS256", path_rsa, path_rsa,
         "priv-key given twice"},
        {"jwt,sign-method=HS256%s%s", "", "", "needs priv-key="},
        {"jwt,priv-key%s%s,sign-method=RS256", "", "", "has no value"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct auth_jwt *j = (struct auth_jwt *)1;
        msg[0] = '\0';
        snprintf(spec, sizeof(spec), cases[i].fmt, cases[i].a, cases[i].b);
        assert_int_equal(auth_jwt_open(spec, &j, msg, sizeof(msg)),
                         ERR_INVALID);
        assert_null(j);
        if (strstr(msg, cases[i].want) == NULL) {
            fail_msg("%s: \"%s\" does not say \"%s\"", spec, msg,
                     cases[i].want);
        }
    }
    /* etcd's units for ttl and an unknown option (a warning, as etcd) */
    struct auth_jwt *j =
        open_ok("jwt,priv-key=%s,sign-method=HS256,ttl=%s", path_hs, "1h30m");
    char tok[AUTH_JWT_TOKEN_MAX];
    assert_int_equal(auth_jwt_sign(j, "alice", 1, NOW, tok, sizeof(tok)), 0);
    assert_int_equal(verify(j, tok, NOW + 5400, NULL), 0);
    assert_int_equal(verify(j, tok, NOW + 5401, NULL), ERR_INVALID_AUTH_TOKEN);
    auth_jwt_free(j);
    j = open_ok("jwt,priv-key=%s,sign-method=HS256,foo=%s", path_hs, "bar");
    auth_jwt_free(j);
    /* Go's forms: a fraction, a '+', several units */
    j = open_ok("jwt,priv-key=%s,sign-method=HS256,ttl=%s", path_hs, "+1.5m");
    assert_int_equal(auth_jwt_sign(j, "alice", 1, NOW, tok, sizeof(tok)), 0);
    assert_int_equal(verify(j, tok, NOW + 90, NULL), 0);
    assert_int_equal(verify(j, tok, NOW + 91, NULL), ERR_INVALID_AUTH_TOKEN);
    auth_jwt_free(j);
    j = open_ok("jwt,priv-key=%s,sign-method=HS256,ttl=%s", path_hs,
                "1h1m1s500ms");
    assert_int_equal(auth_jwt_sign(j, "alice", 1, NOW, tok, sizeof(tok)), 0);
    assert_int_equal(verify(j, tok, NOW + 3661, NULL), 0);
    assert_int_equal(verify(j, tok, NOW + 3662, NULL), ERR_INVALID_AUTH_TOKEN);
    auth_jwt_free(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sign_verify_every_method),
        cmocka_unit_test(claims_are_checked),
        cmocka_unit_test(form_is_checked),
        cmocka_unit_test(confusion_and_verify_only),
        cmocka_unit_test(bad_specs_name_the_problem),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

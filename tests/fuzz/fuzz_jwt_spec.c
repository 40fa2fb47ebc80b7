/*
 * fuzz_jwt_spec.c - the JWT parser and verifier (registry/server/auth_jwt.c)
 * and the --auth-token jwt spec parser on arbitrary bytes.
 *
 * Goal: never a crash, leak, hang or read past the token; verify answers
 * 0 or ERR_INVALID_AUTH_TOKEN only, and 0 only with a non-empty user that
 * fits and an exp not in the past; auth_jwt_open answers 0 or ERR_INVALID
 * with a message.
 *
 * Input: byte 0 picks the mode (mod 3):
 *   0  the rest is a token, verified by an HS256 and an ES256 member;
 *   1  the rest is "<header JSON>\n<claims JSON>", made into a token with a
 *      valid HS256 signature, so the claims checks behind the signature
 *      see arbitrary JSON;
 *   2  the rest is an --auth-token spec (its file names are refused or
 *      point into the scratch directory's keys: "@hs", "@ec", "@ecpub").
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "base/err.h"
#include "registry/server/auth_jwt.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 2048
#define NOW          1900000000u

static char dir[] = "/tmp/cairn-fuzz-jwt.XXXXXX";
static char p_hs[128], p_ec[128], p_ecpub[128];
static struct auth_jwt *hs, *es;
static const char secret[] = "fuzz secret";

/* The key files go with the process (one directory per run was left in
 * /tmp before). */
static void cleanup(void)
{
    unlink(p_hs);
    unlink(p_ec);
    unlink(p_ecpub);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char spec[512], msg[256];
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    atexit(cleanup);
    snprintf(p_hs, sizeof(p_hs), "%s/hs", dir);
    snprintf(p_ec, sizeof(p_ec), "%s/ec", dir);
    snprintf(p_ecpub, sizeof(p_ecpub), "%s/ecpub", dir);
    FILE *f = fopen(p_hs, "w");
    FUZZ_CHECK(f != NULL);
    fputs(secret, f);
    fclose(f);
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    FUZZ_CHECK(k != NULL);
    f = fopen(p_ec, "w");
    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    f = fopen(p_ecpub, "w");
    PEM_write_PUBKEY(f, k);
    fclose(f);
    EVP_PKEY_free(k);
    snprintf(spec, sizeof(spec), "jwt,priv-key=%s,sign-method=HS256", p_hs);
    FUZZ_CHECK(auth_jwt_open(spec, &hs, msg, sizeof(msg)) == 0);
    snprintf(spec, sizeof(spec), "jwt,priv-key=%s,pub-key=%s,sign-method=ES256",
             p_ec, p_ecpub);
    FUZZ_CHECK(auth_jwt_open(spec, &es, msg, sizeof(msg)) == 0);
    return 0;
}

static void check_verify(const struct auth_jwt *j, const char *tok)
{
    char user[64];
    uint64_t rev = 0;
    int rc = auth_jwt_verify(j, tok, NOW, user, sizeof(user), &rev);
    FUZZ_CHECK(rc == 0 || rc == ERR_INVALID_AUTH_TOKEN);
    if (rc == 0) {
        FUZZ_CHECK(user[0] != '\0' && strlen(user) < sizeof(user));
    }
}

static size_t b64(const uint8_t *in, size_t n, char *out)
{
    static const char T[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        v |= i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0;
        v |= i + 2 < n ? in[i + 2] : 0;
        out[o++] = T[(v >> 18) & 63];
        out[o++] = T[(v >> 12) & 63];
        if (i + 1 < n) {
            out[o++] = T[(v >> 6) & 63];
        }
        if (i + 2 < n) {
            out[o++] = T[v & 63];
        }
    }
    out[o] = '\0';
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    int mode = data[0] % 3;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    if (mode == 0) {
        char *tok = malloc(n + 1); /* exact size: ASan sees any overread */
        memcpy(tok, p, n);
        tok[n] = '\0';
        check_verify(hs, tok);
        check_verify(es, tok);
        free(tok);
    } else if (mode == 1) {
        const uint8_t *nl = memchr(p, '\n', n);
        size_t hn = nl != NULL ? (size_t)(nl - p) : n;
        size_t cn = nl != NULL ? n - hn - 1 : 0;
        char tok[4 * FUZZ_MAX_LEN / 3 + 200];
        size_t o = b64(p, hn, tok);
        tok[o++] = '.';
        o += b64(nl != NULL ? nl + 1 : p, cn, tok + o);
        uint8_t mac[64];
        unsigned int len = 0;
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (uint8_t *)tok, o, mac,
             &len);
        tok[o++] = '.';
        b64(mac, len, tok + o);
        check_verify(hs, tok);
    } else {
        char spec[FUZZ_MAX_LEN + 3 * 128], msg[256];
        size_t o = 0;
        for (size_t i = 0; i < n && o + 130 < sizeof(spec); i++) {
            /* "@hs" etc. name the scratch keys; other bytes as they are,
             * but no '/' so no other file is ever opened */
            const char *sub = NULL;
            if (p[i] == '@' && i + 1 < n) {
                sub = p[i + 1] == 'h' ? p_hs : p[i + 1] == 'e' ? p_ec : p_ecpub;
                i++;
            }
            if (sub != NULL) {
                o += (size_t)snprintf(spec + o, sizeof(spec) - o, "%s", sub);
            } else if (p[i] != '\0' && p[i] != '/') {
                spec[o++] = (char)p[i];
            }
        }
        spec[o] = '\0';
        struct auth_jwt *j = NULL;
        msg[0] = '\0';
        int rc = auth_jwt_open(spec, &j, msg, sizeof(msg));
        FUZZ_CHECK(rc == 0 || rc == ERR_INVALID);
        FUZZ_CHECK(rc == 0 ? j != NULL : j == NULL && msg[0] != '\0');
        auth_jwt_free(j);
    }
    return 0;
}

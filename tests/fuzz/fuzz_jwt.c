/*
 * fuzz_jwt.c - the JWT verifier (registry/server/auth_jwt.c) on arbitrary
 * tokens, as any client can send one in an Authorization header, for each
 * signing family (fuzz_jwt_spec.c covers the claims behind a valid
 * signature and the --auth-token spec parser).
 *
 * Goal: any token is either taken (then its user is a NUL-terminated name
 * that fits the buffer) or refused with ERR_INVALID_AUTH_TOKEN; never a
 * crash, a leak or a read past the token; and for any user name and
 * revision the input picks, a token the member signs verifies back to
 * exactly that user and revision (the property etcd's clients rely on),
 * while the same token with its last byte changed is refused.
 *
 * Input: byte 0 picks the key (RS256, ES256, HS256 and PS384 on the RSA
 * key); byte 1 bit 0 chooses the round trip instead of verifying the rest
 * as a token; the rest is the token (or the user name, up to 255 bytes).
 * The keys are fixed test keys, made once with openssl for this file and
 * used for nothing else, so that the checked-in seeds (real tokens signed
 * by auth_jwt_sign: FUZZ_JWT_SEEDS=dir ./fuzz_jwt writes them) verify.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "registry/server/auth_jwt.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 1200
#define NOW_S        1900000000u
#define KEYS         4

static const char rsa_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDkQrINsPr9S2QS\n"
    "yhAs9XiG8L8siPrxMeakhtXKuCLoU8EG4acUCNHK9rRtPby6T5qRteXOWWRoAgGe\n"
    "W5DQXGc3+cUaTSQrM5FjVhl5F11BUZAHw3COEEz+FVli8AFuZ3J/gN5vj6bvts8Y\n"
    "XFsLUPlBh5xILRpBY5NqzRI4/P/x0HF/WkCVUjE8nASod6XF92lKTBPrJgeXpUik\n"
    "OeOq2IPkFYApHXG7LOl916L0KqBaRHJ3JCJfB1TKwU56FFaKEKtN/yhZsOCcE/Vv\n"
    "absLrXgO7OLlux5TR7sDXNCccOdq/TvkzZGPYT4edLDXcSdhiF1yTf5T1g4hL5/u\n"
    "zIxEHCpBAgMBAAECggEAApNnf6snWriuBd509vjqXDiqKgLxGzJftd9JDG5UnVAM\n"
    "PdTJv9QtcxYJHH5Fm3zR+ijcd/fL+Wnj+3w9745kLzGSaJTsK1BvG9KcW3o1kaR6\n"
    "VMGySujpFLXuqgsaZqGxHSC6Adxgx+3SO1lkp2vjJpSBh9JgeTi5/WRk7mYAFZbp\n"
    "3Wgz/Up5UPbEeVlKWjat3VBIsQxbkZeviTGIHrCDLyQL5BZNqGFeoVM9EFGgBsL8\n"
    "i/TzUYLB7IVZ+8zKUpPR/4fPDzqF5jMtmbs8NxgQbd4t+GLExn7PAvYkw2cgYPCI\n"
    "+1i+bK15U43R0HnYTvRxAaPLHvzLOPBqvoe0o+JwRQKBgQD8WmqVvUEVtRXNHhWA\n"
    "InIb8Iy00NY8AXTTkXUac9R/qp2bDmjR95N6j5lR+vw4bWDIWSmUnBrO/d47bT/b\n"
    "P0WaIToSBg2ii9UGU+0ypxnvH/H3Dfw2NllAh06Erd/jqiIN6zT1llM+9RFRnVHr\n"
    "Lxcv1HzrjsAlf97e6Fp1YuzlBQKBgQDnjyXpSu8qFuhs+0KPUaTPWiVqpztz40tK\n"
    "unDWo3AhWjixbcj61+0zFP05tYdjGd4sz47WpAmsoRbkeWk3nMho/pcWJAM41Bvn\n"
    "IAsZNvFV1GjdWczwgKFRWq9AMswlA29CBhVfwGOvtYfv4yoO1VN5XKuL088z7NDa\n"
    "3eS6uAi1DQKBgAtuqS95cG5kUsWFHGI+rT64yhcS8vGq+zjueQimwLS77QHuSC9i\n"
    "8Op3gPGm1jBUPDM3XtvdqpVACQZWL7NmDWgrIy9X2NxJS3BK8w79ZP5hSxvvJULr\n"
    "eWWj+5mlKuRse7h3tGF/2uuaPJue7ewiqQFAthwRzoCkZ1tf2WFCBwtlAoGAK0vq\n"
    "zMpEGdyarPX2JhIf/N1gLacDSNHxHBHsU1XP+4yBGTvr3mtNYMXF62pz3CXUExDk\n"
    "JmIZpPuh6iqBb/KSzn78BRnKuG+AoCCvspFBYskKqojF9xo2D54jMp/M6AbSYMf+\n"
    "ax7wBMSunD4feRKOPx0CvmxmS9E15BalU/xhNGkCgYEAkxc8/PkPjJ7F8t0sFk6x\n"
    "wyTz4rdbvJnsa5R8GRYQAnKDRQMsB6twqt9syd3zqfT2a6hA3ZkRVuwdUKJcDOzU\n"
    "yOlzcq/cPrAJoptxS1oo88ScJ8CK0POTaT0ZzB+s7K4gfib2iQeil0ktURnq7Eya\n"
    "U53CD//4siCi4iS5UJPhjVE=\n"
    "-----END PRIVATE KEY-----\n";
static const char rsa_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA5EKyDbD6/UtkEsoQLPV4\n"
    "hvC/LIj68THmpIbVyrgi6FPBBuGnFAjRyva0bT28uk+akbXlzllkaAIBnluQ0Fxn\n"
    "N/nFGk0kKzORY1YZeRddQVGQB8NwjhBM/hVZYvABbmdyf4Deb4+m77bPGFxbC1D5\n"
    "QYecSC0aQWOTas0SOPz/8dBxf1pAlVIxPJwEqHelxfdpSkwT6yYHl6VIpDnjqtiD\n"
    "5BWAKR1xuyzpfdei9CqgWkRydyQiXwdUysFOehRWihCrTf8oWbDgnBP1b2m7C614\n"
    "Duzi5bseU0e7A1zQnHDnav075M2Rj2E+HnSw13EnYYhdck3+U9YOIS+f7syMRBwq\n"
    "QQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";
static const char ec_key[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgM1hGXAWY4tPmTutA\n"
    "nebXZWcg3HS1C7w9iJXaQKC+xlqhRANCAAQ0SXSEbFsdmUT0qTo1qX6wmL8YFcgg\n"
    "UqGirX3B51cCxyvDRfyc6pQLIyM5fzR1/YTotllXS2ydlo4b5cTno3FQ\n"
    "-----END PRIVATE KEY-----\n";
static const char ec_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENEl0hGxbHZlE9Kk6Nal+sJi/GBXI\n"
    "IFKhoq19wedXAscrw0X8nOqUCyMjOX80df2E6LZZV0tsnZaOG+XE56NxUA==\n"
    "-----END PUBLIC KEY-----\n";
static const char hs_secret[] = "cairn fuzz secret, not for use";

static char dir[] = "/tmp/cairn-fuzz-jwt.XXXXXX";
static struct auth_jwt *jwt[KEYS];

static void put_file(const char *name, const char *text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(fputs(text, f) >= 0);
    FUZZ_CHECK(fclose(f) == 0);
}

static void cleanup(void)
{
    for (int i = 0; i < KEYS; i++) {
        auth_jwt_free(jwt[i]);
    }
    fuzz_empty_dir(dir);
    rmdir(dir);
}

static void write_seeds(const char *out)
{
    static const char *const users[] = {"root", "alice",
                                        "a-much-longer-user.name_with.dots"};
    char token[AUTH_JWT_TOKEN_MAX + 8], path[4096];
    int n = 0;
    for (int k = 0; k < KEYS; k++) {
        for (size_t u = 0; u < sizeof(users) / sizeof(users[0]); u++) {
            FUZZ_CHECK(auth_jwt_sign(jwt[k], users[u], 7 + u, NOW_S - 5, token,
                                     sizeof(token)) == 0);
            snprintf(path, sizeof(path), "%s/seed-%d", out, n++);
            FILE *f = fopen(path, "w");
            FUZZ_CHECK(f != NULL);
            fputc(k, f);
            fputc(0, f);
            fputs(token, f);
            fclose(f);
            snprintf(path, sizeof(path), "%s/seed-%d", out, n++);
            f = fopen(path, "w");
            FUZZ_CHECK(f != NULL);
            fputc(k, f);
            fputc(1, f);
            fputs(users[u], f);
            fclose(f);
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char rk[4096], rp[4096], ek[4096], ep[4096], hs[4096], spec[20000];
    char msg[512];
    static const char *const methods[KEYS] = {"RS256", "ES256", "HS256",
                                              "PS384"};
    (void)argc;
    (void)argv;
    FUZZ_CHECK(mkdtemp(dir) != NULL);
    atexit(cleanup);
    put_file("rsa.key", rsa_key, rk, sizeof(rk));
    put_file("rsa.pub", rsa_pub, rp, sizeof(rp));
    put_file("ec.key", ec_key, ek, sizeof(ek));
    put_file("ec.pub", ec_pub, ep, sizeof(ep));
    put_file("hs.key", hs_secret, hs, sizeof(hs));
    for (int k = 0; k < KEYS; k++) {
        const char *priv = k == 1 ? ek : k == 2 ? hs : rk;
        const char *pub = k == 1 ? ep : k == 2 ? hs : rp;
        snprintf(spec, sizeof(spec),
                 "jwt,pub-key=%s,priv-key=%s,sign-method=%s,ttl=5m", pub, priv,
                 methods[k]);
        int rc = auth_jwt_open(spec, &jwt[k], msg, sizeof(msg));
        if (rc != 0) {
            fprintf(stderr, "fuzz_jwt: %s: %s\n", methods[k], msg);
        }
        FUZZ_CHECK(rc == 0);
    }
    const char *seeds = getenv("FUZZ_JWT_SEEDS");
    if (seeds != NULL && seeds[0] != '\0') {
        write_seeds(seeds);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char token[FUZZ_MAX_LEN + 1], user[AUTH_JWT_TOKEN_MAX];
    uint64_t rev = 0;
    if (size < 2 || size > FUZZ_MAX_LEN) {
        return 0;
    }
    const struct auth_jwt *j = jwt[data[0] % KEYS];
    bool round_trip = (data[1] & 1) != 0;
    memcpy(token, data + 2, size - 2);
    token[size - 2] = '\0'; /* a NUL inside cuts it, as a C string does */
    if (!round_trip) {
        memset(user, 'x', sizeof(user));
        int rc = auth_jwt_verify(j, token, NOW_S, user, sizeof(user), &rev);
        FUZZ_CHECK(rc == 0 || rc == ERR_INVALID_AUTH_TOKEN);
        FUZZ_CHECK(rc != 0 || memchr(user, '\0', sizeof(user)) != NULL);
        return 0;
    }
    /* the round trip: a name the input picks, a revision from its length */
    char name[256], signed_tok[AUTH_JWT_TOKEN_MAX];
    size_t n =
        strlen(token) < sizeof(name) - 1 ? strlen(token) : sizeof(name) - 1;
    memcpy(name, token, n);
    name[n] = '\0';
    uint64_t want = (uint64_t)size * 977u;
    int rc =
        auth_jwt_sign(j, name, want, NOW_S, signed_tok, sizeof(signed_tok));
    if (rc != 0) {
        return 0; /* a name whose token does not fit: refused, fine */
    }
    rc = auth_jwt_verify(j, signed_tok, NOW_S + 1, user, sizeof(user), &rev);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(strcmp(user, name) == 0);
    FUZZ_CHECK(rev == want);
    /* the last character of the signature, changed: refused */
    size_t tl = strlen(signed_tok);
    signed_tok[tl - 1] = signed_tok[tl - 1] == 'A' ? 'B' : 'A';
    rc = auth_jwt_verify(j, signed_tok, NOW_S + 1, user, sizeof(user), &rev);
    FUZZ_CHECK(rc == ERR_INVALID_AUTH_TOKEN);
    /* expired: ttl 5 min */
    rc = auth_jwt_sign(j, name, want, NOW_S, signed_tok, sizeof(signed_tok));
    FUZZ_CHECK(rc == 0);
    rc = auth_jwt_verify(j, signed_tok, NOW_S + 301, user, sizeof(user), &rev);
    FUZZ_CHECK(rc == ERR_INVALID_AUTH_TOKEN);
    return 0;
}

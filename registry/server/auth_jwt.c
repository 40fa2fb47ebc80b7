/*
 * auth_jwt.c - etcd's JWT auth tokens: see auth_jwt.h.
 *
 * A token is base64url(header) "." base64url(claims) "." base64url(sig),
 * no padding (RFC 7515's compact form). The header's "alg" must be the
 * configured method: a token cannot choose its own algorithm (the classic
 * "alg":"none" / HS-with-the-public-key confusions are refused before any
 * signature is looked at).
 */
#include "registry/server/auth_jwt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"

#define KEY_FILE_MAX (64 * 1024)

enum family { FAM_RS, FAM_PS, FAM_ES, FAM_HS };

struct auth_jwt {
    char alg[8]; /* "RS256" ... */
    enum family fam;
    const EVP_MD *md;
    size_t es_half;  /* ES: bytes of r and of s */
    EVP_PKEY *priv;  /* RS/PS/ES: signing key, NULL when verify-only */
    EVP_PKEY *pub;   /* RS/PS/ES: verifying key */
    uint8_t *secret; /* HS */
    size_t secret_len;
    uint64_t ttl_s;
};

/* ------------------------------------------------------------- base64url */

static const char B64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encode n bytes into out[cap]; returns the length or 0 when it does not
 * fit (with its NUL). */
static size_t b64url_enc(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    size_t need = (n / 3) * 4 + (n % 3 != 0 ? n % 3 + 1 : 0);
    if (need + 1 > cap) {
        return 0;
    }
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t left = n - i;
        if (left > 1) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (left > 2) {
            v |= in[i + 2];
        }
        out[o++] = B64[(v >> 18) & 63];
        out[o++] = B64[(v >> 12) & 63];
        if (left > 1) {
            out[o++] = B64[(v >> 6) & 63];
        }
        if (left > 2) {
            out[o++] = B64[v & 63];
        }
    }
    out[o] = '\0';
    return o;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decode n chars (no padding) into out[cap]; -1 on a bad char, a bad
 * length or no room. */
static long b64url_dec(const char *in, size_t n, uint8_t *out, size_t cap)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    if (n % 4 == 1) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64_val(in[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) {
                return -1;
            }
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* the leftover bits of the last char must be zero (canonical form) */
    if ((acc & ((1u << bits) - 1)) != 0) {
        return -1;
    }
    return (long)o;
}

/* ------------------------------------------------------------- options */

/* Go's time.ParseDuration for what a ttl is written with: an optional
 * '+', then one or more <decimal><unit>, a decimal being digits with an
 * optional fraction ("1.5"), a unit ns us ms s m h; seconds (at least 1,
 * at most 10 years) out. No strtod: it takes "nan", "inf", hex and
 * exponents, none of which Go does (and a NaN cast to an integer is
 * undefined). */
static int parse_ttl(const char *s, uint64_t *out)
{
    double total = 0;
    const char *p = s;
    if (*p == '+') {
        p++;
    }
    if (*p == '\0') {
        return ERR_INVALID;
    }
    while (*p != '\0') {
        double v = 0, scale = 1;
        bool digits = false;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p++ - '0');
            digits = true;
            if (v > 1e12) {
                return ERR_INVALID;
            }
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                scale /= 10;
                v += (*p++ - '0') * scale;
                digits = true;
            }
        }
        if (!digits) {
            return ERR_INVALID;
        }
        double unit;
        if (strncmp(p, "ns", 2) == 0) {
            unit = 1e-9, p += 2;
        } else if (strncmp(p, "us", 2) == 0) {
            unit = 1e-6, p += 2;
        } else if (strncmp(p, "ms", 2) == 0) {
            unit = 1e-3, p += 2;
        } else if (*p == 's') {
            unit = 1, p += 1;
        } else if (*p == 'm') {
            unit = 60, p += 1;
        } else if (*p == 'h') {
            unit = 3600, p += 1;
        } else {
            return ERR_INVALID;
        }
        total += v * unit;
        if (total > 10.0 * 365 * 86400) {
            return ERR_INVALID;
        }
    }
    if (!(total >= 1)) {
        return ERR_INVALID;
    }
    *out = (uint64_t)total;
    return 0;
}

static int read_file(const char *path, uint8_t **data, size_t *len, char *msg,
                     size_t msg_len, const char *opt)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b;
    size_t n;
    if (f == NULL) {
        snprintf(msg, msg_len, "--auth-token %s=%s: cannot read: %s", opt, path,
                 strerror(errno));
        return ERR_INVALID;
    }
    b = mem_alloc(KEY_FILE_MAX + 1);
    if (b == NULL) {
        fclose(f);
        return -ENOMEM;
    }
    n = fread(b, 1, KEY_FILE_MAX + 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || n == 0 || n > KEY_FILE_MAX) {
        snprintf(msg, msg_len, "--auth-token %s=%s: %s", opt, path,
                 bad      ? "read error"
                 : n == 0 ? "the file is empty"
                          : "larger than 64 KiB: not a key");
        mem_free(b);
        return ERR_INVALID;
    }
    *data = b;
    *len = n;
    return 0;
}

static void ssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        snprintf(buf, cap, "not a PEM key");
    } else {
        ERR_error_string_n(e, buf, cap);
    }
    ERR_clear_error();
}

static int load_key(const char *path, bool private_key, EVP_PKEY **out,
                    char *msg, size_t msg_len)
{
    const char *opt = private_key ? "priv-key" : "pub-key";
    uint8_t *data;
    size_t len;
    char why[256];
    int rc = read_file(path, &data, &len, msg, msg_len, opt);
    if (rc != 0) {
        return rc;
    }
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    EVP_PKEY *k = NULL;
    if (bio != NULL) {
        k = private_key ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
                        : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        BIO_free(bio);
    }
    OPENSSL_cleanse(data, len);
    mem_free(data);
    if (k == NULL) {
        ssl_reason(why, sizeof(why));
        snprintf(msg, msg_len, "--auth-token %s=%s: not a PEM %s key (%s)", opt,
                 path, private_key ? "private" : "public", why);
        return ERR_INVALID;
    }
    *out = k;
    return 0;
}

static int set_method(struct auth_jwt *j, const char *m)
{
    static const struct {
        const char *name;
        enum family fam;
        int bits;
    } tab[] = {
        {"RS256", FAM_RS, 256}, {"RS384", FAM_RS, 384}, {"RS512", FAM_RS, 512},
        {"PS256", FAM_PS, 256}, {"PS384", FAM_PS, 384}, {"PS512", FAM_PS, 512},
        {"ES256", FAM_ES, 256}, {"ES384", FAM_ES, 384}, {"ES512", FAM_ES, 512},
        {"HS256", FAM_HS, 256}, {"HS384", FAM_HS, 384}, {"HS512", FAM_HS, 512}};
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        if (strcmp(tab[i].name, m) == 0) {
            snprintf(j->alg, sizeof(j->alg), "%s", m);
            j->fam = tab[i].fam;
            j->md = tab[i].bits == 256   ? EVP_sha256()
                    : tab[i].bits == 384 ? EVP_sha384()
                                         : EVP_sha512();
            j->es_half = tab[i].bits == 256 ? 32 : tab[i].bits == 384 ? 48 : 66;
            return 0;
        }
    }
    return ERR_INVALID;
}

/* The key fits the method: RSA for RS/PS (2048 bits at least), an EC key
 * on the method's curve for ES. */
static int key_fits(const struct auth_jwt *j, EVP_PKEY *k, const char *opt,
                    const char *path, char *msg, size_t msg_len)
{
    if (j->fam == FAM_RS || j->fam == FAM_PS) {
        if (!EVP_PKEY_is_a(k, "RSA")) {
            snprintf(msg, msg_len,
                     "--auth-token %s=%s: sign-method %s needs an RSA key", opt,
                     path, j->alg);
            return ERR_INVALID;
        }
        if (EVP_PKEY_get_bits(k) < 2048) {
            snprintf(msg, msg_len,
                     "--auth-token %s=%s: an RSA key of %d bits is too weak "
                     "(2048 at least)",
                     opt, path, EVP_PKEY_get_bits(k));
            return ERR_INVALID;
        }
        return 0;
    }
    int want = j->es_half == 32 ? 256 : j->es_half == 48 ? 384 : 521;
    const char *curve = j->es_half == 32   ? "prime256v1"
                        : j->es_half == 48 ? "secp384r1"
                                           : "secp521r1";
    char group[64] = "";
    /* by name: secp256k1 has 256 bits too, and Go (etcd) refuses it */
    if (!EVP_PKEY_is_a(k, "EC") ||
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                       sizeof(group), NULL) != 1 ||
        strcmp(group, curve) != 0) {
        ERR_clear_error();
        snprintf(msg, msg_len,
                 "--auth-token %s=%s: sign-method %s needs an EC key on "
                 "P-%d",
                 opt, path, j->alg, want);
        return ERR_INVALID;
    }
    return 0;
}

void auth_jwt_free(struct auth_jwt *j)
{
    if (j == NULL) {
        return;
    }
    EVP_PKEY_free(j->priv);
    EVP_PKEY_free(j->pub);
    if (j->secret != NULL) {
        OPENSSL_cleanse(j->secret, j->secret_len);
        mem_free(j->secret);
    }
    mem_free(j);
}

int auth_jwt_open(const char *spec, struct auth_jwt **out, char *msg,
                  size_t msg_len)
{
    char *copy = mem_dup(spec, strlen(spec) + 1);
    char *save = NULL;
    char *pub = NULL, *priv = NULL, *method = NULL, *ttl = NULL;
    struct auth_jwt *j = mem_calloc(1, sizeof(*j));
    int rc = 0;
    *out = NULL;
    if (copy == NULL || j == NULL) {
        mem_free(copy);
        mem_free(j);
        return -ENOMEM;
    }
    j->ttl_s = AUTH_JWT_TTL_DEFAULT_S;
    char *tok = strtok_r(copy, ",", &save);
    if (tok == NULL || strcmp(tok, "jwt") != 0) {
        snprintf(msg, msg_len, "--auth-token: not a jwt spec");
        rc = ERR_INVALID;
    }
    while (rc == 0 && (tok = strtok_r(NULL, ",", &save)) != NULL) {
        char *eq = strchr(tok, '=');
        if (eq == NULL || eq[1] == '\0') {
            snprintf(msg, msg_len,
                     "--auth-token: option \"%s\" has no value (want "
                     "name=value)",
                     tok);
            rc = ERR_INVALID;
            break;
        }
        *eq = '\0';
        char **slot = strcmp(tok, "pub-key") == 0       ? &pub
                      : strcmp(tok, "priv-key") == 0    ? &priv
                      : strcmp(tok, "sign-method") == 0 ? &method
                      : strcmp(tok, "ttl") == 0         ? &ttl
                                                        : NULL;
        if (slot == NULL) {
            /* etcd only warns ("unknown JWT options"): a spec etcd takes
             * must start this member too */
            LOGW("auth",
                 "--auth-token: unknown jwt option \"%s\" ignored "
                 "(known: pub-key, priv-key, sign-method, ttl)",
                 tok);
        } else if (*slot != NULL) {
            snprintf(msg, msg_len, "--auth-token: %s given twice", tok);
            rc = ERR_INVALID;
        } else {
            *slot = eq + 1;
        }
    }
    if (rc == 0 && method == NULL) {
        snprintf(msg, msg_len, "--auth-token: jwt needs sign-method=");
        rc = ERR_INVALID;
    }
    if (rc == 0 && set_method(j, method) != 0) {
        snprintf(msg, msg_len,
                 "--auth-token: unknown sign-method \"%s\" (RS256, RS384, "
                 "RS512, PS256, PS384, PS512, ES256, ES384, ES512, HS256, "
                 "HS384, HS512)",
                 method);
        rc = ERR_INVALID;
    }
    if (rc == 0 && ttl != NULL && parse_ttl(ttl, &j->ttl_s) != 0) {
        snprintf(msg, msg_len,
                 "--auth-token: ttl \"%s\" is not a duration of 1s..10y "
                 "(e.g. 5m, 300s, 1h)",
                 ttl);
        rc = ERR_INVALID;
    }
    if (rc == 0 && j->fam == FAM_HS) {
        if (priv == NULL) {
            snprintf(msg, msg_len,
                     "--auth-token: sign-method %s needs priv-key= (the "
                     "file's bytes are the shared secret)",
                     j->alg);
            rc = ERR_INVALID;
        } else {
            rc = read_file(priv, &j->secret, &j->secret_len, msg, msg_len,
                           "priv-key");
        }
    } else if (rc == 0) {
        if (pub == NULL && priv == NULL) {
            snprintf(msg, msg_len,
                     "--auth-token: jwt needs pub-key= and/or priv-key=");
            rc = ERR_INVALID;
        }
        if (rc == 0 && priv != NULL) {
            rc = load_key(priv, true, &j->priv, msg, msg_len);
            rc = rc != 0 ? rc
                         : key_fits(j, j->priv, "priv-key", priv, msg, msg_len);
        }
        if (rc == 0 && pub != NULL) {
            rc = load_key(pub, false, &j->pub, msg, msg_len);
            rc = rc != 0 ? rc
                         : key_fits(j, j->pub, "pub-key", pub, msg, msg_len);
        }
        if (rc == 0 && j->pub != NULL && j->priv != NULL &&
            EVP_PKEY_eq(j->pub, j->priv) != 1) {
            ERR_clear_error();
            snprintf(msg, msg_len,
                     "--auth-token: pub-key=%s does not match priv-key=%s", pub,
                     priv);
            rc = ERR_INVALID;
        }
        if (rc == 0 && j->pub == NULL) {
            /* the private key verifies too */
            if (EVP_PKEY_up_ref(j->priv) != 1) {
                rc = -ENOMEM;
            } else {
                j->pub = j->priv;
            }
        }
    }
    if (rc == 0 && (j->fam == FAM_HS || j->priv != NULL)) {
        /* a round trip now rather than a failing Authenticate later: a
         * key so large its tokens pass AUTH_JWT_TOKEN_MAX (RSA over 4096
         * bits), a key OpenSSL loads but cannot sign with */
        char trial[AUTH_JWT_TOKEN_MAX], user[40];
        uint64_t rev = 0;
        if (auth_jwt_sign(j, "a-user-name-of-32-characters-abc", 1, 1000, trial,
                          sizeof(trial)) != 0 ||
            auth_jwt_verify(j, trial, 1000, user, sizeof(user), &rev) != 0) {
            snprintf(msg, msg_len,
                     "--auth-token priv-key=%s: a token signed with this key "
                     "does not verify or passes %d bytes",
                     priv, AUTH_JWT_TOKEN_MAX);
            rc = ERR_INVALID;
        }
    }
    mem_free(copy);
    if (rc != 0) {
        auth_jwt_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

/* ------------------------------------------------------ sign and verify */

static int pss_params(const struct auth_jwt *j, EVP_PKEY_CTX *pc, bool sign)
{
    if (j->fam != FAM_PS) {
        return 1;
    }
    /* RFC 7518: the salt is as long as the digest. Verifying takes any
     * length, as Go's jwt library signs with the longest one. */
    return EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(
               pc, sign ? RSA_PSS_SALTLEN_DIGEST : RSA_PSS_SALTLEN_AUTO) > 0;
}

/* Signature of in[n] in JWS form into sig[cap]; its length, or -1. */
static long sign_raw(const struct auth_jwt *j, const char *in, size_t n,
                     uint8_t *sig, size_t cap)
{
    if (j->fam == FAM_HS) {
        unsigned int len = 0;
        if (cap < EVP_MAX_MD_SIZE ||
            HMAC(j->md, j->secret, (int)j->secret_len, (const uint8_t *)in, n,
                 sig, &len) == NULL) {
            return -1;
        }
        return (long)len;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    uint8_t der[256];
    size_t len = j->fam == FAM_ES ? sizeof(der) : cap;
    long out = -1;
    if (ctx != NULL &&
        EVP_DigestSignInit(ctx, &pc, j->md, NULL, j->priv) == 1 &&
        pss_params(j, pc, true) &&
        EVP_DigestSign(ctx, j->fam == FAM_ES ? der : sig, &len,
                       (const uint8_t *)in, n) == 1) {
        out = (long)len;
    }
    EVP_MD_CTX_free(ctx);
    if (out > 0 && j->fam == FAM_ES) {
        /* DER ECDSA-Sig-Value to JWS's fixed-width r || s */
        const uint8_t *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, out);
        out = -1;
        if (es != NULL && cap >= 2 * j->es_half &&
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, (int)j->es_half) > 0 &&
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + j->es_half,
                         (int)j->es_half) > 0) {
            out = (long)(2 * j->es_half);
        }
        ECDSA_SIG_free(es);
    }
    ERR_clear_error();
    return out;
}

static bool verify_raw(const struct auth_jwt *j, const char *in, size_t n,
                       const uint8_t *sig, size_t len)
{
    if (j->fam == FAM_HS) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        long m = sign_raw(j, in, n, mac, sizeof(mac));
        return m > 0 && (size_t)m == len && CRYPTO_memcmp(mac, sig, len) == 0;
    }
    uint8_t der[256];
    const uint8_t *s = sig;
    size_t slen = len;
    if (j->fam == FAM_ES) {
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = NULL, *sv = NULL;
        uint8_t *p = der;
        int dl = -1;
        if (len == 2 * j->es_half && es != NULL) {
            r = BN_bin2bn(sig, (int)j->es_half, NULL);
            sv = BN_bin2bn(sig + j->es_half, (int)j->es_half, NULL);
        }
        if (r != NULL && sv != NULL && ECDSA_SIG_set0(es, r, sv) == 1) {
            r = sv = NULL; /* es owns them */
            if (i2d_ECDSA_SIG(es, NULL) <= (int)sizeof(der)) {
                dl = i2d_ECDSA_SIG(es, &p);
            }
        }
        BN_free(r);
        BN_free(sv);
        ECDSA_SIG_free(es);
        if (dl <= 0) {
            ERR_clear_error();
            return false;
        }
        s = der;
        slen = (size_t)dl;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    bool ok = ctx != NULL &&
              EVP_DigestVerifyInit(ctx, &pc, j->md, NULL, j->pub) == 1 &&
              pss_params(j, pc, false) &&
              EVP_DigestVerify(ctx, s, slen, (const uint8_t *)in, n) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

/* base64url of a JSON value's compact form, sorted keys (as Go writes a
 * map), into out[cap]; its length or 0. */
static size_t b64_json(json_t *v, char *out, size_t cap)
{
    char *s = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    size_t n =
        s != NULL ? b64url_enc((const uint8_t *)s, strlen(s), out, cap) : 0;
    free(s);
    return n;
}

int auth_jwt_sign(const struct auth_jwt *j, const char *user, uint64_t rev,
                  uint64_t now_s, char *out, size_t cap)
{
    uint8_t sig[1024];
    size_t o;
    if (j->fam != FAM_HS && j->priv == NULL) {
        return ERR_AUTH_VERIFY_ONLY; /* etcd: gRPC Unknown, its text */
    }
    if (user == NULL || user[0] == '\0') {
        return ERR_INVALID; /* verify refuses such a token, as etcd's does */
    }
    json_t *h = json_pack("{s:s,s:s}", "alg", j->alg, "typ", "JWT");
    json_t *c =
        json_pack("{s:I,s:I,s:s}", "exp", (json_int_t)(now_s + j->ttl_s),
                  "revision", (json_int_t)rev, "username", user);
    o = b64_json(h, out, cap);
    if (o > 0 && o + 1 < cap) {
        out[o++] = '.';
        size_t n = b64_json(c, out + o, cap - o);
        o = n > 0 ? o + n : 0;
    } else {
        o = 0;
    }
    json_decref(h);
    json_decref(c);
    if (o == 0 || o + 1 >= cap) {
        return ERR_INVALID;
    }
    long sl = sign_raw(j, out, o, sig, sizeof(sig));
    if (sl <= 0) {
        return ERR_INVALID;
    }
    out[o++] = '.';
    return b64url_enc(sig, (size_t)sl, out + o, cap - o) > 0 ? 0 : ERR_INVALID;
}

/* Decode part [p, p+n) as a JSON object. */
static json_t *part_json(const char *p, size_t n)
{
    uint8_t buf[AUTH_JWT_TOKEN_MAX];
    long len = b64url_dec(p, n, buf, sizeof(buf));
    if (len <= 0) {
        return NULL;
    }
    json_t *v = json_loadb((const char *)buf, (size_t)len,
                           JSON_REJECT_DUPLICATES, NULL);
    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

int auth_jwt_verify(const struct auth_jwt *j, const char *token, uint64_t now_s,
                    char *user, size_t cap, uint64_t *rev)
{
    size_t n = strnlen(token, AUTH_JWT_TOKEN_MAX);
    const char *d1 = memchr(token, '.', n);
    const char *d2 =
        d1 != NULL ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - token)) : NULL;
    uint8_t sig[1024];
    int rc = ERR_INVALID_AUTH_TOKEN;
    if (n >= AUTH_JWT_TOKEN_MAX || d1 == NULL || d2 == NULL ||
        memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - token)) != NULL) {
        return rc;
    }
    json_t *h = part_json(token, (size_t)(d1 - token));
    json_t *c = NULL;
    const char *alg =
        h != NULL ? json_string_value(json_object_get(h, "alg")) : NULL;
    if (alg == NULL || strcmp(alg, j->alg) != 0) {
        json_decref(h);
        return rc;
    }
    long sl =
        b64url_dec(d2 + 1, n - (size_t)(d2 + 1 - token), sig, sizeof(sig));
    if (sl > 0 && verify_raw(j, token, (size_t)(d2 - token), sig, (size_t)sl)) {
        c = part_json(d1 + 1, (size_t)(d2 - d1 - 1));
    }
    if (c != NULL) {
        json_t *u = json_object_get(c, "username");
        json_t *r = json_object_get(c, "revision");
        json_t *e = json_object_get(c, "exp");
        /* etcd writes both as JSON integers (Go's int64 and uint64); a
         * real, a negative or a missing one is not a token of ours (Go's
         * jwt library would take a token with no exp: we do not) */
        json_int_t exp = json_is_integer(e) ? json_integer_value(e) : -1;
        json_int_t rv = json_is_integer(r) ? json_integer_value(r) : -1;
        const char *us = json_string_value(u);
        if (us != NULL && us[0] != '\0' && strlen(us) < cap && rv >= 0 &&
            exp >= 0 && (uint64_t)exp >= now_s) {
            snprintf(user, cap, "%s", us);
            *rev = (uint64_t)rv;
            rc = 0;
        }
    }
    json_decref(h);
    json_decref(c);
    return rc;
}

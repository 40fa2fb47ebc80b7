/*
 * tls_ctx.c - the client port's SSL_CTX: etcd's TLS flags, checked at start.
 *
 * etcd 3.4 (transport/listener.go, embed/etcd.go) takes --cert-file and
 * --key-file for an https:// client URL, asks every client for a
 * certificate signed by --trusted-ca-file when that file or
 * --client-cert-auth is given (a CA file alone already requires client
 * certificates: observed on etcd 3.4.23), checks --client-crl-file, limits
 * TLS 1.2 suites to --cipher-suites (Go names) and accepts TLS 1.2 and 1.3.
 * --auto-tls without files makes a self-signed ECDSA P-256 certificate for
 * the listen hosts, valid one year. We do the same with OpenSSL 3.
 *
 * Unlike etcd, which finds a bad file only when it serves (after "ready to
 * serve client requests") and serves an expired certificate, every file is
 * read and checked here, before anything listens, and an error names the
 * flag, the file and the reason: unreadable, no PEM data of the right kind
 * (a key given as the certificate says so), a key that does not match the
 * certificate, a certificate that expired or is not valid yet.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/err.h"
#include "base/log.h"
#include "registry/server/server.h"
#include "registry/server/tls_int.h"

/* ------------------------------------------------------------ helpers */

/* OpenSSL's first queued reason, or a fallback; clears the queue. */
const char *server__tls_err(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, len, "%s", fallback);
    } else {
        const char *r = ERR_reason_error_string(e);
        snprintf(buf, len, "%s", r != NULL ? r : fallback);
    }
    ERR_clear_error();
    return buf;
}

static int pem_no_password(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1; /* never prompt on the terminal: an encrypted key fails */
}

static FILE *open_or_say(const char *flag, const char *path, char *msg,
                         size_t msg_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(msg, msg_len, "--%s %s: cannot read: %s", flag, path,
                 strerror(errno));
    }
    return f;
}

static bool file_mentions(const char *path, const char *what)
{
    char line[256];
    bool found = false;
    FILE *f = fopen(path, "r");
    int lines = 0;
    if (f == NULL) {
        return false;
    }
    /* bounded: PEM headers sit on their own lines near the top */
    while (!found && lines++ < 4096 && fgets(line, sizeof(line), f) != NULL) {
        found = strstr(line, what) != NULL;
    }
    fclose(f);
    return found;
}

static void asn1_time_str(const ASN1_TIME *t, char *buf, size_t len)
{
    BIO *b = BIO_new(BIO_s_mem());
    int n = 0;
    buf[0] = '\0';
    if (b != NULL && ASN1_TIME_print(b, t) == 1) {
        n = BIO_read(b, buf, (int)len - 1);
    }
    buf[n > 0 ? n : 0] = '\0';
    BIO_free(b);
}

/* ------------------------------------------------ certificate and key */

static int check_validity(X509 *x, const char *pfx, const char *path, char *msg,
                          size_t msg_len)
{
    char when[64];
    if (X509_cmp_current_time(X509_get0_notAfter(x)) <= 0) {
        asn1_time_str(X509_get0_notAfter(x), when, sizeof(when));
        snprintf(msg, msg_len,
                 "--%scert-file %s: the certificate expired on %s", pfx, path,
                 when);
        return ERR_INVALID;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0) {
        asn1_time_str(X509_get0_notBefore(x), when, sizeof(when));
        snprintf(msg, msg_len,
                 "--%scert-file %s: the certificate is not valid before %s",
                 pfx, path, when);
        return ERR_INVALID;
    }
    return 0;
}

int server__tls_load_cert(SSL_CTX *ctx, const char *pfx, const char *path,
                          char *msg, size_t msg_len)
{
    char why[128];
    char flag[32];
    snprintf(flag, sizeof(flag), "%scert-file", pfx);
    FILE *f = open_or_say(flag, path, msg, msg_len);
    X509 *x;
    int rc;
    if (f == NULL) {
        return ERR_INVALID;
    }
    x = PEM_read_X509(f, NULL, pem_no_password, NULL);
    fclose(f);
    if (x == NULL) {
        ERR_clear_error();
        if (file_mentions(path, "PRIVATE KEY")) {
            snprintf(msg, msg_len,
                     "--%s %s: holds a private key, not a certificate "
                     "(--%scert-file and --%skey-file swapped?)",
                     flag, path, pfx, pfx);
        } else {
            snprintf(msg, msg_len, "--%s %s: no PEM certificate in it", flag,
                     path);
        }
        return ERR_INVALID;
    }
    rc = check_validity(x, pfx, path, msg, msg_len);
    X509_free(x);
    if (rc != 0) {
        return rc;
    }
    /* the leaf and any intermediates after it, sent to clients */
    if (SSL_CTX_use_certificate_chain_file(ctx, path) != 1) {
        snprintf(msg, msg_len, "--%s %s: %s", flag, path,
                 server__tls_err(why, sizeof(why), "bad certificate chain"));
        return ERR_INVALID;
    }
    return 0;
}

int server__tls_load_key(SSL_CTX *ctx, const char *pfx, const char *path,
                         const char *cert_path, char *msg, size_t msg_len)
{
    char flag[32];
    snprintf(flag, sizeof(flag), "%skey-file", pfx);
    FILE *f = open_or_say(flag, path, msg, msg_len);
    EVP_PKEY *k;
    int ok;
    if (f == NULL) {
        return ERR_INVALID;
    }
    k = PEM_read_PrivateKey(f, NULL, pem_no_password, NULL);
    fclose(f);
    if (k == NULL) {
        ERR_clear_error();
        if (file_mentions(path, "ENCRYPTED")) {
            snprintf(msg, msg_len,
                     "--%s %s: the key is encrypted (a passphrase is not "
                     "supported)",
                     flag, path);
        } else if (file_mentions(path, "CERTIFICATE")) {
            snprintf(msg, msg_len,
                     "--%s %s: holds a certificate, not a private key "
                     "(--%scert-file and --%skey-file swapped?)",
                     flag, path, pfx, pfx);
        } else {
            snprintf(msg, msg_len, "--%s %s: no PEM private key in it", flag,
                     path);
        }
        return ERR_INVALID;
    }
    ok = SSL_CTX_use_PrivateKey(ctx, k) == 1 &&
         SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(k);
    ERR_clear_error();
    if (!ok) {
        snprintf(msg, msg_len,
                 "--%s %s: the private key does not match the "
                 "certificate in --%scert-file %s",
                 flag, path, pfx, cert_path);
        return ERR_INVALID;
    }
    return 0;
}

/* ------------------------------------------------- client verification */

int server__tls_load_ca(SSL_CTX *ctx, const char *pfx, const char *path,
                        char *msg, size_t msg_len)
{
    char flag[32];
    snprintf(flag, sizeof(flag), "%strusted-ca-file", pfx);
    FILE *f = open_or_say(flag, path, msg, msg_len);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    size_t count = 0;
    X509 *x;
    if (f == NULL || names == NULL) {
        if (f != NULL) {
            fclose(f);
            snprintf(msg, msg_len, "--%s %s: out of memory", flag, path);
        }
        sk_X509_NAME_free(names);
        return ERR_INVALID;
    }
    /* bounded by the file's size; every certificate is a trusted CA and
     * its name goes into the CertificateRequest, as Go's ClientCAs do */
    while ((x = PEM_read_X509(f, NULL, pem_no_password, NULL)) != NULL) {
        X509_NAME *n = X509_NAME_dup(X509_get_subject_name(x));
        if (X509_STORE_add_cert(store, x) == 1) {
            count++;
        }
        if (n != NULL && sk_X509_NAME_push(names, n) <= 0) {
            X509_NAME_free(n);
        }
        X509_free(x);
    }
    ERR_clear_error();
    fclose(f);
    if (count == 0) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        snprintf(msg, msg_len, "--%s %s: no PEM certificate in it", flag, path);
        return ERR_INVALID;
    }
    SSL_CTX_set_client_CA_list(ctx, names); /* takes names */
    return 0;
}

int server__tls_load_crl(SSL_CTX *ctx, const char *pfx, const char *path,
                         char *msg, size_t msg_len)
{
    const char *flag = pfx[0] != '\0' ? "peer-crl-file" : "client-crl-file";
    FILE *f = open_or_say(flag, path, msg, msg_len);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_CRL *crl;
    size_t count = 0;
    if (f == NULL) {
        return ERR_INVALID;
    }
    while ((crl = PEM_read_X509_CRL(f, NULL, pem_no_password, NULL)) != NULL) {
        if (X509_STORE_add_crl(store, crl) == 1) {
            count++;
        }
        X509_CRL_free(crl);
    }
    ERR_clear_error();
    fclose(f);
    if (count == 0) {
        snprintf(msg, msg_len,
                 "--%s %s: no PEM certificate revocation list in it", flag,
                 path);
        return ERR_INVALID;
    }
    /* the client's own certificate is checked against it, as etcd does */
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
    return 0;
}

/* ------------------------------------------------------ cipher suites */

/* etcd takes Go's names (crypto/tls, the suites etcd 3.4 accepts); OpenSSL
 * its own. They apply to TLS 1.2; TLS 1.3 suites are fixed, in Go too. */
static const struct {
    const char *go;
    const char *ossl;
} suites[] = {
    {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
    {"TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"},
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
     "ECDHE-ECDSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
     "ECDHE-ECDSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"},
};

int server__tls_set_suites(SSL_CTX *ctx, const char *list, char *msg,
                           size_t msg_len)
{
    char copy[1024];
    char out[1024] = "";
    char *save = NULL;
    if (strlen(list) >= sizeof(copy)) {
        snprintf(msg, msg_len, "--cipher-suites: too long");
        return ERR_INVALID;
    }
    snprintf(copy, sizeof(copy), "%s", list);
    for (char *t = strtok_r(copy, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        const char *o = NULL;
        while (*t == ' ') {
            t++;
        }
        for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
            if (strcmp(t, suites[i].go) == 0) {
                o = suites[i].ossl;
            }
        }
        if (o == NULL) {
            snprintf(msg, msg_len,
                     "--cipher-suites: unexpected TLS cipher suite \"%s\"", t);
            return ERR_INVALID;
        }
        size_t len = strlen(out);
        snprintf(out + len, sizeof(out) - len, "%s%s", len > 0 ? ":" : "", o);
    }
    if (out[0] == '\0' || SSL_CTX_set_cipher_list(ctx, out) != 1) {
        ERR_clear_error();
        snprintf(msg, msg_len, "--cipher-suites: no usable suite in '%s'",
                 list);
        return ERR_INVALID;
    }
    return 0;
}

/* ------------------------------------------------------------ auto TLS */

/* The hosts of the https:// listen URLs, as "IP:a,DNS:b" for the SAN. */
void server__tls_san_from_urls(const struct options_urls *urls, char *out,
                               size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < urls->count; i++) {
        const char *u = urls->urls[i];
        char host[256];
        const char *p = strstr(u, "://");
        size_t hl;
        p = p != NULL ? p + 3 : u;
        hl = strcspn(p, "/");
        const char *colon = memrchr(p, ':', hl);
        hl = colon != NULL ? (size_t)(colon - p) : hl;
        if (hl >= 2 && p[0] == '[') {
            p++;
            hl -= 2;
        }
        if (hl == 0 || hl >= sizeof(host)) {
            continue;
        }
        memcpy(host, p, hl);
        host[hl] = '\0';
        bool ip = strspn(host, "0123456789.:abcdefABCDEF") == hl &&
                  strchr(host, '.') != NULL;
        ip = ip || strchr(host, ':') != NULL;
        size_t l = strlen(out);
        snprintf(out + l, len - l, "%s%s:%s", l > 0 ? "," : "",
                 ip ? "IP" : "DNS", host);
    }
    if (out[0] == '\0') {
        snprintf(out, len, "DNS:localhost,IP:127.0.0.1");
    }
}

static int add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *e;
    int ok;
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    e = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    if (e == NULL) {
        return -1;
    }
    ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : -1;
}

int server__tls_self_cert(const char *san, const char *eku, X509 **x_out,
                          EVP_PKEY **k_out)
{
    uint64_t serial = 0;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *name = x != NULL ? X509_get_subject_name(x) : NULL;
    int ok = k != NULL && x != NULL && name != NULL;
    ok = ok && RAND_bytes((unsigned char *)&serial, sizeof(serial)) == 1;
    ok = ok && X509_set_version(x, 2) == 1 &&
         ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial >> 1) == 1 &&
         X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
         X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600) != NULL &&
         X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                    (const unsigned char *)"etcd", -1, -1,
                                    0) == 1 &&
         X509_set_issuer_name(x, name) == 1 && X509_set_pubkey(x, k) == 1;
    ok = ok && add_ext(x, NID_subject_alt_name, san) == 0 &&
         add_ext(x, NID_key_usage,
                 "critical,digitalSignature,keyEncipherment") == 0 &&
         add_ext(x, NID_ext_key_usage, eku) == 0;
    ok = ok && X509_sign(x, k, EVP_sha256()) > 0;
    if (!ok) {
        X509_free(x);
        EVP_PKEY_free(k);
        return ERR_INVALID;
    }
    *x_out = x;
    *k_out = k;
    return 0;
}

static int auto_tls(SSL_CTX *ctx, const struct options *o, char *msg,
                    size_t msg_len)
{
    char san[1024];
    char why[128];
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    server__tls_san_from_urls(&o->listen_client_urls, san, sizeof(san));
    int ok = server__tls_self_cert(san, "serverAuth", &x, &k) == 0;
    ok = ok && SSL_CTX_use_certificate(ctx, x) == 1 &&
         SSL_CTX_use_PrivateKey(ctx, k) == 1;
    if (!ok) {
        snprintf(msg, msg_len, "--auto-tls: cannot make a certificate: %s",
                 server__tls_err(why, sizeof(why), "OpenSSL failed"));
    } else {
        LOGI("server", "--auto-tls: self-signed certificate for %s", san);
    }
    X509_free(x);
    EVP_PKEY_free(k);
    return ok ? 0 : ERR_INVALID;
}

/* ---------------------------------------------------------------- ALPN */

/* gRPC clients offer h2 alone (grpc-go, grpc-js) or with grpc-exp
 * (grpcio); browsers and curl offer h2 and http/1.1. HTTP/1.1 wins when
 * offered, because the JSON gateway, the REST APIs and the WebSocket
 * streams are served over HTTP/1.1 only; etcd, whose Go server speaks both
 * on h2, picks h2. No overlap: no ALPN, and the connection is HTTP/1.1. */
static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    const unsigned char *h2 = NULL;
    unsigned int i = 0;
    (void)ssl;
    (void)arg;
    while (i < inlen) {
        unsigned int n = in[i];
        const unsigned char *p = in + i + 1;
        if (n == 0 || i + 1 + n > inlen) {
            break; /* malformed: ignore the rest */
        }
        if (n == 8 && memcmp(p, "http/1.1", 8) == 0) {
            *out = p;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        if (n == 2 && memcmp(p, "h2", 2) == 0) {
            h2 = p;
        }
        i += 1 + n;
    }
    if (h2 != NULL) {
        *out = h2;
        *outlen = 2;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

/* ------------------------------------------------------------- context */

static int ctx_fill(SSL_CTX *ctx, const struct options *o, char *msg,
                    size_t msg_len)
{
    const struct options_tls *t = &o->client_tls;
    bool have_files = t->cert_file != NULL && t->cert_file[0] != '\0' &&
                      t->key_file != NULL && t->key_file[0] != '\0';
    int rc = 0;
    if (!have_files && !t->auto_tls) {
        snprintf(msg, msg_len,
                 "TLS key/cert (--cert-file, --key-file) must be provided for "
                 "client url %s with HTTPS scheme",
                 o->listen_client_urls.urls[0]);
        return ERR_INVALID;
    }
    if (have_files) {
        rc = server__tls_load_cert(ctx, "", t->cert_file, msg, msg_len);
        if (rc == 0) {
            rc = server__tls_load_key(ctx, "", t->key_file, t->cert_file, msg,
                                      msg_len);
        }
    } else {
        rc = auto_tls(ctx, o, msg, msg_len);
    }
    if (rc == 0 && t->trusted_ca_file != NULL && t->trusted_ca_file[0]) {
        rc = server__tls_load_ca(ctx, "", t->trusted_ca_file, msg, msg_len);
    } else if (rc == 0 && t->client_cert_auth) {
        /* etcd (Go) verifies against the system roots then */
        (void)SSL_CTX_set_default_verify_paths(ctx);
    }
    if (rc == 0 && t->crl_file != NULL && t->crl_file[0] != '\0') {
        rc = server__tls_load_crl(ctx, "", t->crl_file, msg, msg_len);
    }
    if (rc == 0 && o->cipher_suites != NULL && o->cipher_suites[0] != '\0') {
        rc = server__tls_set_suites(ctx, o->cipher_suites, msg, msg_len);
    }
    return rc;
}

int server__tls_ctx_new(const struct options *o, SSL_CTX **out, char *msg,
                        size_t msg_len)
{
    const struct options_tls *t = &o->client_tls;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    int rc;
    *out = NULL;
    if (ctx == NULL) {
        snprintf(msg, msg_len, "TLS: cannot create a context");
        return -ENOMEM;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* idle connections give their record buffers back */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(ctx, pem_no_password);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    rc = ctx_fill(ctx, o, msg, msg_len);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return rc;
    }
    if (t->client_cert_auth ||
        (t->trusted_ca_file != NULL && t->trusted_ca_file[0] != '\0')) {
        SSL_CTX_set_verify(
            ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    LOGI("server",
         "ClientTLS: cert = %s, key = %s, trusted-ca = %s, "
         "client-cert-auth = %s, crl-file = %s",
         t->cert_file != NULL ? t->cert_file : "",
         t->key_file != NULL ? t->key_file : "",
         t->trusted_ca_file != NULL ? t->trusted_ca_file : "",
         t->client_cert_auth ? "true" : "false",
         t->crl_file != NULL ? t->crl_file : "");
    *out = ctx;
    return 0;
}

/*
 * tls.c - libcairn's TLS settings (tls_int.h): one SSL_CTX per client,
 * shared by its gRPC connection and its /api/v1 calls and streams.
 *
 * The rules follow etcd's Go client (clientv3 with a tls.Config): the
 * server is verified against ca_file, or the system store without one; a
 * client certificate is offered when cert_file and key_file are given;
 * the name checked is server_name, or else the endpoint's host, as an IP
 * address against IP SANs when it is one (crypto/tls does the same, and
 * sends no SNI for an address), as a DNS name otherwise. TLS 1.2 is the
 * floor, as in Go's client. insecure_skip_verify turns every check off.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/stat.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "sdk/client_int.h"
#include "sdk/tls_int.h"

/* OpenSSL's reasons in its error queue, oldest (the root cause, e.g. "no
 * start line") first, joined by ": "; the queue is cleared. */
static void ssl_reasons(char *out, size_t n)
{
    size_t used = 0;
    out[0] = 0;
    unsigned long e;
    /* Bounded by the queue's size (ERR_NUM_ERRORS, 16). */
    while ((e = ERR_get_error()) != 0) {
        const char *r = ERR_reason_error_string(e);
        if (r == NULL || used >= n - 1 || strstr(out, r) != NULL) {
            continue;
        }
        int w = snprintf(out + used, n - used, "%s%s", used ? ": " : "", r);
        used = w < 0 ? n - 1 : used + (size_t)w;
    }
    if (out[0] == 0) {
        snprintf(out, n, "no reason given");
    }
}

/* Whether path can be opened for reading; if not, why into eb. */
static int file_readable(const char *what, const char *path, char *eb,
                         size_t ebn)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        return cairn__why(eb, ebn, CAIRN_E_INVALID, "%s %s: %s", what, path,
                          err_str(-e));
    }
    struct stat st;
    bool dir = fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode);
    fclose(f);
    if (dir) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID, "%s %s: is a directory",
                          what, path);
    }
    return 0;
}

/* Why loading what from path failed: "<what> <path>: <how> (OpenSSL:
 * <reasons>)". */
static int load_failed(const char *what, const char *path, const char *how,
                       char *eb, size_t ebn)
{
    char r[200];
    ssl_reasons(r, sizeof(r));
    return cairn__why(eb, ebn, CAIRN_E_INVALID, "%s %s: %s (OpenSSL: %s)", what,
                      path, how, r);
}

static bool given(const char *s)
{
    return s != NULL && s[0] != 0;
}

/* Loads the CA and the client pair into ctx; 0 or CAIRN_E_INVALID, with
 * the file at fault and the reason in eb. */
static int ctx_load(SSL_CTX *ctx, const struct cairn_options *opt, char *eb,
                    size_t ebn)
{
    if (given(opt->ca_file)) {
        int rc = file_readable("ca_file", opt->ca_file, eb, ebn);
        if (rc != 0) {
            return rc;
        }
        if (SSL_CTX_load_verify_locations(ctx, opt->ca_file, NULL) != 1) {
            return load_failed("ca_file", opt->ca_file,
                               "no PEM certificate in it", eb, ebn);
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return load_failed("the system's CA store", "", "unusable", eb, ebn);
    }
    bool has_cert = given(opt->cert_file);
    if (has_cert != given(opt->key_file)) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID,
                          "%s is given without %s: both or neither",
                          has_cert ? "cert_file" : "key_file",
                          has_cert ? "key_file" : "cert_file");
    }
    if (!has_cert) {
        return 0;
    }
    char how[300];
    int rc = file_readable("cert_file", opt->cert_file, eb, ebn);
    if (rc == 0) {
        rc = file_readable("key_file", opt->key_file, eb, ebn);
    }
    if (rc != 0) {
        return rc;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, opt->cert_file) != 1) {
        return load_failed("cert_file", opt->cert_file, "not a PEM certificate",
                           eb, ebn);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, opt->key_file, SSL_FILETYPE_PEM) !=
        1) {
        /* OpenSSL 3 checks the key against the certificate here too. */
        unsigned long e = ERR_peek_last_error();
        bool mismatch = ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
        snprintf(how, sizeof(how), "does not match cert_file %s",
                 opt->cert_file);
        return load_failed("key_file", opt->key_file,
                           mismatch ? how : "not a PEM private key", eb, ebn);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(how, sizeof(how), "does not match cert_file %s",
                 opt->cert_file);
        return load_failed("key_file", opt->key_file, how, eb, ebn);
    }
    return 0;
}

int cairn__tls_init(struct cairn__tls *t, const struct cairn_options *opt,
                    char *eb, size_t ebn)
{
    memset(t, 0, sizeof(*t));
    bool named = opt->server_name != NULL && opt->server_name[0] != 0;
    t->bare = opt->tls || named ||
              (opt->ca_file != NULL && opt->ca_file[0] != 0) ||
              (opt->cert_file != NULL && opt->cert_file[0] != 0) ||
              (opt->key_file != NULL && opt->key_file[0] != 0);
    bool any_https = false;
    for (size_t i = 0; i < opt->endpoints_count; i++) {
        any_https = any_https || strncmp(opt->endpoints[i], "https://", 8) == 0;
    }
    if (!t->bare && !any_https) {
        return 0;
    }
    ERR_clear_error();
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL) {
        return cairn__why(eb, ebn, CAIRN_E_NOMEM, "tls: no memory");
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* An HTTP/1.1 server with Connection: close may just close; the
     * answer's own framing (Content-Length, chunks) tells truncation. */
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(
        t->ctx, opt->insecure_skip_verify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
        NULL);
    int rc = ctx_load(t->ctx, opt, eb, ebn);
    if (rc == 0 && named) {
        t->server_name =
            mem_dup(opt->server_name, strlen(opt->server_name) + 1);
        rc = t->server_name == NULL ? CAIRN_E_NOMEM : 0;
    }
    if (rc != 0) {
        cairn__tls_free(t);
    }
    return rc;
}

int cairn__tls_copy(struct cairn__tls *dst, const struct cairn__tls *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->bare = src->bare;
    if (src->server_name != NULL) {
        dst->server_name =
            mem_dup(src->server_name, strlen(src->server_name) + 1);
        if (dst->server_name == NULL) {
            return CAIRN_E_NOMEM;
        }
    }
    if (src->ctx != NULL) {
        SSL_CTX_up_ref(src->ctx);
        dst->ctx = src->ctx;
    }
    return 0;
}

void cairn__tls_free(struct cairn__tls *t)
{
    if (t == NULL) {
        return;
    }
    SSL_CTX_free(t->ctx); /* drops this holder's reference */
    mem_free(t->server_name);
    memset(t, 0, sizeof(*t));
}

bool cairn__tls_ep(const struct cairn__tls *t, const char *ep)
{
    if (t == NULL || t->ctx == NULL || strncmp(ep, "http://", 7) == 0) {
        return false;
    }
    return strncmp(ep, "https://", 8) == 0 || t->bare;
}

const char *cairn__ep_strip(const char *ep)
{
    if (strncmp(ep, "https://", 8) == 0) {
        return ep + 8;
    }
    if (strncmp(ep, "http://", 7) == 0) {
        return ep + 7;
    }
    return ep;
}

SSL *cairn__tls_ssl_new(const struct cairn__tls *t, const char *host,
                        const char *alpn)
{
    ASSERT(t->ctx != NULL);
    ASSERT(strlen(alpn) < 255);
    const char *name = t->server_name != NULL ? t->server_name : host;
    SSL *ssl = SSL_new(t->ctx);
    if (ssl == NULL) {
        return NULL;
    }
    unsigned char a[256];
    size_t al = strlen(alpn);
    a[0] = (unsigned char)al;
    memcpy(a + 1, alpn, al);
    unsigned char ip[16];
    bool is_ip =
        inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    int ok = SSL_set_alpn_protos(ssl, a, (unsigned)al + 1) == 0;
    if (is_ip) {
        ok = ok && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name);
    } else {
        ok = ok && SSL_set_tlsext_host_name(ssl, name) == 1 &&
             SSL_set1_host(ssl, name) == 1;
    }
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_connect_state(ssl);
    return ssl;
}

void cairn__tls_why(SSL *ssl, int ret, char *out, size_t n)
{
    ASSERT(out != NULL && n > 0);
    long vr = SSL_get_verify_result(ssl);
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (SSL_get_verify_mode(ssl) != SSL_VERIFY_NONE && vr != X509_V_OK) {
        snprintf(out, n, "x509: certificate verify failed: %s",
                 X509_verify_cert_error_string(vr));
    } else if (r != NULL) {
        snprintf(out, n, "tls: %s", r);
    } else if (SSL_get_error(ssl, ret) == SSL_ERROR_ZERO_RETURN) {
        snprintf(out, n, "tls: the server closed the connection");
    } else {
        snprintf(out, n, "tls: connection lost during the handshake");
    }
    ERR_clear_error();
}

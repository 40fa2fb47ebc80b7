/*
 * fuzz_tls.c - the TLS client port of a real single-member server
 * (tests/fuzz/fuzz_server.h with --auto-tls on an https:// listener) on
 * arbitrary bytes over loopback: registry/server/tls_conn.c (the
 * handshake on memory BIOs, the ALPN split, the relay through the
 * socketpair to the gRPC or HTTP/1.1 side, close_notify and EOF) and
 * tls_ctx.c's callbacks (ALPN selection). OpenSSL parses the records;
 * what it hands us, and when, is ours.
 *
 * Goal: whatever a client sends, the server answers or closes, and closes
 * once the client half-closes; no crash, assertion or leak; every TLS
 * connection is gone from the server (its gauge back to zero) within a
 * bound after the client closed; the member stays healthy.
 *
 * The server asks for client certificates (--client-cert-auth) and
 * trusts a CA made at start; the harness holds a certificate it signed
 * (CN root) and a self-signed one.
 *
 * Input: byte 0 bit 0 clear: the rest is sent as is, as the start of a
 * TLS connection (seeds: ClientHellos recorded from OpenSSL clients, see
 * seeds.c). Set: the harness completes a real handshake first (OpenSSL,
 * no verification of the server), offering ALPN by bits 1-2 (0 none,
 * 1 http/1.1, 2 h2, 3 both) and the CA's client certificate (bit 4: the
 * self-signed one, which the server must refuse), then sends the rest
 * inside TLS (bit 3 clear: HTTP/1.1 requests or an HTTP/2 session) or raw
 * on the socket after the handshake (bit 3 set: forged records, alerts,
 * garbage mid-connection).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tests/fuzz/fuzz_server.h"

#define FUZZ_MAX_LEN 8192
#define WAIT_MS      15000 /* a fuzz check past it */
#define QUIET_MS     8

static struct fuzz_server fs;
/* [0]: a client certificate the server's CA signed; [1]: a self-signed
 * one it must refuse */
static SSL_CTX *cctx[2];

static void cleanup(void)
{
    SSL_CTX_free(cctx[0]);
    SSL_CTX_free(cctx[1]);
    fuzz_empty_dir(fs.dir);
    rmdir(fs.dir);
}

/* A P-256 certificate for cn, signed by issuer (itself when NULL). */
static X509 *cert_new(const char *cn, EVP_PKEY *key, X509 *issuer,
                      EVP_PKEY *issuer_key, bool ca)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    FUZZ_CHECK(x != NULL);
    FUZZ_CHECK(X509_set_version(x, 2) == 1);
    FUZZ_CHECK(ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2) == 1);
    FUZZ_CHECK(X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL);
    FUZZ_CHECK(X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30) != NULL);
    FUZZ_CHECK(
        X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                   (const unsigned char *)cn, -1, -1, 0) == 1);
    FUZZ_CHECK(X509_set_issuer_name(
                   x, X509_get_subject_name(issuer != NULL ? issuer : x)) == 1);
    FUZZ_CHECK(X509_set_pubkey(x, key) == 1);
    X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(
        NULL, &v3, ca ? NID_basic_constraints : NID_ext_key_usage,
        ca ? "critical,CA:TRUE" : "clientAuth");
    FUZZ_CHECK(e != NULL && X509_add_ext(x, e, -1) == 1);
    X509_EXTENSION_free(e);
    FUZZ_CHECK(
        X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()) > 0);
    return x;
}

static SSL_CTX *client_ctx(X509 *cert, EVP_PKEY *key)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    FUZZ_CHECK(c != NULL);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    FUZZ_CHECK(SSL_CTX_use_certificate(c, cert) == 1);
    FUZZ_CHECK(SSL_CTX_use_PrivateKey(c, key) == 1);
    return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    EVP_PKEY *cak = EVP_EC_gen("P-256"), *ck = EVP_EC_gen("P-256");
    FUZZ_CHECK(cak != NULL && ck != NULL);
    X509 *ca = cert_new("fuzz-ca", cak, NULL, NULL, true);
    X509 *good = cert_new("root", ck, ca, cak, false);
    X509 *bad = cert_new("root", ck, NULL, NULL, false);
    BIO *mem = BIO_new(BIO_s_mem());
    char *pem;
    FUZZ_CHECK(mem != NULL && PEM_write_bio_X509(mem, ca) == 1);
    long n = BIO_get_mem_data(mem, &pem);
    char *ca_pem = strndup(pem, (size_t)n);
    BIO_free(mem);
    fs.tls = true;
    fs.client_ca_pem = ca_pem;
    fuzz_server_start(&fs);
    free(ca_pem);
    fs.client_ca_pem = NULL;
    atexit(cleanup);
    cctx[0] = client_ctx(good, ck);
    cctx[1] = client_ctx(bad, ck);
    X509_free(ca);
    X509_free(good);
    X509_free(bad);
    EVP_PKEY_free(cak);
    EVP_PKEY_free(ck);
    return 0;
}

/* A real client handshake on fd, the server's loop run meanwhile. Returns
 * the session, or NULL when the server refused (it may: no common ALPN is
 * still served, but nothing else should fail). */
static SSL *handshake(int fd, unsigned alpn, bool bad_cert, uint64_t end)
{
    static const unsigned char protos[4][13] = {
        {0},
        "\x08http/1.1",
        "\x02h2",
        "\x02h2\x08http/1.1",
    };
    static const unsigned lens[4] = {0, 9, 3, 12};
    SSL *ssl = SSL_new(cctx[bad_cert]);
    FUZZ_CHECK(ssl != NULL);
    if (lens[alpn] > 0) {
        FUZZ_CHECK(SSL_set_alpn_protos(ssl, protos[alpn], lens[alpn]) == 0);
    }
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set_fd(ssl, fd);
    for (;;) {
        int rc = SSL_connect(ssl);
        if (rc == 1) {
            return ssl;
        }
        int e = SSL_get_error(ssl, rc);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
            unsigned long why = ERR_get_error();
            if (!bad_cert) {
                fprintf(stderr, "tls: handshake failed: %s\n",
                        ERR_reason_error_string(why));
            }
            ERR_clear_error();
            SSL_free(ssl);
            return NULL;
        }
        fuzz_conn_pump(&fs, fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT,
                       end);
    }
}

/* Write p[0..n) inside TLS and read what comes back until the server
 * closes or goes quiet; then close_notify and wait for its close. */
static void talk(SSL *ssl, int fd, const uint8_t *p, size_t n, uint64_t end,
                 bool show)
{
    size_t off = 0;
    uint64_t last = fuzz_now_ms();
    bool shut = false;
    for (;;) {
        char sink[4096];
        if (off < n) {
            int w = SSL_write(ssl, p + off, (int)(n - off));
            if (w > 0) {
                off += (size_t)w;
                last = fuzz_now_ms();
            } else {
                int e = SSL_get_error(ssl, w);
                if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                    break; /* the server closed on us */
                }
            }
        }
        int r = SSL_read(ssl, sink, sizeof(sink));
        if (r > 0) {
            if (show) {
                fwrite(sink, 1, (size_t)r, stderr);
            }
            last = fuzz_now_ms();
        } else {
            int e = SSL_get_error(ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
                break; /* closed: close_notify, EOF or an alert */
            }
        }
        if (off == n && !shut && fuzz_now_ms() - last >= QUIET_MS) {
            /* Done sending: say so, as a client that hangs up does. */
            (void)SSL_shutdown(ssl);
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        if (fuzz_now_ms() >= end) {
            fprintf(stderr, "tls: no close within %d ms\n", WAIT_MS);
        }
        FUZZ_CHECK(fuzz_now_ms() < end);
        struct pollfd pf = {
            .fd = fd, .events = (short)(off < n ? POLLIN | POLLOUT : POLLIN)};
        uv_run(&fs.loop, UV_RUN_NOWAIT);
        (void)poll(&pf, 1, 1);
    }
    ERR_clear_error();
}

/* The client is gone: so is the server's side of it, within a bound. */
static void wait_released(void)
{
    uint64_t end = fuzz_now_ms() + 5000;
    for (;;) {
        struct server_tls_stats st;
        server__tls_stats(&fs.s, &st);
        if (st.conns_open == 0) {
            return;
        }
        if (fuzz_now_ms() >= end) {
            fprintf(stderr, "tls: %llu connections still open\n",
                    (unsigned long long)st.conns_open);
        }
        FUZZ_CHECK(fuzz_now_ms() < end);
        uv_run(&fs.loop, UV_RUN_NOWAIT);
        struct pollfd none;
        (void)poll(&none, 0, 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint64_t end = fuzz_now_ms() + WAIT_MS;
    bool show = getenv("FUZZ_SHOW") != NULL;
    int fd = fuzz_connect((struct sockaddr *)&fs.client_addr,
                          sizeof(fs.client_addr));
    FUZZ_CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    SSL *ssl = NULL;
    if (data[0] & 1) {
        bool bad_cert = (data[0] & 16) != 0;
        ssl = handshake(fd, (data[0] >> 1) & 3, bad_cert, end);
        /* A client with a certificate of the trusted CA is never refused
         * (one with another is, in TLS 1.2 during the handshake, in 1.3
         * right after it). */
        FUZZ_CHECK(ssl != NULL || bad_cert);
    }
    if (ssl != NULL && !(data[0] & 8)) {
        talk(ssl, fd, data + 1, size - 1, end, show);
    } else {
        (void)fuzz_conn_send(&fs, fd, data + 1, size - 1, end);
        if (!fuzz_conn_drain(&fs, fd, show, end, QUIET_MS, NULL, NULL)) {
            shutdown(fd, SHUT_WR);
            (void)fuzz_conn_drain(&fs, fd, show, end, 0, NULL, NULL);
        }
    }
    SSL_free(ssl);
    close(fd);
    fuzz_server_settle(&fs);
    wait_released();
    FUZZ_CHECK(fs.s.node != NULL && node_failed(fs.s.node) == 0);
    return 0;
}

/*
 * tls_int.h - libcairn's TLS settings (OpenSSL 3), shared by the gRPC
 * transport (grpc_conn.c: memory BIOs under libuv) and the blocking
 * HTTP/WebSocket client (http.c: SSL on a non-blocking fd). Not installed.
 *
 * Does:     builds one SSL_CTX from cairn_options (CA file or the system
 *           store, client certificate and key, verification on or off),
 *           decides per endpoint whether it is TLS, and makes each
 *           connection's SSL with SNI and the host name or IP address
 *           check that Go's crypto/tls does (an IP endpoint is checked
 *           against the certificate's IP SANs, a name against its DNS
 *           SANs; server_name replaces the endpoint's host for both).
 * Owns:     a struct cairn__tls holds one reference on its SSL_CTX and a
 *           copy of server_name; cairn__tls_copy takes another reference.
 * Threads:  the SSL_CTX is shared by the copies and only read after
 *           cairn__tls_init (OpenSSL makes that safe); an SSL is used by
 *           one thread.
 * Borrowed: arguments during the call only.
 * Errors:   CAIRN_E_INVALID (a file that cannot be read or parsed, a key
 *           that does not match its certificate, a certificate without a
 *           key), CAIRN_E_NOMEM; handshake failures are described by
 *           cairn__tls_why.
 * Limits:   none of its own.
 * Not here: the byte pumping (grpc_conn.c, http.c).
 */
#ifndef CAIRN_SDK_TLS_INT_H
#define CAIRN_SDK_TLS_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "sdk/include/cairn.h"

struct cairn__tls {
    SSL_CTX *ctx;      /* NULL: no endpoint uses TLS */
    char *server_name; /* NULL: each endpoint's host */
    bool bare;         /* "host:port" endpoints use TLS too */
};

/* Sets up t from opt: a context when an endpoint is https:// or opt asks
 * for TLS. On failure t holds nothing and errbuf says why. */
int cairn__tls_init(struct cairn__tls *t, const struct cairn_options *opt,
                    char *errbuf, size_t errbuf_size);
/* dst becomes a second holder of src's settings. */
int cairn__tls_copy(struct cairn__tls *dst, const struct cairn__tls *src);
void cairn__tls_free(struct cairn__tls *t);

/* Whether endpoint ep is spoken to over TLS: https:// always, http://
 * never, a bare host:port when t->bare (etcd's Go client with a TLS
 * config). t may be NULL (never). */
bool cairn__tls_ep(const struct cairn__tls *t, const char *ep);
/* The endpoint without its scheme ("https://h:p" -> "h:p"). */
const char *cairn__ep_strip(const char *ep);

/* An SSL in client mode for host (the endpoint's, unless server_name is
 * set), offering ALPN alpn (one protocol, e.g. "h2"); NULL on no memory. */
SSL *cairn__tls_ssl_new(const struct cairn__tls *t, const char *host,
                        const char *alpn);
/* Why a handshake or an I/O on ssl failed (ret: the call's return):
 * "x509: certificate verify failed: <OpenSSL's reason>" for a server
 * certificate that does not verify, else OpenSSL's error queue text. The
 * error queue is cleared. */
void cairn__tls_why(SSL *ssl, int ret, char *out, size_t out_size);

#endif

/*
 * tls_int.h - TLS on the client port (OpenSSL 3), private to
 * registry/server.
 *
 * Does:     loads and checks --cert-file/--key-file/--trusted-ca-file/
 *           --client-crl-file/--cipher-suites (or makes a self-signed pair
 *           for --auto-tls) into one SSL_CTX at start, before anything
 *           listens; terminates TLS on connections accepted on https://
 *           listeners and hands the plaintext to the gRPC server (ALPN h2)
 *           or to the HTTP/1.1 side (http/1.1 or no ALPN) through a
 *           socketpair, exactly as a plain connection is handed over.
 * Owns:     the SSL_CTX, and per connection: the TCP socket, the SSL with
 *           its memory BIOs, our end of the socketpair, a handshake timer
 *           and two bounded buffers (one per direction).
 * Threads:  the loop thread only.
 * Borrowed: struct options for the server's life.
 * Errors:   server__tls_init: ERR_INVALID with a message naming the flag,
 *           the file and the reason. Handshake failures and timeouts are
 *           logged (one line, the client's address and OpenSSL's reason)
 *           and counted; they never reach the API.
 * Limits:   TLS_PENDING_BYTES_MAX per direction per connection (reads on
 *           the other side stop above it); handshakes in progress count
 *           towards LIMIT_CONNECTIONS; TLS_HANDSHAKE_TIMEOUT_MS.
 * Not here: peer-port TLS records (consensus/transport; its contexts are
 *           built in tls_peer.c from the same loaders), reloading certificates,
 *           JWT. HTTP/2 and HTTP/1.1 themselves (registry/grpc, /http).
 */
#ifndef CAIRN_REGISTRY_SERVER_TLS_INT_H
#define CAIRN_REGISTRY_SERVER_TLS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>
#include <uv.h>

#include "registry/server/server.h"

struct server;
struct options;

/* A slow or silent client is closed after this long in the handshake:
 * --http-header-timeout's default, which sets it (the plain port's bound
 * for a preface or request head). The linger after a close uses it too. */
#define TLS_HANDSHAKE_TIMEOUT_MS 10000
/* Bytes waiting for one direction's socket; above it the other side's
 * reads stop until half of it is written. */
#define TLS_PENDING_BYTES_MAX    (256 * 1024)

/* True when some --listen-client-urls URL is https:// (or unixs://). */
bool server__tls_wanted(const struct server *s);

/* Build the client SSL_CTX from s->opt when server__tls_wanted(); else
 * nothing. On error msg names the flag, file and reason and nothing is
 * kept. Call before anything listens. */
int server__tls_init(struct server *s, char *msg, size_t msg_len);

/* A connection is waiting on TLS listener l: accept it and start the
 * handshake. Never fails the listener; a refused connection is closed. */
void server__tls_accept(struct server *s, uv_stream_t *listener);

/* Stop: close connections still in the handshake, release the SSL_CTX
 * (established connections keep their reference until they close, which
 * happens when the gRPC and HTTP sides close their ends). */
void server__tls_stop(struct server *s);

/* server__tls_peer, server__tls_stats: in server.h (the HTTP side uses
 * them). */

/* tls_ctx.c: a server SSL_CTX from o's client TLS flags (files read and
 * checked now). 0 and *out set, or ERR_INVALID/-ENOMEM with msg naming the
 * flag, the file and the reason. */
int server__tls_ctx_new(const struct options *o, SSL_CTX **out, char *msg,
                        size_t msg_len);

/* Loaders shared by the client and the peer contexts (tls_ctx.c). pfx is
 * "" or "peer-", so a message names the flag the user gave
 * (--peer-cert-file ...), the file and the reason. Each returns 0 or
 * ERR_INVALID with msg set. */
int server__tls_load_cert(SSL_CTX *ctx, const char *pfx, const char *path,
                          char *msg, size_t msg_len);
int server__tls_load_key(SSL_CTX *ctx, const char *pfx, const char *path,
                         const char *cert_path, char *msg, size_t msg_len);
int server__tls_load_ca(SSL_CTX *ctx, const char *pfx, const char *path,
                        char *msg, size_t msg_len);
int server__tls_load_crl(SSL_CTX *ctx, const char *pfx, const char *path,
                         char *msg, size_t msg_len);
int server__tls_set_suites(SSL_CTX *ctx, const char *list, char *msg,
                           size_t msg_len);
struct options_urls;
/* The hosts of urls as "IP:a,DNS:b" (a SAN value); localhost and
 * 127.0.0.1 when none. */
void server__tls_san_from_urls(const struct options_urls *urls, char *out,
                               size_t len);
/* A self-signed ECDSA P-256 certificate for san with extended key usage
 * eku ("serverAuth" or "serverAuth,clientAuth"), O=etcd, valid one year.
 * 0 and both set (the caller frees them), or ERR_INVALID. */
int server__tls_self_cert(const char *san, const char *eku, X509 **x_out,
                          EVP_PKEY **k_out);

/* tls_peer.c: the peer port's contexts from o's --peer-* flags, checked
 * now. *server_out only when some --listen-peer-urls URL is https://;
 * *client_out always (it dials https:// peers; without --peer-cert-file it
 * presents no certificate and verifies against the system roots, as
 * etcd's Go client would). --peer-auto-tls without files makes (or
 * reuses) data-dir/fixtures/peer/{cert,key}.pem as etcd does. 0, or
 * ERR_INVALID/-ENOMEM with msg naming the flag, file and reason and
 * nothing kept. */
int server__peer_tls_new(const struct options *o, SSL_CTX **server_out,
                         SSL_CTX **client_out, char *msg, size_t msg_len);

/* Watch the --peer-* files and SIGHUP: build the peer contexts again and
 * hand them to the node (server__peer_tls_stop closes the watch). Nothing
 * without --peer-cert-file. */
void server__peer_tls_watch(struct server *s);
void server__peer_tls_stop(struct server *s);

/* OpenSSL's first queued reason (or fallback) into buf; clears the queue. */
const char *server__tls_err(char *buf, size_t len, const char *fallback);

#endif

/*
 * http_int.h - libcairn's small blocking HTTP/1.1 and WebSocket client
 * (not installed), for Cairn's /api/v1 (registry, config).
 *
 * Does:     one request per connection (Connection: close) with a
 *           deadline, answers with Content-Length, chunked or read to EOF;
 *           a client WebSocket (RFC 6455: masked frames out, text,
 *           continuation, ping/pong and close in).
 * Owns:     a response owns its body (cairn__http_resp_free); a ws owns its
 *           socket and buffers (cairn__ws_close).
 * Threads:  none of its own; a ws is used by one thread at a time.
 * Borrowed: arguments are read during the call only.
 * Errors:   CAIRN_E_UNAVAILABLE (cannot connect, connection lost),
 *           CAIRN_E_TIMEOUT, CAIRN_E_BAD_RESPONSE (not HTTP, bad framing),
 *           CAIRN_E_TOO_BIG (body or message over its bound), CAIRN_E_NOMEM,
 *           CAIRN_E_INVALID; details in errbuf when given.
 * Limits:   head 16 KiB, body and message at most body_max (callers pass
 *           CAIRN_HTTP_BODY_MAX).
 *           With a struct cairn__tls the endpoint may be TLS
 *           (cairn__tls_ep): the handshake (ALPN http/1.1) runs on the
 *           non-blocking fd within the same deadline, then every byte
 *           goes through SSL_read/SSL_write; a handshake that fails is
 *           CAIRN_E_UNAVAILABLE with OpenSSL's reason in errbuf.
 * Not here: keep-alive connections, HTTP/2 (grpc_conn.c); the TLS
 *           settings (tls.c); getting a token (api.c: an auth token is
 *           only sent here).
 */
#ifndef CAIRN_SDK_HTTP_INT_H
#define CAIRN_SDK_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

struct cairn__tls;

#define CAIRN_HTTP_HEAD_MAX (16u << 10)
#define CAIRN_HTTP_BODY_MAX ((size_t)8 << 20)
#define CAIRN_TOKEN_MAX     1024 /* an auth token, as a header value */

struct cairn__http_resp {
    int status;
    char *body; /* NUL-terminated (not counted in body_len) */
    size_t body_len;
    bool sent; /* the request was (maybe partly) written: a write may have
                * been applied even when the call failed */
};

/* "host:port", "http://host:port" or "https://host:port" -> host and
 * port. */
int cairn__hostport(const char *ep, char *host, size_t host_size, char *port,
                    size_t port_size);

/* One request to endpoint ep; body may be NULL. On 0 *out holds any
 * status (4xx/5xx included); the caller frees it. */
int cairn__http_call(const char *ep, const char *method, const char *path,
                     const char *body, size_t body_len, int64_t timeout_ms,
                     struct cairn__http_resp *out, char *errbuf,
                     size_t errbuf_size);
/* The same with "Authorization: <token>" (token NULL or "": none; one
 * with CR or LF is CAIRN_E_INVALID), over TLS when tls says ep is. */
int cairn__http_call_auth(const char *ep, const struct cairn__tls *tls,
                          const char *token, const char *method,
                          const char *path, const char *body, size_t body_len,
                          int64_t timeout_ms, struct cairn__http_resp *out,
                          char *errbuf, size_t errbuf_size);
void cairn__http_resp_free(struct cairn__http_resp *r);

/* Percent-encodes s (query values) into out; false when it does not fit. */
bool cairn__url_escape(const char *s, char *out, size_t out_size);

struct cairn__ws {
    int fd;
    SSL *ssl;     /* NULL: cleartext */
    uint8_t *buf; /* received, not yet parsed */
    size_t len;
    size_t cap;
    size_t msg_max;
    uint8_t *frag; /* a fragmented message being assembled */
    size_t frag_len;
    bool in_frag;
    uint64_t prng; /* masking keys */
    /* an fd plus one (0: none): a byte on it ends cairn__ws_recv's wait
     * early with CAIRN_E_TIMEOUT (the mux thread's wake-up) */
    int wake;
};

/* Connects and upgrades. ws is the caller's; on failure nothing is open. */
int cairn__ws_open(struct cairn__ws *ws, const char *ep, const char *path,
                   int64_t timeout_ms, size_t msg_max, char *errbuf,
                   size_t errbuf_size);
/* The same with the upgrade's "Authorization: <token>", over TLS (wss)
 * when tls says ep is. */
int cairn__ws_open_auth(struct cairn__ws *ws, const char *ep,
                        const struct cairn__tls *tls, const char *token,
                        const char *path, int64_t timeout_ms, size_t msg_max,
                        char *errbuf, size_t errbuf_size);
int cairn__ws_send_text(struct cairn__ws *ws, const char *s, size_t n,
                        int64_t timeout_ms);
/* Waits up to timeout_ms for one whole text message: *msg (NUL-terminated,
 * the caller frees it with mem_free) and *len. CAIRN_E_TIMEOUT when none
 * came, or ws->wake woke it (the ws stays usable); CAIRN_E_CLOSED when the
 * server closed. */
int cairn__ws_recv(struct cairn__ws *ws, int64_t timeout_ms, char **msg,
                   size_t *len);
void cairn__ws_close(struct cairn__ws *ws);

#endif

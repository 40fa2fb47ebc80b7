/*
 * cfgapi.h - the config center's REST API and the pieces its push streams
 * share (docs/config.md).
 *
 * Does:     serves /api/v1/config/... by reducing each call to ordinary
 *           etcd requests on the core through api_call_auth (one Txn per
 *           write, as the caller's token), and resolves "the release this
 *           client should run" for the streams in registry/http.
 * Owns:     one struct cfg_req per call in flight, freed when answered or
 *           cancelled.
 * Threads:  the loop thread only.
 * Borrowed: every argument of cfgapi_handle is copied (or parsed) before
 *           it returns; the body handed to done lives until it returns.
 * Errors:   answers carry an HTTP status and {"error","code","message"}
 *           (with "field", or "line" and "column" for a document that does
 *           not validate); bad input is 400 before anything is written,
 *           never a 5xx and never a partial write.
 * Limits:   CFG_CONTENT_MAX content bytes (config/config.h), CFG_BODY_MAX
 *           request body bytes (JSON escaping of the largest content),
 *           CFG_COMMIT_MSG_MAX message bytes, --config-history releases kept.
 * Not here: validation, diff and gray rules (config/), HTTP framing
 *           (registry/http/http_api.c), the streams (registry/http).
 *
 * Layout (defaults), all under /config/<ns>/<app>/ so that one prefix
 * watch follows an app and one more level a namespace:
 *
 *   /config/<ns>/<app>/<name>            the config's head: JSON, no
 *                                        content (version, format, sha256,
 *                                        author, message, created_at,
 *                                        secret, next, history[], gray)
 *   /config/<ns>/<app>/~r/<name>/<v>     release v (%010d): release value
 *   /config/<ns>/<app>/~g/<name>         the open gray release, if any
 *
 * '~' sorts after every name byte ([A-Za-z0-9._-]), so the heads of an app
 * are exactly [/config/<ns>/<app>/, /config/<ns>/<app>/~). Keys are latest
 * values, never history: KV compaction does not touch releases.
 *
 * Release value (release and gray keys): one line of compact JSON (the
 * release's metadata, "length" = content bytes), '\n', then the content
 * bytes as published (encrypted for a secret: nonce, ciphertext, tag). The
 * content is stored once, unescaped, so a 1 MiB document is a Raft
 * request of about 1 MiB + the head, under etcd's 1.5 MiB default.
 */
#ifndef CAIRN_REGISTRY_CFGAPI_H
#define CAIRN_REGISTRY_CFGAPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/buf.h"
#include "config/config.h"

#define CFG_PREFIX         "/config/"
#define CFG_COMMIT_MSG_MAX 1024
#define CFG_HISTORY_DEF    100
#define CFG_HISTORY_MAX    10000
/* JSON escapes a byte into at most 6 ("\u001f"): the body of the largest
 * publish, plus room for the other fields. */
#define CFG_BODY_MAX       (6 * (uint64_t)CFG_CONTENT_MAX + 65536)
#define CFG_KEY_MAX        512

struct server;
struct cfg_req;

/* The answer: status, content type, an ETag (or NULL) and a body of len
 * bytes, borrowed until the callback returns. */
typedef void (*cfgapi_done_fn)(void *ctx, int status, const char *ctype,
                               const char *etag, const char *body, size_t len);

/* Serve one call (method "GET", "PUT", ...; path starting with
 * /api/v1/config or /api/v1/audit; query without '?', or NULL; token the
 * caller's etcd token or NULL; cert_user the CN of its verified TLS client
 * certificate under --client-cert-auth or NULL, the user when auth is on
 * and there is no token (etcd's rule); peer the client's address or NULL;
 * if_none_match the request's If-None-Match or NULL). done runs exactly
 * once unless cfgapi_cancel is called first; *slot holds the call while it
 * is in flight and is NULL before done runs. */
void cfgapi_handle(struct server *s, const char *method, const char *path,
                   const char *query, const char *body, size_t len,
                   const char *token, const char *cert_user, const char *peer,
                   const char *if_none_match, struct cfg_req **slot,
                   cfgapi_done_fn done, void *ctx);

/* The caller is gone: done will not run; *slot becomes NULL. */
void cfgapi_cancel(struct cfg_req *r);

/* Does path belong to the config API? */
bool cfgapi_path_is_ours(const char *path);

/* The body bound of a request to path (CFG_BODY_MAX for a config write,
 * else 0: the server's --max-request-bytes). */
uint64_t cfgapi_body_max(const char *path);

/* Prometheus text of the config API's counters, appended to out. */
int cfgapi_metrics(struct server *s, struct buf *out);

/* ---------------------------------------------------------- model */

/* A config's identity. */
struct cfg_id {
    char ns[CFG_NAME_MAX + 1];
    char app[CFG_NAME_MAX + 1];
    char name[CFG_NAME_MAX + 1];
};

size_t cfg_key_head(const struct cfg_id *c, char *out, size_t len);
size_t cfg_key_release(const struct cfg_id *c, int64_t v, char *out,
                       size_t len);
size_t cfg_key_releases(const struct cfg_id *c, char *out, size_t len);
size_t cfg_key_gray(const struct cfg_id *c, char *out, size_t len);

/* What a key under /config/ is: CFG_K_HEAD, _RELEASE (with *v), _GRAY, or
 * CFG_K_OTHER (not one of ours); id gets the names. */
enum cfg_key_kind { CFG_K_OTHER, CFG_K_HEAD, CFG_K_RELEASE, CFG_K_GRAY };
enum cfg_key_kind cfg_key_parse(const char *key, size_t len, struct cfg_id *id,
                                int64_t *v);

/* A release value: meta (a new reference) and the content, borrowed from
 * val. ERR_INVALID when val is not one. */
int cfg_release_parse(const void *val, size_t len, json_t **meta,
                      const char **content, size_t *content_len);
/* Encode meta (borrowed; "length" is set here) and content into out. */
int cfg_release_encode(json_t *meta, const char *content, size_t len,
                       struct buf *out);

/* The config's content in clear: content itself, or for a secret the
 * decrypted bytes (into out, which the caller frees). ERR_PERMISSION_DENIED
 * when no key is loaded; ERR_CORRUPT when it does not decrypt. */
int cfg_secret_open(struct server *s, const struct cfg_id *id, int64_t v,
                    const char *enc, size_t len, struct buf *out);
int cfg_secret_seal(struct server *s, const struct cfg_id *id, int64_t v,
                    const char *plain, size_t len, struct buf *out);

/* ------------------------------------------------------ for streams */

/* A client of a config stream: who it is, for gray rules. */
struct cfg_client {
    char client_id[CFG_NAME_MAX + 1];
    struct cfg_labels labels;
};

/* Resolve, from the local store at revision rev, the release client
 * should run of config id: *out (a new reference) is the stream's message
 * body {"type":..,"namespace","app","name","version","format","sha256",
 * "content","gray":bool,"revision":..} with "type" = type; *version the
 * release's version. 1 when the config does not exist at rev (deleted),
 * ERR_COMPACTED when rev is gone. Secret content is sent only when
 * can_secret. */
int cfg_resolve(struct server *s, const struct cfg_id *id, int64_t rev,
                const struct cfg_client *client, bool can_secret,
                const char *type, json_t **out, int64_t *version,
                int64_t *created_ms);

/* One config at one revision, resolved from the local store once for
 * every stream subscriber (the push's shared encoding, cfg_model.c).
 * cfg_change_load: 0 and *out (free with cfg_change_free), or an error for
 * every client (ERR_COMPACTED when rev is gone, -ENOMEM). cfg_change_for:
 * what client gets, as cfg_resolve(.., "put", ..) would answer: 0 with the
 * message's JSON text in text/len (borrowed until cfg_change_free), its
 * version, publish time and gray flag; 1 when it gets nothing (the config
 * is absent at rev); or an error. cfg_change_secret: whether can_secret
 * matters (a secret release), so the caller may skip the check. */
struct cfg_change;
int cfg_change_load(struct server *s, const struct cfg_id *id, int64_t rev,
                    struct cfg_change **out);
void cfg_change_free(struct cfg_change *c);
int cfg_change_for(const struct cfg_change *c, const struct cfg_client *client,
                   bool can_secret, const char **text, size_t *len,
                   int64_t *version, int64_t *created_ms, bool *gray);
bool cfg_change_secret(const struct cfg_change *c);
/* Message texts the load encoded (for the sharing counters). */
size_t cfg_change_encodings(const struct cfg_change *c);

/* May token read secrets of id in clear? Auth off: yes; on: read
 * permission on /config-secret/<ns>/<app>/<name>. */
bool cfg_can_secret(struct server *s, const char *token, const char *cert_user,
                    const struct cfg_id *id);

/* Every config head under prefix (a scope: /config/<ns>/ or
 * /config/<ns>/<app>/) at revision rev, from the local store: calls fn
 * for each (ids borrowed for the call). At most limit heads. */
typedef int (*cfg_head_fn)(void *ctx, const struct cfg_id *id);
int cfg_heads_local(struct server *s, const char *prefix, size_t plen,
                    int64_t rev, size_t limit, cfg_head_fn fn, void *ctx);

/* A config stream's subscriber (the subscribers view and acks). scope is
 * the stream's key prefix, name the one config it follows or NULL/"" for
 * every config under scope (both copied); c is borrowed until
 * cfg_sub_close. NULL when out of memory or at CFG_SUBS_MAX. */
struct cfg_sub;
struct cfg_sub *cfg_sub_open(struct server *s, const struct cfg_client *c,
                             const char *peer, const char *scope,
                             const char *name);
void cfg_sub_close(struct server *s, struct cfg_sub *sub);
/* The stream sent version of id (published at created_ms, wall clock). */
void cfg_sub_delivered(struct server *s, struct cfg_sub *sub,
                       const struct cfg_id *id, int64_t version,
                       int64_t created_ms, bool gray);
/* The version last delivered of id (0: none or not tracked). */
int64_t cfg_sub_delivered_version(const struct cfg_sub *sub,
                                  const struct cfg_id *id, bool *gray);
/* The client acknowledged version of id: 0, or ERR_INVALID when that
 * version was never delivered to it. */
int cfg_sub_acked(struct server *s, struct cfg_sub *sub,
                  const struct cfg_id *id, int64_t version);

/* Server lifecycle: load the secret key (msg names a bad file); answer
 * every ack waiter (before the node closes); free the state. */
int cfgapi_start(struct server *s, char *msg, size_t msg_len);
void cfgapi_stop(struct server *s);
void cfgapi_free(struct server *s);

#endif

/*
 * http_api.c - the /api/v1/ REST surface on the HTTP/1.1 side: the
 * registry's sessions, instances, discovery reads and Prometheus http_sd
 * (registry/services). This file only frames: it takes the method, path,
 * query string, Authorization header and body of a request and hands them
 * to svc_handle, which answers with a status and a JSON body.
 *
 * The body is collected as the gateway's is (http_server.c: bounded by
 * --max-request-bytes, 413 past it), then dispatched. A client that goes
 * away while its call is in flight cancels it (conn_clear -> svc_cancel):
 * the answer never touches the freed connection.
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "base/str.h"
#include "registry/config/cfgapi.h"
#include "registry/http/http_int.h"
#include "registry/services/services.h"

#define API_PATH_MAX  1024
#define API_QUERY_MAX 2048

struct http_api_req {
    bool cfg; /* the config API's (else the registry's) */
    char method[8];
    char path[API_PATH_MAX];
    char query[API_QUERY_MAX];
};

static const char *meth_name(int meth)
{
    switch (meth) {
    case LWSHUMETH_GET:
        return "GET";
    case LWSHUMETH_POST:
        return "POST";
    case LWSHUMETH_PUT:
        return "PUT";
    case LWSHUMETH_PATCH:
        return "PATCH";
    case LWSHUMETH_DELETE:
        return "DELETE";
    case LWSHUMETH_OPTIONS:
        return "OPTIONS";
    case LWSHUMETH_HEAD:
        return "HEAD";
    default:
        return "?";
    }
}

/* The query string, its fragments joined with '&' again. lws has already
 * percent-decoded each fragment; svc_query_get decodes once more, which
 * only matters for a value holding a literal '%' followed by two hex
 * digits (never a name, which is [A-Za-z0-9._-]). */
int http__query_join(struct lws *wsi, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) <= 0) {
        return 0;
    }
    for (int i = 0; i < 64; i++) {
        char frag[API_QUERY_MAX];
        int n = lws_hdr_copy_fragment(wsi, frag, sizeof(frag),
                                      WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n <= 0) {
            return n < 0 && i == 0 ? -1 : 0;
        }
        if (o + (size_t)n + 2 > len) {
            return -1;
        }
        if (o > 0) {
            out[o++] = '&';
        }
        memcpy(out + o, frag, (size_t)n);
        o += (size_t)n;
        out[o] = '\0';
    }
    return 0;
}

static void api_done(void *ctx, int status, const char *body, size_t len)
{
    struct http_conn *c = ctx;
    ASSERT(c->wait == HTTP_WAIT_CALL);
    ASSERT(c->svc == NULL);
    if (http__respond(c, status, "application/json", body, len) != 0) {
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

static void cfg_done(void *ctx, int status, const char *ctype, const char *etag,
                     const char *body, size_t len)
{
    struct http_conn *c = ctx;
    ASSERT(c->wait == HTTP_WAIT_CALL);
    ASSERT(c->cfg == NULL);
    if (etag != NULL) {
        snprintf(c->etag, sizeof(c->etag), "%s", etag);
    }
    if (http__respond(c, status, ctype, body, len) != 0) {
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    }
}

int http__api_error(struct http_conn *c, int status, const char *code,
                    const char *message)
{
    struct buf b;
    int rc;
    buf_init(&b, 4096);
    rc = svc_error_body(&b, code, message, NULL);
    if (rc == 0) {
        rc = http__respond(c, status, "application/json", b.data, b.len);
    }
    buf_free(&b);
    return rc;
}

static int watch_sse(struct http_conn *c, const char *path, int meth);

int http__api_route(struct http_conn *c, const char *path, int meth)
{
    struct http_api_req *a;
    if (strncmp(path, REG_WATCH_PATH, strlen(REG_WATCH_PATH)) == 0 ||
        strncmp(path, CFG_WATCH_PATH, strlen(CFG_WATCH_PATH)) == 0) {
        return watch_sse(c, path, meth);
    }
    if (strcmp(path, MUX_PATH) == 0) {
        return http__api_error(c, 400, "bad_request",
                               MUX_PATH " is a WebSocket: send a GET with "
                                        "Upgrade: websocket");
    }
    bool cfg = cfgapi_path_is_ours(path);
    if (!cfg && !svc_path_is_ours(path)) {
        return http__api_error(c, 404, "not_found", "no such API path");
    }
    if (strlen(path) >= API_PATH_MAX) {
        return http__api_error(c, 414, "too_large", "the path is too long");
    }
    a = mem_alloc(sizeof(*a)); /* every field is set below */
    if (a == NULL) {
        return -1;
    }
    a->cfg = cfg;
    c->body_limit = cfgapi_body_max(path);
    str_join(a->method, sizeof(a->method), meth_name(meth), NULL);
    str_join(a->path, sizeof(a->path), path, NULL);
    if (http__query_join(c->wsi, a->query, sizeof(a->query)) != 0) {
        mem_free(a);
        return http__api_error(c, 414, "too_large",
                               "the query string is too long");
    }
    c->api = a;
    return http__body_start(c, NULL);
}

/* A discovery stream asked for without a WebSocket upgrade: SSE. */
static int watch_sse(struct http_conn *c, const char *path, int meth)
{
    char query[API_QUERY_MAX];
    int rc;
    if (meth != LWSHUMETH_GET) {
        return http__api_error(c, 405, "method_not_allowed",
                               "streams are GET (WebSocket or SSE)");
    }
    if (http__query_join(c->wsi, query, sizeof(query)) != 0) {
        return http__api_error(c, 414, "too_large",
                               "the query string is too long");
    }
    bool cfg = strncmp(path, CFG_WATCH_PATH, strlen(CFG_WATCH_PATH)) == 0;
    rc = http__reg_sse_start(c, path, query);
    if (rc == ERR_BAD_REQUEST) {
        return http__api_error(
            c, 400, "bad_request",
            cfg ? "bad path or parameter: /api/v1/watch/config/"
                  "<ns>[/<app>[/<name>]]?since=<rev>&client_id=<id>&"
                  "labels=k=v,.."
                : "bad path or since: /api/v1/watch/registry/"
                  "<ns>[/<svc>]?since=<rev>");
    }
    return rc;
}

int http__api_dispatch(struct http_conn *c)
{
    struct http_api_req *a = c->api;
    ASSERT(a != NULL);
    http__rx_pause(c); /* as a gateway call: see rx_pause() */
    c->wait = HTTP_WAIT_CALL;
    /* the core's deadline bounds the wait, not lws's */
    lws_set_timeout(c->wsi, NO_PENDING_TIMEOUT, 0);
    char peer[64], cn[GRPC_IDENTITY_BYTES_MAX];
    peer[0] = '\0';
    /* the CN is the user of a request without a token (etcd's rule for
     * gRPC, applied to the registry and config APIs too; the JSON gateway
     * keeps etcd's behaviour: a token or nothing) */
    http__client(c->h, c->wsi, peer, sizeof(peer), cn, sizeof(cn));
    if (a->cfg) {
        char inm[80];
        if (lws_hdr_copy(c->wsi, inm, sizeof(inm),
                         WSI_TOKEN_HTTP_IF_NONE_MATCH) < 0) {
            inm[0] = '\0';
        }
        cfgapi_handle(
            c->h->s, a->method, a->path, a->query, (const char *)c->body.data,
            c->body.len, c->token[0] != '\0' ? c->token : NULL,
            cn[0] != '\0' ? cn : NULL, peer, inm, &c->cfg, cfg_done, c);
    } else {
        svc_handle(c->h->s, a->method, a->path, a->query,
                   (const char *)c->body.data, c->body.len,
                   c->token[0] != '\0' ? c->token : NULL,
                   cn[0] != '\0' ? cn : NULL, peer, &c->svc, api_done, c);
    }
    buf_free(&c->body);
    return 0;
}

void http__api_clear(struct http_conn *c)
{
    if (c->svc != NULL) {
        svc_cancel(c->svc);
        ASSERT(c->svc == NULL);
    }
    if (c->cfg != NULL) {
        cfgapi_cancel(c->cfg);
        ASSERT(c->cfg == NULL);
    }
    mem_free(c->api);
    c->api = NULL;
}

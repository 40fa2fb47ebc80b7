/*
 * api.c - libcairn's calls to Cairn's /api/v1 (api_int.h), and the public
 * cairn_api_call.
 *
 * Failover: an endpoint that cannot be connected to (or, for idempotent
 * calls, whose connection broke or timed out) is left for the next, once
 * around the list; the one that answered becomes the first to try next
 * time. A 503 from an idempotent call also moves on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "sdk/api_int.h"
#include "sdk/client_int.h"

int cairn__eps_copy(struct cairn_client *c, struct cairn__eps *e)
{
    memset(e, 0, sizeof(*e));
    if (c == NULL) {
        return CAIRN_E_INVALID;
    }
    pthread_mutex_lock(&c->mu);
    int rc = 0;
    for (size_t i = 0; i < c->endpoints_count; i++) {
        e->ep[i] = mem_dup(c->endpoints[i], strlen(c->endpoints[i]) + 1);
        if (e->ep[i] == NULL) {
            rc = CAIRN_E_NOMEM;
            break;
        }
        e->count++;
    }
    e->cur = c->ep_cur < c->endpoints_count ? c->ep_cur : 0;
    if (rc == 0) {
        rc = cairn__tls_copy(&e->tls, &c->tls);
    }
    if (rc == 0 && c->user != NULL) {
        e->user = mem_dup(c->user, strlen(c->user) + 1);
        e->password = mem_dup(c->password, strlen(c->password) + 1);
        if (e->user == NULL || e->password == NULL) {
            rc = CAIRN_E_NOMEM;
        }
        if (c->token != NULL && strlen(c->token) < sizeof(e->token)) {
            strcpy(e->token, c->token); /* the gRPC side's: the same kind */
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (rc != 0) {
        cairn__eps_free(e);
    }
    return rc;
}

void cairn__eps_free(struct cairn__eps *e)
{
    for (size_t i = 0; i < e->count; i++) {
        mem_free(e->ep[i]);
        e->ep[i] = NULL;
    }
    e->count = 0;
    mem_free(e->user);
    mem_free(e->password);
    e->user = e->password = NULL;
    e->token[0] = 0;
    cairn__tls_free(&e->tls);
}

int cairn__eps_auth(struct cairn__eps *e, bool renew, int64_t timeout_ms,
                    char *eb, size_t ebn)
{
    if (e->user == NULL || (e->token[0] != 0 && !renew)) {
        return 0;
    }
    json_t *req = json_pack("{s:s,s:s}", "name", e->user, "password",
                            e->password != NULL ? e->password : "");
    char *body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (body == NULL) {
        return CAIRN_E_NOMEM;
    }
    e->token[0] = 0;
    int rc = CAIRN_E_UNAVAILABLE;
    for (size_t k = 0; k < e->count; k++) {
        size_t i = (e->cur + k) % e->count;
        struct cairn__http_resp r;
        rc = cairn__http_call_auth(e->ep[i], &e->tls, NULL, "POST",
                                   "/v3/auth/authenticate", body, strlen(body),
                                   timeout_ms, &r, eb, ebn);
        if (rc == CAIRN_E_UNAVAILABLE || rc == CAIRN_E_TIMEOUT) {
            cairn__http_resp_free(&r);
            continue;
        }
        if (rc == 0) {
            json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
            const char *t = json_string_value(json_object_get(j, "token"));
            if (r.status == 200 && t != NULL && t[0] != 0 &&
                strlen(t) < sizeof(e->token) && strpbrk(t, "\r\n") == NULL) {
                strcpy(e->token, t);
                e->cur = i;
            } else if (r.status == 200) {
                rc = CAIRN_E_BAD_RESPONSE;
            } else {
                rc =
                    r.status == 503 ? CAIRN_E_UNAVAILABLE : CAIRN_E_AUTH_FAILED;
                if (eb != NULL && ebn > 0) {
                    const char *m =
                        json_string_value(json_object_get(j, "error"));
                    snprintf(eb, ebn, "%s", m != NULL ? m : cairn_strerror(rc));
                }
            }
            json_decref(j);
        }
        cairn__http_resp_free(&r);
        if (rc != CAIRN_E_UNAVAILABLE) {
            break;
        }
    }
    free(body);
    return rc;
}

int cairn__status_to_err(int status)
{
    if (status >= 200 && status < 300) {
        return 0;
    }
    switch (status) {
    case 400:
        return CAIRN_E_INVALID;
    case 401:
        return CAIRN_E_INVALID_TOKEN;
    case 403:
        return CAIRN_E_PERMISSION_DENIED;
    case 404:
        return CAIRN_E_NOT_FOUND;
    case 409:
        return CAIRN_E_CONFLICT;
    case 410:
        return CAIRN_E_SESSION_EXPIRED;
    case 413:
        return CAIRN_E_TOO_BIG;
    case 503:
        return CAIRN_E_UNAVAILABLE;
    default:
        return CAIRN_E_SERVER;
    }
}

static void describe(const struct cairn__http_resp *r, char *eb, size_t n)
{
    if (eb == NULL || n == 0) {
        return;
    }
    json_t *j = json_loadb(r->body, r->body_len, 0, NULL);
    const char *code = json_string_value(json_object_get(j, "code"));
    const char *msg = json_string_value(json_object_get(j, "error"));
    if (msg == NULL) {
        msg = json_string_value(json_object_get(j, "message"));
    }
    if (code != NULL && msg != NULL) {
        snprintf(eb, n, "%s: %s", code, msg);
    } else {
        snprintf(eb, n, "HTTP %d: %.200s", r->status,
                 r->body != NULL ? r->body : "");
    }
    json_decref(j);
}

static int api_once(struct cairn__eps *e, const char *method, const char *path,
                    const char *body, bool idempotent, int64_t timeout_ms,
                    struct cairn__http_resp *out, char *eb, size_t ebn);

int cairn__api(struct cairn__eps *e, const char *method, const char *path,
               const char *body, bool idempotent, int64_t timeout_ms,
               struct cairn__http_resp *out, char *eb, size_t ebn)
{
    memset(out, 0, sizeof(*out));
    if (e->count == 0) {
        return CAIRN_E_INVALID;
    }
    int rc = cairn__eps_auth(e, false, timeout_ms, eb, ebn);
    if (rc != 0) {
        return rc;
    }
    rc = api_once(e, method, path, body, idempotent, timeout_ms, out, eb, ebn);
    if (rc == CAIRN_E_INVALID_TOKEN && e->user != NULL) {
        /* the token expired (simple tokens live --auth-token-ttl): a new
         * one, once; a refused call never ran, so this is safe */
        cairn__http_resp_free(out);
        rc = cairn__eps_auth(e, true, timeout_ms, eb, ebn);
        if (rc == 0) {
            rc = api_once(e, method, path, body, idempotent, timeout_ms, out,
                          eb, ebn);
        }
    }
    return rc;
}

static int api_once(struct cairn__eps *e, const char *method, const char *path,
                    const char *body, bool idempotent, int64_t timeout_ms,
                    struct cairn__http_resp *out, char *eb, size_t ebn)
{
    if (eb != NULL && ebn > 0) {
        eb[0] = 0;
    }
    int rc = CAIRN_E_UNAVAILABLE;
    for (size_t k = 0; k < e->count; k++) {
        size_t i = (e->cur + k) % e->count;
        cairn__http_resp_free(out);
        if (eb != NULL && ebn > 0) {
            eb[0] = 0;
        }
        rc = cairn__http_call_auth(e->ep[i], &e->tls, e->token, method, path,
                                   body, body != NULL ? strlen(body) : 0,
                                   timeout_ms, out, eb, ebn);
        if (rc == 0) {
            e->cur = i;
            rc = cairn__status_to_err(out->status);
            if (rc != 0) {
                describe(out, eb, ebn);
            }
            if (rc == CAIRN_E_UNAVAILABLE && idempotent) {
                continue;
            }
            return rc;
        }
        if (rc != CAIRN_E_UNAVAILABLE && rc != CAIRN_E_TIMEOUT) {
            return rc; /* bad answer, bad request: not the endpoint's fault */
        }
        if (out->sent && !idempotent) {
            return rc;
        }
    }
    e->cur = (e->cur + 1) % e->count;
    return rc;
}

bool cairn__name_ok(const char *s)
{
    if (s == NULL) {
        return false;
    }
    size_t n = strlen(s);
    if (n == 0 || n > CAIRN_NAME_MAX || strcmp(s, ".") == 0 ||
        strcmp(s, "..") == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) {
            return false;
        }
    }
    return true;
}

void cairn__nap(const volatile bool *stop, int64_t ms)
{
    while (ms > 0 && !*stop) {
        int64_t step = ms < 50 ? ms : 50;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

static void copy_str(char *dst, size_t n, const json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, n, "%s", s != NULL ? s : "");
}

int cairn__instance_from_json(const json_t *o, struct cairn_instance *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "id"))) {
        return CAIRN_E_BAD_RESPONSE;
    }
    copy_str(out->ns, sizeof(out->ns), json_object_get(o, "namespace"));
    copy_str(out->service, sizeof(out->service), json_object_get(o, "service"));
    copy_str(out->id, sizeof(out->id), json_object_get(o, "id"));
    copy_str(out->addr, sizeof(out->addr), json_object_get(o, "addr"));
    copy_str(out->zone, sizeof(out->zone), json_object_get(o, "zone"));
    copy_str(out->version, sizeof(out->version), json_object_get(o, "version"));
    copy_str(out->status, sizeof(out->status), json_object_get(o, "status"));
    copy_str(out->health, sizeof(out->health), json_object_get(o, "health"));
    if (out->status[0] == 0) {
        snprintf(out->status, sizeof(out->status), "up");
    }
    json_t *w = json_object_get(o, "weight");
    json_int_t wv = json_is_integer(w) ? json_integer_value(w) : 100;
    out->weight = wv < 0 ? 0 : wv > 1000 ? 1000 : (int)wv;
    json_t *r = json_object_get(o, "revision");
    out->revision = json_is_integer(r) ? (int64_t)json_integer_value(r) : 0;
    return 0;
}

int cairn__release_from_json(const json_t *o, struct cairn_config_release *out)
{
    memset(out, 0, sizeof(*out));
    json_t *v = json_object_get(o, "version");
    json_t *c = json_object_get(o, "content");
    if (!json_is_object(o) || !json_is_integer(v) ||
        (!json_is_string(c) && !json_is_null(c))) {
        return CAIRN_E_BAD_RESPONSE;
    }
    out->version = (int64_t)json_integer_value(v);
    json_t *r = json_object_get(o, "revision");
    out->revision = json_is_integer(r) ? (int64_t)json_integer_value(r) : 0;
    size_t n = json_is_string(c) ? json_string_length(c) : 0;
    out->content = mem_alloc(n + 1);
    if (out->content == NULL) {
        return CAIRN_E_NOMEM;
    }
    if (n > 0) {
        memcpy(out->content, json_string_value(c), n);
    }
    out->content[n] = 0;
    out->content_len = n;
    copy_str(out->format, sizeof(out->format), json_object_get(o, "format"));
    copy_str(out->sha256, sizeof(out->sha256), json_object_get(o, "sha256"));
    out->gray = json_is_true(json_object_get(o, "gray"));
    return 0;
}

CAIRN_EXPORT void cairn_config_release_free(struct cairn_config_release *r)
{
    if (r != NULL) {
        mem_free(r->content);
        r->content = NULL;
        r->content_len = 0;
    }
}

/* The end of cairn_api_call and cairn_http_get: the error's reason on the
 * client, the endpoint copy freed, the answer handed over. */
static int api_done(struct cairn_client *c, int rc, const char *eb,
                    struct cairn__eps *e, struct cairn__http_resp *r,
                    struct cairn_api_resp *out)
{
    pthread_mutex_lock(&c->mu);
    if (rc != 0) {
        cairn__fail(c, rc, 0, "%s", eb[0] != 0 ? eb : cairn_strerror(rc));
    }
    pthread_mutex_unlock(&c->mu);
    cairn__eps_free(e);
    out->status = r->status;
    out->body = r->body;
    out->body_len = r->body_len;
    return rc;
}

CAIRN_EXPORT int cairn_api_call(struct cairn_client *c, const char *method,
                                const char *path, const char *body,
                                int64_t deadline_ms, struct cairn_api_resp *out)
{
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (c == NULL || method == NULL || path == NULL || out == NULL ||
        strncmp(path, "/api/v1/", 8) != 0) {
        return CAIRN_E_INVALID;
    }
    struct cairn__eps e;
    int rc = cairn__eps_copy(c, &e);
    if (rc != 0) {
        return rc;
    }
    bool idem = strcmp(method, "GET") == 0;
    struct cairn__http_resp r;
    char eb[sizeof(c->errmsg)] = "";
    pthread_mutex_lock(&c->mu);
    int64_t ms = deadline_ms > 0 ? deadline_ms : c->timeout_ms;
    pthread_mutex_unlock(&c->mu);
    rc = cairn__api(&e, method, path, body, idem, ms, &r, eb, sizeof(eb));
    return api_done(c, rc, eb, &e, &r, out);
}

/* Not cairn__api: no token, no failover, any path (cairn.h says why). */
CAIRN_EXPORT int cairn_http_get(struct cairn_client *c, size_t endpoint_index,
                                const char *path, int64_t deadline_ms,
                                struct cairn_api_resp *out)
{
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (c == NULL || path == NULL || out == NULL || path[0] != '/' ||
        deadline_ms < 0) {
        return CAIRN_E_INVALID;
    }
    struct cairn__eps e;
    int rc = cairn__eps_copy(c, &e);
    if (rc != 0) {
        return rc;
    }
    if (endpoint_index >= e.count) {
        cairn__eps_free(&e);
        return CAIRN_E_INVALID;
    }
    struct cairn__http_resp r;
    char eb[sizeof(c->errmsg)] = "";
    pthread_mutex_lock(&c->mu);
    int64_t ms = deadline_ms > 0 ? deadline_ms : c->timeout_ms;
    pthread_mutex_unlock(&c->mu);
    rc = cairn__http_call_auth(e.ep[endpoint_index], &e.tls, NULL, "GET", path,
                               NULL, 0, ms, &r, eb, sizeof(eb));
    if (rc == 0) {
        rc = cairn__status_to_err(r.status);
        if (rc != 0) {
            snprintf(eb, sizeof(eb), "HTTP %d", r.status);
        }
    }
    return api_done(c, rc, eb, &e, &r, out);
}

CAIRN_EXPORT void cairn_api_resp_free(struct cairn_api_resp *r)
{
    if (r != NULL) {
        mem_free(r->body);
        r->body = NULL;
        r->body_len = 0;
    }
}

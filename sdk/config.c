/*
 * config.c - libcairn's config client: get (with client id and labels),
 * watch with a callback and an ack after it returns, and the local file
 * cache that serves the last known release, marked stale, when no server
 * can be reached.
 *
 * Cache file: <cache_dir>/<ns>@<app>@<name>.json ('@' is never in a name),
 * one JSON object {"namespace","app","name","version","revision","format",
 * "sha256","gray","content"}, written to a temp file, fsynced and renamed,
 * so a reader sees the old release or the new one, never a torn one.
 *
 * Watch: a subscription on the client's one /api/v1/stream socket
 * (mux_int.h; kind config, <ns>/<app>/<name>) with client_id, labels and
 * (after the first message) since=<revision>.
 * A release is delivered when its version or sha256 differs from the one
 * delivered last, or that one was stale; after the callback the release is
 * acked on the stream and written to the cache.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include "base/alloc.h"
#include "sdk/api_int.h"
#include "sdk/client_int.h"
#include "sdk/mux_int.h"

struct req_copy {
    char *ns, *app, *name, *client_id, *labels, *cache_dir;
};

static char *dup_or_null(const char *s)
{
    return s != NULL ? mem_dup(s, strlen(s) + 1) : NULL;
}

static void req_free(struct req_copy *r)
{
    mem_free(r->ns);
    mem_free(r->app);
    mem_free(r->name);
    mem_free(r->client_id);
    mem_free(r->labels);
    mem_free(r->cache_dir);
    memset(r, 0, sizeof(*r));
}

static bool req_ok(const struct cairn_config_req *q)
{
    return q != NULL && cairn__name_ok(q->ns) && cairn__name_ok(q->app) &&
           cairn__name_ok(q->name) &&
           (q->client_id == NULL || strlen(q->client_id) <= 256) &&
           (q->labels == NULL || strlen(q->labels) <= 4096) &&
           (q->cache_dir == NULL ||
            (q->cache_dir[0] != 0 && strlen(q->cache_dir) < 3000));
}

static int req_copy(const struct cairn_config_req *q, struct req_copy *r)
{
    memset(r, 0, sizeof(*r));
    r->ns = dup_or_null(q->ns);
    r->app = dup_or_null(q->app);
    r->name = dup_or_null(q->name);
    r->client_id = dup_or_null(q->client_id);
    r->labels = dup_or_null(q->labels);
    r->cache_dir = dup_or_null(q->cache_dir);
    if (r->ns == NULL || r->app == NULL || r->name == NULL ||
        (q->client_id != NULL && r->client_id == NULL) ||
        (q->labels != NULL && r->labels == NULL) ||
        (q->cache_dir != NULL && r->cache_dir == NULL)) {
        req_free(r);
        return CAIRN_E_NOMEM;
    }
    return 0;
}

/* "?client_id=..&labels=.." (escaped; each only when given), then extra
 * ("&k=v") if given. */
static int query(const struct req_copy *r, const char *extra, char *out,
                 size_t n)
{
    char cid[800] = "", lab[12300] = "";
    if ((r->client_id != NULL &&
         !cairn__url_escape(r->client_id, cid, sizeof(cid))) ||
        (r->labels != NULL &&
         !cairn__url_escape(r->labels, lab, sizeof(lab)))) {
        return CAIRN_E_INVALID;
    }
    int w =
        snprintf(out, n, "?%s%s%s%s%s%s", cid[0] != 0 ? "client_id=" : "", cid,
                 cid[0] != 0 && lab[0] != 0 ? "&" : "",
                 lab[0] != 0 ? "labels=" : "", lab, extra != NULL ? extra : "");
    return w > 0 && (size_t)w < n ? 0 : CAIRN_E_INVALID;
}

/* ------------------------------------------------------------- cache */

static int mkdirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s", dir);
    for (char *s = p + 1; *s != 0; s++) {
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                return CAIRN_E_INVALID;
            }
            *s = '/';
        }
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
        return CAIRN_E_INVALID;
    }
    return 0;
}

static void cache_path(const struct req_copy *r, char *out, size_t n)
{
    snprintf(out, n, "%s/%s@%s@%s.json", r->cache_dir, r->ns, r->app, r->name);
}

static int cache_write(const struct req_copy *r,
                       const struct cairn_config_release *rel)
{
    if (r->cache_dir == NULL) {
        return 0;
    }
    if (mkdirs(r->cache_dir) != 0) {
        return CAIRN_E_INVALID;
    }
    json_t *j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:b,s:s%}", "namespace",
                          r->ns, "app", r->app, "name", r->name, "version",
                          (json_int_t)rel->version, "revision",
                          (json_int_t)rel->revision, "format", rel->format,
                          "sha256", rel->sha256, "gray", rel->gray, "content",
                          rel->content, rel->content_len);
    if (j == NULL) {
        return CAIRN_E_NOMEM;
    }
    char path[4096], tmp[4200];
    cache_path(r, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    int rc = CAIRN_E_INVALID;
    FILE *f = fopen(tmp, "we");
    if (f != NULL) {
        bool ok = json_dumpf(j, f, JSON_COMPACT) == 0 && fflush(f) == 0 &&
                  fsync(fileno(f)) == 0;
        ok = fclose(f) == 0 && ok;
        if (ok && rename(tmp, path) == 0) {
            rc = 0;
        } else {
            unlink(tmp);
        }
    }
    json_decref(j);
    return rc;
}

static int cache_read(const struct req_copy *r,
                      struct cairn_config_release *out)
{
    if (r->cache_dir == NULL) {
        return CAIRN_E_NOT_FOUND;
    }
    char path[4096];
    cache_path(r, path, sizeof(path));
    json_t *j = json_load_file(path, 0, NULL);
    if (j == NULL) {
        return CAIRN_E_NOT_FOUND;
    }
    int rc = cairn__release_from_json(j, out);
    json_decref(j);
    if (rc == 0) {
        out->stale = true;
    }
    return rc;
}

/* --------------------------------------------------------------- get */

static int get_from(struct cairn__eps *eps, const struct req_copy *r,
                    int64_t timeout_ms, struct cairn_config_release *out,
                    char *eb, size_t ebn)
{
    char q[14000], path[14600];
    int rc = query(r, NULL, q, sizeof(q));
    if (rc != 0) {
        return rc;
    }
    snprintf(path, sizeof(path), "/api/v1/config/%s/%s/%s%s", r->ns, r->app,
             r->name, q);
    struct cairn__http_resp h;
    rc = cairn__api(eps, "GET", path, NULL, true, timeout_ms, &h, eb, ebn);
    if (rc == 0) {
        json_t *j = json_loadb(h.body, h.body_len, 0, NULL);
        rc =
            j != NULL ? cairn__release_from_json(j, out) : CAIRN_E_BAD_RESPONSE;
        json_decref(j);
    }
    cairn__http_resp_free(&h);
    return rc;
}

CAIRN_EXPORT int cairn_config_get(struct cairn_client *c,
                                  const struct cairn_config_req *req,
                                  int64_t deadline_ms,
                                  struct cairn_config_release *out)
{
    if (out != NULL) {
        memset(out, 0, sizeof(*out));
    }
    if (c == NULL || out == NULL || !req_ok(req) || deadline_ms < 0) {
        return CAIRN_E_INVALID;
    }
    struct req_copy r;
    int rc = req_copy(req, &r);
    if (rc != 0) {
        return rc;
    }
    struct cairn__eps eps;
    rc = cairn__eps_copy(c, &eps);
    if (rc != 0) {
        req_free(&r);
        return rc;
    }
    char eb[512] = "";
    pthread_mutex_lock(&c->mu);
    int64_t ms = deadline_ms > 0 ? deadline_ms : c->timeout_ms;
    pthread_mutex_unlock(&c->mu);
    rc = get_from(&eps, &r, ms, out, eb, sizeof(eb));
    if (rc == 0) {
        cache_write(&r, out); /* best effort: the answer is good anyway */
    } else if (rc == CAIRN_E_UNAVAILABLE || rc == CAIRN_E_TIMEOUT) {
        cairn_config_release_free(out);
        int crc = cache_read(&r, out);
        if (crc == 0) {
            rc = 0;
        } else {
            cairn_config_release_free(out);
            memset(out, 0, sizeof(*out));
        }
    }
    if (rc != 0) {
        pthread_mutex_lock(&c->mu);
        cairn__fail(c, rc, 0, "%s", eb[0] != 0 ? eb : cairn_strerror(rc));
        pthread_mutex_unlock(&c->mu);
        cairn_config_release_free(out);
    }
    cairn__eps_free(&eps);
    req_free(&r);
    return rc;
}

/* ------------------------------------------------------------- watch */

struct cairn_config_watch {
    pthread_mutex_t mu;
    bool connected;
    struct cairn__mux *mux;
    struct cairn__sub sub;
    struct req_copy req;
    cairn_config_cb cb;
    void *cb_arg;
    /* the thread's: */
    int64_t since;
    bool delivered;
    bool delivered_stale;
    int64_t delivered_version;
    char delivered_sha[65];
};

/* Delivers rel when it is new to the callback; acks it on the stream
 * (not a stale one, nor with live false: a release from the cache). */
static void deliver(struct cairn_config_watch *w, bool live,
                    const struct cairn_config_release *rel)
{
    if (w->delivered && !w->delivered_stale &&
        w->delivered_version == rel->version &&
        strcmp(w->delivered_sha, rel->sha256) == 0) {
        return;
    }
    w->cb(w->cb_arg, rel);
    w->delivered = true;
    w->delivered_stale = rel->stale;
    w->delivered_version = rel->version;
    snprintf(w->delivered_sha, sizeof(w->delivered_sha), "%s", rel->sha256);
    if (rel->stale || !live) {
        return;
    }
    json_t *a = json_pack("{s:s,s:s,s:I}", "op", "ack", "name", w->req.name,
                          "version", (json_int_t)rel->version);
    if (a != NULL) {
        cairn__mux_send(w->mux, &w->sub, a);
    }
    json_decref(a);
    cache_write(&w->req, rel);
}

static bool is_ours(const struct cairn_config_watch *w, const json_t *o)
{
    const char *n = json_string_value(json_object_get(o, "name"));
    const char *a = json_string_value(json_object_get(o, "app"));
    return n != NULL && strcmp(n, w->req.name) == 0 &&
           (a == NULL || strcmp(a, w->req.app) == 0);
}

/* One stream message; a negative return ends the stream. */
static int watch_apply(struct cairn_config_watch *w, const json_t *m)
{
    const char *type = json_string_value(json_object_get(m, "type"));
    if (type == NULL) {
        return CAIRN_E_BAD_RESPONSE;
    }
    json_t *rev = json_object_get(m, "revision");
    int rc = 0;
    if (strcmp(type, "snapshot") == 0) {
        json_t *arr = json_object_get(m, "configs");
        if (!json_is_array(arr)) {
            return CAIRN_E_BAD_RESPONSE;
        }
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
        {
            if (!is_ours(w, v)) {
                continue;
            }
            struct cairn_config_release rel;
            rc = cairn__release_from_json(v, &rel);
            if (rc == 0) {
                deliver(w, true, &rel);
            }
            cairn_config_release_free(&rel);
        }
    } else if (strcmp(type, "put") == 0) {
        if (is_ours(w, m)) {
            struct cairn_config_release rel;
            rc = cairn__release_from_json(m, &rel);
            if (rc == 0) {
                deliver(w, true, &rel);
            }
            cairn_config_release_free(&rel);
        }
    } else if (strcmp(type, "error") == 0) {
        const char *code = json_string_value(json_object_get(m, "code"));
        /* an ack the server did not expect is not fatal */
        return code != NULL && strcmp(code, "bad_request") == 0
                   ? 0
                   : CAIRN_E_SERVER;
    }
    if (rc == 0 && json_is_integer(rev) && strcmp(type, "compacted") != 0) {
        w->since = (int64_t)json_integer_value(rev);
    }
    return rc;
}

/* The subscribe's fields: client id, labels, and "since" after the
 * first message. */
static json_t *watch_request(struct cairn__sub *s)
{
    struct cairn_config_watch *w = s->owner;
    json_t *r = json_pack("{s:s,s:s,s:s,s:s}", "kind", "config", "namespace",
                          w->req.ns, "app", w->req.app, "name", w->req.name);
    if (r == NULL) {
        return NULL;
    }
    if (w->req.client_id != NULL) {
        json_object_set_new(r, "client_id", json_string(w->req.client_id));
    }
    if (w->req.labels != NULL) {
        json_object_set_new(r, "labels", json_string(w->req.labels));
    }
    if (w->since > 0) {
        json_object_set_new(r, "since", json_integer(w->since));
    }
    return r;
}

static void set_connected(struct cairn_config_watch *w, bool up)
{
    pthread_mutex_lock(&w->mu);
    w->connected = up;
    pthread_mutex_unlock(&w->mu);
}

static int watch_msg(struct cairn__sub *s, const json_t *m)
{
    struct cairn_config_watch *w = s->owner;
    json_t *err = json_object_get(m, "error");
    if (err != NULL) {
        const char *code = json_string_value(json_object_get(err, "code"));
        /* an ack the server did not expect is not fatal */
        if (w->connected && code != NULL && strcmp(code, "bad_request") == 0) {
            return 0;
        }
        return cairn__mux_code_err(code);
    }
    if (json_object_get(m, "type") == NULL) { /* the subscribe's answer */
        set_connected(w, true);
        return 0;
    }
    return watch_apply(w, m);
}

static void watch_link(struct cairn__sub *s, int err)
{
    struct cairn_config_watch *w = s->owner;
    if (err == 0) {
        return; /* connected once the subscribe is answered */
    }
    set_connected(w, false);
    if (!w->delivered) { /* nothing yet: the cache */
        struct cairn_config_release rel = {0};
        if (cache_read(&w->req, &rel) == 0) {
            deliver(w, false, &rel);
        }
        cairn_config_release_free(&rel);
    }
}

static const struct cairn__sub_ops watch_ops = {watch_request, watch_msg,
                                                watch_link};

CAIRN_EXPORT int cairn_config_watch_new(struct cairn_client *c,
                                        const struct cairn_config_req *req,
                                        cairn_config_cb cb, void *cb_arg,
                                        struct cairn_config_watch **out)
{
    if (c == NULL || cb == NULL || out == NULL || !req_ok(req)) {
        return CAIRN_E_INVALID;
    }
    struct cairn_config_watch *w = mem_calloc(1, sizeof(*w));
    if (w == NULL) {
        return CAIRN_E_NOMEM;
    }
    int rc = req_copy(req, &w->req);
    if (rc == 0) {
        rc = cairn__mux_get(c, &w->mux);
        if (rc != 0) {
            req_free(&w->req);
        }
    }
    if (rc != 0) {
        mem_free(w);
        return rc;
    }
    w->cb = cb;
    w->cb_arg = cb_arg;
    pthread_mutex_init(&w->mu, NULL);
    w->sub.ops = &watch_ops;
    w->sub.owner = w;
    cairn__mux_add(w->mux, &w->sub);
    *out = w;
    return 0;
}

CAIRN_EXPORT bool cairn_config_watch_connected(struct cairn_config_watch *w)
{
    if (w == NULL) {
        return false;
    }
    pthread_mutex_lock(&w->mu);
    bool c = w->connected;
    pthread_mutex_unlock(&w->mu);
    return c;
}

CAIRN_EXPORT void cairn_config_watch_free(struct cairn_config_watch *w)
{
    if (w == NULL) {
        return;
    }
    cairn__mux_remove(w->mux, &w->sub);
    cairn__mux_put(w->mux);
    pthread_mutex_destroy(&w->mu);
    req_free(&w->req);
    mem_free(w);
}

/*
 * registry.c - libcairn's registrations (a session kept alive by a thread,
 * instances registered again after an expiry), discovery caches following
 * the pushed stream, and pickers.
 *
 * Registration. io_mu serializes every network exchange of the
 * registration (keep-alive, session open, PUT, DELETE) and guards the
 * session id and the instance list; mu and cv only wake and stop the
 * thread. The thread waits ttl/3 on a CLOCK_MONOTONIC condition, so after
 * a SIGSTOP longer than the TTL it wakes at once on SIGCONT: its
 * keep-alive answers 410, it opens a new session and PUTs every
 * remembered instance again (dirty until all succeeded), then reports
 * CAIRN_SESSION_REREGISTERED. The server fences writes by session, so the
 * old session's expiry can never remove the new registrations.
 *
 * Discovery. A subscription on the client's one /api/v1/stream socket
 * (mux_int.h; kind registry, <ns>[/<svc>]); a snapshot replaces the cache,
 * a put upserts by (service, id), a delete removes. After a broken socket
 * it subscribes again with "since" the last revision, so the cache misses
 * nothing; a compacted answer is followed by a fresh snapshot, which
 * replaces it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "sdk/api_int.h"
#include "sdk/client_int.h"
#include "sdk/mux_int.h"

#define KEEPALIVE_MIN_MS 300
#define RETRY_MS         500

/* ------------------------------------------------------- registration */

struct reg_inst {
    char *path; /* /api/v1/registry/<ns>/<svc>/<id> */
    json_t *doc;
};

struct cairn_registration {
    pthread_mutex_t mu; /* stop, wake */
    pthread_cond_t cv;
    pthread_t thr;
    volatile bool stop;
    bool wake;

    pthread_mutex_t io_mu; /* everything below */
    struct cairn__eps eps;
    int64_t ttl_s;
    int64_t timeout_ms;
    cairn_session_cb cb;
    void *cb_arg;
    char session[40]; /* "" while none is open */
    bool dirty;       /* instances must be PUT again */
    bool lost;
    uint64_t rereg;
    struct reg_inst *insts;
    size_t insts_count;
    char errmsg[512];
};

static void timespec_after_ms(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* POST /sessions; io_mu held. */
static int session_open(struct cairn_registration *r)
{
    char body[64];
    snprintf(body, sizeof(body), "{\"ttl\":%lld", (long long)r->ttl_s);
    strcat(body, "}");
    struct cairn__http_resp h;
    int rc = cairn__api(&r->eps, "POST", "/api/v1/sessions", body, false,
                        r->timeout_ms, &h, r->errmsg, sizeof(r->errmsg));
    if (rc == 0) {
        json_t *j = json_loadb(h.body, h.body_len, 0, NULL);
        const char *s = json_string_value(json_object_get(j, "session"));
        if (s == NULL || strlen(s) == 0 || strlen(s) >= sizeof(r->session)) {
            snprintf(r->errmsg, sizeof(r->errmsg), "session answer: %.200s",
                     h.body);
            rc = CAIRN_E_BAD_RESPONSE;
        } else {
            snprintf(r->session, sizeof(r->session), "%s", s);
        }
        json_decref(j);
    }
    cairn__http_resp_free(&h);
    return rc;
}

/* PUT one instance under the current session; io_mu held. */
static int inst_put(struct cairn_registration *r, const struct reg_inst *in)
{
    json_t *doc = json_copy(in->doc);
    if (doc == NULL ||
        json_object_set_new(doc, "session", json_string(r->session)) != 0) {
        json_decref(doc);
        return CAIRN_E_NOMEM;
    }
    char *body = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (body == NULL) {
        return CAIRN_E_NOMEM;
    }
    struct cairn__http_resp h;
    int rc = cairn__api(&r->eps, "PUT", in->path, body, true, r->timeout_ms, &h,
                        r->errmsg, sizeof(r->errmsg));
    free(body);
    cairn__http_resp_free(&h);
    return rc;
}

/* Makes sure a session is open and every instance is under it. Returns
 * the event to report (0: none). io_mu held. */
static int reg_step(struct cairn_registration *r, int *err)
{
    int ev = 0;
    int rc = 0;
    bool expired = false;
    if (r->session[0] != 0) {
        char path[128];
        snprintf(path, sizeof(path), "/api/v1/sessions/%s/keepalive",
                 r->session);
        struct cairn__http_resp h;
        rc = cairn__api(&r->eps, "POST", path, NULL, true, r->timeout_ms, &h,
                        r->errmsg, sizeof(r->errmsg));
        cairn__http_resp_free(&h);
        if (rc == CAIRN_E_SESSION_EXPIRED) {
            r->session[0] = 0;
            r->dirty = true;
            expired = true;
            rc = 0;
        }
    }
    if (rc == 0 && r->session[0] == 0) {
        rc = session_open(r);
        r->dirty = rc == 0 || r->dirty;
    }
    for (size_t i = 0; rc == 0 && r->dirty && i < r->insts_count; i++) {
        rc = inst_put(r, &r->insts[i]);
        if (rc == CAIRN_E_SESSION_EXPIRED) { /* expired again already */
            r->session[0] = 0;
        }
    }
    if (rc == 0 && r->dirty) {
        r->dirty = false;
        r->rereg++;
        ev = CAIRN_SESSION_REREGISTERED;
    } else if (rc == 0 && r->lost) {
        ev = CAIRN_SESSION_RENEWED;
    }
    (void)expired;
    if (rc != 0) {
        ev = r->lost ? 0 : CAIRN_SESSION_LOST;
        r->lost = true;
    } else {
        r->lost = false;
    }
    *err = rc;
    return ev;
}

static void *reg_thread(void *arg)
{
    struct cairn_registration *r = arg;
    int64_t interval = r->ttl_s * 1000 / 3;
    if (interval < KEEPALIVE_MIN_MS) {
        interval = KEEPALIVE_MIN_MS;
    }
    int64_t next_ms = interval;
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        struct timespec ts;
        timespec_after_ms(&ts, next_ms);
        while (!r->stop && !r->wake &&
               pthread_cond_timedwait(&r->cv, &r->mu, &ts) == 0) {
        }
        r->wake = false;
        if (r->stop) {
            break;
        }
        pthread_mutex_unlock(&r->mu);
        pthread_mutex_lock(&r->io_mu);
        int err = 0;
        int ev = reg_step(r, &err);
        char sess[40];
        memcpy(sess, r->session, sizeof(sess));
        next_ms = r->lost || r->dirty ? RETRY_MS : interval;
        pthread_mutex_unlock(&r->io_mu);
        if (ev != 0 && r->cb != NULL) {
            r->cb(r->cb_arg, (enum cairn_session_event)ev, err, sess);
        }
        pthread_mutex_lock(&r->mu);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void reg_wake(struct cairn_registration *r)
{
    pthread_mutex_lock(&r->mu);
    r->wake = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

CAIRN_EXPORT int
cairn_registration_new(struct cairn_client *c,
                       const struct cairn_registration_options *o,
                       struct cairn_registration **out)
{
    if (c == NULL || out == NULL ||
        (o != NULL && (o->ttl_s < 0 || o->ttl_s > 3600 || o->timeout_ms < 0))) {
        return CAIRN_E_INVALID;
    }
    struct cairn_registration *r = mem_calloc(1, sizeof(*r));
    if (r == NULL) {
        return CAIRN_E_NOMEM;
    }
    int rc = cairn__eps_copy(c, &r->eps);
    if (rc != 0) {
        mem_free(r);
        return rc;
    }
    r->ttl_s = o != NULL && o->ttl_s > 0 ? o->ttl_s : 10;
    r->timeout_ms = o != NULL && o->timeout_ms > 0 ? o->timeout_ms : 2000;
    r->cb = o != NULL ? o->cb : NULL;
    r->cb_arg = o != NULL ? o->cb_arg : NULL;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->io_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    rc = session_open(r);
    if (rc == 0 && pthread_create(&r->thr, NULL, reg_thread, r) != 0) {
        rc = CAIRN_E_NOMEM;
    }
    if (rc != 0) {
        /* the session, if open, expires by its TTL */
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        pthread_mutex_destroy(&r->io_mu);
        cairn__eps_free(&r->eps);
        mem_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

static bool json_text_object(const char *s, json_t **out)
{
    *out = NULL;
    if (s == NULL) {
        return true;
    }
    json_t *j = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return false;
    }
    *out = j;
    return true;
}

static json_t *spec_doc(const struct cairn_instance_spec *s)
{
    json_t *labels = NULL, *meta = NULL;
    if (!json_text_object(s->labels_json, &labels) ||
        !json_text_object(s->meta_json, &meta)) {
        json_decref(labels);
        return NULL;
    }
    json_t *d = json_object();
    if (d == NULL) {
        json_decref(labels);
        json_decref(meta);
        return NULL;
    }
    json_object_set_new(d, "addr", json_string(s->addr));
    if (s->weight >= 0) {
        json_object_set_new(d, "weight", json_integer(s->weight));
    }
    if (s->zone != NULL) {
        json_object_set_new(d, "zone", json_string(s->zone));
    }
    if (s->version != NULL) {
        json_object_set_new(d, "version", json_string(s->version));
    }
    if (labels != NULL) {
        json_object_set_new(d, "labels", labels);
    }
    if (meta != NULL) {
        json_object_set_new(d, "meta", meta);
    }
    if (json_object_size(d) == 0 ||
        !json_is_string(json_object_get(d, "addr"))) {
        json_decref(d);
        return NULL;
    }
    return d;
}

CAIRN_EXPORT int cairn_register(struct cairn_registration *r,
                                const struct cairn_instance_spec *spec)
{
    if (r == NULL || spec == NULL || !cairn__name_ok(spec->ns) ||
        !cairn__name_ok(spec->service) || !cairn__name_ok(spec->id) ||
        spec->addr == NULL || spec->addr[0] == 0 || spec->weight > 1000 ||
        (spec->zone != NULL && strlen(spec->zone) > CAIRN_NAME_MAX) ||
        (spec->version != NULL && strlen(spec->version) > CAIRN_NAME_MAX)) {
        return CAIRN_E_INVALID;
    }
    struct reg_inst in = {0};
    in.doc = spec_doc(spec);
    if (in.doc == NULL) {
        return CAIRN_E_INVALID; /* labels/meta not JSON objects, or NOMEM */
    }
    size_t pl =
        32 + strlen(spec->ns) + strlen(spec->service) + strlen(spec->id);
    in.path = mem_alloc(pl);
    if (in.path == NULL) {
        json_decref(in.doc);
        return CAIRN_E_NOMEM;
    }
    snprintf(in.path, pl, "/api/v1/registry/%s/%s/%s", spec->ns, spec->service,
             spec->id);
    pthread_mutex_lock(&r->io_mu);
    int rc = r->session[0] == 0 ? session_open(r) : 0;
    if (rc == 0) {
        rc = inst_put(r, &in);
    }
    if (rc == CAIRN_E_SESSION_EXPIRED) { /* renew now, the rest follows */
        r->session[0] = 0;
        rc = session_open(r);
        if (rc == 0) {
            r->dirty = r->insts_count > 0;
            rc = inst_put(r, &in);
        }
    }
    size_t i = 0;
    while (i < r->insts_count && strcmp(r->insts[i].path, in.path) != 0) {
        i++;
    }
    if (rc == 0 && i == r->insts_count) {
        struct reg_inst *n =
            mem_realloc(r->insts, (r->insts_count + 1) * sizeof(*n));
        if (n == NULL) {
            rc = CAIRN_E_NOMEM; /* registered, not remembered: undo */
            struct cairn__http_resp h;
            cairn__api(&r->eps, "DELETE", in.path, NULL, true, r->timeout_ms,
                       &h, NULL, 0);
            cairn__http_resp_free(&h);
        } else {
            r->insts = n;
            r->insts[r->insts_count++] = in;
            in.path = NULL;
            in.doc = NULL;
        }
    } else if (rc == 0) {
        json_decref(r->insts[i].doc);
        r->insts[i].doc = in.doc;
        in.doc = NULL;
    }
    bool wake = r->dirty;
    pthread_mutex_unlock(&r->io_mu);
    mem_free(in.path);
    json_decref(in.doc);
    if (wake) {
        reg_wake(r);
    }
    return rc;
}

CAIRN_EXPORT int cairn_deregister(struct cairn_registration *r, const char *ns,
                                  const char *service, const char *id)
{
    if (r == NULL || !cairn__name_ok(ns) || !cairn__name_ok(service) ||
        !cairn__name_ok(id)) {
        return CAIRN_E_INVALID;
    }
    char path[3 * CAIRN_NAME_MAX + 32];
    snprintf(path, sizeof(path), "/api/v1/registry/%s/%s/%s", ns, service, id);
    pthread_mutex_lock(&r->io_mu);
    for (size_t i = 0; i < r->insts_count; i++) {
        if (strcmp(r->insts[i].path, path) == 0) {
            mem_free(r->insts[i].path);
            json_decref(r->insts[i].doc);
            r->insts[i] = r->insts[--r->insts_count];
            break;
        }
    }
    struct cairn__http_resp h;
    int rc = cairn__api(&r->eps, "DELETE", path, NULL, true, r->timeout_ms, &h,
                        r->errmsg, sizeof(r->errmsg));
    cairn__http_resp_free(&h);
    pthread_mutex_unlock(&r->io_mu);
    return rc;
}

CAIRN_EXPORT int cairn_registration_session(struct cairn_registration *r,
                                            char *buf, size_t buf_size,
                                            uint64_t *reregistrations)
{
    if (r == NULL || buf == NULL || buf_size == 0) {
        return CAIRN_E_INVALID;
    }
    pthread_mutex_lock(&r->io_mu);
    int rc = strlen(r->session) < buf_size ? 0 : CAIRN_E_INVALID;
    if (rc == 0) {
        memcpy(buf, r->session, strlen(r->session) + 1);
    }
    if (reregistrations != NULL) {
        *reregistrations = r->rereg;
    }
    pthread_mutex_unlock(&r->io_mu);
    return rc;
}

CAIRN_EXPORT const char *cairn_registration_errmsg(struct cairn_registration *r)
{
    return r != NULL ? r->errmsg : "";
}

CAIRN_EXPORT void cairn_registration_free(struct cairn_registration *r,
                                          bool end_session)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thr, NULL);
    if (end_session && r->session[0] != 0) {
        char path[128];
        snprintf(path, sizeof(path), "/api/v1/sessions/%s", r->session);
        struct cairn__http_resp h;
        cairn__api(&r->eps, "DELETE", path, NULL, true, r->timeout_ms, &h, NULL,
                   0);
        cairn__http_resp_free(&h);
    }
    for (size_t i = 0; i < r->insts_count; i++) {
        mem_free(r->insts[i].path);
        json_decref(r->insts[i].doc);
    }
    mem_free(r->insts);
    cairn__eps_free(&r->eps);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->io_mu);
    mem_free(r);
}

/* ---------------------------------------------------------- discovery */

struct cairn_discovery {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct cairn__mux *mux;
    struct cairn__sub sub;
    char *ns;
    char *service; /* NULL: the whole namespace */
    cairn_discovery_cb cb;
    void *cb_arg;
    /* under mu: */
    struct cairn_instance *items;
    size_t count;
    size_t cap;
    int64_t revision;
    bool have_snapshot;
    bool connected;
    int first_err;
    uint64_t rr;
    uint64_t prng;
};

static int inst_cmp(const void *a, const void *b)
{
    const struct cairn_instance *x = a, *y = b;
    int c = strcmp(x->service, y->service);
    return c != 0 ? c : strcmp(x->id, y->id);
}

static int list_copy(struct cairn_discovery *d, struct cairn_instance_list *l)
{
    memset(l, 0, sizeof(*l));
    if (d->count > 0) {
        l->items = mem_alloc(d->count * sizeof(*l->items));
        if (l->items == NULL) {
            return CAIRN_E_NOMEM;
        }
        memcpy(l->items, d->items, d->count * sizeof(*l->items));
    }
    l->count = d->count;
    l->revision = d->revision;
    return 0;
}

CAIRN_EXPORT void cairn_instance_list_free(struct cairn_instance_list *l)
{
    if (l != NULL) {
        mem_free(l->items);
        l->items = NULL;
        l->count = 0;
    }
}

static int upsert(struct cairn_discovery *d, const struct cairn_instance *in)
{
    for (size_t i = 0; i < d->count; i++) {
        if (inst_cmp(&d->items[i], in) == 0) {
            d->items[i] = *in;
            return 0;
        }
    }
    if (d->count == d->cap) {
        size_t nc = d->cap == 0 ? 8 : d->cap * 2;
        struct cairn_instance *n = mem_realloc(d->items, nc * sizeof(*n));
        if (n == NULL) {
            return CAIRN_E_NOMEM;
        }
        d->items = n;
        d->cap = nc;
    }
    d->items[d->count++] = *in;
    qsort(d->items, d->count, sizeof(*d->items), inst_cmp);
    return 0;
}

static void remove_inst(struct cairn_discovery *d,
                        const struct cairn_instance *in)
{
    for (size_t i = 0; i < d->count; i++) {
        if (inst_cmp(&d->items[i], in) == 0) {
            memmove(&d->items[i], &d->items[i + 1],
                    (d->count - i - 1) * sizeof(*d->items));
            d->count--;
            return;
        }
    }
}

/* Applies one stream message; *changed when the cache changed. A
 * negative return ends the stream (reconnect). mu held. */
static int disc_apply(struct cairn_discovery *d, const json_t *m, bool *changed)
{
    const char *type = json_string_value(json_object_get(m, "type"));
    json_t *rev = json_object_get(m, "revision");
    if (type == NULL) {
        return CAIRN_E_BAD_RESPONSE;
    }
    if (strcmp(type, "snapshot") == 0) {
        json_t *arr = json_object_get(m, "instances");
        if (!json_is_array(arr) || !json_is_integer(rev)) {
            return CAIRN_E_BAD_RESPONSE;
        }
        d->count = 0;
        size_t i;
        json_t *v;
        json_array_foreach(arr, i, v)
        {
            struct cairn_instance in;
            if (cairn__instance_from_json(v, &in) != 0) {
                return CAIRN_E_BAD_RESPONSE;
            }
            int rc = upsert(d, &in);
            if (rc != 0) {
                return rc;
            }
        }
        d->have_snapshot = true;
        *changed = true;
    } else if (strcmp(type, "put") == 0 || strcmp(type, "delete") == 0) {
        struct cairn_instance in;
        if (!json_is_integer(rev) ||
            cairn__instance_from_json(json_object_get(m, "instance"), &in) !=
                0) {
            return CAIRN_E_BAD_RESPONSE;
        }
        if (type[0] == 'p') {
            int rc = upsert(d, &in);
            if (rc != 0) {
                return rc;
            }
        } else {
            remove_inst(d, &in);
        }
        *changed = true;
    } else if (strcmp(type, "compacted") == 0) {
        return 0; /* a snapshot follows */
    } else if (strcmp(type, "error") == 0) {
        return CAIRN_E_SERVER;
    } else {
        return 0; /* unknown types are skipped */
    }
    d->revision = (int64_t)json_integer_value(rev);
    return 0;
}

/* The subscribe's fields: after a snapshot, "since" its revision. */
static json_t *disc_request(struct cairn__sub *s)
{
    struct cairn_discovery *d = s->owner;
    json_t *r = json_pack("{s:s,s:s}", "kind", "registry", "namespace", d->ns);
    if (r != NULL && d->service != NULL) {
        json_object_set_new(r, "service", json_string(d->service));
    }
    pthread_mutex_lock(&d->mu);
    if (r != NULL && d->have_snapshot) {
        json_object_set_new(r, "since", json_integer(d->revision));
    }
    pthread_mutex_unlock(&d->mu);
    return r;
}

static int disc_msg(struct cairn__sub *s, const json_t *m)
{
    struct cairn_discovery *d = s->owner;
    json_t *err = json_object_get(m, "error");
    if (err != NULL) { /* the subscribe was refused */
        int rc = cairn__mux_code_err(
            json_string_value(json_object_get(err, "code")));
        pthread_mutex_lock(&d->mu);
        d->first_err = d->have_snapshot ? d->first_err : rc;
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        return rc;
    }
    if (json_object_get(m, "type") == NULL) { /* the subscribe's answer */
        pthread_mutex_lock(&d->mu);
        d->connected = true;
        pthread_mutex_unlock(&d->mu);
        return 0;
    }
    bool changed = false;
    struct cairn_instance_list copy = {0};
    pthread_mutex_lock(&d->mu);
    int rc = disc_apply(d, m, &changed);
    if (rc == 0 && changed && d->cb != NULL && list_copy(d, &copy) != 0) {
        changed = false;
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (rc == 0 && changed && d->cb != NULL) {
        d->cb(d->cb_arg, &copy);
    }
    cairn_instance_list_free(&copy);
    return rc;
}

static void disc_link(struct cairn__sub *s, int err)
{
    struct cairn_discovery *d = s->owner;
    if (err == 0) {
        return; /* connected once the subscribe is answered */
    }
    pthread_mutex_lock(&d->mu);
    d->connected = false;
    if (!d->have_snapshot) {
        d->first_err = err;
    }
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static const struct cairn__sub_ops disc_ops = {disc_request, disc_msg,
                                               disc_link};

static void disc_free(struct cairn_discovery *d)
{
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    mem_free(d->items);
    mem_free(d->ns);
    mem_free(d->service);
    mem_free(d);
}

CAIRN_EXPORT int cairn_discovery_new(struct cairn_client *c, const char *ns,
                                     const char *service, cairn_discovery_cb cb,
                                     void *cb_arg, int64_t deadline_ms,
                                     struct cairn_discovery **out)
{
    if (c == NULL || out == NULL || !cairn__name_ok(ns) ||
        (service != NULL && !cairn__name_ok(service)) || deadline_ms < 0) {
        return CAIRN_E_INVALID;
    }
    struct cairn_discovery *d = mem_calloc(1, sizeof(*d));
    if (d == NULL) {
        return CAIRN_E_NOMEM;
    }
    d->ns = mem_dup(ns, strlen(ns) + 1);
    d->service = service != NULL ? mem_dup(service, strlen(service) + 1) : NULL;
    d->cb = cb;
    d->cb_arg = cb_arg;
    d->prng = cairn__now_ns() | 1;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = d->ns == NULL || (service != NULL && d->service == NULL)
                 ? CAIRN_E_NOMEM
                 : cairn__mux_get(c, &d->mux);
    if (rc != 0) {
        disc_free(d);
        return rc;
    }
    d->sub.ops = &disc_ops;
    d->sub.owner = d;
    cairn__mux_add(d->mux, &d->sub);
    struct timespec ts;
    timespec_after_ms(&ts, deadline_ms > 0 ? deadline_ms : 5000);
    pthread_mutex_lock(&d->mu);
    while (!d->have_snapshot && d->first_err != CAIRN_E_INVALID &&
           d->first_err != CAIRN_E_PERMISSION_DENIED &&
           d->first_err != CAIRN_E_INVALID_TOKEN &&
           pthread_cond_timedwait(&d->cv, &d->mu, &ts) == 0) {
    }
    if (!d->have_snapshot) {
        switch (d->first_err) {
        case CAIRN_E_UNAVAILABLE:
        case CAIRN_E_INVALID:
        case CAIRN_E_PERMISSION_DENIED:
        case CAIRN_E_INVALID_TOKEN:
            rc = d->first_err;
            break;
        default:
            rc = CAIRN_E_TIMEOUT;
        }
    }
    pthread_mutex_unlock(&d->mu);
    if (rc != 0) {
        cairn__mux_remove(d->mux, &d->sub);
        cairn__mux_put(d->mux);
        disc_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

CAIRN_EXPORT int cairn_discovery_get(struct cairn_discovery *d,
                                     struct cairn_instance_list *out)
{
    if (d == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    pthread_mutex_lock(&d->mu);
    int rc = list_copy(d, out);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

CAIRN_EXPORT bool cairn_discovery_connected(struct cairn_discovery *d)
{
    if (d == NULL) {
        return false;
    }
    pthread_mutex_lock(&d->mu);
    bool c = d->connected;
    pthread_mutex_unlock(&d->mu);
    return c;
}

CAIRN_EXPORT void cairn_discovery_free(struct cairn_discovery *d)
{
    if (d == NULL) {
        return;
    }
    cairn__mux_remove(d->mux, &d->sub);
    cairn__mux_put(d->mux);
    disc_free(d);
}

/* ------------------------------------------------------------ pickers */

static bool usable(const struct cairn_instance *in)
{
    return strcmp(in->status, "up") == 0 &&
           strcmp(in->health, "critical") != 0 && in->addr[0] != 0;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s != 0 ? *s : 0x9e3779b97f4a7c15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static int pick(const struct cairn_instance *items, size_t count,
                enum cairn_pick_policy policy, const char *zone,
                uint64_t *cursor, uint64_t *prng, struct cairn_instance *out)
{
    if (out == NULL || (policy != CAIRN_PICK_ROUND_ROBIN &&
                        policy != CAIRN_PICK_WEIGHTED_RANDOM &&
                        policy != CAIRN_PICK_ZONE_FIRST)) {
        return CAIRN_E_INVALID;
    }
    size_t n = 0, nz = 0;
    uint64_t wsum = 0;
    for (size_t i = 0; i < count; i++) {
        if (usable(&items[i])) {
            n++;
            wsum += (uint64_t)items[i].weight;
            if (zone != NULL && strcmp(items[i].zone, zone) == 0) {
                nz++;
            }
        }
    }
    if (n == 0) {
        return CAIRN_E_NOT_FOUND;
    }
    bool in_zone = policy == CAIRN_PICK_ZONE_FIRST && nz > 0;
    if (policy == CAIRN_PICK_WEIGHTED_RANDOM) {
        if (wsum == 0) {
            return CAIRN_E_NOT_FOUND;
        }
        uint64_t t = xorshift(prng) % wsum;
        for (size_t i = 0; i < count; i++) {
            if (!usable(&items[i])) {
                continue;
            }
            if (t < (uint64_t)items[i].weight) {
                *out = items[i];
                return 0;
            }
            t -= (uint64_t)items[i].weight;
        }
        return CAIRN_E_NOT_FOUND; /* not reached */
    }
    size_t want = (size_t)((*cursor)++ % (in_zone ? nz : n));
    for (size_t i = 0; i < count; i++) {
        if (!usable(&items[i]) ||
            (in_zone && strcmp(items[i].zone, zone) != 0)) {
            continue;
        }
        if (want-- == 0) {
            *out = items[i];
            return 0;
        }
    }
    return CAIRN_E_NOT_FOUND;
}

CAIRN_EXPORT int cairn_pick(struct cairn_discovery *d,
                            enum cairn_pick_policy policy, const char *zone,
                            struct cairn_instance *out)
{
    if (d == NULL) {
        return CAIRN_E_INVALID;
    }
    pthread_mutex_lock(&d->mu);
    int rc = pick(d->items, d->count, policy, zone, &d->rr, &d->prng, out);
    pthread_mutex_unlock(&d->mu);
    return rc;
}

CAIRN_EXPORT int cairn_pick_from(const struct cairn_instance_list *l,
                                 enum cairn_pick_policy policy,
                                 const char *zone, uint64_t *cursor,
                                 struct cairn_instance *out)
{
    if (l == NULL || cursor == NULL || (l->count > 0 && l->items == NULL)) {
        return CAIRN_E_INVALID;
    }
    uint64_t prng = *cursor * 0x9e3779b97f4a7c15ull + 1;
    int rc = pick(l->items, l->count, policy, zone, cursor, &prng, out);
    if (policy == CAIRN_PICK_WEIGHTED_RANDOM) {
        (*cursor)++;
    }
    return rc;
}

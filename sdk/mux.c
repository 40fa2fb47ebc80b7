/*
 * mux.c - the client's one WebSocket for all its subscriptions (mux_int.h).
 *
 * Happy path: the first discovery or config watch of a client creates its
 * mux and thread (cairn__mux_get) and registers a subscription
 * (cairn__mux_add). The thread opens /api/v1/stream on an endpoint, sends
 * {"id":<sub id>,"op":"subscribe",...} for each subscription (the fields
 * from its request handler: after a reconnect they carry "since"), then
 * reads: a message whose integer "id" names a subscription is its
 * subscribe's answer, one with "sub" and no "id" is its stream's; each goes
 * to that subscription's on_msg. Between reads it sends what handlers
 * queued (acks) and subscribes what is due. It sleeps in poll() on the
 * socket and a pipe: whatever gives it work (a subscription added or
 * removed, an ack queued, the last reference gone) writes a byte to the
 * pipe, so work goes out at once and an idle client's thread wakes only
 * every MUX_IDLE_MS (and when a resubscribe's backoff ends). A broken socket:
 * every subscription hears on_link(err), the thread waits its backoff and opens
 * the next endpoint.
 *
 * Handlers run without the mux's lock, one at a time, with in_handler set:
 * cairn__mux_remove from another thread waits for it to clear, so once it
 * returns the owner may free everything.
 */
#include "sdk/mux_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "sdk/client_int.h"

#define MUX_PATH       "/api/v1/stream"
#define MUX_IDLE_MS    1000
#define MUX_BACKOFF_MS 100
#define MUX_BACKOFF_MX 2000

struct cairn__mux {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thr;
    int wake[2]; /* a pipe: a byte wakes the thread (wake_up) */
    volatile bool stop;
    int refs;
    struct cairn__eps eps; /* the thread's */
    /* under mu: */
    struct cairn__sub *subs;
    int64_t next_id;
    bool up; /* the socket is open */
    char *queue[CAIRN__MUX_QUEUE_MAX];
    size_t qhead;
    size_t qlen;
};

int cairn__mux_code_err(const char *code)
{
    static const struct {
        const char *code;
        int err;
    } map[] = {
        {"bad_request", CAIRN_E_INVALID},
        {"unauthenticated", CAIRN_E_INVALID_TOKEN},
        {"permission_denied", CAIRN_E_PERMISSION_DENIED},
        {"not_found", CAIRN_E_NOT_FOUND},
        {"conflict", CAIRN_E_CONFLICT},
        {"session_expired", CAIRN_E_SESSION_EXPIRED},
        {"too_large", CAIRN_E_TOO_BIG},
        {"unavailable", CAIRN_E_UNAVAILABLE},
    };
    for (size_t i = 0; code != NULL && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(code, map[i].code) == 0) {
            return map[i].err;
        }
    }
    return CAIRN_E_SERVER;
}

/* Any thread: the mux thread looks for work now. A full pipe already
 * holds a wake-up. */
static void wake_up(struct cairn__mux *m)
{
    ssize_t r;
    do {
        r = write(m->wake[1], "w", 1);
    } while (r < 0 && errno == EINTR);
}

/* ------------------------------------------------------------ queue */

static void queue_clear(struct cairn__mux *m)
{
    while (m->qlen > 0) {
        free(m->queue[m->qhead]);
        m->qhead = (m->qhead + 1) % CAIRN__MUX_QUEUE_MAX;
        m->qlen--;
    }
    m->qhead = 0;
}

/* Under mu: queue msg's text (msg stays the caller's). */
static void queue_json(struct cairn__mux *m, json_t *msg)
{
    if (!m->up || m->qlen == CAIRN__MUX_QUEUE_MAX) {
        return;
    }
    char *s = json_dumps(msg, JSON_COMPACT);
    if (s != NULL) {
        m->queue[(m->qhead + m->qlen) % CAIRN__MUX_QUEUE_MAX] = s;
        m->qlen++;
        wake_up(m);
    }
}

static void queue_unsubscribe(struct cairn__mux *m, int64_t id)
{
    char rid[32];
    snprintf(rid, sizeof(rid), "u%lld", (long long)id);
    /* a string id: its answer is told apart from a subscribe's */
    json_t *u = json_pack("{s:s,s:s,s:I}", "id", rid, "op", "unsubscribe",
                          "sub", (json_int_t)id);
    if (u != NULL) {
        queue_json(m, u);
        json_decref(u);
    }
}

/* ---------------------------------------------------------- handlers */

/* Under mu: marks s busy and drops the lock for a handler call. */
static void handler_begin(struct cairn__mux *m, struct cairn__sub *s)
{
    s->in_handler = true;
    pthread_mutex_unlock(&m->mu);
}

/* Takes the lock back; s may now be removed by a waiting thread. */
static void handler_end(struct cairn__mux *m, struct cairn__sub *s)
{
    pthread_mutex_lock(&m->mu);
    s->in_handler = false;
    pthread_cond_broadcast(&m->cv);
}

static void link_all(struct cairn__mux *m, int err)
{
    pthread_mutex_lock(&m->mu);
    for (struct cairn__sub *s = m->subs; s != NULL; s = s->next) {
        if (err == 0) {
            s->sent = false;
            s->retry_at = 0;
        }
        handler_begin(m, s);
        s->ops->on_link(s, err);
        handler_end(m, s);
    }
    pthread_mutex_unlock(&m->mu);
}

static struct cairn__sub *find(struct cairn__mux *m, int64_t id)
{
    for (struct cairn__sub *s = m->subs; s != NULL; s = s->next) {
        if (s->id == id) {
            return s;
        }
    }
    return NULL;
}

/* Under mu: s failed (a refused subscribe, a stream error, a message it
 * could not use): subscribe it again after its backoff. */
static void resubscribe_later(struct cairn__mux *m, struct cairn__sub *s)
{
    if (s->sent) {
        queue_unsubscribe(m, s->id);
    }
    s->sent = false;
    s->retry_at = cairn__now_ns() + (uint64_t)s->backoff_ms * 1000000u;
    s->backoff_ms =
        s->backoff_ms * 2 > MUX_BACKOFF_MX ? MUX_BACKOFF_MX : s->backoff_ms * 2;
}

static void dispatch(struct cairn__mux *m, const json_t *j)
{
    json_t *id = json_object_get(j, "id");
    json_t *sub = json_object_get(j, "sub");
    int64_t target;
    if (json_is_integer(id)) {
        target = (int64_t)json_integer_value(id); /* a subscribe's answer */
    } else if (id == NULL && json_is_integer(sub)) {
        target = (int64_t)json_integer_value(sub);
    } else {
        return; /* an unsubscribe's answer, or an error of no subscription */
    }
    pthread_mutex_lock(&m->mu);
    struct cairn__sub *s = find(m, target);
    if (s != NULL && s->sent) {
        handler_begin(m, s);
        int rc = s->ops->on_msg(s, j);
        handler_end(m, s);
        if (rc != 0) {
            resubscribe_later(m, s);
        } else if (json_object_get(j, "type") != NULL) {
            s->backoff_ms = MUX_BACKOFF_MS; /* it streams again */
        }
    }
    pthread_mutex_unlock(&m->mu);
}

/* Sends the queue, then the subscribes that are due. */
static int pump_out(struct cairn__mux *m, struct cairn__ws *ws)
{
    int rc = 0;
    pthread_mutex_lock(&m->mu);
    while (rc == 0 && m->qlen > 0) {
        char *s = m->queue[m->qhead];
        m->qhead = (m->qhead + 1) % CAIRN__MUX_QUEUE_MAX;
        m->qlen--;
        pthread_mutex_unlock(&m->mu);
        rc = cairn__ws_send_text(ws, s, strlen(s), 2000);
        free(s);
        pthread_mutex_lock(&m->mu);
    }
    uint64_t now = cairn__now_ns();
    struct cairn__sub *s = m->subs;
    while (rc == 0 && s != NULL) {
        if (s->sent || s->retry_at > now) {
            s = s->next;
            continue;
        }
        handler_begin(m, s);
        json_t *req = s->ops->request(s);
        char *txt = NULL;
        if (req != NULL &&
            json_object_set_new(req, "id", json_integer(s->id)) == 0 &&
            json_object_set_new(req, "op", json_string("subscribe")) == 0) {
            txt = json_dumps(req, JSON_COMPACT);
        }
        json_decref(req);
        rc = txt != NULL ? cairn__ws_send_text(ws, txt, strlen(txt), 2000)
                         : CAIRN_E_NOMEM;
        free(txt);
        handler_end(m, s);
        if (rc == CAIRN_E_NOMEM) {
            rc = 0; /* try it again later; the socket is fine */
            s->retry_at = now + (uint64_t)MUX_BACKOFF_MX * 1000000u;
        } else if (rc == 0) {
            s->sent = true;
        }
        s = s->next;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* ------------------------------------------------------------ thread */

static bool has_subs(struct cairn__mux *m)
{
    pthread_mutex_lock(&m->mu);
    bool any = m->subs != NULL;
    pthread_mutex_unlock(&m->mu);
    return any;
}

/* How long the thread may sleep: until the first resubscribe falls due,
 * at most MUX_IDLE_MS. */
static int64_t wait_ms(struct cairn__mux *m)
{
    uint64_t now = cairn__now_ns();
    int64_t ms = MUX_IDLE_MS;
    pthread_mutex_lock(&m->mu);
    for (struct cairn__sub *s = m->subs; s != NULL; s = s->next) {
        if (!s->sent && s->retry_at > now) {
            int64_t d = (int64_t)((s->retry_at - now) / 1000000u) + 1;
            ms = d < ms ? d : ms;
        }
    }
    pthread_mutex_unlock(&m->mu);
    return ms;
}

/* Sleeps on the wake pipe alone (no socket), up to ms. */
static void nap_woken(struct cairn__mux *m, int64_t ms)
{
    struct pollfd p = {.fd = m->wake[0], .events = POLLIN};
    if (!m->stop && poll(&p, 1, (int)ms) > 0) {
        char drain[64];
        while (read(m->wake[0], drain, sizeof(drain)) > 0) {
        }
    }
}

static void *mux_thread(void *arg)
{
    struct cairn__mux *m = arg;
    int64_t backoff = MUX_BACKOFF_MS;
    size_t k = m->eps.cur;
    while (!m->stop) {
        if (!has_subs(m)) {
            nap_woken(m, MUX_IDLE_MS);
            continue;
        }
        struct cairn__ws ws = {.fd = -1};
        /* a fresh token per socket: one that expired while it ran would
         * refuse the reconnect */
        int rc = cairn__eps_auth(&m->eps, m->eps.user != NULL, 2000, NULL, 0);
        if (rc == 0) {
            rc = cairn__ws_open_auth(&ws, m->eps.ep[k % m->eps.count],
                                     &m->eps.tls, m->eps.token, MUX_PATH, 2000,
                                     CAIRN__MUX_MSG_MAX, NULL, 0);
        }
        if (rc == 0) {
            ws.wake = m->wake[0] + 1;
            pthread_mutex_lock(&m->mu);
            m->up = true;
            pthread_mutex_unlock(&m->mu);
            link_all(m, 0);
            backoff = MUX_BACKOFF_MS;
        }
        bool idle = false;
        while (rc == 0 && !m->stop) {
            if (!has_subs(m)) { /* the last one went: close the socket */
                idle = true;
                break;
            }
            rc = pump_out(m, &ws);
            char *msg = NULL;
            size_t len = 0;
            if (rc == 0) {
                rc = cairn__ws_recv(&ws, wait_ms(m), &msg, &len);
            }
            if (rc == CAIRN_E_TIMEOUT) {
                rc = 0;
                continue;
            }
            if (rc != 0) {
                break;
            }
            json_t *j = json_loadb(msg, len, 0, NULL);
            mem_free(msg);
            if (j == NULL) {
                rc = CAIRN_E_BAD_RESPONSE;
                break;
            }
            dispatch(m, j);
            json_decref(j);
        }
        if (ws.fd >= 0) {
            cairn__ws_close(&ws);
        }
        pthread_mutex_lock(&m->mu);
        m->up = false;
        queue_clear(m);
        pthread_mutex_unlock(&m->mu);
        if (m->stop) {
            break;
        }
        if (idle) {
            continue;
        }
        link_all(m, rc != 0 ? rc : CAIRN_E_UNAVAILABLE);
        k++;
        cairn__nap(&m->stop, backoff);
        backoff = backoff * 2 > MUX_BACKOFF_MX ? MUX_BACKOFF_MX : backoff * 2;
    }
    return NULL;
}

/* ------------------------------------------------------------ public */

int cairn__mux_get(struct cairn_client *c, struct cairn__mux **out)
{
    pthread_mutex_lock(&c->mu);
    struct cairn__mux *m = c->mux;
    if (m != NULL) {
        pthread_mutex_lock(&m->mu);
        m->refs++;
        pthread_mutex_unlock(&m->mu);
        pthread_mutex_unlock(&c->mu);
        *out = m;
        return 0;
    }
    pthread_mutex_unlock(&c->mu);
    m = mem_calloc(1, sizeof(*m));
    if (m == NULL) {
        return CAIRN_E_NOMEM;
    }
    int rc = cairn__eps_copy(c, &m->eps);
    if (rc != 0) {
        mem_free(m);
        return rc;
    }
    if (pipe2(m->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
        cairn__eps_free(&m->eps);
        mem_free(m);
        return CAIRN_E_NOMEM;
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    m->refs = 2; /* the client's and the caller's */
    m->next_id = 1;
    if (pthread_create(&m->thr, NULL, mux_thread, m) != 0) {
        pthread_cond_destroy(&m->cv);
        pthread_mutex_destroy(&m->mu);
        close(m->wake[0]);
        close(m->wake[1]);
        cairn__eps_free(&m->eps);
        mem_free(m);
        return CAIRN_E_NOMEM;
    }
    pthread_mutex_lock(&c->mu);
    if (c->mux != NULL) { /* another thread made one meanwhile */
        pthread_mutex_unlock(&c->mu);
        m->refs = 1;
        cairn__mux_put(m);
        return cairn__mux_get(c, out);
    }
    c->mux = m;
    pthread_mutex_unlock(&c->mu);
    *out = m;
    return 0;
}

void cairn__mux_put(struct cairn__mux *m)
{
    if (m == NULL) {
        return;
    }
    pthread_mutex_lock(&m->mu);
    bool last = --m->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (!last) {
        return;
    }
    m->stop = true;
    wake_up(m);
    if (pthread_equal(pthread_self(), m->thr)) {
        pthread_detach(m->thr); /* not reached by the contract; no leak */
        return;
    }
    pthread_join(m->thr, NULL);
    queue_clear(m);
    close(m->wake[0]);
    close(m->wake[1]);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    cairn__eps_free(&m->eps);
    mem_free(m);
}

int cairn__mux_add(struct cairn__mux *m, struct cairn__sub *s)
{
    pthread_mutex_lock(&m->mu);
    s->id = m->next_id++;
    s->sent = false;
    s->in_handler = false;
    s->retry_at = 0;
    s->backoff_ms = MUX_BACKOFF_MS;
    s->next = m->subs;
    m->subs = s;
    wake_up(m);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

void cairn__mux_remove(struct cairn__mux *m, struct cairn__sub *s)
{
    pthread_mutex_lock(&m->mu);
    if (!pthread_equal(pthread_self(), m->thr)) {
        while (s->in_handler) {
            pthread_cond_wait(&m->cv, &m->mu);
        }
    }
    for (struct cairn__sub **p = &m->subs; *p != NULL; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    if (s->sent) {
        queue_unsubscribe(m, s->id);
    }
    s->next = NULL;
    wake_up(m); /* the last one gone closes the socket */
    pthread_mutex_unlock(&m->mu);
}

void cairn__mux_send(struct cairn__mux *m, struct cairn__sub *s, json_t *msg)
{
    pthread_mutex_lock(&m->mu);
    if (s->sent && json_object_set_new(msg, "sub", json_integer(s->id)) == 0) {
        queue_json(m, msg);
    }
    pthread_mutex_unlock(&m->mu);
}

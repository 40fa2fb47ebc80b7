/*
 * async.c - libcairn's asynchronous face on a caller's uv_loop_t.
 *
 * Design. The blocking core (client.c, grpc_conn.c) drives a private loop
 * per client; instead of a second core written as callbacks, the async
 * face runs the blocking calls on threads of its own and hands each result
 * to the caller's loop through one uv_async_t, so every callback runs on
 * the loop's thread, and the two faces share every line of the protocol,
 * failover and resume code. Calls go to one worker thread (its own
 * client), in order, through a queue bounded at CAIRN_ASYNC_QUEUE_MAX;
 * each watch has its own thread and client (a watch waits in
 * cairn_watch_next, which would hold the calls back), and at most
 * CAIRN_ASYNC_WATCHES_MAX run at once.
 *
 * Results travel on one list under mu; uv_async_send coalesces, so the
 * async callback drains the whole list. A watch thread stops reading while
 * CAIRN_WATCH_QUEUE_MAX of its responses wait for the loop (the server
 * then holds the rest, and the core resumes after a drop without loss).
 *
 * Closing (cairn_async_free, on the loop's thread): the watches stop
 * (each within WATCH_POLL_MS of its call in progress), the worker finishes
 * the call it runs, and every call not answered yet is answered there and
 * then: its result, or CAIRN_E_CLOSED when it never ran. A watch's
 * undelivered responses are dropped. The memory goes in the uv_async_t's
 * close callback, so the loop must run once more.
 */
#include <pthread.h>
#include <string.h>

#include <uv.h>

#include "base/alloc.h"
#include "sdk/client_int.h"

#define WATCH_POLL_MS 200

enum res_kind { RES_CALL = 1, RES_WATCH };

struct async_job {
    struct async_job *next;
    enum res_kind kind;
    /* RES_CALL */
    cairn_async_fn fn;
    cairn_async_done done;
    void *arg;
    int rc;
    /* RES_WATCH */
    struct cairn_async_watch *w;
    struct cairn_watch_resp resp;
};

struct cairn_async_watch {
    struct cairn_async_watch *next; /* a->watches */
    struct cairn_async *a;
    pthread_t thr;
    bool stop;         /* under a->mu */
    bool ended;        /* the thread reported its end (under a->mu) */
    size_t queued;     /* responses waiting for the loop (under a->mu) */
    pthread_cond_t cv; /* queued went down, or stop */
    struct cairn_client *c;
    struct cairn_watch *cw;
    cairn_async_watch_cb cb;
    void *arg;
    uint8_t *key;
    uint8_t *end;
    struct cairn_watch_req req;
};

struct cairn_async {
    uv_loop_t *loop;
    uv_async_t wake;
    struct cairn_options opt; /* strings owned below */
    char *eps[CAIRN_ENDPOINTS_MAX];
    char *user;
    char *password;
    char *tls_files[4]; /* ca_file, cert_file, key_file, server_name */

    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;  /* work for the worker, or closing */
    pthread_t worker;
    bool closing;
    struct async_job *todo, *todo_tail; /* calls not started */
    size_t todo_count;
    struct async_job *out, *out_tail; /* results for the loop */
    size_t out_count;
    struct cairn_async_watch *watches;
    size_t watches_count;
    struct cairn_client *c; /* the worker's */
};

static char *dup_str(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *d = mem_alloc(n);
    if (d != NULL) {
        memcpy(d, s, n);
    }
    return d;
}

/* Queue a result for the loop; mu held. */
static void post(struct cairn_async *a, struct async_job *j)
{
    j->next = NULL;
    if (a->out_tail != NULL) {
        a->out_tail->next = j;
    } else {
        a->out = j;
    }
    a->out_tail = j;
    a->out_count++;
    uv_async_send(&a->wake);
}

static void *worker_main(void *arg)
{
    struct cairn_async *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (a->todo == NULL && !a->closing) {
            pthread_cond_wait(&a->cv, &a->mu);
        }
        if (a->closing) {
            break;
        }
        struct async_job *j = a->todo;
        a->todo = j->next;
        if (a->todo == NULL) {
            a->todo_tail = NULL;
        }
        a->todo_count--;
        pthread_mutex_unlock(&a->mu);
        j->rc = j->fn(a->c, j->arg);
        pthread_mutex_lock(&a->mu);
        post(a, j);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void watch_free(struct cairn_async_watch *w)
{
    cairn_watch_close(w->cw);
    cairn_client_free(w->c);
    pthread_cond_destroy(&w->cv);
    mem_free(w->key);
    mem_free(w->end);
    mem_free(w);
}

static void *watch_main(void *arg)
{
    struct cairn_async_watch *w = arg;
    struct cairn_async *a = w->a;
    int rc = cairn_watch_open(w->c, &w->req, 0, &w->cw);
    for (;;) {
        struct async_job *j = mem_calloc(1, sizeof(*j));
        if (j == NULL) {
            rc = CAIRN_E_NOMEM;
        }
        while (rc == 0) {
            pthread_mutex_lock(&a->mu);
            bool stop = w->stop;
            pthread_mutex_unlock(&a->mu);
            if (stop) {
                rc = CAIRN_E_CLOSED;
                break;
            }
            rc = cairn_watch_next(w->cw, WATCH_POLL_MS, &j->resp);
            if (rc == CAIRN_E_TIMEOUT) {
                rc = 0;
                continue;
            }
            break;
        }
        pthread_mutex_lock(&a->mu);
        if (j != NULL) {
            j->kind = RES_WATCH;
            j->w = w;
            j->rc = rc;
            w->queued++;
            if (rc != 0) {
                w->ended = true;
            }
            post(a, j);
        } else {
            w->ended = true; /* the end is reported by the close */
        }
        if (rc != 0) {
            pthread_mutex_unlock(&a->mu);
            return NULL;
        }
        while (w->queued >= CAIRN_WATCH_QUEUE_MAX && !w->stop) {
            pthread_cond_wait(&w->cv, &a->mu);
        }
        pthread_mutex_unlock(&a->mu);
    }
}

/* Deliver one result on the loop's thread. */
static void deliver(struct cairn_async *a, struct async_job *j)
{
    if (j->kind == RES_CALL) {
        if (j->done != NULL) {
            j->done(j->arg, j->rc);
        }
    } else {
        struct cairn_async_watch *w = j->w;
        pthread_mutex_lock(&a->mu);
        w->queued--;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&a->mu);
        w->cb(w->arg, j->rc, j->rc == 0 ? &j->resp : NULL);
        cairn_watch_resp_free(&j->resp);
    }
    mem_free(j);
}

/* On the loop: the results queued when it ran, one at a time (a callback
 * may close a watch, whose later results then go, or the whole face). */
static void on_wake(uv_async_t *h)
{
    struct cairn_async *a = h->data;
    pthread_mutex_lock(&a->mu);
    size_t n = a->out_count;
    pthread_mutex_unlock(&a->mu);
    while (n-- > 0) {
        pthread_mutex_lock(&a->mu);
        struct async_job *j = a->out;
        if (j != NULL) {
            a->out = j->next;
            if (a->out == NULL) {
                a->out_tail = NULL;
            }
            a->out_count--;
        }
        pthread_mutex_unlock(&a->mu);
        if (j == NULL) {
            break;
        }
        deliver(a, j);
    }
}

CAIRN_EXPORT int cairn_async_new(struct uv_loop_s *loop,
                                 const struct cairn_options *opt,
                                 struct cairn_async **out)
{
    return cairn_async_new_ex(loop, opt, out, NULL, 0);
}

CAIRN_EXPORT int cairn_async_new_ex(struct uv_loop_s *loop,
                                    const struct cairn_options *in,
                                    struct cairn_async **out, char *eb,
                                    size_t ebn)
{
    if (loop == NULL || out == NULL) {
        return cairn__why(eb, ebn, CAIRN_E_INVALID, "no %s (NULL)",
                          loop == NULL ? "loop" : "out pointer");
    }
    *out = NULL;
    /* The caller's struct may be shorter than ours (an older cairn.h):
     * only cairn__options_read reads it, never a plain copy. */
    struct cairn_options o;
    int rc = cairn__options_read(in, &o, eb, ebn);
    if (rc != 0) {
        return rc;
    }
    const struct cairn_options *opt = &o;
    struct cairn_async *a = mem_calloc(1, sizeof(*a));
    if (a == NULL) {
        return cairn__why(eb, ebn, CAIRN_E_NOMEM, "out of memory");
    }
    rc = cairn_client_new_ex(opt, &a->c, eb, ebn); /* checks opt */
    if (rc != 0) {
        mem_free(a);
        return rc;
    }
    a->opt = *opt;
    bool ok = true;
    for (size_t i = 0; i < opt->endpoints_count; i++) {
        a->eps[i] = dup_str(opt->endpoints[i]);
        ok = ok && a->eps[i] != NULL;
    }
    a->user = dup_str(opt->user);
    a->password = dup_str(opt->password);
    a->opt.endpoints = (const char *const *)a->eps;
    a->opt.user = a->user;
    a->opt.password = a->password;
    const char **tls_opts[4] = {&a->opt.ca_file, &a->opt.cert_file,
                                &a->opt.key_file, &a->opt.server_name};
    for (size_t i = 0; i < 4; i++) {
        a->tls_files[i] = dup_str(*tls_opts[i]);
        ok = ok && (*tls_opts[i] == NULL || a->tls_files[i] != NULL);
        *tls_opts[i] = a->tls_files[i];
    }
    a->loop = loop;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    bool thread = ok && pthread_create(&a->worker, NULL, worker_main, a) == 0;
    if (thread && uv_async_init(loop, &a->wake, on_wake) == 0) {
        a->wake.data = a;
        *out = a;
        return 0;
    }
    if (thread) { /* nothing is queued yet: it waits, then sees closing */
        pthread_mutex_lock(&a->mu);
        a->closing = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->worker, NULL);
    }
    for (size_t i = 0; i < CAIRN_ENDPOINTS_MAX; i++) {
        mem_free(a->eps[i]);
    }
    mem_free(a->user);
    mem_free(a->password);
    for (size_t i = 0; i < 4; i++) {
        mem_free(a->tls_files[i]);
    }
    cairn_client_free(a->c);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    mem_free(a);
    return cairn__why(eb, ebn, CAIRN_E_NOMEM, "out of memory");
}

CAIRN_EXPORT int cairn_async_call(struct cairn_async *a, cairn_async_fn fn,
                                  cairn_async_done done, void *arg)
{
    if (a == NULL || fn == NULL) {
        return CAIRN_E_INVALID;
    }
    struct async_job *j = mem_calloc(1, sizeof(*j));
    if (j == NULL) {
        return CAIRN_E_NOMEM;
    }
    j->kind = RES_CALL;
    j->fn = fn;
    j->done = done;
    j->arg = arg;
    pthread_mutex_lock(&a->mu);
    if (a->closing || a->todo_count >= CAIRN_ASYNC_QUEUE_MAX) {
        int rc = a->closing ? CAIRN_E_CLOSED : CAIRN_E_TOO_BIG;
        pthread_mutex_unlock(&a->mu);
        mem_free(j);
        return rc;
    }
    if (a->todo_tail != NULL) {
        a->todo_tail->next = j;
    } else {
        a->todo = j;
    }
    a->todo_tail = j;
    a->todo_count++;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n, bool *ok)
{
    if (p == NULL || n == 0) {
        return NULL;
    }
    uint8_t *d = mem_alloc(n);
    if (d == NULL) {
        *ok = false;
        return NULL;
    }
    memcpy(d, p, n);
    return d;
}

CAIRN_EXPORT int cairn_async_watch(struct cairn_async *a,
                                   const struct cairn_watch_req *req,
                                   cairn_async_watch_cb cb, void *arg,
                                   struct cairn_async_watch **out)
{
    if (a == NULL || req == NULL || cb == NULL || out == NULL ||
        req->key == NULL || req->key_len == 0) {
        return CAIRN_E_INVALID;
    }
    *out = NULL;
    struct cairn_async_watch *w = mem_calloc(1, sizeof(*w));
    if (w == NULL) {
        return CAIRN_E_NOMEM;
    }
    bool ok = true;
    w->req = *req;
    w->key = dup_bytes(req->key, req->key_len, &ok);
    w->end = dup_bytes(req->range_end, req->range_end_len, &ok);
    w->req.key = w->key;
    w->req.range_end = w->end;
    w->req.range_end_len = w->end != NULL ? req->range_end_len : 0;
    w->a = a;
    w->cb = cb;
    w->arg = arg;
    pthread_cond_init(&w->cv, NULL);
    int rc = ok ? cairn_client_new(&a->opt, &w->c) : CAIRN_E_NOMEM;
    pthread_mutex_lock(&a->mu);
    if (rc == 0 &&
        (a->closing || a->watches_count >= CAIRN_ASYNC_WATCHES_MAX)) {
        rc = a->closing ? CAIRN_E_CLOSED : CAIRN_E_TOO_BIG;
    }
    if (rc == 0 && pthread_create(&w->thr, NULL, watch_main, w) != 0) {
        rc = CAIRN_E_NOMEM;
    }
    if (rc == 0) {
        w->next = a->watches;
        a->watches = w;
        a->watches_count++;
    }
    pthread_mutex_unlock(&a->mu);
    if (rc != 0) {
        watch_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

/* Stop and join one watch; mu not held. */
static void watch_stop(struct cairn_async_watch *w)
{
    struct cairn_async *a = w->a;
    pthread_mutex_lock(&a->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(w->thr, NULL);
}

/* Take the undelivered results of w (or all, w NULL) off the list into
 * *taken; mu held. */
static void take_results(struct cairn_async *a, struct cairn_async_watch *w,
                         struct async_job **taken)
{
    struct async_job **pp = &a->out;
    struct async_job **tail = taken;
    a->out_tail = NULL;
    while (*pp != NULL) {
        struct async_job *j = *pp;
        if (w == NULL || (j->kind == RES_WATCH && j->w == w)) {
            *pp = j->next;
            a->out_count--;
            j->next = NULL;
            *tail = j; /* in order */
            tail = &j->next;
        } else {
            a->out_tail = j;
            pp = &j->next;
        }
    }
}

/* Free taken results: a call's done runs (every done runs once); a
 * watch's response is dropped. */
static void finish_taken(struct async_job *j)
{
    while (j != NULL) {
        struct async_job *next = j->next;
        if (j->kind == RES_CALL) {
            if (j->done != NULL) {
                j->done(j->arg, j->rc);
            }
        } else {
            cairn_watch_resp_free(&j->resp);
        }
        mem_free(j);
        j = next;
    }
}

CAIRN_EXPORT void cairn_async_watch_close(struct cairn_async_watch *w)
{
    if (w == NULL) {
        return;
    }
    struct cairn_async *a = w->a;
    watch_stop(w);
    pthread_mutex_lock(&a->mu);
    struct cairn_async_watch **pp = &a->watches;
    while (*pp != w) {
        pp = &(*pp)->next;
    }
    *pp = w->next;
    a->watches_count--;
    struct async_job *taken = NULL;
    take_results(a, w, &taken);
    pthread_mutex_unlock(&a->mu);
    finish_taken(taken);
    watch_free(w);
}

static void on_closed(uv_handle_t *h)
{
    struct cairn_async *a = h->data;
    for (size_t i = 0; i < CAIRN_ENDPOINTS_MAX; i++) {
        mem_free(a->eps[i]);
    }
    mem_free(a->user);
    mem_free(a->password);
    for (size_t i = 0; i < 4; i++) {
        mem_free(a->tls_files[i]);
    }
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    mem_free(a);
}

CAIRN_EXPORT void cairn_async_free(struct cairn_async *a)
{
    if (a == NULL) {
        return;
    }
    while (a->watches != NULL) { /* only the loop's thread changes it */
        cairn_async_watch_close(a->watches);
    }
    pthread_mutex_lock(&a->mu);
    a->closing = true;
    pthread_cond_signal(&a->cv);
    struct async_job *todo = a->todo;
    a->todo = a->todo_tail = NULL;
    a->todo_count = 0;
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->worker, NULL);
    struct async_job *taken = NULL;
    pthread_mutex_lock(&a->mu);
    take_results(a, NULL, &taken);
    pthread_mutex_unlock(&a->mu);
    finish_taken(taken); /* what ended, in order, then what never ran */
    while (todo != NULL) {
        struct async_job *next = todo->next;
        if (todo->done != NULL) {
            todo->done(todo->arg, CAIRN_E_CLOSED);
        }
        mem_free(todo);
        todo = next;
    }
    cairn_client_free(a->c);
    a->c = NULL;
    uv_close((uv_handle_t *)&a->wake, on_closed);
}

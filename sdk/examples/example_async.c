/*
 * example_async.c - libcairn's asynchronous face on a libuv loop: puts with
 * a window of requests in flight and a watch following them, every result
 * handled by a callback on the loop's thread.
 *
 *   example-async <endpoint> [puts] [window]
 *
 * Reads the revision of the prefix "async/", watches it from the next
 * revision, writes <puts> keys (default 1000) keeping <window> (default
 * 32) queued, and waits until the watch has seen every put. Then queues 16
 * more puts and closes the face at once: each must be answered once, done
 * or closed. Prints one line per phase and exits 0 when every check held:
 *   "puts N ok in T ms (R/s)", "watch: N events in revision order",
 *   "callbacks on the loop thread: N of N", "close: 16 answered once (K
 *   done, M closed)". 30 s bound: "timeout" and exit 2.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <cairn.h>

#define CLOSE_CALLS 16

struct put_call {
    struct app *app;
    char key[32];
    struct cairn_put_req req;
    struct cairn_put_resp resp;
};

struct app {
    uv_loop_t *loop;
    struct cairn_async *a;
    struct cairn_async_watch *w;
    pthread_t loop_thread;
    long puts, window, sent, done, failed;
    long events, callbacks, off_thread;
    int64_t start_rev, last_rev;
    bool order_ok;
    int closed_answers[CLOSE_CALLS];
    long close_done, close_closed;
    uint64_t t0;
    uv_timer_t timer;
    int exit_code;
    struct cairn_range_resp range;
};

static void on_callback(struct app *app)
{
    app->callbacks++;
    if (!pthread_equal(pthread_self(), app->loop_thread)) {
        app->off_thread++;
    }
}

static int do_put(struct cairn_client *c, void *arg)
{
    struct put_call *p = arg;
    return cairn_put(c, &p->req, 0, &p->resp);
}

static void finish(struct app *app);

static void send_puts(struct app *app);

static void put_done(void *arg, int rc)
{
    struct put_call *p = arg;
    struct app *app = p->app;
    on_callback(app);
    cairn_put_resp_free(&p->resp);
    free(p);
    app->done++;
    if (rc != 0) {
        app->failed++;
        fprintf(stderr, "put: %s\n", cairn_strerror(rc));
    }
    send_puts(app);
    finish(app);
}

static struct put_call *put_new(struct app *app, long i)
{
    struct put_call *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->app = app;
    snprintf(p->key, sizeof(p->key), "async/%06ld", i);
    p->req.key = (const uint8_t *)p->key;
    p->req.key_len = strlen(p->key);
    p->req.value = (const uint8_t *)"v";
    p->req.value_len = 1;
    return p;
}

static void send_puts(struct app *app)
{
    while (app->sent < app->puts && app->sent - app->done < app->window) {
        struct put_call *p = put_new(app, app->sent);
        if (p == NULL || cairn_async_call(app->a, do_put, put_done, p) != 0) {
            free(p);
            app->failed++;
            app->done++;
        }
        app->sent++;
    }
}

static void on_watch(void *arg, int rc, const struct cairn_watch_resp *resp)
{
    struct app *app = arg;
    on_callback(app);
    if (rc != 0) {
        fprintf(stderr, "watch ended: %s\n", cairn_strerror(rc));
        app->order_ok = false;
        return;
    }
    for (size_t i = 0; i < resp->events_count; i++) {
        int64_t rev = resp->events[i].kv.mod_revision;
        if (rev <= app->last_rev) {
            app->order_ok = false;
        }
        app->last_rev = rev;
        app->events++;
    }
    finish(app);
}

static void close_done(void *arg, int rc)
{
    struct put_call *p = arg;
    struct app *app = p->app;
    long i = atol(p->key + strlen("async/close")); /* its index */
    on_callback(app);
    app->closed_answers[i]++;
    if (rc == CAIRN_E_CLOSED) {
        app->close_closed++;
    } else {
        app->close_done++;
    }
    cairn_put_resp_free(&p->resp);
    free(p);
}

static void on_timeout(uv_timer_t *t)
{
    struct app *app = t->data;
    printf("timeout: %ld of %ld puts answered, %ld events\n", app->done,
           app->puts, app->events);
    app->exit_code = 2;
    if (app->w != NULL) {
        cairn_async_watch_close(app->w);
        app->w = NULL;
    }
    cairn_async_free(app->a);
    app->a = NULL;
    uv_close((uv_handle_t *)&app->timer, NULL);
}

static void finish(struct app *app)
{
    if (app->a == NULL || app->done < app->puts || app->events < app->puts) {
        return;
    }
    uint64_t ms = (uv_hrtime() - app->t0) / 1000000;
    printf("puts %ld ok in %llu ms (%.0f/s)\n", app->puts - app->failed,
           (unsigned long long)ms, ms > 0 ? app->puts * 1000.0 / ms : 0.0);
    printf("watch: %ld events%s\n", app->events,
           app->order_ok ? " in revision order" : " OUT OF ORDER");
    cairn_async_watch_close(app->w);
    app->w = NULL;
    /* the close: queued calls are answered once each, ran or not */
    for (long i = 0; i < CLOSE_CALLS; i++) {
        struct put_call *p = put_new(app, 0);
        snprintf(p->key, sizeof(p->key), "async/close%ld", i);
        p->req.key_len = strlen(p->key);
        if (cairn_async_call(app->a, do_put, close_done, p) != 0) {
            free(p);
        }
    }
    cairn_async_free(app->a); /* answers them here, on the loop */
    app->a = NULL;
    bool once = true;
    for (long i = 0; i < CLOSE_CALLS; i++) {
        once = once && app->closed_answers[i] == 1;
    }
    printf("callbacks on the loop thread: %ld of %ld\n",
           app->callbacks - app->off_thread, app->callbacks);
    printf("close: %d %s (%ld done, %ld closed)\n", CLOSE_CALLS,
           once ? "answered once" : "NOT answered once each", app->close_done,
           app->close_closed);
    bool ok = app->failed == 0 && app->order_ok && app->off_thread == 0 &&
              once && app->events == app->puts;
    app->exit_code = ok ? 0 : 1;
    uv_timer_stop(&app->timer);
    uv_close((uv_handle_t *)&app->timer, NULL);
}

static int do_range(struct cairn_client *c, void *arg)
{
    struct app *app = arg;
    struct cairn_range_req q;
    memset(&q, 0, sizeof(q));
    q.key = (const uint8_t *)"async/";
    q.key_len = 6;
    q.count_only = true;
    return cairn_range(c, &q, 0, &app->range);
}

static void range_done(void *arg, int rc)
{
    struct app *app = arg;
    on_callback(app);
    if (rc != 0) {
        fprintf(stderr, "range: %s\n", cairn_strerror(rc));
        app->exit_code = 1;
        return;
    }
    app->start_rev = app->range.header.revision;
    app->last_rev = app->start_rev;
    cairn_range_resp_free(&app->range);
    static uint8_t end[6];
    struct cairn_watch_req w;
    memset(&w, 0, sizeof(w));
    w.key = (const uint8_t *)"async/";
    w.key_len = 6;
    w.range_end = end;
    w.range_end_len = cairn_prefix_end(w.key, w.key_len, end);
    w.start_revision = app->start_rev + 1;
    if (cairn_async_watch(app->a, &w, on_watch, app, &app->w) != 0) {
        fprintf(stderr, "watch: could not start\n");
        app->exit_code = 1;
        return;
    }
    app->t0 = uv_hrtime();
    send_puts(app);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s <endpoint> [puts] [window]\n", argv[0]);
        return 1;
    }
    static struct app app;
    const char *ep = argv[1];
    struct cairn_options o;
    app.puts = argc > 2 ? atol(argv[2]) : 1000;
    app.window = argc > 3 ? atol(argv[3]) : 32;
    app.order_ok = true;
    app.exit_code = 1;
    app.loop = uv_default_loop();
    app.loop_thread = pthread_self();
    cairn_options_init(&o);
    o.endpoints = &ep;
    o.endpoints_count = 1;
    int rc = cairn_async_new(app.loop, &o, &app.a);
    if (rc != 0) {
        fprintf(stderr, "async: %s\n", cairn_strerror(rc));
        return 1;
    }
    uv_timer_init(app.loop, &app.timer);
    app.timer.data = &app;
    uv_timer_start(&app.timer, on_timeout, 30000, 0);
    rc = cairn_async_call(app.a, do_range, range_done, &app);
    if (rc != 0) {
        fprintf(stderr, "call: %s\n", cairn_strerror(rc));
        return 1;
    }
    uv_run(app.loop, UV_RUN_DEFAULT);
    uv_loop_close(app.loop);
    return app.exit_code;
}

/*
 * http_uvpoll.c - uv_poll_start without the epoll churn of libuv 1.44.
 *
 * libuv 1.44's uv_poll_start always stops the handle first: the descriptor
 * leaves epoll (epoll_ctl DEL, which fails with ENOENT when it was never
 * added) and is added again at the next poll (epoll_ctl ADD), whether the
 * events asked for changed or not. libwebsockets' libuv event library
 * (Debian's libwebsockets-evlib_uv.so, dlopened by lws) calls it at every
 * change of what a connection waits for: reads paused while a call is out
 * and resumed after the answer, the writable event it parks on after each
 * transaction. That was 8.4 epoll_ctl calls per registration on the API
 * port, half of them failing (strace -c, BENCHMARKS.md).
 *
 * cairnd defines uv_poll_start itself. The plugin's call goes through its
 * PLT and binds to the executable's definition first (as _lws_log does in
 * http_server.c); libuv's own is reached with dlsym(RTLD_NEXT). On a handle
 * that is active, not closing, and keeps asking for some event:
 *   - the same events: nothing to do but take the callback;
 *   - other events: the watcher's pending mask (pevents) is set and the
 *     watcher queued, as libuv's uv__io_start does, so that the next poll
 *     changes it in place (epoll_ctl MOD, one call instead of two).
 * Everything else (a first start, a stopped handle, events 0) goes to
 * libuv unchanged. Events already read by the poll in progress stay
 * deliverable: libuv filters each against the watcher's pevents before the
 * callback, so an event no longer asked for is not delivered (what
 * libuv's uv__platform_invalidate_fd would have done by dropping it), and
 * one still asked for is delivered now rather than at the next poll.
 *
 * The uv__io_t fields and the loop's watcher queue are in libuv's public
 * headers (uv/unix.h) but private to it; their use here is held to the
 * version they were read from: if the libuv that is loaded is not 1.44,
 * every call goes to libuv.
 */
#include <dlfcn.h>
#include <poll.h>
#include <stdint.h>

#include <uv.h>

#include "registry/http/http_int.h"

typedef int (*poll_start_fn)(uv_poll_t *, int, uv_poll_cb);

static poll_start_fn real_start;
/* 1: libuv is the version this file was written against; -1: it is not;
 * 0: not looked at yet. */
static int layout_known;
static uint64_t calls_kept;    /* same events: nothing done */
static uint64_t calls_changed; /* changed in place */

/* Set at the first call. cairnd's uv_poll handles (the client port's
 * sniffer, lws's connections) all live on the server's loop thread. */
static int resolve(void)
{
    if (layout_known == 0) {
        real_start = (poll_start_fn)dlsym(RTLD_NEXT, "uv_poll_start");
        unsigned v = uv_version();
        layout_known = (real_start != NULL && (v >> 16) == UV_VERSION_MAJOR &&
                        ((v >> 8) & 0xff) == UV_VERSION_MINOR &&
                        UV_VERSION_MAJOR == 1 && UV_VERSION_MINOR == 44)
                           ? 1
                           : -1;
    }
    return layout_known;
}

/* libuv's own event bits for a uv_poll mask (unix/poll.c). */
static unsigned poll_bits(int pevents)
{
    unsigned e = 0;
    if (pevents & UV_READABLE) {
        e |= POLLIN;
    }
    if (pevents & UV_PRIORITIZED) {
        e |= POLLPRI;
    }
    if (pevents & UV_WRITABLE) {
        e |= POLLOUT;
    }
    if (pevents & UV_DISCONNECT) {
        e |= POLLRDHUP;
    }
    return e;
}

/* libuv's queue: two pointers, next then prev (src/queue.h). */
static int queue_empty(void **q)
{
    return (void **)q[0] == q;
}

static void queue_insert_tail(void **head, void **q)
{
    void **prev = (void **)head[1];
    q[0] = head;
    q[1] = prev;
    prev[0] = q;
    head[1] = q;
}

int uv_poll_start(uv_poll_t *handle, int pevents, uv_poll_cb poll_cb)
{
    if (resolve() == 1 && pevents != 0 &&
        uv_is_active((const uv_handle_t *)handle) &&
        !uv_is_closing((const uv_handle_t *)handle)) {
        uv__io_t *w = &handle->io_watcher;
        unsigned want = poll_bits(pevents);
        if (w->fd >= 0 && w->pevents != 0) {
            if (want != w->pevents) {
                w->pevents = want;
                if (want != w->events && queue_empty(w->watcher_queue)) {
                    queue_insert_tail(handle->loop->watcher_queue,
                                      w->watcher_queue);
                }
                calls_changed++;
            } else {
                calls_kept++;
            }
            handle->poll_cb = poll_cb;
            return 0;
        }
    }
    if (real_start == NULL) {
        return UV_ENOSYS;
    }
    return real_start(handle, pevents, poll_cb);
}

void http__uvpoll_counts(uint64_t *kept, uint64_t *changed, bool *active)
{
    *kept = calls_kept;
    *changed = calls_changed;
    *active = resolve() == 1;
}

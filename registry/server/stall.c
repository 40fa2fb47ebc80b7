/*
 * stall.c - see stall.h.
 */
#include "registry/server/stall.h"

#include <errno.h>
#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"

#define STALL_FRAMES 64

static void on_sigusr2(int sig)
{
    static const char head[] =
        "stall: the event loop is stuck; its stack (addr2line -e cairnd):\n";
    void *frames[STALL_FRAMES];
    int saved = errno;
    (void)sig;
    /* write(2) and backtrace_symbols_fd are safe here once backtrace's
     * library is loaded, which stall_start does. */
    ssize_t w = write(STDERR_FILENO, head, sizeof(head) - 1);
    (void)w;
    int n = backtrace(frames, STALL_FRAMES);
    backtrace_symbols_fd(frames, n, STDERR_FILENO);
    errno = saved;
}

static uint64_t now_ms(void)
{
    return clock_mono_ns() / 1000000;
}

static void *monitor(void *arg)
{
    struct stall *st = arg;
    uint64_t reported_beat = 0;
    struct timespec ts = {0, 250 * 1000000L};
    while (!atomic_load(&st->stop)) {
        uint64_t before = now_ms();
        nanosleep(&ts, NULL);
        uint64_t beat = atomic_load(&st->beat_ms);
        if (now_ms() - before > 1000) {
            /* We slept four times too long: the whole process was stopped
             * (SIGSTOP, a suspended VM), not just the loop. Look again. */
            continue;
        }
        if (beat != 0 && beat != reported_beat &&
            now_ms() - beat > st->threshold_ms) {
            reported_beat = beat; /* once per stall */
            pthread_kill(st->loop_thread, SIGUSR2);
        }
    }
    return NULL;
}

int stall_start(struct stall *st, unsigned threshold_ms)
{
    struct sigaction sa;
    void *probe[1];
    memset(st, 0, sizeof(*st));
    st->threshold_ms = threshold_ms;
    st->loop_thread = pthread_self();
    (void)backtrace(probe, 1); /* loads libgcc before any signal */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigusr2;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR2, &sa, NULL) != 0) {
        return -errno;
    }
    atomic_store(&st->beat_ms, now_ms());
    int rc = pthread_create(&st->monitor, NULL, monitor, st);
    if (rc != 0) {
        return -rc;
    }
    st->running = true;
    return 0;
}

void stall_beat(struct stall *st)
{
    atomic_store(&st->beat_ms, now_ms());
}

void stall_stop(struct stall *st)
{
    if (!st->running) {
        return;
    }
    atomic_store(&st->stop, true);
    pthread_join(st->monitor, NULL);
    st->running = false;
}

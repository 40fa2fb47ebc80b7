/*
 * cairnctl_progress.c - the progress of a long transfer into a file
 * (snapshot save): on a terminal, one line redrawn about ten times a
 * second with the bytes so far, the expected total, the rate and the time
 * left; otherwise plain log lines on stderr in the shape etcdctl's zap
 * logger prints ({"level":"info","ts":..,"msg":..}), so scripts that
 * filter etcdctl's logs filter these too and stdout stays etcdctl's.
 *
 * Defrag, one call with no bytes to count, shows the time it has taken.
 *
 * The transfer runs in the caller's thread (libcairn writes the file
 * descriptor); a watcher thread only fstat()s that descriptor, so the
 * transfer is never slowed by drawing and the library needs no callback.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sdk/cairnctl/cairnctl.h"

#define DRAW_EVERY_MS 100

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t fd_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && st.st_size > 0 ? (uint64_t)st.st_size : 0;
}

/* One redraw: "\r<what>: 12 MB of 20 MB (60%), 4.1 MB/s, 2s left". */
/* Without a file (fd < 0: one call with nothing to count, as defrag):
 * "\r<what>, 1.2s", and at the end "\r<what><note> in 1.3s". */
static void draw_elapsed(const struct ctl_progress *p, bool last)
{
    double el = now_s() - p->t0;
    if (last) {
        printf("\r%s%s in %.1fs   \n", p->what, p->note, el);
    } else {
        printf("\r%s, %.1fs   ", p->what, el);
    }
    fflush(stdout);
}

static void draw(struct ctl_progress *p, uint64_t done, bool last)
{
    if (p->fd < 0) {
        draw_elapsed(p, last);
        return;
    }
    if (last) {
        p->total = done; /* the status's size was an estimate */
    }
    double el = now_s() - p->t0;
    double rate = el > 0 ? (double)done / el : 0;
    char d[32], t[32], r[32], left[32] = "?";
    fmt_bytes_si(done, d, sizeof(d));
    fmt_bytes_si(p->total > done ? p->total : done, t, sizeof(t));
    fmt_bytes_si((uint64_t)rate, r, sizeof(r));
    uint64_t total = p->total > done ? p->total : done;
    if (last || total == done) {
        snprintf(left, sizeof(left), "0s");
    } else if (rate > 0) {
        snprintf(left, sizeof(left), "%.0fs", (double)(total - done) / rate);
    }
    unsigned pct = total > 0 ? (unsigned)(done * 100 / total) : 100;
    printf("\r%s: %s of %s (%u%%), %s/s, %s left   %s", p->what, d, t, pct, r,
           left, last ? "\n" : "");
    fflush(stdout);
}

static void *watcher(void *arg)
{
    struct ctl_progress *p = arg;
    while (!atomic_load(&p->stop)) { /* until ctl_progress_end */
        draw(p, p->fd >= 0 ? fd_size(p->fd) : 0, false);
        struct timespec ts = {0, DRAW_EVERY_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

void ctl_progress_log(const char *msg, const char *fields)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    fprintf(stderr,
            "{\"level\":\"info\",\"ts\":%lld.%06ld,\"caller\":\"cairnctl\","
            "\"msg\":\"%s\"%s%s}\n",
            (long long)t.tv_sec, t.tv_nsec / 1000, msg, fields[0] ? "," : "",
            fields);
}

void ctl_progress_begin(struct ctl_progress *p, const char *what, int fd,
                        uint64_t total)
{
    memset(p, 0, sizeof(*p));
    p->what = what;
    p->fd = fd;
    p->total = total;
    p->t0 = now_s();
    p->tty = isatty(STDOUT_FILENO) == 1;
    atomic_store(&p->stop, false);
    p->running = p->tty && pthread_create(&p->th, NULL, watcher, p) == 0;
}

void ctl_progress_end(struct ctl_progress *p, uint64_t bytes, bool ok)
{
    if (p->running) {
        atomic_store(&p->stop, true);
        pthread_join(p->th, NULL);
        p->running = false;
    }
    if (p->tty && ok) {
        draw(p, bytes, true);
    } else if (p->tty) {
        printf("\n");
    }
}

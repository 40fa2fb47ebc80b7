/*
 * stall.h - says where the event loop is stuck when it stops turning.
 *
 * Does:     a monitor thread watches a beat the loop gives every 200 ms;
 *           when no beat came for threshold_ms it sends the loop thread
 *           SIGUSR2 once per stall, and the loop thread's handler writes
 *           its own stack (glibc backtrace, module+offset form; resolve
 *           with addr2line -e cairnd) to stderr. A warning after the fact
 *           (node's "event loop was held up") tells that it happened; this
 *           tells where.
 * Owns:     the monitor thread (joined by stall_stop).
 * Threads:  stall_beat on the loop thread; everything else internal.
 * Errors:   stall_start returns -errno when the thread cannot start; the
 *           server runs on without it.
 * Limits:   one report per stall; a stack of at most 64 frames.
 * Not here: deciding that the member is wedged (/livez does that).
 */
#ifndef CAIRN_REGISTRY_SERVER_STALL_H
#define CAIRN_REGISTRY_SERVER_STALL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct stall {
    pthread_t loop_thread;
    pthread_t monitor;
    bool running;
    unsigned threshold_ms;
    _Atomic uint64_t beat_ms; /* monotonic ms of the last beat */
    _Atomic bool stop;
};

int stall_start(struct stall *st, unsigned threshold_ms);
void stall_beat(struct stall *st);
void stall_stop(struct stall *st);

#endif

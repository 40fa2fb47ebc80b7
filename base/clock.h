/*
 * clock.h - monotonic and wall time.
 *
 * Does:     clock_mono_ns() (CLOCK_MONOTONIC) for durations and deadlines,
 *           clock_wall_ms() (CLOCK_REALTIME) for timestamps shown to people.
 * Owns:     nothing.  Threads: any.  Errors: none.  Limits: none.
 * Not here: ticks. Only consensus/node turns time into Raft ticks; the Raft
 *           core and the simulator never call these.
 */
#ifndef CAIRN_BASE_CLOCK_H
#define CAIRN_BASE_CLOCK_H

#include <stdint.h>

uint64_t clock_mono_ns(void);
uint64_t clock_wall_ms(void);

#endif

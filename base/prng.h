/*
 * prng.h - a small seedable PRNG (xoshiro256**, seeded through splitmix64).
 *
 * Does:     deterministic pseudo-random numbers from a 64-bit seed: the same
 *           seed always gives the same sequence, on every machine.
 * Owns:     nothing beyond the struct the caller allocates.
 * Threads:  a struct prng belongs to one thread.
 * Errors:   none.
 * Limits:   not cryptographic. Never use it for tokens or IDs an attacker
 *           could exploit (use OpenSSL's RAND_bytes there).
 * Not here: wall-clock seeding; callers pick the seed (the simulator from its
 *           command line, the daemon from the clock at startup).
 */
#ifndef CAIRN_BASE_PRNG_H
#define CAIRN_BASE_PRNG_H

#include <stdint.h>

struct prng {
    uint64_t s[4];
};

void prng_seed(struct prng *r, uint64_t seed);
uint64_t prng_next(struct prng *r);

/* Uniform in [0, n); n == 0 returns 0. Unbiased (rejection sampling). */
uint64_t prng_below(struct prng *r, uint64_t n);

/* Uniform in [lo, hi] inclusive; requires lo <= hi. */
uint64_t prng_range(struct prng *r, uint64_t lo, uint64_t hi);

/* True with probability num/den. */
int prng_chance(struct prng *r, uint64_t num, uint64_t den);

/* One splitmix64 step: useful to derive sub-seeds from a seed. */
uint64_t prng_mix(uint64_t x);

#endif

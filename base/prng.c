/* prng.c - xoshiro256** (Blackman and Vigna), seeded with splitmix64. */
#include "base/prng.h"

uint64_t prng_mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void prng_seed(struct prng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        x += 0x9e3779b97f4a7c15ull;
        r->s[i] = prng_mix(x);
    }
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t prng_next(struct prng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t prng_below(struct prng *r, uint64_t n)
{
    uint64_t limit;
    uint64_t x;
    if (n == 0) {
        return 0;
    }
    limit = UINT64_MAX - UINT64_MAX % n;
    for (int i = 0; i < 64; i++) { /* p(retry) < 1/2 each time */
        x = prng_next(r);
        if (x < limit) {
            return x % n;
        }
    }
    return prng_next(r) % n; /* 2^-64 odds; bias irrelevant */
}

uint64_t prng_range(struct prng *r, uint64_t lo, uint64_t hi)
{
    if (hi - lo == UINT64_MAX) {
        return prng_next(r);
    }
    return lo + prng_below(r, hi - lo + 1);
}

int prng_chance(struct prng *r, uint64_t num, uint64_t den)
{
    return prng_below(r, den) < num;
}

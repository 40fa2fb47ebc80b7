/* limits.c - defaults and hard maxima from the table in limits.h. */
#include "base/limits.h"

#include <string.h>

#include "base/assert.h"
#include "base/err.h"

static const struct {
    uint64_t def;
    uint64_t max;
    const char *key;
} rows[LIMIT__COUNT] = {
#define X(name, d, m, k, why) [LIMIT_##name] = {d, m, k},
    LIMITS_TABLE(X)
#undef X
};

#define X(name, d, m, k, why)                                                  \
    STATIC_ASSERT((uint64_t)(d) <= (uint64_t)(m), #name " default > max");
LIMITS_TABLE(X)
#undef X

STATIC_ASSERT(1572864 < 2097152,
              "the largest request must fit in one Raft entry");
STATIC_ASSERT(2097152 < 4194304,
              "the largest Raft entry must fit in one Raft message");

void limits_init(struct limits *l)
{
    for (int i = 0; i < LIMIT__COUNT; i++) {
        l->v[i] = rows[i].def;
    }
}

int limits_set(struct limits *l, const char *key, uint64_t value)
{
    for (int i = 0; i < LIMIT__COUNT; i++) {
        if (strcmp(rows[i].key, key) == 0) {
            if (value > rows[i].max) {
                return ERR_LIMIT;
            }
            l->v[i] = value;
            return 0;
        }
    }
    return ERR_INVALID;
}

uint64_t limits_default(enum limit_id id)
{
    ASSERT(id < LIMIT__COUNT);
    return rows[id].def;
}

uint64_t limits_hard_max(enum limit_id id)
{
    ASSERT(id < LIMIT__COUNT);
    return rows[id].max;
}

const char *limits_key(enum limit_id id)
{
    ASSERT(id < LIMIT__COUNT);
    return rows[id].key;
}

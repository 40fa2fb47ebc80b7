/*
 * runs.h - a value per index, kept as runs.
 *
 * For values that change rarely along a sequence of indexes (a Raft log's
 * terms, the WAL segment holding each entry): r[k].v holds from r[k].index
 * up to the next run's index, or the end of the covered range, which the
 * owner knows. Runs ascend by index and neighbours hold distinct values.
 * Memory follows the number of changes, not of indexes.
 *
 * Owns: r (runs_free). Threads: none of its own; the owner's.
 */
#ifndef CAIRN_BASE_RUNS_H
#define CAIRN_BASE_RUNS_H

#include <stddef.h>
#include <stdint.h>

struct runs_entry {
    uint64_t index; /* first index of the run */
    uint64_t v;
};

struct runs {
    struct runs_entry *r;
    size_t n;
    size_t cap;
};

void runs_free(struct runs *rs);
/* Room for extra more runs, so that the pushes that follow cannot fail.
 * -ENOMEM leaves rs as it was. */
int runs_reserve(struct runs *rs, size_t extra);
/* Index i holds v (i above every run's start; room reserved). */
void runs_push(struct runs *rs, uint64_t i, uint64_t v);
/* The value at i: i at or above the first run's start. */
uint64_t runs_at(const struct runs *rs, uint64_t i);
/* Forget the values of indexes past last_keep. */
void runs_truncate(struct runs *rs, uint64_t last_keep);
/* Forget the values of indexes below first; the run covering first now
 * starts there. */
void runs_drop_front(struct runs *rs, uint64_t first);

#endif

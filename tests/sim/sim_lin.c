/*
 * sim_lin.c - linearizability checker for the client history.
 *
 * Wing & Gong's search with Lowe's memoisation (as in porcupine): walk the
 * time-ordered list of call and return events; at a call, try to
 * linearize the op now (the model accepts it from the current state) and
 * restart from the head with the op and its return lifted out of the list;
 * at a return whose op was not linearized, undo the last choice. A cache of
 * (set of linearized ops, state) pairs already explored cuts the search;
 * the set is hashed incrementally (Zobrist) so each step is O(1) besides
 * the cache probe.
 *
 * The history is checked per key (P-compositionality: keys are independent
 * registers). The model is a register: put(v), get -> v (0 = absent),
 * delete -> deleted count, cas(expected, v) -> succeeded. An op with an
 * unknown outcome has a call and no return: it may be linearized anywhere
 * after its call, with any result, or never; the search ends as soon as
 * every op with a known outcome is linearized.
 *
 * An unknown op that would change nothing where the search stands (a cas
 * whose expected value is not there, a delete of nothing, an unseen value
 * over another) is not placed there: placed or not, the same ops remain
 * possible after, and it may still be placed later, where it matters.
 * Placing such no-ops made the search explore every subset of them (a
 * seed with 379 unknown ops on one key gave up after 183M steps and 2 GiB
 * of cache; it now ends in 3M).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "tests/sim/sim.h"

#define LIN_STEPS_MAX       20000000ULL
#define LIN_CACHE_BYTES_MAX (128ULL << 20)

struct lin_ev {
    uint64_t t;
    uint32_t op; /* index into ops */
    bool call;
};

/* Stands for every value nobody names (see check_key). */
#define LIN_UNSEEN      (UINT64_MAX - 1)
#define LIN_CLASSES_MAX 64

struct lin {
    const struct sim_op **ops;
    struct sim_op *opv; /* the ops, unnamed values replaced by LIN_UNSEEN */
    int32_t *cls;       /* op -> class of interchangeable unknown ops, -1 */
    uint32_t *rank;     /* op -> its place in its class (call order) */
    uint32_t used[LIN_CLASSES_MAX]; /* class -> ops linearized (a prefix) */
    uint64_t cls_key[LIN_CLASSES_MAX];
    uint32_t nclasses;
    uint32_t n;
    uint32_t words;
    /* the doubly linked list of events; node 0 is the head sentinel */
    struct lin_ev *ev;
    uint32_t *next;
    uint32_t *prev;
    uint32_t *call_of; /* op -> event index of its call */
    uint32_t *ret_of;  /* op -> event index of its return, 0 none */
    uint64_t *zob;     /* op -> random key */
    uint64_t *bits;    /* linearized set */
    uint64_t bits_hash;
    /* cache: arena of [state, bits...] records, chained buckets */
    uint64_t *arena;
    size_t arena_count;
    size_t arena_cap;
    uint32_t *bucket;
    uint32_t *chain;
    size_t nbuckets;
    /* the stack of choices */
    uint32_t *stack_ev;
    uint64_t *stack_state;
    uint32_t depth;
    uint64_t steps;
};

static bool model_step(const struct sim_op *op, uint64_t st, uint64_t *out)
{
    bool known = op->outcome == OUT_OK;
    switch (op->type) {
    case OP_PUT:
        *out = op->value;
        return true;
    case OP_GET:
        *out = st;
        return st == op->result;
    case OP_DEL:
        *out = 0;
        return !known || (st != 0) == (op->result == 1);
    case OP_CAS:
        if (!known) {
            *out = st == op->expected ? op->value : st;
            return true;
        }
        if (op->result == 1) {
            *out = op->value;
            return st == op->expected;
        }
        *out = st;
        return st != op->expected;
    default:
        return false;
    }
}

static int ev_cmp(const void *a, const void *b)
{
    const struct lin_ev *x = a;
    const struct lin_ev *y = b;
    if (x->t != y->t) {
        return x->t < y->t ? -1 : 1;
    }
    if (x->call != y->call) {
        return x->call ? 1 : -1; /* returns first: ret == call is sequential */
    }
    return x->op < y->op ? -1 : x->op > y->op;
}

static void lift(struct lin *l, uint32_t op)
{
    uint32_t c = l->call_of[op];
    l->next[l->prev[c]] = l->next[c];
    if (l->next[c] != 0) {
        l->prev[l->next[c]] = l->prev[c];
    }
    uint32_t r = l->ret_of[op];
    if (r != 0) {
        l->next[l->prev[r]] = l->next[r];
        if (l->next[r] != 0) {
            l->prev[l->next[r]] = l->prev[r];
        }
    }
}

static void unlift(struct lin *l, uint32_t op)
{
    uint32_t r = l->ret_of[op];
    if (r != 0) {
        l->next[l->prev[r]] = r;
        if (l->next[r] != 0) {
            l->prev[l->next[r]] = r;
        }
    }
    uint32_t c = l->call_of[op];
    l->next[l->prev[c]] = c;
    if (l->next[c] != 0) {
        l->prev[l->next[c]] = c;
    }
}

static uint64_t cache_hash(const struct lin *l, uint64_t state)
{
    return prng_mix(l->bits_hash ^ (state * 0x9e3779b97f4a7c15ULL));
}

static void cache_rehash(struct lin *l)
{
    size_t nb = l->nbuckets ? l->nbuckets * 4 : 4096;
    uint32_t *b = mem_calloc(nb, sizeof(*b));
    ASSERT(b != NULL);
    mem_free(l->bucket);
    l->bucket = b;
    l->nbuckets = nb;
    size_t rec = l->words + 2;
    for (size_t i = 0; i < l->arena_count; i++) {
        uint64_t h = l->arena[i * rec + 1] & (nb - 1);
        l->chain[i] = b[h];
        b[h] = (uint32_t)(i + 1);
    }
}

/* Add (bits, state) unless present; returns false if it was there. */
static int cache_add(struct lin *l, uint64_t state)
{
    size_t rec = l->words + 2;
    uint64_t h = cache_hash(l, state);
    if (l->nbuckets > 0) {
        for (uint32_t i = l->bucket[h & (l->nbuckets - 1)]; i != 0;
             i = l->chain[i - 1]) {
            const uint64_t *r = &l->arena[(i - 1) * rec];
            if (r[0] == state && r[1] == h &&
                memcmp(r + 2, l->bits, l->words * 8) == 0) {
                return 0;
            }
        }
    }
    if (l->arena_count == l->arena_cap) {
        size_t cap = l->arena_cap ? l->arena_cap * 2 : 1024;
        if (cap * rec * 8 > LIN_CACHE_BYTES_MAX) {
            return -1;
        }
        uint64_t *a = mem_realloc(l->arena, cap * rec * 8);
        uint32_t *c = mem_realloc(l->chain, cap * sizeof(*c));
        ASSERT(a != NULL && c != NULL);
        l->arena = a;
        l->chain = c;
        l->arena_cap = cap;
    }
    uint64_t *r = &l->arena[l->arena_count * rec];
    r[0] = state;
    r[1] = h;
    memcpy(r + 2, l->bits, l->words * 8);
    l->arena_count++;
    if (l->arena_count > l->nbuckets) {
        cache_rehash(l);
    } else {
        size_t b = h & (l->nbuckets - 1);
        l->chain[l->arena_count - 1] = l->bucket[b];
        l->bucket[b] = (uint32_t)l->arena_count;
    }
    return 1;
}

static void set_bit(struct lin *l, uint32_t op, bool on)
{
    uint64_t m = 1ULL << (op % 64);
    if (on) {
        l->bits[op / 64] |= m;
    } else {
        l->bits[op / 64] &= ~m;
    }
    l->bits_hash ^= l->zob[op];
}

/* 0 linearizable, 1 not, 2 gave up. *bad gets the return event that could
 * not be placed at the deepest point reached. */
static int search(struct lin *l, uint32_t returns, uint32_t *bad)
{
    uint64_t state = 0;
    uint32_t left = returns;
    uint32_t e = l->next[0];
    uint32_t deepest = 0;
    while (left > 0) {
        if (++l->steps > LIN_STEPS_MAX) {
            return 2;
        }
        ASSERT(e != 0);
        uint32_t op = l->ev[e].op;
        if (l->ev[e].call) {
            uint64_t ns;
            int32_t c = l->cls[op];
            if (c >= 0 && l->rank[op] != l->used[c]) {
                /* An interchangeable op called earlier is still free:
                 * taking this one instead reaches the same states. */
                e = l->next[e];
                continue;
            }
            if (model_step(l->ops[op], state, &ns) &&
                (ns != state || l->ret_of[op] != 0)) {
                /* (An op that need never be placed and would change
                 * nothing here is as well left for later, or never.) */
                set_bit(l, op, true);
                int added = cache_add(l, ns);
                if (added < 0) {
                    return 2;
                }
                if (added) {
                    l->stack_ev[l->depth] = e;
                    l->stack_state[l->depth] = state;
                    l->depth++;
                    state = ns;
                    if (c >= 0) {
                        l->used[c]++;
                    }
                    lift(l, op);
                    if (l->ret_of[op] != 0) {
                        left--;
                    }
                    e = l->next[0];
                    continue;
                }
                set_bit(l, op, false);
            }
            e = l->next[e];
            continue;
        }
        /* A return whose op is not linearized yet: backtrack. */
        if (l->depth >= deepest) {
            deepest = l->depth;
            *bad = op;
        }
        if (l->depth == 0) {
            return 1;
        }
        l->depth--;
        uint32_t ce = l->stack_ev[l->depth];
        state = l->stack_state[l->depth];
        uint32_t cop = l->ev[ce].op;
        if (l->cls[cop] >= 0) {
            l->used[l->cls[cop]]--;
        }
        set_bit(l, cop, false);
        unlift(l, cop);
        if (l->ret_of[cop] != 0) {
            left++;
        }
        e = l->next[ce];
    }
    return 0;
}

static void lin_free(struct lin *l)
{
    mem_free(l->ops);
    mem_free(l->opv);
    mem_free(l->cls);
    mem_free(l->rank);
    mem_free(l->ev);
    mem_free(l->next);
    mem_free(l->prev);
    mem_free(l->call_of);
    mem_free(l->ret_of);
    mem_free(l->zob);
    mem_free(l->bits);
    mem_free(l->arena);
    mem_free(l->bucket);
    mem_free(l->chain);
    mem_free(l->stack_ev);
    mem_free(l->stack_state);
}

static const char *op_name(uint8_t t)
{
    return t == OP_PUT   ? "put"
           : t == OP_GET ? "get"
           : t == OP_DEL ? "del"
                         : "cas";
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Values of key that some op names: a get's result, a cas's expected. */
static uint64_t *observed_values(const struct sim *s, uint32_t key, size_t *n)
{
    uint64_t *v = mem_calloc(s->hist_count + 1, sizeof(*v));
    ASSERT(v != NULL);
    size_t k = 0;
    for (size_t i = 0; i < s->hist_count; i++) {
        const struct sim_op *op = &s->hist[i];
        if (op->key != key) {
            continue;
        }
        if (op->type == OP_GET && op->outcome == OUT_OK) {
            v[k++] = op->result;
        } else if (op->type == OP_CAS) {
            v[k++] = op->expected;
        }
    }
    qsort(v, k, sizeof(*v), u64_cmp);
    *n = k;
    return v;
}

/* Is op part of the history to check? A get that failed or timed out
 * constrains nothing; a failed write had no effect. */
static bool included(const struct sim_op *op, uint32_t key)
{
    return op->key == key &&
           (op->outcome == OUT_OK ||
            (op->outcome == OUT_UNKNOWN && op->type != OP_GET));
}

/* Unknown writes that differ only in a value nobody names are
 * interchangeable (symmetry reduction): their class is (type, expected),
 * and the search takes them in call order only. Others: -1. The value is
 * replaced by LIN_UNSEEN, which no get or cas can tell from another. */
static int32_t op_class(struct lin *l, struct sim_op *op, const uint64_t *obs,
                        size_t obs_n)
{
    if (op->outcome != OUT_UNKNOWN) {
        return -1;
    }
    if (op->type != OP_DEL) {
        if (bsearch(&op->value, obs, obs_n, sizeof(*obs), u64_cmp) != NULL) {
            return -1;
        }
        op->value = LIN_UNSEEN;
    }
    uint64_t key =
        (uint64_t)op->type << 56 ^ (op->type == OP_CAS ? op->expected : 0);
    for (uint32_t i = 0; i < l->nclasses; i++) {
        if (l->cls_key[i] == key) {
            return (int32_t)i;
        }
    }
    if (l->nclasses == LIN_CLASSES_MAX) {
        return -1;
    }
    l->cls_key[l->nclasses] = key;
    return (int32_t)l->nclasses++;
}

static int check_key(struct sim *s, uint32_t key, const uint64_t *obs,
                     size_t obs_n, char *msg, size_t msg_len)
{
    struct lin l;
    memset(&l, 0, sizeof(l));
    uint32_t n = 0;
    for (size_t i = 0; i < s->hist_count; i++) {
        if (included(&s->hist[i], key)) {
            n++;
        }
    }
    if (n == 0) {
        return 0;
    }
    l.n = n;
    l.words = (n + 63) / 64;
    l.ops = mem_calloc(n, sizeof(*l.ops));
    l.opv = mem_calloc(n, sizeof(*l.opv));
    l.cls = mem_calloc(n, sizeof(*l.cls));
    l.rank = mem_calloc(n, sizeof(*l.rank));
    uint32_t rank[LIN_CLASSES_MAX] = {0};
    l.ev = mem_calloc(2 * n + 1, sizeof(*l.ev));
    l.next = mem_calloc(2 * n + 1, sizeof(*l.next));
    l.prev = mem_calloc(2 * n + 1, sizeof(*l.prev));
    l.call_of = mem_calloc(n, sizeof(*l.call_of));
    l.ret_of = mem_calloc(n, sizeof(*l.ret_of));
    l.zob = mem_calloc(n, sizeof(*l.zob));
    l.bits = mem_calloc(l.words, 8);
    l.stack_ev = mem_calloc(n, sizeof(*l.stack_ev));
    l.stack_state = mem_calloc(n, sizeof(*l.stack_state));
    ASSERT(l.opv && l.cls && l.rank);
    ASSERT(l.ops && l.ev && l.next && l.prev && l.call_of && l.ret_of &&
           l.zob && l.bits && l.stack_ev && l.stack_state);
    uint32_t k = 0;
    uint32_t nev = 0;
    uint32_t returns = 0;
    struct prng zr;
    prng_seed(&zr, 0x11ea5 + key);
    for (size_t i = 0; i < s->hist_count; i++) {
        const struct sim_op *op = &s->hist[i];
        if (!included(op, key)) {
            continue;
        }
        l.opv[k] = *op;
        l.ops[k] = &l.opv[k];
        l.cls[k] = op_class(&l, &l.opv[k], obs, obs_n);
        if (l.cls[k] >= 0) {
            l.rank[k] = rank[l.cls[k]]++;
        }
        l.zob[k] = prng_next(&zr);
        l.ev[nev++] = (struct lin_ev){op->call_us, k, true};
        if (op->outcome == OUT_OK) {
            l.ev[nev++] = (struct lin_ev){op->ret_us, k, false};
            returns++;
        }
        k++;
    }
    /* Events go to slots 1..nev; slot 0 is the head. */
    qsort(l.ev, nev, sizeof(*l.ev), ev_cmp);
    memmove(l.ev + 1, l.ev, nev * sizeof(*l.ev));
    for (uint32_t i = 1; i <= nev; i++) {
        l.next[i - 1] = i;
        l.prev[i] = i - 1;
        if (l.ev[i].call) {
            l.call_of[l.ev[i].op] = i;
        } else {
            l.ret_of[l.ev[i].op] = i;
        }
    }
    l.next[nev] = 0;
    uint32_t bad = 0;
    int rc = search(&l, returns, &bad);
    s->st_lin_steps += l.steps;
    if (rc == 1) {
        const struct sim_op *op = l.ops[bad];
        snprintf(msg, msg_len,
                 "history of k%u is not linearizable (%u ops): cannot place "
                 "%s v%lu exp %lu -> %lu by client %u [%lu, %lu] us",
                 key, n, op_name(op->type), (unsigned long)op->value,
                 (unsigned long)op->expected, (unsigned long)op->result,
                 op->client, (unsigned long)op->call_us,
                 (unsigned long)op->ret_us);
    } else if (rc == 2) {
        snprintf(msg, msg_len,
                 "linearizability search for k%u gave up "
                 "(%u ops, %lu steps)",
                 key, n, (unsigned long)l.steps);
    }
    lin_free(&l);
    return rc;
}

int lin_check(struct sim *s, char *msg, size_t msg_len)
{
    int worst = 0;
    char gave_up[200] = "";
    for (uint32_t k = 0; k < s->p.keys; k++) {
        size_t obs_n = 0;
        uint64_t *obs = observed_values(s, k, &obs_n);
        int rc = check_key(s, k, obs, obs_n, msg, msg_len);
        mem_free(obs);
        if (rc == 1) {
            return 1;
        }
        if (rc == 2) {
            worst = 2;
            snprintf(gave_up, sizeof(gave_up), "%s", msg);
        }
    }
    if (worst == 2) {
        snprintf(msg, msg_len, "%s", gave_up);
    }
    return worst;
}

/* ------------------------------------------------------------ self-test
 *
 * Known histories with known verdicts, so that a checker that accepts
 * everything cannot pass unnoticed (sim --selftest). */

struct lin_case {
    const char *name;
    int want; /* 0 linearizable, 1 not */
    struct sim_op ops[8];
    size_t n;
};

#define OK_(t, v, e, r, c, rt)                                                 \
    {                                                                          \
        .type = t, .key = 0, .outcome = OUT_OK, .value = v, .expected = e,     \
        .result = r, .call_us = c, .ret_us = rt                                \
    }
#define UNK_(t, v, e, c)                                                       \
    {                                                                          \
        .type = t, .key = 0, .outcome = OUT_UNKNOWN, .value = v,               \
        .expected = e, .call_us = c, .ret_us = SIM_NEVER                       \
    }

static const struct lin_case lin_cases[] = {
    {"put then get",
     0,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), OK_(OP_GET, 0, 0, 1, 20, 30)},
     2},
    {"stale read",
     1,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), OK_(OP_GET, 0, 0, 0, 20, 30)},
     2},
    {"concurrent read may miss",
     0,
     {OK_(OP_PUT, 1, 0, 0, 0, 30), OK_(OP_GET, 0, 0, 0, 5, 8),
      OK_(OP_GET, 0, 0, 1, 10, 20)},
     3},
    {"read goes back in time",
     1,
     {OK_(OP_PUT, 1, 0, 0, 0, 30), OK_(OP_GET, 0, 0, 1, 5, 8),
      OK_(OP_GET, 0, 0, 0, 10, 20)},
     3},
    {"unknown write observed",
     0,
     {UNK_(OP_PUT, 2, 0, 0), OK_(OP_GET, 0, 0, 2, 50, 60)},
     2},
    {"unknown write unobserved",
     0,
     {UNK_(OP_PUT, 2, 0, 0), OK_(OP_GET, 0, 0, 0, 50, 60)},
     2},
    {"unknown write undone",
     1,
     {UNK_(OP_PUT, 2, 0, 0), OK_(OP_GET, 0, 0, 2, 50, 60),
      OK_(OP_GET, 0, 0, 0, 70, 80)},
     3},
    {"cas success then old value",
     1,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), OK_(OP_CAS, 2, 1, 1, 20, 30),
      OK_(OP_GET, 0, 0, 1, 40, 50)},
     3},
    {"cas fails on a match",
     1,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), OK_(OP_CAS, 2, 1, 0, 20, 30)},
     2},
    {"cas failure explained by unknown put",
     0,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), UNK_(OP_PUT, 3, 0, 15),
      OK_(OP_CAS, 2, 1, 0, 20, 30)},
     3},
    {"delete of nothing reports one",
     1,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), OK_(OP_DEL, 0, 0, 1, 20, 30),
      OK_(OP_DEL, 0, 0, 1, 40, 50)},
     3},
    {"delete then absent",
     0,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), OK_(OP_DEL, 0, 0, 1, 20, 30),
      OK_(OP_GET, 0, 0, 0, 40, 50), OK_(OP_CAS, 5, 0, 1, 60, 70),
      OK_(OP_GET, 0, 0, 5, 80, 90)},
     5},
    {"two unseen unknown puts explain two failed cas",
     0,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), UNK_(OP_PUT, 7, 0, 12),
      UNK_(OP_PUT, 8, 0, 13), OK_(OP_CAS, 5, 1, 0, 20, 30),
      OK_(OP_PUT, 1, 0, 0, 40, 50), OK_(OP_CAS, 6, 1, 0, 60, 70)},
     6},
    {"unknown cas takes effect only after the put it expects",
     0,
     {UNK_(OP_CAS, 2, 1, 5), OK_(OP_PUT, 1, 0, 0, 20, 30),
      OK_(OP_GET, 0, 0, 2, 50, 60)},
     3},
    {"unknown write seen by a read called before it",
     0,
     {UNK_(OP_PUT, 2, 0, 40), OK_(OP_GET, 0, 0, 2, 30, 60)},
     2},
    {"unknown cas seen, then overwritten",
     0,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), UNK_(OP_CAS, 2, 1, 15),
      OK_(OP_GET, 0, 0, 2, 50, 60), OK_(OP_PUT, 3, 0, 0, 70, 80),
      OK_(OP_CAS, 4, 3, 1, 90, 100)},
     5},
    {"unknown write seen by a cas, then read as never written",
     1,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), UNK_(OP_PUT, 2, 0, 20),
      OK_(OP_CAS, 5, 2, 1, 25, 35), OK_(OP_GET, 0, 0, 1, 36, 40)},
     4},
    {"one unseen unknown put cannot explain two failed cas",
     1,
     {OK_(OP_PUT, 1, 0, 0, 0, 10), UNK_(OP_PUT, 7, 0, 12),
      OK_(OP_CAS, 5, 1, 0, 20, 30), OK_(OP_PUT, 1, 0, 0, 40, 50),
      OK_(OP_CAS, 6, 1, 0, 60, 70)},
     5},
};

int lin_selftest(void)
{
    int bad = 0;
    for (size_t i = 0; i < sizeof(lin_cases) / sizeof(lin_cases[0]); i++) {
        const struct lin_case *c = &lin_cases[i];
        struct sim s;
        memset(&s, 0, sizeof(s));
        s.p.keys = 1;
        s.hist = (struct sim_op *)c->ops;
        s.hist_count = c->n;
        char msg[200] = "";
        int got = lin_check(&s, msg, sizeof(msg));
        printf("%s %zu - linearizability checker: %s (%s)\n",
               got == c->want ? "ok" : "not ok", i + 1, c->name,
               c->want ? "not linearizable" : "linearizable");
        bad += got != c->want;
    }
    /* Forty writes of unknown outcome that would change nothing wherever
     * placed (cas on values never written), twenty puts each read back,
     * then a stale read: not linearizable, and found so without trying
     * every subset of the forty (2^40: the search would give up). */
    struct sim_op ops[82];
    size_t n = 0;
    for (uint64_t i = 0; i < 40; i++) {
        ops[n++] = (struct sim_op)UNK_(OP_CAS, 2000 + i, 1000 + i, 1 + i);
    }
    for (uint64_t i = 0; i < 20; i++) {
        uint64_t t = 100 + 20 * i;
        ops[n++] = (struct sim_op)OK_(OP_PUT, 1 + i, 0, 0, t, t + 5);
        ops[n++] = (struct sim_op)OK_(OP_GET, 0, 0, 1 + i, t + 10, t + 15);
    }
    ops[n++] = (struct sim_op)OK_(OP_GET, 0, 0, 1, 600, 610);
    struct sim s;
    memset(&s, 0, sizeof(s));
    s.p.keys = 1;
    s.hist = ops;
    s.hist_count = n;
    char msg[200] = "";
    int got = lin_check(&s, msg, sizeof(msg));
    size_t cases = sizeof(lin_cases) / sizeof(lin_cases[0]);
    printf("%s %zu - linearizability checker: forty unknown no-ops, then a "
           "stale read (not linearizable%s%s)\n",
           got == 1 ? "ok" : "not ok", cases + 1, got != 1 ? "; got: " : "",
           got != 1 ? msg : "");
    bad += got != 1;
    return bad;
}

/*
 * test_raft_stress.c - a small seeded random run of the harness network:
 * random partitions, message loss, crashes and restarts, proposals, reads,
 * compactions and transfers, then a healed phase. Checks after every step:
 * at most one leader per term, logs agree up to the commit index, and every
 * node that applied index i holds the same state there; after healing, the
 * cluster makes progress again. This is a smoke test for the core; the
 * real swarm lives in tests/sim.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "base/prng.h"
#include "tests/unit/raft/harness.h"

int raft_stress_tests(void);

#define TERMS_MAX 4096

struct lossy {
    struct prng rng;
    uint64_t loss_pct;
};

static bool lossy_filter(struct net *net, struct raft_msg *m, void *arg)
{
    (void)net;
    (void)m;
    struct lossy *l = arg;
    return !prng_chance(&l->rng, l->loss_pct, 100);
}

static void check_leaders(struct net *net, uint64_t *leader_of_term)
{
    for (uint64_t i = 1; i <= (uint64_t)net->n; i++) {
        struct node *nd = net_node(net, i);
        if (!nd->up || nd->r.role != RAFT_LEADER) {
            continue;
        }
        uint64_t t = nd->r.term;
        assert_true(t < TERMS_MAX);
        if (leader_of_term[t] == 0) {
            leader_of_term[t] = i;
        }
        assert_int_equal(leader_of_term[t], i); /* election safety */
    }
}

static void compact_some(struct net *net, uint64_t id)
{
    struct node *nd = net_node(net, id);
    if (!nd->up || nd->applied < nd->ms.snap.meta.index + 8) {
        return;
    }
    struct raft_snapshot_meta meta;
    uint64_t at = nd->applied - 2;
    if (raft_compact(&nd->r, at, &meta) != 0) {
        return;
    }
    uint8_t data[12];
    be64_put(data, at);
    be32_put(data + 8, nd->hist[at % NET_HIST]);
    assert_int_equal(raft_memstorage_compact(&nd->ms, &meta, data, 12), 0);
}

static void one_seed(uint64_t seed)
{
    struct net *net = net_new(5, seed);
    uint64_t *leader_of_term = calloc(TERMS_MAX, sizeof(uint64_t));
    assert_non_null(leader_of_term);
    struct lossy loss;
    prng_seed(&loss.rng, seed ^ 0x5eed);
    loss.loss_pct = 0;
    net->filter = lossy_filter;
    net->filter_arg = &loss;
    net->cfg.pre_vote = prng_chance(&loss.rng, 1, 2);
    net->cfg.check_quorum = net->cfg.pre_vote || prng_chance(&loss.rng, 1, 2);
    struct prng chaos;
    prng_seed(&chaos, seed * 31 + 7);
    if (prng_chance(&loss.rng, 1, 2)) {
        net->chaos = &chaos;
    }
    net_start(net, 5);
    struct prng rng;
    prng_seed(&rng, seed);
    int proposals = 0;
    for (int step = 0; step < 300; step++) {
        uint64_t id = 1 + prng_below(&rng, 5);
        switch (prng_below(&rng, 12)) {
        case 0:
            net_heal(net);
            if (prng_chance(&rng, 1, 2)) {
                net_isolate(net, id);
            } else {
                net_cut(net, id, 1 + prng_below(&rng, 5));
            }
            break;
        case 1:
            net_heal(net);
            break;
        case 2:
            if (net_node(net, id)->up && prng_chance(&rng, 1, 3)) {
                net_crash(net, id);
            } else if (!net_node(net, id)->up) {
                net_restart(net, id);
            }
            break;
        case 3:
            loss.loss_pct = prng_below(&rng, 30);
            break;
        case 4:
            compact_some(net, id);
            break;
        case 5:
            if (net_node(net, id)->up) {
                (void)raft_transfer_leader(&net_node(net, id)->r,
                                           1 + prng_below(&rng, 5));
            }
            break;
        case 6:
            if (net_node(net, id)->up) {
                (void)raft_read_index(&net_node(net, id)->r, (uint64_t)step);
            }
            break;
        default:
            if (net_node(net, id)->up) {
                char v[32];
                snprintf(v, sizeof(v), "s%d", step);
                proposals += net_propose(net, id, v) == 0;
            }
            break;
        }
        net_tick_all(net, 1);
        check_leaders(net, leader_of_term);
        assert_true(net_logs_agree(net));
        assert_true(net_states_agree(net));
    }
    /* liveness: heal everything, bring everyone back */
    loss.loss_pct = 0;
    net->chaos = NULL;
    net_heal(net);
    for (uint64_t i = 1; i <= 5; i++) {
        if (!net_node(net, i)->up) {
            net_restart(net, i);
        }
    }
    for (int t = 0; t < 200; t++) {
        net_tick_all(net, 1);
        if (getenv("RAFT_STRESS_DEBUG")) {
            for (uint64_t i = 1; i <= 5; i++) {
                struct raft *r = &net_node(net, i)->r;
                fprintf(stderr, " %llu:%s%u/%u", (unsigned long long)i,
                        raft_role_str(r->role), r->election_elapsed,
                        r->randomized_timeout);
            }
            fprintf(stderr, "\n");
        }
    }
    uint64_t l = net_leader(net);
    for (uint64_t i = 1; l == 0 && i <= 5; i++) {
        struct raft *r = &net_node(net, i)->r;
        fprintf(stderr,
                "# node %llu role %s term %llu voters %u learners %u "
                "snap %llu elapsed %u/%u commit %llu conf_index %llu\n",
                (unsigned long long)i, raft_role_str(r->role),
                (unsigned long long)r->term, r->conf.voters_count,
                r->conf.learners_count,
                (unsigned long long)r->unstable_snap.meta.index,
                r->election_elapsed, r->randomized_timeout,
                (unsigned long long)r->commit,
                (unsigned long long)r->conf_index);
    }
    assert_int_not_equal(l, 0);
    assert_int_equal(net_propose(net, l, "final"), 0);
    net_tick_all(net, 5);
    uint64_t applied = net_node(net, l)->applied;
    for (uint64_t i = 1; i <= 5; i++) {
        assert_int_equal(net_node(net, i)->applied, applied);
    }
    assert_true(net_states_agree(net));
    assert_true(net_logs_agree(net));
    (void)proposals;
    free(leader_of_term);
    net_free(net);
}

static void random_faults_keep_safety_and_heal(void **state)
{
    (void)state;
    const char *env = getenv("RAFT_STRESS_SEEDS");
    uint64_t seeds = env ? strtoull(env, NULL, 10) : 40;
    const char *first = getenv("RAFT_STRESS_FIRST");
    for (uint64_t s = first ? strtoull(first, NULL, 10) : 1; s <= seeds; s++) {
        if (getenv("RAFT_STRESS_VERBOSE")) {
            printf("# seed %llu\n", (unsigned long long)s);
        }
        one_seed(s);
    }
}

int raft_stress_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_faults_keep_safety_and_heal),
    };
    return cmocka_run_group_tests_name("raft_stress", tests, NULL, NULL);
}

/*
 * test_lease.c - lease timers (consensus/lease) with fake time.
 *
 * Goal: the guarantee in lease.h, point by point, plus the heap order and
 * the per-tick bounds. Method: the module is pure, so each test drives it
 * with a millisecond counter and checks what it names to revoke or
 * checkpoint and what it answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"
#include "base/prng.h"
#include "consensus/lease/lease.h"

#define E_MS 1000 /* election timeout */

static int setup(void **state)
{
    struct lease_config cfg;
    struct lease_table *t;
    memset(&cfg, 0, sizeof(cfg));
    cfg.revokes_per_tick_max = 10;
    cfg.checkpoint_interval_ms = 60000;
    cfg.promote_extend_ms = E_MS;
    cfg.revoke_retry_ms = 3000;
    assert_int_equal(lease_table_init(&cfg, &t), 0);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    lease_table_close(*state);
    return 0;
}

static void expires_in_order_only_on_the_leader(void **state)
{
    struct lease_table *t = *state;
    int64_t ids[16];
    assert_int_equal(lease_on_grant(t, 1, 5, 0), 0);
    assert_int_equal(lease_on_grant(t, 2, 3, 0), 0);
    assert_int_equal(lease_on_grant(t, 3, 4, 0), 0);
    assert_int_equal(lease_expired(t, 10000, ids, 16), 0); /* follower */
    lease_promote(t, 0);
    /* promote: now + TTL + E */
    assert_int_equal(lease_expired(t, 3999, ids, 16), 0);
    assert_int_equal(lease_expired(t, 5000, ids, 16), 2);
    assert_int_equal(ids[0], 2);
    assert_int_equal(ids[1], 3);
    /* named once per retry interval, not every tick */
    assert_int_equal(lease_expired(t, 5100, ids, 16), 0);
    assert_int_equal(lease_expired(t, 6000, ids, 16), 1);
    assert_int_equal(ids[0], 1);
    lease_on_revoke(t, 2);
    assert_int_equal(lease_expired(t, 8000, ids, 16), 1); /* retry of 3 */
    assert_int_equal(ids[0], 3);
    assert_int_equal(lease_count(t), 2);
}

static void revocations_per_tick_are_bounded(void **state)
{
    struct lease_table *t = *state;
    int64_t ids[64];
    size_t total = 0;
    for (int64_t id = 1; id <= 35; id++) {
        assert_int_equal(lease_on_grant(t, id, 2, 0), 0);
    }
    lease_promote(t, 0);
    for (int tick = 0; tick < 10; tick++) {
        size_t n = lease_expired(t, 10000 + (uint64_t)tick * 100, ids, 64);
        assert_true(n <= 10); /* revokes_per_tick_max */
        total += n;
        for (size_t i = 0; i < n; i++) {
            lease_on_revoke(t, ids[i]);
        }
    }
    assert_int_equal(total, 35);
    assert_int_equal(lease_count(t), 0);
}

static void renewal_pushes_expiry_and_expired_cannot_renew(void **state)
{
    struct lease_table *t = *state;
    int64_t ttl;
    int64_t rem;
    int64_t ids[4];
    bool log;
    assert_int_equal(lease_on_grant(t, 9, 10, 0), 0);
    assert_int_equal(lease_renew(t, 9, 0, &ttl, &log), ERR_INVALID);
    lease_promote(t, 0);
    assert_int_equal(lease_renew(t, 9, 8000, &ttl, &log), 0);
    assert_int_equal(ttl, 10);
    assert_false(log);
    assert_int_equal(lease_remaining(t, 9, 8000, &rem, &ttl), 0);
    assert_int_equal(rem, 10);
    assert_int_equal(lease_remaining(t, 9, 12500, &rem, &ttl), 0);
    assert_int_equal(rem, 5); /* 5.5 s cut down, as etcd 3.4.23 answers */
    assert_int_equal(lease_remaining(t, 9, 17001, &rem, &ttl), 0);
    assert_int_equal(rem, 0); /* the last second: 0, not yet expired */
    assert_int_equal(lease_expired(t, 17999, ids, 4), 0);
    assert_int_equal(lease_expired(t, 18000, ids, 4), 1);
    assert_int_equal(lease_renew(t, 9, 18001, &ttl, &log), ERR_LEASE_NOT_FOUND);
    assert_int_equal(lease_renew(t, 77, 0, &ttl, &log), ERR_LEASE_NOT_FOUND);
    assert_int_equal(lease_remaining(t, 77, 0, &rem, &ttl),
                     ERR_LEASE_NOT_FOUND);
}

static void checkpoints_never_shorten_and_renewal_clears_them(void **state)
{
    struct lease_table *t = *state;
    struct lease_checkpoint cp[8];
    int64_t ttl;
    int64_t rem;
    bool log;
    assert_int_equal(lease_on_grant(t, 5, 600, 0), 0);
    assert_int_equal(lease_on_grant(t, 6, 30, 0), 0);
    lease_promote(t, 0);
    /* due after one interval; only leases that outlive the next one */
    assert_int_equal(lease_checkpoints_due(t, 59999, cp, 8), 0);
    assert_int_equal(lease_checkpoints_due(t, 60000, cp, 8), 1);
    assert_int_equal(cp[0].id, 5);
    assert_int_equal(cp[0].remaining_s, 541); /* 601 s - 60 s, from E */
    assert_int_equal(lease_checkpoints_due(t, 60001, cp, 8), 0);
    /* a stale, smaller checkpoint applied late does not shorten */
    lease_on_checkpoint(t, 5, 10, 70000);
    assert_int_equal(lease_remaining(t, 5, 70000, &rem, &ttl), 0);
    assert_true(rem >= 531);
    /* renewal after a nonzero checkpoint must be written (point 5) */
    assert_int_equal(lease_renew(t, 5, 80000, &ttl, &log), 0);
    assert_true(log);
    assert_int_equal(lease_renew(t, 5, 81000, &ttl, &log), 0);
    assert_false(log);
    /* failed proposal: the rule comes back */
    lease_checkpoint_proposed(t, 5, 1);
    assert_int_equal(lease_renew(t, 5, 82000, &ttl, &log), 0);
    assert_true(log);
}

/* A leader applying its own checkpoints (R rounded up to whole seconds)
 * must not push the expiry: with an interval near a second the lease would
 * otherwise never expire. Found by the simulator (tests/sim). */
static void leader_checkpoints_do_not_lengthen_the_lease(void **state)
{
    struct lease_config cfg;
    struct lease_table *t;
    struct lease_checkpoint cp[8];
    int64_t ids[8];
    uint64_t now = 0;
    size_t expired = 0;
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.checkpoint_interval_ms = 800;
    cfg.promote_extend_ms = E_MS;
    assert_int_equal(lease_table_init(&cfg, &t), 0);
    assert_int_equal(lease_on_grant(t, 9, 5, 0), 0);
    lease_promote(t, 0); /* expiry 6000 */
    for (now = 0; now <= 20000 && expired == 0; now += 100) {
        size_t n = lease_checkpoints_due(t, now, cp, 8);
        for (size_t i = 0; i < n; i++) {
            /* applied 20 ms later, as after a commit */
            lease_on_checkpoint(t, cp[i].id, cp[i].remaining_s, now + 20);
        }
        expired = lease_expired(t, now, ids, 8);
    }
    assert_int_equal(expired, 1);
    assert_int_equal(ids[0], 9);
    assert_true(now - 100 >= 6000);
    assert_true(now - 100 <= 6100);
    /* on a follower a checkpoint still lengthens (it may become leader) */
    assert_int_equal(lease_on_grant(t, 10, 5, 0), 0);
    lease_demote(t);
    lease_on_checkpoint(t, 10, 30, 1000);
    int64_t rem;
    int64_t ttl;
    assert_int_equal(lease_remaining(t, 10, 1000, &rem, &ttl), 0);
    assert_int_equal(rem, 30);
    lease_table_close(t);
}

/* A checkpoint never carries more than the TTL: a promotion's extra
 * election timeout would otherwise be added again by every next leader,
 * and an abandoned lease would outlive TTL + E by one E per failover.
 * Found by the simulator (tests/sim). */
static void checkpoints_never_carry_more_than_the_ttl(void **state)
{
    struct lease_config cfg;
    struct lease_table *t;
    struct lease_checkpoint cp[8];
    uint64_t now = 0;
    int64_t ids[8];
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    cfg.checkpoint_interval_ms = 1000;
    cfg.promote_extend_ms = 2000;
    assert_int_equal(lease_table_init(&cfg, &t), 0);
    assert_int_equal(lease_on_grant(t, 4, 10, 0), 0);
    /* five failovers, one second apart, each new leader applying the
     * previous one's checkpoint */
    for (int k = 0; k < 5; k++) {
        lease_promote(t, now);
        now += 1000;
        assert_int_equal(lease_checkpoints_due(t, now, cp, 8), 1);
        assert_true(cp[0].remaining_s <= 10);
        lease_demote(t);
        lease_on_checkpoint(t, 4, cp[0].remaining_s, now);
    }
    /* the last leader: gone by now + TTL + E, not later */
    lease_promote(t, now);
    assert_int_equal(lease_expired(t, now + 11999, ids, 8), 0);
    assert_int_equal(lease_expired(t, now + 12000, ids, 8), 1);
    lease_table_close(t);
}

static void new_leader_honours_the_later_of_log_and_checkpoint(void **state)
{
    struct lease_table *t = *state;
    int64_t ids[4];
    int64_t rem;
    int64_t ttl;
    /* a follower sees: grant at 0 (TTL 100), checkpoint R=20 at 50 s, a
     * renewal through the log (R=0) at 90 s */
    assert_int_equal(lease_on_grant(t, 1, 100, 0), 0);
    assert_int_equal(lease_on_grant(t, 2, 100, 0), 0);
    lease_on_checkpoint(t, 1, 20, 50000);
    lease_on_checkpoint(t, 2, 20, 50000);
    lease_on_checkpoint(t, 2, 0, 90000);
    /* it becomes leader at 95 s */
    lease_promote(t, 95000);
    /* lease 1: max(100 s from grant, 50 + 20, 95 + 20 + E) = 116 s */
    assert_int_equal(lease_remaining(t, 1, 95000, &rem, &ttl), 0);
    assert_int_equal(rem, 21);
    /* lease 2: renewed at 90 s -> max(190, 95 + 100 + 1) = 196 s */
    assert_int_equal(lease_remaining(t, 2, 95000, &rem, &ttl), 0);
    assert_int_equal(rem, 101);
    assert_int_equal(lease_expired(t, 115999, ids, 4), 0);
    assert_int_equal(lease_expired(t, 116000, ids, 4), 1);
    assert_int_equal(ids[0], 1);
    lease_on_revoke(t, 1);
    assert_int_equal(lease_expired(t, 195999, ids, 4), 0);
    /* without checkpoints a new leader gives the full TTL (+E) */
    assert_int_equal(lease_on_grant(t, 3, 100, 196000), 0);
    lease_demote(t);
    lease_promote(t, 250000);
    assert_int_equal(lease_remaining(t, 3, 250000, &rem, &ttl), 0);
    assert_int_equal(rem, 101);
}

static void restore_uses_the_checkpoint(void **state)
{
    struct lease_table *t = *state;
    int64_t rem;
    int64_t ttl;
    assert_int_equal(lease_restore(t, 4, 3600, 120, 1000), 0);
    assert_int_equal(lease_restore(t, 5, 60, 0, 1000), 0);
    lease_promote(t, 1000);
    assert_int_equal(lease_remaining(t, 4, 1000, &rem, &ttl), 0);
    assert_int_equal(rem, 121);
    assert_int_equal(ttl, 3600);
    assert_int_equal(lease_remaining(t, 5, 1000, &rem, &ttl), 0);
    assert_int_equal(rem, 61);
}

/* Random grants, renewals and revokes against a model: the leader never
 * names a lease before its model deadline (last renewal + TTL), and names
 * every lease past it within the bounded ticks. */
static void random_ops_match_a_model(void **state)
{
    struct lease_table *t = *state;
    struct prng r;
    uint64_t deadline[200] = {0};
    bool alive[200] = {false};
    int64_t ids[16];
    prng_seed(&r, 12345);
    lease_promote(t, 0);
    for (uint64_t now = 0; now < 600000; now += 100) {
        int64_t id = (int64_t)(prng_next(&r) % 200);
        uint64_t op = prng_next(&r) % 10;
        int64_t ttl;
        bool log;
        if (op == 0 && !alive[id]) {
            int64_t tt = 2 + (int64_t)(prng_next(&r) % 20);
            assert_int_equal(lease_on_grant(t, id + 1, tt, now), 0);
            alive[id] = true;
            deadline[id] = now + (uint64_t)tt * 1000;
        } else if (op < 3 && alive[id]) {
            int rc = lease_renew(t, id + 1, now, &ttl, &log);
            if (rc == 0) {
                deadline[id] = now + (uint64_t)ttl * 1000;
            } else {
                assert_true(now >= deadline[id]);
            }
        }
        size_t n = lease_expired(t, now, ids, 16);
        for (size_t i = 0; i < n; i++) {
            int64_t k = ids[i] - 1;
            assert_true(alive[k]);
            assert_true(now >= deadline[k]);
            lease_on_revoke(t, ids[i]);
            alive[k] = false;
        }
        for (int k = 0; k < 200; k++) {
            /* bounded lag: 10 per tick of 100 ms is plenty here */
            assert_false(alive[k] && now > deadline[k] + 3000);
        }
    }
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(expires_in_order_only_on_the_leader),
        T(revocations_per_tick_are_bounded),
        T(renewal_pushes_expiry_and_expired_cannot_renew),
        T(checkpoints_never_shorten_and_renewal_clears_them),
        T(leader_checkpoints_do_not_lengthen_the_lease),
        T(checkpoints_never_carry_more_than_the_ttl),
        T(new_leader_honours_the_later_of_log_and_checkpoint),
        T(restore_uses_the_checkpoint),
        T(random_ops_match_a_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

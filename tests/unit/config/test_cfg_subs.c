/*
 * test_cfg_subs.c - the config center's subscribers and PUT ?wait_acks=
 * waiters (registry/config/cfg_subs.c).
 *
 * Goal: a waiter answers exactly when the acks it needs are in, counting
 * each subscriber once whatever order and versions the acks come in; a
 * repeat ack, an ack of another config and an ack of an older version do
 * not count; a subscriber that closes takes its ack back; a waiter that
 * never gets enough answers at its deadline with the count it has; a
 * subscriber tracks every config it is sent, up to its bound; with
 * nothing to wait for, or no room for one more waiter, the caller is told
 * the counts as they are (and, past the bound, that it did not wait).
 * Method: a bare struct server on a private libuv loop (no node, no
 * sockets): subscribers opened, versions marked delivered and acked by
 * hand as the config stream does, the loop run only to fire deadlines.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "base/err.h"
#include "registry/config/cfg_int.h"
#include "registry/server/server.h"

struct fix {
    uv_loop_t loop;
    struct server s;
    struct cfg_client client;
};

struct answer {
    int calls;
    size_t acked;
    size_t total;
    bool timed_out;
};

static void done(void *ctx, size_t acked, size_t total, bool timed_out)
{
    struct answer *a = ctx;
    a->calls++;
    a->acked = acked;
    a->total = total;
    a->timed_out = timed_out;
}

static int setup(void **state)
{
    struct fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->s.loop = &f->loop;
    snprintf(f->client.client_id, sizeof(f->client.client_id), "c");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fix *f = *state;
    cfgapi_stop(&f->s);
    cfgapi_free(&f->s);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* the waiters' timers close */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static struct cfg_id id_of(const char *name)
{
    struct cfg_id id;
    memset(&id, 0, sizeof(id));
    snprintf(id.ns, sizeof(id.ns), "ns");
    snprintf(id.app, sizeof(id.app), "app");
    snprintf(id.name, sizeof(id.name), "%s", name);
    return id;
}

/* n subscribers of config id, each sent version v. */
static void open_subs(struct fix *f, const struct cfg_id *id, int64_t v,
                      struct cfg_sub **subs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        subs[i] = cfg_sub_open(&f->s, &f->client, "127.0.0.1:1",
                               "/config/ns/app/", id->name);
        assert_non_null(subs[i]);
        cfg_sub_delivered(&f->s, subs[i], id, v, 1, false);
    }
}

static void acks_in_order_answer_on_the_last(void **state)
{
    struct fix *f = *state;
    struct cfg_acks now;
    struct cfg_id id = id_of("a.yaml"), other = id_of("b.yaml");
    struct cfg_sub *subs[5], *osub;
    struct answer a = {0};
    open_subs(f, &id, 1, subs, 5);
    open_subs(f, &other, 1, &osub, 1);
    assert_int_equal(cfg__subs_covering(&f->s, &id), 5);
    struct cfg_waiter *w =
        cfg__wait_acks(&f->s, &id, 1, 1.0, 60000, done, &a, &now);
    assert_non_null(w);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(cfg_sub_acked(&f->s, subs[i], &id, 1), 0);
        /* a repeat, and an ack of another config, count nothing */
        assert_int_equal(cfg_sub_acked(&f->s, subs[i], &id, 1), 0);
        assert_int_equal(a.calls, 0);
    }
    assert_int_equal(cfg_sub_acked(&f->s, osub, &other, 1), 0);
    assert_int_equal(a.calls, 0);
    /* a version never delivered is not an ack */
    assert_int_equal(cfg_sub_acked(&f->s, subs[4], &id, 2), ERR_INVALID);
    assert_int_equal(a.calls, 0);
    assert_int_equal(cfg_sub_acked(&f->s, subs[4], &id, 1), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.acked, 5);
    assert_int_equal(a.total, 5);
    assert_false(a.timed_out);
    assert_int_equal(cfg__subs_acked(&f->s, &id, 1), 5);
}

static void fraction_and_later_versions(void **state)
{
    struct fix *f = *state;
    struct cfg_acks now;
    struct cfg_id id = id_of("a.yaml");
    struct cfg_sub *subs[4];
    struct answer a1 = {0}, a2 = {0};
    open_subs(f, &id, 1, subs, 4);
    /* half of 4 for version 1; all of 4 for version 2 */
    assert_non_null(cfg__wait_acks(&f->s, &id, 1, 0.5, 60000, done, &a1, &now));
    assert_non_null(cfg__wait_acks(&f->s, &id, 2, 1.0, 60000, done, &a2, &now));
    assert_int_equal(cfg_sub_acked(&f->s, subs[0], &id, 1), 0);
    assert_int_equal(a1.calls, 0);
    /* subs[1] was sent 2 and acks it at once: reaches both versions */
    cfg_sub_delivered(&f->s, subs[1], &id, 2, 1, false);
    assert_int_equal(cfg_sub_acked(&f->s, subs[1], &id, 2), 0);
    assert_int_equal(a1.calls, 1);
    assert_int_equal(a1.acked, 2);
    assert_int_equal(a2.calls, 0);
    /* subs[0] moves from 1 to 2: counted once more, for version 2 only */
    cfg_sub_delivered(&f->s, subs[0], &id, 2, 1, false);
    assert_int_equal(cfg_sub_acked(&f->s, subs[0], &id, 2), 0);
    /* an older version after a newer one is a repeat */
    assert_int_equal(cfg_sub_acked(&f->s, subs[0], &id, 1), 0);
    for (size_t i = 2; i < 4; i++) {
        assert_int_equal(a2.calls, 0);
        cfg_sub_delivered(&f->s, subs[i], &id, 2, 1, false);
        assert_int_equal(cfg_sub_acked(&f->s, subs[i], &id, 2), 0);
    }
    assert_int_equal(a2.calls, 1);
    assert_int_equal(a2.acked, 4);
    assert_int_equal(a1.calls, 1);
}

static void a_closed_subscriber_takes_its_ack_back(void **state)
{
    struct fix *f = *state;
    struct cfg_acks now;
    struct cfg_id id = id_of("a.yaml");
    struct cfg_sub *subs[3];
    struct answer a = {0};
    open_subs(f, &id, 1, subs, 3);
    assert_non_null(cfg__wait_acks(&f->s, &id, 1, 1.0, 20, done, &a, &now));
    assert_int_equal(cfg_sub_acked(&f->s, subs[0], &id, 1), 0);
    assert_int_equal(cfg_sub_acked(&f->s, subs[1], &id, 1), 0);
    cfg_sub_close(&f->s, subs[1]);
    assert_int_equal(cfg_sub_acked(&f->s, subs[2], &id, 1), 0);
    /* 2 of the 3 needed: only the deadline answers, with what it has */
    assert_int_equal(a.calls, 0);
    for (int i = 0; i < 1000 && a.calls == 0; i++) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(a.calls, 1);
    assert_true(a.timed_out);
    assert_int_equal(a.acked, 2);
    assert_int_equal(a.total, 3);
}

static void nothing_to_wait_for(void **state)
{
    struct fix *f = *state;
    struct cfg_acks now;
    struct cfg_id id = id_of("a.yaml");
    struct cfg_sub *sub;
    struct answer a = {0};
    /* no subscriber: the caller answers at once, 0 of 0 */
    assert_null(cfg__wait_acks(&f->s, &id, 1, 1.0, 60000, done, &a, &now));
    assert_int_equal(now.acked, 0);
    assert_int_equal(now.total, 0);
    assert_false(now.timed_out);
    open_subs(f, &id, 1, &sub, 1);
    assert_int_equal(cfg_sub_acked(&f->s, sub, &id, 1), 0);
    /* acked already: 1 of 1, not 0 of 0 */
    assert_null(cfg__wait_acks(&f->s, &id, 1, 1.0, 60000, done, &a, &now));
    assert_int_equal(now.acked, 1);
    assert_int_equal(now.total, 1);
    assert_false(now.timed_out);
    assert_int_equal(a.calls, 0);
}

/* CFG_WAITERS_MAX waiters are held; one more is not, and says it did not
 * wait (with the counts as they are); each held one still answers. */
static void waiters_at_the_bound_and_one_past(void **state)
{
    struct fix *f = *state;
    struct cfg_id id = id_of("a.yaml");
    struct cfg_sub *subs[2];
    struct cfg_acks now;
    static struct answer a[CFG_WAITERS_MAX + 1];
    memset(a, 0, sizeof(a));
    open_subs(f, &id, 1, subs, 2);
    assert_int_equal(cfg_sub_acked(&f->s, subs[0], &id, 1), 0);
    for (size_t i = 0; i < CFG_WAITERS_MAX; i++) {
        assert_non_null(
            cfg__wait_acks(&f->s, &id, 1, 1.0, 60000, done, &a[i], &now));
    }
    assert_null(cfg__wait_acks(&f->s, &id, 1, 1.0, 60000, done,
                               &a[CFG_WAITERS_MAX], &now));
    assert_true(now.timed_out);
    assert_int_equal(now.acked, 1);
    assert_int_equal(now.total, 2);
    assert_int_equal(cfg_sub_acked(&f->s, subs[1], &id, 1), 0);
    for (size_t i = 0; i < CFG_WAITERS_MAX; i++) {
        assert_int_equal(a[i].calls, 1);
        assert_int_equal(a[i].acked, 2);
        assert_false(a[i].timed_out);
    }
    assert_int_equal(a[CFG_WAITERS_MAX].calls, 0);
}

static void a_subscriber_tracks_configs_up_to_its_bound(void **state)
{
    struct fix *f = *state;
    struct cfg_sub *sub =
        cfg_sub_open(&f->s, &f->client, "127.0.0.1:1", "/config/ns/", NULL);
    char name[32];
    bool gray;
    assert_non_null(sub);
    for (int i = 0; i <= CFG_SUB_CONFIGS; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        struct cfg_id id = id_of(name);
        cfg_sub_delivered(&f->s, sub, &id, i + 1, 1, i % 2 == 0);
    }
    for (int i = 0; i <= CFG_SUB_CONFIGS; i++) {
        snprintf(name, sizeof(name), "c%d", i);
        struct cfg_id id = id_of(name);
        int64_t want = i < CFG_SUB_CONFIGS ? i + 1 : 0; /* past the bound */
        assert_int_equal(cfg_sub_delivered_version(sub, &id, &gray), want);
        assert_int_equal(gray, i < CFG_SUB_CONFIGS && i % 2 == 0);
    }
    /* the first and the last tracked still take acks */
    struct cfg_id first = id_of("c0");
    snprintf(name, sizeof(name), "c%d", CFG_SUB_CONFIGS - 1);
    struct cfg_id last = id_of(name);
    assert_int_equal(cfg_sub_acked(&f->s, sub, &first, 1), 0);
    assert_int_equal(cfg_sub_acked(&f->s, sub, &last, CFG_SUB_CONFIGS), 0);
    snprintf(name, sizeof(name), "c%d", CFG_SUB_CONFIGS);
    struct cfg_id past = id_of(name);
    assert_int_equal(cfg_sub_acked(&f->s, sub, &past, 1), ERR_INVALID);
}

int test_cfg_subs_run(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(acks_in_order_answer_on_the_last, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(fraction_and_later_versions, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_closed_subscriber_takes_its_ack_back,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(nothing_to_wait_for, setup, teardown),
        cmocka_unit_test_setup_teardown(waiters_at_the_bound_and_one_past,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_subscriber_tracks_configs_up_to_its_bound, setup, teardown),
    };
    return cmocka_run_group_tests_name("cfg_subs", tests, NULL, NULL);
}

/*
 * example_lock.c - a distributed lock held under a session that libcairn
 * keeps alive (cairn_keeper), as etcd's concurrency.NewSession + NewMutex.
 *
 *   example-lock <endpoint> <name> <hold_ms> [ttl_s]
 *
 * Grants a session lease (ttl_s, default 2 s) kept alive by a thread, takes
 * the lock, holds it hold_ms, then unlocks and revokes the session.
 * Prints, each with the wall clock in ms:
 *   "<ms> session <lease hex> ttl <s>", "<ms> locked <key>",
 *   "<ms> released after <n> renewals" (exit 0), or
 *   "<ms> lost: the session is gone" when the lease is lost while held
 *   (exit 3: the lock is no longer ours). Errors exit 1.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cairn.h>

static atomic_int lost;

static long long wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_keeper(void *arg, enum cairn_keeper_event ev, int64_t lease,
                      int64_t ttl, int err)
{
    (void)arg;
    (void)ttl;
    if (ev == CAIRN_KEEPER_LOST) {
        atomic_store(&lost, 1);
    } else if (ev == CAIRN_KEEPER_UNREACHABLE) {
        fprintf(stderr, "session %llx: renewal failed: %s\n",
                (unsigned long long)lease, cairn_strerror(err));
    }
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s <endpoint> <name> <hold_ms> [ttl_s]\n",
                argv[0]);
        return 1;
    }
    const char *ep = argv[1];
    long long hold_ms = atoll(argv[3]);
    int64_t ttl = argc > 4 ? atoll(argv[4]) : 2;
    struct cairn_options o;
    struct cairn_client *c = NULL;
    struct cairn_keeper *k = NULL;
    cairn_options_init(&o);
    o.endpoints = &ep;
    o.endpoints_count = 1;
    int rc = cairn_client_new(&o, &c);
    if (rc == 0) {
        rc = cairn_keeper_new(c, 0, ttl, on_keeper, NULL, &k);
    }
    if (rc != 0) {
        fprintf(stderr, "session: %s (%s)\n", cairn_strerror(rc),
                c != NULL ? cairn_client_errmsg(c) : "");
        cairn_client_free(c);
        return 1;
    }
    int64_t lease = cairn_keeper_lease(k);
    printf("%lld session %llx ttl %lld\n", wall_ms(), (unsigned long long)lease,
           (long long)cairn_keeper_ttl(k, NULL));
    fflush(stdout);
    struct cairn_lock_resp l;
    rc = cairn_lock(c, argv[2], lease, 60000, &l);
    if (rc != 0) {
        fprintf(stderr, "lock: %s (%s)\n", cairn_strerror(rc),
                cairn_client_errmsg(c));
        cairn_keeper_free(k, true);
        cairn_client_free(c);
        return 1;
    }
    printf("%lld locked %s\n", wall_ms(), (const char *)l.key);
    fflush(stdout);
    long long until = wall_ms() + hold_ms;
    while (wall_ms() < until && !atomic_load(&lost)) {
        usleep(20000);
    }
    if (atomic_load(&lost)) {
        printf("%lld lost: the session is gone\n", wall_ms());
        cairn_lock_resp_free(&l);
        cairn_keeper_free(k, false);
        cairn_client_free(c);
        return 3;
    }
    uint64_t renewals = 0;
    (void)cairn_keeper_ttl(k, &renewals);
    long long released = wall_ms(); /* nobody else holds it before this */
    rc = cairn_unlock(c, l.key, l.key_len, 0, NULL);
    cairn_lock_resp_free(&l);
    cairn_keeper_free(k, true);
    printf("%lld released after %llu renewals%s\n", released,
           (unsigned long long)renewals, rc == 0 ? "" : " (unlock failed)");
    cairn_client_free(c);
    return rc == 0 ? 0 : 1;
}

/*
 * cairnctl_lock.c - lock and elect, with etcdctl 3.4's behaviour
 * (lock_command.go, elect_command.go): a session (a lease kept alive by a
 * thread of its own on a second client, one renewal per third of the TTL)
 * holds the lock or the candidacy; SIGINT or SIGTERM unlocks or resigns,
 * revokes the lease and exits 0. A signal while still waiting ends with
 * etcdctl's "context canceled" (exit 1) after revoking the lease.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sdk/cairnctl/cairnctl.h"

/* How long lock and campaign may wait on the server. */
#define WAIT_MS (24LL * 3600 * 1000)

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    (void)sig;
    got_signal = 1;
}

static void on_signal_exit(int sig)
{
    (void)sig;
    _exit(0); /* observe: stdout is flushed after every leader */
}

struct session {
    struct ctl *x;
    struct cairn_client *ka; /* the keep-alive thread's own client */
    int64_t lease;
    int64_t ttl;
    pthread_t th;
    bool running;
    atomic_bool held; /* the lock or leadership was won */
    atomic_bool quit;
    atomic_bool lost; /* the lease is gone */
};

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void *session_main(void *arg)
{
    struct session *s = arg;
    int64_t every = s->ttl * 1000 / 3;
    every = every < 100 ? 100 : every;
    while (!atomic_load(&s->quit)) {
        for (int64_t t = 0; t < every && !atomic_load(&s->quit); t += 50) {
            if (got_signal && !atomic_load(&s->held)) {
                /* still waiting: give the lease up and end as etcdctl */
                cairn_lease_revoke(s->ka, s->lease, 2000, NULL);
                fflush(stdout);
                fputs("Error: context canceled\n", stderr);
                _exit(CTL_EXIT_ERROR);
            }
            sleep_ms(50);
        }
        if (atomic_load(&s->quit)) {
            break;
        }
        int64_t ttl = 0;
        int rc = cairn_lease_keepalive_once(s->ka, s->lease, ctl_deadline(s->x),
                                            &ttl, NULL);
        if (rc == 0 && ttl <= 0) {
            atomic_store(&s->lost, true);
            break;
        }
    }
    return NULL;
}

/* Grants the session's lease and starts its keep-alive thread; -1 or the
 * exit code. */
static int session_start(struct ctl *x, struct session *s, int64_t ttl)
{
    memset(s, 0, sizeof(*s));
    s->x = x;
    s->ttl = ttl;
    struct cairn_client *c = ctl_client(x);
    s->ka = ctl_client_new(x);
    if (c == NULL || s->ka == NULL) {
        cairn_client_free(s->ka);
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_lease_grant_resp g;
    int rc = cairn_lease_grant(c, ttl, 0, ctl_deadline(x), &g);
    if (rc != 0) {
        cairn_client_free(s->ka);
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    s->lease = g.id;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (pthread_create(&s->th, NULL, session_main, s) != 0) {
        cairn_lease_revoke(c, s->lease, ctl_deadline(x), NULL);
        cairn_client_free(s->ka);
        return ctl_fail(CTL_EXIT_ERROR, "cannot start the session thread");
    }
    s->running = true;
    return -1;
}

/* Stops the keep-alive thread and revokes the lease (concurrency's
 * Session.Close). */
static void session_close(struct session *s)
{
    if (s->running) {
        atomic_store(&s->quit, true);
        pthread_join(s->th, NULL);
        s->running = false;
    }
    cairn_lease_revoke(s->ka, s->lease, ctl_deadline(s->x), NULL);
    cairn_client_free(s->ka);
    s->ka = NULL;
}

/* Waits for SIGINT/SIGTERM; false when the session was lost first. */
static bool wait_signal(struct session *s)
{
    while (!got_signal) {
        if (atomic_load(&s->lost)) {
            return false;
        }
        sleep_ms(50);
    }
    return true;
}

/* display.Get of the key just won. */
static int print_key(struct ctl *x, struct cairn_client *c, const uint8_t *key,
                     size_t key_len)
{
    struct cairn_range_req req = {0};
    req.key = key;
    req.key_len = key_len;
    struct cairn_range_resp r;
    int rc = cairn_range(c, &req, ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    if (r.kvs_count == 0) {
        cairn_range_resp_free(&r);
        return ctl_fail(CTL_EXIT_ERROR, "lock lost on init");
    }
    print_range(x, &r, false);
    fflush(stdout);
    cairn_range_resp_free(&r);
    return -1;
}

/* Runs argv with the lock's variables; its exit status, or -1. */
static int run_command(const char *const *argv, const uint8_t *key, int64_t rev)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        return -1;
    }
    if (pid == 0) {
        char rs[32];
        snprintf(rs, sizeof(rs), "%" PRId64, rev);
        setenv("ETCD_LOCK_KEY", (const char *)key, 1);
        setenv("ETCD_LOCK_REV", rs, 1);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr,
                "Error: exec: \"%s\": executable file not found in "
                "$PATH\n",
                argv[0]);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int cmd_lock(struct ctl *x)
{
    if (x->args_count == 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "lock takes a lock name argument "
                                           "and an optional command to "
                                           "execute");
    }
    int64_t ttl;
    if (!ctl_flag_int(x, "ttl", &ttl)) {
        return CTL_EXIT_ERROR;
    }
    struct session s;
    int rc = session_start(x, &s, ttl);
    if (rc >= 0) {
        return rc;
    }
    struct cairn_client *c = ctl_client(x);
    struct cairn_lock_resp l;
    rc = cairn_lock(c, x->args[0], s.lease, WAIT_MS, &l);
    if (rc != 0) {
        rc = ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        session_close(&s);
        return rc;
    }
    atomic_store(&s.held, true);
    /* the command: the args after the name, then those after "--" */
    const char *argv[2 * CTL_ARGS_MAX + 1];
    size_t n = 0;
    for (size_t i = 1; i < x->args_count; i++) {
        argv[n++] = x->args[i];
    }
    for (size_t i = 0; i < x->dash_args_count; i++) {
        argv[n++] = x->dash_args[i];
    }
    argv[n] = NULL;
    int status = 0;
    if (n > 0) {
        status = run_command(argv, l.key, l.header.revision);
        cairn_unlock(c, l.key, l.key_len, ctl_deadline(x), NULL);
    } else {
        rc = print_key(x, c, l.key, l.key_len);
        if (rc < 0 && !wait_signal(&s)) {
            rc = ctl_fail(CTL_EXIT_ERROR, "session expired");
        }
        if (rc < 0) {
            int u = cairn_unlock(c, l.key, l.key_len, ctl_deadline(x), NULL);
            rc = u != 0 ? ctl_fail_call(x, c, u, CTL_EXIT_ERROR) : -1;
        }
    }
    cairn_lock_resp_free(&l);
    session_close(&s);
    if (status != 0) {
        return ctl_fail(CTL_EXIT_ERROR, "exit status %d", status);
    }
    return rc >= 0 ? rc : 0;
}

static int observe_cb(void *arg, const struct cairn_range_resp *leader)
{
    print_range(arg, leader, false);
    fflush(stdout);
    return 0;
}

int cmd_elect(struct ctl *x)
{
    if (x->args_count != 1 && x->args_count != 2) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "elect takes one election name "
                                           "argument and an optional "
                                           "proposal argument");
    }
    bool listen = ctl_flag_bool(x, "listen");
    if (x->args_count == 1 && !listen) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "no proposal argument but -l not "
                                           "set");
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    if (listen) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal_exit;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        int rc = cairn_election_observe(c, x->args[0], observe_cb, x, WAIT_MS);
        if (rc != 0) {
            return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        }
        return ctl_fail(CTL_EXIT_ERROR, "elect: observer lost");
    }
    struct session s;
    int rc = session_start(x, &s, 60); /* concurrency's default TTL */
    if (rc >= 0) {
        return rc;
    }
    const char *prop = x->args[1];
    struct cairn_leader_key k;
    rc = cairn_campaign(c, x->args[0], s.lease, (const uint8_t *)prop,
                        strlen(prop), WAIT_MS, &k);
    if (rc != 0) {
        rc = ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        session_close(&s);
        return rc;
    }
    atomic_store(&s.held, true);
    rc = print_key(x, c, k.key, k.key_len);
    if (rc < 0 && !wait_signal(&s)) {
        rc = ctl_fail(CTL_EXIT_ERROR, "elect: session expired");
    }
    if (rc < 0) {
        int u = cairn_resign(c, &k, ctl_deadline(x), NULL);
        rc = u != 0 ? ctl_fail_call(x, c, u, CTL_EXIT_ERROR) : 0;
    }
    cairn_leader_key_free(&k);
    session_close(&s);
    return rc;
}

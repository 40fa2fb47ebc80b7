/*
 * keeper.c - a lease kept alive by a background thread: what etcd's Go
 * client calls a session (concurrency.NewSession) and what lock and
 * election need from their caller (cairn.h, "lock, election").
 *
 * The thread owns a client of its own, made from the caller's client's
 * options at start (calls on one client run one at a time, so keep-alives
 * on the caller's would wait behind its blocking lock or campaign). It
 * renews every ttl/3 (at least KEEPER_MIN_MS apart) with one LeaseKeepAlive
 * exchange whose deadline is the next renewal. The server's answer is the
 * lease's TTL: > 0 renewed (RENEWED is reported when it follows a failed
 * renewal), 0 the lease is gone (LOST, the thread ends). A failed exchange
 * (no endpoint, timeout) reports UNREACHABLE once and retries every
 * KEEPER_RETRY_MS; once the lease's TTL has passed since the last answered
 * renewal the lease may be gone server-side too, so the keeper reports
 * LOST and ends, as clientv3 closes its keep-alive channel then. The
 * waits are on a CLOCK_MONOTONIC condition, so a process paused (SIGSTOP)
 * longer than the TTL renews at once on SIGCONT and learns the truth.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "sdk/client_int.h"

#define KEEPER_MIN_MS   300
#define KEEPER_RETRY_MS 500

struct cairn_keeper {
    pthread_mutex_t mu; /* everything below */
    pthread_cond_t cv;
    pthread_t thr;
    bool stop;
    bool done;              /* the thread ended (LOST) */
    struct cairn_client *c; /* the thread's own */
    int64_t lease;
    int64_t ttl_s;       /* granted */
    int64_t last_ttl;    /* of the last answer; 0 once lost */
    uint64_t last_ok_ns; /* when the last answered renewal was sent */
    uint64_t renewals;
    cairn_keeper_cb cb;
    void *cb_arg;
};

static void deadline_after_ms(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void report(struct cairn_keeper *k, enum cairn_keeper_event ev,
                   int64_t ttl, int err)
{
    if (k->cb != NULL) {
        k->cb(k->cb_arg, ev, k->lease, ttl, err);
    }
}

static void *keeper_thread(void *arg)
{
    struct cairn_keeper *k = arg;
    bool unreachable = false;
    int64_t period_ms = k->ttl_s * 1000 / 3;
    if (period_ms < KEEPER_MIN_MS) {
        period_ms = KEEPER_MIN_MS;
    }
    int64_t wait_ms = period_ms;
    for (;;) {
        pthread_mutex_lock(&k->mu);
        if (!k->stop) {
            struct timespec ts;
            deadline_after_ms(&ts, wait_ms);
            (void)pthread_cond_timedwait(&k->cv, &k->mu, &ts);
        }
        bool stop = k->stop;
        pthread_mutex_unlock(&k->mu);
        if (stop) {
            return NULL;
        }
        int64_t ttl = 0;
        uint64_t sent = cairn__now_ns();
        int rc =
            cairn_lease_keepalive_once(k->c, k->lease, period_ms, &ttl, NULL);
        pthread_mutex_lock(&k->mu);
        if (rc == 0 && ttl > 0) {
            k->last_ttl = ttl;
            k->last_ok_ns = sent;
            k->renewals++;
        } else if (rc == 0 || rc == CAIRN_E_LEASE_NOT_FOUND) {
            k->last_ttl = 0;
            k->done = true;
        }
        bool expired =
            rc != 0 && rc != CAIRN_E_LEASE_NOT_FOUND &&
            cairn__now_ns() - k->last_ok_ns >= (uint64_t)k->ttl_s * 1000000000u;
        if (expired) {
            k->last_ttl = 0;
            k->done = true;
        }
        bool done = k->done;
        pthread_mutex_unlock(&k->mu);
        if (done) {
            report(k, CAIRN_KEEPER_LOST, 0, rc);
            return NULL;
        }
        if (rc == 0) {
            if (unreachable) {
                unreachable = false;
                report(k, CAIRN_KEEPER_RENEWED, ttl, 0);
            }
            wait_ms = period_ms;
        } else {
            if (!unreachable) {
                unreachable = true;
                report(k, CAIRN_KEEPER_UNREACHABLE, 0, rc);
            }
            wait_ms = KEEPER_RETRY_MS;
        }
    }
}

/* A client with c's options (endpoints, user, timeouts, TLS: it shares
 * c's OpenSSL context, since c keeps no file names). */
static int client_like(struct cairn_client *c, struct cairn_client **out)
{
    struct cairn_options o;
    cairn_options_init(&o);
    o.endpoints = (const char *const *)c->endpoints;
    o.endpoints_count = c->endpoints_count;
    o.user = c->user;
    o.password = c->password;
    o.dial_timeout_ms = c->dial_timeout_ms;
    o.timeout_ms = c->timeout_ms;
    o.recv_bytes_max = c->recv_bytes_max;
    int rc = cairn_client_new(&o, out);
    if (rc != 0) {
        return rc;
    }
    cairn__tls_free(&(*out)->tls);
    rc = cairn__tls_copy(&(*out)->tls, &c->tls);
    if (rc != 0) {
        cairn_client_free(*out);
        *out = NULL;
    }
    return rc;
}

CAIRN_EXPORT int cairn_keeper_new(struct cairn_client *c, int64_t lease,
                                  int64_t ttl_s, cairn_keeper_cb cb,
                                  void *cb_arg, struct cairn_keeper **out)
{
    if (c == NULL || out == NULL || lease < 0 || ttl_s < 0 ||
        ttl_s > CAIRN_KEEPER_TTL_MAX || (lease != 0 && ttl_s == 0)) {
        return CAIRN_E_INVALID;
    }
    *out = NULL;
    struct cairn_keeper *k = mem_calloc(1, sizeof(*k));
    if (k == NULL) {
        return CAIRN_E_NOMEM;
    }
    pthread_mutex_lock(&c->mu);
    int rc = client_like(c, &k->c);
    pthread_mutex_unlock(&c->mu);
    if (rc != 0) {
        mem_free(k);
        return rc;
    }
    k->ttl_s = ttl_s != 0 ? ttl_s : 60;
    k->cb = cb;
    k->cb_arg = cb_arg;
    k->lease = lease;
    k->last_ttl = k->ttl_s;
    if (lease == 0) {
        /* a session of its own: grant it on the keeper's client */
        struct cairn_lease_grant_resp g;
        rc = cairn_lease_grant(k->c, k->ttl_s, 0, 0, &g);
        if (rc != 0) {
            pthread_mutex_lock(&c->mu);
            (void)cairn__fail(c, rc, cairn_client_grpc_code(k->c), "%s",
                              cairn_client_errmsg(k->c));
            pthread_mutex_unlock(&c->mu);
            cairn_client_free(k->c);
            mem_free(k);
            return rc;
        }
        k->lease = g.id;
        k->ttl_s = g.ttl;
        k->last_ttl = g.ttl;
    }
    k->last_ok_ns = cairn__now_ns();
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&k->mu, NULL);
    if (pthread_create(&k->thr, NULL, keeper_thread, k) != 0) {
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        cairn_client_free(k->c);
        mem_free(k);
        return CAIRN_E_NOMEM;
    }
    *out = k;
    return 0;
}

CAIRN_EXPORT int64_t cairn_keeper_lease(struct cairn_keeper *k)
{
    return k != NULL ? k->lease : 0;
}

CAIRN_EXPORT int64_t cairn_keeper_ttl(struct cairn_keeper *k,
                                      uint64_t *renewals)
{
    if (k == NULL) {
        return 0;
    }
    pthread_mutex_lock(&k->mu);
    int64_t ttl = k->last_ttl;
    if (renewals != NULL) {
        *renewals = k->renewals;
    }
    pthread_mutex_unlock(&k->mu);
    return ttl;
}

CAIRN_EXPORT void cairn_keeper_free(struct cairn_keeper *k, bool revoke)
{
    if (k == NULL) {
        return;
    }
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thr, NULL);
    if (revoke && !k->done) {
        (void)cairn_lease_revoke(k->c, k->lease, 0, NULL);
    }
    cairn_client_free(k->c);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    mem_free(k);
}

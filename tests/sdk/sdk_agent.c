/*
 * sdk_agent.c - one libcairn client role per process, for the failover
 * and cache tests (the tests/sdk .test scripts), which kill, stop and restart
 * the servers around it and read what it prints.
 *
 *   sdk-agent watch EPS PREFIX REV SECONDS
 *       watch PREFIX from revision REV (0: now) until the key PREFIX"end"
 *       is seen (exit 0) or SECONDS pass (exit 1). Prints
 *       "E <mod_rev> PUT|DELETE <key> <value>" per event, "endpoint <ep>"
 *       first and whenever the connection moved, "resumes <n>" at the end.
 *   sdk-agent write EPS PREFIX COUNT INTERVAL_MS
 *       puts PREFIX<i> = v<i> for i < COUNT, then PREFIX"end"; prints
 *       "ok <i> <rev>" or "fail <i> <error>" (a failed put is not retried:
 *       it may have been applied; the server's history is the reference).
 *   sdk-agent register EPS NS SVC ID TTL
 *       a registration (cairn_register); prints "registered session=<s>"
 *       and each session event "session: lost|renewed|reregistered";
 *       SIGTERM ends the session and exits 0.
 *   sdk-agent discover EPS NS SVC
 *       a discovery cache; prints "instances: <n> <id,id,...>" after each
 *       change; SIGTERM exits 0.
 *   sdk-agent config-get EPS NS APP NAME CACHE_DIR
 *       one cairn_config_get with the local cache; prints
 *       "release version=<v> stale=<0|1> content=<first line>" or
 *       "error <text>" (exit 1).
 *   sdk-agent config-watch EPS NS APP NAME CACHE_DIR
 *       cairn_config_watch_new; prints the same line per release;
 *       SIGTERM exits 0.
 *   sdk-agent keepalive EPS KEY TTL
 *       grants a lease of TTL s, puts KEY under it, then renews it with
 *       cairn_lease_keepalive_once every TTL/3 s; prints "lease <id hex>",
 *       "ka ok <ttl>" or "ka fail <error>" per renewal; SIGTERM revokes
 *       nothing (the lease runs out by itself) and exits 0.
 *   sdk-agent many EPS NS N
 *       one client, freed at once, with N discovery caches (services
 *       s0..s<N-1>) and N config watches (app a, names c0..c<N-1>), all on
 *       the client's one /api/v1/stream socket; prints "ready <2N>" once
 *       every cache has its snapshot and every watch is connected, then
 *       "instances s<k>: <n> <ids>" and "release c<k> version=<v>" per
 *       change; SIGTERM frees them all and exits 0.
 * EPS is a comma-separated endpoint list, tried in order. Each line is
 * flushed as printed, and every line is prefixed with the milliseconds
 * since the agent started ("<ms> "), so a script can time what it sees.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cairn.h>

static volatile sig_atomic_t stopping;
static struct timespec t0; /* set once in main, read-only after */

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void say(const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long ms =
        (ts.tv_sec - t0.tv_sec) * 1000 + (ts.tv_nsec - t0.tv_nsec) / 1000000;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    printf("%ld %s\n", ms, line);
    fflush(stdout);
}

static int client(char *eps, struct cairn_client **out)
{
    const char *list[CAIRN_ENDPOINTS_MAX];
    size_t n = 0;
    for (char *save = NULL, *p = strtok_r(eps, ",", &save);
         p != NULL && n < CAIRN_ENDPOINTS_MAX; p = strtok_r(NULL, ",", &save)) {
        list[n++] = p;
    }
    struct cairn_options o;
    cairn_options_init(&o);
    o.endpoints = list;
    o.endpoints_count = n;
    o.dial_timeout_ms = 500;
    o.timeout_ms = 3000;
    int rc = cairn_client_new(&o, out);
    if (rc != 0) {
        say("error client %s", cairn_strerror(rc));
    }
    return rc;
}

static void wait_signal(void)
{
    struct sigaction act = {.sa_handler = on_signal};
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    while (!stopping) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int do_watch(char *eps, const char *prefix, int64_t rev, int secs)
{
    struct cairn_client *c;
    if (client(eps, &c) != 0) {
        return 2;
    }
    uint8_t end[512];
    size_t pl = strlen(prefix);
    struct cairn_watch_req wq = {
        .key = (const uint8_t *)prefix,
        .key_len = pl,
        .range_end = end,
        .range_end_len = cairn_prefix_end((const uint8_t *)prefix, pl, end),
        .start_revision = rev};
    struct cairn_watch *w;
    int rc = cairn_watch_open(c, &wq, 5000, &w);
    if (rc != 0) {
        say("error open %s: %s", cairn_strerror(rc), cairn_client_errmsg(c));
        cairn_client_free(c);
        return 1;
    }
    char ep[256];
    snprintf(ep, sizeof(ep), "%s", cairn_client_endpoint(c));
    say("endpoint %s", ep);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    time_t until = now.tv_sec + secs;
    int done = 0;
    while (!done) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec >= until) {
            break;
        }
        struct cairn_watch_resp wr;
        rc = cairn_watch_next(w, (until - now.tv_sec) * 1000, &wr);
        if (rc == CAIRN_E_TIMEOUT) {
            continue;
        }
        if (rc != 0) {
            say("error next %s: %s", cairn_strerror(rc),
                cairn_client_errmsg(c));
            break;
        }
        if (strcmp(ep, cairn_client_endpoint(c)) != 0) {
            snprintf(ep, sizeof(ep), "%s", cairn_client_endpoint(c));
            say("endpoint %s", ep);
        }
        for (size_t i = 0; i < wr.events_count; i++) {
            const struct cairn_kv *kv = &wr.events[i].kv;
            say("E %" PRId64 " %s %.*s %.*s", kv->mod_revision,
                wr.events[i].type == CAIRN_EVENT_PUT ? "PUT" : "DELETE",
                (int)kv->key_len, (const char *)kv->key, (int)kv->value_len,
                kv->value != NULL ? (const char *)kv->value : "");
            if (kv->key_len == pl + 3 && !memcmp(kv->key, prefix, pl) &&
                !memcmp(kv->key + pl, "end", 3)) {
                done = 1;
            }
        }
        cairn_watch_resp_free(&wr);
    }
    say("resumes %" PRIu64, cairn_watch_resumes(w));
    cairn_watch_close(w);
    cairn_client_free(c);
    return done ? 0 : 1;
}

static int do_write(char *eps, const char *prefix, int count, int interval_ms)
{
    struct cairn_client *c;
    if (client(eps, &c) != 0) {
        return 2;
    }
    for (int i = 0; i <= count; i++) {
        char k[512], v[64];
        if (i < count) {
            snprintf(k, sizeof(k), "%s%06d", prefix, i);
        } else {
            snprintf(k, sizeof(k), "%send", prefix);
        }
        snprintf(v, sizeof(v), "v%d", i);
        struct cairn_put_req pr = {.key = (const uint8_t *)k,
                                   .key_len = strlen(k),
                                   .value = (const uint8_t *)v,
                                   .value_len = strlen(v)};
        struct cairn_put_resp resp;
        int rc = cairn_put(c, &pr, 3000, &resp);
        if (rc == 0) {
            say("ok %d %" PRId64, i, resp.header.revision);
        } else {
            say("fail %d %s", i, cairn_strerror(rc));
            if (i == count) {
                i--; /* the end marker must land: try it again */
            }
        }
        cairn_put_resp_free(&resp);
        struct timespec ts = {interval_ms / 1000,
                              (interval_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    cairn_client_free(c);
    return 0;
}

static int do_keepalive(char *eps, const char *key, int ttl)
{
    struct cairn_client *c;
    if (client(eps, &c) != 0) {
        return 2;
    }
    struct cairn_lease_grant_resp g;
    int rc = cairn_lease_grant(c, ttl, 0, 3000, &g);
    struct cairn_put_req pr = {.key = (const uint8_t *)key,
                               .key_len = strlen(key),
                               .value = (const uint8_t *)"alive",
                               .value_len = 5,
                               .lease = g.id};
    struct cairn_put_resp resp;
    if (rc == 0) {
        rc = cairn_put(c, &pr, 3000, &resp);
        cairn_put_resp_free(&resp);
    }
    if (rc != 0) {
        say("error %s: %s", cairn_strerror(rc), cairn_client_errmsg(c));
        cairn_client_free(c);
        return 1;
    }
    say("lease %" PRIx64, (uint64_t)g.id);
    struct sigaction act = {.sa_handler = on_signal};
    sigaction(SIGTERM, &act, NULL);
    while (!stopping) {
        int64_t left = -1;
        rc = cairn_lease_keepalive_once(c, g.id, 1000, &left, NULL);
        if (rc == 0) {
            say("ka ok %" PRId64, left);
        } else {
            say("ka fail %s", cairn_strerror(rc));
        }
        for (int i = 0; i < ttl * 1000 / 3 / 50 && !stopping; i++) {
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    cairn_client_free(c);
    return 0;
}

static void on_session(void *arg, enum cairn_session_event ev, int err,
                       const char *session)
{
    (void)arg;
    say("session: %s session=%s err=%s",
        ev == CAIRN_SESSION_LOST      ? "lost"
        : ev == CAIRN_SESSION_RENEWED ? "renewed"
                                      : "reregistered",
        session, err != 0 ? cairn_strerror(err) : "none");
}

static int do_register(char *eps, const char *ns, const char *svc,
                       const char *id, int ttl)
{
    struct cairn_client *c;
    if (client(eps, &c) != 0) {
        return 2;
    }
    struct cairn_registration_options ro = {.ttl_s = ttl, .cb = on_session};
    struct cairn_registration *r;
    int rc = cairn_registration_new(c, &ro, &r);
    cairn_client_free(c);
    if (rc != 0) {
        say("error session %s", cairn_strerror(rc));
        return 1;
    }
    struct cairn_instance_spec spec = {.ns = ns,
                                       .service = svc,
                                       .id = id,
                                       .addr = "127.0.0.1:9",
                                       .weight = -1};
    rc = cairn_register(r, &spec);
    if (rc != 0) {
        say("error register %s: %s", cairn_strerror(rc),
            cairn_registration_errmsg(r));
        cairn_registration_free(r, true);
        return 1;
    }
    char s[64] = "";
    cairn_registration_session(r, s, sizeof(s), NULL);
    say("registered session=%s", s);
    wait_signal();
    uint64_t n = 0;
    cairn_registration_session(r, s, sizeof(s), &n);
    say("stopping session=%s reregistrations=%" PRIu64, s, n);
    cairn_registration_free(r, true);
    return 0;
}

static void on_list(void *arg, const struct cairn_instance_list *l)
{
    (void)arg;
    char ids[800] = "";
    size_t off = 0;
    for (size_t i = 0; i < l->count && off < sizeof(ids) - 200; i++) {
        off += (size_t)snprintf(ids + off, sizeof(ids) - off, "%s%s",
                                i > 0 ? "," : "", l->items[i].id);
    }
    say("instances: %zu %s rev=%" PRId64, l->count, ids, l->revision);
}

static int do_discover(char *eps, const char *ns, const char *svc)
{
    struct cairn_client *c;
    if (client(eps, &c) != 0) {
        return 2;
    }
    struct cairn_discovery *d;
    int rc = cairn_discovery_new(c, ns, svc, on_list, NULL, 5000, &d);
    cairn_client_free(c);
    if (rc != 0) {
        say("error discovery %s", cairn_strerror(rc));
        return 1;
    }
    wait_signal();
    cairn_discovery_free(d);
    return 0;
}

static void print_release(const struct cairn_config_release *r)
{
    const char *nl = strchr(r->content, '\n');
    int n = nl != NULL ? (int)(nl - r->content) : (int)r->content_len;
    say("release version=%" PRId64 " stale=%d content=%.*s", r->version,
        r->stale ? 1 : 0, n, r->content);
}

static void on_release(void *arg, const struct cairn_config_release *r)
{
    (void)arg;
    print_release(r);
}

static int do_config(int watch, char *eps, const char *ns, const char *app,
                     const char *name, const char *cache)
{
    struct cairn_client *c;
    if (client(eps, &c) != 0) {
        return 2;
    }
    struct cairn_config_req req = {.ns = ns,
                                   .app = app,
                                   .name = name,
                                   .client_id = "sdk-agent",
                                   .cache_dir = cache};
    int rc;
    if (!watch) {
        struct cairn_config_release rel;
        rc = cairn_config_get(c, &req, 3000, &rel);
        if (rc == 0) {
            print_release(&rel);
            cairn_config_release_free(&rel);
        } else {
            say("error %s: %s", cairn_strerror(rc), cairn_client_errmsg(c));
        }
        cairn_client_free(c);
        return rc == 0 ? 0 : 1;
    }
    struct cairn_config_watch *w;
    rc = cairn_config_watch_new(c, &req, on_release, NULL, &w);
    cairn_client_free(c);
    if (rc != 0) {
        say("error watch %s", cairn_strerror(rc));
        return 1;
    }
    wait_signal();
    cairn_config_watch_free(w);
    return 0;
}

static void on_many_list(void *arg, const struct cairn_instance_list *l)
{
    char ids[800] = "";
    size_t off = 0;
    for (size_t i = 0; i < l->count && off < sizeof(ids) - 200; i++) {
        off += (size_t)snprintf(ids + off, sizeof(ids) - off, "%s%s",
                                i > 0 ? "," : "", l->items[i].id);
    }
    say("instances s%d: %zu %s", (int)(intptr_t)arg, l->count, ids);
}

static void on_many_release(void *arg, const struct cairn_config_release *r)
{
    say("release c%d version=%" PRId64 " stale=%d", (int)(intptr_t)arg,
        r->version, r->stale ? 1 : 0);
}

static int do_many(char *eps, const char *ns, int n)
{
    struct cairn_client *c;
    if (n < 1 || n > 100 || client(eps, &c) != 0) {
        return 2;
    }
    struct cairn_discovery *d[100] = {0};
    struct cairn_config_watch *w[100] = {0};
    char names[100][16];
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char svc[16];
        snprintf(svc, sizeof(svc), "s%d", i);
        rc = cairn_discovery_new(c, ns, svc, on_many_list, (void *)(intptr_t)i,
                                 5000, &d[i]);
        if (rc != 0) {
            say("error discovery %s", cairn_strerror(rc));
            break;
        }
        snprintf(names[i], sizeof(names[i]), "c%d", i);
        struct cairn_config_req req = {
            .ns = ns, .app = "a", .name = names[i], .client_id = "many"};
        rc = cairn_config_watch_new(c, &req, on_many_release,
                                    (void *)(intptr_t)i, &w[i]);
        if (rc != 0) {
            say("error watch %s", cairn_strerror(rc));
        }
    }
    cairn_client_free(c); /* the caches and watches outlive it */
    for (int t = 0; rc == 0 && t < 100; t++) {
        int up = 0;
        for (int i = 0; i < n; i++) {
            up += cairn_discovery_connected(d[i]) ? 1 : 0;
            up += cairn_config_watch_connected(w[i]) ? 1 : 0;
        }
        if (up == 2 * n) {
            say("ready %d", up);
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (rc == 0) {
        wait_signal();
    }
    for (int i = 0; i < n; i++) {
        cairn_discovery_free(d[i]);
        cairn_config_watch_free(w[i]);
    }
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    clock_gettime(CLOCK_MONOTONIC, &t0);
    signal(SIGPIPE, SIG_IGN);
    const char *m = argc > 1 ? argv[1] : "";
    if (!strcmp(m, "watch") && argc == 6) {
        return do_watch(argv[2], argv[3], atoll(argv[4]), atoi(argv[5]));
    }
    if (!strcmp(m, "write") && argc == 6) {
        return do_write(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
    }
    if (!strcmp(m, "keepalive") && argc == 5) {
        return do_keepalive(argv[2], argv[3], atoi(argv[4]));
    }
    if (!strcmp(m, "register") && argc == 7) {
        return do_register(argv[2], argv[3], argv[4], argv[5], atoi(argv[6]));
    }
    if (!strcmp(m, "discover") && argc == 5) {
        return do_discover(argv[2], argv[3], argv[4]);
    }
    if (!strcmp(m, "config-get") && argc == 7) {
        return do_config(0, argv[2], argv[3], argv[4], argv[5], argv[6]);
    }
    if (!strcmp(m, "config-watch") && argc == 7) {
        return do_config(1, argv[2], argv[3], argv[4], argv[5], argv[6]);
    }
    if (!strcmp(m, "many") && argc == 5) {
        return do_many(argv[2], argv[3], atoi(argv[4]));
    }
    fprintf(stderr, "usage: see the top of tests/sdk/sdk_agent.c\n");
    return 2;
}

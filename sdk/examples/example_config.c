/*
 * example_config.c - a config subscriber that prints each new release.
 *
 *   example-config <endpoint> <ns> <app> <name> <cache_dir> [client_id]
 *                  [labels]
 *
 * Each release prints "release version=N stale=0|1 gray=0|1 sha256=..
 * content=<first line>"; libcairn acknowledges it once the callback
 * returns. With no server reachable at start, the last release from
 * cache_dir is printed with stale=1, and printed again with stale=0 once
 * the server answers. Runs until SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cairn.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void on_release(void *arg, const struct cairn_config_release *r)
{
    (void)arg;
    int n = (int)strcspn(r->content, "\n");
    printf("release version=%lld stale=%d gray=%d sha256=%.12s content=%.*s\n",
           (long long)r->version, r->stale, r->gray, r->sha256, n, r->content);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr,
                "usage: %s endpoint ns app name cache_dir [client_id] "
                "[labels]\n",
                argv[0]);
        return 2;
    }
    const char *ep = argv[1];
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction act = {.sa_handler = on_signal};
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);

    struct cairn_options opt;
    cairn_options_init(&opt);
    opt.endpoints = &ep;
    opt.endpoints_count = 1;
    struct cairn_client *c;
    int rc = cairn_client_new(&opt, &c);
    if (rc != 0) {
        fprintf(stderr, "client: %s\n", cairn_strerror(rc));
        return 1;
    }
    struct cairn_config_req req = {.ns = argv[2],
                                   .app = argv[3],
                                   .name = argv[4],
                                   .cache_dir = argv[5],
                                   .client_id = argc > 6 ? argv[6] : NULL,
                                   .labels = argc > 7 ? argv[7] : NULL};
    struct cairn_config_watch *w;
    rc = cairn_config_watch_new(c, &req, on_release, NULL, &w);
    cairn_client_free(c);
    if (rc != 0) {
        fprintf(stderr, "watch: %s\n", cairn_strerror(rc));
        return 1;
    }
    while (!stopping) {
        usleep(100000);
    }
    cairn_config_watch_free(w);
    return 0;
}

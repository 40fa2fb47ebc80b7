/*
 * example_client.c - a client that discovers a service through libcairn's
 * discovery cache (pushed changes, no polling) and calls it.
 *
 *   example-client <endpoint> <ns> <service> [calls] [interval_ms] [zone]
 *
 * Prints "instances: N id,id,.." after each change the stream pushes, and
 * "call <id> <addr>: <reply>" for each call (round robin, or zone-first
 * when a zone is given); "call: no instance" when none is usable.
 * calls 0 (the default) calls until SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cairn.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void on_change(void *arg, const struct cairn_instance_list *l)
{
    (void)arg;
    printf("instances: %zu", l->count);
    for (size_t i = 0; i < l->count; i++) {
        printf("%s%s", i == 0 ? " " : ",", l->items[i].id);
    }
    printf(" (revision %lld)\n", (long long)l->revision);
    fflush(stdout);
}

/* Connects to host:port and reads one line. */
static int call(const char *addr, char *out, size_t n)
{
    char host[CAIRN_NAME_MAX * 2 + 8];
    snprintf(host, sizeof(host), "%s", addr);
    char *colon = strrchr(host, ':');
    if (colon == NULL) {
        return -1;
    }
    *colon = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 1};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    ssize_t r = read(fd, out, n - 1);
    close(fd);
    if (r <= 0) {
        return -1;
    }
    out[r] = 0;
    out[strcspn(out, "\n")] = 0;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr,
                "usage: %s endpoint ns service [calls] [interval_ms] [zone]\n",
                argv[0]);
        return 2;
    }
    const char *ep = argv[1];
    long calls = argc > 4 ? atol(argv[4]) : 0;
    long interval = argc > 5 ? atol(argv[5]) : 200;
    const char *zone = argc > 6 ? argv[6] : NULL;
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
    struct cairn_discovery *d;
    rc = cairn_discovery_new(c, argv[2], argv[3], on_change, NULL, 5000, &d);
    cairn_client_free(c);
    if (rc != 0) {
        fprintf(stderr, "discovery: %s\n", cairn_strerror(rc));
        return 1;
    }
    for (long i = 0; !stopping && (calls == 0 || i < calls); i++) {
        struct cairn_instance in;
        rc = cairn_pick(
            d, zone != NULL ? CAIRN_PICK_ZONE_FIRST : CAIRN_PICK_ROUND_ROBIN,
            zone, &in);
        char reply[256];
        if (rc != 0) {
            printf("call: no instance (%s)\n", cairn_strerror(rc));
        } else if (call(in.addr, reply, sizeof(reply)) != 0) {
            printf("call %s %s: failed\n", in.id, in.addr);
        } else {
            printf("call %s %s: %s\n", in.id, in.addr, reply);
        }
        struct timespec ts = {interval / 1000, (interval % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    cairn_discovery_free(d);
    return 0;
}

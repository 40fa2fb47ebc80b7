/*
 * example_service.c - a service that registers itself with Cairn and
 * serves: every TCP connection gets one line "hello from <id>\n".
 *
 *   example-service <endpoint> <ns> <service> <id> <port> [zone] [ttl_s]
 *
 * It keeps its session alive through libcairn's registration (a
 * background thread); when the session expired anyway (the process was
 * paused longer than the TTL) the library registers it again and this
 * program prints "session: reregistered ...". SIGTERM or SIGINT ends the
 * session (deregistering the instance) and exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <cairn.h>

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void on_session(void *arg, enum cairn_session_event ev, int err,
                       const char *session)
{
    (void)arg;
    const char *what = ev == CAIRN_SESSION_LOST      ? "lost"
                       : ev == CAIRN_SESSION_RENEWED ? "renewed"
                                                     : "reregistered";
    printf("session: %s session=%s err=%s\n", what, session,
           err != 0 ? cairn_strerror(err) : "none");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: %s endpoint ns service id port [zone] [ttl]\n",
                argv[0]);
        return 2;
    }
    const char *ep = argv[1], *id = argv[4];
    int port = atoi(argv[5]);
    const char *zone = argc > 6 ? argv[6] : NULL;
    int64_t ttl = argc > 7 ? atoll(argv[7]) : 10;
    setvbuf(stdout, NULL, _IOLBF, 0);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (port <= 0 || port > 65535 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(lfd, 16) != 0) {
        fprintf(stderr, "listen on port %s: %s\n", argv[5], strerror(errno));
        return 1;
    }

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
    struct cairn_registration_options ro = {
        .ttl_s = ttl, .cb = on_session, .cb_arg = NULL};
    struct cairn_registration *reg;
    rc = cairn_registration_new(c, &ro, &reg);
    cairn_client_free(c); /* the registration copied the endpoints */
    if (rc != 0) {
        fprintf(stderr, "session: %s\n", cairn_strerror(rc));
        return 1;
    }
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    struct cairn_instance_spec spec = {.ns = argv[2],
                                       .service = argv[3],
                                       .id = id,
                                       .addr = addr,
                                       .weight = -1,
                                       .zone = zone,
                                       .labels_json = "{\"example\":\"yes\"}"};
    rc = cairn_register(reg, &spec);
    if (rc != 0) {
        fprintf(stderr, "register: %s: %s\n", cairn_strerror(rc),
                cairn_registration_errmsg(reg));
        cairn_registration_free(reg, true);
        return 1;
    }
    char sess[40] = "";
    cairn_registration_session(reg, sess, sizeof(sess), NULL);
    printf("registered %s/%s/%s at %s session=%s\n", argv[2], argv[3], id, addr,
           sess);

    struct sigaction act = {.sa_handler = on_signal};
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    signal(SIGPIPE, SIG_IGN);
    while (!stopping) {
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) {
            continue;
        }
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        char line[256];
        int n = snprintf(line, sizeof(line), "hello from %s\n", id);
        if (write(fd, line, (size_t)n) < 0) {
            /* the caller went away: nothing to do */
        }
        close(fd);
    }
    cairn_registration_free(reg, true);
    close(lfd);
    printf("stopped\n");
    return 0;
}

/*
 * tls_peer.c - the peer port's two SSL_CTXs from etcd's --peer-* flags.
 *
 * etcd 3.4 uses one TLSInfo for both ends of a peer connection
 * (pkg/transport): the listener serves --peer-cert-file/--peer-key-file
 * and, when --peer-client-cert-auth or --peer-trusted-ca-file is given,
 * requires a client certificate signed by a CA in that file (checked
 * against --peer-crl-file); the dialler presents the same certificate and
 * verifies the peer's against --peer-trusted-ca-file (the system roots
 * without it) and the host of the peer URL. So the files must carry both
 * serverAuth and clientAuth in their extended key usage, or none.
 *
 * --peer-auto-tls, when no files are given, makes a self-signed ECDSA
 * certificate for the hosts of --listen-peer-urls in
 * data-dir/fixtures/peer/{cert,key}.pem (kept and reused on restart, as
 * etcd's transport.SelfCert does) and skips verification in both
 * directions, as etcd does (its self-cert TLSInfo replaces the whole peer
 * TLSInfo, so --peer-client-cert-auth and --peer-trusted-ca-file no longer
 * apply; we warn). Given files win over --peer-auto-tls (etcd's "ignoring
 * peer auto TLS since certs given").
 *
 * Reload: SIGHUP, or a change of one of the files (polled each second, as
 * on the client port), builds both contexts again and hands them to the
 * transport for the connections made from then on; established peer
 * connections keep theirs, so Raft streams are not dropped. Files that do
 * not load keep the contexts in use and the log says why.
 *
 * The SSL records themselves run in consensus/transport (transport_tls.c),
 * which takes references to these contexts; this file only reads flags and
 * files, at start, before anything listens.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/node/node.h"
#include "registry/server/options.h"
#include "registry/server/server.h"
#include "registry/server/tls_int.h"

static bool set(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static bool urls_https(const struct options_urls *u)
{
    for (size_t i = 0; i < u->count; i++) {
        if (strncmp(u->urls[i], "https://", 8) == 0) {
            return true;
        }
    }
    return false;
}

static SSL_CTX *ctx_new(bool server)
{
    SSL_CTX *ctx =
        SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL) {
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (server) {
        /* peers never resume sessions: no tickets after the handshake */
        SSL_CTX_set_num_tickets(ctx, 0);
    }
    return ctx;
}

static int mkdir_one(const char *dir, char *msg, size_t msg_len)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(msg, msg_len, "--peer-auto-tls: cannot create %s: %s", dir,
                 strerror(errno));
        return ERR_INVALID;
    }
    return 0;
}

/* Write a new self-signed pair to cert/key (key 0600). */
static int self_cert_write(const struct options *o, const char *cert,
                           const char *key, char *msg, size_t msg_len)
{
    char san[1024];
    char why[128];
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    FILE *fc = NULL;
    FILE *fk = NULL;
    int fd;
    int ok;
    server__tls_san_from_urls(&o->listen_peer_urls, san, sizeof(san));
    if (server__tls_self_cert(san, "serverAuth,clientAuth", &x, &k) != 0) {
        snprintf(msg, msg_len, "--peer-auto-tls: cannot make a certificate: %s",
                 server__tls_err(why, sizeof(why), "OpenSSL failed"));
        return ERR_INVALID;
    }
    fd = open(key, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    fk = fd >= 0 ? fdopen(fd, "w") : NULL;
    fc = fopen(cert, "w");
    ok = fk != NULL && fc != NULL &&
         PEM_write_PrivateKey(fk, k, NULL, NULL, 0, NULL, NULL) == 1 &&
         PEM_write_X509(fc, x) == 1;
    if (fk != NULL) {
        ok = fclose(fk) == 0 && ok;
    } else if (fd >= 0) {
        close(fd);
    }
    if (fc != NULL) {
        ok = fclose(fc) == 0 && ok;
    }
    X509_free(x);
    EVP_PKEY_free(k);
    ERR_clear_error();
    if (!ok) {
        snprintf(msg, msg_len, "--peer-auto-tls: cannot write %s and %s: %s",
                 cert, key, strerror(errno != 0 ? errno : EIO));
        return ERR_INVALID;
    }
    LOGI("server",
         "--peer-auto-tls: made a self-signed certificate for %s "
         "in %s",
         san, cert);
    return 0;
}

/* data-dir/fixtures/peer/{cert,key}.pem: reused when both exist. */
static int self_cert_files(const struct options *o, char *cert, char *key,
                           size_t len, char *msg, size_t msg_len)
{
    char dir[1024];
    int rc;
    snprintf(dir, sizeof(dir), "%s", o->data_dir);
    rc = mkdir_one(dir, msg, msg_len);
    snprintf(dir, sizeof(dir), "%s/fixtures", o->data_dir);
    rc = rc != 0 ? rc : mkdir_one(dir, msg, msg_len);
    snprintf(dir, sizeof(dir), "%s/fixtures/peer", o->data_dir);
    rc = rc != 0 ? rc : mkdir_one(dir, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    snprintf(cert, len, "%s/cert.pem", dir);
    snprintf(key, len, "%s/key.pem", dir);
    if (access(cert, R_OK) == 0 && access(key, R_OK) == 0) {
        LOGI("server", "--peer-auto-tls: using %s", cert);
        return 0;
    }
    return self_cert_write(o, cert, key, msg, msg_len);
}

/* Certificate and key (both contexts), then what each verifies. */
static int fill(SSL_CTX *srv, SSL_CTX *cli, const struct options *o,
                const char *cert, const char *key, bool self, char *msg,
                size_t msg_len)
{
    const struct options_tls *t = &o->peer_tls;
    int rc = 0;
    SSL_CTX *both[2] = {srv, cli};
    for (int i = 0; rc == 0 && i < 2 && cert != NULL; i++) {
        if (both[i] == NULL) {
            continue;
        }
        rc = server__tls_load_cert(both[i], "peer-", cert, msg, msg_len);
        if (rc == 0) {
            rc =
                server__tls_load_key(both[i], "peer-", key, cert, msg, msg_len);
        }
    }
    if (rc != 0 || self) {
        return rc; /* auto TLS: no verification either way */
    }
    if (set(t->trusted_ca_file)) {
        rc =
            server__tls_load_ca(cli, "peer-", t->trusted_ca_file, msg, msg_len);
        if (rc == 0 && srv != NULL) {
            rc = server__tls_load_ca(srv, "peer-", t->trusted_ca_file, msg,
                                     msg_len);
        }
    } else {
        (void)SSL_CTX_set_default_verify_paths(cli);
        if (srv != NULL && t->client_cert_auth) {
            (void)SSL_CTX_set_default_verify_paths(srv);
        }
    }
    SSL_CTX_set_verify(cli, SSL_VERIFY_PEER, NULL);
    if (rc == 0 && srv != NULL && set(t->crl_file)) {
        rc = server__tls_load_crl(srv, "peer-", t->crl_file, msg, msg_len);
    }
    if (rc == 0 && srv != NULL &&
        (t->client_cert_auth || set(t->trusted_ca_file))) {
        SSL_CTX_set_verify(
            srv, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return rc;
}

static int check_flags(const struct options *o, bool listen_tls, bool files,
                       char *msg, size_t msg_len)
{
    const struct options_tls *t = &o->peer_tls;
    if (set(t->cert_file) != set(t->key_file)) {
        snprintf(msg, msg_len,
                 "--peer-cert-file and --peer-key-file go together (%s given "
                 "alone)",
                 set(t->cert_file) ? "--peer-cert-file" : "--peer-key-file");
        return ERR_INVALID;
    }
    if (listen_tls && !files && !t->auto_tls) {
        /* etcd's message */
        snprintf(msg, msg_len,
                 "TLS key/cert (--peer-cert-file, --peer-key-file) must be "
                 "provided for peer url %s with HTTPS scheme",
                 o->listen_peer_urls.urls[0]);
        return ERR_INVALID;
    }
    if (!listen_tls && (files || t->client_cert_auth)) {
        LOGW("server", "peer scheme is HTTP while peer key and cert files or "
                       "--peer-client-cert-auth are set: the peer listener "
                       "stays plain (they are used to dial https:// peers)");
    }
    if (files && t->auto_tls) {
        LOGW("server", "ignoring peer auto TLS since certs given");
    }
    if (!files && t->auto_tls &&
        (t->client_cert_auth || set(t->trusted_ca_file))) {
        LOGW("server", "--peer-auto-tls: --peer-client-cert-auth and "
                       "--peer-trusted-ca-file do not apply to a "
                       "self-signed certificate (as in etcd); peers are "
                       "not verified");
    }
    return 0;
}

int server__peer_tls_new(const struct options *o, SSL_CTX **server_out,
                         SSL_CTX **client_out, char *msg, size_t msg_len)
{
    const struct options_tls *t = &o->peer_tls;
    bool listen_tls = urls_https(&o->listen_peer_urls);
    bool files = set(t->cert_file) && set(t->key_file);
    bool self = !files && t->auto_tls;
    char cert[1100];
    char key[1100];
    SSL_CTX *srv = NULL;
    SSL_CTX *cli = NULL;
    int rc;
    *server_out = NULL;
    *client_out = NULL;
    rc = check_flags(o, listen_tls, files, msg, msg_len);
    if (rc == 0 && self) {
        rc = self_cert_files(o, cert, key, sizeof(cert), msg, msg_len);
    } else if (rc == 0 && files) {
        snprintf(cert, sizeof(cert), "%s", t->cert_file);
        snprintf(key, sizeof(key), "%s", t->key_file);
    }
    if (rc != 0) {
        return rc;
    }
    cli = ctx_new(false);
    srv = listen_tls ? ctx_new(true) : NULL;
    if (cli == NULL || (listen_tls && srv == NULL)) {
        rc = -ENOMEM;
        snprintf(msg, msg_len, "peer TLS: cannot create a context");
    }
    if (rc == 0) {
        rc = fill(srv, cli, o, files || self ? cert : NULL,
                  files || self ? key : NULL, self, msg, msg_len);
    }
    for (int i = 0; rc == 0 && set(o->cipher_suites) && i < 2; i++) {
        SSL_CTX *c = i == 0 ? cli : srv;
        if (c != NULL) {
            rc = server__tls_set_suites(c, o->cipher_suites, msg, msg_len);
        }
    }
    if (rc != 0) {
        SSL_CTX_free(srv);
        SSL_CTX_free(cli);
        ERR_clear_error();
        return rc;
    }
    if (listen_tls || files || self) {
        LOGI("server",
             "PeerTLS: cert = %s, key = %s, trusted-ca = %s, "
             "client-cert-auth = %s, crl-file = %s, auto-tls = %s",
             files || self ? cert : "", files || self ? key : "",
             set(t->trusted_ca_file) && !self ? t->trusted_ca_file : "",
             t->client_cert_auth && !self ? "true" : "false",
             set(t->crl_file) ? t->crl_file : "", self ? "true" : "false");
    }
    *server_out = srv;
    *client_out = cli;
    return 0;
}

/* ------------------------------------------------------------ reload */

/* Files watched for a reload: cert, key, trusted CA, CRL. */
#define PEER_WATCH_FILES 4
#define PEER_POLL_MS     1000 /* as the client port's watch */
#define PEER_SETTLE_MS   500

struct peer_watch {
    struct server *s;
    uv_signal_t hup;
    uv_timer_t settle;
    uv_fs_poll_t polls[PEER_WATCH_FILES];
    unsigned polls_count;
    unsigned handles; /* not closed yet: the struct outlives them */
    bool stopped;
    uint64_t reloads_ok, reloads_failed;
};

/* The --peer-* files read again: new contexts for the peer connections
 * made from now on; open ones (Raft streams, a snapshot being sent) keep
 * theirs. Files that do not load keep the contexts in use; the log says
 * why. */
static void peer_reload(struct peer_watch *w, const char *why)
{
    char msg[512];
    SSL_CTX *srv = NULL;
    SSL_CTX *cli = NULL;
    if (w->stopped || w->s->node == NULL) {
        return;
    }
    int rc = server__peer_tls_new(w->s->opt, &srv, &cli, msg, sizeof(msg));
    if (rc == 0) {
        rc = node_peer_tls_set(w->s->node, srv, cli);
        snprintf(msg, sizeof(msg), "%s", err_str(rc));
    }
    SSL_CTX_free(srv); /* the transport took its own references */
    SSL_CTX_free(cli);
    if (rc != 0) {
        w->reloads_failed++;
        LOGE("server",
             "PeerTLS: %s: keeping the certificate and key in use, the new "
             "ones do not load: %s",
             why, msg);
        return;
    }
    w->reloads_ok++;
    LOGI("server",
         "PeerTLS: %s: certificate and key read again; new peer "
         "connections use them, open ones keep theirs",
         why);
}

static void peer_on_hup(uv_signal_t *h, int signum)
{
    (void)signum;
    peer_reload(h->data, "SIGHUP");
}

static void peer_on_settled(uv_timer_t *tm)
{
    peer_reload(tm->data, "a certificate file changed");
}

static void peer_on_file(uv_fs_poll_t *p, int status, const uv_stat_t *prev,
                         const uv_stat_t *curr)
{
    struct peer_watch *w = p->data;
    (void)status;
    (void)prev;
    (void)curr;
    if (!w->stopped) {
        uv_timer_start(&w->settle, peer_on_settled, PEER_SETTLE_MS, 0);
    }
}

void server__peer_tls_watch(struct server *s)
{
    const struct options_tls *o = &s->opt->peer_tls;
    const char *files[PEER_WATCH_FILES] = {o->cert_file, o->key_file,
                                           o->trusted_ca_file, o->crl_file};
    struct peer_watch *w;
    if (s->peer_tls != NULL || !set(o->cert_file) || !set(o->key_file)) {
        return; /* no files (plain, or --peer-auto-tls): nothing to read */
    }
    w = mem_calloc(1, sizeof(*w));
    if (w == NULL) {
        LOGW("server", "PeerTLS: no memory to watch the certificate files");
        return;
    }
    w->s = s;
    uv_signal_init(s->loop, &w->hup);
    uv_timer_init(s->loop, &w->settle);
    w->hup.data = w;
    w->settle.data = w;
    w->handles = 2;
    uv_signal_start(&w->hup, peer_on_hup, SIGHUP);
    for (unsigned i = 0; i < PEER_WATCH_FILES; i++) {
        uv_fs_poll_t *p = &w->polls[w->polls_count];
        if (!set(files[i])) {
            continue;
        }
        uv_fs_poll_init(s->loop, p);
        p->data = w;
        w->polls_count++;
        w->handles++;
        if (uv_fs_poll_start(p, peer_on_file, files[i], PEER_POLL_MS) != 0) {
            LOGW("server",
                 "PeerTLS: cannot watch %s for changes (SIGHUP still "
                 "reloads)",
                 files[i]);
        }
    }
    s->peer_tls = w;
}

static void peer_watch_closed(uv_handle_t *h)
{
    struct peer_watch *w = h->data;
    if (--w->handles == 0) {
        mem_free(w);
    }
}

void server__peer_tls_stop(struct server *s)
{
    struct peer_watch *w = s->peer_tls;
    if (w == NULL) {
        return;
    }
    s->peer_tls = NULL;
    w->stopped = true;
    uv_close((uv_handle_t *)&w->hup, peer_watch_closed);
    uv_close((uv_handle_t *)&w->settle, peer_watch_closed);
    for (unsigned i = 0; i < w->polls_count; i++) {
        uv_close((uv_handle_t *)&w->polls[i], peer_watch_closed);
    }
}

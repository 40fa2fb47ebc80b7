/*
 * snapshot.c - Maintenance.Snapshot (a consistent copy of the store, as a
 * gRPC stream) and `cairnd snapshot restore|status` (offline).
 *
 * Snapshot file format (what `etcdctl snapshot save` writes when it talks
 * to cairnd): the bytes of a compacted copy of the store's LMDB file
 * (consensus/kv: magic "CAIRNKV" inside its meta table), followed by the
 * SHA-256 of those bytes (32 bytes), as etcd appends a SHA-256 to its own
 * stream. etcdctl saves the stream whole; `cairnd snapshot restore`
 * (and cairnctl's) checks the hash before it builds a data directory
 * (consensus/kv/snapfile.h). etcdctl's own `snapshot status|restore` read
 * bbolt files and cannot read ours: use cairnd's or cairnctl's.
 *
 * Happy path of the stream: the request arrives; a worker thread writes
 * the copy into an unlinked temp file under the store lock's read side
 * (node_snapshot_write), hashing nothing yet; then the loop streams it in
 * chunks of SNAP_CHUNK bytes (remaining_bytes counts down, as etcd's), each
 * send respecting the connection's outbound bound (ERR_BUSY: wait for
 * on_writable), and finally the 32-byte hash, then OK. A client that goes
 * away cancels the call: the file is closed and the work stops.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/kv/snapfile.h"
#include "registry/server/api_auth.h"
#include "registry/server/api_int.h"

#define SNAP_CHUNK (64 * 1024)
#define SNAP_HASH  SNAPFILE_HASH_BYTES

struct snap_call {
    uv_work_t work;
    struct server *s;
    struct grpc_call *call; /* NULL once canceled */
    bool working;           /* the worker thread holds this struct */
    int fd;
    int err;
    uint64_t size;
    uint64_t off;
    bool hash_sent;
    bool hash_done;
    uint8_t hash[SNAP_HASH];
    uv_idle_t idle; /* resumes a long stream on the next loop pass */
    EVP_MD_CTX *md;
    uint8_t buf[SNAP_CHUNK];
};

static void snap_release(uv_handle_t *h)
{
    struct snap_call *sc = h->data;
    if (sc->fd >= 0) {
        close(sc->fd);
    }
    if (sc->md != NULL) {
        EVP_MD_CTX_free(sc->md);
    }
    mem_free(sc);
}

/* The call is over (finished or canceled): free once the idle handle is
 * closed. */
static void snap_free(struct snap_call *sc)
{
    sc->call = NULL;
    uv_close((uv_handle_t *)&sc->idle, snap_release);
}

static void snap_pump(struct snap_call *sc);

static void snap_idle(uv_idle_t *h)
{
    struct snap_call *sc = h->data;
    uv_idle_stop(h);
    if (sc->call != NULL && !sc->working) {
        snap_pump(sc);
    }
}

/* Send chunks until done or the outbound bound says wait. A chunk enters
 * the digest only once it was queued, so a retry after ERR_BUSY re-reads
 * and re-sends the same bytes without hashing them twice. */
static void snap_pump(struct snap_call *sc)
{
    Etcdserverpb__SnapshotResponse r = ETCDSERVERPB__SNAPSHOT_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    api__fill_header(sc->s, &h, kv_rev(node_kv(sc->s->node)));
    r.header = &h;
    for (int guard = 0; guard < 64; guard++) { /* bounded work per pass */
        size_t n;
        int rc;
        if (sc->off < sc->size) {
            uint64_t left = sc->size - sc->off;
            n = left < SNAP_CHUNK ? (size_t)left : SNAP_CHUNK;
            if (pread(sc->fd, sc->buf, n, (off_t)sc->off) != (ssize_t)n) {
                grpc_call_finish(sc->call, GRPC_INTERNAL,
                                 "cairn: reading the snapshot copy failed");
                snap_free(sc);
                return;
            }
            r.remaining_bytes = left + SNAP_HASH - n;
            r.blob.data = sc->buf;
        } else if (!sc->hash_sent) {
            if (!sc->hash_done) {
                unsigned int hl = 0;
                EVP_DigestFinal_ex(sc->md, sc->hash, &hl);
                sc->hash_done = true;
            }
            n = SNAP_HASH;
            r.remaining_bytes = 0;
            r.blob.data = sc->hash;
        } else {
            grpc_call_finish(sc->call, GRPC_OK, NULL);
            snap_free(sc);
            return;
        }
        r.blob.len = n;
        rc = grpc_call_send(sc->call, &r.base);
        if (rc == ERR_BUSY) {
            return; /* on_writable calls us again */
        }
        if (rc != 0) {
            grpc_call_finish_err(sc->call, rc);
            snap_free(sc);
            return;
        }
        if (sc->off < sc->size) {
            EVP_DigestUpdate(sc->md, sc->buf, n);
            sc->off += n;
        } else {
            sc->hash_sent = true;
        }
    }
    /* More to send: ask for on_writable-style resumption next pass. */
    uv_idle_start(&sc->idle, snap_idle);
}

static void snap_work(uv_work_t *w)
{
    struct snap_call *sc = w->data;
    sc->err = node_snapshot_write(sc->s->node, sc->fd);
}

static void snap_work_done(uv_work_t *w, int status)
{
    struct snap_call *sc = w->data;
    struct stat st;
    sc->working = false;
    if (sc->call == NULL) {
        snap_free(sc); /* canceled while the copy was written */
        return;
    }
    int rc = status != 0 ? status : sc->err;
    if (rc == 0 && fstat(sc->fd, &st) != 0) {
        rc = -errno;
    }
    if (rc != 0) {
        grpc_call_finish_err(sc->call, rc);
        snap_free(sc);
        return;
    }
    sc->size = (uint64_t)st.st_size;
    snap_pump(sc);
}

static void snap_on_msg(struct grpc_call *call, const struct grpc_msg *msg)
{
    struct server *s = grpc_call_method(call)->ctx;
    struct snap_call *sc;
    char path[600];
    int rc;
    (void)msg;
    /* root only, as etcd's authMaintenanceServer: the copy holds every key
     * and the auth store itself */
    rc = api_auth_admin(
        s, api_auth_grpc_token(call),
        s->opt->client_tls.client_cert_auth ? grpc_call_identity(call) : NULL);
    if (rc != 0) {
        grpc_call_finish_err(call, rc);
        return;
    }
    sc = mem_calloc(1, sizeof(*sc));
    if (sc == NULL) {
        grpc_call_finish_err(call, -ENOMEM);
        return;
    }
    sc->s = s;
    sc->call = call;
    sc->work.data = sc;
    uv_idle_init(s->loop, &sc->idle);
    sc->idle.data = sc;
    sc->md = EVP_MD_CTX_new();
    snprintf(path, sizeof(path), "%s/member/snapshot-save-XXXXXX",
             s->opt->data_dir);
    sc->fd = mkstemp(path);
    if (sc->fd >= 0) {
        unlink(path); /* anonymous: gone when closed, even after a crash */
    }
    if (sc->fd < 0 || sc->md == NULL ||
        EVP_DigestInit_ex(sc->md, EVP_sha256(), NULL) != 1) {
        grpc_call_finish_err(call, sc->fd < 0 ? -errno : -ENOMEM);
        snap_free(sc);
        return;
    }
    grpc_call_set_data(call, sc);
    sc->working = true;
    if (uv_queue_work(s->loop, &sc->work, snap_work, snap_work_done) != 0) {
        sc->working = false;
        grpc_call_finish_err(call, -ENOMEM);
        snap_free(sc);
    }
}

static void snap_on_writable(struct grpc_call *call)
{
    struct snap_call *sc = grpc_call_data(call);
    if (sc != NULL && !sc->working) {
        snap_pump(sc);
    }
}

static void snap_on_cancel(struct grpc_call *call)
{
    struct snap_call *sc = grpc_call_data(call);
    if (sc == NULL) {
        return;
    }
    sc->call = NULL;
    if (!sc->working) {
        snap_free(sc);
    }
    /* else snap_work_done sees call == NULL and frees */
}

void server__snapshot_method(struct server *s, struct grpc_method *m)
{
    memset(m, 0, sizeof(*m));
    m->path = "/etcdserverpb.Maintenance/Snapshot";
    m->kind = GRPC_SERVER_STREAM;
    m->on_msg = snap_on_msg;
    m->on_writable = snap_on_writable;
    m->on_cancel = snap_on_cancel;
    m->ctx = s;
}

/* ------------------------------------------------------ offline commands */

/* cairnd snapshot restore FILE [--data-dir D] [--name N] ... : build the
 * data directory of the first member of a new cluster from FILE. The
 * cluster flags (--initial-cluster, --initial-cluster-token, ...) are
 * given to cairnd when it starts on D, as for any new cluster. */
static int cmd_restore(const char *file, const char *data_dir, bool skip_hash)
{
    char msg[1024] = "";
    int64_t rev = 0, compact = 0;
    if (snapfile_restore(file, data_dir, skip_hash, &rev, &compact, msg,
                         sizeof(msg)) != 0) {
        fprintf(stderr, "cairnd: snapshot restore: %s\n", msg);
        return 1;
    }
    printf("restored snapshot: revision %lld, compacted %lld\n", (long long)rev,
           (long long)compact);
    printf("data directory %s is ready: start cairnd on it as the first "
           "member of a new cluster\n",
           data_dir);
    return 0;
}

static int cmd_status(const char *file)
{
    char msg[1024] = "";
    struct snapfile_status st;
    if (snapfile_status(file, true, &st, msg, sizeof(msg)) != 0) {
        fprintf(stderr, "cairnd: snapshot status: %s\n", msg);
        return 1;
    }
    printf("hash %08x, revision %lld, compacted %lld, size %llu\n", st.hash,
           (long long)st.revision, (long long)st.compacted,
           (unsigned long long)st.size);
    return 0;
}

int server_snapshot_command(int argc, char **argv)
{
    const char *data_dir = NULL;
    const char *file = NULL;
    const char *sub = argc > 2 ? argv[2] : "";
    bool skip_hash = false;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--skip-hash-check") == 0 ||
            strcmp(argv[i], "--skip-hash-check=true") == 0) {
            skip_hash = true;
        } else if (strcmp(argv[i], "--skip-hash-check=false") == 0) {
            skip_hash = false;
        } else if (strncmp(argv[i], "--data-dir=", 11) == 0) {
            data_dir = argv[i] + 11;
        } else if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc) {
            data_dir = argv[++i];
        } else if (argv[i][0] != '-' && file == NULL) {
            file = argv[i];
        } else if (strncmp(argv[i], "--", 2) == 0) {
            /* etcdctl's restore flags (--name, --initial-cluster, ...) are
             * accepted; they take effect when cairnd starts on data-dir. */
            if (strchr(argv[i], '=') == NULL && i + 1 < argc &&
                argv[i + 1][0] != '-') {
                i++;
            }
        } else {
            fprintf(stderr, "cairnd snapshot: unexpected argument '%s'\n",
                    argv[i]);
            return 2;
        }
    }
    if (file == NULL ||
        (strcmp(sub, "restore") != 0 && strcmp(sub, "status") != 0)) {
        fprintf(stderr, "usage: cairnd snapshot restore FILE --data-dir DIR\n"
                        "       cairnd snapshot status FILE\n");
        return 2;
    }
    if (strcmp(sub, "status") == 0) {
        return cmd_status(file);
    }
    return cmd_restore(file, data_dir != NULL ? data_dir : "default.etcd",
                       skip_hash);
}

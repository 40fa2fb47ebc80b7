/*
 * raft3_bench_main.c - raft3-bench: commits/s of a 3-member Raft cluster
 * run in one process, on one thread, on real disk.
 *
 *   raft3-bench [--dir DIR] [--seconds S] [--inflight N] [--json]
 *
 * Three struct raft cores (consensus/raft), each with its own write-ahead
 * log (consensus/log, one log_append = one fdatasync per ready batch that
 * has entries or a hard state) and a raft_memstorage as the core's storage,
 * filled after log_append returns (as consensus/node does). Messages go
 * between the members in memory, through raft_msg_encode/raft_msg_decode so
 * that the codec is paid for. Ticks come from a loop counter. After
 * raft_campaign elects member 1, the leader keeps N proposals of 256-byte
 * entries outstanding; an entry counts once the leader sees it in a ready
 * batch's committed list. Nothing is applied.
 *
 * Without --inflight it sweeps 64 (the default), 1, 16 and 256, S seconds
 * (default 3) each, on a fresh cluster each time. Reported per setting:
 * commits/s, fdatasyncs/s over all three members, and fsyncs per committed
 * entry. For scale it also measures 500 synchronous 4 KiB O_DSYNC writes
 * on the same file system (what `dd bs=4k count=500 oflag=dsync` does).
 * Everything lives in a temp directory under --dir (default "."), removed
 * at the end. Exit 0 when every setting ran.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/log/log.h"
#include "consensus/raft/raft.h"

#define MEMBERS          3
#define ENTRY_BYTES      256
#define INFLIGHT_MAX     4096
/* Messages in flight between members; past it the "network" drops. */
#define QUEUE_MAX        65536
/* Loop passes per raft_tick. A pass is a few fdatasyncs (milliseconds), so
 * this is a tick every few tens of milliseconds, as in a real node. */
#define PASSES_PER_TICK  8
/* Passes allowed for the election and the leader's first commit. */
#define SETUP_PASSES_MAX 10000

struct member {
    struct raft r;
    struct raft_memstorage ms;
    struct log *log;
    bool raft_open;
};

struct qmsg {
    uint64_t to;
    struct buf bytes;
};

struct cluster {
    struct member m[MEMBERS];
    struct qmsg *q; /* ring of QUEUE_MAX */
    size_t q_head;
    size_t q_count;
    uint64_t dropped;
    struct log_entry *le; /* scratch for log_append */
    size_t le_cap;
    /* counted on the leader */
    uint64_t committed;
    uint64_t fsyncs;
    uint64_t last_committed_index;
};

struct result {
    unsigned inflight;
    double commits_per_s;
    double fsyncs_per_s;
    uint64_t commits;
    uint64_t fsyncs;
    double seconds;
};

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static int enqueue(struct cluster *c, const struct raft_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct qmsg *q;
        int rc;

        if (c->q_count == QUEUE_MAX) {
            c->dropped++;
            continue;
        }
        q = &c->q[(c->q_head + c->q_count) % QUEUE_MAX];
        buf_init(&q->bytes, RAFT_CODEC_MSG_BYTES_MAX);
        rc = raft_msg_encode(&msgs[i], &q->bytes);
        if (rc < 0) {
            buf_free(&q->bytes);
            return rc;
        }
        q->to = msgs[i].to;
        c->q_count++;
    }
    return 0;
}

/* Deliver what is queued now (not what the steps add: they add nothing,
 * effects wait for the next ready batch). */
static int deliver(struct cluster *c)
{
    size_t n = c->q_count;

    for (size_t i = 0; i < n; i++) {
        struct qmsg *q = &c->q[c->q_head];
        struct raft_msg m;
        int rc;

        c->q_head = (c->q_head + 1) % QUEUE_MAX;
        c->q_count--;
        rc = raft_msg_decode(q->bytes.data, q->bytes.len, 0, &m);
        if (rc == 0 && m.to >= 1 && m.to <= MEMBERS) {
            rc = raft_step(&c->m[m.to - 1].r, &m);
            raft_msg_free_decoded(&m);
        } else if (rc == 0) {
            raft_msg_free_decoded(&m);
        }
        buf_free(&q->bytes);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static int persist(struct cluster *c, struct member *mb,
                   const struct raft_ready *rd)
{
    struct log_hard_state hs;
    int rc;

    if (rd->entries_count == 0 && !rd->hard_changed) {
        return 0;
    }
    if (rd->entries_count > c->le_cap) {
        size_t cap = rd->entries_count * 2;
        struct log_entry *le = mem_realloc(c->le, cap * sizeof(*le));
        if (le == NULL) {
            return -ENOMEM;
        }
        c->le = le;
        c->le_cap = cap;
    }
    for (size_t i = 0; i < rd->entries_count; i++) {
        c->le[i].index = rd->entries[i].index;
        c->le[i].term = rd->entries[i].term;
        c->le[i].type = rd->entries[i].type;
        c->le[i].data = rd->entries[i].data;
        c->le[i].len = rd->entries[i].len;
    }
    hs.term = rd->hard.term;
    hs.vote = rd->hard.vote;
    hs.commit = rd->hard.commit;
    rc = log_append(mb->log, c->le, rd->entries_count,
                    rd->hard_changed ? &hs : NULL);
    if (rc < 0) {
        return rc;
    }
    c->fsyncs++;
    if (rd->entries_count > 0) {
        rc = raft_memstorage_append(&mb->ms, rd->entries, rd->entries_count);
        if (rc < 0) {
            return rc;
        }
    }
    if (rd->hard_changed) {
        raft_memstorage_set_hard_state(&mb->ms, &rd->hard);
    }
    return 0;
}

/* Drain one member's ready batches in the order raft.h prescribes. */
static int handle_ready(struct cluster *c, struct member *mb, bool counted)
{
    while (raft_has_ready(&mb->r)) {
        struct raft_ready rd;
        int rc = raft_ready(&mb->r, &rd);

        if (rc < 0) {
            return rc;
        }
        if (rd.snapshot != NULL) {
            /* Never expected: nothing compacts. */
            raft_advance(&mb->r, &rd);
            return ERR_INVALID;
        }
        rc = enqueue(c, rd.msgs, rd.msgs_count);
        if (rc == 0) {
            rc = persist(c, mb, &rd);
        }
        if (rc == 0 && rd.entries_count > 0) {
            const struct raft_entry *last = &rd.entries[rd.entries_count - 1];
            rc = raft_persisted(&mb->r, last->index, last->term);
        }
        if (rc == 0) {
            rc = enqueue(c, rd.msgs_after_persist, rd.msgs_after_persist_count);
        }
        if (rc == 0 && rd.committed_count > 0) {
            const struct raft_entry *last =
                &rd.committed[rd.committed_count - 1];
            if (counted) {
                for (size_t i = 0; i < rd.committed_count; i++) {
                    if (rd.committed[i].type == RAFT_ENTRY_NORMAL) {
                        c->committed++;
                    }
                }
                c->last_committed_index = last->index;
            }
            rc = raft_applied(&mb->r, last->index);
        }
        raft_advance(&mb->r, &rd);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

static void cluster_close(struct cluster *c)
{
    for (int i = 0; i < MEMBERS; i++) {
        if (c->m[i].raft_open) {
            raft_close(&c->m[i].r);
        }
        raft_memstorage_close(&c->m[i].ms);
        log_close(c->m[i].log);
    }
    if (c->q != NULL) {
        while (c->q_count > 0) {
            buf_free(&c->q[c->q_head].bytes);
            c->q_head = (c->q_head + 1) % QUEUE_MAX;
            c->q_count--;
        }
    }
    mem_free(c->q);
    mem_free(c->le);
}

static int cluster_open(struct cluster *c, const char *root)
{
    struct raft_conf boot;
    int rc;

    memset(c, 0, sizeof(*c));
    memset(&boot, 0, sizeof(boot));
    c->q = mem_calloc(QUEUE_MAX, sizeof(*c->q));
    if (c->q == NULL) {
        return -ENOMEM;
    }
    boot.voters_count = MEMBERS;
    for (int i = 0; i < MEMBERS; i++) {
        boot.voters[i] = (uint64_t)i + 1;
        raft_memstorage_init(&c->m[i].ms);
    }
    for (int i = 0; i < MEMBERS; i++) {
        struct member *mb = &c->m[i];
        struct raft_config cfg;
        char dir[4300], msg[256];

        snprintf(dir, sizeof(dir), "%s/m%d", root, i + 1);
        rc = log_open(dir, NULL, &mb->log, msg, sizeof(msg));
        if (rc < 0) {
            fprintf(stderr, "raft3-bench: %s\n", msg);
            return rc;
        }
        raft_config_default(&cfg, (uint64_t)i + 1);
        cfg.seed = (uint64_t)i * 7919 + 17;
        cfg.bootstrap = boot;
        cfg.storage = raft_memstorage_storage(&mb->ms);
        rc = raft_init(&mb->r, &cfg);
        if (rc < 0) {
            return rc;
        }
        mb->raft_open = true;
    }
    return 0;
}

/* One pass: every member's ready batches, then the network, then maybe a
 * tick. */
static int pass(struct cluster *c, uint64_t n)
{
    int rc;

    for (int i = 0; i < MEMBERS; i++) {
        rc = handle_ready(c, &c->m[i], i == 0);
        if (rc < 0) {
            return rc;
        }
    }
    rc = deliver(c);
    if (rc < 0) {
        return rc;
    }
    if (n % PASSES_PER_TICK == PASSES_PER_TICK - 1) {
        for (int i = 0; i < MEMBERS; i++) {
            rc = raft_tick(&c->m[i].r);
            if (rc < 0) {
                return rc;
            }
        }
    }
    return 0;
}

/* Member 1 leads and has committed everything in its log (its no-op). */
static bool leader_ready(const struct cluster *c)
{
    struct raft_status st;

    raft_status(&c->m[0].r, &st);
    return st.role == RAFT_LEADER && st.last_index > 0 &&
           c->last_committed_index >= st.last_index;
}

static bool is_leader(const struct cluster *c)
{
    struct raft_status st;

    raft_status(&c->m[0].r, &st);
    return st.role == RAFT_LEADER;
}

static int bench_one(const char *root, unsigned inflight, double seconds,
                     struct result *res)
{
    static uint8_t payload[ENTRY_BYTES];
    struct cluster c;
    char dir[4200];
    uint64_t proposed = 0, passes = 0, t0 = 0, t1 = 0;
    uint64_t commits0 = 0, fsyncs0 = 0;
    int rc;

    memset(payload, 0x5a, sizeof(payload));
    snprintf(dir, sizeof(dir), "%s/inflight-%u", root, inflight);
    if (mkdir(dir, 0700) != 0) {
        return -errno;
    }
    rc = cluster_open(&c, dir);
    if (rc == 0) {
        rc = raft_campaign(&c.m[0].r);
    }
    /* Election and the leader's no-op, bounded by passes. */
    while (rc == 0 && !leader_ready(&c)) {
        if (passes == SETUP_PASSES_MAX) {
            fprintf(stderr, "raft3-bench: no leader after %d passes\n",
                    SETUP_PASSES_MAX);
            rc = ERR_NO_LEADER;
            break;
        }
        rc = pass(&c, passes++);
    }
    if (rc == 0) {
        commits0 = c.committed;
        fsyncs0 = c.fsyncs;
        t0 = clock_mono_ns();
        t1 = t0;
    }
    /* Measured: bounded by the clock. */
    while (rc == 0 && (double)(t1 - t0) < seconds * 1e9) {
        if (!is_leader(&c)) {
            fprintf(stderr, "raft3-bench: member 1 lost leadership\n");
            rc = ERR_NOT_LEADER;
            break;
        }
        while (proposed - (c.committed - commits0) < inflight) {
            rc = raft_propose(&c.m[0].r, RAFT_ENTRY_NORMAL, payload,
                              sizeof(payload), NULL);
            if (rc == ERR_BUSY) {
                rc = 0; /* uncommitted bound: wait for commits */
                break;
            }
            if (rc < 0) {
                break;
            }
            proposed++;
        }
        if (rc == 0) {
            rc = pass(&c, passes++);
        }
        t1 = clock_mono_ns();
    }
    if (rc < 0) {
        fprintf(stderr, "raft3-bench: inflight %u: %s\n", inflight,
                err_str(rc));
    } else {
        double s = (double)(t1 - t0) / 1e9;
        res->inflight = inflight;
        res->seconds = s;
        res->commits = c.committed - commits0;
        res->fsyncs = c.fsyncs - fsyncs0;
        res->commits_per_s = (double)res->commits / s;
        res->fsyncs_per_s = (double)res->fsyncs / s;
        if (c.dropped > 0) {
            fprintf(stderr, "raft3-bench: %llu messages dropped\n",
                    (unsigned long long)c.dropped);
        }
    }
    cluster_close(&c);
    return rc;
}

/* 500 synchronous 4 KiB writes, as dd oflag=dsync does. */
static int bench_dsync(const char *root, double *rate)
{
    static uint8_t block[4096];
    char path[4200];
    uint64_t t0, t1;
    int fd;

    snprintf(path, sizeof(path), "%s/dsync.dat", root);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DSYNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    t0 = clock_mono_ns();
    for (int i = 0; i < 500; i++) {
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block)) {
            int rc = errno != 0 ? -errno : -EIO;
            close(fd);
            return rc;
        }
    }
    t1 = clock_mono_ns();
    close(fd);
    *rate = 500.0 * 1e9 / (double)(t1 - t0);
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: raft3-bench [--dir DIR] [--seconds S] "
                    "[--inflight N] [--json]\n");
}

int main(int argc, char **argv)
{
    static const unsigned sweep[] = {64, 1, 16, 256};
    const char *base = ".";
    double seconds = 3.0, dsync = 0;
    unsigned inflight = 0;
    unsigned settings[4];
    struct result res[4];
    size_t nset = 0;
    int json = 0, rc = 0;
    char root[4096];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            base = argv[++i];
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (strcmp(argv[i], "--inflight") == 0 && i + 1 < argc) {
            inflight = (unsigned)strtoul(argv[++i], NULL, 10);
            if (inflight == 0 || inflight > INFLIGHT_MAX) {
                usage();
                return 2;
            }
        } else {
            usage();
            return 2;
        }
    }
    if (!(seconds > 0 && seconds <= 3600)) {
        usage();
        return 2;
    }
    if (inflight > 0) {
        settings[nset++] = inflight;
    } else {
        for (size_t k = 0; k < 4; k++) {
            settings[nset++] = sweep[k];
        }
    }
    log_setup(LOG_WARN, LOG_FORMAT_TEXT, stderr);
    if (strlen(base) > 3000) {
        usage();
        return 2;
    }
    snprintf(root, sizeof(root), "%s/raft3-bench-XXXXXX", base);
    if (mkdtemp(root) == NULL) {
        fprintf(stderr, "raft3-bench: %s: %s\n", root, strerror(errno));
        return 1;
    }
    for (size_t k = 0; k < nset && rc == 0; k++) {
        rc = bench_one(root, settings[k], seconds, &res[k]);
    }
    if (rc == 0) {
        rc = bench_dsync(root, &dsync);
    }
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    if (rc < 0) {
        fprintf(stderr, "raft3-bench: %s\n", err_str(rc));
        return 1;
    }
    if (json) {
        printf("{\"members\":%d,\"entry_bytes\":%d,\"seconds\":%.1f,"
               "\"dsync_4k_writes_per_s\":%.0f,\"runs\":[",
               MEMBERS, ENTRY_BYTES, seconds, dsync);
        for (size_t k = 0; k < nset; k++) {
            printf("%s{\"inflight\":%u,\"commits_per_s\":%.0f,"
                   "\"fsyncs_per_s\":%.0f,\"fsyncs_per_commit\":%.3f}",
                   k ? "," : "", res[k].inflight, res[k].commits_per_s,
                   res[k].fsyncs_per_s,
                   res[k].commits
                       ? (double)res[k].fsyncs / (double)res[k].commits
                       : 0.0);
        }
        printf("]}\n");
    } else {
        printf("3 members, one thread, %d-byte entries, %.1f s each; raw "
               "4 KiB O_DSYNC writes: %.0f/s\n",
               ENTRY_BYTES, seconds, dsync);
        printf("%9s %12s %12s %16s\n", "inflight", "commits/s", "fsyncs/s",
               "fsyncs/commit");
        for (size_t k = 0; k < nset; k++) {
            printf("%9u %12.0f %12.0f %16.3f\n", res[k].inflight,
                   res[k].commits_per_s, res[k].fsyncs_per_s,
                   res[k].commits
                       ? (double)res[k].fsyncs / (double)res[k].commits
                       : 0.0);
        }
    }
    return 0;
}

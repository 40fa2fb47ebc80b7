/*
 * node.c - the loop side of a member: Raft's ready batches, proposals,
 * reads, ticks and the peer transport.
 *
 * Every input to Raft (a tick, a peer message, a proposal, a completion
 * from a worker thread) marks the node dirty; a uv_check handle, which runs
 * once per loop iteration after I/O, drains the ready batches. So all the
 * proposals that arrived in one pass over the sockets become one batch: one
 * WAL job (one fsync, or less with group commit), one append per follower.
 *
 * For each batch (raft.h, "ordering rules"): messages that may go at once
 * are encoded and queued on the transport; entries, hard state and the
 * encoded "after persist" messages become a WAL job; committed entries are
 * copied into an apply job; read states move reads to "wait for apply";
 * then the batch is advanced. When the WAL thread hands a job back, its
 * entries go into the in-memory log (raft_memstorage, Raft's storage), the
 * after-persist messages are sent and raft_persisted() reported. When the
 * apply thread hands a job back, raft_applied() is reported, proposers get
 * their answers, waiting reads are served, and observers see the events.
 */
#include "consensus/node/node_int.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/discard.h"
#include "base/err.h"
#include "base/limits.h"
#include "base/log.h"
#include "proto/cairn.pb-c.h"

#define READS_MAX                65536
#define WAITERS_INITIAL          1024 /* grows to the pending limit */
#define SNAPSHOT_CATCHUP         5000 /* entries kept after a snapshot */
/* WAL segments are preallocated whole, so the WAL's disk use is its
 * segments' count times this; what a snapshot releases goes a segment at a
 * time. etcd's 64 MiB kept two or three mostly dead segments after each
 * snapshot (300k puts of 256 B: 128 MiB of WAL for ~35 MiB of entries
 * past the snapshot); a quarter of that rotates every ~1.5 s at 30k puts/s
 * (one fallocate and two fsyncs each, on the WAL thread). */
#define NODE_WAL_SEGMENT_BYTES   ((uint64_t)16 << 20)
#define NODE_TICKS_PER_HEARTBEAT 10
#define MEMBER_RECORD_BYTES      (NODE_NAME_MAX + 2 * NODE_URLS_MAX + 16)

static void process(struct node *n);
static void serve_reads(struct node *n);
static void reads_retry(struct node *n);
static void fail_node(struct node *n, int err, const char *what);
static void on_wal_done(struct node *n);

void node_config_default(struct node_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->heartbeat_ms = 100;
    cfg->election_ms = 1000;
    cfg->snapshot_count = 100000;
    cfg->max_txn_ops = 128;
    cfg->max_request_bytes = 1572864;
}

/* ------------------------------------------------------------ identity */

uint64_t node_member_id_derive(const char *peer_urls, const char *token)
{
    /* etcd: sha1(sorted peer URLs concatenated, then the cluster token) */
    char *urls[NODE_MEMBERS_MAX * 4];
    size_t count = 0;
    char copy[NODE_URLS_MAX * 4];
    unsigned char md[SHA_DIGEST_LENGTH];
    snprintf(copy, sizeof(copy), "%s", peer_urls);
    for (char *s = strtok(copy, ","); s != NULL && count < 64;
         s = strtok(NULL, ",")) {
        urls[count++] = s;
    }
    for (size_t i = 1; i < count; i++) { /* insertion sort: a few URLs */
        for (size_t j = i; j > 0 && strcmp(urls[j - 1], urls[j]) > 0; j--) {
            char *t = urls[j];
            urls[j] = urls[j - 1];
            urls[j - 1] = t;
        }
    }
    char joined[NODE_URLS_MAX * 4 + 256];
    size_t off = 0;
    for (size_t i = 0; i < count; i++) {
        size_t l = strlen(urls[i]);
        if (off + l < sizeof(joined)) {
            memcpy(joined + off, urls[i], l);
            off += l;
        }
    }
    size_t tl = strlen(token);
    if (off + tl < sizeof(joined)) {
        memcpy(joined + off, token, tl);
        off += tl;
    }
    EVP_Digest(joined, off, md, NULL, EVP_sha1(), NULL);
    return be64_get(md);
}

uint64_t node_cluster_id_derive(const uint64_t *member_ids, size_t n)
{
    uint64_t ids[NODE_MEMBERS_MAX];
    uint8_t b[8 * NODE_MEMBERS_MAX];
    unsigned char md[SHA_DIGEST_LENGTH];
    ASSERT(n <= NODE_MEMBERS_MAX);
    memcpy(ids, member_ids, n * sizeof(*ids));
    for (size_t i = 1; i < n; i++) {
        for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint64_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    }
    for (size_t i = 0; i < n; i++) {
        be64_put(b + 8 * i, ids[i]);
    }
    EVP_Digest(b, 8 * n, md, NULL, EVP_sha1(), NULL);
    return be64_get(md);
}

/* Member records in the store (aux CLUSTER table, key = be64 id):
 * u8 learner, u16 name_len, name, u16 peer_len, peer, u16 client_len,
 * client. */
int node__member_encode(const struct node_member *m, struct buf *b)
{
    const char *parts[3] = {m->name, m->peer_urls, m->client_urls};
    int rc = buf_append_u8(b, m->learner ? 1 : 0);
    for (int i = 0; i < 3 && rc == 0; i++) {
        uint16_t len = (uint16_t)strlen(parts[i]);
        uint8_t l2[2] = {(uint8_t)(len >> 8), (uint8_t)len};
        rc = buf_append(b, l2, 2);
        if (rc == 0) {
            rc = buf_append(b, parts[i], len);
        }
    }
    return rc;
}

static int member_decode(uint64_t id, const uint8_t *p, size_t len,
                         struct node_member *m)
{
    struct reader r;
    uint8_t learner;
    char *dst[3] = {m->name, m->peer_urls, m->client_urls};
    size_t cap[3] = {sizeof(m->name), sizeof(m->peer_urls),
                     sizeof(m->client_urls)};
    memset(m, 0, sizeof(*m));
    m->id = id;
    reader_init(&r, p, len);
    if (reader_u8(&r, &learner) != 0) {
        return ERR_CORRUPT;
    }
    m->learner = learner != 0;
    for (int i = 0; i < 3; i++) {
        const uint8_t *s;
        const uint8_t *l2;
        if (reader_bytes(&r, 2, &l2) != 0) {
            return ERR_CORRUPT;
        }
        size_t l = (size_t)l2[0] << 8 | l2[1];
        if (l >= cap[i] || reader_bytes(&r, l, &s) != 0) {
            return ERR_CORRUPT;
        }
        memcpy(dst[i], s, l);
        dst[i][l] = '\0';
    }
    return 0;
}

/* A member's published attributes: u16 name length, name, u16 client
 * URLs length, client URLs, then (since levels) u32 apply level
 * (consensus/apply writes them). */
static void merge_attr(struct node *n, uint64_t id, const uint8_t *p,
                       size_t len)
{
    for (size_t i = 0; i < n->members_count; i++) {
        struct node_member *m = &n->members[i];
        struct reader r;
        const uint8_t *l2;
        const uint8_t *s;
        if (m->id != id) {
            continue;
        }
        reader_init(&r, p, len);
        if (reader_bytes(&r, 2, &l2) != 0) {
            return;
        }
        size_t nl = (size_t)l2[0] << 8 | l2[1];
        if (nl >= sizeof(m->name) || reader_bytes(&r, nl, &s) != 0) {
            return;
        }
        memcpy(m->name, s, nl);
        m->name[nl] = '\0';
        if (reader_bytes(&r, 2, &l2) != 0) {
            return;
        }
        size_t cl = (size_t)l2[0] << 8 | l2[1];
        if (cl >= sizeof(m->client_urls) || reader_bytes(&r, cl, &s) != 0) {
            return;
        }
        memcpy(m->client_urls, s, cl);
        m->client_urls[cl] = '\0';
        m->apply_level = 0;
        if (reader_bytes(&r, 4, &s) == 0) {
            m->apply_level = be32_get(s);
        }
    }
}

static int load_member(void *ctx, const void *name, size_t name_len,
                       const void *value, size_t value_len)
{
    struct node *n = ctx;
    if (name_len == 12 && memcmp((const uint8_t *)name + 8, "attr", 4) == 0) {
        merge_attr(n, be64_get(name), value, value_len);
        return 0;
    }
    if (name_len != 8 || n->members_count == NODE_MEMBERS_MAX) {
        return 0;
    }
    if (member_decode(be64_get(name), value, value_len,
                      &n->members[n->members_count]) == 0) {
        n->members_count++;
    }
    return 0;
}

/* The level each member had before a reload, by id (0: unknown). */
static uint32_t level_before(const uint64_t *ids, const uint32_t *levels,
                             size_t count, uint64_t id)
{
    for (size_t i = 0; i < count; i++) {
        if (ids[i] == id) {
            return levels[i];
        }
    }
    return 0;
}

int node__members_reload(struct node *n)
{
    struct kv_read *rd;
    uint64_t ids[NODE_MEMBERS_MAX];
    uint32_t levels[NODE_MEMBERS_MAX];
    size_t before = n->members_count;
    for (size_t i = 0; i < before; i++) {
        ids[i] = n->members[i].id;
        levels[i] = n->members[i].apply_level;
    }
    int rc = node_read_begin(n, &rd);
    if (rc != 0) {
        return rc;
    }
    n->members_count = 0;
    rc = kv_aux_list(rd, KV_AUX_CLUSTER, load_member, n);
    node_read_end(n, rd);
    /* Another member just published our level (it was upgraded): publish
     * ours again. A member applies the attributes it reads as the binary
     * it runs then, so the upgraded one may hold ours without a level, and
     * node_apply_level would stay false there for good. */
    for (size_t i = 0; rc == 0 && i < n->members_count; i++) {
        const struct node_member *m = &n->members[i];
        if (m->id != n->cfg.member_id && m->apply_level >= n->apply_level &&
            level_before(ids, levels, before, m->id) < n->apply_level) {
            n->published = false;
        }
    }
    return rc;
}

uint32_t node_cluster_apply_level(const struct node *n)
{
    uint32_t low = n->members_count > 0 ? UINT32_MAX : 0;
    for (size_t i = 0; i < n->members_count; i++) {
        if (n->members[i].apply_level < low) {
            low = n->members[i].apply_level;
        }
    }
    return low;
}

bool node_apply_level(const struct node *n, uint32_t level)
{
    return node_cluster_apply_level(n) >= level;
}

/* ------------------------------------------------------------- sending */

static void send_encoded(struct node *n, uint64_t to, const uint8_t *p,
                         size_t len)
{
    if (!n->transport_on || to == n->cfg.member_id) {
        return;
    }
    /* A full queue or an unknown peer drops the message; Raft retries. */
    (void)transport_send(&n->transport, to, p, len);
}

static void send_msgs(struct node *n, const struct raft_msg *msgs, size_t count)
{
    struct buf b;
    if (!n->transport_on) {
        return;
    }
    buf_init(&b, 0);
    for (size_t i = 0; i < count; i++) {
        if (msgs[i].type == RAFT_MSG_SNAP) {
            node__snap_send(n, &msgs[i]);
            continue;
        }
        buf_reset(&b);
        if (raft_msg_encode(&msgs[i], &b) == 0) {
            send_encoded(n, msgs[i].to, b.data, b.len);
        }
    }
    buf_free(&b);
}

/* Keep msgs_after_persist encoded in the job: (u64 to, u32 len, bytes). */
/* Keep msgs_after_persist encoded in the job: (u64 to, u32 len, bytes).
 * Messages are droppable (Raft resends what is lost), so a message that
 * cannot be encoded, or that does not fit the job's buffer (a stepping-down
 * leader's whole backlog of appends can be large), is dropped and counted,
 * never an error of the member. Each record is appended whole or not at
 * all, so the buffer always parses. */
static int encode_after(struct node *n, struct wal_job *j,
                        const struct raft_msg *msgs, size_t count)
{
    struct buf tmp;
    buf_init(&tmp, 0);
    for (size_t i = 0; i < count; i++) {
        size_t start = j->after.len;
        uint32_t len;
        buf_reset(&tmp);
        if (raft_msg_encode(&msgs[i], &tmp) != 0) {
            n->msgs_dropped++;
            continue;
        }
        len = (uint32_t)tmp.len;
        if (buf_reserve(&j->after, 12 + tmp.len) != 0) {
            n->msgs_dropped++;
            continue;
        }
        (void)buf_append(&j->after, &msgs[i].to, 8);
        (void)buf_append(&j->after, &len, 4);
        (void)buf_append(&j->after, tmp.data, tmp.len);
        ASSERT(j->after.len == start + 12 + tmp.len);
    }
    buf_free(&tmp);
    return 0;
}

static void send_after(struct node *n, const struct wal_job *j)
{
    size_t off = 0;
    while (off + 12 <= j->after.len) {
        uint64_t to;
        uint32_t len;
        memcpy(&to, j->after.data + off, 8);
        memcpy(&len, j->after.data + off + 8, 4);
        off += 12;
        ASSERT(off + len <= j->after.len);
        send_encoded(n, to, j->after.data + off, len);
        off += len;
    }
}

/* --------------------------------------------------------- copying out */

/* Copy entries into one allocation: the array, then a blob of data. */
static int copy_entries(const struct raft_entry *src, size_t count,
                        struct raft_entry **ents, uint8_t **blob)
{
    size_t bytes = 0;
    size_t off = 0;
    *ents = NULL;
    *blob = NULL;
    if (count == 0) {
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        bytes += src[i].len;
    }
    *ents = mem_alloc(count * sizeof(**ents));
    *blob = mem_alloc(bytes == 0 ? 1 : bytes);
    if (*ents == NULL || *blob == NULL) {
        mem_free(*ents);
        mem_free(*blob);
        *ents = NULL;
        *blob = NULL;
        return -ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        (*ents)[i] = src[i];
        (*ents)[i].data = *blob + off;
        if (src[i].len > 0) {
            memcpy(*blob + off, src[i].data, src[i].len);
        }
        off += src[i].len;
    }
    return 0;
}

/* ------------------------------------------------------------- ready */

static void note_soft_state(struct node *n, const struct raft_ready *rd)
{
    if (!rd->soft_changed) {
        return;
    }
    if (rd->leader != n->leader) {
        n->leader_changes += rd->leader != RAFT_NONE ? 1 : 0;
        if (n->read_round_sent != 0) {
            reads_retry(n); /* the old leader will not answer it */
        }
        LOGI("raft", "%016llx: leader is %016llx (role %s, term %llu)",
             (unsigned long long)n->cfg.member_id,
             (unsigned long long)rd->leader, raft_role_str(rd->role),
             (unsigned long long)rd->hard.term);
    }
    n->leader = rd->leader;
    n->role = rd->role;
    if (n->role != RAFT_LEADER) {
        node__gate_revoke(n);
    }
    n->lead_applied = node_lead_applied(n);
    node__move_check(n, clock_mono_ns() / 1000000);
    if (n->obs.leader != NULL) {
        n->obs.leader(n->obs.ctx, n->leader, n->raft.term);
    }
}

/* After an applied batch: the leader's first entry of its term may be in
 * it (node_lead_applied); tell the observer again. */
static void note_lead_applied(struct node *n)
{
    bool lead_applied = node_lead_applied(n);
    bool tell = lead_applied && !n->lead_applied;
    n->lead_applied = lead_applied;
    if (tell && n->obs.leader != NULL) {
        n->obs.leader(n->obs.ctx, n->leader, n->raft.term);
    }
}

static void reads_on_state(struct node *n, const struct raft_ready *rd)
{
    for (size_t i = 0; i < rd->reads_count; i++) {
        uint64_t round = rd->reads[i].ctx;
        if (round != n->read_round_sent) {
            continue; /* an answer to a round we gave up on */
        }
        for (size_t k = 0; k < n->reads_count; k++) {
            struct read_wait *w = &n->reads[(n->reads_head + k) % n->reads_cap];
            if (w->cb != NULL && w->round == round && w->index == 0) {
                w->index = rd->reads[i].index == 0 ? 1 : rd->reads[i].index;
            }
        }
        n->read_round_sent = 0;
    }
}

/* Can this batch's new entries go to the apply thread now, beside their
 * WAL job? Only a leader that is the one voter commits an entry as soon as
 * its own WAL has it, so the entries are certain to commit, in this order,
 * unless the member stops. Their store commit still waits for Raft's
 * (commit_gate), so nothing of them is seen, answered or checkpointed
 * before they are durable; what the early start buys is the apply work
 * done during the WAL's fsync instead of after it. Every older entry must
 * be with the apply thread already, the newest configuration committed,
 * and every entry one whose effects stay in the store txn until then
 * (apply_entry_early). */
static bool early_ok(const struct node *n, const struct raft_ready *rd)
{
    const struct raft *r = &n->raft;
    if (r->role != RAFT_LEADER || r->conf.voters_count != 1 ||
        r->conf.voters[0] != n->cfg.member_id || r->conf_index > r->commit ||
        n->closing || n->failed != 0 || n->snap_installing ||
        rd->entries_count == 0 ||
        rd->entries[0].index !=
            (n->committed > n->early_hi ? n->committed : n->early_hi) + 1 ||
        rd->entries[0].term != r->term) {
        return false;
    }
    for (size_t i = 0; i < rd->entries_count; i++) {
        if (!apply_entry_early(&rd->entries[i])) {
            return false;
        }
    }
    return true;
}

/* Before an early batch's WAL job: the WAL thread may open the gate for it
 * (node__gate_open_durable). Without the early job that follows, the gate
 * only matters to later early batches, which wait for it anyway. */
static void gate_permit(struct node *n, uint64_t index)
{
    uv_mutex_lock(&n->apply_in.mu);
    n->gate_permit = index;
    uv_mutex_unlock(&n->apply_in.mu);
}

/* After the batch's WAL job: its entries to the apply thread too, when
 * early_ok. Without memory they just go the usual way, once committed. */
static void early_job(struct node *n, const struct raft_ready *rd)
{
    struct apply_job *aj = mem_calloc(1, sizeof(*aj));
    if (aj == NULL) {
        return;
    }
    buf_init(&aj->results, 0);
    buf_init(&aj->events, 0);
    if (copy_entries(rd->entries, rd->entries_count, &aj->ents, &aj->blob) !=
        0) {
        node__apply_job_free(aj);
        return;
    }
    aj->ents_count = rd->entries_count;
    aj->term = n->raft.term;
    aj->early = true;
    n->early_hi = rd->entries[rd->entries_count - 1].index;
    n->early_jobs++;
    node__jobq_push(&n->apply_in, aj);
}

/* A lone proposal (one entry, no other in flight: one client) may be
 * written and synced by the loop itself while the WAL thread waits idle:
 * the append starts at once, not one wake-up later, and its completion
 * finds the loop awake, a second wake-up saved (a tenth of one client's
 * put). Not with other proposals in flight: while the WAL thread syncs,
 * the loop takes their requests and applies them early, and inline it
 * would not. Only on a disk whose last sync was quick: the loop serves
 * nothing meanwhile. */
#define WAL_INLINE_SYNC_NS 1000000
/* ... and only in a run of such batches: with a few clients one comes
 * alone now and then, and the loop should not block the others for it
 * (four clients: 5% of batches, and 4% fewer puts when they went inline). */
#define WAL_INLINE_RUN     8

static bool wal_inline_ok(struct node *n, const struct raft_ready *rd,
                          const struct wal_job *wj)
{
    if (rd->entries_count != 1 || n->pending > 1) {
        n->lone_run = 0;
        return false;
    }
    n->lone_run += n->lone_run < WAL_INLINE_RUN ? 1 : 0;
    return n->lone_run >= WAL_INLINE_RUN && wj->release_before == 0 &&
           wj->reset_index == 0 && wj->read_hi == 0 && n->wal_delay_ms == 0 &&
           atomic_load(&n->wal_last_fsync_ns) < WAL_INLINE_SYNC_NS;
}

static int handle_ready(struct node *n, struct raft_ready *rd)
{
    struct wal_job *wj = NULL;
    struct apply_job *aj = NULL;
    int rc = 0;

    note_soft_state(n, rd);
    send_msgs(n, rd->msgs, rd->msgs_count);
    /* A hard state whose term and vote are those the WAL already has moved
     * only the commit index, which may be persisted lazily (raft.h). It
     * waits for the next job rather than costing one of its own: a job is
     * a round trip through the WAL thread (two wake-ups), and with one
     * client that was one more per put. */
    bool hard_due = rd->hard_changed && (rd->hard.term != n->sent_term ||
                                         rd->hard.vote != n->sent_vote);
    if (rd->hard_changed && !hard_due) {
        n->hard_later = rd->hard;
        n->hard_held = true;
    }
    if (rd->entries_count > 0 || hard_due || rd->msgs_after_persist_count > 0 ||
        rd->snapshot != NULL) {
        wj = mem_calloc(1, sizeof(*wj));
        if (wj == NULL) {
            return -ENOMEM;
        }
        buf_init(&wj->after, 0);
        buf_init(&wj->reset_conf, 0);
        rc = copy_entries(rd->entries, rd->entries_count, &wj->ents, &wj->blob);
        wj->ents_count = rc == 0 ? rd->entries_count : 0;
        wj->has_hard = rd->hard_changed || n->hard_held;
        wj->hard = rd->hard_changed ? rd->hard : n->hard_later;
        n->hard_held = false;
        if (wj->has_hard) {
            n->sent_term = wj->hard.term;
            n->sent_vote = wj->hard.vote;
        }
        if (rc == 0) {
            rc = encode_after(n, wj, rd->msgs_after_persist,
                              rd->msgs_after_persist_count);
        }
        if (rc != 0) {
            node__wal_job_free(wj);
            return rc;
        }
    }
    /* Committed entries handed out early already are skipped: their
     * batch is waiting for this commit (node__gate_open, below). */
    size_t skip = 0;
    while (skip < rd->committed_count &&
           rd->committed[skip].index <= n->early_hi) {
        skip++;
    }
    if (rd->committed_count > skip || rd->snapshot != NULL) {
        aj = mem_calloc(1, sizeof(*aj));
        if (aj == NULL) {
            node__wal_job_free(wj);
            return -ENOMEM;
        }
        buf_init(&aj->results, 0);
        buf_init(&aj->events, 0);
        rc = copy_entries(rd->committed + skip, rd->committed_count - skip,
                          &aj->ents, &aj->blob);
        if (rc != 0) {
            node__wal_job_free(wj);
            node__apply_job_free(aj);
            return rc;
        }
        aj->ents_count = rd->committed_count - skip;
        aj->term = n->raft.term;
    }
    if (rd->committed_count > 0) {
        n->committed = rd->committed[rd->committed_count - 1].index;
    }
    if (rd->snapshot != NULL) {
        rc = node__snap_install_start(n, rd->snapshot, wj, aj);
        if (rc != 0) {
            node__wal_job_free(wj);
            node__apply_job_free(aj);
            return rc;
        }
    }
    reads_on_state(n, rd);
    bool early = wj != NULL && rd->snapshot == NULL && early_ok(n, rd);
    /* Inline, the early job goes first, to apply while the loop syncs. */
    bool inline_wal = early && wal_inline_ok(n, rd, wj);
    if (early) {
        gate_permit(n, rd->entries[rd->entries_count - 1].index);
    }
    if (wj != NULL && !inline_wal) {
        n->wal_jobs++;
        node__jobq_push(&n->wal_in, wj);
    }
    if (rd->committed_count > 0) {
        node__gate_open(n, n->committed);
    }
    if (aj != NULL) {
        node__jobq_push(&n->apply_in, aj);
    }
    if (early) {
        early_job(n, rd);
    }
    if (inline_wal) {
        n->wal_jobs++;
        if (node__wal_inline(n, wj)) {
            n->wal_inline_passes++;
        } else {
            node__jobq_push(&n->wal_in, wj);
        }
    }
    return 0;
}

/* The store's applied index, as far as Raft has handed the entries out:
 * with the WAL thread opening the gate (node__gate_open_durable), the
 * store may commit an entry before the loop has told Raft it is durable. */
static void report_applied(struct node *n)
{
    uint64_t a = n->store_applied;
    if (a > n->raft.applying) {
        a = n->raft.applying;
    }
    if (a > n->applied) {
        n->applied = a;
        (void)raft_applied(&n->raft, n->applied);
        node__logmem_trim(n, n->applied);
    }
}

void node__gate_revoke(struct node *n)
{
    if (n->gate_permit == 0) {
        return; /* only the loop writes it */
    }
    gate_permit(n, 0);
    /* Every entry below a gate the WAL thread opened is in wal_out (it
     * pushes before it opens): Raft hears of them now and commits them
     * (raft_persisted) under the rule they were durable under. Only the
     * completions: no pass here, which may run inside a callback of one. */
    if (atomic_load(&n->gate_ok) > n->raft.commit && n->role == RAFT_LEADER &&
        !n->closing && n->failed == 0) {
        on_wal_done(n);
    }
}

/* The round asked of Raft is lost (the leader changed or went quiet):
 * every read still without a read point joins the next round. */
static void reads_retry(struct node *n)
{
    n->read_round_sent = 0;
    for (size_t k = 0; k < n->reads_count; k++) {
        struct read_wait *w = &n->reads[(n->reads_head + k) % n->reads_cap];
        if (w->cb != NULL && w->index == 0) {
            w->round = n->read_round_next;
        }
    }
    n->dirty = true;
}

/* Ask Raft for a read point when reads are waiting and none is asked. */
static void reads_kick(struct node *n)
{
    if (n->read_round_sent != 0) {
        return;
    }
    for (size_t k = 0; k < n->reads_count; k++) {
        struct read_wait *w = &n->reads[(n->reads_head + k) % n->reads_cap];
        if (w->cb != NULL && w->index == 0 && w->round == n->read_round_next) {
            uint64_t round = n->read_round_next++;
            if (raft_read_index(&n->raft, round) == 0) {
                n->read_round_sent = round;
                n->read_round_sent_ms = clock_mono_ns() / 1000000;
            } else {
                /* No leader yet: rejoin the next round on a later tick. */
                for (size_t m = k; m < n->reads_count; m++) {
                    struct read_wait *x =
                        &n->reads[(n->reads_head + m) % n->reads_cap];
                    if (x->round == round) {
                        x->round = n->read_round_next;
                    }
                }
            }
            return;
        }
    }
}

static void process(struct node *n)
{
    if (n->failed != 0 || n->closing) {
        return;
    }
    /* cleared first: what this pass's callbacks queue (a read served
     * below whose caller proposes at once) is due another pass */
    n->dirty = false;
    for (int guard = 0; guard < 64; guard++) {
        /* A finished read round lets the next one start at once: reads
         * that arrived while a round was out must not wait for a tick. */
        reads_kick(n);
        if (!raft_has_ready(&n->raft)) {
            break;
        }
        struct raft_ready rd;
        int rc = raft_ready(&n->raft, &rd);
        if (rc == 0) {
            rc = handle_ready(n, &rd);
            raft_advance(&n->raft, &rd);
            report_applied(n);
        }
        if (rc != 0) {
            fail_node(n, rc, "handling a Raft batch");
            return;
        }
    }
    /* A snapshot stepped in since the last pass is installing now (its
     * batch was handled above) or was refused by Raft: either way a new
     * incoming stream may no longer overwrite it unnoticed. */
    if (!raft_has_ready(&n->raft)) {
        n->snap_in_stepped = false;
    }
    /* Read points at or below the applied index are served now (a read
     * with no write before it waits for nothing). */
    serve_reads(n);
}

static void on_busy(uv_idle_t *h)
{
    (void)h; /* only keeps the loop's poll from sleeping: see on_check */
}

/* After the loop's poll. A pass can queue work for another: a read it
 * served whose caller proposes a write at once (a config publish reads its
 * head, then writes), and that write used to wait in the queue for the
 * next tick (10-20 ms for every publish). So passes run while work is
 * due, a few at most; work still due, or queued later in the loop's turn
 * (node_propose, node_read_index from a timer or a prepare callback),
 * keeps the idle handle on, so that the next poll does not sleep. */
static void on_check(uv_check_t *h)
{
    struct node *n = h->data;
    for (int pass = 0; pass < 4 && n->dirty; pass++) {
        process(n);
    }
    node__wake(n);
}

void node__wake(struct node *n)
{
    if (n->dirty && n->failed == 0 && !n->closing) {
        uv_idle_start(&n->busy, on_busy);
    } else if (!uv_is_closing((uv_handle_t *)&n->busy)) {
        uv_idle_stop(&n->busy); /* a closing node must not spin meanwhile */
    }
}

/* ---------------------------------------------------------- completions */

/* Large files are deleted a piece at a time (base/discard.h): a WAL
 * fdatasync beside the deletion waits 4-10 ms at most, not the whole
 * deletion (the rename of a new 189 MB checkpoint copy over the old one
 * held it 33-61 ms; each released 16 MiB segment 20-41 ms, strace, 15k
 * puts/s open loop). The loop's thread leaves the shrinking to its pool. */
struct discard_work {
    uv_work_t work;
    int fd;
};

static void discard_work(uv_work_t *w)
{
    struct discard_work *d = w->data;
    discard_fd(d->fd);
}

static void discard_done(uv_work_t *w, int status)
{
    if (status != 0) {
        discard_work(w); /* not run (cancelled): the fd is still ours */
    }
    mem_free(w->data);
}

/* discard_fd from the loop's thread: on the loop's pool. */
void node__discard_fd_async(struct node *n, int fd)
{
    struct discard_work *d = mem_calloc(1, sizeof(*d));
    if (d == NULL) {
        close(fd); /* the file is freed whole, here */
        return;
    }
    d->fd = fd;
    d->work.data = d;
    if (uv_queue_work(n->loop, &d->work, discard_work, discard_done) != 0) {
        discard_fd(fd);
        mem_free(d);
    }
}

/* discard_path from the loop's thread: unlinked here (microseconds
 * while the descriptor holds the inode), shrunk on the loop's pool. */
int node__discard_path_async(struct node *n, const char *path)
{
    int fd;
    int rc = discard_unlink(path, &fd);
    if (fd >= 0) {
        node__discard_fd_async(n, fd);
    }
    return rc;
}

/* Released WAL segments (log_options.discard). The unlink of a written
 * segment frees its cached pages and blocks (above): several in a row
 * after a large checkpoint, and on the WAL thread no write could be
 * synced meanwhile (an open-loop load saw its puts stall that long at each
 * checkpoint's end). The WAL thread renames each to NAME.del (microseconds)
 * and leaves the rest to one thread of the loop's pool; log_open removes
 * leftovers. */
static void trash_unlink(const char *path)
{
    int rc = discard_path(path);
    if (rc != 0 && rc != -ENOENT) {
        LOGW("node", "removing the released WAL segment %s: %s", path,
             err_str(rc));
    }
}

static void wal_discard(void *arg, const char *name)
{
    struct node *n = arg;
    bool queued = false;
    uv_mutex_lock(&n->trash_mu);
    if (n->trash_n < NODE_TRASH_MAX) {
        snprintf(n->trash[n->trash_n++], LOG_NAME_MAX, "%s", name);
        queued = true;
    }
    uv_mutex_unlock(&n->trash_mu);
    if (queued) {
        atomic_store(&n->trash_pending, 1);
        return;
    }
    char path[sizeof(n->dir_wal) + LOG_NAME_MAX + 16];
    int len = snprintf(path, sizeof(path), "%s/%s", n->dir_wal, name);
    if (len > 0 && (size_t)len < sizeof(path)) {
        trash_unlink(path); /* the queue is full: here, as before */
    }
}

/* One batch of released segments, unlinked one after the other on one
 * thread of the pool (in parallel they would only contend for the file
 * system's journal). */
struct trash_work {
    uv_work_t work;
    int count;
    char paths[NODE_TRASH_MAX]
              [sizeof(((struct node *)0)->dir_wal) + LOG_NAME_MAX + 16];
};

static void trash_work(uv_work_t *w)
{
    struct trash_work *t = w->data;
    for (int i = 0; i < t->count; i++) {
        trash_unlink(t->paths[i]);
    }
}

static void trash_done(uv_work_t *w, int status)
{
    struct trash_work *t = w->data;
    if (status != 0) {
        trash_work(w); /* cancelled: at close, nothing waits on it */
    }
    mem_free(t);
}

/* Unlink what the WAL thread released: on the thread pool while the node
 * runs (sync: at close, or when the pool cannot take it). */
static void trash_drain(struct node *n, bool sync)
{
    if (!n->trash_mu_on || atomic_exchange(&n->trash_pending, 0) == 0) {
        return;
    }
    struct trash_work *t = mem_calloc(1, sizeof(*t));
    uv_mutex_lock(&n->trash_mu);
    for (int i = 0; t != NULL && i < n->trash_n; i++) {
        int len = snprintf(t->paths[t->count], sizeof(t->paths[0]), "%s/%s",
                           n->dir_wal, n->trash[i]);
        t->count += len > 0 && (size_t)len < sizeof(t->paths[0]);
    }
    n->trash_n = 0;
    uv_mutex_unlock(&n->trash_mu);
    if (t == NULL) {
        return; /* out of memory: log_open removes them at the next start */
    }
    t->work.data = t;
    if (t->count == 0 || sync ||
        uv_queue_work(n->loop, &t->work, trash_work, trash_done) != 0) {
        trash_work(&t->work);
        mem_free(t);
    }
}

static void on_wal_done(struct node *n)
{
    struct wal_job *j = node__jobq_take_all(&n->wal_out, false, NULL);
    trash_drain(n, false);
    while (j != NULL) {
        struct wal_job *next = j->next;
        int rc = j->err;
        if (j->read_hi != 0) {
            /* a read failure is the follower's delay, not the member's */
            node__logmem_read_done(n, j, rc);
            node__wal_job_free(j);
            j = next;
            continue;
        }
        if (rc == 0 && j->ents_count > 0) {
            rc = raft_memstorage_append(&n->ms, j->ents, j->ents_count);
        }
        if (rc == 0 && j->has_hard) {
            raft_memstorage_set_hard_state(&n->ms, &j->hard);
        }
        if (rc == 0 && !n->closing) {
            send_after(n, j);
            if (j->reset_index != 0) {
                n->snap_wal_done = true;
                if (j->ents_count > 0) {
                    const struct raft_entry *l = &j->ents[j->ents_count - 1];
                    n->snap_persist_index = l->index;
                    n->snap_persist_term = l->term;
                }
                node__snap_install_check(n);
            } else if (j->ents_count > 0) {
                const struct raft_entry *last = &j->ents[j->ents_count - 1];
                rc = raft_persisted(&n->raft, last->index, last->term);
            }
        }
        if (rc != 0 && n->failed == 0) {
            fail_node(n, rc, "persisting the Raft log");
        }
        node__wal_job_free(j);
        j = next;
    }
    n->dirty = true;
}

void node__waiter_finish(struct node *n, uint64_t id,
                         const struct apply_result *res)
{
    struct waiter *w = &n->waiters[id % n->waiters_cap];
    if (w->id != id) {
        return; /* timed out already, or proposed before a restart */
    }
    node_propose_cb cb = w->cb;
    void *ctx = w->ctx;
    w->id = 0;
    n->pending--;
    if (res->err == 0) {
        n->proposals_committed++;
    } else {
        n->proposals_failed++;
    }
    cb(ctx, res);
}

/* A snapshot was installed instead of applying the entries it covers, so
 * the answers of our proposals among them were never produced. Each waiter
 * whose id is at or below our origin's last applied id in the new store
 * either ran in the snapshot's history or was overtaken (apply.h, exactly
 * once); which, nothing here can tell. Answer them now as timed out
 * (outcome unknown). Left waiting, a repeat of such a proposal later in the
 * log would answer ERR_PROPOSAL_DROPPED, "no effect", for a write that took
 * effect. Waiters above last_id are still in the log ahead of us. */
static void answer_swallowed_waiters(struct node *n, uint64_t last_id)
{
    uint64_t end = last_id < n->next_id ? last_id + 1 : n->next_id;
    bool skip = last_id >= n->next_id;
    if (skip) {
        /* As at start: ids at or below last_id would be refused as
         * repeats. Moved before the answers, which may propose again. */
        n->next_id = last_id + 1;
    }
    for (uint64_t id = n->oldest_id; id < end; id++) {
        struct apply_result res = {.id = id, .err = ERR_TIMEOUT};
        node__waiter_finish(n, id, &res); /* ignores freed slots */
    }
    if (skip) {
        n->oldest_id = last_id + 1; /* nothing live below: never issued */
    }
}

static void deliver_results(struct node *n, const struct apply_job *j)
{
    size_t off = 0;
    while (off + sizeof(struct node__result) <= j->results.len) {
        struct node__result r;
        struct apply_result res;
        memcpy(&r, j->results.data + off, sizeof(r));
        off += sizeof(r);
        res.id = r.id;
        res.op = (enum apply_op)r.op;
        res.err = r.err;
        res.revision = r.revision;
        res.resp = r.resp_len > 0 ? j->results.data + off : NULL;
        res.resp_len = r.resp_len;
        off += (r.resp_len + 7) & ~(size_t)7;
        node__waiter_finish(n, r.id, &res);
    }
}

static size_t get_kv(const uint8_t *p, struct kv_kv *kv)
{
    uint32_t kl;
    uint32_t vl;
    memcpy(&kv->create_revision, p, 8);
    memcpy(&kv->mod_revision, p + 8, 8);
    memcpy(&kv->version, p + 16, 8);
    memcpy(&kv->lease, p + 24, 8);
    memcpy(&kl, p + 32, 4);
    memcpy(&vl, p + 36, 4);
    kv->key = p + 40;
    kv->key_len = kl;
    kv->value = p + 40 + kl;
    kv->value_len = vl;
    return 40 + (size_t)kl + vl;
}

static void deliver_events(struct node *n, const struct apply_job *j)
{
    struct kv_event *evs = NULL;
    size_t count = 0;
    size_t off = 0;
    if (j->events.len == 0) {
        return;
    }
    if (j->events_count > 0) {
        evs = mem_alloc(j->events_count * sizeof(*evs));
    }
    while (off + 2 <= j->events.len) {
        uint8_t type = j->events.data[off];
        uint8_t flag = j->events.data[off + 1];
        off += 2;
        if (type == 0xff) { /* lease change */
            int64_t id;
            int64_t ttl;
            memcpy(&id, j->events.data + off, 8);
            memcpy(&ttl, j->events.data + off + 8, 8);
            off += 16;
            if (n->obs.lease != NULL) {
                n->obs.lease(n->obs.ctx, id, ttl, flag != 0);
            }
            continue;
        }
        struct kv_event ev;
        memset(&ev, 0, sizeof(ev));
        ev.type = (enum kv_event_type)type;
        off += get_kv(j->events.data + off, &ev.kv);
        if (flag == 1) {
            ev.has_prev = true;
            off += get_kv(j->events.data + off, &ev.prev);
        }
        ev.prev_omitted = flag == 2;
        if (evs != NULL && count < j->events_count) {
            evs[count++] = ev;
        }
    }
    if (count > 0 && n->obs.events != NULL) {
        n->obs.events(n->obs.ctx, evs, count, j->rev);
    }
    mem_free(evs);
}

static void serve_reads(struct node *n)
{
    /* Reads wait in FIFO order; serve the ready ones from the front and
     * clear the others in place (they keep their slot until the front). */
    for (size_t k = 0; k < n->reads_count; k++) {
        struct read_wait *w = &n->reads[(n->reads_head + k) % n->reads_cap];
        if (w->cb != NULL && w->index != 0 && w->index <= n->applied) {
            node_read_cb cb = w->cb;
            w->cb = NULL;
            cb(w->ctx, 0);
        }
    }
    while (n->reads_count > 0 && n->reads[n->reads_head].cb == NULL) {
        n->reads_head = (n->reads_head + 1) % n->reads_cap;
        n->reads_count--;
    }
    if (n->reads_count == 0) {
        /* Start over at the front: a head walking the whole ring would
         * touch every page of it in turn (resident memory that grows for
         * minutes, then stays). */
        n->reads_head = 0;
    }
}

/* A copy at the period waits until the entries applied since the newest
 * checkpoint add up to a CKPT_COPY_SHARE-th of the store in use, so that
 * what the copies write stays in proportion to what the writes log: a
 * copy writes the whole store, and at every --snapshot-count entries a
 * large store was copied again and again (1.4M puts of 256 B over 100k
 * keys, a 680 MB store: a copy every 1.5 s under 100 clients, and the CPU
 * per put up from 14 to 20 us; BENCHMARKS.md, "Copies in proportion to
 * the store"). The WAL kept meanwhile is at most that share of the store
 * (etcd keeps 5 segments of 64 MB). Stores under CKPT_COPY_FLOOR
 * (CAIRN_TEST_CKPT_COPY_FLOOR_KB for tests) copy at every period, and no
 * copy waits past CKPT_COPY_PERIODS periods (the index and term of each
 * entry since stay in memory, 32 bytes each). */
#define CKPT_COPY_SHARE   2
#define CKPT_COPY_FLOOR   ((uint64_t)64 << 20)
/* A copy of a store with fewer bytes in use is read straight into its
 * file, not through memory (node_ckpt.c, ckpt_read);
 * CAIRN_TEST_CKPT_MEMORY_FLOOR_KB sets it for tests. */
#define CKPT_MEMORY_FLOOR ((uint64_t)32 << 20)
#define CKPT_COPY_PERIODS 8

static bool copy_waits(struct node *n)
{
    if (n->applied >=
            n->snap_index + CKPT_COPY_PERIODS * n->cfg.snapshot_count ||
        node__checkpoint_due(n)) {
        return false; /* or a pin's growth calls it (auto, after a pause) */
    }
    if (n->copy_due_bytes == 0) {
        uint64_t db, in_use;
        node_store_size(n, &db, &in_use);
        n->copy_due_bytes =
            in_use >= n->ckpt_copy_floor ? in_use / CKPT_COPY_SHARE : 1;
    }
    return n->applied_bytes - n->ckpt_bytes_at < n->copy_due_bytes;
}

/* Every snapshot_count applied entries: a checkpoint of the store (on a
 * worker thread, node_ckpt.c), then node__snapshot_finish. And right after
 * a defragmentation (ckpt_force): the checkpoint is a copy of the store as
 * it was, and after a compaction the old copy keeps every page compaction
 * emptied, so the data directory would not shrink with the store until the
 * next period (300k puts, compact, defrag: the checkpoint stayed 117 MiB
 * beside a 39 MiB store). The snapshot index may then equal the previous
 * one: the metadata is the same and only the copy is new.
 *
 * Which kind (--store-checkpoint): copies, or in place, or with auto a
 * copy while the writes come (one sequential write of the compacted
 * store, where in place would write back every page they dirtied) and in
 * place once they pause (rest_check) or right after a defrag (whose new
 * file is recorded and synced already): that removes the copy, about as
 * large as the store. */
static void maybe_snapshot(struct node *n)
{
    int rc;
    bool period = n->applied >= n->snap_index + n->cfg.snapshot_count;
    bool early =
        !period && !n->ckpt_force && !n->ckpt_rest && node__checkpoint_due(n);
    if ((!period && !n->ckpt_force && !n->ckpt_rest && !early) ||
        n->ckpt_running || n->snap_installing || n->adopt_pending ||
        n->closing || n->applied == 0) {
        return;
    }
    /* auto: after a pause the early ones stay in place while what they
     * wrote back since is less than a copy would write (the store's bytes
     * in use); then a copy, and copies until the next pause (rent or buy:
     * a burst between pauses costs no copy, and steady writes cost at
     * most about twice what copies alone would). What one writes back is
     * what the writes dirtied under the pin: about twice the early
     * trigger's bytes (BENCHMARKS.md, "Checkpoints chosen by the load"). */
    bool inplace =
        n->ckpt_inplace && (n->cfg.checkpoint_mode == NODE_CKPT_IN_PLACE ||
                            n->ckpt_force || n->ckpt_rest);
    if (early && n->ckpt_inplace && !inplace) {
        uint64_t db, in_use;
        node_store_size(n, &db, &in_use);
        inplace = n->ckpt_early_bytes + 2 * n->ckpt_grow_bytes <= in_use;
        n->ckpt_early_bytes += inplace ? 2 * n->ckpt_grow_bytes : 0;
    }
    if (period && !inplace && !n->ckpt_force && !n->ckpt_rest &&
        copy_waits(n)) {
        return;
    }
    n->ckpt_force = false;
    n->ckpt_rest = false;
    n->copy_due_bytes = 0;
    n->ckpt_bytes_at = n->applied_bytes;
    n->ckpt_at = n->applied;
    n->snap_index = n->applied; /* a failure retries one period later */
    /* The snapshot's metadata is fixed now, on the loop; the worker thread
     * writes it (with the store's copy) so that no fsync runs here. */
    if (n->ckpt_at == n->ms.snap.meta.index) {
        n->ckpt_meta = n->ms.snap.meta; /* forced, nothing applied since */
    } else if (raft_compact(&n->raft, n->ckpt_at, &n->ckpt_meta) != 0) {
        return;
    }
    rc = node__checkpoint_start(n, inplace);
    if (rc != 0) {
        LOGW("node", "starting a store checkpoint: %s", err_str(rc));
    }
}

void node__snapshot_check(struct node *n)
{
    maybe_snapshot(n);
}

/* The checkpoint holds the store at or past ckpt_at: record the Raft
 * snapshot there, and drop what slow followers no longer need from memory
 * and from the WAL (on the WAL thread, which owns the log). */
void node__snapshot_finish(struct node *n)
{
    struct raft_snapshot_meta meta = n->ckpt_meta;
    struct wal_job *j;
    uint64_t at = meta.index;
    uint64_t keep_from = at > SNAPSHOT_CATCHUP ? at - SNAPSHOT_CATCHUP : 0;
    if (keep_from > n->ms.snap.meta.index) {
        struct raft_snapshot_meta m2;
        if (raft_compact(&n->raft, keep_from, &m2) == 0) {
            (void)raft_memstorage_compact(&n->ms, &m2, NULL, 0);
        }
    }
    j = mem_calloc(1, sizeof(*j));
    if (j != NULL) {
        buf_init(&j->after, 0);
        buf_init(&j->reset_conf, 0);
        j->release_before = keep_from;
        n->wal_jobs++;
        node__jobq_push(&n->wal_in, j);
    }
    char kind[96];
    if (n->ckpt_last_inplace) {
        snprintf(kind, sizeof(kind), "in place, %llu ms",
                 (unsigned long long)n->ckpt_last_ms);
    } else {
        snprintf(kind, sizeof(kind),
                 "a copy, %.1f MB in %llu ms (read in %llu ms%s)",
                 (double)n->ckpt_last_bytes / 1e6,
                 (unsigned long long)n->ckpt_last_ms,
                 (unsigned long long)n->ckpt_last_pinned_ms,
                 n->ckpt_last_memory ? ", through memory" : "");
    }
    LOGI("node",
         "snapshot at index %llu (term %llu; the store's checkpoint %s); "
         "log kept from %llu",
         (unsigned long long)meta.index, (unsigned long long)meta.term, kind,
         (unsigned long long)keep_from);
}

static void on_apply_done(struct node *n)
{
    struct apply_job *j = node__jobq_take_all(&n->apply_out, false, NULL);
    while (j != NULL) {
        struct apply_job *next = j->next;
        if (j->defrag && j->err != 0) {
            /* A failed defragmentation leaves the old file in place: it is
             * the caller's error, not the member's. */
            node_read_cb cb = n->defrag_cb;
            n->defrag_cb = NULL;
            if (cb != NULL) {
                cb(n->defrag_ctx, j->err);
            }
        } else if (j->err != 0) {
            if (n->failed == 0) {
                int err = j->err;
                struct statvfs sv;
                /* LMDB reports a short write as EIO; on a full disk the
                 * cause is the space, and the operator should hear so. */
                if (err == -EIO && statvfs(n->dir_kv, &sv) == 0 &&
                    (uint64_t)sv.f_bavail * sv.f_frsize < ((uint64_t)8 << 20)) {
                    err = -ENOSPC;
                }
                (void)node__state_damaged(n);
                fail_node(n, err, "applying to the store");
            }
        } else {
            if (j->install_index != 0) {
                /* Before this job's results: one of them may be a repeat's
                 * ERR_PROPOSAL_DROPPED for a swallowed waiter. */
                answer_swallowed_waiters(n, j->install_last_id);
                n->snap_store_done = true;
                node__snap_install_check(n);
            }
            if (j->defrag) {
                n->ckpt_force = true; /* maybe_snapshot, below */
            }
            if (j->defrag && n->defrag_cb != NULL) {
                node_read_cb cb = n->defrag_cb;
                n->defrag_cb = NULL;
                cb(n->defrag_ctx, 0);
            }
            /* Each job's own entries (one merged into the job before it
             * comes back with applied 0, its entries covered). */
            for (size_t i = 0; i < j->ents_count; i++) {
                if (j->ents[i].index > n->bytes_index) {
                    n->applied_bytes += j->ents[i].len;
                    n->bytes_index = j->ents[i].index;
                }
            }
            if (j->applied > n->store_applied) {
                n->store_applied = j->applied;
            }
            report_applied(n);
            if (j->members_changed) {
                (void)node__members_reload(n);
                node__transport_sync(n);
            }
            deliver_events(n, j);
            note_lead_applied(n);
            deliver_results(n, j);
        }
        node__apply_job_free(j);
        j = next;
    }
    serve_reads(n);
    maybe_snapshot(n);
    n->dirty = true;
}

/* ------------------------------------------------------ timeouts, ticks */

static void expire_waiters(struct node *n, uint64_t now, bool all)
{
    while (n->oldest_id < n->next_id) {
        struct waiter *w = &n->waiters[n->oldest_id % n->waiters_cap];
        if (w->id == n->oldest_id) {
            if (!all && w->deadline_ms > now) {
                break;
            }
            struct apply_result res = {.id = w->id,
                                       .err = all ? ERR_STOPPED : ERR_TIMEOUT};
            node__waiter_finish(n, w->id, &res);
        }
        n->oldest_id++;
    }
}

static void expire_reads(struct node *n, uint64_t now, bool all)
{
    for (size_t k = 0; k < n->reads_count; k++) {
        struct read_wait *w = &n->reads[(n->reads_head + k) % n->reads_cap];
        if (w->cb != NULL && (all || w->deadline_ms <= now)) {
            node_read_cb cb = w->cb;
            w->cb = NULL;
            cb(w->ctx, all ? ERR_STOPPED : ERR_TIMEOUT);
        }
    }
    serve_reads(n);
}

static void on_published(void *ctx, const struct apply_result *res)
{
    struct node *n = ctx;
    n->publish_pending = false;
    n->published = res->err == 0;
}

/* Tell the cluster our name and client URLs, once per start (etcd's
 * publish), retried on every tick until it lands. */
static void publish(struct node *n)
{
    Cairnpb__MemberAttributes a = CAIRNPB__MEMBER_ATTRIBUTES__INIT;
    char urls[NODE_URLS_MAX];
    char *list[16];
    size_t count = 0;
    uint8_t buf[NODE_URLS_MAX + NODE_NAME_MAX + 64];
    char *save = NULL;
    if (n->published || n->publish_pending || n->leader == RAFT_NONE ||
        n->cfg.name == NULL) {
        return;
    }
    snprintf(urls, sizeof(urls), "%s",
             n->cfg.client_urls != NULL ? n->cfg.client_urls : "");
    for (char *t = strtok_r(urls, ",", &save); t != NULL && count < 16;
         t = strtok_r(NULL, ",", &save)) {
        list[count++] = t;
    }
    a.id = n->cfg.member_id;
    a.name = (char *)n->cfg.name;
    a.n_client_urls = count;
    a.client_urls = list;
    a.apply_level = n->apply_level;
    if (cairnpb__member_attributes__get_packed_size(&a) > sizeof(buf)) {
        n->published = true; /* cannot fit: give up rather than spin */
        return;
    }
    size_t len = cairnpb__member_attributes__pack(&a, buf);
    int prc = node_propose(n, APPLY_MEMBER_ATTR, buf, len, 0, on_published, n);
    if (prc == 0) {
        n->publish_pending = true;
    }
}

/* --store-checkpoint auto: once the applied index has stood still for
 * ckpt_rest_ms, one checkpoint in place in that pause, if it buys
 * anything: a copy to remove, the log to release (SNAPSHOT_CATCHUP
 * entries past the last checkpoint), or a quarter of the early trigger's
 * pages to reuse. Below those a pause costs nothing. */
static void rest_check(struct node *n, uint64_t now)
{
    if (n->cfg.checkpoint_mode != NODE_CKPT_AUTO || !n->ckpt_inplace ||
        n->kv == NULL) {
        return;
    }
    if (n->applied != n->rest_applied || n->rest_since_ms == 0) {
        n->rest_applied = n->applied;
        n->rest_since_ms = now;
        n->rest_taken = false;
        return;
    }
    if (now - n->rest_since_ms >= n->ckpt_rest_ms) {
        n->ckpt_early_bytes = 0; /* a pause: the next burst starts over */
    }
    if (n->rest_taken || n->ckpt_running ||
        now - n->rest_since_ms < n->ckpt_rest_ms) {
        return;
    }
    bool worth = node__checkpoint_copy_exists(n) ||
                 n->applied >= n->snap_index + SNAPSHOT_CATCHUP ||
                 kv_ckpt_growth(n->kv) >= n->ckpt_grow_pages / 4;
    if (worth) {
        n->ckpt_rest = true;
        maybe_snapshot(n);
        n->ckpt_rest = false;
    }
    /* once a pause; an install under way: once it is done */
    n->rest_taken = !worth || !(n->snap_installing || n->adopt_pending);
}

/* The store file's dirty pages, written back at a pace. The store
 * commits without fsync, so the kernel writes its pages back when the
 * oldest has been dirty for vm.dirty_expire_centisecs (30 s): all of
 * them at once, 160-220 MB after 30 s of 15k puts/s, and every WAL
 * fdatasync queued behind that burst (a put stalled 0.3-0.5 s). This
 * walks the file in pieces, a whole pass every
 * STORE_WB_PASS_MS, shorter than the expiry: each page still goes to the
 * disk about once per pass (a page rewritten meanwhile is written once,
 * as the kernel's own write-back would; a full write-back every second
 * wrote 70% more and raised the p90 tenfold), and no burst builds up.
 * 15k puts/s open loop, 40 s, two runs each (BENCHMARKS.md): the load's
 * p99 0.19-0.23 s against 0.61-0.78, a probe's longest put 112-128 ms
 * against 381-506, the same bytes written; 100 clients closed loop within
 * the noise. CAIRN_TEST_STORE_WB_MS sets the pass (0: none). */
#define STORE_WB_PASS_MS 20000
#define STORE_WB_PIECE   ((uint64_t)256 << 10) /* at least, per call */

struct wb_work {
    uv_work_t work;
    struct node *n;
    uint64_t off;
    uint64_t bytes;
};

static void wb_run(uv_work_t *w)
{
    struct wb_work *b = w->data;
    struct node *n = b->n;
    uv_rwlock_rdlock(&n->store_lock);
    if (n->kv != NULL) {
        (void)kv_writeback(n->kv, &b->off, b->bytes);
    }
    uv_rwlock_rdunlock(&n->store_lock);
}

static void wb_done(uv_work_t *w, int status)
{
    struct wb_work *b = w->data;
    struct node *n = b->n;
    (void)status;
    n->wb_off = b->off;
    n->wb_running = false;
    mem_free(b);
    node__close_finish(n);
}

/* Called at every tick (10 ms by default): the file's share of the time
 * since the last piece, once that is STORE_WB_PIECE or a second's. */
static void store_writeback(struct node *n, uint64_t now)
{
    if (n->wb_pass_ms == 0 || n->wb_running || n->closing || n->kv == NULL) {
        return;
    }
    if (n->wb_last_ms == 0 || now < n->wb_last_ms) {
        n->wb_last_ms = now;
        return;
    }
    /* The file's size only: kv_size would walk the freelist every tick. */
    uint64_t db = n->size_db;
    if (uv_rwlock_tryrdlock(&n->store_lock) == 0) {
        db = kv_db_bytes(n->kv);
        uv_rwlock_rdunlock(&n->store_lock);
    }
    uint64_t elapsed = now - n->wb_last_ms;
    uint64_t bytes = db / n->wb_pass_ms * elapsed;
    if (bytes < STORE_WB_PIECE && elapsed < 1000) {
        return;
    }
    struct wb_work *b = mem_calloc(1, sizeof(*b));
    if (b == NULL) {
        return;
    }
    n->wb_last_ms = now;
    b->n = n;
    b->off = n->wb_off;
    b->bytes = bytes > 0 ? bytes : STORE_WB_PIECE;
    b->work.data = b;
    if (uv_queue_work(n->loop, &b->work, wb_run, wb_done) != 0) {
        mem_free(b);
        return;
    }
    n->wb_running = true;
}

static void on_tick(uv_timer_t *h)
{
    struct node *n = h->data;
    uint64_t now = clock_mono_ns() / 1000000;
    if (n->failed != 0) {
        return;
    }
    /* etcd warns when a leader misses its heartbeat slot; a late tick here
     * means the loop was held up (by what, the log around it tells). */
    if (n->last_tick_ms != 0 &&
        now - n->last_tick_ms >
            5 * (uint64_t)n->cfg.heartbeat_ms + n->tick_ms) {
        LOGW("node",
             "the event loop was held up for %llu ms (ticks every "
             "%u ms; role %s)",
             (unsigned long long)(now - n->last_tick_ms), n->cfg.heartbeat_ms,
             raft_role_str(n->role));
    }
    n->last_tick_ms = now;
    (void)raft_tick(&n->raft);
    publish(n);
    node__move_check(n, now);
    rest_check(n, now);
    store_writeback(n, now);
    expire_waiters(n, now, false);
    expire_reads(n, now, false);
    /* A round unanswered for an election timeout (its messages were lost,
     * or the leader went away) is asked again. */
    if (n->read_round_sent != 0 &&
        (n->leader == RAFT_NONE ||
         now - n->read_round_sent_ms > n->cfg.election_ms)) {
        reads_retry(n);
    }
    n->dirty = true;
    node__wake(n); /* the tick's work (heartbeats) now, not after the poll */
}

/* ------------------------------------------------------------ transport */

/* The leader refused a membership change we forwarded (raft.h,
 * RAFT_MSG_PROP_REFUSED): answer its waiter with the leader's error now.
 * The change carries the waiter's id and the proposing member's
 * (node_member_change); anything else in such a message is ignored. */
static void conf_refused(struct node *n, const struct raft_msg *m)
{
    struct raft_conf_change cc;
    struct apply_result res;
    uint64_t id;
    uint64_t origin;
    int64_t err = -(int64_t)m->reject_hint;
    if (m->from != n->leader || m->entries_count != 1 ||
        m->entries[0].type != RAFT_ENTRY_CONF ||
        raft_conf_change_decode(m->entries[0].data, m->entries[0].len, &cc) !=
            0 ||
        cc.ctx_len < 16 || err >= 0 || err < INT_MIN) {
        return;
    }
    memcpy(&id, cc.ctx, 8);
    memcpy(&origin, (const uint8_t *)cc.ctx + 8, 8);
    if (origin != n->cfg.member_id || id == 0 ||
        n->waiters[id % n->waiters_cap].id != id ||
        !n->waiters[id % n->waiters_cap].conf) {
        return; /* answered, timed out, or not a change of ours */
    }
    memset(&res, 0, sizeof(res));
    res.id = id;
    res.err = err == ERR_BUSY ? ERR_TOO_MANY_REQUESTS : (int)err;
    node__waiter_finish(n, id, &res);
}

static void on_peer_msg(void *owner, uint64_t from, const uint8_t *data,
                        size_t len)
{
    struct node *n = owner;
    struct raft_msg m;
    if (n->failed != 0 || n->closing) {
        return;
    }
    if (raft_msg_decode(data, len, 0, &m) != 0) {
        return; /* the transport checked the frame; a bad message is dropped */
    }
    if (m.type == RAFT_MSG_SNAP || m.from != from) {
        /* Snapshots arrive only on the snapshot channel, with their data;
         * and a member speaks only for itself. */
        raft_msg_free_decoded(&m);
        return;
    }
    if (m.type == RAFT_MSG_PROP_REFUSED) {
        conf_refused(n, &m);
        raft_msg_free_decoded(&m);
        return;
    }
    int rc = raft_step(&n->raft, &m);
    if (rc != 0 && n->failed == 0) {
        fail_node(n, rc, "stepping a peer message");
    }
    raft_msg_free_decoded(&m);
    n->dirty = true;
}

static void on_unreachable(void *owner, uint64_t peer, int err)
{
    struct node *n = owner;
    struct transport_peer_stats ps;
    if (err == -EACCES && transport_peer_stats(&n->transport, peer, &ps) == 0 &&
        strstr(ps.last_error, "permanently removed") != NULL &&
        n->failed == 0) {
        LOGE("node", "member %016llx refused us: %s", (unsigned long long)peer,
             ps.last_error);
        fail_node(n, ERR_MEMBER_REMOVED, "the cluster refuses this member");
        return;
    }
    raft_report_unreachable(&n->raft, peer);
    n->dirty = true;
}

bool node__in_conf(const struct node *n, uint64_t id)
{
    const struct raft_conf *c = &n->raft.conf;
    for (uint32_t i = 0; i < c->voters_count; i++) {
        if (c->voters[i] == id) {
            return true;
        }
    }
    for (uint32_t i = 0; i < c->learners_count; i++) {
        if (c->learners[i] == id) {
            return true;
        }
    }
    return false;
}

static int on_accept(void *owner, uint64_t from, enum transport_channel ch)
{
    struct node *n = owner;
    (void)ch;
    for (size_t i = 0; i < n->members_count; i++) {
        if (n->members[i].id == from) {
            return 0;
        }
    }
    if (node__in_conf(n, from)) {
        return 0; /* being added */
    }
    /* Not in the member list: removed (or never added). The dialler hears
     * why and stops (on_unreachable). */
    return ERR_MEMBER_REMOVED;
}

/* The host of the first URL in urls when it is a DNS name (for the TLS
 * name check), else "". */
void node__peer_host(const char *urls, char *out, size_t out_len)
{
    const char *p = strstr(urls, "://");
    p = p != NULL ? p + 3 : urls;
    size_t len = strcspn(p, ",/");
    const char *colon = memrchr(p, ':', len);
    size_t hl = colon != NULL ? (size_t)(colon - p) : len;
    struct in_addr a4;
    out[0] = '\0';
    if (hl == 0 || hl >= out_len || p[0] == '[') {
        return; /* an IPv6 literal, or nothing */
    }
    memcpy(out, p, hl);
    out[hl] = '\0';
    if (inet_pton(AF_INET, out, &a4) == 1) {
        out[0] = '\0';
    }
}

/* First peer URL of m as "ip:port", resolving a host name. */
int node__peer_addr(const char *urls, char *out, size_t out_len)
{
    char host[256];
    char port[16];
    const char *p = urls;
    const char *end;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    bool tls = false;
    if (strncmp(p, "http://", 7) == 0) {
        p += 7;
    } else if (strncmp(p, "https://", 8) == 0) {
        p += 8;
        tls = true;
    }
    end = strchr(p, ',');
    size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
    const char *colon = memrchr(p, ':', len);
    if (colon == NULL || (size_t)(colon - p) >= sizeof(host) ||
        len - (size_t)(colon - p) - 1 >= sizeof(port)) {
        return ERR_INVALID;
    }
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    memcpy(port, colon + 1, len - (size_t)(colon - p) - 1);
    port[len - (size_t)(colon - p) - 1] = '\0';
    if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL) {
        return ERR_INVALID;
    }
    char ip[64];
    struct sockaddr_in *sin = (struct sockaddr_in *)res->ai_addr;
    inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
    /* the scheme stays: https:// tells the transport to dial with TLS */
    snprintf(out, out_len, "%s%s:%s", tls ? "https://" : "", ip, port);
    freeaddrinfo(res);
    return 0;
}

/* The cluster id a joining member learnt, kept in member/cluster (8 bytes,
 * big-endian; written to a temp file, fsynced, renamed). */
static void cluster_id_save(struct node *n)
{
    char path[512];
    char tmp[520];
    uint8_t b[8];
    int fd;
    snprintf(path, sizeof(path), "%s/cluster", n->dir_member);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    be64_put(b, n->cfg.cluster_id);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, b, 8) != 8 || fsync(fd) != 0) {
        LOGW("node", "saving the cluster id: %s", strerror(errno));
    } else if (rename(tmp, path) != 0) {
        LOGW("node", "saving the cluster id: %s", strerror(errno));
    }
    if (fd >= 0) {
        close(fd);
    }
}

static void cluster_id_load(struct node *n)
{
    char path[512];
    uint8_t b[8];
    int fd;
    snprintf(path, sizeof(path), "%s/cluster", n->dir_member);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (n->cfg.join_existing) {
            n->cfg.cluster_id = 0; /* learnt from the first peer */
        }
        return;
    }
    if (read(fd, b, 8) == 8 && be64_get(b) != 0) {
        n->cfg.cluster_id = be64_get(b);
    }
    close(fd);
}

static void on_cluster_learnt(void *owner, uint64_t cluster_id)
{
    struct node *n = owner;
    n->cfg.cluster_id = cluster_id;
    n->apply.cfg.cluster_id = cluster_id; /* no entry applied before this */
    cluster_id_save(n);
    LOGI("node", "joined cluster %016llx", (unsigned long long)cluster_id);
}

int node_peer_tls_set(struct node *n, struct ssl_ctx_st *server_ctx,
                      struct ssl_ctx_st *client_ctx)
{
    if (n->closing) {
        return 0;
    }
    /* Kept for a transport started later, as transport_tls_set keeps
     * them: a server context only replaces one (TLS stays TLS). */
    if (server_ctx != NULL && n->cfg.peer_tls_server_ctx != NULL) {
        SSL_CTX_up_ref(server_ctx);
        SSL_CTX_free(n->cfg.peer_tls_server_ctx);
        n->cfg.peer_tls_server_ctx = server_ctx;
    }
    if (client_ctx != NULL) {
        SSL_CTX_up_ref(client_ctx);
        SSL_CTX_free(n->cfg.peer_tls_client_ctx);
        n->cfg.peer_tls_client_ctx = client_ctx;
    }
    if (!n->transport_on) {
        return 0;
    }
    return transport_tls_set(&n->transport, server_ctx, client_ctx);
}

int node__transport_start(struct node *n, bool alone_too)
{
    struct transport_config tc;
    int rc;
    if (n->cfg.listen_peer == NULL || (n->members_count <= 1 && !alone_too)) {
        return 0;
    }
    transport_config_init(&tc);
    tc.cluster_id = n->cfg.cluster_id;
    /* An append may pass max_msg_bytes by one entry (raft.h). */
    tc.max_msg_bytes = (size_t)(limits_default(LIMIT_RAFT_MSG_BYTES) +
                                limits_default(LIMIT_RAFT_ENTRY_BYTES) + 65536);
    tc.self_id = n->cfg.member_id;
    tc.seed = n->cfg.seed;
    tc.owner = n;
    tc.recv_cb = on_peer_msg;
    tc.unreachable_cb = on_unreachable;
    tc.accept_cb = on_accept;
    tc.snap_cb = node__snap_cb;
    tc.cluster_cb = on_cluster_learnt;
    tc.tls_server_ctx = n->cfg.peer_tls_server_ctx;
    tc.tls_client_ctx = n->cfg.peer_tls_client_ctx;
    tc.tls_check_client_san = n->cfg.peer_tls_check_client_san;
    rc = transport_init(&n->transport, n->loop, &tc);
    if (rc != 0) {
        return rc;
    }
    n->transport_on = true;
    rc = transport_listen(&n->transport, n->cfg.listen_peer);
    for (size_t i = 0; rc == 0 && i < n->members_count; i++) {
        char addr[128];
        if (n->members[i].id == n->cfg.member_id) {
            continue;
        }
        rc = node__peer_addr(n->members[i].peer_urls, addr, sizeof(addr));
        if (rc == 0) {
            rc = transport_peer_add(&n->transport, n->members[i].id, addr);
        }
        if (rc == 0) {
            char host[128];
            node__peer_host(n->members[i].peer_urls, host, sizeof(host));
            (void)transport_peer_tls_name(&n->transport, n->members[i].id,
                                          host);
        }
        if (rc == 0 && n->tpeers_count < NODE_MEMBERS_MAX) {
            n->tpeers[n->tpeers_count].id = n->members[i].id;
            snprintf(n->tpeers[n->tpeers_count].addr, sizeof(n->tpeers[0].addr),
                     "%s", addr);
            n->tpeers_count++;
        }
    }
    return rc;
}

/* ------------------------------------------------------------ open */

static int mkdir_p(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

/* Rebuild Raft's in-memory log: the latest snapshot's metadata (the store
 * holds its data), then the WAL's entries after it. */
static int load_wal(struct node *n, char *msg, size_t msg_len)
{
    struct log_hard_state hs;
    struct log_entry le[256];
    struct raft_entry re[256];
    struct log_snap ls;
    const size_t arena_len = (size_t)8 << 20;
    uint8_t *arena;
    uint64_t first = log_first_index(n->log);
    uint64_t last = log_last_index(n->log);
    uint64_t kv_applied_index = 0;
    uint64_t kv_applied_term = 0;
    int rc;

    rc = log_snap_load(n->dir_snap, &ls, msg, msg_len);
    if (rc == 0) {
        struct raft_snapshot snap;
        memset(&snap, 0, sizeof(snap));
        snap.meta.index = ls.index;
        snap.meta.term = ls.term;
        rc = raft_conf_decode(ls.conf, ls.conf_len, &snap.meta.conf);
        log_snap_free(&ls);
        if (rc == 0) {
            rc = raft_memstorage_apply_snapshot(&n->ms, &snap);
        }
        if (rc != 0) {
            return rc;
        }
        n->snap_index = snap.meta.index;
        /* A crash between saving a received snapshot's file and resetting
         * the WAL to it (both on the WAL thread, in that order) leaves a
         * WAL that ends before the snapshot, or holds another history at
         * its index: finish the reset now, or every append would fail. */
        uint64_t at = 0;
        if (last < snap.meta.index ||
            (snap.meta.index >= first &&
             (log_term(n->log, snap.meta.index, &at) != 0 ||
              at != snap.meta.term))) {
            LOGW("node",
                 "the WAL (%llu..%llu) does not reach the snapshot at %llu "
                 "(term %llu): resetting it there",
                 (unsigned long long)first, (unsigned long long)last,
                 (unsigned long long)snap.meta.index,
                 (unsigned long long)snap.meta.term);
            rc = log_reset(n->log, snap.meta.index, snap.meta.term);
            if (rc != 0) {
                snprintf(msg, msg_len, "resetting the WAL to the snapshot: %s",
                         err_str(rc));
                return rc;
            }
            first = log_first_index(n->log);
            last = log_last_index(n->log);
        }
        if (first < snap.meta.index + 1) {
            first = snap.meta.index + 1;
        }
    } else if (rc != ERR_NOT_FOUND) {
        return rc;
    } else if (first > 1) {
        snprintf(msg, msg_len,
                 "the WAL starts at index %llu but there is no snapshot",
                 (unsigned long long)first);
        return ERR_CORRUPT;
    }
    arena = mem_alloc(arena_len);
    if (arena == NULL) {
        return -ENOMEM;
    }
    /* Raft hands out again what lies above the commit index it knows (the
     * store may be ahead of it: open_raft), so only entries up to both stay
     * out of memory. */
    kv_applied(n->kv, &kv_applied_index, &kv_applied_term);
    log_hard_state(n->log, &hs);
    if (kv_applied_index > hs.commit && hs.commit >= n->ms.snap.meta.index) {
        kv_applied_index = hs.commit;
    } else if (kv_applied_index > n->ms.snap.meta.index &&
               hs.commit < n->ms.snap.meta.index) {
        kv_applied_index = n->ms.snap.meta.index;
    }
    rc = 0;
    uint64_t lo = first;
    /* What the store already holds is read again only for a lagging
     * follower (node_logmem.c, from the WAL then): it goes in without its
     * data. Reading it whole made a restart after 1M keys put in 10,000
     * txns read and copy 270 MB (a second); log_open has checked every
     * record already. Configuration entries keep their data (last_conf). */
    while (rc == 0 && lo <= last && lo <= kv_applied_index) {
        size_t count = 0;
        while (count < 256 && lo + count <= last &&
               lo + count <= kv_applied_index) {
            uint64_t t = 0;
            uint32_t len = 0;
            uint8_t type = 0;
            rc = log_entry_meta(n->log, lo + count, &t, &type, &len);
            if (rc != 0) {
                break;
            }
            re[count] = (struct raft_entry){
                .index = lo + count, .term = t, .type = type, .len = len};
            if (type == RAFT_ENTRY_CONF && len > 0) {
                /* read it, then append what comes before and it */
                size_t got = 0;
                rc = log_entries(n->log, lo + count, lo + count + 1, arena_len,
                                 le, 1, arena, arena_len, &got);
                if (rc == 0 && got != 1) {
                    rc = ERR_CORRUPT;
                }
                if (rc == 0) {
                    re[count].data = (uint8_t *)le[0].data;
                }
                count++;
                break;
            }
            count++;
        }
        if (rc == 0) {
            rc = raft_memstorage_append_evicted(&n->ms, re, count);
        }
        if (rc != 0) {
            snprintf(msg, msg_len, "reading the WAL at index %llu: %s",
                     (unsigned long long)lo, err_str(rc));
        }
        lo += count;
    }
    while (rc == 0 && lo <= last) {
        size_t count = 0;
        rc = log_entries(n->log, lo, last + 1, arena_len, le, 256, arena,
                         arena_len, &count);
        if (rc != 0 || count == 0) {
            snprintf(msg, msg_len, "reading the WAL at index %llu: %s",
                     (unsigned long long)lo, err_str(rc));
            rc = rc != 0 ? rc : ERR_CORRUPT;
            break;
        }
        for (size_t i = 0; i < count; i++) {
            re[i].index = le[i].index;
            re[i].term = le[i].term;
            re[i].type = le[i].type;
            re[i].data = (uint8_t *)le[i].data;
            re[i].len = le[i].len;
        }
        rc = raft_memstorage_append(&n->ms, re, count);
        lo += count;
        /* What the store already holds is only for lagging followers: keep
         * the heap to the budget while loading. */
        node__logmem_trim(n, kv_applied_index);
    }
    mem_free(arena);
    if (rc == 0) {
        log_hard_state(n->log, &hs);
        struct raft_hard_state rh = {hs.term, hs.vote, hs.commit};
        n->wal_term = hs.term;
        n->wal_vote = hs.vote;
        n->sent_term = hs.term;
        n->sent_vote = hs.vote;
        /* The commit index is persisted lazily: what a snapshot covers is
         * committed whatever the last hard state says. */
        if (rh.commit < n->ms.snap.meta.index) {
            rh.commit = n->ms.snap.meta.index;
        }
        raft_memstorage_set_hard_state(&n->ms, &rh);
    }
    return rc;
}

/* A new cluster: write the initial members into the store (applied index
 * stays 0), identically on every member. */
static int bootstrap_members(struct node *n)
{
    struct kv_write *wr;
    struct buf b;
    int rc = kv_write_begin(n->kv, NULL, NULL, &wr);
    if (rc != 0) {
        return rc;
    }
    buf_init(&b, 0);
    for (size_t i = 0; rc == 0 && i < n->cfg.initial_count; i++) {
        uint8_t name[8];
        be64_put(name, n->cfg.initial[i].id);
        /* Client URLs are published by each member itself once it runs:
         * the bootstrap state must be the same on every member. */
        struct node_member m = n->cfg.initial[i];
        m.client_urls[0] = '\0';
        buf_reset(&b);
        rc = node__member_encode(&m, &b);
        if (rc == 0) {
            rc = kv_aux_put(wr, KV_AUX_CLUSTER, name, 8, b.data, b.len);
        }
    }
    uint8_t cid[8];
    be64_put(cid, n->cfg.cluster_id);
    if (rc == 0 && !n->cfg.join_existing) {
        rc = kv_aux_put(wr, KV_AUX_CLUSTER, "cluster", 7, cid, 8);
    }
    buf_free(&b);
    if (rc != 0) {
        kv_write_abort(wr);
        return rc;
    }
    return kv_write_commit(wr, 0, 0);
}

static int open_raft(struct node *n)
{
    struct raft_config rc;
    uint64_t applied;
    uint64_t applied_term;
    raft_config_default(&rc, n->cfg.member_id);
    rc.seed = n->cfg.seed;
    rc.strict_conf = n->cfg.strict_reconfig;
    /* Ten ticks per heartbeat: the randomized election timeout then has
     * ten times as many values, so two followers that lost the same leader
     * rarely campaign in the same tick and split the vote. */
    rc.heartbeat_ticks = NODE_TICKS_PER_HEARTBEAT;
    rc.election_ticks =
        (uint32_t)((uint64_t)n->cfg.election_ms * NODE_TICKS_PER_HEARTBEAT /
                   n->cfg.heartbeat_ms);
    if (rc.election_ticks <= rc.heartbeat_ticks) {
        rc.election_ticks = rc.heartbeat_ticks + 1;
    }
    /* Bytes in flight per follower: a lagging follower otherwise gets up to
     * max_inflight_msgs appends of max_msg_bytes each in one ready batch
     * (a gigabyte, encoded on the loop and mostly dropped by the transport's
     * queue): a partition test's leader stalled seconds in the encoder
     * after a heal. Kept well under the transport's per-peer queue. */
    rc.max_inflight_bytes = NODE_INFLIGHT_BYTES;
    kv_applied(n->kv, &applied, &applied_term);
    /* The store may be ahead of the commit index the log recorded (the
     * hard state goes to disk lazily, after the store applied): tell Raft
     * no more than it knows is committed; the applier skips what the store
     * already holds when those entries come again. */
    {
        uint64_t known = n->ms.hard.commit;
        if (known < n->ms.snap.meta.index) {
            known = n->ms.snap.meta.index;
        }
        rc.applied = applied < known ? applied : known;
    }
    rc.storage = raft_memstorage_storage(&n->ms);
    for (size_t i = 0; i < n->members_count; i++) {
        if (n->members[i].learner) {
            rc.bootstrap.learners[rc.bootstrap.learners_count++] =
                n->members[i].id;
        } else {
            rc.bootstrap.voters[rc.bootstrap.voters_count++] = n->members[i].id;
        }
    }
    n->applied = rc.applied;
    n->store_applied = rc.applied;
    n->committed = rc.applied;
    atomic_store(&n->gate_ok, rc.applied);
    n->snap_index = applied;
    return raft_init(&n->raft, &rc);
}

static int start_threads(struct node *n)
{
    n->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (n->wake_fd < 0) {
        n->wake_fd = -1;
        return -errno;
    }
    int rc = node__jobq_init(&n->wal_in);
    if (rc == 0) {
        rc = node__jobq_init(&n->wal_out);
    }
    if (rc == 0) {
        rc = node__jobq_init(&n->apply_in);
    }
    if (rc == 0) {
        rc = node__jobq_init(&n->apply_out);
    }
    if (rc == 0) {
        rc = uv_thread_create(&n->wal_thread, node__wal_main, n);
    }
    if (rc == 0) {
        rc = uv_thread_create(&n->apply_thread, node__apply_main, n);
        if (rc != 0) {
            node__jobq_stop(&n->wal_in);
            uv_thread_join(&n->wal_thread);
        }
    }
    n->threads_started = rc == 0;
    return rc;
}

/* The threads' completions (node__notify). Each flag is cleared before
 * its queue is taken: what a thread pushes after the clear sets it again
 * and wakes the loop once more. */
static void on_wake(uv_poll_t *h, int status, int events)
{
    struct node *n = h->data;
    uint64_t v;
    (void)events;
    if (status < 0) {
        /* Not expected of an eventfd; without it no completion would
         * ever be seen, so the member stops rather than hang. */
        uv_poll_stop(h);
        fail_node(n, status, "waiting for the WAL and apply threads");
        return;
    }
    while (read(n->wake_fd, &v, sizeof(v)) < 0 && errno == EINTR) {
    }
    if (atomic_exchange(&n->wal_news, 0) != 0) {
        on_wal_done(n);
    }
    if (atomic_exchange(&n->apply_news, 0) != 0) {
        on_apply_done(n);
    }
}

static void start_handles(struct node *n)
{
    uv_timer_init(n->loop, &n->tick);
    uv_check_init(n->loop, &n->check);
    uv_idle_init(n->loop, &n->busy);
    uv_poll_init(n->loop, &n->wake_poll, n->wake_fd);
    n->tick.data = n;
    n->check.data = n;
    n->busy.data = n;
    n->wake_poll.data = n;
    n->handles_open = 4;
    uv_poll_start(&n->wake_poll, UV_READABLE, on_wake);
    uv_check_start(&n->check, on_check);
    uint64_t tick_ms = n->cfg.heartbeat_ms / NODE_TICKS_PER_HEARTBEAT;
    n->tick_ms = tick_ms > 0 ? tick_ms : 1;
    uv_timer_start(&n->tick, on_tick, n->tick_ms, n->tick_ms);
}

static int open_storage(struct node *n, char *msg, size_t msg_len)
{
    /* No fsync per batch: node_ckpt.c explains why that is safe. */
    struct kv_options ko = {.quota_bytes = n->cfg.quota_bytes,
                            .max_txn_ops = n->cfg.max_txn_ops,
                            .sync = KV_SYNC_NONE,
                            .writemap = n->cfg.store_writemap,
                            .resident_bytes = n->cfg.store_resident_bytes};
    struct apply_config ac = {.cluster_id = n->cfg.cluster_id,
                              .member_id = n->cfg.member_id,
                              .auth = n->cfg.auth};
    int rc;
    if (strlen(n->cfg.data_dir) > 400) {
        snprintf(msg, msg_len, "data directory path too long");
        return ERR_INVALID;
    }
    snprintf(n->dir_member, sizeof(n->dir_member), "%s/member",
             n->cfg.data_dir);
    snprintf(n->dir_wal, sizeof(n->dir_wal), "%s/wal", n->dir_member);
    snprintf(n->dir_snap, sizeof(n->dir_snap), "%s/snap", n->dir_member);
    snprintf(n->dir_kv, sizeof(n->dir_kv), "%s/kv", n->dir_member);
    rc = mkdir_p(n->cfg.data_dir);
    if (rc == 0) {
        rc = mkdir_p(n->dir_member);
    }
    if (rc == 0) {
        rc = mkdir_p(n->dir_kv);
    }
    if (rc != 0) {
        snprintf(msg, msg_len, "creating %s: %s", n->dir_member, err_str(rc));
        return rc;
    }
    cluster_id_load(n);
    ac.cluster_id = n->cfg.cluster_id;
    rc = node__state_check(n, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    rc = kv_open(n->dir_kv, &ko, &n->kv);
    if (rc == 0) {
        rc = node__state_write(n, false);
        if (rc != 0) {
            snprintf(msg, msg_len, "writing %s/kv.state: %s", n->dir_member,
                     err_str(rc));
            return rc;
        }
        rc = node__checkpoint_open(n, msg, msg_len);
        if (rc != 0) {
            return rc;
        }
    }
    if (rc != 0) {
        snprintf(msg, msg_len, "opening the store in %s: %s", n->dir_kv,
                 err_str(rc));
        return rc;
    }
    struct log_options lo = {.segment_bytes = NODE_WAL_SEGMENT_BYTES,
                             .discard = wal_discard,
                             .discard_arg = n};
    rc = log_open(n->dir_wal, &lo, &n->log, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    rc = node__members_reload(n);
    if (rc == 0 && n->members_count == 0) {
        rc = bootstrap_members(n);
        if (rc == 0) {
            rc = node__members_reload(n);
        }
    }
    if (rc == 0) {
        ac.kv = n->kv;
        /* etcd's minimum lease TTL: 1.5 election timeouts, in whole s. */
        ac.min_lease_ttl_s =
            (int64_t)((3 * n->cfg.election_ms / 2 + 999) / 1000);
        ac.level = n->apply_level;
        rc = apply_init(&n->apply, &ac);
    }
    if (rc == 0) {
        rc = load_wal(n, msg, msg_len);
    }
    if (rc == 0) {
        /* A crash inside a snapshot install can leave the store behind
         * the snapshot load_wal just read (node_ckpt.c). */
        rc = node__store_catch_up(n, msg, msg_len);
    }
    return rc;
}

int node_open(uv_loop_t *loop, const struct node_config *cfg,
              const struct node_observer *obs, struct node **out, char *msg,
              size_t msg_len)
{
    struct node *n;
    int rc;
    if (cfg->member_id == 0 || cfg->heartbeat_ms == 0 ||
        cfg->election_ms < cfg->heartbeat_ms || cfg->data_dir == NULL) {
        snprintf(msg, msg_len, "invalid node configuration");
        return ERR_INVALID;
    }
    n = mem_calloc(1, sizeof(*n));
    if (n == NULL) {
        return -ENOMEM;
    }
    n->loop = loop;
    n->cfg = *cfg;
    n->apply_level = APPLY_LEVEL;
    const char *lv = getenv("CAIRN_TEST_APPLY_LEVEL");
    int tl = lv != NULL ? atoi(lv) : 0;
    if (tl >= 1 && tl <= APPLY_LEVEL) {
        /* tests: publish an older level, as a member that predates one */
        n->apply_level = (uint32_t)tl;
    }
    /* The strings cfg points to are the caller's: keep our own copies. */
    if (cfg->name != NULL) {
        snprintf(n->self_name, sizeof(n->self_name), "%s", cfg->name);
        n->cfg.name = n->self_name;
    }
    if (cfg->client_urls != NULL) {
        snprintf(n->self_client_urls, sizeof(n->self_client_urls), "%s",
                 cfg->client_urls);
        n->cfg.client_urls = n->self_client_urls;
    }
    if (cfg->listen_peer != NULL) {
        snprintf(n->self_listen_peer, sizeof(n->self_listen_peer), "%s",
                 cfg->listen_peer);
        n->cfg.listen_peer = n->self_listen_peer;
    }
    snprintf(n->self_data_dir, sizeof(n->self_data_dir), "%s", cfg->data_dir);
    snprintf(n->self_token, sizeof(n->self_token), "%s",
             cfg->cluster_token != NULL ? cfg->cluster_token : "etcd-cluster");
    n->cfg.cluster_token = n->self_token;
    n->cfg.data_dir = n->self_data_dir;
    if (obs != NULL) {
        n->obs = *obs;
    }
    atomic_store(&n->events_prev_all, true);
    if (n->cfg.snapshot_count == 0) {
        n->cfg.snapshot_count = 100000;
    }
    n->ckpt_copy_floor = CKPT_COPY_FLOOR;
    const char *cf = getenv("CAIRN_TEST_CKPT_COPY_FLOOR_KB");
    if (cf != NULL && cf[0] != '\0') {
        n->ckpt_copy_floor = (uint64_t)strtoull(cf, NULL, 10) << 10;
    }
    n->wb_pass_ms = STORE_WB_PASS_MS;
    const char *wb = getenv("CAIRN_TEST_STORE_WB_MS");
    if (wb != NULL && wb[0] != '\0') {
        n->wb_pass_ms = (uint32_t)strtoul(wb, NULL, 10);
    }
    n->ckpt_memory_floor = CKPT_MEMORY_FLOOR;
    const char *mf = getenv("CAIRN_TEST_CKPT_MEMORY_FLOOR_KB");
    if (mf != NULL && mf[0] != '\0') {
        n->ckpt_memory_floor = (uint64_t)strtoull(mf, NULL, 10) << 10;
    }
    /* Tests: every WAL write that carries entries takes this much longer
     * (a slow disk: what a commit may and may not show meanwhile). */
    const char *wd = getenv("CAIRN_TEST_WAL_DELAY_MS");
    if (wd != NULL && wd[0] != '\0') {
        unsigned long v = strtoul(wd, NULL, 10);
        n->wal_delay_ms = v > 10000 ? 10000 : (uint32_t)v;
    }
    n->waiters_max = limits_default(LIMIT_RAFT_PENDING_PROPOSALS);
    n->waiters_cap =
        n->waiters_max < WAITERS_INITIAL ? n->waiters_max : WAITERS_INITIAL;
    n->waiters = mem_calloc(n->waiters_cap, sizeof(*n->waiters));
    n->reads_cap = READS_MAX;
    n->reads = mem_calloc(n->reads_cap, sizeof(*n->reads));
    /* Ids: unique across restarts of this member (start from the clock). */
    n->next_id = clock_wall_ms() << 20;
    n->oldest_id = n->next_id;
    n->read_round_next = 1;
    n->snap_in_fd = -1;
    n->wake_fd = -1;
    buf_init(&n->snap_in_meta, 0);
    node__crash_init(n);
    raft_memstorage_init(&n->ms);
    node__logmem_init(n);
    n->trash_mu_on = uv_mutex_init(&n->trash_mu) == 0;
    if (!n->trash_mu_on || uv_rwlock_init(&n->store_lock) != 0) {
        if (n->trash_mu_on) {
            uv_mutex_destroy(&n->trash_mu);
        }
        mem_free(n->waiters);
        mem_free(n->reads);
        mem_free(n);
        return -ENOMEM;
    }
    if (n->waiters == NULL || n->reads == NULL) {
        rc = -ENOMEM;
    } else {
        rc = open_storage(n, msg, msg_len);
    }
    if (rc == 0 && apply_last_id(&n->apply, n->cfg.member_id) >= n->next_id) {
        /* The clock went back since our last applied proposal: the store
         * would refuse lower ids as repeats (apply.h, exactly once). */
        n->next_id = apply_last_id(&n->apply, n->cfg.member_id) + 1;
        n->oldest_id = n->next_id;
    }
    if (rc == 0) {
        bool self = false;
        for (size_t i = 0; i < n->members_count; i++) {
            self = self || n->members[i].id == n->cfg.member_id;
        }
        if (n->members_count > 0 && !self) {
            snprintf(msg, msg_len, "%s (member %016llx)",
                     err_str(ERR_MEMBER_REMOVED),
                     (unsigned long long)n->cfg.member_id);
            rc = ERR_MEMBER_REMOVED;
        }
    }
    if (rc == 0) {
        rc = open_raft(n);
        if (rc != 0) {
            snprintf(msg, msg_len, "starting Raft: %s", err_str(rc));
        }
    }
    if (rc == 0) {
        /* The log may already hold our removal (a configuration is in force
         * from the moment it is appended): then we are out, even if the
         * store, which lags, still lists us. */
        struct raft_status st;
        raft_status(&n->raft, &st);
        if (st.conf.voters_count > 0 &&
            !raft_conf_is_voter(&st.conf, n->cfg.member_id) &&
            !raft_conf_is_learner(&st.conf, n->cfg.member_id)) {
            snprintf(msg, msg_len, "%s (member %016llx)",
                     err_str(ERR_MEMBER_REMOVED),
                     (unsigned long long)n->cfg.member_id);
            raft_close(&n->raft);
            rc = ERR_MEMBER_REMOVED;
        }
    }
    if (rc == 0) {
        rc = start_threads(n);
    }
    if (rc == 0) {
        rc = node__transport_start(n, false);
        if (rc != 0) {
            snprintf(msg, msg_len, "peer transport on %s: %s",
                     n->cfg.listen_peer, err_str(rc));
        }
    }
    if (rc != 0) {
        /* Threads may be running: stop them before freeing. */
        n->closing = true;
        node__jobq_stop(&n->wal_in);
        node__jobq_stop(&n->apply_in);
        if (n->threads_started) {
            uv_thread_join(&n->wal_thread);
            uv_thread_join(&n->apply_thread);
        }
        log_close(n->log);
        if (n->kv != NULL) {
            kv_close(n->kv);
        }
        raft_memstorage_close(&n->ms);
        node__logmem_close(n);
        uv_rwlock_destroy(&n->store_lock);
        trash_drain(n, true);
        uv_mutex_destroy(&n->trash_mu);
        if (n->wake_fd >= 0) {
            close(n->wake_fd);
        }
        buf_free(&n->snap_in_meta);
        mem_free(n->waiters);
        mem_free(n->reads);
        mem_free(n);
        return rc;
    }
    start_handles(n);
    /* The caller's references last only the call, and the transport may
     * start later (node__transport_sync): the node keeps its own. */
    if (n->cfg.peer_tls_server_ctx != NULL) {
        SSL_CTX_up_ref(n->cfg.peer_tls_server_ctx);
    }
    if (n->cfg.peer_tls_client_ctx != NULL) {
        SSL_CTX_up_ref(n->cfg.peer_tls_client_ctx);
    }
    /* A member alone in its cluster need not wait an election timeout. */
    if (n->members_count == 1 && n->members[0].id == n->cfg.member_id) {
        (void)raft_campaign(&n->raft);
    }
    n->dirty = true;
    *out = n;
    return 0;
}

/* ------------------------------------------------------------ requests */

/* The waiter table holds proposal id % waiters_cap. Ids only grow, so a
 * table sized for the limit at once would have every page of it touched in
 * turn as they go round (3 MB for 100,000); it starts small and grows by 4
 * while more than 3/4 of it wait or the next id's slot is taken, up to the
 * limit. When two live ids would share a slot of the new size (they are
 * that far apart), the table stays as it is. */
static void waiters_grow(struct node *n)
{
    size_t cap = n->waiters_cap * 4;
    struct waiter *v;
    if (n->waiters_cap >= n->waiters_max) {
        return;
    }
    if (cap > n->waiters_max) {
        cap = n->waiters_max;
    }
    v = mem_calloc(cap, sizeof(*v));
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n->waiters_cap; i++) {
        if (n->waiters[i].id != 0) {
            struct waiter *to = &v[n->waiters[i].id % cap];
            if (to->id != 0) {
                mem_free(v); /* live ids cap or more apart */
                return;
            }
            *to = n->waiters[i];
        }
    }
    mem_free(n->waiters);
    n->waiters = v;
    n->waiters_cap = cap;
}

uint64_t node__waiter_add(struct node *n, uint32_t timeout_ms,
                          node_propose_cb cb, void *ctx)
{
    uint64_t id = n->next_id;
    struct waiter *w;
    if (n->pending >= n->waiters_max) {
        return 0;
    }
    if (n->pending + 1 > n->waiters_cap / 4 * 3 ||
        n->waiters[id % n->waiters_cap].id != 0) {
        waiters_grow(n);
    }
    w = &n->waiters[id % n->waiters_cap];
    if (w->id != 0) {
        return 0;
    }
    if (timeout_ms == 0) {
        timeout_ms = 5000 + 2 * n->cfg.election_ms;
    }
    n->next_id++;
    w->id = id;
    w->cb = cb;
    w->ctx = ctx;
    w->conf = false;
    w->deadline_ms = clock_mono_ns() / 1000000 + timeout_ms;
    n->pending++;
    return id;
}

/* Take a waiter back after the proposal failed synchronously. */
void node__waiter_drop(struct node *n, uint64_t id)
{
    struct waiter *w = &n->waiters[id % n->waiters_cap];
    if (w->id == id) {
        w->id = 0;
        n->pending--;
    }
}

int node_propose(struct node *n, enum apply_op op, const uint8_t *req,
                 size_t len, uint32_t timeout_ms, node_propose_cb cb, void *ctx)
{
    return node_propose_extra(n, op, req, len, NULL, 0, timeout_ms, cb, ctx);
}

int node_propose_extra(struct node *n, enum apply_op op, const uint8_t *req,
                       size_t len, const uint8_t *extra, size_t extra_len,
                       uint32_t timeout_ms, node_propose_cb cb, void *ctx)
{
    uint8_t stack[4096];
    struct buf b;
    uint64_t id;
    size_t h;
    int rc;
    if (n->failed != 0 || n->closing) {
        return ERR_STOPPED;
    }
    if (len > n->cfg.max_request_bytes ||
        extra_len > n->cfg.max_request_bytes - len) {
        return ERR_REQUEST_TOO_LARGE;
    }
    if (n->leader == RAFT_NONE) {
        return ERR_NO_LEADER;
    }
    id = node__waiter_add(n, timeout_ms, cb, ctx);
    if (id == 0) {
        return ERR_TOO_MANY_REQUESTS;
    }
    h = apply_envelope_head(id, n->cfg.member_id, op, len, stack);
    if (h + len + extra_len <= sizeof(stack)) {
        /* The common small request: no buffer of its own (raft copies
         * the entry anyway). */
        if (len > 0) {
            memcpy(stack + h, req, len);
        }
        if (extra_len > 0) {
            memcpy(stack + h + len, extra, extra_len);
        }
        rc = raft_propose(&n->raft, RAFT_ENTRY_NORMAL, stack,
                          h + len + extra_len, NULL);
    } else {
        buf_init(&b, 0);
        rc = apply_envelope_extra(id, n->cfg.member_id, op, req, len, extra,
                                  extra_len, &b);
        if (rc == 0) {
            rc = raft_propose(&n->raft, RAFT_ENTRY_NORMAL, b.data, b.len, NULL);
        }
        buf_free(&b);
    }
    if (rc != 0) {
        node__waiter_drop(n, id);
        return rc == ERR_BUSY ? ERR_TOO_MANY_REQUESTS : rc;
    }
    n->dirty = true;
    node__wake(n);
    return 0;
}

int node_read_index(struct node *n, uint32_t timeout_ms, node_read_cb cb,
                    void *ctx)
{
    struct read_wait *w;
    if (n->failed != 0 || n->closing) {
        return ERR_STOPPED;
    }
    if (n->reads_count == n->reads_cap) {
        return ERR_TOO_MANY_REQUESTS;
    }
    if (timeout_ms == 0) {
        timeout_ms = 5000 + 2 * n->cfg.election_ms;
    }
    w = &n->reads[(n->reads_head + n->reads_count) % n->reads_cap];
    n->reads_count++;
    w->round = n->read_round_next;
    w->index = 0;
    w->cb = cb;
    w->ctx = ctx;
    w->deadline_ms = clock_mono_ns() / 1000000 + timeout_ms;
    n->dirty = true;
    node__wake(n);
    return 0;
}

int node_read_begin(struct node *n, struct kv_read **rd)
{
    int rc;
    uv_rwlock_rdlock(&n->store_lock);
    rc = kv_read_begin(n->kv, rd);
    if (rc != 0) {
        uv_rwlock_rdunlock(&n->store_lock);
    }
    return rc;
}

void node_read_end(struct node *n, struct kv_read *rd)
{
    kv_read_end(rd);
    uv_rwlock_rdunlock(&n->store_lock);
}

int node_snapshot_write(struct node *n, int fd)
{
    int rc;
    uv_rwlock_rdlock(&n->store_lock);
    rc = kv_snapshot_write(n->kv, fd);
    uv_rwlock_rdunlock(&n->store_lock);
    return rc;
}

void node_store_size(struct node *n, uint64_t *db_bytes, uint64_t *in_use_bytes)
{
    if (uv_rwlock_tryrdlock(&n->store_lock) == 0) {
        kv_size(n->kv, &n->size_db, &n->size_in_use);
        uv_rwlock_rdunlock(&n->store_lock);
    }
    *db_bytes = n->size_db;
    *in_use_bytes = n->size_in_use;
}

struct kv *node_kv(struct node *n)
{
    return n->kv;
}

struct apply *node_apply(struct node *n)
{
    return &n->apply;
}

size_t node_peer_stats(const struct node *n, struct node_peer_stats *out,
                       size_t max)
{
    size_t k = 0;
    for (size_t i = 0; n->transport_on && i < n->tpeers_count && k < max; i++) {
        struct transport_peer_stats ps;
        if (transport_peer_stats(&n->transport, n->tpeers[i].id, &ps) != 0) {
            continue;
        }
        out[k] = (struct node_peer_stats){
            .id = ps.id,
            .bytes_sent = ps.bytes_sent,
            .bytes_received = ps.bytes_received,
            .msgs_dropped = ps.msgs_dropped,
            .snapshots_sent = ps.snapshots_sent,
            .snapshots_received = ps.snapshots_received,
            .connected = ps.connected,
        };
        k++;
    }
    return k;
}

void node_status(const struct node *n, struct node_status *out)
{
    struct raft_status st;
    raft_status(&n->raft, &st);
    memset(out, 0, sizeof(*out));
    out->member_id = n->cfg.member_id;
    out->cluster_id = n->cfg.cluster_id;
    out->leader = n->leader;
    out->term = st.hard.term;
    out->commit_index = st.hard.commit;
    out->applied_index = n->applied;
    out->first_index = st.first_index;
    out->last_index = st.last_index;
    out->role = st.role;
    out->learner = raft_conf_is_learner(&st.conf, n->cfg.member_id);
    out->proposals_pending = n->pending;
    if (n->transport_on) {
        struct transport_stats ts;
        transport_stats(&n->transport, &ts);
        out->peer_conns_accepted = ts.conns_accepted;
        out->peer_conns_refused = ts.conns_refused;
        out->peer_conns_in_open = ts.conns_in_open;
        out->peer_conns_malformed = ts.frames_malformed;
        out->peer_tls_failed = ts.tls_handshakes_failed;
    }
    out->proposals_failed = n->proposals_failed;
    out->proposals_committed = n->proposals_committed;
    out->early_batches = n->early_jobs;
    out->wal_jobs = n->wal_jobs;
    out->wal_gate_opens = atomic_load(&n->wal_gate_opens);
    out->wal_inline = n->wal_inline_passes;
    out->leader_changes = n->leader_changes;
    out->log_resident_bytes = n->ms.resident_bytes;
    out->log_entries = n->ms.count;
    out->log_evicted_bytes = n->rr.evicted_bytes;
    out->log_reads = n->rr.reads;
    out->log_read_bytes = n->rr.read_bytes;
    out->wal_fsyncs = atomic_load(&n->wal_fsyncs);
    out->wal_fsync_ns_total = atomic_load(&n->wal_fsync_ns);
    for (size_t i = 0; i < NODE_FSYNC_BUCKETS; i++) {
        out->wal_fsync_buckets[i] = atomic_load(&n->wal_fsync_hist[i]);
    }
}

uint64_t node_applied(const struct node *n)
{
    return n->applied;
}

bool node_lead_applied(const struct node *n)
{
    return n->role == RAFT_LEADER && n->raft.role == RAFT_LEADER &&
           n->leader == n->cfg.member_id && n->raft.term_start_index != 0 &&
           n->applied >= n->raft.term_start_index;
}

bool node_nospace(struct node *n)
{
    return atomic_load_explicit(&n->apply.nospace_seen, memory_order_relaxed);
}

uint64_t node_term(const struct node *n)
{
    return n->raft.term;
}

uint64_t node_cluster_id(const struct node *n)
{
    return n->cfg.cluster_id;
}

size_t node_members(const struct node *n, struct node_member *out, size_t cap)
{
    for (size_t i = 0; i < n->members_count && i < cap; i++) {
        out[i] = n->members[i];
    }
    return n->members_count;
}

int node_failed(const struct node *n)
{
    return n->failed;
}

static void fail_node(struct node *n, int err, const char *what)
{
    if (n->failed != 0) {
        return;
    }
    n->failed = err;
    LOGE("node", "member %016llx stops: %s: %s",
         (unsigned long long)n->cfg.member_id, what, err_str(err));
    expire_waiters(n, 0, true);
    expire_reads(n, 0, true);
}

/* ------------------------------------------------------------ close */

/* The last step of node_close, once every handle, the transport and every
 * worker-thread job (checkpoint, snapshot copies) is done. */
void node__close_finish(struct node *n)
{
    if (!n->closing || n->handles_open > 0 || n->transport_on ||
        n->ckpt_running || n->snap_works > 0 || n->wb_running ||
        n->close_finished) {
        return;
    }
    n->close_finished = true;
    void (*done)(void *) = n->close_done;
    void *ctx = n->close_ctx;
    raft_close(&n->raft);
    raft_memstorage_close(&n->ms);
    node__logmem_close(n);
    apply_close(&n->apply);
    /* The whole store to disk, then the mark that says so: the next open
     * trusts this file whatever happened to the system meanwhile. */
    if (n->failed == 0 && kv_sync(n->kv) == 0) {
        (void)node__state_write(n, true);
    }
    kv_close(n->kv);
    log_close(n->log);
    trash_drain(n, true);
    uv_mutex_destroy(&n->trash_mu);
    node__jobq_close(&n->wal_in);
    node__jobq_close(&n->wal_out);
    node__jobq_close(&n->apply_in);
    node__jobq_close(&n->apply_out);
    uv_rwlock_destroy(&n->store_lock);
    if (n->wake_fd >= 0) {
        close(n->wake_fd);
    }
    if (n->snap_in_fd >= 0) {
        close(n->snap_in_fd);
    }
    buf_free(&n->snap_in_meta);
    SSL_CTX_free(n->cfg.peer_tls_server_ctx); /* NULL is a no-op */
    SSL_CTX_free(n->cfg.peer_tls_client_ctx);
    mem_free(n->waiters);
    mem_free(n->reads);
    mem_free(n);
    if (done != NULL) {
        done(ctx);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct node *n = h->data;
    --n->handles_open;
    node__close_finish(n);
}

static void on_transport_closed(struct transport *t)
{
    struct node *n =
        (struct node *)((char *)t - offsetof(struct node, transport));
    n->transport_on = false;
    node__close_finish(n);
}

void node_close(struct node *n, void (*done)(void *ctx), void *ctx)
{
    n->closing = true;
    n->close_done = done;
    n->close_ctx = ctx;
    expire_waiters(n, 0, true);
    expire_reads(n, 0, true);
    /* Finish queued work: the threads drain their queues, then stop. */
    node__jobq_stop(&n->wal_in);
    node__jobq_stop(&n->apply_in);
    uv_thread_join(&n->wal_thread);
    uv_thread_join(&n->apply_thread);
    /* Completed jobs left in the out queues are freed unprocessed. */
    struct wal_job *wj = node__jobq_take_all(&n->wal_out, false, NULL);
    while (wj != NULL) {
        struct wal_job *next = wj->next;
        node__wal_job_free(wj);
        wj = next;
    }
    struct apply_job *aj = node__jobq_take_all(&n->apply_out, false, NULL);
    while (aj != NULL) {
        struct apply_job *next = aj->next;
        node__apply_job_free(aj);
        aj = next;
    }
    uv_timer_stop(&n->tick);
    uv_close((uv_handle_t *)&n->tick, on_handle_closed);
    uv_close((uv_handle_t *)&n->check, on_handle_closed);
    uv_close((uv_handle_t *)&n->busy, on_handle_closed);
    uv_close((uv_handle_t *)&n->wake_poll, on_handle_closed);
    if (n->transport_on) {
        transport_close(&n->transport, on_transport_closed);
    }
}

void node_events_prev(struct node *n, bool all)
{
    atomic_store_explicit(&n->events_prev_all, all, memory_order_relaxed);
}

/*
 * harness.c - the in-process Raft network of harness.h.
 */
#include "tests/unit/raft/harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/crc32c.h"
#include "base/err.h"
#include "tests/unit/raft/transcript.h"

#define FATAL(...)                                                             \
    do {                                                                       \
        fprintf(stderr, "harness: " __VA_ARGS__);                              \
        fprintf(stderr, "\n");                                                 \
        abort();                                                               \
    } while (0)

struct node *net_node(struct net *net, uint64_t id)
{
    if (id < 1 || id > NET_MAX) {
        FATAL("bad node id %llu", (unsigned long long)id);
    }
    return &net->nodes[id];
}

struct net *net_new(int n, uint64_t seed)
{
    struct net *net = calloc(1, sizeof(*net));
    if (net == NULL) {
        FATAL("out of memory");
    }
    net->n = n;
    net->seed = seed;
    raft_config_default(&net->cfg, 1);
    net->cfg.max_msg_bytes = 64 * 1024;
    net->cfg.max_inflight_msgs = 8;
    for (int i = 1; i <= n; i++) {
        net->cfg.bootstrap.voters[net->cfg.bootstrap.voters_count++] =
            (uint64_t)i;
    }
    buf_init(&net->stream, 0);
    buf_init(&net->transcript, 0);
    net->print = getenv("RAFT_TRANSCRIPT") != NULL;
    for (int i = 1; i <= NET_MAX; i++) {
        net->nodes[i].id = (uint64_t)i;
    }
    return net;
}

static void node_boot(struct net *net, struct node *nd, bool joining)
{
    struct raft_config c = net->cfg;
    c.id = nd->id;
    c.seed = net->seed * 1000003u + nd->id;
    c.storage = raft_memstorage_storage(&nd->ms);
    c.applied = nd->applied;
    if (joining) {
        memset(&c.bootstrap, 0, sizeof(c.bootstrap));
    }
    int rc = raft_init(&nd->r, &c);
    if (rc != 0) {
        FATAL("raft_init(%llu): %s", (unsigned long long)nd->id, err_str(rc));
    }
    nd->up = true;
    nd->seen_conf = nd->r.conf;
    nd->seen_conf_index = nd->r.conf_index;
    nd->seen_role = RAFT_FOLLOWER;
}

void net_start_node(struct net *net, uint64_t id, bool joining)
{
    struct node *nd = net_node(net, id);
    raft_memstorage_init(&nd->ms);
    nd->applied = 0;
    nd->state = 0;
    node_boot(net, nd, joining);
}

void net_start(struct net *net, int count)
{
    for (int i = 1; i <= count; i++) {
        net_start_node(net, (uint64_t)i, i > net->n);
    }
}

void net_crash(struct net *net, uint64_t id)
{
    struct node *nd = net_node(net, id);
    if (nd->up) {
        raft_close(&nd->r);
        nd->up = false;
    }
}

void net_restart(struct net *net, uint64_t id)
{
    struct node *nd = net_node(net, id);
    net_crash(net, id);
    /* The toy state machine is volatile: it restarts from the snapshot
     * (hist keeps what it was at each index, which replays reproduce). */
    nd->applied = nd->ms.snap.meta.index;
    nd->state = nd->applied ? nd->hist[nd->applied % NET_HIST] : 0;
    node_boot(net, nd, false);
}

void net_free(struct net *net)
{
    for (int i = 1; i <= NET_MAX; i++) {
        struct node *nd = &net->nodes[i];
        if (nd->up) {
            raft_close(&nd->r);
        }
        raft_memstorage_close(&nd->ms);
    }
    for (size_t i = 0; i < net->q_count; i++) {
        free(net->q[i].bytes);
    }
    free(net->q);
    buf_free(&net->stream);
    buf_free(&net->transcript);
    free(net);
}

void net_isolate(struct net *net, uint64_t id)
{
    for (int i = 1; i <= NET_MAX; i++) {
        net->cut[id][i] = true;
        net->cut[i][id] = true;
    }
}

void net_heal(struct net *net)
{
    memset(net->cut, 0, sizeof(net->cut));
}

void net_cut(struct net *net, uint64_t a, uint64_t b)
{
    net->cut[a][b] = true;
    net->cut[b][a] = true;
}

void net_note(struct net *net, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    size_t len = strlen(line);
    if (buf_append(&net->transcript, line, len) != 0 ||
        buf_append_u8(&net->transcript, '\n') != 0) {
        FATAL("transcript full");
    }
    if (net->print) {
        printf("# %s\n", line);
    }
}

void net_event(struct net *net, const char *fmt, ...)
{
    if (net->events == NULL) {
        return;
    }
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        FATAL("event line too long");
    }
    tr_printf(net->events, "%s\n", line);
}

/* A message line: built in a buf, entry lists can be long. */
static void event_msg(struct net *net, const char *prefix,
                      const struct raft_msg *m, const char *suffix)
{
    if (net->events == NULL) {
        return;
    }
    tr_printf(net->events, "%s", prefix);
    tr_msg(net->events, m);
    tr_printf(net->events, "%s\n", suffix);
}

static void event_entries(struct net *net, uint64_t id, const char *what,
                          const struct raft_entry *e, size_t n,
                          const char *suffix)
{
    if (net->events == NULL || n == 0) {
        return;
    }
    tr_printf(net->events, "%llu %s ", (unsigned long long)id, what);
    tr_entries(net->events, e, n);
    tr_printf(net->events, "%s\n", suffix);
}

static bool conf_eq(const struct raft_conf *a, const struct raft_conf *b)
{
    if (a->voters_count != b->voters_count ||
        a->learners_count != b->learners_count) {
        return false;
    }
    for (uint32_t i = 0; i < a->voters_count; i++) {
        if (a->voters[i] != b->voters[i]) {
            return false;
        }
    }
    for (uint32_t i = 0; i < a->learners_count; i++) {
        if (a->learners[i] != b->learners[i]) {
            return false;
        }
    }
    return true;
}

/* The head of a batch: role or leader change, then a configuration that
 * changed since the previous batch (on append, or reverted by a
 * truncation, or from a snapshot). */
static void event_batch_head(struct net *net, struct node *nd,
                             const struct raft_ready *rd)
{
    if (net->events == NULL) {
        return;
    }
    unsigned long long id = nd->id, term = rd->hard.term;
    unsigned long long leader = rd->leader;
    if (rd->soft_changed && rd->role != nd->seen_role) {
        if (leader != RAFT_NONE && rd->role == RAFT_FOLLOWER) {
            net_event(net, "%llu becomes follower term=%llu leader=%llu", id,
                      term, leader);
        } else {
            net_event(net, "%llu becomes %s term=%llu", id,
                      raft_role_str(rd->role), term);
        }
    } else if (rd->soft_changed && leader != RAFT_NONE) {
        net_event(net, "%llu follows leader=%llu term=%llu", id, leader, term);
    } else if (rd->soft_changed) {
        net_event(net, "%llu lost its leader term=%llu", id, term);
    }
    nd->seen_role = rd->role;
    if (nd->seen_conf_index != nd->r.conf_index ||
        !conf_eq(&nd->seen_conf, &nd->r.conf)) {
        nd->seen_conf = nd->r.conf;
        nd->seen_conf_index = nd->r.conf_index;
        tr_printf(net->events, "%llu conf index=%llu ", id,
                  (unsigned long long)nd->r.conf_index);
        tr_conf(net->events, &nd->r.conf);
        tr_printf(net->events, "\n");
    }
}

void net_transcript_reset(struct net *net)
{
    buf_reset(&net->transcript);
}

int net_count(struct net *net, const char *needle)
{
    int count = 0;
    if (buf_append_u8(&net->transcript, 0) != 0) {
        FATAL("transcript full");
    }
    const char *p = (const char *)net->transcript.data;
    while ((p = strstr(p, needle)) != NULL) {
        count++;
        p += strlen(needle);
    }
    net->transcript.len--;
    return count;
}

static void describe(const struct raft_msg *m, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%llu->%llu %s t%llu",
                     (unsigned long long)m->from, (unsigned long long)m->to,
                     raft_msg_type_str(m->type), (unsigned long long)m->term);
    if (n < 0 || (size_t)n >= cap) {
        return;
    }
    size_t k = (size_t)n;
    switch (m->type) {
    case RAFT_MSG_APP:
        snprintf(out + k, cap - k, " prev=%llu/%llu ents=%u commit=%llu",
                 (unsigned long long)m->index, (unsigned long long)m->log_term,
                 m->entries_count, (unsigned long long)m->commit);
        break;
    case RAFT_MSG_APP_RESP:
        snprintf(out + k, cap - k, "%s idx=%llu hint=%llu/%llu",
                 (m->flags & RAFT_MSG_F_REJECT) ? " REJECT" : "",
                 (unsigned long long)m->index,
                 (unsigned long long)m->reject_hint,
                 (unsigned long long)m->log_term);
        break;
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PREVOTE:
        snprintf(out + k, cap - k, " last=%llu/%llu%s",
                 (unsigned long long)m->index, (unsigned long long)m->log_term,
                 (m->flags & RAFT_MSG_F_TRANSFER) ? " transfer" : "");
        break;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PREVOTE_RESP:
        snprintf(out + k, cap - k, "%s",
                 (m->flags & RAFT_MSG_F_REJECT) ? " REJECT" : " granted");
        break;
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_HEARTBEAT_RESP:
        snprintf(out + k, cap - k, " commit=%llu ctx=%llu",
                 (unsigned long long)m->commit, (unsigned long long)m->ctx);
        break;
    case RAFT_MSG_SNAP:
        snprintf(out + k, cap - k, " snap=%llu/%llu",
                 (unsigned long long)m->snapshot.meta.index,
                 (unsigned long long)m->snapshot.meta.term);
        break;
    case RAFT_MSG_READINDEX:
    case RAFT_MSG_READINDEX_RESP:
        snprintf(out + k, cap - k, " ctx=%llu idx=%llu",
                 (unsigned long long)m->ctx, (unsigned long long)m->index);
        break;
    default:
        break;
    }
}

static void enqueue(struct net *net, const struct raft_msg *m)
{
    event_msg(net, "", m, "");
    size_t start = net->stream.len;
    if (raft_msg_encode(m, &net->stream) != 0) {
        FATAL("encode failed");
    }
    size_t len = net->stream.len - start;
    if (net->q_count == net->q_cap) {
        net->q_cap = net->q_cap ? net->q_cap * 2 : 64;
        net->q = realloc(net->q, net->q_cap * sizeof(*net->q));
        if (net->q == NULL) {
            FATAL("out of memory");
        }
    }
    struct pkt *p = &net->q[net->q_count++];
    p->from = m->from;
    p->to = m->to;
    p->len = len;
    p->bytes = malloc(len);
    if (p->bytes == NULL) {
        FATAL("out of memory");
    }
    memcpy(p->bytes, net->stream.data + start, len);
}

static void apply_entry(struct net *net, struct node *nd,
                        const struct raft_entry *e)
{
    if (net->print) {
        printf("# node %llu apply %llu/%llu type %u len %u\n",
               (unsigned long long)nd->id, (unsigned long long)e->index,
               (unsigned long long)e->term, e->type, e->len);
    }
    if (e->index != nd->applied + 1) {
        FATAL("node %llu applies %llu after %llu", (unsigned long long)nd->id,
              (unsigned long long)e->index, (unsigned long long)nd->applied);
    }
    uint8_t hdr[9];
    be64_put(hdr, e->index);
    hdr[8] = e->type;
    nd->state = crc32c(nd->state, hdr, sizeof(hdr));
    nd->state = crc32c(nd->state, e->data, e->len);
    if (e->type == RAFT_ENTRY_CONF) {
        nd->applied_conf++;
    }
    nd->applied = e->index;
    nd->hist[e->index % NET_HIST] = nd->state;
    nd->hist_at[e->index % NET_HIST] = e->index;
}

static void install_snapshot(struct net *net, struct node *nd,
                             const struct raft_snapshot *s)
{
    if (net->print) {
        printf("# node %llu install snapshot %llu/%llu\n",
               (unsigned long long)nd->id, (unsigned long long)s->meta.index,
               (unsigned long long)s->meta.term);
    }
    if (net->events != NULL) {
        tr_printf(net->events, "%llu install snapshot=%llu@%llu ",
                  (unsigned long long)nd->id, (unsigned long long)s->meta.index,
                  (unsigned long long)s->meta.term);
        tr_conf(net->events, &s->meta.conf);
        tr_printf(net->events, "\n");
    }
    if (s->data_len != 12) {
        FATAL("snapshot data of %u bytes", s->data_len);
    }
    int rc = raft_memstorage_apply_snapshot(&nd->ms, s);
    if (rc != 0) {
        FATAL("apply_snapshot: %s", err_str(rc));
    }
    nd->applied = be64_get(s->data);
    nd->state = be32_get(s->data + 8);
    nd->hist[nd->applied % NET_HIST] = nd->state;
    nd->hist_at[nd->applied % NET_HIST] = nd->applied;
    raft_snapshot_installed(&nd->r, s->meta.index);
}

/* The entries of a batch go to storage; a first index at or below the
 * durable last one replaces that suffix (a follower's conflicting tail). */
static void persist_entries(struct net *net, struct node *nd,
                            const struct raft_ready *rd)
{
    if (rd->entries_count == 0) {
        return;
    }
    uint64_t durable_last = nd->ms.snap.meta.index + nd->ms.count;
    uint64_t first = rd->entries[0].index;
    char note[64] = "";
    if (first <= durable_last) {
        snprintf(note, sizeof(note), " replacing %llu..%llu",
                 (unsigned long long)first, (unsigned long long)durable_last);
    }
    event_entries(net, nd->id, "append", rd->entries, rd->entries_count, note);
    int rc = raft_memstorage_append(&nd->ms, rd->entries, rd->entries_count);
    if (rc != 0) {
        FATAL("append: %s", err_str(rc));
    }
}

static void handle_ready(struct net *net, struct node *nd)
{
    struct raft_ready rd;
    int rc = raft_ready(&nd->r, &rd);
    if (rc != 0) {
        FATAL("raft_ready: %s", err_str(rc));
    }
    event_batch_head(net, nd, &rd);
    for (size_t i = 0; i < rd.msgs_count; i++) {
        enqueue(net, &rd.msgs[i]); /* may leave before the persist */
        if (rd.msgs[i].type == RAFT_MSG_SNAP) {
            /* Like a transport that reports "sent"; if it is lost, the
             * follower's probe answer brings the leader back to it. */
            raft_report_snapshot(&nd->r, rd.msgs[i].to, true);
        }
    }
    if (rd.snapshot != NULL) {
        install_snapshot(net, nd, rd.snapshot);
    }
    persist_entries(net, nd, &rd);
    if (rd.hard_changed) {
        net_event(net, "%llu hard term=%llu vote=%llu commit=%llu",
                  (unsigned long long)nd->id, (unsigned long long)rd.hard.term,
                  (unsigned long long)rd.hard.vote,
                  (unsigned long long)rd.hard.commit);
        raft_memstorage_set_hard_state(&nd->ms, &rd.hard);
    }
    if (rd.entries_count > 0) {
        const struct raft_entry *last = &rd.entries[rd.entries_count - 1];
        raft_persisted(&nd->r, last->index, last->term);
    }
    for (size_t i = 0; i < rd.msgs_after_persist_count; i++) {
        enqueue(net, &rd.msgs_after_persist[i]);
    }
    event_entries(net, nd->id, "apply", rd.committed, rd.committed_count, "");
    for (size_t i = 0; i < rd.committed_count; i++) {
        apply_entry(net, nd, &rd.committed[i]);
    }
    if (rd.committed_count > 0) {
        raft_applied(&nd->r, rd.committed[rd.committed_count - 1].index);
    }
    for (size_t i = 0; i < rd.reads_count && nd->reads_count < 256; i++) {
        nd->reads[nd->reads_count++] = rd.reads[i];
        net_note(net, "node %llu read ctx=%llu idx=%llu",
                 (unsigned long long)nd->id,
                 (unsigned long long)rd.reads[i].ctx,
                 (unsigned long long)rd.reads[i].index);
        net_event(net, "%llu read ctx=%llu index=%llu",
                  (unsigned long long)nd->id,
                  (unsigned long long)rd.reads[i].ctx,
                  (unsigned long long)rd.reads[i].index);
    }
    if (rd.soft_changed) {
        net_note(net, "node %llu %s leader=%llu term=%llu",
                 (unsigned long long)nd->id, raft_role_str(rd.role),
                 (unsigned long long)rd.leader,
                 (unsigned long long)rd.hard.term);
    }
    raft_advance(&nd->r, &rd);
}

static void flush_all(struct net *net)
{
    for (int i = 1; i <= NET_MAX; i++) {
        struct node *nd = &net->nodes[i];
        for (int k = 0; nd->up && raft_has_ready(&nd->r); k++) {
            if (k > 1000) {
                FATAL("node %d never quiet", i);
            }
            handle_ready(net, nd);
        }
    }
}

static void deliver(struct net *net, struct pkt *p)
{
    struct node *nd = net_node(net, p->to);
    bool cut = net->cut[p->from][p->to];
    if ((!nd->up || cut) && net->events == NULL) {
        net->dropped++;
        return;
    }
    struct raft_msg m;
    int rc = raft_msg_decode(p->bytes, p->len, 0, &m);
    if (rc != 0) {
        FATAL("decode: %s", err_str(rc));
    }
    if (!nd->up || cut) {
        event_msg(net, "drop ", &m, cut ? " (cut)" : " (down)");
        net->dropped++;
    } else if (net->filter == NULL || net->filter(net, &m, net->filter_arg)) {
        char line[256];
        describe(&m, line, sizeof(line));
        net_note(net, "%s", line);
        net->delivered++;
        rc = raft_step(&nd->r, &m);
        if (rc != 0) {
            FATAL("step: %s", err_str(rc));
        }
    } else {
        event_msg(net, "drop ", &m, " (filter)");
        net->dropped++;
    }
    raft_msg_free_decoded(&m);
}

void net_run(struct net *net)
{
    for (int round = 0;; round++) {
        if (round > 100000 || (net->events != NULL && round > 2000)) {
            if (net->events == NULL) {
                FATAL("network never quiet");
            }
            /* A golden replay reports it (a livelock is a behaviour the
             * diff should show) and stops delivering. */
            net_event(net, "network never quiet after %d rounds: stopped",
                      round);
            net->stuck = true;
            return;
        }
        flush_all(net);
        if (net->q_count == 0) {
            return;
        }
        /* Deliver what is queued now; replies queue behind. */
        size_t n = net->q_count;
        struct pkt *batch = net->q;
        net->q = NULL;
        net->q_count = 0;
        net->q_cap = 0;
        for (size_t i = n; net->chaos != NULL && i > 1; i--) {
            size_t j = (size_t)prng_below(net->chaos, i);
            struct pkt t = batch[i - 1];
            batch[i - 1] = batch[j];
            batch[j] = t;
        }
        for (size_t i = 0; i < n; i++) {
            deliver(net, &batch[i]);
            if (net->chaos != NULL && prng_chance(net->chaos, 1, 20)) {
                deliver(net, &batch[i]); /* duplicated by the network */
            }
            free(batch[i].bytes);
            flush_all(net);
        }
        free(batch);
    }
}

void net_flush(struct net *net)
{
    flush_all(net);
}

static bool pkt_matches(const struct pkt *p, uint64_t from, uint64_t to)
{
    return (from == 0 || p->from == from) && (to == 0 || p->to == to);
}

static void pkt_push(struct pkt **v, size_t *count, size_t *cap,
                     const struct pkt *p)
{
    if (*count == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = realloc(*v, *cap * sizeof(**v));
        if (*v == NULL) {
            FATAL("out of memory");
        }
    }
    (*v)[(*count)++] = *p;
}

size_t net_deliver_some(struct net *net, uint64_t from, uint64_t to, bool drop)
{
    flush_all(net);
    size_t n = net->q_count, matched = 0;
    struct pkt *batch = net->q;
    net->q = NULL;
    net->q_count = 0;
    net->q_cap = 0;
    struct pkt *keep = NULL;
    size_t keep_count = 0, keep_cap = 0;
    for (size_t i = 0; i < n; i++) {
        if (!pkt_matches(&batch[i], from, to)) {
            pkt_push(&keep, &keep_count, &keep_cap, &batch[i]);
            continue;
        }
        matched++;
        if (drop) {
            struct raft_msg m;
            if (raft_msg_decode(batch[i].bytes, batch[i].len, 0, &m) != 0) {
                FATAL("decode");
            }
            event_msg(net, "drop ", &m, "");
            raft_msg_free_decoded(&m);
            net->dropped++;
        } else {
            deliver(net, &batch[i]);
        }
        free(batch[i].bytes);
        flush_all(net);
    }
    free(batch);
    /* What was not taken stays ahead of what the deliveries queued. */
    for (size_t i = 0; i < net->q_count; i++) {
        pkt_push(&keep, &keep_count, &keep_cap, &net->q[i]);
    }
    free(net->q);
    net->q = keep;
    net->q_count = keep_count;
    net->q_cap = keep_cap;
    return matched;
}

void net_tick(struct net *net, uint64_t id)
{
    struct node *nd = net_node(net, id);
    if (nd->up && raft_tick(&nd->r) != 0) {
        FATAL("tick");
    }
}

void net_tick_all(struct net *net, int ticks)
{
    for (int t = 0; t < ticks; t++) {
        for (int i = 1; i <= NET_MAX; i++) {
            net_tick(net, (uint64_t)i);
        }
        net_run(net);
    }
}

void net_elect(struct net *net, uint64_t id)
{
    if (raft_campaign(&net_node(net, id)->r) != 0) {
        FATAL("campaign");
    }
    net_run(net);
}

uint64_t net_leader(struct net *net)
{
    uint64_t leader = 0, term = 0;
    int count = 0;
    for (int i = 1; i <= NET_MAX; i++) {
        struct node *nd = &net->nodes[i];
        if (!nd->up || nd->r.role != RAFT_LEADER) {
            continue;
        }
        if (nd->r.term > term) {
            term = nd->r.term;
            leader = nd->id;
            count = 1;
        } else if (nd->r.term == term) {
            count++;
        }
    }
    if (count > 1) {
        FATAL("two leaders in term %llu", (unsigned long long)term);
    }
    return leader;
}

int net_propose(struct net *net, uint64_t id, const char *text)
{
    return raft_propose(&net_node(net, id)->r, RAFT_ENTRY_NORMAL, text,
                        strlen(text), NULL);
}

bool net_states_agree(struct net *net)
{
    for (int i = 1; i <= NET_MAX; i++) {
        for (int j = i + 1; j <= NET_MAX; j++) {
            struct node *a = &net->nodes[i], *b = &net->nodes[j];
            if (!a->up || !b->up || a->applied == 0 || b->applied == 0) {
                continue;
            }
            uint64_t k = a->applied < b->applied ? a->applied : b->applied;
            /* the latest index both computed (a snapshot skips some) */
            for (uint64_t n = 0; n < NET_HIST && k > 0; n++, k--) {
                if (a->hist_at[k % NET_HIST] == k &&
                    b->hist_at[k % NET_HIST] == k) {
                    break;
                }
            }
            if (k > 0 && a->hist_at[k % NET_HIST] == k &&
                b->hist_at[k % NET_HIST] == k &&
                a->hist[k % NET_HIST] != b->hist[k % NET_HIST]) {
                fprintf(stderr,
                        "# state differs at %llu: node %d applied %llu, "
                        "node %d applied %llu\n",
                        (unsigned long long)k, i,
                        (unsigned long long)a->applied, j,
                        (unsigned long long)b->applied);
                return false;
            }
        }
    }
    return true;
}

bool net_logs_agree(struct net *net)
{
    for (int i = 1; i <= NET_MAX; i++) {
        for (int j = i + 1; j <= NET_MAX; j++) {
            struct node *a = &net->nodes[i], *b = &net->nodes[j];
            if (!a->up || !b->up) {
                continue;
            }
            uint64_t k = a->r.commit < b->r.commit ? a->r.commit : b->r.commit;
            uint64_t lo = a->ms.snap.meta.index > b->ms.snap.meta.index
                              ? a->ms.snap.meta.index
                              : b->ms.snap.meta.index;
            for (uint64_t x = lo + 1; x <= k; x++) {
                uint64_t ta = 0, tb = 0;
                if (a->ms.iface.term(&a->ms, x, &ta) != 0 ||
                    b->ms.iface.term(&b->ms, x, &tb) != 0 || ta != tb) {
                    return false;
                }
            }
        }
    }
    return true;
}

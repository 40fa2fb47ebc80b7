/*
 * node_members.c - membership changes, leader transfer, defragmentation.
 *
 * A membership change is a Raft conf-change entry whose opaque context
 * (raft_conf_change.ctx) is ours:
 *
 *   off  size  field
 *   0    8     waiter id on the proposing member (little-endian, as the
 *              other node-local records)
 *   8    8     proposing member id
 *   16   ...   the member's record (node__member_encode) as it will be
 *              stored; empty for REMOVE
 *
 * The applier stores the record in the store's member table in the same
 * transaction that moves the applied index (node_threads.c, on_conf), and
 * the proposer's waiter is answered from there. Peer URL updates are not a
 * Raft membership change (the voters do not change): they travel as a
 * normal entry carrying the new record (APPLY_MEMBER_RECORD).
 */
#include "consensus/node/node_int.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "base/str.h"
#include "proto/cairn.pb-c.h"

#define CONF_CTX_HEADER 16

uint64_t node_member_id_for(const struct node *n, const char *peer_urls)
{
    return node_member_id_derive(peer_urls, n->cfg.cluster_token);
}

static const struct node_member *find_member(const struct node *n, uint64_t id)
{
    for (size_t i = 0; i < n->members_count; i++) {
        if (n->members[i].id == id) {
            return &n->members[i];
        }
    }
    return NULL;
}

static size_t learners_count(const struct node *n)
{
    size_t c = 0;
    for (size_t i = 0; i < n->members_count; i++) {
        c += n->members[i].learner ? 1 : 0;
    }
    return c;
}

/* Whether two comma-separated URL lists share a URL: etcd refuses a
 * member (added or updated) any of whose peer URLs another member has. */
static bool urls_share(const char *a, const char *b)
{
    for (const char *p = a; *p != '\0';) {
        size_t len = strcspn(p, ",");
        if (str_list_has(b, p, len)) {
            return true;
        }
        p += len + (p[len] == ',');
    }
    return false;
}

static bool peer_urls_taken(const struct node *n, const struct node_member *m)
{
    for (size_t i = 0; i < n->members_count; i++) {
        if (n->members[i].id != m->id &&
            urls_share(n->members[i].peer_urls, m->peer_urls)) {
            return true;
        }
    }
    return false;
}

/* etcd's started-member rule (--strict-reconfig-check): the voters that
 * published themselves (a member does once it runs, with its name) must
 * stay a quorum of the voters after the change. A cluster of one may add
 * its second voter, as etcd allows for a restore. */
static int check_started(const struct node *n, enum node_member_op op,
                         uint64_t id)
{
    size_t voters = 0;
    size_t started = 0;
    for (size_t i = 0; i < n->members_count; i++) {
        const struct node_member *m = &n->members[i];
        if (m->learner || (op == NODE_MEMBER_REMOVE && m->id == id)) {
            continue;
        }
        voters++;
        started += m->name[0] != '\0';
    }
    switch (op) {
    case NODE_MEMBER_ADD:
        if (started == 1 && voters == 1) {
            return 0;
        }
        voters++;
        break;
    case NODE_MEMBER_PROMOTE:
        voters++; /* the learner counts as started, as in etcd */
        started++;
        break;
    case NODE_MEMBER_REMOVE: {
        const struct node_member *m = find_member(n, id);
        if (m == NULL || m->learner) {
            return 0;
        }
        break;
    }
    default:
        return 0;
    }
    return started >= voters / 2 + 1 ? 0 : ERR_NOT_ENOUGH_STARTED;
}

static int propose_update(struct node *n, const struct node_member *m,
                          uint32_t timeout_ms, node_propose_cb cb, void *ctx)
{
    Cairnpb__MemberRecord mr = CAIRNPB__MEMBER_RECORD__INIT;
    struct buf rec;
    uint8_t tmp[1024];
    int rc;
    buf_init(&rec, 0);
    rc = node__member_encode(m, &rec);
    if (rc == 0) {
        mr.id = m->id;
        mr.record.data = rec.data;
        mr.record.len = rec.len;
        if (cairnpb__member_record__get_packed_size(&mr) > sizeof(tmp)) {
            rc = ERR_LIMIT;
        }
    }
    if (rc == 0) {
        size_t len = cairnpb__member_record__pack(&mr, tmp);
        rc =
            node_propose(n, APPLY_MEMBER_RECORD, tmp, len, timeout_ms, cb, ctx);
    }
    buf_free(&rec);
    return rc;
}

/* Where member id is in the transport's peers: tpeers_count if not. */
static size_t tpeer_find(const struct node *n, uint64_t id)
{
    size_t k = 0;
    while (k < n->tpeers_count && n->tpeers[k].id != id) {
        k++;
    }
    return k;
}

/* Give the transport a peer it does not have yet. */
static void tpeer_add(struct node *n, uint64_t id, const char *addr,
                      const char *why)
{
    size_t k = n->tpeers_count;
    if (k < NODE_MEMBERS_MAX &&
        transport_peer_add(&n->transport, id, addr) == 0) {
        n->tpeers[k].id = id;
        snprintf(n->tpeers[k].addr, sizeof(n->tpeers[k].addr), "%s", addr);
        n->tpeers_count++;
        LOGI("node", "peer %016llx added at %s%s", (unsigned long long)id, addr,
             why);
    }
}

/* A configuration counts from its append (raft.h), the member table from
 * its apply: the leader must reach a member it adds before the change
 * commits, which for the second voter of a cluster needs that member's
 * own answer. So the proposer connects at once; node__transport_sync
 * keeps the peer while Raft's configuration or the table has it. */
static void transport_pending(struct node *n, const struct node_member *m)
{
    char addr[128];
    char host[128];
    if (!n->transport_on) {
        int rc = node__transport_start(n, true);
        if (rc != 0) {
            LOGE("node", "starting the peer transport for the new member: %s",
                 err_str(rc));
            return;
        }
    }
    if (node__peer_addr(m->peer_urls, addr, sizeof(addr)) != 0 ||
        tpeer_find(n, m->id) < n->tpeers_count) {
        return;
    }
    tpeer_add(n, m->id, addr, " (being added)");
    node__peer_host(m->peer_urls, host, sizeof(host));
    (void)transport_peer_tls_name(&n->transport, m->id, host);
}

int node_member_change(struct node *n, enum node_member_op op,
                       const struct node_member *m, uint32_t timeout_ms,
                       node_propose_cb cb, void *ctx)
{
    const struct node_member *cur = find_member(n, m->id);
    struct node_member rec;
    struct raft_conf_change cc;
    struct buf b;
    uint64_t id;
    int rc;

    if (n->failed != 0 || n->closing) {
        return ERR_STOPPED;
    }
    if (n->leader == RAFT_NONE) {
        return ERR_NO_LEADER;
    }
    memset(&cc, 0, sizeof(cc));
    memset(&rec, 0, sizeof(rec));
    switch (op) {
    case NODE_MEMBER_ADD:
    case NODE_MEMBER_ADD_LEARNER:
        if (cur != NULL) {
            return ERR_MEMBER_EXISTS;
        }
        if (peer_urls_taken(n, m)) {
            return ERR_PEER_URL_EXISTS;
        }
        if (op == NODE_MEMBER_ADD_LEARNER && learners_count(n) >= 1) {
            return ERR_TOO_MANY_LEARNERS; /* etcd 3.4/3.5: one learner */
        }
        rec = *m;
        rec.learner = op == NODE_MEMBER_ADD_LEARNER;
        rec.client_urls[0] = '\0';
        cc.type = rec.learner ? RAFT_CC_ADD_LEARNER : RAFT_CC_ADD_VOTER;
        break;
    case NODE_MEMBER_REMOVE:
        if (cur == NULL) {
            return ERR_MEMBER_NOT_FOUND;
        }
        cc.type = RAFT_CC_REMOVE;
        break;
    case NODE_MEMBER_PROMOTE:
        if (cur == NULL) {
            return ERR_MEMBER_NOT_FOUND;
        }
        if (!cur->learner) {
            return ERR_NOT_LEARNER;
        }
        rec = *cur;
        rec.learner = false;
        cc.type = RAFT_CC_PROMOTE;
        break;
    case NODE_MEMBER_UPDATE:
        if (cur == NULL) {
            return ERR_MEMBER_NOT_FOUND;
        }
        if (peer_urls_taken(n, m)) {
            return ERR_PEER_URL_EXISTS; /* another member's */
        }
        rec = *cur;
        snprintf(rec.peer_urls, sizeof(rec.peer_urls), "%s", m->peer_urls);
        return propose_update(n, &rec, timeout_ms, cb, ctx);
    default:
        return ERR_INVALID;
    }
    if (n->cfg.strict_reconfig) {
        rc = check_started(n, op, m->id);
        if (rc != 0) {
            return rc;
        }
    }
    id = node__waiter_add(n, timeout_ms, cb, ctx);
    if (id == 0) {
        return ERR_TOO_MANY_REQUESTS;
    }
    n->waiters[id % n->waiters_cap].conf = true; /* see conf_refused */
    buf_init(&b, 0);
    rc = buf_append(&b, &id, 8);
    if (rc == 0) {
        rc = buf_append(&b, &n->cfg.member_id, 8);
    }
    if (rc == 0 && op != NODE_MEMBER_REMOVE) {
        rec.id = m->id;
        rc = node__member_encode(&rec, &b);
    }
    if (rc == 0) {
        cc.node_id = m->id;
        cc.ctx = b.data;
        cc.ctx_len = (uint32_t)b.len;
        /* A change appended moves the quorum of every entry not committed
         * yet: none may be committed by the WAL thread's rule after it. */
        node__gate_revoke(n);
        rc = raft_propose_conf_change(&n->raft, &cc, NULL);
    }
    buf_free(&b);
    if (rc != 0) {
        /* take the waiter back without calling cb: the error is returned */
        node__waiter_drop(n, id);
        return rc;
    }
    if (op == NODE_MEMBER_ADD || op == NODE_MEMBER_ADD_LEARNER) {
        transport_pending(n, &rec);
    }
    n->dirty = true;
    node__wake(n);
    return 0;
}

/* Bring the transport's peers in line with the member list. */
void node__transport_sync(struct node *n)
{
    bool self_found = false;
    if (!n->transport_on) {
        /* A member started alone has no transport (node__transport_start
         * waits for a second member): the first one added starts it, or
         * the new member could never reach this one. */
        if (n->members_count > 1 && !n->closing && n->failed == 0) {
            int rc = node__transport_start(n, false);
            if (rc != 0) {
                LOGE("node", "starting the peer transport: %s", err_str(rc));
            }
        }
        return;
    }
    for (size_t i = 0; i < n->members_count; i++) {
        const struct node_member *m = &n->members[i];
        char addr[128];
        size_t k;
        if (m->id == n->cfg.member_id) {
            self_found = true;
            continue;
        }
        if (node__peer_addr(m->peer_urls, addr, sizeof(addr)) != 0) {
            continue;
        }
        k = tpeer_find(n, m->id);
        if (k == n->tpeers_count) {
            tpeer_add(n, m->id, addr, "");
        } else if (strcmp(n->tpeers[k].addr, addr) != 0) {
            if (transport_peer_update(&n->transport, m->id, addr) == 0) {
                snprintf(n->tpeers[k].addr, sizeof(n->tpeers[k].addr), "%s",
                         addr);
            }
        }
    }
    for (size_t i = 0; i < n->members_count; i++) {
        /* the URL's host name for the TLS check (cheap, idempotent) */
        char host[128];
        node__peer_host(n->members[i].peer_urls, host, sizeof(host));
        (void)transport_peer_tls_name(&n->transport, n->members[i].id, host);
    }
    for (size_t k = 0; k < n->tpeers_count;) {
        if (find_member(n, n->tpeers[k].id) == NULL &&
            !node__in_conf(n, n->tpeers[k].id)) {
            (void)transport_peer_remove(&n->transport, n->tpeers[k].id);
            LOGI("node", "peer %016llx removed",
                 (unsigned long long)n->tpeers[k].id);
            n->tpeers[k] = n->tpeers[--n->tpeers_count];
        } else {
            k++;
        }
    }
    if (!self_found && n->members_count > 0 && n->failed == 0) {
        LOGE("node", "%s", err_str(ERR_MEMBER_REMOVED));
        n->failed = ERR_MEMBER_REMOVED;
    }
}

/* ------------------------------------------------------- leader transfer */

int node_transfer_leader(struct node *n, uint64_t to, uint32_t timeout_ms,
                         node_read_cb cb, void *ctx)
{
    int rc;
    if (n->failed != 0 || n->closing) {
        return ERR_STOPPED;
    }
    if (n->role != RAFT_LEADER) {
        return ERR_NOT_LEADER;
    }
    if (n->move_cb != NULL) {
        return ERR_BUSY;
    }
    if (to == n->cfg.member_id) {
        cb(ctx, 0); /* already there */
        return 0;
    }
    rc = raft_transfer_leader(&n->raft, to);
    if (rc != 0) {
        return rc;
    }
    n->move_to = to;
    n->move_cb = cb;
    n->move_ctx = ctx;
    n->move_deadline_ms =
        clock_mono_ns() / 1000000 + (timeout_ms != 0 ? timeout_ms : 5000);
    n->dirty = true;
    node__wake(n);
    return 0;
}

void node__move_check(struct node *n, uint64_t now_ms)
{
    int err;
    if (n->move_cb == NULL) {
        return;
    }
    if (n->leader == n->move_to) {
        err = 0;
    } else if (now_ms >= n->move_deadline_ms || n->failed != 0 || n->closing) {
        err = n->failed != 0 || n->closing ? ERR_STOPPED : ERR_TIMEOUT;
    } else {
        return;
    }
    node_read_cb cb = n->move_cb;
    n->move_cb = NULL;
    cb(n->move_ctx, err);
}

/* ----------------------------------------------------------- defrag */

int node_defrag(struct node *n, node_read_cb cb, void *ctx)
{
    struct apply_job *aj;
    if (n->failed != 0 || n->closing) {
        return ERR_STOPPED;
    }
    if (n->defrag_cb != NULL) {
        return ERR_BUSY;
    }
    aj = mem_calloc(1, sizeof(*aj));
    if (aj == NULL) {
        return -ENOMEM;
    }
    buf_init(&aj->results, 0);
    buf_init(&aj->events, 0);
    aj->defrag = true;
    n->defrag_cb = cb;
    n->defrag_ctx = ctx;
    node__jobq_push(&n->apply_in, aj);
    return 0;
}

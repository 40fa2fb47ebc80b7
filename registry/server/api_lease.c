/*
 * api_lease.c - lease timers on the loop (consensus/lease), the
 * LeaseKeepAlive bidi stream and LeaseTimeToLive (etcd-api.md 1.5.7).
 *
 * Timers: every member mirrors the applied grants, revokes and checkpoints
 * into its lease table (the node's lease observer), rebuilt from the store
 * at start. A tick every TICK_MS on the leader proposes a LeaseRevoke for
 * each expired lease (a bounded number per tick, at most REVOKES_INFLIGHT
 * in flight) and one LeaseCheckpoint with the remaining TTLs that are due,
 * carrying the applied index they were computed at (apply skips a stale one
 * for a lease renewed through the log since: lease.h, point 3).
 *
 * The table leads (renews in memory, names expired leases, checkpoints) from
 * when this member, as leader, has applied its term's first entry
 * (node_lead_applied: the node tells the observer again then) until the
 * leader or the term changes; lease.h, point 1.
 *
 * KeepAlive: one response per request, in request order. On the leader a
 * renewal is in memory, unless a remaining-TTL checkpoint was recorded for
 * the lease: then a clearing checkpoint (R = 0) is written first (lease.h,
 * point 5). An in-memory renewal is answered once a read-index round that
 * began after it confirms this member still leads in the same term: a
 * quorum heard from us after the renewal, so any later leader is elected
 * after it and, promoted, gives the lease its full TTL plus an election
 * timeout from then. Without the round an isolated leader (no
 * check-quorum, or inside its election timeout) answered renewals that
 * the new leader never knew of and revoked early (simulator seed 9649;
 * etcd 3.4.25 and 3.5.8 added the same check, "ensureLeadership"). When
 * the round fails or the term changed, the renewal goes through the log. On a
 * follower the renewal itself is written to the log as a checkpoint with R = 0,
 * which every member applies as "full TTL from now"; the follower answers once
 * it has applied it. That costs a Raft write per follower keep-alive, but needs
 * no channel to the leader besides Raft, and a renewal the client heard about
 * is in the log, so no later leader can miss it. An unknown or expired lease
 * answers TTL 0 and the stream stays open, as etcd.
 *
 * A renewal proposed under one leader and term is proposed again when a
 * new leader becomes known (a dead leader drops what a follower forwarded
 * to it); the first of the two to apply answers.
 *
 * Failure modes: a proposal that cannot be made (no leader, too many
 * requests) ends the stream with that error (clients reopen it); a client
 * that sends more than KA_PENDING_MAX requests without reading ends with
 * RESOURCE_EXHAUSTED; "hasleader" streams end with "etcdserver: no leader"
 * when the watch module says the leader is gone for good.
 */
#include "registry/server/server.h"

#include <errno.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/log.h"
#include "consensus/lease/lease.h"
#include "proto/cairn.pb-c.h"
#include "proto/rpc.pb-c.h"
#include "registry/server/api_int.h"

/* Called from api_watch.c (the extension points live there). */
int api_lease__start(struct server *s, char *msg, size_t msg_len);
void api_lease__stop(struct server *s);
size_t api_lease__methods(struct server *s, struct grpc_method *out,
                          size_t cap);
void api_lease__on_lease(struct server *s, int64_t id, int64_t ttl,
                         bool checkpoint);
void api_lease__on_leader(struct server *s, uint64_t leader, uint64_t term);
void api_lease__no_leader(struct server *s);
/* The LeaseTimeToLive method of api.c's table. */
int api__lease_ttl_fn(struct api_op *op, const ProtobufCMessage *req);
/* One renewal for the gateway's /v3/lease/keepalive (registry/http). */
typedef void (*api_lease_renew_fn)(void *ctx, int err, int64_t ttl);
int api_lease_renew(struct server *s, int64_t id, api_lease_renew_fn done,
                    void *ctx);

#define TICK_MS           100
#define REVOKES_PER_TICK  100 /* about 1000/s, as etcd's revoke rate */
#define REVOKES_INFLIGHT  1000
#define CHECKPOINTS_BATCH 1000
#define KA_PENDING_MAX    256

struct lease_svc {
    struct server *s;
    struct lease_table *t;
    uv_timer_t tick;
    int refs; /* 1 while running + proposals in flight + open calls */
    bool stopping;
    bool handle_open;
    uint64_t leader;
    uint64_t term;
    uint64_t lead_term; /* the term the table was promoted in */
    size_t revokes_inflight;
    struct kcall *calls;
    struct renew *renews; /* one-shot renewals through the log, unanswered */
};

struct ka_slot {
    int64_t id;
    int64_t ttl;
    bool ready;
    uint32_t gen;    /* of the renewal proposal that counts */
    uint64_t leader; /* and the leader and term it was made under */
    uint64_t term;
};

struct kcall {
    struct lease_svc *svc;
    struct grpc_call *call; /* NULL once the call is gone */
    struct kcall *prev, *next;
    bool hasleader;
    bool blocked;
    bool half_closed; /* end with OK once every answer is queued (etcd) */
    int refs;         /* proposals in flight + 1 while the call lives */
    struct ka_slot slots[KA_PENDING_MAX];
    size_t head;
    size_t len;
    uint64_t seq_head; /* sequence number of slots[head] */
};

static void svc_unref(struct lease_svc *l)
{
    if (--l->refs == 0) {
        ASSERT(l->calls == NULL);
        lease_table_close(l->t);
        mem_free(l);
    }
}

static uint64_t now_ms(const struct lease_svc *l)
{
    return uv_now(l->s->loop);
}

/* ------------------------------------------------------------- proposals */

/* A one-shot renewal (api_lease_renew) through the log: proposed again
 * when a new leader is known, like a stream's (renewals_retry); the first
 * proposal applied answers, once. */
struct renew {
    struct renew *prev, *next; /* in lease_svc.renews while unanswered */
    api_lease_renew_fn done;
    void *ctx;
    int64_t id;
    int refs;     /* proposals in flight */
    uint32_t gen; /* of the latest proposal */
    bool answered;
    uint64_t leader; /* the latest proposal was made under */
    uint64_t term;
};

struct prop {
    struct lease_svc *svc;
    struct kcall *kc; /* NULL for timer work */
    uint64_t seq;     /* keep-alive slot */
    uint32_t gen;     /* the slot's (or renewal's) proposal generation */
    int64_t id;
    bool revoke;
    struct renew *rn; /* api_lease_renew's renewal, or NULL */
};

/* An in-memory renewal waiting for its read-index round (see the top). */
struct confirm {
    struct lease_svc *svc;
    struct kcall *kc; /* a stream's keep-alive slot, or */
    uint64_t seq;
    uint32_t gen;     /* the slot's proposal generation at the start */
    struct renew *rn; /* api_lease_renew's renewal */
    int64_t ttl;      /* the answer */
    uint64_t term;    /* the term the renewal was made in */
};

static void renew_unlink(struct lease_svc *l, struct renew *rn)
{
    if (rn->prev != NULL) {
        rn->prev->next = rn->next;
    } else if (l->renews == rn) {
        l->renews = rn->next;
    }
    if (rn->next != NULL) {
        rn->next->prev = rn->prev;
    }
    rn->prev = rn->next = NULL;
}

static void kc_unref(struct kcall *kc)
{
    if (--kc->refs == 0) {
        struct lease_svc *l = kc->svc;
        mem_free(kc);
        svc_unref(l);
    }
}

static void kc_flush(struct kcall *kc);
static int renew_propose(struct lease_svc *l, struct renew *rn);
static void kc_end(struct kcall *kc, int err);

/* The slot of keep-alive seq while it waits for its answer, else NULL. */
static struct ka_slot *kc_slot(struct kcall *kc, uint64_t seq)
{
    if (kc->call == NULL || seq < kc->seq_head ||
        seq >= kc->seq_head + kc->len) {
        return NULL;
    }
    return &kc->slots[(kc->head + (seq - kc->seq_head)) % KA_PENDING_MAX];
}

static void on_prop_done(void *ctx, const struct apply_result *res)
{
    struct prop *p = ctx;
    struct lease_svc *l = p->svc;
    if (p->revoke) {
        l->revokes_inflight--;
    } else if (p->kc != NULL) {
        struct kcall *kc = p->kc;
        struct ka_slot *sl = kc_slot(kc, p->seq);
        /* A renewal proposed again after a leader change (renewals_retry)
         * has two proposals: the first applied answers; the failure of a
         * superseded one is not the answer. */
        if (sl != NULL && !sl->ready && (res->err == 0 || p->gen == sl->gen)) {
            int64_t rem = 0;
            int64_t ttl = 0;
            /* Applied here too: the local table knows if the lease
             * survived (an unknown lease is skipped by apply). */
            if (res->err == 0 && l->t != NULL &&
                lease_remaining(l->t, p->id, now_ms(l), &rem, &ttl) == 0) {
                sl->ttl = ttl;
            }
            sl->ready = true;
            if (res->err != 0 && res->err != ERR_LEASE_NOT_FOUND) {
                kc_end(kc, res->err);
            } else {
                kc_flush(kc);
            }
        }
        kc_unref(kc);
    } else if (p->rn != NULL) {
        struct renew *rn = p->rn;
        int64_t rem = 0;
        int64_t ttl = 0;
        int err = res->err == ERR_LEASE_NOT_FOUND ? 0 : res->err;
        if (!rn->answered && (err == 0 || p->gen == rn->gen)) {
            rn->answered = true;
            renew_unlink(l, rn);
            if (err == 0 && l->t != NULL) {
                (void)lease_remaining(l->t, p->id, now_ms(l), &rem, &ttl);
            }
            rn->done(rn->ctx, err, ttl);
        }
        if (--rn->refs == 0) {
            renew_unlink(l, rn);
            mem_free(rn);
        }
    }
    mem_free(p);
    svc_unref(l);
}

static int propose_pb(struct lease_svc *l, enum apply_op op,
                      const ProtobufCMessage *m, struct prop *p)
{
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t stack[512];
    uint8_t *buf = len <= sizeof(stack) ? stack : mem_alloc(len);
    int rc;
    if (buf == NULL) {
        return -ENOMEM;
    }
    protobuf_c_message_pack(m, buf);
    rc = node_propose(l->s->node, op, buf, len, 0, on_prop_done, p);
    if (buf != stack) {
        mem_free(buf);
    }
    if (rc == 0) {
        l->refs++;
    }
    return rc;
}

/* A renewal through the log: a checkpoint with remaining TTL 0. */
static int propose_renewal(struct lease_svc *l, struct kcall *kc, uint64_t seq,
                           int64_t id)
{
    Etcdserverpb__LeaseCheckpointRequest req =
        ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
    Etcdserverpb__LeaseCheckpoint cp = ETCDSERVERPB__LEASE_CHECKPOINT__INIT;
    Etcdserverpb__LeaseCheckpoint *cpp = &cp;
    struct prop *p = mem_calloc(1, sizeof(*p));
    int rc;
    if (p == NULL) {
        return -ENOMEM;
    }
    struct ka_slot *sl = kc_slot(kc, seq);
    ASSERT(sl != NULL);
    p->svc = l;
    p->kc = kc;
    p->seq = seq;
    p->gen = sl->gen + 1;
    p->id = id;
    cp.id = id;
    cp.remaining_ttl = 0;
    req.n_checkpoints = 1;
    req.checkpoints = &cpp;
    rc = propose_pb(l, APPLY_LEASE_CHECKPOINT, &req.base, p);
    if (rc != 0) {
        mem_free(p);
        return rc;
    }
    sl->gen = p->gen;
    sl->leader = l->leader;
    sl->term = l->term;
    kc->refs++;
    return 0;
}

/* A new leader is known: renewals proposed under another leader or term
 * may be lost with it (a follower forwards its proposal to the leader it
 * knew, and a dead one drops it; the node would only time it out after
 * 5 s + 2 election timeouts, and every later keep-alive on the stream
 * waits behind it, long enough for clientv3 to give the lease up). Each
 * is proposed again; a renewal is idempotent (full TTL from when it
 * applies), so both applying is harmless. */
static void renewals_retry(struct lease_svc *l)
{
    for (struct renew *rn = l->renews; rn != NULL; rn = rn->next) {
        if (!rn->answered && (rn->leader != l->leader || rn->term != l->term)) {
            (void)renew_propose(l, rn); /* else the first one's answer */
        }
    }
    struct kcall *next;
    for (struct kcall *kc = l->calls; kc != NULL; kc = next) {
        next = kc->next;
        for (size_t i = 0; i < kc->len; i++) {
            struct ka_slot *sl = &kc->slots[(kc->head + i) % KA_PENDING_MAX];
            if (sl->ready || (sl->leader == l->leader && sl->term == l->term)) {
                continue;
            }
            int rc = propose_renewal(l, kc, kc->seq_head + i, sl->id);
            if (rc != 0) {
                kc_end(kc, rc);
                break;
            }
        }
    }
}

static void propose_revokes(struct lease_svc *l)
{
    int64_t ids[REVOKES_PER_TICK];
    size_t cap = REVOKES_INFLIGHT - l->revokes_inflight;
    size_t n = lease_expired(l->t, now_ms(l), ids,
                             cap < REVOKES_PER_TICK ? cap : REVOKES_PER_TICK);
    for (size_t i = 0; i < n; i++) {
        /* An expiry, not a revoke: a renewal through the log that applies
         * before it (proposed before we saw it) keeps the lease. */
        Cairnpb__LeaseExpire req = CAIRNPB__LEASE_EXPIRE__INIT;
        struct prop *p = mem_calloc(1, sizeof(*p));
        if (p == NULL) {
            return; /* named again after revoke_retry_ms */
        }
        p->svc = l;
        p->revoke = true;
        p->id = ids[i];
        req.id = ids[i];
        req.seen_index = node_applied(l->s->node);
        if (propose_pb(l, APPLY_LEASE_EXPIRE, &req.base, p) != 0) {
            mem_free(p);
            return;
        }
        l->revokes_inflight++;
    }
}

static void propose_checkpoints(struct lease_svc *l)
{
    struct lease_checkpoint due[CHECKPOINTS_BATCH];
    Etcdserverpb__LeaseCheckpoint cps[CHECKPOINTS_BATCH];
    Etcdserverpb__LeaseCheckpoint *cpp[CHECKPOINTS_BATCH];
    Etcdserverpb__LeaseCheckpointRequest req =
        ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
    size_t n = lease_checkpoints_due(l->t, now_ms(l), due, CHECKPOINTS_BATCH);
    struct prop *p;
    if (n == 0) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        etcdserverpb__lease_checkpoint__init(&cps[i]);
        cps[i].id = due[i].id;
        cps[i].remaining_ttl = due[i].remaining_s;
        cpp[i] = &cps[i];
    }
    req.n_checkpoints = n;
    req.checkpoints = cpp;
    /* what the remaining TTLs were computed from: apply skips one for a
     * lease renewed through the log after it (a stale R) */
    req.seen_index = node_applied(l->s->node);
    p = mem_calloc(1, sizeof(*p));
    if (p == NULL) {
        return; /* the leases stay marked: renewals write a clear */
    }
    p->svc = l;
    if (propose_pb(l, APPLY_LEASE_CHECKPOINT, &req.base, p) != 0) {
        mem_free(p);
    }
}

static void on_tick(uv_timer_t *t)
{
    struct lease_svc *l = t->data;
    if (l->stopping || !lease_is_leader(l->t)) {
        return;
    }
    propose_revokes(l);
    propose_checkpoints(l);
}

/* ------------------------------------------------------------ keep-alive */

static void kc_detach(struct kcall *kc)
{
    struct lease_svc *l = kc->svc;
    if (kc->prev != NULL) {
        kc->prev->next = kc->next;
    } else {
        l->calls = kc->next;
    }
    if (kc->next != NULL) {
        kc->next->prev = kc->prev;
    }
    kc->prev = kc->next = NULL;
    kc->call = NULL;
}

static void kc_end(struct kcall *kc, int err)
{
    struct grpc_call *call = kc->call;
    if (call == NULL) {
        return;
    }
    grpc_call_set_data(call, NULL);
    kc_detach(kc);
    grpc_call_finish_err(call, err);
    kc_unref(kc);
}

static void kc_flush(struct kcall *kc)
{
    struct lease_svc *l = kc->svc;
    while (kc->call != NULL && !kc->blocked && kc->len > 0 &&
           kc->slots[kc->head].ready) {
        Etcdserverpb__LeaseKeepAliveResponse resp =
            ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        h.cluster_id = l->s->cluster_id;
        h.member_id = l->s->member_id;
        h.revision = kv_rev(node_kv(l->s->node));
        h.raft_term = l->term;
        resp.header = &h;
        resp.id = kc->slots[kc->head].id;
        resp.ttl = kc->slots[kc->head].ttl;
        int rc = grpc_call_send(kc->call, &resp.base);
        if (rc == ERR_BUSY) {
            kc->blocked = true;
            return;
        }
        if (rc != 0) {
            kc_end(kc, rc);
            return;
        }
        kc->head = (kc->head + 1) % KA_PENDING_MAX;
        kc->len--;
        kc->seq_head++;
    }
    if (kc->len == 0) {
        /* Start over at the front: a head walking all the slots touches
         * every page of them in turn (10 KB a stream). */
        kc->head = 0;
    }
    if (kc->call != NULL && kc->half_closed && kc->len == 0) {
        struct grpc_call *call = kc->call;
        grpc_call_set_data(call, NULL);
        kc_detach(kc);
        grpc_call_finish(call, GRPC_OK, NULL);
        kc_unref(kc);
    }
}

/* The leader refused a renewal: true when its table does not hold the
 * lease at all, which may be a grant it has not applied yet (a new leader
 * behind its commit index; etcd waits for its applied index here). The
 * renewal then goes through the log and is answered once applied, from the
 * table: after the grant, or TTL 0 for a lease that never was. A lease the
 * table holds but has expired is not renewed (lease.h, point 6). */
static bool leader_unaware(const struct lease_svc *l, int64_t id)
{
    int64_t rem;
    int64_t ttl;
    return lease_remaining(l->t, id, now_ms(l), &rem, &ttl) ==
           ERR_LEASE_NOT_FOUND;
}

static void renew_link(struct lease_svc *l, struct renew *rn)
{
    rn->next = l->renews;
    if (l->renews != NULL) {
        l->renews->prev = rn;
    }
    l->renews = rn;
}

/* The read-index round of an in-memory renewal ended: answer it when this
 * member still leads in the term it renewed in, else renew through the
 * log (a slot that renewals_retry already proposed again is left to that
 * proposal). */
static void on_confirmed(void *ctx, int err)
{
    struct confirm *c = ctx;
    struct lease_svc *l = c->svc;
    bool held = err == 0 && !l->stopping && lease_is_leader(l->t) &&
                l->lead_term == c->term;
    int rc;
    if (c->kc != NULL) {
        struct kcall *kc = c->kc;
        struct ka_slot *sl = kc_slot(kc, c->seq);
        if (sl != NULL && !sl->ready && sl->gen == c->gen) {
            if (held) {
                sl->ready = true;
                kc_flush(kc);
            } else {
                rc = l->stopping ? ERR_STOPPED
                                 : propose_renewal(l, kc, c->seq, sl->id);
                if (rc != 0) {
                    kc_end(kc, rc);
                }
            }
        }
        kc_unref(kc);
    } else {
        struct renew *rn = c->rn;
        if (held) {
            rn->done(rn->ctx, 0, c->ttl);
            mem_free(rn);
        } else {
            rc = l->stopping ? ERR_STOPPED : renew_propose(l, rn);
            if (rc != 0) {
                rn->done(rn->ctx, rc, 0);
                mem_free(rn);
            } else {
                renew_link(l, rn);
            }
        }
    }
    mem_free(c);
    svc_unref(l);
}

/* Answer an in-memory renewal (TTL ttl) after a read-index round: the
 * stream's slot seq of kc, or rn. Errors: -ENOMEM, the node's read errors
 * (ERR_TOO_MANY_REQUESTS): the caller renews through the log instead. */
static int confirm_start(struct lease_svc *l, struct kcall *kc, uint64_t seq,
                         struct renew *rn, int64_t ttl)
{
    struct confirm *c = mem_calloc(1, sizeof(*c));
    int rc;
    if (c == NULL) {
        return -ENOMEM;
    }
    c->svc = l;
    c->kc = kc;
    c->seq = seq;
    c->rn = rn;
    c->ttl = ttl;
    c->term = l->lead_term;
    rc = node_read_index(l->s->node, 0, on_confirmed, c);
    if (rc != 0) {
        mem_free(c);
        return rc;
    }
    l->refs++;
    if (kc != NULL) {
        struct ka_slot *sl = kc_slot(kc, seq);
        c->gen = sl->gen;
        sl->ttl = ttl;
        /* a leader change meanwhile renews it through the log */
        sl->leader = l->leader;
        sl->term = l->term;
        kc->refs++;
    }
    return 0;
}

static void ka_on_msg(struct grpc_call *call, const struct grpc_msg *msg)
{
    struct kcall *kc = grpc_call_data(call);
    const Etcdserverpb__LeaseKeepAliveRequest *r =
        (const Etcdserverpb__LeaseKeepAliveRequest *)msg->pb;
    if (kc == NULL || r == NULL) {
        return;
    }
    struct lease_svc *l = kc->svc;
    if (kc->len == KA_PENDING_MAX) {
        kc_end(kc, ERR_BUSY);
        return;
    }
    uint64_t seq = kc->seq_head + kc->len;
    struct ka_slot *sl = &kc->slots[(kc->head + kc->len) % KA_PENDING_MAX];
    int64_t ttl = 0;
    bool log_needed = false;
    int rc = 0;
    kc->len++;
    memset(sl, 0, sizeof(*sl));
    sl->id = r->id;
    if (lease_is_leader(l->t)) {
        if (lease_renew(l->t, r->id, now_ms(l), &ttl, &log_needed) != 0) {
            ttl = 0;
            log_needed = leader_unaware(l, r->id);
        }
    } else {
        /* Follower: the renewal goes through the log, even for a lease not
         * in our table yet (a follower behind the grant would otherwise
         * answer TTL 0 for a live lease; the simulator saw it). Applying
         * the renewal after the grant answers from the table. */
        log_needed = true;
    }
    if (!log_needed && confirm_start(l, kc, seq, NULL, ttl) == 0) {
        return;
    }
    rc = propose_renewal(l, kc, seq, r->id);
    if (rc != 0) {
        if (lease_is_leader(l->t)) {
            lease_checkpoint_proposed(l->t, r->id, 1);
        }
        kc_end(kc, rc);
    }
}

static bool wants_leader(struct grpc_call *call)
{
    const char *v = grpc_call_metadata(call, "hasleader", NULL);
    return v != NULL && strcmp(v, "true") == 0;
}

/* Propose rn's renewal (a checkpoint with remaining TTL 0). */
static int renew_propose(struct lease_svc *l, struct renew *rn)
{
    Etcdserverpb__LeaseCheckpointRequest req =
        ETCDSERVERPB__LEASE_CHECKPOINT_REQUEST__INIT;
    Etcdserverpb__LeaseCheckpoint cp = ETCDSERVERPB__LEASE_CHECKPOINT__INIT;
    Etcdserverpb__LeaseCheckpoint *cpp = &cp;
    struct prop *p = mem_calloc(1, sizeof(*p));
    int rc;
    if (p == NULL) {
        return -ENOMEM;
    }
    p->svc = l;
    p->id = rn->id;
    p->rn = rn;
    p->gen = rn->gen + 1;
    cp.id = rn->id;
    req.n_checkpoints = 1;
    req.checkpoints = &cpp;
    rc = propose_pb(l, APPLY_LEASE_CHECKPOINT, &req.base, p);
    if (rc != 0) {
        mem_free(p);
        return rc;
    }
    rn->gen = p->gen;
    rn->refs++;
    rn->leader = l->leader;
    rn->term = l->term;
    return 0;
}

/* One keep-alive request for a front end without a gRPC call (the JSON
 * gateway's stream, the registry's session keep-alive): the same renewal
 * as ka_on_msg makes. On 0, done runs exactly once, always later on the
 * loop: after the read-index round when the renewal is in memory (leader,
 * no checkpoint to clear), else when its log entry applied, or with the
 * error (ERR_STOPPED at node close, the proposal's error after a failed
 * round). ttl is 0 for an unknown lease. Errors (done never runs):
 * ERR_STOPPED, -ENOMEM, the node's proposal errors. */
int api_lease_renew(struct server *s, int64_t id, api_lease_renew_fn done,
                    void *ctx)
{
    struct lease_svc *l = s->lease;
    int64_t ttl = 0;
    bool log_needed = false;
    int rc;
    ASSERT(done != NULL);
    if (l == NULL || l->stopping) {
        return ERR_STOPPED;
    }
    if (lease_is_leader(l->t)) {
        if (lease_renew(l->t, id, now_ms(l), &ttl, &log_needed) != 0) {
            ttl = 0;
            log_needed = leader_unaware(l, id);
        }
    } else {
        log_needed = true; /* follower: through the log (see ka_on_msg) */
    }
    struct renew *rn = mem_calloc(1, sizeof(*rn));
    if (rn == NULL) {
        return -ENOMEM;
    }
    rn->done = done;
    rn->ctx = ctx;
    rn->id = id;
    if (!log_needed && confirm_start(l, NULL, 0, rn, ttl) == 0) {
        return 0;
    }
    rc = renew_propose(l, rn);
    if (rc != 0) {
        if (lease_is_leader(l->t)) {
            lease_checkpoint_proposed(l->t, id, 1);
        }
        mem_free(rn);
        return rc;
    }
    renew_link(l, rn);
    return 0;
}

static void ka_on_start(struct grpc_call *call)
{
    struct lease_svc *l = grpc_call_method(call)->ctx;
    struct kcall *kc;
    if (l->stopping) {
        grpc_call_finish_err(call, ERR_STOPPED);
        return;
    }
    if (wants_leader(call) && l->leader == 0) {
        grpc_call_finish_err(call, ERR_NO_LEADER);
        return;
    }
    kc = mem_calloc(1, sizeof(*kc));
    if (kc == NULL) {
        grpc_call_finish_err(call, -ENOMEM);
        return;
    }
    kc->svc = l;
    kc->call = call;
    kc->refs = 1;
    kc->hasleader = wants_leader(call);
    kc->next = l->calls;
    if (l->calls != NULL) {
        l->calls->prev = kc;
    }
    l->calls = kc;
    l->refs++;
    grpc_call_set_data(call, kc);
}

static void ka_on_cancel(struct grpc_call *call)
{
    struct kcall *kc = grpc_call_data(call);
    if (kc != NULL) {
        grpc_call_set_data(call, NULL);
        kc_detach(kc);
        kc_unref(kc);
    }
}

/* etcd's keep-alive loop returns when the client closes its side: the call
 * ends with OK after the answers to what was asked (python3-etcd3's
 * refresh() depends on it). */
static void ka_on_half_close(struct grpc_call *call)
{
    struct kcall *kc = grpc_call_data(call);
    if (kc != NULL) {
        kc->half_closed = true;
        kc_flush(kc);
    }
}

static void ka_on_writable(struct grpc_call *call)
{
    struct kcall *kc = grpc_call_data(call);
    if (kc != NULL) {
        kc->blocked = false;
        kc_flush(kc);
    }
}

/* ------------------------------------------------------------ TimeToLive */

struct ttl_keys {
    ProtobufCBinaryData *keys;
    size_t count;
    size_t cap;
    int err;
};

static int collect_key(void *ctx, const uint8_t *key, size_t key_len)
{
    struct ttl_keys *k = ctx;
    if (k->count == k->cap) {
        size_t cap = k->cap == 0 ? 16 : k->cap * 2;
        ProtobufCBinaryData *v = mem_realloc(k->keys, cap * sizeof(*v));
        if (v == NULL) {
            k->err = -ENOMEM;
            return 1;
        }
        k->keys = v;
        k->cap = cap;
    }
    k->keys[k->count].data = mem_dup(key, key_len == 0 ? 1 : key_len);
    if (k->keys[k->count].data == NULL) {
        k->err = -ENOMEM;
        return 1;
    }
    k->keys[k->count++].len = key_len;
    return 0;
}

/* The answer, from this member's store and lease timers once it has
 * applied everything committed when the request came
 * (api__read_linearizable). */
static int ttl_serve(struct api_op *op)
{
    const Etcdserverpb__LeaseTimeToLiveRequest *r =
        (const Etcdserverpb__LeaseTimeToLiveRequest *)op->owned;
    Etcdserverpb__LeaseTimeToLiveResponse resp =
        ETCDSERVERPB__LEASE_TIME_TO_LIVE_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    struct lease_svc *l = op->s->lease;
    struct kv_read *rd;
    struct kv_lease rec;
    struct ttl_keys keys = {0};
    int64_t rem;
    int64_t ttl;
    int rc = node_read_begin(op->s->node, &rd);
    if (rc != 0) {
        return rc;
    }
    h.cluster_id = op->s->cluster_id;
    h.member_id = op->s->member_id;
    h.revision = kv_read_rev(rd);
    h.raft_term = l != NULL ? l->term : 0;
    resp.header = &h;
    resp.id = r->id;
    rc = kv_lease_get(rd, r->id, &rec);
    if (rc == ERR_LEASE_NOT_FOUND) {
        resp.ttl = -1; /* etcd 3.4: an unknown lease answers TTL -1 */
        rc = 0;
    } else if (rc == 0) {
        resp.grantedttl = rec.ttl;
        if (l != NULL &&
            lease_remaining(l->t, r->id, now_ms(l), &rem, &ttl) == 0) {
            resp.ttl = rem;
        } else {
            resp.ttl = rec.remaining_ttl > 0 ? rec.remaining_ttl : rec.ttl;
        }
        if (r->keys) {
            rc = kv_lease_keys(rd, r->id, collect_key, &keys);
            rc = rc != 0 ? rc : keys.err;
            resp.n_keys = keys.count;
            resp.keys = keys.keys;
        }
    }
    node_read_end(op->s->node, rd);
    if (rc == 0) {
        api__finish_msg(op, &resp.base);
    }
    for (size_t i = 0; i < keys.count; i++) {
        mem_free(keys.keys[i].data);
    }
    mem_free(keys.keys);
    return rc;
}

/* A linearizable read, as a Range is: on a follower the answer (attached
 * keys, header revision) then holds every write acknowledged before the
 * request, on any member. etcd 3.4 forwards the call to its leader; a
 * follower's own store could lag a put another member had just
 * acknowledged (found by kv_diff.test on three members: the header one
 * revision behind). */
int api__lease_ttl_fn(struct api_op *op, const ProtobufCMessage *req)
{
    (void)req; /* op->owned: the same message, read at the read point */
    return api__read_linearizable(op, ttl_serve);
}

/* ------------------------------------------------------------- lifecycle */

void api_lease__on_lease(struct server *s, int64_t id, int64_t ttl,
                         bool checkpoint)
{
    struct lease_svc *l = s->lease;
    if (l == NULL) {
        return; /* before start: the store's records are read then */
    }
    if (checkpoint) {
        lease_on_checkpoint(l->t, id, ttl, now_ms(l));
    } else if (ttl > 0) {
        if (lease_on_grant(l->t, id, ttl, now_ms(l)) != 0) {
            LOGE("lease", "out of memory tracking lease %016llx",
                 (unsigned long long)id);
        }
    } else {
        lease_on_revoke(l->t, id);
    }
}

void api_lease__on_leader(struct server *s, uint64_t leader, uint64_t term)
{
    struct lease_svc *l = s->lease;
    bool changed;
    if (l == NULL) {
        return;
    }
    changed = leader != 0 && (leader != l->leader || term != l->term);
    l->leader = leader;
    l->term = term;
    if (changed) {
        renewals_retry(l);
    }
    /* The table leads once this member has applied its term's first entry
     * (node_lead_applied), and only in that term. Promoted on the soft
     * state alone, it renewed in memory for a term that may never commit:
     * an expiry an earlier leader had appended, decided without that
     * renewal, could still be committed by another member and revoke the
     * lease early (simulator seed 407159). Until then keep-alives go
     * through the log, as on a follower. (etcd too promotes its lessor
     * when the leader applies its term's empty entry.) */
    bool lead = leader == s->member_id && node_lead_applied(s->node);
    if (lease_is_leader(l->t) && (!lead || l->lead_term != term)) {
        lease_demote(l->t);
    }
    if (lead && !lease_is_leader(l->t)) {
        lease_promote(l->t, now_ms(l));
        l->lead_term = term;
        LOGI("lease",
             "leader: %zu leases, expiries from the later of the "
             "log and now + remaining + election timeout",
             lease_count(l->t));
    }
}

void api_lease__no_leader(struct server *s)
{
    struct lease_svc *l = s->lease;
    struct kcall *next;
    if (l == NULL) {
        return;
    }
    for (struct kcall *kc = l->calls; kc != NULL; kc = next) {
        next = kc->next;
        if (kc->hasleader) {
            kc_end(kc, ERR_NO_LEADER);
        }
    }
}

struct restore {
    struct lease_svc *l;
    int err;
};

static int restore_one(void *ctx, const struct kv_lease *rec)
{
    struct restore *r = ctx;
    r->err = lease_restore(r->l->t, rec->id, rec->ttl, rec->remaining_ttl,
                           now_ms(r->l));
    return r->err != 0 ? 1 : 0;
}

/* After a snapshot install: the timers are rebuilt from the new store's
 * records and the role applied again (a promotion extends, as at start). */
void api_lease__restored(struct server *s)
{
    struct lease_svc *l = s->lease;
    struct lease_config cfg;
    struct lease_table *old;
    struct node_status st;
    struct kv_read *rd;
    struct restore r;
    int rc;
    if (l == NULL) {
        return;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.revokes_per_tick_max = REVOKES_PER_TICK;
    cfg.checkpoints_per_tick_max = CHECKPOINTS_BATCH;
    cfg.promote_extend_ms = s->opt->election_timeout_ms;
    old = l->t;
    rc = lease_table_init(&cfg, &l->t);
    if (rc == 0) {
        rc = node_read_begin(s->node, &rd);
        if (rc == 0) {
            r.l = l;
            r.err = 0;
            rc = kv_lease_list(rd, restore_one, &r);
            rc = rc != 0 ? rc : r.err;
            node_read_end(s->node, rd);
        }
        if (rc != 0) {
            lease_table_close(l->t);
        }
    }
    if (rc != 0) {
        l->t = old; /* keep the old timers rather than none */
        LOGW("lease", "rebuilding lease timers after a snapshot: %s",
             err_str(rc));
        return;
    }
    lease_table_close(old);
    node_status(s->node, &st);
    api_lease__on_leader(s, st.leader, st.term);
}

int api_lease__start(struct server *s, char *msg, size_t msg_len)
{
    struct lease_svc *l = mem_calloc(1, sizeof(*l));
    struct lease_config cfg;
    struct node_status st;
    struct kv_read *rd;
    struct restore r;
    int rc;
    if (l == NULL) {
        snprintf(msg, msg_len, "lease: out of memory");
        return -ENOMEM;
    }
    memset(&cfg, 0, sizeof(cfg));
    cfg.revokes_per_tick_max = REVOKES_PER_TICK;
    cfg.checkpoints_per_tick_max = CHECKPOINTS_BATCH;
    cfg.promote_extend_ms = s->opt->election_timeout_ms;
    l->s = s;
    l->refs = 1;
    rc = lease_table_init(&cfg, &l->t);
    rc = rc != 0 ? rc : node_read_begin(s->node, &rd);
    if (rc == 0) {
        r.l = l;
        r.err = 0;
        rc = kv_lease_list(rd, restore_one, &r);
        rc = rc != 0 ? rc : r.err;
        node_read_end(s->node, rd);
    }
    if (rc != 0) {
        lease_table_close(l->t);
        mem_free(l);
        snprintf(msg, msg_len, "lease: restoring timers: %s", err_str(rc));
        return rc;
    }
    uv_timer_init(s->loop, &l->tick);
    l->tick.data = l;
    l->handle_open = true;
    uv_timer_start(&l->tick, on_tick, TICK_MS, TICK_MS);
    s->lease = l;
    node_status(s->node, &st);
    api_lease__on_leader(s, st.leader, st.term);
    return 0;
}

static void on_tick_closed(uv_handle_t *h)
{
    svc_unref(h->data);
}

void api_lease__stop(struct server *s)
{
    struct lease_svc *l = s->lease;
    if (l == NULL) {
        return;
    }
    l->stopping = true;
    while (l->calls != NULL) {
        kc_end(l->calls, ERR_STOPPED);
    }
    s->lease = NULL;
    /* The svc lives on until the tick handle closed and every proposal in
     * flight has answered (node_close fails them with ERR_STOPPED). */
    uv_close((uv_handle_t *)&l->tick, on_tick_closed);
}

size_t api_lease__methods(struct server *s, struct grpc_method *out, size_t cap)
{
    struct lease_svc *l = s->lease;
    if (l == NULL || cap == 0) {
        return 0;
    }
    memset(&out[0], 0, sizeof(out[0]));
    out[0].path = "/etcdserverpb.Lease/LeaseKeepAlive";
    out[0].kind = GRPC_BIDI_STREAM;
    out[0].req_desc = &etcdserverpb__lease_keep_alive_request__descriptor;
    out[0].on_start = ka_on_start;
    out[0].on_msg = ka_on_msg;
    out[0].on_half_close = ka_on_half_close;
    out[0].on_cancel = ka_on_cancel;
    out[0].on_writable = ka_on_writable;
    out[0].ctx = l;
    return 1;
}

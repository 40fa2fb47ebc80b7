/*
 * api_cluster.c - the Cluster service's changes (MemberAdd, MemberRemove,
 * MemberUpdate, MemberPromote) and two Maintenance calls that act on this
 * member (MoveLeader, Defragment).
 *
 * Membership changes go through Raft (consensus/node, node_member_change)
 * and are answered once applied here, with the member list as it then is.
 * New member IDs are derived from the sorted peer URLs and the cluster
 * token, as for --initial-cluster (node.h says why).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/err.h"
#include "registry/server/api_int.h"

/* The answer of every membership change: header + members (+ member). */
static void answer_members(struct api_op *op, const struct node_member *added)
{
    struct node_member ms[NODE_MEMBERS_MAX];
    Etcdserverpb__Member pm[NODE_MEMBERS_MAX + 1];
    Etcdserverpb__Member *pp[NODE_MEMBERS_MAX];
    char *peer[NODE_MEMBERS_MAX + 1][16];
    char *client[NODE_MEMBERS_MAX][16];
    Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    size_t n = node_members(op->s->node, ms, NODE_MEMBERS_MAX);
    char addcopy[NODE_URLS_MAX];
    if (n > NODE_MEMBERS_MAX) {
        n = NODE_MEMBERS_MAX;
    }
    for (size_t i = 0; i < n; i++) {
        size_t np = 0;
        size_t nc = 0;
        char *save = NULL;
        etcdserverpb__member__init(&pm[i]);
        pm[i].id = ms[i].id;
        pm[i].name = ms[i].name;
        for (char *t = strtok_r(ms[i].peer_urls, ",", &save);
             t != NULL && np < 16; t = strtok_r(NULL, ",", &save)) {
            peer[i][np++] = t;
        }
        save = NULL;
        for (char *t = strtok_r(ms[i].client_urls, ",", &save);
             t != NULL && nc < 16; t = strtok_r(NULL, ",", &save)) {
            client[i][nc++] = t;
        }
        pm[i].n_peerurls = np;
        pm[i].peerurls = peer[i];
        pm[i].n_clienturls = nc;
        pm[i].clienturls = client[i];
        pm[i].islearner = ms[i].learner;
        pp[i] = &pm[i];
    }
    api__fill_header(op->s, &h, 0);
    if (op->m->resp_desc == &etcdserverpb__member_add_response__descriptor) {
        Etcdserverpb__MemberAddResponse r =
            ETCDSERVERPB__MEMBER_ADD_RESPONSE__INIT;
        Etcdserverpb__Member *am = &pm[NODE_MEMBERS_MAX];
        size_t np = 0;
        char *save = NULL;
        etcdserverpb__member__init(am);
        am->id = added->id;
        snprintf(addcopy, sizeof(addcopy), "%s", added->peer_urls);
        for (char *t = strtok_r(addcopy, ",", &save); t != NULL && np < 16;
             t = strtok_r(NULL, ",", &save)) {
            peer[NODE_MEMBERS_MAX][np++] = t;
        }
        am->n_peerurls = np;
        am->peerurls = peer[NODE_MEMBERS_MAX];
        am->islearner = added->learner;
        r.header = &h;
        r.member = am;
        r.n_members = n;
        r.members = pp;
        api__finish_msg(op, &r.base);
        return;
    }
    /* Remove, Update and Promote responses share the layout: header (1),
     * members (2). */
    Etcdserverpb__MemberRemoveResponse r =
        ETCDSERVERPB__MEMBER_REMOVE_RESPONSE__INIT;
    r.header = &h;
    r.n_members = n;
    r.members = pp;
    api__finish_msg(op, &r.base);
}

static int join_urls(char *const *urls, size_t n, char *out, size_t cap);

struct change {
    struct node_member m;
};

static void on_changed(void *ctx, const struct apply_result *res)
{
    struct api_op *op = ctx;
    op->async_refs--;
    if (res->err != 0) {
        api__finish(op, res->err, NULL, 0);
    } else if (!op->canceled) {
        struct node_member added;
        const Etcdserverpb__MemberAddRequest *r =
            (const Etcdserverpb__MemberAddRequest *)op->owned;
        memset(&added, 0, sizeof(added));
        if (op->m->req_desc == &etcdserverpb__member_add_request__descriptor) {
            added.id = op->aux;
            added.learner = r->islearner;
            /* as proposed: trimmed and sorted (checked before, so 0) */
            (void)join_urls(r->peerurls, r->n_peerurls, added.peer_urls,
                            sizeof(added.peer_urls));
        }
        answer_members(op, &added);
    } else {
        api__finish(op, ERR_CANCELED, NULL, 0);
    }
    api__op_maybe_free(op);
}

static int change(struct api_op *op, enum node_member_op kind,
                  const struct node_member *m)
{
    int rc;
    op->async_refs++;
    rc = node_member_change(op->s->node, kind, m, op->timeout_ms, on_changed,
                            op);
    if (rc != 0) {
        op->async_refs--;
    }
    return rc == ERR_BUSY ? ERR_TOO_MANY_REQUESTS : rc;
}

/* One peer URL as etcd's types.NewURLs takes it (spaces trimmed): http or
 * https (etcd also takes unix and unixs, which no member here can dial),
 * a host:port, no path. Copies the trimmed URL into out. */
static bool peer_url_ok(const char *in, char *out, size_t cap)
{
    size_t len;
    const char *host;
    const char *colon;
    while (*in == ' ' || *in == '\t') {
        in++;
    }
    len = strlen(in);
    while (len > 0 && (in[len - 1] == ' ' || in[len - 1] == '\t')) {
        len--;
    }
    if (len == 0 || len >= cap) {
        return false;
    }
    memcpy(out, in, len);
    out[len] = '\0';
    if (strncmp(out, "http://", 7) == 0) {
        host = out + 7;
    } else if (strncmp(out, "https://", 8) == 0) {
        host = out + 8;
    } else {
        return false;
    }
    if (*host == '[') { /* [v6]:port */
        const char *end = strchr(host, ']');
        if (end == NULL || end[1] != ':') {
            return false;
        }
        colon = end + 1;
    } else {
        colon = strchr(host, ':');
        if (colon == NULL || colon == host) {
            return false;
        }
    }
    /* the port: digits to the end (no path, query or second colon) */
    if (colon[1] == '\0' ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
        return false;
    }
    return strcspn(host, ",/?#@ ") == strlen(host);
}

static int url_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* The peer URLs of an add or update, checked and sorted as etcd does
 * ("given member URLs are invalid"), comma-joined into out. */
static int join_urls(char *const *urls, size_t n, char *out, size_t cap)
{
    enum { MAX = 16 };
    char one[MAX][NODE_URLS_MAX];
    size_t len = 0;
    out[0] = '\0';
    if (n == 0 || n > MAX) {
        return ERR_MEMBER_BAD_URLS;
    }
    for (size_t i = 0; i < n; i++) {
        if (!peer_url_ok(urls[i], one[i], sizeof(one[i]))) {
            return ERR_MEMBER_BAD_URLS;
        }
    }
    qsort(one, n, sizeof(one[0]), url_cmp);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(one[i]);
        if (len + l + 2 >= cap) {
            return ERR_MEMBER_BAD_URLS;
        }
        snprintf(out + len, cap - len, "%s%s", i > 0 ? "," : "", one[i]);
        len = strlen(out);
    }
    return 0;
}

int api__member_add(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__MemberAddRequest *r =
        (const Etcdserverpb__MemberAddRequest *)req;
    struct node_member m;
    memset(&m, 0, sizeof(m));
    int rc =
        join_urls(r->peerurls, r->n_peerurls, m.peer_urls, sizeof(m.peer_urls));
    if (rc != 0) {
        return rc;
    }
    /* The same derivation as --initial-cluster's (see node.h), so the new
     * member can compute its id from its own flags. */
    m.id = node_member_id_for(op->s->node, m.peer_urls);
    op->aux = m.id;
    return change(op, r->islearner ? NODE_MEMBER_ADD_LEARNER : NODE_MEMBER_ADD,
                  &m);
}

int api__member_remove(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__MemberRemoveRequest *r =
        (const Etcdserverpb__MemberRemoveRequest *)req;
    struct node_member m;
    memset(&m, 0, sizeof(m));
    m.id = r->id;
    return change(op, NODE_MEMBER_REMOVE, &m);
}

int api__member_update(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__MemberUpdateRequest *r =
        (const Etcdserverpb__MemberUpdateRequest *)req;
    struct node_member m;
    memset(&m, 0, sizeof(m));
    m.id = r->id;
    int rc =
        join_urls(r->peerurls, r->n_peerurls, m.peer_urls, sizeof(m.peer_urls));
    if (rc != 0) {
        return rc;
    }
    return change(op, NODE_MEMBER_UPDATE, &m);
}

int api__member_promote(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__MemberPromoteRequest *r =
        (const Etcdserverpb__MemberPromoteRequest *)req;
    struct node_member m;
    memset(&m, 0, sizeof(m));
    m.id = r->id;
    return change(op, NODE_MEMBER_PROMOTE, &m);
}

/* ----------------------------------------------- MoveLeader, Defragment */

static void on_header_only_done(void *ctx, int err)
{
    struct api_op *op = ctx;
    op->async_refs--;
    if (err != 0) {
        api__finish(op, err, NULL, 0);
    } else {
        /* MoveLeaderResponse and DefragmentResponse: just a header. */
        Etcdserverpb__MoveLeaderResponse r =
            ETCDSERVERPB__MOVE_LEADER_RESPONSE__INIT;
        Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
        api__fill_header(op->s, &h, kv_rev(node_kv(op->s->node)));
        r.header = &h;
        api__finish_msg(op, &r.base);
    }
    api__op_maybe_free(op);
}

int api__move_leader(struct api_op *op, const ProtobufCMessage *req)
{
    const Etcdserverpb__MoveLeaderRequest *r =
        (const Etcdserverpb__MoveLeaderRequest *)req;
    int rc;
    op->async_refs++;
    rc = node_transfer_leader(op->s->node, r->targetid, op->timeout_ms,
                              on_header_only_done, op);
    if (rc != 0) {
        op->async_refs--;
    }
    if (rc == ERR_INVALID) {
        rc = ERR_BAD_LEADER_TRANSFEREE;
    }
    return rc;
}

int api__defragment(struct api_op *op, const ProtobufCMessage *req)
{
    int rc;
    (void)req;
    op->async_refs++;
    rc = node_defrag(op->s->node, on_header_only_done, op);
    if (rc != 0) {
        op->async_refs--;
    }
    return rc;
}

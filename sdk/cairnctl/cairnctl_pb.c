/*
 * cairnctl_pb.c - -w protobuf, as etcdctl 3.4's printer_protobuf.go: the
 * response message marshalled to bytes and written as they are (a "%" in
 * them stays a "%": etcdctl 3.4.23 does not pass them through Printf), for
 * the commands where etcdctl has it.
 *
 * What etcdctl prints, and so what this prints:
 *   get, put, del     RangeResponse, PutResponse, DeleteRangeResponse
 *   txn               TxnResponse
 *   watch             per response a WatchResponse of the header and the
 *                     events only (no watch id, created, canceled)
 *   member list       MemberListResponse
 *   member add        MemberAddResponse
 *   member remove, update, promote
 *                     the Member{Remove,Update,Promote}Response, whose
 *                     fields (header 1, members 2) are MemberListResponse's
 *   lease grant, lease list, lease timetolive, lease keep-alive
 *                     the ResponseHeader alone: clientv3's response types
 *                     embed *pb.ResponseHeader, whose Marshal method Go
 *                     promotes, so that is what etcdctl marshals
 *   lease revoke      nothing: clientv3.LeaseRevokeResponse is a defined
 *                     type without methods, so etcdctl fails after the
 *                     revoke with "marshal unsupported for type ..." (4)
 *   alarm list, alarm disarm
 *                     AlarmResponse (etcd 3.4 sends no header in it)
 *   move-leader, auth and user/role writes
 *                     the response of the header alone (field 1)
 *   user get, user list, role list
 *                     the response of the header and names (field 2)
 *   role get          AuthRoleGetResponse
 *   compaction, defrag, snapshot save, auth enable/disable, version
 *                     their plain text: etcdctl prints those itself
 *   lock, elect       the RangeResponse of the key, as get
 *   endpoint health, status, hashkv
 *                     "Error: protobuf not supported as output format", 4
 * The rest of the commands refuse protobuf before their call (exit 4).
 *
 * The messages are libcairn's answers built again with the generated
 * protobuf-c types; proto3 leaves zero fields out and writes fields in
 * number order, as gogoproto does, so the bytes are the server's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/auth.pb-c.h"
#include "proto/kv.pb-c.h"
#include "proto/rpc.pb-c.h"
#include "sdk/cairnctl/cairnctl.h"

/* A header that is all zero is one the server left out (etcd 3.4's
 * Alarm and MoveLeader answers have none): no field, as etcdctl
 * marshals it. */
static bool pb_header_absent(const struct cairn_header *h)
{
    return h->cluster_id == 0 && h->member_id == 0 && h->revision == 0 &&
           h->raft_term == 0;
}

/* Allocations per printed message: a txn of TXN ops needs at most 7 per
 * op (response op, message, header, kvs, kv pointers, prev kv) plus 3. */
#define PB_ALLOCS_MAX (7 * 128 + 8)

static void pb_print(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n + 1);
    if (buf == NULL) {
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
        return;
    }
    size_t w = protobuf_c_message_pack(m, buf);
    fwrite(buf, 1, w, stdout);
    free(buf);
    fflush(stdout);
}

static void pb_header(Etcdserverpb__ResponseHeader *h,
                      const struct cairn_header *src)
{
    etcdserverpb__response_header__init(h);
    h->cluster_id = src->cluster_id;
    h->member_id = src->member_id;
    h->revision = src->revision;
    h->raft_term = src->raft_term;
}

static void pb_kv(Mvccpb__KeyValue *kv, const struct cairn_kv *src)
{
    mvccpb__key_value__init(kv);
    kv->key.data = (uint8_t *)src->key;
    kv->key.len = src->key_len;
    kv->value.data = (uint8_t *)src->value;
    kv->value.len = src->value_len;
    kv->create_revision = src->create_revision;
    kv->mod_revision = src->mod_revision;
    kv->version = src->version;
    kv->lease = src->lease;
}

/* The allocations of one message tree, freed together. */
struct pb_arena {
    void *p[PB_ALLOCS_MAX];
    size_t n;
    bool failed;
};

static void *pb_alloc(struct pb_arena *a, size_t n, size_t size)
{
    void *p = a->n < PB_ALLOCS_MAX ? calloc(n + 1, size) : NULL;
    if (p == NULL) {
        a->failed = true;
        return NULL;
    }
    a->p[a->n++] = p;
    return p;
}

static void pb_arena_free(struct pb_arena *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->p[i]);
    }
    a->n = 0;
}

/* A repeated KeyValue field from src; NULL (a->failed) when out of
 * memory. */
static Mvccpb__KeyValue **pb_kvs(struct pb_arena *a, const struct cairn_kv *src,
                                 size_t n)
{
    Mvccpb__KeyValue *kvs = pb_alloc(a, n, sizeof(*kvs));
    Mvccpb__KeyValue **ptrs = pb_alloc(a, n, sizeof(*ptrs));
    for (size_t i = 0; kvs != NULL && ptrs != NULL && i < n; i++) {
        pb_kv(&kvs[i], &src[i]);
        ptrs[i] = &kvs[i];
    }
    return kvs != NULL ? ptrs : NULL;
}

static Etcdserverpb__ResponseHeader *pb_hdr(struct pb_arena *a,
                                            const struct cairn_header *src)
{
    Etcdserverpb__ResponseHeader *h = pb_alloc(a, 1, sizeof(*h));
    if (h != NULL) {
        pb_header(h, src);
    }
    return h;
}

static Etcdserverpb__RangeResponse *pb_range(struct pb_arena *a,
                                             const struct cairn_range_resp *r)
{
    Etcdserverpb__RangeResponse *m = pb_alloc(a, 1, sizeof(*m));
    if (m != NULL) {
        etcdserverpb__range_response__init(m);
        m->header = pb_hdr(a, &r->header);
        m->n_kvs = r->kvs_count;
        m->kvs = pb_kvs(a, r->kvs, r->kvs_count);
        m->more = r->more;
        m->count = r->count;
    }
    return m;
}

static Etcdserverpb__PutResponse *pb_put(struct pb_arena *a,
                                         const struct cairn_put_resp *r)
{
    Etcdserverpb__PutResponse *m = pb_alloc(a, 1, sizeof(*m));
    if (m != NULL) {
        etcdserverpb__put_response__init(m);
        m->header = pb_hdr(a, &r->header);
        if (r->prev_kv != NULL) {
            m->prev_kv = pb_alloc(a, 1, sizeof(*m->prev_kv));
            if (m->prev_kv != NULL) {
                pb_kv(m->prev_kv, r->prev_kv);
            }
        }
    }
    return m;
}

static Etcdserverpb__DeleteRangeResponse *
pb_delete(struct pb_arena *a, const struct cairn_delete_resp *r)
{
    Etcdserverpb__DeleteRangeResponse *m = pb_alloc(a, 1, sizeof(*m));
    if (m != NULL) {
        etcdserverpb__delete_range_response__init(m);
        m->header = pb_hdr(a, &r->header);
        m->deleted = r->deleted;
        m->n_prev_kvs = r->prev_kvs_count;
        m->prev_kvs = pb_kvs(a, r->prev_kvs, r->prev_kvs_count);
    }
    return m;
}

/* Prints m unless building it ran out of memory; frees the arena. */
static void pb_finish(struct pb_arena *a, const ProtobufCMessage *m)
{
    if (a->failed || m == NULL) {
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
    } else {
        pb_print(m);
    }
    pb_arena_free(a);
}

void pb_print_header(const struct cairn_header *h)
{
    Etcdserverpb__ResponseHeader m;
    pb_header(&m, h);
    pb_print(&m.base);
}

void pb_print_range(const struct cairn_range_resp *r)
{
    static struct pb_arena a;
    Etcdserverpb__RangeResponse *m = pb_range(&a, r);
    pb_finish(&a, m != NULL ? &m->base : NULL);
}

void pb_print_put(const struct cairn_put_resp *r)
{
    static struct pb_arena a;
    Etcdserverpb__PutResponse *m = pb_put(&a, r);
    pb_finish(&a, m != NULL ? &m->base : NULL);
}

void pb_print_delete(const struct cairn_delete_resp *r)
{
    static struct pb_arena a;
    Etcdserverpb__DeleteRangeResponse *m = pb_delete(&a, r);
    pb_finish(&a, m != NULL ? &m->base : NULL);
}

/* A TxnResponse: each op's response carries its own header, as the
 * server sent it (etcd fills one in every inner response). */
void pb_print_txn(const struct cairn_txn_resp *r)
{
    static struct pb_arena a;
    Etcdserverpb__TxnResponse m = ETCDSERVERPB__TXN_RESPONSE__INIT;
    size_t n = r->responses_count;
    Etcdserverpb__ResponseOp *ops = pb_alloc(&a, n, sizeof(*ops));
    Etcdserverpb__ResponseOp **ptrs = pb_alloc(&a, n, sizeof(*ptrs));
    for (size_t i = 0; ops != NULL && ptrs != NULL && i < n; i++) {
        const struct cairn_op_resp *o = &r->responses[i];
        etcdserverpb__response_op__init(&ops[i]);
        if (o->type == CAIRN_OP_RANGE) {
            ops[i].response_case =
                ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
            ops[i].response_range = pb_range(&a, &o->range);
        } else if (o->type == CAIRN_OP_PUT) {
            ops[i].response_case =
                ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
            ops[i].response_put = pb_put(&a, &o->put);
        } else {
            ops[i].response_case =
                ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
            ops[i].response_delete_range = pb_delete(&a, &o->del);
        }
        ptrs[i] = &ops[i];
    }
    m.header = pb_hdr(&a, &r->header);
    m.succeeded = r->succeeded;
    m.n_responses = n;
    m.responses = ptrs;
    pb_finish(&a, &m.base);
}

void pb_print_watch(const struct cairn_watch_resp *r)
{
    Etcdserverpb__WatchResponse m = ETCDSERVERPB__WATCH_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h;
    size_t n = r->events_count;
    Mvccpb__Event *evs = calloc(n + 1, sizeof(*evs));
    Mvccpb__Event **ptrs = calloc(n + 1, sizeof(*ptrs));
    Mvccpb__KeyValue *kvs = calloc(2 * n + 1, sizeof(*kvs));
    if (evs == NULL || ptrs == NULL || kvs == NULL) {
        free(evs);
        free(ptrs);
        free(kvs);
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const struct cairn_event *e = &r->events[i];
        mvccpb__event__init(&evs[i]);
        evs[i].type = e->type == CAIRN_EVENT_PUT
                          ? MVCCPB__EVENT__EVENT_TYPE__PUT
                          : MVCCPB__EVENT__EVENT_TYPE__DELETE;
        pb_kv(&kvs[2 * i], &e->kv);
        evs[i].kv = &kvs[2 * i];
        if (e->prev_kv != NULL) {
            pb_kv(&kvs[2 * i + 1], e->prev_kv);
            evs[i].prev_kv = &kvs[2 * i + 1];
        }
        ptrs[i] = &evs[i];
    }
    pb_header(&h, &r->header);
    m.header = &h;
    m.n_events = n;
    m.events = ptrs;
    pb_print(&m.base);
    free(evs);
    free(ptrs);
    free(kvs);
}

void pb_print_members(const struct cairn_header *hdr,
                      const struct cairn_member *ms, size_t n)
{
    Etcdserverpb__MemberListResponse m =
        ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h;
    Etcdserverpb__Member *mem = calloc(n + 1, sizeof(*mem));
    Etcdserverpb__Member **ptrs = calloc(n + 1, sizeof(*ptrs));
    if (mem == NULL || ptrs == NULL) {
        free(mem);
        free(ptrs);
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        etcdserverpb__member__init(&mem[i]);
        mem[i].id = ms[i].id;
        mem[i].name = (char *)ms[i].name;
        mem[i].n_peerurls = ms[i].peer_urls_count;
        mem[i].peerurls = (char **)ms[i].peer_urls;
        mem[i].n_clienturls = ms[i].client_urls_count;
        mem[i].clienturls = (char **)ms[i].client_urls;
        mem[i].islearner = ms[i].is_learner;
        ptrs[i] = &mem[i];
    }
    pb_header(&h, hdr);
    m.header = &h;
    m.n_members = n;
    m.members = ptrs;
    pb_print(&m.base);
    free(mem);
    free(ptrs);
}

/* A response of the header alone (field 1): AuthUserAddResponse and the
 * other auth writes, MoveLeaderResponse. */
void pb_print_header_msg(const struct cairn_header *hdr)
{
    Etcdserverpb__AuthUserAddResponse m =
        ETCDSERVERPB__AUTH_USER_ADD_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h;
    pb_header(&h, hdr);
    m.header = pb_header_absent(hdr) ? NULL : &h;
    pb_print(&m.base);
}

/* AuthUserGetResponse (roles), AuthUserListResponse (users) and
 * AuthRoleListResponse (roles): the header and strings in field 2. */
void pb_print_names(const struct cairn_names_resp *r)
{
    Etcdserverpb__AuthUserListResponse m =
        ETCDSERVERPB__AUTH_USER_LIST_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h;
    pb_header(&h, &r->header);
    m.header = pb_header_absent(&r->header) ? NULL : &h;
    m.n_users = r->names_count;
    m.users = (char **)r->names;
    pb_print(&m.base);
}

void pb_print_role(const struct cairn_role_resp *r)
{
    static struct pb_arena a;
    Etcdserverpb__AuthRoleGetResponse m =
        ETCDSERVERPB__AUTH_ROLE_GET_RESPONSE__INIT;
    size_t n = r->perms_count;
    Authpb__Permission *ps = pb_alloc(&a, n, sizeof(*ps));
    Authpb__Permission **ptrs = pb_alloc(&a, n, sizeof(*ptrs));
    for (size_t i = 0; ps != NULL && ptrs != NULL && i < n; i++) {
        const struct cairn_permission *p = &r->perms[i];
        authpb__permission__init(&ps[i]);
        ps[i].permtype = (Authpb__Permission__Type)p->type;
        ps[i].key.data = (uint8_t *)p->key;
        ps[i].key.len = p->key_len;
        ps[i].range_end.data = (uint8_t *)p->range_end;
        ps[i].range_end.len = p->range_end_len;
        ptrs[i] = &ps[i];
    }
    m.header = pb_header_absent(&r->header) ? NULL : pb_hdr(&a, &r->header);
    m.n_perm = n;
    m.perm = ptrs;
    pb_finish(&a, &m.base);
}

void pb_print_alarms(const struct cairn_alarm_resp *r)
{
    static struct pb_arena a;
    Etcdserverpb__AlarmResponse m = ETCDSERVERPB__ALARM_RESPONSE__INIT;
    size_t n = r->alarms_count;
    Etcdserverpb__AlarmMember *am = pb_alloc(&a, n, sizeof(*am));
    Etcdserverpb__AlarmMember **ptrs = pb_alloc(&a, n, sizeof(*ptrs));
    for (size_t i = 0; am != NULL && ptrs != NULL && i < n; i++) {
        etcdserverpb__alarm_member__init(&am[i]);
        am[i].memberid = r->alarms[i].member_id;
        am[i].alarm = (Etcdserverpb__AlarmType)r->alarms[i].alarm;
        ptrs[i] = &am[i];
    }
    m.header = pb_header_absent(&r->header) ? NULL : pb_hdr(&a, &r->header);
    m.n_alarms = n;
    m.alarms = ptrs;
    pb_finish(&a, &m.base);
}

static void pb_member(Etcdserverpb__Member *m, const struct cairn_member *src)
{
    etcdserverpb__member__init(m);
    m->id = src->id;
    m->name = (char *)src->name;
    m->n_peerurls = src->peer_urls_count;
    m->peerurls = (char **)src->peer_urls;
    m->n_clienturls = src->client_urls_count;
    m->clienturls = (char **)src->client_urls;
    m->islearner = src->is_learner;
}

void pb_print_member_add(const struct cairn_member_add_resp *r)
{
    static struct pb_arena a;
    Etcdserverpb__MemberAddResponse m = ETCDSERVERPB__MEMBER_ADD_RESPONSE__INIT;
    size_t n = r->members_count;
    Etcdserverpb__Member *mem = pb_alloc(&a, n + 1, sizeof(*mem));
    Etcdserverpb__Member **ptrs = pb_alloc(&a, n, sizeof(*ptrs));
    for (size_t i = 0; mem != NULL && ptrs != NULL && i < n; i++) {
        pb_member(&mem[i], &r->members[i]);
        ptrs[i] = &mem[i];
    }
    if (mem != NULL) {
        pb_member(&mem[n], &r->member);
        m.member = &mem[n];
    }
    m.header = pb_hdr(&a, &r->header);
    m.n_members = n;
    m.members = ptrs;
    pb_finish(&a, &m.base);
}

/* etcdctl's error for lease revoke: Go's %v of the response struct, its
 * header pointer printed with the header's String(), proto's compact
 * text ("name:value " per set field). */
int pb_revoke_refusal(const struct cairn_header *h)
{
    char t[256] = "<nil>";
    if (!pb_header_absent(h)) {
        size_t o = 0;
        t[0] = 0;
        if (h->cluster_id != 0) {
            o += (size_t)snprintf(t + o, sizeof(t) - o,
                                  "cluster_id:%" PRIu64 " ", h->cluster_id);
        }
        if (h->member_id != 0) {
            o += (size_t)snprintf(t + o, sizeof(t) - o,
                                  "member_id:%" PRIu64 " ", h->member_id);
        }
        if (h->revision != 0) {
            o += (size_t)snprintf(t + o, sizeof(t) - o, "revision:%" PRId64 " ",
                                  h->revision);
        }
        if (h->raft_term != 0) {
            snprintf(t + o, sizeof(t) - o, "raft_term:%" PRIu64 " ",
                     h->raft_term);
        }
    }
    return ctl_fail(CTL_EXIT_BAD_FEATURE,
                    "marshal unsupported for type "
                    "clientv3.LeaseRevokeResponse ({%s})",
                    t);
}

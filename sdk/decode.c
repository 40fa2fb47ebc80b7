/*
 * decode.c - server answers to libcairn's public result structs.
 *
 * A response is unpacked once by protobuf-c; the public struct then points
 * into the unpacked message (keys and values are not copied) and keeps it
 * in priv_ until the _free call. Every pointer protobuf-c may leave NULL
 * (an absent header, an event without its kv, a ResponseOp with no case)
 * is checked here, and an answer that lacks a part the API promises is
 * CAIRN_E_BAD_RESPONSE, never a crash: the server is not trusted.
 */
#include <string.h>

#include "base/alloc.h"
#include "sdk/client_int.h"

void cairn__header_from_pb(const Etcdserverpb__ResponseHeader *h,
                           struct cairn_header *out)
{
    memset(out, 0, sizeof(*out));
    if (h != NULL) {
        out->cluster_id = h->cluster_id;
        out->member_id = h->member_id;
        out->revision = h->revision;
        out->raft_term = h->raft_term;
    }
}

int cairn__kv_from_pb(const Mvccpb__KeyValue *m, struct cairn_kv *out)
{
    if (m == NULL) {
        return CAIRN_E_BAD_RESPONSE;
    }
    out->key = m->key.data;
    out->key_len = m->key.len;
    out->value = m->value.data;
    out->value_len = m->value.len;
    out->create_revision = m->create_revision;
    out->mod_revision = m->mod_revision;
    out->version = m->version;
    out->lease = m->lease;
    return 0;
}

/* An array of n kvs (NULL when n is 0); CAIRN_E_NOMEM/BAD_RESPONSE. */
static int kvs_from_pb(Mvccpb__KeyValue **src, size_t n, struct cairn_kv **out)
{
    *out = NULL;
    if (n == 0) {
        return 0;
    }
    if (src == NULL) {
        return CAIRN_E_BAD_RESPONSE;
    }
    struct cairn_kv *kvs = mem_calloc(n, sizeof(*kvs));
    if (kvs == NULL) {
        return CAIRN_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (cairn__kv_from_pb(src[i], &kvs[i]) != 0) {
            mem_free(kvs);
            return CAIRN_E_BAD_RESPONSE;
        }
    }
    *out = kvs;
    return 0;
}

/* The fill functions leave the message's ownership to the caller; every
 * cairn__*_from_pb takes it, success or not (freed on failure). */
static int range_fill(const Etcdserverpb__RangeResponse *m,
                      struct cairn_range_resp *out)
{
    memset(out, 0, sizeof(*out));
    cairn__header_from_pb(m->header, &out->header);
    out->more = m->more;
    out->count = m->count;
    int rc = kvs_from_pb(m->kvs, m->n_kvs, &out->kvs);
    if (rc == 0) {
        out->kvs_count = m->n_kvs;
    }
    return rc;
}

static int put_fill(const Etcdserverpb__PutResponse *m,
                    struct cairn_put_resp *out)
{
    memset(out, 0, sizeof(*out));
    cairn__header_from_pb(m->header, &out->header);
    if (m->prev_kv != NULL) {
        out->prev_kv = mem_calloc(1, sizeof(*out->prev_kv));
        if (out->prev_kv == NULL) {
            return CAIRN_E_NOMEM;
        }
        cairn__kv_from_pb(m->prev_kv, out->prev_kv);
    }
    return 0;
}

static int delete_fill(const Etcdserverpb__DeleteRangeResponse *m,
                       struct cairn_delete_resp *out)
{
    memset(out, 0, sizeof(*out));
    cairn__header_from_pb(m->header, &out->header);
    out->deleted = m->deleted;
    int rc = kvs_from_pb(m->prev_kvs, m->n_prev_kvs, &out->prev_kvs);
    if (rc == 0) {
        out->prev_kvs_count = m->n_prev_kvs;
    }
    return rc;
}

int cairn__range_from_pb(Etcdserverpb__RangeResponse *m,
                         struct cairn_range_resp *out)
{
    int rc = range_fill(m, out);
    if (rc != 0) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->priv_ = m;
    return 0;
}

CAIRN_EXPORT void cairn_range_resp_free(struct cairn_range_resp *r)
{
    if (r == NULL) {
        return;
    }
    mem_free(r->kvs);
    if (r->priv_ != NULL) {
        protobuf_c_message_free_unpacked(r->priv_, NULL);
    }
    memset(r, 0, sizeof(*r));
}

CAIRN_EXPORT void cairn_put_resp_free(struct cairn_put_resp *r)
{
    if (r == NULL) {
        return;
    }
    mem_free(r->prev_kv);
    if (r->priv_ != NULL) {
        protobuf_c_message_free_unpacked(r->priv_, NULL);
    }
    memset(r, 0, sizeof(*r));
}

CAIRN_EXPORT void cairn_delete_resp_free(struct cairn_delete_resp *r)
{
    if (r == NULL) {
        return;
    }
    mem_free(r->prev_kvs);
    if (r->priv_ != NULL) {
        protobuf_c_message_free_unpacked(r->priv_, NULL);
    }
    memset(r, 0, sizeof(*r));
}

int cairn__put_from_pb(Etcdserverpb__PutResponse *m, struct cairn_put_resp *out)
{
    int rc = put_fill(m, out);
    if (rc != 0) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->priv_ = m;
    return 0;
}

int cairn__delete_from_pb(Etcdserverpb__DeleteRangeResponse *m,
                          struct cairn_delete_resp *out)
{
    int rc = delete_fill(m, out);
    if (rc != 0) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->priv_ = m;
    return 0;
}

/* ---------------------------------------------------------------- txn */

static void op_resps_free(struct cairn_op_resp *rs, size_t n)
{
    for (size_t i = 0; rs != NULL && i < n; i++) {
        mem_free(rs[i].range.kvs);
        mem_free(rs[i].put.prev_kv);
        mem_free(rs[i].del.prev_kvs);
    }
    mem_free(rs);
}

static int op_resp_fill(const Etcdserverpb__ResponseOp *op,
                        struct cairn_op_resp *out)
{
    if (op == NULL) {
        return CAIRN_E_BAD_RESPONSE;
    }
    switch (op->response_case) {
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
        out->type = CAIRN_OP_RANGE;
        return op->response_range == NULL
                   ? CAIRN_E_BAD_RESPONSE
                   : range_fill(op->response_range, &out->range);
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
        out->type = CAIRN_OP_PUT;
        return op->response_put == NULL ? CAIRN_E_BAD_RESPONSE
                                        : put_fill(op->response_put, &out->put);
    case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
        out->type = CAIRN_OP_DELETE;
        return op->response_delete_range == NULL
                   ? CAIRN_E_BAD_RESPONSE
                   : delete_fill(op->response_delete_range, &out->del);
    default: /* nested txns are not asked for by this client */
        return CAIRN_E_BAD_RESPONSE;
    }
}

int cairn__txn_from_pb(Etcdserverpb__TxnResponse *m, struct cairn_txn_resp *out)
{
    memset(out, 0, sizeof(*out));
    cairn__header_from_pb(m->header, &out->header);
    out->succeeded = m->succeeded;
    int rc = 0;
    if (m->n_responses > 0) {
        out->responses = mem_calloc(m->n_responses, sizeof(*out->responses));
        rc = out->responses == NULL ? CAIRN_E_NOMEM : 0;
        for (size_t i = 0; rc == 0 && i < m->n_responses; i++) {
            rc = op_resp_fill(m->responses[i], &out->responses[i]);
        }
    }
    if (rc != 0) {
        op_resps_free(out->responses, m->n_responses);
        protobuf_c_message_free_unpacked(&m->base, NULL);
        memset(out, 0, sizeof(*out));
        return rc;
    }
    out->responses_count = m->n_responses;
    out->priv_ = m;
    return 0;
}

CAIRN_EXPORT void cairn_txn_resp_free(struct cairn_txn_resp *r)
{
    if (r == NULL) {
        return;
    }
    op_resps_free(r->responses, r->responses_count);
    if (r->priv_ != NULL) {
        protobuf_c_message_free_unpacked(r->priv_, NULL);
    }
    memset(r, 0, sizeof(*r));
}

/* -------------------------------------------------------------- watch */

int cairn__watch_from_pb(Etcdserverpb__WatchResponse *m,
                         struct cairn_watch_resp *out)
{
    memset(out, 0, sizeof(*out));
    cairn__header_from_pb(m->header, &out->header);
    size_t n = m->n_events;
    struct cairn_kv *prevs = NULL;
    if (n > 0) {
        /* One block: the events, then the prev kvs they point to. */
        out->events = mem_calloc(n, sizeof(*out->events) + sizeof(*prevs));
        if (out->events == NULL) {
            protobuf_c_message_free_unpacked(&m->base, NULL);
            return CAIRN_E_NOMEM;
        }
        prevs = (struct cairn_kv *)(out->events + n);
    }
    for (size_t i = 0; i < n; i++) {
        const Mvccpb__Event *e = m->events[i];
        if (e == NULL || e->kv == NULL ||
            (e->type != MVCCPB__EVENT__EVENT_TYPE__PUT &&
             e->type != MVCCPB__EVENT__EVENT_TYPE__DELETE)) {
            mem_free(out->events);
            memset(out, 0, sizeof(*out));
            protobuf_c_message_free_unpacked(&m->base, NULL);
            return CAIRN_E_BAD_RESPONSE;
        }
        out->events[i].type = e->type == MVCCPB__EVENT__EVENT_TYPE__PUT
                                  ? CAIRN_EVENT_PUT
                                  : CAIRN_EVENT_DELETE;
        cairn__kv_from_pb(e->kv, &out->events[i].kv);
        if (e->prev_kv != NULL) {
            cairn__kv_from_pb(e->prev_kv, &prevs[i]);
            out->events[i].prev_kv = &prevs[i];
        }
    }
    out->events_count = n;
    out->priv_ = m;
    return 0;
}

CAIRN_EXPORT void cairn_watch_resp_free(struct cairn_watch_resp *r)
{
    if (r == NULL) {
        return;
    }
    mem_free(r->events);
    if (r->priv_ != NULL) {
        protobuf_c_message_free_unpacked(r->priv_, NULL);
    }
    memset(r, 0, sizeof(*r));
}

/* ----------------------------------------------------- cluster, status */

int cairn__members_from_pb(Etcdserverpb__MemberListResponse *m,
                           struct cairn_member_list_resp *out)
{
    memset(out, 0, sizeof(*out));
    cairn__header_from_pb(m->header, &out->header);
    size_t n = m->n_members;
    if (n > 0) {
        out->members = mem_calloc(n, sizeof(*out->members));
        if (out->members == NULL) {
            protobuf_c_message_free_unpacked(&m->base, NULL);
            return CAIRN_E_NOMEM;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const Etcdserverpb__Member *mb = m->members[i];
        if (mb == NULL) {
            mem_free(out->members);
            memset(out, 0, sizeof(*out));
            protobuf_c_message_free_unpacked(&m->base, NULL);
            return CAIRN_E_BAD_RESPONSE;
        }
        struct cairn_member *o = &out->members[i];
        o->id = mb->id;
        o->name = mb->name != NULL ? mb->name : "";
        o->peer_urls = (const char *const *)mb->peerurls;
        o->peer_urls_count = mb->n_peerurls;
        o->client_urls = (const char *const *)mb->clienturls;
        o->client_urls_count = mb->n_clienturls;
        o->is_learner = mb->islearner;
    }
    out->members_count = n;
    out->priv_ = m;
    return 0;
}

CAIRN_EXPORT void cairn_member_list_resp_free(struct cairn_member_list_resp *r)
{
    if (r == NULL) {
        return;
    }
    mem_free(r->members);
    if (r->priv_ != NULL) {
        protobuf_c_message_free_unpacked(r->priv_, NULL);
    }
    memset(r, 0, sizeof(*r));
}

int cairn__status_from_pb(Etcdserverpb__StatusResponse *m,
                          struct cairn_status_resp *out)
{
    memset(out, 0, sizeof(*out));
    cairn__header_from_pb(m->header, &out->header);
    if (m->version != NULL) {
        size_t n = strlen(m->version);
        n = n < sizeof(out->version) - 1 ? n : sizeof(out->version) - 1;
        memcpy(out->version, m->version, n);
    }
    out->db_size = m->dbsize;
    out->db_size_in_use = m->dbsizeinuse;
    out->leader = m->leader;
    out->raft_index = m->raftindex;
    out->raft_term = m->raftterm;
    out->raft_applied_index = m->raftappliedindex;
    out->is_learner = m->islearner;
    out->errors = (const char *const *)m->errors;
    out->errors_count = m->n_errors;
    out->priv_ = m;
    return 0;
}

CAIRN_EXPORT void cairn_status_resp_free(struct cairn_status_resp *r)
{
    if (r == NULL) {
        return;
    }
    if (r->priv_ != NULL) {
        protobuf_c_message_free_unpacked(r->priv_, NULL);
    }
    memset(r, 0, sizeof(*r));
}

/* ------------------------------------------- decoders (bytes -> struct) */

#define DECODE(fn, type, desc, from)                                           \
    int fn(const uint8_t *p, size_t len, type *out)                            \
    {                                                                          \
        memset(out, 0, sizeof(*out));                                          \
        ProtobufCMessage *m = protobuf_c_message_unpack(&desc, NULL, len, p);  \
        if (m == NULL) {                                                       \
            return CAIRN_E_BAD_RESPONSE;                                       \
        }                                                                      \
        return from((void *)m, out); /* takes m, even when it fails */         \
    }

DECODE(cairn__range_resp_decode, struct cairn_range_resp,
       etcdserverpb__range_response__descriptor, cairn__range_from_pb)
DECODE(cairn__txn_resp_decode, struct cairn_txn_resp,
       etcdserverpb__txn_response__descriptor, cairn__txn_from_pb)
DECODE(cairn__watch_resp_decode, struct cairn_watch_resp,
       etcdserverpb__watch_response__descriptor, cairn__watch_from_pb)
DECODE(cairn__status_resp_decode, struct cairn_status_resp,
       etcdserverpb__status_response__descriptor, cairn__status_from_pb)
DECODE(cairn__member_list_resp_decode, struct cairn_member_list_resp,
       etcdserverpb__member_list_response__descriptor, cairn__members_from_pb)

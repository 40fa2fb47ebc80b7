/*
 * lock.c - libcairn's lock and election calls: etcd's v3lockpb.Lock and
 * v3electionpb.Election services (served by etcd 3.4+ and cairnd). The
 * caller holds the session: a lease it keeps alive while it holds a lock
 * or leadership (cairn_lease_keepalive_once from another client or
 * thread: a call on one client waits for the one before it).
 */
#include <string.h>

#include "base/alloc.h"
#include "proto/v3election.pb-c.h"
#include "proto/v3lock.pb-c.h"
#include "sdk/client_int.h"

static int call(struct cairn_client *c, const char *path,
                const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *desc, int64_t deadline_ms,
                ProtobufCMessage **resp)
{
    pthread_mutex_lock(&c->mu);
    int rc = cairn__unary(c, path, req, desc, false,
                          cairn__deadline(c, deadline_ms), resp);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static uint8_t *dup_bytes(const ProtobufCBinaryData *b, size_t *len)
{
    uint8_t *p = mem_alloc(b->len + 1);
    if (p != NULL) {
        if (b->len > 0) {
            memcpy(p, b->data, b->len);
        }
        p[b->len] = 0;
        *len = b->len;
    }
    return p;
}

CAIRN_EXPORT int cairn_lock(struct cairn_client *c, const char *name,
                            int64_t lease, int64_t deadline_ms,
                            struct cairn_lock_resp *out)
{
    if (c == NULL || out == NULL || name == NULL || name[0] == 0) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    V3lockpb__LockRequest m = V3LOCKPB__LOCK_REQUEST__INIT;
    m.name.data = (uint8_t *)name;
    m.name.len = strlen(name);
    m.lease = lease;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/v3lockpb.Lock/Lock", &m.base,
                  &v3lockpb__lock_response__descriptor, deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    V3lockpb__LockResponse *r = (void *)resp;
    cairn__header_from_pb(r->header, &out->header);
    out->key = dup_bytes(&r->key, &out->key_len);
    protobuf_c_message_free_unpacked(resp, NULL);
    return out->key != NULL ? 0 : CAIRN_E_NOMEM;
}

CAIRN_EXPORT void cairn_lock_resp_free(struct cairn_lock_resp *r)
{
    if (r != NULL) {
        mem_free(r->key);
        memset(r, 0, sizeof(*r));
    }
}

CAIRN_EXPORT int cairn_unlock(struct cairn_client *c, const uint8_t *key,
                              size_t key_len, int64_t deadline_ms,
                              struct cairn_header *hdr)
{
    if (c == NULL || key == NULL || key_len == 0) {
        return CAIRN_E_INVALID;
    }
    V3lockpb__UnlockRequest m = V3LOCKPB__UNLOCK_REQUEST__INIT;
    m.key.data = (uint8_t *)key;
    m.key.len = key_len;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/v3lockpb.Lock/Unlock", &m.base,
                  &v3lockpb__unlock_response__descriptor, deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    if (hdr != NULL) {
        cairn__header_from_pb(((V3lockpb__UnlockResponse *)resp)->header, hdr);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

/* ------------------------------------------------------------ election */

static void leader_to_pb(const struct cairn_leader_key *k,
                         V3electionpb__LeaderKey *pb)
{
    pb->name.data = k->name;
    pb->name.len = k->name_len;
    pb->key.data = k->key;
    pb->key.len = k->key_len;
    pb->rev = k->rev;
    pb->lease = k->lease;
}

CAIRN_EXPORT int cairn_campaign(struct cairn_client *c, const char *name,
                                int64_t lease, const uint8_t *value,
                                size_t value_len, int64_t deadline_ms,
                                struct cairn_leader_key *out)
{
    if (c == NULL || out == NULL || name == NULL || name[0] == 0 ||
        (value == NULL && value_len > 0)) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    V3electionpb__CampaignRequest m = V3ELECTIONPB__CAMPAIGN_REQUEST__INIT;
    m.name.data = (uint8_t *)name;
    m.name.len = strlen(name);
    m.lease = lease;
    m.value.data = (uint8_t *)value;
    m.value.len = value_len;
    ProtobufCMessage *resp = NULL;
    int rc =
        call(c, "/v3electionpb.Election/Campaign", &m.base,
             &v3electionpb__campaign_response__descriptor, deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    V3electionpb__CampaignResponse *r = (void *)resp;
    if (r->leader == NULL) {
        protobuf_c_message_free_unpacked(resp, NULL);
        return cairn__fail(c, CAIRN_E_BAD_RESPONSE, 0,
                           "Campaign answered without the leader key");
    }
    cairn__header_from_pb(r->header, &out->header);
    out->name = dup_bytes(&r->leader->name, &out->name_len);
    out->key = dup_bytes(&r->leader->key, &out->key_len);
    out->rev = r->leader->rev;
    out->lease = r->leader->lease;
    protobuf_c_message_free_unpacked(resp, NULL);
    if (out->name == NULL || out->key == NULL) {
        cairn_leader_key_free(out);
        return CAIRN_E_NOMEM;
    }
    return 0;
}

CAIRN_EXPORT void cairn_leader_key_free(struct cairn_leader_key *k)
{
    if (k != NULL) {
        mem_free(k->name);
        mem_free(k->key);
        memset(k, 0, sizeof(*k));
    }
}

CAIRN_EXPORT int cairn_proclaim(struct cairn_client *c,
                                const struct cairn_leader_key *k,
                                const uint8_t *value, size_t value_len,
                                int64_t deadline_ms, struct cairn_header *hdr)
{
    if (c == NULL || k == NULL || (value == NULL && value_len > 0)) {
        return CAIRN_E_INVALID;
    }
    V3electionpb__ProclaimRequest m = V3ELECTIONPB__PROCLAIM_REQUEST__INIT;
    V3electionpb__LeaderKey lk = V3ELECTIONPB__LEADER_KEY__INIT;
    leader_to_pb(k, &lk);
    m.leader = &lk;
    m.value.data = (uint8_t *)value;
    m.value.len = value_len;
    ProtobufCMessage *resp = NULL;
    int rc =
        call(c, "/v3electionpb.Election/Proclaim", &m.base,
             &v3electionpb__proclaim_response__descriptor, deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    if (hdr != NULL) {
        cairn__header_from_pb(((V3electionpb__ProclaimResponse *)resp)->header,
                              hdr);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

CAIRN_EXPORT int cairn_resign(struct cairn_client *c,
                              const struct cairn_leader_key *k,
                              int64_t deadline_ms, struct cairn_header *hdr)
{
    if (c == NULL || k == NULL) {
        return CAIRN_E_INVALID;
    }
    V3electionpb__ResignRequest m = V3ELECTIONPB__RESIGN_REQUEST__INIT;
    V3electionpb__LeaderKey lk = V3ELECTIONPB__LEADER_KEY__INIT;
    leader_to_pb(k, &lk);
    m.leader = &lk;
    ProtobufCMessage *resp = NULL;
    int rc =
        call(c, "/v3electionpb.Election/Resign", &m.base,
             &v3electionpb__resign_response__descriptor, deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    if (hdr != NULL) {
        cairn__header_from_pb(((V3electionpb__ResignResponse *)resp)->header,
                              hdr);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

/* A LeaderResponse as a one-key range answer (owns the message). */
static int leader_to_range(V3electionpb__LeaderResponse *r,
                           struct cairn_range_resp *out)
{
    memset(out, 0, sizeof(*out));
    cairn__header_from_pb(r->header, &out->header);
    if (r->kv != NULL) {
        out->kvs = mem_calloc(1, sizeof(*out->kvs));
        if (out->kvs == NULL) {
            protobuf_c_message_free_unpacked(&r->base, NULL);
            return CAIRN_E_NOMEM;
        }
        cairn__kv_from_pb(r->kv, &out->kvs[0]);
        out->kvs_count = 1;
        out->count = 1;
    }
    out->priv_ = r;
    return 0;
}

CAIRN_EXPORT int cairn_election_leader(struct cairn_client *c, const char *name,
                                       int64_t deadline_ms,
                                       struct cairn_range_resp *out)
{
    if (c == NULL || out == NULL || name == NULL || name[0] == 0) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    V3electionpb__LeaderRequest m = V3ELECTIONPB__LEADER_REQUEST__INIT;
    m.name.data = (uint8_t *)name;
    m.name.len = strlen(name);
    ProtobufCMessage *resp = NULL;
    int rc =
        call(c, "/v3electionpb.Election/Leader", &m.base,
             &v3electionpb__leader_response__descriptor, deadline_ms, &resp);
    return rc != 0 ? rc : leader_to_range((void *)resp, out);
}

struct observe {
    struct cairn_client *c;
    cairn_observe_cb cb;
    void *arg;
};

static int observe_msg(void *arg, const uint8_t *p, size_t n)
{
    struct observe *o = arg;
    V3electionpb__LeaderResponse *r =
        v3electionpb__leader_response__unpack(NULL, n, p);
    if (r == NULL) {
        return cairn__fail(o->c, CAIRN_E_BAD_RESPONSE, 0,
                           "an Observe message does not parse");
    }
    struct cairn_range_resp rr;
    int rc = leader_to_range(r, &rr);
    if (rc != 0) {
        return rc;
    }
    rc = o->cb(o->arg, &rr);
    cairn_range_resp_free(&rr);
    return rc;
}

CAIRN_EXPORT int cairn_election_observe(struct cairn_client *c,
                                        const char *name, cairn_observe_cb cb,
                                        void *arg, int64_t deadline_ms)
{
    if (c == NULL || cb == NULL || name == NULL || name[0] == 0) {
        return CAIRN_E_INVALID;
    }
    V3electionpb__LeaderRequest m = V3ELECTIONPB__LEADER_REQUEST__INIT;
    m.name.data = (uint8_t *)name;
    m.name.len = strlen(name);
    struct observe o = {c, cb, arg};
    pthread_mutex_lock(&c->mu);
    int rc = cairn__stream(c, "/v3electionpb.Election/Observe", &m.base,
                           observe_msg, &o, cairn__deadline(c, deadline_ms));
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/*
 * lease.c - libcairn's lease calls (etcdserverpb.Lease) and the cluster
 * and maintenance reads (MemberList, Status).
 *
 * A keep-alive here is one round trip: LeaseKeepAlive is a bidi stream,
 * and a stream with one request and the send side closed gets exactly one
 * response before the server ends it, so it goes through the unary path.
 * The automatic keep-alive loop belongs to the asynchronous face.
 */
#include <string.h>

#include "base/alloc.h"
#include "sdk/client_int.h"

/* Runs one unary call under the mutex; *resp is the unpacked answer. */
static int call(struct cairn_client *c, const char *path,
                const ProtobufCMessage *req,
                const ProtobufCMessageDescriptor *desc, bool idempotent,
                int64_t deadline_ms, ProtobufCMessage **resp)
{
    pthread_mutex_lock(&c->mu);
    int rc = cairn__unary(c, path, req, desc, idempotent,
                          cairn__deadline(c, deadline_ms), resp);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

CAIRN_EXPORT int cairn_lease_grant(struct cairn_client *c, int64_t ttl_s,
                                   int64_t id, int64_t deadline_ms,
                                   struct cairn_lease_grant_resp *out)
{
    if (c == NULL || out == NULL || ttl_s < 0 || id < 0) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    Etcdserverpb__LeaseGrantRequest m = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    m.ttl = ttl_s;
    m.id = id;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/etcdserverpb.Lease/LeaseGrant", &m.base,
                  &etcdserverpb__lease_grant_response__descriptor, false,
                  deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__LeaseGrantResponse *r = (void *)resp;
    cairn__header_from_pb(r->header, &out->header);
    out->id = r->id;
    out->ttl = r->ttl;
    if (r->error != NULL) {
        size_t n = strlen(r->error);
        n = n < sizeof(out->error) - 1 ? n : sizeof(out->error) - 1;
        memcpy(out->error, r->error, n);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

CAIRN_EXPORT int cairn_lease_revoke(struct cairn_client *c, int64_t id,
                                    int64_t deadline_ms,
                                    struct cairn_header *out)
{
    if (c == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__LeaseRevokeRequest m =
        ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    m.id = id;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/etcdserverpb.Lease/LeaseRevoke", &m.base,
                  &etcdserverpb__lease_revoke_response__descriptor, false,
                  deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    if (out != NULL) {
        cairn__header_from_pb(
            ((Etcdserverpb__LeaseRevokeResponse *)resp)->header, out);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

CAIRN_EXPORT int cairn_lease_timetolive(struct cairn_client *c, int64_t id,
                                        bool keys, int64_t deadline_ms,
                                        struct cairn_lease_ttl_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    Etcdserverpb__LeaseTimeToLiveRequest m =
        ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
    m.id = id;
    m.keys = keys;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/etcdserverpb.Lease/LeaseTimeToLive", &m.base,
                  &etcdserverpb__lease_time_to_live_response__descriptor, true,
                  deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__LeaseTimeToLiveResponse *r = (void *)resp;
    cairn__header_from_pb(r->header, &out->header);
    out->id = r->id;
    out->ttl = r->ttl;
    out->granted_ttl = r->grantedttl;
    if (r->n_keys > 0) {
        out->keys = mem_calloc(r->n_keys, sizeof(*out->keys));
        if (out->keys == NULL) {
            protobuf_c_message_free_unpacked(resp, NULL);
            memset(out, 0, sizeof(*out));
            return CAIRN_E_NOMEM;
        }
        for (size_t i = 0; i < r->n_keys; i++) {
            out->keys[i].key = r->keys[i].data;
            out->keys[i].key_len = r->keys[i].len;
        }
        out->keys_count = r->n_keys;
    }
    out->priv_ = resp;
    return 0;
}

CAIRN_EXPORT void cairn_lease_ttl_resp_free(struct cairn_lease_ttl_resp *r)
{
    if (r == NULL) {
        return;
    }
    mem_free(r->keys);
    if (r->priv_ != NULL) {
        protobuf_c_message_free_unpacked(r->priv_, NULL);
    }
    memset(r, 0, sizeof(*r));
}

CAIRN_EXPORT int cairn_lease_list(struct cairn_client *c, int64_t deadline_ms,
                                  struct cairn_lease_list_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    Etcdserverpb__LeaseLeasesRequest m =
        ETCDSERVERPB__LEASE_LEASES_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/etcdserverpb.Lease/LeaseLeases", &m.base,
                  &etcdserverpb__lease_leases_response__descriptor, true,
                  deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__LeaseLeasesResponse *r = (void *)resp;
    cairn__header_from_pb(r->header, &out->header);
    if (r->n_leases > 0) {
        out->ids = mem_calloc(r->n_leases, sizeof(*out->ids));
        if (out->ids == NULL) {
            protobuf_c_message_free_unpacked(resp, NULL);
            return CAIRN_E_NOMEM;
        }
        for (size_t i = 0; i < r->n_leases; i++) {
            if (r->leases[i] == NULL) {
                mem_free(out->ids);
                protobuf_c_message_free_unpacked(resp, NULL);
                memset(out, 0, sizeof(*out));
                return CAIRN_E_BAD_RESPONSE;
            }
            out->ids[i] = r->leases[i]->id;
        }
        out->ids_count = r->n_leases;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

CAIRN_EXPORT void cairn_lease_list_resp_free(struct cairn_lease_list_resp *r)
{
    if (r == NULL) {
        return;
    }
    mem_free(r->ids);
    memset(r, 0, sizeof(*r));
}

CAIRN_EXPORT int cairn_lease_keepalive_once(struct cairn_client *c, int64_t id,
                                            int64_t deadline_ms,
                                            int64_t *ttl_out,
                                            struct cairn_header *header)
{
    if (c == NULL || ttl_out == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__LeaseKeepAliveRequest m =
        ETCDSERVERPB__LEASE_KEEP_ALIVE_REQUEST__INIT;
    m.id = id;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/etcdserverpb.Lease/LeaseKeepAlive", &m.base,
                  &etcdserverpb__lease_keep_alive_response__descriptor, true,
                  deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__LeaseKeepAliveResponse *r = (void *)resp;
    *ttl_out = r->ttl;
    if (header != NULL) {
        cairn__header_from_pb(r->header, header);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

/* ----------------------------------------------------- cluster, status */

CAIRN_EXPORT int cairn_member_list(struct cairn_client *c, int64_t deadline_ms,
                                   struct cairn_member_list_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    Etcdserverpb__MemberListRequest m = ETCDSERVERPB__MEMBER_LIST_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/etcdserverpb.Cluster/MemberList", &m.base,
                  &etcdserverpb__member_list_response__descriptor, true,
                  deadline_ms, &resp);
    return rc != 0 ? rc : cairn__members_from_pb((void *)resp, out);
}

CAIRN_EXPORT int cairn_status(struct cairn_client *c, int64_t deadline_ms,
                              struct cairn_status_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    Etcdserverpb__StatusRequest m = ETCDSERVERPB__STATUS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/etcdserverpb.Maintenance/Status", &m.base,
                  &etcdserverpb__status_response__descriptor, true, deadline_ms,
                  &resp);
    return rc != 0 ? rc : cairn__status_from_pb((void *)resp, out);
}

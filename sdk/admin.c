/*
 * admin.c - libcairn's administrative calls: compaction, HashKV, alarms,
 * defragment, move-leader (etcdserverpb.KV/Maintenance), member add,
 * remove, update and promote (etcdserverpb.Cluster), and auth, users and
 * roles (etcdserverpb.Auth).
 *
 * Several answers share a shape, and protobuf ignores fields it does not
 * know, so they are decoded with one descriptor: every answer that is
 * only a header (field 1) as a CompactionResponse; UserGet, UserList and
 * RoleList (header, then repeated string field 2) as a UserListResponse;
 * MemberRemove, MemberUpdate and MemberPromote (header, members 2) as a
 * MemberListResponse.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "sdk/client_int.h"

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

/* A call whose answer is a header alone. */
static int hdr_call(struct cairn_client *c, const char *path,
                    const ProtobufCMessage *req, int64_t deadline_ms,
                    struct cairn_header *hdr)
{
    if (hdr != NULL) {
        memset(hdr, 0, sizeof(*hdr));
    }
    ProtobufCMessage *resp = NULL;
    int rc = call(c, path, req, &etcdserverpb__compaction_response__descriptor,
                  false, deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    if (hdr != NULL) {
        cairn__header_from_pb(
            ((Etcdserverpb__CompactionResponse *)resp)->header, hdr);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static bool bad_name(const char *s)
{
    return s == NULL || s[0] == 0;
}

CAIRN_EXPORT int cairn_compact(struct cairn_client *c, int64_t rev,
                               bool physical, int64_t deadline_ms,
                               struct cairn_header *hdr)
{
    if (c == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__CompactionRequest m = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    m.revision = rev;
    m.physical = physical;
    return hdr_call(c, "/etcdserverpb.KV/Compact", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_hashkv(struct cairn_client *c, int64_t rev,
                              int64_t deadline_ms,
                              struct cairn_hashkv_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    Etcdserverpb__HashKVRequest m = ETCDSERVERPB__HASH_KVREQUEST__INIT;
    m.revision = rev;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/etcdserverpb.Maintenance/HashKV", &m.base,
                  &etcdserverpb__hash_kvresponse__descriptor, true, deadline_ms,
                  &resp);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__HashKVResponse *r = (void *)resp;
    cairn__header_from_pb(r->header, &out->header);
    out->hash = r->hash;
    out->compact_revision = r->compact_revision;
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

CAIRN_EXPORT int cairn_defragment(struct cairn_client *c, int64_t deadline_ms,
                                  struct cairn_header *hdr)
{
    if (c == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__DefragmentRequest m = ETCDSERVERPB__DEFRAGMENT_REQUEST__INIT;
    return hdr_call(c, "/etcdserverpb.Maintenance/Defragment", &m.base,
                    deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_move_leader(struct cairn_client *c, uint64_t target,
                                   int64_t deadline_ms,
                                   struct cairn_header *hdr)
{
    if (c == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__MoveLeaderRequest m = ETCDSERVERPB__MOVE_LEADER_REQUEST__INIT;
    m.targetid = target;
    return hdr_call(c, "/etcdserverpb.Maintenance/MoveLeader", &m.base,
                    deadline_ms, hdr);
}

/* ------------------------------------------------------------ snapshot */

struct snap {
    struct cairn_client *c;
    int fd;
    uint64_t bytes;
};

static int snap_msg(void *arg, const uint8_t *p, size_t n)
{
    struct snap *s = arg;
    Etcdserverpb__SnapshotResponse *r =
        etcdserverpb__snapshot_response__unpack(NULL, n, p);
    if (r == NULL) {
        return cairn__fail(s->c, CAIRN_E_BAD_RESPONSE, 0,
                           "a snapshot message does not parse");
    }
    size_t off = 0;
    while (off < r->blob.len) {
        ssize_t w = write(s->fd, r->blob.data + off, r->blob.len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            int e = errno;
            protobuf_c_message_free_unpacked(&r->base, NULL);
            return cairn__fail(s->c, CAIRN_E_IO, 0, "write: %s", strerror(e));
        }
        off += (size_t)w;
    }
    s->bytes += r->blob.len;
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

CAIRN_EXPORT int cairn_snapshot(struct cairn_client *c, int fd,
                                int64_t deadline_ms, uint64_t *bytes)
{
    if (c == NULL || fd < 0) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__SnapshotRequest m = ETCDSERVERPB__SNAPSHOT_REQUEST__INIT;
    struct snap s = {.c = c, .fd = fd};
    pthread_mutex_lock(&c->mu);
    int rc = cairn__stream(c, "/etcdserverpb.Maintenance/Snapshot", &m.base,
                           snap_msg, &s, cairn__deadline(c, deadline_ms));
    pthread_mutex_unlock(&c->mu);
    if (bytes != NULL) {
        *bytes = s.bytes;
    }
    return rc;
}

/* --------------------------------------------------------------- alarm */

static int alarm_call(struct cairn_client *c,
                      Etcdserverpb__AlarmRequest__AlarmAction action,
                      const struct cairn_alarm *a, int64_t deadline_ms,
                      struct cairn_alarm_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    Etcdserverpb__AlarmRequest m = ETCDSERVERPB__ALARM_REQUEST__INIT;
    m.action = action;
    if (a != NULL) {
        m.memberid = a->member_id;
        m.alarm = (Etcdserverpb__AlarmType)a->alarm;
    }
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/etcdserverpb.Maintenance/Alarm", &m.base,
                  &etcdserverpb__alarm_response__descriptor,
                  action == ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET,
                  deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__AlarmResponse *r = (void *)resp;
    cairn__header_from_pb(r->header, &out->header);
    if (r->n_alarms > 0) {
        out->alarms = mem_calloc(r->n_alarms, sizeof(*out->alarms));
        if (out->alarms == NULL) {
            protobuf_c_message_free_unpacked(resp, NULL);
            return CAIRN_E_NOMEM;
        }
    }
    for (size_t i = 0; i < r->n_alarms; i++) {
        if (r->alarms[i] == NULL) {
            continue; /* protobuf-c never leaves one NULL; be safe */
        }
        out->alarms[out->alarms_count].member_id = r->alarms[i]->memberid;
        out->alarms[out->alarms_count++].alarm = (int)r->alarms[i]->alarm;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

CAIRN_EXPORT int cairn_alarm_list(struct cairn_client *c, int64_t deadline_ms,
                                  struct cairn_alarm_resp *out)
{
    return alarm_call(c, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__GET, NULL,
                      deadline_ms, out);
}

CAIRN_EXPORT int cairn_alarm_disarm(struct cairn_client *c,
                                    const struct cairn_alarm *a,
                                    int64_t deadline_ms,
                                    struct cairn_alarm_resp *out)
{
    if (a == NULL) {
        return CAIRN_E_INVALID;
    }
    return alarm_call(c, ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE,
                      a, deadline_ms, out);
}

CAIRN_EXPORT void cairn_alarm_resp_free(struct cairn_alarm_resp *r)
{
    if (r != NULL) {
        mem_free(r->alarms);
        memset(r, 0, sizeof(*r));
    }
}

/* ------------------------------------------------------------- members */

static bool urls_ok(const char *const *urls, size_t n)
{
    if (n == 0 || urls == NULL) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (bad_name(urls[i])) {
            return false;
        }
    }
    return true;
}

static void member_from_pb(const Etcdserverpb__Member *mb,
                           struct cairn_member *o)
{
    o->id = mb->id;
    o->name = mb->name != NULL ? mb->name : "";
    o->peer_urls = (const char *const *)mb->peerurls;
    o->peer_urls_count = mb->n_peerurls;
    o->client_urls = (const char *const *)mb->clienturls;
    o->client_urls_count = mb->n_clienturls;
    o->is_learner = mb->islearner;
}

CAIRN_EXPORT int cairn_member_add(struct cairn_client *c,
                                  const char *const *peer_urls, size_t n,
                                  bool learner, int64_t deadline_ms,
                                  struct cairn_member_add_resp *out)
{
    if (c == NULL || out == NULL || !urls_ok(peer_urls, n)) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    Etcdserverpb__MemberAddRequest m = ETCDSERVERPB__MEMBER_ADD_REQUEST__INIT;
    m.peerurls = (char **)peer_urls; /* only read while packing */
    m.n_peerurls = n;
    m.islearner = learner;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, "/etcdserverpb.Cluster/MemberAdd", &m.base,
                  &etcdserverpb__member_add_response__descriptor, false,
                  deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__MemberAddResponse *r = (void *)resp;
    if (r->member == NULL) {
        protobuf_c_message_free_unpacked(resp, NULL);
        return cairn__fail(c, CAIRN_E_BAD_RESPONSE, 0,
                           "MemberAdd answered without the new member");
    }
    cairn__header_from_pb(r->header, &out->header);
    member_from_pb(r->member, &out->member);
    if (r->n_members > 0) {
        out->members = mem_calloc(r->n_members, sizeof(*out->members));
        if (out->members == NULL) {
            protobuf_c_message_free_unpacked(resp, NULL);
            memset(out, 0, sizeof(*out));
            return CAIRN_E_NOMEM;
        }
    }
    for (size_t i = 0; i < r->n_members; i++) {
        member_from_pb(r->members[i], &out->members[i]);
    }
    out->members_count = r->n_members;
    out->priv_ = resp;
    return 0;
}

CAIRN_EXPORT void cairn_member_add_resp_free(struct cairn_member_add_resp *r)
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

static int members_call(struct cairn_client *c, const char *path,
                        const ProtobufCMessage *req, int64_t deadline_ms,
                        struct cairn_member_list_resp *out)
{
    memset(out, 0, sizeof(*out));
    ProtobufCMessage *resp = NULL;
    int rc = call(c, path, req, &etcdserverpb__member_list_response__descriptor,
                  false, deadline_ms, &resp);
    return rc != 0 ? rc : cairn__members_from_pb((void *)resp, out);
}

CAIRN_EXPORT int cairn_member_remove(struct cairn_client *c, uint64_t id,
                                     int64_t deadline_ms,
                                     struct cairn_member_list_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__MemberRemoveRequest m =
        ETCDSERVERPB__MEMBER_REMOVE_REQUEST__INIT;
    m.id = id;
    return members_call(c, "/etcdserverpb.Cluster/MemberRemove", &m.base,
                        deadline_ms, out);
}

CAIRN_EXPORT int cairn_member_update(struct cairn_client *c, uint64_t id,
                                     const char *const *peer_urls, size_t n,
                                     int64_t deadline_ms,
                                     struct cairn_member_list_resp *out)
{
    if (c == NULL || out == NULL || !urls_ok(peer_urls, n)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__MemberUpdateRequest m =
        ETCDSERVERPB__MEMBER_UPDATE_REQUEST__INIT;
    m.id = id;
    m.peerurls = (char **)peer_urls;
    m.n_peerurls = n;
    return members_call(c, "/etcdserverpb.Cluster/MemberUpdate", &m.base,
                        deadline_ms, out);
}

CAIRN_EXPORT int cairn_member_promote(struct cairn_client *c, uint64_t id,
                                      int64_t deadline_ms,
                                      struct cairn_member_list_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__MemberPromoteRequest m =
        ETCDSERVERPB__MEMBER_PROMOTE_REQUEST__INIT;
    m.id = id;
    return members_call(c, "/etcdserverpb.Cluster/MemberPromote", &m.base,
                        deadline_ms, out);
}

/* ---------------------------------------------------------------- auth */

#define AUTH "/etcdserverpb.Auth/"

CAIRN_EXPORT int cairn_auth_enable(struct cairn_client *c, int64_t deadline_ms,
                                   struct cairn_header *hdr)
{
    if (c == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthEnableRequest m = ETCDSERVERPB__AUTH_ENABLE_REQUEST__INIT;
    return hdr_call(c, AUTH "AuthEnable", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_auth_disable(struct cairn_client *c, int64_t deadline_ms,
                                    struct cairn_header *hdr)
{
    if (c == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthDisableRequest m =
        ETCDSERVERPB__AUTH_DISABLE_REQUEST__INIT;
    return hdr_call(c, AUTH "AuthDisable", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_auth_status(struct cairn_client *c, int64_t deadline_ms,
                                   bool *enabled, uint64_t *auth_revision,
                                   struct cairn_header *hdr)
{
    if (c == NULL || enabled == NULL || auth_revision == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthStatusRequest m = ETCDSERVERPB__AUTH_STATUS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, AUTH "AuthStatus", &m.base,
                  &etcdserverpb__auth_status_response__descriptor, true,
                  deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__AuthStatusResponse *r = (void *)resp;
    *enabled = r->enabled;
    *auth_revision = r->authrevision;
    if (hdr != NULL) {
        cairn__header_from_pb(r->header, hdr);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return 0;
}

static int names_call(struct cairn_client *c, const char *path,
                      const ProtobufCMessage *req, int64_t deadline_ms,
                      struct cairn_names_resp *out)
{
    memset(out, 0, sizeof(*out));
    ProtobufCMessage *resp = NULL;
    int rc =
        call(c, path, req, &etcdserverpb__auth_user_list_response__descriptor,
             true, deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__AuthUserListResponse *r = (void *)resp;
    cairn__header_from_pb(r->header, &out->header);
    out->names = (const char *const *)r->users;
    out->names_count = r->n_users;
    out->priv_ = resp;
    return 0;
}

CAIRN_EXPORT void cairn_names_resp_free(struct cairn_names_resp *r)
{
    if (r == NULL) {
        return;
    }
    if (r->priv_ != NULL) {
        protobuf_c_message_free_unpacked(r->priv_, NULL);
    }
    memset(r, 0, sizeof(*r));
}

CAIRN_EXPORT int cairn_user_add(struct cairn_client *c, const char *name,
                                const char *password, int64_t deadline_ms,
                                struct cairn_header *hdr)
{
    if (c == NULL || bad_name(name)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthUserAddRequest m =
        ETCDSERVERPB__AUTH_USER_ADD_REQUEST__INIT;
    Authpb__UserAddOptions o = AUTHPB__USER_ADD_OPTIONS__INIT;
    m.name = (char *)name;
    if (password != NULL) {
        m.password = (char *)password;
    } else {
        o.no_password = true;
        m.options = &o;
    }
    return hdr_call(c, AUTH "UserAdd", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_user_delete(struct cairn_client *c, const char *name,
                                   int64_t deadline_ms,
                                   struct cairn_header *hdr)
{
    if (c == NULL || bad_name(name)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthUserDeleteRequest m =
        ETCDSERVERPB__AUTH_USER_DELETE_REQUEST__INIT;
    m.name = (char *)name;
    return hdr_call(c, AUTH "UserDelete", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_user_passwd(struct cairn_client *c, const char *name,
                                   const char *password, int64_t deadline_ms,
                                   struct cairn_header *hdr)
{
    if (c == NULL || bad_name(name) || password == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthUserChangePasswordRequest m =
        ETCDSERVERPB__AUTH_USER_CHANGE_PASSWORD_REQUEST__INIT;
    m.name = (char *)name;
    m.password = (char *)password;
    return hdr_call(c, AUTH "UserChangePassword", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_user_grant_role(struct cairn_client *c, const char *user,
                                       const char *role, int64_t deadline_ms,
                                       struct cairn_header *hdr)
{
    if (c == NULL || bad_name(user) || bad_name(role)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthUserGrantRoleRequest m =
        ETCDSERVERPB__AUTH_USER_GRANT_ROLE_REQUEST__INIT;
    m.user = (char *)user;
    m.role = (char *)role;
    return hdr_call(c, AUTH "UserGrantRole", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_user_revoke_role(struct cairn_client *c,
                                        const char *user, const char *role,
                                        int64_t deadline_ms,
                                        struct cairn_header *hdr)
{
    if (c == NULL || bad_name(user) || bad_name(role)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthUserRevokeRoleRequest m =
        ETCDSERVERPB__AUTH_USER_REVOKE_ROLE_REQUEST__INIT;
    m.name = (char *)user;
    m.role = (char *)role;
    return hdr_call(c, AUTH "UserRevokeRole", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_user_get(struct cairn_client *c, const char *name,
                                int64_t deadline_ms,
                                struct cairn_names_resp *out)
{
    if (c == NULL || out == NULL || bad_name(name)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthUserGetRequest m =
        ETCDSERVERPB__AUTH_USER_GET_REQUEST__INIT;
    m.name = (char *)name;
    return names_call(c, AUTH "UserGet", &m.base, deadline_ms, out);
}

CAIRN_EXPORT int cairn_user_list(struct cairn_client *c, int64_t deadline_ms,
                                 struct cairn_names_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthUserListRequest m =
        ETCDSERVERPB__AUTH_USER_LIST_REQUEST__INIT;
    return names_call(c, AUTH "UserList", &m.base, deadline_ms, out);
}

CAIRN_EXPORT int cairn_role_add(struct cairn_client *c, const char *name,
                                int64_t deadline_ms, struct cairn_header *hdr)
{
    if (c == NULL || bad_name(name)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthRoleAddRequest m =
        ETCDSERVERPB__AUTH_ROLE_ADD_REQUEST__INIT;
    m.name = (char *)name;
    return hdr_call(c, AUTH "RoleAdd", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_role_delete(struct cairn_client *c, const char *name,
                                   int64_t deadline_ms,
                                   struct cairn_header *hdr)
{
    if (c == NULL || bad_name(name)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthRoleDeleteRequest m =
        ETCDSERVERPB__AUTH_ROLE_DELETE_REQUEST__INIT;
    m.role = (char *)name;
    return hdr_call(c, AUTH "RoleDelete", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int cairn_role_list(struct cairn_client *c, int64_t deadline_ms,
                                 struct cairn_names_resp *out)
{
    if (c == NULL || out == NULL) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthRoleListRequest m =
        ETCDSERVERPB__AUTH_ROLE_LIST_REQUEST__INIT;
    return names_call(c, AUTH "RoleList", &m.base, deadline_ms, out);
}

CAIRN_EXPORT int cairn_role_get(struct cairn_client *c, const char *name,
                                int64_t deadline_ms,
                                struct cairn_role_resp *out)
{
    if (c == NULL || out == NULL || bad_name(name)) {
        return CAIRN_E_INVALID;
    }
    memset(out, 0, sizeof(*out));
    Etcdserverpb__AuthRoleGetRequest m =
        ETCDSERVERPB__AUTH_ROLE_GET_REQUEST__INIT;
    m.role = (char *)name;
    ProtobufCMessage *resp = NULL;
    int rc = call(c, AUTH "RoleGet", &m.base,
                  &etcdserverpb__auth_role_get_response__descriptor, true,
                  deadline_ms, &resp);
    if (rc != 0) {
        return rc;
    }
    Etcdserverpb__AuthRoleGetResponse *r = (void *)resp;
    cairn__header_from_pb(r->header, &out->header);
    if (r->n_perm > 0) {
        out->perms = mem_calloc(r->n_perm, sizeof(*out->perms));
        if (out->perms == NULL) {
            protobuf_c_message_free_unpacked(resp, NULL);
            memset(out, 0, sizeof(*out));
            return CAIRN_E_NOMEM;
        }
    }
    for (size_t i = 0; i < r->n_perm; i++) {
        const Authpb__Permission *p = r->perm[i];
        struct cairn_permission *o = &out->perms[i];
        o->type = (int)p->permtype;
        o->key = p->key.data;
        o->key_len = p->key.len;
        o->range_end = p->range_end.data;
        o->range_end_len = p->range_end.len;
    }
    out->perms_count = r->n_perm;
    out->priv_ = resp;
    return 0;
}

CAIRN_EXPORT void cairn_role_resp_free(struct cairn_role_resp *r)
{
    if (r == NULL) {
        return;
    }
    mem_free(r->perms);
    if (r->priv_ != NULL) {
        protobuf_c_message_free_unpacked(r->priv_, NULL);
    }
    memset(r, 0, sizeof(*r));
}

CAIRN_EXPORT int cairn_role_grant_permission(struct cairn_client *c,
                                             const char *role,
                                             const struct cairn_permission *p,
                                             int64_t deadline_ms,
                                             struct cairn_header *hdr)
{
    if (c == NULL || bad_name(role) || p == NULL ||
        (p->key == NULL && p->key_len > 0) ||
        (p->range_end == NULL && p->range_end_len > 0) || p->type < 0 ||
        p->type > CAIRN_PERM_READWRITE) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthRoleGrantPermissionRequest m =
        ETCDSERVERPB__AUTH_ROLE_GRANT_PERMISSION_REQUEST__INIT;
    Authpb__Permission perm = AUTHPB__PERMISSION__INIT;
    perm.permtype = (Authpb__Permission__Type)p->type;
    perm.key.data = (uint8_t *)p->key;
    perm.key.len = p->key_len;
    perm.range_end.data = (uint8_t *)p->range_end;
    perm.range_end.len = p->range_end_len;
    m.name = (char *)role;
    m.perm = &perm;
    return hdr_call(c, AUTH "RoleGrantPermission", &m.base, deadline_ms, hdr);
}

CAIRN_EXPORT int
cairn_role_revoke_permission(struct cairn_client *c, const char *role,
                             const uint8_t *key, size_t key_len,
                             const uint8_t *range_end, size_t range_end_len,
                             int64_t deadline_ms, struct cairn_header *hdr)
{
    if (c == NULL || bad_name(role) || (key == NULL && key_len > 0) ||
        (range_end == NULL && range_end_len > 0)) {
        return CAIRN_E_INVALID;
    }
    Etcdserverpb__AuthRoleRevokePermissionRequest m =
        ETCDSERVERPB__AUTH_ROLE_REVOKE_PERMISSION_REQUEST__INIT;
    m.role = (char *)role;
    m.key.data = (uint8_t *)key;
    m.key.len = key_len;
    m.range_end.data = (uint8_t *)range_end;
    m.range_end.len = range_end_len;
    return hdr_call(c, AUTH "RoleRevokePermission", &m.base, deadline_ms, hdr);
}

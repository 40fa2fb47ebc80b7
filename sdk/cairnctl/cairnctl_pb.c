/*
 * cairnctl_pb.c - -w protobuf, as etcdctl 3.4's printer_protobuf.go: the
 * response message marshalled to bytes and written as they are (a "%" in
 * them stays a "%": etcdctl 3.4.23 does not pass them through Printf), for
 * the commands where etcdctl has it.
 *
 * What etcdctl prints, and so what this prints:
 *   get, put, del     RangeResponse, PutResponse, DeleteRangeResponse
 *   watch             per response a WatchResponse of the header and the
 *                     events only (no watch id, created, canceled)
 *   member list       MemberListResponse
 *   lease grant, lease list, lease timetolive
 *                     the ResponseHeader alone: clientv3's response types
 *                     embed *pb.ResponseHeader, whose Marshal method Go
 *                     promotes, so that is what etcdctl marshals
 *   endpoint health, status, hashkv
 *                     "Error: protobuf not supported as output format", 4
 * The rest of the commands refuse protobuf before their call (exit 4).
 *
 * The messages are libcairn's answers built again with the generated
 * protobuf-c types; proto3 leaves zero fields out and writes fields in
 * number order, as gogoproto does, so the bytes are the server's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/kv.pb-c.h"
#include "proto/rpc.pb-c.h"
#include "sdk/cairnctl/cairnctl.h"

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

/* kvs[i] -> storage[i], pointers into ptrs; false when out of memory. */
static bool pb_kvs(const struct cairn_kv *src, size_t n,
                   Mvccpb__KeyValue **storage, Mvccpb__KeyValue ***ptrs)
{
    *storage = calloc(n + 1, sizeof(**storage));
    *ptrs = calloc(n + 1, sizeof(**ptrs));
    if (*storage == NULL || *ptrs == NULL) {
        free(*storage);
        free(*ptrs);
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        pb_kv(&(*storage)[i], &src[i]);
        (*ptrs)[i] = &(*storage)[i];
    }
    return true;
}

void pb_print_header(const struct cairn_header *h)
{
    Etcdserverpb__ResponseHeader m;
    pb_header(&m, h);
    pb_print(&m.base);
}

void pb_print_range(const struct cairn_range_resp *r)
{
    Etcdserverpb__RangeResponse m = ETCDSERVERPB__RANGE_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h;
    Mvccpb__KeyValue *kvs, **ptrs;
    if (!pb_kvs(r->kvs, r->kvs_count, &kvs, &ptrs)) {
        return;
    }
    pb_header(&h, &r->header);
    m.header = &h;
    m.n_kvs = r->kvs_count;
    m.kvs = ptrs;
    m.more = r->more;
    m.count = r->count;
    pb_print(&m.base);
    free(kvs);
    free(ptrs);
}

void pb_print_put(const struct cairn_put_resp *r)
{
    Etcdserverpb__PutResponse m = ETCDSERVERPB__PUT_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h;
    Mvccpb__KeyValue prev;
    pb_header(&h, &r->header);
    m.header = &h;
    if (r->prev_kv != NULL) {
        pb_kv(&prev, r->prev_kv);
        m.prev_kv = &prev;
    }
    pb_print(&m.base);
}

void pb_print_delete(const struct cairn_delete_resp *r)
{
    Etcdserverpb__DeleteRangeResponse m =
        ETCDSERVERPB__DELETE_RANGE_RESPONSE__INIT;
    Etcdserverpb__ResponseHeader h;
    Mvccpb__KeyValue *kvs, **ptrs;
    if (!pb_kvs(r->prev_kvs, r->prev_kvs_count, &kvs, &ptrs)) {
        return;
    }
    pb_header(&h, &r->header);
    m.header = &h;
    m.deleted = r->deleted;
    m.n_prev_kvs = r->prev_kvs_count;
    m.prev_kvs = ptrs;
    pb_print(&m.base);
    free(kvs);
    free(ptrs);
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

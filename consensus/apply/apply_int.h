/* apply_int.h - private to consensus/apply: the response writers. */
#ifndef CAIRN_CONSENSUS_APPLY_INT_H
#define CAIRN_CONSENSUS_APPLY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "consensus/apply/apply.h"

#define APPLY_TXN_DEPTH_MAX 128

/* etcdserverpb.ResponseHeader */
struct pb_header {
    uint64_t cluster_id;
    uint64_t member_id;
    int64_t revision;
    uint64_t raft_term;
};

size_t pb_varint_size(uint64_t v);
size_t pb_range_size(const struct pb_header *h, const struct kv_range_resp *r);
int pb_range_encode(const struct pb_header *h, const struct kv_range_resp *r,
                    struct buf *out);
size_t pb_put_size(const struct pb_header *h, const struct kv_put_resp *r);
int pb_put_encode(const struct pb_header *h, const struct kv_put_resp *r,
                  struct buf *out);
size_t pb_delete_size(const struct pb_header *h,
                      const struct kv_delete_resp *r);
int pb_delete_encode(const struct pb_header *h, const struct kv_delete_resp *r,
                     struct buf *out);
int pb_txn_encode(const struct pb_header *h, const struct kv_txn_resp *t,
                  int64_t start_rev, struct buf *out);
int pb_header_only_encode(const struct pb_header *h, struct buf *out);
int pb_lease_grant_encode(const struct pb_header *h, int64_t id, int64_t ttl,
                          struct buf *out);
int pb_alarm_encode(const struct pb_header *h, const struct apply_alarm *al,
                    size_t count, struct buf *out);

/* A Put entry in the canonical layout (apply_wire.c): fills *req and *put,
 * whose key and value then point into p[0..len), and returns true; false
 * for any other entry (decode it with protobuf-c). */
bool apply__put_decode(const uint8_t *p, size_t len,
                       Cairnpb__InternalRequest *req,
                       Etcdserverpb__PutRequest *put);

/* The audit log (apply_audit.c). */
int apply__audit_check(const Cairnpb__AuditRecord *rec);
/* Free the audit chain's digest context (apply_close). */
void apply__audit_close(struct apply *a);
int apply__audit_write(struct apply *a, struct kv_write *wr,
                       const Cairnpb__AuditRecord *rec, int64_t rev_before);

#endif

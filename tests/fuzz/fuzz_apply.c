/*
 * fuzz_apply.c - apply_entries (consensus/apply) on arbitrary committed
 * entry bytes, against a real store (consensus/kv on LMDB) and a real auth
 * store in a scratch directory.
 *
 * Goal: whatever a committed entry holds, applying it gives that entry a
 * result (ERR_BAD_REQUEST for an envelope that does not decode) and never
 * crashes, aborts or fails the batch: apply_entries fails only when the
 * store does, and a store on tmpfs with room does not. Every response
 * handed to the proposer decodes as its etcd response type.
 *
 * Input: a list of entries, each [ctl][len lo][len hi][len bytes of data]:
 * ctl bits 0-1 the Raft entry type (0 normal, 1 conf, 2 empty, 3 normal),
 * bit 7 ends the batch before this entry (so several batches commit). The
 * store is created fresh for every input, so a crash replays from its
 * input alone.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "consensus/apply/apply.h"
#include "consensus/auth/auth.h"
#include "consensus/kv/kv.h"
#include "proto/rpc.pb-c.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 8192
#define ENTRIES_MAX  64
#define ME           0x1111

static char dir[256];

static void cleanup(void)
{
    fuzz_empty_dir(dir);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_setup(LOG_FATAL, LOG_FORMAT_TEXT, stderr);
    fuzz_scratch_dir(dir, sizeof(dir));
    atexit(cleanup);
    return 0;
}

static const ProtobufCMessageDescriptor *resp_desc(enum apply_op op)
{
    switch (op) {
    case APPLY_PUT:
        return &etcdserverpb__put_response__descriptor;
    case APPLY_DELETE_RANGE:
        return &etcdserverpb__delete_range_response__descriptor;
    case APPLY_TXN:
        return &etcdserverpb__txn_response__descriptor;
    case APPLY_COMPACTION:
        return &etcdserverpb__compaction_response__descriptor;
    case APPLY_LEASE_GRANT:
        return &etcdserverpb__lease_grant_response__descriptor;
    case APPLY_LEASE_REVOKE:
        return &etcdserverpb__lease_revoke_response__descriptor;
    case APPLY_ALARM:
        return &etcdserverpb__alarm_response__descriptor;
    default:
        return NULL;
    }
}

static void on_result(void *ctx, const struct apply_result *res)
{
    (void)ctx;
    if (res->err != 0) {
        FUZZ_CHECK(res->err < 0);
        return;
    }
    const ProtobufCMessageDescriptor *d = resp_desc(res->op);
    if (d != NULL) {
        ProtobufCMessage *m =
            protobuf_c_message_unpack(d, NULL, res->resp_len, res->resp);
        FUZZ_CHECK(m != NULL);
        protobuf_c_message_free_unpacked(m, NULL);
    }
}

static void on_lease(void *ctx, int64_t id, int64_t ttl, bool checkpoint)
{
    (void)ctx;
    (void)id;
    (void)checkpoint;
    FUZZ_CHECK(ttl >= 0);
}

static int on_event(void *ctx, const struct kv_event *ev)
{
    (void)ctx;
    (void)ev;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct raft_entry ents[ENTRIES_MAX];
    static uint8_t *copies[ENTRIES_MAX];
    size_t n = 0, off = 0;
    /* Parse the entry list first; each entry's data in its own block. */
    while (off + 3 <= size && n < ENTRIES_MAX) {
        uint8_t ctl = data[off];
        size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
        off += 3;
        if (len > size - off) {
            len = size - off;
        }
        copies[n] = malloc(len ? len : 1);
        memcpy(copies[n], data + off, len);
        ents[n].type = (uint8_t)((ctl & 3) == 3 ? 0 : ctl & 3);
        ents[n].term = 1 + (ctl >> 7);
        ents[n].data = len ? copies[n] : NULL;
        ents[n].len = (uint32_t)len;
        ents[n].index = 0;
        /* bit 7: a batch boundary, kept in the term's low bit above */
        off += len;
        n++;
    }
    if (n == 0) {
        return 0;
    }

    fuzz_empty_dir(dir);
    struct kv *kv = NULL;
    struct kv_options ko = {.sync = KV_SYNC_NONE,
                            .quota_bytes = (uint64_t)16 << 20};
    FUZZ_CHECK(kv_open(dir, &ko, &kv) == 0);
    static struct auth auth;
    struct auth_config ac = {.bcrypt_cost = 4, .token_ttl_ms = 1000};
    FUZZ_CHECK(auth_init(&auth, &ac) == 0);
    struct apply a;
    struct apply_config cfg = {.kv = kv,
                               .cluster_id = 0xc1,
                               .member_id = ME,
                               .min_lease_ttl_s = 2,
                               .auth = &auth};
    FUZZ_CHECK(apply_init(&a, &cfg) == 0);
    struct apply_hooks hooks = {.ctx = NULL,
                                .on_event = on_event,
                                .on_result = on_result,
                                .on_lease = on_lease};

    /* Indexes follow the store's applied index; terms never decrease. */
    uint64_t applied = 0, applied_term = 0;
    kv_applied(kv, &applied, &applied_term);
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        bool cut = ents[i].term == 2 && i > start;
        ents[i].index = applied + 1 + i;
        ents[i].term = 1;
        if (cut) {
            int rc = apply_entries(&a, ents + start, i - start, 1, &hooks);
            FUZZ_CHECK(rc == 0);
            start = i;
        }
    }
    int rc = apply_entries(&a, ents + start, n - start, 1, &hooks);
    FUZZ_CHECK(rc == 0);
    uint64_t idx = 0, term = 0;
    kv_applied(kv, &idx, &term);
    FUZZ_CHECK(idx == applied + n);

    apply_close(&a);
    auth_close(&auth);
    kv_close(kv);
    for (size_t i = 0; i < n; i++) {
        free(copies[i]);
    }
    return 0;
}

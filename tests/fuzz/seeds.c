/*
 * seeds.c - writes the seed corpora of the fuzz targets with the real
 * encoders (make fuzz-seeds -> tests/fuzz/corpus/<target>/seed-*).
 *
 * Each seed is a small valid input in the target's input format (see the
 * top comment of each fuzz_<name>.c), so the fuzzer starts past magics,
 * checksums and protobuf framing. The output is checked in; run this again
 * only when a format changes. Crash inputs that became regressions live
 * beside the seeds as regress-*; this program never touches them.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "consensus/apply/apply.h"
#include "consensus/log/log.h"
#include "consensus/raft/raft.h"
#include "consensus/transport/transport_int.h"
#include "proto/rpc.pb-c.h"
#include "registry/server/server.h"
#include "tests/fuzz/fuzz_server.h"
#include "tests/fuzz/fuzz.h"

static const char *out_root;

static void seed(const char *target, const char *name, const void *p,
                 size_t len)
{
    char d[1024];
    snprintf(d, sizeof(d), "%s/%s", out_root, target);
    mkdir(out_root, 0755);
    mkdir(d, 0755);
    char fname[256];
    snprintf(fname, sizeof(fname), "seed-%s", name);
    fuzz_write_file(d, fname, p, len);
}

/* Prefix byte(s) then body. */
static void seed2(const char *target, const char *name, const uint8_t *pre,
                  size_t pre_len, const void *p, size_t len)
{
    uint8_t *b = malloc(pre_len + len + 1);
    memcpy(b, pre, pre_len);
    memcpy(b + pre_len, p, len);
    seed(target, name, b, pre_len + len);
    free(b);
}

/* ------------------------------------------------------------- raft */

static void conf_change(struct buf *b)
{
    struct raft_conf_change cc = {.type = 1, .node_id = 4};
    cc.conf.voters_count = 3;
    cc.conf.voters[0] = 1;
    cc.conf.voters[1] = 2;
    cc.conf.voters[2] = 3;
    cc.conf.learners_count = 1;
    cc.conf.learners[0] = 4;
    cc.ctx = (const uint8_t *)"peer-url";
    cc.ctx_len = 8;
    if (raft_conf_change_encode(&cc, b) != 0) {
        abort();
    }
}

static void raft_seeds(void)
{
    struct buf b, cc;
    buf_init(&b, 0);
    buf_init(&cc, 0);
    conf_change(&cc);
    struct raft_entry ents[3] = {
        {.index = 5,
         .term = 2,
         .type = RAFT_ENTRY_NORMAL,
         .data = (uint8_t *)"hello",
         .len = 5},
        {.index = 6,
         .term = 2,
         .type = RAFT_ENTRY_CONF,
         .data = cc.data,
         .len = (uint32_t)cc.len},
        {.index = 7, .term = 2, .type = RAFT_ENTRY_EMPTY},
    };
    struct raft_msg m = {.type = RAFT_MSG_APP,
                         .from = 1,
                         .to = 2,
                         .term = 2,
                         .log_term = 2,
                         .index = 4,
                         .commit = 4,
                         .entries_count = 3,
                         .entries = ents};
    raft_msg_encode(&m, &b);
    seed("raft_codec", "app", b.data, b.len);
    buf_reset(&b);
    struct raft_msg v = {.type = RAFT_MSG_VOTE_RESP,
                         .flags = 1,
                         .from = 3,
                         .to = 1,
                         .term = 9,
                         .reject_hint = 3,
                         .ctx = 77};
    raft_msg_encode(&v, &b);
    seed("raft_codec", "vote_resp", b.data, b.len);
    buf_reset(&b);
    struct raft_msg s = {.type = RAFT_MSG_SNAP, .from = 1, .to = 3, .term = 4};
    s.snapshot.meta.index = 100;
    s.snapshot.meta.term = 3;
    s.snapshot.meta.conf.voters_count = 2;
    s.snapshot.meta.conf.voters[0] = 1;
    s.snapshot.meta.conf.voters[1] = 3;
    s.snapshot.data = (uint8_t *)"state";
    s.snapshot.data_len = 5;
    raft_msg_encode(&s, &b);
    seed("raft_codec", "snap", b.data, b.len);
    seed("raft_codec", "conf_change", cc.data, cc.len);
    buf_free(&b);
    buf_free(&cc);
}

static void op(struct buf *b, uint8_t code, const void *p, size_t len)
{
    uint8_t h[3] = {code, (uint8_t)len, (uint8_t)(len >> 8)};
    buf_append(b, h, 3);
    buf_append(b, p, len);
}

static void op_msg(struct buf *b, const struct raft_msg *m)
{
    struct buf e;
    buf_init(&e, 0);
    raft_msg_encode(m, &e);
    op(b, 0, e.data, e.len);
    buf_free(&e);
}

static void raft_step_seeds(void)
{
    struct buf b;
    buf_init(&b, 0);
    /* Node 1 campaigns (pre-vote), wins, proposes, followers ack. */
    op(&b, 3 | 4, NULL, 0);
    struct raft_msg pv = {
        .type = RAFT_MSG_PREVOTE_RESP, .from = 2, .to = 1, .term = 1};
    op_msg(&b, &pv);
    struct raft_msg v = {
        .type = RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 1};
    op_msg(&b, &v);
    op(&b, 2, "put", 3);
    struct raft_msg ar = {
        .type = RAFT_MSG_APP_RESP, .from = 2, .to = 1, .term = 1, .index = 2};
    op_msg(&b, &ar);
    op(&b, 3, NULL, 0); /* read index */
    struct raft_msg hr = {.type = RAFT_MSG_HEARTBEAT_RESP,
                          .from = 3,
                          .to = 1,
                          .term = 1,
                          .ctx = 1};
    op_msg(&b, &hr);
    op(&b, 1 | (20 << 2), NULL, 0);
    seed("raft_step", "leader", b.data, b.len);

    /* A leader (node 2) appends to us, then sends a snapshot. */
    buf_reset(&b);
    struct raft_entry ents[2] = {
        {.index = 1, .term = 2, .type = RAFT_ENTRY_EMPTY},
        {.index = 2,
         .term = 2,
         .type = RAFT_ENTRY_NORMAL,
         .data = (uint8_t *)"x",
         .len = 1},
    };
    struct raft_msg app = {.type = RAFT_MSG_APP,
                           .from = 2,
                           .to = 1,
                           .term = 2,
                           .commit = 2,
                           .entries_count = 2,
                           .entries = ents};
    op_msg(&b, &app);
    struct raft_msg hb = {.type = RAFT_MSG_HEARTBEAT,
                          .from = 2,
                          .to = 1,
                          .term = 2,
                          .commit = 2,
                          .ctx = 9};
    op_msg(&b, &hb);
    struct raft_msg sn = {.type = RAFT_MSG_SNAP, .from = 2, .to = 1, .term = 3};
    sn.snapshot.meta.index = 10;
    sn.snapshot.meta.term = 3;
    sn.snapshot.meta.conf.voters_count = 3;
    sn.snapshot.meta.conf.voters[0] = 1;
    sn.snapshot.meta.conf.voters[1] = 2;
    sn.snapshot.meta.conf.voters[2] = 3;
    op_msg(&b, &sn);
    op(&b, 2, "fwd", 3);
    struct raft_msg tn = {
        .type = RAFT_MSG_TIMEOUT_NOW, .from = 2, .to = 1, .term = 3};
    op_msg(&b, &tn);
    seed("raft_step", "follower", b.data, b.len);
    buf_free(&b);
}

/* ------------------------------------------------------ wal and snap */

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        abort();
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    if (fread(p, 1, (size_t)n, f) != (size_t)n) {
        abort();
    }
    fclose(f);
    *len = (size_t)n;
    return p;
}

/* The only *.wal / *.snap file of dir (the first found). */
static uint8_t *only_file(const char *dir, const char *suffix, size_t *len)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[2048];
    path[0] = '\0';
    while ((de = readdir(d)) != NULL) {
        size_t nl = strlen(de->d_name), sl = strlen(suffix);
        if (nl > sl && strcmp(de->d_name + nl - sl, suffix) == 0) {
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            break;
        }
    }
    closedir(d);
    return slurp(path, len);
}

static void wal_seeds(void)
{
    char root[256], wal[512];
    fuzz_scratch_dir(root, sizeof(root));
    snprintf(wal, sizeof(wal), "%s/wal", root);
    struct log_options o = {.segment_bytes = 4096};
    struct log *l;
    if (log_open(wal, &o, &l, NULL, 0) != 0) {
        abort();
    }
    struct log_entry e[3] = {
        {.index = 1, .term = 1, .data = (const uint8_t *)"a", .len = 1},
        {.index = 2, .term = 1, .data = (const uint8_t *)"bcd", .len = 3},
        {.index = 3,
         .term = 2,
         .type = 1,
         .data = (const uint8_t *)"conf",
         .len = 4},
    };
    struct log_hard_state hs = {.term = 2, .vote = 1, .commit = 2};
    log_append(l, e, 2, &hs);
    log_append(l, e + 2, 1, NULL);
    log_close(l);
    size_t n;
    uint8_t *p = only_file(wal, ".wal", &n);
    while (n > 64 && p[n - 1] == 0) {
        n--; /* the preallocated tail */
    }
    n = (n + 7) & ~(size_t)7;
    uint8_t c = 1;
    seed2("wal", "three_entries", &c, 1, p, n);
    /* Also with a torn last frame. */
    seed2("wal", "torn_tail", &c, 1, p, n - 13);
    c = 0;
    seed2("wal", "raw", &c, 1, p, n);
    free(p);
    fuzz_empty_dir(root);

    /* Snapshots: inline payload, and a path payload. */
    char snap[512];
    snprintf(snap, sizeof(snap), "%s/snap", root);
    struct log_snap_meta m = {.index = 100,
                              .term = 3,
                              .conf = (const uint8_t *)"conf",
                              .conf_len = 4};
    log_snap_save(snap, &m, 0, "payload bytes", 13, 0);
    p = only_file(snap, ".snap", &n);
    c = 1;
    seed2("snap", "inline", &c, 1, p, n);
    free(p);
    fuzz_empty_dir(snap);
    log_snap_save(snap, &m, LOG_SNAP_FLAG_PATH, "/tmp/x.db", 9, 0);
    p = only_file(snap, ".snap", &n);
    seed2("snap", "path", &c, 1, p, n);
    free(p);
    fuzz_empty_dir(root);
    rmdir(root);
}

/* ----------------------------------------------------------- protobuf */

static size_t pack(const ProtobufCMessage *m, uint8_t *out)
{
    return protobuf_c_message_pack(m, out);
}

static size_t method_index(const char *path)
{
    for (size_t i = 0; i < api_methods_count; i++) {
        if (strcmp(api_methods[i].path, path) == 0) {
            return i;
        }
    }
    abort();
}

/* A few requests, packed: Put, Range, Txn (nested), LeaseGrant. */
struct req {
    const char *path;
    enum apply_op op;
    uint8_t pb[512];
    size_t len;
};

static size_t sample_requests(struct req *r)
{
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key.data = (uint8_t *)"foo";
    put.key.len = 3;
    put.value.data = (uint8_t *)"bar";
    put.value.len = 3;
    put.prev_kv = 1;
    r[0].path = "/etcdserverpb.KV/Put";
    r[0].op = APPLY_PUT;
    r[0].len = pack(&put.base, r[0].pb);

    Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rr.key.data = (uint8_t *)"a";
    rr.key.len = 1;
    rr.range_end.data = (uint8_t *)"\0";
    rr.range_end.len = 1;
    rr.limit = 10;
    rr.sort_order = 1;
    rr.sort_target = 3;
    r[1].path = "/etcdserverpb.KV/Range";
    r[1].op = APPLY_DELETE_RANGE; /* as a delete in apply seeds */
    r[1].len = pack(&rr.base, r[1].pb);

    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.key.data = (uint8_t *)"foo";
    cmp.key.len = 3;
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    cmp.value.data = (uint8_t *)"bar";
    cmp.value.len = 3;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__RequestOp op1 = ETCDSERVERPB__REQUEST_OP__INIT;
    op1.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    op1.request_put = &put;
    Etcdserverpb__TxnRequest inner = ETCDSERVERPB__TXN_REQUEST__INIT;
    Etcdserverpb__RequestOp *iops[1] = {&op1};
    inner.n_success = 1;
    inner.success = iops;
    Etcdserverpb__RequestOp op2 = ETCDSERVERPB__REQUEST_OP__INIT;
    op2.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
    op2.request_txn = &inner;
    Etcdserverpb__RequestOp op3 = ETCDSERVERPB__REQUEST_OP__INIT;
    op3.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
    op3.request_range = &rr;
    Etcdserverpb__RequestOp *ops[2] = {&op2, &op3};
    Etcdserverpb__TxnRequest txn = ETCDSERVERPB__TXN_REQUEST__INIT;
    txn.n_compare = 1;
    txn.compare = cmps;
    txn.n_success = 2;
    txn.success = ops;
    txn.n_failure = 1;
    txn.failure = iops;
    r[2].path = "/etcdserverpb.KV/Txn";
    r[2].op = APPLY_TXN;
    r[2].len = pack(&txn.base, r[2].pb);

    Etcdserverpb__LeaseGrantRequest lg =
        ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    lg.ttl = 60;
    lg.id = 42;
    r[3].path = "/etcdserverpb.Lease/LeaseGrant";
    r[3].op = APPLY_LEASE_GRANT;
    r[3].len = pack(&lg.base, r[3].pb);

    Etcdserverpb__CompactionRequest cr = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    cr.revision = 2;
    r[4].path = "/etcdserverpb.KV/Compact";
    r[4].op = APPLY_COMPACTION;
    r[4].len = pack(&cr.base, r[4].pb);
    return 5;
}

static void grpc_wire_seeds(const struct req *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b[1024];
        b[0] = (uint8_t)method_index(r[i].path);
        b[1] = (uint8_t)(i * 5);
        b[2] = 0;
        be32_put(b + 3, (uint32_t)r[i].len);
        memcpy(b + 7, r[i].pb, r[i].len);
        /* two messages back to back */
        b[7 + r[i].len] = 0;
        be32_put(b + 8 + r[i].len, (uint32_t)r[i].len);
        memcpy(b + 12 + r[i].len, r[i].pb, r[i].len);
        char name[32];
        snprintf(name, sizeof(name), "req%zu", i);
        seed("grpc_wire", name, b, 12 + 2 * r[i].len);
    }
}

static void apply_seeds(const struct req *r, size_t n)
{
    struct buf all, env;
    buf_init(&all, 0);
    buf_init(&env, 0);
    for (size_t i = 0; i < n; i++) {
        buf_reset(&env);
        apply_envelope(100 + i, i % 2 ? 0x1111 : 0x2222, r[i].op, r[i].pb,
                       r[i].len, &env);
        uint8_t h[3] = {(uint8_t)(i == 3 ? 0x80 : 0), (uint8_t)env.len,
                        (uint8_t)(env.len >> 8)};
        buf_append(&all, h, 3);
        buf_append(&all, env.data, env.len);
        char name[32];
        snprintf(name, sizeof(name), "op%d", (int)r[i].op);
        seed2("apply", name, h, 3, env.data, env.len);
    }
    /* a Put and a Txn that grant their lease first (lease_first) */
    for (size_t i = 0; i < n; i++) {
        if (r[i].op != APPLY_PUT && r[i].op != APPLY_TXN) {
            continue;
        }
        struct buf x;
        buf_init(&x, 0);
        buf_reset(&env);
        apply_lease_first_field(77, 30, &x);
        apply_envelope_extra(200 + i, 0x1111, r[i].op, r[i].pb, r[i].len,
                             x.data, x.len, &env);
        uint8_t h[3] = {0, (uint8_t)env.len, (uint8_t)(env.len >> 8)};
        buf_append(&all, h, 3);
        buf_append(&all, env.data, env.len);
        char name[32];
        snprintf(name, sizeof(name), "leased%d", (int)r[i].op);
        seed2("apply", name, h, 3, env.data, env.len);
        buf_free(&x);
    }
    /* an empty entry and a conf entry among them */
    uint8_t e[3] = {2, 0, 0};
    buf_append(&all, e, 3);
    seed("apply", "batch", all.data, all.len);
    buf_free(&all);
    buf_free(&env);
}

/* ---------------------------------------------------------- transport */

static void frame(struct buf *b, uint8_t type, const void *p, size_t len)
{
    uint8_t h[TRANSPORT_FRAME_HEADER_BYTES];
    tr__frame_encode(h, type, p, len);
    buf_append(b, h, sizeof(h));
    buf_append(b, p, len);
}

static void transport_seeds(void)
{
    struct buf b, m;
    buf_init(&b, 0);
    buf_init(&m, 0);
    struct raft_msg hb = {.type = RAFT_MSG_HEARTBEAT,
                          .from = 2,
                          .to = 1,
                          .term = 3,
                          .commit = 9,
                          .ctx = 5};
    raft_msg_encode(&hb, &m);
    uint8_t h[TRANSPORT_HELLO_BYTES];
    struct tr_hello hello = {.magic = TRANSPORT_MAGIC,
                             .version = TRANSPORT_VERSION,
                             .channel = TRANSPORT_CHANNEL_MSG,
                             .cluster_id = 0xC1C1C1C1ull,
                             .from = 2,
                             .to = 1};
    uint8_t side = 0;
    tr__hello_encode(h, &hello);
    buf_append(&b, &side, 1);
    buf_append(&b, h, sizeof(h));
    frame(&b, TRANSPORT_FRAME_MSG, m.data, m.len);
    frame(&b, TRANSPORT_FRAME_MSG, m.data, m.len);
    seed("transport", "in_msgs", b.data, b.len);

    buf_reset(&b);
    hello.channel = TRANSPORT_CHANNEL_SNAP;
    tr__hello_encode(h, &hello);
    buf_append(&b, &side, 1);
    buf_append(&b, h, sizeof(h));
    frame(&b, TRANSPORT_FRAME_SNAP_BEGIN, "meta", 4);
    frame(&b, TRANSPORT_FRAME_SNAP_CHUNK, "chunk-one", 9);
    frame(&b, TRANSPORT_FRAME_SNAP_CHUNK, "two", 3);
    uint8_t end[TRANSPORT_SNAP_END_BYTES];
    be64_put(end, 12);
    be32_put(end + 8, crc32c(crc32c(0, "chunk-one", 9), "two", 3));
    frame(&b, TRANSPORT_FRAME_SNAP_END, end, sizeof(end));
    seed("transport", "in_snap", b.data, b.len);

    uint8_t r[TRANSPORT_REPLY_BYTES];
    struct tr_reply reply = {.magic = TRANSPORT_MAGIC,
                             .version = TRANSPORT_VERSION,
                             .cluster_id = 0xC1C1C1C1ull,
                             .member_id = 2};
    side = 1;
    tr__reply_encode(r, &reply);
    seed2("transport", "out_accepted", &side, 1, r, sizeof(r));
    buf_reset(&b);
    reply.status = 1;
    reply.reason_len = 11;
    tr__reply_encode(r, &reply);
    buf_append(&b, &side, 1);
    buf_append(&b, r, sizeof(r));
    buf_append(&b, "not welcome", 11);
    seed("transport", "out_refused", b.data, b.len);
    buf_free(&b);
    buf_free(&m);
}

/* ------------------------------------------------- api and client port */

static void api_seeds(const struct req *r, size_t n)
{
    const struct api_method *ms[FUZZ_API_METHODS_MAX];
    size_t mc = fuzz_api_methods(ms);
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < mc; k++) {
            if (strcmp(ms[k]->path, r[i].path) == 0) {
                uint8_t b = (uint8_t)k;
                char name[32];
                snprintf(name, sizeof(name), "m%zu", k);
                seed2("api", name, &b, 1, r[i].pb, r[i].len);
            }
        }
    }
}

static void hpack_literal(struct buf *b, const char *name, const char *value)
{
    uint8_t z = 0; /* literal without indexing, new name */
    uint8_t nl = (uint8_t)strlen(name), vl = (uint8_t)strlen(value);
    buf_append(b, &z, 1);
    buf_append(b, &nl, 1);
    buf_append(b, name, nl);
    buf_append(b, &vl, 1);
    buf_append(b, value, vl);
}

static void h2_frame(struct buf *b, uint8_t type, uint8_t flags, uint32_t sid,
                     const void *p, size_t len)
{
    uint8_t h[9] = {(uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len,
                    type, flags};
    be32_put(h + 5, sid);
    buf_append(b, h, 9);
    buf_append(b, p, len);
}

static void client_port_seeds(const struct req *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct buf b, hb, msg;
        buf_init(&b, 0);
        buf_init(&hb, 0);
        buf_init(&msg, 0);
        uint8_t grpc = 1;
        buf_append(&b, &grpc, 1);
        h2_frame(&b, 4, 0, 0, NULL, 0); /* SETTINGS */
        hpack_literal(&hb, ":method", "POST");
        hpack_literal(&hb, ":scheme", "http");
        hpack_literal(&hb, ":path", r[i].path);
        hpack_literal(&hb, ":authority", "127.0.0.1");
        hpack_literal(&hb, "content-type", "application/grpc");
        hpack_literal(&hb, "te", "trailers");
        hpack_literal(&hb, "grpc-timeout", "2S");
        hpack_literal(&hb, "token", "x.1");
        h2_frame(&b, 1, 4, 1, hb.data, hb.len); /* HEADERS, END_HEADERS */
        uint8_t g[5] = {0};
        be32_put(g + 1, (uint32_t)r[i].len);
        buf_append(&msg, g, 5);
        buf_append(&msg, r[i].pb, r[i].len);
        h2_frame(&b, 0, 1, 1, msg.data, msg.len); /* DATA, END_STREAM */
        char name[32];
        snprintf(name, sizeof(name), "grpc%zu", i);
        seed("client_port", name, b.data, b.len);
        buf_free(&b);
        buf_free(&hb);
        buf_free(&msg);
    }
    static const char *http[] = {
        "POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Type: "
        "application/json\r\nContent-Length: 30\r\n\r\n"
        "{\"key\":\"Zm9v\",\"value\":\"YmFy\"}\n",
        "POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
        "chunked\r\n\r\nf\r\n{\"key\":\"Zm9v\"} \r\n0\r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /version HTTP/1.1\r\n"
        "Host: x\r\n\r\n",
        "GET /metrics HTTP/1.0\r\n\r\n",
        /* chunked bodies: several chunks with extensions and trailers,
         * then a pipelined request; malformed framing; a size past the
         * bound; codings we refuse */
        "POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
        "chunked\r\n\r\n8;a=b\r\n{\"key\":\"\r\nA\r\nZm9v\",\"val\r\n"
        "D\r\nue\":\"YmFy\"}\n\r\n0;end\r\nX-T: 1\r\n\r\n"
        "GET /version HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
        "chunked\r\n\r\n3\r\n{}\nXX0\r\n\r\n",
        "POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
        "chunked\r\n\r\nfffffffff\r\n{",
        "POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
        "gzip, chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++) {
        uint8_t z = 0;
        char name[32];
        snprintf(name, sizeof(name), "http%zu", i);
        seed2("client_port", name, &z, 1, http[i], strlen(http[i]));
    }
}

/* ------------------------------------------------------------- text */

static void text_seeds(void)
{
    static const char *json[][2] = {
        {"/etcdserverpb.KV/Put",
         "{\"key\":\"Zm9v\",\"value\":\"YmFy\",\"lease\":\"7\","
         "\"prev_kv\":true}"},
        {"/etcdserverpb.KV/Range",
         "{\"key\":\"YQ==\",\"range_end\":\"AA==\",\"limit\":10,"
         "\"sort_order\":\"DESCEND\",\"sort_target\":\"MOD\"}"},
        {"/etcdserverpb.KV/Txn",
         "{\"compare\":[{\"key\":\"Zm9v\",\"target\":\"VALUE\",\"result\":"
         "\"EQUAL\",\"value\":\"YmFy\"}],\"success\":[{\"request_put\":"
         "{\"key\":\"Zm9v\",\"value\":\"YmF6\"}}],\"failure\":[{"
         "\"request_txn\":{\"success\":[{\"request_range\":{\"key\":"
         "\"Zm9v\"}}]}}]}"},
        {"/etcdserverpb.Lease/LeaseGrant", "{\"TTL\":60,\"ID\":\"0\"}"},
        {"/etcdserverpb.Maintenance/Alarm",
         "{\"action\":\"GET\",\"memberID\":\"1\",\"alarm\":\"NOSPACE\"}"},
        {"/etcdserverpb.Cluster/MemberAdd",
         "{\"peerURLs\":[\"http://127.0.0.1:2380\"],\"isLearner\":false}"},
    };
    for (size_t i = 0; i < sizeof(json) / sizeof(json[0]); i++) {
        uint8_t k = (uint8_t)method_index(json[i][0]);
        char name[32];
        snprintf(name, sizeof(name), "m%u", k);
        seed2("http_json", name, &k, 1, json[i][1], strlen(json[i][1]));
    }
    static const char *chunked[] = {
        "3\r\nabc\r\n0\r\n\r\n",
        ("1;a=b\r\nx\r\nA;q=\"s\"\r\n0123456789\r\n0;z\r\nX-T: 1\r\n"
         "Y:2\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
        "0000000000000004 \t\r\nabcd\r\n0\r\n\r\n",
        "zz\r\n",
        "3\r\nabcXX",
        "00000000000000001\r\n",
        "ffffffffffffffff\r\n",
        "0\r\n X: 1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(chunked) / sizeof(chunked[0]); i++) {
        uint8_t pre[2] = {(uint8_t)(i * 37), 0x40}; /* piece size, 1 KiB */
        char name[32];
        snprintf(name, sizeof(name), "%zu", i);
        seed2("http_chunked", name, pre, 2, chunked[i], strlen(chunked[i]));
    }

    static const char yaml[] =
        "name: 'infra1'\n"
        "data-dir: /var/lib/cairn\n"
        "heartbeat-interval: 100\n"
        "election-timeout: 1000\n"
        "listen-peer-urls: http://127.0.0.1:2380\n"
        "listen-client-urls: http://127.0.0.1:2379,http://127.0.0.1:22379\n"
        "initial-cluster: infra1=http://127.0.0.1:2380\n"
        "initial-cluster-state: 'new'\n"
        "quota-backend-bytes: 8589934592\n"
        "auto-compaction-mode: periodic\n"
        "auto-compaction-retention: \"1h\"\n"
        "log-level: info\n"
        "client-transport-security:\n"
        "  auto-tls: false\n"
        "  cert-file: \"\"\n";
    uint8_t m = 0;
    seed2("options", "yaml", &m, 1, yaml, sizeof(yaml) - 1);
    static const char args[] =
        "--name\0n1\0--data-dir=/tmp/d\0--heartbeat-interval\0"
        "50\0"
        "--election-timeout=500\0--initial-cluster\0"
        "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2480\0"
        "--initial-cluster-state=existing\0--snapshot-count=100\0"
        "--auto-compaction-retention=2h";
    m = 1;
    seed2("options", "args", &m, 1, args, sizeof(args) - 1);
    static const char env[] =
        "CAIRN_NAME=x\0CAIRN_QUOTA_BACKEND_BYTES=1024\0"
        "CAIRN_LISTEN_CLIENT_URLS=http://[::1]:2379\0ETCDCTL_API=3\0"
        "CAIRN_AUTO_COMPACTION_MODE=revision";
    m = 2;
    seed2("options", "env", &m, 1, env, sizeof(env) - 1);
}

/* ------------------------------------------- registry and config REST */

/* fuzz_rest: byte 0 is the request's index in fuzz_rest.c's table. */
static void rest_seeds(void)
{
    static const struct {
        uint8_t k;
        const char *name, *body;
    } r[] = {
        {0, "instance_put",
         "{\"addr\":\"127.0.0.1:8080\",\"session\":\"$S\",\"zone\":\"z1\","
         "\"version\":\"v1\",\"weight\":10,\"labels\":{\"env\":\"prod\"},"
         "\"meta\":{\"k\":\"v\"}}"},
        {14, "instance_put_ttl_checks",
         "{\"host\":\"127.0.0.2\",\"port\":8081,\"ttl\":30,\"zone\":\"z2\","
         "\"expect_revision\":0,\"checks\":[{\"type\":\"tcp\",\"addr\":"
         "\"127.0.0.1:1\",\"interval\":1,\"timeout\":1,\"fail_after\":1},"
         "{\"type\":\"http\",\"url\":\"http://127.0.0.1:1/health\","
         "\"pass_after\":2},{\"type\":\"http\",\"url\":"
         "\"https://[::1]:1/h\",\"tls_skip_verify\":true}]}"},
        {1, "instance_patch",
         "{\"status\":\"draining\",\"weight\":50,\"labels\":{\"env\":"
         "\"staging\"},\"meta\":{},\"zone\":\"z3\",\"version\":\"v2\"}"},
        {1, "instance_patch_up", "{\"status\":\"up\"}"},
        {2, "session", "{\"ttl\":10}"},
        {3, "keepalive", ""},
        {4, "service_put", "{\"labels\":{\"team\":\"a\"},\"meta\":{}}"},
        {5, "config_put",
         "{\"content\":\"db:\\n  pool: 30\\n  hosts: [a, b]\\n\","
         "\"format\":\"yaml\",\"message\":\"more\",\"expect_version\":2}"},
        {5, "config_put_wait",
         "?wait_acks=0.5&timeout=1\n"
         "{\"content\":\"a: 1\\n\",\"format\":\"yaml\"}"},
        {5, "config_put_bad",
         "{\"content\":\"db: [1, 2\\n\","
         "\"format\":\"yaml\"}"},
        {6, "rollback", "{\"to\":1,\"message\":\"back\"}"},
        {7, "gray_labels",
         "{\"content\":\"db:\\n  pool: 50\\n\",\"format\":\"yaml\","
         "\"message\":\"canary\",\"rule\":{\"labels\":{\"zone\":\"z1\"}}}"},
        {7, "gray_pct",
         "{\"content\":\"x: 2\\n\",\"rule\":{\"percentage\":"
         "12.5}}"},
        {8, "promote", "{}"},
        {9, "gray_delete", ""},
        {10, "service_get", "?healthy=true&zone=z1&labels=env%3Dprod\n"},
        {11, "config_get", "?client_id=pod-1&labels=zone=z1,env=prod&raw=1\n"},
        {12, "diff", "?from=1&to=2\n"},
        {13, "prometheus", "?namespace=shop&service=cart\n"},
        {14, "instance2_put",
         "{\"addr\":\"[::1]:9000\",\"ttl\":5,\"labels\":{\"a\":\"b\"}}"},
        {15, "instance2_delete", ""},
        {16, "config_json",
         "{\"content\":\"{\\\"a\\\":[1,2,{\\\"b\\\":null}]}\","
         "\"format\":\"json\",\"secret\":true}"},
        {16, "config_props",
         "{\"content\":\"a.b=1\\\\\\n  2\\nc:3\\n# x\\n\","
         "\"format\":\"properties\"}"},
        {17, "namespace_get", "?limit=10\n"},
        {18, "session_get", ""},
        {19, "version_get", "?raw=1\n"},
    };
    for (size_t i = 0; i < sizeof(r) / sizeof(r[0]); i++) {
        seed2("rest", r[i].name, &r[i].k, 1, r[i].body, strlen(r[i].body));
    }
}

/* ------------------------------------------------------------ websocket */

/* One fuzz_ws frame: h (FIN, RSV, opcode), f (harness flags), n, bytes. */
static void ws_frame(struct buf *b, uint8_t h, uint8_t f, const char *p,
                     size_t n)
{
    uint8_t hd[4] = {h, f, (uint8_t)n, (uint8_t)(n >> 8)};
    buf_append(b, hd, 4);
    buf_append(b, p, n);
}

static void ws_text(struct buf *b, const char *p)
{
    ws_frame(b, 0x81, 0, p, strlen(p));
}

static void ws_seed(const char *name, uint8_t path, struct buf *b)
{
    seed2("ws", name, &path, 1, b->data, b->len);
    buf_reset(b);
}

static void ws_seeds(void)
{
    struct buf b;
    buf_init(&b, 0);
    /* /api/v1/stream: every op of the mux protocol (docs/registry.md). */
    ws_text(&b, "{\"id\":1,\"op\":\"subscribe\",\"kind\":\"registry\","
                "\"namespace\":\"shop\",\"service\":\"cart\"}");
    ws_text(&b, "{\"id\":2,\"op\":\"subscribe\",\"kind\":\"config\","
                "\"namespace\":\"prod\",\"app\":\"shop\",\"name\":"
                "\"app.yaml\",\"client_id\":\"pod-1\",\"labels\":{\"zone\":"
                "\"z1\"}}");
    ws_text(&b, "{\"op\":\"ack\",\"sub\":2,\"name\":\"app.yaml\","
                "\"version\":1}");
    ws_text(&b, "{\"id\":3,\"op\":\"session\",\"ttl\":10}");
    ws_text(&b, "{\"id\":4,\"op\":\"unsubscribe\",\"sub\":1}");
    ws_text(&b, "{\"id\":5,\"op\":\"keepalive\",\"session\":\"1\"}");
    ws_seed("mux_ops", 0, &b);
    ws_text(&b, "{\"id\":7,\"op\":\"subscribe\",\"kind\":\"registry\","
                "\"namespace\":\"shop\",\"since\":1}");
    ws_text(&b, "{\"id\":8,\"op\":\"subscribe\",\"kind\":\"config\","
                "\"namespace\":\"prod\",\"labels\":\"zone=z1,env=p\","
                "\"since\":2,\"token\":\"x\"}");
    ws_text(&b, "{\"id\":\"s\",\"op\":\"ack\",\"sub\":8,\"app\":\"shop\","
                "\"name\":\"app.yaml\",\"version\":9}");
    ws_text(&b, "{\"id\":7,\"op\":\"subscribe\",\"kind\":\"registry\","
                "\"namespace\":\"shop\"}");
    ws_text(&b, "{\"id\":9,\"op\":\"unsubscribe\",\"sub\":99}");
    ws_text(&b, "[1,2]");
    ws_text(&b, "{\"id\":1,");
    ws_seed("mux_since_errors", 0, &b);
    /* A subscribe fragmented over three frames with a ping between. */
    static const char sub[] = "{\"id\":1,\"op\":\"subscribe\",\"kind\":"
                              "\"registry\",\"namespace\":\"shop\"}";
    ws_frame(&b, 0x01, 0, sub, 10);
    ws_frame(&b, 0x89, 0, "ping", 4);
    ws_frame(&b, 0x00, 4, sub + 10, 20);
    ws_frame(&b, 0x80, 8, sub + 30, sizeof(sub) - 1 - 30);
    ws_frame(&b, 0x8a, 0, "", 0);
    ws_frame(&b, 0x88, 0,
             "\x03\xe8"
             "bye",
             5);
    ws_seed("mux_fragmented", 0, &b);
    /* Protocol errors: a length past any bound, a control frame too long,
     * an unmasked frame, RSV bits, a bad opcode. */
    ws_frame(&b, 0x81, 2, "{}", 2);
    ws_seed("oversize", 0, &b);
    char big[200];
    memset(big, 'p', sizeof(big));
    ws_frame(&b, 0x89, 0, big, sizeof(big));
    ws_seed("control_too_long", 0, &b);
    ws_frame(&b, 0x81, 1, "{\"id\":1}", 8);
    ws_seed("unmasked", 0, &b);
    ws_frame(&b, 0xc1, 0, "{}", 2);
    ws_frame(&b, 0x83, 0, "{}", 2);
    ws_seed("rsv_opcode", 0, &b);
    ws_text(&b, "{\"s\":\"\xc3\x28\"}");
    ws_seed("bad_utf8", 0, &b);
    /* The single-purpose streams: an ack on the config watch, anything on
     * the registry watch, etcd's watch requests on /ws/watch. */
    ws_text(&b, "{\"ack\":{\"app\":\"shop\",\"name\":\"app.yaml\","
                "\"version\":1}}");
    ws_text(&b, "{\"ack\":{\"name\":\"x\",\"version\":7}}");
    ws_seed("config_ack", 2, &b);
    ws_text(&b, "{\"op\":\"subscribe\"}");
    ws_frame(&b, 0x82, 0, "\x00\x01", 2);
    ws_seed("registry_watch", 1, &b);
    ws_text(&b, "{\"create_request\":{\"key\":\"YQ==\",\"range_end\":"
                "\"AA==\",\"start_revision\":1,\"progress_notify\":true,"
                "\"prev_kv\":true,\"watch_id\":3}}");
    ws_text(&b, "{\"progress_request\":{}}");
    ws_text(&b, "{\"cancel_request\":{\"watch_id\":3}}");
    ws_seed("etcd_watch", 3, &b);
    /* The server with auth (byte 0 bits 3-4: 1 no token, 2 ro's, 3
     * root's; "$R" and "$U" are root's and ro's tokens in a payload). */
    ws_text(&b, "{\"id\":1,\"op\":\"subscribe\",\"kind\":\"registry\","
                "\"namespace\":\"shop\",\"token\":\"$U\",\"since\":1}");
    ws_text(&b, "{\"id\":2,\"op\":\"subscribe\",\"kind\":\"config\","
                "\"namespace\":\"prod\",\"token\":\"$U\"}");
    ws_text(&b, "{\"id\":3,\"op\":\"session\",\"ttl\":5,\"token\":\"$U\"}");
    ws_text(&b, "{\"id\":4,\"op\":\"subscribe\",\"kind\":\"config\","
                "\"namespace\":\"prod\",\"app\":\"shop\"}");
    ws_text(&b, "{\"id\":5,\"op\":\"keepalive\",\"session\":\"1\","
                "\"token\":\"bad\"}");
    ws_seed("auth_mux_root", 3 << 3, &b);
    ws_text(&b, "{\"id\":1,\"op\":\"subscribe\",\"kind\":\"registry\","
                "\"namespace\":\"shop\"}");
    ws_text(&b, "{\"id\":2,\"op\":\"subscribe\",\"kind\":\"registry\","
                "\"namespace\":\"shop\",\"token\":\"$R\"}");
    ws_text(&b, "{\"id\":3,\"op\":\"unsubscribe\",\"sub\":2}");
    ws_seed("auth_mux_no_token", 1 << 3, &b);
    ws_text(&b, "{\"ack\":{\"app\":\"shop\",\"name\":\"app.yaml\","
                "\"version\":1}}");
    ws_seed("auth_config_watch_ro", 2 | (2 << 3), &b);
    ws_text(&b, "{}");
    ws_seed("auth_registry_watch_ro", 1 | (2 << 3), &b);
    ws_text(&b, "{\"create_request\":{\"key\":\"L2NvbmZpZy8=\","
                "\"range_end\":\"L2NvbmZpZzA=\"}}");
    ws_text(&b, "{\"create_request\":{\"key\":\"L3JlZ2lzdHJ5Lw==\","
                "\"range_end\":\"L3JlZ2lzdHJ5MA==\",\"start_revision\":1}}");
    ws_seed("auth_etcd_watch_ro", 3 | (2 << 3), &b);
    /* Raw mode: bytes as they are after the upgrade (a masked text frame
     * with a 64-bit length that is too short, then junk). */
    static const uint8_t raw[] = {0x81, 0xff, 0, 0, 0, 0,   0,   0,    0,
                                  2,    1,    2, 3, 4, 'z', 'z', 0xff, 0x00};
    uint8_t rp = 4;
    seed2("ws", "raw", &rp, 1, raw, sizeof(raw));
    buf_free(&b);
}

/* ------------------------------------------------------------------ tls */

/* The first flight of an OpenSSL client (its ClientHello records), made
 * on memory BIOs: what a real client sends first. */
static size_t client_hello(int min_v, int max_v, const char *alpn,
                           size_t alpn_len, const char *sni, uint8_t *out,
                           size_t cap)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(c, min_v);
    SSL_CTX_set_max_proto_version(c, max_v);
    SSL *ssl = SSL_new(c);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    SSL_set_bio(ssl, rb, wb);
    if (alpn != NULL) {
        SSL_set_alpn_protos(ssl, (const unsigned char *)alpn,
                            (unsigned)alpn_len);
    }
    if (sni != NULL) {
        SSL_set_tlsext_host_name(ssl, sni);
    }
    SSL_set_connect_state(ssl);
    if (SSL_do_handshake(ssl) == 1) {
        abort(); /* it cannot finish without a server */
    }
    int n = BIO_read(wb, out, (int)cap);
    if (n <= 0) {
        abort();
    }
    SSL_free(ssl);
    SSL_CTX_free(c);
    return (size_t)n;
}

static void tls_seeds(void)
{
    static uint8_t b[8192];
    uint8_t raw = 0;
    size_t n = client_hello(TLS1_3_VERSION, TLS1_3_VERSION, "\x02h2", 3,
                            "localhost", b, sizeof(b));
    seed2("tls", "hello13_h2", &raw, 1, b, n);
    n = client_hello(TLS1_2_VERSION, TLS1_2_VERSION, "\x08http/1.1", 9, NULL, b,
                     sizeof(b));
    seed2("tls", "hello12_http1", &raw, 1, b, n);
    n = client_hello(TLS1_2_VERSION, TLS1_3_VERSION, "\x02h2\x08http/1.1", 12,
                     "127.0.0.1", b, sizeof(b));
    seed2("tls", "hello_both", &raw, 1, b, n);
    /* ALPN offering neither protocol we speak. */
    n = client_hello(TLS1_2_VERSION, TLS1_3_VERSION,
                     "\x08grpc-exp\x03"
                     "abc",
                     13, NULL, b, sizeof(b));
    seed2("tls", "hello_alpn_odd", &raw, 1, b, n);
    /* A hello cut short, and plain HTTP on the TLS port. */
    seed2("tls", "hello_cut", &raw, 1, b, n / 2);
    static const char plain[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    seed2("tls", "plain_http", &raw, 1, plain, sizeof(plain) - 1);

    /* After a real handshake (bit 0), ALPN bits 1-2, inside TLS. */
    static const char http[] =
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
        "PUT /api/v1/config/prod/shop/t.json HTTP/1.1\r\nHost: x\r\n"
        "Content-Length: 36\r\n\r\n{\"content\":\"{}\",\"format\":\"json\"}  ";
    uint8_t mode = 1 | (1 << 1);
    seed2("tls", "in_http1", &mode, 1, http, sizeof(http) - 1);
    mode = 1 | (1 << 1) | 16; /* a client certificate the server refuses */
    seed2("tls", "in_http1_bad_cert", &mode, 1, http, sizeof(http) - 1);
    static const char ws[] =
        "GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    mode = 1; /* no ALPN: HTTP/1.1 */
    seed2("tls", "in_ws_upgrade", &mode, 1, ws, sizeof(ws) - 1);
    struct buf h2;
    buf_init(&h2, 0);
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    buf_append(&h2, preface, sizeof(preface) - 1);
    h2_frame(&h2, 4, 0, 0, NULL, 0);               /* SETTINGS */
    h2_frame(&h2, 6, 0, 0, "12345678", 8);         /* PING */
    h2_frame(&h2, 7, 0, 0, "\0\0\0\0\0\0\0\0", 8); /* GOAWAY */
    mode = 1 | (2 << 1);
    seed2("tls", "in_h2", &mode, 1, h2.data, h2.len);
    buf_free(&h2);
    /* Raw bytes after the handshake: a forged application record and a
     * fatal alert. */
    static const uint8_t forged[] = {0x17, 0x03, 0x03, 0x00, 0x05, 1,
                                     2,    3,    4,    5,    0x15, 0x03,
                                     0x03, 0x00, 0x02, 0x02, 0x28};
    mode = 1 | 8;
    seed2("tls", "after_forged", &mode, 1, forged, sizeof(forged));
}

int main(int argc, char **argv)
{
    out_root = argc > 1 ? argv[1] : "tests/fuzz/corpus";
    struct req r[8];
    size_t n = sample_requests(r);
    raft_seeds();
    raft_step_seeds();
    wal_seeds();
    grpc_wire_seeds(r, n);
    apply_seeds(r, n);
    text_seeds();
    transport_seeds();
    api_seeds(r, n);
    client_port_seeds(r, n);
    rest_seeds();
    ws_seeds();
    tls_seeds();
    printf("seeds written under %s\n", out_root);
    return 0;
}

/*
 * sim_fsm.c - the members' state machines.
 *
 * FSM_KV (the default) is the real thing: one MVCC store (consensus/kv on
 * LMDB, KV_SYNC_NONE, in a temp dir on /dev/shm) per member, written only
 * through consensus/apply's apply_entries() from committed entries that
 * carry apply_envelope()s around protobuf-c encoded etcd requests; reads go
 * through apply_range() on a read handle, and answers are decoded from the
 * etcd response bytes apply produced. Raft snapshots are kv_snapshot_write()
 * copies carried as snapshot data and installed with kv_snapshot_install().
 * A simulated crash closes the store and reopens it at restart (LMDB keeps
 * every committed transaction across a process crash).
 *
 * FSM_MEM is a register per key in memory, lost at a crash and rebuilt from
 * the durable snapshot and the log: quick, and independent of the store,
 * for telling a Raft bug from a store bug.
 */
#include <stdlib.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "proto/rpc.pb-c.h"
#include "tests/sim/sim.h"

static void *pb_alloc(void *ctx, size_t n)
{
    (void)ctx;
    return mem_alloc(n);
}

static void pb_free(void *ctx, void *p)
{
    (void)ctx;
    mem_free(p);
}

static ProtobufCAllocator pb_alloc_hooks = {pb_alloc, pb_free, NULL};

/* ------------------------------------------------------------ values */

#define VAL_LEN 17 /* "v" + 16 hex digits */

static void val_fmt(uint64_t v, char out[VAL_LEN + 1])
{
    snprintf(out, VAL_LEN + 1, "v%016llx", (unsigned long long)v);
}

static uint64_t val_parse(const uint8_t *p, size_t len)
{
    if (len != VAL_LEN || p[0] != 'v') {
        return UINT64_MAX; /* nothing we wrote */
    }
    uint64_t v = 0;
    for (size_t i = 1; i < len; i++) {
        uint8_t c = p[i];
        uint64_t d = c >= '0' && c <= '9'   ? (uint64_t)(c - '0')
                     : c >= 'a' && c <= 'f' ? (uint64_t)(c - 'a' + 10)
                                            : 16;
        if (d == 16) {
            return UINT64_MAX;
        }
        v = v << 4 | d;
    }
    return v;
}

static void key_fmt(uint32_t k, char out[4])
{
    ASSERT(k < 10);
    out[0] = 'k';
    out[1] = (char)('0' + k);
    out[2] = '\0';
}

/* ------------------------------------------------------- FSM_MEM */

#define MEM_CMD_LEN 27

static int mem_encode(uint64_t req_id, const struct sim_op *op, struct buf *out)
{
    uint8_t b[MEM_CMD_LEN];
    b[0] = 'M';
    b[1] = op->type;
    b[2] = op->key;
    be64_put(b + 3, req_id);
    be64_put(b + 11, op->value);
    be64_put(b + 19, op->expected);
    return buf_append(out, b, sizeof(b));
}

static void mem_apply_one(struct sim *s, struct sim_member *m,
                          const struct raft_entry *e)
{
    if (e->type != RAFT_ENTRY_NORMAL) {
        return;
    }
    if (e->len != MEM_CMD_LEN || e->data[0] != 'M' ||
        e->data[2] >= SIM_KEYS_MAX) {
        sim_violation(s, "member %lu: entry %lu is not a command",
                      (unsigned long)m->id, (unsigned long)e->index);
        return;
    }
    uint8_t type = e->data[1];
    uint64_t *v = &m->fsm.vals[e->data[2]];
    uint64_t req_id = be64_get(e->data + 3);
    uint64_t value = be64_get(e->data + 11);
    uint64_t expected = be64_get(e->data + 19);
    uint64_t result = 0;
    switch (type) {
    case OP_PUT:
        *v = value;
        break;
    case OP_DEL:
        result = *v != 0;
        *v = 0;
        break;
    case OP_CAS:
        result = *v == expected;
        if (result) {
            *v = value;
        }
        break;
    default:
        sim_violation(s, "member %lu: entry %lu has op %u",
                      (unsigned long)m->id, (unsigned long)e->index, type);
        return;
    }
    member_answer(s, m, req_id, OUT_OK, result);
}

/* ------------------------------------------------------- FSM_KV */

static int kv_dir_make(struct sim *s, struct sim_member *m)
{
    snprintf(m->fsm.dir, sizeof(m->fsm.dir), "%s/m%u", s->opts.shm_dir,
             m->slot);
    if (mkdir(m->fsm.dir, 0700) < 0 && errno != EEXIST) {
        return -errno;
    }
    return 0;
}

static void kv_dir_remove(struct sim_member *m)
{
    static const char *const files[] = {"data.mdb", "lock.mdb", "LOCK",
                                        "snap.out", "snap.in",  NULL};
    char path[192];
    for (size_t i = 0; files[i] != NULL; i++) {
        snprintf(path, sizeof(path), "%s/%s", m->fsm.dir, files[i]);
        unlink(path);
    }
    rmdir(m->fsm.dir);
}

static int kv_start(struct sim *s, struct sim_member *m)
{
    struct kv_options o;
    memset(&o, 0, sizeof(o));
    o.sync = KV_SYNC_NONE;
    o.quota_bytes = 256ULL << 20;
    /* the store's MDB_WRITEMAP mode (cairnd --store-writemap) */
    o.writemap = getenv("CAIRN_KV_WRITEMAP") != NULL;
    int rc = kv_open(m->fsm.dir, &o, &m->fsm.kv);
    if (rc < 0) {
        return rc;
    }
    struct apply_config ac;
    memset(&ac, 0, sizeof(ac));
    ac.kv = m->fsm.kv;
    ac.cluster_id = 0xc1;
    ac.member_id = m->id;
    ac.min_lease_ttl_s = wl_min_lease_ttl(s);
    rc = apply_init(&m->fsm.ap, &ac);
    if (rc < 0) {
        kv_close(m->fsm.kv);
        m->fsm.kv = NULL;
        return rc;
    }
    m->fsm.ap_open = true;
    kv_applied(m->fsm.kv, &m->fsm.applied, &m->fsm.applied_term);
    return wl_member_open(s, m);
}

static void kv_stop(struct sim_member *m)
{
    if (m->fsm.ap_open) {
        apply_close(&m->fsm.ap);
        m->fsm.ap_open = false;
    }
    if (m->fsm.kv != NULL) {
        kv_close(m->fsm.kv);
        m->fsm.kv = NULL;
    }
}

struct kv_hook_ctx {
    struct sim *s;
    struct sim_member *m;
};

static void kv_on_result(void *ctx, const struct apply_result *res)
{
    struct kv_hook_ctx *h = ctx;
    if (wl_result(h->s, h->m, res)) {
        return; /* a watcher's or a lease's request (sim_ref.c) */
    }
    if (res->err == ERR_PROPOSAL_DROPPED) {
        /* A repeated or overtaken forwarded proposal: apply refused it on
         * every member. A repeat whose first copy ran under a snapshot
         * this member installed was answered at the install
         * (answer_swallowed), so this one never took effect (apply.h,
         * exactly once). */
        member_answer(h->s, h->m, res->id, OUT_FAIL, 0);
        return;
    }
    if (res->err != 0) {
        /* Every member reaches the same verdict; the request had no
         * effect. Nothing in our workload should fail. */
        sim_violation(h->s, "member %lu: request %lu failed in apply: %s",
                      (unsigned long)h->m->id, (unsigned long)res->id,
                      err_str(res->err));
        member_answer(h->s, h->m, res->id, OUT_FAIL, 0);
        return;
    }
    uint64_t result = 0;
    if (res->op == APPLY_DELETE_RANGE) {
        Etcdserverpb__DeleteRangeResponse *r =
            etcdserverpb__delete_range_response__unpack(
                &pb_alloc_hooks, res->resp_len, res->resp);
        if (r == NULL) {
            sim_violation(h->s, "DeleteRangeResponse does not decode");
            return;
        }
        result = (uint64_t)r->deleted;
        etcdserverpb__delete_range_response__free_unpacked(r, &pb_alloc_hooks);
    } else if (res->op == APPLY_TXN) {
        Etcdserverpb__TxnResponse *r = etcdserverpb__txn_response__unpack(
            &pb_alloc_hooks, res->resp_len, res->resp);
        if (r == NULL) {
            sim_violation(h->s, "TxnResponse does not decode");
            return;
        }
        result = r->succeeded ? 1 : 0;
        etcdserverpb__txn_response__free_unpacked(r, &pb_alloc_hooks);
    }
    member_answer(h->s, h->m, res->id, OUT_OK, result);
}

/* Store events: each put's effect lands once (check_put_effect), and
 * watchers and lease timers see them (sim_ref.c). */
static int kv_on_event(void *ctx, const struct kv_event *ev)
{
    struct kv_hook_ctx *h = ctx;
    if (ev->type == KV_EVENT_PUT) {
        uint64_t v = val_parse(ev->kv.value, ev->kv.value_len);
        if (v != UINT64_MAX) {
            check_put_effect(h->s, h->m, v, ev->kv.mod_revision);
        }
    }
    return wl_on_event(h->s, h->m, ev);
}

static void kv_on_lease(void *ctx, int64_t id, int64_t ttl, bool checkpoint)
{
    struct kv_hook_ctx *h = ctx;
    wl_on_lease(h->s, h->m, id, ttl, checkpoint);
}

static int kv_encode(struct sim *s, struct sim_member *m, uint64_t req_id,
                     const struct sim_op *op, struct buf *out)
{
    char key[4];
    char val[VAL_LEN + 1];
    char exp[VAL_LEN + 1];
    key_fmt(op->key, key);
    val_fmt(op->value, val);
    val_fmt(op->expected, exp);
    ProtobufCBinaryData kb = {strlen(key), (uint8_t *)key};
    ProtobufCBinaryData vb = {VAL_LEN, (uint8_t *)val};
    Etcdserverpb__PutRequest put = ETCDSERVERPB__PUT_REQUEST__INIT;
    put.key = kb;
    put.value = vb;
    Etcdserverpb__DeleteRangeRequest del =
        ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    del.key = kb;
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    Etcdserverpb__Compare *cmps[1] = {&cmp};
    Etcdserverpb__RequestOp rop = ETCDSERVERPB__REQUEST_OP__INIT;
    Etcdserverpb__RequestOp *rops[1] = {&rop};
    Etcdserverpb__TxnRequest txn = ETCDSERVERPB__TXN_REQUEST__INIT;
    const ProtobufCMessage *msg;
    enum apply_op aop;
    switch (op->type) {
    case OP_PUT:
        msg = &put.base;
        aop = APPLY_PUT;
        break;
    case OP_DEL:
        msg = &del.base;
        aop = APPLY_DELETE_RANGE;
        break;
    case OP_CAS:
        cmp.key = kb;
        if (op->expected == 0) {
            /* "absent" is create_revision == 0, etcd's idiom */
            cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
            cmp.target_union_case =
                ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
            cmp.create_revision = 0;
        } else {
            cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
            cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
            cmp.value.len = VAL_LEN;
            cmp.value.data = (uint8_t *)exp;
        }
        cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
        rop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
        rop.request_put = &put;
        txn.n_compare = 1;
        txn.compare = cmps;
        txn.n_success = 1;
        txn.success = rops;
        msg = &txn.base;
        aop = APPLY_TXN;
        break;
    default:
        return ERR_INVALID;
    }
    struct buf *tmp = &s->scratch;
    buf_reset(tmp);
    size_t n = protobuf_c_message_get_packed_size(msg);
    int rc = buf_reserve(tmp, n);
    if (rc < 0) {
        return rc;
    }
    tmp->len = protobuf_c_message_pack(msg, tmp->data);
    ASSERT(tmp->len == n);
    return apply_envelope(req_id, m->id, aop, tmp->data, tmp->len, out);
}

static int kv_read_key(struct sim *s, struct sim_member *m, uint32_t key,
                       uint64_t *val)
{
    char k[4];
    key_fmt(key, k);
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key.len = strlen(k);
    req.key.data = (uint8_t *)k;
    struct kv_read *rd;
    int rc = kv_read_begin(m->fsm.kv, &rd);
    if (rc < 0) {
        return rc;
    }
    buf_reset(&s->scratch);
    rc = apply_range(&m->fsm.ap, rd, &req, 0, &s->scratch);
    kv_read_end(rd);
    if (rc < 0) {
        return rc;
    }
    Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(
        &pb_alloc_hooks, s->scratch.len, s->scratch.data);
    if (r == NULL) {
        return ERR_CORRUPT;
    }
    *val = 0;
    if (r->n_kvs > 1 || r->count != (int64_t)r->n_kvs) {
        rc = ERR_CORRUPT;
    } else if (r->n_kvs == 1) {
        *val = val_parse(r->kvs[0]->value.data, r->kvs[0]->value.len);
        if (*val == UINT64_MAX) {
            rc = ERR_CORRUPT;
        }
    }
    etcdserverpb__range_response__free_unpacked(r, &pb_alloc_hooks);
    return rc;
}

static int file_read_all(const char *path, struct buf *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    int rc = buf_reserve(out, (size_t)st.st_size);
    if (rc == 0) {
        ssize_t n = pread(fd, out->data + out->len, (size_t)st.st_size, 0);
        rc = n == st.st_size ? 0 : -EIO;
        if (rc == 0) {
            out->len += (size_t)n;
        }
    }
    close(fd);
    return rc;
}

static int file_write_all(const char *path, const uint8_t *p, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n = write(fd, p, len);
    int rc = n == (ssize_t)len ? 0 : -EIO;
    close(fd);
    return rc;
}

/* ------------------------------------------------------------ API */

int fsm_open(struct sim *s, struct sim_member *m)
{
    if (s->opts.fsm == FSM_MEM) {
        return 0; /* the registers were reset at the crash */
    }
    if (m->fsm.dir[0] == '\0') {
        int rc = kv_dir_make(s, m);
        if (rc < 0) {
            return rc;
        }
    }
    return kv_start(s, m);
}

void fsm_close(struct sim *s, struct sim_member *m, bool destroy)
{
    if (m->fsm.kv != NULL) {
        wl_member_down(s, m);
    }
    kv_stop(m);
    if (destroy && m->fsm.dir[0] != '\0') {
        kv_dir_remove(m);
        m->fsm.dir[0] = '\0';
    }
}

void fsm_crash(struct sim *s, struct sim_member *m)
{
    if (s->opts.fsm == FSM_MEM) {
        memset(m->fsm.vals, 0, sizeof(m->fsm.vals));
        m->fsm.applied = 0;
        m->fsm.applied_term = 0;
        return;
    }
    wl_member_down(s, m);
    kv_stop(m);
}

int fsm_apply(struct sim *s, struct sim_member *m, const struct raft_entry *e,
              size_t n)
{
    ASSERT(n > 0);
    if (s->opts.fsm == FSM_MEM) {
        for (size_t i = 0; i < n; i++) {
            if (e[i].index <= m->fsm.applied) {
                continue;
            }
            if (e[i].index != m->fsm.applied + 1) {
                sim_violation(
                    s, "member %lu: apply gap %lu -> %lu", (unsigned long)m->id,
                    (unsigned long)m->fsm.applied, (unsigned long)e[i].index);
            }
            mem_apply_one(s, m, &e[i]);
            m->fsm.applied = e[i].index;
            m->fsm.applied_term = e[i].term;
        }
        return 0;
    }
    if (e[0].index > m->fsm.applied + 1) {
        /* Raft resumes after what it was told is applied; a store behind
         * that (say, behind a snapshot it never installed) misses the
         * entries in between for good. */
        sim_violation(s,
                      "member %lu: apply gap: the store is at %lu, the "
                      "next entry to apply is %lu",
                      (unsigned long)m->id, (unsigned long)m->fsm.applied,
                      (unsigned long)e[0].index);
    }
    struct kv_hook_ctx h = {s, m};
    struct apply_hooks hooks;
    memset(&hooks, 0, sizeof(hooks));
    hooks.ctx = &h;
    hooks.on_result = kv_on_result;
    hooks.on_event = kv_on_event;
    hooks.events_prev_some = !wl_events_prev_all(s, m);
    hooks.on_lease = kv_on_lease;
    wl_apply_begin(s, m, e, n);
    int rc = apply_entries(&m->fsm.ap, e, n, e[n - 1].term, &hooks);
    wl_apply_end(s, m);
    if (rc < 0) {
        return rc;
    }
    kv_applied(m->fsm.kv, &m->fsm.applied, &m->fsm.applied_term);
    if (m->fsm.applied < e[n - 1].index) {
        sim_violation(s, "member %lu: store applied %lu after apply to %lu",
                      (unsigned long)m->id, (unsigned long)m->fsm.applied,
                      (unsigned long)e[n - 1].index);
    }
    return 0;
}

int fsm_read(struct sim *s, struct sim_member *m, uint32_t key, uint64_t *val)
{
    ASSERT(key < SIM_KEYS_MAX);
    if (s->opts.fsm == FSM_MEM) {
        *val = m->fsm.vals[key];
        return 0;
    }
    return kv_read_key(s, m, key, val);
}

int fsm_snapshot(struct sim *s, struct sim_member *m, struct buf *out)
{
    if (s->opts.fsm == FSM_MEM) {
        uint8_t b[16 + 8 * SIM_KEYS_MAX];
        be64_put(b, m->fsm.applied);
        be64_put(b + 8, m->fsm.applied_term);
        for (uint32_t k = 0; k < SIM_KEYS_MAX; k++) {
            be64_put(b + 16 + 8 * k, m->fsm.vals[k]);
        }
        return buf_append(out, b, sizeof(b));
    }
    char path[192];
    snprintf(path, sizeof(path), "%s/snap.out", m->fsm.dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        return -errno;
    }
    int rc = kv_snapshot_write(m->fsm.kv, fd);
    close(fd);
    if (rc == 0) {
        rc = file_read_all(path, out);
    }
    unlink(path);
    return rc;
}

int fsm_restore(struct sim *s, struct sim_member *m, const uint8_t *data,
                size_t len, uint64_t index, uint64_t term)
{
    if (s->opts.fsm == FSM_MEM) {
        if (len != 16 + 8 * SIM_KEYS_MAX || be64_get(data) != index) {
            return ERR_CORRUPT;
        }
        (void)term;
        m->fsm.applied = index;
        m->fsm.applied_term = be64_get(data + 8);
        for (uint32_t k = 0; k < SIM_KEYS_MAX; k++) {
            m->fsm.vals[k] = be64_get(data + 16 + 8 * k);
        }
        return 0;
    }
    char path[192];
    snprintf(path, sizeof(path), "%s/snap.in", m->fsm.dir);
    int rc = file_write_all(path, data, len);
    if (rc < 0) {
        return rc;
    }
    apply_close(&m->fsm.ap);
    m->fsm.ap_open = false;
    rc = kv_snapshot_install(m->fsm.kv, path);
    unlink(path);
    if (rc < 0) {
        return rc;
    }
    struct apply_config ac;
    memset(&ac, 0, sizeof(ac));
    ac.kv = m->fsm.kv;
    ac.cluster_id = 0xc1;
    ac.member_id = m->id;
    ac.min_lease_ttl_s = wl_min_lease_ttl(s);
    rc = apply_init(&m->fsm.ap, &ac);
    if (rc < 0) {
        return rc;
    }
    m->fsm.ap_open = true;
    kv_applied(m->fsm.kv, &m->fsm.applied, &m->fsm.applied_term);
    rc = wl_member_restored(s, m);
    if (rc < 0) {
        return rc;
    }
    if (m->fsm.applied != index) {
        sim_violation(s,
                      "member %lu: snapshot for %lu installed a store at "
                      "applied %lu",
                      (unsigned long)m->id, (unsigned long)index,
                      (unsigned long)m->fsm.applied);
    }
    return 0;
}

int fsm_encode_op(struct sim *s, struct sim_member *m, uint64_t req_id,
                  const struct sim_op *op, struct buf *out)
{
    if (s->opts.fsm == FSM_MEM) {
        return mem_encode(req_id, op, out);
    }
    return kv_encode(s, m, req_id, op, out);
}

uint64_t fsm_last_id(struct sim *s, struct sim_member *m)
{
    if (s->opts.fsm == FSM_MEM || !m->fsm.ap_open) {
        return 0;
    }
    return apply_last_id(&m->fsm.ap, m->id);
}

/* A digest of the replicated state, equal on members at the same applied
 * index: the registers, or the store's HashKV and revision. */
uint64_t fsm_digest(struct sim *s, struct sim_member *m)
{
    uint64_t h = prng_mix(m->fsm.applied);
    if (s->opts.fsm == FSM_MEM) {
        for (uint32_t k = 0; k < SIM_KEYS_MAX; k++) {
            h = prng_mix(h ^ m->fsm.vals[k]);
        }
        return h;
    }
    struct kv_read *rd;
    int rc = kv_read_begin(m->fsm.kv, &rd);
    if (rc < 0) {
        return 0;
    }
    uint32_t hash = 0;
    int64_t crev = 0;
    int64_t hrev = 0;
    rc = kv_hash(rd, 0, &hash, &crev, &hrev);
    kv_read_end(rd);
    if (rc < 0) {
        return 0;
    }
    h = prng_mix(h ^ hash);
    h = prng_mix(h ^ (uint64_t)hrev);
    return prng_mix(h ^ (uint64_t)crev);
}

/*
 * fuzz_raft_step.c - the Raft core (consensus/raft) stepping decoded peer
 * messages whose fields hold anything: a peer's bytes pass the codec
 * (fuzz_raft_codec) and then reach raft_step, as in consensus/node.
 *
 * Goal: raft.h promises "stale, unknown-sender and nonsense messages are
 * ignored (return 0)": no assertion, no crash, whatever the terms, indexes,
 * commits, entries or snapshots say, mixed with ticks, proposals and
 * campaigns; and the ready batches the core hands out keep the driver's
 * contract (they append to the storage without a gap, snapshots install).
 *
 * Input: a list of operations [op][len lo][len hi][len bytes]:
 *   op % 4 == 0  a peer message: the bytes with their CRC set right, decoded
 *                and stepped when they decode (any sender, like the node:
 *                from must be a member the transport knows, 2..4 here);
 *   op % 4 == 1  (op >> 2) + 1 ticks;
 *   op % 4 == 2  a proposal of the bytes;
 *   op % 4 == 3  campaign (op bit 2) or a read index (else).
 * Node 1 of voters 1, 2, 3 and learner 4; in-memory storage; after each
 * operation every ready batch is persisted, applied and advanced.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/crc32c.h"
#include "base/err.h"
#include "consensus/raft/raft.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 8192
#define OPS_MAX      64

static void drain(struct raft *r, struct raft_memstorage *ms)
{
    for (int k = 0; k < 16 && raft_has_ready(r); k++) {
        struct raft_ready rd;
        int rc = raft_ready(r, &rd);
        FUZZ_CHECK(rc == 0 || rc == -ENOMEM);
        if (rc != 0) {
            return;
        }
        for (size_t i = 0; i < rd.msgs_count; i++) {
            if (rd.msgs[i].type == RAFT_MSG_SNAP) {
                raft_report_snapshot(r, rd.msgs[i].to, true);
            }
        }
        if (rd.snapshot != NULL) {
            rc = raft_memstorage_apply_snapshot(ms, rd.snapshot);
            FUZZ_CHECK(rc == 0);
            raft_snapshot_installed(r, rd.snapshot->meta.index);
        }
        if (rd.entries_count > 0) {
            rc = raft_memstorage_append(ms, rd.entries, rd.entries_count);
            FUZZ_CHECK(rc == 0);
        }
        if (rd.hard_changed) {
            raft_memstorage_set_hard_state(ms, &rd.hard);
        }
        if (rd.entries_count > 0) {
            const struct raft_entry *last = &rd.entries[rd.entries_count - 1];
            raft_persisted(r, last->index, last->term);
        }
        if (rd.committed_count > 0) {
            uint64_t prev = rd.committed[0].index;
            for (size_t i = 1; i < rd.committed_count; i++) {
                FUZZ_CHECK(rd.committed[i].index == prev + 1);
                prev = rd.committed[i].index;
            }
            raft_applied(r, prev);
        }
        raft_advance(r, &rd);
    }
}

static void step_bytes(struct raft *r, const uint8_t *data, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    memcpy(p, data, len);
    if (len >= RAFT_MSG_HEADER_BYTES + 4) {
        be32_put(p + len - 4, crc32c(0, p, len - 4));
    }
    struct raft_msg m;
    if (raft_msg_decode(p, len, 0, &m) == 0) {
        /* What the transport and node let through: a known member,
         * speaking for itself, addressed to us. */
        m.from = 2 + m.from % 3;
        m.to = 1;
        int rc = raft_step(r, &m);
        FUZZ_CHECK(rc == 0 || rc == -ENOMEM);
        raft_msg_free_decoded(&m);
    }
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct raft_memstorage ms;
    struct raft_config cfg;
    struct raft r;
    raft_memstorage_init(&ms);
    raft_config_default(&cfg, 1);
    cfg.seed = 42;
    cfg.storage = raft_memstorage_storage(&ms);
    cfg.bootstrap.voters_count = 3;
    cfg.bootstrap.voters[0] = 1;
    cfg.bootstrap.voters[1] = 2;
    cfg.bootstrap.voters[2] = 3;
    cfg.bootstrap.learners_count = 1;
    cfg.bootstrap.learners[0] = 4;
    FUZZ_CHECK(raft_init(&r, &cfg) == 0);
    size_t off = 0;
    for (int ops = 0; ops < OPS_MAX && off + 3 <= size; ops++) {
        uint8_t op = data[off];
        size_t len = (size_t)data[off + 1] | (size_t)data[off + 2] << 8;
        off += 3;
        if (len > size - off) {
            len = size - off;
        }
        const uint8_t *p = data + off;
        off += len;
        int rc = 0;
        switch (op % 4) {
        case 0:
            step_bytes(&r, p, len);
            break;
        case 1:
            for (int t = 0; t <= (op >> 2); t++) {
                rc = raft_tick(&r);
                FUZZ_CHECK(rc == 0 || rc == -ENOMEM);
            }
            break;
        case 2:
            (void)raft_propose(&r, RAFT_ENTRY_NORMAL, p, len, NULL);
            break;
        default:
            if (op & 4) {
                rc = raft_campaign(&r);
                FUZZ_CHECK(rc == 0 || rc == -ENOMEM);
            } else {
                (void)raft_read_index(&r, off);
            }
            break;
        }
        drain(&r, &ms);
        struct raft_status st;
        raft_status(&r, &st);
        FUZZ_CHECK(st.hard.commit <= st.last_index);
        FUZZ_CHECK(st.applied <= st.hard.commit);
    }
    raft_close(&r);
    raft_memstorage_close(&ms);
    return 0;
}

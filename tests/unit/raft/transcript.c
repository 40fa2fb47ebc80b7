/*
 * transcript.c - the text form of messages, entries and configurations in
 * the golden transcripts (see transcript.h and testdata/README).
 */
#include "tests/unit/raft/transcript.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tr_printf(struct buf *b, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) ||
        buf_append(b, line, (size_t)n) != 0) {
        fprintf(stderr, "transcript: line too long or out of memory\n");
        abort();
    }
}

static const char *const msg_names[] = {
    "MsgNone",          "MsgPreVote",    "MsgPreVoteResp",    "MsgVote",
    "MsgVoteResp",      "MsgApp",        "MsgAppResp",        "MsgHeartbeat",
    "MsgHeartbeatResp", "MsgSnap",       "MsgProp",           "MsgReadIndex",
    "MsgReadIndexResp", "MsgTimeoutNow", "MsgTransferLeader", "MsgPropRefused",
};

const char *tr_msg_name(uint8_t type)
{
    _Static_assert(sizeof(msg_names) / sizeof(msg_names[0]) ==
                       RAFT_MSG_TYPE_MAX + 1,
                   "one name per message type");
    return type <= RAFT_MSG_TYPE_MAX ? msg_names[type] : "MsgUnknown";
}

uint8_t tr_msg_type(const char *name)
{
    for (uint8_t t = 1; t <= RAFT_MSG_TYPE_MAX; t++) {
        if (strcmp(name, msg_names[t]) == 0) {
            return t;
        }
    }
    return 0;
}

const char *tr_cc_name(uint8_t type)
{
    switch (type) {
    case RAFT_CC_ADD_VOTER:
        return "add-voter";
    case RAFT_CC_REMOVE:
        return "remove";
    case RAFT_CC_ADD_LEARNER:
        return "add-learner";
    case RAFT_CC_PROMOTE:
        return "promote";
    default:
        return "?";
    }
}

static void tr_data(struct buf *b, const uint8_t *p, uint32_t len)
{
    uint32_t shown = len > TR_DATA_MAX ? TR_DATA_MAX : len;
    tr_printf(b, "\"");
    for (uint32_t i = 0; i < shown; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
            tr_printf(b, "%c", p[i]);
        } else {
            tr_printf(b, "\\x%02x", p[i]);
        }
    }
    tr_printf(b, "%s\"", shown < len ? "..." : "");
    if (shown < len) {
        tr_printf(b, "(%u bytes)", len);
    }
}

static void tr_ids(struct buf *b, const uint64_t *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        tr_printf(b, "%s%llu", i ? "," : "", (unsigned long long)ids[i]);
    }
}

void tr_conf(struct buf *b, const struct raft_conf *c)
{
    tr_printf(b, "voters=");
    tr_ids(b, c->voters, c->voters_count);
    tr_printf(b, " learners=");
    tr_ids(b, c->learners, c->learners_count);
}

void tr_entries(struct buf *b, const struct raft_entry *e, size_t n)
{
    tr_printf(b, "[");
    for (size_t i = 0; i < n; i++) {
        tr_printf(b, "%s%llu@%llu ", i ? ", " : "",
                  (unsigned long long)e[i].index,
                  (unsigned long long)e[i].term);
        struct raft_conf_change cc;
        switch (e[i].type) {
        case RAFT_ENTRY_EMPTY:
            tr_printf(b, "empty");
            break;
        case RAFT_ENTRY_CONF:
            if (raft_conf_change_decode(e[i].data, e[i].len, &cc) == 0) {
                tr_printf(b, "conf(%s %llu)", tr_cc_name(cc.type),
                          (unsigned long long)cc.node_id);
            } else {
                tr_printf(b, "conf(undecodable)");
            }
            break;
        default:
            tr_data(b, e[i].data, e[i].len);
            break;
        }
    }
    tr_printf(b, "]");
}

static void tr_msg_fields(struct buf *b, const struct raft_msg *m)
{
    bool reject = (m->flags & RAFT_MSG_F_REJECT) != 0;
    unsigned long long term = m->term, index = m->index;
    switch (m->type) {
    case RAFT_MSG_PREVOTE:
    case RAFT_MSG_VOTE:
        tr_printf(b, " term=%llu index=%llu logterm=%llu%s", term, index,
                  (unsigned long long)m->log_term,
                  (m->flags & RAFT_MSG_F_TRANSFER) ? " transfer" : "");
        break;
    case RAFT_MSG_PREVOTE_RESP:
    case RAFT_MSG_VOTE_RESP:
        tr_printf(b, " term=%llu %s", term, reject ? "rejected" : "granted");
        break;
    case RAFT_MSG_APP:
        tr_printf(b, " term=%llu index=%llu logterm=%llu entries=", term, index,
                  (unsigned long long)m->log_term);
        tr_entries(b, m->entries, m->entries_count);
        tr_printf(b, " commit=%llu", (unsigned long long)m->commit);
        break;
    case RAFT_MSG_APP_RESP:
        tr_printf(b, " term=%llu index=%llu", term, index);
        if (reject) {
            tr_printf(b, " rejected hint=%llu hintterm=%llu",
                      (unsigned long long)m->reject_hint,
                      (unsigned long long)m->log_term);
        }
        break;
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_HEARTBEAT_RESP:
        tr_printf(b, " term=%llu", term);
        if (m->type == RAFT_MSG_HEARTBEAT) {
            tr_printf(b, " commit=%llu", (unsigned long long)m->commit);
        }
        if (m->ctx != 0) { /* the ReadIndex round it confirms */
            tr_printf(b, " round=%llu", (unsigned long long)m->ctx);
        }
        break;
    case RAFT_MSG_SNAP:
        tr_printf(b, " term=%llu snapshot=%llu@%llu ", term,
                  (unsigned long long)m->snapshot.meta.index,
                  (unsigned long long)m->snapshot.meta.term);
        tr_conf(b, &m->snapshot.meta.conf);
        break;
    case RAFT_MSG_PROP:
        tr_printf(b, " entries=");
        tr_entries(b, m->entries, m->entries_count);
        break;
    case RAFT_MSG_READINDEX:
        tr_printf(b, " ctx=%llu", (unsigned long long)m->ctx);
        break;
    case RAFT_MSG_READINDEX_RESP:
        tr_printf(b, " term=%llu ctx=%llu index=%llu", term,
                  (unsigned long long)m->ctx, index);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        tr_printf(b, " term=%llu", term);
        break;
    case RAFT_MSG_TRANSFER_LEADER:
        tr_printf(b, " to=%llu", index);
        break;
    default:
        tr_printf(b, " term=%llu", term);
        break;
    }
}

void tr_msg(struct buf *b, const struct raft_msg *m)
{
    tr_printf(b, "%llu->%llu %s", (unsigned long long)m->from,
              (unsigned long long)m->to, tr_msg_name(m->type));
    tr_msg_fields(b, m);
}

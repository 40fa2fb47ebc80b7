/*
 * transcript.h - the text form of Raft messages, entries and configurations
 * used by the golden scenario transcripts (tests/unit/raft/testdata/README).
 *
 * Does:     formats one message, an entry list or a configuration as text
 *           into a struct buf, deterministically (no pointers, no clocks).
 * Owns:     nothing; the caller's buf grows.
 * Threads:  any; no state.
 * Borrowed: arguments are read during the call only.
 * Errors:   none returned: running out of memory in a test aborts.
 * Limits:   entry data longer than TR_DATA_MAX bytes is shortened.
 * Not here: the events themselves (harness.c emits them).
 */
#ifndef TESTS_UNIT_RAFT_TRANSCRIPT_H
#define TESTS_UNIT_RAFT_TRANSCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "consensus/raft/raft.h"

#define TR_DATA_MAX 24

void tr_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "MsgApp", "MsgVoteResp", ... as etcd names them. */
const char *tr_msg_name(uint8_t type);
/* Type from a name as above; 0 when unknown. */
uint8_t tr_msg_type(const char *name);
/* "1->2 MsgApp term=2 index=5 logterm=2 entries=[6@2 \"x\"] commit=4" */
void tr_msg(struct buf *b, const struct raft_msg *m);
/* "[5@2 \"x\", 6@2 empty, 7@2 conf(add-voter 4)]" (index@term) */
void tr_entries(struct buf *b, const struct raft_entry *e, size_t n);
/* "voters=1,2,3 learners=4" */
void tr_conf(struct buf *b, const struct raft_conf *c);
const char *tr_cc_name(uint8_t type);

#endif

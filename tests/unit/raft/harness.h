/*
 * harness.h - a tiny in-process network of Raft cores for the unit tests.
 *
 * Each node is a real struct raft over a raft_memstorage. net_run() drives
 * every node the way consensus/node will: take a ready batch, persist the
 * snapshot, entries and hard state into the memstorage, report them, send
 * the messages (encoded with the real codec, decoded on delivery), apply
 * committed entries to a toy state machine (a running CRC of the data), and
 * advance. Partitions are a cut matrix; a filter hook may drop or edit a
 * message before delivery. Every delivered message is appended to a
 * transcript, printed as TAP comments when RAFT_TRANSCRIPT is set in the
 * environment (or when a test asks), and every encoded message to `stream`,
 * so two runs can be compared byte for byte.
 *
 * Golden transcripts: when `events` is set, every observable effect (each
 * message as it is sent, drops, role changes, configuration changes, hard
 * state, entries persisted, snapshots installed, entries applied, reads)
 * goes there as one line, in the format of testdata/README. The step
 * functions net_flush() and net_deliver_some() let a script move messages
 * one hop at a time instead of net_run()'s "until quiet".
 */
#ifndef TESTS_UNIT_RAFT_HARNESS_H
#define TESTS_UNIT_RAFT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/prng.h"
#include "consensus/raft/raft.h"

#define NET_MAX  7
#define NET_HIST 4096

struct net;
/* Return false to drop m; may edit m (e.g. trim entries_count). */
typedef bool (*net_filter_fn)(struct net *net, struct raft_msg *m, void *arg);

struct node {
    uint64_t id;
    bool up;
    struct raft r;
    struct raft_memstorage ms;
    uint64_t applied;
    uint32_t state;             /* CRC chain over applied data */
    uint32_t hist[NET_HIST];    /* state after applying index i */
    uint64_t hist_at[NET_HIST]; /* which index hist[i % NET_HIST] is for */
    uint64_t applied_conf;      /* count of conf entries applied */
    struct raft_read_state reads[256];
    uint32_t reads_count;
    struct raft_conf seen_conf; /* last configuration put in `events` */
    uint64_t seen_conf_index;
    uint8_t seen_role;
};

struct pkt {
    uint64_t from;
    uint64_t to;
    uint8_t *bytes;
    size_t len;
};

struct net {
    int n;
    struct raft_config cfg; /* template; id and seed set per node */
    uint64_t seed;
    struct node nodes[NET_MAX + 1]; /* 1-based */
    bool cut[NET_MAX + 1][NET_MAX + 1];
    struct pkt *q;
    size_t q_count;
    size_t q_cap;
    struct buf stream;     /* every encoded message, in send order */
    struct buf transcript; /* one line per delivered message */
    bool print;
    struct prng *chaos; /* when set: reorder each batch, repeat some */
    net_filter_fn filter;
    void *filter_arg;
    uint64_t delivered;
    uint64_t dropped;
    struct buf *events; /* golden transcript lines; NULL = off */
    bool stuck;         /* events mode: net_run gave up, never quiet */
};

/* n voters 1..n (bootstrap conf), same seed base. Tweak net->cfg before
 * net_start() to change options. */
struct net *net_new(int n, uint64_t seed);
/* Start nodes 1..count with net->cfg; ids > n voters are started with an
 * empty bootstrap (joining nodes). */
void net_start(struct net *net, int count);
void net_free(struct net *net);

/* Bring node id up with the config template; bootstrap conf empty when
 * joining is set. */
void net_start_node(struct net *net, uint64_t id, bool joining);
/* Crash: close the core, keep its storage (everything reported durable). */
void net_crash(struct net *net, uint64_t id);
/* Restart from its storage. */
void net_restart(struct net *net, uint64_t id);

void net_isolate(struct net *net, uint64_t id);
void net_heal(struct net *net);
void net_cut(struct net *net, uint64_t a, uint64_t b);

/* Process every ready batch and deliver messages until quiet. */
void net_run(struct net *net);
/* One tick on node id (then no delivery). */
void net_tick(struct net *net, uint64_t id);
/* ticks rounds of: tick every up node, then net_run. */
void net_tick_all(struct net *net, int ticks);

/* Campaign on id and run to quiet. */
void net_elect(struct net *net, uint64_t id);
/* The single leader among up nodes with the highest term, or 0. */
uint64_t net_leader(struct net *net);
/* Propose a small normal entry on id; returns the raft_propose code. */
int net_propose(struct net *net, uint64_t id, const char *text);

/* Checkers: all up nodes applied the same state at every common index;
 * logs of up nodes agree up to the smallest commit. Return true if OK. */
bool net_states_agree(struct net *net);
bool net_logs_agree(struct net *net);

/* Count transcript lines containing needle. */
int net_count(struct net *net, const char *needle);
void net_note(struct net *net, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Clear the transcript (the stream is kept). */
void net_transcript_reset(struct net *net);

struct node *net_node(struct net *net, uint64_t id);

/* ---- golden transcripts (see the header comment) */

/* Append one line to net->events (no-op when off). */
void net_event(struct net *net, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Process every node's ready batches; deliver nothing. */
void net_flush(struct net *net);
/* One hop: take the messages queued now whose sender is `from` and
 * receiver is `to` (0 = any) and deliver them in order (or drop them, with
 * an event, when drop is set), processing ready batches after each. Other
 * messages stay queued ahead of the replies. Returns how many matched. */
size_t net_deliver_some(struct net *net, uint64_t from, uint64_t to, bool drop);

#endif

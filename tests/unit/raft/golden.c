/*
 * golden.c - runs the golden scenario scripts of testdata/ on the harness
 * network (see golden.h; the format and every command: testdata/README).
 *
 * Commands are kept apart from their output by their first two bytes: a
 * command line starts with "> ", a comment with "#", and everything else
 * (but blank lines) is output recorded by an earlier run, which is skipped
 * and produced afresh. Output lines start with a node id, "tick", "drop",
 * "refused", "check" or "VIOLATION", so they can never be taken for a
 * command or a comment.
 */
#include "tests/unit/raft/golden.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "consensus/raft/raft_int.h"
#include "tests/unit/raft/harness.h"
#include "tests/unit/raft/transcript.h"

#define ARGS_MAX 16

struct golden {
    struct net *net;
    struct buf *out;
    int line_no;
    int *violations;
    bool violated; /* report the first violation only */
    bool stopped;  /* after a livelock: commands are copied, not run */
    char *err;
    size_t errcap;
};

struct args {
    int n;
    char *v[ARGS_MAX];
    const char *rest; /* the line after the first two words (propose) */
};

static int bad(struct golden *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int bad(struct golden *g, const char *fmt, ...)
{
    int k = snprintf(g->err, g->errcap, "line %d: ", g->line_no);
    va_list ap;
    va_start(ap, fmt);
    if (k >= 0 && (size_t)k < g->errcap) {
        vsnprintf(g->err + k, g->errcap - (size_t)k, fmt, ap);
    }
    va_end(ap);
    return -1;
}

/* ------------------------------------------------------------ parsing */

static bool parse_u64(const char *s, uint64_t *out)
{
    if (s == NULL || *s < '0' || *s > '9') {
        return false;
    }
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static int node_arg(struct golden *g, const char *s, uint64_t *id)
{
    if (!parse_u64(s, id) || *id < 1 || *id > NET_MAX) {
        return bad(g, "bad node id '%s' (1..%d)", s ? s : "", NET_MAX);
    }
    return 0;
}

/* "all" (every up node) or "1,2,3" into ids[]; sorted as given. */
static int node_list(struct golden *g, const char *s, uint64_t *ids, int *n)
{
    *n = 0;
    if (s != NULL && strcmp(s, "all") == 0) {
        for (uint64_t i = 1; i <= NET_MAX; i++) {
            if (net_node(g->net, i)->up) {
                ids[(*n)++] = i;
            }
        }
        return 0;
    }
    char tmp[64];
    snprintf(tmp, sizeof(tmp), "%s", s ? s : "");
    for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        if (*n == NET_MAX || node_arg(g, t, &ids[*n]) < 0) {
            return bad(g, "bad node list '%s'", s ? s : "");
        }
        (*n)++;
    }
    return *n > 0 ? 0 : bad(g, "empty node list");
}

/* "1->2", "*->3", "1->*": sender and receiver, 0 = any. */
static int pattern_arg(struct golden *g, const char *s, uint64_t *from,
                       uint64_t *to)
{
    const char *arrow = strstr(s, "->");
    char a[16], b[16];
    if (arrow == NULL || arrow - s >= (long)sizeof(a) ||
        strlen(arrow + 2) >= sizeof(b)) {
        return bad(g, "bad pattern '%s' (want A->B, * for any)", s);
    }
    snprintf(a, sizeof(a), "%.*s", (int)(arrow - s), s);
    snprintf(b, sizeof(b), "%s", arrow + 2);
    *from = 0;
    *to = 0;
    if ((strcmp(a, "*") != 0 && node_arg(g, a, from) < 0) ||
        (strcmp(b, "*") != 0 && node_arg(g, b, to) < 0)) {
        return -1;
    }
    return 0;
}

/* key=value options of `cluster`. */
static int cluster_option(struct golden *g, struct raft_config *c,
                          uint64_t *seed, int *voters, const char *opt)
{
    const char *eq = strchr(opt, '=');
    uint64_t v = 0;
    if (eq == NULL) {
        return bad(g, "bad option '%s' (want key=value)", opt);
    }
    size_t klen = (size_t)(eq - opt);
    const char *val = eq + 1;
    bool on = strcmp(val, "on") == 0, off = strcmp(val, "off") == 0;
#define KEY(k) (klen == strlen(k) && strncmp(opt, k, klen) == 0)
    if (KEY("prevote") && (on || off)) {
        c->pre_vote = on;
    } else if (KEY("checkquorum") && (on || off)) {
        c->check_quorum = on;
    } else if (!parse_u64(val, &v) || v == 0 || v > UINT32_MAX) {
        return bad(g, "bad value in '%s'", opt);
    } else if (KEY("voters") && v <= NET_MAX) {
        *voters = (int)v;
    } else if (KEY("seed")) {
        *seed = v;
    } else if (KEY("election")) {
        c->election_ticks = (uint32_t)v;
    } else if (KEY("heartbeat")) {
        c->heartbeat_ticks = (uint32_t)v;
    } else if (KEY("inflight")) {
        c->max_inflight_msgs = (uint32_t)v;
    } else if (KEY("maxmsg")) {
        c->max_msg_bytes = v;
    } else {
        return bad(g, "unknown option '%s'", opt);
    }
#undef KEY
    return 0;
}

/* ------------------------------------------------------- safety checks */

static void violation(struct golden *g, const char *what)
{
    (*g->violations)++;
    if (!g->violated) {
        g->violated = true;
        tr_printf(g->out, "VIOLATION: %s\n", what);
    }
}

/* After every command: at most one leader per term among up nodes, logs
 * agree up to the commit index, applied states agree. */
static void safety(struct golden *g)
{
    struct net *net = g->net;
    for (uint64_t i = 1; i <= NET_MAX; i++) {
        for (uint64_t j = i + 1; j <= NET_MAX; j++) {
            struct node *a = net_node(net, i), *b = net_node(net, j);
            if (a->up && b->up && a->r.role == RAFT_LEADER &&
                b->r.role == RAFT_LEADER && a->r.term == b->r.term) {
                char m[96];
                snprintf(m, sizeof(m),
                         "nodes %llu and %llu both lead term %llu",
                         (unsigned long long)i, (unsigned long long)j,
                         (unsigned long long)a->r.term);
                violation(g, m);
            }
        }
    }
    if (!net_logs_agree(net)) {
        violation(g, "logs differ below the commit index");
    }
    if (!net_states_agree(net)) {
        violation(g, "applied states differ at the same index");
    }
}

/* ------------------------------------------------------------ commands */

static void refused(struct golden *g, int rc)
{
    if (rc != 0) {
        tr_printf(g->out, "refused: %s\n", err_str(rc));
    }
}

static int cmd_cluster(struct golden *g, const struct args *a)
{
    if (g->net != NULL) {
        return bad(g, "cluster given twice");
    }
    struct raft_config c;
    raft_config_default(&c, 1);
    c.max_msg_bytes = 64 * 1024; /* net_new()'s template values */
    c.max_inflight_msgs = 8;
    uint64_t seed = 1;
    int voters = 0;
    for (int i = 1; i < a->n; i++) {
        if (cluster_option(g, &c, &seed, &voters, a->v[i]) < 0) {
            return -1;
        }
    }
    if (voters == 0) {
        return bad(g, "cluster needs voters=N");
    }
    g->net = net_new(voters, seed);
    struct raft_config *t = &g->net->cfg;
    t->pre_vote = c.pre_vote;
    t->check_quorum = c.check_quorum;
    t->election_ticks = c.election_ticks;
    t->heartbeat_ticks = c.heartbeat_ticks;
    t->max_inflight_msgs = c.max_inflight_msgs;
    t->max_msg_bytes = c.max_msg_bytes;
    g->net->events = g->out;
    net_start(g->net, voters);
    return 0;
}

/* "N <role> term= vote= commit= applied= log=first..last leader=" */
static void node_line(struct golden *g, uint64_t id, const char *what)
{
    struct node *nd = net_node(g->net, id);
    if (!nd->up) {
        tr_printf(g->out, "%llu %s down\n", (unsigned long long)id, what);
        return;
    }
    struct raft_status st;
    raft_status(&nd->r, &st);
    tr_printf(
        g->out,
        "%llu %s %s term=%llu vote=%llu commit=%llu applied=%llu "
        "log=%llu..%llu leader=%llu conf index=%llu ",
        (unsigned long long)id, what, raft_role_str(st.role),
        (unsigned long long)st.hard.term, (unsigned long long)st.hard.vote,
        (unsigned long long)st.hard.commit, (unsigned long long)nd->applied,
        (unsigned long long)st.first_index, (unsigned long long)st.last_index,
        (unsigned long long)st.leader, (unsigned long long)st.conf_index);
    tr_conf(g->out, &st.conf);
    tr_printf(g->out, "\n");
}

static const char *pr_state_str(uint8_t s)
{
    return s == RAFT_PR_PROBE       ? "probe"
           : s == RAFT_PR_REPLICATE ? "replicate"
                                    : "snapshot";
}

static int cmd_status(struct golden *g, const struct args *a)
{
    uint64_t ids[NET_MAX];
    int n = 0;
    if (a->n != 2 || node_list(g, a->v[1], ids, &n) < 0) {
        return a->n != 2 ? bad(g, "usage: status IDS|all") : -1;
    }
    for (int i = 0; i < n; i++) {
        node_line(g, ids[i], "status");
        struct node *nd = net_node(g->net, ids[i]);
        if (!nd->up || nd->r.role != RAFT_LEADER) {
            continue;
        }
        struct raft_status st;
        raft_status(&nd->r, &st);
        for (uint32_t k = 0; k < st.progress_count; k++) {
            tr_printf(g->out,
                      "%llu progress %llu%s %s match=%llu next=%llu "
                      "inflight=%u%s\n",
                      (unsigned long long)ids[i],
                      (unsigned long long)st.progress[k].id,
                      st.progress[k].learner ? " learner" : "",
                      pr_state_str(st.progress[k].state),
                      (unsigned long long)st.progress[k].match,
                      (unsigned long long)st.progress[k].next,
                      st.progress[k].inflight_count,
                      st.progress[k].recent_active ? " active" : "");
        }
    }
    return 0;
}

/* The whole log as the core sees it (storage plus unstable tail). */
static int cmd_log(struct golden *g, const struct args *a)
{
    uint64_t id = 0;
    if (a->n != 2 || node_arg(g, a->v[1], &id) < 0) {
        return bad(g, "usage: log ID");
    }
    struct node *nd = net_node(g->net, id);
    if (!nd->up) {
        return bad(g, "node %llu is down", (unsigned long long)id);
    }
    struct raft *r = &nd->r;
    uint64_t first = raft__first_index(r), last = raft__last_index(r);
    struct raft__entries ents;
    memset(&ents, 0, sizeof(ents));
    if (first <= last &&
        raft__slice(r, first, last + 1, UINT64_MAX, &ents) != 0) {
        return bad(g, "cannot read the log of %llu", (unsigned long long)id);
    }
    tr_printf(g->out,
              "%llu log snapshot=%llu@%llu entries=", (unsigned long long)id,
              (unsigned long long)nd->ms.snap.meta.index,
              (unsigned long long)nd->ms.snap.meta.term);
    tr_entries(g->out, ents.v, ents.count);
    tr_printf(g->out, "\n");
    raft__ents_free(&ents);
    return 0;
}

static int cmd_start(struct golden *g, const struct args *a)
{
    uint64_t id = 0;
    bool joining = a->n == 3 && strcmp(a->v[2], "joining") == 0;
    if ((a->n != 2 && !joining) || node_arg(g, a->v[1], &id) < 0) {
        return bad(g, "usage: start ID [joining]");
    }
    if (net_node(g->net, id)->up) {
        return bad(g, "node %llu is up already", (unsigned long long)id);
    }
    net_start_node(g->net, id, joining);
    node_line(g, id, "starts");
    return 0;
}

static int cmd_crash_restart(struct golden *g, const struct args *a)
{
    uint64_t id = 0;
    if (a->n != 2 || node_arg(g, a->v[1], &id) < 0) {
        return bad(g, "usage: %s ID", a->v[0]);
    }
    if (strcmp(a->v[0], "crash") == 0) {
        net_crash(g->net, id);
        tr_printf(g->out, "%llu crashes (its storage stays)\n",
                  (unsigned long long)id);
        return 0;
    }
    net_restart(g->net, id);
    node_line(g, id, "restarts");
    return 0;
}

static int cmd_campaign(struct golden *g, const struct args *a)
{
    uint64_t id = 0;
    if (a->n != 2 || node_arg(g, a->v[1], &id) < 0) {
        return bad(g, "usage: campaign ID");
    }
    refused(g, raft_campaign(&net_node(g->net, id)->r));
    return 0;
}

static int cmd_propose(struct golden *g, const struct args *a)
{
    uint64_t id = 0;
    if (a->n < 3 || node_arg(g, a->v[1], &id) < 0) {
        return bad(g, "usage: propose ID TEXT");
    }
    const char *text = a->rest;
    size_t len = strlen(text);
    if (len >= 2 && text[0] == '"' && text[len - 1] == '"') {
        text++;
        len -= 2;
    }
    refused(g, raft_propose(&net_node(g->net, id)->r, RAFT_ENTRY_NORMAL, text,
                            len, NULL));
    return 0;
}

static int cmd_conf(struct golden *g, const struct args *a)
{
    static const char *const types[] = {"", "add-voter", "remove",
                                        "add-learner", "promote"};
    uint64_t id = 0;
    struct raft_conf_change cc;
    memset(&cc, 0, sizeof(cc));
    for (uint8_t t = 1; a->n == 4 && t <= RAFT_CC_TYPE_MAX; t++) {
        if (strcmp(a->v[2], types[t]) == 0) {
            cc.type = t;
        }
    }
    if (a->n != 4 || cc.type == 0 || node_arg(g, a->v[1], &id) < 0 ||
        node_arg(g, a->v[3], &cc.node_id) < 0) {
        return bad(g, "usage: conf ID add-voter|add-learner|promote|remove "
                      "NODE");
    }
    refused(g, raft_propose_conf_change(&net_node(g->net, id)->r, &cc, NULL));
    return 0;
}

static int cmd_read(struct golden *g, const struct args *a)
{
    uint64_t id = 0;
    if (a->n != 3 || node_arg(g, a->v[1], &id) < 0) {
        return bad(g, "usage: read ID CTX[,CTX...]");
    }
    char tmp[128];
    snprintf(tmp, sizeof(tmp), "%s", a->v[2]);
    /* All in one pass of the driver: they may share one heartbeat round. */
    for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        uint64_t ctx = 0;
        if (!parse_u64(t, &ctx) || ctx == 0) {
            return bad(g, "bad read ctx '%s'", t);
        }
        refused(g, raft_read_index(&net_node(g->net, id)->r, ctx));
    }
    return 0;
}

static int cmd_transfer(struct golden *g, const struct args *a)
{
    uint64_t id = 0, to = 0;
    if (a->n != 3 || node_arg(g, a->v[1], &id) < 0 ||
        node_arg(g, a->v[2], &to) < 0) {
        return bad(g, "usage: transfer ID TO");
    }
    refused(g, raft_transfer_leader(&net_node(g->net, id)->r, to));
    return 0;
}

static int cmd_compact(struct golden *g, const struct args *a)
{
    uint64_t id = 0;
    if (a->n != 2 || node_arg(g, a->v[1], &id) < 0) {
        return bad(g, "usage: compact ID");
    }
    struct node *nd = net_node(g->net, id);
    struct raft_snapshot_meta meta;
    int rc = raft_compact(&nd->r, nd->applied, &meta);
    if (rc != 0) {
        refused(g, rc);
        return 0;
    }
    /* The toy state machine's snapshot: applied index and state CRC. */
    uint8_t data[12];
    be64_put(data, nd->applied);
    be32_put(data + 8, nd->state);
    rc = raft_memstorage_compact(&nd->ms, &meta, data, sizeof(data));
    if (rc != 0) {
        return bad(g, "memstorage compact: %s", err_str(rc));
    }
    tr_printf(g->out, "%llu compacts: snapshot=%llu@%llu ",
              (unsigned long long)id, (unsigned long long)meta.index,
              (unsigned long long)meta.term);
    tr_conf(g->out, &meta.conf);
    tr_printf(g->out, "\n");
    return 0;
}

static void quiet_rounds(struct golden *g, const char *who, int lo, int hi)
{
    if (lo == 0) {
        return;
    }
    if (lo == hi) {
        tr_printf(g->out, "tick %s round %d: quiet\n", who, lo);
    } else {
        tr_printf(g->out, "tick %s rounds %d-%d: quiet\n", who, lo, hi);
    }
}

/* tick IDS|all [xN] [stabilize]: N rounds of one tick on each node (then
 * its ready batches), and with `stabilize` delivery until quiet after each
 * round. Rounds in which nothing happened are summed up in one line. */
static int cmd_tick(struct golden *g, const struct args *a)
{
    uint64_t ids[NET_MAX];
    int n = 0;
    uint64_t rounds = 1;
    bool stabilize = false;
    if (a->n < 2 || node_list(g, a->v[1], ids, &n) < 0) {
        return bad(g, "usage: tick IDS|all [xN] [stabilize]");
    }
    for (int i = 2; i < a->n; i++) {
        if (a->v[i][0] == 'x' && parse_u64(a->v[i] + 1, &rounds) &&
            rounds > 0 && rounds <= 10000) {
            continue;
        }
        if (strcmp(a->v[i], "stabilize") != 0) {
            return bad(g, "bad tick argument '%s'", a->v[i]);
        }
        stabilize = true;
    }
    char who[64] = "";
    for (int i = 0; i < n; i++) {
        size_t k = strlen(who);
        snprintf(who + k, sizeof(who) - k, "%s%llu", i ? "," : "",
                 (unsigned long long)ids[i]);
    }
    struct buf round;
    buf_init(&round, 0);
    int quiet_lo = 0, quiet_hi = 0;
    for (int r = 1; r <= (int)rounds; r++) {
        buf_reset(&round);
        g->net->events = &round;
        for (int i = 0; i < n; i++) {
            net_tick(g->net, ids[i]);
        }
        net_flush(g->net);
        if (stabilize) {
            net_run(g->net);
        }
        g->net->events = g->out;
        if (round.len == 0) {
            quiet_lo = quiet_lo ? quiet_lo : r;
            quiet_hi = r;
            continue;
        }
        quiet_rounds(g, who, quiet_lo, quiet_hi);
        quiet_lo = 0;
        if (rounds == 1) {
            tr_printf(g->out, "tick %s\n", who);
        } else {
            tr_printf(g->out, "tick %s round %d\n", who, r);
        }
        if (buf_append(g->out, round.data, round.len) != 0) {
            buf_free(&round);
            return bad(g, "out of memory");
        }
    }
    quiet_rounds(g, who, quiet_lo, quiet_hi);
    buf_free(&round);
    return 0;
}

/* deliver|drop [A->B ...]: one hop of the messages queued now. */
static int cmd_deliver(struct golden *g, const struct args *a)
{
    bool drop = strcmp(a->v[0], "drop") == 0;
    if (a->n == 1) {
        net_deliver_some(g->net, 0, 0, drop);
        return 0;
    }
    for (int i = 1; i < a->n; i++) {
        uint64_t from = 0, to = 0;
        if (pattern_arg(g, a->v[i], &from, &to) < 0) {
            return -1;
        }
        if (net_deliver_some(g->net, from, to, drop) == 0) {
            tr_printf(g->out, "%s %s: no such message queued\n", a->v[0],
                      a->v[i]);
        }
    }
    return 0;
}

static int cmd_network(struct golden *g, const struct args *a)
{
    uint64_t x = 0, y = 0;
    if (strcmp(a->v[0], "heal") == 0 && a->n == 1) {
        net_heal(g->net);
    } else if (strcmp(a->v[0], "isolate") == 0 && a->n == 2 &&
               node_arg(g, a->v[1], &x) == 0) {
        net_isolate(g->net, x);
    } else if (strcmp(a->v[0], "cut") == 0 && a->n == 3 &&
               node_arg(g, a->v[1], &x) == 0 && node_arg(g, a->v[2], &y) == 0) {
        net_cut(g->net, x, y);
    } else {
        return bad(g, "usage: heal | isolate ID | cut A B");
    }
    return 0;
}

static int cmd_check(struct golden *g, const struct args *a)
{
    (void)a;
    bool logs = net_logs_agree(g->net), states = net_states_agree(g->net);
    tr_printf(g->out, "check: logs %s, applied states %s\n",
              logs ? "agree up to each commit" : "DIFFER",
              states ? "agree" : "DIFFER");
    return 0;
}

static int cmd_stabilize(struct golden *g, const struct args *a)
{
    if (a->n != 1) {
        return bad(g, "usage: stabilize");
    }
    net_run(g->net);
    return 0;
}

struct command {
    const char *name;
    int (*fn)(struct golden *g, const struct args *a);
};

static const struct command commands[] = {
    {"cluster", cmd_cluster},
    {"start", cmd_start},
    {"crash", cmd_crash_restart},
    {"restart", cmd_crash_restart},
    {"campaign", cmd_campaign},
    {"propose", cmd_propose},
    {"conf", cmd_conf},
    {"read", cmd_read},
    {"transfer", cmd_transfer},
    {"compact", cmd_compact},
    {"tick", cmd_tick},
    {"deliver", cmd_deliver},
    {"drop", cmd_deliver},
    {"stabilize", cmd_stabilize},
    {"isolate", cmd_network},
    {"cut", cmd_network},
    {"heal", cmd_network},
    {"status", cmd_status},
    {"log", cmd_log},
    {"check", cmd_check},
};

static int run_command(struct golden *g, char *line)
{
    struct args a;
    memset(&a, 0, sizeof(a));
    char raw[GOLDEN_LINE_MAX];
    snprintf(raw, sizeof(raw), "%s", line);
    a.rest = "";
    char *save = NULL;
    for (char *t = strtok_r(line, " \t", &save); t != NULL;
         t = strtok_r(NULL, " \t", &save)) {
        if (a.n == ARGS_MAX) {
            return bad(g, "too many arguments");
        }
        a.v[a.n++] = t;
        if (a.n == 3) {
            a.rest = raw + (t - line); /* untouched by strtok_r */
        }
    }
    if (a.n == 0) {
        return bad(g, "empty command");
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(a.v[0], commands[i].name) != 0) {
            continue;
        }
        if (g->net == NULL && commands[i].fn != cmd_cluster) {
            return bad(g, "the first command must be 'cluster'");
        }
        if (commands[i].fn(g, &a) < 0) {
            return -1;
        }
        net_flush(g->net);
        safety(g);
        if (g->net->stuck) {
            violation(g, "the network never went quiet (livelock)");
            g->stopped = true;
        }
        return 0;
    }
    return bad(g, "unknown command '%s'", a.v[0]);
}

int golden_run(const char *text, size_t len, struct buf *out, int *violations,
               char *err, size_t errcap)
{
    struct golden g;
    memset(&g, 0, sizeof(g));
    g.out = out;
    g.violations = violations;
    g.err = err;
    g.errcap = errcap;
    *violations = 0;
    int rc = 0;
    for (size_t pos = 0; pos < len && rc == 0;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        const char *s = text + pos;
        pos += n + (nl != NULL);
        g.line_no++;
        if (n >= GOLDEN_LINE_MAX) {
            rc = bad(&g, "line longer than %d bytes", GOLDEN_LINE_MAX);
            break;
        }
        bool command = n >= 2 && s[0] == '>' && s[1] == ' ';
        if (!command && n > 0 && s[0] != '#') {
            continue; /* output of an earlier run: made afresh */
        }
        tr_printf(out, "%.*s\n", (int)n, s);
        if (command && !g.stopped) {
            char line[GOLDEN_LINE_MAX];
            snprintf(line, sizeof(line), "%.*s", (int)(n - 2), s + 2);
            rc = run_command(&g, line);
        }
    }
    if (g.net != NULL) {
        net_free(g.net);
    }
    return rc;
}

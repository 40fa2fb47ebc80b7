/*
 * discovery_srv.h - --discovery-srv: the initial cluster from DNS SRV
 * records, as etcd 3.4 bootstraps with it (etcd's clustering guide, "DNS
 * discovery"; RFC 2782 for SRV).
 *
 * Does:     looks up _etcd-server-ssl._tcp.<domain> (https peers) and
 *           _etcd-server._tcp.<domain> (http peers), or with
 *           --discovery-srv-name S _etcd-server-ssl-S._tcp.<domain> and
 *           _etcd-server-S._tcp.<domain>; resolves each target, and writes
 *           an --initial-cluster text: the target whose address is one of
 *           this member's --initial-advertise-peer-urls gets --name, the
 *           others "0", "1", ... (etcd's placeholder names; each member
 *           publishes its real name once it runs), URLs are
 *           scheme://target:port with the target name as DNS gave it.
 * Owns:     nothing after a call returns (the lookup's resolver state and
 *           buffers are freed).
 * Threads:  discovery_srv_cluster blocks (DNS round trips): startup only,
 *           before the event loop runs. The other functions are pure.
 * Errors:   ERR_NOT_FOUND (no SRV record, or no target resolved), ERR_INVALID
 *           (this member is not among the targets; a bad domain, suffix or
 *           target name), ERR_LIMIT (a bound below), -ETIMEDOUT (the DNS
 *           server did not answer in time), -EIO (a failed answer: SERVFAIL,
 *           REFUSED, malformed), -ENOMEM. msg always gets one line.
 * Limits:   DISCOVERY_SRV_TARGETS_MAX records per SRV name and members in
 *           total; names of DISCOVERY_SRV_HOST_MAX bytes (RFC 1035) and
 *           URLs that fit a member record (NODE_URLS_MAX); each DNS query
 *           is sent DISCOVERY_SRV_TRIES times to each server in
 *           /etc/resolv.conf, waiting DISCOVERY_SRV_TRY_S for each answer
 *           (2 s for one silent server; the first timeout ends discovery),
 *           and no new query starts after DISCOVERY_SRV_DEADLINE_MS.
 * Not here: the flags (options.c: --discovery-srv, --discovery-srv-name,
 *           and the refusal of --initial-cluster together with them);
 *           bootstrapping from the derived text (server.c, as for
 *           --initial-cluster).
 *
 * DNS goes through glibc's own resolver library (res_nquery with a private
 * res_state, ns_initparse/ns_parserr to read answers): it reads the same
 * /etc/resolv.conf as every other lookup on the host, needs no new package
 * (c-ares' headers are not installed), and lets us bound the retries, which
 * getaddrinfo does not.
 */
#ifndef CAIRN_REGISTRY_DISCOVERY_SRV_H
#define CAIRN_REGISTRY_DISCOVERY_SRV_H

#include <stddef.h>
#include <stdint.h>

#include "consensus/node/node.h"

struct options;

/* One Raft cluster's worth: more members than Raft takes are an error. */
#define DISCOVERY_SRV_TARGETS_MAX NODE_MEMBERS_MAX
/* A DNS name in text form without the final dot (RFC 1035 section 2.3.4). */
#define DISCOVERY_SRV_HOST_MAX    253
/* "_etcd-server-ssl-" + suffix must fit one 63-byte label. */
#define DISCOVERY_SRV_SUFFIX_MAX  (63 - 17)
#define DISCOVERY_SRV_ADDR_MAX    64 /* "a.b.c.d:port" */
/* The derived --initial-cluster text (server.c parses up to 4096 bytes). */
#define DISCOVERY_SRV_CLUSTER_MAX 4096
#define DISCOVERY_SRV_TRY_S       1
#define DISCOVERY_SRV_TRIES       2
#define DISCOVERY_SRV_DEADLINE_MS 15000

enum discovery_srv_status {
    DISCOVERY_SRV_OK,       /* answered with SRV records */
    DISCOVERY_SRV_NXDOMAIN, /* no such name */
    DISCOVERY_SRV_NODATA,   /* the name exists but holds no SRV record */
    DISCOVERY_SRV_FAILED,   /* SERVFAIL, REFUSED, malformed, unreachable */
    DISCOVERY_SRV_TIMEOUT,  /* no answer within the resolver's bound */
};

struct discovery_srv_target {
    char host[DISCOVERY_SRV_HOST_MAX + 1]; /* without the final dot */
    uint16_t port;
    uint16_t priority;
    uint16_t weight;
    /* "ip:port" the target resolved to; "" when it did not resolve (the
     * target is then left out, as etcd leaves it out). */
    char addr[DISCOVERY_SRV_ADDR_MAX];
};

/* The answer for one SRV name. */
struct discovery_srv_answer {
    char qname[DISCOVERY_SRV_HOST_MAX + 1];
    enum discovery_srv_status status;
    char why[128]; /* for FAILED and TIMEOUT: what the resolver said */
    size_t count;
    struct discovery_srv_target targets[DISCOVERY_SRV_TARGETS_MAX];
};

/* One of this member's --initial-advertise-peer-urls and its address. */
struct discovery_srv_self {
    const char *url;  /* "http://127.0.0.1:2380" (borrowed) */
    const char *addr; /* "127.0.0.1:2380" (borrowed) */
};

/* The two SRV names to query for domain (a trailing dot is allowed) and
 * suffix (NULL or "" for none) into ssl and plain (len bytes each).
 * ERR_INVALID names the bad part (empty label, a character that is not a
 * letter, digit, '-', '_' or '.'), ERR_LIMIT a name or suffix too long. */
int discovery_srv_qnames(const char *domain, const char *suffix, char *ssl,
                         char *plain, size_t len, char *msg, size_t msg_len);

/* Read a DNS response (resp, len bytes; borrowed) to an SRV query into
 * ans->status/count/targets (ans->qname is left as it is). Records are
 * ordered by priority (ascending), then weight (descending), then target
 * and port, so every member derives the same list whatever order the
 * server rotated them into; a target of "." (RFC 2782: no service) is
 * skipped; addr is left "". ERR_LIMIT: more than DISCOVERY_SRV_TARGETS_MAX
 * records or a target name over DISCOVERY_SRV_HOST_MAX; ERR_INVALID: a
 * target that is not a host name or a port of 0; -EIO: not a DNS message.
 */
int discovery_srv_parse(const uint8_t *resp, size_t len,
                        struct discovery_srv_answer *ans, char *msg,
                        size_t msg_len);

/* The pure derivation: name (--name), self (self_count advertised peer
 * URLs with their addresses), the https answer and the http answer, whose
 * targets carry their resolved addr. Writes the --initial-cluster text into
 * cluster (cluster_len bytes). A timed-out or failed query fails the whole
 * derivation (a partial view could bootstrap a different cluster than the
 * other members see); a name with no records counts as empty. The same URL
 * listed twice is kept once. Errors as in the file comment. */
int discovery_srv_derive(const char *name,
                         const struct discovery_srv_self *self,
                         size_t self_count,
                         const struct discovery_srv_answer *ssl,
                         const struct discovery_srv_answer *plain,
                         char *cluster, size_t cluster_len, char *msg,
                         size_t msg_len);

/* Look up o->discovery_srv (and o->discovery_srv_name) in DNS, resolve the
 * targets and this member's advertised peer URLs, and derive the initial
 * cluster into cluster (cluster_len bytes). Blocks up to
 * DISCOVERY_SRV_DEADLINE_MS plus one query's bound. */
int discovery_srv_cluster(const struct options *o, char *cluster,
                          size_t cluster_len, char *msg, size_t msg_len);

#endif

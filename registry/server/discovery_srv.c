/*
 * discovery_srv.c - the initial cluster from DNS SRV records (etcd's
 * --discovery-srv; see discovery_srv.h for the contract).
 *
 * Happy path, at startup before the loop runs: build the two SRV names,
 * query both with a private res_state whose retries are bounded, read each
 * answer with ns_parserr, resolve every target to an IPv4 address (an A
 * query, as the peer transport later dials the first IPv4 address), resolve
 * our own advertised peer URLs the same way, and hand everything to
 * discovery_srv_derive, a pure function that names the entries as etcd's
 * pkg/srv does: the target at one of our advertised addresses gets --name,
 * every other target a counter ("0", "1", ...).
 *
 * Failure modes: a name with no records (NXDOMAIN or no SRV data) is empty,
 * and both empty is ERR_NOT_FOUND. A query that times out or fails (SERVFAIL,
 * refused, malformed) fails discovery outright: going on with half of the
 * records could bootstrap a cluster the other members do not agree on. A
 * target whose name does not resolve is left out, as etcd does. Our own
 * address among none of the targets is ERR_INVALID with etcd's text.
 *
 * Deviations from etcd 3.4.23, on purpose: etcd 3.4 keeps only the https
 * records (its http results are appended only when that lookup failed, and
 * a missing _etcd-server-ssl name fails discovery); we combine both, as its
 * documentation describes. One placeholder counter runs over both names
 * (etcd restarts it per name, so two different peers could both be "0" and
 * merge into one member), it skips a value equal to --name, and records
 * are sorted so every member derives the same text.
 */
#include "registry/server/discovery_srv.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/log.h"
#include "registry/server/options.h"

/* A DNS message is at most 64 KiB (TCP length prefix). */
#define ANSWER_BYTES_MAX 65536

/* ------------------------------------------------------------ names */

static bool host_char_ok(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

/* A host name in text form: letters, digits, '-', '_', labels of 1..63
 * bytes separated by single dots, no leading or trailing dot. */
static bool host_name_ok(const char *s, size_t len)
{
    size_t label = 0;
    if (len == 0 || s[0] == '.' || s[len - 1] == '.') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!host_char_ok(s[i])) {
            return false;
        }
        if (s[i] == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
        } else if (++label > 63) {
            return false;
        }
    }
    return true;
}

int discovery_srv_qnames(const char *domain, const char *suffix, char *ssl,
                         char *plain, size_t len, char *msg, size_t msg_len)
{
    size_t dlen = domain != NULL ? strlen(domain) : 0;
    size_t slen = suffix != NULL ? strlen(suffix) : 0;
    char sfx[DISCOVERY_SRV_SUFFIX_MAX + 2] = "";
    int n;

    if (dlen > 0 && domain[dlen - 1] == '.') {
        dlen--; /* an absolute name: the same query */
    }
    if (dlen > DISCOVERY_SRV_HOST_MAX) {
        snprintf(msg, msg_len, "--discovery-srv: domain longer than %d bytes",
                 DISCOVERY_SRV_HOST_MAX);
        return ERR_LIMIT;
    }
    if (!host_name_ok(domain != NULL ? domain : "", dlen)) {
        snprintf(msg, msg_len, "--discovery-srv: not a DNS domain: '%.*s'",
                 (int)(dlen > 0 ? dlen : strlen(domain != NULL ? domain : "")),
                 domain != NULL ? domain : "");
        return ERR_INVALID;
    }
    if (slen > DISCOVERY_SRV_SUFFIX_MAX) {
        snprintf(msg, msg_len,
                 "--discovery-srv-name: longer than %d bytes (the SRV label "
                 "_etcd-server-ssl-<name> must fit 63 bytes)",
                 DISCOVERY_SRV_SUFFIX_MAX);
        return ERR_LIMIT;
    }
    if (slen > 0) {
        if (!host_name_ok(suffix, slen) || strchr(suffix, '.') != NULL) {
            snprintf(msg, msg_len,
                     "--discovery-srv-name: not a DNS label: '%s'", suffix);
            return ERR_INVALID;
        }
        snprintf(sfx, sizeof(sfx), "-%s", suffix);
    }
    n = snprintf(ssl, len, "_etcd-server-ssl%s._tcp.%.*s", sfx, (int)dlen,
                 domain);
    if (n < 0 || (size_t)n >= len || n > DISCOVERY_SRV_HOST_MAX) {
        snprintf(msg, msg_len,
                 "--discovery-srv: the SRV name for %.*s is longer than %d "
                 "bytes",
                 (int)dlen, domain, DISCOVERY_SRV_HOST_MAX);
        return ERR_LIMIT;
    }
    n = snprintf(plain, len, "_etcd-server%s._tcp.%.*s", sfx, (int)dlen,
                 domain);
    ASSERT(n > 0 && (size_t)n < len); /* shorter than the ssl name */
    return 0;
}

/* ------------------------------------------------------------ parsing */

static int target_cmp(const struct discovery_srv_target *a,
                      const struct discovery_srv_target *b)
{
    int c;
    if (a->priority != b->priority) {
        return a->priority < b->priority ? -1 : 1;
    }
    if (a->weight != b->weight) {
        return a->weight > b->weight ? -1 : 1;
    }
    c = strcmp(a->host, b->host);
    if (c != 0) {
        return c;
    }
    return (int)a->port - (int)b->port;
}

static void targets_sort(struct discovery_srv_answer *ans)
{
    /* insertion sort: at most DISCOVERY_SRV_TARGETS_MAX records */
    for (size_t i = 1; i < ans->count; i++) {
        struct discovery_srv_target t = ans->targets[i];
        size_t j = i;
        while (j > 0 && target_cmp(&ans->targets[j - 1], &t) > 0) {
            ans->targets[j] = ans->targets[j - 1];
            j--;
        }
        ans->targets[j] = t;
    }
}

/* One SRV record's data (rd, rdlen bytes inside the message h) into t.
 * Returns 1 for a "." target (skip), 0 or an error. */
static int srv_record(const ns_msg *h, const uint8_t *rd, size_t rdlen,
                      struct discovery_srv_target *t, char *msg, size_t msg_len)
{
    char name[NS_MAXDNAME];
    size_t len;
    if (rdlen < 7) {
        snprintf(msg, msg_len, "SRV record of %zu bytes", rdlen);
        return -EIO;
    }
    memset(t, 0, sizeof(*t));
    t->priority = (uint16_t)ns_get16(rd);
    t->weight = (uint16_t)ns_get16(rd + 2);
    t->port = (uint16_t)ns_get16(rd + 4);
    if (dn_expand(ns_msg_base(*h), ns_msg_end(*h), rd + 6, name, sizeof(name)) <
        0) {
        snprintf(msg, msg_len, "SRV record with a malformed target name");
        return -EIO;
    }
    len = strlen(name);
    if (len == 0 || strcmp(name, ".") == 0) {
        return 1; /* RFC 2782: "." says the service is not offered here */
    }
    if (len > DISCOVERY_SRV_HOST_MAX) {
        snprintf(msg, msg_len, "SRV target longer than %d bytes",
                 DISCOVERY_SRV_HOST_MAX);
        return ERR_LIMIT;
    }
    if (!host_name_ok(name, len)) {
        snprintf(msg, msg_len, "SRV target is not a host name: '%.80s'", name);
        return ERR_INVALID;
    }
    if (t->port == 0) {
        snprintf(msg, msg_len, "SRV target %s has port 0", name);
        return ERR_INVALID;
    }
    memcpy(t->host, name, len + 1);
    return 0;
}

int discovery_srv_parse(const uint8_t *resp, size_t len,
                        struct discovery_srv_answer *ans, char *msg,
                        size_t msg_len)
{
    ns_msg h;
    int rcode;
    int an;

    ans->count = 0;
    ans->status = DISCOVERY_SRV_FAILED;
    ans->why[0] = '\0';
    if (len > ANSWER_BYTES_MAX || ns_initparse(resp, (int)len, &h) < 0) {
        snprintf(msg, msg_len, "%s: the answer is not a DNS message",
                 ans->qname);
        return -EIO;
    }
    rcode = ns_msg_getflag(h, ns_f_rcode);
    if (rcode == ns_r_nxdomain) {
        ans->status = DISCOVERY_SRV_NXDOMAIN;
        return 0;
    }
    if (rcode != ns_r_noerror) {
        snprintf(ans->why, sizeof(ans->why), "DNS error code %d", rcode);
        return 0;
    }
    an = ns_msg_count(h, ns_s_an);
    for (int i = 0; i < an; i++) {
        ns_rr rr;
        struct discovery_srv_target t;
        int rc;
        if (ns_parserr(&h, ns_s_an, i, &rr) < 0) {
            snprintf(msg, msg_len, "%s: malformed record %d in the answer",
                     ans->qname, i);
            return -EIO;
        }
        if (ns_rr_type(rr) != ns_t_srv || ns_rr_class(rr) != ns_c_in) {
            continue; /* a CNAME on the way, or something else */
        }
        if (ans->count == DISCOVERY_SRV_TARGETS_MAX) {
            snprintf(msg, msg_len, "%s: more than %d SRV records", ans->qname,
                     DISCOVERY_SRV_TARGETS_MAX);
            return ERR_LIMIT;
        }
        rc = srv_record(&h, ns_rr_rdata(rr), ns_rr_rdlen(rr), &t, msg, msg_len);
        if (rc < 0) {
            char inner[160];
            snprintf(inner, sizeof(inner), "%s", msg);
            snprintf(msg, msg_len, "%s: %s", ans->qname, inner);
            return rc;
        }
        if (rc == 0) {
            ans->targets[ans->count++] = t;
        }
    }
    ans->status = ans->count > 0 ? DISCOVERY_SRV_OK : DISCOVERY_SRV_NODATA;
    targets_sort(ans);
    return 0;
}

/* ------------------------------------------------------------ derivation */

static const char *status_text(const struct discovery_srv_answer *a)
{
    switch (a->status) {
    case DISCOVERY_SRV_OK:
        return "no target resolved";
    case DISCOVERY_SRV_NXDOMAIN:
        return "no such name";
    case DISCOVERY_SRV_NODATA:
        return "no SRV records";
    case DISCOVERY_SRV_FAILED:
        return "lookup failed";
    case DISCOVERY_SRV_TIMEOUT:
        return "timed out";
    }
    return "?";
}

/* The scheme of url ("http" or "https"); NULL for other schemes. */
static const char *url_scheme(const char *url)
{
    if (strncmp(url, "https://", 8) == 0) {
        return "https";
    }
    if (strncmp(url, "http://", 7) == 0) {
        return "http";
    }
    return NULL;
}

struct derive {
    const char *name;
    const struct discovery_srv_self *self;
    size_t self_count;
    char *out;
    size_t out_len;
    size_t used;
    unsigned next_tmp; /* the next placeholder name */
    size_t members;    /* distinct members so far (we count once) */
    bool found_self;
    char mismatch[320]; /* etcd's scheme mismatch text, if one was seen */
    char *msg;
    size_t msg_len;
};

static int self_index(const struct derive *d, const char *addr)
{
    for (size_t i = 0; i < d->self_count; i++) {
        if (strcmp(d->self[i].addr, addr) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* Is "scheme://host:port" already in the text (an exact entry URL)? */
static bool url_listed(const struct derive *d, const char *url)
{
    size_t ul = strlen(url);
    const char *p = d->out;
    for (size_t guard = 0; guard <= 2 * DISCOVERY_SRV_TARGETS_MAX; guard++) {
        const char *eq = strchr(p, '=');
        const char *end;
        if (eq == NULL) {
            return false;
        }
        end = strchr(eq, ',');
        if (end == NULL) {
            end = eq + strlen(eq);
        }
        if ((size_t)(end - eq - 1) == ul && memcmp(eq + 1, url, ul) == 0) {
            return true;
        }
        if (*end == '\0') {
            return false;
        }
        p = end + 1;
    }
    return false;
}

static int add_target(struct derive *d, const char *scheme, const char *qname,
                      const struct discovery_srv_target *t)
{
    char url[NODE_URLS_MAX + 16];
    char tmp[16];
    const char *n;
    int si = self_index(d, t->addr);
    int len = snprintf(url, sizeof(url), "%s://%s:%u", scheme, t->host,
                       (unsigned)t->port);
    if (len < 0 || (size_t)len >= NODE_URLS_MAX) {
        snprintf(d->msg, d->msg_len,
                 "%s: target %.60s... makes a peer URL longer than %d bytes",
                 qname, t->host, NODE_URLS_MAX - 1);
        return ERR_LIMIT;
    }
    if (si >= 0 && strcmp(url_scheme(d->self[si].url), scheme) != 0) {
        /* etcd's pkg/srv: the entry is dropped, and said why */
        snprintf(d->mismatch, sizeof(d->mismatch),
                 "bootstrap at %.100s from DNS for %.60s has scheme mismatch "
                 "with expected peer %.80s",
                 url, qname, d->self[si].url);
        return 0;
    }
    if (url_listed(d, url)) {
        return 0; /* the same record twice */
    }
    if (si >= 0) {
        n = d->name;
    } else {
        do {
            snprintf(tmp, sizeof(tmp), "%u", d->next_tmp++);
        } while (strcmp(tmp, d->name) == 0);
        n = tmp;
    }
    if (si < 0 || !d->found_self) {
        if (d->members == DISCOVERY_SRV_TARGETS_MAX) {
            snprintf(d->msg, d->msg_len,
                     "--discovery-srv: SRV records name more than %d members",
                     DISCOVERY_SRV_TARGETS_MAX);
            return ERR_LIMIT;
        }
        d->members++;
    }
    d->found_self = d->found_self || si >= 0;
    len = snprintf(d->out + d->used, d->out_len - d->used, "%s%s=%s",
                   d->used > 0 ? "," : "", n, url);
    if (len < 0 || (size_t)len >= d->out_len - d->used) {
        d->out[d->used] = '\0';
        snprintf(d->msg, d->msg_len,
                 "--discovery-srv: the initial cluster from SRV records is "
                 "longer than %zu bytes",
                 d->out_len - 1);
        return ERR_LIMIT;
    }
    d->used += (size_t)len;
    return 0;
}

/* A failed or timed-out query stops discovery (see the file comment). */
static int answer_usable(const struct discovery_srv_answer *a, char *msg,
                         size_t msg_len)
{
    if (a->status == DISCOVERY_SRV_TIMEOUT) {
        snprintf(msg, msg_len,
                 "--discovery-srv: DNS query for %s timed out (%s)", a->qname,
                 a->why[0] != '\0' ? a->why : "no answer");
        return -ETIMEDOUT;
    }
    if (a->status == DISCOVERY_SRV_FAILED) {
        snprintf(msg, msg_len, "--discovery-srv: DNS query for %s failed (%s)",
                 a->qname, a->why[0] != '\0' ? a->why : "no reason given");
        return -EIO;
    }
    return 0;
}

static void not_found_text(const struct derive *d,
                           const struct discovery_srv_answer *ssl,
                           const struct discovery_srv_answer *plain)
{
    size_t skipped = 0;
    const struct discovery_srv_answer *both[2] = {ssl, plain};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < both[k]->count; i++) {
            skipped += both[k]->targets[i].addr[0] == '\0';
        }
    }
    snprintf(d->msg, d->msg_len,
             "--discovery-srv: no usable SRV records: %s: %s; %s: %s%s%s",
             ssl->qname, status_text(ssl), plain->qname, status_text(plain),
             skipped > 0 ? "; targets that did not resolve: " : "",
             skipped > 0 ? (skipped == 1 ? "1" : "several") : "");
}

static void self_missing_text(const struct derive *d)
{
    char mine[160] = "";
    size_t used = 0;
    for (size_t i = 0; i < d->self_count && used < sizeof(mine) - 1; i++) {
        int n = snprintf(mine + used, sizeof(mine) - used, "%s%s",
                         i > 0 ? "," : "", d->self[i].addr);
        used += n > 0 ? (size_t)n : 0;
    }
    snprintf(d->msg, d->msg_len,
             "cannot find local etcd member \"%s\" in SRV records (%s%s"
             "--initial-advertise-peer-urls resolve to %.160s; the cluster "
             "found: %.400s)",
             d->name, d->mismatch, d->mismatch[0] != '\0' ? "; " : "", mine,
             d->out);
}

int discovery_srv_derive(const char *name,
                         const struct discovery_srv_self *self,
                         size_t self_count,
                         const struct discovery_srv_answer *ssl,
                         const struct discovery_srv_answer *plain,
                         char *cluster, size_t cluster_len, char *msg,
                         size_t msg_len)
{
    struct derive d = {.name = name,
                       .self = self,
                       .self_count = self_count,
                       .out = cluster,
                       .out_len = cluster_len,
                       .msg = msg,
                       .msg_len = msg_len};
    const struct discovery_srv_answer *both[2] = {ssl, plain};
    const char *schemes[2] = {"https", "http"};
    int rc;

    ASSERT(cluster_len > 0);
    ASSERT(ssl->count <= DISCOVERY_SRV_TARGETS_MAX);
    ASSERT(plain->count <= DISCOVERY_SRV_TARGETS_MAX);
    cluster[0] = '\0';
    for (size_t i = 0; i < self_count; i++) {
        if (url_scheme(self[i].url) == NULL) {
            snprintf(msg, msg_len,
                     "--initial-advertise-peer-urls: %s is not an http or "
                     "https URL",
                     self[i].url);
            return ERR_INVALID;
        }
    }
    for (size_t k = 0; k < 2; k++) {
        rc = answer_usable(both[k], msg, msg_len);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t k = 0; k < 2; k++) {
        if (both[k]->status != DISCOVERY_SRV_OK) {
            continue;
        }
        for (size_t i = 0; i < both[k]->count; i++) {
            const struct discovery_srv_target *t = &both[k]->targets[i];
            if (t->addr[0] == '\0') {
                continue; /* did not resolve: etcd leaves it out too */
            }
            rc = add_target(&d, schemes[k], both[k]->qname, t);
            if (rc != 0) {
                cluster[0] = '\0';
                return rc;
            }
        }
    }
    if (d.used == 0) {
        not_found_text(&d, ssl, plain);
        return ERR_NOT_FOUND;
    }
    if (!d.found_self) {
        self_missing_text(&d);
        cluster[0] = '\0';
        return ERR_INVALID;
    }
    ASSERT(d.members >= 1 && d.members <= DISCOVERY_SRV_TARGETS_MAX);
    return 0;
}

/* ------------------------------------------------------------ lookups */

struct lookup {
    struct __res_state rs;
    uint8_t *buf; /* ANSWER_BYTES_MAX */
    uint64_t deadline_ns;
};

/* What the resolver's last failure means (h_errno and errno after
 * res_nquery/res_nsearch returned -1). */
static enum discovery_srv_status query_failure(struct lookup *lk, int err,
                                               char *why, size_t why_len)
{
    switch (lk->rs.res_h_errno) {
    case HOST_NOT_FOUND:
        return DISCOVERY_SRV_NXDOMAIN;
    case NO_DATA:
        return DISCOVERY_SRV_NODATA;
    case TRY_AGAIN:
        if (err == ETIMEDOUT) {
            snprintf(why, why_len,
                     "no answer from the DNS server in /etc/resolv.conf "
                     "after %d tries",
                     DISCOVERY_SRV_TRIES);
            return DISCOVERY_SRV_TIMEOUT;
        }
        snprintf(why, why_len, "server failure or no server reachable: %s",
                 err != 0 ? strerror(err) : "SERVFAIL");
        return DISCOVERY_SRV_FAILED;
    default:
        snprintf(why, why_len, "answer refused or malformed (%s)",
                 hstrerror(lk->rs.res_h_errno));
        return DISCOVERY_SRV_FAILED;
    }
}

/* One query of type for name into lk->buf. Returns the answer length, or
 * -1 with *st (and why) set. */
static int query(struct lookup *lk, const char *name, int type, bool search,
                 enum discovery_srv_status *st, char *why, size_t why_len)
{
    int n;
    if (clock_mono_ns() > lk->deadline_ns) {
        snprintf(why, why_len, "discovery took longer than %d ms",
                 DISCOVERY_SRV_DEADLINE_MS);
        *st = DISCOVERY_SRV_TIMEOUT;
        return -1;
    }
    errno = 0;
    n = search ? res_nsearch(&lk->rs, name, ns_c_in, type, lk->buf,
                             ANSWER_BYTES_MAX)
               : res_nquery(&lk->rs, name, ns_c_in, type, lk->buf,
                            ANSWER_BYTES_MAX);
    if (n < 0) {
        *st = query_failure(lk, errno, why, why_len);
        return -1;
    }
    if (n > ANSWER_BYTES_MAX) {
        snprintf(why, why_len, "answer larger than %d bytes", ANSWER_BYTES_MAX);
        *st = DISCOVERY_SRV_FAILED;
        return -1;
    }
    *st = DISCOVERY_SRV_OK;
    return n;
}

/* host to a dotted IPv4 address in ip (numeric, "localhost", or the first
 * A record; CNAMEs are followed by the server). *st says why not. */
static void resolve_a(struct lookup *lk, const char *host, bool search,
                      char *ip, size_t ip_len, enum discovery_srv_status *st,
                      char *why, size_t why_len)
{
    struct in_addr a;
    ns_msg h;
    int n;
    ip[0] = '\0';
    *st = DISCOVERY_SRV_OK;
    if (inet_pton(AF_INET, host, &a) == 1) {
        snprintf(ip, ip_len, "%s", host);
        return;
    }
    if (strcmp(host, "localhost") == 0) {
        snprintf(ip, ip_len, "127.0.0.1");
        return;
    }
    n = query(lk, host, ns_t_a, search, st, why, why_len);
    if (n < 0) {
        return;
    }
    if (ns_initparse(lk->buf, n, &h) < 0) {
        *st = DISCOVERY_SRV_FAILED;
        snprintf(why, why_len, "malformed answer for %s", host);
        return;
    }
    for (int i = 0; i < ns_msg_count(h, ns_s_an); i++) {
        ns_rr rr;
        if (ns_parserr(&h, ns_s_an, i, &rr) < 0) {
            break;
        }
        if (ns_rr_type(rr) == ns_t_a && ns_rr_class(rr) == ns_c_in &&
            ns_rr_rdlen(rr) == 4) {
            inet_ntop(AF_INET, ns_rr_rdata(rr), ip, (socklen_t)ip_len);
            return;
        }
    }
    *st = DISCOVERY_SRV_NODATA;
}

static int lookup_srv(struct lookup *lk, struct discovery_srv_answer *ans,
                      char *msg, size_t msg_len)
{
    int n = query(lk, ans->qname, ns_t_srv, false, &ans->status, ans->why,
                  sizeof(ans->why));
    int rc;
    if (n < 0) {
        ans->count = 0;
        return 0; /* the status says what happened */
    }
    rc = discovery_srv_parse(lk->buf, (size_t)n, ans, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < ans->count; i++) {
        struct discovery_srv_target *t = &ans->targets[i];
        enum discovery_srv_status st;
        char ip[INET_ADDRSTRLEN];
        char why[128] = "";
        resolve_a(lk, t->host, false, ip, sizeof(ip), &st, why, sizeof(why));
        if (st == DISCOVERY_SRV_TIMEOUT || st == DISCOVERY_SRV_FAILED) {
            snprintf(msg, msg_len,
                     "--discovery-srv: resolving SRV target %s of %s: %s",
                     t->host, ans->qname, why);
            return st == DISCOVERY_SRV_TIMEOUT ? -ETIMEDOUT : -EIO;
        }
        if (st != DISCOVERY_SRV_OK) {
            LOGW("discovery",
                 "SRV target %s of %s does not resolve to an "
                 "IPv4 address; left out",
                 t->host, ans->qname);
            continue;
        }
        snprintf(t->addr, sizeof(t->addr), "%s:%u", ip, (unsigned)t->port);
    }
    return 0;
}

/* "scheme://host:port[/...]" into host and port. */
static int url_host_port(const char *url, char *host, size_t host_len,
                         unsigned *port)
{
    const char *p = strstr(url, "://");
    const char *end;
    const char *colon;
    char *e;
    unsigned long v;
    if (p == NULL) {
        return ERR_INVALID;
    }
    p += 3;
    end = p + strcspn(p, "/?#");
    colon = memrchr(p, ':', (size_t)(end - p));
    if (colon == NULL || colon == p || (size_t)(colon - p) >= host_len) {
        return ERR_INVALID;
    }
    v = strtoul(colon + 1, &e, 10);
    if (e != end || v == 0 || v > 65535) {
        return ERR_INVALID;
    }
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    *port = (unsigned)v;
    return 0;
}

/* Our advertised peer URLs to addresses (etcd resolves them first and
 * fails if one does not resolve). */
static int resolve_self(struct lookup *lk, const struct options *o,
                        struct discovery_srv_self *self,
                        char (*addrs)[DISCOVERY_SRV_ADDR_MAX], char *msg,
                        size_t msg_len)
{
    for (size_t i = 0; i < o->initial_advertise_peer_urls.count; i++) {
        const char *url = o->initial_advertise_peer_urls.urls[i];
        char host[DISCOVERY_SRV_HOST_MAX + 1];
        char ip[INET_ADDRSTRLEN];
        char why[128] = "";
        enum discovery_srv_status st;
        unsigned port;
        if (url_host_port(url, host, sizeof(host), &port) != 0) {
            snprintf(msg, msg_len,
                     "--initial-advertise-peer-urls: no host:port in %s", url);
            return ERR_INVALID;
        }
        resolve_a(lk, host, true, ip, sizeof(ip), &st, why, sizeof(why));
        if (st != DISCOVERY_SRV_OK) {
            snprintf(msg, msg_len,
                     "--initial-advertise-peer-urls: cannot resolve %s to an "
                     "IPv4 address (%s)",
                     host, why[0] != '\0' ? why : "no A record");
            return st == DISCOVERY_SRV_TIMEOUT ? -ETIMEDOUT : ERR_INVALID;
        }
        snprintf(addrs[i], DISCOVERY_SRV_ADDR_MAX, "%s:%u", ip, port);
        self[i].url = url;
        self[i].addr = addrs[i];
    }
    return 0;
}

struct discovery_work {
    struct lookup lk;
    struct discovery_srv_answer ssl;
    struct discovery_srv_answer plain;
    struct discovery_srv_self self[OPTIONS_URLS_MAX];
    char addrs[OPTIONS_URLS_MAX][DISCOVERY_SRV_ADDR_MAX];
};

static int lookup_all(struct discovery_work *w, const struct options *o,
                      char *cluster, size_t cluster_len, char *msg,
                      size_t msg_len)
{
    int rc = resolve_self(&w->lk, o, w->self, w->addrs, msg, msg_len);
    if (rc == 0) {
        rc = lookup_srv(&w->lk, &w->ssl, msg, msg_len);
    }
    if (rc == 0 && (w->ssl.status == DISCOVERY_SRV_TIMEOUT ||
                    w->ssl.status == DISCOVERY_SRV_FAILED)) {
        /* derive fails on the first answer: do not wait for a second */
        w->plain.status = DISCOVERY_SRV_FAILED;
        snprintf(w->plain.why, sizeof(w->plain.why), "not queried");
    } else if (rc == 0) {
        rc = lookup_srv(&w->lk, &w->plain, msg, msg_len);
    }
    if (rc == 0) {
        rc = discovery_srv_derive(
            o->name, w->self, o->initial_advertise_peer_urls.count, &w->ssl,
            &w->plain, cluster, cluster_len, msg, msg_len);
    }
    return rc;
}

int discovery_srv_cluster(const struct options *o, char *cluster,
                          size_t cluster_len, char *msg, size_t msg_len)
{
    struct discovery_work *w;
    int rc;

    ASSERT(o->discovery_srv != NULL && cluster_len > 0);
    cluster[0] = '\0';
    w = mem_calloc(1, sizeof(*w));
    if (w == NULL) {
        return -ENOMEM;
    }
    rc = discovery_srv_qnames(o->discovery_srv, o->discovery_srv_name,
                              w->ssl.qname, w->plain.qname,
                              sizeof(w->ssl.qname), msg, msg_len);
    if (rc != 0) {
        mem_free(w);
        return rc;
    }
    w->lk.buf = mem_alloc(ANSWER_BYTES_MAX);
    if (w->lk.buf == NULL) {
        mem_free(w);
        return -ENOMEM;
    }
    if (res_ninit(&w->lk.rs) != 0) {
        snprintf(msg, msg_len,
                 "--discovery-srv: cannot set up the DNS resolver from "
                 "/etc/resolv.conf");
        mem_free(w->lk.buf);
        mem_free(w);
        return -EIO;
    }
    /* Bounded: glibc sends each query TRIES times to each configured
     * server and waits TRY_S for each answer (measured: 2 s per query with
     * one silent server). */
    w->lk.rs.retrans = DISCOVERY_SRV_TRY_S;
    w->lk.rs.retry = DISCOVERY_SRV_TRIES;
    w->lk.deadline_ns =
        clock_mono_ns() + (uint64_t)DISCOVERY_SRV_DEADLINE_MS * 1000000u;
    rc = lookup_all(w, o, cluster, cluster_len, msg, msg_len);
    if (rc == 0) {
        LOGI("discovery", "initial cluster from %s and %s: %s", w->ssl.qname,
             w->plain.qname, cluster);
    }
    res_nclose(&w->lk.rs);
    mem_free(w->lk.buf);
    mem_free(w);
    return rc;
}

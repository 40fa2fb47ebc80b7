/*
 * services.h - the service registry: instances under leased keys,
 * sessions, discovery reads, service settings and Prometheus http_sd.
 *
 * Does:     serves the REST API under /api/v1/sessions, /api/v1/registry
 *           and /api/v1/sd/prometheus (docs/registry.md) by reducing each
 *           call to ordinary etcd requests on the core (LeaseGrant,
 *           LeaseRevoke, Range, Txn, DeleteRange) through api_call, so
 *           Raft, MVCC, watch, lease and auth serve it unchanged and
 *           etcdctl sees every key it writes.
 * Owns:     one struct svc_req per call in progress, freed when it
 *           answered or was cancelled.
 * Threads:  the loop thread only.
 * Borrowed: every argument of svc_handle is copied before it returns; the
 *           body handed to the done callback lives until it returns.
 * Errors:   answers carry an HTTP status and {"error","code","message"}
 *           (code names the problem: bad_request, not_found, conflict,
 *           session_expired, too_large, permission_denied, unavailable);
 *           bad input is 400 naming the field, never a 5xx and never a
 *           partial write.
 * Limits:   SVC_NAME_MAX name bytes, SVC_DOC_MAX bytes of one instance
 *           document, SVC_LABELS_MAX labels, SVC_LIST_MAX instances read
 *           per service or namespace (the Range limit; more is 413).
 *           Active checks (svc_health.c), from the daemon's flags, each
 *           capped by a hard maximum below: probes in flight
 *           (--registry-probes-max), instances probed
 *           (--registry-probe-instances-max), state writes in flight
 *           (--registry-probe-writes-max); the instances gauge's
 *           (namespace, service) series (--registry-metrics-services-max).
 *           A bound that bites is counted on /metrics, never an abort.
 * Not here: HTTP framing (registry/http/http_api.c), pushed discovery
 *           (registry/http streams), lease expiry (consensus/lease and
 *           registry/server/api_lease.c).
 *
 * Layout (defaults): instance /registry/<ns>/services/<svc>/<id> -> the
 * instance document (JSON, below), attached to its session's lease; the
 * service's settings /registry/<ns>/settings/<svc> (outside the services
 * prefix, so etcd's gRPC resolver, which reads the whole service prefix,
 * never sees them). The stored document has no "revision": readers add
 * the key's mod_revision when they render it.
 *
 * Instance document: {"id","namespace","service","addr":"host:port",
 * "host","port","weight","zone","version","labels":{..},"meta":{..},
 * "status":"up"|"draining","health":"passing"|"critical"|"unknown",
 * "check":{"status","output","since"} (the probe result that last changed
 * "health", and when: the prober writes only flips), "checks":[..],
 * "session":"<hex>", "registered_at":"<RFC 3339>" (the latest PUT of this
 * id: a re-registration sets it again; PATCH and health writes keep it)}.
 * "addr" is the field etcd's resolver reads; no field is called
 * "metadata" in any case (grpc-go's balancer panics on an object there).
 */
#ifndef CAIRN_REGISTRY_SERVICES_H
#define CAIRN_REGISTRY_SERVICES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "base/buf.h"

#define SVC_NAME_MAX         128
#define SVC_DOC_MAX          (64 * 1024)
#define SVC_LABELS_MAX       64
#define SVC_CHECKS_MAX       8
#define SVC_LIST_MAX         100000
#define SVC_TTL_DEFAULT      10
#define SVC_TTL_MAX          3600
#define SVC_WEIGHT_MAX       1000
#define SVC_WEIGHT_DEF       100
#define SVC_HOST_MAX         253
/* a grpc check's health service name ("" or absent: the server's own) */
#define SVC_GRPC_SERVICE_MAX 200
#define SVC_PREFIX           "/registry/"
#define SVC_MSG_MAX          256

/* Hard maxima of the registry's flags (options.c checks them). Probes:
 * each holds a socket (fd), and a tick starts at most this many, so the
 * loop's work per tick stays bounded. Instances probed: the registry
 * never lists more than SVC_LIST_MAX, and each costs ~200 bytes plus its
 * heap slots. Writes: each is a proposal held by consensus/node until it
 * applies. Gauge services: each is 3 series per scrape, per member, for
 * Prometheus to store; past 10k a registry wants recording rules, not
 * per-service series. */
#define SVC_PROBES_HARD_MAX          4096
#define SVC_PROBE_INSTANCES_HARD_MAX SVC_LIST_MAX
#define SVC_PROBE_WRITES_HARD_MAX    1024
#define SVC_GAUGE_SERVICES_HARD_MAX  10000

struct server;
struct svc_req;

/* The answer: an HTTP status and a JSON body (len bytes, not terminated),
 * borrowed until the callback returns. */
typedef void (*svc_done_fn)(void *ctx, int status, const char *body,
                            size_t len);

/* ------------------------------------------------------------- model */

/* 1..SVC_NAME_MAX bytes of [A-Za-z0-9._-]. */
bool svc_name_ok(const char *s, size_t len);

/* Parse "host:port" ("[v6]:port" for IPv6) into host and port. ERR_INVALID
 * when it is not of that form or the port is not 1..65535. */
int svc_addr_parse(const char *addr, char *host, size_t host_len, int *port);

/* A registration body, checked: every field of the instance document but
 * its names and session. Strings and objects are borrowed from the body
 * (which must outlive it); checks is the normalized array, owned (NULL:
 * none). svc_instance_clear releases it. */
struct svc_inst {
    char host[SVC_HOST_MAX + 1];
    char addr[SVC_HOST_MAX + 16];
    int port;
    const char *zone;    /* "" when absent */
    const char *version; /* "" when absent */
    int64_t weight;
    json_t *labels; /* NULL: {} */
    json_t *meta;   /* NULL: {} */
    const char *status;
    json_t *checks;
    char registered_at[40];
};

/* Check a registration body (borrowed) into *out; now_s is the
 * registration time. ERR_BAD_REQUEST with msg naming the field on bad
 * input (*out then holds nothing to clear). */
int svc_instance_check(json_t *body, int64_t now_s, struct svc_inst *out,
                       char *msg, size_t msg_len);
void svc_instance_clear(struct svc_inst *in);

/* The "health" a new registration's document starts with: passing, or
 * unknown when it has checks to run first. */
const char *svc_instance_health(const struct svc_inst *in);

/* The stored document's text, as svc_json_dump() writes the tree that
 * svc_instance_build() makes from the same body (byte for byte), without
 * building it: a registration's hot path. malloc'd, or NULL when out of
 * memory. */
char *svc_instance_render(const struct svc_inst *in, const char *ns,
                          const char *svc, const char *id, const char *session);

/* Build the stored instance document from a registration body. body is
 * borrowed; *out is a new reference on success. ns, svc, id must be valid
 * names; session is the lease in hex; now_s the registration time.
 * ERR_BAD_REQUEST with msg naming the field on bad input. */
int svc_instance_build(json_t *body, const char *ns, const char *svc,
                       const char *id, const char *session, int64_t now_s,
                       json_t **out, char *msg, size_t msg_len);

/* Apply a PATCH body (status, weight, labels, meta, zone, version) to doc
 * in place. ERR_BAD_REQUEST naming the field. */
int svc_instance_patch(json_t *doc, json_t *patch, char *msg, size_t msg_len);

/* Filters of a discovery read (GET /api/v1/registry/<ns>/<svc>). */
struct svc_filter {
    bool healthy; /* healthy=true */
    char zone[SVC_NAME_MAX + 1];
    char version[SVC_NAME_MAX + 1];
    char selector[1024]; /* k=v,k2!=v2 */
};

/* Parse a selector "k=v,k2!=v2" (ERR_BAD_REQUEST on a malformed term). */
int svc_selector_check(const char *sel, char *msg, size_t msg_len);

/* Does doc pass every filter but healthy (the caller applies that one,
 * since protection decides whether it applies)? */
bool svc_filter_match(const struct svc_filter *f, json_t *doc);

/* Is the instance healthy: status up and health passing? */
bool svc_instance_healthy(json_t *doc);

/* svc_json.c: the plain JSON shapes (objects, arrays, escape-free ASCII
 * strings, integers of up to 18 digits, true, false, null) read into the
 * tree json_loadb would make, without its byte-at-a-time reader; NULL for
 * any other text (svc_json_load), which svc_json_loadb then hands to
 * json_loadb(text, len, flags, err) so that odd shapes and every error
 * read as before. reject_dups: JSON_REJECT_DUPLICATES. */
json_t *svc_json_load(const char *text, size_t len, bool reject_dups);
json_t *svc_json_loadb(const char *text, size_t len, size_t flags,
                       json_error_t *err);

/* The stored value val[0..len) as an instance document with "revision"
 * and "create_revision" added, or NULL when it is not one (a key someone
 * wrote with etcdctl). A new reference. */
json_t *svc_doc_parse(const void *val, size_t len, int64_t mod_rev,
                      int64_t create_rev);

/* json_dumps(v, JSON_COMPACT), byte for byte, at a fraction of its cost
 * (jansson formats each integer with snprintf and each string through a
 * callback a byte at a time), but for reals: each in the fewest digits
 * that read back as the same double (jscan_real: 0.3, where jansson
 * writes 0.29999999999999999). Strings that need escaping are handed to
 * jansson itself. Every JSON text the registry and config APIs store or
 * answer is written by this. A malloc'd text (free() it), or NULL when
 * out of memory. */
char *svc_json_dump(const json_t *v);

/* A quick look at a stored value, without building a tree: is it an
 * instance document (a JSON object whose "addr" is a string, the test of
 * svc_doc_parse) and what is its top-level "health" string? Returns 1 for
 * an instance, with health[cap] set ("" when "health" is absent or not a
 * string), 0 for a JSON text that is not one (jansson refuses a bare
 * scalar; either way it is no instance), and -1 when it cannot tell
 * cheaply: a backslash or a byte above 0x7f in any string, a number of
 * more than 15 digits or with an exponent, nesting deeper than 32, a
 * "health" that does not fit cap, or anything jansson would refuse. The
 * caller asks jansson then. Where it answers 0 or 1, the answer is
 * jansson's (json_loadb with no flags: a repeated member's last value
 * wins). */
int svc_doc_peek(const void *val, size_t len, char *health, size_t cap);

/* Split an instance key /registry/<ns>/services/<svc>/<id> into its names
 * (each buffer SVC_NAME_MAX + 1 bytes). ERR_INVALID when it is not one. */
int svc_key_split(const char *key, size_t len, char *ns, char *svc, char *id);

/* The key prefix of a discovery subscription path "<ns>" or "<ns>/<svc>"
 * (what follows /api/v1/watch/registry/): "/registry/<ns>/services/" or
 * "/registry/<ns>/services/<svc>/" into out (at least 512 bytes).
 * ERR_INVALID when the path is not one or two names. */
int svc_watch_prefix(const char *path, char *out, size_t out_len, size_t *n);

/* ------------------------------------------------------------- calls */

/* Serve one REST call. method is "GET", "PUT", ...; path starts with
 * "/api/v1/"; query is the raw query string without '?', or NULL; body
 * (may be NULL when len is 0) is the request body; token is the caller's
 * etcd auth token or NULL; cert_user the CN of the client's verified TLS
 * certificate under --client-cert-auth, or NULL: with auth on and no
 * token, the user (etcd's rule); peer the client's address (for the audit log)
 * or NULL. done runs exactly once, possibly before this
 * returns, unless svc_cancel is called first. *slot holds the call while
 * it is in flight and is set to NULL before done runs (so the caller can
 * tell whether there is anything to cancel). A path that is not the
 * registry's is answered 404. */
void svc_handle(struct server *s, const char *method, const char *path,
                const char *query, const char *body, size_t len,
                const char *token, const char *cert_user, const char *peer,
                struct svc_req **slot, svc_done_fn done, void *ctx);

/* The caller is gone (r is the non-NULL *slot): done will not run; the
 * call's inner request is cancelled (a write already proposed still
 * commits). *slot becomes NULL. */
void svc_cancel(struct svc_req *r);

/* The registry API's counters in Prometheus text, appended to out. */
int svc_api_metrics(struct server *s, struct buf *out);

/* Does path belong to the registry API (so the front end may route it)? */
bool svc_path_is_ours(const char *path);

/* Render the answer body of an error (exported for the front ends' own
 * errors, so that every /api/v1/ error has one shape). */
int svc_error_body(struct buf *out, const char *code, const char *message,
                   const char *field);

/* The value of name in a query string "a=1&b=2" (percent-decoded) into
 * out; 1 when absent, ERR_LIMIT when longer than out_len - 1. */
int svc_query_get(const char *query, const char *name, char *out,
                  size_t out_len);

/* ------------------------------------------------------ health checks */

/* Active checks (svc_health.c): the leader probes every instance whose
 * document has "checks" and writes "health" and "check" when the damped
 * state changes. Loop thread only. The server calls these from its node
 * observer (registry/server/api_watch.c). */
struct kv_event;

/* After the node is open (reads the current leader). ERR: -ENOMEM. */
int svc_health_start(struct server *s, char *msg, size_t msg_len);
/* Before the node closes: probes are cancelled; proposals in flight
 * answer later (ERR_STOPPED) into memory kept for them. */
void svc_health_stop(struct server *s);
/* The node's leader changed: start or stop probing here. */
void svc_health_on_leader(struct server *s, uint64_t leader, uint64_t term);
/* Applied store events (borrowed for the call), in revision order. */
void svc_health_on_events(struct server *s, const struct kv_event *evs,
                          size_t n);
/* val[0..vn) is an instance document with that "health" this member is
 * about to write at key[0..kn): a memo for the instances gauge, which then
 * need not read the bytes again when the put's event brings them back. */
void svc_health_hint(struct server *s, const char *key, size_t kn,
                     const char *val, size_t vn, const char *health);
/* A snapshot replaced the store: rescan when leading. */
void svc_health_on_restored(struct server *s);
/* Append the Prometheus text of the checks' counters to out. */
int svc_health_metrics(struct server *s, struct buf *out);

#endif

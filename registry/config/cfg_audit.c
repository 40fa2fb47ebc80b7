/*
 * cfg_audit.c - the audit log's read side (docs/audit.md):
 *
 *   GET /api/v1/audit?namespace=&since=&principal=&action=&limit=
 *   GET /api/v1/audit/verify
 *
 * Records are written by consensus/apply (apply.h, "audit log") with the
 * registry and config writes they describe; this file only reads them, on
 * this member's store (a serializable read, as etcdctl --consistency=s: a
 * write this member answered is always visible to it).
 *
 * Listing. Records are keys /audit/<seq %016x> whose revision (the write's)
 * grows with seq, so since=<revision> is a binary search over seq (a point
 * range per probe), then a forward scan; without since, the newest records
 * are read backwards. Either scan reads at most AUDIT_SCAN_MAX records per
 * call (filters may skip them all); "more" and "next_since" say where to go
 * on. Answers are oldest first.
 *
 * Who sees what. With auth off, everyone everything (principal
 * "anonymous"). With auth on, a user who may read the range /audit/ (root,
 * or a role granted it) sees every record and may verify; any other user
 * sees the records of namespaces whose config (/config/<ns>/) or registry
 * (/registry/<ns>/) prefix it may read, and no records without a namespace
 * (sessions). Verify needs the /audit/ range: a chain check over records a
 * user may not read would say what they hold.
 */
#include "registry/config/cfg_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "base/str.h"
#include "consensus/apply/apply.h"
#include "consensus/kv/kv.h"
#include "consensus/node/node.h"
#include "registry/grpc/grpc.h"
#include "registry/server/api_auth.h"
#include "registry/server/server.h"
#include "registry/services/services.h"

#define AUDIT_LIMIT_DEF 100
#define AUDIT_LIMIT_MAX 1000
#define AUDIT_SCAN_MAX  10000 /* records read per call, filters or not */
#define AUDIT_PAGE      256
#define NS_CACHE        32

struct ns_verdict {
    char ns[CFG_NAME_MAX + 1];
    bool ok;
};

struct q {
    struct server *s;
    const char *token;
    const char *cert_user; /* used when token is NULL */
    bool all;              /* may read /audit/: every record */
    char ns[CFG_NAME_MAX + 1];
    char principal[256];
    char action[64];
    int64_t since; /* -1: none */
    size_t limit;
    struct ns_verdict cache[NS_CACHE];
    size_t cached;
    json_t *out; /* records, in scan order */
    size_t scanned;
    int64_t last_rev; /* revision of the last record scanned */
};

static int prefix_check(struct q *q, const char *prefix)
{
    char end[CFG_KEY_MAX];
    size_t n = strlen(prefix);
    ASSERT(n > 0 && n < sizeof(end));
    memcpy(end, prefix, n);
    end[n - 1]++;
    return api_auth_range_check_as(q->s, q->token, q->cert_user,
                                   (const uint8_t *)prefix, n,
                                   (const uint8_t *)end, n);
}

static bool ns_visible(struct q *q, const char *ns)
{
    char p[CFG_KEY_MAX];
    bool ok;
    if (q->all) {
        return true;
    }
    if (ns == NULL || ns[0] == '\0' || strlen(ns) > CFG_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < q->cached; i++) {
        if (strcmp(q->cache[i].ns, ns) == 0) {
            return q->cache[i].ok;
        }
    }
    snprintf(p, sizeof(p), CFG_PREFIX "%s/", ns);
    ok = prefix_check(q, p) == 0;
    if (!ok) {
        snprintf(p, sizeof(p), SVC_PREFIX "%s/", ns);
        ok = prefix_check(q, p) == 0;
    }
    struct ns_verdict *v = &q->cache[q->cached < NS_CACHE ? q->cached++ : 0];
    snprintf(v->ns, sizeof(v->ns), "%s", ns);
    v->ok = ok;
    return ok;
}

static bool str_is(json_t *o, const char *field, const char *want)
{
    const char *v = json_string_value(json_object_get(o, field));
    return want[0] == '\0' || (v != NULL && strcmp(v, want) == 0);
}

/* One stored record: filter it and keep it. */
static int take(struct q *q, const struct kv_kv *kv)
{
    json_t *o = json_loadb((const char *)kv->value, kv->value_len, 0, NULL);
    q->scanned++;
    q->last_rev = kv->mod_revision;
    if (o == NULL || !json_is_object(o)) {
        /* not a record (edited by hand): verify reports it; listing
         * shows the key so that it is not silently hidden */
        json_decref(o);
        if (!q->all) {
            return 0;
        }
        o = json_pack("{s:s%,s:I,s:b}", "key", (const char *)kv->key,
                      kv->key_len, "revision", (json_int_t)kv->mod_revision,
                      "unreadable", 1);
        return o == NULL ? -ENOMEM : json_array_append_new(q->out, o);
    }
    const char *ns = json_string_value(json_object_get(o, "namespace"));
    if (!ns_visible(q, ns) || !str_is(o, "namespace", q->ns) ||
        !str_is(o, "principal", q->principal) ||
        !str_is(o, "action", q->action)) {
        json_decref(o);
        return 0;
    }
    return json_array_append_new(q->out, o) != 0 ? -ENOMEM : 0;
}

/* The first record at or after seq: its seq and revision; 1 when none. */
static int first_from(struct kv_read *rd, uint64_t seq, uint64_t *got,
                      int64_t *rev)
{
    static const char end[] = APPLY_AUDIT_PREFIX_END;
    char k[APPLY_AUDIT_KEY_MAX];
    struct kv_range_req r = {0};
    struct kv_range_resp resp;
    struct kv_result res = {0};
    r.key = (const uint8_t *)k;
    r.key_len = apply_audit_key(seq, k, sizeof(k));
    r.range_end = (const uint8_t *)end;
    r.range_end_len = sizeof(end) - 1;
    r.limit = 1;
    r.keys_only = true;
    int rc = kv_range(rd, &r, &res, &resp);
    if (rc == 0 && resp.kvs_count == 0) {
        rc = 1;
    }
    if (rc == 0) {
        char hex[17] = {0};
        size_t pl = strlen(APPLY_AUDIT_PREFIX);
        size_t n = resp.kvs[0].key_len - pl;
        memcpy(hex, resp.kvs[0].key + pl, n < 16 ? n : 16);
        *got = strtoull(hex, NULL, 16);
        *rev = resp.kvs[0].mod_revision;
        if (*got < seq) {
            *got = seq; /* not one of ours: step past it */
        }
    }
    kv_result_free(&res);
    return rc;
}

/* The smallest seq whose record's revision is above since (revisions
 * grow with seq). */
static int seek_since(struct kv_read *rd, int64_t since, uint64_t *start)
{
    uint64_t lo = 0, hi = UINT64_MAX / 2;
    int steps = 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2, got = mid;
        int64_t rev = 0;
        ASSERT(++steps <= 130);
        int rc = first_from(rd, mid, &got, &rev);
        if (rc < 0) {
            return rc;
        }
        if (rc == 1 || rev > since) {
            hi = mid;
        } else {
            lo = got + 1;
        }
    }
    *start = lo;
    return 0;
}

/* Scan from key k (inclusive) up, or below k down, a page at a time. */
static int scan(struct q *q, struct kv_read *rd, uint64_t from, bool down,
                bool *more)
{
    static const char end[] = APPLY_AUDIT_PREFIX_END;
    char k[APPLY_AUDIT_KEY_MAX];
    size_t kn = apply_audit_key(from, k, sizeof(k));
    *more = true;
    while (json_array_size(q->out) < q->limit && q->scanned < AUDIT_SCAN_MAX) {
        struct kv_range_req r = {0};
        struct kv_range_resp resp;
        struct kv_result res = {0};
        r.key = down ? (const uint8_t *)APPLY_AUDIT_PREFIX : (uint8_t *)k;
        r.key_len = down ? strlen(APPLY_AUDIT_PREFIX) : kn;
        r.range_end = down ? (const uint8_t *)k : (const uint8_t *)end;
        r.range_end_len = down ? kn : sizeof(end) - 1;
        r.limit = AUDIT_PAGE;
        r.sort_order = down ? KV_SORT_DESCEND : KV_SORT_ASCEND;
        r.sort_target = KV_SORT_KEY;
        int rc = kv_range(rd, &r, &res, &resp);
        size_t i = 0;
        for (; rc == 0 && i < resp.kvs_count; i++) {
            if (json_array_size(q->out) >= q->limit ||
                q->scanned >= AUDIT_SCAN_MAX) {
                break;
            }
            rc = take(q, &resp.kvs[i]);
        }
        bool last = rc == 0 && i == resp.kvs_count && !resp.more;
        if (rc == 0 && i > 0) {
            const struct kv_kv *kv = &resp.kvs[i - 1];
            kn = kv->key_len < sizeof(k) ? kv->key_len : sizeof(k) - 1;
            memcpy(k, kv->key, kn);
            if (!down) {
                k[kn++] = '\0'; /* the next key after it */
            }
        }
        kv_result_free(&res);
        if (rc != 0) {
            return rc;
        }
        if (last) {
            *more = false;
            break;
        }
    }
    return 0;
}

static int parse(struct q *q, const char *query)
{
    char v[64];
    q->since = -1;
    q->limit = AUDIT_LIMIT_DEF;
    if (svc_query_get(query, "namespace", q->ns, sizeof(q->ns)) < 0 ||
        svc_query_get(query, "principal", q->principal, sizeof(q->principal)) <
            0 ||
        svc_query_get(query, "action", q->action, sizeof(q->action)) < 0) {
        return ERR_BAD_REQUEST;
    }
    if (svc_query_get(query, "since", v, sizeof(v)) == 0) {
        char *e;
        long long n = strtoll(v, &e, 10);
        if (v[0] == '\0' || *e != '\0' || n < 0) {
            return ERR_BAD_REQUEST;
        }
        q->since = n;
    }
    if (svc_query_get(query, "limit", v, sizeof(v)) == 0) {
        char *e;
        long long n = strtoll(v, &e, 10);
        if (v[0] == '\0' || *e != '\0' || n < 1 || n > AUDIT_LIMIT_MAX) {
            return ERR_LIMIT;
        }
        q->limit = (size_t)n;
    }
    return 0;
}

static json_t *error_body(int status, const char *code, const char *msg,
                          const char *field, int *status_out)
{
    char tmp[512];
    msg = str_utf8_safe(msg, tmp, sizeof(tmp)); /* may quote input */
    json_t *o =
        json_pack("{s:s,s:s,s:s}", "error", msg, "code", code, "message", msg);
    if (o != NULL && field != NULL) {
        json_object_set_new(o, "field", json_string(field));
    }
    *status_out = status;
    return o;
}

static json_t *err_body(int err, int *status)
{
    const char *code = "internal";
    *status = grpc_api_v1_status(err, &code);
    return error_body(*status, code, err_str(err), NULL, status);
}

static json_t *list(struct q *q, int *status)
{
    struct kv_read *rd;
    bool more = false;
    uint64_t start = 0;
    int rc = node_read_begin(q->s->node, &rd);
    if (rc != 0) {
        return err_body(rc, status);
    }
    int64_t at = kv_read_rev(rd);
    q->out = json_array();
    rc = q->out == NULL ? -ENOMEM : 0;
    if (rc == 0 && q->since >= 0) {
        rc = seek_since(rd, q->since, &start);
    }
    if (rc == 0) {
        rc = q->since >= 0 ? scan(q, rd, start, false, &more)
                           : scan(q, rd, UINT64_MAX / 2, true, &more);
    }
    node_read_end(q->s->node, rd);
    if (rc != 0) {
        json_decref(q->out);
        return err_body(rc, status);
    }
    if (q->since < 0) { /* read newest first: answer oldest first */
        size_t n = json_array_size(q->out);
        for (size_t i = 0; i < n / 2; i++) {
            json_t *a = json_incref(json_array_get(q->out, i));
            json_t *b = json_incref(json_array_get(q->out, n - 1 - i));
            json_array_set_new(q->out, i, b);
            json_array_set_new(q->out, n - 1 - i, a);
        }
    }
    json_t *o = json_pack("{s:o,s:b,s:I}", "records", q->out, "more", more,
                          "revision", (json_int_t)at);
    if (o != NULL && more && q->since >= 0) {
        json_object_set_new(o, "next_since", json_integer(q->last_rev));
    }
    return o;
}

static json_t *verify(struct q *q, int *status)
{
    struct apply_audit_verdict v;
    struct kv_read *rd;
    int rc = node_read_begin(q->s->node, &rd);
    if (rc != 0) {
        return err_body(rc, status);
    }
    int64_t at = kv_read_rev(rd);
    rc = apply_audit_verify(rd, &v);
    node_read_end(q->s->node, rd);
    if (rc != 0) {
        return err_body(rc, status);
    }
    json_t *o =
        json_pack("{s:b,s:I,s:I,s:I,s:s,s:I}", "ok", v.ok, "records",
                  (json_int_t)v.records, "first_seq", (json_int_t)v.first_seq,
                  "head_seq", (json_int_t)v.head_seq, "head_hash", v.head_hash,
                  "revision", (json_int_t)at);
    if (o != NULL && !v.ok) {
        char k[APPLY_AUDIT_KEY_MAX];
        apply_audit_key(v.broken_seq, k, sizeof(k));
        json_object_set_new(o, "broken_seq",
                            json_integer((json_int_t)v.broken_seq));
        json_object_set_new(o, "broken_key", json_string(k));
        json_object_set_new(o, "reason", json_string(v.reason));
    }
    return o;
}

json_t *cfg__audit(struct server *s, const char *method, const char *path,
                   const char *query, const char *token, const char *cert_user,
                   int *status)
{
    struct q *q;
    json_t *o;
    bool is_verify = strcmp(path, "/api/v1/audit/verify") == 0;
    *status = 200;
    if (!is_verify && strcmp(path, "/api/v1/audit") != 0) {
        return error_body(404, "not_found", "no such API path", NULL, status);
    }
    if (strcmp(method, "GET") != 0) {
        return error_body(405, "method_not_allowed",
                          "method not allowed on this path", NULL, status);
    }
    q = mem_calloc(1, sizeof(*q));
    if (q == NULL) {
        return err_body(-ENOMEM, status);
    }
    q->s = s;
    q->token = token;
    q->cert_user = cert_user;
    int rc = is_verify ? 0 : parse(q, query != NULL ? query : "");
    if (rc != 0) {
        mem_free(q);
        return rc == ERR_LIMIT
                   ? error_body(400, "bad_request", "limit must be 1-1000",
                                "limit", status)
                   : error_body(400, "bad_request",
                                "bad parameter: namespace, principal, "
                                "action (names), since (a revision >= 0)",
                                NULL, status);
    }
    rc = prefix_check(q, APPLY_AUDIT_PREFIX);
    q->all = rc == 0;
    if (rc == ERR_INVALID_AUTH_TOKEN || rc == ERR_USER_EMPTY ||
        (is_verify && rc != 0) ||
        (!q->all && q->ns[0] != '\0' && !ns_visible(q, q->ns))) {
        mem_free(q);
        return err_body(rc != 0 ? rc : ERR_PERMISSION_DENIED, status);
    }
    o = is_verify ? verify(q, status) : list(q, status);
    mem_free(q);
    return o != NULL ? o : err_body(-ENOMEM, status);
}

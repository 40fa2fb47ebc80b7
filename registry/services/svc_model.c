/*
 * svc_model.c - the registry's data model: names, addresses, the instance
 * document built from a registration, PATCH, filters and query strings.
 * Pure functions over jansson values: no I/O, no server state, so the
 * unit tests (tests/unit/services) cover every rule directly.
 *
 * Why the document is built field by field rather than stored as sent: the
 * stored value is read by other programs (etcd's gRPC resolver decodes it
 * with Go's case-insensitive field matching), so only known fields of
 * checked types are kept, and the one dangerous name, "metadata" in any
 * case, can never appear (grpc-go's round-robin balancer panics on a map
 * there: "hash of unhashable type").
 */
#include "registry/services/services.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/assert.h"
#include "base/err.h"
#include "base/jscan.h"
#include "base/str.h"

bool svc_name_ok(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > SVC_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-') {
            return false;
        }
    }
    /* "." and ".." would read as path steps to a human and to proxies */
    return !(len <= 2 && s[0] == '.' && (len == 1 || s[1] == '.'));
}

static int bad(char *msg, size_t msg_len, const char *fmt, const char *field)
{
    snprintf(msg, msg_len, fmt, field);
    return ERR_BAD_REQUEST;
}

static bool host_ok(const char *h, size_t n)
{
    if (n == 0 || n > SVC_HOST_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '/' || ch == '"' || ch == '\\' ||
            ch == '[' || ch == ']' || ch == '@' || ch == '?' || ch == '#') {
            return false;
        }
    }
    return true;
}

static int port_parse(const char *p, int *port)
{
    char *end = NULL;
    if (*p == '\0' || *p == '+' || *p == '-' || strlen(p) > 5) {
        return ERR_INVALID;
    }
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 65535) {
        return ERR_INVALID;
    }
    *port = (int)v;
    return 0;
}

int svc_addr_parse(const char *addr, char *host, size_t host_len, int *port)
{
    const char *colon;
    const char *h = addr;
    size_t hn;
    if (addr == NULL || host_len == 0) {
        return ERR_INVALID;
    }
    if (addr[0] == '[') { /* [v6]:port */
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':') {
            return ERR_INVALID;
        }
        h = addr + 1;
        hn = (size_t)(close - h);
        colon = close + 1;
        if (hn == 0 || strchr(h, ':') == NULL || strchr(h, ':') > close) {
            return ERR_INVALID; /* brackets hold an IPv6 address */
        }
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL || memchr(addr, ':', (size_t)(colon - addr))) {
            return ERR_INVALID; /* none, or a bare IPv6 address */
        }
        hn = (size_t)(colon - addr);
        if (!host_ok(h, hn)) {
            return ERR_INVALID;
        }
    }
    for (size_t i = 0; addr[0] == '[' && i < hn; i++) {
        if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.' &&
            h[i] != '%') {
            return ERR_INVALID;
        }
    }
    if (hn + 1 > host_len || port_parse(colon + 1, port) != 0) {
        return ERR_INVALID;
    }
    memcpy(host, h, hn);
    host[hn] = '\0';
    return 0;
}

/* A short string field (<= max bytes, no control characters), or absent. */
static int opt_str(json_t *body, const char *name, size_t max, const char **out,
                   char *msg, size_t msg_len)
{
    json_t *v = json_object_get(body, name);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return bad(msg, msg_len, "field \"%s\" must be a string", name);
    }
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > max || strlen(s) != n) {
        return bad(msg, msg_len, "field \"%s\" is too long or holds NUL", name);
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < ' ') {
            return bad(msg, msg_len, "field \"%s\" holds a control character",
                       name);
        }
    }
    *out = s;
    return 0;
}

/* labels: an object of at most SVC_LABELS_MAX string values; keys are
 * names (so a selector can name them). */
static int labels_check(json_t *v, char *msg, size_t msg_len)
{
    const char *k;
    json_t *x;
    if (!json_is_object(v)) {
        return bad(msg, msg_len, "field \"%s\" must be an object", "labels");
    }
    if (json_object_size(v) > SVC_LABELS_MAX) {
        return bad(msg, msg_len, "field \"%s\" has too many entries", "labels");
    }
    json_object_foreach(v, k, x)
    {
        if (!svc_name_ok(k, strlen(k))) {
            snprintf(msg, msg_len,
                     "field \"labels\": key \"%.64s\" is not a name "
                     "(1-128 of [A-Za-z0-9._-])",
                     k);
            return ERR_BAD_REQUEST;
        }
        if (!json_is_string(x) || json_string_length(x) > 256) {
            snprintf(msg, msg_len,
                     "field \"labels\": value of \"%.64s\" must be a string "
                     "of at most 256 bytes",
                     k);
            return ERR_BAD_REQUEST;
        }
    }
    return 0;
}

static int weight_get(json_t *v, json_int_t *w, char *msg, size_t msg_len)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > SVC_WEIGHT_MAX) {
        return bad(msg, msg_len, "field \"%s\" must be an integer 0-1000",
                   "weight");
    }
    *w = json_integer_value(v);
    return 0;
}

static int status_check(json_t *v, char *msg, size_t msg_len)
{
    const char *s = json_string_value(v);
    if (s == NULL || (strcmp(s, "up") != 0 && strcmp(s, "draining") != 0)) {
        return bad(msg, msg_len, "field \"%s\" must be \"up\" or \"draining\"",
                   "status");
    }
    return 0;
}

/* One active check: {"type":"http","url":..}, {"type":"tcp","addr":..} or
 * {"type":"grpc","addr":..[,"service":..][,"tls":true]} (the gRPC health
 * service over HTTP/2, cleartext or TLS), with interval and timeout in
 * seconds and damping counts. Normalized into out (defaults filled in). */
static int check_build(json_t *c, json_t **out, char *msg, size_t msg_len)
{
    const char *type;
    json_int_t interval = 10, timeout = 2, fail_after = 3, pass_after = 1;
    json_t *v;
    if (!json_is_object(c)) {
        return bad(msg, msg_len, "field \"%s\" must hold objects", "checks");
    }
    type = json_string_value(json_object_get(c, "type"));
    if (type == NULL ||
        (strcmp(type, "http") != 0 && strcmp(type, "tcp") != 0 &&
         strcmp(type, "grpc") != 0)) {
        return bad(msg, msg_len,
                   "field \"%s\": unknown check type (http, tcp or grpc)",
                   "checks.type");
    }
    struct {
        const char *name;
        json_int_t *dst;
        json_int_t lo, hi;
    } nums[] = {
        {"interval", &interval, 1, 3600},
        {"timeout", &timeout, 1, 60},
        {"fail_after", &fail_after, 1, 100},
        {"pass_after", &pass_after, 1, 100},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        v = json_object_get(c, nums[i].name);
        if (v == NULL) {
            continue;
        }
        if (!json_is_integer(v) || json_integer_value(v) < nums[i].lo ||
            json_integer_value(v) > nums[i].hi) {
            snprintf(msg, msg_len,
                     "field \"checks.%s\" must be an integer %lld-%lld",
                     nums[i].name, (long long)nums[i].lo,
                     (long long)nums[i].hi);
            return ERR_BAD_REQUEST;
        }
        *nums[i].dst = json_integer_value(v);
    }
    const char *target;
    const char *tname = strcmp(type, "http") == 0 ? "url" : "addr";
    int rc = opt_str(c, tname, 1024, &target, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    if (target == NULL) {
        snprintf(msg, msg_len, "field \"checks.%s\" is required", tname);
        return ERR_BAD_REQUEST;
    }
    if (strcmp(type, "http") == 0 && strncmp(target, "http://", 7) != 0 &&
        strncmp(target, "https://", 8) != 0) {
        return bad(msg, msg_len,
                   "field \"%s\" must be an http:// or https:// URL",
                   "checks.url");
    }
    v = json_object_get(c, "tls_skip_verify");
    if (v != NULL && !json_is_boolean(v)) {
        return bad(msg, msg_len, "field \"%s\" must be true or false",
                   "checks.tls_skip_verify");
    }
    bool skip = json_is_true(v);
    v = json_object_get(c, "tls");
    if (v != NULL && (!json_is_boolean(v) || strcmp(type, "grpc") != 0)) {
        return bad(msg, msg_len,
                   "field \"%s\" must be true or false, on a grpc check "
                   "(an http check says https:// instead)",
                   "checks.tls");
    }
    bool tls = json_is_true(v);
    if (strcmp(type, "http") != 0) {
        char h[SVC_HOST_MAX + 1];
        int p;
        if (svc_addr_parse(target, h, sizeof(h), &p) != 0) {
            return bad(msg, msg_len, "field \"%s\" must be host:port",
                       "checks.addr");
        }
    }
    const char *service = NULL;
    v = json_object_get(c, "service");
    if (v != NULL && strcmp(type, "grpc") != 0) {
        return bad(msg, msg_len, "field \"%s\" is for grpc checks only",
                   "checks.service");
    }
    if (v != NULL) {
        service = json_string_value(v);
        size_t sn = service != NULL ? strlen(service) : 0;
        bool ok = service != NULL && sn <= SVC_GRPC_SERVICE_MAX;
        for (size_t i = 0; ok && i < sn; i++) {
            ok = service[i] > 0x20 && service[i] < 0x7f;
        }
        if (!ok) {
            snprintf(msg, msg_len,
                     "field \"checks.service\" must be a gRPC service name "
                     "(at most %d printable ASCII bytes, no spaces)",
                     SVC_GRPC_SERVICE_MAX);
            return ERR_BAD_REQUEST;
        }
    }
    *out = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I}", "type", type, tname, target,
                     "interval", interval, "timeout", timeout, "fail_after",
                     fail_after, "pass_after", pass_after);
    if (*out != NULL && tls &&
        json_object_set_new(*out, "tls", json_true()) != 0) {
        json_decref(*out);
        *out = NULL;
    }
    if (*out != NULL && skip && (strcmp(type, "http") == 0 || tls) &&
        json_object_set_new(*out, "tls_skip_verify", json_true()) != 0) {
        json_decref(*out);
        *out = NULL;
    }
    if (*out != NULL && service != NULL &&
        json_object_set_new(*out, "service", json_string(service)) != 0) {
        json_decref(*out);
        *out = NULL;
    }
    return *out != NULL ? 0 : -ENOMEM;
}

/* The normalized checks (*out NULL when the array is empty). */
static int checks_build(json_t *v, json_t **out, char *msg, size_t msg_len)
{
    json_t *arr;
    size_t i;
    json_t *c;
    *out = NULL;
    if (!json_is_array(v)) {
        return bad(msg, msg_len, "field \"%s\" must be an array", "checks");
    }
    if (json_array_size(v) > SVC_CHECKS_MAX) {
        return bad(msg, msg_len, "field \"%s\" has too many entries (max 8)",
                   "checks");
    }
    arr = json_array();
    if (arr == NULL) {
        return -ENOMEM;
    }
    json_array_foreach(v, i, c)
    {
        json_t *n = NULL;
        int rc = check_build(c, &n, msg, msg_len);
        if (rc != 0) {
            json_decref(arr);
            return rc;
        }
        if (json_array_append_new(arr, n) != 0) {
            json_decref(arr);
            return -ENOMEM;
        }
    }
    if (json_array_size(arr) == 0) {
        json_decref(arr);
        return 0;
    }
    *out = arr;
    return 0;
}

/* now_s as RFC 3339 UTC; the last second's text is kept (per thread):
 * registrations come many to a second, and gmtime_r with strftime cost
 * 1,400 instructions each. */
static void rfc3339(int64_t now_s, char *out, size_t len)
{
    static _Thread_local int64_t last_s = -1;
    static _Thread_local char last[32];
    if (now_s != last_s) {
        struct tm tm;
        time_t t = (time_t)now_s;
        gmtime_r(&t, &tm);
        if (strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
            last[0] = '\0';
        }
        last_s = now_s;
    }
    str_join(out, len, last, NULL);
}

/* addr from "addr" or from "host" and "port"; both given must agree. */
static int addr_build(json_t *body, char *host, size_t host_len, int *port,
                      char *msg, size_t msg_len)
{
    const char *addr;
    const char *h;
    json_t *pv = json_object_get(body, "port");
    int rc = opt_str(body, "addr", SVC_HOST_MAX + 8, &addr, msg, msg_len);
    rc = rc != 0 ? rc : opt_str(body, "host", SVC_HOST_MAX, &h, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    if (pv != NULL && (!json_is_integer(pv) || json_integer_value(pv) < 1 ||
                       json_integer_value(pv) > 65535)) {
        return bad(msg, msg_len, "field \"%s\" must be an integer 1-65535",
                   "port");
    }
    if (addr != NULL) {
        if (svc_addr_parse(addr, host, host_len, port) != 0) {
            return bad(msg, msg_len,
                       "field \"%s\" must be host:port (port 1-65535)", "addr");
        }
        if ((h != NULL && strcmp(h, host) != 0) ||
            (pv != NULL && json_integer_value(pv) != *port)) {
            return bad(msg, msg_len, "field \"%s\" disagrees with host or port",
                       "addr");
        }
        return 0;
    }
    if (h == NULL || pv == NULL) {
        return bad(msg, msg_len, "field \"%s\" (or host and port) is required",
                   "addr");
    }
    if (!host_ok(h, strlen(h)) && strchr(h, ':') == NULL) {
        return bad(msg, msg_len, "field \"%s\" is not a host name or address",
                   "host");
    }
    snprintf(host, host_len, "%s", h);
    *port = (int)json_integer_value(pv);
    return 0;
}

/* zone, version, weight, labels, meta, status: checked in that order (the
 * first bad one is named), borrowed from body. */
static int fields_check(json_t *body, struct svc_inst *in, char *msg,
                        size_t msg_len)
{
    json_int_t weight = SVC_WEIGHT_DEF;
    json_t *v;
    int rc = opt_str(body, "zone", SVC_NAME_MAX, &in->zone, msg, msg_len);
    rc = rc != 0 ? rc
                 : opt_str(body, "version", SVC_NAME_MAX, &in->version, msg,
                           msg_len);
    if (rc != 0) {
        return rc;
    }
    in->zone = in->zone != NULL ? in->zone : "";
    in->version = in->version != NULL ? in->version : "";
    if ((v = json_object_get(body, "weight")) != NULL &&
        (rc = weight_get(v, &weight, msg, msg_len)) != 0) {
        return rc;
    }
    in->weight = weight;
    v = json_object_get(body, "labels");
    if (v != NULL && (rc = labels_check(v, msg, msg_len)) != 0) {
        return rc;
    }
    in->labels = v;
    v = json_object_get(body, "meta");
    if (v != NULL && !json_is_object(v)) {
        return bad(msg, msg_len, "field \"%s\" must be an object", "meta");
    }
    in->meta = v;
    v = json_object_get(body, "status");
    if (v != NULL && (rc = status_check(v, msg, msg_len)) != 0) {
        return rc;
    }
    in->status = v != NULL ? json_string_value(v) : "up";
    return 0;
}

int svc_instance_check(json_t *body, int64_t now_s, struct svc_inst *out,
                       char *msg, size_t msg_len)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body)) {
        return bad(msg, msg_len, "%s", "the body must be a JSON object");
    }
    rc = addr_build(body, out->host, sizeof(out->host), &out->port, msg,
                    msg_len);
    if (rc != 0) {
        return rc;
    }
    /* "%s:%d", or "[%s]:%d" for an IPv6 host, without snprintf */
    char port[STR_DEC_I64_BYTES];
    str_dec_i64(out->port, port);
    bool v6 = strchr(out->host, ':') != NULL;
    str_join(out->addr, sizeof(out->addr), v6 ? "[" : "", out->host,
             v6 ? "]:" : ":", port, NULL);
    rfc3339(now_s, out->registered_at, sizeof(out->registered_at));
    rc = fields_check(body, out, msg, msg_len);
    json_t *checks = json_object_get(body, "checks");
    if (rc == 0 && checks != NULL) {
        rc = checks_build(checks, &out->checks, msg, msg_len);
    }
    if (rc != 0) {
        svc_instance_clear(out);
    }
    return rc;
}

void svc_instance_clear(struct svc_inst *in)
{
    json_decref(in->checks);
    in->checks = NULL;
}

/* with checks, health is unknown until the first probe; without, the
 * session's heartbeat is the check (Consul's TTL check) */
static const char *health_at_start(const struct svc_inst *in)
{
    return in->checks != NULL ? "unknown" : "passing";
}

const char *svc_instance_health(const struct svc_inst *in)
{
    return health_at_start(in);
}

int svc_instance_build(json_t *body, const char *ns, const char *svc,
                       const char *id, const char *session, int64_t now_s,
                       json_t **out, char *msg, size_t msg_len)
{
    struct svc_inst in;
    json_t *doc;
    ASSERT(ns != NULL && svc != NULL && id != NULL);
    int rc = svc_instance_check(body, now_s, &in, msg, msg_len);
    if (rc != 0) {
        return rc;
    }
    doc = json_pack("{s:s,s:s,s:s,s:s,s:s,s:i}", "id", id, "namespace", ns,
                    "service", svc, "addr", in.addr, "host", in.host, "port",
                    in.port);
    if (doc == NULL) {
        svc_instance_clear(&in);
        return -ENOMEM;
    }
    json_object_set_new(doc, "zone", json_string(in.zone));
    json_object_set_new(doc, "version", json_string(in.version));
    json_object_set_new(doc, "weight", json_integer(in.weight));
    json_object_set_new(doc, "labels",
                        in.labels != NULL ? json_deep_copy(in.labels)
                                          : json_object());
    json_object_set_new(
        doc, "meta", in.meta != NULL ? json_deep_copy(in.meta) : json_object());
    json_object_set_new(doc, "status", json_string(in.status));
    if (in.checks != NULL) {
        json_object_set(doc, "checks", in.checks);
    }
    json_object_set_new(doc, "health", json_string(health_at_start(&in)));
    json_object_set_new(doc, "session", json_string(session));
    json_object_set_new(doc, "registered_at", json_string(in.registered_at));
    svc_instance_clear(&in);
    *out = doc;
    return 0;
}

int svc_instance_patch(json_t *doc, json_t *patch, char *msg, size_t msg_len)
{
    const char *k;
    json_t *v;
    json_int_t w;
    int rc;
    if (!json_is_object(patch)) {
        return bad(msg, msg_len, "%s", "the body must be a JSON object");
    }
    /* check everything first: a bad field leaves doc as it was */
    json_object_foreach(patch, k, v)
    {
        if (strcmp(k, "status") == 0) {
            rc = status_check(v, msg, msg_len);
        } else if (strcmp(k, "weight") == 0) {
            rc = weight_get(v, &w, msg, msg_len);
        } else if (strcmp(k, "labels") == 0) {
            rc = labels_check(v, msg, msg_len);
        } else if (strcmp(k, "meta") == 0) {
            rc = json_is_object(v)
                     ? 0
                     : bad(msg, msg_len, "field \"%s\" must be an object",
                           "meta");
        } else if (strcmp(k, "zone") == 0 || strcmp(k, "version") == 0) {
            const char *s;
            rc = opt_str(patch, k, SVC_NAME_MAX, &s, msg, msg_len);
        } else {
            snprintf(msg, msg_len,
                     "field \"%.64s\" cannot be changed by PATCH (status, "
                     "weight, labels, meta, zone, version)",
                     k);
            rc = ERR_BAD_REQUEST;
        }
        if (rc != 0) {
            return rc;
        }
    }
    json_object_foreach(patch, k, v)
    {
        json_object_set(doc, k, json_is_null(v) ? json_string("") : v);
    }
    return 0;
}

bool svc_instance_healthy(json_t *doc)
{
    const char *st = json_string_value(json_object_get(doc, "status"));
    const char *h = json_string_value(json_object_get(doc, "health"));
    return st != NULL && strcmp(st, "up") == 0 && h != NULL &&
           strcmp(h, "passing") == 0;
}

/* One selector term k=v or k!=v against doc's labels. */
static bool term_match(json_t *labels, const char *t, size_t n)
{
    char key[SVC_NAME_MAX + 1];
    const char *eq = memchr(t, '=', n);
    bool neg;
    size_t kn;
    if (eq == NULL) {
        return false;
    }
    neg = eq > t && eq[-1] == '!';
    kn = (size_t)(eq - t) - (neg ? 1 : 0);
    if (kn == 0 || kn > SVC_NAME_MAX) {
        return false;
    }
    memcpy(key, t, kn);
    key[kn] = '\0';
    const char *want = eq + 1;
    size_t wn = n - (size_t)(want - t);
    const char *have = json_string_value(json_object_get(labels, key));
    bool same =
        have != NULL && strlen(have) == wn && memcmp(have, want, wn) == 0;
    return neg ? !same : same;
}

int svc_selector_check(const char *sel, char *msg, size_t msg_len)
{
    const char *p = sel;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        size_t kn = eq == NULL ? 0 : (size_t)(eq - p);
        if (kn > 0 && p[kn - 1] == '!') {
            kn--;
        }
        if (eq == NULL || !svc_name_ok(p, kn)) {
            return bad(msg, msg_len,
                       "parameter \"%s\" must be k=v or k!=v terms, "
                       "comma-separated",
                       "selector");
        }
        p += n + (end != NULL ? 1 : 0);
    }
    return 0;
}

bool svc_filter_match(const struct svc_filter *f, json_t *doc)
{
    const char *z = json_string_value(json_object_get(doc, "zone"));
    const char *v = json_string_value(json_object_get(doc, "version"));
    json_t *labels = json_object_get(doc, "labels");
    if (f->zone[0] != '\0' && (z == NULL || strcmp(z, f->zone) != 0)) {
        return false;
    }
    if (f->version[0] != '\0' && (v == NULL || strcmp(v, f->version) != 0)) {
        return false;
    }
    const char *p = f->selector;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (!term_match(labels, p, n)) {
            return false;
        }
        p += n + (end != NULL ? 1 : 0);
    }
    return true;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

int svc_query_get(const char *query, const char *name, char *out,
                  size_t out_len)
{
    size_t nl = strlen(name);
    const char *p = query;
    ASSERT(out_len > 0);
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, '&');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n >= nl && strncmp(p, name, nl) == 0 && (n == nl || p[nl] == '=')) {
            size_t o = 0;
            for (size_t i = nl + (n > nl ? 1 : 0); i < n; i++) {
                int ch = (unsigned char)p[i];
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%' && i + 2 < n && hexval(p[i + 1]) >= 0 &&
                           hexval(p[i + 2]) >= 0) {
                    ch = hexval(p[i + 1]) * 16 + hexval(p[i + 2]);
                    i += 2;
                }
                if (o + 1 >= out_len) {
                    return ERR_LIMIT;
                }
                out[o++] = (char)ch;
            }
            out[o] = '\0';
            return 0;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    out[0] = '\0';
    return 1;
}

int svc_error_body(struct buf *out, const char *code, const char *message,
                   const char *field)
{
    char tmp[512];
    message = str_utf8_safe(message, tmp, sizeof(tmp)); /* parser text */
    json_t *o = json_pack("{s:s,s:s,s:s}", "error", message, "code", code,
                          "message", message);
    char *s;
    int rc;
    if (o == NULL) {
        return -ENOMEM;
    }
    if (field != NULL) {
        json_object_set_new(o, "field", json_string(field));
    }
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL) {
        return -ENOMEM;
    }
    rc = buf_append(out, s, strlen(s));
    free(s);
    return rc;
}

json_t *svc_doc_parse(const void *val, size_t len, int64_t mod_rev,
                      int64_t create_rev)
{
    json_t *d = svc_json_loadb(val, len, JSON_REJECT_DUPLICATES, NULL);
    if (d == NULL) {
        return NULL;
    }
    if (!json_is_object(d) || !json_is_string(json_object_get(d, "addr"))) {
        json_decref(d);
        return NULL;
    }
    json_object_set_new(d, "revision", json_integer(mod_rev));
    json_object_set_new(d, "create_revision", json_integer(create_rev));
    return d;
}

/* The next name of p[0..n) up to '/', into out; its length or 0. */
static size_t name_take(const char *p, size_t n, char *out)
{
    const char *e = memchr(p, '/', n);
    size_t len = e != NULL ? (size_t)(e - p) : n;
    if (!svc_name_ok(p, len)) {
        return 0;
    }
    memcpy(out, p, len);
    out[len] = '\0';
    return len;
}

int svc_key_split(const char *key, size_t len, char *ns, char *svc, char *id)
{
    static const char mid[] = "/services/";
    size_t pl = strlen(SVC_PREFIX);
    size_t o;
    size_t n;
    if (len <= pl || memcmp(key, SVC_PREFIX, pl) != 0) {
        return ERR_INVALID;
    }
    o = pl;
    n = name_take(key + o, len - o, ns);
    if (n == 0) {
        return ERR_INVALID;
    }
    o += n;
    if (len - o <= sizeof(mid) - 1 ||
        memcmp(key + o, mid, sizeof(mid) - 1) != 0) {
        return ERR_INVALID;
    }
    o += sizeof(mid) - 1;
    n = name_take(key + o, len - o, svc);
    if (n == 0 || o + n >= len || key[o + n] != '/') {
        return ERR_INVALID;
    }
    o += n + 1;
    n = name_take(key + o, len - o, id);
    return n != 0 && o + n == len ? 0 : ERR_INVALID;
}

int svc_watch_prefix(const char *path, char *out, size_t out_len, size_t *n)
{
    char ns[SVC_NAME_MAX + 1];
    char svc[SVC_NAME_MAX + 1];
    size_t len = strlen(path);
    size_t a;
    int w;
    if (len > 0 && path[len - 1] == '/') {
        len--;
    }
    a = name_take(path, len, ns);
    if (a == 0) {
        return ERR_INVALID;
    }
    if (a == len) {
        w = snprintf(out, out_len, SVC_PREFIX "%s/services/", ns);
    } else {
        size_t b = name_take(path + a + 1, len - a - 1, svc);
        if (path[a] != '/' || b == 0 || a + 1 + b != len) {
            return ERR_INVALID;
        }
        w = snprintf(out, out_len, SVC_PREFIX "%s/services/%s/", ns, svc);
    }
    if (w < 0 || (size_t)w >= out_len) {
        return ERR_INVALID;
    }
    *n = (size_t)w;
    return 0;
}

/* ------------------------------------------------------------ peek */

#define PEEK_DEPTH  32
#define PEEK_DIGITS 15

struct peek {
    const uint8_t *p, *end;
    int depth;
};

static void peek_ws(struct peek *k)
{
    k->p = (const uint8_t *)jscan_ws((const char *)k->p, (const char *)k->end);
}

/* A string at k->p (its opening quote); its bytes in *s, *n. Only plain
 * ASCII without escapes or control characters is taken. */
static bool peek_str(struct peek *k, const uint8_t **s, size_t *n)
{
    const char *t;
    const char *q = jscan_str((const char *)k->p, (const char *)k->end, &t, n);
    if (q == NULL) {
        return false;
    }
    *s = (const uint8_t *)t;
    k->p = (const uint8_t *)q;
    return true;
}

static bool peek_digits(struct peek *k, int *count)
{
    const uint8_t *q = k->p;
    while (k->p < k->end && *k->p >= '0' && *k->p <= '9') {
        k->p++;
    }
    *count += (int)(k->p - q);
    return k->p > q;
}

/* JSON's number grammar, without exponents and with few digits, so that
 * jansson's integer and real conversions cannot overflow. */
static bool peek_num(struct peek *k)
{
    int digits = 0;
    if (k->p < k->end && *k->p == '-') {
        k->p++;
    }
    if (k->p < k->end && *k->p == '0') {
        k->p++;
        digits++;
    } else if (!peek_digits(k, &digits)) {
        return false;
    }
    if (k->p < k->end && *k->p == '.') {
        k->p++;
        if (!peek_digits(k, &digits)) {
            return false;
        }
    }
    if (k->p < k->end && (*k->p == 'e' || *k->p == 'E')) {
        return false;
    }
    return digits <= PEEK_DIGITS;
}

static bool peek_lit(struct peek *k, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(k->end - k->p) < n || memcmp(k->p, w, n) != 0) {
        return false;
    }
    k->p += n;
    return true;
}

static bool peek_value(struct peek *k);

/* An object or array at k->p, each member's value skipped. */
static bool peek_container(struct peek *k)
{
    uint8_t close = *k->p == '{' ? '}' : ']';
    bool obj = close == '}';
    if (++k->depth > PEEK_DEPTH) {
        return false;
    }
    k->p++;
    peek_ws(k);
    if (k->p < k->end && *k->p == close) {
        k->p++;
        k->depth--;
        return true;
    }
    for (;;) {
        if (obj) {
            const uint8_t *s;
            size_t n;
            if (!peek_str(k, &s, &n)) {
                return false;
            }
            peek_ws(k);
            if (k->p >= k->end || *k->p != ':') {
                return false;
            }
            k->p++;
            peek_ws(k);
        }
        if (!peek_value(k)) {
            return false;
        }
        peek_ws(k);
        if (k->p < k->end && *k->p == ',') {
            k->p++;
            peek_ws(k);
            continue;
        }
        if (k->p < k->end && *k->p == close) {
            k->p++;
            k->depth--;
            return true;
        }
        return false;
    }
}

static bool peek_value(struct peek *k)
{
    const uint8_t *s;
    size_t n;
    if (k->p >= k->end) {
        return false;
    }
    switch (*k->p) {
    case '"':
        return peek_str(k, &s, &n);
    case '{':
    case '[':
        return peek_container(k);
    case 't':
        return peek_lit(k, "true");
    case 'f':
        return peek_lit(k, "false");
    case 'n':
        return peek_lit(k, "null");
    default:
        return peek_num(k);
    }
}

int svc_doc_peek(const void *val, size_t len, char *health, size_t cap)
{
    struct peek k = {(const uint8_t *)val, (const uint8_t *)val + len, 0};
    bool addr = false, obj;
    ASSERT(cap > 0);
    health[0] = '\0';
    peek_ws(&k);
    obj = k.p < k.end && *k.p == '{';
    if (!obj) {
        if (!peek_value(&k)) {
            return -1;
        }
    } else {
        /* the top level by hand, to see its members' names and values */
        k.p++;
        k.depth = 1;
        peek_ws(&k);
        if (k.p < k.end && *k.p == '}') {
            k.p++;
        } else {
            for (;;) {
                const uint8_t *name, *s;
                size_t nl, n;
                if (!peek_str(&k, &name, &nl)) {
                    return -1;
                }
                peek_ws(&k);
                if (k.p >= k.end || *k.p != ':') {
                    return -1;
                }
                k.p++;
                peek_ws(&k);
                bool is_str = k.p < k.end && *k.p == '"';
                const uint8_t *at = k.p;
                if (!peek_value(&k)) {
                    return -1;
                }
                if (nl == 4 && memcmp(name, "addr", 4) == 0) {
                    addr = is_str; /* the last one counts, as in jansson */
                } else if (nl == 6 && memcmp(name, "health", 6) == 0) {
                    health[0] = '\0';
                    if (is_str) {
                        struct peek v = {at, k.p, 0};
                        if (!peek_str(&v, &s, &n) || n >= cap) {
                            return -1;
                        }
                        memcpy(health, s, n);
                        health[n] = '\0';
                    }
                }
                peek_ws(&k);
                if (k.p < k.end && *k.p == ',') {
                    k.p++;
                    peek_ws(&k);
                    continue;
                }
                if (k.p < k.end && *k.p == '}') {
                    k.p++;
                    break;
                }
                return -1;
            }
        }
    }
    peek_ws(&k);
    if (k.p != k.end) {
        return -1;
    }
    if (!obj || !addr) {
        health[0] = '\0';
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ dump */

struct dump {
    char *p;
    size_t len, cap;
    bool oom;
};

/* Room for n more bytes and the NUL: where they go, or NULL (oom). */
static char *dump_room(struct dump *d, size_t n)
{
    if (d->oom) {
        return NULL;
    }
    if (d->len + n + 1 > d->cap) {
        size_t cap = d->cap * 2 > d->len + n + 1 ? d->cap * 2 : d->len + n + 1;
        char *p = realloc(d->p, cap);
        if (p == NULL) {
            d->oom = true;
            return NULL;
        }
        d->p = p;
        d->cap = cap;
    }
    return d->p + d->len;
}

static void dump_put(struct dump *d, const char *s, size_t n)
{
    char *w = dump_room(d, n);
    if (w == NULL) {
        return;
    }
    memcpy(w, s, n);
    d->len += n;
    d->p[d->len] = '\0';
}

/* a string literal, its length known at compile time */
#define DUMP_LIT(d, lit) dump_put((d), (lit), sizeof(lit) - 1)

/* jansson's own text of v (a string that needs escaping). */
static void dump_by_jansson(struct dump *d, const json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (t == NULL) {
        d->oom = true;
        return;
    }
    dump_put(d, t, strlen(t));
    free(t);
}

static void dump_str(struct dump *d, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (c < 0x20 || c == '"' || c == '\\') {
            json_t *j = json_stringn_nocheck(s, n);
            if (j == NULL) {
                d->oom = true;
                return;
            }
            dump_by_jansson(d, j);
            json_decref(j);
            return;
        }
    }
    char *w = dump_room(d, n + 2);
    if (w == NULL) {
        return;
    }
    w[0] = '"';
    memcpy(w + 1, s, n);
    w[n + 1] = '"';
    d->len += n + 2;
    d->p[d->len] = '\0';
}

/* x in decimal, as jansson writes an integer */
static void dump_int(struct dump *d, int64_t x)
{
    char t[24];
    uint64_t u = x < 0 ? 0 - (uint64_t)x : (uint64_t)x;
    size_t n = sizeof(t);
    do {
        t[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (x < 0) {
        t[--n] = '-';
    }
    dump_put(d, t + n, sizeof(t) - n);
}

static void dump_value(struct dump *d, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *m;
        bool first = true;
        dump_put(d, "{", 1);
        json_object_foreach((json_t *)v, k, m)
        {
            if (!first) {
                dump_put(d, ",", 1);
            }
            first = false;
            dump_str(d, k, strlen(k));
            dump_put(d, ":", 1);
            dump_value(d, m);
        }
        dump_put(d, "}", 1);
        return;
    }
    case JSON_ARRAY:
        dump_put(d, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i > 0) {
                dump_put(d, ",", 1);
            }
            dump_value(d, json_array_get(v, i));
        }
        dump_put(d, "]", 1);
        return;
    case JSON_STRING:
        dump_str(d, json_string_value(v), json_string_length(v));
        return;
    case JSON_INTEGER:
        dump_int(d, json_integer_value(v));
        return;
    case JSON_TRUE:
        dump_put(d, "true", 4);
        return;
    case JSON_FALSE:
        dump_put(d, "false", 5);
        return;
    case JSON_NULL:
        dump_put(d, "null", 4);
        return;
    default: { /* JSON_REAL: the fewest digits, not jansson's 17 */
        char t[JSCAN_REAL_MAX];
        size_t n = jscan_real(t, json_real_value(v));
        if (n == 0) {
            dump_by_jansson(d, v);
        } else {
            dump_put(d, t, n);
        }
        return;
    }
    }
}

char *svc_json_dump(const json_t *v)
{
    struct dump d = {NULL, 0, 0, false};
    if (v == NULL) {
        return NULL;
    }
    d.cap = 512;
    d.p = malloc(d.cap);
    if (d.p == NULL) {
        return NULL;
    }
    d.p[0] = '\0';
    dump_value(&d, v);
    if (d.oom) {
        free(d.p);
        return NULL;
    }
    return d.p;
}

/* ,"name": then a string, as dump_value writes an object member (name is
 * a literal needing no escapes) */
#define DUMP_STR_MEMBER(d, name, v)                                            \
    do {                                                                       \
        DUMP_LIT(d, ",\"" name "\":");                                         \
        dump_str(d, (v), strlen(v));                                           \
    } while (0)

/* ,"name": then an integer, digits as dump_value writes them */
static void dump_int_member(struct dump *d, const char *lit, size_t lit_len,
                            int64_t x)
{
    dump_put(d, lit, lit_len);
    dump_int(d, x);
}

/* ,"name": then an object or array ({} for NULL) */
static void dump_obj_member(struct dump *d, const char *lit, size_t lit_len,
                            const json_t *v)
{
    dump_put(d, lit, lit_len);
    if (v != NULL) {
        dump_value(d, v);
    } else {
        DUMP_LIT(d, "{}");
    }
}

#define MEMBER_LIT(name) ",\"" name "\":", sizeof(",\"" name "\":") - 1

char *svc_instance_render(const struct svc_inst *in, const char *ns,
                          const char *svc, const char *id, const char *session)
{
    struct dump d = {NULL, 0, 0, false};
    d.cap = 1024; /* a usual document: no regrowth */
    d.p = malloc(d.cap);
    if (d.p == NULL) {
        return NULL;
    }
    /* the members in svc_instance_build's order */
    DUMP_LIT(&d, "{\"id\":");
    dump_str(&d, id, strlen(id));
    DUMP_STR_MEMBER(&d, "namespace", ns);
    DUMP_STR_MEMBER(&d, "service", svc);
    DUMP_STR_MEMBER(&d, "addr", in->addr);
    DUMP_STR_MEMBER(&d, "host", in->host);
    dump_int_member(&d, MEMBER_LIT("port"), in->port);
    DUMP_STR_MEMBER(&d, "zone", in->zone);
    DUMP_STR_MEMBER(&d, "version", in->version);
    dump_int_member(&d, MEMBER_LIT("weight"), in->weight);
    dump_obj_member(&d, MEMBER_LIT("labels"), in->labels);
    dump_obj_member(&d, MEMBER_LIT("meta"), in->meta);
    DUMP_STR_MEMBER(&d, "status", in->status);
    if (in->checks != NULL) {
        dump_obj_member(&d, MEMBER_LIT("checks"), in->checks);
    }
    DUMP_STR_MEMBER(&d, "health", health_at_start(in));
    DUMP_STR_MEMBER(&d, "session", session);
    DUMP_STR_MEMBER(&d, "registered_at", in->registered_at);
    DUMP_LIT(&d, "}");
    if (d.oom) {
        free(d.p);
        return NULL;
    }
    return d.p;
}

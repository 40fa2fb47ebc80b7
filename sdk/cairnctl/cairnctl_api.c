/*
 * cairnctl_api.c - cairnctl's service and config commands, over libcairn's
 * /api/v1 calls (cairn_api_call), registrations, discovery and config
 * watches.
 *
 * Output: -w json prints the server's answer as it came (one JSON object
 * per line; watch prints one per change); any other format prints tables
 * for lists and short lines for writes, for people. Errors print
 * "Error: <code>: <message>" and exit 1 (128 for bad arguments).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "sdk/cairnctl/cairnctl.h"

#define PATH_MAX_BYTES 16384

static volatile sig_atomic_t interrupted;

static void on_int(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void catch_signals(void)
{
    struct sigaction a = {.sa_handler = on_int};
    sigaction(SIGINT, &a, NULL);
    sigaction(SIGTERM, &a, NULL);
}

static bool want_args(struct ctl *x, size_t lo, size_t hi, const char *what)
{
    if (x->args_count < lo || x->args_count > hi) {
        ctl_fail(CTL_EXIT_BAD_ARGS, "%s", what);
        return false;
    }
    return true;
}

/* Appends "&k=<escaped v>" to a query; false when it does not fit. */
static bool q_add(char *q, size_t n, const char *k, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t w = strlen(q);
    int r = snprintf(q + w, n - w, "%s%s=", w == 0 ? "?" : "&", k);
    if (r < 0 || (size_t)r >= n - w) {
        return false;
    }
    w += (size_t)r;
    for (; *v != 0; v++) {
        unsigned char c = (unsigned char)*v;
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                     (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                     c == '_' || c == '~' || c == '=' || c == ',';
        if (w + 4 >= n) {
            return false;
        }
        if (plain) {
            q[w++] = (char)c;
        } else {
            q[w++] = '%';
            q[w++] = hex[c >> 4];
            q[w++] = hex[c & 15];
        }
    }
    q[w] = 0;
    return true;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CAIRN_NAME_MAX || strcmp(s, ".") == 0 ||
        strcmp(s, "..") == 0) {
        return false;
    }
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                     "0123456789._-") == n;
}

static bool names_ok(struct ctl *x)
{
    for (size_t i = 0; i < x->args_count && i < 3; i++) {
        if (!name_ok(x->args[i])) {
            ctl_fail(CTL_EXIT_BAD_ARGS,
                     "bad name %s (1-128 bytes of [A-Za-z0-9._-])", x->args[i]);
            return false;
        }
    }
    return true;
}

/* One call; on success *out is the parsed answer (NULL with -w json: the
 * answer was printed). Returns an exit code, or -1 to go on. */
static int call(struct ctl *x, const char *method, const char *path,
                const char *body, json_t **out)
{
    *out = NULL;
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_ERROR;
    }
    struct cairn_api_resp r;
    int rc = cairn_api_call(c, method, path, body, ctl_deadline(x), &r);
    if (rc != 0) {
        const char *m = cairn_client_errmsg(c);
        cairn_api_resp_free(&r);
        return ctl_fail(CTL_EXIT_ERROR, "%s",
                        m[0] != 0 ? m : cairn_strerror(rc));
    }
    if (x->fmt == CTL_JSON) {
        fwrite(r.body, 1, r.body_len, stdout);
        if (r.body_len == 0 || r.body[r.body_len - 1] != '\n') {
            putchar('\n');
        }
        cairn_api_resp_free(&r);
        return -1;
    }
    json_error_t je;
    *out = json_loadb(r.body, r.body_len, 0, &je);
    cairn_api_resp_free(&r);
    if (*out == NULL) {
        return ctl_fail(CTL_EXIT_ERROR, "malformed answer: %s", je.text);
    }
    return -1;
}

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s != NULL ? s : "";
}

/* A JSON number or bool as text in buf ("" when absent). */
static const char *jnum(const json_t *o, const char *k, char *buf, size_t n)
{
    json_t *v = json_object_get(o, k);
    if (json_is_integer(v)) {
        snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(buf, n, "%g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        snprintf(buf, n, "%s", json_is_true(v) ? "true" : "false");
    } else {
        buf[0] = 0;
    }
    return buf;
}

/* Prints arr's objects as a table of the given fields. */
static void table(const json_t *arr, const char *const *hdr,
                  const char *const *keys, size_t cols)
{
    size_t rows = json_array_size(arr);
    const char **cells = calloc(rows * cols + 1, sizeof(*cells));
    char *nums = calloc(rows * cols + 1, 32);
    if (cells == NULL || nums == NULL) {
        free(cells);
        free(nums);
        ctl_fail(CTL_EXIT_ERROR, "out of memory");
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        const json_t *o = json_array_get(arr, r);
        for (size_t c = 0; c < cols; c++) {
            json_t *v = json_object_get(o, keys[c]);
            cells[r * cols + c] =
                json_is_string(v)
                    ? json_string_value(v)
                    : jnum(o, keys[c], nums + (r * cols + c) * 32, 32);
        }
    }
    out_table(hdr, cols, cells, rows);
    free(cells);
    free(nums);
}

static void instances_table(const json_t *arr)
{
    static const char *const hdr[] = {"ID",     "ADDR",   "ZONE",   "VERSION",
                                      "WEIGHT", "STATUS", "HEALTH", "SESSION"};
    static const char *const keys[] = {"id",     "addr",   "zone",   "version",
                                       "weight", "status", "health", "session"};
    table(arr, hdr, keys, 8);
}

/* ------------------------------------------------------------ service */

static int svc_labels_json(const char *s, json_t **out)
{
    *out = json_object();
    char buf[4096];
    if (strlen(s) >= sizeof(buf)) {
        return -1;
    }
    snprintf(buf, sizeof(buf), "%s", s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (eq == NULL || eq == t) {
            return -1;
        }
        *eq = 0;
        json_object_set_new(*out, t, json_string(eq + 1));
    }
    return 0;
}

static int svc_register_keep(struct ctl *x, const char *addr)
{
    int64_t ttl = 10, weight = -1;
    if (!ctl_flag_int(x, "ttl", &ttl) || !ctl_flag_int(x, "weight", &weight)) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_ERROR;
    }
    json_t *labels = NULL;
    if (svc_labels_json(ctl_flag(x, "labels"), &labels) != 0) {
        json_decref(labels);
        return ctl_fail(CTL_EXIT_BAD_ARGS, "--labels: k=v[,k=v...]");
    }
    char *lj = json_dumps(labels, JSON_COMPACT);
    json_decref(labels);
    struct cairn_registration_options o = {.ttl_s = ttl,
                                           .timeout_ms = ctl_deadline(x)};
    struct cairn_registration *r;
    int rc = cairn_registration_new(c, &o, &r);
    if (rc != 0) {
        free(lj);
        return ctl_fail(CTL_EXIT_ERROR, "%s",
                        cairn_client_errmsg(c)[0] != 0 ? cairn_client_errmsg(c)
                                                       : cairn_strerror(rc));
    }
    const char *zone = ctl_flag(x, "zone"), *ver = ctl_flag(x, "version");
    struct cairn_instance_spec spec = {
        .ns = x->args[0],
        .service = x->args[1],
        .id = x->args[2],
        .addr = addr,
        .weight = (int)weight,
        .zone = zone[0] != 0 ? zone : NULL,
        .version = ver[0] != 0 ? ver : NULL,
        .labels_json = lj,
    };
    rc = cairn_register(r, &spec);
    free(lj);
    if (rc != 0) {
        ctl_fail(CTL_EXIT_ERROR, "%s", cairn_registration_errmsg(r));
        cairn_registration_free(r, true);
        return CTL_EXIT_ERROR;
    }
    char sess[40] = "";
    cairn_registration_session(r, sess, sizeof(sess), NULL);
    printf("registered %s/%s/%s session %s (kept alive; Ctrl-C ends it)\n",
           x->args[0], x->args[1], x->args[2], sess);
    fflush(stdout);
    catch_signals();
    while (!interrupted) {
        usleep(100000);
    }
    cairn_registration_free(r, true);
    return 0;
}

int cmd_service_register(struct ctl *x)
{
    if (!want_args(x, 3, 3,
                   "service register needs <namespace> <service> <id>") ||
        !names_ok(x)) {
        return CTL_EXIT_BAD_ARGS;
    }
    const char *addr = ctl_flag(x, "addr");
    if (addr[0] == 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "--addr host:port is required");
    }
    if (ctl_flag_bool(x, "keepalive")) {
        return svc_register_keep(x, addr);
    }
    int64_t ttl = 0, weight = -1;
    if (!ctl_flag_int(x, "ttl", &ttl) || !ctl_flag_int(x, "weight", &weight)) {
        return CTL_EXIT_BAD_ARGS;
    }
    json_t *d = json_object();
    json_t *labels = NULL;
    if (svc_labels_json(ctl_flag(x, "labels"), &labels) != 0) {
        json_decref(labels);
        json_decref(d);
        return ctl_fail(CTL_EXIT_BAD_ARGS, "--labels: k=v[,k=v...]");
    }
    json_object_set_new(d, "addr", json_string(addr));
    json_object_set_new(d, "ttl", json_integer(ttl));
    if (weight >= 0) {
        json_object_set_new(d, "weight", json_integer(weight));
    }
    if (ctl_flag(x, "zone")[0] != 0) {
        json_object_set_new(d, "zone", json_string(ctl_flag(x, "zone")));
    }
    if (ctl_flag(x, "version")[0] != 0) {
        json_object_set_new(d, "version", json_string(ctl_flag(x, "version")));
    }
    if (json_object_size(labels) > 0) {
        json_object_set(d, "labels", labels);
    }
    json_decref(labels);
    char *body = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "/api/v1/registry/%s/%s/%s", x->args[0],
             x->args[1], x->args[2]);
    json_t *a;
    int rc = call(x, "PUT", path, body, &a);
    free(body);
    if (a != NULL) {
        char rev[32];
        printf("registered %s/%s/%s session %s ttl %llds revision %s\n",
               x->args[0], x->args[1], x->args[2], jstr(a, "session"),
               (long long)ttl, jnum(a, "revision", rev, sizeof(rev)));
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

int cmd_service_deregister(struct ctl *x)
{
    if (!want_args(x, 3, 3,
                   "service deregister needs <namespace> <service> <id>") ||
        !names_ok(x)) {
        return CTL_EXIT_BAD_ARGS;
    }
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "/api/v1/registry/%s/%s/%s", x->args[0],
             x->args[1], x->args[2]);
    json_t *a;
    int rc = call(x, "DELETE", path, NULL, &a);
    if (a != NULL) {
        char rev[32];
        printf("deregistered %s/%s/%s revision %s\n", x->args[0], x->args[1],
               x->args[2], jnum(a, "revision", rev, sizeof(rev)));
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

int cmd_service_list(struct ctl *x)
{
    if (!want_args(x, 0, 2, "service list takes [namespace [service]]") ||
        !names_ok(x)) {
        return CTL_EXIT_BAD_ARGS;
    }
    char path[PATH_MAX_BYTES], q[4096] = "";
    if (ctl_flag_bool(x, "healthy")) {
        q_add(q, sizeof(q), "healthy", "true");
    }
    if (ctl_flag(x, "zone")[0] != 0 &&
        !q_add(q, sizeof(q), "zone", ctl_flag(x, "zone"))) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "--zone too long");
    }
    if (ctl_flag(x, "selector")[0] != 0 &&
        !q_add(q, sizeof(q), "selector", ctl_flag(x, "selector"))) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "--selector too long");
    }
    snprintf(path, sizeof(path), "/api/v1/registry%s%s%s%s%s",
             x->args_count > 0 ? "/" : "", x->args_count > 0 ? x->args[0] : "",
             x->args_count > 1 ? "/" : "", x->args_count > 1 ? x->args[1] : "",
             q);
    json_t *a;
    int rc = call(x, "GET", path, NULL, &a);
    if (a == NULL) {
        return rc < 0 ? 0 : rc;
    }
    if (x->args_count == 0) {
        static const char *const h[] = {"NAMESPACE"};
        static const char *const k[] = {"namespace"};
        table(json_object_get(a, "namespaces"), h, k, 1);
    } else if (x->args_count == 1) {
        static const char *const h[] = {"SERVICE", "INSTANCES", "HEALTHY"};
        static const char *const k[] = {"service", "instances", "healthy"};
        table(json_object_get(a, "services"), h, k, 3);
    } else {
        instances_table(json_object_get(a, "instances"));
    }
    json_decref(a);
    return 0;
}

int cmd_service_get(struct ctl *x)
{
    if (!want_args(x, 3, 3, "service get needs <namespace> <service> <id>") ||
        !names_ok(x)) {
        return CTL_EXIT_BAD_ARGS;
    }
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "/api/v1/registry/%s/%s/%s", x->args[0],
             x->args[1], x->args[2]);
    json_t *a;
    int rc = call(x, "GET", path, NULL, &a);
    if (a != NULL) {
        json_t *arr = json_array();
        json_array_append(arr, json_object_get(a, "instance"));
        instances_table(arr);
        json_t *labels =
            json_object_get(json_object_get(a, "instance"), "labels");
        if (json_object_size(labels) > 0) {
            char *s = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
            printf("labels: %s\n", s != NULL ? s : "");
            free(s);
        }
        json_decref(arr);
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

int cmd_service_drain(struct ctl *x)
{
    if (!want_args(x, 3, 3, "service drain needs <namespace> <service> <id>") ||
        !names_ok(x)) {
        return CTL_EXIT_BAD_ARGS;
    }
    bool undo = ctl_flag_bool(x, "undo");
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "/api/v1/registry/%s/%s/%s", x->args[0],
             x->args[1], x->args[2]);
    json_t *a;
    int rc =
        call(x, "PATCH", path,
             undo ? "{\"status\":\"up\"}" : "{\"status\":\"draining\"}", &a);
    if (a != NULL) {
        char rev[32];
        printf("%s/%s/%s %s revision %s\n", x->args[0], x->args[1], x->args[2],
               undo ? "up" : "draining", jnum(a, "revision", rev, sizeof(rev)));
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

static void on_instances(void *arg, const struct cairn_instance_list *l)
{
    const struct ctl *x = arg;
    if (x->fmt == CTL_JSON) {
        printf("{\"revision\":%lld,\"instances\":[", (long long)l->revision);
        for (size_t i = 0; i < l->count; i++) {
            const struct cairn_instance *in = &l->items[i];
            json_t *o = json_pack(
                "{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:I}", "namespace",
                in->ns, "service", in->service, "id", in->id, "addr", in->addr,
                "zone", in->zone, "version", in->version, "status", in->status,
                "health", in->health, "weight", in->weight, "revision",
                (json_int_t)in->revision);
            char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
            printf("%s%s", i == 0 ? "" : ",", s != NULL ? s : "{}");
            free(s);
            json_decref(o);
        }
        printf("]}\n");
    } else {
        printf("revision %lld: %zu instances\n", (long long)l->revision,
               l->count);
        for (size_t i = 0; i < l->count; i++) {
            const struct cairn_instance *in = &l->items[i];
            printf("  %s/%s %s zone=%s weight=%d %s %s\n", in->service, in->id,
                   in->addr, in->zone, in->weight, in->status, in->health);
        }
    }
    fflush(stdout);
}

int cmd_service_watch(struct ctl *x)
{
    if (!want_args(x, 1, 2, "service watch needs <namespace> [service]") ||
        !names_ok(x)) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_ERROR;
    }
    catch_signals();
    struct cairn_discovery *d;
    int rc = cairn_discovery_new(c, x->args[0],
                                 x->args_count > 1 ? x->args[1] : NULL,
                                 on_instances, x, ctl_deadline(x), &d);
    if (rc != 0) {
        return ctl_fail(CTL_EXIT_ERROR, "watch: %s", cairn_strerror(rc));
    }
    while (!interrupted) {
        usleep(100000);
    }
    cairn_discovery_free(d);
    return 0;
}

/* ------------------------------------------------------------- config */

static int cfg_path(struct ctl *x, size_t lo, size_t hi, const char *usage,
                    char *path, size_t n)
{
    if (!want_args(x, lo, hi, usage) || !names_ok(x)) {
        return CTL_EXIT_BAD_ARGS;
    }
    snprintf(path, n, "/api/v1/config/%s/%s/%s", x->args[0], x->args[1],
             x->args[2]);
    return -1;
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *p = malloc(cap);
    while (p != NULL) {
        size_t r = fread(p + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) {
            break;
        }
        if (n + 1 == cap) {
            if (cap > ((size_t)2 << 20)) {
                free(p);
                return NULL; /* over the 1 MiB content bound anyway */
            }
            char *q = realloc(p, cap * 2);
            if (q == NULL) {
                free(p);
                return NULL;
            }
            p = q;
            cap *= 2;
        }
    }
    if (p != NULL) {
        p[n] = 0;
        *len = n;
    }
    return p;
}

int cmd_config_publish(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc = cfg_path(x, 3, 4,
                      "config publish needs <namespace> <app> <name> "
                      "[file] (stdin without file)",
                      path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    FILE *f = stdin;
    if (x->args_count == 4 && strcmp(x->args[3], "-") != 0) {
        f = fopen(x->args[3], "rb");
        if (f == NULL) {
            return ctl_fail(CTL_EXIT_BAD_ARGS, "%s: %s", x->args[3],
                            strerror(errno));
        }
    }
    size_t len = 0;
    char *content = read_all(f, &len);
    if (f != stdin) {
        fclose(f);
    }
    if (content == NULL) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "cannot read the content (over "
                                           "2 MiB, or out of memory)");
    }
    int64_t ev = -1;
    if (ctl_flag(x, "expect-version")[0] != 0 &&
        !ctl_flag_int(x, "expect-version", &ev)) {
        free(content);
        return CTL_EXIT_BAD_ARGS;
    }
    json_t *d = json_object();
    json_object_set_new(d, "content", json_stringn(content, len));
    free(content);
    if (json_object_get(d, "content") == NULL) {
        json_decref(d);
        return ctl_fail(CTL_EXIT_BAD_ARGS, "the content is not UTF-8");
    }
    json_object_set_new(d, "format", json_string(ctl_flag(x, "format")));
    if (ctl_flag(x, "message")[0] != 0) {
        json_object_set_new(d, "message", json_string(ctl_flag(x, "message")));
    }
    if (ev >= 0) {
        json_object_set_new(d, "expect_version", json_integer(ev));
    }
    char *body = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    json_t *a;
    rc = call(x, "PUT", path, body, &a);
    free(body);
    if (a != NULL) {
        char v[32], r[32];
        printf("published %s/%s/%s version %s revision %s sha256 %s\n",
               x->args[0], x->args[1], x->args[2],
               jnum(a, "version", v, sizeof(v)),
               jnum(a, "revision", r, sizeof(r)), jstr(a, "sha256"));
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

static void print_release_json(const struct cairn_config_release *r)
{
    json_t *o =
        json_pack("{s:I,s:I,s:s,s:s,s:b,s:b,s:s%}", "version",
                  (json_int_t)r->version, "revision", (json_int_t)r->revision,
                  "format", r->format, "sha256", r->sha256, "gray", r->gray,
                  "stale", r->stale, "content", r->content, r->content_len);
    char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    printf("%s\n", s != NULL ? s : "{}");
    free(s);
    json_decref(o);
}

int cmd_config_get(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc = cfg_path(x, 3, 3, "config get needs <namespace> <app> <name>",
                      path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    int64_t ver = 0;
    if (!ctl_flag_int(x, "version", &ver)) {
        return CTL_EXIT_BAD_ARGS;
    }
    if (ver > 0) { /* one release of the history */
        size_t l = strlen(path);
        snprintf(path + l, sizeof(path) - l, "/versions/%lld", (long long)ver);
        json_t *a;
        rc = call(x, "GET", path, NULL, &a);
        if (a != NULL) {
            fputs(jstr(a, "content"), stdout);
            json_decref(a);
        }
        return rc < 0 ? 0 : rc;
    }
    const char *cid = ctl_flag(x, "client-id"), *lab = ctl_flag(x, "labels"),
               *cache = ctl_flag(x, "cache-dir");
    if (x->fmt == CTL_JSON && cache[0] == 0) {
        /* the server's answer as it came (author, message, ...); the
         * library's release below has only what a cache keeps */
        char q[4096] = "";
        if ((cid[0] != 0 && !q_add(q, sizeof(q), "client_id", cid)) ||
            (lab[0] != 0 && !q_add(q, sizeof(q), "labels", lab))) {
            return ctl_fail(CTL_EXIT_BAD_ARGS, "--client-id or --labels too "
                                               "long");
        }
        size_t l = strlen(path);
        snprintf(path + l, sizeof(path) - l, "%s", q);
        json_t *a;
        rc = call(x, "GET", path, NULL, &a);
        return rc < 0 ? 0 : rc;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_ERROR;
    }
    struct cairn_config_req q = {.ns = x->args[0],
                                 .app = x->args[1],
                                 .name = x->args[2],
                                 .client_id = cid[0] != 0 ? cid : NULL,
                                 .labels = lab[0] != 0 ? lab : NULL,
                                 .cache_dir = cache[0] != 0 ? cache : NULL};
    struct cairn_config_release r;
    rc = cairn_config_get(c, &q, ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail(CTL_EXIT_ERROR, "%s", cairn_client_errmsg(c));
    }
    if (x->fmt == CTL_JSON) {
        print_release_json(&r);
    } else {
        fwrite(r.content, 1, r.content_len, stdout);
        if (r.stale) {
            fprintf(stderr,
                    "# stale: served from the local cache (version "
                    "%lld); no server could be reached\n",
                    (long long)r.version);
        }
    }
    cairn_config_release_free(&r);
    return 0;
}

int cmd_config_list(struct ctl *x)
{
    if (!want_args(x, 1, 2, "config list needs <namespace> [app]") ||
        !names_ok(x)) {
        return CTL_EXIT_BAD_ARGS;
    }
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "/api/v1/config/%s%s%s", x->args[0],
             x->args_count > 1 ? "/" : "", x->args_count > 1 ? x->args[1] : "");
    json_t *a;
    int rc = call(x, "GET", path, NULL, &a);
    if (a == NULL) {
        return rc < 0 ? 0 : rc;
    }
    if (x->args_count == 1) {
        json_t *apps = json_object_get(a, "apps");
        json_t *rows = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(apps, i, v)
        {
            json_array_append_new(rows, json_is_string(v)
                                            ? json_pack("{s:O}", "app", v)
                                            : json_incref(v));
        }
        static const char *const h[] = {"APP"};
        static const char *const k[] = {"app"};
        table(rows, h, k, 1);
        json_decref(rows);
    } else {
        static const char *const h[] = {"NAME",   "VERSION",    "FORMAT",
                                        "AUTHOR", "UPDATED AT", "GRAY",
                                        "MESSAGE"};
        static const char *const k[] = {"name",   "version",    "format",
                                        "author", "updated_at", "gray",
                                        "message"};
        table(json_object_get(a, "configs"), h, k, 7);
    }
    json_decref(a);
    return 0;
}

int cmd_config_history(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc = cfg_path(x, 3, 3, "config history needs <namespace> <app> <name>",
                      path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    size_t l = strlen(path);
    snprintf(path + l, sizeof(path) - l, "/versions");
    json_t *a;
    rc = call(x, "GET", path, NULL, &a);
    if (a != NULL) {
        static const char *const h[] = {"VERSION",    "SOURCE", "AUTHOR",
                                        "CREATED AT", "SHA256", "MESSAGE"};
        static const char *const k[] = {"version",    "source", "author",
                                        "created_at", "sha256", "message"};
        table(json_object_get(a, "versions"), h, k, 6);
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

int cmd_config_diff(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc = cfg_path(x, 5, 5,
                      "config diff needs <namespace> <app> <name> <from> <to>",
                      path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    char *e1 = NULL, *e2 = NULL;
    long long from = strtoll(x->args[3], &e1, 10);
    long long to = strtoll(x->args[4], &e2, 10);
    if (*e1 != 0 || *e2 != 0 || from <= 0 || to <= 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "versions are positive integers");
    }
    size_t l = strlen(path);
    snprintf(path + l, sizeof(path) - l, "/diff?from=%lld&to=%lld", from, to);
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_ERROR;
    }
    struct cairn_api_resp r;
    rc = cairn_api_call(c, "GET", path, NULL, ctl_deadline(x), &r);
    if (rc != 0) {
        cairn_api_resp_free(&r);
        return ctl_fail(CTL_EXIT_ERROR, "%s", cairn_client_errmsg(c));
    }
    /* The server answers diff -u's text; scripts get it in a JSON object
     * with the names and versions around it. */
    if (x->fmt == CTL_JSON) {
        json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s%}", "namespace",
                              x->args[0], "app", x->args[1], "name", x->args[2],
                              "from", (json_int_t)from, "to", (json_int_t)to,
                              "diff", r.body, r.body_len);
        char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        cairn_api_resp_free(&r);
        json_decref(o);
        if (s == NULL) {
            return ctl_fail(CTL_EXIT_ERROR, "the diff is not UTF-8");
        }
        printf("%s\n", s);
        free(s);
        return 0;
    }
    fwrite(r.body, 1, r.body_len, stdout);
    cairn_api_resp_free(&r);
    return 0;
}

int cmd_config_rollback(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc = cfg_path(x, 4, 4,
                      "config rollback needs <namespace> <app> <name> "
                      "<to-version>",
                      path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    char *e = NULL;
    long long to = strtoll(x->args[3], &e, 10);
    if (*e != 0 || to <= 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "the version is a positive integer");
    }
    size_t l = strlen(path);
    snprintf(path + l, sizeof(path) - l, "/rollback");
    json_t *d = json_pack("{s:I}", "to", (json_int_t)to);
    if (ctl_flag(x, "message")[0] != 0) {
        json_object_set_new(d, "message", json_string(ctl_flag(x, "message")));
    }
    char *body = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    json_t *a;
    rc = call(x, "POST", path, body, &a);
    free(body);
    if (a != NULL) {
        char v[32], r[32];
        printf("rolled back %s/%s/%s to version %lld as version %s revision "
               "%s\n",
               x->args[0], x->args[1], x->args[2], to,
               jnum(a, "version", v, sizeof(v)),
               jnum(a, "revision", r, sizeof(r)));
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

static void on_release(void *arg, const struct cairn_config_release *r)
{
    const struct ctl *x = arg;
    if (x->fmt == CTL_JSON) {
        print_release_json(r);
    } else {
        printf("# version %lld%s%s sha256 %s\n", (long long)r->version,
               r->gray ? " (gray)" : "",
               r->stale ? " (stale: local cache)" : "", r->sha256);
        fwrite(r->content, 1, r->content_len, stdout);
        if (r->content_len > 0 && r->content[r->content_len - 1] != '\n') {
            putchar('\n');
        }
    }
    fflush(stdout);
}

int cmd_config_watch(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc = cfg_path(x, 3, 3, "config watch needs <namespace> <app> <name>",
                      path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_ERROR;
    }
    const char *cid = ctl_flag(x, "client-id"), *lab = ctl_flag(x, "labels"),
               *cache = ctl_flag(x, "cache-dir");
    struct cairn_config_req q = {.ns = x->args[0],
                                 .app = x->args[1],
                                 .name = x->args[2],
                                 .client_id = cid[0] != 0 ? cid : NULL,
                                 .labels = lab[0] != 0 ? lab : NULL,
                                 .cache_dir = cache[0] != 0 ? cache : NULL};
    catch_signals();
    struct cairn_config_watch *w;
    rc = cairn_config_watch_new(c, &q, on_release, x, &w);
    if (rc != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "watch: %s", cairn_strerror(rc));
    }
    while (!interrupted) {
        usleep(100000);
    }
    cairn_config_watch_free(w);
    return 0;
}

int cmd_config_subscribers(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc =
        cfg_path(x, 3, 3, "config subscribers needs <namespace> <app> <name>",
                 path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    size_t l = strlen(path);
    snprintf(path + l, sizeof(path) - l, "/subscribers");
    json_t *a;
    rc = call(x, "GET", path, NULL, &a);
    if (a != NULL) {
        static const char *const h[] = {"CLIENT ID",       "ADDRESS",
                                        "CONNECTED SINCE", "DELIVERED",
                                        "ACKED",           "ACKED AT"};
        static const char *const k[] = {"client_id",       "address",
                                        "connected_since", "delivered_version",
                                        "acked_version",   "acked_at"};
        table(json_object_get(a, "subscribers"), h, k, 6);
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

/* ------------------------------------------------------- config gray */

/* The rule of --labels or --percentage (exactly one), or NULL after
 * printing the error. */
static json_t *gray_rule(struct ctl *x)
{
    const char *lab = ctl_flag(x, "labels"), *pct = ctl_flag(x, "percentage");
    if ((lab[0] != 0) == (pct[0] != 0)) {
        ctl_fail(CTL_EXIT_BAD_ARGS, "a gray release needs one rule: "
                                    "--labels k=v[,k=v...] or --percentage P");
        return NULL;
    }
    if (lab[0] != 0) {
        json_t *l = NULL;
        if (svc_labels_json(lab, &l) != 0 || json_object_size(l) == 0) {
            json_decref(l);
            ctl_fail(CTL_EXIT_BAD_ARGS, "--labels: k=v[,k=v...]");
            return NULL;
        }
        return json_pack("{s:o}", "labels", l);
    }
    char *end = NULL;
    double p = strtod(pct, &end);
    if (end == pct || *end != 0 || !(p >= 0 && p <= 100)) {
        ctl_fail(CTL_EXIT_BAD_ARGS, "--percentage: a number 0-100");
        return NULL;
    }
    return json_pack("{s:f}", "percentage", p);
}

int cmd_config_gray_put(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc = cfg_path(x, 3, 4,
                      "config gray put needs <namespace> <app> <name> "
                      "[file] (stdin without file)",
                      path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    json_t *rule = gray_rule(x);
    if (rule == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    FILE *f = stdin;
    if (x->args_count == 4 && strcmp(x->args[3], "-") != 0) {
        f = fopen(x->args[3], "rb");
        if (f == NULL) {
            json_decref(rule);
            return ctl_fail(CTL_EXIT_BAD_ARGS, "%s: %s", x->args[3],
                            strerror(errno));
        }
    }
    size_t len = 0;
    char *content = read_all(f, &len);
    if (f != stdin) {
        fclose(f);
    }
    if (content == NULL) {
        json_decref(rule);
        return ctl_fail(CTL_EXIT_BAD_ARGS, "cannot read the content (over "
                                           "2 MiB, or out of memory)");
    }
    json_t *d = json_pack("{s:s%,s:s,s:o}", "content", content, len, "format",
                          ctl_flag(x, "format"), "rule", rule);
    free(content);
    if (d == NULL) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "the content is not UTF-8");
    }
    if (ctl_flag(x, "message")[0] != 0) {
        json_object_set_new(d, "message", json_string(ctl_flag(x, "message")));
    }
    char *body = json_dumps(d, JSON_COMPACT);
    json_decref(d);
    size_t l = strlen(path);
    snprintf(path + l, sizeof(path) - l, "/gray");
    json_t *a;
    rc = call(x, "PUT", path, body, &a);
    free(body);
    if (a != NULL) {
        char v[32], r[32];
        printf("gray %s/%s/%s version %s revision %s sha256 %s\n", x->args[0],
               x->args[1], x->args[2], jnum(a, "version", v, sizeof(v)),
               jnum(a, "revision", r, sizeof(r)), jstr(a, "sha256"));
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

/* "labels zone=z1,env=prod" or "percentage 12.5" into buf. */
static const char *rule_text(const json_t *rule, char *buf, size_t n)
{
    json_t *pct = json_object_get(rule, "percentage");
    json_t *labels = json_object_get(rule, "labels");
    buf[0] = 0;
    if (json_is_number(pct)) {
        snprintf(buf, n, "percentage %g", json_number_value(pct));
        return buf;
    }
    size_t w = (size_t)snprintf(buf, n, "labels ");
    const char *k;
    json_t *v;
    bool first = true;
    json_object_foreach(labels, k, v)
    {
        if (w < n) {
            w += (size_t)snprintf(buf + w, n - w, "%s%s=%s", first ? "" : ",",
                                  k, json_string_value(v));
        }
        first = false;
    }
    return buf;
}

int cmd_config_gray_get(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc = cfg_path(x, 3, 3, "config gray get needs <namespace> <app> <name>",
                      path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    size_t l = strlen(path);
    snprintf(path + l, sizeof(path) - l, "/gray");
    json_t *a;
    rc = call(x, "GET", path, NULL, &a);
    if (a != NULL) {
        char rule[1024];
        json_t *rows = json_array();
        json_array_append_new(
            rows,
            json_pack("{s:O?,s:O?,s:s,s:O?,s:O?,s:O?}", "version",
                      json_object_get(a, "version"), "base_version",
                      json_object_get(a, "base_version"), "rule",
                      rule_text(json_object_get(a, "rule"), rule, sizeof(rule)),
                      "author", json_object_get(a, "author"), "created_at",
                      json_object_get(a, "created_at"), "message",
                      json_object_get(a, "message")));
        static const char *const h[] = {"VERSION", "BASE VERSION", "RULE",
                                        "AUTHOR",  "CREATED AT",   "MESSAGE"};
        static const char *const k[] = {"version", "base_version", "rule",
                                        "author",  "created_at",   "message"};
        table(rows, h, k, 6);
        json_decref(rows);
        const char *content = jstr(a, "content");
        size_t n = strlen(content);
        fputs(content, stdout);
        if (n > 0 && content[n - 1] != '\n') {
            putchar('\n'); /* the next prompt on a line of its own */
        }
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

int cmd_config_gray_promote(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc =
        cfg_path(x, 3, 3, "config gray promote needs <namespace> <app> <name>",
                 path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    size_t l = strlen(path);
    snprintf(path + l, sizeof(path) - l, "/gray/promote");
    json_t *a;
    rc = call(x, "POST", path, "{}", &a);
    if (a != NULL) {
        char v[32], r[32];
        printf("promoted %s/%s/%s gray release as version %s revision %s\n",
               x->args[0], x->args[1], x->args[2],
               jnum(a, "version", v, sizeof(v)),
               jnum(a, "revision", r, sizeof(r)));
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

int cmd_config_gray_abandon(struct ctl *x)
{
    char path[PATH_MAX_BYTES];
    int rc =
        cfg_path(x, 3, 3, "config gray abandon needs <namespace> <app> <name>",
                 path, sizeof(path));
    if (rc >= 0) {
        return rc;
    }
    size_t l = strlen(path);
    snprintf(path + l, sizeof(path) - l, "/gray");
    json_t *a;
    rc = call(x, "DELETE", path, NULL, &a);
    if (a != NULL) {
        char r[32];
        printf("abandoned %s/%s/%s gray release revision %s\n", x->args[0],
               x->args[1], x->args[2], jnum(a, "revision", r, sizeof(r)));
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

/* -------------------------------------------------------------- audit */

int cmd_audit_list(struct ctl *x)
{
    if (!want_args(x, 0, 0, "audit list takes no arguments (see --help)")) {
        return CTL_EXIT_BAD_ARGS;
    }
    int64_t since = 0, limit = 0;
    if (!ctl_flag_int(x, "since", &since) ||
        !ctl_flag_int(x, "limit", &limit)) {
        return CTL_EXIT_BAD_ARGS;
    }
    char q[4096] = "", num[32];
    static const char *const filters[] = {"namespace", "principal", "action"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = ctl_flag(x, filters[i]);
        if (v[0] != 0 && !q_add(q, sizeof(q), filters[i], v)) {
            return ctl_fail(CTL_EXIT_BAD_ARGS, "--%s too long", filters[i]);
        }
    }
    if (since > 0) {
        snprintf(num, sizeof(num), "%lld", (long long)since);
        q_add(q, sizeof(q), "since", num);
    }
    if (limit > 0) {
        snprintf(num, sizeof(num), "%lld", (long long)limit);
        q_add(q, sizeof(q), "limit", num);
    }
    char path[PATH_MAX_BYTES];
    snprintf(path, sizeof(path), "/api/v1/audit%s", q);
    json_t *a;
    int rc = call(x, "GET", path, NULL, &a);
    if (a != NULL) {
        static const char *const h[] = {
            "SEQ",    "REVISION",  "TIME",   "PRINCIPAL", "SOURCE",
            "ACTION", "NAMESPACE", "TARGET", "VERSION",   "MESSAGE"};
        static const char *const k[] = {
            "seq",    "revision",  "time",   "principal", "source",
            "action", "namespace", "target", "version",   "message"};
        table(json_object_get(a, "records"), h, k, 10);
        if (json_is_true(json_object_get(a, "more"))) {
            char ns[32];
            const char *next = jnum(a, "next_since", ns, sizeof(ns));
            if (next[0] != 0) {
                printf("more records: --since %s\n", next);
            } else {
                printf("more records: older ones (use --since)\n");
            }
        }
        json_decref(a);
    }
    return rc < 0 ? 0 : rc;
}

int cmd_audit_verify(struct ctl *x)
{
    if (!want_args(x, 0, 0, "audit verify takes no arguments")) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_ERROR;
    }
    struct cairn_api_resp r;
    int rc = cairn_api_call(c, "GET", "/api/v1/audit/verify", NULL,
                            ctl_deadline(x), &r);
    if (rc != 0) {
        const char *m = cairn_client_errmsg(c);
        cairn_api_resp_free(&r);
        return ctl_fail(CTL_EXIT_ERROR, "%s",
                        m[0] != 0 ? m : cairn_strerror(rc));
    }
    json_error_t je;
    json_t *a = json_loadb(r.body, r.body_len, 0, &je);
    if (x->fmt == CTL_JSON) {
        fwrite(r.body, 1, r.body_len, stdout);
        if (r.body_len == 0 || r.body[r.body_len - 1] != '\n') {
            putchar('\n');
        }
    }
    cairn_api_resp_free(&r);
    if (a == NULL) {
        return ctl_fail(CTL_EXIT_ERROR, "malformed answer: %s", je.text);
    }
    char n1[32], n2[32], n3[32], n4[32];
    bool ok = json_is_true(json_object_get(a, "ok"));
    if (ok && x->fmt != CTL_JSON) {
        printf("audit log intact: %s records (seq %s-%s) head hash %s "
               "revision %s\n",
               jnum(a, "records", n1, sizeof(n1)),
               jnum(a, "first_seq", n2, sizeof(n2)),
               jnum(a, "head_seq", n3, sizeof(n3)), jstr(a, "head_hash"),
               jnum(a, "revision", n4, sizeof(n4)));
    } else if (!ok) {
        ctl_fail(CTL_EXIT_ERROR, "audit log broken at seq %s (key %s): %s",
                 jnum(a, "broken_seq", n1, sizeof(n1)), jstr(a, "broken_key"),
                 jstr(a, "reason"));
    }
    json_decref(a);
    return ok ? 0 : CTL_EXIT_ERROR;
}

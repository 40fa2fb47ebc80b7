/*
 * http_mux.c - the multiplexed WebSocket (GET /api/v1/stream): one socket
 * carries a client process's session heartbeats and any number of
 * discovery and config subscriptions (docs/registry.md, "One socket for
 * everything"), so an SDK needs one connection, not one per service.
 *
 * Happy path. Each client message is one JSON object with an "op" and an
 * "id" the client chooses; the server answers it once, echoing the id:
 *   subscribe   {"id":1,"op":"subscribe","kind":"registry","namespace",
 *               "service"?,"since"?}  or kind "config" with "app"?,
 *               "name"?, "client_id"?, "labels"? -> {"id":1,"sub":1}, then
 *               the messages of /api/v1/watch/... for it, each with
 *               "sub":1 first (the subscription's id is the request's).
 *   unsubscribe {"id":2,"op":"unsubscribe","sub":1} -> {"id":2,"sub":1,
 *               "revision":R} (R: the resume point); nothing more for it.
 *               A subscribe not answered yet is answered first, with the
 *               error "canceled".
 *   ack         {"op":"ack","sub":1,"name","version"[,"app"]} -> nothing,
 *               or {"id":..} when it has an id.
 *   session     {"id":3,"op":"session","ttl"?} -> POST /api/v1/sessions's
 *               answer with the id: {"id":3,"session","ttl","revision"}.
 *   keepalive   {"id":4,"op":"keepalive","session":"<hex>"} -> {"id":4,
 *               "session","ttl"} (POST .../keepalive's answer).
 * Subscriptions reuse http_stream.c's (struct hsub): the same snapshot,
 * events, resume, compaction and permission checks as the single-purpose
 * streams, on the socket's one hub stream and one outbound queue. session
 * and keepalive go through svc_handle, the REST API's own code, so they
 * answer exactly what the REST calls answer.
 *
 * Failure modes. Every bad request gets {"id":..,"error":{"code",
 * "message","field"?}} (the REST error's fields and codes) and the socket
 * stays open: malformed JSON, a non-object, a missing or unknown op, a bad
 * field, an unknown sub (not_found), a subscribe id already open
 * (conflict), subscriptions past --ws-subscriptions-max or REST calls in
 * flight past MUX_CALLS_MAX (resource_exhausted), a message over
 * --ws-message-bytes-max (too_large, skipped unread: http_stream.c). A
 * subscription that fails later (permission revoked, scope too large)
 * sends {"sub":N,"type":"error",..} and ends alone. The socket as a whole
 * ends only as a single-purpose stream does: the client does not read for
 * HTTP_STREAM_STALL_S with its queue at LIMIT_CONN_OUT_BYTES, a message
 * cannot be encoded, or the server stops; every subscription then resumes
 * on a new socket with since= its last revision.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "registry/http/http_stream_int.h"
#include "registry/server/options.h"
#include "registry/services/services.h"

/* JSON's largest exact integer: a subscription id must round-trip through
 * a JavaScript client. */
#define MUX_ID_MAX 9007199254740991LL

enum mux_op {
    MUX_OP_SESSION = 1,
    MUX_OP_KEEPALIVE,
};

uint64_t http__mux_msg_max(const struct hstream *hs)
{
    const struct server *s = hs->h->s;
    uint64_t m = s->opt != NULL ? s->opt->ws_message_bytes_max : 65536;
    uint64_t r = s->limits.v[LIMIT_REQUEST_BYTES];
    return m < r ? m : r;
}

static uint64_t subs_max(const struct hstream *hs)
{
    const struct server *s = hs->h->s;
    return s->opt != NULL ? s->opt->ws_subscriptions_max : 256;
}

/* Queue an answer; one that cannot be queued (out of memory) ends the
 * socket, as a message that cannot be encoded does. */
static void answer(struct hstream *hs, json_t *o)
{
    if (http__stream_send_json(hs, o) != 0) {
        hs->doomed = true;
        lws_callback_on_writable(hs->wsi);
    }
}

/* {"id":id?,"sub":sub?,"error":{"code","message","field"?}} */
static void answer_error(struct hstream *hs, json_t *id, int64_t sub,
                         const char *code, const char *message,
                         const char *field)
{
    json_t *o = json_object();
    json_t *e = json_pack("{s:s,s:s}", "code", code, "message", message);
    if (e == NULL) {
        /* a message that is not UTF-8 (it quotes the client): say less,
         * rather than end the socket as an encoding failure would */
        e = json_pack("{s:s,s:s}", "code", code, "message",
                      "the request was refused (its text is not UTF-8)");
    }
    if (o == NULL || e == NULL) {
        json_decref(o);
        json_decref(e);
        answer(hs, NULL);
        return;
    }
    if (field != NULL) {
        json_object_set_new(e, "field", json_string(field));
    }
    if (id != NULL) {
        json_object_set(o, "id", id);
    }
    if (sub > 0) {
        json_object_set_new(o, "sub", json_integer(sub));
    }
    json_object_set_new(o, "error", e);
    if (strcmp(code, "bad_request") == 0) {
        hs->h->st.ws_bad_messages++;
    }
    if (strcmp(code, "resource_exhausted") == 0 ||
        strcmp(code, "too_large") == 0) {
        hs->h->st.mux_limit_hits++;
    }
    hs->h->st.mux_errors++;
    answer(hs, o);
}

static void answer_bad(struct hstream *hs, json_t *id, const char *message,
                       const char *field)
{
    answer_error(hs, id, 0, "bad_request", message, field);
}

/* A string field: NULL when absent or null; *bad when present but not a
 * string. */
static const char *str_field(json_t *m, const char *name, bool *bad)
{
    json_t *v = json_object_get(m, name);
    if (v == NULL || json_is_null(v)) {
        return NULL;
    }
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

/* ------------------------------------------------------------ subscribe */

static int sub_registry(struct hsub *sub, json_t *m, const char **why,
                        const char **field)
{
    bool bad = false;
    const char *ns = str_field(m, "namespace", &bad);
    const char *svc = str_field(m, "service", &bad);
    char path[2 * SVC_NAME_MAX + 2];
    if (ns == NULL || !svc_name_ok(ns, strlen(ns))) {
        *field = "namespace";
        *why = "\"namespace\" is a name (1-128 bytes of [A-Za-z0-9._-])";
        return ERR_BAD_REQUEST;
    }
    if (bad || (svc != NULL && !svc_name_ok(svc, strlen(svc)))) {
        *field = "service";
        *why = "\"service\" is a name (1-128 bytes of [A-Za-z0-9._-])";
        return ERR_BAD_REQUEST;
    }
    snprintf(path, sizeof(path), "%s%s%s", ns, svc != NULL ? "/" : "",
             svc != NULL ? svc : "");
    if (svc_watch_prefix(path, sub->key, sizeof(sub->key), &sub->key_len) !=
        0) {
        *field = "namespace";
        *why = "bad namespace or service";
        return ERR_BAD_REQUEST;
    }
    return 0;
}

/* labels as an object {"k":"v"} or the query form "k=v,k2=v2". */
static int sub_labels(struct hsub *sub, json_t *v, const char **why)
{
    char text[1024];
    char msg[128];
    size_t n = 0;
    const char *k;
    json_t *x;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (json_is_string(v)) {
        snprintf(text, sizeof(text), "%s", json_string_value(v));
        n = strlen(text);
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            int w;
            if (!json_is_string(x)) {
                *why = "\"labels\" values are strings";
                return ERR_BAD_REQUEST;
            }
            w = snprintf(text + n, sizeof(text) - n, "%s%s=%s",
                         n > 0 ? "," : "", k, json_string_value(x));
            if (w < 0 || (size_t)w >= sizeof(text) - n) {
                *why = "\"labels\" is too long";
                return ERR_BAD_REQUEST;
            }
            n += (size_t)w;
        }
    } else {
        *why = "\"labels\" is an object of strings";
        return ERR_BAD_REQUEST;
    }
    if (cfg_labels_parse(text, n, &sub->cfg_client->labels, msg, sizeof(msg)) !=
        0) {
        *why = "bad \"labels\": keys 1-63 and values 0-63 bytes of "
               "[A-Za-z0-9._/-], at most 32";
        return ERR_BAD_REQUEST;
    }
    return 0;
}

static int sub_config(struct hsub *sub, json_t *m, const char **why,
                      const char **field)
{
    bool bad = false;
    const char *ns = str_field(m, "namespace", &bad);
    const char *app = str_field(m, "app", &bad);
    const char *name = str_field(m, "name", &bad);
    const char *client = str_field(m, "client_id", &bad);
    static const char name_why[] = "a name (1-128 bytes of [A-Za-z0-9._-])";
    *why = name_why;
    if (ns == NULL || !cfg_name_ok(ns, strlen(ns))) {
        *field = "namespace";
        return ERR_BAD_REQUEST;
    }
    if (app != NULL && !cfg_name_ok(app, strlen(app))) {
        *field = "app";
        return ERR_BAD_REQUEST;
    }
    if ((name != NULL && !cfg_name_ok(name, strlen(name))) ||
        (name != NULL && app == NULL)) {
        *field = "name";
        *why = "\"name\" is a name, and needs \"app\"";
        return ERR_BAD_REQUEST;
    }
    if (bad || (client != NULL && !cfg_name_ok(client, strlen(client)))) {
        *field = "client_id";
        *why = "\"client_id\" (and namespace, app, name) are names (1-128 "
               "bytes of [A-Za-z0-9._-])";
        return ERR_BAD_REQUEST;
    }
    if (sub_labels(sub, json_object_get(m, "labels"), why) != 0) {
        *field = "labels";
        return ERR_BAD_REQUEST;
    }
    snprintf(sub->cfg_ns, sizeof(sub->cfg_ns), "%s", ns);
    snprintf(sub->cfg_app, sizeof(sub->cfg_app), "%s", app != NULL ? app : "");
    snprintf(sub->cfg_name, sizeof(sub->cfg_name), "%s",
             name != NULL ? name : "");
    snprintf(sub->cfg_client->client_id, sizeof(sub->cfg_client->client_id),
             "%s", client != NULL ? client : "");
    sub->key_len =
        (size_t)snprintf(sub->key, sizeof(sub->key), "/config/%s/%s%s", ns,
                         app != NULL ? app : "", app ? "/" : "");
    return 0;
}

/* The checks every subscribe makes before it holds anything. */
static int sub_precheck(struct hstream *hs, json_t *m, json_t *id,
                        int64_t *since, const char **token)
{
    json_t *sv = json_object_get(m, "since");
    json_t *tv = json_object_get(m, "token");
    char msg[160];
    if (!json_is_integer(id) || json_integer_value(id) < 1 ||
        json_integer_value(id) > MUX_ID_MAX) {
        answer_bad(hs, id,
                   "a subscribe's \"id\" is a positive integer: it names the "
                   "subscription",
                   "id");
        return -1;
    }
    if (http__sub_find(hs, json_integer_value(id)) != NULL) {
        answer_error(hs, id, 0, "conflict",
                     "a subscription with this id is open on this socket",
                     "id");
        return -1;
    }
    if (hs->subs_count >= subs_max(hs)) {
        snprintf(msg, sizeof(msg),
                 "at most %llu subscriptions per socket "
                 "(--ws-subscriptions-max)",
                 (unsigned long long)subs_max(hs));
        answer_error(hs, id, 0, "resource_exhausted", msg, NULL);
        return -1;
    }
    *since = 0;
    if (sv != NULL && !json_is_null(sv)) {
        if (!json_is_integer(sv) || json_integer_value(sv) < 0) {
            answer_bad(hs, id, "\"since\" is a revision (an integer >= 0)",
                       "since");
            return -1;
        }
        *since = json_integer_value(sv);
    }
    *token = hs->token;
    if (tv != NULL && !json_is_null(tv)) {
        if (!json_is_string(tv) ||
            strlen(json_string_value(tv)) >= HTTP_TOKEN_MAX) {
            answer_bad(hs, id, "\"token\" is an auth token (a string)",
                       "token");
            return -1;
        }
        *token = json_string_value(tv);
    }
    return 0;
}

static void op_subscribe(struct hstream *hs, json_t *m, json_t *id)
{
    const char *kind = json_string_value(json_object_get(m, "kind"));
    const char *why = NULL;
    const char *field = NULL;
    const char *token;
    int64_t since;
    struct hsub *sub;
    int rc;
    if (sub_precheck(hs, m, id, &since, &token) != 0) {
        return;
    }
    if (kind == NULL ||
        (strcmp(kind, "registry") != 0 && strcmp(kind, "config") != 0)) {
        answer_bad(hs, id, "\"kind\" is \"registry\" or \"config\"", "kind");
        return;
    }
    bool reg = strcmp(kind, "registry") == 0;
    sub = http__sub_new(hs, json_integer_value(id), token, !reg);
    if (sub == NULL) {
        answer_error(hs, id, 0, "internal", "out of memory", NULL);
        return;
    }
    rc = reg ? sub_registry(sub, m, &why, &field)
             : sub_config(sub, m, &why, &field);
    if (rc != 0) {
        http__sub_free(sub);
        answer_bad(hs, id, why, field);
        return;
    }
    /* from here the subscription answers for itself (sub_answer or
     * reg_fail in http_stream.c), maybe before this returns */
    rc =
        reg ? http__sub_reg_start(sub, since) : http__sub_cfg_start(sub, since);
    if (rc != 0) {
        const char *code = "internal";
        grpc_api_v1_status(rc, &code);
        http__sub_free(sub);
        answer_error(hs, id, 0, code, err_str(rc), NULL);
    }
}

/* ------------------------------------------------- unsubscribe and ack */

/* The "sub" of a request, or 0 (answered). */
static struct hsub *sub_of(struct hstream *hs, json_t *m, json_t *id)
{
    json_t *v = json_object_get(m, "sub");
    struct hsub *sub;
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        answer_bad(hs, id, "\"sub\" is the id of a subscription", "sub");
        return NULL;
    }
    sub = http__sub_find(hs, json_integer_value(v));
    if (sub == NULL) {
        answer_error(hs, id, json_integer_value(v), "not_found",
                     "no such subscription on this socket", "sub");
    }
    return sub;
}

static void op_unsubscribe(struct hstream *hs, json_t *m, json_t *id)
{
    struct hsub *sub = sub_of(hs, m, id);
    json_t *o;
    if (sub == NULL) {
        return;
    }
    if (!sub->answered) {
        /* its subscribe is still being read: it gets its answer, once */
        json_t *sid = json_integer(sub->id);
        answer_error(hs, sid, sub->id, "canceled",
                     "unsubscribed before the subscribe was answered", NULL);
        json_decref(sid);
    }
    o = json_pack("{s:I,s:I}", "sub", (json_int_t)sub->id, "revision",
                  (json_int_t)sub->rev);
    if (o != NULL && id != NULL) {
        json_object_set(o, "id", id);
    }
    http__sub_free(sub);
    answer(hs, o);
}

static void op_ack(struct hstream *hs, json_t *m, json_t *id)
{
    struct hsub *sub = sub_of(hs, m, id);
    const char *why = NULL;
    const char *field = NULL;
    if (sub == NULL) {
        return;
    }
    if (!sub->cfg) {
        answer_bad(hs, id, "acks are for config subscriptions", "sub");
        return;
    }
    if (http__sub_ack(sub, m, &why, &field) != 0) {
        answer_error(hs, id, sub->id, "bad_request", why, field);
        return;
    }
    if (id != NULL) {
        answer(hs,
               json_pack("{s:O,s:I}", "id", id, "sub", (json_int_t)sub->id));
    }
}

/* ------------------------------------------------- session, keepalive */

/* The REST call answered: its body, with the request's id. */
static void call_done(void *ctx, int status, const char *body, size_t len)
{
    struct mux_call *c = ctx;
    struct hstream *hs = c->hs;
    struct mux_call **pp;
    json_t *b;
    ASSERT(c->req == NULL);
    ASSERT(hs != NULL);
    for (pp = &hs->calls; *pp != c; pp = &(*pp)->next) {
        ASSERT(*pp != NULL);
    }
    *pp = c->next;
    ASSERT(hs->calls_count > 0);
    hs->calls_count--;
    b = svc_json_loadb(body, len, 0, NULL);
    if (status >= 200 && status < 300 && json_is_object(b)) {
        json_t *o = json_object();
        if (o != NULL && c->id != NULL) {
            json_object_set(o, "id", c->id);
        }
        if (o != NULL) {
            json_object_update(o, b);
        }
        answer(hs, o);
    } else {
        const char *code = json_string_value(json_object_get(b, "code"));
        const char *msg = json_string_value(json_object_get(b, "message"));
        answer_error(hs, c->id, 0, code != NULL ? code : "internal",
                     msg != NULL ? msg : "the call failed",
                     json_string_value(json_object_get(b, "field")));
    }
    json_decref(b);
    json_decref(c->id);
    mem_free(c);
    lws_callback_on_writable(hs->wsi);
}

static void call_rest(struct hstream *hs, json_t *m, json_t *id, int op,
                      const char *path, const char *body)
{
    bool bad = false;
    const char *token = str_field(m, "token", &bad);
    struct mux_call *c;
    char msg[96];
    if (bad) {
        answer_bad(hs, id, "\"token\" is an auth token (a string)", "token");
        return;
    }
    if (hs->calls_count >= MUX_CALLS_MAX) {
        snprintf(msg, sizeof(msg),
                 "at most %d session calls in flight per socket",
                 MUX_CALLS_MAX);
        answer_error(hs, id, 0, "resource_exhausted", msg, NULL);
        return;
    }
    c = mem_calloc(1, sizeof(*c));
    if (c == NULL) {
        answer_error(hs, id, 0, "internal", "out of memory", NULL);
        return;
    }
    c->hs = hs;
    c->op = op;
    c->id = json_incref(id);
    c->next = hs->calls;
    hs->calls = c;
    hs->calls_count++;
    if (token == NULL && hs->token[0] != '\0') {
        token = hs->token;
    }
    /* the audit record's source address */
    char peer[64];
    peer[0] = '\0';
    if (hs->wsi != NULL) {
        http__peer(hs->h, hs->wsi, peer, sizeof(peer));
    }
    /* may answer (and free c) before it returns; without a token the
     * certificate's CN is the user */
    svc_handle(hs->h->s, "POST", path, NULL, body,
               body != NULL ? strlen(body) : 0, token, hs->cn, peer, &c->req,
               call_done, c);
}

static void op_session(struct hstream *hs, json_t *m, json_t *id)
{
    json_t *ttl = json_object_get(m, "ttl");
    char *body = NULL;
    if (ttl != NULL) {
        json_t *b = json_pack("{s:O}", "ttl", ttl);
        body = b != NULL ? svc_json_dump(b) : NULL;
        json_decref(b);
        if (body == NULL) {
            answer_error(hs, id, 0, "internal", "out of memory", NULL);
            return;
        }
    }
    call_rest(hs, m, id, MUX_OP_SESSION, "/api/v1/sessions",
              body != NULL ? body : "{}");
    free(body);
}

static void op_keepalive(struct hstream *hs, json_t *m, json_t *id)
{
    bool bad = false;
    const char *sess = str_field(m, "session", &bad);
    char path[64];
    size_t n = sess != NULL ? strlen(sess) : 0;
    if (n == 0 || n > 16 || strspn(sess, "0123456789abcdefABCDEF") != n) {
        answer_bad(hs, id, "\"session\" is a session id (1-16 hex digits)",
                   "session");
        return;
    }
    snprintf(path, sizeof(path), "/api/v1/sessions/%s/keepalive", sess);
    call_rest(hs, m, id, MUX_OP_KEEPALIVE, path, NULL);
}

/* ------------------------------------------------------------ messages */

/* An ack of the plain shape (http_ack.c) on a config subscription of
 * this socket: handled without a JSON tree, and with no writable callback
 * unless it is refused (it answers nothing). false: the caller reads the
 * message as any other, errors included. */
static bool ack_fast(struct hstream *hs, const char *json, size_t len)
{
    struct http_ack a;
    struct hsub *sub;
    const char *why = NULL;
    const char *field = NULL;
    if (!http__ack_read(json, len, true, &a) || a.sub < 1 ||
        (sub = http__sub_find(hs, a.sub)) == NULL || !sub->cfg) {
        return false;
    }
    hs->h->st.mux_requests++;
    if (http__sub_ack_read(sub, &a, &why, &field) != 0) {
        answer_error(hs, NULL, sub->id, "bad_request", why, field);
        lws_callback_on_writable(hs->wsi);
    }
    return true;
}

void http__mux_message(struct hstream *hs, const char *json, size_t len)
{
    json_error_t je;
    json_t *m;
    json_t *id;
    const char *op;
    char msg[256];
    if (ack_fast(hs, json, len)) {
        return;
    }
    m = svc_json_loadb(json, len, 0, &je);
    hs->h->st.mux_requests++;
    if (!json_is_object(m)) {
        if (m == NULL) {
            snprintf(msg, sizeof(msg),
                     "malformed JSON at line %d column %d: %s", je.line,
                     je.column, je.text);
        } else {
            snprintf(msg, sizeof(msg), "a request is a JSON object");
        }
        json_decref(m);
        answer_bad(hs, NULL, msg, NULL);
        return;
    }
    id = json_object_get(m, "id");
    if (id != NULL && !json_is_integer(id) && !json_is_string(id)) {
        answer_bad(hs, NULL, "\"id\" is an integer or a string", "id");
        json_decref(m);
        return;
    }
    op = json_string_value(json_object_get(m, "op"));
    if (op == NULL) {
        answer_bad(hs, id,
                   "missing \"op\": subscribe, unsubscribe, ack, session or "
                   "keepalive",
                   "op");
    } else if (strcmp(op, "subscribe") == 0) {
        op_subscribe(hs, m, id);
    } else if (strcmp(op, "unsubscribe") == 0) {
        op_unsubscribe(hs, m, id);
    } else if (strcmp(op, "ack") == 0) {
        op_ack(hs, m, id);
    } else if (strcmp(op, "session") == 0) {
        op_session(hs, m, id);
    } else if (strcmp(op, "keepalive") == 0) {
        op_keepalive(hs, m, id);
    } else {
        /* the op is JSON text, so UTF-8; cut it at a character boundary */
        size_t n = strlen(op) > 64 ? 64 : strlen(op);
        while (n > 0 && n < strlen(op) &&
               ((unsigned char)op[n] & 0xc0) == 0x80) {
            n--;
        }
        snprintf(msg, sizeof(msg),
                 "unknown op \"%.*s\": subscribe, unsubscribe, ack, session "
                 "or keepalive",
                 (int)n, op);
        answer_bad(hs, id, msg, "op");
    }
    json_decref(m);
    lws_callback_on_writable(hs->wsi);
}

void http__mux_too_large(struct hstream *hs, uint64_t max)
{
    char msg[128];
    hs->h->st.mux_requests++;
    snprintf(msg, sizeof(msg),
             "a message is at most %llu bytes (--ws-message-bytes-max); it "
             "was not read",
             (unsigned long long)max);
    answer_error(hs, NULL, 0, "too_large", msg, NULL);
    lws_callback_on_writable(hs->wsi);
}

void http__mux_detach(struct hstream *hs)
{
    struct mux_call *next;
    size_t n = 0;
    for (struct mux_call *c = hs->calls; c != NULL; c = next) {
        ASSERT(n++ < MUX_CALLS_MAX);
        next = c->next;
        if (c->req != NULL) {
            svc_cancel(c->req); /* call_done will not run */
        }
        json_decref(c->id);
        mem_free(c);
    }
    hs->calls = NULL;
    hs->calls_count = 0;
}

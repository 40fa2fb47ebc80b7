/*
 * cairnctl_txn.c - txn (from stdin, or -i with prompts) and watch (one
 * key or range, or -i reading "watch ..." lines), as etcdctl 3.4 does them
 * (txn_command.go: compares, blank line, success ops, blank line, failure
 * ops, blank line; a compare is target("key") op "value"; an op is a get,
 * put or del command line with its flags).
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sdk/cairnctl/cairnctl.h"

#define TXN_ITEMS_MAX 128
#define TOKENS_MAX    32

/* One parsed op and the storage its pointers use. */
struct op_store {
    char line[1024];
    char *tok[TOKENS_MAX];
    uint8_t end_buf[4096];
};

/* Reads one line without its newline; false at EOF. */
static bool read_line(char *buf, size_t size)
{
    if (fgets(buf, (int)size, stdin) == NULL) {
        return false;
    }
    buf[strcspn(buf, "\r\n")] = 0;
    return true;
}

/* Go's %q scan: a double-quoted string with escapes, or a raw `string`.
 * Writes into out in place; returns the position after it, or NULL. */
static char *scan_quoted(char *p, char *out)
{
    char q = *p;
    if (q != '"' && q != '`') {
        return NULL;
    }
    p++;
    while (*p != 0 && *p != q) { /* bounded by the line */
        if (q == '"' && *p == '\\' && p[1] != 0) {
            p++;
            char e = *p == 'n'   ? '\n'
                     : *p == 't' ? '\t'
                     : *p == 'r' ? '\r'
                     : *p == '0' ? '\0'
                                 : *p;
            if (*p == 'x' && p[1] != 0 && p[2] != 0) {
                char hex[3] = {p[1], p[2], 0};
                e = (char)strtol(hex, NULL, 16);
                p += 2;
            }
            *out++ = e;
            p++;
        } else {
            *out++ = *p++;
        }
    }
    if (*p != q) {
        return NULL;
    }
    *out = 0;
    return p + 1;
}

static int parse_compare(char *line, struct cairn_compare *cmp, char *key,
                         char *val)
{
    char copy[1024];
    snprintf(copy, sizeof(copy), "%s", line);
    char *lp = strchr(copy, '(');
    if (lp == NULL) {
        return ctl_fail(CTL_EXIT_INVALID_INPUT, "malformed comparison: %s",
                        line);
    }
    *lp = 0;
    const char *target = copy;
    char *p = scan_quoted(lp + 1, key);
    char op[8] = {0};
    if (p != NULL && p[0] == ')' && p[1] == ' ') {
        p += 2;
        size_t n = strcspn(p, " ");
        if (n > 0 && n < sizeof(op) && p[n] == ' ') {
            memcpy(op, p, n);
            p = scan_quoted(p + n + 1, val);
        } else {
            p = NULL;
        }
    } else {
        p = NULL;
    }
    if (p == NULL) {
        return ctl_fail(CTL_EXIT_INVALID_INPUT, "malformed comparison: %s",
                        line);
    }
    memset(cmp, 0, sizeof(*cmp));
    cmp->key = (const uint8_t *)key;
    cmp->key_len = strlen(key);
    if (strcmp(op, "=") == 0) {
        cmp->result = CAIRN_CMP_EQUAL;
    } else if (strcmp(op, "!=") == 0) {
        cmp->result = CAIRN_CMP_NOT_EQUAL;
    } else if (strcmp(op, "<") == 0) {
        cmp->result = CAIRN_CMP_LESS;
    } else if (strcmp(op, ">") == 0) {
        cmp->result = CAIRN_CMP_GREATER;
    } else {
        return ctl_fail(CTL_EXIT_INVALID_INPUT, "Unknown result op %s", op);
    }
    bool numeric = true;
    if (strcmp(target, "ver") == 0 || strcmp(target, "version") == 0) {
        cmp->target = CAIRN_CMP_VERSION;
    } else if (strcmp(target, "c") == 0 || strcmp(target, "create") == 0) {
        cmp->target = CAIRN_CMP_CREATE;
    } else if (strcmp(target, "m") == 0 || strcmp(target, "mod") == 0) {
        cmp->target = CAIRN_CMP_MOD;
    } else if (strcmp(target, "lease") == 0) {
        cmp->target = CAIRN_CMP_LEASE;
    } else if (strcmp(target, "val") == 0 || strcmp(target, "value") == 0) {
        cmp->target = CAIRN_CMP_VALUE;
        cmp->value = (const uint8_t *)val;
        cmp->value_len = strlen(val);
        numeric = false;
    } else {
        return ctl_fail(CTL_EXIT_INVALID_INPUT,
                        "malformed comparison: %s (unknown target %s)", line,
                        target);
    }
    if (numeric) {
        char *end;
        cmp->number = cmp->target == CAIRN_CMP_LEASE ? strtoll(val, &end, 16)
                                                     : strtoll(val, &end, 10);
        if (*val == 0 || *end != 0) {
            return ctl_fail(CTL_EXIT_INVALID_INPUT,
                            "invalid txn compare request: %s", line);
        }
    }
    return -1;
}

/* etcdctl's argify: "quoted", 'single' or bare words. */
static size_t argify(char *line, char **tok)
{
    size_t n = 0;
    char *p = line;
    while (*p != 0 && n < TOKENS_MAX) { /* each round consumes input */
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (*p == 0) {
            break;
        }
        char *start = p;
        if (*p == '"') {
            char *after = scan_quoted(p, p);
            if (after == NULL) {
                after = p + strlen(p);
            }
            tok[n++] = start;
            p = after;
        } else if (*p == '\'') {
            char *close = strchr(p + 1, '\'');
            tok[n++] = p + 1;
            p = close != NULL ? close : p + strlen(p);
        } else {
            p += strcspn(p, " \t");
            tok[n++] = start;
        }
        if (*p != 0) {
            *p++ = 0;
        }
    }
    return n;
}

/* One op line (get/put/del with flags) into op; -1 ok, else exit code. */
static int parse_op(struct ctl *x, const char *line, struct op_store *st,
                    struct cairn_op *op)
{
    snprintf(st->line, sizeof(st->line), "%s", line);
    size_t n = argify(st->line, st->tok);
    const struct ctl_cmd *cmd = n >= 2 ? ctl_cmd_find(st->tok[0]) : NULL;
    if (cmd == NULL ||
        (cmd->fn != cmd_get && cmd->fn != cmd_put && cmd->fn != cmd_del)) {
        return ctl_fail(CTL_EXIT_INVALID_INPUT,
                        "invalid txn compare request: %s", line);
    }
    struct ctl y;
    memset(&y, 0, sizeof(y));
    y.fmt = x->fmt;
    for (size_t i = 0; i < cmd->opts_count; i++) {
        y.opts[y.opts_count++] = cmd->opts[i];
    }
    for (size_t i = 1; i < n; i++) {
        char *t = st->tok[i];
        if (strncmp(t, "--", 2) != 0 || t[2] == 0) {
            y.args[y.args_count++] = t;
            continue;
        }
        char *eq = strchr(t, '=');
        size_t len = eq != NULL ? (size_t)(eq - t - 2) : strlen(t + 2);
        struct ctl_opt *o = NULL;
        for (size_t k = 0; k < y.opts_count; k++) {
            if (strlen(y.opts[k].name) == len &&
                memcmp(y.opts[k].name, t + 2, len) == 0) {
                o = &y.opts[k];
            }
        }
        if (o == NULL || (!o->is_bool && eq == NULL && i + 1 >= n)) {
            return ctl_fail(CTL_EXIT_INVALID_INPUT, "invalid txn request: %s",
                            line);
        }
        o->val = eq != NULL ? eq + 1 : o->is_bool ? "true" : st->tok[++i];
    }
    memset(op, 0, sizeof(*op));
    char *in = NULL;
    int rc;
    if (cmd->fn == cmd_get) {
        op->type = CAIRN_OP_RANGE;
        rc = ctl_get_req(&y, &op->range, st->end_buf);
    } else if (cmd->fn == cmd_put) {
        op->type = CAIRN_OP_PUT;
        rc = ctl_put_req(&y, &op->put, false, &in);
    } else {
        op->type = CAIRN_OP_DELETE;
        rc = ctl_del_req(&y, &op->del, st->end_buf);
    }
    return rc >= 0 ? CTL_EXIT_INVALID_INPUT : -1;
}

static void print_txn(const struct ctl *x, const struct cairn_txn_resp *r)
{
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_txn(r);
        return;
    }
    if (x->fmt == CTL_JSON) {
        fputs("{\"header\":", stdout);
        out_header_json(&r->header);
        if (r->succeeded) {
            fputs(",\"succeeded\":true", stdout);
        }
        if (r->responses_count > 0) {
            fputs(",\"responses\":[", stdout);
        }
        for (size_t i = 0; i < r->responses_count; i++) {
            const struct cairn_op_resp *o = &r->responses[i];
            static const char *const names[] = {"ResponseRange", "ResponsePut",
                                                "ResponseDeleteRange"};
            printf("%s{\"Response\":{\"%s\":", i > 0 ? "," : "",
                   names[o->type]);
            fflush(stdout);
            /* The inner printers end with a newline in JSON: print the
             * object without it by hand. */
            struct ctl y = *x;
            y.fmt = CTL_JSON;
            char *buf = NULL;
            size_t len = 0;
            FILE *mem = open_memstream(&buf, &len);
            FILE *saved = stdout;
            stdout = mem;
            if (o->type == CAIRN_OP_RANGE) {
                print_range(&y, &o->range, false);
            } else if (o->type == CAIRN_OP_PUT) {
                print_put(&y, &o->put);
            } else {
                print_delete(&y, &o->del);
            }
            fclose(mem);
            stdout = saved;
            if (len > 0 && buf[len - 1] == '\n') {
                len--;
            }
            fwrite(buf, 1, len, stdout);
            free(buf);
            fputs("}}", stdout);
        }
        puts(r->responses_count > 0 ? "]}" : "}");
        return;
    }
    if (x->fmt == CTL_FIELDS) {
        out_header_fields(&r->header);
        printf("\"Succeeded\" : %s\n", r->succeeded ? "true" : "false");
    } else {
        puts(r->succeeded ? "SUCCESS" : "FAILURE");
    }
    for (size_t i = 0; i < r->responses_count; i++) {
        const struct cairn_op_resp *o = &r->responses[i];
        if (x->fmt == CTL_SIMPLE) {
            putchar('\n');
        }
        if (o->type == CAIRN_OP_RANGE) {
            print_range(x, &o->range, false);
        } else if (o->type == CAIRN_OP_PUT) {
            print_put(x, &o->put);
        } else {
            print_delete(x, &o->del);
        }
    }
}

struct txn_input {
    struct cairn_compare cmp[TXN_ITEMS_MAX];
    char keys[TXN_ITEMS_MAX][512];
    char vals[TXN_ITEMS_MAX][512];
    size_t cmp_count;
    struct cairn_op ops[2][TXN_ITEMS_MAX];
    struct op_store st[2][TXN_ITEMS_MAX];
    size_t ops_count[2];
};

static int read_txn(struct ctl *x, struct txn_input *in, bool interactive)
{
    char line[CTL_LINE_MAX];
    if (interactive) {
        puts("compares:");
    }
    for (;;) { /* bounded by TXN_ITEMS_MAX and the input */
        if (!read_line(line, sizeof(line))) {
            return ctl_fail(CTL_EXIT_INVALID_INPUT, "EOF");
        }
        if (line[0] == 0) {
            break;
        }
        if (in->cmp_count == TXN_ITEMS_MAX || strlen(line) >= 512) {
            return ctl_fail(CTL_EXIT_INVALID_INPUT, "too many compares");
        }
        size_t i = in->cmp_count;
        int rc = parse_compare(line, &in->cmp[i], in->keys[i], in->vals[i]);
        if (rc >= 0) {
            return rc;
        }
        in->cmp_count++;
    }
    for (int b = 0; b < 2; b++) {
        if (interactive) {
            puts(b == 0 ? "success requests (get, put, del):"
                        : "failure requests (get, put, del):");
        }
        for (;;) {
            if (!read_line(line, sizeof(line))) {
                return ctl_fail(CTL_EXIT_INVALID_INPUT, "EOF");
            }
            if (line[0] == 0) {
                break;
            }
            size_t i = in->ops_count[b];
            if (i == TXN_ITEMS_MAX) {
                return ctl_fail(CTL_EXIT_INVALID_INPUT, "too many operations");
            }
            int rc = parse_op(x, line, &in->st[b][i], &in->ops[b][i]);
            if (rc >= 0) {
                return rc;
            }
            in->ops_count[b]++;
        }
    }
    return -1;
}

int cmd_txn(struct ctl *x)
{
    struct txn_input *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        return ctl_fail(CTL_EXIT_ERROR, "out of memory");
    }
    int rc = read_txn(x, in, ctl_flag_bool(x, "interactive"));
    struct cairn_client *c = rc < 0 ? ctl_client(x) : NULL;
    if (rc < 0 && c == NULL) {
        rc = CTL_EXIT_BAD_ARGS;
    }
    if (rc < 0) {
        struct cairn_txn_req req = {in->cmp,    in->cmp_count,
                                    in->ops[0], in->ops_count[0],
                                    in->ops[1], in->ops_count[1]};
        struct cairn_txn_resp r;
        rc = cairn_txn(c, &req, ctl_deadline(x), &r);
        if (rc != 0) {
            rc = ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        } else {
            print_txn(x, &r);
            cairn_txn_resp_free(&r);
        }
    }
    free(in);
    return rc;
}

/* ---------------------------------------------------------------- watch */

static void print_watch(const struct ctl *x, const struct cairn_watch_resp *r)
{
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_watch(r);
        return;
    }
    if (x->fmt == CTL_JSON) {
        fputs("{\"Header\":", stdout);
        out_header_json(&r->header);
        fputs(",\"Events\":", stdout);
        fputs(r->events_count > 0 ? "[" : "null", stdout);
        for (size_t i = 0; i < r->events_count; i++) {
            const struct cairn_event *e = &r->events[i];
            printf("%s{", i > 0 ? "," : "");
            if (e->type == CAIRN_EVENT_DELETE) {
                fputs("\"type\":1,", stdout);
            }
            fputs("\"kv\":", stdout);
            out_kv_json(&e->kv);
            if (e->prev_kv != NULL) {
                fputs(",\"prev_kv\":", stdout);
                out_kv_json(e->prev_kv);
            }
            putchar('}');
        }
        puts(r->events_count > 0 ? "],\"CompactRevision\":0,\"Canceled\":false,"
                                   "\"Created\":false}"
                                 : ",\"CompactRevision\":0,\"Canceled\":false,"
                                   "\"Created\":false}");
        fflush(stdout);
        return;
    }
    if (x->fmt == CTL_FIELDS) {
        out_header_fields(&r->header);
    }
    for (size_t i = 0; i < r->events_count; i++) {
        const struct cairn_event *e = &r->events[i];
        const char *type = e->type == CAIRN_EVENT_PUT ? "PUT" : "DELETE";
        if (x->fmt == CTL_FIELDS) {
            printf("\"Type\" : %s\n", type);
            if (e->prev_kv != NULL) {
                out_kv_fields(x, "Prev", e->prev_kv);
            }
            out_kv_fields(x, "", &e->kv);
        } else {
            puts(type);
            if (e->prev_kv != NULL) {
                out_kv_simple(x, e->prev_kv, false);
            }
            out_kv_simple(x, &e->kv, false);
        }
    }
    fflush(stdout);
}

/* Opens a watch from the command's args and flags. */
static int watch_open(struct ctl *x, struct cairn_client *c,
                      struct cairn_watch **w)
{
    if (x->args_count == 0 && getenv("ETCDCTL_WATCH_KEY") != NULL) {
        /* etcdctl 3.4 takes the key (and range end) from these too */
        x->args[x->args_count++] = getenv("ETCDCTL_WATCH_KEY");
        if (getenv("ETCDCTL_WATCH_RANGE_END") != NULL) {
            x->args[x->args_count++] = getenv("ETCDCTL_WATCH_RANGE_END");
        }
    }
    if (x->dash_seen && x->dash_args_count == 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "bad number of arguments (found separator --, but "
                        "no commands)");
    }
    if (x->dash_seen && (x->args_count == 0 || x->args_count > 2)) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "bad number of arguments");
    }
    if (x->args_count == 0 || x->args_count > 2) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "watch in non-interactive mode requires one or two "
                        "arguments as key or prefix, with range end");
    }
    int64_t rev;
    if (!ctl_flag_int(x, "rev", &rev)) {
        return CTL_EXIT_ERROR;
    }
    bool prefix = ctl_flag_bool(x, "prefix");
    if (prefix && x->args_count > 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "`--prefix` and `range_end` cannot be set at the same "
                        "time, choose one");
    }
    static uint8_t end_buf[4096];
    struct cairn_watch_req req = {0};
    req.key = (const uint8_t *)x->args[0];
    req.key_len = strlen(x->args[0]);
    if (req.key_len >= sizeof(end_buf)) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "key too long");
    }
    if (prefix) {
        req.range_end_len = cairn_prefix_end(req.key, req.key_len, end_buf);
        req.range_end = end_buf;
    } else if (x->args_count > 1) {
        req.range_end = (const uint8_t *)x->args[1];
        req.range_end_len = strlen(x->args[1]);
    }
    req.start_revision = rev;
    req.prev_kv = ctl_flag_bool(x, "prev-kv");
    int rc = cairn_watch_open(c, &req, ctl_deadline(x), w);
    return rc != 0 ? ctl_fail_call(x, c, rc, CTL_EXIT_BAD_CONN) : -1;
}

/* Prints what w has within wait_ms, running cmd (NULL-terminated, or
 * none when cmd_count is 0) per event; an exit code when it ended. */
static int watch_pump(struct ctl *x, struct cairn_watch *w, int64_t wait_ms,
                      const char *const *cmd, size_t cmd_count)
{
    struct cairn_watch_resp r;
    int rc = cairn_watch_next(w, wait_ms, &r);
    if (rc == CAIRN_E_TIMEOUT) {
        return -1;
    }
    if (rc != 0) {
        fprintf(stderr, "watch was canceled (%s)\n", cairn_strerror(rc));
        return ctl_fail(CTL_EXIT_BAD_CONN, "watch is canceled by the server");
    }
    print_watch(x, &r);
    rc = cmd_count > 0 ? ctl_watch_exec(cmd, cmd_count, &r) : -1;
    cairn_watch_resp_free(&r);
    return rc;
}

/* The command of one interactive watch line (copied: the line buffer is
 * reused). */
struct watch_cmd {
    char *argv[TOKENS_MAX + 1];
    size_t argc;
};

static void watch_cmd_free(struct watch_cmd *c)
{
    for (size_t i = 0; i < c->argc; i++) {
        free(c->argv[i]);
    }
    c->argc = 0;
}

static int watch_interactive(struct ctl *x, struct cairn_client *c)
{
    struct cairn_watch *ws[16];
    static struct watch_cmd cmds[16];
    size_t n = 0;
    int rc = -1;
    bool eof = false;
    static char line[CTL_LINE_MAX];
    static char *tok[TOKENS_MAX];
    while (rc < 0 && !eof) { /* until stdin ends or a watch ends */
        struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
        if (poll(&pfd, 1, n > 0 ? 0 : 100) > 0) {
            if (!read_line(line, sizeof(line))) {
                eof = true;
                break;
            }
            size_t nt = argify(line, tok);
            if (nt == 0 || strcmp(tok[0], "watch") != 0 || n == 16) {
                fprintf(stderr, "Invalid command: %s (only support watch)\n",
                        line);
                continue;
            }
            struct ctl y = *x;
            y.args_count = 0;
            for (size_t i = 0; i < y.opts_count; i++) {
                y.opts[i].val = x->opts[i].val;
            }
            for (size_t i = 0; i < y.opts_count; i++) {
                if (strcmp(y.opts[i].name, "prefix") == 0 ||
                    strcmp(y.opts[i].name, "rev") == 0 ||
                    strcmp(y.opts[i].name, "prev-kv") == 0) {
                    y.opts[i].val = NULL;
                }
            }
            struct watch_cmd *wc = &cmds[n];
            wc->argc = 0;
            for (size_t i = 1; i < nt; i++) {
                char *t = tok[i];
                if (strcmp(t, "--") == 0) {
                    y.dash_seen = true;
                    for (i++; i < nt; i++) {
                        wc->argv[wc->argc] = strdup(tok[i]);
                        wc->argc += wc->argv[wc->argc] != NULL;
                    }
                    y.dash_args_count = wc->argc;
                    break;
                }
                if (strncmp(t, "--", 2) == 0) {
                    char *eq = strchr(t, '=');
                    size_t len = eq ? (size_t)(eq - t - 2) : strlen(t + 2);
                    for (size_t k = 0; k < y.opts_count; k++) {
                        if (strlen(y.opts[k].name) == len &&
                            memcmp(y.opts[k].name, t + 2, len) == 0) {
                            y.opts[k].val = eq                  ? eq + 1
                                            : y.opts[k].is_bool ? "true"
                                            : i + 1 < nt        ? tok[++i]
                                                                : "";
                        }
                    }
                } else if (y.args_count < CTL_ARGS_MAX) {
                    y.args[y.args_count++] = t;
                }
            }
            wc->argv[wc->argc] = NULL;
            if (watch_open(&y, c, &ws[n]) < 0) {
                n++;
            } else {
                watch_cmd_free(wc);
            }
        }
        for (size_t i = 0; i < n && rc < 0; i++) {
            rc = watch_pump(x, ws[i], 20, (const char *const *)cmds[i].argv,
                            cmds[i].argc);
        }
    }
    for (size_t i = 0; i < n; i++) {
        cairn_watch_close(ws[i]);
        watch_cmd_free(&cmds[i]);
    }
    if (rc < 0 && eof) {
        rc = ctl_fail(CTL_EXIT_INVALID_INPUT,
                      "Error reading watch request line: EOF");
    }
    return rc;
}

int cmd_watch(struct ctl *x)
{
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    if (ctl_flag_bool(x, "interactive")) {
        return watch_interactive(x, c);
    }
    struct cairn_watch *w = NULL;
    int rc = watch_open(x, c, &w);
    const char *cmd[CTL_ARGS_MAX + 1];
    for (size_t i = 0; i < x->dash_args_count; i++) {
        cmd[i] = x->dash_args[i];
    }
    cmd[x->dash_args_count] = NULL;
    while (rc < 0) { /* until the watch ends or the process is stopped */
        rc = watch_pump(x, w, 1000, cmd, x->dash_args_count);
    }
    cairn_watch_close(w);
    return rc;
}

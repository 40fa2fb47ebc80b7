/*
 * cairnctl_kv.c - get, put, del, txn and watch, with etcdctl 3.4's
 * argument rules, error texts, exit codes and printers
 * (etcdctl/ctlv3/command/{get,put,del,txn,watch}_command.go and
 * printer_{simple,json,fields}.go).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sdk/cairnctl/cairnctl.h"

/* ------------------------------------------------------------ printers */

void print_range(const struct ctl *x, const struct cairn_range_resp *r,
                 bool value_only)
{
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_range(r);
        return;
    }
    if (x->fmt == CTL_JSON) {
        bool first = true;
        fputs("{\"header\":", stdout);
        out_header_json(&r->header);
        first = false;
        if (r->kvs_count > 0) {
            fputs(",\"kvs\":[", stdout);
            for (size_t i = 0; i < r->kvs_count; i++) {
                fputs(i > 0 ? "," : "", stdout);
                out_kv_json(&r->kvs[i]);
            }
            putchar(']');
        }
        if (r->more) {
            fputs(",\"more\":true", stdout);
        }
        if (r->count != 0) {
            printf(",\"count\":%" PRId64, r->count);
        }
        (void)first;
        putchar('}');
        putchar('\n');
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(&r->header);
        for (size_t i = 0; i < r->kvs_count; i++) {
            out_kv_fields(x, "", &r->kvs[i]);
        }
        printf("\"More\" : %s\n", r->more ? "true" : "false");
        printf("\"Count\" : %" PRId64 "\n", r->count);
    } else {
        for (size_t i = 0; i < r->kvs_count; i++) {
            out_kv_simple(x, &r->kvs[i], value_only);
        }
    }
}

void print_put(const struct ctl *x, const struct cairn_put_resp *r)
{
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_put(r);
        return;
    }
    if (x->fmt == CTL_JSON) {
        fputs("{\"header\":", stdout);
        out_header_json(&r->header);
        if (r->prev_kv != NULL) {
            fputs(",\"prev_kv\":", stdout);
            out_kv_json(r->prev_kv);
        }
        puts("}");
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(&r->header);
        if (r->prev_kv != NULL) {
            out_kv_fields(x, "Prev", r->prev_kv);
        }
    } else {
        puts("OK");
        if (r->prev_kv != NULL) {
            out_kv_simple(x, r->prev_kv, false);
        }
    }
}

void print_delete(const struct ctl *x, const struct cairn_delete_resp *r)
{
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_delete(r);
        return;
    }
    if (x->fmt == CTL_JSON) {
        fputs("{\"header\":", stdout);
        out_header_json(&r->header);
        if (r->deleted != 0) {
            printf(",\"deleted\":%" PRId64, r->deleted);
        }
        if (r->prev_kvs_count > 0) {
            fputs(",\"prev_kvs\":[", stdout);
            for (size_t i = 0; i < r->prev_kvs_count; i++) {
                fputs(i > 0 ? "," : "", stdout);
                out_kv_json(&r->prev_kvs[i]);
            }
            putchar(']');
        }
        puts("}");
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(&r->header);
        printf("\"Deleted\" : %" PRId64 "\n", r->deleted);
        for (size_t i = 0; i < r->prev_kvs_count; i++) {
            out_kv_fields(x, "Prev", &r->prev_kvs[i]);
        }
    } else {
        printf("%" PRId64 "\n", r->deleted);
        for (size_t i = 0; i < r->prev_kvs_count; i++) {
            out_kv_simple(x, &r->prev_kvs[i], false);
        }
    }
}

/* ---------------------------------------------------------- arguments */

/* [key, end) from args and --prefix / --from-key, etcdctl's way: an empty
 * key with either flag means every key. end_buf holds the computed end
 * (at least strlen(key) + 1 bytes). */
static void key_range(const char *key, const char *end, bool prefix,
                      bool from_key, const uint8_t **k, size_t *klen,
                      const uint8_t **e, size_t *elen, uint8_t *end_buf)
{
    static const uint8_t zero[1] = {0};
    *k = (const uint8_t *)key;
    *klen = strlen(key);
    *e = (const uint8_t *)end;
    *elen = end != NULL ? strlen(end) : 0;
    if ((prefix || from_key) && *klen == 0) {
        *k = zero;
        *klen = 1;
        *e = zero;
        *elen = 1;
    } else if (prefix) {
        *elen = cairn_prefix_end(*k, *klen, end_buf);
        *e = end_buf;
    } else if (from_key) {
        *e = zero;
        *elen = 1;
    }
}

static int range_args(struct ctl *x, const char *what, bool prefix,
                      bool from_key)
{
    if (x->args_count == 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "%s command needs one argument as key and an "
                        "optional argument as range_end",
                        what);
    }
    if (prefix && from_key) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "`--prefix` and `--from-key` cannot be set at the "
                        "same time, choose one");
    }
    if ((prefix || from_key) && x->args_count > 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "too many arguments, only accept one argument when "
                        "`--prefix` or `--from-key` is set");
    }
    return -1;
}

/* get's flags into req; -1 to go on, else an exit code. */
int ctl_get_req(struct ctl *x, struct cairn_range_req *req, uint8_t *buf)
{
    bool prefix = ctl_flag_bool(x, "prefix");
    bool from_key = ctl_flag_bool(x, "from-key");
    int rc = range_args(x, "get", prefix, from_key);
    if (rc >= 0) {
        return rc;
    }
    memset(req, 0, sizeof(*req));
    key_range(x->args[0], x->args_count > 1 ? x->args[1] : NULL, prefix,
              from_key, &req->key, &req->key_len, &req->range_end,
              &req->range_end_len, buf);
    if (!ctl_flag_int(x, "limit", &req->limit) ||
        !ctl_flag_int(x, "rev", &req->revision)) {
        return CTL_EXIT_ERROR;
    }
    const char *cons = ctl_flag(x, "consistency");
    if (strcmp(cons, "s") == 0) {
        req->serializable = true;
    } else if (strcmp(cons, "l") != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "unknown consistency flag %s", cons);
    }
    const char *order = ctl_flag(x, "order");
    if (strcasecmp(order, "ASCEND") == 0) {
        req->sort_order = CAIRN_SORT_ASCEND;
    } else if (strcasecmp(order, "DESCEND") == 0) {
        req->sort_order = CAIRN_SORT_DESCEND;
    } else if (order[0] != 0) {
        return ctl_fail(CTL_EXIT_BAD_FEATURE, "bad sort order %s", order);
    }
    const char *by = ctl_flag(x, "sort-by");
    static const char *const targets[] = {"KEY", "VERSION", "CREATE", "MODIFY",
                                          "VALUE"};
    bool found = by[0] == 0;
    for (size_t i = 0; i < 5 && !found; i++) {
        if (strcasecmp(by, targets[i]) == 0) {
            req->sort_target = (enum cairn_sort_target)i;
            found = true;
        }
    }
    if (!found) {
        return ctl_fail(CTL_EXIT_BAD_FEATURE, "bad sort target %s", by);
    }
    /* clientv3.WithSort: ascending by key is the server's default order. */
    if (req->sort_target == CAIRN_SORT_KEY &&
        req->sort_order == CAIRN_SORT_ASCEND) {
        req->sort_order = CAIRN_SORT_NONE;
    }
    req->keys_only = ctl_flag_bool(x, "keys-only");
    req->count_only = ctl_flag_bool(x, "count-only");
    return -1;
}

int cmd_get(struct ctl *x)
{
    struct cairn_range_req req;
    uint8_t buf[4096];
    if (x->args_count > 0 && strlen(x->args[0]) >= sizeof(buf)) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "key too long");
    }
    int rc = ctl_get_req(x, &req, buf);
    if (rc >= 0) {
        return rc;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_range_resp r;
    rc = cairn_range(c, &req, ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    if (req.count_only && x->fmt == CTL_SIMPLE) {
        printf("%" PRId64 "\n", r.count);
    } else {
        print_range(x, &r, ctl_flag_bool(x, "print-value-only"));
    }
    cairn_range_resp_free(&r);
    return 0;
}

int ctl_parse_lease(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 16);
    if (*s == 0 || *end != 0 || errno != 0) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Reads all of stdin into a malloc'd buffer; NULL when empty. */
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b != NULL) { /* bounded by the input's size */
        size_t r = fread(b + n, 1, cap - n, stdin);
        n += r;
        if (r == 0) {
            break;
        }
        if (n == cap) {
            char *nb = cap < ((size_t)1 << 30) ? realloc(b, cap * 2) : NULL;
            if (nb == NULL) {
                free(b);
                return NULL;
            }
            b = nb;
            cap *= 2;
        }
    }
    if (b != NULL && n == 0) {
        free(b);
        return NULL;
    }
    *len = n;
    return b;
}

int ctl_put_req(struct ctl *x, struct cairn_put_req *req, bool use_stdin,
                char **in)
{
    static const char needs[] =
        "put command needs 1 argument and input from stdin or 2 arguments";
    *in = NULL;
    if (x->args_count == 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, needs);
    }
    memset(req, 0, sizeof(*req));
    req->key = (const uint8_t *)x->args[0];
    req->key_len = strlen(x->args[0]);
    req->ignore_value = ctl_flag_bool(x, "ignore-value");
    req->ignore_lease = ctl_flag_bool(x, "ignore-lease");
    req->prev_kv = ctl_flag_bool(x, "prev-kv");
    if (req->ignore_value && x->args_count > 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "put command needs only 1 argument "
                                           "when 'ignore-value' is set");
    }
    if (!req->ignore_value) {
        if (x->args_count > 1) {
            req->value = (const uint8_t *)x->args[1];
            req->value_len = strlen(x->args[1]);
        } else if (use_stdin && (*in = read_stdin(&req->value_len)) != NULL) {
            req->value = (const uint8_t *)*in;
        } else {
            return ctl_fail(CTL_EXIT_BAD_ARGS, needs);
        }
    }
    const char *ls = ctl_flag(x, "lease");
    if (ctl_parse_lease(ls, &req->lease) != 0) {
        free(*in);
        *in = NULL;
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "bad lease ID (strconv.ParseInt: parsing \"%s\": "
                        "invalid syntax), expecting ID in Hex",
                        ls);
    }
    return -1;
}

int cmd_put(struct ctl *x)
{
    struct cairn_put_req req;
    char *in;
    int rc = ctl_put_req(x, &req, true, &in);
    if (rc >= 0) {
        return rc;
    }
    struct cairn_client *c = ctl_client(x);
    rc = CTL_EXIT_BAD_ARGS;
    if (c != NULL) {
        struct cairn_put_resp r;
        rc = cairn_put(c, &req, ctl_deadline(x), &r);
        if (rc != 0) {
            rc = ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        } else {
            print_put(x, &r);
            cairn_put_resp_free(&r);
        }
    }
    free(in);
    return rc;
}

int ctl_del_req(struct ctl *x, struct cairn_delete_req *req, uint8_t *buf)
{
    bool prefix = ctl_flag_bool(x, "prefix");
    bool from_key = ctl_flag_bool(x, "from-key");
    int rc = range_args(x, "del", prefix, from_key);
    if (rc >= 0) {
        return rc;
    }
    memset(req, 0, sizeof(*req));
    key_range(x->args[0], x->args_count > 1 ? x->args[1] : NULL, prefix,
              from_key, &req->key, &req->key_len, &req->range_end,
              &req->range_end_len, buf);
    req->prev_kv = ctl_flag_bool(x, "prev-kv");
    return -1;
}

int cmd_del(struct ctl *x)
{
    uint8_t buf[4096];
    if (x->args_count > 0 && strlen(x->args[0]) >= sizeof(buf)) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "key too long");
    }
    struct cairn_delete_req req;
    int rc = ctl_del_req(x, &req, buf);
    if (rc >= 0) {
        return rc;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_delete_resp r;
    rc = cairn_delete(c, &req, ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    print_delete(x, &r);
    cairn_delete_resp_free(&r);
    return 0;
}

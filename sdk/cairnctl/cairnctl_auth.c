/*
 * cairnctl_auth.c - user add/delete/get/list/passwd/grant-role/
 * revoke-role and role add/delete/get/list/grant-permission/
 * revoke-permission with etcdctl 3.4's texts (user_command.go,
 * role_command.go, printer_simple.go, printer_fields.go). Passwords come
 * from "name:password", --new-user-password, stdin with
 * --interactive=false (one word, as fmt.Scanf("%s")), or the terminal
 * without echo (asked twice).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "sdk/cairnctl/cairnctl.h"

#define PW_MAX 1024

static int no_table(const struct ctl *x, bool fields_too)
{
    if (x->fmt == CTL_TABLE) {
        return ctl_fail(CTL_EXIT_BAD_FEATURE,
                        "table not supported as output format");
    }
    if (fields_too && x->fmt == CTL_FIELDS) {
        return ctl_fail(CTL_EXIT_BAD_FEATURE,
                        "fields not supported as output format");
    }
    return -1;
}

/* A header-only answer: json, fields, or the simple text. */
static int print_hdr(const struct ctl *x, const struct cairn_header *h,
                     const char *fmt, const char *a, const char *b)
{
    int rc = no_table(x, false);
    if (rc >= 0) {
        return rc;
    }
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_header_msg(h);
    } else if (x->fmt == CTL_JSON) {
        fputs("{\"header\":", stdout);
        out_header_json(h);
        puts("}");
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(h);
    } else {
        printf(fmt, a, b);
    }
    return 0;
}

/* One whitespace-delimited word of stdin (fmt.Scanf("%s")); "" if none. */
static void scan_word(char *out, size_t size)
{
    int ch;
    size_t n = 0;
    while ((ch = getchar()) != EOF && (ch == ' ' || ch == '\t')) {
    }
    while (ch != EOF && ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
        if (n + 1 < size) {
            out[n++] = (char)ch;
        }
        ch = getchar();
    }
    out[n] = 0;
}

/* speakeasy.Ask: the prompt on stdout, the answer from the terminal
 * without echo. false when the terminal cannot be read. */
static bool ask(const char *prompt, char *out, size_t size)
{
    fputs(prompt, stdout);
    fflush(stdout);
    FILE *tty = fopen("/dev/tty", "r+");
    FILE *in = tty != NULL ? tty : stdin;
    struct termios old, quiet;
    bool restore = tcgetattr(fileno(in), &old) == 0;
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(in), TCSAFLUSH, &quiet);
    }
    bool ok = fgets(out, (int)size, in) != NULL;
    if (restore) {
        tcsetattr(fileno(in), TCSAFLUSH, &old);
    }
    putchar('\n');
    if (tty != NULL) {
        fclose(tty);
    }
    out[strcspn(out, "\r\n")] = 0;
    return ok;
}

/* etcdctl's readPasswordInteractive; -1 or the exit code. */
static int read_password(const struct ctl *x, const char *name, char *pw)
{
    if (!ctl_flag_bool(x, "interactive")) {
        scan_word(pw, PW_MAX);
        return -1;
    }
    char p1[256], p2[PW_MAX];
    snprintf(p1, sizeof(p1), "Password of %s: ", name);
    if (!ask(p1, pw, PW_MAX)) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "failed to ask password: EOF");
    }
    if (pw[0] == 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "empty password");
    }
    snprintf(p1, sizeof(p1),
             "Type password of %s again for confirmation: ", name);
    if (!ask(p1, p2, sizeof(p2))) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "failed to ask password: EOF");
    }
    if (strcmp(pw, p2) != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "given passwords are different");
    }
    return -1;
}

static struct cairn_client *client_or_null(struct ctl *x)
{
    return ctl_client(x);
}

/* ---------------------------------------------------------------- user */

int cmd_user_add(struct ctl *x)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "user add command requires user "
                                           "name as its argument");
    }
    char user[512];
    static char pw[PW_MAX];
    const char *password = pw;
    snprintf(user, sizeof(user), "%s", x->args[0]);
    const char *flag_pw = ctl_flag(x, "new-user-password");
    if (ctl_flag_bool(x, "no-password")) {
        password = NULL;
    } else if (flag_pw[0] != 0) {
        password = flag_pw;
    } else {
        char *colon = strchr(user, ':');
        if (colon == NULL) {
            int rc = read_password(x, user, pw);
            if (rc >= 0) {
                return rc;
            }
        } else {
            *colon = 0;
            snprintf(pw, sizeof(pw), "%s", colon + 1);
            if (user[0] == 0) {
                return ctl_fail(CTL_EXIT_BAD_ARGS, "empty user name is not "
                                                   "allowed");
            }
        }
    }
    struct cairn_client *c = client_or_null(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_header h;
    int rc = cairn_user_add(c, user, password, ctl_deadline(x), &h);
    if (rc == CAIRN_E_INVALID && user[0] == 0) {
        return ctl_fail(CTL_EXIT_ERROR, "etcdserver: user name is empty");
    }
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    return print_hdr(x, &h, "User %s created\n", user, "");
}

/* A command on one user name: delete, get, passwd. */
static int one_user(struct ctl *x, const char *what)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "user %s command requires user name as its argument",
                        what);
    }
    return -1;
}

int cmd_user_delete(struct ctl *x)
{
    int rc = one_user(x, "delete");
    struct cairn_client *c = rc < 0 ? client_or_null(x) : NULL;
    if (c == NULL) {
        return rc >= 0 ? rc : CTL_EXIT_BAD_ARGS;
    }
    struct cairn_header h;
    rc = cairn_user_delete(c, x->args[0], ctl_deadline(x), &h);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    return print_hdr(x, &h, "User %s deleted\n", x->args[0], "");
}

int cmd_user_passwd(struct ctl *x)
{
    int rc = one_user(x, "passwd");
    if (rc >= 0) {
        return rc;
    }
    static char pw[PW_MAX];
    rc = read_password(x, x->args[0], pw);
    if (rc >= 0) {
        return rc;
    }
    struct cairn_client *c = client_or_null(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_header h;
    rc = cairn_user_passwd(c, x->args[0], pw, ctl_deadline(x), &h);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    return print_hdr(x, &h, "Password updated\n", "", "");
}

static int user_role(struct ctl *x, bool grant)
{
    if (x->args_count != 2) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        grant ? "user grant command requires user name and "
                                "role name as its argument"
                              : "user revoke-role requires user name and "
                                "role name as its argument");
    }
    struct cairn_client *c = client_or_null(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_header h;
    int rc = grant ? cairn_user_grant_role(c, x->args[0], x->args[1],
                                           ctl_deadline(x), &h)
                   : cairn_user_revoke_role(c, x->args[0], x->args[1],
                                            ctl_deadline(x), &h);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    return print_hdr(x, &h,
                     grant ? "Role %2$s is granted to user %1$s\n"
                           : "Role %2$s is revoked from user %1$s\n",
                     x->args[0], x->args[1]);
}

int cmd_user_grant_role(struct ctl *x)
{
    return user_role(x, true);
}

int cmd_user_revoke_role(struct ctl *x)
{
    return user_role(x, false);
}

static void print_names_json(const struct cairn_names_resp *r,
                             const char *field)
{
    fputs("{\"header\":", stdout);
    out_header_json(&r->header);
    if (r->names_count > 0) {
        printf(",\"%s\":[", field);
        for (size_t i = 0; i < r->names_count; i++) {
            fputs(i > 0 ? "," : "", stdout);
            out_json_str(r->names[i]);
        }
        putchar(']');
    }
    puts("}");
}

static void print_role_simple(const char *name,
                              const struct cairn_role_resp *r);

int cmd_user_get(struct ctl *x)
{
    int rc = one_user(x, "get");
    struct cairn_client *c = rc < 0 ? client_or_null(x) : NULL;
    if (c == NULL) {
        return rc >= 0 ? rc : CTL_EXIT_BAD_ARGS;
    }
    struct cairn_names_resp r;
    rc = cairn_user_get(c, x->args[0], ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    bool detail = ctl_flag_bool(x, "detail");
    if (detail) {
        /* etcdctl prints the user, then each role as role get does */
        printf("User: %s\n", x->args[0]);
        for (size_t i = 0; i < r.names_count; i++) {
            struct cairn_role_resp rr;
            rc = cairn_role_get(c, r.names[i], ctl_deadline(x), &rr);
            if (rc != 0) {
                cairn_names_resp_free(&r);
                return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
            }
            putchar('\n');
            if (x->fmt == CTL_PROTOBUF) {
                pb_print_role(&rr);
            } else {
                print_role_simple(r.names[i], &rr);
            }
            cairn_role_resp_free(&rr);
        }
    } else if ((rc = no_table(x, true)) >= 0) {
        cairn_names_resp_free(&r);
        return rc;
    } else if (x->fmt == CTL_PROTOBUF) {
        pb_print_names(&r);
    } else if (x->fmt == CTL_JSON) {
        print_names_json(&r, "roles");
    } else {
        printf("User: %s\nRoles:", x->args[0]);
        for (size_t i = 0; i < r.names_count; i++) {
            printf(" %s", r.names[i]);
        }
        putchar('\n');
    }
    cairn_names_resp_free(&r);
    return 0;
}

static int list_names(struct ctl *x, bool users)
{
    struct cairn_client *c = client_or_null(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_names_resp r;
    int rc = users ? cairn_user_list(c, ctl_deadline(x), &r)
                   : cairn_role_list(c, ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    if ((rc = no_table(x, users)) >= 0) {
        cairn_names_resp_free(&r);
        return rc;
    }
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_names(&r);
    } else if (x->fmt == CTL_JSON) {
        print_names_json(&r, users ? "users" : "roles");
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(&r.header);
        fputs("\"Roles\" :", stdout);
        for (size_t i = 0; i < r.names_count; i++) {
            putchar(' ');
            out_goquote((const uint8_t *)r.names[i], strlen(r.names[i]));
        }
        putchar('\n');
    } else {
        for (size_t i = 0; i < r.names_count; i++) {
            puts(r.names[i]);
        }
    }
    cairn_names_resp_free(&r);
    return 0;
}

int cmd_user_list(struct ctl *x)
{
    if (x->args_count != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "user list command requires no "
                                           "arguments");
    }
    return list_names(x, true);
}

/* ---------------------------------------------------------------- role */

static int one_role(struct ctl *x, const char *what)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "role %s command requires role name as its argument",
                        what);
    }
    return -1;
}

int cmd_role_add(struct ctl *x)
{
    int rc = one_role(x, "add");
    struct cairn_client *c = rc < 0 ? client_or_null(x) : NULL;
    if (c == NULL) {
        return rc >= 0 ? rc : CTL_EXIT_BAD_ARGS;
    }
    struct cairn_header h;
    rc = cairn_role_add(c, x->args[0], ctl_deadline(x), &h);
    if (rc == CAIRN_E_INVALID) {
        return ctl_fail(CTL_EXIT_ERROR, "etcdserver: role name is empty");
    }
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    return print_hdr(x, &h, "Role %s created\n", x->args[0], "");
}

int cmd_role_delete(struct ctl *x)
{
    int rc = one_role(x, "delete");
    struct cairn_client *c = rc < 0 ? client_or_null(x) : NULL;
    if (c == NULL) {
        return rc >= 0 ? rc : CTL_EXIT_BAD_ARGS;
    }
    struct cairn_header h;
    rc = cairn_role_delete(c, x->args[0], ctl_deadline(x), &h);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    return print_hdr(x, &h, "Role %s deleted\n", x->args[0], "");
}

/* clientv3.GetPrefixRangeEnd: the key with its last byte below 0xff
 * incremented and the rest dropped; "\0" when there is none. */
static size_t prefix_end(const uint8_t *k, size_t n, uint8_t *out)
{
    for (size_t i = n; i > 0; i--) {
        if (k[i - 1] < 0xff) {
            memcpy(out, k, i);
            out[i - 1]++;
            return i;
        }
    }
    out[0] = 0;
    return 1;
}

static bool same(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* Raw bytes, NULs included, as Go's %s of a string. */
static void put_bytes(const uint8_t *p, size_t n)
{
    fwrite(p, 1, n, stdout);
}

static void print_perm_range(const struct cairn_permission *p)
{
    fputs("\t[", stdout);
    put_bytes(p->key, p->key_len);
    if (p->range_end_len == 1 && p->range_end[0] == 0) {
        fputs(", <open ended>", stdout);
    } else {
        fputs(", ", stdout);
        put_bytes(p->range_end, p->range_end_len);
        putchar(')');
    }
    uint8_t end[4096];
    if (p->key_len < sizeof(end) &&
        same(end, prefix_end(p->key, p->key_len, end), p->range_end,
             p->range_end_len)) {
        fputs(" (prefix ", stdout);
        put_bytes(p->key, p->key_len);
        putchar(')');
    }
    putchar('\n');
}

static void print_role_simple(const char *name, const struct cairn_role_resp *r)
{
    printf("Role %s\n", name);
    for (int w = 0; w < 2; w++) {
        puts(w == 0 ? "KV Read:" : "KV Write:");
        for (size_t i = 0; i < r->perms_count; i++) {
            const struct cairn_permission *p = &r->perms[i];
            if (p->type != CAIRN_PERM_READWRITE &&
                p->type != (w == 0 ? CAIRN_PERM_READ : CAIRN_PERM_WRITE)) {
                continue;
            }
            if (p->range_end_len == 0) {
                putchar('\t');
                put_bytes(p->key, p->key_len);
                putchar('\n');
            } else {
                print_perm_range(p);
            }
        }
    }
}

static const char *perm_name(int t)
{
    return t == CAIRN_PERM_READ    ? "READ"
           : t == CAIRN_PERM_WRITE ? "WRITE"
                                   : "READWRITE";
}

int cmd_role_get(struct ctl *x)
{
    int rc = one_role(x, "get");
    struct cairn_client *c = rc < 0 ? client_or_null(x) : NULL;
    if (c == NULL) {
        return rc >= 0 ? rc : CTL_EXIT_BAD_ARGS;
    }
    struct cairn_role_resp r;
    rc = cairn_role_get(c, x->args[0], ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    if ((rc = no_table(x, false)) >= 0) {
        cairn_role_resp_free(&r);
        return rc;
    }
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_role(&r);
    } else if (x->fmt == CTL_JSON) {
        fputs("{\"header\":", stdout);
        out_header_json(&r.header);
        if (r.perms_count > 0) {
            fputs(",\"perm\":[", stdout);
        }
        for (size_t i = 0; i < r.perms_count; i++) {
            const struct cairn_permission *p = &r.perms[i];
            bool first = true;
            fputs(i > 0 ? ",{" : "{", stdout);
            if (p->type != 0) {
                printf("\"permType\":%d", p->type);
                first = false;
            }
            if (p->key_len > 0) {
                fputs(first ? "\"key\":\"" : ",\"key\":\"", stdout);
                out_b64(p->key, p->key_len);
                putchar('"');
                first = false;
            }
            if (p->range_end_len > 0) {
                fputs(first ? "\"range_end\":\"" : ",\"range_end\":\"", stdout);
                out_b64(p->range_end, p->range_end_len);
                putchar('"');
            }
            putchar('}');
        }
        puts(r.perms_count > 0 ? "]}" : "}");
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(&r.header);
        for (size_t i = 0; i < r.perms_count; i++) {
            const struct cairn_permission *p = &r.perms[i];
            printf("\"PermType\" :  %s\n\"Key\" : ", perm_name(p->type));
            out_goquote(p->key, p->key_len);
            fputs("\n\"RangeEnd\" : ", stdout);
            out_goquote(p->range_end, p->range_end_len);
            putchar('\n');
        }
    } else {
        print_role_simple(x->args[0], &r);
    }
    cairn_role_resp_free(&r);
    return 0;
}

int cmd_role_list(struct ctl *x)
{
    if (x->args_count != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "role list command requires no "
                                           "arguments");
    }
    return list_names(x, false);
}

/* etcdctl's permRange: key and range end from the args and --prefix /
 * --from-key; -1 or the exit code. */
static int perm_range(struct ctl *x, const char *const *args, size_t n,
                      uint8_t *key, size_t *key_len, uint8_t *end,
                      size_t *end_len)
{
    bool prefix = ctl_flag_bool(x, "prefix");
    bool from_key = ctl_flag_bool(x, "from-key");
    size_t kl = strlen(args[0]);
    *end_len = 0;
    if (kl >= 4096) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "key too long");
    }
    if (kl == 0) {
        if (prefix && from_key) {
            return ctl_fail(CTL_EXIT_BAD_ARGS, "--from-key and --prefix flags "
                                               "are mutually exclusive");
        }
        key[0] = 0;
        *key_len = 1;
        if (prefix || from_key) {
            end[0] = 0;
            *end_len = 1;
        }
        return -1;
    }
    memcpy(key, args[0], kl);
    *key_len = kl;
    if (n == 1) {
        if (prefix && from_key) {
            return ctl_fail(CTL_EXIT_BAD_ARGS, "--from-key and --prefix flags "
                                               "are mutually exclusive");
        }
        if (prefix) {
            *end_len = prefix_end(key, kl, end);
        } else if (from_key) {
            end[0] = 0;
            *end_len = 1;
        }
        return -1;
    }
    if (prefix) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "unexpected endkey argument with "
                                           "--prefix flag");
    }
    if (from_key) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "unexpected endkey argument with "
                                           "--from-key flag");
    }
    size_t el = strlen(args[1]);
    if (el >= 4096) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "key too long");
    }
    memcpy(end, args[1], el);
    *end_len = el;
    return -1;
}

int cmd_role_grant_permission(struct ctl *x)
{
    if (x->args_count < 3) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "role grant command requires role name, permission "
                        "type, and key [endkey] as its argument");
    }
    struct cairn_permission p = {0};
    const char *t = x->args[1];
    p.type = strcasecmp(t, "read") == 0        ? CAIRN_PERM_READ
             : strcasecmp(t, "write") == 0     ? CAIRN_PERM_WRITE
             : strcasecmp(t, "readwrite") == 0 ? CAIRN_PERM_READWRITE
                                               : -1;
    if (p.type < 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "invalid permission type: %s", t);
    }
    static uint8_t key[4096], end[4096];
    int rc = perm_range(x, x->args + 2, x->args_count - 2, key, &p.key_len, end,
                        &p.range_end_len);
    if (rc >= 0) {
        return rc;
    }
    p.key = key;
    p.range_end = end;
    struct cairn_client *c = client_or_null(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_header h;
    rc = cairn_role_grant_permission(c, x->args[0], &p, ctl_deadline(x), &h);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    return print_hdr(x, &h, "Role %s updated\n", x->args[0], "");
}

int cmd_role_revoke_permission(struct ctl *x)
{
    if (x->args_count < 2) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "role revoke-permission command requires role name "
                        "and key [endkey] as its argument");
    }
    static uint8_t key[4096], end[4096];
    size_t kl, el;
    int rc = perm_range(x, x->args + 1, x->args_count - 1, key, &kl, end, &el);
    if (rc >= 0) {
        return rc;
    }
    struct cairn_client *c = client_or_null(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_header h;
    rc = cairn_role_revoke_permission(c, x->args[0], key, kl, end, el,
                                      ctl_deadline(x), &h);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    if (x->fmt != CTL_SIMPLE) {
        return print_hdr(x, &h, "", "", "");
    }
    if (el == 0) {
        fputs("Permission of key ", stdout);
        put_bytes(key, kl);
    } else {
        fputs("Permission of range [", stdout);
        put_bytes(key, kl);
        if (el == 1 && end[0] == 0) {
            fputs(", <open ended>", stdout);
        } else {
            fputs(", ", stdout);
            put_bytes(end, el);
            putchar(')');
        }
    }
    printf(" is revoked from role %s\n", x->args[0]);
    return 0;
}

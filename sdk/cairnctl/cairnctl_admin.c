/*
 * cairnctl_admin.c - compaction, alarm list/disarm, defrag, endpoint
 * hashkv, move-leader, member add/remove/update/promote, auth
 * enable/disable/status, user and role, with etcdctl 3.4's texts
 * (compaction_command.go, alarm_command.go, defrag_command.go,
 * ep_command.go, move_leader_command.go, member_command.go,
 * auth_command.go, user_command.go, role_command.go, printer_*.go).
 * As in etcdctl, a write is made before an unsupported output format is
 * refused (etcdctl's printers fail after the call).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "consensus/kv/bolt.h"
#include "consensus/kv/kv.h"
#include "consensus/kv/snapfile.h"
#include "sdk/cairnctl/cairnctl.h"

/* etcdctl's printers that have no table (or fields) form. */
static int unsupported(const struct ctl *x, bool fields_too)
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

static bool parse_u64_hex(const char *s, uint64_t *out)
{
    char *end;
    if (s[0] == 0 || s[0] == '-' || s[0] == '+') {
        return false;
    }
    unsigned long long v = strtoull(s, &end, 16);
    *out = v;
    return *end == 0;
}

/* ---------------------------------------------------------- compaction */

int cmd_compaction(struct ctl *x)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "compaction command needs 1 "
                                           "argument");
    }
    char *end;
    const char *a = x->args[0];
    long long rev = strtoll(a, &end, 10);
    if (a[0] == 0 || *end != 0) {
        return ctl_fail(CTL_EXIT_ERROR,
                        "strconv.ParseInt: parsing \"%s\": invalid syntax", a);
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    int rc = cairn_compact(c, rev, ctl_flag_bool(x, "physical"),
                           ctl_deadline(x), NULL);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    printf("compacted revision %lld\n", rev);
    return 0;
}

/* --------------------------------------------------------------- alarm */

static const char *alarm_name(int a)
{
    return a == CAIRN_ALARM_NONE      ? "NONE"
           : a == CAIRN_ALARM_NOSPACE ? "NOSPACE"
           : a == CAIRN_ALARM_CORRUPT ? "CORRUPT"
                                      : "UNKNOWN";
}

static int print_alarms(const struct ctl *x, const struct cairn_alarm_resp *r)
{
    int rc = unsupported(x, false);
    if (rc >= 0) {
        return rc;
    }
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_alarms(r);
        return 0;
    }
    const struct cairn_header *h = &r->header;
    bool has_hdr = h->cluster_id != 0 || h->member_id != 0 ||
                   h->revision != 0 || h->raft_term != 0;
    if (x->fmt == CTL_JSON) {
        putchar('{');
        if (has_hdr) {
            fputs("\"header\":", stdout);
            out_header_json(h);
        }
        if (r->alarms_count > 0) {
            fputs(has_hdr ? ",\"alarms\":[" : "\"alarms\":[", stdout);
            for (size_t i = 0; i < r->alarms_count; i++) {
                printf("%s{\"memberID\":%" PRIu64, i > 0 ? "," : "",
                       r->alarms[i].member_id);
                if (r->alarms[i].alarm != 0) {
                    printf(",\"alarm\":%d", r->alarms[i].alarm);
                }
                putchar('}');
            }
            putchar(']');
        }
        puts("}");
        return 0;
    }
    if (x->fmt == CTL_FIELDS) {
        out_header_fields(h);
    }
    for (size_t i = 0; i < r->alarms_count; i++) {
        if (x->fmt == CTL_FIELDS) {
            printf("\"MemberID\" : %" PRIu64 "\n\"AlarmType\" : %s\n",
                   r->alarms[i].member_id, alarm_name(r->alarms[i].alarm));
        } else {
            printf("memberID:%" PRIu64 " alarm:%s \n", r->alarms[i].member_id,
                   alarm_name(r->alarms[i].alarm));
        }
    }
    return 0;
}

int cmd_alarm_list(struct ctl *x)
{
    if (x->args_count != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "alarm list takes no arguments");
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_alarm_resp r;
    int rc = cairn_alarm_list(c, ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    rc = print_alarms(x, &r);
    cairn_alarm_resp_free(&r);
    return rc;
}

/* clientv3's AlarmDisarm of everything: list, then deactivate each; the
 * answer shows what was deactivated (the last answer's header). */
int cmd_alarm_disarm(struct ctl *x)
{
    if (x->args_count != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "alarm disarm takes no arguments");
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_alarm_resp all;
    int rc = cairn_alarm_list(c, ctl_deadline(x), &all);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    struct cairn_alarm_resp out = all;
    out.alarms_count = 0;
    for (size_t i = 0; i < all.alarms_count; i++) {
        struct cairn_alarm_resp one;
        rc = cairn_alarm_disarm(c, &all.alarms[i], ctl_deadline(x), &one);
        if (rc != 0) {
            cairn_alarm_resp_free(&all);
            return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        }
        out.header = one.header;
        out.alarms[out.alarms_count++] = all.alarms[i];
        cairn_alarm_resp_free(&one);
    }
    rc = print_alarms(x, &out);
    cairn_alarm_resp_free(&all);
    return rc;
}

/* ------------------------------------------------ endpoints, --cluster */

int ctl_endpoints(struct ctl *x, const char **eps,
                  struct cairn_member_list_resp *store)
{
    memset(store, 0, sizeof(*store));
    if (!ctl_flag_bool(x, "cluster")) {
        for (size_t i = 0; i < x->endpoints_count; i++) {
            eps[i] = x->endpoints[i];
        }
        return (int)x->endpoints_count;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return -1;
    }
    int rc = cairn_member_list(c, ctl_deadline(x), store);
    if (rc != 0) {
        ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        return -1;
    }
    int n = 0;
    for (size_t i = 0; i < store->members_count; i++) {
        const struct cairn_member *m = &store->members[i];
        for (size_t k = 0; k < m->client_urls_count; k++) {
            if (n < CAIRN_ENDPOINTS_MAX) {
                eps[n++] = m->client_urls[k];
            }
        }
    }
    return n;
}

/* The member's db size (0 when it does not answer). */
static uint64_t db_size(struct cairn_client *c, int64_t deadline_ms)
{
    struct cairn_status_resp st;
    if (cairn_status(c, deadline_ms, &st) != 0) {
        return 0;
    }
    uint64_t n = st.db_size > 0 ? (uint64_t)st.db_size : 0;
    cairn_status_resp_free(&st);
    return n;
}

/* One member's defragment; on a terminal with a line showing the time it
 * takes, then the db size before and after (stdout otherwise etcdctl's). */
static int defrag_one(struct cairn_client *c, const char *ep,
                      int64_t deadline_ms)
{
    if (isatty(STDOUT_FILENO) != 1) {
        return cairn_defragment(c, deadline_ms, NULL);
    }
    char before[32], after[32], what[256];
    fmt_bytes_si(db_size(c, deadline_ms), before, sizeof(before));
    snprintf(what, sizeof(what), "Defragmenting %s: db %s", ep, before);
    struct ctl_progress pr;
    ctl_progress_begin(&pr, what, -1, 0);
    int rc = cairn_defragment(c, deadline_ms, NULL);
    if (rc == 0) {
        fmt_bytes_si(db_size(c, deadline_ms), after, sizeof(after));
        snprintf(pr.note, sizeof(pr.note), " -> %s", after);
    }
    ctl_progress_end(&pr, 0, rc == 0);
    return rc;
}

static int path_fail(const char *op, const char *path, int e);

/* defrag --data-dir DIR: the store of a member that is not running,
 * repacked in place (kv_defrag: a crash leaves the old file or the new
 * one, both whole). Silent on success, as etcdctl; on a terminal one line
 * with the sizes before and after. */
static int defrag_offline(const char *dir)
{
    char kvdir[4200];
    struct stat sb;
    snprintf(kvdir, sizeof(kvdir), "%s/member/kv", dir);
    if (stat(dir, &sb) != 0) {
        return path_fail("open", dir, errno);
    }
    if (stat(kvdir, &sb) != 0) {
        char snap[4200];
        snprintf(snap, sizeof(snap), "%s/member/snap/db", dir);
        if (stat(snap, &sb) == 0) {
            return ctl_fail(CTL_EXIT_ERROR,
                            "%s is an etcd data directory (member/snap/db): "
                            "defragment it with etcdctl",
                            dir);
        }
        return path_fail("open", kvdir, errno);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct kv *kv = NULL;
    int rc = kv_open(kvdir, NULL, &kv);
    if (rc == ERR_LOCKED) {
        return ctl_fail(CTL_EXIT_ERROR,
                        "%s is in use by a running member: defragment it "
                        "online (cairnctl defrag --endpoints=...)",
                        dir);
    }
    if (rc != 0) {
        return ctl_fail(CTL_EXIT_ERROR, "open %s: %s", kvdir, err_str(rc));
    }
    uint64_t before = 0, after = 0, used = 0;
    kv_size(kv, &before, &used);
    rc = kv_defrag(kv);
    kv_size(kv, &after, &used);
    kv_close(kv);
    if (rc != 0) {
        return ctl_fail(CTL_EXIT_ERROR, "defragment %s: %s", kvdir,
                        err_str(rc));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (isatty(STDOUT_FILENO) == 1) {
        char b[32], a[32];
        fmt_bytes_si(before, b, sizeof(b));
        fmt_bytes_si(after, a, sizeof(a));
        printf("Defragmented %s: db %s -> %s in %.1fs\n", dir, b, a,
               (double)(t1.tv_sec - t0.tv_sec) +
                   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    return CTL_EXIT_OK;
}

int cmd_defrag(struct ctl *x)
{
    const char *dd = ctl_flag(x, "data-dir");
    if (dd != NULL && dd[0] != '\0') {
        return defrag_offline(dd);
    }
    const char *eps[CAIRN_ENDPOINTS_MAX];
    struct cairn_member_list_resp ml;
    int n = ctl_endpoints(x, eps, &ml);
    if (n < 0) {
        return CTL_EXIT_ERROR;
    }
    bool failed = false;
    for (int i = 0; i < n; i++) {
        struct cairn_client *c = ctl_client_for(x, eps[i]);
        if (c == NULL) {
            cairn_member_list_resp_free(&ml);
            return CTL_EXIT_BAD_ARGS;
        }
        int rc = defrag_one(c, eps[i], ctl_deadline(x));
        if (rc != 0) {
            fflush(stdout);
            fprintf(stderr, "Failed to defragment etcd member[%s] (", eps[i]);
            ctl_print_err(c, rc);
            fputs(")\n", stderr);
            failed = true;
        } else {
            printf("Finished defragmenting etcd member[%s]\n", eps[i]);
        }
        cairn_client_free(c);
    }
    cairn_member_list_resp_free(&ml);
    return failed ? CTL_EXIT_ERROR : 0;
}

int cmd_endpoint_hashkv(struct ctl *x)
{
    int64_t rev = 0;
    if (!ctl_flag_int(x, "rev", &rev)) {
        return CTL_EXIT_ERROR;
    }
    const char *eps[CAIRN_ENDPOINTS_MAX];
    struct cairn_member_list_resp ml;
    int n = ctl_endpoints(x, eps, &ml);
    if (n < 0) {
        return CTL_EXIT_ERROR;
    }
    struct cairn_hashkv_resp r[CAIRN_ENDPOINTS_MAX];
    const char *ok_eps[CAIRN_ENDPOINTS_MAX];
    char err[256] = "";
    int ok = 0;
    for (int i = 0; i < n; i++) {
        struct cairn_client *c = ctl_client_for(x, eps[i]);
        if (c == NULL) {
            cairn_member_list_resp_free(&ml);
            return CTL_EXIT_BAD_ARGS;
        }
        int rc = cairn_hashkv(c, rev, ctl_deadline(x), &r[ok]);
        if (rc != 0) {
            ctl_err_text(c, rc, err, sizeof(err));
            fflush(stdout);
            fprintf(stderr, "Failed to get the hash of endpoint %s (%s)\n",
                    eps[i], err);
        } else {
            ok_eps[ok++] = eps[i];
        }
        cairn_client_free(c);
    }
    if (x->fmt == CTL_JSON) {
        putchar('[');
        for (int i = 0; i < ok; i++) {
            printf("%s{\"Endpoint\":", i > 0 ? "," : "");
            out_json_str(ok_eps[i]);
            fputs(",\"HashKV\":{\"header\":", stdout);
            out_header_json(&r[i].header);
            if (r[i].hash != 0) {
                printf(",\"hash\":%" PRIu32, r[i].hash);
            }
            if (r[i].compact_revision != 0) {
                printf(",\"compact_revision\":%" PRId64, r[i].compact_revision);
            }
            fputs("}}", stdout);
        }
        puts("]");
    } else if (x->fmt == CTL_TABLE) {
        static const char *const hdr[] = {"ENDPOINT", "HASH"};
        char hs[CAIRN_ENDPOINTS_MAX][16];
        const char *cells[CAIRN_ENDPOINTS_MAX * 2];
        for (int i = 0; i < ok; i++) {
            snprintf(hs[i], sizeof(hs[i]), "%" PRIu32, r[i].hash);
            cells[i * 2] = ok_eps[i];
            cells[i * 2 + 1] = hs[i];
        }
        out_table(hdr, 2, cells, (size_t)ok);
    } else {
        for (int i = 0; i < ok; i++) {
            if (x->fmt == CTL_FIELDS) {
                out_header_fields(&r[i].header);
                printf("\"Endpoint\" : \"%s\"\n\"Hash\" : %" PRIu32 "\n\n",
                       ok_eps[i], r[i].hash);
            } else {
                printf("%s, %" PRIu32 "\n", ok_eps[i], r[i].hash);
            }
        }
    }
    cairn_member_list_resp_free(&ml);
    if (ok < n) {
        return ctl_fail(CTL_EXIT_ERROR, "%s", err);
    }
    return 0;
}

int cmd_move_leader(struct ctl *x)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "move-leader command needs 1 "
                                           "argument");
    }
    uint64_t target = 0;
    if (!parse_u64_hex(x->args[0], &target)) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "strconv.ParseUint: parsing \"%s\": invalid syntax",
                        x->args[0]);
    }
    /* The leader among --endpoints takes the request. */
    for (size_t i = 0; i < x->endpoints_count; i++) {
        struct cairn_client *c = ctl_client_for(x, x->endpoints[i]);
        if (c == NULL) {
            return CTL_EXIT_BAD_ARGS;
        }
        struct cairn_status_resp st;
        int rc = cairn_status(c, ctl_deadline(x), &st);
        if (rc != 0) {
            rc = ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
            cairn_client_free(c);
            return rc;
        }
        uint64_t leader = st.leader;
        bool is_leader = st.header.member_id == st.leader;
        cairn_status_resp_free(&st);
        if (!is_leader) {
            cairn_client_free(c);
            continue;
        }
        struct cairn_header h = {0};
        rc = cairn_move_leader(c, target, ctl_deadline(x), &h);
        if (rc != 0) {
            rc = ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        } else if (x->fmt == CTL_PROTOBUF) {
            pb_print_header_msg(&h);
        } else {
            printf("Leadership transferred from %" PRIx64 " to %" PRIx64 "\n",
                   leader, target);
        }
        cairn_client_free(c);
        return rc;
    }
    fflush(stdout);
    fputs("Error: no leader endpoint given at [", stderr);
    for (size_t i = 0; i < x->endpoints_count; i++) {
        fprintf(stderr, "%s%s", i > 0 ? " " : "", x->endpoints[i]);
    }
    fputs("]\n", stderr);
    return CTL_EXIT_BAD_ARGS;
}

/* ---------------------------------------------------------------- auth */

int cmd_auth_enable(struct ctl *x)
{
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    /* etcdctl creates the root role for the root user when it is missing. */
    for (int round = 0;; round++) {
        int rc = cairn_auth_enable(c, ctl_deadline(x), NULL);
        if (rc == 0) {
            break;
        }
        if (round > 0 || strcmp(cairn_client_errmsg(c),
                                "etcdserver: root user does not have root "
                                "role") != 0) {
            return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        }
        rc = cairn_role_add(c, "root", ctl_deadline(x), NULL);
        if (rc == 0) {
            rc =
                cairn_user_grant_role(c, "root", "root", ctl_deadline(x), NULL);
        }
        if (rc != 0) {
            return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        }
    }
    puts("Authentication Enabled");
    return 0;
}

int cmd_auth_disable(struct ctl *x)
{
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    int rc = cairn_auth_disable(c, ctl_deadline(x), NULL);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    puts("Authentication Disabled");
    return 0;
}

/* etcdctl 3.5's auth status (3.4 has none). */
int cmd_auth_status(struct ctl *x)
{
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    bool on = false;
    uint64_t arev = 0;
    struct cairn_header h;
    int rc = cairn_auth_status(c, ctl_deadline(x), &on, &arev, &h);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    if (x->fmt == CTL_JSON) {
        fputs("{\"header\":", stdout);
        out_header_json(&h);
        printf("%s", on ? ",\"enabled\":true" : "");
        if (arev != 0) {
            printf(",\"authRevision\":%" PRIu64, arev);
        }
        puts("}");
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(&h);
        printf("\"Enabled\" : %s\n\"AuthRevision\" : %" PRIu64 "\n",
               on ? "true" : "false", arev);
    } else {
        printf("Authentication Status: %s\nAuthRevision: %" PRIu64 "\n",
               on ? "true" : "false", arev);
    }
    return 0;
}

/* ------------------------------------------------------------- members */

static int member_id_arg(struct ctl *x, uint64_t *id)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "member ID is not provided");
    }
    if (!parse_u64_hex(x->args[0], id)) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "bad member ID arg (strconv.ParseUint: parsing "
                        "\"%s\": invalid syntax), expecting ID in Hex",
                        x->args[0]);
    }
    return -1;
}

/* --peer-urls split at commas into urls (pointing into buf). */
static size_t peer_urls(struct ctl *x, char *buf, size_t size,
                        const char **urls)
{
    snprintf(buf, size, "%s", ctl_flag(x, "peer-urls"));
    size_t n = 0;
    for (char *t = strtok(buf, ","); t != NULL && n < CAIRN_ENDPOINTS_MAX;
         t = strtok(NULL, ",")) {
        urls[n++] = t;
    }
    return n;
}

int cmd_member_add(struct ctl *x)
{
    if (x->args_count < 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "member name not provided");
    }
    if (x->args_count > 1) {
        char ev[2048] = "too many arguments";
        size_t o = strlen(ev);
        for (size_t i = 0; i < x->args_count && o < sizeof(ev); i++) {
            if (strncasecmp(x->args[i], "http", 4) == 0) {
                o += (size_t)snprintf(ev + o, sizeof(ev) - o,
                                      ", did you mean --peer-urls=%s",
                                      x->args[i]);
            }
        }
        return ctl_fail(CTL_EXIT_BAD_ARGS, "%s", ev);
    }
    char buf[4096];
    const char *urls[CAIRN_ENDPOINTS_MAX];
    size_t n = peer_urls(x, buf, sizeof(buf), urls);
    if (n == 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "member peer urls not provided");
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_member_add_resp r;
    int rc = cairn_member_add(c, urls, n, ctl_flag_bool(x, "learner"),
                              ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_member_add(&r);
    } else if (x->fmt == CTL_JSON) {
        print_members_json(&r.header, &r.member, r.members, r.members_count);
    } else if (x->fmt == CTL_FIELDS) {
        print_members_fields(&r.header, r.members, r.members_count);
    } else if (x->fmt == CTL_TABLE) {
        rc = unsupported(x, false);
    } else {
        /* etcdctl 3.4 says "added" for a learner too */
        printf("Member %16" PRIx64 " added to cluster %16" PRIx64 "\n",
               r.member.id, r.header.cluster_id);
        /* etcdctl prints the new member's environment from a fresh list */
        struct cairn_member_list_resp l;
        rc = cairn_member_list(c, ctl_deadline(x), &l);
        if (rc != 0) {
            cairn_member_add_resp_free(&r);
            return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
        }
        printf("\nETCD_NAME=\"%s\"\nETCD_INITIAL_CLUSTER=\"", x->args[0]);
        bool first = true;
        for (size_t i = 0; i < l.members_count; i++) {
            const struct cairn_member *m = &l.members[i];
            for (size_t k = 0; k < m->peer_urls_count; k++) {
                printf("%s%s=%s", first ? "" : ",",
                       m->id == r.member.id ? x->args[0] : m->name,
                       m->peer_urls[k]);
                first = false;
            }
        }
        printf("\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"%s\"\n"
               "ETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
               ctl_flag(x, "peer-urls"));
        cairn_member_list_resp_free(&l);
    }
    cairn_member_add_resp_free(&r);
    return rc;
}

/* remove, update, promote: the members after the change. */
static int member_change(struct ctl *x, int which)
{
    uint64_t id = 0;
    int rc = member_id_arg(x, &id);
    if (rc >= 0) {
        return rc;
    }
    char buf[4096];
    const char *urls[CAIRN_ENDPOINTS_MAX];
    size_t n = 0;
    if (which == 1) {
        n = peer_urls(x, buf, sizeof(buf), urls);
        if (n == 0) {
            return ctl_fail(CTL_EXIT_BAD_ARGS, "member peer urls not "
                                               "provided");
        }
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_member_list_resp r;
    rc = which == 0   ? cairn_member_remove(c, id, ctl_deadline(x), &r)
         : which == 1 ? cairn_member_update(c, id, urls, n, ctl_deadline(x), &r)
                      : cairn_member_promote(c, id, ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    static const char *const verb[] = {"removed from", "updated in",
                                       "promoted in"};
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_members(&r.header, r.members, r.members_count);
    } else if (x->fmt == CTL_JSON) {
        print_members_json(&r.header, NULL, r.members, r.members_count);
    } else if (x->fmt == CTL_FIELDS) {
        print_members_fields(&r.header, r.members, r.members_count);
    } else if (x->fmt == CTL_TABLE) {
        rc = unsupported(x, false);
    } else {
        printf("Member %16" PRIx64 " %s cluster %16" PRIx64 "\n", id,
               verb[which], r.header.cluster_id);
    }
    cairn_member_list_resp_free(&r);
    return rc;
}

int cmd_member_remove(struct ctl *x)
{
    return member_change(x, 0);
}

int cmd_member_update(struct ctl *x)
{
    return member_change(x, 1);
}

int cmd_member_promote(struct ctl *x)
{
    return member_change(x, 2);
}

/* ------------------------------------------------------------ snapshot */

/* "\"k\":\"<v as a JSON string>\"" into out; its length. */
static int json_fields(char *out, size_t n, const char *k, const char *v)
{
    size_t w = (size_t)snprintf(out, n, "\"%s\":\"", k);
    for (; *v != 0 && w + 8 < n; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch == '"' || ch == '\\') {
            out[w++] = '\\';
            out[w++] = (char)ch;
        } else if (ch < 0x20) {
            w += (size_t)snprintf(out + w, n - w, "\\u%04x", ch);
        } else {
            out[w++] = (char)ch;
        }
    }
    w += (size_t)snprintf(out + w, n - w, "\"");
    return (int)w;
}

/* etcdctl's snapshot save: one endpoint, into FILE.part (0600), synced,
 * then renamed to FILE. */
int cmd_snapshot_save(struct ctl *x)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "snapshot save expects one "
                                           "argument");
    }
    if (x->endpoints_count != 1) {
        fflush(stdout);
        fputs("Error: snapshot must be requested to one selected node, not "
              "multiple [",
              stderr);
        for (size_t i = 0; i < x->endpoints_count; i++) {
            fprintf(stderr, "%s%s", i > 0 ? " " : "", x->endpoints[i]);
        }
        fputs("]\n", stderr);
        return CTL_EXIT_INTERRUPTED;
    }
    const char *path = x->args[0];
    char part[4096];
    snprintf(part, sizeof(part), "%s.part", path);
    int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        char e[128]; /* Go's text is strerror's in lower case */
        snprintf(e, sizeof(e), "%s", strerror(errno));
        e[0] = (char)tolower((unsigned char)e[0]);
        return ctl_fail(CTL_EXIT_INTERRUPTED, "could not open %s (open %s: %s)",
                        part, part, e);
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        close(fd);
        unlink(part);
        return CTL_EXIT_BAD_ARGS;
    }
    /* On a terminal the progress line; otherwise etcdctl's log lines
     * (stderr), whose shape scripts already filter. */
    bool tty = isatty(STDOUT_FILENO) == 1;
    uint64_t total = 0;
    char f[4200];
    if (tty) {
        struct cairn_status_resp st;
        if (cairn_status(c, ctl_deadline(x), &st) == 0) {
            total = st.db_size > 0 ? (uint64_t)st.db_size : 0;
            cairn_status_resp_free(&st);
        }
    } else {
        json_fields(f, sizeof(f), "path", part);
        ctl_progress_log("created temporary db file", f);
        json_fields(f, sizeof(f), "endpoint", x->endpoints[0]);
        ctl_progress_log("fetching snapshot", f);
    }
    struct ctl_progress pr;
    ctl_progress_begin(&pr, "Saving snapshot", fd, total);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t bytes = 0;
    /* The transfer may take long: the dial timeout plus an hour. */
    int rc = cairn_snapshot(c, fd, x->dial_timeout_ms + 3600 * 1000, &bytes);
    ctl_progress_end(&pr, bytes, rc == 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc == 0 && !tty) {
        char size[32];
        fmt_bytes_si(bytes, size, sizeof(size));
        int w = json_fields(f, sizeof(f), "endpoint", x->endpoints[0]);
        snprintf(f + w, sizeof(f) - (size_t)w, ",\"size\":\"%s\",\"took\":%.9f",
                 size,
                 (double)(t1.tv_sec - t0.tv_sec) +
                     (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
        ctl_progress_log("fetched snapshot", f);
    }
    if (rc == 0 && fsync(fd) != 0) {
        rc = CAIRN_E_IO;
    }
    if (close(fd) != 0 && rc == 0) {
        rc = CAIRN_E_IO;
    }
    if (rc == 0 && rename(part, path) != 0) {
        int e = errno;
        unlink(part);
        return ctl_fail(CTL_EXIT_INTERRUPTED, "could not rename %s to %s (%s)",
                        part, path, strerror(e));
    }
    if (rc != 0) {
        unlink(part);
        return ctl_fail_call(x, c, rc, CTL_EXIT_INTERRUPTED);
    }
    if (!tty) {
        json_fields(f, sizeof(f), "path", path);
        ctl_progress_log("saved", f);
    }
    printf("Snapshot saved at %s\n", path);
    return 0;
}

/* The status line's parts, as etcdctl prints them. */
static void status_print(const struct ctl *x, uint32_t hash, int64_t rev,
                         uint64_t keys, uint64_t size)
{
    char h[16], r[24], k[24], sz[32];
    snprintf(h, sizeof(h), "%x", hash);
    snprintf(r, sizeof(r), "%" PRId64, rev);
    snprintf(k, sizeof(k), "%" PRIu64, keys);
    fmt_bytes_si(size, sz, sizeof(sz));
    if (x->fmt == CTL_JSON) {
        printf("{\"hash\":%" PRIu32 ",\"revision\":%" PRId64
               ",\"totalKey\":%" PRIu64 ",\"totalSize\":%" PRIu64 "}\n",
               hash, rev, keys, size);
    } else if (x->fmt == CTL_FIELDS) {
        printf("\"Hash\" : %" PRIu32 "\n\"Revision\" : %" PRId64
               "\n\"Keys\" : %" PRIu64 "\n\"Size\" : %" PRIu64 "\n",
               hash, rev, keys, size);
    } else if (x->fmt == CTL_TABLE) {
        static const char *const hdr[] = {"HASH", "REVISION", "TOTAL KEYS",
                                          "TOTAL SIZE"};
        const char *cells[] = {h, r, k, sz};
        out_table(hdr, 4, cells, 1);
    } else {
        printf("%s, %s, %s, %s\n", h, r, k, sz);
    }
}

/* Go's error text for a failed stat/open: strerror in lower case. */
static int path_fail(const char *op, const char *path, int e)
{
    char t[128];
    snprintf(t, sizeof(t), "%s", strerror(e));
    t[0] = (char)tolower((unsigned char)t[0]);
    return ctl_fail(CTL_EXIT_ERROR, "%s %s: %s", op, path, t);
}

/* Whether path starts as a bbolt file (an etcd snapshot or db). */
static bool is_bolt_file(const char *path)
{
    uint8_t head[4096];
    ssize_t got = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        got = read(fd, head, sizeof(head));
        close(fd);
    }
    return got > 0 && bolt_is_bolt(head, (size_t)got);
}

/* snapshot status FILE: etcdctl's figures on etcd's (bbolt) files
 * (consensus/kv/bolt.h: the same hash, revision, keys and size), and the
 * same kind on cairnd's (consensus/kv/snapfile.h): hash (HashKV of the
 * whole store), revision, rows in all tables, bytes of the store. */
int cmd_snapshot_status(struct ctl *x)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "snapshot status requires exactly one argument");
    }
    const char *path = x->args[0];
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return path_fail("stat", path, errno);
    }
    char msg[1200] = "";
    if (is_bolt_file(path)) { /* etcd's own */
        struct bolt_status b;
        if (bolt_status_file(path, &b, msg, sizeof(msg)) != 0) {
            return ctl_fail(CTL_EXIT_ERROR, "%s", msg);
        }
        status_print(x, b.hash, b.revision, (uint64_t)b.total_key,
                     (uint64_t)b.total_size);
        return CTL_EXIT_OK;
    }
    struct snapfile_status st;
    if (snapfile_status(path, true, &st, msg, sizeof(msg)) != 0) {
        return ctl_fail(CTL_EXIT_ERROR, "%s", msg);
    }
    status_print(x, st.hash, st.revision, st.total_keys, st.size);
    return CTL_EXIT_OK;
}

/* snapshot restore FILE: a new member's data directory from a cairnd
 * snapshot (snapfile_restore). --name, --initial-cluster,
 * --initial-cluster-token and --initial-advertise-peer-urls are etcdctl's;
 * cairnd writes the new cluster's members when it first starts on the
 * directory with those same flags, so here they are only checked. */
int cmd_snapshot_restore(struct ctl *x)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "snapshot restore requires exactly one argument");
    }
    const char *path = x->args[0];
    const char *name = ctl_flag(x, "name");
    const char *dd = ctl_flag(x, "data-dir");
    const char *wal = ctl_flag(x, "wal-dir");
    char def[600];
    if (dd == NULL || dd[0] == '\0') {
        snprintf(def, sizeof(def), "%s.etcd",
                 name != NULL && name[0] != '\0' ? name : "default");
        dd = def;
    }
    if (wal != NULL && wal[0] != '\0') {
        return ctl_fail(CTL_EXIT_BAD_FEATURE,
                        "--wal-dir: cairnd keeps its log under the data "
                        "directory; restore writes no log");
    }
    char f[4200];
    int w = json_fields(f, sizeof(f), "path", path);
    f[w++] = ',';
    json_fields(f + w, sizeof(f) - (size_t)w, "data-dir", dd);
    ctl_progress_log("restoring snapshot", f);
    struct stat sb;
    if (stat(dd, &sb) == 0) {
        return ctl_fail(CTL_EXIT_ERROR, "data-dir \"%s\" exists", dd);
    }
    if (stat(path, &sb) != 0) {
        return path_fail("open", path, errno);
    }
    if (is_bolt_file(path)) {
        return ctl_fail(CTL_EXIT_ERROR,
                        "%s is an etcd (bbolt) snapshot: cairnd's data "
                        "directory is built from cairnd's own snapshots "
                        "(copy the keys over with a client instead)",
                        path);
    }
    char msg[1200] = "";
    int64_t rev = 0, compacted = 0;
    if (snapfile_restore(path, dd, ctl_flag_bool(x, "skip-hash-check"), &rev,
                         &compacted, msg, sizeof(msg)) != 0) {
        return ctl_fail(CTL_EXIT_ERROR, "%s", msg);
    }
    w = (int)strlen(f);
    snprintf(f + w, sizeof(f) - (size_t)w,
             ",\"revision\":%" PRId64 ",\"compact-revision\":%" PRId64, rev,
             compacted);
    ctl_progress_log("restored snapshot", f);
    return CTL_EXIT_OK;
}

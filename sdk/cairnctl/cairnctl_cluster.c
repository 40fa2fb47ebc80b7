/*
 * cairnctl_cluster.c - lease grant/revoke/timetolive/list/keep-alive,
 * member list, endpoint health/status, with etcdctl 3.4's texts
 * (lease_command.go, member_command.go, ep_command.go, printer_*.go).
 * Endpoint commands ask every --endpoints entry on a client of its own.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sdk/cairnctl/cairnctl.h"

static int one_lease_arg(struct ctl *x, const char *what, int64_t *id)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "%s", what);
    }
    if (ctl_parse_lease(x->args[0], id) != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "bad lease ID arg (strconv.ParseInt: parsing \"%s\": "
                        "invalid syntax), expecting ID in Hex",
                        x->args[0]);
    }
    return -1;
}

static void json_hdr_open(const struct cairn_header *h)
{
    bool first = true;
    putchar('{');
    out_header_json_flat(h, &first);
    if (!first) {
        putchar(',');
    }
}

int cmd_lease_grant(struct ctl *x)
{
    if (x->args_count != 1) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "lease grant command needs TTL "
                                           "argument");
    }
    char *end;
    long long ttl = strtoll(x->args[0], &end, 10);
    if (x->args[0][0] == 0 || *end != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS,
                        "bad TTL (strconv.ParseInt: parsing \"%s\": invalid "
                        "syntax)",
                        x->args[0]);
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_lease_grant_resp r;
    int rc = cairn_lease_grant(c, ttl, 0, ctl_deadline(x), &r);
    if (rc != 0) {
        fputs("Error: failed to grant lease (", stderr);
        ctl_fail_call(x, c, rc, 0);
        return CTL_EXIT_ERROR;
    }
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_header(&r.header); /* etcdctl marshals the embedded
                                     * header alone */
    } else if (x->fmt == CTL_JSON) {
        json_hdr_open(&r.header);
        printf("\"ID\":%" PRId64 ",\"TTL\":%" PRId64 ",\"Error\":", r.id,
               r.ttl);
        out_json_str(r.error);
        puts("}");
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(&r.header);
        printf("\"ID\" : %" PRId64 "\n\"TTL\" : %" PRId64 "\n", r.id, r.ttl);
    } else {
        printf("lease %016" PRIx64 " granted with TTL(%" PRId64 "s)\n",
               (uint64_t)r.id, r.ttl);
    }
    return 0;
}

int cmd_lease_revoke(struct ctl *x)
{
    int64_t id;
    int rc = one_lease_arg(x, "lease revoke command needs 1 argument", &id);
    if (rc >= 0) {
        return rc;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_header h;
    rc = cairn_lease_revoke(c, id, ctl_deadline(x), &h);
    if (rc != 0) {
        const char *m = cairn_client_errmsg(c);
        return ctl_fail(CTL_EXIT_ERROR, "failed to revoke lease (%s)",
                        rc == CAIRN_E_UNAVAILABLE || rc == CAIRN_E_TIMEOUT
                            ? "context deadline exceeded"
                            : m);
    }
    if (x->fmt == CTL_PROTOBUF) {
        return pb_revoke_refusal(&h);
    } else if (x->fmt == CTL_JSON) {
        fputs("{\"header\":", stdout);
        out_header_json(&h);
        puts("}");
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(&h);
    } else {
        printf("lease %016" PRIx64 " revoked\n", (uint64_t)id);
    }
    return 0;
}

int cmd_lease_timetolive(struct ctl *x)
{
    int64_t id;
    int rc = one_lease_arg(x,
                           "lease timetolive command needs lease ID as "
                           "argument",
                           &id);
    if (rc >= 0) {
        return rc;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    bool keys = ctl_flag_bool(x, "keys");
    struct cairn_lease_ttl_resp r;
    rc = cairn_lease_timetolive(c, id, keys, ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_header(&r.header); /* as lease grant */
    } else if (x->fmt == CTL_JSON) {
        json_hdr_open(&r.header);
        printf("\"id\":%" PRId64 ",\"ttl\":%" PRId64 ",\"granted-ttl\":%" PRId64
               ",\"keys\":",
               r.id, r.ttl, r.granted_ttl);
        fputs(r.keys_count > 0 ? "[" : "null", stdout);
        for (size_t i = 0; i < r.keys_count; i++) {
            fputs(i > 0 ? ",\"" : "\"", stdout);
            out_b64(r.keys[i].key, r.keys[i].key_len);
            putchar('"');
        }
        puts(r.keys_count > 0 ? "]}" : "}");
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(&r.header);
        printf("\"ID\" : %" PRId64 "\n\"TTL\" : %" PRId64
               "\n\"GrantedTTL\" : %" PRId64 "\n",
               r.id, r.ttl, r.granted_ttl);
        for (size_t i = 0; i < r.keys_count; i++) {
            fputs("\"Key\" : ", stdout);
            out_goquote(r.keys[i].key, r.keys[i].key_len);
            putchar('\n');
        }
    } else if (r.ttl == -1) {
        printf("lease %016" PRIx64 " already expired\n", (uint64_t)id);
    } else {
        printf("lease %016" PRIx64 " granted with TTL(%" PRId64
               "s), remaining(%" PRId64 "s)",
               (uint64_t)r.id, r.granted_ttl, r.ttl);
        if (keys) {
            fputs(", attached keys([", stdout);
            for (size_t i = 0; i < r.keys_count; i++) {
                fputs(i > 0 ? " " : "", stdout);
                out_bytes(x, r.keys[i].key, r.keys[i].key_len);
            }
            fputs("])", stdout);
        }
        putchar('\n');
    }
    cairn_lease_ttl_resp_free(&r);
    return 0;
}

int cmd_lease_list(struct ctl *x)
{
    if (x->args_count != 0) {
        return ctl_fail(CTL_EXIT_BAD_ARGS, "lease list command needs no "
                                           "argument");
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_lease_list_resp r;
    int rc = cairn_lease_list(c, ctl_deadline(x), &r);
    if (rc != 0) {
        fputs("Error: failed to list leases (", stderr);
        ctl_fail_call(x, c, rc, 0);
        return CTL_EXIT_ERROR;
    }
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_header(&r.header); /* as lease grant */
    } else if (x->fmt == CTL_JSON) {
        json_hdr_open(&r.header);
        fputs("\"leases\":[", stdout);
        for (size_t i = 0; i < r.ids_count; i++) {
            printf("%s{\"id\":%" PRId64 "}", i > 0 ? "," : "", r.ids[i]);
        }
        puts("]}");
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(&r.header);
        for (size_t i = 0; i < r.ids_count; i++) {
            printf("\"ID\" : %" PRId64 "\n", r.ids[i]);
        }
    } else {
        printf("found %zu leases\n", r.ids_count);
        for (size_t i = 0; i < r.ids_count; i++) {
            printf("%016" PRIx64 "\n", (uint64_t)r.ids[i]);
        }
    }
    cairn_lease_list_resp_free(&r);
    return 0;
}

static void print_keepalive(const struct ctl *x, int64_t id, int64_t ttl,
                            const struct cairn_header *h)
{
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_header(h); /* as lease grant */
    } else if (x->fmt == CTL_JSON) {
        json_hdr_open(h);
        printf("\"ID\":%" PRId64 ",\"TTL\":%" PRId64 "}\n", id, ttl);
    } else if (x->fmt == CTL_FIELDS) {
        out_header_fields(h);
        printf("\"ID\" : %" PRId64 "\n\"TTL\" : %" PRId64 "\n", id, ttl);
    } else {
        printf("lease %016" PRIx64 " keepalived with TTL(%" PRId64 ")\n",
               (uint64_t)id, ttl);
    }
    fflush(stdout);
}

int cmd_lease_keepalive(struct ctl *x)
{
    int64_t id;
    int rc = one_lease_arg(x,
                           "lease keep-alive command needs lease ID as "
                           "argument",
                           &id);
    if (rc >= 0) {
        return rc;
    }
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    bool once = ctl_flag_bool(x, "once");
    /* Until the lease is gone or the process is stopped: one renewal per
     * third of the TTL, as clientv3's keep-alive loop does. */
    for (;;) {
        int64_t ttl = 0;
        struct cairn_header h;
        rc = cairn_lease_keepalive_once(c, id, ctl_deadline(x), &ttl, &h);
        if (rc != 0) {
            return ctl_fail_call(x, c, rc, CTL_EXIT_BAD_CONN);
        }
        if (ttl <= 0) {
            if (once) {
                return ctl_fail(CTL_EXIT_BAD_CONN,
                                "etcdserver: requested lease not found");
            }
            printf("lease %016" PRIx64 " expired or revoked.\n", (uint64_t)id);
            return 0;
        }
        print_keepalive(x, id, ttl, &h);
        if (once) {
            return 0;
        }
        int64_t wait_ms = ttl * 1000 / 3;
        struct timespec ts = {wait_ms / 1000, (wait_ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
}

/* -------------------------------------------------------------- member */

static void join(char *out, size_t size, const char *const *v, size_t n)
{
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < n && o < size; i++) {
        o +=
            (size_t)snprintf(out + o, size - o, "%s%s", i > 0 ? "," : "", v[i]);
    }
}

static void json_strs(const char *name, const char *const *v, size_t n)
{
    if (n == 0) {
        return;
    }
    printf(",\"%s\":[", name);
    for (size_t i = 0; i < n; i++) {
        fputs(i > 0 ? "," : "", stdout);
        out_json_str(v[i]);
    }
    putchar(']');
}

static void member_json(const struct cairn_member *m)
{
    printf("{\"ID\":%" PRIu64, m->id);
    if (m->name[0] != 0) {
        fputs(",\"name\":", stdout);
        out_json_str(m->name);
    }
    json_strs("peerURLs", m->peer_urls, m->peer_urls_count);
    json_strs("clientURLs", m->client_urls, m->client_urls_count);
    if (m->is_learner) {
        fputs(",\"isLearner\":true", stdout);
    }
    putchar('}');
}

void print_members_json(const struct cairn_header *h,
                        const struct cairn_member *added,
                        const struct cairn_member *ms, size_t n)
{
    fputs("{\"header\":", stdout);
    out_header_json(h);
    if (added != NULL) {
        fputs(",\"member\":", stdout);
        member_json(added);
    }
    if (n > 0) {
        fputs(",\"members\":[", stdout);
    }
    for (size_t i = 0; i < n; i++) {
        fputs(i > 0 ? "," : "", stdout);
        member_json(&ms[i]);
    }
    puts(n > 0 ? "]}" : "}");
}

void print_members_fields(const struct cairn_header *h,
                          const struct cairn_member *ms, size_t n)
{
    out_header_fields(h);
    for (size_t i = 0; i < n; i++) {
        const struct cairn_member *m = &ms[i];
        printf("\"ID\" : %" PRIu64 "\n\"Name\" : ", m->id);
        out_goquote((const uint8_t *)m->name, strlen(m->name));
        putchar('\n');
        for (size_t k = 0; k < m->peer_urls_count; k++) {
            printf("\"PeerURL\" : \"%s\"\n", m->peer_urls[k]);
        }
        for (size_t k = 0; k < m->client_urls_count; k++) {
            printf("\"ClientURL\" : \"%s\"\n", m->client_urls[k]);
        }
        printf("\"IsLearner\" : %s\n\n", m->is_learner ? "true" : "false");
    }
}

int cmd_member_list(struct ctl *x)
{
    struct cairn_client *c = ctl_client(x);
    if (c == NULL) {
        return CTL_EXIT_BAD_ARGS;
    }
    struct cairn_member_list_resp r;
    int rc = cairn_member_list(c, ctl_deadline(x), &r);
    if (rc != 0) {
        return ctl_fail_call(x, c, rc, CTL_EXIT_ERROR);
    }
    if (x->fmt == CTL_PROTOBUF) {
        pb_print_members(&r.header, r.members, r.members_count);
    } else if (x->fmt == CTL_JSON) {
        print_members_json(&r.header, NULL, r.members, r.members_count);
    } else if (x->fmt == CTL_FIELDS) {
        print_members_fields(&r.header, r.members, r.members_count);
    } else {
        static const char *const hdr[] = {
            "ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"};
        size_t n = r.members_count;
        char(*cells)[6][1024] = calloc(n + 1, sizeof(*cells));
        const char **ptrs = calloc(6 * (n + 1), sizeof(*ptrs));
        for (size_t i = 0; cells != NULL && ptrs != NULL && i < n; i++) {
            const struct cairn_member *m = &r.members[i];
            snprintf(cells[i][0], 1024, "%" PRIx64, m->id);
            snprintf(cells[i][1], 1024, "%s",
                     m->name[0] != 0 ? "started" : "unstarted");
            snprintf(cells[i][2], 1024, "%s", m->name);
            join(cells[i][3], 1024, m->peer_urls, m->peer_urls_count);
            join(cells[i][4], 1024, m->client_urls, m->client_urls_count);
            snprintf(cells[i][5], 1024, "%s", m->is_learner ? "true" : "false");
            for (int k = 0; k < 6; k++) {
                ptrs[i * 6 + (size_t)k] = cells[i][k];
            }
            if (x->fmt == CTL_SIMPLE) {
                printf("%s, %s, %s, %s, %s, %s\n", cells[i][0], cells[i][1],
                       cells[i][2], cells[i][3], cells[i][4], cells[i][5]);
            }
        }
        if (x->fmt == CTL_TABLE && ptrs != NULL) {
            out_table(hdr, 6, ptrs, n);
        }
        free(cells);
        free(ptrs);
    }
    cairn_member_list_resp_free(&r);
    return 0;
}

/* ------------------------------------------------------------ endpoint */

int cmd_endpoint_health(struct ctl *x)
{
    const char *eps[CAIRN_ENDPOINTS_MAX];
    struct cairn_member_list_resp ml;
    int en = ctl_endpoints(x, eps, &ml);
    if (en < 0) {
        return CTL_EXIT_ERROR;
    }
    size_t n = (size_t)en;
    bool all_ok = true;
    char took[CAIRN_ENDPOINTS_MAX][32];
    char err[CAIRN_ENDPOINTS_MAX][256];
    bool ok[CAIRN_ENDPOINTS_MAX];
    for (size_t i = 0; i < n; i++) {
        struct cairn_client *c = ctl_client_for(x, eps[i]);
        if (c == NULL) {
            cairn_member_list_resp_free(&ml);
            return CTL_EXIT_BAD_ARGS;
        }
        struct cairn_range_req req = {0};
        req.key = (const uint8_t *)"health";
        req.key_len = 6;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        struct cairn_range_resp r;
        int rc = cairn_range(c, &req, ctl_deadline(x), &r);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        /* Permission denied still proves the member committed a read. */
        ok[i] = rc == 0 || rc == CAIRN_E_PERMISSION_DENIED;
        uint64_t ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000u +
                      (uint64_t)t1.tv_nsec - (uint64_t)t0.tv_nsec;
        fmt_duration(ns, took[i], sizeof(took[i]));
        snprintf(err[i], sizeof(err[i]), "%s",
                 ok[i] ? ""
                 : rc == CAIRN_E_UNAVAILABLE || rc == CAIRN_E_TIMEOUT
                     ? "context deadline exceeded"
                     : cairn_client_errmsg(c));
        all_ok = all_ok && ok[i];
        cairn_range_resp_free(&r);
        cairn_client_free(c);
    }
    if (x->fmt == CTL_JSON) {
        putchar('[');
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"endpoint\":", i > 0 ? "," : "");
            out_json_str(eps[i]);
            printf(",\"health\":%s,\"took\":", ok[i] ? "true" : "false");
            out_json_str(took[i]);
            if (!ok[i]) {
                fputs(",\"error\":", stdout);
                out_json_str(err[i]);
            }
            putchar('}');
        }
        puts("]");
    } else if (x->fmt == CTL_FIELDS) {
        for (size_t i = 0; i < n; i++) {
            printf("\"Endpoint\" : \"%s\"\n\"Health\" : %s\n\"Took\" : %s\n"
                   "\"Error\" : %s\n\n",
                   eps[i], ok[i] ? "true" : "false", took[i], err[i]);
        }
    } else if (x->fmt == CTL_TABLE) {
        static const char *const hdr[] = {"ENDPOINT", "HEALTH", "TOOK",
                                          "ERROR"};
        const char *cells[CAIRN_ENDPOINTS_MAX * 4] = {0};
        for (size_t i = 0; i < n; i++) {
            cells[i * 4] = eps[i];
            cells[i * 4 + 1] = ok[i] ? "true" : "false";
            cells[i * 4 + 2] = took[i];
            cells[i * 4 + 3] = err[i];
        }
        out_table(hdr, 4, cells, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (ok[i]) {
                fprintf(stderr,
                        "%s is healthy: successfully committed proposal: "
                        "took = %s\n",
                        eps[i], took[i]);
            } else {
                fprintf(stderr,
                        "%s is unhealthy: failed to commit proposal: %s\n",
                        eps[i], err[i]);
            }
        }
    }
    cairn_member_list_resp_free(&ml);
    return all_ok ? 0 : ctl_fail(CTL_EXIT_ERROR, "unhealthy cluster");
}

struct ep_status {
    const char *ep;
    struct cairn_status_resp st;
    char row[10][64];
};

static void status_row(struct ep_status *s)
{
    const struct cairn_status_resp *r = &s->st;
    snprintf(s->row[0], 64, "%s", s->ep);
    snprintf(s->row[1], 64, "%" PRIx64, r->header.member_id);
    snprintf(s->row[2], 64, "%s", r->version);
    fmt_bytes_si((uint64_t)r->db_size, s->row[3], 64);
    snprintf(s->row[4], 64, "%s",
             r->leader == r->header.member_id ? "true" : "false");
    snprintf(s->row[5], 64, "%s", r->is_learner ? "true" : "false");
    snprintf(s->row[6], 64, "%" PRIu64, r->raft_term);
    snprintf(s->row[7], 64, "%" PRIu64, r->raft_index);
    snprintf(s->row[8], 64, "%" PRIu64, r->raft_applied_index);
    size_t o = 0;
    s->row[9][0] = 0;
    for (size_t i = 0; i < r->errors_count && o < 64; i++) {
        o += (size_t)snprintf(s->row[9] + o, 64 - o, "%s%s", i ? ", " : "",
                              r->errors[i]);
    }
}

static void status_json(const struct ep_status *s, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        const struct cairn_status_resp *r = &s[i].st;
        printf("%s{\"Endpoint\":", i > 0 ? "," : "");
        out_json_str(s[i].ep);
        fputs(",\"Status\":{\"header\":", stdout);
        out_header_json(&r->header);
        fputs(",\"version\":", stdout);
        out_json_str(r->version);
        printf(",\"dbSize\":%" PRId64 ",\"leader\":%" PRIu64
               ",\"raftIndex\":%" PRIu64 ",\"raftTerm\":%" PRIu64
               ",\"raftAppliedIndex\":%" PRIu64,
               r->db_size, r->leader, r->raft_index, r->raft_term,
               r->raft_applied_index);
        if (r->errors_count > 0) {
            json_strs("errors", r->errors, r->errors_count);
        }
        if (r->db_size_in_use != 0) {
            printf(",\"dbSizeInUse\":%" PRId64, r->db_size_in_use);
        }
        if (r->is_learner) {
            fputs(",\"isLearner\":true", stdout);
        }
        fputs("}}", stdout);
    }
    puts("]");
}

static void status_fields(const struct ep_status *s)
{
    const struct cairn_status_resp *r = &s->st;
    out_header_fields(&r->header);
    printf("\"Version\" : \"%s\"\n\"DBSize\" : %" PRId64
           "\n\"Leader\" : %" PRIu64 "\n\"IsLearner\" : %s\n"
           "\"RaftIndex\" : %" PRIu64 "\n\"RaftTerm\" : %" PRIu64
           "\n\"RaftAppliedIndex\" : %" PRIu64 "\n\"Errors\" : [",
           r->version, r->db_size, r->leader, r->is_learner ? "true" : "false",
           r->raft_index, r->raft_term, r->raft_applied_index);
    for (size_t i = 0; i < r->errors_count; i++) {
        printf("%s%s", i > 0 ? " " : "", r->errors[i]);
    }
    printf("]\n\"Endpoint\" : \"%s\"\n\n", s->ep);
}

int cmd_endpoint_status(struct ctl *x)
{
    const char *eps[CAIRN_ENDPOINTS_MAX];
    struct cairn_member_list_resp ml;
    int en = ctl_endpoints(x, eps, &ml);
    if (en < 0) {
        return CTL_EXIT_ERROR;
    }
    struct ep_status *s = calloc(CAIRN_ENDPOINTS_MAX, sizeof(*s));
    size_t n = 0;
    bool failed = false;
    for (size_t i = 0; s != NULL && i < (size_t)en; i++) {
        struct cairn_client *c = ctl_client_for(x, eps[i]);
        if (c == NULL) {
            free(s);
            cairn_member_list_resp_free(&ml);
            return CTL_EXIT_BAD_ARGS;
        }
        int rc = cairn_status(c, ctl_deadline(x), &s[n].st);
        if (rc != 0) {
            fprintf(stderr, "Failed to get the status of endpoint %s (%s)\n",
                    eps[i],
                    rc == CAIRN_E_UNAVAILABLE || rc == CAIRN_E_TIMEOUT
                        ? "context deadline exceeded"
                        : cairn_client_errmsg(c));
            failed = true;
        } else {
            s[n].ep = eps[i];
            status_row(&s[n++]);
        }
        cairn_client_free(c);
    }
    if (x->fmt == CTL_JSON) {
        status_json(s, n);
    } else if (x->fmt == CTL_TABLE) {
        static const char *const hdr[] = {
            "ENDPOINT",           "ID",         "VERSION",   "DB SIZE",
            "IS LEADER",          "IS LEARNER", "RAFT TERM", "RAFT INDEX",
            "RAFT APPLIED INDEX", "ERRORS"};
        const char **cells = calloc(10 * (n + 1), sizeof(*cells));
        for (size_t i = 0; cells != NULL && i < n; i++) {
            for (int k = 0; k < 10; k++) {
                cells[i * 10 + (size_t)k] = s[i].row[k];
            }
        }
        if (cells != NULL) {
            out_table(hdr, 10, cells, n);
        }
        free(cells);
    } else {
        for (size_t i = 0; i < n; i++) {
            if (x->fmt == CTL_FIELDS) {
                status_fields(&s[i]);
            } else {
                printf("%s, %s, %s, %s, %s, %s, %s, %s, %s, %s\n", s[i].row[0],
                       s[i].row[1], s[i].row[2], s[i].row[3], s[i].row[4],
                       s[i].row[5], s[i].row[6], s[i].row[7], s[i].row[8],
                       s[i].row[9]);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        cairn_status_resp_free(&s[i].st);
    }
    free(s);
    cairn_member_list_resp_free(&ml);
    return failed ? CTL_EXIT_ERROR : 0;
}

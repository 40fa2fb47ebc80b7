/*
 * cairnctl_out.c - the pieces of etcdctl's output formats: Go's
 * encoding/json of the response structs (omitempty fields, base64 bytes,
 * 64-bit numbers as numbers), the "fields" printer's lines (Go %q
 * quoting), hex output, go-humanize sizes, Go durations, and the
 * tablewriter tables (right-aligned cells, centred headers).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sdk/cairnctl/cairnctl.h"

void out_b64(const uint8_t *p, size_t n)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= p[i + 2];
        }
        putchar(tab[(v >> 18) & 63]);
        putchar(tab[(v >> 12) & 63]);
        putchar(i + 1 < n ? tab[(v >> 6) & 63] : '=');
        putchar(i + 2 < n ? tab[v & 63] : '=');
    }
}

void out_json_str(const char *s)
{
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p != 0; p++) {
        if (*p == '"' || *p == '\\') {
            printf("\\%c", *p);
        } else if (*p == '\n') {
            fputs("\\n", stdout);
        } else if (*p < 0x20 || *p == '<' || *p == '>' || *p == '&') {
            printf("\\u%04x", *p); /* Go escapes HTML characters too */
        } else {
            putchar(*p);
        }
    }
    putchar('"');
}

/* Length of a valid UTF-8 sequence at p (2-4), or 0. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    size_t len = p[0] >= 0xf0 && p[0] < 0xf5   ? 4
                 : p[0] >= 0xe0                ? 3
                 : p[0] >= 0xc2 && p[0] < 0xe0 ? 2
                                               : 0;
    if (len == 0 || len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return len;
}

void out_goquote(const uint8_t *p, size_t n)
{
    out_goquote_to(stdout, p, n);
}

void out_goquote_to(FILE *f, const uint8_t *p, size_t n)
{
    putc('"', f);
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = p[i];
        size_t u;
        const char *esc = ch == '\a'   ? "\\a"
                          : ch == '\b' ? "\\b"
                          : ch == '\f' ? "\\f"
                          : ch == '\n' ? "\\n"
                          : ch == '\r' ? "\\r"
                          : ch == '\t' ? "\\t"
                          : ch == '\v' ? "\\v"
                          : ch == '"'  ? "\\\""
                          : ch == '\\' ? "\\\\"
                                       : NULL;
        if (esc != NULL) {
            fputs(esc, f);
        } else if (ch >= 0x20 && ch < 0x7f) {
            putc(ch, f);
        } else if (ch >= 0x80 && (u = utf8_len(p + i, n - i)) > 0) {
            fwrite(p + i, 1, u, f);
            i += u - 1;
        } else {
            fprintf(f, "\\x%02x", ch);
        }
    }
    putc('"', f);
}

void out_bytes(const struct ctl *x, const uint8_t *p, size_t n)
{
    if (x->hex) {
        for (size_t i = 0; i < n; i++) {
            printf("\\x%02x", p[i]);
        }
    } else {
        fwrite(p, 1, n, stdout);
    }
}

void out_kv_simple(const struct ctl *x, const struct cairn_kv *kv,
                   bool value_only)
{
    if (!value_only) {
        out_bytes(x, kv->key, kv->key_len);
        putchar('\n');
    }
    out_bytes(x, kv->value, kv->value_len);
    putchar('\n');
}

/* Writes ,"name":v (or without the comma first) when v is not zero. */
static void json_i64(const char *name, int64_t v, bool *first)
{
    if (v != 0) {
        printf("%s\"%s\":%" PRId64, *first ? "" : ",", name, v);
        *first = false;
    }
}

static void json_u64(const char *name, uint64_t v, bool *first)
{
    if (v != 0) {
        printf("%s\"%s\":%" PRIu64, *first ? "" : ",", name, v);
        *first = false;
    }
}

void out_kv_json(const struct cairn_kv *kv)
{
    bool first = true;
    putchar('{');
    if (kv->key_len > 0) {
        fputs("\"key\":\"", stdout);
        out_b64(kv->key, kv->key_len);
        putchar('"');
        first = false;
    }
    json_i64("create_revision", kv->create_revision, &first);
    json_i64("mod_revision", kv->mod_revision, &first);
    json_i64("version", kv->version, &first);
    if (kv->value_len > 0) {
        printf("%s\"value\":\"", first ? "" : ",");
        out_b64(kv->value, kv->value_len);
        putchar('"');
        first = false;
    }
    json_i64("lease", kv->lease, &first);
    putchar('}');
}

void out_header_json_flat(const struct cairn_header *h, bool *first)
{
    json_u64("cluster_id", h->cluster_id, first);
    json_u64("member_id", h->member_id, first);
    json_i64("revision", h->revision, first);
    json_u64("raft_term", h->raft_term, first);
}

void out_header_json(const struct cairn_header *h)
{
    bool first = true;
    putchar('{');
    out_header_json_flat(h, &first);
    putchar('}');
}

void out_header_fields(const struct cairn_header *h)
{
    printf("\"ClusterID\" : %" PRIu64 "\n", h->cluster_id);
    printf("\"MemberID\" : %" PRIu64 "\n", h->member_id);
    printf("\"Revision\" : %" PRId64 "\n", h->revision);
    printf("\"RaftTerm\" : %" PRIu64 "\n", h->raft_term);
}

static void fields_bytes(const struct ctl *x, const uint8_t *p, size_t n)
{
    if (x->hex) {
        putchar('"');
        out_bytes(x, p, n);
        putchar('"');
    } else {
        out_goquote(p, n);
    }
}

void out_kv_fields(const struct ctl *x, const char *pfx,
                   const struct cairn_kv *kv)
{
    printf("\"%sKey\" : ", pfx);
    fields_bytes(x, kv->key, kv->key_len);
    printf("\n\"%sCreateRevision\" : %" PRId64 "\n", pfx, kv->create_revision);
    printf("\"%sModRevision\" : %" PRId64 "\n", pfx, kv->mod_revision);
    printf("\"%sVersion\" : %" PRId64 "\n", pfx, kv->version);
    printf("\"%sValue\" : ", pfx);
    fields_bytes(x, kv->value, kv->value_len);
    printf("\n\"%sLease\" : %" PRId64 "\n", pfx, kv->lease);
}

void fmt_bytes_si(uint64_t n, char *out, size_t out_size)
{
    static const char *const units[] = {"B",  "kB", "MB", "GB",
                                        "TB", "PB", "EB"};
    if (n < 10) {
        snprintf(out, out_size, "%" PRIu64 " B", n);
        return;
    }
    double v = (double)n;
    size_t e = 0;
    while (v >= 1000 && e + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000;
        e++;
    }
    /* go-humanize: round to one decimal, print it only below 10. */
    double r = (double)(int64_t)(v * 10 + 0.5) / 10;
    snprintf(out, out_size, r < 10 ? "%.1f %s" : "%.0f %s", r, units[e]);
}

/* A fraction of up to prec digits without trailing zeros. */
static void frac_fmt(char *out, size_t out_size, uint64_t whole, uint64_t frac,
                     int prec, const char *unit)
{
    char digits[16];
    snprintf(digits, sizeof(digits), "%0*" PRIu64, prec, frac);
    int len = prec;
    while (len > 0 && digits[len - 1] == '0') {
        len--;
    }
    if (len == 0) {
        snprintf(out, out_size, "%" PRIu64 "%s", whole, unit);
    } else {
        snprintf(out, out_size, "%" PRIu64 ".%.*s%s", whole, len, digits, unit);
    }
}

void fmt_duration(uint64_t ns, char *out, size_t out_size)
{
    if (ns < 1000) {
        snprintf(out, out_size, "%" PRIu64 "ns", ns);
    } else if (ns < 1000000) {
        frac_fmt(out, out_size, ns / 1000, ns % 1000, 3, "µs");
    } else if (ns < 1000000000) {
        frac_fmt(out, out_size, ns / 1000000, ns % 1000000, 6, "ms");
    } else {
        frac_fmt(out, out_size, ns / 1000000000, ns % 1000000000, 9, "s");
    }
}

/* Display width: UTF-8 continuation bytes take no column. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s != 0; s++) {
        w += ((unsigned char)*s & 0xc0) != 0x80;
    }
    return w;
}

static void rule(const size_t *w, size_t cols)
{
    for (size_t c = 0; c < cols; c++) {
        putchar('+');
        for (size_t i = 0; i < w[c] + 2; i++) {
            putchar('-');
        }
    }
    puts("+");
}

void out_table(const char *const *hdr, size_t cols, const char *const *cells,
               size_t rows)
{
    size_t w[16] = {0};
    if (cols > 16) {
        cols = 16;
    }
    for (size_t c = 0; c < cols; c++) {
        w[c] = width(hdr[c]);
        for (size_t r = 0; r < rows; r++) {
            size_t cw = width(cells[r * cols + c]);
            w[c] = cw > w[c] ? cw : w[c];
        }
    }
    rule(w, cols);
    for (size_t c = 0; c < cols; c++) {
        size_t gap = w[c] - width(hdr[c]);
        printf("| %*s%s%*s ", (int)(gap / 2), "", hdr[c], (int)(gap - gap / 2),
               "");
    }
    puts("|");
    rule(w, cols);
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            const char *s = cells[r * cols + c];
            printf("| %*s%s ", (int)(w[c] - width(s)), "", s);
        }
        puts("|");
    }
    rule(w, cols);
}

/*
 * cfg_props.c - Java .properties files, read exactly as
 * java.util.Properties.load(Reader) reads them.
 *
 * The rules (Java SE 17 javadoc of Properties.load(Reader), and the
 * LineReader / loadConvert code it describes):
 *  - Natural lines end at \n, \r or \r\n. Leading blanks (space, \t, \f)
 *    of a line are skipped; a line left empty is ignored; a line whose
 *    first other character is '#' or '!' is a comment.
 *  - A natural line ending in an odd number of backslashes continues on
 *    the next one: the last backslash and the line terminator are
 *    dropped, as are the next line's leading blanks. A backslash at the
 *    very end of the input is dropped too. The joined text is a logical
 *    line; the comment test is made only while the logical line is
 *    still empty (so "\<newline>#x" is a comment, quirk included).
 *  - The key runs to the first unescaped '=', ':' or blank. Blanks after
 *    it are skipped, then at most one '=' or ':' (if the key did not end
 *    at one), then blanks again; the rest is the value.
 *  - In key and value, "\t" "\n" "\r" "\f" are the control characters,
 *    "\uXXXX" (exactly four hex digits) a UTF-16 unit, and a backslash
 *    before anything else is dropped. A "\u" without four hex digits
 *    throws IllegalArgumentException("Malformed \uxxxx encoding."):
 *    the only error Java raises, and the only one here besides bounds.
 * The reader below mirrors LineReader.readLine state for state, over the
 * characters of the (already UTF-8 checked) input; the logical line is
 * kept as the byte offsets of its characters, so an error can name the
 * line and column of the backslash that began the bad escape.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "config/cfg_int.h"

struct lreader {
    const unsigned char *p;
    size_t len;
    size_t off;     /* next byte to read */
    uint32_t *offs; /* the logical line: byte offset of each character */
    size_t first;   /* offset of the logical line's first character */
};

static size_t char_len(unsigned char c)
{
    if (c < 0x80) {
        return 1;
    }
    return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
}

static bool blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\f';
}

/* Skip the rest of a comment line, through its terminator. */
static void skip_comment(struct lreader *r)
{
    while (r->off < r->len) {
        unsigned char c = r->p[r->off++];
        if (c == '\r' || c == '\n') {
            return;
        }
    }
}

/* The next logical line into r->offs: its length in characters, or -1 at
 * the end of the input (LineReader.readLine). Each pass of the loop
 * consumes at least one byte, so it ends within len passes. */
static long read_line(struct lreader *r)
{
    size_t n = 0;
    bool skip_ws = true;
    bool appended = false; /* on a continuation line */
    bool backslash = false;
    bool started = false; /* r->first is set */
    for (;;) {
        if (r->off >= r->len) {
            if (n == 0) {
                return -1;
            }
            return (long)(backslash ? n - 1 : n);
        }
        size_t at = r->off;
        unsigned char c = r->p[r->off];
        r->off += char_len(c);
        if (skip_ws) {
            if (blank(c)) {
                continue;
            }
            if (!appended && (c == '\r' || c == '\n')) {
                continue;
            }
            skip_ws = false;
            appended = false;
        }
        if (n == 0 && (c == '#' || c == '!')) {
            skip_comment(r);
            if (r->off >= r->len) {
                return -1; /* Java: a comment at the end is the end */
            }
            skip_ws = true;
            continue;
        }
        if (c != '\n' && c != '\r') {
            ASSERT(n < r->len);
            if (!started) {
                r->first = at;
                started = true;
            }
            r->offs[n++] = (uint32_t)at;
            backslash = c == '\\' ? !backslash : false;
            continue;
        }
        if (n == 0) {
            skip_ws = true;
            continue;
        }
        if (r->off >= r->len) {
            return (long)(backslash ? n - 1 : n);
        }
        if (!backslash) {
            return (long)n;
        }
        /* A continuation: drop the backslash and a "\n" after a "\r". */
        n--;
        skip_ws = true;
        appended = true;
        backslash = false;
        if (c == '\r' && r->p[r->off] == '\n') {
            r->off++;
        }
    }
}

/* Output of loadConvert, as UTF-8, with UTF-16 surrogates from \u
 * escapes paired up. */
struct out {
    char *p;
    size_t len;
    unsigned high; /* a high surrogate waiting for its low half, or 0 */
};

static void put_cp(struct out *o, unsigned cp)
{
    char *p = o->p + o->len;
    if (cp < 0x80) {
        p[0] = (char)cp;
        o->len += 1;
    } else if (cp < 0x800) {
        p[0] = (char)(0xC0 | cp >> 6);
        p[1] = (char)(0x80 | (cp & 0x3F));
        o->len += 2;
    } else if (cp < 0x10000) {
        p[0] = (char)(0xE0 | cp >> 12);
        p[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        p[2] = (char)(0x80 | (cp & 0x3F));
        o->len += 3;
    } else {
        p[0] = (char)(0xF0 | cp >> 18);
        p[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        p[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        p[3] = (char)(0x80 | (cp & 0x3F));
        o->len += 4;
    }
}

/* An unpaired high surrogate has no UTF-8 form: U+FFFD stands in. */
static void flush_high(struct out *o)
{
    if (o->high != 0) {
        put_cp(o, 0xFFFD);
        o->high = 0;
    }
}

static void put_unit(struct out *o, unsigned u)
{
    if (u >= 0xD800 && u <= 0xDBFF) {
        flush_high(o);
        o->high = u;
    } else if (u >= 0xDC00 && u <= 0xDFFF) {
        if (o->high != 0) {
            put_cp(o, 0x10000 + ((o->high - 0xD800) << 10) + (u - 0xDC00));
            o->high = 0;
        } else {
            put_cp(o, 0xFFFD);
        }
    } else {
        flush_high(o);
        put_cp(o, u);
    }
}

static void put_bytes(struct out *o, const unsigned char *s, size_t n)
{
    flush_high(o);
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static int hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* loadConvert over characters [from, to) of the logical line. Returns 0,
 * or ERR_INVALID with *bad set to the index of the backslash of a
 * malformed \uXXXX. Output never outgrows its input bytes. */
static int convert(const struct lreader *r, size_t from, size_t to,
                   struct out *o, size_t *bad)
{
    size_t i = from;
    o->high = 0;
    while (i < to) {
        const unsigned char *s = r->p + r->offs[i];
        if (*s != '\\') {
            put_bytes(o, s, char_len(*s));
            i++;
            continue;
        }
        if (i + 1 == to) {
            /* Cannot happen (readLine drops an odd trailing backslash and
             * the key ends at an unescaped separator); Java would read
             * past the key here. Keep the backslash rather than guess. */
            put_bytes(o, s, 1);
            break;
        }
        const unsigned char *e = r->p + r->offs[i + 1];
        if (*e == 'u') {
            unsigned u = 0;
            if (to - (i + 2) < 4) {
                *bad = i;
                return ERR_INVALID;
            }
            for (size_t k = 0; k < 4; k++) {
                int h = hex(r->p[r->offs[i + 2 + k]]);
                if (h < 0) {
                    *bad = i;
                    return ERR_INVALID;
                }
                u = u << 4 | (unsigned)h;
            }
            put_unit(o, u);
            i += 6;
            continue;
        }
        unsigned char t = *e == 't'   ? '\t'
                          : *e == 'r' ? '\r'
                          : *e == 'n' ? '\n'
                          : *e == 'f' ? '\f'
                                      : 0;
        if (t != 0) {
            put_bytes(o, &t, 1);
        } else {
            put_bytes(o, e, char_len(*e));
        }
        i += 2;
    }
    flush_high(o);
    return 0;
}

/* Split a logical line of n characters into key [0, *key_end) and value
 * [*value_start, n) (Properties.load0). */
static void split(const struct lreader *r, size_t n, size_t *key_end,
                  size_t *value_start)
{
    size_t k = 0;
    size_t v = n;
    bool sep = false;
    bool backslash = false;
    for (; k < n; k++) {
        unsigned char c = r->p[r->offs[k]];
        if ((c == '=' || c == ':') && !backslash) {
            v = k + 1;
            sep = true;
            break;
        }
        if (blank(c) && !backslash) {
            v = k + 1;
            break;
        }
        backslash = c == '\\' ? !backslash : false;
    }
    for (; v < n; v++) {
        unsigned char c = r->p[r->offs[v]];
        if (!blank(c)) {
            if (!sep && (c == '=' || c == ':')) {
                sep = true;
            } else {
                break;
            }
        }
    }
    *key_end = k;
    *value_start = v;
}

/* Line numbers of increasing offsets, counted incrementally. */
struct line_counter {
    size_t off;
    int line;
};

static int line_of(struct line_counter *lc, const unsigned char *p, size_t len,
                   size_t off)
{
    for (; lc->off < off; lc->off++) {
        unsigned char c = p[lc->off];
        if (c == '\n' ||
            (c == '\r' && (lc->off + 1 == len || p[lc->off + 1] != '\n'))) {
            lc->line += lc->line < 0x7fffffff;
        }
    }
    return lc->line;
}

static int parse_lines(struct lreader *r, char *obuf, cfg_prop_fn fn, void *ctx,
                       struct cfg_error *err)
{
    struct line_counter lc = {.off = 0, .line = 1};
    /* Each logical line consumes at least one byte. */
    for (size_t guard = 0; guard <= r->len; guard++) {
        long n = read_line(r);
        size_t key_end;
        size_t value_start;
        size_t bad = 0;
        if (n < 0) {
            return 0;
        }
        split(r, (size_t)n, &key_end, &value_start);
        struct out key = {.p = obuf, .len = 0, .high = 0};
        int rc = convert(r, 0, key_end, &key, &bad);
        struct out value = {.p = obuf + key.len, .len = 0, .high = 0};
        if (rc == 0) {
            rc = convert(r, value_start, (size_t)n, &value, &bad);
        }
        if (rc != 0) {
            cfg__error_at(err, (const char *)r->p, r->len, r->offs[bad],
                          "Malformed \\uxxxx encoding.");
            return rc;
        }
        ASSERT(key.len + value.len <= r->len);
        if (fn != NULL) {
            int line = line_of(&lc, r->p, r->len, r->first);
            rc = fn(ctx, key.p, key.len, value.p, value.len, line);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return ERR_LIMIT; /* unreachable: the guard outlasts the input */
}

int cfg_properties_parse(const char *content, size_t len, cfg_prop_fn fn,
                         void *ctx, struct cfg_error *err)
{
    struct lreader r;
    int rc;
    cfg__error_clear(err);
    if (len > CFG_CONTENT_MAX) {
        if (err != NULL) {
            snprintf(err->message, sizeof(err->message),
                     "content is %zu bytes, more than %d", len,
                     CFG_CONTENT_MAX);
        }
        return ERR_LIMIT;
    }
    if (content == NULL && len > 0) {
        return ERR_INVALID;
    }
    if (len == 0) {
        return 0;
    }
    rc = cfg__utf8_check(content, len, err);
    if (rc != 0) {
        return rc;
    }
    r.p = (const unsigned char *)content;
    r.len = len;
    r.off = 0;
    r.first = 0;
    r.offs = mem_alloc(len * sizeof(r.offs[0]));
    char *obuf = mem_alloc(len + 1);
    if (r.offs == NULL || obuf == NULL) {
        mem_free(r.offs);
        mem_free(obuf);
        return -ENOMEM;
    }
    rc = parse_lines(&r, obuf, fn, ctx, err);
    mem_free(r.offs);
    mem_free(obuf);
    return rc;
}

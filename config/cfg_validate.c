/*
 * cfg_validate.c - is a config document well-formed in its format, and if
 * not, where is the first problem?
 *
 * Every format is first checked as UTF-8 (RFC 3629 section 4's table of
 * well-formed byte sequences) without NUL bytes, so the parsers below
 * only ever see text and every position can be given in characters. JSON
 * goes to jansson, YAML to libyaml's event parser (no document tree is
 * built, so anchors and aliases cost nothing), .properties to
 * cfg_props.c. Parser positions are converted to ours (cfg__position):
 * 1-based line and character column, lines ending at \n, \r\n or \r.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/str.h"
#include "config/cfg_int.h"

static const char *const format_names[CFG_FORMAT_COUNT] = {
    [CFG_FORMAT_TEXT] = "text",
    [CFG_FORMAT_JSON] = "json",
    [CFG_FORMAT_YAML] = "yaml",
    [CFG_FORMAT_PROPERTIES] = "properties",
};

int cfg_format_parse(const char *name, enum cfg_format *out)
{
    static const struct {
        const char *name;
        enum cfg_format f;
    } names[] = {
        {"text", CFG_FORMAT_TEXT}, {"txt", CFG_FORMAT_TEXT},
        {"json", CFG_FORMAT_JSON}, {"yaml", CFG_FORMAT_YAML},
        {"yml", CFG_FORMAT_YAML},  {"properties", CFG_FORMAT_PROPERTIES},
    };
    if (name == NULL) {
        return ERR_INVALID;
    }
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].f;
            return 0;
        }
    }
    return ERR_INVALID;
}

const char *cfg_format_name(enum cfg_format f)
{
    if ((unsigned)f >= CFG_FORMAT_COUNT) {
        return "unknown";
    }
    return format_names[f];
}

void cfg__position(const char *content, size_t len, size_t off, int *line,
                   int *column)
{
    const unsigned char *p = (const unsigned char *)content;
    long l = 1;
    long c = 1;
    if (off > len) {
        off = len;
    }
    for (size_t i = 0; i < off; i++) {
        if (p[i] == '\n' ||
            (p[i] == '\r' && (i + 1 == len || p[i + 1] != '\n'))) {
            l++; /* a CR LF pair ends its line at the LF */
            c = 1;
        } else if (p[i] != '\r' && (p[i] & 0xC0) != 0x80) {
            c++; /* a character starts here: the next one is one further */
        }
    }
    *line = l > 0x7fffffff ? 0x7fffffff : (int)l;
    *column = c > 0x7fffffff ? 0x7fffffff : (int)c;
}

void cfg__error_clear(struct cfg_error *err)
{
    if (err != NULL) {
        err->message[0] = '\0';
        err->line = 0;
        err->column = 0;
    }
}

void cfg__error_at(struct cfg_error *err, const char *content, size_t len,
                   size_t off, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    cfg__position(content, len, off, &err->line, &err->column);
}

int cfg__utf8_check(const char *content, size_t len, struct cfg_error *err)
{
    const unsigned char *p = (const unsigned char *)content;
    size_t i = 0;
    while (i < len) {
        if (p[i] == 0) {
            cfg__error_at(err, content, len, i, "NUL byte (not text)");
            return ERR_INVALID;
        }
        size_t n = str_utf8_seq(p + i, len - i);
        if (n == 0) {
            cfg__error_at(err, content, len, i, "invalid UTF-8 (byte 0x%02x)",
                          p[i]);
            return ERR_INVALID;
        }
        i += n;
    }
    return 0;
}

/* ------------------------------------------------------------------ JSON */

/* jansson reports where it stopped: position is the count of bytes read,
 * the last of them ending the offending token, and its column counts the
 * characters read on a line counted by "\n" alone (0 at the end of the
 * input after a newline). We point at the start of the token instead
 * when the message quotes it ("invalid token near 'tru'") and those
 * bytes are indeed just before position, and at the end of the input for
 * "near end of file". */
static size_t json_error_offset(const json_error_t *je, const char *content,
                                size_t len)
{
    size_t pos = je->position > 0 ? (size_t)je->position : 0;
    const char *near = strstr(je->text, " near '");
    if (pos > len) {
        pos = len;
    }
    if (strstr(je->text, "near end of file") != NULL) {
        return len;
    }
    if (near != NULL) {
        const char *tok = near + 7;
        size_t tlen = strlen(tok);
        if (tlen > 0 && tok[tlen - 1] == '\'') {
            tlen--;
            if (tlen > 0 && tlen <= pos &&
                memcmp(content + pos - tlen, tok, tlen) == 0) {
                return pos - tlen;
            }
        }
    }
    return pos > 0 ? pos - 1 : 0;
}

static int validate_json(const char *content, size_t len, struct cfg_error *err)
{
    json_error_t je;
    /* DECODE_ANY: a config may be a bare value. INT_AS_REAL: an integer
     * past 64 bits is valid JSON (jansson would refuse it as too big).
     * ALLOW_NUL: "\u0000" is a valid escape; raw NULs were refused. */
    json_t *v = json_loadb(content, len,
                           JSON_DECODE_ANY | JSON_REJECT_DUPLICATES |
                               JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL,
                           &je);
    if (v != NULL) {
        json_decref(v);
        return 0;
    }
    if (json_error_code(&je) == json_error_out_of_memory) {
        return -ENOMEM;
    }
    cfg__error_at(err, content, len, json_error_offset(&je, content, len), "%s",
                  je.text);
    return ERR_INVALID;
}

/* ------------------------------------------------------------------ YAML */

static void yaml_error(const yaml_parser_t *ps, const char *content, size_t len,
                       struct cfg_error *err)
{
    const char *problem = ps->problem != NULL ? ps->problem : "invalid YAML";
    if (err == NULL) {
        return;
    }
    if (ps->error == YAML_READER_ERROR) {
        /* The reader gives a byte offset, not a mark. */
        size_t off = ps->problem_offset < len ? ps->problem_offset : len;
        cfg__error_at(err, content, len, off, "%s", problem);
        return;
    }
    if (ps->context != NULL) {
        snprintf(err->message, sizeof(err->message),
                 "%s (line %lu, column %lu): %s", ps->context,
                 (unsigned long)ps->context_mark.line + 1,
                 (unsigned long)ps->context_mark.column + 1, problem);
    } else {
        snprintf(err->message, sizeof(err->message), "%s", problem);
    }
    /* libyaml's marks are 0-based lines and characters; it also breaks
     * lines at U+0085, U+2028 and U+2029 (YAML 1.1), which we do not. */
    err->line = ps->problem_mark.line < 0x7ffffffe
                    ? (int)ps->problem_mark.line + 1
                    : 0x7fffffff;
    err->column = ps->problem_mark.column < 0x7ffffffe
                      ? (int)ps->problem_mark.column + 1
                      : 0x7fffffff;
}

/* Names seen in one YAML document: the scalar keys of every mapping (told
 * apart by the mapping's number) and the anchors. One open-addressing
 * table over copies of the bytes: each name costs its bytes plus 24, so a
 * 1 MiB document costs a few MiB at most, and a lookup is O(1), so a
 * mapping of 100k keys is checked in linear time. */
struct ynames {
    struct ynames_slot {
        uint64_t scope; /* mapping number, or 0 for anchors; 0 and no len:
                         * empty slot (scope numbers start at 1) */
        uint32_t hash;
        uint32_t len;
        size_t off; /* into bytes */
    } * slots;
    size_t cap, used;
    struct buf bytes;
};

static uint32_t ynames_hash(uint64_t scope, const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u ^ (uint32_t)scope ^ (uint32_t)(scope >> 32);
    for (size_t k = 0; k < n; k++) {
        h = (h ^ p[k]) * 16777619u;
    }
    return h;
}

/* 1: (scope, name) was there already; 0: added; -ENOMEM. */
static int ynames_add(struct ynames *t, uint64_t scope, const unsigned char *p,
                      size_t n, bool add)
{
    uint32_t h = ynames_hash(scope, p, n);
    if (add && (t->used + 1) * 4 > t->cap * 3) {
        size_t cap = t->cap == 0 ? 64 : t->cap * 2;
        struct ynames_slot *ns = mem_calloc(cap, sizeof(*ns));
        if (ns == NULL) {
            return -ENOMEM;
        }
        for (size_t k = 0; k < t->cap; k++) {
            if (t->slots[k].scope != 0) {
                size_t j = t->slots[k].hash & (cap - 1);
                while (ns[j].scope != 0) {
                    j = (j + 1) & (cap - 1);
                }
                ns[j] = t->slots[k];
            }
        }
        mem_free(t->slots);
        t->slots = ns;
        t->cap = cap;
    }
    if (t->cap == 0) {
        return 0;
    }
    size_t j = h & (t->cap - 1);
    for (; t->slots[j].scope != 0; j = (j + 1) & (t->cap - 1)) {
        const struct ynames_slot *e = &t->slots[j];
        /* an empty name has no bytes (the buffer may be unallocated) */
        if (e->scope == scope && e->hash == h && e->len == n &&
            (n == 0 || memcmp(t->bytes.data + e->off, p, n) == 0)) {
            return 1;
        }
    }
    if (!add) {
        return 0;
    }
    if (n > UINT32_MAX || buf_append(&t->bytes, p, n) < 0) {
        return -ENOMEM;
    }
    t->slots[j] = (struct ynames_slot){scope, h, (uint32_t)n, t->bytes.len - n};
    t->used++;
    return 0;
}

/* Would a plain scalar resolve to something other than a string (YAML
 * 1.1's null, bool, int and float forms, as SnakeYAML and PyYAML read
 * them)? Then "1" and 1 are different keys; otherwise a plain a and a
 * quoted "a" are the same string. A loose test: anything starting like a
 * number, or one of the words. */
static bool yaml_plain_not_string(const unsigned char *p, size_t n)
{
    static const char *const words[] = {
        "~",     "null",  "Null", "NULL", "true", "True", "TRUE", "false",
        "False", "FALSE", "yes",  "Yes",  "YES",  "no",   "No",   "NO",
        "on",    "On",    "ON",   "off",  "Off",  "OFF",  "y",    "Y",
        "n",     "N",     ".inf", ".Inf", ".INF", ".nan", ".NaN", ".NAN"};
    if (n == 0) {
        return true; /* an empty plain scalar is null */
    }
    for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
        if (strlen(words[k]) == n && memcmp(words[k], p, n) == 0) {
            return true;
        }
    }
    size_t k = (p[0] == '-' || p[0] == '+') ? 1 : 0;
    return k < n &&
           ((p[k] >= '0' && p[k] <= '9') ||
            (p[k] == '.' && k + 1 < n && p[k + 1] >= '0' && p[k + 1] <= '9'));
}

/* One level of the collection stack: a mapping's number and whether its
 * next node is a key. */
struct yframe {
    uint64_t map; /* 0: a sequence (or the document) */
    bool want_key;
};

static void yaml_error_at(struct cfg_error *err, const yaml_event_t *ev,
                          const char *fmt, const unsigned char *name, size_t n)
{
    if (err == NULL) {
        return;
    }
    snprintf(err->message, sizeof(err->message), fmt, (int)(n > 64 ? 64 : n),
             (const char *)name, n > 64 ? "..." : "");
    err->line = ev->start_mark.line < 0x7ffffffe ? (int)ev->start_mark.line + 1
                                                 : 0x7fffffff;
    err->column = ev->start_mark.column < 0x7ffffffe
                      ? (int)ev->start_mark.column + 1
                      : 0x7fffffff;
}

/* The checks libyaml's parser leaves to the application: a key repeated
 * in one mapping (always a mistake in a config: which one wins depends on
 * the reader, and SnakeYAML, which Spring uses, refuses it), and an alias
 * to an anchor not defined before it in the document. Only scalar keys are
 * compared; the merge key << may repeat. */
static int yaml_names_check(struct ynames *t, struct yframe *st, size_t depth,
                            uint64_t *maps, const yaml_event_t *ev,
                            struct cfg_error *err)
{
    struct yframe *top = depth > 0 ? &st[depth - 1] : NULL;
    bool is_key = false;
    int rc;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        /* Anchors are per document. */
        for (size_t k = 0; k < t->cap; k++) {
            t->slots[k].scope = 0;
        }
        t->used = 0;
        buf_reset(&t->bytes);
        return 0;
    case YAML_SCALAR_EVENT:
    case YAML_ALIAS_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT:
        if (top != NULL && top->map != 0) {
            is_key = top->want_key;
            top->want_key = !top->want_key;
        }
        break;
    default:
        return 0;
    }
    if (ev->type == YAML_ALIAS_EVENT) {
        const unsigned char *a = ev->data.alias.anchor;
        rc = ynames_add(t, UINT64_MAX, a, strlen((const char *)a), false);
        if (rc == 0) {
            yaml_error_at(err, ev, "alias *%.*s%s names no anchor before it", a,
                          strlen((const char *)a));
            return ERR_INVALID;
        }
        return rc < 0 ? rc : 0;
    }
    const unsigned char *anchor =
        ev->type == YAML_SCALAR_EVENT           ? ev->data.scalar.anchor
        : ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor
        : ev->type == YAML_MAPPING_START_EVENT  ? ev->data.mapping_start.anchor
                                                : NULL;
    if (anchor != NULL) {
        rc = ynames_add(t, UINT64_MAX, anchor, strlen((const char *)anchor),
                        true);
        if (rc < 0) {
            return rc;
        }
    }
    if (is_key && ev->type == YAML_SCALAR_EVENT) {
        const unsigned char *v = ev->data.scalar.value;
        size_t n = ev->data.scalar.length;
        bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ||
                     ev->data.scalar.style == YAML_ANY_SCALAR_STYLE;
        /* A plain key that is not a string lives in its own name space
         * (scope + 1 << 63), so "1" and 1 differ, and a and "a" do not. */
        uint64_t scope = top->map;
        if (plain && yaml_plain_not_string(v, n)) {
            scope |= (uint64_t)1 << 63;
        }
        if (!(plain && n == 2 && v[0] == '<' && v[1] == '<')) {
            rc = ynames_add(t, scope, v, n, true);
            if (rc == 1) {
                yaml_error_at(err, ev, "duplicate key \"%.*s%s\" in a mapping",
                              v, n);
                return ERR_INVALID;
            }
            if (rc < 0) {
                return rc;
            }
        }
    }
    if (ev->type == YAML_MAPPING_START_EVENT ||
        ev->type == YAML_SEQUENCE_START_EVENT) {
        /* The caller keeps depth within the stack (CFG_YAML_DEPTH_MAX). */
        st[depth].map = ev->type == YAML_MAPPING_START_EVENT ? ++*maps : 0;
        st[depth].want_key = true;
    }
    return 0;
}

/* Events of one parse, at most a few per input byte; the bound only makes
 * the loop's end obvious. */
static size_t yaml_events_max(size_t len)
{
    return 8 * len + 64;
}

static int validate_yaml(const char *content, size_t len, struct cfg_error *err)
{
    yaml_parser_t ps;
    int rc = 0;
    size_t depth = 0;
    uint64_t maps = 0;
    struct ynames names;
    struct yframe *st;
    st = mem_calloc(CFG_YAML_DEPTH_MAX + 1, sizeof(*st));
    if (st == NULL) {
        return -ENOMEM;
    }
    memset(&names, 0, sizeof(names));
    buf_init(&names.bytes, 2 * (size_t)CFG_CONTENT_MAX + 4096);
    if (yaml_parser_initialize(&ps) == 0) {
        mem_free(st);
        buf_free(&names.bytes);
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&ps, (const unsigned char *)content, len);
    yaml_parser_set_encoding(&ps, YAML_UTF8_ENCODING);
    for (size_t n = 0; rc == 0; n++) {
        yaml_event_t ev;
        if (n > yaml_events_max(len)) {
            cfg__error_at(err, content, len, 0, "too many YAML events");
            rc = ERR_LIMIT;
            break;
        }
        if (yaml_parser_parse(&ps, &ev) == 0) {
            rc = ps.error == YAML_MEMORY_ERROR ? -ENOMEM : ERR_INVALID;
            yaml_error(&ps, content, len, err);
            break;
        }
        yaml_event_type_t t = ev.type;
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT) {
            if (depth >= CFG_YAML_DEPTH_MAX) {
                depth++;
                rc = ERR_LIMIT;
                if (err != NULL) {
                    snprintf(err->message, sizeof(err->message),
                             "nested deeper than %d", CFG_YAML_DEPTH_MAX);
                    err->line = (int)ev.start_mark.line + 1;
                    err->column = (int)ev.start_mark.column + 1;
                }
            } else {
                rc = yaml_names_check(&names, st, depth, &maps, &ev, err);
                depth++;
            }
        } else if (t == YAML_SEQUENCE_END_EVENT ||
                   t == YAML_MAPPING_END_EVENT) {
            depth -= depth > 0;
        } else {
            rc = yaml_names_check(&names, st, depth, &maps, &ev, err);
        }
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&ps);
    mem_free(names.slots);
    buf_free(&names.bytes);
    mem_free(st);
    return rc;
}

/* ----------------------------------------------------------------- entry */

int cfg_validate(enum cfg_format f, const char *content, size_t len,
                 struct cfg_error *err)
{
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
        if (err != NULL) {
            snprintf(err->message, sizeof(err->message), "no content");
        }
        return ERR_INVALID;
    }
    if (content == NULL) {
        content = "";
    }
    rc = cfg__utf8_check(content, len, err);
    if (rc != 0) {
        return rc;
    }
    switch (f) {
    case CFG_FORMAT_TEXT:
        return 0;
    case CFG_FORMAT_JSON:
        return validate_json(content, len, err);
    case CFG_FORMAT_YAML:
        return validate_yaml(content, len, err);
    case CFG_FORMAT_PROPERTIES:
        return cfg_properties_parse(content, len, NULL, NULL, err);
    }
    if (err != NULL) {
        snprintf(err->message, sizeof(err->message), "unknown format %d",
                 (int)f);
    }
    return ERR_INVALID;
}

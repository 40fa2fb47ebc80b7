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
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <yaml.h>

#include "base/err.h"
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

/* Length of the well-formed UTF-8 sequence at p[0..left), or 0 (RFC 3629
 * section 4: the second byte's range depends on the first, which rules
 * out overlong forms, surrogates and code points past U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    size_t n;
    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (left < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return n;
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
        size_t n = utf8_seq(p + i, len - i);
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
    if (yaml_parser_initialize(&ps) == 0) {
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
            if (++depth > CFG_YAML_DEPTH_MAX) {
                rc = ERR_LIMIT;
                if (err != NULL) {
                    snprintf(err->message, sizeof(err->message),
                             "nested deeper than %d", CFG_YAML_DEPTH_MAX);
                    err->line = (int)ev.start_mark.line + 1;
                    err->column = (int)ev.start_mark.column + 1;
                }
            }
        } else if (t == YAML_SEQUENCE_END_EVENT ||
                   t == YAML_MAPPING_END_EVENT) {
            depth -= depth > 0;
        }
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT) {
            break;
        }
    }
    yaml_parser_delete(&ps);
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

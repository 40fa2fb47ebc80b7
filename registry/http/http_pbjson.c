/*
 * http_pbjson.c - JSON <-> protobuf for any protobuf-c message type, in the
 * mapping etcd's gateway uses (grpc-gateway v1, jsonpb with OrigName; see
 * shared/reference/etcd-api.md section 1.4 and the notes in http.h).
 *
 * Decoding parses the text with jansson (which bounds its own nesting at
 * 2048) and walks the tree against the message descriptor, writing
 * protobuf wire bytes directly: no protobuf-c structs are built, so the
 * result goes to api_call() exactly as a gRPC request would. Nested
 * messages are encoded into a child buffer and length-prefixed. Unknown
 * fields are skipped (etcd 3.4 ignores them); zero scalars outside a oneof
 * are not written, like a proto3 encoder; a oneof member is written even
 * when zero, because being set is its value.
 *
 * Encoding unpacks the bytes with protobuf-c and walks the struct in
 * descriptor (field number) order, printing what jsonpb prints: proto
 * names, 64-bit integers quoted, bytes in standard base64, enums by name,
 * zero values left out. Strings are escaped like Go's encoding/json (<, >,
 * & and U+2028/9 as \u escapes; invalid UTF-8 as U+FFFD), so text matches
 * etcd's byte for byte.
 *
 * Both walks recurse once per message level and stop at
 * HTTP_PBJSON_DEPTH_MAX, so input cannot choose the stack depth.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "registry/http/http_int.h"

/* ------------------------------------------------------------- base64 */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int http_base64_encode(const uint8_t *p, size_t len, struct buf *out)
{
    size_t olen = (len + 2) / 3 * 4;
    int rc = buf_reserve(out, olen);
    if (rc != 0) {
        return rc;
    }
    uint8_t *o = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = (uint8_t)b64_alphabet[v >> 18];
        *o++ = (uint8_t)b64_alphabet[(v >> 12) & 63];
        *o++ = (uint8_t)b64_alphabet[(v >> 6) & 63];
        *o++ = (uint8_t)b64_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        *o++ = (uint8_t)b64_alphabet[v >> 18];
        *o++ = (uint8_t)b64_alphabet[(v >> 12) & 63];
        *o++ = '=';
        *o++ = '=';
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        *o++ = (uint8_t)b64_alphabet[v >> 18];
        *o++ = (uint8_t)b64_alphabet[(v >> 12) & 63];
        *o++ = (uint8_t)b64_alphabet[(v >> 6) & 63];
        *o++ = '=';
    }
    ASSERT((size_t)(o - (out->data + out->len)) == olen);
    out->len += olen;
    return 0;
}

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Go's StdEncoding: groups of four, '=' padding only at the end; CR and
 * LF are skipped. *bad_at gets the offending input offset. */
static int b64_decode_at(const char *s, size_t len, struct buf *out,
                         size_t *bad_at)
{
    uint32_t acc = 0;
    size_t quad = 0; /* characters in the current group */
    size_t pad = 0;
    int rc = buf_reserve(out, len / 4 * 3 + 3);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int v;
        if (c == '\r' || c == '\n') {
            continue;
        }
        if (c == '=') {
            /* '=' allowed only as the 3rd/4th character of the last group */
            if (quad < 2) {
                *bad_at = i;
                return ERR_BAD_REQUEST;
            }
            pad++;
            quad++;
            if (quad == 4) {
                break;
            }
            continue;
        }
        if (pad > 0 || (v = b64_value(c)) < 0) {
            *bad_at = i;
            return ERR_BAD_REQUEST;
        }
        acc = acc << 6 | (uint32_t)v;
        if (++quad == 4) {
            out->data[out->len++] = (uint8_t)(acc >> 16);
            out->data[out->len++] = (uint8_t)(acc >> 8);
            out->data[out->len++] = (uint8_t)acc;
            acc = 0;
            quad = 0;
        }
    }
    if (pad > 0) {
        if (quad != 4) {
            *bad_at = len;
            return ERR_BAD_REQUEST;
        }
        /* anything after the padding (other than CR/LF) is an error */
        size_t i = (size_t)(memchr(s, '=', len) - (const void *)s) + pad;
        for (; i < len; i++) {
            if (s[i] != '\r' && s[i] != '\n') {
                *bad_at = i;
                return ERR_BAD_REQUEST;
            }
        }
        acc <<= 6 * pad;
        out->data[out->len++] = (uint8_t)(acc >> 16);
        if (pad == 1) {
            out->data[out->len++] = (uint8_t)(acc >> 8);
        }
        return 0;
    }
    if (quad != 0) {
        *bad_at = len;
        return ERR_BAD_REQUEST;
    }
    return 0;
}

int http_base64_decode(const char *s, size_t len, struct buf *out)
{
    size_t bad_at = 0;
    size_t before = out->len;
    int rc = b64_decode_at(s, len, out, &bad_at);
    if (rc != 0) {
        out->len = before;
    }
    return rc;
}

/* ------------------------------------------------- JSON -> wire bytes */

struct dec {
    char *msg;
    size_t msg_len;
};

static int bad(struct dec *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int bad(struct dec *d, const char *fmt, ...)
{
    va_list ap;
    if (d->msg != NULL && d->msg_len > 0) {
        va_start(ap, fmt);
        vsnprintf(d->msg, d->msg_len, fmt, ap);
        va_end(ap);
    }
    return ERR_BAD_REQUEST;
}

/* protoc's json_name: drop '_' and upper-case the letter after it. */
static bool json_name_eq(const char *proto, const char *key)
{
    bool up = false;
    for (; *proto != '\0'; proto++) {
        char c = *proto;
        if (c == '_') {
            up = true;
            continue;
        }
        if (up && c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        up = false;
        if (*key++ != c) {
            return false;
        }
    }
    return *key == '\0';
}

static const ProtobufCFieldDescriptor *
field_find(const ProtobufCMessageDescriptor *desc, const char *key)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(desc, key);
    if (f != NULL) {
        return f;
    }
    for (unsigned i = 0; i < desc->n_fields; i++) {
        if (json_name_eq(desc->fields[i].name, key)) {
            return &desc->fields[i];
        }
    }
    return NULL;
}

enum wire {
    WIRE_VARINT = 0,
    WIRE_64 = 1,
    WIRE_LEN = 2,
    WIRE_32 = 5,
};

static int put_tag(struct buf *out, uint32_t id, enum wire w)
{
    return buf_append_varint(out, (uint64_t)id << 3 | (uint64_t)w);
}

static int put_le32(struct buf *out, uint32_t v)
{
    uint8_t b[4];
    le32_put(b, v);
    return buf_append(out, b, 4);
}

static int put_le64(struct buf *out, uint64_t v)
{
    uint8_t b[8];
    le64_put(b, v);
    return buf_append(out, b, 8);
}

/* A JSON string's value as a C string, or NULL when it holds a NUL (then
 * it cannot be a number or an enum name). */
static const char *json_cstr(json_t *v)
{
    if (!json_is_string(v) ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        return NULL;
    }
    return json_string_value(v);
}

/* A decimal integer in a JSON string (jsonpb accepts quoted numbers for
 * every numeric type). */
static bool str_to_i64(const char *s, int64_t *out)
{
    char *end = NULL;
    if (*s == '\0' || *s == ' ' || (*s == '+' && s[1] == '-')) {
        return false;
    }
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static bool str_to_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    if (*s < '0' || *s > '9') {
        if (*s != '+' || s[1] < '0' || s[1] > '9') {
            return false;
        }
    }
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

static int get_i64(struct dec *d, const ProtobufCFieldDescriptor *f, json_t *v,
                   int64_t lo, int64_t hi, int64_t *out)
{
    int64_t x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_cstr(v) == NULL || !str_to_i64(json_cstr(v), &x)) {
        return bad(d, "field \"%s\": expected an integer", f->name);
    }
    if (x < lo || x > hi) {
        return bad(d, "field \"%s\": integer out of range", f->name);
    }
    *out = x;
    return 0;
}

static int get_u64(struct dec *d, const ProtobufCFieldDescriptor *f, json_t *v,
                   uint64_t hi, uint64_t *out)
{
    uint64_t x;
    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0) {
            return bad(d, "field \"%s\": integer out of range", f->name);
        }
        x = (uint64_t)json_integer_value(v);
    } else if (json_cstr(v) == NULL || !str_to_u64(json_cstr(v), &x)) {
        return bad(d, "field \"%s\": expected an unsigned integer", f->name);
    }
    if (x > hi) {
        return bad(d, "field \"%s\": integer out of range", f->name);
    }
    *out = x;
    return 0;
}

static int get_double(struct dec *d, const ProtobufCFieldDescriptor *f,
                      json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_cstr(v) != NULL) {
        const char *s = json_cstr(v);
        char *end = NULL;
        if (strcmp(s, "NaN") == 0) {
            *out = NAN;
            return 0;
        }
        if (strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0) {
            *out = s[0] == '-' ? -INFINITY : INFINITY;
            return 0;
        }
        errno = 0;
        *out = strtod(s, &end);
        if (*s != '\0' && errno == 0 && end != s && *end == '\0') {
            return 0;
        }
    }
    return bad(d, "field \"%s\": expected a number", f->name);
}

static int get_enum(struct dec *d, const ProtobufCFieldDescriptor *f, json_t *v,
                    int64_t *out)
{
    const ProtobufCEnumDescriptor *ed = f->descriptor;
    if (json_is_string(v)) {
        const ProtobufCEnumValue *ev =
            json_cstr(v) == NULL ? NULL
                                 : protobuf_c_enum_descriptor_get_value_by_name(
                                       ed, json_cstr(v));
        if (ev == NULL) {
            return bad(d, "unknown value \"%s\" for enum %s",
                       json_string_value(v), ed->name);
        }
        *out = ev->value;
        return 0;
    }
    if (json_is_integer(v)) {
        return get_i64(d, f, v, INT32_MIN, INT32_MAX, out);
    }
    return bad(d, "field \"%s\": expected an enum name or number", f->name);
}

static int dec_message(struct dec *d, const ProtobufCMessageDescriptor *desc,
                       json_t *obj, struct buf *out, unsigned depth);

/* A length-delimited value: bytes, string or a nested message. */
static int dec_len(struct dec *d, const ProtobufCFieldDescriptor *f, json_t *v,
                   bool keep_zero, struct buf *out, unsigned depth)
{
    struct buf child;
    int rc = 0;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        if (!json_is_string(v)) {
            return bad(d, "field \"%s\": expected a string", f->name);
        }
        size_t n = json_string_length(v);
        if (n == 0 && !keep_zero) {
            return 0;
        }
        rc = put_tag(out, f->id, WIRE_LEN);
        rc = rc != 0 ? rc : buf_append_varint(out, n);
        return rc != 0 ? rc : buf_append(out, json_string_value(v), n);
    }
    buf_init(&child, out->cap_max);
    if (f->type == PROTOBUF_C_TYPE_BYTES) {
        size_t bad_at = 0;
        if (!json_is_string(v)) {
            return bad(d, "field \"%s\": expected a base64 string", f->name);
        }
        rc = b64_decode_at(json_string_value(v), json_string_length(v), &child,
                           &bad_at);
        if (rc == ERR_BAD_REQUEST) {
            rc = bad(d, "field \"%s\": illegal base64 data at input byte %zu",
                     f->name, bad_at);
        }
    } else {
        ASSERT(f->type == PROTOBUF_C_TYPE_MESSAGE);
        if (!json_is_object(v)) {
            buf_free(&child);
            return bad(d, "field \"%s\": expected an object", f->name);
        }
        rc = dec_message(d, f->descriptor, v, &child, depth + 1);
        keep_zero = true; /* a message that is there is set, even empty */
    }
    if (rc == 0 && (child.len > 0 || keep_zero)) {
        rc = put_tag(out, f->id, WIRE_LEN);
        rc = rc != 0 ? rc : buf_append_varint(out, child.len);
        rc = rc != 0 ? rc : buf_append(out, child.data, child.len);
    }
    buf_free(&child);
    return rc;
}

/* One value of field f (an element, for repeated fields). keep_zero: write
 * it even when it is the zero value (oneof members, repeated elements). */
static int dec_value(struct dec *d, const ProtobufCFieldDescriptor *f,
                     json_t *v, bool keep_zero, struct buf *out, unsigned depth)
{
    int64_t i = 0;
    uint64_t u = 0;
    double x = 0;
    int rc;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        rc = get_i64(d, f, v, INT32_MIN, INT32_MAX, &i);
        u = f->type == PROTOBUF_C_TYPE_SINT32
                ? (uint64_t)(((uint32_t)i << 1) ^ (uint32_t)((int32_t)i >> 31))
                : (uint64_t)i;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        rc = get_i64(d, f, v, INT64_MIN, INT64_MAX, &i);
        u = f->type == PROTOBUF_C_TYPE_SINT64
                ? ((uint64_t)i << 1) ^ (uint64_t)(i >> 63)
                : (uint64_t)i;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = get_u64(d, f, v, UINT32_MAX, &u);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = get_u64(d, f, v, UINT64_MAX, &u);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v)) {
            return bad(d, "field \"%s\": expected true or false", f->name);
        }
        u = json_is_true(v) ? 1 : 0;
        rc = 0;
        break;
    case PROTOBUF_C_TYPE_ENUM:
        rc = get_enum(d, f, v, &i);
        u = (uint64_t)i;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        rc = get_double(d, f, v, &x);
        break;
    default:
        return dec_len(d, f, v, keep_zero, out, depth);
    }
    if (rc != 0) {
        return rc;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_FLOAT: {
        float fl = (float)x;
        uint32_t bits;
        memcpy(&bits, &fl, 4);
        if (fl == 0 && !signbit(fl) && !keep_zero) {
            return 0;
        }
        rc = put_tag(out, f->id, WIRE_32);
        return rc != 0 ? rc : put_le32(out, bits);
    }
    case PROTOBUF_C_TYPE_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &x, 8);
        if (x == 0 && !signbit(x) && !keep_zero) {
            return 0;
        }
        rc = put_tag(out, f->id, WIRE_64);
        return rc != 0 ? rc : put_le64(out, bits);
    }
    default:
        break;
    }
    if (u == 0 && !keep_zero) {
        return 0;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = put_tag(out, f->id, WIRE_32);
        return rc != 0 ? rc : put_le32(out, (uint32_t)u);
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = put_tag(out, f->id, WIRE_64);
        return rc != 0 ? rc : put_le64(out, u);
    default:
        rc = put_tag(out, f->id, WIRE_VARINT);
        return rc != 0 ? rc : buf_append_varint(out, u);
    }
}

static int dec_field(struct dec *d, const ProtobufCFieldDescriptor *f,
                     json_t *v, struct buf *out, unsigned depth)
{
    bool oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
    if (json_is_null(v)) {
        return 0; /* jsonpb: null leaves the field unset */
    }
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        bool keep = oneof || f->label == PROTOBUF_C_LABEL_REQUIRED ||
                    f->label == PROTOBUF_C_LABEL_OPTIONAL;
        return dec_value(d, f, v, keep, out, depth);
    }
    if (!json_is_array(v)) {
        return bad(d, "field \"%s\": expected an array", f->name);
    }
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *e = json_array_get(v, i);
        if (json_is_null(e)) {
            return bad(d, "field \"%s\": null in a repeated field", f->name);
        }
        int rc = dec_value(d, f, e, true, out, depth);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int dec_message(struct dec *d, const ProtobufCMessageDescriptor *desc,
                       json_t *obj, struct buf *out, unsigned depth)
{
    const char *key;
    json_t *v;
    ASSERT(json_is_object(obj));
    ASSERT(desc->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    if (depth > HTTP_PBJSON_DEPTH_MAX) {
        return bad(d, "messages nested deeper than %d levels",
                   HTTP_PBJSON_DEPTH_MAX);
    }
    json_object_foreach(obj, key, v)
    {
        const ProtobufCFieldDescriptor *f = field_find(desc, key);
        int rc;
        if (f == NULL) {
            continue; /* etcd's gateway ignores unknown fields */
        }
        rc = dec_field(d, f, v, out, depth);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int http_pbjson_decode(const ProtobufCMessageDescriptor *desc, const char *json,
                       size_t len, struct buf *out, char *msg, size_t msg_len)
{
    struct dec d = {msg, msg_len};
    json_error_t jerr;
    json_t *root;
    size_t i = 0;
    int rc;
    if (msg != NULL && msg_len > 0) {
        msg[0] = '\0';
    }
    while (i < len && (json[i] == ' ' || json[i] == '\t' || json[i] == '\n' ||
                       json[i] == '\r')) {
        i++;
    }
    if (i == len) {
        return 0; /* an empty body is the empty request, as in etcd */
    }
    root = json_loadb(json, len,
                      JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK | JSON_ALLOW_NUL,
                      &jerr);
    if (root == NULL) {
        return bad(&d, "invalid JSON: %s (line %d, column %d)", jerr.text,
                   jerr.line, jerr.column);
    }
    if (json_is_null(root)) {
        rc = 0;
    } else if (!json_is_object(root)) {
        rc = bad(&d, "expected a JSON object for %s", desc->name);
    } else {
        rc = dec_message(&d, desc, root, out, 1);
    }
    json_decref(root);
    return rc;
}

/* ------------------------------------------------- wire bytes -> JSON */

struct w {
    struct buf *b;
    int err;
};

static void w_put(struct w *w, const void *p, size_t n)
{
    if (w->err == 0) {
        w->err = buf_append(w->b, p, n);
    }
}

static void w_str(struct w *w, const char *s)
{
    w_put(w, s, strlen(s));
}

static void w_fmt(struct w *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void w_fmt(struct w *w, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    ASSERT(n >= 0 && (size_t)n < sizeof(tmp));
    w_put(w, tmp, (size_t)n);
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when invalid. */
static size_t utf8_len(const uint8_t *p, size_t n)
{
    size_t need;
    uint32_t cp;
    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        need = 2;
        cp = p[0] & 0x1fu;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        need = 3;
        cp = p[0] & 0x0fu;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        need = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (n < need) {
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0; /* overlong, out of range, or a surrogate */
    }
    return need;
}

static void w_json_string(struct w *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    w_put(w, "\"", 1);
    while (i < n && w->err == 0) {
        uint8_t c = p[i];
        size_t run = i;
        /* copy the longest run of characters that need no escape */
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' &&
               p[run] != '\\' && p[run] != '<' && p[run] != '>' &&
               p[run] != '&') {
            run++;
        }
        if (run > i) {
            w_put(w, p + i, run - i);
            i = run;
            continue;
        }
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            w_put(w, e, 2);
            i++;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            w_str(w, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t");
            i++;
        } else if (c < 0x80) {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            w_put(w, e, 6);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                w_str(w, "\\ufffd");
                i++;
            } else if (l == 3 && p[i] == 0xe2 && p[i + 1] == 0x80 &&
                       (p[i + 2] == 0xa8 || p[i + 2] == 0xa9)) {
                w_str(w, p[i + 2] == 0xa8 ? "\\u2028" : "\\u2029");
                i += 3;
            } else {
                w_put(w, p + i, l);
                i += l;
            }
        }
    }
    w_put(w, "\"", 1);
}

int http__json_quote(struct buf *out, const char *s, size_t n)
{
    struct w w = {out, 0};
    w_json_string(&w, s, n);
    return w.err;
}

static void w_double(struct w *w, double x, bool is_float)
{
    if (isnan(x)) {
        w_str(w, "\"NaN\"");
    } else if (isinf(x)) {
        w_str(w, x > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    } else {
        w_fmt(w, is_float ? "%.9g" : "%.17g", x);
    }
}

static int enc_message(struct w *w, const ProtobufCMessage *m, unsigned depth);

/* One value of field f stored at p (the member, or an array element). */
static void enc_value(struct w *w, const ProtobufCFieldDescriptor *f,
                      const void *p, unsigned depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        w_fmt(w, "%" PRId32, *(const int32_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        w_fmt(w, "%" PRIu32, *(const uint32_t *)p);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        w_fmt(w, "\"%" PRId64 "\"", *(const int64_t *)p);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        w_fmt(w, "\"%" PRIu64 "\"", *(const uint64_t *)p);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        w_double(w, *(const float *)p, true);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        w_double(w, *(const double *)p, false);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        w_str(w, *(const protobuf_c_boolean *)p ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        if (ev != NULL) {
            w_json_string(w, ev->name, strlen(ev->name));
        } else {
            w_fmt(w, "%d", v); /* jsonpb prints unknown values as numbers */
        }
        break;
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        w_json_string(w, s != NULL ? s : "", s != NULL ? strlen(s) : 0);
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *bd = p;
        w_put(w, "\"", 1);
        if (w->err == 0 && bd->len > 0) {
            w->err = http_base64_encode(bd->data, bd->len, w->b);
        }
        w_put(w, "\"", 1);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub == NULL) {
            w_str(w, "{}");
        } else if (w->err == 0) {
            w->err = enc_message(w, sub, depth + 1);
        }
        break;
    }
    }
}

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

/* Does a singular field have a value jsonpb would print? */
static bool field_present(const ProtobufCMessage *m,
                          const ProtobufCFieldDescriptor *f)
{
    const char *base = (const char *)m;
    const void *p = base + f->offset;
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0) {
        return *(const uint32_t *)(base + f->quantifier_offset) == f->id;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(ProtobufCMessage *const *)p != NULL;
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return s != NULL && (f->label != PROTOBUF_C_LABEL_NONE || *s != '\0');
    }
    default:
        break;
    }
    if (f->label == PROTOBUF_C_LABEL_REQUIRED) {
        return true;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
        return *(const protobuf_c_boolean *)(base + f->quantifier_offset);
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)p != 0;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)p != 0;
    default: {
        /* integers, bools and enums: any nonzero byte */
        const uint8_t *b = p;
        for (size_t i = 0; i < elem_size(f->type); i++) {
            if (b[i] != 0) {
                return true;
            }
        }
        return false;
    }
    }
}

static int enc_message(struct w *w, const ProtobufCMessage *m, unsigned depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    bool first = true;
    ASSERT(d->magic == PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC);
    if (depth > HTTP_PBJSON_DEPTH_MAX) {
        return ERR_LIMIT;
    }
    w_put(w, "{", 1);
    for (unsigned i = 0; i < d->n_fields && w->err == 0; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        size_t n = 1;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)(base + f->quantifier_offset);
            if (n == 0) {
                continue;
            }
        } else if (!field_present(m, f)) {
            continue;
        }
        w_str(w, first ? "\"" : ",\"");
        w_str(w, f->name);
        w_str(w, "\":");
        first = false;
        if (f->label != PROTOBUF_C_LABEL_REPEATED) {
            enc_value(w, f, base + f->offset, depth);
            continue;
        }
        const char *arr = *(char *const *)(base + f->offset);
        size_t sz = elem_size(f->type);
        w_put(w, "[", 1);
        for (size_t k = 0; k < n && w->err == 0; k++) {
            if (k > 0) {
                w_put(w, ",", 1);
            }
            enc_value(w, f, arr + k * sz, depth);
        }
        w_put(w, "]", 1);
    }
    w_put(w, "}", 1);
    return w->err;
}

int http_pbjson_write(const ProtobufCMessage *msg, struct buf *out)
{
    struct w w = {out, 0};
    ASSERT(msg != NULL);
    return enc_message(&w, msg, 1);
}

static void *pb_alloc(void *ctx, size_t size)
{
    (void)ctx;
    return mem_alloc(size);
}

static void pb_free(void *ctx, void *p)
{
    (void)ctx;
    mem_free(p);
}

ProtobufCAllocator *http__pb_allocator(void)
{
    /* never written: protobuf-c only takes the pointer as non-const */
    static ProtobufCAllocator a = {pb_alloc, pb_free, NULL};
    return &a;
}

int http_pbjson_encode(const ProtobufCMessageDescriptor *desc,
                       const uint8_t *pb, size_t len, struct buf *out)
{
    ProtobufCAllocator *a = http__pb_allocator();
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, a, len, pb);
    int rc;
    if (m == NULL) {
        return ERR_BAD_REQUEST;
    }
    rc = http_pbjson_write(m, out);
    protobuf_c_message_free_unpacked(m, a);
    return rc;
}

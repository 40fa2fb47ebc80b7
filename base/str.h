/*
 * str.h - string building without printf's machinery, for hot paths.
 *
 * Does:     str_join concatenates strings into a bounded buffer the way
 *           snprintf("%s%s..") would; str_hex_u64 writes an unsigned
 *           integer in lower-case hex as "%" PRIx64 does, str_dec_i64 a
 *           signed one in decimal as "%" PRId64 does; str_utf8_safe
 *           makes text well-formed UTF-8 for JSON.
 * Owns:     nothing.
 * Threads:  any.
 * Borrowed: nothing is kept.
 * Errors:   none: output is cut to the buffer, as snprintf cuts it.
 * Limits:   str_hex_u64 writes at most STR_HEX_U64_BYTES bytes,
 *           str_dec_i64 at most STR_DEC_I64_BYTES.
 * Not here: formatting of anything but strings and hex (use snprintf).
 */
#ifndef CAIRN_BASE_STR_H
#define CAIRN_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 16 digits and the terminating NUL */
#define STR_HEX_U64_BYTES 17
/* a sign, 19 digits and the terminating NUL */
#define STR_DEC_I64_BYTES 21

/* The strings up to a NULL, concatenated into out and cut to cap - 1
 * bytes (NUL-terminated when cap > 0); returns the whole length, as
 * snprintf counts it, so a result >= cap means it was cut. */
size_t str_join(char *out, size_t cap, ...);

/* Whether the comma-separated list holds name[0..len) as one of its
 * elements, exactly (no trimming; an empty element matches len 0). */
bool str_list_has(const char *list, const char *name, size_t len);

/* x in lower-case hex, no leading zeros ("0" for 0), NUL-terminated;
 * out holds at least STR_HEX_U64_BYTES bytes. Returns the digits. */
size_t str_hex_u64(uint64_t x, char *out);

/* x in decimal ("-" first when negative), NUL-terminated; out holds at
 * least STR_DEC_I64_BYTES bytes. Returns the bytes written before NUL. */
size_t str_dec_i64(int64_t x, char *out);

/* Length of the well-formed UTF-8 sequence at p[0..left), or 0 (RFC 3629
 * section 4: no overlong forms, surrogates or code points past U+10FFFF). */
size_t str_utf8_seq(const unsigned char *p, size_t left);

/* s itself when it is well-formed UTF-8; else a copy in tmp (cap > 0
 * bytes) with each byte that starts no well-formed sequence replaced by
 * '?', cut at a sequence's end to cap - 1 bytes. For text that may carry
 * input bytes (a parser's message quoting its input) on its way into
 * JSON, which jansson refuses to build or write unless it is UTF-8. */
const char *str_utf8_safe(const char *s, char *tmp, size_t cap);

#endif

/*
 * jscan.h - the plain pieces of JSON text, scanned in place.
 *
 * Does:     skips JSON whitespace; takes a string with no escape and only
 *           printable ASCII; takes an integer as JSON writes one, of at
 *           most 18 digits (so it fits an int64_t without overflow). The
 *           readers that build nothing for the common shapes (a
 *           subscriber's ack, a registry document's peek, the plain JSON
 *           reader) share these, and hand anything else to jansson.
 * Owns:     nothing.
 * Threads:  any.
 * Borrowed: strings point into the text.
 * Errors:   NULL when the text at p is not that plain piece.
 * Not here: escapes, non-ASCII, fractions and exponents (jansson reads
 *           them).
 */
#ifndef CAIRN_BASE_JSCAN_H
#define CAIRN_BASE_JSCAN_H

#include <stddef.h>
#include <stdint.h>

/* The first byte at or after p that is not JSON whitespace (e if none). */
const char *jscan_ws(const char *p, const char *e);

/* A plain string at p (its opening quote): *s, *n its bytes. Returns the
 * byte after the closing quote, or NULL. */
const char *jscan_str(const char *p, const char *e, const char **s, size_t *n);

/* An integer at p (no leading zero, not followed by a fraction or an
 * exponent, at most 18 digits) into *v. Returns the byte after it, or
 * NULL. */
const char *jscan_int(const char *p, const char *e, int64_t *v);

#endif

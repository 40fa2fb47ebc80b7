/*
 * jscan.h - the plain pieces of JSON text, scanned in place.
 *
 * Does:     skips JSON whitespace; takes a string with no escape and only
 *           printable ASCII; takes an integer as JSON writes one, of at
 *           most 18 digits (so it fits an int64_t without overflow). The
 *           readers that build nothing for the common shapes (a
 *           subscriber's ack, a registry document's peek, the plain JSON
 *           reader) share these, and hand anything else to jansson.
 *           Writes a real in the fewest digits that read back as it
 *           (jscan_real), for the writer of every registry and config text.
 * Owns:     nothing.
 * Threads:  any.
 * Borrowed: strings point into the text.
 * Errors:   NULL when the text at p is not that plain piece.
 * Not here: reading escapes, non-ASCII, fractions and exponents
 *           (jansson reads them).
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

/* Room for any double's text from jscan_real, its NUL included. */
#define JSCAN_REAL_MAX 32

/* x (finite) as JSON text in out[JSCAN_REAL_MAX], in the fewest
 * significant digits (at most 17) that read back as x: 0.3, not jansson's
 * 0.29999999999999999, as Go's, Python's and JavaScript's encoders write
 * it; an exponent below 17 written out (100.0, not 1e2). Otherwise
 * jansson's form: a "." or an exponent always (1.0, not 1, which reads
 * back as an integer), no "+" and no leading zero in the exponent (1e-5,
 * 1e300). Returns the text's length (0 only for a non-finite x). */
size_t jscan_real(char *out, double x);

#endif

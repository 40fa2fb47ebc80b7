/*
 * config.h - the config center's pure library: content validation, unified
 * diffs between versions, gray-release rules and names.
 *
 * Does:     checks a document in one of four formats (YAML, JSON, Java
 *           .properties, text) and says where it is wrong; writes GNU
 *           `diff -u` output between two versions; parses and evaluates
 *           gray-release rules (labels or a sticky percentage of clients).
 * Owns:     nothing between calls. Each call frees what it allocated
 *           (through base/alloc.h and the libraries' own allocators).
 * Threads:  every function may be called from any thread at once; there
 *           is no shared state.
 * Borrowed: inputs are read during the call only; pointers handed to a
 *           cfg_prop_fn live until that callback returns.
 * Errors:   0 or a negative code from base/err.h: ERR_INVALID (content
 *           refused, *err says where), ERR_LIMIT (past a bound below),
 *           ERR_BAD_REQUEST (a rule or label string, msg names the field),
 *           -ENOMEM. Never an assertion on input.
 * Limits:   CFG_CONTENT_MAX bytes of content (validate, parse, each side of
 *           a diff), CFG_DIFF_COST_MAX diff work units, CFG_YAML_DEPTH_MAX
 *           YAML nesting, CFG_LABELS_MAX labels of CFG_LABEL_KEY_MAX /
 *           CFG_LABEL_VALUE_MAX bytes, CFG_NAME_MAX name bytes.
 * Not here: storage layout, releases, history and the REST API (registry/),
 *           pushing changes to subscribers (consensus/watch, registry/http).
 */
#ifndef CAIRN_CONFIG_H
#define CAIRN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "base/buf.h"

/* Largest document the config center stores: 1 MiB. Bounds the memory of
 * a validation (jansson builds the JSON tree: up to a few tens of bytes
 * per input byte for arrays of small numbers; libyaml keeps only events)
 * and of a diff (about 45 bytes per input line plus 64 per distinct line:
 * under 40 MiB measured for two 1 MiB inputs of short lines). */
#define CFG_CONTENT_MAX 1048576

/* Work budget of one cfg_diff (diagonals searched, lines compared along
 * them, hash probes). Measured at 0.3 to 1.2 s of one slow core when
 * spent whole (two 1 MiB inputs differing everywhere): a caller on an
 * event loop should diff large documents off the loop thread. Past it
 * the rest of the diff is coarse (still correct, see cfg_diff). */
#define CFG_DIFF_COST_MAX ((unsigned long long)1 << 27)

/* Lines of context around each change in a hunk, as `diff -u`. */
#define CFG_DIFF_CONTEXT 3

/* YAML collections nested deeper than this are refused (libyaml keeps a
 * stack per level; real configs nest a few tens deep). */
#define CFG_YAML_DEPTH_MAX 512

#define CFG_NAME_MAX        128
#define CFG_LABELS_MAX      32
#define CFG_LABEL_KEY_MAX   63
#define CFG_LABEL_VALUE_MAX 63
#define CFG_MSG_MAX         256

enum cfg_format {
    CFG_FORMAT_TEXT = 0,
    CFG_FORMAT_JSON = 1,
    CFG_FORMAT_YAML = 2,
    CFG_FORMAT_PROPERTIES = 3,
};
#define CFG_FORMAT_COUNT 4

/* Where and why content was refused. line and column are 1-based; column
 * counts characters (code points), not bytes. Lines end at "\n", "\r\n"
 * or a lone "\r". message is NUL-terminated. line == column == 0 when the
 * problem has no place (content too large). */
struct cfg_error {
    char message[256];
    int line;
    int column;
};

/* Format by name: "yaml" (also "yml"), "json", "properties", "text"
 * (also "txt"); ASCII case-insensitive. name must be NUL-terminated.
 * Errors: ERR_INVALID for any other name (*out untouched). */
int cfg_format_parse(const char *name, enum cfg_format *out);

/* Canonical lower-case name of f ("yaml", ...); "unknown" when out of
 * range. Static storage. */
const char *cfg_format_name(enum cfg_format f);

/*
 * Check content[0..len) as format f. Every format must be valid UTF-8
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF) and
 * hold no NUL byte; then:
 *   text        nothing more.
 *   json        one JSON value of any kind (RFC 8259) read by jansson;
 *               an object with a repeated key is refused: in a config it
 *               is always a mistake (which one wins depends on the
 *               reader). Integers of any size are accepted; a number
 *               beyond a double's range (1e400) is refused.
 *   yaml        libyaml's parser over every document of the stream (so
 *               "---" separated files pass), collections nested at most
 *               CFG_YAML_DEPTH_MAX deep; a scalar key repeated in one
 *               mapping is refused (as SnakeYAML does; a plain a and a
 *               quoted "a" are the same key, a plain 1 and "1" are not;
 *               the merge key << may repeat), and so is an alias to an
 *               anchor not defined before it in its document.
 *   properties  java.util.Properties.load(Reader) rules (cfg_properties_
 *               parse); the only error is a malformed \uXXXX escape.
 * content may be NULL when len is 0. err may be NULL; otherwise it is
 * always written (message "" on success).
 * Errors: ERR_INVALID (bad content, *err says what and where),
 * ERR_LIMIT (len > CFG_CONTENT_MAX or too deep), -ENOMEM.
 */
int cfg_validate(enum cfg_format f, const char *content, size_t len,
                 struct cfg_error *err);

/* One decoded key/value pair of a .properties document: key and value are
 * UTF-8, not NUL-terminated, borrowed until the callback returns; they may
 * hold NUL bytes (from \u0000). line is the 1-based line where the logical
 * line starts. A nonzero return stops the parse and is returned by
 * cfg_properties_parse. */
typedef int (*cfg_prop_fn)(void *ctx, const char *key, size_t key_len,
                           const char *value, size_t value_len, int line);

/*
 * Parse content as java.util.Properties.load(Reader) does (Java SE 17
 * javadoc of Properties.load(Reader)) and call fn for each pair in file
 * order (a later duplicate key replaces an earlier one in Java; both are
 * reported here). The content must be valid UTF-8 without NUL bytes.
 * \uXXXX escapes produce UTF-16 units; a surrogate pair becomes one UTF-8
 * character and an unpaired surrogate becomes U+FFFD (Java keeps it in the
 * String; it has no UTF-8 form). fn may be NULL (validation only).
 * Errors: ERR_INVALID (bad UTF-8, NUL, or "Malformed \uxxxx encoding." at
 * the escape's backslash; pairs before it were reported), ERR_LIMIT,
 * -ENOMEM, or fn's nonzero return.
 */
int cfg_properties_parse(const char *content, size_t len, cfg_prop_fn fn,
                         void *ctx, struct cfg_error *err);

/*
 * Append to out the unified diff from a[0..alen) to b[0..blen), byte for
 * byte what GNU `diff -u --label label_a --label label_b` prints for the
 * same two files in the common case: "--- label_a", "+++ label_b", hunks
 * "@@ -l,s +l,s @@" with CFG_DIFF_CONTEXT lines of context, ",s" left out
 * when s is 1, "l-1,0" for an empty range, "\ No newline at end of file"
 * after a last line without one. Identical inputs append nothing. The
 * script is minimal (Myers' O(ND) algorithm, with GNU's ways of choosing
 * among equally short scripts) unless the work passes CFG_DIFF_COST_MAX:
 * then each part not yet compared is shown as deleted and inserted whole,
 * which is still a correct patch, only longer. GNU's own heuristics for
 * lines that recur very often can make it choose another (equally
 * correct) alignment; see tests/unit/config/test_cfg_diff.c.
 * Lines are split after each "\n" only; bytes are compared exactly.
 * a, b may be NULL when their length is 0; labels are NUL-terminated
 * and must not contain "\n".
 * Errors: ERR_LIMIT (an input past CFG_CONTENT_MAX, or out's cap),
 * -ENOMEM; on error out->len is what it was at the call.
 */
int cfg_diff(const char *a, size_t alen, const char *b, size_t blen,
             const char *label_a, const char *label_b, struct buf *out);

/* A client's labels, or a rule's: keys unique, in the order given. */
struct cfg_label {
    char key[CFG_LABEL_KEY_MAX + 1];
    char value[CFG_LABEL_VALUE_MAX + 1];
};

struct cfg_labels {
    unsigned count;
    struct cfg_label items[CFG_LABELS_MAX];
};

/*
 * Parse the query form "k=v,k2=v2" (s[0..len), not NUL-terminated) into
 * *out. Keys are 1..CFG_LABEL_KEY_MAX bytes and values 0..CFG_LABEL_VALUE_
 * MAX bytes of [A-Za-z0-9._/-]; no spaces; at most CFG_LABELS_MAX labels;
 * no key twice. An empty string is no labels.
 * Errors: ERR_BAD_REQUEST, with msg (msg_len bytes, may be 0) naming the
 * label; *out is then empty.
 */
int cfg_labels_parse(const char *s, size_t len, struct cfg_labels *out,
                     char *msg, size_t msg_len);

/* The value of key in l, or NULL. Borrowed from l. */
const char *cfg_labels_get(const struct cfg_labels *l, const char *key);

/* {"k":"v",...} in l's order: a new reference, NULL on out of memory. */
json_t *cfg_labels_to_json(const struct cfg_labels *l);

/*
 * A gray-release rule. JSON forms (the object holds exactly one field):
 *   {"labels":{"k":"v",...}}  clients whose labels include every pair;
 *                             1..CFG_LABELS_MAX pairs, names as above.
 *   {"percentage":P}          P in 0..100 with at most two decimals
 *                             (12, 12.5, 0.25): clients whose bucket
 *                             (cfg_gray_bucket) is below P * 100.
 */
enum cfg_gray_kind {
    CFG_GRAY_LABELS = 1,
    CFG_GRAY_PERCENTAGE = 2,
};

struct cfg_gray_rule {
    enum cfg_gray_kind kind;
    unsigned basis_points; /* percentage: P * 100, 0..10000 */
    struct cfg_labels labels;
};

/*
 * Parse rule (borrowed, not kept) into *out. Unknown fields, both fields
 * or neither, a non-object, an empty "labels", a non-string value, a
 * percentage outside 0..100 or with more than two decimals are refused.
 * Errors: ERR_BAD_REQUEST with msg naming the field ("percentage: must be
 * a number from 0 to 100 with at most two decimals").
 */
int cfg_gray_rule_parse(json_t *rule, struct cfg_gray_rule *out, char *msg,
                        size_t msg_len);

/* The JSON form of r (as cfg_gray_rule_parse reads it; a percentage is an
 * integer when whole, else a real): new reference, NULL on out of memory. */
json_t *cfg_gray_rule_to_json(const struct cfg_gray_rule *r);

/*
 * Sticky bucket of a client for a config: the first 8 bytes of
 * SHA-256(config_id || 0x00 || client_id), big-endian, mod 10000. The same
 * pair always gets the same bucket on every member and release; different
 * configs spread a client differently. Both strings NUL-terminated.
 */
unsigned cfg_gray_bucket(const char *config_id, const char *client_id);

/*
 * Does the client fall in rule r? Labels: every rule label is present in
 * client_labels (may be NULL: none) with an equal value. Percentage:
 * client_id is non-NULL and non-empty and its bucket < basis_points (so 0
 * matches nobody and 100 everybody with an id). A client without an id
 * never matches a percentage rule: it could not stay in its bucket.
 */
bool cfg_gray_match(const struct cfg_gray_rule *r, const char *config_id,
                    const char *client_id,
                    const struct cfg_labels *client_labels);

/* A namespace, app or config name: 1..CFG_NAME_MAX bytes of
 * [A-Za-z0-9._-], not "." nor "..". */
bool cfg_name_ok(const char *s, size_t len);

#endif

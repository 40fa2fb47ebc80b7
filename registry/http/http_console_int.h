/*
 * http_console_int.h - private to registry/http: the web console's files,
 * compiled into cairnd, and the handler that serves them under /ui/.
 *
 * Does: answers GET /ui and /ui/<file> from a table generated at build
 * time (scripts/embed_ui.sh turns web/ui/ into $(B)/gen/web/ui_files.c).
 * Owns: nothing; the table is constant data in the binary.
 * Threads: the loop thread (lws callbacks), like the rest of registry/http.
 * Borrowed: every pointer in the table lives as long as the program.
 * Errors: what http__respond returns (-ENOMEM); 404 and 405 are answers.
 * Limits: a file is answered from one copy into the connection's response
 * buffer, so files stay small (the whole console is tens of KiB).
 * Not here: the console's JavaScript, which talks only to the public APIs
 * (/v3/... gateway, /api/v1/, /metrics); docs/console.md.
 */
#ifndef CAIRN_REGISTRY_HTTP_CONSOLE_INT_H
#define CAIRN_REGISTRY_HTTP_CONSOLE_INT_H

#include <stdbool.h>
#include <stddef.h>

/* One embedded file: its path under web/ui/ ("index.html", "js/app.js"),
 * its bytes (data[len] is a NUL the generator adds), and a strong ETag
 * (a quoted prefix of the content's SHA-256). */
struct console_file {
    const char *name;
    const unsigned char *data;
    size_t len;
    const char *etag;
};

/* The generated table, sorted by name. */
extern const struct console_file console_files[];
extern const size_t console_files_count;

/* Is path one the console answers ("/ui" or under "/ui/")? */
bool http__console_path(const char *path);

struct http_conn;

/* Answer a console request (path as http__console_path accepted, meth an
 * lws method). With --enable-console=false every console path is 404, as
 * if the console were not there. Returns 0 when answered, else an error
 * from http__respond (the caller closes the connection). */
int http__console_route(struct http_conn *c, const char *path, int meth);

#endif

/*
 * http_console.c - the web console's static files under /ui/ on the client
 * port (plain and TLS alike: both reach route() in http_server.c).
 *
 * Happy path. GET /ui/<name> finds <name> in the table the build generated
 * from web/ui/ (http_console_int.h) and answers it with its Content-Type
 * (by extension), a strong ETag and "Cache-Control: no-cache": the browser
 * keeps its copy and revalidates it, so a request with a matching
 * If-None-Match gets 304 and no body, and a new cairnd binary (new file
 * contents, new ETag) is never hidden behind a stale cache. GET /ui/ is
 * index.html; /ui (no slash) redirects to /ui/ so that the page's relative
 * URLs resolve under /ui/.
 *
 * Failure modes. A name not in the table is 404 (names are looked up, never
 * used as file paths, so "/ui/../x" cannot leave the table); a method
 * other than GET is 405 with "Allow: GET"; with --enable-console=false
 * every path here is 404, as if there were no console. The files need no
 * auth, as /version does not: they are the same public bytes for everyone,
 * and every call the console makes carries the user's token to the APIs,
 * which check it.
 */
#include <stdio.h>
#include <string.h>

#include "base/assert.h"
#include "registry/http/http_console_int.h"
#include "registry/http/http_int.h"
#include "registry/server/options.h"

#define CONSOLE_PREFIX "/ui/"

/* Content types by file extension; what is not here is served as bytes. */
static const struct {
    const char *ext;
    const char *ctype;
} ctypes[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"}, /* RFC 9239 */
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *ctype_of(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot == NULL) {
        return "application/octet-stream";
    }
    for (size_t i = 0; i < sizeof(ctypes) / sizeof(ctypes[0]); i++) {
        if (strcmp(dot, ctypes[i].ext) == 0) {
            return ctypes[i].ctype;
        }
    }
    return "application/octet-stream";
}

static const struct console_file *file_find(const char *name)
{
    for (size_t i = 0; i < console_files_count; i++) {
        if (strcmp(console_files[i].name, name) == 0) {
            return &console_files[i];
        }
    }
    return NULL;
}

/* Does the request's If-None-Match name etag (or "*")? Weak comparison,
 * as RFC 9110 section 13.1.2 asks for If-None-Match: W/"x" matches "x". A
 * header longer than the buffer is treated as no match (a 200 is always a
 * correct answer). */
static bool not_modified(struct lws *wsi, const char *etag)
{
    char inm[256];
    if (lws_hdr_copy(wsi, inm, sizeof(inm), WSI_TOKEN_HTTP_IF_NONE_MATCH) <=
        0) {
        return false;
    }
    if (strcmp(inm, "*") == 0) {
        return true;
    }
    return strstr(inm, etag) != NULL; /* etag is quoted: no partial hit */
}

static bool console_enabled(const struct http_conn *c)
{
    const struct options *o = c->h->s->opt;
    return o == NULL || o->enable_console;
}

bool http__console_path(const char *path)
{
    return strcmp(path, "/ui") == 0 ||
           strncmp(path, CONSOLE_PREFIX, strlen(CONSOLE_PREFIX)) == 0;
}

int http__console_route(struct http_conn *c, const char *path, int meth)
{
    static const char moved[] = "Moved Permanently: /ui/\n";
    static const char missing[] = "404 page not found\n";
    const struct console_file *f;
    const char *name;
    ASSERT(http__console_path(path));
    if (!console_enabled(c)) {
        return http__respond(c, 404, "text/plain; charset=utf-8", missing,
                             sizeof(missing) - 1);
    }
    if (meth != LWSHUMETH_GET && meth != LWSHUMETH_HEAD) {
        return http__respond(c, 405, "text/plain; charset=utf-8",
                             "Method Not Allowed\n", 19);
    }
    if (strcmp(path, "/ui") == 0) {
        c->location = CONSOLE_PREFIX;
        return http__respond(c, 301, "text/plain; charset=utf-8", moved,
                             sizeof(moved) - 1);
    }
    name = path + strlen(CONSOLE_PREFIX);
    f = file_find(name[0] == '\0' ? "index.html" : name);
    if (f == NULL) {
        return http__respond(c, 404, "text/plain; charset=utf-8", missing,
                             sizeof(missing) - 1);
    }
    ASSERT(f->etag[0] == '"');
    snprintf(c->etag, sizeof(c->etag), "%s", f->etag);
    c->cache_control = "no-cache";
    if (not_modified(c->wsi, f->etag)) {
        return http__respond(c, 304, NULL, "", 0);
    }
    return http__respond(c, 200, ctype_of(f->name), f->data, f->len);
}

/*
 * test_http_console.c - the web console's files as the build embedded them
 * (scripts/embed_ui.sh -> console_files[], http_console_int.h).
 * Goal: the table http_console.c looks names up in is well formed: names
 * unique, in byte order, relative (no leading '/', no ".."), index.html and
 * the entry module present, every file NUL-terminated after its length,
 * every ETag a quoted 16-hex-digit string, different files with different
 * ETags; and only /ui and /ui/... are console paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "registry/http/http_console_int.h"
#include "test_http_console.h"

static const struct console_file *find(const char *name)
{
    for (size_t i = 0; i < console_files_count; i++) {
        if (strcmp(console_files[i].name, name) == 0) {
            return &console_files[i];
        }
    }
    return NULL;
}

static void console_table_is_well_formed(void **state)
{
    (void)state;
    assert_true(console_files_count >= 2);
    assert_non_null(find("index.html"));
    assert_non_null(find("js/app.js"));
    for (size_t i = 0; i < console_files_count; i++) {
        const struct console_file *f = &console_files[i];
        assert_true(f->name[0] != '\0' && f->name[0] != '/');
        assert_null(strstr(f->name, ".."));
        assert_int_equal(f->data[f->len], 0);
        assert_int_equal(strlen(f->etag), 18);
        assert_int_equal(f->etag[0], '"');
        assert_int_equal(f->etag[17], '"');
        assert_int_equal(strspn(f->etag + 1, "0123456789abcdef"), 16);
        if (i > 0) {
            assert_true(strcmp(console_files[i - 1].name, f->name) < 0);
        }
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(console_files[j].etag, f->etag);
        }
    }
}

static void console_paths(void **state)
{
    (void)state;
    assert_true(http__console_path("/ui"));
    assert_true(http__console_path("/ui/"));
    assert_true(http__console_path("/ui/js/app.js"));
    assert_false(http__console_path("/uix"));
    assert_false(http__console_path("/u"));
    assert_false(http__console_path("/"));
    assert_false(http__console_path("/v3/kv/range"));
    assert_false(http__console_path("/api/v1/ui/"));
}

const struct CMUnitTest http_console_tests[] = {
    cmocka_unit_test(console_table_is_well_formed),
    cmocka_unit_test(console_paths),
};
const size_t http_console_tests_count =
    sizeof(http_console_tests) / sizeof(http_console_tests[0]);

/* test_http_console.h - the embedded console table's tests, run by
 * test_http_pbjson.c's main (one cmocka binary per module directory). */
#ifndef CAIRN_TEST_HTTP_CONSOLE_H
#define CAIRN_TEST_HTTP_CONSOLE_H

#include <stddef.h>

struct CMUnitTest;
extern const struct CMUnitTest http_console_tests[];
extern const size_t http_console_tests_count;

#endif

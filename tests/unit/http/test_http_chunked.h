/* test_http_chunked.h - the chunked-body decoder tests, run by
 * test_http_pbjson.c's main (one cmocka binary per module directory). */
#ifndef CAIRN_TEST_HTTP_CHUNKED_H
#define CAIRN_TEST_HTTP_CHUNKED_H

#include <stddef.h>

struct CMUnitTest;
extern const struct CMUnitTest http_chunked_tests[];
extern const size_t http_chunked_tests_count;

#endif

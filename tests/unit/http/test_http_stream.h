/* test_http_stream.h - the stream tests, run by test_http_pbjson.c's main
 * (one cmocka binary per module directory). */
#ifndef CAIRN_TEST_HTTP_STREAM_H
#define CAIRN_TEST_HTTP_STREAM_H

#include <stddef.h>

struct CMUnitTest;
extern const struct CMUnitTest http_stream_tests[];
extern const size_t http_stream_tests_count;

#endif

/*
 * fuzz_svc_json.c - the registry's plain-JSON reader
 * (registry/services/svc_json.c) against jansson's json_loadb.
 *
 * Goal: never a crash, leak or deep recursion; whatever svc_json_load
 * takes, jansson reads too, to an equal tree printed the same (member
 * order included); and svc_json_loadb answers a tree exactly when jansson
 * does. Input: byte 0's low bit asks for JSON_REJECT_DUPLICATES; the rest
 * is the text.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "registry/services/services.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    bool dups = (data[0] & 1) != 0;
    const char *t = (const char *)data + 1;
    size_t n = size - 1;
    size_t flags = dups ? JSON_REJECT_DUPLICATES : 0;
    json_error_t je;
    json_t *f = svc_json_load(t, n, dups);
    json_t *j = json_loadb(t, n, flags, &je);
    json_t *w = svc_json_loadb(t, n, flags, NULL);
    if (f != NULL) {
        FUZZ_CHECK(j != NULL);
        FUZZ_CHECK(json_equal(f, j));
        char *a = json_dumps(f, JSON_COMPACT);
        char *b = json_dumps(j, JSON_COMPACT);
        FUZZ_CHECK(a != NULL && b != NULL && strcmp(a, b) == 0);
        free(a);
        free(b);
    }
    FUZZ_CHECK((w == NULL) == (j == NULL));
    FUZZ_CHECK(w == NULL || json_equal(w, j));
    json_decref(f);
    json_decref(j);
    json_decref(w);
    return 0;
}

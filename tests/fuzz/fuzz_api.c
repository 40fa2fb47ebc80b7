/*
 * fuzz_api.c - the etcd API layer (registry/server/api*.c): protobuf request
 * decoding, the Txn nesting check, auth checks and each method's request
 * validation, then proposing, applying and answering, on a real
 * single-member server (tests/fuzz/fuzz_server.h).
 *
 * Goal: whatever bytes a client sends as a request, the method answers
 * exactly once, in bounded time and never with a timeout (nothing on one
 * healthy member takes seconds), with an error code or a response that
 * decodes as the method's response type; nothing crashes or aborts.
 *
 * Input: byte 0 picks the method (api_methods, api_auth_methods,
 * api_lock_methods, less the ones that would change the cluster for every
 * later input: member add/remove/update/promote, leader moves, defragment,
 * auth enable, and Lock and Campaign, which wait for a lock or leadership an
 * earlier input may hold),
 * the rest is the request message as the gRPC layer would hand it over.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "tests/fuzz/fuzz_server.h"

#define FUZZ_MAX_LEN    2048
#define WAIT_MS         15000 /* an answer later than this is a hang */
/* The API's own deadline. A single healthy member on tmpfs answers in
 * milliseconds, so running into it means an answer was lost. */
#define CALL_TIMEOUT_MS 5000

static struct fuzz_server fs;
static const struct api_method *methods[FUZZ_API_METHODS_MAX];
static size_t methods_count;

static void cleanup(void)
{
    fuzz_empty_dir(fs.dir);
    rmdir(fs.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    methods_count = fuzz_api_methods(methods);
    fuzz_server_start(&fs);
    atexit(cleanup);
    return 0;
}

struct answer {
    const struct api_method *m;
    int calls;
    int err;
};

static void on_done(void *ctx, int err, const uint8_t *resp, size_t len)
{
    struct answer *a = ctx;
    a->calls++;
    a->err = err;
    FUZZ_CHECK(err <= 0);
    if (err == ERR_TIMEOUT) {
        fprintf(stderr, "%s timed out: its answer was lost\n", a->m->path);
    }
    FUZZ_CHECK(err != ERR_TIMEOUT);
    if (err == 0 && a->m->resp_desc != NULL) {
        ProtobufCMessage *m =
            protobuf_c_message_unpack(a->m->resp_desc, NULL, len, resp);
        FUZZ_CHECK(m != NULL);
        protobuf_c_message_free_unpacked(m, NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    struct answer a = {.m = methods[data[0] % methods_count]};
    size_t n = size - 1;
    uint8_t *req = malloc(n ? n : 1);
    memcpy(req, data + 1, n);
    (void)api_call(&fs.s, a.m, req, n, CALL_TIMEOUT_MS, on_done, &a);
    free(req); /* the API copies or decodes what it keeps */
    uint64_t end = fuzz_now_ms() + WAIT_MS;
    while (a.calls == 0) {
        if (fuzz_now_ms() >= end) {
            fprintf(stderr, "no answer from %s\n", a.m->path);
        }
        FUZZ_CHECK(fuzz_now_ms() < end);
        uv_run(&fs.loop, UV_RUN_ONCE);
    }
    if (getenv("FUZZ_LAT")) {
        fprintf(stderr, "%s %d %llu ms\n", a.m->path, a.err,
                (unsigned long long)(fuzz_now_ms() + WAIT_MS - end));
    }
    FUZZ_CHECK(a.calls == 1);
    FUZZ_CHECK(fs.s.node != NULL && node_failed(fs.s.node) == 0);
    return 0;
}

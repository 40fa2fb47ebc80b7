/*
 * fuzz_http_json.c - the JSON gateway's request conversion
 * (registry/http/http_pbjson.c): JSON body -> protobuf wire bytes, for
 * every gateway method's request type, and the way back.
 *
 * Goal: any body gives ERR_BAD_REQUEST (with a reason) or protobuf bytes
 * that protobuf-c itself decodes as the method's request type; printing
 * those bytes back as JSON works, and that JSON decodes again. Never a
 * crash, a leak or deep recursion.
 *
 * Input: byte 0 picks the message type (the request, or with the high bit
 * the response, of api_methods, api_auth_methods, api_lock_methods, plus
 * the watch and lease keep-alive stream requests), the rest is the body.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "proto/rpc.pb-c.h"
#include "registry/http/http.h"
#include "registry/server/api_auth.h"
#include "registry/server/api_lock.h"
#include "registry/server/server.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_setup(LOG_FATAL, LOG_FORMAT_TEXT, stderr);
    return 0;
}

static const ProtobufCMessageDescriptor *pick(uint8_t b)
{
    size_t n1 = api_methods_count, n2 = api_auth_methods_count;
    size_t n3 = api_lock_methods_count;
    size_t k = (size_t)(b & 0x7f) % (n1 + n2 + n3 + 2);
    bool resp = (b & 0x80) != 0;
    const struct api_method *m;
    if (k < n1) {
        m = &api_methods[k];
    } else if (k < n1 + n2) {
        m = &api_auth_methods[k - n1];
    } else if (k < n1 + n2 + n3) {
        m = &api_lock_methods[k - n1 - n2];
    } else if (k == n1 + n2 + n3) {
        return &etcdserverpb__watch_request__descriptor;
    } else {
        return &etcdserverpb__lease_keep_alive_request__descriptor;
    }
    return resp ? m->resp_desc : m->req_desc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    const ProtobufCMessageDescriptor *desc = pick(data[0]);
    /* A private copy: ASan catches a read past the body. */
    size_t n = size - 1;
    char *json = malloc(n ? n : 1);
    memcpy(json, data + 1, n);
    struct buf pb, js, pb2;
    char msg[256];
    msg[0] = '\0';
    buf_init(&pb, 0);
    buf_init(&js, 0);
    buf_init(&pb2, 0);
    int rc = http_pbjson_decode(desc, json, n, &pb, msg, sizeof(msg));
    FUZZ_CHECK(rc == 0 || rc == ERR_BAD_REQUEST || rc == ERR_LIMIT);
    if (rc == ERR_BAD_REQUEST) {
        FUZZ_CHECK(msg[0] != '\0');
    }
    if (rc == 0) {
        ProtobufCMessage *m =
            protobuf_c_message_unpack(desc, NULL, pb.len, pb.data);
        FUZZ_CHECK(m != NULL);
        protobuf_c_message_free_unpacked(m, NULL);
        rc = http_pbjson_encode(desc, pb.data, pb.len, &js);
        FUZZ_CHECK(rc == 0);
        rc = http_pbjson_decode(desc, (const char *)js.data, js.len, &pb2, msg,
                                sizeof(msg));
        if (rc != 0) {
            fprintf(stderr, "re-decode failed: %s\n%.*s\n", msg, (int)js.len,
                    (const char *)js.data);
        }
        FUZZ_CHECK(rc == 0);
    }
    buf_free(&pb);
    buf_free(&js);
    buf_free(&pb2);
    free(json);
    return 0;
}

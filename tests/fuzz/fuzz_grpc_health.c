/*
 * fuzz_grpc_health.c - the registry's gRPC health check on the wire
 * (registry/services/svc_probe.c): the reader of a server's answer and
 * the writer of the request.
 *
 * Goal: never a crash, a read past the input or a verdict that depends on
 * how the bytes were cut; the request for any host, port and service a
 * check may name is a header block nghttp2's HPACK decoder reads back to
 * the same :authority, and a DATA frame of the announced length.
 * Input: byte 0 even: the rest is a server's answer, fed whole and then
 * in pieces of 1 + byte 1 % 17 bytes (the same verdict and text both
 * ways); byte 0 odd: bytes 1-2 are the port, byte 3 the service's length
 * (at most SVC_GRPC_SERVICE_MAX), then the service, then the host.
 */
#include <nghttp2/nghttp2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "registry/services/svc_health_int.h"
#include "tests/fuzz/fuzz.h"

#define FUZZ_MAX_LEN 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

static void answer(const uint8_t *p, size_t n, size_t step)
{
    struct hc_grpc a, b;
    char oa[HC_OUTPUT_MAX], ob[HC_OUTPUT_MAX];
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    oa[0] = 0;
    ob[0] = 0;
    int va = hc_grpc_feed(&a, p, n, oa, sizeof(oa));
    int vb = 0;
    for (size_t i = 0; i < n && vb == 0; i += step) {
        size_t k = n - i < step ? n - i : step;
        vb = hc_grpc_feed(&b, p + i, k, ob, sizeof(ob));
    }
    FUZZ_CHECK(va == vb);
    FUZZ_CHECK(va >= -1 && va <= 1);
    FUZZ_CHECK(strcmp(oa, ob) == 0);
    FUZZ_CHECK(va == 0 || (oa[0] != 0 && strlen(oa) < sizeof(oa)));
    FUZZ_CHECK(a.msg_len <= sizeof(a.msg) && a.hdr_len <= sizeof(a.hdr));
}

static void request(const uint8_t *p, size_t n)
{
    struct hc_target t;
    uint8_t req[HC_GRPC_REQ_MAX];
    if (n < 3) {
        return;
    }
    memset(&t, 0, sizeof(t));
    t.type = HC_GRPC;
    t.port = 1 + (((int)p[0] << 8 | p[1]) % 65535);
    size_t sn = p[2] % (SVC_GRPC_SERVICE_MAX + 1);
    p += 3;
    n -= 3;
    sn = sn < n ? sn : n;
    for (size_t i = 0; i < sn; i++) {
        t.path[i] = (char)(0x21 + p[i] % 94); /* what the model lets in */
    }
    p += sn;
    n -= sn;
    size_t hn = n < SVC_HOST_MAX ? n : SVC_HOST_MAX;
    for (size_t i = 0; i < hn; i++) {
        t.host[i] = (char)(0x21 + p[i] % 94);
    }
    if (hn == 0) {
        t.host[0] = 'h';
    }
    size_t len = hc_grpc_request(&t, req, sizeof(req));
    FUZZ_CHECK(len > 33 && len <= sizeof(req));
    const uint8_t *h = req + 33;
    size_t hl = (size_t)h[0] << 16 | (size_t)h[1] << 8 | h[2];
    FUZZ_CHECK(h[3] == 1 && 33 + 9 + hl + 9 <= len);
    nghttp2_hd_inflater *inf = NULL;
    FUZZ_CHECK(nghttp2_hd_inflate_new(&inf) == 0);
    const uint8_t *in = h + 9;
    size_t left = hl;
    char auth[SVC_HOST_MAX + 16];
    bool v6 = strchr(t.host, ':') != NULL;
    snprintf(auth, sizeof(auth), "%s%s%s:%d", v6 ? "[" : "", t.host,
             v6 ? "]" : "", t.port);
    bool seen = false;
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t r = nghttp2_hd_inflate_hd2(inf, &nv, &flags, in, left, 1);
        FUZZ_CHECK(r >= 0);
        in += r;
        left -= (size_t)r;
        if ((flags & NGHTTP2_HD_INFLATE_EMIT) && nv.namelen == 10 &&
            memcmp(nv.name, ":authority", 10) == 0) {
            FUZZ_CHECK(nv.valuelen == strlen(auth) &&
                       memcmp(nv.value, auth, nv.valuelen) == 0);
            seen = true;
        }
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            break;
        }
        FUZZ_CHECK(r > 0 || left > 0);
    }
    nghttp2_hd_inflate_del(inf);
    FUZZ_CHECK(seen);
    const uint8_t *d = h + 9 + hl;
    size_t dl = (size_t)d[0] << 16 | (size_t)d[1] << 8 | d[2];
    FUZZ_CHECK(d[3] == 0 && d[4] == 1 && (size_t)(d + 9 + dl - req) == len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    if ((data[0] & 1) == 0) {
        answer(data + 2, size - 2, 1 + (size_t)data[1] % 17);
    } else {
        request(data + 1, size - 1);
    }
    return 0;
}

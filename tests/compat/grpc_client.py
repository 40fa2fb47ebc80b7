#!/usr/bin/python3
"""grpc_client.py PORT - drive grpc-testsrv with grpcio and raw sockets.

Goal: check the gRPC layer (registry/grpc) against a second, independent
gRPC implementation (grpcio, C core) and against hostile bytes. Method:
python3-etcd3's client for put/get/watch, grpcio generic stubs for the
edge cases (oversized message, unknown method, metadata, client stream,
cancellation, keepalive pings), and raw TCP for malformed HTTP/2. Prints
one line per check: "RESULT ok|fail <name> [detail]"; the .test script
numbers them as TAP. Use Debian's /usr/bin/python3 (grpcio lives there).
"""
import socket
import struct
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import etcd3
from etcd3.etcdrpc import rpc_pb2

PORT = int(sys.argv[1])
TARGET = "127.0.0.1:%d" % PORT
results = []


def report(name, ok, detail=""):
    line = "RESULT %s %s %s" % ("ok" if ok else "fail", name, detail)
    print(line.rstrip(), flush=True)
    results.append(ok)


def check(name):
    def wrap(fn):
        try:
            ok, detail = fn()
        except Exception as e:  # a crash in a check is a failure
            ok, detail = False, "%s: %s" % (type(e).__name__, e)
        report(name, ok, detail.replace("\n", " ")[:300])
        return fn
    return wrap


def unary(ch, path, req=b"", timeout=10, metadata=None):
    f = ch.unary_unary(path, request_serializer=lambda b: b,
                       response_deserializer=lambda b: b)
    return f.with_call(req, timeout=timeout, metadata=metadata)


ch = grpc.insecure_channel(TARGET)


@check("python-etcd3 put then get returns the value")
def _():
    c = etcd3.client(host="127.0.0.1", port=PORT)
    c.put("/py/a", "v1")
    val, meta = c.get("/py/a")
    c.close()
    return val == b"v1" and meta.key == b"/py/a", "got %r" % (val,)


@check("python-etcd3 watch sees a put")
def _():
    c = etcd3.client(host="127.0.0.1", port=PORT)
    events, cancel = c.watch("/py/w")
    threading.Timer(0.3, lambda: c.put("/py/w", "watched")).start()
    got = None
    for ev in events:
        got = ev
        break
    cancel()
    # No c.close(): python-etcd3's watcher thread would try to re-watch
    # on the closed channel and print a traceback.
    return (got is not None and got.value == b"watched",
            "event %r" % (got,))


@check("oversized request gets RESOURCE_EXHAUSTED")
def _():
    req = rpc_pb2.PutRequest(key=b"/big", value=b"x" * (3 << 20))
    try:
        unary(ch, "/etcdserverpb.KV/Put", req.SerializeToString())
        return False, "accepted"
    except grpc.RpcError as e:
        return (e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and
                "larger than max" in e.details(),
                "%s %s" % (e.code(), e.details()))


@check("server still answers after the oversized request")
def _():
    req = rpc_pb2.RangeRequest(key=b"/py/a")
    resp, _ = unary(ch, "/etcdserverpb.KV/Range", req.SerializeToString())
    r = rpc_pb2.RangeResponse.FromString(resp)
    return r.count == 1 and r.kvs[0].value == b"v1", str(r.count)


@check("request at the size limit is accepted")
def _():
    # 1.5 MiB value: under max-request-bytes + 512 KiB with the framing.
    req = rpc_pb2.PutRequest(key=b"/big-ok", value=b"y" * (3 << 19))
    resp, _ = unary(ch, "/etcdserverpb.KV/Put", req.SerializeToString())
    r = rpc_pb2.PutResponse.FromString(resp)
    back, _ = unary(ch, "/etcdserverpb.KV/Range",
                    rpc_pb2.RangeRequest(key=b"/big-ok").SerializeToString())
    rr = rpc_pb2.RangeResponse.FromString(back)
    return (r.header.revision > 0 and rr.kvs[0].value == b"y" * (3 << 19),
            "rev %d" % r.header.revision)


@check("unknown method gets UNIMPLEMENTED")
def _():
    try:
        unary(ch, "/etcdserverpb.KV/NoSuchMethod")
        return False, "accepted"
    except grpc.RpcError as e:
        return (e.code() == grpc.StatusCode.UNIMPLEMENTED,
                "%s %s" % (e.code(), e.details()))


@check("unknown service gets UNIMPLEMENTED")
def _():
    try:
        unary(ch, "/no.such.Service/Call")
        return False, "accepted"
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.UNIMPLEMENTED, str(e.code())


@check("health check answers SERVING")
def _():
    resp, _ = unary(ch, "/grpc.health.v1.Health/Check", b"")
    return resp == b"\x08\x01", repr(resp)


@check("token metadata reaches the handler; error text is etcd's")
def _():
    req = rpc_pb2.PutRequest(key=b"/t", value=b"v")
    try:
        unary(ch, "/etcdserverpb.KV/Put", req.SerializeToString(),
              metadata=[("token", "bad-token")])
        return False, "accepted"
    except grpc.RpcError as e:
        return (e.code() == grpc.StatusCode.UNAUTHENTICATED and
                e.details() == "etcdserver: invalid auth token",
                "%s %r" % (e.code(), e.details()))


@check("empty key gets INVALID_ARGUMENT with etcd's text")
def _():
    try:
        unary(ch, "/etcdserverpb.KV/Put", b"")
        return False, "accepted"
    except grpc.RpcError as e:
        return (e.code() == grpc.StatusCode.INVALID_ARGUMENT and
                e.details() == "etcdserver: key is not provided",
                "%s %r" % (e.code(), e.details()))


@check("undecodable request gets INTERNAL")
def _():
    try:
        unary(ch, "/etcdserverpb.KV/Put", b"\x0a\xff\xff\xff\x0f")
        return False, "accepted"
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.INTERNAL, str(e.code())


def _varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def nested_txn(levels):
    """TxnRequest{success: [RequestOp{request_txn: TxnRequest{...}}]}."""
    txn = b""
    for _ in range(levels):
        op = b"\x22" + _varint(len(txn)) + txn   # RequestOp.request_txn
        txn = b"\x12" + _varint(len(op)) + op    # TxnRequest.success
    return txn


@check("txn nested 30 levels is decoded and answered")
def _():
    resp, _ = unary(ch, "/etcdserverpb.KV/Txn", nested_txn(30))
    r = rpc_pb2.TxnResponse.FromString(resp)
    return r.succeeded, str(r.succeeded)


@check("txn nested 1000 levels is refused before decoding, no crash")
def _():
    try:
        unary(ch, "/etcdserverpb.KV/Txn", nested_txn(1000))
        return False, "accepted"
    except grpc.RpcError as e:
        return (e.code() == grpc.StatusCode.INTERNAL and
                "nested too deeply" in e.details(),
                "%s %s" % (e.code(), e.details()))


@check("client stream: three messages summed, percent-encoded status text")
def _():
    f = ch.stream_unary("/cairn.test.Echo/Sum",
                        request_serializer=lambda b: b,
                        response_deserializer=lambda b: b)
    resp, call = f.with_call(iter([b"a" * 10, b"b" * 20, b"c" * 30]),
                             timeout=10)
    det = call.details()
    return (resp == b"60" and det in ("sum done: 100% ok\n", "", None),
            "%r %r" % (resp, det))


@check("200 concurrent puts multiplexed on one connection")
def _():
    errs = []

    def worker(i):
        try:
            req = rpc_pb2.PutRequest(key=b"/c/%d" % i, value=b"v%d" % i)
            unary(ch, "/etcdserverpb.KV/Put", req.SerializeToString())
        except Exception as e:
            errs.append(e)
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(200)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    resp, _ = unary(ch, "/etcdserverpb.KV/Range",
                    rpc_pb2.RangeRequest(key=b"/c/", range_end=b"/c0",
                                         count_only=True).SerializeToString())
    r = rpc_pb2.RangeResponse.FromString(resp)
    return not errs and r.count == 200, "errors %d count %d" % (len(errs),
                                                              r.count)


@check("server stream: snapshot arrives whole and in order")
def _():
    f = ch.unary_stream("/etcdserverpb.Maintenance/Snapshot",
                        request_serializer=lambda b: b,
                        response_deserializer=rpc_pb2.SnapshotResponse.FromString)
    data = bytearray()
    last = None
    for m in f(b"", timeout=60):
        data += m.blob
        last = m.remaining_bytes
    exp = bytes(((i * 7 + i // 251) % 251) for i in range(len(data)))
    return (last == 0 and len(data) % 512 == 32 and bytes(data) == exp,
            "%d bytes" % len(data))


@check("cancelling a server stream mid-way leaves the server healthy")
def _():
    f = ch.unary_stream("/etcdserverpb.Maintenance/Snapshot",
                        request_serializer=lambda b: b,
                        response_deserializer=lambda b: b)
    it = f(b"", timeout=60)
    next(it)
    it.cancel()
    time.sleep(0.2)
    resp, _ = unary(ch, "/grpc.health.v1.Health/Check", b"")
    return resp == b"\x08\x01", "health after cancel %r" % resp


@check("keepalive pings every 200 ms for 2 s are tolerated")
def _():
    opts = [("grpc.keepalive_time_ms", 200),
            ("grpc.keepalive_timeout_ms", 1000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_time_between_pings_ms", 100)]
    kch = grpc.insecure_channel(TARGET, options=opts)
    unary(kch, "/grpc.health.v1.Health/Check", b"")
    time.sleep(2)
    resp, _ = unary(kch, "/grpc.health.v1.Health/Check", b"")
    kch.close()
    return resp == b"\x08\x01", ""


# ---------------------------------------------------------- raw HTTP/2

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, sid, payload):
    return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) +
            struct.pack(">I", sid) + payload)


def read_frames(s, deadline=3.0):
    """Read until EOF or timeout; return (frame types seen, eof?)."""
    s.settimeout(deadline)
    buf = b""
    eof = False
    try:
        while True:
            d = s.recv(65536)
            if not d:
                eof = True
                break
            buf += d
    except socket.timeout:
        pass
    except ConnectionResetError:
        eof = True
    types = []
    i = 0
    while i + 9 <= len(buf):
        n = int.from_bytes(buf[i:i + 3], "big")
        types.append(buf[i + 3])
        i += 9 + n
    return types, eof, buf


def raw(payload, close_write=False):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=3)
    s.sendall(payload)
    if close_write:
        s.shutdown(socket.SHUT_WR)
    r = read_frames(s)
    s.close()
    return r


@check("garbage after the preface gets GOAWAY and a close")
def _():
    types, eof, _ = raw(PREFACE + b"\x00\x00\x04\xff\xff" + b"G" * 200)
    return 7 in types and eof, "frames %r eof %s" % (types, eof)


@check("bad HPACK gets GOAWAY(COMPRESSION_ERROR) and a close")
def _():
    hdrs = frame(1, 0x4 | 0x1, 1, b"\xff\xff\xff\xff\xff\xff")
    types, eof, buf = raw(PREFACE + frame(4, 0, 0, b"") + hdrs)
    return 7 in types and eof, "frames %r eof %s" % (types, eof)


@check("truncated frame then EOF: server closes, survives")
def _():
    partial = frame(4, 0, 0, b"\x00\x03\x00\x00\x00\x64" * 4)[:15]
    types, eof, _ = raw(PREFACE + partial, close_write=True)
    return eof, "frames %r eof %s" % (types, eof)


def lit(n, v):
    """An HPACK literal header field without indexing, no Huffman."""
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def frames_of(buf):
    out = []
    i = 0
    while i + 9 <= len(buf):
        n = int.from_bytes(buf[i:i + 3], "big")
        sid = int.from_bytes(buf[i + 5:i + 9], "big") & 0x7fffffff
        out.append((buf[i + 3], sid, buf[i + 9:i + 9 + n]))
        i += 9 + n
    return out


GOOD = [(b":method", b"POST"), (b":scheme", b"http"),
        (b":path", b"/etcdserverpb.KV/Range"), (b":authority", b"x"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers")]
MALFORMED = {
    "an upper-case field name": GOOD + [(b"X-Upper", b"1")],
    "a connection-specific field": GOOD + [(b"connection", b"close")],
    "te other than trailers": GOOD[:-1] + [(b"te", b"gzip")],
    "a repeated :path": GOOD + [(b":path", b"/etcdserverpb.KV/Range")],
    "an unknown pseudo-header": [(b":foo", b"1")] + GOOD,
    "a pseudo-header after a regular field": GOOD[:3] + GOOD[4:] + [GOOD[3]],
    "no :scheme": [h for h in GOOD if h[0] != b":scheme"],
    "a CR in a value": GOOD + [(b"x-a", b"a\rb")],
}


def rst_code(fields):
    block = b"".join(lit(n, v) for n, v in fields)
    _, _, buf = raw(PREFACE + frame(4, 0, 0, b"") +
                    frame(1, 0x4 | 0x1, 1, block))
    fr = frames_of(buf)
    for t, sid, pl in fr:
        if t == 3 and sid == 1 and len(pl) == 4:
            return int.from_bytes(pl, "big"), fr
    return None, fr


# The exchanges below keep the connection open (no GOAWAY, no close), so
# each read_frames() waits out its whole 3 s for a GOAWAY that must not
# come. Each has its own connection: they run at once, and are checked
# (and reported) in order.
pool = ThreadPoolExecutor(max_workers=16)


def block415():
    # HPACK literal headers without indexing, no Huffman.
    block = (lit(b":method", b"POST") + lit(b":scheme", b"http") +
             lit(b":path", b"/etcdserverpb.KV/Range") +
             lit(b":authority", b"x") + lit(b"content-type", b"text/plain"))
    return raw(PREFACE + frame(4, 0, 0, b"") + frame(1, 0x4 | 0x1, 1, block))


def authority_url():
    # etcdctl endpoint status --cluster sends "http://127.0.0.1:2379"
    fields = [(n, b"http://127.0.0.1:2379" if n == b":authority" else v)
              for n, v in GOOD]
    block = b"".join(lit(n, v) for n, v in fields)
    body = b"\x00" + struct.pack(">I", 0)  # an empty RangeRequest
    return raw(PREFACE + frame(4, 0, 0, b"") +
               frame(1, 0x4, 1, block) + frame(0, 0x1, 1, body))


F415 = pool.submit(block415)
FMAL = {what: pool.submit(rst_code, fields)
        for what, fields in MALFORMED.items()}
FAUTH = pool.submit(authority_url)


@check("non-gRPC content-type gets HTTP 415, connection stays usable")
def _():
    types, eof, buf = F415.result()
    # Server answers SETTINGS, SETTINGS ack, WINDOW_UPDATE, HEADERS(:status
    # 415 as a literal or indexed "415"): look for a HEADERS frame, no GOAWAY.
    return 1 in types and 7 not in types, "frames %r" % types


for what in MALFORMED:
    @check("malformed request (%s) gets RST_STREAM(PROTOCOL_ERROR), "
           "no GOAWAY" % what)
    def _(f=FMAL[what]):
        code, fr = f.result()
        return code == 1 and all(t != 7 for t, _, _ in fr), \
            "rst %r frames %r" % (code, [t for t, _, _ in fr])


@check(":authority holding a URL (etcd clients dialing one endpoint) "
       "is answered")
def _():
    _, _, buf = FAUTH.result()
    fr = frames_of(buf)
    return (any(t == 1 and sid == 1 for t, sid, _ in fr) and
            not any(t == 3 and sid == 1 for t, sid, _ in fr)), \
        "frames %r" % [(t, sid) for t, sid, _ in fr]


@check("after all the abuse a fresh channel still works")
def _():
    fresh = grpc.insecure_channel(TARGET)
    resp, _ = unary(fresh, "/etcdserverpb.KV/Range",
                    rpc_pb2.RangeRequest(key=b"/py/a").SerializeToString())
    fresh.close()
    r = rpc_pb2.RangeResponse.FromString(resp)
    return r.count == 1, ""


pool.shutdown()
ch.close()
sys.exit(0 if all(results) else 1)

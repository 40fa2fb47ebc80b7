#!/usr/bin/python3
"""badinput_grpc.py HOST:PORT - hostile gRPC/HTTP/2 input against a server.

Goal: a server must answer or close on bad input, stay up, keep serving
other clients, and never store anything from a bad request. Method: two
kinds of cases.
  "status" cases send a complete gRPC call through grpcio's generic stubs
  with hand-made message bytes (oversized, truncated fields, 11-byte
  varints, wrong wire types, deep nesting, unknown methods) and print the
  gRPC status code; the .test script compares it with etcd 3.4's.
  "raw" cases write bytes to a plain TCP socket (garbage, truncated or
  invalid HTTP/2 frames, broken HPACK, bad gRPC length prefixes, floods)
  and print how the server reacted: "answered" (sent bytes, maybe then
  closed), "closed" (closed without a byte) or "silent" (neither within the
  wait; allowed only where a server may legitimately wait for more bytes).
After every case a fresh client does a Range; its result is printed too.
Output lines: "CASE <kind> <name> :: <outcome> :: <after> :: <detail>".
Needs Debian's /usr/bin/python3 (python3-grpcio, python3-etcd3).
"""
import socket
import struct
import sys
import time

import grpc
from etcd3.etcdrpc import rpc_pb2

TARGET = sys.argv[1]
HOST, PORT = TARGET.rsplit(":", 1)
PORT = int(PORT)


def range_ok():
    """A fresh channel reads key 'before' (written by the .test script)."""
    ch = grpc.insecure_channel(TARGET)
    try:
        f = ch.unary_unary("/etcdserverpb.KV/Range",
                           request_serializer=lambda b: b,
                           response_deserializer=lambda b: b)
        r = rpc_pb2.RangeResponse.FromString(
            f(rpc_pb2.RangeRequest(key=b"before").SerializeToString(),
              timeout=5))
        return "range-ok" if r.kvs and r.kvs[0].value == b"kept" else \
            "range-wrong:%r" % list(r.kvs)
    except grpc.RpcError as e:
        return "range-failed:%s" % e.code().name
    finally:
        ch.close()


def out(kind, name, outcome, detail=""):
    print("CASE %s %s :: %s :: %s :: %s" % (kind, name, outcome, range_ok(),
                                            str(detail).replace("\n", " ")[:200]),
          flush=True)


# ------------------------------------------------------------ gRPC status
def call(path, body, timeout=10, opts=None):
    ch = grpc.insecure_channel(TARGET, options=opts or [])
    try:
        f = ch.unary_unary(path, request_serializer=lambda b: b,
                           response_deserializer=lambda b: b)
        f(body, timeout=timeout)
        return "OK", ""
    except grpc.RpcError as e:
        return e.code().name, e.details()
    finally:
        ch.close()


def varint(n):
    b = b""
    while True:
        x = n & 0x7F
        n >>= 7
        if n:
            b += bytes([x | 0x80])
        else:
            return b + bytes([x])


def ld(field, data):
    return varint(field << 3 | 2) + varint(len(data)) + data


def nested_txn(levels):
    txn = b""
    for _ in range(levels):
        op = ld(4, txn)          # RequestOp.request_txn
        txn = ld(2, op)          # TxnRequest.success
    return txn


def status(name, path, body, opts=None):
    code, det = call(path, body, opts=opts)
    out("status", name, code, det)


BIG = [("grpc.max_send_message_length", 64 << 20)]
status("put-1.7MiB-over-max-request-bytes", "/etcdserverpb.KV/Put",
       rpc_pb2.PutRequest(key=b"big1", value=b"x" * (1700 << 10))
       .SerializeToString(), BIG)
status("put-4MiB-over-grpc-limit", "/etcdserverpb.KV/Put",
       rpc_pb2.PutRequest(key=b"big2", value=b"x" * (4 << 20))
       .SerializeToString(), BIG)
status("txn-3MiB-of-puts", "/etcdserverpb.KV/Txn",
       rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp(
           request_put=rpc_pb2.PutRequest(key=b"t%d" % i, value=b"y" * 30000))
           for i in range(100)]).SerializeToString(), BIG)
status("put-key-length-runs-past-end", "/etcdserverpb.KV/Put",
       b"\x0a\x64abc")
status("put-value-length-runs-past-end", "/etcdserverpb.KV/Put",
       b"\x0a\x01k\x12\xff\xff\x03vv")
status("put-varint-of-11-bytes", "/etcdserverpb.KV/Put",
       b"\x0a\x01k\x20" + b"\xff" * 10 + b"\x01")
status("put-length-varint-of-11-bytes", "/etcdserverpb.KV/Put",
       b"\x0a" + b"\x80" * 10 + b"\x01k")
status("put-truncated-varint", "/etcdserverpb.KV/Put", b"\x0a\x01k\x20\xff")
status("put-wrong-wire-type-for-key", "/etcdserverpb.KV/Put",
       b"\x08\x05\x12\x01v")
status("put-field-number-zero", "/etcdserverpb.KV/Put", b"\x02\x01k")
status("put-wire-type-7", "/etcdserverpb.KV/Put", b"\x0f\x01k")
status("put-group-start-without-end", "/etcdserverpb.KV/Put",
       b"\x0a\x01k\x0b")
status("range-empty-message-key-not-provided", "/etcdserverpb.KV/Range", b"")
status("range-unknown-field-is-ignored", "/etcdserverpb.KV/Range",
       ld(1, b"before") + ld(99, b"junk") + b"\xa0\x06\x05")
status("txn-nested-30-levels", "/etcdserverpb.KV/Txn", nested_txn(30))
status("txn-nested-1000-levels", "/etcdserverpb.KV/Txn", nested_txn(1000))
status("txn-nested-100000-levels", "/etcdserverpb.KV/Txn", nested_txn(100000),
       BIG)
status("txn-compare-with-truncated-submessage", "/etcdserverpb.KV/Txn",
       ld(1, b"\x0a\x05ab"))
status("unknown-method", "/etcdserverpb.KV/NoSuchMethod", b"")
status("unknown-service", "/no.such.Service/Call", b"")
status("lease-grant-garbage", "/etcdserverpb.Lease/LeaseGrant",
       b"\xff\xff\xff\xff")
status("member-add-garbage-urls", "/etcdserverpb.Cluster/MemberAdd",
       ld(1, b"\xff\xfe not a url"))


# ------------------------------------------------------------ raw HTTP/2
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream, payload, length=None):
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


SETTINGS = frame(4, 0, 0, b"")


def hpack_literal(name, value):
    # literal header field without indexing, new name, no Huffman
    return b"\x00" + varint7(len(name)) + name + varint7(len(value)) + value


def varint7(n):
    if n < 127:
        return bytes([n])
    b = bytes([127])
    n -= 127
    while n >= 128:
        b += bytes([(n & 0x7F) | 0x80])
        n >>= 7
    return b + bytes([n])


def grpc_headers(path, extra=()):
    h = b""
    for k, v in [(b":method", b"POST"), (b":scheme", b"http"),
                 (b":path", path), (b":authority", TARGET.encode()),
                 (b"content-type", b"application/grpc"),
                 (b"te", b"trailers")] + list(extra):
        h += hpack_literal(k, v)
    return h


def grpc_msg(body, flag=0, length=None):
    n = len(body) if length is None else length
    return bytes([flag]) + struct.pack(">I", n) + body


def classify(got, eof):
    """What the server did: goaway, rst, response (HEADERS on a stream),
    http1 (an HTTP/1.x reply), closed (EOF, nothing decisive before), or
    silent (only SETTINGS/PING/WINDOW_UPDATE, or nothing)."""
    if got.startswith(b"HTTP/1"):
        return "http1"
    seen = set()
    i = 0
    while i + 9 <= len(got):
        n = int.from_bytes(got[i:i + 3], "big")
        t = got[i + 3]
        sid = int.from_bytes(got[i + 5:i + 9], "big") & 0x7FFFFFFF
        if t == 7:
            seen.add("goaway")
        elif t == 3:
            seen.add("rst")
        elif t == 1 and sid:
            seen.add("response")
        i += 9 + n
    for w in ("goaway", "rst", "response"):
        if w in seen:
            return w
    return "closed" if eof else "silent"


def raw(name, data, allowed, wait=None, hold=False):
    """Send data; report the reaction (see classify) and whether it is in
    the allowed set. hold: keep the socket open while a fresh client does a
    Range (the server must serve others meanwhile). wait: how long to wait
    for a reaction; 3 s where one is required, 1 s where silence is allowed
    too (the outcome is the same either way: no server times these out in
    3 s, and the held check runs after the wait)."""
    if wait is None:
        wait = 1.0 if "silent" in allowed.split() else 3.0
    s = socket.create_connection((HOST, PORT), timeout=5)
    got = b""
    eof = False
    try:
        try:
            s.sendall(data)
        except OSError:
            eof = True  # the server closed while we were still writing
        s.settimeout(0.1)
        end = time.time() + wait
        while not eof and time.time() < end:
            if classify(got, False) in ("goaway", "rst", "response",
                                        "http1"):
                time.sleep(0.1)  # let a GOAWAY after the reply arrive too
                try:
                    got += s.recv(65536)
                except OSError:
                    pass
                break
            try:
                b = s.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                eof = True
                break
            if not b:
                eof = True
                break
            got += b
        if hold:
            print("CASE raw %s-while-held-open :: held :: %s :: " %
                  (name, range_ok()), flush=True)
    finally:
        s.close()
    what = classify(got, eof)
    verdict = "allowed" if what in allowed.split() else "NOT-ALLOWED"
    out("raw", name, verdict, "%s (%d bytes back; allowed: %s)" %
        (what, len(got), allowed))


CLOSE = "closed goaway"
REPLY = "response rst goaway closed"
ANY = "response rst goaway closed silent http1"
raw("random-garbage", bytes((i * 131 + 7) % 256 for i in range(4096)),
    "closed http1")
raw("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" +
    b"\x00" * 600, "closed http1")
raw("http1-garbage-request-line", b"\x00\x01GARBAGE / HTTP/9.9\r\n\r\n",
    "closed http1")
# Connection errors: GOAWAY or a plain close.
raw("preface-then-garbage", PREFACE + b"\xde\xad\xbe\xef" * 64, CLOSE)
raw("settings-bad-length", PREFACE + frame(4, 0, 0, b"\x00\x01\x00"), CLOSE)
raw("data-on-stream-0", PREFACE + SETTINGS + frame(0, 0, 0, b"abc"), CLOSE)
raw("window-update-zero-on-connection", PREFACE + SETTINGS +
    frame(8, 0, 0, struct.pack(">I", 0)), CLOSE)
raw("initial-window-too-large", PREFACE +
    frame(4, 0, 0, struct.pack(">HI", 4, 0x80000000)), CLOSE)
raw("headers-broken-hpack-index", PREFACE + SETTINGS +
    frame(1, 0x5, 1, b"\xff\xff\xff\xff\x0f"), CLOSE)
raw("headers-on-even-stream", PREFACE + SETTINGS +
    frame(1, 0x5, 2, grpc_headers(b"/etcdserverpb.KV/Range")), CLOSE)
raw("frame-over-max-frame-size", PREFACE + SETTINGS +
    frame(0, 0, 1, b"z" * 20000), CLOSE + " rst")
# Truncated input: the server may wait for the rest, but must keep serving
# everyone else meanwhile (checked while the socket is held open).
raw("truncated-frame-header", PREFACE + SETTINGS + b"\x00\x40", ANY,
    hold=True)
raw("truncated-frame-payload", PREFACE + SETTINGS +
    frame(1, 0x4, 1, b"\x82\x86", length=16000), ANY, hold=True)
raw("truncated-preface", PREFACE[:10], ANY, hold=True)
raw("headers-without-end-headers-then-nothing", PREFACE + SETTINGS +
    frame(1, 0, 1, grpc_headers(b"/etcdserverpb.KV/Range")), ANY, hold=True)
raw("grpc-length-prefix-2GiB", PREFACE + SETTINGS +
    frame(1, 0x4, 1, grpc_headers(b"/etcdserverpb.KV/Put")) +
    frame(0, 0, 1, grpc_msg(b"\x0a\x01k", length=0x7FFFFFFF)), ANY, hold=True)
# Bounded header blocks: refused, never buffered without limit.
raw("continuation-flood-1MiB", PREFACE + SETTINGS +
    frame(1, 0, 1, grpc_headers(b"/etcdserverpb.KV/Range")) +
    b"".join(frame(9, 0, 1, hpack_literal(b"x-junk", b"j" * 16000))
             for _ in range(64)), REPLY)
# Complete gRPC calls with a bad body or bad headers: a status or a reset.
raw("grpc-length-prefix-past-end-of-stream", PREFACE + SETTINGS +
    frame(1, 0x4, 1, grpc_headers(b"/etcdserverpb.KV/Range")) +
    frame(0, 0x1, 1, grpc_msg(ld(1, b"before"), length=1000)), REPLY)
raw("grpc-compressed-flag-without-encoding", PREFACE + SETTINGS +
    frame(1, 0x4, 1, grpc_headers(b"/etcdserverpb.KV/Range")) +
    frame(0, 0x1, 1, grpc_msg(ld(1, b"before"), flag=1)), REPLY)
raw("grpc-unknown-encoding", PREFACE + SETTINGS +
    frame(1, 0x4, 1, grpc_headers(b"/etcdserverpb.KV/Range",
                                  [(b"grpc-encoding", b"zstd-nope")])) +
    frame(0, 0x1, 1, grpc_msg(ld(1, b"before"), flag=1)), REPLY)
raw("grpc-two-messages-on-unary", PREFACE + SETTINGS +
    frame(1, 0x4, 1, grpc_headers(b"/etcdserverpb.KV/Range")) +
    frame(0, 0x1, 1, grpc_msg(ld(1, b"before")) * 2), REPLY)
raw("grpc-wrong-content-type", PREFACE + SETTINGS +
    frame(1, 0x4, 1, b"".join(hpack_literal(k, v) for k, v in [
        (b":method", b"POST"), (b":scheme", b"http"),
        (b":path", b"/etcdserverpb.KV/Range"), (b":authority", b"x"),
        (b"content-type", b"text/plain")])) +
    frame(0, 0x1, 1, grpc_msg(ld(1, b"before"))), REPLY)
raw("grpc-get-method", PREFACE + SETTINGS +
    frame(1, 0x5, 1, b"".join(hpack_literal(k, v) for k, v in [
        (b":method", b"GET"), (b":scheme", b"http"),
        (b":path", b"/etcdserverpb.KV/Range"), (b":authority", b"x"),
        (b"content-type", b"application/grpc")])), REPLY)
raw("grpc-missing-path", PREFACE + SETTINGS +
    frame(1, 0x5, 1, b"".join(hpack_literal(k, v) for k, v in [
        (b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"),
        (b"content-type", b"application/grpc")])), REPLY)
raw("unknown-frame-types-then-request", PREFACE + SETTINGS +
    frame(0xEE, 0, 0, b"ignored") + frame(0xEF, 0, 1, b"ignored") +
    frame(1, 0x4, 1, grpc_headers(b"/etcdserverpb.KV/Range")) +
    frame(0, 0x1, 1, grpc_msg(ld(1, b"before"))), "response")
# Floods: any reaction, as long as the server stays up and serves others.
raw("1000-streams-without-data", PREFACE + SETTINGS +
    b"".join(frame(1, 0x4, 2 * i + 1, grpc_headers(b"/etcdserverpb.KV/Range"))
             for i in range(1000)), ANY)
raw("rst-stream-flood", PREFACE + SETTINGS + b"".join(
    frame(1, 0x4, 2 * i + 1, grpc_headers(b"/etcdserverpb.KV/Range")) +
    frame(3, 0, 2 * i + 1, struct.pack(">I", 8)) for i in range(2000)), ANY)
raw("ping-flood", PREFACE + SETTINGS + frame(6, 0, 0, b"12345678") * 5000,
    ANY)
raw("settings-flood", PREFACE + SETTINGS * 5000, ANY)

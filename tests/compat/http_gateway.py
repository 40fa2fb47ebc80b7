#!/usr/bin/python3
"""http_gateway.py - HTTP/1.1 checks of cairnd's client port (helper of
http_gateway.test, which starts the servers).

usage: http_gateway.py CAIRN_PORT ETCD_PORT|- MAX_REQUEST_BYTES [CAIRN_PID]

Prints one line per check: "OK what" or "FAIL what: why". Checks:
 - the JSON gateway answers put/range/deleterange/txn/lease/errors with
   the same JSON as a real etcd 3.4.23 (when ETCD_PORT is given) after
   masking the member-specific values (ids, raft term, lease ids);
 - /health /livez /readyz /version /metrics forms;
 - python3-etcd3gw (api_path /v3/) put/get/delete/lease;
 - keep-alive, pipelining (GETs; behind a POST the connection is closed,
   an lws 4.1 limit), chunked bodies (accepted; the connection then
   closes, same reason);
 - hostile input: garbage bytes, oversized bodies (at the bound and one
   past it), malformed JSON, nesting bombs, huge headers, unknown paths,
   wrong methods; the server must answer each cleanly and stay up.
Every socket has a timeout; nothing here waits unboundedly.
"""
import base64
import http.client
import json
import os
import re
import socket
import sys
import time

CP = int(sys.argv[1])
EP = None if sys.argv[2] == "-" else int(sys.argv[2])
MAXREQ = int(sys.argv[3])
PID = int(sys.argv[4]) if len(sys.argv) > 4 else None
TIMEOUT = 10


def report(ok, what, why=""):
    print(("OK " if ok else "FAIL ") + what + ("" if ok else ": " + why))
    sys.stdout.flush()


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader("content-type") or "", r.read()
    finally:
        c.close()


def post(port, path, obj):
    body = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
    return request(port, "POST", path, body,
                   {"Content-Type": "application/json"})


MASK = {"cluster_id", "member_id", "raft_term"}


def masked(v, lease_ids=False):
    """Replace member-specific values so two servers can be compared."""
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k in MASK or (lease_ids and k == "ID"):
                out[k] = "*"
            else:
                out[k] = masked(x, lease_ids)
        return out
    if isinstance(v, list):
        return [masked(x, lease_ids) for x in v]
    return v


# ------------------------------------------------ gateway against etcd

# (name, path, body, mask lease ids). Run in order on both servers, which
# start empty, so revisions must agree too.
SCRIPT = [
    ("put", "/v3/kv/put", {"key": b64("foo"), "value": b64("bar")}, False),
    ("put prev_kv", "/v3/kv/put",
     {"key": b64("foo"), "value": b64("baz"), "prev_kv": True}, False),
    ("range", "/v3/kv/range", {"key": b64("foo")}, False),
    ("range missing key", "/v3/kv/range", {"key": b64("x")}, False),
    ("range all keys_only camelCase", "/v3/kv/range",
     {"key": "AA==", "rangeEnd": "AA==", "keysOnly": True}, False),
    ("range count_only, limit as string", "/v3/kv/range",
     {"key": "AA==", "range_end": "AA==", "count_only": True,
      "limit": "1"}, False),
    ("deleterange no-op", "/v3/kv/deleterange", {"key": b64("none")}, False),
    ("txn success put+range", "/v3/kv/txn",
     {"compare": [{"key": b64("foo"), "target": "VALUE",
                   "result": "EQUAL", "value": b64("baz")}],
      "success": [{"request_put": {"key": b64("foo"),
                                   "value": b64("qux")}},
                  {"request_range": {"key": b64("foo")}}]}, False),
    ("txn failure delete prev_kv", "/v3/kv/txn",
     {"compare": [{"key": b64("foo"), "target": "VALUE",
                   "value": b64("no")}],
      "failure": [{"request_delete_range": {"key": b64("foo"),
                                            "prev_kv": True}}]}, False),
    ("txn compare on version 0 (missing key)", "/v3/kv/txn",
     {"compare": [{"key": b64("foo"), "target": "VERSION",
                   "version": "0"}],
      "success": [{"request_put": {"key": b64("foo"),
                                   "value": b64("v2")}}]}, False),
    ("put for deleterange", "/v3/kv/put",
     {"key": b64("d/1"), "value": b64("x")}, False),
    ("deleterange prefix prev_kv", "/v3/kv/deleterange",
     {"key": b64("d/"), "range_end": b64("d0"), "prev_kv": True}, False),
    ("lease grant", "/v3/lease/grant", {"TTL": 30}, True),
    ("lease grant with ID as string", "/v3/lease/grant",
     {"TTL": "31", "ID": "77"}, False),
    ("error: empty key", "/v3/kv/put", {"key": ""}, False),
    ("error: future revision", "/v3/kv/range",
     {"key": b64("foo"), "revision": 99}, False),
    ("error: unknown lease revoke", "/v3/lease/revoke", {"ID": "12345"},
     False),
    ("error: lease ttl too large", "/v3/lease/grant",
     {"TTL": "9000000001"}, False),
    ("v3beta alias", "/v3beta/kv/range", {"key": b64("foo")}, False),
    ("kv/lease alias", "/v3/kv/lease/revoke", {"ID": "77"}, False),
]


def gateway_vs_etcd():
    for name, path, body, lease_ids in SCRIPT:
        c = post(CP, path, body)
        try:
            cj = json.loads(c[2])
        except ValueError:
            report(False, "gateway " + name, "cairnd body is not JSON: %r"
                   % c[2][:200])
            continue
        if EP is None:
            ok = c[0] in (200, 400, 404) and "application/json" in c[1]
            report(ok, "gateway " + name + " (no etcd to compare)",
                   "%d %r" % (c[0], cj))
            continue
        e = post(EP, path, body)
        ej = json.loads(e[2])
        same = c[0] == e[0] and masked(cj, lease_ids) == masked(ej, lease_ids)
        report(same, "gateway %s matches etcd 3.4.23 (HTTP %d)" % (name, c[0]),
               "cairnd %d %s\n#   etcd   %d %s" % (
                   c[0], json.dumps(cj, sort_keys=True), e[0],
                   json.dumps(ej, sort_keys=True)))


def gateway_shapes():
    s, ct, body = post(CP, "/v3/maintenance/status", {})
    j = json.loads(body)
    report(s == 200 and j.get("version") == "3.5.17" and "header" in j
           and isinstance(j.get("dbSize"), str) and "raftIndex" in j,
           "maintenance/status: version 3.5.17, proto names, int64 strings",
           "%d %r" % (s, j))
    s, ct, body = post(CP, "/v3/cluster/member/list", "")
    j = json.loads(body)
    m = (j.get("members") or [{}])[0]
    report(s == 200 and "ID" in m and m.get("clientURLs") ==
           ["http://127.0.0.1:%d" % CP] and "revision" not in j["header"],
           "cluster/member/list: empty body, ID/clientURLs as declared",
           "%d %r" % (s, j))
    # chunked request bodies are decoded (as etcd's gateway does); the
    # connection closes after the answer (tests/integration/http_body.test
    # covers framing, bounds and half-close)
    c = http.client.HTTPConnection("127.0.0.1", CP, timeout=TIMEOUT)
    body = json.dumps({"key": b64("chunked"), "value": b64("yes")}).encode()
    c.putrequest("POST", "/v3/kv/put")
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    c.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    r = c.getresponse()
    r.read()
    c.close()
    s, ct, got = post(CP, "/v3/kv/range", {"key": b64("chunked")})
    report(r.status == 200 and b64("yes").encode() in got,
           "chunked request body accepted and applied",
           "%d, then range %d %r" % (r.status, s, got[:200]))


# ------------------------------------------------------ plain endpoints

def endpoints():
    s, ct, body = request(CP, "GET", "/version")
    report(s == 200 and json.loads(body) ==
           {"etcdserver": "3.5.17", "etcdcluster": "3.5.0"},
           "GET /version", "%d %r" % (s, body))
    s, ct, body = request(CP, "GET", "/health")
    report(s == 200 and json.loads(body) == {"health": "true"},
           "GET /health", "%d %r" % (s, body))
    s, ct, body = request(CP, "GET", "/health?exclude=NOSPACE")
    report(s == 200 and json.loads(body)["health"] == "true",
           "GET /health?exclude=NOSPACE", "%d %r" % (s, body))
    s, ct, body = request(CP, "POST", "/health", "")
    report(s == 405, "POST /health is 405", "%d" % s)
    for p in ("/livez", "/readyz"):
        s, ct, body = request(CP, "GET", p)
        report(s == 200 and body == b"ok", "GET " + p, "%d %r" % (s, body))
    s, ct, body = request(CP, "GET", "/metrics")
    text = body.decode()
    want = ["etcd_server_has_leader 1", "etcd_server_is_leader 1",
            "etcd_server_leader_changes_seen_total",
            "etcd_server_proposals_committed_total",
            "etcd_server_proposals_applied_total",
            "etcd_server_proposals_pending", "etcd_server_proposals_failed_total",
            "etcd_mvcc_db_total_size_in_bytes",
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "etcd_server_quota_backend_bytes",
            'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"}',
            'etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf"}',
            "etcd_disk_wal_fsync_duration_seconds_count",
            "process_resident_memory_bytes", "process_cpu_seconds_total",
            "grpc_server_handled_total", "cairn_http_requests_total"]
    missing = [w for w in want if w not in text]
    report(s == 200 and not missing, "GET /metrics has etcd's names",
           "missing %r" % missing)
    bad = [l for l in text.splitlines() if l and not l.startswith("#") and
           not re.match(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? '
                        r'[-+0-9.eE]+(Inf)?$', l)]
    report(not bad, "/metrics lines are Prometheus text", "%r" % bad[:5])
    # the histogram is cumulative and ends at the count
    buckets = [int(x) for x in re.findall(
        r'^etcd_disk_wal_fsync_duration_seconds_bucket\{le="[^"]+"\} (\d+)$',
        text, re.M)]
    count = re.search(r'^etcd_disk_wal_fsync_duration_seconds_count (\d+)$',
                      text, re.M)
    report(len(buckets) == 15 and buckets == sorted(buckets) and count and
           buckets[-1] == int(count.group(1)) and buckets[-1] > 0,
           "fsync histogram: 15 cumulative buckets ending at the count",
           "%r %r" % (buckets, count and count.group(1)))
    for path, code in (("/nope", 404), ("/v3/kv/nope", 404),
                       ("/v3alpha/kv/range", 405)):
        s, ct, body = request(CP, "GET", path)
        report(s == code, "GET %s is %d" % (path, code), "%d" % s)
    s, ct, body = request(CP, "GET", "/v3/kv/range")
    report(s == 405, "GET on a gateway path is 405", "%d" % s)


# ------------------------------------------------------------ etcd3gw

def etcd3gw_client():
    try:
        from etcd3gw.client import Etcd3Client
    except ImportError as e:
        print("SKIP python3-etcd3gw: %s" % e)
        return
    c = Etcd3Client(host="127.0.0.1", port=CP, api_path="/v3/", timeout=10)
    ok = c.put("/gw/a", "v1")
    got = c.get("/gw/a")
    report(ok and got == [b"v1"], "etcd3gw put/get", "%r %r" % (ok, got))
    lease = c.lease(ttl=30)
    c.put("/gw/leased", "x", lease=lease)
    ttl = lease.ttl()
    keys = lease.keys()
    report(0 < ttl <= 30 and keys == [b"/gw/leased"],
           "etcd3gw lease grant, put with lease, ttl, keys",
           "%r %r" % (ttl, keys))
    pre = c.get_prefix("/gw/")
    report(sorted(v for v, m in pre) == [b"v1", b"x"], "etcd3gw get_prefix",
           "%r" % pre)
    d = c.delete("/gw/a")
    report(d and c.get("/gw/a") == [], "etcd3gw delete", "%r" % d)
    st = c.status()
    report(st.get("version") == "3.5.17", "etcd3gw status", "%r" % st)
    rv = lease.revoke()
    report(rv and c.get("/gw/leased") == [],
           "etcd3gw lease revoke removes its key", "%r" % rv)


# ------------------------------------------- connections and bad input

def raw(data, read_for=2.0, shut=True):
    """Send bytes on a fresh connection, return what comes back."""
    s = socket.create_connection(("127.0.0.1", CP), timeout=TIMEOUT)
    out = b""
    try:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        s.settimeout(read_for)
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
    except socket.timeout:
        pass
    except OSError:
        pass  # the server may close first (that is the point of some)
    s.close()
    return out


def keepalive_and_pipelining():
    c = http.client.HTTPConnection("127.0.0.1", CP, timeout=TIMEOUT)
    codes = []
    for i in range(5):
        c.request("POST", "/v3/kv/put", json.dumps(
            {"key": b64("ka"), "value": b64(str(i))}))
        r = c.getresponse()
        r.read()
        codes.append(r.status)
    c.request("GET", "/version")
    r = c.getresponse()
    r.read()
    codes.append(r.status)
    sock = c.sock
    c.close()
    report(codes == [200] * 6 and sock is not None,
           "six requests on one keep-alive connection", "%r" % codes)
    gets = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n" * 3
    out = raw(gets + b"GET /health HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n", read_for=3)
    n200 = out.count(b"HTTP/1.1 200")
    report(n200 == 4 and out.rstrip().endswith(b'{"health":"true"}'),
           "four pipelined GETs answered in order", "%d answers" % n200)
    # Requests pipelined behind a POST: lws 4.1 cannot hold them while the
    # POST waits for Raft; the connection is closed instead (no spin).
    body = json.dumps({"key": b64("ka")})
    one = ("POST /v3/kv/range HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
           "\r\n%s" % (len(body), body)).encode()
    cpu0 = cpu_seconds()
    t0 = time.time()
    out = raw(one * 3, read_for=3)
    n200 = out.count(b"HTTP/1.1 200")
    time.sleep(1)
    spent = cpu_seconds() - cpu0
    wall = time.time() - t0
    s, ct, b = request(CP, "GET", "/version")
    report(s == 200 and (spent < 0.5 * wall or cpu0 < 0),
           "POSTs pipelined behind a POST: connection ends, no spin "
           "(%d answered, %.2fs CPU in %.1fs)" % (n200, spent, wall),
           "status %d, cpu %.2f s in %.1f s" % (s, spent, wall))


def cpu_seconds():
    """cairnd's user+system CPU time, or -1 without its PID."""
    if PID is None:
        return -1.0
    with open("/proc/%d/stat" % PID) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hostile():
    out = raw(bytes(range(256)) * 8)
    report(b"HTTP/1.1 200" not in out, "garbage bytes get no 200",
           "%r" % out[:80])
    out = raw(b"\x00" * 100 + b"\r\n\r\n")
    report(True, "NUL bytes: connection handled (%d bytes back)" % len(out))
    s, ct, body = post(CP, "/v3/kv/put", "{bad")
    j = json.loads(body)
    report(s == 400 and j["code"] == 3 and "invalid JSON" in j["error"] and
           j["error"] == j["message"], "malformed JSON is 400 code 3",
           "%d %r" % (s, body))
    s, ct, body = post(CP, "/v3/kv/put", '{"key":"!!!"}')
    report(s == 400 and b"base64" in body, "bad base64 is 400",
           "%d %r" % (s, body))
    depth = MAXREQ // 2 - 8  # within the body bound: jansson's own bound
    s, ct, body = post(CP, "/v3/kv/txn", "[" * depth + "]" * depth)
    report(s == 400, "array nesting bomb is 400", "%d %r" % (s, body[:100]))
    nest = '{"success":[{"request_txn":' * 60 + "{}" + "}]}" * 60
    s, ct, body = post(CP, "/v3/kv/txn", nest)
    report(s == 400 and b"nested deeper" in body, "txn nesting bomb is 400",
           "%d %r" % (s, body[:200]))
    # at the body bound (accepted) and one past it (413, then closed)
    pad = MAXREQ - len(json.dumps({"key": b64("big"), "value": ""}))
    vlen = pad // 4 * 3
    doc = json.dumps({"key": b64("big"), "value": b64("v" * vlen)})
    doc = doc + " " * (MAXREQ - len(doc))
    s, ct, body = post(CP, "/v3/kv/put", doc)
    report(len(doc) == MAXREQ and s == 200,
           "body of exactly max-request-bytes (%d) accepted" % MAXREQ,
           "%d %d %r" % (len(doc), s, body[:200]))
    s, ct, body = post(CP, "/v3/kv/put", doc + " ")
    report(s == 413 and json.loads(body)["code"] == 8,
           "body one byte past max-request-bytes is 413",
           "%d %r" % (s, body[:200]))
    huge = ("POST /v3/kv/put HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
            "\r\n" % (50 * 1024 * 1024)).encode()
    out = raw(huge + b"{" * 1000, shut=False)
    report(b" 413 " in out.split(b"\r\n")[0],
           "announced 50 MiB body refused before it is read",
           "%r" % out[:80])
    out = raw(b"GET /version HTTP/1.1\r\nHost: x\r\nX-Big: " +
              b"a" * 100000 + b"\r\n\r\n")
    report(b"HTTP/1.1 200" not in out, "100 KB header line not served",
           "%r" % out[:80])
    s, ct, body = request(CP, "DELETE", "/v3/kv/range")
    report(s == 405, "DELETE on a gateway path is 405", "%d" % s)
    # many connections opened and dropped mid-request
    socks = []
    for i in range(50):
        so = socket.create_connection(("127.0.0.1", CP), timeout=TIMEOUT)
        so.sendall(b"POST /v3/kv/put HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 100\r\n\r\n{\"key\":")
        socks.append(so)
    for so in socks:
        so.close()
    s, ct, body = request(CP, "GET", "/version")
    report(s == 200, "50 half-sent requests dropped, server still answers",
           "%d" % s)


def head_and_options():
    """HEAD answers carry no body (a body would be read as the start of
    the next response on a kept-alive connection), OPTIONS is a CORS
    preflight answered 200 with the CORS headers and no body, on every
    path, and the same for a real etcd where the path is etcd's."""
    def pair(port, first, path):
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nOrigin: http://a.example"
                   "\r\nAccess-Control-Request-Method: POST\r\n\r\n"
                   "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close"
                   "\r\n\r\n" % (first, path)).encode())
        out = b""
        s.settimeout(3)
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                out += b
        except OSError:
            pass
        s.close()
        # the first answer's head, then exactly the second response
        head, _, rest = out.partition(b"\r\n\r\n")
        status = head.split(b"\r\n")[0].decode(errors="replace")
        cors = b"access-control-allow-origin: *" in head.lower()
        return status, cors, rest
    cases = [("HEAD", "/health", "405"), ("HEAD", "/version", "405"),
             ("HEAD", "/metrics", "200"), ("HEAD", "/v3/kv/range", "405"),
             ("HEAD", "/nonexistent", "404"),
             ("OPTIONS", "/v3/kv/range", "200"), ("OPTIONS", "/health", "200"),
             ("OPTIONS", "/metrics", "200"), ("OPTIONS", "/nonexistent", "200"),
             ("OPTIONS", "/api/v1/registry", "200"), ("HEAD", "/ui/", "200")]
    for meth, path, want in cases:
        st, cors, rest = pair(CP, meth, path)
        ok = (st.split(" ")[1:2] == [want] and cors and
              rest.startswith(b"HTTP/1.1 200") and
              rest.rstrip().endswith(b'{"health":"true"}'))
        why = "%s; then %r" % (st, rest[:80])
        vs = EP is not None and not path.startswith(("/api/", "/ui/"))
        if vs:
            est, ecors, erest = pair(EP, meth, path)
            ok = ok and est.split(" ")[1:2] == st.split(" ")[1:2]
            why += "; etcd: %s" % est
        report(ok, "%s %s: %s, no body, the next response on the same "
               "connection intact%s" % (meth, path, want,
                                        ", as etcd" if vs else ""), why)


def main():
    for name, fn in (("endpoints", endpoints),
                     ("gateway_vs_etcd", gateway_vs_etcd),
                     ("gateway_shapes", gateway_shapes),
                     ("etcd3gw", etcd3gw_client),
                     ("keepalive", keepalive_and_pipelining),
                     ("head_options", head_and_options),
                     ("hostile", hostile)):
        try:
            fn()
        except Exception as e:  # a crash of the server shows up here
            report(False, name, "%s: %s" % (type(e).__name__, e))


main()

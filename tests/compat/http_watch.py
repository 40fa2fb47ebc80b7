#!/usr/bin/python3
"""http_watch.py - gateway stream checks for http_watch.test.

Usage: http_watch.py compare C_PORT E_PORT   (E_PORT '-': cairnd alone)
       http_watch.py etcd3gw PORT
       http_watch.py raw PORT BODY_JSON SECONDS   (print the raw chunks)

Prints one line per check, "ok <what>" or "FAIL <what>: <detail>"; the
shell test turns them into TAP. Every socket read has a deadline.

compare: the same writes on cairnd and a reference etcd 3.4, then the
same watch and keep-alive streams read as raw HTTP/1.1 (status, chunked
framing, one {"result"} line per chunk) and compared after masking only
member-specific values (cluster_id, member_id, raft_term).
"""
import base64
import json
import os
import re
import socket
import sys
import threading
import time

T = float(os.environ.get("CAIRN_TIMEOUT_SCALE", "1"))
fails = 0


def say(ok, what, detail=""):
    global fails
    if ok:
        print("ok " + what, flush=True)
    else:
        fails += 1
        print("FAIL %s: %s" % (what, detail), flush=True)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def post(port, path, body):
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * T)
    data = body.encode()
    s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
               "Connection: close\r\n\r\n" % (path, len(data))).encode() + data)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    head, _, rest = out.partition(b"\r\n\r\n")
    return head.decode(), rest


class Stream:
    """A POST whose chunked answer is read in a thread, chunk by chunk."""

    def __init__(self, port, path, body):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=None)
        data = body.encode()
        self.s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                        "\r\n\r\n" % (path, len(data))).encode() + data)
        self.buf = b""
        self.status = None
        self.headers = {}
        self.chunks = []
        self.ended = False  # the 0-length chunk came
        self.closed = False
        self.bad = None
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while True:
            try:
                d = self.s.recv(65536)
            except OSError:
                d = b""
            if not d:
                self.closed = True
                return
            with self.lock:
                self.buf += d
                self.parse()

    def parse(self):
        if self.status is None:
            i = self.buf.find(b"\r\n\r\n")
            if i < 0:
                return
            lines = self.buf[:i].decode().split("\r\n")
            self.status = int(lines[0].split()[1])
            for l in lines[1:]:
                k, _, v = l.partition(":")
                self.headers[k.strip().lower()] = v.strip()
            self.buf = self.buf[i + 4:]
        if self.headers.get("transfer-encoding") != "chunked":
            return
        while not self.ended:
            i = self.buf.find(b"\r\n")
            if i < 0:
                return
            try:
                n = int(self.buf[:i], 16)
            except ValueError:
                self.bad = "bad chunk size %r" % self.buf[:i]
                return
            if len(self.buf) < i + 2 + n + 2:
                return
            if self.buf[i + 2 + n:i + 4 + n] != b"\r\n":
                self.bad = "chunk not followed by CRLF"
                return
            c = self.buf[i + 2:i + 2 + n]
            self.buf = self.buf[i + 4 + n:]
            if n == 0:
                self.ended = True
            else:
                self.chunks.append(c)

    def wait(self, cond, secs):
        end = time.time() + secs * T
        while time.time() < end:
            with self.lock:
                if cond(self):
                    return True
            time.sleep(0.02)
        return False

    def close(self):
        try:
            self.s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.s.close()


MASK = re.compile(r'"(cluster_id|member_id|raft_term)":"[0-9]+"')


def norm(chunks):
    return [MASK.sub(r'"\1":"N"', c.decode()) for c in chunks]


def lines_ok(st):
    """Each chunk is one JSON line: {"result":...} and a newline."""
    for c in st.chunks:
        if not c.endswith(b"\n") or c.count(b"\n") != 1:
            return "chunk %r is not one line" % c[:80]
        j = json.loads(c)
        if list(j.keys()) != ["result"]:
            return "chunk %r is not {\"result\":...}" % c[:80]
    return None


def writes(port):
    # same writes, same revisions on both servers
    post(port, "/v3/kv/put", json.dumps({"key": b64("w/a"), "value": b64("1")}))
    post(port, "/v3/kv/put", json.dumps({"key": b64("w/b"), "value": b64("2")}))
    post(port, "/v3/lease/grant", json.dumps({"TTL": 60, "ID": 4660}))


def watch_scenario(port):
    """Two watches in one body: w/a from revision 1, prefix x/ with
    prev_kv from now; then writes that each match one of them."""
    body = (json.dumps({"create_request": {"key": b64("w/a"),
                                           "start_revision": 1}}) + "\n" +
            json.dumps({"create_request": {"key": b64("x/"),
                                           "range_end": b64("x0"),
                                           "prev_kv": True}}))
    st = Stream(port, "/v3/watch", body)
    got = st.wait(lambda s: len(s.chunks) >= 3, 10)
    post(port, "/v3/kv/put", json.dumps({"key": b64("x/1"), "value": b64("a")}))
    post(port, "/v3/kv/put", json.dumps({"key": b64("x/1"), "value": b64("b")}))
    post(port, "/v3/kv/put", json.dumps({"key": b64("w/a"), "value": b64("3")}))
    post(port, "/v3/kv/deleterange", json.dumps({"key": b64("x/1")}))
    post(port, "/v3/kv/deleterange", json.dumps({"key": b64("w/a")}))
    got = got and st.wait(lambda s: len(s.chunks) >= 8, 10)
    st.close()
    return st, got


def keepalive_scenario(port):
    body = '{"ID":4660}\n{"ID":999}\n{"ID":"4660"}'
    st = Stream(port, "/v3/lease/keepalive", body)
    st.wait(lambda s: s.ended or s.closed, 10)
    st.close()
    return st


def compare(cport, eport):
    ports = [cport] + ([eport] if eport else [])
    for p in ports:
        writes(p)
    ws = [watch_scenario(p) for p in ports]
    st, got = ws[0]
    say(got and st.status == 200, "cairnd watch stream: 200 and 8 messages",
        "status %s, %d chunks" % (st.status, len(st.chunks)))
    say(st.headers.get("transfer-encoding") == "chunked" and
        st.headers.get("content-type") == "application/json",
        "cairnd watch stream: chunked application/json", str(st.headers))
    bad = st.bad or lines_ok(st)
    say(bad is None, "cairnd watch stream: one {\"result\"} line per chunk",
        str(bad))
    if eport:
        e, _ = ws[1]
        a, b = norm(st.chunks), norm(e.chunks)
        say(a == b, "watch stream equals etcd 3.4's, line for line",
            "\n  cairnd: %s\n  etcd:   %s" % ("\n          ".join(a),
                                              "\n          ".join(b)))
    ks = [keepalive_scenario(p) for p in ports]
    k = ks[0]
    say(k.status == 200 and k.ended and len(k.chunks) == 3,
        "cairnd keep-alive stream: 3 answers, then the final chunk",
        "status %s ended %s chunks %d" % (k.status, k.ended, len(k.chunks)))
    bad = k.bad or lines_ok(k)
    say(bad is None, "cairnd keep-alive: one {\"result\"} line per chunk",
        str(bad))
    ttls = [json.loads(c)["result"].get("TTL") for c in k.chunks]
    say(ttls == ["60", None, "60"],
        "keep-alive TTLs: 60, absent for an unknown lease, 60", str(ttls))
    if eport:
        a, b = norm(k.chunks), norm(ks[1].chunks)
        say(a == b, "keep-alive stream equals etcd 3.4's", "%s\n%s" % (a, b))
    # the edges etcd's gateway shows
    for p in ports:
        who = "cairnd" if p == cport else "etcd"
        h, body = post(p, "/v3/watch", "garbage")
        ok = h.startswith("HTTP/1.1 500") and json.loads(body)["code"] == 2
        say(ok, "%s: an undecodable first watch message: 500, code 2" % who,
            h.split("\r\n")[0] + " " + body.decode()[:100])
        h, body = post(p, "/v3/lease/keepalive", "")
        say(h.startswith("HTTP/1.1 200") and body == b"0\r\n\r\n",
            "%s: an empty keep-alive body: 200, empty stream" % who,
            h.split("\r\n")[0] + " %r" % body)
        h, body = post(p, "/v3/lease/keepalive", '{"ID":4660} trailing')
        say(h.startswith("HTTP/1.1 200") and body.count(b'"result"') == 1,
            "%s: keep-alive stops at an undecodable later message" % who,
            "%r" % body[:200])
        h, _ = post(p, "/v3/kv/lease/keepalive", '{"ID":4660}')
        say(h.startswith("HTTP/1.1 404"),
            "%s: /v3/kv/lease/keepalive is not a route (404)" % who,
            h.split("\r\n")[0])
        h, body = post(p, "/v3beta/lease/keepalive", '{"ID":4660}')
        say(h.startswith("HTTP/1.1 200") and b'"TTL":"60"' in body,
            "%s: /v3beta/lease/keepalive alias" % who, h.split("\r\n")[0])


def etcd3gw_check(port):
    from etcd3gw.client import Etcd3Client
    c = Etcd3Client(host="127.0.0.1", port=port, api_path="/v3/")
    lease = c.lease(ttl=30)
    ttl = lease.refresh()
    say(isinstance(ttl, int) and 25 <= ttl <= 30,
        "etcd3gw lease.refresh() through /v3/lease/keepalive", str(ttl))
    events = []
    done = threading.Event()
    it, cancel = c.watch_prefix("gw3/")

    def reader():
        for e in it:
            events.append((e["kv"]["key"], e["kv"].get("value")))
            if len(events) == 5:
                break
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    time.sleep(0.3 * T)
    for i in range(5):
        c.put("gw3/%d" % i, "v%d" % i, lease=lease)
    done.wait(10 * T)
    cancel()
    want = [(("gw3/%d" % i).encode(), ("v%d" % i).encode()) for i in range(5)]
    say(events == want, "etcd3gw watch_prefix sees every put in order",
        str(events))
    say(lease.revoke() is True, "etcd3gw lease.revoke()")


def main():
    mode = sys.argv[1]
    if mode == "compare":
        compare(int(sys.argv[2]),
                int(sys.argv[3]) if sys.argv[3] != "-" else None)
    elif mode == "etcd3gw":
        etcd3gw_check(int(sys.argv[2]))
    elif mode == "raw":
        st = Stream(int(sys.argv[2]), "/v3/watch", sys.argv[3])
        st.wait(lambda s: False, float(sys.argv[4]))
        for c in st.chunks:
            sys.stdout.write(c.decode())
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()

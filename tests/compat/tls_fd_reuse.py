"""tls_fd_reuse.py TLS_EP PLAIN_EP CA CERT KEY TOKEN

A TLS client with a certificate (CN=root) watches big/ through the gateway
and does not read; big values are put until the server closes the stalled
stream (--stall-timeout). The HTTP side has then closed its end of the
TLS connection's socketpair while the TLS side still holds the
connection, waiting for the client to read. Plain http:// connections
opened now take the lowest free fd numbers, the freed one among them; each
asks for an API answer that needs a user. Prints "plain <status>" for
each, then "tls <bytes>" for what the watcher could still read.
"""
import base64
import json
import socket
import ssl
import sys
import time
import urllib.request

tls_ep, plain_ep, ca, cert, key, token = sys.argv[1:7]


def hp(ep):
    h, p = ep.rsplit(":", 1)
    return h, int(p)


def put(k, v):
    body = json.dumps({"key": base64.b64encode(k).decode(),
                       "value": base64.b64encode(v).decode()}).encode()
    r = urllib.request.Request("http://%s/v3/kv/put" % plain_ep, data=body,
                               headers={"Authorization": token})
    urllib.request.urlopen(r, timeout=20).read()


def read_all(s):
    """What s sends until EOF (or an error, or 20 s of silence)."""
    data = b""
    try:
        while True:
            d = s.recv(1 << 20)
            if not d:
                break
            data += d
    except (socket.timeout, ssl.SSLError, OSError):
        pass
    s.close()
    return data


def stalled(metrics):
    return sum(float(ln.split()[-1]) for ln in metrics.splitlines()
               if ln.startswith("cairn_http_streams_stalled_total"))


ctx = ssl.create_default_context(cafile=ca)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
watchers = []
for i in range(4):
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(20)
    raw.connect(hp(tls_ep))
    t = ctx.wrap_socket(raw, server_hostname="localhost")
    body = json.dumps({"create_request": {
        "key": base64.b64encode(b"big/").decode(),
        "range_end": base64.b64encode(b"big0").decode()}}).encode()
    t.sendall(b"POST /v3/watch HTTP/1.1\r\nHost: x\r\nAuthorization: "
              + token.encode() + b"\r\nContent-Length: "
              + str(len(body)).encode() + b"\r\n\r\n" + body)
    watchers.append(t)
time.sleep(0.3)
v = b"v" * (1 << 20)
for i in range(16):  # 16 MiB of events, 4 watchers: all stall
    put(b"big/%02d" % i, v)
# --stall-timeout 1s: wait (bounded) until the four streams are cut off,
# so the plain connections below come after the ends were closed
for _ in range(300):
    m = urllib.request.urlopen("http://%s/metrics" % plain_ep,
                               timeout=20).read().decode()
    if stalled(m) >= len(watchers):
        break
    time.sleep(0.1)
plain = [socket.create_connection(hp(plain_ep), timeout=20)
         for i in range(32)]
for s in plain:
    s.sendall(b"GET /api/v1/registry/bank/vault HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n")
out = []
for s in plain:
    line = read_all(s).split(b"\r\n", 1)[0].decode(errors="replace")
    line = line.split(" ")
    out.append("plain %s" % (line[1] if len(line) > 1 else "none"))
for t in watchers:
    out.append("tls %d" % len(read_all(t)))
print("\n".join(out))

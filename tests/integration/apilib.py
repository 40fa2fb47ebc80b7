"""apilib - HTTP helpers shared by the /api/v1 tests: one request with a
JSON body (or a bare oversized announcement), and an SSE subscriber that
records each event in order."""
import http.client
import json
import threading
import time

import cairnlib as L


def big_req(port, method, path, length):
    """Headers announcing length bytes, no body: the server answers from
    Content-Length alone (it closes after a 413, so a client still
    sending the body could see its connection reset before the answer)."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
               "application/json\r\nContent-Length: %d\r\n\r\n" %
               (method, path, length)).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, text = data.decode().partition("\r\n\r\n")
    st = int(head.split()[1]) if head else 0
    try:
        js = json.loads(text)
    except ValueError:
        js = None
    return st, js, text


def req(port, method, path, body=None, headers=None, raw=None):
    if raw is not None and len(raw) > 1 << 20:
        return big_req(port, method, path, len(raw))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = raw if raw is not None else (
        json.dumps(body) if body is not None else None)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    text = r.read().decode()
    c.close()
    try:
        js = json.loads(text) if text else None
    except ValueError:
        js = None
    return r.status, js, text


class Sse:
    """A discovery subscriber over SSE: records each event in order."""

    def __init__(self, port, path, last_id=None, headers=None):
        self.events = []
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        h = {"Accept": "text/event-stream"}
        h.update(headers or {})
        if last_id is not None:
            h["Last-Event-ID"] = str(last_id)
        self.conn.request("GET", path, headers=h)
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.ctype = self.resp.getheader("content-type")
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        ev = {}
        try:
            while True:
                line = self.resp.fp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\r\n")
                if line == "":
                    if "data" in ev:
                        d = json.loads(ev["data"])
                        d["_id"] = int(ev.get("id", "0"))
                        d["_at"] = time.monotonic()
                        self.events.append(d)
                    ev = {}
                elif ":" in line:
                    k, v = line.split(":", 1)
                    ev[k] = v.strip()
        except Exception:  # noqa: BLE001 - the test closes it
            return

    def wait(self, pred, timeout=10):
        end = time.monotonic() + timeout * L.T
        while time.monotonic() < end:
            for e in self.events:
                if pred(e):
                    return e
            time.sleep(0.05)
        return None

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except Exception:  # noqa: BLE001
            pass
        self.conn.close()

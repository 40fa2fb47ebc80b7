"""watch_failover.py - helpers for watch_failover.test and lease_failover.test.

Does: runs real watch clients as child processes and records what they
      received with the local monotonic time of receipt: `etcdctl watch -w
      json` (Go clientv3) and watch_failover.js (npm `etcd3` on
      @grpc/grpc-js); installs npm `etcd3` into $CAIRN_BUILD/npm when it is
      missing; reads a key range's history revision by revision; checks a
      watcher's events against that history and the writer's ledger.
Owns: the child processes it started (signalled by PID only) and their
      reader threads.
"""

import base64
import json
import os
import subprocess
import threading
import time

import grpc
from etcd3.etcdrpc import rpc_pb2 as rpc

import cairnlib as L

HERE = os.path.dirname(os.path.abspath(__file__))
NPM_DIR = os.path.join(L.BUILD, "npm")


def ensure_etcd3(log_path):
    """NODE_PATH holding npm etcd3, installing it when missing; None (and a
    reason) when node or npm cannot provide it."""
    nm = os.path.join(NPM_DIR, "node_modules")
    if os.path.isdir(os.path.join(nm, "etcd3")):
        return nm, None
    for tool in ("node", "npm"):
        if subprocess.run(["sh", "-c", "command -v " + tool],
                          stdout=subprocess.DEVNULL).returncode != 0:
            return None, "%s is not installed" % tool
    os.makedirs(NPM_DIR, exist_ok=True)
    # Saved in package.json, so a later `npm install ws` keeps it.
    with open(log_path, "wb") as log:
        try:
            subprocess.run(["npm", "install", "--prefix", NPM_DIR,
                            "--no-audit", "--no-fund", "--loglevel=error",
                            "etcd3@1"], stdout=log, stderr=log, timeout=300)
        except subprocess.TimeoutExpired:
            pass
    if os.path.isdir(os.path.join(nm, "etcd3")):
        return nm, None
    return None, "npm could not install etcd3 (see %s)" % log_path


class Ev:
    """One received event: receipt time, revision, PUT/DELETE, key, value,
    and the member that sent the response."""
    __slots__ = ("t", "rev", "type", "key", "value", "member")

    def __init__(self, t, rev, typ, key, value, member):
        self.t, self.rev, self.type = t, rev, typ
        self.key, self.value, self.member = key, value, member

    def __repr__(self):
        return "%s@%d %s=%s" % (self.type, self.rev, self.key, self.value)


class Watcher:
    """A watch client process whose stdout is parsed line by line."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.lock = threading.Lock()
        self.events = []
        self.notes = []  # (t, text): connects, disconnects, errors
        self.members = []  # member id of each response, in order
        self.exit_code = None
        self.stopped = False
        self.err = open(log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                     stderr=self.err,
                                     stdin=subprocess.DEVNULL, env=env)
        self.th = threading.Thread(target=self._read, daemon=True)
        self.th.start()

    def _read(self):
        for raw in self.proc.stdout:
            t = L.now()
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                self.parse(t, line)
            except (ValueError, KeyError, IndexError) as e:
                with self.lock:
                    self.notes.append((t, "unparsed %r: %s" % (line[:200],
                                                                e)))
        self.exit_code = self.proc.wait()

    def last_rev(self):
        with self.lock:
            return self.events[-1].rev if self.events else 0

    def member(self):
        with self.lock:
            return self.members[-1] if self.members else None

    def wait_rev(self, rev, timeout):
        deadline = L.now() + timeout * L.T
        while L.now() < deadline:
            if self.last_rev() >= rev:
                return True
            if self.proc.poll() is not None and not self.th.is_alive():
                return False
            time.sleep(0.05)
        return self.last_rev() >= rev

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM (our own child, by PID); SIGKILL after 5 s."""
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.th.join(5)
        self.err.close()

    def stderr_tail(self, n=10):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace")
                                 .splitlines()[-n:])
        except OSError as e:
            return str(e)


class EtcdctlWatch(Watcher):
    """`etcdctl watch --prefix P --rev=R -w json` (clientv3 of etcd 3.4):
    one JSON WatchResponse per line."""

    def __init__(self, name, eps, prefix, rev, log_path, prev_kv=False):
        argv = [L.ETCDCTL, "--endpoints=" + ",".join(eps),
                "--dial-timeout=3s", "watch", "--prefix", prefix,
                "--rev=%d" % rev, "-w", "json"]
        if prev_kv:
            argv.append("--prev-kv")
        Watcher.__init__(self, name, argv, log_path,
                         env=dict(os.environ, ETCDCTL_API="3"))

    def parse(self, t, line):
        if not line.startswith("{"):
            with self.lock:
                self.notes.append((t, line[:200]))
            return
        r = json.loads(line)
        mid = r.get("Header", {}).get("member_id")
        evs = []
        for e in r.get("Events") or []:
            kv = e["kv"]
            typ = "DELETE" if e.get("type") == 1 else "PUT"
            val = base64.b64decode(kv.get("value", "")).decode()
            evs.append(Ev(t, int(kv["mod_revision"]),
                          typ, base64.b64decode(kv["key"]).decode(), val,
                          mid))
        with self.lock:
            self.members.append(mid)
            self.events.extend(evs)
            if r.get("Canceled"):
                self.notes.append((t, "canceled: %s" % line[:200]))


class NodeWatch(Watcher):
    """watch_failover.js: npm etcd3's watch builder with its own reconnect
    and resume logic. Lines: C (connected), D (disconnected), E (event),
    X (watcher error)."""

    def __init__(self, name, eps, prefix, rev, log_path, node_path):
        argv = ["node", os.path.join(HERE, "watch_failover.js"),
                ",".join(eps), prefix, str(rev)]
        Watcher.__init__(self, name, argv, log_path,
                         env=dict(os.environ, NODE_PATH=node_path))

    def parse(self, t, line):
        f = line.split(" ")
        if f[0] == "E":
            # E member type rev key value
            ev = Ev(t, int(f[3]), f[2].upper(), f[4],
                    f[5] if len(f) > 5 else "", int(f[1]))
            with self.lock:
                self.members.append(ev.member)
                self.events.append(ev)
        elif f[0] == "C":
            with self.lock:
                self.members.append(int(f[1]))
                self.notes.append((t, line))
        else:
            with self.lock:
                self.notes.append((t, line[:300]))


def history(client, prefix, first, last):
    """The events of prefix for revisions first..last from range reads at
    each revision: {rev: (type, key, value)}. A key present at rev r with
    mod_revision r was put at r; a key present at r-1 and gone at r was
    deleted at r."""
    out = {}
    prev = None
    if first > 1:
        prev, _ = _at(client, prefix, first - 1)
    for r in range(first, last + 1):
        cur, _ = _at(client, prefix, r)
        for k, (v, mr) in cur.items():
            if mr == r:
                out.setdefault(r, []).append(("PUT", k, v))
        if prev is not None:
            for k in prev:
                if k not in cur:
                    out.setdefault(r, []).append(("DELETE", k, ""))
        prev = cur
    return out


def _at(client, prefix, rev):
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    for attempt in range(5):
        try:
            r = client.kv.Range(rpc.RangeRequest(
                key=prefix.encode(), range_end=end.encode(), revision=rev),
                timeout=5 * L.T)
            return {kv.key.decode(): (kv.value.decode(), kv.mod_revision)
                    for kv in r.kvs}, r
        except grpc.RpcError:
            if attempt == 4:
                raise
            time.sleep(0.3)


def check_watcher(events, hist, first, last, acked, unknown):
    """Compare one watcher's events (revisions first..last) with the history
    and the writer's ledger. acked: {value: rev}; unknown: set of values.
    Returns (problems: list of text, stats: dict)."""
    probs = []
    evs = [e for e in events if first <= e.rev <= last]
    later = [e for e in events if e.rev > last]
    dup = order = 0
    for a, b in zip(evs, evs[1:]):
        if b.rev == a.rev and (b.key, b.type) == (a.key, a.type):
            dup += 1
            if dup <= 3:
                probs.append("duplicate %r after %r" % (b, a))
        elif b.rev < a.rev:
            order += 1
            if order <= 3:
                probs.append("out of order: %r after %r" % (b, a))
    seen = {}
    for e in evs:
        seen.setdefault(e.rev, []).append((e.type, e.key, e.value))
    missing = [r for r in sorted(hist) if r not in seen]
    extra = [r for r in sorted(seen) if r not in hist]
    wrong = [r for r in sorted(hist) if r in seen and
             sorted(set(seen[r])) != sorted(hist[r])]
    if missing:
        probs.append("%d revisions of the history not seen, first %s"
                     % (len(missing), missing[:8]))
    if extra:
        probs.append("%d revisions seen that the history lacks, first %s"
                     % (len(extra), extra[:8]))
    if wrong:
        probs.append("%d revisions with other events than the history, "
                     "first rev %d: saw %s, history %s" % (
                         len(wrong), wrong[0], seen[wrong[0]],
                         hist[wrong[0]]))
    count = {}
    for e in evs:
        if e.type == "PUT":
            count[e.value] = count.get(e.value, 0) + 1
    lost_acked = [v for v in acked if count.get(v, 0) == 0]
    twice = [v for v, n in count.items() if n > 1]
    badrev = [v for v, r in acked.items()
              if count.get(v) == 1 and
              [e.rev for e in evs if e.value == v][0] != r]
    phantom = [v for v in count if v not in acked and v not in unknown]
    if lost_acked:
        probs.append("%d acknowledged writes never seen, e.g. %s" % (
            len(lost_acked), sorted(lost_acked)[:5]))
    if twice:
        probs.append("%d values seen more than once, e.g. %s" % (
            len(twice), twice[:5]))
    if badrev:
        probs.append("%d acknowledged writes seen at another revision than "
                     "acknowledged, e.g. %s" % (len(badrev), badrev[:5]))
    if phantom:
        probs.append("%d values seen that were never written, e.g. %s" % (
            len(phantom), phantom[:5]))
    stats = {"events": len(evs), "dups": dup, "out_of_order": order,
             "missing": len(missing), "extra": len(extra),
             "unknown_seen": sum(1 for v in unknown if count.get(v)),
             "after_last": len(later)}
    return probs, stats

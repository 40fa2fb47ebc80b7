"""cairnlib.py - driver for the fault tests: real cairnd processes on loopback.

Does: starts and stops cairnd members (subprocess; temp data dirs; free
      127.0.0.1 ports), injects faults (SIGKILL, SIGSTOP/SIGCONT, restarts,
      partitions through a userspace peer-port proxy, a full tmpfs data dir),
      runs concurrent clients (python3-etcd3's gRPC stubs) that write unique
      values and record every operation's invocation, completion and outcome,
      and checks the end state: the history is linearizable (lincheck.py),
      every acknowledged write is present, every member's HashKV at one
      revision is equal.
Owns: the processes it started (it signals only their PIDs), its temp dir
      (removed when the test passed, kept with the members' logs otherwise),
      proxy sockets and threads, tmpfs mounts it made.
Env:  CAIRN_BUILD (build dir holding cairnd), FULL=1 (long form),
      CAIRN_TIMEOUT_SCALE (stretch every wait, e.g. 3 under sanitizers),
      KEEP_TMP=1 (keep the temp dir even when the test passed).
Partitions: a member's advertised peer URL points at a proxy that forwards to
      its real peer port. The proxy reads the transport hello (32 bytes: magic,
      version, channel, flags, cluster id, dialler member id, target id) to
      learn which member dialled, so each direction of each link can be cut.
      A cut link holds its bytes (nothing is read or forwarded, as with a
      black hole: TCP buffers fill, the sender sees a stall, not a reset);
      healing releases them in order.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from etcd3.etcdrpc import rpc_pb2 as rpc
from etcd3.etcdrpc import rpc_pb2_grpc as rpcg

import lincheck

ROOT = os.environ.get("CAIRN_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("CAIRN_BUILD") or os.path.join(ROOT, "build",
                                                      "release")
CAIRND = os.path.join(BUILD, "cairnd")
ETCDCTL = os.environ.get("CAIRN_ETCDCTL", "/usr/bin/etcdctl")
FULL = os.environ.get("FULL", "") not in ("", "0")
T = float(os.environ.get("CAIRN_TIMEOUT_SCALE", "1") or 1)
# Flags every cairnd a test starts gets first (e.g. --store-writemap, to
# run a test against that mode): the test's own flags come after.
EXTRA_FLAGS = os.environ.get("TEST_CAIRND_FLAGS", "").split()

now = time.monotonic


# ---------------------------------------------------------------- TAP

class Tap:
    def __init__(self):
        self.n = 0
        self.fails = 0
        self.clusters = []

    def ok(self, cond, what, diag=None):
        self.n += 1
        if cond:
            print("ok %d - %s" % (self.n, what), flush=True)
        else:
            self.fails += 1
            print("not ok %d - %s" % (self.n, what), flush=True)
            if diag:
                self.diag(diag)
        return bool(cond)

    def skip(self, what, why):
        self.n += 1
        print("ok %d - %s # SKIP %s" % (self.n, what, why), flush=True)

    def diag(self, text):
        for line in str(text).splitlines():
            print("#   " + line, flush=True)

    def note(self, text):
        print("# " + text, flush=True)

    def end(self):
        print("1..%d" % self.n, flush=True)
        return 1 if self.fails else 0


# ---------------------------------------------------------------- ports

_ports_lock = threading.Lock()
_ports_given = set()


def _port_span():
    """Ports to pick from: below the kernel's ephemeral range, so that no
    outgoing connection takes a member's port while the member restarts
    (the kernel hands those out as local ports)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            a, b = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return 20000, 59000
    if a - 2 >= 12000:
        return 10000, a - 2
    if b < 63000:
        return b + 1, 65533
    return 20000, 59000


def free_port():
    """A random loopback port free right now and not handed out before."""
    lo, hi = _port_span()
    with _ports_lock:
        for _ in range(500):
            p = random.randint(lo, hi)
            if p in _ports_given:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
            finally:
                s.close()
            _ports_given.add(p)
            return p
    raise RuntimeError("no free port")


# ---------------------------------------------------------------- proxy

HELLO = 32


class Net:
    """Link state between members for the peer proxies."""

    def __init__(self):
        self.lock = threading.Lock()
        self.cut = set()  # (from_name, to_name)
        self.id2name = {}
        self.proxies = []
        self.cond = threading.Condition(self.lock)

    def blocked(self, a, b):
        return (a, b) in self.cut

    def set_cut(self, pairs):
        with self.cond:
            self.cut = set(pairs)
            self.cond.notify_all()

    def isolate(self, name, names):
        """Cut every link to and from name (both directions)."""
        pairs = set()
        for o in names:
            if o != name:
                pairs.add((name, o))
                pairs.add((o, name))
        self.set_cut(pairs)

    def split(self, groups):
        """Symmetric partition into groups (lists of names)."""
        pairs = set()
        for g in groups:
            for h in groups:
                if g is h:
                    continue
                for a in g:
                    for b in h:
                        pairs.add((a, b))
        self.set_cut(pairs)

    def heal(self):
        self.set_cut(())

    def name_of(self, x):
        """A member name from a name or a member id (ids learned late)."""
        if isinstance(x, int):
            return self.id2name.get(x, "id:%x" % x)
        return x

    def wait_open(self, a, b, stop):
        with self.cond:
            while (self.name_of(a), self.name_of(b)) in self.cut and \
                    not stop.is_set():
                self.cond.wait(0.2)

    def close(self):
        for p in self.proxies:
            p.close()


class PeerProxy:
    """Listens on a member's advertised peer port, forwards to its real one."""

    def __init__(self, net, name, listen_port, target_port):
        self.net = net
        self.name = name
        self.target = target_port
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", listen_port))
        self.sock.listen(64)
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,),
                             daemon=True).start()

    def _recv_exact(self, s, n):
        b = b""
        while len(b) < n:
            d = s.recv(n - len(b))
            if not d:
                return None
            b += d
        return b

    def _serve(self, c):
        up = None
        with self.lock:
            self.conns.append(c)
        try:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            hello = self._recv_exact(c, HELLO)
            if hello is None:
                return
            src = struct.unpack(">Q", hello[16:24])[0]  # dialler's id
            dst = self.name
            # A cut link: the dialler's bytes are never read or answered.
            self.net.wait_open(src, dst, self.stop)
            if self.stop.is_set():
                return
            up = socket.create_connection(("127.0.0.1", self.target), 2)
            up.settimeout(None)
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.conns.append(up)
            up.sendall(hello)
            t = threading.Thread(target=self._pump, args=(up, c, dst, src),
                                 daemon=True)
            t.start()
            self._pump(c, up, src, dst)
            t.join()
        except OSError:
            pass
        finally:
            for s in (c, up):
                if s is not None:
                    try:
                        s.close()
                    except OSError:
                        pass
            with self.lock:
                for s in (c, up):
                    if s in self.conns:
                        self.conns.remove(s)

    def _pump(self, a, b, src, dst):
        try:
            while not self.stop.is_set():
                self.net.wait_open(src, dst, self.stop)
                d = a.recv(65536)
                if not d:
                    break
                self.net.wait_open(src, dst, self.stop)
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


# ---------------------------------------------------------------- clients

CHANNEL_OPTS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 2000),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.enable_retries", 0),
    ("grpc.max_receive_message_length", 256 << 20),
]


class Client:
    """gRPC stubs to one member."""

    def __init__(self, port, timeout=2.0):
        self.port = port
        self.timeout = timeout * T
        self.ch = grpc.insecure_channel("127.0.0.1:%d" % port,
                                        options=CHANNEL_OPTS)
        self.kv = rpcg.KVStub(self.ch)
        self.maint = rpcg.MaintenanceStub(self.ch)
        self.cluster = rpcg.ClusterStub(self.ch)

    def close(self):
        self.ch.close()

    def put(self, key, value, timeout=None):
        return self.kv.Put(rpc.PutRequest(key=key.encode(),
                                          value=value.encode()),
                           timeout=timeout or self.timeout)

    def get(self, key, serializable=False, timeout=None):
        r = self.kv.Range(rpc.RangeRequest(key=key.encode(),
                                           serializable=serializable),
                          timeout=timeout or self.timeout)
        if not r.kvs:
            return None, r
        return r.kvs[0].value.decode(), r

    def prefix(self, p, serializable=False, timeout=None, revision=0):
        end = p[:-1] + chr(ord(p[-1]) + 1)
        r = self.kv.Range(rpc.RangeRequest(key=p.encode(),
                                           range_end=end.encode(),
                                           serializable=serializable,
                                           revision=revision),
                          timeout=timeout or self.timeout)
        return {kv.key.decode(): kv.value.decode() for kv in r.kvs}, r

    def delete(self, key, timeout=None):
        r = self.kv.DeleteRange(rpc.DeleteRangeRequest(key=key.encode(),
                                                       prev_kv=True),
                                timeout=timeout or self.timeout)
        if r.prev_kvs:
            return r.prev_kvs[0].value.decode(), r
        return None, r

    def cas(self, key, expect, value, timeout=None):
        cmp = rpc.Compare(result=rpc.Compare.EQUAL,
                          target=rpc.Compare.VALUE, key=key.encode(),
                          value=expect.encode())
        put = rpc.RequestOp(request_put=rpc.PutRequest(
            key=key.encode(), value=value.encode()))
        rng = rpc.RequestOp(request_range=rpc.RangeRequest(key=key.encode()))
        r = self.kv.Txn(rpc.TxnRequest(compare=[cmp], success=[put],
                                       failure=[rng]),
                        timeout=timeout or self.timeout)
        if r.succeeded:
            return (True, None), r
        kvs = r.responses[0].response_range.kvs
        return (False, kvs[0].value.decode() if kvs else None), r

    def status(self, timeout=None):
        return self.maint.Status(rpc.StatusRequest(),
                                 timeout=timeout or self.timeout)

    def hashkv(self, rev, timeout=None):
        return self.maint.HashKV(rpc.HashKVRequest(revision=rev),
                                 timeout=timeout or self.timeout)

    def members(self, timeout=None):
        return self.cluster.MemberList(rpc.MemberListRequest(),
                                       timeout=timeout or self.timeout)


def grpc_err(e):
    if isinstance(e, grpc.RpcError):
        try:
            return "%s: %s" % (e.code().name, e.details())
        except Exception:  # noqa: BLE001 - any odd error object
            return str(e)
    return "%s: %s" % (type(e).__name__, e)


# ---------------------------------------------------------------- members

class Member:
    def __init__(self, cluster, name, proxied):
        self.cluster = cluster
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()  # advertised
        self.listen_peer_port = free_port() if proxied else self.peer_port
        self.data_dir = os.path.join(cluster.tmp, name + ".data")
        self.log_path = os.path.join(cluster.tmp, name + ".log")
        self.proc = None
        self.id = 0
        self.paused = False
        self.extra = []
        self.starts = 0

    @property
    def peer_url(self):
        return "http://127.0.0.1:%d" % self.peer_port

    @property
    def ep(self):
        return "127.0.0.1:%d" % self.client_port

    def argv(self, initial_cluster, state):
        return [CAIRND, "--name", self.name, "--data-dir", self.data_dir,
                "--listen-client-urls",
                "http://127.0.0.1:%d" % self.client_port,
                "--advertise-client-urls",
                "http://127.0.0.1:%d" % self.client_port,
                "--listen-peer-urls",
                "http://127.0.0.1:%d" % self.listen_peer_port,
                "--initial-advertise-peer-urls", self.peer_url,
                "--initial-cluster", initial_cluster,
                "--initial-cluster-state", state,
                "--initial-cluster-token", self.cluster.token] + \
            EXTRA_FLAGS + self.cluster.extra + self.extra

    def start(self, initial_cluster=None, state=None, env=None):
        """env: extra environment variables for this start only."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("%s already running" % self.name)
        ic = initial_cluster or self.initial_cluster
        st = state or self.initial_state
        self.initial_cluster, self.initial_state = ic, st
        log = open(self.log_path, "ab")
        log.write(("=== start %d at %.3f: %s\n" % (
            self.starts, now(), " ".join(self.argv(ic, st)))).encode())
        log.flush()
        penv = None
        if env:
            penv = dict(os.environ)
            penv.update(env)
        self.proc = subprocess.Popen(self.argv(ic, st), stdout=log,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=penv)
        log.close()
        self.starts += 1
        self.paused = False
        self.cluster.pids.add(self.proc.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill(self):
        """SIGKILL and reap."""
        if self.proc is None:
            return
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.paused = False

    def stop(self, timeout=10):
        """SIGTERM, SIGKILL after timeout. Returns the exit status."""
        if self.proc is None:
            return None
        if self.paused:
            self.resume()
        if self.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                return self.proc.wait(timeout * T)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
        return self.proc.wait()

    def pause(self):
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        self.signal(signal.SIGCONT)
        self.paused = False

    def client(self, timeout=2.0):
        return Client(self.client_port, timeout)

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError as e:
            return str(e)


class Cluster:
    """Members of one test cluster plus the test's temp dir."""

    def __init__(self, tap, name, extra=None):
        self.tap = tap
        self.tmp = tempfile.mkdtemp(prefix="cairn-it-%s." % name)
        self.token = "it-%s-%d" % (name, random.randint(0, 1 << 30))
        self.extra = list(extra or [])
        self.members = []
        self.pids = set()
        self.net = Net()
        self.mounts = []
        self.clients = {}
        self.events = []  # (time, text): faults and milestones
        tap.clusters.append(self)

    def event(self, text):
        self.events.append((now(), text))
        self.tap.note("%.3f %s" % (now(), text))

    def by_name(self, name):
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def initial_cluster(self, ms=None):
        return ",".join("%s=%s" % (m.name, m.peer_url)
                        for m in (ms or self.members))

    def new_member(self, name, proxied=False):
        m = Member(self, name, proxied)
        if proxied:
            self.net.proxies.append(PeerProxy(self.net, name, m.peer_port,
                                              m.listen_peer_port))
        self.members.append(m)
        return m

    def start(self, n=3, proxied=False, wait=True):
        ms = [self.new_member("m%d" % (i + 1), proxied) for i in range(n)]
        ic = self.initial_cluster(ms)
        for m in ms:
            m.start(ic, "new")
        if wait:
            self.wait_ready(ms)
        return ms

    def client(self, m):
        c = self.clients.get(m.name)
        if c is None or c.port != m.client_port:
            c = m.client()
            self.clients[m.name] = c
        return c

    def drop_client(self, m):
        """Forget m's channel: grpc-python (1.51) retries a refused
        connection only after a long backoff, so callers start afresh."""
        c = self.clients.pop(m.name, None)
        if c is not None:
            c.close()

    def running(self):
        return [m for m in self.members if m.alive() and not m.paused]

    def wait_ready(self, ms=None, timeout=30):
        """Every member in ms answers, a leader exists, ids are known."""
        ms = ms or self.running()
        deadline = now() + timeout * T
        last = ""
        while now() < deadline:
            try:
                for m in ms:
                    if not m.alive():
                        raise RuntimeError("%s exited with %s" %
                                           (m.name, m.proc.returncode))
                    st = self.client(m).status(timeout=1)
                    if st.leader == 0:
                        raise RuntimeError("%s has no leader" % m.name)
                    m.id = st.header.member_id
                    self.net.id2name[m.id] = m.name
                    # linearizable read goes through the leader
                    self.client(m).get("ready-probe", timeout=2)
                return True
            except RuntimeError as e:
                last = str(e)
                if "exited" in last:
                    break
            except grpc.RpcError as e:
                last = grpc_err(e)
                for m in ms:
                    self.drop_client(m)
            time.sleep(0.05)
        raise RuntimeError("cluster not ready: " + last)

    def leader(self, ms=None, timeout=10):
        """The member all responding members agree leads, or None."""
        ms = ms or self.running()
        deadline = now() + timeout * T
        while now() < deadline:
            ids = set()
            for m in ms:
                try:
                    st = self.client(m).status(timeout=0.5)
                    m.id = st.header.member_id
                    self.net.id2name[m.id] = m.name
                    ids.add(st.leader)
                except grpc.RpcError:
                    self.drop_client(m)
                    ids.add(None)
            if len(ids) == 1:
                lid = ids.pop()
                for m in self.members:
                    if lid and m.id == lid:
                        return m
            time.sleep(0.02)
        return None

    def leader_of(self, m):
        try:
            st = self.client(m).status(timeout=0.5)
            return st.leader, st.raftTerm
        except grpc.RpcError:
            self.drop_client(m)
            return None, None

    def converge(self, ms=None, timeout=10):
        """Wait until members agree on HashKV at the lowest revision they
        all have reached. Returns (ok, seconds, detail)."""
        ms = ms or self.running()
        t0 = now()
        deadline = t0 + timeout * T
        detail = ""
        target = None
        while now() < deadline:
            try:
                revs = {}
                for m in ms:
                    _, r = self.client(m).get("converge-probe",
                                              serializable=True, timeout=1)
                    revs[m.name] = r.header.revision
                # Writers may still run: every member must have reached the
                # highest revision any member had when we began, and their
                # HashKV must agree at the lowest revision they all have (no
                # need for them to stand still at one revision).
                if target is None:
                    target = max(revs.values())
                if min(revs.values()) < target:
                    detail = "not caught up to rev %d: %s" % (target, revs)
                    time.sleep(0.1)
                    continue
                rev = min(revs.values())
                hs = {}
                for m in ms:
                    h = self.client(m).hashkv(rev, timeout=3)
                    hs[m.name] = (h.hash, h.compact_revision)
                if len(set(hs.values())) == 1:
                    return True, now() - t0, "rev %d hash %08x" % (
                        rev, list(hs.values())[0][0])
                detail = "HashKV at rev %d differs: %s" % (rev, hs)
            except grpc.RpcError as e:
                detail = grpc_err(e)
                for m in ms:
                    self.drop_client(m)
            time.sleep(0.1)
        return False, now() - t0, detail

    def time_to_new_leader(self, old, survivors, t0, timeout=10):
        """Seconds from t0 until every survivor names the same leader,
        one other than old (a member id); None on timeout."""
        deadline = t0 + timeout * T
        while now() < deadline:
            seen = set()
            for m in survivors:
                lid, _ = self.leader_of(m)
                seen.add(lid)
            if len(seen) == 1:
                lid = seen.pop()
                if lid and lid != old:
                    return now() - t0
            time.sleep(0.01)
        return None

    def revision(self, m, timeout=1):
        """m's local (serializable) revision, or None."""
        try:
            _, r = self.client(m).get("rev-probe", serializable=True,
                                      timeout=timeout)
            return r.header.revision
        except grpc.RpcError:
            self.drop_client(m)
            return None

    def catch_up(self, m, others, t0, timeout=30):
        """Seconds from t0 until m's revision reaches the highest revision
        the others had when this call began; None on timeout."""
        target = max([r for r in (self.revision(o) for o in others)
                      if r is not None] or [0])
        deadline = now() + timeout * T
        while now() < deadline:
            if not m.alive():
                self.tap.diag("%s exited with %s:\n%s" % (
                    m.name, m.proc.returncode if m.proc else None,
                    m.log_tail(3)))
                return None
            r = self.revision(m, timeout=0.5)
            if r is not None and r >= target:
                return now() - t0
            time.sleep(0.02)
        return None

    # ------------------------------------------------ membership helpers

    def member_add(self, via, name, learner=False, proxied=False):
        """etcdctl member add [--learner] through via; returns the Member
        (not started). python3-etcd3's protos predate learners."""
        m = Member(self, name, proxied)
        if proxied:
            self.net.proxies.append(PeerProxy(self.net, name, m.peer_port,
                                              m.listen_peer_port))
        args = ["member", "add", name, "--peer-urls=" + m.peer_url]
        if learner:
            args.append("--learner")
        rc, out, err = etcdctl(via.ep, *args)
        if rc != 0:
            raise RuntimeError("etcdctl %s: %s %s" % (" ".join(args), out,
                                                      err))
        # etcdctl prints the id with %16x: a leading zero nibble is a space
        mt = re.search(r"Member +([0-9a-f]+) added", out)
        if not mt:
            raise RuntimeError("etcdctl member add said: %r" % out)
        m.id = int(mt.group(1), 16)
        self.net.id2name[m.id] = name
        self.members.append(m)
        return m

    def member_remove(self, via, m):
        return etcdctl(via.ep, "member", "remove", "%x" % m.id)

    def member_promote(self, via, m):
        return etcdctl(via.ep, "member", "promote", "%x" % m.id)

    def raft_index(self, m):
        try:
            return self.client(m).status(timeout=1).raftIndex
        except grpc.RpcError:
            self.drop_client(m)
            return None

    def mount_tmpfs(self, path, size):
        """Mount a tmpfs of size (e.g. "64m") at path, unmounted at
        cleanup. Returns (ok, mount's output)."""
        os.makedirs(path, exist_ok=True)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s" % size,
                            "tmpfs", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if p.returncode == 0:
            self.mounts.append(path)
        return p.returncode == 0, p.stdout.decode(errors="replace")

    def log_has(self, m, text):
        try:
            with open(m.log_path, "rb") as f:
                return text.encode() in f.read()
        except OSError:
            return False

    def cleanup(self, keep=False):
        for c in self.clients.values():
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                try:
                    os.kill(m.proc.pid, signal.SIGCONT)
                    os.kill(m.proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                m.proc.wait()
        self.net.close()
        for mp in self.mounts:
            subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        if keep or os.environ.get("KEEP_TMP"):
            print("# logs kept in %s" % self.tmp, flush=True)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------- workload

class Workload:
    """Concurrent clients writing unique values; records a history.

    Each worker is pinned to one member. Register ops on a few shared keys
    (put/get/delete/cas) feed the linearizability check; ledger puts write
    one unique key each, so a lost acknowledged write is found directly.
    """

    def __init__(self, cluster, workers_per_member=2, keys=4, prefix="/lin/",
                 timeout=1.5, rate=None, members=None):
        self.c = cluster
        self.wpm = workers_per_member
        self.keys = ["%sk%d" % (prefix, i) for i in range(keys)]
        self.ledger_prefix = "/ledger/"
        self.timeout = timeout
        self.rate = rate
        self.members = members
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.ops = []  # lincheck.Op
        self.ledger = []  # (key, value, acked: True/None)
        self.errors = {}  # error text -> count
        self.threads = []
        self.seq = 0
        self.acked_writes = 0
        self.t_start = None
        self.final_read_errors = []

    def _uniq(self):
        with self.lock:
            self.seq += 1
            return self.seq

    def start(self):
        self.t_start = now()
        wid = 0
        for m in (self.members or list(self.c.members)):
            for _ in range(self.wpm):
                th = threading.Thread(target=self._run, args=(wid, m),
                                      daemon=True)
                wid += 1
                self.threads.append(th)
                th.start()

    def add_worker(self, m):
        th = threading.Thread(target=self._run, args=(len(self.threads), m),
                              daemon=True)
        self.threads.append(th)
        th.start()

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(30)

    def _err(self, e):
        """Count an error; True when the channel should be replaced."""
        s = grpc_err(e)
        if len(s) > 120:
            s = s[:120]
        with self.lock:
            self.errors[s] = self.errors.get(s, 0) + 1
        return isinstance(e, grpc.RpcError) and \
            e.code() == grpc.StatusCode.UNAVAILABLE

    def _run(self, wid, m):
        rnd = random.Random(wid * 7919 + int(time.time()))
        cl = None
        port = None
        while not self.stop_ev.is_set():
            if not m.alive() and m.proc is not None:
                time.sleep(0.05)
                continue
            if port != m.client_port or cl is None:
                if cl is not None:
                    cl.close()
                cl = Client(m.client_port, self.timeout)
                port = m.client_port
            if self.one(cl, rnd, wid):
                cl.close()
                cl = None
                time.sleep(0.02)
            if self.rate:
                time.sleep(rnd.expovariate(self.rate))
        if cl is not None:
            cl.close()

    def one(self, cl, rnd, wid):
        x = rnd.random()
        key = rnd.choice(self.keys)
        val = "w%d-%d" % (wid, self._uniq())
        t0 = now()
        if x < 0.15:
            lk = "%s%s" % (self.ledger_prefix, val)
            try:
                cl.put(lk, val)
                with self.lock:
                    self.ledger.append((lk, val, True))
                    self.acked_writes += 1
            except Exception as e:  # noqa: BLE001 - every failure counts
                with self.lock:
                    self.ledger.append((lk, val, None))
                return self._err(e)
            return False
        if x < 0.50:
            op = lincheck.Op(lincheck.PUT, key, t0, value=val, proc=wid)
            fn = lambda: cl.put(key, val)  # noqa: E731
        elif x < 0.80:
            op = lincheck.Op(lincheck.GET, key, t0, proc=wid)
            fn = lambda: cl.get(key)[0]  # noqa: E731
        elif x < 0.95:
            # expect a recently seen value so some succeed
            with self.lock:
                recent = [o.value for o in self.ops[-30:]
                          if o.key == key and o.value and o.known]
                recent += [o.result for o in self.ops[-30:]
                           if o.key == key and o.kind == lincheck.GET
                           and o.known and o.result]
            exp = rnd.choice(recent) if recent else "none"
            op = lincheck.Op(lincheck.CAS, key, t0, value=val, expect=exp,
                             proc=wid)
            fn = lambda: cl.cas(key, exp, val)[0]  # noqa: E731
        else:
            op = lincheck.Op(lincheck.DELETE, key, t0, proc=wid)
            fn = lambda: cl.delete(key)[0]  # noqa: E731
        try:
            res = fn()
            op.complete = now()
            op.result = res
            if op.kind != lincheck.GET:
                with self.lock:
                    self.acked_writes += 1
        except Exception as e:  # noqa: BLE001
            renew = self._err(e)
        else:
            renew = False
        with self.lock:
            self.ops.append(op)
        return renew

    def final_reads(self, ms):
        """One linearizable read of every key on every member, sequential
        after the workload stopped; they join the history."""
        for m in ms:
            cl = self.c.client(m)
            fails = 0
            for k in self.keys:
                t0 = now()
                for attempt in range(5):
                    if fails >= 4:
                        break  # this member does not answer; reported
                    try:
                        v = cl.get(k, timeout=3)[0]
                        self.ops.append(lincheck.Op(lincheck.GET, k, t0,
                                                    complete=now(),
                                                    result=v, proc=-1))
                        break
                    except grpc.RpcError as e:
                        fails += 1
                        self.final_read_errors.append("%s %s: %s" % (
                            m.name, k, grpc_err(e)))
                        self.c.drop_client(m)
                        cl = self.c.client(m)
                        time.sleep(0.2)
                        t0 = now()

    def check_ledger(self, ms):
        """Every acknowledged ledger put is present with its value on every
        member; nothing appears that was never written. Returns
        (lost, phantom, [members that did not answer], detail)."""
        detail = []
        lost = phantom = 0
        unreadable = []
        want = {k: v for k, v, a in self.ledger if a}
        maybe = {k: v for k, v, a in self.ledger}
        for m in ms:
            got = None
            # linearizable first; if the member does not answer those
            # (reported separately), its local copy still must be whole
            for attempt, ser in ((0, False), (1, False), (2, True),
                                 (3, True)):
                try:
                    got, _ = self.c.client(m).prefix(
                        self.ledger_prefix, serializable=ser, timeout=5)
                    break
                except grpc.RpcError as e:
                    detail.append("%s: ledger read attempt %d: %s" % (
                        m.name, attempt, grpc_err(e)))
                    self.c.drop_client(m)
                    time.sleep(0.3)
            if got is None:
                unreadable.append(m.name)
                continue
            for k, v in want.items():
                if got.get(k) != v:
                    lost += 1
                    if len(detail) < 10:
                        detail.append("%s lost acked %s=%s (has %r)" % (
                            m.name, k, v, got.get(k)))
            for k, v in got.items():
                if maybe.get(k) != v:
                    phantom += 1
                    if len(detail) < 10:
                        detail.append("%s has unwritten %s=%s" % (m.name, k,
                                                                 v))
        return lost, phantom, unreadable, "\n".join(detail)

    def summary(self):
        known = sum(1 for o in self.ops if o.known)
        return "%d register ops (%d with outcome), %d ledger puts " \
            "(%d acked), %.1f s" % (
                len(self.ops), known, len(self.ledger),
                sum(1 for x in self.ledger if x[2]),
                now() - (self.t_start or now()))


def final_checks(tap, c, w, ms=None, heal_timeout=10, label=""):
    """The bars every test ends with: equal HashKV, no acked write lost,
    zero linearizability violations. Returns the number of checked ops."""
    ms = ms or c.running()
    pre = (label + ": ") if label else ""
    ok, secs, detail = c.converge(ms, heal_timeout)
    tap.ok(ok, "%sall %d members equal (HashKV at one revision) within %d s"
           " (%.2f s; %s)" % (pre, len(ms), heal_timeout, secs, detail),
           detail)
    w.final_reads(ms)
    lost, phantom, unreadable, detail = w.check_ledger(ms)
    bad_readers = sorted(set([e.split()[0] for e in w.final_read_errors] +
                             unreadable))
    tap.ok(not bad_readers, "%severy member answers linearizable reads "
           "after the faults (failing: %s)" % (pre, ", ".join(bad_readers)
                                             or "none"),
           "; ".join(w.final_read_errors[:6]))
    tap.ok(lost == 0 and phantom == 0 and len(unreadable) < len(ms),
           "%sno acknowledged write lost (%d acked ledger puts checked on "
           "%d members; lost %d, phantom %d)" % (
               pre, sum(1 for x in w.ledger if x[2]), len(ms) -
               len(unreadable), lost, phantom), detail)
    lin_ok, results, nops = lincheck.check(w.ops)
    bad = [r for r in results if not r.ok]
    gave_up = [r for r in results if r.gave_up]
    tap.ok(lin_ok and not gave_up,
           "%shistory linearizable: %d ops on %d keys checked, %d "
           "violations%s" % (pre, nops, len(results), len(bad),
                             ", search gave up on %d keys" % len(gave_up)
                             if gave_up else ""),
           "\n".join(r.detail for r in bad + gave_up))
    mutated = stale_mutation(w.ops)
    if mutated is not None:
        m_ok, _, _ = lincheck.check(mutated)
        tap.ok(not m_ok, "%schecker rejects the same history with one read "
               "made stale (sensitivity)" % pre)
    if w.errors:
        top = sorted(w.errors.items(), key=lambda kv: -kv[1])[:6]
        tap.note("client errors: " + "; ".join("%dx %s" % (n, e)
                                               for e, n in top))
    tap.note("workload: " + w.summary())
    return nops


def stale_mutation(ops):
    """A copy of ops in which one known read returns a value that was
    certainly overwritten before the read began (put v1 done, then put v2
    begun after v1 and done before the read), or None if no such read
    exists. Values are unique, so no linearization can explain it."""
    import copy
    puts = {}
    for o in ops:
        if o.kind == lincheck.PUT and o.known:
            puts.setdefault(o.key, []).append(o)
    for g in ops:
        if g.kind != lincheck.GET or not g.known:
            continue
        ps = puts.get(g.key, [])
        for p2 in ps:
            if p2.complete >= g.invoke:
                continue
            for p1 in ps:
                if p1.complete < p2.invoke and p1.value != g.result:
                    out = []
                    for o in ops:
                        c = copy.copy(o)
                        if o is g:
                            c.result = p1.value
                        out.append(c)
                    return out
    return None


def etcdctl(eps, *args, timeout=20):
    if isinstance(eps, (list, tuple)):
        eps = ",".join(eps)
    p = subprocess.run([ETCDCTL, "--endpoints=" + eps, "--dial-timeout=3s",
                        "--command-timeout=8s"] + list(args),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout * T, env=dict(os.environ,
                                                     ETCDCTL_API="3"))
    return p.returncode, p.stdout.decode(errors="replace"), \
        p.stderr.decode(errors="replace")


def store_file(m):
    """The member's live store file."""
    return os.path.join(m.data_dir, "member", "kv", "data.mdb")


def garble_store(m):
    """A power loss's worst: the whole live store file garbage (nothing of
    it was ever synced). Returns the bytes written."""
    path = store_file(m)
    size = os.stat(path).st_size
    with open(path, "r+b") as f:
        left = size
        while left > 0:
            step = min(left, 1 << 20)
            f.write(b"\x5a" * step)
            left -= step
    return size


def pct(xs, p):
    """The p-th percentile (nearest rank) of xs."""
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def report(name, data):
    """One machine-readable line of measurements for the note."""
    print("# METRIC %s %s" % (name, json.dumps(data, sort_keys=True)),
          flush=True)


def run(name, body):
    """Run body(tap) with a fresh TAP plan; exit with its status."""
    tap = Tap()
    if not os.access(CAIRND, os.X_OK):
        tap.ok(False, "%s is built" % CAIRND)
        sys.exit(tap.end())
    def on_term(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    try:
        body(tap)
    except Exception:  # noqa: BLE001 - report, do not hang
        import traceback
        tap.ok(False, "%s ran to the end without an exception" % name,
               traceback.format_exc())
    finally:
        for c in tap.clusters:
            c.cleanup(keep=tap.fails > 0)
    sys.exit(tap.end())

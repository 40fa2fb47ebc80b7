#!/usr/bin/python3
"""kv_diff.py CAIRN_PORT ETCD_PORT GEN_DIR SEED OPS - the KV API, differential.

Goal: for any sequence of Put, Range, DeleteRange, Txn (nested ones too),
Compact, lease, watch and user/role calls (auth left disabled), cairnd
answers what etcd 3.4.23 answers, byte for
byte once decoded: the same kvs in the same order, the same counts, the
same inner headers, the same errors with the same text.

Method: a seeded generator draws each request from a small key space (so
ops collide: ranges cross written keys, compares hit and miss, deletes
find something) with every option of each message, and sends it to both
servers, fresh ones started side by side (kv_diff.test): three calls in
ten go through the JSON gateway (/v3/kv/..., /v3/lease/...; the status
and the parsed body are compared), the rest over gRPC. The answers are
decoded and printed as text; the outer header's cluster_id, member_id and
raft_term are cleared (they differ by nature), as are the remaining TTLs
(wall clock) and the IDs of leases either server picked itself. Lease
keys from TimeToLive are compared as a set (etcd's come from a Go map).

Kept out of the draws, where cairnd answers otherwise on purpose
(docs/kv.md, "Where cairnd differs from etcd"):
- a sort on another target than the key with sort_order NONE and a limit
  (etcd cuts at the limit in key order and sorts what is left; cairnd
  sorts first, as an explicit ASCEND does in both);
- Compact at revision 0 on a store never compacted (etcd accepts it as a
  no-op; cairnd answers "compacted", as etcd does from then on);
- leases short enough to expire during the run (their revoke would land
  at a revision that depends on timing);
- a grant on a key and range_end a role holds already, when another
  grant of that key came first (etcd adds a second grant and keeps the
  old type too; cairnd updates the grant);
- a watch from a negative revision before any compaction (cairnd
  cancels it; etcd 3.4 watches -1 from now and cancels the rest with
  compact_revision -1);
- a watch from exactly the compacted revision (cairnd keeps that
  revision's deletions and sends them; etcd's compaction drops them);
- a watcher that compaction cancelled, on the shared stream: etcd keeps
  it there, holding its id, until the client cancels it; cairnd frees
  the id with the compaction answer, so later ids would differ. Such
  watchers (a start revision below the compacted one) are made on a new
  stream per server each and compared at once.

On three-member clusters (ports "p0,p1,p2"): each op goes to the member
of the same index on both; no serializable reads (a member may lag), and
no revision on a range inside a txn (etcd's members then disagree, see
request_op).

A compaction or a watch cancel waits until 0.4 s has passed since the
last watcher from a past revision was made (etcd catches those up every
100 ms; a compaction before would cancel one on etcd alone, a cancel
before would leave its history unsent there alone), and a compaction
near the newest revision waits 0.2 s (etcd reads a watch event's prev_kv
when it sends the event; a compaction just before drops it there;
cairnd's events carry it from the write).

Watchers: two ops in a hundred are preceded by a new watcher on one gRPC
watch stream per server (any key range, start revision past, present,
future or compacted, prev_kv, filters), created on both before the op
runs. At the end each watcher's answers on the two servers (created,
canceled with compact_revision, and every event, whatever the batching)
are compared (see above for how compactions wait for such watchers).

Prints one line per mismatch (the request and both answers) and
"N ops, M mismatches"; exits 1 on any mismatch or call that did not
complete. KV_DIFF_FLIP=1 sends cairnd another value on every top-level put
(the comparison must then report mismatches: the test can fail).
"""
import http.client
import json
import os
import queue
import random
import re
import sys
import threading
import time

sys.path.insert(0, sys.argv[3])
import grpc  # noqa: E402
import rpc_pb2 as R  # noqa: E402
import auth_pb2 as A  # noqa: E402
from google.protobuf import json_format, text_format  # noqa: E402

# a port, or a three-member cluster's ports "p0,p1,p2" (the same order on
# both sides: each op goes to the member of the same index)
CPS = [int(x) for x in sys.argv[1].split(",")]
EPS = [int(x) for x in sys.argv[2].split(",")]
CLUSTER = len(CPS) > 1
SEED, OPS = int(sys.argv[4]), int(sys.argv[5])
FLIP = os.environ.get("KV_DIFF_FLIP") == "1"
TRACE = os.environ.get("KV_DIFF_TRACE") == "1"  # every op and both answers
COMPACT_CALM = 0.4 * float(os.environ.get("CAIRN_TIMEOUT_SCALE", "1"))
AUTH_SHARE = 0.06  # user and role calls
WATCH_SHARE = 0.02  # a watcher created before the op
CANCEL_SHARE = 0.01  # a watch cancelled (or an unknown id) before the op
GW_SHARE = 0.3  # calls sent through the JSON gateway (/v3/...) instead
TIMEOUT = 8 * float(os.environ.get("CAIRN_TIMEOUT_SCALE", "1"))
rnd = random.Random(SEED)
KEYS = [b"", b"a", b"a/", b"a/b", b"a/c", b"b", b"b\x00", b"\x00", b"\xff",
        b"ccc", b"a/b/c"]
ENDS = [b"", b"\x00", b"b", b"a0", b"a/z", b"\xff", b"\xff\xff", b"a", b"0"]
VALUES = [b"", b"v", b"x" * 10, b"w" * 300]
leases = []  # explicit IDs granted on both
state = {"rev": 1, "compacted": 0}


GW_PATH = {"UserAdd": "/v3/auth/user/add", "UserGet": "/v3/auth/user/get",
           "UserDelete": "/v3/auth/user/delete",
           "UserChangePassword": "/v3/auth/user/changepw",
           "UserGrantRole": "/v3/auth/user/grant",
           "UserRevokeRole": "/v3/auth/user/revoke",
           "RoleAdd": "/v3/auth/role/add", "RoleGet": "/v3/auth/role/get",
           "RoleDelete": "/v3/auth/role/delete",
           "RoleGrantPermission": "/v3/auth/role/grant",
           "RoleRevokePermission": "/v3/auth/role/revoke",
           "UserList": "/v3/auth/user/list", "RoleList": "/v3/auth/role/list",
           "Range": "/v3/kv/range", "Put": "/v3/kv/put",
           "DeleteRange": "/v3/kv/deleterange", "Txn": "/v3/kv/txn",
           "Compact": "/v3/kv/compaction", "LeaseGrant": "/v3/lease/grant",
           "LeaseRevoke": "/v3/lease/revoke",
           "LeaseTimeToLive": "/v3/lease/timetolive",
           "LeaseLeases": "/v3/lease/leases"}


class Srv:
    def __init__(self, port):
        self.port = port
        self.ch = grpc.insecure_channel("127.0.0.1:%d" % port)
        self.hc = None

    def gateway(self, meth, req):
        """The same call through the JSON gateway: the status and the body
        parsed (outer header ids dropped), as canonical JSON text."""
        body = json.dumps(json_format.MessageToDict(
            req, preserving_proto_field_name=True))
        for attempt in (0, 1):
            try:
                if self.hc is None:
                    self.hc = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=TIMEOUT)
                self.hc.request("POST", GW_PATH[meth], body,
                                {"Content-Type": "application/json"})
                r = self.hc.getresponse()
                data = r.read()
                break
            except (OSError, http.client.HTTPException):
                self.hc = None
                if attempt:
                    return None
        try:
            doc = json.loads(data)
        except ValueError:
            return "HTTP %d %r" % (r.status, data[:200])
        if isinstance(doc, dict) and isinstance(doc.get("header"), dict):
            for f in ("cluster_id", "member_id", "raft_term"):
                doc["header"].pop(f, None)
        return "HTTP %d %s" % (r.status, json.dumps(doc, sort_keys=True))

    def call(self, svc, meth, req, resp_cls):
        f = self.ch.unary_unary(
            "/etcdserverpb.%s/%s" % (svc, meth),
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=resp_cls.FromString)
        try:
            r = f(req, timeout=TIMEOUT)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return None
            return "ERR %s %s" % (e.code().name, e.details())
        scrub(r)
        return text_format.MessageToString(r, as_one_line=True)


def scrub(m):
    """Clear the ids and term of every header; inner ones carry none."""
    for fd, v in m.ListFields():
        if fd.name == "header":
            v.cluster_id = 0
            v.member_id = 0
            v.raft_term = 0
        elif fd.message_type is not None:
            for x in (v if fd.label == fd.LABEL_REPEATED else [v]):
                scrub(x)


def pick(choices):
    return rnd.choice(choices)


def range_req():
    r = R.RangeRequest(key=pick(KEYS))
    if rnd.random() < 0.5:
        r.range_end = pick(ENDS)
    if rnd.random() < 0.3:
        r.limit = pick([1, 2, 3, -1, 100])
    if rnd.random() < 0.3:
        rev, comp = state["rev"], state["compacted"]
        r.revision = pick([1, 2, rev, rev + 1, rev + 5, -1, -3, comp,
                           comp - 1, comp + 1])
    if rnd.random() < 0.35:
        r.sort_order = pick([0, 1, 2])
        r.sort_target = pick([0, 1, 2, 3, 4])
    # a serializable read on a member is as old as that member's store: in
    # a cluster it may lag the last write (on either server alike)
    r.serializable = rnd.random() < 0.2 and not CLUSTER
    r.keys_only = rnd.random() < 0.2
    r.count_only = rnd.random() < 0.15
    for f in ("min_mod_revision", "max_mod_revision", "min_create_revision",
              "max_create_revision"):
        if rnd.random() < 0.1:
            setattr(r, f, pick([1, 3, state["rev"] // 2, state["rev"], -1]))
    if r.sort_order == 0 and r.sort_target != 0 and r.limit > 0:
        r.sort_order = 1  # see the docstring: a difference on purpose
    return r


def put_req():
    r = R.PutRequest(key=pick(KEYS), value=pick(VALUES + [bytes([rnd.randrange(256)])]))
    if leases and rnd.random() < 0.3:
        r.lease = pick(leases + [999999])
    r.prev_kv = rnd.random() < 0.4
    r.ignore_value = rnd.random() < 0.1
    r.ignore_lease = rnd.random() < 0.1
    return r


def delete_req():
    r = R.DeleteRangeRequest(key=pick(KEYS))
    if rnd.random() < 0.5:
        r.range_end = pick(ENDS)
    r.prev_kv = rnd.random() < 0.5
    return r


def request_op(depth):
    c = rnd.random()
    o = R.RequestOp()
    if c < 0.35:
        o.request_put.CopyFrom(put_req())
    elif c < 0.7:
        o.request_range.CopyFrom(range_req())
        if CLUSTER:
            # etcd 3.4 strips a txn's ranges on the members that did not
            # propose it (removeNeedlessRangeReqs), so a range whose
            # revision is compacted or future fails the txn on the
            # proposer alone and the others apply its writes: etcd's
            # members part; cairnd's do not. Left out of the comparison.
            o.request_range.revision = 0
    elif c < 0.9 or depth > 1:
        o.request_delete_range.CopyFrom(delete_req())
    else:
        o.request_txn.CopyFrom(txn_req(depth + 1))
    return o


def txn_req(depth=0):
    t = R.TxnRequest()
    rev = state["rev"]
    for _ in range(rnd.randrange(3)):
        c = R.Compare(key=pick(KEYS), result=pick([0, 1, 2, 3]),
                      target=pick([0, 1, 2, 3, 4]))
        if rnd.random() < 0.2:
            c.range_end = pick(ENDS)
        if c.target == 0:
            c.version = pick([0, 1, 2, 5])
        elif c.target == 1:
            c.create_revision = pick([0, 1, rev, rev // 2])
        elif c.target == 2:
            c.mod_revision = pick([0, 1, rev, rev // 2])
        elif c.target == 3:
            c.value = pick(VALUES)
        else:
            c.lease = pick(leases + [0])
        t.compare.append(c)
    for _ in range(rnd.randrange(4)):
        t.success.append(request_op(depth))
    for _ in range(rnd.randrange(3)):
        t.failure.append(request_op(depth))
    if CLUSTER and depth == 0 and not t.success and not t.failure:
        # etcd 3.4 serves a txn without ops as serializable (isTxnSerializable
        # holds for no ops): a follower answers from its own state, maybe
        # before a write another member acknowledged. cairnd's is
        # linearizable. Give it a read so both are.
        t.success.append(R.RequestOp(request_range=R.RangeRequest(key=b"a")))
    if depth == 0 and any(o.request_delete_range.range_end == b"\x00"
                          for o in txn_ops(t)):
        # a put with ignore_value or ignore_lease after a delete from a key
        # to the end ("\0": etcd's duplicate check does not see it) that
        # removed its key: etcd 3.4 passes its checks on the state before
        # the txn, then panics applying it (the member exits); cairnd
        # answers "key not found" and writes nothing. Left out.
        for o in txn_ops(t):
            if o.HasField("request_put"):
                o.request_put.ignore_value = False
                o.request_put.ignore_lease = False
    return t


def txn_ops(t):
    """Every op of a txn, nested ones included."""
    for o in list(t.success) + list(t.failure):
        yield o
        if o.HasField("request_txn"):
            yield from txn_ops(o.request_txn)


roles = {}  # role -> its grants [(key, range_end)] in order, as answered


def roles_track(meth, req, ok):
    if not ok:
        return
    if meth == "RoleAdd":
        roles[req.name] = []
    elif meth == "RoleDelete":
        roles.pop(req.role, None)
    elif meth == "RoleGrantPermission":
        g = roles.setdefault(req.name, [])
        k, e = req.perm.key, req.perm.range_end
        if (k, e) not in g:
            at = max([i + 1 for i, (gk, _) in enumerate(g) if gk <= k] or [0])
            g.insert(at, (k, e))
    elif meth == "RoleRevokePermission":
        g = roles.get(req.role, [])
        if (req.key, req.range_end) in g:
            g.remove((req.key, req.range_end))


USERS = ["u1", "u2", "root", "", "r1", "x" * 40]
ROLES = ["r1", "r2", "root", "", "u1"]


def auth_draw():
    """A user or role call (auth stays disabled: nothing here changes
    who may do what, only the tables)."""
    c = rnd.random()
    if c < 0.12:
        o = A.UserAddOptions(no_password=rnd.random() < 0.3)
        req = R.AuthUserAddRequest(name=pick(USERS), options=o)
        if not o.no_password or rnd.random() < 0.3:
            req.password = pick(["pw", "", "p" * 30])
        return req, "UserAdd", R.AuthUserAddResponse
    if c < 0.2:
        return (R.AuthUserGetRequest(name=pick(USERS)), "UserGet",
                R.AuthUserGetResponse)
    if c < 0.26:
        return (R.AuthUserDeleteRequest(name=pick(USERS)), "UserDelete",
                R.AuthUserDeleteResponse)
    if c < 0.3:
        return (R.AuthUserChangePasswordRequest(name=pick(USERS),
                                                password=pick(["pw2", ""])),
                "UserChangePassword", R.AuthUserChangePasswordResponse)
    if c < 0.42:
        return (R.AuthUserGrantRoleRequest(user=pick(USERS), role=pick(ROLES)),
                "UserGrantRole", R.AuthUserGrantRoleResponse)
    if c < 0.48:
        return (R.AuthUserRevokeRoleRequest(name=pick(USERS),
                                            role=pick(ROLES)),
                "UserRevokeRole", R.AuthUserRevokeRoleResponse)
    if c < 0.58:
        return (R.AuthRoleAddRequest(name=pick(ROLES)), "RoleAdd",
                R.AuthRoleAddResponse)
    if c < 0.66:
        return (R.AuthRoleGetRequest(role=pick(ROLES)), "RoleGet",
                R.AuthRoleGetResponse)
    if c < 0.7:
        return (R.AuthRoleDeleteRequest(role=pick(ROLES)), "RoleDelete",
                R.AuthRoleDeleteResponse)
    if c < 0.84:
        perm = A.Permission(permType=pick([0, 1, 2]), key=pick(KEYS))
        if rnd.random() < 0.6:
            perm.range_end = pick(ENDS)
        req = R.AuthRoleGrantPermissionRequest(name=pick(ROLES), perm=perm)
        grants = roles.get(req.name, [])
        same = [e for k, e in grants if k == perm.key]
        if perm.range_end in same[1:]:
            # a grant again on one that is not its key's first: etcd adds
            # a second grant, cairnd updates it (see the docstring)
            return R.AuthRoleGetRequest(role=req.name), "RoleGet", \
                R.AuthRoleGetResponse
        return (req, "RoleGrantPermission", R.AuthRoleGrantPermissionResponse)
    if c < 0.92:
        req = R.AuthRoleRevokePermissionRequest(role=pick(ROLES),
                                                key=pick(KEYS))
        if rnd.random() < 0.6:
            req.range_end = pick(ENDS)
        return (req, "RoleRevokePermission",
                R.AuthRoleRevokePermissionResponse)
    if c < 0.96:
        return R.AuthUserListRequest(), "UserList", R.AuthUserListResponse
    return R.AuthRoleListRequest(), "RoleList", R.AuthRoleListResponse


def draw():
    c = rnd.random()
    if c < AUTH_SHARE:
        req, meth, rc = auth_draw()
        return req, "Auth", meth, rc
    c = rnd.random()
    if c < 0.3:
        return put_req(), "KV", "Put", R.PutResponse
    if c < 0.55:
        return range_req(), "KV", "Range", R.RangeResponse
    if c < 0.65:
        return delete_req(), "KV", "DeleteRange", R.DeleteRangeResponse
    if c < 0.9:
        return txn_req(), "KV", "Txn", R.TxnResponse
    if c < 0.93:
        rev, comp = state["rev"], state["compacted"]
        cands = [x for x in (rev // 2, rev, rev + 1, comp, 0)
                 if x > 0 or comp > 0]
        return (R.CompactionRequest(revision=pick(cands),
                                    physical=rnd.random() < 0.5),
                "KV", "Compact", R.CompactionResponse)
    if c < 0.96:
        lid = rnd.randrange(1, 60) if rnd.random() < 0.8 else 0
        return (R.LeaseGrantRequest(TTL=pick([1000, 900, 3600]), ID=lid),
                "Lease", "LeaseGrant", R.LeaseGrantResponse)
    if c < 0.98 and leases:
        return (R.LeaseRevokeRequest(ID=pick(leases + [12345])),
                "Lease", "LeaseRevoke", R.LeaseRevokeResponse)
    if rnd.random() < 0.3:
        return (R.LeaseLeasesRequest(), "Lease", "LeaseLeases",
                R.LeaseLeasesResponse)
    return (R.LeaseTimeToLiveRequest(ID=pick(leases + [777]),
                                     keys=rnd.random() < 0.5),
            "Lease", "LeaseTimeToLive", R.LeaseTimeToLiveResponse)


class Watches:
    """One watch stream to a server; every response is kept in order."""

    def __init__(self, srv):
        self.q = queue.Queue()
        self.resps = []
        self.cv = threading.Condition()
        f = srv.ch.stream_stream(
            "/etcdserverpb.Watch/Watch",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=R.WatchResponse.FromString)
        self.call = f(iter(self.q.get, None))
        self.t = threading.Thread(target=self.read, daemon=True)
        self.t.start()

    def read(self):
        try:
            for r in self.call:
                with self.cv:
                    self.resps.append(r)
                    self.cv.notify_all()
        except grpc.RpcError:
            pass

    def create(self, wc):
        """Send a create and wait for its answer: later writes must reach
        the watcher on both servers alike. Returns the watch id (-1: the
        create was refused), None when no answer came."""
        with self.cv:
            created = [r for r in self.resps if r.created]
        self.q.put(R.WatchRequest(create_request=wc))
        end = time.time() + TIMEOUT
        with self.cv:
            while True:
                now = [r for r in self.resps if r.created]
                if len(now) > len(created):
                    return now[len(created)].watch_id
                if not self.cv.wait(end - time.time()):
                    return None

    def cancel(self, wid):
        """Cancel wid (known or not), then wait behind a progress request:
        the answers to both come in order, so once the progress answer is
        here the cancel took effect. False when it did not come."""
        self.q.put(R.WatchRequest(cancel_request=R.WatchCancelRequest(
            watch_id=wid)))
        return self.progress()

    def progress(self):
        with self.cv:
            n = sum(1 for r in self.resps if is_progress(r))
        self.q.put(R.WatchRequest(progress_request=R.WatchProgressRequest()))
        end = time.time() + TIMEOUT
        with self.cv:
            while sum(1 for r in self.resps if is_progress(r)) <= n:
                if not self.cv.wait(end - time.time()):
                    return False
        return True

    def settle(self, rev):
        """Wait until the stream is quiet (no response for 0.3 s), at most
        TIMEOUT, once every op up to rev is applied."""
        end = time.time() + TIMEOUT
        last = -1
        while time.time() < end:
            with self.cv:
                n = len(self.resps)
            if n == last:
                return
            last = n
            time.sleep(0.3)

    def story(self):
        """Per watch id: its created/canceled answers and its events, in
        order, without headers or how the events were batched."""
        out = {}
        with self.cv:
            for r in self.resps:
                w = out.setdefault(r.watch_id, [])
                if r.created or r.canceled or r.compact_revision:
                    w.append("created=%s canceled=%s compact=%d reason=%r" % (
                        r.created, r.canceled, r.compact_revision,
                        r.cancel_reason))
                for e in r.events:
                    w.append(text_format.MessageToString(e, as_one_line=True))
                if is_progress(r):
                    w.append("progress at %d" % r.header.revision)
        return out

    def close(self):
        self.q.put(None)
        self.call.cancel()


def compacted_watch(cairn, etcd, wc):
    """A watch from before the compacted revision, on a new stream per
    server: created, then cancelled with compact_revision. Returns the
    number of mismatches (0 or 1)."""
    stories = []
    for srv in (cairn, etcd):
        w = Watches(srv)
        w.create(wc)
        end = time.time() + TIMEOUT
        with w.cv:  # until the cancel (with the created answer or after)
            while not any(r.canceled for r in w.resps) and \
                    w.cv.wait(end - time.time()):
                pass
        stories.append(w.story())
        w.close()
    if stories[0] == stories[1]:
        return 0
    print("MISMATCH compacted watch %s\n  cairnd: %s\n  etcd:   %s" % (
        text_format.MessageToString(wc, as_one_line=True), stories[0],
        stories[1]))
    return 1


def is_progress(r):
    return (not r.events and not r.created and not r.canceled and
            not r.compact_revision)


def watch_req():
    rev, comp = state["rev"], state["compacted"]
    wc = R.WatchCreateRequest(key=pick(KEYS[1:]))
    if rnd.random() < 0.6:
        wc.range_end = pick(ENDS)
    if rnd.random() < 0.5:
        wc.start_revision = pick([1, 2, rev // 2, rev, rev + 1, rev + 3,
                                  comp, comp - 1, comp + 1])
    if comp > 0 and wc.start_revision == comp:
        wc.start_revision = comp + 1  # see the docstring: on purpose
    wc.prev_kv = rnd.random() < 0.5
    if rnd.random() < 0.3:
        wc.filters.append(pick([0, 1]))
    if rnd.random() < 0.3:
        wc.watch_id = pick([1, 2, 3, 5, 10])
    return wc


KEYS_RE = re.compile(r' keys: "(?:[^"\\]|\\.)*"')


GW_KEYS_RE = re.compile(r'"keys": \[[^\]]*\]')


def normal(meth, req, text):
    if text is None:
        return text
    if meth == "LeaseTimeToLive":
        text = re.sub(r'(\b)TTL(": "|: )-?\d+', r"\1TTL\2_", text)
        keys = sorted(KEYS_RE.findall(text))
        text = KEYS_RE.sub("", text) + "".join(keys)
        m = GW_KEYS_RE.search(text)
        if m:
            ks = sorted(re.findall(r'"[^"]*"', m.group(0)[8:]))
            text = text.replace(m.group(0), '"keys": [%s]' % ", ".join(ks))
    if meth == "LeaseLeases":
        # a set (etcd's comes from a Go map); ids either server chose
        # itself differ by nature: only the explicit ones are compared
        every = re.findall(r'\bID(?:": "|: )(\d+)', text)
        ids = sorted(int(x) for x in every if int(x) in leases)
        text = re.sub(r'\{?\s*"?leases"?:? ?[\[{].*', "", text) + \
            " %d leases, explicit ids %s" % (len(every), ids)
    if meth == "LeaseGrant" and req.ID == 0:
        text = re.sub(r'\bID(": "|: )\d+', r"ID\1_", text)
    return text


def main():
    cairns, etcds = [Srv(p) for p in CPS], [Srv(p) for p in EPS]
    mrnd = random.Random(SEED + 1)  # which member: not from rnd's stream
    wm = 1 % len(cairns)  # the watch streams' member (a follower, mostly)
    cairn, etcd = cairns[wm], etcds[wm]
    mism = 0
    lost = 0
    flip = FLIP
    done = 0
    gw = 0
    wa, wb = Watches(cairn), Watches(etcd)
    wreqs = {}  # watch id -> its create request
    comp_m = 0  # the member that answered the last compaction
    past_watch = 0.0  # when the last watcher from a past revision came
    for i in range(OPS):
        if rnd.random() < WATCH_SHARE:
            if CLUSTER:
                # a linearizable read first: the watch member has then
                # applied every write answered so far, so "from now" is the
                # same point on both servers
                for srv in (cairns[wm], etcds[wm]):
                    srv.call("KV", "Range", R.RangeRequest(key=b"a"),
                             R.RangeResponse)
            wc = watch_req()
            if wc.start_revision < 0 and state["compacted"] == 0:
                wc.start_revision = 0  # see the docstring: on purpose
            if wc.start_revision != 0 and \
                    wc.start_revision < state["compacted"]:
                # cancelled at once: on a stream of its own (see the
                # docstring), compared now
                mism += compacted_watch(cairns[comp_m], etcds[comp_m], wc)
                wc = watch_req()
                if wc.start_revision < state["compacted"]:
                    wc.start_revision = 0
            ida, idb = wa.create(wc), wb.create(wc)
            if ida is None or idb is None:
                print("NO ANSWER to watch create %s" %
                      text_format.MessageToString(wc, as_one_line=True))
                lost += 1
                break
            if ida != idb:
                mism += 1
                print("MISMATCH watch create %s: id %d against %d" % (
                    text_format.MessageToString(wc, as_one_line=True),
                    ida, idb))
            wreqs[idb] = wc
            if 0 < wc.start_revision <= state["rev"]:
                past_watch = time.time()
        if rnd.random() < CANCEL_SHARE:
            # the same calm as before a compaction: a watcher from a past
            # revision cancelled before etcd caught it up would have sent
            # its history on cairnd alone
            if past_watch + COMPACT_CALM > time.time():
                time.sleep(past_watch + COMPACT_CALM - time.time())
            wid = pick(list(wreqs) + [0, 7, 99, -1])
            if not wa.cancel(wid) or not wb.cancel(wid):
                print("NO ANSWER to a progress request after cancel %d" % wid)
                lost += 1
                break
        req, svc, meth, rc = draw()
        if meth == "Compact":
            # etcd catches a watcher from a past revision up from its
            # history every 100 ms; a compaction before that would cancel
            # it there alone: 0.4 s (four of its passes) after such a create.
            # And etcd reads a watch event's prev_kv (at mod_revision - 1)
            # when it sends the event; a compaction past that first loses
            # it there: the newest events go out first.
            wait = past_watch + COMPACT_CALM - time.time()
            if req.revision > state["rev"] - 5:
                wait = max(wait, COMPACT_CALM / 2)
            if wait > 0:
                time.sleep(wait)
        mi = mrnd.randrange(len(cairns))
        cairn, etcd = cairns[mi], etcds[mi]
        creq = req
        if flip and meth == "Put":
            creq = R.PutRequest()
            creq.CopyFrom(req)
            creq.value = req.value + b"!"
        if rnd.random() < GW_SHARE:
            gw += 1
            a = normal(meth, req, cairn.gateway(meth, creq))
            b = normal(meth, req, etcd.gateway(meth, req))
        else:
            a = normal(meth, req, cairn.call(svc, meth, creq, rc))
            b = normal(meth, req, etcd.call(svc, meth, req, rc))
        done = i + 1
        if a is None or b is None:
            lost += 1
            print("NO ANSWER #%d %s from %s" % (
                i, meth, "cairnd" if a is None else "etcd"))
            break
        ok = not b.startswith("ERR") and not re.match(r"HTTP [^2]", b)
        if meth == "LeaseGrant" and ok and req.ID:
            leases.append(req.ID)
        roles_track(meth, req, ok)
        if meth == "LeaseRevoke" and ok:
            if req.ID in leases:
                leases.remove(req.ID)
        if TRACE:
            print("#%d %s@%d %s\n  cairnd: %s\n  etcd:   %s" % (
                i, meth, mi, text_format.MessageToString(
                    req, as_one_line=True), a[:300], b[:300]))
        if a != b:
            mism += 1
            print("MISMATCH #%d %s\n  req:    %s\n  cairnd: %s\n  etcd:   %s" % (
                i, meth, text_format.MessageToString(req, as_one_line=True),
                a, b))
            if mism >= 10:
                break  # the stores have likely parted; more is noise
        m = re.search(r'revision(": "|: )(\d+)', b)
        if m:
            state["rev"] = max(state["rev"], int(m.group(2)))
        if meth == "Compact" and ok:
            comp_m = mi
            state["compacted"] = max(state["compacted"], req.revision)
    wa.settle(state["rev"])
    wb.settle(state["rev"])
    sa, sb = wa.story(), wb.story()
    events = 0
    for wid in sorted(set(sa) | set(sb)):
        la, lb = sa.get(wid, []), sb.get(wid, [])
        events += len(lb)
        if la != lb:
            mism += 1
            k = next((j for j in range(min(len(la), len(lb)))
                      if la[j] != lb[j]), min(len(la), len(lb)))
            print("MISMATCH watch %d (%s): %d answers against %d; first "
                  "difference at %d\n  cairnd: %s\n  etcd:   %s" % (
                      wid, text_format.MessageToString(
                          wreqs[wid], as_one_line=True)
                      if wid in wreqs else "?",
                      len(la), len(lb), k, la[k] if k < len(la) else "-",
                      lb[k] if k < len(lb) else "-"))
    wa.close()
    wb.close()
    print("%d ops (%d by the JSON gateway), %d watchers (%d answers), %d "
          "mismatches, final revision %d, %d leases" % (
              done, gw, len(wreqs), events, mism, state["rev"], len(leases)))
    return 1 if mism or lost else 0


if __name__ == "__main__":
    sys.exit(main())

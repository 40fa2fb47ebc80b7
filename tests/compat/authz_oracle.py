#!/usr/bin/python3
"""authz_oracle.py CAIRN_PORT ETCD_PORT GEN_DIR - the authorization oracle.

Goal: every etcd RPC (gRPC and its JSON gateway path), every registry,
config and audit endpoint of /api/v1, tried as each principal, answers
what the table below says, and for the etcd API what etcd 3.4.23 answers.
Principals: anon (no token), bad (a token nobody was given), none (a user
with no role), ro (role ro: read on /p/, /registry/a/, /config/a/), rw
(role rw: readwrite on the same ranges, and read on /config-secret/a/) and
root; some cases add wo (write only on /p/), "<p>+authz" (the token sent
as gRPC "authorization" metadata), and users changed after they
authenticated (gone, chpw, revk).

Method: the same users, roles and keys are set up on cairnd and on etcd
(both started by authz_oracle.test on loopback). Each case runs as each
principal; its answer is reduced to an outcome: "OK", "<gRPC code name>
<message>" (the gateway adds " http=<status>"), "CANCELED <reason>" for a
refused watch create, and for /api/v1 "OK" or "<status> <code>". A case
matches when cairnd's outcome is the table's and (etcd API) etcd's outcome
is the table's; where cairnd differs from etcd on purpose, the row names
the difference and why (KNOWN). Prints one "CASE ok|MISMATCH ..." line
per case and "N cases, M mismatches"; exits 1 on any mismatch.

AUTHZ_FLIP=<case id>/<principal> (the id as printed, e.g. "grpc range
/p/k/ro") changes that one expected entry, to show the case can fail: the
run must then report exactly one mismatch; AUTHZ_FLIP=all flips every
entry (every case must then mismatch). Mutating cases work on resources
made for that principal and transport alone (by root, before the call), so
no case depends on another's outcome. Cairnd-only surfaces (/api/v1) are
compared with the table alone: docs/registry.md, config.md and audit.md.
"""
import base64
import http.client
import json
import os
import queue
import socket
import struct
import sys
import threading
import time

CAIRN_PORT, ETCD_PORT, GEN = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
# optional: a second pair on https with --client-cert-auth, and its certs
TLS = (int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]) if len(sys.argv) > 6 \
    else None
sys.path.insert(0, GEN)
import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402
import rpc_pb2 as R  # noqa: E402
import auth_pb2 as A  # noqa: E402
import v3lock_pb2 as LK  # noqa: E402
import v3election_pb2 as EL  # noqa: E402

PRINCIPALS = ["anon", "bad", "none", "ro", "rw", "root"]


def row(anon, bad, none, ro, rw, root):
    return dict(zip(PRINCIPALS, [anon, bad, none, ro, rw, root]))


USERS = {"none": "nobody", "ro": "reader", "rw": "writer", "root": "root",
         "wo": "wonly", "iv": "ivals"}
PW = {"nobody": "pw-n", "reader": "pw-r", "writer": "pw-w", "root": "pw-root",
      "wonly": "pw-wo", "ivals": "pw-iv"}
FLIP = os.environ.get("AUTHZ_FLIP", "")
TIMEOUT = 8 * float(os.environ.get("CAIRN_TIMEOUT_SCALE", "1"))

# Outcome shorthands (etcd-api.md 1.5.9 and 1.6).
OK = "OK"
EMPTY = "INVALID_ARGUMENT etcdserver: user name is empty"
BADTOK = "UNAUTHENTICATED etcdserver: invalid auth token"
DENY = "PERMISSION_DENIED etcdserver: permission denied"
WDENY = "CANCELED rpc error: code = PermissionDenied desc = etcdserver: permission denied"
WEMPTY = "CANCELED rpc error: code = InvalidArgument desc = etcdserver: user name is empty"
WBADTOK = "CANCELED rpc error: code = Unauthenticated desc = etcdserver: invalid auth token"
# etcd 3.4's Lock and Election answer their KV calls' errors as Unknown
U_EMPTY = "UNKNOWN etcdserver: user name is empty"
U_BADTOK = "UNKNOWN etcdserver: invalid auth token"
U_DENY = "UNKNOWN etcdserver: permission denied"
# etcd 3.4's authMaintenanceServer answers the auth store's own errors,
# unmapped: code Unknown, text "auth: ..."
RAW = row("UNKNOWN auth: user name is empty", "UNKNOWN auth: invalid auth token",
          "UNKNOWN auth: permission denied", "UNKNOWN auth: permission denied",
          "UNKNOWN auth: permission denied", "OK")
RAW_WHY = ("etcd 3.4.23's maintenance server returns the auth store's error "
           "unmapped (Unknown, 'auth: ...', which clients cannot match to "
           "rpctypes); cairnd answers the gRPC code and text etcd uses for "
           "that error everywhere else")
HTTP = {"OK": 200, "INVALID_ARGUMENT": 400, "OUT_OF_RANGE": 400,
        "UNAUTHENTICATED": 401, "PERMISSION_DENIED": 403, "NOT_FOUND": 404,
        "FAILED_PRECONDITION": 412, "RESOURCE_EXHAUSTED": 429,
        "UNAVAILABLE": 503, "UNKNOWN": 500}
CODES = {c.value[0]: c.name for c in grpc.StatusCode}
CODES_BY_NAME = {v: k for k, v in CODES.items()}


# ------------------------------------------------------------ servers


class Server:
    """One server: a gRPC channel and a kept-alive HTTP connection."""

    def __init__(self, kind, port):
        self.kind, self.port = kind, port
        self.ch = grpc.insecure_channel("127.0.0.1:%d" % port)
        self.http = None
        self.tok = {}

    def chan(self, p):
        return self.ch

    def md(self, p):
        if p and p.endswith("+authz"):  # the token as "authorization"
            t = self.tok.get(p[:-len("+authz")])
            return [("authorization", t)] if t else None
        t = self.tok.get(p)
        return [("token", t)] if t else None

    def unary(self, path, req, resp_cls, p, timeout=TIMEOUT):
        f = self.chan(p).unary_unary(path,
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=resp_cls.FromString)
        return f(req, timeout=timeout, metadata=self.md(p))

    def stream_first(self, path, reqs, resp_cls, p, unary_req=False):
        """First message of a server or bidi stream: (msg, None) or
        (None, outcome-of-the-error)."""
        ser = lambda m: m.SerializeToString()  # noqa: E731
        if unary_req:
            f = self.chan(p).unary_stream(path, request_serializer=ser,
                                     response_deserializer=resp_cls.FromString)
            it = f(reqs, timeout=TIMEOUT, metadata=self.md(p))
        else:
            f = self.chan(p).stream_stream(path, request_serializer=ser,
                                      response_deserializer=resp_cls.FromString)
            ev = threading.Event()

            def gen():
                for r in reqs:
                    yield r
                ev.wait(TIMEOUT)
            it = f(gen(), timeout=TIMEOUT, metadata=self.md(p))
        try:
            m = next(it)
            return m, None
        except StopIteration:
            return None, "END"
        except grpc.RpcError as e:
            return None, "%s %s" % (e.code().name, e.details())
        finally:
            it.cancel()
            if not unary_req:
                ev.set()

    def req(self, method, path, body=None, p=None, headers=None):
        """HTTP/1.1 on one kept-alive connection (reopened if closed)."""
        h = {"Content-Type": "application/json"}
        p = p[:-len("+authz")] if p and p.endswith("+authz") else p
        if p and self.tok.get(p):
            h["Authorization"] = self.tok[p]
        h.update(headers or {})
        data = None if body is None else (body if isinstance(body, (bytes, str))
                                          else json.dumps(body))
        for attempt in range(2):
            if self.http is None:
                self.http = http.client.HTTPConnection("127.0.0.1", self.port,
                                                       timeout=TIMEOUT)
            try:
                self.http.request(method, path, body=data, headers=h)
                r = self.http.getresponse()
                text = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.http.close()
                    self.http = None
                return r.status, text, r
            except (http.client.HTTPException, OSError):
                self.http.close()
                self.http = None
                if attempt:
                    raise

    def stream_req(self, method, path, body, p, headers=None, nbytes=1 << 20,
                   until=b"\n"):
        """A streaming HTTP answer: status and the first chunk of its body."""
        h = {"Content-Type": "application/json"}
        p = p[:-len("+authz")] if p and p.endswith("+authz") else p
        if p and self.tok.get(p):
            h["Authorization"] = self.tok[p]
        h.update(headers or {})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            c.request(method, path, body=None if body is None else
                      json.dumps(body), headers=h)
            r = c.getresponse()
            first = b""
            while until not in first and len(first) < nbytes:
                b = r.read1(nbytes) if hasattr(r, "read1") else r.read(1)
                if not b:
                    break
                first += b
            return r.status, first
        finally:
            c.close()


class TlsServer(Server):
    """The https pair: one channel per client certificate. Principal
    "cn:<p>" presents the certificate whose CN is p's user and no token
    (etcd's AuthInfoFromTLS: the CN is the user); "cn:root+tok:ro" presents
    root's certificate with ro's token (a token wins); any other principal
    (setup, root_call) uses a certificate whose CN is no user."""

    def __init__(self, kind, port, certs):
        Server.__init__(self, kind, port)
        ca = open(os.path.join(certs, "ca.crt"), "rb").read()
        self.chans = {}
        for cn in ("nobody", "reader", "writer", "root", "ghost"):
            cred = grpc.ssl_channel_credentials(
                root_certificates=ca,
                private_key=open(os.path.join(certs, cn + ".key"), "rb").read(),
                certificate_chain=open(os.path.join(certs, cn + ".crt"),
                                       "rb").read())
            self.chans[cn] = grpc.secure_channel(
                "127.0.0.1:%d" % port, cred,
                options=[("grpc.ssl_target_name_override", "localhost")])

    def chan(self, p):
        if p and p.startswith("cn:"):
            return self.chans[CN_CERT[p]]
        return self.chans["ghost"]

    def md(self, p):
        if p == "cn:root+tok:ro":
            return [("token", self.tok["ro"])]
        if p and p.startswith("cn:"):
            return None
        return Server.md(self, p)


# where a certificate principal's answer is not its row's (case name,
# principal) -> (cairnd expected, etcd expected, why)
UNF = "FAILED_PRECONDITION etcdserver: user name not found"
TLS_KNOWN = {
    # a certificate naming no user: admin calls say so, as etcd does
    (n, "cn:ghost"): (UNF, UNF, "") for n in (
        "member add (learner)", "user list", "user get (self)",
        "role get (own role)", "user add")}
TLS_KNOWN.update({
    (n, "cn:ghost"): (UNF, "UNKNOWN auth: user not found", RAW_WHY)
    for n in ("defragment", "hash", "snapshot (first chunk)")})

# certificate principals: the certificate presented, and whose row they get
CN_CERT = {"cn:none": "nobody", "cn:ro": "reader", "cn:rw": "writer",
           "cn:root": "root", "cn:ghost": "ghost", "cn:root+tok:ro": "root"}
CN_BASE = {"cn:none": "none", "cn:ro": "ro", "cn:rw": "rw", "cn:root": "root",
           "cn:ghost": "none", "cn:root+tok:ro": "ro"}
TLS_CASES = [
    "range /p/k", "range /q/k (outside)", "put /p/x", "put /p/x prev_kv",
    "txn put /p/t", "txn nested put /q/x (outside)",
    "watch create /p/ prefix", "watch create /q/k (outside)",
    "lease revoke (a key in /p/)", "lease timetolive keys (a key in /q/)",
    "defragment", "hash", "snapshot (first chunk)", "member add (learner)",
    "user list", "user get (self)", "role get (own role)", "user add",
    "lock /p/lock", "leader /p/elfix", "campaign /q/el (outside)"]


# ------------------------------------------------------------ gRPC cases
#
# A case: name, service path, request builder (srv, p, t) -> message
# (t is "g" for gRPC, "w" for the gateway: resources are per transport),
# response class, gateway path, expected row, and for cairnd differences
# from etcd: known = {principal: (cairnd outcome, why)}.

CASES = []


def case(name, path, build, resp, gw, expect, kind="unary", known=None,
         after=None, gw_known=None, gw_etcd=None):
    """gw_known: as known, for the gateway only (outcomes as it shows them);
    gw_etcd: etcd's gateway outcome where it is not the row's (a path
    etcd 3.4 does not serve)."""
    CASES.append(dict(name=name, path=path, build=build, resp=resp, gw=gw,
                      expect=expect, kind=kind, known=known or {},
                      after=after, gw_known=gw_known or {},
                      gw_etcd=gw_etcd or {}))


NO_GW = "http=404 body b'Not Found'"
NO_GW_WHY = ("not an authorization answer: cairnd's gateway serves only the "
             "watch and keepalive streams; this one is gRPC only (404)")


def B(s):
    return s.encode() if isinstance(s, str) else s


def root_call(srv, path, req, resp):
    return srv.unary(path, req, resp, "root")


KV = "/etcdserverpb.KV/"
LEASE = "/etcdserverpb.Lease/"
CL = "/etcdserverpb.Cluster/"
MT = "/etcdserverpb.Maintenance/"
AU = "/etcdserverpb.Auth/"

# KV
READ_IN = row(EMPTY, BADTOK, DENY, OK, OK, OK)
WRITE_IN = row(EMPTY, BADTOK, DENY, DENY, OK, OK)
OUT = row(EMPTY, BADTOK, DENY, DENY, DENY, OK)
case("range /p/k", KV + "Range", lambda s, p, t: R.RangeRequest(key=b"/p/k"),
     R.RangeResponse, "/v3/kv/range", READ_IN)
case("range prefix /p/", KV + "Range",
     lambda s, p, t: R.RangeRequest(key=b"/p/", range_end=b"/p0"),
     R.RangeResponse, "/v3/kv/range", READ_IN)
case("range /q/k (outside)", KV + "Range",
     lambda s, p, t: R.RangeRequest(key=b"/q/k"), R.RangeResponse,
     "/v3/kv/range", OUT)
case("range everything", KV + "Range",
     lambda s, p, t: R.RangeRequest(key=b"\0", range_end=b"\0"),
     R.RangeResponse, "/v3/kv/range", OUT)
case("range /p/ to /q/ (past the grant)", KV + "Range",
     lambda s, p, t: R.RangeRequest(key=b"/p/", range_end=b"/q/"),
     R.RangeResponse, "/v3/kv/range", OUT)
case("put /p/x", KV + "Put",
     lambda s, p, t: R.PutRequest(key=b"/p/x", value=b"v"), R.PutResponse,
     "/v3/kv/put", WRITE_IN)
case("put /p/x prev_kv", KV + "Put",
     lambda s, p, t: R.PutRequest(key=b"/p/x", value=b"v", prev_kv=True),
     R.PutResponse, "/v3/kv/put", WRITE_IN)
case("put /q/x (outside)", KV + "Put",
     lambda s, p, t: R.PutRequest(key=b"/q/x", value=b"v"), R.PutResponse,
     "/v3/kv/put", OUT)
case("deleterange /p/d", KV + "DeleteRange",
     lambda s, p, t: R.DeleteRangeRequest(key=b"/p/d"),
     R.DeleteRangeResponse, "/v3/kv/deleterange", WRITE_IN)
case("deleterange prefix /p/d/ prev_kv", KV + "DeleteRange",
     lambda s, p, t: R.DeleteRangeRequest(key=b"/p/d/", range_end=b"/p/d0",
                                          prev_kv=True),
     R.DeleteRangeResponse, "/v3/kv/deleterange", WRITE_IN)
case("deleterange /q/ (outside)", KV + "DeleteRange",
     lambda s, p, t: R.DeleteRangeRequest(key=b"/q/", range_end=b"/q0"),
     R.DeleteRangeResponse, "/v3/kv/deleterange", OUT)


def txn(compare_key, ops):
    return R.TxnRequest(
        compare=[R.Compare(key=B(compare_key), target=R.Compare.VERSION,
                           result=R.Compare.GREATER, version=0)]
        if compare_key else [], success=ops)


case("txn read /p/k", KV + "Txn",
     lambda s, p, t: txn("/p/k", [R.RequestOp(
         request_range=R.RangeRequest(key=b"/p/k"))]),
     R.TxnResponse, "/v3/kv/txn", READ_IN)
case("txn put /p/t", KV + "Txn",
     lambda s, p, t: txn("/p/k", [R.RequestOp(
         request_put=R.PutRequest(key=b"/p/t", value=b"v"))]),
     R.TxnResponse, "/v3/kv/txn", WRITE_IN)
case("txn compare /q/k (outside)", KV + "Txn",
     lambda s, p, t: txn("/q/k", [R.RequestOp(
         request_range=R.RangeRequest(key=b"/p/k"))]),
     R.TxnResponse, "/v3/kv/txn", OUT)
case("txn nested put /q/x (outside)", KV + "Txn",
     lambda s, p, t: txn(None, [R.RequestOp(request_txn=txn(None, [
         R.RequestOp(request_put=R.PutRequest(key=b"/q/x", value=b"v"))]))]),
     R.TxnResponse, "/v3/kv/txn", row(OK, BADTOK, OK, OK, OK, OK),
     known={p: (OUT[p], "etcd 3.4.23 checks a txn's range, put and delete "
                "ops but not a nested txn's (checkTxnReqsPermission has no "
                "RequestTxn case), so any user, or none, writes any key "
                "through one; cairnd checks the nested ops")
            for p in ("anon", "none", "ro", "rw")})
case("txn failure branch delete /q/x (outside)", KV + "Txn",
     lambda s, p, t: R.TxnRequest(failure=[R.RequestOp(
         request_delete_range=R.DeleteRangeRequest(key=b"/q/x"))]),
     R.TxnResponse, "/v3/kv/txn", OUT)
FUTURE = "OUT_OF_RANGE etcdserver: mvcc: required revision is a future revision"
case("compact (a future revision)", KV + "Compact",
     lambda s, p, t: R.CompactionRequest(revision=1 << 40),
     R.CompactionResponse, "/v3/kv/compaction",
     row(FUTURE, BADTOK, FUTURE, FUTURE, FUTURE, FUTURE))

# Watch: the create's answer.
case("watch create /p/ prefix", "/etcdserverpb.Watch/Watch",
     lambda s, p, t: R.WatchRequest(create_request=R.WatchCreateRequest(
         key=b"/p/", range_end=b"/p0")),
     R.WatchResponse, "/v3/watch", row(WEMPTY, WBADTOK, WDENY, OK, OK, OK),
     kind="watch")
case("watch create /q/k (outside)", "/etcdserverpb.Watch/Watch",
     lambda s, p, t: R.WatchRequest(create_request=R.WatchCreateRequest(
         key=b"/q/k")),
     R.WatchResponse, "/v3/watch",
     row(WEMPTY, WBADTOK, WDENY, WDENY, WDENY, OK),
     kind="watch")


# Lease
def lease_with_key(s, key):
    """Root grants a lease and puts key under it; returns the lease id."""
    lid = root_call(s, LEASE + "LeaseGrant", R.LeaseGrantRequest(TTL=300),
                    R.LeaseGrantResponse).ID
    root_call(s, KV + "Put", R.PutRequest(key=B(key), value=b"l", lease=lid),
              R.PutResponse)
    return lid


ANY = row(OK, BADTOK, OK, OK, OK, OK)
OPEN = row(OK, OK, OK, OK, OK, OK)
case("lease grant", LEASE + "LeaseGrant",
     lambda s, p, t: R.LeaseGrantRequest(TTL=60), R.LeaseGrantResponse,
     "/v3/lease/grant", ANY)
case("lease revoke (a key in /p/)", LEASE + "LeaseRevoke",
     lambda s, p, t: R.LeaseRevokeRequest(
         ID=lease_with_key(s, "/p/lr/%s%s" % (p, t))),
     R.LeaseRevokeResponse, "/v3/lease/revoke", WRITE_IN)
case("lease revoke (a key in /q/)", LEASE + "LeaseRevoke",
     lambda s, p, t: R.LeaseRevokeRequest(
         ID=lease_with_key(s, "/q/lr/%s%s" % (p, t))),
     R.LeaseRevokeResponse, "/v3/kv/lease/revoke", OUT)
case("lease revoke (no key)", LEASE + "LeaseRevoke",
     lambda s, p, t: R.LeaseRevokeRequest(ID=root_call(
         s, LEASE + "LeaseGrant", R.LeaseGrantRequest(TTL=300),
         R.LeaseGrantResponse).ID),
     R.LeaseRevokeResponse, "/v3/lease/revoke", ANY)
case("lease keepalive (a key in /q/)", LEASE + "LeaseKeepAlive",
     lambda s, p, t: R.LeaseKeepAliveRequest(
         ID=lease_with_key(s, "/q/ka/%s%s" % (p, t))),
     R.LeaseKeepAliveResponse, "/v3/lease/keepalive", OPEN, kind="bidi")
case("lease timetolive keys (a key in /q/)", LEASE + "LeaseTimeToLive",
     lambda s, p, t: R.LeaseTimeToLiveRequest(
         ID=lease_with_key(s, "/q/tl/%s%s" % (p, t)), keys=True),
     R.LeaseTimeToLiveResponse, "/v3/lease/timetolive", OPEN,
     known={p: (OUT[p], "etcd 3.4.23 names a lease's keys to anyone "
                "(GHSA-3p4g-rcw5-8298, fixed in 3.4.26 and 3.5.9); cairnd "
                "answers keys only to a user who may read them all")
            for p in ("anon", "bad", "none", "ro", "rw")})
case("lease timetolive keys (a key in /p/)", LEASE + "LeaseTimeToLive",
     lambda s, p, t: R.LeaseTimeToLiveRequest(
         ID=lease_with_key(s, "/p/tl/%s%s" % (p, t)), keys=True),
     R.LeaseTimeToLiveResponse, "/v3/lease/timetolive", OPEN,
     known={p: (READ_IN[p], "as above: the keys of the lease are named "
                "only to a user who may read them")
            for p in ("anon", "bad", "none")})
case("lease timetolive (gateway /v3/kv/lease/...)", LEASE + "LeaseTimeToLive",
     lambda s, p, t: R.LeaseTimeToLiveRequest(ID=12345),
     R.LeaseTimeToLiveResponse, "/v3/kv/lease/timetolive", OPEN)
case("lease leases", LEASE + "LeaseLeases",
     lambda s, p, t: R.LeaseLeasesRequest(), R.LeaseLeasesResponse,
     "/v3/lease/leases", OPEN)
case("lease leases (gateway /v3/kv/lease/leases)", LEASE + "LeaseLeases",
     lambda s, p, t: R.LeaseLeasesRequest(), R.LeaseLeasesResponse,
     "/v3/kv/lease/leases", OPEN)

# Cluster
ADMIN = row(EMPTY, BADTOK, DENY, DENY, DENY, OK)


def free_url():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "http://127.0.0.1:%d" % port


def self_id(s):
    return root_call(s, MT + "Status", R.StatusRequest(),
                     R.StatusResponse).header.member_id


def learners(s):
    ms = root_call(s, CL + "MemberList", R.MemberListRequest(),
                   R.MemberListResponse).members
    return [m.ID for m in ms if m.isLearner]


def remove_learners(s, p, t):
    for mid in learners(s):
        root_call(s, CL + "MemberRemove", R.MemberRemoveRequest(ID=mid),
                  R.MemberRemoveResponse)


def add_learner(s, p, t):
    remove_learners(s, p, t)
    return R.MemberRemoveRequest(ID=root_call(
        s, CL + "MemberAdd", R.MemberAddRequest(peerURLs=[free_url()],
                                                isLearner=True),
        R.MemberAddResponse).member.ID)


def update_self(s, p, t):
    me = self_id(s)
    ms = root_call(s, CL + "MemberList", R.MemberListRequest(),
                   R.MemberListResponse).members
    urls = [m.peerURLs for m in ms if m.ID == me][0]
    return R.MemberUpdateRequest(ID=me, peerURLs=list(urls))


case("member list", CL + "MemberList", lambda s, p, t: R.MemberListRequest(),
     R.MemberListResponse, "/v3/cluster/member/list", OPEN)
case("member add (learner)", CL + "MemberAdd",
     lambda s, p, t: (remove_learners(s, p, t), R.MemberAddRequest(
         peerURLs=[free_url()], isLearner=True))[1],
     R.MemberAddResponse, "/v3/cluster/member/add", ADMIN,
     after=remove_learners)
case("member remove (a learner)", CL + "MemberRemove", add_learner,
     R.MemberRemoveResponse, "/v3/cluster/member/remove", ADMIN,
     after=remove_learners)
case("member update (self, same URLs)", CL + "MemberUpdate", update_self,
     R.MemberUpdateResponse, "/v3/cluster/member/update", ADMIN)
case("member promote (unknown id)", CL + "MemberPromote",
     lambda s, p, t: R.MemberPromoteRequest(ID=0x1234),
     R.MemberPromoteResponse, "/v3/cluster/member/promote",
     row(EMPTY, BADTOK, DENY, DENY, DENY,
         "NOT_FOUND etcdserver: member not found"))

# Maintenance
case("status", MT + "Status", lambda s, p, t: R.StatusRequest(),
     R.StatusResponse, "/v3/maintenance/status", OPEN)
RAW_BAD = row(OK, "UNKNOWN auth: invalid auth token", OK, OK, OK, OK)
RAW_BAD_KNOWN = {"bad": (BADTOK, RAW_WHY)}
case("alarm get", MT + "Alarm",
     lambda s, p, t: R.AlarmRequest(action=R.AlarmRequest.GET),
     R.AlarmResponse, "/v3/maintenance/alarm", RAW_BAD, known=RAW_BAD_KNOWN)
case("alarm deactivate NOSPACE", MT + "Alarm",
     lambda s, p, t: R.AlarmRequest(action=R.AlarmRequest.DEACTIVATE,
                                    alarm=R.NOSPACE),
     R.AlarmResponse, "/v3/maintenance/alarm", RAW_BAD, known=RAW_BAD_KNOWN)
ADMIN_M = row(EMPTY, BADTOK, DENY, DENY, DENY, OK)
RAW_KNOWN = {p: (ADMIN_M[p], RAW_WHY) for p in PRINCIPALS if p != "root"}
case("defragment", MT + "Defragment", lambda s, p, t: R.DefragmentRequest(),
     R.DefragmentResponse, "/v3/maintenance/defragment", RAW, known=RAW_KNOWN)
case("hash", MT + "Hash", lambda s, p, t: R.HashRequest(), R.HashResponse,
     "/v3/maintenance/hash", RAW, known=RAW_KNOWN)
# 3.4's gateway routes /v3/maintenance/hash to Hash, so HashKV is gRPC only
case("hashkv", MT + "HashKV", lambda s, p, t: R.HashKVRequest(revision=0),
     R.HashKVResponse, None, RAW, known=RAW_KNOWN)
case("snapshot (first chunk)", MT + "Snapshot",
     lambda s, p, t: R.SnapshotRequest(), R.SnapshotResponse,
     "/v3/maintenance/snapshot", RAW, kind="server_stream", known=RAW_KNOWN,
     gw_known={p: (NO_GW, NO_GW_WHY) for p in PRINCIPALS})
case("move leader (unknown target)", MT + "MoveLeader",
     lambda s, p, t: R.MoveLeaderRequest(targetID=0x1234),
     R.MoveLeaderResponse, "/v3/maintenance/transfer-leadership",
     row(*["FAILED_PRECONDITION etcdserver: bad leader transferee"] * 6),
     known={p: (ADMIN_M[p], "etcd 3.4 looks at the target before (or "
                "without) any permission check; cairnd refuses a non-root "
                "caller first, so it learns nothing about the members")
            for p in PRINCIPALS if p != "root"})


# Auth: each mutating call works on a user and a role made by root for it.
def mk_user(s, p, t, tag, role=False, grant=False):
    name = "u%s_%s_%s" % (tag, p, t)
    root_call(s, AU + "UserAdd", R.AuthUserAddRequest(name=name, password="x"),
              R.AuthUserAddResponse)
    if role:
        root_call(s, AU + "RoleAdd", R.AuthRoleAddRequest(name="r" + name),
                  R.AuthRoleAddResponse)
        root_call(s, AU + "RoleGrantPermission",
                  R.AuthRoleGrantPermissionRequest(name="r" + name, perm=A.Permission(
                      permType=A.Permission.READ, key=b"/z/")),
                  R.AuthRoleGrantPermissionResponse)
    if grant:
        root_call(s, AU + "UserGrantRole",
                  R.AuthUserGrantRoleRequest(user=name, role="r" + name),
                  R.AuthUserGrantRoleResponse)
    return name


def mk_role(s, p, t, tag):
    name = "r%s_%s_%s" % (tag, p, t)
    root_call(s, AU + "RoleAdd", R.AuthRoleAddRequest(name=name),
              R.AuthRoleAddResponse)
    root_call(s, AU + "RoleGrantPermission",
              R.AuthRoleGrantPermissionRequest(name=name, perm=A.Permission(
                  permType=A.Permission.READ, key=b"/z/")),
              R.AuthRoleGrantPermissionResponse)
    return name


AUTHF = "INVALID_ARGUMENT etcdserver: authentication failed, invalid user ID or password"
case("auth enable (already on)", AU + "AuthEnable",
     lambda s, p, t: R.AuthEnableRequest(), R.AuthEnableResponse,
     "/v3/auth/enable", ADMIN)
case("authenticate (right password)", AU + "Authenticate",
     lambda s, p, t: R.AuthenticateRequest(name="reader", password="pw-r"),
     R.AuthenticateResponse, "/v3/auth/authenticate", ANY)
case("authenticate (wrong password)", AU + "Authenticate",
     lambda s, p, t: R.AuthenticateRequest(name="reader", password="nope"),
     R.AuthenticateResponse, "/v3/auth/authenticate",
     row(AUTHF, AUTHF, AUTHF, AUTHF, AUTHF, AUTHF))
case("user add", AU + "UserAdd",
     lambda s, p, t: R.AuthUserAddRequest(name="n_%s_%s" % (p, t),
                                          password="x"),
     R.AuthUserAddResponse, "/v3/auth/user/add", ADMIN)
case("user get (self)", AU + "UserGet",
     lambda s, p, t: R.AuthUserGetRequest(name=USERS.get(p, "nobody")),
     R.AuthUserGetResponse, "/v3/auth/user/get",
     row(EMPTY, BADTOK, OK, OK, OK, OK))
case("user get (root)", AU + "UserGet",
     lambda s, p, t: R.AuthUserGetRequest(name="root"),
     R.AuthUserGetResponse, "/v3/auth/user/get", ADMIN)
case("user list", AU + "UserList", lambda s, p, t: R.AuthUserListRequest(),
     R.AuthUserListResponse, "/v3/auth/user/list", ADMIN)
case("user delete", AU + "UserDelete",
     lambda s, p, t: R.AuthUserDeleteRequest(name=mk_user(s, p, t, "d")),
     R.AuthUserDeleteResponse, "/v3/auth/user/delete", ADMIN)
case("user delete root", AU + "UserDelete",
     lambda s, p, t: R.AuthUserDeleteRequest(name="root"),
     R.AuthUserDeleteResponse, "/v3/auth/user/delete",
     row(EMPTY, BADTOK, DENY, DENY, DENY,
         "INVALID_ARGUMENT etcdserver: invalid auth management"))
case("user change password", AU + "UserChangePassword",
     lambda s, p, t: R.AuthUserChangePasswordRequest(name=mk_user(s, p, t, "c"),
                                                     password="y"),
     R.AuthUserChangePasswordResponse, "/v3/auth/user/changepw", ADMIN)
case("user grant role", AU + "UserGrantRole",
     lambda s, p, t: R.AuthUserGrantRoleRequest(
         user=mk_user(s, p, t, "g", role=True), role="rug_%s_%s" % (p, t)),
     R.AuthUserGrantRoleResponse, "/v3/auth/user/grant", ADMIN)
case("user grant self role rw", AU + "UserGrantRole",
     lambda s, p, t: R.AuthUserGrantRoleRequest(
         user=USERS.get(p, "nobody"), role="rw"),
     R.AuthUserGrantRoleResponse, "/v3/auth/user/grant",
     row(EMPTY, BADTOK, DENY, DENY, DENY, OK))
case("user revoke role", AU + "UserRevokeRole",
     lambda s, p, t: R.AuthUserRevokeRoleRequest(
         name=mk_user(s, p, t, "r", role=True, grant=True),
         role="rur_%s_%s" % (p, t)),
     R.AuthUserRevokeRoleResponse, "/v3/auth/user/revoke", ADMIN)
case("role add", AU + "RoleAdd",
     lambda s, p, t: R.AuthRoleAddRequest(name="n_%s_%s" % (p, t)),
     R.AuthRoleAddResponse, "/v3/auth/role/add", ADMIN)
case("role get (own role)", AU + "RoleGet",
     lambda s, p, t: R.AuthRoleGetRequest(
         role={"ro": "ro", "rw": "rw"}.get(p, "root")),
     R.AuthRoleGetResponse, "/v3/auth/role/get",
     row(EMPTY, BADTOK, DENY, OK, OK, OK))
case("role get (rw)", AU + "RoleGet",
     lambda s, p, t: R.AuthRoleGetRequest(role="rw"),
     R.AuthRoleGetResponse, "/v3/auth/role/get",
     row(EMPTY, BADTOK, DENY, DENY, OK, OK))
case("role list", AU + "RoleList", lambda s, p, t: R.AuthRoleListRequest(),
     R.AuthRoleListResponse, "/v3/auth/role/list", ADMIN)
case("role delete", AU + "RoleDelete",
     lambda s, p, t: R.AuthRoleDeleteRequest(role=mk_role(s, p, t, "d")),
     R.AuthRoleDeleteResponse, "/v3/auth/role/delete", ADMIN)
case("role grant permission", AU + "RoleGrantPermission",
     lambda s, p, t: R.AuthRoleGrantPermissionRequest(
         name=mk_role(s, p, t, "g"), perm=A.Permission(
             permType=A.Permission.READWRITE, key=b"\0", range_end=b"\0")),
     R.AuthRoleGrantPermissionResponse, "/v3/auth/role/grant", ADMIN)
case("role revoke permission", AU + "RoleRevokePermission",
     lambda s, p, t: R.AuthRoleRevokePermissionRequest(
         role=mk_role(s, p, t, "r"), key=b"/z/"),
     R.AuthRoleRevokePermissionResponse, "/v3/auth/role/revoke", ADMIN)


# A write-only role (wo: write on /p/): reading back (prev_kv, a compare,
# a range, a watch) needs read permission too.
def wo(x):
    return {"wo": x}


case("put /p/x (write-only)", KV + "Put",
     lambda s, p, t: R.PutRequest(key=b"/p/x", value=b"v"), R.PutResponse,
     "/v3/kv/put", wo(OK))
case("put /p/x prev_kv (write-only)", KV + "Put",
     lambda s, p, t: R.PutRequest(key=b"/p/x", value=b"v", prev_kv=True),
     R.PutResponse, "/v3/kv/put", wo(DENY))
case("range /p/k (write-only)", KV + "Range",
     lambda s, p, t: R.RangeRequest(key=b"/p/k"), R.RangeResponse,
     "/v3/kv/range", wo(DENY))
case("deleterange /p/d (write-only)", KV + "DeleteRange",
     lambda s, p, t: R.DeleteRangeRequest(key=b"/p/d"),
     R.DeleteRangeResponse, "/v3/kv/deleterange", wo(OK))
case("deleterange /p/d prev_kv (write-only)", KV + "DeleteRange",
     lambda s, p, t: R.DeleteRangeRequest(key=b"/p/d", prev_kv=True),
     R.DeleteRangeResponse, "/v3/kv/deleterange", wo(DENY))
case("txn put /p/t, no compare (write-only)", KV + "Txn",
     lambda s, p, t: txn(None, [R.RequestOp(
         request_put=R.PutRequest(key=b"/p/t", value=b"v"))]),
     R.TxnResponse, "/v3/kv/txn", wo(OK))
case("txn put /p/t, compare /p/k (write-only)", KV + "Txn",
     lambda s, p, t: txn("/p/k", [R.RequestOp(
         request_put=R.PutRequest(key=b"/p/t", value=b"v"))]),
     R.TxnResponse, "/v3/kv/txn", wo(DENY))
case("txn put /p/t prev_kv (write-only)", KV + "Txn",
     lambda s, p, t: txn(None, [R.RequestOp(
         request_put=R.PutRequest(key=b"/p/t", value=b"v", prev_kv=True))]),
     R.TxnResponse, "/v3/kv/txn", wo(OK),
     known={"wo": (DENY, "etcd 3.4.23 checks a put's prev_kv read "
                   "permission for a plain Put but not inside a txn "
                   "(checkTxnReqsPermission asks IsPutPermitted only), so a "
                   "write-only user reads the old value back; cairnd checks "
                   "it in both")})
case("watch create /p/ (write-only)", "/etcdserverpb.Watch/Watch",
     lambda s, p, t: R.WatchRequest(create_request=R.WatchCreateRequest(
         key=b"/p/", range_end=b"/p0")),
     R.WatchResponse, "/v3/watch", wo(WDENY), kind="watch")
case("lease revoke (a key in /p/, write-only)", LEASE + "LeaseRevoke",
     lambda s, p, t: R.LeaseRevokeRequest(
         ID=lease_with_key(s, "/p/lw/%s%s" % (p, t))),
     R.LeaseRevokeResponse, "/v3/lease/revoke", wo(OK))
case("lease timetolive keys (a key in /p/, write-only)",
     LEASE + "LeaseTimeToLive",
     lambda s, p, t: R.LeaseTimeToLiveRequest(
         ID=lease_with_key(s, "/p/tw/%s%s" % (p, t)), keys=True),
     R.LeaseTimeToLiveResponse, "/v3/lease/timetolive", wo(OK),
     known={"wo": (DENY, "GHSA-3p4g-rcw5-8298, as above: naming keys "
                   "needs read permission")})

# gRPC metadata "authorization" instead of "token" (rpctypes.MetadataTokenKey
# and its fallback); the gateway sends Authorization either way
AZ = {"ro+authz": OK, "bad+authz": BADTOK}
case("range /p/k (token as authorization)", KV + "Range",
     lambda s, p, t: R.RangeRequest(key=b"/p/k"), R.RangeResponse,
     "/v3/kv/range", AZ)
case("put /p/x (token as authorization)", KV + "Put",
     lambda s, p, t: R.PutRequest(key=b"/p/x", value=b"v"), R.PutResponse,
     "/v3/kv/put", {"ro+authz": DENY, "bad+authz": BADTOK, "rw+authz": OK})
case("watch /p/ (token as authorization)", "/etcdserverpb.Watch/Watch",
     lambda s, p, t: R.WatchRequest(create_request=R.WatchCreateRequest(
         key=b"/p/", range_end=b"/p0")),
     R.WatchResponse, "/v3/watch", {"ro+authz": OK, "bad+authz": WBADTOK},
     kind="watch")
case("snapshot (token as authorization)", MT + "Snapshot",
     lambda s, p, t: R.SnapshotRequest(), R.SnapshotResponse,
     "/v3/maintenance/snapshot",
     {"ro+authz": RAW["ro"], "root+authz": OK}, kind="server_stream",
     known={"ro+authz": (DENY, RAW_WHY)},
     gw_known={p: (NO_GW, NO_GW_WHY) for p in ("ro+authz", "root+authz")})

# A token whose user changed after it was issued: deleted, a new
# password, its role revoked. The change is made by root, then the token
# (kept under the principal's name) is used.
def changed_token(s, p, t, what):
    user = "ch_%s_%s" % (p, t)
    u = lambda path, req, resp: root_call(s, path, req, resp)  # noqa: E731
    u(AU + "UserAdd", R.AuthUserAddRequest(name=user, password="x"),
      R.AuthUserAddResponse)
    u(AU + "UserGrantRole", R.AuthUserGrantRoleRequest(user=user, role="ro"),
      R.AuthUserGrantRoleResponse)
    tok = s.unary(AU + "Authenticate", R.AuthenticateRequest(
        name=user, password="x"), R.AuthenticateResponse, None).token
    if what == "gone":
        u(AU + "UserDelete", R.AuthUserDeleteRequest(name=user),
          R.AuthUserDeleteResponse)
    elif what == "chpw":
        u(AU + "UserChangePassword", R.AuthUserChangePasswordRequest(
            name=user, password="y"), R.AuthUserChangePasswordResponse)
    else:
        u(AU + "UserRevokeRole", R.AuthUserRevokeRoleRequest(
            name=user, role="ro"), R.AuthUserRevokeRoleResponse)
    s.tok[p] = tok


CHANGED = {"gone": BADTOK, "chpw": BADTOK, "revk": DENY}
case("range /p/k, token of a changed user", KV + "Range",
     lambda s, p, t: (changed_token(s, p, t, p),
                      R.RangeRequest(key=b"/p/k"))[1],
     R.RangeResponse, "/v3/kv/range", CHANGED)
case("watch /p/, token of a changed user", "/etcdserverpb.Watch/Watch",
     lambda s, p, t: (changed_token(s, p, t + "w", p),
                      R.WatchRequest(create_request=R.WatchCreateRequest(
                          key=b"/p/", range_end=b"/p0")))[1],
     R.WatchResponse, "/v3/watch",
     {"gone": WBADTOK, "chpw": WBADTOK, "revk": WDENY}, kind="watch")

# Interval edges (iv: read from /t/ on, readwrite /single, read /c/...,
# read [/j/a, /j/m) and, in a second role, [/j/m, /j/z))
def iv_range(key, end=b""):
    return lambda s, p, t: R.RangeRequest(key=key, range_end=end)


for label, key, end, exp in (
        ("/u/k (after /t/, from-key grant)", b"/u/k", b"", OK),
        ("/a (before /t/)", b"/a", b"", DENY),
        ("/t/ to the end", b"/t/", b"\0", OK),
        ("/s to the end (starts before the grant)", b"/s", b"\0", DENY),
        ("everything", b"\0", b"\0", DENY),
        ("/single", b"/single", b"", OK),
        ("/single as a prefix", b"/single", b"/singlf", DENY),
        ("/single to /single\\0 (the one key)", b"/single", b"/single\0", OK),
        ("/singlex (a longer key)", b"/singlex", b"", DENY),
        ("/c/ prefix", b"/c/", b"/c0", OK),
        ("/c/a to /c/b", b"/c/a", b"/c/b", OK),
        ("/c to /c/ (just before the prefix)", b"/c", b"/c/", DENY),
        ("/c/a backwards to /c/", b"/c/a", b"/c/", OK),
        ("/j/b to /j/y (across two grants)", b"/j/b", b"/j/y", OK),
        ("/j/b to /j/zz (past them)", b"/j/b", b"/j/zz", DENY)):
    case("range %s (interval grants)" % label, KV + "Range",
         iv_range(key, end), R.RangeResponse, "/v3/kv/range", {"iv": exp})
case("put /single (interval grants)", KV + "Put",
     lambda s, p, t: R.PutRequest(key=b"/single", value=b"v"), R.PutResponse,
     "/v3/kv/put", {"iv": OK})
case("put /u/k (read-only from-key grant)", KV + "Put",
     lambda s, p, t: R.PutRequest(key=b"/u/k", value=b"v"), R.PutResponse,
     "/v3/kv/put", {"iv": DENY})
case("deleterange /single prefix (interval grants)", KV + "DeleteRange",
     lambda s, p, t: R.DeleteRangeRequest(key=b"/single", range_end=b"/singlf"),
     R.DeleteRangeResponse, "/v3/kv/deleterange", {"iv": DENY})
case("watch /j/b to /j/y (across two grants)", "/etcdserverpb.Watch/Watch",
     lambda s, p, t: R.WatchRequest(create_request=R.WatchCreateRequest(
         key=b"/j/b", range_end=b"/j/y")),
     R.WatchResponse, "/v3/watch", {"iv": OK}, kind="watch")
case("watch from /s (interval grants)", "/etcdserverpb.Watch/Watch",
     lambda s, p, t: R.WatchRequest(create_request=R.WatchCreateRequest(
         key=b"/s", range_end=b"\0")),
     R.WatchResponse, "/v3/watch", {"iv": WDENY}, kind="watch")

# What a watcher gets: only the keys it watches (and may read)
ONE = "EVENTS /p/ev1"
case("watch /p/ev1 alone, then puts after it", "/etcdserverpb.Watch/Watch",
     lambda s, p, t: (R.WatchCreateRequest(key=b"/p/ev1"),
                      [b"/p/ev2", b"/q/ev", b"/r"]),
     None, None, {"ro": ONE, "rw": ONE, "root": ONE}, kind="events")
case("watch /p/ prefix, then puts outside", "/etcdserverpb.Watch/Watch",
     lambda s, p, t: (R.WatchCreateRequest(key=b"/p/", range_end=b"/p0"),
                      [b"/q/ev", b"/p0", b"/o"]),
     None, None, {"ro": "EVENTS /p/", "rw": "EVENTS /p/"}, kind="events")
case("watch /t/ on (from-key grant), then puts before it",
     "/etcdserverpb.Watch/Watch",
     lambda s, p, t: (R.WatchCreateRequest(key=b"/t/", range_end=b"\0"),
                      [b"/s", b"/c/x", b"/u"]),
     None, None, {"iv": "EVENTS /u,/t/"}, kind="events")

# Lock and Election (server-side recipes, run as the caller)
WRITE_IN_U = row(U_EMPTY, U_BADTOK, U_DENY, U_DENY, OK, OK)
READ_IN_U = row(U_EMPTY, U_BADTOK, U_DENY, OK, OK, OK)
OUT_U = row(U_EMPTY, U_BADTOK, U_DENY, U_DENY, U_DENY, OK)
def root_lease(s):
    return root_call(s, LEASE + "LeaseGrant", R.LeaseGrantRequest(TTL=300),
                     R.LeaseGrantResponse).ID


def root_campaign(s, name):
    return s.unary("/v3electionpb.Election/Campaign", EL.CampaignRequest(
        name=B(name), lease=root_lease(s), value=b"v"),
        EL.CampaignResponse, "root").leader


LK_ = "/v3lockpb.Lock/"
ELN = "/v3electionpb.Election/"
case("lock /p/lock", LK_ + "Lock",
     lambda s, p, t: LK.LockRequest(name=B("/p/lock/%s%s" % (p, t)),
                                    lease=root_lease(s)),
     LK.LockResponse, "/v3/lock/lock", WRITE_IN_U)
case("lock /q/lock (outside)", LK_ + "Lock",
     lambda s, p, t: LK.LockRequest(name=B("/q/lock/%s%s" % (p, t)),
                                    lease=root_lease(s)),
     LK.LockResponse, "/v3/lock/lock", OUT_U)
case("unlock /p/ key", LK_ + "Unlock",
     lambda s, p, t: LK.UnlockRequest(key=s.unary(
         LK_ + "Lock", LK.LockRequest(name=B("/p/ul/%s%s" % (p, t)),
                                      lease=root_lease(s)),
         LK.LockResponse, "root").key),
     LK.UnlockResponse, "/v3/lock/unlock", WRITE_IN_U)
case("campaign /p/el", ELN + "Campaign",
     lambda s, p, t: EL.CampaignRequest(name=B("/p/el/%s%s" % (p, t)),
                                        lease=root_lease(s), value=b"v"),
     EL.CampaignResponse, "/v3/election/campaign", WRITE_IN_U)
case("campaign /q/el (outside)", ELN + "Campaign",
     lambda s, p, t: EL.CampaignRequest(name=B("/q/el/%s%s" % (p, t)),
                                        lease=root_lease(s), value=b"v"),
     EL.CampaignResponse, "/v3/election/campaign", OUT_U)
case("proclaim /p/ leader", ELN + "Proclaim",
     lambda s, p, t: EL.ProclaimRequest(
         leader=root_campaign(s, "/p/pr/%s%s" % (p, t)), value=b"w"),
     EL.ProclaimResponse, "/v3/election/proclaim", WRITE_IN_U)
case("leader /p/elfix", ELN + "Leader",
     lambda s, p, t: EL.LeaderRequest(name=b"/p/elfix"),
     EL.LeaderResponse, "/v3/election/leader", READ_IN_U)
case("leader /s/elfix (outside)", ELN + "Leader",
     lambda s, p, t: EL.LeaderRequest(name=b"/s/elfix"),
     EL.LeaderResponse, "/v3/election/leader", OUT_U)
case("resign /p/ leader", ELN + "Resign",
     lambda s, p, t: EL.ResignRequest(
         leader=root_campaign(s, "/p/rs/%s%s" % (p, t))),
     EL.ResignResponse, "/v3/election/resign", WRITE_IN_U)
case("lock /p/lock (write-only)", LK_ + "Lock",
     lambda s, p, t: LK.LockRequest(name=B("/p/lockw/%s" % t),
                                    lease=root_lease(s)),
     LK.LockResponse, "/v3/lock/lock", wo(U_DENY))
case("campaign /p/el (write-only)", ELN + "Campaign",
     lambda s, p, t: EL.CampaignRequest(name=B("/p/elw/%s" % t),
                                        lease=root_lease(s), value=b"v"),
     EL.CampaignResponse, "/v3/election/campaign", wo(U_DENY))
case("observe /p/elfix (first answer)", ELN + "Observe",
     lambda s, p, t: EL.LeaderRequest(name=b"/p/elfix"),
     EL.LeaderResponse, "/v3/election/observe",
     row("END", "END", "END", OK, OK, OK), kind="server_stream",
     known={p: (READ_IN_U[p], "etcd 3.4's Observe ends the stream with no "
                "message and status OK when its range read is refused; "
                "cairnd ends it with the error")
            for p in ("anon", "bad", "none")},
     gw_known={p: (NO_GW, NO_GW_WHY) for p in PRINCIPALS})

# 3.5 surface cairnd serves and etcd 3.4.23 does not: AuthStatus, and
# HashKV at its own gateway path (3.5.10); /v3beta/ aliases /v3/
GW404 = "http=404 body b'Not Found\\n'"
WHY35 = ("a 3.5 RPC etcd 3.4.23 does not serve; cairnd answers it as the "
         "other Auth administration calls, root only")
case("auth status (3.5)", AU + "AuthStatus",
     lambda s, p, t: R.AuthStatusRequest(), R.AuthStatusResponse,
     "/v3/auth/status",
     {p: "UNIMPLEMENTED unknown method AuthStatus for service "
         "etcdserverpb.Auth" for p in PRINCIPALS},
     known={p: (ADMIN[p], WHY35) for p in PRINCIPALS},
     gw_etcd={p: GW404 for p in PRINCIPALS})
case("hashkv at /v3/maintenance/hashkv (3.5.10)", MT + "HashKV",
     lambda s, p, t: R.HashKVRequest(revision=0), R.HashKVResponse,
     "/v3/maintenance/hashkv", RAW, known=RAW_KNOWN,
     gw_etcd={p: GW404 for p in PRINCIPALS})
case("range /p/k at /v3beta/", KV + "Range",
     lambda s, p, t: R.RangeRequest(key=b"/p/k"), R.RangeResponse,
     "/v3beta/kv/range", READ_IN)
case("user list at /v3beta/", AU + "UserList",
     lambda s, p, t: R.AuthUserListRequest(), R.AuthUserListResponse,
     "/v3beta/auth/user/list", ADMIN)

# Auth disable last: it ends every token (run once per transport, root last).
case("auth disable", AU + "AuthDisable",
     lambda s, p, t: R.AuthDisableRequest(), R.AuthDisableResponse,
     "/v3/auth/disable", ADMIN, after=lambda s, p, t: reenable(s, p))


def reenable(s, p):
    if p == "root":
        s.tok.clear()
        s.unary(AU + "AuthEnable", R.AuthEnableRequest(),
                R.AuthEnableResponse, None)
        login(s)


def login(s):
    s.tok = {"bad": "bogusBogusBogus.1"}
    for p, u in USERS.items():
        s.tok[p] = s.unary(AU + "Authenticate",
                           R.AuthenticateRequest(name=u, password=PW[u]),
                           R.AuthenticateResponse, None).token


def watch_events(s, p, create, puts):
    """Open a watch as p, then (as root) put each key of puts, then put
    the watched key: the keys of the events the watcher got, in order, up
    to that last one (GHSA-xg4h-6gfc-h4m8: a watcher must see only what it
    may read)."""
    q = queue.Queue()
    q.put(R.WatchRequest(create_request=create))

    def gen():
        while True:
            m = q.get()
            if m is None:
                return
            yield m
    f = s.chan(p).stream_stream(
        "/etcdserverpb.Watch/Watch",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=R.WatchResponse.FromString)
    it = f(gen(), timeout=TIMEOUT, metadata=s.md(p))
    try:
        m = next(it)
        if m.canceled:
            return "CANCELED " + m.cancel_reason
        for k in puts + [create.key]:
            root_call(s, KV + "Put", R.PutRequest(key=k, value=b"e"),
                      R.PutResponse)
        keys = []
        while create.key not in keys:
            m = next(it)
            keys += [e.kv.key for e in m.events]
        return "EVENTS " + ",".join(k.decode() for k in keys)
    except grpc.RpcError as e:
        return "%s %s" % (e.code().name, e.details())
    finally:
        q.put(None)
        it.cancel()


def run_grpc(s, c, p, t, bp=None):
    """One gRPC call as p (its request built as bp's, if given): the
    outcome."""
    req = c["build"](s, bp or p, t)
    try:
        if c["kind"] == "events":
            return watch_events(s, p, req[0], req[1])
        if c["kind"] == "unary":
            s.unary(c["path"], req, c["resp"], p)
            return OK
        if c["kind"] == "watch":
            m, err = s.stream_first(c["path"], [req], c["resp"], p)
            if err:
                return err
            if m.canceled:
                return "CANCELED " + m.cancel_reason
            return OK if m.created else "NOT CREATED"
        m, err = s.stream_first(c["path"], req if c["kind"] == "server_stream"
                                else [req], c["resp"], p,
                                unary_req=c["kind"] == "server_stream")
        if err:
            return err
        if c["kind"] == "bidi" and m.TTL <= 0:
            return "TTL %d" % m.TTL
        return OK
    except grpc.RpcError as e:
        return "%s %s" % (e.code().name, e.details())


def run_gw(s, c, p, t):
    """The same request through the JSON gateway: outcome + " http=N"."""
    req = c["build"](s, p, t)
    body = json_format.MessageToDict(req, preserving_proto_field_name=True)
    if c["kind"] in ("unary",):
        st, text, _ = s.req("POST", c["gw"], body, p)
        try:
            js = json.loads(text)
        except ValueError:
            return "http=%d body %r" % (st, text[:80])
        if st == 200 and "error" not in js:
            return OK
        return "%s %s http=%d" % (CODES.get(js.get("code"), js.get("code")),
                                  js.get("error"), st)
    if c["kind"] == "watch":
        body = {"create_request": body["create_request"]}
    st, first = s.stream_req("POST", c["gw"], body, p)
    line = first.split(b"\n")[0]
    if st == 200 and not line.strip():
        return "END"  # the stream ended with no message
    try:
        js = json.loads(line)
    except ValueError:
        return "http=%d body %r" % (st, line[:80])
    if "error" in js:
        e = js["error"]
        if isinstance(e, dict):  # a stream's error line
            return "%s %s" % (CODES.get(e.get("grpc_code"), e.get("grpc_code")),
                              e.get("message"))
        return "%s %s http=%d" % (CODES.get(js.get("code"), js.get("code")),
                                  e, st)
    res = js.get("result", {})
    if c["kind"] == "watch":
        if res.get("canceled"):
            return "CANCELED " + res.get("cancel_reason", "")
        return OK if res.get("created") else "NOT CREATED"
    if c["kind"] == "bidi" and int(res.get("TTL", 0)) <= 0:
        return "TTL %s" % res.get("TTL", 0)
    return OK


WS_WHY = ("etcd 3.4.23's WebSocket proxy does not pass the upgrade's "
          "Authorization header on, so every create over it is anonymous "
          "(\"user name is empty\"); cairnd checks it as the token, as on "
          "the plain gateway")


def run_ws(s, c, p, t):
    """A watch create through the gateway's WebSocket (the token in the
    upgrade's Authorization header): the create's answer."""
    req = c["build"](s, p, t)
    body = json_format.MessageToDict(req, preserving_proto_field_name=True)

    def pick(js):
        if "error" in js:
            e = js["error"]
            return "%s %s" % (CODES.get(e.get("grpc_code"), e.get("grpc_code")),
                              e.get("message"))
        res = js.get("result", {})
        if res.get("canceled"):
            return "CANCELED " + res.get("cancel_reason", "")
        return OK if res.get("created") else None
    return ws_exchange(s, p, c["gw"], [body], pick)


def gw_expect(outcome, kind):
    """The table's gRPC outcome as the gateway shows it."""
    if outcome == OK or kind != "unary":
        return outcome
    code = outcome.split(" ", 1)[0]
    return "%s http=%d" % (outcome, HTTP.get(code, 0))


# ------------------------------------------------------------ /api/v1 cases
#
# cairnd only. Namespace a is inside the ro and rw grants, b outside.
# Outcome: "OK" (2xx) or "<status> <code>"; streams: their first message.

U = "/api/v1"
API = []
R_A = row("401 unauthenticated", "401 unauthenticated", "403 permission_denied",
          OK, OK, OK)  # read in a
W_A = row("401 unauthenticated", "401 unauthenticated", "403 permission_denied",
          "403 permission_denied", OK, OK)  # write in a
X_B = row("401 unauthenticated", "401 unauthenticated", "403 permission_denied",
          "403 permission_denied", "403 permission_denied", OK)  # anything in b


def api(name, fn, expect, known=None):
    API.append(dict(name=name, fn=fn, expect=expect, known=known or {}))


# A stream answers 200 and says why in its first message (registry.md,
# "Pushed discovery": {"type":"error","code":..}).
S_A = row("error unauthenticated", "error unauthenticated",
          "error permission_denied", OK, OK, OK)
S_B = row("error unauthenticated", "error unauthenticated",
          "error permission_denied", "error permission_denied",
          "error permission_denied", OK)


def ns_api(name, fn, write):
    """The same call in namespace a (granted) and b (not granted)."""
    a, b = (S_A, S_B) if write == "stream" else (W_A if write else R_A, X_B)
    api(name % "a", lambda s, p, fn=fn: fn(s, p, "a"), a)
    api(name % "b", lambda s, p, fn=fn: fn(s, p, "b"), b)


def outcome_http(st, text):
    if 200 <= st < 300:
        return OK
    try:
        return "%d %s" % (st, json.loads(text).get("code"))
    except (ValueError, AttributeError):
        return "%d %r" % (st, text[:60])


def call(s, p, method, path, body=None):
    st, text, _ = s.req(method, path, body, p)
    return outcome_http(st, text)


def rootreq(s, method, path, body=None):
    st, text, _ = s.req(method, path, body, "root")
    if not 200 <= st < 300:
        raise RuntimeError("setup %s %s: %d %s" % (method, path, st, text[:200]))
    return json.loads(text) if text else {}


def reg(s, ns, svc, iid):
    rootreq(s, "PUT", "%s/registry/%s/%s/%s" % (U, ns, svc, iid),
            {"addr": "127.0.0.1:9", "ttl": 300})


def pub(s, ns, app, name, content="{}", n=1):
    for i in range(n):
        rootreq(s, "PUT", "%s/config/%s/%s/%s" % (U, ns, app, name),
                {"content": '{"v":%d}' % i, "format": "json"})


def session_in(s, ns, p):
    sid = rootreq(s, "POST", U + "/sessions", {"ttl": 300})["session"]
    rootreq(s, "PUT", "%s/registry/%s/svc/ss_%s" % (U, ns, p),
            {"addr": "127.0.0.1:9", "session": sid})
    return sid


def sse_first(s, p, path):
    st, first = s.stream_req("GET", path, None, p,
                             headers={"Accept": "text/event-stream"},
                             until=b"\n\n")
    if st != 200:
        try:
            return "%d %s" % (st, json.loads(first.split(b"\n\n")[0]).get("code"))
        except ValueError:
            return "%d ?" % st
    # read until the first "data:" line
    for ln in first.decode("utf-8", "replace").split("\n"):
        if ln.startswith("data:"):
            js = json.loads(ln[5:])
            return OK if js.get("type") == "snapshot" else \
                "%s %s" % (js.get("type"), js.get("code"))
    return "no data in %r" % first[:80]


def ws_roundtrip(s, p, msgs, want, sock_p=None):
    """/api/v1/stream: upgrade with p's token (sock_p's, if given: then
    each message carries p's token, if p has one), send msgs, and return
    the answer to the request with id `want` (its error code, or OK)."""
    if sock_p is not None:
        msgs = [dict(m, token=s.tok[p]) if s.tok.get(p) else m for m in msgs]
        p = sock_p

    def pick(js):
        if js.get("id") != want:
            return None
        return "error %s" % js["error"].get("code") if "error" in js else OK
    return ws_exchange(s, p, U + "/stream", msgs, pick)


def ws_exchange(s, p, path, msgs, pick):
    """A WebSocket on path, upgraded with p's token: send msgs (JSON text
    frames), then read text messages until pick(message) gives an outcome.
    A refused upgrade is "<status> <code>"."""
    p = p[:-len("+authz")] if p and p.endswith("+authz") else p
    sk = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        auth = "Authorization: %s\r\n" % s.tok[p] if s.tok.get(p) else ""
        sk.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                    "%s\r\n" % (path, key, auth)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = sk.recv(4096)
            if not d:
                return "closed at upgrade"
            buf += d
        head, _, buf = buf.partition(b"\r\n\r\n")
        st = int(head.split()[1])
        if st != 101:
            body = buf
            try:
                return "%d %s" % (st, json.loads(body.decode()).get("code"))
            except ValueError:
                return "%d" % st
        for m in msgs:
            data = json.dumps(m).encode()
            mask = os.urandom(4)
            hdr = bytes([0x81])
            if len(data) < 126:
                hdr += bytes([0x80 | len(data)])
            else:
                hdr += bytes([0x80 | 126]) + struct.pack("!H", len(data))
            sk.sendall(hdr + mask + bytes(b ^ mask[i % 4]
                                          for i, b in enumerate(data)))
        deadline = time.time() + TIMEOUT
        while time.time() < deadline:
            while len(buf) < 2:
                d = sk.recv(65536)
                if not d:
                    return "ws closed"
                buf += d
            ln = buf[1] & 0x7f
            off = 2
            if ln == 126:
                while len(buf) < 4:
                    buf += sk.recv(65536)
                ln = struct.unpack("!H", buf[2:4])[0]
                off = 4
            elif ln == 127:
                while len(buf) < 10:
                    buf += sk.recv(65536)
                ln = struct.unpack("!Q", buf[2:10])[0]
                off = 10
            while len(buf) < off + ln:
                buf += sk.recv(65536)
            op, payload, buf = buf[0] & 0x0f, buf[off:off + ln], buf[off + ln:]
            if op == 8:
                return "ws closed"
            if op != 1:
                continue
            out = pick(json.loads(payload))
            if out is not None:
                return out
        return "no answer"
    finally:
        sk.close()


# sessions (leases: any valid token; deleting one revokes its instances)
api("session create", lambda s, p: call(s, p, "POST", U + "/sessions",
                                        {"ttl": 60}),
    # etcd's LeaseGrant: any user, or none; a bad token is refused
    row(OK, "401 unauthenticated", OK, OK, OK, OK))
ns_api("session get (instance in %s)",
       lambda s, p, ns: call(s, p, "GET", U + "/sessions/" + session_in(s, ns, p)),
       False)
# etcd's LeaseKeepAlive: no check at all (the lease id is the secret)
for ns in ("a", "b"):
    api("session keepalive (instance in %s)" % ns,
        lambda s, p, ns=ns: call(s, p, "POST", "%s/sessions/%s/keepalive" % (
            U, session_in(s, ns, p))), row(OK, OK, OK, OK, OK, OK))
ns_api("session delete (instance in %s)",
       lambda s, p, ns: call(s, p, "DELETE", U + "/sessions/" +
                             session_in(s, ns, p)), True)
# instances
ns_api("instance put %s", lambda s, p, ns: call(
    s, p, "PUT", "%s/registry/%s/svc/i_%s" % (U, ns, p),
    {"addr": "127.0.0.1:9", "ttl": 60}), True)
ns_api("instance patch %s", lambda s, p, ns: (
    reg(s, ns, "svc", "pa_" + p), call(
        s, p, "PATCH", "%s/registry/%s/svc/pa_%s" % (U, ns, p),
        {"status": "draining"}))[1], True)
ns_api("instance get %s", lambda s, p, ns: call(
    s, p, "GET", "%s/registry/%s/svc/fix" % (U, ns)), False)
ns_api("instance delete %s", lambda s, p, ns: (
    reg(s, ns, "svc", "de_" + p), call(
        s, p, "DELETE", "%s/registry/%s/svc/de_%s" % (U, ns, p)))[1], True)
ns_api("service get %s", lambda s, p, ns: call(
    s, p, "GET", "%s/registry/%s/svc?healthy=true" % (U, ns)), False)
ns_api("service settings put %s", lambda s, p, ns: call(
    s, p, "PUT", "%s/registry/%s/svc" % (U, ns), {"protect_threshold": 0.1}),
    True)
ns_api("namespace get %s", lambda s, p, ns: call(
    s, p, "GET", "%s/registry/%s" % (U, ns)), False)
api("namespaces list", lambda s, p: call(s, p, "GET", U + "/registry"),
    X_B)
ns_api("prometheus sd %s", lambda s, p, ns: call(
    s, p, "GET", "%s/sd/prometheus?namespace=%s" % (U, ns)), False)
ns_api("registry watch SSE %s/svc", lambda s, p, ns: sse_first(
    s, p, "%s/watch/registry/%s/svc" % (U, ns)), "stream")
ns_api("registry watch SSE %s", lambda s, p, ns: sse_first(
    s, p, "%s/watch/registry/%s" % (U, ns)), "stream")
for ns, exp in (("a", S_A), ("b", S_B)):
    api("stream subscribe registry %s" % ns, lambda s, p, ns=ns: ws_roundtrip(
        s, p, [{"id": 1, "op": "subscribe", "kind": "registry",
                "namespace": ns, "service": "svc"}], 1), exp)
    api("stream subscribe config %s" % ns, lambda s, p, ns=ns: ws_roundtrip(
        s, p, [{"id": 1, "op": "subscribe", "kind": "config",
                "namespace": ns, "app": "app"}], 1), exp)
# a request's own "token" counts for it alone (registry.md, "Auth" of the
# stream): on root's socket, a request with p's token is p's, not root's
for ns, exp in (("a", S_A), ("b", S_B)):
    api("stream subscribe registry %s, root's socket, request token" % ns,
        lambda s, p, ns=ns: ws_roundtrip(
            s, p, [{"id": 1, "op": "subscribe", "kind": "registry",
                    "namespace": ns, "service": "svc"}], 1, sock_p="root"),
        dict(exp, anon=OK))
    api("stream subscribe config %s, no-role socket, request token" % ns,
        lambda s, p, ns=ns: ws_roundtrip(
            s, p, [{"id": 1, "op": "subscribe", "kind": "config",
                    "namespace": ns, "app": "app"}], 1, sock_p="none"),
        dict(exp, anon="error permission_denied"))
api("stream session", lambda s, p: ws_roundtrip(
    s, p, [{"id": 1, "op": "session", "ttl": 30}], 1),
    row(OK, "error unauthenticated", OK, OK, OK, OK))

api("stream keepalive (a session in a)", lambda s, p: ws_roundtrip(
    s, p, [{"id": 1, "op": "keepalive", "session": session_in(s, "a", p)}],
    1), row(OK, OK, OK, OK, OK, OK))  # as the REST keepalive: no check

# config
C = U + "/config"
ns_api("config publish %s", lambda s, p, ns: call(
    s, p, "PUT", "%s/%s/app/p_%s.json" % (C, ns, p),
    {"content": "{}", "format": "json"}), True)
ns_api("config publish %s ?wait_acks", lambda s, p, ns: call(
    s, p, "PUT", "%s/%s/app/w_%s.json?wait_acks=1&timeout=1" % (C, ns, p),
    {"content": "{}", "format": "json"}), True)
ns_api("config get %s", lambda s, p, ns: call(
    s, p, "GET", "%s/%s/app/c.json?client_id=x" % (C, ns)), False)
ns_api("config get raw %s", lambda s, p, ns: call(
    s, p, "GET", "%s/%s/app/c.json?raw=1" % (C, ns)), False)
ns_api("config list apps %s", lambda s, p, ns: call(
    s, p, "GET", "%s/%s" % (C, ns)), False)
ns_api("config list configs %s", lambda s, p, ns: call(
    s, p, "GET", "%s/%s/app" % (C, ns)), False)
ns_api("config versions %s", lambda s, p, ns: call(
    s, p, "GET", "%s/%s/app/c.json/versions" % (C, ns)), False)
ns_api("config version 1 %s", lambda s, p, ns: call(
    s, p, "GET", "%s/%s/app/c.json/versions/1" % (C, ns)), False)
ns_api("config diff %s", lambda s, p, ns: call(
    s, p, "GET", "%s/%s/app/c.json/diff?from=1&to=2" % (C, ns)), False)
ns_api("config rollback %s", lambda s, p, ns: (
    pub(s, ns, "app", "rb_" + p, n=2), call(
        s, p, "POST", "%s/%s/app/rb_%s/rollback" % (C, ns, p), {"to": 1}))[1],
    True)
ns_api("config delete %s", lambda s, p, ns: (
    pub(s, ns, "app", "de_" + p), call(
        s, p, "DELETE", "%s/%s/app/de_%s" % (C, ns, p)))[1], True)
ns_api("config gray put %s", lambda s, p, ns: (
    pub(s, ns, "app", "gp_" + p), call(
        s, p, "PUT", "%s/%s/app/gp_%s/gray" % (C, ns, p),
        {"content": "{}", "format": "json", "rule": {"percentage": 10}}))[1],
    True)
ns_api("config gray get %s", lambda s, p, ns: call(
    s, p, "GET", "%s/%s/app/g.json/gray" % (C, ns)), False)


def gray_open(s, ns, name):
    pub(s, ns, "app", name)
    rootreq(s, "PUT", "%s/%s/app/%s/gray" % (C, ns, name),
            {"content": "{}", "format": "json", "rule": {"percentage": 10}})


ns_api("config gray promote %s", lambda s, p, ns: (
    gray_open(s, ns, "gr_" + p), call(
        s, p, "POST", "%s/%s/app/gr_%s/gray/promote" % (C, ns, p), {}))[1],
    True)
ns_api("config gray abandon %s", lambda s, p, ns: (
    gray_open(s, ns, "ga_" + p), call(
        s, p, "DELETE", "%s/%s/app/ga_%s/gray" % (C, ns, p)))[1], True)
ns_api("config subscribers %s", lambda s, p, ns: call(
    s, p, "GET", "%s/%s/app/c.json/subscribers" % (C, ns)), False)
ns_api("config watch SSE %s/app/c.json", lambda s, p, ns: sse_first(
    s, p, "%s/watch/config/%s/app/c.json" % (U, ns)), "stream")
ns_api("config watch SSE %s", lambda s, p, ns: sse_first(
    s, p, "%s/watch/config/%s" % (U, ns)), "stream")


# resumed streams (since=R: no snapshot) are checked the same way: the
# first message is then the first change, or the refusal
def sse_since(s, p, path):
    def pick(js):
        return OK if js.get("type") in ("put", "delete") else \
            "%s %s" % (js.get("type"), js.get("code"))
    return sse_exchange(s, p, path, pick)


def fix_rev(s, ns, kind):
    """The revision of the fixture's last write in ns (an instance, or a
    config), read as root."""
    path = ("%s/registry/%s/svc/fix" % (U, ns) if kind == "registry"
            else "%s/%s/app/c.json" % (C, ns))
    js = rootreq(s, "GET", path)
    return (js.get("instance") or js)["revision"]


for ns, exp in (("a", S_A), ("b", S_B)):
    api("registry watch SSE %s/svc?since (resumed)" % ns,
        lambda s, p, ns=ns: sse_since(s, p, "%s/watch/registry/%s/svc?since=%d"
                                      % (U, ns, fix_rev(s, ns, "registry")
                                         - 1)), exp)
    api("stream subscribe registry %s with since" % ns,
        lambda s, p, ns=ns: ws_roundtrip(
            s, p, [{"id": 1, "op": "subscribe", "kind": "registry",
                    "namespace": ns, "service": "svc",
                    "since": fix_rev(s, ns, "registry") - 1}], 1), exp)
    api("config watch SSE %s/app?since (resumed)" % ns,
        lambda s, p, ns=ns: sse_since(s, p, "%s/watch/config/%s/app?since=%d"
                                      % (U, ns, fix_rev(s, ns, "config") - 1)),
        exp)


# the push streams as WebSockets: the first message
def sse_exchange(s, p, path, pick):
    """An SSE stream on path as p: each event's data to pick until it gives
    an outcome; "closed" if the stream ends first."""
    h = {"Accept": "text/event-stream"}
    if s.tok.get(p):
        h["Authorization"] = s.tok[p]
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=TIMEOUT)
    try:
        c.request("GET", path, headers=h)
        r = c.getresponse()
        if r.status != 200:
            return outcome_http(r.status, r.read())
        buf = b""
        while True:
            d = r.read1(65536)
            if not d:
                return "closed"
            buf += d
            while b"\n\n" in buf:
                ev, _, buf = buf.partition(b"\n\n")
                for ln in ev.decode("utf-8", "replace").split("\n"):
                    if ln.startswith("data:"):
                        out = pick(json.loads(ln[5:]))
                        if out is not None:
                            return out
    finally:
        c.close()


def ws_push_first(s, p, path):
    def pick(js):
        if js.get("type") == "snapshot":
            return OK
        return "%s %s" % (js.get("type"), js.get("code"))
    return ws_exchange(s, p, path, [], pick)


ns_api("registry watch WebSocket %s/svc", lambda s, p, ns: ws_push_first(
    s, p, "%s/watch/registry/%s/svc" % (U, ns)), "stream")
ns_api("config watch WebSocket %s/app", lambda s, p, ns: ws_push_first(
    s, p, "%s/watch/config/%s/app" % (U, ns)), "stream")


# what is not there: a caller who may not read the namespace learns
# nothing about it (403 before 404)
NF_B = dict(X_B, root="404 not_found")
NF_A = dict(R_A, ro="404 not_found", rw="404 not_found", root="404 not_found")
for ns, exp in (("a", NF_A), ("b", NF_B)):
    api("instance get %s/svc/nope (absent)" % ns, lambda s, p, ns=ns: call(
        s, p, "GET", "%s/registry/%s/svc/nope" % (U, ns)), exp)
    api("config get %s/app/nope (absent)" % ns, lambda s, p, ns=ns: call(
        s, p, "GET", "%s/%s/app/nope" % (C, ns)), exp)
    api("config version 99 %s (absent)" % ns, lambda s, p, ns=ns: call(
        s, p, "GET", "%s/%s/app/c.json/versions/99" % (C, ns)), exp)
    api("config gray get %s/app/c.json (none open)" % ns,
        lambda s, p, ns=ns: call(s, p, "GET", "%s/%s/app/c.json/gray"
                                 % (C, ns)), exp)
api("session get (absent)", lambda s, p: call(
    s, p, "GET", U + "/sessions/00000000000000aa"),
    row("401 unauthenticated", "401 unauthenticated", "410 session_expired",
        "410 session_expired", "410 session_expired", "410 session_expired"))


# paths above a namespace are not served (the same answer to everyone,
# so nothing is learned from it): no listing of every namespace's
# instances, configs or changes
def same(x):
    return row(x, x, x, x, x, x)


api("prometheus sd, no namespace", lambda s, p: call(
    s, p, "GET", U + "/sd/prometheus"), same("400 bad_request"))
api("config namespaces list", lambda s, p: call(s, p, "GET", C),
    same("404 not_found"))
api("registry watch SSE, no namespace", lambda s, p: sse_first(
    s, p, U + "/watch/registry"), same("404 not_found"))
api("config watch SSE, no namespace", lambda s, p: sse_first(
    s, p, U + "/watch/config"), same("404 not_found"))
api("stream subscribe registry, no namespace", lambda s, p: ws_roundtrip(
    s, p, [{"id": 1, "op": "subscribe", "kind": "registry"}], 1),
    same("error bad_request"))


# a grant revoked while a subscription is open: the subscription ends with
# an error (registry.md, "One socket for everything") instead of going on
# pushing changes its user may no longer read
def revoked_push(s, p, kind):
    user = "tmp_%s_%s" % (kind, p)
    role = "r" + user
    u = lambda path, req, resp: root_call(s, path, req, resp)  # noqa: E731
    u(AU + "UserAdd", R.AuthUserAddRequest(name=user, password="x"),
      R.AuthUserAddResponse)
    u(AU + "RoleAdd", R.AuthRoleAddRequest(name=role), R.AuthRoleAddResponse)
    pre = b"/config/a/" if kind.startswith("config") else b"/registry/a/"
    u(AU + "RoleGrantPermission", R.AuthRoleGrantPermissionRequest(
        name=role, perm=A.Permission(permType=A.Permission.READ, key=pre,
                                     range_end=pre[:-1] + b"0")),
      R.AuthRoleGrantPermissionResponse)
    u(AU + "UserGrantRole", R.AuthUserGrantRoleRequest(user=user, role=role),
      R.AuthUserGrantRoleResponse)
    s.tok[user] = s.unary(AU + "Authenticate", R.AuthenticateRequest(
        name=user, password="x"), R.AuthenticateResponse, None).token
    state = {"revoked": False}

    def change():
        u(AU + "UserRevokeRole", R.AuthUserRevokeRoleRequest(name=user,
                                                              role=role),
          R.AuthUserRevokeRoleResponse)
        state["revoked"] = True
        if kind.startswith("config"):
            pub(s, "a", "app", "rv_%s_%s" % (kind, p))
        else:
            reg(s, "a", "svc", "rv_%s_%s" % (kind, p))

    def pick(js):
        t = js.get("type")
        if t is None:
            return None  # the subscribe's answer
        if not state["revoked"]:
            if t != "snapshot":
                return "first %s %s" % (t, js.get("code"))
            change()
            return None
        return "%s %s" % (t, js.get("code")) if t == "error" else t

    try:
        if kind == "stream":
            return ws_exchange(s, user, U + "/stream", [
                {"id": 1, "op": "subscribe", "kind": "registry",
                 "namespace": "a", "service": "svc"}], pick)
        path = ("%s/watch/config/a/app" % U if kind.startswith("config")
                else "%s/watch/registry/a/svc" % U)
        if kind.endswith("sse"):
            return sse_exchange(s, user, path, pick)
        return ws_exchange(s, user, path, [], pick)
    finally:
        s.tok.pop(user, None)


REVOKED = {"rw": "error permission_denied"}
api("stream subscribe registry a, grant revoked", lambda s, p: revoked_push(
    s, p, "stream"), REVOKED)
api("registry watch WebSocket a/svc, grant revoked",
    lambda s, p: revoked_push(s, p, "registry"), REVOKED)
api("config watch WebSocket a/app, grant revoked",
    lambda s, p: revoked_push(s, p, "config"), REVOKED)
api("registry watch SSE a/svc, grant revoked",
    lambda s, p: revoked_push(s, p, "registry-sse"), REVOKED)
api("config watch SSE a/app, grant revoked",
    lambda s, p: revoked_push(s, p, "config-sse"), REVOKED)


# secrets: clear only with read on /config-secret/<ns>/ (rw in a, root)
def secret_get(s, p, path):
    st, text, _ = s.req("GET", path, None, p)
    if st != 200:
        return outcome_http(st, text)
    if "raw=1" in path:
        return OK
    js = json.loads(text)
    if "versions" in js:
        js = js["versions"][0]
    return "OK redacted" if js.get("redacted") else \
        "OK clear" if js.get("content") else "OK no content"


def sse_secret(s, p, path):
    st, first = s.stream_req("GET", path, None, p,
                             headers={"Accept": "text/event-stream"},
                             until=b"\n\n")
    for ln in first.decode("utf-8", "replace").split("\n"):
        if ln.startswith("data:"):
            js = json.loads(ln[5:])
            if js.get("type") != "snapshot":
                return "%s %s" % (js.get("type"), js.get("code"))
            c = js["configs"][0]
            return "OK redacted" if c.get("redacted") else \
                "OK clear" if c.get("content") else "OK no content"
    return "%d no data" % st


SEC_A = row("401 unauthenticated", "401 unauthenticated",
            "403 permission_denied", "OK redacted", "OK clear", "OK clear")
SEC_B = dict(X_B, root="OK clear")
for ns, exp in (("a", SEC_A), ("b", SEC_B)):
    api("config secret get %s" % ns, lambda s, p, ns=ns: secret_get(
        s, p, "%s/%s/app/s.json" % (C, ns)), exp)
    api("config secret version 1 %s" % ns, lambda s, p, ns=ns: secret_get(
        s, p, "%s/%s/app/s.json/versions/1" % (C, ns)), exp)
    api("config secret get raw %s" % ns, lambda s, p, ns=ns: secret_get(
        s, p, "%s/%s/app/s.json?raw=1" % (C, ns)),
        dict(exp, ro="403 permission_denied", rw=OK, root=OK)
        if ns == "a" else dict(exp, root=OK))
    api("config secret watch SSE %s" % ns, lambda s, p, ns=ns: sse_secret(
        s, p, "%s/watch/config/%s/app/s.json" % (U, ns)),
        dict(exp, anon="error unauthenticated", bad="error unauthenticated",
             none="error permission_denied") if ns == "a" else
        dict(S_B, root="OK clear"))


# A secret's head names the SHA-256 of its clear text to every reader of
# the namespace: a guess at a short secret can be checked offline.
def secret_sha(s, p, ns):
    st, text, _ = s.req("GET", "%s/%s/app/s.json/versions" % (C, ns), None, p)
    if st != 200:
        return outcome_http(st, text)
    return "sha256 shown" if json.loads(text)["versions"][0].get("sha256") \
        else "no sha256"


SHA_WHY = ("KNOWN ISSUE, not fixed here: the config head and the release "
           "metadata (etcd keys under /config/<ns>/, readable with etcdctl "
           "by the same users) store sha256 of the clear text, which is also "
           "the raw ETag; hiding it needs a keyed hash for secrets, a change "
           "of the stored format")
api("config secret sha256 in versions a", lambda s, p: secret_sha(s, p, "a"),
    dict(SEC_A, ro="no sha256", rw="sha256 shown", root="sha256 shown"),
    known={"ro": ("sha256 shown", SHA_WHY)})


# with auth off (run last): no token needed, and a stale one is ignored
AUTH_OFF = []
OFF = {"anon": OK, "bad": OK}
for name, fn in (
        ("instance put b", lambda s, p: call(
            s, p, "PUT", "%s/registry/b/svc/off_%s" % (U, p),
            {"addr": "127.0.0.1:9", "ttl": 60})),
        ("service get b", lambda s, p: call(
            s, p, "GET", "%s/registry/b/svc" % U)),
        ("namespaces list", lambda s, p: call(s, p, "GET", U + "/registry")),
        ("config publish b", lambda s, p: call(
            s, p, "PUT", "%s/b/app/off_%s" % (C, p), {"content": "x"})),
        ("audit verify", lambda s, p: call(s, p, "GET", U + "/audit/verify")),
        ("registry watch SSE b/svc", lambda s, p: sse_first(
            s, p, "%s/watch/registry/b/svc" % U))):
    AUTH_OFF.append(dict(name=name, fn=fn, expect=OFF, known={}))
AUTH_OFF.append(dict(name="config secret get b", expect={
    "anon": "OK clear", "bad": "OK clear"}, known={},
    fn=lambda s, p: secret_get(s, p, "%s/b/app/s.json" % C)))


# audit: which namespaces' records a principal sees
def audit_list(s, p, q=""):
    st, text, _ = s.req("GET", U + "/audit?limit=1000" + q, None, p)
    if st != 200:
        return outcome_http(st, text)
    recs = json.loads(text)["records"]
    nss = sorted({r.get("namespace") or "-" for r in recs})
    return "OK " + ",".join(nss)


api("audit list", audit_list,
    row("401 unauthenticated", "401 unauthenticated", "OK ",
        "OK a", "OK a", "OK -,a,b"))
api("audit list namespace=a", lambda s, p: audit_list(s, p, "&namespace=a"),
    row("401 unauthenticated", "401 unauthenticated", "403 permission_denied",
        "OK a", "OK a", "OK a"))
api("audit list namespace=b", lambda s, p: audit_list(s, p, "&namespace=b"),
    row("401 unauthenticated", "401 unauthenticated", "403 permission_denied",
        "403 permission_denied", "403 permission_denied", "OK b"))
api("audit verify", lambda s, p: call(s, p, "GET", U + "/audit/verify"),
    row("401 unauthenticated", "401 unauthenticated", "403 permission_denied",
        "403 permission_denied", "403 permission_denied", OK))


# ------------------------------------------------------------ setup


def setup(s):
    u = lambda path, req, resp: s.unary(path, req, resp, None)  # noqa: E731
    for name in ["root", "nobody", "reader", "writer", "wonly", "ivals"]:
        u(AU + "UserAdd", R.AuthUserAddRequest(name=name, password=PW[name]),
          R.AuthUserAddResponse)
    for role in ["root", "ro", "rw", "wo", "iv", "iv2"]:
        u(AU + "RoleAdd", R.AuthRoleAddRequest(name=role), R.AuthRoleAddResponse)
    for role, pt in (("ro", A.Permission.READ), ("rw", A.Permission.READWRITE)):
        for pre in (b"/p/", b"/registry/a/", b"/config/a/"):
            end = pre[:-1] + bytes([pre[-1] + 1])
            u(AU + "RoleGrantPermission", R.AuthRoleGrantPermissionRequest(
                name=role, perm=A.Permission(permType=pt, key=pre,
                                             range_end=end)),
              R.AuthRoleGrantPermissionResponse)
    u(AU + "RoleGrantPermission", R.AuthRoleGrantPermissionRequest(
        name="wo", perm=A.Permission(permType=A.Permission.WRITE, key=b"/p/",
                                     range_end=b"/p0")),
      R.AuthRoleGrantPermissionResponse)
    # clear secrets of namespace a for rw alone (config.md, "Secrets")
    u(AU + "RoleGrantPermission", R.AuthRoleGrantPermissionRequest(
        name="rw", perm=A.Permission(permType=A.Permission.READ,
                                     key=b"/config-secret/a/",
                                     range_end=b"/config-secret/a0")),
      R.AuthRoleGrantPermissionResponse)
    # iv: interval edges (from-key, one key, a prefix, two grants that
    # meet, in two roles)
    for role, pt, key, end in (
            ("iv", A.Permission.READ, b"/t/", b"\0"),
            ("iv", A.Permission.READWRITE, b"/single", b""),
            ("iv", A.Permission.READ, b"/c/", b"/c0"),
            ("iv", A.Permission.READ, b"/j/a", b"/j/m"),
            ("iv2", A.Permission.READ, b"/j/m", b"/j/z")):
        u(AU + "RoleGrantPermission", R.AuthRoleGrantPermissionRequest(
            name=role, perm=A.Permission(permType=pt, key=key,
                                         range_end=end)),
          R.AuthRoleGrantPermissionResponse)
    for user, role in (("root", "root"), ("reader", "ro"), ("writer", "rw"),
                       ("wonly", "wo"), ("ivals", "iv"), ("ivals", "iv2")):
        u(AU + "UserGrantRole", R.AuthUserGrantRoleRequest(user=user, role=role),
          R.AuthUserGrantRoleResponse)
    for k in (b"/p/k", b"/q/k"):
        u(KV + "Put", R.PutRequest(key=k, value=b"v"), R.PutResponse)
    u(AU + "AuthEnable", R.AuthEnableRequest(), R.AuthEnableResponse)
    login(s)
    # leaders for Leader/Observe
    root_campaign(s, "/p/elfix")
    root_campaign(s, "/s/elfix")
    if s.kind == "cairnd" and not isinstance(s, TlsServer):
        for ns in ("a", "b"):
            reg(s, ns, "svc", "fix")
            pub(s, ns, "app", "c.json", n=2)
            gray_open(s, ns, "g.json")
            for v in (1, 2):
                rootreq(s, "PUT", "%s/%s/app/s.json" % (C, ns),
                        {"content": '{"pw":%d}' % v, "format": "json",
                         "secret": True})
        rootreq(s, "POST", U + "/sessions", {"ttl": 300})  # a session record


# ------------------------------------------------------------ run

def main():
    cairn, etcd = Server("cairnd", CAIRN_PORT), Server("etcd", ETCD_PORT)
    setup(cairn)
    setup(etcd)
    results = []  # (case id, principal, expected, got, ok)

    def expect_of(c, p, xf=lambda o: o):
        exp = xf(c["expect"][p])
        if FLIP in ("all", "%s/%s" % (c["id"], p)):
            exp = "FLIPPED"
        return exp

    t0 = time.time()
    for tr in ("g", "w", "s"):
        for c in CASES:
            if tr != "g" and not c["gw"] or tr == "s" and c["kind"] != "watch":
                continue
            c["id"] = {"g": "grpc ", "w": "gw ", "s": "gw websocket "}[tr] + \
                c["name"]
            for p in c["expect"]:
                got = {}
                for s in (cairn, etcd):
                    try:
                        got[s.kind] = {"g": run_grpc, "w": run_gw,
                                       "s": run_ws}[tr](s, c, p, tr)
                    except Exception as e:  # setup failure: a mismatch
                        got[s.kind] = "EXC %s: %s" % (type(e).__name__, e)
                    if c["after"]:
                        try:
                            c["after"](s, p, tr)
                        except Exception as e:
                            got[s.kind] += " / after: %s" % e
                xf = (lambda o: o) if tr == "g" else \
                    (lambda o, k=c["kind"]: gw_expect(o, k))
                exp = expect_of(c, p, xf)
                exp_c, why = exp, ""
                if exp == "FLIPPED":
                    pass  # AUTHZ_FLIP: this entry must be reported
                elif tr == "s":
                    exp, why = WEMPTY, WS_WHY
                elif tr != "g" and p in c["gw_known"]:
                    exp_c, why = c["gw_known"][p]
                elif p in c["known"]:
                    exp_c, why = xf(c["known"][p][0]), c["known"][p][1]
                if exp != "FLIPPED" and tr == "w" and p in c["gw_etcd"]:
                    exp = c["gw_etcd"][p]
                ok = got["cairnd"] == exp_c and got["etcd"] == exp
                results.append(ok)
                print("CASE %s %s as %s: cairnd=%r etcd=%r%s%s" % (
                    "ok" if ok else "MISMATCH", c["id"], p, got["cairnd"],
                    got["etcd"], "" if ok else " expected=%r" % exp_c,
                    " KNOWN: " + why if why else ""), flush=True)
    if TLS:
        tc = TlsServer("cairnd", TLS[0], TLS[2])
        te = TlsServer("etcd", TLS[1], TLS[2])
        for s in (tc, te):
            setup(s)
        names = {c["name"]: c for c in CASES}
        for name in TLS_CASES:
            c = names[name]
            c["id"] = "grpc tls " + name
            for p in CN_CERT:
                base = CN_BASE[p]
                got = {}
                for s in (tc, te):
                    try:
                        got[s.kind] = run_grpc(s, c, p, "tls_" + CN_CERT[p],
                                               bp=base)
                    except Exception as e:
                        got[s.kind] = "EXC %s: %s" % (type(e).__name__, e)
                    if c["after"]:
                        try:
                            c["after"](s, p, "tls_" + CN_CERT[p])
                        except Exception as e:
                            got[s.kind] += " / after: %s" % e
                exp = c["expect"][base]
                if FLIP in ("all", "%s/%s" % (c["id"], p)):
                    exp = "FLIPPED"
                exp_c, why = exp, ""
                if exp != "FLIPPED" and base in c["known"]:
                    exp_c, why = c["known"][base]
                if exp != "FLIPPED":
                    exp_c, exp, why = TLS_KNOWN.get((name, p),
                                                    (exp_c, exp, why))
                ok = got["cairnd"] == exp_c and got["etcd"] == exp
                results.append(ok)
                print("CASE %s %s as %s: cairnd=%r etcd=%r%s%s" % (
                    "ok" if ok else "MISMATCH", c["id"], p, got["cairnd"],
                    got["etcd"], "" if ok else " expected=%r" % exp_c,
                    " KNOWN: " + why if why else ""), flush=True)
    t1 = time.time()
    for c in API:
        c["id"] = "api " + c["name"]
        for p in c["expect"]:
            try:
                got = c["fn"](cairn, p)
            except Exception as e:
                got = "EXC %s: %s" % (type(e).__name__, e)
            exp = expect_of(c, p)
            why = ""
            if p in c["known"] and exp != "FLIPPED":
                exp, why = c["known"][p]
            ok = got == exp
            results.append(ok)
            print("CASE %s %s as %s: cairnd=%r%s%s" % (
                "ok" if ok else "MISMATCH", c["id"], p, got,
                "" if ok else " expected=%r" % exp,
                " KNOWN: " + why if why else ""), flush=True)
    # auth off (root disables it, last): everyone may do everything, and a
    # secret reads in clear (config.md, "Secrets"; audit.md, "Permissions")
    cairn.unary(AU + "AuthDisable", R.AuthDisableRequest(),
                R.AuthDisableResponse, "root")
    for c in AUTH_OFF:
        c["id"] = "api auth off: " + c["name"]
        for p in c["expect"]:
            try:
                got = c["fn"](cairn, p)
            except Exception as e:
                got = "EXC %s: %s" % (type(e).__name__, e)
            exp = expect_of(c, p)
            ok = got == exp
            results.append(ok)
            print("CASE %s %s as %s: cairnd=%r%s" % (
                "ok" if ok else "MISMATCH", c["id"], p, got,
                "" if ok else " expected=%r" % exp), flush=True)
    bad = results.count(False)
    print("# etcd API %.1fs, /api/v1 %.1fs" % (t1 - t0, time.time() - t1))
    print("%d cases, %d mismatches" % (len(results), bad), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

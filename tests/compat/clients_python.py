#!/usr/bin/python3
"""clients_python.py HOST:PORT PREFIX - python3-etcd3 (grpcio) against a server.

Goal: an unmodified python3-etcd3 client (Debian's, C-core gRPC) can put,
get, delete, run txns, use leases, watch and lock. Method: each check runs
real calls against the server and compares the answers with what etcd's
semantics demand (values, revisions, versions, counts). Prints one line per
check: "RESULT ok|fail|unimpl <name> :: <detail>"; "unimpl" means the server
answered gRPC UNIMPLEMENTED, which the .test script turns into a SKIP only
for features still being built. Keys live under PREFIX so two runs do not
meet. Needs Debian's /usr/bin/python3 (python3-etcd3, python3-grpcio).
"""
import sys
import threading
import time

import etcd3
import grpc
from etcd3 import events

TARGET = sys.argv[1]
P = sys.argv[2]
host, port = TARGET.rsplit(":", 1)
c = etcd3.client(host=host, port=int(port), timeout=10)


def is_unimpl(e):
    while e is not None:
        if isinstance(e, grpc.RpcError) and \
                e.code() == grpc.StatusCode.UNIMPLEMENTED:
            return True
        e = e.__cause__ or e.__context__
    return False


def check(name):
    def wrap(fn):
        try:
            ok, detail = fn()
            res = "ok" if ok else "fail"
        except Exception as e:  # a crash in a check is a failure
            res = "unimpl" if is_unimpl(e) else "fail"
            detail = "%s: %s" % (type(e).__name__, e)
        print("RESULT %s %s :: %s" % (res, name,
                                      detail.replace("\n", " ")[:300]),
              flush=True)
        return fn
    return wrap


def k(s):
    return P + s


@check("put/get")
def _():
    c.put(k("a"), "1")
    v, meta = c.get(k("a"))
    return v == b"1" and meta.version == 1, "got %r version %s" % (
        v, meta and meta.version)


@check("put twice: version 2, create_revision kept, mod_revision moved")
def _():
    _, m1 = c.get(k("a"))
    c.put(k("a"), "2")
    v, m2 = c.get(k("a"))
    ok = (v == b"2" and m2.version == 2 and
          m2.create_revision == m1.create_revision and
          m2.mod_revision > m1.mod_revision)
    return ok, "%r %s %s" % (v, m1, m2)


@check("get_prefix sorted by key, get_all count")
def _():
    for i in (3, 1, 2):
        c.put(k("p/%d" % i), "v%d" % i)
    got = [(m.key, v) for v, m in c.get_prefix(k("p/"))]
    exp = [(k("p/%d" % i).encode(), b"v%d" % i) for i in (1, 2, 3)]
    return got == exp, repr(got)


@check("get_range [p/1, p/3)")
def _():
    got = [m.key for _, m in c.get_range(k("p/1"), k("p/3"))]
    return got == [k("p/1").encode(), k("p/2").encode()], repr(got)


@check("get of a missing key returns None")
def _():
    v, m = c.get(k("missing"))
    return v is None and m is None, repr((v, m))


@check("delete returns True, then False for a missing key")
def _():
    c.put(k("d"), "x")
    a = c.delete(k("d"))
    b = c.delete(k("d"))
    v, _ = c.get(k("d"))
    return a is True and b is False and v is None, repr((a, b, v))


@check("delete --prefix with prev_kv")
def _():
    r = c.delete_prefix(k("p/"))
    left = list(c.get_prefix(k("p/")))
    return r.deleted == 3 and not left, "deleted %s left %d" % (
        r.deleted, len(left))


@check("txn: value compare true runs success (put + get)")
def _():
    c.put(k("t"), "old")
    ok, resps = c.transaction(
        compare=[c.transactions.value(k("t")) == "old",
                 c.transactions.version(k("t")) > 0],
        success=[c.transactions.put(k("t"), "new"),
                 c.transactions.get(k("t"))],
        failure=[c.transactions.put(k("t"), "fail")])
    v, _ = c.get(k("t"))
    got = resps[1][0][0] if len(resps) > 1 and resps[1] else None
    return ok and v == b"new" and got == b"new", repr((ok, v, got))


@check("txn: failing compare runs failure; one revision for the branch")
def _():
    before = c.get(k("t"))[1].mod_revision
    ok, _ = c.transaction(
        compare=[c.transactions.create(k("t")) == 0],
        success=[c.transactions.put(k("t"), "x")],
        failure=[c.transactions.put(k("t2"), "a"),
                 c.transactions.put(k("t3"), "b")])
    m2 = c.get(k("t2"))[1]
    m3 = c.get(k("t3"))[1]
    ok2 = (not ok and m2.mod_revision == m3.mod_revision and
           m2.mod_revision == before + 1)
    return ok2, repr((ok, before, m2.mod_revision, m3.mod_revision))


@check("txn: create-if-absent on a missing key (mod_revision == 0)")
def _():
    ok, _ = c.transaction(
        compare=[c.transactions.mod(k("new")) == 0],
        success=[c.transactions.put(k("new"), "made")], failure=[])
    ok2, _ = c.transaction(
        compare=[c.transactions.mod(k("new")) == 0],
        success=[c.transactions.put(k("new"), "again")], failure=[])
    v, _ = c.get(k("new"))
    return ok and not ok2 and v == b"made", repr((ok, ok2, v))


@check("txn: lease compare (python3-etcd3 has no helper: raw Compare)")
def _():
    from etcd3 import etcdrpc
    lease = c.lease(60)
    c.put(k("lk"), "v", lease=lease)

    def txn(lid):
        cmp = etcdrpc.Compare(result=etcdrpc.Compare.EQUAL,
                              target=etcdrpc.Compare.LEASE,
                              key=k("lk").encode(), lease=lid)
        return c.kvstub.Txn(etcdrpc.TxnRequest(compare=[cmp]),
                            timeout=10).succeeded
    a = txn(lease.id)
    b = txn(lease.id + 1)
    lease.revoke()
    return a and not b, "lease %x: %s %s" % (lease.id, a, b)


@check("lease grant, put with lease, time-to-live with keys, revoke")
def _():
    lease = c.lease(30)
    c.put(k("l1"), "a", lease=lease)
    c.put(k("l2"), "b", lease=lease)
    ttl = lease.remaining_ttl
    keys = sorted(lease.keys)
    granted = lease.granted_ttl
    ids = [x.ID for x in c.leasestub.LeaseLeases(
        etcd3.etcdrpc.LeaseLeasesRequest(), timeout=10).leases]
    lease.revoke()
    gone = c.get(k("l1"))[0] is None and c.get(k("l2"))[0] is None
    ok = (granted == 30 and 25 <= ttl <= 30 and
          keys == [k("l1").encode(), k("l2").encode()] and
          lease.id in ids and gone)
    return ok, repr((granted, ttl, keys, lease.id in ids, gone))


@check("lease with a 1 s TTL is raised to the minimum (2 s)")
def _():
    lease = c.lease(1)
    g = lease.granted_ttl
    lease.revoke()
    return g == 2, "granted %s" % g


@check("lease expiry deletes the attached key")
def _():
    lease = c.lease(2)
    c.put(k("exp"), "v", lease=lease)
    for _ in range(80):
        if c.get(k("exp"))[0] is None:
            return True, ""
        time.sleep(0.1)
    return False, "key still there 8 s after a 2 s lease"


@check("lease refresh (LeaseKeepAlive)")
def _():
    lease = c.lease(20)
    r = list(lease.refresh())
    lease.revoke()
    return len(r) == 1 and r[0].TTL == 20, repr(r)


@check("watch a key: events of concurrent puts, in order")
def _():
    it, cancel = c.watch(k("w"))
    got = []

    def writer():
        time.sleep(0.5)
        for i in range(3):
            c.put(k("w"), "w%d" % i)
        c.delete(k("w"))
    th = threading.Thread(target=writer)
    th.start()
    timer = threading.Timer(8, cancel)
    timer.start()
    try:
        for ev in it:
            got.append((type(ev).__name__, ev.value))
            if len(got) == 4:
                break
    finally:
        timer.cancel()
        cancel()
        th.join()
    exp = [("PutEvent", b"w0"), ("PutEvent", b"w1"), ("PutEvent", b"w2"),
           ("DeleteEvent", b"")]
    return got == exp, repr(got)


@check("watch_prefix from a past revision replays history")
def _():
    r = c.put(k("wp/a"), "1").header.revision
    c.put(k("wp/b"), "2")
    it, cancel = c.watch_prefix(k("wp/"), start_revision=r)
    timer = threading.Timer(8, cancel)
    timer.start()
    got = []
    try:
        for ev in it:
            got.append((ev.key, ev.mod_revision))
            if len(got) == 2:
                break
    finally:
        timer.cancel()
        cancel()
    exp = [(k("wp/a").encode(), r), (k("wp/b").encode(), r + 1)]
    return got == exp, repr(got)


@check("lock: acquire, key exists, release")
def _():
    lk = c.lock(P + "lk1", ttl=10)
    a = lk.acquire(timeout=5)
    held = lk.is_acquired()
    lk.release()
    return a and held and not lk.is_acquired(), repr((a, held))


@check("lock held: a second lock is not acquired until the release")
def _():
    # Debian's python3-etcd3 0.12 cannot wait on a held lock (its tenacity
    # wait hook has the old signature), so this checks the two single
    # attempts around a release instead of a blocking acquire.
    l1 = c.lock(P + "lk2", ttl=10)
    l2 = c.lock(P + "lk2", ttl=10)
    if not l1.acquire(timeout=5):
        return False, "first acquire failed"
    ok, _ = c.transaction(
        compare=[c.transactions.create(l2.key) == 0],
        success=[c.transactions.put(l2.key, l2.uuid)], failure=[])
    held_by_1 = l1.is_acquired() and not l2.is_acquired()
    rel = l1.release()
    got = l2.acquire(timeout=5)
    l2.release()
    return (not ok and held_by_1 and rel and got), repr(
        (ok, held_by_1, rel, got))


@check("status: version parses, leader is the member")
def _():
    s = c.status()
    parts = s.version.split(".")
    return (len(parts) == 3 and all(p.isdigit() for p in parts) and
            s.leader is not None), "%s leader %s" % (s.version, s.leader)


@check("members: one member with client URLs")
def _():
    ms = list(c.members)
    return len(ms) == 1 and ms[0].client_urls, repr(
        [(m.name, m.client_urls) for m in ms])

"""lincheck.py - linearizability checker for per-key register histories.

Does: decides whether a concurrent history of operations on independent keys
      (each key a register: put, get, delete, compare-and-set) has a
      linearization that respects real time and the register's sequential
      specification. Wing & Gong's search with Lowe's memoization (a cache of
      (linearized set, state) pairs already explored), run per key (P-
      compositionality: a history is linearizable iff each key's sub-history
      is).
Ops:  Op(kind, key, invoke, complete, ...) with kind one of
        put(value)                       no observation
        get() -> result                  value or None
        delete() -> result               previous value or None (prev_kv)
        cas(expect, value) -> result     (succeeded, current value when it
                                         failed: the txn's failure branch
                                         reads the key)
      complete=None means the outcome is unknown (timeout, lost connection):
      the operation may have taken effect at any time after its invocation,
      or never. Unknown reads are dropped; unknown writes are optional.
Unique values: every written value is unique in the history. That lets the
      checker drop unknown writes whose value nobody observed (every
      non-write op observes the full state, so removing such a write cannot
      change what any other op saw), which keeps the search small.
Not here: running the operations (cairnlib.Workload records them).
"""

import math

PUT, GET, DELETE, CAS = "put", "get", "delete", "cas"


class Op:
    __slots__ = ("kind", "key", "value", "expect", "invoke", "complete",
                 "result", "proc", "id")

    def __init__(self, kind, key, invoke, complete=None, value=None,
                 expect=None, result=None, proc=0):
        self.kind = kind
        self.key = key
        self.value = value
        self.expect = expect
        self.invoke = invoke
        self.complete = complete  # None: unknown outcome
        self.result = result
        self.proc = proc
        self.id = 0

    @property
    def known(self):
        return self.complete is not None

    def __repr__(self):
        end = "?" if self.complete is None else "%.4f" % self.complete
        arg = ""
        if self.kind == PUT:
            arg = repr(self.value)
        elif self.kind == CAS:
            arg = "%r->%r" % (self.expect, self.value)
        res = "" if self.complete is None or self.kind == PUT else \
            " => %r" % (self.result,)
        return "p%s %s(%s)%s [%.4f, %s]" % (self.proc, self.kind, arg, res,
                                          self.invoke, end)


def _step(state, op):
    """The register's sequential spec: (allowed, new state)."""
    k = op.kind
    if k == PUT:
        return True, op.value
    if k == GET:
        return state == op.result, state
    if k == DELETE:
        if op.known:
            return state == op.result, None
        return True, None
    if k == CAS:
        if not op.known:
            # Linearizing an unknown cas means it took effect.
            if state == op.expect:
                return True, op.value
            return False, state
        ok, cur = op.result
        if ok:
            if state == op.expect:
                return True, op.value
            return False, state
        return (state != op.expect and state == cur), state
    raise ValueError("unknown op kind %r" % (k,))


def _prune(ops):
    """Drop unknown reads and unknown writes whose value nobody observed."""
    seen = set()
    for o in ops:
        if not o.known:
            continue
        if o.kind in (GET, DELETE) and o.result is not None:
            seen.add(o.result)
        elif o.kind == CAS:
            seen.add(o.expect)
            if not o.result[0] and o.result[1] is not None:
                seen.add(o.result[1])
    out = []
    for o in ops:
        if not o.known:
            if o.kind == GET:
                continue
            if o.kind in (PUT, CAS) and o.value not in seen:
                continue
        out.append(o)
    return out


class KeyResult:
    def __init__(self, key, ok, nops, detail="", explored=0, gave_up=False):
        self.key = key
        self.ok = ok
        self.nops = nops
        self.detail = detail
        self.explored = explored
        self.gave_up = gave_up


def check_key(key, ops, initial=None, budget=2000000):
    """Check one key's history. Returns KeyResult."""
    ops = _prune(ops)
    n = len(ops)
    by_invoke = sorted(ops, key=lambda o: o.invoke)
    for i, o in enumerate(by_invoke):
        o.id = i
    inv = [o.invoke for o in by_invoke]
    comp = [o.complete if o.known else math.inf for o in by_invoke]
    known_mask = 0
    for o in by_invoke:
        if o.known:
            known_mask |= 1 << o.id
    # Known ops sorted by completion: the earliest unlinearized one bounds
    # which ops may go next (nothing invoked after it completed can precede
    # it).
    by_comp = sorted((o.id for o in by_invoke if o.known),
                     key=lambda i: comp[i])

    cache = set()
    # DFS stack of (linearized mask, state, candidate list, next index)
    explored = 0
    best_mask = 0
    best_depth = 0

    def candidates(mask, cptr, iptr):
        """Ops that may be linearized next, plus the advanced pointers
        (masks only grow along a DFS path, so children resume where the
        parent's scans stopped)."""
        while cptr < len(by_comp) and (mask >> by_comp[cptr]) & 1:
            cptr += 1
        while iptr < n and (mask >> iptr) & 1:
            iptr += 1
        if cptr < len(by_comp):
            bid = by_comp[cptr]
            bound = comp[bid]
        else:
            bid, bound = -1, math.inf
        out = []
        for i in range(iptr, n):
            if inv[i] >= bound and i != bid:
                if i > bid:
                    break
                continue
            if not (mask >> i) & 1:
                out.append(i)
        return out, cptr, iptr

    c0, cp0, ip0 = candidates(0, 0, 0)
    stack = [[0, initial, c0, 0, cp0, ip0]]
    cache.add((0, initial))
    while stack:
        top = stack[-1]
        mask, state, cands, idx, cptr, iptr = top
        if mask & known_mask == known_mask:
            return KeyResult(key, True, n, explored=explored)
        if idx >= len(cands):
            stack.pop()
            continue
        top[3] = idx + 1
        i = cands[idx]
        explored += 1
        if explored > budget:
            return KeyResult(key, True, n, "search budget exhausted",
                             explored, gave_up=True)
        ok, ns = _step(state, by_invoke[i])
        if not ok:
            continue
        nm = mask | (1 << i)
        if (nm, ns) in cache:
            continue
        cache.add((nm, ns))
        if len(stack) > best_depth:
            best_depth, best_mask = len(stack), nm
        nc, ncp, nip = candidates(nm, cptr, iptr)
        stack.append([nm, ns, nc, 0, ncp, nip])
    # Not linearizable: describe where the longest prefix got stuck.
    pending = [by_invoke[i] for i in range(n)
               if not (best_mask >> i) & 1 and by_invoke[i].known]
    pending.sort(key=lambda o: o.invoke)
    lines = ["key %r: no linearization; %d of %d known ops placed at best"
             % (key, bin(best_mask & known_mask).count("1"),
                bin(known_mask).count("1"))]
    if pending:
        first = pending[0]
        lines.append("first unplaceable op: %r" % (first,))
        window = [o for o in by_invoke
                  if o.invoke <= (first.complete or math.inf) + 1e-9
                  and (o.complete or math.inf) >= first.invoke - 0.5]
        for o in window[:25]:
            lines.append("  %r" % (o,))
    return KeyResult(key, False, n, "\n".join(lines), explored)


def check(ops, budget=2000000):
    """Check a whole history; returns (ok, [KeyResult], n_ops_checked)."""
    keys = {}
    for o in ops:
        keys.setdefault(o.key, []).append(o)
    results = [check_key(k, v, budget=budget) for k, v in sorted(
        keys.items())]
    ok = all(r.ok for r in results)
    return ok, results, sum(r.nops for r in results)

#!/usr/bin/python3
"""etcdctl_norm.py MAPFILE [OLD=NEW ...] < raw > normalized

Goal: make one etcdctl run against cairnd comparable with the same run
against etcd 3.4 by rewriting ONLY what legitimately differs between two
servers: member/cluster/lease IDs, Raft term and index, hashes, sizes,
timings, the server version, endpoints and temp paths. Everything else (keys,
values, revisions, counts, TTLs granted, error texts, exit codes) is kept.

IDs are numbered in order of first appearance and the numbering persists in
MAPFILE across the calls of one server, so "the lease granted in step 3 is
the one listed in step 5" is still checked. An ID is recognised by value:
the hex form etcdctl prints and the decimal form in -w json map to the same
<ID n>. OLD=NEW pairs are literal substitutions done first (ports, paths).

Input: the command's stdout, then a line "--- stderr", then stderr, then
"[rc=N]". etcdctl's JSON log lines on stderr ({"level":...}) are dropped:
they hold timestamps, random target names and retry chatter.
"""
import json
import os
import re
import sys

subs = []
ids = {}


def load_ids(mapfile):
    if os.path.exists(mapfile):
        with open(mapfile) as f:
            return {int(k): v for k, v in json.load(f).items()}
    return {}


def idname(v):
    if v == 0:
        return 0
    if v not in ids:
        ids[v] = len(ids) + 1
    return "<ID%d>" % ids[v]


DUR = r"[0-9]+(\.[0-9]+)?(ns|µs|us|ms|s|m)([0-9.]+(ms|s))*"
ID_KEYS = {"cluster_id", "member_id", "ID", "leader", "id", "lease"}
RAFT_KEYS = {"raft_term", "raftTerm", "raft_index", "raftIndex",
             "raftAppliedIndex", "raft_applied_index"}
SIZE_KEYS = {"dbSize", "dbSizeInUse", "db_size", "db_size_in_use"}
HASH_KEYS = {"hash"}
TIME_KEYS = {"took"}


def ttl_close(granted, remaining):
    """A remaining TTL depends on how long the steps took on a loaded
    machine: any value a bit below the granted TTL counts as the same."""
    return 0 <= granted - remaining <= max(5, granted // 3)


def walk(o):
    if isinstance(o, dict):
        out = {}
        for k, v in o.items():
            if k in ID_KEYS and isinstance(v, int):
                out[k] = idname(v)
            elif k in RAFT_KEYS:
                out[k] = "<RAFT>"
            elif k in SIZE_KEYS:
                out[k] = "<SIZE>"
            elif k in HASH_KEYS:
                out[k] = "<HASH>"
            elif k in TIME_KEYS:
                out[k] = "<DUR>"
            elif k == "members" and isinstance(v, list):
                # servers list members by ID, and IDs are random
                out[k] = sorted((walk(x) for x in v),
                                key=lambda x: json.dumps(x, sort_keys=True))
            elif (k == "keys" and isinstance(v, list) and
                  ("granted-ttl" in o or "grantedTTL" in o)):
                out[k] = sorted(v)  # etcd lists a lease's keys in map order
            elif k == "version" and isinstance(v, str):
                out[k] = "<VER>"
            elif (k in ("TTL", "ttl") and isinstance(v, int)
                  and isinstance(o.get("grantedTTL", o.get("granted-ttl")), int)
                  and ttl_close(o.get("grantedTTL", o.get("granted-ttl")), v)):
                out[k] = "<REMAINING>"
            else:
                out[k] = walk(v)
        return out
    if isinstance(o, list):
        return [walk(x) for x in o]
    return o


def hexid(m):
    s = m.group(0)
    if len(s) < 16 and not re.search("[a-f]", s):
        return s
    return idname(int(s, 16))


def remaining(m):
    granted, rem = int(m.group(1)), int(m.group(2))
    if ttl_close(granted, rem):
        return "TTL(%ds), remaining(<REMAINING>)" % granted
    return m.group(0)


def line_norm(line):
    st = line.strip()
    if st[:1] in "{[" and st[-1:] in "}]":
        try:
            o = json.loads(st)
        except ValueError:
            o = None
        if o is not None:
            return json.dumps(walk(o), separators=(",", ":"))
    line = re.sub(r"took = " + DUR, "took = <DUR>", line)
    # -w fields
    line = re.sub(r'^"(ClusterID|MemberID|ID|Leader|Lease|PrevLease)" : ([0-9]+)$',
                  lambda m: '"%s" : %s' % (m.group(1), idname(int(m.group(2)))),
                  line)
    line = re.sub(r'^"(Raft[A-Za-z]*)" : [0-9]+$', r'"\1" : <RAFT>', line)
    # two servers of one kind may differ in store size (etcd's bbolt grows
    # in steps): sizes are normalised in every output format
    line = re.sub(r'^"(DBSize[A-Za-z]*)" : [0-9]+$', r'"\1" : <SIZE>', line)
    line = re.sub(r"\b[0-9a-f]{8,16}\b", hexid, line)
    line = re.sub(r"TTL\(([0-9]+)s\), remaining\(([0-9]+)s\)", remaining, line)
    line = re.sub(r"attached keys\(\[([^]]*)\]\)",
                  lambda m: "attached keys([%s])" %
                  " ".join(sorted(m.group(1).split(" "))), line)
    line = re.sub(r"\b[0-9]+\.[0-9]+\.[0-9]+\b", "<VER>", line)
    if st.startswith("|") or st.startswith("+"):
        cells = line.split("|")
        for i, c in enumerate(cells):
            c = c.strip()
            if re.fullmatch(DUR, c):
                c = "<DUR>"
            elif re.fullmatch(r"[0-9]+(\.[0-9]+)? ?(B|kB|MB|GB)", c):
                c = "<SIZE>"
            cells[i] = c
        line = "|".join(cells)
        if st.startswith("+"):
            line = re.sub(r"-+", "-", line)
    return line


def table_raft(lines):
    """Blank the RAFT TERM / RAFT INDEX / RAFT APPLIED INDEX / HASH columns."""
    out = []
    cols = []
    for line in lines:
        if line.startswith("|"):
            cells = line.split("|")
            names = [c.strip() for c in cells]
            if "ENDPOINT" in names or "ID" in names:
                cols = [i for i, c in enumerate(names)
                        if c.startswith("RAFT") or c == "HASH"]
            elif cols:
                for i in cols:
                    if i < len(cells):
                        cells[i] = "<RAFT>"
                line = "|".join(cells)
        out.append(line)
    return out


def normalize(text):
    """One command's captured text -> its normalized form (uses the
    globals ids and subs of the server it ran on)."""
    for old, new in subs:
        text = text.replace(old, new)
    out, err, rc = text, "", ""
    if "\n--- stderr\n" in text:
        out, rest = text.split("\n--- stderr\n", 1)
        m = re.search(r"\[rc=[0-9]+\]\s*$", rest)
        if m:
            err, rc = rest[:m.start()], m.group(0).strip()
        else:
            err = rest
    raw_lines = out.split("\n")
    # "lease list": etcd lists leases in Go map order; compare them as a
    # sorted set, naming only IDs seen before (new ones are just "<new>")
    for i, x in enumerate(raw_lines):
        if re.fullmatch(r"found [0-9]+ leases", x):
            j = i + 1
            while j < len(raw_lines) and re.fullmatch(r"[0-9a-f]+", raw_lines[j]):
                j += 1
            names = []
            for h in raw_lines[i + 1:j]:
                v = int(h, 16)
                names.append("<ID%d>" % ids[v] if v in ids else "<new>")
            raw_lines[i + 1:j] = sorted(names)
            break
    lines = [line_norm(x) for x in raw_lines]
    lines = table_raft(lines)
    # "lease timetolive -w fields": "TTL" then "GrantedTTL" on the next
    # line; the remaining TTL counts down with the machine's load
    for i in range(len(lines) - 1):
        m = re.fullmatch(r'"TTL" : ([0-9]+)', lines[i])
        g = re.fullmatch(r'"GrantedTTL" : ([0-9]+)', lines[i + 1])
        if m and g and ttl_close(int(g.group(1)), int(m.group(1))):
            lines[i] = '"TTL" : <REMAINING>'
    # "endpoint hashkv" simple output: "<EP>, 12345"
    lines = [re.sub(r"^((?:http://)?<EP[A-Z]*>), [0-9]+$", r"\1, <HASH>", x)
             for x in lines]
    # "endpoint status" simple output: endpoint, ID, version, db size, is
    # leader, is learner, raft term, raft index, raft applied index, errors
    lines = [re.sub(r"^((?:http://)?<EP>, [^,]*, [^,]*), [^,]*, "
                    r"(true|false), "
                    r"(true|false), [0-9]+, [0-9]+, [0-9]+, ",
                    r"\1, <SIZE>, \2, \3, <RAFT>, <RAFT>, <RAFT>, ", x)
             for x in lines]
    # "-w fields" of endpoint hashkv
    lines = [re.sub(r'^"Hash" : [0-9]+$', '"Hash" : <HASH>', x) for x in lines]
    # member add/remove/update/promote: "%16x" pads a random ID's spaces
    lines = [re.sub(r"^Member +(<ID[0-9]+>) (.*) cluster +(<ID[0-9]+>)$",
                    r"Member \1 \2 cluster \3", x) for x in lines]
    # members come in ID order and IDs are random: member list lines and
    # ETCD_INITIAL_CLUSTER as sets
    lines = [re.sub(r'^ETCD_INITIAL_CLUSTER="(.*)"$',
                    lambda m: 'ETCD_INITIAL_CLUSTER="%s"' %
                    ",".join(sorted(m.group(1).split(","))), x)
             for x in lines]
    ml = [i for i, x in enumerate(lines)
          if re.match(r"^<ID[0-9]+>, (started|unstarted), ", x)]
    if ml and ml == list(range(ml[0], ml[0] + len(ml))):
        lines[ml[0]:ml[0] + len(ml)] = sorted(lines[ml[0]:ml[0] + len(ml)])
    errs = []
    for x in err.split("\n"):
        if not x.strip():
            continue
        if x.startswith('{"level"'):
            # keep only the gRPC status a retry warning quotes (code and
            # text), once: the rest is timestamps and random target names
            try:
                e = json.loads(x).get("error")
            except ValueError:
                e = None
            x = "status: " + e if isinstance(e, str) and "code =" in e else ""
        if x and line_norm(x) not in errs:
            errs.append(line_norm(x))
    res = "\n".join(lines).rstrip("\n") + "\n"
    if errs:
        res += "--- stderr\n" + "\n".join(errs) + "\n"
    return res + rc + "\n"


def save_ids(mapfile, m):
    with open(mapfile, "w") as f:
        json.dump({str(k): v for k, v in m.items()}, f)


def main():
    global ids, subs
    if len(sys.argv) == 3 and sys.argv[1] == "--batch":
        # one line per command, in the order they ran (ID numbering
        # follows first appearance per server):
        # MAPFILE <tab> IN <tab> OUT [<tab> OLD=NEW ...]
        maps = {}
        with open(sys.argv[2]) as lf:
            for row in lf:
                f = row.rstrip("\n").split("\t")
                if len(f) < 3:
                    continue
                if f[0] not in maps:
                    maps[f[0]] = load_ids(f[0])
                ids = maps[f[0]]
                subs = [a.split("=", 1) for a in f[3:]]
                with open(f[1], errors="surrogateescape") as inp:
                    text = inp.read()
                with open(f[2], "w", errors="surrogateescape") as out:
                    out.write(normalize(text))
        for mf, m in maps.items():
            save_ids(mf, m)
        return
    mapfile = sys.argv[1]
    subs = [a.split("=", 1) for a in sys.argv[2:]]
    ids = load_ids(mapfile)
    sys.stdout.write(normalize(sys.stdin.read()))
    save_ids(mapfile, ids)


main()

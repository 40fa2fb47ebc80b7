#!/bin/bash
# registry.sh BUILD_DIR [--quick] - the registry and config center side by
# side with etcd 3.4 doing the same by hand (issues 12 and 13).
#
# What `make bench` runs in its registry section. Starts a fresh etcd (the
# Debian etcd-server binary) and a fresh cairnd (a private copy of
# BUILD_DIR/cairnd), defaults of both, data directories side by side in
# one temp dir, loopback only, and drives them with bench/regbench (Go,
# built here in GOPATH mode against Debian's go.etcd.io/etcd/clientv3 and
# gorilla/websocket: no network). Every figure is run on etcd then on
# cairnd (A B A B ...), ROUNDS times; the table gives each server's median
# over rounds and the median of the per-round ratios cairnd/etcd with their
# min-max. Parts:
#
#  reg   registrations/s, REG_CLIENTS concurrent clients. cairnd: PUT
#        /api/v1/registry/bench/<svc>/<id> on one keep-alive HTTP/1.1
#        connection per client, under a session per client ("session") or
#        with ttl= (a lease per registration, "ttl"). etcd, gRPC over 10
#        connections, the same by hand: Put with the client's lease, or
#        LeaseGrant + Put with the new lease.
#  hb    heartbeats/s with HB_N instances, each with its own session/lease:
#        cairnd POST /api/v1/sessions/<id>/keepalive over 100 keep-alive
#        connections; cairnd and etcd LeaseKeepAlive over 10 connections x
#        10 streams, 16 requests in flight per stream; cycling over every
#        lease, closed loop.
#  push  register-to-subscriber latency: SUBS subscribers of one service
#        (cairnd: one WebSocket each on /api/v1/watch/registry/bench/<svc>;
#        etcd: clientv3 watchers of the service prefix, 100 per
#        connection), PUSH_REGS registrations PUSH_GAP_MS apart, time from
#        just before the write to each subscriber's receipt.
#  cfg   publish-to-ack: SUBS subscribers of one config (cairnd: WebSocket
#        /api/v1/watch/config/bench/app/<name>, each acks at once; etcd:
#        watchers of the key), CFG_PUBS publishes CFG_GAP_MS apart (plain
#        PUTs; REGB_WAIT_ACKS=1 publishes on cairnd with ?wait_acks=1 and
#        adds the time until the PUT answered, every ack in), on one
#        member; "cfg3" the same on three members of each kind, the
#        subscribers spread evenly over them.
#
# Server CPU is utime+stime from /proc/PID/stat around the timed phase
# (summed over members); client CPU (the driver, same 2 cores) is printed
# beside it so a reader can tell which side was the limit. The client is a
# single Go process (all cores), so 10k sockets need no second process.
# Push and config rows add both per change and that over the core count:
# the least time a change's last receipt can take on this machine.
#
# Connections: cairnd accepts at most --max-connections (default 10,000,
# HTTP and gRPC together); the script starts it with REGB_MAX_CONNECTIONS
# (10,100) so that the "10k" point is 10,000 subscribers plus the writer
# and the /metrics scrape. A cairnd built before the flag existed is
# started without it and gets 9,998 subscribers (both servers get the same
# count). ulimit -n is raised to its hard limit (20000 here) for the
# servers and the driver.
#
# Environment (defaults in brackets):
#   REGB_ROUNDS [3]          A/B rounds
#   REGB_SECONDS [5]         seconds per timed run (reg, hb)
#   REGB_SUBS [1000,10000]   subscriber counts (push, cfg, cfg3)
#   REGB_PARTS [reg,hb,push,cfg,cfg3]
#   REGB_REG_CLIENTS [100]  REGB_HB_N [10000]
#   REGB_PUSH_REGS [30]  REGB_PUSH_GAP_MS [200]
#   REGB_CFG_PUBS [20]   REGB_CFG_GAP_MS [300]
#   REGB_MAX_CONNECTIONS [10100]  REGB_WAIT_ACKS [0]
#   REGB_MUX [100]           push and cfg also run on cairnd with this many
#                            subscriptions per /api/v1/stream socket, as
#                            etcd's watchers share -conns connections (1: off)
#   REGB_SOLO [1]            push and cfg also run on etcd with a client
#                            connection per watcher, the shape of cairnd's
#                            socket per subscriber (0: off; etcd's column of
#                            those rows is then its shared-connection run)
#   REGB_DIR [$TMPDIR or /tmp]  REGB_OUT (also write the table there)
#   REGB_KEEP=1 keep the temp dir; REGB_PERF=1 record `perf record -g` of
#   cairnd during the last 10k push and config runs with a socket per
#   subscriber (perf.data, perf-cfg.data kept in the temp dir;
#   REGB_PERF_ARGS [-g], e.g. "--call-graph dwarf -F 499")
# --quick: 1 round, 2 s runs, 1,000 subscribers, 2,000 heartbeat
# instances, 10 registrations, 5 publishes (about 1-2 minutes).
set -u
B=${1:?usage: bench/registry.sh BUILD_DIR [--quick]}
B=$(cd "$B" && pwd)
QUICK=0
[ "${2:-}" = --quick ] && QUICK=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)

ROUNDS=${REGB_ROUNDS:-3}
SECS=${REGB_SECONDS:-5}
SUBS=${REGB_SUBS:-1000,10000}
PARTS=${REGB_PARTS:-reg,hb,push,cfg,cfg3}
REG_CLIENTS=${REGB_REG_CLIENTS:-100}
HB_N=${REGB_HB_N:-10000}
PUSH_REGS=${REGB_PUSH_REGS:-30}
PUSH_GAP=${REGB_PUSH_GAP_MS:-200}
MUX=${REGB_MUX:-100}
SOLO=${REGB_SOLO:-1}
CFG_PUBS=${REGB_CFG_PUBS:-20}
CFG_GAP=${REGB_CFG_GAP_MS:-300}
if [ $QUICK = 1 ]; then
    ROUNDS=1 SECS=2 SUBS=${REGB_SUBS:-1000} HB_N=${REGB_HB_N:-2000}
    PUSH_REGS=10 CFG_PUBS=5
fi
CONN_MAX=${REGB_MAX_CONNECTIONS:-10100}
WAIT_ACKS=${REGB_WAIT_ACKS:-0}

ETCD=$(command -v etcd || true)
if [ -z "$ETCD" ] || [ ! -x "$B/cairnd" ]; then
    echo "registry: needs etcd (Debian etcd-server) and $B/cairnd" >&2
    exit 1
fi
for t in go python3 curl; do
    if ! command -v $t >/dev/null; then
        echo "registry: needs $t" >&2
        exit 1
    fi
done
for d in go.etcd.io/etcd/clientv3 github.com/gorilla/websocket; do
    if [ ! -d "/usr/share/gocode/src/$d" ]; then
        echo "registry: needs /usr/share/gocode/src/$d (apt golang-etcd-server-dev golang-github-gorilla-websocket-dev)" >&2
        exit 1
    fi
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null
if [ "$(ulimit -n)" -lt 12000 ]; then
    echo "registry: ulimit -n is $(ulimit -n); 10k subscribers need about 10,100" >&2
    exit 1
fi

T0=$(date +%s)
TMP=$(mktemp -d "${REGB_DIR:-${TMPDIR:-/tmp}}/cairn-regbench.XXXXXX")
mkdir -p "$TMP/bin" "$TMP/go/src/regbench" "$B/go-cache"
cp "$B/cairnd" "$TMP/bin/"
CAIRND=$TMP/bin/cairnd
CAIRND_ARGS=()
if "$CAIRND" --help 2>&1 | grep -q -- --max-connections; then
    CAIRND_ARGS=(--max-connections "$CONN_MAX")
else
    CONN_MAX=10000 # the compiled bound of a cairnd without the flag
fi
# One connection for the writer and one for a /metrics scrape.
SUB_MAX=$((CONN_MAX - 2))
RB=$TMP/bin/regbench
RES=$TMP/results.jsonl
: >"$RES"
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    if [ "${REGB_KEEP:-0}" = 1 ]; then
        echo "registry: kept $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "registry: $*" >&2; }
emit() { echo "{$1}" >>"$RES"; }

# The driver: GOPATH mode against Debian's sources, no module proxy.
cp "$ROOT/bench/regbench/main.go" "$TMP/go/src/regbench/"
if ! (cd "$TMP/go/src/regbench" &&
    GO111MODULE=off GOPATH=/usr/share/gocode:$TMP/go GOCACHE=$B/go-cache \
        GOFLAGS= GOPROXY=off nice go build -o "$RB" .) >"$TMP/gobuild.log" 2>&1; then
    say "go build of bench/regbench failed:"
    cat "$TMP/gobuild.log" >&2
    exit 1
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start KIND NAME DIR CPORT PPORT CLUSTER TOKEN: one member; sets PID.
start() {
    local kind=$1 name=$2 dir=$3 cp=$4 pp=$5 cluster=$6 token=$7 bin=$ETCD
    local extra=()
    [ "$kind" = cairnd ] && bin=$CAIRND && extra=("${CAIRND_ARGS[@]}")
    mkdir -p "$dir"
    "$bin" "${extra[@]}" --name "$name" --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$cp" \
        --advertise-client-urls "http://127.0.0.1:$cp" \
        --listen-peer-urls "http://127.0.0.1:$pp" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
        --initial-cluster "$cluster" --initial-cluster-token "$token" \
        --initial-cluster-state new >>"$dir/log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}

stop() {
    local p=$1 q keep=()
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    for q in "${PIDS[@]}"; do [ "$q" != "$p" ] && keep+=("$q"); done
    PIDS=("${keep[@]}")
}

ready() { # ready HOST:PORT TIMEOUT_S: /health answers true
    local i
    for i in $(seq $(($2 * 10))); do
        curl -s -m 1 "http://$1/health" 2>/dev/null | grep -q '"health":"true"' && return 0
        sleep 0.1
    done
    return 1
}

# cluster KIND COUNT TAG: starts COUNT members; sets EPS (comma list) and
# MPIDS (comma list).
cluster() {
    local kind=$1 count=$2 tag=$3 i cps=() pps=() cl="" pids=""
    EPS=""
    for i in $(seq "$count"); do
        cps+=("$(free_port)")
        pps+=("$(free_port)")
        cl+="${cl:+,}m$i=http://127.0.0.1:${pps[$((i - 1))]}"
        EPS+="${EPS:+,}127.0.0.1:${cps[$((i - 1))]}"
    done
    for i in $(seq "$count"); do
        start "$kind" "m$i" "$TMP/$tag/$kind/m$i" "${cps[$((i - 1))]}" \
            "${pps[$((i - 1))]}" "$cl" "tok-$tag-$kind"
        pids+="${pids:+,}$PID"
    done
    MPIDS=$pids
    for e in ${EPS//,/ }; do
        if ! ready "$e" 60; then
            say "$kind member $e did not become ready"
            tail -5 "$TMP/$tag/$kind"/*/log >&2
            return 1
        fi
    done
}

# run PART ROUND SERVER NAME ARGS...: one driver run, one result line.
# REGB_PERF=1: perf record cairnd ($pid) into $TMP/NAME.data during the
# last round's 10k run ($s, $r, $want of the caller's loop).
perf_start() {
    perf_pid=""
    if [ "${REGB_PERF:-0}" = 1 ] && [ "$s" = cairnd ] &&
        [ "$r" = "$ROUNDS" ] && [ "$want" -ge 10000 ]; then
        # shellcheck disable=SC2086 # REGB_PERF_ARGS is a list of flags
        perf record ${REGB_PERF_ARGS:--g} -o "$TMP/$1.data" -p "$pid" \
            >"$TMP/$1.log" 2>&1 &
        perf_pid=$!
    fi
}
perf_stop() {
    [ -n "$perf_pid" ] || return 0
    kill -INT "$perf_pid"
    wait "$perf_pid"
    perf report -i "$TMP/$1.data" --no-children --percent-limit 1 --stdio \
        >"$TMP/$1.txt" 2>/dev/null
    say "perf profile of cairnd during $2: $TMP/$1.txt"
}

run() {
    local part=$1 round=$2 server=$3 name=$4 js rc k=cairn
    shift 4
    [ "$server" = etcd ] && k=etcd
    js=$(timeout 600 "$RB" -kind $k "$@" 2>>"$TMP/driver.err")
    rc=$?
    [ -z "$js" ] && js=null
    emit "\"part\":\"$part\",\"round\":$round,\"server\":\"$server\",\"name\":\"$name\",\"rc\":$rc,\"r\":$js"
    say "$part r$round $server $name: exit $rc $(echo "$js" | python3 -c 'import json,sys
d=json.load(sys.stdin)
if d is None: print("no result"); sys.exit()
if "per_s" in d: print("%.0f/s, server %.1f us/op" % (d["per_s"], d.get("server_cpu_us_per_op", -1)))
else: print("p50 %.1f p99 %.1f ms, missing %d" % (d["recv"].get("p50_ms",-1), d["recv"].get("p99_ms",-1), d["missing"]))' 2>/dev/null)"
}

subs_for() { # subs_for N MEMBERS -> the count that fits cairnd's bound
    local want=$1 m=$2
    if [ "$want" -gt $((SUB_MAX * m)) ]; then echo $((SUB_MAX * m)); else echo "$want"; fi
}

emit "\"part\":\"machine\",\"nproc\":$(nproc),\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//;s/"//g')\",\"kernel\":\"$(uname -r)\",\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"etcd_version\":\"$($ETCD --version 2>/dev/null | awk '/etcd Version/{print $3}')\",\"cairnd_build\":\"$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)\",\"rounds\":$ROUNDS,\"seconds\":$SECS,\"go\":\"$(go version | cut -d' ' -f3)\",\"mux\":$MUX"

has() { [[ ",$PARTS," == *",$1,"* ]]; }

# ------------------------------------------------------------ one member
if has reg || has hb || has push || has cfg; then
    cluster etcd 1 one || exit 1
    EP_E=$EPS PID_E=$MPIDS
    cluster cairnd 1 one || exit 1
    EP_C=$EPS PID_C=$MPIDS
    EP_S="" PID_S=""
    if [ "$SOLO" = 1 ] && { has push || has cfg; }; then
        # its own etcd: 10,000 client connections leave etcd's heap at
        # 1-2 GB, which the shared-connection runs must not inherit
        cluster etcd 1 solo || exit 1
        EP_S=$EPS PID_S=$MPIDS
    fi
    for r in $(seq "$ROUNDS"); do
        for s in etcd cairnd; do
            ep=$EP_E pid=$PID_E
            [ $s = cairnd ] && ep=$EP_C pid=$PID_C
            if has reg; then
                for pat in session ttl; do
                    run reg "$r" $s "reg-$pat" -mode reg -ep "$ep" -pids "$pid" \
                        -clients "$REG_CLIENTS" -conns 10 -duration "$SECS" \
                        -pattern $pat -svc "r$r$pat"
                done
            fi
            if has hb; then
                run hb "$r" $s hb-grpc -mode hb -api grpc -ep "$ep" -pids "$pid" \
                    -n "$HB_N" -conns 10 -clients 10 -window 16 \
                    -duration "$SECS" -svc "h${r}g"
                if [ $s = cairnd ]; then
                    run hb "$r" $s hb-http -mode hb -api http -ep "$ep" \
                        -pids "$pid" -n "$HB_N" -conns 100 -duration "$SECS" \
                        -svc "h${r}h"
                fi
            fi
        done
        for want in ${SUBS//,/ }; do
            nsub=$(subs_for "$want" 1)
            nconn=$(((nsub + 99) / 100))
            for s in etcd cairnd; do
                ep=$EP_E pid=$PID_E
                [ $s = cairnd ] && ep=$EP_C pid=$PID_C
                if has push; then
                    perf_start perf
                    run push "$r" $s "push-$want" -mode push -ep "$ep" -pids "$pid" \
                        -n "$nsub" -conns "$nconn" -rounds "$PUSH_REGS" \
                        -interval-ms "$PUSH_GAP" -svc "p$r-$want"
                    if [ $s = cairnd ] && [ "$MUX" -gt 1 ]; then
                        run pushmux "$r" $s "pushmux-$want" -mode push -ep "$ep" \
                            -pids "$pid" -n "$nsub" -per-socket "$MUX" \
                            -rounds "$PUSH_REGS" -interval-ms "$PUSH_GAP" \
                            -svc "q$r-$want"
                    fi
                    perf_stop perf "the 10k push"
                    if [ $s = etcd ] && [ "$SOLO" = 1 ]; then
                        run pushsolo "$r" $s "pushsolo-$want" -mode push \
                            -ep "$EP_S" -pids "$PID_S" -n "$nsub" -conns "$nsub" \
                            -rounds "$PUSH_REGS" -interval-ms "$PUSH_GAP" \
                            -svc "o$r-$want"
                    fi
                fi
                if has cfg; then
                    wa=()
                    [ "$WAIT_ACKS" = 1 ] && [ $s = cairnd ] && wa=(-wait-acks)
                    perf_start perf-cfg
                    run cfg "$r" $s "cfg-$want" -mode cfg -ep "$ep" -pids "$pid" \
                        -n "$nsub" -conns "$nconn" -rounds "$CFG_PUBS" \
                        -interval-ms "$CFG_GAP" -svc "c$r-$want" "${wa[@]}"
                    perf_stop perf-cfg "the 10k config run (a socket each)"
                    if [ $s = etcd ] && [ "$SOLO" = 1 ]; then
                        run cfgsolo "$r" $s "cfgsolo-$want" -mode cfg \
                            -ep "$EP_S" -pids "$PID_S" -n "$nsub" -conns "$nsub" \
                            -rounds "$CFG_PUBS" -interval-ms "$CFG_GAP" \
                            -svc "e$r-$want"
                    fi
                    if [ $s = cairnd ] && [ "$MUX" -gt 1 ]; then
                        run cfgmux "$r" $s "cfgmux-$want" -mode cfg -ep "$ep" \
                            -pids "$pid" -n "$nsub" -per-socket "$MUX" \
                            -rounds "$CFG_PUBS" -interval-ms "$CFG_GAP" \
                            -svc "d$r-$want" "${wa[@]}"
                    fi
                fi
            done
        done
    done
    stop "$PID_E"
    stop "$PID_C"
    [ -n "$PID_S" ] && stop "$PID_S"
fi

# ---------------------------------------------------------- three members
if has cfg3; then
    cluster etcd 3 three || exit 1
    EP_E=$EPS PID_E=$MPIDS
    cluster cairnd 3 three || exit 1
    EP_C=$EPS PID_C=$MPIDS
    for r in $(seq "$ROUNDS"); do
        for want in ${SUBS//,/ }; do
            nsub=$(subs_for "$want" 3)
            nconn=$(((nsub + 99) / 100))
            for s in etcd cairnd; do
                ep=$EP_E pid=$PID_E
                [ $s = cairnd ] && ep=$EP_C pid=$PID_C
                run cfg3 "$r" $s "cfg3-$want" -mode cfg -ep "$ep" -pids "$pid" \
                    -n "$nsub" -conns "$nconn" -rounds "$CFG_PUBS" \
                    -interval-ms "$CFG_GAP" -svc "t$r-$want"
                if [ $s = cairnd ] && [ "$MUX" -gt 1 ]; then
                    run cfg3mux "$r" $s "cfg3mux-$want" -mode cfg -ep "$ep" \
                        -pids "$pid" -n "$nsub" -per-socket "$MUX" \
                        -rounds "$CFG_PUBS" -interval-ms "$CFG_GAP" \
                        -svc "u$r-$want"
                fi
            done
        done
    done
    for p in ${PID_E//,/ } ${PID_C//,/ }; do stop "$p"; done
fi
emit "\"part\":\"end\",\"elapsed_s\":$(($(date +%s) - T0)),\"load\":\"$(cut -d' ' -f1-3 /proc/loadavg)\""

python3 - "$RES" >"$TMP/table.txt" <<'PYEOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
machine = next((r for r in rows if r.get("part") == "machine"), {})
end = next((r for r in rows if r.get("part") == "end"), {})
runs = [r for r in rows if "server" in r]
# A push or config run's CPU per change, server and driver together: the
# two share the machine's cores, so that CPU over the core count is the
# least wall time a change can take here, whatever either side does.
cores = float(machine.get("nproc") or 1)
for r in runs:
    d = r.get("r") or {}
    if d.get("rounds") and "server_cpu_s" in d and "client_cpu_s" in d:
        ms = (d["server_cpu_s"] + d["client_cpu_s"]) * 1000.0 / d["rounds"]
        d["cpu_ms_per_change"] = ms
        d["cpu_floor_ms"] = ms / cores

def med(xs):
    return statistics.median(xs) if xs else None

def fmt(v):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return "%.0f" % v
    if abs(v) >= 100:
        return "%.1f" % v
    return "%.3g" % v

def get(d, path):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d

table, notes = [], []
def figure(name, label, path, cairn_name=None, etcd_name=None, scale=1.0):
    """One row: path in the result of run `name` (or etcd_name/cairn_name)."""
    vals = {"etcd": {}, "cairnd": {}}
    for r in runs:
        want = {"etcd": etcd_name or name, "cairnd": cairn_name or name}[r["server"]]
        if r["name"] != want or r["r"] is None:
            continue
        v = get(r["r"], path)
        if v is not None and v >= 0:
            vals[r["server"]][r["round"]] = v * scale
    e, c = med(list(vals["etcd"].values())), med(list(vals["cairnd"].values()))
    rr = [vals["cairnd"][i] / vals["etcd"][i] for i in vals["etcd"]
          if i in vals["cairnd"] and vals["etcd"][i]]
    table.append((label, e, c, med(rr), min(rr) if rr else None,
                  max(rr) if rr else None))
    return med(rr), c

def subs_of(name):
    for r in runs:
        if r["name"] == name and r["r"]:
            return r["r"].get("subscribers")

goals = []
for pat, what in (("session", "under a session"), ("ttl", "with its own lease (ttl=)")):
    n = "reg-" + pat
    ratio, _ = figure(n, "register %s: per s" % what, "per_s")
    goals.append(("registrations/s, %s" % pat, ratio, ">=", 3, "x etcd"))
    figure(n, "  p99 ms", "lat.p99_ms")
    figure(n, "  server CPU us/registration", "server_cpu_us_per_op")
    figure(n, "  client CPU s (driver)", "client_cpu_s")
if any(r["name"] == "hb-grpc" for r in runs):
    figure("hb-grpc", "heartbeats/s, LeaseKeepAlive (gRPC)", "per_s")
    figure("hb-grpc", "  server CPU us/heartbeat", "server_cpu_us_per_op")
    figure("hb-grpc", "  client CPU s (driver)", "client_cpu_s")
    figure("hb-grpc", "heartbeats/s, cairnd HTTP keepalive vs etcd gRPC", "per_s",
           cairn_name="hb-http")
    figure("hb-grpc", "  server CPU us/heartbeat", "server_cpu_us_per_op",
           cairn_name="hb-http")
    figure("hb-grpc", "  client CPU s (driver)", "client_cpu_s", cairn_name="hb-http")
    figure("hb-grpc", "setup: registrations/s (50 clients)", "setup_per_s")
# push/cfg: cairnd, a socket per subscriber; etcd, a connection per
# watcher (pushsolo/cfgsolo) when run, else its shared-connection run.
# pushmux/cfgmux: cairnd's subscribers share /api/v1/stream sockets (MUX a
# socket); etcd's column is the same run's push/cfg (its watchers share
# connections, 100 a connection).
base_part = {"push": "push", "cfg": "cfg", "cfg3": "cfg3", "pushmux": "push",
             "cfgmux": "cfg", "cfg3mux": "cfg3"}
for part in ("push", "pushmux", "cfg", "cfgmux", "cfg3", "cfg3mux"):
    for name in sorted({r["name"] for r in runs if r["part"] == part},
                       key=lambda s: int(s.split("-")[1])):
        bp = base_part[part]
        en = bp + "-" + name.split("-")[1]
        solo = bp + "solo-" + name.split("-")[1]
        if part == bp and bp != "cfg3" and any(r["name"] == solo for r in runs):
            en = solo
        subs = subs_of(name)
        mem = {"push": "1 member", "cfg": "1 member", "cfg3": "3 members"}[bp]
        what = {"push": "push: register->subscriber", "cfg": "config: publish->receipt",
                "cfg3": "config: publish->receipt"}[bp]
        shape = ""
        if part != bp:
            shape = " (cairnd: %s a socket)" % machine.get("mux", "?")
        elif en == solo:
            shape = " (a connection each, both)"
        label = "%s, %s subs, %s%s" % (what, subs, mem, shape)
        fig = lambda lab, path, **kw: figure(name, lab, path, etcd_name=en, **kw)
        fig(label + ": p50 ms", "recv.p50_ms")
        ratio, c99 = fig("  p99 ms", "recv.p99_ms")
        if bp != "push":
            _, a99 = fig("  publish->ack sent p50 ms (cairnd)", "ack.p50_ms")
            _, a99 = fig("  publish->ack sent p99 ms (cairnd)", "ack.p99_ms")
            fig("  server histogram: share of acks <= 100 ms", "server_hist.within_100ms")
            if any(get(r["r"], "all_acked_on_publisher.p99_ms") is not None
                   for r in runs if r["name"] == name and r["r"]):
                fig("  PUT ?wait_acks=1 answered (all acked) p50 ms",
                    "all_acked_on_publisher.p50_ms")
                fig("  PUT ?wait_acks=1 answered (all acked) p99 ms",
                    "all_acked_on_publisher.p99_ms")
            c99 = a99
        fig("  server CPU us/message", "server_cpu_us_per_msg")
        fig("  client CPU s (driver)", "client_cpu_s")
        fig("  CPU ms a change, server + driver", "cpu_ms_per_change")
        fig("  that over %d cores: the floor for its last receipt, ms"
            % cores, "cpu_floor_ms")
        fig("  messages missing", "missing")
        if bp == "push":
            fig("  server VmRSS MB with subscribers", "server_rss_kb_with_subs",
                scale=1.0 / 1024)
        if subs and subs >= 9000 and bp in ("push", "cfg"):
            how = "a socket each" if part == bp else "%s a socket" % machine.get("mux", "?")
            goals.append(("%s p99, %s subs (%s)" % (bp, subs, how), c99, "<=", 100, "ms"))

print("cairnd vs etcd %s (registry and config), same run, same machine: %s cores "
      "(%s), kernel %s" % (machine.get("etcd_version", "?"), machine.get("nproc", "?"),
                           machine.get("cpu", "?"), machine.get("kernel", "?")))
print("cairnd build %s; %s round(s), A/B alternating; driver %s; load %s at start, "
      "%s at end; took %s s" % (machine.get("cairnd_build"), machine.get("rounds"),
      machine.get("go"), machine.get("load"), end.get("load"), end.get("elapsed_s", "?")))
print("shared machine: other engineers' builds and tests ran on the same 2 cores; "
      "the driver runs there too")
print("ratio = cairnd/etcd: median of per-round ratios (min-max); server columns "
      "are medians over rounds")
for r in runs:
    if r["rc"] != 0 or r["r"] is None or r["r"].get("first_error"):
        print("NOTE: %s r%s %s: exit %s %s" % (r["name"], r["round"], r["server"], r["rc"],
              (r["r"] or {}).get("first_error", "")[:80]))
print()
w = max(len(t[0]) for t in table) if table else 30
print("%-*s %10s %10s  %s" % (w, "figure", "etcd", "cairnd", "ratio (min-max)"))
print("-" * (w + 50))
for label, e, c, ratio, lo, hi in table:
    rs = "n/a" if ratio is None else "%.2f" % ratio
    if lo is not None and hi is not None and lo != hi:
        rs += " (%.2f-%.2f)" % (lo, hi)
    print("%-*s %10s %10s  %s" % (w, label, fmt(e), fmt(c), rs))
print()
print("goals")
for label, v, op, goal, unit in goals:
    if v is None:
        print("  %-40s goal %s %s %s  n/a" % (label, op, goal, unit))
        continue
    met = v >= goal if op == ">=" else v <= goal
    print("  %-40s goal %s %s %-6s %8s  %s" % (label, op, goal, unit, fmt(v),
          "met" if met else "MISSED"))
PYEOF
rc=$?
cat "$TMP/table.txt"
if [ -n "${REGB_OUT:-}" ]; then
    cp "$TMP/table.txt" "$REGB_OUT"
    cp "$RES" "$REGB_OUT.jsonl"
fi
exit $rc

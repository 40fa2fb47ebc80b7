#!/bin/bash
# compare.sh BUILD_DIR [--quick] - cairnd side by side with etcd 3.4.
#
# What `make bench` runs after the store section. Starts a real etcd (the
# Debian etcd-server binary) and cairnd from BUILD_DIR with the same
# settings (defaults of both: fsync on, snapshot-count 100000, 100 ms
# heartbeat, 1 s election timeout, 2 GiB quota), data directories side by
# side in one temp dir (one disk), loopback only, and drives both with
# cairn-bench (BUILD_DIR/cairn-bench, which speaks etcd's gRPC API):
#
#  1. single member: put, txn-put, linearizable and serializable point
#     ranges, lease keep-alive (100 clients on 10 connections each), put
#     with one client (its p50 against the dd O_DSYNC floor), watch
#     fan-out (1000 watchers on one prefix, 50 writers) and watch latency
#     (1000 watchers, 100 puts/s open loop). Each round runs every workload
#     on etcd then on cairnd (A B A B ...); the table gives each figure's
#     median over rounds for both servers and the median of the per-round
#     ratios cairnd/etcd with their min-max. Server CPU per operation comes
#     from utime+stime deltas in /proc/PID/stat around each run; RSS (VmRSS
#     and RssAnon from /proc/PID/status) and the data directory's size are
#     taken after the last round.
#  2. three members per server kind on 127.0.0.1: put, 100 clients spread
#     over the three members, alternating the same way; CPU summed over
#     the members.
#  3. restart: a fresh single member of each kind loaded with KEYS keys
#     (256-byte values, txns of 100 puts), then RSS, on-disk size, and the
#     time from exec to the first successful linearizable get, over
#     RESTARTS restarts alternating etcd, cairnd.
#  4. footprint (issue 11; not in the default PARTS): a fresh single member
#     of each kind, one after the other, takes etcd's put benchmark
#     (FOOT_TOTAL puts of 256-byte values over FOOT_KEYS random keys, 100
#     clients on 10 connections): put ops/s, then the store file (etcd's
#     member/snap/db, cairnd's data.mdb; the file is a high-water mark),
#     the bytes in use (Status dbSizeInUse) and the data directory (du -sb),
#     serializable point gets and 1000-key prefix ranges for SECONDS each,
#     the data directory again FOOT_REST s after the last put (cairnd's
#     --store-checkpoint auto checkpoints in place after 30 s without a
#     write, and removes its copy), then etcdctl compact --physical (waits for etcd's background
#     compaction) at the current revision and etcdctl defrag, and
#     both sizes again.
# Every process it starts is stopped by PID on exit; everything it writes
# is under one temp dir, removed at the end unless COMPARE_KEEP=1.
#
# Environment (defaults in brackets):
#   COMPARE_ROUNDS [5]       rounds of the single-member and 3-member parts
#   COMPARE_SECONDS [5]      seconds per timed run
#   COMPARE_KEYS [1000000]   keys for the restart part; lowered to 200000
#                            (and the table says so) when less than
#                            COMPARE_BUDGET_S/3 is left when it starts
#   COMPARE_RESTARTS [3]     restarts per server kind
#   COMPARE_PARTS [single,three,restart]   (footprint: see 4.)
#   COMPARE_FOOT_TOTAL [300000], COMPARE_FOOT_KEYS [100000],
#   COMPARE_FOOT_REST [35]   footprint part
#   COMPARE_BUDGET_S [1200]  time bound of the whole comparison
#   COMPARE_DIR [$TMPDIR or /tmp]  where the data directories go
#   COMPARE_OUT              also write the table (and raw JSON lines) here
#   COMPARE_KEEP=1           keep the temp dir (logs, data, raw results)
#   COMPARE_QUOTA            --quota-backend-bytes for both servers (unset:
#                            their default, 2 GiB). cairnd puts about three
#                            times etcd's bytes in the same seconds: five
#                            single rounds brought its store to the 2 GiB
#                            quota (NOSPACE in round 5, 2026-11-27), and the
#                            table then says so (NOTE lines)
#   COMPARE_CAIRND_ARGS      extra flags for every cairnd (A/B runs, e.g.
#                            "--store-checkpoint in-place")
# --quick: 1 round, 2 s runs, 100000 keys, 1 restart (a smoke run).
# Needs python3 for the table. Exit status non-zero when a server could not
# be started or the table could not be made; failed workloads are shown as
# n/a with their reason, not as a failure of the script.
set -u
B=${1:?usage: bench/compare.sh BUILD_DIR [--quick]}
B=$(cd "$B" && pwd)
QUICK=0
[ "${2:-}" = --quick ] && QUICK=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)

ROUNDS=${COMPARE_ROUNDS:-5}
SECS=${COMPARE_SECONDS:-5}
KEYS=${COMPARE_KEYS:-1000000}
RESTARTS=${COMPARE_RESTARTS:-3}
PARTS=${COMPARE_PARTS:-single,three,restart}
BUDGET=${COMPARE_BUDGET_S:-1200}
FOOT_TOTAL=${COMPARE_FOOT_TOTAL:-300000}
FOOT_KEYS=${COMPARE_FOOT_KEYS:-100000}
FOOT_REST=${COMPARE_FOOT_REST:-35}
if [ $QUICK = 1 ]; then
    ROUNDS=1 SECS=2 KEYS=${COMPARE_KEYS:-100000} RESTARTS=1
fi
KEYS_NOTE=""

ETCD=$(command -v etcd || true)
if [ -z "$ETCD" ] || [ ! -x "$B/cairnd" ] || [ ! -x "$B/cairn-bench" ]; then
    echo "compare: needs etcd (Debian etcd-server), $B/cairnd and $B/cairn-bench" >&2
    exit 1
fi
if ! command -v python3 >/dev/null; then
    echo "compare: needs python3 for the table" >&2
    exit 1
fi

T0=$(date +%s)
TMP=$(mktemp -d "${COMPARE_DIR:-${TMPDIR:-/tmp}}/cairn-compare.XXXXXX")
mkdir -p "$TMP/bin"
# Private copies: other builds may replace BUILD_DIR's binaries mid-run.
cp "$B/cairnd" "$B/cairn-bench" "$TMP/bin/"
CAIRND=$TMP/bin/cairnd
BENCH=$TMP/bin/cairn-bench
RES=$TMP/results.jsonl
: >"$RES"
PIDS=()

cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    if [ "${COMPARE_KEEP:-0}" = 1 ]; then
        echo "compare: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "compare: $*" >&2; }
elapsed() { echo $(($(date +%s) - T0)); }
left() { echo $((BUDGET - $(elapsed))); }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start KIND NAME DIR CPORT PPORT CLUSTER TOKEN: starts one member; sets PID.
start() {
    local kind=$1 name=$2 dir=$3 cp=$4 pp=$5 cluster=$6 token=$7 bin
    bin=$ETCD
    local extra=()
    if [ "$kind" = cairnd ]; then
        bin=$CAIRND
        read -r -a extra <<<"${COMPARE_CAIRND_ARGS:-}"
    fi
    if [ -n "${COMPARE_QUOTA:-}" ]; then
        extra+=(--quota-backend-bytes "$COMPARE_QUOTA")
    fi
    mkdir -p "$dir"
    "$bin" --name "$name" --data-dir "$dir/data" "${extra[@]}" \
        --listen-client-urls "http://127.0.0.1:$cp" \
        --advertise-client-urls "http://127.0.0.1:$cp" \
        --listen-peer-urls "http://127.0.0.1:$pp" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pp" \
        --initial-cluster "$cluster" --initial-cluster-token "$token" \
        --initial-cluster-state new >>"$dir/log" 2>&1 &
    PID=$!
    PIDS+=("$PID")
}

# stop PID: SIGTERM, wait up to 30 s, then SIGKILL.
stop() {
    local p=$1
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    local keep=()
    for q in "${PIDS[@]}"; do [ "$q" != "$p" ] && keep+=("$q"); done
    PIDS=("${keep[@]}")
}

ready() { # ready ENDPOINT TIMEOUT_S -> prints ms, or fails
    "$BENCH" ready --endpoints "$1" --timeout "$2" --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["ready_ms"])'
}

TCK=$(getconf CLK_TCK)
cpu_ticks() { # cpu_ticks PID... -> utime+stime summed
    local sum=0 p line rest
    for p in "$@"; do
        line=$(cat "/proc/$p/stat" 2>/dev/null) || continue
        rest=${line##*) }
        # shellcheck disable=SC2086
        set -- $rest
        sum=$((sum + ${12} + ${13}))
    done
    echo $sum
}
mem_kb() { # mem_kb PID FIELD -> kB
    awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

emit() { # emit JSON-object-body
    echo "{$1}" >>"$RES"
}

# run PART ROUND SERVER NAME "PIDS" ENDPOINTS ARGS...: one cairn-bench run,
# one result line.
run() {
    local part=$1 round=$2 server=$3 name=$4 pids=$5 eps=$6 c0 c1 js rc
    shift 6
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids)
    local t0 t1
    t0=$(date +%s.%N)
    js=$(timeout $((SECS * 4 + 120)) "$BENCH" "$@" --endpoints "$eps" --json \
        --timeout 20 2>>"$TMP/bench.err")
    rc=$?
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $pids)
    t1=$(date +%s.%N)
    [ -z "$js" ] && js=null
    local first=${pids%% *}
    emit "\"part\":\"$part\",\"round\":$round,\"server\":\"$server\",\"name\":\"$name\",\"rc\":$rc,\"t0\":$t0,\"t1\":$t1,\"cpu_s\":$(awk -v a="$c0" -v b="$c1" -v t="$TCK" 'BEGIN{print (b-a)/t}'),\"rss_kb\":$(mem_kb "$first" VmRSS),\"anon_kb\":$(mem_kb "$first" RssAnon),\"bench\":$js"
    say "$part r$round $server $name: exit $rc, $(echo "$js" | python3 -c 'import json,sys
d=json.load(sys.stdin)
if d is None: print("no result"); sys.exit()
w=d.get("watch")
print("%.0f ok/s" % d["throughput"] + (", %.0f events/s" % w["events_per_s"] if w else "") + (" " + d["first_error"] if d["first_error"] else ""))' 2>/dev/null)"
}

machine() {
    local dd_out lat
    dd_out=$(dd if=/dev/zero of="$TMP/dd.test" bs=4k count=500 oflag=dsync 2>&1 | tail -1)
    rm -f "$TMP/dd.test"
    lat=$(echo "$dd_out" | awk '{for(i=1;i<=NF;i++) if ($i ~ /^s,?$/ || $i == "s,") {print $(i-1); exit}}')
    emit "\"part\":\"machine\",\"nproc\":$(nproc),\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//;s/"//g')\",\"kernel\":\"$(uname -r)\",\"dd_4k_dsync_s_per_500\":${lat:-0},\"etcd_version\":\"$($ETCD --version 2>/dev/null | awk '/etcd Version/{print $3}')\",\"cairnd_build\":\"$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)\",\"rounds\":$ROUNDS,\"seconds\":$SECS,\"disk\":\"$(df -P "$TMP" | awk 'NR==2{print $1}')\""
}

# ------------------------------------------------------------ single member
part_single() {
    local d=$TMP/single ep_e ep_c pe pc r
    local cpe cpc
    cpe=$(free_port); cpc=$(free_port)
    local ppe ppc
    ppe=$(free_port); ppc=$(free_port)
    start etcd s1 "$d/etcd" "$cpe" "$ppe" "s1=http://127.0.0.1:$ppe" tok-e
    pe=$PID
    start cairnd s1 "$d/cairnd" "$cpc" "$ppc" "s1=http://127.0.0.1:$ppc" tok-c
    pc=$PID
    ep_e=127.0.0.1:$cpe
    ep_c=127.0.0.1:$cpc
    if ! ready "$ep_e" 30 >/dev/null || ! ready "$ep_c" 30 >/dev/null; then
        say "single: a server did not start; see logs"
        tail -3 "$d"/*/log >&2
        return 1
    fi
    # Warm-up: both stores get keys 0..9999 (what the ranges read).
    for s in etcd cairnd; do
        local ep=$ep_e p=$pe
        [ $s = cairnd ] && ep=$ep_c p=$pc
        run single 0 $s warmup "$p" "$ep" put --seq-keys --key-space 10000 \
            --total 10000 --conns 10 --clients 100
    done
    local C="--conns 10 --clients 100 --duration $SECS"
    for r in $(seq "$ROUNDS"); do
        for w in put put1 txn-put range-l range-s keepalive watch watch-lat; do
            for s in etcd cairnd; do
                local ep=$ep_e p=$pe
                [ $s = cairnd ] && ep=$ep_c p=$pc
                case $w in
                put) run single "$r" $s put "$p" "$ep" put $C --key-space 100000 ;;
                put1) run single "$r" $s put1 "$p" "$ep" put --conns 1 --clients 1 \
                    --duration "$SECS" --key-space 100000 ;;
                txn-put) run single "$r" $s txn-put "$p" "$ep" txn-put $C --key-space 100000 ;;
                range-l) run single "$r" $s range-l "$p" "$ep" range $C --key-space 10000 --no-preload ;;
                range-s) run single "$r" $s range-s "$p" "$ep" range $C --key-space 10000 --no-preload --consistency s ;;
                keepalive) run single "$r" $s keepalive "$p" "$ep" lease-keepalive $C ;;
                watch) run single "$r" $s watch "$p" "$ep" watch --watchers 1000 \
                    --watch-prefix --watch-streams 10 --conns 10 --clients 50 \
                    --total 2000 --key-prefix w --key-space 1000 ;;
                watch-lat) run single "$r" $s watch-lat "$p" "$ep" watch-latency \
                    --watchers 1000 --watch-prefix --watch-streams 10 --conns 10 \
                    --clients 10 --rate 100 --duration 3 --key-prefix v --key-space 1000 ;;
                esac
            done
        done
        if [ "$(left)" -lt 300 ]; then
            say "single: stopping after round $r (time budget)"
            break
        fi
    done
    for s in etcd cairnd; do
        local p=$pe
        [ $s = cairnd ] && p=$pc
        emit "\"part\":\"single-mem\",\"server\":\"$s\",\"rss_kb\":$(mem_kb "$p" VmRSS),\"anon_kb\":$(mem_kb "$p" RssAnon),\"disk_bytes\":$(du -sb "$d/$s/data" | cut -f1)"
    done
    ckpt_copies single "$d/cairnd/log"
    stop "$pe"
    stop "$pc"
}

# ckpt_copies PART LOG: one result line per store checkpoint copy cairnd
# logged (its end and length), so that the table can say which rounds ran
# beside one: a copy reads and writes the whole store (node_ckpt.c). It
# reads node__snapshot_finish's "snapshot at index ... a copy, X MB in Y
# ms (read in Z ms" line (node.c): if that wording changes, the table
# shows no copies.
ckpt_copies() {
    python3 - "$1" "$2" >>"$RES" <<'PYC' || true
import datetime, json, re, sys
part, log = sys.argv[1], sys.argv[2]
pat = re.compile(r"^(\S+) .*snapshot at index \d+ .*a copy, ([\d.]+) MB "
                 r"in (\d+) ms \(read in (\d+) ms")
for line in open(log, errors="replace"):
    m = pat.match(line)
    if not m:
        continue
    try:
        end = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        continue
    end = end.replace(tzinfo=datetime.timezone.utc).timestamp()
    print(json.dumps({"part": "ckpt-copy", "of": part, "end": end,
                      "ms": int(m.group(3)), "mb": float(m.group(2)),
                      "read_ms": int(m.group(4))}))
PYC
}

# ---------------------------------------------------------- three members
part_three() {
    local d=$TMP/three s i eps_e="" eps_c="" pids_e="" pids_c=""
    for s in etcd cairnd; do
        local cps=() pps=() cluster="" eps=""
        for i in 1 2 3; do
            cps+=("$(free_port)")
            pps+=("$(free_port)")
            cluster+="${cluster:+,}m$i=http://127.0.0.1:${pps[$((i - 1))]}"
            eps+="${eps:+,}127.0.0.1:${cps[$((i - 1))]}"
        done
        local pids=""
        for i in 1 2 3; do
            start $s "m$i" "$d/$s/m$i" "${cps[$((i - 1))]}" "${pps[$((i - 1))]}" \
                "$cluster" "tok3-$s"
            pids+="${pids:+ }$PID"
        done
        if [ $s = etcd ]; then eps_e=$eps pids_e=$pids; else eps_c=$eps pids_c=$pids; fi
    done
    for e in ${eps_e//,/ } ${eps_c//,/ }; do
        if ! ready "$e" 60 >/dev/null; then
            say "three: member $e did not become ready"
            tail -3 "$d"/*/*/log >&2
            for p in $pids_e $pids_c; do stop "$p"; done
            return 1
        fi
    done
    for r in $(seq "$ROUNDS"); do
        for s in etcd cairnd; do
            local eps=$eps_e pids=$pids_e
            [ $s = cairnd ] && eps=$eps_c pids=$pids_c
            run three "$r" $s put "$pids" "$eps" put --conns 10 --clients 100 \
                --duration "$SECS" --key-space 100000
        done
    done
    for p in $pids_e $pids_c; do stop "$p"; done
}

# ---------------------------------------------------------------- restart
part_restart() {
    local d=$TMP/restart s keys=$KEYS
    if [ "$(left)" -lt $((BUDGET / 3)) ] && [ "$keys" -gt 200000 ]; then
        keys=200000
        KEYS_NOTE="restart part used $keys keys instead of $KEYS (time budget)"
        say "$KEYS_NOTE"
    fi
    local total=$(((keys + 99) / 100))
    declare -A CP PP EPS DIRS
    for s in etcd cairnd; do
        CP[$s]=$(free_port)
        PP[$s]=$(free_port)
        EPS[$s]=127.0.0.1:${CP[$s]}
        DIRS[$s]=$d/$s
        start $s r1 "${DIRS[$s]}" "${CP[$s]}" "${PP[$s]}" \
            "r1=http://127.0.0.1:${PP[$s]}" "tokr-$s"
        local p=$PID
        if ! ready "${EPS[$s]}" 30 >/dev/null; then
            say "restart: $s did not start"
            stop "$p"
            return 1
        fi
        local t0 t1
        t0=$(date +%s%N)
        run restart 0 $s load "$p" "${EPS[$s]}" txn-put --txn-ops 100 --seq-keys \
            --key-space "$keys" --total "$total" --conns 4 --clients 16 \
            --key-prefix r --val-size 256
        t1=$(date +%s%N)
        emit "\"part\":\"restart-load\",\"server\":\"$s\",\"keys\":$keys,\"load_s\":$(awk -v a="$t0" -v b="$t1" 'BEGIN{print (b-a)/1e9}'),\"rss_kb\":$(mem_kb "$p" VmRSS),\"anon_kb\":$(mem_kb "$p" RssAnon)"
        stop "$p"
        emit "\"part\":\"restart-disk\",\"server\":\"$s\",\"keys\":$keys,\"disk_bytes\":$(du -sb "${DIRS[$s]}/data" | cut -f1)"
    done
    for r in $(seq "$RESTARTS"); do
        for s in etcd cairnd; do
            local t0 t1 ms p
            t0=$(date +%s%N)
            start $s r1 "${DIRS[$s]}" "${CP[$s]}" "${PP[$s]}" \
                "r1=http://127.0.0.1:${PP[$s]}" "tokr-$s"
            p=$PID
            # cairn-bench itself, not the ready() wrapper: t1 must not
            # include starting python.
            ms=$("$BENCH" ready --endpoints "${EPS[$s]}" --timeout 300 2>/dev/null)
            t1=$(date +%s%N)
            if [ -z "$ms" ]; then
                say "restart: $s did not become ready"
                emit "\"part\":\"restart\",\"round\":$r,\"server\":\"$s\",\"keys\":$keys,\"ok\":false"
            else
                # A range over all keys' count, to touch the index once.
                emit "\"part\":\"restart\",\"round\":$r,\"server\":\"$s\",\"keys\":$keys,\"ok\":true,\"restart_s\":$(awk -v a="$t0" -v b="$t1" 'BEGIN{print (b-a)/1e9}'),\"rss_kb\":$(mem_kb "$p" VmRSS),\"anon_kb\":$(mem_kb "$p" RssAnon)"
            fi
            stop "$p"
        done
    done
}

# -------------------------------------------------------------- footprint
# store_file DATA_DIR KIND -> bytes of the store file (etcd: bbolt's db,
# cairnd: LMDB's data.mdb), 0 if not found.
store_file() {
    local f
    if [ "$2" = etcd ]; then
        f=$1/member/snap/db
    else
        f=$(find "$1" -name data.mdb | head -1)
    fi
    if [ -n "$f" ] && [ -f "$f" ]; then stat -c %s "$f"; else echo 0; fi
}

# in_use ETCDCTL ENDPOINT -> the store's bytes in use (Status dbSizeInUse:
# the file less its free pages), 0 if unknown.
in_use() {
    ETCDCTL_API=3 "$1" --endpoints "$2" endpoint status -w json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"].get("dbSizeInUse", 0))' 2>/dev/null || echo 0
}

part_footprint() {
    local d=$TMP/footprint s
    local ctl
    ctl=$(command -v etcdctl || true)
    if [ -z "$ctl" ]; then
        say "footprint: needs etcdctl for compact and defrag"
        return 1
    fi
    for s in etcd cairnd; do
        local cp pp ep p rev
        cp=$(free_port)
        pp=$(free_port)
        ep=127.0.0.1:$cp
        start $s f1 "$d/$s" "$cp" "$pp" "f1=http://127.0.0.1:$pp" "tokf-$s"
        p=$PID
        if ! ready "$ep" 30 >/dev/null; then
            say "footprint: $s did not start"
            stop "$p"
            return 1
        fi
        run footprint 1 $s put "$p" "$ep" put --conns 10 --clients 100 \
            --total "$FOOT_TOTAL" --key-space "$FOOT_KEYS" --val-size 256
        local t_put=$SECONDS
        sync
        emit "\"part\":\"footprint-disk\",\"server\":\"$s\",\"store_bytes\":$(store_file "$d/$s/data" $s),\"in_use_bytes\":$(in_use "$ctl" "$ep"),\"dir_bytes\":$(du -sb "$d/$s/data" | cut -f1)"
        run footprint 1 $s get-s "$p" "$ep" range --conns 10 --clients 100 \
            --duration "$SECS" --key-space "$FOOT_KEYS" --no-preload \
            --consistency s
        run footprint 1 $s prefix-s "$p" "$ep" range --conns 10 --clients 100 \
            --duration "$SECS" --key-space "$FOOT_KEYS" --no-preload \
            --consistency s --prefix-digits 3
        # The same directory at rest, FOOT_REST s after the last put (the
        # reads write nothing): cairnd's --store-checkpoint auto takes its
        # checkpoint in place after 30 s without a write.
        local wait_rest=$((FOOT_REST - (SECONDS - t_put)))
        if [ "$wait_rest" -gt 0 ]; then sleep "$wait_rest"; fi
        sync
        emit "\"part\":\"footprint-rest\",\"server\":\"$s\",\"store_bytes\":$(store_file "$d/$s/data" $s),\"dir_bytes\":$(du -sb "$d/$s/data" | cut -f1)"
        rev=$(ETCDCTL_API=3 "$ctl" --endpoints "$ep" endpoint status -w json 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])' 2>/dev/null)
        if [ -z "$rev" ] ||
            ! ETCDCTL_API=3 "$ctl" --endpoints "$ep" compact --physical "$rev" >>"$d/$s/log" 2>&1 ||
            ! ETCDCTL_API=3 "$ctl" --endpoints "$ep" --command-timeout 120s defrag >>"$d/$s/log" 2>&1; then
            say "footprint: compact or defrag failed on $s (revision '$rev')"
        else
            sync
            emit "\"part\":\"footprint-defrag\",\"server\":\"$s\",\"rev\":$rev,\"store_bytes\":$(store_file "$d/$s/data" $s),\"in_use_bytes\":$(in_use "$ctl" "$ep"),\"dir_bytes\":$(du -sb "$d/$s/data" | cut -f1)"
        fi
        stop "$p"
    done
}

machine
say "machine: $(nproc) cores; results in $RES"
for part in ${PARTS//,/ }; do
    if [ "$(left)" -lt 60 ]; then
        say "skipping $part: time budget of $BUDGET s used"
        emit "\"part\":\"skipped\",\"name\":\"$part\""
        continue
    fi
    say "part $part (at $(elapsed) s)"
    "part_$part" || emit "\"part\":\"failed\",\"name\":\"$part\""
done
emit "\"part\":\"end\",\"elapsed_s\":$(elapsed),\"keys_note\":\"$KEYS_NOTE\""

python3 - "$RES" >"$TMP/table.txt" <<'PYEOF'
import json, os, statistics, sys

rows = []
for line in open(sys.argv[1]):
    try:
        rows.append(json.loads(line))
    except ValueError:
        pass

def med(xs):
    return statistics.median(xs) if xs else None

def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if abs(v) >= 1000:
        return "%.0f%s" % (v, unit)
    if abs(v) >= 100:
        return "%.1f%s" % (v, unit)
    return "%.3g%s" % (v, unit)

machine = next((r for r in rows if r.get("part") == "machine"), {})
end = next((r for r in rows if r.get("part") == "end"), {})

def bench_ok(r):
    b = r.get("bench")
    return b is not None and b.get("ok", 0) > 0 and not b.get("unimplemented")

def why_not(rs):
    for r in rs:
        b = r.get("bench")
        if b is None:
            return "no result (exit %d)" % r.get("rc", -1)
        if b.get("unimplemented"):
            return "UNIMPLEMENTED"
        if b.get("ok", 0) == 0:
            return (b.get("first_error") or "no successful request")[:40]
    return "n/a"

# metric extractors: (label, function(row) -> value or None, better)
def thr(r):
    return r["bench"]["throughput"]
def p(q):
    return lambda r: r["bench"]["latency_ms"][q]
def cpu_per_op(r):
    ok = r["bench"]["ok"]
    return r["cpu_s"] / ok * 1e6 if ok else None
def ev_rate(r):
    w = r["bench"].get("watch") or {}
    return w.get("events_per_s") or None
def ev_lat(q):
    return lambda r: (r["bench"].get("watch") or {}).get("latency_ms", {}).get(q)
def cpu_per_event(r):
    w = r["bench"].get("watch") or {}
    return r["cpu_s"] / w["events"] * 1e6 if w.get("events") else None

table = []   # (section, label, etcd, cairnd, ratio, lo, hi, note)
ratios = {}  # key -> median ratio

def figure(part, name, label, fn, key=None):
    rs = [r for r in rows if r.get("part") == part and r.get("name") == name
          and r.get("round", 0) > 0]
    per = {"etcd": {}, "cairnd": {}}
    bad = {"etcd": [], "cairnd": []}
    for r in rs:
        if bench_ok(r):
            try:
                v = fn(r)
            except (KeyError, TypeError, ZeroDivisionError):
                v = None
            if v is not None:
                per[r["server"]][r["round"]] = v
        else:
            bad[r["server"]].append(r)
    e = med(list(per["etcd"].values()))
    c = med(list(per["cairnd"].values()))
    rr = [per["cairnd"][k] / per["etcd"][k] for k in per["etcd"]
          if k in per["cairnd"] and per["etcd"][k]]
    note = ""
    if c is None:
        note = "cairnd: " + why_not(bad["cairnd"])
    elif e is None:
        note = "etcd: " + why_not(bad["etcd"])
    ratio = med(rr)
    table.append((part, label, e, c, ratio, min(rr) if rr else None,
                  max(rr) if rr else None, note))
    if key:
        ratios[key] = ratio

S = "single"
figure(S, "put", "put, 100 clients: ops/s", thr, "put")
figure(S, "put", "put: p50 ms", p("p50"))
figure(S, "put", "put: p99 ms", p("p99"), "put_p99")
figure(S, "put", "put: p99.9 ms", p("p999"), "put_p999")
figure(S, "put", "put: server CPU us/op", cpu_per_op, "put_cpu")
figure(S, "put1", "put, 1 client: ops/s", thr)
figure(S, "put1", "put, 1 client: p50 ms", p("p50"), "put1_p50")
figure(S, "put1", "put, 1 client: p99 ms", p("p99"))
figure(S, "txn-put", "txn-put (1 put/txn): ops/s", thr, "txn")
figure(S, "txn-put", "txn-put: p99 ms", p("p99"))
figure(S, "txn-put", "txn-put: server CPU us/op", cpu_per_op)
figure(S, "range-l", "range linearizable: ops/s", thr, "range_l")
figure(S, "range-l", "range linearizable: p99 ms", p("p99"))
figure(S, "range-l", "range linearizable: CPU us/op", cpu_per_op)
figure(S, "range-s", "range serializable: ops/s", thr, "range_s")
figure(S, "range-s", "range serializable: p99 ms", p("p99"))
figure(S, "range-s", "range serializable: CPU us/op", cpu_per_op)
figure(S, "keepalive", "lease keep-alive, 100 clients: ops/s", thr,
       "keepalive")
figure(S, "keepalive", "lease keep-alive: p99 ms", p("p99"))
figure(S, "keepalive", "lease keep-alive: CPU us/op", cpu_per_op)
figure(S, "watch", "watch fan-out (1000 on a prefix): events/s", ev_rate,
       "watch")
figure(S, "watch", "watch fan-out: put->event p50 ms", ev_lat("p50"))
figure(S, "watch", "watch fan-out: put->event p99 ms", ev_lat("p99"))
figure(S, "watch", "watch fan-out: CPU us/event", cpu_per_event)
figure(S, "watch-lat", "watch 1000 watchers @100 puts/s: p50 ms",
       ev_lat("p50"))
figure(S, "watch-lat", "watch 1000 watchers @100 puts/s: p99 ms",
       ev_lat("p99"))
figure("three", "put", "3 members: put ops/s", thr, "three")
figure("three", "put", "3 members: put p99 ms", p("p99"), "three_p99")
figure("three", "put", "3 members: CPU us/op (3 procs)", cpu_per_op)

def single_val(part, field, label, key=None, scale=1.0, unit=""):
    e = next((r[field] for r in rows if r.get("part") == part
              and r.get("server") == "etcd" and field in r), None)
    c = next((r[field] for r in rows if r.get("part") == part
              and r.get("server") == "cairnd" and field in r), None)
    e = e * scale if e is not None else None
    c = c * scale if c is not None else None
    ratio = c / e if (e and c is not None) else None
    table.append((part, label, e, c, ratio, None, None, ""))
    if key:
        ratios[key] = ratio

MB = 1.0 / 1024
single_val("single-mem", "rss_kb", "RSS after the workloads: VmRSS MB",
           scale=MB)
single_val("single-mem", "anon_kb", "RSS after the workloads: RssAnon MB",
           scale=MB)
single_val("single-mem", "disk_bytes", "data dir after the workloads: MB",
           scale=1.0 / 2**20)
if any(r.get("part") == "footprint" for r in rows):
    F = "footprint"
    figure(F, "put", "footprint: put (etcd's workload) ops/s", thr)
    figure(F, "put", "footprint: put server CPU us/op", cpu_per_op)
    figure(F, "get-s", "footprint: serializable get ops/s", thr)
    figure(F, "get-s", "footprint: serializable get CPU us/op", cpu_per_op)
    figure(F, "prefix-s", "footprint: 1000-key prefix range ops/s", thr)
    figure(F, "prefix-s", "footprint: 1000-key prefix CPU us/op",
           cpu_per_op)
    single_val("footprint-disk", "store_bytes",
               "footprint: store file after the puts MB", scale=1.0 / 2**20)
    single_val("footprint-disk", "in_use_bytes",
               "footprint: store in use after the puts MB", scale=1.0 / 2**20)
    single_val("footprint-disk", "dir_bytes",
               "footprint: data dir after the puts MB", scale=1.0 / 2**20)
    single_val("footprint-rest", "dir_bytes",
               "footprint: data dir at rest (%s s after the puts) MB" %
               os.environ.get("COMPARE_FOOT_REST", "35"),
               scale=1.0 / 2**20)
    single_val("footprint-defrag", "store_bytes",
               "footprint: store file after compact+defrag MB",
               scale=1.0 / 2**20)
    single_val("footprint-defrag", "in_use_bytes",
               "footprint: store in use after compact+defrag MB",
               scale=1.0 / 2**20)
    single_val("footprint-defrag", "dir_bytes",
               "footprint: data dir after compact+defrag MB",
               scale=1.0 / 2**20)
keys = next((r["keys"] for r in rows if r.get("part") == "restart-load"),
            None)
if keys:
    k = "%dk keys" % (keys // 1000)
    single_val("restart-load", "load_s", "%s: load time s (txns of 100)" % k)
    single_val("restart-load", "rss_kb", "%s: VmRSS after load MB" % k,
               "rss_load", scale=MB)
    single_val("restart-load", "anon_kb", "%s: RssAnon after load MB" % k,
               scale=MB)
    single_val("restart-disk", "disk_bytes", "%s: data dir MB" % k,
               scale=1.0 / 2**20)
    per = {"etcd": {}, "cairnd": {}}
    rss = {"etcd": {}, "cairnd": {}}
    for r in rows:
        if r.get("part") == "restart" and r.get("ok"):
            per[r["server"]][r["round"]] = r["restart_s"]
            rss[r["server"]][r["round"]] = r["rss_kb"] * MB
    for label, d, key in (("%s: restart to healthy s" % k, per, "restart"),
                          ("%s: VmRSS after restart MB" % k, rss, None)):
        e = med(list(d["etcd"].values()))
        c = med(list(d["cairnd"].values()))
        rr = [d["cairnd"][i] / d["etcd"][i] for i in d["etcd"]
              if i in d["cairnd"] and d["etcd"][i]]
        table.append(("restart", label, e, c, med(rr),
                      min(rr) if rr else None, max(rr) if rr else None,
                      "" if c is not None else "cairnd did not restart"))
        if key:
            ratios["restart_abs"] = c

print("cairnd vs etcd %s, same run, same machine: %s cores (%s), kernel %s"
      % (machine.get("etcd_version", "?"), machine.get("nproc", "?"),
         machine.get("cpu", "?"), machine.get("kernel", "?")))
dd = machine.get("dd_4k_dsync_s_per_500")
if dd:
    print("4 KiB O_DSYNC write (dd, 500 writes): %.3f ms each" % (dd / 500 * 1000))
print("cairnd build %s; %s rounds of %s s runs, A/B alternating; "
      "took %s s" % (machine.get("cairnd_build"), machine.get("rounds"),
                     machine.get("seconds"), end.get("elapsed_s", "?")))
print("ratio = cairnd/etcd: median of per-round ratios (min-max); "
      "the server columns are medians over rounds")
if end.get("keys_note"):
    print("NOTE: " + end["keys_note"])
for r in rows:
    if r.get("part") in ("skipped", "failed"):
        print("NOTE: part %s %s" % (r["name"], r["part"]))
full = {}
for r in rows:
    err = (r.get("bench") or {}).get("first_error") or ""
    if "space exceeded" in err:
        full.setdefault((r.get("part"), r.get("server")), set()).add(
            r.get("round"))
for (part, server), rounds in sorted(full.items()):
    print("NOTE: %s refused writes for space (NOSPACE: the quota) in the %s "
          "part, rounds %s: those rounds' write figures are partial or n/a "
          "(COMPARE_QUOTA)" % (server, part,
                               ", ".join(str(x) for x in sorted(
                                   rounds, key=lambda x: x or 0))))
print()
w = max(len(t[1]) for t in table) if table else 30
print("%-*s %10s %10s  %-22s %s" % (w, "figure", "etcd", "cairnd",
                                     "ratio (min-max)", "note"))
print("-" * (w + 60))
for part, label, e, c, ratio, lo, hi, note in table:
    rs = "n/a" if ratio is None else "%.2f" % ratio
    if lo is not None and hi is not None:
        rs += " (%.2f-%.2f)" % (lo, hi)
    print("%-*s %10s %10s  %-22s %s" % (w, label, fmt(e), fmt(c), rs, note))

goals = [
    ("put throughput, 100 clients", "put", ">=", 3),
    ("put p99", "put_p99", "<=", 0.33),
    ("put p99.9", "put_p999", "<=", 1),
    ("put p50, 1 client", "put1_p50", "<=", 0.5),
    ("server CPU per put", "put_cpu", "<=", 0.2),
    ("txn-put throughput", "txn", ">=", 4),
    ("linearizable range", "range_l", ">=", 3),
    ("serializable range", "range_s", ">=", 4),
    ("lease keep-alive", "keepalive", ">=", 3),
    ("watch fan-out events/s", "watch", ">=", 3),
    ("three-member put", "three", ">=", 2.5),
    ("three-member put p99", "three_p99", "<=", 0.5),
    ("VmRSS after loading the keys", "rss_load", "<=", 0.25),
]
print()
print("goals (ratio cairnd/etcd unless stated)")
for label, key, op, goal in goals:
    v = ratios.get(key)
    if v is None:
        print("  %-30s goal %s %-5s  n/a" % (label, op, goal))
        continue
    met = v >= goal if op == ">=" else v <= goal
    by = v / goal
    how = ("met, %.2fx the goal" % by) if met else \
          ("MISSED: %.2f vs %s %s (%.0f%% of the way)" %
           (v, op, goal, (by if op == ">=" else 1 / by) * 100))
    print("  %-30s goal %s %-5s  %.2f  %s" % (label, op, goal, v, how))
# One client's put waits for one WAL fsync: the disk's O_DSYNC write (dd,
# same run) is the floor under its p50.
one = [t for t in table if t[1] == "put, 1 client: p50 ms"]
if dd and one and one[0][3] is not None:
    floor = dd / 500 * 1000
    print("  %-30s cairnd %.3f ms = %.1fx the disk's 4 KiB O_DSYNC write "
          "(%.3f ms)%s" % ("put p50, 1 client vs the floor", one[0][3],
                           one[0][3] / floor, floor,
                           "" if one[0][2] is None else
                           "; etcd %.3f ms = %.1fx" % (one[0][2],
                                                       one[0][2] / floor)))
c = ratios.get("restart_abs")
if c is None:
    print("  %-30s goal <  0.5 s  n/a" % "restart to healthy")
else:
    print("  %-30s goal <  0.5 s  %.3f s  %s" % (
        "restart to healthy (%s keys)" % (keys or "?"), c,
        "met" if c < 0.5 else "MISSED by %.3f s" % (c - 0.5)))
# Which single-member put rounds ran beside one of cairnd's store
# checkpoint copies (ckpt_copies): a copy reads and writes the whole store,
# and while it reads, LMDB reuses no freed page, so a round beside one
# pays for both. The goals above take every round; this says how the
# rounds split.
copies = [(r["end"] - r["ms"] / 1000.0, r["end"], r["mb"]) for r in rows
          if r.get("part") == "ckpt-copy" and r.get("of") == "single"]
puts = {r["round"]: r for r in rows
        if r.get("part") == "single" and r.get("name") == "put"
        and r.get("server") == "cairnd" and r.get("round", 0) > 0
        and bench_ok(r) and "t0" in r}
etcd_puts = {r["round"]: r for r in rows
             if r.get("part") == "single" and r.get("name") == "put"
             and r.get("server") == "etcd" and r.get("round", 0) > 0
             and bench_ok(r)}
if puts:
    beside = {k for k, r in puts.items()
              if any(a < r["t1"] and b > r["t0"] for a, b, _ in copies)}
    print()
    print("cairnd's store checkpoint copies: %d in the single-member part "
          "(%s MB); %d of %d put rounds ran beside one (%s)" % (
              len(copies), ", ".join("%.0f" % m for _, _, m in copies)
              or "none", len(beside), len(puts),
              ", ".join(str(k) for k in sorted(beside)) or "none"))
    for label, fn in (("CPU us/put", cpu_per_op), ("p99 ms", p("p99"))):
        parts = []
        for name, ks in (("beside a copy", beside),
                         ("without", set(puts) - beside)):
            vs = [fn(puts[k]) for k in ks]
            rs = [fn(puts[k]) / fn(etcd_puts[k]) for k in ks
                  if k in etcd_puts and fn(etcd_puts[k])]
            if vs:
                parts.append("%s %s (ratio %s)" % (
                    name, fmt(med(vs)), fmt(med(rs)) if rs else "n/a"))
        print("  put %-11s %s" % (label + ":", "; ".join(parts)))
PYEOF
rc=$?
cat "$TMP/table.txt"
if [ -n "${COMPARE_OUT:-}" ]; then
    cp "$TMP/table.txt" "$COMPARE_OUT"
    cp "$RES" "$COMPARE_OUT.jsonl"
fi
exit $rc

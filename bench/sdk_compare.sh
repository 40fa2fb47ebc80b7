#!/bin/bash
# sdk_compare.sh BUILD_DIR - libcairn's put and range throughput against
# cairn-bench's on the same cairnd with the same parameters.
#
# Goal (issue 14): the library must not be the bottleneck: sdk-bench (the
# loads made through libcairn's blocking calls) should reach >= 0.8x
# cairn-bench's throughput. Method: one fresh cairnd (single member,
# defaults: fsync on) from BUILD_DIR on a free loopback port, 10000 keys
# preloaded (256-byte values). For each workload (put; range = point
# linearizable gets over the preloaded keys) and each concurrency N
# (cairn-bench --conns N --clients N: one request in flight per
# connection; sdk-bench: N threads, each its own client and connection,
# blocking calls back to back), ROUNDS rounds run both tools one after the
# other, alternating which goes first. The table gives the median
# throughput of each tool, the median of the per-round ratios sdk/bench
# with their min-max, and each client's CPU time per operation
# (user+system of the client process, from /usr/bin/time), which does not
# depend on the load of a shared machine as throughput does. Not part of
# make test. Stops the cairnd it started, by PID; its temp dir is removed
# unless SDK_COMPARE_KEEP=1.
#
# Environment: SDK_ROUNDS [5], SDK_CLIENTS ["1 10 50"], SDK_PUT_TOTAL
# [3000], SDK_RANGE_TOTAL [20000], SDK_WORKLOADS ["put range"].
set -u
B=${1:?usage: bench/sdk_compare.sh BUILD_DIR}
B=$(cd "$B" && pwd)
ROUNDS=${SDK_ROUNDS:-5}
CLIENTS=${SDK_CLIENTS:-1 10 50}
WORKLOADS=${SDK_WORKLOADS:-put range}
for f in cairnd cairn-bench sdk-bench; do
    [ -x "$B/$f" ] || { echo "$B/$f not built (make)" >&2; exit 1; }
done
TMP=$(mktemp -d /tmp/sdk-compare.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        wait "$PID" 2>/dev/null
    fi
    [ -z "${SDK_COMPARE_KEEP:-}" ] && rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=$(python3 -c '
import random, socket
for _ in range(200):
    p = random.randint(20000, 59000)
    try:
        for q in (p, p + 1):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
    except OSError:
        continue
    print(p); break')
EP=127.0.0.1:$PORT
"$B/cairnd" --name default --data-dir "$TMP/data" \
    --listen-client-urls "http://$EP" --advertise-client-urls "http://$EP" \
    --listen-peer-urls "http://127.0.0.1:$((PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((PORT + 1))" \
    --initial-cluster "default=http://127.0.0.1:$((PORT + 1))" \
    >"$TMP/cairnd.log" 2>&1 &
PID=$!
"$B/cairn-bench" ready --endpoints "$EP" --timeout 15 >/dev/null 2>&1 || {
    echo "cairnd did not start (log: $TMP/cairnd.log)" >&2
    SDK_COMPARE_KEEP=1
    exit 1
}
"$B/cairn-bench" put --endpoints "$EP" --seq-keys --total 10000 \
    --key-space 10000 >/dev/null

# one TOOL WORKLOAD N: one run; appends a JSON line to $TMP/raw.
one() {
    local tool=$1 wl=$2 n=$3 total out cpu
    if [ "$wl" = put ]; then total=${SDK_PUT_TOTAL:-3000}; else total=${SDK_RANGE_TOTAL:-20000}; fi
    if [ "$tool" = bench ]; then
        set -- "$B/cairn-bench" "$wl" --endpoints "$EP" --conns "$n" \
            --clients "$n" --total "$total" --no-preload --json
    else
        set -- "$B/sdk-bench" "$wl" --endpoints "$EP" --clients "$n" \
            --total "$total" --json
    fi
    out=$(/usr/bin/time -f 'CPU %U %S' -o "$TMP/time" timeout 300 "$@" 2>/dev/null | tail -1)
    cpu=$(awk '/^CPU/ {print $2 + $3}' "$TMP/time")
    echo "{\"tool\":\"$tool\",\"wl\":\"$wl\",\"n\":$n,\"cpu_s\":${cpu:-0},\"r\":${out:-null}}" >>"$TMP/raw"
}

for wl in $WORKLOADS; do
    for n in $CLIENTS; do
        for r in $(seq "$ROUNDS"); do
            if [ $((r % 2)) = 1 ]; then
                one bench "$wl" "$n"
                one sdk "$wl" "$n"
            else
                one sdk "$wl" "$n"
                one bench "$wl" "$n"
            fi
        done
    done
done

python3 - "$TMP/raw" "$ROUNDS" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rounds = int(sys.argv[2])
print("libcairn (sdk-bench) against cairn-bench on one cairnd; %d rounds, "
      "medians" % rounds)
print("%-6s %4s  %12s %12s  %-18s  %14s %14s" % (
    "load", "N", "bench ok/s", "sdk ok/s", "ratio sdk/bench", "bench cpu/op",
    "sdk cpu/op"))
keys = []
for r in rows:
    k = (r["wl"], r["n"])
    if k not in keys:
        keys.append(k)
worst = None
for wl, n in keys:
    b = [r for r in rows if r["wl"] == wl and r["n"] == n and r["tool"] == "bench"]
    s = [r for r in rows if r["wl"] == wl and r["n"] == n and r["tool"] == "sdk"]
    def tput(x):
        return x["r"]["throughput"] if x["r"] and not x["r"].get("failed") else 0.0
    def cpu(x):
        ok = x["r"]["ok"] if x["r"] else 0
        return x["cpu_s"] / ok * 1e6 if ok else float("nan")
    ratios = [tput(y) / tput(x) if tput(x) else 0.0 for x, y in zip(b, s)]
    med = statistics.median(ratios)
    worst = med if worst is None else min(worst, med)
    print("%-6s %4d  %12.0f %12.0f  %5.2f (%4.2f-%4.2f)  %11.1f us %11.1f us" % (
        wl, n, statistics.median(map(tput, b)), statistics.median(map(tput, s)),
        med, min(ratios), max(ratios), statistics.median(map(cpu, b)),
        statistics.median(map(cpu, s))))
print("lowest median ratio: %.2f (goal >= 0.8)" % worst)
EOF

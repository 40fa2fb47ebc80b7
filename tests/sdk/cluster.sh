# cluster.sh - a three-member cairnd cluster for the tests/sdk scripts.
#
# Source it after tests/compat/lib.sh (which owns $TMP, LIB_PIDS, the
# bounded waits and the cleanup that kills only what was started here).
#
#   cluster_start           start members 1..3 on free loopback ports; sets
#                           M<i>_PORT M<i>_EP M<i>_DIR M<i>_PID, EPS (every
#                           client endpoint, comma-separated); returns
#                           non-zero unless each answers within 15 s
#   member_start I          start member I (again) on its port and data dir
#   member_stop I           SIGTERM, then SIGKILL after 5 s
#   member_kill I           SIGKILL, reaped
#   leader_index            print the index of the leader (all running
#                           members agree), within 10 s; empty otherwise
#   eps_first I             print EPS with member I's endpoint first
#   wait_grep FILE FROM PATTERN SECONDS   a line after line FROM matches
#   since_ms NS             milliseconds since the date +%s%N value NS

cluster_start() {
    local i p ic=
    for i in 1 2 3; do
        p=$(free_port)
        printf -v "M${i}_PORT" %s "$p"
        printf -v "M${i}_EP" %s "127.0.0.1:$p"
        printf -v "M${i}_DIR" %s "$TMP/m$i.data"
        ic="$ic${ic:+,}m$i=http://127.0.0.1:$((p + 1))"
    done
    CLUSTER=$ic
    EPS=$M1_EP,$M2_EP,$M3_EP
    for i in 1 2 3; do
        member_start "$i" nowait
    done
    for i in 1 2 3; do
        local ep=M${i}_EP pid=M${i}_PID
        wait_ready "${!ep}" "${!pid}" || return 1
    done
}

member_start() { # member_start I [nowait]
    local i=$1 port pid
    port=M${i}_PORT
    port=${!port}
    mkdir -p "$TMP/m$i.data"
    "$B/cairnd" --name "m$i" --data-dir "$TMP/m$i.data" \
        --listen-client-urls "http://127.0.0.1:$port" \
        --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
        --initial-cluster "$CLUSTER" --initial-cluster-token sdk-test \
        >>"$TMP/m$i.log" 2>&1 &
    pid=$!
    LIB_PIDS+=("$pid")
    printf -v "M${i}_PID" %s "$pid"
    [ "${2:-}" = nowait ] && return 0
    wait_ready "127.0.0.1:$port" "$pid"
}

member_stop() { stop_server "M$1"; }

member_kill() {
    local pid=M${1}_PID
    kill -9 "${!pid}" 2>/dev/null
    wait "${!pid}" 2>/dev/null
    return 0
}

leader_index() {
    local k
    for k in $(seq $((100 * T))); do
        local out
        out=$(timeout 5 "$ETCDCTL" --endpoints="$EPS" --dial-timeout=1s \
            --command-timeout=2s endpoint status -w json 2>/dev/null |
            "$PY" -c '
import json, sys
eps = sys.argv[1].split(",")
try:
    st = json.load(sys.stdin)
except ValueError:
    sys.exit(0)
leaders = {s["Status"].get("leader", 0) for s in st}
if len(leaders) != 1 or 0 in leaders:
    sys.exit(0)
lid = leaders.pop()
for s in st:
    if s["Status"]["header"]["member_id"] == lid:
        print(eps.index(s["Endpoint"]) + 1)
' "$EPS")
        if [ -n "$out" ]; then
            echo "$out"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

eps_first() {
    local i=$1 ep out j
    ep=M${i}_EP
    out=${!ep}
    for j in 1 2 3; do
        [ "$j" = "$i" ] && continue
        ep=M${j}_EP
        out="$out,${!ep}"
    done
    echo "$out"
}

wait_grep() { # wait_grep FILE FROM PATTERN SECONDS
    local i
    for i in $(seq $(($4 * 20 * T))); do
        tail -n +"$(($2 + 1))" "$1" 2>/dev/null | grep -q -E "$3" && return 0
        sleep 0.05
    done
    return 1
}

since_ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

# lib.sh - shared shell helpers for the tests/compat/*.test scripts.
#
# Source it from a bash test script: `. "$(dirname "$0")/lib.sh"`.
# Does: a per-test temp dir removed at exit (kept when something failed),
# free loopback ports, starting cairnd and a reference etcd 3.4 on those
# ports with temp data dirs, stopping exactly the PIDs this script started,
# and TAP helpers. Every wait is bounded; CAIRN_TIMEOUT_SCALE stretches them
# (e.g. 3 under a sanitizer build).
#
#   lib_init NAME          make $TMP, set ROOT/B/PY/T, install the exit trap
#   free_port              print a loopback TCP port nobody listens on
#   start_cairnd TAG [args]  start $B/cairnd; sets <TAG>_PID <TAG>_EP
#                          <TAG>_PORT <TAG>_DIR; returns non-zero if it does
#                          not answer within 15 s (log: $TMP/TAG.log)
#   start_etcd TAG [args]  the same for /usr/bin/etcd (3.4.23)
#   stop_server TAG        SIGTERM, then SIGKILL after 5 s, that PID only
#   start_trio KIND TAG [args]  three members m0..m2 (KIND cairnd or etcd),
#                          each with args; sets <TAG>_PORTS "p0,p1,p2" and
#                          <TAG>_PIDS; returns non-zero unless every member
#                          answers a linearizable read (logs: $TMP/TAG0.log)
#   stop_trio TAG          stop_server's SIGTERM, then SIGKILL, for each
#   ctl_on EP args...      etcdctl with bounded dial/command timeouts
#   tap_ok/tap_fail/tap_skip "what" ["why"]; tap_end prints the plan
set -u
ROOT=${CAIRN_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
B=${CAIRN_BUILD:-$ROOT/build/release}
PY=/usr/bin/python3
T=${CAIRN_TIMEOUT_SCALE:-1}
ETCD=${CAIRN_ETCD:-/usr/bin/etcd}
ETCDCTL=${CAIRN_ETCDCTL:-/usr/bin/etcdctl}
n=0
fails=0
LIB_PIDS=()
LIB_BG=()
TMP=

lib_kill_pids() { # kill -9 what this shell started (LIB_PIDS)
    local p
    for p in "${LIB_PIDS[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -9 "$p" 2>/dev/null
            wait "$p" 2>/dev/null
        fi
    done
}

# lib_bg CMD [args]: CMD in a background subshell (wait for it with wait);
# the servers it starts are its own, killed when it ends however it ends,
# and lib_cleanup ends it first if the test stops early.
lib_bg() {
    (
        LIB_PIDS=()
        trap lib_kill_pids EXIT
        trap 'exit 130' INT TERM
        "$@"
    ) &
    LIB_BG+=("$!")
}

lib_bg_wait() { # wait for every lib_bg subshell (not for servers)
    local p
    for p in "${LIB_BG[@]}"; do wait "$p"; done
    LIB_BG=()
}

# lib_tap_replay FILE: the TAP a lib_bg subshell printed into FILE, renumbered
# into this test's plan (its diagnostics as they are).
lib_tap_replay() {
    local line
    while IFS= read -r line; do
        case $line in
        "ok "*) tap_ok "${line#ok * - }" ;;
        "not ok "*) tap_fail "${line#not ok * - }" ;;
        *) printf '%s\n' "$line" ;;
        esac
    done <"$1"
}

lib_cleanup() {
    local p
    for p in "${LIB_BG[@]}"; do
        if kill -0 "$p" 2>/dev/null; then
            kill -TERM "$p" 2>/dev/null
            wait "$p" 2>/dev/null
        fi
    done
    lib_kill_pids
    if [ -n "$TMP" ] && [ -d "$TMP" ]; then
        if [ "$fails" -eq 0 ] && [ -z "${KEEP_TMP:-}" ]; then
            rm -rf "$TMP"
        else
            echo "# logs kept in $TMP"
        fi
    fi
}

lib_init() { # lib_init NAME
    TMP=$(mktemp -d "/tmp/cairn-$1.XXXXXX")
    trap lib_cleanup EXIT
    trap 'exit 130' INT TERM
}

tap_ok() { n=$((n + 1)); echo "ok $n - $1"; }
tap_fail() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
tap_skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP ${2:-}"; }
tap_check() { # tap_check CONDITION-STATUS "what": 0 -> ok, else not ok
    if [ "$1" -eq 0 ]; then tap_ok "$2"; else tap_fail "$2"; fi
}
tap_end() { echo "1..$n"; }
tap_diag() { sed 's/^/#   /'; } # indent a block as TAP diagnostics

free_port() {
    "$PY" - <<'EOF'
import random, socket
# A random port free right now for both the port and port+1 (peer URL),
# below the kernel's ephemeral range: binding port 0 would hand out the
# ports the kernel uses for outgoing connections, and a port in that
# range can be taken as the local end of some connection while its server
# restarts (peer_tls's etcd m4 once could not bind its own port again).
lo, hi = 10000, 32766
try:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        a, b = (int(x) for x in f.read().split())
    if a - 2 < 12000:
        lo, hi = (b + 1, 65533) if b < 63000 else (20000, 59000)
    else:
        hi = a - 2
except (OSError, ValueError):
    pass
for _ in range(200):
    p = random.randint(lo, hi)
    try:
        for q in (p, p + 1):
            s = socket.socket()
            s.bind(("127.0.0.1", q))
            s.close()
    except OSError:
        continue
    print(p)
    break
EOF
}

ctl_on() { # ctl_on EP etcdctl-args...
    local ep=$1
    shift
    timeout $((20 * T)) "$ETCDCTL" --endpoints="$ep" --dial-timeout=$((3 * T))s \
        --command-timeout=$((8 * T))s "$@"
}

wait_ready() { # wait_ready EP PID: 0 once a serializable get answers
    local i hp=${1#*://}
    hp=${hp%%/*}
    for i in $(seq $((150 * T))); do
        kill -0 "$2" 2>/dev/null || return 1
        # While nothing listens, etcdctl would spend its whole dial timeout
        # (1 s) per try: knock on the port first, which fails at once.
        if (exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}") 2>/dev/null &&
            timeout 3 "$ETCDCTL" --endpoints="$1" --dial-timeout=1s \
                --command-timeout=2s get --consistency=s probe >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

lib_start() { # lib_start KIND TAG extra-args...
    local kind=$1 tag=$2 port peer dir pid bin
    shift 2
    port=$(free_port)
    peer=$((port + 1))
    dir=$TMP/$tag.data
    mkdir -p "$dir"
    local extra=()
    if [ "$kind" = etcd ]; then
        bin=$ETCD
    else
        bin=$B/cairnd
        # TEST_CAIRND_FLAGS: flags every cairnd gets first (cairnlib.py too)
        read -r -a extra <<<"${TEST_CAIRND_FLAGS:-}"
    fi
    "$bin" "${extra[@]}" --name "${LIB_NAME:-default}" --data-dir "$dir" \
        --listen-client-urls "http://127.0.0.1:$port" \
        --advertise-client-urls "http://127.0.0.1:$port" \
        --listen-peer-urls "http://127.0.0.1:$peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "${LIB_NAME:-default}=http://127.0.0.1:$peer" \
        "$@" >"$TMP/$tag.log" 2>&1 &
    pid=$!
    LIB_PIDS+=("$pid")
    printf -v "${tag}_PID" %s "$pid"
    printf -v "${tag}_PORT" %s "$port"
    printf -v "${tag}_EP" %s "127.0.0.1:$port"
    printf -v "${tag}_DIR" %s "$dir"
    wait_ready "127.0.0.1:$port" "$pid"
}
start_cairnd() { lib_start cairnd "$@"; }
start_etcd() { lib_start etcd "$@"; }

alive() { # alive TAG
    local v=${1}_PID
    kill -0 "${!v}" 2>/dev/null
}

stop_server() { # stop_server TAG: returns the exit status (137 if killed)
    local v=${1}_PID pid i rc=
    pid=${!v}
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return $?; }
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq $((100 * T))); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null
            rc=$?
            return "$rc"
        fi
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 137
}

start_trio() { # start_trio KIND TAG [args]: three members, see above
    local kind=$1 tag=$2 bin i cl="" ports=() peers=() pids=()
    shift 2
    if [ "$kind" = etcd ]; then bin=$ETCD; else bin=$B/cairnd; fi
    for i in 0 1 2; do
        ports[i]=$(free_port)
        peers[i]=$(free_port)
        while [ "${peers[i]}" = "${ports[i]}" ]; do peers[i]=$(free_port); done
        cl+="${cl:+,}m$i=http://127.0.0.1:${peers[i]}"
    done
    for i in 0 1 2; do
        mkdir -p "$TMP/$tag$i.data"
        "$bin" --name "m$i" --data-dir "$TMP/$tag$i.data" \
            --listen-client-urls "http://127.0.0.1:${ports[i]}" \
            --advertise-client-urls "http://127.0.0.1:${ports[i]}" \
            --listen-peer-urls "http://127.0.0.1:${peers[i]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${peers[i]}" \
            --initial-cluster "$cl" --initial-cluster-token "trio-$tag" \
            "$@" >"$TMP/$tag$i.log" 2>&1 &
        pids[i]=$!
        LIB_PIDS+=("$!")
    done
    printf -v "${tag}_PORTS" %s "${ports[0]},${ports[1]},${ports[2]}"
    printf -v "${tag}_PIDS" %s "${pids[*]}"
    for i in 0 1 2; do
        wait_ready "127.0.0.1:${ports[i]}" "${pids[i]}" || return 1
    done
    # and a leader: a linearizable read answers on every member
    for i in 0 1 2; do
        for _ in $(seq $((100 * T))); do
            ctl_on "127.0.0.1:${ports[i]}" get ready-probe >/dev/null 2>&1 &&
                continue 2
            sleep 0.1
        done
        return 1
    done
}

leader_of() { # leader_of PORTS: the index (0-2) of the trio's leader
    local i p
    IFS=, read -r -a p <<<"$1"
    for i in 0 1 2; do
        if ctl_on "127.0.0.1:${p[i]}" endpoint status -w json 2>/dev/null |
            "$PY" -c 'import json,sys
s=json.load(sys.stdin)[0]["Status"]
sys.exit(0 if s["leader"]==s["header"]["member_id"] else 1)'; then
            echo "$i"
            return 0
        fi
    done
    return 1
}

stop_trio() { # stop_trio TAG
    local v=${1}_PIDS p
    for p in ${!v}; do kill -TERM "$p" 2>/dev/null; done
    for p in ${!v}; do
        for _ in $(seq $((100 * T))); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
}

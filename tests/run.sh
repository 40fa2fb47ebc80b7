#!/bin/bash
# run.sh BUILD_DIR - run the whole test suite and count TAP results.
#
# Runs every unit binary (cmocka, TAP output), then every executable
# tests/<kind>/*.test script (each prints TAP "ok"/"not ok" lines). Ends with
# one line: "N passed, N failed". Exit status is 0 only when nothing failed.
#
# ONLY=unit|lint|crash|sim|integration|compat|sdk|fuzz restricts to one kind.
# FULL=1 asks the scripted tests for their long form (make itest).
# Logs of each test go to BUILD_DIR/test-logs/.
#
# Two lanes when the whole suite runs (CAIRN_TEST_LANES=1: one): the tests
# that only compute (lint, the simulator, the fuzz build and runs) run at
# nice 19 beside the others, which spend most of their time waiting on
# timers, sockets and fsync (the suite used 40% of two cores in one lane).
# At nice 19 they take what the others leave, so the timed tests see
# nearly the machine they saw alone. Their results are counted at the end.
# Each result line gives the wall time and the CPU time of the test and
# the processes it waited for.
set -u
B=${1:?usage: run.sh BUILD_DIR}
B=$(cd "$B" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGS=$B/test-logs
mkdir -p "$LOGS"
export CAIRN_BUILD=$B CAIRN_ROOT=$ROOT
pass=0
fail=0
failed_names=()

count() { # count NAME LOGFILE RC [SECONDS [CPU_SECONDS]]
    local name=$1 log=$2 rc=$3 secs=${4:+, ${4}s${5:+, cpu ${5}s}} p f
    p=$(grep -c -E '^ok ' "$log")
    f=$(grep -c -E '^not ok ' "$log")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        f=1 # crashed or exited non-zero without reporting a failure
        echo "not ok - $name exited with status $rc" >>"$log"
    fi
    pass=$((pass + p))
    fail=$((fail + f))
    if [ "$f" -gt 0 ]; then
        failed_names+=("$name")
        echo "FAIL $name ($p passed, $f failed$secs) - log: $log"
        # each failure with the "#" lines that follow it (its reason):
        # CI keeps this summary and not the logs
        awk '/^not ok /{n++; s=1; k=0; if (n <= 20) print; next}
             s && /^#/ && k < 6 && n <= 20 {print; k++; next} {s=0}' "$log" |
            sed 's/^/    /'
    else
        echo "ok   $name ($p passed$secs)"
    fi
}

cpu_now() { # CPU_NOW: ticks of this shell's waited-for children
    local f
    read -r -a f </proc/$BASHPID/stat
    # fields 16 and 17 (cutime, cstime); the name (field 2) has no spaces
    CPU_NOW=$((f[15] + f[16]))
}
TICKS=$(getconf CLK_TCK 2>/dev/null || echo 100)

# run_script KIND FILE: one scripted test into its log; prints the line
# "NAME RC SECONDS CPU_SECONDS" that count takes.
run_script() {
    local kind=$1 t=$2 name t0 c0 rc
    name=$kind-$(basename "$t" .test)
    t0=$SECONDS
    cpu_now
    c0=$CPU_NOW
    (cd "$ROOT" && timeout 1500 "$t") >"$LOGS/$name.log" 2>&1
    rc=$?
    cpu_now
    echo "$name $rc $((SECONDS - t0)) $(((CPU_NOW - c0) / TICKS))"
}

# run_lint: make lint's checks (formatting, include direction, the Raft
# core's purity), so that they cannot rot between the runs someone
# remembers; the same line as run_script (the result is in the log).
run_lint() {
    local t0=$SECONDS c0
    cpu_now
    c0=$CPU_NOW
    if "$ROOT"/tests/lint/lint.sh "$B" >"$LOGS/lint.log" 2>&1; then
        echo "ok - lint: formatting, includes, raft core symbols" >>"$LOGS/lint.log"
    else
        echo "not ok - lint: formatting, includes, raft core symbols" >>"$LOGS/lint.log"
    fi
    cpu_now
    echo "lint 0 $((SECONDS - t0)) $(((CPU_NOW - c0) / TICKS))"
}

BG_KINDS=
lanes=${CAIRN_TEST_LANES:-2}
if [ -z "${ONLY:-}" ] && [ "$lanes" -gt 1 ]; then
    BG_KINDS="sim fuzz"
    rm -f "$LOGS/.lane-bg"
    (
        renice -n 19 -p "$BASHPID" >/dev/null 2>&1
        if command -v clang-format >/dev/null; then
            run_lint
        fi
        for kind in $BG_KINDS; do
            for t in "$ROOT"/tests/$kind/*.test; do
                [ -x "$t" ] && run_script "$kind" "$t"
            done
        done
    ) >"$LOGS/.lane-bg" 2>&1 &
    bg_pid=$!
fi

if [ -z "${ONLY:-}" ] || [ "${ONLY}" = unit ]; then
    for t in "$B"/tests/unit-*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        t0=$SECONDS
        cpu_now
        c0=$CPU_NOW
        CMOCKA_MESSAGE_OUTPUT=TAP timeout 600 "$t" >"$LOGS/$name.log" 2>&1
        rc=$?
        cpu_now
        count "$name" "$LOGS/$name.log" $rc $((SECONDS - t0)) $(((CPU_NOW - c0) / TICKS))
        # the store's tests again with MDB_WRITEMAP (--store-writemap)
        case $name in unit-kv | unit-kv_model | unit-apply | unit-watch)
            t0=$SECONDS
            cpu_now
            c0=$CPU_NOW
            CAIRN_KV_WRITEMAP=1 CMOCKA_MESSAGE_OUTPUT=TAP timeout 600 "$t" \
                >"$LOGS/$name-writemap.log" 2>&1
            rc=$?
            cpu_now
            count "$name-writemap" "$LOGS/$name-writemap.log" $rc \
                $((SECONDS - t0)) $(((CPU_NOW - c0) / TICKS))
            ;;
        esac
    done
fi

if [ -z "$BG_KINDS" ] && { [ -z "${ONLY:-}" ] || [ "${ONLY}" = lint ]; } &&
    command -v clang-format >/dev/null; then
    read -r name rc secs cpu < <(run_lint)
    count "$name" "$LOGS/$name.log" "$rc" "$secs" "$cpu"
fi

for kind in crash sim integration compat sdk fuzz; do
    if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$kind" ]; then
        continue
    fi
    case " $BG_KINDS " in *" $kind "*) continue ;; esac
    for t in "$ROOT"/tests/$kind/*.test; do
        [ -x "$t" ] || continue
        read -r name rc secs cpu < <(run_script "$kind" "$t")
        count "$name" "$LOGS/$name.log" "$rc" "$secs" "$cpu"
    done
done

if [ -n "$BG_KINDS" ]; then
    t0=$SECONDS
    wait "$bg_pid"
    echo "# the nice 19 lane (lint, $BG_KINDS) ended $((SECONDS - t0))s after the rest"
    while read -r name rc secs cpu; do
        case $name in
        "" | \#*) continue ;;
        esac
        if [ -f "$LOGS/$name.log" ] && [ -n "$cpu" ]; then
            count "$name" "$LOGS/$name.log" "$rc" "$secs" "$cpu"
        else
            echo "# lane output: $name $rc $secs $cpu"
        fi
    done <"$LOGS/.lane-bg"
fi

echo "# the suite took ${SECONDS}s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

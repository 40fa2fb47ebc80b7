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

count() { # count NAME LOGFILE RC [SECONDS]
    local name=$1 log=$2 rc=$3 secs=${4:+, ${4}s} p f
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
        grep -E '^not ok ' "$log" | head -n 20 | sed 's/^/    /'
    else
        echo "ok   $name ($p passed$secs)"
    fi
}

if [ -z "${ONLY:-}" ] || [ "${ONLY}" = unit ]; then
    for t in "$B"/tests/unit-*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        t0=$SECONDS
        CMOCKA_MESSAGE_OUTPUT=TAP timeout 600 "$t" >"$LOGS/$name.log" 2>&1
        count "$name" "$LOGS/$name.log" $? $((SECONDS - t0))
    done
fi

# make lint's checks (formatting, include direction, the Raft core's
# purity), so that they cannot rot between the runs someone remembers
if { [ -z "${ONLY:-}" ] || [ "${ONLY}" = lint ]; } && command -v clang-format >/dev/null; then
    t0=$SECONDS
    if "$ROOT"/tests/lint/lint.sh "$B" >"$LOGS/lint.log" 2>&1; then
        echo "ok - lint: formatting, includes, raft core symbols" >>"$LOGS/lint.log"
    else
        echo "not ok - lint: formatting, includes, raft core symbols" >>"$LOGS/lint.log"
    fi
    count lint "$LOGS/lint.log" 0 $((SECONDS - t0))
fi

for kind in crash sim integration compat sdk fuzz; do
    if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$kind" ]; then
        continue
    fi
    for t in "$ROOT"/tests/$kind/*.test; do
        [ -x "$t" ] || continue
        name=$kind-$(basename "$t" .test)
        t0=$SECONDS
        (cd "$ROOT" && timeout 1500 "$t") >"$LOGS/$name.log" 2>&1
        count "$name" "$LOGS/$name.log" $? $((SECONDS - t0))
    done
done

echo "# the suite took ${SECONDS}s"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]

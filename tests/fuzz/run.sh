#!/bin/bash
# run.sh MODE FUZZ_DIR - run the libFuzzer targets built into FUZZ_DIR.
#
#   fuzz    each target for FUZZ_SECONDS (default 60) over its checked-in
#           corpus (tests/fuzz/corpus/<name>, read only) plus a work corpus
#           FUZZ_DIR/corpus/<name> that keeps what the fuzzer found.
#   replay  each target once over every checked-in input: no fuzzing, a
#           regression run of the seeds and of past crash inputs.
#   smoke   like fuzz but short (FUZZ_SECONDS, default 8), from the seeds
#           alone (a fresh work corpus), printing one
#           TAP line per target with the executions done (tests/fuzz/fuzz.test).
#
# FUZZ_TARGETS=raft_codec,wal restricts to some targets. -max_len comes from
# the "#define FUZZ_MAX_LEN n" line of each tests/fuzz/fuzz_<name>.c. A crash,
# leak, timeout or sanitizer report ends that target's run; its input is
# saved as FUZZ_DIR/crashes/<name>-crash-<sha1> and the path is printed.
# FUZZ_JOBS targets run at once (default: the number of cores; each
# fuzzer is one process on one core, and the targets that start a server
# bind kernel-chosen ports); the TAP lines still come out in target order.
# Exit status: 0 only when no target failed.
set -u
MODE=${1:?usage: run.sh fuzz|replay|smoke FUZZ_DIR}
DIR=${2:?usage: run.sh fuzz|replay|smoke FUZZ_DIR}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=$(cd "$DIR" && pwd)
case $MODE in
fuzz) SECS=${FUZZ_SECONDS:-60} ;;
smoke) SECS=${FUZZ_SECONDS:-8} ;;
replay) SECS=0 ;;
*)
    echo "run.sh: unknown mode $MODE" >&2
    exit 2
    ;;
esac
mkdir -p "$DIR/crashes" "$DIR/logs-$MODE"
# Leaks are bugs too; a slow input (an endless loop) counts after 20 s.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# one_target N SRC: run one target, print its TAP line(s).
one_target() {
    local n=$1 src=$2 name bin log seeds maxlen files count rc work execs cov art
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    bin=$DIR/fuzz_$name
    log=$DIR/logs-$MODE/$name.log
    seeds=$ROOT/tests/fuzz/corpus/$name
    mkdir -p "$seeds"
    if [ ! -x "$bin" ]; then
        echo "not ok $n - fuzz_$name: not built ($bin)"
        return
    fi
    maxlen=$(sed -n 's/^#define FUZZ_MAX_LEN *\([0-9]*\).*/\1/p' "$src")
    maxlen=${maxlen:-4096}
    if [ "$MODE" = replay ]; then
        files=$(find "$seeds" -type f | sort)
        count=$(echo "$files" | grep -c . || true)
        (cd "$DIR" && timeout 600 "$bin" -timeout=20 $files) >"$log" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            echo "ok $n - fuzz_$name: replayed $count inputs"
        else
            echo "not ok $n - fuzz_$name: replay failed (status $rc), log $log"
            grep -a -E 'ERROR|fuzz check|Running:' "$log" | tail -n 3 | sed 's/^/#   /'
        fi
        return
    fi
    work=$DIR/corpus/$name
    if [ "$MODE" = smoke ]; then
        work=$DIR/smoke-corpus/$name
        rm -rf "$work"
    fi
    mkdir -p "$work"
    (cd "$DIR" && timeout $((SECS + 120)) "$bin" -max_total_time="$SECS" \
        -max_len="$maxlen" -timeout=20 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$DIR/crashes/$name-" \
        "$work" "$seeds") >"$log" 2>&1
    rc=$?
    execs=$(LC_ALL=C sed -n 's/^stat::number_of_executed_units: *\([0-9]*\)/\1/p' "$log" | tail -n 1)
    execs=${execs:-$(LC_ALL=C sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)}
    execs=${execs:-0}
    cov=$(grep -a -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
    if [ $rc -eq 0 ]; then
        echo "ok $n - fuzz_$name: $execs executions in ${SECS}s, cov ${cov:-?}, no crash"
    else
        art=$(LC_ALL=C sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        echo "not ok $n - fuzz_$name: failed after $execs executions (status $rc); input: ${art:-none saved}; log: $log"
        grep -a -E 'ERROR: |SUMMARY|fuzz check failed|runtime error|stall:' "$log" | head -n 4 | sed 's/^/#   /'
        if [ -n "$art" ] && [ -f "$art" ]; then
            # The input, small enough to carry in a summary (CI keeps no
            # files), and whether it fails again alone: a finding that
            # does not may hang on timing or on what earlier inputs wrote.
            echo "#   input: $(head -c 600 "$art" | base64 -w 0)"
            (cd "$DIR" && timeout 120 "$bin" -timeout=20 "$art") >"$log.replay" 2>&1
            echo "#   replayed alone: status $?"
        fi
    fi
}

JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
TAP=$(mktemp -d)
trap 'rm -rf "$TAP"' EXIT
n=0
for src in "$ROOT"/tests/fuzz/fuzz_*.c; do
    name=$(basename "$src" .c)
    name=${name#fuzz_}
    if [ -n "${FUZZ_TARGETS:-}" ] &&
        ! echo ",$FUZZ_TARGETS," | grep -q ",$name,"; then
        continue
    fi
    n=$((n + 1))
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
        wait -n
    done
    one_target "$n" "$src" >"$TAP/$n" 2>&1 &
done
wait
failed=0
for i in $(seq "$n"); do
    cat "$TAP/$i"
    if grep -q '^not ok ' "$TAP/$i"; then
        failed=$((failed + 1))
    fi
done
if [ "$MODE" != smoke ]; then
    echo "fuzz $MODE: $n targets, $failed failed"
fi
[ "$failed" -eq 0 ]

#!/bin/bash
# run.sh BUILD_DIR - the benchmarks behind `make bench` (not part of make test).
#
# Runs each section in the order of SECTIONS and prints its table. A section
# is a function section_<name>; add one per benchmark program, after kv.
# Environment:
#   BENCH_ONLY=name[,name]  run only these sections
#   BENCH_JSON=1            sections that can print JSON do (one object each)
#   KV_BENCH_ARGS           extra arguments for kv-bench (e.g. "--quick")
# Exit status: non-zero if any section failed; the others still run.
set -u
B=${1:?usage: bench/run.sh BUILD_DIR}
B=$(cd "$B" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

SECTIONS=(kv compare raft3 registry sdk)

# kv: the MVCC store alone (consensus/kv on LMDB): puts per commit size and
# sync mode, point/prefix/historical ranges, open time and RSS at 100k and
# 1M keys. About 1-2 minutes on the 2-core machine.
section_kv() {
    local json=()
    [ "${BENCH_JSON:-0}" = 1 ] && json=(--json)
    # shellcheck disable=SC2086
    "$B/kv-bench" "${json[@]}" ${KV_BENCH_ARGS:-}
}

# compare: cairnd side by side with a real etcd 3.4 (bench/compare.sh): the
# table of figures and ratios, and the goals. About 15-20 minutes;
# COMPARE_* variables tune it (see the script), COMPARE_ARGS=--quick for a
# one-minute smoke run.
section_compare() {
    # shellcheck disable=SC2086
    bench/compare.sh "$B" ${COMPARE_ARGS:-}
}

# raft3: three Raft cores in one process on one thread, each with its own
# WAL on this disk, messages through the codec: commits/s at 64, 1, 16 and
# 256 proposals in flight. About 15 s; RAFT3_BENCH_ARGS adds arguments.
section_raft3() {
    local json=()
    [ "${BENCH_JSON:-0}" = 1 ] && json=(--json)
    # shellcheck disable=SC2086
    "$B/raft3-bench" "${json[@]}" ${RAFT3_BENCH_ARGS:-}
}

# registry: the service registry and config center side by side with etcd
# doing the same by hand (bench/registry.sh): registrations/s, heartbeats/s
# for 10k instances, push latency to 1k and 10k WebSocket subscribers,
# config publish-to-ack on one and three members. About 10-15 minutes;
# REGB_* variables tune it (see the script), REGISTRY_ARGS=--quick for a
# smoke run of 1-2 minutes.
section_registry() {
    # shellcheck disable=SC2086
    bench/registry.sh "$B" ${REGISTRY_ARGS:-}
}

# sdk: libcairn's put and range throughput against cairn-bench's on one
# cairnd (bench/sdk_compare.sh; goal >= 0.8x). About 1.5 minutes; SDK_*
# variables tune it.
section_sdk() {
    bench/sdk_compare.sh "$B"
}

failed=0
for s in "${SECTIONS[@]}"; do
    if [ -n "${BENCH_ONLY:-}" ] && [[ ",$BENCH_ONLY," != *",$s,"* ]]; then
        continue
    fi
    echo "== bench section: $s"
    start=$(date +%s)
    if "section_$s"; then
        echo "== $s done in $(($(date +%s) - start)) s"
    else
        echo "== $s FAILED (exit $?)"
        failed=1
    fi
    echo
done
exit $failed

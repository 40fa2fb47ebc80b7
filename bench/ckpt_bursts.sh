#!/bin/bash
# ckpt_bursts.sh - what a store checkpoint policy costs the disk under
# bursts of writes (BENCHMARKS.md, "Checkpoints chosen by the load").
#
# usage: bench/ckpt_bursts.sh BUILD MODE [BURST] [PAUSE_S] [BURSTS]
#   MODE: --store-checkpoint value (auto, copy, in-place)
#   BURST: random puts of 256 B per burst (default 3000)
#   PAUSE_S: seconds between bursts (default 5); BURSTS (default 10)
#
# One fresh cairnd on 127.0.0.1 loaded with 300,000 sequential keys of
# 256 B (a store of about 120 MB), 6 s of quiet, then BURSTS bursts of
# random puts over the same keys, PAUSE_S apart. Prints the bytes the
# process caused to be written (write_bytes of /proc/PID/io: a page
# rewritten while still dirty counts once, as it reaches the disk once),
# the checkpoints taken, and the data directory at the end. The process
# is stopped by PID and its directory removed.
set -u
B=${1:?usage: ckpt_bursts.sh BUILD MODE [BURST] [PAUSE_S] [BURSTS]}
mode=${2:?mode}
burst=${3:-3000}
pause=${4:-5}
n=${5:-10}
d=$(mktemp -d "${TMPDIR:-/tmp}/cairn-ckpt-bursts.XXXXXX")
pid=
cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$d"
}
trap cleanup EXIT
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
pport=$(free_port)
"$B/cairnd" --name a --data-dir "$d/data" \
    --listen-client-urls "http://127.0.0.1:$port" \
    --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$pport" \
    --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "a=http://127.0.0.1:$pport" \
    --store-checkpoint "$mode" >"$d/log" 2>&1 &
pid=$!
"$B/cairn-bench" ready --endpoints "127.0.0.1:$port" >/dev/null 2>&1 || sleep 2
"$B/cairn-bench" put --endpoints "127.0.0.1:$port" --total 300000 \
    --key-space 300000 --seq-keys --val-size 256 >/dev/null 2>&1
sleep 6
w0=$(awk '/^write_bytes/{print $2}' "/proc/$pid/io")
s0=$(grep -c "snapshot at" "$d/log")
for _ in $(seq "$n"); do
    "$B/cairn-bench" put --endpoints "127.0.0.1:$port" --total "$burst" \
        --key-space 300000 --val-size 256 >/dev/null 2>&1
    sleep "$pause"
done
w1=$(awk '/^write_bytes/{print $2}' "/proc/$pid/io")
s1=$(grep -c "snapshot at" "$d/log")
inplace=$(grep "snapshot at" "$d/log" | tail -n $((s1 - s0)) | grep -c "in place")
du=$(du -sb "$d/data" | cut -f1)
echo "$mode: $n bursts of $burst puts, $pause s apart: written $(((w1 - w0) >> 20)) MB," \
    "checkpoints $((s1 - s0)) ($inplace in place), data dir $((du >> 20)) MB"

#!/bin/sh
# deps.sh - install the Debian packages Cairn needs that are missing.
# Called by `make run`, `make test` and .ci/run. Says what it installs; uses
# sudo when not root. Does nothing when everything is present.
set -eu

# Build: compiler, pkg-config, the libraries (pkg-config names in README).
PKGS="build-essential pkg-config libuv1-dev liblmdb-dev libyaml-dev
libwebsockets-dev libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler
libssl-dev libjansson-dev libcmocka-dev"
# Tests: the reference etcd and real clients, etcd's protos, tools.
PKGS="$PKGS etcd-server etcd-client python3-etcd3 python3-etcd3gw
golang-etcd-server-dev lmdb-utils jq curl nghttp2-client procps iproute2 strace"
# Registry acceptance tests (tests/compat/registry_*.test): etcd's gRPC
# resolver on grpc-go, built with Debian's Go in GOPATH mode, and Prometheus
# with http_sd.
PKGS="$PKGS golang-go golang-google-grpc-dev prometheus"
# Fuzz targets (make fuzz, tests/fuzz/fuzz.test): clang and its libFuzzer
# runtime (libclang_rt.fuzzer in libclang-rt-dev -> libclang-rt-14-dev).
PKGS="$PKGS clang libclang-rt-dev"
# The container image (make image, tests/integration/image.test): umoci
# builds and unpacks OCI layouts without a container engine.
PKGS="$PKGS umoci"
# The chart test (tests/integration/helm_chart.test) reads helm's renders.
PKGS="$PKGS python3-yaml"
# The HTTP/2 rapid-reset test (tests/integration/h2_rapid_reset.test) frames
# HEADERS and RST_STREAM itself with python3-h2.
PKGS="$PKGS python3-h2"
# The console test (tests/integration/console.test) drives a headless
# browser (playwright-core from npm, no browser download).
PKGS="$PKGS chromium"
# ... and the same console in Firefox (tests/integration/console_firefox.test:
# puppeteer-core from npm over WebDriver BiDi, Debian's ESR build).
PKGS="$PKGS firefox-esr"
if [ "${1:-}" = "--build-only" ]; then
    PKGS=$(echo "$PKGS" | tr ' ' '\n' | grep -v -E '^(etcd-|python3-|golang-|lmdb-utils|jq|curl|nghttp2-client|iproute2|strace|prometheus|clang$|libclang-rt-dev$|umoci$|python3-yaml$|chromium$|firefox-esr$)' | tr '\n' ' ')
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing missing Debian packages:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
        echo "deps: not root and no sudo; install as root:$missing" >&2
        exit 1
    }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
i=0
until $SUDO apt-get install -y -q $missing; do
    i=$((i + 1))
    if [ $i -ge 20 ]; then
        echo "deps: apt-get install failed" >&2
        exit 1
    fi
    # A missing package list or a held dpkg lock: refresh and retry.
    $SUDO apt-get update -q || true
    sleep 5
done

#!/bin/bash
# lint.sh BUILD_DIR - formatting, include direction and Raft core purity.
#
# 1. Every C file is clang-formatted (.clang-format at the root).
# 2. Includes point downwards (ARCHITECTURE.md): base <- consensus <- config,
#    registry; sdk uses base and proto only; consensus/raft uses base only and
#    no libuv, LMDB, pthread, stdio or socket headers.
# 3. The Raft core's objects reference no symbol outside an allowlist (mem*
#    functions and base/), so it cannot do I/O or read a clock.
set -u
B=${1:-build/release}
cd "$(dirname "$0")/../.."
bad=0
say() { echo "lint: $*"; bad=1; }

files=$(git ls-files '*.c' '*.h' 2>/dev/null; git ls-files --others --exclude-standard '*.c' '*.h' 2>/dev/null)
files=$(echo "$files" | sort -u | grep -v '^build/')

# 1. formatting
for f in $files; do
    [ -f "$f" ] || continue
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || say "not clang-formatted: $f"
done

# 2. include direction
layer_of() {
    case $1 in
    base/*) echo 0 ;;
    proto/*) echo 0 ;;
    consensus/*) echo 1 ;;
    config/*) echo 2 ;;
    registry/*) echo 3 ;;
    sdk/*) echo 1 ;;
    *) echo 9 ;;
    esac
}
for f in $files; do
    [ -f "$f" ] || continue
    fl=$(layer_of "$f")
    [ "$fl" = 9 ] && continue # tests, bench: may include anything
    while read -r inc; do
        il=$(layer_of "$inc")
        [ "$il" = 9 ] && continue
        if [ "$il" -gt "$fl" ]; then
            say "$f includes $inc (a higher layer)"
        fi
        case $f in
        # cairnctl's offline snapshot commands (save's check, status,
        # restore: etcdctl's) read and write store files with the core's
        # own code, linked into the CLI, not into libcairn
        sdk/cairnctl/*) case $inc in base/* | proto/* | sdk/* | consensus/kv/kv.h | consensus/kv/bolt.h | consensus/kv/snapfile.h) ;; *) say "$f: cairnctl may include base/, proto/, sdk/ and the store's kv.h, bolt.h, snapfile.h: $inc" ;; esac ;;
        sdk/*) case $inc in base/* | proto/* | sdk/*) ;; *) say "$f: the SDK may include only base/ and proto/: $inc" ;; esac ;;
        config/*) case $inc in registry/*) say "$f includes $inc (config must not use registry)" ;; esac ;;
        esac
    done < <(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f")
done
for f in $(echo "$files" | grep '^consensus/raft/'); do
    [ -f "$f" ] || continue
    grep -n -E '^#include [<"](uv\.h|lmdb\.h|pthread\.h|stdio\.h|unistd\.h|time\.h|sys/|netinet/|arpa/|fcntl\.h|consensus/(kv|log|node|transport|watch|lease|auth)/)' "$f" |
        while read -r l; do echo "lint: impure include in $f: $l"; done | grep . && bad=1
done

# 3. Raft core purity, on the objects of a non-sanitizer build.
objs=$(ls "$B"/obj/consensus/raft/*.o 2>/dev/null)
if [ -n "$objs" ] && ! echo "$B" | grep -q -E 'address|undefined|thread'; then
    allow='^(mem(cpy|set|move|cmp|chr)|mem_(alloc|calloc|realloc|free|dup)|assert__fail|crc32c|crc32c_sw|prng_[a-z_]+|buf_[a-z_0-9]+|runs_[a-z_]+|varint_(put|get)|reader_[a-z_0-9]+|err_str|err_name|limits_[a-z_]+|raft_[a-z_0-9]+|__stack_chk_fail|_GLOBAL_OFFSET_TABLE_)$'
    for o in $objs; do
        for s in $(nm -u "$o" | awk '{print $2}'); do
            if ! echo "$s" | grep -q -E "$allow"; then
                # symbols defined by other raft objects are fine
                if ! nm --defined-only $objs 2>/dev/null | awk '{print $3}' | grep -qx "$s"; then
                    say "raft core references $s ($o)"
                fi
            fi
        done
    done
fi

if [ $bad -eq 0 ]; then
    echo "lint: ok"
fi
exit $bad

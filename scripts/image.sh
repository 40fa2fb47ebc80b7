#!/bin/bash
# image.sh BUILD_DIR OUT.tar - the cairn container image as an OCI archive,
# built from scratch with umoci: no container engine, no network.
# image.sh --rootfs BUILD_DIR DIR - only the root file system, into DIR
# (what Containerfile's build stage runs before `FROM scratch`).
#
# The rootfs holds exactly what the programs need, which `ldd` names:
#   /usr/local/bin/cairnd, /usr/local/bin/cairnctl
#   every shared library ldd lists for them (at the path ldd gives, the
#     symlink and the file it names), and the libwebsockets libuv plugin
#     (libwebsockets-evlib_uv.so), which lws dlopen()s at run time and ldd
#     therefore cannot see, with its own libraries
#   /etc/passwd, /etc/group (user and group cairn, 1000:1000),
#     /etc/nsswitch.conf ("hosts: files dns": glibc 2.36 has both built in),
#     an empty /etc/hosts and /etc/resolv.conf for engines to mount over
#   /var/lib/cairn, the data volume, owned by cairn; /tmp (1777)
# Config: ENTRYPOINT /usr/local/bin/cairnd, USER 1000:1000, EXPOSE 2379/tcp
# 2380/tcp, VOLUME /var/lib/cairn, ENV CAIRN_DATA_DIR=/var/lib/cairn,
# WORKDIR /var/lib/cairn. Containerfile describes the same image for users
# with a Docker or Podman engine.
#
# The result is an OCI image layout in a tar ("oci-archive"), tag
# cairn:<version>; `umoci unpack --image DIR:TAG` or `skopeo copy
# oci-archive:OUT.tar docker-daemon:cairn:TAG` read it. Files are owned by
# root except the data directory; every mtime is set to the commit's time so
# that two builds of one commit give the same layer.
set -euo pipefail
ROOTFS_ONLY=
if [ "${1:-}" = --rootfs ]; then
    ROOTFS_ONLY=1
    shift
fi
B=${1:?usage: image.sh [--rootfs] BUILD_DIR OUT.tar|DIR}
OUT=${2:?usage: image.sh [--rootfs] BUILD_DIR OUT.tar|DIR}
TAG=${IMAGE_TAG:-$(git describe --always --dirty 2>/dev/null || echo dev)}
UID_CAIRN=1000
PLUGIN_NAME=libwebsockets-evlib_uv.so

[ -n "$ROOTFS_ONLY" ] || command -v umoci >/dev/null || {
    echo "image: umoci is missing (scripts/deps.sh installs it)" >&2
    exit 1
}
for p in cairnd cairnctl; do
    [ -x "$B/$p" ] || { echo "image: $B/$p is not built" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/cairn-image.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
R=$WORK/rootfs
mkdir -p "$R/usr/local/bin" "$R/usr/lib" "$R/usr/lib64" "$R/usr/bin" \
    "$R/usr/sbin" "$R/etc" "$R/tmp" "$R/var/lib/cairn"
# Debian 12's merged /usr: ldd and PT_INTERP name /lib and /lib64 paths.
for d in bin lib lib64 sbin; do
    ln -s "usr/$d" "$R/$d"
done
# Debug sections off (3.9 MB of cairnd's 4.8), symbols kept for backtraces.
install -m 755 "$B/cairnd" "$B/cairnctl" "$R/usr/local/bin/"
strip --strip-debug "$R/usr/local/bin/cairnd" "$R/usr/local/bin/cairnctl"

# copy_lib PATH: the library at PATH (as ldd names it) and, when PATH is a
# symlink, the file it resolves to, both at their own paths.
copy_lib() {
    local p=$1 real
    real=$(readlink -f "$p")
    mkdir -p "$R$(dirname "$p")" "$R$(dirname "$real")"
    [ -e "$R$real" ] || cp -p "$real" "$R$real"
    if [ "$p" != "$real" ] && [ ! -e "$R$p" ]; then
        if [ "$(readlink -f "$(dirname "$p")")" = "$(dirname "$real")" ]; then
            ln -s "$(basename "$real")" "$R$p"
        else
            ln -s "$real" "$R$p"
        fi
    fi
}
# libs_of FILE: the absolute paths ldd prints (x => /path, and the loader).
libs_of() {
    ldd "$1" | awk '/=> \//{print $3} /^\t\/[^ ]+ \(/{print $1}'
}

plugin=""
for d in $(ldconfig -p 2>/dev/null | awk -F'=> ' '/libwebsockets\.so/{print $2}' |
    xargs -r -n1 dirname | sort -u) /usr/lib/x86_64-linux-gnu /usr/lib; do
    if [ -f "$d/$PLUGIN_NAME" ]; then
        plugin=$d/$PLUGIN_NAME
        break
    fi
done
[ -n "$plugin" ] || {
    echo "image: $PLUGIN_NAME not found (package libwebsockets-evlib-uv)" >&2
    exit 1
}
for f in "$B/cairnd" "$B/cairnctl" "$plugin"; do
    for l in $(libs_of "$f"); do
        copy_lib "$l"
    done
done
copy_lib "$plugin"
# The dynamic loader is also named by its canonical path in PT_INTERP.
interp=$(readelf -l "$B/cairnd" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
[ -n "$interp" ] && copy_lib "$interp"

cat >"$R/etc/passwd" <<EOF
root:x:0:0:root:/root:/usr/sbin/nologin
cairn:x:$UID_CAIRN:$UID_CAIRN:cairn:/var/lib/cairn:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
EOF
cat >"$R/etc/group" <<EOF
root:x:0:
cairn:x:$UID_CAIRN:
nogroup:x:65534:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$R/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$R/etc/hosts"
: >"$R/etc/resolv.conf"
chmod 1777 "$R/tmp"
chown "$UID_CAIRN:$UID_CAIRN" "$R/var/lib/cairn"
chmod 700 "$R/var/lib/cairn"
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
find "$R" -exec touch -h -d "@$epoch" {} +
if [ -n "$ROOTFS_ONLY" ]; then
    mkdir -p "$OUT"
    cp -a "$R/." "$OUT/"
    exit 0
fi

# The layout: new image, one layer from the rootfs, then the config.
L=$WORK/layout
umoci init --layout "$L"
umoci new --image "$L:$TAG"
umoci unpack --image "$L:$TAG" "$WORK/bundle" >/dev/null
rm -rf "$WORK/bundle/rootfs"
mv "$R" "$WORK/bundle/rootfs"
umoci repack --image "$L:$TAG" --history.created_by "scripts/image.sh" \
    "$WORK/bundle"
umoci config --image "$L:$TAG" \
    --config.entrypoint /usr/local/bin/cairnd \
    --config.user "$UID_CAIRN:$UID_CAIRN" \
    --config.exposedports 2379/tcp --config.exposedports 2380/tcp \
    --config.volume /var/lib/cairn \
    --config.workingdir /var/lib/cairn \
    --config.env CAIRN_DATA_DIR=/var/lib/cairn \
    --config.label org.opencontainers.image.title=cairn \
    --config.label "org.opencontainers.image.version=$TAG" \
    --os linux --architecture amd64 \
    --history.created_by 'ENTRYPOINT ["/usr/local/bin/cairnd"]'
umoci gc --layout "$L"
mkdir -p "$(dirname "$OUT")"
tar -C "$L" --sort=name --owner=0 --group=0 --numeric-owner \
    --mtime="@$epoch" -cf "$OUT.tmp" .
mv "$OUT.tmp" "$OUT"
echo "image: $OUT (tag $TAG, $(du -h "$OUT" | cut -f1))"

#!/usr/bin/env bash
# Builds pjproject 2.17 from the tarball in ../shared/vendor/ (or
# $CHORDSIP_VENDOR), once: static libraries, no audio device, no video, no
# SSL, G.711 only. The install is cached outside the clone, keyed by version,
# tarball checksum and build options (in $CHORDSIP_CACHE, default
# ~/.cache/chordsip, next to the Asterisk build), so a second run takes
# seconds. Then builds the pure P2P SIP user agent c-examples/pjsua-p2p/
# against it and the staged libchordsip (make install PREFIX=target/stage),
# with -Wall -Wextra -Werror:
#
#   scripts/pjsip-build.sh          -> target/pjsua-p2p/pjsua-p2p; prints the pjproject prefix
#   scripts/pjsip-build.sh --asan   -> also target/pjsua-p2p/pjsua-p2p-asan (ASan+UBSan)
#
# Nothing is downloaded: pjproject's configure and make only read the tarball.
# The first build takes under a minute on 2 cores (51 s here; c-examples/pjsua-p2p/README.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PJ_VERSION=2.17
VENDOR=${CHORDSIP_VENDOR:-$ROOT/../shared/vendor}
[ -d "$VENDOR" ] || VENDOR=/work/shared/vendor
PJ_TAR=$VENDOR/pjproject-$PJ_VERSION.tar.bz2
OUT=$ROOT/target/pjsua-p2p
STAGE=$ROOT/target/stage
ASAN=0
[ "${1:-}" = --asan ] && ASAN=1

# What pjproject is built with (part of the cache key).
CONFIGURE_OPTS=(--disable-shared --disable-sound --disable-video --disable-libyuv
    --disable-libwebrtc --disable-opencore-amr --disable-silk --disable-opus --disable-ssl
    --disable-sdl --disable-ffmpeg --disable-v4l2 --disable-openh264 --disable-vpx
    --disable-bcg729 --disable-lyra --disable-speex-aec --disable-speex-codec
    --disable-ilbc-codec --disable-gsm-codec --disable-g722-codec --disable-g7221-codec
    --disable-l16-codec --disable-libsrtp --disable-upnp --disable-pjsua2
    --disable-android-mediacodec --disable-libuuid)
PJ_CFLAGS="-O2 -g -fPIC"
# config_site.h: the select() ioqueue (the default on Linux) with room for
# the event fd beside PJSIP's own sockets; nothing else changed.
CONFIG_SITE='#define PJMEDIA_HAS_VIDEO 0
#define PJ_IOQUEUE_MAX_HANDLES 64'

[ -f "$PJ_TAR" ] || { echo "pjsip-build: $PJ_TAR is missing (see ../shared/FACTS.md)" >&2; exit 1; }
KEY=$( { sha256sum "$PJ_TAR" | cut -d' ' -f1; echo "${CONFIGURE_OPTS[*]}"; echo "$PJ_CFLAGS";
    echo "$CONFIG_SITE"; } | sha256sum | cut -c1-16)
CACHE=${CHORDSIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chordsip}
PREFIX=$CACHE/pjproject-$PJ_VERSION-$KEY
mkdir -p "$OUT"

build_pjproject() {
    [ -f "$PREFIX/build.ok" ] && return 0
    local work=$CACHE/pjproject-build-$PJ_VERSION log=$OUT/pjproject-build.log rc start
    rm -rf "$work" "$PREFIX"
    mkdir -p "$work"
    echo "pjsip-build: building pjproject $PJ_VERSION into $PREFIX (about a minute, once)"
    start=$(date +%s)
    tar -xjf "$PJ_TAR" -C "$work"
    local src=$work/pjproject-$PJ_VERSION
    set +e
    (
        set -e
        cd "$src"
        printf '%s\n' "$CONFIG_SITE" >pjlib/include/pj/config_site.h
        ./configure --prefix="$PREFIX" "${CONFIGURE_OPTS[@]}" CFLAGS="$PJ_CFLAGS" >"$log" 2>&1
        exec >>"$log" 2>&1
        make dep
        make -j"$(nproc)" lib
        make install
        [ -f "$PREFIX/lib/pkgconfig/libpjproject.pc" ]
    )
    rc=$?
    set -e
    [ $rc -eq 0 ] || { echo "pjsip-build: failed, the end of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }
    rm -rf "$work"
    echo "$(($(date +%s) - start))" >"$PREFIX/build-seconds"
    touch "$PREFIX/build.ok"
    echo "pjsip-build: pjproject built in $(cat "$PREFIX/build-seconds") s"
}

build_example() {
    [ -f "$STAGE/lib/pkgconfig/chordsip.pc" ] || {
        echo "pjsip-build: libchordsip is not staged (make install PREFIX=$STAGE)" >&2; exit 1; }
    local pc=$PREFIX/lib/pkgconfig:$STAGE/lib/pkgconfig
    PKG_CONFIG_PATH="$pc" make -s -C "$ROOT/c-examples/pjsua-p2p" BUILD="$OUT"
    if [ $ASAN -eq 1 ]; then
        PKG_CONFIG_PATH="$pc" make -s -C "$ROOT/c-examples/pjsua-p2p" BUILD="$OUT" asan
    fi
}

build_pjproject
build_example
echo "$PREFIX"

#!/usr/bin/env bash
# Builds the Kamailio module bindings/kamailio/chordsip against Kamailio 5.6.3's
# own source tree (Debian bookworm's source package, fetched with apt-get
# source into target/kamailio/; nothing of Kamailio is committed) and the
# staged libchordsip (make install PREFIX=target/stage).
#
#   scripts/kamailio-build.sh      -> target/kamailio/chordsip.so
#   scripts/kamailio-build.sh --package DESTDIR
#                                  -> target/kamailio/package/chordsip.so
#
# --package (scripts/packages.sh, the Debian package): the library is staged
# for /usr in DESTDIR (make install PREFIX=/usr LIBDIR=lib/x86_64-linux-gnu
# DESTDIR=...); the module is compiled and linked against that stage
# (pkg-config's sysroot) but carries no rpath: it loads the system's
# libchordsip.so.0. It is built in a module folder of its own, so that a
# test build of the staged module at the same time is not disturbed.
# The module must match the core's version and flags strings exactly
# (ksr_version_control), so the tree is configured like Debian's build:
# FLAVOUR=kamailio, LIBSSL_SET_MUTEX_SHARED=1 and dpkg-buildflags' hardening.
# The source package is fetched once per machine into a cache outside the
# clone, keyed by version ($CHORDSIP_CACHE, default ~/.cache/chordsip, as the
# Asterisk build), so a fresh clone needs no network for it; each clone
# unpacks and configures its own tree. apt's own configuration is left alone
# (a private deb-src list in the cache).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/target/kamailio
STAGE=$ROOT/target/stage
PACKAGE_ROOT=
if [ "${1:-}" = --package ]; then
    [ -n "${2:-}" ] || { echo "usage: $0 [--package DESTDIR]" >&2; exit 2; }
    PACKAGE_ROOT=$(cd "$2" && pwd)
fi
VERSION=5.6.3
SRC=$OUT/kamailio-$VERSION
CACHE=${CHORDSIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chordsip}
DL=$CACHE/kamailio-$VERSION-source
mkdir -p "$OUT"

# The Debian source package in $DL, fetched when it is not there yet.
download_source() {
    ls "$DL"/download/kamailio_"$VERSION"*.orig.tar.* >/dev/null 2>&1 && return 0
    # Fetched into a private directory and renamed into place: a clone
    # building at the same time sees the whole package or none.
    local tmp
    tmp=$(mktemp -d "$CACHE/.kamailio-fetch.XXXXXX" 2>/dev/null) ||
        { mkdir -p "$CACHE" && tmp=$(mktemp -d "$CACHE/.kamailio-fetch.XXXXXX"); }
    local apt=$tmp/apt
    mkdir -p "$apt/sources" "$apt/lists/partial" "$tmp/download"
    cat >"$apt/sources/debian-src.sources" <<SRCS
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRCS
    local opts=(-o "Dir::Etc::sourcelist=/dev/null" -o "Dir::Etc::sourceparts=$apt/sources"
                -o "Dir::State::Lists=$apt/lists" -o "Debug::NoLocking=1")
    echo "kamailio-build: fetching the kamailio $VERSION source package"
    apt-get "${opts[@]}" update -qq >"$OUT/apt-update.log" 2>&1 || {
        tail -n 20 "$OUT/apt-update.log"; rm -rf "$tmp"; return 1; }
    (cd "$tmp/download" && apt-get "${opts[@]}" source --download-only kamailio \
        >"$OUT/apt-source.log" 2>&1) || { tail -n 20 "$OUT/apt-source.log"; rm -rf "$tmp"; return 1; }
    ls "$tmp"/download/kamailio_"$VERSION"*.orig.tar.* >/dev/null 2>&1 || {
        echo "kamailio-build: the source package fetched is not kamailio $VERSION:"
        ls "$tmp/download"; rm -rf "$tmp"; return 1; }
    rm -rf "$DL" && mv "$tmp" "$DL"
}

# This clone's tree, unpacked from the cached package.
fetch_source() {
    [ -f "$SRC/src/Makefile" ] && return 0
    download_source || return 1
    local orig
    orig=$(ls "$DL"/download/kamailio_"$VERSION"*.orig.tar.* | head -n 1)
    tar -xf "$orig" -C "$OUT" "kamailio-$VERSION/src"
}

configure_tree() {
    [ -f "$SRC/src/config.mak" ] && [ -f "$SRC/.configured" ] && return 0
    local cppflags cflags ldflags
    cppflags=$(dpkg-buildflags --get CPPFLAGS 2>/dev/null || true)
    cflags=$(dpkg-buildflags --get CFLAGS 2>/dev/null || true)
    ldflags=$(dpkg-buildflags --get LDFLAGS 2>/dev/null || true)
    make -C "$SRC/src" cfg FLAVOUR=kamailio prefix=/usr cfg_target=/etc/kamailio/ \
        LIBDIR=lib/x86_64-linux-gnu LIBSSL_SET_MUTEX_SHARED=1 \
        CC_EXTRA_OPTS="$cppflags $cflags" LD_EXTRA_OPTS="$ldflags" >"$OUT/configure.log" 2>&1 || {
        tail -n 20 "$OUT/configure.log"; return 1; }
    touch "$SRC/.configured"
}

build_module() {
    [ -f "$STAGE/lib/pkgconfig/chordsip.pc" ] || {
        echo "kamailio-build: libchordsip is not staged (make install PREFIX=$STAGE)"; return 1; }
    export PKG_CONFIG_PATH=$STAGE/lib/pkgconfig
    local mod=$SRC/src/modules/chordsip
    rm -rf "$mod"
    mkdir -p "$mod"
    cp "$ROOT"/bindings/kamailio/chordsip/*.c "$ROOT"/bindings/kamailio/chordsip/Makefile "$mod/"
    make -C "$mod" >"$OUT/module.log" 2>&1 || { cat "$OUT/module.log"; return 1; }
    # a new file, not an overwrite: a running Kamailio may have the old one mapped
    cp "$mod/chordsip.so" "$OUT/chordsip.so.new" && mv -f "$OUT/chordsip.so.new" "$OUT/chordsip.so"
    echo "kamailio-build: $OUT/chordsip.so"
}

# The module of the Debian package: headers and library from the /usr stage
# in $PACKAGE_ROOT, no rpath (CHORDSIP_RPATH empty: the module Makefile).
build_package_module() {
    local pc=$PACKAGE_ROOT/usr/lib/x86_64-linux-gnu/pkgconfig
    [ -f "$pc/chordsip.pc" ] || {
        echo "kamailio-build: no /usr stage in $PACKAGE_ROOT (make install PREFIX=/usr LIBDIR=lib/x86_64-linux-gnu DESTDIR=...)"
        return 1; }
    local mod=$SRC/src/modules/chordsip_package dest=$OUT/package
    rm -rf "$mod"
    mkdir -p "$mod" "$dest"
    cp "$ROOT"/bindings/kamailio/chordsip/*.c "$ROOT"/bindings/kamailio/chordsip/Makefile "$mod/"
    PKG_CONFIG_PATH='' PKG_CONFIG_LIBDIR=$pc PKG_CONFIG_SYSROOT_DIR=$PACKAGE_ROOT \
        make -C "$mod" CHORDSIP_RPATH= >"$dest/module.log" 2>&1 || { cat "$dest/module.log"; return 1; }
    if readelf -d "$mod/chordsip.so" | grep -qE 'RPATH|RUNPATH'; then
        echo "kamailio-build: the package module carries an rpath:"
        readelf -d "$mod/chordsip.so" | grep -E 'RPATH|RUNPATH'
        return 1
    fi
    cp "$mod/chordsip.so" "$dest/chordsip.so.new" && mv -f "$dest/chordsip.so.new" "$dest/chordsip.so"
    echo "kamailio-build: $dest/chordsip.so"
}

fetch_source
configure_tree
if [ -n "$PACKAGE_ROOT" ]; then
    build_package_module
else
    build_module
fi

#!/usr/bin/env bash
# Builds chordsip's four Debian packages into target/debian/ and prints their
# paths, one per line:
#   libchordsip0              libchordsip.so.0 (the soname build.rs gives the
#                             cdylib) in /usr/lib/x86_64-linux-gnu, ldconfig trigger
#   libchordsip-dev           chordsip.h, libchordsip.a, the .so link, chordsip.pc
#   chordsip                  the CLI, chordsip@.service, /etc/chordsip/default.conf
#   kamailio-chordsip-module  Kamailio 5.6.3's chordsip.so, linked to the
#                             system's libchordsip.so.0 (no rpath)
# Packaging metadata: [package.metadata.deb] at the end of Cargo.toml (the
# chordsip package; variants lib, dev, kamailio) and packaging/.
#
# cargo-deb comes from crates.io (cargo install --version ... --locked), once
# per machine, into a cache outside the clone keyed by its version:
# $CHORDSIP_CACHE/cargo-deb-VERSION (CHORDSIP_CACHE default
# ${XDG_CACHE_HOME:-~/.cache}/chordsip); later runs and other clones reuse it.
# The release build is the one the tests share (cargo build --release: a
# no-op when it is current). The library is staged for /usr with the
# Makefile's install target (its soname links and chordsip.pc) in
# target/package-stage and stripped there; the module is built against that
# stage by scripts/kamailio-build.sh --package (Kamailio's source package,
# cached the same way).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO_DEB_VERSION=3.8.0
CACHE=${CHORDSIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chordsip}
CARGO_DEB_ROOT=$CACHE/cargo-deb-$CARGO_DEB_VERSION
CARGO_DEB=$CARGO_DEB_ROOT/bin/cargo-deb
STAGE=$ROOT/target/package-stage
OUT=$ROOT/target/debian
LOG=$ROOT/target/packages.log
LIBDIR=lib/x86_64-linux-gnu
PACKAGES=(libchordsip0 libchordsip-dev chordsip kamailio-chordsip-module)

say() { echo "packages: $*" >&2; }
die() { say "$*"; exit 1; }
mkdir -p "$ROOT/target"
: >"$LOG"

# run WHAT CMD...: CMD with its output in $LOG, shown when it fails.
run() {
    local what=$1; shift
    echo "== $what: $*" >>"$LOG"
    "$@" >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2; die "$what failed (log: $LOG)"; }
}

[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] ||
    die "the packages name /usr/lib/x86_64-linux-gnu: build them on amd64"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# cargo-deb substitutes nothing in depends: the library's exact version is
# written in Cargo.toml and must follow the crate's.
grep -qF "depends = \"libchordsip0 (= $VERSION-1)\"" Cargo.toml ||
    die "Cargo.toml: libchordsip-dev must depend on libchordsip0 (= $VERSION-1) (the crate's version)"
grep -qF "libchordsip0 (>= $VERSION)" Cargo.toml ||
    die "Cargo.toml: kamailio-chordsip-module must depend on libchordsip0 (>= $VERSION)"

# cargo-deb, installed once into the cache (a private root renamed into
# place: a clone installing at the same time sees all of it or none).
if [ ! -x "$CARGO_DEB" ]; then
    say "installing cargo-deb $CARGO_DEB_VERSION from crates.io into $CARGO_DEB_ROOT"
    mkdir -p "$CACHE"
    tmp=$(mktemp -d "$CACHE/.cargo-deb-install.XXXXXX")
    if ! cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --root "$tmp" \
        --target-dir "$tmp/build" >>"$LOG" 2>&1; then
        tail -n 30 "$LOG" >&2
        rm -rf "$tmp"
        die "cargo install cargo-deb failed (log: $LOG)"
    fi
    rm -rf "$tmp/build"
    if [ ! -x "$CARGO_DEB" ]; then
        rm -rf "$CARGO_DEB_ROOT" && mv "$tmp" "$CARGO_DEB_ROOT"
    else
        rm -rf "$tmp"
    fi
fi
"$CARGO_DEB" --version >>"$LOG" 2>&1 || die "$CARGO_DEB does not run"

run "release build" cargo build --release --quiet --lib --bin chordsip

# The library for /usr, as `make install` lays it out.
rm -rf "$STAGE"
run "stage" make -s install PREFIX=/usr LIBDIR="$LIBDIR" DESTDIR="$STAGE"
SO=$STAGE/usr/$LIBDIR/libchordsip.so.$VERSION
if [ ! -f "$SO" ] || [ ! -L "$STAGE/usr/$LIBDIR/libchordsip.so.0" ]; then
    die "make install staged no libchordsip.so.$VERSION + .so.0"
fi
soname=$(readelf -d "$SO" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libchordsip.so.0 ] || die "libchordsip.so's soname is '$soname', the package is libchordsip0"
grep -qx "libdir=\${prefix}/$LIBDIR" "$STAGE/usr/$LIBDIR/pkgconfig/chordsip.pc" || die "chordsip.pc: wrong libdir"
# as dh_strip: the shared library without debug info and symbols it does not
# export, the static one without debug info
run "strip" strip --remove-section=.comment --remove-section=.note --strip-unneeded "$SO"
run "strip" strip --strip-debug "$STAGE/usr/$LIBDIR/libchordsip.a"

# cargo-deb's $auto depends only look at what Cargo built: the library's are
# written in Cargo.toml, and must be what dpkg-shlibdeps finds.
if command -v dpkg-shlibdeps >/dev/null; then
    shl=$(mktemp -d)
    mkdir -p "$shl/debian" && : >"$shl/debian/control"
    want=$(cd "$shl" && dpkg-shlibdeps -O "$SO" 2>>"$LOG" | sed -n 's/^shlibs:Depends=//p')
    rm -rf "$shl"
    grep -qF "depends = \"$want\"" Cargo.toml ||
        die "Cargo.toml: libchordsip0 must depend on \"$want\" (dpkg-shlibdeps)"
fi

# The Kamailio module against the stage, no rpath.
run "kamailio module" ./scripts/kamailio-build.sh --package "$STAGE"
MODULE=$ROOT/target/kamailio/package/chordsip.so
run "strip" strip --remove-section=.comment --remove-section=.note --strip-unneeded "$MODULE"
if readelf -d "$MODULE" | grep -qE 'RPATH|RUNPATH'; then die "$MODULE has an rpath"; fi
readelf -d "$MODULE" | grep -q 'NEEDED.*\[libchordsip\.so\.0\]' || die "$MODULE does not link libchordsip.so.0"

mkdir -p "$OUT"
for p in "${PACKAGES[@]}"; do rm -f "$OUT/${p}_"*.deb; done
# deb VARIANT-ARGS...: one package; its path on stdout.
deb() {
    local line
    echo "== cargo-deb $*" >>"$LOG"
    line=$("$CARGO_DEB" --no-build --strip --output "$OUT" "$@" 2>>"$LOG") ||
        { tail -n 30 "$LOG" >&2; die "cargo-deb $* failed (log: $LOG)"; }
    echo "$line" >>"$LOG"
    line=$(tail -n 1 <<<"$line")
    [ -f "$line" ] || die "cargo-deb $* said '$line', not a package path"
    echo "$line"
}
deb --variant lib --multiarch same
deb --variant dev --multiarch same
deb
deb --variant kamailio

#!/usr/bin/env bash
# Builds Asterisk 22.10.1 (with its bundled pjproject 2.17) from the tarballs
# in ../shared/vendor/ (or $CHORDSIP_VENDOR), once: the install is cached
# outside the clone, keyed by version, tarball checksums and module list, so a
# second run takes seconds. Then builds the two chordsip modules against it
# and the staged libchordsip:
#
#   scripts/asterisk-build.sh   -> prints the prefix; modules in target/asterisk/
#
# Nothing is downloaded: configure gets the pjproject tarball from a private
# externals cache and verifies its MD5.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VERSION=22.10.1
PJ_VERSION=2.17
VENDOR=${CHORDSIP_VENDOR:-$ROOT/../shared/vendor}
[ -d "$VENDOR" ] || VENDOR=/work/shared/vendor
AST_TAR=$VENDOR/asterisk-$VERSION.tar.gz
PJ_TAR=$VENDOR/pjproject-$PJ_VERSION.tar.bz2
OUT=$ROOT/target/asterisk
STAGE=$ROOT/target/stage
MODULES="OPTIONAL_API res_pjproject res_pjsip res_pjsip_session res_pjsip_pubsub chan_pjsip
 res_pjsip_registrar res_pjsip_endpoint_identifier_user res_pjsip_authenticator_digest
 res_pjsip_outbound_authenticator_digest res_pjsip_sdp_rtp res_pjsip_path res_pjsip_nat
 res_pjsip_exten_state res_rtp_asterisk res_timing_timerfd res_sorcery_config
 res_sorcery_memory res_sorcery_astdb pbx_config app_dial app_echo app_playback
 func_devstate func_db func_pjsip_endpoint bridge_simple bridge_native_rtp codec_ulaw format_wav format_pcm
 res_musiconhold"

for f in "$AST_TAR" "$PJ_TAR"; do
    [ -f "$f" ] || { echo "asterisk-build: $f is missing (see ../shared/FACTS.md)" >&2; exit 1; }
done
KEY=$( { sha256sum "$AST_TAR" "$PJ_TAR" | cut -d' ' -f1; echo "$MODULES"; } | sha256sum | cut -c1-16)
CACHE=${CHORDSIP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chordsip}
PREFIX=$CACHE/asterisk-$VERSION-$KEY
mkdir -p "$OUT"

build_asterisk() {
    [ -f "$PREFIX/build.ok" ] && return 0
    local work=$CACHE/asterisk-build-$VERSION
    rm -rf "$work" "$PREFIX"
    mkdir -p "$work/externals"
    echo "asterisk-build: building Asterisk $VERSION into $PREFIX (a few minutes, once)"
    cp "$PJ_TAR" "$work/externals/"
    tar -xzf "$AST_TAR" -C "$work"
    local src=$work/asterisk-$VERSION log=$OUT/asterisk-build.log rc
    # errexit holds inside the subshell only when it is not part of an || list
    set +e
    (
        set -e
        cd "$src"
        ./configure --prefix="$PREFIX" --with-pjproject-bundled \
            --with-externals-cache="$work/externals" --without-x11 --without-gtk2 >"$log" 2>&1
        exec >>"$log" 2>&1
        make menuselect.makeopts
        # --disable-all also turns off the sound downloads (no network here) and
        # OPTIONAL_API, which must come back.
        local enable=()
        for m in $MODULES; do enable+=(--enable "$m"); done
        menuselect/menuselect --disable-all "${enable[@]}" menuselect.makeopts
        make -j"$(nproc)"
        make install
        make install-headers
        # Out-of-tree res_pjsip modules need pjproject's headers as Asterisk
        # built them (config_site.h, os_auto.h).
        mkdir -p "$PREFIX/include/pjproject"
        for d in pjlib pjlib-util pjnath pjmedia pjsip; do
            cp -a third-party/pjproject/source/$d/include/. "$PREFIX/include/pjproject/"
        done
        # and the defines Asterisk compiles them with
        sed -n 's/^PJPROJECT_INCLUDE=//p' makeopts | tr ' ' '\n' | grep '^-D' \
            >"$PREFIX/include/pjproject/cflags"
        [ -x "$PREFIX/sbin/asterisk" ]
    )
    rc=$?
    set -e
    [ $rc -eq 0 ] || { echo "asterisk-build: failed, the end of $log:" >&2; tail -n 30 "$log" >&2; exit 1; }
    rm -rf "$work"
    touch "$PREFIX/build.ok"
}

build_modules() {
    [ -f "$STAGE/lib/pkgconfig/chordsip.pc" ] || {
        echo "asterisk-build: libchordsip is not staged (make install PREFIX=$STAGE)" >&2; exit 1; }
    local cflags libs src=$ROOT/bindings/asterisk pjflags
    mapfile -t pjflags <"$PREFIX/include/pjproject/cflags"
    cflags=$(PKG_CONFIG_PATH=$STAGE/lib/pkgconfig pkg-config --cflags chordsip)
    libs=$(PKG_CONFIG_PATH=$STAGE/lib/pkgconfig pkg-config --libs chordsip)
    local common=(-O2 -g -Wall
        -Werror -shared -fPIC -D_GNU_SOURCE "${pjflags[@]}" -I"$PREFIX/include"
        -I"$PREFIX/include/pjproject" -I"$src")
    for m in res_sorcery_chordsip res_pjsip_chordsip; do
        # shellcheck disable=SC2086
        cc "${common[@]}" -DAST_MODULE=\"$m\" -DAST_MODULE_SELF_SYM=__internal_${m}_self \
            $cflags "$src/$m.c" -o "$OUT/$m.so" $libs -Wl,-rpath,"$STAGE/lib"
    done
}

build_asterisk
build_modules
echo "$PREFIX"

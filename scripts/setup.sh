#!/usr/bin/env bash
# Installs what building and testing chordsip needs on a fresh Debian machine.
# Idempotent: skips what is already there.
# What to install, by group (arguments; none means every group, for
# scripts/test.sh):
#   build     a C toolchain for cargo's linker and the C API (gcc, make, pkg-config)
#   c         valgrind for the C API tests (AddressSanitizer comes with gcc)
#   sip       SIPp
#   kamailio  Debian's kamailio with app_python3, and what building the module needs
#   dns       Knot DNS and kdig
#   asterisk  the headers and tools Asterisk's configure needs
#   nat       nftables and coturn
#   python    python3 with venv
#   all       every group
# The demo (scripts/demo.sh) asks for `build` only.
set -euo pipefail
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }
groups=("$@")
[ ${#groups[@]} -eq 0 ] && groups=(all)
want() {
    local g
    for g in "${groups[@]}"; do [ "$g" = all ] || [ "$g" = "$1" ] && return 0; done
    return 1
}
for g in "${groups[@]}"; do
    case "$g" in
        all | build | c | sip | kamailio | dns | asterisk | nat | python) ;;
        -h | --help) usage; exit 0 ;;
        *) echo "setup: unknown group '$g' (want: build c sip kamailio dns asterisk nat python all)" >&2; exit 2 ;;
    esac
done
need_apt=()
if want build || want c || want kamailio || want asterisk; then
    command -v cc >/dev/null || need_apt+=(gcc libc6-dev)
    command -v make >/dev/null || need_apt+=(make)
    command -v pkg-config >/dev/null || need_apt+=(pkg-config)
fi
# C API tests run under valgrind; AddressSanitizer's runtime comes with gcc.
if want c; then command -v valgrind >/dev/null || need_apt+=(valgrind); fi
# SIP tests drive real SIP software: SIPp.
if want sip; then command -v sipp >/dev/null || need_apt+=(sip-tester); fi
# Kamailio tests: Debian's kamailio (5.6.3) with app_python3 for KEMI;
# building the module needs dpkg-buildflags (dpkg-dev) and the archive keyring
# (apt-get source).
new_kamailio=
if want kamailio; then
    command -v kamailio >/dev/null || { need_apt+=(kamailio); new_kamailio=1; }
    [ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/app_python3.so ] || need_apt+=(kamailio-python3-modules)
    command -v dpkg-buildflags >/dev/null || need_apt+=(dpkg-dev)
    [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need_apt+=(debian-archive-keyring)
fi
# DNS publisher tests (tests/dns_knot.rs) run Knot DNS and query it with kdig
# (or dig); knotd lives in /usr/sbin, off some users' PATH.
if want dns; then
    { command -v knotd >/dev/null || [ -x /usr/sbin/knotd ]; } || need_apt+=(knot)
    { command -v kdig >/dev/null || command -v dig >/dev/null; } || need_apt+=(knot-dnsutils)
fi
# Asterisk tests build Asterisk 22.10.1 from ../shared/vendor/
# (scripts/asterisk-build.sh): its configure needs these headers and tools.
if want asterisk; then
    for p in libedit-dev libjansson-dev libsqlite3-dev uuid-dev libxml2-dev libssl-dev \
        libncurses-dev bzip2 patch wget g++; do
        dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
    done
fi
# NAT tests (scripts/nat-tests.sh): masquerade in network namespaces
# (nftables) and a TURN media relay (coturn). Its service is not started:
# the tests run their own turnserver inside a namespace.
if want nat; then
    command -v nft >/dev/null || need_apt+=(nftables)
    { command -v turnserver >/dev/null || [ -x /usr/bin/turnserver ]; } || need_apt+=(coturn)
fi
# Python binding tests use a venv of the python3 on PATH.
if want python; then
    command -v python3 >/dev/null || need_apt+=(python3)
    if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        need_apt+=(python3-venv)
    fi
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # No package's service starts here (coturn's would listen on every
    # address): policy-rc.d refuses, for this install only.
    policy=/usr/sbin/policy-rc.d
    own_policy=
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    apt-get install -y -qq "${need_apt[@]}"
    if [ -n "$own_policy" ]; then rm -f "$policy"; fi
fi
# Debian enables kamailio.service when it installs kamailio: at the next boot
# it would hold UDP 5060 on every address, which the hybrid tests bind on
# 127.0.0.21-25. A kamailio this script installed is masked where systemd
# runs; one the machine already had is left alone (tests/sip/lib.sh's
# sip_ports_free names it if it is in the way).
if [ -n "$new_kamailio" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl mask --now kamailio.service >/dev/null 2>&1 &&
        echo "setup: masked kamailio.service (installed for the tests; it would hold UDP 5060)." \
            "'systemctl unmask kamailio' undoes it." >&2
fi
if ! command -v cargo >/dev/null; then
    echo "setup: cargo (Rust stable) is required; install it with rustup" >&2
    exit 1
fi

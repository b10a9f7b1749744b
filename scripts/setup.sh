#!/usr/bin/env bash
# Installs what building and testing chordsip needs on a fresh Debian machine.
# Idempotent: skips what is already there.
set -euo pipefail
need_apt=()
command -v cc >/dev/null || need_apt+=(gcc libc6-dev)
command -v make >/dev/null || need_apt+=(make)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
# C API tests run under valgrind; AddressSanitizer's runtime comes with gcc.
command -v valgrind >/dev/null || need_apt+=(valgrind)
# SIP tests drive real SIP software: SIPp.
command -v sipp >/dev/null || need_apt+=(sip-tester)
# Kamailio tests: Debian's kamailio (5.6.3) with app_python3 for KEMI;
# building the module needs dpkg-buildflags (dpkg-dev) and the archive keyring
# (apt-get source).
command -v kamailio >/dev/null || need_apt+=(kamailio)
[ -e /usr/lib/x86_64-linux-gnu/kamailio/modules/app_python3.so ] || need_apt+=(kamailio-python3-modules)
command -v dpkg-buildflags >/dev/null || need_apt+=(dpkg-dev)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need_apt+=(debian-archive-keyring)
# DNS publisher tests (tests/dns_knot.rs) run Knot DNS and query it with kdig
# (or dig); knotd lives in /usr/sbin, off some users' PATH.
{ command -v knotd >/dev/null || [ -x /usr/sbin/knotd ]; } || need_apt+=(knot)
{ command -v kdig >/dev/null || command -v dig >/dev/null; } || need_apt+=(knot-dnsutils)
# Asterisk tests build Asterisk 22.10.1 from ../shared/vendor/
# (scripts/asterisk-build.sh): its configure needs these headers and tools.
for p in libedit-dev libjansson-dev libsqlite3-dev uuid-dev libxml2-dev libssl-dev \
    libncurses-dev bzip2 patch wget g++; do
    dpkg -s "$p" >/dev/null 2>&1 || need_apt+=("$p")
done
# NAT tests (scripts/nat-tests.sh): masquerade in network namespaces
# (nftables) and a TURN media relay (coturn). Its service is not started:
# the tests run their own turnserver inside a namespace.
command -v nft >/dev/null || need_apt+=(nftables)
{ command -v turnserver >/dev/null || [ -x /usr/bin/turnserver ]; } || need_apt+=(coturn)
# Python binding tests use a venv of the python3 on PATH.
command -v python3 >/dev/null || need_apt+=(python3)
if command -v python3 >/dev/null && ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    need_apt+=(python3-venv)
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
if ! command -v cargo >/dev/null; then
    echo "setup: cargo (Rust stable) is required; install it with rustup" >&2
    exit 1
fi

#!/usr/bin/env bash
# Runs every test: formatting, lints, unit/property tests, the in-memory
# network suite, real UDP nodes, node processes, the C header drift check,
# the C API tests (ASan+UBSan, valgrind) and examples, pure P2P SIP user
# agents on PJSIP's pjsua-lib (plain and ASan), the Python binding's
# tests, SIPp through the C SIP proxy and through Kamailio with the module
# and with KEMI, the Debian packages (installed, used, removed), Asterisk
# servers sharing PJSIP contacts through the overlay,
# Kamailio servers publishing themselves in DNS for PJSUA2
# agents (hybrid), and a demo run.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export CARGO_TERM_COLOR=never
# Every suite's skips, for the last line (scripts/lib/skip.sh; under CI=true a
# skip not named in CHORDSIP_ALLOW_SKIP fails its suite).
. ./scripts/lib/skip.sh
mkdir -p target
export CHORDSIP_SKIP_LOG=$PWD/target/test-skips.log
: >"$CHORDSIP_SKIP_LOG"
step() { echo; echo "=== $* ==="; }
# port_suite SCRIPT: a suite whose servers bind ports picked free at its
# start (tests/sip/lib.sh's pick_ports). Exit 75 means another process took
# one before our server bound it (EADDRINUSE): the suite runs again with a
# new range, at most twice more. Any other failure is final.
port_suite() {
    local rc tries=0
    while :; do
        set +e
        "$@"
        rc=$?
        set -e
        if [ "$rc" -ne 75 ] || [ $tries -ge 2 ]; then
            return "$rc"
        fi
        tries=$((tries + 1))
        echo "=== $1: a port was taken (EADDRINUSE); again with a new port range ($tries of 2)"
    done
}
step "format"
cargo fmt --check
step "clippy"
cargo clippy --all-targets --release --quiet -- -D warnings
step "module dependencies (pure core knows nothing of SIP, nodes, clients or the C ABI)"
./scripts/check-deps.sh
step "set-up script: groups, refusals, a held SIP port named"
./scripts/setup-checks.sh
step "tests (release build: the network suites run thousands of nodes)"
# Built first, then run under an overall limit. cargo names a test still
# running after 60 s; one that never finished is named when the limit hits.
cargo test --release --no-run --quiet
set +e
timeout -k 10 "${CHORDSIP_CARGO_TEST_TIMEOUT:-1800}" cargo test --release -- --test-threads 2 2>&1 |
    tee target/cargo-test.log
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" -ne 0 ]; then
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
        hung=$(sed -n 's/^test \(.*\) has been running for over 60 seconds$/\1/p' target/cargo-test.log |
            sort -u | while read -r t; do
                grep -qE "^test $t \.\.\. " target/cargo-test.log || echo "$t"
            done)
        echo "cargo test did not finish within ${CHORDSIP_CARGO_TEST_TIMEOUT:-1800} s; still running: ${hung:-(none named)}"
    fi
    exit "$rc"
fi
step "C header matches src/ffi (cbindgen drift check)"
./scripts/gen-header.sh --verify
step "C API tests under ASan+UBSan and valgrind; C examples"
./scripts/c-tests.sh
step "PJSIP in C: three pjsua-lib agents driving chordsip from PJSIP's ioqueue call each other, one killed; plain and ASan (pjproject built once, cached)"
port_suite ./scripts/pjsua-p2p-tests.sh
step "Python binding (pytest)"
./scripts/python-tests.sh
step "charts: benchmark curves to CSV and PNG at small sizes, numbers and images checked"
./scripts/plots-tests.sh
step "SIP: three sip-proxy processes driven by SIPp"
port_suite ./scripts/sip-tests.sh
step "Kamailio: three servers with the chordsip module, and KEMI, driven by SIPp"
port_suite ./scripts/kamailio-tests.sh
step "Debian packages: built, installed, a C program through pkg-config, Kamailio loading the packaged module, the chordsip@ unit, removed (root only)"
port_suite ./scripts/package-tests.sh
step "Asterisk: three servers whose PJSIP contacts live in the overlay (bindings/asterisk), driven by SIPp"
port_suite ./scripts/asterisk-tests.sh
step "hybrid: five Kamailio servers in a one-hop overlay published in Knot DNS; PJSUA2 agents that know only the domain; SIPp; two servers killed"
port_suite ./scripts/hybrid-tests.sh
step "network namespaces: six hosts, a 3/3 split and heal (root only)"
./scripts/netns-tests.sh
step "NAT: PJSUA2 agents behind two masquerading routers; relays found by ability; a call relayed by TURN (root only)"
./scripts/nat-tests.sh
step "demo smoke run"
./target/release/chordsip demo --nodes 12 --values 100
echo
skip_summary
echo "all tests passed"

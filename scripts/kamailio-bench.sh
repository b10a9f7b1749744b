#!/usr/bin/env bash
# Kamailio benchmark, side by side in one run, same SIPp scenarios
# (tests/sip/register.xml, uac-call.xml), same cfg (bindings/kamailio/kamailio.cfg):
#   usrloc     one Kamailio with its own in-memory usrloc (-A WITH_USRLOC);
#   chordsip   one Kamailio with the chordsip module (an overlay of one);
#   overlay3   three Kamailio servers in one chordsip overlay: REGISTER at
#              the first, calls through the second to users registered at the first.
# For each setup, REGISTER/s then calls/s (INVITE/200/ACK/BYE/200) rate by
# rate, each for BENCH_SECONDS (10) s, until a rate fails (>=1% failed, SIPp
# below 95% of the rate, or a p99 over 500 ms); see `bench` in tests/sip/lib.sh.
#
#   scripts/kamailio-bench.sh
#
# Environment: BENCH_SECONDS, BENCH_SETUPS ("usrloc chordsip overlay3"),
# BENCH_REG_RATES, BENCH_CALL_RATES, KAMAILIO_WORKERS (UDP workers, 16: a
# chordsip worker waits for each overlay round trip, so more workers keep the
# cores busy; the same number for every setup),
# SIP_TEST_PORT_BASE. Output in target/kamailio-bench/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_PER_RATE=${BENCH_SECONDS:-10}
SETUPS=${BENCH_SETUPS:-"usrloc chordsip overlay3"}
REG_RATES=${BENCH_REG_RATES-"1000 2000 4000 6000 8000 9000 10000 11000 12000 14000"}
CALL_RATES=${BENCH_CALL_RATES-"500 1000 1500 2000 2250 2500 2750"}
WORKERS=${KAMAILIO_WORKERS:-16}
export KAMAILIO_SHM=1024
DOMAIN=example.com
STAGE=$ROOT/target/stage
OUT=$ROOT/target/kamailio-bench
SIP=$ROOT/tests/sip
BIN=$OUT/bin
MODULE=$ROOT/target/kamailio/chordsip.so
CFG=$ROOT/bindings/kamailio/kamailio.cfg
failed=()
# shellcheck source=tests/sip/lib.sh
. "$SIP/lib.sh"

./scripts/setup.sh || exit 1
rm -rf "$OUT"
mkdir -p "$OUT"
stage_and_build || exit 1
./scripts/kamailio-build.sh || exit 1
pick_ports || exit 1
UAS_PORT=$((BASE + 20)) UAC_PORT=$((BASE + 21))

# kamailio_up NAME SIP_PORT [-A DEFINE...]: one server of the setup.
kamailio_up() {
    local name=$1 port=$2; shift 2
    start_kamailio "$name" "$CFG" "$port" -A "WORKERS=$WORKERS" "$@" || return 1
    local v=PID_$name
    setup_pids+=("${!v}")
}

start_uas "$UAS_PORT" || exit 1
setup_pids=()
echo "== $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1); $(kamailio -v | head -n 1 | sed 's/^version: //'), $WORKERS UDP workers; $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
summary=()
for setup in $SETUPS; do
    case $setup in
    usrloc)
        kamailio_up usrloc "$BASE" -A WITH_USRLOC || exit 1
        reg=127.0.0.1:$BASE call=127.0.0.1:$BASE ;;
    chordsip)
        kamailio_up chordsip "$BASE" -A "OVERLAY_LISTEN=\"127.0.0.1:$((BASE + 10))\"" || exit 1
        wait_ring_one=$("$ROOT/target/release/chordsip" ring --via "127.0.0.1:$((BASE + 10))" --timeout-ms 2000 --client-key-file "$(client_key_file)" | head -n 2 | tail -n 1)
        echo "   overlay node: $wait_ring_one"
        reg=127.0.0.1:$BASE call=127.0.0.1:$BASE ;;
    overlay3)
        # One registrar: the servers share a writer key, so each routes to
        # the bindings the others stored (only trusted writers are routed to).
        rm -f "$OUT/writer.key"
        "$ROOT/target/release/chordsip" keygen --out "$OUT/writer.key" 2>/dev/null || exit 1
        wkey=(-A "WRITER_KEY_FILE=\"$OUT/writer.key\"")
        kamailio_up k1 "$BASE" -A "OVERLAY_LISTEN=\"127.0.0.1:$((BASE + 10))\"" "${wkey[@]}" || exit 1
        for i in 1 2; do
            kamailio_up "k$((i + 1))" $((BASE + i)) -A "OVERLAY_LISTEN=\"127.0.0.1:$((BASE + 10 + i))\"" \
                -A "OVERLAY_BOOTSTRAP=\"127.0.0.1:$((BASE + 10))\"" "${wkey[@]}" || exit 1
        done
        wait_ring $((BASE + 10)) $((BASE + 11)) $((BASE + 12)) || exit 1
        reg=127.0.0.1:$BASE call=127.0.0.1:$((BASE + 1)) ;;
    *) echo "unknown setup $setup"; exit 1 ;;
    esac
    echo "== $setup: REGISTER at $reg, ${SECONDS_PER_RATE} s per rate"
    register_series "$setup-reg" "$reg" $REG_RATES
    echo "== $setup: calls through $call to users registered at $reg"
    call_series "$setup-call" "$reg" "$call" $CALL_RATES
    summary+=("$(printf '%-9s REGISTER %6s/s  calls %5s/s' "$setup" "$BEST_REG" "$BEST_CALL")")
    # the servers go (gracefully), the UAS stays
    for p in "${setup_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${setup_pids[@]}"; do wait "$p" 2>/dev/null; forget_pid "$p"; done
    setup_pids=()
    sleep 1
done
echo
echo "sustained (<1% failed, >=95% of the rate, p99 < 500 ms; the highest rate tried that passed):"
printf '  %s\n' "${summary[@]}"
echo "(runs in $OUT)"

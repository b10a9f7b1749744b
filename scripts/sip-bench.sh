#!/usr/bin/env bash
# SIP benchmark: REGISTER/s and calls/s the three-proxy overlay of
# scripts/sip-tests.sh sustains with SIPp (fewer than 1% failed), with SIPp's
# response times (p50/p99 from -trace_rtt, millisecond resolution).
#
#   scripts/sip-bench.sh
#
# Proxies A, B, C on 127.0.0.1 (B and C join A; each started by lib.sh's
# start_proxy with --domain example.com). For each rate, in
# increasing order, SIPp runs BENCH_SECONDS (10) seconds of:
#   REGISTER  fresh users registered at A (register.xml);
#   calls     INVITE/200/ACK/BYE/200 through B to a SIPp UAS (uac-call.xml),
#             over a pool of users registered beforehand.
# A rate passes when under 1% of its calls failed, SIPp kept at least 95% of
# the rate and every response time's p99 is under 500 ms (T1: slower answers
# make clients retransmit, which a saturated stateless proxy cannot catch up
# with); the series stops at the first rate that does not pass.
# Environment: BENCH_SECONDS, BENCH_REG_RATES ("500 1000 1500 2000 2500 3000"),
# BENCH_CALL_RATES ("250 500 1000 1500 2000 2500"), SIP_TEST_PORT_BASE.
# Output in target/sip-bench/ (one directory per run, SIPp files included).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_PER_RATE=${BENCH_SECONDS:-10}
REG_RATES=${BENCH_REG_RATES-"500 1000 1500 2000 2500 3000"}
CALL_RATES=${BENCH_CALL_RATES-"250 500 1000 1500 2000 2500"}
DOMAIN=example.com
STAGE=$ROOT/target/stage
OUT=$ROOT/target/sip-bench
SIP=$ROOT/tests/sip
BIN=$OUT/bin
# shellcheck source=tests/sip/lib.sh
. "$SIP/lib.sh"
# Servers without an overlay key unless OVERLAY_KEY names one: the numbers in
# docs/PERFORMANCE.md were measured so (the tests run keyed).
OVERLAY_KEY=${OVERLAY_KEY-}

./scripts/setup.sh || exit 1
rm -rf "$OUT"
mkdir -p "$OUT"
stage_and_build || exit 1

pick_ports || exit 1
A_SIP=$BASE B_SIP=$((BASE + 1)) C_SIP=$((BASE + 2))
A_OVL=$((BASE + 10)) B_OVL=$((BASE + 11)) C_OVL=$((BASE + 12))
UAS_PORT=$((BASE + 20)) UAC_PORT=$((BASE + 21))

# One registrar: the proxies share a writer key (B unregisters what A stored).
WRITER_KEY=$OUT/writer.key
writer_key "$WRITER_KEY" || exit 1
start_proxy A "$BIN/sip-proxy" "$A_SIP" "$A_OVL" || exit 1
start_proxy B "$BIN/sip-proxy" "$B_SIP" "$B_OVL" "127.0.0.1:$A_OVL" || exit 1
start_proxy C "$BIN/sip-proxy" "$C_SIP" "$C_OVL" "127.0.0.1:$A_OVL" || exit 1
wait_ring "$A_OVL" "$B_OVL" "$C_OVL" || exit 1
start_uas "$UAS_PORT" || exit 1

echo "== $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1); $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
echo "== REGISTER at proxy A, ${SECONDS_PER_RATE} s per rate"
register_series REGISTER "127.0.0.1:$A_SIP" $REG_RATES
echo "== calls through proxy B to users registered at A, ${SECONDS_PER_RATE} s per rate"
call_series calls "127.0.0.1:$A_SIP" "127.0.0.1:$B_SIP" $CALL_RATES
echo
echo "sustained (<1% failed, >=95% of the rate, p99 < 500 ms): REGISTER ${BEST_REG}/s, calls ${BEST_CALL}/s"
echo "(the highest rate tried that passed; runs in $OUT)"

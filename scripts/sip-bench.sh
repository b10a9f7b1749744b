#!/usr/bin/env bash
# SIP benchmark: REGISTER/s and calls/s the three-proxy overlay of
# scripts/sip-tests.sh sustains with SIPp (fewer than 1% failed), with SIPp's
# response times (p50/p99 from -trace_rtt, millisecond resolution).
#
#   scripts/sip-bench.sh
#
# Proxies A, B, C on 127.0.0.1 (B and C join A). For each rate, in
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
POOL=2000
DOMAIN=example.com
STAGE=$ROOT/target/stage
OUT=$ROOT/target/sip-bench
SIP=$ROOT/tests/sip
BIN=$OUT/bin
# shellcheck source=tests/sip/lib.sh
. "$SIP/lib.sh"

./scripts/setup.sh || exit 1
rm -rf "$OUT"
mkdir -p "$OUT"
stage_and_build || exit 1

pick_ports || exit 1
A_SIP=$BASE B_SIP=$((BASE + 1)) C_SIP=$((BASE + 2))
A_OVL=$((BASE + 10)) B_OVL=$((BASE + 11)) C_OVL=$((BASE + 12))
UAS_PORT=$((BASE + 20)) UAC_PORT=$((BASE + 21))

start_proxy A "$BIN/sip-proxy" "$A_SIP" "$A_OVL" || exit 1
start_proxy B "$BIN/sip-proxy" "$B_SIP" "$B_OVL" "127.0.0.1:$A_OVL" || exit 1
start_proxy C "$BIN/sip-proxy" "$C_SIP" "$C_OVL" "127.0.0.1:$A_OVL" || exit 1
wait_ring "$A_OVL" "$B_OVL" "$C_OVL" || exit 1
mkdir -p "$OUT/uas"
(cd "$OUT/uas" && exec sipp -sf "$SIP/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" -nostdin >sipp.log 2>&1) &
pids+=($!)
sleep 0.5

# pct FILE RTD P: the P-th percentile (nearest rank) of one RTD in a -trace_rtt file, in ms.
pct() {
    awk -F';' -v r="$2" '$3 == r { print $2 }' "$1" | sort -n |
        awk -v p="$3" '{ v[NR] = $1 } END { if (NR == 0) { print "?"; exit }
            k = int((p * NR + 99) / 100); if (k < 1) k = 1; print v[k] }'
}

# bench LABEL RATE SCENARIO CSV TARGET [EXTRA...]: one run; prints a line and
# returns 0 when the rate passes.
bench() {
    local label=$1 rate=$2 scen=$3 csv=$4 target=$5; shift 5
    local dir=$OUT/$label-$rate m=$((rate * SECONDS_PER_RATE))
    mkdir -p "$dir"
    (cd "$dir" && exec timeout $((SECONDS_PER_RATE + 90)) sipp -sf "$SIP/$scen" -inf "$csv" "$@" \
        -m "$m" -r "$rate" -i 127.0.0.1 -p "$UAC_PORT" -nostdin -trace_stat -stf stat.csv -fd 1 \
        -trace_rtt -rtt_freq 1000 -timeout $((SECONDS_PER_RATE + 60))s "$target" >sipp.log 2>&1) &
    run_tracked $!
    local ok bad retrans achieved rtt line worst=0 p99
    ok=$(stat_of "$dir/stat.csv" 'SuccessfulCall(C)')
    bad=$(stat_of "$dir/stat.csv" 'FailedCall(C)')
    retrans=$(stat_of "$dir/stat.csv" 'Retransmissions(C)')
    achieved=$(stat_of "$dir/stat.csv" 'CallRate(C)')
    rtt=$(ls "$dir"/*_rtt.csv 2>/dev/null | head -1)
    line=$(printf '%-9s rate %5d/s: %6s ok %5s failed (%s retransmissions), SIPp rate %8s/s' \
        "$label" "$rate" "$ok" "$bad" "$retrans" "$achieved")
    local rtd
    for rtd in reg setup bye; do
        if [ -n "$rtt" ] && grep -q ";$rtd\$" "$rtt"; then
            p99=$(pct "$rtt" "$rtd" 99)
            line+=$(printf ', %s p50 %s ms p99 %s ms' "$rtd" "$(pct "$rtt" "$rtd" 50)" "$p99")
            worst=$(awk -v a="$worst" -v b="$p99" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
        fi
    done
    echo "$line"
    awk -v ok="$ok" -v bad="$bad" -v r="$rate" -v a="$achieved" -v w="$worst" \
        'BEGIN { t = ok + bad; exit !(t > 0 && bad / t < 0.01 && a >= 0.95 * r && w < 500) }'
}

echo "== $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1); $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
echo "== REGISTER at proxy A, ${SECONDS_PER_RATE} s per rate"
best_reg=0
for r in $REG_RATES; do
    { echo SEQUENTIAL; for i in $(seq 1 $((r * SECONDS_PER_RATE))); do printf 'r%du%d;%s;\n' "$r" "$i" "$DOMAIN"; done; } \
        >"$OUT/reg-$r.csv"
    if bench REGISTER "$r" register.xml "$OUT/reg-$r.csv" "127.0.0.1:$A_SIP" \
        -key contact_hostport "127.0.0.1:$UAS_PORT"; then
        best_reg=$r
    else
        break
    fi
    sleep 2
done

echo "== calls through proxy B to users registered at A, ${SECONDS_PER_RATE} s per rate"
{ echo SEQUENTIAL; for i in $(seq 1 $POOL); do printf 'pool%d;%s;\n' "$i" "$DOMAIN"; done; } >"$OUT/pool.csv"
(cd "$OUT" && exec sipp -sf "$SIP/register.xml" -inf "$OUT/pool.csv" -key contact_hostport "127.0.0.1:$UAS_PORT" \
    -m $POOL -r 500 -i 127.0.0.1 -p "$UAC_PORT" -nostdin -timeout 60s "127.0.0.1:$A_SIP" >pool.log 2>&1) &
run_tracked $! || { echo "registering the call pool failed"; exit 1; }
sleep 2
best_call=0
for r in $CALL_RATES; do
    if bench calls "$r" uac-call.xml "$OUT/pool.csv" "127.0.0.1:$B_SIP"; then
        best_call=$r
    else
        break
    fi
    sleep 3
done
echo
echo "sustained (<1% failed, >=95% of the rate, p99 < 500 ms): REGISTER ${best_reg}/s, calls ${best_call}/s"
echo "(the highest rate tried that passed; runs in $OUT)"

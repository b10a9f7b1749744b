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
pids=()

cleanup() {
    trap - EXIT INT TERM
    local p
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 1 50); do
        local alive=0
        for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive -eq 0 ] && break
        sleep 0.1
    done
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT
# run_tracked PID: waits for a background job the trap can stop; its status.
run_tracked() {
    local rc keep=() p
    pids+=("$1")
    wait "$1"
    rc=$?
    for p in "${pids[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    pids=("${keep[@]}")
    return $rc
}
trap 'echo "interrupted"; exit 130' INT TERM

./scripts/setup.sh || exit 1
rm -rf "$OUT"
mkdir -p "$OUT"
make install PREFIX="$STAGE" >"$OUT/make-install.log" 2>&1 || {
    tail -n 30 "$OUT/make-install.log"; exit 1; }
export PKG_CONFIG_PATH=$STAGE/lib/pkgconfig
make -s -C c-examples/sip-proxy BUILD="$BIN" || exit 1

ports_free() {
    python3 - "$1" <<'EOF'
import socket, sys
base = int(sys.argv[1])
for p in range(base, base + 30):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
EOF
}
BASE=${SIP_TEST_PORT_BASE:-}
if [ -z "$BASE" ]; then
    for _ in $(seq 1 50); do
        BASE=$((20000 + (RANDOM % 400) * 100))
        ports_free "$BASE" && break
        BASE=
    done
    [ -n "$BASE" ] || { echo "no free port range found"; exit 1; }
fi
A_SIP=$BASE B_SIP=$((BASE + 1)) C_SIP=$((BASE + 2))
A_OVL=$((BASE + 10)) B_OVL=$((BASE + 11)) C_OVL=$((BASE + 12))
UAS_PORT=$((BASE + 20)) UAC_PORT=$((BASE + 21))

start_proxy() {
    local name=$1 sip=$2 ovl=$3 boot=${4:-}
    local args=(--listen "127.0.0.1:$sip" --overlay-listen "127.0.0.1:$ovl" --log=2)
    [ -n "$boot" ] && args+=(--bootstrap "$boot")
    "$BIN/sip-proxy" "${args[@]}" >"$OUT/proxy-$name.out" 2>"$OUT/proxy-$name.err" &
    pids+=($!)
    for _ in $(seq 1 200); do
        grep -q '^sip-proxy ready' "$OUT/proxy-$name.out" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "proxy $name did not come up"; tail "$OUT/proxy-$name.err"; exit 1
}
start_proxy A "$A_SIP" "$A_OVL"
start_proxy B "$B_SIP" "$B_OVL" "127.0.0.1:$A_OVL"
start_proxy C "$C_SIP" "$C_OVL" "127.0.0.1:$A_OVL"
sleep 2
mkdir -p "$OUT/uas"
(cd "$OUT/uas" && exec sipp -sf "$SIP/uas.xml" -i 127.0.0.1 -p "$UAS_PORT" -nostdin >sipp.log 2>&1) &
pids+=($!)
sleep 0.5

stat_of() {
    awk -F';' -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        { v = $c } END { print (c && v != "") ? v : "?" }' "$1"
}
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

#!/usr/bin/env bash
# Asterisk benchmark, one run, side by side: Asterisk 22.10.1 with its default
# contact store (astdb, one server) against three Asterisk servers whose
# contacts live in the chordsip overlay (bindings/asterisk). Digest
# authentication on every REGISTER, as an admin configures endpoints.
#
#   REGISTER/s and calls/s: rate by rate (SECONDS_PER_RATE s each) until one
#   fails (>=1% failed, SIPp under 95% of the rate, or a p99 of 500 ms or
#   more); the highest rate that passed, median of BENCH_RUNS rounds.
#   Latency: REGISTER (challenge + answer, two round trips) and call setup
#   (INVITE to 200) p50/p99 at 50/s, and the wizard's mean overlay call as
#   `chordsip show status` reports it.
#
#   scripts/asterisk-bench.sh      (BENCH_RUNS=3, about 15 min)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
N_USERS=${ASTERISK_BENCH_USERS:-2000}
RUNS=${BENCH_RUNS:-3}
SECONDS_PER_RATE=${SECONDS_PER_RATE:-5}
DOMAIN=example.com
STAGE=$ROOT/target/stage
OUT=$ROOT/target/asterisk-bench
BIN=$OUT/bin
failed=()
# shellcheck source=tests/sip/lib.sh
. "$ROOT/tests/sip/lib.sh"
# shellcheck source=scripts/asterisk-lib.sh
. "$ROOT/scripts/asterisk-lib.sh"

./scripts/setup.sh || exit 1
rm -rf "$OUT"
mkdir -p "$OUT/scen"
stage_and_build || exit 1
AST_PREFIX=$(./scripts/asterisk-build.sh | tail -n 1) || exit 1
module_dir "$OUT/modules" || exit 1
pick_ports || exit 1
S_SIP=$BASE A_SIP=$((BASE + 1)) B_SIP=$((BASE + 2)) C_SIP=$((BASE + 3))
A_OVL=$((BASE + 11)) B_OVL=$((BASE + 12)) C_OVL=$((BASE + 13))
UAS_PORT=$((BASE + 20)) UAC_PORT=$((BASE + 21))
make_keys || exit 1
ast_users "$OUT/users.csv" 1 "$N_USERS"
users_csv "$OUT/calls.csv" 1 "$N_USERS"
# bench() runs $SIP/<scenario>: the scenarios it needs, in one folder
sed "s/__FINAL__/200/" "$ROOT/tests/sip/asterisk/register.xml.in" >"$OUT/scen/register-200.xml"
cp "$ROOT/tests/sip/uac-call.xml" "$OUT/scen/"
SIP=$OUT/scen

echo "== servers: S (astdb), A B C (chordsip); $N_USERS users each"
make_server S "$S_SIP" 0 "" astdb || exit 1
make_server A "$A_SIP" "$A_OVL" "" || exit 1
make_server B "$B_SIP" "$B_OVL" "127.0.0.1:$A_OVL" || exit 1
make_server C "$C_SIP" "$C_OVL" "127.0.0.1:$A_OVL" || exit 1
for s in S A B C; do start_asterisk "$s" || exit 1; done
for s in A B C; do wait_joined "$s" || exit 1; done
sleep 1
start_uas "$UAS_PORT" || exit 1

series_no=0
reg_run() { # LABEL RATE TARGET_PORT: one REGISTER bench (CSeq 1/2, fresh Call-IDs)
    series_no=$((series_no + 1))
    bench "$1" "$2" register-200.xml "$OUT/users.csv" "127.0.0.1:$3" \
        -key contact_hostport "127.0.0.1:$UAS_PORT" -key cs1 1 -key cs2 2 -key expires 3600 \
        -cid_str "b$series_no-%u-$RUN_TAG"
}
reg_series() { # LABEL PORT RATE...: sets BEST
    local label=$1 port=$2 r; shift 2
    BEST=0
    for r in "$@"; do reg_run "$label" "$r" "$port" || break; BEST=$r; sleep 2; done
}
call_series() { # LABEL PORT RATE...: calls to the registered users; sets BEST
    local label=$1 port=$2 r; shift 2
    BEST=0
    for r in "$@"; do
        bench "$label" "$r" uac-call.xml "$OUT/calls.csv" "127.0.0.1:$port" || break
        BEST=$r
        sleep 3
    done
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "== every user registers at S and at A (the call pools)"
SAVE=$SECONDS_PER_RATE
SECONDS_PER_RATE=$(( (N_USERS + 199) / 200 )) # 200/s until every user registered once
reg_run pool-S 200 "$S_SIP" || exit 1
reg_run pool-A 200 "$A_SIP" || exit 1
SECONDS_PER_RATE=$SAVE

echo "== latency at 50/s (REGISTER with its challenge; call setup)"
SECONDS_PER_RATE=20 # 1,000 of each
for what in "astdb $S_SIP $S_SIP" "chordsip $A_SIP $B_SIP"; do
    read -r name reg_port call_port <<<"$what"
    reg_run "lat-reg-$name" 50 "$reg_port"
    bench "lat-call-$name" 50 uac-call.xml "$OUT/calls.csv" "127.0.0.1:$call_port"
done
SECONDS_PER_RATE=$SAVE
for s in A B; do echo "   $s: $(ast_cli "$s" "chordsip show status" | grep -E '^(puts|gets)' | tr '\n' ';')"; done

reg_s=() reg_c=() call_s=() call_c=() call_c_same=()
for round in $(seq 1 "$RUNS"); do
    echo "== round $round: REGISTER/s"
    reg_series "reg-astdb-r$round" "$S_SIP" 200 400 600 800 1000 1500 2000 2500 3000; reg_s+=("$BEST")
    reg_series "reg-chordsip-r$round" "$A_SIP" 200 400 600 800 1000 1500 2000 2500 3000; reg_c+=("$BEST")
    echo "== round $round: calls/s"
    call_series "call-astdb-r$round" "$S_SIP" 100 200 300 400 600 800; call_s+=("$BEST")
    call_series "call-chordsip-other-r$round" "$B_SIP" 100 200 300 400 600 800; call_c+=("$BEST")
    call_series "call-chordsip-same-r$round" "$A_SIP" 100 200 300 400 600 800; call_c_same+=("$BEST")
done
echo
echo "highest rate passed (<1% failed, >=95% of the rate, p99 < 500 ms), median of $RUNS rounds:"
printf '  astdb, one server            REGISTER %5s/s (%s)  calls %5s/s (%s)\n' \
    "$(echo "${reg_s[*]}" | median)" "${reg_s[*]}" "$(echo "${call_s[*]}" | median)" "${call_s[*]}"
printf '  chordsip, registered at A    REGISTER %5s/s (%s)  calls through B %5s/s (%s), through A %5s/s (%s)\n' \
    "$(echo "${reg_c[*]}" | median)" "${reg_c[*]}" "$(echo "${call_c[*]}" | median)" "${call_c[*]}" \
    "$(echo "${call_c_same[*]}" | median)" "${call_c_same[*]}"
stop_uas 0 reordered-ok >/dev/null 2>&1 || true
echo "(runs in $OUT)"

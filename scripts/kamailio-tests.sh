#!/usr/bin/env bash
# Kamailio tests: Debian's unmodified kamailio 5.6.3 loading the chordsip
# module (bindings/kamailio), driven by SIPp.
#
#   1. scripts/setup.sh (kamailio, sip-tester...), stage the library,
#      scripts/kamailio-build.sh builds the module against 5.6.3's source;
#   2. three Kamailio servers K1, K2, K3 on 127.0.0.1 with
#      bindings/kamailio/kamailio.cfg form one overlay (K2 and K3 join K1);
#   3. SIPp registers N users (1,000) at K1, contacts at a SIPp UAS; a SIPp
#      UAC calls every user through K2;
#   4. K3 is killed with SIGKILL (every process of it); the N calls through
#      K2 follow at once and must all complete again;
#   5. 100 users unregister (Expires: 0) at K2; calls to them through K1 get
#      404, the next 100 are still called; an unknown user gets 404;
#   6. KEMI: a Kamailio running bindings/kamailio/kemi/chordsip_kemi.py
#      (app_python3, the Python binding, a client handle of a `chordsip node`
#      that joined the overlay) registers 200 users and calls them, and calls
#      100 users registered at K1; K2 calls the users registered through KEMI;
#   6b. hostile SIP: 5,000 malformed and mutated REGISTERs and INVITEs
#      (tests/sip/fuzz_register.py) at a fourth server FZ; it must stay up with
#      no crash or BUG in its log, then register 50 users whom K2 calls;
#   7. no ERROR or CRITICAL line in any Kamailio log; each module counts no
#      call slower than its timeout (kamcmd cnt.grp_get_all chordsip), and
#      the KEMI script logged none;
#   8. K1 and K2 stop on SIGTERM: their overlay nodes leave gracefully.
# Every process started here is stopped on exit, even after a failure or ^C.
# Environment: KAMAILIO_TEST_USERS (1000), KAMAILIO_TEST_RATE (calls/s, 200),
# SIP_TEST_PORT_BASE. Logs and SIPp files go to target/kamailio-tests/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
T_START=$(date +%s.%N)
N_USERS=${KAMAILIO_TEST_USERS:-1000}
RATE=${KAMAILIO_TEST_RATE:-200}
DOMAIN=example.com
STAGE=$ROOT/target/stage
OUT=$ROOT/target/kamailio-tests
SIP=$ROOT/tests/sip
BIN=$OUT/bin
MODULE=$ROOT/target/kamailio/chordsip.so
failed=()
# shellcheck source=tests/sip/lib.sh
. "$SIP/lib.sh"

./scripts/setup.sh || exit 1
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== staging the library and building the Kamailio module"
stage_and_build || exit 1
./scripts/kamailio-build.sh || exit 1
echo "$(kamailio -v | head -n 1); $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"

pick_ports || exit 1
K1_SIP=$BASE K2_SIP=$((BASE + 1)) K3_SIP=$((BASE + 2)) KEMI_SIP=$((BASE + 3))
K1_OVL=$((BASE + 10)) K2_OVL=$((BASE + 11)) K3_OVL=$((BASE + 12)) KEMI_OVL=$((BASE + 13))
UAS_PORT=$((BASE + 20)) UAC_PORT=$((BASE + 21))
echo "ports: SIP K1 $K1_SIP K2 $K2_SIP K3 $K3_SIP KEMI $KEMI_SIP, overlay $K1_OVL $K2_OVL $K3_OVL $KEMI_OVL, UAS $UAS_PORT"

users_csv "$OUT/users.csv" 1 "$N_USERS"
users_csv "$OUT/unreg.csv" 1 100
users_csv "$OUT/still.csv" 101 200
users_csv "$OUT/kemi.csv" 5001 5200
{ echo SEQUENTIAL; echo "nosuchuser;$DOMAIN;"; } >"$OUT/nobody.csv"

# counters NAME: the module's counters of a running Kamailio, one line.
counters() {
    kamcmd -s "unix:$OUT/$1/kamailio_ctl" cnt.grp_get_all chordsip 2>/dev/null |
        awk -F': ' '/:/ { gsub(/[\t ]/, "", $1); printf "%s=%s ", $1, $2 }'
}

# ---- 1. three Kamailio servers, one overlay -----------------------------------------
echo "== three Kamailio servers with the chordsip module, one overlay"
CFG=$ROOT/bindings/kamailio/kamailio.cfg
# One registrar: the servers share a writer key (K2 unregisters what K1 stored).
"$ROOT/target/release/chordsip" keygen --out "$OUT/writer.key" 2>/dev/null || exit 1
WKEY=(-A "WRITER_KEY_FILE=\"$OUT/writer.key\"")
start_kamailio K1 "$CFG" "$K1_SIP" "${WKEY[@]}" -A "OVERLAY_LISTEN=\"127.0.0.1:$K1_OVL\"" || exit 1
start_kamailio K2 "$CFG" "$K2_SIP" "${WKEY[@]}" -A "OVERLAY_LISTEN=\"127.0.0.1:$K2_OVL\"" \
    -A "OVERLAY_BOOTSTRAP=\"127.0.0.1:$K1_OVL\"" || exit 1
start_kamailio K3 "$CFG" "$K3_SIP" "${WKEY[@]}" -A "OVERLAY_LISTEN=\"127.0.0.1:$K3_OVL\"" \
    -A "OVERLAY_BOOTSTRAP=\"127.0.0.1:$K1_OVL\"" || exit 1
wait_ring "$K1_OVL" "$K2_OVL" "$K3_OVL" || exit 1
if kamcmd -s "unix:$OUT/K2/kamailio_ctl" chordsip.ring | grep -q '^successor\[1\]'; then
    pass "rpc-ring               kamcmd chordsip.ring on K2 lists two successors"
else
    fail rpc-ring "kamcmd chordsip.ring on K2: $(kamcmd -s "unix:$OUT/K2/kamailio_ctl" chordsip.ring 2>&1 | head -3)"
fi
start_uas "$UAS_PORT" || exit 1

# ---- 2. registrations and calls ------------------------------------------------------
echo "== SIPp: $N_USERS registrations at K1, calls through K2 (rate $RATE/s)"
run_sipp register "$N_USERS" -sf "$SIP/register.xml" -inf "$OUT/users.csv" \
    -key contact_hostport "127.0.0.1:$UAS_PORT" -m "$N_USERS" -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$K1_SIP"
run_sipp calls-via-K2 "$N_USERS" -sf "$SIP/uac-call.xml" -inf "$OUT/users.csv" \
    -m "$N_USERS" -r "$RATE" -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$K2_SIP"

echo "== K3 killed (SIGKILL, all its processes); the calls follow at once"
kill -KILL -- "-$PID_K3" 2>/dev/null
wait "$PID_K3" 2>/dev/null
forget_pid "$PID_K3"
run_sipp calls-after-kill "$N_USERS" -sf "$SIP/uac-call.xml" -inf "$OUT/users.csv" \
    -m "$N_USERS" -r "$RATE" -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$K2_SIP"

echo "== unregistered and unknown users"
run_sipp unregister-100 100 -sf "$SIP/unregister.xml" -inf "$OUT/unreg.csv" \
    -key contact_hostport "127.0.0.1:$UAS_PORT" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$K2_SIP"
run_sipp unregistered-404 100 -sf "$SIP/uac-404.xml" -inf "$OUT/unreg.csv" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$K1_SIP"
run_sipp others-still-called 100 -sf "$SIP/uac-call.xml" -inf "$OUT/still.csv" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$K1_SIP"
run_sipp unknown-user-404 1 -sf "$SIP/uac-404.xml" -inf "$OUT/nobody.csv" -m 1 \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$K2_SIP"

# ---- 3. KEMI: the Python routing script ----------------------------------------------
echo "== KEMI: app_python3 with bindings/kamailio/kemi/chordsip_kemi.py"
mkdir -p "$OUT/KEMI"
"$ROOT/target/release/chordsip" node --listen "127.0.0.1:$KEMI_OVL" --bootstrap "127.0.0.1:$K1_OVL" \
    --client-socket "$OUT/KEMI/node.sock" --writer-key-file "$OUT/writer.key" \
    --client-key-file "$(client_key_file)" \
    >"$OUT/KEMI/node.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -S "$OUT/KEMI/node.sock" ] && break; sleep 0.1; done
wait_ring "$K1_OVL" "$K2_OVL" "$KEMI_OVL" || exit 1
export CHORDSIP_LIBRARY=$STAGE/lib/libchordsip.so CHORDSIP_PEER=unix:$OUT/KEMI/node.sock
if start_kamailio KEMI "$ROOT/bindings/kamailio/kemi/kamailio-kemi.cfg" "$KEMI_SIP" \
    -A "KEMI_SCRIPT=\"$ROOT/bindings/kamailio/kemi/chordsip_kemi.py\""; then
    run_sipp kemi-register 200 -sf "$SIP/register.xml" -inf "$OUT/kemi.csv" \
        -key contact_hostport "127.0.0.1:$UAS_PORT" -m 200 -r "$RATE" \
        -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$KEMI_SIP"
    run_sipp kemi-calls 200 -sf "$SIP/uac-call.xml" -inf "$OUT/kemi.csv" -m 200 -r "$RATE" \
        -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$KEMI_SIP"
    run_sipp kemi-calls-K1-users 100 -sf "$SIP/uac-call.xml" -inf "$OUT/still.csv" -m 100 -r "$RATE" \
        -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$KEMI_SIP"
    run_sipp K2-calls-kemi-users 200 -sf "$SIP/uac-call.xml" -inf "$OUT/kemi.csv" -m 200 -r "$RATE" \
        -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$K2_SIP"
    run_sipp kemi-unregistered-404 100 -sf "$SIP/uac-404.xml" -inf "$OUT/unreg.csv" -m 100 \
        -r "$RATE" -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$KEMI_SIP"
else
    fail kemi-start "the KEMI Kamailio did not start"
fi
# ---- 3b. hostile SIP at a server with the module ------------------------------------------
echo "== hostile SIP: 5,000 malformed REGISTERs and INVITEs at a fourth server (FZ), then it still works"
FZ_SIP=$((BASE + 4)) FZ_OVL=$((BASE + 14))
users_csv "$OUT/fz.csv" 7001 7050
if start_kamailio FZ "$CFG" "$FZ_SIP" "${WKEY[@]}" -A "OVERLAY_LISTEN=\"127.0.0.1:$FZ_OVL\"" \
    -A "OVERLAY_BOOTSTRAP=\"127.0.0.1:$K1_OVL\""; then
    python3 "$SIP/fuzz_register.py" --target "127.0.0.1:$FZ_SIP" --count 5000 --rate 1000 \
        >"$OUT/fuzz-register.log" 2>&1
    if kill -0 "$PID_FZ" 2>/dev/null && ! grep -qE '(CRITICAL|BUG):|segfault|signal 11|core dumped' "$OUT/FZ/kamailio.log"; then
        pass "$(printf '%-22s %s' hostile-sip "$(tail -n 1 "$OUT/fuzz-register.log"); FZ alive, no crash or BUG in its log")"
    else
        fail hostile-sip "FZ died or logged a crash: $(grep -E '(CRITICAL|BUG):|segfault|signal 11' "$OUT/FZ/kamailio.log" | head -n 3)"
    fi
    run_sipp fz-register 50 -sf "$SIP/register.xml" -inf "$OUT/fz.csv" \
        -key contact_hostport "127.0.0.1:$UAS_PORT" -m 50 -r "$RATE" \
        -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$FZ_SIP"
    run_sipp K2-calls-fz-users 50 -sf "$SIP/uac-call.xml" -inf "$OUT/fz.csv" -m 50 -r "$RATE" \
        -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$K2_SIP"
    kill -TERM "$PID_FZ"
    wait "$PID_FZ"
    forget_pid "$PID_FZ"
else
    fail fz-start "the fourth Kamailio did not start"
fi

stop_uas $((2 * N_USERS + 100 + 200 + 100 + 200 + 50)) reordered-ok

# ---- 4. logs, counters, graceful stop ---------------------------------------------------
echo "== logs and counters"
for k in K1 K2 KEMI; do
    [ -d "$OUT/$k" ] || continue
    c=$(counters "$k")
    if grep -q 'slow_calls=0 ' <<<"$c "; then
        pass "$(printf '%-22s %s' "counters-$k" "$c")"
    elif [ "$k" = KEMI ] && [ -z "$c" ]; then
        # the script logs a warning for each call slower than its timeout
        slow=$(grep -c 'chordsip: .* took .* ms (timeout' "$OUT/$k/kamailio.log")
        if [ "$slow" = 0 ]; then
            pass "$(printf '%-22s %s' "slow-calls-$k" "no call slower than the timeout (script warnings)")"
        else
            fail "slow-calls-$k" "$slow calls slower than the timeout"
        fi
    else
        fail "counters-$k" "$c (a call took longer than the timeout)"
    fi
done
for k in K1 K2 K3 KEMI; do
    [ -f "$OUT/$k/kamailio.log" ] || continue
    bad=$(grep -cE '(ERROR|CRITICAL|BUG):' "$OUT/$k/kamailio.log")
    if [ "$bad" = 0 ]; then
        pass "$(printf '%-22s %s' "log-$k" "no ERROR/CRITICAL line ($(wc -l <"$OUT/$k/kamailio.log") lines)")"
    else
        fail "log-$k" "$bad ERROR/CRITICAL lines in $OUT/$k/kamailio.log"
        grep -E '(ERROR|CRITICAL|BUG):' "$OUT/$k/kamailio.log" | head -n 8 | sed 's/^/      /'
    fi
done

for k in K1 K2; do
    pid_var=PID_$k
    pid=${!pid_var}
    kill -TERM "$pid"
    wait "$pid"
    rc=$?
    forget_pid "$pid"
    if [ $rc -eq 0 ] && grep -q 'overlay node left the ring' "$OUT/$k/kamailio.log"; then
        pass "$(printf '%-22s %s' "leave-$k" "SIGTERM: exit 0, the overlay node left the ring")"
    else
        fail "leave-$k" "exit $rc; $(grep -E 'graceful leave|left the ring' "$OUT/$k/kamailio.log" | tail -1)"
    fi
done

printf '\nKamailio tests: '
if [ ${#failed[@]} -eq 0 ]; then
    echo "all passed ($(elapsed "$T_START") s)"
else
    echo "${#failed[@]} failed: ${failed[*]} ($(elapsed "$T_START") s; logs in $OUT)"
    exit 1
fi

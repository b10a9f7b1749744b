#!/usr/bin/env bash
# Asterisk tests: Asterisk 22.10.1 (built once from ../shared/vendor/ by
# scripts/asterisk-build.sh, cached outside the clone) with res_pjsip's
# contacts kept in the chordsip overlay (bindings/asterisk), driven by SIPp.
#
#   1. three Asterisk servers A, B, C on 127.0.0.1, each with the wizard's
#      node inside it, one overlay (overlay key, shared writer key); the
#      endpoints authenticate REGISTERs with digest (auth= in pjsip.conf);
#   2. N users (1,000) register at A; a SIPp UAC calls every user through
#      B's dialplan (Dial(PJSIP/user)); a SIPp UAS answers at the contacts;
#   3. device state on B: the hint of a user registered at A is Idle, not
#      Unavailable (the mirror replays A's contacts through B's sorcery);
#   4. 100 users refresh through B with their Call-ID and CSeq 3/4 (200), an
#      old CSeq is refused (500); they unregister through B; calls to them
#      through C get 480; an unknown user gets 404;
#   5. expiry: 50 users re-register at A with Expires 10; 15 s later, with
#      no REGISTER traffic, calls to them through B and C get 480;
#   6. A is killed with SIGKILL: calls through B reach every remaining user;
#   7. bad input at B (tests/sip/asterisk_checks.py): malformed Contacts,
#      a huge Expires, a contact too large to store (400, not 200), an
#      out-of-order CSeq (500); B keeps answering;
#   8. a server D whose overlay peers are all down answers REGISTERs 503
#      with Retry-After (never a 200 that stored nothing);
#   9. no crash: B, C, D still run, no "CRITICAL" or "Segmentation" in any
#      log; B stops gracefully and its node leaves the overlay.
# Environment: ASTERISK_TEST_USERS (1000), ASTERISK_TEST_RATE (calls/s, 100),
# SIP_TEST_PORT_BASE. Logs and SIPp files go to target/asterisk-tests/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
T_START=$(date +%s.%N)
N_USERS=${ASTERISK_TEST_USERS:-1000}
RATE=${ASTERISK_TEST_RATE:-100}
DOMAIN=example.com
STAGE=$ROOT/target/stage
OUT=$ROOT/target/asterisk-tests
SIP=$ROOT/tests/sip
BIN=$OUT/bin
MAX_EXPIRES=7200
failed=()
# shellcheck source=tests/sip/lib.sh
. "$SIP/lib.sh"
# shellcheck source=scripts/asterisk-lib.sh
. "$ROOT/scripts/asterisk-lib.sh"

./scripts/setup.sh || exit 1
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== staging the library; Asterisk and the modules"
stage_and_build || exit 1
AST_PREFIX=$(./scripts/asterisk-build.sh | tail -n 1) || exit 1
[ -x "$AST_PREFIX/sbin/asterisk" ] || { echo "no Asterisk in $AST_PREFIX"; exit 1; }
echo "$("$AST_PREFIX/sbin/asterisk" -V); $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"
module_dir "$OUT/modules" || exit 1

pick_ports || exit 1
A_SIP=$BASE B_SIP=$((BASE + 1)) C_SIP=$((BASE + 2)) D_SIP=$((BASE + 3))
A_OVL=$((BASE + 10)) B_OVL=$((BASE + 11)) C_OVL=$((BASE + 12)) D_OVL=$((BASE + 13))
DEAD_OVL=$((BASE + 19)) UAS_PORT=$((BASE + 20)) UAC_PORT=$((BASE + 21))
echo "ports: SIP A $A_SIP B $B_SIP C $C_SIP D $D_SIP, overlay $A_OVL-$D_OVL, UAS $UAS_PORT"

make_keys || exit 1
[ "$N_USERS" -ge 300 ] || { echo "ASTERISK_TEST_USERS must be 300 or more"; exit 1; }
ast_users "$OUT/users.csv" 1 "$N_USERS"
ast_users "$OUT/first100.csv" 1 100
ast_users "$OUT/expiring.csv" $((N_USERS - 99)) $((N_USERS - 50))
users_csv "$OUT/calls-first100.csv" 1 100
users_csv "$OUT/calls-rest.csv" 101 $((N_USERS - 100))
users_csv "$OUT/calls-expiring.csv" $((N_USERS - 99)) $((N_USERS - 50))
users_csv "$OUT/calls-all.csv" 1 "$N_USERS"
{ echo SEQUENTIAL; echo "nosuchuser;$DOMAIN;"; } >"$OUT/nobody.csv"
for s in 200 500 503; do sed "s/__FINAL__/$s/" "$SIP/asterisk/register.xml.in" >"$OUT/register-$s.xml"; done

# ---- 1. three servers, one overlay -----------------------------------------------
echo "== three Asterisk servers, contacts in one chordsip overlay"
make_server A "$A_SIP" "$A_OVL" "" || exit 1
make_server B "$B_SIP" "$B_OVL" "127.0.0.1:$A_OVL" || exit 1
make_server C "$C_SIP" "$C_OVL" "127.0.0.1:$A_OVL,127.0.0.1:$B_OVL" || exit 1
for s in A B C; do start_asterisk "$s" || exit 1; done
for s in A B C; do wait_joined "$s" || exit 1; done
wait_ring_of 3 A B C || exit 1
start_uas "$UAS_PORT" || exit 1

reg() { # LABEL N SERVER_PORT FILE STATUS CSEQ1 EXPIRES
    run_sipp "$1" "$2" -sf "$OUT/register-$5.xml" -inf "$4" -key contact_hostport "127.0.0.1:$UAS_PORT" \
        -key cs1 "$6" -key cs2 $(($6 + 1)) -key expires "$7" -m "$2" -r "$RATE" -cid_str "reg-%u-$RUN_TAG" \
        -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$3"
}
calls() { # LABEL N SERVER_PORT FILE
    uas_calls=$((uas_calls + $2))
    run_sipp "$1" "$2" -sf "$SIP/uac-call.xml" -inf "$4" -m "$2" -r "$RATE" \
        -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$3"
}
refused() { # LABEL N SERVER_PORT FILE STATUS(404|480)
    run_sipp "$1" "$2" -sf "$SIP/$([ "$5" = 404 ] && echo uac-404.xml || echo asterisk/uac-480.xml)" \
        -inf "$4" -m "$2" -r "$RATE" -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$3"
}
uas_calls=0

# ---- 2. registrations at A, calls through B ------------------------------------------
echo "== $N_USERS users register at A (digest); calls through B"
reg register-at-A "$N_USERS" "$A_SIP" "$OUT/users.csv" 200 1 3600
calls calls-via-B "$N_USERS" "$B_SIP" "$OUT/calls-all.csv"

# ---- 3. device state on the other server ------------------------------------------------
echo "== device state on B of users registered at A"
hint_state() { ast_cli "$1" "core show hint $2" | grep -o 'State:[A-Za-z]*' | head -n 1; }
state=""
for _ in $(seq 1 40); do
    state=$(hint_state B user0001)
    [ "$state" = "State:Idle" ] && break
    sleep 0.25
done
if [ "$state" = "State:Idle" ] && [ "$(hint_state C user0002)" = "State:Idle" ]; then
    pass "device-state           hint user0001 on B: $state (registered at A); user0002 on C: Idle"
else
    fail device-state "hint user0001 on B: '$state', user0002 on C: '$(hint_state C user0002)' (want State:Idle)"
fi

# ---- 4. refresh, stale CSeq and unregister through B ----------------------------------------
echo "== refresh through B (same Call-ID, higher CSeq), a stale CSeq, unregister through B"
reg refresh-via-B 100 "$B_SIP" "$OUT/first100.csv" 200 3 3600
reg stale-cseq-500 100 "$C_SIP" "$OUT/first100.csv" 500 1 3600
calls refreshed-called-via-C 100 "$C_SIP" "$OUT/calls-first100.csv"
reg unregister-via-B 100 "$B_SIP" "$OUT/first100.csv" 200 5 0
refused unregistered-480-via-C 100 "$C_SIP" "$OUT/calls-first100.csv" 480
refused unknown-user-404 1 "$B_SIP" "$OUT/nobody.csv" 404

# ---- 5. expiry ----------------------------------------------------------------------
echo "== expiry: 50 users re-register at A with Expires 10"
reg short-expiry-at-A 50 "$A_SIP" "$OUT/expiring.csv" 200 3 10
calls short-expiry-called 50 "$B_SIP" "$OUT/calls-expiring.csv"
# No REGISTER traffic from here: the overlay forgets the contacts by their
# lifetime. B reads each of the 50 until it is gone (at most 30 s in all):
# they registered one after another, so waiting for one alone left the last
# of them a few milliseconds to live when the calls reached it.
first=$((N_USERS - 99)) first_user=$(printf 'user%04d' "$first")
t0=$(date +%s.%N) deadline=$(($(date +%s) + 30)) gone=0
ast_cli B "pjsip show aor $first_user" >"$OUT/expiry-aor-before.txt"
grep -q "Contact: *$first_user/" "$OUT/expiry-aor-before.txt" ||
    fail expiry "$first_user's contact is not listed on B right after it registered"
for i in $(seq "$first" $((N_USERS - 50))); do
    user=$(printf 'user%04d' "$i")
    while [ "$(date +%s)" -le $deadline ]; do
        ast_cli B "pjsip show aor $user" >"$OUT/expiry-aor.txt"
        # (an answer names the AOR; a CLI connection that failed is no answer)
        grep -q "Aor: *$user" "$OUT/expiry-aor.txt" && ! grep -q "Contact: *$user/" "$OUT/expiry-aor.txt" &&
            { gone=$((gone + 1)); break; }
        sleep 0.1
    done
done
if [ $gone = 50 ]; then
    pass "expiry                 50 contacts (Expires 10) gone on B $(elapsed "$t0") s after the calls"
else
    fail expiry "$((50 - gone)) of 50 contacts still listed on B 30 s after their 10 s expiry"
fi
refused expired-480-via-B 50 "$B_SIP" "$OUT/calls-expiring.csv" 480
refused expired-480-via-C 50 "$C_SIP" "$OUT/calls-expiring.csv" 480

# ---- 6. A killed ----------------------------------------------------------------------
echo "== A killed (SIGKILL); calls through B at once"
kill -KILL "$PID_A" 2>/dev/null
wait "$PID_A" 2>/dev/null
forget_pid "$PID_A"
calls calls-after-kill-via-B $((N_USERS - 200)) "$B_SIP" "$OUT/calls-rest.csv"

# ---- 7. bad input at B -----------------------------------------------------------------
echo "== bad input at B (tests/sip/asterisk_checks.py)"
if timeout 300 python3 "$SIP/asterisk_checks.py" "127.0.0.1:$B_SIP" "$DOMAIN" "127.0.0.1:$UAS_PORT" "$MAX_EXPIRES" \
    >"$OUT/checks.log" 2>&1; then
    pass "bad-input              $(grep -c '^PASS' "$OUT/checks.log") checks at B"
else
    fail bad-input "$(grep '^FAIL' "$OUT/checks.log" | head -n 5 | tr '\n' ';') (see $OUT/checks.log)"
fi
sed 's/^/      /' "$OUT/checks.log"

# ---- 8. a server with no overlay --------------------------------------------------------
echo "== D: its only bootstrap peer is down; REGISTERs get 503"
make_server D "$D_SIP" "$D_OVL" "127.0.0.1:$DEAD_OVL" || exit 1
start_asterisk D || exit 1
reg not-joined-503 10 "$D_SIP" "$OUT/first100.csv" 503 7 3600

# ---- 9. no crash; graceful stop -----------------------------------------------------------
# Alive: the process exists and its CLI answers. Once, `asterisk -rx "core
# show uptime"` printed nothing while B ran and answered the next command,
# so the CLI gets up to five tries; a dead server fails kill -0 every time.
for s in B C D; do
    pid_v=PID_$s
    answered= tries=0
    while [ $tries -lt 5 ] && kill -0 "${!pid_v}" 2>/dev/null; do
        tries=$((tries + 1))
        if ast_cli "$s" "core show uptime" | grep -q 'System uptime'; then answered=1; break; fi
        sleep 0.5
    done
    if [ -n "$answered" ]; then
        pass "alive-$s                Asterisk $s still runs and answers its CLI (try $tries)"
    elif kill -0 "${!pid_v}" 2>/dev/null; then
        fail "alive-$s" "Asterisk $s runs but its CLI did not answer in 5 tries (see $OUT/$s/asterisk.out)"
    else
        fail "alive-$s" "Asterisk $s is gone (see $OUT/$s/asterisk.out)"
    fi
done
if grep -l 'CRITICAL\|Segmentation\|Assertion' "$OUT"/*/asterisk.out "$OUT"/*/log/messages* 2>/dev/null | grep -q .; then
    fail logs "$(grep -h 'CRITICAL\|Segmentation\|Assertion' "$OUT"/*/asterisk.out "$OUT"/*/log/messages* | head -n 3)"
else
    pass "logs                   no CRITICAL, segfault or assertion in any Asterisk log"
fi
ast_cli B "chordsip show status" | sed 's/^/      B: /'
ast_cli B "core stop now" >/dev/null 2>&1
for _ in $(seq 1 100); do kill -0 "$PID_B" 2>/dev/null || break; sleep 0.1; done
if grep -q 'left the overlay: ok$' "$OUT/B/asterisk.out"; then
    pass "graceful-stop          B: $(grep -o 'left the overlay.*' "$OUT/B/asterisk.out" | tail -n 1)"
else
    fail graceful-stop "B did not report leaving the overlay (see $OUT/B/asterisk.out)"
fi

stop_uas "$uas_calls"
echo
echo "asterisk tests: $(elapsed "$T_START") s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all Asterisk tests passed"

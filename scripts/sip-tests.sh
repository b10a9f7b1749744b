#!/usr/bin/env bash
# SIP tests: real SIP traffic (SIPp) through c-examples/sip-proxy.
#
#   1. scripts/setup.sh, stage the library (make install), build sip-proxy
#      plainly and with ASan+UBSan;
#   2. three proxies on 127.0.0.1 form one overlay (A starts it, B and C join
#      A), each serving the domain example.com (--domain);
#   2b. strangers: a proxy with a wrong overlay key and one with none (the
#      three share one key) give up their joins, A counts their datagrams as
#      unauthenticated and lists neither;
#   3. an administrator stores N+100 users in the overlay (`chordsip user add
#      --from-file`, the admin's writer key, the credentials key); SIPp
#      registers the N users at A with digest authentication (401, then 200),
#      each contact pointing at a SIPp UAS; wrong passwords and another user's
#      credentials get 403 (register-auth-403.xml); tests/sip/auth_checks.py
#      at B (the checks kamailio-tests.sh makes too): exact 401/403 answers,
#      13 malformed Authorization headers and a 10 kB nonce 400 or 401, a
#      nonce replayed after its lifetime 401 stale=true, users still served;
#   4. a SIPp UAC calls every user through B (INVITE/200/ACK/BYE/200), ACK
#      and BYE to the AOR (looked up again);
#   5. in-dialog requests: the same N calls through B with ACK and BYE sent
#      along the route set (B record-routes the INVITE; Request-URI = the
#      callee's contact, forwarded as is); then 100 callees registered at A
#      hang up themselves, their BYE reaching the caller's contact through B;
#   6. C is killed with SIGKILL; at once the same N calls through B again;
#   7. a call to an unregistered user gets 404 (and its ACK is absorbed);
#   8. 100 users unregister (Expires: 0) through B; calls to them through A
#      get 404, calls to the next 100 still complete;
#   9. a proxy E with another writer key (and no authentication) neither
#      unregisters nor routes to A's bindings, and the bindings it writes for
#      the same users at a dead contact are never routed to by A; a proxy F
#      that trusts A's key (and runs without
#      --domain: its default serves every host name) routes to them;
#  10. tests/sip/proxy_checks.py against a fourth proxy (the ASan build, its
#      own ring): protocol and routing checks, then garbage, truncated,
#      oversized and mutated datagrams, then it must still answer correctly;
#      it must leave cleanly on SIGTERM with no sanitizer report;
#      tests/sip/fuzz_sipmsg.c feeds 300,000 mutated messages to the parser
#      and the routing decisions under ASan+UBSan;
#  11. F, E, B and A leave gracefully on SIGTERM (exit status 0).
# Every process started here is stopped on exit, even after a failure or ^C.
# Prints SIPp's statistics for each run; exits non-zero if any step failed.
# Environment: SIP_TEST_USERS (1000), SIP_TEST_RATE (calls/s, 200),
# SIP_TEST_PORT_BASE (picked at random among free ports when unset).
# Logs and SIPp files go to target/sip-tests/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
T_START=$(date +%s.%N)
N_USERS=${SIP_TEST_USERS:-1000}
RATE=${SIP_TEST_RATE:-200}
DOMAIN=example.com
STAGE=$ROOT/target/stage
OUT=$ROOT/target/sip-tests
SIP=$ROOT/tests/sip
BIN=$OUT/bin
failed=()

# shellcheck source=tests/sip/lib.sh
. "$SIP/lib.sh"

./scripts/setup.sh build sip python || exit 1
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== staging the library and building sip-proxy"
stage_and_build || exit 1
make -s -C c-examples/sip-proxy BUILD="$BIN" SANITIZE=1 || exit 1
cc -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined \
    -fno-sanitize-recover=all -Ic-examples/sip-proxy "$SIP/fuzz_sipmsg.c" c-examples/sip-proxy/sipmsg.c \
    c-examples/sip-proxy/route.c -o "$BIN/fuzz_sipmsg" || exit 1
echo "built $BIN/sip-proxy and $BIN/sip-proxy-asan; $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"

# ---- ports -------------------------------------------------------------------
pick_ports || exit 1
A_SIP=$BASE B_SIP=$((BASE + 1)) C_SIP=$((BASE + 2)) D_SIP=$((BASE + 3))
A_OVL=$((BASE + 10)) B_OVL=$((BASE + 11)) C_OVL=$((BASE + 12)) D_OVL=$((BASE + 13))
E_SIP=$((BASE + 4)) E_OVL=$((BASE + 14)) F_SIP=$((BASE + 5)) F_OVL=$((BASE + 15))
UAS_PORT=$((BASE + 20)) UAC_PORT=$((BASE + 21)) HANGUP_UAS_PORT=$((BASE + 22))
echo "ports: SIP A $A_SIP B $B_SIP C $C_SIP, overlay A $A_OVL B $B_OVL C $C_OVL, UAS $UAS_PORT"

# ---- users ---------------------------------------------------------------------
users_csv "$OUT/users.csv" 1 "$N_USERS"
auth_users "$OUT/auth-users.csv" 1 "$N_USERS"
auth_users "$OUT/auth-unreg.csv" 1 100
users_csv "$OUT/still.csv" 101 200
users_csv "$OUT/unreg.csv" 1 100
users_csv "$OUT/callees.csv" 1 100 callee
auth_users "$OUT/auth-callees.csv" 1 100 callee
# Refused: user0001 with a wrong password; user0001's credentials for user0002's AOR.
{ echo SEQUENTIAL
  echo "user0001;$DOMAIN;[authentication username=user0001 password=wrong]"
  echo "user0002;$DOMAIN;[authentication username=user0001 password=$(password_of user0001)]"
} >"$OUT/refused.csv"
{ echo SEQUENTIAL; echo "nosuchuser;$DOMAIN;"; } >"$OUT/nobody.csv"

# ---- 1. the overlay ------------------------------------------------------------------
echo "== three proxies, one overlay"
# One registrar: the proxies share a writer key (B unregisters what A stored).
WRITER_KEY=$OUT/writer.key
writer_key "$WRITER_KEY" || exit 1
# REGISTERs are authenticated against users an administrator stores in the overlay.
ADMIN_KEY=$OUT/admin.key CREDS_KEY=$OUT/credentials.key NONCE_LIFETIME=3
writer_key "$ADMIN_KEY" && writer_key "$CREDS_KEY" || exit 1
export ADMIN_KEY CREDS_KEY NONCE_LIFETIME
start_proxy A "$BIN/sip-proxy" "$A_SIP" "$A_OVL" || exit 1
start_proxy B "$BIN/sip-proxy" "$B_SIP" "$B_OVL" "127.0.0.1:$A_OVL" || exit 1
start_proxy C "$BIN/sip-proxy" "$C_SIP" "$C_OVL" "127.0.0.1:$A_OVL" || exit 1
wait_ring "$A_OVL" "$B_OVL" "$C_OVL" || exit 1

echo "== strangers: a proxy with a wrong overlay key, and one with none, cannot join"
# (A, B and C share $OUT/overlay.key: start_proxy's default)
(umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$OUT/wrong-overlay.key")
unauth_before=$(node_counter "$A_OVL" dropped_unauthenticated)
off=6
for key in "$OUT/wrong-overlay.key" ""; do
    label=stranger-no-key
    [ -n "$key" ] && label=stranger-wrong-key
    timeout 30 "$BIN/sip-proxy" --listen "127.0.0.1:$((BASE + off))" \
        --overlay-listen "127.0.0.1:$((BASE + 10 + off))" --bootstrap "127.0.0.1:$A_OVL" \
        --join-timeout 2 --no-auth --log=2 --overlay-set op_timeout_ms=500 \
        --overlay-set "client_key_file=$(client_key_file)" ${key:+--overlay-key-file "$key"} \
        >"$OUT/$label.out" 2>"$OUT/$label.err" &
    run_tracked $!
    rc=$?
    why=$(grep "^sip-proxy: join" "$OUT/$label.err" | tail -n 1)
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && ! grep -q '^sip-proxy ready' "$OUT/$label.out" &&
        [ "$why" = "sip-proxy: join 127.0.0.1:$A_OVL: no bootstrap peer answered" ] &&
        ! ring_lists "$A_OVL" $((BASE + 10 + off)); then
        pass "$(printf '%-22s %s' "$label" "gave up its join (exit $rc): $why")"
    else
        fail "$label" "exit $rc, last words: $why (see $OUT/$label.err)"
    fi
    off=$((off + 1))
done
unauth_after=$(node_counter "$A_OVL" dropped_unauthenticated)
if [ "$unauth_before" != "?" ] && [ "$unauth_after" != "?" ] && [ "$unauth_after" -gt "$unauth_before" ]; then
    pass "$(printf '%-22s %s' strangers-counted "A dropped $((unauth_after - unauth_before)) unauthenticated datagrams meanwhile")"
else
    fail strangers-counted "A's dropped_unauthenticated: $unauth_before before, $unauth_after after"
fi
start=$(date +%s.%N)
if add_users "$OUT/auth-users.csv.txt" "$A_OVL" >"$OUT/add-users.log" 2>&1 &&
    add_users "$OUT/auth-callees.csv.txt" "$A_OVL" >>"$OUT/add-users.log" 2>&1; then
    pass "add-users              $((N_USERS + 100)) users stored by the admin key, $(elapsed "$start") s"
else
    fail add-users "(log: $OUT/add-users.log)"
fi

start_uas "$UAS_PORT" || exit 1

# ---- 2. registrations and calls --------------------------------------------------------
echo "== SIPp: $N_USERS registrations at A, calls through B (rate $RATE/s)"
run_sipp register "$N_USERS" -sf "$SIP/register-auth.xml" -inf "$OUT/auth-users.csv" \
    -key contact_hostport "127.0.0.1:$UAS_PORT" -m "$N_USERS" -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$A_SIP"
run_sipp calls-via-B "$N_USERS" -sf "$SIP/uac-call.xml" -inf "$OUT/users.csv" \
    -m "$N_USERS" -r "$RATE" -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$B_SIP"

echo "== in-dialog requests along the route set (B record-routes; ACK/BYE go to the contact through B)"
run_sipp dialog-via-B "$N_USERS" -sf "$SIP/uac-dialog.xml" -inf "$OUT/users.csv" \
    -m "$N_USERS" -r "$RATE" -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$B_SIP"
run_sipp register-callees 100 -sf "$SIP/register-auth.xml" -inf "$OUT/auth-callees.csv" \
    -key contact_hostport "127.0.0.1:$HANGUP_UAS_PORT" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$A_SIP"
hangup_start=$(date +%s.%N)
start_sipp callee-hangs-up-uas -sf "$SIP/uas-bye.xml" -m 100 -i 127.0.0.1 -p "$HANGUP_UAS_PORT"
HANGUP_UAS_PID=$SIPP_PID
sleep 0.3
run_sipp callee-hangs-up 100 -sf "$SIP/uac-callee-bye.xml" -inf "$OUT/callees.csv" \
    -m 100 -r "$RATE" -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$B_SIP"
wait_sipp callee-hangs-up-uas 100 "$HANGUP_UAS_PID" "$hangup_start"

echo "== digest authentication: refused REGISTERs (403), bad Authorization headers, a stale nonce"
run_sipp refused-403 2 -sf "$SIP/register-auth-403.xml" -inf "$OUT/refused.csv" \
    -key contact_hostport "127.0.0.1:9" -m 2 -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$B_SIP"
start=$(date +%s.%N)
timeout 300 python3 "$SIP/auth_checks.py" --target "127.0.0.1:$B_SIP" --user callee0100 \
    --password "$(password_of callee0100)" --other callee0099 \
    --other-password "$(password_of callee0099)" --contact "127.0.0.1:$HANGUP_UAS_PORT" \
    --domain "$DOMAIN" --nonce-expire "$NONCE_LIFETIME" >"$OUT/auth-checks.log" 2>&1 &
if run_tracked $!; then
    pass "auth-checks            $(tail -n 1 "$OUT/auth-checks.log"), $(elapsed "$start") s"
else
    fail auth-checks "$(tail -n 1 "$OUT/auth-checks.log") (log: $OUT/auth-checks.log)"
    grep FAIL "$OUT/auth-checks.log" | head -n 20 | sed 's/^/      /'
fi

echo "== proxy C killed (SIGKILL); the calls follow at once, while the ring repairs"
{ kill -KILL "$PID_C"; wait "$PID_C"; } 2>/dev/null # (no "Killed" job notice)
forget_pid "$PID_C"
run_sipp calls-after-kill "$N_USERS" -sf "$SIP/uac-call.xml" -inf "$OUT/users.csv" \
    -m "$N_USERS" -r "$RATE" -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$B_SIP"

echo "== unknown and unregistered users"
run_sipp unknown-user-404 1 -sf "$SIP/uac-404.xml" -inf "$OUT/nobody.csv" -m 1 \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$B_SIP"
run_sipp unregister-100 100 -sf "$SIP/unregister-auth.xml" -inf "$OUT/auth-unreg.csv" \
    -key contact_hostport "127.0.0.1:$UAS_PORT" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$B_SIP"
run_sipp unregistered-404 100 -sf "$SIP/uac-404.xml" -inf "$OUT/unreg.csv" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$A_SIP"
run_sipp others-still-called 100 -sf "$SIP/uac-call.xml" -inf "$OUT/still.csv" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$A_SIP"

echo "== a proxy with another writer key joins: its unregisters cannot touch A's bindings, and"
echo "   it routes to none of them (they are not written under a key it trusts)"
WRITER_KEY=$OUT/stranger.key
writer_key "$WRITER_KEY" || exit 1
CREDS_KEY= start_proxy E "$BIN/sip-proxy" "$E_SIP" "$E_OVL" "127.0.0.1:$A_OVL" || exit 1
WRITER_KEY=$OUT/writer.key
wait_ring "$A_OVL" "$B_OVL" "$E_OVL" || exit 1
run_sipp stranger-unregister 100 -sf "$SIP/unregister.xml" -inf "$OUT/still.csv" \
    -key contact_hostport "127.0.0.1:$UAS_PORT" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$E_SIP"
run_sipp untrusted-404 100 -sf "$SIP/uac-404.xml" -inf "$OUT/still.csv" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$E_SIP"
# E (no authentication, a key of its own) binds the same users to a dead contact at q=1:
# the registrar's proxies must never route to those bindings.
run_sipp stranger-register 100 -sf "$SIP/register.xml" -inf "$OUT/still.csv" \
    -key contact_hostport "127.0.0.1:9" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$E_SIP"
run_sipp still-called-after 100 -sf "$SIP/uac-call.xml" -inf "$OUT/still.csv" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$A_SIP"
echo "== a proxy that trusts the registrar's writer key routes to its bindings (F: no --domain, the default)"
writer_key "$OUT/judge.key" || exit 1
WRITER_KEY=$OUT/judge.key TRUSTED=$(cat "$OUT/writer.key.pub") PROXY_DOMAINS= CREDS_KEY= \
    start_proxy F "$BIN/sip-proxy" "$F_SIP" "$F_OVL" "127.0.0.1:$A_OVL" || exit 1
wait_ring "$A_OVL" "$B_OVL" "$E_OVL" "$F_OVL" || exit 1
run_sipp trusting-proxy-calls 100 -sf "$SIP/uac-call.xml" -inf "$OUT/still.csv" -m 100 -r "$RATE" \
    -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$F_SIP"

stop_uas $((3 * N_USERS + 300))

# ---- 3. malformed SIP against the ASan build -------------------------------------------
echo "== protocol checks and malformed SIP (ASan+UBSan build, its own ring)"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if CREDS_KEY= start_proxy D "$BIN/sip-proxy-asan" "$D_SIP" "$D_OVL"; then
    start=$(date +%s.%N)
    timeout 300 python3 "$SIP/proxy_checks.py" --proxy "127.0.0.1:$D_SIP" --domain "$DOMAIN" >"$OUT/proxy-checks.log" 2>&1 &
    run_tracked $!
    rc=$?
    if [ $rc -eq 0 ]; then
        pass "proxy-checks           $(tail -n 1 "$OUT/proxy-checks.log")"
    else
        fail proxy-checks "$(tail -n 1 "$OUT/proxy-checks.log") (log: $OUT/proxy-checks.log)"
        grep FAIL "$OUT/proxy-checks.log" | head -n 20 | sed 's/^/      /'
    fi
    stop_within 30 "$PID_D" # (a leave that hangs: SIGKILL, a failure)
    rc=$?
    forget_pid "$PID_D"
    if [ $rc -eq 0 ] && ! grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$OUT/proxy-D.err"; then
        pass "asan-proxy-exit        SIGTERM: exit 0, no sanitizer report"
    else
        fail asan-proxy-exit "exit $rc (log: $OUT/proxy-D.err)"
        grep -E -A8 'AddressSanitizer|LeakSanitizer|runtime error' "$OUT/proxy-D.err" | head -n 30 | sed 's/^/      /'
    fi
else
    fail asan-proxy-start "the ASan proxy did not start"
fi

start=$(date +%s.%N)
if "$BIN/fuzz_sipmsg" 300000 "$BASE" >"$OUT/fuzz-sipmsg.log" 2>&1; then
    pass "fuzz-sipmsg            $(tail -n 1 "$OUT/fuzz-sipmsg.log"), $(elapsed "$start") s"
else
    fail fuzz-sipmsg "(log: $OUT/fuzz-sipmsg.log)"
    head -n 30 "$OUT/fuzz-sipmsg.log" | sed 's/^/      /'
fi

# ---- 4. graceful leave ------------------------------------------------------------------
echo "== F, E, B and A leave on SIGTERM"
for name in F E B A; do
    pid_var=PID_$name
    pid=${!pid_var}
    stop_within 30 "$pid"
    rc=$?
    forget_pid "$pid"
    if [ $rc -eq 0 ]; then pass "leave-$name                SIGTERM: exit 0"; else fail "leave-$name" "exit $rc"; fi
done
if grep -qE 'AddressSanitizer|panic' "$OUT"/proxy-*.err; then
    fail proxy-logs "errors in $OUT/proxy-*.err"
fi

echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "SIP tests FAILED: ${failed[*]} ($(elapsed "$T_START") s)"
    exit 1
fi
echo "SIP tests: all passed ($(elapsed "$T_START") s)"

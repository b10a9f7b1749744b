#!/usr/bin/env bash
# Pure P2P SIP in C on real PJSIP (issue 20): three pjsua-p2p agents
# (c-examples/pjsua-p2p/, pjsua-lib 2.17 built by scripts/pjsip-build.sh), each
# with its own chordsip node in fd delivery mode inside PJSIP's ioqueue, on
# 127.0.0.1 with a shared overlay key and no registrar:
#   - thread hooks: with thread delivery a lookup's callback calls pjsua on a
#     chordsip library thread: without the hooks pjlib aborts the process,
#     with them the call is placed; fd delivery needs none (callbacks on pjsua_0)
#   - A calls B, B calls C, C calls A: looked up in the overlay, answered,
#     RTP counted both ways on both ends (pjmedia stream statistics), BYE
#   - C killed with SIGKILL: A and B still find and call each other
#   - clean shutdown: the binding removed, a graceful leave, the library
#     threads stopped before pjsua_destroy(), exit 0
# The same scenario runs again with the agent built with ASan+UBSan (the
# library is Rust; the sanitizers watch the agent, PJSIP and every call
# across the C ABI, and LeakSanitizer the whole process at exit).
# A pjproject that does not build is a failure, not a skip.
#
#   scripts/pjsua-p2p-tests.sh            (part of scripts/test.sh)
#   SIP_TEST_PORT_BASE=12000 ...          fixed ports instead of a free range
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
STAGE=$ROOT/target/stage
OUT=$ROOT/target/pjsua-p2p-tests
BIN=$ROOT/target/pjsua-p2p
rm -rf "$OUT"
mkdir -p "$OUT"
failed=()
# shellcheck source=../tests/sip/lib.sh
. "$ROOT/tests/sip/lib.sh"   # pids/cleanup trap, pass/fail, pick_ports, stop_within

T0=$(date +%s.%N)
echo "== build: libchordsip staged, pjproject (cached), pjsua-p2p plain and ASan"
make install PREFIX="$STAGE" >"$OUT/make-install.log" 2>&1 || {
    tail -n 30 "$OUT/make-install.log"; echo "FAIL  make install"; exit 1; }
cargo build --release --quiet --bin chordsip || { echo "FAIL  cargo build (chordsip keygen)"; exit 1; }
if ! "$ROOT/scripts/pjsip-build.sh" --asan >"$OUT/pjsip-build.log" 2>&1; then
    tail -n 30 "$OUT/pjsip-build.log"
    echo "FAIL  scripts/pjsip-build.sh (pjproject or the agent did not build)"
    exit 1
fi
grep '^pjsip-build:' "$OUT/pjsip-build.log" || true
echo "built in $(elapsed "$T0") s (pjproject: $(tail -n 1 "$OUT/pjsip-build.log"))"

pick_ports || exit 1
echo "ports from $BASE"

# Keys: one overlay key for the three; each agent signs its own binding with
# its own writer key and trusts the other two's (trusted_writers), so that
# nobody else can change where it is reached.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/overlay.key"
declare -A PUB
for n in A B C D; do
    PUB[$n]=$("$ROOT/target/release/chordsip" keygen --out "$OUT/writer-$n.key" 2>&1 >/dev/null |
        sed -n 's/^writer //p')
    [ -n "${PUB[$n]}" ] || { echo "FAIL  chordsip keygen"; exit 1; }
done
trusted_for() { # the other agents' public writer keys
    local n out=()
    for n in A B C D; do [ "$n" != "$1" ] && out+=("${PUB[$n]}"); done
    (IFS=,; echo "${out[*]}")
}
declare -A AOR=([A]=sip:alice@p2p.test [B]=sip:bob@p2p.test [C]=sip:carol@p2p.test [D]=sip:dave@p2p.test)
declare -A SIP_PORT=([A]=$BASE [B]=$((BASE + 2)) [C]=$((BASE + 4)) [D]=$((BASE + 6)))
declare -A OV_PORT=([A]=$((BASE + 10)) [B]=$((BASE + 11)) [C]=$((BASE + 12)) [D]=$((BASE + 13)))
# (RTP: SIP port + 1000 upwards, pjsua picks a free pair)
declare -A PID FD

# start_agent RUN NAME BOOTSTRAP [AGENT_ARGS...]: one agent in $OUT/RUN,
# commands through a FIFO held open here; waits for its ready line (60 s).
start_agent() {
    local run=$1 n=$2 boot=$3; shift 3
    local dir=$OUT/$run fifo
    mkdir -p "$dir"
    fifo=$dir/$n.in
    rm -f "$fifo"; mkfifo "$fifo"
    exec {fd}<>"$fifo"
    FD[$n]=$fd
    "${WRAP[@]}" "$AGENT" --aor "${AOR[$n]}" --sip-port "${SIP_PORT[$n]}" \
        --listen "127.0.0.1:${OV_PORT[$n]}" --bootstrap "$boot" --key-file "$OUT/overlay.key" \
        -o "writer_key_file=$OUT/writer-$n.key" -o "trusted_writers=$(trusted_for "$n")" \
        -o publish_refresh_ms=1000 \
        "${SLOW[@]}" "$@" <"$fifo" >"$dir/$n.out" 2>"$dir/$n.err" &
    PID[$n]=$!
    pids+=("${PID[$n]}")
    for _ in $(seq 1 600); do
        grep -q '^ready ' "$dir/$n.out" 2>/dev/null && { echo "agent $n (pid ${PID[$n]}): $(sed -n 's/^ready //p' "$dir/$n.out")"; return 0; }
        kill -0 "${PID[$n]}" 2>/dev/null || break
        sleep 0.1
    done
    port_taken "$dir/$n.err" && ports_lost "agent $n"
    echo "agent $n did not come up:"; tail -n 15 "$dir/$n.out" "$dir/$n.err"
    return 1
}
send() { echo "$2" >&"${FD[$1]}"; }
lines() { wc -l <"$OUT/$RUN/$1.out"; }
# wait_line NAME SINCE REGEX SECONDS: the first line after line SINCE of
# NAME's output that matches REGEX, printed; 1 when none came in time.
wait_line() {
    local f=$OUT/$RUN/$1.out l
    for _ in $(seq 1 $(($4 * 10))); do
        l=$(tail -n +"$(($2 + 1))" "$f" | grep -E -m 1 "$3") && { echo "$l"; return 0; }
        sleep 0.1
    done
    return 1
}
# quit_agent NAME [THREAD MIN]: quit on its command channel; 0 when it left
# the overlay gracefully and exited 0 within 30 s, having seen at least MIN
# (2) refreshes by the library, each on thread THREAD (pjsua_0).
quit_agent() {
    local n=$1 thread=${2:-pjsua_0} min=${3:-2} rc
    send "$n" quit
    stop_within 30 "${PID[$n]}" none
    rc=$?
    forget_pid "${PID[$n]}"
    exec {FD[$n]}>&-
    local f=$OUT/$RUN/$n.out
    # The library refreshed the published binding (every second here), its
    # events reaching the agent on pjsua's polling thread; quitting withdrew it.
    local refreshed all
    refreshed=$(grep -cE "^refreshed sip:[^ ]+ expires 600 \\[thread $thread\\]\$" "$f")
    all=$(grep -c '^refreshed ' "$f")
    if [ $rc -eq 0 ] && grep -q '^leave: ok$' "$f" && grep -q '^bye (0 failures)$' "$f" &&
        [ "$refreshed" -ge "$min" ] && [ "$refreshed" -eq "$all" ] &&
        grep -qE '^withdraw sip:[^ ]+: ok$' "$f" && ! grep -q '^refresh of ' "$f"; then
        pass "$RUN: $n quit: $(grep '^library threads' "$f"); $refreshed refreshes by the library on $thread, withdrawn"
    else
        fail "$RUN-quit-$n" "exit $rc, $refreshed of $all refreshes on $thread: $(grep -E '^(leave|library threads|bye|withdraw|refresh of)' "$f" | tr '\n' ' ')"
        tail -n 5 "$OUT/$RUN/$n.err" | sed 's/^/      /'
    fi
}

# call CALLER CALLEE: the caller looks the callee up and calls; answered,
# RTP both ways for 2 s, the caller hangs up (BYE); both ends' RTP counters.
call() {
    local a=$1 b=$2 sa sb l id_a id_b ok=1 start
    start=$(date +%s.%N)
    sa=$(lines "$a"); sb=$(lines "$b")
    send "$a" "call ${AOR[$b]}"
    l=$(wait_line "$a" "$sa" "^(lookup ${AOR[$b]} |call [0-9]+ calling|call .* failed)" "$WAIT") &&
        grep -q "^lookup ${AOR[$b]} -> sip:" <<<"$l" || {
        fail "$RUN-call-$a$b" "$a found no contact for ${AOR[$b]}: ${l:-nothing within $WAIT s}"; return 1; }
    local lookup_line=$l
    l=$(wait_line "$a" "$sa" "^call [0-9]+ CONFIRMED" "$WAIT") || {
        fail "$RUN-call-$a$b" "$a's call to $b was not answered within $WAIT s"
        tail -n 5 "$OUT/$RUN/$a.out" | sed 's/^/      /'; return 1; }
    id_a=$(awk '{print $2}' <<<"$l")
    l=$(wait_line "$b" "$sb" "^incoming [0-9]+ from" "$WAIT") || {
        fail "$RUN-call-$a$b" "$b saw no incoming call"; return 1; }
    id_b=$(awk '{print $2}' <<<"$l")
    sleep "$TALK"
    send "$a" hangup
    local bye_a bye_b rtp_a rtp_b
    bye_a=$(wait_line "$a" "$sa" "^bye call $id_a sent status" "$WAIT")
    bye_b=$(wait_line "$b" "$sb" "^bye call $id_b received status" "$WAIT")
    rtp_a=$(wait_line "$a" "$sa" "^rtp call $id_a " "$WAIT")
    rtp_b=$(wait_line "$b" "$sb" "^rtp call $id_b " "$WAIT")
    grep -q 'status 200$' <<<"$bye_a" && grep -q 'status 200$' <<<"$bye_b" || ok=0
    # tx_pkt and rx_pkt both above 0, at both ends
    for l in "$rtp_a" "$rtp_b"; do
        awk '{ for (i = 1; i < NF; i++) { if ($i == "tx_pkt") t = $(i + 1); if ($i == "rx_pkt") r = $(i + 1) }
            exit !(t > 0 && r > 0) }' <<<"$l" || ok=0
    done
    local thread
    thread=$(sed -n 's/.*\[thread \(.*\)\]$/\1/p' <<<"$lookup_line")
    [ "$thread" = "$CB_THREAD" ] || ok=0
    local summary="lookup on thread $thread; $a: ${rtp_a#rtp } | $b: ${rtp_b#rtp } | BYE $a ${bye_a##* } -> $b ${bye_b##* }"
    if [ $ok -eq 1 ]; then
        pass "$RUN: $a calls $b ($(elapsed "$start") s): $summary"
    else
        fail "$RUN-call-$a$b" "$summary (callbacks expected on $CB_THREAD)"
    fi
}

# The thread hooks, shown: one agent alone in a new ring calls itself.
hooks_demo() {
    RUN=hooks
    local s l rc
    # Thread delivery without hooks: the lookup's callback runs on a chordsip
    # thread unknown to pjlib and calls pjsua_call_make_call: pjlib's assert.
    start_agent hooks D "" --delivery thread --no-thread-hooks || return 1
    send D "call ${AOR[D]}"
    # (bash's "Aborted" job notice is expected here: hidden)
    { stop_within 15 "${PID[D]}" none; } 2>/dev/null
    rc=$?
    forget_pid "${PID[D]}"; exec {FD[D]}>&-
    if [ $rc -ne 0 ] && grep -q 'Calling pjlib from unknown/external thread' "$OUT/hooks/D.err" &&
        grep -q '\[thread unregistered\]$' "$OUT/hooks/D.out"; then
        pass "hooks: thread delivery without the hooks: pjlib aborted the agent (exit $rc) on the library thread's first pjsua call"
    else
        fail hooks-none "expected pjlib's unknown-thread assertion, got exit $rc"
        tail -n 5 "$OUT/hooks/D.err" | sed 's/^/      /'
    fi
    mv "$OUT/hooks/D.out" "$OUT/hooks/D-no-hooks.out"; mv "$OUT/hooks/D.err" "$OUT/hooks/D-no-hooks.err"
    # Thread delivery with the hooks: the same callback places the call.
    start_agent hooks D "" --delivery thread || return 1
    s=0
    send D "call ${AOR[D]}"
    if l=$(wait_line D "$s" '^call [0-9]+ CONFIRMED' "$WAIT") &&
        grep -q '\[thread chordsip[0-9]*\]$' "$OUT/hooks/D.out"; then
        pass "hooks: thread delivery with the hooks: $(grep -m1 '^lookup' "$OUT/hooks/D.out"), call answered"
    else
        fail hooks-thread "no call placed from the library thread: $(grep -m1 '^lookup' "$OUT/hooks/D.out")"
    fi
    # Its refreshes come on the library's (registered) thread; it may quit
    # before the first.
    quit_agent D 'chordsip[0-9]*' 0
}

# scenario: the three agents, three calls, a kill, two more calls, quits.
scenario() {
    RUN=$1
    start_agent "$RUN" A "" || return 1
    start_agent "$RUN" B "127.0.0.1:${OV_PORT[A]}" || return 1
    start_agent "$RUN" C "127.0.0.1:${OV_PORT[A]},127.0.0.1:${OV_PORT[B]}" || return 1
    call A B
    call B C
    call C A
    kill -KILL "${PID[C]}"
    wait "${PID[C]}" 2>/dev/null
    forget_pid "${PID[C]}"; exec {FD[C]}>&-
    echo "agent C killed (SIGKILL)"
    call A B
    call B A
    quit_agent A
    quit_agent B
}

# The ASan run's verdict: no sanitizer report in any agent's stderr.
sanitizer_verdict() {
    local f bad=0
    for f in "$OUT/$1"/*.err; do
        if grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer' "$f"; then
            bad=1
            fail "$1-sanitizer" "$(basename "$f"): $(grep -m1 -E 'ERROR:|runtime error:|SUMMARY:' "$f")"
            grep -E '^ +#[0-9]+ ' "$f" | head -n 12 | sed 's/^/      /'
        fi
    done
    [ $bad -eq 0 ] && pass "$1: no AddressSanitizer, LeakSanitizer or UBSan report from any agent"
}

echo "== thread hooks"
WRAP=(); SLOW=(); AGENT=$BIN/pjsua-p2p; WAIT=20; TALK=2; CB_THREAD=pjsua_0
T1=$(date +%s.%N)
hooks_demo || fail hooks "an agent did not start"
echo "== plain: three agents, A->B, B->C, C->A, C killed, A<->B"
scenario plain || fail plain "an agent did not start"
echo "plain run: $(elapsed "$T1") s"

echo "== ASan+UBSan: the same scenario"
T2=$(date +%s.%N)
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
AGENT=$BIN/pjsua-p2p-asan; WAIT=40
SLOW=(-o op_timeout_ms=15000)
scenario asan || fail asan "an agent did not start"
sanitizer_verdict asan
echo "ASan run: $(elapsed "$T2") s"

echo "pjsua-p2p tests: $(elapsed "$T0") s in all"
if [ ${#failed[@]} -gt 0 ]; then
    echo "pjsua-p2p tests FAILED: ${failed[*]}"
    exit 1
fi
echo "pjsua-p2p tests: all passed"

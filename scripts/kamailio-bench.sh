#!/usr/bin/env bash
# Kamailio benchmark, side by side in one run, same SIPp scenarios
# (tests/sip/register.xml, uac-call.xml, register-auth.xml), same cfg
# (bindings/kamailio/kamailio.cfg):
#   usrloc     one Kamailio with its own in-memory usrloc (-A WITH_USRLOC);
#   chordsip   one Kamailio with the chordsip module (an overlay of one);
#   overlay3   three Kamailio servers in one chordsip overlay: REGISTERs
#              spread over all three (the users take turns), calls through the
#              second to users registered at the first;
#   (these three unauthenticated, -A NO_AUTH, as before issue 14)
#   usrloc-auth    one Kamailio with usrloc and SIP digest authentication by
#              auth_db over db_text (the subscriber table's HA1 column, in a
#              directory made here);
#   overlay3-auth  three Kamailio servers as shipped (authenticating), the
#              users' HA1s stored in the overlay with `chordsip user add`;
#              REGISTERs at the first.
# For the first three, REGISTER/s then calls/s (INVITE/200/ACK/BYE/200) rate by
# rate, each for BENCH_SECONDS (10) s, until a rate fails (>=1% failed, SIPp
# below 95% of the rate, or a p99 over 500 ms); see `bench` in tests/sip/lib.sh.
# For the two -auth setups, authenticated registrations/s: each is a REGISTER
# answered 401 with a challenge, then the REGISTER with the digest (MD5,
# SIPp's [authentication]) answered 200 (tests/sip/register-auth.xml), by a
# pool of BENCH_AUTH_USERS (500) users re-registering in turn, rate by rate
# the same way (p50/p99: first REGISTER to the 200).
# The first three run their series BENCH_RUNS (1) times for each worker
# count, taking turns; the -auth setups are all up at once and take turns,
# run by run. The summary gives every run's figure, the median per worker
# count, and each setup at its best worker count against usrloc at its best.
#
#   scripts/kamailio-bench.sh
#   BENCH_SETUPS="usrloc-auth overlay3-auth" BENCH_RUNS=3 scripts/kamailio-bench.sh
#
# Environment: BENCH_SECONDS, BENCH_SETUPS ("usrloc chordsip overlay3
# usrloc-auth overlay3-auth"), BENCH_RUNS, BENCH_REG_RATES, BENCH_CALL_RATES,
# BENCH_AUTH_RATES, BENCH_AUTH_USERS, KAMAILIO_WORKERS (the UDP worker counts
# swept for the first three setups, "2 4 8 16": each setup is compared at its
# own best; a chordsip worker waits for each overlay round trip, so it may
# want more workers than usrloc), BENCH_AUTH_WORKERS (4, the -auth setups),
# SIP_TEST_PORT_BASE. Output in target/kamailio-bench/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SECONDS_PER_RATE=${BENCH_SECONDS:-10}
SETUPS=${BENCH_SETUPS:-"usrloc chordsip overlay3 usrloc-auth overlay3-auth"}
RUNS=${BENCH_RUNS:-1}
AUTH_RATES=${BENCH_AUTH_RATES-"1000 1500 2000 2500 3000 4000 5000 6000 7000 8000 9000 10000 11000 12000"}
AUTH_USERS=${BENCH_AUTH_USERS:-500}
REG_RATES=${BENCH_REG_RATES-"1000 2000 4000 6000 8000 9000 10000 11000 12000 14000"}
CALL_RATES=${BENCH_CALL_RATES-"500 1000 1500 2000 2250 2500 2750"}
WORKER_COUNTS=${KAMAILIO_WORKERS:-"2 4 8 16"}
AUTH_WORKERS=${BENCH_AUTH_WORKERS:-4}
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
# Servers without an overlay key unless OVERLAY_KEY names one: the numbers in
# docs/PERFORMANCE.md were measured so (the tests run keyed).
OVERLAY_KEY=${OVERLAY_KEY-}

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
echo "== $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1); $(kamailio -v | head -n 1 | sed 's/^version: //'), UDP workers $WORKER_COUNTS (-auth setups $AUTH_WORKERS); $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1)"

# The users of the -auth setups: a CSV for SIPp (user;domain;[authentication ...]),
# their HA1s for db_text (auth_db's subscriber table) and for `chordsip user add`.
AUTH_SECRET=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
python3 - "$OUT" "$AUTH_USERS" "$DOMAIN" <<'PY'
import hashlib, os, sys
out, n, domain = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.makedirs(out + "/dbtext", exist_ok=True)
with open(out + "/auth-users.csv", "w") as csv, open(out + "/dbtext/subscriber", "w") as sub:
    csv.write("SEQUENTIAL\n")
    sub.write("id(int,auto) username(string) domain(string) password(string) ha1(string) ha1b(string) \n")
    for i in range(1, n + 1):
        user, pw = "auth%d" % i, os.urandom(6).hex()
        ha1 = hashlib.md5(("%s:%s:%s" % (user, domain, pw)).encode()).hexdigest()
        csv.write("%s;%s;[authentication username=%s password=%s]\n" % (user, domain, user, pw))
        sub.write("%d:%s:%s:-:%s:-\n" % (i, user, domain, ha1))  # db_text: no empty fields
with open(out + "/dbtext/version", "w") as v:
    v.write("id(int,auto) table_name(string) table_version(int) \n0:subscriber:7\n")
PY

# auth_series LABEL TARGET: authenticated registrations of the pool, rate by rate
# until one fails; sets BEST_REG.
auth_series() {
    local label=$1 target=$2 r
    BEST_REG=0
    for r in $AUTH_RATES; do
        bench "$label" "$r" register-auth.xml "$OUT/auth-users.csv" "$target" \
            -key contact_hostport "127.0.0.1:$UAS_PORT" || break
        BEST_REG=$r
        sleep 2
    done
}

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "?") }'; }

# up_trio PREFIX SIP_BASE OVERLAY_BASE [-A DEFINE...]: three servers, one overlay,
# one registrar (a shared writer key: each routes to what the others stored).
up_trio() {
    local p=$1 sip=$2 ovl=$3 i; shift 3
    rm -f "$OUT/writer.key"
    "$ROOT/target/release/chordsip" keygen --out "$OUT/writer.key" 2>/dev/null || return 1
    kamailio_up "${p}1" "$sip" -A "OVERLAY_LISTEN=\"127.0.0.1:$ovl\"" -A "WRITER_KEY_FILE=\"$OUT/writer.key\"" "$@" || return 1
    for i in 1 2; do
        kamailio_up "$p$((i + 1))" $((sip + i)) -A "OVERLAY_LISTEN=\"127.0.0.1:$((ovl + i))\"" \
            -A "OVERLAY_BOOTSTRAP=\"127.0.0.1:$ovl\"" -A "WRITER_KEY_FILE=\"$OUT/writer.key\"" "$@" || return 1
    done
    wait_ring "$ovl" $((ovl + 1)) $((ovl + 2))
}

down() { # the servers go (gracefully), the UAS stays
    local p
    for p in "${setup_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    # (each then gets 30 s before SIGKILL to its group: the bench must not hang on one)
    for p in "${setup_pids[@]}"; do stop_within 30 "$p" none; forget_pid "$p"; done
    setup_pids=()
    sleep 1
}

summary=()
auth_setups=()
plain_setups=()
for setup in $SETUPS; do
    case $setup in
    usrloc | chordsip | overlay3) plain_setups+=("$setup") ;;
    usrloc-auth | overlay3-auth) auth_setups+=("$setup") ;;
    *) echo "unknown setup $setup"; exit 1 ;;
    esac
done
# -- unauthenticated setups: run by run, worker count by worker count, the
# setups take turns (so that whatever else the machine does falls on all alike)
declare -A regs callr
for run in $(seq 1 "$RUNS"); do
    for w in $WORKER_COUNTS; do
        for setup in "${plain_setups[@]}"; do
            WORKERS=$w
            case $setup in
            usrloc)
                kamailio_up usrloc "$BASE" -A WITH_USRLOC -A NO_AUTH || exit 1
                reg=127.0.0.1:$BASE call=127.0.0.1:$BASE ;;
            chordsip)
                kamailio_up chordsip "$BASE" -A NO_AUTH -A "OVERLAY_LISTEN=\"127.0.0.1:$((BASE + 10))\"" || exit 1
                wait_ring_one=$("$ROOT/target/release/chordsip" ring --via "127.0.0.1:$((BASE + 10))" --timeout-ms 2000 --client-key-file "$(client_key_file)" | head -n 2 | tail -n 1)
                echo "   overlay node: $wait_ring_one"
                reg=127.0.0.1:$BASE call=127.0.0.1:$BASE ;;
            overlay3)
                up_trio k "$BASE" $((BASE + 10)) -A NO_AUTH || exit 1
                reg=127.0.0.1:$BASE,127.0.0.1:$((BASE + 1)),127.0.0.1:$((BASE + 2))
                call=127.0.0.1:$((BASE + 1)) ;;
            esac
            CPU_SESSIONS=$(IFS=,; echo "${setup_pids[*]}")
            echo "== $setup, $WORKERS workers (run $run/$RUNS): REGISTER at $reg, ${SECONDS_PER_RATE} s per rate"
            register_series "$setup-w$WORKERS-r$run-reg" "$reg" $REG_RATES
            echo "== $setup, $WORKERS workers (run $run/$RUNS): calls through $call to users registered at ${reg%%,*}"
            call_series "$setup-w$WORKERS-r$run-call" "${reg%%,*}" "$call" $CALL_RATES
            regs[$setup.$WORKERS]="${regs[$setup.$WORKERS]:-} $BEST_REG"
            callr[$setup.$WORKERS]="${callr[$setup.$WORKERS]:-} $BEST_CALL"
            down
        done
    done
done
WORKERS=$AUTH_WORKERS
# Each setup at its best worker count (by the median REGISTER rate; calls likewise).
declare -A best_reg best_call best_reg_w best_call_w
for setup in "${plain_setups[@]}"; do
    best_reg[$setup]=0 best_call[$setup]=0
    for w in $WORKER_COUNTS; do
        r=$(median <<<"${regs[$setup.$w]}") c=$(median <<<"${callr[$setup.$w]}")
        summary+=("$(printf '%-13s %2s workers: REGISTER %6s/s  calls %5s/s (runs:%s;%s)' "$setup" "$w" "$r" "$c" \
            "${regs[$setup.$w]}" "${callr[$setup.$w]}")")
        [ "$r" -gt "${best_reg[$setup]}" ] && best_reg[$setup]=$r best_reg_w[$setup]=$w
        [ "$c" -gt "${best_call[$setup]}" ] && best_call[$setup]=$c best_call_w[$setup]=$w
    done
done
for setup in "${plain_setups[@]}"; do
    line=$(printf '%-13s best: REGISTER %6s/s (%s workers)  calls %5s/s (%s workers)' "$setup" \
        "${best_reg[$setup]}" "${best_reg_w[$setup]:-?}" "${best_call[$setup]}" "${best_call_w[$setup]:-?}")
    if [ "$setup" != usrloc ] && [ "${best_reg[usrloc]:-0}" -gt 0 ]; then
        line+=$(awk -v a="${best_reg[$setup]}" -v b="${best_reg[usrloc]}" -v c="${best_call[$setup]}" -v d="${best_call[usrloc]}" \
            'BEGIN { printf "  = %d%% / %s of usrloc", 100 * a / b, (d > 0 ? sprintf("%d%%", 100 * c / d) : "?") }')
    fi
    summary+=("$line")
done

# -- authenticated setups: all up at once, their runs taking turns -----------------------
# (so that whatever else the machine does falls on both alike)
declare -A target results sessions
for setup in "${auth_setups[@]}"; do
    up_before=${#setup_pids[@]}
    case $setup in
    usrloc-auth)
        kamailio_up ulauth $((BASE + 5)) -A WITH_USRLOC -A "DBTEXT_URL=\"text://$OUT/dbtext\"" \
            -A "AUTH_SECRET=\"$AUTH_SECRET\"" || exit 1
        target[$setup]=127.0.0.1:$((BASE + 5)) ;;
    overlay3-auth)
        writer_key "$OUT/admin.key" && "$ROOT/target/release/chordsip" keygen --out "$OUT/credentials.key" 2>/dev/null || exit 1
        up_trio a $((BASE + 6)) $((BASE + 16)) -A "CREDENTIALS_KEY_FILE=\"$OUT/credentials.key\"" \
            -A "CREDENTIAL_ADMINS=\"$(cat "$OUT/admin.key.pub")\"" -A "AUTH_SECRET=\"$AUTH_SECRET\"" || exit 1
        t0=$(date +%s.%N) n=0
        while IFS=';' read -r user _ cred; do
            pw=${cred##*password=}
            printf '%s@%s %s\n' "$user" "$DOMAIN" "${pw%]}"
        done < <(tail -n +2 "$OUT/auth-users.csv") >"$OUT/auth-users.txt"
        timeout 120 "$ROOT/target/release/chordsip" user add --from-file "$OUT/auth-users.txt" \
            --bootstrap "127.0.0.1:$((BASE + 16))" --admin-key-file "$OUT/admin.key" \
            --credentials-key-file "$OUT/credentials.key" </dev/null >>"$OUT/user-add.log" 2>&1 &&
            n=$AUTH_USERS
        echo "   $n of $AUTH_USERS users stored with chordsip user add --from-file in $(elapsed "$t0") s"
        [ "$n" = "$AUTH_USERS" ] || { echo "provisioning failed: $OUT/user-add.log"; exit 1; }
        sleep 5 # the ring settles after the admin's short-lived nodes came and went
        target[$setup]=127.0.0.1:$((BASE + 6)) ;;
    esac
    sessions[$setup]=$(IFS=,; echo "${setup_pids[*]:$up_before}")
done
for run in $(seq 1 "$RUNS"); do
    for setup in "${auth_setups[@]}"; do
        echo "== $setup (run $run/$RUNS): authenticated registrations (401, then 200) of $AUTH_USERS users at ${target[$setup]}, ${SECONDS_PER_RATE} s per rate"
        CPU_SESSIONS=${sessions[$setup]}
        auth_series "$setup-r$run" "${target[$setup]}"
        results[$setup]="${results[$setup]:-} $BEST_REG"
        sleep 10 # a failed rate leaves retransmissions to drain
    done
done
for setup in "${auth_setups[@]}"; do
    summary+=("$(printf '%-13s authenticated REGISTER %6s/s (runs:%s)' "$setup" \
        "$(median <<<"${results[$setup]}")" "${results[$setup]}")")
done
[ ${#auth_setups[@]} -gt 0 ] && down
echo
echo "sustained (<1% failed, >=95% of the rate, p99 < 500 ms; the highest rate tried that passed; median of the runs):"
printf '  %s\n' "${summary[@]}"
echo "(runs in $OUT)"

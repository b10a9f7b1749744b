#!/usr/bin/env bash
# Hybrid overlay end to end, with unmodified user agents (issue 15): five
# Kamailio servers (bindings/kamailio/kamailio.cfg as shipped, the chordsip
# module, REGISTERs authenticated) form a one-hop overlay and publish
# themselves in a real DNS server; user agents know only the SIP domain.
#
#   1. knotd (Knot DNS) on 127.0.0.53:53 serves the zone hybrid.test and
#      takes RFC 2136 updates signed with a TSIG key made here. Port 53
#      because PJSUA's `nameserver` takes no port (pjsua_init passes none to
#      pj_dns_resolver_set_ns, which then uses 53), on an address of its own
#      so nothing else on the machine is in the way;
#   2. five Kamailio servers H1..H5 on 127.0.0.21..25:5060 (overlay nodes on
#      the same addresses, port 5070), domain hybrid.test (-A SIP_DOMAIN),
#      one-hop routing and DNS publication through modparam("chordsip",
#      "set", ...) (-A CHORDSIP_SETn): routing=one-hop, sip_address, capacity,
#      dns_server, dns_zone, dns_key_file, dns_ttl_s, virtual_nodes (256:
#      keys placed by virtual points); kdig must show the five
#      in `_sip._udp.hybrid.test` SRV, each with its A record;
#   3. users stored with `chordsip user add --from-file` (HYBRID_USERS SIPp
#      users and two PJSUA users);
#   4. SIPp load through the five: the users registered in five slices, one
#      per server (five SIPp at once, digest authentication), then each slice
#      called through the next server (five SIPp at once); a SIPp UAS answers;
#   5. PJSUA2 (tests/sip/pjsua2_hybrid.py, PyPI's pjsua2-python in
#      target/pyenv): two agents on 127.0.0.31/.32 configured with only the
#      domain and the DNS server register (DNS SRV) and call each other
#      (200, media, BYE); then two servers are killed with SIGKILL (every
#      process of each): the server of the first agent, and the second's (or
#      another); once the DNS has dropped them and the agents' DNS caches ran
#      out (the TTL, 5 s) the agents re-register through the remaining
#      servers and call again; the time from the kill to the 200 is printed;
#   6. SIPp through the three that remain: every user (including those
#      registered at the killed servers) called at once, then all registered
#      again round-robin and called through another server;
#   7. no ERROR/CRITICAL in the survivors' logs, no slow call (counters),
#      knotd's log shows the signed updates and no refused one.
# Before all this, Kamailio given a bad `set` (bad value, unknown name, a
# setting the module owns, settings that do not fit together) must refuse
# to start and say why.
# Every process started here is stopped on exit, failures and ^C included.
#
#   scripts/hybrid-tests.sh            the tests above (about 30 s)
#   scripts/hybrid-tests.sh --bench    SIPp throughput through five servers,
#       one-hop (with DNS publication) against multi-hop (the same cfg,
#       routing=multi-hop, no DNS), unauthenticated (-A NO_AUTH, as
#       scripts/kamailio-bench.sh): REGISTER/s and calls/s rate by rate, five
#       SIPp at once (one per server, each a fifth of the rate; calls through
#       the next server), medians of BENCH_RUNS (3) rounds.
#
# Environment: HYBRID_VNODES (virtual_nodes, 256), HYBRID_USERS (500), HYBRID_RATE (calls/s of each of the five
# SIPp, 40), BENCH_RUNS, BENCH_SECONDS (10), BENCH_REG_RATES,
# BENCH_CALL_RATES, KAMAILIO_WORKERS (bench: 16), SIP_TEST_PORT_BASE (SIPp's
# ports on 127.0.0.1). Output in target/hybrid-tests/ (target/hybrid-bench/).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
T_START=$(date +%s.%N)
MODE="test"
[ "${1:-}" = --bench ] && MODE="bench"
DOMAIN=hybrid.test
# Keys placed by virtual points (one-hop mode): every member, and the
# administrator's short-lived node, must use the same number.
VNODES=${HYBRID_VNODES:-256}
STAGE=$ROOT/target/stage
OUT=$ROOT/target/hybrid-tests
[ $MODE = bench ] && OUT=$ROOT/target/hybrid-bench
SIP=$ROOT/tests/sip
BIN=$OUT/bin
MODULE=$ROOT/target/kamailio/chordsip.so
CFG=$ROOT/bindings/kamailio/kamailio.cfg
B=$ROOT/target/release/chordsip
N_USERS=${HYBRID_USERS:-500}
RATE=${HYBRID_RATE:-40}
DNS_IP=127.0.0.53
DNS_TTL=5
SERVERS=(127.0.0.21 127.0.0.22 127.0.0.23 127.0.0.24 127.0.0.25)
PJ_IPS=(127.0.0.31 127.0.0.32)
failed=()
# shellcheck source=tests/sip/lib.sh
. "$SIP/lib.sh"
# The servers share an overlay key (start_kamailio's default); the benchmark
# runs without one unless OVERLAY_KEY names one, as its documented numbers were measured.
[ $MODE = bench ] && OVERLAY_KEY=${OVERLAY_KEY-}

./scripts/setup.sh || exit 1
rm -rf "$OUT"
mkdir -p "$OUT"

# Tools: a missing one fails (no skips).
KNOTD=$(command -v knotd || echo /usr/sbin/knotd)
DIG=$(command -v kdig || command -v dig || true)
[ -x "$KNOTD" ] || { echo "hybrid-tests: knotd not found (apt-get install knot)"; exit 1; }
[ -n "$DIG" ] || { echo "hybrid-tests: kdig or dig not found (apt-get install knot-dnsutils)"; exit 1; }

echo "== staging the library and building the Kamailio module"
stage_and_build || exit 1
./scripts/kamailio-build.sh || exit 1
echo "$(kamailio -v | head -n 1); $(sipp -v 2>&1 | grep -o 'SIPp v[^ ]*' | head -1); $("$KNOTD" -V 2>&1 | head -1)"

pick_ports || exit 1
UAS_PORT=$((BASE + 20)) UAC_PORT=$((BASE + 21)) # SIPp: UAC_PORT..UAC_PORT+4

# The fixed loopback addresses must be free (UDP, and TCP for DNS).
addresses_free() {
    python3 - "$DNS_IP" "${SERVERS[@]}" "${PJ_IPS[@]}" <<'PY'
import socket, sys
dns, rest = sys.argv[1], sys.argv[2:]
want = [(dns, 53, socket.SOCK_DGRAM), (dns, 53, socket.SOCK_STREAM)]
for ip in rest:
    want += [(ip, 5060, socket.SOCK_DGRAM), (ip, 5070, socket.SOCK_DGRAM)]
busy = []
for ip, port, kind in want:
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind((ip, port))
    except OSError as e:
        busy.append("%s:%d/%s (%s)" % (ip, port, "udp" if kind == socket.SOCK_DGRAM else "tcp", e.strerror))
    finally:
        s.close()
if busy:
    print("in use: " + ", ".join(busy))
    sys.exit(1)
PY
}
addresses_free || { echo "hybrid-tests: the loopback addresses this test uses are taken (another run?)"; exit 1; }

# dns NAME TYPE: the answer's lines (+short), sorted.
dns() {
    "$DIG" "@$DNS_IP" -p 53 +short +time=1 +retry=0 "$1" "$2" 2>/dev/null | grep -v '^;' | sort
}

# srv_members: "ip:port/weight" of every published SRV target (its A record), sorted.
srv_members() {
    local weight port target ip
    dns "_sip._udp.$DOMAIN" SRV | while read -r _ weight port target; do
        [ -n "$target" ] || continue
        for ip in $(dns "$target" A); do echo "$ip:$port/$weight"; done
    done | sort
}

# wait_published SECONDS ADDR...: until the SRV records list exactly these
# servers (ip:5060), each with weight 100 and its A record; prints the time.
wait_published() {
    local secs=$1 want got t0; shift
    t0=$(date +%s.%N)
    want=$(printf '%s:5060/100\n' "$@" | sort)
    for _ in $(seq 1 $((secs * 10))); do
        got=$(srv_members)
        [ "$got" = "$want" ] && { PUBLISHED_AFTER=$(elapsed "$t0"); return 0; }
        sleep 0.1
    done
    echo "   DNS lists: $(tr '\n' ' ' <<<"$got") (want: $(tr '\n' ' ' <<<"$want"))"
    return 1
}

# wait_members ADDR...: until every node (overlay ADDR:5070) has a predecessor and
# all the others as successors (`chordsip ring`), at most 15 s.
wait_members() {
    local a t ok
    for _ in $(seq 1 150); do
        ok=1
        for a in "$@"; do
            t=$("$B" ring --via "$a:5070" --timeout-ms 500 --client-key-file "$(client_key_file)" 2>/dev/null) || ok=0
            grep -q '^predecessor\[0\]' <<<"$t" && grep -q "^successor\[$(($# - 2))\]" <<<"$t" || ok=0
        done
        [ $ok -eq 1 ] && return 0
        sleep 0.1
    done
    echo "the overlay of $* did not form one ring within 15 s"
    return 1
}

# ---- knotd ------------------------------------------------------------------------------
start_knot() {
    local k=$OUT/knot secret
    mkdir -p "$k/db" # knotd starts without it but then refuses every update
    secret=$(head -c 32 /dev/urandom | base64)
    # the key as BIND writes it (what dns_key_file reads), and knotd's config
    printf 'key "chordsip-hybrid." {\n\talgorithm hmac-sha256;\n\tsecret "%s";\n};\n' "$secret" >"$k/tsig.key"
    chmod 600 "$k/tsig.key"
    cat >"$k/knot.conf" <<CONF
server:
    rundir: "$k"
    listen: $DNS_IP@53
database:
    storage: "$k/db"
log:
  - target: stderr
    any: info
key:
  - id: chordsip-hybrid.
    algorithm: hmac-sha256
    secret: $secret
acl:
  - id: overlay
    key: chordsip-hybrid.
    action: update
template:
  - id: default
    storage: "$k"
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: changes
zone:
  - domain: $DOMAIN
    file: $DOMAIN.zone
    acl: overlay
CONF
    cat >"$k/$DOMAIN.zone" <<ZONE
\$ORIGIN $DOMAIN.
\$TTL 60
@ SOA ns.$DOMAIN. hostmaster.$DOMAIN. 1 3600 600 86400 60
@ NS ns
ns A $DNS_IP
ZONE
    "$KNOTD" -c "$k/knot.conf" >"$k/knotd.log" 2>&1 &
    KNOT_PID=$!
    pids+=("$KNOT_PID")
    for _ in $(seq 1 150); do
        [ -n "$(dns "$DOMAIN" SOA)" ] && { echo "knotd (pid $KNOT_PID): $DNS_IP:53, zone $DOMAIN"; return 0; }
        kill -0 "$KNOT_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "knotd did not come up:"; tail -n 20 "$k/knotd.log"
    return 1
}

# ---- five servers -------------------------------------------------------------------------
# up_five ROUTING [-A DEFINE...]: H1..H5; ROUTING one-hop publishes in DNS.
# Sets H_PIDS (by index) and H_UP (the addresses of the servers up).
up_five() {
    local routing=$1 i ip sets; shift
    H_PIDS=() H_UP=()
    for i in 0 1 2 3 4; do
        ip=${SERVERS[$i]}
        sets=(-A "CHORDSIP_SET1=\"routing=$routing\"")
        if [ "$routing" = one-hop ]; then
            sets+=(-A "CHORDSIP_SET2=\"sip_address=$ip:5060\"" -A "CHORDSIP_SET3=\"capacity=100\""
                -A "CHORDSIP_SET4=\"dns_server=$DNS_IP:53\"" -A "CHORDSIP_SET5=\"dns_zone=$DOMAIN\""
                -A "CHORDSIP_SET6=\"dns_key_file=$OUT/knot/tsig.key\"" -A "CHORDSIP_SET7=\"dns_ttl_s=$DNS_TTL\""
                -A "CHORDSIP_SET8=\"virtual_nodes=$VNODES\"")
        fi
        [ "$i" -gt 0 ] && sets+=(-A "OVERLAY_BOOTSTRAP=\"${SERVERS[0]}:5070\"")
        SIP_ADDR=$ip start_kamailio "H$((i + 1))" "$CFG" 5060 -A "SIP_DOMAIN=$DOMAIN" \
            -A "OVERLAY_LISTEN=\"$ip:5070\"" -A "WRITER_KEY_FILE=\"$OUT/writer.key\"" "${sets[@]}" "$@" || return 1
        local v=PID_H$((i + 1))
        H_PIDS[i]=${!v}
        H_UP+=("$ip")
    done
    wait_members "${SERVERS[@]}"
}

down_five() { # gracefully
    local p
    for p in "${H_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    # (each then gets 30 s before SIGKILL to its group: a hung stop must not hang the run)
    for p in "${H_PIDS[@]}"; do stop_within 30 "$p" none; forget_pid "$p"; done
    H_PIDS=()
}

# kill_server INDEX: SIGKILL to every process of H(INDEX+1).
kill_server() {
    local p=${H_PIDS[$1]}
    kill -KILL -- "-$p" 2>/dev/null
    wait "$p" 2>/dev/null
    forget_pid "$p"
}

"$B" keygen --out "$OUT/writer.key" 2>/dev/null || exit 1

# ---- SIPp helpers -------------------------------------------------------------------------
# sipp5 LABEL EXPECTED_EACH SCENARIO CSV_PREFIX TARGETS... : five SIPp at once, the i-th
# (CSV CSV_PREFIX-i.csv, local port UAC_PORT+i) at the i-th target; one verdict each.
sipp5() {
    local label=$1 want=$2 scen=$3 csv=$4 i t0 run_pids=(); shift 4
    local targets=("$@")
    t0=$(date +%s.%N)
    for i in "${!targets[@]}"; do
        start_sipp "$label-$((i + 1))" -sf "$SIP/$scen" -inf "$csv-$((i + 1)).csv" \
            -key contact_hostport "127.0.0.1:$UAS_PORT" -m "$want" -r "$RATE" \
            -i 127.0.0.1 -p $((UAC_PORT + i)) "${targets[$i]}:5060"
        run_pids+=("$SIPP_PID")
    done
    for i in "${!targets[@]}"; do
        wait_sipp "$label-$((i + 1))" "$want" "${run_pids[$i]}" "$t0"
    done
}

# refused NAME REASON_REGEX SET...: a Kamailio given these `set` values must not start,
# and say why in its log.
refused() {
    local name=$1 why=$2 dir=$OUT/$1 rc i=0 args=(); shift 2
    for v in "$@"; do i=$((i + 1)); args+=(-A "CHORDSIP_SET$i=\"$v\""); done
    mkdir -p "$dir"
    timeout 20 kamailio -f "$CFG" -DD -E -A NO_AUTH -A "RUN_DIR=\"$dir\"" -A "SIP_ADDR=${SERVERS[0]}" \
        -A SIP_PORT=5060 -A "OVERLAY_LISTEN=\"${SERVERS[0]}:5070\"" -A "CHORDSIP_MODULE=\"$MODULE\"" \
        "${args[@]}" >"$dir/kamailio.log" 2>&1
    rc=$?
    if [ $rc != 0 ] && [ $rc != 124 ] && grep -qE "$why" "$dir/kamailio.log"; then
        pass "$(printf '%-22s %s' "$name" "refused to start (exit $rc): $(grep -oE "$why.*" "$dir/kamailio.log" | head -n 1)")"
    else
        fail "$name" "exit $rc, expected a refusal matching '$why' (see $dir/kamailio.log)"
    fi
}

if [ $MODE = test ]; then
    # ---- 0. bad settings stop Kamailio at startup -------------------------------------------
    echo "== modparam(\"chordsip\", \"set\", ...) with bad settings: Kamailio must refuse to start"
    refused set-bad-value 'modparam set "routing=two-hop": .*' routing=two-hop
    refused set-unknown-name 'modparam set "no_such_option=1": .*' no_such_option=1
    refused set-owned-name 'use modparam\("chordsip", "socket".*' client_socket=/tmp/x.sock
    refused set-inconsistent "the node's settings do not fit together: .*" "dns_server=$DNS_IP:53" "dns_zone=$DOMAIN"

    # ---- 1. DNS and five servers ---------------------------------------------------------
    start_knot || exit 1
    writer_key "$OUT/admin.key" && "$B" keygen --out "$OUT/credentials.key" 2>/dev/null || exit 1
    AUTH_SECRET=$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')
    AUTH=(-A "CREDENTIALS_KEY_FILE=\"$OUT/credentials.key\"" -A "CREDENTIAL_ADMINS=\"$(cat "$OUT/admin.key.pub")\""
        -A "AUTH_SECRET=\"$AUTH_SECRET\"")
    echo "== five Kamailio servers (one-hop, publishing in DNS, authenticating) on ${SERVERS[0]}..${SERVERS[4]}:5060"
    sip_ports_free "${SERVERS[@]/%/:5060}" || exit 1
    t0=$(date +%s.%N)
    up_five one-hop "${AUTH[@]}" || exit 1
    echo "   one overlay after $(elapsed "$t0") s"
    if wait_published 30 "${SERVERS[@]}"; then
        pass "$(printf '%-22s %s' dns-five "_sip._udp.$DOMAIN SRV lists the five (weight 100, A records), $PUBLISHED_AFTER s after the ring formed: $(srv_members | tr '\n' ' ')")"
    else
        fail dns-five "the SRV records do not list the five servers within 30 s"
        exit 1
    fi

    # ---- 2. users ----------------------------------------------------------------------
    PER=$((N_USERS / 5))
    for i in 1 2 3 4 5; do
        auth_users "$OUT/users-$i.csv" $(((i - 1) * PER + 1)) $((i * PER)) huser
    done
    PJ_PW_A=pa-$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n') PJ_PW_B=pb-$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')
    { cat "$OUT"/users-?.csv.txt; printf 'pjalice@%s %s\npjbob@%s %s\n' "$DOMAIN" "$PJ_PW_A" "$DOMAIN" "$PJ_PW_B"; } \
        >"$OUT/all-users.txt"
    t0=$(date +%s.%N)
    added=0
    timeout 120 "$B" user add --from-file "$OUT/all-users.txt" --bootstrap "${SERVERS[0]}:5070" \
        --admin-key-file "$OUT/admin.key" --credentials-key-file "$OUT/credentials.key" \
        --set routing=one-hop --set "virtual_nodes=$VNODES" --key-file "$(server_overlay_key)" \
        </dev/null >"$OUT/user-add.log" 2>&1 && added=$((PER * 5 + 2))
    line=$(printf '%-22s %s' user-add "$added of $((PER * 5 + 2)) users stored with chordsip user add --from-file in $(elapsed "$t0") s")
    if [ "$added" = $((PER * 5 + 2)) ]; then pass "$line"; else fail user-add "$line; see $OUT/user-add.log"; exit 1; fi

    # ---- 3. SIPp through the five ------------------------------------------------------------
    start_uas "$UAS_PORT" || exit 1
    uas_calls=0
    echo "== SIPp: $((PER * 5)) users register, a fifth at each server (digest), then each fifth is called through the next server"
    sipp5 register-5 "$PER" register-auth.xml "$OUT/users" "${SERVERS[@]}"
    sipp5 calls-5 "$PER" uac-call.xml "$OUT/users" "${SERVERS[1]}" "${SERVERS[2]}" "${SERVERS[3]}" "${SERVERS[4]}" "${SERVERS[0]}"
    uas_calls=$((uas_calls + PER * 5))

    # ---- 4. PJSUA2: DNS only, then two servers killed ----------------------------------------
    PJ_PY=$ROOT/target/pyenv/bin/python
    if ! "$PJ_PY" -c 'import pjsua2' 2>/dev/null; then
        echo "== installing pjsua2-python into target/pyenv"
        { [ -x "$PJ_PY" ] || python3 -m venv "$ROOT/target/pyenv"; } >"$OUT/pjsua2-install.log" 2>&1
        "$PJ_PY" -m pip install -q --only-binary=pjsua2-python 'pjsua2-python>=2.15.1,<2.16' </dev/null \
            >>"$OUT/pjsua2-install.log" 2>&1
    fi
    CTL=$OUT/pjsua2
    mkdir -p "$CTL"
    pj_pid=
    if "$PJ_PY" -c 'import pjsua2' 2>/dev/null; then
        echo "== PJSUA2: two agents with only the domain $DOMAIN and the DNS server $DNS_IP"
        (cd "$CTL" && exec timeout 170 "$PJ_PY" "$SIP/pjsua2_hybrid.py" --nameserver "$DNS_IP" --domain "$DOMAIN" \
            --agent "pjalice,$PJ_PW_A,${PJ_IPS[0]}" --agent "pjbob,$PJ_PW_B,${PJ_IPS[1]}" \
            --control "$CTL" --media 3 --dns-ttl "$DNS_TTL" >driver.log 2>&1) &
        pj_pid=$!
        pids+=("$pj_pid")
        for _ in $(seq 1 600); do
            [ -f "$CTL/ready" ] && break
            kill -0 "$pj_pid" 2>/dev/null || break
            sleep 0.1
        done
        [ -f "$CTL/ready" ] || { fail pjsua2 "the agents did not register and call (see $CTL)"; cat "$CTL/driver.log"; }
    else
        fail pjsua2 "pjsua2-python cannot be imported (see $OUT/pjsua2-install.log)"
    fi
    # The victims: the first agent's server, and the second's (or the next one).
    victims=()
    if [ -f "$CTL/ready" ]; then
        read -r srv_a srv_b <"$CTL/ready"
        for i in 0 1 2 3 4; do [ "${SERVERS[$i]}:5060" = "$srv_a" ] && victims+=("$i"); done
        for i in 0 1 2 3 4; do [ "${SERVERS[$i]}:5060" = "$srv_b" ] && [ "$srv_b" != "$srv_a" ] && victims+=("$i"); done
    fi
    [ ${#victims[@]} -ge 1 ] || victims=(3)
    if [ ${#victims[@]} -lt 2 ]; then victims+=($(((victims[0] + 1) % 5))); fi
    survivors=() dead=()
    for i in 0 1 2 3 4; do
        if [ "$i" = "${victims[0]}" ] || [ "$i" = "${victims[1]}" ]; then dead+=("${SERVERS[$i]}:5060"); else survivors+=("${SERVERS[$i]}"); fi
    done
    echo "== SIGKILL to H$((victims[0] + 1)) and H$((victims[1] + 1)) (${dead[*]}); survivors ${survivors[*]}"
    t_kill=$(date +%s.%N)
    kill_server "${victims[0]}"
    kill_server "${victims[1]}"
    if wait_published 20 "${survivors[@]}"; then
        t_dns=$(date +%s.%N)
        pass "$(printf '%-22s %s' dns-after-kill "SRV lists only the three survivors $(elapsed "$t_kill") s after the kill")"
    else
        t_dns=$(date +%s.%N)
        fail dns-after-kill "the SRV records still list a killed server 20 s after the kill"
    fi
    echo "$t_kill $t_dns ${dead[*]}" >"$CTL/killed.tmp" && mv "$CTL/killed.tmp" "$CTL/killed"

    # ---- 5. SIPp through the survivors (while the agents wait out their DNS cache) ------------
    wait_members "${survivors[@]}" || fail ring-after-kill "the survivors did not close the ring"
    echo "   the survivors' ring closed $(elapsed "$t_kill") s after the kill"
    for i in 1 2 3 4 5; do cp "$OUT/users-$i.csv" "$OUT/again-$i.csv"; done
    S=("${survivors[@]}")
    echo "== SIPp: every user called through the survivors (a fifth each, round-robin), then registered again round-robin at them and called through another"
    sipp5 calls-after-kill "$PER" uac-call.xml "$OUT/again" "${S[0]}" "${S[1]}" "${S[2]}" "${S[0]}" "${S[1]}"
    sipp5 reregister-survivors "$PER" register-auth.xml "$OUT/again" "${S[1]}" "${S[2]}" "${S[0]}" "${S[1]}" "${S[2]}"
    sipp5 calls-survivors "$PER" uac-call.xml "$OUT/again" "${S[2]}" "${S[0]}" "${S[1]}" "${S[2]}" "${S[0]}"
    uas_calls=$((uas_calls + 2 * PER * 5))

    if [ -n "$pj_pid" ]; then
        run_tracked "$pj_pid"
        rc=$?
        grep -E '^(PASS|FAIL)' "$CTL/driver.log"
        if [ $rc != 0 ] || ! grep -q 'pjsua2-call-after-kill' "$CTL/driver.log"; then
            fail pjsua2 "driver exit $rc; see $CTL (driver.log, agent-*.out, pjsua-*.log)"
            grep -vE '^(PASS|FAIL)' "$CTL/driver.log" | tail -n 5 | sed 's/^/      /'
        fi
        while read -r _ name _; do failed+=("$name"); done < <(grep -E '^FAIL' "$CTL/driver.log")
    fi
    stop_uas "$uas_calls" reordered-ok

    # ---- 6. logs and counters -------------------------------------------------------------
    for i in 0 1 2 3 4; do
        [[ " ${victims[*]} " == *" $i "* ]] && continue
        k=H$((i + 1))
        c=$(kamcmd -s "unix:$OUT/$k/kamailio_ctl" cnt.grp_get_all chordsip 2>/dev/null |
            awk -F': ' '/:/ { gsub(/[\t ]/, "", $1); printf "%s=%s ", $1, $2 }')
        bad=$(grep -cE '(ERROR|CRITICAL|BUG):' "$OUT/$k/kamailio.log")
        if grep -q 'slow_calls=0 ' <<<"$c " && [ "$bad" = 0 ]; then
            pass "$(printf '%-22s %s' "log-$k" "no ERROR/CRITICAL line; $c")"
        else
            fail "log-$k" "$bad ERROR/CRITICAL lines; counters $c"
            grep -E '(ERROR|CRITICAL|BUG):' "$OUT/$k/kamailio.log" | head -n 5 | sed 's/^/      /'
        fi
    done
    # at least the five joining and the two killed (updates may bundle changes)
    updates=$(grep -c 'DDNS, processing' "$OUT/knot/knotd.log")
    refusals=$(grep -ciE 'denied|refused|failed|BADSIG|BADKEY|BADTIME' "$OUT/knot/knotd.log")
    if [ "$updates" -ge 2 ] && [ "$refusals" = 0 ]; then
        pass "$(printf '%-22s %s' knotd "$updates signed updates processed, none refused ($OUT/knot/knotd.log)")"
    else
        fail knotd "$updates updates processed, $refusals refused (see $OUT/knot/knotd.log)"
    fi
    down_five
fi

# ---- benchmark: one-hop against multi-hop ------------------------------------------------
if [ $MODE = bench ]; then
    SECONDS_PER_RATE=${BENCH_SECONDS:-10}
    RUNS=${BENCH_RUNS:-3}
    REG_RATES=${BENCH_REG_RATES-"1000 1500 2000 2500 3000 3500 4000 5000 6000"}
    CALL_RATES=${BENCH_CALL_RATES-"250 500 750 1000 1250 1500 1750 2000"}
    export KAMAILIO_SHM=1024
    WORKERS=${KAMAILIO_WORKERS:-16}
    start_knot || exit 1
    start_uas "$UAS_PORT" || exit 1
    median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "?") }'; }

    # bench5 LABEL RATE SCENARIO CSV_PREFIX TARGET... : five SIPp at once, each at RATE/5
    # for SECONDS_PER_RATE s; passes as `bench` in tests/sip/lib.sh does, on the sums
    # (<1% failed, >=95% of the rate, every p99 < 500 ms).
    bench5() {
        local label=$1 rate=$2 scen=$3 csv=$4 i; shift 4
        local targets=("$@") each=$((rate / 5)) bp=() dir
        for i in 0 1 2 3 4; do
            dir=$OUT/$label-$rate-$((i + 1))
            mkdir -p "$dir"
            (cd "$dir" && exec timeout $((SECONDS_PER_RATE + 90)) sipp -sf "$SIP/$scen" -inf "$csv-$((i + 1)).csv" \
                -key contact_hostport "127.0.0.1:$UAS_PORT" -m $((each * SECONDS_PER_RATE)) -r "$each" \
                -i 127.0.0.1 -p $((UAC_PORT + i)) -nostdin -trace_stat -stf stat.csv -fd 1 \
                -trace_rtt -rtt_freq 100 -timeout $((SECONDS_PER_RATE + 60))s "${targets[$i]}:5060" >sipp.log 2>&1) &
            bp+=($!)
            pids+=($!)
        done
        for i in 0 1 2 3 4; do wait "${bp[$i]}"; forget_pid "${bp[$i]}"; done
        local ok=0 bad=0 achieved=0 worst=0 p99 f rtd line
        for i in 1 2 3 4 5; do
            f=$OUT/$label-$rate-$i/stat.csv
            ok=$((ok + $(stat_of "$f" 'SuccessfulCall(C)' | sed 's/?/0/')))
            bad=$((bad + $(stat_of "$f" 'FailedCall(C)' | sed 's/?/0/')))
            achieved=$(awk -v a="$achieved" -v b="$(stat_of "$f" 'CallRate(C)')" 'BEGIN { print a + b }')
        done
        cat "$OUT/$label-$rate"-?/*_rtt.csv 2>/dev/null >"$OUT/$label-$rate.rtt"
        line=$(printf '%-22s rate %5d/s: %6s ok %5s failed, SIPp rate %8.1f/s' "$label" "$rate" "$ok" "$bad" "$achieved")
        for rtd in reg setup; do
            if grep -q ";$rtd\$" "$OUT/$label-$rate.rtt"; then
                p99=$(pct "$OUT/$label-$rate.rtt" "$rtd" 99)
                line+=$(printf ', %s p50 %s ms p99 %s ms' "$rtd" "$(pct "$OUT/$label-$rate.rtt" "$rtd" 50)" "$p99")
                worst=$(awk -v a="$worst" -v b="$p99" 'BEGIN { print (b + 0 > a + 0) ? b : a }')
            fi
        done
        echo "$line"
        awk -v ok="$ok" -v bad="$bad" -v r="$rate" -v a="$achieved" -v w="$worst" \
            'BEGIN { t = ok + bad; exit !(t > 0 && bad / t < 0.01 && a >= 0.95 * r && w < 500) }'
    }

    declare -A REGS CALLS
    n=0
    for run in $(seq 1 "$RUNS"); do
        for routing in one-hop multi-hop; do
            n=$((n + 1))
            echo "== run $run/$RUNS: $routing, five servers ($WORKERS UDP workers each, NO_AUTH)"
            up_five "$routing" -A NO_AUTH -A "WORKERS=$WORKERS" || exit 1
            if [ "$routing" = one-hop ]; then
                wait_published 30 "${SERVERS[@]}" || { echo "one-hop servers not published"; exit 1; }
            fi
            best=0
            for r in $REG_RATES; do
                for i in 1 2 3 4 5; do
                    { echo SEQUENTIAL; seq 1 $((r * SECONDS_PER_RATE / 5)) |
                        awk -v p="b${n}r${r}s${i}u" -v d="$DOMAIN" '{ print p $1 ";" d ";" }'; } >"$OUT/reg-$n-$r-$i.csv"
                done
                bench5 "$routing-r$run-reg" "$r" register.xml "$OUT/reg-$n-$r" "${SERVERS[@]}" || break
                best=$r
                sleep 2
            done
            REGS[$routing]="${REGS[$routing]:-} $best"
            # the call pool: 400 users per server, called through the next server
            for i in 1 2 3 4 5; do
                { echo SEQUENTIAL; for u in $(seq 1 400); do printf 'pool%ds%du%d;%s;\n' "$n" "$i" "$u" "$DOMAIN"; done; } \
                    >"$OUT/pool-$n-$i.csv"
            done
            RATE=250 sipp5 "pool-$n" 400 register.xml "$OUT/pool-$n" "${SERVERS[@]}" >/dev/null
            sleep 2
            best=0
            for r in $CALL_RATES; do
                bench5 "$routing-r$run-call" "$r" uac-call.xml "$OUT/pool-$n" \
                    "${SERVERS[1]}" "${SERVERS[2]}" "${SERVERS[3]}" "${SERVERS[4]}" "${SERVERS[0]}" || break
                best=$r
                sleep 3
            done
            CALLS[$routing]="${CALLS[$routing]:-} $best"
            down_five
            sleep 2
        done
    done
    echo
    echo "sustained through five servers (<1% failed, >=95% of the rate, p99 < 500 ms; the highest rate tried that passed; median of $RUNS runs):"
    for routing in one-hop multi-hop; do
        printf '  %-10s REGISTER %6s/s  calls %5s/s (runs: REGISTER%s; calls%s)\n' "$routing" \
            "$(median <<<"${REGS[$routing]}")" "$(median <<<"${CALLS[$routing]}")" "${REGS[$routing]}" "${CALLS[$routing]}"
    done
    echo "(runs in $OUT)"
fi

printf '\nHybrid tests: '
if [ ${#failed[@]} -eq 0 ]; then
    echo "all passed ($(elapsed "$T_START") s)"
else
    echo "${#failed[@]} failed: ${failed[*]} ($(elapsed "$T_START") s; logs in $OUT)"
    exit 1
fi

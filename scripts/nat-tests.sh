#!/usr/bin/env bash
# NAT tests (root only; skipped where the machine lacks network namespaces,
# nftables or coturn, which under CI=true fails unless CHORDSIP_ALLOW_SKIP
# names nat, scripts/lib/skip.sh). Everything runs in network
# namespaces made here, removed on exit; addresses exist only inside them.
#
#   "public" 10.78.0.0/24 (one bridge):
#     A 10.78.0.1   sip-proxy + chordsip node (UAs of private net 1 attach here)
#     B 10.78.0.2   sip-proxy + chordsip node (UAs of private net 2 attach here)
#     R 10.78.0.5   chordsip node announcing `relay` (load 5/100) + coturn on :3478
#     S 10.78.0.6   chordsip node announcing `relay` (load 90/100, its TURN is down)
#     N1 10.78.0.11 / N2 10.78.0.12: routers masquerading private nets 1 and 2
#   private 1, 192.168.1.0/24 behind N1: alice (192.168.1.2)
#   private 2, 192.168.2.0/24 behind N2: bob (192.168.2.2), carol (192.168.2.3)
#
# Nothing public routes to the private nets: a UA is reachable only through
# the mapping its own NAT keeps (nftables masquerade: a reply must come from
# where the UA sent to). The routers' UDP conntrack timeout is lowered to
# 8 s so that a mapping lapses within the test.
#
# Checks:
#   1. a chordsip client handle behind each NAT reaches its public peer,
#      and `chordsip peers --ability relay` lists R before S (least loaded);
#   2. the PJSUA2 agents (tests/sip/pjsua2_nat.py) find the relay through
#      their peer (Python client handle), take R's TURN server, register at
#      their proxy with digest credentials (RFC 5626 outbound: the proxy
#      stores its Path with a flow token, and the binding is in the overlay);
#   3. after 15 s of silence, alice calls bob (A -> overlay lookup -> B's
#      Path -> B -> bob's flow): 200, 3 s of RTP both ways over ICE through
#      the TURN relay, BYE; coturn reports relayed packets for the session;
#   4. carol sent no keep-alives: her NAT dropped the binding, no INVITE
#      reaches her (a test that fails if keep-alives are not what matters);
#   5. S is killed: its announcement is gone within ability_ttl_s (6 s here).
# Output in target/nat-tests/.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=$ROOT/target/nat-tests
STAGE=$ROOT/target/stage
BIN=$ROOT/target/sip-proxy
C=$ROOT/target/release/chordsip
PJ_PY=${PJ_PY:-$ROOT/target/pyenv/bin/python}
DOMAIN=nat.test
TTL=6
failed=()
# shellcheck source=../tests/sip/lib.sh
. "$ROOT/tests/sip/lib.sh"
. "$ROOT/scripts/lib/skip.sh"

if [ "$(id -u)" != 0 ]; then
    skip_suite nat "not root (network namespaces need CAP_SYS_ADMIN)"
    exit $?
fi
PFX=csnat$$
if ! ip netns add "${PFX}probe" 2>/dev/null; then
    skip_suite nat "this machine does not allow network namespaces"
    exit $?
fi
probe_ok=1
ip netns exec "${PFX}probe" nft add table ip nat 2>/dev/null &&
    ip netns exec "${PFX}probe" nft add chain ip nat post '{ type nat hook postrouting priority 100; }' 2>/dev/null &&
    ip netns exec "${PFX}probe" nft add rule ip nat post masquerade 2>/dev/null || probe_ok=0
ip netns del "${PFX}probe"
if [ $probe_ok = 0 ]; then
    skip_suite nat "nftables masquerade is not available (package nftables, kernel nf_nat)"
    exit $?
fi
if ! command -v turnserver >/dev/null; then
    skip_suite nat "coturn's turnserver is missing (scripts/setup.sh installs it)"
    exit $?
fi
rm -rf "$OUT"
mkdir -p "$OUT"

NSES=()
ns() { echo "${PFX}$1"; }
on() { local n=$1; shift; ip netns exec "$(ns "$n")" "$@"; }
nat_cleanup() {
    cleanup
    local n
    for n in "${NSES[@]}"; do
        ip netns pids "$(ns "$n")" 2>/dev/null | xargs -r kill -KILL 2>/dev/null
    done
    for n in "${NSES[@]}"; do ip netns del "$(ns "$n")" 2>/dev/null; done
}
trap nat_cleanup EXIT

# ---- build ------------------------------------------------------------------------------
stage_and_build || exit 1
cargo build --release --quiet --lib || exit 1
if ! "$PJ_PY" -c 'import pjsua2' 2>/dev/null; then
    echo "== installing pjsua2-python into target/pyenv"
    { [ -x "$PJ_PY" ] || python3 -m venv "$ROOT/target/pyenv"; } >"$OUT/pjsua2-install.log" 2>&1
    "$PJ_PY" -m pip install -q --only-binary=pjsua2-python 'pjsua2-python>=2.15.1,<2.16' </dev/null \
        >>"$OUT/pjsua2-install.log" 2>&1
fi
if ! "$PJ_PY" -c 'import pjsua2' 2>/dev/null; then
    fail pjsua2 "pjsua2-python could not be installed (see $OUT/pjsua2-install.log)"
    exit 1
fi

# ---- the network ------------------------------------------------------------------------
mkns() { ip netns add "$(ns "$1")" && NSES+=("$1") && on "$1" ip link set lo up; }
# veth NS_A IF_A NS_B IF_B: a cable between two namespaces.
veth() {
    ip link add "v$$a" type veth peer name "v$$b" || return 1
    ip link set "v$$a" netns "$(ns "$1")" && on "$1" ip link set "v$$a" name "$2" && on "$1" ip link set "$2" up
    ip link set "v$$b" netns "$(ns "$3")" && on "$3" ip link set "v$$b" name "$4" && on "$3" ip link set "$4" up
}
mkns sw && on sw ip link add br0 type bridge && on sw ip link set br0 up || { fail net "bridge"; exit 1; }
port=0
public() { # NS IP
    port=$((port + 1))
    mkns "$1" && veth "$1" eth0 sw "p$port" && on sw ip link set "p$port" master br0 &&
        on "$1" ip addr add "$2/24" dev eth0
}
public A 10.78.0.1 && public B 10.78.0.2 && public R 10.78.0.5 && public S 10.78.0.6 &&
    public N1 10.78.0.11 && public N2 10.78.0.12 || { fail net "public hosts"; exit 1; }
router() { # NS PRIVATE_PREFIX (a.b.c)
    veth "$1" eth1 "U$1" eth0 &&
        on "$1" ip addr add "$2.1/24" dev eth1 &&
        on "$1" sysctl -qw net.ipv4.ip_forward=1 &&
        on "$1" nft add table ip nat &&
        on "$1" nft add chain ip nat post '{ type nat hook postrouting priority 100; }' &&
        on "$1" nft add rule ip nat post oifname eth0 masquerade
}
mkns UN1 && mkns UN2 && router N1 192.168.1 && router N2 192.168.2 || { fail net "NAT routers"; exit 1; }
on UN1 ip addr add 192.168.1.2/24 dev eth0 && on UN1 ip route add default via 192.168.1.1 &&
    on UN2 ip addr add 192.168.2.2/24 dev eth0 && on UN2 ip addr add 192.168.2.3/24 dev eth0 &&
    on UN2 ip route add default via 192.168.2.1 || { fail net "private hosts"; exit 1; }
# A short UDP mapping lifetime (default 30 s / 120 s), so that one lapses within the test.
nat_timeout=set
for r in N1 N2; do
    on "$r" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=8 net.netfilter.nf_conntrack_udp_timeout_stream=8 ||
        nat_timeout=
done
# udp_reach FROM_NS TO_NS IP: does a datagram from FROM_NS reach IP (in TO_NS), and its answer
# come back? The sender repeats its ping every 100 ms for 1.5 s (the listener may not be bound yet).
udp_reach() {
    on "$2" timeout 3 python3 -c 'import socket,sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], 9999))
d, a = s.recvfrom(16); s.sendto(b"pong", a)' "$3" 2>/dev/null &
    local l=$!
    on "$1" timeout 3 python3 -c 'import socket,sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1)
for _ in range(15):
    s.sendto(b"ping", (sys.argv[1], 9999))
    try:
        sys.exit(0 if s.recv(16) == b"pong" else 1)
    except socket.timeout:
        pass
sys.exit(1)' "$3" 2>/dev/null
    local rc=$?
    kill "$l" 2>/dev/null; wait "$l" 2>/dev/null
    return $rc
}
if udp_reach UN1 R 10.78.0.5 && udp_reach UN2 A 10.78.0.1 && ! udp_reach R UN1 192.168.1.2; then
    pass "$(printf '%-24s %s' nat-topology "private hosts reach the public net through masquerading routers; the public net cannot reach them")"
else
    fail nat-topology "the namespaces do not route as planned"
    exit 1
fi

# ---- keys, overlay, relays ----------------------------------------------------------------
( umask 077
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/overlay.key"
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$OUT/client.key" )
"$C" keygen --out "$OUT/writer.key" 2>/dev/null &&
    "$C" keygen --out "$OUT/admin.key" 2>"$OUT/admin.log" && sed -n 's/^writer //p' "$OUT/admin.log" >"$OUT/admin.key.pub" &&
    "$C" keygen --out "$OUT/credentials.key" 2>/dev/null || { fail keys keygen; exit 1; }
CKEY=$OUT/client.key
proxy() { # NS IP [BOOTSTRAP]
    local args=(--listen "$2:5060" --overlay-listen "$2:4000" --overlay-key-file "$OUT/overlay.key"
        --writer-key-file "$OUT/writer.key" --domain "$DOMAIN" --log="${NAT_PROXY_LOG:-2}"
        --credentials-key-file "$OUT/credentials.key" --credential-admins "$(cat "$OUT/admin.key.pub")"
        --overlay-set "client_key_file=$CKEY" --overlay-set "ability_ttl_s=$TTL")
    [ -n "${3:-}" ] && args+=(--bootstrap "$3")
    ip netns exec "$(ns "$1")" "$BIN/sip-proxy" "${args[@]}" >"$OUT/proxy-$1.out" 2>"$OUT/proxy-$1.err" &
    pids+=($!)
    for _ in $(seq 1 100); do
        grep -q '^sip-proxy ready' "$OUT/proxy-$1.out" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "proxy $1 did not come up:"; tail -5 "$OUT/proxy-$1.err"; return 1
}
relay_node() { # NS IP LOAD
    ip netns exec "$(ns "$1")" "$C" node --listen "$2:4000" --bootstrap 10.78.0.1:4000 --key-file "$OUT/overlay.key" \
        --client-key-file "$CKEY" --set "ability_ttl_s=$TTL" \
        --ability "relay:capacity=100,load=$3,turn=$2:3478" --log warn >"$OUT/node-$1.log" 2>&1 &
    pids+=($!)
    printf -v "PID_$1" '%s' "$!"
}
proxy A 10.78.0.1 && proxy B 10.78.0.2 10.78.0.1:4000 || exit 1
relay_node R 10.78.0.5 5
relay_node S 10.78.0.6 90
ip netns exec "$(ns R)" turnserver -n --listening-ip=10.78.0.5 --relay-ip=10.78.0.5 --listening-port=3478 \
    --min-port=50000 --max-port=50200 --realm="$DOMAIN" --lt-cred-mech --user=relayuser:relaypw \
    --allowed-peer-ip=10.78.0.0-10.78.0.255 --no-tls --no-dtls --no-cli --fingerprint \
    ${NAT_TURN_VERBOSE:---verbose} --log-file=stdout --simple-log --pidfile="$OUT/turnserver.pid" >"$OUT/turnserver.log" 2>&1 &
pids+=($!)

# The users, stored by the administrator through A (a short-lived node in A's namespace).
PW_ALICE=pa-$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')
PW_BOB=pb-$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')
PW_CAROL=pc-$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')
printf 'alice@%s %s\nbob@%s %s\ncarol@%s %s\n' "$DOMAIN" "$PW_ALICE" "$DOMAIN" "$PW_BOB" "$DOMAIN" "$PW_CAROL" >"$OUT/users.txt"
if ! on A timeout 60 "$C" user add --from-file "$OUT/users.txt" --bootstrap 10.78.0.1:4000 --listen 10.78.0.1:4099 \
    --key-file "$OUT/overlay.key" --admin-key-file "$OUT/admin.key" \
    --credentials-key-file "$OUT/credentials.key" </dev/null >"$OUT/user-add.log" 2>&1; then
    fail users "chordsip user add failed: $(tail -2 "$OUT/user-add.log")"
    exit 1
fi

# ---- 1. a client handle behind each NAT finds the relays ----------------------------------
peers_via() { # NS PEER
    on "$1" "$C" peers --ability relay --via "$2" --client-key-file "$CKEY" --timeout-ms 2000 2>&1
}
order=
for _ in $(seq 1 50); do
    out1=$(peers_via UN1 10.78.0.1:4000) out2=$(peers_via UN2 10.78.0.2:4000)
    order="$(awk '{print $2}' <<<"$out1" | tr '\n' ' ')"
    [ "$order" = "10.78.0.5:4000 10.78.0.6:4000 " ] && [ "$(awk '{print $2}' <<<"$out2" | tr '\n' ' ')" = "$order" ] && break
    sleep 0.2
done
if [ "$order" = "10.78.0.5:4000 10.78.0.6:4000 " ]; then
    pass "$(printf '%-24s %s' nat-client-peers "chordsip peers --ability relay from behind each NAT, through its peer: $(awk '{print $2, $4}' <<<"$out1" | tr '\n' ' ')(least loaded first)")"
else
    fail nat-client-peers "from behind NAT 1: ${out1:-nothing}; NAT 2: ${out2:-nothing}"
fi

# ---- 2-4. PJSUA2 agents behind NAT: register, relayed call, lapsed binding ---------------
CTL=$OUT/pjsua2
mkdir -p "$CTL"
if [ -z "$nat_timeout" ]; then
    skip_suite nat-pjsua2 "the kernel does not let a namespace set its UDP conntrack timeout" ||
        failed+=(nat-pjsua2)
else
    export CHORDSIP_LIBRARY=$ROOT/target/release/libchordsip.so
    (cd "$ROOT/tests/sip" && exec timeout 150 "$PJ_PY" pjsua2_nat.py --control "$CTL" --domain "$DOMAIN" \
        --client-key-file "$CKEY" --turn-user relayuser --turn-password relaypw \
        --expect-relay 10.78.0.5:3478 --media "${NAT_MEDIA:-3}" --idle "${NAT_IDLE:-15}" \
        --agent "$(ns UN1) name=alice password=$PW_ALICE address=192.168.1.2 proxy=10.78.0.1:5060 peer=10.78.0.1:4000 ka=3 turn=1" \
        --agent "$(ns UN2) name=bob password=$PW_BOB address=192.168.2.2 proxy=10.78.0.2:5060 peer=10.78.0.2:4000 ka=3 turn=1" \
        --agent "$(ns UN2) name=carol password=$PW_CAROL address=192.168.2.3 proxy=10.78.0.2:5060 ka=0") \
        >"$CTL/driver.log" 2>&1 &
    drv=$!
    run_tracked "$drv"
    rc=$?
    grep -E '^(PASS|FAIL)' "$CTL/driver.log"
    while read -r name; do failed+=("$name"); done < <(sed -n 's/^FAIL  \([^ ]*\).*/\1/p' "$CTL/driver.log")
    if [ $rc != 0 ] && ! grep -q '^FAIL' "$CTL/driver.log"; then
        fail nat-pjsua2 "the driver exited $rc: $(tail -3 "$CTL/driver.log")"
    fi
    # coturn's session summary: packets it relayed (rp/sp: received from and sent to peers)
    relayed=$(grep -o 'rp=[0-9]*, rb=[0-9]*, sp=[0-9]*' "$OUT/turnserver.log" | awk -F'[=,]' '{ r += $2; s += $6 } END { printf "%d %d", r, s }')
    read -r rp sp <<<"${relayed:-0 0}"
    if [ "${rp:-0}" -ge 75 ] && [ "${sp:-0}" -ge 75 ]; then
        pass "$(printf '%-24s %s' nat-turn-relayed "coturn on R relayed the call's media: $rp packets from peers, $sp to them")"
    else
        fail nat-turn-relayed "coturn relayed rp=${rp:-0} sp=${sp:-0} packets (see $OUT/turnserver.log)"
    fi
fi

# ---- 5. a dead relay's announcement lapses ---------------------------------------------
kill -KILL "$PID_S" 2>/dev/null
wait "$PID_S" 2>/dev/null
t0=$(date +%s.%N)
gone=
for _ in $(seq 1 $((TTL * 10 + 40))); do
    out=$(peers_via UN1 10.78.0.1:4000)
    if ! grep -q '10.78.0.6:4000' <<<"$out" && grep -q '10.78.0.5:4000' <<<"$out"; then gone=$(elapsed "$t0"); break; fi
    sleep 0.1
done
if [ -n "$gone" ]; then
    pass "$(printf '%-24s %s' nat-dead-relay "S killed (kill -9): its relay announcement gone after $gone s (ability_ttl_s=$TTL); R still listed")"
else
    fail nat-dead-relay "S still listed $((TTL + 4)) s after kill -9: $out"
fi

if [ ${#failed[@]} -gt 0 ]; then
    echo "NAT tests: ${#failed[@]} failed: ${failed[*]}"
    exit 1
fi
echo "NAT tests: all passed"

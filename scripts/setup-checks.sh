#!/usr/bin/env bash
# The set-up script's contract: groups as arguments (the demo asks for
# `build` only), a clear refusal of an unknown group, and the SIP suites'
# check that names whatever holds a UDP port they need (Debian's
# kamailio.service holds 5060 on every address once it runs).
# shellcheck disable=SC2016 # the bash -c scripts expand their own variables
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ROOT
cd "$ROOT" || exit 1
fails=0
check() { if "$@"; then echo "ok   $NAME"; else echo "FAIL $NAME"; fails=$((fails + 1)); fi; }

NAME="setup.sh --help lists the groups"
check bash -c './scripts/setup.sh --help | grep -q "^  kamailio "'
NAME="setup.sh refuses an unknown group with exit 2 and names the groups"
check bash -c 'out=$(./scripts/setup.sh no-such-group 2>&1); [ $? -eq 2 ] && grep -q "want: build c sip" <<<"$out"'
NAME="setup.sh build leaves what the build group promises: cc, make, pkg-config, cargo"
check bash -c './scripts/setup.sh build </dev/null >/dev/null 2>&1 &&
    { command -v cc && command -v make && command -v pkg-config && command -v cargo; } >/dev/null'
NAME="the demo asks for the build group only"
check grep -q '^\./scripts/setup\.sh build$' scripts/demo.sh

# A port held by another process is named, with the advice for kamailio.service.
port=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.29", 0)); print(s.getsockname()[1])')
flag=$(mktemp -u)
python3 -c 'import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.29", int(sys.argv[1])))
open(sys.argv[2], "w").close()
time.sleep(60)' "$port" "$flag" &
holder=$!
# Bounded wait for the holder's word that it bound the port.
for _ in $(seq 300); do [ -e "$flag" ] && break; sleep 0.1; done
rm -f "$flag"
out=$(SIP=$ROOT/tests/sip OUT=$(mktemp -d) bash -c '. tests/sip/lib.sh; sip_ports_free 127.0.0.28:'"$port"' 127.0.0.29:'"$port" 2>&1)
rc=$?
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
NAME="sip_ports_free fails on a held port and names its holder and kamailio.service"
check bash -c '[ '"$rc"' -ne 0 ] && grep -q "UDP 127.0.0.29:'"$port"' cannot be bound" <<<"$1" &&
    grep -q "python3" <<<"$1" && grep -q "systemctl stop kamailio" <<<"$1"' _ "$out"
NAME="sip_ports_free passes once the port is free"
check bash -c 'ROOT=$PWD SIP=tests/sip OUT=$(mktemp -d) . tests/sip/lib.sh && sip_ports_free 127.0.0.29:'"$port"
[ "$fails" -eq 0 ] || { echo "setup checks: $fails failed"; exit 1; }

#!/usr/bin/env bash
# Debian package tests (root only; skipped otherwise, which under CI=true
# fails unless CHORDSIP_ALLOW_SKIP names packages, scripts/lib/skip.sh):
#
#   1. scripts/packages.sh builds the four packages (target/debian/);
#   2. apt-get installs them: the library where ld.so finds it (ldconfig's
#      trigger ran), the user chordsip, /var/lib/chordsip, the conffile;
#   3. a C program built with `cc app.c $(pkg-config --cflags --libs chordsip)`
#      (no PKG_CONFIG_PATH) starts a node on 127.0.0.1:0 and prints its id,
#      run without LD_LIBRARY_PATH; the same program linked with libchordsip.a;
#   4. the unit: /etc/chordsip/default.conf gives the expected command line;
#      an instance chordsip@pkgtest (its config a copy of default.conf on a
#      free port) runs the way systemd runs it (where systemd is not PID 1:
#      ExecStartPre/ExecStart of the installed unit, instance substituted, as
#      its User=/Group= with its UMask=, StateDirectory=/RuntimeDirectory=
#      made as systemd makes them; under systemd: systemctl), prints its ready
#      line, answers `chordsip stats` on its client socket; the keys were
#      made mode 0600, owned by chordsip; stopped (SIGTERM: it leaves) and
#      started again it keeps its keys and its ring id. systemd-analyze
#      verify on the unit when the tool exists;
#   5. Kamailio with a cfg that says `loadmodule "chordsip.so"` (no path)
#      really starts (mod_init and the module's node process), has the
#      packaged module and library mapped, joins the unit's node (the unit's
#      overlay key) and answers a REGISTER (SIPp) with 200;
#   6. apt-get remove while the unit's node runs: the prerm stops it (no
#      chordsip process left), the programs, library and module are gone
#      and ld.so no longer lists the library; purge removes /etc/chordsip
#      and /var/lib/chordsip.
# The machine is left as it was, after a failure or ^C as well (trap): the
# packages purged, the processes stopped, the user chordsip deleted if this
# test's install made it. Loopback addresses only; every wait is bounded.
# Output in target/package-tests/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
T_START=$(date +%s.%N)
OUT=$ROOT/target/package-tests
STAGE=$ROOT/target/stage # (tests/sip/lib.sh's names; nothing is staged here)
BIN=$OUT/bin
SIP=$ROOT/tests/sip
DOMAIN=example.com
PACKAGES=(libchordsip0 libchordsip-dev chordsip kamailio-chordsip-module)
INST=pkgtest
UNIT=/lib/systemd/system/chordsip@.service
MULTIARCH=/usr/lib/x86_64-linux-gnu
failed=()
# pass/fail/elapsed, pick_ports, start_kamailio, run_sipp, stop_within and
# the cleanup of the processes it tracks (pids)
# shellcheck source=tests/sip/lib.sh
. "$SIP/lib.sh"
. "$ROOT/scripts/lib/skip.sh"

if [ "$(id -u)" != 0 ]; then
    skip_suite packages "not root (installs and removes Debian packages)"
    exit $?
fi
if ! command -v apt-get >/dev/null || [ "$(dpkg --print-architecture 2>/dev/null)" != amd64 ]; then
    skip_suite packages "not a Debian amd64 machine (apt-get, dpkg)"
    exit $?
fi
# state PACKAGE: dpkg's status word of PACKAGE (installed, config-files, not-installed).
state() { dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || echo not-installed; }
for p in "${PACKAGES[@]}"; do
    s=$(state "$p")
    if [ "$s" != not-installed ]; then
        skip_suite packages "$p is already on this machine ($s): this test would remove it"
        exit $?
    fi
done
SYSTEMD=
[ -d /run/systemd/system ] && SYSTEMD=1

./scripts/setup.sh build sip kamailio python # (cc, SIPp, kamailio, dpkg-dev, python3 for the port picker)
rm -rf "$OUT"
mkdir -p "$OUT" "$BIN"

USER_EXISTED=
getent passwd chordsip >/dev/null && USER_EXISTED=1
APT=(env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -y -q -o DPkg::Lock::Timeout=300)
NODE_PID=
TEST_CONF=/etc/chordsip/$INST.conf

# present: the packages dpkg knows on this machine (installed, or their config files left).
present() {
    local p
    for p in "${PACKAGES[@]}"; do [ "$(state "$p")" != not-installed ] && echo "$p"; done
    return 0
}
any_installed() { [ -n "$(present)" ]; }

# The machine as it was: processes stopped, packages purged, the user gone
# if this run made it. Runs on every exit.
restore() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then
        stop_within 20 "$NODE_PID" >/dev/null 2>&1
    fi
    [ -n "$SYSTEMD" ] && systemctl stop "chordsip@$INST.service" >/dev/null 2>&1
    cleanup # tests/sip/lib.sh: Kamailio, SIPp
    rm -f "$TEST_CONF"
    local leftover
    mapfile -t leftover < <(present)
    if [ ${#leftover[@]} -gt 0 ]; then
        echo "== restoring the machine: purging ${leftover[*]}"
        "${APT[@]}" purge "${leftover[@]}" >>"$OUT/apt.log" 2>&1 ||
            echo "apt-get purge failed: see $OUT/apt.log"
    fi
    rm -rf "/run/chordsip/$INST"
    rmdir /run/chordsip 2>/dev/null
    if [ -z "$USER_EXISTED" ] && getent passwd chordsip >/dev/null; then
        pkill -KILL -u chordsip 2>/dev/null
        userdel chordsip 2>/dev/null || echo "userdel chordsip failed"
        getent group chordsip >/dev/null && groupdel chordsip 2>/dev/null
    fi
    exit "$rc"
}
trap restore EXIT
trap 'echo interrupted; exit 130' INT TERM

# check NAME LINE CONDITION...: PASS or FAIL (LINE) by CONDITION's exit status.
check() {
    local name=$1 line=$2; shift 2
    if "$@"; then pass "$(printf '%-22s %s' "$name" "$line")"; else fail "$name" "$line"; fi
}

# ---- 1. build ------------------------------------------------------------------------
echo "== scripts/packages.sh"
t0=$(date +%s.%N)
mapfile -t DEBS < <(./scripts/packages.sh)
[ ${#DEBS[@]} -eq 4 ] || { echo "packages.sh made ${#DEBS[@]} packages, not 4: ${DEBS[*]}"; exit 1; }
pass "$(printf '%-22s %s' build "$(for d in "${DEBS[@]}"; do printf '%s ' "$(basename "$d")"; done)in $(elapsed "$t0") s")"

# ---- 2. install ----------------------------------------------------------------------
echo "== apt-get install"
t0=$(date +%s.%N)
if ! "${APT[@]}" install "${DEBS[@]}" >"$OUT/apt.log" 2>&1; then
    tail -n 20 "$OUT/apt.log"
    fail install "apt-get install failed (see $OUT/apt.log)"
    exit 1
fi
all_installed() {
    local p
    for p in "${PACKAGES[@]}"; do [ "$(state "$p")" = installed ] || return 1; done
}
check install "${PACKAGES[*]} installed in $(elapsed "$t0") s" all_installed
# (/lib is /usr/lib on Debian since bookworm's merged /usr: ld.so may name either)
ldso_lists() {
    local f
    f=$(ldconfig -p | sed -n 's/^[[:space:]]*libchordsip\.so\.0 .*=> //p' | head -n 1)
    [ -n "$f" ] && [ "$(readlink -f "$f")" = "$(readlink -f "$MULTIARCH/libchordsip.so.0")" ]
}
check ldconfig "ld.so's cache lists $MULTIARCH/libchordsip.so.0 (the trigger ran)" ldso_lists
state_dir_ok() { [ "$(stat -c '%U:%G %a' /var/lib/chordsip)" = "chordsip:chordsip 750" ]; }
check system-user "user $(getent passwd chordsip | cut -d: -f1,3,6,7); /var/lib/chordsip $(stat -c '%U:%G %a' /var/lib/chordsip 2>&1)" \
    state_dir_ok
conffile() { dpkg-query -W -f='${Conffiles}' chordsip | grep -q '^ /etc/chordsip/default.conf '; }
check conffile "/etc/chordsip/default.conf is a conffile of chordsip" conffile
module_file() { dpkg -L kamailio-chordsip-module | grep -qx "$(kamailio -I 2>/dev/null |
    sed -n 's/.*Default paths to modules: *//p' | sed 's|/*$||')/chordsip.so"; }
check module-path "the module is in kamailio -I's module directory" module_file

# ---- 3. a C program against the installed library -----------------------------------
echo "== a C program: cc app.c \$(pkg-config --cflags --libs chordsip)"
cat >"$OUT/app.c" <<'C'
#include <chordsip.h>
#include <stdio.h>

int main(void) {
    char err[256] = "", id[64], addr[64];
    chordsip_config *cfg;
    chordsip_node *node;
    int r;
    printf("chordsip %s\n", chordsip_version());
    if (chordsip_config_new(&cfg) != CHORDSIP_OK ||
        chordsip_config_set(cfg, "listen", "127.0.0.1:0", err, sizeof err) != CHORDSIP_OK) {
        fprintf(stderr, "config: %s\n", err);
        return 1;
    }
    r = chordsip_node_new(cfg, &node, err, sizeof err);
    chordsip_config_free(cfg);
    if (r != CHORDSIP_OK) {
        fprintf(stderr, "node: %s %s\n", chordsip_result_str(r), err);
        return 1;
    }
    r = chordsip_node_join(node, NULL); /* a new ring */
    if (r != CHORDSIP_OK || chordsip_node_id(node, id, sizeof id) != CHORDSIP_OK ||
        chordsip_node_addr(node, addr, sizeof addr) != CHORDSIP_OK) {
        fprintf(stderr, "join: %s\n", chordsip_result_str(r));
        return 1;
    }
    printf("node %s on %s\n", id, addr);
    chordsip_node_leave(node, 1000);
    chordsip_node_free(node);
    return 0;
}
C
# env: nothing of the build's (no staged pkg-config path, no library path)
CLEAN_ENV=(env -u PKG_CONFIG_PATH -u PKG_CONFIG_LIBDIR -u PKG_CONFIG_SYSROOT_DIR -u LD_LIBRARY_PATH -u LIBRARY_PATH -u CPATH -u C_INCLUDE_PATH)
# shellcheck disable=SC2016 # expanded by the inner shell
if "${CLEAN_ENV[@]}" sh -c 'cd "$1" && cc -Wall -Werror app.c -o app $(pkg-config --cflags --libs chordsip)' \
    _ "$OUT" >"$OUT/cc.log" 2>&1; then
    out=$("${CLEAN_ENV[@]}" timeout 20 "$OUT/app" 2>&1) || true
    lib=$(ldd "$OUT/app" | awk '/libchordsip/ { print $3 }')
    if grep -qE '^node [0-9a-f]{40} on 127\.0\.0\.1:[0-9]+$' <<<"$out" &&
        [ "$(readlink -f "$lib")" = "$(readlink -f "$MULTIARCH/libchordsip.so.0")" ] &&
        ! readelf -d "$OUT/app" | grep -qE 'RPATH|RUNPATH'; then
        pass "$(printf '%-22s %s' c-program "$(tr '\n' ';' <<<"$out") libchordsip from $lib, no rpath, no LD_LIBRARY_PATH")"
    else
        fail c-program "output '$out', libchordsip from '$lib'"
    fi
else
    fail c-program "cc failed: $(tail -n 5 "$OUT/cc.log")"
fi
# shellcheck disable=SC2016
if "${CLEAN_ENV[@]}" sh -c 'cd "$1" && cc -Wall -Werror app.c -o app-static $(pkg-config --cflags chordsip) \
    -l:libchordsip.a $(pkg-config --static --libs chordsip | sed "s/-lchordsip//")' \
    _ "$OUT" >"$OUT/cc-static.log" 2>&1; then
    out=$("${CLEAN_ENV[@]}" timeout 20 "$OUT/app-static" 2>&1) || true
    if grep -qE '^node [0-9a-f]{40} on 127\.0\.0\.1:[0-9]+$' <<<"$out" &&
        ! readelf -d "$OUT/app-static" | grep -q 'libchordsip'; then
        pass "$(printf '%-22s %s' c-program-static "linked with libchordsip.a (pkg-config --static): $(tail -n 1 <<<"$out")")"
    else
        fail c-program-static "output '$out'"
    fi
else
    fail c-program-static "cc failed: $(tail -n 5 "$OUT/cc-static.log")"
fi

# ---- 4. the unit ---------------------------------------------------------------------
echo "== the unit chordsip@.service"
pick_ports
NODE_PORT=$BASE K_SIP=$((BASE + 1)) K_OVL=$((BASE + 2)) UAC_PORT=$((BASE + 3)) CONTACT_PORT=$((BASE + 4))
echo "ports: unit node $NODE_PORT, Kamailio SIP $K_SIP overlay $K_OVL, SIPp $UAC_PORT"

# The shipped default.conf as the command line it gives (the program
# replaced by echo: nothing starts).
# shellcheck disable=SC2016
default_cmd=$(CHORDSIP_BIN=/bin/echo /usr/lib/chordsip/chordsip-start default 2>/dev/null || true)
want_cmd="node --listen 127.0.0.1:4000 --overlay chordsip --key-file /var/lib/chordsip/default/overlay.key --writer-key-file /var/lib/chordsip/default/writer.key --set node_key_file=/var/lib/chordsip/default/node.key --client-socket /run/chordsip/default/client.sock --log info"
check default-conf "chordsip@default runs: chordsip $default_cmd" [ "$default_cmd" = "$want_cmd" ]

# The test instance: default.conf on a free port, its paths under its own name.
sed -e "s|^listen = .*|listen = 127.0.0.1:$NODE_PORT|" -e "s|/default/|/$INST/|g" \
    /etc/chordsip/default.conf >"$TEST_CONF"
STATE=/var/lib/chordsip/$INST
SOCK=/run/chordsip/$INST/client.sock
KEYS=("$STATE/overlay.key" "$STATE/writer.key" "$STATE/node.key")

if command -v systemd-analyze >/dev/null; then
    # (a template is checked as an instance of it: verify loads the unit and its commands)
    if systemd-analyze verify "$UNIT" >"$OUT/verify.log" 2>&1 &&
        systemd-analyze verify "chordsip@$INST.service" >>"$OUT/verify.log" 2>&1; then
        pass "$(printf '%-22s %s' unit-verify "systemd-analyze verify $UNIT and chordsip@$INST.service: no complaint")"
    else
        fail unit-verify "$(head -n 5 "$OUT/verify.log" | tr '\n' ';')"
    fi
fi

# unit_values KEY: the values of KEY= in the installed unit, %i and %I the
# instance name, %% a %.
unit_values() { sed -n "s/^$1=//p" "$UNIT" | sed -e "s/%[iI]/$INST/g" -e 's/%%/%/g'; }
SVC_USER=$(unit_values User)
SVC_GROUP=$(unit_values Group)
SVC_UMASK=$(unit_values UMask)
# service_exec SECONDS CMD...: replaces this shell with CMD as systemd runs
# the unit's commands: its user and group (with the user's groups), no new
# privileges, no capabilities, its UMask=, a clean environment; stopped
# after SECONDS (0: no limit). Run in the background it is the process
# itself that $! names (no shell in between to take a signal meant for it).
service_exec() {
    local secs=$1; shift
    local limit=()
    [ "$secs" != 0 ] && limit=(timeout -k 5 "$secs")
    umask "${SVC_UMASK:-0022}"
    exec "${limit[@]}" setpriv --reuid="$SVC_USER" --regid="$SVC_GROUP" --init-groups --no-new-privs \
        --inh-caps=-all --bounding-set=-all -- \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/var/lib/chordsip "$@"
}
# as_service SECONDS CMD...: service_exec in a subshell; CMD's status.
as_service() { (service_exec "$@"); }
# words LINE: an Exec line's words into WORDS (the unit quotes nothing and
# uses none of the prefixes - + @ ! :, which this runner would not honour).
words() {
    read -ra WORDS <<<"$1"
    case ${WORDS[0]:-} in
        /*) ;;
        *) echo "Exec line not run here: $1"; return 1 ;;
    esac
}
# directory KEY ROOT: KEY= (StateDirectory/RuntimeDirectory) made as systemd
# does: the innermost folder owned by the unit's user, KEYMode= its mode.
directory() {
    local d mode
    mode=$(unit_values "${1}Mode")
    for d in $(unit_values "$1"); do
        install -d -m 0755 "$2/$(dirname "$d")"
        install -d -o "$SVC_USER" -g "$SVC_GROUP" -m "${mode:-0755}" "$2/$d"
    done
}

# unit_start N: starts the instance (the N-th time) the way systemd would;
# sets NODE_PID, NODE_ID. Its output in $OUT/unit-N.{pre,out,err}.
unit_start() {
    local n=$1 line
    NODE_ID=
    if [ -n "$SYSTEMD" ]; then
        # this start's journal lines stand for the files of the runner below
        local since
        since=$(date +%s)
        sleep 1 # (journalctl --since has whole seconds)
        systemctl daemon-reload
        timeout 60 systemctl start "chordsip@$INST.service" || return 1
        for _ in $(seq 1 150); do
            journalctl -q -o cat -u "chordsip@$INST.service" --since "@$since" >"$OUT/unit-$n.out" 2>/dev/null
            NODE_ID=$(sed -n "s/^node \([0-9a-f]\{40\}\) listening on 127\.0\.0\.1:$NODE_PORT joined\$/\1/p" \
                "$OUT/unit-$n.out" | tail -n 1)
            [ -n "$NODE_ID" ] && break
            sleep 0.1
        done
        cp "$OUT/unit-$n.out" "$OUT/unit-$n.pre"
        UNIT_SINCE=$since
        NODE_PID=$(systemctl show -p MainPID --value "chordsip@$INST.service")
        [ -n "$NODE_ID" ]
        return
    fi
    directory StateDirectory /var/lib
    directory RuntimeDirectory /run
    : >"$OUT/unit-$n.pre"
    while IFS= read -r line; do
        words "$line" || return 1
        as_service 30 "${WORDS[@]}" >>"$OUT/unit-$n.pre" 2>&1 ||
            { echo "ExecStartPre failed: $line"; cat "$OUT/unit-$n.pre"; return 1; }
    done < <(unit_values ExecStartPre)
    line=$(unit_values ExecStart)
    words "$line" || return 1
    service_exec 0 "${WORDS[@]}" >"$OUT/unit-$n.out" 2>"$OUT/unit-$n.err" &
    NODE_PID=$!
    for _ in $(seq 1 150); do
        NODE_ID=$(sed -n "s/^node \([0-9a-f]\{40\}\) listening on 127\.0\.0\.1:$NODE_PORT joined\$/\1/p" \
            "$OUT/unit-$n.out")
        if [ -n "$NODE_ID" ]; then
            # systemd's main process: the node itself (ExecStart execs it)
            [ "$(readlink "/proc/$NODE_PID/exe")" = /usr/bin/chordsip ] && return 0
            echo "pid $NODE_PID is $(readlink "/proc/$NODE_PID/exe"), not /usr/bin/chordsip"
            return 1
        fi
        kill -0 "$NODE_PID" 2>/dev/null || break
        sleep 0.1
    done
    port_taken "$OUT/unit-$n.err" && ports_lost "the unit's node"
    echo "the unit's node did not print its ready line within 15 s:"
    tail -n 10 "$OUT/unit-$n.err"
    return 1
}

# unit_stop N: stops it as systemd would (SIGTERM, the node leaves; the
# RuntimeDirectory= removed); 0 when it exited 0 having left the ring.
unit_stop() {
    local rc
    if [ -n "$SYSTEMD" ]; then
        timeout 60 systemctl stop "chordsip@$INST.service" || return 1
        journalctl -q -o cat -u "chordsip@$INST.service" --since "@$UNIT_SINCE" >"$OUT/unit-$1.err" 2>/dev/null
        grep -q 'left the ring' "$OUT/unit-$1.err"
        return
    fi
    set +e
    stop_within 20 "$NODE_PID"
    rc=$?
    set -e
    NODE_PID=
    rm -rf "/run/chordsip/$INST"
    [ $rc -eq 0 ] && grep -q 'left the ring' "$OUT/unit-$1.err"
}

# key_modes: "MODE OWNER:GROUP" of each key, one line.
key_modes() { stat -c '%n %a %U:%G' "${KEYS[@]}" 2>&1 | tr '\n' ';'; }
keys_ok() {
    local k
    for k in "${KEYS[@]}"; do
        [ "$(stat -c '%a %U:%G' "$k" 2>/dev/null)" = "600 $SVC_USER:$SVC_GROUP" ] || return 1
    done
}
# stats_ok: `chordsip stats` through the instance's client socket, as the
# service user (the socket is mode 0600).
stats_ok() {
    as_service 15 /usr/bin/chordsip stats --via "unix:$SOCK" --timeout-ms 3000 >"$OUT/stats.txt" 2>&1 &&
        [ -s "$OUT/stats.txt" ]
}

UNIT_SINCE=
if unit_start 1; then
    pass "$(printf '%-22s %s' unit-start "chordsip@$INST ($SVC_USER, umask $SVC_UMASK): node $NODE_ID on 127.0.0.1:$NODE_PORT")"
    if stats_ok; then
        pass "$(printf '%-22s %s' unit-stats "chordsip stats --via unix:$SOCK as $SVC_USER: $(wc -l <"$OUT/stats.txt") lines, $(head -n 1 "$OUT/stats.txt")")"
    else
        fail unit-stats "chordsip stats --via unix:$SOCK: $(head -n 3 "$OUT/stats.txt" | tr '\n' ';')"
    fi
    check unit-keys "$(key_modes)" keys_ok
    made=$(grep -c '^chordsip@.*: made ' "$OUT/unit-1.pre" 2>/dev/null || true)
    check unit-keys-made "the prestart made $made keys on the first start" [ "$made" = 3 ]
    sums1=$(sha256sum "${KEYS[@]}")
    id1=$NODE_ID
    check unit-stop "SIGTERM: the node left the ring and exited 0" unit_stop 1
    if unit_start 2; then
        sums2=$(sha256sum "${KEYS[@]}")
        remade=$(grep -c '^chordsip@.*: made ' "$OUT/unit-2.pre" 2>/dev/null || true)
        check unit-restart "second start: keys unchanged, $remade made, the same ring id $NODE_ID" \
            [ "$sums1" = "$sums2" -a "$id1" = "$NODE_ID" -a "$remade" = 0 ]
        check unit-stats-again "answers on its socket again" stats_ok
    else
        fail unit-restart "the second start failed"
    fi
else
    fail unit-start "chordsip@$INST did not start (see $OUT/unit-1.*)"
fi

# ---- 5. Kamailio with loadmodule "chordsip.so" -----------------------------------------
echo "== Kamailio: loadmodule \"chordsip.so\" from the package, joining the unit's node"
cat >"$OUT/kamailio.cfg" <<'CFG'
#!KAMAILIO
# The packaged module, loaded by name from Kamailio's module directory.
debug=2
log_stderror=yes
children=2
disable_tcp=yes
auto_aliases=no
rundir=RUN_DIR
listen=udp:SIP_ADDR:SIP_PORT

loadmodule "sl.so"
loadmodule "ctl.so"
loadmodule "chordsip.so"
modparam("chordsip", "listen", OVERLAY_LISTEN)
modparam("chordsip", "bootstrap", OVERLAY_BOOTSTRAP)
modparam("chordsip", "key_file", OVERLAY_KEY_FILE)
modparam("chordsip", "client_key_file", CLIENT_KEY_FILE)

request_route {
	if (method == "REGISTER") {
		chordsip_save();
		exit;
	}
	sl_send_reply("404", "Not Found");
}
CFG
MODULE=unused # (start_kamailio's CHORDSIP_MODULE define; this cfg names the module itself)
# the unit's overlay key: Kamailio's node joins the unit's node
if OVERLAY_KEY=$STATE/overlay.key start_kamailio K "$OUT/kamailio.cfg" "$K_SIP" \
    -A "OVERLAY_LISTEN=\"127.0.0.1:$K_OVL\"" -A "OVERLAY_BOOTSTRAP=\"127.0.0.1:$NODE_PORT\""; then
    maps=$(cat /proc/"$PID_K"/maps 2>/dev/null)
    check kamailio-start "kamailio (pid $PID_K) runs with $(grep -o '/[^ ]*/modules/chordsip\.so' <<<"$maps" | head -n 1) and $(grep -o '/[^ ]*/libchordsip\.so\.[0-9.]*' <<<"$maps" | head -n 1) mapped" \
        grep -q "$MULTIARCH/kamailio/modules/chordsip\.so" <<<"$maps"
    # ring_both: the unit's node names Kamailio's among its neighbours, and Kamailio's the unit's
    ring_both() {
        local a b
        for _ in $(seq 1 100); do
            a=$(as_service 10 /usr/bin/chordsip ring --via "unix:$SOCK" --timeout-ms 1000 2>/dev/null || true)
            b=$(kamcmd -s "unix:$OUT/K/kamailio_ctl" chordsip.ring 2>/dev/null || true)
            grep -q " 127\.0\.0\.1:$K_OVL\$" <<<"$a" && grep -q "127\.0\.0\.1:$NODE_PORT" <<<"$b" && return 0
            sleep 0.1
        done
        return 1
    }
    check kamailio-ring "Kamailio's node and the unit's node form one ring (chordsip ring, kamcmd chordsip.ring)" ring_both
    users_csv "$OUT/users.csv" 1 1
    run_sipp register 1 -sf "$SIP/register.xml" -inf "$OUT/users.csv" \
        -key contact_hostport "127.0.0.1:$CONTACT_PORT" -m 1 -i 127.0.0.1 -p "$UAC_PORT" "127.0.0.1:$K_SIP" || true
    # (counted before the stop, as kamailio-tests.sh does: at shutdown Kamailio's
    # processes may log about the others going first)
    bad=$(grep -cE '(ERROR|CRITICAL|BUG):' "$OUT/K/kamailio.log" || true)
    set +e
    stop_within 15 "$PID_K"
    rc=$?
    set -e
    forget_pid "$PID_K"
    check kamailio-stop "SIGTERM: exit $rc; $bad ERROR/CRITICAL lines in its log while it ran" [ "$rc" = 0 -a "$bad" = 0 ]
else
    fail kamailio-start "kamailio with loadmodule \"chordsip.so\" did not start (see $OUT/K/kamailio.log)"
fi

# ---- 6. remove and purge ---------------------------------------------------------------
echo "== apt-get remove (the unit's node still running), then purge"
running_before=
if [ -n "$NODE_PID" ] && kill -0 "$NODE_PID" 2>/dev/null; then running_before=1; fi
t0=$(date +%s.%N)
if "${APT[@]}" remove "${PACKAGES[@]}" >>"$OUT/apt.log" 2>&1; then
    pass "$(printf '%-22s %s' remove "apt-get remove in $(elapsed "$t0") s$(grep -o 'stopping [0-9]* node(s)' "$OUT/apt.log" | sed 's/^/; prerm: /')")"
else
    fail remove "apt-get remove failed (see $OUT/apt.log)"
fi
# the node, if it ran, was stopped by the prerm (SIGTERM, a graceful leave)
if [ -n "$running_before" ] && [ -z "$SYSTEMD" ]; then
    for _ in $(seq 1 50); do kill -0 "$NODE_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$NODE_PID" 2>/dev/null; then
        fail prerm-stop "the unit's node (pid $NODE_PID) still runs after apt-get remove"
    else
        set +e
        wait "$NODE_PID"
        rc=$?
        set -e
        NODE_PID=
        check prerm-stop "the prerm stopped the unit's node: exit $rc, $(grep -c 'left the ring' "$OUT/unit-2.err") leave" \
            [ "$rc" = 0 ]
    fi
elif [ -n "$SYSTEMD" ]; then
    check prerm-stop "systemd: chordsip@$INST is $(systemctl is-active "chordsip@$INST.service" 2>&1)" \
        sh -c "! systemctl -q is-active chordsip@$INST.service"
fi
# chordsip_processes: processes of the installed binary or of the user chordsip.
chordsip_processes() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        case $exe in /usr/bin/chordsip*) echo "${p#/proc/}" ;; esac
    done
    pgrep -u chordsip 2>/dev/null || true
}
left=$(chordsip_processes | sort -u | tr '\n' ' ')
check no-process "no chordsip process left${left:+: $left}" [ -z "$left" ]
gone_files=(/usr/bin/chordsip "$MULTIARCH/libchordsip.so.0" "$MULTIARCH/libchordsip.so" "$MULTIARCH/libchordsip.a"
    "$MULTIARCH/pkgconfig/chordsip.pc" /usr/include/chordsip.h "$MULTIARCH/kamailio/modules/chordsip.so"
    "$UNIT" /usr/lib/chordsip)
left=
for f in "${gone_files[@]}"; do { [ -e "$f" ] || [ -L "$f" ]; } && left="$left $f"; done
check files-removed "programs, library, module, unit gone${left:+; left:$left}" [ -z "$left" ]
ldso_clean() { ! ldconfig -p | grep -q libchordsip; }
check ldconfig-removed "ld.so's cache no longer lists libchordsip" ldso_clean
rm -f "$TEST_CONF"
# (packages without conffiles are gone with remove: apt-get knows no others)
mapfile -t left_pkgs < <(present)
if [ ${#left_pkgs[@]} -eq 0 ] || "${APT[@]}" purge "${left_pkgs[@]}" >>"$OUT/apt.log" 2>&1; then
    left=
    for f in /etc/chordsip /var/lib/chordsip; do [ -e "$f" ] && left="$left $f"; done
    any_installed && left="$left (dpkg still lists some package)"
    check purge "apt-get purge: /etc/chordsip, /var/lib/chordsip and dpkg's records gone${left:+; left:$left}" [ -z "$left" ]
else
    fail purge "apt-get purge failed (see $OUT/apt.log)"
fi

printf '\nPackage tests: '
if [ ${#failed[@]} -eq 0 ]; then
    echo "all passed ($(elapsed "$T_START") s)"
else
    echo "${#failed[@]} failed: ${failed[*]} ($(elapsed "$T_START") s; logs in $OUT)"
    exit 1
fi
